//! The service side of HTTP: the [`Handler`] a user writes, the [`Exchange`] it answers a request
//! through (now, or later with a [`Later`]), and what its answer means for the connection.

use protocol::http::{self, ConnectionHeader, FieldError, HttpDate, Request};

use super::upgrade::Upgraded;
use super::Http;
use crate::protocol_api::{ConnId, Context, WriteError};
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
    /// What a connection becomes after [`Exchange::upgrade`] ([`NoUpgrade`] if never).
    ///
    /// [`NoUpgrade`]: super::NoUpgrade
    type Upgraded: Upgraded<Self>;
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
    pub(super) cx: &'e mut Context<'c, Http<H>>,
    pub(super) date: HttpDate,
    pub(super) connection: ConnectionHeader,
    /// The request itself asked to close (`Connection: close`, HTTP/1.0 without keep-alive).
    pub(super) asked_to_close: bool,
    pub(super) head_only: bool,
    pub(super) answered: bool,
    pub(super) deferred: bool,
    pub(super) upgraded: Option<H::Upgraded>,
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

    /// Answers later, with [`Later::respond`] (from a timer, a message, another connection's
    /// request...). The requests pipelined behind this one wait, unread, and so does the
    /// connection's FIN: responses go out in order. The connection owes a response meanwhile,
    /// so it is not closed as idle — a handler that may never answer sets its own deadline.
    pub fn defer(&mut self) -> Later {
        assert!(!self.answered, "one response per request");
        self.answered = true;
        self.deferred = true;
        let closes = match self.connection {
            ConnectionHeader::Close if self.asked_to_close => Some(Ending::AsAsked),
            ConnectionHeader::Close => Some(Ending::Local),
            ConnectionHeader::Omit | ConnectionHeader::KeepAlive | ConnectionHeader::Upgrade => {
                None
            }
        };
        Later {
            conn: self.cx.defer(),
            connection: self.connection,
            head_only: self.head_only,
            closes,
        }
    }

    /// Answers `101 Switching Protocols` with `fields` (e.g. `Upgrade: websocket`,
    /// `Sec-WebSocket-Accept`; `Connection: Upgrade` is added), and hands the connection to
    /// `to`: every byte after this request goes to it. A malformed or reserved field is refused
    /// and nothing is written (answer otherwise).
    pub fn upgrade(&mut self, to: H::Upgraded, fields: &[(&str, &str)]) -> Result<(), FieldError> {
        assert!(!self.answered, "one response per request");
        http::check_fields(fields)?;
        let date = self.date;
        self.cx.output().push_with(|buf| {
            let upgrade = ConnectionHeader::Upgrade;
            let written = http::write_with_fields(buf, &date, 101, fields, b"", upgrade, false);
            debug_assert!(written.is_ok(), "checked above");
        });
        self.answered = true;
        self.upgraded = Some(to);
        Ok(())
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

/// A response owed ([`Exchange::defer`]): keep it (in the core's state, in a message) and
/// answer once. It names its connection by [`ConnId`], so it may be answered from any callback
/// of that connection's core.
/// Neither `Copy` nor `Clone`: a request is answered once.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a deferred request is answered with Later::respond"]
pub struct Later {
    conn: ConnId,
    connection: ConnectionHeader,
    head_only: bool,
    /// The connection closes after this response, and why.
    closes: Option<Ending>,
}

/// Why a connection closes after a deferred response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// The request asked: `peer_close`.
    AsAsked,
    /// The drain, or the handler: `shutdown` or `local_close`.
    Local,
}

/// Why a deferred response could not be sent as asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaterError {
    /// The connection is gone (or closing): nobody to answer.
    Closed(WriteError),
    /// A header field was refused; a `500` went out instead.
    Field(FieldError),
}

impl std::fmt::Display for LaterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LaterError::Closed(error) => error.fmt(f),
            LaterError::Field(error) => write!(f, "{error}; answered 500 instead"),
        }
    }
}

impl std::error::Error for LaterError {}

impl Later {
    /// The connection that waits.
    pub fn conn(&self) -> ConnId {
        self.conn
    }

    /// Sends the response (as [`Exchange::respond`]); then the requests pipelined behind this
    /// one are read, or the connection closes if the request asked to (or the drain).
    pub fn respond<H: Handler>(
        self,
        cx: &mut Context<'_, Http<H>>,
        status: u16,
        fields: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(), LaterError> {
        let now_us = cx.now_us();
        let date = cx.state().date.date_at(now_us);
        let mut written = Ok(());
        cx.reply_with(self.conn, |buf| {
            written = http::write_with_fields(
                buf,
                &date,
                status,
                fields,
                body,
                self.connection,
                self.head_only,
            );
            if written.is_err() {
                let head_only = self.head_only;
                http::write_plain_error(buf, &date, 500, "Internal Server Error", None, head_only);
            }
        })
        .map_err(LaterError::Closed)?;
        let next = match (self.closes, written.is_err()) {
            (Some(Ending::AsAsked), _) => cx.close_as_asked(self.conn),
            (Some(Ending::Local), _) | (None, true) => cx.close(self.conn),
            (None, false) => cx.resume(self.conn),
        };
        next.map_err(LaterError::Closed)?;
        written.map_err(LaterError::Field)
    }
}
