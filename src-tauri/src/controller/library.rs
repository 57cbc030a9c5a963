//! The user's stored tunnels: import, create, edit, rename, delete, export.
//!
//! Each tunnel is two halves that must move together: the text in the [`TunnelStore`] and the
//! private key in the key store. Every operation validates everything first (bad input changes
//! nothing), then writes the key, then the text, and undoes the key if the text fails, so a
//! failure never leaves a tunnel without its key or a key without its tunnel.
//!
//! These functions block (files, and the keyring's D-Bus calls): the Tauri commands run them on
//! the blocking pool.

use std::path::{Path, PathBuf};

use warren_proto::config::{parse, TunnelConfig};
use warren_proto::ipc::TunnelName;
use warren_proto::key::PrivateKey;
use zeroize::Zeroizing;

use super::{lock, tunnel_name, Controller};
use crate::conf::{self, KeySource};
use crate::model::{Diagnostic, ImportOutcome, TunnelText, UiError, UiErrorKind};
use crate::store::secrets::{SecretError, SecretStore};
use crate::store::tunnels::{StoreError, TunnelStore};

impl From<StoreError> for UiError {
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::NotFound(_) => UiErrorKind::NotFound,
            StoreError::Exists(_) => UiErrorKind::Exists,
            StoreError::Io { .. } => UiErrorKind::Io,
        };
        UiError::new(kind, e.to_string())
    }
}

impl From<SecretError> for UiError {
    fn from(e: SecretError) -> Self {
        UiError::new(UiErrorKind::Secrets, e.to_string())
    }
}

impl From<conf::TextError> for UiError {
    fn from(e: conf::TextError) -> Self {
        UiError {
            kind: UiErrorKind::InvalidConfig,
            message: e.to_string(),
            line: e.line.and_then(|l| u32::try_from(l).ok()),
        }
    }
}

/// A stored tunnel's full configuration, its key from `secrets`.
pub fn load_config(
    tunnels: &TunnelStore,
    secrets: &dyn SecretStore,
    name: &TunnelName,
) -> Result<TunnelConfig, UiError> {
    let text = tunnels.read_text(name)?;
    let key = secrets.get(name.as_str())?;
    conf::parse_with_key(&text, &key)
        .map(|(config, _)| config)
        .map_err(|e| {
            UiError::new(
                UiErrorKind::InvalidConfig,
                format!(
                    "the stored tunnel '{name}' ({}) no longer parses: {e}",
                    tunnels.dir().join(format!("{name}.conf")).display()
                ),
            )
        })
}

impl Controller {
    /// Stores a new tunnel: key first, then text; the key is removed again if the text fails.
    fn add(&self, name: &TunnelName, config: &TunnelConfig) -> Result<(), UiError> {
        let store = self.secret_store()?;
        if self.inner.tunnels.exists(name) {
            return Err(StoreError::Exists(name.to_string()).into());
        }
        store.set(name.as_str(), &config.interface.private_key)?;
        if let Err(e) = self.inner.tunnels.write(name, config) {
            if let Err(undo) = store.delete(name.as_str()) {
                tracing::warn!("{undo}");
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// Imports wg-quick `.conf` files, each on its own: the tunnel is named after the file
    /// (`office.conf` → `office`). One outcome per file, in order.
    pub fn import_files(&self, files: &[PathBuf]) -> Vec<ImportOutcome> {
        let outcomes: Vec<ImportOutcome> = files
            .iter()
            .map(|file| {
                let result = self.import_file(file);
                ImportOutcome {
                    file: file.display().to_string(),
                    imported: result.as_ref().ok().map(ToString::to_string),
                    error: result.err(),
                }
            })
            .collect();
        self.reload_stored();
        outcomes
    }

    fn import_file(&self, file: &Path) -> Result<TunnelName, UiError> {
        let name = TunnelName::from_conf_path(file).map_err(|e| {
            UiError::new(
                UiErrorKind::InvalidName,
                format!(
                    "{}: {e}; rename the file (the tunnel is named after it) and import it again",
                    file.display()
                ),
            )
        })?;
        let text = std::fs::read_to_string(file)
            .map(Zeroizing::new)
            .map_err(|e| {
                UiError::new(
                    UiErrorKind::Io,
                    format!("failed to read {}: {e}", file.display()),
                )
            })?;
        let config = parse(&text, Some(file)).map_err(|e| UiError {
            kind: UiErrorKind::InvalidConfig,
            message: e.to_string(),
            line: e.line().and_then(|l| u32::try_from(l).ok()),
        })?;
        self.add(&name, &config)?;
        Ok(name)
    }

    /// Creates a tunnel with a fresh key pair; returns it for the editor (public key included).
    pub fn create_tunnel(&self, name: &str) -> Result<TunnelText, UiError> {
        let name = tunnel_name(name)?;
        let key = PrivateKey::generate();
        let config = conf::new_tunnel(&key)?;
        self.add(&name, &config)?;
        self.reload_stored();
        Ok(text_of(&name, &config))
    }

    /// A stored tunnel's text (without the private key) and public key.
    pub fn tunnel_text(&self, name: &str) -> Result<TunnelText, UiError> {
        let name = tunnel_name(name)?;
        let config = load_config(&self.inner.tunnels, self.secret_store()?.as_ref(), &name)?;
        Ok(text_of(&name, &config))
    }

    /// Checks an edited text with the helper's parser.
    pub fn validate_text(text: &str) -> Option<Diagnostic> {
        conf::validate(text)
    }

    /// Saves an edited text. If it has its own `PrivateKey` line, that key replaces the stored
    /// one. Returns the saved (canonical) text.
    pub fn save_text(&self, name: &str, text: &str) -> Result<TunnelText, UiError> {
        let name = tunnel_name(name)?;
        if !self.inner.tunnels.exists(&name) {
            return Err(StoreError::NotFound(name.to_string()).into());
        }
        let store = self.secret_store()?;
        let stored = store.get(name.as_str());
        let placeholder = PrivateKey::from_bytes([1; 32]);
        let (config, source) = conf::parse_with_key(text, stored.as_ref().unwrap_or(&placeholder))?;
        match source {
            KeySource::Stored => {
                stored?;
            }
            KeySource::Text => store.set(name.as_str(), &config.interface.private_key)?,
        }
        self.inner.tunnels.write(&name, &config)?;
        self.reload_stored();
        Ok(text_of(&name, &config))
    }

    fn refuse_if_up(&self, name: &TunnelName, what: &str) -> Result<(), UiError> {
        let state = lock(&self.inner.mirror).state_of(name.as_str());
        if state.is_up() || state == crate::model::StateView::Disconnecting {
            return Err(UiError::new(
                UiErrorKind::Helper,
                format!("disconnect '{name}' before you {what} it"),
            ));
        }
        Ok(())
    }

    /// Renames a stored tunnel (text, key and settings move together). Refused while it is up.
    pub fn rename_tunnel(&self, from: &str, to: &str) -> Result<(), UiError> {
        let from = tunnel_name(from)?;
        let to = tunnel_name(to)?;
        self.refuse_if_up(&from, "rename")?;
        let store = self.secret_store()?;
        if self.inner.tunnels.exists(&to) {
            return Err(StoreError::Exists(to.to_string()).into());
        }
        let key = store.get(from.as_str())?;
        store.set(to.as_str(), &key)?;
        if let Err(e) = self.inner.tunnels.rename(&from, &to) {
            if let Err(undo) = store.delete(to.as_str()) {
                tracing::warn!("{undo}");
            }
            return Err(e.into());
        }
        if let Err(e) = store.delete(from.as_str()) {
            tracing::warn!("renamed '{from}' to '{to}' but the old key stays behind: {e}");
        }
        let (old, new) = (from.to_string(), to.to_string());
        self.update_settings(|s| s.rename_tunnel(&old, &new))?;
        self.with_mirror(|m| {
            if let Some(activity) = m.activity.remove(&old) {
                m.activity.insert(new.clone(), activity);
            }
        });
        self.reload_stored();
        Ok(())
    }

    /// Deletes a stored tunnel and its key. Refused while it is up.
    pub fn delete_tunnel(&self, name: &str) -> Result<(), UiError> {
        let name = tunnel_name(name)?;
        self.refuse_if_up(&name, "delete")?;
        if !self.inner.tunnels.exists(&name) {
            return Err(StoreError::NotFound(name.to_string()).into());
        }
        let store = self.secret_store()?;
        self.inner.tunnels.delete(&name)?;
        let key_result = store.delete(name.as_str());
        let key = name.to_string();
        self.update_settings(|s| s.remove_tunnel(&key))?;
        self.with_mirror(|m| m.activity.remove(&key));
        self.reload_stored();
        key_result.map_err(|e| {
            UiError::new(
                UiErrorKind::Secrets,
                format!("deleted '{name}', but its private key could not be removed: {e}"),
            )
        })
    }

    /// Writes a stored tunnel's full wg-quick text, private key included, to `path` (mode 0600).
    pub fn export_tunnel(&self, name: &str, path: &Path) -> Result<(), UiError> {
        let name = tunnel_name(name)?;
        let config = load_config(&self.inner.tunnels, self.secret_store()?.as_ref(), &name)?;
        let text = Zeroizing::new(config.to_conf());
        crate::store::write_private_file(path, text.as_bytes()).map_err(|e| {
            UiError::new(
                UiErrorKind::Io,
                format!("failed to write {}: {e}", path.display()),
            )
        })
    }
}

fn text_of(name: &TunnelName, config: &TunnelConfig) -> TunnelText {
    TunnelText {
        name: name.to_string(),
        text: config.to_conf_without_private_key(),
        public_key: config.public_key().to_string(),
    }
}
