//! The WireGuard device: our key pair, the peers, and the three entry points the driver calls.
//!
//! Inbound flow ([`Device::handle_datagram`]):
//! 1. handshake messages pass the device-wide rate limiter: mac1, and mac2 under load (answered
//!    with a cookie reply), before any Diffie-Hellman work;
//! 2. the datagram is matched to a peer — a handshake initiation by the initiator's static key,
//!    everything else by the receiver index we handed out (`index >> 8` names the peer);
//! 3. the peer's `Tunn` decrypts it; an authenticated datagram moves the peer's endpoint to its
//!    source address (roaming), remembers the local address it arrived at (the sticky source,
//!    see [`Endpoint`]) and counts towards rx;
//! 4. a decrypted IP packet is delivered only if its inner source routes back to the same peer
//!    in the AllowedIPs table; otherwise it is dropped as spoofed;
//! 5. a completed handshake flushes the packets queued while it was under way.
//!
//! Outbound flow ([`Device::handle_tun_packet`]): destination address → AllowedIPs → peer →
//! `Tunn::encapsulate` → a datagram to the peer's endpoint (or a handshake initiation, with the
//! packet queued inside the `Tunn` until the session exists).
//!
//! Timers ([`Device::handle_timeout`], every [`TIMER_TICK`]): boringtun's handshake retry,
//! rekey and passive keepalive, plus our persistent keepalive, and the rate limiter's reset.
//! After the host slept ([`Device::handle_resume`], when the driver's
//! [`crate::clock::ResumeDetector`] sees the jump): a fresh handshake with every active peer.
//! After the network changed ([`Device::handle_network_change`], from the helper's network
//! monitor): a handshake with every peer that has an endpoint, on the sessions it has.
//!
//! **Replying from the address the peer sent to.** On a host with several addresses, a peer that
//! sent to one of them must get its answers from that same address, or it sees a new source,
//! roams, and breaks the NAT and firewall state on the way (the kernel picks the source by its
//! routing preference, not by what the peer used). So an [`Endpoint`] is a pair, as in
//! wireguard-go's sticky `StdNetEndpoint` and the kernel module: the peer's address, and our
//! local address it reached. Incoming datagrams carry the local address the socket reported
//! (packet-info control messages); an authenticated one stores both in the peer; every datagram
//! to the peer then leaves with that source. The core only *keeps* the address; the driver
//! sends with it, and when the OS refuses the source (the address is gone) it resends with the
//! kernel's choice and calls [`Device::forget_local_address`], so nothing sticks to a dead
//! address: the next authenticated datagram sets the source again.
//!
//! **A device without a private key.** As on wireguard-go, an interface may exist with no
//! private key (`wg setconf` of a configuration without `PrivateKey`, or `private_key=` of all
//! zeros): peers and AllowedIPs are kept, but nothing is sent or accepted — no handshakes, no
//! data — until a key is set ([`Device::without_private_key`], [`Device::clear_private_key`]).
//!
//! **Large AllowedIPs sets.** The table and each peer's own list cost O(1) (hashing) or
//! O(log n) per insertion and removal, so a `set` of 100 000+ prefixes applies in linear time;
//! a peer's list keeps the order its networks were added in.

use crate::allowed_ips::AllowedIps;
use crate::Instant;
use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519;
use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use warren_proto::key::{PresharedKey, PrivateKey, PublicKey};

/// How often the driver should call [`Device::handle_timeout`]. boringtun's timers have
/// one-second resolution; a quarter second keeps retries and keepalives punctual.
pub const TIMER_TICK: Duration = Duration::from_millis(250);

/// Handshake messages per second the device accepts before it answers with cookie replies.
pub const DEFAULT_HANDSHAKE_RATE_LIMIT: u64 = 100;

/// The largest datagram the device produces or accepts: a 64 KiB IP packet plus WireGuard's
/// 32 bytes of data-message overhead.
pub const MAX_DATAGRAM_LEN: usize = 65_535 + 32;

/// Where a datagram goes to, or came from, on the underlay: the peer's address and port, and our
/// own address on the path (the one the peer sent to; `None` lets the OS choose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The peer's address and port.
    pub remote: SocketAddr,
    /// Our address the peer reached (the destination of its datagram), to send from. `None`
    /// when unknown (a configured endpoint, or the OS did not say): the OS picks the source.
    pub local: Option<IpAddr>,
}

impl From<SocketAddr> for Endpoint {
    /// An endpoint with no local address: the OS chooses the source.
    fn from(remote: SocketAddr) -> Self {
        Self {
            remote,
            local: None,
        }
    }
}

/// The first byte of a handshake initiation (message type 1, little-endian).
const HANDSHAKE_INITIATION: u8 = 1;

/// Where the device's decisions go. The driver implements it over the TUN and UDP sockets;
/// tests implement it over vectors.
pub trait Output {
    /// Send `datagram` over UDP to `to.remote`, from `to.local` when it is set.
    fn send_datagram(&mut self, to: Endpoint, datagram: &[u8]);
    /// Write the decrypted IP `packet` to the TUN device.
    fn write_packet(&mut self, packet: &[u8]);
}

/// A peer's handle inside one [`Device`]; stable until the peer is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId(u32);

/// Everything that configures a peer (the `[Peer]` section or a UAPI `set`).
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// The peer's static public key, its identity.
    pub public_key: PublicKey,
    /// Optional preshared key mixed into the handshake.
    pub preshared_key: Option<PresharedKey>,
    /// Where to send; `None` until the peer contacts us.
    pub endpoint: Option<SocketAddr>,
    /// Send a keepalive after this many seconds without sending anything.
    pub persistent_keepalive: Option<u16>,
    /// Inner addresses this peer may use, and that route to it.
    pub allowed_ips: Vec<IpNet>,
}

impl PeerSettings {
    /// Settings with only the public key set.
    pub fn new(public_key: PublicKey) -> Self {
        Self {
            public_key,
            preshared_key: None,
            endpoint: None,
            persistent_keepalive: None,
            allowed_ips: Vec::new(),
        }
    }
}

/// A read-only view of a peer, for `wg show`, status and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSnapshot {
    /// The peer's public key.
    pub public_key: PublicKey,
    /// Whether a preshared key is set (the key itself is fetched separately, for the UAPI only).
    pub has_preshared_key: bool,
    /// Current endpoint (after roaming).
    pub endpoint: Option<SocketAddr>,
    /// Our address the peer last reached us at, which datagrams to it are sent from (`None`:
    /// the OS chooses).
    pub local_address: Option<IpAddr>,
    /// Persistent keepalive interval in seconds.
    pub persistent_keepalive: Option<u16>,
    /// AllowedIPs in the order they were added.
    pub allowed_ips: Vec<IpNet>,
    /// When the latest handshake completed, on the core's clock.
    pub last_handshake: Option<Instant>,
    /// Since when a handshake initiation we sent waits for a response (the first of the current
    /// round of retries), on the core's clock; `None` when none is pending. What decides that a
    /// peer is unreachable where we send (e.g. to re-resolve its host name).
    pub initiation_unanswered: Option<Instant>,
    /// UDP payload bytes received from this peer (authenticated datagrams only).
    pub rx_bytes: u64,
    /// UDP payload bytes sent to this peer.
    pub tx_bytes: u64,
}

/// Device-wide counters of packets the core refused, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Outgoing packets whose destination matched no peer's AllowedIPs.
    pub tx_no_route: u64,
    /// Outgoing packets for a peer that has no endpoint yet.
    pub tx_no_endpoint: u64,
    /// Outgoing packets dropped because the device has no private key.
    pub tx_no_key: u64,
    /// Outgoing packets that were not IPv4/IPv6.
    pub tx_invalid: u64,
    /// Incoming datagrams that failed to parse, authenticate or decrypt, or matched no peer.
    pub rx_invalid: u64,
    /// Incoming packets whose inner source address the sending peer may not use.
    pub rx_spoofed: u64,
    /// Cookie replies sent because handshakes arrived faster than the rate limit.
    pub cookies_sent: u64,
}

struct Peer {
    tunn: Tunn,
    public_key: PublicKey,
    preshared_key: Option<PresharedKey>,
    /// Our 24-bit index for this peer; boringtun puts it in the top bits of session indices.
    index: u32,
    endpoint: Option<Endpoint>,
    persistent_keepalive: Option<u16>,
    allowed_ips: NetList,
    last_handshake: Option<Instant>,
    /// We answered an initiation and wait for the first data packet that confirms it.
    awaiting_confirmation: bool,
    /// Since when a handshake initiation of ours waits for a response (the first initiation of
    /// the round; retries do not move it). Cleared by an authenticated response, and by any
    /// authenticated datagram other than a cookie reply (the peer is alive at that address).
    initiation_unanswered: Option<Instant>,
    last_sent: Option<Instant>,
    rx_bytes: u64,
    tx_bytes: u64,
}

/// The four WireGuard message types, as far as bookkeeping cares.
#[derive(Clone, Copy)]
enum Kind {
    Initiation,
    Response,
    Cookie,
    Data,
}

/// A WireGuard interface's brain: our static key, peers and cryptokey routing.
pub struct Device {
    /// `None`: the device has no key, and sends and accepts nothing (see the module docs).
    private_key: Option<PrivateKey>,
    /// The static secret every `Tunn` is built with; an all-zero placeholder without a key.
    secret: x25519::StaticSecret,
    public: x25519::PublicKey,
    /// The device-wide limiter: mac1/mac2 checks and cookie replies under load happen here,
    /// once, before a datagram reaches a peer.
    rate_limiter: Arc<RateLimiter>,
    /// Handed to every `Tunn`, which insists on re-checking mac1 itself. Its limit is
    /// unreachable so the `Tunn` never second-guesses the device's load decision (which would
    /// turn a valid handshake into a cookie reply the device cannot tell from a real answer).
    tunn_limiter: Arc<RateLimiter>,
    handshake_rate_limit: u64,
    /// Peers by slot; `PeerId` is the slot number. Freed slots are `None` and reused.
    peers: Vec<Option<Peer>>,
    by_key: HashMap<PublicKey, PeerId>,
    by_index: HashMap<u32, PeerId>,
    allowed_ips: AllowedIps<PeerId>,
    /// Scratch space for one datagram or packet; reused for every call.
    buf: Box<[u8]>,
    stats: DeviceStats,
    last_rate_reset: Option<Instant>,
}

impl Device {
    /// A device with our private key and no peers.
    pub fn new(private_key: PrivateKey) -> Self {
        Self::with_handshake_rate_limit(private_key, DEFAULT_HANDSHAKE_RATE_LIMIT)
    }

    /// A device with no private key and no peers (what `wireguard-go IFNAME` starts with): it
    /// keeps its configuration but sends and accepts nothing until [`Device::set_private_key`].
    pub fn without_private_key() -> Self {
        Self::build(None, DEFAULT_HANDSHAKE_RATE_LIMIT)
    }

    /// Like [`Device::new`] with a custom handshake rate limit (0 answers every handshake with
    /// a cookie reply first, as a device under attack would; used in tests).
    pub fn with_handshake_rate_limit(private_key: PrivateKey, limit: u64) -> Self {
        Self::build(Some(private_key), limit)
    }

    fn build(private_key: Option<PrivateKey>, limit: u64) -> Self {
        let private_key = private_key.filter(|k| k.as_bytes() != &[0; 32]);
        let secret =
            x25519::StaticSecret::from(private_key.as_ref().map_or([0; 32], |k| *k.as_bytes()));
        let public = x25519::PublicKey::from(&secret);
        Self {
            rate_limiter: Arc::new(RateLimiter::new(&public, limit)),
            tunn_limiter: Arc::new(RateLimiter::new(&public, u64::MAX)),
            handshake_rate_limit: limit,
            private_key,
            secret,
            public,
            peers: Vec::new(),
            by_key: HashMap::new(),
            by_index: HashMap::new(),
            allowed_ips: AllowedIps::new(),
            buf: vec![0u8; MAX_DATAGRAM_LEN].into_boxed_slice(),
            stats: DeviceStats::default(),
            last_rate_reset: None,
        }
    }

    /// Our private key (for the UAPI's `get`, which root may read); `None` without one.
    pub fn private_key(&self) -> Option<&PrivateKey> {
        self.private_key.as_ref()
    }

    /// Our public key; `None` without a private key.
    pub fn public_key(&self) -> Option<PublicKey> {
        self.private_key
            .as_ref()
            .map(|_| PublicKey::from_bytes(*self.public.as_bytes()))
    }

    /// Replaces our private key. Existing sessions are dropped (they were keyed to the old
    /// identity); a peer whose public key equals our new one is removed, as wireguard-go does.
    /// The all-zero key is no key: the same as [`Device::clear_private_key`].
    pub fn set_private_key(&mut self, private_key: PrivateKey) {
        if private_key.as_bytes() == &[0; 32] {
            self.clear_private_key();
            return;
        }
        if Some(&private_key) == self.private_key.as_ref() {
            return;
        }
        let secret = x25519::StaticSecret::from(*private_key.as_bytes());
        let public = x25519::PublicKey::from(&secret);
        self.rate_limiter = Arc::new(RateLimiter::new(&public, self.handshake_rate_limit));
        self.tunn_limiter = Arc::new(RateLimiter::new(&public, u64::MAX));
        for peer in self.peers.iter_mut().flatten() {
            peer.tunn
                .set_static_private(secret.clone(), public, Some(self.tunn_limiter.clone()));
        }
        self.private_key = Some(private_key);
        self.secret = secret;
        self.public = public;
        let own = PublicKey::from_bytes(*self.public.as_bytes());
        self.remove_peer(&own);
    }

    /// Removes our private key: every session ends (each peer gets a fresh `Tunn`, dropping
    /// queued packets) and the device sends and accepts nothing until a key is set again.
    /// Peers, endpoints and AllowedIPs stay.
    pub fn clear_private_key(&mut self) {
        if self.private_key.is_none() {
            return;
        }
        self.private_key = None;
        self.secret = x25519::StaticSecret::from([0; 32]);
        self.public = x25519::PublicKey::from(&self.secret);
        for peer in self.peers.iter_mut().flatten() {
            peer.tunn = make_tunn(
                &self.secret,
                &self.tunn_limiter,
                &peer.public_key,
                &peer.preshared_key,
                peer.index,
            );
            peer.awaiting_confirmation = false;
            peer.initiation_unanswered = None;
        }
    }

    /// Device-wide drop counters.
    pub fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// The peer with this public key.
    pub fn peer_id(&self, public_key: &PublicKey) -> Option<PeerId> {
        self.by_key.get(public_key).copied()
    }

    /// Adds a peer, or updates the existing peer with the same public key in place: changing
    /// the endpoint, keepalive or AllowedIPs keeps its session; changing the preshared key
    /// starts a fresh session (the key is part of the handshake). AllowedIPs given here
    /// *replace* the peer's list, and a network already owned by another peer moves to this one.
    pub fn upsert_peer(&mut self, settings: PeerSettings) -> PeerId {
        let id = match self.by_key.get(&settings.public_key) {
            Some(&id) => {
                let psk_changed = self
                    .peer(id)
                    .is_some_and(|p| p.preshared_key != settings.preshared_key);
                if psk_changed {
                    let tunn = self.new_tunn(&settings.public_key, &settings.preshared_key, id);
                    if let Some(peer) = self.peer_mut(id) {
                        peer.tunn = tunn;
                        peer.preshared_key = settings.preshared_key;
                        peer.last_handshake = None;
                    }
                }
                id
            }
            None => self.insert_peer(&settings),
        };
        if let Some(peer) = self.peer_mut(id) {
            if let Some(remote) = settings.endpoint {
                peer.set_remote(remote);
            }
            peer.persistent_keepalive = settings.persistent_keepalive.filter(|s| *s > 0);
        }
        self.set_allowed_ips(id, settings.allowed_ips);
        id
    }

    fn insert_peer(&mut self, settings: &PeerSettings) -> PeerId {
        let slot = self
            .peers
            .iter()
            .position(Option::is_none)
            .unwrap_or_else(|| {
                self.peers.push(None);
                self.peers.len() - 1
            });
        let id = PeerId(slot as u32);
        let index = self.fresh_index();
        let tunn = self.new_tunn_with_index(&settings.public_key, &settings.preshared_key, index);
        self.peers[slot] = Some(Peer {
            tunn,
            public_key: settings.public_key,
            preshared_key: settings.preshared_key.clone(),
            index,
            endpoint: settings.endpoint.map(Endpoint::from),
            persistent_keepalive: None,
            allowed_ips: NetList::default(),
            last_handshake: None,
            awaiting_confirmation: false,
            initiation_unanswered: None,
            last_sent: None,
            rx_bytes: 0,
            tx_bytes: 0,
        });
        self.by_key.insert(settings.public_key, id);
        self.by_index.insert(index, id);
        id
    }

    /// A random 24-bit index not used by another peer.
    fn fresh_index(&self) -> u32 {
        loop {
            let index = rand_core::RngCore::next_u32(&mut rand_core::OsRng) >> 8;
            if !self.by_index.contains_key(&index) {
                return index;
            }
        }
    }

    fn new_tunn(&self, public_key: &PublicKey, psk: &Option<PresharedKey>, id: PeerId) -> Tunn {
        let index = self.peer(id).map_or(0, |p| p.index);
        self.new_tunn_with_index(public_key, psk, index)
    }

    fn new_tunn_with_index(
        &self,
        public_key: &PublicKey,
        psk: &Option<PresharedKey>,
        index: u32,
    ) -> Tunn {
        make_tunn(&self.secret, &self.tunn_limiter, public_key, psk, index)
    }

    /// Replaces a peer's AllowedIPs. Networks owned by other peers move to this one.
    pub fn set_allowed_ips(&mut self, id: PeerId, nets: Vec<IpNet>) {
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        let old = std::mem::take(&mut peer.allowed_ips);
        for net in old.iter() {
            if self.allowed_ips.lookup_exact(net) == Some(&id) {
                self.allowed_ips.remove(net);
            }
        }
        for net in nets {
            self.add_allowed_ip(id, net);
        }
    }

    /// Adds one network to a peer's AllowedIPs, taking it from another peer if needed.
    pub fn add_allowed_ip(&mut self, id: PeerId, net: IpNet) {
        let net = net.trunc();
        if self.peer(id).is_none() {
            return;
        }
        if let Some(previous) = self.allowed_ips.insert(net, id) {
            if previous != id {
                if let Some(other) = self.peer_mut(previous) {
                    other.allowed_ips.remove(net);
                }
            }
        }
        if let Some(peer) = self.peer_mut(id) {
            peer.allowed_ips.insert(net);
        }
    }

    /// Removes one network from a peer's AllowedIPs (UAPI `allowed_ip=-PREFIX`). A network
    /// the peer does not own (absent, or another peer's) is left alone, as in wireguard-go.
    /// Returns whether it was removed.
    pub fn remove_allowed_ip(&mut self, id: PeerId, net: IpNet) -> bool {
        let net = net.trunc();
        if self.allowed_ips.lookup_exact(net) != Some(&id) {
            return false;
        }
        self.allowed_ips.remove(net);
        if let Some(peer) = self.peer_mut(id) {
            peer.allowed_ips.remove(net);
        }
        true
    }

    /// Sets a peer's endpoint (it also moves by itself when the peer roams). The OS chooses the
    /// source until the peer's next authenticated datagram says which of our addresses it uses.
    pub fn set_endpoint(&mut self, id: PeerId, endpoint: SocketAddr) {
        if let Some(peer) = self.peer_mut(id) {
            peer.set_remote(endpoint);
        }
    }

    /// Our address `local` can no longer be sent from (the OS refused it: it was removed): every
    /// peer that was answered from it is answered from the OS's choice instead, until its next
    /// authenticated datagram names a local address again. Returns how many peers changed.
    pub fn forget_local_address(&mut self, local: IpAddr) -> usize {
        let mut changed = 0;
        for peer in self.peers.iter_mut().flatten() {
            if let Some(endpoint) = &mut peer.endpoint {
                if endpoint.local == Some(local) {
                    endpoint.local = None;
                    changed += 1;
                }
            }
        }
        changed
    }

    /// Sets or clears a peer's persistent keepalive interval; the session is kept.
    pub fn set_persistent_keepalive(&mut self, id: PeerId, secs: Option<u16>) {
        if let Some(peer) = self.peer_mut(id) {
            peer.persistent_keepalive = secs.filter(|s| *s > 0);
        }
    }

    /// Sets or clears a peer's preshared key; a change starts a fresh session.
    pub fn set_preshared_key(&mut self, id: PeerId, psk: Option<PresharedKey>) {
        let Some(peer) = self.peer(id) else {
            return;
        };
        if peer.preshared_key == psk {
            return;
        }
        let public_key = peer.public_key;
        let tunn = self.new_tunn(&public_key, &psk, id);
        if let Some(peer) = self.peer_mut(id) {
            peer.tunn = tunn;
            peer.preshared_key = psk;
            peer.last_handshake = None;
        }
    }

    /// Removes a peer and its AllowedIPs. Returns whether it existed.
    pub fn remove_peer(&mut self, public_key: &PublicKey) -> bool {
        let Some(id) = self.by_key.remove(public_key) else {
            return false;
        };
        if let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::take) {
            self.by_index.remove(&peer.index);
        }
        self.allowed_ips.retain(|owner| *owner != id);
        true
    }

    /// Removes every peer.
    pub fn clear_peers(&mut self) {
        self.peers.clear();
        self.by_key.clear();
        self.by_index.clear();
        self.allowed_ips = AllowedIps::new();
    }

    /// A snapshot of every peer, in the order they were added (slot order).
    pub fn peers(&self) -> Vec<PeerSnapshot> {
        self.peers.iter().flatten().map(Peer::snapshot).collect()
    }

    /// A snapshot of one peer.
    pub fn peer_snapshot(&self, id: PeerId) -> Option<PeerSnapshot> {
        self.peer(id).map(Peer::snapshot)
    }

    /// A peer's preshared key (for the UAPI's `get`, which root may read).
    pub fn preshared_key(&self, id: PeerId) -> Option<&PresharedKey> {
        self.peer(id).and_then(|p| p.preshared_key.as_ref())
    }

    fn peer(&self, id: PeerId) -> Option<&Peer> {
        self.peers.get(id.0 as usize).and_then(Option::as_ref)
    }

    fn peer_mut(&mut self, id: PeerId) -> Option<&mut Peer> {
        self.peers.get_mut(id.0 as usize).and_then(Option::as_mut)
    }

    /// An IP packet read from the TUN device: encrypt it for the peer its destination routes to.
    pub fn handle_tun_packet(&mut self, now: Instant, packet: &[u8], out: &mut impl Output) {
        let Some(dst) = Tunn::dst_address(packet) else {
            self.stats.tx_invalid += 1;
            return;
        };
        if self.private_key.is_none() {
            self.stats.tx_no_key += 1;
            return;
        }
        let Some(&id) = self.allowed_ips.lookup(dst) else {
            self.stats.tx_no_route += 1;
            return;
        };
        let Some(peer) = self.peers.get_mut(id.0 as usize).and_then(Option::as_mut) else {
            return;
        };
        let Some(endpoint) = peer.endpoint else {
            self.stats.tx_no_endpoint += 1;
            return;
        };
        match peer.tunn.encapsulate(packet, &mut self.buf) {
            TunnResult::WriteToNetwork(datagram) => {
                peer.note_sent(now, datagram);
                out.send_datagram(endpoint, datagram);
            }
            TunnResult::Err(e) => tracing::debug!(error = ?e, "failed to encapsulate"),
            // Queued inside the Tunn while a handshake is under way.
            _ => {}
        }
    }

    /// A UDP datagram received from `from.remote` at our address `from.local`: authenticate,
    /// decrypt, route. Replies go back to `from`, from the same local address.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: Endpoint,
        datagram: &[u8],
        out: &mut impl Output,
    ) {
        let Ok(packet) = Tunn::parse_incoming_packet(datagram) else {
            self.stats.rx_invalid += 1;
            return;
        };
        if self.private_key.is_none() {
            // Nothing can be authenticated without our key.
            self.stats.rx_invalid += 1;
            return;
        }
        let kind = match packet {
            Packet::HandshakeInit(_) => Kind::Initiation,
            Packet::HandshakeResponse(_) => Kind::Response,
            Packet::PacketCookieReply(_) => Kind::Cookie,
            Packet::PacketData(_) => Kind::Data,
        };
        if matches!(kind, Kind::Initiation | Kind::Response) {
            // mac1, and mac2 under load, before any expensive Diffie-Hellman.
            match self
                .rate_limiter
                .verify_packet(Some(from.remote.ip()), datagram, &mut self.buf)
            {
                Ok(_) => {}
                Err(TunnResult::WriteToNetwork(cookie)) => {
                    self.stats.cookies_sent += 1;
                    out.send_datagram(from, cookie);
                    return;
                }
                Err(_) => {
                    self.stats.rx_invalid += 1;
                    return;
                }
            }
        }
        let id = match &packet {
            Packet::HandshakeInit(init) => parse_handshake_anon(&self.secret, &self.public, init)
                .ok()
                .and_then(|half| {
                    self.by_key
                        .get(&PublicKey::from_bytes(half.peer_static_public))
                        .copied()
                }),
            Packet::HandshakeResponse(p) => self.by_index.get(&(p.receiver_idx >> 8)).copied(),
            Packet::PacketCookieReply(p) => self.by_index.get(&(p.receiver_idx >> 8)).copied(),
            Packet::PacketData(p) => self.by_index.get(&(p.receiver_idx >> 8)).copied(),
        };
        let Some((id, peer)) =
            id.and_then(|id| Some((id, self.peers.get_mut(id.0 as usize)?.as_mut()?)))
        else {
            self.stats.rx_invalid += 1;
            return;
        };
        let result = peer
            .tunn
            .decapsulate(Some(from.remote.ip()), datagram, &mut self.buf);
        if let TunnResult::Err(e) = result {
            // Includes replayed or forged packets; never roam on those.
            tracing::trace!(error = ?e, from = %from.remote, "dropped datagram");
            self.stats.rx_invalid += 1;
            return;
        }
        // Authenticated: this is where the peer is now, the address of ours it uses, and it
        // answers.
        peer.endpoint = Some(from);
        if !matches!(kind, Kind::Cookie) {
            peer.initiation_unanswered = None;
        }
        peer.rx_bytes += datagram.len() as u64;
        // A handshake counts once both sides have proven the new keys: the initiator when the
        // response arrives, the responder when the first data (or keepalive) packet does, as
        // wireguard-go and the kernel count it. A responder whose response never lands (a wrong
        // preshared key, say) must not claim a handshake.
        match kind {
            Kind::Response => {
                peer.last_handshake = Some(now);
                peer.awaiting_confirmation = false;
            }
            Kind::Initiation => peer.awaiting_confirmation = true,
            Kind::Data if peer.awaiting_confirmation => {
                peer.last_handshake = Some(now);
                peer.awaiting_confirmation = false;
            }
            Kind::Data | Kind::Cookie => {}
        }
        match result {
            TunnResult::WriteToNetwork(reply) => {
                peer.note_sent(now, reply);
                out.send_datagram(from, reply);
                // A completed handshake releases the packets queued while it ran.
                while let TunnResult::WriteToNetwork(queued) =
                    peer.tunn.decapsulate(None, &[], &mut self.buf)
                {
                    peer.note_sent(now, queued);
                    out.send_datagram(from, queued);
                }
            }
            TunnResult::WriteToTunnelV4(inner, src) => {
                if self.allowed_ips.lookup(IpAddr::V4(src)) == Some(&id) {
                    out.write_packet(inner);
                } else {
                    self.stats.rx_spoofed += 1;
                }
            }
            TunnResult::WriteToTunnelV6(inner, src) => {
                if self.allowed_ips.lookup(IpAddr::V6(src)) == Some(&id) {
                    out.write_packet(inner);
                } else {
                    self.stats.rx_spoofed += 1;
                }
            }
            TunnResult::Done | TunnResult::Err(_) => {}
        }
    }

    /// The host was suspended (the driver's [`crate::clock::ResumeDetector`] saw it) and is
    /// running again. Every session may have expired at the peers meanwhile, and boringtun would
    /// send the first packets on those keys before its timers notice. So every peer that has a
    /// session or has had traffic, and an endpoint, gets a fresh `Tunn` (the old sessions and
    /// anything queued on them dropped) and a handshake initiation now; packets from the TUN
    /// wait in the new `Tunn` until the handshake completes. The last handshake's time is kept:
    /// its age tells the truth until the new one lands. Returns how many handshakes started.
    pub fn handle_resume(&mut self, now: Instant, out: &mut impl Output) -> usize {
        let mut started = 0;
        if self.private_key.is_none() {
            return started;
        }
        for peer in self.peers.iter_mut().flatten() {
            let active = peer.last_handshake.is_some() || peer.last_sent.is_some();
            let Some(endpoint) = peer.endpoint.filter(|_| active) else {
                continue;
            };
            peer.tunn = make_tunn(
                &self.secret,
                &self.tunn_limiter,
                &peer.public_key,
                &peer.preshared_key,
                peer.index,
            );
            peer.awaiting_confirmation = false;
            let sent = send_initiation(peer, &mut self.buf, endpoint, false, now, out);
            started += usize::from(sent);
        }
        started
    }

    /// The host's network changed (a default route, an address or a link; the helper's network
    /// monitor saw it). The peers may now reach us at another address, or we them by another
    /// path, and a peer without traffic would only learn of it when a timer fires — minutes
    /// later, without persistent keepalive. So every peer with an endpoint gets a handshake
    /// initiation now: its answer proves the new path, and its arrival moves the peer's
    /// endpoint for us to wherever we now are (roaming). Unlike [`Device::handle_resume`] the
    /// sessions are kept — the keys are still good, only the path changed — so traffic flows on
    /// them until the new handshake completes. The local address the peer last reached us at is
    /// forgotten (it may be gone, or no longer the right one): the OS picks the source until the
    /// peer's next authenticated datagram names one again. A handshake already under way is
    /// sent again now, on the new path (its last try probably went out on the old one, or not
    /// at all while there was no network; the retry timer would wait up to five seconds).
    /// Returns how many initiations were sent.
    pub fn handle_network_change(&mut self, now: Instant, out: &mut impl Output) -> usize {
        let mut started = 0;
        if self.private_key.is_none() {
            // No handshakes without our key (see `handle_tun_packet`).
            return started;
        }
        for peer in self.peers.iter_mut().flatten() {
            let Some(endpoint) = &mut peer.endpoint else {
                continue;
            };
            endpoint.local = None;
            let endpoint = *endpoint;
            let sent = send_initiation(peer, &mut self.buf, endpoint, true, now, out);
            started += usize::from(sent);
        }
        started
    }

    /// Runs the timers; call every [`TIMER_TICK`].
    pub fn handle_timeout(&mut self, now: Instant, out: &mut impl Output) {
        if self
            .last_rate_reset
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            self.rate_limiter.reset_count();
            self.last_rate_reset = Some(now);
        }
        if self.private_key.is_none() {
            // No handshakes, keepalives or retries without our key.
            return;
        }
        for peer in self.peers.iter_mut().flatten() {
            let Some(endpoint) = peer.endpoint else {
                continue;
            };
            if let Some(interval) = peer.persistent_keepalive {
                let due = peer.last_sent.is_none_or(|t| {
                    now.duration_since(t) >= Duration::from_secs(u64::from(interval))
                });
                if due {
                    // With no session this queues the keepalive and starts a handshake, which
                    // is how a peer with PersistentKeepalive comes up on its own.
                    if let TunnResult::WriteToNetwork(datagram) =
                        peer.tunn.encapsulate(&[], &mut self.buf)
                    {
                        peer.note_sent(now, datagram);
                        out.send_datagram(endpoint, datagram);
                    } else {
                        peer.last_sent = Some(now);
                    }
                }
            }
            match peer.tunn.update_timers(&mut self.buf) {
                TunnResult::WriteToNetwork(datagram) => {
                    peer.note_sent(now, datagram);
                    out.send_datagram(endpoint, datagram);
                }
                TunnResult::Err(WireGuardError::ConnectionExpired) | TunnResult::Done => {}
                TunnResult::Err(e) => tracing::debug!(error = ?e, "timer error"),
                _ => {}
            }
        }
    }
}

/// Sends `peer` a handshake initiation at `endpoint` (`force`: even while one is under way, as
/// boringtun's `format_handshake_initiation` takes it). Returns whether one was sent.
fn send_initiation(
    peer: &mut Peer,
    buf: &mut [u8],
    endpoint: Endpoint,
    force: bool,
    now: Instant,
    out: &mut impl Output,
) -> bool {
    match peer.tunn.format_handshake_initiation(buf, force) {
        TunnResult::WriteToNetwork(initiation) => {
            peer.note_sent(now, initiation);
            out.send_datagram(endpoint, initiation);
            true
        }
        TunnResult::Err(e) => {
            tracing::debug!(error = ?e, "failed to start a handshake");
            false
        }
        _ => false,
    }
}

/// A fresh `Tunn` for a peer: no sessions, no handshake, no queued packets.
fn make_tunn(
    secret: &x25519::StaticSecret,
    limiter: &Arc<RateLimiter>,
    public_key: &PublicKey,
    psk: &Option<PresharedKey>,
    index: u32,
) -> Tunn {
    Tunn::new(
        secret.clone(),
        x25519::PublicKey::from(*public_key.as_bytes()),
        psk.as_ref().map(|k| *k.as_bytes()),
        // Persistent keepalive is ours (see `handle_timeout`) so it can change live.
        None,
        index,
        Some(limiter.clone()),
    )
}

impl Peer {
    /// A configured endpoint: unchanged if it is where the peer already is (keeping the local
    /// address it uses), otherwise with the OS choosing the source.
    fn set_remote(&mut self, remote: SocketAddr) {
        if self.endpoint.map(|e| e.remote) != Some(remote) {
            self.endpoint = Some(remote.into());
        }
    }

    fn note_sent(&mut self, now: Instant, datagram: &[u8]) {
        self.tx_bytes += datagram.len() as u64;
        // The first initiation of a round starts the clock that only a response stops.
        if datagram.first() == Some(&HANDSHAKE_INITIATION) && self.initiation_unanswered.is_none() {
            self.initiation_unanswered = Some(now);
        }
        self.last_sent = Some(now);
    }

    fn snapshot(&self) -> PeerSnapshot {
        PeerSnapshot {
            public_key: self.public_key,
            has_preshared_key: self.preshared_key.is_some(),
            endpoint: self.endpoint.map(|e| e.remote),
            local_address: self.endpoint.and_then(|e| e.local),
            persistent_keepalive: self.persistent_keepalive,
            allowed_ips: self.allowed_ips.iter().collect(),
            last_handshake: self.last_handshake,
            initiation_unanswered: self.initiation_unanswered,
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
        }
    }
}

/// A peer's own AllowedIPs in the order they were added, with O(log n) insertion and removal
/// (a `Vec` would make each `contains`/`retain` linear, and a 100 000-prefix `set` quadratic).
#[derive(Debug, Default)]
struct NetList {
    /// Insertion sequence number → network: iteration order.
    by_seq: BTreeMap<u64, IpNet>,
    /// Network → its sequence number: membership and removal.
    seq_of: HashMap<IpNet, u64>,
    next: u64,
}

impl NetList {
    /// Appends `net` unless it is already listed (then its place is kept).
    fn insert(&mut self, net: IpNet) {
        if self.seq_of.contains_key(&net) {
            return;
        }
        self.seq_of.insert(net, self.next);
        self.by_seq.insert(self.next, net);
        self.next += 1;
    }

    fn remove(&mut self, net: IpNet) {
        if let Some(seq) = self.seq_of.remove(&net) {
            self.by_seq.remove(&seq);
        }
    }

    fn iter(&self) -> impl Iterator<Item = IpNet> + '_ {
        self.by_seq.values().copied()
    }
}
