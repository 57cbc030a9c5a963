//! `warren-helper logs [-n N] [-f]`: the daemon's newest log lines (from its memory; the files
//! under /var/log/warren keep more), and with `-f` every new line until ctrl-c or the daemon
//! stops. One line each: UTC time, level, module, message.

use super::client;
use std::io::Write as _;
use std::path::PathBuf;
use tokio::sync::broadcast::error::RecvError;
use warren_proto::ipc::{Event, LogLevel, LogLine, Request, Response};

/// `logs`' arguments.
#[derive(clap::Args)]
pub struct Args {
    /// How many of the newest lines to print.
    #[arg(short = 'n', long, default_value_t = 100)]
    lines: u32,
    /// Keep printing new lines as they are logged.
    #[arg(short = 'f', long)]
    follow: bool,
}

pub async fn run(args: Args, socket: PathBuf) -> anyhow::Result<()> {
    let daemon = client::connect(&socket).await?;
    let mut events = daemon.events();
    let request = Request::Logs {
        lines: args.lines,
        follow: args.follow,
    };
    let lines = match client::request(&daemon, request, "read the daemon's log").await? {
        Response::Logs { lines } => lines,
        other => return Err(client::unexpected(&other)),
    };
    let mut out = std::io::stdout().lock();
    for line in &lines {
        writeln!(out, "{}", format_line(line))?;
    }
    out.flush()?;
    drop(out);
    if !args.follow {
        return Ok(());
    }
    loop {
        match events.recv().await {
            Ok(Event::LogLine(line)) => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{}", format_line(&line))?;
                out.flush()?;
            }
            Ok(Event::HelperStopping) => {
                eprintln!("warren-helper: the daemon is stopping");
                return Ok(());
            }
            Ok(_) => {}
            Err(RecvError::Lagged(n)) => eprintln!("warren-helper: ({n} line(s) skipped)"),
            Err(RecvError::Closed) => {
                anyhow::bail!("the connection to the daemon closed")
            }
        }
    }
}

/// `2026-01-31T12:00:00.123Z  WARN warren_helper::daemon: message`.
fn format_line(line: &LogLine) -> String {
    let level = match line.level {
        LogLevel::Error => "ERROR",
        LogLevel::Warn => " WARN",
        LogLevel::Info => " INFO",
        LogLevel::Debug => "DEBUG",
        LogLevel::Trace => "TRACE",
    };
    format!(
        "{} {level} {}: {}",
        utc(line.unix_ms),
        line.target,
        line.message
    )
}

/// Milliseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn utc(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_utc_time_level_and_module() {
        assert_eq!(utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        let line = LogLine {
            unix_ms: 1_700_000_000_123,
            level: LogLevel::Warn,
            target: "warren_helper::daemon".into(),
            message: "hello".into(),
        };
        assert_eq!(
            format_line(&line),
            "2023-11-14T22:13:20.123Z  WARN warren_helper::daemon: hello"
        );
    }
}
