//! CQE user_data: which operation, on which connection slot, of which generation.
//!
//! Layout: `op` (8 bits) | `generation` (24 bits) | `slot` (32 bits). A slot is reused after a
//! connection closes; the generation makes a late CQE for the old connection miss the new one.

/// The operations a core has in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Cancel = 4,
    Wake = 5,
}

pub const GENERATION_BITS: u32 = 24;
pub const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub op: Op,
    pub slot: u32,
    pub generation: u32,
}

impl Token {
    pub fn new(op: Op, slot: usize, generation: u32) -> Token {
        let slot = u32::try_from(slot).expect("slot fits 32 bits");
        assert!(
            generation <= GENERATION_MASK,
            "generation {generation} exceeds 24 bits"
        );
        Token {
            op,
            slot,
            generation,
        }
    }

    /// A token for an operation that belongs to no connection.
    pub fn global(op: Op) -> Token {
        Token {
            op,
            slot: 0,
            generation: 0,
        }
    }

    pub fn encode(self) -> u64 {
        (self.op as u64) << 56 | u64::from(self.generation) << 32 | u64::from(self.slot)
    }

    /// `None` for user_data this engine never issued.
    pub fn decode(user_data: u64) -> Option<Token> {
        let op = match user_data >> 56 {
            1 => Op::Accept,
            2 => Op::Recv,
            3 => Op::Send,
            4 => Op::Cancel,
            5 => Op::Wake,
            _ => return None,
        };
        let generation = (user_data >> 32) as u32 & GENERATION_MASK;
        Some(Token {
            op,
            slot: user_data as u32,
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for op in [Op::Accept, Op::Recv, Op::Send, Op::Cancel, Op::Wake] {
            for (slot, generation) in [(0, 0), (1, 1), (u32::MAX as usize, GENERATION_MASK)] {
                let token = Token::new(op, slot, generation);
                assert_eq!(Token::decode(token.encode()), Some(token));
            }
        }
        assert_eq!(Token::decode(0), None);
        assert_eq!(Token::decode(u64::MAX), None);
    }
}
