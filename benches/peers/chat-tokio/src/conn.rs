//! One connection's task: read lines and answer them, and forward the lines of every room it is
//! in to its socket.
//!
//! The task waits on two things at once, its socket becoming readable and any of its rooms'
//! broadcast receivers holding a line ([`Conn::poll_wake`]), then answers what it read and
//! writes everything queued in one `write_all`. Before a direct reply (`OK`, `ERR ..`, `BYE`) it
//! first takes every room line already sent ([`Conn::catch_up`]), so the connection sees the
//! room's traffic and its own replies in the order they happened: `SAY r x` then `LEAVE r`
//! gives `MSG r nick x` before `OK`. Lines of one room come in the order they were sent; lines
//! of two rooms may interleave either way (each room is its own channel).
//!
//! After every [`BROADCASTS_PER_TURN_MAX`] lines it sent to its rooms, a connection takes its own
//! rooms' lines and yields to the other tasks. Slow consumers: a receiver that fell more than
//! `--max-queued` lines behind its room (`RecvError::Lagged`) closes the member, and so does a
//! write that cannot finish within [`WRITE_STALL_MAX`] (a peer that stopped reading would
//! otherwise hold the task forever).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::broadcast::Sender;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::Stream;

use crate::command::{self, Command};
use crate::rooms::{Line, Rooms};

/// The longest request line, without its `\n` (and a `\r` before it).
pub const LINE_LEN_MAX: usize = 4096;
/// Rooms one connection may be in; one more JOIN gets `ERR too many rooms`.
pub const ROOMS_PER_CONNECTION_MAX: usize = 64;
/// How long one write may wait for the peer to read before the member is closed.
pub const WRITE_STALL_MAX: Duration = Duration::from_secs(5);
/// Bytes asked for per read, past the partial line held from the previous one.
const READ_LEN_MIN: usize = 16 * 1024;
/// The input buffer: a held partial line is at most `LINE_LEN_MAX + 1` bytes (with its `\r`).
const INPUT_LEN: usize = LINE_LEN_MAX + 1 + READ_LEN_MIN;
/// Queued output that is written before more is queued (it exceeds this by one line at most).
const OUT_FLUSH_LEN: usize = 64 * 1024;
/// Lines a connection sends to its rooms before it takes its own rooms' lines and lets the other
/// tasks run (half of `--max-queued` when that is smaller): without it, one read of pipelined
/// SAYs (16 KiB is up to 2048 short lines) could push a room's members, this one included, past
/// `--max-queued` before they had a turn, and close them as slow consumers.
const BROADCASTS_PER_TURN_MAX: usize = 64;

/// Why a connection stops being served.
#[derive(Debug)]
enum Stop {
    /// QUIT, an over-long line or the peer's FIN: write the replies queued so far, then close.
    Graceful,
    /// A lagging receiver, a stalled write or an I/O error: close at once.
    Abort,
}

/// One room this connection is in.
#[derive(Debug)]
struct Membership {
    room: String,
    nick: String,
    sender: Sender<Line>,
    lines: BroadcastStream<Line>,
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    rooms: Arc<Rooms>,
    members: Vec<Membership>,
    /// Bytes read; `input[..held]` is the start of a line whose `\n` has not come yet.
    input: Box<[u8]>,
    held: usize,
    /// Replies and room lines not written yet.
    out: Vec<u8>,
    /// The room drained first next time, so one busy room cannot starve the others.
    first_room: usize,
    /// Lines sent to rooms since this task last yielded, and how many it may send in a turn.
    broadcasts: usize,
    broadcasts_per_turn: usize,
}

/// Serves one accepted connection until it ends; then its rooms hear `LEFT <room> <nick> closed`.
pub async fn serve(stream: TcpStream, rooms: Arc<Rooms>) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut conn = Conn {
        stream,
        members: Vec::new(),
        input: vec![0; INPUT_LEN].into_boxed_slice(),
        held: 0,
        out: Vec::with_capacity(OUT_FLUSH_LEN),
        first_room: 0,
        broadcasts: 0,
        broadcasts_per_turn: BROADCASTS_PER_TURN_MAX.min(rooms.queued_max() / 2).max(1),
        rooms,
    };
    let stop = loop {
        if let Err(stop) = conn.step().await {
            break stop;
        }
    };
    for member in std::mem::take(&mut conn.members) {
        conn.part(member, "closed");
    }
    if let Stop::Graceful = stop {
        if conn.flush().await.is_ok() {
            let _ = conn.stream.shutdown().await;
        }
    }
}

impl From<io::Error> for Stop {
    fn from(_: io::Error) -> Stop {
        Stop::Abort
    }
}

impl Conn {
    /// Waits for input or room lines, answers the input, writes what is queued.
    async fn step(&mut self) -> Result<(), Stop> {
        let readable = poll_fn(|cx| self.poll_wake(cx)).await?;
        if readable {
            self.read_and_answer().await?;
        }
        self.flush().await
    }

    /// Ready with `true` when the socket is readable, `false` when only room lines were queued.
    fn poll_wake(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, Stop>> {
        let all_taken = match self.drain(cx) {
            Ok(all_taken) => all_taken,
            Err(stop) => return Poll::Ready(Err(stop)),
        };
        // An error is "readable" too: the read reports it.
        if self.stream.poll_read_ready(cx).is_ready() {
            return Poll::Ready(Ok(true));
        }
        if !all_taken || !self.out.is_empty() {
            return Poll::Ready(Ok(false));
        }
        Poll::Pending
    }

    /// Moves the lines waiting in this connection's receivers to `out`, until `out` is full.
    /// Returns whether every receiver is empty (each then holds `cx`'s waker).
    fn drain(&mut self, cx: &mut Context<'_>) -> Result<bool, Stop> {
        let count = self.members.len();
        self.first_room = (self.first_room + 1) % count.max(1);
        for i in 0..count {
            let member = &mut self.members[(self.first_room + i) % count];
            loop {
                if self.out.len() >= OUT_FLUSH_LEN {
                    return Ok(false);
                }
                match Pin::new(&mut member.lines).poll_next(cx) {
                    Poll::Ready(Some(Ok(line))) => self.out.extend_from_slice(&line),
                    Poll::Ready(Some(Err(BroadcastStreamRecvError::Lagged(_)))) => {
                        return Err(Stop::Abort)
                    }
                    // `None` cannot happen: the member holds a sender of its own.
                    Poll::Ready(None) | Poll::Pending => break,
                }
            }
        }
        Ok(true)
    }

    /// Takes every room line sent so far (writing when `out` fills), so that a direct reply
    /// queued next comes after them. Unconstrained: tokio's task budget must not stop the
    /// receivers early and reorder the reply.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        loop {
            let drain = poll_fn(|cx| Poll::Ready(self.drain(cx)));
            if tokio::task::coop::unconstrained(drain).await? {
                return Ok(());
            }
            self.flush().await?;
        }
    }

    /// Writes everything queued, within [`WRITE_STALL_MAX`].
    async fn flush(&mut self) -> Result<(), Stop> {
        if self.out.is_empty() {
            return Ok(());
        }
        match tokio::time::timeout(WRITE_STALL_MAX, self.stream.write_all(&self.out)).await {
            Ok(Ok(())) => {
                self.out.clear();
                Ok(())
            }
            Ok(Err(_)) | Err(_) => Err(Stop::Abort),
        }
    }

    /// Reads once and answers every complete line; keeps a partial one for the next read.
    async fn read_and_answer(&mut self) -> Result<(), Stop> {
        assert!(self.held <= LINE_LEN_MAX + 1, "{} bytes held", self.held);
        let read_len = match self.stream.try_read(&mut self.input[self.held..]) {
            Ok(0) => {
                self.catch_up().await?;
                return Err(Stop::Graceful);
            }
            Ok(read_len) => read_len,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let end = self.held + read_len;
        // Lend the buffer out so the lines can borrow it while `self` answers them.
        let input = std::mem::take(&mut self.input);
        let answered = self.answer_lines(&input[..end]).await;
        self.input = input;
        let used = answered?;
        self.held = end - used;
        if self.held > LINE_LEN_MAX + 1 {
            self.reply(b"ERR line too long\n").await?;
            return Err(Stop::Graceful);
        }
        self.input.copy_within(used..end, 0);
        Ok(())
    }

    /// Answers every complete line of `input`; returns the bytes they used.
    async fn answer_lines(&mut self, input: &[u8]) -> Result<usize, Stop> {
        let mut used = 0;
        while let Some(at) = input[used..].iter().position(|&b| b == b'\n') {
            let line = &input[used..used + at];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            used += at + 1;
            if line.len() > LINE_LEN_MAX {
                self.reply(b"ERR line too long\n").await?;
                return Err(Stop::Graceful);
            }
            self.answer(line).await?;
            if self.broadcasts >= self.broadcasts_per_turn {
                // Its own receivers too: one read can hold more SAYs than `--max-queued`.
                self.broadcasts = 0;
                self.catch_up().await?;
                tokio::task::yield_now().await;
            }
        }
        Ok(used)
    }

    async fn answer(&mut self, line: &[u8]) -> Result<(), Stop> {
        match command::parse(line) {
            Err(refusal) => self.reply(refusal.reply()).await,
            Ok(Command::Join { room, nick }) => self.join(room, nick).await,
            Ok(Command::Say { room, text }) => match self.position(room) {
                Some(i) => {
                    let member = &self.members[i];
                    let nick = member.nick.as_bytes();
                    let parts: [&[u8]; 7] =
                        [b"MSG ", room.as_bytes(), b" ", nick, b" ", text, b"\n"];
                    broadcast(&member.sender, &parts);
                    self.broadcasts += 1;
                    Ok(())
                }
                None => self.reply(b"ERR not in room\n").await,
            },
            Ok(Command::Leave { room }) => match self.position(room) {
                Some(i) => {
                    self.catch_up().await?;
                    let member = self.members.swap_remove(i);
                    self.part(member, "leave");
                    self.reply(b"OK\n").await
                }
                None => self.reply(b"ERR not in room\n").await,
            },
            Ok(Command::Quit) => {
                self.reply(b"BYE\n").await?;
                Err(Stop::Graceful)
            }
        }
    }

    /// JOIN: subscribes (a JOIN of a room already joined only changes the nick), answers `OK`,
    /// then tells the room, the sender included, `JOINED <room> <nick>`.
    async fn join(&mut self, room: &str, nick: &str) -> Result<(), Stop> {
        match self.position(room) {
            Some(i) => nick.clone_into(&mut self.members[i].nick),
            None if self.members.len() == ROOMS_PER_CONNECTION_MAX => {
                return self.reply(b"ERR too many rooms\n").await
            }
            None => {
                let (sender, receiver) = self.rooms.join(room);
                self.members.push(Membership {
                    room: room.to_owned(),
                    nick: nick.to_owned(),
                    sender,
                    lines: BroadcastStream::new(receiver),
                });
            }
        }
        self.reply(b"OK\n").await?;
        let member = &self.members[self.position(room).expect("joined above")];
        let parts: [&[u8]; 5] = [b"JOINED ", room.as_bytes(), b" ", nick.as_bytes(), b"\n"];
        broadcast(&member.sender, &parts);
        self.broadcasts += 1;
        Ok(())
    }

    /// Leaves a room: stops receiving, then tells the others `LEFT <room> <nick> <why>`.
    fn part(&mut self, member: Membership, why: &str) {
        let Membership {
            room,
            nick,
            sender,
            lines,
        } = member;
        drop(lines);
        let parts: [&[u8]; 7] = [
            b"LEFT ",
            room.as_bytes(),
            b" ",
            nick.as_bytes(),
            b" ",
            why.as_bytes(),
            b"\n",
        ];
        broadcast(&sender, &parts);
        self.broadcasts += 1;
        drop(sender);
        self.rooms.release(&room);
    }

    /// Queues a direct reply after the room lines sent before it.
    async fn reply(&mut self, line: &[u8]) -> Result<(), Stop> {
        self.catch_up().await?;
        self.out.extend_from_slice(line);
        if self.out.len() >= OUT_FLUSH_LEN {
            self.flush().await?;
        }
        Ok(())
    }

    fn position(&self, room: &str) -> Option<usize> {
        self.members.iter().position(|m| m.room == room)
    }
}

/// Sends one line, built once, to every receiver of a room (none left is not an error).
fn broadcast(sender: &Sender<Line>, parts: &[&[u8]]) {
    let _ = sender.send(Line::from(parts.concat()));
}
