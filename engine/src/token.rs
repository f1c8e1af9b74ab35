//! The user_data a core gives its operations: which connection slot, of which generation.
//!
//! Layout (56 bits, the caller's share of a user_data; `sys` keeps the operation kind in the
//! rest): `generation` (24 bits) | `slot` (32 bits). A slot is reused after a connection closes;
//! the generation makes a late CQE for the old connection miss the new one.

use crate::sys::USER_DATA_BITS;

pub const GENERATION_BITS: u32 = 24;
pub const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

const _: () = assert!(GENERATION_BITS + 32 <= USER_DATA_BITS);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub slot: u32,
    pub generation: u32,
}

impl Token {
    pub fn new(slot: usize, generation: u32) -> Token {
        let slot = u32::try_from(slot).expect("slot fits 32 bits");
        assert!(
            generation <= GENERATION_MASK,
            "generation {generation} exceeds 24 bits"
        );
        Token { slot, generation }
    }

    /// The token of operations that belong to no connection (the accept, the wake-up poll).
    pub const GLOBAL: Token = Token {
        slot: 0,
        generation: 0,
    };

    pub fn encode(self) -> u64 {
        u64::from(self.generation) << 32 | u64::from(self.slot)
    }

    pub fn decode(user_data: u64) -> Token {
        assert!(user_data >> USER_DATA_BITS == 0, "user_data {user_data:#x}");
        Token {
            slot: user_data as u32,
            generation: (user_data >> 32) as u32 & GENERATION_MASK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for (slot, generation) in [(0, 0), (1, 1), (u32::MAX as usize, GENERATION_MASK)] {
            let token = Token::new(slot, generation);
            assert_eq!(Token::decode(token.encode()), token);
        }
    }
}
