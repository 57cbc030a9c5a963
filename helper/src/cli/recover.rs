//! `warren-helper recover [--interface NAME]`: undoes the journals that tunnels which did not stop
//! cleanly left in the state directory (see [`crate::journal`]) and prints, on stdout, what it
//! restored — one line per interface, then one per change undone. Meant for boot time (a systemd
//! unit before the daemon) and for an administrator after a crash; `up` does the same for its own
//! interface before it starts.
//!
//! Journals held by a running helper, and journals written in another network namespace, are left
//! alone and said so; that is not a failure. It fails (exit 1) when a journal cannot be read or a
//! change cannot be undone; such a journal is kept for the next attempt.

use crate::journal;
use anyhow::{bail, Context};
use std::io::Write;
use std::path::{Path, PathBuf};

/// `recover`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Only this interface's journal.
    #[arg(long, short = 'i')]
    interface: Option<String>,
    /// Where the journals live [default: $WARREN_STATE_DIR, else /var/lib/warren].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let state_dir = args.state_dir.unwrap_or_else(crate::sys::paths::state_dir);
    recover(&state_dir, args.interface.as_deref()).await
}

async fn recover(state_dir: &Path, interface: Option<&str>) -> anyhow::Result<()> {
    let reports = journal::recover(state_dir, interface).await?;
    let mut out = std::io::stdout().lock();
    let mut failures = 0;
    if reports.is_empty() {
        let what = match interface {
            Some(ifname) => format!("no journal of {ifname}"),
            None => "no journals".to_owned(),
        };
        writeln!(out, "nothing to recover: {what} in {}", state_dir.display())?;
    }
    for report in &reports {
        failures += usize::from(report.is_failure());
        writeln!(out, "{report}")?;
        for line in report.details() {
            writeln!(out, "  {line}")?;
        }
    }
    out.flush().context("failed to write to stdout")?;
    if failures > 0 {
        bail!(
            "{failures} journal(s) in {} could not be fully recovered (see above)",
            state_dir.display()
        );
    }
    Ok(())
}
