//! Which desktop notifications to show, decided by pure functions from what the helper reported:
//! connected, disconnected, failed, and losing or regaining the helper. The Tauri layer
//! (`app.rs`) only displays what these return.
//!
//! Nothing is said about transitions from `unknown` (the app just (re)connected to the helper
//! and learnt states it did not see change) or about the intermediate `connecting` /
//! `disconnecting` steps, or a network change (`reconnecting` and back: the window and the tray
//! show it; it is not news unless it fails).

use crate::controller::Transition;
use crate::model::{HelperStatus, StateView};

/// A notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The title line.
    pub title: String,
    /// The body.
    pub body: String,
}

/// The notification for a tunnel's state change, if it deserves one.
pub fn for_transition(transition: &Transition) -> Option<Notice> {
    let name = &transition.name;
    match (&transition.from, &transition.to) {
        (StateView::Unknown, _) => None,
        // Back after a network change: the user was told of the connection already.
        (StateView::Reconnecting { .. }, StateView::Connected { .. }) => None,
        (from, StateView::Connected { .. }) if !matches!(from, StateView::Connected { .. }) => {
            Some(Notice {
                title: format!("Connected to {name}"),
                body: "The tunnel is up and a handshake completed.".into(),
            })
        }
        (StateView::Disconnected, StateView::Disconnected) => None,
        (_, StateView::Disconnected) => Some(Notice {
            title: format!("Disconnected from {name}"),
            body: "The tunnel is down.".into(),
        }),
        (_, StateView::Error { reason }) => Some(Notice {
            title: format!("{name} failed"),
            body: reason.clone(),
        }),
        _ => None,
    }
}

/// The notification for a change in the helper connection, if it deserves one: only losing a
/// helper we had, and getting it back.
pub fn for_helper(before: &HelperStatus, after: &HelperStatus) -> Option<Notice> {
    match (before.is_connected(), after.is_connected()) {
        (true, false) => Some(Notice {
            title: "Lost contact with the Warren helper".into(),
            body: format!(
                "{}. Tunnel states are unknown until it is back.",
                helper_summary(after)
            ),
        }),
        (false, true) if !matches!(before, HelperStatus::Connecting) => Some(Notice {
            title: "The Warren helper is back".into(),
            body: "Tunnel states are live again.".into(),
        }),
        _ => None,
    }
}

/// One sentence about the helper connection, for messages and the tray's tooltip.
pub fn helper_summary(status: &HelperStatus) -> String {
    match status {
        HelperStatus::Connecting => "connecting to the helper".into(),
        HelperStatus::Connected { version } => format!("helper {version} connected"),
        HelperStatus::NotRunning { advice, .. } => format!("the helper is not running: {advice}"),
        HelperStatus::PermissionDenied { advice, .. } => {
            format!("you may not use the helper: {advice}")
        }
        HelperStatus::Refused { message } | HelperStatus::Unreachable { message } => {
            message.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(from: StateView, to: StateView) -> Transition {
        Transition {
            name: "home".into(),
            from,
            to,
        }
    }

    const UP: StateView = StateView::Connected { since_unix_secs: 1 };

    #[test]
    fn connect_disconnect_and_failure_are_announced() {
        let up = for_transition(&t(StateView::Connecting, UP)).unwrap();
        assert_eq!(up.title, "Connected to home");
        let down = for_transition(&t(StateView::Disconnecting, StateView::Disconnected)).unwrap();
        assert_eq!(down.title, "Disconnected from home");
        let failed = for_transition(&t(
            StateView::Connecting,
            StateView::Error {
                reason: "no route to 198.18.0.1".into(),
            },
        ))
        .unwrap();
        assert_eq!(failed.title, "home failed");
        assert_eq!(failed.body, "no route to 198.18.0.1");
    }

    #[test]
    fn steps_and_relearnt_states_are_quiet() {
        assert_eq!(
            for_transition(&t(StateView::Disconnected, StateView::Connecting)),
            None
        );
        assert_eq!(for_transition(&t(UP, StateView::Disconnecting)), None);
        let reconnecting = StateView::Reconnecting {
            reason: "network changed".into(),
        };
        assert_eq!(for_transition(&t(UP, reconnecting.clone())), None);
        assert_eq!(
            for_transition(&t(reconnecting, UP)),
            None,
            "back after a network change"
        );
        assert_eq!(for_transition(&t(StateView::Unknown, UP)), None);
        assert_eq!(
            for_transition(&t(StateView::Unknown, StateView::Disconnected)),
            None
        );
    }

    #[test]
    fn losing_and_regaining_the_helper() {
        let up = HelperStatus::Connected {
            version: "0.1.0".into(),
        };
        let gone = HelperStatus::Unreachable {
            message: "the helper stopped".into(),
        };
        let lost = for_helper(&up, &gone).unwrap();
        assert!(lost.body.starts_with("the helper stopped."), "{lost:?}");
        assert!(for_helper(&gone, &up).is_some());
        assert_eq!(
            for_helper(&HelperStatus::Connecting, &up),
            None,
            "not at start-up"
        );
        assert_eq!(for_helper(&gone, &gone), None);
    }
}
