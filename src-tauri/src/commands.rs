//! The Tauri commands the webview calls. Each is a thin forward to the [`Controller`]; the only
//! logic here is Tauri plumbing: file dialogs, the autostart entry, and moving blocking work
//! (files, the keyring's D-Bus calls) onto the blocking pool.
//!
//! Every command returns `Result<_, UiError>`, so the webview sees one error shape.

use std::path::PathBuf;

use tauri::{AppHandle, Runtime, State};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_dialog::DialogExt as _;

use crate::controller::Controller;
use crate::model::{
    Diagnostic, ImportOutcome, LogLineView, OptionsView, Snapshot, TrayStatus, TunnelText, UiError,
    UiErrorKind,
};

type Result<T> = std::result::Result<T, UiError>;

/// Runs blocking controller work off the async runtime.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tauri::async_runtime::spawn_blocking(work)
        .await
        .map_err(|e| UiError::new(UiErrorKind::Io, format!("the task failed: {e}")))?
}

#[tauri::command]
pub async fn snapshot(controller: State<'_, Controller>) -> Result<Snapshot> {
    Ok(controller.snapshot())
}

#[tauri::command]
pub async fn logs(controller: State<'_, Controller>) -> Result<Vec<LogLineView>> {
    Ok(controller.logs())
}

#[tauri::command]
pub async fn connect(controller: State<'_, Controller>, name: String) -> Result<()> {
    controller.connect(&name).await
}

#[tauri::command]
pub async fn disconnect(controller: State<'_, Controller>, name: String) -> Result<()> {
    controller.disconnect(&name).await
}

#[tauri::command]
pub async fn set_options(
    controller: State<'_, Controller>,
    name: String,
    options: OptionsView,
) -> Result<()> {
    controller.set_options(&name, options).await
}

#[tauri::command]
pub async fn retry_helper(controller: State<'_, Controller>) -> Result<()> {
    controller.retry_now();
    Ok(())
}

#[tauri::command]
pub async fn import_files(
    controller: State<'_, Controller>,
    paths: Vec<PathBuf>,
) -> Result<Vec<ImportOutcome>> {
    let controller = controller.inner().clone();
    blocking(move || Ok(controller.import_files(&paths))).await
}

/// Opens a file picker for `.conf` files and imports what the user picks (nothing if they
/// cancel).
#[tauri::command]
pub async fn import_dialog<R: Runtime>(
    app: AppHandle<R>,
    controller: State<'_, Controller>,
) -> Result<Vec<ImportOutcome>> {
    let controller = controller.inner().clone();
    blocking(move || {
        let picked = app
            .dialog()
            .file()
            .set_title("Import WireGuard configurations")
            .add_filter("WireGuard configuration", &["conf"])
            .blocking_pick_files()
            .unwrap_or_default();
        let paths: Vec<PathBuf> = picked
            .into_iter()
            .filter_map(|p| p.into_path().ok())
            .collect();
        Ok(controller.import_files(&paths))
    })
    .await
}

#[tauri::command]
pub async fn create_tunnel(controller: State<'_, Controller>, name: String) -> Result<TunnelText> {
    let controller = controller.inner().clone();
    blocking(move || controller.create_tunnel(&name)).await
}

#[tauri::command]
pub async fn tunnel_text(controller: State<'_, Controller>, name: String) -> Result<TunnelText> {
    let controller = controller.inner().clone();
    blocking(move || controller.tunnel_text(&name)).await
}

#[tauri::command]
pub async fn validate_text(text: String) -> Result<Option<Diagnostic>> {
    Ok(Controller::validate_text(&text))
}

/// Why `name` is not a usable tunnel name, or `None` — the helper's own rule.
#[tauri::command]
pub async fn validate_name(name: String) -> Result<Option<String>> {
    Ok(warren_proto::ipc::TunnelName::new(name)
        .err()
        .map(|e| e.to_string()))
}

#[tauri::command]
pub async fn save_text(
    controller: State<'_, Controller>,
    name: String,
    text: String,
) -> Result<TunnelText> {
    let controller = controller.inner().clone();
    blocking(move || controller.save_text(&name, &text)).await
}

#[tauri::command]
pub async fn rename_tunnel(
    controller: State<'_, Controller>,
    from: String,
    to: String,
) -> Result<()> {
    let controller = controller.inner().clone();
    blocking(move || controller.rename_tunnel(&from, &to)).await
}

#[tauri::command]
pub async fn delete_tunnel(controller: State<'_, Controller>, name: String) -> Result<()> {
    let controller = controller.inner().clone();
    blocking(move || controller.delete_tunnel(&name)).await
}

/// Asks where to save, then writes the full configuration (private key included). Returns the
/// path written, or `None` if the user cancelled.
#[tauri::command]
pub async fn export_dialog<R: Runtime>(
    app: AppHandle<R>,
    controller: State<'_, Controller>,
    name: String,
) -> Result<Option<String>> {
    let controller = controller.inner().clone();
    blocking(move || {
        let Some(path) = app
            .dialog()
            .file()
            .set_title("Export tunnel")
            .set_file_name(format!("{name}.conf"))
            .add_filter("WireGuard configuration", &["conf"])
            .blocking_save_file()
            .and_then(|p| p.into_path().ok())
        else {
            return Ok(None);
        };
        controller.export_tunnel(&name, &path)?;
        Ok(Some(path.display().to_string()))
    })
    .await
}

#[tauri::command]
pub async fn set_connect_on_launch(controller: State<'_, Controller>, enabled: bool) -> Result<()> {
    controller.set_connect_on_launch(enabled)
}

/// Adds or removes the OS's start-at-login entry, then reports what the OS says.
#[tauri::command]
pub async fn set_start_at_login<R: Runtime>(
    app: AppHandle<R>,
    controller: State<'_, Controller>,
    enabled: bool,
) -> Result<()> {
    let autolaunch = app.autolaunch();
    let changed = if enabled {
        autolaunch.enable()
    } else {
        autolaunch.disable()
    };
    let now = autolaunch.is_enabled().unwrap_or(false);
    controller.note_start_at_login(now);
    changed.map_err(|e| {
        UiError::new(
            UiErrorKind::Io,
            format!("failed to change the start-at-login entry: {e}"),
        )
    })
}

#[tauri::command]
pub async fn retry_keyring(controller: State<'_, Controller>) -> Result<()> {
    let controller = controller.inner().clone();
    blocking(move || controller.retry_keyring()).await
}

/// The user accepted the warning about unencrypted key files.
#[tauri::command]
pub async fn use_key_files(controller: State<'_, Controller>) -> Result<()> {
    let controller = controller.inner().clone();
    blocking(move || controller.use_key_files()).await
}

/// Imports the local demo the app was started to offer; returns the new tunnel's name.
#[tauri::command]
pub async fn accept_demo_offer(controller: State<'_, Controller>) -> Result<String> {
    let controller = controller.inner().clone();
    blocking(move || controller.accept_demo_offer()).await
}

/// Whether the app has a tray icon, and why not (decided at start; see `crate::tray_support`).
#[tauri::command]
pub async fn tray_status(status: State<'_, TrayStatus>) -> Result<TrayStatus> {
    Ok(status.inner().clone())
}
