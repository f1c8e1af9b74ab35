//! The HttpArena H1 workload (baseline, pipelined, short-lived profiles) as a pure handler.
//!
//! - `GET /pipeline`: 200, text/plain, `ok`.
//! - `GET /baseline11?a=13&b=42`: 200, text/plain, the sum of the query values (`55`).
//! - `POST /baseline11?a=13&b=42` with body `20` (Content-Length or chunked): the query sum plus
//!   the body's integer (`75`).
//! - HEAD is GET without the body; another method on these paths is 405 with Allow; any other
//!   path is 404.
//!
//! Sums are i64. Every parameter present is summed whatever its name, and a missing one counts
//! as nothing (no query at all sums to 0). A parameter without `=`, a value that is not
//! `[-]DIGITS`, a POST body that is not `[ws][-]DIGITS[ws]` (an empty one included), or an
//! overflow is a 400, and the connection closes after it. A 404 or 405 answers a well-formed
//! request: the connection stays open as the request asked.

mod sum;

pub use sum::{body_value, query_sum, SumError};

use super::date::HttpDate;
use super::request::Request;
use super::response::{write_plain_error, write_response, ConnectionHeader, Response};

/// The pipelined profile's path.
pub const PIPELINE_PATH: &str = "/pipeline";
/// The baseline and short-lived profiles' path.
pub const BASELINE_PATH: &str = "/baseline11";

/// What [`respond`] answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The status code written.
    pub status: u16,
    /// Whether the connection must close once the response is sent: the request asked for it,
    /// or it was bad input (a 400).
    pub close: bool,
}

impl Reply {
    /// The request was bad input, answered with an error and a close.
    pub fn rejected(&self) -> bool {
        self.status == 400
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Pipeline,
    Baseline,
}

impl Route {
    fn allow(self) -> &'static str {
        match self {
            Route::Pipeline => "GET, HEAD",
            Route::Baseline => "GET, HEAD, POST",
        }
    }
}

/// Appends the response to `request` to `out`; no allocation beyond `out` growing.
pub fn respond(request: &Request<'_>, date: &HttpDate, out: &mut Vec<u8>) -> Reply {
    let head_only = request.method == "HEAD";
    let route = match request.path {
        PIPELINE_PATH => Route::Pipeline,
        BASELINE_PATH => Route::Baseline,
        _ => return not_served(request, date, out, 404, None),
    };
    let post = match (route, request.method) {
        (_, "GET" | "HEAD") => false,
        (Route::Baseline, "POST") => true,
        _ => return not_served(request, date, out, 405, Some(route.allow())),
    };
    let mut digits = itoa::Buffer::new();
    let body: &[u8] = match route {
        Route::Pipeline => b"ok",
        Route::Baseline => match sum(request, post) {
            Ok(sum) => digits.format(sum).as_bytes(),
            Err(why) => return error(out, date, 400, why.reason(), None, head_only),
        },
    };
    let response = Response {
        status: 200,
        content_type: "text/plain",
        body,
        allow: None,
        head_only,
        connection: ConnectionHeader::new(request.version, request.keep_alive),
    };
    write_response(out, date, &response);
    Reply {
        status: 200,
        close: !request.keep_alive,
    }
}

/// The query sum, plus the body's integer for a POST.
fn sum(request: &Request<'_>, post: bool) -> Result<i64, SumError> {
    let query = query_sum(request.query.unwrap_or_default())?;
    if !post {
        return Ok(query);
    }
    let body = body_value(request.body.pieces())?;
    query.checked_add(body).ok_or(SumError::Overflow)
}

/// A 404 or 405: a well-formed request for something not served here; the connection stays as
/// the request asked.
fn not_served(
    request: &Request<'_>,
    date: &HttpDate,
    out: &mut Vec<u8>,
    status: u16,
    allow: Option<&'static str>,
) -> Reply {
    let body: &[u8] = if status == 404 {
        b"not found\n"
    } else {
        b"method not allowed\n"
    };
    let response = Response {
        status,
        content_type: "text/plain",
        body,
        allow,
        head_only: request.method == "HEAD",
        connection: ConnectionHeader::new(request.version, request.keep_alive),
    };
    write_response(out, date, &response);
    Reply {
        status,
        close: !request.keep_alive,
    }
}

fn error(
    out: &mut Vec<u8>,
    date: &HttpDate,
    status: u16,
    reason: &'static str,
    allow: Option<&'static str>,
    head_only: bool,
) -> Reply {
    write_plain_error(out, date, status, reason, allow, head_only);
    Reply {
        status,
        close: true,
    }
}
