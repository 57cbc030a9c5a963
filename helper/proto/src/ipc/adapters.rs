//! Serde adapters (`#[serde(with = "…")]`) for the types the IPC messages carry as text.
//!
//! - [`tunnel_config`]: a [`TunnelConfig`] travels as its wg-quick text
//!   ([`TunnelConfig::to_conf`] / [`parse`]), so the wire format is the file format users know,
//!   and the helper re-runs the same validation as every other reader of a `.conf`. The text
//!   holds the private key: both directions keep it in a [`Zeroizing`] string.
//! - [`public_key`]: a [`PublicKey`] travels as base64, as in a `.conf` file and `wg show`.
//! - [`result`]: a `Result<T, E>` travels as `{"ok": T}` or `{"error": E}`.
//!
//! The key types deliberately have no serde impls of their own: a private key can only reach
//! the wire inside a configuration, through [`tunnel_config`].

use crate::config::{parse, TunnelConfig};
use crate::key::PublicKey;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A [`TunnelConfig`] as its wg-quick text.
pub(super) mod tunnel_config {
    use super::*;

    pub(in crate::ipc) fn serialize<S: Serializer>(
        config: &TunnelConfig,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let text = Zeroizing::new(config.to_conf());
        serializer.serialize_str(&text)
    }

    pub(in crate::ipc) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<TunnelConfig, D::Error> {
        let text = Zeroizing::new(String::deserialize(deserializer)?);
        // ConfigError's message never quotes a key.
        parse(&text, None).map_err(serde::de::Error::custom)
    }
}

/// A [`PublicKey`] as base64.
pub(super) mod public_key {
    use super::*;

    pub(in crate::ipc) fn serialize<S: Serializer>(
        key: &PublicKey,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(key)
    }

    pub(in crate::ipc) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<PublicKey, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format_args!("public key: {e}")))
    }
}

/// `Result<T, E>` as `{"ok": T}` / `{"error": E}` (serde's default is `{"Ok": …}`/`{"Err": …}`).
pub(super) mod result {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    enum Borrowed<'a, T, E> {
        Ok(&'a T),
        Error(&'a E),
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Owned<T, E> {
        Ok(T),
        Error(E),
    }

    pub(in crate::ipc) fn serialize<S, T, E>(
        result: &Result<T, E>,
        serializer: S,
    ) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Serialize,
        E: Serialize,
    {
        match result {
            Ok(value) => Borrowed::<T, E>::Ok(value),
            Err(error) => Borrowed::Error(error),
        }
        .serialize(serializer)
    }

    pub(in crate::ipc) fn deserialize<'de, D, T, E>(
        deserializer: D,
    ) -> Result<Result<T, E>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
        E: Deserialize<'de>,
    {
        Ok(match Owned::deserialize(deserializer)? {
            Owned::Ok(value) => Ok(value),
            Owned::Error(error) => Err(error),
        })
    }
}
