//! One tunnel's whole life on this host, from a parsed configuration to nothing left behind: the
//! one implementation that both `warren-helper up --foreground` and the daemon run.
//!
//! Two halves, so that "bad input changes nothing":
//! - [`Prepared::new`] checks everything that depends on the configuration alone, *before* the
//!   first change to the system: the interface name, host names resolved (now; the daemon waits
//!   for the network with [`Prepared::waiting_for_network`]), the whole network plan and what it
//!   needs of the system, the kill switch's plan and preflight, the DNS plan, whether the TUN
//!   driver is there (Windows: `wintun.dll`). An error here changed nothing.
//! - [`run`] then changes the system, in this order:
//!   1. recovery: a journal that a crashed run left for this interface is undone (and what it
//!      restored is logged) — refused if a running helper still holds it;
//!   2. the journal for this run is created (see [`crate::journal`]);
//!   3. PreUp hooks (only when asked), the TUN, the facts the plan needs (the path MTU to the
//!      first endpoint, the routing tables in use, the default gateways — read before any route
//!      of ours exists), the plan (its warnings logged), the UDP sockets (with the plan's fwmark,
//!      which a Linux full tunnel's policy routing relies on, and pinned off the tunnel, which a
//!      Windows full tunnel relies on), the kill switch, addresses/MTU/endpoint host
//!      routes/routes/rules/sysctls, DNS (each journaled before it is made), the UAPI socket,
//!      PostUp hooks; then the caller's `on_up` learns the interface and
//!      gets a [`Control`] channel to the driver (statistics for status and liveness);
//!   4. the driver runs until `shutdown` completes (or the TUN fails), and next to it the
//!      [`Watcher`] (see [`endpoints`]): host names resolved again while their peers do
//!      not answer, and the kill switch kept on the endpoints the driver uses; the DNS guard
//!      ([`dns::guard`]): under the `file` method, a resolv.conf rewritten by another program is
//!      taken as the new original (journaled) and the tunnel's written again; and the
//!      [`network`] follower: on a change of the network under the tunnel (the network
//!      monitor), handshakes at once, names resolved again, the MTU and endpoint routes
//!      re-checked; and on logind's resume signal (Linux) fresh handshakes, as for a clock jump;
//!   5. teardown, the mirror image: PreDown hooks, the UAPI socket, the journal undone newest
//!      first (while the TUN still exists), the TUN, PostDown hooks.
//!
//! Whatever part of 3 had happened when an error struck is undone from the journal the same way,
//! and the journal file is removed once everything is undone. If the process dies instead
//! (`kill -9`), the journal stays, and the next run for the same interface, the daemon's start,
//! or `warren-helper recover`, undoes it.
//!
//! Errors are [`SessionError`]s, sorted by what the user can do about them (fix the file, wait
//! for the network, install something, report a bug); [`SessionError::kind`] is the one place
//! that turns them into the protocol's [`ErrorKind`], from which the daemon's answers, the CLI's
//! exit codes and the GUI's messages follow.
//!
//! What it must not do: decide *whether* a tunnel may come up (the daemon checks conflicts with
//! its other tunnels), or log key material (the configuration is never logged; the private key
//! lives in `TunnelConfig`'s `PrivateKey`, which is zeroized on drop).

pub mod endpoints;
pub mod network;

use crate::dataplane::udp::Sockets;
use crate::dataplane::{Control, Driver, Transport as _};
use crate::journal::{self, Journal, Recovery};
use crate::platform::dns::{self, DnsPlan, DnsPlanError};
use crate::platform::firewall::{self, KillSwitchError, KillSwitchInput, KillSwitchMode};
use crate::platform::{self, PlanInputs, SharedRecorder};
use crate::uapi;
use anyhow::{bail, Context};
use endpoints::{HostPeer, KillSwitchBase, Watcher};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot};
use warren_proto::config::{Endpoint, TunnelConfig};
use warren_proto::ipc::ErrorKind;
use warren_proto::key::PublicKey;
use warren_tunnel::{Device, PeerSettings};

/// Longest Linux interface name (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

/// Control requests queued for the driver before the sender waits.
const CONTROL_QUEUE: usize = 8;

/// A boxed error from one of the platform planners, kept as the source of a [`SessionError`].
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a tunnel did not come up, or did not go down cleanly. Each variant says what kind of
/// failure it is; the message (with its sources, `{:#}`) says exactly what and where.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The configuration cannot work as written (a routing loop, a DNS server outside a full
    /// tunnel, an interface name, ...). Nothing changed.
    #[error("{origin}: cannot bring up {ifname}")]
    Config {
        /// Where the configuration came from: a file path, or `user tunnel 'home'`.
        origin: String,
        /// The interface.
        ifname: String,
        /// What is wrong.
        #[source]
        cause: Cause,
    },
    /// An endpoint's host name did not resolve (no network yet, or a wrong name). Nothing changed.
    #[error("{origin}: failed to resolve the endpoint {host}:{port} of peer {peer}")]
    Resolve {
        /// Where the configuration came from.
        origin: String,
        /// The host name.
        host: String,
        /// The port.
        port: u16,
        /// The peer whose endpoint it is.
        peer: PublicKey,
        /// The resolver's answer.
        #[source]
        cause: io::Error,
    },
    /// This system lacks something the tunnel needs (`nft`, a DNS service, the Windows Filtering
    /// Platform, ...). Nothing changed.
    #[error("{origin}: cannot bring up {ifname}")]
    MissingFeature {
        /// Where the configuration came from.
        origin: String,
        /// The interface.
        ifname: String,
        /// What is missing, and how to get it.
        #[source]
        cause: Cause,
    },
    /// This OS has no implementation of a step yet. Nothing changed.
    #[error("{origin}: cannot bring up {ifname}")]
    Unsupported {
        /// Where the configuration came from.
        origin: String,
        /// The interface.
        ifname: String,
        /// What is not supported.
        #[source]
        cause: platform::Unsupported,
    },
    /// Changing the system failed, or undoing it did (the message says which; what could not be
    /// undone stays in the journal for the next start).
    #[error(transparent)]
    System(#[from] anyhow::Error),
}

impl SessionError {
    /// The protocol's kind of this failure: the one mapping from session failures to what
    /// clients see ([`ErrorKind`]) and, through it, to the CLI's exit codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SessionError::Config { cause, .. } => ErrorKind::InvalidConfig {
                file: None,
                line: None,
                message: cause.to_string(),
            },
            SessionError::Resolve { .. } => ErrorKind::Network,
            SessionError::MissingFeature { .. } => ErrorKind::MissingFeature,
            SessionError::Unsupported { .. } => ErrorKind::Unsupported,
            SessionError::System(_) => ErrorKind::Internal,
        }
    }

    /// The error and its causes on one line, `: `-separated (a cause whose text the line already
    /// ends with is not repeated): what clients are told.
    pub fn message(&self) -> String {
        crate::logging::one_line(self)
    }

    fn config(spec: &Spec, cause: impl Into<Cause>) -> Self {
        SessionError::Config {
            origin: spec.source.clone(),
            ifname: spec.ifname.clone(),
            cause: cause.into(),
        }
    }

    fn missing(spec: &Spec, cause: impl Into<Cause>) -> Self {
        SessionError::MissingFeature {
            origin: spec.source.clone(),
            ifname: spec.ifname.clone(),
            cause: cause.into(),
        }
    }

    fn unsupported(spec: &Spec, cause: platform::Unsupported) -> Self {
        SessionError::Unsupported {
            origin: spec.source.clone(),
            ifname: spec.ifname.clone(),
            cause,
        }
    }

    /// A kill-switch planning or preflight failure, by its cause.
    fn kill_switch(spec: &Spec, error: KillSwitchError) -> Self {
        match error {
            KillSwitchError::Unsupported(unsupported) => Self::unsupported(spec, unsupported),
            KillSwitchError::ToolMissing { .. } | KillSwitchError::ToolUnusable { .. } => {
                Self::missing(spec, error)
            }
            KillSwitchError::InterfaceName { .. }
            | KillSwitchError::NoEndpoints { .. }
            | KillSwitchError::EndpointPort { .. }
            | KillSwitchError::UnidentifiableSocket { .. } => Self::config(spec, error),
        }
    }

    /// A DNS planning or preflight failure, by its cause.
    fn dns(spec: &Spec, error: DnsPlanError) -> Self {
        match error {
            DnsPlanError::Unsupported(unsupported) => Self::unsupported(spec, unsupported),
            DnsPlanError::MethodUnavailable { .. } => Self::missing(spec, error),
            DnsPlanError::BadOverride(_)
            | DnsPlanError::SearchWithoutServers { .. }
            | DnsPlanError::ServerOutsideFullTunnel { .. } => Self::config(spec, error),
            // The system's state is in the way (an earlier run's resolv.conf, an unreadable file).
            DnsPlanError::Leftover { .. } | DnsPlanError::FileAccess { .. } => {
                SessionError::System(
                    anyhow::Error::new(error)
                        .context(format!("{}: cannot bring up {}", spec.source, spec.ifname)),
                )
            }
        }
    }
}

/// What to bring up, and how.
pub struct Spec {
    /// The configuration (holds the private key; zeroized when dropped).
    pub config: TunnelConfig,
    /// The interface name (and the journal's name).
    pub ifname: String,
    /// Where the configuration came from, for messages: a file path, or `user tunnel 'home'`.
    pub source: String,
    /// Run the configuration's PreUp/PostUp/PreDown/PostDown commands (as root).
    pub run_hooks: bool,
    /// Where the journal lives.
    pub state_dir: PathBuf,
    /// When to install the kill switch.
    pub kill_switch: KillSwitchMode,
    /// Let the kill switch allow the local network.
    pub allow_lan: bool,
}

/// A [`Spec`] that passed every check that needs no change to the system.
pub struct Prepared {
    spec: Spec,
    peers: Vec<PeerSettings>,
    resolved_endpoints: Vec<(PublicKey, SocketAddr)>,
    dns_plan: Option<DnsPlan>,
    kill_switch: bool,
}

/// The running tunnel, handed to `on_up` once step 3 is done.
pub struct Running {
    /// The OS's name for the interface (`wg0`, or `utun7` on macOS).
    pub interface: String,
    /// Requests to the driver; closing it changes nothing.
    pub control: mpsc::Sender<Control>,
    /// The number of each network change whose handshakes started ([`network`]); until a
    /// handshake completes after it, the driver's snapshots say `reconnecting`.
    pub network_changes: mpsc::UnboundedReceiver<u64>,
    /// Why the tunnel's DNS is no longer in place, if the DNS guard gives up ([`dns::guard`]);
    /// never completes (the sender is dropped) when it does not.
    pub dns_lost: oneshot::Receiver<String>,
}

impl Prepared {
    /// Checks `spec` (see the module docs). Changes nothing on the system. A host name that does
    /// not resolve fails at once ([`SessionError::Resolve`]).
    pub async fn new(spec: Spec) -> Result<Prepared, SessionError> {
        check_interface_name(&spec.ifname).map_err(|e| SessionError::config(&spec, e))?;
        let peers = resolve_peers(&spec.config, &spec.source).await?;
        Self::with_peers(spec, peers).await
    }

    /// Like [`Prepared::new`], but a host name that does not resolve (no network yet, DNS not
    /// up) is retried with [`endpoints::backoff`] instead of failing: `on_wait` hears each
    /// failure's message ("waiting for network"), and `None` once the names resolve. Names that
    /// can never be valid were refused by the configuration parser already. Cancel it to give up
    /// (nothing has changed on the system while it waits).
    pub async fn waiting_for_network(
        spec: Spec,
        on_wait: impl Fn(Option<String>) + Send + Sync,
    ) -> Result<Prepared, SessionError> {
        check_interface_name(&spec.ifname).map_err(|e| SessionError::config(&spec, e))?;
        let report = |error: Option<&SessionError>| {
            if let Some(error) = error {
                tracing::warn!("{}; waiting for the network", error.message());
            }
            on_wait(error.map(SessionError::message));
        };
        let peers = endpoints::retry_resolving(
            || resolve_peers(&spec.config, &spec.source),
            |error| matches!(error, SessionError::Resolve { .. }),
            &report,
            tokio::time::sleep,
        )
        .await?;
        Self::with_peers(spec, peers).await
    }

    /// The checks after the names are resolved.
    async fn with_peers(spec: Spec, peers: Vec<PeerSettings>) -> Result<Prepared, SessionError> {
        let config = &spec.config;
        let ifname = spec.ifname.as_str();
        let resolved_endpoints = resolved_host_endpoints(config, &peers);
        let validation = PlanInputs {
            resolved_endpoints: resolved_endpoints.clone(),
            ..PlanInputs::default()
        };
        let network_plan = platform::plan(config, ifname, &validation)
            .map_err(|e| SessionError::config(&spec, e))?;
        platform::preflight(&network_plan).map_err(|e| SessionError::missing(&spec, e))?;
        let kill_switch = spec.kill_switch.enabled(config.is_full_tunnel());
        if kill_switch {
            // Validate with what the file says; the real plan needs the bound port and the mark.
            let endpoints: Vec<SocketAddr> = peers.iter().filter_map(|p| p.endpoint).collect();
            firewall::plan(kill_switch_input(
                config,
                ifname,
                &endpoints,
                None,
                Some(1),
                spec.allow_lan,
            ))
            .map_err(|e| SessionError::kill_switch(&spec, e))?;
            firewall::check().map_err(|e| SessionError::kill_switch(&spec, e))?;
        }
        let dns_plan = plan_dns(config, ifname, &spec.state_dir)
            .await
            .map_err(|e| SessionError::dns(&spec, e))?;
        // A TUN driver that is not installed (Windows: wintun.dll) is a missing feature, found
        // before anything changes — not a system failure half-way through `run`.
        crate::dataplane::tun::check(ifname).map_err(|e| SessionError::missing(&spec, e))?;
        if !config.interface.hooks.is_empty() && !spec.run_hooks {
            tracing::warn!(
                "{}: PreUp/PostUp/PreDown/PostDown commands are NOT run (they would run as root); \
                 pass --run-hooks to run them",
                spec.source
            );
        }
        Ok(Prepared {
            spec,
            peers,
            resolved_endpoints,
            dns_plan,
            kill_switch,
        })
    }
}

/// Steps 1 to 5 of the module docs. Returns when the tunnel is down again and everything it
/// changed is undone (or, if something could not be undone, with an error saying so; the journal
/// then keeps it for the next attempt). `on_up` is called once, when the tunnel is up.
pub async fn run(
    prepared: Prepared,
    shutdown: impl Future<Output = ()>,
    on_up: impl FnOnce(Running),
) -> Result<(), SessionError> {
    run_inner(prepared, shutdown, on_up)
        .await
        .map_err(SessionError::System)
}

async fn run_inner(
    prepared: Prepared,
    shutdown: impl Future<Output = ()>,
    on_up: impl FnOnce(Running),
) -> anyhow::Result<()> {
    let Prepared {
        spec,
        peers,
        resolved_endpoints,
        dns_plan,
        kill_switch,
    } = prepared;
    let ifname = spec.ifname.as_str();
    let state_dir = spec.state_dir.as_path();
    let cannot = || format!("{}: cannot bring up {ifname}", spec.source);

    // From here on the system changes: first, what a crashed run left behind.
    recover_leftover(state_dir, ifname).await?;
    // After recovery: a crashed run's own DNS marker would otherwise fail the check.
    if let Some(dns_plan) = &dns_plan {
        dns::check(dns_plan).await.with_context(cannot)?;
    }
    let mut journal = Journal::create(state_dir, ifname).with_context(cannot)?;
    let setup = Setup {
        config: &spec.config,
        ifname,
        peers,
        resolved_endpoints,
        run_hooks: spec.run_hooks,
        dns_plan: dns_plan.as_ref(),
        kill_switch,
        allow_lan: spec.allow_lan,
    };
    let result = run_journaled(&mut journal, setup, shutdown, on_up)
        .await
        .with_context(cannot);

    // Whatever the run did not undo itself (it stopped half-way through setting up).
    let outcome = journal.undo_all().await;
    for change in &outcome.undone {
        tracing::debug!("undid {change}");
    }
    match (journal.close(), result) {
        (Ok(()), result) => result,
        (Err(err), Ok(())) => Err(err.into()),
        (Err(err), Err(first)) => {
            tracing::warn!("{err}");
            Err(first)
        }
    }
}

/// Undoes the journal a crashed run left for `ifname`, logging what it restored. Fails when a
/// running helper holds it, when it belongs to another network namespace, when it cannot be read,
/// and when something in it cannot be undone: the tunnel does not come up over unknown state.
async fn recover_leftover(state_dir: &Path, ifname: &str) -> anyhow::Result<()> {
    for report in journal::recover(state_dir, Some(ifname)).await? {
        match report {
            Recovery::Restored { .. } => {
                tracing::warn!("{report}");
                for line in report.details() {
                    tracing::info!("{ifname}: {line}");
                }
            }
            Recovery::Incomplete { .. } => bail!(
                "a crashed warren-helper left changes that could not be undone: {report}: {}",
                report.details().join("; ")
            ),
            Recovery::LeftAlone(err) | Recovery::Failed(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// What [`run_journaled`] needs from the checks before it.
struct Setup<'a> {
    config: &'a TunnelConfig,
    ifname: &'a str,
    peers: Vec<PeerSettings>,
    resolved_endpoints: Vec<(PublicKey, SocketAddr)>,
    run_hooks: bool,
    dns_plan: Option<&'a DnsPlan>,
    kill_switch: bool,
    allow_lan: bool,
}

/// The DNS plan, when the configuration sets `DNS =`: the method detected (or forced with
/// `WARREN_DNS_METHOD`), with backups kept in the state directory.
async fn plan_dns(
    config: &TunnelConfig,
    ifname: &str,
    state_dir: &Path,
) -> Result<Option<DnsPlan>, DnsPlanError> {
    let interface = &config.interface;
    if interface.dns_servers.is_empty() && interface.dns_search.is_empty() {
        return Ok(None);
    }
    let method = dns::detect_method().await?;
    let plan = dns::plan(config, ifname, method)?;
    Ok(plan.map(|mut plan| {
        plan.backup_dir = state_dir.join("dns");
        for warning in &plan.warnings {
            tracing::warn!("{ifname}: DNS: {warning}");
        }
        plan
    }))
}

fn kill_switch_input<'a>(
    config: &'a TunnelConfig,
    ifname: &'a str,
    endpoints: &'a [SocketAddr],
    fwmark: Option<u32>,
    listen_port: Option<u16>,
    allow_lan: bool,
) -> KillSwitchInput<'a> {
    KillSwitchInput {
        ifname,
        endpoints,
        fwmark,
        listen_port,
        dns_servers: &config.interface.dns_servers,
        tunnel_addresses: &config.interface.addresses,
        allow_lan,
    }
}

/// Steps 3 to 5 of the module docs, each system change journaled in `journal`.
async fn run_journaled(
    journal: &mut Journal,
    setup: Setup<'_>,
    shutdown: impl Future<Output = ()>,
    on_up: impl FnOnce(Running),
) -> anyhow::Result<()> {
    let Setup {
        config,
        ifname,
        peers,
        resolved_endpoints,
        run_hooks,
        dns_plan,
        kill_switch,
        allow_lan,
    } = setup;
    let hooks = &config.interface.hooks;
    if run_hooks {
        run_hook_list("PreUp", &hooks.pre_up, ifname).await?;
    }
    let tun = crate::dataplane::tun::create(ifname)?;
    let tun_name = tun.name;
    let first_endpoint = peers.iter().find_map(|p| p.endpoint).map(|e| e.ip());
    let mut inputs = platform::read_inputs(first_endpoint).await?;
    inputs.resolved_endpoints = resolved_endpoints.clone();
    let plan = platform::plan(config, &tun_name, &inputs)?;
    for warning in &plan.warnings {
        tracing::warn!("{tun_name}: {warning}");
    }
    let mut sockets = Sockets::bind(config.interface.listen_port.unwrap_or(0), plan.fwmark)?;
    let full = |family| plan.full_tunnel_families.contains(&family);
    sockets.pin_off(
        &tun_name,
        [full(platform::Family::Ipv4), full(platform::Family::Ipv6)],
    )?;
    let mut kill_switch_base = None;
    if kill_switch {
        // First of the changes, so the journal removes it last: nothing leaks in between.
        let endpoints: Vec<SocketAddr> = peers.iter().filter_map(|p| p.endpoint).collect();
        let input = kill_switch_input(
            config,
            &tun_name,
            &endpoints,
            plan.fwmark,
            Some(sockets.port()),
            allow_lan,
        );
        let ks_plan = firewall::plan(input)?;
        firewall::apply(&ks_plan, &mut |c| journal.record(c)).await?;
        kill_switch_base = Some(KillSwitchBase {
            plan: ks_plan,
            ifname: tun_name.clone(),
            dns_servers: config.interface.dns_servers.clone(),
            tunnel_addresses: config.interface.addresses.clone(),
            allow_lan,
        });
    }
    let endpoints_at_start: Vec<IpAddr> = peers
        .iter()
        .filter_map(|p| p.endpoint)
        .map(|e| e.ip())
        .collect();
    let mut device = Device::new(config.interface.private_key.clone());
    for peer in peers {
        device.upsert_peer(peer);
    }
    platform::apply(&plan, journal).await?;
    let dns_plan = dns_plan.map(|plan| DnsPlan {
        ifname: tun_name.clone(),
        ..plan.clone()
    });
    let mut dns_applied = Vec::new();
    if let Some(dns_plan) = &dns_plan {
        dns::apply(dns_plan, &mut |c| {
            journal.record(c.clone())?;
            dns_applied.push(c);
            Ok(())
        })
        .await?;
    }
    let (tx, rx) = mpsc::channel(16);
    let uapi_socket = uapi::serve(&tun_name, tx)?;
    let port = sockets.port();
    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let mut driver = Driver::new(device, tun.device, sockets, rx).with_control(control_rx);
    let result = async {
        if run_hooks {
            run_hook_list("PostUp", &hooks.post_up, &tun_name).await?;
        }
        tracing::info!(
            "{tun_name} is up: {} address(es), {} route(s), MTU {}, {}, listening on UDP port \
             {port}",
            plan.addresses.len(),
            plan.routes.len(),
            plan.mtu,
            plan.routing_summary(),
        );
        // The watcher and the network follower end with this block, before the journal is
        // undone below: no kill switch update or re-plan can come after the undo.
        let hosts = host_peers(config);
        let (resolve_now, resolve_requests) = mpsc::channel(1);
        let dependents = network::Dependents {
            host_names: !hosts.is_empty(),
            plan_follows_network: network::plan_follows_network(config, &plan),
        };
        let mut watcher = Watcher::new(tun_name.clone(), control.clone(), hosts, kill_switch_base)
            .with_resolve_requests(resolve_requests);
        // A macOS full tunnel's endpoint host routes follow the endpoints in use, starting from
        // the ones it came up with.
        let mut endpoints = None;
        if platform::routes_follow_endpoints(&plan) {
            let (tx, rx) = tokio::sync::watch::channel(endpoints_at_start);
            watcher = watcher.with_endpoint_updates(tx);
            endpoints = Some(rx);
        }
        let (changes, network_changes) = mpsc::unbounded_channel();
        let sleep_control = control.clone();
        let follower = network::Follower {
            config,
            plan: plan.clone(),
            first_endpoint,
            resolved_endpoints,
            dependents,
            control: control.clone(),
            resolve_now,
            changes,
            endpoints,
        };
        let (dns_lost_tx, dns_lost) = oneshot::channel();
        on_up(Running {
            interface: tun_name.clone(),
            control,
            network_changes,
            dns_lost,
        });
        // The DNS guard and the network follower share the journal until this block ends,
        // before the undo below.
        let shared = std::sync::Mutex::new(&mut *journal);
        let mut follower_journal = SharedRecorder::new(&shared);
        let dns_guard = async {
            if let Some(dns_plan) = &dns_plan {
                let mut journal = SharedRecorder::new(&shared);
                if let Some(why) = dns::guard(dns_plan, &dns_applied, &mut journal).await {
                    let _ = dns_lost_tx.send(why);
                }
            }
            // Given up, or nothing to keep: the tunnel runs on regardless.
            std::future::pending::<()>().await;
        };
        tokio::select! {
            result = driver.run(shutdown) => result,
            () = watcher.run() => Err(anyhow::anyhow!("the endpoint watcher stopped")),
            () = dns_guard => Err(anyhow::anyhow!("the DNS guard stopped")),
            () = network::follow(follower, &mut follower_journal) => {
                Err(anyhow::anyhow!("the network follower stopped"))
            }
            () = network::follow_sleep(&tun_name, sleep_control) => {
                Err(anyhow::anyhow!("the sleep follower stopped"))
            }
        }
    }
    .await;

    tracing::info!("taking {tun_name} down");
    if run_hooks {
        if let Err(e) = run_hook_list("PreDown", &hooks.pre_down, &tun_name).await {
            tracing::warn!("{e:#}");
        }
    }
    drop(uapi_socket);
    // Newest first, while the TUN still exists; what fails stays journaled for the caller.
    let outcome = journal.undo_all().await;
    for change in &outcome.undone {
        tracing::debug!("undid {change}");
    }
    if !outcome.is_complete() {
        tracing::warn!(
            "{} change(s) could not be undone; they stay in {}",
            outcome.failed.len(),
            journal.path().display()
        );
    }
    drop(driver);
    if run_hooks {
        if let Err(e) = run_hook_list("PostDown", &hooks.post_down, &tun_name).await {
            tracing::warn!("{e:#}");
        }
    }
    result
}

/// `wg0.conf` → `wg0`, as wg-quick names interfaces.
pub fn interface_name_from_path(path: &Path) -> anyhow::Result<String> {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| n.strip_suffix(".conf").unwrap_or(n))
        .unwrap_or_default();
    if stem.is_empty() {
        bail!(
            "cannot derive an interface name from {}; pass --interface",
            path.display()
        );
    }
    Ok(stem.to_string())
}

/// Whether `name` is an interface name wg-quick accepts (1 to 15 of `a-z A-Z 0-9 _ = + . -`),
/// and if not, the message saying so.
pub(crate) fn check_interface_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_=+.-".contains(c);
    if name.is_empty()
        || name.len() > MAX_IFNAME_LEN
        || !name.chars().all(ok_char)
        || name == "."
        || name == ".."
    {
        return Err(format!(
            "invalid interface name {name:?}: use 1 to {MAX_IFNAME_LEN} characters from \
             a-z A-Z 0-9 _ = + . - (as wg-quick does)"
        ));
    }
    Ok(())
}

/// The peers as the core wants them, with host names resolved now (the [`Watcher`] resolves
/// them again while they do not answer).
async fn resolve_peers(
    config: &TunnelConfig,
    source: &str,
) -> Result<Vec<PeerSettings>, SessionError> {
    let mut peers = Vec::with_capacity(config.peers.len());
    for peer in &config.peers {
        let endpoint = match &peer.endpoint {
            None => None,
            Some(Endpoint::Addr(addr)) => Some(*addr),
            Some(Endpoint::Host { host, port }) => Some(
                endpoints::resolve(host, *port, None)
                    .await
                    .map_err(|cause| SessionError::Resolve {
                        origin: source.to_owned(),
                        host: host.clone(),
                        port: *port,
                        peer: peer.public_key,
                        cause,
                    })?,
            ),
        };
        peers.push(PeerSettings {
            public_key: peer.public_key,
            preshared_key: peer.preshared_key.clone(),
            endpoint,
            persistent_keepalive: peer.persistent_keepalive,
            allowed_ips: peer.allowed_ips.clone(),
        });
    }
    Ok(peers)
}

/// The addresses that host-name endpoints resolved to, for the planner's loop check.
fn resolved_host_endpoints(
    config: &TunnelConfig,
    peers: &[PeerSettings],
) -> Vec<(PublicKey, SocketAddr)> {
    config
        .peers
        .iter()
        .zip(peers)
        .filter(|(configured, _)| matches!(configured.endpoint, Some(Endpoint::Host { .. })))
        .filter_map(|(configured, settings)| {
            settings
                .endpoint
                .map(|endpoint| (configured.public_key, endpoint))
        })
        .collect()
}

/// The peers whose endpoints are host names, for the [`Watcher`] to resolve again.
fn host_peers(config: &TunnelConfig) -> Vec<HostPeer> {
    config
        .peers
        .iter()
        .filter_map(|peer| match &peer.endpoint {
            Some(Endpoint::Host { host, port }) => Some(HostPeer {
                peer: peer.public_key,
                host: host.clone(),
                port: *port,
            }),
            _ => None,
        })
        .collect()
}

async fn run_hook_list(stage: &str, commands: &[String], ifname: &str) -> anyhow::Result<()> {
    for command in commands {
        let command = command.replace("%i", ifname);
        tracing::info!("{stage}: {command}");
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .status()
            .await
            .with_context(|| format!("failed to run {stage} command {command:?}"))?;
        if !status.success() {
            bail!("{stage} command {command:?} failed ({status})");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::dns::DnsMethod;

    const KEY_A: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const KEY_B: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    fn spec(text: &str) -> Spec {
        Spec {
            config: warren_proto::config::parse(text, None).unwrap(),
            ifname: "wrt0".into(),
            source: "test.conf".into(),
            run_hooks: false,
            state_dir: std::env::temp_dir(),
            kill_switch: KillSwitchMode::Off,
            allow_lan: false,
        }
    }

    #[tokio::test]
    async fn a_routing_loop_is_a_configuration_error_and_changes_nothing() {
        let looping = spec(&format!(
            "[Interface]\nPrivateKey = {KEY_A}\nAddress = 198.18.5.1/24\n\n[Peer]\n\
             PublicKey = {KEY_B}\nAllowedIPs = 198.18.0.0/15\nEndpoint = 198.18.1.2:51820\n"
        ));
        let Err(error) = Prepared::new(looping).await else {
            panic!("a routing loop was accepted");
        };
        assert!(matches!(error, SessionError::Config { .. }), "{error:?}");
        assert!(
            matches!(&error.kind(), ErrorKind::InvalidConfig { message, .. } if message.contains("routing loop")),
            "{:?}",
            error.kind()
        );
        let text = error.message();
        assert!(
            text.starts_with("test.conf: cannot bring up wrt0: ") && text.contains("routing loop"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_bad_interface_name_is_a_configuration_error() {
        let mut bad = spec(&format!(
            "[Interface]\nPrivateKey = {KEY_A}\n\n[Peer]\nPublicKey = {KEY_B}\n\
             AllowedIPs = 198.18.7.0/24\n"
        ));
        bad.ifname = "wg 0".into();
        let error = Prepared::new(bad).await.err().expect("accepted 'wg 0'");
        assert!(matches!(error.kind(), ErrorKind::InvalidConfig { .. }));
    }

    /// No `wintun.dll` next to the test executable (as under Wine in the `windows` stage, or a
    /// fresh build): a missing feature, found before anything changes, naming the DLL.
    #[cfg(windows)]
    #[tokio::test]
    async fn a_missing_wintun_dll_is_a_missing_feature() {
        let dll = std::env::current_exe()
            .unwrap()
            .with_file_name("wintun.dll");
        assert!(
            !dll.exists(),
            "{} exists: this test needs it absent",
            dll.display()
        );
        let split = spec(&format!(
            "[Interface]\nPrivateKey = {KEY_A}\nAddress = 198.18.5.1/24\n\n[Peer]\n\
             PublicKey = {KEY_B}\nAllowedIPs = 198.18.6.0/24\nEndpoint = 198.18.1.2:51820\n"
        ));
        let error = Prepared::new(split)
            .await
            .err()
            .expect("prepared without wintun.dll");
        assert_eq!(error.kind(), ErrorKind::MissingFeature, "{error:?}");
        let text = error.message();
        assert!(
            text.starts_with("test.conf: cannot bring up wrt0: ")
                && text.contains(&format!("{} is missing", dll.display())),
            "{text}"
        );
    }

    /// Every way `up` fails on Windows, as the session reports it, to the CLI's exit code (the
    /// daemon sends the same kind, `cli::ipc_exit_code` reads it): a missing part of the system
    /// is 1 naming it, never 7 ("invalid configuration"), and an OS call that fails (IP Helper,
    /// WFP filters, DNS settings, the registry; "access denied" included) is 1 with its message.
    #[test]
    fn windows_up_failures_map_to_their_exit_codes() {
        let s = spec(&format!(
            "[Interface]\nPrivateKey = {KEY_A}\n\n[Peer]\nPublicKey = {KEY_B}\n\
             AllowedIPs = 0.0.0.0/0\nEndpoint = 198.18.1.2:51820\n"
        ));
        let code = |error: SessionError| crate::cli::exit_code(&anyhow::Error::new(error));
        let failures: Vec<(SessionError, ErrorKind, u8)> = vec![
            // dataplane::tun::check: no wintun.dll next to the exe.
            (
                SessionError::missing(&s, anyhow::anyhow!("C:\\warren\\wintun.dll is missing")),
                ErrorKind::MissingFeature,
                1,
            ),
            // The kill switch's preflight: FwpmEngineOpen0 failed (Wine: 1764; not admin: 5).
            (
                SessionError::kill_switch(
                    &s,
                    KillSwitchError::ToolUnusable {
                        command: "FwpmEngineOpen0 (Windows Filtering Platform)".into(),
                        detail: io::Error::from_raw_os_error(5).to_string(),
                    },
                ),
                ErrorKind::MissingFeature,
                1,
            ),
            // The DNS preflight: the interface is not there.
            (
                SessionError::dns(
                    &s,
                    DnsPlanError::MethodUnavailable {
                        method: platform::dns::DnsMethod::Windows,
                        reason: "cannot find interface wrt0".into(),
                    },
                ),
                ErrorKind::MissingFeature,
                1,
            ),
            // Applying: an IP Helper, WFP, DNS or registry call refused (access denied).
            (
                SessionError::System(
                    anyhow::Error::new(io::Error::from_raw_os_error(5))
                        .context("failed to add route 0.0.0.0/0 dev wrt0"),
                ),
                ErrorKind::Internal,
                1,
            ),
            (
                SessionError::System(anyhow::anyhow!(
                    "failed to install the kill switch filters: Windows Filtering Platform error \
                     0x80320009"
                )),
                ErrorKind::Internal,
                1,
            ),
            // What is wrong in the file stays a configuration error on Windows too.
            (
                SessionError::dns(
                    &s,
                    DnsPlanError::ServerOutsideFullTunnel {
                        server: "198.19.77.53".parse().unwrap(),
                        family: "IPv6",
                    },
                ),
                ErrorKind::InvalidConfig {
                    file: None,
                    line: None,
                    message: String::new(),
                },
                7,
            ),
        ];
        for (error, kind, exit) in failures {
            let message = error.message();
            assert_eq!(
                std::mem::discriminant(&error.kind()),
                std::mem::discriminant(&kind),
                "{message}"
            );
            assert_eq!(code(error), exit, "{message}");
        }
    }

    #[test]
    fn each_failure_maps_to_its_kind() {
        let s = spec(&format!(
            "[Interface]\nPrivateKey = {KEY_A}\n\n[Peer]\nPublicKey = {KEY_B}\n\
             AllowedIPs = 198.18.7.0/24\n"
        ));
        let missing_nft = SessionError::kill_switch(
            &s,
            KillSwitchError::ToolMissing {
                program: "nft".into(),
                cause: "No such file or directory".into(),
            },
        );
        assert_eq!(missing_nft.kind(), ErrorKind::MissingFeature);
        let wfp = SessionError::kill_switch(
            &s,
            KillSwitchError::ToolUnusable {
                command: "FwpmEngineOpen0".into(),
                detail: "not implemented".into(),
            },
        );
        assert_eq!(wfp.kind(), ErrorKind::MissingFeature);
        let no_endpoints = SessionError::kill_switch(
            &s,
            KillSwitchError::NoEndpoints {
                ifname: "wrt0".into(),
            },
        );
        assert!(matches!(
            no_endpoints.kind(),
            ErrorKind::InvalidConfig { .. }
        ));
        let unsupported = platform::Unsupported {
            what: "a kill switch",
            os: "plan9",
        };
        assert_eq!(
            SessionError::kill_switch(&s, KillSwitchError::Unsupported(unsupported)).kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(
            SessionError::dns(&s, DnsPlanError::Unsupported(unsupported)).kind(),
            ErrorKind::Unsupported
        );
        let no_resolvconf = SessionError::dns(
            &s,
            DnsPlanError::MethodUnavailable {
                method: DnsMethod::Resolvconf,
                reason: "resolvconf is not installed".into(),
            },
        );
        assert_eq!(no_resolvconf.kind(), ErrorKind::MissingFeature);
        let outside = SessionError::dns(
            &s,
            DnsPlanError::ServerOutsideFullTunnel {
                server: "198.18.0.53".parse().unwrap(),
                family: "IPv4",
            },
        );
        assert!(matches!(outside.kind(), ErrorKind::InvalidConfig { .. }));
        let resolve = SessionError::Resolve {
            origin: "test.conf".into(),
            host: "vpn.example".into(),
            port: 51820,
            peer: s.config.peers[0].public_key,
            cause: io::Error::new(io::ErrorKind::NotFound, "no such name"),
        };
        assert_eq!(resolve.kind(), ErrorKind::Network);
        assert_eq!(
            SessionError::System(anyhow::anyhow!("netlink said no")).kind(),
            ErrorKind::Internal
        );
    }

    #[test]
    fn interface_names_follow_wg_quick() {
        assert_eq!(
            interface_name_from_path(Path::new("/etc/wireguard/wg0.conf")).unwrap(),
            "wg0"
        );
        assert!(check_interface_name("wg0").is_ok());
        assert!(check_interface_name("a-very-long-interface").is_err());
        assert!(check_interface_name("wg 0").is_err());
        assert!(check_interface_name("").is_err());
        assert!(check_interface_name("..").is_err());
    }
}
