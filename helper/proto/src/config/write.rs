//! The wg-quick `.conf` writer: [`TunnelConfig`] → canonical text.
//!
//! The output is `[Interface]` followed by each `[Peer]` (a blank line between sections), keys
//! in their canonical capitalisation (`PrivateKey`, `AllowedIPs`, `DNS`, `MTU`, `FwMark`, …),
//! only the fields that are set, multi-valued fields as one comma list (`Address`, `DNS`,
//! `AllowedIPs`), and one line per hook. Values are written as `wg showconf` writes them
//! (`AllowedIPs = 198.18.0.0/24, fd00::/64`, `Endpoint = [fd00::1]:51820`, `FwMark = 0x1234`),
//! so the text is accepted by `wg-quick` and, for the keys `wg` knows, by `wg setconf`.
//!
//! Interface key order: `PrivateKey`, `Address`, `ListenPort`, `FwMark`, `DNS`, `MTU`, `Table`,
//! `PreUp`, `PostUp`, `PreDown`, `PostDown`, `SaveConfig`. Peer key order: `PublicKey`,
//! `PresharedKey`, `AllowedIPs`, `Endpoint`, `PersistentKeepalive` (as `wg showconf`).
//!
//! Round trip: `parse(&c.to_conf(), None) == Ok(c)` for every config that [`parse`] can return.
//! A config built by hand round-trips when it keeps the same rules: AllowedIPs truncated and not
//! shared between peers, unique public keys, MTU in 576..=65535, `FwMark`/`PersistentKeepalive`
//! never `Some(0)`, search domains and endpoint host names that are valid DNS names (and not IP
//! addresses), IPv6 endpoints without flow info or scope id, hook commands without `#` or line
//! breaks and without surrounding whitespace.
//!
//! Secrets: the text is assembled in a buffer sized exactly in advance, so the key material is
//! never left behind in a reallocated buffer; the temporary base64 strings are zeroized.
//!
//! [`parse`]: super::parse

use super::parse::Field;
use super::{Table, TunnelConfig};
use std::fmt::{self, Display, Write as _};
use zeroize::Zeroizing;

/// How secret values are written during one rendering pass.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Secrets {
    /// The real base64 keys.
    Real,
    /// A same-length placeholder: used to measure the output before the real pass.
    Placeholder,
}

/// 44 characters, as long as every base64 WireGuard key.
const KEY_PLACEHOLDER: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

impl TunnelConfig {
    /// The canonical wg-quick text of this configuration, private key included.
    ///
    /// The returned string contains the private and preshared keys: keep it out of logs, and
    /// zeroize it (e.g. wrap it in `zeroize::Zeroizing`) when done if it lives long.
    pub fn to_conf(&self) -> String {
        self.render(true)
    }

    /// The same text as [`to_conf`](Self::to_conf) without the `PrivateKey` line, for the GUI,
    /// which keeps the private key in the system keyring and shows or exports the rest.
    ///
    /// The result does not parse on its own (`[Interface] has no PrivateKey`): to read it back,
    /// put a `PrivateKey = …` line under `[Interface]` first. Preshared keys are still included:
    /// they belong to their `[Peer]` sections.
    pub fn to_conf_without_private_key(&self) -> String {
        self.render(false)
    }

    fn render(&self, with_private_key: bool) -> String {
        let mut measure = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_to(&mut measure, with_private_key, Secrets::Placeholder);
        let mut out = String::with_capacity(measure.len());
        let _ = self.write_to(&mut out, with_private_key, Secrets::Real);
        debug_assert_eq!(out.len(), measure.len(), "secret text must not reallocate");
        out
    }

    fn write_to(&self, out: &mut String, with_private_key: bool, secrets: Secrets) -> fmt::Result {
        let interface = &self.interface;
        out.push_str("[Interface]\n");
        if with_private_key {
            let key = match secrets {
                Secrets::Real => Zeroizing::new(interface.private_key.to_base64()),
                Secrets::Placeholder => Zeroizing::new(KEY_PLACEHOLDER.to_owned()),
            };
            line(out, Field::PrivateKey, key.as_str())?;
        }
        if !interface.addresses.is_empty() {
            line(out, Field::Address, List(&interface.addresses))?;
        }
        if let Some(port) = interface.listen_port {
            line(out, Field::ListenPort, port)?;
        }
        if let Some(mark) = interface.fwmark {
            line(out, Field::FwMark, format_args!("{mark:#x}"))?;
        }
        if !interface.dns_servers.is_empty() || !interface.dns_search.is_empty() {
            let servers = interface.dns_servers.iter().map(|s| s as &dyn Display);
            let search = interface.dns_search.iter().map(|s| s as &dyn Display);
            let all: Vec<&dyn Display> = servers.chain(search).collect();
            line(out, Field::Dns, List(&all))?;
        }
        if let Some(mtu) = interface.mtu {
            line(out, Field::Mtu, mtu)?;
        }
        match interface.table {
            Table::Auto => {}
            Table::Off => line(out, Field::Table, "off")?,
            Table::Id(id) => line(out, Field::Table, id)?,
        }
        let hooks = &interface.hooks;
        for (key, commands) in [
            (Field::PreUp, &hooks.pre_up),
            (Field::PostUp, &hooks.post_up),
            (Field::PreDown, &hooks.pre_down),
            (Field::PostDown, &hooks.post_down),
        ] {
            for command in commands {
                line(out, key, command)?;
            }
        }
        if interface.save_config {
            line(out, Field::SaveConfig, "true")?;
        }

        for peer in &self.peers {
            out.push_str("\n[Peer]\n");
            line(out, Field::PublicKey, peer.public_key)?;
            if let Some(psk) = &peer.preshared_key {
                let key = match secrets {
                    Secrets::Real => Zeroizing::new(psk.to_base64()),
                    Secrets::Placeholder => Zeroizing::new(KEY_PLACEHOLDER.to_owned()),
                };
                line(out, Field::PresharedKey, key.as_str())?;
            }
            if !peer.allowed_ips.is_empty() {
                line(out, Field::AllowedIps, List(&peer.allowed_ips))?;
            }
            if let Some(endpoint) = &peer.endpoint {
                line(out, Field::Endpoint, endpoint)?;
            }
            if let Some(seconds) = peer.persistent_keepalive {
                line(out, Field::PersistentKeepalive, seconds)?;
            }
        }
        Ok(())
    }
}

/// Writes `Key = value` (or `Key =` for an empty value) and a line end.
fn line(out: &mut String, key: Field, value: impl Display) -> fmt::Result {
    let start = out.len();
    write!(out, "{} = {value}", key.name())?;
    if out.len() == start + key.name().len() + 3 {
        out.pop();
    }
    out.push('\n');
    Ok(())
}

/// Items separated by `, `, as `wg showconf` writes lists.
struct List<'a, T>(&'a [T]);

impl<T: Display> Display for List<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Endpoint, Hooks, InterfaceConfig, PeerConfig};
    use super::*;
    use crate::key::{PresharedKey, PrivateKey, PublicKey};
    use ipnet::IpNet;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

    const PRIVATE: &str = "wMwt7GK2I2Qskf+CA8p/2Optrw/NGHm832bzhDQSKlE=";
    const PEER_A: &str = "F1qDeVj4m0ou3NgRA1yxGAS5FpPDfucU3wwfVGwtIwM=";
    const PEER_B: &str = "4uL5H/pQACXg4QICMu3yi5P+pKsTcL2w8t4MXUlbJk0=";
    const PSK: &str = "+OpeeK+U2eENfHu+R8YHlAsDnX98Xaj/VRdmAyyLcl4=";

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn sample() -> TunnelConfig {
        TunnelConfig {
            interface: InterfaceConfig {
                private_key: PRIVATE.parse().unwrap(),
                addresses: vec![net("198.18.0.2/24"), net("fd00::2/64")],
                listen_port: Some(51820),
                dns_servers: vec!["198.18.0.53".parse().unwrap(), "fd00::53".parse().unwrap()],
                dns_search: vec!["corp.example.com".to_owned()],
                mtu: Some(1420),
                table: Table::Off,
                fwmark: Some(0x1234),
                hooks: Hooks {
                    pre_up: vec!["echo pre".to_owned()],
                    post_up: vec!["echo a=b".to_owned(), "logger up".to_owned()],
                    pre_down: vec![],
                    post_down: vec![String::new()],
                },
                save_config: true,
            },
            peers: vec![
                PeerConfig {
                    public_key: PEER_A.parse().unwrap(),
                    preshared_key: Some(PSK.parse().unwrap()),
                    allowed_ips: vec![net("198.18.0.0/24"), net("fd00::/64")],
                    endpoint: Some(Endpoint::Addr("[fd00::1]:51820".parse().unwrap())),
                    persistent_keepalive: Some(25),
                },
                PeerConfig {
                    public_key: PEER_B.parse().unwrap(),
                    preshared_key: None,
                    allowed_ips: vec![],
                    endpoint: Some(Endpoint::Host {
                        host: "vpn.example.com".to_owned(),
                        port: 51821,
                    }),
                    persistent_keepalive: None,
                },
            ],
        }
    }

    #[test]
    fn canonical_text() {
        let expected = format!(
            "[Interface]\n\
             PrivateKey = {PRIVATE}\n\
             Address = 198.18.0.2/24, fd00::2/64\n\
             ListenPort = 51820\n\
             FwMark = 0x1234\n\
             DNS = 198.18.0.53, fd00::53, corp.example.com\n\
             MTU = 1420\n\
             Table = off\n\
             PreUp = echo pre\n\
             PostUp = echo a=b\n\
             PostUp = logger up\n\
             PostDown =\n\
             SaveConfig = true\n\
             \n\
             [Peer]\n\
             PublicKey = {PEER_A}\n\
             PresharedKey = {PSK}\n\
             AllowedIPs = 198.18.0.0/24, fd00::/64\n\
             Endpoint = [fd00::1]:51820\n\
             PersistentKeepalive = 25\n\
             \n\
             [Peer]\n\
             PublicKey = {PEER_B}\n\
             Endpoint = vpn.example.com:51821\n"
        );
        assert_eq!(sample().to_conf(), expected);
    }

    #[test]
    fn minimal_config_writes_only_what_is_set() {
        let mut config = sample();
        config.interface = InterfaceConfig {
            private_key: PRIVATE.parse().unwrap(),
            addresses: vec![],
            listen_port: None,
            dns_servers: vec![],
            dns_search: vec![],
            mtu: None,
            table: Table::Auto,
            fwmark: None,
            hooks: Hooks::default(),
            save_config: false,
        };
        config.peers.clear();
        assert_eq!(
            config.to_conf(),
            format!("[Interface]\nPrivateKey = {PRIVATE}\n")
        );
        assert_eq!(parse(&config.to_conf(), None).unwrap(), config);
        config.interface.table = Table::Id(0);
        assert!(config.to_conf().ends_with("Table = 0\n"));
    }

    #[test]
    fn round_trips() {
        let config = sample();
        assert_eq!(parse(&config.to_conf(), None).unwrap(), config);
    }

    #[test]
    fn without_private_key() {
        let text = sample().to_conf_without_private_key();
        assert!(!text.contains(PRIVATE));
        assert!(!text.contains("PrivateKey"));
        assert!(text.starts_with("[Interface]\nAddress = "));
        assert!(text.contains(PSK), "preshared keys stay with their peers");
        let e = parse(&text, None).unwrap_err();
        assert_eq!(e.line(), Some(1));
        assert!(e.message().contains("has no PrivateKey"));
        // Putting the key back gives the original config.
        let restored = text.replacen(
            "[Interface]\n",
            &format!("[Interface]\nPrivateKey = {PRIVATE}\n"),
            1,
        );
        assert_eq!(parse(&restored, None).unwrap(), sample());
    }

    #[test]
    fn wg_showconf_style() {
        // Only the keys `wg` knows, in `wg showconf`'s order, match its output line for line
        // (apart from PrivateKey, which `wg showconf` writes last in [Interface]).
        let text = sample().to_conf();
        for expected in [
            "FwMark = 0x1234",
            "AllowedIPs = 198.18.0.0/24, fd00::/64",
            "Endpoint = [fd00::1]:51820",
            "PersistentKeepalive = 25",
            "Endpoint = vpn.example.com:51821",
        ] {
            assert!(
                text.lines().any(|l| l == expected),
                "{expected:?} not in {text}"
            );
        }
        // A config read from `wg showconf` output writes back the same peer sections.
        let showconf = format!(
            "[Interface]\nListenPort = 51820\nFwMark = 0x1234\nPrivateKey = {PRIVATE}\n\n\
             [Peer]\nPublicKey = {PEER_A}\nPresharedKey = {PSK}\n\
             AllowedIPs = 198.18.0.0/24, fd00::/64\nEndpoint = [fd00::1]:51820\n\
             PersistentKeepalive = 25\n\n\
             [Peer]\nPublicKey = {PEER_B}\nAllowedIPs = 198.19.0.0/16\n\
             Endpoint = 198.18.0.1:51821\n"
        );
        let config = parse(&showconf, None).unwrap();
        let written = config.to_conf();
        let peers_of = |s: &str| s[s.find("\n[Peer]").unwrap()..].to_owned();
        assert_eq!(peers_of(&written), peers_of(&showconf));
    }

    /// A small xorshift generator: deterministic, no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
        fn bytes(&mut self) -> [u8; 32] {
            let mut out = [0u8; 32];
            for b in &mut out {
                *b = self.next() as u8;
            }
            out
        }
        /// An address in 198.18.0.0/15 or fd00::/8.
        fn ip(&mut self) -> IpAddr {
            if self.chance(50) {
                let bits =
                    u32::from(Ipv4Addr::new(198, 18, 0, 0)) | (self.next() as u32 & 0x1_ffff);
                IpAddr::V4(Ipv4Addr::from(bits))
            } else {
                let low = (u128::from(self.next()) << 64 | u128::from(self.next())) >> 8;
                IpAddr::V6(Ipv6Addr::from((0xfdu128 << 120) | low))
            }
        }
        fn net(&mut self) -> IpNet {
            let ip = self.ip();
            let max = if ip.is_ipv4() { 32 } else { 128 };
            // Mostly realistic prefixes, sometimes anything.
            let prefix = if self.chance(70) {
                max - self.below(if max == 32 { 17 } else { 121 }) as u8
            } else {
                self.below(u64::from(max) + 1) as u8
            };
            IpNet::new(ip, prefix).unwrap()
        }
        fn domain(&mut self) -> String {
            let labels = [
                "vpn", "corp", "example", "x-1", "a_b", "internal", "EXAMPLE", "test",
            ];
            let tlds = ["com", "org", "test", "lan"];
            let mut out = String::new();
            for _ in 0..=self.below(3) {
                out.push_str(labels[self.below(labels.len() as u64) as usize]);
                out.push('.');
            }
            out.push_str(tlds[self.below(tlds.len() as u64) as usize]);
            if self.chance(10) {
                out.push('.');
            }
            out
        }
        fn command(&mut self) -> String {
            let words = [
                "iptables",
                "-A",
                "FORWARD",
                "-i",
                "%i",
                "-j",
                "ACCEPT;",
                "echo",
                "a=b",
                "'x  y'",
                "\"$HOME\"",
                "ip6tables",
                "é",
                "\\",
                "[peer]",
                "|",
                "&&",
            ];
            let n = self.below(6);
            let mut parts = Vec::new();
            for _ in 0..n {
                parts.push(words[self.below(words.len() as u64) as usize]);
            }
            parts.join(if self.chance(20) { "  " } else { " " })
        }
    }

    fn random_config(rng: &mut Rng) -> TunnelConfig {
        let addresses = (0..rng.below(4)).map(|_| rng.net()).collect();
        let dns_servers = (0..rng.below(4)).map(|_| rng.ip()).collect();
        let dns_search = (0..rng.below(3)).map(|_| rng.domain()).collect();
        let mut hooks = Hooks::default();
        for hook in [
            &mut hooks.pre_up,
            &mut hooks.post_up,
            &mut hooks.pre_down,
            &mut hooks.post_down,
        ] {
            for _ in 0..rng.below(3) {
                hook.push(rng.command());
            }
        }
        let interface = InterfaceConfig {
            private_key: PrivateKey::from_bytes(rng.bytes()),
            addresses,
            listen_port: rng.chance(50).then(|| rng.next() as u16),
            dns_servers,
            dns_search,
            mtu: rng
                .chance(50)
                .then(|| 576 + rng.below(65535 - 576 + 1) as u16),
            table: match rng.below(3) {
                0 => Table::Auto,
                1 => Table::Off,
                _ => Table::Id(rng.next() as u32),
            },
            fwmark: rng.chance(50).then(|| (rng.next() as u32).max(1)),
            hooks,
            save_config: rng.chance(50),
        };
        let mut routes = std::collections::HashSet::new();
        let mut peers = Vec::new();
        for _ in 0..rng.below(4) {
            let mut allowed_ips = Vec::new();
            for _ in 0..rng.below(4) {
                let network = rng.net().trunc();
                if routes.insert(network) {
                    allowed_ips.push(network);
                }
            }
            let endpoint = match rng.below(4) {
                0 => None,
                1 => Some(Endpoint::Host {
                    host: rng.domain(),
                    port: (rng.next() as u16).max(1),
                }),
                _ => Some(Endpoint::Addr(SocketAddr::new(
                    rng.ip(),
                    (rng.next() as u16).max(1),
                ))),
            };
            peers.push(PeerConfig {
                public_key: PublicKey::from_bytes(rng.bytes()),
                preshared_key: rng
                    .chance(30)
                    .then(|| PresharedKey::from_bytes(rng.bytes())),
                allowed_ips,
                endpoint,
                persistent_keepalive: rng.chance(50).then(|| (rng.next() as u16).max(1)),
            });
        }
        TunnelConfig { interface, peers }
    }

    #[test]
    fn randomised_round_trip() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let config = random_config(&mut rng);
            let text = config.to_conf();
            let parsed = match parse(&text, None) {
                Ok(parsed) => parsed,
                Err(e) => panic!("{e}\n--- text ---\n{text}"),
            };
            assert_eq!(parsed, config, "\n--- text ---\n{text}");
            // Writing is deterministic and idempotent.
            assert_eq!(parsed.to_conf(), text);
            let without = config.to_conf_without_private_key();
            assert!(!without.contains(&config.interface.private_key.to_base64()));
        }
    }
}
