//! In-memory doubles of the data plane's devices, for tests that run the real driver without
//! root (as wireguard-go's `tuntest`): a TUN made of channels ([`MemTun`]) and a UDP "network"
//! ([`MemNetwork`]) whose sockets ([`MemSocket`]) deliver datagrams by address.

use super::batch::{TunReadBatch, TunWriteBatch, UdpRecvBatch};
use super::tun::TunDevice;
use super::udp::Transport;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::Mutex as AsyncMutex;

/// A TUN device whose packets come from, and go to, channels held by the test.
pub struct MemTun {
    inbound: AsyncMutex<UnboundedReceiver<Vec<u8>>>,
    written: UnboundedSender<Vec<u8>>,
}

impl MemTun {
    /// The device, the sender of packets it "reads" (what the host's stack would send into the
    /// tunnel), and the receiver of the packets the driver writes to it.
    pub fn new() -> (Self, UnboundedSender<Vec<u8>>, UnboundedReceiver<Vec<u8>>) {
        let (to_tun, inbound) = mpsc::unbounded_channel();
        let (written, from_tun) = mpsc::unbounded_channel();
        let tun = Self {
            inbound: AsyncMutex::new(inbound),
            written,
        };
        (tun, to_tun, from_tun)
    }
}

impl TunDevice for MemTun {
    async fn recv(&self, batch: &mut TunReadBatch) -> io::Result<()> {
        let packet = self.inbound.lock().await.recv().await;
        let packet = packet.ok_or_else(|| io::Error::other("TUN closed"))?;
        batch.single_buffer()[..packet.len()].copy_from_slice(&packet);
        batch.set_single(packet.len());
        Ok(())
    }
    fn try_recv(&self, batch: &mut TunReadBatch) -> io::Result<()> {
        let packet = match self.inbound.try_lock().map(|mut rx| rx.try_recv()) {
            Ok(Ok(packet)) => packet,
            _ => return Err(io::ErrorKind::WouldBlock.into()),
        };
        batch.single_buffer()[..packet.len()].copy_from_slice(&packet);
        batch.set_single(packet.len());
        Ok(())
    }
    fn send(&self, batch: &mut TunWriteBatch) -> io::Result<()> {
        for packet in batch.drain() {
            let _ = self.written.send(packet.to_vec());
        }
        Ok(())
    }
}

type Wire = UnboundedSender<(SocketAddr, Vec<u8>)>;

/// A UDP network in memory: every socket made from it reaches every other one by address.
#[derive(Clone, Default)]
pub struct MemNetwork {
    wires: Arc<Mutex<HashMap<SocketAddr, Wire>>>,
}

impl MemNetwork {
    /// A socket bound to `addr` on this network.
    pub fn socket(&self, addr: SocketAddr) -> MemSocket {
        let (wire, inbound) = mpsc::unbounded_channel();
        self.wires.lock().unwrap().insert(addr, wire);
        MemSocket {
            addr,
            network: self.clone(),
            inbound: AsyncMutex::new(inbound),
            fwmark: None,
        }
    }
}

/// A socket of a [`MemNetwork`]. Its port cannot change; GSO sends of up to four datagrams
/// arrive as separate datagrams, as the kernel delivers them.
pub struct MemSocket {
    addr: SocketAddr,
    network: MemNetwork,
    inbound: AsyncMutex<UnboundedReceiver<(SocketAddr, Vec<u8>)>>,
    fwmark: Option<u32>,
}

impl Transport for MemSocket {
    async fn recv(&self, batch: &mut UdpRecvBatch) -> io::Result<()> {
        let got = self.inbound.lock().await.recv().await;
        let (from, datagram) = got.ok_or_else(|| io::Error::other("network gone"))?;
        batch.single_buffer()[..datagram.len()].copy_from_slice(&datagram);
        batch.set_single(from, datagram.len());
        Ok(())
    }
    fn try_send(&self, to: SocketAddr, datagrams: &[u8], segment: usize) -> io::Result<()> {
        if let Some(wire) = self.network.wires.lock().unwrap().get(&to) {
            for datagram in datagrams.chunks(segment) {
                let _ = wire.send((self.addr, datagram.to_vec()));
            }
        }
        Ok(())
    }
    fn max_segments(&self) -> usize {
        4
    }
    fn port(&self) -> u16 {
        self.addr.port()
    }
    fn set_port(&mut self, _port: u16) -> anyhow::Result<()> {
        anyhow::bail!("fixed in memory")
    }
    fn fwmark(&self) -> Option<u32> {
        self.fwmark
    }
    fn set_fwmark(&mut self, mark: Option<u32>) -> io::Result<()> {
        self.fwmark = mark;
        Ok(())
    }
}
