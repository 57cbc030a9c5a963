//! The IPC protocol between Warren's privileged helper and its clients (the GUI, the CLI), in one
//! place so the two sides cannot drift.
//!
//! The helper listens on a Unix socket (`/run/warren/helper.sock` on Linux,
//! `/var/run/warren/helper.sock` on macOS) or a named pipe (`\\.\pipe\warren-helper` on Windows).
//! Each message is a frame: a 4-byte big-endian length and that many bytes of JSON (at most
//! [`MAX_FRAME_LEN`], 1 MiB). A client opens with `Hello` (the protocol version), then sends
//! requests tagged with an id; the helper answers each id once and pushes events (tunnel state,
//! stats, log lines) to clients that subscribed. A sample exchange:
//!
//! ```text
//! → {"hello":{"version":4,"client":"warren-cli 0.1.0"}}
//! ← {"hello":{"version":4,"helper_version":"0.1.0"}}
//! → {"request":{"id":1,"request":{"command":"subscribe","args":{"topics":["state"]}}}}
//! ← {"response":{"id":1,"result":{"ok":{"kind":"done"}}}}
//! → {"request":{"id":2,"request":{"command":"connect_system","args":{"name":"office"}}}}
//! ← {"event":{"kind":"tunnel_state","name":"office","state":{"kind":"connecting"}}}
//! ← {"response":{"id":2,"result":{"ok":{"kind":"done"}}}}
//! ← {"event":{"kind":"tunnel_state","name":"office","state":{"kind":"connected","since_unix_secs":1767225600}}}
//! → {"request":{"id":3,"request":{"command":"disconnect","args":{"name":"home"}}}}
//! ← {"response":{"id":3,"result":{"error":{"kind":"not_found","message":"no tunnel named 'home' is up"}}}}
//! ```
//!
//! It owns the two message enums ([`ClientMessage`], [`HelperMessage`]) and their payloads
//! (requests, responses, events, the tunnel state machine, health, errors), the frame codec
//! ([`JsonCodec`], shared by both ends with the types swapped), the client side ([`connect`],
//! [`Client`]: hello, version check, requests matched to responses by id while events arrive,
//! per-OS transport), [`TunnelName`] (the validated name a tunnel is known by), and the serde
//! adapters with which a [`TunnelConfig`](crate::config::TunnelConfig) travels as its wg-quick
//! text and public keys as base64.
//!
//! The server side (authorising peers, dispatching requests) belongs to the helper; it frames
//! each connection with [`HelperCodec`].

mod adapters;
pub mod client;
pub mod codec;
pub mod messages;
mod name;

pub use client::{connect, default_socket_path, Client, ClientError, SOCKET_PATH_ENV};
pub use codec::{ClientCodec, FrameError, HelperCodec, JsonCodec, MAX_FRAME_LEN};
pub use messages::*;
pub use name::{TunnelName, TunnelNameError, MAX_TUNNEL_NAME_LEN};
