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
//! This module owns: the protocol — the per-connection reader, the parser that turns a `set` into
//! a validated [`SetRequest`] *before* anything changes (a bad line changes nothing), the formatter
//! for `get` ([`format_get`]), and [`apply_to_device`]. The per-OS transport modules only listen,
//! accept and hand each connection to the shared reader; [`serve`] is theirs. The driver owns the
//! device, so requests travel to it over a channel and are applied between packets.

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

/// Longest line we accept; real lines are under 100 bytes.
const MAX_LINE: usize = 4096;
/// Most lines in one `set`; enough for thousands of peers, small enough to bound memory.
const MAX_SET_LINES: usize = 1 << 20;

/// An errno value for the `errno=` line (positive, as wireguard-go and boringtun send it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl Errno {
    /// A malformed or invalid request.
    pub const INVALID: Errno = Errno(libc::EINVAL);
    /// The requested listen port is taken.
    pub const ADDRINUSE: Errno = Errno(libc::EADDRINUSE);
    /// Not `get=1` or `set=1`.
    pub const PROTOCOL: Errno = Errno(libc::EPROTO);
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
    /// `private_key=`.
    pub private_key: Option<PrivateKey>,
    /// `listen_port=`.
    pub listen_port: Option<u16>,
    /// `fwmark=` (0 clears it).
    pub fwmark: Option<u32>,
    /// `replace_peers=true`: remove every existing peer before applying the sections below.
    pub replace_peers: bool,
    /// The `public_key=` sections, in order.
    pub peers: Vec<PeerChange>,
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
    /// `replace_allowed_ips=true`.
    pub replace_allowed_ips: bool,
    /// `allowed_ip=` lines.
    pub allowed_ips: Vec<IpNet>,
}

/// Parses the body of a `set=1` request (the lines after `set=1`, without the blank line).
/// Any invalid line rejects the whole request, so nothing is half-applied.
pub fn parse_set<'a>(lines: impl IntoIterator<Item = &'a str>) -> Result<SetRequest, String> {
    let mut set = SetRequest::default();
    for line in lines {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line without '=': {line:?}"))?;
        let bad = |what: &str| format!("invalid {what}: {value:?}");
        if key == "public_key" {
            set.peers.push(PeerChange {
                public_key: PublicKey::from_hex(value).map_err(|_| bad("public_key"))?,
                remove: false,
                update_only: false,
                preshared_key: None,
                endpoint: None,
                persistent_keepalive: None,
                replace_allowed_ips: false,
                allowed_ips: Vec::new(),
            });
            continue;
        }
        let Some(peer) = set.peers.last_mut() else {
            match key {
                "private_key" => {
                    set.private_key = Some(PrivateKey::from_hex(value).map_err(|_| bad(key))?);
                    if set
                        .private_key
                        .as_ref()
                        .is_some_and(|k| k.as_bytes() == &[0; 32])
                    {
                        return Err("removing the private key is not supported".into());
                    }
                }
                "listen_port" => set.listen_port = Some(value.parse().map_err(|_| bad(key))?),
                "fwmark" => set.fwmark = Some(value.parse().map_err(|_| bad(key))?),
                "replace_peers" => set.replace_peers = parse_true(value).ok_or_else(|| bad(key))?,
                _ => return Err(format!("unknown interface key {key:?}")),
            }
            continue;
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
                peer.persistent_keepalive = Some(value.parse().map_err(|_| bad(key))?)
            }
            "replace_allowed_ips" => {
                peer.replace_allowed_ips = parse_true(value).ok_or_else(|| bad(key))?
            }
            "allowed_ip" => peer
                .allowed_ips
                .push(value.parse::<IpNet>().map_err(|_| bad(key))?.trunc()),
            "protocol_version" if value == "1" => {}
            "protocol_version" => return Err(format!("unsupported protocol_version {value:?}")),
            _ => return Err(format!("unknown peer key {key:?}")),
        }
    }
    Ok(set)
}

fn parse_true(value: &str) -> Option<bool> {
    (value == "true").then_some(true)
}

/// Applies the peer part of a validated `set` to the device (the driver handles the port and
/// fwmark, which belong to the sockets).
pub fn apply_to_device(set: SetRequest, device: &mut Device) {
    if let Some(key) = set.private_key {
        device.set_private_key(key);
    }
    if set.replace_peers {
        device.clear_peers();
    }
    for change in set.peers {
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
        for net in change.allowed_ips {
            device.add_allowed_ip(id, net);
        }
    }
}

/// The answer to `get=1`, without the final `errno=0` line.
pub fn format_get(device: &Device, listen_port: u16, fwmark: Option<u32>) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "private_key={}", device.private_key().to_hex());
    let _ = writeln!(out, "listen_port={listen_port}");
    if let Some(mark) = fwmark {
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
/// `Ok(None)` at end of stream.
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
    if !line.ends_with('\n') {
        anyhow::bail!("line too long or truncated");
    }
    line.pop();
    Ok(Some(()))
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
                // The request ends with a blank line.
                read_line(&mut reader, &mut line).await?;
                let (tx, rx) = oneshot::channel();
                requests.send(Request::Get(tx)).await?;
                let text = rx.await?;
                write
                    .write_all(format!("{text}errno=0\n\n").as_bytes())
                    .await?;
            }
            "set=1" => {
                let mut body = Vec::new();
                loop {
                    if read_line(&mut reader, &mut line).await?.is_none() || line.is_empty() {
                        break;
                    }
                    if body.len() >= MAX_SET_LINES {
                        anyhow::bail!("set request too long");
                    }
                    body.push(std::mem::take(&mut line));
                }
                let errno = match parse_set(body.iter().map(String::as_str)) {
                    Ok(set) => {
                        let (tx, rx) = oneshot::channel();
                        requests.send(Request::Set(set, tx)).await?;
                        rx.await?.err().unwrap_or(Errno(0))
                    }
                    Err(e) => {
                        tracing::warn!("UAPI: refused set: {e}");
                        Errno::INVALID
                    }
                };
                write
                    .write_all(format!("errno={}\n\n", errno.0).as_bytes())
                    .await?;
            }
            "" => continue,
            _ => {
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

    fn key_hex() -> (PublicKey, String) {
        let k = PrivateKey::generate().public_key();
        (k, k.to_hex())
    }

    #[test]
    fn a_full_set_request_parses() {
        let (pk, hex) = key_hex();
        let text = format!(
            "listen_port=51820\nfwmark=0\nreplace_peers=true\npublic_key={hex}\n\
             endpoint=[fd00:1::2]:51820\npersistent_keepalive_interval=25\n\
             replace_allowed_ips=true\nallowed_ip=198.18.5.9/24\nallowed_ip=fd00:2::/64\n\
             protocol_version=1"
        );
        let set = parse_set(text.lines()).unwrap();
        assert_eq!(set.listen_port, Some(51820));
        assert!(set.replace_peers);
        let peer = &set.peers[0];
        assert_eq!(peer.public_key, pk);
        assert_eq!(peer.endpoint, Some("[fd00:1::2]:51820".parse().unwrap()));
        assert_eq!(peer.persistent_keepalive, Some(25));
        assert_eq!(
            peer.allowed_ips,
            vec![
                "198.18.5.0/24".parse::<IpNet>().unwrap(),
                "fd00:2::/64".parse().unwrap()
            ]
        );
    }

    #[test]
    fn one_bad_line_rejects_the_whole_set() {
        let (_, hex) = key_hex();
        for bad in [
            format!("public_key={hex}\nallowed_ip=198.18.0.0/33"),
            format!("public_key={hex}\nendpoint=nowhere"),
            "listen_port=70000".to_string(),
            format!("public_key={hex}\nbogus=1"),
            "endpoint=198.18.0.1:1".to_string(),
            "public_key=zz".to_string(),
            format!("private_key={}", "0".repeat(64)),
        ] {
            assert!(parse_set(bad.lines()).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn set_then_get_reflects_the_change() {
        let mut device = Device::new(PrivateKey::generate());
        let (pk, hex) = key_hex();
        let psk = PresharedKey::generate();
        let text = format!(
            "public_key={hex}\npreshared_key={}\nendpoint=198.18.0.2:51820\nallowed_ip=198.18.9.0/24",
            psk.to_hex()
        );
        apply_to_device(parse_set(text.lines()).unwrap(), &mut device);
        let got = format_get(&device, 4242, Some(7));
        assert!(got.contains("listen_port=4242\nfwmark=7\n"));
        assert!(got.contains(&format!(
            "public_key={hex}\npreshared_key={}\n",
            psk.to_hex()
        )));
        assert!(got.contains("endpoint=198.18.0.2:51820\n"));
        assert!(got.contains("last_handshake_time_sec=0\n"));
        assert!(got.contains("allowed_ip=198.18.9.0/24\n"));

        let removal = format!("public_key={hex}\nremove=true");
        apply_to_device(parse_set(removal.lines()).unwrap(), &mut device);
        assert!(device.peer_id(&pk).is_none());
        let update_only = format!("public_key={hex}\nupdate_only=true\nallowed_ip=198.18.1.0/24");
        apply_to_device(parse_set(update_only.lines()).unwrap(), &mut device);
        assert!(
            device.peer_id(&pk).is_none(),
            "update_only never creates a peer"
        );
    }
}
