//! The fake helper: Warren's IPC protocol answered from a table of tunnels, with nothing on the
//! system changed. One implementation for both places that need a helper without root:
//! - the controller's tests (`controller/tests.rs`) reach it in memory, through its
//!   [`Connector`] (a `tokio::io::duplex` per connection, the real [`Client`] on the other end),
//!   and steer it: refuse connections the way the real socket would ([`Door`]), let a handshake
//!   never complete ([`Handshake::Never`]), push any event, hold answers back, hang up;
//! - `examples/fake_helper.rs` serves it on a Unix socket ([`FakeHelper::listen`]) with a
//!   connected tunnel whose counters grow ([`FakeHelper::tick`]), for the screenshots of
//!   `tests/gui/screenshot.sh` and for working on the UI.
//!
//! It answers as the helper does: `connect_*` publishes `connecting`, answers, then publishes
//! `connected` when the handshake "completes" (at once, after a delay, or never); `disconnect`
//! publishes `disconnecting`, answers, publishes `disconnected`, and forgets a user tunnel.
//! Events go to each connection that subscribed to their topic — on the connection that asked,
//! in order with the answer. It is not the real helper: no authorisation, no importing or
//! removing system tunnels, no state machine beyond what the app needs to render.
//!
//! Compiled for this crate's tests and with the non-default feature `fake-helper` (which the
//! example requires); the app as built and packaged does not contain it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::{OwnedRwLockWriteGuard, RwLock};
use tokio_util::codec::Framed;
use warren_proto::ipc::{
    Client, ClientError, ClientMessage, Event, EventTopic, FrameError, Health, HelperCodec,
    HelperMessage, IpcError, LogLevel, LogLine, PeerStatus, Request, Response, TunnelKind,
    TunnelName, TunnelOptions, TunnelState, TunnelStatus, TunnelSummary,
};
use warren_proto::key::PublicKey;

use crate::controller::{BoxFuture, Connector};

/// The helper version the fake announces in its hello.
pub const VERSION: &str = "0.0.0-fake";

/// The one peer each fake tunnel has (its public key).
pub const PEER: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

/// The socket the in-memory [`Connector`]'s errors name.
const SOCKET: &str = "/run/warren/helper.sock";

/// Events buffered per connection before a slow one misses some.
const OUTBOX_CAPACITY: usize = 256;

/// One tunnel in the fake's table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTunnel {
    /// Whose it is.
    pub kind: TunnelKind,
    /// Where it is in its lifecycle.
    pub state: TunnelState,
    /// Kill switch and LAN access.
    pub options: TunnelOptions,
    /// Its peer's received bytes.
    pub rx_bytes: u64,
    /// Its peer's sent bytes.
    pub tx_bytes: u64,
}

impl FakeTunnel {
    /// A tunnel of `kind` in `state`, default options, no traffic yet.
    pub fn new(kind: TunnelKind, state: TunnelState) -> Self {
        Self {
            kind,
            state,
            options: TunnelOptions::default(),
            rx_bytes: 0,
            tx_bytes: 0,
        }
    }
}

/// When a `connect_*` request's handshake completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// Before the next request is read: `connected` follows the answer directly.
    Immediately,
    /// After this long (the state is `connecting` meanwhile).
    After(Duration),
    /// Never, like a peer that does not answer: the tunnel stays `connecting`.
    Never,
}

/// How the next connection attempt through the in-memory [`Connector`] goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// It connects.
    Open,
    /// As when nothing listens on the socket.
    NotRunning,
    /// As when the user may not open the socket.
    PermissionDenied,
}

/// Why serving one connection ended early.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// The client's first message was not a hello.
    #[error("expected a hello, got {0}")]
    NoHello(String),
    /// A message after the hello was not a request.
    #[error("expected a request, got {0}")]
    NoRequest(String),
    /// Reading or writing a frame failed.
    #[error("failed to exchange a frame with the client: {0}")]
    Frame(#[from] FrameError),
}

/// The fake helper; clones share one table of tunnels.
#[derive(Clone)]
pub struct FakeHelper {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Requests are answered only while this can be read-locked ([`FakeHelper::hold_answers`]).
    gate: Arc<RwLock<()>>,
    /// Events and hang-ups for every connection.
    outbox: broadcast::Sender<Outgoing>,
}

struct State {
    tunnels: BTreeMap<TunnelName, FakeTunnel>,
    /// Every request received, in order.
    requests: Vec<Request>,
    /// What `logs` answers.
    logs: Vec<LogLine>,
    handshake: Handshake,
    door: Door,
    /// Connections that completed the hello, ever.
    connections: u64,
    /// Calls of [`FakeHelper::tick`], which shape the traffic.
    ticks: u64,
}

#[derive(Debug, Clone)]
enum Outgoing {
    /// For every connection but `from` (which sent it already, in order with its answer).
    Event { event: Event, from: Option<u64> },
    /// Every connection ends.
    HangUp,
}

/// What one request produces on the connection that sent it, in order.
enum Out {
    Answer(Result<Response, IpcError>),
    Event(Event),
    /// The handshake of this tunnel completes after this long.
    ConnectedAfter(Duration, TunnelName),
}

impl Default for FakeHelper {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeHelper {
    /// A fake with no tunnels, an open door, handshakes that complete at once and one log line.
    pub fn new() -> Self {
        let (outbox, _) = broadcast::channel(OUTBOX_CAPACITY);
        let helper = Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    tunnels: BTreeMap::new(),
                    requests: Vec::new(),
                    logs: Vec::new(),
                    handshake: Handshake::Immediately,
                    door: Door::Open,
                    connections: 0,
                    ticks: 0,
                }),
                gate: Arc::new(RwLock::new(())),
                outbox,
            }),
        };
        helper.with_log(
            LogLevel::Info,
            "fake helper started (nothing on this system changes)",
        )
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds (or replaces) a tunnel.
    pub fn with_tunnel(self, name: TunnelName, tunnel: FakeTunnel) -> Self {
        self.insert(name, tunnel);
        self
    }

    /// Adds a system tunnel that is down.
    pub fn with_system_tunnel(self, name: TunnelName) -> Self {
        self.with_tunnel(
            name,
            FakeTunnel::new(TunnelKind::System, TunnelState::Disconnected),
        )
    }

    /// Adds a line to what `logs` answers.
    pub fn with_log(self, level: LogLevel, message: &str) -> Self {
        self.state().logs.push(LogLine {
            unix_ms: u64::try_from(unix_now().as_millis()).unwrap_or(u64::MAX),
            level,
            target: "warren_helper".into(),
            message: message.into(),
        });
        self
    }

    /// Sets when handshakes complete.
    pub fn with_handshake(self, handshake: Handshake) -> Self {
        self.state().handshake = handshake;
        self
    }

    /// Puts `tunnel` in the table without telling anyone, as a helper that restarted finds it.
    pub fn insert(&self, name: TunnelName, tunnel: FakeTunnel) {
        self.state().tunnels.insert(name, tunnel);
    }

    /// Decides how the next connection attempts go.
    pub fn set_door(&self, door: Door) {
        self.state().door = door;
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state().requests.clone()
    }

    /// How many connections completed their hello so far.
    pub fn connections(&self) -> u64 {
        self.state().connections
    }

    /// Sends `event` to every connection subscribed to its topic, as the helper would. Returns
    /// whether any connection was open (subscribed or not).
    pub fn push(&self, event: Event) -> bool {
        self.shared
            .outbox
            .send(Outgoing::Event { event, from: None })
            .is_ok()
    }

    /// Drops every connection (the helper crashed or restarted).
    pub fn hang_up(&self) {
        let _ = self.shared.outbox.send(Outgoing::HangUp);
    }

    /// Keeps every answer back until the guard is dropped (requests are still received).
    pub async fn hold_answers(&self) -> OwnedRwLockWriteGuard<()> {
        Arc::clone(&self.shared.gate).write_owned().await
    }

    /// One second of traffic: each connected tunnel's counters grow by an amount that wanders
    /// (so a graph has a shape), and its stats are published.
    pub fn tick(&self) {
        let events: Vec<Event> = {
            let mut state = self.state();
            state.ticks += 1;
            let wave = (state.ticks as f64 / 6.0).sin().abs();
            state
                .tunnels
                .iter_mut()
                .filter(|(_, t)| matches!(t.state, TunnelState::Connected { .. }))
                .map(|(name, t)| {
                    t.rx_bytes += 200_000 + (wave * 1_800_000.0) as u64;
                    t.tx_bytes += 40_000 + (wave * 300_000.0) as u64;
                    Event::Stats {
                        name: name.clone(),
                        peers: vec![peer_status(t.rx_bytes, t.tx_bytes)],
                        health: Some(Health::Healthy),
                    }
                })
                .collect()
        };
        for event in events {
            self.push(event);
        }
    }

    /// Serves one connection: the hello, then requests and events until either side ends.
    pub async fn serve<S>(self, stream: S) -> Result<(), FakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let mut frames = Framed::new(stream, HelperCodec::new());
        match frames.next().await {
            Some(Ok(ClientMessage::Hello { .. })) => {}
            Some(Ok(other)) => return Err(FakeError::NoHello(format!("{other:?}"))),
            Some(Err(e)) => return Err(e.into()),
            None => return Ok(()),
        }
        frames.send(HelperMessage::hello(VERSION)).await?;
        // Receive events before being counted, so that whoever waits for this connection can
        // push to it.
        let mut outbox = self.shared.outbox.subscribe();
        let me = {
            let mut state = self.state();
            state.connections += 1;
            state.connections
        };
        let mut topics = BTreeSet::new();
        loop {
            tokio::select! {
                message = frames.next() => {
                    let (id, request) = match message {
                        Some(Ok(ClientMessage::Request { id, request })) => (id, request),
                        Some(Ok(other)) => return Err(FakeError::NoRequest(format!("{other:?}"))),
                        Some(Err(e)) => return Err(e.into()),
                        None => return Ok(()),
                    };
                    let _open = self.shared.gate.read().await;
                    match &request {
                        Request::Subscribe { topics: t } => topics.extend(t.iter().copied()),
                        Request::Unsubscribe { topics: t } => t.iter().for_each(|t| { topics.remove(t); }),
                        Request::Logs { follow: true, .. } => { topics.insert(EventTopic::Logs); }
                        _ => {}
                    }
                    for out in self.answer(me, request) {
                        match out {
                            Out::Answer(result) => frames.send(HelperMessage::Response { id, result }).await?,
                            Out::Event(event) if wants(&topics, &event) => frames.send(HelperMessage::Event(event)).await?,
                            Out::Event(_) => {}
                            Out::ConnectedAfter(wait, name) => {
                                let helper = self.clone();
                                tokio::spawn(async move {
                                    tokio::time::sleep(wait).await;
                                    helper.complete_handshake(&name);
                                });
                            }
                        }
                    }
                }
                out = outbox.recv() => match out {
                    Ok(Outgoing::Event { event, from }) => {
                        if from != Some(me) && wants(&topics, &event) {
                            frames.send(HelperMessage::Event(event)).await?;
                        }
                    }
                    Ok(Outgoing::HangUp) | Err(RecvError::Closed) => return Ok(()),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!("fake helper: a slow connection missed {missed} events");
                    }
                }
            }
        }
    }

    /// Serves every connection to a Unix socket at `path` (replacing a stale socket file there),
    /// until accepting fails.
    #[cfg(unix)]
    pub async fn listen(self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        let path = path.as_ref();
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = tokio::net::UnixListener::bind(path)?;
        loop {
            let (stream, _) = listener.accept().await?;
            let helper = self.clone();
            tokio::spawn(async move {
                if let Err(e) = helper.serve(stream).await {
                    tracing::warn!("fake helper: a connection ended: {e}");
                }
            });
        }
    }

    /// Records `request` and works out what the connection `me` gets for it, in order; state
    /// events also go to the other connections.
    fn answer(&self, me: u64, request: Request) -> Vec<Out> {
        let mut state = self.state();
        state.requests.push(request.clone());
        let mut out = Vec::new();
        let publish = |out: &mut Vec<Out>, name: &TunnelName, s: TunnelState| {
            let event = Event::TunnelState {
                name: name.clone(),
                state: s,
            };
            let _ = self.shared.outbox.send(Outgoing::Event {
                event: event.clone(),
                from: Some(me),
            });
            out.push(Out::Event(event));
        };
        let result = match request {
            Request::Subscribe { .. } | Request::Unsubscribe { .. } => Ok(Response::Done),
            Request::ListTunnels => Ok(Response::Tunnels {
                tunnels: state
                    .tunnels
                    .iter()
                    .map(|(name, t)| TunnelSummary {
                        name: name.clone(),
                        kind: t.kind,
                        state: t.state.clone(),
                        options: t.options,
                    })
                    .collect(),
            }),
            Request::Status { name } => Ok(Response::Status {
                tunnels: state
                    .tunnels
                    .iter()
                    .filter(|(n, t)| {
                        t.state != TunnelState::Disconnected
                            && name.as_ref().is_none_or(|x| x == *n)
                    })
                    .map(|(n, t)| TunnelStatus {
                        name: n.clone(),
                        kind: t.kind,
                        state: t.state.clone(),
                        interface: Some(n.to_string()),
                        options: t.options,
                        peers: vec![peer_status(t.rx_bytes, t.tx_bytes)],
                        health: Some(Health::Healthy),
                    })
                    .collect(),
            }),
            Request::Logs { lines, .. } => {
                let skip = state.logs.len().saturating_sub(lines as usize);
                Ok(Response::Logs {
                    lines: state.logs[skip..].to_vec(),
                })
            }
            Request::ConnectUser { name, options, .. } => {
                if state.tunnels.get(&name).is_some_and(is_up) {
                    Err(IpcError::conflict(None, format!("'{name}' is up")))
                } else {
                    let mut tunnel = FakeTunnel::new(TunnelKind::User, TunnelState::Connecting);
                    tunnel.options = options;
                    state.tunnels.insert(name.clone(), tunnel);
                    publish(&mut out, &name, TunnelState::Connecting);
                    out.push(Out::Answer(Ok(Response::Done)));
                    return self.handshake(state, out, &publish, name);
                }
            }
            Request::ConnectSystem { name } => match state.tunnels.get_mut(&name) {
                None => Err(IpcError::not_found(format!(
                    "no system tunnel named '{name}'"
                ))),
                Some(t) if is_up(t) => Err(IpcError::conflict(None, format!("'{name}' is up"))),
                Some(t) => {
                    t.state = TunnelState::Connecting;
                    publish(&mut out, &name, TunnelState::Connecting);
                    out.push(Out::Answer(Ok(Response::Done)));
                    return self.handshake(state, out, &publish, name);
                }
            },
            Request::Disconnect { name } => {
                let Some(t) = state.tunnels.get_mut(&name).filter(|t| is_up(t)) else {
                    return vec![Out::Answer(Err(IpcError::not_found(format!(
                        "no tunnel named '{name}' is up"
                    ))))];
                };
                t.state = TunnelState::Disconnected;
                if t.kind == TunnelKind::User {
                    state.tunnels.remove(&name);
                }
                publish(&mut out, &name, TunnelState::Disconnecting);
                out.push(Out::Answer(Ok(Response::Done)));
                publish(&mut out, &name, TunnelState::Disconnected);
                return out;
            }
            Request::SetOptions { name, options } => match state.tunnels.get_mut(&name) {
                Some(t) => {
                    t.options = options;
                    Ok(Response::Done)
                }
                None => Err(IpcError::not_found(format!("no tunnel named '{name}'"))),
            },
            Request::ImportSystemTunnel { .. } | Request::RemoveSystemTunnel { .. } => Err(
                IpcError::unsupported("the fake helper does not import or remove system tunnels"),
            ),
        };
        out.push(Out::Answer(result));
        out
    }

    /// After a `connect_*` was answered: the handshake completes now, later, or never.
    fn handshake(
        &self,
        mut state: MutexGuard<'_, State>,
        mut out: Vec<Out>,
        publish: &impl Fn(&mut Vec<Out>, &TunnelName, TunnelState),
        name: TunnelName,
    ) -> Vec<Out> {
        match state.handshake {
            Handshake::Immediately => {
                let connected = connected_now();
                if let Some(t) = state.tunnels.get_mut(&name) {
                    t.state = connected.clone();
                }
                publish(&mut out, &name, connected);
            }
            Handshake::After(wait) => out.push(Out::ConnectedAfter(wait, name)),
            Handshake::Never => {}
        }
        out
    }

    /// A delayed handshake completes, if the tunnel is still connecting.
    fn complete_handshake(&self, name: &TunnelName) {
        let connected = connected_now();
        {
            let mut state = self.state();
            match state.tunnels.get_mut(name) {
                Some(t) if t.state == TunnelState::Connecting => t.state = connected.clone(),
                _ => return,
            }
        }
        let _ = self.shared.outbox.send(Outgoing::Event {
            event: Event::TunnelState {
                name: name.clone(),
                state: connected,
            },
            from: None,
        });
    }
}

impl Connector for FakeHelper {
    fn connect(&self) -> BoxFuture<Result<Client, ClientError>> {
        let helper = self.clone();
        Box::pin(async move {
            let door = helper.state().door;
            let path = PathBuf::from(SOCKET);
            match door {
                Door::Open => {}
                Door::NotRunning => {
                    return Err(ClientError::NotRunning {
                        path,
                        hint: "start it with `systemctl start warren-helper`",
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
                    })
                }
                Door::PermissionDenied => {
                    return Err(ClientError::PermissionDenied {
                        path,
                        hint:
                            "add yourself to group `warren` (`sudo usermod -aG warren \"$USER\"`) \
                               and log in again",
                        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                    })
                }
            }
            let (client_end, helper_end) = tokio::io::duplex(64 * 1024);
            tokio::spawn(async move {
                if let Err(e) = helper.serve(helper_end).await {
                    tracing::warn!("fake helper: a connection ended: {e}");
                }
            });
            Client::handshake(client_end, "warren-app (fake helper's connector)").await
        })
    }
}

/// The status of a fake tunnel's one peer, with these counters.
pub fn peer_status(rx_bytes: u64, tx_bytes: u64) -> PeerStatus {
    PeerStatus {
        public_key: PEER
            .parse()
            .unwrap_or_else(|_| PublicKey::from_bytes([9; 32])),
        endpoint: "198.18.0.1:51820".parse().ok(),
        allowed_ips: "198.18.200.0/24".parse().into_iter().collect(),
        last_handshake_unix_secs: Some(unix_now().as_secs().saturating_sub(17)),
        rx_bytes,
        tx_bytes,
    }
}

fn is_up(t: &FakeTunnel) -> bool {
    t.state != TunnelState::Disconnected
}

/// Whether a connection subscribed to `topics` gets `event`.
fn wants(topics: &BTreeSet<EventTopic>, event: &Event) -> bool {
    match event {
        Event::TunnelState { .. } => topics.contains(&EventTopic::State),
        Event::Stats { .. } => topics.contains(&EventTopic::Stats),
        Event::LogLine(_) => topics.contains(&EventTopic::Logs),
        Event::HelperStopping => true,
    }
}

fn connected_now() -> TunnelState {
    TunnelState::Connected {
        since_unix_secs: unix_now().as_secs(),
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    //! The fake's own behaviour that the controller's tests do not reach: several connections,
    //! delayed handshakes, the traffic ticker, and the Unix socket the example serves.

    use super::*;

    fn name(s: &str) -> TunnelName {
        TunnelName::new(s).unwrap()
    }

    async fn client(helper: &FakeHelper, topics: &[EventTopic]) -> Client {
        let client = helper.connect().await.unwrap();
        client
            .request(Request::Subscribe {
                topics: topics.to_vec(),
            })
            .await
            .unwrap();
        client
    }

    async fn next_state(events: &mut broadcast::Receiver<Event>) -> (TunnelName, TunnelState) {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .expect("an event within 5 s")
                .unwrap();
            if let Event::TunnelState { name, state } = event {
                return (name, state);
            }
        }
    }

    #[tokio::test]
    async fn state_events_reach_every_subscribed_connection() {
        let helper = FakeHelper::new().with_system_tunnel(name("office"));
        let asking = client(&helper, &[EventTopic::State]).await;
        let watching = client(&helper, &[EventTopic::State]).await;
        let deaf = client(&helper, &[EventTopic::Stats]).await;
        let (mut asked, mut watched, mut unheard) =
            (asking.events(), watching.events(), deaf.events());
        asking
            .request(Request::ConnectSystem {
                name: name("office"),
            })
            .await
            .unwrap();
        for events in [&mut asked, &mut watched] {
            assert_eq!(
                next_state(events).await,
                (name("office"), TunnelState::Connecting)
            );
            assert!(matches!(
                next_state(events).await,
                (_, TunnelState::Connected { .. })
            ));
        }
        let again = asking
            .request(Request::ConnectSystem {
                name: name("office"),
            })
            .await
            .unwrap_err();
        assert!(matches!(
            again.kind,
            warren_proto::ipc::ErrorKind::Conflict { .. }
        ));
        // The connection subscribed to stats only got none of it (a tick sends it stats).
        helper.tick();
        let event = tokio::time::timeout(Duration::from_secs(5), unheard.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(event, Event::Stats { .. }), "{event:?}");
        assert_eq!(helper.connections(), 3);
    }

    #[tokio::test]
    async fn a_delayed_handshake_completes_later_unless_disconnected_first() {
        let helper = FakeHelper::new()
            .with_handshake(Handshake::After(Duration::from_millis(50)))
            .with_system_tunnel(name("office"))
            .with_system_tunnel(name("lab"));
        let client = client(&helper, &[EventTopic::State]).await;
        let mut events = client.events();
        for n in ["office", "lab"] {
            client
                .request(Request::ConnectSystem { name: name(n) })
                .await
                .unwrap();
        }
        client
            .request(Request::Disconnect { name: name("lab") })
            .await
            .unwrap();
        let mut seen = Vec::new();
        while !matches!(seen.last(), Some((_, TunnelState::Connected { .. }))) {
            let (n, s) = next_state(&mut events).await;
            seen.push((n.as_str().to_owned(), s));
        }
        let connected = seen[seen.len() - 1].1.clone();
        let expected = [
            ("office", TunnelState::Connecting),
            ("lab", TunnelState::Connecting),
            ("lab", TunnelState::Disconnecting),
            ("lab", TunnelState::Disconnected),
            ("office", connected),
        ]
        .map(|(n, s)| (n.to_owned(), s));
        assert_eq!(seen, expected);
        // Well after lab's handshake was due: it stayed down.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(events.try_recv().is_err(), "no later event");
        let Ok(Response::Tunnels { tunnels }) = client.request(Request::ListTunnels).await else {
            panic!("a list");
        };
        assert_eq!(tunnels[0].name, name("lab"));
        assert_eq!(tunnels[0].state, TunnelState::Disconnected);
    }

    #[tokio::test]
    async fn ticks_grow_the_counters_of_connected_tunnels_only() {
        let connected = FakeTunnel {
            rx_bytes: 1000,
            tx_bytes: 100,
            ..FakeTunnel::new(TunnelKind::System, connected_now())
        };
        let helper = FakeHelper::new()
            .with_tunnel(name("office"), connected)
            .with_system_tunnel(name("lab"));
        let client = client(&helper, &[EventTopic::Stats]).await;
        let mut events = client.events();
        let mut last = (1000, 100);
        for _ in 0..3 {
            helper.tick();
            let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .unwrap()
                .unwrap();
            let Event::Stats { name: n, peers, .. } = event else {
                panic!("stats expected, got {event:?}");
            };
            assert_eq!(n.as_str(), "office");
            assert!(peers[0].rx_bytes > last.0 && peers[0].tx_bytes > last.1);
            last = (peers[0].rx_bytes, peers[0].tx_bytes);
        }
        let Ok(Response::Status { tunnels }) = client.request(Request::Status { name: None }).await
        else {
            panic!("a status");
        };
        assert_eq!(tunnels.len(), 1, "only the connected tunnel has a status");
        assert_eq!(tunnels[0].peers[0].rx_bytes, last.0);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn it_serves_the_protocol_on_a_unix_socket() {
        let dir = crate::store::tests::TempDir::new("fake-helper-socket");
        let path = dir.path().join("helper.sock");
        std::fs::write(&path, "a stale file").unwrap();
        let helper = FakeHelper::new().with_system_tunnel(name("office"));
        let server = tokio::spawn(helper.clone().listen(path.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let client = loop {
            match warren_proto::ipc::connect(&path, "test").await {
                Ok(client) => break client,
                Err(e) => {
                    assert!(tokio::time::Instant::now() < deadline, "{e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        };
        assert_eq!(client.helper_version(), VERSION);
        let Ok(Response::Tunnels { tunnels }) = client.request(Request::ListTunnels).await else {
            panic!("a list");
        };
        assert_eq!(tunnels[0].name, name("office"));
        assert_eq!(helper.requests(), [Request::ListTunnels]);
        server.abort();
    }
}
