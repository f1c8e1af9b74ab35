//! The bounds on what one WebSocket connection may make the decoder hold.

use std::fmt;

use super::{CONTROL_PAYLOAD_MAX, HEADER_LEN_MAX};

/// Default largest message (all its fragments' payloads): 1 MiB.
pub const MESSAGE_MAX: usize = 1 << 20;
/// Default most fragments (frames) of one message.
pub const FRAGMENTS_MAX: u32 = 1024;
/// The largest `message_max` a [`Limits`] may set: 1 GiB.
pub const MESSAGE_MAX_CAP: usize = 1 << 30;

const _: () = assert!(MESSAGE_MAX <= MESSAGE_MAX_CAP);
const _: () = assert!(FRAGMENTS_MAX >= 1024);

/// The limits a [`Decoder`](super::Decoder) enforces, each at the frame header that crosses it
/// (before the frame's payload is received).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest message payload, fragments added up; more is [`Error::MessageTooBig`](super::Error::MessageTooBig) (1009).
    pub message_max: usize,
    /// Most frames in one message; more is [`Error::TooManyFragments`](super::Error::TooManyFragments) (1009).
    pub fragments_max: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            message_max: MESSAGE_MAX,
            fragments_max: FRAGMENTS_MAX,
        }
    }
}

/// A [`Limits`] that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitsError {
    /// `message_max` above [`MESSAGE_MAX_CAP`].
    MessageMaxOverCap { message_max: usize },
    /// `fragments_max` of 0: no message could be received.
    NoFragments,
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitsError::MessageMaxOverCap { message_max } => write!(
                f,
                "message_max {message_max} is over the cap of {MESSAGE_MAX_CAP}"
            ),
            LimitsError::NoFragments => f.write_str("fragments_max must be at least 1"),
        }
    }
}

impl std::error::Error for LimitsError {}

impl Limits {
    /// Checks that the limits can work.
    pub const fn validate(self) -> Result<Limits, LimitsError> {
        if self.message_max > MESSAGE_MAX_CAP {
            return Err(LimitsError::MessageMaxOverCap {
                message_max: self.message_max,
            });
        }
        if self.fragments_max == 0 {
            return Err(LimitsError::NoFragments);
        }
        Ok(self)
    }

    /// The most bytes a caller's unconsumed tail holds while the decoder waits for a frame:
    /// one whole frame, header included (a data frame over the limit is refused at its header,
    /// a control frame over 125 bytes too).
    pub const fn buffer_max(self) -> usize {
        if self.message_max > CONTROL_PAYLOAD_MAX {
            HEADER_LEN_MAX + self.message_max
        } else {
            HEADER_LEN_MAX + CONTROL_PAYLOAD_MAX
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let limits = Limits::default();
        assert_eq!(limits.validate(), Ok(limits));
        assert_eq!(limits.message_max, 1 << 20);
        assert_eq!(limits.buffer_max(), (1 << 20) + 14);
    }

    #[test]
    fn invalid_limits() {
        let over = Limits {
            message_max: MESSAGE_MAX_CAP + 1,
            ..Limits::default()
        };
        assert_eq!(
            over.validate(),
            Err(LimitsError::MessageMaxOverCap {
                message_max: MESSAGE_MAX_CAP + 1
            })
        );
        let none = Limits {
            fragments_max: 0,
            ..Limits::default()
        };
        assert_eq!(none.validate(), Err(LimitsError::NoFragments));
    }
}
