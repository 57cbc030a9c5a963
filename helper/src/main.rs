//! warren-helper: Warren's privileged helper and admin CLI.
//!
//! One binary, several subcommands (see `--help`):
//! - `up <file.conf>`: bring a tunnel up in the foreground, like `wireguard-go -f` + `wg-quick up`,
//!   and take everything down again on SIGINT/SIGTERM;
//! - `genkey`, `pubkey`, `genpsk`: key tools compatible with `wg`;
//! - `demo`: a local demo peer in a network namespace.
//!
//! Layout: [`cli`] parses arguments and runs subcommands; [`driver`] moves packets between the TUN,
//! the UDP sockets and the sans-IO core (`warren-tunnel`); [`uapi`] serves the WireGuard
//! cross-platform UAPI so `wg` works; [`platform`] applies addresses, MTU and routes per OS;
//! [`demo`] is the local demo.

mod cli;
mod demo;
mod driver;
mod platform;
mod uapi;

fn main() -> std::process::ExitCode {
    cli::main()
}
