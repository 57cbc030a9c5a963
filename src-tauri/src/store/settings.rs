//! `<config dir>/settings.json`: the app's preferences and each stored tunnel's options.
//!
//! Start-at-login is not here: the OS's own autostart entry is the truth for that (see
//! `app.rs`). A settings file that does not parse is reported and left untouched until the next
//! change, so a typo made by hand is never silently thrown away without a word in the log.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use warren_proto::ipc::TunnelOptions;

/// Where private keys go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretBackend {
    /// The OS keyring.
    #[default]
    Keyring,
    /// Key files; chosen explicitly by the user after a warning.
    File,
}

/// The contents of `settings.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The tunnel the tray toggles.
    pub last_used: Option<String>,
    /// Connect `last_used` when the app starts.
    pub connect_on_launch: bool,
    /// Where private keys go.
    pub secret_backend: SecretBackend,
    /// Options of stored tunnels, by name.
    pub tunnel_options: BTreeMap<String, TunnelOptions>,
}

/// Why the settings could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Reading or writing failed.
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        /// read or write.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid settings JSON.
    #[error("{} is not valid: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        #[source]
        source: serde_json::Error,
    },
}

impl Settings {
    /// Reads `path`; a missing file is the defaults.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| SettingsError::Parse {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(SettingsError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), SettingsError> {
        let io = |source| SettingsError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        };
        // Serializing plain data cannot fail.
        let json = serde_json::to_vec_pretty(self).unwrap_or_default();
        if let Some(dir) = path.parent() {
            super::create_private_dir(dir).map_err(io)?;
        }
        super::write_private_file(path, &json).map_err(io)
    }

    /// Moves everything known about tunnel `from` to `to`.
    pub fn rename_tunnel(&mut self, from: &str, to: &str) {
        if let Some(options) = self.tunnel_options.remove(from) {
            self.tunnel_options.insert(to.to_owned(), options);
        }
        if self.last_used.as_deref() == Some(from) {
            self.last_used = Some(to.to_owned());
        }
    }

    /// Forgets tunnel `name`.
    pub fn remove_tunnel(&mut self, name: &str) {
        self.tunnel_options.remove(name);
        if self.last_used.as_deref() == Some(name) {
            self.last_used = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::TempDir;
    use warren_proto::ipc::KillSwitch;

    #[test]
    fn round_trip_defaults_and_renames() {
        let dir = TempDir::new("settings");
        let path = dir.path().join("cfg/settings.json");
        assert_eq!(Settings::load(&path).unwrap(), Settings::default());
        let mut settings = Settings {
            last_used: Some("home".into()),
            connect_on_launch: true,
            secret_backend: SecretBackend::File,
            tunnel_options: BTreeMap::new(),
        };
        settings.tunnel_options.insert(
            "home".into(),
            TunnelOptions {
                kill_switch: KillSwitch::On,
                allow_lan: true,
            },
        );
        settings.save(&path).unwrap();
        assert_eq!(Settings::load(&path).unwrap(), settings);

        settings.rename_tunnel("home", "work");
        assert_eq!(settings.last_used.as_deref(), Some("work"));
        assert!(settings.tunnel_options.contains_key("work"));
        settings.remove_tunnel("work");
        assert_eq!(settings.last_used, None);
        assert!(settings.tunnel_options.is_empty());

        // Fields added later default; a broken file says where.
        std::fs::write(&path, r#"{"connect_on_launch": true}"#).unwrap();
        assert!(Settings::load(&path).unwrap().connect_on_launch);
        std::fs::write(&path, "{nope").unwrap();
        let error = Settings::load(&path).unwrap_err().to_string();
        assert!(error.contains("settings.json is not valid"), "{error}");
    }
}
