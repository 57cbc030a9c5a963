//! The shutdown request: the OS's way of asking the helper to stop, as one future.
//!
//! - Unix (Linux, macOS): the first SIGINT (ctrl-c in a terminal) or SIGTERM (`kill`, systemd,
//!   launchd).
//! - Windows: the first console control event — ctrl-c, ctrl-break, the console window closing,
//!   or the system shutting down. (Stopping the Windows service arrives with the service itself
//!   and will complete the same future.)
//!
//! The handlers are installed by [`requested`] itself, not when the future is first polled, so
//! the caller installs them *before* changing the system: a signal during setup is then seen and
//! answered by an orderly teardown instead of killing the process half-way.

use std::future::Future;

/// Installs the handlers now; the returned future completes on the first shutdown request and
/// logs which one it was.
pub fn requested() -> anyhow::Result<impl Future<Output = ()>> {
    imp::requested()
}

#[cfg(unix)]
mod imp {
    use anyhow::Context as _;
    use std::future::Future;
    use tokio::signal::unix::{signal, SignalKind};

    pub(super) fn requested() -> anyhow::Result<impl Future<Output = ()>> {
        let mut interrupt = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
        let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received"),
                _ = terminate.recv() => tracing::info!("SIGTERM received"),
            }
        })
    }
}

#[cfg(windows)]
mod imp {
    use anyhow::Context as _;
    use std::future::Future;
    use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close, ctrl_shutdown};

    pub(super) fn requested() -> anyhow::Result<impl Future<Output = ()>> {
        let mut interrupt = ctrl_c().context("failed to handle ctrl-c")?;
        let mut brk = ctrl_break().context("failed to handle ctrl-break")?;
        let mut close = ctrl_close().context("failed to handle the console closing")?;
        let mut shutdown = ctrl_shutdown().context("failed to handle system shutdown")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("ctrl-c received"),
                _ = brk.recv() => tracing::info!("ctrl-break received"),
                _ = close.recv() => tracing::info!("console closing"),
                _ = shutdown.recv() => tracing::info!("system shutting down"),
            }
        })
    }
}
