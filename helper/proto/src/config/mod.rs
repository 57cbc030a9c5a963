//! The tunnel configuration: a typed model of a wg-quick `.conf` file.
//!
//! [`TunnelConfig`] holds exactly what `wg-quick` understands — the `[Interface]` section (which
//! mixes `wg setconf` keys such as `PrivateKey` with wg-quick keys such as `Address` and `DNS`) and
//! any number of `[Peer]` sections. [`parse`] reads the text format with errors that name the file,
//! the line and the fault; [`TunnelConfig::to_conf`] writes it back so that a parse/write round trip
//! is lossless (comments aside).
//!
//! The model is here; reading and writing the text format are its two submodules.

mod parse;
mod write;

pub use parse::{parse, parse_file, ConfigError};

use crate::key::{PresharedKey, PrivateKey, PublicKey};
use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// One tunnel: an interface and its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    /// The `[Interface]` section.
    pub interface: InterfaceConfig,
    /// The `[Peer]` sections, in file order. Public keys are unique.
    pub peers: Vec<PeerConfig>,
}

/// The `[Interface]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceConfig {
    /// `PrivateKey` (required).
    pub private_key: PrivateKey,
    /// `Address`: the interface's own addresses with their prefix length (host bits kept, as
    /// wg-quick passes them to `ip address add`). Several lines and comma lists accumulate.
    pub addresses: Vec<IpNet>,
    /// `ListenPort`; `None` picks a random port.
    pub listen_port: Option<u16>,
    /// `DNS` entries that are IP addresses: the resolvers to use while the tunnel is up.
    pub dns_servers: Vec<IpAddr>,
    /// `DNS` entries that are not IP addresses: search domains.
    pub dns_search: Vec<String>,
    /// `MTU`; `None` means "derive from the route to the endpoint".
    pub mtu: Option<u16>,
    /// `Table`: where routes for AllowedIPs go.
    pub table: Table,
    /// `FwMark`: the mark put on the tunnel's own UDP packets; `None` is `off`/unset.
    pub fwmark: Option<u32>,
    /// `PreUp`, `PostUp`, `PreDown`, `PostDown` shell commands. Parsed and kept, never run unless
    /// the user explicitly allows hooks.
    pub hooks: Hooks,
    /// `SaveConfig = true`.
    pub save_config: bool,
}

/// The four wg-quick hook lists, each in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// `PreUp` commands.
    pub pre_up: Vec<String>,
    /// `PostUp` commands.
    pub post_up: Vec<String>,
    /// `PreDown` commands.
    pub pre_down: Vec<String>,
    /// `PostDown` commands.
    pub post_down: Vec<String>,
}

impl Hooks {
    /// True when no hook is set.
    pub fn is_empty(&self) -> bool {
        self.pre_up.is_empty()
            && self.post_up.is_empty()
            && self.pre_down.is_empty()
            && self.post_down.is_empty()
    }
}

/// The `Table` setting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Table {
    /// Unset or `auto`: the main table for split tunnels, a private table for full tunnels.
    #[default]
    Auto,
    /// `off`: add no routes at all.
    Off,
    /// A numeric table id (names from `/etc/iproute2/rt_tables` are resolved by the caller).
    Id(u32),
}

/// A `[Peer]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// `PublicKey` (required).
    pub public_key: PublicKey,
    /// `PresharedKey`.
    pub preshared_key: Option<PresharedKey>,
    /// `AllowedIPs`, normalised to their network address (host bits cleared), as `wg` does.
    pub allowed_ips: Vec<IpNet>,
    /// `Endpoint`.
    pub endpoint: Option<Endpoint>,
    /// `PersistentKeepalive` in seconds; `None` for `off` or 0.
    pub persistent_keepalive: Option<u16>,
}

/// A peer's `Endpoint`: an address, or a host name resolved when the tunnel comes up.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `198.18.0.1:51820` or `[fd00::1]:51820`.
    Addr(SocketAddr),
    /// `vpn.example.com:51820`.
    Host {
        /// The host name, without brackets.
        host: String,
        /// The UDP port.
        port: u16,
    },
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Addr(addr) => write!(f, "{addr}"),
            Endpoint::Host { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

impl TunnelConfig {
    /// True when some peer routes all IPv4 or all IPv6 traffic (`0.0.0.0/0` or `::/0`).
    pub fn is_full_tunnel(&self) -> bool {
        self.peers
            .iter()
            .flat_map(|p| &p.allowed_ips)
            .any(|net| net.prefix_len() == 0)
    }

    /// The public key derived from the interface's private key.
    pub fn public_key(&self) -> PublicKey {
        self.interface.private_key.public_key()
    }
}
