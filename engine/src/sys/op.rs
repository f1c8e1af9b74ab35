//! The kind of each operation a [`Ring`](super::Ring) issues, carried in the top byte of every
//! SQE's user_data so that completions are interpreted by the layer that issued them.
//!
//! Layout of the kernel-visible user_data: `tag` (8 bits) | `payload` (56 bits). For accepts,
//! recvs, polls, cancels and wake-ups the payload is the caller's user_data; for sends it is the key of the
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
    /// Another ring's [`Ring::msg_ring`](super::Ring::msg_ring) arrived here: the payload is
    /// what the sender put in it.
    Wake,
    /// A [`Ring::msg_ring`](super::Ring::msg_ring) of this ring failed (`res` says why; a
    /// successful one posts nothing here).
    WakeFailed,
}

/// The SQE kinds this layer issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Tag {
    Accept,
    Recv,
    Send,
    Cancel,
    Poll,
    Wake,
    WakeFailed,
}

impl Tag {
    const ALL: [Tag; 7] = [
        Tag::Accept,
        Tag::Recv,
        Tag::Send,
        Tag::Cancel,
        Tag::Poll,
        Tag::Wake,
        Tag::WakeFailed,
    ];

    /// The operation a caller sees.
    pub const fn op(self) -> Op {
        match self {
            Tag::Accept => Op::Accept,
            Tag::Recv => Op::Recv,
            Tag::Send => Op::Send,
            Tag::Cancel => Op::Cancel,
            Tag::Poll => Op::Poll,
            Tag::Wake => Op::Wake,
            Tag::WakeFailed => Op::WakeFailed,
        }
    }

    const fn value(self) -> u64 {
        self as u64 + 1
    }
}

/// The kernel-visible user_data of an operation of kind `tag` with `payload`.
pub(super) fn encode(tag: Tag, payload: u64) -> u64 {
    assert!(
        payload <= USER_DATA_MAX,
        "user_data {payload:#x} exceeds {USER_DATA_BITS} bits"
    );
    tag.value() << USER_DATA_BITS | payload
}

/// The kind and payload of a kernel-visible user_data; `None` for one never encoded here.
pub(super) fn decode(user_data: u64) -> Option<(Tag, u64)> {
    let value = user_data >> USER_DATA_BITS;
    Tag::ALL
        .into_iter()
        .find(|tag| tag.value() == value)
        .map(|tag| (tag, user_data & USER_DATA_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        for tag in Tag::ALL {
            for payload in [0, 1, USER_DATA_MAX] {
                assert_eq!(decode(encode(tag, payload)), Some((tag, payload)));
            }
        }
        assert_eq!(decode(0), None);
        assert_eq!(decode(u64::MAX), None);
    }

    #[test]
    #[should_panic(expected = "exceeds 56 bits")]
    fn oversized_user_data_is_refused() {
        encode(Tag::Recv, USER_DATA_MAX + 1);
    }
}
