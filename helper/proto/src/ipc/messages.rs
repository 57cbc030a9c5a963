//! The IPC vocabulary: what a client (GUI, CLI) says to the helper and what the helper says back.
//!
//! Two enums cross the socket, one per direction: [`ClientMessage`] (client → helper) and
//! [`HelperMessage`] (helper → client). Everything else here is their payload.
//!
//! The conversation:
//! 1. The client sends [`ClientMessage::Hello`] with [`PROTOCOL_VERSION`]; the helper answers
//!    [`HelperMessage::Hello`] with its own. Versions must be equal; whoever sees a difference
//!    reports it (the client says which side to update) and the helper closes the connection.
//!    The two `Hello` shapes are frozen: every future version must still read them.
//! 2. The client sends [`ClientMessage::Request`]s, each with an `id` it chooses (unique among
//!    its requests in flight); the helper answers each with exactly one
//!    [`HelperMessage::Response`] carrying the same `id`. Responses may come in any order.
//! 3. At any time the helper may push [`HelperMessage::Event`]s for the topics the client
//!    subscribed to ([`Request::Subscribe`]), plus [`Event::HelperStopping`] to everyone.
//! 4. The helper may send [`HelperMessage::Closing`] to say why it is about to close the
//!    connection (not authorized, protocol violation), then closes it.
//!
//! JSON shape (see the tests for the exact text): the two top-level enums are externally tagged
//! (`{"hello": {…}}`, `{"request": {"id": 7, "request": {…}}}`); [`Request`] is tagged
//! `{"command": "…", "args": {…}}`; the data enums are tagged by a `"kind"` field
//! (`{"kind": "connected", "since_unix_secs": …}`); names are `snake_case`. The top level and
//! requests avoid serde's internal tagging on purpose: an internally tagged enum buffers its
//! whole content in serde's private, never-zeroized `Content` tree, and a request's content may
//! be a configuration holding a private key.
//!
//! Secrets: the only messages that contain key material are [`Request::ConnectUser`] and
//! [`Request::ImportSystemTunnel`], whose `config` is the tunnel's wg-quick text (private key
//! included). Nothing the helper sends can hold a secret: status types carry public keys only,
//! and the key types have no serde impls (see the private `adapters` module). `Debug` output of
//! every message redacts keys.

use super::adapters;
use super::name::TunnelName;
use crate::config::{parse, ConfigError, TunnelConfig};
use crate::key::PublicKey;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::SocketAddr;
use zeroize::Zeroizing;

/// The protocol version in [`ClientMessage::Hello`] and [`HelperMessage::Hello`]. Bump it on any
/// change to the messages that an older peer would misread.
///
/// 3: [`TunnelState::WaitingForNetwork`] (a version-2 client could not read it; it gets the
/// version mismatch, which tells the user which side to update).
///
/// 4: [`TunnelState::Reconnecting`] and [`DegradedReason::DnsNotApplied`] (likewise: a
/// version-3 client could not read them).
pub const PROTOCOL_VERSION: u32 = 4;

/// A connected tunnel whose newest handshake is older than this is [`Health::Degraded`]
/// (WireGuard rekeys every 120 s while traffic flows, and a session is dead after 180 s).
pub const HANDSHAKE_STALE_SECS: u64 = 180;

/// How often the helper sends [`Event::Stats`] to a client subscribed to [`EventTopic::Stats`].
pub const STATS_INTERVAL_SECS: u64 = 1;

// ---------------------------------------------------------------------------------------------
// Client → helper
// ---------------------------------------------------------------------------------------------

/// Everything a client sends to the helper.
// A request holding a TunnelConfig is a few hundred bytes; messages are few and short-lived, so
// boxing it would only make building requests clumsier.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientMessage {
    /// The first message on every connection. Frozen across protocol versions.
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        version: u32,
        /// Who is asking, for the helper's logs: e.g. `warren 0.1.0 (gui)`.
        client: String,
    },
    /// A request; answered by exactly one [`HelperMessage::Response`] with the same `id`.
    Request {
        /// Chosen by the client, unique among its requests in flight.
        id: u64,
        /// What to do.
        request: Request,
    },
}

impl ClientMessage {
    /// The client's [`ClientMessage::Hello`] for this protocol version.
    pub fn hello(client: impl Into<String>) -> Self {
        Self::Hello {
            version: PROTOCOL_VERSION,
            client: client.into(),
        }
    }
}

/// What a client asks the helper to do. The helper decides who may do what: requests that
/// change system tunnels are for administrators (root / `Administrators`) only and are otherwise
/// answered with [`ErrorKind::NotAuthorized`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command", content = "args")]
pub enum Request {
    /// Bring up a *user tunnel*: a configuration the client owns (the GUI keeps the private key
    /// in the user's keyring and the rest in its config dir) and hands over for this session
    /// only. The helper keeps it in memory, never on disk, and forgets it after disconnecting.
    /// Answered with [`Response::Done`] once the tunnel is [`TunnelState::Connecting`];
    /// [`TunnelState::Connected`] follows as an event when a handshake completes.
    ConnectUser {
        /// The tunnel's name; [`ErrorKind::Conflict`] if a tunnel of that name is up.
        name: TunnelName,
        /// The whole configuration, private key included; travels as wg-quick text.
        #[serde(with = "adapters::tunnel_config")]
        config: TunnelConfig,
        /// Kill switch and LAN access for this tunnel.
        #[serde(default)]
        options: TunnelOptions,
    },
    /// Bring up a *system tunnel*: `/etc/warren/tunnels/<name>.conf` (or the OS's equivalent),
    /// owned by an administrator. Answered like [`Request::ConnectUser`].
    ConnectSystem {
        /// The system tunnel's name.
        name: TunnelName,
    },
    /// Take a tunnel down, user or system. Answered with [`Response::Done`] once it is
    /// [`TunnelState::Disconnected`] and every system change it made is undone.
    Disconnect {
        /// The tunnel's name.
        name: TunnelName,
    },
    /// Every tunnel the helper knows: installed system tunnels (up or not) and the user tunnels
    /// that are up. Answered with [`Response::Tunnels`].
    ListTunnels,
    /// The detailed status of one tunnel, or of every tunnel that is not disconnected. Answered
    /// with [`Response::Status`]; [`ErrorKind::NotFound`] for an unknown name.
    Status {
        /// One tunnel, or `None` for all active tunnels.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<TunnelName>,
    },
    /// Replace a tunnel's options (kill switch, LAN access). Applied at once if it is up;
    /// persisted for system tunnels. Answered with [`Response::Done`].
    SetOptions {
        /// The tunnel's name.
        name: TunnelName,
        /// The new options (all of them).
        options: TunnelOptions,
    },
    /// Install a system tunnel (administrators only). Answered with [`Response::Done`];
    /// [`ErrorKind::Conflict`] if it exists and `replace` is false.
    ImportSystemTunnel {
        /// The name to install it under.
        name: TunnelName,
        /// The configuration, private key included; travels as wg-quick text.
        #[serde(with = "adapters::tunnel_config")]
        config: TunnelConfig,
        /// Overwrite an existing system tunnel of that name (it must be down).
        #[serde(default)]
        replace: bool,
    },
    /// Delete a system tunnel (administrators only; it must be down). Answered with
    /// [`Response::Done`].
    RemoveSystemTunnel {
        /// The system tunnel's name.
        name: TunnelName,
    },
    /// Start receiving the events of these topics (adds to the current subscription).
    /// Answered with [`Response::Done`]. [`Event::HelperStopping`] needs no subscription.
    Subscribe {
        /// The topics to add.
        topics: Vec<EventTopic>,
    },
    /// Stop receiving the events of these topics. Answered with [`Response::Done`].
    Unsubscribe {
        /// The topics to remove.
        topics: Vec<EventTopic>,
    },
    /// The helper's recent log lines, oldest first. Answered with [`Response::Logs`].
    Logs {
        /// At most this many of the newest lines (fewer if they would not fit in one frame).
        lines: u32,
        /// Also subscribe to [`EventTopic::Logs`], atomically, so no line falls between the
        /// answer and the first [`Event::LogLine`].
        #[serde(default)]
        follow: bool,
    },
}

impl Request {
    /// Checks what the helper would refuse to even decode: a configuration must survive its
    /// trip through wg-quick text (a hand-built [`TunnelConfig`] may not, e.g. with `MTU = 10`).
    /// [`Client::request`](super::Client::request) calls this before sending, so such a mistake
    /// comes back as [`ErrorKind::InvalidConfig`] with a line number instead of a closed
    /// connection.
    pub fn validate(&self) -> Result<(), IpcError> {
        match self {
            Request::ConnectUser { config, .. } | Request::ImportSystemTunnel { config, .. } => {
                let text = Zeroizing::new(config.to_conf());
                parse(&text, None).map(drop).map_err(IpcError::from)
            }
            Request::ConnectSystem { .. }
            | Request::Disconnect { .. }
            | Request::ListTunnels
            | Request::Status { .. }
            | Request::SetOptions { .. }
            | Request::RemoveSystemTunnel { .. }
            | Request::Subscribe { .. }
            | Request::Unsubscribe { .. }
            | Request::Logs { .. } => Ok(()),
        }
    }
}

/// A kind of event a client can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventTopic {
    /// [`Event::TunnelState`]: every state change of every tunnel.
    State,
    /// [`Event::Stats`]: every [`STATS_INTERVAL_SECS`], for each tunnel that is not disconnected.
    Stats,
    /// [`Event::LogLine`]: each new line of the helper's log.
    Logs,
}

/// Per-tunnel options the user (or admin) chooses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TunnelOptions {
    /// Block traffic outside the tunnel while it is up.
    pub kill_switch: KillSwitch,
    /// With the kill switch on, still allow the local networks (printers, NAS, the router).
    pub allow_lan: bool,
}

/// The kill switch setting ("block untunneled traffic").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KillSwitch {
    /// Never block.
    Off,
    /// Always block while the tunnel is up.
    On,
    /// Block for full tunnels (`0.0.0.0/0` or `::/0`), not for split tunnels.
    #[default]
    Auto,
}

impl KillSwitch {
    /// Whether the firewall should block untunneled traffic for a tunnel that is (or is not) a
    /// full tunnel.
    pub fn is_active(self, full_tunnel: bool) -> bool {
        match self {
            KillSwitch::Off => false,
            KillSwitch::On => true,
            KillSwitch::Auto => full_tunnel,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helper → client
// ---------------------------------------------------------------------------------------------

/// Everything the helper sends to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HelperMessage {
    /// The answer to [`ClientMessage::Hello`], sent first. Frozen across protocol versions.
    Hello {
        /// The helper's [`PROTOCOL_VERSION`].
        version: u32,
        /// The helper's release, e.g. `0.1.0`, for "update to …" messages.
        helper_version: String,
    },
    /// The answer to the [`ClientMessage::Request`] with the same `id`.
    Response {
        /// The request's `id`.
        id: u64,
        /// What came of it; `{"ok": …}` or `{"error": …}` on the wire.
        #[serde(with = "adapters::result")]
        result: Result<Response, IpcError>,
    },
    /// Something happened that the client subscribed to.
    Event(Event),
    /// The helper is about to close this connection, and why (e.g. [`ErrorKind::NotAuthorized`],
    /// or [`ErrorKind::InvalidRequest`] for a protocol violation). Nothing follows it.
    Closing {
        /// Why.
        reason: IpcError,
    },
}

impl HelperMessage {
    /// The helper's [`HelperMessage::Hello`] for this protocol version.
    pub fn hello(helper_version: impl Into<String>) -> Self {
        Self::Hello {
            version: PROTOCOL_VERSION,
            helper_version: helper_version.into(),
        }
    }
}

/// A successful answer to a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Response {
    /// Done; nothing to report (connect, disconnect, set options, import, remove, subscribe).
    Done,
    /// The answer to [`Request::ListTunnels`], sorted by name.
    Tunnels {
        /// One entry per tunnel.
        tunnels: Vec<TunnelSummary>,
    },
    /// The answer to [`Request::Status`], sorted by name.
    Status {
        /// One entry per tunnel asked about.
        tunnels: Vec<TunnelStatus>,
    },
    /// The answer to [`Request::Logs`].
    Logs {
        /// Oldest first.
        lines: Vec<LogLine>,
    },
}

/// Something the helper pushes without being asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Event {
    /// A tunnel changed state ([`EventTopic::State`]).
    TunnelState {
        /// The tunnel.
        name: TunnelName,
        /// Its new state.
        state: TunnelState,
    },
    /// A tunnel's counters, every [`STATS_INTERVAL_SECS`] ([`EventTopic::Stats`]).
    Stats {
        /// The tunnel.
        name: TunnelName,
        /// One entry per peer, in configuration order.
        peers: Vec<PeerStatus>,
        /// `None` unless the tunnel is [`TunnelState::Connected`].
        health: Option<Health>,
    },
    /// The helper is shutting down: its tunnels are going down and the connection will close.
    /// Sent to every client, subscribed or not.
    HelperStopping,
    /// A new line in the helper's log ([`EventTopic::Logs`]).
    LogLine(LogLine),
}

/// Where a tunnel is in its lifecycle. The helper publishes every transition as
/// [`Event::TunnelState`]; clients mirror it and never guess.
///
/// ```text
/// Disconnected → Connecting → Connected → Disconnecting → Disconnected
///                  ↓    ↑ ↘     ↓   ↑  ↘
///   WaitingForNetwork    Error ← Reconnecting  (Error → Disconnecting → Disconnected, or a
///                          ↑ ← ← ← ← ← ← ←      retry → Connecting)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TunnelState {
    /// Down; nothing of it on the system.
    Disconnected,
    /// The interface, routes, DNS and firewall are set up, and no handshake has completed yet.
    Connecting,
    /// Not set up yet because an endpoint's host name does not resolve (no network, DNS not up):
    /// retried with backoff, then `Connecting`. Nothing of it is on the system yet. Not an error:
    /// it comes up by itself once the name resolves.
    WaitingForNetwork {
        /// Why it waits (the resolver's answer), for humans.
        reason: String,
    },
    /// It was connected, and the host's network changed under it (a default route, an address
    /// or a link): handshakes have started at once with every peer that has an endpoint, and
    /// none has completed since. Back to `Connected` when one does; it stays here while none
    /// can (the new network does not reach the peers).
    Reconnecting {
        /// Why, for humans: `network changed`.
        reason: String,
    },
    /// A handshake with a peer completed: traffic can flow. ("Interface created" is not enough.)
    Connected {
        /// When it became connected, in seconds since the Unix epoch.
        since_unix_secs: u64,
    },
    /// Being taken down; system changes are being undone.
    Disconnecting,
    /// It failed (setting up, or while up); what is left of it is being or has been undone.
    Error {
        /// What went wrong, for humans.
        reason: String,
    },
}

impl fmt::Display for TunnelState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelState::Disconnected => f.write_str("disconnected"),
            TunnelState::Connecting => f.write_str("connecting"),
            TunnelState::WaitingForNetwork { reason } => {
                write!(f, "waiting for network: {reason}")
            }
            TunnelState::Reconnecting { reason } => write!(f, "reconnecting ({reason})"),
            TunnelState::Connected { .. } => f.write_str("connected"),
            TunnelState::Disconnecting => f.write_str("disconnecting"),
            TunnelState::Error { reason } => write!(f, "error: {reason}"),
        }
    }
}

/// Whose a tunnel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TunnelKind {
    /// Handed over by a client with [`Request::ConnectUser`]; lives in the helper's memory only.
    User,
    /// Installed by an administrator (`/etc/warren/tunnels/<name>.conf`).
    System,
}

/// One line of [`Response::Tunnels`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelSummary {
    /// The tunnel's name.
    pub name: TunnelName,
    /// User or system.
    pub kind: TunnelKind,
    /// Its current state.
    pub state: TunnelState,
    /// Its options.
    pub options: TunnelOptions,
}

/// One tunnel in [`Response::Status`]. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelStatus {
    /// The tunnel's name.
    pub name: TunnelName,
    /// User or system.
    pub kind: TunnelKind,
    /// Its current state.
    pub state: TunnelState,
    /// The OS interface name (`wg0`, `utun7`), while it exists.
    pub interface: Option<String>,
    /// Its options.
    pub options: TunnelOptions,
    /// One entry per peer, in configuration order.
    pub peers: Vec<PeerStatus>,
    /// `None` unless the tunnel is [`TunnelState::Connected`].
    pub health: Option<Health>,
}

/// One peer's live state, as `wg show` would print it. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// The peer's public key (base64 on the wire).
    #[serde(with = "adapters::public_key")]
    pub public_key: PublicKey,
    /// The address the peer is reached at now (after roaming), once known.
    pub endpoint: Option<SocketAddr>,
    /// The networks routed to this peer.
    pub allowed_ips: Vec<IpNet>,
    /// When the newest handshake completed, in seconds since the Unix epoch; `None` if never.
    pub last_handshake_unix_secs: Option<u64>,
    /// Bytes received from the peer (decrypted, including keepalives).
    pub rx_bytes: u64,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
}

/// Whether a connected tunnel actually carries traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Health {
    /// Every peer has a recent handshake and answers.
    Healthy,
    /// Connected, but something is wrong.
    Degraded {
        /// What is wrong, at least one entry.
        reasons: Vec<DegradedReason>,
    },
}

/// Why a tunnel is [`Health::Degraded`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum DegradedReason {
    /// The newest handshake with `peer` is older than [`HANDSHAKE_STALE_SECS`].
    HandshakeStale {
        /// The peer.
        #[serde(with = "adapters::public_key")]
        peer: PublicKey,
        /// How old the newest handshake is, in seconds.
        age_secs: u64,
    },
    /// `peer` has never completed a handshake (another peer of the tunnel has).
    NoHandshake {
        /// The peer.
        #[serde(with = "adapters::public_key")]
        peer: PublicKey,
    },
    /// We keep sending to `peer` but nothing has come back for `stalled_secs`.
    RxStalled {
        /// The peer.
        #[serde(with = "adapters::public_key")]
        peer: PublicKey,
        /// Seconds since rx last grew while tx kept growing.
        stalled_secs: u64,
    },
    /// The tunnel's DNS is no longer in place: another program kept rewriting the resolver
    /// file and Warren stopped fighting it, or could not write it again.
    DnsNotApplied {
        /// What happened, for people.
        detail: String,
    },
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy => f.write_str("healthy"),
            Health::Degraded { reasons } => {
                f.write_str("degraded")?;
                for (i, reason) in reasons.iter().enumerate() {
                    f.write_str(if i == 0 { ": " } else { "; " })?;
                    write!(f, "{reason}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for DegradedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DegradedReason::HandshakeStale { peer, age_secs } => write!(
                f,
                "the latest handshake with peer {peer} was {age_secs} s ago \
                 (more than {HANDSHAKE_STALE_SECS} s)"
            ),
            DegradedReason::NoHandshake { peer } => {
                write!(f, "peer {peer} has never completed a handshake")
            }
            DegradedReason::RxStalled { peer, stalled_secs } => write!(
                f,
                "nothing received from peer {peer} for {stalled_secs} s while sending to it"
            ),
            DegradedReason::DnsNotApplied { detail } => {
                write!(f, "the tunnel's DNS is not applied: {detail}")
            }
        }
    }
}

/// One line of the helper's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// When it was logged, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
    /// Its level.
    pub level: LogLevel,
    /// The module that logged it (`warren_helper::driver`).
    pub target: String,
    /// The message, fields included. Never holds a key.
    pub message: String,
}

/// A log line's level, as `tracing` has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something is suspicious.
    Warn,
    /// Normal operation.
    Info,
    /// Detail for debugging.
    Debug,
    /// Even more detail.
    Trace,
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// A failed request: a message for humans and a [`kind`](ErrorKind) for code. Also what
/// [`Client::request`](super::Client::request) returns when the connection is lost
/// ([`ErrorKind::Disconnected`]), so a GUI shows one error type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct IpcError {
    /// What kind of failure, for code to act on.
    pub kind: ErrorKind,
    /// A complete sentence for humans, e.g. `no tunnel named 'office'`. Never holds a key.
    pub message: String,
}

/// What kind of failure an [`IpcError`] is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The caller may not do this (e.g. only administrators manage system tunnels).
    NotAuthorized,
    /// No tunnel (or other named thing) by that name.
    NotFound,
    /// It clashes with something that exists: a tunnel of that name is up, or its routes
    /// overlap another tunnel's.
    Conflict {
        /// The other tunnel, when one is to blame.
        with: Option<TunnelName>,
    },
    /// A configuration was refused.
    InvalidConfig {
        /// The file, for system tunnels; `None` for text sent by the client.
        file: Option<String>,
        /// The 1-based line, when the fault is on one line.
        line: Option<usize>,
        /// What is wrong, without the file and line.
        message: String,
    },
    /// The request makes no sense here (e.g. a request before `Hello`, a protocol violation).
    InvalidRequest,
    /// Not possible on this OS or in this build (yet).
    Unsupported,
    /// The network is not there yet: an endpoint's host name did not resolve. Trying again later
    /// may work; the configuration may be right.
    Network,
    /// This system lacks something the tunnel needs: a tool (`nft`), a service (the Windows
    /// Filtering Platform), a driver (`wintun.dll`); the message names it and how to get it.
    MissingFeature,
    /// The helper failed (a system call, a bug); the message says what it was doing.
    Internal,
    /// The connection to the helper is gone (it stopped, restarted or closed the connection).
    /// Made by the client; the helper never sends it.
    Disconnected,
}

impl IpcError {
    /// An error of `kind` with a message for humans.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    /// [`ErrorKind::NotAuthorized`].
    pub fn not_authorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotAuthorized, message)
    }
    /// [`ErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// [`ErrorKind::Conflict`], blaming tunnel `with` if given.
    pub fn conflict(with: Option<TunnelName>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict { with }, message)
    }
    /// [`ErrorKind::InvalidRequest`].
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }
    /// [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// [`ErrorKind::Network`].
    pub fn network(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Network, message)
    }
    /// [`ErrorKind::MissingFeature`].
    pub fn missing_feature(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::MissingFeature, message)
    }
    /// [`ErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// [`ErrorKind::Disconnected`].
    pub fn disconnected(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Disconnected, message)
    }
}

impl From<&ConfigError> for IpcError {
    fn from(error: &ConfigError) -> Self {
        Self::new(
            ErrorKind::InvalidConfig {
                file: error.file().map(|f| f.display().to_string()),
                line: error.line(),
                message: error.message().to_owned(),
            },
            error.to_string(),
        )
    }
}

impl From<ConfigError> for IpcError {
    fn from(error: ConfigError) -> Self {
        Self::from(&error)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::key::PrivateKey;

    pub(crate) const PRIVATE_KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    pub(crate) const PEER_KEY: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    pub(crate) fn name(s: &str) -> TunnelName {
        TunnelName::new(s).unwrap()
    }

    pub(crate) fn config() -> TunnelConfig {
        parse(
            &format!(
                "[Interface]\nPrivateKey = {PRIVATE_KEY}\nAddress = 198.18.100.2/24, fd00:100::2/64\n\
                 DNS = 198.18.100.1, corp.example\n\n[Peer]\nPublicKey = {PEER_KEY}\n\
                 PresharedKey = {PRIVATE_KEY}\nAllowedIPs = 198.18.200.0/24, fd00:200::/64\n\
                 Endpoint = 198.18.0.1:51820\nPersistentKeepalive = 25\n"
            ),
            None,
        )
        .unwrap()
    }

    pub(crate) fn peer_status() -> PeerStatus {
        PeerStatus {
            public_key: PEER_KEY.parse().unwrap(),
            endpoint: Some("198.18.0.1:51820".parse().unwrap()),
            allowed_ips: vec!["198.18.200.0/24".parse().unwrap()],
            last_handshake_unix_secs: Some(1_700_000_000),
            rx_bytes: 1234,
            tx_bytes: 5678,
        }
    }

    pub(crate) fn status(tunnel: &str) -> TunnelStatus {
        let peer = peer_status().public_key;
        TunnelStatus {
            name: name(tunnel),
            kind: TunnelKind::System,
            state: TunnelState::Connected {
                since_unix_secs: 1_700_000_000,
            },
            interface: Some(tunnel.to_owned()),
            options: TunnelOptions {
                kill_switch: KillSwitch::On,
                allow_lan: true,
            },
            peers: vec![peer_status()],
            health: Some(Health::Degraded {
                reasons: vec![
                    DegradedReason::HandshakeStale {
                        peer,
                        age_secs: 200,
                    },
                    DegradedReason::NoHandshake { peer },
                    DegradedReason::RxStalled {
                        peer,
                        stalled_secs: 30,
                    },
                    DegradedReason::DnsNotApplied {
                        detail: "/etc/resolv.conf was rewritten 6 times within 60 s".into(),
                    },
                ],
            }),
        }
    }

    pub(crate) fn log_line() -> LogLine {
        LogLine {
            unix_ms: 1_700_000_000_123,
            level: LogLevel::Warn,
            target: "warren_helper::driver".into(),
            message: "peer \"x\" roamed\nto 198.18.0.9:51820".into(),
        }
    }

    /// Index of a request variant; adding a variant without a sample fails to compile here.
    fn request_variant(r: &Request) -> usize {
        match r {
            Request::ConnectUser { .. } => 0,
            Request::ConnectSystem { .. } => 1,
            Request::Disconnect { .. } => 2,
            Request::ListTunnels => 3,
            Request::Status { .. } => 4,
            Request::SetOptions { .. } => 5,
            Request::ImportSystemTunnel { .. } => 6,
            Request::RemoveSystemTunnel { .. } => 7,
            Request::Subscribe { .. } => 8,
            Request::Unsubscribe { .. } => 9,
            Request::Logs { .. } => 10,
        }
    }
    const REQUEST_VARIANTS: usize = 11;

    fn helper_variant(m: &HelperMessage) -> usize {
        match m {
            HelperMessage::Hello { .. } => 0,
            HelperMessage::Response { result: Ok(r), .. } => match r {
                Response::Done => 1,
                Response::Tunnels { .. } => 2,
                Response::Status { .. } => 3,
                Response::Logs { .. } => 4,
            },
            HelperMessage::Response { result: Err(e), .. } => match e.kind {
                ErrorKind::NotAuthorized => 5,
                ErrorKind::NotFound => 6,
                ErrorKind::Conflict { .. } => 7,
                ErrorKind::InvalidConfig { .. } => 8,
                ErrorKind::InvalidRequest => 9,
                ErrorKind::Unsupported => 10,
                ErrorKind::Internal => 11,
                ErrorKind::Disconnected => 12,
                ErrorKind::Network => 13,
                ErrorKind::MissingFeature => 14,
            },
            HelperMessage::Event(e) => match e {
                Event::TunnelState { state, .. } => match state {
                    TunnelState::Disconnected => 15,
                    TunnelState::Connecting => 16,
                    TunnelState::Connected { .. } => 17,
                    TunnelState::Disconnecting => 18,
                    TunnelState::Error { .. } => 19,
                    TunnelState::WaitingForNetwork { .. } => 24,
                    TunnelState::Reconnecting { .. } => 25,
                },
                Event::Stats { .. } => 20,
                Event::HelperStopping => 21,
                Event::LogLine(_) => 22,
            },
            HelperMessage::Closing { .. } => 23,
        }
    }
    const HELPER_VARIANTS: usize = 26;

    /// One client message per variant (and per request variant).
    pub(crate) fn client_samples() -> Vec<ClientMessage> {
        let requests = vec![
            Request::ConnectUser {
                name: name("home"),
                config: config(),
                options: TunnelOptions::default(),
            },
            Request::ConnectSystem {
                name: name("office"),
            },
            Request::Disconnect { name: name("wg0") },
            Request::ListTunnels,
            Request::Status { name: None },
            Request::SetOptions {
                name: name("wg0"),
                options: TunnelOptions {
                    kill_switch: KillSwitch::Off,
                    allow_lan: true,
                },
            },
            Request::ImportSystemTunnel {
                name: name("office"),
                config: config(),
                replace: true,
            },
            Request::RemoveSystemTunnel {
                name: name("office"),
            },
            Request::Subscribe {
                topics: vec![EventTopic::State, EventTopic::Stats, EventTopic::Logs],
            },
            Request::Unsubscribe {
                topics: vec![EventTopic::Stats],
            },
            Request::Logs {
                lines: 100,
                follow: true,
            },
        ];
        let mut seen = [false; REQUEST_VARIANTS];
        requests
            .iter()
            .for_each(|r| seen[request_variant(r)] = true);
        assert!(seen.iter().all(|&s| s), "a Request variant has no sample");
        let mut samples = vec![ClientMessage::hello("warren-cli 0.1.0")];
        samples.extend(requests.into_iter().enumerate().map(|(i, request)| {
            ClientMessage::Request {
                id: u64::MAX - i as u64,
                request,
            }
        }));
        samples
    }

    /// One helper message per variant (and per response, error kind, event and state).
    pub(crate) fn helper_samples() -> Vec<HelperMessage> {
        let response = |id, result| HelperMessage::Response { id, result };
        let error = |kind| Err(IpcError::new(kind, "it went \"wrong\""));
        let state = |state| {
            HelperMessage::Event(Event::TunnelState {
                name: name("wg0"),
                state,
            })
        };
        let samples = vec![
            HelperMessage::hello("0.1.0"),
            response(1, Ok(Response::Done)),
            response(
                2,
                Ok(Response::Tunnels {
                    tunnels: vec![TunnelSummary {
                        name: name("home"),
                        kind: TunnelKind::User,
                        state: TunnelState::Connecting,
                        options: TunnelOptions::default(),
                    }],
                }),
            ),
            response(
                3,
                Ok(Response::Status {
                    tunnels: vec![status("office"), status("wg0")],
                }),
            ),
            response(
                4,
                Ok(Response::Logs {
                    lines: vec![log_line(), log_line()],
                }),
            ),
            response(5, error(ErrorKind::NotAuthorized)),
            response(6, error(ErrorKind::NotFound)),
            response(
                7,
                error(ErrorKind::Conflict {
                    with: Some(name("office")),
                }),
            ),
            response(
                8,
                error(ErrorKind::InvalidConfig {
                    file: Some("/etc/warren/tunnels/office.conf".into()),
                    line: Some(7),
                    message: "AllowedIPs: bad".into(),
                }),
            ),
            response(9, error(ErrorKind::InvalidRequest)),
            response(10, error(ErrorKind::Unsupported)),
            response(11, error(ErrorKind::Internal)),
            response(u64::MAX, error(ErrorKind::Disconnected)),
            response(12, error(ErrorKind::Network)),
            response(13, error(ErrorKind::MissingFeature)),
            state(TunnelState::Disconnected),
            state(TunnelState::Connecting),
            state(TunnelState::WaitingForNetwork {
                reason: "failed to resolve vpn.example:51820: no such name".into(),
            }),
            state(TunnelState::Connected {
                since_unix_secs: 1_700_000_000,
            }),
            state(TunnelState::Reconnecting {
                reason: "network changed".into(),
            }),
            state(TunnelState::Disconnecting),
            state(TunnelState::Error {
                reason: "no route to 198.18.0.1".into(),
            }),
            HelperMessage::Event(Event::Stats {
                name: name("wg0"),
                peers: vec![peer_status()],
                health: Some(Health::Healthy),
            }),
            HelperMessage::Event(Event::HelperStopping),
            HelperMessage::Event(Event::LogLine(log_line())),
            HelperMessage::Closing {
                reason: IpcError::not_authorized("uid 1001 is not in group warren"),
            },
        ];
        let mut seen = [false; HELPER_VARIANTS];
        samples.iter().for_each(|m| seen[helper_variant(m)] = true);
        assert!(
            seen.iter().all(|&s| s),
            "a HelperMessage variant has no sample"
        );
        samples
    }

    #[test]
    fn every_variant_round_trips_through_json() {
        for message in client_samples() {
            let json = serde_json::to_string(&message).unwrap();
            assert_eq!(
                serde_json::from_str::<ClientMessage>(&json).unwrap(),
                message,
                "{json}"
            );
        }
        for message in helper_samples() {
            let json = serde_json::to_string(&message).unwrap();
            assert_eq!(
                serde_json::from_str::<HelperMessage>(&json).unwrap(),
                message,
                "{json}"
            );
        }
    }

    #[test]
    fn the_wire_format_is_pinned() {
        let cases: Vec<(String, &str)> = vec![
            (
                serde_json::to_string(&ClientMessage::hello("warren-cli")).unwrap(),
                r#"{"hello":{"version":4,"client":"warren-cli"}}"#,
            ),
            (
                serde_json::to_string(&ClientMessage::Request {
                    id: 7,
                    request: Request::Disconnect { name: name("wg0") },
                })
                .unwrap(),
                r#"{"request":{"id":7,"request":{"command":"disconnect","args":{"name":"wg0"}}}}"#,
            ),
            (
                serde_json::to_string(&Request::ListTunnels).unwrap(),
                r#"{"command":"list_tunnels"}"#,
            ),
            (
                serde_json::to_string(&Request::Status { name: None }).unwrap(),
                r#"{"command":"status","args":{}}"#,
            ),
            (
                serde_json::to_string(&HelperMessage::hello("0.1.0")).unwrap(),
                r#"{"hello":{"version":4,"helper_version":"0.1.0"}}"#,
            ),
            (
                serde_json::to_string(&HelperMessage::Response {
                    id: 7,
                    result: Ok(Response::Done),
                })
                .unwrap(),
                r#"{"response":{"id":7,"result":{"ok":{"kind":"done"}}}}"#,
            ),
            (
                serde_json::to_string(&HelperMessage::Response {
                    id: 8,
                    result: Err(IpcError::not_found("no tunnel named 'x'")),
                })
                .unwrap(),
                r#"{"response":{"id":8,"result":{"error":{"kind":"not_found","message":"no tunnel named 'x'"}}}}"#,
            ),
            (
                serde_json::to_string(&HelperMessage::Event(Event::TunnelState {
                    name: name("wg0"),
                    state: TunnelState::Connected {
                        since_unix_secs: 1_700_000_000,
                    },
                }))
                .unwrap(),
                r#"{"event":{"kind":"tunnel_state","name":"wg0","state":{"kind":"connected","since_unix_secs":1700000000}}}"#,
            ),
            (
                serde_json::to_string(&TunnelOptions::default()).unwrap(),
                r#"{"kill_switch":"auto","allow_lan":false}"#,
            ),
            (
                serde_json::to_string(&IpcError::conflict(Some(name("office")), "overlap"))
                    .unwrap(),
                r#"{"kind":{"conflict":{"with":"office"}},"message":"overlap"}"#,
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(json, expected);
        }
        let stats = serde_json::to_value(peer_status()).unwrap();
        assert_eq!(stats["public_key"], PEER_KEY);
        assert_eq!(stats["endpoint"], "198.18.0.1:51820");
        assert_eq!(stats["allowed_ips"][0], "198.18.200.0/24");
    }

    #[test]
    fn defaults_fill_omitted_fields() {
        let request: Request =
            serde_json::from_str(r#"{"command":"logs","args":{"lines":5}}"#).unwrap();
        assert_eq!(
            request,
            Request::Logs {
                lines: 5,
                follow: false
            }
        );
        let options: TunnelOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(options, TunnelOptions::default());
        let status: Request = serde_json::from_str(r#"{"command":"status","args":{}}"#).unwrap();
        assert_eq!(status, Request::Status { name: None });
    }

    #[test]
    fn a_connect_request_carries_the_key_but_never_prints_it() {
        let request = Request::ConnectUser {
            name: name("home"),
            config: config(),
            options: TunnelOptions::default(),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert!(json.contains(PRIVATE_KEY), "the helper needs the key");
        let debug = format!("{request:?}");
        assert!(!debug.contains(PRIVATE_KEY), "{debug}");
        assert!(!debug.contains(&PRIVATE_KEY[..20]), "{debug}");
    }

    #[test]
    fn nothing_the_helper_sends_holds_a_private_key() {
        let private: PrivateKey = PRIVATE_KEY.parse().unwrap();
        for message in helper_samples() {
            let json = serde_json::to_string(&message).unwrap();
            assert!(!json.contains(PRIVATE_KEY), "{json}");
            assert!(!json.contains(&private.to_hex()), "{json}");
        }
    }

    #[test]
    fn a_bad_config_in_a_request_is_refused_with_its_line() {
        let error = serde_json::from_str::<Request>(
            r#"{"command":"connect_user","args":{"name":"x","config":"[Interface]\nMTU = 10\n"}}"#,
        )
        .unwrap_err();
        assert!(error.to_string().contains(":2: MTU"), "{error}");

        let mut config = config();
        config.interface.mtu = Some(10);
        let request = Request::ConnectUser {
            name: name("home"),
            config,
            options: TunnelOptions::default(),
        };
        let error = request.validate().unwrap_err();
        assert!(
            matches!(
                &error.kind,
                ErrorKind::InvalidConfig { line: Some(_), file: None, message } if message.contains("MTU")
            ),
            "{error:?}"
        );
        assert!(!error.message.contains(PRIVATE_KEY));
        assert_eq!(
            Request::ConnectSystem { name: name("x") }.validate(),
            Ok(())
        );
    }

    #[test]
    fn kill_switch_auto_follows_the_tunnel_kind() {
        assert!(KillSwitch::Auto.is_active(true));
        assert!(!KillSwitch::Auto.is_active(false));
        assert!(KillSwitch::On.is_active(false));
        assert!(!KillSwitch::Off.is_active(true));
    }

    #[test]
    fn states_and_health_read_well() {
        assert_eq!(TunnelState::Connecting.to_string(), "connecting");
        let waiting = TunnelState::WaitingForNetwork {
            reason: "no such name".into(),
        };
        assert_eq!(waiting.to_string(), "waiting for network: no such name");
        assert_eq!(
            serde_json::to_string(&waiting).unwrap(),
            r#"{"kind":"waiting_for_network","reason":"no such name"}"#
        );
        let reconnecting = TunnelState::Reconnecting {
            reason: "network changed".into(),
        };
        assert_eq!(reconnecting.to_string(), "reconnecting (network changed)");
        assert_eq!(
            serde_json::to_string(&reconnecting).unwrap(),
            r#"{"kind":"reconnecting","reason":"network changed"}"#
        );
        assert_eq!(
            TunnelState::Error {
                reason: "no route".into()
            }
            .to_string(),
            "error: no route"
        );
        assert_eq!(Health::Healthy.to_string(), "healthy");
        let text = status("wg0").health.unwrap().to_string();
        assert!(
            text.starts_with(&format!(
                "degraded: the latest handshake with peer {PEER_KEY} was 200 s ago (more than 180 s); "
            )),
            "{text}"
        );
    }
}
