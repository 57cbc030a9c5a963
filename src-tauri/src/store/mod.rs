//! What the app keeps on disk for the user, all under the app's config directory
//! (`$XDG_CONFIG_HOME/net.warren.desktop` on Linux; tests point it at a temp dir):
//!
//! - [`tunnels`]: `tunnels/<name>.conf`, each tunnel's wg-quick text *without* its private key;
//! - [`secrets`]: the private keys, in the OS keyring (or, only if the user accepts the warning,
//!   `keys/<name>.key`);
//! - [`settings`]: `settings.json`, preferences and per-tunnel options.
//!
//! Every file is written atomically (a temporary file in the same directory, then a rename) with
//! mode 0600 in 0700 directories, so a crash never leaves half a file and other users read nothing.

pub mod secrets;
pub mod settings;
pub mod tunnels;

use std::io::Write as _;
use std::path::Path;

/// Creates `dir` (and its parents) with mode 0700 on Unix; leaves an existing one alone.
pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `bytes` to `path` atomically, readable by the owner only.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::{Path, PathBuf};

    /// A fresh directory for one test, removed on drop.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(test: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "warren-app-{test}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn private_files_replace_atomically() {
        let dir = TempDir::new("atomic");
        let path = dir.path().join("sub/file");
        super::create_private_dir(path.parent().unwrap()).unwrap();
        super::write_private_file(&path, b"one").unwrap();
        super::write_private_file(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["file"], "no temporary file is left behind");
    }
}
