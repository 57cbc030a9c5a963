//! The controller's picture of the world, and how it becomes a [`Snapshot`]: a pure data
//! structure with no I/O, so every rule about what the UI shows is unit-tested here.
//!
//! Three sources, never mixed up:
//! - what the **helper** said: its status, and for every tunnel it reported, the kind, state,
//!   options, peers and health ([`HelperTunnel`]), replaced wholesale on every resync and changed
//!   only by its events in between;
//! - what **this app stores**: the user's tunnels ([`StoredTunnel`]) and settings;
//! - what **this app is doing**: requests in flight, the last error per tunnel, the throughput
//!   samples it has received.
//!
//! The rules: while the helper is unreachable every state is `unknown`; a stored tunnel the
//! helper does not list is `disconnected` (the helper lists every user tunnel that is up); a
//! state changes only when the helper says so — a request in flight is shown as `pending`, not as
//! a state.

use std::collections::{BTreeMap, VecDeque};

use warren_proto::ipc::{
    Event, Health, PeerStatus, TunnelKind, TunnelOptions, TunnelState, TunnelStatus, TunnelSummary,
};

use crate::model::{
    DemoOfferView, HealthView, HelperStatus, LogLineView, OptionsView, PeerView, PendingRequest,
    Sample, SecretsStatus, SettingsView, Snapshot, StateView, TunnelKindView, TunnelView,
};
use crate::store::settings::Settings;

/// How much throughput history each tunnel keeps, in seconds (at one sample a second).
pub const HISTORY_SECS: u64 = 300;

/// How many helper log lines are kept for the logs view.
pub const LOG_LINES: usize = 1000;

/// One tunnel as the helper last described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperTunnel {
    /// User or system.
    pub kind: TunnelKind,
    /// Its state.
    pub state: TunnelState,
    /// Its options.
    pub options: TunnelOptions,
    /// Per-peer state from the latest status or stats.
    pub peers: Vec<PeerStatus>,
    /// Health from the latest status or stats.
    pub health: Option<Health>,
}

/// A tunnel this app stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTunnel {
    /// Its public key, if its private key could be read.
    pub public_key: Option<String>,
}

/// What the app is doing about one tunnel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activity {
    /// A request in flight.
    pub pending: Option<PendingRequest>,
    /// The answer to the latest failed request.
    pub last_error: Option<String>,
    /// Throughput samples, oldest first.
    pub samples: VecDeque<Sample>,
}

/// A state change the helper reported, for notifications.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The tunnel.
    pub name: String,
    /// Its previous state.
    pub from: StateView,
    /// Its new state.
    pub to: StateView,
}

/// What applying an event asks the caller to do next.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// A state changed.
    pub transition: Option<Transition>,
    /// A log line arrived.
    pub log: Option<LogLineView>,
    /// The event named a tunnel we know nothing about: ask the helper for the full list.
    pub resync: bool,
}

/// The controller's whole picture.
#[derive(Debug, Clone)]
pub struct Mirror {
    /// The helper connection.
    pub helper: HelperStatus,
    /// Every tunnel the helper reported, by name.
    pub helper_tunnels: BTreeMap<String, HelperTunnel>,
    /// The stored tunnels, by name.
    pub stored: BTreeMap<String, StoredTunnel>,
    /// What the app is doing, by tunnel name.
    pub activity: BTreeMap<String, Activity>,
    /// The settings file's contents.
    pub settings: Settings,
    /// Whether the OS starts the app at login.
    pub start_at_login: bool,
    /// Where keys are kept.
    pub secrets: SecretsStatus,
    /// The helper's recent log lines.
    pub logs: VecDeque<LogLineView>,
    /// The local demo on offer, if the app was started with one.
    pub demo_offer: Option<DemoOfferView>,
}

impl Mirror {
    /// A fresh picture: helper connecting, nothing known.
    pub fn new(settings: Settings, secrets: SecretsStatus) -> Self {
        Self {
            helper: HelperStatus::Connecting,
            helper_tunnels: BTreeMap::new(),
            stored: BTreeMap::new(),
            activity: BTreeMap::new(),
            settings,
            start_at_login: false,
            secrets,
            logs: VecDeque::new(),
            demo_offer: None,
        }
    }

    /// The state the UI shows for `name`.
    pub fn state_of(&self, name: &str) -> StateView {
        if !self.helper.is_connected() {
            return StateView::Unknown;
        }
        match self.helper_tunnels.get(name) {
            Some(tunnel) => StateView::from(&tunnel.state),
            None => StateView::Disconnected,
        }
    }

    /// Replaces what the helper said with a fresh list and status (a resync). Returns the state
    /// changes if the helper was already connected (after a reconnect, old states were unknown
    /// and nothing "changed").
    pub fn resync(
        &mut self,
        list: Vec<TunnelSummary>,
        status: Vec<TunnelStatus>,
        helper_version: &str,
    ) -> Vec<Transition> {
        let was_connected = self.helper.is_connected();
        let before: BTreeMap<String, StateView> = self
            .names()
            .into_iter()
            .map(|n| {
                let state = self.state_of(&n);
                (n, state)
            })
            .collect();
        let mut fresh: BTreeMap<String, HelperTunnel> = list
            .into_iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    HelperTunnel {
                        kind: t.kind,
                        state: t.state,
                        options: t.options,
                        peers: Vec::new(),
                        health: None,
                    },
                )
            })
            .collect();
        for s in status {
            let entry = fresh
                .entry(s.name.to_string())
                .or_insert_with(|| HelperTunnel {
                    kind: s.kind,
                    state: s.state.clone(),
                    options: s.options,
                    peers: Vec::new(),
                    health: None,
                });
            entry.peers = s.peers;
            entry.health = s.health;
        }
        self.helper_tunnels = fresh;
        self.helper = HelperStatus::Connected {
            version: helper_version.to_owned(),
        };
        if !was_connected {
            return Vec::new();
        }
        self.names()
            .into_iter()
            .filter_map(|name| {
                let to = self.state_of(&name);
                let from = before
                    .get(&name)
                    .cloned()
                    .unwrap_or(StateView::Disconnected);
                (from != to).then_some(Transition { name, from, to })
            })
            .collect()
    }

    /// The helper went away (or never answered): every state becomes unknown, requests in
    /// flight are abandoned (their futures fail with "disconnected" on their own).
    pub fn helper_lost(&mut self, status: HelperStatus) {
        self.helper = status;
        for activity in self.activity.values_mut() {
            activity.pending = None;
        }
    }

    /// Applies one event from the helper. `now_ms` stamps throughput samples.
    pub fn apply(&mut self, event: Event, now_ms: u64) -> Applied {
        let mut applied = Applied::default();
        match event {
            Event::TunnelState { name, state } => {
                let name = name.to_string();
                let from = self.state_of(&name);
                match self.helper_tunnels.get_mut(&name) {
                    Some(tunnel) => tunnel.state = state.clone(),
                    // Our own user tunnel, being connected: it is a user tunnel by construction.
                    None if self.stored.contains_key(&name) => {
                        let options = self.stored_options(&name);
                        self.helper_tunnels.insert(
                            name.clone(),
                            HelperTunnel {
                                kind: TunnelKind::User,
                                state: state.clone(),
                                options,
                                peers: Vec::new(),
                                health: None,
                            },
                        );
                    }
                    // Someone else's tunnel we have never heard of: ask rather than guess.
                    None => {
                        applied.resync = true;
                        return applied;
                    }
                }
                if let Some(tunnel) = self.helper_tunnels.get_mut(&name) {
                    // Health describes a connected tunnel only; a new attempt starts afresh.
                    if !matches!(state, TunnelState::Connected { .. }) {
                        tunnel.health = None;
                    }
                    if state == TunnelState::Connecting {
                        tunnel.peers.clear();
                    }
                }
                match state {
                    TunnelState::Connecting => {
                        self.activity_mut(&name).samples.clear();
                    }
                    TunnelState::Disconnected => {
                        if let Some(tunnel) = self.helper_tunnels.get_mut(&name) {
                            tunnel.peers.clear();
                            tunnel.health = None;
                            // The helper forgets user tunnels once they are down.
                            if tunnel.kind == TunnelKind::User {
                                self.helper_tunnels.remove(&name);
                            }
                        }
                    }
                    TunnelState::Connected { .. }
                    | TunnelState::Reconnecting { .. }
                    | TunnelState::WaitingForNetwork { .. }
                    | TunnelState::Disconnecting
                    | TunnelState::Error { .. } => {}
                }
                let to = self.state_of(&name);
                if from != to {
                    applied.transition = Some(Transition { name, from, to });
                }
            }
            Event::Stats {
                name,
                peers,
                health,
            } => {
                let name = name.to_string();
                let Some(tunnel) = self.helper_tunnels.get_mut(&name) else {
                    applied.resync = true;
                    return applied;
                };
                let sample = Sample {
                    unix_ms: now_ms,
                    rx_bytes: peers.iter().map(|p| p.rx_bytes).sum(),
                    tx_bytes: peers.iter().map(|p| p.tx_bytes).sum(),
                };
                tunnel.peers = peers;
                tunnel.health = health;
                let samples = &mut self.activity_mut(&name).samples;
                samples.push_back(sample);
                let oldest = now_ms.saturating_sub(HISTORY_SECS * 1000);
                while samples.front().is_some_and(|s| s.unix_ms < oldest)
                    || samples.len() > HISTORY_SECS as usize + 1
                {
                    samples.pop_front();
                }
            }
            Event::HelperStopping => {
                self.helper = HelperStatus::Unreachable {
                    message: "the helper is stopping".into(),
                };
            }
            Event::LogLine(line) => {
                let line = LogLineView::from(&line);
                self.push_log(line.clone());
                applied.log = Some(line);
            }
        }
        applied
    }

    /// Keeps a log line, dropping the oldest beyond [`LOG_LINES`].
    pub fn push_log(&mut self, line: LogLineView) {
        self.logs.push_back(line);
        while self.logs.len() > LOG_LINES {
            self.logs.pop_front();
        }
    }

    /// The options of a stored tunnel (defaults if none were set).
    pub fn stored_options(&self, name: &str) -> TunnelOptions {
        self.settings
            .tunnel_options
            .get(name)
            .copied()
            .unwrap_or_default()
    }

    /// The activity record of `name`, created on first use.
    pub fn activity_mut(&mut self, name: &str) -> &mut Activity {
        self.activity.entry(name.to_owned()).or_default()
    }

    /// Every tunnel name: stored ones and the helper's.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .stored
            .keys()
            .chain(self.helper_tunnels.keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// What the window shows.
    pub fn snapshot(&self) -> Snapshot {
        let tunnels = self
            .names()
            .into_iter()
            .map(|name| {
                let helper = self.helper_tunnels.get(&name);
                let stored = self.stored.get(&name);
                let activity = self.activity.get(&name);
                let live = helper.filter(|_| self.helper.is_connected());
                TunnelView {
                    kind: helper
                        .map(|t| TunnelKindView::from(t.kind))
                        .unwrap_or(TunnelKindView::User),
                    stored: stored.is_some(),
                    state: self.state_of(&name),
                    health: live.and_then(|t| t.health.as_ref()).map(HealthView::from),
                    peers: live
                        .map(|t| t.peers.iter().map(PeerView::from).collect())
                        .unwrap_or_default(),
                    options: OptionsView::from(
                        helper
                            .map(|t| t.options)
                            .unwrap_or_else(|| self.stored_options(&name)),
                    ),
                    public_key: stored.and_then(|s| s.public_key.clone()),
                    throughput: activity
                        .map(|a| a.samples.iter().copied().collect())
                        .unwrap_or_default(),
                    pending: activity.and_then(|a| a.pending),
                    last_error: activity.and_then(|a| a.last_error.clone()),
                    name,
                }
            })
            .collect();
        Snapshot {
            helper: self.helper.clone(),
            secrets: self.secrets.clone(),
            tunnels,
            last_used: self.settings.last_used.clone(),
            settings: SettingsView {
                connect_on_launch: self.settings.connect_on_launch,
                start_at_login: self.start_at_login,
            },
            demo_offer: self.demo_offer.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::ipc::{TunnelName, TunnelOptions};

    const PEER: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    fn name(s: &str) -> TunnelName {
        TunnelName::new(s).unwrap()
    }

    fn summary(n: &str, kind: TunnelKind, state: TunnelState) -> TunnelSummary {
        TunnelSummary {
            name: name(n),
            kind,
            state,
            options: TunnelOptions::default(),
        }
    }

    fn peer(rx: u64, tx: u64) -> PeerStatus {
        PeerStatus {
            public_key: PEER.parse().unwrap(),
            endpoint: Some("198.18.0.1:51820".parse().unwrap()),
            allowed_ips: vec!["198.18.200.0/24".parse().unwrap()],
            last_handshake_unix_secs: Some(1_700_000_000),
            rx_bytes: rx,
            tx_bytes: tx,
        }
    }

    fn mirror_with_home() -> Mirror {
        let mut mirror = Mirror::new(
            Settings::default(),
            SecretsStatus::Keyring {
                backend: "test".into(),
            },
        );
        mirror.stored.insert(
            "home".into(),
            StoredTunnel {
                public_key: Some("pk".into()),
            },
        );
        mirror
    }

    fn state(mirror: &Mirror, n: &str) -> StateView {
        mirror
            .snapshot()
            .tunnels
            .into_iter()
            .find(|t| t.name == n)
            .map(|t| t.state)
            .unwrap()
    }

    #[test]
    fn nothing_is_known_until_the_helper_answers() {
        let mirror = mirror_with_home();
        assert_eq!(mirror.snapshot().helper, HelperStatus::Connecting);
        assert_eq!(state(&mirror, "home"), StateView::Unknown);
    }

    #[test]
    fn a_stored_tunnel_the_helper_does_not_list_is_down() {
        let mut mirror = mirror_with_home();
        let changes = mirror.resync(
            vec![summary(
                "office",
                TunnelKind::System,
                TunnelState::Disconnected,
            )],
            vec![],
            "0.1.0",
        );
        assert!(changes.is_empty(), "no notifications on the first sync");
        let snapshot = mirror.snapshot();
        assert_eq!(
            snapshot.helper,
            HelperStatus::Connected {
                version: "0.1.0".into()
            }
        );
        let names: Vec<_> = snapshot.tunnels.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["home", "office"]);
        assert_eq!(snapshot.tunnels[0].state, StateView::Disconnected);
        assert!(snapshot.tunnels[0].stored);
        assert_eq!(snapshot.tunnels[0].public_key.as_deref(), Some("pk"));
        assert_eq!(snapshot.tunnels[1].kind, TunnelKindView::System);
        assert!(!snapshot.tunnels[1].stored);
    }

    #[test]
    fn states_follow_events_and_transitions_are_reported() {
        let mut mirror = mirror_with_home();
        mirror.resync(vec![], vec![], "0.1.0");
        let applied = mirror.apply(
            Event::TunnelState {
                name: name("home"),
                state: TunnelState::Connecting,
            },
            0,
        );
        assert_eq!(
            applied.transition,
            Some(Transition {
                name: "home".into(),
                from: StateView::Disconnected,
                to: StateView::Connecting
            })
        );
        assert_eq!(mirror.helper_tunnels["home"].kind, TunnelKind::User);
        mirror.apply(
            Event::TunnelState {
                name: name("home"),
                state: TunnelState::Connected { since_unix_secs: 5 },
            },
            0,
        );
        assert_eq!(
            state(&mirror, "home"),
            StateView::Connected { since_unix_secs: 5 }
        );
        let applied = mirror.apply(
            Event::TunnelState {
                name: name("home"),
                state: TunnelState::Disconnected,
            },
            0,
        );
        assert_eq!(applied.transition.unwrap().to, StateView::Disconnected);
        assert!(
            !mirror.helper_tunnels.contains_key("home"),
            "the helper forgets user tunnels that are down"
        );
        assert_eq!(state(&mirror, "home"), StateView::Disconnected);
    }

    #[test]
    fn an_unknown_tunnel_asks_for_a_resync_instead_of_guessing() {
        let mut mirror = mirror_with_home();
        mirror.resync(vec![], vec![], "0.1.0");
        let applied = mirror.apply(
            Event::TunnelState {
                name: name("stranger"),
                state: TunnelState::Connecting,
            },
            0,
        );
        assert!(applied.resync);
        assert!(!mirror.names().contains(&"stranger".to_owned()));
        let applied = mirror.apply(
            Event::Stats {
                name: name("stranger"),
                peers: vec![],
                health: None,
            },
            0,
        );
        assert!(applied.resync);
    }

    #[test]
    fn stats_fill_peers_health_and_a_bounded_history() {
        let mut mirror = mirror_with_home();
        mirror.resync(
            vec![summary(
                "home",
                TunnelKind::User,
                TunnelState::Connected { since_unix_secs: 1 },
            )],
            vec![],
            "0.1.0",
        );
        for second in 0..400u64 {
            mirror.apply(
                Event::Stats {
                    name: name("home"),
                    peers: vec![peer(second * 10, second * 20), peer(1, 1)],
                    health: Some(Health::Healthy),
                },
                1_000_000 + second * 1000,
            );
        }
        let view = mirror.snapshot().tunnels.remove(0);
        assert_eq!(view.health, Some(HealthView::Healthy));
        assert_eq!(view.peers.len(), 2);
        assert_eq!(view.peers[0].public_key, PEER);
        assert_eq!(view.peers[0].endpoint.as_deref(), Some("198.18.0.1:51820"));
        assert_eq!(view.throughput.len(), HISTORY_SECS as usize + 1);
        let last = view.throughput.last().unwrap();
        assert_eq!((last.rx_bytes, last.tx_bytes), (3991, 7981));
        assert_eq!(
            last.unix_ms - view.throughput[0].unix_ms,
            HISTORY_SECS * 1000
        );

        // A new connection starts a new graph.
        mirror.apply(
            Event::TunnelState {
                name: name("home"),
                state: TunnelState::Connecting,
            },
            0,
        );
        assert!(mirror.snapshot().tunnels[0].throughput.is_empty());
        assert_eq!(
            mirror.snapshot().tunnels[0].health,
            None,
            "only when connected"
        );
    }

    #[test]
    fn losing_the_helper_makes_every_state_unknown_and_a_reconnect_is_silent() {
        let mut mirror = mirror_with_home();
        mirror.resync(
            vec![summary(
                "home",
                TunnelKind::User,
                TunnelState::Connected { since_unix_secs: 1 },
            )],
            vec![],
            "0.1.0",
        );
        mirror.activity_mut("home").pending = Some(PendingRequest::Disconnect);
        mirror.helper_lost(HelperStatus::Unreachable {
            message: "gone".into(),
        });
        let view = mirror.snapshot().tunnels.remove(0);
        assert_eq!(view.state, StateView::Unknown);
        assert_eq!(view.pending, None);
        assert!(view.peers.is_empty());
        let changes = mirror.resync(vec![], vec![], "0.1.1");
        assert!(changes.is_empty());
        assert_eq!(state(&mirror, "home"), StateView::Disconnected);
    }

    #[test]
    fn a_resync_while_connected_reports_what_changed() {
        let mut mirror = mirror_with_home();
        mirror.resync(vec![], vec![], "0.1.0");
        let changes = mirror.resync(
            vec![summary(
                "home",
                TunnelKind::User,
                TunnelState::Error {
                    reason: "no route".into(),
                },
            )],
            vec![],
            "0.1.0",
        );
        assert_eq!(
            changes,
            [Transition {
                name: "home".into(),
                from: StateView::Disconnected,
                to: StateView::Error {
                    reason: "no route".into()
                }
            }]
        );
    }

    #[test]
    fn logs_are_bounded() {
        let mut mirror = mirror_with_home();
        for i in 0..(LOG_LINES + 5) {
            mirror.push_log(LogLineView {
                unix_ms: i as u64,
                level: "info".into(),
                target: "t".into(),
                message: format!("{i}"),
            });
        }
        assert_eq!(mirror.logs.len(), LOG_LINES);
        assert_eq!(mirror.logs.front().unwrap().unix_ms, 5);
    }
}
