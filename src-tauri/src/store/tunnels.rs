//! The user's tunnels on disk: `<config dir>/tunnels/<name>.conf`, the wg-quick text of each
//! tunnel *without* its `PrivateKey` line (that lives in the keyring, see
//! [`secrets`](super::secrets)). Preshared keys stay in the text, in their `[Peer]` sections,
//! which is why the files are mode 0600.
//!
//! Names are [`TunnelName`]s, checked before they become file names, so a name can never escape
//! the directory.

use std::path::{Path, PathBuf};
use warren_proto::config::TunnelConfig;
use warren_proto::ipc::TunnelName;
use zeroize::Zeroizing;

/// Why a tunnel could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No tunnel by that name.
    #[error("there is no tunnel named '{0}'")]
    NotFound(String),
    /// A tunnel by that name exists.
    #[error("a tunnel named '{0}' already exists")]
    Exists(String),
    /// A file operation failed.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// What was being done: "read", "write", "rename", "delete", "list".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// The directory of stored tunnels.
#[derive(Debug, Clone)]
pub struct TunnelStore {
    dir: PathBuf,
}

impl TunnelStore {
    /// Tunnels under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &TunnelName) -> PathBuf {
        self.dir.join(format!("{name}.conf"))
    }

    /// Every stored tunnel, sorted by name. Files whose names are not tunnel names are skipped.
    pub fn list(&self) -> Result<Vec<TunnelName>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Io {
                    action: "list",
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut names: Vec<TunnelName> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "conf"))
            .filter_map(|path| TunnelName::from_conf_path(&path).ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// True when a tunnel by that name is stored.
    pub fn exists(&self, name: &TunnelName) -> bool {
        self.path(name).is_file()
    }

    /// The stored text (no private key; may hold preshared keys, hence zeroized).
    pub fn read_text(&self, name: &TunnelName) -> Result<Zeroizing<String>, StoreError> {
        let path = self.path(name);
        std::fs::read_to_string(&path)
            .map(Zeroizing::new)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => StoreError::NotFound(name.to_string()),
                _ => StoreError::Io {
                    action: "read",
                    path,
                    source,
                },
            })
    }

    /// Stores `config` without its private key, replacing any previous version.
    pub fn write(&self, name: &TunnelName, config: &TunnelConfig) -> Result<(), StoreError> {
        let path = self.path(name);
        let text = Zeroizing::new(config.to_conf_without_private_key());
        super::create_private_dir(&self.dir)
            .and_then(|()| super::write_private_file(&path, text.as_bytes()))
            .map_err(|source| StoreError::Io {
                action: "write",
                path,
                source,
            })
    }

    /// Renames a stored tunnel; fails if `to` exists.
    pub fn rename(&self, from: &TunnelName, to: &TunnelName) -> Result<(), StoreError> {
        if !self.exists(from) {
            return Err(StoreError::NotFound(from.to_string()));
        }
        if self.exists(to) {
            return Err(StoreError::Exists(to.to_string()));
        }
        std::fs::rename(self.path(from), self.path(to)).map_err(|source| StoreError::Io {
            action: "rename",
            path: self.path(from),
            source,
        })
    }

    /// Deletes a stored tunnel; succeeds if it was not there.
    pub fn delete(&self, name: &TunnelName) -> Result<(), StoreError> {
        match std::fs::remove_file(self.path(name)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                action: "delete",
                path: self.path(name),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::TempDir;
    use warren_proto::key::PrivateKey;

    fn name(s: &str) -> TunnelName {
        TunnelName::new(s).unwrap()
    }

    fn config(key: &PrivateKey) -> TunnelConfig {
        crate::conf::parse_with_key(
            "[Interface]\nAddress = 198.18.100.2/24\n[Peer]\n\
             PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
             AllowedIPs = 198.18.200.0/24\n",
            key,
        )
        .unwrap()
        .0
    }

    #[test]
    fn the_private_key_never_reaches_the_file() {
        let dir = TempDir::new("tunnels-key");
        let store = TunnelStore::new(dir.path().join("tunnels"));
        let key = PrivateKey::generate();
        store.write(&name("home"), &config(&key)).unwrap();
        let on_disk = std::fs::read_to_string(store.dir().join("home.conf")).unwrap();
        assert!(!on_disk.contains(&key.to_base64()), "{on_disk}");
        assert!(!on_disk.to_lowercase().contains("privatekey"), "{on_disk}");
        let back = crate::conf::parse_with_key(&store.read_text(&name("home")).unwrap(), &key)
            .unwrap()
            .0;
        assert_eq!(back, config(&key));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(store.dir().join("home.conf"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn list_rename_delete() {
        let dir = TempDir::new("tunnels-ops");
        let store = TunnelStore::new(dir.path().join("tunnels"));
        assert!(store.list().unwrap().is_empty(), "a missing dir is empty");
        let key = PrivateKey::generate();
        for n in ["b", "a", "c"] {
            store.write(&name(n), &config(&key)).unwrap();
        }
        std::fs::write(store.dir().join("not a tunnel.conf"), "").unwrap();
        std::fs::write(store.dir().join("notes.txt"), "").unwrap();
        assert_eq!(store.list().unwrap(), [name("a"), name("b"), name("c")]);

        store.rename(&name("a"), &name("d")).unwrap();
        assert!(matches!(
            store.rename(&name("b"), &name("c")),
            Err(StoreError::Exists(n)) if n == "c"
        ));
        assert!(matches!(
            store.rename(&name("zz"), &name("y")),
            Err(StoreError::NotFound(_))
        ));
        store.delete(&name("b")).unwrap();
        store.delete(&name("b")).unwrap();
        assert_eq!(store.list().unwrap(), [name("c"), name("d")]);
        assert!(matches!(
            store.read_text(&name("b")),
            Err(StoreError::NotFound(_))
        ));
    }
}
