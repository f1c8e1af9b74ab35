//! CQE user_data of a worker: which operation, on which connection slot, of which generation.
//!
//! Layout: `op` (8 bits) | `generation` (24 bits) | `slot` (32 bits), like the engine's: a late
//! CQE of a closed connection never reaches the connection that reuses its slot.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Send = 1,
    Recv = 2,
    Cancel = 3,
}

pub const GENERATION_MASK: u32 = (1 << 24) - 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token {
    pub op: Op,
    pub slot: u32,
    pub generation: u32,
}

impl Token {
    pub fn new(op: Op, slot: usize, generation: u32) -> Token {
        assert!(generation <= GENERATION_MASK, "generation {generation}");
        Token {
            op,
            slot: u32::try_from(slot).expect("slot fits 32 bits"),
            generation,
        }
    }

    pub fn encode(self) -> u64 {
        (self.op as u64) << 56 | u64::from(self.generation) << 32 | u64::from(self.slot)
    }

    pub fn decode(user_data: u64) -> Option<Token> {
        let op = match user_data >> 56 {
            1 => Op::Send,
            2 => Op::Recv,
            3 => Op::Cancel,
            _ => return None,
        };
        Some(Token {
            op,
            generation: (user_data >> 32) as u32 & GENERATION_MASK,
            slot: user_data as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for op in [Op::Send, Op::Recv, Op::Cancel] {
            let token = Token::new(op, 123_456, GENERATION_MASK);
            assert_eq!(Token::decode(token.encode()), Some(token));
        }
        assert_eq!(Token::decode(0), None);
    }
}
