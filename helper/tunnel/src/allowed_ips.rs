//! Cryptokey routing's lookup structure: the AllowedIPs longest-prefix-match table.
//!
//! Every AllowedIPs network belongs to exactly one peer. The same table answers both questions
//! WireGuard asks of it: *outbound*, which peer gets a packet to this destination; *inbound*, may
//! this peer send a packet from this inner source address (if the longest match for the source is
//! not that very peer, the packet is spoofed and dropped).
//!
//! Layout: one hash map per prefix length that is in use, searched from the longest length down.
//! A lookup costs one masked hash probe per distinct length, and real configurations use a
//! handful of lengths, so this beats a bit-trie walk while staying a few lines long. IPv4 and
//! IPv6 are kept in separate tables; addresses are stored as `u128` in both.

use ipnet::IpNet;
use std::collections::HashMap;
use std::net::IpAddr;

/// A longest-prefix-match table from IP networks to values (peer ids in the device).
#[derive(Debug, Clone)]
pub struct AllowedIps<T> {
    v4: Family<T>,
    v6: Family<T>,
}

impl<T> Default for AllowedIps<T> {
    fn default() -> Self {
        Self {
            v4: Family::new(32),
            v6: Family::new(128),
        }
    }
}

#[derive(Debug, Clone)]
struct Family<T> {
    /// Address width in bits: 32 or 128.
    width: u8,
    /// Networks by prefix length; only lengths in use, longest first.
    by_len: Vec<(u8, HashMap<u128, T>)>,
}

fn mask(addr: u128, len: u8, width: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let shift = u32::from(width - len);
    let full = if width == 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    };
    addr & (full << shift) & full
}

fn split(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (true, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (false, u128::from(v6)),
    }
}

impl<T> Family<T> {
    fn new(width: u8) -> Self {
        Self {
            width,
            by_len: Vec::new(),
        }
    }

    fn insert(&mut self, addr: u128, len: u8, value: T) -> Option<T> {
        let key = mask(addr, len, self.width);
        let pos = match self.by_len.iter().position(|(l, _)| *l <= len) {
            Some(pos) if self.by_len[pos].0 == len => pos,
            Some(pos) => {
                self.by_len.insert(pos, (len, HashMap::new()));
                pos
            }
            None => {
                self.by_len.push((len, HashMap::new()));
                self.by_len.len() - 1
            }
        };
        self.by_len[pos].1.insert(key, value)
    }

    fn remove(&mut self, addr: u128, len: u8) -> Option<T> {
        let key = mask(addr, len, self.width);
        let pos = self.by_len.iter().position(|(l, _)| *l == len)?;
        let old = self.by_len[pos].1.remove(&key);
        if self.by_len[pos].1.is_empty() {
            self.by_len.remove(pos);
        }
        old
    }

    fn lookup(&self, addr: u128) -> Option<&T> {
        self.by_len
            .iter()
            .find_map(|(len, map)| map.get(&mask(addr, *len, self.width)))
    }

    fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        for (_, map) in &mut self.by_len {
            map.retain(|_, v| keep(v));
        }
        self.by_len.retain(|(_, map)| !map.is_empty());
    }
}

impl<T> AllowedIps<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn family(&mut self, v4: bool) -> &mut Family<T> {
        if v4 {
            &mut self.v4
        } else {
            &mut self.v6
        }
    }

    /// Maps `net` (host bits are ignored) to `value`, returning the value it replaced.
    pub fn insert(&mut self, net: IpNet, value: T) -> Option<T> {
        let (v4, addr) = split(net.addr());
        self.family(v4).insert(addr, net.prefix_len(), value)
    }

    /// Removes exactly `net`, returning its value.
    pub fn remove(&mut self, net: IpNet) -> Option<T> {
        let (v4, addr) = split(net.addr());
        self.family(v4).remove(addr, net.prefix_len())
    }

    /// The value stored for exactly `net` (host bits ignored), without longest-prefix search.
    pub fn lookup_exact(&self, net: IpNet) -> Option<&T> {
        let (v4, addr) = split(net.addr());
        let family = if v4 { &self.v4 } else { &self.v6 };
        let len = net.prefix_len();
        family
            .by_len
            .iter()
            .find(|(l, _)| *l == len)
            .and_then(|(_, map)| map.get(&mask(addr, len, family.width)))
    }

    /// The value of the longest network containing `ip`.
    pub fn lookup(&self, ip: IpAddr) -> Option<&T> {
        match split(ip) {
            (true, addr) => self.v4.lookup(addr),
            (false, addr) => self.v6.lookup(addr),
        }
    }

    /// Keeps only the entries whose value passes `keep`.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.v4.retain(&mut keep);
        self.v6.retain(&mut keep);
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.v4.by_len.is_empty() && self.v6.by_len.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn longest_prefix_wins_in_both_families() {
        let mut t = AllowedIps::new();
        t.insert(net("0.0.0.0/0"), 'a');
        t.insert(net("198.18.0.0/15"), 'b');
        t.insert(net("198.18.5.0/24"), 'c');
        t.insert(net("198.18.5.7/32"), 'd');
        t.insert(net("fd00::/8"), 'e');
        t.insert(net("fd00:1::/64"), 'f');
        assert_eq!(t.lookup(ip("198.18.5.7")), Some(&'d'));
        assert_eq!(t.lookup(ip("198.18.5.8")), Some(&'c'));
        assert_eq!(t.lookup(ip("198.19.200.1")), Some(&'b'));
        assert_eq!(t.lookup(ip("203.0.113.9")), Some(&'a'));
        assert_eq!(t.lookup(ip("fd00:1::9")), Some(&'f'));
        assert_eq!(t.lookup(ip("fd00:2::9")), Some(&'e'));
        assert_eq!(
            t.lookup(ip("2001:db8::1")),
            None,
            "no ::/0, so no v6 default"
        );
    }

    #[test]
    fn host_bits_are_ignored_and_insert_replaces() {
        let mut t = AllowedIps::new();
        assert_eq!(t.insert(net("198.18.1.77/24"), 1), None);
        assert_eq!(t.insert(net("198.18.1.0/24"), 2), Some(1));
        assert_eq!(t.lookup(ip("198.18.1.200")), Some(&2));
    }

    #[test]
    fn remove_and_retain_drop_entries_and_empty_lengths() {
        let mut t = AllowedIps::new();
        t.insert(net("198.18.0.0/16"), 1);
        t.insert(net("198.18.9.0/24"), 2);
        t.insert(net("fd00::/64"), 2);
        assert_eq!(t.remove(net("198.18.9.0/24")), Some(2));
        assert_eq!(t.lookup(ip("198.18.9.1")), Some(&1));
        t.retain(|v| *v != 2);
        assert_eq!(t.lookup(ip("fd00::1")), None);
        t.retain(|v| *v != 1);
        assert!(t.is_empty());
    }

    #[test]
    fn ipv4_and_ipv6_do_not_mix() {
        let mut t = AllowedIps::new();
        t.insert(net("::/0"), 6);
        assert_eq!(t.lookup(ip("198.18.0.1")), None);
        t.insert(net("0.0.0.0/0"), 4);
        assert_eq!(t.lookup(ip("198.18.0.1")), Some(&4));
        assert_eq!(t.lookup(ip("::ffff:198.18.0.1")), Some(&6));
    }
}
