//! Frame encoder.

use bytes::BufMut;

use crate::{Kind, HEADER_LEN, PAYLOAD_LEN_MAX};

/// Bytes a frame with `payload_len` payload bytes takes on the wire.
pub const fn encoded_len(payload_len: usize) -> usize {
    HEADER_LEN + payload_len
}

/// Appends one frame to `out`. Panics if the payload is longer than the header can describe.
pub fn encode_frame<B: BufMut>(kind: Kind, payload: &[u8], out: &mut B) {
    assert!(
        payload.len() <= PAYLOAD_LEN_MAX,
        "payload of {} bytes",
        payload.len()
    );
    out.put_u16(payload.len() as u16);
    out.put_u8(kind.to_byte());
    out.put_slice(payload);
}
