//! A tiny in-memory network for driving several `Device`s against each other: each node has
//! an underlay address, datagrams queue until the test delivers them, and packets written to a
//! node's "TUN" are collected for inspection.

#![allow(dead_code, clippy::unwrap_used)]

use ipnet::IpNet;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use warren_proto::key::{PrivateKey, PublicKey};
use warren_tunnel::{Device, Endpoint, Instant, Output, PeerSettings};

/// What one device emitted during a call: (destination, datagram, the local address to send it
/// from).
#[derive(Default)]
pub struct Capture {
    pub datagrams: VecDeque<(SocketAddr, Vec<u8>, Option<IpAddr>)>,
    pub delivered: Vec<Vec<u8>>,
}

impl Output for Capture {
    fn send_datagram(&mut self, to: Endpoint, datagram: &[u8]) {
        self.datagrams
            .push_back((to.remote, datagram.to_vec(), to.local));
    }
    fn write_packet(&mut self, packet: &[u8]) {
        self.delivered.push(packet.to_vec());
    }
}

pub struct Node {
    pub key: PrivateKey,
    pub device: Device,
    pub addr: SocketAddr,
    pub out: Capture,
}

impl Node {
    pub fn new(addr: &str) -> Self {
        let key = PrivateKey::generate();
        Self {
            device: Device::new(key.clone()),
            key,
            addr: addr.parse().unwrap(),
            out: Capture::default(),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    /// Adds `other` as a peer with these AllowedIPs; with `endpoint`, we know where it is.
    pub fn add_peer(&mut self, other: &Node, allowed: &[&str], endpoint: bool) {
        let mut settings = PeerSettings::new(other.public_key());
        settings.allowed_ips = allowed
            .iter()
            .map(|s| s.parse::<IpNet>().unwrap())
            .collect();
        settings.endpoint = endpoint.then_some(other.addr);
        self.device.upsert_peer(settings);
    }

    pub fn send_packet(&mut self, now: Instant, packet: &[u8]) {
        self.device.handle_tun_packet(now, packet, &mut self.out);
    }

    pub fn tick(&mut self, now: Instant) {
        self.device.handle_timeout(now, &mut self.out);
    }

    pub fn take_delivered(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.out.delivered)
    }
}

/// Moves queued datagrams between nodes (by destination address) until the network is quiet.
/// Datagrams to unknown addresses are dropped. Returns how many were delivered.
pub fn deliver_all(nodes: &mut [&mut Node], now: Instant) -> usize {
    let mut delivered = 0;
    for _round in 0..64 {
        let mut moved = false;
        for i in 0..nodes.len() {
            while let Some((to, datagram, _)) = nodes[i].out.datagrams.pop_front() {
                // Arrives from the sender's address at the receiver's (which the receiver's
                // socket reports, and replies are sent from).
                let from = Endpoint {
                    remote: nodes[i].addr,
                    local: Some(to.ip()),
                };
                if let Some(j) = nodes.iter().position(|n| n.addr == to) {
                    let target = &mut *nodes[j];
                    target
                        .device
                        .handle_datagram(now, from, &datagram, &mut target.out);
                    delivered += 1;
                    moved = true;
                }
            }
        }
        if !moved {
            return delivered;
        }
    }
    panic!("network did not go quiet in 64 rounds");
}

/// A minimal IPv4 packet (UDP protocol number, no checksum) with `payload`.
pub fn ipv4(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let (src, dst): (std::net::Ipv4Addr, std::net::Ipv4Addr) =
        (src.parse().unwrap(), dst.parse().unwrap());
    let total = 20 + payload.len();
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..].copy_from_slice(payload);
    p
}

/// A minimal IPv6 packet (UDP next header) with `payload`.
pub fn ipv6(src: &str, dst: &str, payload: &[u8]) -> Vec<u8> {
    let (src, dst): (std::net::Ipv6Addr, std::net::Ipv6Addr) =
        (src.parse().unwrap(), dst.parse().unwrap());
    let mut p = vec![0u8; 40 + payload.len()];
    p[0] = 0x60;
    p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    p[6] = 17;
    p[7] = 64;
    p[8..24].copy_from_slice(&src.octets());
    p[24..40].copy_from_slice(&dst.octets());
    p[40..].copy_from_slice(payload);
    p
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Two nodes that know each other; `a` knows `b`'s endpoint, `b` learns `a`'s from the handshake.
pub fn pair() -> (Node, Node) {
    let mut a = Node::new("198.18.0.1:51820");
    let mut b = Node::new("198.18.0.2:51820");
    a.add_peer(&b, &["198.19.0.2/32", "fd00:2::2/128"], true);
    b.add_peer(&a, &["198.19.0.1/32", "fd00:2::1/128"], false);
    (a, b)
}
