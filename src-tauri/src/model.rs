//! The GUI boundary: every type the webview receives from or sends to the backend, and their
//! conversions from `warren_proto`'s IPC types.
//!
//! Why a separate set of types and not the protocol's own: the UI needs a few things the
//! protocol has no business carrying (whether the helper is reachable at all, an `unknown` tunnel
//! state while it is not, the keyring's status, throughput history, a request in flight), and it
//! needs them in a shape TypeScript can use directly (keys as base64 strings, times as numbers).
//! The conversions below match the protocol's enums exhaustively, so a new protocol variant
//! fails to compile here instead of drifting silently.
//!
//! The TypeScript declarations in `ui/src/generated/bindings.ts` are generated from these types
//! by the test `bindings::the_checked_in_typescript_bindings_are_current` (ts-rs); run it with
//! `WARREN_BLESS_BINDINGS=1` to rewrite the file after changing a type. Nothing here is copied
//! by hand into TypeScript.
//!
//! Numbers: `u64` fields (bytes, Unix times) become TypeScript `number`; byte counters stay exact
//! up to 2^53 (9 PB), far beyond what one tunnel carries while it is up.

use serde::{Deserialize, Serialize};
use warren_proto::ipc::{
    DegradedReason, Health, IpcError, KillSwitch, LogLevel, LogLine, PeerStatus, TunnelKind,
    TunnelOptions, TunnelState,
};

/// Everything the main window shows, sent whole on every change (event `snapshot`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Snapshot {
    /// Whether the helper answers, and if not, what to do about it.
    pub helper: HelperStatus,
    /// Where private keys are kept, or why they cannot be.
    pub secrets: SecretsStatus,
    /// The user's own tunnels (stored by this app) and every tunnel the helper reports, by name.
    pub tunnels: Vec<TunnelView>,
    /// The tunnel the tray's one-click toggle acts on.
    pub last_used: Option<String>,
    /// The app's preferences.
    pub settings: SettingsView,
    /// The local demo the app was started to offer (`--offer-demo FILE`), until it is accepted.
    /// The UI shows it only while there is no tunnel at all.
    pub demo_offer: Option<DemoOfferView>,
}

/// The local demo on offer: a wg-quick file for a Warren peer in a network namespace on this
/// machine, written by `warren-helper demo --peer-only` (`scripts/run.sh` starts both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DemoOfferView {
    /// The file that would be imported.
    pub file: String,
    /// The tunnel's name once imported (the file's name without `.conf`).
    pub name: String,
}

/// The connection to the helper, as the controller last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum HelperStatus {
    /// The first connection attempt is under way.
    Connecting,
    /// Connected; tunnel states are live.
    Connected {
        /// The helper's release.
        version: String,
    },
    /// Nothing listens on the helper's socket: the service is not running.
    NotRunning {
        /// The socket or pipe path.
        socket: String,
        /// What to do, e.g. "start it with `systemctl start warren-helper`".
        advice: String,
    },
    /// The socket exists but this user may not open it.
    PermissionDenied {
        /// The socket or pipe path.
        socket: String,
        /// What to do, e.g. "add yourself to group `warren` … and log in again".
        advice: String,
    },
    /// The helper refused this client (not authorized, or another protocol version).
    Refused {
        /// The helper's (or the version check's) complete sentence.
        message: String,
    },
    /// Any other failure to reach the helper, or the connection was lost.
    Unreachable {
        /// What happened.
        message: String,
    },
}

impl HelperStatus {
    /// True when tunnel states are live.
    pub fn is_connected(&self) -> bool {
        matches!(self, HelperStatus::Connected { .. })
    }
}

/// Where the private keys of the user's tunnels are kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SecretsStatus {
    /// In the OS keyring (Secret Service, Keychain, Credential Manager).
    Keyring {
        /// Which one, for the settings view.
        backend: String,
    },
    /// No keyring answers; tunnels cannot be created, imported or connected until the user
    /// starts one or explicitly accepts the file fallback.
    Unavailable {
        /// Why, in the keyring library's words.
        reason: String,
    },
    /// The user accepted storing keys in a file only they can read, unencrypted.
    File {
        /// The directory holding one key file per tunnel.
        path: String,
    },
}

/// One tunnel as the UI shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct TunnelView {
    /// The tunnel's name.
    pub name: String,
    /// `user` if this app stores it (or the helper says a client handed it over), `system` if an
    /// administrator installed it.
    pub kind: TunnelKindView,
    /// True when this app stores it: it can be edited, renamed, deleted and exported here.
    pub stored: bool,
    /// Its state, exactly as the helper last reported it; `unknown` while the helper is
    /// unreachable.
    pub state: StateView,
    /// `None` unless connected.
    pub health: Option<HealthView>,
    /// Live per-peer state, from the helper's latest stats.
    pub peers: Vec<PeerView>,
    /// Kill switch and LAN access.
    pub options: OptionsView,
    /// This tunnel's own public key (stored tunnels only), for the "copy" button.
    pub public_key: Option<String>,
    /// Total rx/tx over the last [`crate::controller::HISTORY_SECS`] seconds, oldest first.
    pub throughput: Vec<Sample>,
    /// A request sent for this tunnel and not answered yet. Not a state: the state changes only
    /// when the helper says so.
    pub pending: Option<PendingRequest>,
    /// The helper's answer to the latest failed request for this tunnel.
    pub last_error: Option<String>,
}

/// Whose a tunnel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum TunnelKindView {
    /// The user's own.
    User,
    /// An administrator's.
    System,
}

impl From<TunnelKind> for TunnelKindView {
    fn from(kind: TunnelKind) -> Self {
        match kind {
            TunnelKind::User => TunnelKindView::User,
            TunnelKind::System => TunnelKindView::System,
        }
    }
}

/// A tunnel's lifecycle state: the helper's [`TunnelState`] plus `unknown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum StateView {
    /// The helper is unreachable, so nobody here knows.
    Unknown,
    /// Down.
    Disconnected,
    /// Set up, waiting for a handshake.
    Connecting,
    /// Not set up yet: an endpoint's host name does not resolve; the helper retries and brings
    /// it up by itself. Not a failure.
    WaitingForNetwork {
        /// The helper's sentence (the resolver's answer).
        reason: String,
    },
    /// A handshake completed.
    Connected {
        /// When, in seconds since the Unix epoch.
        since_unix_secs: u64,
    },
    /// It was connected, and the network under it changed: the helper started new handshakes
    /// at once and none has completed yet. Back to connected when one does.
    Reconnecting {
        /// The helper's words: `network changed`.
        reason: String,
    },
    /// Being taken down.
    Disconnecting,
    /// Failed; `reason` is the helper's.
    Error {
        /// The helper's sentence.
        reason: String,
    },
}

impl From<&TunnelState> for StateView {
    fn from(state: &TunnelState) -> Self {
        match state {
            TunnelState::Disconnected => StateView::Disconnected,
            TunnelState::Connecting => StateView::Connecting,
            TunnelState::WaitingForNetwork { reason } => StateView::WaitingForNetwork {
                reason: reason.clone(),
            },
            TunnelState::Connected { since_unix_secs } => StateView::Connected {
                since_unix_secs: *since_unix_secs,
            },
            TunnelState::Reconnecting { reason } => StateView::Reconnecting {
                reason: reason.clone(),
            },
            TunnelState::Disconnecting => StateView::Disconnecting,
            TunnelState::Error { reason } => StateView::Error {
                reason: reason.clone(),
            },
        }
    }
}

impl StateView {
    /// True for the states in which "disconnect" is the action that makes sense.
    pub fn is_up(&self) -> bool {
        matches!(
            self,
            StateView::Connecting
                | StateView::WaitingForNetwork { .. }
                | StateView::Connected { .. }
                | StateView::Reconnecting { .. }
                | StateView::Error { .. }
        )
    }
}

/// Whether a connected tunnel carries traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum HealthView {
    /// All good.
    Healthy,
    /// Connected, but something is wrong.
    Degraded {
        /// One sentence per problem, in the helper's words.
        reasons: Vec<String>,
    },
}

impl From<&Health> for HealthView {
    fn from(health: &Health) -> Self {
        match health {
            Health::Healthy => HealthView::Healthy,
            Health::Degraded { reasons } => HealthView::Degraded {
                reasons: reasons.iter().map(DegradedReason::to_string).collect(),
            },
        }
    }
}

/// One peer's live state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PeerView {
    /// Base64, as in a `.conf` file.
    pub public_key: String,
    /// `198.18.0.1:51820`, once known.
    pub endpoint: Option<String>,
    /// The networks routed to the peer.
    pub allowed_ips: Vec<String>,
    /// Seconds since the Unix epoch; `None` if never.
    pub last_handshake_unix_secs: Option<u64>,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
}

impl From<&PeerStatus> for PeerView {
    fn from(peer: &PeerStatus) -> Self {
        PeerView {
            public_key: peer.public_key.to_string(),
            endpoint: peer.endpoint.map(|e| e.to_string()),
            allowed_ips: peer.allowed_ips.iter().map(ToString::to_string).collect(),
            last_handshake_unix_secs: peer.last_handshake_unix_secs,
            rx_bytes: peer.rx_bytes,
            tx_bytes: peer.tx_bytes,
        }
    }
}

/// One point of the throughput graph: the tunnel's byte counters (summed over peers) when a
/// stats event arrived. The UI turns consecutive samples into rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Sample {
    /// When the stats arrived, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Total bytes received.
    pub rx_bytes: u64,
    /// Total bytes sent.
    pub tx_bytes: u64,
}

/// A request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum PendingRequest {
    /// Connect was asked for.
    Connect,
    /// Disconnect was asked for.
    Disconnect,
}

/// Per-tunnel options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct OptionsView {
    /// Block traffic outside the tunnel.
    pub kill_switch: KillSwitchView,
    /// With the kill switch on, still allow the local networks.
    pub allow_lan: bool,
}

/// The kill switch setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum KillSwitchView {
    /// Never block.
    Off,
    /// Always block while up.
    On,
    /// Block for full tunnels only.
    #[default]
    Auto,
}

impl From<TunnelOptions> for OptionsView {
    fn from(options: TunnelOptions) -> Self {
        OptionsView {
            kill_switch: match options.kill_switch {
                KillSwitch::Off => KillSwitchView::Off,
                KillSwitch::On => KillSwitchView::On,
                KillSwitch::Auto => KillSwitchView::Auto,
            },
            allow_lan: options.allow_lan,
        }
    }
}

impl From<OptionsView> for TunnelOptions {
    fn from(options: OptionsView) -> Self {
        TunnelOptions {
            kill_switch: match options.kill_switch {
                KillSwitchView::Off => KillSwitch::Off,
                KillSwitchView::On => KillSwitch::On,
                KillSwitchView::Auto => KillSwitch::Auto,
            },
            allow_lan: options.allow_lan,
        }
    }
}

/// The app's preferences, as the settings view shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SettingsView {
    /// Connect the last-used tunnel when the app starts.
    pub connect_on_launch: bool,
    /// Start the app (in the tray) at login.
    pub start_at_login: bool,
}

/// Whether the app has a tray icon (decided once at start, `crate::tray_support`). Without one,
/// the window stays open and closing it quits the app; the window says why (command
/// `tray_status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TrayStatus {
    /// The icon is in the tray; closing the window keeps the app running there.
    Available,
    /// No tray icon.
    Unavailable {
        /// One short sentence: why not.
        reason: String,
    },
}

/// One line of the helper's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LogLineView {
    /// Milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message.
    pub message: String,
}

impl From<&LogLine> for LogLineView {
    fn from(line: &LogLine) -> Self {
        LogLineView {
            unix_ms: line.unix_ms,
            level: match line.level {
                LogLevel::Error => "error",
                LogLevel::Warn => "warn",
                LogLevel::Info => "info",
                LogLevel::Debug => "debug",
                LogLevel::Trace => "trace",
            }
            .to_owned(),
            target: line.target.clone(),
            message: line.message.clone(),
        }
    }
}

/// A problem with a configuration text, for the editor: the line (1-based) when the fault is on
/// one, and the parser's message without the location prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Diagnostic {
    /// The 1-based line in the edited text.
    pub line: Option<u32>,
    /// What is wrong.
    pub message: String,
}

/// What the editor opens: the configuration without its private key, and the public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct TunnelText {
    /// The tunnel's name.
    pub name: String,
    /// wg-quick text without the `PrivateKey` line (the key stays in the keyring).
    pub text: String,
    /// The tunnel's public key, base64.
    pub public_key: String,
}

/// The result of importing one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ImportOutcome {
    /// The file as given.
    pub file: String,
    /// The new tunnel's name, if it was imported.
    pub imported: Option<String>,
    /// Why not, if it was not.
    pub error: Option<UiError>,
}

/// The one error type the webview sees: a kind for code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[error("{message}")]
pub struct UiError {
    /// What kind of failure.
    pub kind: UiErrorKind,
    /// A complete sentence.
    pub message: String,
    /// For configuration errors, the 1-based line.
    pub line: Option<u32>,
}

/// What kind of failure a [`UiError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum UiErrorKind {
    /// The helper is not reachable now.
    HelperUnavailable,
    /// The helper refused or failed the request.
    Helper,
    /// A configuration does not parse.
    InvalidConfig,
    /// A name is not a valid tunnel name.
    InvalidName,
    /// No tunnel by that name.
    NotFound,
    /// A tunnel by that name exists.
    Exists,
    /// The keyring failed or is unavailable.
    Secrets,
    /// Reading or writing a file failed.
    Io,
}

impl UiError {
    /// An error of `kind`.
    pub fn new(kind: UiErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            line: None,
        }
    }
}

impl From<IpcError> for UiError {
    fn from(error: IpcError) -> Self {
        use warren_proto::ipc::ErrorKind;
        let (kind, line) = match &error.kind {
            ErrorKind::Disconnected => (UiErrorKind::HelperUnavailable, None),
            ErrorKind::InvalidConfig { line, .. } => (
                UiErrorKind::InvalidConfig,
                line.and_then(|l| u32::try_from(l).ok()),
            ),
            ErrorKind::NotFound => (UiErrorKind::NotFound, None),
            ErrorKind::NotAuthorized
            | ErrorKind::Conflict { .. }
            | ErrorKind::InvalidRequest
            | ErrorKind::Unsupported
            | ErrorKind::Network
            | ErrorKind::MissingFeature
            | ErrorKind::Internal => (UiErrorKind::Helper, None),
        };
        UiError {
            kind,
            message: error.message,
            line,
        }
    }
}

#[cfg(test)]
mod bindings {
    //! The generated TypeScript must match the checked-in `ui/src/generated/bindings.ts`.
    use super::*;
    use ts_rs::{Config, TS};

    const BLESS_ENV: &str = "WARREN_BLESS_BINDINGS";

    fn generate() -> String {
        let cfg = Config::new().with_large_int("number");
        let decls = [
            Snapshot::decl(&cfg),
            HelperStatus::decl(&cfg),
            SecretsStatus::decl(&cfg),
            TunnelView::decl(&cfg),
            TunnelKindView::decl(&cfg),
            StateView::decl(&cfg),
            HealthView::decl(&cfg),
            PeerView::decl(&cfg),
            Sample::decl(&cfg),
            PendingRequest::decl(&cfg),
            OptionsView::decl(&cfg),
            KillSwitchView::decl(&cfg),
            SettingsView::decl(&cfg),
            TrayStatus::decl(&cfg),
            DemoOfferView::decl(&cfg),
            LogLineView::decl(&cfg),
            Diagnostic::decl(&cfg),
            TunnelText::decl(&cfg),
            ImportOutcome::decl(&cfg),
            UiError::decl(&cfg),
            UiErrorKind::decl(&cfg),
        ];
        let mut out = String::from(
            "// Generated from src-tauri/src/model.rs by ts-rs. Do not edit by hand: change the Rust\n\
             // types and run `WARREN_BLESS_BINDINGS=1 cargo test -p warren-app bindings`.\n",
        );
        for decl in decls {
            out.push('\n');
            out.push_str("export ");
            out.push_str(&decl);
            out.push('\n');
        }
        out
    }

    #[test]
    fn the_checked_in_typescript_bindings_are_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ui/src/generated/bindings.ts");
        let fresh = generate();
        if std::env::var_os(BLESS_ENV).is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &fresh).unwrap();
            return;
        }
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            current == fresh,
            "{} is out of date with src-tauri/src/model.rs: regenerate it with \
             `{BLESS_ENV}=1 cargo test -p warren-app bindings` and commit the result",
            path.display()
        );
    }
}
