//! The CLI's side of the IPC connection: connect to the daemon and send one request, with errors
//! that keep their type (so [`super::exit_code`] can tell "not running" from "not allowed").

use anyhow::Context as _;
use std::path::Path;
use warren_proto::ipc::{Client, Request, Response, TunnelName};

/// How the CLI introduces itself in the daemon's log.
pub fn client_name() -> String {
    format!("warren-helper {} (cli)", env!("CARGO_PKG_VERSION"))
}

/// Connects to the daemon at `socket`.
pub async fn connect(socket: &Path) -> anyhow::Result<Client> {
    Ok(warren_proto::ipc::connect(socket, &client_name()).await?)
}

/// Sends `request` and waits for its answer; `what` completes "failed to …".
pub async fn request(client: &Client, request: Request, what: &str) -> anyhow::Result<Response> {
    client
        .request(request)
        .await
        .with_context(|| format!("failed to {what}"))
}

/// One request about tunnel `name` whose answer is only success (`down`, `remove`): connects,
/// sends it, and prints `NAME: DONE`. `what` completes "failed to …".
pub async fn act_on(
    socket: &Path,
    name: &TunnelName,
    request: Request,
    what: &str,
    done: &str,
) -> anyhow::Result<()> {
    let daemon = connect(socket).await?;
    self::request(&daemon, request, what).await?;
    println!("{name}: {done}");
    Ok(())
}

/// The answer was not the kind the request calls for (a daemon of another release?).
pub fn unexpected(response: &Response) -> anyhow::Error {
    anyhow::anyhow!("the daemon answered with an unexpected response: {response:?}")
}
