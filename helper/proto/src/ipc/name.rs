//! [`TunnelName`]: the name a tunnel is known by, checked once at the edge.
//!
//! A tunnel's name becomes a file name (`/etc/warren/tunnels/<name>.conf`) and, where the OS
//! allows, the interface name, so it is validated when it is created — by [`TunnelName::new`] in
//! a client, and by deserialization in the helper — and every later use can trust it. The rule is
//! wg-quick's (`^[a-zA-Z0-9_=+.-]{1,15}$`, 15 being Linux's `IFNAMSIZ - 1`), minus the two names
//! Linux refuses for an interface (`.` and `..`). No `/`, no whitespace: a name can never escape
//! its directory.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// Longest tunnel name in bytes (Linux interface names are at most 15 bytes).
pub const MAX_TUNNEL_NAME_LEN: usize = 15;

/// A valid tunnel name: 1 to 15 characters from `A-Z a-z 0-9 _ = + . -`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TunnelName(String);

/// Why a string is not a [`TunnelName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelNameError {
    /// The empty string.
    #[error("a tunnel name cannot be empty")]
    Empty,
    /// More than [`MAX_TUNNEL_NAME_LEN`] bytes.
    #[error("tunnel name '{name}' is {len} characters long; the limit is {MAX_TUNNEL_NAME_LEN}")]
    TooLong {
        /// The refused name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A character outside `A-Z a-z 0-9 _ = + . -`.
    #[error("tunnel name '{name}' contains {bad:?}; use only letters, digits and `_ = + . -`")]
    BadCharacter {
        /// The refused name.
        name: String,
        /// The first character that is not allowed.
        bad: char,
    },
    /// `.` or `..`.
    #[error("'{0}' is not a usable tunnel name")]
    Reserved(String),
}

impl TunnelName {
    /// Checks `name` against the rule above.
    pub fn new(name: impl Into<String>) -> Result<Self, TunnelNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(TunnelNameError::Empty);
        }
        if let Some(bad) = name
            .chars()
            .find(|&c| !(c.is_ascii_alphanumeric() || "_=+.-".contains(c)))
        {
            return Err(TunnelNameError::BadCharacter { name, bad });
        }
        if name.len() > MAX_TUNNEL_NAME_LEN {
            let len = name.len();
            return Err(TunnelNameError::TooLong { name, len });
        }
        if name == "." || name == ".." {
            return Err(TunnelNameError::Reserved(name));
        }
        Ok(Self(name))
    }

    /// The name wg-quick gives a configuration file: `/etc/wireguard/wg0.conf` → `wg0`.
    pub fn from_conf_path(path: &Path) -> Result<Self, TunnelNameError> {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::new(stem)
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TunnelName {
    type Error = TunnelNameError;
    fn try_from(name: String) -> Result<Self, TunnelNameError> {
        Self::new(name)
    }
}

impl From<TunnelName> for String {
    fn from(name: TunnelName) -> String {
        name.0
    }
}

impl FromStr for TunnelName {
    type Err = TunnelNameError;
    fn from_str(s: &str) -> Result<Self, TunnelNameError> {
        Self::new(s)
    }
}

impl AsRef<str> for TunnelName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TunnelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wg_quick_names_are_accepted() {
        for name in ["wg0", "office", "a", "x=y+z.v_w-1", "123456789012345"] {
            assert_eq!(TunnelName::new(name).unwrap().as_str(), name);
        }
    }

    #[test]
    fn names_that_could_escape_or_break_an_interface_are_refused() {
        assert_eq!(TunnelName::new(""), Err(TunnelNameError::Empty));
        assert!(matches!(
            TunnelName::new("../../etc/passwd"),
            Err(TunnelNameError::BadCharacter { bad: '/', .. })
        ));
        assert!(matches!(
            TunnelName::new("my vpn"),
            Err(TunnelNameError::BadCharacter { bad: ' ', .. })
        ));
        assert!(matches!(
            TunnelName::new("wgé"),
            Err(TunnelNameError::BadCharacter { bad: 'é', .. })
        ));
        assert_eq!(
            TunnelName::new("1234567890123456"),
            Err(TunnelNameError::TooLong {
                name: "1234567890123456".into(),
                len: 16
            })
        );
        assert_eq!(
            TunnelName::new(".."),
            Err(TunnelNameError::Reserved("..".into()))
        );
        assert_eq!(
            TunnelName::new("").unwrap_err().to_string(),
            "a tunnel name cannot be empty"
        );
    }

    #[test]
    fn deserialization_checks_the_rule() {
        let ok: TunnelName = serde_json::from_str("\"wg0\"").unwrap();
        assert_eq!(ok.as_str(), "wg0");
        assert_eq!(serde_json::to_string(&ok).unwrap(), "\"wg0\"");
        let err = serde_json::from_str::<TunnelName>("\"../x\"").unwrap_err();
        assert!(err.to_string().contains("contains '/'"), "{err}");
    }

    #[test]
    fn name_from_a_conf_path_is_its_stem() {
        let name = TunnelName::from_conf_path(Path::new("/etc/wireguard/wg0.conf")).unwrap();
        assert_eq!(name.as_str(), "wg0");
        assert!(TunnelName::from_conf_path(Path::new("/")).is_err());
    }
}
