//! The connection loop: keep one connection to the helper and mirror what it says.
//!
//! ```text
//! loop:
//!   connect ──fail──▶ show why (not running / permission denied / refused) ─▶ wait, retry
//!     │ ok
//!   events receiver first, then Subscribe [state, stats], then resync (ListTunnels + Status),
//!   then the log tail (Logs, follow) ─▶ "connected"; connect-on-launch, once per process
//!     │
//!   apply events in order; on Lagged or an unknown tunnel: resync
//!     │ the connection ends
//!   every state "unknown" ─▶ wait, reconnect
//! ```
//!
//! Why events are not read while a resync is in flight: the client delivers responses and
//! events on separate channels, so their relative order is lost. Applying the resync's answer
//! first and *then* the queued events gives the right end state: every event queued before the
//! answer was sent describes a transition the answer already includes (so replaying it ends in
//! the same state), and every later one is newer. Reading events while waiting could apply a
//! newer event and then overwrite it with the older answer.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use warren_proto::ipc::{Client, ClientError, ErrorKind, EventTopic, IpcError, Request, Response};

use super::{lock, Connector, Controller, Update};
use crate::model::{HelperStatus, LogLineView, StateView};

/// Log lines asked for when (re)connecting.
const LOG_TAIL_LINES: u32 = 500;

/// What the user should read when connecting fails.
pub fn helper_status_for(error: &ClientError) -> HelperStatus {
    match error {
        ClientError::NotRunning { path, hint, .. } => HelperStatus::NotRunning {
            socket: path.display().to_string(),
            advice: (*hint).to_owned(),
        },
        ClientError::PermissionDenied { path, hint, .. } => HelperStatus::PermissionDenied {
            socket: path.display().to_string(),
            advice: (*hint).to_owned(),
        },
        ClientError::VersionMismatch { .. } => HelperStatus::Refused {
            message: error.to_string(),
        },
        ClientError::Refused(reason) => match reason.kind {
            ErrorKind::NotAuthorized => HelperStatus::PermissionDenied {
                socket: String::new(),
                advice: reason.message.clone(),
            },
            _ => HelperStatus::Refused {
                message: reason.message.clone(),
            },
        },
        ClientError::Connect { .. }
        | ClientError::UnexpectedMessage
        | ClientError::ClosedDuringHello
        | ClientError::HelloTimeout
        | ClientError::Hello(_) => HelperStatus::Unreachable {
            message: error.to_string(),
        },
    }
}

impl Controller {
    /// Runs the connection loop forever (spawn it once; drop the task to stop it).
    pub async fn run(self, connector: Arc<dyn Connector>) {
        let mut attempt = 0;
        loop {
            match connector.connect().await {
                Ok(client) => {
                    attempt = 0;
                    let reason = self.follow_connection(Arc::new(client)).await;
                    *lock(&self.inner.client) = None;
                    tracing::info!("the connection to the helper ended: {}", reason.message);
                    self.with_mirror(|m| {
                        m.helper_lost(HelperStatus::Unreachable {
                            message: reason.message.clone(),
                        })
                    });
                }
                Err(error) => {
                    let status = helper_status_for(&error);
                    tracing::debug!("cannot reach the helper: {error}");
                    let changed = lock(&self.inner.mirror).helper != status;
                    if changed {
                        tracing::warn!("cannot reach the helper: {error}");
                        self.with_mirror(|m| m.helper_lost(status));
                    }
                }
            }
            let wait = backoff(self.inner.reconnect_min, self.inner.reconnect_max, attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.retry.notified() => {}
            }
        }
    }

    /// Follows one connection, from subscribe to its end. Returns why it ended.
    async fn follow_connection(&self, client: Arc<Client>) -> IpcError {
        let mut events = client.events();
        let topics = vec![EventTopic::State, EventTopic::Stats];
        if let Err(e) = client.request(Request::Subscribe { topics }).await {
            return e;
        }
        if let Err(e) = self.resync(&client).await {
            return e;
        }
        match client
            .request(Request::Logs {
                lines: LOG_TAIL_LINES,
                follow: true,
            })
            .await
        {
            Ok(Response::Logs { lines }) => self.with_mirror(|m| {
                m.logs.clear();
                for line in &lines {
                    m.push_log(LogLineView::from(line));
                }
            }),
            Ok(_) => {}
            // An old helper without logs is still a helper: carry on without them.
            Err(e) => tracing::warn!("the helper sent no log lines: {e}"),
        }
        *lock(&self.inner.client) = Some(Arc::clone(&client));
        self.connect_on_launch();

        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!("missed {missed} helper events; resynchronising");
                    if let Err(e) = self.resync(&client).await {
                        return e;
                    }
                    continue;
                }
                Err(RecvError::Closed) => {
                    return client
                        .request(Request::ListTunnels)
                        .await
                        .err()
                        .unwrap_or_else(|| {
                            IpcError::disconnected("the helper closed the connection")
                        });
                }
            };
            let now = (self.inner.clock)();
            let applied = self.with_mirror(|m| m.apply(event, now));
            if let Some(transition) = applied.transition {
                self.publish(Update::Transition(transition));
            }
            if let Some(line) = applied.log {
                self.publish(Update::Log(line));
            }
            if applied.resync {
                if let Err(e) = self.resync(&client).await {
                    return e;
                }
            }
        }
    }

    /// Asks the helper for every tunnel and the status of the active ones, and replaces the
    /// mirror's helper side with the answers.
    async fn resync(&self, client: &Client) -> Result<(), IpcError> {
        let list = match client.request(Request::ListTunnels).await? {
            Response::Tunnels { tunnels } => tunnels,
            other => return Err(unexpected("ListTunnels", &other)),
        };
        let status = match client.request(Request::Status { name: None }).await? {
            Response::Status { tunnels } => tunnels,
            other => return Err(unexpected("Status", &other)),
        };
        let version = client.helper_version().to_owned();
        let transitions = self.with_mirror(|m| m.resync(list, status, &version));
        for transition in transitions {
            self.publish(Update::Transition(transition));
        }
        Ok(())
    }

    /// Connects the last-used tunnel once per process, after the first sync, if the user asked
    /// for it and it is down.
    fn connect_on_launch(&self) {
        let target = {
            let mirror = lock(&self.inner.mirror);
            match (
                &mirror.settings.last_used,
                mirror.settings.connect_on_launch,
            ) {
                (Some(name), true) if mirror.state_of(name) == StateView::Disconnected => {
                    Some(name.clone())
                }
                _ => None,
            }
        };
        if self.inner.launched.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(name) = target {
            let controller = self.clone();
            tokio::spawn(async move {
                tracing::info!("connecting '{name}' on launch");
                if let Err(e) = controller.connect(&name).await {
                    tracing::warn!("failed to connect '{name}' on launch: {e}");
                }
            });
        }
    }
}

fn unexpected(request: &str, response: &Response) -> IpcError {
    IpcError::internal(format!(
        "the helper answered {request} with an unexpected response: {response:?}"
    ))
}

/// How long to wait before the `attempt`-th reconnection (0-based): doubling from `min`, at most
/// `max`.
pub fn backoff(min: Duration, max: Duration, attempt: u32) -> Duration {
    min.saturating_mul(2u32.saturating_pow(attempt)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::path::PathBuf;

    #[test]
    fn connection_failures_become_advice() {
        let not_running = ClientError::NotRunning {
            path: PathBuf::from("/run/warren/helper.sock"),
            hint: "start it with `systemctl start warren-helper`",
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        assert_eq!(
            helper_status_for(&not_running),
            HelperStatus::NotRunning {
                socket: "/run/warren/helper.sock".into(),
                advice: "start it with `systemctl start warren-helper`".into()
            }
        );
        let denied = ClientError::PermissionDenied {
            path: PathBuf::from("/run/warren/helper.sock"),
            hint: "add yourself to group `warren` and log in again",
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(matches!(
            helper_status_for(&denied),
            HelperStatus::PermissionDenied { advice, .. } if advice.contains("group `warren`")
        ));
        let refused =
            ClientError::Refused(IpcError::not_authorized("uid 1001 is not in group warren"));
        assert!(matches!(
            helper_status_for(&refused),
            HelperStatus::PermissionDenied { advice, .. } if advice.contains("uid 1001")
        ));
        let old = ClientError::VersionMismatch {
            helper: 2,
            client: 1,
            helper_version: "0.2.0".into(),
        };
        assert!(matches!(
            helper_status_for(&old),
            HelperStatus::Refused { message } if message.contains("0.2.0")
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_limit() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(5));
        let waits: Vec<_> = (0..6).map(|a| backoff(min, max, a).as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 5000, 5000]);
    }
}
