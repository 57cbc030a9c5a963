//! Windows test builds only: the Windows data plane run for real under Wine by
//! `tests/windows/tunnel.sh` (the `windows` stage), against a Linux wireguard-go peer — the
//! Wintun adapter and session of the `tun` crate (over the FAKE `wintun.dll` of
//! `tests/windows/fakewintun/`, whose packets reach a real Linux TUN device), Warren's
//! [`crate::dataplane::tun::TunDevice`] for it, the [`Driver`] and the sans-IO core, the UAPI
//! named pipe, and Winsock UDP sockets pinned off the tunnel by `udp::egress` (which finds no
//! default route in the test's namespace, so it pins nothing). The test is `#[ignore]`d: only that
//! script runs it, with `--ignored --exact`.
//!
//! What it does not run, and why (README, "Windows under Wine", has the table):
//! - the platform layer (addresses, MTU, routes), DNS, the kill switch, hooks and the journal,
//!   i.e. the rest of `session::bring_up`: Wine 8.0 lacks `CreateUnicastIpAddressEntry`,
//!   `GetIpInterfaceEntry`, `CreateIpForwardEntry2`, `SetInterfaceDnsSettings` and WFP; the
//!   Linux side of the bridge gives the TUN its address instead;
//! - the `tun` crate's wait for the new adapter's IP interfaces: the adapter is configured
//!   exactly as [`super::create`] configures it, except that this wait is turned off, because it
//!   calls `GetIpInterfaceEntry`, a stub that ends the process under Wine 8.0;
//! - quinn-udp's batched I/O ([`Sockets`]): used when it can be set up, but under Wine 8.0
//!   `quinn_udp::UdpSocketState::new` fails (its `getsockopt(IPV6_V6ONLY)` on the IPv4 socket:
//!   10045 `WSAEOPNOTSUPP`), so [`PlainUdp`], a plain Winsock socket, stands in.
//!
//! Inputs, from the environment (the script sets them):
//! - `WARREN_WINE_TUNNEL_CONF`: the tunnel's `.conf` (its `[Interface]` key and port, its peers);
//! - `WARREN_WINE_TUNNEL_IFNAME`: the adapter's name (the bridge's TUN has the same name);
//! - `WARREN_WINE_TUNNEL_STOP`: a file whose creation ends the run (bounded: 240 s);
//! - `FAKE_WINTUN_PORT`: read by the fake `wintun.dll` itself.
//!
//! It prints `warren-wine-tunnel: up IFNAME port N` once the driver runs, and asserts at the end
//! that every peer completed a handshake and that data went both ways.

use super::imp;
use crate::dataplane::batch::UdpRecvBatch;
use crate::dataplane::udp::Sockets;
use crate::dataplane::{Control, Driver, Transport};
use anyhow::Context as _;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use warren_tunnel::{Device, Endpoint, PeerSettings};

/// The longest a run may last, whatever the script does.
const MAX_RUN: Duration = Duration::from_secs(240);

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name)
        .with_context(|| format!("{name} is not set (tests/windows/tunnel.sh sets it)"))
}

#[test]
#[ignore = "run by tests/windows/tunnel.sh under Wine, with the fake wintun.dll and a peer"]
fn wine_tunnel() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run()).unwrap();
}

async fn run() -> anyhow::Result<()> {
    let conf = env("WARREN_WINE_TUNNEL_CONF")?;
    let ifname = env("WARREN_WINE_TUNNEL_IFNAME")?;
    let stop = env("WARREN_WINE_TUNNEL_STOP")?;
    let config = warren_proto::config::parse_file(Path::new(&conf))?;

    // The adapter, as `create` makes it (wintun.dll next to this executable), minus the wait.
    super::check(&ifname)?;
    let mut tun_config = tun::Configuration::default();
    imp::configure(&mut tun_config, &ifname)?;
    tun_config.platform_config(|p| {
        p.wait_for_interfaces(false, false, Duration::ZERO);
    });
    let device = tun::create_as_async(&tun_config).with_context(|| imp::failure_hint(&ifname))?;
    let name = tun::AbstractDevice::tun_name(&*device)?;
    anyhow::ensure!(name == ifname, "the adapter is named {name}, not {ifname}");

    let mut wg = Device::new(config.interface.private_key.clone());
    for peer in &config.peers {
        let endpoint = match &peer.endpoint {
            None => None,
            Some(warren_proto::config::Endpoint::Addr(addr)) => Some(*addr),
            Some(other) => anyhow::bail!("only address endpoints here, not {other:?}"),
        };
        wg.upsert_peer(PeerSettings {
            public_key: peer.public_key,
            preshared_key: peer.preshared_key.clone(),
            endpoint,
            persistent_keepalive: peer.persistent_keepalive,
            allowed_ips: peer.allowed_ips.clone(),
        });
    }
    let port = config.interface.listen_port.unwrap_or(0);
    // The data plane's own sockets when Wine can make them; under Wine 8.0 quinn-udp's set-up
    // fails (see the module's docs), so a plain Winsock socket stands in.
    match Sockets::bind(port, None) {
        Ok(mut sockets) => {
            // A split tunnel: no family is routed by default through it.
            sockets.pin_off(&name, [false, false])?;
            drive(wg, device, sockets, &name, &stop).await
        }
        Err(e) => {
            println!("warren-wine-tunnel: Sockets::bind failed ({e:#}); plain Winsock UDP instead");
            let socket = std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, port))?;
            crate::dataplane::udp::egress::pin(
                socket2::SockRef::from(&socket),
                false,
                &name,
                false,
            )?;
            socket.set_nonblocking(true)?;
            let socket = tokio::net::UdpSocket::from_std(socket)?;
            drive(wg, device, PlainUdp(socket), &name, &stop).await
        }
    }
}

/// Plain Winsock UDP, IPv4 only, one datagram per call: the stand-in for [`Sockets`] where
/// quinn-udp cannot set its socket options (Wine 8.0).
struct PlainUdp(tokio::net::UdpSocket);

impl Transport for PlainUdp {
    async fn recv(&self, batch: &mut UdpRecvBatch) -> io::Result<()> {
        let (n, from) = self.0.recv_from(batch.single_buffer()).await?;
        batch.set_single(from, None, n);
        Ok(())
    }
    fn try_send(&self, to: Endpoint, datagrams: &[u8], segment: usize) -> io::Result<()> {
        for datagram in datagrams.chunks(segment.max(1)) {
            self.0.try_send_to(datagram, to.remote)?;
        }
        Ok(())
    }
    fn max_segments(&self) -> usize {
        1
    }
    fn port(&self) -> u16 {
        self.0.local_addr().map(|a| a.port()).unwrap_or(0)
    }
    fn set_port(&mut self, _port: u16) -> anyhow::Result<()> {
        anyhow::bail!("the Wine test's socket keeps its port")
    }
    fn fwmark(&self) -> Option<u32> {
        None
    }
    fn set_fwmark(&mut self, _mark: Option<u32>) -> io::Result<()> {
        Ok(())
    }
}

/// Runs the driver until the stop file appears, then checks its statistics.
async fn drive<S: Transport>(
    wg: Device,
    device: super::Tun,
    sockets: S,
    name: &str,
    stop: &str,
) -> anyhow::Result<()> {
    let port = sockets.port();
    let (tx, rx) = mpsc::channel(16);
    let _uapi = crate::uapi::serve(name, tx)?;
    let (control, control_rx) = mpsc::channel(4);
    let mut driver = Driver::new(wg, device, sockets, rx).with_control(control_rx);
    println!("warren-wine-tunnel: up {name} port {port}");

    let started = Instant::now();
    let stop_requested = async {
        while !Path::new(stop).exists() && started.elapsed() < MAX_RUN {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let (reply, snapshot) = oneshot::channel();
    // The driver stops once the snapshot is taken.
    let ask = async {
        stop_requested.await;
        control.send(Control::Stats(reply)).await.ok();
        snapshot.await
    };
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (result, snapshot) = tokio::join!(
        driver.run(async {
            stop_rx.await.ok();
        }),
        async {
            let snapshot = ask.await;
            stop_tx.send(()).ok();
            snapshot
        }
    );
    result?;
    let snapshot = snapshot.context("the driver gave no statistics")?;
    anyhow::ensure!(
        started.elapsed() < MAX_RUN,
        "no stop request within {MAX_RUN:?}"
    );
    for peer in &snapshot.peers {
        println!(
            "warren-wine-tunnel: peer {} handshake {:?} rx {} tx {}",
            peer.public_key, peer.last_handshake, peer.rx_bytes, peer.tx_bytes
        );
        anyhow::ensure!(
            peer.last_handshake.is_some(),
            "no handshake with {}",
            peer.public_key
        );
        anyhow::ensure!(peer.rx_bytes > 0 && peer.tx_bytes > 0, "no data both ways");
    }
    anyhow::ensure!(!snapshot.peers.is_empty(), "the tunnel has no peer");
    Ok(())
}
