//! `genkey`, `pubkey`, `genpsk`: key tools whose input and output match `wg`'s exactly, so
//! scripts can use either.

use anyhow::{bail, Context};
use std::io::{Read, Write};
use warren_proto::key::{PresharedKey, PrivateKey};

pub fn genkey() -> anyhow::Result<()> {
    print_line(&PrivateKey::generate().to_base64())
}

pub fn genpsk() -> anyhow::Result<()> {
    print_line(&PresharedKey::generate().to_base64())
}

pub fn pubkey() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .take(1024)
        .read_to_string(&mut input)
        .context("failed to read a private key from stdin")?;
    let key: PrivateKey = match input.trim().parse() {
        Ok(key) => key,
        Err(e) => bail!("stdin does not hold a private key: {e}"),
    };
    print_line(&key.public_key().to_string())
}

fn print_line(s: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{s}").context("failed to write to stdout")
}
