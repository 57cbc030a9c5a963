//! The lock that serialises "check, then write" of the kernel settings that tunnels share
//! (`net.ipv4.conf.all.src_valid_mark`): one file in the state directory
//! ([`super::paths::shared_sysctl_lock`]), locked with `flock` for the few steps of one check.
//!
//! Why a lock at all: whether a tunnel may restore a shared setting depends on the other tunnels'
//! journals (see `crate::journal`), and those change while we look — the daemon's `stop_all`
//! tears every tunnel down at once, and two `warren-helper up` processes may start together.
//! Checking the journals, writing the setting and rewriting our own journal must be one step as
//! the other tunnels see it.
//!
//! Why polling: the lock is taken from async code, and two tasks of one process may want it at
//! once (an `flock` taken twice in one process conflicts like two processes). A blocking `flock`
//! on a runtime thread could wait for a task that this very thread has to run; so the lock is
//! tried without blocking and retried after a short sleep, up to [`LOCK_TIMEOUT`].
//!
//! The file is removed when the lock is released (an empty state directory stays empty once
//! every tunnel is down); whoever opened it just before then finds, once locked, that the path
//! names another file or none, and starts again — the journal's own locks do the same.
//!
//! Only Unix has such settings; elsewhere the lock is a no-op (no journal there holds one).

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long [`SettingLock::acquire`] waits for another holder before giving up.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long it sleeps between two tries.
const RETRY_INTERVAL: Duration = Duration::from_millis(10);

/// The held lock; released (and its file removed) when dropped, and by the kernel if the process
/// dies.
#[derive(Debug)]
pub struct SettingLock {
    #[cfg(unix)]
    file: Option<(std::fs::File, std::path::PathBuf)>,
}

#[cfg(unix)]
impl Drop for SettingLock {
    fn drop(&mut self) {
        if let Some((file, path)) = self.file.take() {
            // Removed while still locked, so that nobody can lock the old file and think it is
            // the current one (see `try_acquire`).
            if let Err(err) = std::fs::remove_file(&path) {
                if err.kind() != io::ErrorKind::NotFound {
                    tracing::debug!("failed to remove {}: {err}", path.display());
                }
            }
            drop(file);
        }
    }
}

impl SettingLock {
    /// Takes the lock at `path` (creating the file, mode 0600), waiting up to [`LOCK_TIMEOUT`]
    /// for whoever holds it.
    pub async fn acquire(path: &Path) -> io::Result<SettingLock> {
        let started = Instant::now();
        loop {
            if let Some(lock) = Self::try_acquire(path)? {
                return Ok(lock);
            }
            if started.elapsed() >= LOCK_TIMEOUT {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "failed to lock {}: another warren-helper has held it for {} s",
                        path.display(),
                        LOCK_TIMEOUT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(RETRY_INTERVAL).await;
        }
    }

    /// One try: the lock, or `None` while someone else holds it.
    #[cfg(unix)]
    fn try_acquire(path: &Path) -> io::Result<Option<SettingLock>> {
        use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
        use std::os::unix::io::AsRawFd as _;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|err| {
                io::Error::new(
                    err.kind(),
                    format!("failed to open {}: {err}", path.display()),
                )
            })?;
        // SAFETY: flock(2) on a descriptor this function owns; no pointers.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(io::Error::new(
                    err.kind(),
                    format!("failed to lock {}: {err}", path.display()),
                ))
            };
        }
        // The holder before us may have removed the file after we opened it: then this lock is
        // on a file nobody else will look at, and we try again.
        let held = file.metadata()?;
        match std::fs::metadata(path) {
            Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => {
                Ok(Some(SettingLock {
                    file: Some((file, path.to_owned())),
                }))
            }
            _ => Ok(None),
        }
    }

    #[cfg(not(unix))]
    fn try_acquire(_path: &Path) -> io::Result<Option<SettingLock>> {
        Ok(Some(SettingLock {}))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_holder_waits_until_the_first_lets_go() {
        let path = std::env::temp_dir().join(format!("warren-setting-lock-{}", std::process::id()));
        let first = SettingLock::acquire(&path).await.unwrap();
        assert!(
            SettingLock::try_acquire(&path).unwrap().is_none(),
            "a second lock, even in the same process, must wait"
        );
        let waiter = tokio::spawn({
            let path = path.clone();
            async move { SettingLock::acquire(&path).await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "it must wait while the first holds it"
        );
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter gets the lock once it is free")
            .unwrap()
            .unwrap();
        assert!(!path.exists(), "a released lock leaves no file behind");
    }
}
