//! The HttpArena H1 handler end to end: request bytes in, response bytes out, with a fixed date.

use std::time::{Duration, UNIX_EPOCH};

use protocol::http::arena::{respond, Reply};
use protocol::http::{write_error, HttpDate, Limits, Parse, Parser};

const DATE: &str = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n";

fn date() -> HttpDate {
    HttpDate::new(UNIX_EPOCH + Duration::from_secs(784_111_777))
}

/// The response to the one request `input` holds, and the handler's reply.
#[track_caller]
fn serve(input: &str) -> (String, Reply) {
    let mut out = Vec::new();
    let reply = match Parser::new(Limits::default()).parse(input.as_bytes()) {
        Parse::Complete { request, len } => {
            assert_eq!(len, input.len());
            respond(&request, &date(), &mut out)
        }
        other => panic!("{other:?} for {input:?}"),
    };
    (String::from_utf8(out).expect("ascii"), reply)
}

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{DATE}\r\n{body}",
        body.len()
    )
}

#[test]
fn the_profiles_requests() {
    let keep = Reply {
        status: 200,
        close: false,
    };
    let cases: &[(&str, String)] = &[
        ("GET /pipeline HTTP/1.1\r\nHost: a\r\n\r\n", ok("ok")),
        (
            "GET /baseline11?a=13&b=42 HTTP/1.1\r\nHost: a\r\n\r\n",
            ok("55"),
        ),
        (
            "GET /baseline11?a=731&b=268 HTTP/1.1\r\nHost: a\r\n\r\n",
            ok("999"),
        ),
        (
            "POST /baseline11?a=13&b=42 HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\n\
             Content-Length: 2\r\n\r\n20",
            ok("75"),
        ),
        (
            "POST /baseline11?a=13&b=42 HTTP/1.1\r\nhost: a\r\ncontent-type: text/plain\r\n\
             content-length: 3\r\n\r\n500",
            ok("555"),
        ),
        (
            "POST /baseline11?a=13&b=42 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
             2\r\n20\r\n0\r\n\r\n",
            ok("75"),
        ),
        (
            "POST /baseline11?a=13&b=42 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
             1\r\n2\r\n1;x=y\r\n0\r\n0\r\nT: v\r\n\r\n",
            ok("75"),
        ),
        ("GET /baseline11 HTTP/1.1\r\nHost: a\r\n\r\n", ok("0")),
        (
            "GET /baseline11?a=-50&b=8 HTTP/1.1\r\nHost: a\r\n\r\n",
            ok("-42"),
        ),
        (
            "GET /pipeline?ignored=x HTTP/1.1\r\nHost: a\r\n\r\n",
            ok("ok"),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(&serve(input), &(expected.clone(), keep), "{input:?}");
    }
}

#[test]
fn head_has_the_get_length_and_no_body() {
    let (text, reply) = serve("HEAD /baseline11?a=1&b=2 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        text,
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n{DATE}\r\n")
    );
    assert!(!reply.close);
    let (text, _) = serve("HEAD /nope HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(
        text.starts_with("HTTP/1.1 404 Not Found\r\n") && text.ends_with("\r\n\r\n"),
        "{text}"
    );
}

#[test]
fn not_found_and_not_allowed_keep_the_connection() {
    let cases: &[(&str, u16, &str, Option<&str>)] = &[
        (
            "GET /nope HTTP/1.1\r\nHost: a\r\n\r\n",
            404,
            "not found",
            None,
        ),
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 404, "not found", None),
        (
            "GET /PIPELINE HTTP/1.1\r\nHost: a\r\n\r\n",
            404,
            "not found",
            None,
        ),
        (
            "DELETE /pipeline HTTP/1.1\r\nHost: a\r\n\r\n",
            405,
            "method not allowed",
            Some("GET, HEAD"),
        ),
        (
            "POST /pipeline HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            405,
            "method not allowed",
            Some("GET, HEAD"),
        ),
        (
            "PUT /baseline11 HTTP/1.1\r\nHost: a\r\n\r\n",
            405,
            "method not allowed",
            Some("GET, HEAD, POST"),
        ),
        (
            "get /baseline11 HTTP/1.1\r\nHost: a\r\n\r\n",
            405,
            "method not allowed",
            Some("GET, HEAD, POST"),
        ),
    ];
    for &(input, status, reason, allow) in cases {
        let (text, reply) = serve(input);
        assert_eq!(
            reply,
            Reply {
                status,
                close: false
            },
            "{input:?}"
        );
        assert!(!reply.rejected());
        let allow = allow.map_or(String::new(), |allow| format!("Allow: {allow}\r\n"));
        let expected = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{DATE}\
             {allow}\r\n{reason}\n",
            protocol::http::reason_phrase(status),
            reason.len() + 1,
        );
        assert_eq!(text, expected, "{input:?}");
    }
}

#[test]
fn bad_input_closes_with_a_text_body() {
    let cases: &[(&str, u16, &str, Option<&str>)] = &[
        (
            "GET /baseline11?a=x HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
            "not a decimal integer",
            None,
        ),
        (
            "GET /baseline11?a HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
            "not a decimal integer",
            None,
        ),
        (
            "GET /baseline11?a=9223372036854775807&b=1 HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
            "integer overflow",
            None,
        ),
        (
            "POST /baseline11?a=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
            400,
            "not a decimal integer",
            None,
        ),
        (
            "POST /baseline11?a=1 HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
            "not a decimal integer",
            None,
        ),
    ];
    for &(input, status, reason, allow) in cases {
        let (text, reply) = serve(input);
        assert_eq!(
            reply,
            Reply {
                status,
                close: true
            },
            "{input:?}"
        );
        assert!(reply.rejected());
        let allow = allow.map_or(String::new(), |allow| format!("Allow: {allow}\r\n"));
        let expected = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{DATE}\
             Connection: close\r\n{allow}\r\n{reason}\n",
            protocol::http::reason_phrase(status),
            reason.len() + 1,
        );
        assert_eq!(text, expected, "{input:?}");
    }
}

#[test]
fn persistence_follows_the_request() {
    let cases: &[(&str, Option<&str>, bool)] = &[
        ("GET /pipeline HTTP/1.1\r\nHost: a\r\n\r\n", None, false),
        (
            "GET /pipeline HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            Some("close"),
            true,
        ),
        ("GET /pipeline HTTP/1.0\r\n\r\n", Some("close"), true),
        (
            "GET /pipeline HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            Some("keep-alive"),
            false,
        ),
    ];
    for &(input, connection, close) in cases {
        let (text, reply) = serve(input);
        assert_eq!(reply, Reply { status: 200, close }, "{input:?}");
        let header = connection.map_or(String::new(), |value| format!("Connection: {value}\r\n"));
        let expected = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n{DATE}{header}\r\nok"
        );
        assert_eq!(text, expected, "{input:?}");
    }
}

#[test]
fn parse_errors_are_answered_with_their_status() {
    let mut out = Vec::new();
    let error = match Parser::new(Limits::default()).parse(b"GET / HTTP/2.0\r\n") {
        Parse::Invalid(error) => error,
        other => panic!("{other:?}"),
    };
    write_error(&mut out, &date(), error);
    assert_eq!(
        String::from_utf8(out).expect("ascii"),
        format!(
            "HTTP/1.1 505 HTTP Version Not Supported\r\nContent-Type: text/plain\r\n\
             Content-Length: 27\r\n{DATE}Connection: close\r\n\r\nHTTP version not supported\n"
        )
    );
}
