//! The IPC server's per-connection protocol, over any byte stream (the per-OS listeners accept
//! and authorise, then hand each admitted connection to [`serve`]).
//!
//! A connection, in order:
//! 1. the client's `Hello` must arrive within [`HELLO_TIMEOUT_SECS`]; the helper answers with its
//!    own `Hello` — and closes the connection after it if the versions differ (the client, which
//!    reads the frozen `Hello`, reports the mismatch);
//! 2. requests are read one frame at a time; each is translated into a manager
//!    [`Command`](super::manager::Command) (or answered here: subscriptions and logs) and
//!    answered in a task of its own, so a slow `connect` does not hold up a `status`; at most
//!    [`MAX_IN_FLIGHT`] per connection;
//! 3. events the client subscribed to (and `HelperStopping`, always) are forwarded as they come;
//!    a client that does not read them loses events rather than slowing anyone down.
//!
//! Robustness: a frame that has begun must be complete within [`FRAME_TIMEOUT_SECS`] (a slow-drip
//! sender cannot hold a connection half-read forever), frames are at most 1 MiB (checked on the
//! length prefix, before anything is buffered), and a malformed, oversized, truncated or slow frame
//! closes *that* connection — with a `Closing` message saying why when possible — and nothing else.
//! A client that stops reading is dropped when a write has waited [`WRITE_TIMEOUT_SECS`].
//! An idle connection (no partial frame) may stay open indefinitely: the GUI keeps one.

use super::manager::{Caller, Command, Source};
use crate::logging;
use std::collections::BTreeSet;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tokio::time::Instant;
use warren_proto::ipc::codec::{BytesMut, Decoder as _, Encoder as _};
use warren_proto::ipc::{
    ClientMessage, Event, EventTopic, FrameError, HelperCodec, HelperMessage, IpcError, LogLine,
    Request, Response, PROTOCOL_VERSION,
};

/// How long a new connection has to send its `Hello`.
pub const HELLO_TIMEOUT_SECS: u64 = 10;

/// How long a frame may take to arrive once its first byte has.
pub const FRAME_TIMEOUT_SECS: u64 = 10;

/// How long one write to a client may wait.
pub const WRITE_TIMEOUT_SECS: u64 = 10;

/// Requests of one connection answered concurrently.
pub const MAX_IN_FLIGHT: usize = 16;

/// Messages queued for one client's writer.
const OUTBOX: usize = 256;

/// What every connection shares.
pub struct Shared {
    /// The manager's command queue.
    pub commands: mpsc::Sender<Command>,
    /// The manager's events.
    pub events: broadcast::Sender<Event>,
    /// The helper's release, for `Hello`.
    pub helper_version: String,
    /// How long a frame may take once begun ([`FRAME_TIMEOUT_SECS`]; shorter in tests).
    pub frame_timeout: Duration,
}

/// Why reading a frame stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The frame itself is bad (oversized, malformed) or the stream failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame began but did not complete in time.
    #[error("a frame took too long to arrive ({buffered} byte(s) of it in {secs:.1} s)")]
    Slow {
        /// The time allowed.
        secs: f32,
        /// Bytes of it received.
        buffered: usize,
    },
    /// The stream ended in the middle of a frame.
    #[error("the connection closed in the middle of a frame ({buffered} byte(s) of it)")]
    Truncated {
        /// Bytes of it received.
        buffered: usize,
    },
}

/// Reads whole frames, timing out a frame that has begun but does not complete.
pub struct FrameReader<R> {
    read: R,
    buf: BytesMut,
    codec: HelperCodec,
    frame_timeout: Duration,
    /// When the first byte of the frame being read arrived.
    started: Option<Instant>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader over `read` with the given per-frame timeout.
    pub fn new(read: R, frame_timeout: Duration) -> Self {
        FrameReader {
            read,
            buf: BytesMut::with_capacity(4096),
            codec: HelperCodec::new(),
            frame_timeout,
            started: None,
        }
    }

    /// The next message; `Ok(None)` when the stream ends cleanly between frames.
    pub async fn next(&mut self) -> Result<Option<ClientMessage>, ReadError> {
        loop {
            if let Some(message) = self.codec.decode(&mut self.buf)? {
                self.started = None;
                return Ok(Some(message));
            }
            if !self.buf.is_empty() && self.started.is_none() {
                self.started = Some(Instant::now());
            }
            let read = self.read.read_buf(&mut self.buf);
            let n = match self.started {
                None => read.await,
                Some(started) => tokio::time::timeout_at(started + self.frame_timeout, read)
                    .await
                    .map_err(|_| ReadError::Slow {
                        secs: self.frame_timeout.as_secs_f32(),
                        buffered: self.buf.len(),
                    })?,
            }
            .map_err(|e| ReadError::Frame(FrameError::Io(e)))?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ReadError::Truncated {
                        buffered: self.buf.len(),
                    })
                };
            }
        }
    }
}

/// Writes one message as a frame.
async fn write_message<W: AsyncWrite + Unpin>(
    write: &mut W,
    codec: &mut HelperCodec,
    message: HelperMessage,
) -> io::Result<()> {
    let mut buf = BytesMut::new();
    codec
        .encode(message, &mut buf)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let written = async {
        write.write_all(&buf).await?;
        write.flush().await
    };
    tokio::time::timeout(Duration::from_secs(WRITE_TIMEOUT_SECS), written)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client did not read for {WRITE_TIMEOUT_SECS} s"),
            )
        })?
}

/// Tells a refused client why (best effort, bounded), then closes.
///
/// Before closing, it reads (and drops) what the client sends for up to a second, or until the
/// client closes: a client writes its `Hello` right after connecting, and closing a socket whose
/// peer is still writing would fail that write (`EPIPE`) before the client reads the reason.
pub async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, reason: IpcError) {
    let mut codec = HelperCodec::new();
    let _ = write_message(&mut stream, &mut codec, HelperMessage::Closing { reason }).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    let drain = async {
        let mut buf = [0u8; 4096];
        // At most 64 KiB: a refused client gets no more of the daemon's time than that.
        for _ in 0..16 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// What the event forwarder of a connection is told.
enum Subscription {
    /// Forward new log lines from this receiver (the `Logs` topic).
    FollowLogs(broadcast::Receiver<LogLine>),
    /// Stop forwarding log lines.
    StopLogs,
}

/// One connection's mutable bits shared by its tasks.
struct Connection {
    shared: Arc<Shared>,
    caller: Caller,
    /// Who it is, for the log: `uid 1000 (pid 42)`.
    peer: String,
    topics: Mutex<BTreeSet<EventTopic>>,
    outbox: mpsc::Sender<HelperMessage>,
    subscriptions: mpsc::UnboundedSender<Subscription>,
}

/// Serves one admitted connection until the client leaves, breaks the protocol, or the helper
/// stops. `peer` describes the client for the log.
pub async fn serve<S>(stream: S, caller: Caller, peer: String, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = FrameReader::new(read, shared.frame_timeout);
    let mut codec = HelperCodec::new();

    // 1. Hello.
    let hello = tokio::time::timeout(Duration::from_secs(HELLO_TIMEOUT_SECS), reader.next()).await;
    let client = match hello {
        Ok(Ok(Some(ClientMessage::Hello { version, client }))) => {
            let hello = HelperMessage::hello(shared.helper_version.clone());
            if write_message(&mut write, &mut codec, hello).await.is_err() {
                return;
            }
            if version != PROTOCOL_VERSION {
                tracing::warn!(
                    "{peer}: {client:?} speaks protocol {version}, this helper {PROTOCOL_VERSION}: \
                     closing the connection"
                );
                return;
            }
            client
        }
        Ok(Ok(Some(ClientMessage::Request { .. }))) => {
            tracing::warn!("{peer}: sent a request before hello: closing the connection");
            let reason = IpcError::invalid_request("the first message must be hello");
            let _ = write_message(&mut write, &mut codec, HelperMessage::Closing { reason }).await;
            return;
        }
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            close_for(&mut write, &mut codec, &peer, &e).await;
            return;
        }
        Err(_) => {
            tracing::warn!(
                "{peer}: no hello within {HELLO_TIMEOUT_SECS} s: closing the connection"
            );
            let reason =
                IpcError::invalid_request(format!("no hello within {HELLO_TIMEOUT_SECS} s"));
            let _ = write_message(&mut write, &mut codec, HelperMessage::Closing { reason }).await;
            return;
        }
    };
    tracing::debug!("{peer}: connected: {client:?}");

    // The writer: everything else this connection sends goes through `outbox`.
    let (outbox, mut outgoing) = mpsc::channel::<HelperMessage>(OUTBOX);
    let writer_peer = peer.clone();
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let closing = matches!(message, HelperMessage::Closing { .. });
            if let Err(e) = write_message(&mut write, &mut codec, message).await {
                tracing::debug!("{writer_peer}: dropping the connection: {e}");
                return;
            }
            if closing {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), write.shutdown()).await;
    });

    // Subscribed before the first request is read, so no event of interest is missed.
    let events = shared.events.subscribe();
    let (subscriptions, subscription_rx) = mpsc::unbounded_channel();
    let connection = Arc::new(Connection {
        shared,
        caller,
        peer,
        topics: Mutex::new(BTreeSet::new()),
        outbox,
        subscriptions,
    });
    let forwarder = tokio::spawn(forward_events(
        Arc::clone(&connection),
        events,
        subscription_rx,
    ));

    // 2. Requests.
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        let next = tokio::select! {
            next = reader.next() => next,
            () = connection.outbox.closed() => break,
        };
        match next {
            Ok(Some(ClientMessage::Request { id, request })) => {
                let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
                    break;
                };
                let connection = Arc::clone(&connection);
                tokio::spawn(async move {
                    let (result, then) = handle(&connection, request).await;
                    let _ = connection
                        .outbox
                        .send(HelperMessage::Response { id, result })
                        .await;
                    if let Some(subscription) = then {
                        let _ = connection.subscriptions.send(subscription);
                    }
                    drop(permit);
                });
            }
            Ok(Some(ClientMessage::Hello { .. })) => {
                tracing::warn!("{}: sent a second hello: closing", connection.peer);
                let reason = IpcError::invalid_request("hello was already exchanged");
                let _ = connection
                    .outbox
                    .send(HelperMessage::Closing { reason })
                    .await;
                break;
            }
            Ok(None) => break,
            Err(e) => {
                let reason = describe(&connection.peer, &e);
                if let Some(reason) = reason {
                    let _ = connection
                        .outbox
                        .send(HelperMessage::Closing { reason })
                        .await;
                }
                break;
            }
        }
    }
    tracing::debug!("{}: disconnected", connection.peer);
    forwarder.abort();
    // Answers still in flight go out before the writer finishes (it ends when the last sender,
    // held by those tasks, is gone), bounded by its write timeout.
    drop(connection);
    let _ = writer.await;
}

/// Logs why a connection is closed for a bad frame and says so to the client where that makes
/// sense (not after an I/O error).
async fn close_for<W: AsyncWrite + Unpin>(
    write: &mut W,
    codec: &mut HelperCodec,
    peer: &str,
    error: &ReadError,
) {
    if let Some(reason) = describe(peer, error) {
        let _ = write_message(write, codec, HelperMessage::Closing { reason }).await;
    }
}

fn describe(peer: &str, error: &ReadError) -> Option<IpcError> {
    match error {
        ReadError::Frame(FrameError::Io(e)) => {
            tracing::debug!("{peer}: connection failed: {e}");
            None
        }
        ReadError::Truncated { .. } => {
            tracing::warn!("{peer}: {error}");
            None
        }
        _ => {
            tracing::warn!("{peer}: {error}: closing the connection");
            Some(IpcError::invalid_request(format!(
                "{error}; closing the connection"
            )))
        }
    }
}

/// Answers one request: translated into a manager command, or handled here. The second half is
/// for the event forwarder, to be handed over once the answer is queued.
async fn handle(
    connection: &Connection,
    request: Request,
) -> (Result<Response, IpcError>, Option<Subscription>) {
    let caller = connection.caller.clone();
    let peer = &connection.peer;
    let (reply, answer) = oneshot::channel();
    let command = match request {
        Request::ConnectUser {
            name,
            config,
            options,
        } => {
            tracing::info!("{peer}: connect user tunnel '{name}'");
            Command::Connect {
                name,
                source: Source::User { config, options },
                caller,
                reply: Some(reply),
            }
        }
        Request::ConnectSystem { name } => {
            tracing::info!("{peer}: connect system tunnel '{name}'");
            Command::Connect {
                name,
                source: Source::System,
                caller,
                reply: Some(reply),
            }
        }
        Request::Disconnect { name } => {
            tracing::info!("{peer}: disconnect '{name}'");
            Command::Disconnect {
                name,
                caller,
                reply,
            }
        }
        Request::ListTunnels => Command::List { reply },
        Request::Status { name } => Command::Status { name, reply },
        Request::SetOptions { name, options } => {
            tracing::info!("{peer}: set options of '{name}'");
            Command::SetOptions {
                name,
                options,
                caller,
                reply,
            }
        }
        Request::ImportSystemTunnel {
            name,
            config,
            replace,
        } => {
            tracing::info!("{peer}: import system tunnel '{name}'");
            Command::Import {
                name,
                config,
                replace,
                caller,
                reply,
            }
        }
        Request::RemoveSystemTunnel { name } => {
            tracing::info!("{peer}: remove system tunnel '{name}'");
            Command::Remove {
                name,
                caller,
                reply,
            }
        }
        Request::Subscribe { topics } => {
            let follow_logs = {
                let mut current = lock(&connection.topics);
                let adds_logs =
                    topics.contains(&EventTopic::Logs) && !current.contains(&EventTopic::Logs);
                current.extend(topics);
                adds_logs
            };
            let then =
                follow_logs.then(|| Subscription::FollowLogs(logging::ring().tail_and_follow(0).1));
            return (Ok(Response::Done), then);
        }
        Request::Unsubscribe { topics } => {
            let mut current = lock(&connection.topics);
            for topic in &topics {
                current.remove(topic);
            }
            let then = topics
                .contains(&EventTopic::Logs)
                .then_some(Subscription::StopLogs);
            return (Ok(Response::Done), then);
        }
        Request::Logs { lines, follow } => {
            let n = usize::try_from(lines).unwrap_or(usize::MAX);
            let (lines, receiver) = logging::ring().tail_and_follow(n);
            let lines = fit_in_a_frame(lines);
            if !follow {
                return (Ok(Response::Logs { lines }), None);
            }
            lock(&connection.topics).insert(EventTopic::Logs);
            // Handed to the forwarder only after the answer is queued, so the answer comes first
            // and every later line follows it.
            return (
                Ok(Response::Logs { lines }),
                Some(Subscription::FollowLogs(receiver)),
            );
        }
    };
    if connection.shared.commands.send(command).await.is_err() {
        return (Err(stopping()), None);
    }
    (answer.await.unwrap_or_else(|_| Err(stopping())), None)
}

fn stopping() -> IpcError {
    IpcError::internal("the helper is stopping")
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Drops the oldest lines until the answer fits in one frame (with room for the envelope).
fn fit_in_a_frame(mut lines: Vec<LogLine>) -> Vec<LogLine> {
    const BUDGET: usize = warren_proto::ipc::MAX_FRAME_LEN - 4096;
    let mut total: usize = lines
        .iter()
        .map(|l| l.message.len() + l.target.len() + 64)
        .sum();
    let mut skip = 0;
    while total > BUDGET && skip < lines.len() {
        total -= lines[skip].message.len() + lines[skip].target.len() + 64;
        skip += 1;
    }
    lines.drain(..skip);
    lines
}

/// Forwards the events the connection subscribed to (and `HelperStopping`), and log lines while
/// it follows the log. A full outbox drops events: a client that does not read loses events, it
/// does not slow the helper down.
async fn forward_events(
    connection: Arc<Connection>,
    mut events: broadcast::Receiver<Event>,
    mut subscriptions: mpsc::UnboundedReceiver<Subscription>,
) {
    let mut logs: Option<broadcast::Receiver<LogLine>> = None;
    loop {
        let event = tokio::select! {
            event = events.recv() => match event {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            line = recv_log(&mut logs) => match line {
                Some(line) => Event::LogLine(line),
                None => continue,
            },
            subscription = subscriptions.recv() => {
                match subscription {
                    Some(Subscription::FollowLogs(receiver)) => logs = Some(receiver),
                    Some(Subscription::StopLogs) => logs = None,
                    None => return,
                }
                continue;
            }
        };
        let wanted = match &event {
            Event::HelperStopping => true,
            Event::TunnelState { .. } => lock(&connection.topics).contains(&EventTopic::State),
            Event::Stats { .. } => lock(&connection.topics).contains(&EventTopic::Stats),
            Event::LogLine(_) => lock(&connection.topics).contains(&EventTopic::Logs),
        };
        if !wanted {
            continue;
        }
        let stopping = matches!(event, Event::HelperStopping);
        if stopping && !drain_logs(&connection, &mut logs).await {
            return;
        }
        let message = HelperMessage::Event(event);
        let sent = if stopping {
            connection.outbox.send(message).await.is_ok()
        } else {
            match connection.outbox.try_send(message) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        };
        if !sent {
            return;
        }
    }
}

/// Sends the log lines already logged (a follower ends at `HelperStopping`, and `select!` may
/// have picked that event before lines logged ahead of it, such as the signal that stopped the
/// daemon); `false` when the connection is gone.
async fn drain_logs(
    connection: &Connection,
    logs: &mut Option<broadcast::Receiver<LogLine>>,
) -> bool {
    let Some(receiver) = logs else {
        return true;
    };
    loop {
        let line = match receiver.try_recv() {
            Ok(line) => line,
            Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(_) => return true,
        };
        if !lock(&connection.topics).contains(&EventTopic::Logs) {
            continue;
        }
        let message = HelperMessage::Event(Event::LogLine(line));
        if connection.outbox.send(message).await.is_err() {
            return false;
        }
    }
}

/// The next log line, or never while not following; `None` after a lag (lines were lost).
async fn recv_log(logs: &mut Option<broadcast::Receiver<LogLine>>) -> Option<LogLine> {
    match logs {
        Some(receiver) => match receiver.recv().await {
            Ok(line) => Some(line),
            Err(broadcast::error::RecvError::Lagged(_)) => None,
            Err(broadcast::error::RecvError::Closed) => {
                *logs = None;
                None
            }
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_proto::ipc::LogLevel;

    /// A follower ends at `HelperStopping`, so a line logged before the stop was announced (the
    /// signal that stopped the daemon) must reach it first, whichever branch `select!` picks.
    #[tokio::test]
    async fn a_log_follower_gets_the_lines_logged_before_the_stop_first() {
        for round in 0..20 {
            let (commands, _commands) = mpsc::channel(1);
            let (events, _) = broadcast::channel(16);
            let shared = Arc::new(Shared {
                commands,
                events: events.clone(),
                helper_version: "test".into(),
                frame_timeout: Duration::from_secs(1),
            });
            let (outbox, mut sent) = mpsc::channel(16);
            let (subscribe, subscriptions) = mpsc::unbounded_channel();
            let connection = Arc::new(Connection {
                shared,
                caller: Caller {
                    uid: Some(0),
                    admin: true,
                },
                peer: "test".into(),
                topics: Mutex::new(BTreeSet::from([EventTopic::Logs])),
                outbox,
                subscriptions: subscribe.clone(),
            });
            let (log, log_lines) = broadcast::channel(16);
            let forwarder = tokio::spawn(forward_events(
                connection,
                events.subscribe(),
                subscriptions,
            ));
            subscribe.send(Subscription::FollowLogs(log_lines)).unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            // Both ready before the forwarder looks again.
            log.send(LogLine {
                unix_ms: 0,
                level: LogLevel::Info,
                target: "warren_helper::sys::shutdown".into(),
                message: "SIGTERM received".into(),
            })
            .unwrap();
            events.send(Event::HelperStopping).unwrap();
            let first = sent.recv().await.unwrap();
            assert!(
                matches!(&first, HelperMessage::Event(Event::LogLine(line)) if line.message == "SIGTERM received"),
                "round {round}: {first:?} came first"
            );
            let second = sent.recv().await.unwrap();
            assert!(matches!(
                second,
                HelperMessage::Event(Event::HelperStopping)
            ));
            forwarder.abort();
        }
    }
}
