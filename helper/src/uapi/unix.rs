//! The UAPI transport on Unix (Linux and macOS): the socket `/var/run/wireguard/<iface>.sock`,
//! mode 0600 so only root may configure the tunnel, where `wg` looks for userspace interfaces.
//!
//! It only listens and accepts; each connection is served by the shared protocol reader in the
//! parent module. A socket file whose owner died is replaced; one that still answers means another
//! process runs the interface, and is left alone.

use super::{handle_connection, Request};
use crate::sys::paths::UAPI_SOCKET_DIR;
use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::UnixListener;
use tokio::sync::mpsc;

/// The listening UAPI socket; removes its file when dropped.
pub struct UapiSocket {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for UapiSocket {
    fn drop(&mut self) {
        self.task.abort();
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!("failed to remove {}: {e}", self.path.display());
        }
    }
}

/// Creates `/var/run/wireguard/<ifname>.sock` (root-only) and serves it until dropped.
pub fn serve(ifname: &str, requests: mpsc::Sender<Request>) -> anyhow::Result<UapiSocket> {
    serve_at(Path::new(UAPI_SOCKET_DIR), ifname, requests)
}

fn serve_at(
    dir: &Path,
    ifname: &str,
    requests: mpsc::Sender<Request>,
) -> anyhow::Result<UapiSocket> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let path = dir.join(format!("{ifname}.sock"));
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        anyhow::bail!(
            "{} is in use: is another WireGuard process running {ifname}?",
            path.display()
        );
    }
    // A socket file left by a process that died; nobody answers on it.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).with_context(|| format!("failed to bind {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("failed to restrict {}", path.display()))?;
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let requests = requests.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle_connection(stream, requests).await {
                            tracing::debug!("UAPI connection ended: {e:#}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("UAPI accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(UapiSocket { path, task })
}

#[cfg(test)]
mod tests {
    use super::super::{apply_to_device, format_get};
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use warren_proto::key::PrivateKey;
    use warren_tunnel::Device;

    #[tokio::test]
    async fn the_socket_speaks_the_protocol() {
        let dir = std::env::temp_dir().join(format!("warren-uapi-test-{}", std::process::id()));
        let (tx, mut rx) = mpsc::channel(4);
        let _socket = serve_at(&dir, "wtest0", tx).unwrap();
        let mut device = Device::new(PrivateKey::generate());
        // A stand-in for the driver's control branch.
        let driver = tokio::spawn(async move {
            while let Some(request) = rx.recv().await {
                match request {
                    Request::Get(reply) => {
                        let _ = reply.send(format_get(&device, 1, None));
                    }
                    Request::Set(set, reply) => {
                        apply_to_device(set, &mut device);
                        let _ = reply.send(Ok(()));
                    }
                }
            }
        });
        let hex = PrivateKey::generate().public_key().to_hex();
        let mut stream = tokio::net::UnixStream::connect(dir.join("wtest0.sock"))
            .await
            .unwrap();
        let request = format!("set=1\npublic_key={hex}\nallowed_ip=198.18.3.0/24\n\nget=1\n\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reader = BufReader::new(stream);
        let mut answer = String::new();
        while !answer.ends_with("errno=0\n\n") || answer.matches("errno=").count() < 2 {
            if reader.read_line(&mut answer).await.unwrap() == 0 {
                break;
            }
        }
        assert!(answer.starts_with("errno=0\n\nprivate_key="), "{answer}");
        assert!(answer.contains(&format!("public_key={hex}\n")));
        assert!(answer.contains("allowed_ip=198.18.3.0/24\n"));

        let mut bad = tokio::net::UnixStream::connect(dir.join("wtest0.sock"))
            .await
            .unwrap();
        bad.write_all(b"set=1\nlisten_port=notaport\n\n")
            .await
            .unwrap();
        let mut reply = String::new();
        BufReader::new(bad).read_line(&mut reply).await.unwrap();
        assert_eq!(reply, format!("errno={}\n", -libc::EINVAL));
        driver.abort();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
