//! The IPC client the GUI and the CLI use to talk to the helper.
//!
//! [`connect`] opens the helper's socket ([`default_socket_path`]: a Unix socket, or a named pipe
//! on Windows), exchanges `Hello`s and checks the protocol version; [`Client::handshake`] does
//! the same over any byte stream (tests use `tokio::io::duplex`).
//!
//! After the hello the connection is driven by two tasks:
//! - the *writer* takes messages from a channel and writes them, so a caller that gives up on a
//!   request (drops its future) can never leave half a frame on the wire;
//! - the *reader* demultiplexes what the helper sends: a response goes to the caller waiting on
//!   its `id` (a map of `id` → oneshot sender), an event to every receiver from
//!   [`Client::events`] (a broadcast channel: a slow receiver loses the oldest events, never
//!   blocks responses).
//!
//! When the connection ends (the helper closes it, sends `Closing`, or a frame is bad), every
//! request in flight and every later one fails with [`ErrorKind::Disconnected`] (or the helper's
//! `Closing` reason) instead of hanging, and event receivers see `RecvError::Closed`. Dropping
//! the [`Client`] closes the connection.
//!
//! Per-OS transport lives in one private module per OS (`unix.rs`, `windows.rs`, `other.rs`)
//! behind the private `Transport` trait; nothing here is `#[cfg]`-dependent in its signature.

#[cfg(not(any(unix, windows)))]
mod other;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(not(any(unix, windows)))]
use other::Os;
#[cfg(unix)]
use unix::Os;
#[cfg(windows)]
use windows::Os;

use super::codec::{ClientCodec, FrameError};
use super::messages::{
    ClientMessage, ErrorKind, Event, HelperMessage, IpcError, Request, Response, PROTOCOL_VERSION,
};
use futures_util::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};

/// Environment variable that overrides [`default_socket_path`] (tests, side-by-side installs).
pub const SOCKET_PATH_ENV: &str = "WARREN_HELPER_SOCKET";

/// How long [`connect`] waits for the helper's `Hello`.
pub const HELLO_TIMEOUT_SECS: u64 = 10;

/// Events buffered per [`Client::events`] receiver before the oldest are dropped.
pub const EVENT_BUFFER: usize = 256;

/// Requests queued for the writer task before [`Client::request`] waits.
const OUTGOING_BUFFER: usize = 64;

/// What the per-OS modules provide; each implements it for its `Os`, which keeps them in step.
trait Transport {
    /// The connected stream.
    type Stream: AsyncRead + AsyncWrite + Send + 'static;
    /// Where the helper listens on this OS.
    fn default_socket_path() -> PathBuf;
    /// Connects to the helper at `path`.
    fn open(path: &Path) -> impl Future<Output = io::Result<Self::Stream>> + Send;
    /// How to start the helper, completing "the helper is not running: …".
    const START_HINT: &'static str;
    /// How to get access, completing "permission denied …: …".
    const ACCESS_HINT: &'static str;
}

/// Where the helper listens: `$WARREN_HELPER_SOCKET` if set, else `/run/warren/helper.sock` on
/// Linux, `/var/run/warren/helper.sock` on macOS (and other Unixes), `\\.\pipe\warren-helper` on
/// Windows.
pub fn default_socket_path() -> PathBuf {
    match std::env::var_os(SOCKET_PATH_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => Os::default_socket_path(),
    }
}

/// Why [`connect`] or [`Client::handshake`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the path (no socket file, or a stale one).
    #[error("the helper is not running (nothing listens on {}): {hint}", path.display())]
    NotRunning {
        /// The socket path.
        path: PathBuf,
        /// What to do, per OS.
        hint: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The socket exists but this user may not open it.
    #[error("permission denied on {}: {hint}", path.display())]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
        /// What to do, per OS.
        hint: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Connecting failed otherwise.
    #[error("failed to connect to the helper at {}: {source}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The helper speaks another protocol version.
    #[error("the helper speaks protocol {helper}, this client speaks {client}: {}", version_advice(*.helper, *.client, .helper_version))]
    VersionMismatch {
        /// The helper's protocol version.
        helper: u32,
        /// Ours ([`PROTOCOL_VERSION`]).
        client: u32,
        /// The helper's release.
        helper_version: String,
    },
    /// The helper answered the hello with `Closing`.
    #[error("the helper refused the connection: {0}")]
    Refused(#[source] IpcError),
    /// The helper answered the hello with something other than `Hello`.
    #[error("the helper answered the hello with an unexpected message")]
    UnexpectedMessage,
    /// The helper closed the connection before answering the hello.
    #[error("the helper closed the connection before answering the hello")]
    ClosedDuringHello,
    /// The helper did not answer the hello in time.
    #[error("the helper did not answer the hello within {HELLO_TIMEOUT_SECS} s")]
    HelloTimeout,
    /// Writing our hello or reading the helper's failed.
    #[error("failed to exchange hellos with the helper: {0}")]
    Hello(#[source] FrameError),
}

fn version_advice(helper: u32, client: u32, helper_version: &str) -> String {
    if helper < client {
        "update the Warren helper (warren-helper) to this client's release and restart it".into()
    } else {
        format!("update this client to the helper's release ({helper_version})")
    }
}

impl ClientError {
    /// Turns an error from opening the socket into advice: not running, or not allowed.
    fn from_open(path: &Path, source: io::Error) -> Self {
        let path = path.to_path_buf();
        match source.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => ClientError::NotRunning {
                path,
                hint: Os::START_HINT,
                source,
            },
            io::ErrorKind::PermissionDenied => ClientError::PermissionDenied {
                path,
                hint: Os::ACCESS_HINT,
                source,
            },
            _ => ClientError::Connect { path, source },
        }
    }
}

/// Connects to the helper at `path` (usually [`default_socket_path`]) and exchanges hellos.
/// `client` names this program in the helper's logs, e.g. `warren-cli 0.1.0`.
pub async fn connect(path: impl AsRef<Path>, client: &str) -> Result<Client, ClientError> {
    let path = path.as_ref();
    let stream = Os::open(path)
        .await
        .map_err(|e| ClientError::from_open(path, e))?;
    Client::handshake(stream, client).await
}

type Reply = oneshot::Sender<Result<Response, IpcError>>;

/// The requests waiting for an answer, or why no more will come.
enum Pending {
    Open(HashMap<u64, Reply>),
    Closed(IpcError),
}

/// State shared by the [`Client`] and its two tasks.
struct Shared {
    pending: Mutex<Pending>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a request, or says why the connection cannot take it.
    fn insert(&self, id: u64, reply: Reply) -> Result<(), IpcError> {
        match &mut *self.lock() {
            Pending::Open(map) => {
                map.insert(id, reply);
                Ok(())
            }
            Pending::Closed(reason) => Err(reason.clone()),
        }
    }

    fn take(&self, id: u64) -> Option<Reply> {
        match &mut *self.lock() {
            Pending::Open(map) => map.remove(&id),
            Pending::Closed(_) => None,
        }
    }

    /// Ends the connection: every waiting request gets `reason`, and so will every later one.
    /// The first reason wins.
    fn close(&self, reason: IpcError) {
        let previous = {
            let mut pending = self.lock();
            if matches!(*pending, Pending::Closed(_)) {
                return;
            }
            std::mem::replace(&mut *pending, Pending::Closed(reason.clone()))
        };
        if let Pending::Open(map) = previous {
            for (_, reply) in map {
                let _ = reply.send(Err(reason.clone()));
            }
        }
    }

    fn closed_reason(&self) -> Option<IpcError> {
        match &*self.lock() {
            Pending::Open(_) => None,
            Pending::Closed(reason) => Some(reason.clone()),
        }
    }
}

/// Removes a request from the pending map if its caller gives up before the answer.
struct PendingGuard<'a> {
    shared: &'a Shared,
    id: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        drop(self.shared.take(self.id));
    }
}

/// A connection to the helper, after a successful hello. Cheap to share behind an `Arc`:
/// every method takes `&self`, and requests may run concurrently.
pub struct Client {
    outgoing: mpsc::Sender<ClientMessage>,
    shared: Arc<Shared>,
    events: broadcast::Receiver<Event>,
    next_id: AtomicU64,
    helper_version: String,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("helper_version", &self.helper_version)
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Exchanges hellos over an already connected `stream` and starts the connection's tasks
    /// (so it must run inside a tokio runtime). `client` names this program in the helper's logs.
    pub async fn handshake<S>(stream: S, client: &str) -> Result<Self, ClientError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (read, write) = tokio::io::split(stream);
        let mut incoming = FramedRead::new(read, ClientCodec::new());
        let mut outgoing = FramedWrite::new(write, ClientCodec::new());

        let hello = async {
            if let Err(e) = outgoing.send(ClientMessage::hello(client)).await {
                // A refusing helper may have said why and closed before the hello was written:
                // its reason, when it can still be read, is the error that helps.
                return match incoming.next().await {
                    Some(Ok(HelperMessage::Closing { reason })) => {
                        Err(ClientError::Refused(reason))
                    }
                    _ => Err(ClientError::Hello(e)),
                };
            }
            match incoming.next().await {
                Some(Ok(HelperMessage::Hello {
                    version,
                    helper_version,
                })) if version == PROTOCOL_VERSION => Ok(helper_version),
                Some(Ok(HelperMessage::Hello {
                    version,
                    helper_version,
                })) => Err(ClientError::VersionMismatch {
                    helper: version,
                    client: PROTOCOL_VERSION,
                    helper_version,
                }),
                Some(Ok(HelperMessage::Closing { reason })) => Err(ClientError::Refused(reason)),
                Some(Ok(_)) => Err(ClientError::UnexpectedMessage),
                Some(Err(e)) => Err(ClientError::Hello(e)),
                None => Err(ClientError::ClosedDuringHello),
            }
        };
        let helper_version = tokio::time::timeout(Duration::from_secs(HELLO_TIMEOUT_SECS), hello)
            .await
            .map_err(|_| ClientError::HelloTimeout)??;

        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::Open(HashMap::new())),
        });
        let (events_tx, events) = broadcast::channel(EVENT_BUFFER);
        let (outgoing_tx, outgoing_rx) = mpsc::channel(OUTGOING_BUFFER);
        tokio::spawn(write_loop(outgoing, outgoing_rx, Arc::clone(&shared)));
        let reader = tokio::spawn(read_loop(incoming, events_tx, Arc::clone(&shared)));
        Ok(Self {
            outgoing: outgoing_tx,
            shared,
            events,
            next_id: AtomicU64::new(1),
            helper_version,
            reader,
        })
    }

    /// Sends `request` and waits for its answer. Other requests may be in flight meanwhile, and
    /// events keep flowing to [`events`](Self::events) receivers.
    ///
    /// Fails with [`ErrorKind::InvalidConfig`] without sending anything if the request's
    /// configuration would not survive the trip ([`Request::validate`]), and with
    /// [`ErrorKind::Disconnected`] (or the helper's `Closing` reason) if the connection is or
    /// gets closed before the answer.
    pub async fn request(&self, request: Request) -> Result<Response, IpcError> {
        request.validate()?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.shared.insert(id, reply)?;
        let _guard = PendingGuard {
            shared: &self.shared,
            id,
        };
        if self
            .outgoing
            .send(ClientMessage::Request { id, request })
            .await
            .is_err()
        {
            return Err(self.lost());
        }
        match answer.await {
            Ok(result) => result,
            Err(_) => Err(self.lost()),
        }
    }

    /// A new receiver of the helper's events, starting now. Subscribe to topics with
    /// [`Request::Subscribe`] *after* creating it, or the first events may be missed. A receiver
    /// that falls more than [`EVENT_BUFFER`] events behind gets `RecvError::Lagged` (ask for
    /// [`Request::Status`] to resynchronise); when the connection ends it gets
    /// `RecvError::Closed`.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.resubscribe()
    }

    /// The helper's release, from its `Hello`.
    pub fn helper_version(&self) -> &str {
        &self.helper_version
    }

    /// True once the connection has ended; every request then fails at once.
    pub fn is_closed(&self) -> bool {
        self.shared.closed_reason().is_some()
    }

    fn lost(&self) -> IpcError {
        self.shared
            .closed_reason()
            .unwrap_or_else(|| IpcError::disconnected("the connection to the helper was closed"))
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // The writer ends by itself once `outgoing` is dropped, closing our half.
        self.reader.abort();
    }
}

/// Writes queued messages until the client is dropped or the stream fails.
async fn write_loop<W>(
    mut sink: FramedWrite<W, ClientCodec>,
    mut queue: mpsc::Receiver<ClientMessage>,
    shared: Arc<Shared>,
) where
    W: AsyncWrite + Unpin,
{
    while let Some(message) = queue.recv().await {
        let id = match &message {
            ClientMessage::Request { id, .. } => Some(*id),
            ClientMessage::Hello { .. } => None,
        };
        match sink.send(message).await {
            Ok(()) => {}
            Err(e) if !e.is_fatal() => {
                // Nothing was written: only this request fails.
                if let Some(reply) = id.and_then(|id| shared.take(id)) {
                    let _ = reply.send(Err(IpcError::internal(format!(
                        "failed to send the request: {e}"
                    ))));
                }
            }
            Err(e) => {
                shared.close(IpcError::disconnected(format!(
                    "lost the connection to the helper: {e}"
                )));
                return;
            }
        }
    }
    let _ = sink.close().await;
}

/// Routes what the helper sends until the connection ends, then fails what is still waiting.
async fn read_loop<R>(
    mut frames: FramedRead<R, ClientCodec>,
    events: broadcast::Sender<Event>,
    shared: Arc<Shared>,
) where
    R: AsyncRead + Unpin,
{
    let mut stopping = false;
    let reason = loop {
        match frames.next().await {
            Some(Ok(HelperMessage::Response { id, result })) => {
                if let Some(reply) = shared.take(id) {
                    let _ = reply.send(result);
                }
            }
            Some(Ok(HelperMessage::Event(event))) => {
                stopping |= event == Event::HelperStopping;
                // No receiver is not an error: nobody listens for events.
                let _ = events.send(event);
            }
            Some(Ok(HelperMessage::Closing { reason })) => break reason,
            Some(Ok(HelperMessage::Hello { .. })) => {
                break IpcError::new(
                    ErrorKind::Disconnected,
                    "the helper broke the protocol (a second Hello); disconnected",
                )
            }
            Some(Err(e)) => {
                break IpcError::disconnected(format!("lost the connection to the helper: {e}"))
            }
            None if stopping => break IpcError::disconnected("the helper stopped"),
            None => break IpcError::disconnected("the helper closed the connection"),
        }
    };
    shared.close(reason);
}

#[cfg(test)]
mod tests {
    use super::super::codec::HelperCodec;
    use super::super::messages::tests::{config, log_line, name, status};
    use super::super::messages::{EventTopic, TunnelOptions, TunnelState};
    use super::*;
    use tokio::io::DuplexStream;
    use tokio_util::codec::Framed;

    type FakeHelper = Framed<DuplexStream, HelperCodec>;

    /// A client connected to a fake helper that answers the hello with `answer`.
    async fn connect_to_fake(
        answer: Option<HelperMessage>,
    ) -> (Result<Client, ClientError>, FakeHelper) {
        let (client_end, helper_end) = tokio::io::duplex(64 * 1024);
        let mut helper = Framed::new(helper_end, HelperCodec::new());
        let (client, ()) = tokio::join!(Client::handshake(client_end, "test-client"), async {
            let hello = helper.next().await.unwrap().unwrap();
            assert_eq!(hello, ClientMessage::hello("test-client"));
            if let Some(answer) = answer {
                helper.send(answer).await.unwrap();
            }
        });
        (client, helper)
    }

    async fn pair() -> (Client, FakeHelper) {
        let (client, helper) = connect_to_fake(Some(HelperMessage::hello("9.9.9"))).await;
        let client = client.unwrap();
        assert_eq!(client.helper_version(), "9.9.9");
        (client, helper)
    }

    /// The next request the fake helper receives.
    async fn next_request(helper: &mut FakeHelper) -> (u64, Request) {
        match helper.next().await.unwrap().unwrap() {
            ClientMessage::Request { id, request } => (id, request),
            other => panic!("expected a request, got {other:?}"),
        }
    }

    fn within<F: Future>(f: F) -> tokio::time::Timeout<F> {
        tokio::time::timeout(Duration::from_secs(5), f)
    }

    #[tokio::test]
    async fn a_version_mismatch_says_which_side_to_update() {
        let newer = HelperMessage::Hello {
            version: PROTOCOL_VERSION + 1,
            helper_version: "2.0.0".into(),
        };
        let (client, _helper) = connect_to_fake(Some(newer)).await;
        let error = client.unwrap_err();
        assert!(matches!(error, ClientError::VersionMismatch { .. }));
        assert_eq!(
            error.to_string(),
            format!(
                "the helper speaks protocol {}, this client speaks {PROTOCOL_VERSION}: \
                 update this client to the helper's release (2.0.0)",
                PROTOCOL_VERSION + 1
            )
        );

        let older = HelperMessage::Hello {
            version: 0,
            helper_version: "0.0.1".into(),
        };
        let error = connect_to_fake(Some(older)).await.0.unwrap_err();
        assert!(
            error.to_string().contains("update the Warren helper"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_refusal_or_a_silent_close_during_hello_is_reported() {
        let closing = HelperMessage::Closing {
            reason: IpcError::not_authorized("uid 1001 is not in group warren"),
        };
        let error = connect_to_fake(Some(closing)).await.0.unwrap_err();
        assert_eq!(
            error.to_string(),
            "the helper refused the connection: uid 1001 is not in group warren"
        );

        let (client_end, helper_end) = tokio::io::duplex(1024);
        drop(helper_end);
        let error = Client::handshake(client_end, "x").await.unwrap_err();
        assert!(
            matches!(
                error,
                ClientError::ClosedDuringHello | ClientError::Hello(_)
            ),
            "{error}"
        );

        let error = connect_to_fake(Some(HelperMessage::Event(Event::HelperStopping)))
            .await
            .0
            .unwrap_err();
        assert!(matches!(error, ClientError::UnexpectedMessage), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_helper_that_never_answers_the_hello_times_out() {
        let (client, _helper) = connect_to_fake(None).await;
        assert!(matches!(client.unwrap_err(), ClientError::HelloTimeout));
    }

    #[tokio::test]
    async fn concurrent_requests_are_matched_by_id() {
        let (client, mut helper) = pair().await;
        let ask = |tunnel: &str| {
            client.request(Request::Status {
                name: Some(name(tunnel)),
            })
        };
        let answer = async {
            let mut received = Vec::new();
            for _ in 0..3 {
                received.push(next_request(&mut helper).await);
            }
            let ids: Vec<u64> = received.iter().map(|(id, _)| *id).collect();
            assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
            // Answer in reverse order, each with the status of the tunnel it asked about.
            for (id, request) in received.into_iter().rev() {
                let Request::Status { name: Some(tunnel) } = request else {
                    panic!("unexpected {request:?}");
                };
                let result = Ok(Response::Status {
                    tunnels: vec![status(tunnel.as_str())],
                });
                helper
                    .send(HelperMessage::Response { id, result })
                    .await
                    .unwrap();
            }
        };
        let (a, b, c, ()) = within(async { tokio::join!(ask("a"), ask("b"), ask("c"), answer) })
            .await
            .unwrap();
        for (result, tunnel) in [(a, "a"), (b, "b"), (c, "c")] {
            assert_eq!(
                result.unwrap(),
                Response::Status {
                    tunnels: vec![status(tunnel)]
                }
            );
        }
    }

    #[tokio::test]
    async fn events_interleave_with_responses() {
        let (client, mut helper) = pair().await;
        let mut events = client.events();
        let mut late_listener = client.events();
        let state = Event::TunnelState {
            name: name("wg0"),
            state: TunnelState::Connecting,
        };
        let stats = Event::LogLine(log_line());
        let helper_side = async {
            let (id, request) = next_request(&mut helper).await;
            assert_eq!(
                request,
                Request::Subscribe {
                    topics: vec![EventTopic::State]
                }
            );
            helper
                .send(HelperMessage::Event(state.clone()))
                .await
                .unwrap();
            helper
                .send(HelperMessage::Response {
                    id,
                    result: Ok(Response::Done),
                })
                .await
                .unwrap();
            helper
                .send(HelperMessage::Event(stats.clone()))
                .await
                .unwrap();
        };
        let subscribe = client.request(Request::Subscribe {
            topics: vec![EventTopic::State],
        });
        let (response, ()) = within(async { tokio::join!(subscribe, helper_side) })
            .await
            .unwrap();
        assert_eq!(response, Ok(Response::Done));
        assert_eq!(within(events.recv()).await.unwrap().unwrap(), state);
        assert_eq!(within(events.recv()).await.unwrap().unwrap(), stats);
        assert_eq!(within(late_listener.recv()).await.unwrap().unwrap(), state);

        // A second request still works after events.
        let (response, ()) = within(async {
            tokio::join!(client.request(Request::ListTunnels), async {
                let (id, _) = next_request(&mut helper).await;
                let error = Err(IpcError::not_found("nothing here"));
                helper
                    .send(HelperMessage::Response { id, result: error })
                    .await
                    .unwrap();
            })
        })
        .await
        .unwrap();
        assert_eq!(response, Err(IpcError::not_found("nothing here")));
    }

    #[tokio::test]
    async fn the_helper_closing_mid_request_fails_the_request_instead_of_hanging() {
        let (client, mut helper) = pair().await;
        let mut events = client.events();
        let (result, ()) = within(async {
            tokio::join!(client.request(Request::ListTunnels), async {
                let _ = next_request(&mut helper).await;
                helper
                    .send(HelperMessage::Event(Event::HelperStopping))
                    .await
                    .unwrap();
                // Drop the connection without answering.
                let _ = helper.close().await;
            })
        })
        .await
        .unwrap();
        let error = result.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Disconnected);
        assert_eq!(error.message, "the helper stopped");
        assert!(client.is_closed());

        // Later requests fail at once; event receivers see the end.
        let again = within(client.request(Request::ListTunnels)).await.unwrap();
        assert_eq!(again.unwrap_err().kind, ErrorKind::Disconnected);
        assert_eq!(
            within(events.recv()).await.unwrap(),
            Ok(Event::HelperStopping)
        );
        assert_eq!(
            within(events.recv()).await.unwrap(),
            Err(broadcast::error::RecvError::Closed)
        );
    }

    #[tokio::test]
    async fn a_closing_message_becomes_the_error_of_waiting_requests() {
        let (client, mut helper) = pair().await;
        let (result, ()) = within(async {
            tokio::join!(client.request(Request::ListTunnels), async {
                let _ = next_request(&mut helper).await;
                let reason = IpcError::invalid_request("too many requests");
                helper
                    .send(HelperMessage::Closing { reason })
                    .await
                    .unwrap();
            })
        })
        .await
        .unwrap();
        assert_eq!(result, Err(IpcError::invalid_request("too many requests")));
    }

    #[tokio::test]
    async fn a_garbage_frame_from_the_helper_disconnects() {
        let (client, helper) = pair().await;
        let mut raw = helper.into_inner();
        let (result, ()) = within(async {
            tokio::join!(client.request(Request::ListTunnels), async {
                use tokio::io::AsyncWriteExt;
                raw.write_all(&[0, 0, 0, 3, b'{', b'{', b'{'])
                    .await
                    .unwrap();
            })
        })
        .await
        .unwrap();
        let error = result.unwrap_err();
        assert_eq!(error.kind, ErrorKind::Disconnected);
        assert!(error.message.contains("malformed message"), "{error}");
    }

    #[tokio::test]
    async fn an_invalid_config_is_refused_before_sending() {
        let (client, mut helper) = pair().await;
        let mut bad = config();
        bad.interface.mtu = Some(10);
        let error = client
            .request(Request::ConnectUser {
                name: name("home"),
                config: bad,
                options: TunnelOptions::default(),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(error.kind, ErrorKind::InvalidConfig { line: Some(_), .. }),
            "{error:?}"
        );
        // Nothing reached the helper; the connection is fine.
        drop(client);
        assert!(within(helper.next()).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_connect_request_reaches_the_helper_intact() {
        let (client, mut helper) = pair().await;
        let request = Request::ConnectUser {
            name: name("home"),
            config: config(),
            options: TunnelOptions::default(),
        };
        let (result, ()) = within(async {
            tokio::join!(client.request(request.clone()), async {
                let (id, received) = next_request(&mut helper).await;
                assert_eq!(received, request);
                helper
                    .send(HelperMessage::Response {
                        id,
                        result: Ok(Response::Done),
                    })
                    .await
                    .unwrap();
            })
        })
        .await
        .unwrap();
        assert_eq!(result, Ok(Response::Done));
    }

    #[tokio::test]
    async fn a_request_abandoned_by_its_caller_leaves_nothing_behind() {
        let (client, mut helper) = pair().await;
        let abandoned = tokio::time::timeout(
            Duration::from_millis(50),
            client.request(Request::ListTunnels),
        )
        .await;
        assert!(abandoned.is_err());
        let (id, _) = next_request(&mut helper).await;
        assert!(client.shared.take(id).is_none(), "pending entry leaked");
        // The late answer is ignored and the connection keeps working.
        helper
            .send(HelperMessage::Response {
                id,
                result: Ok(Response::Done),
            })
            .await
            .unwrap();
        let (result, ()) = within(async {
            tokio::join!(client.request(Request::ListTunnels), async {
                let (id, _) = next_request(&mut helper).await;
                helper
                    .send(HelperMessage::Response {
                        id,
                        result: Ok(Response::Tunnels { tunnels: vec![] }),
                    })
                    .await
                    .unwrap();
            })
        })
        .await
        .unwrap();
        assert_eq!(result, Ok(Response::Tunnels { tunnels: vec![] }));
    }

    #[test]
    fn open_errors_become_advice() {
        let path = Path::new("/run/warren/helper.sock");
        let not_running = ClientError::from_open(path, io::ErrorKind::NotFound.into());
        assert!(matches!(not_running, ClientError::NotRunning { .. }));
        assert!(not_running.to_string().starts_with(
            "the helper is not running (nothing listens on /run/warren/helper.sock): "
        ));
        let refused = ClientError::from_open(path, io::ErrorKind::ConnectionRefused.into());
        assert!(matches!(refused, ClientError::NotRunning { .. }));
        let denied = ClientError::from_open(path, io::ErrorKind::PermissionDenied.into());
        assert!(
            denied
                .to_string()
                .starts_with("permission denied on /run/warren/helper.sock: "),
            "{denied}"
        );
        let other = ClientError::from_open(path, io::ErrorKind::TimedOut.into());
        assert!(matches!(other, ClientError::Connect { .. }));
    }

    #[test]
    fn the_socket_path_can_be_overridden() {
        // Only this test touches the variable.
        std::env::remove_var(SOCKET_PATH_ENV);
        assert_eq!(default_socket_path(), Os::default_socket_path());
        std::env::set_var(SOCKET_PATH_ENV, "/tmp/warren-test.sock");
        assert_eq!(
            default_socket_path(),
            PathBuf::from("/tmp/warren-test.sock")
        );
        std::env::remove_var(SOCKET_PATH_ENV);
    }
}
