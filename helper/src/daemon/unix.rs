//! The daemon's socket on Unix: a stream socket (`/run/warren/helper.sock` on Linux,
//! `/var/run/warren/helper.sock` on macOS, or `--socket`), mode `0660`, group `warren` (or
//! `--group`), and the per-connection credential check of [`super::auth`]. A missing socket
//! directory is created `0750` with that group, as tmpfiles.d makes `/run/warren` on an installed
//! system.
//!
//! Binding refuses to take over a socket another daemon is listening on, replaces a stale one (a
//! socket file nobody listens on, left by a crash), and never removes anything that is not a
//! socket. The socket file is removed when the listener is dropped — if it is still ours (same
//! inode).

use super::auth::{self, Group};
use super::manager::Caller;
use super::Incoming;
use anyhow::{bail, Context};
use std::io;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};
use warren_proto::ipc::IpcError;

/// The socket file's mode: owner and group may connect. This is the access control.
const SOCKET_MODE: u32 = 0o660;

/// The mode of the socket's directory when the daemon creates it (installed systems get
/// `/run/warren` from tmpfiles.d with the same mode): the group may reach the socket, others may
/// not even list the directory.
const SOCKET_DIR_MODE: u32 = 0o750;

/// The listening socket.
pub(super) struct Listener {
    listener: UnixListener,
    path: PathBuf,
    inode: u64,
    group_name: String,
}

impl Listener {
    /// Binds `path`, owned by group `group_name` (see the module docs).
    pub(super) fn bind(path: &Path, group_name: &str) -> anyhow::Result<Self> {
        let group = match auth::group(group_name) {
            Ok(Some(group)) => Some(group),
            Ok(None) => {
                tracing::warn!(
                    "group '{group_name}' does not exist: only root can use the helper (create \
                     it with `groupadd --system {group_name}` and add users to it)"
                );
                None
            }
            Err(e) => {
                tracing::warn!("failed to look up group '{group_name}': {e}");
                None
            }
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                create_socket_dir(dir, group.as_ref().map(|g| g.gid))?;
            }
        }
        remove_stale(path)?;
        let listener = UnixListener::bind(path)
            .with_context(|| format!("failed to listen on {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE))
            .with_context(|| format!("failed to set the mode of {}", path.display()))?;
        if let Some(group) = &group {
            std::os::unix::fs::chown(path, None, Some(group.gid)).with_context(|| {
                format!(
                    "failed to give {} to group '{group_name}' (gid {})",
                    path.display(),
                    group.gid
                )
            })?;
        }
        let inode = std::fs::metadata(path)
            .with_context(|| format!("failed to stat {}", path.display()))?
            .ino();
        tracing::info!(
            "listening on {} (mode {SOCKET_MODE:o}, group {group_name})",
            path.display()
        );
        Ok(Listener {
            listener,
            path: path.to_owned(),
            inode,
            group_name: group_name.to_owned(),
        })
    }

    /// The next connection, with the verdict on its peer.
    pub(super) async fn accept(&mut self) -> io::Result<Incoming<UnixStream>> {
        let (stream, _) = self.listener.accept().await?;
        let (peer, admission) = match stream.peer_cred() {
            Ok(credentials) => {
                let uid = credentials.uid();
                let pid = credentials
                    .pid()
                    .map(|pid| format!(" pid {pid}"))
                    .unwrap_or_default();
                let peer = format!("client uid {uid}{pid}");
                let group = self.group();
                let facts = auth::lookup(uid, credentials.gid());
                let admission = auth::decide(&facts, group.as_ref())
                    .map(|()| Caller {
                        uid: Some(uid),
                        admin: uid == 0,
                    })
                    .map_err(IpcError::not_authorized);
                (peer, admission)
            }
            Err(e) => (
                "client of unknown uid".to_owned(),
                Err(IpcError::not_authorized(format!(
                    "the helper could not read this connection's credentials: {e}"
                ))),
            ),
        };
        Ok(Incoming {
            stream,
            peer,
            admission,
        })
    }

    /// The group, looked up again for each connection (membership changes take effect at once).
    fn group(&self) -> Option<Group> {
        auth::group(&self.group_name).unwrap_or_else(|e| {
            tracing::warn!("failed to look up group '{}': {e}", self.group_name);
            None
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path).is_ok_and(|m| m.ino() == self.inode);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                tracing::warn!("failed to remove {}: {e}", self.path.display());
            }
        }
    }
}

/// Creates the socket's directory `dir` (and missing parents) `0750`, the last component
/// owned by `gid` (the daemon's group, when it exists) so its members can reach the socket. The
/// mode is set explicitly, whatever the umask.
fn create_socket_dir(dir: &Path, gid: Option<u32>) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(SOCKET_DIR_MODE)
        .create(dir)
        .with_context(|| format!("failed to create {}", dir.display()))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(dir, None, Some(gid))
            .with_context(|| format!("failed to give {} to gid {gid}", dir.display()))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(SOCKET_DIR_MODE))
        .with_context(|| format!("failed to set the mode of {}", dir.display()))
}

/// Removes a socket file nobody listens on; refuses one that answers, and anything else.
fn remove_stale(path: &Path) -> anyhow::Result<()> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("failed to stat {}", path.display())),
    };
    if !metadata.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket; remove it or choose another --socket",
            path.display()
        );
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => bail!(
            "another warren-helper daemon is already listening on {}",
            path.display()
        ),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            tracing::info!("removing the stale socket {}", path.display());
            std::fs::remove_file(path)
                .with_context(|| format!("failed to remove the stale socket {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("failed to check {}", path.display())),
    }
}
