//! Writes responses into the caller's output buffer: no allocation beyond that buffer growing.

use super::date::HttpDate;
use super::error::Error;
use super::request::Version;

/// The most bytes the status line and headers this module writes can take, beyond the
/// Content-Type and Allow values: reserved up front so a response grows `out` at most once.
/// (172 for the longest: a 431 with a 20-digit length, keep-alive and an Allow.)
const HEAD_BYTES_MAX: usize = 192;

/// What the response's Connection header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// No Connection header: HTTP/1.1 persists by default.
    Omit,
    /// `Connection: keep-alive`, for an HTTP/1.0 client that asked for it.
    KeepAlive,
    /// `Connection: close`: the server closes after this response.
    Close,
    /// `Connection: Upgrade`: a `101 Switching Protocols`, after which the connection speaks
    /// another protocol.
    Upgrade,
}

impl ConnectionHeader {
    /// The header for a response to a `version` request after which the connection stays open
    /// (`keep_open`) or closes.
    pub fn new(version: Version, keep_open: bool) -> ConnectionHeader {
        match (keep_open, version) {
            (false, _) => ConnectionHeader::Close,
            (true, Version::Http10) => ConnectionHeader::KeepAlive,
            (true, Version::Http11) => ConnectionHeader::Omit,
        }
    }
}

/// One response to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response<'b> {
    /// The status code, 100..=999; its reason phrase comes from [`reason_phrase`].
    pub status: u16,
    /// The Content-Type value, such as `text/plain`.
    pub content_type: &'static str,
    /// The body (its length is the Content-Length).
    pub body: &'b [u8],
    /// The Allow value, sent when present (a 405 must carry one).
    pub allow: Option<&'static str>,
    /// A response to HEAD: the Content-Length of `body`, but no body.
    pub head_only: bool,
    /// The Connection header.
    pub connection: ConnectionHeader,
}

/// The reason phrase of the status codes this crate sends; `Unknown` for others.
pub const fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// Appends `HTTP/1.1 <status> <reason>`, Content-Type, Content-Length, Date, Connection and
/// Allow when they apply, the blank line, and the body unless `head_only`.
pub fn write_response(out: &mut Vec<u8>, date: &HttpDate, response: &Response<'_>) {
    let body: &[u8] = if response.head_only {
        &[]
    } else {
        response.body
    };
    out.reserve(head_len_max(response) + body.len());
    write_head(out, date, response, response.body.len());
    out.extend_from_slice(body);
}

/// Appends the response to a request the parser rejected: its status, a short text/plain body
/// (the reason and a LF), `Connection: close`. The caller closes after sending it.
pub fn write_error(out: &mut Vec<u8>, date: &HttpDate, error: Error) {
    write_plain_error(out, date, error.status(), error.reason(), None, false);
}

/// Appends an error response: `status`, a text/plain body `reason` and a LF (none if
/// `head_only`, the answer to HEAD), `allow` if given, and `Connection: close`.
pub fn write_plain_error(
    out: &mut Vec<u8>,
    date: &HttpDate,
    status: u16,
    reason: &'static str,
    allow: Option<&'static str>,
    head_only: bool,
) {
    let response = Response {
        status,
        content_type: "text/plain",
        body: reason.as_bytes(),
        allow,
        head_only,
        connection: ConnectionHeader::Close,
    };
    out.reserve(head_len_max(&response) + reason.len() + 1);
    // The body is `reason` and a LF, appended in place rather than joined first.
    write_head(out, date, &response, reason.len() + 1);
    if !head_only {
        out.extend_from_slice(reason.as_bytes());
        out.push(b'\n');
    }
}

/// An upper bound of the head's bytes, to grow `out` once.
fn head_len_max(response: &Response<'_>) -> usize {
    HEAD_BYTES_MAX + response.content_type.len() + response.allow.map_or(0, str::len)
}

fn write_head(out: &mut Vec<u8>, date: &HttpDate, response: &Response<'_>, content_length: usize) {
    assert!(
        (100..=999).contains(&response.status),
        "status {}",
        response.status
    );
    debug_assert!(is_field_value(response.content_type));
    debug_assert!(response.allow.into_iter().all(is_field_value));
    let mut digits = itoa::Buffer::new();
    if (response.status, response.content_type) == (200, "text/plain") {
        // The answer to nearly every request: its first lines in one copy.
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(digits.format(response.status).as_bytes());
        out.push(b' ');
        out.extend_from_slice(reason_phrase(response.status).as_bytes());
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(response.content_type.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
    }
    out.extend_from_slice(digits.format(content_length).as_bytes());
    out.extend_from_slice(b"\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(match response.connection {
        ConnectionHeader::Omit => b"\r\n",
        ConnectionHeader::KeepAlive => b"\r\nConnection: keep-alive\r\n",
        ConnectionHeader::Close => b"\r\nConnection: close\r\n",
        ConnectionHeader::Upgrade => b"\r\nConnection: Upgrade\r\n",
    });
    if let Some(allow) = response.allow {
        out.extend_from_slice(b"Allow: ");
        out.extend_from_slice(allow.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Header fields a service may not set: the writer sets them from the response itself.
const FIELDS_RESERVED: [&str; 4] = ["content-length", "date", "connection", "transfer-encoding"];

/// A header field [`write_with_fields`] refused to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// The name is not a token (RFC 9110 §5.1), or the value has a CR, LF or control byte.
    Malformed { index: usize },
    /// Content-Length, Date, Connection or Transfer-Encoding: the writer sets those.
    Reserved { index: usize },
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FieldError::Malformed { index } => write!(f, "header field {index} is malformed"),
            FieldError::Reserved { index } => {
                write!(f, "header field {index} is set by the server itself")
            }
        }
    }
}

impl std::error::Error for FieldError {}

/// Appends a response with the caller's header fields: `HTTP/1.1 <status> <reason>`, each
/// `(name, value)` of `fields` in order, Content-Length (not for 1xx, 204 and 304), Date, the
/// Connection header, the blank line and `body` (none if `head_only`). A field that is
/// malformed or reserved is refused and nothing is written.
pub fn write_with_fields(
    out: &mut Vec<u8>,
    date: &HttpDate,
    status: u16,
    fields: &[(&str, &str)],
    body: &[u8],
    connection: ConnectionHeader,
    head_only: bool,
) -> Result<(), FieldError> {
    check_fields(fields)?;
    assert!((100..=999).contains(&status), "status {status}");
    let mut digits = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(digits.format(status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // RFC 9110 §8.6: no Content-Length in a 1xx or 204 (nor in a 304, whose would be the
    // resource's).
    if !(status < 200 || status == 204 || status == 304) {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(digits.format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Date: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(match connection {
        ConnectionHeader::Omit => b"\r\n\r\n".as_slice(),
        ConnectionHeader::KeepAlive => b"\r\nConnection: keep-alive\r\n\r\n",
        ConnectionHeader::Close => b"\r\nConnection: close\r\n\r\n",
        ConnectionHeader::Upgrade => b"\r\nConnection: Upgrade\r\n\r\n",
    });
    if !head_only {
        out.extend_from_slice(body);
    }
    Ok(())
}

/// Whether [`write_with_fields`] takes these fields: names are tokens, values have no CR, LF or
/// control byte, and none is one the writer sets itself.
pub fn check_fields(fields: &[(&str, &str)]) -> Result<(), FieldError> {
    for (index, (name, value)) in fields.iter().enumerate() {
        if !is_token(name) || !is_field_value(value) {
            return Err(FieldError::Malformed { index });
        }
        if FIELDS_RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(FieldError::Reserved { index });
        }
    }
    Ok(())
}

/// A token (RFC 9110 §5.6.2): a field name.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte))
}

/// A header value we may write as is: visible ASCII and spaces, no CR or LF.
fn is_field_value(value: &str) -> bool {
    value
        .bytes()
        .all(|byte| byte == b' ' || byte.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn date() -> HttpDate {
        HttpDate::new(UNIX_EPOCH + Duration::from_secs(784_111_777))
    }

    fn written(response: Response<'_>) -> String {
        let mut out = Vec::new();
        write_response(&mut out, &date(), &response);
        String::from_utf8(out).expect("ascii")
    }

    const OK: Response<'static> = Response {
        status: 200,
        content_type: "text/plain",
        body: b"55",
        allow: None,
        head_only: false,
        connection: ConnectionHeader::Omit,
    };

    #[test]
    fn a_service_sets_its_fields_and_not_the_framing() {
        let mut out = Vec::new();
        let fields = [("Content-Type", "application/json"), ("X-Id", "7")];
        let head_only = false;
        write_with_fields(
            &mut out,
            &date(),
            201,
            &fields,
            b"{}",
            ConnectionHeader::Close,
            head_only,
        )
        .unwrap();
        let d = "Date: Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("HTTP/1.1 201 Unknown\r\nContent-Type: application/json\r\nX-Id: 7\r\nContent-Length: 2\r\n{d}\r\nConnection: close\r\n\r\n{{}}")
        );
        let refused = [
            (("Bad Name", "x"), FieldError::Malformed { index: 0 }),
            (
                ("X", "a\r\nInjected: 1"),
                FieldError::Malformed { index: 0 },
            ),
            (("content-length", "9"), FieldError::Reserved { index: 0 }),
            (
                ("Connection", "keep-alive"),
                FieldError::Reserved { index: 0 },
            ),
        ];
        for (field, error) in refused {
            let mut out = Vec::new();
            let result = write_with_fields(
                &mut out,
                &date(),
                200,
                &[field],
                b"",
                ConnectionHeader::Omit,
                false,
            );
            assert_eq!(result, Err(error), "{field:?}");
            assert!(out.is_empty(), "nothing written for {field:?}");
        }
        let mut out = Vec::new();
        let upgrade = [("Upgrade", "websocket")];
        write_with_fields(
            &mut out,
            &date(),
            101,
            &upgrade,
            b"",
            ConnectionHeader::Upgrade,
            false,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n{d}\r\nConnection: Upgrade\r\n\r\n"),
            "no Content-Length in a 1xx"
        );
    }

    #[test]
    fn response_table() {
        let d = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";
        let cases = [
            (
                OK,
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n{d}\r\n55"),
            ),
            (
                Response { head_only: true, ..OK },
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n{d}\r\n"),
            ),
            (
                Response { connection: ConnectionHeader::Close, ..OK },
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n{d}Connection: close\r\n\r\n55"),
            ),
            (
                Response { connection: ConnectionHeader::KeepAlive, ..OK },
                format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n{d}Connection: keep-alive\r\n\r\n55"),
            ),
            (
                Response { status: 405, body: b"", allow: Some("GET, HEAD"), connection: ConnectionHeader::Close, ..OK },
                format!("HTTP/1.1 405 Method Not Allowed\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n{d}Connection: close\r\nAllow: GET, HEAD\r\n\r\n"),
            ),
        ];
        for (response, expected) in cases {
            assert_eq!(written(response), expected, "{response:?}");
        }
    }

    #[test]
    fn error_responses_close_with_a_short_body() {
        let mut out = Vec::new();
        write_error(&mut out, &date(), Error::HeadTooLarge);
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n\
             Content-Length: 23\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
             Connection: close\r\n\r\nrequest head too large\n"
        );
        for error in [
            Error::BadHeader,
            Error::RequestLineTooLong,
            Error::BodyTooLarge,
            Error::UnsupportedTransferCoding,
            Error::VersionNotSupported,
        ] {
            let mut out = Vec::new();
            write_error(&mut out, &date(), error);
            let text = String::from_utf8(out).expect("ascii");
            let status = format!(
                "HTTP/1.1 {} {}\r\n",
                error.status(),
                reason_phrase(error.status())
            );
            assert!(text.starts_with(&status), "{text}");
            assert!(text.contains("Connection: close\r\n"), "{text}");
            assert!(
                text.ends_with(&format!("\r\n\r\n{}\n", error.reason())),
                "{text}"
            );
        }
    }

    #[test]
    fn connection_header_table() {
        let cases = [
            (Version::Http11, true, ConnectionHeader::Omit),
            (Version::Http11, false, ConnectionHeader::Close),
            (Version::Http10, true, ConnectionHeader::KeepAlive),
            (Version::Http10, false, ConnectionHeader::Close),
        ];
        for (version, keep_open, expected) in cases {
            assert_eq!(ConnectionHeader::new(version, keep_open), expected);
        }
    }

    #[test]
    fn the_reserve_covers_the_longest_head() {
        let response = Response {
            status: 431,
            allow: Some("GET"),
            head_only: true,
            body: &[0; 0],
            connection: ConnectionHeader::KeepAlive,
            ..OK
        };
        let mut out = Vec::new();
        // The longest Content-Length: write the head alone with a 20-digit length.
        write_head(&mut out, &date(), &response, usize::MAX);
        assert_eq!(usize::MAX.to_string().len(), 20);
        assert!(out.len() <= head_len_max(&response), "{}", out.len());
    }
}
