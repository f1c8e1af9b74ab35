//! The event loop: one epoll instance, the listener, and a slab of connections whose index and
//! generation make up each epoll token, so that a report for a closed connection never reaches
//! the one that reuses its slot. Once a second it refreshes the `Date` of the templates and
//! closes connections that lingered too long.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsFd;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::conn::{Buffers, Conn, Step};
use crate::reply::Replies;
use crate::sys::{self, Epoll, Event, Interest};

/// Open connections at most; one more is accepted and closed at once.
const CONNECTIONS_MAX: usize = 16 * 1024;
/// Readiness reports per wait.
const EVENTS_MAX: usize = 1024;
/// Connections accepted per listener report, so that accepting cannot starve the others.
const ACCEPT_BATCH_MAX: usize = 64;
/// The longest wait: the `Date` and the lingering deadlines are checked at least this often.
const TICK_MS: i32 = 1000;
/// The listener's token: no connection's (their index is below [`CONNECTIONS_MAX`]).
const LISTENER_TOKEN: u64 = u64::MAX;

const _: () = assert!(CONNECTIONS_MAX < u32::MAX as usize);

#[derive(Debug)]
struct Slot {
    /// Bumped when the slot's connection closes.
    generation: u32,
    conn: Option<Conn>,
    interest: Interest,
}

#[derive(Debug)]
pub struct Server {
    epoll: Epoll,
    listener: TcpListener,
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Buffers of closed connections, for the next ones.
    spare: Vec<Buffers>,
    replies: Replies,
    now_s: u64,
}

impl Server {
    /// `listener` must be non-blocking.
    pub fn new(listener: TcpListener) -> io::Result<Server> {
        let epoll = Epoll::new()?;
        epoll.add(listener.as_fd(), Interest::Read, LISTENER_TOKEN)?;
        let now = SystemTime::now();
        Ok(Server {
            epoll,
            listener,
            slots: Vec::new(),
            free: Vec::new(),
            spare: Vec::new(),
            replies: Replies::new(now),
            now_s: unix_s(now),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn run(&mut self) -> io::Result<()> {
        let mut events = vec![Event::EMPTY; EVENTS_MAX];
        loop {
            let count = self.epoll.wait(&mut events, TICK_MS)?;
            self.tick();
            for event in &events[..count] {
                if event.token() == LISTENER_TOKEN {
                    self.accept_some();
                } else {
                    self.on_event(event);
                }
            }
        }
    }

    /// Once a second: a new `Date`, and lingering connections past their deadline closed.
    fn tick(&mut self) {
        let now = SystemTime::now();
        if unix_s(now) == self.now_s {
            return;
        }
        self.now_s = unix_s(now);
        self.replies.set_date(now);
        for index in 0..self.slots.len() {
            let expired = self.slots[index]
                .conn
                .as_ref()
                .is_some_and(|conn| conn.linger_expired(self.now_s));
            if expired {
                self.close(index);
            }
        }
    }

    fn accept_some(&mut self) {
        for _ in 0..ACCEPT_BATCH_MAX {
            let fd = match sys::accept(self.listener.as_fd()) {
                Ok(Some(fd)) => fd,
                Ok(None) => return,
                Err(error) => {
                    // EMFILE and the like: the listener reports again while one is waiting.
                    eprintln!("accept: {error}");
                    return;
                }
            };
            if self.slots.len() - self.free.len() == CONNECTIONS_MAX {
                continue; // over the limit: dropping `fd` closes it
            }
            if let Err(error) = sys::set_nodelay(fd.as_fd()) {
                eprintln!("TCP_NODELAY: {error}");
                continue;
            }
            let index = self
                .free
                .pop()
                .map_or(self.slots.len(), |index| index as usize);
            if index == self.slots.len() {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                    interest: Interest::Read,
                });
            }
            let slot = &mut self.slots[index];
            assert!(slot.conn.is_none(), "slot {index} is free and in use");
            let token = token(index, slot.generation);
            if let Err(error) = self.epoll.add(fd.as_fd(), Interest::Read, token) {
                eprintln!("epoll add: {error}");
                self.free.push(index as u32);
                continue;
            }
            let buffers = self.spare.pop().unwrap_or_default();
            slot.conn = Some(Conn::new(fd, buffers));
            slot.interest = Interest::Read;
        }
    }

    fn on_event(&mut self, event: &Event) {
        let (index, generation) = (event.token() as u32 as usize, (event.token() >> 32) as u32);
        let Some(slot) = self.slots.get_mut(index) else {
            unreachable!("token {:#x} names no slot", event.token());
        };
        let Some(conn) = slot.conn.as_mut().filter(|_| slot.generation == generation) else {
            return; // a report for a connection closed earlier in this batch
        };
        let step = if event.failed() {
            Ok(Step::Close)
        } else {
            match slot.interest {
                Interest::Read => conn.on_readable(&self.replies, self.now_s),
                Interest::Write => conn.on_writable(self.now_s),
            }
        };
        let step = step.and_then(|step| match step {
            Step::Wait(interest) if interest != slot.interest => {
                self.epoll
                    .modify(conn.fd().as_fd(), interest, token(index, generation))?;
                slot.interest = interest;
                Ok(step)
            }
            step => Ok(step),
        });
        match step {
            Ok(Step::Wait(_)) => {}
            Ok(Step::Close) => self.close(index),
            Err(error) => {
                eprintln!("connection: {error}");
                self.close(index);
            }
        }
    }

    fn close(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        let conn = slot.conn.take().expect("closing an open connection");
        slot.generation = slot.generation.wrapping_add(1);
        self.spare.push(conn.close());
        self.free.push(index as u32);
    }
}

fn token(index: usize, generation: u32) -> u64 {
    u64::from(generation) << 32 | index as u64
}

fn unix_s(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
