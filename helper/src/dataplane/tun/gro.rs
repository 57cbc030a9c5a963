//! Receive-side coalescing for the Linux TUN device (the userspace half of "GRO"): consecutive
//! decrypted segments of one TCP or UDP flow are joined into one super-packet, written with a
//! virtio-net header that tells the kernel how it is cut (`gso_size`) and that its transport
//! checksum is partial. The kernel then hands the socket one large segment instead of ~45
//! small ones, which is most of the receiving side's cost.
//!
//! A packet joins the super-packet being built (always the last one of the batch) only when the
//! result is exactly what the sender's stack could have produced with segmentation offload:
//! - same addresses, ports, IP version and header sizes; IPv4 without options or fragments, same
//!   TOS, TTL and DF; IPv6 without extension headers, same traffic class, flow label and hop
//!   limit;
//! - TCP: same ACK number and options, only ACK (and PSH on the last segment) set, the sequence
//!   number right after the previous segment's;
//! - every segment but the last exactly `gso_size` long, at most [`MAX_SEGMENTS`] of them, the
//!   whole at most 65 535 bytes;
//! - its own transport checksum valid: the kernel trusts a partial checksum, so a segment that
//!   arrived broken is written alone and the kernel drops it, as it would without coalescing.
//!
//! Anything else is written as it came, with an all-zero header ("one packet, checksums done").
//! This module is plain byte handling, with no I/O; [`crate::dataplane::driver`] decides when to
//! use it.

/// Bytes of the virtio-net header in front of every packet written to an offload TUN device.
pub const VNET_HDR_LEN: usize = 10;
/// Segments per super-packet at most (the kernel's UDP GSO limit; TCP takes more).
pub const MAX_SEGMENTS: usize = 64;
/// The largest IP packet, a super-packet included.
const MAX_SUPER_PACKET: usize = 65_535;

const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_ACK: u8 = 0x10;
const TCP_PSH: u8 = 0x08;
const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
const VIRTIO_NET_HDR_GSO_TCPV6: u8 = 4;
const VIRTIO_NET_HDR_GSO_UDP_L4: u8 = 5;

/// Which super-packets the device takes: TCP ones whenever it has the virtio-net header, UDP
/// ones only when the kernel also granted UDP segmentation offload (Linux 6.2 and later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coalescing {
    /// Plain packets only, without a virtio-net header.
    Off,
    /// TCP super-packets; everything else alone.
    // Only the Linux device takes super-packets: elsewhere (macOS utun, Windows wintun) nothing
    // but the tests constructs this, and `expect` says so until that changes.
    #[cfg_attr(
        all(not(target_os = "linux"), not(test)),
        expect(dead_code, reason = "constructed only by the Linux TUN device")
    )]
    Tcp,
    /// TCP and UDP super-packets.
    TcpUdp,
}

/// The super-packet under construction: what a further segment must match.
#[derive(Debug, Clone, Copy)]
pub struct Open {
    v6: bool,
    tcp: bool,
    /// IP header length.
    ip_len: usize,
    /// Transport header length.
    l4_len: usize,
    /// Payload bytes of every segment but the last.
    gso_size: usize,
    segments: usize,
    /// TCP: the sequence number the next segment must carry.
    next_seq: u32,
    /// A short segment (or a PSH) ended it: nothing more joins.
    closed: bool,
    /// The last segment had PSH: the super-packet carries it.
    psh: bool,
}

/// Reads `packet`'s headers and checks its transport checksum, once per packet: the
/// [`Segment`] that [`join`] and [`start`] take, or `None` when `packet` cannot be coalesced
/// under `coalescing` (then it is written alone). With [`Coalescing::Off`] nothing is read.
pub fn inspect(packet: &[u8], coalescing: Coalescing) -> Option<Segment> {
    if coalescing == Coalescing::Off {
        return None;
    }
    let segment = parse(packet)?;
    (segment.tcp || coalescing == Coalescing::TcpUdp).then_some(segment)
}

/// Starts a super-packet whose first segment is `h`.
pub fn start(h: &Segment) -> Open {
    Open {
        v6: h.v6,
        tcp: h.tcp,
        ip_len: h.ip_len,
        l4_len: h.l4_len,
        gso_size: h.payload,
        segments: 1,
        next_seq: h.seq.wrapping_add(h.payload as u32),
        // PSH ends a TCP super-packet: the receiver should see the data now.
        closed: h.flags & TCP_PSH != 0,
        psh: h.flags & TCP_PSH != 0,
    }
}

/// Appends `packet`'s payload to the super-packet in `buf` (virtio-net header room, then the
/// first segment's headers and every payload so far) if it may join; `false` leaves both as
/// they were. `h` is what [`inspect`] read of `packet`.
pub fn join(open: &mut Open, buf: &mut Vec<u8>, packet: &[u8], h: &Segment) -> bool {
    if open.closed || open.segments >= MAX_SEGMENTS {
        return false;
    }
    let head = &buf[VNET_HDR_LEN..];
    let (ip, l4) = (open.ip_len, open.l4_len);
    let same_shape = h.v6 == open.v6 && h.tcp == open.tcp && h.ip_len == ip && h.l4_len == l4;
    if !same_shape
        || h.payload > open.gso_size
        || head.len() + h.payload > MAX_SUPER_PACKET
        || !same_ip_fields(head, packet, open.v6)
        // Ports.
        || head[ip..ip + 4] != packet[ip..ip + 4]
    {
        return false;
    }
    if open.tcp
        && (h.seq != open.next_seq
            // ACK number, then the options.
            || head[ip + 8..ip + 12] != packet[ip + 8..ip + 12]
            || head[ip + 20..ip + l4] != packet[ip + 20..ip + l4])
    {
        return false;
    }
    buf.extend_from_slice(&packet[ip + l4..]);
    open.segments += 1;
    open.next_seq = h.seq.wrapping_add(h.payload as u32);
    if h.payload < open.gso_size || h.flags & TCP_PSH != 0 {
        open.closed = true;
    }
    open.psh |= h.flags & TCP_PSH != 0;
    true
}

/// Completes the packet in `buf` for writing: the virtio-net header, and for a super-packet its
/// IP lengths, IPv4 header checksum, PSH, UDP length and the partial transport checksum.
pub fn finish(open: Option<&Open>, buf: &mut [u8]) {
    let (header, packet) = buf.split_at_mut(VNET_HDR_LEN);
    header.fill(0);
    let Some(open) = open.filter(|o| o.segments > 1) else {
        return;
    };
    let (ip, l4) = (open.ip_len, open.l4_len);
    let total = packet.len();
    if open.v6 {
        packet[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
    } else {
        packet[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        packet[10..12].fill(0);
        let sum = !fold(sum_words(&packet[..20], 0));
        packet[10..12].copy_from_slice(&sum.to_be_bytes());
    }
    let l4_total = total - ip;
    let csum_offset = if open.tcp {
        if open.psh {
            packet[ip + 13] |= TCP_PSH;
        }
        16
    } else {
        packet[ip + 4..ip + 6].copy_from_slice(&(l4_total as u16).to_be_bytes());
        6
    };
    // CHECKSUM_PARTIAL: the field holds the pseudo-header sum, not inverted; the rest is added
    // (or trusted) by the kernel.
    let proto = if open.tcp { PROTO_TCP } else { PROTO_UDP };
    let pseudo = fold(pseudo_sum(packet, open.v6, proto, l4_total));
    packet[ip + csum_offset..ip + csum_offset + 2].copy_from_slice(&pseudo.to_be_bytes());

    let gso_type = match (open.tcp, open.v6) {
        (true, false) => VIRTIO_NET_HDR_GSO_TCPV4,
        (true, true) => VIRTIO_NET_HDR_GSO_TCPV6,
        (false, _) => VIRTIO_NET_HDR_GSO_UDP_L4,
    };
    // struct virtio_net_hdr: flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, in
    // the host's byte order (the TUN default).
    header[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    header[1] = gso_type;
    header[2..4].copy_from_slice(&((ip + l4) as u16).to_ne_bytes());
    header[4..6].copy_from_slice(&(open.gso_size as u16).to_ne_bytes());
    header[6..8].copy_from_slice(&(ip as u16).to_ne_bytes());
    header[8..10].copy_from_slice(&(csum_offset as u16).to_ne_bytes());
}

/// What [`start`] and [`join`] need to know of a packet, from [`inspect`].
#[derive(Debug)]
pub struct Segment {
    v6: bool,
    tcp: bool,
    ip_len: usize,
    l4_len: usize,
    payload: usize,
    seq: u32,
    flags: u8,
}

/// The headers of a TCP or UDP packet that may be coalesced, with a valid checksum; `None` for
/// anything else.
fn parse(p: &[u8]) -> Option<Segment> {
    let (v6, ip_len, proto) = match p.first()? >> 4 {
        4 if p.len() >= 20 => {
            let no_options = p[0] & 0x0f == 5;
            let whole = usize::from(u16::from_be_bytes([p[2], p[3]])) == p.len();
            // More-fragments flag and fragment offset both zero.
            let unfragmented = u16::from_be_bytes([p[6], p[7]]) & 0x3fff == 0;
            (no_options && whole && unfragmented).then_some((false, 20, p[9]))?
        }
        6 if p.len() >= 40 => {
            let whole = usize::from(u16::from_be_bytes([p[4], p[5]])) + 40 == p.len();
            whole.then_some((true, 40, p[6]))?
        }
        _ => return None,
    };
    let (tcp, l4_len, seq, flags) = match proto {
        PROTO_TCP if p.len() >= ip_len + 20 => {
            let len = usize::from(p[ip_len + 12] >> 4) * 4;
            let flags = p[ip_len + 13];
            if len < 20
                || p.len() < ip_len + len
                || (flags != TCP_ACK && flags != TCP_ACK | TCP_PSH)
            {
                return None;
            }
            let seq =
                u32::from_be_bytes([p[ip_len + 4], p[ip_len + 5], p[ip_len + 6], p[ip_len + 7]]);
            (true, len, seq, flags)
        }
        PROTO_UDP if p.len() >= ip_len + 8 => {
            let len = usize::from(u16::from_be_bytes([p[ip_len + 4], p[ip_len + 5]]));
            // An IPv4 UDP checksum of 0 means "none": nothing to keep partial.
            let no_checksum = p[ip_len + 6..ip_len + 8] == [0, 0];
            if len != p.len() - ip_len || no_checksum {
                return None;
            }
            (false, 8, 0, 0)
        }
        _ => return None,
    };
    let payload = p.len() - ip_len - l4_len;
    if payload == 0 {
        return None;
    }
    let l4_total = p.len() - ip_len;
    let proto = if tcp { PROTO_TCP } else { PROTO_UDP };
    let sum = sum_words(&p[ip_len..], pseudo_sum(p, v6, proto, l4_total));
    (fold(sum) == 0xffff).then_some(Segment {
        v6,
        tcp,
        ip_len,
        l4_len,
        payload,
        seq,
        flags,
    })
}

/// The IP header fields that must be equal for two segments of one super-packet.
fn same_ip_fields(a: &[u8], b: &[u8], v6: bool) -> bool {
    if v6 {
        // Version, traffic class, flow label; hop limit; both addresses.
        a[..4] == b[..4] && a[7] == b[7] && a[8..40] == b[8..40]
    } else {
        // TOS; DF; TTL; both addresses.
        a[1] == b[1] && a[6] & 0x40 == b[6] & 0x40 && a[8] == b[8] && a[12..20] == b[12..20]
    }
}

/// The transport pseudo-header's sum (addresses, protocol, transport length).
fn pseudo_sum(p: &[u8], v6: bool, proto: u8, l4_len: usize) -> u64 {
    let addresses = if v6 { &p[8..40] } else { &p[12..20] };
    sum_words(addresses, u64::from(proto) + l4_len as u64)
}

/// Adds `data` as big-endian 16-bit words (a trailing odd byte padded with zero) to `initial`,
/// without folding. Four bytes at a time: a u64 cannot overflow for any IP packet.
fn sum_words(data: &[u8], initial: u64) -> u64 {
    let mut sum = initial;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        sum += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    sum + u64::from(u32::from_be_bytes(tail))
}

/// Folds a sum of words into 16 bits (ones' complement addition).
fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TCP/IPv4 segment from 198.19.0.1:5000 to 198.19.0.2:5201 with a valid checksum.
    fn tcp4(seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, PROTO_TCP, 0, 0];
        p.extend_from_slice(&[198, 19, 0, 1, 198, 19, 0, 2]);
        let total = (20 + 20 + payload.len()) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        let c = !fold(sum_words(&p, 0));
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(&5000u16.to_be_bytes());
        p.extend_from_slice(&5201u16.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&77u32.to_be_bytes()); // ack
        p.extend_from_slice(&[0x50, flags, 0x01, 0x00, 0, 0, 0, 0]);
        p.extend_from_slice(payload);
        set_l4_checksum(&mut p, 20, PROTO_TCP, 16);
        p
    }

    /// A UDP/IPv6 datagram from [fd00:2::1]:4000 to [fd00:2::2]:4001 with a valid checksum.
    fn udp6(payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, PROTO_UDP, 64];
        p[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[0xfd, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&4000u16.to_be_bytes());
        p.extend_from_slice(&4001u16.to_be_bytes());
        p.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(payload);
        set_l4_checksum(&mut p, 40, PROTO_UDP, 6);
        p
    }

    fn set_l4_checksum(p: &mut [u8], ip: usize, proto: u8, offset: usize) {
        let v6 = p[0] >> 4 == 6;
        p[ip + offset..ip + offset + 2].fill(0);
        let sum = sum_words(&p[ip..], pseudo_sum(p, v6, proto, p.len() - ip));
        p[ip + offset..ip + offset + 2].copy_from_slice(&(!fold(sum)).to_be_bytes());
    }

    /// Coalesces `packets` as the driver does; returns each written buffer.
    fn coalesce(packets: &[Vec<u8>]) -> Vec<Vec<u8>> {
        coalesce_with(packets, Coalescing::TcpUdp)
    }

    fn coalesce_with(packets: &[Vec<u8>], coalescing: Coalescing) -> Vec<Vec<u8>> {
        let mut out: Vec<(Vec<u8>, Option<Open>)> = Vec::new();
        for p in packets {
            let segment = inspect(p, coalescing);
            if let (Some(seg), Some((buf, Some(open)))) = (&segment, out.last_mut()) {
                if join(open, buf, p, seg) {
                    continue;
                }
            }
            let mut buf = vec![0; VNET_HDR_LEN];
            buf.extend_from_slice(p);
            out.push((buf, segment.as_ref().map(start)));
        }
        out.into_iter()
            .map(|(mut buf, open)| {
                finish(open.as_ref(), &mut buf);
                buf
            })
            .collect()
    }

    fn hdr(buf: &[u8]) -> (u8, u8, u16, u16, u16, u16) {
        let h = |i: usize| u16::from_ne_bytes([buf[i], buf[i + 1]]);
        (buf[0], buf[1], h(2), h(4), h(6), h(8))
    }

    #[test]
    fn consecutive_tcp_segments_become_one_super_packet() {
        let packets = [
            tcp4(1000, TCP_ACK, &[1; 100]),
            tcp4(1100, TCP_ACK, &[2; 100]),
            tcp4(1200, TCP_ACK | TCP_PSH, &[3; 60]),
        ];
        let out = coalesce(&packets);
        assert_eq!(out.len(), 1);
        let buf = &out[0];
        assert_eq!(hdr(buf), (1, VIRTIO_NET_HDR_GSO_TCPV4, 40, 100, 20, 16));
        let p = &buf[VNET_HDR_LEN..];
        assert_eq!(p.len(), 40 + 260);
        assert_eq!(u16::from_be_bytes([p[2], p[3]]), 300, "IPv4 total length");
        assert_eq!(fold(sum_words(&p[..20], 0)), 0xffff, "IPv4 header checksum");
        assert_eq!(p[33], TCP_ACK | TCP_PSH, "the last segment's PSH is kept");
        let pseudo = fold(pseudo_sum(p, false, PROTO_TCP, 280));
        assert_eq!(
            u16::from_be_bytes([p[36], p[37]]),
            pseudo,
            "partial checksum"
        );
        assert_eq!(&p[40..140], &[1; 100][..]);
        assert_eq!(&p[240..], &[3; 60][..]);
    }

    #[test]
    fn segments_that_must_not_join_are_written_alone_and_unchanged() {
        let mut bad_checksum = tcp4(1200, TCP_ACK, &[3; 100]);
        bad_checksum[45] ^= 0xff;
        let mut other_ack = tcp4(1100, TCP_ACK, &[2; 100]);
        other_ack[28..32].copy_from_slice(&78u32.to_be_bytes());
        set_l4_checksum(&mut other_ack, 20, PROTO_TCP, 16);
        let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
            (
                "gap in sequence",
                vec![
                    tcp4(1000, TCP_ACK, &[1; 100]),
                    tcp4(1150, TCP_ACK, &[2; 100]),
                ],
            ),
            (
                "PSH on the first",
                vec![
                    tcp4(1000, TCP_ACK | TCP_PSH, &[1; 100]),
                    tcp4(1100, TCP_ACK, &[2; 100]),
                ],
            ),
            (
                "longer than the first",
                vec![
                    tcp4(1000, TCP_ACK, &[1; 50]),
                    tcp4(1050, TCP_ACK, &[2; 100]),
                ],
            ),
            (
                "different ACK",
                vec![tcp4(1000, TCP_ACK, &[1; 100]), other_ack],
            ),
            (
                "bad checksum",
                vec![tcp4(1100, TCP_ACK, &[2; 100]), bad_checksum],
            ),
            (
                "SYN",
                vec![
                    tcp4(1000, TCP_ACK | 0x02, &[1; 100]),
                    tcp4(1100, TCP_ACK, &[2; 100]),
                ],
            ),
            (
                "pure ACKs",
                vec![tcp4(1000, TCP_ACK, &[]), tcp4(1000, TCP_ACK, &[])],
            ),
        ];
        for (what, packets) in cases {
            let out = coalesce(&packets);
            assert_eq!(out.len(), 2, "{what}");
            for (buf, p) in out.iter().zip(&packets) {
                assert_eq!(
                    &buf[..VNET_HDR_LEN],
                    &[0; VNET_HDR_LEN],
                    "{what}: plain header"
                );
                assert_eq!(&buf[VNET_HDR_LEN..], &p[..], "{what}: packet unchanged");
            }
        }
    }

    #[test]
    fn a_short_segment_closes_the_super_packet() {
        let packets = [
            tcp4(1000, TCP_ACK, &[1; 100]),
            tcp4(1100, TCP_ACK, &[2; 40]),
            tcp4(1140, TCP_ACK, &[3; 40]),
        ];
        let out = coalesce(&packets);
        assert_eq!(out.len(), 2);
        assert_eq!(hdr(&out[0]).3, 100);
        assert_eq!(out[0].len(), VNET_HDR_LEN + 40 + 140);
        assert_eq!(&out[1][VNET_HDR_LEN..], &packets[2][..]);
    }

    #[test]
    fn udp_datagrams_of_one_flow_become_one_uso_packet() {
        let packets = [udp6(&[1; 200]), udp6(&[2; 200]), udp6(&[3; 10])];
        let out = coalesce(&packets);
        assert_eq!(out.len(), 1);
        let buf = &out[0];
        assert_eq!(hdr(buf), (1, VIRTIO_NET_HDR_GSO_UDP_L4, 48, 200, 40, 6));
        let p = &buf[VNET_HDR_LEN..];
        assert_eq!(usize::from(u16::from_be_bytes([p[4], p[5]])), 8 + 410);
        assert_eq!(usize::from(u16::from_be_bytes([p[44], p[45]])), 8 + 410);
        let pseudo = fold(pseudo_sum(p, true, PROTO_UDP, 418));
        assert_eq!(u16::from_be_bytes([p[46], p[47]]), pseudo);

        // Without UDP segmentation offload in the kernel, each datagram goes alone.
        let out = coalesce_with(&packets, Coalescing::Tcp);
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|b| b[..VNET_HDR_LEN] == [0; VNET_HDR_LEN]));
        let tcp = [tcp4(1, TCP_ACK, &[1; 10]), tcp4(11, TCP_ACK, &[1; 10])];
        assert_eq!(coalesce_with(&tcp, Coalescing::Tcp).len(), 1);
        assert_eq!(coalesce_with(&tcp, Coalescing::Off).len(), 2);
    }

    #[test]
    fn at_most_max_segments_and_64_kib() {
        let packets: Vec<Vec<u8>> = (0..MAX_SEGMENTS as u32 + 5)
            .map(|i| tcp4(i * 100, TCP_ACK, &[7; 100]))
            .collect();
        let out = coalesce(&packets);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len(), VNET_HDR_LEN + 40 + MAX_SEGMENTS * 100);

        let packets: Vec<Vec<u8>> = (0..60u32)
            .map(|i| tcp4(i * 1400, TCP_ACK, &[7; 1400]))
            .collect();
        let out = coalesce(&packets);
        assert!(out
            .iter()
            .all(|b| b.len() - VNET_HDR_LEN <= MAX_SUPER_PACKET));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn malformed_packets_are_never_coalesced() {
        for p in [
            vec![],
            vec![0x45],
            vec![0x60; 39],
            tcp4(1, TCP_ACK, &[1; 10])[..30].to_vec(),
        ] {
            assert!(inspect(&p, Coalescing::TcpUdp).is_none(), "{p:?}");
        }
    }
}
