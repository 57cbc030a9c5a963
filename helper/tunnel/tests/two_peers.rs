//! In-memory tests of the device core: handshakes, cryptokey routing, roaming and refusals,
//! with real Noise crypto (boringtun) and no sockets, TUN or root.

mod common;

use common::*;
use std::net::SocketAddr;
use warren_proto::key::{PresharedKey, PrivateKey};
use warren_tunnel::{Endpoint, Instant, PeerSettings};

#[test]
fn two_peers_handshake_and_exchange_packets_both_ways() {
    let (mut a, mut b) = pair();
    let now = Instant::now();
    let hello = ipv4("198.19.0.1", "198.19.0.2", b"hello from a");

    a.send_packet(now, &hello);
    assert_eq!(a.out.datagrams.len(), 1, "first packet starts a handshake");
    deliver_all(&mut [&mut a, &mut b], now);

    assert_eq!(
        b.take_delivered(),
        vec![hello],
        "queued packet delivered after handshake"
    );
    let a_view = &a.device.peers()[0];
    let b_view = &b.device.peers()[0];
    assert!(a_view.last_handshake.is_some() && b_view.last_handshake.is_some());
    assert_eq!(
        b_view.endpoint,
        Some(a.addr),
        "responder learned the initiator's endpoint"
    );

    let reply4 = ipv4("198.19.0.2", "198.19.0.1", b"hello back");
    let reply6 = ipv6("fd00:2::2", "fd00:2::1", b"and over ipv6");
    b.send_packet(now, &reply4);
    b.send_packet(now, &reply6);
    deliver_all(&mut [&mut a, &mut b], now);
    assert_eq!(a.take_delivered(), vec![reply4, reply6]);

    let (a_view, b_view) = (&a.device.peers()[0], &b.device.peers()[0]);
    assert!(a_view.tx_bytes > 0 && a_view.rx_bytes > 0);
    assert_eq!(
        a_view.tx_bytes, b_view.rx_bytes,
        "every byte a sent, b received"
    );
    assert_eq!(b_view.tx_bytes, a_view.rx_bytes);
}

#[test]
fn three_peers_are_routed_by_allowed_ips() {
    let mut hub = Node::new("198.18.0.1:51820");
    let mut s1 = Node::new("198.18.0.2:51820");
    let mut s2 = Node::new("198.18.0.3:51820");
    hub.add_peer(&s1, &["198.19.1.0/24"], true);
    hub.add_peer(&s2, &["198.19.2.0/24", "fd00:2:2::/48"], true);
    s1.add_peer(&hub, &["198.19.0.0/16"], true);
    s2.add_peer(&hub, &["198.19.0.0/16", "fd00::/8"], true);
    let now = Instant::now();

    let to1 = ipv4("198.19.0.1", "198.19.1.7", b"for s1");
    let to2 = ipv4("198.19.0.1", "198.19.2.7", b"for s2");
    let to2v6 = ipv6("fd00:2::1", "fd00:2:2::7", b"for s2 over v6");
    hub.send_packet(now, &to1);
    hub.send_packet(now, &to2);
    hub.send_packet(now, &to2v6);
    deliver_all(&mut [&mut hub, &mut s1, &mut s2], now);
    assert_eq!(s1.take_delivered(), vec![to1]);
    assert_eq!(s2.take_delivered(), vec![to2, to2v6]);

    let nowhere = ipv4("198.19.0.1", "198.19.3.1", b"no peer");
    hub.send_packet(now, &nowhere);
    assert!(hub.out.datagrams.is_empty());
    assert_eq!(hub.device.stats().tx_no_route, 1);
}

#[test]
fn a_spoofed_inner_source_is_dropped() {
    let (mut a, mut b) = pair();
    let now = Instant::now();
    a.send_packet(now, &ipv4("198.19.0.1", "198.19.0.2", b"x"));
    deliver_all(&mut [&mut a, &mut b], now);
    b.take_delivered();

    // b may only use 198.19.0.2 and fd00:2::2 as inner sources.
    b.send_packet(now, &ipv4("198.19.0.9", "198.19.0.1", b"spoofed"));
    b.send_packet(now, &ipv6("fd00:2::9", "fd00:2::1", b"spoofed v6"));
    let genuine = ipv4("198.19.0.2", "198.19.0.1", b"genuine");
    b.send_packet(now, &genuine);
    deliver_all(&mut [&mut a, &mut b], now);
    assert_eq!(a.take_delivered(), vec![genuine]);
    assert_eq!(a.device.stats().rx_spoofed, 2);
}

#[test]
fn roaming_moves_the_endpoint_to_the_authenticated_source() {
    let (mut a, mut b) = pair();
    let now = Instant::now();
    a.send_packet(now, &ipv4("198.19.0.1", "198.19.0.2", b"x"));
    deliver_all(&mut [&mut a, &mut b], now);
    assert_eq!(b.device.peers()[0].endpoint, Some(a.addr));

    // a moves to a new underlay address (and an IPv6 one at that).
    a.addr = "[fd00:1::9]:40000".parse().unwrap();
    a.send_packet(
        now,
        &ipv4("198.19.0.1", "198.19.0.2", b"from the new address"),
    );
    deliver_all(&mut [&mut a, &mut b], now);
    assert_eq!(b.device.peers()[0].endpoint, Some(a.addr));

    // Replies now go to the new address.
    b.send_packet(now, &ipv4("198.19.0.2", "198.19.0.1", b"reply"));
    assert_eq!(b.out.datagrams.front().map(|d| d.0), Some(a.addr));

    // A forged datagram from elsewhere does not move the endpoint.
    let mut forged = b.out.datagrams.front().unwrap().1.clone();
    let last = forged.len() - 1;
    forged[last] ^= 0xff;
    let attacker = "198.18.0.66:1234".parse().unwrap();
    let attacker: SocketAddr = attacker;
    b.device.handle_datagram(
        now,
        attacker.into(),
        &forged,
        &mut common::Capture::default(),
    );
    assert_eq!(b.device.peers()[0].endpoint, Some(a.addr));
}

#[test]
fn replies_leave_from_the_local_address_the_peer_sent_to_until_it_is_forgotten() {
    // b has two addresses; a knows it by its second one, 198.18.0.12.
    let second = ip("198.18.0.12");
    let mut a = Node::new("198.18.0.1:51820");
    let mut b = Node::new("198.18.0.12:51820");
    a.add_peer(&b, &["198.19.0.2/32"], true);
    b.add_peer(&a, &["198.19.0.1/32"], false);
    let now = Instant::now();
    a.send_packet(now, &ipv4("198.19.0.1", "198.19.0.2", b"x"));
    // The initiation reaches b at its second address; b's response leaves from it.
    let (to, initiation, _) = a.out.datagrams.pop_front().unwrap();
    assert_eq!(to, b.addr);
    let arrived = Endpoint {
        remote: a.addr,
        local: Some(second),
    };
    b.device
        .handle_datagram(now, arrived, &initiation, &mut b.out);
    let response = b.out.datagrams.front().unwrap();
    assert_eq!((response.0, response.2), (a.addr, Some(second)));
    deliver_all(&mut [&mut a, &mut b], now);
    assert_eq!(b.take_delivered().len(), 1);
    let peer = &b.device.peers()[0];
    assert_eq!(
        (peer.endpoint, peer.local_address),
        (Some(a.addr), Some(second))
    );

    // b's own traffic to a leaves from the second address too.
    b.send_packet(now, &ipv4("198.19.0.2", "198.19.0.1", b"reply"));
    assert_eq!(b.out.datagrams.back().unwrap().2, Some(second));
    b.out.datagrams.clear();

    // Re-applying the same endpoint keeps the source; a forged datagram at another local
    // address does not move it.
    let id = b.device.peer_id(&a.public_key()).unwrap();
    b.device.set_endpoint(id, a.addr);
    assert_eq!(b.device.peers()[0].local_address, Some(second));
    let mut forged = vec![4u8, 0, 0, 0];
    forged.resize(64, 0);
    let elsewhere = Endpoint {
        remote: a.addr,
        local: Some(ip("198.18.0.2")),
    };
    b.device
        .handle_datagram(now, elsewhere, &forged, &mut common::Capture::default());
    assert_eq!(b.device.peers()[0].local_address, Some(second));

    // The address went away: the OS chooses the source from now on...
    assert_eq!(b.device.forget_local_address(ip("198.18.0.99")), 0);
    assert_eq!(b.device.forget_local_address(second), 1);
    assert_eq!(b.device.peers()[0].local_address, None);
    b.send_packet(now, &ipv4("198.19.0.2", "198.19.0.1", b"after"));
    assert_eq!(b.out.datagrams.back().unwrap().2, None);
    deliver_all(&mut [&mut a, &mut b], now);
    assert_eq!(a.take_delivered().len(), 1);

    // ...until a's next datagram names the address it reached b at.
    a.send_packet(now, &ipv4("198.19.0.1", "198.19.0.2", b"again"));
    deliver_all(&mut [&mut a, &mut b], now);
    assert_eq!(b.device.peers()[0].local_address, Some(second));

    // A new endpoint set by hand starts with the OS's choice.
    b.device
        .set_endpoint(id, "198.18.0.7:51820".parse().unwrap());
    assert_eq!(b.device.peers()[0].local_address, None);
}

#[test]
fn a_wrong_public_key_never_completes_a_handshake() {
    let mut a = Node::new("198.18.0.1:51820");
    let mut b = Node::new("198.18.0.2:51820");
    let impostor = Node::new("198.18.0.2:51820");
    // a thinks b's key is the impostor's.
    a.add_peer(&impostor, &["198.19.0.2/32"], true);
    b.add_peer(&a, &["198.19.0.1/32"], false);
    let now = Instant::now();
    for _ in 0..3 {
        a.send_packet(now, &ipv4("198.19.0.1", "198.19.0.2", b"x"));
        deliver_all(&mut [&mut a, &mut b], now);
    }
    assert!(b.take_delivered().is_empty());
    assert!(a.device.peers()[0].last_handshake.is_none());
    assert!(b.device.peers()[0].last_handshake.is_none());
    assert!(b.device.stats().rx_invalid > 0, "b rejected the initiation");
}

#[test]
fn an_unknown_initiator_is_ignored() {
    let mut a = Node::new("198.18.0.1:51820");
    let mut b = Node::new("198.18.0.2:51820");
    let someone_else = Node::new("198.18.0.3:51820");
    a.add_peer(&b, &["198.19.0.2/32"], true);
    b.add_peer(&someone_else, &["198.19.0.1/32"], false);
    let now = Instant::now();
    a.send_packet(now, &ipv4("198.19.0.1", "198.19.0.2", b"x"));
    deliver_all(&mut [&mut a, &mut b], now);
    assert!(a.device.peers()[0].last_handshake.is_none());
    assert!(b.device.peers()[0].endpoint.is_none());
}

#[test]
fn preshared_keys_must_match() {
    let now = Instant::now();
    let psk = PresharedKey::generate();
    for (psk_a, psk_b, works) in [
        (Some(psk.clone()), Some(psk.clone()), true),
        (Some(psk.clone()), None, false),
        (Some(psk.clone()), Some(PresharedKey::generate()), false),
    ] {
        let (mut a, mut b) = pair();
        let (ida, idb) = (
            a.device.peer_id(&b.public_key()).unwrap(),
            b.device.peer_id(&a.public_key()).unwrap(),
        );
        a.device.set_preshared_key(ida, psk_a);
        b.device.set_preshared_key(idb, psk_b);
        let p = ipv4("198.19.0.1", "198.19.0.2", b"psk");
        a.send_packet(now, &p);
        deliver_all(&mut [&mut a, &mut b], now);
        assert_eq!(b.take_delivered() == vec![p], works);
        assert_eq!(a.device.peers()[0].last_handshake.is_some(), works);
        // The responder answered the initiation either way, but only a confirmed handshake
        // counts (as in wireguard-go): with the wrong key no data ever confirms it.
        assert_eq!(b.device.peers()[0].last_handshake.is_some(), works);
    }
}

#[test]
fn allowed_ips_move_between_peers_and_leave_with_removed_peers() {
    let mut hub = Node::new("198.18.0.1:51820");
    let s1 = Node::new("198.18.0.2:51820");
    let s2 = Node::new("198.18.0.3:51820");
    hub.add_peer(&s1, &["198.19.1.0/24"], true);
    hub.add_peer(&s2, &["198.19.1.0/24"], true);
    let peers = hub.device.peers();
    assert!(peers[0].allowed_ips.is_empty(), "the network moved to s2");
    assert_eq!(peers[1].allowed_ips, vec!["198.19.1.0/24".parse().unwrap()]);

    hub.send_packet(Instant::now(), &ipv4("198.19.0.1", "198.19.1.5", b"x"));
    assert_eq!(hub.out.datagrams.pop_front().map(|d| d.0), Some(s2.addr));

    assert!(hub.device.remove_peer(&s2.public_key()));
    hub.send_packet(Instant::now(), &ipv4("198.19.0.1", "198.19.1.5", b"x"));
    assert!(hub.out.datagrams.is_empty());
    assert_eq!(hub.device.stats().tx_no_route, 1);
}

#[test]
fn a_peer_without_endpoint_cannot_be_reached_until_it_calls() {
    let (mut a, mut b) = pair();
    let now = Instant::now();
    b.send_packet(now, &ipv4("198.19.0.2", "198.19.0.1", b"x"));
    assert!(b.out.datagrams.is_empty());
    assert_eq!(b.device.stats().tx_no_endpoint, 1);
    a.send_packet(now, &ipv4("198.19.0.1", "198.19.0.2", b"x"));
    deliver_all(&mut [&mut a, &mut b], now);
    let p = ipv4("198.19.0.2", "198.19.0.1", b"now it can");
    b.send_packet(now, &p);
    deliver_all(&mut [&mut a, &mut b], now);
    assert_eq!(a.take_delivered(), vec![p]);
}

#[test]
fn changing_our_private_key_drops_sessions_and_a_peer_with_our_new_key() {
    let (mut a, b) = pair();
    let new_key = PrivateKey::generate();
    let mut same_as_new = PeerSettings::new(new_key.public_key());
    same_as_new.allowed_ips = vec!["198.19.0.9/32".parse().unwrap()];
    a.device.upsert_peer(same_as_new);
    assert_eq!(a.device.peers().len(), 2);
    a.device.set_private_key(new_key.clone());
    assert_eq!(a.device.public_key(), Some(new_key.public_key()));
    let keys: Vec<_> = a.device.peers().iter().map(|p| p.public_key).collect();
    assert_eq!(keys, vec![b.public_key()]);
}

#[test]
fn a_device_without_a_key_sends_and_accepts_nothing_until_one_is_set() {
    let (mut a, mut b) = pair();
    let now = Instant::now();
    let key = a.key.clone();
    a.device.clear_private_key();
    assert_eq!(a.device.private_key(), None);
    assert_eq!(a.device.public_key(), None);
    assert_eq!(a.device.peers().len(), 1, "peers are kept");

    let hello = ipv4("198.19.0.1", "198.19.0.2", b"no key yet");
    a.send_packet(now, &hello);
    a.tick(now + std::time::Duration::from_secs(30));
    assert!(a.out.datagrams.is_empty(), "no handshake without a key");
    assert_eq!(a.device.stats().tx_no_key, 1);
    // Nor when the network changes or the host resumes.
    assert_eq!(a.device.handle_network_change(now, &mut a.out), 0);
    assert_eq!(a.device.handle_resume(now, &mut a.out), 0);
    assert!(a.out.datagrams.is_empty(), "no initiation without a key");

    // b initiates: a cannot answer.
    let a_id = b.device.peer_id(&a.public_key()).unwrap();
    b.device.set_endpoint(a_id, a.addr);
    let from_b = ipv4("198.19.0.2", "198.19.0.1", b"hello a?");
    b.send_packet(now, &from_b);
    deliver_all(&mut [&mut a, &mut b], now);
    assert!(a.take_delivered().is_empty());
    assert!(a.device.stats().rx_invalid > 0);

    // The all-zero key is "no key"; a real one brings the tunnel up.
    a.device.set_private_key(PrivateKey::from_bytes([0; 32]));
    assert_eq!(a.device.private_key(), None);
    a.device.set_private_key(key);
    let later = now + std::time::Duration::from_secs(31);
    a.send_packet(later, &hello);
    deliver_all(&mut [&mut a, &mut b], later);
    assert_eq!(b.take_delivered(), vec![hello]);
}

#[test]
fn a_hundred_thousand_allowed_ips_apply_in_linear_time_and_keep_their_order() {
    let (mut a, b) = pair();
    let id = a.device.peer_id(&b.public_key()).unwrap();
    let nets: Vec<ipnet::IpNet> = (0..130_000u32)
        .map(|i| match i {
            // 198.18.0.0/16, then fd00:1::/32: none of the pair's own tunnel addresses.
            0..=0xffff => format!("{}/32", std::net::Ipv4Addr::from(0xC612_0000 | i)),
            _ => format!("fd00:1:{:x}::/48", i - 0x1_0000),
        })
        .map(|s| s.parse().unwrap())
        .collect();
    let started = std::time::Instant::now();
    for net in &nets {
        a.device.add_allowed_ip(id, *net);
    }
    for net in nets.iter().step_by(2) {
        assert!(a.device.remove_allowed_ip(id, *net));
    }
    let elapsed = started.elapsed();
    let listed = a.device.peer_snapshot(id).unwrap().allowed_ips;
    let mut expected: Vec<ipnet::IpNet> = vec![
        "198.19.0.2/32".parse().unwrap(),
        "fd00:2::2/128".parse().unwrap(),
    ];
    expected.extend(nets.iter().skip(1).step_by(2));
    assert_eq!(listed, expected);
    // Quadratic bookkeeping takes minutes here even in release; linear takes well under 1 s.
    assert!(elapsed.as_secs() < 5, "130 000 AllowedIPs took {elapsed:?}");
}
