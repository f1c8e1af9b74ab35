//! Unmasking a client frame's payload in place, a 64-bit word at a time.

/// Bytes XORed per step of the word loop.
const WORD_LEN: usize = 8;
const _: () = assert!(
    WORD_LEN / 4 * 4 == WORD_LEN,
    "a word must hold whole mask keys"
);

/// XORs `data` with the masking key, in place (masking and unmasking are the same operation).
///
/// `offset` is where `data` starts in the frame's payload, so a payload can be unmasked in
/// pieces: byte `i` of `data` is XORed with `mask[(offset + i) % 4]`.
///
/// The bytes up to the first 8-byte aligned address go one by one, then whole `u64` words with
/// the key repeated twice (rotated to the position reached), then the last 0-7 bytes.
pub fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = mask;
    key.rotate_left(offset % 4);
    let head_len = match data.as_ptr().align_offset(WORD_LEN) {
        usize::MAX => 0,
        aligned => aligned.min(data.len()),
    };
    let (head, body) = data.split_at_mut(head_len);
    unmask_bytes(head, key);
    key.rotate_left(head_len % 4);
    let word_key = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = body.chunks_exact_mut(WORD_LEN);
    for word in &mut words {
        let bytes: [u8; WORD_LEN] = (&*word).try_into().expect("chunks_exact gives words");
        word.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word_key).to_ne_bytes());
    }
    // Whole words leave the key at the same position.
    unmask_bytes(words.into_remainder(), key);
}

/// The byte loop for the unaligned head and the tail, `key` already rotated to `data[0]`.
fn unmask_bytes(data: &mut [u8], key: [u8; 4]) {
    for (byte, k) in data.iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: one byte at a time.
    fn unmask_reference(data: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, byte) in data.iter_mut().enumerate() {
            *byte ^= mask[(offset + i) % 4];
        }
    }

    /// A small deterministic generator (xorshift64*), so the test needs no dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn word_loop_matches_byte_loop() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let backing = rng.bytes(100 + 2 * WORD_LEN);
        for len in 0..=100 {
            // Every start alignment relative to a word, so the head takes 0-7 bytes.
            for shift in 0..WORD_LEN {
                for offset in 0..8 {
                    let mask = (rng.next() as u32).to_ne_bytes();
                    let mut fast = backing.clone();
                    let mut slow = backing.clone();
                    unmask(&mut fast[shift..shift + len], mask, offset);
                    unmask_reference(&mut slow[shift..shift + len], mask, offset);
                    assert_eq!(fast, slow, "len {len} shift {shift} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn pieces_unmask_like_the_whole() {
        let mut rng = Rng(7);
        let masked = rng.bytes(77);
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut whole = masked.clone();
        unmask(&mut whole, mask, 0);
        for cut in 0..=masked.len() {
            let mut pieces = masked.clone();
            let (left, right) = pieces.split_at_mut(cut);
            unmask(left, mask, 0);
            unmask(right, mask, cut);
            assert_eq!(pieces, whole, "cut {cut}");
        }
    }

    #[test]
    fn unmask_twice_is_identity() {
        let mut rng = Rng(3);
        let original = rng.bytes(50);
        let mut data = original.clone();
        unmask(&mut data, [1, 2, 3, 4], 1);
        assert_ne!(data, original);
        unmask(&mut data, [1, 2, 3, 4], 1);
        assert_eq!(data, original);
    }
}
