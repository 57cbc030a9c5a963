//! `warren-helper remove NAME`: delete a system tunnel (root only; it must be down).

use super::client;
use std::path::PathBuf;
use warren_proto::ipc::{Request, TunnelName};

/// `remove`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The system tunnel.
    name: TunnelName,
}

pub async fn run(args: Args, socket: PathBuf) -> anyhow::Result<()> {
    let name = args.name;
    let request = Request::RemoveSystemTunnel { name: name.clone() };
    let what = format!("remove system tunnel '{name}'");
    client::act_on(&socket, &name, request, &what, "removed").await
}
