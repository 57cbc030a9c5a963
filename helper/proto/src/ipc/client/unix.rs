//! The helper's socket on Unix: a stream socket at `/run/warren/helper.sock` (Linux) or
//! `/var/run/warren/helper.sock` (macOS and other Unixes), mode `0660 root:warren`.

use super::Transport;
use std::io;
use std::path::{Path, PathBuf};
use tokio::net::UnixStream;

pub(super) struct Os;

impl Transport for Os {
    type Stream = UnixStream;

    fn default_socket_path() -> PathBuf {
        if cfg!(target_os = "linux") {
            PathBuf::from("/run/warren/helper.sock")
        } else {
            PathBuf::from("/var/run/warren/helper.sock")
        }
    }

    async fn open(path: &Path) -> io::Result<UnixStream> {
        UnixStream::connect(path).await
    }

    const START_HINT: &'static str = if cfg!(target_os = "macos") {
        "start it with `sudo launchctl kickstart -k system/net.warren.helper`"
    } else {
        "start it with `systemctl start warren-helper`"
    };

    const ACCESS_HINT: &'static str = if cfg!(target_os = "macos") {
        "add yourself to group `warren` \
         (`sudo dseditgroup -o edit -a \"$USER\" -t user warren`) and log in again"
    } else {
        "add yourself to group `warren` (`sudo usermod -aG warren \"$USER\"`) and log in again"
    };
}

#[cfg(test)]
mod tests {
    use super::super::super::codec::HelperCodec;
    use super::super::super::messages::{HelperMessage, Request, Response};
    use super::super::{connect, ClientError};
    use futures_util::{SinkExt, StreamExt};
    use std::path::PathBuf;
    use tokio::net::UnixListener;
    use tokio_util::codec::Framed;

    /// A fresh directory for one test's socket, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("warren-proto-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn no_socket_means_the_helper_is_not_running() {
        let dir = TempDir::new("missing");
        let error = connect(dir.0.join("helper.sock"), "test")
            .await
            .unwrap_err();
        assert!(matches!(error, ClientError::NotRunning { .. }), "{error}");
        assert!(error.to_string().contains("start it with"), "{error}");
    }

    #[tokio::test]
    async fn a_stale_socket_means_the_helper_is_not_running() {
        let dir = TempDir::new("stale");
        let path = dir.0.join("helper.sock");
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let error = connect(&path, "test").await.unwrap_err();
        assert!(matches!(error, ClientError::NotRunning { .. }), "{error}");
    }

    #[tokio::test]
    async fn a_request_over_a_real_socket() {
        let dir = TempDir::new("real");
        let path = dir.0.join("helper.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let helper = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut frames = Framed::new(stream, HelperCodec::new());
            let _hello = frames.next().await.unwrap().unwrap();
            frames.send(HelperMessage::hello("0.1.0")).await.unwrap();
            while let Some(Ok(message)) = frames.next().await {
                if let super::super::ClientMessage::Request { id, .. } = message {
                    let result = Ok(Response::Tunnels { tunnels: vec![] });
                    frames
                        .send(HelperMessage::Response { id, result })
                        .await
                        .unwrap();
                }
            }
            // The client closed the connection.
        });
        let client = connect(&path, "test").await.unwrap();
        assert_eq!(
            client.request(Request::ListTunnels).await,
            Ok(Response::Tunnels { tunnels: vec![] })
        );
        drop(client);
        tokio::time::timeout(std::time::Duration::from_secs(5), helper)
            .await
            .unwrap()
            .unwrap();
    }
}
