//! A chat server on the engine, written only against its public API: rooms whose members may sit
//! on any core, room events fanned out to every core as messages, pushes bounded per member (a
//! member that does not read is closed as `slow_consumer`), and the engine's close cause told
//! to the room when a member goes.
//!
//! Newline-delimited (a `\r` before the `\n` is ignored). Rooms and nicks are 1 to 32 bytes of
//! `[A-Za-z0-9_-]`; a nick is per room and need not be unique. Commands are case-sensitive and
//! their words are separated by single spaces.
//!
//! | client sends          | effect                                                            |
//! |-----------------------|-------------------------------------------------------------------|
//! | `JOIN <room> <nick>`  | `OK`; every member of the room (the sender included) gets `JOINED <room> <nick>` |
//! | `SAY <room> <text>`   | every member of the room (the sender included) gets `MSG <room> <nick> <text>` |
//! | `LEAVE <room>`        | `OK`; the other members get `LEFT <room> <nick> leave`             |
//! | `QUIT`                | `BYE`, then close (`peer_close`)                                  |
//! | anything else         | `ERR unknown command`                                             |
//!
//! When a member's connection ends for any reason, the other members of each room it was in get
//! `LEFT <room> <nick> <cause>`, the engine's label of the close (`peer_fin`, `peer_reset`,
//! `idle_timeout`, `peer_close`, `protocol_error`, `slow_consumer`, ...).
//!
//! The error lines, to the sender only. Apart from `ERR busy` (below) and `ERR line too long`
//! (which closes), the line that earned one had no other effect.
//!
//! | line                                  | when                                               |
//! |---------------------------------------|----------------------------------------------------|
//! | `ERR bad name`                        | a room or nick missing, empty, longer than 32 bytes or with another byte (so also `JOIN <room>` and `JOIN <room> <two words>`) |
//! | `ERR already in room`                 | `JOIN` of a room this connection is in             |
//! | `ERR too many rooms`                  | `JOIN` by a connection already in 16 rooms         |
//! | `ERR not in room`                     | `SAY` or `LEAVE` of a room this connection is not in |
//! | `ERR empty message`                   | `SAY <room>` or `SAY <room> ` (no text)            |
//! | `ERR unknown command`                 | any other line (`QUIT` with arguments included)    |
//! | `ERR line too long`                   | a line over 4096 bytes, its `\n` included: then close (`protocol_error`) |
//! | `ERR busy`                            | see below                                          |
//!
//! `ERR busy`: the event of a `JOIN`, `SAY` or `LEAVE` could not be queued for every core (a
//! core's message queue was full). Some members, perhaps all, missed it; the command's effect
//! on membership stands (a `JOIN` joined, a `LEAVE` left). For `JOIN` and `LEAVE` it comes in
//! place of `OK`. The `LEFT` of a closed connection has no sender to tell: it is queued again
//! for the cores that missed it, and retried every few milliseconds (up to a bound, past which
//! it is dropped and said on stderr).
//!
//! Design: each core's state holds, per room, the handles of its own members (a member's nick
//! is in its session). A room event is formatted once where it happens and sent to every core,
//! the sender's own included; each core writes the line to its members of the room with
//! `Context::push`. The event goes out with `Context::send` to each core in turn rather than
//! `Context::broadcast`: the same copies, but the cores whose queue was full are known, so a
//! `LEFT` is retried for just those. The engine keeps the messages from one core to another in
//! order, and a sender's events all leave from its core, so every member gets one sender's
//! events in the order sent. Events reach the other cores a few microseconds later: a client
//! that joins on another core within that time may still get the event of a member who joined
//! just before it (it learns of a member either way). A joiner is added to its core's room
//! before its `JOINED` is sent,
//! so it gets its own `JOINED`; a leaver is removed before its `LEFT` is sent, so it does not.
//!
//!     cargo run --release -p engine --example chat -- --listen 127.0.0.1:7200
//!     printf 'JOIN lobby ann\nSAY lobby hello\nQUIT\n' | nc 127.0.0.1 7200

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use engine::{
    CloseRecord, Config, ConnId, Context, MessagePhase, Protocol, SendError, Server, Step,
    WriteError, QUEUED_BYTES_DEFAULT,
};

/// The longest line, its `\n` included.
const LINE_MAX: usize = 4096;
/// The longest room or nick.
const NAME_MAX: usize = 32;
/// Rooms one connection may be in at once.
const ROOMS_PER_CONN_MAX: usize = 16;
/// `LEFT` events of closed connections waiting, per core, for a full queue to make room.
const RETRIES_MAX: usize = 64 * 1024;
/// How soon those are sent again.
const RETRY_AFTER: Duration = Duration::from_millis(5);
/// The core timer of those retries.
const RETRY_TIMER: usize = 0;

// The longest JOIN is a line.
const _: () = assert!("JOIN ".len() + NAME_MAX + " ".len() + NAME_MAX + "\n".len() <= LINE_MAX);

struct Chat;

/// One room event: the room, and the line every member of the room on every core gets.
#[derive(Debug)]
struct Event {
    room: Arc<str>,
    line: Box<[u8]>,
}

/// What cores send each other: an event, shared (a copy per core is a reference count).
type Message = Arc<Event>;

/// One room a connection is in, and its nick there.
struct Membership {
    room: Arc<str>,
    nick: Arc<str>,
}

/// One connection: the rooms it is in.
#[derive(Default)]
struct Session {
    rooms: Vec<Membership>,
}

/// One core's state: its members of each room, and the events it owes other cores. (A member's
/// nick lives in its session, where `SAY` finds it at once.)
#[derive(Default)]
struct CoreState {
    rooms: HashMap<Arc<str>, Vec<ConnId>>,
    /// `LEFT` events that found a core's queue full, with that core, oldest first.
    retries: VecDeque<(u16, Message)>,
    /// The members an event goes to, reused from one event to the next.
    targets: Vec<ConnId>,
}

impl CoreState {
    fn add(&mut self, room: &Arc<str>, conn: ConnId) {
        self.rooms.entry(room.clone()).or_default().push(conn);
    }

    fn remove(&mut self, room: &str, conn: ConnId) {
        let Some(members) = self.rooms.get_mut(room) else {
            return;
        };
        members.retain(|&member| member != conn);
        if members.is_empty() {
            self.rooms.remove(room);
        }
    }
}

/// What one well-formed line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command<'a> {
    Join { room: &'a str, nick: &'a str },
    Say { room: &'a str, text: &'a [u8] },
    Leave { room: &'a str },
    Quit,
}

const OK: &[u8] = b"OK\n";
const BYE: &[u8] = b"BYE\n";
const ERR_BAD_NAME: &[u8] = b"ERR bad name\n";
const ERR_ALREADY_IN_ROOM: &[u8] = b"ERR already in room\n";
const ERR_TOO_MANY_ROOMS: &[u8] = b"ERR too many rooms\n";
const ERR_NOT_IN_ROOM: &[u8] = b"ERR not in room\n";
const ERR_EMPTY_MESSAGE: &[u8] = b"ERR empty message\n";
const ERR_UNKNOWN_COMMAND: &[u8] = b"ERR unknown command\n";
const ERR_LINE_TOO_LONG: &[u8] = b"ERR line too long\n";
const ERR_BUSY: &[u8] = b"ERR busy\n";

/// Parses one line (without its `\n`; a trailing `\r` is ignored): its command, or the error
/// line that answers it.
fn parse(line: &[u8]) -> Result<Command<'_>, &'static [u8]> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (verb, args) = split_word(line);
    match (verb, args) {
        (b"JOIN", Some(args)) => {
            let (room, nick) = split_word(args);
            let room = name(room).ok_or(ERR_BAD_NAME)?;
            let nick = nick.and_then(name).ok_or(ERR_BAD_NAME)?;
            Ok(Command::Join { room, nick })
        }
        (b"SAY", Some(args)) => {
            let (room, text) = split_word(args);
            let room = name(room).ok_or(ERR_BAD_NAME)?;
            match text {
                Some(text) if !text.is_empty() => Ok(Command::Say { room, text }),
                _ => Err(ERR_EMPTY_MESSAGE),
            }
        }
        (b"LEAVE", Some(args)) => Ok(Command::Leave {
            room: name(args).ok_or(ERR_BAD_NAME)?,
        }),
        (b"JOIN" | b"SAY" | b"LEAVE", None) => Err(ERR_BAD_NAME),
        (b"QUIT", None) => Ok(Command::Quit),
        _ => Err(ERR_UNKNOWN_COMMAND),
    }
}

/// The first word of `bytes` and what follows its space (`None` without a space).
fn split_word(bytes: &[u8]) -> (&[u8], Option<&[u8]>) {
    match bytes.iter().position(|&byte| byte == b' ') {
        Some(space) => (&bytes[..space], Some(&bytes[space + 1..])),
        None => (bytes, None),
    }
}

/// `bytes` as a room or nick, if it is one.
fn name(bytes: &[u8]) -> Option<&str> {
    let allowed = |byte: &u8| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-');
    if bytes.is_empty() || bytes.len() > NAME_MAX || !bytes.iter().all(allowed) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

/// `<words...>` joined by spaces, then `\n`.
fn event_line(words: &[&[u8]]) -> Box<[u8]> {
    let len = words.iter().map(|word| word.len() + 1).sum();
    let mut line = Vec::with_capacity(len);
    for (index, word) in words.iter().enumerate() {
        if index > 0 {
            line.push(b' ');
        }
        line.extend_from_slice(word);
    }
    line.push(b'\n');
    line.into_boxed_slice()
}

/// Queues `event` for every core (this one included); returns the cores whose queue was full
/// (empty, and no allocation, when every core took it). A stopped core serves no member.
fn fan_out(cx: &mut Context<'_, Chat>, event: &Message) -> Vec<u16> {
    let mut missed = Vec::new();
    for core in 0..cx.cores() {
        match cx.send(core, event.clone()) {
            Ok(()) | Err(SendError::Stopped(_)) => {}
            Err(SendError::Full(_)) => missed.push(core),
            Err(SendError::NoSuchCore(_)) => unreachable!("core {core} is below cx.cores()"),
        }
    }
    missed
}

/// What answering a line means for the connection.
enum Flow {
    Continue,
    Quit,
}

impl Chat {
    /// Answers one complete line (without its `\n`) of `session`'s connection.
    fn answer(&self, session: &mut Session, line: &[u8], cx: &mut Context<'_, Self>) -> Flow {
        let reply = match parse(line) {
            Ok(Command::Join { room, nick }) => self.join(session, room, nick, cx),
            Ok(Command::Say { room, text }) => self.say(session, room, text, cx),
            Ok(Command::Leave { room }) => self.leave(session, room, cx),
            Ok(Command::Quit) => {
                cx.output().push(BYE);
                return Flow::Quit;
            }
            Err(error) => Some(error),
        };
        if let Some(reply) = reply {
            cx.output().push(reply);
        }
        Flow::Continue
    }

    fn join(
        &self,
        session: &mut Session,
        room: &str,
        nick: &str,
        cx: &mut Context<'_, Self>,
    ) -> Option<&'static [u8]> {
        if session.rooms.iter().any(|m| &*m.room == room) {
            return Some(ERR_ALREADY_IN_ROOM);
        }
        if session.rooms.len() >= ROOMS_PER_CONN_MAX {
            return Some(ERR_TOO_MANY_ROOMS);
        }
        let conn = cx.conn().expect("on_input is about a connection");
        let (room, nick): (Arc<str>, Arc<str>) = (room.into(), nick.into());
        // A member before its JOINED is sent: it gets its own.
        cx.state().add(&room, conn);
        let line = event_line(&[b"JOINED", room.as_bytes(), nick.as_bytes()]);
        session.rooms.push(Membership {
            room: room.clone(),
            nick,
        });
        let missed = fan_out(cx, &Arc::new(Event { room, line }));
        Some(if missed.is_empty() { OK } else { ERR_BUSY })
    }

    fn say(
        &self,
        session: &Session,
        room: &str,
        text: &[u8],
        cx: &mut Context<'_, Self>,
    ) -> Option<&'static [u8]> {
        let Some(membership) = session.rooms.iter().find(|m| &*m.room == room) else {
            return Some(ERR_NOT_IN_ROOM);
        };
        let line = event_line(&[b"MSG", room.as_bytes(), membership.nick.as_bytes(), text]);
        let event = Arc::new(Event {
            room: membership.room.clone(),
            line,
        });
        let missed = fan_out(cx, &event);
        (!missed.is_empty()).then_some(ERR_BUSY)
    }

    fn leave(
        &self,
        session: &mut Session,
        room: &str,
        cx: &mut Context<'_, Self>,
    ) -> Option<&'static [u8]> {
        let Some(index) = session.rooms.iter().position(|m| &*m.room == room) else {
            return Some(ERR_NOT_IN_ROOM);
        };
        let membership = session.rooms.swap_remove(index);
        let conn = cx.conn().expect("on_input is about a connection");
        // No longer a member before its LEFT is sent: it does not get it.
        cx.state().remove(room, conn);
        let missed = fan_out(cx, &left_event(membership, "leave"));
        Some(if missed.is_empty() { OK } else { ERR_BUSY })
    }
}

/// `LEFT <room> <nick> <why>` for the room's other members.
fn left_event(membership: Membership, why: &str) -> Message {
    let Membership { room, nick } = membership;
    let line = event_line(&[b"LEFT", room.as_bytes(), nick.as_bytes(), why.as_bytes()]);
    Arc::new(Event { room, line })
}

/// Keeps `event` to send `core` again soon (its queue was full), unless too many wait already.
fn queue_retry(cx: &mut Context<'_, Chat>, core: u16, event: &Message) {
    let retries = &mut cx.state().retries;
    if retries.len() >= RETRIES_MAX {
        let line = String::from_utf8_lossy(&event.line);
        eprintln!(
            "chat: dropped `{}` for core {core}: {RETRIES_MAX} events wait already",
            line.trim_end()
        );
        return;
    }
    retries.push_back((core, event.clone()));
    if retries.len() == 1 {
        arm_retry(cx); // while any wait, the timer is armed
    }
}

/// Sends the retries queued for full cores, oldest first, until one is refused again.
fn send_retries(cx: &mut Context<'_, Chat>) {
    while let Some((core, event)) = cx.state().retries.pop_front() {
        match cx.send(core, event) {
            Ok(()) | Err(SendError::Stopped(_) | SendError::NoSuchCore(_)) => {}
            Err(SendError::Full(event)) => {
                cx.state().retries.push_front((core, event));
                arm_retry(cx);
                return;
            }
        }
    }
}

fn arm_retry(cx: &mut Context<'_, Chat>) {
    cx.set_core_timer(RETRY_TIMER, RETRY_AFTER)
        .expect("RETRY_TIMER is a core timer and RETRY_AFTER is near");
}

impl Protocol for Chat {
    type Session = Session;
    type CoreState = CoreState;
    type Message = Message;

    fn core_state(&self, _core: u16) -> CoreState {
        CoreState::default()
    }

    fn open(&self, _peer: Option<SocketAddr>, _cx: &mut Context<'_, Self>) -> Session {
        Session::default()
    }

    fn on_input(&self, session: &mut Session, input: &[u8], cx: &mut Context<'_, Self>) -> Step {
        let (mut used, mut lines) = (0, 0);
        while let Some(end) = input[used..].iter().position(|&byte| byte == b'\n') {
            if end + 1 > LINE_MAX {
                break; // answered below, as a line that is too long
            }
            let line = &input[used..used + end];
            used += end + 1;
            lines += 1;
            if let Flow::Quit = self.answer(session, line, cx) {
                return Step::peer_close(used, lines); // the lines after QUIT are not read
            }
        }
        if input.len() - used >= LINE_MAX {
            cx.output().push(ERR_LINE_TOO_LONG);
            return Step::violation(used, lines);
        }
        Step::more(used, lines)
    }

    fn on_message(&self, event: Message, cx: &mut Context<'_, Self>) {
        let state = cx.state();
        let mut targets = std::mem::take(&mut state.targets);
        targets.clear();
        if let Some(members) = state.rooms.get(&event.room) {
            targets.extend_from_slice(members);
        }
        for &conn in &targets {
            match cx.push(conn, &event.line) {
                // A member that closes (too slow, or for any other reason) leaves in on_close.
                Ok(()) | Err(WriteError::Closed | WriteError::SlowConsumer) => {}
                Err(WriteError::OtherCore { core }) => {
                    unreachable!("a core lists only its own members, not one of core {core}")
                }
            }
        }
        cx.state().targets = targets;
    }

    fn on_core_timer(&self, timer: usize, cx: &mut Context<'_, Self>) {
        if timer == RETRY_TIMER {
            send_retries(cx);
        }
    }

    fn on_close(&self, session: Session, record: &CloseRecord, cx: &mut Context<'_, Self>) {
        let conn = cx.conn().expect("on_close is about a connection");
        for membership in session.rooms {
            cx.state().remove(&membership.room, conn);
            let event = left_event(membership, record.cause.as_str());
            for core in fan_out(cx, &event) {
                queue_retry(cx, core, &event);
            }
        }
    }

    fn partial_phase(&self, _: &Session, _tail: &[u8]) -> MessagePhase {
        MessagePhase::Header // a line has no body
    }

    fn message_max(&self) -> usize {
        LINE_MAX
    }
}

/// The chat server on the engine.
#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:7200")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:7201")]
    admin: SocketAddr,
    #[arg(long)]
    cores: Option<u16>,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    idle_timeout: Duration,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    read_timeout: Duration,
    #[arg(long)]
    close_log: Option<PathBuf>,
    /// Bytes queued for one member before it is closed as `slow_consumer` (at least 65536).
    #[arg(long, default_value_t = QUEUED_BYTES_DEFAULT)]
    max_queued: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = Config::new()
        .listen(args.listen)
        .admin(Some(args.admin))
        .idle_timeout(args.idle_timeout)
        .read_timeout(args.read_timeout)
        .close_log(args.close_log)
        .max_queued_bytes(args.max_queued);
    if let Some(cores) = args.cores {
        config = config.cores(cores);
    }
    let server = match Server::start(config, Chat) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("chat: {error}");
            return ExitCode::FAILURE;
        }
    };
    let admin = server
        .admin_addr()
        .expect("an admin address was configured");
    println!("engine ready listen={} admin={admin}", server.local_addr());
    match server.wait() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chat: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_parses_to_its_command_or_error() {
        let too_long = format!("JOIN {} ann", "r".repeat(NAME_MAX + 1));
        let cases: [(&[u8], Result<Command<'_>, &[u8]>); 20] = [
            (
                b"JOIN lobby ann",
                Ok(Command::Join {
                    room: "lobby",
                    nick: "ann",
                }),
            ),
            (
                b"JOIN a-b_9 Z\r",
                Ok(Command::Join {
                    room: "a-b_9",
                    nick: "Z",
                }),
            ),
            (b"JOIN lobby", Err(ERR_BAD_NAME)),
            (b"JOIN", Err(ERR_BAD_NAME)),
            (b"JOIN lobby ann bob", Err(ERR_BAD_NAME)),
            (b"JOIN lob.by ann", Err(ERR_BAD_NAME)),
            (b"JOIN  ann", Err(ERR_BAD_NAME)),
            (too_long.as_bytes(), Err(ERR_BAD_NAME)),
            (
                b"SAY lobby hello  world",
                Ok(Command::Say {
                    room: "lobby",
                    text: b"hello  world",
                }),
            ),
            (b"SAY lobby", Err(ERR_EMPTY_MESSAGE)),
            (b"SAY lobby ", Err(ERR_EMPTY_MESSAGE)),
            (b"SAY", Err(ERR_BAD_NAME)),
            (b"SAY l!bby hi", Err(ERR_BAD_NAME)),
            (b"LEAVE lobby", Ok(Command::Leave { room: "lobby" })),
            (b"LEAVE lobby x", Err(ERR_BAD_NAME)),
            (b"QUIT", Ok(Command::Quit)),
            (b"QUIT\r", Ok(Command::Quit)),
            (b"QUIT now", Err(ERR_UNKNOWN_COMMAND)),
            (b"join lobby ann", Err(ERR_UNKNOWN_COMMAND)),
            (b"", Err(ERR_UNKNOWN_COMMAND)),
        ];
        for (line, expected) in cases {
            assert_eq!(parse(line), expected, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn event_lines_are_words_and_a_newline() {
        assert_eq!(
            &*event_line(&[b"LEFT", b"r", b"n", b"leave"]),
            b"LEFT r n leave\n"
        );
    }
}
