//! The WireGuard cross-platform userspace API (UAPI), so `wg show`, `wg showconf` and `wg set`
//! work on a Warren interface exactly as on wireguard-go or boringtun.
//!
//! The protocol (<https://www.wireguard.com/xplatform/>) is line-based text over a local stream:
//! a client writes `get=1` or `set=1`, then `key=value` lines and a blank line; the server answers
//! with `key=value` lines (for `get`) and always a final `errno=N` and a blank line. Keys are hex
//! on this wire, not base64. The stream is where wireguard-tools looks for it on each OS:
//! - Linux and macOS (`unix.rs`): the Unix socket `/var/run/wireguard/<iface>.sock`, mode 0600
//!   (on macOS `<iface>` is the `utunN` name, as with wireguard-go);
//! - Windows (`windows.rs`): the named pipe
//!   `\\.\pipe\ProtectedPrefix\Administrators\WireGuard\<iface>`, which only SYSTEM and
//!   Administrators may open, as with wireguard-go and wireguard-windows' `wg.exe`.
//!
//! This module owns: the protocol — the per-connection reader, the streaming parser
//! ([`SetParser`]) that turns a `set` into a validated [`SetRequest`] *before* anything changes
//! (a bad line changes nothing), the formatter for `get` ([`format_get`]), and
//! [`apply_to_device`]. The per-OS transport modules only listen, accept and hand each connection
//! to the shared reader; [`serve`] is theirs. The driver owns the device, so requests travel to it
//! over a channel and are applied between packets.
//!
//! **What `wg` sends, and how we answer** (the semantics of wireguard-go's `device/uapi.go`):
//! - every key wireguard-tools writes: `private_key` (all zeros — what `wg setconf` sends for a
//!   configuration without `PrivateKey` — removes the key: the device keeps its peers but
//!   sends and accepts nothing), `listen_port` (the sockets re-bind; 0 picks a free port),
//!   `fwmark` (0 clears), `replace_peers`, and per peer `remove`, `update_only`,
//!   `preshared_key`, `endpoint`, `persistent_keepalive_interval`, `replace_allowed_ips`,
//!   `allowed_ip` and newer wireguard-tools' `allowed_ip=-PREFIX` (remove that prefix if this
//!   peer owns it), `protocol_version=1`. A peer section with our own public key is ignored.
//! - `errno=` is negative, as wireguard-go sends it and as `wg` reads it (`errno = -ret`):
//!   `-EINVAL` for a bad value or an unknown key, `-EPROTO` for a line without `=` or an
//!   unknown operation, `-EADDRINUSE` when the sockets cannot be re-bound or re-marked.
//! - Unlike wireguard-go, a refused `set` changes nothing: the whole request is read and
//!   validated first, then applied at once; the rest of a refused request is read and dropped,
//!   so the connection stays usable.
//! - Large requests stream: a line at a time into the parser (nothing holds the raw text), and
//!   the device's AllowedIPs structures make each prefix O(1)/O(log n), so `wg setconf` with
//!   130 000 AllowedIPs takes well under a second.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

pub use imp::serve;

use ipnet::IpNet;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};
use warren_proto::key::{PresharedKey, PrivateKey, PublicKey};
use warren_tunnel::{Device, Instant, PeerSettings};

/// Longest line we accept; real lines are under 100 bytes. (A bound on one line, not on the
/// request: requests stream through the parser a line at a time.)
const MAX_LINE: usize = 4096;
/// Most lines in one `set`; far beyond any real configuration (130 000 AllowedIPs is ~130 000
/// lines), small enough to bound what one request can make us hold.
const MAX_SET_LINES: usize = 1 << 23;

/// The value of the `errno=` line: 0, or a negated errno as wireguard-go sends it (`wg` turns it
/// back into `errno` with `errno = -ret` and prints `strerror`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

/// The errno numbers wireguard-go uses: the platform's on Unix, Linux's on Windows (where
/// wireguard-go hard-codes them and `wg.exe` expects them).
#[cfg(unix)]
mod errno_values {
    pub const EPROTO: i32 = libc::EPROTO;
    pub const EINVAL: i32 = libc::EINVAL;
    pub const EADDRINUSE: i32 = libc::EADDRINUSE;
}
#[cfg(not(unix))]
mod errno_values {
    pub const EPROTO: i32 = 71;
    pub const EINVAL: i32 = 22;
    pub const EADDRINUSE: i32 = 98;
}

impl Errno {
    /// Success.
    pub const OK: Errno = Errno(0);
    /// A bad value, an unknown key, or a request too large: `-EINVAL`.
    pub const INVALID: Errno = Errno(-errno_values::EINVAL);
    /// The sockets could not be re-bound to the requested port, or re-marked: `-EADDRINUSE`
    /// (wireguard-go answers a failed fwmark change with this code too).
    pub const ADDRINUSE: Errno = Errno(-errno_values::EADDRINUSE);
    /// Not `get=1`/`set=1`, or a line without `=`: `-EPROTO`.
    pub const PROTOCOL: Errno = Errno(-errno_values::EPROTO);
}

/// A refused `set`: the errno to answer with and what was wrong, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetError {
    /// What the client is told.
    pub errno: Errno,
    /// What was wrong, naming the line.
    pub message: String,
}

impl SetError {
    fn invalid(message: String) -> Self {
        Self {
            errno: Errno::INVALID,
            message,
        }
    }
}

impl std::fmt::Display for SetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (errno={})", self.message, self.errno.0)
    }
}

/// A request handed to the driver.
pub enum Request {
    /// `get=1`: reply with the full text of the answer (without the `errno` line).
    Get(oneshot::Sender<String>),
    /// `set=1`: apply and reply with the outcome.
    Set(SetRequest, oneshot::Sender<Result<(), Errno>>),
}

/// A parsed, validated `set=1` request.
#[derive(Debug, Default)]
pub struct SetRequest {
    /// `private_key=`; the all-zero key removes the device's key.
    pub private_key: Option<PrivateKey>,
    /// `listen_port=` (0: any free port).
    pub listen_port: Option<u16>,
    /// `fwmark=` (0 clears it).
    pub fwmark: Option<u32>,
    /// `replace_peers=true`: remove every existing peer before applying the sections below.
    pub replace_peers: bool,
    /// The `public_key=` sections, in order.
    pub peers: Vec<PeerChange>,
}

/// One change to a peer's AllowedIPs, in the order the lines came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowedIpChange {
    /// `allowed_ip=PREFIX`: route PREFIX to this peer (taking it from another peer if needed).
    Add(IpNet),
    /// `allowed_ip=-PREFIX`: drop PREFIX if this peer owns it.
    Remove(IpNet),
}

/// One `public_key=` section of a `set`.
#[derive(Debug)]
pub struct PeerChange {
    /// The peer.
    pub public_key: PublicKey,
    /// `remove=true`.
    pub remove: bool,
    /// `update_only=true`: don't create the peer if it doesn't exist.
    pub update_only: bool,
    /// `preshared_key=`; `Some(None)` for the all-zero key, which clears it.
    pub preshared_key: Option<Option<PresharedKey>>,
    /// `endpoint=`.
    pub endpoint: Option<SocketAddr>,
    /// `persistent_keepalive_interval=` (0 disables).
    pub persistent_keepalive: Option<u16>,
    /// `replace_allowed_ips=true`: the peer's AllowedIPs are cleared before `allowed_ips`.
    pub replace_allowed_ips: bool,
    /// `allowed_ip=` lines after the last `replace_allowed_ips=true`, in order.
    pub allowed_ips: Vec<AllowedIpChange>,
}

impl PeerChange {
    fn new(public_key: PublicKey) -> Self {
        Self {
            public_key,
            remove: false,
            update_only: false,
            preshared_key: None,
            endpoint: None,
            persistent_keepalive: None,
            replace_allowed_ips: false,
            allowed_ips: Vec::new(),
        }
    }
}

/// The streaming parser of a `set=1` body: feed it one line at a time (without the newline),
/// up to but not including the blank line that ends the request, then [`SetParser::finish`].
/// After the first bad line it only counts lines; the request is refused as a whole.
#[derive(Debug, Default)]
pub struct SetParser {
    set: SetRequest,
    lines: usize,
    error: Option<SetError>,
}

impl SetParser {
    /// A parser for a new request.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one line of the body. Lines after an error are read and dropped.
    pub fn feed(&mut self, line: &str) {
        if self.error.is_some() {
            return;
        }
        self.lines += 1;
        if self.lines > MAX_SET_LINES {
            self.error = Some(SetError::invalid(format!(
                "set request longer than {MAX_SET_LINES} lines"
            )));
            return;
        }
        if let Err(e) = self.parse_line(line) {
            self.error = Some(e);
        }
    }

    /// The validated request, or the first error.
    pub fn finish(self) -> Result<SetRequest, SetError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.set),
        }
    }

    fn parse_line(&mut self, line: &str) -> Result<(), SetError> {
        let Some((key, value)) = line.split_once('=') else {
            return Err(SetError {
                errno: Errno::PROTOCOL,
                message: format!("line {} has no '=': {line:?}", self.lines),
            });
        };
        let n = self.lines;
        let bad = |what: &str| SetError::invalid(format!("line {n}: invalid {what}: {value:?}"));
        if key == "public_key" {
            let public_key = PublicKey::from_hex(value).map_err(|_| bad(key))?;
            self.set.peers.push(PeerChange::new(public_key));
            return Ok(());
        }
        let Some(peer) = self.set.peers.last_mut() else {
            let set = &mut self.set;
            match key {
                "private_key" => {
                    set.private_key = Some(PrivateKey::from_hex(value).map_err(|_| bad(key))?)
                }
                "listen_port" => set.listen_port = Some(parse_uint(value).ok_or_else(|| bad(key))?),
                "fwmark" => set.fwmark = Some(parse_uint(value).ok_or_else(|| bad(key))?),
                "replace_peers" => set.replace_peers = parse_true(value).ok_or_else(|| bad(key))?,
                _ => {
                    return Err(SetError::invalid(format!(
                        "line {n}: unknown interface key {key:?}"
                    )))
                }
            }
            return Ok(());
        };
        match key {
            "remove" => peer.remove = parse_true(value).ok_or_else(|| bad(key))?,
            "update_only" => peer.update_only = parse_true(value).ok_or_else(|| bad(key))?,
            "preshared_key" => {
                let psk = PresharedKey::from_hex(value).map_err(|_| bad(key))?;
                peer.preshared_key = Some((psk.as_bytes() != &[0; 32]).then_some(psk));
            }
            "endpoint" => peer.endpoint = Some(value.parse().map_err(|_| bad(key))?),
            "persistent_keepalive_interval" => {
                peer.persistent_keepalive = Some(parse_uint(value).ok_or_else(|| bad(key))?)
            }
            "replace_allowed_ips" => {
                parse_true(value).ok_or_else(|| bad(key))?;
                // What came before is replaced too: only the lines after this one count.
                peer.replace_allowed_ips = true;
                peer.allowed_ips.clear();
            }
            "allowed_ip" => {
                let (remove, prefix) = match value.strip_prefix('-') {
                    Some(rest) => (true, rest),
                    None => (false, value),
                };
                let net = prefix.parse::<IpNet>().map_err(|_| bad(key))?.trunc();
                peer.allowed_ips.push(if remove {
                    AllowedIpChange::Remove(net)
                } else {
                    AllowedIpChange::Add(net)
                });
            }
            "protocol_version" if value == "1" => {}
            "protocol_version" => return Err(bad("protocol_version (only 1 exists)")),
            _ => {
                return Err(SetError::invalid(format!(
                    "line {n}: unknown peer key {key:?}"
                )))
            }
        }
        Ok(())
    }
}

/// Parses the body of a `set=1` request (the lines after `set=1`, without the blank line).
/// Any invalid line rejects the whole request, so nothing is half-applied. (The server feeds
/// [`SetParser`] as lines arrive; this is its whole-text form for tests.)
#[cfg(test)]
pub fn parse_set<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<SetRequest, SetError> {
    let mut parser = SetParser::new();
    for line in lines {
        parser.feed(line);
    }
    parser.finish()
}

/// A decimal number of the field's width, digits only (as Go's `strconv.ParseUint`: no sign,
/// no spaces).
fn parse_uint<T: std::str::FromStr>(value: &str) -> Option<T> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn parse_true(value: &str) -> Option<bool> {
    (value == "true").then_some(true)
}

/// Applies the key and peer part of a validated `set` to the device (the driver handles the
/// port and fwmark, which belong to the sockets).
pub fn apply_to_device(set: SetRequest, device: &mut Device) {
    if let Some(key) = set.private_key {
        // The all-zero key removes ours.
        device.set_private_key(key);
    }
    if set.replace_peers {
        device.clear_peers();
    }
    for change in set.peers {
        if device.public_key() == Some(change.public_key) {
            // As wireguard-go: a section naming our own key configures nothing.
            continue;
        }
        if change.remove {
            device.remove_peer(&change.public_key);
            continue;
        }
        let id = match device.peer_id(&change.public_key) {
            Some(id) => id,
            None if change.update_only => continue,
            None => device.upsert_peer(PeerSettings::new(change.public_key)),
        };
        if let Some(psk) = change.preshared_key {
            device.set_preshared_key(id, psk);
        }
        if let Some(endpoint) = change.endpoint {
            device.set_endpoint(id, endpoint);
        }
        if let Some(secs) = change.persistent_keepalive {
            device.set_persistent_keepalive(id, Some(secs));
        }
        if change.replace_allowed_ips {
            device.set_allowed_ips(id, Vec::new());
        }
        for op in change.allowed_ips {
            match op {
                AllowedIpChange::Add(net) => device.add_allowed_ip(id, net),
                AllowedIpChange::Remove(net) => {
                    device.remove_allowed_ip(id, net);
                }
            }
        }
    }
}

/// The answer to `get=1`, without the final `errno=0` line. As wireguard-go, no `private_key=`
/// line when the device has no key.
pub fn format_get(device: &Device, listen_port: u16, fwmark: Option<u32>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if let Some(key) = device.private_key() {
        let _ = writeln!(out, "private_key={}", key.to_hex());
    }
    let _ = writeln!(out, "listen_port={listen_port}");
    if let Some(mark) = fwmark.filter(|m| *m != 0) {
        let _ = writeln!(out, "fwmark={mark}");
    }
    let (now, wall) = (Instant::now(), SystemTime::now());
    for peer in device.peers() {
        let _ = writeln!(out, "public_key={}", peer.public_key.to_hex());
        if let Some(psk) = device
            .peer_id(&peer.public_key)
            .and_then(|id| device.preshared_key(id))
        {
            let _ = writeln!(out, "preshared_key={}", psk.to_hex());
        }
        let _ = writeln!(out, "protocol_version=1");
        if let Some(endpoint) = peer.endpoint {
            let _ = writeln!(out, "endpoint={endpoint}");
        }
        let since_epoch = peer
            .last_handshake
            .and_then(|t| wall.checked_sub(now.duration_since(t)))
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or(Duration::ZERO);
        let _ = writeln!(out, "last_handshake_time_sec={}", since_epoch.as_secs());
        let _ = writeln!(
            out,
            "last_handshake_time_nsec={}",
            since_epoch.subsec_nanos()
        );
        let _ = writeln!(out, "tx_bytes={}", peer.tx_bytes);
        let _ = writeln!(out, "rx_bytes={}", peer.rx_bytes);
        let _ = writeln!(
            out,
            "persistent_keepalive_interval={}",
            peer.persistent_keepalive.unwrap_or(0)
        );
        for net in &peer.allowed_ips {
            let _ = writeln!(out, "allowed_ip={net}");
        }
    }
    out
}

/// Reads one line (without its newline), refusing lines longer than [`MAX_LINE`].
/// `Ok(None)` at end of stream. A last line without a newline counts as a line.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    line: &mut String,
) -> anyhow::Result<Option<()>> {
    line.clear();
    let n = (&mut *reader)
        .take(MAX_LINE as u64 + 1)
        .read_line(line)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    if line.ends_with('\n') {
        line.pop();
    } else if n > MAX_LINE {
        anyhow::bail!("line longer than {MAX_LINE} bytes");
    }
    Ok(Some(()))
}

/// Reads the body of a `set=1` (up to the blank line or the end of the stream) into the
/// streaming parser.
async fn read_set<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
    line: &mut String,
) -> anyhow::Result<Result<SetRequest, SetError>> {
    let mut parser = SetParser::new();
    while read_line(reader, line).await?.is_some() && !line.is_empty() {
        parser.feed(line);
    }
    Ok(parser.finish())
}

/// Serves one client connection until it closes, sends something unintelligible, or the
/// driver is gone. Shared by every transport.
async fn handle_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    requests: mpsc::Sender<Request>,
) -> anyhow::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    // Several requests may share one connection.
    while read_line(&mut reader, &mut line).await?.is_some() {
        match line.as_str() {
            "get=1" => {
                // The request ends with a blank line; anything else there is refused, as
                // wireguard-go does.
                let errno = match read_line(&mut reader, &mut line).await? {
                    Some(()) if line.is_empty() => {
                        let (tx, rx) = oneshot::channel();
                        requests.send(Request::Get(tx)).await?;
                        let text = rx.await?;
                        write.write_all(text.as_bytes()).await?;
                        Errno::OK
                    }
                    Some(()) => {
                        tracing::warn!("UAPI: refused get: trailing line {line:?}");
                        Errno::INVALID
                    }
                    None => return Ok(()),
                };
                write
                    .write_all(format!("errno={}\n\n", errno.0).as_bytes())
                    .await?;
            }
            "set=1" => {
                let errno = match read_set(&mut reader, &mut line).await? {
                    Ok(set) => {
                        let (tx, rx) = oneshot::channel();
                        requests.send(Request::Set(set, tx)).await?;
                        rx.await?.err().unwrap_or(Errno::OK)
                    }
                    Err(e) => {
                        tracing::warn!("UAPI: refused set, nothing applied: {e}");
                        e.errno
                    }
                };
                write
                    .write_all(format!("errno={}\n\n", errno.0).as_bytes())
                    .await?;
            }
            "" => continue,
            other => {
                tracing::warn!("UAPI: unknown operation {other:?}");
                write
                    .write_all(format!("errno={}\n\n", Errno::PROTOCOL.0).as_bytes())
                    .await?;
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncBufReadExt;

    fn key_hex() -> (PublicKey, String) {
        let k = PrivateKey::generate().public_key();
        (k, k.to_hex())
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn set(device: &mut Device, text: &str) {
        apply_to_device(parse_set(text.lines()).unwrap(), device);
    }

    fn allowed(device: &Device, pk: &PublicKey) -> Vec<IpNet> {
        let id = device.peer_id(pk).unwrap();
        device.peer_snapshot(id).unwrap().allowed_ips
    }

    #[test]
    fn a_full_set_request_parses() {
        let (pk, hex) = key_hex();
        let text = format!(
            "listen_port=51820\nfwmark=0\nreplace_peers=true\npublic_key={hex}\n\
             endpoint=[fd00:1::2]:51820\npersistent_keepalive_interval=25\n\
             replace_allowed_ips=true\nallowed_ip=198.18.5.9/24\nallowed_ip=-fd00:2::/64\n\
             protocol_version=1"
        );
        let set = parse_set(text.lines()).unwrap();
        assert_eq!(set.listen_port, Some(51820));
        assert!(set.replace_peers);
        let peer = &set.peers[0];
        assert_eq!(peer.public_key, pk);
        assert_eq!(peer.endpoint, Some("[fd00:1::2]:51820".parse().unwrap()));
        assert_eq!(peer.persistent_keepalive, Some(25));
        assert!(peer.replace_allowed_ips);
        assert_eq!(
            peer.allowed_ips,
            vec![
                AllowedIpChange::Add(net("198.18.5.0/24")),
                AllowedIpChange::Remove(net("fd00:2::/64")),
            ]
        );
    }

    #[test]
    fn one_bad_line_rejects_the_whole_set_with_wireguard_gos_errno() {
        let (_, hex) = key_hex();
        let invalid = Errno(-errno_values::EINVAL);
        for (bad, errno) in [
            (
                format!("public_key={hex}\nallowed_ip=198.18.0.0/33"),
                invalid,
            ),
            (format!("public_key={hex}\nallowed_ip=-198.18.0.0"), invalid),
            (
                format!("public_key={hex}\nallowed_ip=--198.18.0.0/16"),
                invalid,
            ),
            (format!("public_key={hex}\nendpoint=nowhere"), invalid),
            ("listen_port=70000".to_string(), invalid),
            ("fwmark=-1".to_string(), invalid),
            ("listen_port=+5".to_string(), invalid),
            (
                format!("public_key={hex}\npersistent_keepalive_interval= 5"),
                invalid,
            ),
            ("private_key=abcd".to_string(), invalid),
            ("replace_peers=false".to_string(), invalid),
            (format!("public_key={hex}\nbogus=1"), invalid),
            (format!("public_key={hex}\nremove=yes"), invalid),
            (format!("public_key={hex}\nprotocol_version=2"), invalid),
            ("endpoint=198.18.0.1:1".to_string(), invalid),
            ("public_key=zz".to_string(), invalid),
            (
                format!("public_key={hex}\nallowed_ip"),
                Errno(-errno_values::EPROTO),
            ),
        ] {
            let err = parse_set(bad.lines()).expect_err(&bad);
            assert_eq!(err.errno, errno, "{bad:?}: {err}");
        }
    }

    #[test]
    fn errno_values_are_wireguard_gos_negated_numbers() {
        // What wireguard-go sends on Linux, and on Windows (where it hard-codes these).
        #[cfg(any(target_os = "linux", windows))]
        {
            assert_eq!(Errno::INVALID, Errno(-22));
            assert_eq!(Errno::PROTOCOL, Errno(-71));
            assert_eq!(Errno::ADDRINUSE, Errno(-98));
        }
        #[cfg(unix)]
        assert_eq!(Errno::INVALID, Errno(-libc::EINVAL));
    }

    #[test]
    fn a_refused_set_changes_nothing_even_after_good_lines() {
        let mut device = Device::new(PrivateKey::generate());
        let (pk, hex) = key_hex();
        set(
            &mut device,
            &format!("public_key={hex}\nallowed_ip=198.18.1.0/24"),
        );
        let before = format_get(&device, 1, None);
        let text = format!(
            "replace_peers=true\npublic_key={hex}\nallowed_ip=198.18.2.0/24\nallowed_ip=nonsense"
        );
        assert!(parse_set(text.lines()).is_err());
        assert_eq!(format_get(&device, 1, None), before);
        assert_eq!(allowed(&device, &pk), vec![net("198.18.1.0/24")]);
    }

    #[test]
    fn the_all_zero_private_key_removes_the_key_and_get_omits_it() {
        let mut device = Device::new(PrivateKey::generate());
        let (pk, hex) = key_hex();
        let zero = "0".repeat(64);
        set(
            &mut device,
            &format!("private_key={zero}\npublic_key={hex}\nallowed_ip=198.18.3.0/24"),
        );
        assert!(device.private_key().is_none());
        let got = format_get(&device, 51820, None);
        assert!(got.starts_with("listen_port=51820\n"), "{got}");
        assert!(!got.contains("private_key="));
        assert_eq!(allowed(&device, &pk), vec![net("198.18.3.0/24")]);

        let key = PrivateKey::generate();
        set(&mut device, &format!("private_key={}", key.to_hex()));
        assert_eq!(device.private_key(), Some(&key));
        assert!(
            format_get(&device, 1, None).starts_with(&format!("private_key={}\n", key.to_hex()))
        );
    }

    #[test]
    fn allowed_ip_removal_and_replacement_follow_line_order() {
        let mut device = Device::new(PrivateKey::generate());
        let (a, a_hex) = key_hex();
        let (b, b_hex) = key_hex();
        set(
            &mut device,
            &format!(
                "public_key={a_hex}\nallowed_ip=198.18.1.0/24\nallowed_ip=198.18.2.0/24\n\
                 allowed_ip=fd00:1::/64\npublic_key={b_hex}\nallowed_ip=198.18.9.0/24"
            ),
        );
        // Removal of our own prefix (host bits ignored), of b's prefix (not ours: left alone),
        // of an absent one (no error).
        set(
            &mut device,
            &format!(
                "public_key={a_hex}\nallowed_ip=-198.18.2.7/24\nallowed_ip=-198.18.9.0/24\n\
                 allowed_ip=-198.19.0.0/16"
            ),
        );
        assert_eq!(
            allowed(&device, &a),
            vec![net("198.18.1.0/24"), net("fd00:1::/64")]
        );
        assert_eq!(allowed(&device, &b), vec![net("198.18.9.0/24")]);
        // replace_allowed_ips drops what came before it, in the request and on the device.
        set(
            &mut device,
            &format!(
                "public_key={a_hex}\nallowed_ip=198.18.4.0/24\nreplace_allowed_ips=true\n\
                 allowed_ip=198.18.5.0/24\nallowed_ip=198.18.6.0/24\nallowed_ip=-198.18.5.0/24"
            ),
        );
        assert_eq!(allowed(&device, &a), vec![net("198.18.6.0/24")]);
    }

    #[test]
    fn peer_sections_remove_update_only_replace_peers_and_our_own_key() {
        let own = PrivateKey::generate();
        let mut device = Device::new(own.clone());
        let (pk, hex) = key_hex();
        let psk = PresharedKey::generate();
        set(
            &mut device,
            &format!(
                "public_key={hex}\npreshared_key={}\nendpoint=198.18.0.2:51820\nallowed_ip=198.18.9.0/24",
                psk.to_hex()
            ),
        );
        let got = format_get(&device, 4242, Some(7));
        assert!(got.contains("listen_port=4242\nfwmark=7\n"));
        assert!(got.contains(&format!(
            "public_key={hex}\npreshared_key={}\n",
            psk.to_hex()
        )));
        assert!(got.contains("endpoint=198.18.0.2:51820\n"));
        assert!(got.contains("last_handshake_time_sec=0\n"));
        assert!(got.contains("allowed_ip=198.18.9.0/24\n"));

        // update_only changes an existing peer, never creates one.
        set(
            &mut device,
            &format!("public_key={hex}\nupdate_only=true\npersistent_keepalive_interval=5"),
        );
        let id = device.peer_id(&pk).unwrap();
        assert_eq!(
            device.peer_snapshot(id).unwrap().persistent_keepalive,
            Some(5)
        );
        set(&mut device, &format!("public_key={hex}\nremove=true"));
        assert!(device.peer_id(&pk).is_none());
        set(
            &mut device,
            &format!("public_key={hex}\nupdate_only=true\nallowed_ip=198.18.1.0/24"),
        );
        assert!(
            device.peer_id(&pk).is_none(),
            "update_only never creates a peer"
        );

        // A section with our own public key configures nothing.
        set(
            &mut device,
            &format!(
                "public_key={}\nallowed_ip=198.18.7.0/24",
                own.public_key().to_hex()
            ),
        );
        assert!(device.peers().is_empty());

        // replace_peers empties the device before the sections that follow.
        let (other, other_hex) = key_hex();
        set(
            &mut device,
            &format!("public_key={hex}\nallowed_ip=198.18.1.0/24"),
        );
        set(
            &mut device,
            &format!("replace_peers=true\npublic_key={other_hex}\nallowed_ip=198.18.1.0/24"),
        );
        let keys: Vec<_> = device.peers().iter().map(|p| p.public_key).collect();
        assert_eq!(keys, vec![other]);
    }

    /// A stand-in for the driver's control branch: applies requests to `device` (without the
    /// sockets' part).
    fn fake_driver(mut device: Device) -> (mpsc::Sender<Request>, tokio::task::JoinHandle<Device>) {
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(async move {
            while let Some(request) = rx.recv().await {
                match request {
                    Request::Get(reply) => {
                        let _ = reply.send(format_get(&device, 51820, None));
                    }
                    Request::Set(set, reply) => {
                        apply_to_device(set, &mut device);
                        let _ = reply.send(Ok(()));
                    }
                }
            }
            device
        });
        (tx, task)
    }

    /// Reads one answer (up to and including `errno=N` and the blank line).
    async fn read_answer<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> (Vec<String>, i32) {
        let mut lines = Vec::new();
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                reader.read_line(&mut line).await.unwrap() > 0,
                "stream ended"
            );
            let text = line.trim_end_matches('\n');
            if let Some(errno) = text.strip_prefix("errno=") {
                let errno = errno.parse().unwrap();
                line.clear();
                reader.read_line(&mut line).await.unwrap();
                assert_eq!(line, "\n", "errno is followed by a blank line");
                return (lines, errno);
            }
            lines.push(text.to_string());
        }
    }

    #[tokio::test]
    async fn a_huge_set_split_into_small_reads_applies_and_reads_back_exactly() {
        let (requests, driver) = fake_driver(Device::new(PrivateKey::generate()));
        // A tiny pipe: every request and answer crosses it in many pieces.
        let (client, server) = tokio::io::duplex(1000);
        let conn = tokio::spawn(handle_connection(server, requests));
        let (read, mut write) = tokio::io::split(client);
        let mut reader = tokio::io::BufReader::new(read);

        let (pk, hex) = key_hex();
        let nets: Vec<String> = (0..130_000u32)
            .map(|i| {
                if i % 2 == 0 {
                    let a = 0xC612_0000u32 | (i >> 1); // 198.18.0.0/15, /32s
                    format!("{}/32", std::net::Ipv4Addr::from(a))
                } else {
                    format!("fd00:{:x}:{:x}::/48", i >> 16, i & 0xffff)
                }
            })
            .collect();
        let mut request =
            format!("set=1\nreplace_peers=true\npublic_key={hex}\nreplace_allowed_ips=true\n");
        for n in &nets {
            request.push_str(&format!("allowed_ip={n}\n"));
        }
        // A refused set on the same connection first: it must change nothing and leave the
        // connection usable.
        let bad = format!("set=1\npublic_key={hex}\nallowed_ip=198.18.0.0/16\nbogus\n\n");
        let started = std::time::Instant::now();
        let writer = tokio::spawn(async move {
            write.write_all(bad.as_bytes()).await.unwrap();
            write.write_all(request.as_bytes()).await.unwrap();
            write.write_all(b"\nget=1\n\n").await.unwrap();
            write
        });
        assert_eq!(read_answer(&mut reader).await, (vec![], Errno::PROTOCOL.0));
        assert_eq!(read_answer(&mut reader).await, (vec![], 0));
        let (got, errno) = read_answer(&mut reader).await;
        let elapsed = started.elapsed();
        assert_eq!(errno, 0);
        let read_back: Vec<&str> = got
            .iter()
            .filter_map(|l| l.strip_prefix("allowed_ip="))
            .collect();
        assert_eq!(read_back.len(), nets.len());
        assert_eq!(
            read_back,
            nets.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert!(
            elapsed < Duration::from_secs(20),
            "130 000 AllowedIPs took {elapsed:?} through the socket"
        );

        drop(writer.await.unwrap());
        drop(reader);
        conn.await.unwrap().unwrap();
        let device = driver.await.unwrap();
        assert_eq!(allowed(&device, &pk).len(), 130_000);
    }

    #[tokio::test]
    async fn get_with_trailing_text_and_unknown_operations_are_refused() {
        let (requests, _driver) = fake_driver(Device::new(PrivateKey::generate()));
        let (client, server) = tokio::io::duplex(64);
        let conn = tokio::spawn(handle_connection(server, requests));
        let (read, mut write) = tokio::io::split(client);
        let mut reader = tokio::io::BufReader::new(read);
        write.write_all(b"get=1\nx\n").await.unwrap();
        assert_eq!(read_answer(&mut reader).await, (vec![], Errno::INVALID.0));
        write.write_all(b"list=1\n\n").await.unwrap();
        assert_eq!(read_answer(&mut reader).await, (vec![], Errno::PROTOCOL.0));
        conn.await.unwrap().unwrap();
    }
}
