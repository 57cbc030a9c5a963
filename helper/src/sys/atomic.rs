//! The one way the helper writes a private file (journals, system tunnels and their options, DNS
//! backups, the demo's keys and configurations): [`write_private_atomically`].
//!
//! Why each step:
//! - a temporary file in the same directory (a rename is atomic only within one file system),
//!   created exclusively (`O_EXCL`: never an existing file or a planted symlink) with mode 0600
//!   from the start, so there is no moment at which others may read it (it may hold a private key);
//! - written and fsynced, then renamed over the target, so a reader — or the next start after a
//!   crash — sees the old file or the new one, never half of one;
//! - the directory fsynced after the rename (Unix), so the rename itself survives a power cut
//!   (a journal that says less than what was changed would leave changes nobody undoes);
//! - on any failure the temporary file is removed and the target is untouched.
//!
//! On Windows the file gets the directory's inherited ACL (the state directory is under
//! `%ProgramData%`, administrators only), `std::fs::rename` is `MoveFileExW` with
//! `MOVEFILE_REPLACE_EXISTING`, and there is no directory to fsync.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a write may do besides the default (replace the target, owned by this process's user).
#[derive(Debug, Clone, Copy, Default)]
pub struct PrivateWrite {
    /// Give the file to this `(uid, gid)` before it appears at the target (Unix).
    pub owner: Option<(u32, u32)>,
    /// Fail with `AlreadyExists` instead of replacing a file already at the target.
    pub no_replace: bool,
}

/// Writes `bytes` to `path` atomically as a file only its owner can read (mode 0600); see the
/// module docs. The parent directory must exist.
pub fn write_private_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    PrivateWrite::default().write(path, bytes).map(drop)
}

impl PrivateWrite {
    /// Writes as [`write_private_atomically`] with these options; returns the new file's metadata
    /// (its device and inode tell it from a file someone puts there later).
    pub fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<fs::Metadata> {
        let tmp = temp_path(path)?;
        let mut file = create_private(&tmp)?;
        let written = self.fill(&mut file, bytes).and_then(|meta| {
            drop(file);
            self.put_in_place(&tmp, path)?;
            Ok(meta)
        });
        match written {
            Ok(meta) => {
                sync_dir(parent(path))?;
                Ok(meta)
            }
            Err(err) => {
                let _ = fs::remove_file(&tmp);
                Err(err)
            }
        }
    }

    fn fill(&self, file: &mut File, bytes: &[u8]) -> io::Result<fs::Metadata> {
        #[cfg(unix)]
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::fchown(&*file, Some(uid), Some(gid))?;
        }
        #[cfg(not(unix))]
        let _ = self.owner; // Windows: the file inherits the directory's ACL.
        file.write_all(bytes)?;
        file.sync_all()?;
        file.metadata()
    }

    fn put_in_place(&self, tmp: &Path, path: &Path) -> io::Result<()> {
        if !self.no_replace {
            return fs::rename(tmp, path);
        }
        // A hard link fails when the target exists, atomically, where a check before a rename
        // would race; the temporary name then goes.
        #[cfg(unix)]
        {
            fs::hard_link(tmp, path)?;
            fs::remove_file(tmp)
        }
        #[cfg(not(unix))]
        {
            if fs::symlink_metadata(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists already", path.display()),
                ));
            }
            fs::rename(tmp, path)
        }
    }
}

/// The directory `path` is in (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// `<dir>/.<name>.<pid>-<n>.tmp`: hidden, next to `path`, unique to this write.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(parent(path).join(tmp))
}

#[cfg(unix)]
fn create_private(tmp: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)?;
    // The umask can only have taken bits away; make it exactly 0600.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .inspect_err(|_| {
            let _ = fs::remove_file(tmp);
        })?;
    Ok(file)
}

#[cfg(not(unix))]
fn create_private(tmp: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(tmp)
}

/// Makes a rename (or removal) in `dir` durable.
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows has no directory fsync; `MoveFileExW` is durable enough for the journal's purposes.
#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sys::test_dir::TempDir;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn writes_a_private_file_and_replaces_it_whole() {
        let tmp = TempDir::new("atomic");
        let path = tmp.0.join("wg0.journal");
        write_private_atomically(&path, b"first\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first\n");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);

        // A file that was readable by others is replaced by a private one, byte for byte.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        }
        let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        write_private_atomically(&path, &bytes).unwrap();
        assert_eq!(fs::read(&path).unwrap(), bytes);
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        assert_eq!(tmp.names(""), ["wg0.journal"], "no temporary file is left");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_one() {
        let tmp = TempDir::new("atomic");
        let path = tmp.0.join("office.conf");
        write_private_atomically(&path, b"old").unwrap();

        // Refused at the last step (something is at the target): the old file is intact.
        let err = PrivateWrite {
            no_replace: true,
            ..PrivateWrite::default()
        }
        .write(&path, b"new")
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(tmp.names(""), ["office.conf"]);

        // The rename fails (a directory is in the way): it stays, and nothing else appears.
        let dir_in_the_way = tmp.0.join("busy");
        fs::create_dir(&dir_in_the_way).unwrap();
        fs::write(dir_in_the_way.join("inside"), b"kept").unwrap();
        write_private_atomically(&dir_in_the_way, b"new").unwrap_err();
        assert_eq!(fs::read(dir_in_the_way.join("inside")).unwrap(), b"kept");
        assert_eq!(tmp.names(""), ["busy", "office.conf"]);

        // The parent is missing: an error, nothing created.
        let err = write_private_atomically(&tmp.0.join("missing/wg0.journal"), b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
        assert_eq!(tmp.names(""), ["busy", "office.conf"]);
    }

    #[test]
    #[cfg(unix)]
    fn a_planted_symlink_at_the_temporary_name_is_not_followed() {
        // Temporary names are unique per write, but even a guessed one is never followed.
        let tmp = TempDir::new("atomic");
        let victim = tmp.0.join("victim");
        fs::write(&victim, b"victim").unwrap();
        let planted = tmp.0.join("planted");
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        let err = create_private(&planted).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
        assert_eq!(fs::read(&victim).unwrap(), b"victim");
    }

    #[test]
    #[cfg(unix)]
    fn the_owner_and_the_new_file_identity_are_reported() {
        use std::os::unix::fs::MetadataExt as _;
        let tmp = TempDir::new("atomic");
        let path = tmp.0.join("demo.conf");
        let me = crate::sys::euid();
        // SAFETY: getegid has no preconditions and cannot fail.
        let group = unsafe { libc::getegid() };
        let meta = PrivateWrite {
            owner: Some((me, group)),
            no_replace: true,
        }
        .write(&path, b"[Interface]\n")
        .unwrap();
        let now = fs::metadata(&path).unwrap();
        assert_eq!((meta.dev(), meta.ino()), (now.dev(), now.ino()));
        assert_eq!((now.uid(), now.gid()), (me, group));
        assert_eq!(tmp.names(""), ["demo.conf"]);
    }
}
