//! `warren-helper down NAME`: take a tunnel down through the daemon. Returns once it is down and
//! every change it made is undone.

use super::client;
use std::path::PathBuf;
use warren_proto::ipc::{Request, TunnelName};

/// `down`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The tunnel (system or user).
    name: TunnelName,
}

pub async fn run(args: Args, socket: PathBuf) -> anyhow::Result<()> {
    let name = args.name;
    let request = Request::Disconnect { name: name.clone() };
    let what = format!("take '{name}' down");
    client::act_on(&socket, &name, request, &what, "down").await
}
