//! HTTP/1.1 requests and responses without I/O: an incremental request parser (on `httparse`),
//! a response writer, a cached `Date`, and the HttpArena H1 workload as a pure handler.
//!
//! The engine keeps the bytes it has not consumed, appends what it receives, and asks
//! [`Parser::parse`] what the start of them holds: a [`Request`] of `len` bytes to answer and
//! drop, an incomplete request ([`Phase`]), or an [`Error`] to answer and close on. Every limit
//! ([`Limits`]) is enforced at the byte that crosses it, so a pending request never holds more
//! than [`Limits::buffer_max`] bytes; the answer never depends on how the bytes were split.

pub mod arena;
mod chunked;
mod date;
mod error;
mod fields;
mod head;
mod limits;
mod parser;
mod request;
mod response;
mod scan;

pub use chunked::Chunks;
pub use date::{HttpDate, DATE_LEN};
pub use error::Error;
pub use limits::{
    Limits, LimitsError, BODY_MAX, BYTES_MAX_CAP, CHUNK_OVERHEAD_MAX, CHUNK_OVERHEAD_MIN,
    HEADERS_MAX, HEADERS_MAX_CAP, HEAD_MAX, REQUEST_LINE_MAX,
};
pub use parser::{Parse, Parser, Phase};
pub use request::{Body, Chunked, Headers, Pieces, Request, Version};
pub use response::{
    check_fields, reason_phrase, write_error, write_plain_error, write_response, write_with_fields,
    ConnectionHeader, FieldError, Response,
};

/// Counts bytes examined by the scanners and `httparse` (unit tests bound the cost of a request
/// fed one byte at a time); compiles to nothing outside tests.
#[inline(always)]
fn examined(_count: usize) {
    #[cfg(test)]
    probe::add(_count);
}

#[cfg(test)]
mod probe {
    use std::cell::Cell;

    thread_local! {
        static EXAMINED: Cell<u64> = const { Cell::new(0) };
    }

    pub fn add(count: usize) {
        EXAMINED.with(|examined| examined.set(examined.get() + count as u64));
    }

    /// The count since the last call.
    pub fn take() -> u64 {
        EXAMINED.with(|examined| examined.replace(0))
    }
}
