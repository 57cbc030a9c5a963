//! The controller against the fake helper (`crate::fake_helper`), which speaks the real protocol
//! in memory (frames over `tokio::io::duplex`, the real [`Client`](warren_proto::ipc::Client) on
//! our side), without Tauri.
//!
//! The fake keeps a table of tunnels and answers as the helper does: `connect_*` publishes
//! `connecting`, answers, then publishes `connected` (unless its handshakes never complete, like
//! a peer that never answers); `disconnect` publishes `disconnecting`, answers, publishes
//! `disconnected`. Tests push any event, refuse connections the way the real socket would, hold
//! answers back, or drop the connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use warren_proto::ipc::{
    Event, EventTopic, Health, KillSwitch, Request, TunnelKind, TunnelName, TunnelOptions,
    TunnelState,
};
use warren_proto::key::PrivateKey;

use super::{Controller, ControllerConfig, Update};
use crate::fake_helper::{self, Door, FakeHelper, FakeTunnel, Handshake, PEER};
use crate::model::{
    HealthView, HelperStatus, KillSwitchView, OptionsView, PendingRequest, SecretsStatus,
    StateView, TunnelView, UiErrorKind,
};
use crate::store::secrets::{MemoryStore, SecretStore};
use crate::store::tests::TempDir;

fn name(s: &str) -> TunnelName {
    TunnelName::new(s).unwrap()
}

/// The fake with these system tunnels, all down.
fn helper_with(tunnels: &[&str]) -> FakeHelper {
    tunnels
        .iter()
        .fold(FakeHelper::new(), |h, n| h.with_system_tunnel(name(n)))
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

struct Harness {
    controller: Controller,
    helper: FakeHelper,
    keyring: Arc<MemoryStore>,
    dir: TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A controller with an empty config dir and an in-memory keyring, not yet running.
fn controller(test: &str, keyring: Arc<MemoryStore>) -> (Controller, TempDir) {
    let dir = TempDir::new(test);
    let mut config = ControllerConfig::new(dir.path().to_path_buf(), keyring);
    config.reconnect_min = Duration::from_millis(20);
    config.reconnect_max = Duration::from_millis(100);
    (Controller::new(config), dir)
}

impl Harness {
    async fn start(test: &str, helper: FakeHelper) -> Self {
        let keyring = Arc::new(MemoryStore::default());
        let (controller, dir) = controller(test, Arc::clone(&keyring));
        Self::run(controller, helper, keyring, dir)
    }

    fn run(
        controller: Controller,
        helper: FakeHelper,
        keyring: Arc<MemoryStore>,
        dir: TempDir,
    ) -> Self {
        let task = tokio::spawn(controller.clone().run(Arc::new(helper.clone())));
        Self {
            controller,
            helper,
            keyring,
            dir,
            task,
        }
    }

    /// Waits (at most 5 s) until `check` holds for the snapshot.
    async fn until(&self, what: &str, check: impl Fn(&crate::model::Snapshot) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let snapshot = self.controller.snapshot();
            if check(&snapshot) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}\nlast snapshot: {snapshot:#?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Pushes `event` from the helper; a connection must be there to get it.
    fn push(&self, event: Event) {
        assert!(self.helper.push(event), "no connection to push to");
    }

    async fn until_connected(&self) {
        self.until("the helper is connected", |s| s.helper.is_connected())
            .await;
    }

    fn tunnel(&self, n: &str) -> TunnelView {
        self.controller
            .snapshot()
            .tunnels
            .into_iter()
            .find(|t| t.name == n)
            .unwrap_or_else(|| panic!("no tunnel {n}"))
    }

    async fn until_state(&self, n: &str, check: impl Fn(&StateView) -> bool) {
        self.until(&format!("a state of {n}"), |s| {
            s.tunnels.iter().any(|t| t.name == n && check(&t.state))
        })
        .await;
    }

    /// Writes a .conf file into the test dir and imports it.
    fn import(&self, file: &str, body: &str) -> Vec<crate::model::ImportOutcome> {
        let path = self.dir.path().join(file);
        std::fs::write(&path, body).unwrap();
        self.controller.import_files(&[path])
    }
}

fn conf(key: &PrivateKey) -> String {
    format!(
        "[Interface]\nPrivateKey = {}\nAddress = 198.18.100.2/24\n\n[Peer]\nPublicKey = {PEER}\n\
         AllowedIPs = 198.18.200.0/24\nEndpoint = 198.18.0.1:51820\n",
        key.to_base64()
    )
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_missing_helper_is_explained_and_picked_up_when_it_starts() {
    let helper = helper_with(&["office"]);
    helper.set_door(Door::NotRunning);
    let h = Harness::start("not-running", helper).await;
    h.until("not running", |s| {
        matches!(&s.helper, HelperStatus::NotRunning { advice, socket }
            if advice.contains("systemctl start warren-helper") && socket == "/run/warren/helper.sock")
    })
    .await;
    assert!(
        h.controller.snapshot().tunnels.is_empty(),
        "nothing is invented while the helper is away"
    );
    let error = h.controller.connect("office").await.unwrap_err();
    assert_eq!(error.kind, UiErrorKind::HelperUnavailable);
    assert!(error.message.contains("nothing was changed"), "{error}");

    h.helper.set_door(Door::PermissionDenied);
    h.until("permission denied", |s| {
        matches!(&s.helper, HelperStatus::PermissionDenied { advice, .. }
            if advice.contains("group `warren`") && advice.contains("log in again"))
    })
    .await;

    h.helper.set_door(Door::Open);
    h.controller.retry_now();
    h.until_connected().await;
    assert_eq!(h.tunnel("office").state, StateView::Disconnected);
    assert_eq!(
        h.controller.snapshot().helper,
        HelperStatus::Connected {
            version: fake_helper::VERSION.into()
        }
    );
    assert_eq!(
        h.controller.logs()[0].message,
        "fake helper started (nothing on this system changes)"
    );
    // Subscribed to state and stats before asking for the list.
    let requests = h.helper.requests();
    assert!(matches!(&requests[0], Request::Subscribe { topics }
        if topics.contains(&EventTopic::State) && topics.contains(&EventTopic::Stats)));
    assert_eq!(requests[1], Request::ListTunnels);
}

#[tokio::test]
async fn states_come_from_the_helper_only() {
    let helper = helper_with(&["office"]).with_handshake(Handshake::Never);
    let h = Harness::start("mirror", helper).await;
    let mut updates = h.controller.subscribe();
    h.until_connected().await;

    h.controller.connect("office").await.unwrap();
    h.until_state("office", |s| *s == StateView::Connecting)
        .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        h.tunnel("office").state,
        StateView::Connecting,
        "the helper accepted the request but no handshake happened: still connecting"
    );
    assert_eq!(h.tunnel("office").pending, None);
    assert_eq!(h.controller.snapshot().last_used.as_deref(), Some("office"));

    h.push(Event::TunnelState {
        name: name("office"),
        state: TunnelState::Connected {
            since_unix_secs: 42,
        },
    });
    h.until_state("office", |s| {
        *s == StateView::Connected {
            since_unix_secs: 42,
        }
    })
    .await;

    h.push(Event::TunnelState {
        name: name("office"),
        state: TunnelState::Error {
            reason: "no route to 198.18.0.1".into(),
        },
    });
    h.until_state("office", |s| {
        *s == StateView::Error {
            reason: "no route to 198.18.0.1".into(),
        }
    })
    .await;

    let mut transitions = Vec::new();
    while let Ok(update) = updates.try_recv() {
        if let Update::Transition(t) = update {
            transitions.push((t.from, t.to));
        }
    }
    assert_eq!(
        transitions,
        [
            (StateView::Disconnected, StateView::Connecting),
            (
                StateView::Connecting,
                StateView::Connected {
                    since_unix_secs: 42
                }
            ),
            (
                StateView::Connected {
                    since_unix_secs: 42
                },
                StateView::Error {
                    reason: "no route to 198.18.0.1".into()
                }
            ),
        ]
    );
}

#[tokio::test]
async fn a_user_tunnel_goes_to_the_helper_with_its_key_and_options() {
    let h = Harness::start("user-connect", FakeHelper::new()).await;
    h.until_connected().await;
    let key = PrivateKey::generate();
    let outcomes = h.import("home.conf", &conf(&key));
    assert_eq!(
        outcomes[0].imported.as_deref(),
        Some("home"),
        "{outcomes:?}"
    );
    assert_eq!(h.keyring.get("home").unwrap(), key);
    let view = h.tunnel("home");
    assert_eq!(view.public_key, Some(key.public_key().to_string()));
    assert_eq!(view.state, StateView::Disconnected);

    let options = OptionsView {
        kill_switch: KillSwitchView::On,
        allow_lan: true,
    };
    h.controller.set_options("home", options).await.unwrap();
    assert!(
        !h.helper
            .requests()
            .iter()
            .any(|r| matches!(r, Request::SetOptions { .. })),
        "a tunnel that is down is not the helper's business"
    );
    h.controller.connect("home").await.unwrap();
    h.until_state("home", |s| matches!(s, StateView::Connected { .. }))
        .await;
    let sent = h
        .helper
        .requests()
        .into_iter()
        .find_map(|r| match r {
            Request::ConnectUser {
                name,
                config,
                options,
            } => Some((name, config, options)),
            _ => None,
        })
        .unwrap();
    assert_eq!(sent.0, name("home"));
    assert_eq!(sent.1.interface.private_key, key);
    assert_eq!(sent.1.peers.len(), 1);
    assert_eq!(
        sent.2,
        TunnelOptions {
            kill_switch: KillSwitch::On,
            allow_lan: true
        }
    );

    // Now it is up, options go to the helper too.
    h.controller
        .set_options("home", OptionsView::default())
        .await
        .unwrap();
    assert!(h
        .helper
        .requests()
        .iter()
        .any(|r| matches!(r, Request::SetOptions { .. })));
    assert_eq!(h.tunnel("home").options, OptionsView::default());

    h.controller.disconnect("home").await.unwrap();
    h.until_state("home", |s| *s == StateView::Disconnected)
        .await;
    let view = h.tunnel("home");
    assert!(view.stored, "still stored after the helper forgot it");
    assert!(view.peers.is_empty());
}

#[tokio::test]
async fn stats_fill_the_connection_view() {
    let h = Harness::start("stats", helper_with(&["office"])).await;
    h.until_connected().await;
    h.controller.connect("office").await.unwrap();
    h.until_state("office", |s| matches!(s, StateView::Connected { .. }))
        .await;
    for i in 1..=3u64 {
        h.push(Event::Stats {
            name: name("office"),
            peers: vec![fake_helper::peer_status(i * 1000, i * 500)],
            health: Some(Health::Degraded {
                reasons: vec![warren_proto::ipc::DegradedReason::NoHandshake {
                    peer: PEER.parse().unwrap(),
                }],
            }),
        });
    }
    h.until("three samples", |s| {
        s.tunnels.iter().any(|t| t.throughput.len() == 3)
    })
    .await;
    let view = h.tunnel("office");
    assert_eq!(view.peers[0].rx_bytes, 3000);
    assert_eq!(view.peers[0].endpoint.as_deref(), Some("198.18.0.1:51820"));
    assert!(
        matches!(&view.health, Some(HealthView::Degraded { reasons })
        if reasons[0].contains("never completed a handshake"))
    );
    assert_eq!(view.throughput[2].tx_bytes, 1500);
}

#[tokio::test]
async fn a_helper_restart_makes_states_unknown_until_it_is_back() {
    let h = Harness::start("restart", helper_with(&["office"])).await;
    h.until_connected().await;
    h.controller.connect("office").await.unwrap();
    h.until_state("office", |s| matches!(s, StateView::Connected { .. }))
        .await;

    h.helper.set_door(Door::NotRunning);
    h.helper.hang_up();
    h.until_state("office", |s| *s == StateView::Unknown).await;
    assert!(!h.controller.snapshot().helper.is_connected());

    // The restarted helper brought the tunnel back down.
    h.helper.insert(
        name("office"),
        FakeTunnel::new(TunnelKind::System, TunnelState::Disconnected),
    );
    h.helper.set_door(Door::Open);
    h.until_connected().await;
    assert_eq!(h.tunnel("office").state, StateView::Disconnected);
    assert_eq!(h.helper.connections(), 2);
}

#[tokio::test]
async fn an_unknown_tunnel_triggers_a_resync_not_a_guess() {
    let h = Harness::start("resync", FakeHelper::new()).await;
    h.until_connected().await;
    let lists_before = h
        .helper
        .requests()
        .iter()
        .filter(|r| **r == Request::ListTunnels)
        .count();
    // An administrator brings up a system tunnel with the CLI.
    h.helper.insert(
        name("admin"),
        FakeTunnel::new(TunnelKind::System, TunnelState::Connecting),
    );
    h.push(Event::TunnelState {
        name: name("admin"),
        state: TunnelState::Connecting,
    });
    h.until_state("admin", |s| *s == StateView::Connecting)
        .await;
    assert_eq!(h.tunnel("admin").kind, crate::model::TunnelKindView::System);
    let lists_after = h
        .helper
        .requests()
        .iter()
        .filter(|r| **r == Request::ListTunnels)
        .count();
    assert_eq!(lists_after, lists_before + 1);
}

#[tokio::test]
async fn a_refused_request_is_reported_on_the_tunnel() {
    let h = Harness::start("refused", FakeHelper::new()).await;
    h.until_connected().await;
    let error = h.controller.connect("nowhere").await.unwrap_err();
    assert_eq!(error.kind, UiErrorKind::NotFound);
    assert!(error.message.contains("no system tunnel named 'nowhere'"));
    let error = h.controller.connect("bad name").await.unwrap_err();
    assert_eq!(error.kind, UiErrorKind::InvalidName);
}

#[tokio::test]
async fn the_tray_toggle_uses_the_last_tunnel() {
    let h = Harness::start("toggle", helper_with(&["office", "lab"])).await;
    h.until_connected().await;
    let error = h.controller.toggle_last_used().await.unwrap_err();
    assert_eq!(
        error.kind,
        UiErrorKind::NotFound,
        "two tunnels, none used yet"
    );
    h.controller.connect("lab").await.unwrap();
    h.until_state("lab", |s| matches!(s, StateView::Connected { .. }))
        .await;
    h.controller.toggle_last_used().await.unwrap();
    h.until_state("lab", |s| *s == StateView::Disconnected)
        .await;
    h.controller.toggle_last_used().await.unwrap();
    h.until_state("lab", |s| matches!(s, StateView::Connected { .. }))
        .await;
    assert_eq!(h.tunnel("office").state, StateView::Disconnected);
}

#[tokio::test]
async fn connect_on_launch_connects_the_last_tunnel_once() {
    let keyring = Arc::new(MemoryStore::default());
    let (controller, dir) = controller("launch", Arc::clone(&keyring));
    controller.set_connect_on_launch(true).unwrap();
    controller
        .update_settings(|s| s.last_used = Some("office".into()))
        .unwrap();
    // A new controller reads the saved settings, like the next start of the app.
    let mut config = ControllerConfig::new(dir.path().to_path_buf(), keyring.clone());
    config.reconnect_min = Duration::from_millis(20);
    let controller = Controller::new(config);
    assert!(controller.snapshot().settings.connect_on_launch);
    let h = Harness::run(controller, helper_with(&["office"]), keyring, dir);
    h.until_state("office", |s| matches!(s, StateView::Connected { .. }))
        .await;
    let connects = |h: &Harness| {
        h.helper
            .requests()
            .iter()
            .filter(|r| matches!(r, Request::ConnectSystem { .. }))
            .count()
    };
    assert_eq!(connects(&h), 1);
    // After a helper restart the tunnel is down, and it is not reconnected behind the user's back.
    h.helper.insert(
        name("office"),
        FakeTunnel::new(TunnelKind::System, TunnelState::Disconnected),
    );
    h.helper.hang_up();
    h.until("a second connection", |_| h.helper.connections() == 2)
        .await;
    h.until_connected().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(connects(&h), 1);
}

#[tokio::test]
async fn import_reports_each_file_and_bad_input_changes_nothing() {
    let h = Harness::start("import", FakeHelper::new()).await;
    let key = PrivateKey::generate();
    std::fs::write(h.dir.path().join("good.conf"), conf(&key)).unwrap();
    std::fs::write(
        h.dir.path().join("bad.conf"),
        conf(&key).replace("198.18.200.0/24", "198.18.200.0/33"),
    )
    .unwrap();
    std::fs::write(h.dir.path().join("has space.conf"), conf(&key)).unwrap();
    let files: Vec<PathBuf> = [
        "good.conf",
        "bad.conf",
        "has space.conf",
        "missing.conf",
        "good.conf",
    ]
    .iter()
    .map(|f| h.dir.path().join(f))
    .collect();
    let outcomes = h.controller.import_files(&files);
    assert_eq!(outcomes[0].imported.as_deref(), Some("good"));
    let bad = outcomes[1].error.as_ref().unwrap();
    assert_eq!(bad.kind, UiErrorKind::InvalidConfig);
    assert_eq!(bad.line, Some(7));
    assert!(
        bad.message.contains("bad.conf:7: AllowedIPs"),
        "{}",
        bad.message
    );
    assert_eq!(
        outcomes[2].error.as_ref().unwrap().kind,
        UiErrorKind::InvalidName
    );
    assert_eq!(outcomes[3].error.as_ref().unwrap().kind, UiErrorKind::Io);
    assert_eq!(
        outcomes[4].error.as_ref().unwrap().kind,
        UiErrorKind::Exists
    );
    assert_eq!(h.keyring.len(), 1, "only the good tunnel's key was stored");
    let names: Vec<_> = h
        .controller
        .snapshot()
        .tunnels
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["good"]);
    let on_disk = std::fs::read_to_string(h.dir.path().join("tunnels/good.conf")).unwrap();
    assert!(!on_disk.contains(&key.to_base64()));
}

#[tokio::test]
async fn create_edit_rename_export_delete() {
    let h = Harness::start("library", FakeHelper::new()).await;
    let created = h.controller.create_tunnel("new").unwrap();
    assert!(!created.text.to_lowercase().contains("privatekey"));
    let key = h.keyring.get("new").unwrap();
    assert_eq!(created.public_key, key.public_key().to_string());
    assert_eq!(h.tunnel("new").public_key, Some(created.public_key.clone()));
    assert_eq!(
        h.controller.create_tunnel("new").unwrap_err().kind,
        UiErrorKind::Exists
    );

    // Edit: errors point at the user's line; a good text is saved canonically.
    let edited = format!(
        "{}Address = 198.18.100.9/24\n\n[Peer]\nPublicKey = {PEER}\nAllowedIPs = 198.18.0.0/33\n",
        created.text
    );
    let error = h.controller.save_text("new", &edited).unwrap_err();
    assert_eq!(error.kind, UiErrorKind::InvalidConfig);
    assert_eq!(
        Some(error.line.unwrap() as usize),
        edited
            .lines()
            .position(|l| l.contains("/33"))
            .map(|i| i + 1)
    );
    assert_eq!(Controller::validate_text(&edited).unwrap().line, error.line);
    let fixed = edited.replace("/33", "/16");
    assert_eq!(Controller::validate_text(&fixed), None);
    let saved = h.controller.save_text("new", &fixed).unwrap();
    assert!(saved.text.contains("198.18.100.9/24"));
    assert_eq!(h.controller.tunnel_text("new").unwrap(), saved);
    assert_eq!(h.keyring.get("new").unwrap(), key, "the key did not change");

    // A PrivateKey line typed into the editor replaces the key.
    let other = PrivateKey::generate();
    let with_key = fixed.replacen(
        "[Interface]\n",
        &format!("[Interface]\nPrivateKey = {}\n", other.to_base64()),
        1,
    );
    let saved = h.controller.save_text("new", &with_key).unwrap();
    assert_eq!(saved.public_key, other.public_key().to_string());
    assert_eq!(h.keyring.get("new").unwrap(), other);

    // Rename moves the key and the settings.
    h.controller
        .set_options(
            "new",
            OptionsView {
                kill_switch: KillSwitchView::Off,
                allow_lan: true,
            },
        )
        .await
        .unwrap();
    h.controller.rename_tunnel("new", "renamed").unwrap();
    assert!(h.keyring.get("new").is_err());
    assert_eq!(h.keyring.get("renamed").unwrap(), other);
    assert!(h.tunnel("renamed").options.allow_lan);

    // Export writes the full text, key included, for the user's eyes only.
    let out = h.dir.path().join("exported.conf");
    h.controller.export_tunnel("renamed", &out).unwrap();
    let exported = warren_proto::config::parse_file(&out).unwrap();
    assert_eq!(exported.interface.private_key, other);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    h.controller.delete_tunnel("renamed").unwrap();
    assert!(h.keyring.is_empty());
    assert!(h.controller.snapshot().tunnels.is_empty());
    assert_eq!(
        h.controller.delete_tunnel("renamed").unwrap_err().kind,
        UiErrorKind::NotFound
    );
}

#[tokio::test]
async fn a_tunnel_that_is_up_cannot_be_renamed_or_deleted() {
    let h = Harness::start("busy", FakeHelper::new()).await;
    h.until_connected().await;
    h.import("home.conf", &conf(&PrivateKey::generate()));
    h.controller.connect("home").await.unwrap();
    h.until_state("home", |s| matches!(s, StateView::Connected { .. }))
        .await;
    let error = h.controller.delete_tunnel("home").unwrap_err();
    assert!(
        error.message.contains("disconnect 'home' before"),
        "{error}"
    );
    assert!(h.controller.rename_tunnel("home", "x").is_err());
    assert_eq!(h.keyring.len(), 1);
}

#[tokio::test]
async fn without_a_keyring_say_so_and_offer_the_warned_fallback() {
    let keyring = Arc::new(MemoryStore::default());
    *keyring.fail.lock().unwrap() = Some("no Secret Service on the session bus".into());
    let (controller, dir) = controller("no-keyring", Arc::clone(&keyring));
    assert_eq!(
        controller.snapshot().secrets,
        SecretsStatus::Unavailable {
            reason: "no Secret Service on the session bus".into()
        }
    );
    let path = dir.path().join("home.conf");
    let key = PrivateKey::generate();
    std::fs::write(&path, conf(&key)).unwrap();
    let outcome = &controller.import_files(std::slice::from_ref(&path))[0];
    let error = outcome.error.as_ref().unwrap();
    assert_eq!(error.kind, UiErrorKind::Secrets);
    assert!(error.message.contains("no keyring is available"), "{error}");
    assert!(
        !dir.path().join("tunnels/home.conf").exists(),
        "nothing half-imported"
    );

    controller.use_key_files().unwrap();
    let key_dir = dir.path().join("keys");
    assert_eq!(
        controller.snapshot().secrets,
        SecretsStatus::File {
            path: key_dir.display().to_string()
        }
    );
    let outcome = &controller.import_files(std::slice::from_ref(&path))[0];
    assert_eq!(outcome.imported.as_deref(), Some("home"), "{outcome:?}");
    assert!(key_dir.join("home.key").exists());

    // The choice survives a restart; checking the keyring again switches back when it answers.
    let again = Controller::new(ControllerConfig::new(
        dir.path().to_path_buf(),
        keyring.clone(),
    ));
    assert!(matches!(
        again.snapshot().secrets,
        SecretsStatus::File { .. }
    ));
    *keyring.fail.lock().unwrap() = None;
    again.retry_keyring().unwrap();
    assert!(matches!(
        again.snapshot().secrets,
        SecretsStatus::Keyring { .. }
    ));
}

#[tokio::test]
async fn pending_is_shown_while_a_request_is_in_flight() {
    let h = Harness::start("pending", helper_with(&["office"])).await;
    h.until_connected().await;
    // Hold the helper's answer back while the request is out.
    let guard = h.helper.hold_answers().await;
    let controller = h.controller.clone();
    let request = tokio::spawn(async move { controller.connect("office").await });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while h.tunnel("office").pending != Some(PendingRequest::Connect) {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(
        h.tunnel("office").state,
        StateView::Disconnected,
        "pending is not a state"
    );
    drop(guard);
    request.await.unwrap().unwrap();
    assert_eq!(h.tunnel("office").pending, None);
}

#[tokio::test]
async fn the_demo_is_offered_only_with_its_file_and_imported_like_any_file() {
    let keyring = Arc::new(MemoryStore::default());
    let (controller, dir) = controller("demo-offer", Arc::clone(&keyring));
    let file = dir.path().join("warren-demo.conf");
    assert!(!controller.offer_demo(&file), "no file, no offer");
    assert_eq!(controller.snapshot().demo_offer, None);
    assert_eq!(
        controller.accept_demo_offer().unwrap_err().kind,
        UiErrorKind::NotFound
    );

    let key = PrivateKey::generate();
    std::fs::write(&file, conf(&key)).unwrap();
    assert!(controller.offer_demo(&file));
    let offer = controller.snapshot().demo_offer.unwrap();
    assert_eq!(offer.name, "warren-demo");
    assert_eq!(offer.file, file.display().to_string());

    // Through the ordinary import: the key in the keyring, the text (without it) stored.
    assert_eq!(controller.accept_demo_offer().unwrap(), "warren-demo");
    assert_eq!(
        controller.snapshot().demo_offer,
        None,
        "accepted: withdrawn"
    );
    assert_eq!(keyring.get("warren-demo").unwrap(), key);
    let stored = std::fs::read_to_string(dir.path().join("tunnels/warren-demo.conf")).unwrap();
    assert!(!stored.contains(&key.to_base64()));
    assert_eq!(controller.snapshot().tunnels.len(), 1);

    // The demo stopped (its file is gone) before the user accepted: withdrawn, with the reason.
    let later = dir.path().join("later.conf");
    std::fs::write(&later, conf(&key)).unwrap();
    assert!(controller.offer_demo(&later));
    std::fs::remove_file(&later).unwrap();
    let error = controller.accept_demo_offer().unwrap_err();
    assert!(error.message.contains("no longer running"), "{error}");
    assert_eq!(controller.snapshot().demo_offer, None);
}
