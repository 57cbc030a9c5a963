//! logind's `PrepareForSleep` signal (`org.freedesktop.login1.Manager` on the system bus), Linux
//! only: `true` as the machine goes to sleep, `false` once it has resumed. A resume starts new
//! handshakes at once, as the data plane's own clock-jump detection does
//! (`warren_tunnel::ResumeDetector`); logind's word is the second witness, for sleeps the clocks
//! do not show (the two clocks drift apart only by the time spent asleep).
//!
//! Optional: without a system bus (a container, a minimal system) there is no logind, the log
//! says so at debug level, and the clock-jump detection carries on alone. The signal is matched
//! by interface, member and path, not by sender (a match on logind's well-known name is not
//! resolved locally); a forged one could only start a handshake early, which is harmless.

use futures_util::StreamExt;
use zbus::message::Type;
use zbus::{MatchRule, MessageStream};

/// logind's manager interface.
pub const MANAGER: &str = "org.freedesktop.login1.Manager";
/// logind's manager object.
pub const PATH: &str = "/org/freedesktop/login1";
/// The signal.
pub const PREPARE_FOR_SLEEP: &str = "PrepareForSleep";

/// What one `PrepareForSleep(start)` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepEvent {
    /// `true`: about to sleep.
    Suspending,
    /// `false`: resumed.
    Resumed,
}

/// The signal's argument read as an event.
pub fn sleep_event(start: bool) -> SleepEvent {
    if start {
        SleepEvent::Suspending
    } else {
        SleepEvent::Resumed
    }
}

/// The system bus, or `None` (logged at debug) when there is none.
pub async fn system_bus() -> Option<zbus::Connection> {
    match zbus::Connection::system().await {
        Ok(connection) => Some(connection),
        Err(e) => {
            tracing::debug!("no system bus, so no logind sleep signals: {e}");
            None
        }
    }
}

/// Calls `on_resume` for every resume announced on `connection`, until it closes.
pub async fn watch(connection: &zbus::Connection, mut on_resume: impl FnMut()) -> zbus::Result<()> {
    let rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .interface(MANAGER)?
        .member(PREPARE_FOR_SLEEP)?
        .path(PATH)?
        .build();
    let mut signals = MessageStream::for_match_rule(rule, connection, None).await?;
    while let Some(message) = signals.next().await {
        let message = message?;
        match message.body().deserialize::<bool>() {
            Ok(start) => {
                let event = sleep_event(start);
                tracing::debug!("logind: PrepareForSleep({start}): {event:?}");
                if event == SleepEvent::Resumed {
                    on_resume();
                }
            }
            Err(e) => tracing::debug!("logind: a PrepareForSleep without its boolean: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The real signal handling on a private peer-to-peer D-Bus connection: one end emits
    //! logind's signal as logind does, the other watches it.

    use super::*;
    use std::time::Duration;
    use tokio::sync::mpsc;

    #[test]
    fn false_is_a_resume_and_true_a_suspend() {
        assert_eq!(sleep_event(false), SleepEvent::Resumed);
        assert_eq!(sleep_event(true), SleepEvent::Suspending);
    }

    #[tokio::test]
    async fn each_resume_signal_is_handled_and_suspends_and_other_signals_are_not() {
        let (one, other) = tokio::net::UnixStream::pair().unwrap();
        let logind = zbus::connection::Builder::unix_stream(one)
            .server(zbus::Guid::generate())
            .unwrap()
            .p2p()
            .build();
        let helper = zbus::connection::Builder::unix_stream(other).p2p().build();
        let (logind, helper) = tokio::try_join!(logind, helper).unwrap();
        let (resumed, mut resumes) = mpsc::unbounded_channel();
        let watcher = tokio::spawn(async move {
            watch(&helper, || {
                let _ = resumed.send(());
            })
            .await
        });
        // Let the watcher subscribe before anything is emitted.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let emit = |member: &'static str, start: bool| {
            let logind = logind.clone();
            async move {
                logind
                    .emit_signal(None::<()>, PATH, MANAGER, member, &(start,))
                    .await
                    .unwrap();
            }
        };
        emit(PREPARE_FOR_SLEEP, true).await;
        emit("PrepareForShutdown", false).await;
        emit(PREPARE_FOR_SLEEP, false).await;
        let first = tokio::time::timeout(Duration::from_secs(5), resumes.recv()).await;
        assert_eq!(first.unwrap(), Some(()), "the resume was handled");
        emit(PREPARE_FOR_SLEEP, false).await;
        let second = tokio::time::timeout(Duration::from_secs(5), resumes.recv()).await;
        assert_eq!(second.unwrap(), Some(()), "and the next one");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), resumes.recv())
                .await
                .is_err(),
            "the suspend and the other signal were taken for resumes"
        );
        watcher.abort();
    }
}
