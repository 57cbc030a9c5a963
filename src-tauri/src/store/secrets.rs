//! Where the private keys of the user's tunnels live: the OS keyring, or — only when the user
//! explicitly accepts it after a warning — a file only they can read.
//!
//! [`SecretStore`] is the seam: [`KeyringStore`] is the real thing (Secret Service on Linux,
//! Keychain on macOS, Credential Manager on Windows, through the `keyring` crate; keyutils on
//! Linux for headless tests), [`FileStore`] the warned fallback, [`MemoryStore`] the test double.
//! One entry per tunnel: service [`KEYRING_SERVICE`], account = the tunnel's name, secret = the
//! base64 private key. Keys never appear in errors or logs.
//!
//! Why a probe and not just trying: a missing keyring (no Secret Service on the session bus, a
//! locked collection nobody can unlock) must be said plainly *before* the user imports a tunnel,
//! so [`KeyringStore::probe`] looks up an entry that does not exist: "no entry" means the keyring
//! answers; anything else means it does not.

use std::path::{Path, PathBuf};
use warren_proto::key::PrivateKey;
use zeroize::Zeroizing;

/// The keyring service name of every Warren entry.
pub const KEYRING_SERVICE: &str = "net.warren.desktop";

/// Why a secret could not be read, written or deleted.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// There is no key for this tunnel.
    #[error("no private key for tunnel '{tunnel}' in {store}")]
    Missing {
        /// The tunnel.
        tunnel: String,
        /// Which store, for the message.
        store: String,
    },
    /// The stored value is not a key (edited by hand, or another program's entry).
    #[error("the private key stored for tunnel '{tunnel}' in {store} is not a WireGuard key")]
    Corrupt {
        /// The tunnel.
        tunnel: String,
        /// Which store.
        store: String,
    },
    /// The store failed.
    #[error("failed to {action} the private key of tunnel '{tunnel}' in {store}: {cause}")]
    Store {
        /// read, store, delete.
        action: &'static str,
        /// The tunnel.
        tunnel: String,
        /// Which store.
        store: String,
        /// The store's own error, which never holds the key.
        cause: String,
    },
}

/// A place for private keys, keyed by tunnel name.
pub trait SecretStore: Send + Sync {
    /// For messages and the settings view: "the Secret Service keyring", "…/keys".
    fn describe(&self) -> String;
    /// The key of `tunnel`.
    fn get(&self, tunnel: &str) -> Result<PrivateKey, SecretError>;
    /// Stores (or replaces) the key of `tunnel`.
    fn set(&self, tunnel: &str, key: &PrivateKey) -> Result<(), SecretError>;
    /// Forgets the key of `tunnel`; succeeds if there was none.
    fn delete(&self, tunnel: &str) -> Result<(), SecretError>;
    /// Whether the store answers at all; `Err` says why not, for the user.
    fn probe(&self) -> Result<(), String> {
        Ok(())
    }
}

fn decode(tunnel: &str, store: String, text: &str) -> Result<PrivateKey, SecretError> {
    text.parse().map_err(|_| SecretError::Corrupt {
        tunnel: tunnel.to_owned(),
        store,
    })
}

// ---------------------------------------------------------------------------------------------
// The OS keyring
// ---------------------------------------------------------------------------------------------

/// Which keyring implementation [`KeyringStore`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringBackend {
    /// The platform's keyring: Secret Service (Linux), Keychain, Credential Manager.
    Native,
    /// Linux kernel keyutils (the session keyring; not persistent across logins), for tests on
    /// machines without a desktop session.
    #[cfg(target_os = "linux")]
    KeyUtils,
}

/// The OS keyring.
#[derive(Debug, Clone)]
pub struct KeyringStore {
    service: String,
    backend: KeyringBackend,
}

impl KeyringStore {
    /// Entries under `service` (normally [`KEYRING_SERVICE`]; tests use their own).
    pub fn new(service: impl Into<String>, backend: KeyringBackend) -> Self {
        Self {
            service: service.into(),
            backend,
        }
    }

    /// The platform keyring under [`KEYRING_SERVICE`].
    pub fn native() -> Self {
        Self::new(KEYRING_SERVICE, KeyringBackend::Native)
    }

    fn entry(&self, tunnel: &str) -> keyring::Result<keyring::Entry> {
        match self.backend {
            KeyringBackend::Native => keyring::Entry::new(&self.service, tunnel),
            #[cfg(target_os = "linux")]
            KeyringBackend::KeyUtils => {
                keyring::keyutils::KeyutilsCredential::new_with_target(None, &self.service, tunnel)
                    .map(|c| keyring::Entry::new_with_credential(Box::new(c)))
            }
        }
    }

    fn failed(&self, action: &'static str, tunnel: &str, e: keyring::Error) -> SecretError {
        SecretError::Store {
            action,
            tunnel: tunnel.to_owned(),
            store: self.describe(),
            cause: e.to_string(),
        }
    }
}

impl SecretStore for KeyringStore {
    /// Looks up an entry that does not exist: "no entry" means the keyring answers.
    fn probe(&self) -> Result<(), String> {
        let entry = self
            .entry("warren-keyring-probe")
            .map_err(|e| e.to_string())?;
        match entry.get_password() {
            Ok(_) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    fn describe(&self) -> String {
        match self.backend {
            KeyringBackend::Native if cfg!(target_os = "macos") => "the macOS Keychain".into(),
            KeyringBackend::Native if cfg!(windows) => "the Windows Credential Manager".into(),
            KeyringBackend::Native => "the Secret Service keyring".into(),
            #[cfg(target_os = "linux")]
            KeyringBackend::KeyUtils => "the kernel session keyring".into(),
        }
    }

    fn get(&self, tunnel: &str) -> Result<PrivateKey, SecretError> {
        let entry = self
            .entry(tunnel)
            .map_err(|e| self.failed("read", tunnel, e))?;
        match entry.get_password() {
            Ok(text) => decode(tunnel, self.describe(), &Zeroizing::new(text)),
            Err(keyring::Error::NoEntry) => Err(SecretError::Missing {
                tunnel: tunnel.to_owned(),
                store: self.describe(),
            }),
            Err(e) => Err(self.failed("read", tunnel, e)),
        }
    }

    fn set(&self, tunnel: &str, key: &PrivateKey) -> Result<(), SecretError> {
        let entry = self
            .entry(tunnel)
            .map_err(|e| self.failed("store", tunnel, e))?;
        let text = Zeroizing::new(key.to_base64());
        entry
            .set_password(&text)
            .map_err(|e| self.failed("store", tunnel, e))
    }

    fn delete(&self, tunnel: &str) -> Result<(), SecretError> {
        let entry = self
            .entry(tunnel)
            .map_err(|e| self.failed("delete", tunnel, e))?;
        match entry.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(self.failed("delete", tunnel, e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The warned fallback: one file per key
// ---------------------------------------------------------------------------------------------

/// Keys in `<dir>/<tunnel>.key`, mode 0600 in a 0700 directory, unencrypted. Only used after the
/// user accepted the warning that anyone who can read their files (or a backup) gets the keys.
#[derive(Debug, Clone)]
pub struct FileStore {
    dir: PathBuf,
}

impl FileStore {
    /// Keys under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, tunnel: &str) -> PathBuf {
        self.dir.join(format!("{tunnel}.key"))
    }

    fn failed(&self, action: &'static str, tunnel: &str, e: std::io::Error) -> SecretError {
        SecretError::Store {
            action,
            tunnel: tunnel.to_owned(),
            store: self.describe(),
            cause: e.to_string(),
        }
    }
}

impl SecretStore for FileStore {
    fn describe(&self) -> String {
        format!("the key files in {}", self.dir.display())
    }

    fn get(&self, tunnel: &str) -> Result<PrivateKey, SecretError> {
        match std::fs::read_to_string(self.path(tunnel)) {
            Ok(text) => decode(tunnel, self.describe(), Zeroizing::new(text).trim()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SecretError::Missing {
                tunnel: tunnel.to_owned(),
                store: self.describe(),
            }),
            Err(e) => Err(self.failed("read", tunnel, e)),
        }
    }

    fn set(&self, tunnel: &str, key: &PrivateKey) -> Result<(), SecretError> {
        crate::store::create_private_dir(&self.dir).map_err(|e| self.failed("store", tunnel, e))?;
        let text = Zeroizing::new(format!("{}\n", key.to_base64()));
        crate::store::write_private_file(&self.path(tunnel), text.as_bytes())
            .map_err(|e| self.failed("store", tunnel, e))
    }

    fn delete(&self, tunnel: &str) -> Result<(), SecretError> {
        match std::fs::remove_file(self.path(tunnel)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.failed("delete", tunnel, e)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// In memory, for tests
// ---------------------------------------------------------------------------------------------

/// Keys in memory; for tests. `fail` makes every call fail, like a locked keyring.
#[derive(Debug, Default)]
pub struct MemoryStore {
    keys: std::sync::Mutex<std::collections::HashMap<String, PrivateKey>>,
    /// When set, every call fails with this cause.
    pub fail: std::sync::Mutex<Option<String>>,
}

impl MemoryStore {
    fn check(&self, action: &'static str, tunnel: &str) -> Result<(), SecretError> {
        match &*self.fail.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(cause) => Err(SecretError::Store {
                action,
                tunnel: tunnel.to_owned(),
                store: self.describe(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// True when it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl SecretStore for MemoryStore {
    fn probe(&self) -> Result<(), String> {
        match &*self.fail.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(cause) => Err(cause.clone()),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        "the in-memory test store".into()
    }

    fn get(&self, tunnel: &str) -> Result<PrivateKey, SecretError> {
        self.check("read", tunnel)?;
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tunnel)
            .cloned()
            .ok_or_else(|| SecretError::Missing {
                tunnel: tunnel.to_owned(),
                store: self.describe(),
            })
    }

    fn set(&self, tunnel: &str, key: &PrivateKey) -> Result<(), SecretError> {
        self.check("store", tunnel)?;
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tunnel.to_owned(), key.clone());
        Ok(())
    }

    fn delete(&self, tunnel: &str) -> Result<(), SecretError> {
        self.check("delete", tunnel)?;
        self.keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(tunnel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// set, get, replace, delete (twice), then get fails with Missing — for any store.
    fn round_trip(store: &dyn SecretStore, tunnel: &str) {
        let first = PrivateKey::generate();
        let second = PrivateKey::generate();
        store.set(tunnel, &first).unwrap();
        assert_eq!(store.get(tunnel).unwrap(), first);
        store.set(tunnel, &second).unwrap();
        assert_eq!(store.get(tunnel).unwrap(), second);
        store.delete(tunnel).unwrap();
        store.delete(tunnel).unwrap();
        let error = store.get(tunnel).unwrap_err();
        assert!(matches!(error, SecretError::Missing { .. }), "{error}");
        assert!(error.to_string().contains(tunnel), "{error}");
    }

    #[test]
    fn memory_store_round_trip() {
        round_trip(&MemoryStore::default(), "wg0");
    }

    #[test]
    fn file_store_round_trip_with_private_modes() {
        let dir = crate::store::tests::TempDir::new("file-store");
        let store = FileStore::new(dir.path().join("keys"));
        round_trip(&store, "home");
        let key = PrivateKey::generate();
        store.set("home", &key).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(store.dir()), 0o700);
            assert_eq!(mode(&store.dir().join("home.key")), 0o600);
        }
        std::fs::write(store.dir().join("bad.key"), "not a key").unwrap();
        let error = store.get("bad").unwrap_err();
        assert!(matches!(error, SecretError::Corrupt { .. }), "{error}");
    }

    #[test]
    fn errors_never_hold_the_key() {
        let store = MemoryStore::default();
        *store.fail.lock().unwrap() = Some("the collection is locked".into());
        let key = PrivateKey::generate();
        let error = store.set("wg0", &key).unwrap_err().to_string();
        assert!(!error.contains(&key.to_base64()), "{error}");
        assert_eq!(
            error,
            "failed to store the private key of tunnel 'wg0' in the in-memory test store: \
             the collection is locked"
        );
    }

    /// The real keyring, end to end. Needs a keyring: run it with
    /// `keyctl session - cargo test -p warren-app -- --ignored keyring` for keyutils
    /// (`WARREN_KEYRING_TEST=keyutils`), or inside `dbus-run-session` with an unlocked
    /// gnome-keyring for Secret Service (`WARREN_KEYRING_TEST=secret-service`);
    /// `tests/gui/run.sh keyring` does both.
    #[test]
    #[ignore = "needs a keyring; run by tests/gui/run.sh keyring"]
    fn keyring_round_trip() {
        let backend = match std::env::var("WARREN_KEYRING_TEST").as_deref() {
            Ok("secret-service") => KeyringBackend::Native,
            #[cfg(target_os = "linux")]
            Ok("keyutils") => KeyringBackend::KeyUtils,
            other => panic!(
                "set WARREN_KEYRING_TEST to secret-service or keyutils (got {other:?}); \
                 see this test's doc comment"
            ),
        };
        let store = KeyringStore::new(
            format!("{KEYRING_SERVICE}.test-{}", std::process::id()),
            backend,
        );
        store.probe().unwrap();
        round_trip(&store, "wg0");
        round_trip(&store, "other.tunnel");
    }
}
