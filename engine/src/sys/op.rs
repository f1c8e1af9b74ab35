//! The kind of each operation a [`Ring`](super::Ring) issues, carried in the top byte of every
//! SQE's user_data so that completions are interpreted by the layer that issued them.
//!
//! Layout of the kernel-visible user_data: `op` (8 bits) | `payload` (56 bits). For accepts,
//! recvs, polls and cancels the payload is the caller's user_data; for sends it is the key of the
//! ring's in-flight send table (see [`SendId`](super::SendId)).

/// The caller's part of a user_data: 56 bits.
pub const USER_DATA_BITS: u32 = 56;
pub const USER_DATA_MAX: u64 = (1 << USER_DATA_BITS) - 1;

/// What an operation was. Completions report it, so a caller never guesses from its own tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A multishot accept: each completion may carry an accepted socket.
    Accept,
    /// A multishot recv on the ring's provided buffers: each completion may carry a buffer.
    Recv,
    /// A send: its completion hands the bytes back.
    Send,
    /// An async cancel; the cancelled operation's own final completion follows separately.
    Cancel,
    /// A one-shot readiness poll.
    Poll,
}

impl Op {
    const fn tag(self) -> u64 {
        match self {
            Op::Accept => 1,
            Op::Recv => 2,
            Op::Send => 3,
            Op::Cancel => 4,
            Op::Poll => 5,
        }
    }

    const fn from_tag(tag: u64) -> Option<Op> {
        match tag {
            1 => Some(Op::Accept),
            2 => Some(Op::Recv),
            3 => Some(Op::Send),
            4 => Some(Op::Cancel),
            5 => Some(Op::Poll),
            _ => None,
        }
    }
}

/// The kernel-visible user_data of operation `op` with `payload`.
pub fn encode(op: Op, payload: u64) -> u64 {
    assert!(
        payload <= USER_DATA_MAX,
        "user_data {payload:#x} exceeds {USER_DATA_BITS} bits"
    );
    op.tag() << USER_DATA_BITS | payload
}

/// The operation and payload of a kernel-visible user_data; `None` for one never encoded here.
pub fn decode(user_data: u64) -> Option<(Op, u64)> {
    Op::from_tag(user_data >> USER_DATA_BITS).map(|op| (op, user_data & USER_DATA_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for op in [Op::Accept, Op::Recv, Op::Send, Op::Cancel, Op::Poll] {
            for payload in [0, 1, USER_DATA_MAX] {
                assert_eq!(decode(encode(op, payload)), Some((op, payload)));
            }
        }
        assert_eq!(decode(0), None);
        assert_eq!(decode(u64::MAX), None);
    }

    #[test]
    #[should_panic(expected = "exceeds 56 bits")]
    fn oversized_user_data_is_refused() {
        encode(Op::Recv, USER_DATA_MAX + 1);
    }
}
