//! A complete request head, parsed by `httparse`, and the framing and persistence its fields
//! decide (RFC 9112 §3, §6, §9.3).

use std::mem::MaybeUninit;

use super::error::Error;
use super::examined;
use super::fields::{self, ConnectionOptions, ContentLength, TransferCodings};
use super::limits::{Caps, HEADERS_MAX_CAP};
use super::request::{Body, Headers, Request, Version};

/// How the body after a head is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body.
    None,
    /// Content-Length bytes (at most `body_max`).
    Length(u32),
    /// The chunked coding.
    Chunked,
}

/// What a head says; becomes a [`Request`] once its body is complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Head<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub version: Version,
    pub keep_alive: bool,
    pub tag: Option<u64>,
    pub framing: Framing,
    /// An HTTP/1.1 request that sent `Expect: 100-continue`: it waits for a `100 Continue`
    /// before it sends its body.
    pub expects_continue: bool,
    /// The header fields as received (validated by `httparse`), one per line.
    pub fields: &'a [u8],
}

impl<'a> Head<'a> {
    pub fn into_request(self, body: Body<'a>) -> Request<'a> {
        Request {
            method: self.method,
            path: self.path,
            query: self.query,
            version: self.version,
            keep_alive: self.keep_alive,
            tag: self.tag,
            headers: Headers::new(self.fields),
            body,
        }
    }
}

/// Validates a request line as soon as its LF arrives: `input` ends right after that LF, and
/// the line starts at `start` (after leading empty lines).
pub(super) fn check_request_line(input: &[u8], start: usize) -> Result<(), Error> {
    examined(input.len());
    let mut request = httparse::Request::new(&mut []);
    let mut no_fields: [MaybeUninit<httparse::Header<'_>>; 0] = [];
    match request.parse_with_uninit_headers(input, &mut no_fields) {
        // The head goes on: the header section is still partial.
        Ok(httparse::Status::Partial) => Ok(()),
        Ok(httparse::Status::Complete(_)) => Ok(()),
        Err(error) => Err(line_error(input.get(start..).unwrap_or_default(), error)),
    }
}

/// Names a request line `httparse` rejected: 505 for a well-formed version other than 1.0 and
/// 1.1, or for a version-less `METHOD /target` line (HTTP/0.9); 400 otherwise.
fn line_error(line: &[u8], error: httparse::Error) -> Error {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&byte| byte == b' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(method), Some(target), None, None)
            if !method.is_empty()
                && method.iter().all(u8::is_ascii_uppercase)
                && target.starts_with(b"/") =>
        {
            Error::VersionNotSupported
        }
        (Some(_), Some(_), Some(version), None)
            if error == httparse::Error::Version && is_version(version) =>
        {
            Error::VersionNotSupported
        }
        _ => Error::BadRequestLine,
    }
}

/// `HTTP/` 1*DIGIT [ "." 1*DIGIT ].
fn is_version(token: &[u8]) -> bool {
    let Some(number) = token.strip_prefix(b"HTTP/") else {
        return false;
    };
    let mut parts = number.splitn(2, |&byte| byte == b'.');
    let digits = |part: &[u8]| !part.is_empty() && part.iter().all(u8::is_ascii_digit);
    parts.next().is_some_and(digits) && parts.next().into_iter().all(digits)
}

/// Parses a complete head (`head` ends right after its blank line) and checks its framing.
pub(super) fn parse<'a>(head: &'a [u8], caps: &Caps) -> Result<Head<'a>, Error> {
    examined(head.len());
    let mut slots = [MaybeUninit::<httparse::Header<'a>>::uninit(); HEADERS_MAX_CAP];
    let slots = &mut slots[..usize::from(caps.headers_max)];
    let mut request = httparse::Request::new(&mut []);
    match request.parse_with_uninit_headers(head, slots) {
        Ok(httparse::Status::Complete(len)) if len == head.len() => {}
        Ok(_) => return Err(Error::BadHeader),
        Err(httparse::Error::TooManyHeaders) => return Err(Error::TooManyHeaders),
        Err(_) => return Err(Error::BadHeader),
    }
    interpret(&request, caps, head)
}

/// The common case at once: a whole, well-formed head at the start of `input` within every
/// limit, parsed by one `httparse` call without scanning first. Its answer is the one the
/// byte-by-byte path gives (the same `httparse` parse of the same bytes); anything else — an
/// incomplete head, one `httparse` rejects, one past a limit — is `None`, for the byte-by-byte
/// path to answer exactly.
pub(super) fn parse_whole<'a>(
    input: &'a [u8],
    caps: &Caps,
) -> Option<(Result<Head<'a>, Error>, usize)> {
    let mut slots = [MaybeUninit::<httparse::Header<'a>>::uninit(); HEADERS_MAX_CAP];
    let slots = &mut slots[..usize::from(caps.headers_max)];
    let mut request = httparse::Request::new(&mut []);
    let Ok(httparse::Status::Complete(len)) = request.parse_with_uninit_headers(input, slots)
    else {
        return None;
    };
    examined(len);
    let start = input
        .iter()
        .take_while(|&&byte| byte == b'\r' || byte == b'\n')
        .count();
    let line_len = input[start..len].iter().position(|&byte| byte == b'\n')? + 1;
    if len > caps.head_max as usize || line_len > caps.request_line_max as usize {
        return None;
    }
    Some((interpret(&request, caps, &input[..len]), len))
}

/// What a head `httparse` accepted says: its version, target, persistence, tag and framing;
/// `head` is its bytes, blank line included.
fn interpret<'a>(
    request: &httparse::Request<'_, 'a>,
    caps: &Caps,
    head: &'a [u8],
) -> Result<Head<'a>, Error> {
    let (Some(method), Some(target), Some(minor)) = (request.method, request.path, request.version)
    else {
        return Err(Error::BadRequestLine);
    };
    let version = match minor {
        0 => Version::Http10,
        1 => Version::Http11,
        _ => return Err(Error::VersionNotSupported),
    };
    let mut hosts = 0usize;
    let mut length = ContentLength::default();
    let mut codings = TransferCodings::default();
    let mut options = ConnectionOptions::default();
    let mut tag = None;
    let mut expects_continue = false;
    for field in request.headers.iter() {
        let name = field.name.as_bytes();
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
            if !fields::is_host(field.value) {
                return Err(Error::BadHost);
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expects_continue |= field
                .value
                .trim_ascii()
                .eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"content-length") {
            length.add(field.value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            codings.add(field.value);
        } else if name.eq_ignore_ascii_case(b"connection") {
            options.add(field.value);
        } else if name.eq_ignore_ascii_case(b"x-client-tag") && tag.is_none() {
            tag = fields::client_tag(field.value);
        }
    }
    match (version, hosts) {
        (Version::Http11, 0) => return Err(Error::MissingHost),
        (_, 2..) => return Err(Error::MultipleHost),
        _ => {}
    }
    let framing = framing(version, length, codings, caps)?;
    // RFC 9112 §3.2.2: a server must accept the absolute form; its path is what is served.
    let target = origin_form(target);
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    // An empty path (`http://host`, `http://host?q`) is `/` (RFC 9112 §3.2.1).
    let path = if path.is_empty() { "/" } else { path };
    Ok(Head {
        method,
        path,
        query,
        version,
        keep_alive: options.keep_alive(version == Version::Http11),
        tag,
        framing,
        // RFC 9110 §10.1.1: an HTTP/1.0 client's expectation is ignored.
        expects_continue: expects_continue && version == Version::Http11,
        fields: fields_of(head),
    })
}

/// The origin form of a request target: an absolute-form target (`http://host:port/path?q`)
/// without its scheme and authority (`/path?q`; empty for `http://host`); any other form as
/// it is.
fn origin_form(target: &str) -> &str {
    let Some(colon) = target.find("://") else {
        return target;
    };
    let scheme = &target[..colon];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return target;
    }
    let rest = &target[colon + 3..];
    rest.find(['/', '?']).map_or("", |at| &rest[at..])
}

/// The header lines of a valid head: after the request line (and any empty lines before it),
/// up to the blank line.
fn fields_of(head: &[u8]) -> &[u8] {
    let start = head
        .iter()
        .take_while(|&&byte| byte == b'\r' || byte == b'\n')
        .count();
    let after_line = head[start..]
        .iter()
        .position(|&byte| byte == b'\n')
        .map_or(head.len(), |at| start + at + 1);
    let blank = if head.ends_with(b"\r\n") { 2 } else { 1 };
    &head[after_line..head.len().saturating_sub(blank).max(after_line)]
}

/// The body framing of RFC 9112 §6.3, stricter where smuggling lives: Transfer-Encoding with
/// Content-Length, or in HTTP/1.0, is rejected rather than resolved.
fn framing(
    version: Version,
    length: ContentLength,
    codings: TransferCodings,
    caps: &Caps,
) -> Result<Framing, Error> {
    if codings.present() {
        if length.get().is_some() {
            return Err(Error::LengthAndTransferEncoding);
        }
        if version == Version::Http10 {
            return Err(Error::TransferEncodingHttp10);
        }
        codings.check()?;
        return Ok(Framing::Chunked);
    }
    match length.get() {
        None => Ok(Framing::None),
        Some(Err(error)) => Err(error),
        Some(Ok(len)) if len > u64::from(caps.body_max) => Err(Error::BodyTooLarge),
        Some(Ok(len)) => Ok(Framing::Length(len as u32)), // <= body_max < 2^32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::limits::Limits;

    #[test]
    fn request_line_table() {
        let cases: &[(&str, Result<(), Error>)] = &[
            ("GET / HTTP/1.1\r\n", Ok(())),
            ("GET / HTTP/1.0\n", Ok(())),
            ("\r\nGET /x?y HTTP/1.1\r\n", Ok(())),
            ("OPTIONS * HTTP/1.1\r\n", Ok(())),
            ("GET http://a/b HTTP/1.1\r\n", Ok(())),
            ("GET / HTTP/2.0\r\n", Err(Error::VersionNotSupported)),
            ("GET / HTTP/1.2\r\n", Err(Error::VersionNotSupported)),
            ("GET / HTTP/0.9\r\n", Err(Error::VersionNotSupported)),
            ("GET / HTTP/2\r\n", Err(Error::VersionNotSupported)),
            ("GET / HTTP/10.10\r\n", Err(Error::VersionNotSupported)),
            ("GET /\r\n", Err(Error::VersionNotSupported)),
            ("GET /index.html\n", Err(Error::VersionNotSupported)),
            ("GET / http/1.1\r\n", Err(Error::BadRequestLine)),
            ("GET / HTTP/\r\n", Err(Error::BadRequestLine)),
            ("GET / HTTP/1.x\r\n", Err(Error::BadRequestLine)),
            ("GET / HTTP/1.1 \r\n", Err(Error::BadRequestLine)),
            ("GET  / HTTP/1.1\r\n", Err(Error::BadRequestLine)),
            ("GET / HTTP/1.1\rx\n", Err(Error::BadRequestLine)),
            ("GET\r\n", Err(Error::BadRequestLine)),
            ("get x\r\n", Err(Error::BadRequestLine)),
            ("G(T / HTTP/1.1\r\n", Err(Error::BadRequestLine)),
            ("GET /a b HTTP/1.1\r\n", Err(Error::BadRequestLine)),
            ("GET /\x01 HTTP/1.1\r\n", Err(Error::BadRequestLine)),
            (" GET / HTTP/1.1\r\n", Err(Error::BadRequestLine)),
        ];
        for (line, expected) in cases {
            let start = line.len() - line.trim_start_matches(['\r', '\n']).len();
            assert_eq!(
                check_request_line(line.as_bytes(), start),
                *expected,
                "{line:?}"
            );
        }
    }

    #[test]
    fn headers_are_read_in_place_in_order() {
        let caps = Caps::new(&Limits::default());
        for head in [
            "GET / HTTP/1.1\r\nHost: a\r\nX-Two:  b c \r\nx-two: d\r\nEmpty:\r\n\r\n",
            "\r\nGET / HTTP/1.1\nHost: a\nX-Two:\tb c\nx-two: d\nEmpty: \n\n",
        ] {
            let parsed = parse(head.as_bytes(), &caps).expect(head);
            let request = parsed.into_request(Body::Empty);
            let fields: Vec<(&str, &[u8])> = request.headers.iter().collect();
            let expected: [(&str, &[u8]); 4] = [
                ("Host", b"a"),
                ("X-Two", b"b c"),
                ("x-two", b"d"),
                ("Empty", b""),
            ];
            assert_eq!(fields, expected, "{head:?}");
            assert_eq!(request.headers.get("x-TWO"), Some(&b"b c"[..]), "the first");
            assert_eq!(request.headers.get("Missing"), None);
        }
        let bare = parse(b"GET / HTTP/1.0\r\n\r\n", &caps).unwrap();
        assert_eq!(bare.into_request(Body::Empty).headers.iter().count(), 0);
    }

    #[test]
    fn parse_splits_the_target() {
        let caps = Caps::new(&Limits::default());
        let cases: &[(&str, &str, Option<&str>)] = &[
            ("/", "/", None),
            ("/baseline11?a=13&b=42", "/baseline11", Some("a=13&b=42")),
            ("/x?", "/x", Some("")),
            ("/x?a?b", "/x", Some("a?b")),
            ("*", "*", None),
        ];
        let absolute: &[(&str, &str, Option<&str>)] = &[
            ("http://x/pipeline", "/pipeline", None),
            ("HTTP://x:80/baseline11?a=1", "/baseline11", Some("a=1")),
            ("https://x", "/", None),
            ("http://x?a", "/", Some("a")),
        ];
        for (target, path, query) in cases.iter().chain(absolute) {
            let head = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            let parsed = parse(head.as_bytes(), &caps).expect(target);
            assert_eq!((parsed.path, parsed.query), (*path, *query), "{target}");
        }
    }
}
