//! `warren-helper list [--json]`: every tunnel the daemon knows, one per line: name, kind, state,
//! kill switch, LAN access. Tab-separated when stdout is not a terminal, for scripts; `--json`
//! prints the daemon's `TunnelSummary` list as a JSON array, as `status --json` prints its
//! `TunnelStatus` list (the README documents both).

use super::client;
use std::io::IsTerminal as _;
use std::path::PathBuf;
use warren_proto::ipc::{KillSwitch, Request, Response, TunnelKind, TunnelSummary};

/// `list`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Print JSON (an array of tunnel summary objects).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args, socket: PathBuf) -> anyhow::Result<()> {
    let daemon = client::connect(&socket).await?;
    let tunnels = match client::request(&daemon, Request::ListTunnels, "list the tunnels").await? {
        Response::Tunnels { tunnels } => tunnels,
        other => return Err(client::unexpected(&other)),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&tunnels)?);
    } else {
        print!("{}", render(&tunnels, std::io::stdout().is_terminal()));
    }
    Ok(())
}

fn render(tunnels: &[TunnelSummary], table: bool) -> String {
    let rows: Vec<[String; 5]> = tunnels
        .iter()
        .map(|t| {
            [
                t.name.to_string(),
                match t.kind {
                    TunnelKind::System => "system".into(),
                    TunnelKind::User => "user".into(),
                },
                t.state.to_string(),
                match t.options.kill_switch {
                    KillSwitch::On => "on".into(),
                    KillSwitch::Off => "off".into(),
                    KillSwitch::Auto => "auto".into(),
                },
                if t.options.allow_lan { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    let mut out = String::new();
    if !table {
        for row in rows {
            out.push_str(&row.join("\t"));
            out.push('\n');
        }
        return out;
    }
    let header = ["NAME", "KIND", "STATE", "KILL SWITCH", "ALLOW LAN"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if rows.is_empty() {
        out.push_str("(no tunnels: import one with `warren-helper import FILE`)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::ipc::{TunnelName, TunnelOptions, TunnelState};

    #[test]
    fn a_list_is_a_table_or_tab_separated() {
        let tunnels = vec![TunnelSummary {
            name: TunnelName::new("office").unwrap(),
            kind: TunnelKind::System,
            state: TunnelState::Connecting,
            options: TunnelOptions::default(),
        }];
        assert_eq!(
            render(&tunnels, false),
            "office\tsystem\tconnecting\tauto\tno\n"
        );
        let table = render(&tunnels, true);
        assert!(table.starts_with("NAME    KIND    STATE"), "{table}");
        assert!(
            table.contains("office  system  connecting  auto"),
            "{table}"
        );
    }

    /// The schema the README documents for `list --json`: scripts depend on these names.
    #[test]
    fn list_json_has_the_documented_fields() {
        let tunnels = vec![
            TunnelSummary {
                name: TunnelName::new("office").unwrap(),
                kind: TunnelKind::System,
                state: TunnelState::Connected {
                    since_unix_secs: 1700,
                },
                options: TunnelOptions {
                    kill_switch: KillSwitch::On,
                    allow_lan: true,
                },
            },
            TunnelSummary {
                name: TunnelName::new("travel").unwrap(),
                kind: TunnelKind::User,
                state: TunnelState::Error {
                    reason: "no route".into(),
                },
                options: TunnelOptions::default(),
            },
        ];
        let json: serde_json::Value =
            serde_json::from_str(&serde_json::to_string_pretty(&tunnels).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {
                    "name": "office",
                    "kind": "system",
                    "state": { "kind": "connected", "since_unix_secs": 1700 },
                    "options": { "kill_switch": "on", "allow_lan": true }
                },
                {
                    "name": "travel",
                    "kind": "user",
                    "state": { "kind": "error", "reason": "no route" },
                    "options": { "kill_switch": "auto", "allow_lan": false }
                }
            ])
        );
    }
}
