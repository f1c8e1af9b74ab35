//! `engine --protocol http` serving HttpArena's H1 workload to real clients: pipelining, requests
//! split across segments at every byte with a pause between the pieces, a client that never
//! reads, and `curl` (skipped, saying why, where it is not installed).

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use tests::http::{get, post, post_chunked, HttpClient, Response};
use tests::{End, Engine, WAIT};

/// The pause between the two pieces of a split request: long enough that the engine sees them
/// in two receives (the kernel does not merge them), as HttpArena's fragmentation check does.
const SPLIT_PAUSE: Duration = Duration::from_millis(50);
/// How long the non-reading client keeps writing.
const FLOOD_FOR: Duration = Duration::from_secs(2);
/// The engine's RSS may grow this much while one client floods it without reading.
const FLOOD_RSS_GROWTH_MAX_KB: u64 = 16 * 1024;

fn http_engine() -> Engine {
    Engine::start(&["--protocol", "http"])
}

#[track_caller]
fn assert_plain(response: &Response, body: &str) {
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.body_text(), body);
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert!(
        response.header("date").is_some_and(|d| d.ends_with(" GMT")),
        "{response:?}"
    );
}

#[test]
fn sixteen_pipelined_requests_in_one_write_are_answered_in_order() {
    let engine = http_engine();
    let mut client = HttpClient::connect(engine.listen);
    let mut burst = Vec::new();
    let mut expected = Vec::new();
    for i in 0..16u64 {
        match i % 4 {
            0 => {
                burst.extend(get("/pipeline", ""));
                expected.push("ok".to_string());
            }
            1 => {
                burst.extend(get(&format!("/baseline11?a={i}&b=100"), ""));
                expected.push((i + 100).to_string());
            }
            2 => {
                burst.extend(post(&format!("/baseline11?a={i}&b=1"), "20", ""));
                expected.push((i + 21).to_string());
            }
            _ => {
                burst.extend(post_chunked(&format!("/baseline11?a={i}"), &["1", "0"], ""));
                expected.push((i + 10).to_string());
            }
        }
    }
    client.send(&burst);
    for body in &expected {
        assert_plain(&client.response(), body);
    }
    client.shutdown_write();
    assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin), "nothing more");
}

/// Sends every split of `request` (first `k` bytes, a pause, the rest) on its own connection,
/// all at once, and checks every answer.
#[track_caller]
fn every_split_gives(engine: &Engine, request: &[u8], body: &str) {
    let mut clients: Vec<HttpClient> = (1..request.len())
        .map(|_| HttpClient::connect(engine.listen))
        .collect();
    for (k, client) in (1..request.len()).zip(&mut clients) {
        client.send(&request[..k]);
    }
    thread::sleep(SPLIT_PAUSE);
    for (k, client) in (1..request.len()).zip(&mut clients) {
        client.send(&request[k..]);
    }
    for (k, client) in (1..request.len()).zip(&mut clients) {
        let (responses, end) = client.read_to_end(WAIT);
        assert_eq!((responses.len(), end), (1, End::Fin), "split at {k}");
        assert_plain(&responses[0], body);
    }
}

#[test]
fn a_request_split_anywhere_gives_the_same_answer() {
    let engine = http_engine();
    let close = "Connection: close\r\n";
    every_split_gives(&engine, &get("/baseline11?a=13&b=42", close), "55");
    every_split_gives(&engine, &post("/baseline11?a=13&b=42", "20", close), "75");
    every_split_gives(
        &engine,
        &post_chunked("/baseline11?a=13&b=42", &["2", "0"], close),
        "75",
    );
}

#[test]
fn a_client_that_never_reads_keeps_memory_bounded_and_others_served() {
    // A small receive ring (1 MiB), so that what the bound measures is what the engine queues.
    let engine = Engine::start_for_memory_bound(&["--protocol", "http", "--buffers", "64"]);
    let before_kb = engine.rss_kb();
    let mut flooder = HttpClient::connect(engine.listen);
    flooder.stream.set_nonblocking(true).unwrap();
    let burst: Vec<u8> = (0..64).flat_map(|_| get("/pipeline", "")).collect();
    let started = Instant::now();
    let mut sent = 0usize;
    while started.elapsed() < FLOOD_FOR {
        match std::io::Write::write(&mut flooder.stream, &burst) {
            Ok(count) => sent += count,
            Err(_) => thread::sleep(Duration::from_millis(5)), // the engine stopped reading
        }
    }
    let grown_kb = engine.rss_kb().saturating_sub(before_kb);
    assert!(
        grown_kb <= FLOOD_RSS_GROWTH_MAX_KB,
        "RSS grew {grown_kb} KB after {sent} bytes of requests never read"
    );
    let mut other = HttpClient::connect(engine.listen);
    assert_plain(&other.request(&get("/pipeline", "")), "ok");
}

/// `curl` with the given arguments; `None` (and a printed reason) where curl is not installed.
fn curl(args: &[&str]) -> Option<String> {
    match Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .args(args)
        .output()
    {
        Ok(output) => {
            assert!(output.status.success(), "curl {args:?}: {output:?}");
            Some(String::from_utf8(output.stdout).expect("utf-8"))
        }
        Err(error) => {
            eprintln!("skipped: curl is not installed here ({error}); .ci/run installs it");
            None
        }
    }
}

#[test]
fn curl_gets_every_endpoint_and_the_metrics() {
    let engine = http_engine();
    let base = format!("http://{}", engine.listen);
    let cases: [(Vec<String>, &str); 4] = [
        (vec![format!("{base}/pipeline")], "ok"),
        (vec![format!("{base}/baseline11?a=13&b=42")], "55"),
        (
            vec![
                "-d".into(),
                "20".into(),
                format!("{base}/baseline11?a=13&b=42"),
            ],
            "75",
        ),
        (
            vec![
                "-H".into(),
                "Transfer-Encoding: chunked".into(),
                "-d".into(),
                "20".into(),
                format!("{base}/baseline11?a=13&b=42"),
            ],
            "75",
        ),
    ];
    for (args, expected) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let Some(body) = curl(&args) else {
            return;
        };
        assert_eq!(body, *expected, "curl {args:?}");
    }
    let metrics = curl(&[&format!("http://{}/metrics", engine.admin)]).expect("curl ran before");
    assert!(
        metrics.contains("engine_connections_closed_total{cause=\"peer_fin\"}"),
        "{metrics}"
    );
}

/// A scrape must not wait for anyone: Prometheus gives up after 10 s by default, and the old
/// single-threaded endpoint was delayed that long by five idle clients.
const SCRAPE_BOUND: Duration = Duration::from_secs(2);

#[test]
fn idle_and_slow_scrapers_do_not_delay_a_scrape() {
    let engine = http_engine();
    let idle: Vec<HttpClient> = (0..50).map(|_| HttpClient::connect(engine.admin)).collect();
    let mut slow = HttpClient::connect(engine.admin);
    slow.send(b"GET /metr"); // and never more
    let started = Instant::now();
    let mut scraper = HttpClient::connect(engine.admin);
    let response = scraper.request(&get("/metrics?name[]=engine_connections_open", ""));
    assert!(
        started.elapsed() < SCRAPE_BOUND,
        "the scrape took {:?}",
        started.elapsed()
    );
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    assert!(response.body_text().contains("engine_connections_open 0\n"));
    assert!(
        response
            .body_text()
            .contains("engine_admin_connections_open 52\n"),
        "{}",
        response.body_text()
    );
    let head = scraper.head(b"HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(head.status, 200);
    assert!(head.header("content-length").is_some_and(|len| len != "0"));
    let elsewhere = scraper.request(&get("/other", ""));
    assert_eq!(elsewhere.status, 404);
    let posted = scraper.request(&post("/metrics", "1", ""));
    assert_eq!(
        (posted.status, posted.header("allow")),
        (405, Some("GET, HEAD"))
    );
    drop((idle, slow));
}
