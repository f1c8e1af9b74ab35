//! An HTTP/1.1 test client: writes raw request bytes (whole, in pieces, or garbage) and reads the
//! responses back (parsed with `httparse`, bodies by Content-Length), or how the stream ended.

use std::io::{self, ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::{read_outcome, reset_stream, send_all, End, WAIT};

/// Response headers read at most.
const HEADERS_MAX: usize = 32;

/// One response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn body_text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("a text body")
    }

    /// `Connection: close` was sent.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|value| value.eq_ignore_ascii_case("close"))
    }
}

#[derive(Debug)]
pub struct HttpClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl HttpClient {
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> HttpClient {
        let stream = TcpStream::connect_timeout(&addr, WAIT)
            .unwrap_or_else(|error| panic!("connect {addr}: {error}"));
        stream.set_nodelay(true).expect("TCP_NODELAY");
        HttpClient {
            stream,
            buf: Vec::new(),
        }
    }

    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        send_all(&mut self.stream, bytes);
    }

    /// Sends one request and reads its response.
    #[track_caller]
    pub fn request(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        self.response()
    }

    /// Reads exactly one response; panics on anything else.
    #[track_caller]
    pub fn response(&mut self) -> Response {
        self.try_response(WAIT)
            .unwrap_or_else(|end| panic!("no response within {WAIT:?}: {end:?}"))
    }

    /// Sends a HEAD request and reads its response, which has a Content-Length but no body.
    #[track_caller]
    pub fn head(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(response) = self.parse_one(false) {
                return response;
            }
            match self.fill(deadline) {
                Ok(count) if count > 0 => {}
                outcome => panic!("no HEAD response within {WAIT:?}: {outcome:?}"),
            }
        }
    }

    /// One response, or how the stream ended before one was complete.
    pub fn try_response(&mut self, timeout: Duration) -> Result<Response, End> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(response) = self.parse_one(true) {
                return Ok(response);
            }
            read_outcome(self.fill(deadline))?;
        }
    }

    /// Every response until the stream ends, and how it ended. Panics if it ends inside one.
    #[track_caller]
    pub fn read_to_end(&mut self, timeout: Duration) -> (Vec<Response>, End) {
        let deadline = Instant::now() + timeout;
        let mut responses = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_response(left) {
                Ok(response) => responses.push(response),
                Err(end) => {
                    if end != End::Timeout {
                        assert!(
                            self.buf.is_empty(),
                            "the stream ended ({end:?}) inside a response"
                        );
                    }
                    return (responses, end);
                }
            }
        }
    }

    /// Closes with SO_LINGER {1, 0}: the kernel sends RST instead of FIN.
    #[track_caller]
    pub fn reset(self) {
        reset_stream(self.stream);
    }

    #[track_caller]
    pub fn shutdown_write(&self) {
        self.stream
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown(SHUT_WR)");
    }

    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 16 * 1024];
        let count = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..count]);
        Ok(count)
    }

    /// A whole response at the start of the buffer, taken out of it (`with_body`: false for the
    /// answer to HEAD).
    fn parse_one(&mut self, with_body: bool) -> Option<Response> {
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut head = httparse::Response::new(&mut headers);
        let head_len = match head.parse(&self.buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return None,
            Err(error) => panic!(
                "the server sent a bad response head ({error}): {:?}",
                self.buf
            ),
        };
        let status = head.code.expect("a complete head has a status");
        let headers: Vec<(String, String)> = head
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let length = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map(|(_, value)| value.parse::<usize>().expect("a numeric Content-Length"))
            .expect("every response here carries Content-Length");
        let length = if with_body { length } else { 0 };
        if self.buf.len() < head_len + length {
            return None;
        }
        let body = self.buf[head_len..head_len + length].to_vec();
        self.buf.drain(..head_len + length);
        Some(Response {
            status,
            headers,
            body,
        })
    }
}

/// `GET path` with a Host header and the extra header lines given (each ending in CRLF).
pub fn get(path: &str, extra: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n").into_bytes()
}

/// `POST path` with a Content-Length body.
pub fn post(path: &str, body: &str, extra: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// `POST path` with the body sent as the given chunks.
pub fn post_chunked(path: &str, chunks: &[&str], extra: &str) -> Vec<u8> {
    let mut request =
        format!("POST {path} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n{extra}\r\n");
    for chunk in chunks {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    request.into_bytes()
}
