//! The UAPI transport on Windows: the named pipe
//! `\\.\pipe\ProtectedPrefix\Administrators\WireGuard\<iface>`, where wireguard-go and
//! wireguard-windows' `wg.exe` look for userspace interfaces.
//!
//! Why that name and that descriptor: only a process running as an Administrator may create a pipe
//! under `ProtectedPrefix\Administrators\`, so a non-admin process cannot squat the name before the
//! helper starts, and the pipe's DACL (SYSTEM and built-in Administrators, full access; protected
//! from inheritance) lets nobody else connect. Remote (SMB) clients are refused.
//!
//! A named pipe serves one client per instance: the accept loop keeps one instance listening,
//! and as soon as a client connects it creates the next instance before handing the connected
//! one to the shared protocol reader in the parent module. The first instance is created with
//! `FILE_FLAG_FIRST_PIPE_INSTANCE`, so a second process serving the same interface is refused.

use super::{handle_connection, Request};
use crate::sys::paths::UAPI_PIPE_PREFIX;
use crate::sys::windows::pipe::SecurityDescriptor;
use anyhow::Context;
use std::time::Duration;
use tokio::net::windows::named_pipe::NamedPipeServer;
use tokio::sync::mpsc;

/// Owner SYSTEM; a protected DACL granting full access to SYSTEM and built-in Administrators
/// only (the descriptor wireguard-go uses for the same pipe).
const PIPE_SDDL: &str = "O:SYD:P(A;;GA;;;SY)(A;;GA;;;BA)";

/// The listening UAPI pipe; stops listening when dropped (the pipe name disappears with the
/// last instance's handle).
pub struct UapiSocket {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for UapiSocket {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Creates `\\.\pipe\ProtectedPrefix\Administrators\WireGuard\<ifname>` and serves it until
/// dropped.
pub fn serve(ifname: &str, requests: mpsc::Sender<Request>) -> anyhow::Result<UapiSocket> {
    let path = format!("{UAPI_PIPE_PREFIX}{ifname}");
    let security = SecurityDescriptor::from_sddl(PIPE_SDDL)
        .context("failed to build the security descriptor of the UAPI pipe")?;
    let first = security.create_pipe(&path, true).with_context(|| {
        format!(
            "failed to create the UAPI pipe {path} (is another WireGuard process running \
             {ifname}? is this process running as an Administrator?)"
        )
    })?;
    let task = tokio::spawn(accept_loop(first, security, path, requests));
    Ok(UapiSocket { task })
}

async fn accept_loop(
    mut listening: NamedPipeServer,
    security: SecurityDescriptor,
    path: String,
    requests: mpsc::Sender<Request>,
) {
    loop {
        let connected = listening.connect().await;
        // Whatever happened to this instance, the next client needs a fresh one.
        let next = loop {
            match security.create_pipe(&path, false) {
                Ok(next) => break next,
                Err(e) => {
                    tracing::warn!("failed to create another instance of {path}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let instance = std::mem::replace(&mut listening, next);
        match connected {
            Ok(()) => {
                let requests = requests.clone();
                tokio::spawn(async move {
                    if let Err(e) = handle_connection(instance, requests).await {
                        tracing::debug!("UAPI connection ended: {e:#}");
                    }
                });
            }
            Err(e) => {
                tracing::warn!("UAPI accept on {path} failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
