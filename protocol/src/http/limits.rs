//! The HTTP parser's limits: every byte a pending request can make the engine hold is bounded.

use std::fmt;

/// Default longest request line, its CRLF included (8 KiB).
pub const REQUEST_LINE_MAX: usize = 8 * 1024;
/// Default largest head (leading empty lines, request line, header lines, blank line) (16 KiB).
pub const HEAD_MAX: usize = 16 * 1024;
/// Default most header fields in one head.
pub const HEADERS_MAX: usize = 100;
/// Default largest body, Content-Length or the sum of chunk sizes (1 MiB).
pub const BODY_MAX: usize = 1024 * 1024;
/// Default most bytes of chunked framing (size lines, extensions, CRLFs, trailers) (64 KiB).
pub const CHUNK_OVERHEAD_MAX: usize = 64 * 1024;

/// The largest `headers_max` accepted: the parser's header array lives on the stack.
pub const HEADERS_MAX_CAP: usize = 256;
/// The largest byte limit accepted, so that every position fits in a `u32`.
pub const BYTES_MAX_CAP: usize = 1 << 30;
/// The smallest chunk overhead that lets a chunked body end at all (`0\r\n\r\n`).
pub const CHUNK_OVERHEAD_MIN: usize = 5;

const _: () = assert!(REQUEST_LINE_MAX <= HEAD_MAX);
const _: () = assert!(HEADERS_MAX <= HEADERS_MAX_CAP);
const _: () = assert!(CHUNK_OVERHEAD_MIN <= CHUNK_OVERHEAD_MAX);
const _: () = assert!(HEAD_MAX + BODY_MAX + CHUNK_OVERHEAD_MAX <= BYTES_MAX_CAP);
const _: () = assert!(3 * BYTES_MAX_CAP <= u32::MAX as usize);

/// What one request may hold. A request past a limit is rejected as soon as the bytes that
/// cross it arrive, never after buffering more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, its CRLF included, in bytes (past it: 414).
    pub request_line_max: usize,
    /// Largest head in bytes, from the first byte to the blank line's LF included (past it: 431).
    pub head_max: usize,
    /// Most header fields (past it: 431).
    pub headers_max: usize,
    /// Largest body in bytes: Content-Length, or the sum of chunk sizes (past it: 413).
    pub body_max: usize,
    /// Most bytes of chunked framing around the data: size lines, extensions, CRLFs and
    /// trailer section (past it: 413). Bounds a body of tiny chunks on the wire.
    pub chunk_overhead_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            request_line_max: REQUEST_LINE_MAX,
            head_max: HEAD_MAX,
            headers_max: HEADERS_MAX,
            body_max: BODY_MAX,
            chunk_overhead_max: CHUNK_OVERHEAD_MAX,
        }
    }
}

/// Why a [`Limits`] cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitsError {
    /// `request_line_max` is 0 or larger than `head_max`.
    RequestLine {
        request_line_max: usize,
        head_max: usize,
    },
    /// `headers_max` is above [`HEADERS_MAX_CAP`].
    Headers { headers_max: usize },
    /// A byte limit is above [`BYTES_MAX_CAP`].
    TooLarge { name: &'static str, value: usize },
    /// `chunk_overhead_max` is below [`CHUNK_OVERHEAD_MIN`].
    ChunkOverhead { chunk_overhead_max: usize },
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LimitsError::RequestLine {
                request_line_max,
                head_max,
            } => write!(
                f,
                "request_line_max {request_line_max} must be in 1..=head_max ({head_max})"
            ),
            LimitsError::Headers { headers_max } => {
                write!(f, "headers_max {headers_max} is above {HEADERS_MAX_CAP}")
            }
            LimitsError::TooLarge { name, value } => {
                write!(f, "{name} {value} is above {BYTES_MAX_CAP}")
            }
            LimitsError::ChunkOverhead { chunk_overhead_max } => write!(
                f,
                "chunk_overhead_max {chunk_overhead_max} is below {CHUNK_OVERHEAD_MIN}"
            ),
        }
    }
}

impl std::error::Error for LimitsError {}

impl Limits {
    /// Checks the relations the parser relies on.
    pub fn validate(&self) -> Result<(), LimitsError> {
        for (name, value) in [
            ("head_max", self.head_max),
            ("body_max", self.body_max),
            ("chunk_overhead_max", self.chunk_overhead_max),
        ] {
            if value > BYTES_MAX_CAP {
                return Err(LimitsError::TooLarge { name, value });
            }
        }
        if self.request_line_max == 0 || self.request_line_max > self.head_max {
            return Err(LimitsError::RequestLine {
                request_line_max: self.request_line_max,
                head_max: self.head_max,
            });
        }
        if self.headers_max > HEADERS_MAX_CAP {
            return Err(LimitsError::Headers {
                headers_max: self.headers_max,
            });
        }
        if self.chunk_overhead_max < CHUNK_OVERHEAD_MIN {
            return Err(LimitsError::ChunkOverhead {
                chunk_overhead_max: self.chunk_overhead_max,
            });
        }
        Ok(())
    }

    /// The most bytes one pending request can hold before the parser answers: the engine's
    /// unconsumed tail never needs more than this plus one receive.
    pub fn buffer_max(&self) -> usize {
        self.head_max + self.body_max + self.chunk_overhead_max
    }
}

/// [`Limits`] packed into a few words for the per-connection parser; built from validated limits.
#[derive(Clone, Copy, Debug)]
pub(super) struct Caps {
    pub request_line_max: u32,
    pub head_max: u32,
    pub body_max: u32,
    pub chunk_overhead_max: u32,
    pub headers_max: u16,
}

impl Caps {
    /// Panics on limits that [`Limits::validate`] rejects (a configuration bug, not input).
    pub fn new(limits: &Limits) -> Caps {
        if let Err(error) = limits.validate() {
            panic!("invalid HTTP limits: {error}");
        }
        let narrow = |value: usize| u32::try_from(value).expect("validated below BYTES_MAX_CAP");
        Caps {
            request_line_max: narrow(limits.request_line_max),
            head_max: narrow(limits.head_max),
            body_max: narrow(limits.body_max),
            chunk_overhead_max: narrow(limits.chunk_overhead_max),
            headers_max: u16::try_from(limits.headers_max)
                .expect("validated below HEADERS_MAX_CAP"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_table() {
        let ok = Limits::default();
        let cases = [
            (ok, Ok(())),
            (
                Limits {
                    request_line_max: 0,
                    ..ok
                },
                Err(LimitsError::RequestLine {
                    request_line_max: 0,
                    head_max: HEAD_MAX,
                }),
            ),
            (
                Limits {
                    request_line_max: HEAD_MAX + 1,
                    ..ok
                },
                Err(LimitsError::RequestLine {
                    request_line_max: HEAD_MAX + 1,
                    head_max: HEAD_MAX,
                }),
            ),
            (
                Limits {
                    headers_max: HEADERS_MAX_CAP + 1,
                    ..ok
                },
                Err(LimitsError::Headers {
                    headers_max: HEADERS_MAX_CAP + 1,
                }),
            ),
            (
                Limits {
                    body_max: BYTES_MAX_CAP + 1,
                    ..ok
                },
                Err(LimitsError::TooLarge {
                    name: "body_max",
                    value: BYTES_MAX_CAP + 1,
                }),
            ),
            (
                Limits {
                    chunk_overhead_max: 4,
                    ..ok
                },
                Err(LimitsError::ChunkOverhead {
                    chunk_overhead_max: 4,
                }),
            ),
        ];
        for (limits, expected) in cases {
            assert_eq!(limits.validate(), expected, "{limits:?}");
        }
    }

    #[test]
    #[should_panic(expected = "invalid HTTP limits")]
    fn caps_refuse_invalid_limits() {
        Caps::new(&Limits {
            headers_max: HEADERS_MAX_CAP + 1,
            ..Limits::default()
        });
    }
}
