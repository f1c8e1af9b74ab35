//! The server side of RFC 6455 WebSocket without I/O: the opening handshake's checks, a frame
//! header parser, in-place unmasking, a message assembler, and the server's frame encoder.
//!
//! The engine keeps the bytes it has not consumed, appends what it receives, and asks
//! [`Decoder::next`] what the start of them holds: a frame of `len` bytes to drop (with the
//! [`Event`] it completed, if any), an incomplete frame, or an [`Error`] whose
//! [`close_code`](Error::close_code) it answers with a close frame before closing. The answer
//! never depends on how the bytes were split. Every limit ([`Limits`]) is checked at the frame
//! header that crosses it, so the caller's tail never holds more than [`Limits::buffer_max`]
//! bytes and the decoder never more than `message_max`. When the peer's FIN comes mid-message,
//! [`Decoder::pending`] says where ([`Phase`]) and how many bytes of the message were received.
//!
//! No extension is negotiated (RSV bits are an error) and no subprotocol is chosen.

mod close;
mod decoder;
mod encode;
mod error;
mod handshake;
mod header;
mod limits;
mod mask;
mod utf8;

pub use close::{
    is_valid_close_code, parse_close, Close, CLOSE_NORMAL, CLOSE_NO_STATUS, CLOSE_REASON_MAX,
};
pub use decoder::{Decoder, Event, Pending, Phase, Step};
pub use encode::{
    encode_close, encode_error_close, encode_frame, encode_masked_frame, encoded_len, header_len,
};
pub use error::{Error, CLOSE_INVALID_PAYLOAD, CLOSE_PROTOCOL_ERROR, CLOSE_TOO_BIG};
pub use handshake::{
    accept_key, check_upgrade, has_token, UpgradeError, ACCEPT_GUID, ACCEPT_LEN, KEY_LEN,
    NONCE_LEN, VERSION,
};
pub use header::{
    parse_header, FrameHeader, HeaderParse, Opcode, CONTROL_PAYLOAD_MAX, HEADER_LEN_MAX,
    HEADER_LEN_MIN,
};
pub use limits::{Limits, LimitsError, FRAGMENTS_MAX, MESSAGE_MAX, MESSAGE_MAX_CAP};
pub use mask::unmask;
pub use utf8::{Utf8Error, Utf8Stream};
