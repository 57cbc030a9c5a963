//! The batches packets travel in between the kernel and the core, one allocation each: what a
//! TUN read returns ([`TunReadBatch`]), the decrypted packets collected for one TUN write
//! ([`TunWriteBatch`], coalesced into super-packets by [`gro`] where the device takes them) and
//! the datagrams of one UDP receive ([`UdpRecvBatch`]). The devices fill and drain them
//! ([`super::tun`], [`super::udp`]); the driver hands their packets to the core one at a time.

use super::tun::gro;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use warren_tunnel::{Endpoint, MAX_DATAGRAM_LEN};

/// The largest IP packet a TUN read returns.
pub(super) const MAX_PACKET_LEN: usize = 65_535;
/// Packets one TUN read can split into (a 64 KiB super-packet of small segments), and packets
/// collected for one batched TUN write.
pub(super) const TUN_BATCH: usize = 128;
/// TUN reads served per wake-up before the loop looks at its other sources again.
pub const MAX_READS_PER_WAKE: usize = 8;
/// Receive buffers per `recvmmsg`; each holds one datagram, or many coalesced by GRO.
pub const UDP_RECV_BUFFERS: usize = 16;
/// Bytes one GSO send may carry: a UDP payload's limit (65 507 over IPv4) with room to spare.
pub(super) const MAX_GSO_BYTES: usize = 65_000;
/// Room in front of each packet of a [`TunWriteBatch`] for the virtio-net header that
/// [`gro`] fills in on a Linux device with offloads.
pub(super) const TUN_HEADROOM: usize = gro::VNET_HDR_LEN;

/// The packets of one TUN read: one packet, or the segments of a super-packet.
///
/// Buffers live in one large allocation, which the allocator maps fresh from the OS: its pages
/// stay out of the resident set until a read reaches them, so an idle tunnel costs no memory
/// for them (separate 64 KiB vectors would be zeroed, and resident, from the start).
pub struct TunReadBatch {
    /// The raw read (virtio-net header and super-packet) where the device splits packets.
    #[cfg(target_os = "linux")]
    pub(super) raw: Vec<u8>,
    /// [`TUN_BATCH`] buffers of [`MAX_PACKET_LEN`] bytes, back to back.
    pub(super) storage: Vec<u8>,
    pub(super) sizes: Vec<usize>,
    pub(super) count: usize,
}

impl TunReadBatch {
    pub(super) fn new() -> Self {
        Self {
            #[cfg(target_os = "linux")]
            raw: vec![0; TUN_HEADROOM + MAX_PACKET_LEN],
            storage: vec![0; TUN_BATCH * MAX_PACKET_LEN],
            sizes: vec![0; TUN_BATCH],
            count: 0,
        }
    }

    /// The packets read.
    pub fn packets(&self) -> impl Iterator<Item = &[u8]> {
        self.storage
            .chunks(MAX_PACKET_LEN)
            .zip(&self.sizes[..self.count])
            .map(|(buf, &len)| &buf[..len])
    }

    #[cfg(any(test, not(target_os = "linux")))]
    /// For a device that reads one packet at a time: the buffer to read it into.
    pub fn single_buffer(&mut self) -> &mut [u8] {
        &mut self.storage[..MAX_PACKET_LEN]
    }

    #[cfg(any(test, not(target_os = "linux")))]
    /// For a device that reads one packet at a time: the read put `len` bytes into
    /// [`Self::single_buffer`].
    pub fn set_single(&mut self, len: usize) {
        self.sizes[0] = len;
        self.count = 1;
    }

    /// Nothing was read (e.g. a malformed super-packet was dropped).
    #[cfg(target_os = "linux")]
    pub fn clear(&mut self) {
        self.count = 0;
    }
}

/// Decrypted packets waiting to be written to the TUN. Each buffer holds [`TUN_HEADROOM`] bytes
/// (the virtio-net header, on a device with offloads) and then a packet. When the device takes
/// coalesced packets ([`crate::dataplane::tun::TunDevice::coalescing`]), consecutive segments of
/// one TCP or UDP flow share a buffer as one super-packet ([`gro`]).
pub struct TunWriteBatch {
    bufs: Vec<Vec<u8>>,
    count: usize,
    coalescing: gro::Coalescing,
    /// The super-packet being built in the last buffer, while it can take more segments.
    open: Option<gro::Open>,
}

impl TunWriteBatch {
    pub(super) fn new(coalescing: gro::Coalescing) -> Self {
        Self {
            bufs: (0..TUN_BATCH).map(|_| Vec::new()).collect(),
            count: 0,
            coalescing,
            open: None,
        }
    }

    pub(super) fn is_full(&self) -> bool {
        self.count == self.bufs.len()
    }

    pub(super) fn push(&mut self, packet: &[u8]) {
        let segment = gro::inspect(packet, self.coalescing);
        if let (Some(seg), Some(open), Some(last)) =
            (&segment, &mut self.open, self.count.checked_sub(1))
        {
            if gro::join(open, &mut self.bufs[last], packet, seg) {
                return;
            }
        }
        self.finish_last();
        let buf = &mut self.bufs[self.count];
        buf.clear();
        buf.resize(TUN_HEADROOM, 0);
        buf.extend_from_slice(packet);
        self.open = segment.as_ref().map(gro::start);
        self.count += 1;
    }

    /// Completes the last buffer's headers (the others were completed when the next began).
    fn finish_last(&mut self) {
        let headers = self.coalescing != gro::Coalescing::Off;
        if let (true, Some(last)) = (headers, self.count.checked_sub(1)) {
            gro::finish(self.open.as_ref(), &mut self.bufs[last]);
        }
        self.open = None;
    }

    /// The packets to write, each as the device takes it: with its virtio-net header when the
    /// device coalesces, without otherwise. Empties the batch once the caller is done with them.
    pub fn drain(&mut self) -> impl Iterator<Item = &[u8]> {
        self.finish_last();
        let skip = match self.coalescing {
            gro::Coalescing::Off => TUN_HEADROOM,
            _ => 0,
        };
        let count = std::mem::take(&mut self.count);
        self.bufs[..count].iter().map(move |b| &b[skip..])
    }
}

/// Datagrams of one receive: each buffer holds one datagram, or several of `stride` bytes (the
/// last may be shorter) when the OS coalesced them. One large allocation, as in [`TunReadBatch`].
pub struct UdpRecvBatch {
    /// [`UDP_RECV_BUFFERS`] buffers of [`MAX_DATAGRAM_LEN`] bytes, back to back.
    storage: Vec<u8>,
    meta: Vec<Received>,
    count: usize,
}

/// What arrived in one buffer of a [`UdpRecvBatch`].
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// The sender.
    pub from: SocketAddr,
    /// Our address it was sent to, when the OS said (packet-info control messages); replies
    /// leave from it.
    pub local: Option<IpAddr>,
    /// Bytes in the buffer.
    pub len: usize,
    /// Size of each datagram in the buffer (= `len` for a single datagram).
    pub stride: usize,
}

impl UdpRecvBatch {
    pub(super) fn new() -> Self {
        Self {
            storage: vec![0; UDP_RECV_BUFFERS * MAX_DATAGRAM_LEN],
            meta: vec![
                Received {
                    from: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                    local: None,
                    len: 0,
                    stride: 0,
                };
                UDP_RECV_BUFFERS
            ],
            count: 0,
        }
    }

    /// The buffers, as a batched receive (`recvmmsg`) fills them.
    pub fn io_slices(&mut self) -> [io::IoSliceMut<'_>; UDP_RECV_BUFFERS] {
        let mut chunks = self.storage.chunks_mut(MAX_DATAGRAM_LEN);
        std::array::from_fn(|_| io::IoSliceMut::new(chunks.next().unwrap_or_default()))
    }

    /// A batched receive filled the first buffers, as `received` describes them.
    pub fn set_received(&mut self, received: impl IntoIterator<Item = Received>) {
        self.count = 0;
        for (slot, r) in self.meta.iter_mut().zip(received) {
            *slot = r;
            self.count += 1;
        }
    }

    /// Every datagram received, with its sender and the local address it reached.
    pub fn datagrams(&self) -> impl Iterator<Item = (Endpoint, &[u8])> {
        self.storage
            .chunks(MAX_DATAGRAM_LEN)
            .zip(&self.meta[..self.count])
            .flat_map(|(buf, m)| {
                let from = Endpoint {
                    remote: m.from,
                    local: m.local,
                };
                buf[..m.len]
                    .chunks(m.stride.max(1))
                    .map(move |datagram| (from, datagram))
            })
    }

    #[cfg(test)]
    /// For a transport that receives one datagram at a time: the buffer to receive it into.
    pub fn single_buffer(&mut self) -> &mut [u8] {
        &mut self.storage[..MAX_DATAGRAM_LEN]
    }

    #[cfg(test)]
    /// For a transport that receives one datagram at a time: `len` bytes from `from` arrived in
    /// [`Self::single_buffer`], sent to our address `local`.
    pub fn set_single(&mut self, from: SocketAddr, local: Option<IpAddr>, len: usize) {
        self.meta[0] = Received {
            from,
            local,
            len,
            stride: len,
        };
        self.count = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_batch_splits_coalesced_buffers_at_the_stride() {
        let mut batch = UdpRecvBatch::new();
        let from: SocketAddr = "198.18.0.2:51820".parse().unwrap();
        let coalesced = [vec![1u8; 100], vec![2; 100], vec![3; 50]].concat();
        batch.storage[..250].copy_from_slice(&coalesced);
        let local = Some("198.18.0.1".parse().unwrap());
        batch.meta[0] = Received {
            from,
            local,
            len: 250,
            stride: 100,
        };
        let other: SocketAddr = "198.18.0.3:1".parse().unwrap();
        batch.storage[MAX_DATAGRAM_LEN..MAX_DATAGRAM_LEN + 7].copy_from_slice(&[4; 7]);
        batch.meta[1] = Received {
            from: other,
            local: None,
            len: 7,
            stride: 7,
        };
        batch.count = 2;
        let got: Vec<(SocketAddr, Option<IpAddr>, Vec<u8>)> = batch
            .datagrams()
            .map(|(f, d)| (f.remote, f.local, d.to_vec()))
            .collect();
        assert_eq!(
            got,
            vec![
                (from, local, vec![1; 100]),
                (from, local, vec![2; 100]),
                (from, local, vec![3; 50]),
                (other, None, vec![4; 7]),
            ]
        );
    }
}
