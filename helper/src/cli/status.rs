//! `warren-helper status [NAME] [--json]`: what the daemon knows about one tunnel, or about every
//! tunnel that is not down: state, interface, options, health and, per peer, endpoint, allowed
//! IPs, latest handshake and transfer — like `wg show`, never a key other than public keys.
//! `--json` prints the daemon's `TunnelStatus` list as JSON (an array), for scripts.

use super::client;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};
use warren_proto::ipc::{
    KillSwitch, Request, Response, TunnelKind, TunnelName, TunnelState, TunnelStatus,
};

/// `status`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// One tunnel [default: every tunnel that is not down].
    name: Option<TunnelName>,
    /// Print JSON (an array of tunnel status objects).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, socket: PathBuf) -> anyhow::Result<()> {
    let daemon = client::connect(&socket).await?;
    let request = Request::Status {
        name: args.name.clone(),
    };
    let tunnels = match client::request(&daemon, request, "get the status").await? {
        Response::Status { tunnels } => tunnels,
        other => return Err(client::unexpected(&other)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&tunnels)?);
    } else if tunnels.is_empty() {
        println!("no tunnel is up");
    } else {
        print!("{}", render(&tunnels, now_unix_secs()));
    }
    Ok(())
}

fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Human-readable status, `now` in seconds since the epoch.
fn render(tunnels: &[TunnelStatus], now: u64) -> String {
    let mut out = String::new();
    for (i, t) in tunnels.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let kind = match t.kind {
            TunnelKind::System => "system",
            TunnelKind::User => "user",
        };
        let _ = writeln!(out, "tunnel: {} ({kind})", t.name);
        let state = match &t.state {
            TunnelState::Connected { since_unix_secs } => format!(
                "connected (for {})",
                duration(now.saturating_sub(*since_unix_secs))
            ),
            other => other.to_string(),
        };
        let _ = writeln!(out, "  state: {state}");
        if let Some(interface) = &t.interface {
            let _ = writeln!(out, "  interface: {interface}");
        }
        if let Some(health) = &t.health {
            let _ = writeln!(out, "  health: {health}");
        }
        let kill_switch = match t.options.kill_switch {
            KillSwitch::On => "on",
            KillSwitch::Off => "off",
            KillSwitch::Auto => "auto",
        };
        let _ = writeln!(
            out,
            "  kill switch: {kill_switch}{}",
            if t.options.allow_lan {
                ", LAN allowed"
            } else {
                ""
            }
        );
        for peer in &t.peers {
            let _ = writeln!(out, "\n  peer: {}", peer.public_key);
            if let Some(endpoint) = peer.endpoint {
                let _ = writeln!(out, "    endpoint: {endpoint}");
            }
            let allowed: Vec<String> = peer.allowed_ips.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "    allowed ips: {}",
                if allowed.is_empty() {
                    "(none)".to_owned()
                } else {
                    allowed.join(", ")
                }
            );
            let handshake = match peer.last_handshake_unix_secs {
                Some(at) => format!("{} ago", duration(now.saturating_sub(at))),
                None => "never".to_owned(),
            };
            let _ = writeln!(out, "    latest handshake: {handshake}");
            let _ = writeln!(
                out,
                "    transfer: {} received, {} sent",
                bytes(peer.rx_bytes),
                bytes(peer.tx_bytes)
            );
        }
    }
    out
}

/// `75` → `1 min 15 s`.
fn duration(secs: u64) -> String {
    match secs {
        0..=59 => format!("{secs} s"),
        60..=3599 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

/// `1536` → `1.50 KiB`, as `wg show` prints transfer.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::ipc::{Health, PeerStatus, TunnelOptions};

    #[test]
    fn status_reads_like_wg_show() {
        let status = TunnelStatus {
            name: TunnelName::new("office").unwrap(),
            kind: TunnelKind::System,
            state: TunnelState::Connected {
                since_unix_secs: 1000,
            },
            interface: Some("office".into()),
            options: TunnelOptions::default(),
            peers: vec![PeerStatus {
                public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
                    .parse()
                    .unwrap(),
                endpoint: Some("198.18.0.2:51820".parse().unwrap()),
                allowed_ips: vec!["198.19.0.2/32".parse().unwrap()],
                last_handshake_unix_secs: Some(1070),
                rx_bytes: 1536,
                tx_bytes: 100,
            }],
            health: Some(Health::Healthy),
        };
        let text = render(&[status], 1075);
        assert!(text.contains("tunnel: office (system)\n"), "{text}");
        assert!(text.contains("state: connected (for 1 min 15 s)"), "{text}");
        assert!(text.contains("health: healthy"), "{text}");
        assert!(text.contains("latest handshake: 5 s ago"), "{text}");
        assert!(
            text.contains("transfer: 1.50 KiB received, 100 B sent"),
            "{text}"
        );
        assert_eq!(duration(7300), "2 h 1 min");
    }
}
