//! Property: however the bytes of a connection are split into receives, a model of the engine
//! (keep the unconsumed tail, append each piece, parse until partial, answer each request)
//! writes byte-identical output, and the parser gives the same requests and the same final
//! error or phase.

use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;
use protocol::http::arena::respond;
use protocol::http::{write_error, HttpDate, Limits, Parse, Parser};

fn date() -> HttpDate {
    HttpDate::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

/// Cut points (any values, reduced modulo the stream length) to sorted piece ends.
fn piece_ends(stream: &[u8], cuts: &[usize]) -> Vec<usize> {
    let mut ends: Vec<usize> = cuts.iter().map(|cut| cut % (stream.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(stream.len());
    ends
}

/// The engine model: what the server writes for `stream` received in the pieces `cuts` make.
fn serve(stream: &[u8], cuts: &[usize], limits: Limits) -> Vec<u8> {
    let date = date();
    let mut parser = Parser::new(limits);
    let mut tail = Vec::new();
    let mut out = Vec::new();
    let mut start = 0;
    for end in piece_ends(stream, cuts) {
        tail.extend_from_slice(&stream[start..end]);
        start = end;
        loop {
            match parser.parse(&tail) {
                Parse::Complete { request, len } => {
                    let reply = respond(&request, &date, &mut out);
                    tail.drain(..len);
                    if reply.close {
                        out.extend_from_slice(b"<close>");
                        return out;
                    }
                }
                Parse::Partial(_) => break,
                Parse::Invalid(error) => {
                    write_error(&mut out, &date, error);
                    out.extend_from_slice(b"<close>");
                    return out;
                }
            }
        }
    }
    if let Parse::Partial(phase) = parser.parse(&tail) {
        if !tail.is_empty() {
            out.extend_from_slice(format!("<pending {phase:?} {}>", tail.len()).as_bytes());
        }
    }
    out
}

/// The parser's view: each request (and its length), then the final error or phase. Goes on
/// after every request, whatever its persistence.
fn events(stream: &[u8], cuts: &[usize], limits: Limits) -> Vec<String> {
    let mut parser = Parser::new(limits);
    let mut tail = Vec::new();
    let mut seen = Vec::new();
    let mut start = 0;
    for end in piece_ends(stream, cuts) {
        tail.extend_from_slice(&stream[start..end]);
        start = end;
        loop {
            match parser.parse(&tail) {
                Parse::Complete { request, len } => {
                    let body: Vec<u8> = request.body.pieces().flatten().copied().collect();
                    seen.push(format!(
                        "{len} {} {} {:?} {:?} {} {:?} {body:?}",
                        request.method,
                        request.path,
                        request.query,
                        request.version,
                        request.keep_alive,
                        request.tag
                    ));
                    tail.drain(..len);
                }
                Parse::Partial(_) => {
                    // The limits bound what a pending request makes the engine hold.
                    assert!(tail.len() < limits.buffer_max(), "{} pending", tail.len());
                    break;
                }
                Parse::Invalid(error) => {
                    seen.push(format!("invalid {error:?}"));
                    return seen;
                }
            }
        }
    }
    seen.push(format!("end {:?} {}", parser.parse(&tail), tail.len()));
    seen
}

/// The nine request shapes the HttpArena fragmentation check sweeps, and the body each expects.
/// Cut anywhere once, or between every byte, `stream` gives the output it gives whole.
#[track_caller]
fn assert_every_split_gives(stream: &[u8], limits: Limits, whole: &[u8]) {
    let shown = String::from_utf8_lossy(stream);
    for cut in 0..=stream.len() {
        assert_eq!(
            serve(stream, &[cut], limits),
            whole,
            "{shown:?} cut at {cut}"
        );
    }
    let bytewise: Vec<usize> = (0..stream.len()).collect();
    assert_eq!(
        serve(stream, &bytewise, limits),
        whole,
        "{shown:?} bytewise"
    );
}

fn arena_shapes() -> Vec<(String, &'static str)> {
    let post =
        "POST /baseline11?a=13&b=42 HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\n";
    vec![
        ("GET /baseline11?a=13&b=42 HTTP/1.1\r\nHost: localhost\r\n\r\n".into(), "55"),
        (
            "GET /baseline11?a=13&b=42 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: arena-frag/1.0\r\n\
             Accept: */*\r\nAccept-Encoding: gzip\r\n\r\n"
                .into(),
            "55",
        ),
        ("GET /baseline11?a=13&b=42 HTTP/1.1\r\nhost: localhost\r\nuser-agent: x\r\n\r\n".into(), "55"),
        ("GET /baseline11?a=731&b=268 HTTP/1.1\r\nHost: localhost\r\n\r\n".into(), "999"),
        (format!("{post}Content-Length: 2\r\n\r\n20"), "75"),
        (
            "POST /baseline11?a=13&b=42 HTTP/1.1\r\nhost: localhost\r\ncontent-type: text/plain\r\n\
             content-length: 2\r\n\r\n20"
                .into(),
            "75",
        ),
        ("POST /baseline11?a=123&b=456 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n\r\n789".into(), "1368"),
        (format!("{post}Transfer-Encoding: chunked\r\n\r\n2\r\n20\r\n0\r\n\r\n"), "75"),
        (format!("{post}Transfer-Encoding: chunked\r\n\r\n1\r\n2\r\n1\r\n0\r\n0\r\n\r\n"), "75"),
    ]
}

#[test]
fn every_single_split_of_the_arena_shapes() {
    let limits = Limits::default();
    for (request, body) in arena_shapes() {
        let stream = request.as_bytes();
        let whole = serve(stream, &[], limits);
        let text = String::from_utf8(whole.clone()).expect("ascii");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(
            text.ends_with(&format!("\r\n\r\n{body}")),
            "{request:?}: {text}"
        );
        assert_every_split_gives(stream, limits, &whole);
    }
}

#[test]
fn every_pair_of_splits_of_a_pipelined_chunked_pair() {
    let limits = Limits::default();
    let shapes = arena_shapes();
    let stream = format!("{}{}", shapes[8].0, shapes[4].0);
    let stream = stream.as_bytes();
    let whole = serve(stream, &[], limits);
    assert_eq!(
        String::from_utf8_lossy(&whole)
            .matches("\r\n\r\n75")
            .count(),
        2
    );
    for first in 0..=stream.len() {
        for second in first..=stream.len() {
            assert_eq!(
                serve(stream, &[first, second], limits),
                whole,
                "{first} {second}"
            );
        }
    }
}

#[test]
fn every_single_split_of_invalid_streams() {
    let good = "GET /pipeline HTTP/1.1\r\nHost: a\r\n\r\n";
    let chunked = "POST /baseline11 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    let small = Limits {
        request_line_max: 40,
        head_max: 80,
        headers_max: 3,
        body_max: 16,
        chunk_overhead_max: 24,
    };
    let cases: Vec<(String, Limits, u16)> = vec![
        (
            format!("{good}GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            Limits::default(),
            505,
        ),
        (format!("{good}GET /x\r\n\r\n"), Limits::default(), 505),
        (
            format!("{good}GET / HTTP/1.1\r\n\r\n"),
            Limits::default(),
            400,
        ),
        (
            format!("{good}POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n"),
            Limits::default(),
            400,
        ),
        (
            format!("{good}{chunked}2\r\n20\r\n0\r\n\r\n").replace("chunked", "gzip, chunked"),
            Limits::default(),
            501,
        ),
        (
            format!("{good}{chunked}2\r\n20x\r\n0\r\n\r\n"),
            Limits::default(),
            400,
        ),
        (
            format!("{good}{chunked}2x\r\n20\r\n0\r\n\r\n"),
            Limits::default(),
            400,
        ),
        (
            format!("{good}GET /{} HTTP/1.1\r\n\r\n", "a".repeat(40)),
            small,
            414,
        ),
        (
            format!(
                "{good}GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n",
                "v".repeat(60)
            ),
            small,
            431,
        ),
        (
            format!("{good}GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"),
            small,
            431,
        ),
        (
            format!("{good}POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 17\r\n\r\n"),
            small,
            413,
        ),
        (
            format!(
                "{good}{}9\r\n012345678\r\n8\r\n",
                chunked.replace("/baseline11", "/")
            ),
            small,
            413,
        ),
        (
            format!(
                "{good}{}1;{}\r\n",
                chunked.replace("/baseline11", "/"),
                "e".repeat(30)
            ),
            small,
            413,
        ),
        (
            format!("{good}{chunked}0\r\nT: v\n\r\n"),
            Limits::default(),
            400,
        ),
    ];
    for (input, limits, status) in cases {
        let stream = input.as_bytes();
        let whole = serve(stream, &[], limits);
        let text = String::from_utf8_lossy(&whole);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{input:?}: {text}");
        assert!(
            text.contains(&format!("HTTP/1.1 {status} ")),
            "{input:?}: {text}"
        );
        assert!(text.ends_with("\n<close>"), "{input:?}: {text}");
        assert_every_split_gives(stream, limits, &whole);
    }
}

/// One request of the arena workload (valid framing), as bytes.
fn request_strategy() -> impl Strategy<Value = String> {
    let query = (0i64..1000, 0i64..1000).prop_map(|(a, b)| format!("a={a}&b={b}"));
    let host = prop_oneof!["Host: localhost\r\n", "host: x\r\n", "HOST: y\r\n"];
    let extra = prop_oneof![
        Just(String::new()),
        Just("User-Agent: prop/1.0\r\n".to_string()),
        Just("Accept: */*\r\nx-client-tag: 42\r\n".to_string()),
    ];
    let get = (query.clone(), host.clone(), extra.clone())
        .prop_map(|(q, h, e)| format!("GET /baseline11?{q} HTTP/1.1\r\n{h}{e}\r\n"));
    let head = (query.clone(), host.clone())
        .prop_map(|(q, h)| format!("HEAD /baseline11?{q} HTTP/1.1\r\n{h}\r\n"));
    let pipeline = (host.clone(), any::<bool>()).prop_map(|(h, crlf)| {
        let lead = if crlf { "\r\n" } else { "" };
        format!("{lead}GET /pipeline HTTP/1.1\r\n{h}\r\n")
    });
    let post_length = (query.clone(), host.clone(), 0i64..100_000).prop_map(|(q, h, body)| {
        let body = body.to_string();
        format!(
            "POST /baseline11?{q} HTTP/1.1\r\n{h}Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    });
    let post_chunked = (
        query.clone(),
        host.clone(),
        0i64..100_000,
        proptest::collection::vec(1usize..4, 1..6),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(q, h, body, sizes, ext, trailer)| {
            let body = body.to_string();
            let mut encoded = String::new();
            let mut rest = body.as_str();
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (piece, after) = rest.split_at((*size).min(rest.len()));
                let ext = if ext { ";n=v" } else { "" };
                encoded.push_str(&format!("{:X}{ext}\r\n{piece}\r\n", piece.len()));
                rest = after;
            }
            let trailer = if trailer { "T: v\r\n" } else { "" };
            format!(
                "POST /baseline11?{q} HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n{encoded}0\r\n{trailer}\r\n"
            )
        });
    let http10 = Just("GET /pipeline HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_string());
    let closing = prop_oneof![
        Just("GET /missing HTTP/1.1\r\nHost: a\r\n\r\n".to_string()),
        Just("DELETE /pipeline HTTP/1.1\r\nHost: a\r\n\r\n".to_string()),
        Just("GET /pipeline HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_string()),
        Just("GET /baseline11?a=x HTTP/1.1\r\nHost: a\r\n\r\n".to_string()),
    ];
    prop_oneof![
        4 => get,
        2 => head,
        3 => pipeline,
        4 => post_length,
        4 => post_chunked,
        1 => http10,
        1 => closing,
    ]
}

/// Limits for the byte-level property: small ones make every limit reachable, and a request
/// line as long as the head limit is the edge where the two limits meet.
const LIMITS: [Limits; 3] = [
    Limits {
        request_line_max: 40,
        head_max: 96,
        headers_max: 3,
        body_max: 10,
        chunk_overhead_max: 24,
    },
    Limits {
        request_line_max: 48,
        head_max: 48,
        headers_max: 2,
        body_max: 4,
        chunk_overhead_max: 12,
    },
    Limits {
        request_line_max: protocol::http::REQUEST_LINE_MAX,
        head_max: protocol::http::HEAD_MAX,
        headers_max: protocol::http::HEADERS_MAX,
        body_max: protocol::http::BODY_MAX,
        chunk_overhead_max: protocol::http::CHUNK_OVERHEAD_MAX,
    },
];

/// One request-like message: mostly well-formed parts, some malformed, possibly one byte
/// mutated, so that every parser state and error is reached.
fn request_ish_strategy() -> impl Strategy<Value = Vec<u8>> {
    let lead = prop_oneof![8 => Just(""), 1 => Just("\r\n"), 1 => Just("\n")];
    let method = prop_oneof![
        4 => Just("GET"),
        4 => Just("POST"),
        1 => Just("HEAD"),
        1 => Just("get")
    ];
    let target = prop_oneof![
        Just("/"),
        Just("/pipeline"),
        Just("/baseline11?a=1&b=2"),
        Just("/x?"),
        Just("/a/very/long/path/that/crosses/small/limits")
    ];
    let version = prop_oneof![
        8 => Just(" HTTP/1.1"),
        3 => Just(" HTTP/1.0"),
        1 => Just(" HTTP/2.0"),
        1 => Just(" HTTP/1.2"),
        1 => Just("")
    ];
    let eol = prop_oneof![6 => Just("\r\n"), 1 => Just("\n")];
    let header = prop_oneof![
        1 => Just("host: b".to_string()),
        4 => Just("Accept: */*".to_string()),
        4 => (0u8..12).prop_map(|n| format!("Content-Length: {n}")),
        1 => Just("Content-Length: 3, 4".to_string()),
        1 => Just("content-length: x".to_string()),
        4 => Just("Transfer-Encoding: chunked".to_string()),
        1 => Just("Transfer-Encoding: gzip, chunked".to_string()),
        1 => Just("Transfer-Encoding: gzip".to_string()),
        1 => Just("Connection: close".to_string()),
        1 => Just("Connection: keep-alive".to_string()),
        1 => Just("x-client-tag: 9".to_string()),
        1 => (20usize..80).prop_map(|n| format!("X-Long: {}", "v".repeat(n))),
        1 => Just("Bad Name: x".to_string()),
    ];
    let host = prop_oneof![4 => Just("Host: a"), 1 => Just("")];
    let chunk = (0u8..12, any::<bool>(), -1i8..=1).prop_map(|(size, ext, skew)| {
        let data_len = (i16::from(size) + i16::from(skew)).max(0) as usize;
        let ext = if ext { ";ext=value" } else { "" };
        format!("{size:x}{ext}\r\n{}\r\n", "d".repeat(data_len))
    });
    let chunked = (
        proptest::collection::vec(chunk, 0..6),
        prop_oneof![4 => Just(""), 2 => Just("T: v\r\n"), 1 => Just("T: v\n")],
        prop_oneof![6 => Just("0\r\n"), 1 => Just("")],
    )
        .prop_map(|(chunks, trailer, last)| format!("{}{last}{trailer}\r\n", chunks.concat()));
    let body = prop_oneof![
        3 => Just(String::new()),
        3 => "[0-9a-z]{0,12}",
        3 => chunked,
    ];
    let mutation = proptest::option::weighted(0.3, (any::<usize>(), any::<u8>(), 0u8..3));
    (
        (lead, method, target, version, eol),
        (host, proptest::collection::vec(header, 0..5)),
        body,
        mutation,
    )
        .prop_map(
            |((lead, method, target, version, eol), (host, headers), body, mutation)| {
                let mut bytes = format!("{lead}{method} {target}{version}{eol}").into_bytes();
                if !host.is_empty() {
                    bytes.extend_from_slice(format!("{host}{eol}").as_bytes());
                }
                for header in headers {
                    bytes.extend_from_slice(format!("{header}{eol}").as_bytes());
                }
                bytes.extend_from_slice(eol.as_bytes());
                bytes.extend_from_slice(body.as_bytes());
                if let Some((at, byte, kind)) = mutation {
                    let at = at % (bytes.len() + 1);
                    match kind {
                        0 if at < bytes.len() => bytes[at] = byte,
                        1 => bytes.insert(at, byte),
                        _ if at < bytes.len() => {
                            bytes.remove(at);
                        }
                        _ => {}
                    }
                }
                bytes
            },
        )
}

/// A few request-like messages back to back.
fn http_ish_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(request_ish_strategy(), 1..5).prop_map(|messages| messages.concat())
}

proptest! {
    #[test]
    fn any_split_of_pipelined_requests_gives_the_same_output(
        requests in proptest::collection::vec(request_strategy(), 1..8),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
    ) {
        let limits = Limits::default();
        let stream = requests.concat();
        let stream = stream.as_bytes();
        let whole = serve(stream, &[], limits);
        // Pipelined or not, the output is each request's own answer in order.
        let mut one_by_one = Vec::new();
        for request in &requests {
            let answer = serve(request.as_bytes(), &[], limits);
            let closed = answer.ends_with(b"<close>");
            one_by_one.extend_from_slice(&answer);
            if closed {
                break;
            }
        }
        prop_assert_eq!(&whole, &one_by_one);
        prop_assert_eq!(&serve(stream, &cuts, limits), &whole);
        let bytewise: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(&serve(stream, &bytewise, limits), &whole);
    }

    #[test]
    fn any_split_of_http_ish_bytes_gives_the_same_events(
        stream in http_ish_strategy(),
        cuts in proptest::collection::vec(any::<usize>(), 0..20),
        which in 0usize..3,
    ) {
        let limits = LIMITS[which];
        let whole = events(&stream, &[], limits);
        prop_assert_eq!(&events(&stream, &cuts, limits), &whole);
        let bytewise: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(&events(&stream, &bytewise, limits), &whole);
    }
}

#[test]
fn a_16_kib_head_one_byte_at_a_time_completes_quickly() {
    let mut head = b"GET /pipeline HTTP/1.1\r\nHost: a\r\n".to_vec();
    let padding = format!("X-Padding: {}\r\n", "p".repeat(200));
    while head.len() + padding.len() + 2 <= 16 * 1024 {
        head.extend_from_slice(padding.as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    let started = std::time::Instant::now();
    let bytewise: Vec<usize> = (0..head.len()).collect();
    let out = serve(&head, &bytewise, Limits::default());
    assert!(out.ends_with(b"\r\n\r\nok"));
    // O(n) work: milliseconds even unoptimized; O(n^2) re-parsing would take far longer.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
