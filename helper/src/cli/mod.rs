//! The command line: argument parsing, one module per subcommand, and the exit codes.
//!
//! Each subcommand only translates: the admin commands (`up`, `down`, `status`, `list`,
//! `import`, `remove`, `logs`) into IPC requests to the daemon (`client.rs` connects), `daemon`
//! into [`crate::daemon::run`], `up --foreground` into [`crate::session`], `recover` into
//! [`crate::journal::recover`]; the work lives elsewhere. Errors are printed once, as a chain, on
//! stderr, and mapped to an exit code scripts can test ([`exit_code`]):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | failure (the message says why) |
//! | 2 | bad usage (unknown option, missing argument) |
//! | 3 | the daemon is not running (nothing listens on its socket) |
//! | 4 | not allowed (not root / not in group `warren`, or the daemon refused) |
//! | 5 | no such tunnel |
//! | 6 | conflict: already up, name taken, or routes overlap another tunnel's |
//! | 7 | invalid configuration |
//! | 8 | `up --wait`: no handshake in time (the tunnel stays up) |
//! | 9 | the network: an endpoint's host name did not resolve (try again when online) |
//!
//! `up --foreground` works without the daemon but fails with the same codes (7 for a configuration
//! the tunnel cannot use, 9 for an endpoint name that does not resolve, 1 otherwise); `recover`
//! and `demo` exit 1 on any failure.

mod client;
mod daemon;
mod demo;
mod docs;
mod down;
mod import;
mod keys;
mod list;
mod logs;
mod recover;
mod remove;
#[cfg(windows)]
mod service;
mod status;
mod up;

use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use warren_proto::ipc::{ClientError, ErrorKind, IpcError};

const EXIT_CODES: &str = "\
Exit codes: 0 success; 1 failure; 2 bad usage; 3 the daemon is not running; 4 not allowed; \
5 no such tunnel; 6 conflict (already up, name taken, overlapping routes); 7 invalid \
configuration; 8 up --wait: no handshake in time; 9 an endpoint's host name did not resolve. \
(up --foreground: the same codes; recover and demo: 1 for any failure.)

Admin commands talk to the daemon on /run/warren/helper.sock (override with --socket or \
WARREN_HELPER_SOCKET); root and members of group warren may use it.";

const LONG_ABOUT: &str = "\
Warren's privileged helper: the userspace WireGuard daemon and its admin command line.

`warren-helper daemon` (the systemd service warren-helper) owns every tunnel: system tunnels \
installed in /etc/warren/tunnels (wg-quick .conf files, root only) and user tunnels handed over by \
the desktop app. The other subcommands are its clients, except `up --foreground` (a tunnel in \
this process, like wg-quick up with a userspace implementation), `recover` and the key tools. \
While a tunnel is up, wg(8) works on its interface through the WireGuard UAPI socket in \
/var/run/wireguard.";

/// Warren's privileged helper: the userspace WireGuard daemon and its admin CLI.
#[derive(Parser)]
#[command(name = "warren-helper", version, about, long_about = LONG_ABOUT, after_help = EXIT_CODES)]
struct Cli {
    /// The daemon's socket (Windows: pipe) to connect to, or for `daemon` to listen on
    /// [default: $WARREN_HELPER_SOCKET, else /run/warren/helper.sock].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring a tunnel up: a system tunnel by name, or a wg-quick file as a user tunnel, through
    /// the daemon. With --foreground, run the file's tunnel in this process instead, until
    /// SIGINT/SIGTERM, without a daemon.
    Up(up::Args),
    /// Take a tunnel down (through the daemon); waits until everything it changed is undone.
    Down(down::Args),
    /// Show tunnels' state, peers, handshakes, transfer and health.
    Status(status::Args),
    /// List every tunnel: installed system tunnels and user tunnels that are up.
    List(list::Args),
    /// Install a wg-quick file as a system tunnel (in /etc/warren/tunnels/, mode 0600).
    Import(import::Args),
    /// Delete a system tunnel (it must be down).
    Remove(remove::Args),
    /// Print the daemon's recent log lines; -f follows new ones.
    Logs(logs::Args),
    /// Run the daemon: own the tunnels, serve the GUI and this CLI, bring up autostart tunnels.
    Daemon(daemon::Args),
    /// Undo what tunnels that did not stop cleanly (crash, kill -9, power loss) left behind —
    /// addresses, routes, rules, sysctls, DNS, firewall — from their journals, and print what was
    /// restored. For boot time and after a crash; running tunnels are left alone.
    Recover(recover::Args),
    /// Print a new private key (base64), like `wg genkey`.
    Genkey,
    /// Read a private key on stdin and print its public key, like `wg pubkey`.
    Pubkey,
    /// Print a new preshared key, like `wg genpsk`.
    Genpsk,
    /// Start a local demo: a Warren peer in a network namespace and a tunnel to it (with
    /// --peer-only: only the peer, and the client's .conf for the desktop app to import).
    Demo(demo::Args),
    /// Install or uninstall the Windows service (run by the installer, as an administrator).
    #[cfg(windows)]
    #[command(subcommand)]
    Service(service::Action),
}

/// Parses arguments, runs the subcommand and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    // The hidden `generate-docs` is added here, outside `Cli`, so that the pages and completions
    // generated from `Cli` do not offer it.
    let matches = Cli::command().subcommand(docs::command()).get_matches();
    if let Some(("generate-docs", args)) = matches.subcommand() {
        return match docs::run(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("warren-helper: {}", error_chain(&e));
                ExitCode::FAILURE
            }
        };
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let socket = cli.socket.unwrap_or_else(crate::sys::paths::daemon_socket);
    let quiet = crate::logging::Mode::Stderr { default: "warn" };
    let verbose = crate::logging::Mode::Stderr { default: "info" };
    let result = match cli.command {
        Command::Genkey => keys::genkey(),
        Command::Pubkey => keys::pubkey(),
        Command::Genpsk => keys::genpsk(),
        Command::Up(args) => {
            crate::logging::init(if args.foreground { verbose } else { quiet });
            up::run(args, socket)
        }
        Command::Down(args) => client_command(quiet, down::run(args, socket)),
        Command::Status(args) => client_command(quiet, status::run(args, socket)),
        Command::List(args) => client_command(quiet, list::run(args, socket)),
        Command::Import(args) => client_command(quiet, import::run(args, socket)),
        Command::Remove(args) => client_command(quiet, remove::run(args, socket)),
        Command::Logs(args) => client_command(quiet, logs::run(args, socket)),
        Command::Daemon(args) => daemon::run(args, socket),
        Command::Recover(args) => {
            crate::logging::init(verbose);
            runtime().and_then(|rt| rt.block_on(recover::run(args)))
        }
        Command::Demo(args) => {
            crate::logging::init(verbose);
            runtime().and_then(|rt| rt.block_on(demo::run(args)))
        }
        #[cfg(windows)]
        Command::Service(action) => {
            crate::logging::init(verbose);
            service::run(action)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warren-helper: {}", error_chain(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The error and its causes on one line ([`crate::logging::one_line`]).
fn error_chain(error: &anyhow::Error) -> String {
    crate::logging::one_line(error.as_ref())
}

/// Runs a client command's future with quiet logging.
fn client_command(
    logging: crate::logging::Mode,
    command: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    crate::logging::init(logging);
    runtime().and_then(|rt| rt.block_on(command))
}

/// A single-threaded runtime for one command.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The exit code for `error` (see the module docs).
pub fn exit_code(error: &anyhow::Error) -> u8 {
    for cause in error.chain() {
        if let Some(client) = cause.downcast_ref::<ClientError>() {
            return match client {
                ClientError::NotRunning { .. } => 3,
                ClientError::PermissionDenied { .. } => 4,
                ClientError::Refused(reason) => ipc_exit_code(&reason.kind),
                _ => 1,
            };
        }
        if let Some(ipc) = cause.downcast_ref::<IpcError>() {
            return ipc_exit_code(&ipc.kind);
        }
        if let Some(session) = cause.downcast_ref::<crate::session::SessionError>() {
            return ipc_exit_code(&session.kind());
        }
        if cause.downcast_ref::<up::NoHandshake>().is_some() {
            return 8;
        }
        if cause
            .downcast_ref::<warren_proto::config::ConfigError>()
            .is_some()
        {
            return 7;
        }
    }
    1
}

/// The exit code for a failure of `kind`: the one table behind the module docs' codes.
fn ipc_exit_code(kind: &ErrorKind) -> u8 {
    match kind {
        ErrorKind::NotAuthorized => 4,
        ErrorKind::NotFound => 5,
        ErrorKind::Conflict { .. } => 6,
        ErrorKind::InvalidConfig { .. } => 7,
        ErrorKind::Network => 9,
        ErrorKind::Disconnected => 3,
        ErrorKind::InvalidRequest
        | ErrorKind::Unsupported
        | ErrorKind::MissingFeature
        | ErrorKind::Internal => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn errors_map_to_documented_exit_codes() {
        let ipc = |kind| anyhow::Error::from(IpcError::new(kind, "x"));
        assert_eq!(exit_code(&ipc(ErrorKind::NotAuthorized)), 4);
        assert_eq!(exit_code(&ipc(ErrorKind::NotFound)), 5);
        assert_eq!(exit_code(&ipc(ErrorKind::Conflict { with: None })), 6);
        assert_eq!(
            exit_code(&ipc(ErrorKind::InvalidConfig {
                file: None,
                line: None,
                message: "m".into()
            })),
            7
        );
        assert_eq!(exit_code(&ipc(ErrorKind::Internal).context("up")), 1);
        let not_running = ClientError::NotRunning {
            path: "/x".into(),
            hint: "start it",
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(
            exit_code(&anyhow::Error::from(not_running).context("status")),
            3
        );
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), 1);
        assert_eq!(exit_code(&ipc(ErrorKind::Network)), 9);
        assert_eq!(exit_code(&ipc(ErrorKind::MissingFeature)), 1);
        let unresolved = crate::session::SessionError::System(anyhow::anyhow!("x"));
        assert_eq!(exit_code(&anyhow::Error::from(unresolved).context("up")), 1);
        assert_eq!(
            exit_code(&anyhow::Error::from(up::NoHandshake { secs: 3 })),
            8
        );
    }

    #[test]
    fn a_cause_that_is_already_printed_is_not_repeated() {
        let refused = ClientError::Refused(IpcError::not_authorized("uid 7 is not in group x"));
        let error = anyhow::Error::from(refused).context("list");
        assert_eq!(
            error_chain(&error),
            "list: the helper refused the connection: uid 7 is not in group x"
        );
        assert_eq!(exit_code(&error), 4);
    }

    #[test]
    fn up_takes_a_name_or_a_file() {
        let cli = Cli::try_parse_from(["warren-helper", "up", "office"]).unwrap();
        assert!(matches!(cli.command, Command::Up(_)));
        let cli = Cli::try_parse_from([
            "warren-helper",
            "up",
            "--foreground",
            "/etc/wireguard/wg0.conf",
            "--interface",
            "wg9",
            "--kill-switch",
            "on",
        ]);
        assert!(cli.is_ok());
        assert!(Cli::try_parse_from(["warren-helper", "up"]).is_err());
    }
}
