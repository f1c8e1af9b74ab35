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

mod date;
mod handler;
#[cfg(test)]
mod tests;
mod upgrade;

use std::net::SocketAddr;

use protocol::http::{self, ConnectionHeader, HttpDate, Limits, Parse, Parser, Phase, Request};

use crate::protocol_api::{Context, MessagePhase, Protocol, Step};
use crate::record::CloseRecord;

use date::DateClock;

/// The interim response to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
pub use handler::{Answer, Exchange, Handler, Later, LaterError};
pub use upgrade::{NoUpgrade, Upgraded};

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
    fn answer(
        &self,
        request: &Request<'_>,
        asked_to_close: bool,
        date: HttpDate,
        cx: &mut Context<'_, Self>,
    ) -> Outcome<H::Upgraded> {
        let mut exchange = Exchange {
            cx,
            date,
            connection: ConnectionHeader::new(request.version, request.keep_alive),
            asked_to_close,
            head_only: request.method == "HEAD",
            answered: false,
            deferred: false,
            upgraded: None,
        };
        let answer = self.handler.request(request, &mut exchange);
        if let Some(upgraded) = exchange.upgraded.take() {
            return Outcome::Upgraded(upgraded);
        }
        if exchange.deferred {
            return Outcome::Deferred;
        }
        if exchange.answered {
            return Outcome::Now(answer);
        }
        let head_only = exchange.head_only;
        exchange.write(|buf| {
            http::write_plain_error(buf, &date, 500, "Internal Server Error", None, head_only);
        });
        Outcome::Now(Answer::Close)
    }
}

/// What became of one request.
enum Outcome<U> {
    Now(Answer),
    /// Answered later: read nothing more until then.
    Deferred,
    /// Answered `101`: the connection speaks another protocol from now on.
    Upgraded(U),
}

/// One HTTP connection: its requests until an upgrade, then its session of the new protocol.
#[derive(Debug)]
pub struct HttpSession<U> {
    mode: Mode<U>,
}

#[derive(Debug)]
enum Mode<U> {
    Http(Requests),
    Upgraded { upgraded: U, tag: Option<u64> },
}

/// The HTTP side of a connection: its parser (which remembers how far it examined the pending
/// request), how many requests it had, and the tag of its first.
#[derive(Clone, Copy, Debug)]
struct Requests {
    parser: Parser,
    count: u64,
    tag: Option<u64>,
    /// A `100 Continue` went out for the request whose body is awaited.
    continued: bool,
}

impl<H: Handler> Protocol for Http<H> {
    type Session = HttpSession<H::Upgraded>;
    type CoreState = HttpCore<H::CoreState>;
    type Message = H::Message;

    fn core_state(&self, core: u16) -> HttpCore<H::CoreState> {
        HttpCore {
            date: DateClock::default(),
            handler: self.handler.core_state(core),
        }
    }

    fn open(&self, _peer: Option<SocketAddr>, _cx: &mut Context<'_, Self>) -> Self::Session {
        HttpSession {
            mode: Mode::Http(Requests {
                parser: self.fresh,
                count: 0,
                tag: None,
                continued: false,
            }),
        }
    }

    fn on_input(
        &self,
        session: &mut Self::Session,
        input: &[u8],
        cx: &mut Context<'_, Self>,
    ) -> Step {
        let requests = match &mut session.mode {
            Mode::Http(requests) => requests,
            Mode::Upgraded { upgraded, .. } => return upgraded.on_input(input, cx),
        };
        let (step, upgraded) = self.serve(requests, input, cx);
        let Some(mut upgraded) = upgraded else {
            return step;
        };
        // What followed the upgrade request is the new protocol's.
        let rest = upgraded.on_input(&input[step.consumed..], cx);
        let tag = requests.tag;
        session.mode = Mode::Upgraded { upgraded, tag };
        Step {
            consumed: step.consumed + rest.consumed,
            messages: step.messages + rest.messages,
            verdict: rest.verdict,
        }
    }

    fn on_timer(&self, session: &mut Self::Session, timer: usize, cx: &mut Context<'_, Self>) {
        if let Mode::Upgraded { upgraded, .. } = &mut session.mode {
            upgraded.on_timer(timer, cx);
        }
    }

    fn on_message(&self, message: H::Message, cx: &mut Context<'_, Self>) {
        self.handler.on_message(message, cx);
    }

    fn on_core_timer(&self, timer: usize, cx: &mut Context<'_, Self>) {
        self.handler.on_core_timer(timer, cx);
    }

    fn on_close(&self, session: Self::Session, record: &CloseRecord, cx: &mut Context<'_, Self>) {
        if let Mode::Upgraded { upgraded, .. } = session.mode {
            upgraded.on_close(record, cx);
        }
        self.handler.on_close(record, cx);
    }

    fn partial_phase(&self, session: &Self::Session, tail: &[u8]) -> MessagePhase {
        match &session.mode {
            Mode::Http(requests) => match requests.parser.phase() {
                Phase::Head => MessagePhase::Header,
                Phase::Body => MessagePhase::Body,
            },
            Mode::Upgraded { upgraded, .. } => upgraded.partial_phase(tail),
        }
    }

    fn tag(&self, session: &Self::Session) -> Option<u64> {
        match &session.mode {
            Mode::Http(requests) => requests.tag,
            Mode::Upgraded { tag, .. } => *tag,
        }
    }

    fn message_max(&self) -> usize {
        self.limits.buffer_max().max(H::Upgraded::MESSAGE_MAX)
    }
}

impl<H: Handler> Http<H> {
    /// Answers every complete request at the start of `input`, in order; stops at a close, a
    /// deferred answer (held) or an upgrade (returned, with the bytes up to its request).
    fn serve(
        &self,
        session: &mut Requests,
        input: &[u8],
        cx: &mut Context<'_, Self>,
    ) -> (Step, Option<H::Upgraded>) {
        let now_us = cx.now_us();
        let date = cx.state().date.date_at(now_us);
        let (mut used, mut requests) = (0, 0);
        loop {
            match session.parser.parse(&input[used..]) {
                Parse::Complete { mut request, len } => {
                    used += len;
                    requests += 1;
                    session.continued = false;
                    if session.count == 0 {
                        session.tag = request.tag; // x-client-tag of the first request
                    }
                    session.count += 1;
                    // Draining: this is the connection's last answer, and it says so.
                    let asked_to_close = !request.keep_alive;
                    request.keep_alive &= !cx.draining();
                    let answer = match self.answer(&request, asked_to_close, date, cx) {
                        Outcome::Now(answer) => answer,
                        Outcome::Deferred => return (Step::hold(used, requests), None),
                        Outcome::Upgraded(to) => return (Step::more(used, requests), Some(to)),
                    };
                    let step = match answer {
                        Answer::KeepAlive if request.keep_alive => continue,
                        Answer::KeepAlive | Answer::Close if asked_to_close => {
                            Step::peer_close(used, requests)
                        }
                        // The drain's decision (`shutdown`), or the handler's own.
                        Answer::KeepAlive | Answer::Close => Step::close(used, requests),
                        Answer::Reject => Step::violation(used, requests),
                    };
                    return (step, None);
                }
                Parse::Partial(_) => {
                    if session.parser.expects_continue() && !session.continued {
                        // The client waits for this before it sends the body (an interim
                        // response: it counts as a message out).
                        session.continued = true;
                        cx.output().push(CONTINUE);
                    }
                    return (Step::more(used, requests), None);
                }
                Parse::Invalid(error) => {
                    cx.output()
                        .push_with(|buf| http::write_error(buf, &date, error));
                    return (Step::violation(used, requests), None);
                }
            }
        }
    }
}
