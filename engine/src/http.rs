//! HTTP/1.1 as one [`Protocol`] on the engine's seam: the `protocol::http` codec (on `httparse`)
//! parses, a [`Handler`] — the user's service — answers, and the engine's own verdicts follow
//! the requests: `Connection: close` and HTTP/1.0 close after their response (`peer_close`), bad
//! input is answered with its 4xx/5xx and closed (`protocol_error`), a FIN inside a request is
//! `peer_fin_mid_frame` with phase `header` or `body`, a slowloris is `read_timeout`, and during
//! a drain the request in progress is answered with `Connection: close` (`shutdown`).
//!
//! Keep-alive and pipelining: every complete request in the received bytes is answered in order,
//! into one output, so the engine sends the answers of one receive in one batch.
//!
//! A handler gets the request (method, path, query, headers, body) and an [`Exchange`] to
//! answer it: a status, header fields and a body ([`Exchange::respond`]), or the whole response
//! written by itself ([`Exchange::write`], the allocation-free path). It has per-core state,
//! messages between cores, core timers and the close of every connection with its cause, as any
//! protocol does.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use protocol::http::{
    self, ConnectionHeader, FieldError, HttpDate, Limits, Parse, Parser, Phase, Request,
};

use crate::protocol_api::{Context, MessagePhase, Protocol, Step};
use crate::record::CloseRecord;

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

/// A service on HTTP/1.1. Shared by every core.
pub trait Handler: Send + Sync + Sized + 'static {
    /// The handler's per-core state (`cx.state().handler` in its callbacks).
    type CoreState: 'static;
    /// What the handler's cores send each other (`()` if nothing).
    type Message: Send + 'static;

    /// The state of core `core`, made on that core's thread.
    fn core_state(&self, core: u16) -> Self::CoreState;

    /// Answers one request through `exchange`, exactly once. A request left unanswered gets a
    /// `500` and the connection closes.
    fn request(&self, request: &Request<'_>, exchange: &mut Exchange<'_, '_, Self>) -> Answer;

    /// A message from a core ([`Context::send`]).
    fn on_message(&self, _message: Self::Message, _cx: &mut Context<'_, Http<Self>>) {}

    /// A core timer ([`Context::set_core_timer`]) is due.
    fn on_core_timer(&self, _timer: usize, _cx: &mut Context<'_, Http<Self>>) {}

    /// A connection closed, with its record (cause, phase, requests and responses...).
    fn on_close(&self, _record: &CloseRecord, _cx: &mut Context<'_, Http<Self>>) {}
}

/// One request's answer in the making: what the response must say about the connection, and
/// where to write it.
pub struct Exchange<'e, 'c, H: Handler> {
    cx: &'e mut Context<'c, Http<H>>,
    date: HttpDate,
    connection: ConnectionHeader,
    head_only: bool,
    answered: bool,
}

impl<H: Handler> std::fmt::Debug for Exchange<'_, '_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("connection", &self.connection)
            .field("answered", &self.answered)
            .finish_non_exhaustive()
    }
}

impl<'c, H: Handler> Exchange<'_, 'c, H> {
    /// The `Date` the response carries (formatted once per second per core).
    pub fn date(&self) -> &HttpDate {
        &self.date
    }

    /// The Connection header the response must carry: `close` when the request asked for it or
    /// the engine is draining (then the connection closes after this response).
    pub fn connection(&self) -> ConnectionHeader {
        self.connection
    }

    /// Answers with `status`, the header fields `fields` (not Content-Length, Date,
    /// Connection or Transfer-Encoding: those are set from the response) and `body` (left out
    /// for a HEAD request). A malformed or reserved field is refused and nothing is written.
    pub fn respond(
        &mut self,
        status: u16,
        fields: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), FieldError> {
        assert!(!self.answered, "one response per request");
        let (date, connection, head_only) = (self.date, self.connection, self.head_only);
        let mut result = Ok(());
        let mut out = self.cx.output();
        let before = out.queued_bytes();
        out.push_with(|buf| {
            result =
                http::write_with_fields(buf, &date, status, fields, body, connection, head_only);
            if result.is_err() {
                // A reply has at least one byte: keep a 500 in its place.
                http::write_plain_error(buf, &date, 500, "Internal Server Error", None, head_only);
            }
        });
        debug_assert!(out.queued_bytes() > before);
        self.answered = true;
        result
    }

    /// Answers with a response `write` appends whole, status line to body (it must say what
    /// [`Exchange::connection`] says): no copy beyond the output buffer.
    pub fn write(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        assert!(!self.answered, "one response per request");
        self.cx.output().push_with(write);
        self.answered = true;
    }

    /// The connection closes after this response (the handler's own decision, `local_close`
    /// unless the request asked): the response says `Connection: close`. Return
    /// [`Answer::Close`].
    pub fn close(&mut self) {
        self.connection = ConnectionHeader::Close;
    }

    /// The engine's context: the core, the clock, other connections, timers, messages.
    pub fn context(&mut self) -> &mut Context<'c, Http<H>> {
        self.cx
    }

    /// The handler's state on this core.
    pub fn state(&mut self) -> &mut H::CoreState {
        &mut self.cx.state().handler
    }
}

/// The per-core state of [`Http`]: its `Date` clock and the handler's state.
#[derive(Debug)]
pub struct HttpCore<S> {
    date: DateClock,
    /// The handler's own.
    pub handler: S,
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

impl<H: Handler> Http<H> {
    /// Hands `request` to the handler; a request it left unanswered gets a 500 and a close.
    fn answer(&self, request: &Request<'_>, date: HttpDate, cx: &mut Context<'_, Self>) -> Answer {
        let mut exchange = Exchange {
            cx,
            date,
            connection: ConnectionHeader::new(request.version, request.keep_alive),
            head_only: request.method == "HEAD",
            answered: false,
        };
        let answer = self.handler.request(request, &mut exchange);
        if exchange.answered {
            return answer;
        }
        let head_only = exchange.head_only;
        exchange.write(|buf| {
            http::write_plain_error(buf, &date, 500, "Internal Server Error", None, head_only);
        });
        Answer::Close
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
    type CoreState = HttpCore<H::CoreState>;
    type Message = H::Message;

    fn core_state(&self, core: u16) -> HttpCore<H::CoreState> {
        HttpCore {
            date: DateClock::default(),
            handler: self.handler.core_state(core),
        }
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
        let date = cx.state().date.date_at(now_us);
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
                    let answer = self.answer(&request, date, cx);
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

    fn on_message(&self, message: H::Message, cx: &mut Context<'_, Self>) {
        self.handler.on_message(message, cx);
    }

    fn on_core_timer(&self, timer: usize, cx: &mut Context<'_, Self>) {
        self.handler.on_core_timer(timer, cx);
    }

    fn on_close(&self, _session: HttpSession, record: &CloseRecord, cx: &mut Context<'_, Self>) {
        self.handler.on_close(record, cx);
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
struct DateClock {
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

    /// A small service written with the handler API: `/ok` echoes the query and the `x-echo`
    /// field, `/body` the body, `/bad` is a 400 (rejected), `/bye` closes on its own decision,
    /// `/silent` does not answer, `/field` sets a field it may not.
    struct Service;

    impl Handler for Service {
        type CoreState = u64;
        type Message = ();

        fn core_state(&self, _core: u16) -> u64 {
            0
        }

        fn request(&self, request: &Request<'_>, exchange: &mut Exchange<'_, '_, Self>) -> Answer {
            *exchange.state() += 1;
            let plain = [("Content-Type", "text/plain")];
            match request.path {
                "/ok" => {
                    let echo = request.headers.get("X-Echo").unwrap_or(b"-");
                    let body = [request.query.unwrap_or("").as_bytes(), b" ", echo].concat();
                    exchange.respond(200, &plain, &body).unwrap();
                    Answer::KeepAlive
                }
                "/body" => {
                    let body: Vec<u8> = request.body.pieces().flatten().copied().collect();
                    exchange.respond(200, &plain, &body).unwrap();
                    Answer::KeepAlive
                }
                "/bad" => {
                    exchange.respond(400, &plain, b"bad\n").unwrap();
                    Answer::Reject
                }
                "/bye" => {
                    exchange.close();
                    exchange.respond(200, &plain, b"bye").unwrap();
                    Answer::Close
                }
                "/field" => {
                    let result = exchange.respond(200, &[("Content-Length", "1")], b"x");
                    assert_eq!(result, Err(FieldError::Reserved { index: 0 }));
                    Answer::Reject
                }
                _ => Answer::KeepAlive, // "/silent": no response
            }
        }
    }

    fn run(
        proto: &Http<Service>,
        session: &mut HttpSession,
        input: &[u8],
        draining: bool,
    ) -> (Step, String) {
        let mut core = Harness::new(proto);
        core.draining = draining;
        let step = proto.on_input(session, input, &mut core.cx());
        (step, String::from_utf8(core.written()).unwrap())
    }

    fn open(proto: &Http<Service>) -> HttpSession {
        proto.open(None, &mut Harness::new(proto).cx())
    }

    fn http() -> Http<Service> {
        Http::new(Service, Limits::default())
    }

    #[test]
    fn pipelined_requests_are_answered_in_order_and_the_rest_is_kept() {
        let proto = http();
        let mut session = open(&proto);
        let input = b"GET /ok?a HTTP/1.1\r\nHost: a\r\nx-client-tag: 9\r\nX-Echo:  hi \r\n\r\n\
                      POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n42GET /pipe";
        let (step, text) = run(&proto, &mut session, input, false);
        assert_eq!(step, Step::more(input.len() - 9, 2));
        assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
        assert!(text.contains("Content-Type: text/plain\r\nContent-Length: 4\r\n"));
        let first = text
            .find("\r\n\r\na hi")
            .expect("the query and the field, trimmed");
        assert!(first < text.find("\r\n\r\n42").unwrap());
        assert_eq!(proto.tag(&session), Some(9));
        assert_eq!(
            proto.partial_phase(&session, b"GET /pipe"),
            MessagePhase::Header
        );
    }

    #[test]
    fn verdicts_follow_the_requests_and_the_handler() {
        let proto = http();
        let cases: [(&[u8], Verdict, &str); 8] = [
            (
                b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                Verdict::PeerClose,
                "Connection: close\r\n",
            ),
            (
                b"GET /ok HTTP/1.0\r\n\r\n",
                Verdict::PeerClose,
                "Connection: close\r\n",
            ),
            (
                b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n",
                Verdict::Continue,
                " 200 OK",
            ),
            (
                b"GET /bad HTTP/1.1\r\nHost: a\r\n\r\n",
                Verdict::Violation,
                " 400 ",
            ),
            (
                b"GET /bye HTTP/1.1\r\nHost: a\r\n\r\n",
                Verdict::Close,
                "Connection: close\r\n",
            ),
            (
                b"GET /silent HTTP/1.1\r\nHost: a\r\n\r\n",
                Verdict::Close,
                " 500 ",
            ),
            (
                b"GET /field HTTP/1.1\r\nHost: a\r\n\r\n",
                Verdict::Violation,
                " 500 ",
            ),
            (b"GET / HTTP/2.0\r\n\r\n", Verdict::Violation, " 505 "),
        ];
        for (input, verdict, needle) in cases {
            let mut session = open(&proto);
            let (step, text) = run(&proto, &mut session, input, false);
            assert_eq!(step.verdict, verdict, "{text}");
            assert!(text.starts_with("HTTP/1.1 "), "one response: {text}");
            assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "one response: {text}");
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
    }

    #[test]
    fn a_drain_answers_with_connection_close() {
        let proto = http();
        let mut session = open(&proto);
        let input = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n";
        let (step, text) = run(&proto, &mut session, input, true);
        assert_eq!(step.verdict, Verdict::Close);
        assert_eq!(step.messages, 1, "the first answer is the last");
        assert!(text.contains("Connection: close\r\n"), "{text}");
    }

    #[test]
    fn a_body_in_progress_is_phase_body() {
        let proto = http();
        let mut session = open(&proto);
        let input = b"POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n2";
        let (step, _) = run(&proto, &mut session, input, false);
        assert_eq!(step, Step::more(0, 0));
        assert_eq!(proto.partial_phase(&session, input), MessagePhase::Body);
    }
}
