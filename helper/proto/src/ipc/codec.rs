//! The frame codec: one message = a 4-byte big-endian length, then that many bytes of JSON.
//!
//! [`JsonCodec<In, Out>`] decodes `In` and encodes `Out`, so both ends use the same code with the
//! types swapped: the helper frames a connection with [`HelperCodec`] (reads [`ClientMessage`],
//! writes [`HelperMessage`]), a client with [`ClientCodec`]. Use it with [`Framed`] (or
//! [`FramedRead`] and [`FramedWrite`] on split halves), re-exported here with [`Decoder`],
//! [`Encoder`] and [`BytesMut`] so users need no direct tokio-util or bytes dependency.
//!
//! Framing is tokio-util's [`LengthDelimitedCodec`] (4-byte big-endian length, no adjustment),
//! capped at [`MAX_FRAME_LEN`]. The length is checked as soon as the 4-byte header has arrived,
//! so an oversized frame is refused before space for it is reserved; a partial frame waits for
//! more bytes. Decoding errors are typed ([`FrameError::TooLarge`], [`FrameError::Malformed`]) so
//! a server can log them and close just that connection; after one, the stream is out of step
//! and must not be read further ([`FrameError::is_fatal`]).
//!
//! Secrets: a request frame may hold a private key (see [`messages`](super::messages)). Each
//! decoded frame's bytes are wiped before they are released, an encoding that fails is wiped from
//! the output buffer, and a malformed-frame error never quotes a key-like run of base64.
//!
//! [`ClientMessage`]: super::ClientMessage
//! [`HelperMessage`]: super::HelperMessage

use super::messages::{ClientMessage, HelperMessage};
use bytes::{Buf, BufMut};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::io;
use std::marker::PhantomData;
use tokio_util::codec::{LengthDelimitedCodec, LengthDelimitedCodecError};
use zeroize::Zeroize;

pub use bytes::BytesMut;
pub use tokio_util::codec::{Decoder, Encoder, Framed, FramedRead, FramedWrite};

/// Largest frame payload in bytes (1 MiB), in both directions.
pub const MAX_FRAME_LEN: usize = 1 << 20;

/// Size of the length prefix in bytes.
pub const LENGTH_PREFIX_LEN: usize = 4;

/// The codec a client uses: reads [`HelperMessage`], writes [`ClientMessage`].
pub type ClientCodec = JsonCodec<HelperMessage, ClientMessage>;

/// The codec the helper uses: reads [`ClientMessage`], writes [`HelperMessage`].
pub type HelperCodec = JsonCodec<ClientMessage, HelperMessage>;

/// Length-delimited JSON: decodes `In`, encodes `Out`.
pub struct JsonCodec<In, Out> {
    frames: LengthDelimitedCodec,
    _messages: PhantomData<fn(Out) -> In>,
}

impl<In, Out> JsonCodec<In, Out> {
    /// A codec with the [`MAX_FRAME_LEN`] limit.
    pub fn new() -> Self {
        Self {
            frames: LengthDelimitedCodec::builder()
                .length_field_length(LENGTH_PREFIX_LEN)
                .big_endian()
                .max_frame_length(MAX_FRAME_LEN)
                .new_codec(),
            _messages: PhantomData,
        }
    }
}

impl<In, Out> Default for JsonCodec<In, Out> {
    fn default() -> Self {
        Self::new()
    }
}

impl<In, Out> fmt::Debug for JsonCodec<In, Out> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonCodec")
            .field("max_frame_len", &MAX_FRAME_LEN)
            .finish()
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer announced a frame larger than [`MAX_FRAME_LEN`]. Fatal.
    #[error("refused a frame of {len} bytes: the limit is {MAX_FRAME_LEN}")]
    TooLarge {
        /// The announced length.
        len: usize,
    },
    /// The frame is not JSON, or not a message this side understands. Fatal.
    #[error("malformed message (line {line}, column {column}): {detail}")]
    Malformed {
        /// 1-based line in the frame's JSON (0 at end of input).
        line: usize,
        /// 1-based column in the frame's JSON.
        column: usize,
        /// What serde said, with any key-like run of base64 replaced by `<redacted>`.
        detail: String,
    },
    /// A message could not be written as JSON (e.g. a non-finite number). Nothing was
    /// written; the connection is still usable.
    #[error("failed to encode a message: {0}")]
    Encode(#[source] serde_json::Error),
    /// A message encodes to more than [`MAX_FRAME_LEN`] bytes. Nothing was written; the
    /// connection is still usable.
    #[error(
        "failed to encode a message: {len} bytes is over the {MAX_FRAME_LEN}-byte frame limit"
    )]
    EncodeTooLarge {
        /// The encoded length.
        len: usize,
    },
    /// Reading or writing the stream failed. Fatal.
    #[error("failed to read or write a frame: {0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// True when the stream can no longer be trusted and the connection should be closed:
    /// every decoding and I/O error. Encoding errors leave the stream intact.
    pub fn is_fatal(&self) -> bool {
        match self {
            FrameError::TooLarge { .. } | FrameError::Malformed { .. } | FrameError::Io(_) => true,
            FrameError::Encode(_) | FrameError::EncodeTooLarge { .. } => false,
        }
    }

    fn malformed(error: &serde_json::Error) -> Self {
        FrameError::Malformed {
            line: error.line(),
            column: error.column(),
            detail: redact_keys(&error.to_string()),
        }
    }
}

impl<In: DeserializeOwned, Out> Decoder for JsonCodec<In, Out> {
    type Item = In;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        let mut frame = match self.frames.decode(src) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(None),
            // LengthDelimitedCodec refuses an oversized length as soon as the header is readable,
            // before reserving space for the frame, and leaves `src` untouched: name the length.
            Err(e) if is_oversize(&e) && src.len() >= LENGTH_PREFIX_LEN => {
                let len = (&src[..LENGTH_PREFIX_LEN]).get_u32() as usize;
                return Err(FrameError::TooLarge { len });
            }
            Err(e) => return Err(FrameError::Io(e)),
        };
        let message = serde_json::from_slice(&frame);
        frame.as_mut().zeroize();
        message.map(Some).map_err(|e| FrameError::malformed(&e))
    }
}

impl<In, Out: Serialize> Encoder<Out> for JsonCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, message: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        // Written in place after a placeholder length, then the length is patched in: the JSON is
        // never copied. The result is exactly what LengthDelimitedCodec would produce.
        let start = dst.len();
        dst.put_u32(0);
        let written = serde_json::to_writer((&mut *dst).writer(), &message);
        let len = dst.len() - start - LENGTH_PREFIX_LEN;
        let error = match written {
            Err(e) => FrameError::Encode(e),
            Ok(()) if len > MAX_FRAME_LEN => FrameError::EncodeTooLarge { len },
            Ok(()) => {
                let prefix = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
                dst[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&prefix);
                return Ok(());
            }
        };
        dst[start..].zeroize();
        dst.truncate(start);
        Err(error)
    }
}

/// Whether `error` is LengthDelimitedCodec's "frame too big".
fn is_oversize(error: &io::Error) -> bool {
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<LengthDelimitedCodecError>())
}

/// Replaces every run of 40 or more base64 characters (a whole WireGuard key is 44) with
/// `<redacted>`, so an error that quotes input never quotes a key.
fn redact_keys(text: &str) -> String {
    const KEY_LIKE_RUN: usize = 40;
    let is_base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= KEY_LIKE_RUN {
            out.push_str("<redacted>");
        } else {
            out.push_str(run);
        }
        run.zeroize();
    };
    for c in text.chars() {
        if is_base64(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::super::messages::tests::{client_samples, helper_samples, PRIVATE_KEY};
    use super::*;
    use bytes::Bytes;

    fn encode<M: Serialize>(message: M) -> BytesMut {
        let mut buf = BytesMut::new();
        JsonCodec::<(), M>::new().encode(message, &mut buf).unwrap();
        buf
    }

    fn frame(payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        buf.put_u32(payload.len() as u32);
        buf.extend_from_slice(payload);
        buf
    }

    #[test]
    fn every_variant_round_trips_through_a_frame() {
        for message in client_samples() {
            let mut buf = encode(message.clone());
            let decoded = HelperCodec::new().decode(&mut buf).unwrap();
            assert_eq!(decoded, Some(message));
            assert!(buf.is_empty());
        }
        for message in helper_samples() {
            let mut buf = encode(message.clone());
            let decoded = ClientCodec::new().decode(&mut buf).unwrap();
            assert_eq!(decoded, Some(message));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn frames_are_what_length_delimited_codec_writes_and_reads() {
        let message = HelperMessage::hello("0.1.0");
        let json = serde_json::to_vec(&message).unwrap();
        let mut ours = encode(message.clone());
        assert_eq!(&ours[..4], &(json.len() as u32).to_be_bytes());
        let mut plain = LengthDelimitedCodec::new();
        assert_eq!(plain.decode(&mut ours.clone()).unwrap().unwrap(), json);

        let mut theirs = BytesMut::new();
        plain.encode(Bytes::from(json), &mut theirs).unwrap();
        assert_eq!(theirs, ours);
        assert_eq!(ClientCodec::new().decode(&mut ours).unwrap(), Some(message));
    }

    #[test]
    fn several_frames_in_one_read_decode_in_order() {
        let samples = helper_samples();
        let mut buf = BytesMut::new();
        let mut codec = ClientCodec::new();
        for message in &samples {
            buf.extend_from_slice(&encode(message.clone()));
        }
        for message in samples {
            assert_eq!(codec.decode(&mut buf).unwrap(), Some(message));
        }
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
    }

    #[test]
    fn a_truncated_frame_waits_for_more() {
        let full = encode(HelperMessage::hello("0.1.0"));
        let mut codec = ClientCodec::new();
        let mut buf = BytesMut::new();
        // Byte by byte: nothing until the last one.
        for (i, byte) in full.iter().enumerate() {
            assert_eq!(codec.decode(&mut buf).unwrap(), None, "after {i} bytes");
            buf.put_u8(*byte);
        }
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(HelperMessage::hello("0.1.0"))
        );
    }

    #[test]
    fn an_oversized_frame_is_refused_from_its_header_alone() {
        let mut codec = HelperCodec::new();
        let mut buf = BytesMut::with_capacity(16);
        buf.put_u32(MAX_FRAME_LEN as u32 + 1);
        let error = codec.decode(&mut buf).unwrap_err();
        assert!(matches!(error, FrameError::TooLarge { len } if len == MAX_FRAME_LEN + 1));
        assert!(error.is_fatal());
        assert!(buf.capacity() < 1024, "the frame must not be allocated");
        assert_eq!(
            error.to_string(),
            "refused a frame of 1048577 bytes: the limit is 1048576"
        );

        let mut huge = BytesMut::new();
        huge.put_u32(u32::MAX);
        assert!(matches!(
            codec.decode(&mut huge),
            Err(FrameError::TooLarge { len }) if len == u32::MAX as usize
        ));

        // Exactly the limit is allowed (and waits for its bytes).
        let mut limit = BytesMut::new();
        limit.put_u32(MAX_FRAME_LEN as u32);
        assert_eq!(codec.decode(&mut limit).unwrap(), None);
    }

    #[test]
    fn garbage_is_refused_as_malformed() {
        let cases: [&[u8]; 6] = [
            b"",
            b"not json",
            b"\xff\xfe\x00",
            br#"{"hello":{"version":"one","client":"x"}}"#,
            br#"{"goodbye":{}}"#,
            br#"{"request":{"id":1,"request":{"command":"launch_missiles"}}}"#,
        ];
        for payload in cases {
            let error = HelperCodec::new().decode(&mut frame(payload)).unwrap_err();
            assert!(
                matches!(error, FrameError::Malformed { .. }),
                "{payload:?}: {error}"
            );
            assert!(error.is_fatal());
        }
        // A helper message is not a client message.
        let mut wrong_way = encode(HelperMessage::hello("0.1.0"));
        assert!(matches!(
            HelperCodec::new().decode(&mut wrong_way),
            Err(FrameError::Malformed { .. })
        ));
    }

    #[test]
    fn a_malformed_frame_error_never_quotes_a_key() {
        // A key where a number belongs: serde quotes the string in its error.
        let payload = format!(r#"{{"request":{{"id":"{PRIVATE_KEY}","request":{{}}}}}}"#);
        let error = HelperCodec::new()
            .decode(&mut frame(payload.as_bytes()))
            .unwrap_err();
        let text = error.to_string();
        assert!(!text.contains(&PRIVATE_KEY[..20]), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert_eq!(redact_keys("short AAAA, x"), "short AAAA, x");
    }

    #[test]
    fn an_oversized_message_is_not_written_and_the_buffer_is_restored() {
        let mut codec = ClientCodec::new();
        let mut buf = BytesMut::new();
        codec
            .encode(ClientMessage::hello("first"), &mut buf)
            .unwrap();
        let before = buf.clone();
        let error = codec
            .encode(ClientMessage::hello("x".repeat(MAX_FRAME_LEN)), &mut buf)
            .unwrap_err();
        assert!(
            matches!(error, FrameError::EncodeTooLarge { .. }),
            "{error}"
        );
        assert!(!error.is_fatal());
        assert_eq!(buf, before);
        assert_eq!(
            HelperCodec::new().decode(&mut buf).unwrap(),
            Some(ClientMessage::hello("first"))
        );
    }
}
