//! `warren-helper import FILE [--name NAME] [--replace]`: install a wg-quick file as a system
//! tunnel. The file is parsed here (errors name its line) and sent to the daemon, which writes
//! `<tunnels dir>/<name>.conf` with mode 0600. Root only.
//!
//! To bring it up at every start of the daemon, create the flag file `<name>.autostart` next to
//! it (`touch /etc/warren/tunnels/<name>.autostart`); remove the file to stop that.

use super::client;
use anyhow::Context as _;
use std::path::PathBuf;
use warren_proto::ipc::{Request, TunnelName};

/// `import`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// The wg-quick configuration file.
    file: PathBuf,
    /// The tunnel's name [default: the file name without `.conf`].
    #[arg(long)]
    name: Option<TunnelName>,
    /// Overwrite a system tunnel of that name (it must be down).
    #[arg(long)]
    replace: bool,
}

pub async fn run(args: Args, socket: PathBuf) -> anyhow::Result<()> {
    let name = match args.name {
        Some(name) => name,
        None => TunnelName::from_conf_path(&args.file).with_context(|| {
            format!(
                "cannot name a tunnel after {}; pass --name",
                args.file.display()
            )
        })?,
    };
    let config = warren_proto::config::parse_file(&args.file)?;
    let daemon = client::connect(&socket).await?;
    client::request(
        &daemon,
        Request::ImportSystemTunnel {
            name: name.clone(),
            config,
            replace: args.replace,
        },
        &format!("install system tunnel '{name}'"),
    )
    .await?;
    println!("{name}: installed; bring it up with `warren-helper up {name}`");
    Ok(())
}
