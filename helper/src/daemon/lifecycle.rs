//! The tunnel lifecycle as an explicit state machine, and the liveness rules that say whether a
//! connected tunnel actually carries traffic. Both pure: the manager feeds them what happened and
//! the driver's statistics, and publishes what they return.
//!
//! ```text
//!                 Start                 Handshake                Stop
//! Disconnected ─────────→ Connecting ─────────────→ Connected ──────────→ Disconnecting
//!      ↑  ↑                  │   │ Stop                 │ Fail                  │ Down
//!      │  │                  │   └──────────────────────┼──→ Disconnecting      ↓
//!      │  └──── Stop ─── Error ←──── Fail ──────────────┘                  Disconnected
//!      │                   │ Start → Connecting
//!
//! Connecting ──Wait──→ WaitingForNetwork ──Resolved──→ Connecting   (Wait again: new reason;
//!                      Stop → Disconnecting, Fail → Error, as from Connecting)
//!
//! Connected ──NetworkChanged──→ Reconnecting ──Handshake──→ Connected  (NetworkChanged again:
//!                               stays; Stop → Disconnecting, Fail → Error, as from Connected)
//! ```
//! - `Reconnecting`: the network under a connected tunnel changed and the session started new
//!   handshakes at once; none has completed since. (A tunnel still `Connecting` stays so: it
//!   was never connected.)
//! - `WaitingForNetwork`: an endpoint's host name does not resolve yet; the session retries with
//!   backoff and has changed nothing on the system. Not an error: it comes up by itself.
//! - `Connecting`: the session is being set up, or is set up and waits for a first handshake.
//! - `Connected`: a handshake completed ("interface created" is not enough).
//! - `Error`: the session failed and ended; everything it changed is already undone. A new
//!   `Start` retries; `Stop` acknowledges it (→ `Disconnected`).
//!
//! Liveness ([`Liveness::observe`]), for a connected tunnel, from successive snapshots:
//! - a peer whose newest handshake is older than [`HANDSHAKE_STALE_SECS`] is stale (WireGuard
//!   rekeys every 120 s while traffic flows; a session is dead after 180 s);
//! - a peer that never completed a handshake while another did;
//! - a peer from which nothing has been received for [`RX_STALL_SECS`] while we sent it at least
//!   [`RX_STALL_MIN_TX_BYTES`] (a live peer answers data within ~10 s, with data or a passive
//!   keepalive; the byte floor keeps our own persistent keepalives, 32 bytes each, which a peer
//!   does not answer, from counting).

use crate::dataplane::PeerStats;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use warren_proto::ipc::{DegradedReason, Health, PeerStatus, TunnelState, HANDSHAKE_STALE_SECS};
use warren_proto::key::PublicKey;

/// Seconds without rx, while tx grows, before a peer counts as stalled.
pub const RX_STALL_SECS: u64 = 30;

/// Bytes sent during a stall before it counts (more than keepalives alone).
pub const RX_STALL_MIN_TX_BYTES: u64 = 1024;

/// What happened to a tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Bring it up (connect request, autostart, retry).
    Start,
    /// The session cannot resolve an endpoint's host name yet and retries (`reason`: why).
    Wait {
        /// The resolver's answer.
        reason: String,
    },
    /// The names resolved after a wait; the session goes on setting up.
    Resolved,
    /// The network under the tunnel changed and new handshakes started.
    NetworkChanged,
    /// A handshake completed, at this time.
    Handshake {
        /// Seconds since the Unix epoch.
        since_unix_secs: u64,
    },
    /// Take it down (disconnect request, shutdown).
    Stop,
    /// The session failed and has ended, its changes undone.
    Fail {
        /// What went wrong.
        reason: String,
    },
    /// The session ended after a `Stop`.
    Down,
}

/// The state after `transition` from `state`, or `None` when the transition does not apply (the
/// caller keeps the state and, for requests, answers with an error).
pub fn next(state: &TunnelState, transition: &Transition) -> Option<TunnelState> {
    use Transition as T;
    use TunnelState as S;
    match (state, transition) {
        (S::Disconnected | S::Error { .. }, T::Start) => Some(S::Connecting),
        (S::Connecting | S::WaitingForNetwork { .. }, T::Wait { reason }) => {
            Some(S::WaitingForNetwork {
                reason: reason.clone(),
            })
        }
        (S::WaitingForNetwork { .. }, T::Resolved) => Some(S::Connecting),
        (S::Connecting | S::Reconnecting { .. }, T::Handshake { since_unix_secs }) => {
            Some(S::Connected {
                since_unix_secs: *since_unix_secs,
            })
        }
        (S::Connected { .. } | S::Reconnecting { .. }, T::NetworkChanged) => {
            Some(S::Reconnecting {
                reason: "network changed".into(),
            })
        }
        (
            S::Connecting
            | S::WaitingForNetwork { .. }
            | S::Connected { .. }
            | S::Reconnecting { .. },
            T::Stop,
        ) => Some(S::Disconnecting),
        (S::Error { .. }, T::Stop) => Some(S::Disconnected),
        (
            S::Connecting
            | S::WaitingForNetwork { .. }
            | S::Connected { .. }
            | S::Reconnecting { .. }
            | S::Disconnecting,
            T::Fail { reason },
        ) => Some(S::Error {
            reason: reason.clone(),
        }),
        (S::Disconnecting, T::Down) => Some(S::Disconnected),
        _ => None,
    }
}

/// Whether a session may exist in this state (everything but `Disconnected` and `Error`).
pub fn is_active(state: &TunnelState) -> bool {
    !matches!(state, TunnelState::Disconnected | TunnelState::Error { .. })
}

/// The driver's peer statistics as the IPC reports them.
pub fn peer_status(peers: &[PeerStats]) -> Vec<PeerStatus> {
    peers
        .iter()
        .map(|peer| PeerStatus {
            public_key: peer.public_key,
            endpoint: peer.endpoint,
            allowed_ips: peer.allowed_ips.clone(),
            last_handshake_unix_secs: peer.last_handshake.map(unix_secs),
            rx_bytes: peer.rx_bytes,
            tx_bytes: peer.tx_bytes,
        })
        .collect()
}

/// Seconds since the Unix epoch (0 before it).
pub fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The newest completed handshake over all peers, if any.
pub fn newest_handshake(peers: &[PeerStats]) -> Option<SystemTime> {
    peers.iter().filter_map(|p| p.last_handshake).max()
}

/// Per-peer memory between snapshots, for the rx-stall rule.
#[derive(Debug, Default)]
pub struct Liveness {
    peers: HashMap<PublicKey, Track>,
}

#[derive(Debug, Clone, Copy)]
struct Track {
    rx_bytes: u64,
    /// When rx last grew (or when the peer was first seen).
    rx_grew_at: Instant,
    /// tx at that moment.
    tx_then: u64,
}

impl Liveness {
    /// Takes in a snapshot made at `now` (monotonic) / `wall` (wall clock) and judges it.
    pub fn observe(&mut self, now: Instant, wall: SystemTime, peers: &[PeerStats]) -> Health {
        let mut reasons = Vec::new();
        let any_handshake = peers.iter().any(|p| p.last_handshake.is_some());
        let mut seen = HashMap::with_capacity(peers.len());
        for peer in peers {
            let track = match self.peers.get(&peer.public_key) {
                Some(track) if peer.rx_bytes == track.rx_bytes => *track,
                _ => Track {
                    rx_bytes: peer.rx_bytes,
                    rx_grew_at: now,
                    tx_then: peer.tx_bytes,
                },
            };
            seen.insert(peer.public_key, track);
            match peer.last_handshake {
                Some(at) => {
                    let age = wall.duration_since(at).unwrap_or(Duration::ZERO).as_secs();
                    if age > HANDSHAKE_STALE_SECS {
                        reasons.push(DegradedReason::HandshakeStale {
                            peer: peer.public_key,
                            age_secs: age,
                        });
                    }
                }
                None if any_handshake => reasons.push(DegradedReason::NoHandshake {
                    peer: peer.public_key,
                }),
                None => {}
            }
            let stalled = now.duration_since(track.rx_grew_at).as_secs();
            if stalled >= RX_STALL_SECS
                && peer.tx_bytes.saturating_sub(track.tx_then) >= RX_STALL_MIN_TX_BYTES
            {
                reasons.push(DegradedReason::RxStalled {
                    peer: peer.public_key,
                    stalled_secs: stalled,
                });
            }
        }
        self.peers = seen;
        if reasons.is_empty() {
            Health::Healthy
        } else {
            Health::Degraded { reasons }
        }
    }
}

/// `health` with the tunnel's DNS no longer in place (`dns_lost`, why) added as a reason.
pub fn with_dns_lost(health: Health, dns_lost: Option<String>) -> Health {
    let Some(detail) = dns_lost else {
        return health;
    };
    let mut reasons = match health {
        Health::Healthy => Vec::new(),
        Health::Degraded { reasons } => reasons,
    };
    reasons.push(DegradedReason::DnsNotApplied { detail });
    Health::Degraded { reasons }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::key::PrivateKey;

    fn all_states() -> Vec<TunnelState> {
        vec![
            TunnelState::Disconnected,
            TunnelState::Connecting,
            TunnelState::Connected { since_unix_secs: 5 },
            TunnelState::Disconnecting,
            TunnelState::Error { reason: "x".into() },
            TunnelState::WaitingForNetwork { reason: "y".into() },
            reconnecting(),
        ]
    }

    fn reconnecting() -> TunnelState {
        TunnelState::Reconnecting {
            reason: "network changed".into(),
        }
    }

    fn wait(reason: &str) -> Transition {
        Transition::Wait {
            reason: reason.into(),
        }
    }

    fn waiting(reason: &str) -> TunnelState {
        TunnelState::WaitingForNetwork {
            reason: reason.into(),
        }
    }

    #[test]
    fn the_state_machine_allows_exactly_its_transitions() {
        use TunnelState as S;
        let connected = S::Connected { since_unix_secs: 9 };
        let error = S::Error {
            reason: "boom".into(),
        };
        let cases = [
            (S::Disconnected, Transition::Start, Some(S::Connecting)),
            (error.clone(), Transition::Start, Some(S::Connecting)),
            (
                S::Connecting,
                Transition::Handshake { since_unix_secs: 9 },
                Some(connected.clone()),
            ),
            (S::Connecting, Transition::Stop, Some(S::Disconnecting)),
            (connected.clone(), Transition::Stop, Some(S::Disconnecting)),
            (error.clone(), Transition::Stop, Some(S::Disconnected)),
            (
                S::Connecting,
                Transition::Fail {
                    reason: "boom".into(),
                },
                Some(error.clone()),
            ),
            (
                connected.clone(),
                Transition::Fail {
                    reason: "boom".into(),
                },
                Some(error.clone()),
            ),
            (
                S::Disconnecting,
                Transition::Fail {
                    reason: "boom".into(),
                },
                Some(error.clone()),
            ),
            (S::Disconnecting, Transition::Down, Some(S::Disconnected)),
            (S::Connecting, wait("no name"), Some(waiting("no name"))),
            (
                waiting("no name"),
                wait("timeout"),
                Some(waiting("timeout")),
            ),
            (
                waiting("no name"),
                Transition::Resolved,
                Some(S::Connecting),
            ),
            (waiting("no name"), Transition::Stop, Some(S::Disconnecting)),
            (
                waiting("no name"),
                Transition::Fail {
                    reason: "boom".into(),
                },
                Some(error.clone()),
            ),
            (
                connected.clone(),
                Transition::NetworkChanged,
                Some(reconnecting()),
            ),
            (
                reconnecting(),
                Transition::NetworkChanged,
                Some(reconnecting()),
            ),
            (
                reconnecting(),
                Transition::Handshake { since_unix_secs: 9 },
                Some(connected.clone()),
            ),
            (reconnecting(), Transition::Stop, Some(S::Disconnecting)),
            (
                reconnecting(),
                Transition::Fail {
                    reason: "boom".into(),
                },
                Some(error.clone()),
            ),
        ];
        for (from, transition, to) in &cases {
            assert_eq!(next(from, transition), *to, "{from:?} --{transition:?}-->");
        }
        // Everything else is refused.
        let transitions = [
            Transition::Start,
            Transition::Handshake { since_unix_secs: 9 },
            Transition::Stop,
            Transition::Fail {
                reason: "boom".into(),
            },
            Transition::Down,
            wait("no name"),
            Transition::Resolved,
            Transition::NetworkChanged,
        ];
        for from in all_states() {
            for transition in &transitions {
                let listed = cases.iter().any(|(f, t, _)| {
                    std::mem::discriminant(f) == std::mem::discriminant(&from)
                        && std::mem::discriminant(t) == std::mem::discriminant(transition)
                });
                if !listed {
                    assert_eq!(
                        next(&from, transition),
                        None,
                        "{from:?} --{transition:?}-->"
                    );
                }
            }
        }
        assert!(!is_active(&S::Disconnected));
        assert!(!is_active(&error));
        assert!(is_active(&S::Connecting) && is_active(&connected) && is_active(&S::Disconnecting));
        assert!(
            is_active(&waiting("no name")),
            "a waiting tunnel has a session to stop"
        );
        assert!(is_active(&reconnecting()));
    }

    fn peer(handshake_ago: Option<u64>, rx: u64, tx: u64, wall: SystemTime) -> PeerStats {
        PeerStats {
            public_key: PrivateKey::generate().public_key(),
            endpoint: None,
            allowed_ips: vec![],
            last_handshake: handshake_ago.map(|s| wall - Duration::from_secs(s)),
            initiation_unanswered_for: None,
            rx_bytes: rx,
            tx_bytes: tx,
        }
    }

    #[test]
    fn a_recent_handshake_with_traffic_both_ways_is_healthy() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut p = peer(Some(10), 100, 100, wall);
        let mut live = Liveness::default();
        assert_eq!(live.observe(now, wall, &[p.clone()]), Health::Healthy);
        p.rx_bytes += 500;
        p.tx_bytes += 5000;
        let later = now + Duration::from_secs(60);
        assert_eq!(live.observe(later, wall, &[p]), Health::Healthy);
    }

    #[test]
    fn a_handshake_older_than_180_s_is_stale() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let p = peer(Some(181), 0, 0, wall);
        let health = Liveness::default().observe(now, wall, std::slice::from_ref(&p));
        assert_eq!(
            health,
            Health::Degraded {
                reasons: vec![DegradedReason::HandshakeStale {
                    peer: p.public_key,
                    age_secs: 181
                }]
            }
        );
        assert_eq!(
            Liveness::default().observe(now, wall, &[peer(Some(180), 0, 0, wall)]),
            Health::Healthy
        );
    }

    #[test]
    fn a_peer_without_handshake_next_to_one_with_is_reported() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let (a, b) = (peer(Some(1), 0, 0, wall), peer(None, 0, 0, wall));
        let health = Liveness::default().observe(now, wall, &[a, b.clone()]);
        assert_eq!(
            health,
            Health::Degraded {
                reasons: vec![DegradedReason::NoHandshake { peer: b.public_key }]
            }
        );
    }

    #[test]
    fn rx_stalled_while_tx_grows_is_degraded_but_keepalives_alone_are_not() {
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut p = peer(Some(5), 1000, 1000, wall);
        let mut live = Liveness::default();
        assert_eq!(live.observe(now, wall, &[p.clone()]), Health::Healthy);
        // 40 s of keepalives only: tx +64 bytes.
        p.tx_bytes += 64;
        let t = now + Duration::from_secs(40);
        assert_eq!(live.observe(t, wall, &[p.clone()]), Health::Healthy);
        // Real traffic out, nothing back.
        p.tx_bytes += 4000;
        let t = now + Duration::from_secs(45);
        assert_eq!(
            live.observe(t, wall, &[p.clone()]),
            Health::Degraded {
                reasons: vec![DegradedReason::RxStalled {
                    peer: p.public_key,
                    stalled_secs: 45
                }]
            }
        );
        // Something comes back: healthy again at once.
        p.rx_bytes += 32;
        let t = now + Duration::from_secs(46);
        assert_eq!(live.observe(t, wall, &[p]), Health::Healthy);
    }

    #[test]
    fn statistics_become_peer_status_without_secrets() {
        let wall = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let p = peer(Some(0), 1, 2, wall);
        let status = peer_status(std::slice::from_ref(&p));
        assert_eq!(status[0].last_handshake_unix_secs, Some(1_700_000_000));
        assert_eq!((status[0].rx_bytes, status[0].tx_bytes), (1, 2));
        assert_eq!(newest_handshake(&[p]), Some(wall));
    }
}
