//! Why a WebSocket byte stream is rejected, and the close code the server answers it with.

use std::fmt;

/// Close code 1002: the peer broke the framing rules.
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
/// Close code 1007: a text message or a close reason is not UTF-8.
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
/// Close code 1009: a message larger than the limits allow.
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Why the frames from the client are not acceptable. Each error has one close code
/// ([`Error::close_code`]); the server sends a close frame with it and closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// 1002: RSV1-3 set; no extension is negotiated.
    ReservedBits { rsv: u8 },
    /// 1002: an opcode RFC 6455 reserves (3-7, 11-15).
    UnknownOpcode { opcode: u8 },
    /// 1002: a client frame without the mask bit.
    Unmasked,
    /// 1002: a control frame (close, ping, pong) without FIN.
    FragmentedControl { opcode: u8 },
    /// 1002: a control frame with more than 125 payload bytes.
    ControlTooLong { len: u8 },
    /// 1002: a 64-bit payload length with its most significant bit set.
    LengthTopBit,
    /// 1002: a continuation frame with no fragmented message to continue.
    UnexpectedContinuation,
    /// 1002: a text or binary frame while a fragmented message waits for its continuation.
    ExpectedContinuation,
    /// 1002: a close frame whose payload is 1 byte (half a status code).
    CloseLenOne,
    /// 1002: a close code that may not be sent on the wire (0-999, 1004-1006, 1015-2999, 5000+).
    InvalidCloseCode { code: u16 },
    /// 1002: a frame after the peer's close frame.
    FrameAfterClose,
    /// 1007: a text message that is not UTF-8, detected at the first fragment holding the bad
    /// bytes (or at FIN for a code point the message leaves unfinished).
    InvalidUtf8,
    /// 1007: a close reason that is not UTF-8.
    InvalidCloseReason,
    /// 1009: a message (all its fragments so far plus this frame) over `Limits::message_max`.
    MessageTooBig,
    /// 1009: a message in more fragments than `Limits::fragments_max`.
    TooManyFragments,
}

impl Error {
    /// The status code of the close frame the server answers with.
    pub const fn close_code(self) -> u16 {
        match self {
            Error::ReservedBits { .. }
            | Error::UnknownOpcode { .. }
            | Error::Unmasked
            | Error::FragmentedControl { .. }
            | Error::ControlTooLong { .. }
            | Error::LengthTopBit
            | Error::UnexpectedContinuation
            | Error::ExpectedContinuation
            | Error::CloseLenOne
            | Error::InvalidCloseCode { .. }
            | Error::FrameAfterClose => CLOSE_PROTOCOL_ERROR,
            Error::InvalidUtf8 | Error::InvalidCloseReason => CLOSE_INVALID_PAYLOAD,
            Error::MessageTooBig | Error::TooManyFragments => CLOSE_TOO_BIG,
        }
    }

    /// A short reason, lower case, ASCII, at most 123 bytes: fits a close frame's reason and
    /// the close record's cause.
    pub const fn reason(self) -> &'static str {
        match self {
            Error::ReservedBits { .. } => "reserved bits set",
            Error::UnknownOpcode { .. } => "unknown opcode",
            Error::Unmasked => "client frame not masked",
            Error::FragmentedControl { .. } => "fragmented control frame",
            Error::ControlTooLong { .. } => "control frame payload over 125 bytes",
            Error::LengthTopBit => "payload length with the top bit set",
            Error::UnexpectedContinuation => "continuation frame without a message",
            Error::ExpectedContinuation => "new message inside a fragmented message",
            Error::CloseLenOne => "close payload of 1 byte",
            Error::InvalidCloseCode { .. } => "invalid close code",
            Error::FrameAfterClose => "frame after close",
            Error::InvalidUtf8 => "text message is not UTF-8",
            Error::InvalidCloseReason => "close reason is not UTF-8",
            Error::MessageTooBig => "message too big",
            Error::TooManyFragments => "too many fragments",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ReservedBits { rsv } => write!(f, "{} ({rsv:#03b})", self.reason())?,
            Error::UnknownOpcode { opcode } | Error::FragmentedControl { opcode } => {
                write!(f, "{} ({opcode:#x})", self.reason())?
            }
            Error::ControlTooLong { len } => write!(f, "{} ({len})", self.reason())?,
            Error::InvalidCloseCode { code } => write!(f, "{} ({code})", self.reason())?,
            _ => f.write_str(self.reason())?,
        }
        write!(f, " (close {})", self.close_code())
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_reason_and_close_code() {
        assert_eq!(
            Error::Unmasked.to_string(),
            "client frame not masked (close 1002)"
        );
        assert_eq!(
            Error::InvalidCloseCode { code: 1005 }.to_string(),
            "invalid close code (1005) (close 1002)"
        );
        assert_eq!(
            Error::MessageTooBig.to_string(),
            "message too big (close 1009)"
        );
    }

    #[test]
    fn error_is_small() {
        assert!(std::mem::size_of::<Error>() <= 4);
    }
}
