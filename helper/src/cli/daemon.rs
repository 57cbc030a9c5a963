//! `warren-helper daemon`: runs [`crate::daemon::run`] in the foreground until SIGINT/SIGTERM
//! (systemd's `ExecStart`, launchd's `ProgramArguments`), with its log set up: stderr, the
//! in-memory ring clients read with `logs`, and daily files under `--log-dir`.
//!
//! Every path can be overridden, so tests run a daemon that touches nothing of the host's:
//! `--socket` (global), `--state-dir`, `--tunnels-dir`, `--log-dir` (or `--no-log-files`).

use std::path::PathBuf;

/// `daemon`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The group whose members may use the daemon.
    #[arg(long, value_name = "NAME", default_value = "warren")]
    group: String,
    /// Where the journals of system changes live [default: $WARREN_STATE_DIR, else
    /// /var/lib/warren].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The system tunnels' directory [default: /etc/warren/tunnels].
    #[arg(long, value_name = "DIR")]
    tunnels_dir: Option<PathBuf>,
    /// Where the daily log files go [default: /var/log/warren].
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
    /// Log to stderr (and the in-memory ring) only.
    #[arg(long, conflicts_with = "log_dir")]
    no_log_files: bool,
    /// How many daily log files to keep.
    #[arg(long, value_name = "N", default_value_t = crate::logging::DEFAULT_KEEP_FILES)]
    log_keep: usize,
    /// Run system tunnels' PreUp/PostUp/PreDown/PostDown commands (as root). Never for user
    /// tunnels.
    #[arg(long)]
    run_hooks: bool,
    /// Run under the Windows Service Control Manager (the command line the service is installed
    /// with).
    #[cfg(windows)]
    #[arg(long)]
    service: bool,
}

pub fn run(args: Args, socket: PathBuf) -> anyhow::Result<()> {
    let log_dir =
        (!args.no_log_files).then(|| args.log_dir.unwrap_or_else(crate::sys::paths::log_dir));
    crate::logging::init(crate::logging::Mode::Daemon {
        dir: log_dir,
        keep: args.log_keep,
    });
    let defaults = crate::daemon::Options::default();
    let options = crate::daemon::Options {
        socket,
        group: args.group,
        state_dir: args.state_dir.unwrap_or(defaults.state_dir),
        tunnels_dir: args.tunnels_dir.unwrap_or(defaults.tunnels_dir),
        run_hooks: args.run_hooks,
    };
    #[cfg(windows)]
    if args.service {
        return crate::sys::windows::service::run(options);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        // Installed before anything changes, so a signal during start-up is an orderly stop.
        let shutdown = crate::sys::shutdown::requested()?;
        crate::daemon::run(options, shutdown).await
    })
}
