//! The fake helper (`warren_app::fake_helper`) on a Unix socket, for looking at the app without
//! root or a real helper: one system tunnel, `office`, is connected with one peer whose counters
//! grow at a varying rate; `connect`/`disconnect` work for any user tunnel (which "comes up"
//! after half a second). Nothing on the system changes.
//!
//! Used by `tests/gui/screenshot.sh` (with `WARREN_SCREENSHOT_FAKE_HELPER=<this binary>`) to show
//! the connection view, and handy while working on the UI:
//!
//! ```text
//! cargo run -p warren-app --features fake-helper --example fake_helper -- /tmp/warren-fake.sock &
//! WARREN_HELPER_SOCKET=/tmp/warren-fake.sock cargo run -p warren-app
//! ```

#[cfg(unix)]
#[tokio::main]
async fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/warren-fake.sock".into());
    if let Err(e) = serve(&path).await {
        eprintln!("fake_helper: failed to serve on {path}: {e}");
        std::process::exit(1);
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("fake_helper: serves on a Unix socket only");
    std::process::exit(1);
}

#[cfg(unix)]
async fn serve(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use warren_app::fake_helper::{FakeHelper, FakeTunnel, Handshake};
    use warren_proto::ipc::{LogLevel, TunnelKind, TunnelName, TunnelState};

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let office = FakeTunnel {
        rx_bytes: 48_000_000,
        tx_bytes: 9_000_000,
        ..FakeTunnel::new(
            TunnelKind::System,
            TunnelState::Connected {
                since_unix_secs: now.saturating_sub(754),
            },
        )
    };
    let helper = FakeHelper::new()
        .with_handshake(Handshake::After(Duration::from_millis(500)))
        .with_tunnel(TunnelName::new("office")?, office)
        .with_log(
            LogLevel::Info,
            "office: handshake completed with peer xTIBA5rb…",
        )
        .with_log(LogLevel::Warn, "office: peer roamed to 198.18.0.1:51820");

    // Stats every second, as the helper sends them.
    let ticker = {
        let helper = helper.clone();
        tokio::spawn(async move {
            let mut second = tokio::time::interval(Duration::from_secs(1));
            loop {
                second.tick().await;
                helper.tick();
            }
        })
    };
    eprintln!("fake_helper: listening on {path}");
    let served = helper.listen(path).await;
    ticker.abort();
    Ok(served?)
}
