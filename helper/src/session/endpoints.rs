//! Where a running tunnel's peers are, kept current: host-name endpoints resolved (at start, and
//! again while the peer does not answer), and the kill switch kept on the endpoints the data
//! plane actually uses. The session runs one [`Watcher`] next to its driver.
//!
//! **Re-resolution.** An `Endpoint = host.name:port` is resolved when the tunnel starts; after
//! that, a peer is re-resolved when a handshake initiation to it has waited
//! [`UNANSWERED_BEFORE_RERESOLVE`] without a response (the core times this from the first try of
//! a round of retries), and then again every [`RERESOLVE_INTERVAL`] for as long as it stays
//! unanswered — the idea of wireguard-tools' `reresolve-dns.sh`, which waits for a handshake
//! older than 135 s, but sooner. Resolution runs on the resolver's blocking threads (tokio's
//! `lookup_host`), in tasks of the watcher's own, so the data plane never waits for it. A new
//! address is applied at once through [`Control::Reresolved`], which the driver honours only if
//! the peer is *still* unanswered: an endpoint the peer roamed to by authenticated packets in the
//! meantime is never overridden. Of the name's addresses, the current endpoint is kept if it is
//! among them (round-robin DNS does not move a working peer), else the first IPv4 one, as wg(8)
//! prefers.
//!
//! **The kill switch follows.** Every [`WATCH_INTERVAL`] the watcher reads the driver's snapshot
//! (current endpoints after roaming or `wg set`, listen port, fwmark), re-plans the kill switch
//! from it and, when the plan changed, updates the firewall atomically
//! ([`firewall::update`]). A re-resolved address is added to the firewall *before* the driver
//! is told to use it, so its first packet is not refused.
//!
//! **The endpoints in use, published** ([`Watcher::with_endpoint_updates`]): on the same look,
//! the addresses the data plane sends to now, for a macOS full tunnel's endpoint host routes to
//! follow them ([`super::network`]).
//!
//! **When the network changes** ([`Watcher::with_resolve_requests`], from [`super::network`]):
//! every name is resolved again at once, and the result applied as above (only while the peer
//! has not answered: the handshake started for the change has not completed yet).
//!
//! **At start** ([`retry_resolving`]): a name that does not resolve is retried with
//! [`backoff`] (1, 2, 4, 8, then every [`MAX_BACKOFF`] seconds) while the caller shows "waiting
//! for network"; a name that can never be valid never gets here (the configuration parser refuses
//! it).

use crate::dataplane::{Control, DeviceSnapshot};
use crate::platform::firewall::{self, KillSwitchInput, KillSwitchPlan};
use ipnet::IpNet;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use warren_proto::key::PublicKey;

/// How long a handshake initiation may go unanswered before the peer's name is resolved again.
pub const UNANSWERED_BEFORE_RERESOLVE: Duration = Duration::from_secs(15);

/// How often a peer that stays unanswered is resolved again.
pub const RERESOLVE_INTERVAL: Duration = Duration::from_secs(15);

/// How often the watcher looks at the data plane.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// The longest wait between two attempts to resolve at start.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15);

/// The wait before attempt `attempt + 1` at start (`attempt` failed ones so far, from 1): 1, 2,
/// 4, 8 s, then [`MAX_BACKOFF`].
pub fn backoff(attempt: u32) -> Duration {
    let secs = 1_u64 << attempt.saturating_sub(1).min(6);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// Runs `attempt` until it succeeds or fails with an error `transient` does not accept. After
/// each transient failure, `on_wait` hears the error (the caller shows "waiting for network") and
/// `sleep` waits [`backoff`]; once an attempt succeeds after a wait, `on_wait(None)`. Time is
/// the caller's (`sleep`), so the schedule is tested without waiting.
pub async fn retry_resolving<T, E, Fut, S>(
    mut attempt: impl FnMut() -> Fut,
    transient: impl Fn(&E) -> bool,
    on_wait: &(dyn Fn(Option<&E>) + Send + Sync),
    mut sleep: impl FnMut(Duration) -> S,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
    S: Future<Output = ()>,
{
    let mut failures = 0_u32;
    loop {
        match attempt().await {
            Ok(value) => {
                if failures > 0 {
                    on_wait(None);
                }
                return Ok(value);
            }
            Err(error) if transient(&error) => {
                failures += 1;
                on_wait(Some(&error));
                sleep(backoff(failures)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

/// Resolves `host:port` (on the resolver's blocking threads), preferring `current` if the name
/// still has it; see [`pick`].
pub async fn resolve(host: &str, port: u16, current: Option<SocketAddr>) -> io::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    pick(&addrs, current)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the name has no addresses"))
}

/// Of a name's addresses: `current` if it is one of them, else the first IPv4 one (as wg(8)
/// prefers: it works on more networks), else the first.
pub fn pick(addrs: &[SocketAddr], current: Option<SocketAddr>) -> Option<SocketAddr> {
    let canonical = |a: &SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    if let Some(current) = current {
        if addrs.iter().any(|a| canonical(a) == canonical(&current)) {
            return Some(current);
        }
    }
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
}

/// When one peer's name is due for re-resolution: pure, fed the core's "unanswered for".
#[derive(Debug, Default, Clone, Copy)]
pub struct Schedule {
    last_attempt: Option<Instant>,
    in_flight: bool,
}

impl Schedule {
    /// Whether to resolve now: an initiation has waited [`UNANSWERED_BEFORE_RERESOLVE`], no
    /// resolution is under way, and the last attempt is [`RERESOLVE_INTERVAL`] old (or none was
    /// made during this silence).
    pub fn due(&self, now: Instant, unanswered_for: Option<Duration>) -> bool {
        let Some(unanswered_for) = unanswered_for else {
            return false;
        };
        if self.in_flight || unanswered_for < UNANSWERED_BEFORE_RERESOLVE {
            return false;
        }
        // An attempt made before this silence began does not count.
        let silence_began = now.checked_sub(unanswered_for);
        match (self.last_attempt, silence_began) {
            (Some(at), Some(began)) if at >= began => now.duration_since(at) >= RERESOLVE_INTERVAL,
            _ => true,
        }
    }

    /// A resolution started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.last_attempt = Some(now);
        self.in_flight = true;
    }

    /// The resolution finished (either way).
    pub fn finished(&mut self) {
        self.in_flight = false;
    }
}

/// The next request on `requests`, or never when there is none (or it closed).
/// Publishes `snapshot`'s endpoint addresses to `out` when they differ from the last ones.
fn publish_endpoints(out: &watch::Sender<Vec<IpAddr>>, snapshot: &DeviceSnapshot) {
    let now: Vec<IpAddr> = snapshot
        .peers
        .iter()
        .filter_map(|p| p.endpoint.map(|e| e.ip()))
        .collect();
    out.send_if_modified(|last| {
        if *last == now {
            return false;
        }
        *last = now;
        true
    });
}

async fn next_request(requests: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match requests {
        Some(rx) => match rx.recv().await {
            Some(()) => Some(()),
            None => {
                *requests = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}

/// A peer whose endpoint is a host name.
#[derive(Debug, Clone)]
pub struct HostPeer {
    /// The peer.
    pub peer: PublicKey,
    /// Its host name.
    pub host: String,
    /// Its port.
    pub port: u16,
}

/// What the kill switch is re-planned from, besides the data plane's snapshot.
pub struct KillSwitchBase {
    /// The plan in force.
    pub plan: KillSwitchPlan,
    /// The tunnel interface.
    pub ifname: String,
    /// `DNS =`.
    pub dns_servers: Vec<IpAddr>,
    /// `Address =`.
    pub tunnel_addresses: Vec<IpNet>,
    /// "Allow LAN".
    pub allow_lan: bool,
}

impl KillSwitchBase {
    /// The plan for `endpoints` with the socket as the snapshot has it; `None` if it cannot be
    /// planned (no endpoint at all yet), in which case the plan in force stays.
    fn replan(
        &self,
        snapshot: &DeviceSnapshot,
        endpoints: &[SocketAddr],
    ) -> Option<KillSwitchPlan> {
        firewall::plan(KillSwitchInput {
            ifname: &self.ifname,
            endpoints,
            fwmark: snapshot.fwmark,
            listen_port: Some(snapshot.listen_port),
            dns_servers: &self.dns_servers,
            tunnel_addresses: &self.tunnel_addresses,
            allow_lan: self.allow_lan,
        })
        .ok()
    }

    /// Moves the firewall to `plan` if it differs; on failure the old plan stays (and the next
    /// look tries again).
    async fn follow(&mut self, plan: KillSwitchPlan) {
        if plan == self.plan {
            return;
        }
        match firewall::update(&self.plan, &plan).await {
            Ok(()) => self.plan = plan,
            Err(e) => tracing::warn!("{}: {e:#}", self.ifname),
        }
    }
}

/// The session's companion to the driver; see the module docs.
pub struct Watcher {
    ifname: String,
    control: mpsc::Sender<Control>,
    hosts: Vec<HostPeer>,
    schedules: HashMap<PublicKey, Schedule>,
    kill_switch: Option<KillSwitchBase>,
    /// Requests to resolve every host name now (the network changed).
    resolve_requests: Option<mpsc::Receiver<()>>,
    /// Where the endpoint addresses in use are published (macOS full tunnels' host routes
    /// follow them, [`super::network`]).
    endpoints_out: Option<watch::Sender<Vec<IpAddr>>>,
}

impl Watcher {
    /// A watcher over the driver behind `control`.
    pub fn new(
        ifname: String,
        control: mpsc::Sender<Control>,
        hosts: Vec<HostPeer>,
        kill_switch: Option<KillSwitchBase>,
    ) -> Self {
        Watcher {
            ifname,
            control,
            hosts,
            schedules: HashMap::new(),
            kill_switch,
            resolve_requests: None,
            endpoints_out: None,
        }
    }

    /// Also publishes, on each look, the addresses of the endpoints the data plane uses (after
    /// roaming or `wg set`), in peer order, to `endpoints` when they changed.
    pub fn with_endpoint_updates(mut self, endpoints: watch::Sender<Vec<IpAddr>>) -> Self {
        self.endpoints_out = Some(endpoints);
        self
    }

    /// Also resolves every host name (not already being resolved) on each request from
    /// `requests`: the network changed ([`super::network`]).
    pub fn with_resolve_requests(mut self, requests: mpsc::Receiver<()>) -> Self {
        self.resolve_requests = Some(requests);
        self
    }

    /// Runs until the driver goes away (its control channel closes). Cancel-safe between steps:
    /// the session drops it before undoing the journal, so no update can follow the undo.
    pub async fn run(mut self) {
        if self.hosts.is_empty() && self.kill_switch.is_none() && self.endpoints_out.is_none() {
            return std::future::pending().await;
        }
        let mut resolving: JoinSet<(PublicKey, io::Result<SocketAddr>)> = JoinSet::new();
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let Some(snapshot) = self.snapshot().await else { return };
                    self.look(&snapshot, &mut resolving).await;
                }
                Some(Ok((peer, result))) = resolving.join_next() => {
                    self.resolved(peer, result).await;
                }
                Some(()) = next_request(&mut self.resolve_requests) => {
                    let Some(snapshot) = self.snapshot().await else { return };
                    self.resolve_all(&snapshot, &mut resolving);
                }
            }
        }
    }

    /// Resolves every host name now (the network changed), except those already in flight.
    fn resolve_all(
        &mut self,
        snapshot: &DeviceSnapshot,
        resolving: &mut JoinSet<(PublicKey, io::Result<SocketAddr>)>,
    ) {
        let now = Instant::now();
        for host in &self.hosts {
            let schedule = self.schedules.entry(host.peer).or_default();
            if schedule.in_flight {
                continue;
            }
            schedule.started(now);
            tracing::info!(
                "{}: the network changed; resolving {} again",
                self.ifname,
                host.host
            );
            let current = snapshot
                .peers
                .iter()
                .find(|p| p.public_key == host.peer)
                .and_then(|p| p.endpoint);
            let (peer, name, port) = (host.peer, host.host.clone(), host.port);
            resolving.spawn(async move { (peer, resolve(&name, port, current).await) });
        }
    }

    async fn snapshot(&self) -> Option<DeviceSnapshot> {
        let (tx, rx) = oneshot::channel();
        self.control.send(Control::Stats(tx)).await.ok()?;
        rx.await.ok()
    }

    /// One look at the data plane: the kill switch follows its endpoints, and unanswered peers
    /// with host names are resolved again.
    async fn look(
        &mut self,
        snapshot: &DeviceSnapshot,
        resolving: &mut JoinSet<(PublicKey, io::Result<SocketAddr>)>,
    ) {
        if let Some(kill_switch) = &mut self.kill_switch {
            let endpoints: Vec<SocketAddr> =
                snapshot.peers.iter().filter_map(|p| p.endpoint).collect();
            if let Some(plan) = kill_switch.replan(snapshot, &endpoints) {
                kill_switch.follow(plan).await;
            }
        }
        if let Some(out) = &self.endpoints_out {
            publish_endpoints(out, snapshot);
        }
        let now = Instant::now();
        for host in &self.hosts {
            let Some(stats) = snapshot.peers.iter().find(|p| p.public_key == host.peer) else {
                continue;
            };
            let schedule = self.schedules.entry(host.peer).or_default();
            if !schedule.due(now, stats.initiation_unanswered_for) {
                continue;
            }
            schedule.started(now);
            tracing::info!(
                "{}: peer {} has not answered a handshake for {} s; resolving {} again",
                self.ifname,
                host.peer,
                stats
                    .initiation_unanswered_for
                    .unwrap_or_default()
                    .as_secs(),
                host.host
            );
            let (peer, name, port, current) =
                (host.peer, host.host.clone(), host.port, stats.endpoint);
            resolving.spawn(async move { (peer, resolve(&name, port, current).await) });
        }
    }

    /// A re-resolution finished: a new address goes into the kill switch, then to the driver.
    async fn resolved(&mut self, peer: PublicKey, result: io::Result<SocketAddr>) {
        if let Some(schedule) = self.schedules.get_mut(&peer) {
            schedule.finished();
        }
        let Some(host) = self.hosts.iter().find(|h| h.peer == peer) else {
            return;
        };
        let address = match result {
            Ok(address) => address,
            Err(e) => {
                tracing::warn!(
                    "{}: failed to resolve {}:{} (peer {peer}) again: {e}; trying again in {} s",
                    self.ifname,
                    host.host,
                    host.port,
                    RERESOLVE_INTERVAL.as_secs()
                );
                return;
            }
        };
        let Some(snapshot) = self.snapshot().await else {
            return;
        };
        let current = snapshot
            .peers
            .iter()
            .find(|p| p.public_key == peer)
            .and_then(|p| p.endpoint);
        if current == Some(address) {
            tracing::info!(
                "{}: {} still resolves to {address}, the endpoint in use",
                self.ifname,
                host.host
            );
            return;
        }
        // The firewall first, so that the first packet to the new address is not refused.
        if let Some(kill_switch) = &mut self.kill_switch {
            let mut endpoints: Vec<SocketAddr> = snapshot
                .peers
                .iter()
                .filter(|p| p.public_key != peer)
                .filter_map(|p| p.endpoint)
                .collect();
            endpoints.push(address);
            endpoints.extend(current);
            if let Some(plan) = kill_switch.replan(&snapshot, &endpoints) {
                kill_switch.follow(plan).await;
            }
        }
        let (reply, applied) = oneshot::channel();
        let request = Control::Reresolved {
            peer,
            endpoint: address,
            reply,
        };
        if self.control.send(request).await.is_err() {
            return;
        }
        match applied.await {
            Ok(true) => tracing::info!(
                "{}: {} now resolves to {address}; peer {peer}'s endpoint moved there from {}",
                self.ifname,
                host.host,
                current.map_or_else(|| "nowhere".to_owned(), |c| c.to_string())
            ),
            Ok(false) => tracing::info!(
                "{}: {} resolves to {address}, but peer {peer} answered meanwhile; its endpoint \
                 stays",
                self.ifname,
                host.host
            ),
            Err(_) => {}
        }
        // The next look drops the old address from the kill switch.
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn sock(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_endpoints_in_use_are_published_only_when_they_change() {
        let peer = |endpoint: &str| crate::dataplane::PeerStats {
            public_key: PublicKey::from_bytes([7; 32]),
            endpoint: Some(endpoint.parse().unwrap()),
            allowed_ips: vec![],
            last_handshake: None,
            initiation_unanswered_for: None,
            rx_bytes: 0,
            tx_bytes: 0,
        };
        let snapshot = |endpoints: &[&str]| DeviceSnapshot {
            peers: endpoints.iter().map(|e| peer(e)).collect(),
            ..DeviceSnapshot::default()
        };
        let at_start: IpAddr = "198.18.250.2".parse().unwrap();
        let (tx, mut rx) = watch::channel(vec![at_start]);
        publish_endpoints(&tx, &snapshot(&["198.18.250.2:51820"]));
        assert!(
            !rx.has_changed().unwrap(),
            "the same address on another look"
        );
        publish_endpoints(&tx, &snapshot(&["198.18.250.9:40000", "[fd00::9]:51820"]));
        assert!(rx.has_changed().unwrap(), "the peer roamed");
        assert_eq!(
            *rx.borrow_and_update(),
            [
                "198.18.250.9".parse::<IpAddr>().unwrap(),
                "fd00::9".parse().unwrap()
            ]
        );
        publish_endpoints(&tx, &snapshot(&["198.18.250.9:40001", "[fd00::9]:51820"]));
        assert!(!rx.has_changed().unwrap(), "only a port changed");
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_the_cap() {
        let waits: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 15, 15, 15, 15]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn the_current_endpoint_is_kept_if_the_name_still_has_it_else_ipv4_first() {
        let v4 = sock("198.18.0.2:51820");
        let v4b = sock("198.18.3.2:51820");
        let v6 = sock("[fd00:1::2]:51820");
        assert_eq!(pick(&[v6, v4, v4b], None), Some(v4));
        assert_eq!(pick(&[v6, v4, v4b], Some(v4b)), Some(v4b));
        assert_eq!(pick(&[v6, v4], Some(v6)), Some(v6));
        assert_eq!(pick(&[v6], Some(v4)), Some(v6));
        // The roamed-to endpoint as an IPv4-mapped address is the same one.
        let mapped = sock("[::ffff:198.18.3.2]:51820");
        assert_eq!(pick(&[v4, v4b], Some(mapped)), Some(mapped));
        assert_eq!(pick(&[], Some(v4)), None);
    }

    /// The schedule on a simulated clock: the first re-resolution 15 s into a silence, then every
    /// 15 s while it lasts, never two at once, and a new silence starts afresh.
    #[test]
    fn a_silent_peer_is_resolved_after_fifteen_seconds_then_every_fifteen() {
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let silent_since = |now: Instant, began: u64| Some(now.duration_since(at(began)));
        let mut schedule = Schedule::default();
        assert!(!schedule.due(at(100), None), "answered: nothing to do");
        assert!(!schedule.due(at(114), silent_since(at(114), 100)));
        assert!(schedule.due(at(115), silent_since(at(115), 100)));
        schedule.started(at(115));
        assert!(
            !schedule.due(at(140), silent_since(at(140), 100)),
            "one at a time"
        );
        schedule.finished();
        assert!(!schedule.due(at(129), silent_since(at(129), 100)));
        assert!(schedule.due(at(130), silent_since(at(130), 100)));
        schedule.started(at(130));
        schedule.finished();
        // The peer answered, then went silent again at 200: 15 s into the new silence, even
        // though the last attempt is older than that.
        assert!(!schedule.due(at(210), silent_since(at(210), 200)));
        assert!(schedule.due(at(215), silent_since(at(215), 200)));
    }

    /// Start-up retries on a simulated clock: transient failures wait 1, 2, 4 s and report
    /// "waiting" each time, success after a wait reports the end of it, and a permanent failure
    /// ends at once.
    #[tokio::test]
    async fn start_up_retries_with_backoff_and_says_so() {
        let attempts = RefCell::new(0);
        let waits = RefCell::new(Vec::new());
        let reports = std::sync::Mutex::new(Vec::new());
        let on_wait = |e: Option<&&str>| reports.lock().unwrap().push(e.map(|e| e.to_string()));
        let result = retry_resolving(
            || {
                *attempts.borrow_mut() += 1;
                let n = *attempts.borrow();
                async move {
                    if n < 4 {
                        Err("no such name")
                    } else {
                        Ok(n)
                    }
                }
            },
            |e: &&str| *e == "no such name",
            &on_wait,
            |d| {
                waits.borrow_mut().push(d.as_secs());
                async {}
            },
        )
        .await;
        assert_eq!(result, Ok(4));
        assert_eq!(*waits.borrow(), [1, 2, 4]);
        assert_eq!(
            *reports.lock().unwrap(),
            [
                Some("no such name".to_owned()),
                Some("no such name".to_owned()),
                Some("no such name".to_owned()),
                None
            ]
        );

        reports.lock().unwrap().clear();
        let result: Result<(), &str> = retry_resolving(
            || async { Err("bad") },
            |e: &&str| *e == "no such name",
            &on_wait,
            |_| async {},
        )
        .await;
        assert_eq!(result, Err("bad"));
        assert!(
            reports.lock().unwrap().is_empty(),
            "no wait for a permanent error"
        );
    }
}
