//! HTTP/1.1 as one [`Protocol`] on the engine's seam: the `protocol::http` codec (on `httparse`)
//! parses, a [`Handler`] answers, and the engine's own verdicts follow the requests —
//! `Connection: close` and HTTP/1.0 close after their response (`peer_close`), bad input is
//! answered with its 4xx/5xx and closed (`protocol_error`), a FIN inside a request is
//! `peer_fin_mid_frame` with phase `header` or `body`, a slowloris is `read_timeout`, and during
//! a drain the request in progress is answered with `Connection: close` (`shutdown`).
//!
//! Keep-alive and pipelining: every complete request in the received bytes is answered in order,
//! into one output, so the engine sends the answers of one receive in one batch.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::http::{self, HttpDate, Limits, Parse, Parser, Phase, Request};

use crate::protocol_api::{Context, MessagePhase, Protocol, Step};

/// What a handler's response means for the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Keep the connection for the next request (if the request allows it).
    KeepAlive,
    /// Close after this response: `peer_close` if the request asked for it (`Connection:
    /// close`, HTTP/1.0), else the handler's own decision (`local_close`).
    Close,
    /// The request was bad input, answered with an error: close (`protocol_error`).
    Reject,
}

/// Answers requests. Shared by every core.
pub trait Handler: Send + Sync + 'static {
    /// Appends the whole response to `request` to `out`, with `date` as its `Date`. A request
    /// whose `keep_alive` is false must be answered with `Connection: close` (the engine sets
    /// it false during a drain).
    fn respond(&self, request: &Request<'_>, date: &HttpDate, out: &mut Vec<u8>) -> Answer;
}

/// HttpArena's H1 workload (`GET /pipeline`, `GET`/`POST /baseline11`; see
/// `protocol::http::arena`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Arena;

impl Handler for Arena {
    fn respond(&self, request: &Request<'_>, date: &HttpDate, out: &mut Vec<u8>) -> Answer {
        let reply = http::arena::respond(request, date, out);
        if reply.rejected() {
            Answer::Reject
        } else if reply.close {
            Answer::Close
        } else {
            Answer::KeepAlive
        }
    }
}

/// HTTP/1.1 served with `handler`, within `limits`.
#[derive(Clone, Copy, Debug)]
pub struct Http<H> {
    handler: H,
    limits: Limits,
    /// A parser of these limits before its first byte: copied into every new session, so the
    /// limits are validated once, not per connection.
    fresh: Parser,
}

impl<H: Handler> Http<H> {
    /// Panics if `limits` do not validate (see [`Limits::validate`]).
    pub fn new(handler: H, limits: Limits) -> Http<H> {
        if let Err(error) = limits.validate() {
            panic!("HTTP limits: {error}");
        }
        Http {
            handler,
            limits,
            fresh: Parser::new(limits),
        }
    }
}

/// One HTTP connection: its parser (which remembers how far it examined the pending request)
/// and the tag of its first request.
#[derive(Clone, Copy, Debug)]
pub struct HttpSession {
    parser: Parser,
    requests: u64,
    tag: Option<u64>,
}

impl<H: Handler> Protocol for Http<H> {
    type Session = HttpSession;
    /// Each core's `Date`, formatted at most once per second.
    type CoreState = DateClock;
    type Message = ();

    fn core_state(&self, _core: u16) -> DateClock {
        DateClock::default()
    }

    fn open(&self, _peer: Option<SocketAddr>, _cx: &mut Context<'_, Self>) -> HttpSession {
        HttpSession {
            parser: self.fresh,
            requests: 0,
            tag: None,
        }
    }

    fn on_input(
        &self,
        session: &mut HttpSession,
        input: &[u8],
        cx: &mut Context<'_, Self>,
    ) -> Step {
        let now_us = cx.now_us();
        let date = cx.state().date_at(now_us);
        let (mut used, mut requests) = (0, 0);
        loop {
            match session.parser.parse(&input[used..]) {
                Parse::Complete { mut request, len } => {
                    used += len;
                    requests += 1;
                    if session.requests == 0 {
                        session.tag = request.tag; // x-client-tag of the first request
                    }
                    session.requests += 1;
                    // Draining: this is the connection's last answer, and it says so.
                    let asked_to_close = !request.keep_alive;
                    request.keep_alive &= !cx.draining();
                    let mut answer = Answer::KeepAlive;
                    cx.output()
                        .push_with(|buf| answer = self.handler.respond(&request, &date, buf));
                    match answer {
                        Answer::KeepAlive if request.keep_alive => {}
                        Answer::KeepAlive | Answer::Close if asked_to_close => {
                            return Step::peer_close(used, requests)
                        }
                        // The drain's decision (`shutdown`), or the handler's own.
                        Answer::KeepAlive | Answer::Close => return Step::close(used, requests),
                        Answer::Reject => return Step::violation(used, requests),
                    }
                }
                Parse::Partial(_) => return Step::more(used, requests),
                Parse::Invalid(error) => {
                    cx.output()
                        .push_with(|buf| http::write_error(buf, &date, error));
                    return Step::violation(used, requests);
                }
            }
        }
    }

    fn partial_phase(&self, session: &HttpSession, _tail: &[u8]) -> MessagePhase {
        match session.parser.phase() {
            Phase::Head => MessagePhase::Header,
            Phase::Body => MessagePhase::Body,
        }
    }

    fn tag(&self, session: &HttpSession) -> Option<u64> {
        session.tag
    }

    fn message_max(&self) -> usize {
        self.limits.buffer_max()
    }
}

/// The `Date` of a core, formatted at most once per second: the clock is read only when the
/// core's loop time passed the end of the second the cached date names.
#[derive(Debug, Default)]
pub struct DateClock {
    date: Option<HttpDate>,
    valid_until_us: u64,
}

impl DateClock {
    fn date_at(&mut self, now_us: u64) -> HttpDate {
        match self.date {
            Some(date) if now_us < self.valid_until_us => date,
            _ => {
                let now = SystemTime::now();
                let into_second = now
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| u64::from(since.subsec_micros()));
                let date = HttpDate::new(now);
                self.date = Some(date);
                self.valid_until_us = now_us + (1_000_000 - into_second);
                date
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::testing::Harness;
    use crate::protocol_api::Verdict;

    fn run(
        proto: &Http<Arena>,
        session: &mut HttpSession,
        input: &[u8],
        draining: bool,
    ) -> (Step, String) {
        let mut core = Harness::new(proto);
        core.draining = draining;
        let step = proto.on_input(session, input, &mut core.cx());
        (step, String::from_utf8(core.written()).unwrap())
    }

    fn open(proto: &Http<Arena>) -> HttpSession {
        proto.open(None, &mut Harness::new(proto).cx())
    }

    fn http() -> Http<Arena> {
        Http::new(Arena, Limits::default())
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_and_the_rest_is_kept() {
        let proto = http();
        let mut session = open(&proto);
        let input = b"GET /pipeline HTTP/1.1\r\nHost: a\r\nx-client-tag: 9\r\n\r\n\
                      GET /baseline11?a=1&b=2 HTTP/1.1\r\nHost: a\r\n\r\nGET /pipe";
        let (step, text) = run(&proto, &mut session, input, false);
        assert_eq!(step, Step::more(input.len() - 9, 2));
        assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 2);
        assert!(text.find("\r\n\r\nok").unwrap() < text.find("\r\n\r\n3").unwrap());
        assert_eq!(proto.tag(&session), Some(9));
        assert_eq!(
            proto.partial_phase(&session, b"GET /pipe"),
            MessagePhase::Header
        );
    }

    #[test]
    fn verdicts_follow_the_requests() {
        let proto = http();
        let cases: [(&[u8], Verdict); 5] = [
            (
                b"GET /pipeline HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                Verdict::PeerClose,
            ),
            (b"GET /pipeline HTTP/1.0\r\n\r\n", Verdict::PeerClose),
            (b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", Verdict::Continue),
            (
                b"GET /baseline11?a=x HTTP/1.1\r\nHost: a\r\n\r\n",
                Verdict::Violation,
            ),
            (b"GET / HTTP/2.0\r\n\r\n", Verdict::Violation),
        ];
        for (input, verdict) in cases {
            let mut session = open(&proto);
            let (step, text) = run(&proto, &mut session, input, false);
            assert_eq!(step.verdict, verdict, "{text}");
            assert!(text.starts_with("HTTP/1.1 "), "one response: {text}");
        }
    }

    #[test]
    fn a_drain_answers_with_connection_close() {
        let proto = http();
        let mut session = open(&proto);
        let input =
            b"GET /pipeline HTTP/1.1\r\nHost: a\r\n\r\nGET /pipeline HTTP/1.1\r\nHost: a\r\n\r\n";
        let (step, text) = run(&proto, &mut session, input, true);
        assert_eq!(step.verdict, Verdict::Close);
        assert_eq!(step.messages, 1, "the first answer is the last");
        assert!(text.contains("Connection: close\r\n"), "{text}");
    }

    #[test]
    fn a_body_in_progress_is_phase_body() {
        let proto = http();
        let mut session = open(&proto);
        let input = b"POST /baseline11?a=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n2";
        let (step, _) = run(&proto, &mut session, input, false);
        assert_eq!(step, Step::more(0, 0));
        assert_eq!(proto.partial_phase(&session, input), MessagePhase::Body);
    }
}
