//! Where the helper's log goes: `tracing` events, filtered by `RUST_LOG`, to
//! - stderr, for humans (colours only on a terminal) — and for systemd's journal, which captures a
//!   service's stderr: when stderr *is* the journal's stream (`JOURNAL_STREAM` names its device
//!   and inode, see systemd.exec(5)), each line starts with its syslog priority instead of a time
//!   stamp (`<3>ERROR ...`, sd-daemon(3)), so `journalctl -p err -u warren-helper` shows the errors;
//! - for the daemon, rotating files `<log dir>/warren-helper.<date>.log` (daily, the newest
//!   [`DEFAULT_KEEP_FILES`] kept; by default in `crate::sys::paths::log_dir`);
//! - a ring of the newest [`RING_LINES`] lines in memory, with a broadcast of each new line, which
//!   the daemon serves to clients (`warren-helper logs [-f]`, the GUI's log view).
//!
//! Secrets: nothing the helper logs holds key material — configurations are never logged (their
//! `Debug` redacts keys anyway), and errors name files and lines, not contents. The daemon's
//! end-to-end test greps the log files and the in-memory ring for the keys it used.
//!
//! What it must not do: fail the program because a log file cannot be opened (the daemon then
//! logs to stderr only, and says so).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};
use warren_proto::ipc::{LogLevel, LogLine};

/// Lines the in-memory ring keeps.
pub const RING_LINES: usize = 2000;

/// Daily log files kept by default.
pub const DEFAULT_KEEP_FILES: usize = 14;

/// Lines a slow follower may fall behind before it misses some.
const FOLLOW_BUFFER: usize = 1024;

/// The log file name's prefix and suffix: `warren-helper.2026-01-31.log`.
const FILE_PREFIX: &str = "warren-helper";
const FILE_SUFFIX: &str = "log";

/// How a subcommand wants its log.
pub enum Mode {
    /// Stderr only, at `default` level unless `RUST_LOG` says otherwise.
    Stderr {
        /// `info` for commands that change the system, `warn` for client commands.
        default: &'static str,
    },
    /// The daemon: stderr, the ring, and rotating files in `dir` (when given).
    Daemon {
        /// The log directory; `None` for no files.
        dir: Option<PathBuf>,
        /// How many daily files to keep.
        keep: usize,
    },
}

/// Installs the global subscriber. Errors (a log directory that cannot be created) are reported on
/// stderr and the daemon goes on without files. Calling it twice keeps the first.
pub fn init(mode: Mode) {
    let default = match &mode {
        Mode::Stderr { default } => *default,
        Mode::Daemon { .. } => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let journal = stderr_is_journal();
    let stderr = (!journal).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    let stderr_journal = journal.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .event_format(JournalFormat)
    });
    match mode {
        Mode::Stderr { .. } => {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(stderr)
                .with(stderr_journal)
                .try_init();
        }
        Mode::Daemon { dir, keep } => {
            let mut file_error = None;
            let files = dir.and_then(|dir| match file_appender(&dir, keep) {
                Ok(appender) => Some(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(appender),
                ),
                Err(e) => {
                    file_error = Some(format!("{e:#}"));
                    None
                }
            });
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(stderr)
                .with(stderr_journal)
                .with(files)
                .with(RingLayer)
                .try_init();
            if let Some(error) = file_error {
                tracing::warn!("logging to stderr only: {error}");
            }
        }
    }
}

/// Whether stderr is connected to systemd's journal: `JOURNAL_STREAM` is `<device>:<inode>` of
/// the stream systemd gave the service, and stderr is that very file (not, say, a redirect a
/// child of the service made).
#[cfg(unix)]
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(metadata) = std::fs::File::from(stderr).metadata() else {
        return false;
    };
    journal_stream_is(&stream.to_string_lossy(), metadata.dev(), metadata.ino())
}

#[cfg(not(unix))]
fn stderr_is_journal() -> bool {
    false
}

/// Whether `JOURNAL_STREAM`'s value `device:inode` names the file with `dev` and `ino`.
#[cfg(any(unix, test))]
fn journal_stream_is(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
}

/// The syslog priority of a level, as journald reads it from a `<N>` prefix.
fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,                // err
        Level::WARN => 4,                 // warning
        Level::INFO => 6,                 // info
        Level::DEBUG | Level::TRACE => 7, // debug
    }
}

/// Lines for the journal's stream: `<priority>LEVEL target: message fields`, no time stamp (the
/// journal has its own) and no colour; a message's line breaks become ` | `, because journald
/// would log each further line as a message of its own, at the default priority.
struct JournalFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let metadata = event.metadata();
        let mut fields = String::new();
        ctx.field_format().format_fields(
            tracing_subscriber::fmt::format::Writer::new(&mut fields),
            event,
        )?;
        writeln!(
            writer,
            "<{}>{} {}: {}",
            priority(*metadata.level()),
            metadata.level(),
            metadata.target(),
            fields.trim_end().replace('\n', " | ")
        )
    }
}

/// A daily rotating appender in `dir` (created 0700 if missing: only root reads the files;
/// others read the log through the daemon, `warren-helper logs`), keeping `keep` files.
fn file_appender(
    dir: &Path,
    keep: usize,
) -> anyhow::Result<tracing_appender::rolling::RollingFileAppender> {
    use anyhow::Context as _;
    create_log_dir(dir)
        .with_context(|| format!("failed to create the log directory {}", dir.display()))?;
    tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(FILE_PREFIX)
        .filename_suffix(FILE_SUFFIX)
        .max_log_files(keep.max(1))
        .build(dir)
        .with_context(|| format!("failed to open a log file in {}", dir.display()))
}

#[cfg(unix)]
fn create_log_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_log_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// The newest log lines and a broadcast of each new one.
pub struct LogRing {
    lines: Mutex<VecDeque<LogLine>>,
    follow: broadcast::Sender<LogLine>,
}

/// The process's ring (empty unless [`Mode::Daemon`] installed the layer that fills it).
pub fn ring() -> &'static LogRing {
    static RING: OnceLock<LogRing> = OnceLock::new();
    RING.get_or_init(|| LogRing {
        lines: Mutex::new(VecDeque::with_capacity(RING_LINES)),
        follow: broadcast::channel(FOLLOW_BUFFER).0,
    })
}

impl LogRing {
    /// The newest `n` lines and a receiver of every later one, atomically (no line falls
    /// between them).
    pub fn tail_and_follow(&self, n: usize) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        let receiver = self.follow.subscribe();
        let skip = lines.len().saturating_sub(n);
        (lines.iter().skip(skip).cloned().collect(), receiver)
    }

    fn push(&self, line: LogLine) {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == RING_LINES {
            lines.pop_front();
        }
        lines.push_back(line.clone());
        // Sent under the lock, so `tail_and_follow` sees each line exactly once.
        let _ = self.follow.send(line);
    }
}

/// Copies each event into [`ring`].
struct RingLayer;

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = MessageVisitor::default();
        event.record(&mut visitor);
        let metadata = event.metadata();
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        ring().push(LogLine {
            unix_ms,
            level: level(*metadata.level()),
            target: metadata.target().to_owned(),
            message: visitor.finish(),
        });
    }
}

fn level(level: Level) -> LogLevel {
    match level {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        Level::TRACE => LogLevel::Trace,
    }
}

/// The event's message, then its other fields as `name=value`.
#[derive(Default)]
struct MessageVisitor {
    message: String,
    fields: String,
}

impl MessageVisitor {
    fn finish(mut self) -> String {
        if !self.fields.is_empty() {
            if !self.message.is_empty() {
                self.message.push(' ');
            }
            self.message.push_str(&self.fields);
        }
        self.message
    }
}

impl Visit for MessageVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }
}

/// An error and its causes as one line for people, `: `-separated, without repeating a cause
/// whose text the line already ends with (an error that prints its source). The one way the
/// helper words an error: the CLI's stderr, IPC messages, recovery reports.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_lines_and_follows() {
        let ring = LogRing {
            lines: Mutex::new(VecDeque::new()),
            follow: broadcast::channel(4).0,
        };
        let line = |n: u64| LogLine {
            unix_ms: n,
            level: LogLevel::Info,
            target: "t".into(),
            message: format!("line {n}"),
        };
        for n in 0..(RING_LINES as u64 + 5) {
            ring.push(line(n));
        }
        let tail = ring.tail_and_follow(3).0;
        assert_eq!(
            tail.iter().map(|l| l.unix_ms).collect::<Vec<_>>(),
            vec![
                RING_LINES as u64 + 2,
                RING_LINES as u64 + 3,
                RING_LINES as u64 + 4
            ]
        );
        assert_eq!(ring.tail_and_follow(usize::MAX).0.len(), RING_LINES);
        let (old, mut new) = ring.tail_and_follow(1);
        assert_eq!(old.len(), 1);
        ring.push(line(7));
        assert_eq!(new.try_recv().unwrap().unix_ms, 7);
    }

    /// A writer into a shared buffer, for a subscriber under test.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn journal_lines_carry_their_priority() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .event_format(JournalFormat),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!("failed to bring up 'office'");
            tracing::warn!(uid = 7, "refused");
            tracing::info!("two\nlines");
            tracing::debug!("detail");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let target = module_path!();
        assert_eq!(
            text,
            format!(
                "<3>ERROR {target}: failed to bring up 'office'\n\
                 <4>WARN {target}: refused uid=7\n\
                 <6>INFO {target}: two | lines\n\
                 <7>DEBUG {target}: detail\n"
            )
        );
    }

    #[test]
    fn the_journal_stream_is_recognised_by_device_and_inode() {
        assert!(journal_stream_is("8:12345", 8, 12345));
        assert!(journal_stream_is("8:12345\n", 8, 12345));
        assert!(!journal_stream_is("8:12346", 8, 12345));
        assert!(!journal_stream_is("9:12345", 8, 12345));
        assert!(!journal_stream_is("812345", 8, 12345));
        assert!(!journal_stream_is("", 8, 12345));
    }

    #[test]
    fn events_become_lines_with_their_fields() {
        let subscriber = tracing_subscriber::registry().with(RingLayer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(peer = 3, "a \"quoted\" message");
        });
        let line = ring()
            .tail_and_follow(usize::MAX)
            .0
            .into_iter()
            .rev()
            .find(|l| l.message.starts_with("a \"quoted\""))
            .unwrap();
        assert_eq!(line.level, LogLevel::Warn);
        assert_eq!(line.message, "a \"quoted\" message peer=3");
        assert!(line.target.contains("logging"));
    }
}
