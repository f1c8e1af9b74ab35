//! HTTP/1.1 responses from a byte stream fed in arbitrary pieces: heads parsed with
//! `httparse::Response`, bodies framed by Content-Length (the engine always sends it).

use std::fmt;

use crate::limits::{HTTP_RESPONSE_BYTES_MAX, HTTP_RESPONSE_HEADERS_MAX};

/// One response, borrowing from the decoder's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpReply<'a> {
    pub status: u16,
    /// The Content-Type value, if sent.
    pub content_type: Option<&'a [u8]>,
    /// It says `Connection: close`.
    pub closes: bool,
    pub body: &'a [u8],
}

impl HttpReply<'_> {
    /// `Content-Type: text/plain` (media types compare case-insensitively).
    pub fn is_text_plain(&self) -> bool {
        self.content_type
            .is_some_and(|value| value.eq_ignore_ascii_case(b"text/plain"))
    }
}

/// Why the response stream cannot be read on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseError {
    /// The status line or a header field is malformed.
    Head(httparse::Error),
    /// No Content-Length: the body cannot be framed.
    NoContentLength,
    /// A Content-Length that is not a decimal length, or two of them.
    BadContentLength,
    /// A Transfer-Encoding: the engine never sends one, and bodies are framed by length.
    TransferEncoding,
    /// A response longer than HTTP_RESPONSE_BYTES_MAX.
    TooLarge { bytes: usize },
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::Head(error) => write!(f, "malformed response head ({error})"),
            ResponseError::NoContentLength => f.write_str("a response without Content-Length"),
            ResponseError::BadContentLength => f.write_str("a bad or repeated Content-Length"),
            ResponseError::TransferEncoding => f.write_str("a response with Transfer-Encoding"),
            ResponseError::TooLarge { bytes } => write!(
                f,
                "a response of {bytes} bytes or more (at most {HTTP_RESPONSE_BYTES_MAX})"
            ),
        }
    }
}

impl std::error::Error for ResponseError {}

/// Decodes the responses of one connection. Responses complete inside one piece are read
/// straight from it; only the incomplete rest is kept.
#[derive(Debug, Default)]
pub struct ResponseDecoder {
    pending: Vec<u8>,
    failed: Option<ResponseError>,
}

impl ResponseDecoder {
    pub fn new() -> ResponseDecoder {
        ResponseDecoder::default()
    }

    /// Feeds the next piece, calling `on_reply` for every response it completes. After an
    /// error every later call returns the same error.
    pub fn feed(
        &mut self,
        data: &[u8],
        mut on_reply: impl FnMut(HttpReply<'_>),
    ) -> Result<(), ResponseError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let result = if self.pending.is_empty() {
            let used = parse_all(data, &mut on_reply);
            if let Ok(used) = used {
                self.pending.extend_from_slice(&data[used..]);
            }
            used
        } else {
            self.pending.extend_from_slice(data);
            let used = parse_all(&self.pending, &mut on_reply);
            if let Ok(used) = used {
                self.pending.drain(..used);
            }
            used
        };
        let result = match (result, self.pending.len()) {
            (Ok(_), bytes) if bytes > HTTP_RESPONSE_BYTES_MAX => {
                Err(ResponseError::TooLarge { bytes })
            }
            (result, _) => result.map(drop),
        };
        if let Err(error) = result {
            self.failed = Some(error);
            self.pending = Vec::new();
        }
        result
    }
}

/// Reads every whole response at the start of `bytes`; returns the bytes they took.
fn parse_all(
    bytes: &[u8],
    on_reply: &mut impl FnMut(HttpReply<'_>),
) -> Result<usize, ResponseError> {
    let mut used = 0;
    while let Some((reply, len)) = parse_one(&bytes[used..])? {
        on_reply(reply);
        used += len;
    }
    Ok(used)
}

/// The response at the start of `bytes` and its length, or `None` if it is incomplete.
fn parse_one(bytes: &[u8]) -> Result<Option<(HttpReply<'_>, usize)>, ResponseError> {
    let mut headers = [httparse::EMPTY_HEADER; HTTP_RESPONSE_HEADERS_MAX];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(bytes).map_err(ResponseError::Head)? {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => return Ok(None),
    };
    let (mut content_type, mut content_length, mut closes) = (None, None, false);
    for header in response.headers.iter() {
        let name = header.name;
        if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(ResponseError::BadContentLength);
            }
            content_length = Some(parse_length(header.value)?);
        } else if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(header.value);
        } else if name.eq_ignore_ascii_case("connection") {
            closes |= has_token(header.value, b"close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ResponseError::TransferEncoding);
        }
    }
    let body_len = content_length.ok_or(ResponseError::NoContentLength)?;
    if body_len > HTTP_RESPONSE_BYTES_MAX {
        return Err(ResponseError::TooLarge { bytes: body_len });
    }
    let Some(body) = bytes.get(head_len..head_len + body_len) else {
        return Ok(None);
    };
    let status = response
        .code
        .expect("a complete response head has a status");
    let reply = HttpReply {
        status,
        content_type,
        closes,
        body,
    };
    Ok(Some((reply, head_len + body_len)))
}

/// A Content-Length value: 1 to 19 decimal digits.
fn parse_length(value: &[u8]) -> Result<usize, ResponseError> {
    let digits = value.trim_ascii();
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return Err(ResponseError::BadContentLength);
    }
    digits
        .iter()
        .try_fold(0usize, |n, &d| {
            n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
        })
        .ok_or(ResponseError::BadContentLength)
}

/// Whether the comma-separated list `value` holds `token` (case-insensitively).
fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\
                        Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\nok";
    const CLOSING: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n\
                             Content-Length: 4\r\nConnection: close\r\n\r\nbad\n";

    /// Status, `Connection: close` and body of each response.
    type Seen = Vec<(u16, bool, Vec<u8>)>;

    fn replies(pieces: &[&[u8]]) -> (Seen, Result<(), ResponseError>) {
        let mut decoder = ResponseDecoder::new();
        let mut seen = Vec::new();
        let mut result = Ok(());
        for piece in pieces {
            result = decoder.feed(piece, |r| {
                assert!(r.is_text_plain());
                seen.push((r.status, r.closes, r.body.to_vec()));
            });
        }
        (seen, result)
    }

    #[test]
    fn every_split_gives_the_same_responses() {
        let stream = [OK, OK, CLOSING].concat();
        let whole = replies(&[&stream]);
        assert_eq!(whole.0.len(), 3);
        assert_eq!(whole.0[2], (400, true, b"bad\n".to_vec()));
        for at in 0..stream.len() {
            let (a, b) = stream.split_at(at);
            assert_eq!(replies(&[a, b]), whole, "split at {at}");
        }
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(replies(&bytes), whole, "one byte at a time");
    }

    #[test]
    fn unframeable_responses_are_errors() {
        let cases: [(&[u8], ResponseError); 5] = [
            (b"HTTP/1.1 200 OK\r\n\r\n", ResponseError::NoContentLength),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
                ResponseError::BadContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                ResponseError::BadContentLength,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                ResponseError::TransferEncoding,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
                ResponseError::TooLarge { bytes: 99_999_999 },
            ),
        ];
        for (bytes, error) in cases {
            let mut decoder = ResponseDecoder::new();
            assert_eq!(decoder.feed(bytes, |_| ()), Err(error), "{bytes:?}");
            assert_eq!(decoder.feed(OK, |_| panic!("after an error")), Err(error));
        }
        let (seen, result) = replies(&[b"HTTP/1.1 2x0 OK\r\n\r\n"]);
        assert!(seen.is_empty() && matches!(result, Err(ResponseError::Head(_))));
        let endless = vec![b'a'; HTTP_RESPONSE_BYTES_MAX + 1];
        let (_, result) = replies(&[b"HTTP/1.1 200 OK\r\nX: ", &endless]);
        assert!(
            matches!(result, Err(ResponseError::TooLarge { .. })),
            "{result:?}"
        );
    }
}
