//! The server's frames: never masked (RFC 6455 5.1), minimal length encoding.

use super::close::CLOSE_REASON_MAX;
use super::mask::unmask;
use super::{Opcode, CONTROL_PAYLOAD_MAX};

/// Bytes of a server frame header for `payload_len` payload bytes: 2, 4 or 10.
pub const fn header_len(payload_len: usize) -> usize {
    if payload_len < 126 {
        2
    } else if payload_len <= u16::MAX as usize {
        4
    } else {
        10
    }
}

/// Bytes a server frame with `payload_len` payload bytes takes on the wire.
pub const fn encoded_len(payload_len: usize) -> usize {
    header_len(payload_len) + payload_len
}

/// Appends one unmasked frame to `out`.
///
/// Panics on a control frame (close, ping, pong) without `fin` or with more than 125 payload
/// bytes: a bug of the caller, not bad input. Fragmenting a message in the right order
/// (text or binary, then continuations) is the caller's to get right.
pub fn encode_frame(opcode: Opcode, fin: bool, payload: &[u8], out: &mut Vec<u8>) {
    if opcode.is_control() {
        assert!(fin, "control frame {opcode:?} without FIN");
        assert!(
            payload.len() <= CONTROL_PAYLOAD_MAX,
            "control frame {opcode:?} of {} bytes",
            payload.len()
        );
    }
    out.reserve(encoded_len(payload.len()));
    out.push(u8::from(fin) << 7 | opcode.bits());
    let len = payload.len();
    match header_len(len) {
        2 => out.push(len as u8),
        4 => {
            out.push(126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

/// Appends a client frame: like [`encode_frame`], with the mask bit and `mask` after the length,
/// and the payload masked (for load generators and tests; the server never masks).
pub fn encode_masked_frame(
    opcode: Opcode,
    fin: bool,
    mask: [u8; 4],
    payload: &[u8],
    out: &mut Vec<u8>,
) {
    let start = out.len();
    encode_frame(opcode, fin, payload, out);
    let header = header_len(payload.len());
    out[start + 1] |= 0x80;
    out.splice(start + header..start + header, mask);
    let payload_start = start + header + mask.len();
    unmask(&mut out[payload_start..], mask, 0);
}

/// Appends a close frame: `code` and `reason`, or (`None`) an empty payload, which the peer
/// reads as 1005 "no status received" (the reason must then be empty).
///
/// Panics if the reason is longer than 123 bytes or comes without a code.
pub fn encode_close(code: Option<u16>, reason: &str, out: &mut Vec<u8>) {
    assert!(
        reason.len() <= CLOSE_REASON_MAX,
        "close reason of {} bytes",
        reason.len()
    );
    let Some(code) = code else {
        assert!(reason.is_empty(), "a close reason without a code");
        encode_frame(Opcode::Close, true, &[], out);
        return;
    };
    let mut payload = [0u8; CONTROL_PAYLOAD_MAX];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + reason.len()].copy_from_slice(reason.as_bytes());
    encode_frame(Opcode::Close, true, &payload[..2 + reason.len()], out);
}

/// Appends the close frame that answers a decoding error: its close code and short reason.
pub fn encode_error_close(error: super::Error, out: &mut Vec<u8>) {
    encode_close(Some(error.close_code()), error.reason(), out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_encodings_are_minimal() {
        for (len, header) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (70000, 10),
        ] {
            let payload = vec![0xAB; len];
            let mut out = Vec::new();
            encode_frame(Opcode::Binary, true, &payload, &mut out);
            assert_eq!(out.len(), encoded_len(len));
            assert_eq!(header_len(len), header);
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1] & 0x80, 0, "server frames are not masked");
            assert_eq!(&out[header..], &payload[..]);
        }
        let mut out = Vec::new();
        encode_frame(Opcode::Text, false, b"hi", &mut out);
        assert_eq!(out, b"\x01\x02hi");
        out.clear();
        encode_frame(Opcode::Continuation, true, &[0; 300], &mut out);
        assert_eq!(&out[..4], b"\x80\x7e\x01\x2c");
    }

    #[test]
    fn masked_frames_carry_the_key() {
        let mut out = Vec::new();
        encode_masked_frame(Opcode::Text, true, [1, 2, 3, 4], b"abcde", &mut out);
        assert_eq!(&out[..6], &[0x81, 0x85, 1, 2, 3, 4]);
        let mut payload = out[6..].to_vec();
        unmask(&mut payload, [1, 2, 3, 4], 0);
        assert_eq!(payload, b"abcde");
        out.clear();
        encode_masked_frame(Opcode::Binary, true, [9; 4], &[0; 200], &mut out);
        assert_eq!(&out[..8], &[0x82, 0xFE, 0, 200, 9, 9, 9, 9]);
        assert_eq!(out.len(), 8 + 200);
    }

    #[test]
    fn close_frames() {
        let mut out = Vec::new();
        encode_close(None, "", &mut out);
        assert_eq!(out, b"\x88\x00");
        out.clear();
        encode_close(Some(1000), "bye", &mut out);
        assert_eq!(out, b"\x88\x05\x03\xe8bye");
        out.clear();
        encode_error_close(super::super::Error::MessageTooBig, &mut out);
        assert_eq!(&out[2..4], &1009u16.to_be_bytes());
        assert_eq!(&out[4..], b"message too big");
    }

    #[test]
    #[should_panic(expected = "close reason of 124 bytes")]
    fn long_close_reason_is_a_caller_bug() {
        encode_close(Some(1000), &"x".repeat(124), &mut Vec::new());
    }
}
