//! `warren-helper up`: bring a tunnel up, in one of two ways.
//!
//! - Through the daemon (the default): `up NAME` brings up the system tunnel `NAME`
//!   (`/etc/warren/tunnels/NAME.conf`); `up FILE` (a path: it contains `/` or ends in `.conf`)
//!   reads the wg-quick file here and hands it to the daemon as a *user tunnel*, named after the
//!   file (or `--name`), kept in the daemon's memory only. It returns once the tunnel is set up
//!   (state `connecting`), or once it waits for an endpoint's host name to resolve (state
//!   `waiting for network`: it comes up by itself, retrying with backoff); `--wait SECS` also
//!   waits for the first handshake (`connected`), exit code 8 if none comes in time. `--kill-switch`/`--allow-lan` set the tunnel's options
//!   (persisted for a system tunnel; root only).
//! - In the foreground (`--foreground FILE`): this process is the tunnel, like `wireguard-go -f`
//!   followed by `wg-quick up`, until SIGINT/SIGTERM, then everything is undone
//!   ([`crate::session`]); no daemon involved. A host name that does not resolve fails at once
//!   here (exit code 9), as with wg-quick: a script running it learns at once; waiting for the
//!   network is the daemon's job. `--interface`, `--state-dir` and `--run-hooks`
//!   apply to this mode only.

use super::client;
use crate::platform::firewall::KillSwitchMode;
use crate::session::{self, Prepared, Spec};
use anyhow::{bail, Context as _};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use warren_proto::ipc::{
    Event, EventTopic, KillSwitch, Request, Response, TunnelName, TunnelOptions, TunnelState,
};

/// `up`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// A system tunnel's name, or a wg-quick .conf file (a path containing `/` or ending in
    /// `.conf`).
    target: String,
    /// Run the tunnel in this process until SIGINT/SIGTERM instead of in the daemon (needs a
    /// file).
    #[arg(long)]
    pub foreground: bool,
    /// With --foreground: the interface name [default: the file name without `.conf`].
    #[arg(long, short = 'i', value_name = "NAME")]
    interface: Option<String>,
    /// With --foreground: run the file's PreUp/PostUp/PreDown/PostDown commands (as root).
    #[arg(long)]
    run_hooks: bool,
    /// With --foreground: where the journal of system changes lives [default:
    /// $WARREN_STATE_DIR, else /var/lib/warren].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Block all traffic that does not go through the tunnel: on, off, or auto (on for full
    /// tunnels, as wireguard-windows does) [default: auto, or the system tunnel's setting].
    #[arg(long, value_name = "MODE")]
    kill_switch: Option<KillSwitchMode>,
    /// With the kill switch on, still allow the local network (private ranges, link-local).
    #[arg(long)]
    allow_lan: bool,
    /// For a file through the daemon: the tunnel's name [default: the file name without
    /// `.conf`].
    #[arg(long, value_name = "NAME", conflicts_with = "foreground")]
    name: Option<TunnelName>,
    /// Through the daemon: also wait up to SECS for the first handshake (exit code 8 if none).
    #[arg(
        long,
        value_name = "SECS",
        num_args = 0..=1,
        default_missing_value = "30",
        conflicts_with = "foreground"
    )]
    wait: Option<u64>,
}

/// No handshake within `--wait`'s time.
#[derive(Debug, thiserror::Error)]
#[error(
    "no handshake within {secs} s; the tunnel stays up and keeps trying (see `warren-helper \
     status`, or take it down with `warren-helper down`)"
)]
pub struct NoHandshake {
    /// The time waited.
    pub secs: u64,
}

/// Runs `up` (see the module docs).
pub fn run(args: Args, socket: PathBuf) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.foreground {
        runtime.block_on(foreground(args))
    } else {
        runtime.block_on(through_daemon(args, socket))
    }
}

/// Whether `target` names a file rather than a system tunnel.
fn is_file(target: &str) -> bool {
    target.contains('/') || target.contains(std::path::MAIN_SEPARATOR) || target.ends_with(".conf")
}

async fn foreground(args: Args) -> anyhow::Result<()> {
    let path = Path::new(&args.target);
    let config = warren_proto::config::parse_file(path)?;
    let ifname = match args.interface {
        Some(name) => name,
        None => session::interface_name_from_path(path)?,
    };
    let spec = Spec {
        config,
        ifname,
        source: path.display().to_string(),
        run_hooks: args.run_hooks,
        state_dir: args.state_dir.unwrap_or_else(crate::sys::paths::state_dir),
        kill_switch: args.kill_switch.unwrap_or_default(),
        allow_lan: args.allow_lan,
    };
    let prepared = Prepared::new(spec).await?;
    // Installed before any change, so a signal during setup is seen, not fatal half-way.
    let shutdown = crate::sys::shutdown::requested()?;
    Ok(session::run(prepared, shutdown, |_| {}).await?)
}

async fn through_daemon(args: Args, socket: PathBuf) -> anyhow::Result<()> {
    for (given, flag) in [
        (args.interface.is_some(), "--interface"),
        (args.state_dir.is_some(), "--state-dir"),
        (args.run_hooks, "--run-hooks"),
    ] {
        if given {
            bail!(
                "{flag} applies to `up --foreground FILE` only; a tunnel in the daemon is named \
                 after its file or --name, and the daemon has its own state directory"
            );
        }
    }
    let file = is_file(&args.target);
    let (name, config) = if file {
        let path = Path::new(&args.target);
        let config = warren_proto::config::parse_file(path)?;
        let name = match args.name {
            Some(name) => name,
            None => TunnelName::from_conf_path(path).with_context(|| {
                format!("cannot name a tunnel after {}; pass --name", path.display())
            })?,
        };
        (name, Some(config))
    } else {
        if args.name.is_some() {
            bail!("--name applies to a file; a system tunnel is brought up by its own name");
        }
        let name = TunnelName::new(args.target.as_str()).with_context(|| {
            format!(
                "'{}' is neither a system tunnel's name nor a file (a file's path contains `/` \
                 or ends in `.conf`)",
                args.target
            )
        })?;
        (name, None)
    };

    let daemon = client::connect(&socket).await?;
    let mut events = daemon.events();
    if args.wait.is_some() {
        let subscribe = Request::Subscribe {
            topics: vec![EventTopic::State],
        };
        client::request(&daemon, subscribe, "subscribe to state changes").await?;
    }
    let request = match config {
        Some(config) => Request::ConnectUser {
            name: name.clone(),
            config,
            options: TunnelOptions {
                kill_switch: args.kill_switch.map(proto_kill_switch).unwrap_or_default(),
                allow_lan: args.allow_lan,
            },
        },
        None => {
            if args.kill_switch.is_some() || args.allow_lan {
                let mut options = current_options(&daemon, &name).await?;
                if let Some(mode) = args.kill_switch {
                    options.kill_switch = proto_kill_switch(mode);
                }
                options.allow_lan = args.allow_lan;
                let set = Request::SetOptions {
                    name: name.clone(),
                    options,
                };
                client::request(&daemon, set, &format!("set the options of '{name}'")).await?;
            }
            Request::ConnectSystem { name: name.clone() }
        }
    };
    client::request(&daemon, request, &format!("bring '{name}' up")).await?;
    let Some(secs) = args.wait else {
        match current_state(&daemon, &name).await {
            Some(TunnelState::WaitingForNetwork { reason }) => println!(
                "{name}: waiting for network ({reason}); it comes up by itself once the name \
                 resolves (see `warren-helper status {name}`)"
            ),
            _ => {
                println!("{name}: up, waiting for a handshake (see `warren-helper status {name}`)")
            }
        }
        return Ok(());
    };
    let waited = tokio::time::timeout(Duration::from_secs(secs), async {
        loop {
            match events.recv().await {
                Ok(Event::TunnelState { name: n, state }) if n == name => match state {
                    // Reconnecting: it was connected, and then the network changed.
                    TunnelState::Connected { .. } | TunnelState::Reconnecting { .. } => {
                        return Ok(())
                    }
                    TunnelState::Error { reason } => bail!("'{name}' failed: {reason}"),
                    TunnelState::Disconnected | TunnelState::Disconnecting => {
                        bail!("'{name}' was taken down before a handshake")
                    }
                    TunnelState::Connecting => {}
                    // Not a failure: it comes up by itself once the name resolves.
                    TunnelState::WaitingForNetwork { reason } => {
                        eprintln!("{name}: waiting for network: {reason}");
                    }
                },
                Ok(Event::HelperStopping) => bail!("the daemon is stopping"),
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => bail!("the connection to the daemon closed"),
            }
        }
    })
    .await;
    match waited {
        Ok(result) => {
            result?;
            println!("{name}: connected");
            Ok(())
        }
        Err(_) => Err(NoHandshake { secs }.into()),
    }
}

/// `name`'s state as the daemon has it now, if it can tell.
async fn current_state(
    daemon: &warren_proto::ipc::Client,
    name: &TunnelName,
) -> Option<TunnelState> {
    let request = Request::Status {
        name: Some(name.clone()),
    };
    match client::request(daemon, request, &format!("read the state of '{name}'")).await {
        Ok(Response::Status { tunnels }) => tunnels.into_iter().next().map(|t| t.state),
        _ => None,
    }
}

/// A system tunnel's options as the daemon has them.
async fn current_options(
    daemon: &warren_proto::ipc::Client,
    name: &TunnelName,
) -> anyhow::Result<TunnelOptions> {
    let request = Request::Status {
        name: Some(name.clone()),
    };
    match client::request(daemon, request, &format!("read the options of '{name}'")).await? {
        Response::Status { tunnels } => Ok(tunnels
            .into_iter()
            .next()
            .map(|t| t.options)
            .unwrap_or_default()),
        other => Err(client::unexpected(&other)),
    }
}

fn proto_kill_switch(mode: KillSwitchMode) -> KillSwitch {
    match mode {
        KillSwitchMode::On => KillSwitch::On,
        KillSwitchMode::Off => KillSwitch::Off,
        KillSwitchMode::Auto => KillSwitch::Auto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_told_from_names() {
        assert!(is_file("/etc/wireguard/wg0.conf"));
        assert!(is_file("./office"));
        assert!(is_file("office.conf"));
        assert!(!is_file("office"));
        assert!(!is_file("wg0"));
    }
}
