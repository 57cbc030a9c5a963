//! The tunnel manager: the one owner of the daemon's state. Everything that changes a tunnel
//! arrives here as a [`Command`] (from the IPC server, or autostart) and is decided here, one at
//! a time, in one task; the server and the CLI only translate. Nothing else touches a tunnel.
//!
//! Per tunnel it keeps the lifecycle state ([`lifecycle`]), the session task that runs it
//! (through [`Settings::runner`]: [`RealSessions`], i.e. [`crate::session`], in the daemon; an
//! in-memory stand-in in the tests, so every path of the manager runs without root), what it claims
//! on the host ([`Footprint`], for conflicts), the driver's latest statistics and the liveness
//! verdict. Each session runs in a task of its own and reports back on an internal channel — `Up`
//! (set up; a control channel to its driver), `Ended` (down, everything undone, or failed) — tagged
//! with a generation number so a late report from an earlier session of the same name is ignored.
//!
//! Every [`STATS_INTERVAL_SECS`] the manager asks each running driver for its statistics; a
//! tunnel becomes `Connected` when the first handshake shows up there, and the statistics and
//! health go out as [`Event::Stats`]. When the session reports that the network changed under
//! a connected tunnel (`NetworkChanged`, with the change's number), it is `Reconnecting` until
//! a snapshot taken after that change says no handshake is pending any more. State changes go out as [`Event::TunnelState`].
//!
//! Who may do what: root (`Caller::admin`) may do everything; other admitted users may bring
//! tunnels up and down, but not install, remove or re-configure system tunnels, and not take down
//! another user's user tunnel. A user tunnel never runs PreUp/PostUp/PreDown/PostDown commands
//! (they would run as root); a system tunnel runs them only if the daemon was started with
//! `--run-hooks`.
//!
//! Stopping ([`Manager::run`]'s `shutdown`): every client is told ([`Event::HelperStopping`]),
//! every tunnel is taken down and its journal undone, and the manager waits for all of them
//! (bounded by [`SHUTDOWN_TIMEOUT_SECS`]).

use super::conflict::{self, Footprint};
use super::lifecycle::{self, Liveness, Transition};
use super::store::Store;
use crate::dataplane::{Control, DeviceSnapshot};
use crate::platform::firewall::KillSwitchMode;
use crate::session::{self, Prepared, Running, Spec};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{broadcast, mpsc, oneshot};
use warren_proto::config::TunnelConfig;
use warren_proto::ipc::{
    ErrorKind, Event, Health, IpcError, KillSwitch, PeerStatus, Response, TunnelKind, TunnelName,
    TunnelOptions, TunnelState, TunnelStatus, TunnelSummary, STATS_INTERVAL_SECS,
};

/// How long stopping waits for the tunnels to go down.
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 60;

/// How long a driver may take to answer a statistics request.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a command's answer goes.
pub type Reply = oneshot::Sender<Result<Response, IpcError>>;

/// Who sent a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The peer's uid (Unix), if known.
    pub uid: Option<u32>,
    /// Root / Administrators: may manage system tunnels.
    pub admin: bool,
}

impl Caller {
    /// The daemon itself (autostart).
    pub fn daemon() -> Self {
        Caller {
            uid: None,
            admin: true,
        }
    }
}

/// What a client asks of the manager.
pub enum Command {
    /// Bring a tunnel up; answered once it is set up (`Connecting`) or failed.
    Connect {
        /// The tunnel.
        name: TunnelName,
        /// Whose configuration.
        source: Source,
        /// Who asks.
        caller: Caller,
        /// Where the answer goes (`None` for autostart).
        reply: Option<Reply>,
    },
    /// Take a tunnel down; answered once it is down and undone.
    Disconnect {
        /// The tunnel.
        name: TunnelName,
        /// Who asks.
        caller: Caller,
        /// Where the answer goes.
        reply: Reply,
    },
    /// Every tunnel known.
    List {
        /// Where the answer goes.
        reply: Reply,
    },
    /// One tunnel's status, or every active one's.
    Status {
        /// The tunnel, or `None` for all active.
        name: Option<TunnelName>,
        /// Where the answer goes.
        reply: Reply,
    },
    /// Replace a tunnel's options; an active tunnel reconnects with them.
    SetOptions {
        /// The tunnel.
        name: TunnelName,
        /// The new options.
        options: TunnelOptions,
        /// Who asks.
        caller: Caller,
        /// Where the answer goes.
        reply: Reply,
    },
    /// Install a system tunnel.
    Import {
        /// Its name.
        name: TunnelName,
        /// Its configuration.
        config: TunnelConfig,
        /// Overwrite an existing one (that is down).
        replace: bool,
        /// Who asks.
        caller: Caller,
        /// Where the answer goes.
        reply: Reply,
    },
    /// Delete a system tunnel (that is down).
    Remove {
        /// Its name.
        name: TunnelName,
        /// Who asks.
        caller: Caller,
        /// Where the answer goes.
        reply: Reply,
    },
    /// Answered at once: the service watchdog's proof that the manager's loop still turns
    /// (`daemon/mod.rs`, `WATCHDOG=1`).
    Alive {
        /// Where the answer goes.
        reply: oneshot::Sender<()>,
    },
}

/// What became of the autostart tunnels, once each has come up (`Connecting`) or failed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Autostarted {
    /// Set up.
    pub up: usize,
    /// Failed (logged as errors).
    pub failed: usize,
}

/// Whose configuration a tunnel runs.
// Short-lived, one per request; boxing the configuration would only make building it clumsier.
#[allow(clippy::large_enum_variant)]
pub enum Source {
    /// Handed over by a client, kept in memory only (zeroized when dropped).
    User {
        /// The configuration.
        config: TunnelConfig,
        /// Its options.
        options: TunnelOptions,
    },
    /// Read from the system tunnels directory.
    System,
}

/// The manager's settings.
pub struct Settings {
    /// Where the journals live.
    pub state_dir: PathBuf,
    /// The system tunnels.
    pub store: Store,
    /// Run system tunnels' hook commands.
    pub run_hooks: bool,
    /// What runs each tunnel's session: [`RealSessions`] in the daemon.
    pub runner: Arc<dyn SessionRunner>,
}

/// A session's whole run, as the manager sees it.
pub type SessionFuture = Pin<Box<dyn Future<Output = Result<(), IpcError>> + Send>>;

/// Runs one tunnel's session for the manager: prepares and brings up `spec`, calls `on_up` once
/// it is up (with the control channel the manager polls for statistics), and completes when the
/// tunnel is down and undone again — after `stop` completes or is dropped, or on its own with an
/// error. A failure before `on_up` means nothing changed. While an endpoint's name does not
/// resolve it calls `on_wait` with the reason (each retry), and `on_wait(None)` once it does.
pub trait SessionRunner: Send + Sync + 'static {
    /// See the trait docs.
    fn run(
        &self,
        spec: Spec,
        stop: oneshot::Receiver<()>,
        on_up: Box<dyn FnOnce(Running) + Send>,
        on_wait: OnWait,
    ) -> SessionFuture;
}

/// What a session calls while it waits for the network (see [`SessionRunner`]).
pub type OnWait = Box<dyn Fn(Option<String>) + Send + Sync>;

/// The real sessions: [`Prepared::waiting_for_network`] (a name that does not resolve yet is
/// retried, not a failure; a stop while waiting ends it with nothing changed) then
/// [`session::run`], each failure mapped to its [`ErrorKind`] by
/// [`session::SessionError::kind`].
pub struct RealSessions;

impl SessionRunner for RealSessions {
    fn run(
        &self,
        spec: Spec,
        mut stop: oneshot::Receiver<()>,
        on_up: Box<dyn FnOnce(Running) + Send>,
        on_wait: OnWait,
    ) -> SessionFuture {
        Box::pin(async move {
            let failed = |e: session::SessionError| IpcError::new(e.kind(), e.message());
            let prepared = tokio::select! {
                prepared = Prepared::waiting_for_network(spec, on_wait) => prepared.map_err(failed)?,
                // Stopped (or the sender dropped) while waiting: nothing was changed.
                _ = &mut stop => return Ok(()),
            };
            let stop = async {
                // A dropped sender stops the session too.
                let _ = stop.await;
            };
            session::run(prepared, stop, on_up).await.map_err(failed)
        })
    }
}

/// What a session task reports.
enum Report {
    Up {
        name: TunnelName,
        generation: u64,
        interface: String,
        control: mpsc::Sender<Control>,
    },
    Stats {
        name: TunnelName,
        generation: u64,
        snapshot: DeviceSnapshot,
    },
    /// The network under the tunnel changed; handshakes for change `number` started.
    NetworkChanged {
        name: TunnelName,
        generation: u64,
        number: u64,
    },
    /// The session's DNS guard gave up: the tunnel's DNS is no longer in place.
    DnsLost {
        name: TunnelName,
        generation: u64,
        why: String,
    },
    /// Waiting for the network (`Some(reason)`), or no longer (`None`).
    Waiting {
        name: TunnelName,
        generation: u64,
        reason: Option<String>,
    },
    Ended {
        name: TunnelName,
        generation: u64,
        result: Result<(), IpcError>,
    },
}

/// The running session of a tunnel.
struct Session {
    generation: u64,
    /// Completing (or dropping) it stops the session.
    stop: Option<oneshot::Sender<()>>,
    control: Option<mpsc::Sender<Control>>,
    interface: Option<String>,
    footprint: Footprint,
    /// A user tunnel's configuration, kept to reconnect it with new options.
    user_config: Option<TunnelConfig>,
    /// Reconnect with the tunnel's (new) options once this session has ended.
    restart: bool,
    /// The newest network change the session reported (0: none): a snapshot older than it
    /// cannot end `Reconnecting`.
    network_change: u64,
    /// Why the tunnel's DNS is no longer in place, once the session says so: the tunnel is
    /// degraded from then on.
    dns_lost: Option<String>,
}

/// One tunnel the manager knows beyond the system tunnels directory.
struct Tunnel {
    kind: TunnelKind,
    /// The uid that brought a user tunnel up.
    owner: Option<u32>,
    options: TunnelOptions,
    state: TunnelState,
    session: Option<Session>,
    peers: Vec<PeerStatus>,
    health: Option<Health>,
    liveness: Liveness,
    connect_replies: Vec<Reply>,
    disconnect_replies: Vec<Reply>,
}

/// The manager; see the module docs.
pub struct Manager {
    settings: Settings,
    tunnels: BTreeMap<TunnelName, Tunnel>,
    events: broadcast::Sender<Event>,
    reports_tx: mpsc::UnboundedSender<Report>,
    reports: mpsc::UnboundedReceiver<Report>,
    next_generation: u64,
    /// Told once every autostart tunnel has come up or failed ([`Manager::when_autostarted`]).
    autostarted: Option<oneshot::Sender<Autostarted>>,
}

impl Manager {
    /// A manager publishing on `events`.
    pub fn new(settings: Settings, events: broadcast::Sender<Event>) -> Self {
        let (reports_tx, reports) = mpsc::unbounded_channel();
        Manager {
            settings,
            tunnels: BTreeMap::new(),
            events,
            reports_tx,
            reports,
            next_generation: 1,
            autostarted: None,
        }
    }

    /// Completes once every autostart tunnel [`Manager::run`] brings up has come up
    /// (`Connecting`; the handshake is not waited for) or failed, with how many did which. The
    /// daemon tells the service manager it is ready then.
    pub fn when_autostarted(&mut self) -> oneshot::Receiver<Autostarted> {
        let (tx, rx) = oneshot::channel();
        self.autostarted = Some(tx);
        rx
    }

    /// Brings up the autostart system tunnels, then serves `commands` until `shutdown`
    /// completes, then takes every tunnel down (see the module docs).
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        shutdown: impl Future<Output = ()>,
    ) {
        self.autostart();
        let mut tick = tokio::time::interval(Duration::from_secs(STATS_INTERVAL_SECS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(command) = commands.recv() => self.on_command(command),
                Some(report) = self.reports.recv() => self.on_report(report),
                _ = tick.tick() => self.poll_stats(),
            }
        }
        drop(commands);
        self.stop_all().await;
    }

    fn autostart(&mut self) {
        let names = match self.settings.store.names() {
            Ok(names) => names,
            Err(e) => {
                tracing::error!("autostart: {}", e.message);
                Vec::new()
            }
        };
        let mut pending = Vec::new();
        for name in names {
            if self.settings.store.autostart(&name) {
                tracing::info!("autostart: bringing up system tunnel '{name}'");
                let (reply, answer) = oneshot::channel();
                self.connect(name.clone(), Source::System, Caller::daemon(), Some(reply));
                pending.push((name, answer));
            }
        }
        let done = self.autostarted.take();
        // The answers come while `run` serves its loop; a task waits for them.
        tokio::spawn(async move {
            let mut outcome = Autostarted::default();
            for (name, answer) in pending {
                match answer.await {
                    Ok(Ok(_)) => outcome.up += 1,
                    Ok(Err(e)) => {
                        tracing::error!("autostart: tunnel '{name}' failed: {}", e.message);
                        outcome.failed += 1;
                    }
                    Err(_) => outcome.failed += 1,
                }
            }
            if let Some(done) = done {
                let _ = done.send(outcome);
            }
        });
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Connect {
                name,
                source,
                caller,
                reply,
            } => self.connect(name, source, caller, reply),
            Command::Disconnect {
                name,
                caller,
                reply,
            } => self.disconnect(name, &caller, reply),
            Command::List { reply } => {
                let _ = reply.send(self.list());
            }
            Command::Status { name, reply } => {
                let _ = reply.send(self.status(name.as_ref()));
            }
            Command::SetOptions {
                name,
                options,
                caller,
                reply,
            } => {
                let _ = reply.send(self.set_options(&name, options, &caller));
            }
            Command::Import {
                name,
                config,
                replace,
                caller,
                reply,
            } => {
                let _ = reply.send(self.import(&name, &config, replace, &caller));
            }
            Command::Remove {
                name,
                caller,
                reply,
            } => {
                let _ = reply.send(self.remove(&name, &caller));
            }
            Command::Alive { reply } => {
                let _ = reply.send(());
            }
        }
    }

    /// Moves `name` along `transition` and publishes the new state.
    fn transition(&mut self, name: &TunnelName, transition: &Transition) {
        let Some(tunnel) = self.tunnels.get_mut(name) else {
            return;
        };
        match lifecycle::next(&tunnel.state, transition) {
            Some(state) => {
                tracing::info!("tunnel '{name}': {} → {state}", tunnel.state);
                tunnel.state = state.clone();
                if !matches!(state, TunnelState::Connected { .. }) {
                    tunnel.health = None;
                }
                let _ = self.events.send(Event::TunnelState {
                    name: name.clone(),
                    state,
                });
            }
            None => tracing::debug!(
                "tunnel '{name}': {transition:?} does not apply in state {}",
                tunnel.state
            ),
        }
    }

    fn connect(&mut self, name: TunnelName, source: Source, caller: Caller, reply: Option<Reply>) {
        match self.start(&name, source, &caller) {
            Ok(()) => {
                if let (Some(reply), Some(tunnel)) = (reply, self.tunnels.get_mut(&name)) {
                    tunnel.connect_replies.push(reply);
                }
            }
            Err(error) => {
                tracing::warn!("tunnel '{name}': not brought up: {}", error.message);
                if let Some(reply) = reply {
                    let _ = reply.send(Err(error));
                }
            }
        }
    }

    /// Checks and starts a session for `name`; the tunnel is then `Connecting`.
    fn start(
        &mut self,
        name: &TunnelName,
        source: Source,
        caller: &Caller,
    ) -> Result<(), IpcError> {
        if let Some(tunnel) = self.tunnels.get(name) {
            if lifecycle::is_active(&tunnel.state) {
                return Err(IpcError::conflict(
                    None,
                    format!("tunnel '{name}' is already up ({})", tunnel.state),
                ));
            }
        }
        let store = &self.settings.store;
        let (kind, config, options, source_text) = match source {
            Source::User { config, options } => {
                if store.exists(name) {
                    return Err(IpcError::conflict(
                        None,
                        format!(
                            "a system tunnel is named '{name}'; give the user tunnel another name"
                        ),
                    ));
                }
                (
                    TunnelKind::User,
                    config,
                    options,
                    format!("user tunnel '{name}'"),
                )
            }
            Source::System => {
                let config = store.load(name)?;
                let options = store.options(name);
                let path = store.conf_path(name);
                (
                    TunnelKind::System,
                    config,
                    options,
                    path.display().to_string(),
                )
            }
        };
        let footprint = Footprint::of(&config, &options);
        conflict::check(
            name,
            &footprint,
            self.tunnels
                .iter()
                .filter_map(|(n, t)| t.session.as_ref().map(|s| (n, &s.footprint))),
        )?;
        let user_config = (kind == TunnelKind::User).then(|| config.clone());
        let spec = Spec {
            config,
            ifname: name.to_string(),
            source: source_text,
            run_hooks: kind == TunnelKind::System && self.settings.run_hooks,
            state_dir: self.settings.state_dir.clone(),
            kill_switch: kill_switch_mode(options.kill_switch),
            allow_lan: options.allow_lan,
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        let (stop, stopped) = oneshot::channel();
        tokio::spawn(run_session(
            Arc::clone(&self.settings.runner),
            name.clone(),
            generation,
            spec,
            stopped,
            self.reports_tx.clone(),
        ));
        let session = Session {
            generation,
            stop: Some(stop),
            control: None,
            interface: None,
            footprint,
            user_config,
            restart: false,
            network_change: 0,
            dns_lost: None,
        };
        let tunnel = self.tunnels.entry(name.clone()).or_insert_with(|| Tunnel {
            kind,
            owner: None,
            options,
            state: TunnelState::Disconnected,
            session: None,
            peers: Vec::new(),
            health: None,
            liveness: Liveness::default(),
            connect_replies: Vec::new(),
            disconnect_replies: Vec::new(),
        });
        tunnel.kind = kind;
        tunnel.owner = if kind == TunnelKind::User {
            caller.uid
        } else {
            None
        };
        tunnel.options = options;
        tunnel.session = Some(session);
        tunnel.peers.clear();
        tunnel.liveness = Liveness::default();
        tracing::info!("tunnel '{name}': bringing it up ({kind:?}, {options:?})");
        self.transition(name, &Transition::Start);
        Ok(())
    }

    fn disconnect(&mut self, name: TunnelName, caller: &Caller, reply: Reply) {
        let Some(tunnel) = self.tunnels.get_mut(&name) else {
            let _ = reply.send(Err(not_up(&name)));
            return;
        };
        if let Err(e) = may_touch(tunnel, &name, caller) {
            let _ = reply.send(Err(e));
            return;
        }
        match &tunnel.state {
            TunnelState::Disconnected => {
                let _ = reply.send(Err(not_up(&name)));
            }
            TunnelState::Error { .. } => {
                self.transition(&name, &Transition::Stop);
                self.forget_if_down(&name);
                let _ = reply.send(Ok(Response::Done));
            }
            TunnelState::Disconnecting => tunnel.disconnect_replies.push(reply),
            TunnelState::Connecting
            | TunnelState::WaitingForNetwork { .. }
            | TunnelState::Connected { .. }
            | TunnelState::Reconnecting { .. } => {
                tunnel.disconnect_replies.push(reply);
                if let Some(session) = &mut tunnel.session {
                    session.restart = false;
                    session.stop.take();
                }
                tracing::info!("tunnel '{name}': taking it down");
                self.transition(&name, &Transition::Stop);
            }
        }
    }

    /// Drops a tunnel that is down and has nothing left to tell.
    fn forget_if_down(&mut self, name: &TunnelName) {
        if let Some(tunnel) = self.tunnels.get(name) {
            if tunnel.state == TunnelState::Disconnected && tunnel.session.is_none() {
                self.tunnels.remove(name);
            }
        }
    }

    fn list(&self) -> Result<Response, IpcError> {
        // The catalogue at rest, then what runs (or ran) over it.
        let mut tunnels: BTreeMap<TunnelName, TunnelSummary> = self
            .settings
            .store
            .list()?
            .into_iter()
            .map(|summary| (summary.name.clone(), summary))
            .collect();
        for (name, tunnel) in &self.tunnels {
            tunnels.insert(
                name.clone(),
                TunnelSummary {
                    name: name.clone(),
                    kind: tunnel.kind,
                    state: tunnel.state.clone(),
                    options: tunnel.options,
                },
            );
        }
        Ok(Response::Tunnels {
            tunnels: tunnels.into_values().collect(),
        })
    }

    fn status(&self, name: Option<&TunnelName>) -> Result<Response, IpcError> {
        let status_of = |name: &TunnelName, tunnel: &Tunnel| TunnelStatus {
            name: name.clone(),
            kind: tunnel.kind,
            state: tunnel.state.clone(),
            interface: tunnel.session.as_ref().and_then(|s| s.interface.clone()),
            options: tunnel.options,
            peers: tunnel.peers.clone(),
            health: tunnel.health.clone(),
        };
        let tunnels = match name {
            None => self
                .tunnels
                .iter()
                .map(|(name, tunnel)| status_of(name, tunnel))
                .collect(),
            Some(name) => match self.tunnels.get(name) {
                Some(tunnel) => vec![status_of(name, tunnel)],
                None => match self.settings.store.status(name) {
                    Some(status) => vec![status],
                    None => return Err(no_such_tunnel(name)),
                },
            },
        };
        Ok(Response::Status { tunnels })
    }

    fn set_options(
        &mut self,
        name: &TunnelName,
        options: TunnelOptions,
        caller: &Caller,
    ) -> Result<Response, IpcError> {
        let store = &self.settings.store;
        let system = store.exists(name)
            || self
                .tunnels
                .get(name)
                .is_some_and(|t| t.kind == TunnelKind::System);
        let Some(tunnel) = self.tunnels.get_mut(name) else {
            if !system {
                return Err(no_such_tunnel(name));
            }
            require_admin(caller, "change a system tunnel's options")?;
            store.save_options(name, &options)?;
            tracing::info!("system tunnel '{name}': options set to {options:?}");
            return Ok(Response::Done);
        };
        if system {
            require_admin(caller, "change a system tunnel's options")?;
        } else {
            may_touch(tunnel, name, caller)?;
        }
        if let Some(session) = &tunnel.session {
            if lifecycle::is_active(&tunnel.state) && tunnel.state != TunnelState::Disconnecting {
                // The new options must fit next to the other tunnels before anything changes.
                let mut footprint = session.footprint.clone();
                footprint.kill_switch = match &session.user_config {
                    Some(config) => options.kill_switch.is_active(config.is_full_tunnel()),
                    None => match store.load(name) {
                        Ok(config) => options.kill_switch.is_active(config.is_full_tunnel()),
                        Err(_) => footprint.kill_switch,
                    },
                };
                let others = self
                    .tunnels
                    .iter()
                    .filter(|(n, _)| *n != name)
                    .filter_map(|(n, t)| t.session.as_ref().map(|s| (n, &s.footprint)));
                conflict::check(name, &footprint, others)?;
            }
        }
        if system {
            self.settings.store.save_options(name, &options)?;
        }
        let Some(tunnel) = self.tunnels.get_mut(name) else {
            return Ok(Response::Done);
        };
        let changed = tunnel.options != options;
        tunnel.options = options;
        tracing::info!("tunnel '{name}': options set to {options:?}");
        let reconnect = changed
            && matches!(
                tunnel.state,
                TunnelState::Connecting
                    | TunnelState::WaitingForNetwork { .. }
                    | TunnelState::Connected { .. }
                    | TunnelState::Reconnecting { .. }
            );
        if reconnect {
            if let Some(session) = &mut tunnel.session {
                tracing::info!("tunnel '{name}': reconnecting with the new options");
                session.restart = true;
                session.stop.take();
            }
            self.transition(name, &Transition::Stop);
        }
        Ok(Response::Done)
    }

    fn import(
        &mut self,
        name: &TunnelName,
        config: &TunnelConfig,
        replace: bool,
        caller: &Caller,
    ) -> Result<Response, IpcError> {
        require_admin(caller, "install system tunnels")?;
        if let Some(tunnel) = self.tunnels.get(name) {
            if lifecycle::is_active(&tunnel.state) {
                return Err(IpcError::conflict(
                    None,
                    format!("tunnel '{name}' is up; take it down first"),
                ));
            }
            if tunnel.kind == TunnelKind::User {
                return Err(IpcError::conflict(
                    None,
                    format!("a user tunnel is named '{name}'; choose another name"),
                ));
            }
        }
        self.settings.store.import(name, config, replace)?;
        Ok(Response::Done)
    }

    fn remove(&mut self, name: &TunnelName, caller: &Caller) -> Result<Response, IpcError> {
        require_admin(caller, "remove system tunnels")?;
        if let Some(tunnel) = self.tunnels.get(name) {
            if lifecycle::is_active(&tunnel.state) {
                return Err(IpcError::conflict(
                    None,
                    format!("tunnel '{name}' is up; take it down first"),
                ));
            }
        }
        self.settings.store.remove(name)?;
        if self
            .tunnels
            .get(name)
            .is_some_and(|t| t.kind == TunnelKind::System)
        {
            self.tunnels.remove(name);
        }
        Ok(Response::Done)
    }

    fn on_report(&mut self, report: Report) {
        match report {
            Report::Up {
                name,
                generation,
                interface,
                control,
            } => {
                let Some(tunnel) = self.current(&name, generation) else {
                    return;
                };
                if let Some(session) = &mut tunnel.session {
                    session.interface = Some(interface);
                    session.control = Some(control);
                }
                for reply in tunnel.connect_replies.drain(..) {
                    let _ = reply.send(Ok(Response::Done));
                }
                // The first statistics now, not a tick later.
                self.poll_one(&name);
            }
            Report::Stats {
                name,
                generation,
                snapshot,
            } => self.on_stats(&name, generation, &snapshot),
            Report::NetworkChanged {
                name,
                generation,
                number,
            } => {
                let Some(tunnel) = self.current(&name, generation) else {
                    return;
                };
                if let Some(session) = &mut tunnel.session {
                    session.network_change = session.network_change.max(number);
                }
                if !matches!(tunnel.state, TunnelState::Reconnecting { .. }) {
                    self.transition(&name, &Transition::NetworkChanged);
                }
                // Whether the handshake already completed: now, not a tick later.
                self.poll_one(&name);
            }
            Report::DnsLost {
                name,
                generation,
                why,
            } => {
                let Some(tunnel) = self.current(&name, generation) else {
                    return;
                };
                if let Some(session) = &mut tunnel.session {
                    session.dns_lost = Some(why);
                }
                self.poll_one(&name);
            }
            Report::Waiting {
                name,
                generation,
                reason,
            } => {
                if self.current(&name, generation).is_none() {
                    return;
                }
                let transition = match reason {
                    Some(reason) => Transition::Wait { reason },
                    None => Transition::Resolved,
                };
                self.transition(&name, &transition);
                // Accepted (answered after the state changed, so a status that follows shows
                // it): it comes up by itself once the name resolves.
                if let Some(tunnel) = self.current(&name, generation) {
                    for reply in tunnel.connect_replies.drain(..) {
                        let _ = reply.send(Ok(Response::Done));
                    }
                }
            }
            Report::Ended {
                name,
                generation,
                result,
            } => self.on_ended(&name, generation, result),
        }
    }

    /// The tunnel `name` if `generation` is its current session.
    fn current(&mut self, name: &TunnelName, generation: u64) -> Option<&mut Tunnel> {
        self.tunnels
            .get_mut(name)
            .filter(|t| t.session.as_ref().map(|s| s.generation) == Some(generation))
    }

    fn on_stats(&mut self, name: &TunnelName, generation: u64, snapshot: &DeviceSnapshot) {
        let Some(tunnel) = self.current(name, generation) else {
            return;
        };
        tunnel.peers = lifecycle::peer_status(&snapshot.peers);
        let handshake = lifecycle::newest_handshake(&snapshot.peers);
        // Reconnected: a snapshot taken after the newest change says no handshake is pending.
        let reconnected = !snapshot.reconnecting
            && tunnel
                .session
                .as_ref()
                .is_some_and(|s| snapshot.network_changes >= s.network_change);
        let settled = match tunnel.state {
            TunnelState::Connecting => true,
            TunnelState::Reconnecting { .. } => reconnected,
            _ => false,
        };
        if let (true, Some(at)) = (settled, handshake) {
            let since_unix_secs = lifecycle::unix_secs(at);
            self.transition(name, &Transition::Handshake { since_unix_secs });
        }
        let Some(tunnel) = self.current(name, generation) else {
            return;
        };
        tunnel.health = match tunnel.state {
            TunnelState::Connected { .. } => {
                let health =
                    tunnel
                        .liveness
                        .observe(Instant::now(), SystemTime::now(), &snapshot.peers);
                let dns_lost = tunnel.session.as_ref().and_then(|s| s.dns_lost.clone());
                Some(lifecycle::with_dns_lost(health, dns_lost))
            }
            _ => None,
        };
        let event = Event::Stats {
            name: name.clone(),
            peers: tunnel.peers.clone(),
            health: tunnel.health.clone(),
        };
        let _ = self.events.send(event);
    }

    fn on_ended(&mut self, name: &TunnelName, generation: u64, result: Result<(), IpcError>) {
        let Some(tunnel) = self.current(name, generation) else {
            return;
        };
        let session = tunnel.session.take();
        tunnel.peers.clear();
        let stopping = tunnel.state == TunnelState::Disconnecting;
        let failure = match (&result, stopping) {
            (Err(error), _) => Some(error.clone()),
            (Ok(()), true) => None,
            (Ok(()), false) => Some(IpcError::internal(format!(
                "tunnel '{name}' stopped unexpectedly"
            ))),
        };
        let connect_replies: Vec<Reply> = tunnel.connect_replies.drain(..).collect();
        let disconnect_replies: Vec<Reply> = tunnel.disconnect_replies.drain(..).collect();
        match &failure {
            Some(error) => {
                tracing::error!("tunnel '{name}': {}", error.message);
                self.transition(
                    name,
                    &Transition::Fail {
                        reason: error.message.clone(),
                    },
                );
            }
            None => {
                tracing::info!("tunnel '{name}' is down; everything it changed is undone");
                self.transition(name, &Transition::Down);
            }
        }
        for reply in connect_replies {
            let _ = reply.send(Err(failure.clone().unwrap_or_else(|| {
                IpcError::new(
                    ErrorKind::Internal,
                    format!("tunnel '{name}' was taken down before it was up"),
                )
            })));
        }
        for reply in disconnect_replies {
            let _ = reply.send(Ok(Response::Done));
        }
        // A reconnect with new options.
        if let Some(session) = session.filter(|s| s.restart && failure.is_none()) {
            let source = match session.user_config {
                Some(config) => Source::User {
                    config,
                    options: self
                        .tunnels
                        .get(name)
                        .map(|t| t.options)
                        .unwrap_or_default(),
                },
                None => Source::System,
            };
            let owner = self.tunnels.get(name).and_then(|t| t.owner);
            let caller = Caller {
                uid: owner,
                admin: true,
            };
            self.connect(name.clone(), source, caller, None);
        }
        self.forget_if_down(name);
    }

    fn poll_stats(&mut self) {
        let names: Vec<TunnelName> = self
            .tunnels
            .iter()
            .filter(|(_, t)| t.session.as_ref().is_some_and(|s| s.control.is_some()))
            .map(|(name, _)| name.clone())
            .collect();
        for name in names {
            self.poll_one(&name);
        }
    }

    /// Asks `name`'s driver for statistics, without waiting here.
    fn poll_one(&mut self, name: &TunnelName) {
        let Some(session) = self.tunnels.get(name).and_then(|t| t.session.as_ref()) else {
            return;
        };
        let Some(control) = session.control.clone() else {
            return;
        };
        let (generation, reports, name) =
            (session.generation, self.reports_tx.clone(), name.clone());
        tokio::spawn(async move {
            let (tx, rx) = oneshot::channel();
            if control.send(Control::Stats(tx)).await.is_err() {
                return;
            }
            if let Ok(Ok(snapshot)) = tokio::time::timeout(STATS_TIMEOUT, rx).await {
                let _ = reports.send(Report::Stats {
                    name,
                    generation,
                    snapshot,
                });
            }
        });
    }

    /// Tells everyone, takes every tunnel down, waits for them (bounded).
    async fn stop_all(&mut self) {
        let _ = self.events.send(Event::HelperStopping);
        let active: Vec<TunnelName> = self
            .tunnels
            .iter()
            .filter(|(_, t)| t.session.is_some())
            .map(|(name, _)| name.clone())
            .collect();
        if active.is_empty() {
            return;
        }
        tracing::info!("stopping: taking {} tunnel(s) down", active.len());
        for name in &active {
            if let Some(tunnel) = self.tunnels.get_mut(name) {
                if let Some(session) = &mut tunnel.session {
                    session.restart = false;
                    session.stop.take();
                }
            }
            self.transition(name, &Transition::Stop);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(SHUTDOWN_TIMEOUT_SECS);
        while self.tunnels.values().any(|t| t.session.is_some()) {
            match tokio::time::timeout_at(deadline, self.reports.recv()).await {
                Ok(Some(Report::Ended {
                    name,
                    generation,
                    result,
                })) => self.on_ended(&name, generation, result),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    let left: Vec<String> = self
                        .tunnels
                        .iter()
                        .filter(|(_, t)| t.session.is_some())
                        .map(|(n, _)| n.to_string())
                        .collect();
                    tracing::error!(
                        "stopping: {} did not go down within {SHUTDOWN_TIMEOUT_SECS} s; their \
                         journals stay for the next start",
                        left.join(", ")
                    );
                    return;
                }
            }
        }
    }
}

/// One session's task: run it through `runner` until stopped, reporting `Up` and `Ended`.
async fn run_session(
    runner: Arc<dyn SessionRunner>,
    name: TunnelName,
    generation: u64,
    spec: Spec,
    stopped: oneshot::Receiver<()>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let up_reports = reports.clone();
    let up_name = name.clone();
    let on_up = Box::new(move |running: Running| {
        let Running {
            interface,
            control,
            mut network_changes,
            dns_lost,
        } = running;
        let _ = up_reports.send(Report::Up {
            name: up_name.clone(),
            generation,
            interface,
            control,
        });
        // The DNS guard giving up, as a report; never, if it does not.
        let dns_reports = up_reports.clone();
        let dns_name = up_name.clone();
        tokio::spawn(async move {
            if let Ok(why) = dns_lost.await {
                let _ = dns_reports.send(Report::DnsLost {
                    name: dns_name,
                    generation,
                    why,
                });
            }
        });
        // The session's network changes, as reports; ends with the session.
        tokio::spawn(async move {
            while let Some(number) = network_changes.recv().await {
                let report = Report::NetworkChanged {
                    name: up_name.clone(),
                    generation,
                    number,
                };
                if up_reports.send(report).is_err() {
                    return;
                }
            }
        });
    });
    let wait_reports = reports.clone();
    let wait_name = name.clone();
    let on_wait = Box::new(move |reason: Option<String>| {
        let _ = wait_reports.send(Report::Waiting {
            name: wait_name.clone(),
            generation,
            reason,
        });
    });
    let result = runner.run(spec, stopped, on_up, on_wait).await;
    let _ = reports.send(Report::Ended {
        name,
        generation,
        result,
    });
}

fn kill_switch_mode(setting: KillSwitch) -> KillSwitchMode {
    match setting {
        KillSwitch::On => KillSwitchMode::On,
        KillSwitch::Off => KillSwitchMode::Off,
        KillSwitch::Auto => KillSwitchMode::Auto,
    }
}

fn not_up(name: &TunnelName) -> IpcError {
    IpcError::not_found(format!("no tunnel named '{name}' is up"))
}

fn no_such_tunnel(name: &TunnelName) -> IpcError {
    IpcError::not_found(format!(
        "no tunnel named '{name}' (neither a system tunnel nor a user tunnel that is up)"
    ))
}

fn require_admin(caller: &Caller, what: &str) -> Result<(), IpcError> {
    if caller.admin {
        Ok(())
    } else {
        Err(IpcError::not_authorized(format!(
            "only root may {what}{}",
            caller
                .uid
                .map(|uid| format!(" (you are uid {uid})"))
                .unwrap_or_default()
        )))
    }
}

/// A user tunnel is its owner's (and root's).
fn may_touch(tunnel: &Tunnel, name: &TunnelName, caller: &Caller) -> Result<(), IpcError> {
    if caller.admin || tunnel.kind == TunnelKind::System || tunnel.owner == caller.uid {
        return Ok(());
    }
    Err(IpcError::not_authorized(format!(
        "user tunnel '{name}' belongs to uid {}; only its owner and root may change it",
        tunnel
            .owner
            .map_or_else(|| "?".to_owned(), |uid| uid.to_string())
    )))
}
