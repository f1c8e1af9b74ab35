//! HttpArena's H1 isolated endpoints (baseline, pipelined, short-lived) as pure functions, so
//! every HTTP peer routes and sums alike; the peers only parse and write HTTP.
//!
//! - `GET /pipeline` → `200 text/plain`, body `ok`.
//! - `GET /baseline11?a=13&b=42` → `55`, the sum of the query values;
//!   `POST /baseline11?a=13&b=42` with body `20` → `75`, that sum plus the body as an integer.
//! - Any other path → 404, another method on one of those paths → 405 (with its `Allow`).
//!
//! A query value or a body that is not a decimal integer (or a sum that overflows) is a 400.

/// The body of `GET /pipeline`.
pub const PIPELINE_BODY: &[u8] = b"ok";

/// The request methods the endpoints tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Other,
}

impl Method {
    /// The method from its token (methods are case-sensitive, RFC 9110 §9.1).
    pub fn from_token(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"POST" => Method::Post,
            _ => Method::Other,
        }
    }
}

/// What a request asks for, from its method and path alone (before its body is read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /pipeline`: 200 `ok`.
    Pipeline,
    /// `GET /baseline11`: the query sum.
    BaselineGet,
    /// `POST /baseline11`: the query sum plus the body.
    BaselinePost,
    /// A known path with another method: 405 with this `Allow` value.
    MethodNotAllowed { allow: &'static str },
    /// Any other path: 404.
    NotFound,
}

impl Endpoint {
    /// Routes on the path without its query (`?...`).
    pub fn route(method: Method, path: &[u8]) -> Endpoint {
        match (path, method) {
            (b"/pipeline", Method::Get) => Endpoint::Pipeline,
            (b"/pipeline", _) => Endpoint::MethodNotAllowed { allow: "GET" },
            (b"/baseline11", Method::Get) => Endpoint::BaselineGet,
            (b"/baseline11", Method::Post) => Endpoint::BaselinePost,
            (b"/baseline11", _) => Endpoint::MethodNotAllowed { allow: "GET, POST" },
            _ => Endpoint::NotFound,
        }
    }
}

/// Splits a request target into its path and query (empty without `?`).
pub fn split_target(target: &[u8]) -> (&[u8], &[u8]) {
    match target.iter().position(|&byte| byte == b'?') {
        Some(at) => (&target[..at], &target[at + 1..]),
        None => (target, b""),
    }
}

/// The `/baseline11` answer: the sum of every query value, plus the body for a POST (`None`
/// for a GET). `None` when a value or the body is not an integer or the sum overflows: a 400.
pub fn baseline_sum(query: &[u8], body: Option<&[u8]>) -> Option<i64> {
    let mut sum = query_sum(query)?;
    if let Some(body) = body {
        sum = sum.checked_add(body_value(body)?)?;
    }
    Some(sum)
}

/// Sums `name=value` pairs separated by `&`; empty pairs (`a=1&&b=2`, a trailing `&`) are
/// skipped, a pair without `=` or with a value that is not an integer is an error.
fn query_sum(query: &[u8]) -> Option<i64> {
    let mut sum: i64 = 0;
    for pair in query
        .split(|&byte| byte == b'&')
        .filter(|pair| !pair.is_empty())
    {
        let at = pair.iter().position(|&byte| byte == b'=')?;
        sum = sum.checked_add(parse_int(&pair[at + 1..])?)?;
    }
    Some(sum)
}

/// The body as an integer, ASCII whitespace around it ignored; an empty body counts 0.
fn body_value(body: &[u8]) -> Option<i64> {
    let body = body.trim_ascii();
    if body.is_empty() {
        return Some(0);
    }
    parse_int(body)
}

/// A decimal integer with an optional sign, nothing else.
fn parse_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        let digit = i64::from(byte - b'0');
        value = value.checked_mul(10)?;
        value = if negative {
            value.checked_sub(digit)?
        } else {
            value.checked_add(digit)?
        };
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let table = [
            (Method::Get, &b"/pipeline"[..], Endpoint::Pipeline),
            (
                Method::Post,
                b"/pipeline",
                Endpoint::MethodNotAllowed { allow: "GET" },
            ),
            (Method::Get, b"/baseline11", Endpoint::BaselineGet),
            (Method::Post, b"/baseline11", Endpoint::BaselinePost),
            (
                Method::Other,
                b"/baseline11",
                Endpoint::MethodNotAllowed { allow: "GET, POST" },
            ),
            (Method::Get, b"/", Endpoint::NotFound),
            (Method::Get, b"/pipeline/", Endpoint::NotFound),
            (Method::Other, b"/nope", Endpoint::NotFound),
        ];
        for (method, path, endpoint) in table {
            assert_eq!(
                Endpoint::route(method, path),
                endpoint,
                "{method:?} {path:?}"
            );
        }
        assert_eq!(Method::from_token(b"get"), Method::Other);
    }

    #[test]
    fn splits_targets() {
        assert_eq!(
            split_target(b"/baseline11?a=1"),
            (&b"/baseline11"[..], &b"a=1"[..])
        );
        assert_eq!(split_target(b"/pipeline"), (&b"/pipeline"[..], &b""[..]));
        assert_eq!(split_target(b"/x?"), (&b"/x"[..], &b""[..]));
    }

    #[track_caller]
    fn sums_to(query: &str, body: Option<&str>, sum: Option<i64>) {
        let body = body.map(str::as_bytes);
        assert_eq!(
            baseline_sum(query.as_bytes(), body),
            sum,
            "{query:?} {body:?}"
        );
    }

    #[test]
    fn sums() {
        sums_to("a=13&b=42", None, Some(55));
        sums_to("a=13&b=42", Some("20"), Some(75));
        sums_to("a=13&b=42", Some(" 20\r\n"), Some(75));
        sums_to("a=13&b=42", Some(""), Some(55));
        sums_to("", None, Some(0));
        sums_to("a=-5&b=+2&", Some("-1"), Some(-4));
        sums_to("a=1&&b=2", None, Some(3));
        sums_to("a", None, None);
        sums_to("a=", None, None);
        sums_to("a=x", None, None);
        sums_to("a=1", Some("2 3"), None);
        sums_to("a=9223372036854775807", Some("1"), None);
        sums_to("a=-9223372036854775808", None, Some(i64::MIN));
    }
}
