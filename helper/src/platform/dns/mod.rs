//! DNS while a tunnel is up: which resolvers and search domains the system uses, set when the
//! tunnel comes up and restored exactly when it goes down — or, after a crash, from the journal at
//! the next start.
//!
//! Four steps, each a function here; the caller (the `up` command, later the daemon) runs them in
//! order:
//! 1. [`detect_method`]: how this system manages DNS — [`DnsMethod::Resolved`] when
//!    systemd-resolved runs (`/run/systemd/resolve/` exists and `org.freedesktop.resolve1` answers
//!    on the system bus), else [`DnsMethod::Resolvconf`] when a `resolvconf` program is installed,
//!    else [`DnsMethod::File`]. The setting `WARREN_DNS_METHOD=resolved|resolvconf|file` overrides
//!    the detection.
//! 2. [`plan`]: pure — the resolvers, search domains and routing policy from the config; refuses a
//!    DNS setup that cannot work (see `plan.rs`). `None` when the config has no `DNS =`.
//! 3. [`check`]: preflight against the system, before ANY change — the chosen method must be
//!    usable (resolved reachable, resolvconf installed, `/etc/resolv.conf` writable and not a
//!    leftover of an earlier Warren run). Errors name what is missing and what to do.
//! 4. [`apply`] and [`undo`]: the journal contract — `apply` passes each [`DnsChange`] to `record`
//!    *before* making it (with what undo needs: the interface index, the resolvconf record name,
//!    the backup of the original file) and stops at the first failure without rolling back;
//!    `undo` reverts one change, is idempotent, and treats "already gone" as success.
//!
//! Per method (Linux):
//! - resolved: `SetLinkDNS`, `SetLinkDomains` (search domains; plus the routing-only domain `.`
//!   — `~.` in resolvectl's notation — for a full tunnel) and, for a full tunnel,
//!   `SetLinkDefaultRoute(true)` on the tunnel's link; undone with `RevertLink`. A link that is gone
//!   (the TUN closes with the helper) has nothing left to revert.
//! - resolvconf: `resolvconf -a <name> -m 0 -x` with a resolv.conf fragment on stdin, as wg-quick
//!   does; undone with `resolvconf -d <name> -f`.
//! - file: `/etc/resolv.conf` saved byte for byte (a symlink: its target) under
//!   `$WARREN_STATE_DIR/dns/`, then rewritten with a marker header; undone by restoring the exact
//!   bytes (or symlink) — but only while the file still carries our marker: if something else has
//!   rewritten it since, its newer content wins and the backup is kept (see `file.rs`). While the
//!   tunnel is up, [`guard`] watches the file: another program's rewrite becomes the new backup
//!   and the tunnel's file is written again (`file_watch.rs`), within limits.
//!
//! Per-OS code is chosen once, below: each OS module implements the private [`DnsOps`] trait; OSes
//! without a real module get `unsupported`, whose every step fails with [`Unsupported`]. No `#[cfg]`
//! appears in a public signature.

mod plan;

#[cfg(target_os = "linux")]
mod file;
#[cfg(target_os = "linux")]
mod file_watch;
#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
mod resolvconf;
#[cfg(target_os = "linux")]
mod resolved;
#[cfg(target_os = "linux")]
use linux as imp;

#[cfg(target_os = "macos")]
mod macos;
// Pure: compiled and tested everywhere, called only on macOS.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
mod macos_keys;
#[cfg(target_os = "macos")]
use macos as imp;

#[cfg(windows)]
mod windows;
// Pure and tested everywhere, but only Windows writes the registry.
#[cfg_attr(not(windows), allow(dead_code))]
mod windows_values;
#[cfg(windows)]
use windows as imp;

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
mod unsupported;
#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
use unsupported as imp;

pub use plan::{plan, DnsPlan};

use super::Unsupported;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// The environment variable that overrides [`detect_method`].
pub const METHOD_ENV: &str = "WARREN_DNS_METHOD";

/// How DNS is configured on this system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsMethod {
    /// systemd-resolved, per link, over D-Bus.
    Resolved,
    /// The `resolvconf` program (Debian's resolvconf or openresolv).
    Resolvconf,
    /// Rewrite `/etc/resolv.conf` directly.
    File,
    /// macOS: every active network service's DNS in the System Configuration dynamic store.
    DynamicStore,
    /// Windows: the tunnel interface's own DNS settings, plus an NRPT rule for a full tunnel.
    Windows,
}

impl DnsMethod {
    /// Every method, in detection order.
    pub const ALL: [DnsMethod; 3] = [DnsMethod::Resolved, DnsMethod::Resolvconf, DnsMethod::File];

    /// The name used in settings and messages: `resolved`, `resolvconf`, `file`.
    pub fn name(self) -> &'static str {
        match self {
            DnsMethod::Resolved => "resolved",
            DnsMethod::Resolvconf => "resolvconf",
            DnsMethod::File => "file",
            DnsMethod::DynamicStore => "scdynamicstore",
            DnsMethod::Windows => "windows",
        }
    }
}

impl fmt::Display for DnsMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a name that is not a [`DnsMethod`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown DNS method '{0}': use resolved, resolvconf or file")]
pub struct UnknownDnsMethod(pub String);

impl FromStr for DnsMethod {
    type Err = UnknownDnsMethod;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DnsMethod::ALL
            .into_iter()
            .find(|method| method.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownDnsMethod(s.to_owned()))
    }
}

/// Why the tunnel's DNS cannot be set up. Every variant is detected before the system changes.
#[derive(Debug, thiserror::Error)]
pub enum DnsPlanError {
    /// `WARREN_DNS_METHOD` holds something else than a method name.
    #[error("{METHOD_ENV}: {0}")]
    BadOverride(#[source] UnknownDnsMethod),
    /// `DNS =` lists only search domains.
    #[error(
        "DNS lists search domains ({domains}) but no DNS server address; add the tunnel's \
         resolver, e.g. DNS = 198.18.0.53, {first}",
        first = domains.split(", ").next().unwrap_or_default()
    )]
    SearchWithoutServers {
        /// The search domains, comma-separated.
        domains: String,
    },
    /// A full tunnel whose resolver the tunnel does not carry.
    #[error(
        "DNS server {server} is not reachable through the tunnel: the tunnel carries all {family} \
         traffic, but {server} is outside every peer's AllowedIPs, so DNS queries would leave \
         outside the tunnel; add it to a peer's AllowedIPs or use a resolver inside the tunnel"
    )]
    ServerOutsideFullTunnel {
        /// The resolver.
        server: IpAddr,
        /// "IPv4" or "IPv6": the family the tunnel carries entirely.
        family: &'static str,
    },
    /// The method cannot be used here (resolved not running, resolvconf missing, ...).
    #[error("cannot set DNS with method '{method}': {reason}{hint}", hint = override_hint())]
    MethodUnavailable {
        /// The method that was chosen or forced.
        method: DnsMethod,
        /// What is missing, in words.
        reason: String,
    },
    /// `/etc/resolv.conf` still carries a Warren marker: an earlier tunnel's DNS is in place.
    #[error(
        "{path} was written by Warren for {ifname} and not restored yet: another tunnel with DNS \
         is up, or a crashed run left it (`warren-helper recover` undoes what crashed runs left; \
         the original is saved in {backup_dir})",
        path = path.display(),
        backup_dir = backup_dir.display()
    )]
    // The `file` method is Linux's.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Leftover {
        /// The file.
        path: PathBuf,
        /// The interface named in the marker.
        ifname: String,
        /// Where backups are kept.
        backup_dir: PathBuf,
    },
    /// A file or directory the `file` method must read or write is not usable.
    #[error("cannot {action} {path} (needed by DNS method 'file'): {cause}", path = path.display())]
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    FileAccess {
        /// "read", "write", "replace".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        cause: io::Error,
    },
    /// There is no DNS support for this OS yet.
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
}

/// When the method was forced, says so: the user may want detection instead.
fn override_hint() -> String {
    match std::env::var_os(METHOD_ENV) {
        Some(value) if !value.is_empty() => format!(
            " ({METHOD_ENV}={} forces this method; unset it to detect the method automatically)",
            value.to_string_lossy()
        ),
        _ => String::new(),
    }
}

/// One DNS change, journaled (by `record` in [`apply`]) before it is made, with everything
/// [`undo`] needs to revert it, even from a later process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsChange {
    /// macOS: one dynamic store key (`State:/Network/Service/<id>/DNS`, or `Setup:/...` where the
    /// user set DNS by hand) replaced by the tunnel's DNS dictionary.
    DynamicStoreKey {
        /// The tunnel interface's name (the owner mark inside the value written).
        ifname: String,
        /// The store key.
        key: String,
        /// The value before, as an XML property list; `None` when the key did not exist.
        original: Option<String>,
    },
    /// Windows: DNS servers and search list set on the tunnel interface.
    WindowsInterface {
        /// The tunnel interface's name (checked before reverting: the index may be reused).
        ifname: String,
        /// Its interface index when the change was made.
        ifindex: u32,
    },
    /// Windows: an NRPT rule (all names to the tunnel's resolvers), a registry key.
    NrptRule {
        /// The tunnel interface's name.
        ifname: String,
        /// The rule's key under `HKEY_LOCAL_MACHINE`.
        key: String,
    },
    /// systemd-resolved: DNS servers, domains and default route set on one link.
    ResolvedLink {
        /// The tunnel interface's name (checked before reverting: the index may be reused).
        ifname: String,
        /// Its interface index when the change was made.
        ifindex: u32,
    },
    /// resolvconf: a record added with `resolvconf -a <record>`.
    ResolvconfRecord {
        /// The tunnel interface's name.
        ifname: String,
        /// The record name given to resolvconf (the interface name, with the prefix from
        /// `/etc/resolvconf/interface-order` such as `tun.`).
        record: String,
    },
    /// file: the resolv.conf at `path` replaced by Warren's.
    ResolvConfFile {
        /// The tunnel interface's name (it is in the marker header).
        ifname: String,
        /// The file written: `/etc/resolv.conf`, or the file it links to when that file is a
        /// mount point (as under `ip netns exec` or in a container), which is then written in
        /// place.
        path: PathBuf,
        /// What was there before.
        original: OriginalResolvConf,
    },
}

/// What a resolv.conf was before the `file` method replaced it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OriginalResolvConf {
    /// A regular file, saved byte for byte.
    File {
        /// The copy (mode 0600, under `$WARREN_STATE_DIR/dns/`).
        backup: PathBuf,
        /// Its permission bits, restored with it.
        mode: u32,
        /// Its owner.
        uid: u32,
        /// Its group.
        gid: u32,
    },
    /// A symbolic link (e.g. to a network manager's file), recreated as it was.
    Symlink {
        /// The link's target, exactly as `readlink` returned it.
        target: PathBuf,
    },
    /// There was no file.
    Missing,
}

/// Decides the method: `WARREN_DNS_METHOD` when set, else what the system runs (see the module
/// documentation). Logs the choice.
pub async fn detect_method() -> Result<DnsMethod, DnsPlanError> {
    let forced = method_override(std::env::var_os(METHOD_ENV).as_deref())?;
    if let Some(method) = forced {
        tracing::info!("DNS method {method} ({METHOD_ENV})");
        return Ok(method);
    }
    let method = <imp::Ops as DnsOps>::detect().await?;
    tracing::info!("DNS method {method} (detected)");
    Ok(method)
}

/// The method `WARREN_DNS_METHOD` forces, if any; unset or empty means "detect".
fn method_override(value: Option<&std::ffi::OsStr>) -> Result<Option<DnsMethod>, DnsPlanError> {
    match value {
        None => Ok(None),
        Some(value) if value.is_empty() => Ok(None),
        Some(value) => value
            .to_string_lossy()
            .parse()
            .map(Some)
            .map_err(DnsPlanError::BadOverride),
    }
}

/// Preflight: can `plan` be applied on this system? Changes nothing.
pub async fn check(plan: &DnsPlan) -> Result<(), DnsPlanError> {
    <imp::Ops as DnsOps>::check(plan).await
}

/// Applies `plan`, calling `record` with each change before making it. Stops at the first failure
/// without undoing anything: the caller undoes what `record` received, newest first.
pub async fn apply(
    plan: &DnsPlan,
    record: &mut impl FnMut(DnsChange) -> io::Result<()>,
) -> anyhow::Result<()> {
    <imp::Ops as DnsOps>::apply(plan, record).await?;
    tracing::info!(
        "{}: DNS set with {}: {}{}",
        plan.ifname,
        plan.method,
        plan.servers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        if plan.search.is_empty() {
            String::new()
        } else {
            format!(", search {}", plan.search.join(" "))
        }
    );
    Ok(())
}

/// Reverts one journaled change. Idempotent: a change that was recorded but never made, or whose
/// effect is already gone, undoes as success.
pub async fn undo(change: &DnsChange) -> anyhow::Result<()> {
    <imp::Ops as DnsOps>::undo(change).await
}

/// Keeps the tunnel's DNS in place while the tunnel is up, where the method needs it: under the
/// `file` method (Linux) a rewrite of the file by another program is answered by taking its
/// content as the new original (journaled through `journal`, which must be the list `applied`
/// went to) and writing the tunnel's file again, with limits (see `file_watch.rs`). `applied` are
/// the changes [`apply`] recorded. Runs until the caller drops it; returns at once where there
/// is nothing to keep (the other methods, other OSes), and when it gives up: then with why the
/// tunnel's DNS is no longer in place (`None`: it still is, only no longer watched).
pub async fn guard(
    plan: &DnsPlan,
    applied: &[DnsChange],
    journal: &mut impl super::Recorder<DnsChange>,
) -> Option<String> {
    <imp::Ops as DnsOps>::guard(plan, applied, journal).await
}

/// Calls `record`, turning its failure into "failed to journal ...".
fn journal(
    record: &mut impl FnMut(DnsChange) -> io::Result<()>,
    change: DnsChange,
) -> anyhow::Result<()> {
    let what = match &change {
        DnsChange::ResolvedLink { ifname, .. } => {
            format!("the systemd-resolved settings of {ifname}")
        }
        DnsChange::ResolvconfRecord { record, .. } => format!("resolvconf record {record}"),
        DnsChange::ResolvConfFile { path, .. } => format!("the rewrite of {}", path.display()),
        DnsChange::DynamicStoreKey { key, .. } => format!("dynamic store key {key}"),
        DnsChange::WindowsInterface { ifname, .. } => format!("the DNS settings of {ifname}"),
        DnsChange::NrptRule { key, .. } => format!("NRPT rule HKLM\\{key}"),
    };
    record(change).map_err(|err| anyhow::anyhow!("failed to journal {what}: {err}"))
}

/// The steps each OS module implements. Private: the facade above is the only caller.
trait DnsOps {
    /// The method this system uses when `WARREN_DNS_METHOD` is not set.
    async fn detect() -> Result<DnsMethod, DnsPlanError>;
    /// Whether `plan` can be applied here; changes nothing.
    async fn check(plan: &DnsPlan) -> Result<(), DnsPlanError>;
    /// Applies `plan`, recording each change (through [`journal`]) before making it.
    async fn apply(
        plan: &DnsPlan,
        record: &mut impl FnMut(DnsChange) -> io::Result<()>,
    ) -> anyhow::Result<()>;
    /// Reverts one change; idempotent.
    async fn undo(change: &DnsChange) -> anyhow::Result<()>;
    /// Keeps the applied DNS in place while the tunnel is up (see [`guard`]). Nothing to do for
    /// methods whose settings nobody else rewrites.
    async fn guard(
        _plan: &DnsPlan,
        _applied: &[DnsChange],
        _journal: &mut impl super::Recorder<DnsChange>,
    ) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn methods_parse_and_print_by_name() {
        for method in DnsMethod::ALL {
            assert_eq!(method.to_string().parse::<DnsMethod>().unwrap(), method);
        }
        assert_eq!(
            "Resolved".parse::<DnsMethod>().unwrap(),
            DnsMethod::Resolved
        );
        assert_eq!(DnsMethod::Resolvconf.to_string(), "resolvconf");
        assert_eq!(
            "nm".parse::<DnsMethod>().unwrap_err().to_string(),
            "unknown DNS method 'nm': use resolved, resolvconf or file"
        );
    }

    #[test]
    fn the_override_forces_a_method_and_rejects_garbage() {
        assert_eq!(method_override(None).unwrap(), None);
        assert_eq!(method_override(Some(OsStr::new(""))).unwrap(), None);
        assert_eq!(
            method_override(Some(OsStr::new("file"))).unwrap(),
            Some(DnsMethod::File)
        );
        assert_eq!(
            method_override(Some(OsStr::new("resolved"))).unwrap(),
            Some(DnsMethod::Resolved)
        );
        assert_eq!(
            method_override(Some(OsStr::new("dnsmasq")))
                .unwrap_err()
                .to_string(),
            "WARREN_DNS_METHOD: unknown DNS method 'dnsmasq': use resolved, resolvconf or file"
        );
    }

    #[test]
    fn changes_round_trip_through_json() {
        let changes = [
            DnsChange::ResolvedLink {
                ifname: "wg0".into(),
                ifindex: 7,
            },
            DnsChange::ResolvconfRecord {
                ifname: "wg0".into(),
                record: "tun.wg0".into(),
            },
            DnsChange::ResolvConfFile {
                ifname: "wg0".into(),
                path: "/etc/resolv.conf".into(),
                original: OriginalResolvConf::File {
                    backup: "/var/lib/warren/dns/wg0.resolv.conf".into(),
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
            },
            DnsChange::ResolvConfFile {
                ifname: "wg0".into(),
                path: "/etc/resolv.conf".into(),
                original: OriginalResolvConf::Symlink {
                    target: "../run/systemd/resolve/stub-resolv.conf".into(),
                },
            },
            DnsChange::ResolvConfFile {
                ifname: "wg0".into(),
                path: "/etc/resolv.conf".into(),
                original: OriginalResolvConf::Missing,
            },
        ];
        for change in changes {
            let json = serde_json::to_string(&change).unwrap();
            assert_eq!(serde_json::from_str::<DnsChange>(&json).unwrap(), change);
        }
    }

    #[test]
    fn futures_are_send() {
        fn assert_send<T: Send>(_: T) {}
        let plan = DnsPlan {
            ifname: "wg0".into(),
            method: DnsMethod::File,
            servers: vec!["198.18.0.53".parse().unwrap()],
            search: vec![],
            route_all: false,
            resolv_conf: "/nonexistent/resolv.conf".into(),
            backup_dir: "/nonexistent/dns".into(),
            warnings: vec![],
        };
        let mut record = |_: DnsChange| Ok(());
        assert_send(detect_method());
        assert_send(check(&plan));
        assert_send(apply(&plan, &mut record));
        assert_send(undo(&DnsChange::ResolvconfRecord {
            ifname: "wg0".into(),
            record: "wg0".into(),
        }));
    }

    #[test]
    fn a_failed_journal_write_names_the_change() {
        let mut record = |_: DnsChange| Err(io::Error::other("disk full"));
        let err = journal(
            &mut record,
            DnsChange::ResolvconfRecord {
                ifname: "wg0".into(),
                record: "tun.wg0".into(),
            },
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to journal resolvconf record tun.wg0: disk full"
        );
    }
}
