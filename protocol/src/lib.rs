//! The engine's wire protocol: a length-prefixed frame codec that does no I/O.
//!
//! A frame is `len: u16 big-endian` (payload length), `kind: u8`, then `len` payload bytes.
//! [`Decoder`] is incremental: it yields the same frames, or the same error, for any split of the
//! byte stream, and holds no buffer while the stream sits at a frame boundary.
//!
//! [`http`] is an HTTP/1.1 request codec with the same split-independence, on `httparse`.
//!
//! [`ws`] is the server side of RFC 6455 WebSocket: the upgrade checks, a frame decoder and
//! message assembler with the same split-independence, and the server's frame encoder.

mod decode;
mod encode;
pub mod http;
pub mod ws;

pub use decode::{next_frame, DecodeError, Decoder, Next, Progress};
pub use encode::{count_complete_frames, encode_frame, encoded_len};

/// Bytes of the frame header: `len` (u16 BE) and `kind` (u8).
pub const HEADER_LEN: usize = 3;
/// The largest payload the header can describe.
pub const PAYLOAD_LEN_MAX: usize = u16::MAX as usize;
/// HELLO's payload: one u64 big-endian client tag.
pub const HELLO_LEN: usize = 8;

/// The frame kinds the protocol defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The server replies with an ECHO frame carrying the same payload.
    Echo,
    /// Length 0: the peer asks to end the connection; the server flushes every earlier reply,
    /// then closes (`peer_close`).
    Close,
    /// Length 8: a u64 big-endian client tag that the close record carries.
    Hello,
}

impl Kind {
    pub const fn from_byte(byte: u8) -> Option<Kind> {
        match byte {
            0x01 => Some(Kind::Echo),
            0x02 => Some(Kind::Close),
            0x03 => Some(Kind::Hello),
            _ => None,
        }
    }

    pub const fn to_byte(self) -> u8 {
        match self {
            Kind::Echo => 0x01,
            Kind::Close => 0x02,
            Kind::Hello => 0x03,
        }
    }
}

/// One decoded frame, borrowing its payload from the decoder's input or its partial buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: Kind,
    pub payload: &'a [u8],
}

impl Frame<'_> {
    /// HELLO's client tag. Only valid on a HELLO frame, whose length the decoder checked.
    pub fn hello_tag(&self) -> u64 {
        assert_eq!(self.kind, Kind::Hello);
        let bytes: [u8; HELLO_LEN] = self.payload.try_into().expect("decoder checks HELLO_LEN");
        u64::from_be_bytes(bytes)
    }
}
