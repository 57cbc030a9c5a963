//! The DNS planner: a pure function from a tunnel configuration to the resolvers, search domains
//! and routing policy the tunnel's DNS needs, and the refusals for a DNS setup that cannot work.
//!
//! What "cannot work" means here (checked before anything on the system changes):
//! - Search domains without any resolver (`DNS = corp.example` alone): every method would either
//!   send the queries nowhere or leave the system with a `resolv.conf` without a `nameserver`,
//!   which glibc reads as "ask 127.0.0.1". Refused.
//! - A full tunnel (some peer has `0.0.0.0/0` or `::/0`) with a resolver that the tunnel does not
//!   carry: all traffic is meant to go through the tunnel, so a query to a resolver outside every
//!   peer's AllowedIPs (and outside the interface's own prefixes) would leave the machine outside
//!   the tunnel — a DNS leak, and usually a resolver that cannot be reached from where the user
//!   is. Refused, naming the server. (`Table = off` means the user routes by hand, so this is only
//!   a warning there; loopback resolvers such as a local dnscrypt proxy are always fine.)
//! - In a split tunnel a resolver outside the AllowedIPs is legitimate (the LAN's resolver, say):
//!   a warning, not an error.
//!
//! Warnings are logged and kept in [`DnsPlan::warnings`] so tests can see them.

use super::{DnsMethod, DnsPlanError};
use std::net::IpAddr;
use std::path::PathBuf;
use warren_proto::config::{Table, TunnelConfig};

/// How many `nameserver` lines glibc's resolver reads (`MAXNS`); later ones are ignored.
pub const GLIBC_MAX_NAMESERVERS: usize = 3;

/// The default file the `file` method rewrites.
pub use crate::sys::paths::RESOLV_CONF;

/// What the tunnel's DNS needs: computed by [`plan`], checked by [`super::check`], executed by
/// [`super::apply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPlan {
    /// The tunnel interface's name.
    pub ifname: String,
    /// How DNS is configured on this system.
    pub method: DnsMethod,
    /// The resolvers, deduplicated, in config order. Never empty.
    pub servers: Vec<IpAddr>,
    /// The search domains, deduplicated, in config order.
    pub search: Vec<String>,
    /// True for a full tunnel: every query goes to the tunnel's resolvers (`~.` with
    /// systemd-resolved; the other methods replace the system's resolvers anyway).
    pub route_all: bool,
    /// `file` method: the file to rewrite ([`RESOLV_CONF`]; a temp file in tests).
    pub resolv_conf: PathBuf,
    /// `file` method: where the original is saved (`$WARREN_STATE_DIR/dns`).
    pub backup_dir: PathBuf,
    /// Things that work but may surprise, in words for the log.
    pub warnings: Vec<String>,
}

/// Plans the DNS of tunnel `ifname` for `config` with `method`; `None` when the configuration has
/// no `DNS =` at all. The `file` method's paths are the system's ([`RESOLV_CONF`] and
/// `$WARREN_STATE_DIR/dns`); tests replace them in the returned plan.
pub fn plan(
    config: &TunnelConfig,
    ifname: &str,
    method: DnsMethod,
) -> Result<Option<DnsPlan>, DnsPlanError> {
    let interface = &config.interface;
    let servers = dedup(interface.dns_servers.iter().copied());
    let search = dedup(interface.dns_search.iter().cloned());
    if servers.is_empty() {
        if search.is_empty() {
            return Ok(None);
        }
        return Err(DnsPlanError::SearchWithoutServers {
            domains: search.join(", "),
        });
    }

    let all_v4 = routes_all(config, false);
    let all_v6 = routes_all(config, true);
    let route_all = all_v4 || all_v6;
    let mut warnings = Vec::new();
    for &server in &servers {
        if server.is_loopback() || carried(config, server) {
            continue;
        }
        let family = if all_v4 { "IPv4" } else { "IPv6" };
        if route_all && config.interface.table != Table::Off {
            return Err(DnsPlanError::ServerOutsideFullTunnel { server, family });
        }
        warnings.push(if route_all {
            format!(
                "DNS server {server} is outside every peer's AllowedIPs; with Table = off it is \
                 reached however your own routes say"
            )
        } else {
            format!(
                "DNS server {server} is outside every peer's AllowedIPs: queries to it use the \
                 regular network, not the tunnel (fine for a resolver on the local network)"
            )
        });
    }
    if method != DnsMethod::Resolved && servers.len() > GLIBC_MAX_NAMESERVERS {
        warnings.push(format!(
            "{} DNS servers configured, but the system resolver (glibc) uses only the first \
             {GLIBC_MAX_NAMESERVERS}: {}",
            servers.len(),
            join(&servers[..GLIBC_MAX_NAMESERVERS])
        ));
    }
    for warning in &warnings {
        tracing::warn!("{ifname}: {warning}");
    }

    Ok(Some(DnsPlan {
        ifname: ifname.to_owned(),
        method,
        servers,
        search,
        route_all,
        resolv_conf: PathBuf::from(RESOLV_CONF),
        backup_dir: crate::sys::paths::dns_backup_dir(),
        warnings,
    }))
}

/// True when some peer's AllowedIPs hold the default route of the family (`::/0` when `v6`).
fn routes_all(config: &TunnelConfig, v6: bool) -> bool {
    config
        .peers
        .iter()
        .flat_map(|peer| &peer.allowed_ips)
        .any(|net| net.prefix_len() == 0 && matches!(net.addr(), IpAddr::V6(_)) == v6)
}

/// True when traffic to `server` goes through the tunnel interface: inside some peer's AllowedIPs,
/// or inside the prefix of one of the interface's own addresses (the kernel routes that prefix
/// through the interface).
fn carried(config: &TunnelConfig, server: IpAddr) -> bool {
    let in_allowed_ips = config
        .peers
        .iter()
        .flat_map(|peer| &peer.allowed_ips)
        .any(|net| net.contains(&server));
    let on_link = config
        .interface
        .addresses
        .iter()
        .any(|address| address.trunc().contains(&server));
    in_allowed_ips || on_link
}

fn dedup<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

fn join(servers: &[IpAddr]) -> String {
    servers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config with one peer; `dns` and `allowed` are the text of the `DNS` and `AllowedIPs` lines.
    fn config(dns: &str, allowed: &str, extra: &str) -> TunnelConfig {
        let text = format!(
            "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
             Address = 198.18.100.2/24, fd00:100::2/64\n{extra}DNS = {dns}\n\n\
             [Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
             AllowedIPs = {allowed}\nEndpoint = 198.18.0.1:51820\n"
        );
        warren_proto::config::parse(&text, None).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn no_dns_line_means_no_plan() {
        let mut cfg = config("198.18.200.53", "198.18.200.0/24", "");
        cfg.interface.dns_servers.clear();
        assert_eq!(plan(&cfg, "wg0", DnsMethod::File).unwrap(), None);
    }

    #[test]
    fn split_tunnel_plan_keeps_servers_and_search_domains_in_order_without_duplicates() {
        let cfg = config(
            "198.18.200.53, fd00:200::53, corp.example, 198.18.200.53, lab.example, corp.example",
            "198.18.200.0/24, fd00:200::/64",
            "",
        );
        let planned = plan(&cfg, "wg0", DnsMethod::Resolved).unwrap().unwrap();
        assert_eq!(planned.ifname, "wg0");
        assert_eq!(planned.method, DnsMethod::Resolved);
        assert_eq!(planned.servers, [ip("198.18.200.53"), ip("fd00:200::53")]);
        assert_eq!(planned.search, ["corp.example", "lab.example"]);
        assert!(!planned.route_all);
        assert!(planned.warnings.is_empty(), "{:?}", planned.warnings);
        assert_eq!(planned.resolv_conf, PathBuf::from("/etc/resolv.conf"));
        assert!(planned.backup_dir.ends_with("dns"));
    }

    #[test]
    fn full_tunnel_routes_all_queries() {
        let cfg = config("198.18.200.53", "0.0.0.0/0", "");
        let planned = plan(&cfg, "wg0", DnsMethod::File).unwrap().unwrap();
        assert!(planned.route_all);
        assert!(planned.warnings.is_empty(), "{:?}", planned.warnings);
        let cfg = config("fd00:200::53", "::/0, 198.18.200.0/24", "");
        assert!(
            plan(&cfg, "wg0", DnsMethod::File)
                .unwrap()
                .unwrap()
                .route_all
        );
    }

    #[test]
    fn full_tunnel_refuses_a_resolver_the_tunnel_does_not_carry() {
        // IPv4 goes through the tunnel, but this IPv6 resolver is outside every AllowedIPs.
        let cfg = config("198.18.200.53, fd00:99::53", "0.0.0.0/0", "");
        let err = plan(&cfg, "wg0", DnsMethod::File).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DNS server fd00:99::53 is not reachable through the tunnel: the tunnel carries all \
             IPv4 traffic, but fd00:99::53 is outside every peer's AllowedIPs, so DNS queries \
             would leave outside the tunnel; add it to a peer's AllowedIPs or use a resolver \
             inside the tunnel"
        );
    }

    #[test]
    fn full_tunnel_accepts_loopback_and_on_link_resolvers() {
        // 198.18.100.1 is inside the interface's own 198.18.100.0/24.
        let cfg = config("127.0.0.1, 198.18.100.1, ::1", "::/0", "");
        let plan = plan(&cfg, "wg0", DnsMethod::File).unwrap().unwrap();
        assert_eq!(plan.servers.len(), 3);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
    }

    #[test]
    fn full_tunnel_with_table_off_only_warns() {
        let cfg = config("198.19.99.53", "::/0", "Table = off\n");
        let plan = plan(&cfg, "wg0", DnsMethod::File).unwrap().unwrap();
        assert_eq!(plan.warnings.len(), 1);
        assert!(
            plan.warnings[0].contains("Table = off"),
            "{:?}",
            plan.warnings
        );
    }

    #[test]
    fn split_tunnel_warns_about_a_resolver_outside_the_tunnel() {
        let cfg = config("198.19.99.53, 198.18.200.53", "198.18.200.0/24", "");
        let plan = plan(&cfg, "wg0", DnsMethod::File).unwrap().unwrap();
        assert_eq!(plan.servers, [ip("198.19.99.53"), ip("198.18.200.53")]);
        assert_eq!(
            plan.warnings,
            [
                "DNS server 198.19.99.53 is outside every peer's AllowedIPs: queries to it use the \
              regular network, not the tunnel (fine for a resolver on the local network)"
            ]
        );
    }

    #[test]
    fn search_domains_without_a_server_are_refused() {
        let mut cfg = config("corp.example, lab.example", "198.18.200.0/24", "");
        cfg.interface.dns_servers.clear();
        let err = plan(&cfg, "wg0", DnsMethod::Resolved).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DNS lists search domains (corp.example, lab.example) but no DNS server address; add \
             the tunnel's resolver, e.g. DNS = 198.18.0.53, corp.example"
        );
    }

    #[test]
    fn more_servers_than_glibc_reads_warns_except_with_resolved() {
        let dns = "198.18.200.1, 198.18.200.2, 198.18.200.3, 198.18.200.4";
        let cfg = config(dns, "198.18.200.0/24", "");
        let file = plan(&cfg, "wg0", DnsMethod::File).unwrap().unwrap();
        assert_eq!(file.servers.len(), 4);
        assert_eq!(
            file.warnings,
            [
                "4 DNS servers configured, but the system resolver (glibc) uses only the first 3: \
              198.18.200.1, 198.18.200.2, 198.18.200.3"
            ]
        );
        let resolvconf = plan(&cfg, "wg0", DnsMethod::Resolvconf).unwrap().unwrap();
        assert_eq!(resolvconf.warnings.len(), 1);
        let resolved = plan(&cfg, "wg0", DnsMethod::Resolved).unwrap().unwrap();
        assert!(resolved.warnings.is_empty());
    }
}
