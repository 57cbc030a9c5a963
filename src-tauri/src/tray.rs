//! The tray icon (StatusNotifierItem/AppIndicator on Linux): an icon per state, one click to
//! toggle the last-used tunnel, a submenu of tunnels, "Open Warren" and "Quit".
//!
//! [`TrayModel::from_snapshot`] decides everything (pure, unit-tested); [`install`] and
//! [`Tray::show`] only turn a model into Tauri menu items, and menu clicks into controller calls.
//! The menu is rebuilt only when the model changes (not on every stats tick).
//!
//! On Linux, AppIndicator delivers no clicks on the icon itself, only menu selections, so
//! everything is in the menu.

use std::sync::Mutex;

use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Manager, Runtime};

use crate::controller::Controller;
use crate::icons::{tray_icon, TrayState};
use crate::model::{HealthView, Snapshot, StateView};
use crate::notify::helper_summary;

/// One tunnel in the "Tunnels" submenu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayTunnel {
    /// The tunnel's name (the menu id is `tunnel:<name>`).
    pub name: String,
    /// `home — connected`.
    pub label: String,
    /// Checked while it is up.
    pub up: bool,
    /// False while its state is unknown.
    pub enabled: bool,
}

/// Everything the tray shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrayModel {
    /// Which icon.
    pub state: TrayState,
    /// The tooltip.
    pub tooltip: String,
    /// The one-click entry: "Connect home" / "Disconnect home"; `None` with no tunnel at all.
    pub toggle: Option<(String, bool)>,
    /// The submenu.
    pub tunnels: Vec<TrayTunnel>,
}

fn state_word(state: &StateView) -> &'static str {
    match state {
        StateView::Unknown => "unknown",
        StateView::Disconnected => "disconnected",
        StateView::Connecting => "connecting",
        StateView::WaitingForNetwork { .. } => "waiting for network",
        StateView::Connected { .. } => "connected",
        StateView::Reconnecting { .. } => "reconnecting (network changed)",
        StateView::Disconnecting => "disconnecting",
        StateView::Error { .. } => "failed",
    }
}

impl TrayModel {
    /// What the tray shows for `snapshot`.
    pub fn from_snapshot(snapshot: &Snapshot) -> Self {
        let tunnels = &snapshot.tunnels;
        let degraded =
            |t: &&crate::model::TunnelView| matches!(t.health, Some(HealthView::Degraded { .. }));
        let state = if !snapshot.helper.is_connected() {
            TrayState::Offline
        } else if tunnels
            .iter()
            .any(|t| matches!(t.state, StateView::Error { .. }))
        {
            TrayState::Error
        } else if tunnels
            .iter()
            .any(|t| matches!(t.state, StateView::Connected { .. }) && degraded(&t))
        {
            TrayState::Degraded
        } else if tunnels
            .iter()
            .any(|t| matches!(t.state, StateView::Connected { .. }))
        {
            TrayState::Connected
        } else if tunnels.iter().any(|t| {
            matches!(
                t.state,
                StateView::Connecting
                    | StateView::WaitingForNetwork { .. }
                    | StateView::Reconnecting { .. }
                    | StateView::Disconnecting
            )
        }) {
            TrayState::Connecting
        } else {
            TrayState::Disconnected
        };

        let active: Vec<String> = tunnels
            .iter()
            .filter(|t| t.state != StateView::Disconnected && t.state != StateView::Unknown)
            .map(|t| format!("{} {}", t.name, state_word(&t.state)))
            .collect();
        let tooltip = if !snapshot.helper.is_connected() {
            format!("Warren: {}", helper_summary(&snapshot.helper))
        } else if active.is_empty() {
            "Warren: no tunnel is up".to_owned()
        } else {
            format!("Warren: {}", active.join(", "))
        };

        let last = snapshot
            .last_used
            .as_ref()
            .and_then(|n| tunnels.iter().find(|t| &t.name == n))
            .or(match tunnels.as_slice() {
                [only] => Some(only),
                _ => None,
            });
        let toggle = last.map(|t| {
            let label = if t.state.is_up() {
                format!("Disconnect {}", t.name)
            } else {
                format!("Connect {}", t.name)
            };
            (label, t.state != StateView::Unknown && t.pending.is_none())
        });

        TrayModel {
            state,
            tooltip,
            toggle,
            tunnels: tunnels
                .iter()
                .map(|t| TrayTunnel {
                    name: t.name.clone(),
                    label: format!("{} — {}", t.name, state_word(&t.state)),
                    up: t.state.is_up(),
                    enabled: t.state != StateView::Unknown && t.pending.is_none(),
                })
                .collect(),
        }
    }
}

const ID_TOGGLE: &str = "toggle";
const ID_OPEN: &str = "open";
const ID_QUIT: &str = "quit";
const TUNNEL_PREFIX: &str = "tunnel:";
const TRAY_ID: &str = "warren";

/// The tray and the model it shows now.
pub struct Tray {
    model: Mutex<Option<TrayModel>>,
}

/// Creates the tray icon and wires its menu to the controller. Only where
/// [`crate::tray_support::detect`] says there can be a tray: on Linux, without the appindicator
/// library, creating it panics (inside the `libappindicator` crate).
pub fn install<R: Runtime>(app: &AppHandle<R>, snapshot: &Snapshot) -> tauri::Result<()> {
    let model = TrayModel::from_snapshot(snapshot);
    let menu = build_menu(app, &model)?;
    let (rgba, size) = tray_icon(model.state);
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::new_owned(rgba, size, size))
        .tooltip(&model.tooltip)
        .menu(&menu)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    app.manage(Tray {
        model: Mutex::new(Some(model)),
    });
    Ok(())
}

impl Tray {
    /// Shows `snapshot` in the tray, if it changes what the tray shows.
    pub fn show<R: Runtime>(&self, app: &AppHandle<R>, snapshot: &Snapshot) {
        let model = TrayModel::from_snapshot(snapshot);
        {
            let mut current = self.model.lock().unwrap_or_else(|e| e.into_inner());
            if current.as_ref() == Some(&model) {
                return;
            }
            *current = Some(model.clone());
        }
        let Some(tray) = app.tray_by_id(TRAY_ID) else {
            return;
        };
        if let Err(e) = apply(app, &tray, &model) {
            tracing::warn!("failed to update the tray: {e}");
        }
    }
}

fn apply<R: Runtime>(
    app: &AppHandle<R>,
    tray: &TrayIcon<R>,
    model: &TrayModel,
) -> tauri::Result<()> {
    let (rgba, size) = tray_icon(model.state);
    tray.set_icon(Some(Image::new_owned(rgba, size, size)))?;
    tray.set_tooltip(Some(&model.tooltip))?;
    tray.set_menu(Some(build_menu(app, model)?))?;
    Ok(())
}

fn build_menu<R: Runtime>(app: &AppHandle<R>, model: &TrayModel) -> tauri::Result<Menu<R>> {
    let menu = Menu::new(app)?;
    match &model.toggle {
        Some((label, enabled)) => menu.append(&MenuItem::with_id(
            app,
            ID_TOGGLE,
            label,
            *enabled,
            None::<&str>,
        )?)?,
        None => menu.append(&MenuItem::with_id(
            app,
            ID_TOGGLE,
            "No tunnel yet",
            false,
            None::<&str>,
        )?)?,
    }
    let submenu = Submenu::new(app, "Tunnels", !model.tunnels.is_empty())?;
    for tunnel in &model.tunnels {
        submenu.append(&CheckMenuItem::with_id(
            app,
            format!("{TUNNEL_PREFIX}{}", tunnel.name),
            &tunnel.label,
            tunnel.enabled,
            tunnel.up,
            None::<&str>,
        )?)?;
    }
    menu.append(&submenu)?;
    menu.append(&PredefinedMenuItem::separator(app)?)?;
    menu.append(&MenuItem::with_id(
        app,
        ID_OPEN,
        "Open Warren",
        true,
        None::<&str>,
    )?)?;
    menu.append(&MenuItem::with_id(
        app,
        ID_QUIT,
        "Quit",
        true,
        None::<&str>,
    )?)?;
    Ok(menu)
}

fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    let controller = app.state::<Controller>().inner().clone();
    match id {
        ID_OPEN => crate::app::show_main_window(app),
        ID_QUIT => app.exit(0),
        ID_TOGGLE => {
            tauri::async_runtime::spawn(async move {
                if let Err(e) = controller.toggle_last_used().await {
                    tracing::warn!("tray toggle: {e}");
                }
            });
        }
        other => {
            let Some(name) = other.strip_prefix(TUNNEL_PREFIX).map(str::to_owned) else {
                return;
            };
            tauri::async_runtime::spawn(async move {
                let up = controller
                    .snapshot()
                    .tunnels
                    .iter()
                    .any(|t| t.name == name && t.state.is_up());
                let result = if up {
                    controller.disconnect(&name).await
                } else {
                    controller.connect(&name).await
                };
                if let Err(e) = result {
                    tracing::warn!("tray: {name}: {e}");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        HelperStatus, OptionsView, PendingRequest, SecretsStatus, SettingsView, TunnelKindView,
        TunnelView,
    };

    fn tunnel(name: &str, state: StateView) -> TunnelView {
        TunnelView {
            name: name.into(),
            kind: TunnelKindView::User,
            stored: true,
            state,
            health: None,
            peers: vec![],
            options: OptionsView::default(),
            public_key: None,
            throughput: vec![],
            pending: None,
            last_error: None,
        }
    }

    fn snapshot(tunnels: Vec<TunnelView>, last: Option<&str>) -> Snapshot {
        Snapshot {
            helper: HelperStatus::Connected {
                version: "0.1.0".into(),
            },
            secrets: SecretsStatus::Keyring {
                backend: "test".into(),
            },
            tunnels,
            last_used: last.map(str::to_owned),
            settings: SettingsView::default(),
            demo_offer: None,
        }
    }

    const UP: StateView = StateView::Connected { since_unix_secs: 1 };

    #[test]
    fn the_icon_shows_the_most_important_state() {
        let cases = [
            (vec![], TrayState::Disconnected),
            (
                vec![tunnel("a", StateView::Connecting)],
                TrayState::Connecting,
            ),
            (
                vec![tunnel(
                    "a",
                    StateView::WaitingForNetwork {
                        reason: "no such name".into(),
                    },
                )],
                TrayState::Connecting,
            ),
            (
                vec![tunnel(
                    "a",
                    StateView::Reconnecting {
                        reason: "network changed".into(),
                    },
                )],
                TrayState::Connecting,
            ),
            (
                vec![tunnel("a", UP), tunnel("b", StateView::Connecting)],
                TrayState::Connected,
            ),
            (
                vec![
                    tunnel("a", UP),
                    tunnel("b", StateView::Error { reason: "x".into() }),
                ],
                TrayState::Error,
            ),
        ];
        for (tunnels, expected) in cases {
            assert_eq!(
                TrayModel::from_snapshot(&snapshot(tunnels, None)).state,
                expected
            );
        }
        let mut sick = tunnel("a", UP);
        sick.health = Some(HealthView::Degraded {
            reasons: vec!["stale".into()],
        });
        assert_eq!(
            TrayModel::from_snapshot(&snapshot(vec![sick], None)).state,
            TrayState::Degraded
        );
        let mut offline = snapshot(vec![tunnel("a", StateView::Unknown)], Some("a"));
        offline.helper = HelperStatus::NotRunning {
            socket: "/run/warren/helper.sock".into(),
            advice: "start it".into(),
        };
        let model = TrayModel::from_snapshot(&offline);
        assert_eq!(model.state, TrayState::Offline);
        assert!(model.tooltip.contains("not running"), "{}", model.tooltip);
        assert_eq!(
            model.toggle,
            Some(("Connect a".into(), false)),
            "unknown: disabled"
        );
        assert!(!model.tunnels[0].enabled);
    }

    #[test]
    fn the_toggle_acts_on_the_last_used_tunnel() {
        let model = TrayModel::from_snapshot(&snapshot(
            vec![tunnel("home", UP), tunnel("work", StateView::Disconnected)],
            Some("home"),
        ));
        assert_eq!(model.toggle, Some(("Disconnect home".into(), true)));
        assert_eq!(model.tooltip, "Warren: home connected");
        assert_eq!(model.tunnels[0].label, "home — connected");
        assert!(model.tunnels[0].up);
        assert!(!model.tunnels[1].up);

        let none = TrayModel::from_snapshot(&snapshot(
            vec![tunnel("home", UP), tunnel("work", StateView::Disconnected)],
            None,
        ));
        assert_eq!(
            none.toggle, None,
            "two tunnels and none used: nothing to guess"
        );
        let only = TrayModel::from_snapshot(&snapshot(
            vec![tunnel("work", StateView::Disconnected)],
            None,
        ));
        assert_eq!(only.toggle, Some(("Connect work".into(), true)));

        let mut busy = tunnel("home", StateView::Disconnected);
        busy.pending = Some(PendingRequest::Connect);
        let model = TrayModel::from_snapshot(&snapshot(vec![busy], Some("home")));
        assert_eq!(model.toggle, Some(("Connect home".into(), false)));
    }
}
