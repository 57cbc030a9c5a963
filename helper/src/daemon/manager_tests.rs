//! The manager's paths in memory: [`FakeSessions`] stands in for [`crate::session`] (no TUN, no
//! routes, no root), so connecting, the first handshake, statistics, failures before and after
//! "up", option changes that reconnect, disconnecting while connecting, a network change
//! ("reconnecting" until the handshake it started completes), conflicts and stopping
//! every tunnel at shutdown are all tested in plain `cargo test`. The real sessions are tested by
//! the root end-to-end tests (tests/netns, group daemon).

use super::manager::{
    Caller, Command, Manager, OnWait, SessionFuture, SessionRunner, Settings, Source,
    SHUTDOWN_TIMEOUT_SECS,
};
use super::store::Store;
use crate::dataplane::{Control, DeviceSnapshot, PeerStats};
use crate::platform::firewall::KillSwitchMode;
use crate::session::{Running, Spec};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{broadcast, mpsc, oneshot};
use warren_proto::ipc::{
    DegradedReason, ErrorKind, Event, Health, IpcError, KillSwitch, Response, TunnelKind,
    TunnelName, TunnelOptions, TunnelState, TunnelStatus,
};

const KEY: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
const PEER: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

/// How long a test waits for something the manager does at once.
const PATIENCE: Duration = Duration::from_secs(5);

/// What the fake does with a session of a tunnel (by name; [`Script::Up`] by default).
#[derive(Clone)]
enum Script {
    /// Come up; answer statistics with a completed handshake; run until stopped.
    Up,
    /// Come up, but report no handshake: the tunnel stays connecting.
    UpWithoutHandshake,
    /// Fail before coming up (as `Prepared::new` does), with this error.
    FailBeforeUp(IpcError),
    /// Come up, then end on its own (the driver died) as soon as the first statistics are read.
    UpThenEnd,
    /// Never come up; end only when stopped.
    Hang,
    /// Wait for the network (an unresolvable name) for a moment, then come up as `Up`.
    WaitThenUp,
    /// Come up as `Up`; at the second statistics request the network changes (change 1 is
    /// reported, and that request is still answered as before it); the next two answers have
    /// the change's handshake pending, and from the fifth on it has completed.
    UpThenNetworkChange,
    /// Come up as `Up`, and at once the DNS guard gives up (the tunnel's DNS is lost).
    UpThenDnsLost,
}

/// What the fake was asked to run.
#[derive(Debug, Clone)]
struct Started {
    ifname: String,
    kill_switch: KillSwitchMode,
    allow_lan: bool,
}

/// The in-memory [`SessionRunner`].
struct FakeSessions {
    scripts: Mutex<HashMap<String, Script>>,
    started: mpsc::UnboundedSender<Started>,
    ended: mpsc::UnboundedSender<String>,
}

impl SessionRunner for FakeSessions {
    fn run(
        &self,
        spec: Spec,
        mut stop: oneshot::Receiver<()>,
        on_up: Box<dyn FnOnce(Running) + Send>,
        on_wait: OnWait,
    ) -> SessionFuture {
        let ifname = spec.ifname.clone();
        let script = self
            .scripts
            .lock()
            .unwrap()
            .get(&ifname)
            .cloned()
            .unwrap_or(Script::Up);
        let _ = self.started.send(Started {
            ifname: ifname.clone(),
            kill_switch: spec.kill_switch,
            allow_lan: spec.allow_lan,
        });
        let ended = self.ended.clone();
        let peer = spec.config.peers[0].public_key;
        let allowed_ips = spec.config.peers[0].allowed_ips.clone();
        Box::pin(async move {
            let handshake = match script {
                Script::FailBeforeUp(error) => return Err(error),
                Script::Hang => {
                    let _ = (&mut stop).await;
                    let _ = ended.send(ifname);
                    return Ok(());
                }
                Script::WaitThenUp => {
                    on_wait(Some("failed to resolve vpn.example: no network".into()));
                    tokio::select! {
                        _ = &mut stop => {
                            let _ = ended.send(ifname);
                            return Ok(());
                        }
                        _ = tokio::time::sleep(std::time::Duration::from_millis(300)) => {}
                    }
                    on_wait(None);
                    Some(SystemTime::now())
                }
                Script::Up
                | Script::UpThenEnd
                | Script::UpThenNetworkChange
                | Script::UpThenDnsLost => Some(SystemTime::now()),
                Script::UpWithoutHandshake => None,
            };
            let (control, mut requests) = mpsc::channel(8);
            let (changes, network_changes) = mpsc::unbounded_channel();
            let (dns_lost_tx, dns_lost) = oneshot::channel();
            on_up(Running {
                interface: ifname.clone(),
                control,
                network_changes,
                dns_lost,
            });
            if matches!(script, Script::UpThenDnsLost) {
                let _ = dns_lost_tx.send("/etc/resolv.conf was rewritten too often".into());
            }
            let mut handshake = handshake;
            let mut polls = 0_u64;
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    Some(request) = requests.recv() => {
                    let Control::Stats(reply) = request else { continue };
                        polls += 1;
                        let (mut network_changes, mut reconnecting) = (0, false);
                        if matches!(script, Script::UpThenNetworkChange) {
                            match polls {
                                1 => {}
                                2 => {
                                    let _ = changes.send(1);
                                    // Let the report arrive before this (older) answer.
                                    tokio::time::sleep(Duration::from_millis(50)).await;
                                }
                                3 | 4 => (network_changes, reconnecting) = (1, true),
                                _ => {
                                    network_changes = 1;
                                    if polls == 5 {
                                        handshake = Some(SystemTime::now());
                                    }
                                }
                            }
                        }
                        let _ = reply.send(DeviceSnapshot {
                            listen_port: 51820,
                            fwmark: None,
                            peers: vec![PeerStats {
                                public_key: peer,
                                endpoint: Some("198.18.0.2:51820".parse().unwrap()),
                                allowed_ips: allowed_ips.clone(),
                                last_handshake: handshake,
                                initiation_unanswered_for: None,
                                rx_bytes: 148 * polls,
                                tx_bytes: 92 * polls,
                            }],
                            network_changes,
                            reconnecting,
                        });
                        if matches!(script, Script::UpThenEnd) {
                            break;
                        }
                    }
                }
            }
            let _ = ended.send(ifname);
            Ok(())
        })
    }
}

/// A manager over a temporary directory with [`FakeSessions`]; the directory goes on drop.
struct Harness {
    dir: PathBuf,
    commands: mpsc::Sender<Command>,
    events: broadcast::Receiver<Event>,
    started: mpsc::UnboundedReceiver<Started>,
    ended: mpsc::UnboundedReceiver<String>,
    scripts: Arc<FakeSessions>,
    shutdown: Option<oneshot::Sender<()>>,
    manager: tokio::task::JoinHandle<()>,
}

impl Harness {
    fn start(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("warren-manager-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (started_tx, started) = mpsc::unbounded_channel();
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let fake = Arc::new(FakeSessions {
            scripts: Mutex::new(HashMap::new()),
            started: started_tx,
            ended: ended_tx,
        });
        let (events_tx, events) = broadcast::channel(256);
        let (commands, command_rx) = mpsc::channel(8);
        let manager = Manager::new(
            Settings {
                state_dir: dir.join("state"),
                store: Store::new(dir.join("tunnels")),
                run_hooks: false,
                runner: Arc::clone(&fake) as Arc<dyn SessionRunner>,
            },
            events_tx,
        );
        let (shutdown, stopped) = oneshot::channel::<()>();
        let manager = tokio::spawn(manager.run(command_rx, async {
            let _ = stopped.await;
        }));
        Harness {
            dir,
            commands,
            events,
            started,
            ended,
            scripts: fake,
            shutdown: Some(shutdown),
            manager,
        }
    }

    fn script(&self, tunnel: &str, script: Script) {
        self.scripts
            .scripts
            .lock()
            .unwrap()
            .insert(tunnel.to_owned(), script);
    }

    /// Sends a command built around a fresh reply channel; returns that channel's receiver.
    async fn send(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<Response, IpcError>>) -> Command,
    ) -> oneshot::Receiver<Result<Response, IpcError>> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).await.unwrap();
        answer
    }

    async fn ask(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<Response, IpcError>>) -> Command,
    ) -> Result<Response, IpcError> {
        answer(self.send(command).await).await
    }

    /// Brings up a user tunnel `tunnel` routing `allowed`, and waits for the answer.
    async fn connect(
        &self,
        tunnel: &str,
        allowed: &str,
        options: TunnelOptions,
    ) -> Result<Response, IpcError> {
        let answer = self.send_connect(tunnel, allowed, options).await;
        self::answer(answer).await
    }

    async fn send_connect(
        &self,
        tunnel: &str,
        allowed: &str,
        options: TunnelOptions,
    ) -> oneshot::Receiver<Result<Response, IpcError>> {
        let config = conf(allowed);
        self.send(|reply| Command::Connect {
            name: name(tunnel),
            source: Source::User { config, options },
            caller: user(),
            reply: Some(reply),
        })
        .await
    }

    async fn disconnect(&self, tunnel: &str) -> Result<Response, IpcError> {
        self.ask(|reply| Command::Disconnect {
            name: name(tunnel),
            caller: user(),
            reply,
        })
        .await
    }

    async fn status(&self, tunnel: &str) -> TunnelStatus {
        match self
            .ask(|reply| Command::Status {
                name: Some(name(tunnel)),
                reply,
            })
            .await
        {
            Ok(Response::Status { mut tunnels }) if tunnels.len() == 1 => tunnels.remove(0),
            other => panic!("status of {tunnel}: {other:?}"),
        }
    }

    /// Waits for `tunnel` to reach a state `want` accepts; the states seen on the way, in order.
    async fn wait_state(
        &mut self,
        tunnel: &str,
        want: impl Fn(&TunnelState) -> bool,
    ) -> Vec<TunnelState> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("{tunnel}: no wanted state in time; saw {seen:?}"))
                .unwrap();
            if let Event::TunnelState { name: n, state } = event {
                if n.as_str() == tunnel {
                    let done = want(&state);
                    seen.push(state);
                    if done {
                        return seen;
                    }
                }
            }
        }
    }

    async fn next_started(&mut self) -> Started {
        tokio::time::timeout(PATIENCE, self.started.recv())
            .await
            .expect("no session started in time")
            .unwrap()
    }

    async fn next_ended(&mut self) -> String {
        tokio::time::timeout(PATIENCE, self.ended.recv())
            .await
            .expect("no session ended in time")
            .unwrap()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn answer(
    answer: oneshot::Receiver<Result<Response, IpcError>>,
) -> Result<Response, IpcError> {
    tokio::time::timeout(PATIENCE, answer)
        .await
        .expect("the manager did not answer in time")
        .expect("the manager dropped the reply")
}

/// A configuration routing `allowed` (198.18.N.0/…), with the address 198.19.N.1/24 of its own.
fn conf(allowed: &str) -> warren_proto::config::TunnelConfig {
    let n = allowed.split('.').nth(2).unwrap();
    warren_proto::config::parse(
        &format!(
            "[Interface]\nPrivateKey = {KEY}\nAddress = 198.19.{n}.1/24\n\n[Peer]\nPublicKey = \
             {PEER}\nAllowedIPs = {allowed}\nEndpoint = 198.18.0.2:51820\n"
        ),
        None,
    )
    .unwrap()
}

fn name(s: &str) -> TunnelName {
    TunnelName::new(s).unwrap()
}

fn user() -> Caller {
    Caller {
        uid: Some(1000),
        admin: false,
    }
}

fn is_connected(state: &TunnelState) -> bool {
    matches!(state, TunnelState::Connected { .. })
}

#[tokio::test]
async fn a_tunnel_connects_on_its_first_handshake_and_goes_down_when_asked() {
    let mut h = Harness::start("happy");
    assert_eq!(
        h.connect("home", "198.18.2.0/24", TunnelOptions::default())
            .await,
        Ok(Response::Done)
    );
    let started = h.next_started().await;
    assert_eq!(started.ifname, "home");
    assert_eq!(started.kill_switch, KillSwitchMode::Auto);
    let seen = h.wait_state("home", is_connected).await;
    assert_eq!(seen.first(), Some(&TunnelState::Connecting), "{seen:?}");

    let status = h.status("home").await;
    assert_eq!(status.kind, TunnelKind::User);
    assert_eq!(status.interface.as_deref(), Some("home"));
    assert!(is_connected(&status.state));
    assert_eq!(status.peers.len(), 1);
    assert!(status.peers[0].last_handshake_unix_secs.is_some());
    assert!(status.peers[0].rx_bytes > 0);
    assert!(matches!(status.health, Some(Health::Healthy)), "{status:?}");

    assert_eq!(h.disconnect("home").await, Ok(Response::Done));
    assert_eq!(h.next_ended().await, "home");
    let seen = h
        .wait_state("home", |s| *s == TunnelState::Disconnected)
        .await;
    assert_eq!(seen.first(), Some(&TunnelState::Disconnecting), "{seen:?}");
    let gone = h.disconnect("home").await.unwrap_err();
    assert_eq!(gone.kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn without_a_handshake_the_tunnel_stays_connecting() {
    let h = Harness::start("nohandshake");
    h.script("quiet", Script::UpWithoutHandshake);
    assert_eq!(
        h.connect("quiet", "198.18.2.0/24", TunnelOptions::default())
            .await,
        Ok(Response::Done)
    );
    // Two statistics rounds (one at "up", one a tick later) without a handshake.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = h.status("quiet").await;
    assert_eq!(status.state, TunnelState::Connecting);
    assert_eq!(status.health, None);
    assert_eq!(status.peers[0].last_handshake_unix_secs, None);
}

#[tokio::test]
async fn a_failure_before_up_answers_the_connect_with_its_kind() {
    let mut h = Harness::start("failbefore");
    h.script(
        "away",
        Script::FailBeforeUp(IpcError::network(
            "user tunnel 'away': failed to resolve the endpoint vpn.example:51820",
        )),
    );
    let error = h
        .connect("away", "198.18.2.0/24", TunnelOptions::default())
        .await
        .unwrap_err();
    assert_eq!(error.kind, ErrorKind::Network);
    let seen = h
        .wait_state("away", |s| matches!(s, TunnelState::Error { .. }))
        .await;
    let Some(TunnelState::Error { reason }) = seen.last() else {
        unreachable!()
    };
    assert!(reason.contains("failed to resolve"), "{reason}");
    // The same name may be brought up again once the cause is gone.
    h.script("away", Script::Up);
    assert_eq!(
        h.connect("away", "198.18.2.0/24", TunnelOptions::default())
            .await,
        Ok(Response::Done)
    );
    h.wait_state("away", is_connected).await;
}

#[tokio::test]
async fn a_session_that_ends_on_its_own_is_an_error() {
    let mut h = Harness::start("dies");
    h.script("flaky", Script::UpThenEnd);
    assert_eq!(
        h.connect("flaky", "198.18.2.0/24", TunnelOptions::default())
            .await,
        Ok(Response::Done)
    );
    assert_eq!(h.next_ended().await, "flaky");
    let seen = h
        .wait_state("flaky", |s| matches!(s, TunnelState::Error { .. }))
        .await;
    let Some(TunnelState::Error { reason }) = seen.last() else {
        unreachable!()
    };
    assert!(reason.contains("stopped unexpectedly"), "{reason}");
}

#[tokio::test]
async fn new_options_reconnect_an_active_tunnel_with_them() {
    let mut h = Harness::start("options");
    h.connect("home", "198.18.2.0/24", TunnelOptions::default())
        .await
        .unwrap();
    assert_eq!(h.next_started().await.kill_switch, KillSwitchMode::Auto);
    h.wait_state("home", is_connected).await;

    let options = TunnelOptions {
        kill_switch: KillSwitch::On,
        allow_lan: true,
    };
    assert_eq!(
        h.ask(|reply| Command::SetOptions {
            name: name("home"),
            options,
            caller: user(),
            reply,
        })
        .await,
        Ok(Response::Done)
    );
    // The old session goes first, then one with the new options comes up and connects.
    assert_eq!(h.next_ended().await, "home");
    let again = h.next_started().await;
    assert_eq!(again.kill_switch, KillSwitchMode::On);
    assert!(again.allow_lan);
    h.wait_state("home", is_connected).await;
    assert_eq!(h.status("home").await.options, options);
}

#[tokio::test]
async fn a_tunnel_waiting_for_the_network_says_so_then_connects_by_itself() {
    let mut h = Harness::start("waiting");
    h.script("road", Script::WaitThenUp);
    // The request is accepted while it waits (it comes up by itself).
    assert_eq!(
        h.connect("road", "198.18.2.0/24", TunnelOptions::default())
            .await,
        Ok(Response::Done)
    );
    h.next_started().await;
    h.wait_state(
        "road",
        |s| matches!(s, TunnelState::WaitingForNetwork { reason } if reason.contains("no network")),
    )
    .await;
    h.wait_state("road", is_connected).await;

    // Taken down while waiting: no error, nothing left.
    h.script("late", Script::WaitThenUp);
    h.connect("late", "198.18.3.0/24", TunnelOptions::default())
        .await
        .unwrap();
    h.next_started().await;
    h.wait_state("late", |s| {
        matches!(s, TunnelState::WaitingForNetwork { .. })
    })
    .await;
    assert_eq!(h.disconnect("late").await, Ok(Response::Done));
    h.wait_state("late", |s| *s == TunnelState::Disconnected)
        .await;
}

#[tokio::test]
async fn a_network_change_makes_a_connected_tunnel_reconnecting_until_its_handshake() {
    let mut h = Harness::start("netchange");
    h.script("laptop", Script::UpThenNetworkChange);
    h.connect("laptop", "198.18.2.0/24", TunnelOptions::default())
        .await
        .unwrap();
    h.next_started().await;
    h.wait_state("laptop", is_connected).await;
    let reconnecting = TunnelState::Reconnecting {
        reason: "network changed".into(),
    };
    let seen = h.wait_state("laptop", |s| *s == reconnecting).await;
    assert_eq!(seen, vec![reconnecting.clone()], "straight from connected");
    // The answer taken before the change, and the two with the handshake pending, keep it so.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let status = h.status("laptop").await;
    assert_eq!(status.state, reconnecting);
    assert_eq!(status.health, None, "no health verdict while reconnecting");
    assert_eq!(reconnecting.to_string(), "reconnecting (network changed)");
    let seen = h.wait_state("laptop", is_connected).await;
    assert_eq!(seen.len(), 1, "back to connected at once: {seen:?}");
    let status = h.status("laptop").await;
    assert!(is_connected(&status.state) && status.health.is_some());
}

#[tokio::test]
async fn a_tunnel_whose_dns_was_lost_is_degraded_and_says_why() {
    let mut h = Harness::start("dnslost");
    h.script("laptop", Script::UpThenDnsLost);
    h.connect("laptop", "198.18.2.0/24", TunnelOptions::default())
        .await
        .unwrap();
    h.next_started().await;
    h.wait_state("laptop", is_connected).await;
    let lost = DegradedReason::DnsNotApplied {
        detail: "/etc/resolv.conf was rewritten too often".into(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = h.status("laptop").await;
        if status.health
            == Some(Health::Degraded {
                reasons: vec![lost.clone()],
            })
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            status.health
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        lost.to_string(),
        "the tunnel's DNS is not applied: /etc/resolv.conf was rewritten too often"
    );
}

#[tokio::test]
async fn taking_a_tunnel_down_before_it_is_up_answers_both_requests() {
    let mut h = Harness::start("race");
    h.script("slow", Script::Hang);
    let connecting = h
        .send_connect("slow", "198.18.2.0/24", TunnelOptions::default())
        .await;
    h.next_started().await;
    assert_eq!(h.disconnect("slow").await, Ok(Response::Done));
    let refused = answer(connecting).await.unwrap_err();
    assert!(
        refused.message.contains("taken down before it was up"),
        "{refused:?}"
    );
    assert_eq!(h.next_ended().await, "slow");
    h.wait_state("slow", |s| *s == TunnelState::Disconnected)
        .await;
}

#[tokio::test]
async fn overlapping_routes_and_a_second_up_are_refused_without_a_session() {
    let mut h = Harness::start("conflict");
    h.connect("home", "198.18.2.0/24", TunnelOptions::default())
        .await
        .unwrap();
    h.next_started().await;
    let twice = h
        .connect("home", "198.18.2.0/24", TunnelOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(twice.kind, ErrorKind::Conflict { .. }),
        "{twice:?}"
    );
    let overlap = h
        .connect("work", "198.18.2.128/25", TunnelOptions::default())
        .await
        .unwrap_err();
    assert_eq!(
        overlap.kind,
        ErrorKind::Conflict {
            with: Some(name("home"))
        }
    );
    // Neither refusal started a session.
    assert!(h.started.try_recv().is_err());
    // A tunnel that overlaps nothing may run beside it.
    h.connect("work", "198.18.3.0/24", TunnelOptions::default())
        .await
        .unwrap();
    assert_eq!(h.next_started().await.ifname, "work");
}

#[tokio::test]
async fn stopping_the_daemon_takes_every_tunnel_down_first() {
    let mut h = Harness::start("shutdown");
    for (tunnel, allowed) in [("home", "198.18.2.0/24"), ("work", "198.18.3.0/24")] {
        h.connect(tunnel, allowed, TunnelOptions::default())
            .await
            .unwrap();
        h.wait_state(tunnel, is_connected).await;
    }
    drop(h.shutdown.take());
    let mut ended = vec![h.next_ended().await, h.next_ended().await];
    ended.sort();
    assert_eq!(ended, ["home", "work"]);
    tokio::time::timeout(Duration::from_secs(SHUTDOWN_TIMEOUT_SECS), &mut h.manager)
        .await
        .expect("the manager did not stop")
        .unwrap();
    let mut stopping = false;
    while let Ok(event) = h.events.try_recv() {
        stopping |= matches!(event, Event::HelperStopping);
    }
    assert!(stopping, "clients were not told the helper is stopping");
}
