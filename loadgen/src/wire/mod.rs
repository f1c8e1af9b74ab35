//! What goes over the wire, per protocol: the tag a connection announces, the requests and what
//! their replies must be, the deliberately odd bytes a close mode ends with, and what the
//! engine's close record must show beyond its cause. The worker drives either protocol through
//! these types; `frame.rs` and `http.rs` hold the bytes, `response.rs` parses HTTP responses.

mod frame;
mod http;
mod response;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use http::HttpExpect;
pub use response::{HttpReply, ResponseDecoder, ResponseError};

use crate::mix::CloseMode;

/// `--protocol`: what the engine serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireProtocol {
    /// The engine's length-prefixed frames (`engine --protocol frame`, its default).
    Frame,
    /// HTTP/1.1 (`engine --protocol http`): HttpArena's H1 workload.
    Http,
}

/// `--http-workload`: which of the engine's HTTP workloads the requests come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpWorkload {
    /// `GET /pipeline`, answered `ok`.
    Pipeline,
    /// In turn: `GET /baseline11?a=A&b=B`, a POST of an integer by Content-Length, a chunked
    /// POST; random operands per request, answered with their sum.
    Baseline,
}

impl HttpWorkload {
    pub const fn as_str(self) -> &'static str {
        match self {
            HttpWorkload::Pipeline => "pipeline",
            HttpWorkload::Baseline => "baseline",
        }
    }
}

/// The protocol of a run and what shapes its requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// ECHO frames of these payload sizes, in turn.
    Frame { payloads: Vec<u16> },
    /// HTTP/1.1 requests of this workload.
    Http { workload: HttpWorkload },
}

/// The phase a close record names (the engine's `phase` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordPhase {
    /// Between requests.
    Idle,
    /// Inside a request's line or header fields.
    Header,
    /// Inside a request's body.
    Body,
}

impl RecordPhase {
    pub const fn as_str(self) -> &'static str {
        match self {
            RecordPhase::Idle => "idle",
            RecordPhase::Header => "header",
            RecordPhase::Body => "body",
        }
    }
}

/// What a connection's close record must show beyond its cause, where the protocol and the
/// close mode determine it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordExpect {
    pub phase: RecordPhase,
    /// Bytes of the incomplete request the engine held (0 between requests).
    pub partial_bytes: u64,
}

/// What the reply to one request must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// An ECHO frame carrying the pattern of (tag, seq), `len` bytes long.
    Echo { len: u16 },
    /// An HTTP response.
    Http(HttpExpect),
}

/// One reply as decoded.
#[derive(Clone, Copy, Debug)]
pub enum Reply<'a> {
    Frame(protocol::Frame<'a>),
    Http(HttpReply<'a>),
}

impl Expect {
    /// Whether `reply` is exactly the reply to request `seq` of the connection tagged `tag`.
    pub fn matches(&self, tag: u64, seq: u64, reply: &Reply<'_>) -> bool {
        match (self, reply) {
            (Expect::Echo { len }, Reply::Frame(frame)) => {
                frame::echo_matches(tag, seq, *len, frame)
            }
            (Expect::Http(expect), Reply::Http(reply)) => expect.matches(reply),
            _ => false,
        }
    }
}

/// One request to encode.
#[derive(Clone, Copy, Debug)]
pub struct RequestSpec {
    pub tag: u64,
    /// Its number on the connection, from 0: the first carries the tag (HTTP).
    pub seq: u64,
    /// The last request of a `close-request` connection: HTTP asks for the close on it
    /// (`Connection: close`); the frame protocol sends a CLOSE frame after it instead.
    pub close: bool,
}

/// What a close mode's last bytes (see [`Wire::ending`]) lead to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ending {
    /// A reply the engine sends to them (HTTP's 400 to a malformed request).
    pub reply: Option<Expect>,
    /// What the close record must then show, when they determine it.
    pub record: Option<RecordExpect>,
}

/// Why a reply stream cannot be read on: nothing after this point can be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamError {
    Frame(protocol::DecodeError),
    Http(ResponseError),
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StreamError::Frame(error) => write!(f, "reply frames: {error}"),
            StreamError::Http(error) => write!(f, "HTTP responses: {error}"),
        }
    }
}

impl std::error::Error for StreamError {}

/// Decodes one connection's replies, fed as they arrive.
#[derive(Debug)]
pub enum ReplyDecoder {
    Frame(protocol::Decoder),
    Http(ResponseDecoder),
}

impl ReplyDecoder {
    /// Calls `on_reply` for every reply `data` completes, in order.
    pub fn feed(
        &mut self,
        data: &[u8],
        mut on_reply: impl FnMut(Reply<'_>),
    ) -> Result<(), StreamError> {
        match self {
            ReplyDecoder::Frame(decoder) => decoder
                .feed(data, |frame| {
                    on_reply(Reply::Frame(frame));
                    protocol::Progress::Continue
                })
                .map(drop)
                .map_err(StreamError::Frame),
            ReplyDecoder::Http(decoder) => decoder
                .feed(data, |reply| on_reply(Reply::Http(reply)))
                .map_err(StreamError::Http),
        }
    }
}

impl Wire {
    /// How the report names it: `frame`, `http pipeline`, `http baseline`.
    pub fn name(&self) -> String {
        match self {
            Wire::Frame { .. } => "frame".into(),
            Wire::Http { workload } => format!("http {}", workload.as_str()),
        }
    }

    /// A connection's reply decoder.
    pub fn decoder(&self) -> ReplyDecoder {
        match self {
            Wire::Frame { .. } => ReplyDecoder::Frame(frame::decoder()),
            Wire::Http { .. } => ReplyDecoder::Http(ResponseDecoder::new()),
        }
    }

    /// The bytes that open a connection and announce its tag: the frame protocol's HELLO.
    /// HTTP has none: the tag rides on the first request (`x-client-tag`).
    pub fn hello(&self, tag: u64, out: &mut Vec<u8>) {
        match self {
            Wire::Frame { .. } => frame::hello(tag, out),
            Wire::Http { .. } => {}
        }
    }

    /// Appends the request to `out` and returns what its reply must be.
    pub fn request(&self, spec: RequestSpec, out: &mut Vec<u8>) -> Expect {
        match self {
            Wire::Frame { payloads } => frame::request(payloads, spec, out),
            Wire::Http { workload } => Expect::Http(http::request(*workload, spec, out)),
        }
    }

    /// Appends the last bytes `mode` sends after its requests (a partial request, a bad one, a
    /// CLOSE frame; nothing for most modes). `turn` counts the connections of `mode` so far:
    /// HTTP's partial requests alternate between the head and the body with it.
    pub fn ending(&self, mode: CloseMode, turn: u64, out: &mut Vec<u8>) -> Ending {
        match self {
            Wire::Frame { .. } => {
                frame::ending(mode, out);
                Ending::default()
            }
            Wire::Http { .. } => http::ending(mode, turn, out),
        }
    }

    /// What the close record of a `mode` connection must show from the start (before any
    /// [`Wire::ending`] says more): HTTP connections that end between requests are `idle`
    /// with no partial bytes. The frame protocol's records are checked by cause only.
    pub fn record_expect(&self, mode: CloseMode) -> Option<RecordExpect> {
        match self {
            Wire::Frame { .. } => None,
            Wire::Http { .. } => http::record_expect(mode),
        }
    }
}

#[cfg(test)]
mod tests;
