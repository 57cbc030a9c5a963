//! The service manager's notification protocol, sd_notify(3): what the daemon tells systemd
//! (`Type=notify` in `installer/linux/warren-helper.service`) about its life —
//! - `READY=1` once its socket is served and every autostart tunnel came up or failed
//!   (`daemon/mod.rs` decides when), so `systemctl start` returns when clients can connect;
//! - `WATCHDOG=1` every half `WATCHDOG_USEC` (`WatchdogSec=`) while the tunnel manager answers
//!   (`daemon/mod.rs`), so a hung daemon is killed and restarted (`Restart=always`, and the
//!   journal recovery of `ExecStartPre=`);
//! - `STOPPING=1` when it starts taking the tunnels down, `STATUS=` lines for `systemctl status`.
//!
//! The protocol: datagrams of `KEY=value` lines to the Unix socket named by `NOTIFY_SOCKET` — a
//! path, or with a leading `@` a Linux abstract socket. Without `NOTIFY_SOCKET` (a daemon started
//! by hand, by launchd or in the tests) everything here does nothing. The watchdog is on when
//! `WATCHDOG_USEC` is set and `WATCHDOG_PID`, if set, is this process.
//!
//! About forty lines over `std`'s `UnixDatagram` rather than a crate: the `sd-notify` crate does not
//! reach abstract sockets, which is what systemd in a container or a test harness may hand over.
//! Sending never blocks and never fails the daemon: a failure is logged once, as a warning.

use std::ffi::OsStr;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What the daemon tells the service manager; nothing when it was not started by one.
pub struct Notifier {
    socket: Option<imp::Socket>,
    /// A failed send was logged already.
    warned: AtomicBool,
}

impl Notifier {
    /// The notifier `NOTIFY_SOCKET` asks for; a disabled one when it is unset or empty, or (with a
    /// warning) unusable.
    pub fn from_env() -> Self {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(value) if !value.is_empty() => Self::to(&value).unwrap_or_else(|e| {
                tracing::warn!(
                    "cannot notify the service manager at NOTIFY_SOCKET={}: {e}",
                    value.to_string_lossy()
                );
                Self::disabled()
            }),
            _ => Self::disabled(),
        }
    }

    /// A notifier for the socket `address` (a path, or `@name` for an abstract socket).
    pub fn to(address: &OsStr) -> io::Result<Self> {
        Ok(Notifier {
            socket: Some(imp::Socket::new(address)?),
            warned: AtomicBool::new(false),
        })
    }

    /// One that tells nobody anything.
    pub fn disabled() -> Self {
        Notifier {
            socket: None,
            warned: AtomicBool::new(false),
        }
    }

    /// Whether anything is sent at all.
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// Start-up finished; `status` is shown by `systemctl status`.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}\n", one_line(status)));
    }

    /// Stopping has begun.
    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}\n", one_line(status)));
    }

    /// Still alive.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1\n");
    }

    /// Sends `message` (newline-separated `KEY=value` lines) in one datagram.
    fn send(&self, message: &str) {
        let Some(socket) = &self.socket else {
            return;
        };
        if let Err(e) = socket.send(message.as_bytes()) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!("failed to notify the service manager: {e}");
            }
        }
    }
}

/// A `STATUS=` value must be one line.
fn one_line(text: &str) -> String {
    text.replace('\n', " ")
}

/// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC` as sd_watchdog_enabled(3) advises, if
/// the watchdog is on for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_interval_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`watchdog_interval`] from the variables' values and this process's id: `None` when
/// `WATCHDOG_USEC` is unset, not a positive number, or `WATCHDOG_PID` names another process.
fn watchdog_interval_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(me) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2).max(Duration::from_millis(1)))
}

#[cfg(unix)]
mod imp {
    use std::ffi::OsStr;
    use std::io;
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::net::{SocketAddr, UnixDatagram};

    /// An unbound datagram socket and the service manager's address.
    pub struct Socket {
        socket: UnixDatagram,
        address: SocketAddr,
    }

    impl Socket {
        pub fn new(address: &OsStr) -> io::Result<Self> {
            let bytes = address.as_bytes();
            let address = match bytes.first() {
                Some(b'/') => SocketAddr::from_pathname(address)?,
                Some(b'@') => abstract_address(&bytes[1..])?,
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "neither an absolute path nor an abstract socket (@name)",
                    ))
                }
            };
            let socket = UnixDatagram::unbound()?;
            // Never stall the runtime on a service manager that does not read.
            socket.set_nonblocking(true)?;
            Ok(Socket { socket, address })
        }

        pub fn send(&self, message: &[u8]) -> io::Result<()> {
            let sent = self.socket.send_to_addr(message, &self.address)?;
            if sent == message.len() {
                Ok(())
            } else {
                Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "a partial datagram",
                ))
            }
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn abstract_address(name: &[u8]) -> io::Result<SocketAddr> {
        use std::os::linux::net::SocketAddrExt as _;
        SocketAddr::from_abstract_name(name)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn abstract_address(_name: &[u8]) -> io::Result<SocketAddr> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "abstract sockets exist on Linux only",
        ))
    }
}

#[cfg(not(unix))]
mod imp {
    use std::ffi::OsStr;
    use std::io;

    /// No service manager speaks this protocol here (Windows has its own service API).
    pub struct Socket;

    impl Socket {
        pub fn new(_address: &OsStr) -> io::Result<Self> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "sd_notify needs Unix sockets",
            ))
        }

        pub fn send(&self, _message: &[u8]) -> io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    fn receive(socket: &UnixDatagram) -> String {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn messages_reach_a_path_socket() {
        let path = std::env::temp_dir().join(format!("warren-notify-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let manager = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to(path.as_os_str()).unwrap();
        assert!(notifier.is_enabled());
        notifier.ready("serving /run/warren/helper.sock\nand more");
        assert_eq!(
            receive(&manager),
            "READY=1\nSTATUS=serving /run/warren/helper.sock and more\n"
        );
        notifier.watchdog();
        assert_eq!(receive(&manager), "WATCHDOG=1\n");
        notifier.stopping("taking the tunnels down");
        assert_eq!(
            receive(&manager),
            "STOPPING=1\nSTATUS=taking the tunnels down\n"
        );
        std::fs::remove_file(&path).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn messages_reach_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("warren-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let manager = UnixDatagram::bind_addr(&address).unwrap();
        let notifier = Notifier::to(OsStr::new(&format!("@{name}"))).unwrap();
        notifier.watchdog();
        assert_eq!(receive(&manager), "WATCHDOG=1\n");
    }

    #[test]
    fn a_relative_address_is_refused_and_a_gone_manager_is_no_failure() {
        assert!(Notifier::to(OsStr::new("run/notify")).is_err());
        assert!(Notifier::to(OsStr::new("")).is_err());
        let notifier = Notifier::to(OsStr::new("/nonexistent/warren/notify")).unwrap();
        notifier.ready("nobody listens");
        notifier.ready("still nobody");
        assert!(!Notifier::disabled().is_enabled());
        Notifier::disabled().watchdog();
    }

    #[test]
    fn the_watchdog_pings_at_half_its_timeout_for_this_process_only() {
        let me = 4242;
        assert_eq!(
            watchdog_interval_from(Some("30000000"), None, me),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some("4242"), me),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval_from(Some("30000000"), Some("1"), me),
            None
        );
        assert_eq!(watchdog_interval_from(None, Some("4242"), me), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, me), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, me), None);
    }
}
