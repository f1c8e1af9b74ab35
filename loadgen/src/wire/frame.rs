//! The frame protocol's bytes: HELLO, ECHO requests with a deterministic payload, and the odd
//! last bytes of the close modes (a partial frame, CLOSE, an unknown kind, two header bytes).

use protocol::{encode_frame, Decoder, Frame, Kind, PAYLOAD_LEN_MAX};

use super::{Expect, RequestSpec};
use crate::limits::{
    BAD_FRAME_KIND, MID_FRAME_ANNOUNCED_LEN, MID_FRAME_SENT_BYTES, STALL_SENT_BYTES,
};
use crate::mix::CloseMode;
use crate::pattern;

pub fn decoder() -> Decoder {
    Decoder::new(PAYLOAD_LEN_MAX)
}

/// HELLO with the tag: the engine's close record carries it.
pub fn hello(tag: u64, out: &mut Vec<u8>) {
    encode_frame(Kind::Hello, &tag.to_be_bytes(), out);
}

/// An ECHO of the payload size `seq` picks from `payloads` (in turn), filled with the pattern
/// of (tag, seq) in place.
pub fn request(payloads: &[u16], spec: RequestSpec, out: &mut Vec<u8>) -> Expect {
    assert!(!payloads.is_empty(), "--payload holds at least one size");
    let len = payloads[(spec.seq % payloads.len() as u64) as usize];
    let header_at = out.len();
    encode_frame(Kind::Echo, &[], out);
    out[header_at..header_at + 2].copy_from_slice(&len.to_be_bytes());
    let start = out.len();
    out.resize(start + usize::from(len), 0);
    pattern::fill(spec.tag, spec.seq, &mut out[start..]);
    Expect::Echo { len }
}

pub fn echo_matches(tag: u64, seq: u64, len: u16, frame: &Frame<'_>) -> bool {
    frame.kind == Kind::Echo && pattern::matches(tag, seq, usize::from(len), frame.payload)
}

/// The last bytes of `mode` (nothing for the modes that send none).
pub fn ending(mode: CloseMode, out: &mut Vec<u8>) {
    match mode {
        CloseMode::MidFrame => {
            let mut partial = [0u8; MID_FRAME_SENT_BYTES];
            partial[..2].copy_from_slice(&MID_FRAME_ANNOUNCED_LEN.to_be_bytes());
            partial[2] = Kind::Echo.to_byte();
            out.extend_from_slice(&partial);
        }
        CloseMode::CloseRequest => out.extend_from_slice(&[0, 0, Kind::Close.to_byte()]),
        CloseMode::BadFrame => out.extend_from_slice(&[0, 0, BAD_FRAME_KIND]),
        CloseMode::Stall => {
            let header = MID_FRAME_ANNOUNCED_LEN.to_be_bytes();
            out.extend_from_slice(&header[..STALL_SENT_BYTES]);
        }
        CloseMode::Fin
        | CloseMode::Reset
        | CloseMode::HalfClose
        | CloseMode::Idle
        | CloseMode::Hold => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Progress;

    #[test]
    fn requests_decode_to_their_pattern() {
        let mut out = Vec::new();
        hello(9, &mut out);
        let payloads = [0, 5, 300];
        let expects: Vec<Expect> = (0..3)
            .map(|seq| {
                let spec = RequestSpec {
                    tag: 9,
                    seq,
                    close: false,
                };
                request(&payloads, spec, &mut out)
            })
            .collect();
        let mut frames = Vec::new();
        decoder()
            .feed(&out, |frame| {
                frames.push((frame.kind, frame.payload.to_vec()));
                Progress::Continue
            })
            .unwrap();
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0], (Kind::Hello, 9u64.to_be_bytes().to_vec()));
        for (seq, (kind, payload)) in frames[1..].iter().enumerate() {
            let frame = Frame {
                kind: *kind,
                payload,
            };
            let reply = super::super::Reply::Frame(frame);
            assert!(expects[seq].matches(9, seq as u64, &reply), "request {seq}");
            if payload.len() >= 8 {
                assert!(!expects[seq].matches(10, seq as u64, &reply), "another tag");
            }
        }
    }
}
