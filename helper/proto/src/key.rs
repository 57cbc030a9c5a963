//! WireGuard keys: 32-byte Curve25519 values, written as standard base64 (44 characters).
//!
//! [`PublicKey`] and [`PresharedKey`]/[`PrivateKey`] are distinct types so a public key can never
//! be used where a secret is expected. Secrets are zeroized on drop, and their `Debug` output is
//! redacted so a key can never reach a log line by accident.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::fmt;
use std::str::FromStr;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of every WireGuard key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a key string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not valid standard base64.
    #[error("not valid base64")]
    Base64,
    /// Valid base64 but not 32 bytes.
    #[error("decodes to {0} bytes, a WireGuard key has 32")]
    Length(usize),
}

fn decode(s: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let mut bytes = STANDARD.decode(s.trim()).map_err(|_| KeyError::Base64)?;
    let result =
        <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length(bytes.len()));
    bytes.zeroize();
    result
}

/// A peer's (or our own) public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }
    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
    /// Lower-case hex, as the WireGuard UAPI writes keys.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
    /// Parses the UAPI's 64-character hex form.
    pub fn from_hex(s: &str) -> Result<Self, KeyError> {
        unhex(s).map(Self)
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        decode(s).map(Self)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            /// Wraps raw bytes (the caller should zeroize its own copy).
            pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                Self(bytes)
            }
            /// The raw secret bytes.
            pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }
            /// The base64 form, for writing a configuration file. Handle with care.
            pub fn to_base64(&self) -> String {
                STANDARD.encode(self.0)
            }
            /// Lower-case hex, as the WireGuard UAPI writes keys. Handle with care.
            pub fn to_hex(&self) -> String {
                hex(&self.0)
            }
            /// Parses the UAPI's 64-character hex form.
            pub fn from_hex(s: &str) -> Result<Self, KeyError> {
                unhex(s).map(Self)
            }
        }

        impl FromStr for $name {
            type Err = KeyError;
            fn from_str(s: &str) -> Result<Self, KeyError> {
                decode(s).map(Self)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_key!(
    /// An interface's private key. Never printed; zeroized on drop.
    PrivateKey
);
secret_key!(
    /// A peer's optional preshared key (post-quantum hedge). Never printed; zeroized on drop.
    PresharedKey
);

impl PrivateKey {
    /// A fresh random private key from the OS RNG, clamped as Curve25519 expects.
    pub fn generate() -> Self {
        let secret = x25519_dalek::StaticSecret::random_from_rng(rand_core::OsRng);
        Self(secret.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        PublicKey(*x25519_dalek::PublicKey::from(&secret).as_bytes())
    }
}

impl PresharedKey {
    /// A fresh random preshared key (`wg genpsk`).
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
        Self(bytes)
    }
}

fn hex(bytes: &[u8; KEY_LEN]) -> String {
    use fmt::Write as _;
    let mut out = String::with_capacity(KEY_LEN * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn unhex(s: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let s = s.trim().as_bytes();
    if s.len() != KEY_LEN * 2 {
        return Err(KeyError::Length(s.len() / 2));
    }
    let mut out = [0u8; KEY_LEN];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16).ok_or(KeyError::Base64);
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_base64_and_hex() {
        let private = PrivateKey::generate();
        let again: PrivateKey = private.to_base64().parse().unwrap();
        assert_eq!(private, again);
        assert_eq!(PrivateKey::from_hex(&private.to_hex()).unwrap(), private);
        let public = private.public_key();
        assert_eq!(public.to_string().parse::<PublicKey>().unwrap(), public);
        assert_eq!(PublicKey::from_hex(&public.to_hex()).unwrap(), public);
    }

    #[test]
    fn known_public_key_matches_wg_pubkey() {
        // Vector produced by `echo <priv> | wg pubkey` (wireguard-tools).
        let private: PrivateKey = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
            .parse()
            .unwrap();
        assert_eq!(
            private.public_key().to_string(),
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
        );
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        assert_eq!("not base64!".parse::<PublicKey>(), Err(KeyError::Base64));
        assert_eq!("AAAA".parse::<PublicKey>(), Err(KeyError::Length(3)));
    }

    #[test]
    fn secrets_never_print() {
        let private = PrivateKey::generate();
        let shown = format!("{private:?}");
        assert!(!shown.contains(&private.to_base64()));
        assert!(shown.contains("redacted"));
    }
}
