//! `warren-wg [-f|--foreground] IFNAME`: wireguard-go's command line over Warren's data plane, so
//! Warren is a drop-in userspace implementation for wireguard-tools:
//! `WG_QUICK_USERSPACE_IMPLEMENTATION=warren-wg wg-quick up wg0`, and `wg-quick@.service` with
//! that variable set.
//!
//! What it does, in order, as wireguard-go does it:
//! 1. creates the TUN interface IFNAME, down, with no address and no configuration (no
//!    private key until `wg` sets one, so it sends and answers nothing until then; no peers; a
//!    random UDP port on IPv4 and IPv6);
//! 2. serves the WireGuard UAPI at `/var/run/wireguard/IFNAME.sock` (the directory 0755, the
//!    socket created under umask 077, so root-only) with [`crate::uapi`], the same server
//!    `warren-helper` tunnels use, in front of the same driver ([`crate::dataplane`]);
//! 3. detaches — unless `-f`/`--foreground` or `WG_PROCESS_FOREGROUND=1` — only then: the
//!    parent exits 0 once the socket is served, or non-zero with the daemon's reason
//!    ([`daemonize`]);
//! 4. runs until SIGTERM/SIGINT or until the interface is deleted (`ip link del IFNAME`,
//!    which `wg-quick down` does), then removes its socket and exits 0.
//!
//! What it never does: wg-quick's job. No addresses, routes, MTU, DNS, firewall, hooks or
//! journal; the interface stays down until `wg-quick` (or `ip link set up`) brings it up.
//!
//! **Moved interfaces.** `ip link set IFNAME netns NS` is the container pattern: the interface
//! is configured and used inside NS while the UDP sockets stay in the namespace that created it
//! (the process never changes namespace, so a re-bind on a `listen_port` change also stays
//! there), and so does the UAPI socket path (a file, in this process's mount namespace). In the
//! original namespace the move looks like a deletion — the link is gone from its netlink view —
//! so netlink or ifindex watching would wrongly end the process. Like wireguard-go, warren-wg
//! watches the TUN file descriptor instead: it keeps working across a move, and only when the
//! interface is really deleted does the kernel detach it, which a read reports as `EBADFD`
//! ("file descriptor in bad state"). That read error is the "interface deleted" signal.
//!
//! **Logging** follows wireguard-go's `LOG_LEVEL`: `verbose` (info), `debug`, `error` (the
//! default) or `silent`; `RUST_LOG` overrides the filter. A detached daemon keeps stdout and
//! stderr only when `LOG_LEVEL` is set and not `silent`; otherwise they, and stdin, are
//! `/dev/null`. Under systemd (wg-quick@.service) stderr is the journal's, with priorities.
//!
//! Linux only for now: elsewhere it says so at run time and exits 1.

#[cfg(target_os = "linux")]
mod daemonize;

use clap::{CommandFactory as _, Parser};
use std::process::ExitCode;

const LONG_ABOUT: &str = "\
Create the WireGuard interface IFNAME as a userspace TUN device run by Warren's data plane, serve \
its configuration interface at /var/run/wireguard/IFNAME.sock and run in the background until the \
interface is deleted or SIGTERM/SIGINT arrives. The interface starts down and unconfigured: \
configure it with wg(8) and ip(8), or let wg-quick(8) do both:

    WG_QUICK_USERSPACE_IMPLEMENTATION=warren-wg wg-quick up wg0

The command line is wireguard-go's, so warren-wg drops in wherever wireguard-go is used. The \
interface may be moved to another network namespace after creation (ip link set IFNAME netns NS); \
its UDP sockets and its UAPI socket stay in the namespace that created it. Linux only for now.";

const AFTER_HELP: &str = "\
Environment: WG_PROCESS_FOREGROUND=1 is the same as --foreground. LOG_LEVEL=verbose|debug|error|\
silent sets what is logged (default error); a detached process keeps its standard output and error \
only when LOG_LEVEL is set and not silent. RUST_LOG, when set, overrides the log filter.

Exit codes: 0 success (the interface was deleted, or SIGTERM/SIGINT); 1 failure (the message \
says why; without --foreground the starting process exits 1 with the daemon's reason when it \
cannot serve the interface); 2 bad usage.";

/// The command line. (`about` is spelled out: clap would otherwise take the package's
/// description, which is warren-helper's.)
#[derive(Parser)]
#[command(
    name = "warren-wg",
    version,
    about = "Userspace WireGuard interface for wg-quick, with wireguard-go's command line",
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP
)]
struct Cli {
    /// Stay in the foreground instead of detaching once the interface is ready.
    #[arg(short, long)]
    foreground: bool,
    /// The interface to create: 1 to 15 characters from a-z A-Z 0-9 _ = + . - (as wg-quick).
    #[arg(value_name = "IFNAME")]
    interface: String,
}

/// The command line definition, for the manual page and completions (`crate::cli::docs`).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Parses arguments, runs, and maps the outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match options(cli).and_then(imp::run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warren-wg: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What to run, checked and read from the command line and the environment (on every OS, so
/// bad input is named as such before anything else is said).
struct Options {
    /// The interface to create.
    interface: String,
    /// `-f`, or `WG_PROCESS_FOREGROUND=1`.
    foreground: bool,
    /// `LOG_LEVEL`.
    level: LogLevel,
}

fn options(cli: Cli) -> anyhow::Result<Options> {
    crate::session::check_interface_name(&cli.interface).map_err(anyhow::Error::msg)?;
    let level_var = std::env::var("LOG_LEVEL").ok();
    let level = LogLevel::parse(level_var.as_deref()).map_err(anyhow::Error::msg)?;
    let foreground =
        cli.foreground || foreground_from_env(std::env::var_os("WG_PROCESS_FOREGROUND").as_deref());
    Ok(Options {
        interface: cli.interface,
        foreground,
        level,
    })
}

/// Whether `WG_PROCESS_FOREGROUND` asks for the foreground (wireguard-go: the value `1`).
fn foreground_from_env(value: Option<&std::ffi::OsStr>) -> bool {
    value.is_some_and(|v| v == "1")
}

/// What `LOG_LEVEL` (wireguard-go's variable) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LogLevel {
    /// The default tracing filter (`RUST_LOG` overrides it).
    filter: &'static str,
    /// Whether a detached daemon keeps stdout and stderr (otherwise /dev/null).
    keep_output: bool,
}

impl LogLevel {
    /// From `LOG_LEVEL`'s value (`None`: unset). An unknown level is refused with the list.
    fn parse(value: Option<&str>) -> Result<LogLevel, String> {
        let Some(value) = value else {
            return Ok(LogLevel {
                filter: "error",
                keep_output: false,
            });
        };
        let filter = match value.to_ascii_lowercase().as_str() {
            "verbose" => "info",
            "debug" => "debug",
            "error" => "error",
            "silent" => "off",
            _ => {
                return Err(format!(
                    "invalid LOG_LEVEL {value:?}: use verbose, debug, error or silent"
                ))
            }
        };
        Ok(LogLevel {
            filter,
            keep_output: filter != "off",
        })
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::daemonize::{self, Fork, Readiness};
    use super::Options;
    use crate::dataplane::udp::Sockets;
    use crate::dataplane::{Driver, Transport as _};
    use crate::sys::paths::UAPI_SOCKET_DIR;
    use anyhow::Context as _;
    use std::os::unix::fs::DirBuilderExt as _;
    use tokio::sync::mpsc;
    use warren_tunnel::Device;

    /// UAPI requests waiting for the driver.
    const UAPI_QUEUE: usize = 16;

    pub(super) fn run(options: Options) -> anyhow::Result<()> {
        let Options {
            interface,
            foreground,
            level,
        } = options;
        // Forked before anything starts a thread (the runtime, the log writer).
        let mut readiness = if foreground {
            Readiness::foreground()
        } else {
            match daemonize::fork()? {
                Fork::Parent(outcome) => return outcome,
                Fork::Daemon(readiness) => readiness,
            }
        };
        let result = (|| {
            if !foreground {
                daemonize::detach(level.keep_output)?;
            }
            crate::logging::init(crate::logging::Mode::Stderr {
                default: level.filter,
            });
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("failed to start the async runtime")?;
            runtime.block_on(serve(&interface, &mut readiness))
        })();
        if let Err(e) = &result {
            // Before readiness the parent prints it; after, `main` prints it to our stderr.
            readiness.failed(e);
        }
        result
    }

    /// Steps 1, 2 and 4 of the module docs; `readiness` is told once the socket is served.
    async fn serve(ifname: &str, readiness: &mut Readiness) -> anyhow::Result<()> {
        // Installed first, so that a signal during set-up is an orderly stop.
        let shutdown = crate::sys::shutdown::requested()?;
        let tun = crate::dataplane::tun::create(ifname)?;
        let sockets = Sockets::bind(0, None)?;
        let port = sockets.port();
        // No configuration yet: `wg setconf` (wg-quick) sets the key and the peers.
        let device = Device::without_private_key();
        prepare_socket_dir()?;
        let (requests, requests_rx) = mpsc::channel(UAPI_QUEUE);
        let uapi = crate::uapi::serve(&tun.name, requests)?;
        let mut driver = Driver::new(device, tun.device, sockets, requests_rx);
        tracing::info!(
            "{} created; UAPI at {UAPI_SOCKET_DIR}/{}.sock; listening on UDP port {port}",
            tun.name,
            tun.name
        );
        readiness.ready()?;
        let result = driver.run(shutdown).await;
        // The socket first, so `wg show interfaces` stops listing it before the TUN closes.
        drop(uapi);
        drop(driver);
        match result {
            Ok(()) => Ok(()),
            Err(e) if interface_deleted(&e) => {
                tracing::info!("{} was deleted; exiting", tun.name);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// `/var/run/wireguard` as wireguard-go makes it (0755), and the umask (077) it creates the
    /// socket under; `uapi::serve` then narrows the socket to 0600.
    fn prepare_socket_dir() -> anyhow::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(UAPI_SOCKET_DIR)
            .with_context(|| format!("failed to create {UAPI_SOCKET_DIR}"))?;
        // SAFETY: umask only sets the process's file-creation mask; it cannot fail.
        unsafe { libc::umask(0o077) };
        Ok(())
    }

    /// Whether the driver stopped because the TUN interface was deleted: the kernel detached
    /// the file descriptor, and reads fail with `EBADFD` (see the module docs).
    fn interface_deleted(e: &anyhow::Error) -> bool {
        e.chain()
            .filter_map(|c| c.downcast_ref::<std::io::Error>())
            .any(|io| io.raw_os_error() == Some(libc::EBADFD))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::Options;

    pub(super) fn run(options: Options) -> anyhow::Result<()> {
        // Read, so that each field means the same on every OS.
        let _ = (
            options.foreground,
            options.level.filter,
            options.level.keep_output,
        );
        anyhow::bail!(
            "cannot create {}: warren-wg is not supported on this OS yet (Linux only); use \
             `warren-helper up --foreground FILE.conf` for a tunnel without the daemon",
            options.interface
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_wireguard_gos() {
        let cli = Cli::try_parse_from(["warren-wg", "-f", "wg0"]).unwrap();
        assert!(cli.foreground);
        assert_eq!(cli.interface, "wg0");
        let cli = Cli::try_parse_from(["warren-wg", "--foreground", "wg1"]).unwrap();
        assert!(cli.foreground && cli.interface == "wg1");
        let cli = Cli::try_parse_from(["warren-wg", "wg2"]).unwrap();
        assert!(!cli.foreground);
        for bad in [
            &["warren-wg"][..],
            &["warren-wg", "a", "b"],
            &["warren-wg", "-x", "a"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "accepted {bad:?}");
        }
        let version = Cli::try_parse_from(["warren-wg", "--version"])
            .err()
            .unwrap();
        assert_eq!(version.kind(), clap::error::ErrorKind::DisplayVersion);
    }

    #[test]
    fn only_the_value_1_means_foreground() {
        assert!(foreground_from_env(Some("1".as_ref())));
        for other in ["0", "", "yes", "true"] {
            assert!(!foreground_from_env(Some(other.as_ref())), "{other}");
        }
        assert!(!foreground_from_env(None));
    }

    #[test]
    fn log_level_follows_wireguard_go() {
        let unset = LogLevel::parse(None).unwrap();
        assert_eq!((unset.filter, unset.keep_output), ("error", false));
        let verbose = LogLevel::parse(Some("verbose")).unwrap();
        assert_eq!((verbose.filter, verbose.keep_output), ("info", true));
        assert_eq!(LogLevel::parse(Some("DEBUG")).unwrap().filter, "debug");
        let silent = LogLevel::parse(Some("silent")).unwrap();
        assert_eq!((silent.filter, silent.keep_output), ("off", false));
        let e = LogLevel::parse(Some("loud")).unwrap_err();
        assert!(e.contains("\"loud\"") && e.contains("verbose, debug, error or silent"));
    }
}
