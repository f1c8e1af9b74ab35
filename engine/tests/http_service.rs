//! A service on the HTTP handler API, through the public API only, with real sockets: request
//! headers in, status, fields and body out, responses deferred to a core timer with requests
//! pipelined behind them, a connection upgraded to another protocol after `101`, and the close
//! of every connection handed to the handler.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::http::{Answer, Exchange, Handler, Http, Later, LaterError, Upgraded};
use engine::{CloseRecord, Config, Context, MessagePhase, Server, Step};
use protocol::http::{Limits, Request};

/// `/now` answers at once with the `x-name` field; `/later?ms=N` after N ms (a core timer);
/// `/echo` with `Upgrade: echo` becomes [`Echo`].
struct Service {
    closes: Arc<Mutex<Vec<CloseRecord>>>,
    late: Arc<Mutex<Vec<Result<(), LaterError>>>>,
}

#[derive(Default)]
struct Waiting {
    /// Deferred responses and when each is due (core µs).
    later: Vec<(u64, Later)>,
}

const LATER_TIMER: usize = 0;

impl Handler for Service {
    type CoreState = Waiting;
    type Upgraded = Echo;
    type Message = ();

    fn core_state(&self, _core: u16) -> Waiting {
        Waiting::default()
    }

    fn request(&self, request: &Request<'_>, exchange: &mut Exchange<'_, '_, Self>) -> Answer {
        match request.path {
            "/now" => {
                let name = request.headers.get("x-name").unwrap_or(b"nobody");
                let body = [b"now ".as_slice(), name].concat();
                exchange
                    .respond(200, &[("Content-Type", "text/plain")], &body)
                    .unwrap();
            }
            "/later" => {
                let ms: u64 = request
                    .query
                    .and_then(|q| q.strip_prefix("ms="))
                    .and_then(|ms| ms.parse().ok())
                    .unwrap_or(200);
                let later = exchange.defer();
                let cx = exchange.context();
                let due_us = cx.now_us() + ms * 1000;
                cx.state().handler.later.push((due_us, later));
                cx.set_core_timer(LATER_TIMER, Duration::from_millis(ms))
                    .unwrap();
            }
            "/echo" if request.headers.get("upgrade") == Some(b"echo") => {
                exchange.upgrade(Echo, &[("Upgrade", "echo")]).unwrap();
            }
            _ => exchange.respond(404, &[], b"").unwrap(),
        }
        Answer::KeepAlive
    }

    fn on_core_timer(&self, _timer: usize, cx: &mut Context<'_, Http<Self>>) {
        let now_us = cx.now_us();
        let waiting = std::mem::take(&mut cx.state().handler.later);
        let (due, rest): (Vec<_>, Vec<_>) = waiting.into_iter().partition(|(at, _)| *at <= now_us);
        for (_, later) in due {
            let answered = later.respond(cx, 200, &[("Content-Type", "text/plain")], b"later");
            self.late.lock().unwrap().push(answered);
        }
        if let Some(next_us) = rest.iter().map(|(at, _)| *at).min() {
            let after = Duration::from_micros(next_us - now_us);
            cx.set_core_timer(LATER_TIMER, after).unwrap();
        }
        cx.state().handler.later = rest;
    }

    fn on_close(&self, record: &CloseRecord, _cx: &mut Context<'_, Http<Self>>) {
        self.closes.lock().unwrap().push(*record);
    }
}

/// Lines echoed after the upgrade; `QUIT` closes (`peer_close`).
struct Echo;

impl Upgraded<Service> for Echo {
    const MESSAGE_MAX: usize = 1024;

    fn on_input(&mut self, input: &[u8], cx: &mut Context<'_, Http<Service>>) -> Step {
        let (mut used, mut lines) = (0, 0);
        while let Some(end) = input[used..].iter().position(|&b| b == b'\n') {
            let line = &input[used..used + end + 1];
            used += end + 1;
            lines += 1;
            if line == b"QUIT\n" {
                return Step::peer_close(used, lines);
            }
            cx.output().push(line);
        }
        Step::more(used, lines)
    }

    fn partial_phase(&self, _tail: &[u8]) -> MessagePhase {
        MessagePhase::Header
    }
}

struct Fixture {
    server: Option<Server>,
    closes: Arc<Mutex<Vec<CloseRecord>>>,
    late: Arc<Mutex<Vec<Result<(), LaterError>>>>,
}

impl Fixture {
    fn start() -> Fixture {
        Fixture::start_with(engine::IDLE_TIMEOUT_DEFAULT)
    }

    fn start_with(idle_timeout: Duration) -> Fixture {
        let closes = Arc::new(Mutex::new(Vec::new()));
        let late = Arc::new(Mutex::new(Vec::new()));
        let service = Service {
            closes: closes.clone(),
            late: late.clone(),
        };
        let config = Config::new()
            .listen("127.0.0.1:0".parse().unwrap())
            .admin(None)
            .cores(1)
            .idle_timeout(idle_timeout)
            .handle_signals(false);
        let server = Server::start(config, Http::new(service, Limits::default())).unwrap();
        Fixture {
            server: Some(server),
            closes,
            late,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.server.as_ref().unwrap().local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
    }

    /// The record of the only connection closed so far, waited for up to 5 s.
    fn close(&self) -> CloseRecord {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(record) = self.closes.lock().unwrap().first() {
                return *record;
            }
            assert!(Instant::now() < deadline, "no close reached the handler");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown_handle().shutdown();
            let _ = server.wait();
        }
    }
}

/// Everything the server sends until it closes.
fn read_all(stream: &mut TcpStream) -> String {
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    text
}

#[test]
fn a_deferred_response_comes_first_and_the_fin_waits_for_the_pipeline() {
    let fixture = Fixture::start();
    let mut client = fixture.connect();
    let start = Instant::now();
    client
        .write_all(
            b"GET /later?ms=200 HTTP/1.1\r\nHost: a\r\n\r\n\
              GET /now HTTP/1.1\r\nHost: a\r\nX-Name:  ann \r\n\r\n",
        )
        .unwrap();
    // The client is done: its FIN arrives while the first response is owed.
    client.shutdown(Shutdown::Write).unwrap();
    let text = read_all(&mut client);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "answered after {waited:?}"
    );
    let later = text.find("\r\n\r\nlater").expect(&text);
    let now = text.find("\r\n\r\nnow ann").expect(&text);
    assert!(later < now, "in request order: {text}");
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
    let record = fixture.close();
    assert_eq!(record.cause.as_str(), "peer_fin", "{record:?}");
    assert_eq!((record.frames_in, record.frames_out), (2, 2));
    assert_eq!(fixture.late.lock().unwrap().as_slice(), [Ok(())]);
}

#[test]
fn a_deferred_response_to_a_request_that_asked_to_close_closes_as_peer_close() {
    let fixture = Fixture::start();
    let mut client = fixture.connect();
    client
        .write_all(b"GET /later?ms=200 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    let text = read_all(&mut client);
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nlater"), "{text}");
    let record = fixture.close();
    assert_eq!(record.cause.as_str(), "peer_close", "{record:?}");
}

#[test]
fn a_connection_that_owes_a_response_is_not_idle() {
    let fixture = Fixture::start_with(Duration::from_millis(200));
    let mut client = fixture.connect();
    client
        .write_all(b"GET /later?ms=600 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let mut response = [0; 512];
    let len = client.read(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response[..len]);
    assert!(text.ends_with("\r\n\r\nlater"), "{text}");
    // Owed no more: now the idle timeout runs, from the response on.
    let record = fixture.close();
    assert_eq!(record.cause.as_str(), "idle_timeout", "{record:?}");
    assert!(record.duration_us >= 800_000, "{record:?}");
}

#[test]
fn a_reset_while_a_response_is_owed_is_found_when_it_is_sent() {
    let fixture = Fixture::start();
    let mut client = fixture.connect();
    client
        .write_all(b"GET /later?ms=300 HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let linger = socket2::SockRef::from(&client).set_linger(Some(Duration::ZERO));
    linger.unwrap();
    std::thread::sleep(Duration::from_millis(50));
    drop(client); // an RST while the response is owed, and reading is held
    let record = fixture.close();
    // Not read while held: the send of the response finds the reset.
    assert_eq!(record.cause.as_str(), "peer_reset", "{record:?}");
    assert!(record.duration_us >= 300_000, "{record:?}");
    assert_eq!(fixture.late.lock().unwrap().as_slice(), [Ok(())]);
}

#[test]
fn an_upgraded_connection_speaks_the_new_protocol_from_the_next_byte() {
    let fixture = Fixture::start();
    let mut client = fixture.connect();
    client
        .write_all(
            b"GET /echo HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello\n",
        )
        .unwrap();
    let mut seen = String::new();
    let mut buf = [0; 512];
    while !seen.ends_with("hello\n") {
        let len = client.read(&mut buf).unwrap();
        assert!(len > 0, "closed early: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..len]));
    }
    assert!(
        seen.starts_with("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n"),
        "{seen}"
    );
    assert!(
        seen.contains("Connection: Upgrade\r\n\r\nhello\n"),
        "{seen}"
    );
    assert!(!seen.contains("Content-Length"), "{seen}");
    client.write_all(b"GET / HTTP/1.1\r\n\r\nQUIT\n").unwrap();
    let rest = read_all(&mut client);
    assert_eq!(rest, "GET / HTTP/1.1\r\n\r\n", "not HTTP any more");
    let record = fixture.close();
    assert_eq!(record.cause.as_str(), "peer_close", "{record:?}");
    // The upgrade request and its 101, then the echoed lines.
    assert_eq!((record.frames_in, record.frames_out), (5, 4), "{record:?}");
}
