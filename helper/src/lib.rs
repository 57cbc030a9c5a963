//! warren-helper: Warren's privileged helper and admin CLI, and `warren-wg`.
//!
//! A library behind two thin binaries (`src/main.rs`, `src/bin/warren-wg.rs`), so both share
//! one data plane and one UAPI server; nothing else uses it as a library.
//!
//! `warren-helper` is one binary with several subcommands (see `--help`):
//! - `daemon`: the service that owns the tunnels and serves the IPC protocol to the GUI and CLI;
//! - `up`, `down`, `status`, `list`, `import`, `remove`, `logs`: the admin CLI, a client of the
//!   daemon;
//! - `up --foreground <file.conf>`: a tunnel in this process, like `wireguard-go -f` +
//!   `wg-quick up`, taken down again on SIGINT/SIGTERM, no daemon needed;
//! - `recover`: undo what tunnels that did not stop cleanly left behind, from their journals;
//! - `genkey`, `pubkey`, `genpsk`: key tools compatible with `wg`;
//! - `demo`: a local demo peer in a network namespace.
//!
//! `warren-wg IFNAME` ([`wg`]) is wireguard-go's command line over the same data plane: a TUN
//! interface with no configuration and its UAPI socket, for `wg` and `wg-quick` to drive.
//!
//! Layout — the top level reads as the architecture:
//! - [`cli`] parses arguments and runs subcommands;
//! - [`daemon`] is the service: IPC server, tunnel manager and state machine, system tunnels on
//!   disk;
//! - [`session`] is one tunnel's whole lifecycle (checks, journal, TUN, sockets, firewall,
//!   network, DNS, driver, teardown), shared by the daemon and `up --foreground`, with the
//!   watcher that keeps its peers' endpoints and the kill switch current (`session::endpoints`)
//!   and what it does when the network under it changes or the machine resumes
//!   (`session::network`);
//! - [`dataplane`] moves packets between the TUN, the UDP sockets and the sans-IO core
//!   (`warren-tunnel`): the driver, its batches, `tun/` and `udp/`;
//! - [`platform`] plans and applies addresses, MTU, routes and full-tunnel policy per OS, DNS and
//!   the kill switch, and hears the OS's network changes (`platform::monitor`);
//! - [`uapi`] serves the WireGuard cross-platform UAPI so `wg` works;
//! - [`journal`] records each system change before it is made, so that it is undone even after a
//!   crash;
//! - [`logging`] sets up stderr, the daemon's rotating files and its in-memory log;
//! - [`demo`] is the local demo peer;
//! - [`wg`] is the `warren-wg` binary's whole program;
//! - [`sys`] is the OS underneath: small safe wrappers, where every well-known file and directory
//!   is (`sys::paths`), the one atomic private-file writer, the stop requests as one future,
//!   the lock around shared kernel settings, logind's sleep signals (Linux), and the Windows
//!   parts several concerns share (IP Helper, named pipes, the service).

mod cli;
mod daemon;
mod dataplane;
mod demo;
mod journal;
mod logging;
mod platform;
mod session;
mod sys;
mod uapi;
mod wg;

/// The `warren-helper` binary's program: parses its arguments, runs the subcommand, returns the
/// exit code.
pub fn helper_main() -> std::process::ExitCode {
    cli::main()
}

/// The `warren-wg` binary's program (see [`wg`]).
pub fn wg_main() -> std::process::ExitCode {
    wg::main()
}
