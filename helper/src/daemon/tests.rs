//! The daemon's IPC end to end, in memory: a real manager (with a temporary system tunnels
//! directory) behind the real per-connection server, reached through `tokio::io::duplex` by the
//! real `warren_proto` client and by raw byte streams that misbehave.
//!
//! Nothing here creates an interface: the only tunnels brought up are refused by the planner
//! before any change (a routing loop), which still walks the state machine and its events.

use super::manager::{Caller, Manager, Settings};
use super::server::{self, Shared};
use super::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use warren_proto::ipc::{
    Client, ClientMessage, ErrorKind, Event, EventTopic, HelperMessage, Request, Response,
    TunnelKind, TunnelName, TunnelOptions, TunnelState, PROTOCOL_VERSION,
};

const KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PEER: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

fn conf(endpoint: &str) -> String {
    format!(
        "[Interface]\nPrivateKey = {KEY}\nAddress = 198.19.0.1/24\n\n[Peer]\nPublicKey = {PEER}\n\
         AllowedIPs = 198.18.2.0/24\nEndpoint = {endpoint}\n"
    )
}

fn name(s: &str) -> TunnelName {
    TunnelName::new(s).unwrap()
}

/// A manager and server over a temporary directory; removed on drop.
struct Daemon {
    dir: PathBuf,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl Daemon {
    fn start(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("warren-daemon-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (events, _) = broadcast::channel(64);
        let (commands, command_rx) = mpsc::channel(8);
        let manager = Manager::new(
            Settings {
                state_dir: dir.join("state"),
                store: Store::new(dir.join("tunnels")),
                run_hooks: false,
                runner: Arc::new(super::manager::RealSessions),
            },
            events.clone(),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(manager.run(command_rx, async {
            let _ = stopped.await;
        }));
        let shared = Arc::new(Shared {
            commands,
            events,
            helper_version: "test".into(),
            frame_timeout: Duration::from_millis(300),
        });
        Daemon {
            dir,
            shared,
            _stop: stop,
        }
    }

    /// A raw connection served as `caller`.
    fn raw(&self, caller: Caller) -> DuplexStream {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        tokio::spawn(server::serve(
            theirs,
            caller,
            "test client".into(),
            Arc::clone(&self.shared),
        ));
        ours
    }

    async fn client(&self, caller: Caller) -> Client {
        Client::handshake(self.raw(caller), "test").await.unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn root() -> Caller {
    Caller {
        uid: Some(0),
        admin: true,
    }
}

fn member() -> Caller {
    Caller {
        uid: Some(1000),
        admin: false,
    }
}

async fn write_frame(stream: &mut DuplexStream, payload: &[u8]) {
    stream
        .write_all(&(payload.len() as u32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(payload).await.unwrap();
}

/// The next message from the helper, or `None` once it closed the connection.
async fn read_message(stream: &mut DuplexStream) -> Option<HelperMessage> {
    let read = async {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.ok()?;
        let mut payload = vec![0u8; u32::from_be_bytes(len) as usize];
        stream.read_exact(&mut payload).await.ok()?;
        Some(serde_json::from_slice(&payload).unwrap())
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the helper neither answered nor closed within 5 s")
}

async fn raw_hello(stream: &mut DuplexStream) {
    let hello = serde_json::to_vec(&ClientMessage::hello("raw")).unwrap();
    write_frame(stream, &hello).await;
    assert!(matches!(
        read_message(stream).await,
        Some(HelperMessage::Hello { .. })
    ));
}

async fn tunnels(client: &Client) -> Vec<String> {
    match client.request(Request::ListTunnels).await.unwrap() {
        Response::Tunnels { tunnels } => tunnels.iter().map(|t| t.name.to_string()).collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn concurrent_clients_import_list_status_and_remove() {
    let daemon = Daemon::start("roundtrip");
    let admin = daemon.client(root()).await;
    let user = daemon.client(member()).await;
    let config = warren_proto::config::parse(&conf("198.18.9.1:51820"), None).unwrap();

    // Only root installs system tunnels.
    let refused = user
        .request(Request::ImportSystemTunnel {
            name: name("office"),
            config: config.clone(),
            replace: false,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::NotAuthorized);
    assert!(refused.message.contains("uid 1000"), "{refused}");

    // Several clients at once, each with requests in flight together.
    let admin = Arc::new(admin);
    let mut imports = tokio::task::JoinSet::new();
    for i in 0..4 {
        let (admin, config) = (Arc::clone(&admin), config.clone());
        imports.spawn(async move {
            let request = Request::ImportSystemTunnel {
                name: name(&format!("t{i}")),
                config,
                replace: false,
            };
            admin.request(request).await
        });
    }
    while let Some(result) = imports.join_next().await {
        assert_eq!(result.unwrap(), Ok(Response::Done));
    }
    let (a, b) = tokio::join!(tunnels(&admin), tunnels(&user));
    assert_eq!(a, vec!["t0", "t1", "t2", "t3"]);
    assert_eq!(a, b);

    let installed = daemon.dir.join("tunnels/t0.conf");
    let text = std::fs::read_to_string(&installed).unwrap();
    assert!(text.contains(KEY), "the file keeps the key for the daemon");
    match user
        .request(Request::Status {
            name: Some(name("t0")),
        })
        .await
        .unwrap()
    {
        Response::Status { tunnels } => {
            assert_eq!(tunnels.len(), 1);
            assert_eq!(tunnels[0].kind, TunnelKind::System);
            assert_eq!(tunnels[0].state, TunnelState::Disconnected);
            let json = serde_json::to_string(&tunnels).unwrap();
            assert!(!json.contains(KEY), "{json}");
        }
        other => panic!("{other:?}"),
    }
    let missing = user
        .request(Request::Status {
            name: Some(name("nope")),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound);
    let again = admin
        .request(Request::ImportSystemTunnel {
            name: name("t0"),
            config,
            replace: false,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(again.kind, ErrorKind::Conflict { .. }),
        "{again:?}"
    );

    assert_eq!(
        admin
            .request(Request::RemoveSystemTunnel { name: name("t3") })
            .await,
        Ok(Response::Done)
    );
    assert!(!daemon.dir.join("tunnels/t3.conf").exists());
    assert_eq!(tunnels(&user).await, vec!["t0", "t1", "t2"]);
}

#[tokio::test]
async fn subscribers_see_the_state_machine_of_a_refused_tunnel() {
    let daemon = Daemon::start("events");
    let watchers = [
        daemon.client(member()).await,
        daemon.client(root()).await,
        daemon.client(member()).await,
    ];
    let mut receivers = Vec::new();
    for watcher in &watchers {
        let events = watcher.events();
        let subscribe = Request::Subscribe {
            topics: vec![EventTopic::State],
        };
        assert_eq!(watcher.request(subscribe).await, Ok(Response::Done));
        receivers.push(events);
    }
    let user = daemon.client(member()).await;
    // The endpoint lies inside AllowedIPs: the planner refuses it before any change.
    let config = warren_proto::config::parse(&conf("198.18.2.1:51820"), None).unwrap();
    let error = user
        .request(Request::ConnectUser {
            name: name("loop"),
            config,
            options: TunnelOptions::default(),
        })
        .await
        .unwrap_err();
    assert!(
        error.message.contains("inside AllowedIPs 198.18.2.0/24"),
        "{error}"
    );
    assert!(!error.message.contains(KEY));
    for events in &mut receivers {
        let mut states = Vec::new();
        while states.len() < 2 {
            let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
                .await
                .unwrap()
                .unwrap();
            if let Event::TunnelState { name: n, state } = event {
                assert_eq!(n, name("loop"));
                states.push(state);
            }
        }
        assert_eq!(states[0], TunnelState::Connecting);
        assert!(
            matches!(&states[1], TunnelState::Error { reason } if reason.contains("inside AllowedIPs"))
        );
    }
    // The failed tunnel is listed with its error until it is acknowledged.
    match user.request(Request::Status { name: None }).await.unwrap() {
        Response::Status { tunnels } => {
            assert_eq!(tunnels.len(), 1);
            assert!(matches!(tunnels[0].state, TunnelState::Error { .. }));
        }
        other => panic!("{other:?}"),
    }
    // Another user may not acknowledge it; its owner may.
    let stranger = daemon
        .client(Caller {
            uid: Some(1001),
            admin: false,
        })
        .await;
    let refused = stranger
        .request(Request::Disconnect { name: name("loop") })
        .await
        .unwrap_err();
    assert_eq!(refused.kind, ErrorKind::NotAuthorized);
    assert_eq!(
        user.request(Request::Disconnect { name: name("loop") })
            .await,
        Ok(Response::Done)
    );
    let gone = user
        .request(Request::Disconnect { name: name("loop") })
        .await
        .unwrap_err();
    assert_eq!(gone.kind, ErrorKind::NotFound);
    assert!(!daemon.dir.join("state/loop.journal").exists());
}

#[tokio::test]
async fn bad_frames_close_only_their_own_connection() {
    let daemon = Daemon::start("frames");
    let good = daemon.client(member()).await;
    assert_eq!(tunnels(&good).await, Vec::<String>::new());

    // Garbage after the hello: told why, then closed.
    let mut garbage = daemon.raw(member());
    raw_hello(&mut garbage).await;
    write_frame(&mut garbage, b"this is not json").await;
    match read_message(&mut garbage).await {
        Some(HelperMessage::Closing { reason }) => {
            assert_eq!(reason.kind, ErrorKind::InvalidRequest);
            assert!(reason.message.contains("malformed"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read_message(&mut garbage).await, None);
    assert_eq!(tunnels(&good).await, Vec::<String>::new());

    // An oversized frame is refused on its length alone.
    let mut oversized = daemon.raw(member());
    raw_hello(&mut oversized).await;
    oversized.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    match read_message(&mut oversized).await {
        Some(HelperMessage::Closing { reason }) => {
            assert!(reason.message.contains("refused a frame"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read_message(&mut oversized).await, None);

    // A request before hello.
    let mut early = daemon.raw(member());
    let request = ClientMessage::Request {
        id: 1,
        request: Request::ListTunnels,
    };
    write_frame(&mut early, &serde_json::to_vec(&request).unwrap()).await;
    assert!(matches!(
        read_message(&mut early).await,
        Some(HelperMessage::Closing { .. })
    ));

    // A slow drip: the frame began and does not complete within the frame timeout.
    let mut slow = daemon.raw(member());
    raw_hello(&mut slow).await;
    slow.write_all(&100u32.to_be_bytes()).await.unwrap();
    slow.write_all(b"{\"request\":").await.unwrap();
    // The good client is served while the slow one hangs.
    assert_eq!(tunnels(&good).await, Vec::<String>::new());
    match read_message(&mut slow).await {
        Some(HelperMessage::Closing { reason }) => {
            assert!(reason.message.contains("took too long"), "{reason}")
        }
        other => panic!("{other:?}"),
    }

    // A truncated frame: the client goes away mid-frame.
    let mut truncated = daemon.raw(member());
    raw_hello(&mut truncated).await;
    truncated.write_all(&100u32.to_be_bytes()).await.unwrap();
    truncated.write_all(b"{\"req").await.unwrap();
    truncated.shutdown().await.unwrap();
    assert_eq!(read_message(&mut truncated).await, None);

    // A wrong protocol version gets the helper's hello, then the connection closes.
    let mut old = daemon.raw(member());
    let hello = br#"{"hello":{"version":0,"client":"old"}}"#;
    write_frame(&mut old, hello).await;
    assert!(matches!(
        read_message(&mut old).await,
        Some(HelperMessage::Hello {
            version: PROTOCOL_VERSION,
            ..
        })
    ));
    assert_eq!(read_message(&mut old).await, None);

    // Through all of it, the well-behaved client kept working.
    assert_eq!(tunnels(&good).await, Vec::<String>::new());
    assert!(!good.is_closed());
}
