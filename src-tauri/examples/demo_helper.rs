//! A stand-in helper for looking at the app without root: it serves Warren's IPC protocol on a
//! Unix socket and pretends. One system tunnel, `office`, is connected with one peer whose
//! counters grow at a varying rate; `connect`/`disconnect` requests for any other name succeed
//! at once (a user tunnel "comes up" after half a second). Nothing on the system changes.
//!
//! Used by `tests/gui/screenshot.sh` (with `WARREN_SCREENSHOT_DEMO=<this binary>`) to show the
//! connection view, and handy while working on the UI:
//!
//! ```text
//! cargo run -p warren-app --example demo_helper -- /tmp/warren-demo.sock &
//! WARREN_HELPER_SOCKET=/tmp/warren-demo.sock cargo run -p warren-app
//! ```
//!
//! Not the real helper: no authorisation, no state machine beyond what the app needs to render.

#[cfg(unix)]
#[tokio::main]
async fn main() {
    if let Err(e) = demo::serve().await {
        eprintln!("demo_helper: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("demo_helper: Unix sockets only");
}

#[cfg(unix)]
mod demo {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use futures_util::{SinkExt, StreamExt};
    use tokio::net::{UnixListener, UnixStream};
    use tokio::sync::broadcast;
    use tokio_util::codec::Framed;
    use warren_proto::ipc::{
        ClientMessage, Event, Health, HelperCodec, HelperMessage, IpcError, LogLevel, LogLine,
        PeerStatus, Request, Response, TunnelKind, TunnelName, TunnelOptions, TunnelState,
        TunnelStatus, TunnelSummary,
    };

    const PEER: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    fn now() -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }

    struct Tunnel {
        kind: TunnelKind,
        state: TunnelState,
        options: TunnelOptions,
        rx: u64,
        tx: u64,
    }

    type Tunnels = Arc<Mutex<BTreeMap<String, Tunnel>>>;

    fn lock(t: &Tunnels) -> std::sync::MutexGuard<'_, BTreeMap<String, Tunnel>> {
        t.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn peer(t: &Tunnel) -> PeerStatus {
        PeerStatus {
            public_key: PEER
                .parse()
                .unwrap_or(warren_proto::key::PublicKey::from_bytes([9; 32])),
            endpoint: "198.18.0.1:51820".parse().ok(),
            allowed_ips: "198.18.200.0/24".parse().into_iter().collect(),
            last_handshake_unix_secs: Some(now().as_secs().saturating_sub(17)),
            rx_bytes: t.rx,
            tx_bytes: t.tx,
        }
    }

    fn name(n: &str) -> Option<TunnelName> {
        TunnelName::new(n).ok()
    }

    pub async fn serve() -> std::io::Result<()> {
        let path = std::env::args()
            .nth(1)
            .unwrap_or_else(|| "/tmp/warren-demo.sock".into());
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        eprintln!("demo_helper: listening on {path}");
        let tunnels: Tunnels = Arc::new(Mutex::new(BTreeMap::new()));
        lock(&tunnels).insert(
            "office".into(),
            Tunnel {
                kind: TunnelKind::System,
                state: TunnelState::Connected {
                    since_unix_secs: now().as_secs().saturating_sub(754),
                },
                options: TunnelOptions::default(),
                rx: 48_000_000,
                tx: 9_000_000,
            },
        );
        let (events, _) = broadcast::channel::<Event>(256);

        // Stats every second, with a rate that wanders so the graph has a shape.
        let ticker = {
            let tunnels = Arc::clone(&tunnels);
            let events = events.clone();
            tokio::spawn(async move {
                let mut tick = 0u64;
                loop {
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                    tick += 1;
                    let wave = ((tick as f64) / 6.0).sin().abs();
                    let mut map = lock(&tunnels);
                    for (n, t) in map.iter_mut() {
                        if !matches!(t.state, TunnelState::Connected { .. }) {
                            continue;
                        }
                        t.rx += 200_000 + (wave * 1_800_000.0) as u64;
                        t.tx += 40_000 + (wave * 300_000.0) as u64;
                        if let Some(n) = name(n) {
                            let _ = events.send(Event::Stats {
                                name: n,
                                peers: vec![peer(t)],
                                health: Some(Health::Healthy),
                            });
                        }
                    }
                }
            })
        };

        loop {
            let (stream, _) = listener.accept().await?;
            let tunnels = Arc::clone(&tunnels);
            let events = events.clone();
            tokio::spawn(async move {
                if let Err(e) = session(stream, tunnels, events).await {
                    eprintln!("demo_helper: connection ended: {e}");
                }
            });
            if ticker.is_finished() {
                return Ok(());
            }
        }
    }

    async fn session(
        stream: UnixStream,
        tunnels: Tunnels,
        events: broadcast::Sender<Event>,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let mut frames = Framed::new(stream, HelperCodec::new());
        match frames.next().await {
            Some(Ok(ClientMessage::Hello { .. })) => {}
            _ => return Ok(()),
        }
        frames.send(HelperMessage::hello("0.1.0-demo")).await?;
        let mut rx = events.subscribe();
        loop {
            tokio::select! {
                message = frames.next() => {
                    let Some(Ok(ClientMessage::Request { id, request })) = message else {
                        return Ok(());
                    };
                    let result = answer(request, &tunnels, &events);
                    frames.send(HelperMessage::Response { id, result }).await?;
                }
                event = rx.recv() => {
                    if let Ok(event) = event {
                        frames.send(HelperMessage::Event(event)).await?;
                    }
                }
            }
        }
    }

    fn set_state(
        tunnels: &Tunnels,
        events: &broadcast::Sender<Event>,
        n: &TunnelName,
        state: TunnelState,
    ) {
        if let Some(t) = lock(tunnels).get_mut(n.as_str()) {
            t.state = state.clone();
        }
        let _ = events.send(Event::TunnelState {
            name: n.clone(),
            state,
        });
    }

    fn answer(
        request: Request,
        tunnels: &Tunnels,
        events: &broadcast::Sender<Event>,
    ) -> Result<Response, IpcError> {
        match request {
            Request::Subscribe { .. } | Request::Unsubscribe { .. } => Ok(Response::Done),
            Request::ListTunnels => Ok(Response::Tunnels {
                tunnels: lock(tunnels)
                    .iter()
                    .filter_map(|(n, t)| {
                        Some(TunnelSummary {
                            name: name(n)?,
                            kind: t.kind,
                            state: t.state.clone(),
                            options: t.options,
                        })
                    })
                    .collect(),
            }),
            Request::Status { .. } => Ok(Response::Status {
                tunnels: lock(tunnels)
                    .iter()
                    .filter(|(_, t)| t.state != TunnelState::Disconnected)
                    .filter_map(|(n, t)| {
                        Some(TunnelStatus {
                            name: name(n)?,
                            kind: t.kind,
                            state: t.state.clone(),
                            interface: Some(n.clone()),
                            options: t.options,
                            peers: vec![peer(t)],
                            health: Some(Health::Healthy),
                        })
                    })
                    .collect(),
            }),
            Request::Logs { .. } => {
                let line = |level, message: &str| LogLine {
                    unix_ms: now().as_millis() as u64,
                    level,
                    target: "warren_helper::demo".into(),
                    message: message.into(),
                };
                Ok(Response::Logs {
                    lines: vec![
                        line(
                            LogLevel::Info,
                            "demo helper started (nothing on this system changes)",
                        ),
                        line(
                            LogLevel::Info,
                            "office: handshake completed with peer xTIBA5rb…",
                        ),
                        line(LogLevel::Warn, "office: peer roamed to 198.18.0.1:51820"),
                    ],
                })
            }
            Request::ConnectUser {
                name: n, options, ..
            } => {
                lock(tunnels).insert(
                    n.to_string(),
                    Tunnel {
                        kind: TunnelKind::User,
                        state: TunnelState::Connecting,
                        options,
                        rx: 0,
                        tx: 0,
                    },
                );
                come_up(tunnels, events, n);
                Ok(Response::Done)
            }
            Request::ConnectSystem { name: n } => {
                if !lock(tunnels).contains_key(n.as_str()) {
                    return Err(IpcError::not_found(format!("no system tunnel named '{n}'")));
                }
                come_up(tunnels, events, n);
                Ok(Response::Done)
            }
            Request::Disconnect { name: n } => {
                set_state(tunnels, events, &n, TunnelState::Disconnecting);
                set_state(tunnels, events, &n, TunnelState::Disconnected);
                let mut map = lock(tunnels);
                if map
                    .get(n.as_str())
                    .is_some_and(|t| t.kind == TunnelKind::User)
                {
                    map.remove(n.as_str());
                }
                Ok(Response::Done)
            }
            Request::SetOptions { name: n, options } => {
                if let Some(t) = lock(tunnels).get_mut(n.as_str()) {
                    t.options = options;
                }
                Ok(Response::Done)
            }
            Request::ImportSystemTunnel { .. } | Request::RemoveSystemTunnel { .. } => Err(
                IpcError::unsupported("the demo helper does not manage system tunnels"),
            ),
        }
    }

    fn come_up(tunnels: &Tunnels, events: &broadcast::Sender<Event>, n: TunnelName) {
        set_state(tunnels, events, &n, TunnelState::Connecting);
        let tunnels = Arc::clone(tunnels);
        let events = events.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let state = TunnelState::Connected {
                since_unix_secs: now().as_secs(),
            };
            set_state(&tunnels, &events, &n, state);
        });
    }
}
