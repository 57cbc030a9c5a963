//! The configuration text the user sees and edits: wg-quick text *without* the private key,
//! checked by the helper's own parser ([`warren_proto::config::parse`]) so the editor and the
//! helper can never disagree about what is valid.
//!
//! The private key lives in the keyring, not in the text, so to parse the text we put the key
//! back in: the parser reports "[Interface] has no PrivateKey" on the `[Interface]` header's
//! line; we insert `PrivateKey = …` right after that line, parse again, and shift every line
//! number after the insertion back by one, so errors point at the line the user typed. If the
//! user wrote a `PrivateKey` line themselves, the text parses as it is and that key replaces the
//! stored one ([`KeySource::Text`]).

use warren_proto::config::{parse, ConfigError, TunnelConfig};
use warren_proto::key::PrivateKey;
use zeroize::Zeroizing;

use crate::model::Diagnostic;

/// The parser's message for a missing key (pinned by a test below).
const NO_PRIVATE_KEY: &str = "[Interface] has no PrivateKey";

/// Where the parsed configuration's private key came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The text had its own `PrivateKey` line: a new key for the keyring.
    Text,
    /// The text had none; the stored key was used.
    Stored,
}

/// A configuration error in terms of the edited text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct TextError {
    /// The 1-based line in the edited text, when the fault is on one line.
    pub line: Option<usize>,
    /// The parser's message, without a location.
    pub message: String,
}

impl From<&TextError> for Diagnostic {
    fn from(error: &TextError) -> Self {
        Diagnostic {
            line: error.line.and_then(|l| u32::try_from(l).ok()),
            message: error.message.clone(),
        }
    }
}

fn text_error(error: &ConfigError, shift_after: Option<usize>) -> TextError {
    let line = error.line().map(|line| match shift_after {
        // The inserted key is line `after + 1`; an error on it is really about the header.
        Some(after) if line > after + 1 => line - 1,
        Some(after) if line == after + 1 => after,
        _ => line,
    });
    TextError {
        line,
        message: error.message().to_owned(),
    }
}

/// Parses `text` (wg-quick text, with or without a `PrivateKey` line), using `key` when it has
/// none. Errors name lines of `text` itself.
pub fn parse_with_key(
    text: &str,
    key: &PrivateKey,
) -> Result<(TunnelConfig, KeySource), TextError> {
    let error = match parse(text, None) {
        Ok(config) => return Ok((config, KeySource::Text)),
        Err(error) => error,
    };
    let header = match error.line() {
        Some(line) if error.message() == NO_PRIVATE_KEY => line,
        _ => return Err(text_error(&error, None)),
    };
    let mut with_key = Zeroizing::new(String::with_capacity(text.len() + 64));
    for (index, line) in text.split('\n').enumerate() {
        if index > 0 {
            with_key.push('\n');
        }
        with_key.push_str(line);
        if index + 1 == header {
            with_key.push_str("\nPrivateKey = ");
            with_key.push_str(&Zeroizing::new(key.to_base64()));
        }
    }
    parse(&with_key, None)
        .map(|config| (config, KeySource::Stored))
        .map_err(|e| text_error(&e, Some(header)))
}

/// Checks `text` for the editor: `None` if it is valid, else where and what is wrong. Any valid
/// key serves, so validation never touches the keyring.
pub fn validate(text: &str) -> Option<Diagnostic> {
    let placeholder = PrivateKey::from_bytes([1; 32]);
    parse_with_key(text, &placeholder)
        .err()
        .map(|e| Diagnostic::from(&e))
}

/// The text of a new tunnel: an `[Interface]` with `key`, ready to be completed in the editor.
pub fn new_tunnel(key: &PrivateKey) -> Result<TunnelConfig, TextError> {
    parse_with_key("[Interface]\n", key).map(|(config, _)| config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    fn key() -> PrivateKey {
        PrivateKey::from_bytes([7; 32])
    }

    fn text(body: &str) -> String {
        format!(
            "# my tunnel\n[Interface]\nAddress = 198.18.100.2/24\n\n[Peer]\nPublicKey = {PEER}\n{body}"
        )
    }

    #[test]
    fn the_parsers_missing_key_message_is_what_we_look_for() {
        let error = parse("[Interface]\nAddress = 198.18.0.2/24\n", None).unwrap_err();
        assert_eq!(error.message(), NO_PRIVATE_KEY);
        assert_eq!(error.line(), Some(1));
    }

    #[test]
    fn text_without_a_key_uses_the_stored_one() {
        let (config, source) =
            parse_with_key(&text("AllowedIPs = 198.18.200.0/24\n"), &key()).unwrap();
        assert_eq!(source, KeySource::Stored);
        assert_eq!(config.interface.private_key, key());
        assert_eq!(config.peers.len(), 1);
    }

    #[test]
    fn text_with_a_key_brings_its_own() {
        let own = PrivateKey::from_bytes([9; 32]);
        let with_key = format!("[Interface]\nPrivateKey = {}\n", own.to_base64());
        let (config, source) = parse_with_key(&with_key, &key()).unwrap();
        assert_eq!(source, KeySource::Text);
        assert_eq!(config.interface.private_key, own);
    }

    #[test]
    fn errors_point_at_the_users_lines() {
        // Line 7 of the user's text (line 8 once the key is inserted after line 2).
        let error = parse_with_key(&text("AllowedIPs = 198.18.0.0/33\n"), &key()).unwrap_err();
        assert_eq!(error.line, Some(7), "{error}");
        assert!(error.message.contains("AllowedIPs"), "{error}");
        // Before the insertion point nothing shifts.
        let error = parse_with_key("[Interface]\nMTU = 10\n", &key()).unwrap_err();
        assert_eq!(error.line, Some(2), "{error}");
        // A key given twice is reported on the user's own key line.
        let twice = format!(
            "[Interface]\nPrivateKey = {0}\nPrivateKey = {0}\n",
            key().to_base64()
        );
        let error = parse_with_key(&twice, &key()).unwrap_err();
        assert_eq!(error.line, Some(3), "{error}");
        assert!(!error.message.contains(&key().to_base64()));
    }

    #[test]
    fn whole_file_faults_have_no_line() {
        let diagnostic = validate("").unwrap();
        assert_eq!(diagnostic.line, None);
        assert!(diagnostic.message.contains("[Interface]"), "{diagnostic:?}");
    }

    #[test]
    fn validation_accepts_what_the_helper_accepts() {
        assert_eq!(validate(&text("AllowedIPs = 198.18.200.0/24\n")), None);
        let diagnostic = validate(&text("Endpoint = nowhere\n")).unwrap();
        assert_eq!(diagnostic.line, Some(7));
        assert!(diagnostic.message.contains("port"), "{diagnostic:?}");
    }

    #[test]
    fn a_new_tunnel_is_an_interface_with_the_key() {
        let config = new_tunnel(&key()).unwrap();
        assert_eq!(config.interface.private_key, key());
        assert!(config.peers.is_empty());
        let shown = config.to_conf_without_private_key();
        assert!(!shown.contains(&key().to_base64()), "{shown}");
        assert_eq!(validate(&shown), None, "{shown}");
    }
}
