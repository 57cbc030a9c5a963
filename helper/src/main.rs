//! warren-helper: Warren's privileged helper and admin CLI.
//!
//! One binary, several subcommands (see `--help`):
//! - `up <file.conf>`: bring a tunnel up in the foreground, like `wireguard-go -f` + `wg-quick up`,
//!   and take everything down again on SIGINT/SIGTERM;
//! - `recover`: undo what tunnels that did not stop cleanly left behind, from their journals;
//! - `genkey`, `pubkey`, `genpsk`: key tools compatible with `wg`;
//! - `demo`: a local demo peer in a network namespace.
//!
//! Layout: [`cli`] parses arguments and runs subcommands; [`driver`] moves packets between the TUN,
//! the UDP sockets and the sans-IO core (`warren-tunnel`); [`uapi`] serves the WireGuard
//! cross-platform UAPI so `wg` works; [`platform`] plans and applies addresses, MTU, routes and
//! full-tunnel policy routing (and DNS, the kill switch) per OS; [`journal`] records each system
//! change before it is made, so that it is undone even after a crash;
//! [`demo`] is the local demo; [`tun_device`] creates the TUN interface as each OS names it;
//! [`shutdown`] turns the OS's stop requests (signals, console events) into one future;
//! [`egress`] keeps the tunnel's own UDP datagrams off the tunnel where the OS needs the socket
//! told (Windows); `winnet` (Windows only) wraps the IP Helper API calls.

mod cli;
mod demo;
mod driver;
mod egress;
mod journal;
mod platform;
mod shutdown;
mod tun_device;
mod uapi;
#[cfg(windows)]
mod winnet;

fn main() -> std::process::ExitCode {
    cli::main()
}
