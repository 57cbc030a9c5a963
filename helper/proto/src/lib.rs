//! warren-proto: the vocabulary that Warren's helper, admin CLI and GUI share, so they cannot drift.
//!
//! It owns:
//! - [`key`]: WireGuard keys (base64 on the wire and in files), generation, and the private-key
//!   type that never prints itself and is zeroized on drop;
//! - [`config`]: the typed tunnel configuration and the wg-quick `.conf` parser and serializer,
//!   compatible with `wg-quick` and `wg showconf`, whose errors name the file, the line and the fault;
//! - [`ipc`]: the helper's IPC protocol: the message enums, the length-delimited JSON frame codec
//!   and the async client the GUI and the CLI use.
//!
//! It must not do I/O beyond reading a named file for the caller and, in [`ipc::client`], the
//! connection to the helper that the caller asks for; it never logs secrets.

#![warn(clippy::print_stdout, clippy::print_stderr)]

pub mod config;
pub mod ipc;
pub mod key;
