//! warren-helper: Warren's privileged helper and admin CLI.
//!
//! One binary, several subcommands (see `--help`):
//! - `daemon`: the service that owns the tunnels and serves the IPC protocol to the GUI and CLI;
//! - `up`, `down`, `status`, `list`, `import`, `remove`, `logs`: the admin CLI, a client of the
//!   daemon;
//! - `up --foreground <file.conf>`: a tunnel in this process, like `wireguard-go -f` +
//!   `wg-quick up`, taken down again on SIGINT/SIGTERM, no daemon needed;
//! - `recover`: undo what tunnels that did not stop cleanly left behind, from their journals;
//! - `genkey`, `pubkey`, `genpsk`: key tools compatible with `wg`;
//! - `demo`: a local demo peer in a network namespace.
//!
//! Layout: [`cli`] parses arguments and runs subcommands; [`daemon`] is the service (IPC server,
//! tunnel manager and state machine, system tunnels on disk); [`session`] is one tunnel's whole
//! lifecycle (checks, journal, TUN, sockets, firewall, network, DNS, driver, teardown), shared by
//! the daemon and `up --foreground`; [`logging`] sets up stderr, the daemon's rotating files and
//! its in-memory log; [`driver`] moves packets between the TUN,
//! the UDP sockets and the sans-IO core (`warren-tunnel`); [`uapi`] serves the WireGuard
//! cross-platform UAPI so `wg` works; [`platform`] plans and applies addresses, MTU, routes and
//! full-tunnel policy routing (and DNS, the kill switch) per OS; [`journal`] records each system
//! change before it is made, so that it is undone even after a crash;
//! [`demo`] is the local demo; [`tun_device`] creates the TUN interface as each OS names it;
//! [`shutdown`] turns the OS's stop requests (signals, console events) into one future;
//! [`egress`] keeps the tunnel's own UDP datagrams off the tunnel where the OS needs the socket
//! told (Windows); `winnet` (Windows only) wraps the IP Helper API calls, `winpipe` the named
//! pipes' security descriptors.

mod cli;
mod daemon;
mod demo;
mod driver;
mod egress;
mod journal;
mod logging;
mod platform;
#[cfg(windows)]
mod service_windows;
mod session;
mod shutdown;
mod sys;
mod tun_device;
mod tun_gro;
mod uapi;
mod udp;
#[cfg(windows)]
mod winnet;
#[cfg(windows)]
mod winpipe;

fn main() -> std::process::ExitCode {
    cli::main()
}
