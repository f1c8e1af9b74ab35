//! HTTP/1.1 requests of the engine's workloads (HttpArena's H1: `GET /pipeline`, `GET` and
//! `POST /baseline11`), the response each must get, and the odd last requests of the close
//! modes: a request cut in its head or its body, and a malformed one.
//!
//! The operands of a baseline request are a pure function of (tag, seq), so each request asks
//! a different sum (a cached or made-up answer fails) and nothing but the sum is kept.

use std::fmt;
use std::io::Write as _;

use super::response::HttpReply;
use super::{Ending, Expect, RecordExpect, RecordPhase, RequestSpec};
use crate::mix::{splitmix64, CloseMode};
use crate::wire::HttpWorkload;

/// The Host every request names (the engine accepts any).
const HOST: &str = "loadgen";
/// A request cut before the blank line that ends its head: a FIN or a stall here is in the
/// engine's phase `header`.
pub const PARTIAL_HEAD: &[u8] = b"GET /baseline11?a=1&b=2 HTTP/1.1\r\nHost: loadgen\r\n";
/// A POST whose head is complete and whose body has 4 of the 8 bytes it announces: phase
/// `body`.
pub const PARTIAL_BODY: &[u8] =
    b"POST /baseline11?a=1&b=2 HTTP/1.1\r\nHost: loadgen\r\nContent-Length: 8\r\n\r\n1234";
/// A header line without a colon: the engine answers 400 with `Connection: close` and closes.
pub const BAD_REQUEST: &[u8] = b"GET /pipeline HTTP/1.1\r\nHost: loadgen\r\nBad Header\r\n\r\n";
/// The status the engine answers a malformed request with.
pub const BAD_REQUEST_STATUS: u16 = 400;
/// Mixed into the operands' seed so they differ from the frame payload pattern's.
const OPERAND_SALT: u64 = 0x6261_7365_6c69_6e65;
/// Digits of the longest i64 (`-9223372036854775808`).
const I64_DIGITS_MAX: usize = 20;

/// What the body of a response must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectBody {
    /// Exactly these bytes.
    Text(&'static [u8]),
    /// This integer in decimal, exactly.
    Sum(i64),
    /// Any body (an error response: its status is what counts).
    Any,
}

/// The response a request must get: status, `Content-Type: text/plain`, the body, and whether
/// it says `Connection: close`. (Content-Length framing is checked by the parser.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpExpect {
    pub status: u16,
    pub body: ExpectBody,
    pub close: bool,
}

impl HttpExpect {
    pub fn matches(&self, reply: &HttpReply<'_>) -> bool {
        let body = match self.body {
            ExpectBody::Text(text) => reply.body == text,
            ExpectBody::Sum(sum) => reply.body == Decimal::new(sum).as_bytes(),
            ExpectBody::Any => true,
        };
        body && reply.status == self.status && reply.is_text_plain() && reply.closes == self.close
    }
}

/// An i64 in decimal, without allocating.
struct Decimal {
    digits: [u8; I64_DIGITS_MAX],
    len: usize,
}

impl Decimal {
    fn new(value: i64) -> Decimal {
        let mut digits = [0; I64_DIGITS_MAX];
        let mut rest = &mut digits[..];
        write!(rest, "{value}").expect("20 bytes hold every i64");
        let len = I64_DIGITS_MAX - rest.len();
        Decimal { digits, len }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len]
    }
}

fn put(out: &mut Vec<u8>, args: fmt::Arguments<'_>) {
    out.write_fmt(args).expect("a Vec takes every byte");
}

/// The three operands of request (tag, seq): two query values and a body, each in i32 (so
/// every sum fits in i64), negative ones too.
fn operands(tag: u64, seq: u64) -> [i64; 3] {
    let first = splitmix64(tag ^ OPERAND_SALT ^ seq.wrapping_mul(0xD6E8_FEB8_6659_FD93));
    let second = splitmix64(first);
    [first as i32, (first >> 32) as i32, second as i32].map(i64::from)
}

/// Appends the request `spec` of `workload` to `out`; returns the response it must get.
pub fn request(workload: HttpWorkload, spec: RequestSpec, out: &mut Vec<u8>) -> HttpExpect {
    let body = match workload {
        HttpWorkload::Pipeline => {
            put(out, format_args!("GET /pipeline HTTP/1.1\r\n"));
            headers(spec, out);
            out.extend_from_slice(b"\r\n");
            ExpectBody::Text(b"ok")
        }
        HttpWorkload::Baseline => baseline(spec, out),
    };
    HttpExpect {
        status: 200,
        body,
        close: spec.close,
    }
}

/// Host, the tag on a connection's first request, and `Connection: close` when asked.
fn headers(spec: RequestSpec, out: &mut Vec<u8>) {
    put(out, format_args!("Host: {HOST}\r\n"));
    if spec.seq == 0 {
        put(out, format_args!("x-client-tag: {}\r\n", spec.tag));
    }
    if spec.close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
}

/// In turn: GET with a query, POST with a Content-Length body, POST with a chunked body.
fn baseline(spec: RequestSpec, out: &mut Vec<u8>) -> ExpectBody {
    let [a, b, c] = operands(spec.tag, spec.seq);
    let turn = spec.seq % 3;
    let method = if turn == 0 { "GET" } else { "POST" };
    put(
        out,
        format_args!("{method} /baseline11?a={a}&b={b} HTTP/1.1\r\n"),
    );
    headers(spec, out);
    if turn == 0 {
        out.extend_from_slice(b"\r\n");
        return ExpectBody::Sum(a + b);
    }
    let body = Decimal::new(c);
    let body = body.as_bytes();
    if turn == 1 {
        put(out, format_args!("Content-Length: {}\r\n\r\n", body.len()));
        out.extend_from_slice(body);
    } else {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
        // Two chunks when there are two digits or more: the engine joins digits across them.
        let (first, rest) = body.split_at(body.len().div_ceil(2));
        for chunk in [first, rest].into_iter().filter(|c| !c.is_empty()) {
            put(out, format_args!("{:x}\r\n", chunk.len()));
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\n\r\n");
    }
    ExpectBody::Sum(a + b + c)
}

/// The last bytes of `mode`: `mid-frame` and `stall` send a request cut in its head (even
/// turns) or in its body (odd turns); `bad-frame` a malformed request, answered 400. The other
/// modes send none (`close-request` asked for the close on its last request).
pub fn ending(mode: CloseMode, turn: u64, out: &mut Vec<u8>) -> Ending {
    match mode {
        CloseMode::MidFrame | CloseMode::Stall => {
            let (bytes, phase) = if turn % 2 == 1 {
                (PARTIAL_BODY, RecordPhase::Body)
            } else {
                (PARTIAL_HEAD, RecordPhase::Header)
            };
            out.extend_from_slice(bytes);
            Ending {
                reply: None,
                record: Some(RecordExpect {
                    phase,
                    partial_bytes: bytes.len() as u64,
                }),
            }
        }
        CloseMode::BadFrame => {
            out.extend_from_slice(BAD_REQUEST);
            Ending {
                reply: Some(Expect::Http(HttpExpect {
                    status: BAD_REQUEST_STATUS,
                    body: ExpectBody::Any,
                    close: true,
                })),
                record: None,
            }
        }
        CloseMode::Fin
        | CloseMode::Reset
        | CloseMode::HalfClose
        | CloseMode::CloseRequest
        | CloseMode::Idle
        | CloseMode::Hold => Ending::default(),
    }
}

/// The modes that end between requests with nothing in flight close in phase `idle` with no
/// partial bytes. (`half-close`, `close-request` and `bad-frame` may close while a response is
/// still being sent, phase `flushing`: not determined.)
pub fn record_expect(mode: CloseMode) -> Option<RecordExpect> {
    match mode {
        CloseMode::Fin | CloseMode::Reset | CloseMode::Idle | CloseMode::Hold => {
            Some(RecordExpect {
                phase: RecordPhase::Idle,
                partial_bytes: 0,
            })
        }
        CloseMode::MidFrame
        | CloseMode::Stall
        | CloseMode::HalfClose
        | CloseMode::CloseRequest
        | CloseMode::BadFrame => None,
    }
}
