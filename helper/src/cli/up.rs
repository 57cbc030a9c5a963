//! `warren-helper up <file.conf>`: a tunnel in the foreground, like `wireguard-go -f` followed
//! by `wg-quick up`, and the reverse on SIGINT/SIGTERM.
//!
//! Order matters for "bad input changes nothing": the file is parsed, the network plan computed
//! and host names resolved *before* the first change to the system. Then: PreUp hooks (only
//! with `--run-hooks`), the TUN, the UDP sockets, addresses/MTU/routes (rolled back by the
//! platform layer if any step fails), the UAPI socket, PostUp hooks. Teardown runs the mirror
//! image, and runs whatever part of the setup had happened when an error struck.

use crate::driver::{Driver, Sockets, Transport as _};
use crate::platform::{self, AppliedNetwork};
use crate::uapi;
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::Path;
use tokio::sync::mpsc;
use warren_proto::config::{Endpoint, TunnelConfig};
use warren_tunnel::{Device, PeerSettings};

/// Longest Linux interface name (IFNAMSIZ - 1).
const MAX_IFNAME_LEN: usize = 15;

pub async fn run(path: &Path, interface: Option<String>, run_hooks: bool) -> anyhow::Result<()> {
    let config = warren_proto::config::parse_file(path)?;
    let ifname = match interface {
        Some(name) => name,
        None => interface_name_from_path(path)?,
    };
    check_interface_name(&ifname)?;
    let plan = platform::plan(&config, &ifname)
        .with_context(|| format!("{}: cannot bring up {ifname}", path.display()))?;
    let hooks = &config.interface.hooks;
    if !hooks.is_empty() && !run_hooks {
        tracing::warn!(
            "{}: PreUp/PostUp/PreDown/PostDown commands are NOT run (they would run as root); \
             pass --run-hooks to run them",
            path.display()
        );
    }
    let peers = resolve_peers(&config, path).await?;

    // Installed before any change, so a signal during setup is seen, not fatal half-way.
    let shutdown = shutdown_signal()?;

    // From here on the system changes.
    if run_hooks {
        run_hook_list("PreUp", &hooks.pre_up, &ifname).await?;
    }
    let tun = create_tun(&ifname)?;
    let sockets = Sockets::bind(
        config.interface.listen_port.unwrap_or(0),
        config.interface.fwmark,
    )?;
    let mut device = Device::new(config.interface.private_key.clone());
    for peer in peers {
        device.upsert_peer(peer);
    }
    let applied = platform::apply(&plan).await?;
    let (tx, rx) = mpsc::channel(16);
    let uapi_socket = match uapi::serve(&ifname, tx) {
        Ok(socket) => socket,
        Err(e) => {
            undo(applied).await;
            return Err(e);
        }
    };
    let port = sockets.port();
    let mut driver = Driver::new(device, tun, sockets, rx);
    let result = async {
        if run_hooks {
            run_hook_list("PostUp", &hooks.post_up, &ifname).await?;
        }
        tracing::info!(
            "{ifname} is up: {} address(es), {} route(s), MTU {}, listening on UDP port {port}",
            plan.addresses.len(),
            plan.routes.len(),
            plan.mtu,
        );
        driver.run(shutdown).await
    }
    .await;

    tracing::info!("taking {ifname} down");
    if run_hooks {
        if let Err(e) = run_hook_list("PreDown", &hooks.pre_down, &ifname).await {
            tracing::warn!("{e:#}");
        }
    }
    drop(uapi_socket);
    undo(applied).await;
    drop(driver);
    if run_hooks {
        if let Err(e) = run_hook_list("PostDown", &hooks.post_down, &ifname).await {
            tracing::warn!("{e:#}");
        }
    }
    result
}

async fn undo(applied: AppliedNetwork) {
    if let Err(e) = applied.undo().await {
        tracing::warn!("failed to undo some network changes: {e:#}");
    }
}

/// `wg0.conf` → `wg0`, as wg-quick names interfaces.
fn interface_name_from_path(path: &Path) -> anyhow::Result<String> {
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

fn check_interface_name(name: &str) -> anyhow::Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_=+.-".contains(c);
    if name.is_empty() || name.len() > MAX_IFNAME_LEN || !name.chars().all(ok_char) {
        bail!(
            "invalid interface name {name:?}: use 1 to {MAX_IFNAME_LEN} characters from \
             a-z A-Z 0-9 _ = + . - (as wg-quick does)"
        );
    }
    Ok(())
}

/// The peers as the core wants them, with host names resolved now (once, at start).
async fn resolve_peers(config: &TunnelConfig, path: &Path) -> anyhow::Result<Vec<PeerSettings>> {
    let mut peers = Vec::with_capacity(config.peers.len());
    for peer in &config.peers {
        let endpoint = match &peer.endpoint {
            None => None,
            Some(Endpoint::Addr(addr)) => Some(*addr),
            Some(Endpoint::Host { host, port }) => {
                Some(resolve(host, *port).await.with_context(|| {
                    format!(
                        "{}: failed to resolve the endpoint {host}:{port} of peer {}",
                        path.display(),
                        peer.public_key
                    )
                })?)
            }
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

async fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    // Prefer IPv4 like wg(8) does when both exist: it works on more networks.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .context("the name has no addresses")
}

fn create_tun(ifname: &str) -> anyhow::Result<tun::AsyncDevice> {
    let mut config = tun::Configuration::default();
    config.tun_name(ifname);
    tun::create_as_async(&config).with_context(|| {
        format!(
            "failed to create TUN interface {ifname} (does it exist already? are you root, \
             and is /dev/net/tun available?)"
        )
    })
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

/// Completes on the first SIGINT or SIGTERM.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
