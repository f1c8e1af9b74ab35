//! The seam for real servers, through the public API only, with real sockets on loopback: the
//! close handed to the protocol, handles (stale and of another core), pushes between
//! connections, deferred replies, connection and core timers, messages to every core, and the
//! slow consumer.
//!
//! The test protocol answers lines; every connection registers its handle in its core's state
//! under its id, so a line can name another connection.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use engine::{
    CloseRecord, Config, ConnId, Context, MessagePhase, Protocol, Server, Step, Wake, WriteError,
};

/// What the protocol saw, for the tests to look at.
#[derive(Default)]
struct Seen {
    closes: Vec<CloseRecord>,
    /// What a write to a connection's own (stale) handle said in its `on_close`.
    stale_writes: Vec<Result<(), WriteError>>,
}

struct Probe {
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Core {
    conns: HashMap<u64, ConnId>,
    /// Deferred replies by connection id.
    owed: HashMap<u64, ConnId>,
    /// The latest handle another core sent (`SHARE`).
    shared: Option<ConnId>,
}

#[derive(Clone)]
enum Note {
    Text(String),
    Handle(ConnId),
}

fn write_result(result: Result<(), WriteError>) -> String {
    match result {
        Ok(()) => "OK\n".into(),
        Err(error) => format!("ERR {error:?}\n"),
    }
}

impl Probe {
    /// Answers one line (without its newline).
    fn answer(&self, line: &str, cx: &mut Context<'_, Self>) -> Option<String> {
        let me = cx.conn().expect("a connection's input");
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let reply = match verb {
            "ID" => format!("{} {}\n", me.core(), me.id()),
            "PUSH" => {
                let (id, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let target = id
                    .parse()
                    .ok()
                    .and_then(|id| cx.state().conns.get(&id).copied());
                match target {
                    Some(target) => write_result(cx.push(target, format!("{text}\n").as_bytes())),
                    None => "ERR unknown\n".into(),
                }
            }
            "KICK" => {
                let id: u64 = rest.parse().unwrap_or(u64::MAX);
                match cx.state().conns.get(&id).copied() {
                    Some(target) => write_result(cx.close(target)),
                    None => "ERR unknown\n".into(),
                }
            }
            "TIMER" => {
                let ms = rest.parse().unwrap_or(0);
                cx.set_timer(me, 1, Duration::from_millis(ms)).unwrap();
                "ARMED\n".into()
            }
            "CORETIMER" => {
                let ms = rest.parse().unwrap_or(0);
                cx.set_core_timer(3, Duration::from_millis(ms)).unwrap();
                "ARMED\n".into()
            }
            "BCAST" => {
                cx.broadcast(Note::Text(rest.into())).unwrap();
                "SENT\n".into()
            }
            "SHARE" => {
                cx.broadcast(Note::Handle(me)).unwrap();
                "SHARED\n".into()
            }
            "PUSHSHARED" => match cx.state().shared {
                Some(handle) => write_result(cx.push(handle, b"from afar\n")),
                None => "ERR none shared\n".into(),
            },
            "DEFER" => {
                let owed = cx.defer();
                cx.state().owed.insert(owed.id(), owed);
                return None;
            }
            "ANSWER" => {
                let id: u64 = rest.parse().unwrap_or(u64::MAX);
                match cx.state().owed.remove(&id) {
                    Some(owed) => write_result(cx.reply(owed, b"ANSWERED\n")),
                    None => "ERR none owed\n".into(),
                }
            }
            _ => "ERR\n".into(),
        };
        Some(reply)
    }
}

impl Protocol for Probe {
    type Session = ();
    type CoreState = Core;
    type Message = Note;

    fn core_state(&self, _core: u16) -> Core {
        Core::default()
    }

    fn open(&self, _peer: Option<SocketAddr>, cx: &mut Context<'_, Self>) {
        let me = cx.conn().expect("open is about a connection");
        cx.state().conns.insert(me.id(), me);
    }

    fn on_input(&self, _: &mut (), input: &[u8], cx: &mut Context<'_, Self>) -> Step {
        let (mut used, mut lines) = (0, 0);
        while let Some(end) = input[used..].iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&input[used..used + end]).into_owned();
            used += end + 1;
            lines += 1;
            if line == "QUIT" {
                return Step::peer_close(used, lines);
            }
            if let Some(reply) = self.answer(&line, cx) {
                cx.output().push(reply.as_bytes());
            }
        }
        Step::more(used, lines)
    }

    fn on_timer(&self, _: &mut (), timer: usize, cx: &mut Context<'_, Self>) {
        let me = cx.conn().expect("a connection's timer");
        cx.push(me, format!("TIMER {timer}\n").as_bytes()).unwrap();
    }

    fn on_core_timer(&self, timer: usize, cx: &mut Context<'_, Self>) {
        let conns: Vec<ConnId> = cx.state().conns.values().copied().collect();
        for conn in conns {
            let _ = cx.push(conn, format!("CORETIMER {timer}\n").as_bytes());
        }
    }

    fn on_message(&self, note: Note, cx: &mut Context<'_, Self>) {
        let text = match note {
            Note::Text(text) => text,
            Note::Handle(handle) => {
                cx.state().shared = Some(handle);
                return;
            }
        };
        let conns: Vec<ConnId> = cx.state().conns.values().copied().collect();
        let core = cx.core();
        for conn in conns {
            let _ = cx.push(conn, format!("NOTE {core} {text}\n").as_bytes());
        }
    }

    fn on_close(&self, _: (), record: &CloseRecord, cx: &mut Context<'_, Self>) {
        let me = cx.conn().expect("the closed connection");
        cx.state().conns.remove(&me.id());
        let stale = cx.push(me, b"too late\n");
        let mut seen = self.seen.lock().unwrap();
        seen.closes.push(*record);
        seen.stale_writes.push(stale);
    }

    fn partial_phase(&self, _: &(), _tail: &[u8]) -> MessagePhase {
        MessagePhase::Header
    }
}

struct Fixture {
    server: Option<Server>,
    seen: Arc<Mutex<Seen>>,
}

impl Fixture {
    fn start(max_queued_bytes: usize) -> Fixture {
        Fixture::start_with(max_queued_bytes, Wake::Auto)
    }

    fn start_with(max_queued_bytes: usize, wake: Wake) -> Fixture {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let config = Config::new()
            .listen("127.0.0.1:0".parse().unwrap())
            .admin(None)
            .cores(2)
            .handle_signals(false)
            .max_queued_bytes(max_queued_bytes)
            .wake(wake);
        let probe = Probe { seen: seen.clone() };
        let server = Server::start(config, probe).expect("the engine starts");
        Fixture {
            server: Some(server),
            seen,
        }
    }

    fn connect(&self) -> Client {
        let addr = self.server.as_ref().unwrap().local_addr();
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
            core: 0,
            id: 0,
        };
        let id = client.ask("ID");
        let (core, id) = id.split_once(' ').unwrap();
        client.core = core.parse().unwrap();
        client.id = id.parse().unwrap();
        client
    }

    /// A client on core 0 and one on core 1 (SO_REUSEPORT spreads them by hash; at most 64
    /// tries).
    fn one_per_core(&self) -> (Client, Client) {
        let (mut zero, mut one) = (None, None);
        for _ in 0..64 {
            let client = self.connect();
            match client.core {
                0 => zero = zero.or(Some(client)),
                _ => one = one.or(Some(client)),
            }
            if let (Some(_), Some(_)) = (&zero, &one) {
                return (zero.unwrap(), one.unwrap());
            }
        }
        panic!("64 connections all landed on one core");
    }

    /// A client on `core` (at most 64 tries).
    fn connect_on(&self, core: u16) -> Client {
        (0..64)
            .map(|_| self.connect())
            .find(|client| client.core == core)
            .unwrap_or_else(|| panic!("64 connections and none on core {core}"))
    }

    /// Waits (up to 5 s) until `on_close` has seen the connection `id` of `core`.
    fn close_of(&self, core: u16, id: u64) -> (CloseRecord, Result<(), WriteError>) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            {
                let seen = self.seen.lock().unwrap();
                let found = seen
                    .closes
                    .iter()
                    .position(|r| r.core == core && r.conn == id);
                if let Some(at) = found {
                    return (seen.closes[at], seen.stale_writes[at]);
                }
            }
            assert!(Instant::now() < deadline, "no on_close for {core}/{id}");
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

struct Client {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    core: u16,
    id: u64,
}

impl Client {
    fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.line()
    }
}

#[test]
fn on_close_gets_the_record_and_the_handle_is_stale() {
    let fixture = Fixture::start(engine::QUEUED_BYTES_DEFAULT);
    let mut quitter = fixture.connect();
    quitter.send("QUIT");
    let (record, stale) = fixture.close_of(quitter.core, quitter.id);
    assert_eq!(record.cause.as_str(), "peer_close");
    assert_eq!(record.frames_in, 2, "ID and QUIT");
    assert_eq!(
        stale,
        Err(WriteError::Closed),
        "a closed connection's handle"
    );

    let leaver = fixture.connect();
    let (core, id) = (leaver.core, leaver.id);
    drop(leaver);
    let (record, _) = fixture.close_of(core, id);
    assert_eq!(record.cause.as_str(), "peer_fin");
    assert_eq!((record.frames_in, record.frames_out), (1, 1));
    assert!(record.bytes_in > 0 && record.peer.is_some());
}

#[test]
fn a_close_the_server_decides_is_local_close_after_what_was_written() {
    let fixture = Fixture::start(engine::QUEUED_BYTES_DEFAULT);
    let mut kicker = fixture.connect();
    let mut kicked = fixture.connect_on(kicker.core);
    assert_eq!(kicker.ask(&format!("PUSH {} last words", kicked.id)), "OK");
    assert_eq!(kicker.ask(&format!("KICK {}", kicked.id)), "OK");
    assert_eq!(
        kicked.line(),
        "last words",
        "what was written before the close arrives"
    );
    assert_eq!(kicked.line(), "", "then the engine's FIN");
    let (record, _) = fixture.close_of(kicked.core, kicked.id);
    assert_eq!(record.cause.as_str(), "local_close");
    assert_eq!(record.frames_out, 2, "its ID answer and the push");
    assert_eq!(
        kicker.ask(&format!("PUSH {} again", kicked.id)),
        "ERR unknown",
        "gone from the registry with its on_close"
    );
}

#[test]
fn pushes_reach_connections_of_the_core_and_name_other_cores() {
    let fixture = Fixture::start(engine::QUEUED_BYTES_DEFAULT);
    let mut a = fixture.connect();
    let mut b = fixture.connect_on(a.core);
    assert_eq!(a.ask(&format!("PUSH {} hello", b.id)), "OK");
    assert_eq!(b.line(), "hello");
    let gone = fixture.connect();
    let gone_id = gone.id;
    let gone_core = gone.core;
    drop(gone);
    let _ = fixture.close_of(gone_core, gone_id);
    let mut same_core = fixture.connect_on(gone_core);
    // The registry forgot it in on_close: a stale id is unknown, never another connection.
    assert_eq!(same_core.ask(&format!("PUSH {gone_id} x")), "ERR unknown");
}

#[test]
fn broadcasts_reach_every_core_woken_by_msg_ring() {
    broadcasts_reach_every_core_and_other_cores_are_named(Wake::MsgRing);
}

#[test]
fn broadcasts_reach_every_core_woken_by_eventfd() {
    broadcasts_reach_every_core_and_other_cores_are_named(Wake::Eventfd);
}

fn broadcasts_reach_every_core_and_other_cores_are_named(wake: Wake) {
    let fixture = Fixture::start_with(engine::QUEUED_BYTES_DEFAULT, wake);
    let (mut zero, mut one) = fixture.one_per_core();
    assert_eq!((zero.core, one.core), (0, 1));
    zero.send("BCAST hi");
    let mut got = vec![zero.line(), zero.line()];
    got.sort();
    assert_eq!(got, ["NOTE 0 hi", "SENT"]);
    assert_eq!(one.line(), "NOTE 1 hi");
    // A handle is only written to on its own core.
    assert_eq!(zero.ask("SHARE"), "SHARED");
    let start = Instant::now();
    loop {
        let answer = one.ask("PUSHSHARED");
        if answer != "ERR none shared" {
            assert_eq!(answer, "ERR OtherCore { core: 0 }");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the handle never arrived"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn timers_fire_and_deferred_replies_arrive_in_order() {
    let fixture = Fixture::start(engine::QUEUED_BYTES_DEFAULT);
    let mut client = fixture.connect();
    let start = Instant::now();
    assert_eq!(client.ask("TIMER 200"), "ARMED");
    assert_eq!(client.line(), "TIMER 1");
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(200),
        "fired after {waited:?}"
    );
    assert_eq!(client.ask("CORETIMER 200"), "ARMED");
    assert_eq!(client.line(), "CORETIMER 3");

    client.send("DEFER");
    client.send("ID");
    let id_line = client.line();
    assert_eq!(id_line, format!("{} {}", client.core, client.id));
    let mut other = fixture.connect_on(client.core);
    assert_eq!(other.ask(&format!("ANSWER {}", client.id)), "OK");
    assert_eq!(client.line(), "ANSWERED");
}

#[test]
fn a_connection_that_does_not_read_what_is_pushed_is_a_slow_consumer() {
    let fixture = Fixture::start(64 * 1024);
    let mut pusher = fixture.connect();
    let mut victim = fixture.connect_on(pusher.core);
    victim.stream.set_read_timeout(None).unwrap();
    let payload = "x".repeat(16 * 1024);
    let mut answers = Vec::new();
    // The victim's socket buffers fill first (a few MB on loopback), then the engine's queue.
    for _ in 0..4096 {
        let answer = pusher.ask(&format!("PUSH {} {payload}", victim.id));
        let done = answer != "OK";
        answers.push(answer);
        if done {
            break;
        }
    }
    let last = answers.last().unwrap().clone();
    assert_eq!(last, "ERR SlowConsumer", "after {} pushes", answers.len());
    // Pushes fail from then on: refused while it closes, or its handle is gone once closed.
    let after = pusher.ask(&format!("PUSH {} more", victim.id));
    assert!(after == "ERR Closed" || after == "ERR unknown", "{after}");
    let (record, _) = fixture.close_of(victim.core, victim.id);
    assert_eq!(record.cause.as_str(), "slow_consumer");
    // The pusher was not hurt.
    assert_eq!(pusher.ask("ID"), format!("{} {}", pusher.core, pusher.id));
    let mut rest = Vec::new();
    let _ = victim.stream.read_to_end(&mut rest);
}
