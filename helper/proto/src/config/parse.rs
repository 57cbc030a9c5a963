//! The wg-quick `.conf` reader: text → [`TunnelConfig`], and [`ConfigError`], whose message names
//! the file, the 1-based line and the fault.
//!
//! The accepted syntax is the one `wg-quick` and `wg` understand:
//! - `[Interface]` and `[Peer]` section headers, case-insensitive (like `wg`, whitespace inside the
//!   brackets is ignored);
//! - `Key = Value` lines, keys case-insensitive, whitespace around key and value trimmed;
//! - `#` starts a comment anywhere on a line (wg-quick strips `#.*` before anything else, so a
//!   hook command cannot contain `#` either); blank lines are ignored; `\r\n` line ends work.
//! - For the keys that `wg` itself parses (`PrivateKey`, `ListenPort`, `FwMark`, `PublicKey`,
//!   `PresharedKey`, `AllowedIPs`, `Endpoint`, `PersistentKeepalive`) all whitespace inside the
//!   key and the value is ignored, as `wg` does (`Allowed IPs = 198.18.0.0 / 24` is accepted).
//! - `Address` and `DNS` lists are split on commas and whitespace, as wg-quick's word splitting
//!   does; `AllowedIPs` lists on commas only, as `wg` does.
//!
//! Where wg would silently accept something that is almost certainly a mistake, this reader
//! refuses it with a precise message instead: a scalar key given twice, a second `[Interface]`,
//! two peers with one public key, one AllowedIPs network on two peers, an IPv6 endpoint without
//! brackets, port 0 in an endpoint, unknown keys. A leading UTF-8 byte-order mark (left by some
//! Windows editors) is ignored.
//!
//! Secrets: error messages never quote the value of `PrivateKey` or `PresharedKey`, never quote a
//! line that is not recognisably `Key = Value` (a pasted key), and as a last line of defence any
//! run of 40 or more base64 characters, or any fragment of such a run on the offending line, is
//! replaced by `<redacted>` before a message is stored (so a key pasted into, say, `Address` is
//! not echoed either).

use super::{Endpoint, Hooks, InterfaceConfig, PeerConfig, Table, TunnelConfig};
use crate::key::{KeyError, PresharedKey, PrivateKey, PublicKey};
use ipnet::IpNet;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Why a configuration was refused: the file (if any), the 1-based line (if the fault is on one
/// line) and a message that says what is wrong. Displayed as `wg0.conf:12: message`, or
/// `<input>:12: message` when the text did not come from a file, or `wg0.conf: message` for
/// whole-file faults such as a missing `[Interface]`.
///
/// The message never contains a private or preshared key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", Location { file: self.file.as_deref(), line: self.line })]
pub struct ConfigError {
    file: Option<PathBuf>,
    line: Option<usize>,
    message: String,
}

impl ConfigError {
    fn new(file: Option<&Path>, line: Option<usize>, message: impl Into<String>) -> Self {
        Self::from_line(file, line, message, "")
    }

    /// An error about the line `source`: any fragment of a key-like run of `source` that made it
    /// into the message is redacted.
    fn from_line(
        file: Option<&Path>,
        line: Option<usize>,
        message: impl Into<String>,
        source: &str,
    ) -> Self {
        Self {
            file: file.map(Path::to_path_buf),
            line,
            message: redact(message.into(), source),
        }
    }

    /// The 1-based line the fault is on; `None` for whole-file faults (no `[Interface]`, the file
    /// could not be read).
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The file the text came from, if the caller named one.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// What is wrong, without the file and line prefix (e.g.
    /// `AllowedIPs: '198.18.0.0/33' is not a valid IP network (prefix length 33 > 32)`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// `file:line` (or `<input>:line`, or just `file`) for [`ConfigError`]'s `Display`.
struct Location<'a> {
    file: Option<&'a Path>,
    line: Option<usize>,
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.file {
            Some(file) => write!(f, "{}", file.display())?,
            None => f.write_str("<input>")?,
        }
        match self.line {
            Some(line) => write!(f, ":{line}"),
            None => Ok(()),
        }
    }
}

/// Base64 characters, the alphabet of keys.
fn is_base64(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '='
}

/// The maximal runs of base64 characters in `s`, with the text between them: `(is_run, text)`.
fn base64_runs(s: &str) -> impl Iterator<Item = (bool, &str)> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let run = is_base64(first);
        let end = rest
            .find(|c: char| is_base64(c) != run)
            .unwrap_or(rest.len());
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some((run, piece))
    })
}

/// The last line of defence against quoting a key: in `message`, every run of base64 characters
/// that is 40 or more long (a whole key), or 6 or more long and part of such a run in `source`
/// (a fragment of a key on the offending line), becomes `<redacted>`. No message built here
/// should contain either; if one slips through, a key still never shows.
fn redact(message: String, source: &str) -> String {
    const WHOLE_KEY: usize = 40;
    const FRAGMENT: usize = 6;
    let secrets: Vec<&str> = base64_runs(source)
        .filter(|(run, text)| *run && text.len() >= WHOLE_KEY)
        .map(|(_, text)| text)
        .collect();
    let hide = |text: &str| {
        text.len() >= WHOLE_KEY
            || (text.len() >= FRAGMENT && secrets.iter().any(|secret| secret.contains(text)))
    };
    if !base64_runs(&message).any(|(run, text)| run && hide(text)) {
        return message;
    }
    base64_runs(&message)
        .map(|(run, text)| {
            if run && hide(text) {
                "<redacted>"
            } else {
                text
            }
        })
        .collect()
}

/// Reads and parses a wg-quick `.conf` file. A read failure (missing file, permissions, not
/// UTF-8) is a [`ConfigError`] naming the file, with no line.
pub fn parse_file(path: &Path) -> Result<TunnelConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| ConfigError::new(Some(path), None, format!("cannot read the file: {e}")))?;
    parse(&text, Some(path))
}

/// Parses wg-quick `.conf` text. `file` is only used to name the source in errors.
pub fn parse(text: &str, file: Option<&Path>) -> Result<TunnelConfig, ConfigError> {
    let mut parser = Parser {
        file,
        source: "",
        interface: None,
        peers: Vec::new(),
        current: Current::Nothing,
        seen: [None; Field::ALL.len()],
        public_keys: HashMap::new(),
        routes: HashMap::new(),
    };
    for (index, raw) in text.split('\n').enumerate() {
        let raw = if index == 0 {
            raw.strip_prefix('\u{feff}').unwrap_or(raw)
        } else {
            raw
        };
        parser.line(raw, index + 1)?;
    }
    parser.finish()
}

/// Every key this reader knows, in both sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    PrivateKey,
    Address,
    ListenPort,
    Dns,
    Mtu,
    Table,
    FwMark,
    PreUp,
    PostUp,
    PreDown,
    PostDown,
    SaveConfig,
    PublicKey,
    PresharedKey,
    AllowedIps,
    Endpoint,
    PersistentKeepalive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SectionKind {
    Interface,
    Peer,
}

impl SectionKind {
    fn header(self) -> &'static str {
        match self {
            SectionKind::Interface => "[Interface]",
            SectionKind::Peer => "[Peer]",
        }
    }
}

impl Field {
    const ALL: [Field; 17] = [
        Field::PrivateKey,
        Field::Address,
        Field::ListenPort,
        Field::Dns,
        Field::Mtu,
        Field::Table,
        Field::FwMark,
        Field::PreUp,
        Field::PostUp,
        Field::PreDown,
        Field::PostDown,
        Field::SaveConfig,
        Field::PublicKey,
        Field::PresharedKey,
        Field::AllowedIps,
        Field::Endpoint,
        Field::PersistentKeepalive,
    ];

    /// The canonical spelling, as wg-quick's documentation and `wg showconf` write it.
    pub(super) const fn name(self) -> &'static str {
        match self {
            Field::PrivateKey => "PrivateKey",
            Field::Address => "Address",
            Field::ListenPort => "ListenPort",
            Field::Dns => "DNS",
            Field::Mtu => "MTU",
            Field::Table => "Table",
            Field::FwMark => "FwMark",
            Field::PreUp => "PreUp",
            Field::PostUp => "PostUp",
            Field::PreDown => "PreDown",
            Field::PostDown => "PostDown",
            Field::SaveConfig => "SaveConfig",
            Field::PublicKey => "PublicKey",
            Field::PresharedKey => "PresharedKey",
            Field::AllowedIps => "AllowedIPs",
            Field::Endpoint => "Endpoint",
            Field::PersistentKeepalive => "PersistentKeepalive",
        }
    }

    fn section(self) -> SectionKind {
        match self {
            Field::PublicKey
            | Field::PresharedKey
            | Field::AllowedIps
            | Field::Endpoint
            | Field::PersistentKeepalive => SectionKind::Peer,
            _ => SectionKind::Interface,
        }
    }

    /// Keys that may appear on several lines, their values accumulating.
    fn repeatable(self) -> bool {
        matches!(
            self,
            Field::Address
                | Field::Dns
                | Field::PreUp
                | Field::PostUp
                | Field::PreDown
                | Field::PostDown
                | Field::AllowedIps
        )
    }

    /// Keys that wg-quick passes through to `wg`, which drops every whitespace character of such a
    /// line before reading it.
    fn parsed_by_wg(self) -> bool {
        matches!(
            self,
            Field::PrivateKey
                | Field::ListenPort
                | Field::FwMark
                | Field::PublicKey
                | Field::PresharedKey
                | Field::AllowedIps
                | Field::Endpoint
                | Field::PersistentKeepalive
        )
    }

    /// Finds a key by its (trimmed) spelling, case-insensitively; for `wg`'s keys, also with any
    /// whitespace inside (`Allowed IPs`).
    fn lookup(raw: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(raw))
            .or_else(|| {
                let squeezed = squeeze(raw);
                Field::ALL
                    .into_iter()
                    .find(|k| k.parsed_by_wg() && k.name().eq_ignore_ascii_case(&squeezed))
            })
    }
}

/// Whitespace as wg-quick (`[[:space:]]` in the C locale) and `wg` (`isspace`) see it.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn trim(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `s` without any whitespace, as `wg` reads its lines.
fn squeeze(s: &str) -> Cow<'_, str> {
    if s.contains(is_space) {
        Cow::Owned(s.chars().filter(|c| !is_space(*c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// True when `s` is short, printable and identifier-like, so quoting it in a message cannot leak
/// a pasted key.
fn quotable_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-' | '.'))
}

/// Case-insensitive edit distance, for "did you mean" suggestions.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// The candidate closest to `typed` if it is plausibly a typo of it.
fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let typed_lower = typed.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(typed, c), c))
        .filter(|(distance, c)| {
            let close = *distance <= (c.len() / 4).max(1);
            let lower = c.to_ascii_lowercase();
            let fragment = typed_lower.len() >= 4
                && (lower.contains(&typed_lower) || typed_lower.contains(&lower));
            close || fragment
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// Which section the lines being read belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Current {
    /// Before the first header.
    Nothing,
    Interface,
    /// The last entry of `Parser::peers`.
    Peer,
}

struct InterfaceDraft {
    header_line: usize,
    private_key: Option<PrivateKey>,
    addresses: Vec<IpNet>,
    listen_port: Option<u16>,
    dns_servers: Vec<IpAddr>,
    dns_search: Vec<String>,
    mtu: Option<u16>,
    table: Table,
    fwmark: Option<u32>,
    hooks: Hooks,
    save_config: bool,
}

struct PeerDraft {
    header_line: usize,
    public_key: Option<PublicKey>,
    preshared_key: Option<PresharedKey>,
    allowed_ips: Vec<IpNet>,
    endpoint: Option<Endpoint>,
    persistent_keepalive: Option<u16>,
}

struct Parser<'a> {
    file: Option<&'a Path>,
    /// The line being read, for redacting errors about it.
    source: &'a str,
    interface: Option<InterfaceDraft>,
    peers: Vec<PeerDraft>,
    current: Current,
    /// For each key, the line that set it in the current section (for "given twice").
    seen: [Option<usize>; Field::ALL.len()],
    /// Every peer public key so far, with its line.
    public_keys: HashMap<PublicKey, usize>,
    /// Every AllowedIPs network so far: the index of its peer and the line.
    routes: HashMap<IpNet, (usize, usize)>,
}

impl<'a> Parser<'a> {
    fn error(&self, line: usize, message: impl Into<String>) -> ConfigError {
        ConfigError::from_line(self.file, Some(line), message, self.source)
    }

    fn line(&mut self, raw: &'a str, line: usize) -> Result<(), ConfigError> {
        self.source = raw;
        let content = match raw.find('#') {
            Some(comment) => &raw[..comment],
            None => raw,
        };
        let content = trim(content);
        if content.is_empty() {
            return Ok(());
        }
        if content.starts_with('[') {
            return self.header(content, line);
        }
        let Some((raw_key, raw_value)) = content.split_once('=') else {
            let first_word = content.split(is_space).next().unwrap_or_default();
            let message = match Field::lookup(first_word) {
                Some(key) => format!(
                    "{name} has no '=': write it as '{name} = value'",
                    name = key.name()
                ),
                None => "expected 'Key = Value' or a section header such as [Peer], \
                         but this line has no '='"
                    .to_owned(),
            };
            return Err(self.error(line, message));
        };
        let raw_key = trim(raw_key);
        if raw_key.is_empty() {
            return Err(self.error(line, "missing key name before '='"));
        }
        let key = match Field::lookup(raw_key) {
            Some(key) => key,
            None => return Err(self.unknown_key(raw_key, line)),
        };
        let section = match self.current {
            Current::Nothing => {
                return Err(self.error(
                    line,
                    format!(
                        "{} is outside any section: put it under {}",
                        key.name(),
                        key.section().header()
                    ),
                ))
            }
            Current::Interface => SectionKind::Interface,
            Current::Peer => SectionKind::Peer,
        };
        if key.section() != section {
            let hint = match key {
                Field::PublicKey => " (the interface's own public key is derived from PrivateKey)",
                Field::PrivateKey => " (a peer is identified by its PublicKey)",
                _ => "",
            };
            return Err(self.error(
                line,
                format!(
                    "{} belongs in {}, not in {}{hint}",
                    key.name(),
                    key.section().header(),
                    section.header()
                ),
            ));
        }
        if !key.repeatable() {
            let slot = &mut self.seen[key as usize];
            if let Some(first) = *slot {
                return Err(self.error(
                    line,
                    format!(
                        "{} is given twice in this section (first on line {first})",
                        key.name()
                    ),
                ));
            }
            *slot = Some(line);
        }
        let value = trim(raw_value);
        let value = if key.parsed_by_wg() {
            squeeze(value)
        } else {
            Cow::Borrowed(value)
        };
        self.value(key, &value, line)
            .map_err(|message| self.error(line, format!("{}: {message}", key.name())))?;
        Ok(())
    }

    fn unknown_key(&self, raw_key: &str, line: usize) -> ConfigError {
        if !quotable_name(raw_key) {
            return self.error(
                line,
                "unrecognised line: expected 'Key = Value' with a known key",
            );
        }
        let section = match self.current {
            Current::Nothing => "outside any section",
            Current::Interface => "in [Interface]",
            Current::Peer => "in [Peer]",
        };
        let candidates = Field::ALL.into_iter().filter(|k| match self.current {
            Current::Nothing => true,
            Current::Interface => k.section() == SectionKind::Interface,
            Current::Peer => k.section() == SectionKind::Peer,
        });
        let suggestion = closest(raw_key, candidates.map(Field::name))
            .or_else(|| closest(raw_key, Field::ALL.into_iter().map(Field::name)))
            .map(|name| format!(" (did you mean '{name}'?)"))
            .unwrap_or_default();
        self.error(
            line,
            format!("unknown key '{raw_key}' {section}{suggestion}"),
        )
    }

    fn header(&mut self, content: &str, line: usize) -> Result<(), ConfigError> {
        let Some(inner) = content
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        else {
            return Err(self.error(
                line,
                "malformed section header: expected [Interface] or [Peer] alone on the line",
            ));
        };
        let name = squeeze(inner);
        let kind = if name.eq_ignore_ascii_case("Interface") {
            SectionKind::Interface
        } else if name.eq_ignore_ascii_case("Peer") {
            SectionKind::Peer
        } else {
            let message = if quotable_name(&name) {
                let suggestion = closest(&name, ["Interface", "Peer"])
                    .map(|s| format!(" (did you mean [{s}]?)"))
                    .unwrap_or_default();
                format!("unknown section [{name}]: only [Interface] and [Peer] exist{suggestion}")
            } else {
                "unknown section: only [Interface] and [Peer] exist".to_owned()
            };
            return Err(self.error(line, message));
        };
        self.close_section()?;
        self.seen = [None; Field::ALL.len()];
        match kind {
            SectionKind::Interface => {
                if let Some(first) = &self.interface {
                    return Err(self.error(
                        line,
                        format!(
                            "second [Interface] section (the first is on line {}); \
                             a file has exactly one",
                            first.header_line
                        ),
                    ));
                }
                self.interface = Some(InterfaceDraft {
                    header_line: line,
                    private_key: None,
                    addresses: Vec::new(),
                    listen_port: None,
                    dns_servers: Vec::new(),
                    dns_search: Vec::new(),
                    mtu: None,
                    table: Table::Auto,
                    fwmark: None,
                    hooks: Hooks::default(),
                    save_config: false,
                });
                self.current = Current::Interface;
            }
            SectionKind::Peer => {
                self.peers.push(PeerDraft {
                    header_line: line,
                    public_key: None,
                    preshared_key: None,
                    allowed_ips: Vec::new(),
                    endpoint: None,
                    persistent_keepalive: None,
                });
                self.current = Current::Peer;
            }
        }
        Ok(())
    }

    /// Checks that the section being left is complete.
    fn close_section(&self) -> Result<(), ConfigError> {
        match self.current {
            Current::Nothing => Ok(()),
            Current::Interface => match &self.interface {
                Some(draft) if draft.private_key.is_none() => {
                    Err(self.error(draft.header_line, "[Interface] has no PrivateKey"))
                }
                _ => Ok(()),
            },
            Current::Peer => match self.peers.last() {
                Some(draft) if draft.public_key.is_none() => {
                    Err(self.error(draft.header_line, "[Peer] has no PublicKey"))
                }
                _ => Ok(()),
            },
        }
    }

    /// Stores one value; the error is the message without the key name.
    fn value(&mut self, key: Field, value: &str, line: usize) -> Result<(), String> {
        let may_be_empty = matches!(
            key,
            Field::Address
                | Field::Dns
                | Field::AllowedIps
                | Field::PreUp
                | Field::PostUp
                | Field::PreDown
                | Field::PostDown
        );
        if value.is_empty() && !may_be_empty {
            return Err("missing value after '='".to_owned());
        }
        if key.section() == SectionKind::Peer {
            return self.peer_value(key, value, line);
        }
        let Some(interface) = self.interface.as_mut() else {
            return Err("internal error: no [Interface] is open".to_owned());
        };
        match key {
            Field::PrivateKey => interface.private_key = Some(parse_key(value)?),
            Field::Address => {
                for item in value.split(|c| c == ',' || is_space(c)) {
                    if !item.is_empty() {
                        interface.addresses.push(parse_network(item)?);
                    }
                }
            }
            Field::ListenPort => interface.listen_port = Some(parse_u16(value)?),
            Field::Dns => {
                for item in value.split(|c| c == ',' || is_space(c)) {
                    if item.is_empty() {
                        continue;
                    }
                    match parse_dns(item)? {
                        Dns::Server(ip) => interface.dns_servers.push(ip),
                        Dns::Search(domain) => interface.dns_search.push(domain),
                    }
                }
            }
            Field::Mtu => interface.mtu = Some(parse_mtu(value)?),
            Field::Table => interface.table = parse_table(value)?,
            Field::FwMark => interface.fwmark = parse_fwmark(value)?,
            Field::PreUp => interface.hooks.pre_up.push(value.to_owned()),
            Field::PostUp => interface.hooks.post_up.push(value.to_owned()),
            Field::PreDown => interface.hooks.pre_down.push(value.to_owned()),
            Field::PostDown => interface.hooks.post_down.push(value.to_owned()),
            Field::SaveConfig => interface.save_config = parse_bool(value)?,
            Field::PublicKey
            | Field::PresharedKey
            | Field::AllowedIps
            | Field::Endpoint
            | Field::PersistentKeepalive => {
                return Err("internal error: a [Peer] key in [Interface]".to_owned())
            }
        }
        Ok(())
    }

    fn peer_value(&mut self, key: Field, value: &str, line: usize) -> Result<(), String> {
        let index = self.peers.len().wrapping_sub(1);
        let Some(peer) = self.peers.last_mut() else {
            return Err("internal error: no [Peer] is open".to_owned());
        };
        match key {
            Field::PublicKey => {
                let public_key: PublicKey = parse_key(value)?;
                if let Some(first) = self.public_keys.get(&public_key) {
                    return Err(format!(
                        "the same key as the peer on line {first}: \
                         each peer may appear only once"
                    ));
                }
                self.public_keys.insert(public_key, line);
                peer.public_key = Some(public_key);
            }
            Field::PresharedKey => peer.preshared_key = Some(parse_key(value)?),
            Field::AllowedIps => {
                if value.is_empty() {
                    return Ok(());
                }
                for item in value.split(',') {
                    if item.is_empty() {
                        return Err(format!("empty entry in '{value}' (stray comma?)"));
                    }
                    let network = parse_network(item)?.trunc();
                    match self.routes.get(&network) {
                        Some(&(other, first)) if other != index => {
                            let other_header = self.peers.get(other).map_or(0, |p| p.header_line);
                            return Err(format!(
                                "{network} is already routed to the [Peer] on line \
                                 {other_header} (AllowedIPs on line {first}); wg would silently \
                                 move it to this peer, so remove it from one of them"
                            ));
                        }
                        Some(_) => {}
                        None => {
                            self.routes.insert(network, (index, line));
                        }
                    }
                    if let Some(peer) = self.peers.last_mut() {
                        peer.allowed_ips.push(network);
                    }
                }
            }
            Field::Endpoint => peer.endpoint = Some(parse_endpoint(value)?),
            Field::PersistentKeepalive => peer.persistent_keepalive = parse_keepalive(value)?,
            _ => return Err("internal error: an [Interface] key in [Peer]".to_owned()),
        }
        Ok(())
    }

    fn finish(self) -> Result<TunnelConfig, ConfigError> {
        self.close_section()?;
        let Some(draft) = self.interface else {
            return Err(ConfigError::new(
                self.file,
                None,
                "no [Interface] section: a tunnel needs one, with at least a PrivateKey",
            ));
        };
        let Some(private_key) = draft.private_key else {
            return Err(ConfigError::new(
                self.file,
                Some(draft.header_line),
                "[Interface] has no PrivateKey",
            ));
        };
        let mut peers = Vec::with_capacity(self.peers.len());
        for peer in self.peers {
            let Some(public_key) = peer.public_key else {
                return Err(ConfigError::new(
                    self.file,
                    Some(peer.header_line),
                    "[Peer] has no PublicKey",
                ));
            };
            peers.push(PeerConfig {
                public_key,
                preshared_key: peer.preshared_key,
                allowed_ips: peer.allowed_ips,
                endpoint: peer.endpoint,
                persistent_keepalive: peer.persistent_keepalive,
            });
        }
        Ok(TunnelConfig {
            interface: InterfaceConfig {
                private_key,
                addresses: draft.addresses,
                listen_port: draft.listen_port,
                dns_servers: draft.dns_servers,
                dns_search: draft.dns_search,
                mtu: draft.mtu,
                table: draft.table,
                fwmark: draft.fwmark,
                hooks: draft.hooks,
                save_config: draft.save_config,
            },
            peers,
        })
    }
}

/// Parses a base64 key; the message never quotes the value.
fn parse_key<K: std::str::FromStr<Err = KeyError>>(value: &str) -> Result<K, String> {
    value
        .parse()
        .map_err(|e: KeyError| format!("not a valid WireGuard key: {e}"))
}

/// `198.18.0.1`, `198.18.0.1/24`, `fd00::1/64`: an address with an optional prefix length
/// (default /32 or /128); host bits are kept.
fn parse_network(item: &str) -> Result<IpNet, String> {
    let (addr_text, prefix_text) = match item.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (item, None),
    };
    let Ok(addr) = addr_text.parse::<IpAddr>() else {
        return Err(match prefix_text {
            Some(_) => {
                format!("'{item}' is not a valid IP network ('{addr_text}' is not an IP address)")
            }
            None => format!("'{item}' is not a valid IP address"),
        });
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix_text {
        None => max,
        Some("") => {
            return Err(format!(
                "'{item}' is not a valid IP network (prefix length missing after '/')"
            ))
        }
        Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(format!(
                "'{item}' is not a valid IP network (prefix length '{p}' is not a number)"
            ))
        }
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => {
                return Err(format!(
                    "'{item}' is not a valid IP network (prefix length {} > {max})",
                    p.trim_start_matches('0')
                ))
            }
        },
    };
    IpNet::new(addr, prefix)
        .map_err(|_| format!("'{item}' is not a valid IP network (prefix length {prefix} > {max})"))
}

/// Decimal digits only (no sign, no spaces), as `wg`'s `strtoul` checks require.
fn parse_decimal(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Leading zeros are fine; more digits than a u64 holds is simply "too large".
    Some(value.parse::<u64>().unwrap_or(u64::MAX))
}

fn parse_u16(value: &str) -> Result<u16, String> {
    let n = parse_decimal(value).ok_or_else(|| format!("'{value}' is not a number"))?;
    u16::try_from(n).map_err(|_| format!("{value} is out of range (0 to 65535)"))
}

/// Lowest MTU accepted: what every IPv4 host must handle. (IPv6 needs 1280; an interface with
/// an IPv6 address and a smaller MTU will lose its IPv6 addresses, which the kernel reports.)
const MIN_MTU: u64 = 576;

fn parse_mtu(value: &str) -> Result<u16, String> {
    let n = parse_decimal(value).ok_or_else(|| format!("'{value}' is not a number"))?;
    if n < MIN_MTU {
        return Err(format!(
            "{n} is too small (at least {MIN_MTU}; IPv6 needs 1280, and WireGuard commonly uses 1420)"
        ));
    }
    u16::try_from(n).map_err(|_| format!("{value} is too large (at most 65535)"))
}

fn parse_table(value: &str) -> Result<Table, String> {
    match value {
        "auto" => return Ok(Table::Auto),
        "off" => return Ok(Table::Off),
        _ => {}
    }
    if value.eq_ignore_ascii_case("auto") || value.eq_ignore_ascii_case("off") {
        return Err(format!(
            "'{value}' must be written in lower case ('{}'): wg-quick compares it exactly",
            value.to_ascii_lowercase()
        ));
    }
    if let Some(n) = parse_decimal(value) {
        return u32::try_from(n)
            .map(Table::Id)
            .map_err(|_| format!("{value} is out of range (0 to 4294967295)"));
    }
    let known = match value {
        "main" => Some(254),
        "local" => Some(255),
        "default" => Some(253),
        _ => None,
    };
    Err(match known {
        Some(id) => format!(
            "named tables are not supported: write 'Table = {id}' for the '{value}' table, \
             or use 'auto' or 'off'"
        ),
        None => format!(
            "'{value}' is not 'auto', 'off' or a numeric routing table id \
             (named tables from rt_tables are not supported)"
        ),
    })
}

/// `off`, decimal, or `0x` hex (lower-case `x`, as `wg` requires); 0 means off.
fn parse_fwmark(value: &str) -> Result<Option<u32>, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let invalid = || format!("'{value}' is neither 'off' nor a number from 0 to 0xffffffff");
    let n = match value.strip_prefix("0x") {
        Some(hex) if !hex.is_empty() => {
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(invalid());
            }
            let digits = hex.trim_start_matches('0');
            if digits.len() > 8 {
                return Err(invalid());
            }
            u64::from_str_radix(if digits.is_empty() { "0" } else { digits }, 16)
                .map_err(|_| invalid())?
        }
        _ => parse_decimal(value).ok_or_else(invalid)?,
    };
    let n = u32::try_from(n).map_err(|_| invalid())?;
    Ok((n != 0).then_some(n))
}

/// `off` or 0..=65535 seconds; 0 and `off` both mean none.
fn parse_keepalive(value: &str) -> Result<Option<u16>, String> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let n = parse_decimal(value)
        .ok_or_else(|| format!("'{value}' is neither 'off' nor a number of seconds"))?;
    let n = u16::try_from(n).map_err(|_| format!("{value} is out of range (0 to 65535)"))?;
    Ok((n != 0).then_some(n))
}

/// `true` or `false`, case-insensitive as wg-quick reads it.
fn parse_bool(value: &str) -> Result<bool, String> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(format!("'{value}' is neither true nor false"))
    }
}

enum Dns {
    Server(IpAddr),
    Search(String),
}

/// One `DNS` entry: wg-quick treats anything made of digits and dots, or containing a colon, as
/// a resolver address and everything else as a search domain.
fn parse_dns(item: &str) -> Result<Dns, String> {
    if let Ok(ip) = item.parse::<IpAddr>() {
        return Ok(Dns::Server(ip));
    }
    if looks_like_ip(item) || item.contains(':') {
        return Err(format!("'{item}' is not a valid IP address"));
    }
    if is_domain_name(item) {
        return Ok(Dns::Search(item.to_owned()));
    }
    Err(format!(
        "'{item}' is neither an IP address nor a valid search domain"
    ))
}

/// Digits and dots only: meant as an IPv4 address.
fn looks_like_ip(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_` (not starting or ending with
/// `-`), each 1–63 characters, 253 in all, with an optional final dot.
pub(super) fn is_domain_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `198.18.0.1:51820`, `[fd00::1]:51820`, `vpn.example.com:51820`; the port is required and
/// cannot be 0.
fn parse_endpoint(value: &str) -> Result<Endpoint, String> {
    let (host, port_text, bracketed) = if let Some(rest) = value.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("'{value}' has '[' without a matching ']'"));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(format!(
                "'{value}' has no port: write it as '[{host}]:51820' with the peer's port"
            ));
        };
        (host, port, true)
    } else {
        if value.parse::<Ipv6Addr>().is_ok() {
            return Err(format!(
                "'{value}' has no port, and an IPv6 address needs brackets: \
                 write it as '[{value}]:51820' with the peer's port"
            ));
        }
        let Some((host, port)) = value.rsplit_once(':') else {
            return Err(format!(
                "'{value}' has no port: write it as '{value}:51820' with the peer's port"
            ));
        };
        if host.contains(':') {
            return Err(format!(
                "'{value}': an IPv6 address needs brackets around it, as in '[{host}]:{port}'"
            ));
        }
        (host, port, false)
    };
    if host.is_empty() {
        return Err(format!("'{value}' has no host before the port"));
    }
    let port = match parse_decimal(port_text) {
        None if port_text.is_empty() => return Err(format!("'{value}' has no port after ':'")),
        None => return Err(format!("'{value}': port '{port_text}' is not a number")),
        Some(0) => return Err(format!("'{value}': port 0 is not allowed (1 to 65535)")),
        Some(n) => u16::try_from(n)
            .map_err(|_| format!("'{value}': port {port_text} is out of range (1 to 65535)"))?,
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Endpoint::Addr(SocketAddr::new(ip, port)));
    }
    if bracketed && host.contains(':') {
        return Err(format!("'{value}': '{host}' is not a valid IPv6 address"));
    }
    if looks_like_ip(host) {
        return Err(format!("'{value}': '{host}' is not a valid IPv4 address"));
    }
    if !is_domain_name(host) {
        return Err(format!("'{value}': '{host}' is not a valid host name"));
    }
    Ok(Endpoint::Host {
        host: host.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIVATE: &str = "wMwt7GK2I2Qskf+CA8p/2Optrw/NGHm832bzhDQSKlE=";
    const PEER_A: &str = "F1qDeVj4m0ou3NgRA1yxGAS5FpPDfucU3wwfVGwtIwM=";
    const PEER_B: &str = "4uL5H/pQACXg4QICMu3yi5P+pKsTcL2w8t4MXUlbJk0=";
    const PSK: &str = "+OpeeK+U2eENfHu+R8YHlAsDnX98Xaj/VRdmAyyLcl4=";

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Parses text that must fail and returns the error.
    fn fail(text: &str) -> ConfigError {
        match parse(text, Some(Path::new("wg0.conf"))) {
            Ok(config) => panic!("expected an error, parsed {config:?}"),
            Err(e) => e,
        }
    }

    /// Asserts the error's line and that its message contains `needle`.
    fn assert_fails(text: &str, line: Option<usize>, needle: &str) -> ConfigError {
        let e = fail(text);
        assert_eq!(e.line(), line, "wrong line for: {e}");
        assert!(e.message().contains(needle), "'{needle}' not in: {e}");
        e
    }

    fn minimal() -> String {
        format!("[Interface]\nPrivateKey = {PRIVATE}\n")
    }

    #[test]
    fn realistic_config_with_comments_casing_and_spacing() {
        let text = format!(
            "# Warren test tunnel\r\n\
             \r\n\
             [interface]   # our side\r\n\
             privatekey={PRIVATE}\r\n\
             \tAddress = 198.18.0.2/24 ,fd00::2/64\r\n\
             address = 198.18.1.2\r\n\
             LISTENPORT = 51820\r\n\
             Dns = 198.18.0.53, fd00::53 ,  corp.example.com\r\n\
             MTU=1420\r\n\
             Table = 1234\r\n\
             FwMark = 0xca6c\r\n\
             PreUp = echo 'pre up'   # a comment, stripped as wg-quick does\r\n\
             PostUp = iptables -A FORWARD -i %i -j ACCEPT; echo a=b\r\n\
             PostUp = logger up\r\n\
             PreDown = true\r\n\
             PostDown = logger down\r\n\
             SaveConfig = False\r\n\
             \r\n\
             [PEER]\r\n\
             PublicKey = {PEER_A}\r\n\
             PresharedKey = {PSK}\r\n\
             AllowedIPs = 198.18.0.1/24, fd00::/64\r\n\
             allowedips = 198.19.0.0/16\r\n\
             Endpoint = [fd00::1]:51820\r\n\
             PersistentKeepalive = 25\r\n\
             \r\n\
             [ Peer ]\r\n\
             Public Key = {PEER_B}\r\n\
             AllowedIPs =\r\n\
             Endpoint = vpn.example.com:51821\r\n\
             PersistentKeepalive = off\r\n"
        );
        let config = parse(&text, None).unwrap();
        let interface = &config.interface;
        assert_eq!(interface.private_key, PRIVATE.parse().unwrap());
        assert_eq!(
            interface.addresses,
            vec![
                net("198.18.0.2/24"),
                net("fd00::2/64"),
                net("198.18.1.2/32")
            ]
        );
        assert_eq!(interface.listen_port, Some(51820));
        assert_eq!(
            interface.dns_servers,
            vec![ip("198.18.0.53"), ip("fd00::53")]
        );
        assert_eq!(interface.dns_search, vec!["corp.example.com".to_owned()]);
        assert_eq!(interface.mtu, Some(1420));
        assert_eq!(interface.table, Table::Id(1234));
        assert_eq!(interface.fwmark, Some(0xca6c));
        assert_eq!(interface.hooks.pre_up, vec!["echo 'pre up'".to_owned()]);
        assert_eq!(
            interface.hooks.post_up,
            vec![
                "iptables -A FORWARD -i %i -j ACCEPT; echo a=b".to_owned(),
                "logger up".to_owned()
            ]
        );
        assert_eq!(interface.hooks.pre_down, vec!["true".to_owned()]);
        assert_eq!(interface.hooks.post_down, vec!["logger down".to_owned()]);
        assert!(!interface.save_config);

        assert_eq!(config.peers.len(), 2);
        let a = &config.peers[0];
        assert_eq!(a.public_key, PEER_A.parse().unwrap());
        assert_eq!(a.preshared_key, Some(PSK.parse().unwrap()));
        assert_eq!(
            a.allowed_ips,
            vec![net("198.18.0.0/24"), net("fd00::/64"), net("198.19.0.0/16")]
        );
        assert_eq!(
            a.endpoint,
            Some(Endpoint::Addr("[fd00::1]:51820".parse().unwrap()))
        );
        assert_eq!(a.persistent_keepalive, Some(25));
        let b = &config.peers[1];
        assert_eq!(b.public_key, PEER_B.parse().unwrap());
        assert_eq!(b.preshared_key, None);
        assert!(b.allowed_ips.is_empty());
        assert_eq!(
            b.endpoint,
            Some(Endpoint::Host {
                host: "vpn.example.com".to_owned(),
                port: 51821
            })
        );
        assert_eq!(b.persistent_keepalive, None);
        assert!(!config.is_full_tunnel());
    }

    #[test]
    fn wg_showconf_output_parses() {
        // Captured from `wg showconf` (wireguard-tools) on a wireguard-go interface.
        let text = format!(
            "[Interface]\n\
             ListenPort = 51820\n\
             FwMark = 0x1234\n\
             PrivateKey = {PRIVATE}\n\
             \n\
             [Peer]\n\
             PublicKey = {PEER_A}\n\
             PresharedKey = {PSK}\n\
             AllowedIPs = 198.18.0.0/24, fd00::/64\n\
             Endpoint = [fd00::1]:51820\n\
             PersistentKeepalive = 25\n\
             \n\
             [Peer]\n\
             PublicKey = {PEER_B}\n\
             AllowedIPs = 198.19.0.0/16\n\
             Endpoint = 198.18.0.1:51821\n"
        );
        let config = parse(&text, None).unwrap();
        assert_eq!(config.interface.listen_port, Some(51820));
        assert_eq!(config.interface.fwmark, Some(0x1234));
        assert_eq!(
            config.peers[0].allowed_ips,
            vec![net("198.18.0.0/24"), net("fd00::/64")]
        );
        assert_eq!(
            config.peers[1].endpoint,
            Some(Endpoint::Addr("198.18.0.1:51821".parse().unwrap()))
        );
    }

    #[test]
    fn scalar_forms() {
        let with = |line: &str| parse(&format!("{}{line}\n", minimal()), None).unwrap();
        assert_eq!(with("ListenPort = 0").interface.listen_port, Some(0));
        assert_eq!(
            with("ListenPort = 65535").interface.listen_port,
            Some(65535)
        );
        assert_eq!(with("FwMark = off").interface.fwmark, None);
        assert_eq!(with("FwMark = OFF").interface.fwmark, None);
        assert_eq!(with("FwMark = 0").interface.fwmark, None);
        assert_eq!(with("FwMark = 0x0").interface.fwmark, None);
        assert_eq!(with("FwMark = 51820").interface.fwmark, Some(51820));
        assert_eq!(with("FwMark = 0xFFFFFFFF").interface.fwmark, Some(u32::MAX));
        assert_eq!(with("Table = off").interface.table, Table::Off);
        assert_eq!(with("Table = auto").interface.table, Table::Auto);
        assert_eq!(with("Table = 0").interface.table, Table::Id(0));
        assert_eq!(with("MTU = 576").interface.mtu, Some(576));
        assert_eq!(with("MTU = 65535").interface.mtu, Some(65535));
        assert!(with("SaveConfig = true").interface.save_config);
        assert!(with("saveconfig = TRUE").interface.save_config);
        assert_eq!(
            with("PostUp =").interface.hooks.post_up,
            vec![String::new()]
        );
        assert!(with("Address =").interface.addresses.is_empty());
        assert!(with("DNS =").interface.dns_servers.is_empty());
        assert_eq!(
            with("Address = 198.18.0.1 fd00::1/64").interface.addresses,
            vec![net("198.18.0.1/32"), net("fd00::1/64")]
        );
        assert_eq!(
            with("Address = 198.18.0.1/24").interface.addresses,
            vec![net("198.18.0.1/24")],
            "host bits are kept"
        );
        let peer = |line: &str| {
            parse(
                &format!("{}[Peer]\nPublicKey = {PEER_A}\n{line}\n", minimal()),
                None,
            )
            .unwrap()
            .peers
            .remove(0)
        };
        assert_eq!(peer("PersistentKeepalive = 0").persistent_keepalive, None);
        assert_eq!(peer("PersistentKeepalive = Off").persistent_keepalive, None);
        assert_eq!(
            peer("PersistentKeepalive = 65535").persistent_keepalive,
            Some(65535)
        );
        assert_eq!(
            peer("AllowedIPs = 198.18.0.7").allowed_ips,
            vec![net("198.18.0.7/32")]
        );
        assert_eq!(peer("AllowedIPs = 0.0.0.0/0, ::/0").allowed_ips.len(), 2);
        assert_eq!(
            peer("Endpoint = [198.18.0.1]:1").endpoint,
            Some(Endpoint::Addr("198.18.0.1:1".parse().unwrap()))
        );
        assert_eq!(
            peer("Endpoint = localhost:65535").endpoint,
            Some(Endpoint::Host {
                host: "localhost".to_owned(),
                port: 65535
            })
        );
        assert_eq!(
            peer("AllowedIPs = 198.18.0.0/24, 198.18.0.0/24").allowed_ips,
            vec![net("198.18.0.0/24"); 2],
            "a repeat within one peer is harmless and kept"
        );
    }

    #[test]
    fn bom_and_missing_final_newline_are_fine() {
        let text = format!("\u{feff}[Interface]\nPrivateKey = {PRIVATE}");
        assert!(parse(&text, None).is_ok());
    }

    #[test]
    fn display_names_file_and_line() {
        let text = format!(
            "{}[Peer]\nPublicKey = {PEER_A}\nAllowedIPs = 198.18.0.0/33\n",
            minimal()
        );
        let e = parse(&text, Some(Path::new("wg0.conf"))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "wg0.conf:5: AllowedIPs: '198.18.0.0/33' is not a valid IP network \
             (prefix length 33 > 32)"
        );
        assert_eq!(e.file(), Some(Path::new("wg0.conf")));
        let e = parse(&text, None).unwrap_err();
        assert!(e.to_string().starts_with("<input>:5: AllowedIPs:"), "{e}");
        assert_eq!(e.file(), None);
        let e = parse("", Some(Path::new("wg0.conf"))).unwrap_err();
        assert!(e.to_string().starts_with("wg0.conf: no [Interface]"), "{e}");
    }

    #[test]
    fn parse_file_reads_and_names_the_file() {
        let dir = std::env::temp_dir().join(format!("warren-parse-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("wg0.conf");
        std::fs::write(&good, minimal()).unwrap();
        assert!(parse_file(&good).is_ok());
        let bad = dir.join("wg1.conf");
        std::fs::write(&bad, format!("{}MTU = 10\n", minimal())).unwrap();
        let e = parse_file(&bad).unwrap_err();
        assert_eq!(e.file(), Some(bad.as_path()));
        assert_eq!(e.line(), Some(3));
        let missing = dir.join("absent.conf");
        let e = parse_file(&missing).unwrap_err();
        assert_eq!(e.file(), Some(missing.as_path()));
        assert_eq!(e.line(), None);
        assert!(e.message().contains("cannot read"), "{e}");
        let binary = dir.join("wg2.conf");
        std::fs::write(&binary, b"[Interface]\n\xff\xfe\n").unwrap();
        assert!(parse_file(&binary)
            .unwrap_err()
            .message()
            .contains("cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // One test per kind of fault, each asserting the exact line.

    #[test]
    fn unknown_key_names_it_and_suggests() {
        let e = assert_fails(
            &format!("{}Adress = 198.18.0.1/24\n", minimal()),
            Some(3),
            "unknown key 'Adress' in [Interface]",
        );
        assert!(e.message().contains("did you mean 'Address'?"), "{e}");
        let e = assert_fails(
            &format!(
                "{}[Peer]\nPublicKey = {PEER_A}\nAllowedIP = ::/0\n",
                minimal()
            ),
            Some(5),
            "unknown key 'AllowedIP' in [Peer]",
        );
        assert!(e.message().contains("did you mean 'AllowedIPs'?"), "{e}");
        let e = assert_fails(
            &format!("{}Colour = blue\n", minimal()),
            Some(3),
            "unknown key 'Colour' in [Interface]",
        );
        assert!(!e.message().contains("did you mean"), "{e}");
    }

    #[test]
    fn key_in_the_wrong_section() {
        assert_fails(
            &format!(
                "{}[Peer]\nPublicKey = {PEER_A}\nAddress = 198.18.0.1\n",
                minimal()
            ),
            Some(5),
            "Address belongs in [Interface], not in [Peer]",
        );
        assert_fails(
            &format!("{}PublicKey = {PEER_A}\n", minimal()),
            Some(3),
            "PublicKey belongs in [Peer], not in [Interface]",
        );
    }

    #[test]
    fn key_outside_any_section() {
        assert_fails(
            &format!("# comment\n\nListenPort = 51820\n{}", minimal()),
            Some(3),
            "ListenPort is outside any section",
        );
        assert_fails(
            "Bogus = 1\n",
            Some(1),
            "unknown key 'Bogus' outside any section",
        );
    }

    #[test]
    fn unknown_section() {
        assert_fails(
            &format!("{}\n[Peers]\nPublicKey = {PEER_A}\n", minimal()),
            Some(4),
            "unknown section [Peers]: only [Interface] and [Peer] exist (did you mean [Peer]?)",
        );
        assert_fails("[Interface\n", Some(1), "malformed section header");
        assert_fails("[Peer] extra\n", Some(1), "malformed section header");
    }

    #[test]
    fn bad_keys() {
        assert_fails(
            "[Interface]\nPrivateKey = not*base64\n",
            Some(2),
            "PrivateKey: not a valid WireGuard key: not valid base64",
        );
        assert_fails(
            &format!("{}[Peer]\nPublicKey = AAAA\n", minimal()),
            Some(4),
            "PublicKey: not a valid WireGuard key: decodes to 3 bytes",
        );
        assert_fails(
            &format!(
                "{}[Peer]\nPublicKey = {PEER_A}\nPresharedKey =\n",
                minimal()
            ),
            Some(5),
            "PresharedKey: missing value",
        );
        // `wg` reads a key without its padding as a wrong length too.
        assert_fails(
            &format!("[Interface]\nPrivateKey = {}\n", &PRIVATE[..43]),
            Some(2),
            "PrivateKey: not a valid WireGuard key",
        );
    }

    #[test]
    fn bad_networks() {
        let peer = |value: &str| {
            format!(
                "{}[Peer]\nPublicKey = {PEER_A}\nAllowedIPs = {value}\n",
                minimal()
            )
        };
        assert_fails(
            &peer("198.18.0.0/33"),
            Some(5),
            "AllowedIPs: '198.18.0.0/33' is not a valid IP network (prefix length 33 > 32)",
        );
        assert_fails(
            &peer("fd00::/129"),
            Some(5),
            "'fd00::/129' is not a valid IP network (prefix length 129 > 128)",
        );
        assert_fails(
            &peer("198.18.0.0/"),
            Some(5),
            "(prefix length missing after '/')",
        );
        assert_fails(
            &peer("198.18.0.0/x"),
            Some(5),
            "prefix length 'x' is not a number",
        );
        assert_fails(&peer("198.18.0.0/24,,fd00::/64"), Some(5), "empty entry");
        assert_fails(
            &peer("198.18.0.0/24 fd00::/64"),
            Some(5),
            "'198.18.0.0/24fd00::/64' is not a valid IP network",
        );
        assert_fails(
            &format!("{}Address = 198.18.0.1/40\n", minimal()),
            Some(3),
            "Address: '198.18.0.1/40' is not a valid IP network (prefix length 40 > 32)",
        );
    }

    #[test]
    fn bad_ip_addresses() {
        assert_fails(
            &format!("{}Address = 198.18.0.300\n", minimal()),
            Some(3),
            "Address: '198.18.0.300' is not a valid IP address",
        );
        assert_fails(
            &format!("{}Address = 198.18.0.256/24\n", minimal()),
            Some(3),
            "('198.18.0.256' is not an IP address)",
        );
        assert_fails(
            &format!("{}DNS = 198.18.0.1, 198.18.0.999\n", minimal()),
            Some(3),
            "DNS: '198.18.0.999' is not a valid IP address",
        );
        assert_fails(
            &format!("{}DNS = fd00::zz\n", minimal()),
            Some(3),
            "DNS: 'fd00::zz' is not a valid IP address",
        );
        assert_fails(
            &format!("{}DNS = bad_domain!\n", minimal()),
            Some(3),
            "neither an IP address nor a valid search domain",
        );
    }

    #[test]
    fn duplicate_peer_names_both_lines() {
        assert_fails(
            &format!(
                "{}\n[Peer]\nPublicKey = {PEER_A}\n\n[Peer]\nPublicKey = {PEER_A}\n",
                minimal()
            ),
            Some(8),
            "PublicKey: the same key as the peer on line 5",
        );
    }

    #[test]
    fn peer_without_public_key_names_its_header() {
        assert_fails(
            &format!(
                "{}\n[Peer]\nAllowedIPs = 198.18.0.0/24\n\n[Peer]\nPublicKey = {PEER_A}\n",
                minimal()
            ),
            Some(4),
            "[Peer] has no PublicKey",
        );
        // Also when it is the last section.
        assert_fails(
            &format!("{}[Peer]\nEndpoint = 198.18.0.1:51820\n", minimal()),
            Some(3),
            "[Peer] has no PublicKey",
        );
    }

    #[test]
    fn missing_private_key_names_the_interface_header() {
        assert_fails(
            "# tunnel\n[Interface]\nListenPort = 51820\n",
            Some(2),
            "[Interface] has no PrivateKey",
        );
        assert_fails(
            &format!("[Peer]\nPublicKey = {PEER_A}\n[Interface]\nMTU = 1420\n[Peer]\nPublicKey = {PEER_B}\n"),
            Some(3),
            "[Interface] has no PrivateKey",
        );
    }

    #[test]
    fn second_interface_section() {
        assert_fails(
            &format!("{}\n[Interface]\nListenPort = 51820\n", minimal()),
            Some(4),
            "second [Interface] section (the first is on line 1)",
        );
    }

    #[test]
    fn scalar_given_twice_names_both_lines() {
        assert_fails(
            &format!(
                "{}ListenPort = 51820\nMTU = 1420\nlistenport = 51821\n",
                minimal()
            ),
            Some(5),
            "ListenPort is given twice in this section (first on line 3)",
        );
        assert_fails(
            &format!(
                "{}[Peer]\nPublicKey = {PEER_A}\nEndpoint = 198.18.0.1:1\nEndpoint = 198.18.0.1:2\n",
                minimal()
            ),
            Some(6),
            "Endpoint is given twice in this section (first on line 5)",
        );
        // The same key in two different peers is fine.
        let two = format!(
            "{}[Peer]\nPublicKey = {PEER_A}\nPersistentKeepalive = 5\n[Peer]\nPublicKey = {PEER_B}\nPersistentKeepalive = 5\n",
            minimal()
        );
        assert!(parse(&two, None).is_ok());
    }

    #[test]
    fn no_interface_at_all() {
        assert_fails(
            &format!("[Peer]\nPublicKey = {PEER_A}\n"),
            None,
            "no [Interface] section",
        );
        assert_fails("", None, "no [Interface] section");
        assert_fails("# only a comment\n\n", None, "no [Interface] section");
    }

    #[test]
    fn line_without_equals() {
        assert_fails(
            &format!("{}ListenPort 51820\n", minimal()),
            Some(3),
            "ListenPort has no '='",
        );
        assert_fails(
            &format!("{}\nsomething odd\n", minimal()),
            Some(4),
            "this line has no '='",
        );
        assert_fails(
            &format!("{}= 51820\n", minimal()),
            Some(3),
            "missing key name before '='",
        );
    }

    #[test]
    fn same_allowed_ips_on_two_peers() {
        let e = assert_fails(
            &format!(
                "{}\n[Peer]\nPublicKey = {PEER_A}\nAllowedIPs = 198.18.0.0/24, fd00::/64\n\n\
                 [Peer]\nPublicKey = {PEER_B}\nAllowedIPs = 198.19.0.0/16\nAllowedIPs = fd00::1/64\n",
                minimal()
            ),
            Some(11),
            "fd00::/64 is already routed to the [Peer] on line 4 (AllowedIPs on line 6)",
        );
        assert!(e.message().contains("wg would silently move it"), "{e}");
    }

    #[test]
    fn bad_listen_port_mtu_table_fwmark_bool() {
        let case = |line: &str, needle: &str| {
            assert_fails(&format!("{}{line}\n", minimal()), Some(3), needle);
        };
        case(
            "ListenPort = 65536",
            "ListenPort: 65536 is out of range (0 to 65535)",
        );
        case("ListenPort = https", "ListenPort: 'https' is not a number");
        case("ListenPort = -1", "ListenPort: '-1' is not a number");
        case("ListenPort = +5", "ListenPort: '+5' is not a number");
        case("ListenPort =", "ListenPort: missing value");
        case("MTU = 0", "MTU: 0 is too small (at least 576");
        case("MTU = 575", "MTU: 575 is too small");
        case("MTU = 65536", "MTU: 65536 is too large (at most 65535)");
        case("MTU = 99999999999999999999999", "is too large");
        case("MTU = big", "MTU: 'big' is not a number");
        case("Table = main", "write 'Table = 254' for the 'main' table");
        case(
            "Table = vpn",
            "'vpn' is not 'auto', 'off' or a numeric routing table id",
        );
        case("Table = Off", "must be written in lower case ('off')");
        case("Table = 4294967296", "out of range");
        case(
            "FwMark = 0X10",
            "FwMark: '0X10' is neither 'off' nor a number",
        );
        case("FwMark = 0x", "is neither 'off' nor a number");
        case("FwMark = 0x100000000", "is neither 'off' nor a number");
        case("FwMark = 4294967296", "is neither 'off' nor a number");
        case(
            "SaveConfig = yes",
            "SaveConfig: 'yes' is neither true nor false",
        );
    }

    #[test]
    fn bad_endpoints_and_keepalive() {
        let case = |line: &str, needle: &str| {
            assert_fails(
                &format!("{}[Peer]\nPublicKey = {PEER_A}\n{line}\n", minimal()),
                Some(5),
                needle,
            );
        };
        case(
            "Endpoint = fd00::1:51820",
            "an IPv6 address needs brackets around it, as in '[fd00::1]:51820'",
        );
        case("Endpoint = fd00::1", "write it as '[fd00::1]:51820'");
        case("Endpoint = 198.18.0.1", "'198.18.0.1' has no port");
        case("Endpoint = 198.18.0.1:", "has no port after ':'");
        case("Endpoint = 198.18.0.1:0", "port 0 is not allowed");
        case("Endpoint = 198.18.0.1:65536", "port 65536 is out of range");
        case("Endpoint = 198.18.0.1:wg", "port 'wg' is not a number");
        case("Endpoint = [fd00::1]", "has no port");
        case("Endpoint = [fd00::1:51820", "without a matching ']'");
        case(
            "Endpoint = [fd00::zz]:1",
            "'fd00::zz' is not a valid IPv6 address",
        );
        case(
            "Endpoint = 198.18.0.256:1",
            "'198.18.0.256' is not a valid IPv4 address",
        );
        case(
            "Endpoint = bad!host:1",
            "'bad!host' is not a valid host name",
        );
        case("Endpoint = :51820", "has no host");
        case("PersistentKeepalive = 65536", "65536 is out of range");
        case(
            "PersistentKeepalive = never",
            "'never' is neither 'off' nor a number",
        );
    }

    #[test]
    fn comments_are_stripped_from_hooks_like_wg_quick() {
        let config = parse(
            &format!("{}PostUp = echo '#not kept' ; echo b\n", minimal()),
            None,
        )
        .unwrap();
        assert_eq!(config.interface.hooks.post_up, vec!["echo '".to_owned()]);
    }

    #[test]
    fn error_messages_never_contain_secrets() {
        let secret_psk_line = format!("PresharedKey = {PSK}");
        let cases = [
            // Wrong padding / length.
            format!("[Interface]\nPrivateKey = {}A\n", PRIVATE),
            format!("[Interface]\nPrivateKey = {}\n", &PRIVATE[..40]),
            // Given twice.
            format!("{}PrivateKey = {PRIVATE}\n", minimal()),
            // In the wrong section, or outside any.
            format!(
                "{}[Peer]\nPublicKey = {PEER_A}\nPrivateKey = {PRIVATE}\n",
                minimal()
            ),
            format!("PrivateKey = {PRIVATE}\n{}", minimal()),
            // Mangled key names that swallow the key.
            format!("[Interface]\nPrivateKey: {PRIVATE}\n"),
            format!("[Interface]\nPrivateKey {PRIVATE}\n"),
            format!(
                "[Interface]\nPrivateKey {}\n",
                PRIVATE.trim_end_matches('=')
            ),
            format!("[Interface]\n{PRIVATE}\n"),
            format!("[Interface]\n[{PRIVATE}]\n"),
            format!("[Interface]\n[{}]\n", PRIVATE.trim_end_matches('=')),
            // Pasted into a field whose value is quoted.
            format!("{}Address = {PRIVATE}\n", minimal()),
            format!("{}DNS = {}\n", minimal(), PRIVATE.trim_end_matches('=')),
            format!(
                "{}[Peer]\nPublicKey = {PEER_A}\nEndpoint = {PRIVATE}\n",
                minimal()
            ),
            // Preshared keys too.
            format!(
                "{}[Peer]\nPublicKey = {PEER_A}\n{secret_psk_line}\n{secret_psk_line}\n",
                minimal()
            ),
            format!(
                "{}[Peer]\nPublicKey = {PEER_A}\nPresharedKey = {}x\n",
                minimal(),
                PSK
            ),
            format!("{}{secret_psk_line}\n", minimal()),
        ];
        for text in &cases {
            let e = fail(text);
            for shown in [e.to_string(), format!("{e:?}"), e.message().to_owned()] {
                for secret in [PRIVATE, PSK] {
                    // No 16-character window of the secret may appear.
                    for window in secret.as_bytes().windows(16) {
                        let window = std::str::from_utf8(window).unwrap();
                        assert!(
                            !shown.contains(window),
                            "secret fragment {window:?} leaked in {shown:?} for {text:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn redaction_backstop() {
        assert_eq!(redact(format!("x '{PRIVATE}' y"), ""), "x '<redacted>' y");
        assert_eq!(
            redact("AllowedIPs: fd00::/64".to_owned(), PRIVATE),
            "AllowedIPs: fd00::/64"
        );
        assert_eq!(
            redact("Address: 'wMwt7GK2I2Qskf+CA8p' is bad".to_owned(), PRIVATE),
            "Address: '<redacted>' is bad"
        );
        assert_eq!(
            base64_runs("a+b: c").collect::<Vec<_>>(),
            vec![(true, "a+b"), (false, ": "), (true, "c")]
        );
    }

    #[test]
    fn suggestions() {
        let names = || Field::ALL.into_iter().map(Field::name);
        assert_eq!(closest("PublicKy", names()), Some("PublicKey"));
        assert_eq!(closest("Keepalive", names()), Some("PersistentKeepalive"));
        assert_eq!(closest("Endpoints", names()), Some("Endpoint"));
        assert_eq!(closest("Allowed IPs", names()), Some("AllowedIPs"));
        assert_eq!(closest("Colour", names()), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn garbage_never_panics_and_lines_are_in_range() {
        // A small deterministic fuzz: random lines built from config-ish fragments.
        let fragments = [
            "[Interface]",
            "[Peer]",
            "[peer",
            "PrivateKey",
            "PublicKey",
            "AllowedIPs",
            "Endpoint",
            "Address",
            "DNS",
            "=",
            " = ",
            ",",
            "#",
            "/",
            ":",
            "[",
            "]",
            "198.18.0.1",
            "fd00::1",
            "51820",
            "24",
            "0x",
            "off",
            "\t",
            "\r",
            "é",
            PRIVATE,
            PEER_A,
            PEER_B,
            "PostUp",
        ];
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut text = String::new();
            let lines = next() % 12;
            for _ in 0..lines {
                for _ in 0..next() % 6 {
                    text.push_str(fragments[(next() % fragments.len() as u64) as usize]);
                }
                text.push('\n');
            }
            let line_count = text.split('\n').count();
            match parse(&text, None) {
                Ok(config) => {
                    assert_eq!(parse(&config.to_conf(), None).unwrap(), config, "{text:?}")
                }
                Err(e) => {
                    if let Some(line) = e.line() {
                        assert!((1..=line_count).contains(&line), "{e} for {text:?}");
                    }
                }
            }
        }
    }
}
