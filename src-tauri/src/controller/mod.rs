//! The controller: the one owner of the IPC client, the mirror of the helper's state, and the
//! user's stored tunnels. Tauri commands, the tray and the notifications only call it and listen
//! to it; nothing else talks to the helper.
//!
//! Here: [`Controller`], its configuration and the requests that go to the helper (connect,
//! disconnect, options, logs). Its parts: the connection loop that connects, subscribes,
//! resyncs, mirrors events and reconnects with backoff ([`connection`]); the pure picture of the
//! world that becomes a [`Snapshot`] ([`mirror`]); the user's stored tunnels and where their keys
//! go ([`library`]); the local demo the app may offer ([`demo`]). Its tests run against the fake
//! helper (`crate::fake_helper`), in memory.
//!
//! Every change is published on a broadcast channel as an [`Update`] (a whole [`Snapshot`], a
//! state [`Transition`] for notifications, or a log line), which the Tauri layer forwards to the
//! window, the tray and the notifier.
//!
//! Locking: three `std::sync::Mutex`es, each around one thing — the [`Mirror`], the current IPC
//! client (an `Arc`, cloned out before a request) and where keys go (the key store, cloned out
//! before a keyring call). None is held across an `.await` or a keyring call.

pub mod connection;
pub mod demo;
pub mod library;
pub mod mirror;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use warren_proto::ipc::{Client, ClientError, Request, Response, TunnelName};

use crate::model::{
    LogLineView, OptionsView, PendingRequest, SecretsStatus, Snapshot, UiError, UiErrorKind,
};
use crate::store::secrets::{FileStore, SecretStore};
use crate::store::settings::{SecretBackend, Settings};
use crate::store::tunnels::TunnelStore;
pub use mirror::{Mirror, Transition, HISTORY_SECS};

/// Something the window, tray or notifier should know.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The whole picture, after any change.
    Snapshot(Box<Snapshot>),
    /// The helper reported a state change.
    Transition(Transition),
    /// A new helper log line.
    Log(LogLineView),
}

/// A boxed future, for [`Connector`].
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// How the controller reaches the helper: the real socket, or a fake in tests.
pub trait Connector: Send + Sync + 'static {
    /// Opens a connection and exchanges hellos.
    fn connect(&self) -> BoxFuture<Result<Client, ClientError>>;
}

/// The helper's real socket (or pipe).
#[derive(Debug, Clone)]
pub struct SocketConnector {
    /// Where the helper listens.
    pub path: PathBuf,
    /// Who we are, for the helper's log.
    pub client_name: String,
}

impl Connector for SocketConnector {
    fn connect(&self) -> BoxFuture<Result<Client, ClientError>> {
        let path = self.path.clone();
        let name = self.client_name.clone();
        Box::pin(async move { warren_proto::ipc::connect(&path, &name).await })
    }
}

/// Milliseconds since the Unix epoch, for throughput samples.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock as a [`Clock`].
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    })
}

/// What the controller is built from.
pub struct ControllerConfig {
    /// The app's config dir: `tunnels/`, `keys/` (fallback only), `settings.json`.
    pub config_dir: PathBuf,
    /// The OS keyring (a test double in tests).
    pub keyring: Arc<dyn SecretStore>,
    /// First wait before reconnecting; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest wait between reconnection attempts.
    pub reconnect_max: Duration,
    /// Stamps throughput samples.
    pub clock: Clock,
}

impl ControllerConfig {
    /// The defaults for the app: reconnect after 0.5 s, backing off to 5 s.
    pub fn new(config_dir: PathBuf, keyring: Arc<dyn SecretStore>) -> Self {
        Self {
            config_dir,
            keyring,
            reconnect_min: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(5),
            clock: system_clock(),
        }
    }
}

/// Where keys go now, and the store that puts them there.
struct Secrets {
    store: Option<Arc<dyn SecretStore>>,
}

pub(crate) struct Inner {
    mirror: Mutex<Mirror>,
    client: Mutex<Option<Arc<Client>>>,
    secrets: Mutex<Secrets>,
    keyring: Arc<dyn SecretStore>,
    tunnels: TunnelStore,
    key_dir: PathBuf,
    settings_path: PathBuf,
    updates: broadcast::Sender<Update>,
    retry: Notify,
    launched: AtomicBool,
    reconnect_min: Duration,
    reconnect_max: Duration,
    clock: Clock,
}

/// The controller; cheap to clone (all clones share one state).
#[derive(Clone)]
pub struct Controller {
    pub(crate) inner: Arc<Inner>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A tunnel name from the webview, checked.
pub(crate) fn tunnel_name(name: &str) -> Result<TunnelName, UiError> {
    TunnelName::new(name).map_err(|e| UiError::new(UiErrorKind::InvalidName, e.to_string()))
}

impl Controller {
    /// Loads the settings and the stored tunnels and decides where keys go (the keyring if it
    /// answers; the key files only if the user chose them earlier). Does not contact the
    /// helper: spawn [`Controller::run`] for that.
    pub fn new(config: ControllerConfig) -> Self {
        let settings_path = config.config_dir.join("settings.json");
        let settings = Settings::load(&settings_path).unwrap_or_else(|e| {
            tracing::warn!("{e}; using the default settings until the next change");
            Settings::default()
        });
        let key_dir = config.config_dir.join("keys");
        let (updates, _) = broadcast::channel(256);
        let inner = Arc::new(Inner {
            mirror: Mutex::new(Mirror::new(
                settings,
                SecretsStatus::Unavailable {
                    reason: "not checked yet".into(),
                },
            )),
            client: Mutex::new(None),
            secrets: Mutex::new(Secrets { store: None }),
            keyring: config.keyring,
            tunnels: TunnelStore::new(config.config_dir.join("tunnels")),
            key_dir,
            settings_path,
            updates,
            retry: Notify::new(),
            launched: AtomicBool::new(false),
            reconnect_min: config.reconnect_min,
            reconnect_max: config.reconnect_max,
            clock: config.clock,
        });
        let controller = Controller { inner };
        controller.choose_secret_store();
        controller.reload_stored();
        controller
    }

    /// Receives every [`Update`] from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Update> {
        self.inner.updates.subscribe()
    }

    /// The current picture.
    pub fn snapshot(&self) -> Snapshot {
        lock(&self.inner.mirror).snapshot()
    }

    /// The helper's recent log lines, oldest first.
    pub fn logs(&self) -> Vec<LogLineView> {
        lock(&self.inner.mirror).logs.iter().cloned().collect()
    }

    /// Stops waiting between reconnection attempts and tries now.
    pub fn retry_now(&self) {
        self.inner.retry.notify_one();
    }

    /// Records whether the OS starts the app at login (the autostart entry is the truth).
    pub fn note_start_at_login(&self, enabled: bool) {
        self.with_mirror(|m| m.start_at_login = enabled);
    }

    /// Connect the last-used tunnel when the app starts.
    pub fn set_connect_on_launch(&self, enabled: bool) -> Result<(), UiError> {
        self.update_settings(|s| s.connect_on_launch = enabled)
    }

    /// Changes the mirror and publishes the new snapshot.
    pub(crate) fn with_mirror<T>(&self, change: impl FnOnce(&mut Mirror) -> T) -> T {
        let (result, snapshot) = {
            let mut mirror = lock(&self.inner.mirror);
            let result = change(&mut mirror);
            (result, mirror.snapshot())
        };
        self.publish(Update::Snapshot(Box::new(snapshot)));
        result
    }

    pub(crate) fn publish(&self, update: Update) {
        // No receiver is fine: nobody is listening yet.
        let _ = self.inner.updates.send(update);
    }

    /// Changes the settings, saves them, and publishes.
    pub(crate) fn update_settings(
        &self,
        change: impl FnOnce(&mut Settings),
    ) -> Result<(), UiError> {
        let settings = self.with_mirror(|m| {
            change(&mut m.settings);
            m.settings.clone()
        });
        settings
            .save(&self.inner.settings_path)
            .map_err(|e| UiError::new(UiErrorKind::Io, e.to_string()))
    }

    // -----------------------------------------------------------------------------------------
    // Where keys go
    // -----------------------------------------------------------------------------------------

    /// Picks the key store from the settings and a keyring probe.
    fn choose_secret_store(&self) {
        let backend = lock(&self.inner.mirror).settings.secret_backend;
        let (store, status): (Option<Arc<dyn SecretStore>>, SecretsStatus) = match backend {
            SecretBackend::File => {
                let store = FileStore::new(&self.inner.key_dir);
                let status = SecretsStatus::File {
                    path: self.inner.key_dir.display().to_string(),
                };
                (Some(Arc::new(store)), status)
            }
            SecretBackend::Keyring => match self.inner.keyring.probe() {
                Ok(()) => (
                    Some(Arc::clone(&self.inner.keyring)),
                    SecretsStatus::Keyring {
                        backend: self.inner.keyring.describe(),
                    },
                ),
                Err(reason) => {
                    tracing::warn!("no keyring is available: {reason}");
                    (None, SecretsStatus::Unavailable { reason })
                }
            },
        };
        lock(&self.inner.secrets).store = store;
        self.with_mirror(|m| m.secrets = status);
    }

    /// Checks the keyring again (after the user started one) and uses it if it answers.
    pub fn retry_keyring(&self) -> Result<(), UiError> {
        let _ = self.update_settings(|s| s.secret_backend = SecretBackend::Keyring);
        self.choose_secret_store();
        self.reload_stored();
        self.secret_store().map(drop)
    }

    /// The user accepted the warning: keep keys in files only they can read, unencrypted.
    /// Keys already in the keyring stay there and are not copied.
    pub fn use_key_files(&self) -> Result<(), UiError> {
        self.update_settings(|s| s.secret_backend = SecretBackend::File)?;
        self.choose_secret_store();
        self.reload_stored();
        Ok(())
    }

    /// The key store in use, or a plain explanation of why there is none.
    pub(crate) fn secret_store(&self) -> Result<Arc<dyn SecretStore>, UiError> {
        if let Some(store) = &lock(&self.inner.secrets).store {
            return Ok(Arc::clone(store));
        }
        let reason = match &lock(&self.inner.mirror).secrets {
            SecretsStatus::Unavailable { reason } => reason.clone(),
            _ => "unknown".into(),
        };
        Err(UiError::new(
            UiErrorKind::Secrets,
            format!(
                "no keyring is available to keep private keys ({reason}). Start your desktop's \
                 keyring (for example GNOME Keyring or KWallet) and choose \"Check again\", or \
                 choose to keep keys in files in Settings."
            ),
        ))
    }

    // -----------------------------------------------------------------------------------------
    // Requests to the helper
    // -----------------------------------------------------------------------------------------

    fn client(&self) -> Result<Arc<Client>, UiError> {
        lock(&self.inner.client).clone().ok_or_else(|| {
            let status = lock(&self.inner.mirror).helper.clone();
            UiError::new(
                UiErrorKind::HelperUnavailable,
                format!(
                    "the helper is not reachable ({}); nothing was changed",
                    crate::notify::helper_summary(&status)
                ),
            )
        })
    }

    /// Sends `request` about tunnel `name`, showing `pending` meanwhile and recording a failure.
    async fn tunnel_request(
        &self,
        name: &TunnelName,
        pending: Option<PendingRequest>,
        request: Request,
    ) -> Result<Response, UiError> {
        let client = self.client()?;
        let key = name.to_string();
        self.with_mirror(|m| {
            let activity = m.activity_mut(&key);
            activity.pending = pending;
            activity.last_error = None;
        });
        let result = client.request(request).await;
        self.with_mirror(|m| {
            let activity = m.activity_mut(&key);
            if pending.is_some() {
                activity.pending = None;
            }
            if let Err(e) = &result {
                activity.last_error = Some(e.message.clone());
            }
        });
        result.map_err(UiError::from)
    }

    /// Brings tunnel `name` up: a stored tunnel goes to the helper with its key from the key
    /// store and its options; any other name is a system tunnel. Returns once the helper has
    /// accepted the request; the state follows as events.
    pub async fn connect(&self, name: &str) -> Result<(), UiError> {
        let name = tunnel_name(name)?;
        let request = if self.inner.tunnels.exists(&name) {
            let store = self.secret_store()?;
            let tunnels = self.inner.tunnels.clone();
            let key_name = name.clone();
            let config = tokio::task::spawn_blocking(move || {
                library::load_config(&tunnels, store.as_ref(), &key_name)
            })
            .await
            .map_err(|e| {
                UiError::new(UiErrorKind::Io, format!("failed to load the tunnel: {e}"))
            })??;
            let options = lock(&self.inner.mirror).stored_options(name.as_str());
            Request::ConnectUser {
                name: name.clone(),
                config,
                options,
            }
        } else {
            Request::ConnectSystem { name: name.clone() }
        };
        let remembered = name.to_string();
        if let Err(e) = self.update_settings(|s| s.last_used = Some(remembered)) {
            // Forgetting which tunnel was last used is no reason not to connect it.
            tracing::warn!("{e}");
        }
        self.tunnel_request(&name, Some(PendingRequest::Connect), request)
            .await
            .map(drop)
    }

    /// Takes tunnel `name` down.
    pub async fn disconnect(&self, name: &str) -> Result<(), UiError> {
        let name = tunnel_name(name)?;
        let request = Request::Disconnect { name: name.clone() };
        self.tunnel_request(&name, Some(PendingRequest::Disconnect), request)
            .await
            .map(drop)
    }

    /// The tray's one click: disconnect the last-used tunnel if it is up, else connect it.
    pub async fn toggle_last_used(&self) -> Result<(), UiError> {
        let (name, state) = {
            let mirror = lock(&self.inner.mirror);
            let name = mirror
                .settings
                .last_used
                .clone()
                .filter(|n| mirror.names().contains(n))
                .or_else(|| match mirror.names().as_slice() {
                    [only] => Some(only.clone()),
                    _ => None,
                })
                .ok_or_else(|| {
                    UiError::new(
                        UiErrorKind::NotFound,
                        "no tunnel has been used yet: choose one in the tunnel list",
                    )
                })?;
            let state = mirror.state_of(&name);
            (name, state)
        };
        match state {
            crate::model::StateView::Unknown => Err(self.client().err().unwrap_or_else(|| {
                UiError::new(
                    UiErrorKind::HelperUnavailable,
                    "the helper is not reachable",
                )
            })),
            s if s.is_up() => self.disconnect(&name).await,
            _ => self.connect(&name).await,
        }
    }

    /// Sets a tunnel's options: saved for stored tunnels, and sent to the helper if it knows
    /// the tunnel (it is up, or it is a system tunnel).
    pub async fn set_options(&self, name: &str, options: OptionsView) -> Result<(), UiError> {
        let name = tunnel_name(name)?;
        let options = warren_proto::ipc::TunnelOptions::from(options);
        if self.inner.tunnels.exists(&name) {
            let key = name.to_string();
            self.update_settings(|s| {
                s.tunnel_options.insert(key, options);
            })?;
        }
        let known = lock(&self.inner.mirror)
            .helper_tunnels
            .contains_key(name.as_str());
        if known {
            let request = Request::SetOptions {
                name: name.clone(),
                options,
            };
            self.tunnel_request(&name, None, request).await?;
            self.with_mirror(|m| {
                if let Some(t) = m.helper_tunnels.get_mut(name.as_str()) {
                    t.options = options;
                }
            });
        }
        Ok(())
    }

    /// Re-reads the stored tunnels and their public keys.
    pub(crate) fn reload_stored(&self) {
        let names = self.inner.tunnels.list().unwrap_or_else(|e| {
            tracing::warn!("{e}");
            Vec::new()
        });
        let store = lock(&self.inner.secrets).store.clone();
        let stored = names
            .into_iter()
            .map(|name| {
                let public_key = store
                    .as_ref()
                    .and_then(|s| s.get(name.as_str()).ok())
                    .map(|k| k.public_key().to_string());
                (name.to_string(), mirror::StoredTunnel { public_key })
            })
            .collect();
        self.with_mirror(|m| m.stored = stored);
    }

    /// The directory of stored tunnels.
    pub fn tunnel_dir(&self) -> &Path {
        self.inner.tunnels.dir()
    }
}

impl From<warren_proto::ipc::TunnelNameError> for UiError {
    fn from(e: warren_proto::ipc::TunnelNameError) -> Self {
        UiError::new(UiErrorKind::InvalidName, e.to_string())
    }
}
