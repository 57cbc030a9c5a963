//! Platforms with neither Unix sockets nor named pipes: connecting always fails with
//! `Unsupported`.

use super::Transport;
use std::io;
use std::path::{Path, PathBuf};
use tokio::io::DuplexStream;

pub(super) struct Os;

impl Transport for Os {
    type Stream = DuplexStream;

    fn default_socket_path() -> PathBuf {
        PathBuf::from("warren-helper.sock")
    }

    async fn open(_path: &Path) -> io::Result<DuplexStream> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the Warren helper is not available on this platform",
        ))
    }

    const START_HINT: &'static str = "the Warren helper is not available on this platform";

    const ACCESS_HINT: &'static str = "the Warren helper is not available on this platform";
}
