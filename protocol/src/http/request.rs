//! A parsed request, borrowing everything from the parser's input.

use super::chunked::Chunks;

/// The protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Version {
    /// `HTTP/1.0`.
    Http10,
    /// `HTTP/1.1`.
    Http11,
}

/// One complete request at the start of the parser's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method token, case-sensitive (`GET`, `POST`, ...).
    pub method: &'a str,
    /// The request target up to its `?` (the whole target without one): `/baseline11`.
    pub path: &'a str,
    /// The target after its first `?`, if it has one (possibly empty): `a=13&b=42`.
    pub query: Option<&'a str>,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Whether the client lets the connection persist: HTTP/1.1 unless a `close` Connection
    /// option, HTTP/1.0 only with a `keep-alive` option.
    pub keep_alive: bool,
    /// The first well-formed `x-client-tag: <decimal u64>` field; malformed ones are ignored.
    pub tag: Option<u64>,
    /// The header fields, in the order received.
    pub headers: Headers<'a>,
    /// The message body, already complete and validated.
    pub body: Body<'a>,
}

/// A request's header fields, read from the head in place (no copy, no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Headers<'a> {
    /// The header lines of a head `httparse` accepted, each ending in LF (CRLF or bare LF).
    lines: &'a [u8],
}

impl<'a> Headers<'a> {
    pub(super) fn new(lines: &'a [u8]) -> Headers<'a> {
        Headers { lines }
    }

    /// Every field as (name, value), the value without its surrounding whitespace.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.lines.split(|&byte| byte == b'\n').filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|&byte| byte == b':')?;
            // A token (validated by httparse): ASCII.
            let name = std::str::from_utf8(&line[..colon]).ok()?;
            Some((name, line[colon + 1..].trim_ascii()))
        })
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }
}

/// A request's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// Neither Content-Length nor Transfer-Encoding: no body.
    Empty,
    /// A Content-Length body, in one piece.
    Length(&'a [u8]),
    /// A chunked body, still in its validated encoding.
    Chunked(Chunked<'a>),
}

impl<'a> Body<'a> {
    /// The decoded length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::Length(bytes) => bytes.len(),
            Body::Chunked(chunked) => chunked.len(),
        }
    }

    /// Whether the body has no data.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The data in order, in one or more non-empty pieces, without copying.
    pub fn pieces(&self) -> Pieces<'a> {
        match *self {
            Body::Empty => Pieces {
                whole: None,
                chunks: Chunks::new(&[]),
            },
            Body::Length(bytes) => Pieces {
                whole: Some(bytes).filter(|bytes| !bytes.is_empty()),
                chunks: Chunks::new(&[]),
            },
            Body::Chunked(chunked) => Pieces {
                whole: None,
                chunks: chunked.chunks(),
            },
        }
    }
}

/// A chunked body: its validated encoding and decoded length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunked<'a> {
    encoded: &'a [u8],
    len: usize,
}

impl<'a> Chunked<'a> {
    pub(super) fn new(encoded: &'a [u8], len: usize) -> Chunked<'a> {
        Chunked { encoded, len }
    }

    /// The sum of the chunk sizes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether every chunk before the last one is absent (the body is `0\r\n\r\n`).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The encoding as received: size lines, data, trailers, the final CRLF.
    pub fn encoded(&self) -> &'a [u8] {
        self.encoded
    }

    /// The data of each chunk, in order.
    pub fn chunks(&self) -> Chunks<'a> {
        Chunks::new(self.encoded)
    }
}

/// The data pieces of a [`Body`]; see [`Body::pieces`].
#[derive(Clone, Debug)]
pub struct Pieces<'a> {
    whole: Option<&'a [u8]>,
    chunks: Chunks<'a>,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.whole.take().or_else(|| self.chunks.next())
    }
}
