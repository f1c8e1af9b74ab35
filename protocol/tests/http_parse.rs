//! Table tests of the HTTP request parser through its public API: every status it answers,
//! persistence, the client tag, bodies, pipelining and the limits' exact edges.

use protocol::http::{Body, Error, Limits, Parse, Parser, Phase, Request, Version};

/// What a parse answered, without the borrowed request.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Complete(usize),
    Partial(Phase),
    Invalid(u16, Error),
}

#[track_caller]
fn outcome(limits: Limits, input: &[u8]) -> Outcome {
    match Parser::new(limits).parse(input) {
        Parse::Complete { len, .. } => Outcome::Complete(len),
        Parse::Partial(phase) => Outcome::Partial(phase),
        Parse::Invalid(error) => Outcome::Invalid(error.status(), error),
    }
}

#[track_caller]
fn request(input: &[u8]) -> Request<'_> {
    match Parser::new(Limits::default()).parse(input) {
        Parse::Complete { request, len } => {
            assert_eq!(len, input.len(), "one whole request");
            request
        }
        other => panic!("{other:?} for {:?}", String::from_utf8_lossy(input)),
    }
}

fn body_bytes(body: &Body<'_>) -> Vec<u8> {
    body.pieces().flatten().copied().collect()
}

#[test]
fn status_table() {
    use Error::*;
    let cases: &[(&str, Outcome)] = &[
        ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", Outcome::Complete(27)),
        ("GET / HTTP/1.0\r\n\r\n", Outcome::Complete(18)),
        ("\r\nGET / HTTP/1.0\r\n\r\n", Outcome::Complete(20)),
        (
            "GET / HTTP/1.1\r\nHost: a\r\n",
            Outcome::Partial(Phase::Head),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab",
            Outcome::Partial(Phase::Body),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r",
            Outcome::Partial(Phase::Body),
        ),
        // 400: request line, header fields.
        ("GET  / HTTP/1.1\r\n", Outcome::Invalid(400, BadRequestLine)),
        (
            "GET / HTTP/1.1 x\r\n",
            Outcome::Invalid(400, BadRequestLine),
        ),
        ("G@T / HTTP/1.1\r\n", Outcome::Invalid(400, BadRequestLine)),
        (
            "\rGET / HTTP/1.1\r\n",
            Outcome::Invalid(400, BadRequestLine),
        ),
        (
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            Outcome::Invalid(400, BadHeader),
        ),
        (
            "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
            Outcome::Invalid(400, BadHeader),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n",
            Outcome::Invalid(400, BadHeader),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n",
            Outcome::Invalid(400, BadHeader),
        ),
        (
            "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            Outcome::Invalid(400, BadHeader),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\n\rX",
            Outcome::Invalid(400, BadHeader),
        ),
        // 400: Host.
        ("GET / HTTP/1.1\r\n\r\n", Outcome::Invalid(400, MissingHost)),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
            Outcome::Invalid(400, MultipleHost),
        ),
        (
            "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
            Outcome::Invalid(400, MultipleHost),
        ),
        // 400: framing.
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
            Outcome::Invalid(400, LengthAndTransferEncoding),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            Outcome::Invalid(400, ConflictingContentLength),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            Outcome::Invalid(400, ConflictingContentLength),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2, 2\r\n\r\nab",
            Outcome::Complete(52),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
            Outcome::Invalid(400, BadContentLength),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
            Outcome::Invalid(400, BadContentLength),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
            Outcome::Invalid(400, BadContentLength),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            Outcome::Invalid(400, BadTransferEncoding),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            Outcome::Invalid(400, BadTransferEncoding),
        ),
        (
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            Outcome::Invalid(400, TransferEncodingHttp10),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            Outcome::Invalid(400, BadChunkSize),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc",
            Outcome::Invalid(400, BadChunkData),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: x\n",
            Outcome::Invalid(400, BadTrailer),
        ),
        // 501.
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            Outcome::Invalid(501, UnsupportedTransferCoding),
        ),
        // 413 from the header or the size line, before any body byte.
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048577\r\n\r\n",
            Outcome::Invalid(413, BodyTooLarge),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            Outcome::Invalid(413, BodyTooLarge),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n",
            Outcome::Partial(Phase::Body),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n100001",
            Outcome::Invalid(413, BodyTooLarge),
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n",
            Outcome::Partial(Phase::Body),
        ),
        // 505.
        (
            "GET / HTTP/2.0\r\n",
            Outcome::Invalid(505, VersionNotSupported),
        ),
        (
            "GET / HTTP/1.2\r\n",
            Outcome::Invalid(505, VersionNotSupported),
        ),
        (
            "GET / HTTP/0.9\r\n",
            Outcome::Invalid(505, VersionNotSupported),
        ),
        (
            "GET /index.html\r\n",
            Outcome::Invalid(505, VersionNotSupported),
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            &outcome(Limits::default(), input.as_bytes()),
            expected,
            "{input:?}"
        );
    }
}

#[test]
fn limits_are_enforced_at_the_byte_that_crosses_them() {
    use Error::*;
    let limits = Limits::default();
    let line = |target_len: usize| format!("GET /{} HTTP/1.1\r\n", "a".repeat(target_len));
    // "GET /" + target + " HTTP/1.1\r\n" is target + 16 bytes, CRLF included.
    let fits = line(limits.request_line_max - 16);
    assert_eq!(fits.len(), limits.request_line_max);
    let too_long = line(limits.request_line_max - 15);
    let cases: Vec<(String, Outcome)> = vec![
        (
            format!("{fits}Host: a\r\n\r\n"),
            Outcome::Complete(fits.len() + 11),
        ),
        (too_long.clone(), Outcome::Invalid(414, RequestLineTooLong)),
        // 414 as soon as request_line_max bytes arrived without LF, not later.
        (
            too_long[..limits.request_line_max].to_string(),
            Outcome::Invalid(414, RequestLineTooLong),
        ),
        (
            too_long[..limits.request_line_max - 1].to_string(),
            Outcome::Partial(Phase::Head),
        ),
    ];
    for (input, expected) in &cases {
        assert_eq!(
            &outcome(limits, input.as_bytes()),
            expected,
            "{}",
            input.len()
        );
    }

    // 431: a head of exactly head_max bytes fits; one byte more without the blank line does not.
    let start = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    let value = "v".repeat(limits.head_max - start.len() - 4);
    let exact = format!("{start}{value}\r\n\r\n");
    assert_eq!(exact.len(), limits.head_max);
    assert_eq!(
        outcome(limits, exact.as_bytes()),
        Outcome::Complete(limits.head_max)
    );
    let over = format!("{start}{value}v\r\n\r\n");
    assert_eq!(
        outcome(limits, &over.as_bytes()[..limits.head_max]),
        Outcome::Invalid(431, HeadTooLarge)
    );
    assert_eq!(
        outcome(limits, &over.as_bytes()[..limits.head_max - 1]),
        Outcome::Partial(Phase::Head)
    );

    // 431: headers_max fields fit; the next one is refused as soon as it starts.
    let mut head = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
    for i in 1..limits.headers_max {
        head.push_str(&format!("X-{i}: v\r\n"));
    }
    assert!(matches!(
        outcome(limits, format!("{head}\r\n").as_bytes()),
        Outcome::Complete(_)
    ));
    assert_eq!(
        outcome(limits, format!("{head}X").as_bytes()),
        Outcome::Invalid(431, TooManyHeaders)
    );

    // 413 for chunk sizes that sum past body_max, and for too much chunked framing.
    let small = Limits {
        body_max: 10,
        chunk_overhead_max: 20,
        ..Limits::default()
    };
    let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let cases: Vec<(String, Outcome)> = vec![
        (
            format!("{chunked}5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n"),
            Outcome::Complete(chunked.len() + 25),
        ),
        (
            format!("{chunked}5\r\n01234\r\n6"),
            Outcome::Invalid(413, BodyTooLarge),
        ),
        (
            format!("{chunked}1\r\na\r\n1\r\nb\r\n1\r\nc\r\n1\r\nd\r\n0"),
            Outcome::Invalid(413, ChunkOverheadTooLarge),
        ),
    ];
    for (input, expected) in &cases {
        assert_eq!(&outcome(small, input.as_bytes()), expected, "{input:?}");
    }
}

#[test]
fn keep_alive_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("HTTP/1.1", "", true),
        ("HTTP/1.1", "Connection: close\r\n", false),
        ("HTTP/1.1", "connection: Close\r\n", false),
        ("HTTP/1.1", "Connection: upgrade, close\r\n", false),
        ("HTTP/1.1", "Connection: keep-alive\r\n", true),
        ("HTTP/1.1", "Connection: closed\r\n", true),
        ("HTTP/1.0", "", false),
        ("HTTP/1.0", "Connection: keep-alive\r\n", true),
        ("HTTP/1.0", "CONNECTION: Keep-Alive\r\n", true),
        ("HTTP/1.0", "Connection: keep-alive, close\r\n", false),
        (
            "HTTP/1.0",
            "Connection: foo\r\nConnection: keep-alive\r\n",
            true,
        ),
    ];
    for (version, fields, expected) in cases {
        let input = format!("GET / {version}\r\nHost: a\r\n{fields}\r\n");
        let parsed = request(input.as_bytes());
        assert_eq!(parsed.keep_alive, *expected, "{input:?}");
        let want = if *version == "HTTP/1.1" {
            Version::Http11
        } else {
            Version::Http10
        };
        assert_eq!(parsed.version, want);
    }
}

#[test]
fn client_tag_table() {
    let cases: &[(&str, Option<u64>)] = &[
        ("", None),
        ("x-client-tag: 42\r\n", Some(42)),
        ("X-Client-Tag: 18446744073709551615\r\n", Some(u64::MAX)),
        ("X-CLIENT-TAG:7\r\n", Some(7)),
        ("x-client-tag: abc\r\n", None),
        ("x-client-tag: -1\r\n", None),
        ("x-client-tag: 18446744073709551616\r\n", None),
        ("x-client-tag: bad\r\nx-client-tag: 9\r\n", Some(9)),
        ("x-client-tag: 8\r\nx-client-tag: 9\r\n", Some(8)),
    ];
    for (fields, expected) in cases {
        let input = format!("GET / HTTP/1.1\r\nHost: a\r\n{fields}\r\n");
        assert_eq!(request(input.as_bytes()).tag, *expected, "{fields:?}");
    }
}

#[test]
fn request_fields_and_bodies() {
    let get = request(b"GET /baseline11?a=13&b=42 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(
        (get.method, get.path, get.query),
        ("GET", "/baseline11", Some("a=13&b=42"))
    );
    assert_eq!(get.body, Body::Empty);

    let post = request(b"POST /p HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\n20");
    assert_eq!(post.body, Body::Length(b"20"));
    assert_eq!(body_bytes(&post.body), b"20");

    let input = b"POST /p HTTP/1.1\r\nHost: a\r\nTRANSFER-ENCODING: Chunked\r\n\r\n\
                  1;ext=\"q\"\r\n2\r\nA\r\n0123456789\r\n0\r\nTrailer: ignored\r\n\r\n";
    let chunked = request(input);
    let Body::Chunked(encoding) = chunked.body else {
        panic!("{:?}", chunked.body)
    };
    assert_eq!(encoding.len(), 11);
    assert_eq!(chunked.body.len(), 11);
    assert_eq!(
        encoding.chunks().collect::<Vec<_>>(),
        vec![&b"2"[..], b"0123456789"]
    );
    assert_eq!(body_bytes(&chunked.body), b"20123456789");
    assert!(encoding.encoded().ends_with(b"Trailer: ignored\r\n\r\n"));

    let empty = request(b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert!(empty.body.is_empty());
    assert_eq!(empty.body.pieces().count(), 0);
}

#[test]
fn pipelined_requests_come_one_at_a_time() {
    let first = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let second = "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
    let third = "GET /c HTTP/1.1\r\nHost: x\r\n";
    let stream = format!("{first}{second}{third}");
    let mut parser = Parser::new(Limits::default());
    let mut rest = stream.as_bytes();
    let mut paths = Vec::new();
    let end = loop {
        match parser.parse(rest) {
            Parse::Complete { request, len } => {
                paths.push(request.path.to_string());
                rest = &rest[len..];
            }
            other => break other,
        }
    };
    assert_eq!(paths, ["/a", "/b"]);
    assert_eq!(end, Parse::Partial(Phase::Head));
    assert_eq!(rest, third.as_bytes());
}

#[test]
fn bytes_after_an_error_do_not_change_it() {
    let bad = b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\nGET / HTTP/1.1\r\n\r\n";
    let mut parser = Parser::new(Limits::default());
    assert_eq!(parser.parse(bad), Parse::Invalid(Error::BadContentLength));
    // The parser reset: the same input gives the same answer.
    assert_eq!(parser.parse(bad), Parse::Invalid(Error::BadContentLength));
}
