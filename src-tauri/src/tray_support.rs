//! Whether this desktop session can show a tray icon at all: decided once at start, before the tray is
//! created ([`detect`]), so the app never panics, and never hides its only window, for want of a
//! tray.
//!
//! Why this is needed on Linux: the tray is a StatusNotifierItem made by libayatana-appindicator3,
//! which Tauri's tray (tray-icon → the `libappindicator` crate) `dlopen`s on first use — and that
//! crate *panics* when neither `libayatana-appindicator3.so.1` nor `libappindicator3.so.1` loads.
//! And even with the library, an icon only appears where a StatusNotifier host runs (KDE, XFCE,
//! most panels; GNOME only with the AppIndicator extension): elsewhere it is registered with
//! nobody, and a window hidden "to the tray" could never be opened again.
//!
//! So two probes feed one pure decision, [`decide`]:
//! - [`LibraryProbe`]: can the appindicator library be loaded — the same names, in the same order,
//!   as the `libappindicator` crate tries ([`APPINDICATOR_LIBRARIES`]);
//! - [`HostProbe`]: does `org.kde.StatusNotifierWatcher` have an owner on the session bus, and does
//!   its `IsStatusNotifierHostRegistered` say true. No session bus counts as no host. The bus is
//!   asked from its own thread with a deadline, so a hung bus delays the start by at most
//!   [`HOST_PROBE_TIMEOUT`].
//!
//! On macOS and Windows the OS always has a tray (menu bar extras, the notification area): no
//! probes, a tray.
//!
//! What the app does without a tray (`crate::app`): it shows its window even when started at
//! login, says why in the log and in the window (command `tray_status`,
//! [`crate::model::TrayStatus`]), and closing the window quits.

use std::fmt;
use std::time::Duration;

use crate::model::TrayStatus;

/// The appindicator libraries the `libappindicator` crate `dlopen`s, in its order (libayatana
/// first; Debian's package `libayatana-appindicator3-1`).
pub const APPINDICATOR_LIBRARIES: [&str; 2] =
    ["libayatana-appindicator3.so.1", "libappindicator3.so.1"];

/// The Debian package that provides the first of [`APPINDICATOR_LIBRARIES`].
pub const APPINDICATOR_PACKAGE: &str = "libayatana-appindicator3-1";

/// The well-known bus name (and interface) of the StatusNotifier watcher.
pub const WATCHER_NAME: &str = "org.kde.StatusNotifierWatcher";

/// The watcher's object path.
pub const WATCHER_PATH: &str = "/StatusNotifierWatcher";

/// How long the start waits for the session bus to answer.
pub const HOST_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the appindicator library could be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibraryProbe {
    /// This one (the first of the names that loaded).
    Loaded(String),
    /// None loaded: the loader's error for each name, in order.
    Missing(Vec<String>),
}

/// Whether a StatusNotifier host is there to show the icon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostProbe {
    /// The watcher says a host is registered.
    Registered,
    /// The watcher runs but says no host is registered.
    NoHostRegistered,
    /// Nothing owns [`WATCHER_NAME`] on the session bus.
    NoWatcher,
    /// There is no session bus to ask (no address, or nothing listens there).
    NoSessionBus(String),
    /// The bus answered with an error, or not in time.
    Failed(String),
}

/// Why there is no tray icon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoTray {
    /// None of [`APPINDICATOR_LIBRARIES`] loads; the loader's errors, in order.
    Library(Vec<String>),
    /// No D-Bus session bus.
    NoSessionBus(String),
    /// No StatusNotifier watcher on the session bus.
    NoWatcher,
    /// A watcher, but no host registered with it.
    NoHost,
    /// Asking the session bus failed.
    HostCheckFailed(String),
    /// The probes passed, but creating the tray failed.
    CreateFailed(String),
}

impl NoTray {
    /// One short sentence for the window (the details are in the log line, [`fmt::Display`]).
    pub fn summary(&self) -> String {
        match self {
            NoTray::Library(_) => format!(
                "The tray library ({}) is not installed.",
                APPINDICATOR_LIBRARIES[0]
            ),
            NoTray::NoSessionBus(_) => {
                "There is no desktop session bus (D-Bus), so no tray to show an icon in.".to_owned()
            }
            NoTray::NoWatcher | NoTray::NoHost => {
                "This desktop shows no tray icons (no StatusNotifier host is running).".to_owned()
            }
            NoTray::HostCheckFailed(_) => {
                "Warren could not find out whether this desktop shows tray icons.".to_owned()
            }
            NoTray::CreateFailed(_) => "The tray icon could not be created.".to_owned(),
        }
    }

    /// What the window is told.
    pub fn status(&self) -> TrayStatus {
        TrayStatus::Unavailable {
            reason: self.summary(),
        }
    }
}

impl fmt::Display for NoTray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoTray::Library(errors) => write!(
                f,
                "none of {} could be loaded ({}); install the package {APPINDICATOR_PACKAGE}",
                APPINDICATOR_LIBRARIES.join(", "),
                errors.join("; ")
            ),
            NoTray::NoSessionBus(e) => write!(f, "no D-Bus session bus ({e})"),
            NoTray::NoWatcher => write!(
                f,
                "nothing owns {WATCHER_NAME} on the session bus: this desktop runs no \
                 StatusNotifier host (on GNOME, the AppIndicator extension provides one)"
            ),
            NoTray::NoHost => write!(
                f,
                "{WATCHER_NAME} runs but has no StatusNotifier host registered \
                 (IsStatusNotifierHostRegistered is false)"
            ),
            NoTray::HostCheckFailed(e) => {
                write!(
                    f,
                    "failed to ask the session bus for a StatusNotifier host: {e}"
                )
            }
            NoTray::CreateFailed(e) => write!(f, "failed to create the tray icon: {e}"),
        }
    }
}

/// Whether there can be a tray, given what the probes found. The library comes first: without
/// it, trying to create a tray panics, whatever the bus says; and installing it is the one fix
/// a user can make.
pub fn decide(library: &LibraryProbe, host: &HostProbe) -> Result<(), NoTray> {
    if let LibraryProbe::Missing(errors) = library {
        return Err(NoTray::Library(errors.clone()));
    }
    match host {
        HostProbe::Registered => Ok(()),
        HostProbe::NoHostRegistered => Err(NoTray::NoHost),
        HostProbe::NoWatcher => Err(NoTray::NoWatcher),
        HostProbe::NoSessionBus(e) => Err(NoTray::NoSessionBus(e.clone())),
        HostProbe::Failed(e) => Err(NoTray::HostCheckFailed(e.clone())),
    }
}

/// Probes this desktop session and decides: `Ok` if a tray can be created.
pub fn detect() -> Result<(), NoTray> {
    imp::detect()
}

#[cfg(target_os = "linux")]
mod imp {
    //! The Linux probes: `dlopen` and the session bus.
    use super::*;

    pub(super) fn detect() -> Result<(), NoTray> {
        let library = probe_library(&APPINDICATOR_LIBRARIES);
        // Without the library the bus is not worth asking.
        if let LibraryProbe::Missing(_) = library {
            return decide(&library, &HostProbe::NoWatcher);
        }
        decide(&library, &probe_host())
    }

    /// Loads the first of `names` that loads, as the `libappindicator` crate does (libloading,
    /// `RTLD_LAZY | RTLD_LOCAL`), and keeps it loaded: the tray loads it again at once, and
    /// unloading a GTK library that may have registered types is never safe.
    pub(super) fn probe_library(names: &[&str]) -> LibraryProbe {
        let mut errors = Vec::new();
        for name in names {
            // SAFETY: loading runs the library's ELF initialisers. These are the libraries, loaded
            // the same way, that the tray itself loads a moment later; nothing in them is called.
            match unsafe { libloading::Library::new(name) } {
                Ok(library) => {
                    std::mem::forget(library);
                    return LibraryProbe::Loaded((*name).to_owned());
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        LibraryProbe::Missing(errors)
    }

    /// Asks the session bus, from a thread of its own, waiting at most [`HOST_PROBE_TIMEOUT`].
    fn probe_host() -> HostProbe {
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("tray-probe".into())
            .spawn(move || {
                let probe = match zbus::blocking::connection::Builder::session() {
                    Ok(builder) => ask_bus(builder),
                    Err(e) => HostProbe::NoSessionBus(e.to_string()),
                };
                let _ = tx.send(probe);
            });
        if let Err(e) = spawned {
            return HostProbe::Failed(format!("failed to start a thread: {e}"));
        }
        rx.recv_timeout(HOST_PROBE_TIMEOUT).unwrap_or_else(|_| {
            HostProbe::Failed(format!(
                "the session bus did not answer within {} s",
                HOST_PROBE_TIMEOUT.as_secs()
            ))
        })
    }

    /// Connects with `builder` and asks whether a host is registered. `NameHasOwner` first, so a
    /// watcher that D-Bus could activate is not started just to be asked.
    pub(super) fn ask_bus(builder: zbus::blocking::connection::Builder<'_>) -> HostProbe {
        let connection = match builder.method_timeout(HOST_PROBE_TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => return HostProbe::NoSessionBus(e.to_string()),
        };
        let owned = connection
            .call_method(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                Some("org.freedesktop.DBus"),
                "NameHasOwner",
                &(WATCHER_NAME,),
            )
            .and_then(|reply| reply.body().deserialize::<bool>());
        match owned {
            Ok(true) => {}
            Ok(false) => return HostProbe::NoWatcher,
            Err(e) => return HostProbe::Failed(format!("NameHasOwner({WATCHER_NAME}): {e}")),
        }
        let registered = connection
            .call_method(
                Some(WATCHER_NAME),
                WATCHER_PATH,
                Some("org.freedesktop.DBus.Properties"),
                "Get",
                &(WATCHER_NAME, "IsStatusNotifierHostRegistered"),
            )
            .and_then(|reply| reply.body().deserialize::<zbus::zvariant::OwnedValue>())
            .and_then(|value| bool::try_from(value).map_err(zbus::Error::from));
        match registered {
            Ok(true) => HostProbe::Registered,
            Ok(false) => HostProbe::NoHostRegistered,
            Err(e) => HostProbe::Failed(format!(
                "{WATCHER_NAME}.IsStatusNotifierHostRegistered: {e}"
            )),
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    //! macOS and Windows: the OS always has a tray.
    use super::NoTray;

    pub(super) fn detect() -> Result<(), NoTray> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded() -> LibraryProbe {
        LibraryProbe::Loaded(APPINDICATOR_LIBRARIES[0].into())
    }

    fn missing() -> LibraryProbe {
        LibraryProbe::Missing(vec![
            "libayatana-appindicator3.so.1: cannot open shared object file".into(),
            "libappindicator3.so.1: cannot open shared object file".into(),
        ])
    }

    #[test]
    fn a_tray_needs_the_library_and_a_registered_host() {
        assert_eq!(decide(&loaded(), &HostProbe::Registered), Ok(()));
        let cases = [
            (HostProbe::NoHostRegistered, NoTray::NoHost),
            (HostProbe::NoWatcher, NoTray::NoWatcher),
            (
                HostProbe::NoSessionBus("no address".into()),
                NoTray::NoSessionBus("no address".into()),
            ),
            (
                HostProbe::Failed("timed out".into()),
                NoTray::HostCheckFailed("timed out".into()),
            ),
        ];
        for (host, expected) in cases {
            assert_eq!(decide(&loaded(), &host), Err(expected), "{host:?}");
        }
    }

    #[test]
    fn a_missing_library_is_the_reason_whatever_the_bus_says() {
        for host in [
            HostProbe::Registered,
            HostProbe::NoWatcher,
            HostProbe::NoSessionBus("x".into()),
        ] {
            let Err(NoTray::Library(errors)) = decide(&missing(), &host) else {
                panic!("{host:?}: expected the library as the reason");
            };
            assert_eq!(errors.len(), 2);
        }
    }

    #[test]
    fn the_reasons_say_what_is_missing_and_what_to_do() {
        let library = decide(&missing(), &HostProbe::Registered).unwrap_err();
        assert_eq!(
            library.summary(),
            "The tray library (libayatana-appindicator3.so.1) is not installed."
        );
        let line = library.to_string();
        assert!(
            line.contains("install the package libayatana-appindicator3-1"),
            "{line}"
        );
        assert!(
            line.contains("libappindicator3.so.1: cannot open"),
            "{line}"
        );
        assert_eq!(
            NoTray::NoWatcher.status(),
            TrayStatus::Unavailable {
                reason: "This desktop shows no tray icons (no StatusNotifier host is running)."
                    .into()
            }
        );
        assert!(NoTray::NoHost
            .to_string()
            .contains("IsStatusNotifierHostRegistered is false"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_library_probe_takes_the_first_name_that_loads_and_keeps_every_error() {
        let probe = imp::probe_library(&["libwarren-no-such-library.so.1", "libc.so.6"]);
        assert_eq!(probe, LibraryProbe::Loaded("libc.so.6".into()));
        let LibraryProbe::Missing(errors) =
            imp::probe_library(&["libwarren-none-a.so.1", "libwarren-none-b.so.1"])
        else {
            panic!("nothing by those names can load");
        };
        assert_eq!(errors.len(), 2);
        assert!(errors[0].contains("libwarren-none-a.so.1"), "{errors:?}");
        assert!(errors[1].contains("libwarren-none-b.so.1"), "{errors:?}");
    }

    /// A private `dbus-daemon` for one test, stopped on drop.
    #[cfg(target_os = "linux")]
    struct PrivateBus {
        daemon: std::process::Child,
        address: String,
    }

    #[cfg(target_os = "linux")]
    impl PrivateBus {
        /// `None` (said loudly; a failure with CI=true) where there is no `dbus-daemon`.
        fn start() -> Option<Self> {
            use std::io::BufRead as _;
            let spawned = std::process::Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--print-address=1"])
                .stdout(std::process::Stdio::piped())
                .spawn();
            let mut daemon = match spawned {
                Ok(d) => d,
                Err(e) => {
                    assert!(
                        std::env::var("CI").as_deref() != Ok("true"),
                        "CI=true: this test needs dbus-daemon (package dbus): {e}"
                    );
                    eprintln!("##### NOT RUN: dbus-daemon cannot start ({e}; package dbus)");
                    return None;
                }
            };
            let mut address = String::new();
            let stdout = daemon.stdout.take().expect("piped");
            std::io::BufReader::new(stdout)
                .read_line(&mut address)
                .expect("dbus-daemon prints its address");
            Some(Self {
                daemon,
                address: address.trim().to_owned(),
            })
        }

        fn builder(&self) -> zbus::blocking::connection::Builder<'_> {
            zbus::blocking::connection::Builder::address(self.address.as_str())
                .expect("dbus-daemon's address parses")
        }
    }

    #[cfg(target_os = "linux")]
    impl Drop for PrivateBus {
        fn drop(&mut self) {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
    }

    /// What a desktop's StatusNotifier watcher says about hosts.
    #[cfg(target_os = "linux")]
    struct FakeWatcher {
        registered: bool,
    }

    #[cfg(target_os = "linux")]
    #[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
    impl FakeWatcher {
        #[zbus(property)]
        fn is_status_notifier_host_registered(&self) -> bool {
            self.registered
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_host_probe_asks_the_watcher_on_the_session_bus() {
        let Some(bus) = PrivateBus::start() else {
            return;
        };
        assert_eq!(imp::ask_bus(bus.builder()), HostProbe::NoWatcher);

        let watcher = bus
            .builder()
            .serve_at(WATCHER_PATH, FakeWatcher { registered: false })
            .and_then(|b| b.name(WATCHER_NAME))
            .and_then(|b| b.build())
            .expect("the fake watcher takes its name");
        assert_eq!(imp::ask_bus(bus.builder()), HostProbe::NoHostRegistered);

        watcher
            .object_server()
            .interface::<_, FakeWatcher>(WATCHER_PATH)
            .expect("served")
            .get_mut()
            .registered = true;
        assert_eq!(imp::ask_bus(bus.builder()), HostProbe::Registered);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn no_session_bus_means_no_host() {
        let dir = std::env::temp_dir().join(format!("warren-no-bus-{}", std::process::id()));
        let address = format!("unix:path={}/bus", dir.display());
        let builder = zbus::blocking::connection::Builder::address(address.as_str())
            .expect("a well-formed address");
        let probe = imp::ask_bus(builder);
        assert!(matches!(probe, HostProbe::NoSessionBus(_)), "{probe:?}");
    }
}
