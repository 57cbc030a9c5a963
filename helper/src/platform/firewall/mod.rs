//! The kill switch ("block untunneled traffic"): a firewall that lets traffic in and out only
//! through the tunnel, so nothing leaks when the tunnel is down, misrouted or reconnecting. It is
//! a firewall, never routing.
//!
//! What passes (everything else is refused, IPv6 included):
//! - loopback, and anything through the tunnel interface — except DNS: when the tunnel has DNS
//!   servers, DNS (port 53, UDP and TCP) goes only to them, only through the tunnel; without,
//!   DNS goes only through the tunnel;
//! - the WireGuard socket's own datagrams to its peers' endpoints, recognised by the socket's
//!   fwmark (or, without one, its UDP port), and datagrams to the socket's UDP port from any
//!   address (see "Endpoints that move" below);
//! - DHCPv4, DHCPv6, IPv6 neighbour discovery and MLD, so the physical link keeps working;
//! - ICMP errors about allowed flows (path MTU discovery for the WireGuard datagrams);
//! - the local network (private IPv4 ranges, link-local, IPv6 ULAs, local multicast) when
//!   "allow LAN" is on.
//!
//! Packets for the tunnel's own addresses arriving on any other interface are dropped. Outgoing
//! packets are refused with a TCP reset or ICMP "administratively prohibited", so programs fail
//! at once; incoming ones are dropped silently. Forwarded traffic (containers, VMs) follows the
//! same rules. There is one kill switch per host: applying it for another tunnel replaces it.
//!
//! **Endpoints that move.** The endpoints are the data plane's *current* ones, not the
//! configuration's: the session re-plans whenever the core roams a peer to a new address (an
//! authenticated datagram came from there), a host-name endpoint re-resolves to a new address, or
//! `wg set` changes an endpoint, the listen port or the fwmark, and calls [`update`], which
//! replaces the rules atomically (on Linux: the endpoint sets' elements in one transaction on the
//! same table, or the whole table in one transaction when the socket's mark or port changed).
//! A server that answers from another of its addresses (multi-homed, load-balanced) is the case
//! that needs a rule decided in advance, because its first datagram comes from an address not in
//! the set yet. The rule: **inbound**, datagrams to the WireGuard socket's own UDP port pass from
//! any address — only that socket is bound to the port, and it accepts nothing but authenticated
//! WireGuard (the core drops everything else without answering, and even its cookie replies and
//! handshake responses could only leave towards the set); **outbound**, the socket may send only
//! to the set, so a new address is reachable only after the core has authenticated a datagram
//! from it and roamed there, and the session has added it. Nothing but the socket may send
//! outside the tunnel: other programs' packets carry neither its mark nor (without a mark) its
//! port, which the kernel gives to one socket only.
//!
//! Limits, by design: between the core roaming and the session's update (its next look at the
//! data plane, within a second) datagrams to the new address are refused and retried by
//! WireGuard's timers. DNS servers on the LAN are refused even when "allow LAN" is on, unless
//! they are the tunnel's and reached through it.
//!
//! It works in the platform layer's "plan, then apply" halves, with the journal contract:
//! - [`plan`] is pure: it validates a [`KillSwitchInput`] into a [`KillSwitchPlan`] and refuses
//!   bad input before anything changes. `nft::ruleset` (Linux) and `pf` (macOS) render a plan
//!   as the exact script.
//! - [`check`] is the preflight (the firewall tool is there and usable), run before any change.
//! - [`apply`] journals a [`FirewallChange`] through `record` *before* making it, then makes it;
//!   on failure it returns the error without rolling back (the caller undoes the journal).
//! - [`update`] moves an applied kill switch to a new plan atomically, journaling nothing new.
//! - [`undo`] reverts one journaled change and is idempotent: a change that was never made or is
//!   already gone undoes as success.
//!
//! Linux: one nftables table, `inet warren`, loaded with `nft -f -` as one transaction (so
//! re-applying replaces the old rules atomically) and removed whole with `delete table`. Other
//! programs' tables are never touched and the ruleset is never flushed.
//!
//! Per-OS code is chosen once, below, behind the private [`KillSwitchOps`] trait — on Linux an
//! nftables table, on macOS a pf anchor, on Windows a WFP dynamic session, each with its own
//! [`FirewallChange`] variant; OSes without a real module get `unsupported`, which refuses in
//! [`check`] before anything changes. The plan and the renderers (nftables, pf, the WFP filter
//! set in `wfp`) are pure and tested on every OS.

// Pure and tested everywhere, but only Linux loads nftables scripts.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
mod nft;
mod pf;
mod plan;
// Pure and tested everywhere, but only Windows installs WFP filters.
#[cfg_attr(not(windows), allow(dead_code))]
mod wfp;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as imp;
/// nft itself, shared with the full tunnel's reverse-path guard (`platform::mark_guard`).
#[cfg(target_os = "linux")]
pub(crate) use linux::{nft_program, run_nft};

#[cfg(target_os = "macos")]
mod macos;
#[cfg(target_os = "macos")]
use macos as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
mod unsupported;
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
use unsupported as imp;

pub use plan::{plan, KillSwitchInput, KillSwitchPlan};

use super::Unsupported;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;

/// One firewall change, journaled before it is made and reverted by [`undo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FirewallChange {
    /// macOS: Warren's pf anchor (`com.apple/warren`) loaded with the kill switch. Undo flushes
    /// it; it refuses any anchor that is not Warren's.
    PfAnchor {
        /// The anchor's path.
        anchor: String,
    },
    /// macOS: pf enabled with a reference (`pfctl -E`), journaled before (`token: None`) and again
    /// once pf has returned the token. Undo releases it (`pfctl -X <token>`).
    PfEnabled {
        /// The reference token, once known.
        token: Option<String>,
    },
    /// Windows: a WFP dynamic session holding the kill switch's filters; they vanish when it
    /// closes, on undo or with the process.
    WfpDynamicSession {
        /// The tunnel interface.
        ifname: String,
    },
    /// Linux: the nftables table `family name` (`inet warren`) was created or replaced. Undo
    /// deletes the whole table; it refuses any table that is not Warren's.
    NftTable {
        /// The nftables address family, `inet`.
        family: String,
        /// The table name, `warren`.
        name: String,
    },
}

impl fmt::Display for FirewallChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FirewallChange::NftTable { family, name } => {
                write!(f, "nftables table {family} {name}")
            }
            FirewallChange::PfAnchor { anchor } => write!(f, "pf anchor {anchor}"),
            FirewallChange::PfEnabled { token: Some(token) } => {
                write!(f, "pf enable reference {token}")
            }
            FirewallChange::PfEnabled { token: None } => write!(f, "pf enable reference"),
            FirewallChange::WfpDynamicSession { ifname } => {
                write!(f, "WFP dynamic session for {ifname}")
            }
        }
    }
}

/// Why a kill switch cannot be planned, or cannot work on this machine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KillSwitchError {
    /// The interface name could not be used safely in a firewall rule.
    #[error("cannot build a kill switch for interface {name:?}: {reason}")]
    InterfaceName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No peer has an endpoint.
    #[error(
        "cannot build a kill switch for {ifname}: no peer has an endpoint, so the WireGuard \
         socket would have nowhere to send to"
    )]
    NoEndpoints {
        /// The tunnel interface.
        ifname: String,
    },
    /// An endpoint's port is 0.
    #[error("cannot build a kill switch for {ifname}: endpoint {endpoint} has port 0")]
    EndpointPort {
        /// The tunnel interface.
        ifname: String,
        /// The endpoint.
        endpoint: SocketAddr,
    },
    /// Neither a fwmark nor a listen port identifies the WireGuard socket's traffic.
    #[error(
        "cannot build a kill switch for {ifname}: the WireGuard socket has neither a fwmark nor \
         a known listen port, so its traffic to the endpoints cannot be told apart from other \
         programs'"
    )]
    UnidentifiableSocket {
        /// The tunnel interface.
        ifname: String,
    },
    /// The firewall tool could not be run at all.
    // Only Linux has a firewall tool to run today (pfctl on macOS will be next).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    #[error(
        "the kill switch needs nft (Debian package nftables), but running {program} failed: \
         {cause}"
    )]
    ToolMissing {
        /// The program that was run.
        program: String,
        /// Why it could not run.
        cause: String,
    },
    /// The firewall tool ran but cannot load a kill switch here.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    #[error("the kill switch cannot work here: `{command}` failed: {detail}")]
    ToolUnusable {
        /// The command that failed.
        command: String,
        /// Its exit status and error output.
        detail: String,
    },
    /// This OS has no kill switch yet.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
}

/// When the kill switch is on: `on`, `off`, or `auto` (on for full tunnels, as wireguard-windows
/// does). The CLI's `--kill-switch` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KillSwitchMode {
    /// Always.
    On,
    /// Never.
    Off,
    /// For full tunnels (some peer has `0.0.0.0/0` or `::/0`), not for split tunnels.
    #[default]
    Auto,
}

impl KillSwitchMode {
    /// Whether a tunnel gets a kill switch; `full_tunnel` is
    /// `warren_proto::config::TunnelConfig::is_full_tunnel`.
    pub fn enabled(self, full_tunnel: bool) -> bool {
        match self {
            KillSwitchMode::On => true,
            KillSwitchMode::Off => false,
            KillSwitchMode::Auto => full_tunnel,
        }
    }
}

impl FromStr for KillSwitchMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "on" => Ok(KillSwitchMode::On),
            "off" => Ok(KillSwitchMode::Off),
            "auto" => Ok(KillSwitchMode::Auto),
            other => Err(format!(
                "invalid kill switch mode {other:?}: expected on, off or auto"
            )),
        }
    }
}

impl fmt::Display for KillSwitchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KillSwitchMode::On => "on",
            KillSwitchMode::Off => "off",
            KillSwitchMode::Auto => "auto",
        })
    }
}

/// The preflight, before any change: on Linux, `nft` is installed and this process may load an
/// `inet` table with the expressions the kill switch uses (checked with `nft --check`, which
/// changes nothing).
pub fn check() -> Result<(), KillSwitchError> {
    <imp::Ops as KillSwitchOps>::check()
}

/// Installs the kill switch described by `plan`, replacing any previous one atomically. Each
/// change is passed to `record` before it is made; if `record` fails, nothing is changed. On
/// failure the error names what failed (for nft, with its own message) and nothing is rolled
/// back here: undo the recorded changes.
pub async fn apply(
    plan: &KillSwitchPlan,
    record: &mut impl FnMut(FirewallChange) -> io::Result<()>,
) -> anyhow::Result<()> {
    <imp::Ops as KillSwitchOps>::apply(plan, record).await
}

/// Moves an applied kill switch from `old` to `new` (its endpoints moved, or its socket's port or
/// mark changed), atomically: there is no moment without rules, and no moment where neither the
/// old nor the new rules hold. Nothing new is journaled: the change [`apply`] journaled still
/// names what undo removes (on Linux the whole table, whatever its contents now), so a crash
/// after an update is undone exactly like one before it. Nothing to do when `old == new`.
pub async fn update(old: &KillSwitchPlan, new: &KillSwitchPlan) -> anyhow::Result<()> {
    if old == new {
        return Ok(());
    }
    <imp::Ops as KillSwitchOps>::update(old, new).await
}

/// Reverts one journaled firewall change. Idempotent: if what it names is already gone (or was
/// never made), that is success.
pub async fn undo(change: &FirewallChange) -> anyhow::Result<()> {
    <imp::Ops as KillSwitchOps>::undo(change).await
}

/// What each OS module implements. Private: the functions above are the only callers.
trait KillSwitchOps {
    /// See [`check`].
    fn check() -> Result<(), KillSwitchError>;
    /// See [`apply`]. Must call `record` with each change before making it, and change nothing
    /// if `record` fails.
    async fn apply(
        plan: &KillSwitchPlan,
        record: &mut impl FnMut(FirewallChange) -> io::Result<()>,
    ) -> anyhow::Result<()>;
    /// See [`undo`].
    async fn undo(change: &FirewallChange) -> anyhow::Result<()>;
    /// See [`update`]. By default, applies `new` again without journaling (the journal already
    /// holds the change an apply made, and undoing it removes whatever the update left); an OS
    /// whose apply makes more than one replaceable change overrides it.
    async fn update(_old: &KillSwitchPlan, new: &KillSwitchPlan) -> anyhow::Result<()> {
        Self::apply(new, &mut |_| Ok(())).await
    }
}

#[cfg(test)]
mod tests {
    use super::plan::tests::{ip, net, sock};
    use super::*;

    #[test]
    fn changes_serialise_as_the_journal_stores_them() {
        let change = FirewallChange::NftTable {
            family: "inet".into(),
            name: "warren".into(),
        };
        let json = serde_json::to_string(&change).unwrap();
        assert_eq!(json, r#"{"NftTable":{"family":"inet","name":"warren"}}"#);
        assert_eq!(
            serde_json::from_str::<FirewallChange>(&json).unwrap(),
            change
        );
        assert_eq!(change.to_string(), "nftables table inet warren");
    }

    #[test]
    fn modes_parse_print_and_decide() {
        for mode in [
            KillSwitchMode::On,
            KillSwitchMode::Off,
            KillSwitchMode::Auto,
        ] {
            assert_eq!(mode.to_string().parse::<KillSwitchMode>(), Ok(mode));
        }
        assert_eq!(
            "yes".parse::<KillSwitchMode>(),
            Err("invalid kill switch mode \"yes\": expected on, off or auto".into())
        );
        assert_eq!(KillSwitchMode::default(), KillSwitchMode::Auto);
        assert!(KillSwitchMode::On.enabled(false));
        assert!(!KillSwitchMode::Off.enabled(true));
        assert!(KillSwitchMode::Auto.enabled(true));
        assert!(!KillSwitchMode::Auto.enabled(false));
        assert_eq!(
            serde_json::to_string(&KillSwitchMode::Auto).unwrap(),
            r#""auto""#
        );
    }

    /// Not a unit test: the stand-in for `warren-helper up --kill-switch on` and its teardown
    /// that `tests/netns/test-killswitch.sh` drives until the CLI has the flag. It does nothing
    /// unless `WARREN_KS_TOOL` is `apply` or `undo`, and runs only inside the network namespace
    /// named by `WARREN_KS_NETNS` (as `ip netns exec` sets it up). Inputs (environment):
    /// `WARREN_KS_IFNAME`, `WARREN_KS_ENDPOINTS` (comma-separated socket addresses),
    /// `WARREN_KS_FWMARK` (`0x..` or decimal), `WARREN_KS_LISTEN_PORT`, `WARREN_KS_DNS`,
    /// `WARREN_KS_ADDRESSES` (comma-separated), `WARREN_KS_ALLOW_LAN` (`1`), and
    /// `WARREN_KS_JOURNAL`: a file of JSON lines, one per recorded change, that `undo` replays
    /// newest first.
    #[test]
    #[cfg(target_os = "linux")]
    #[ignore = "a tool for tests/netns/test-killswitch.sh; does nothing without WARREN_KS_TOOL"]
    fn netns_tool() {
        use std::io::Write as _;

        let Ok(action) = std::env::var("WARREN_KS_TOOL") else {
            return;
        };
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        // Only inside the named namespace the harness created: the one `ip netns exec` put us in.
        {
            use std::os::unix::fs::MetadataExt as _;
            let named = std::fs::metadata(format!("/run/netns/{}", var("WARREN_KS_NETNS")));
            let mine = std::fs::metadata("/proc/self/ns/net").unwrap();
            assert!(
                !var("WARREN_KS_NETNS").is_empty()
                    && named.is_ok_and(|n| (n.dev(), n.ino()) == (mine.dev(), mine.ino())),
                "refusing to change a firewall outside the test's namespace: run this only as \
                 `ip netns exec NS env WARREN_KS_NETNS=NS ...`"
            );
        }
        let list = |name: &str| -> Vec<String> {
            var(name)
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let journal_path = std::path::PathBuf::from(var("WARREN_KS_JOURNAL"));
        assert!(
            !journal_path.as_os_str().is_empty(),
            "WARREN_KS_JOURNAL is required"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        match action.as_str() {
            "apply" => {
                let endpoints: Vec<SocketAddr> = list("WARREN_KS_ENDPOINTS")
                    .iter()
                    .map(|s| s.parse().unwrap())
                    .collect();
                let dns: Vec<std::net::IpAddr> = list("WARREN_KS_DNS")
                    .iter()
                    .map(|s| s.parse().unwrap())
                    .collect();
                let addresses: Vec<ipnet::IpNet> = list("WARREN_KS_ADDRESSES")
                    .iter()
                    .map(|s| s.parse().unwrap())
                    .collect();
                let fwmark = match var("WARREN_KS_FWMARK").as_str() {
                    "" => None,
                    hex if hex.starts_with("0x") => {
                        Some(u32::from_str_radix(&hex[2..], 16).unwrap())
                    }
                    dec => Some(dec.parse().unwrap()),
                };
                let listen_port = match var("WARREN_KS_LISTEN_PORT").as_str() {
                    "" => None,
                    port => Some(port.parse().unwrap()),
                };
                let ifname = var("WARREN_KS_IFNAME");
                let plan = plan(KillSwitchInput {
                    ifname: &ifname,
                    endpoints: &endpoints,
                    fwmark,
                    listen_port,
                    dns_servers: &dns,
                    tunnel_addresses: &addresses,
                    allow_lan: var("WARREN_KS_ALLOW_LAN") == "1",
                })
                .unwrap();
                check().unwrap();
                eprintln!("{}", nft::ruleset(&plan));
                let mut record = |change: FirewallChange| {
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&journal_path)?;
                    writeln!(file, "{}", serde_json::to_string(&change)?)?;
                    file.sync_all()
                };
                runtime.block_on(apply(&plan, &mut record)).unwrap();
            }
            "undo" => {
                let text = std::fs::read_to_string(&journal_path).unwrap_or_default();
                for line in text.lines().rev().filter(|l| !l.trim().is_empty()) {
                    let change: FirewallChange = serde_json::from_str(line).unwrap();
                    eprintln!("undoing {change}");
                    runtime.block_on(undo(&change)).unwrap();
                }
            }
            other => panic!("WARREN_KS_TOOL={other:?}: expected apply or undo"),
        }
    }

    #[test]
    fn apply_and_undo_futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let plan = plan(KillSwitchInput {
            ifname: "wg0",
            endpoints: &[sock("198.18.0.2:51820")],
            fwmark: Some(1),
            listen_port: None,
            dns_servers: &[ip("198.19.0.53")],
            tunnel_addresses: &[net("198.19.0.1/24")],
            allow_lan: false,
        })
        .unwrap();
        let mut record = |_: FirewallChange| Ok(());
        assert_send(apply(&plan, &mut record));
        let change = FirewallChange::NftTable {
            family: "inet".into(),
            name: "warren".into(),
        };
        assert_send(undo(&change));
    }
}
