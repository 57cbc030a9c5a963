//! Timer behaviour under simulated time (`--features mock-clock`): boringtun's clock and the
//! core's `now` are both `mock_instant`, advanced by the test, so minutes pass in microseconds.

mod common;

use common::*;
use std::time::Duration;
use warren_proto::key::PrivateKey;
use warren_tunnel::{Device, Instant, MockClock, PeerSettings, ResumeDetector};

/// Advances both clocks by `d` and ticks every node once per simulated `TIMER_TICK`.
fn run_for(nodes: &mut [&mut Node], d: Duration, deliver: bool) {
    let steps = (d.as_millis() / warren_tunnel::TIMER_TICK.as_millis()).max(1);
    for _ in 0..steps {
        MockClock::advance(warren_tunnel::TIMER_TICK);
        let now = Instant::now();
        for n in nodes.iter_mut() {
            n.tick(now);
        }
        if deliver {
            deliver_all(nodes, now);
        } else {
            for n in nodes.iter_mut() {
                n.out.datagrams.clear();
            }
        }
    }
}

const HANDSHAKE_INIT_LEN: usize = 148;
const KEEPALIVE_LEN: usize = 32;

#[test]
fn persistent_keepalive_brings_the_tunnel_up_and_keeps_it_warm() {
    let (mut a, mut b) = pair();
    let id = a.device.peer_id(&b.public_key()).unwrap();
    a.device.set_persistent_keepalive(id, Some(5));

    // With PersistentKeepalive, a peer comes up by itself, without any traffic.
    MockClock::advance(Duration::from_secs(1));
    a.tick(Instant::now());
    assert_eq!(a.out.datagrams.len(), 1);
    assert_eq!(a.out.datagrams[0].1.len(), HANDSHAKE_INIT_LEN);
    deliver_all(&mut [&mut a, &mut b], Instant::now());
    assert!(a.device.peers()[0].last_handshake.is_some());

    // Then a keepalive every 5 s of silence.
    let before = b.device.peers()[0].rx_bytes;
    MockClock::advance(Duration::from_secs(5));
    a.tick(Instant::now());
    let sent: Vec<usize> = a.out.datagrams.iter().map(|d| d.1.len()).collect();
    assert_eq!(sent, vec![KEEPALIVE_LEN]);
    deliver_all(&mut [&mut a, &mut b], Instant::now());
    assert_eq!(b.device.peers()[0].rx_bytes, before + KEEPALIVE_LEN as u64);

    // Turning it off stops them, and the session survives the change.
    a.device.set_persistent_keepalive(id, None);
    MockClock::advance(Duration::from_secs(6));
    a.tick(Instant::now());
    assert!(a.out.datagrams.is_empty());
    let p = ipv4("198.19.0.1", "198.19.0.2", b"still up");
    a.send_packet(Instant::now(), &p);
    // A data message: 16-byte header + the packet + 16-byte tag (boringtun does not pad).
    assert_eq!(
        a.out.datagrams[0].1.len(),
        p.len() + 32,
        "data, not a new handshake"
    );
}

#[test]
fn passive_keepalive_answers_data_after_ten_seconds_of_silence() {
    let (mut a, mut b) = pair();
    a.send_packet(Instant::now(), &ipv4("198.19.0.1", "198.19.0.2", b"x"));
    deliver_all(&mut [&mut a, &mut b], Instant::now());
    run_for(&mut [&mut a, &mut b], Duration::from_secs(1), true);
    a.send_packet(Instant::now(), &ipv4("198.19.0.1", "198.19.0.2", b"data"));
    deliver_all(&mut [&mut a, &mut b], Instant::now());
    assert_eq!(b.take_delivered().len(), 2);
    // b received data and has sent nothing since: after KEEPALIVE_TIMEOUT it sends a keepalive.
    let mut saw_keepalive = false;
    for _ in 0..(12 * 4) {
        MockClock::advance(warren_tunnel::TIMER_TICK);
        b.tick(Instant::now());
        saw_keepalive |= b.out.datagrams.iter().any(|d| d.1.len() == KEEPALIVE_LEN);
        b.out.datagrams.clear();
    }
    assert!(saw_keepalive);
}

#[test]
fn a_lost_handshake_is_retried_after_rekey_timeout() {
    let (mut a, mut b) = pair();
    a.send_packet(Instant::now(), &ipv4("198.19.0.1", "198.19.0.2", b"queued"));
    assert_eq!(a.out.datagrams.len(), 1);
    a.out.datagrams.clear(); // lost on the way

    // Nothing is resent before REKEY_TIMEOUT (5 s)...
    run_for(&mut [&mut a], Duration::from_secs(4), false);
    MockClock::advance(Duration::from_millis(500));
    a.tick(Instant::now());
    assert!(a.out.datagrams.is_empty());
    // ...and a new initiation goes out after it.
    MockClock::advance(Duration::from_millis(1000));
    a.tick(Instant::now());
    assert_eq!(a.out.datagrams.len(), 1);
    assert_eq!(a.out.datagrams[0].1.len(), HANDSHAKE_INIT_LEN);
    deliver_all(&mut [&mut a, &mut b], Instant::now());
    assert_eq!(
        b.take_delivered().len(),
        1,
        "the queued packet survived the retry"
    );
}

#[test]
fn the_initiator_rekeys_after_two_minutes_of_traffic() {
    let (mut a, mut b) = pair();
    let p = ipv4("198.19.0.1", "198.19.0.2", b"x");
    a.send_packet(Instant::now(), &p);
    deliver_all(&mut [&mut a, &mut b], Instant::now());
    let first = a.device.peers()[0].last_handshake.unwrap();
    for _ in 0..26 {
        MockClock::advance(Duration::from_secs(5));
        a.send_packet(Instant::now(), &p);
        b.send_packet(Instant::now(), &ipv4("198.19.0.2", "198.19.0.1", b"y"));
        a.tick(Instant::now());
        b.tick(Instant::now());
        deliver_all(&mut [&mut a, &mut b], Instant::now());
    }
    let latest = a.device.peers()[0].last_handshake.unwrap();
    assert!(latest.duration_since(first) >= Duration::from_secs(120));
    assert_eq!(
        b.take_delivered().last(),
        Some(&p),
        "traffic flowed across the rekey"
    );
}

#[test]
fn under_load_the_responder_demands_a_cookie_and_then_accepts() {
    let (mut a, b) = pair();
    let b_key = b.key.clone();
    let mut b = Node {
        device: Device::with_handshake_rate_limit(b_key.clone(), 0),
        key: b_key,
        addr: b.addr,
        out: Capture::default(),
    };
    let mut settings = PeerSettings::new(a.public_key());
    settings.allowed_ips = vec!["198.19.0.1/32".parse().unwrap()];
    b.device.upsert_peer(settings);

    a.send_packet(Instant::now(), &ipv4("198.19.0.1", "198.19.0.2", b"x"));
    deliver_all(&mut [&mut a, &mut b], Instant::now());
    assert_eq!(b.device.stats().cookies_sent, 1);
    assert!(a.device.peers()[0].last_handshake.is_none());

    // The retry carries a valid mac2 and is accepted even under load.
    run_for(&mut [&mut a, &mut b], Duration::from_secs(7), true);
    assert!(a.device.peers()[0].last_handshake.is_some());
    assert_eq!(b.take_delivered().len(), 1);
    assert_eq!(b.device.stats().cookies_sent, 1);
}

#[test]
fn a_wrong_public_key_never_handshakes_even_with_retries() {
    let mut a = Node::new("198.18.0.1:51820");
    let mut b = Node::new("198.18.0.2:51820");
    let wrong = PrivateKey::generate().public_key();
    let mut settings = PeerSettings::new(wrong);
    settings.allowed_ips = vec!["198.19.0.2/32".parse().unwrap()];
    settings.endpoint = Some(b.addr);
    settings.persistent_keepalive = Some(1);
    a.device.upsert_peer(settings);
    b.add_peer(&a, &["198.19.0.1/32"], false);
    run_for(&mut [&mut a, &mut b], Duration::from_secs(30), true);
    assert!(a.device.peers()[0].last_handshake.is_none());
    assert!(b.device.peers()[0].last_handshake.is_none());
    assert!(
        b.device.stats().rx_invalid >= 5,
        "several retries were all refused"
    );
}

#[test]
fn after_a_long_suspend_the_first_thing_sent_is_a_handshake_not_data_on_stale_keys() {
    let (mut a, mut b) = pair();
    let before = ipv4("198.19.0.1", "198.19.0.2", b"before");
    a.send_packet(Instant::now(), &before);
    deliver_all(&mut [&mut a, &mut b], Instant::now());
    assert_eq!(b.take_delivered(), vec![before]);
    let first = a.device.peers()[0].last_handshake.unwrap();

    // What a's driver reads every tick: the core's clock (which counts suspended time; boringtun
    // reads the same one) and a monotonic clock (which stops during suspend).
    let mut detector = ResumeDetector::new();
    let monotonic = Duration::from_secs(1000);
    assert_eq!(detector.observe(Instant::now(), monotonic), None);

    // a sleeps for ten minutes: the core's clock moves on, a's monotonic clock does not, and a
    // runs nothing. b stays awake; its timers expire the session.
    run_for(&mut [&mut b], Duration::from_secs(600), false);

    // a wakes up. Its driver's first reading sees the jump...
    let slept = detector.observe(Instant::now(), monotonic + Duration::from_millis(1));
    assert!(
        slept.is_some_and(|s| s >= Duration::from_secs(599)),
        "resume seen: {slept:?}"
    );
    // ...and starts a new handshake with the peer it had a session with, at once.
    assert_eq!(a.device.handle_resume(Instant::now(), &mut a.out), 1);
    let after = ipv4("198.19.0.1", "198.19.0.2", b"after the resume");
    a.send_packet(Instant::now(), &after);

    // The next thing on the wire is a handshake initiation, and nothing on the old keys.
    let sent: Vec<usize> = a.out.datagrams.iter().map(|d| d.1.len()).collect();
    assert_eq!(sent, vec![HANDSHAKE_INIT_LEN], "an initiation, not data");
    deliver_all(&mut [&mut a, &mut b], Instant::now());
    assert_eq!(
        b.take_delivered(),
        vec![after],
        "the packet waited for the new session"
    );
    let latest = a.device.peers()[0].last_handshake.unwrap();
    assert!(
        latest.duration_since(first) >= Duration::from_secs(600),
        "a new session"
    );
    assert!(b.device.peers()[0].last_handshake.unwrap() >= latest);
    assert_eq!(
        b.device.stats().rx_invalid,
        0,
        "b never saw a datagram on stale keys"
    );
}

#[test]
fn a_resume_leaves_peers_without_sessions_or_traffic_alone() {
    let (mut a, _b) = pair();
    assert_eq!(a.device.handle_resume(Instant::now(), &mut a.out), 0);
    assert!(a.out.datagrams.is_empty());
    // A peer we only ever tried to reach is active: it gets a fresh attempt.
    a.send_packet(Instant::now(), &ipv4("198.19.0.1", "198.19.0.2", b"x"));
    a.out.datagrams.clear();
    MockClock::advance(Duration::from_secs(60));
    assert_eq!(a.device.handle_resume(Instant::now(), &mut a.out), 1);
    assert_eq!(a.out.datagrams[0].1.len(), HANDSHAKE_INIT_LEN);
}

#[test]
fn an_unanswered_initiation_is_timed_from_its_first_try_until_the_peer_answers() {
    let (mut a, mut b) = pair();
    let unanswered = |n: &Node| n.device.peers()[0].initiation_unanswered;
    let start = Instant::now();
    a.send_packet(start, &ipv4("198.19.0.1", "198.19.0.2", b"x"));
    assert_eq!(unanswered(&a), Some(start));
    a.out.datagrams.clear(); // lost on the way

    // Retries do not move the clock...
    run_for(&mut [&mut a], Duration::from_secs(6), false);
    assert_eq!(unanswered(&a), Some(start));
    // ...and the response stops it.
    run_for(&mut [&mut a, &mut b], Duration::from_secs(6), true);
    assert_eq!(unanswered(&a), None);
    assert!(a.device.peers()[0].last_handshake.is_some());

    // The peer goes silent (it moved away): data keeps going out and nothing comes back. After
    // KEEPALIVE_TIMEOUT + REKEY_TIMEOUT (15 s) a new initiation starts the clock again.
    let silent_from = Instant::now();
    for _ in 0..25 {
        a.send_packet(
            Instant::now(),
            &ipv4("198.19.0.1", "198.19.0.2", b"anyone?"),
        );
        run_for(&mut [&mut a], Duration::from_secs(1), false);
    }
    let since = unanswered(&a).expect("no new initiation after 25 s of silence");
    let after = since.duration_since(silent_from);
    assert!(
        after >= Duration::from_secs(10) && after <= Duration::from_secs(20),
        "{after:?}"
    );
}

#[test]
fn a_network_change_sends_a_handshake_at_once_from_the_new_address_and_keeps_the_session() {
    let (mut a, mut b) = pair();
    let before = ipv4("198.19.0.1", "198.19.0.2", b"before");
    a.send_packet(Instant::now(), &before);
    deliver_all(&mut [&mut a, &mut b], Instant::now());
    assert_eq!(b.take_delivered(), vec![before]);
    let first = b.device.peers()[0].last_handshake.unwrap();

    // Idle, no keepalive: nothing would be sent for minutes. Then a's address changes.
    run_for(&mut [&mut a, &mut b], Duration::from_secs(30), true);
    assert!(a.out.datagrams.is_empty() && b.out.datagrams.is_empty());
    a.addr = "198.18.9.1:51820".parse().unwrap();
    assert_eq!(
        a.device.handle_network_change(Instant::now(), &mut a.out),
        1
    );
    let sent: Vec<usize> = a.out.datagrams.iter().map(|d| d.1.len()).collect();
    assert_eq!(sent, vec![HANDSHAKE_INIT_LEN], "an initiation at once");
    assert_eq!(
        a.out.datagrams[0].2, None,
        "sent from the OS's choice of source, not the old address"
    );
    // A second change while that handshake is under way sends it again, on the newest path.
    a.out.datagrams.clear();
    assert_eq!(
        a.device.handle_network_change(Instant::now(), &mut a.out),
        1
    );
    assert_eq!(a.out.datagrams[0].1.len(), HANDSHAKE_INIT_LEN);

    // Data still flows on the old session until the new one completes.
    let during = ipv4("198.19.0.1", "198.19.0.2", b"during");
    a.send_packet(Instant::now(), &during);
    deliver_all(&mut [&mut a, &mut b], Instant::now());
    assert_eq!(b.take_delivered(), vec![during]);
    let peer_of_b = &b.device.peers()[0];
    assert!(peer_of_b.last_handshake.unwrap() > first, "a new handshake");
    assert_eq!(
        peer_of_b.endpoint,
        Some(a.addr),
        "b roamed to a's new address"
    );
}

#[test]
fn a_network_change_leaves_peers_without_an_endpoint_alone() {
    let (mut a, mut b) = pair();
    // b has no endpoint for a until a's first datagram arrives.
    assert_eq!(
        b.device.handle_network_change(Instant::now(), &mut b.out),
        0
    );
    assert!(b.out.datagrams.is_empty());
    assert_eq!(
        a.device.handle_network_change(Instant::now(), &mut a.out),
        1
    );
}
