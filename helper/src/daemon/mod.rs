//! The daemon (`warren-helper daemon`, the systemd / launchd / Windows service): owns every tunnel
//! on the host and serves the IPC protocol (`warren_proto::ipc`) to the GUI and the admin CLI.
//!
//! [`run`] is the whole life of the daemon, for every way of starting it (the CLI's `daemon`
//! subcommand, the Windows service), with the stop request passed in by the caller:
//! 1. undo what earlier runs left behind: every journal in the state directory that no live
//!    process holds ([`crate::journal::recover`]; journals of other network namespaces are left
//!    alone);
//! 2. listen: the Unix socket (0660, group `warren`) or the named pipe, per OS (`unix.rs`,
//!    `windows.rs`), each connection authorised from its peer's credentials (`auth.rs`) and then
//!    served by `server.rs`;
//! 3. the tunnel manager (`manager.rs`) starts the system tunnels marked autostart and then serves
//!    the commands the connections translate requests into — it alone decides;
//! 4. once the socket is served and every autostart tunnel has come up or failed, the service
//!    manager is told `READY=1` (`notify.rs`; systemd's `Type=notify`), and while the tunnel
//!    manager answers, `WATCHDOG=1` every half `WatchdogSec=`;
//! 5. on the stop request: the service manager is told `STOPPING=1`, every client is told
//!    (`HelperStopping`), every tunnel is taken down and its journal undone, the socket is
//!    removed, and `run` returns.
//!
//! This module owns the daemon's entry point and [`Options`]. The manager alone holds tunnel
//! state and decides, behind a session-runner seam that its tests fill in memory; the tunnel
//! state machine and the rules for which tunnels may run side by side are pure functions; the
//! store owns the system tunnels on disk and their catalogue; the server speaks the protocol on
//! one connection; the listeners and the peer checks are per OS; the service manager is told
//! when the daemon is ready, alive and stopping (sd_notify).

mod conflict;
mod lifecycle;
mod manager;
#[cfg(test)]
mod manager_tests;
mod notify;
mod server;
mod store;
#[cfg(test)]
mod tests;

#[cfg(unix)]
pub(crate) mod auth;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

use anyhow::Context as _;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use warren_proto::ipc::IpcError;

/// Commands queued for the manager before a connection waits.
const COMMAND_QUEUE: usize = 64;

/// Events buffered per connection before a slow one misses some.
const EVENT_QUEUE: usize = 1024;

/// How the daemon runs. [`Options::default`] is the installed daemon's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where to listen: a Unix socket path, or a pipe name on Windows
    /// (default [`crate::sys::paths::daemon_socket`]).
    pub socket: PathBuf,
    /// The group whose members may connect (Unix; default `warren`).
    pub group: String,
    /// Where the journals live (default [`crate::sys::paths::state_dir`]).
    pub state_dir: PathBuf,
    /// The system tunnels (default [`crate::sys::paths::system_tunnels_dir`]).
    pub tunnels_dir: PathBuf,
    /// Run system tunnels' PreUp/PostUp/PreDown/PostDown commands.
    pub run_hooks: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            socket: crate::sys::paths::daemon_socket(),
            group: "warren".to_owned(),
            state_dir: crate::sys::paths::state_dir(),
            tunnels_dir: crate::sys::paths::system_tunnels_dir(),
            run_hooks: false,
        }
    }
}

/// A connection the listener accepted, with its verdict.
struct Incoming<S> {
    stream: S,
    /// Who it is, for the log.
    peer: String,
    /// The caller if admitted, else why not.
    admission: Result<manager::Caller, IpcError>,
}

/// Runs the daemon until `shutdown` completes, then takes every tunnel down (see the module
/// docs). Fails only if it cannot start (the socket is taken, the state directory is unusable);
/// tunnels that fail are reported to clients and logged, not returned.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let notifier = Arc::new(notify::Notifier::from_env());
    let watchdog = notify::watchdog_interval().filter(|_| notifier.is_enabled());
    tracing::info!(
        "warren-helper {} daemon starting: socket {}, tunnels {}, state {}",
        env!("CARGO_PKG_VERSION"),
        options.socket.display(),
        options.tunnels_dir.display(),
        options.state_dir.display()
    );
    // Recovery may take a while (it runs nft, resolvconf): the watchdog is fed meanwhile by a
    // task that proves only that the runtime turns, until the manager exists.
    let early_watchdog = watchdog.map(|interval| {
        let notifier = Arc::clone(&notifier);
        tokio::spawn(async move {
            loop {
                notifier.watchdog();
                tokio::time::sleep(interval).await;
            }
        })
    });
    recover(&options).await;
    let mut listener = imp::Listener::bind(&options.socket, &options.group)?;

    let (events, _) = broadcast::channel(EVENT_QUEUE);
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let mut manager = manager::Manager::new(
        manager::Settings {
            state_dir: options.state_dir.clone(),
            store: store::Store::new(options.tunnels_dir.clone()),
            run_hooks: options.run_hooks,
            runner: std::sync::Arc::new(manager::RealSessions),
        },
        events.clone(),
    );
    let autostarted = manager.when_autostarted();
    let (stop_manager, manager_stopped) = tokio::sync::oneshot::channel::<()>();
    let manager = tokio::spawn(manager.run(command_rx, async {
        let _ = manager_stopped.await;
    }));
    if let Some(interval) = watchdog {
        if let Some(task) = early_watchdog {
            task.abort();
        }
        tokio::spawn(feed_watchdog(
            Arc::clone(&notifier),
            commands.clone(),
            interval,
        ));
    }
    let shared = Arc::new(server::Shared {
        commands,
        events,
        helper_version: env!("CARGO_PKG_VERSION").to_owned(),
        frame_timeout: Duration::from_secs(server::FRAME_TIMEOUT_SECS),
    });

    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    tokio::pin!(autostarted);
    let mut ready = false;
    loop {
        while connections.try_join_next().is_some() {}
        let incoming = tokio::select! {
            () = &mut shutdown => break,
            // Here, in the loop that accepts connections: the socket is being served.
            outcome = &mut autostarted, if !ready => {
                ready = true;
                let outcome = outcome.unwrap_or_default();
                let status = format!(
                    "serving {}; autostart tunnels: {} up, {} failed",
                    options.socket.display(),
                    outcome.up,
                    outcome.failed
                );
                tracing::info!("ready: {status}");
                notifier.ready(&status);
                continue;
            }
            incoming = listener.accept() => incoming,
        };
        match incoming {
            Ok(Incoming {
                stream,
                peer,
                admission: Ok(caller),
            }) => {
                connections.spawn(server::serve(stream, caller, peer, Arc::clone(&shared)));
            }
            Ok(Incoming {
                stream,
                peer,
                admission: Err(reason),
            }) => {
                tracing::warn!("{peer}: refused: {}", reason.message);
                connections.spawn(server::refuse(stream, reason));
            }
            Err(e) => {
                tracing::warn!("failed to accept a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    tracing::info!("stopping: telling clients, taking the tunnels down");
    notifier.stopping("stopping: taking the tunnels down");
    drop(listener);
    let _ = stop_manager.send(());
    manager.await.context("the tunnel manager failed")?;
    // Let the connections deliver `HelperStopping` and the last answers, then close them.
    drop(shared);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Sends `WATCHDOG=1` every `interval` for as long as the tunnel manager answers within half of
/// it: a manager (or runtime) that is stuck stops the pings, and systemd kills and restarts the
/// daemon (`WatchdogSec=`, `Restart=always`).
async fn feed_watchdog(
    notifier: Arc<notify::Notifier>,
    commands: mpsc::Sender<manager::Command>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stuck = false;
    loop {
        tick.tick().await;
        let (reply, answer) = tokio::sync::oneshot::channel();
        // At most half a period late: pings stay less than 0.75 × WatchdogSec apart.
        let alive = tokio::time::timeout(interval / 2, async {
            commands
                .send(manager::Command::Alive { reply })
                .await
                .is_ok()
                && answer.await.is_ok()
        })
        .await;
        match alive {
            Ok(true) => {
                stuck = false;
                notifier.watchdog();
            }
            // The manager has left its loop: the daemon is stopping, taking the tunnels down, and
            // systemd's stop timeout (not the watchdog) bounds that; the runtime still turns.
            Ok(false) => notifier.watchdog(),
            Err(_) => {
                if !stuck {
                    tracing::error!(
                        "the tunnel manager did not answer within {interval:?}: not feeding the watchdog"
                    );
                }
                stuck = true;
            }
        }
    }
}

/// Step 1 of the module docs: undo what earlier runs left. Failures are logged; the tunnels that
/// own such a journal will refuse to come up until it is recovered.
async fn recover(options: &Options) {
    match crate::journal::recover(&options.state_dir, None).await {
        Err(e) => tracing::error!("recovery: {e}"),
        Ok(reports) => {
            for report in reports {
                use crate::journal::Recovery;
                match &report {
                    Recovery::Restored { .. } => tracing::warn!("recovery: {report}"),
                    Recovery::LeftAlone(_) => tracing::info!("recovery: {report}"),
                    Recovery::Incomplete { .. } | Recovery::Failed(_) => {
                        tracing::error!("recovery: {report}");
                    }
                }
                for line in report.details() {
                    tracing::info!("recovery: {line}");
                }
            }
        }
    }
}
