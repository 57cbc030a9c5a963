//! Fuzz target for the IPC frame decoder: arbitrary bytes, as a hostile client (or a confused
//! helper) might send them, fed to both directions' decoders. Decoding must never panic; an
//! error must be one a server can act on (fatal, and `TooLarge` only above the limit); a frame
//! that decodes must re-encode to a frame that decodes to the same message.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_proto::ipc::codec::{BytesMut, Decoder, Encoder, FrameError, JsonCodec};
use warren_proto::ipc::{ClientMessage, HelperMessage, MAX_FRAME_LEN};

/// Decodes every frame in `$data` as `$message` until it runs out or fails, as a connection
/// would. (A macro, not a generic function: the serde bounds would need a serde dependency.)
macro_rules! decode_all {
    ($message:ty, $data:expr) => {{
        let mut codec = JsonCodec::<$message, $message>::new();
        let mut buf = BytesMut::from($data);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(message)) => {
                    let mut again = BytesMut::new();
                    codec
                        .encode(message.clone(), &mut again)
                        .expect("a decoded message must encode");
                    let decoded = JsonCodec::<$message, $message>::new()
                        .decode(&mut again)
                        .expect("a re-encoded message must decode");
                    assert_eq!(decoded.as_ref(), Some(&message), "round trip changed it");
                    assert!(again.is_empty());
                }
                Ok(None) => break,
                Err(error) => {
                    assert!(error.is_fatal(), "decode error not fatal: {error}");
                    if let FrameError::TooLarge { len } = error {
                        assert!(len > MAX_FRAME_LEN);
                    }
                    let _ = error.to_string();
                    break;
                }
            }
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    decode_all!(ClientMessage, data);
    decode_all!(HelperMessage, data);
});
