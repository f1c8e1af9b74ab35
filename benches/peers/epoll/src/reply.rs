//! The replies, no I/O: response templates built once with a `Date` slot rewritten once a
//! second, and the batch step that answers every complete request of a buffer in order.

use std::time::SystemTime;

use peer_common::arena::{self, Endpoint};

use crate::http::{self, Request};

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) is always this long.
const DATE_LEN: usize = 29;
/// The longest reply this module writes: the 405 with `Allow` and `Connection: close`, or a 200
/// with a 20-character sum (a test checks every kind).
pub const REPLY_MAX: usize = 160;
/// The shortest request that parses: `A / HTTP/1.0` and two bare LFs.
pub const REQUEST_MIN: usize = 14;

/// The statuses the peer answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    ContentTooLarge,
    HeadTooLarge,
}

impl Status {
    const ALL: [Status; 6] = [
        Status::Ok,
        Status::BadRequest,
        Status::NotFound,
        Status::MethodNotAllowed,
        Status::ContentTooLarge,
        Status::HeadTooLarge,
    ];

    /// The status line, and the fields every reply of this status has before `Date`.
    fn head(self) -> &'static str {
        match self {
            Status::Ok => "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n",
            Status::BadRequest => "HTTP/1.1 400 Bad Request\r\n",
            Status::NotFound => "HTTP/1.1 404 Not Found\r\n",
            Status::MethodNotAllowed => "HTTP/1.1 405 Method Not Allowed\r\n",
            Status::ContentTooLarge => "HTTP/1.1 413 Content Too Large\r\n",
            Status::HeadTooLarge => "HTTP/1.1 431 Request Header Fields Too Large\r\n",
        }
    }
}

/// What the reply says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Connection {
    /// HTTP/1.1 kept alive: nothing to say.
    Default,
    /// HTTP/1.0 kept alive: `Connection: keep-alive`.
    KeepAlive,
    /// Closing after this reply: `Connection: close`.
    Close,
}

impl Connection {
    fn of(request: &Request<'_>) -> Connection {
        match (request.keep_alive, request.http11) {
            (false, _) => Connection::Close,
            (true, true) => Connection::Default,
            (true, false) => Connection::KeepAlive,
        }
    }

    fn field(self) -> &'static [u8] {
        match self {
            Connection::Default => b"",
            Connection::KeepAlive => b"Connection: keep-alive\r\n",
            Connection::Close => b"Connection: close\r\n",
        }
    }
}

/// Bytes with a `Date` value at `date_at`.
#[derive(Debug)]
struct Template {
    bytes: Vec<u8>,
    date_at: usize,
}

impl Template {
    /// `before`, `Date: <date>\r\n`, `after`.
    fn new(before: &[u8], date: &[u8; DATE_LEN], after: &[u8]) -> Template {
        let mut bytes = [before, b"Date: "].concat();
        let date_at = bytes.len();
        bytes.extend_from_slice(date);
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(after);
        Template { bytes, date_at }
    }

    fn set_date(&mut self, date: &[u8; DATE_LEN]) {
        self.bytes[self.date_at..self.date_at + DATE_LEN].copy_from_slice(date);
    }
}

/// Why a batch ends the connection once its replies are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Close {
    /// Close at once: the client asked to, and sent nothing after.
    Now,
    /// Shut down writing and drain before closing: after an error reply, or when bytes follow
    /// the last answered request (closing with unread bytes would reset the connection and could
    /// destroy the replies in flight).
    Linger,
}

/// The outcome of one buffer: how many bytes its complete requests took, and whether to close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub consumed: usize,
    pub close: Option<Close>,
}

/// The templates, one per status (status line to `Date`), plus the whole `GET /pipeline` reply
/// on a kept-alive HTTP/1.1 connection: the hot path is one copy.
#[derive(Debug)]
pub struct Replies {
    heads: [Template; Status::ALL.len()],
    pipeline: Template,
}

impl Replies {
    pub fn new(now: SystemTime) -> Replies {
        let date = imf_date(now);
        let pipeline_tail = [&b"Content-Length: 2\r\n\r\n"[..], arena::PIPELINE_BODY].concat();
        Replies {
            heads: Status::ALL.map(|status| Template::new(status.head().as_bytes(), &date, b"")),
            pipeline: Template::new(Status::Ok.head().as_bytes(), &date, &pipeline_tail),
        }
    }

    /// Rewrites the `Date` of every template (the server calls it when the second changes).
    pub fn set_date(&mut self, now: SystemTime) {
        let date = imf_date(now);
        self.pipeline.set_date(&date);
        for head in &mut self.heads {
            head.set_date(&date);
        }
    }

    /// Answers every complete request at the front of `input`, in order, appending the replies to
    /// `out`; stops after a request that closes the connection or at the first error (whose
    /// reply is the last). A chunked body is decoded into `scratch`.
    pub fn answer_all(&self, input: &[u8], scratch: &mut Vec<u8>, out: &mut Vec<u8>) -> Batch {
        let mut consumed = 0;
        loop {
            match http::parse(&input[consumed..], scratch) {
                Ok(None) => {
                    return Batch {
                        consumed,
                        close: None,
                    }
                }
                Ok(Some(request)) => {
                    consumed += request.wire_len;
                    self.answer(&request, out);
                    if !request.keep_alive {
                        let close = if consumed == input.len() {
                            Close::Now
                        } else {
                            Close::Linger
                        };
                        return Batch {
                            consumed,
                            close: Some(close),
                        };
                    }
                }
                Err(error) => {
                    let status = match error {
                        http::Error::Malformed => Status::BadRequest,
                        http::Error::HeadTooLarge => Status::HeadTooLarge,
                        http::Error::BodyTooLarge => Status::ContentTooLarge,
                    };
                    self.write(status, None, Connection::Close, b"", out);
                    return Batch {
                        consumed,
                        close: Some(Close::Linger),
                    };
                }
            }
        }
    }

    fn answer(&self, request: &Request<'_>, out: &mut Vec<u8>) {
        let (path, query) = arena::split_target(request.target);
        let connection = Connection::of(request);
        match Endpoint::route(request.method, path) {
            Endpoint::Pipeline if connection == Connection::Default => {
                out.extend_from_slice(&self.pipeline.bytes);
            }
            Endpoint::Pipeline => {
                self.write(Status::Ok, None, connection, arena::PIPELINE_BODY, out);
            }
            Endpoint::BaselineGet => self.sum(arena::baseline_sum(query, None), connection, out),
            Endpoint::BaselinePost => {
                self.sum(
                    arena::baseline_sum(query, Some(request.body)),
                    connection,
                    out,
                );
            }
            Endpoint::MethodNotAllowed { allow } => {
                self.write(Status::MethodNotAllowed, Some(allow), connection, b"", out);
            }
            Endpoint::NotFound => self.write(Status::NotFound, None, connection, b"", out),
        }
    }

    /// A 200 with the sum as its body, or a 400 when there is none (not an integer, overflow).
    fn sum(&self, sum: Option<i64>, connection: Connection, out: &mut Vec<u8>) {
        match sum {
            Some(sum) => {
                let mut digits = itoa::Buffer::new();
                let body = digits.format(sum).as_bytes();
                self.write(Status::Ok, None, connection, body, out);
            }
            None => self.write(Status::BadRequest, None, connection, b"", out),
        }
    }

    /// Template, `Allow`, `Connection`, `Content-Length`, body.
    fn write(
        &self,
        status: Status,
        allow: Option<&str>,
        connection: Connection,
        body: &[u8],
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        out.extend_from_slice(&self.heads[status as usize].bytes);
        if let Some(allow) = allow {
            out.extend_from_slice(b"Allow: ");
            out.extend_from_slice(allow.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(connection.field());
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body.len()).as_bytes());
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(body);
        assert!(
            out.len() - start <= REPLY_MAX,
            "{} byte reply",
            out.len() - start
        );
    }
}

fn imf_date(now: SystemTime) -> [u8; DATE_LEN] {
    let date = httpdate::fmt_http_date(now);
    date.as_bytes()
        .try_into()
        .unwrap_or_else(|_| panic!("{date:?} is not {DATE_LEN} bytes"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const DATE: &str = "Date: Sun, 09 Sep 2001 01:46:40 GMT\r\n";

    fn replies() -> Replies {
        Replies::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000))
    }

    fn answer(input: &[u8]) -> (String, Batch) {
        let mut out = Vec::new();
        let batch = replies().answer_all(input, &mut Vec::new(), &mut out);
        (String::from_utf8(out).unwrap(), batch)
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{DATE}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn answers_the_endpoints() {
        let table: [(&[u8], String); 8] = [
            (b"GET /pipeline HTTP/1.1\r\nHost: x\r\n\r\n", ok("ok")),
            (b"GET /baseline11?a=13&b=42 HTTP/1.1\r\n\r\n", ok("55")),
            (b"POST /baseline11?a=13&b=42 HTTP/1.1\r\nContent-Length: 2\r\n\r\n20", ok("75")),
            (
                b"POST /baseline11?a=13&b=42 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n2\r\n1\r\n0\r\n0\r\n\r\n",
                ok("75"),
            ),
            (b"GET /nope HTTP/1.1\r\n\r\n", format!("HTTP/1.1 404 Not Found\r\n{DATE}Content-Length: 0\r\n\r\n")),
            (
                b"DELETE /baseline11 HTTP/1.1\r\n\r\n",
                format!("HTTP/1.1 405 Method Not Allowed\r\n{DATE}Allow: GET, POST\r\nContent-Length: 0\r\n\r\n"),
            ),
            (
                b"GET /baseline11?a=x HTTP/1.1\r\n\r\n",
                format!("HTTP/1.1 400 Bad Request\r\n{DATE}Content-Length: 0\r\n\r\n"),
            ),
            (
                b"GET /pipeline HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                ok("ok").replace("Content-Length", "Connection: keep-alive\r\nContent-Length"),
            ),
        ];
        for (input, reply) in table {
            let (out, batch) = answer(input);
            assert_eq!(out, reply, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(
                batch,
                Batch {
                    consumed: input.len(),
                    close: None
                }
            );
        }
    }

    #[test]
    fn closes_after_http10_connection_close_and_errors() {
        let close = ok("ok").replace("Content-Length", "Connection: close\r\nContent-Length");
        let bad = format!(
            "HTTP/1.1 400 Bad Request\r\n{DATE}Connection: close\r\nContent-Length: 0\r\n\r\n"
        );
        let table: [(&[u8], String, usize, Close); 4] = [
            (b"GET /pipeline HTTP/1.0\r\n\r\n", close.clone(), 26, Close::Now),
            (
                b"GET /pipeline HTTP/1.1\r\nConnection: close\r\n\r\nGET /pipeline HTTP/1.1\r\n\r\n",
                close,
                45,
                Close::Linger,
            ),
            (b"GET /pipeline HTTP/1.1\r\n\r\ngarbage\r\n\r\n", ok("ok") + &bad, 26, Close::Linger),
            (b"\x16\x03\x01\x00\xa5", bad, 0, Close::Linger),
        ];
        for (input, reply, consumed, close) in table {
            let (out, batch) = answer(input);
            assert_eq!(out, reply, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(
                batch,
                Batch {
                    consumed,
                    close: Some(close)
                }
            );
        }
    }

    /// A pipelined stream cut in two anywhere gets the replies of the whole stream, in order.
    #[test]
    fn answers_a_pipelined_stream_split_anywhere() {
        let stream: Vec<u8> = [
            &b"GET /pipeline HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"POST /baseline11?a=13&b=42 HTTP/1.1\r\nContent-Length: 2\r\n\r\n20",
            b"POST /baseline11?a=1&b=2 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n20\r\n0\r\n\r\n",
            b"GET /baseline11?a=13&b=42 HTTP/1.1\r\n\r\n",
        ]
        .concat();
        let expected = ok("ok") + &ok("75") + &ok("23") + &ok("55");
        let (whole, _) = answer(&stream);
        assert_eq!(whole, expected);
        let replies = replies();
        for cut in 0..=stream.len() {
            let (mut out, mut scratch) = (Vec::new(), Vec::new());
            let first = replies.answer_all(&stream[..cut], &mut scratch, &mut out);
            let mut held = stream[first.consumed..cut].to_vec();
            held.extend_from_slice(&stream[cut..]);
            let second = replies.answer_all(&held, &mut scratch, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "cut at {cut}");
            assert_eq!((first.close, second.close), (None, None));
            assert_eq!(first.consumed + second.consumed, stream.len());
        }
    }

    #[test]
    fn every_reply_fits_reply_max() {
        let replies = replies();
        let sums = [i64::MIN, i64::MAX];
        for status in Status::ALL {
            let mut out = Vec::new();
            replies.write(
                status,
                Some("GET, POST"),
                Connection::KeepAlive,
                b"",
                &mut out,
            );
            replies.write(status, Some("GET, POST"), Connection::Close, b"", &mut out);
        }
        for sum in sums {
            replies.sum(Some(sum), Connection::KeepAlive, &mut Vec::new());
        }
        assert_eq!(replies.pipeline.bytes, ok("ok").as_bytes());
    }

    #[test]
    fn the_shortest_request_is_request_min_bytes() {
        let shortest = b"A / HTTP/1.0\n\n";
        assert_eq!(shortest.len(), REQUEST_MIN);
        let mut scratch = Vec::new();
        assert!(http::parse(shortest, &mut scratch).unwrap().is_some());
        for shorter in [
            &b"A / HTTP/1.\n\n"[..],
            b"A  HTTP/1.0\n\n",
            b"/ HTTP/1.0\n\n",
            b"A / HTTP/1.0\n",
        ] {
            assert!(
                !matches!(http::parse(shorter, &mut scratch), Ok(Some(_))),
                "{shorter:?}"
            );
        }
    }

    #[test]
    fn refreshes_the_date() {
        let mut replies = replies();
        replies.set_date(SystemTime::UNIX_EPOCH);
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        replies.answer_all(
            b"GET /pipeline HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
            &mut scratch,
            &mut out,
        );
        let out = String::from_utf8(out).unwrap();
        assert_eq!(
            out.matches("Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n")
                .count(),
            2,
            "{out}"
        );
    }
}
