//! The per-connection request parser: whole requests at the start of the input, or how far the
//! pending one got, or why it is rejected.

use super::chunked::ChunkScan;
use super::error::Error;
use super::head::{self, Framing, Head};
use super::limits::{Caps, Limits};
use super::request::{Body, Chunked, Request};
use super::scan::{HeadScan, Step};

/// Where the pending request is incomplete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// In the request line or the header fields.
    Head,
    /// The head is complete; the body is not.
    Body,
}

/// What the start of the input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parse<'a> {
    /// A whole request of `len` bytes: drop them and call again for a pipelined one.
    Complete {
        /// The request, borrowing from the input.
        request: Request<'a>,
        /// Its bytes on the wire, leading empty lines included.
        len: usize,
    },
    /// The request is incomplete: call again with the same bytes followed by more.
    Partial(Phase),
    /// Not an acceptable request: answer with the error's status and close.
    Invalid(Error),
}

/// What is known about the pending request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Looking for the end of the head.
    Head(HeadScan),
    /// The head is `head_len` bytes and a Content-Length body of `body_len` follows.
    Length { head_len: u32, body_len: u32 },
    /// The head is `head_len` bytes and a chunked body follows.
    Chunked { head_len: u32, scan: ChunkScan },
}

/// A body that is complete: where it starts and the whole request's length.
#[derive(Clone, Copy, Debug)]
struct Whole<'a> {
    head_len: usize,
    body: Body<'a>,
    len: usize,
}

/// Parses the requests of one connection, one at a time.
///
/// The caller keeps the bytes it has not consumed and hands them all to every call, so `input`
/// always starts at a request boundary, and after a [`Parse::Partial`] the next call's input
/// starts with the same bytes. The parser remembers how far it examined them, so a request that
/// arrives one byte at a time costs O(its length), and resets after every answer that is not
/// partial. The answer for an input never depends on how it was split across calls.
#[derive(Clone, Copy, Debug)]
pub struct Parser {
    caps: Caps,
    state: State,
    /// The request whose body is awaited sent `Expect: 100-continue`.
    expects_continue: bool,
}

const _: () = assert!(std::mem::size_of::<Parser>() <= 48);

impl Parser {
    /// A parser enforcing `limits`. Panics if [`Limits::validate`] rejects them.
    pub fn new(limits: Limits) -> Parser {
        Parser {
            caps: Caps::new(&limits),
            state: State::Head(HeadScan::new()),
            expects_continue: false,
        }
    }

    /// Forgets the pending request, as at the start of a connection.
    pub fn reset(&mut self) {
        self.state = State::Head(HeadScan::new());
        self.expects_continue = false;
    }

    /// The pending request's body is awaited and its client sent `Expect: 100-continue`
    /// (HTTP/1.1): it waits for a `100 Continue` before it sends the body.
    pub fn expects_continue(&self) -> bool {
        self.expects_continue && self.phase() == Phase::Body
    }

    /// The pending request's phase: [`Phase::Head`] also when nothing is pending.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Head(_) => Phase::Head,
            State::Length { .. } | State::Chunked { .. } => Phase::Body,
        }
    }

    /// Bytes of the input already examined by earlier calls.
    fn examined_len(&self) -> usize {
        match self.state {
            State::Head(scan) => scan.pos as usize,
            State::Length { head_len, .. } => head_len as usize,
            State::Chunked { head_len, scan } => head_len as usize + scan.pos(),
        }
    }

    /// What the start of `input` holds; see [`Parse`].
    pub fn parse<'a>(&mut self, input: &'a [u8]) -> Parse<'a> {
        if input.len() < self.examined_len() {
            self.reset(); // not the contract's input: start over rather than trust the cache
        }
        let result = self.advance(input);
        if !matches!(result, Parse::Partial(_)) {
            self.reset();
        }
        result
    }

    fn advance<'a>(&mut self, input: &'a [u8]) -> Parse<'a> {
        if self.state == State::Head(HeadScan::new()) {
            if let Some(answer) = self.whole_head(input) {
                return answer;
            }
        }
        if let State::Head(scan) = &mut self.state {
            let head_len = loop {
                match scan.scan(input, &self.caps) {
                    Ok(Step::Partial) => return Parse::Partial(Phase::Head),
                    Ok(Step::RequestLine { start, end }) => {
                        if let Err(error) = head::check_request_line(&input[..end], start) {
                            return Parse::Invalid(error);
                        }
                    }
                    Ok(Step::Done { end }) => break end,
                    Err(error) => return Parse::Invalid(error),
                }
            };
            return match head::parse(&input[..head_len], &self.caps) {
                Ok(head) => self.start_body(head, head_len, input),
                Err(error) => Parse::Invalid(error),
            };
        }
        match self.body(input) {
            // A head parsed by an earlier call is parsed again (it is valid): the parser keeps
            // only its length, not pointers into the caller's buffer.
            Ok(Some(whole)) => match head::parse(&input[..whole.head_len], &self.caps) {
                Ok(head) => Parse::Complete {
                    request: head.into_request(whole.body),
                    len: whole.len,
                },
                Err(error) => Parse::Invalid(error),
            },
            Ok(None) => Parse::Partial(Phase::Body),
            Err(error) => Parse::Invalid(error),
        }
    }

    /// A fresh request whose whole head is already there: parsed at once (see
    /// `head::parse_whole`); `None` leaves it to the byte-by-byte path.
    fn whole_head<'a>(&mut self, input: &'a [u8]) -> Option<Parse<'a>> {
        let (head, head_len) = head::parse_whole(input, &self.caps)?;
        Some(match head {
            Ok(head) => self.start_body(head, head_len, input),
            Err(error) => Parse::Invalid(error),
        })
    }

    /// The head (its first `head_len` bytes of `input`) is parsed: the request if it has no
    /// body or its body is there too, else the body state to resume from.
    fn start_body<'a>(&mut self, head: Head<'a>, head_len: usize, input: &'a [u8]) -> Parse<'a> {
        let stored_len = head_len as u32; // <= head_max < 2^32
        self.expects_continue = head.expects_continue;
        self.state = match head.framing {
            Framing::None => {
                return Parse::Complete {
                    request: head.into_request(Body::Empty),
                    len: head_len,
                }
            }
            Framing::Length(body_len) => State::Length {
                head_len: stored_len,
                body_len,
            },
            Framing::Chunked => State::Chunked {
                head_len: stored_len,
                scan: ChunkScan::new(),
            },
        };
        match self.body(input) {
            Ok(Some(whole)) => Parse::Complete {
                request: head.into_request(whole.body),
                len: whole.len,
            },
            Ok(None) => Parse::Partial(Phase::Body),
            Err(error) => Parse::Invalid(error),
        }
    }

    /// In a body state: the request's extent once its body is complete.
    fn body<'a>(&mut self, input: &'a [u8]) -> Result<Option<Whole<'a>>, Error> {
        match &mut self.state {
            State::Head(_) => unreachable!("the head is complete"),
            State::Length { head_len, body_len } => {
                let head_len = *head_len as usize;
                let end = head_len + *body_len as usize;
                Ok(input.get(head_len..end).map(|body| Whole {
                    head_len,
                    body: Body::Length(body),
                    len: end,
                }))
            }
            State::Chunked { head_len, scan } => {
                let head_len = *head_len as usize;
                let body = input.get(head_len..).unwrap_or_default();
                Ok(scan.scan(body, &self.caps)?.map(|end| {
                    let chunked = Chunked::new(&body[..end], scan.data_len());
                    Whole {
                        head_len,
                        body: Body::Chunked(chunked),
                        len: head_len + end,
                    }
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::probe;

    /// Feeds `input` one more byte per call; the answer once the input is whole, and the bytes
    /// examined on the way.
    fn byte_by_byte<'a>(parser: &mut Parser, input: &'a [u8]) -> (Vec<Parse<'a>>, u64) {
        probe::take();
        let mut answers = Vec::new();
        for end in 1..=input.len() {
            match parser.parse(&input[..end]) {
                Parse::Partial(_) => {}
                answer => answers.push(answer),
            }
        }
        (answers, probe::take())
    }

    #[test]
    fn a_head_one_byte_at_a_time_is_examined_a_bounded_number_of_times() {
        let mut head = b"GET /x HTTP/1.1\r\nHost: a\r\n".to_vec();
        let padding = format!("X-Padding: {}\r\n", "p".repeat(200));
        while head.len() + padding.len() + 2 <= 16 * 1024 {
            head.extend_from_slice(padding.as_bytes());
        }
        head.extend_from_slice(b"\r\n");
        let mut parser = Parser::new(Limits::default());
        let (answers, examined) = byte_by_byte(&mut parser, &head);
        assert!(
            matches!(answers[..], [Parse::Complete { len, .. }] if len == head.len()),
            "{:?}",
            answers.first()
        );
        // Each byte once by the scanner, the request line once more, the head once by httparse.
        let bound = 3 * head.len() as u64;
        assert!(examined <= bound, "examined {examined} > {bound}");
    }

    #[test]
    fn a_chunked_body_one_byte_at_a_time_is_examined_a_bounded_number_of_times() {
        let mut request =
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let head_len = request.len() as u64;
        for _ in 0..2000 {
            request.extend_from_slice(b"3;ext=1\r\nabc\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let mut parser = Parser::new(Limits::default());
        let (answers, examined) = byte_by_byte(&mut parser, &request);
        assert!(
            matches!(answers[..], [Parse::Complete { request: Request { body, .. }, .. }] if body.len() == 6000)
        );
        // Body bytes once; the head three times (scan, request line, head) plus once more at
        // the end to rebuild the request.
        let bound = request.len() as u64 + 4 * head_len;
        assert!(examined <= bound, "examined {examined} > {bound}");
    }

    #[test]
    fn a_client_that_expects_100_continue_is_known_until_its_body_is_complete() {
        let mut parser = Parser::new(Limits::default());
        let head =
            b"POST /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(parser.parse(head), Parse::Partial(Phase::Body)));
        assert!(parser.expects_continue());
        let whole = [&head[..], b"42"].concat();
        assert!(matches!(parser.parse(&whole), Parse::Complete { .. }));
        assert!(!parser.expects_continue(), "answered: reset");
        let old = b"POST /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(parser.parse(old), Parse::Partial(Phase::Body)));
        assert!(!parser.expects_continue(), "ignored in HTTP/1.0");
    }

    #[test]
    fn a_shorter_input_resets_the_cache() {
        let mut parser = Parser::new(Limits::default());
        assert_eq!(
            parser.parse(b"GET / HTTP/1.1\r\nHost: a\r\n"),
            Parse::Partial(Phase::Head)
        );
        assert_eq!(parser.parse(b"GET"), Parse::Partial(Phase::Head));
        assert!(matches!(
            parser.parse(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Parse::Complete { len: 27, .. }
        ));
        assert_eq!(
            parser.parse(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab"),
            Parse::Partial(Phase::Body)
        );
        assert_eq!(parser.phase(), Phase::Body);
        assert_eq!(parser.parse(b"GET /"), Parse::Partial(Phase::Head));
    }
}
