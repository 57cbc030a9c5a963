//! The Tauri application: plugins, window behaviour, and the task that forwards the
//! controller's [`Update`]s to the window (events `snapshot` and `log`), the tray and the
//! notifier.
//!
//! Behaviour wired here:
//! - single instance: starting the app again shows the running one's window;
//! - closing the window hides it; the app lives on in the tray until "Quit";
//! - started at login (`--autostart`), it stays in the tray without opening the window;
//! - where there can be no tray ([`crate::tray_support`] decides, before creating it), the app
//!   says why (a log line; the window asks with the command `tray_status`), shows its window
//!   also when started at login, and closing the window quits;
//! - the command line ([`crate::launch`]) — of the first launch, or of a second one handed over
//!   by the single-instance plugin — may offer the local demo and import `.conf` files (the
//!   window shows the outcome, event `imported`);
//! - notifications on connect, disconnect, failure, and losing or regaining the helper.

use std::path::Path;
use std::sync::Arc;

use tauri::{AppHandle, Emitter, Manager, Runtime, WindowEvent};
use tauri_plugin_autostart::{MacosLauncher, ManagerExt as _};
use tauri_plugin_notification::NotificationExt as _;
use tokio::sync::broadcast::error::RecvError;

use crate::controller::{Controller, ControllerConfig, SocketConnector, Update};
use crate::launch::LaunchArgs;
use crate::model::{HelperStatus, ImportOutcome, Snapshot, TrayStatus};
use crate::notify::{self, Notice};
use crate::store::secrets::KeyringStore;
use crate::tray::{self, Tray};
use crate::tray_support;

pub use crate::launch::AUTOSTART_ARG;

/// The main window's label (see `tauri.conf.json`).
pub const MAIN_WINDOW: &str = "main";

/// Event carrying a [`Snapshot`] to the window.
pub const SNAPSHOT_EVENT: &str = "snapshot";

/// Event carrying one helper log line to the window.
pub const LOG_EVENT: &str = "log";

/// Event carrying the [`ImportOutcome`]s of files given on the command line.
pub const IMPORTED_EVENT: &str = "imported";

/// Shows, unminimises and focuses the main window.
pub fn show_main_window<R: Runtime>(app: &AppHandle<R>) {
    if let Some(window) = app.get_webview_window(MAIN_WINDOW) {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
    }
}

fn show_notice<R: Runtime>(app: &AppHandle<R>, notice: &Notice) {
    if let Err(e) = app
        .notification()
        .builder()
        .title(&notice.title)
        .body(&notice.body)
        .show()
    {
        tracing::debug!("failed to show a notification: {e}");
    }
}

/// Forwards the controller's updates until the app ends.
async fn forward<R: Runtime>(app: AppHandle<R>, controller: Controller) {
    let mut updates = controller.subscribe();
    let mut helper = HelperStatus::Connecting;
    let mut on_snapshot = |app: &AppHandle<R>, snapshot: &Snapshot| {
        if let Err(e) = app.emit(SNAPSHOT_EVENT, snapshot) {
            tracing::debug!("failed to send a snapshot to the window: {e}");
        }
        if let Some(tray) = app.try_state::<Tray>() {
            tray.show(app, snapshot);
        }
        if let Some(notice) = notify::for_helper(&helper, &snapshot.helper) {
            show_notice(app, &notice);
        }
        helper = snapshot.helper.clone();
    };
    // The state before the first update, so the tray is right from the start.
    on_snapshot(&app, &controller.snapshot());
    loop {
        match updates.recv().await {
            Ok(Update::Snapshot(snapshot)) => on_snapshot(&app, &snapshot),
            Ok(Update::Transition(transition)) => {
                if let Some(notice) = notify::for_transition(&transition) {
                    show_notice(&app, &notice);
                }
            }
            Ok(Update::Log(line)) => {
                let _ = app.emit(LOG_EVENT, &line);
            }
            Err(RecvError::Lagged(_)) => on_snapshot(&app, &controller.snapshot()),
            Err(RecvError::Closed) => return,
        }
    }
}

/// Does what a command line asks of the running app: offer the demo, import files (off the
/// async runtime: the keyring blocks), and tell the window how the imports went.
fn apply_launch<R: Runtime>(app: &AppHandle<R>, launch: LaunchArgs) {
    if !launch.ignored.is_empty() {
        tracing::info!("ignored arguments: {:?}", launch.ignored);
    }
    let Some(controller) = app.try_state::<Controller>().map(|c| c.inner().clone()) else {
        return;
    };
    if let Some(file) = &launch.offer_demo {
        controller.offer_demo(file);
    }
    if launch.import.is_empty() {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let outcomes: Vec<ImportOutcome> = controller.import_files(&launch.import);
        if let Err(e) = app.emit(IMPORTED_EVENT, &outcomes) {
            tracing::debug!("failed to send the import outcomes to the window: {e}");
        }
    });
}

fn setup<R: Runtime>(
    app: &mut tauri::App<R>,
    launch: LaunchArgs,
) -> Result<(), Box<dyn std::error::Error>> {
    let autostarted = launch.autostart;
    let config_dir = app.path().app_config_dir()?;
    tracing::info!("config dir: {}", config_dir.display());
    let controller = Controller::new(ControllerConfig::new(
        config_dir,
        Arc::new(KeyringStore::native()),
    ));
    controller.note_start_at_login(app.autolaunch().is_enabled().unwrap_or(false));
    app.manage(controller.clone());
    let tray = install_tray(app.handle(), &controller.snapshot());
    let has_tray = tray == TrayStatus::Available;
    app.manage(tray);

    tauri::async_runtime::spawn(forward(app.handle().clone(), controller.clone()));
    let connector = SocketConnector {
        path: warren_proto::ipc::default_socket_path(),
        client_name: format!("warren-app {}", env!("CARGO_PKG_VERSION")),
    };
    tauri::async_runtime::spawn(controller.run(Arc::new(connector)));
    apply_launch(app.handle(), launch);

    if !autostarted || !has_tray {
        show_main_window(app.handle());
    }
    Ok(())
}

/// Creates the tray if this desktop session can have one; otherwise says why, once, in the log.
fn install_tray<R: Runtime>(app: &AppHandle<R>, snapshot: &Snapshot) -> TrayStatus {
    let result = tray_support::detect().and_then(|()| {
        tray::install(app, snapshot).map_err(|e| tray_support::NoTray::CreateFailed(e.to_string()))
    });
    match result {
        Ok(()) => TrayStatus::Available,
        Err(why) => {
            tracing::warn!(
                "no tray icon: {why}. The window stays open, and closing it quits Warren."
            );
            why.status()
        }
    }
}

/// True if the app has a tray icon to live on in when its window is closed.
fn has_tray<R: Runtime>(app: &AppHandle<R>) -> bool {
    app.try_state::<TrayStatus>()
        .is_some_and(|status| *status == TrayStatus::Available)
}

/// Builds and runs the app; returns when the user quits.
pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cwd = std::env::current_dir().unwrap_or_default();
    let launch = LaunchArgs::parse(std::env::args_os(), &cwd);
    let result = tauri::Builder::default()
        // First, so a second instance hands over before doing anything else.
        .plugin(tauri_plugin_single_instance::init(|app, args, cwd| {
            apply_launch(app, LaunchArgs::parse(args, Path::new(&cwd)));
            show_main_window(app);
        }))
        .plugin(tauri_plugin_notification::init())
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_autostart::init(
            MacosLauncher::LaunchAgent,
            Some(vec![AUTOSTART_ARG]),
        ))
        .invoke_handler(tauri::generate_handler![
            crate::commands::snapshot,
            crate::commands::logs,
            crate::commands::connect,
            crate::commands::disconnect,
            crate::commands::set_options,
            crate::commands::retry_helper,
            crate::commands::import_files,
            crate::commands::import_dialog,
            crate::commands::create_tunnel,
            crate::commands::tunnel_text,
            crate::commands::validate_text,
            crate::commands::validate_name,
            crate::commands::save_text,
            crate::commands::rename_tunnel,
            crate::commands::delete_tunnel,
            crate::commands::export_dialog,
            crate::commands::set_connect_on_launch,
            crate::commands::set_start_at_login,
            crate::commands::retry_keyring,
            crate::commands::use_key_files,
            crate::commands::accept_demo_offer,
            crate::commands::tray_status,
        ])
        .on_window_event(|window, event| {
            // With a tray, closing hides the window; without one, the window closes and, being
            // the only one, the app quits.
            if let WindowEvent::CloseRequested { api, .. } = event {
                if window.label() == MAIN_WINDOW && has_tray(window.app_handle()) {
                    api.prevent_close();
                    let _ = window.hide();
                }
            }
        })
        .setup(move |app| setup(app, launch))
        .run(tauri::generate_context!());
    if let Err(e) = result {
        tracing::error!("Warren failed to start: {e}");
        std::process::exit(1);
    }
}
