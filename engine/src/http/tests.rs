//! `Http` with a small service, without sockets: pipelining, verdicts, the drain, phases.

use super::*;
use crate::context::testing::Harness;
use crate::protocol_api::Verdict;
use protocol::http::FieldError;

/// A small service written with the handler API: `/ok` echoes the query and the `x-echo`
/// field, `/body` the body, `/bad` is a 400 (rejected), `/bye` closes on its own decision,
/// `/silent` does not answer, `/field` sets a field it may not.
struct Service;

impl Handler for Service {
    type CoreState = u64;
    type Upgraded = NoUpgrade;
    type Message = ();

    fn core_state(&self, _core: u16) -> u64 {
        0
    }

    fn request(&self, request: &Request<'_>, exchange: &mut Exchange<'_, '_, Self>) -> Answer {
        *exchange.state() += 1;
        let plain = [("Content-Type", "text/plain")];
        match request.path {
            "/ok" => {
                let echo = request.headers.get("X-Echo").unwrap_or(b"-");
                let body = [request.query.unwrap_or("").as_bytes(), b" ", echo].concat();
                exchange.respond(200, &plain, &body).unwrap();
                Answer::KeepAlive
            }
            "/body" => {
                let body: Vec<u8> = request.body.pieces().flatten().copied().collect();
                exchange.respond(200, &plain, &body).unwrap();
                Answer::KeepAlive
            }
            "/bad" => {
                exchange.respond(400, &plain, b"bad\n").unwrap();
                Answer::Reject
            }
            "/bye" => {
                exchange.close();
                exchange.respond(200, &plain, b"bye").unwrap();
                Answer::Close
            }
            "/field" => {
                let result = exchange.respond(200, &[("Content-Length", "1")], b"x");
                assert_eq!(result, Err(FieldError::Reserved { index: 0 }));
                Answer::Reject
            }
            _ => Answer::KeepAlive, // "/silent": no response
        }
    }
}

fn run(
    proto: &Http<Service>,
    session: &mut HttpSession<NoUpgrade>,
    input: &[u8],
    draining: bool,
) -> (Step, String) {
    let mut core = Harness::new(proto);
    core.draining = draining;
    let step = proto.on_input(session, input, &mut core.cx());
    (step, String::from_utf8(core.written()).unwrap())
}

fn open(proto: &Http<Service>) -> HttpSession<NoUpgrade> {
    proto.open(None, &mut Harness::new(proto).cx())
}

fn http() -> Http<Service> {
    Http::new(Service, Limits::default())
}

#[test]
fn pipelined_requests_are_answered_in_order_and_the_rest_is_kept() {
    let proto = http();
    let mut session = open(&proto);
    let input = b"GET /ok?a HTTP/1.1\r\nHost: a\r\nx-client-tag: 9\r\nX-Echo:  hi \r\n\r\n\
                  POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n42GET /pipe";
    let (step, text) = run(&proto, &mut session, input, false);
    assert_eq!(step, Step::more(input.len() - 9, 2));
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
    assert!(text.contains("Content-Type: text/plain\r\nContent-Length: 4\r\n"));
    let first = text
        .find("\r\n\r\na hi")
        .expect("the query and the field, trimmed");
    assert!(first < text.find("\r\n\r\n42").unwrap());
    assert_eq!(proto.tag(&session), Some(9));
    assert_eq!(
        proto.partial_phase(&session, b"GET /pipe"),
        MessagePhase::Header
    );
}

#[test]
fn verdicts_follow_the_requests_and_the_handler() {
    let proto = http();
    let cases: [(&[u8], Verdict, &str); 8] = [
        (
            b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            Verdict::PeerClose,
            "Connection: close\r\n",
        ),
        (
            b"GET /ok HTTP/1.0\r\n\r\n",
            Verdict::PeerClose,
            "Connection: close\r\n",
        ),
        (
            b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n",
            Verdict::Continue,
            " 200 OK",
        ),
        (
            b"GET /bad HTTP/1.1\r\nHost: a\r\n\r\n",
            Verdict::Violation,
            " 400 ",
        ),
        (
            b"GET /bye HTTP/1.1\r\nHost: a\r\n\r\n",
            Verdict::Close,
            "Connection: close\r\n",
        ),
        (
            b"GET /silent HTTP/1.1\r\nHost: a\r\n\r\n",
            Verdict::Close,
            " 500 ",
        ),
        (
            b"GET /field HTTP/1.1\r\nHost: a\r\n\r\n",
            Verdict::Violation,
            " 500 ",
        ),
        (b"GET / HTTP/2.0\r\n\r\n", Verdict::Violation, " 505 "),
    ];
    for (input, verdict, needle) in cases {
        let mut session = open(&proto);
        let (step, text) = run(&proto, &mut session, input, false);
        assert_eq!(step.verdict, verdict, "{text}");
        assert!(text.starts_with("HTTP/1.1 "), "one response: {text}");
        assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "one response: {text}");
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
}

#[test]
fn a_drain_answers_with_connection_close() {
    let proto = http();
    let mut session = open(&proto);
    let input = b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n";
    let (step, text) = run(&proto, &mut session, input, true);
    assert_eq!(step.verdict, Verdict::Close);
    assert_eq!(step.messages, 1, "the first answer is the last");
    assert!(text.contains("Connection: close\r\n"), "{text}");
}

#[test]
fn a_body_in_progress_is_phase_body() {
    let proto = http();
    let mut session = open(&proto);
    let input = b"POST /body HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n2";
    let (step, _) = run(&proto, &mut session, input, false);
    assert_eq!(step, Step::more(0, 0));
    assert_eq!(proto.partial_phase(&session, input), MessagePhase::Body);
}

#[test]
fn a_client_that_expects_100_continue_gets_it_once_before_its_body() {
    let proto = http();
    let mut session = open(&proto);
    let head =
        b"POST /body HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    let (step, text) = run(&proto, &mut session, head, false);
    assert_eq!(step, Step::more(0, 0));
    assert_eq!(text, "HTTP/1.1 100 Continue\r\n\r\n");
    let (_, again) = run(&proto, &mut session, &[&head[..], b"4"].concat(), false);
    assert_eq!(again, "", "once per request");
    let (step, text) = run(&proto, &mut session, &[&head[..], b"42"].concat(), false);
    assert_eq!(step.messages, 1);
    assert!(
        text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("42"),
        "{text}"
    );
    // With the body already there, no interim response.
    let mut whole = open(&proto);
    let (_, text) = run(&proto, &mut whole, &[&head[..], b"42"].concat(), false);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
}

#[test]
fn host_values_and_absolute_targets() {
    let proto = http();
    for bad in ["x, y", "a b", "x/y"] {
        let mut session = open(&proto);
        let request = format!("GET /ok HTTP/1.1\r\nHost: {bad}\r\n\r\n");
        let (step, text) = run(&proto, &mut session, request.as_bytes(), false);
        assert_eq!(step.verdict, Verdict::Violation, "{bad}: {text}");
        assert!(text.starts_with("HTTP/1.1 400 "), "{bad}: {text}");
    }
    let mut session = open(&proto);
    let absolute = b"GET http://example.com:7000/ok?q HTTP/1.1\r\nHost: example.com:7000\r\n\r\n";
    let (step, text) = run(&proto, &mut session, absolute, false);
    assert_eq!(step.verdict, Verdict::Continue, "{text}");
    assert!(text.ends_with("\r\n\r\nq -"), "served as /ok: {text}");
}
