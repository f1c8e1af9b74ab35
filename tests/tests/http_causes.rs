//! Every close cause of an HTTP connection, produced by a real client socket against
//! `engine --protocol http`, asserted in the close record and in
//! `engine_connections_closed_total{cause=...}`; and every bad input and limit answered with its
//! status and closed as `protocol_error`.

use std::thread;
use std::time::Duration;

use serde_json::json;
use tests::http::{get, post, HttpClient};
use tests::{assert_fields, closed_key, End, Engine, WAIT};

fn http_engine(extra: &[&str]) -> Engine {
    let mut args = vec!["--protocol", "http"];
    args.extend_from_slice(extra);
    Engine::start(&args)
}

fn tagged(tag: u64) -> String {
    format!("x-client-tag: {tag}\r\n")
}

/// A client whose first request carries `tag`, answered.
#[track_caller]
fn greeted(engine: &Engine, tag: u64) -> HttpClient {
    let mut client = HttpClient::connect(engine.listen);
    let response = client.request(&get("/pipeline", &tagged(tag)));
    assert_eq!((response.status, response.body_text()), (200, "ok"));
    client
}

#[test]
fn peer_fin_between_requests_and_a_half_closed_client_gets_every_response() {
    let engine = http_engine(&[]);
    let before = engine.metrics();
    let client = greeted(&engine, 1);
    client.shutdown_write();
    let mut client = client;
    assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin));

    let mut half = HttpClient::connect(engine.listen);
    let mut burst = get("/pipeline", &tagged(2));
    burst.extend(get("/baseline11?a=1&b=2", ""));
    burst.extend(post("/baseline11?a=1&b=2", "3", ""));
    half.send(&burst);
    half.shutdown_write();
    let (responses, end) = half.read_to_end(WAIT);
    let bodies: Vec<&str> = responses.iter().map(|r| r.body_text()).collect();
    assert_eq!((bodies, end), (vec!["ok", "3", "6"], End::Fin));

    for (tag, requests) in [(1, 1), (2, 3)] {
        let record = engine.wait_record_for_tag(tag, WAIT);
        assert_fields(
            &record,
            &[
                ("cause", json!("peer_fin")),
                ("frames_in", json!(requests)),
                ("frames_out", json!(requests)),
                ("partial_bytes", json!(0)),
            ],
        );
        // The half-closed client's FIN may arrive while its responses are still queued.
        let phase = record["phase"].as_str().unwrap_or_default();
        assert!(
            phase == "idle" || (tag == 2 && phase == "flushing"),
            "{record}"
        );
    }
    engine.wait_metric_delta(&before, &closed_key("peer_fin"), 2.0, WAIT);
}

#[test]
fn peer_fin_inside_a_request_says_header_or_body() {
    let engine = http_engine(&[]);
    let before = engine.metrics();
    let head_only = b"GET /pipeline HTTP/1.1\r\nHost: t".to_vec();
    let body_part =
        b"POST /baseline11?a=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n12".to_vec();
    for (tag, partial, phase) in [(3, head_only, "header"), (4, body_part, "body")] {
        let mut client = greeted(&engine, tag);
        client.send(&partial);
        client.shutdown_write();
        assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin));
        let record = engine.wait_record_for_tag(tag, WAIT);
        assert_fields(
            &record,
            &[
                ("cause", json!("peer_fin_mid_frame")),
                ("phase", json!(phase)),
                ("partial_bytes", json!(partial.len())),
                ("frames_in", json!(1)),
                ("res", json!(0)),
            ],
        );
    }
    engine.wait_metric_delta(&before, &closed_key("peer_fin_mid_frame"), 2.0, WAIT);
}

#[test]
fn peer_reset() {
    let engine = http_engine(&[]);
    let before = engine.metrics();
    greeted(&engine, 5).reset();
    let record = engine.wait_record_for_tag(5, WAIT);
    assert_fields(&record, &[("cause", json!("peer_reset"))]);
    engine.wait_metric_delta(&before, &closed_key("peer_reset"), 1.0, WAIT);
}

#[test]
fn idle_keep_alive_and_slowloris_on_headers_or_body() {
    let engine = http_engine(&["--idle-timeout", "200ms", "--read-timeout", "200ms"]);
    let before = engine.metrics();
    let mut idle = greeted(&engine, 6);
    let mut slow_head = greeted(&engine, 7);
    slow_head.send(b"GET /pipeline HTTP/1.1\r\nHost: t\r\n");
    let mut slow_body = greeted(&engine, 8);
    slow_body.send(b"POST /baseline11 HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n1");
    for client in [&mut idle, &mut slow_head, &mut slow_body] {
        assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin));
    }
    for (tag, cause, phase) in [
        (6, "idle_timeout", "idle"),
        (7, "read_timeout", "header"),
        (8, "read_timeout", "body"),
    ] {
        let record = engine.wait_record_for_tag(tag, WAIT);
        assert_fields(&record, &[("cause", json!(cause)), ("phase", json!(phase))]);
    }
    engine.wait_metric_delta(&before, &closed_key("idle_timeout"), 1.0, WAIT);
    engine.wait_metric_delta(&before, &closed_key("read_timeout"), 2.0, WAIT);
}

#[test]
fn connection_close_and_http_1_0_are_peer_close_after_the_response() {
    let engine = http_engine(&[]);
    let before = engine.metrics();
    let cases: [(u64, Vec<u8>); 2] = [
        (
            9,
            get("/pipeline", &format!("{}Connection: close\r\n", tagged(9))),
        ),
        (
            10,
            format!("GET /pipeline HTTP/1.0\r\n{}\r\n", tagged(10)).into_bytes(),
        ),
    ];
    for (tag, request) in cases {
        let mut client = HttpClient::connect(engine.listen);
        client.send(&request);
        client.send(&get("/pipeline", "")); // after the close: never answered
        let (responses, end) = client.read_to_end(WAIT);
        assert_eq!((responses.len(), end), (1, End::Fin), "tag {tag}");
        assert!(responses[0].closes(), "the response says Connection: close");
        let record = engine.wait_record_for_tag(tag, WAIT);
        assert_fields(
            &record,
            &[("cause", json!("peer_close")), ("frames_out", json!(1))],
        );
    }
    engine.wait_metric_delta(&before, &closed_key("peer_close"), 2.0, WAIT);
    assert_eq!(engine.metric(&closed_key("local_close")), 0.0);
}

#[test]
fn every_bad_input_and_limit_gets_its_status_then_a_close() {
    let engine = http_engine(&[
        "--max-request-line",
        "100",
        "--max-header-bytes",
        "400",
        "--max-headers",
        "8",
        "--max-body",
        "64",
    ]);
    let before = engine.metrics();
    let many_headers: String = (0..9).map(|i| format!("X-{i}: v\r\n")).collect();
    let cases: Vec<(u16, Vec<u8>)> = vec![
        (400, b"GET\x01/ HTTP/1.1\r\nHost: t\r\n\r\n".to_vec()),
        (400, b"GET / HTTP/1.1\r\nBad Header\r\nHost: t\r\n\r\n".to_vec()),
        (400, b"GET / HTTP/1.1\r\n\r\n".to_vec()),
        (400, post("/baseline11", "1", "Transfer-Encoding: chunked\r\n")),
        (400, b"POST /baseline11 HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n1".to_vec()),
        (400, b"POST /baseline11 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n".to_vec()),
        (400, get("/baseline11?a=x", "")),
        (505, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n".to_vec()),
        (414, get(&format!("/{}", "a".repeat(120)), "")),
        (431, get("/pipeline", &format!("X-Big: {}\r\n", "b".repeat(400)))),
        (431, get("/pipeline", &many_headers)),
        (413, post("/baseline11", &"9".repeat(65), "")),
        (
            413,
            b"POST /baseline11 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n".to_vec(),
        ),
    ];
    for (status, request) in &cases {
        let mut client = HttpClient::connect(engine.listen);
        client.send(request);
        let (responses, end) = client.read_to_end(WAIT);
        let shown = String::from_utf8_lossy(request);
        assert_eq!(responses.len(), 1, "{shown:?}");
        assert_eq!(responses[0].status, *status, "{shown:?}");
        assert!(responses[0].closes(), "{shown:?}");
        assert_eq!(end, End::Fin, "{shown:?}");
    }
    engine.wait_metric_delta(
        &before,
        &closed_key("protocol_error"),
        cases.len() as f64,
        WAIT,
    );
    let records = engine.wait_records(cases.len(), WAIT);
    assert!(
        records.iter().all(|r| r["cause"] == "protocol_error"),
        "{records:?}"
    );
}

#[test]
fn a_drain_completes_the_request_in_progress_with_connection_close() {
    let mut engine = http_engine(&[]);
    let before = engine.metrics();
    let mut idle = greeted(&engine, 11);
    let mut started = greeted(&engine, 12);
    started.send(b"GET /baseline11?a=2&b=3 HTTP/1.1\r\nHo");
    engine.sigterm();
    assert_eq!(
        idle.read_to_end(WAIT),
        (vec![], End::Fin),
        "idle: closed at once"
    );
    engine.wait_metric_delta(&before, &closed_key("shutdown"), 1.0, WAIT);
    thread::sleep(Duration::from_millis(50));
    started.send(b"st: t\r\n\r\n");
    let (responses, end) = started.read_to_end(WAIT);
    assert_eq!((responses.len(), end), (1, End::Fin));
    assert_eq!(responses[0].body_text(), "5");
    assert!(
        responses[0].closes(),
        "the last response says Connection: close"
    );
    assert!(engine.wait_exit(WAIT).success());
    for tag in [11, 12] {
        let record = engine.wait_record_for_tag(tag, WAIT);
        assert_fields(&record, &[("cause", json!("shutdown"))]);
    }
}
