//! A stand-in StatusNotifier watcher with a host registered: what a desktop with a tray (KDE, a
//! panel, GNOME's AppIndicator extension) offers on the session bus. `tests/gui/tray.sh` runs it
//! in a private D-Bus session to check that, where a tray exists, the app creates its icon and
//! keeps running in the tray when its window is closed.
//!
//! It owns `org.kde.StatusNotifierWatcher` at `/StatusNotifierWatcher`, answers
//! `IsStatusNotifierHostRegistered = true`, and prints `ready` once it owns the name, then
//! `registered SERVICE` for every `RegisterStatusNotifierItem` call (the app's icon arriving),
//! flushed at once. It shows nothing: it only records.
//!
//! ```text
//! dbus-run-session -- sh -c 'cargo run -p warren-app --example sni_watcher & sleep 1; cargo run -p warren-app'
//! ```

#[cfg(target_os = "linux")]
fn main() {
    if let Err(e) = watcher::serve() {
        eprintln!("sni_watcher: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("sni_watcher: Linux only (StatusNotifierItem is the Linux tray)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod watcher {
    use std::io::Write as _;

    const NAME: &str = "org.kde.StatusNotifierWatcher";
    const PATH: &str = "/StatusNotifierWatcher";

    fn say(line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }

    #[derive(Default)]
    struct Watcher {
        items: Vec<String>,
    }

    #[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
    impl Watcher {
        fn register_status_notifier_item(&mut self, service: String) {
            say(&format!("registered {service}"));
            self.items.push(service);
        }

        fn register_status_notifier_host(&self, _service: String) {}

        #[zbus(property)]
        fn registered_status_notifier_items(&self) -> Vec<String> {
            self.items.clone()
        }

        #[zbus(property)]
        fn is_status_notifier_host_registered(&self) -> bool {
            true
        }

        #[zbus(property)]
        fn protocol_version(&self) -> i32 {
            0
        }
    }

    pub fn serve() -> zbus::Result<()> {
        let _connection = zbus::blocking::connection::Builder::session()?
            .serve_at(PATH, Watcher::default())?
            .name(NAME)?
            .build()?;
        say("ready");
        loop {
            std::thread::park();
        }
    }
}
