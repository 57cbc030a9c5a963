//! The `resolved` method: per-link DNS in systemd-resolved, over D-Bus (`org.freedesktop.resolve1`
//! on the system bus), the way systemd-networkd and NetworkManager configure it.
//!
//! Apply, on the tunnel's link (looked up by name, its index journaled with the name):
//! - `SetLinkDNS(ifindex, [(family, address bytes)])`: the tunnel's resolvers;
//! - `SetLinkDomains(ifindex, [(domain, routing_only)])`: the search domains (not routing-only),
//!   plus, for a full tunnel, the routing-only root domain `.` (`~.` in resolvectl's notation, which
//!   strips the `~` and sets `routing_only`), so every query goes to this link;
//! - `SetLinkDefaultRoute(ifindex, true)` for a full tunnel.
//!
//! In a split tunnel without search domains the link keeps resolved's default: it is used for
//! names no other link claims, alongside the other default-route links.
//!
//! Undo is `RevertLink(ifindex)`. resolved forgets a link's settings when the link disappears (the
//! TUN closes with the helper), so a link that is gone — or whose index now belongs to another
//! interface — has nothing to revert, and resolved's `NoSuchLink` answer counts as done.

use super::{journal, DnsChange, DnsMethod, DnsPlan, DnsPlanError};
use anyhow::{anyhow, Context as _};
use std::ffi::{CStr, CString};
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// resolved's well-known name on the system bus.
const BUS_NAME: &str = "org.freedesktop.resolve1";
/// Its manager object.
const OBJECT: &str = "/org/freedesktop/resolve1";
/// The manager interface.
const MANAGER: &str = "org.freedesktop.resolve1.Manager";
/// The error resolved answers for an interface index it does not know.
const NO_SUCH_LINK: &str = "org.freedesktop.resolve1.NoSuchLink";
// resolved's runtime directory: it exists while resolved runs (or ran since boot).
pub(super) use crate::sys::paths::RESOLVED_RUN_DIR as RUN_DIR;

/// How long connecting to the bus, or one call, may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// `AF_INET` and `AF_INET6` as resolved expects them (Linux values).
const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;

/// The arguments of the calls that configure a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LinkSettings {
    /// `SetLinkDNS`'s `a(iay)`.
    pub dns: Vec<(i32, Vec<u8>)>,
    /// `SetLinkDomains`'s `a(sb)`; not called when empty.
    pub domains: Vec<(String, bool)>,
    /// Whether to call `SetLinkDefaultRoute(true)`.
    pub default_route: bool,
}

/// What resolved should be told for `plan`.
pub(super) fn link_settings(plan: &DnsPlan) -> LinkSettings {
    let dns = plan
        .servers
        .iter()
        .map(|server| match server {
            IpAddr::V4(v4) => (AF_INET, v4.octets().to_vec()),
            IpAddr::V6(v6) => (AF_INET6, v6.octets().to_vec()),
        })
        .collect();
    let mut domains: Vec<(String, bool)> = plan
        .search
        .iter()
        .map(|domain| (domain.clone(), false))
        .collect();
    if plan.route_all {
        domains.push((".".to_owned(), true));
    }
    LinkSettings {
        dns,
        domains,
        default_route: plan.route_all,
    }
}

/// Whether systemd-resolved runs and answers; the error says why not.
pub(super) async fn probe() -> Result<(), String> {
    if !Path::new(RUN_DIR).is_dir() {
        return Err(format!(
            "systemd-resolved is not running ({RUN_DIR} does not exist)"
        ));
    }
    let conn = connect().await.map_err(|err| format!("{err:#}"))?;
    probe_on(&conn).await
}

async fn probe_on(conn: &zbus::Connection) -> Result<(), String> {
    // NameHasOwner, not a call to resolved itself: that could start it by D-Bus activation.
    let has_owner = timed(conn.call_method(
        Some("org.freedesktop.DBus"),
        "/org/freedesktop/DBus",
        Some("org.freedesktop.DBus"),
        "NameHasOwner",
        &BUS_NAME,
    ))
    .await
    .and_then(|reply| {
        reply
            .body()
            .deserialize::<bool>()
            .map_err(|err| anyhow!(err))
    })
    .map_err(|err| format!("cannot ask the system bus whether systemd-resolved runs: {err:#}"))?;
    if !has_owner {
        return Err(format!(
            "systemd-resolved is not running (nothing owns {BUS_NAME} on the system bus)"
        ));
    }
    timed(conn.call_method(
        Some(BUS_NAME),
        OBJECT,
        Some("org.freedesktop.DBus.Peer"),
        "Ping",
        &(),
    ))
    .await
    .map(drop)
    .map_err(|err| format!("systemd-resolved does not answer on the system bus: {err:#}"))
}

/// Preflight: resolved runs and answers.
pub(super) async fn check() -> Result<(), DnsPlanError> {
    probe()
        .await
        .map_err(|reason| DnsPlanError::MethodUnavailable {
            method: DnsMethod::Resolved,
            reason,
        })
}

/// Configures the tunnel's link.
pub(super) async fn apply(
    plan: &DnsPlan,
    record: &mut impl FnMut(DnsChange) -> io::Result<()>,
) -> anyhow::Result<()> {
    let ifindex = ifindex(&plan.ifname)
        .map_err(|err| anyhow!("failed to find interface {}: {err}", plan.ifname))?;
    let conn = connect().await?;
    apply_on(&conn, plan, ifindex, record).await
}

async fn apply_on(
    conn: &zbus::Connection,
    plan: &DnsPlan,
    ifindex: u32,
    record: &mut impl FnMut(DnsChange) -> io::Result<()>,
) -> anyhow::Result<()> {
    journal(
        record,
        DnsChange::ResolvedLink {
            ifname: plan.ifname.clone(),
            ifindex,
        },
    )?;
    let ifname = &plan.ifname;
    let link = link_arg(ifindex)?;
    let settings = link_settings(plan);
    call(conn, "SetLinkDNS", &(link, settings.dns))
        .await
        .with_context(|| {
            format!("failed to set the DNS servers of {ifname} in systemd-resolved")
        })?;
    if !settings.domains.is_empty() {
        call(conn, "SetLinkDomains", &(link, settings.domains))
            .await
            .with_context(|| {
                format!("failed to set the DNS domains of {ifname} in systemd-resolved")
            })?;
    }
    if settings.default_route {
        call(conn, "SetLinkDefaultRoute", &(link, true))
            .await
            .with_context(|| {
                format!("failed to make {ifname} the default DNS route in systemd-resolved")
            })?;
    }
    Ok(())
}

/// Reverts the link's settings, if the link is still the tunnel's.
pub(super) async fn undo(ifname: &str, ifindex: u32) -> anyhow::Result<()> {
    match ifname_of(ifindex) {
        Some(name) if name == ifname => {}
        Some(other) => {
            tracing::debug!(
                "{ifname} is gone (index {ifindex} is now {other}): nothing to revert in \
                 systemd-resolved"
            );
            return Ok(());
        }
        None => {
            tracing::debug!("{ifname} is gone: nothing to revert in systemd-resolved");
            return Ok(());
        }
    }
    let conn = connect().await?;
    revert_on(&conn, ifname, ifindex).await
}

async fn revert_on(conn: &zbus::Connection, ifname: &str, ifindex: u32) -> anyhow::Result<()> {
    match call(conn, "RevertLink", &(link_arg(ifindex)?,)).await {
        Ok(()) => Ok(()),
        Err(err) if is_no_such_link(&err) => {
            tracing::debug!("systemd-resolved no longer knows {ifname}: nothing to revert");
            Ok(())
        }
        Err(err) => Err(err).with_context(|| {
            format!("failed to revert the DNS settings of {ifname} in systemd-resolved")
        }),
    }
}

fn is_no_such_link(err: &anyhow::Error) -> bool {
    matches!(
        err.downcast_ref::<zbus::Error>(),
        Some(zbus::Error::MethodError(name, _, _)) if name.as_str() == NO_SUCH_LINK
    )
}

/// The interface index as D-Bus's `i`.
fn link_arg(ifindex: u32) -> anyhow::Result<i32> {
    i32::try_from(ifindex).map_err(|_| anyhow!("interface index {ifindex} is out of range"))
}

async fn connect() -> anyhow::Result<zbus::Connection> {
    tokio::time::timeout(CALL_TIMEOUT, zbus::Connection::system())
        .await
        .map_err(|_| {
            anyhow!(
                "failed to connect to the system bus: no answer within {} s",
                CALL_TIMEOUT.as_secs()
            )
        })?
        .context("failed to connect to the system bus")
}

/// Calls a `org.freedesktop.resolve1.Manager` method.
async fn call<B>(conn: &zbus::Connection, method: &str, body: &B) -> anyhow::Result<()>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    timed(conn.call_method(Some(BUS_NAME), OBJECT, Some(MANAGER), method, body))
        .await
        .map(drop)
        .with_context(|| format!("{method} failed"))
}

/// A call with [`CALL_TIMEOUT`]; zbus errors stay downcastable.
async fn timed(
    call: impl std::future::Future<Output = zbus::Result<zbus::Message>>,
) -> anyhow::Result<zbus::Message> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(anyhow::Error::from),
        Err(_) => Err(anyhow!("no answer within {} s", CALL_TIMEOUT.as_secs())),
    }
}

/// `if_nametoindex(3)`.
pub(super) fn ifindex(ifname: &str) -> io::Result<u32> {
    let name = CString::new(ifname)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name contains NUL"))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// `if_indextoname(3)`; `None` when no interface has that index.
fn ifname_of(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname may write, including the NUL.
    let name = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into `buf`.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    //! The D-Bus calls against a fake resolved on a private peer-to-peer connection (the real one
    //! is host-wide and must not be touched by tests).

    use super::*;
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    fn plan(route_all: bool, search: &[&str]) -> DnsPlan {
        DnsPlan {
            ifname: "lo".into(),
            method: DnsMethod::Resolved,
            servers: vec![
                "198.18.200.53".parse().unwrap(),
                "fd00::53".parse().unwrap(),
            ],
            search: search.iter().map(|s| s.to_string()).collect(),
            route_all,
            resolv_conf: PathBuf::from("/nonexistent/resolv.conf"),
            backup_dir: PathBuf::from("/nonexistent/dns"),
            warnings: vec![],
        }
    }

    #[test]
    fn a_full_tunnel_routes_the_root_domain_to_the_link() {
        let settings = link_settings(&plan(true, &["corp.example"]));
        assert_eq!(
            settings.dns,
            [
                (AF_INET, vec![198, 18, 200, 53]),
                (
                    AF_INET6,
                    "fd00::53"
                        .parse::<std::net::Ipv6Addr>()
                        .unwrap()
                        .octets()
                        .to_vec()
                ),
            ]
        );
        assert_eq!(
            settings.domains,
            [("corp.example".to_owned(), false), (".".to_owned(), true)]
        );
        assert!(settings.default_route);
    }

    #[test]
    fn a_split_tunnel_sets_only_its_search_domains() {
        let settings = link_settings(&plan(false, &["corp.example", "lab.example"]));
        assert_eq!(
            settings.domains,
            [
                ("corp.example".to_owned(), false),
                ("lab.example".to_owned(), false)
            ]
        );
        assert!(!settings.default_route);
        assert!(link_settings(&plan(false, &[])).domains.is_empty());
    }

    #[test]
    fn interfaces_are_found_by_name_and_index() {
        let lo = ifindex("lo").unwrap();
        assert_eq!(ifname_of(lo).as_deref(), Some("lo"));
        assert!(ifindex("warren-nonexistent0").is_err());
    }

    #[derive(zbus::DBusError, Debug)]
    #[zbus(prefix = "org.freedesktop.resolve1")]
    enum FakeError {
        #[zbus(error)]
        ZBus(zbus::Error),
        NoSuchLink(String),
    }

    /// Records every call as text; knows only the link `known`.
    struct FakeResolved {
        known: i32,
        calls: Arc<Mutex<Vec<String>>>,
    }

    impl FakeResolved {
        fn log(&self, ifindex: i32, call: String) -> Result<(), FakeError> {
            if ifindex != self.known {
                return Err(FakeError::NoSuchLink(format!("Link {ifindex} not known")));
            }
            self.calls.lock().unwrap().push(call);
            Ok(())
        }
    }

    #[zbus::interface(name = "org.freedesktop.resolve1.Manager")]
    impl FakeResolved {
        #[zbus(name = "SetLinkDNS")]
        fn set_link_dns(
            &self,
            ifindex: i32,
            addresses: Vec<(i32, Vec<u8>)>,
        ) -> Result<(), FakeError> {
            self.log(ifindex, format!("SetLinkDNS {ifindex} {addresses:?}"))
        }
        #[zbus(name = "SetLinkDomains")]
        fn set_link_domains(
            &self,
            ifindex: i32,
            domains: Vec<(String, bool)>,
        ) -> Result<(), FakeError> {
            self.log(ifindex, format!("SetLinkDomains {ifindex} {domains:?}"))
        }
        #[zbus(name = "SetLinkDefaultRoute")]
        fn set_link_default_route(&self, ifindex: i32, enable: bool) -> Result<(), FakeError> {
            self.log(ifindex, format!("SetLinkDefaultRoute {ifindex} {enable}"))
        }
        #[zbus(name = "RevertLink")]
        fn revert_link(&self, ifindex: i32) -> Result<(), FakeError> {
            self.log(ifindex, format!("RevertLink {ifindex}"))
        }
    }

    /// A client connection to a fake resolved that knows link `known`, and its call log.
    async fn fake_resolved(
        known: i32,
    ) -> (zbus::Connection, zbus::Connection, Arc<Mutex<Vec<String>>>) {
        let (server_end, client_end) = tokio::net::UnixStream::pair().unwrap();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let fake = FakeResolved {
            known,
            calls: calls.clone(),
        };
        let server = zbus::connection::Builder::unix_stream(server_end)
            .server(zbus::Guid::generate())
            .unwrap()
            .p2p()
            .serve_at(OBJECT, fake)
            .unwrap()
            .build();
        let client = zbus::connection::Builder::unix_stream(client_end)
            .p2p()
            .build();
        let (server, client) = tokio::try_join!(server, client).unwrap();
        (server, client, calls)
    }

    #[tokio::test]
    async fn apply_journals_first_then_configures_the_link_and_undo_reverts_it() {
        let lo = ifindex("lo").unwrap();
        let (_server, client, calls) = fake_resolved(lo as i32).await;
        let plan = plan(true, &["corp.example"]);
        let mut recorded = Vec::new();
        let mut record = |change: DnsChange| {
            assert!(
                calls.lock().unwrap().is_empty(),
                "a call was made before journaling"
            );
            recorded.push(change);
            Ok(())
        };
        apply_on(&client, &plan, lo, &mut record).await.unwrap();
        assert_eq!(
            recorded,
            [DnsChange::ResolvedLink {
                ifname: "lo".into(),
                ifindex: lo
            }]
        );
        assert_eq!(
            *calls.lock().unwrap(),
            [
                format!(
                    "SetLinkDNS {lo} [(2, [198, 18, 200, 53]), (10, [253, 0, 0, 0, 0, 0, 0, 0, 0, \
                     0, 0, 0, 0, 0, 0, 83])]"
                ),
                format!("SetLinkDomains {lo} [(\"corp.example\", false), (\".\", true)]"),
                format!("SetLinkDefaultRoute {lo} true"),
            ]
        );
        revert_on(&client, "lo", lo).await.unwrap();
        assert_eq!(
            calls.lock().unwrap().last().unwrap(),
            &format!("RevertLink {lo}")
        );
    }

    #[tokio::test]
    async fn reverting_a_link_resolved_does_not_know_succeeds() {
        let (_server, client, calls) = fake_resolved(1).await;
        revert_on(&client, "wg9", 4242).await.unwrap();
        assert!(calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_refused_call_is_named() {
        let (_server, client, _calls) = fake_resolved(1).await;
        let mut record = |_: DnsChange| Ok(());
        let err = apply_on(&client, &plan(false, &[]), 4242, &mut record)
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").starts_with(
                "failed to set the DNS servers of lo in systemd-resolved: SetLinkDNS failed: "
            ),
            "{err:#}"
        );
    }

    #[tokio::test]
    async fn undo_of_a_gone_interface_needs_no_bus() {
        // No interface has this index, so no connection is even attempted.
        undo("wg9", 999_999).await.unwrap();
        // An index that now belongs to another interface is not reverted either.
        undo("wg9", ifindex("lo").unwrap()).await.unwrap();
    }
}
