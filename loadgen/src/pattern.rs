//! Deterministic request payloads: the bytes of request `seq` on the connection tagged `tag`, so
//! that a reply can be checked byte for byte without keeping what was sent.

use crate::mix::splitmix64;

/// Writes the payload of (`tag`, `seq`) into `out` (its whole length).
pub fn fill(tag: u64, seq: u64, out: &mut [u8]) {
    let seed = splitmix64(tag ^ seq.wrapping_mul(0xA24B_AED4_963E_E407));
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let word = splitmix64(seed.wrapping_add(i as u64)).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// Whether `payload` is exactly the payload of (`tag`, `seq`) of length `len`.
pub fn matches(tag: u64, seq: u64, len: usize, payload: &[u8]) -> bool {
    if payload.len() != len {
        return false;
    }
    let seed = splitmix64(tag ^ seq.wrapping_mul(0xA24B_AED4_963E_E407));
    payload.chunks(8).enumerate().all(|(i, chunk)| {
        let word = splitmix64(seed.wrapping_add(i as u64)).to_le_bytes();
        chunk == &word[..chunk.len()]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flipped_byte_is_detected() {
        for len in [0usize, 1, 7, 8, 9, 100] {
            let mut bytes = vec![0; len];
            fill(42, 3, &mut bytes);
            assert!(matches(42, 3, len, &bytes));
            for at in 0..len {
                bytes[at] ^= 0x10;
                assert!(!matches(42, 3, len, &bytes), "len {len} flip at {at}");
                bytes[at] ^= 0x10;
            }
            if len >= 8 {
                assert!(!matches(42, 4, len, &bytes), "another request's bytes");
            }
            assert!(!matches(42, 3, len + 1, &bytes), "a wrong length");
        }
    }
}
