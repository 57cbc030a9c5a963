//! warren-app: the backend of Warren's desktop app (Tauri 2).
//!
//! It owns the user's side of Warren: their tunnels (text in the app's config dir, private keys
//! in the OS keyring), the one connection to the privileged helper, and how the helper's state
//! reaches the window, the tray and notifications. It must not change the system itself (the
//! helper does that), guess a tunnel's state (it mirrors the helper's events), or write a private
//! key into its own files (unless the user explicitly accepts the warned key-file fallback).
//!
//! Layout:
//! - [`controller`]: the controller — owns the IPC client, reconnects, mirrors state, runs the
//!   tunnel library; everything below the Tauri layer, tested against a fake helper;
//! - [`model`]: the types the webview sees (TypeScript bindings generated from them);
//! - [`conf`]: the editor's text ↔ configuration, with the helper's own parser;
//! - [`store`]: tunnels, keys and settings on disk;
//! - [`notify`], [`tray`], [`icons`]: what notifications and the tray show (pure models) and the
//!   Tauri glue for them; [`tray_support`]: whether there can be a tray at all (probes and a
//!   pure decision);
//! - [`launch`]: the command line (`--offer-demo`, `.conf` files to import);
//! - [`commands`]: the thin Tauri commands; [`app`]: plugins, window behaviour, wiring;
//! - `fake_helper`: a helper that speaks the protocol from a table of tunnels and changes
//!   nothing, for the controller's tests and `examples/fake_helper.rs` (only in test builds and
//!   with the feature `fake-helper`; not in the app).

pub mod app;
pub mod commands;
pub mod conf;
pub mod controller;
#[cfg(any(test, feature = "fake-helper"))]
pub mod fake_helper;
pub mod icons;
pub mod launch;
pub mod model;
pub mod notify;
pub mod store;
pub mod tray;
pub mod tray_support;

pub use app::run;
