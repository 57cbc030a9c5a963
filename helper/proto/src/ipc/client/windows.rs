//! The helper's named pipe on Windows: `\\.\pipe\warren-helper`, whose DACL admits SYSTEM,
//! Administrators and the local group `Warren Users`.

use super::Transport;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::net::windows::named_pipe::{ClientOptions, NamedPipeClient};

/// `ERROR_PIPE_BUSY`: every instance of the pipe is taken; the server is about to create more.
const ERROR_PIPE_BUSY: i32 = 231;
/// How often, and how long apart, to retry a busy pipe.
const BUSY_RETRIES: u32 = 40;
const BUSY_RETRY_DELAY: Duration = Duration::from_millis(50);

pub(super) struct Os;

impl Transport for Os {
    type Stream = NamedPipeClient;

    fn default_socket_path() -> PathBuf {
        PathBuf::from(r"\\.\pipe\warren-helper")
    }

    async fn open(path: &Path) -> io::Result<NamedPipeClient> {
        let mut retries = 0;
        loop {
            match ClientOptions::new().open(path) {
                Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY) && retries < BUSY_RETRIES => {
                    retries += 1;
                    tokio::time::sleep(BUSY_RETRY_DELAY).await;
                }
                result => return result,
            }
        }
    }

    const START_HINT: &'static str =
        "start the `warren-helper` service (`sc.exe start warren-helper` as an administrator)";

    const ACCESS_HINT: &'static str =
        "ask an administrator to add you to the local group `Warren Users`, then sign in again";
}
