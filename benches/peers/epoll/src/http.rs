//! HTTP/1.x request parsing, no I/O: one complete request (head and body) from the front of a
//! buffer, or "need more bytes". The head goes through `httparse`; `Content-Length` and chunked
//! bodies are framed here. Parsing starts over on every call, so a request split anywhere
//! across reads parses the same once its last byte is in.

use std::fmt;

use peer_common::arena::Method;

/// The longest request head (request line and fields, up to and with the blank line): a 431.
pub const HEAD_MAX: usize = 16 * 1024;
/// The longest body, after chunked decoding: a 413.
pub const BODY_MAX: usize = 1024 * 1024;
/// The framing a chunked body may add to its data (sizes, extensions, CRLFs, trailers).
pub const CHUNK_FRAMING_MAX: usize = 64 * 1024;
/// The most bytes one request can take on the wire.
pub const REQUEST_MAX: usize = HEAD_MAX + BODY_MAX + CHUNK_FRAMING_MAX;
/// Header fields per request: more is a 431.
const FIELDS_MAX: usize = 64;
/// Hex digits of a chunk size: 8 is 4 GiB, far past [`BODY_MAX`].
const CHUNK_SIZE_DIGITS_MAX: usize = 8;

const _: () = assert!(BODY_MAX < 1 << (4 * CHUNK_SIZE_DIGITS_MAX));

/// Why a request cannot be answered normally; every one closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Not HTTP/1.x, a bad field, a bad or conflicting length, bad chunk framing: 400.
    Malformed,
    /// The head is over [`HEAD_MAX`] or has over `FIELDS_MAX` fields: 431.
    HeadTooLarge,
    /// The body is over [`BODY_MAX`] or its chunk framing over [`CHUNK_FRAMING_MAX`]: 413.
    BodyTooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Malformed => "malformed request",
            Error::HeadTooLarge => "request head too large",
            Error::BodyTooLarge => "request body too large",
        })
    }
}

impl std::error::Error for Error {}

/// One complete request, borrowing the buffer (and, for a chunked body, the scratch).
#[derive(Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The request target as sent: path and query.
    pub target: &'a [u8],
    /// HTTP/1.0 (`false`) or HTTP/1.1.
    pub http11: bool,
    /// Whether the connection stays open after the reply (the version and `Connection`).
    pub keep_alive: bool,
    /// The body, decoded when chunked.
    pub body: &'a [u8],
    /// The bytes this request took from the buffer.
    pub wire_len: usize,
}

/// How the body is framed, from the head's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
}

/// What the head says besides method, target and version.
#[derive(Debug)]
struct Fields {
    framing: Framing,
    close: bool,
    keep_alive: bool,
}

/// Parses the request at the front of `buf`: `Ok(None)` until all its bytes are there. A chunked
/// body is decoded into `scratch`, which the returned request then borrows.
pub fn parse<'a>(buf: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<Option<Request<'a>>, Error> {
    let mut fields = [httparse::EMPTY_HEADER; FIELDS_MAX];
    let mut head = httparse::Request::new(&mut fields);
    let head_len = match head.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => head_len,
        Ok(httparse::Status::Partial) if buf.len() > HEAD_MAX => return Err(Error::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::HeadTooLarge),
        Err(_) => return Err(Error::Malformed),
    };
    if head_len > HEAD_MAX {
        return Err(Error::HeadTooLarge);
    }
    let (Some(method), Some(target), Some(minor)) = (head.method, head.path, head.version) else {
        unreachable!("a complete httparse head has a method, a target and a version");
    };
    let http11 = minor == 1;
    let fields = read_fields(head.headers, http11)?;
    let rest = &buf[head_len..];
    let (body, body_wire_len): (&'a [u8], usize) = match fields.framing {
        Framing::Length(len) if rest.len() < len => return Ok(None),
        Framing::Length(len) => (&rest[..len], len),
        Framing::Chunked => match decode_chunked(rest, scratch)? {
            None => return Ok(None),
            Some(wire_len) => (scratch.as_slice(), wire_len),
        },
    };
    Ok(Some(Request {
        method: Method::from_token(method.as_bytes()),
        target: target.as_bytes(),
        http11,
        keep_alive: !fields.close && (http11 || fields.keep_alive),
        body,
        wire_len: head_len + body_wire_len,
    }))
}

/// The framing and connection options. Both `Content-Length` and `Transfer-Encoding`, lengths
/// that disagree, or a coding other than a lone `chunked` (or any in HTTP/1.0) are malformed:
/// the ambiguities request smuggling lives on.
fn read_fields(fields: &[httparse::Header<'_>], http11: bool) -> Result<Fields, Error> {
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    let mut keep_alive = false;
    for field in fields {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let len = parse_length(field.value)?;
            if length.is_some_and(|seen| seen != len) {
                return Err(Error::Malformed);
            }
            length = Some(len);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked || !http11 || !field.value.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                return Err(Error::Malformed);
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in field.value.split(|&byte| byte == b',') {
                let option = option.trim_ascii();
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let framing = match (length, chunked) {
        (Some(_), true) => return Err(Error::Malformed),
        (Some(len), false) => Framing::Length(len),
        (None, true) => Framing::Chunked,
        (None, false) => Framing::Length(0),
    };
    Ok(Fields {
        framing,
        close,
        keep_alive,
    })
}

/// A `Content-Length` value: digits only; over [`BODY_MAX`] is too large before any is read.
fn parse_length(value: &[u8]) -> Result<usize, Error> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(Error::Malformed);
    }
    let mut len: usize = 0;
    for &digit in value {
        len = len * 10 + usize::from(digit - b'0');
        if len > BODY_MAX {
            return Err(Error::BodyTooLarge);
        }
    }
    Ok(len)
}

/// Decodes a chunked body from the front of `wire` into `out` (cleared first): `Ok(Some(len))`
/// with the wire bytes it took once the last chunk and the trailer section are in.
fn decode_chunked(wire: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, Error> {
    out.clear();
    let mut at = 0;
    let complete = loop {
        let Some(line) = line_at(wire, at) else {
            break None;
        };
        let size = chunk_size(&wire[at..at + line])?;
        at += line + 2;
        if size == 0 {
            break skip_trailers(wire, at);
        }
        if size > BODY_MAX - out.len() {
            return Err(Error::BodyTooLarge);
        }
        if wire.len() - at < size + 2 {
            break None;
        }
        if &wire[at + size..at + size + 2] != b"\r\n" {
            return Err(Error::Malformed);
        }
        out.extend_from_slice(&wire[at..at + size]);
        at += size + 2;
    };
    match complete {
        Some(len) if len - out.len() > CHUNK_FRAMING_MAX => Err(Error::BodyTooLarge),
        Some(len) => Ok(Some(len)),
        None if wire.len() > BODY_MAX + CHUNK_FRAMING_MAX => Err(Error::BodyTooLarge),
        None => Ok(None),
    }
}

/// The end of the trailer section that starts at `at` (fields are skipped, not kept).
fn skip_trailers(wire: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let line = line_at(wire, at)?;
        at += line + 2;
        if line == 0 {
            return Some(at);
        }
    }
}

/// The length of the CRLF-terminated line that starts at `at`, without its CRLF.
fn line_at(wire: &[u8], at: usize) -> Option<usize> {
    wire[at..].windows(2).position(|pair| pair == b"\r\n")
}

/// A chunk-size line: hex digits, then optionally `;` and extensions (ignored) or whitespace.
fn chunk_size(line: &[u8]) -> Result<usize, Error> {
    let digits_len = line
        .iter()
        .position(|byte| !byte.is_ascii_hexdigit())
        .unwrap_or(line.len());
    let (digits, extensions) = line.split_at(digits_len);
    let extensions = extensions.trim_ascii_start();
    if digits.is_empty()
        || digits.len() > CHUNK_SIZE_DIGITS_MAX
        || !(extensions.is_empty() || extensions[0] == b';')
    {
        return Err(Error::Malformed);
    }
    let digits = std::str::from_utf8(digits).expect("hex digits are ASCII");
    Ok(usize::from_str_radix(digits, 16).expect("at most 8 hex digits fit a usize"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parsed request, owned.
    #[derive(Debug, PartialEq, Eq)]
    struct Parsed {
        target: Vec<u8>,
        keep_alive: bool,
        body: Vec<u8>,
        wire_len: usize,
    }

    fn parse_all(buf: &[u8]) -> Result<Option<Parsed>, Error> {
        let mut scratch = Vec::new();
        let request = parse(buf, &mut scratch)?;
        Ok(request.map(|request| Parsed {
            target: request.target.to_vec(),
            keep_alive: request.keep_alive,
            body: request.body.to_vec(),
            wire_len: request.wire_len,
        }))
    }

    /// HttpArena's fragmentation shapes: whole, each parses; every proper prefix needs more.
    #[test]
    fn every_prefix_of_a_request_needs_more() {
        let shapes: [(&[u8], &[u8]); 6] = [
            (b"GET /baseline11?a=13&b=42 HTTP/1.1\r\nHost: x\r\n\r\n", b""),
            (
                b"GET /baseline11?a=1&b=2 HTTP/1.1\r\nhost: x\r\nuser-agent: t\r\naccept: */*\r\n\r\n",
                b"",
            ),
            (
                b"POST /baseline11?a=13&b=42 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n20",
                b"20",
            ),
            (
                b"POST /baseline11?a=13&b=42 HTTP/1.1\r\ncontent-length: 2\r\n\r\n20",
                b"20",
            ),
            (
                b"POST /baseline11?a=13&b=42 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n20\r\n0\r\n\r\n",
                b"20",
            ),
            (
                b"POST /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1;x=y\r\n2\r\n1\r\n0\r\n0\r\nT: v\r\n\r\n",
                b"20",
            ),
        ];
        for (wire, body) in shapes {
            let parsed = parse_all(wire).unwrap().unwrap();
            assert!(parsed.keep_alive);
            assert_eq!(
                (parsed.body.as_slice(), parsed.wire_len),
                (body, wire.len())
            );
            for cut in 0..wire.len() {
                assert_eq!(parse_all(&wire[..cut]), Ok(None), "cut {cut} of {wire:?}");
            }
        }
    }

    #[test]
    fn parses_one_request_of_a_pipelined_stream() {
        let first = b"POST /baseline11?a=1 HTTP/1.1\r\nContent-Length: 1\r\n\r\n7";
        let stream = [&first[..], b"GET /pipeline HTTP/1.1\r\n\r\n"].concat();
        let parsed = parse_all(&stream).unwrap().unwrap();
        assert_eq!(parsed.target, b"/baseline11?a=1");
        assert_eq!(
            (parsed.body.as_slice(), parsed.wire_len),
            (&b"7"[..], first.len())
        );
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let table: [(&[u8], bool); 6] = [
            (b"GET / HTTP/1.1\r\n\r\n", true),
            (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false),
            (b"GET / HTTP/1.1\r\nconnection: TE, Close\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\n\r\n", false),
            (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            (
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                false,
            ),
        ];
        for (wire, keep_alive) in table {
            assert_eq!(
                parse_all(wire).unwrap().unwrap().keep_alive,
                keep_alive,
                "{wire:?}"
            );
        }
    }

    #[test]
    fn rejects_malformed_and_oversized_requests() {
        let long_field = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(HEAD_MAX));
        let many_fields = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(FIELDS_MAX + 1)
        );
        let partial_head = "a".repeat(HEAD_MAX + 1);
        let huge_length = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            BODY_MAX + 1
        );
        let huge_chunk = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            BODY_MAX + 1
        );
        let table: [(&[u8], Error); 15] = [
            (b"hello\r\n\r\n", Error::Malformed),
            (b"GET / HTTP/2.0\r\n\r\n", Error::Malformed),
            (b"GET / HTTP/1.1\r\nbad field\r\n\r\n", Error::Malformed),
            (
                b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                Error::Malformed,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                Error::Malformed,
            ),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Error::Malformed,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                Error::Malformed,
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Error::Malformed,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
                Error::Malformed,
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n20xx",
                Error::Malformed,
            ),
            (long_field.as_bytes(), Error::HeadTooLarge),
            (many_fields.as_bytes(), Error::HeadTooLarge),
            (partial_head.as_bytes(), Error::HeadTooLarge),
            (huge_length.as_bytes(), Error::BodyTooLarge),
            (huge_chunk.as_bytes(), Error::BodyTooLarge),
        ];
        for (wire, error) in table {
            assert_eq!(
                parse_all(wire),
                Err(error),
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn bounds_chunk_framing() {
        let mut wire = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        while wire.len() < HEAD_MAX + BODY_MAX + CHUNK_FRAMING_MAX {
            wire.extend_from_slice(b"1;padding-padding-padding\r\nx\r\n");
        }
        assert_eq!(parse_all(&wire), Err(Error::BodyTooLarge));
        let mut body = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..=BODY_MAX / 4096 {
            body.extend_from_slice(format!("1000\r\n{}\r\n", "y".repeat(4096)).as_bytes());
        }
        assert_eq!(parse_all(&body), Err(Error::BodyTooLarge));
    }
}
