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

/// How many whole frames `prefix` (the start of an encoded frame stream) holds.
///
/// The engine uses it to count the replies a send delivered before it failed part-way.
pub fn count_complete_frames(prefix: &[u8]) -> u64 {
    let mut count = 0;
    let mut at = 0;
    while at + HEADER_LEN <= prefix.len() {
        let payload_len = usize::from(u16::from_be_bytes([prefix[at], prefix[at + 1]]));
        let end = at + HEADER_LEN + payload_len;
        if end > prefix.len() {
            break;
        }
        count += 1;
        at = end;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_whole_frames_of_a_prefix() {
        let mut stream = Vec::new();
        encode_frame(Kind::Echo, b"abc", &mut stream);
        encode_frame(Kind::Echo, b"", &mut stream);
        encode_frame(Kind::Echo, b"defgh", &mut stream);
        let cuts = [
            (0, 0),
            (2, 0),
            (5, 0),
            (6, 1),
            (8, 1),
            (9, 2),
            (16, 2),
            (17, 3),
        ];
        for (len, frames) in cuts {
            assert_eq!(
                count_complete_frames(&stream[..len]),
                frames,
                "prefix of {len}"
            );
        }
    }
}
