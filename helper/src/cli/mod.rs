//! The command line: argument parsing and one module per subcommand.
//!
//! Each subcommand only translates arguments into calls on the helper's parts and turns their
//! errors into a message and an exit code; the work lives elsewhere.
//!
//! Exit codes: 0 success, 1 failure (the message says why), 2 bad usage (clap's own).

mod keys;
mod recover;
mod up;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Warren's privileged helper: a userspace WireGuard tunnel and its admin CLI.
#[derive(Parser)]
#[command(name = "warren-helper", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring a tunnel up from a wg-quick .conf file and run it in the foreground until
    /// SIGINT/SIGTERM, then remove everything it added.
    Up {
        /// The wg-quick configuration file (e.g. /etc/wireguard/wg0.conf).
        config: PathBuf,
        /// Interface name; defaults to the file name without `.conf` (wg0.conf → wg0).
        #[arg(long, short = 'i')]
        interface: Option<String>,
        /// Run the file's PreUp/PostUp/PreDown/PostDown commands (as root). Off by default.
        #[arg(long)]
        run_hooks: bool,
        /// Where the journal of system changes lives (default: $WARREN_STATE_DIR, else
        /// /var/lib/warren).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Block all traffic that does not go through the tunnel: on, off, or auto (on for
        /// full tunnels, as wireguard-windows does).
        #[arg(long, value_name = "MODE", default_value = "auto")]
        kill_switch: crate::platform::firewall::KillSwitchMode,
        /// With the kill switch on, still allow the local network (private ranges, link-local).
        #[arg(long)]
        allow_lan: bool,
    },
    /// Undo what tunnels that did not stop cleanly (crash, kill -9, power loss) left behind —
    /// addresses, routes, rules, sysctls, DNS, firewall — from their journals, and print what was
    /// restored. For boot time and after a crash; running tunnels are left alone.
    Recover {
        /// Only this interface's journal.
        #[arg(long, short = 'i')]
        interface: Option<String>,
        /// Where the journals live (default: $WARREN_STATE_DIR, else /var/lib/warren).
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Print a new private key (base64), like `wg genkey`.
    Genkey,
    /// Read a private key on stdin and print its public key, like `wg pubkey`.
    Pubkey,
    /// Print a new preshared key, like `wg genpsk`.
    Genpsk,
    /// Start a local demo: a Warren peer in a network namespace and a tunnel to it.
    Demo,
}

/// Parses arguments, runs the subcommand and maps its outcome to an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match cli.command {
        Command::Genkey => keys::genkey(),
        Command::Pubkey => keys::pubkey(),
        Command::Genpsk => keys::genpsk(),
        Command::Up {
            config,
            interface,
            run_hooks,
            state_dir,
            kill_switch,
            allow_lan,
        } => {
            let options = up::Options {
                interface,
                run_hooks,
                state_dir: state_dir.unwrap_or_else(crate::journal::state_dir),
                kill_switch,
                allow_lan,
            };
            runtime().and_then(|rt| rt.block_on(up::run(&config, options)))
        }
        Command::Recover {
            interface,
            state_dir,
        } => {
            let state_dir = state_dir.unwrap_or_else(crate::journal::state_dir);
            runtime().and_then(|rt| rt.block_on(recover::run(&state_dir, interface.as_deref())))
        }
        Command::Demo => runtime().and_then(|rt| rt.block_on(crate::demo::run())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warren-helper: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Human-readable logs on stderr, filtered by `RUST_LOG` (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
