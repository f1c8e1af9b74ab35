//! What a protocol's callbacks may do besides answering the input at hand: reach the core's
//! state, write to any live connection of the core through its [`ConnId`], answer later
//! ([`Context::defer`] / [`Context::reply`]), close a connection, arm timers, and send messages
//! to other cores.
//!
//! A [`Context`] never re-enters the core: a write lands in the target's output at once (one
//! copy) and is sent with the core's next batch; a close it asks for is recorded as an intent and
//! carried out when the callback returns. So callbacks can be called from anywhere in the loop.

#[cfg(test)]
pub(crate) mod testing;

use std::fmt;
use std::time::Duration;

use slab::Slab;

use crate::classify::Intent;
use crate::conn::{Conn, Pool};
use crate::core::{Agenda, Request};
use crate::mesh::Mesh;
use crate::protocol_api::{Output, Protocol};

/// Timers each connection has ([`Context::set_timer`]): indexes `0..CONN_TIMERS`.
pub const CONN_TIMERS: usize = 4;
/// Timers each core has ([`Context::set_core_timer`]): indexes `0..CORE_TIMERS`.
pub const CORE_TIMERS: usize = 8;
/// The furthest a timer may be set into the future.
pub const TIMER_AFTER_MAX: Duration = Duration::from_secs(366 * 24 * 3600);

/// A handle on one connection: its core, its slot there, and a number that is never reused on
/// that core, so a handle kept after its connection closed is detected as stale, never taken
/// for a newer connection in the same slot. Cheap to copy; keep it in a session, in the core's
/// state or in a message. (Connections the engine opens itself will carry the same handle.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) core: u16,
    pub(crate) slot: u32,
    pub(crate) id: u64,
}

impl ConnId {
    /// The core that owns the connection (writes to it are made on that core).
    pub fn core(&self) -> u16 {
        self.core
    }

    /// The connection's number on its core: the close record's `conn`.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.core, self.id)
    }
}

/// Why a write (or a close) to a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The connection has closed (the handle is stale), or it is closing and takes no more
    /// output (its FIN is sent, a send failed, or it was found too slow).
    Closed,
    /// The handle names a connection of another core: send that core a message.
    OtherCore { core: u16 },
    /// This write passed the connection's bound on queued output (`max_queued_bytes`): the peer
    /// does not read fast enough, and the connection is being closed as `slow_consumer`.
    SlowConsumer,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Closed => write!(f, "the connection is closed"),
            WriteError::OtherCore { core } => {
                write!(f, "the connection belongs to core {core}")
            }
            WriteError::SlowConsumer => {
                write!(
                    f,
                    "the connection's queued output passed its bound (slow consumer)"
                )
            }
        }
    }
}

impl std::error::Error for WriteError {}

/// Why a timer could not be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerError {
    /// The connection has closed, or sent its FIN.
    Closed,
    /// The handle names a connection of another core.
    OtherCore { core: u16 },
    /// There is no timer with this index (see [`CONN_TIMERS`], [`CORE_TIMERS`]).
    NoSuchTimer { timer: usize, timers: usize },
    /// Further away than [`TIMER_AFTER_MAX`].
    TooFar,
}

impl fmt::Display for TimerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimerError::Closed => write!(f, "the connection is closed"),
            TimerError::OtherCore { core } => write!(f, "the connection belongs to core {core}"),
            TimerError::NoSuchTimer { timer, timers } => {
                write!(f, "timer {timer} does not exist (there are {timers})")
            }
            TimerError::TooFar => write!(f, "a timer is at most {TIMER_AFTER_MAX:?} away"),
        }
    }
}

impl std::error::Error for TimerError {}

/// Why a message was not queued for a core; the message comes back.
#[derive(PartialEq, Eq)]
pub enum SendError<M> {
    /// The core's queue is full (backpressure): try again later, or drop it knowingly.
    Full(M),
    /// There is no such core.
    NoSuchCore(M),
    /// The core has stopped.
    Stopped(M),
}

impl<M> SendError<M> {
    pub fn into_message(self) -> M {
        match self {
            SendError::Full(m) | SendError::NoSuchCore(m) | SendError::Stopped(m) => m,
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => write!(f, "Full(..)"),
            SendError::NoSuchCore(_) => write!(f, "NoSuchCore(..)"),
            SendError::Stopped(_) => write!(f, "Stopped(..)"),
        }
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full(_) => write!(f, "the core's message queue is full"),
            SendError::NoSuchCore(_) => write!(f, "no such core"),
            SendError::Stopped(_) => write!(f, "the core has stopped"),
        }
    }
}

impl<M> std::error::Error for SendError<M> {}

/// A broadcast that did not reach every core: how many queues were full, and how many cores
/// had stopped. The other cores got the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BroadcastError {
    pub full: u16,
    pub stopped: u16,
}

impl fmt::Display for BroadcastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not delivered to {} cores with a full queue and {} stopped",
            self.full, self.stopped
        )
    }
}

impl std::error::Error for BroadcastError {}

/// The connection a callback is about.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Own {
    pub slot: usize,
    pub id: u64,
    /// `output()` may be used: the callback is the connection's `open` or `on_input`.
    pub output: bool,
}

/// What a callback may reach: the core's state and clock, the core's connections (by handle),
/// timers and the other cores. Lives for one callback.
pub struct Context<'a, P: Protocol + ?Sized> {
    pub(crate) core: u16,
    pub(crate) now_us: u64,
    pub(crate) draining: bool,
    pub(crate) own: Option<Own>,
    pub(crate) max_queued_bytes: usize,
    pub(crate) idle_timeout_us: u64,
    pub(crate) state: &'a mut P::CoreState,
    pub(crate) conns: &'a mut Slab<Conn>,
    pub(crate) pool: &'a mut Pool,
    pub(crate) agenda: &'a mut Agenda,
    pub(crate) mesh: &'a mut Mesh<P::Message>,
}

impl<P: Protocol + ?Sized> fmt::Debug for Context<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("core", &self.core)
            .field("now_us", &self.now_us)
            .field("draining", &self.draining)
            .field("conn", &self.conn())
            .finish_non_exhaustive()
    }
}

impl<P: Protocol + ?Sized> Context<'_, P> {
    /// The core (thread) this callback runs on.
    pub fn core(&self) -> u16 {
        self.core
    }

    /// How many serving cores there are (cores are numbered `0..cores()`).
    pub fn cores(&self) -> u16 {
        self.mesh.cores()
    }

    /// The core's clock in microseconds, read once per loop turn (monotonic, arbitrary epoch):
    /// cheap enough to use per message, e.g. to refresh a cached `Date` once per second.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// The engine is shutting down: the message in progress is the connection's last one. (An
    /// HTTP server says `Connection: close` in its answer.)
    pub fn draining(&self) -> bool {
        self.draining
    }

    /// This core's protocol state.
    pub fn state(&mut self) -> &mut P::CoreState {
        self.state
    }

    /// The connection this callback is about (`None` in `on_core_timer` and `on_message`). In
    /// `on_close` it is the connection that just closed: a stale handle.
    pub fn conn(&self) -> Option<ConnId> {
        self.own.map(|own| ConnId {
            core: self.core,
            slot: own.slot as u32,
            id: own.id,
        })
    }

    /// The replies of the connection whose `open` or `on_input` this is. They are bounded by
    /// reading less: past `max_queued_bytes` the engine stops reading from the connection until
    /// they drain.
    ///
    /// # Panics
    /// In any other callback: write there with [`Context::push`] or [`Context::reply`].
    pub fn output(&mut self) -> Output<'_> {
        let own = self
            .own
            .filter(|own| own.output)
            .expect("Context::output is for the connection of `open` or `on_input`; use push");
        self.conns[own.slot].out.output(self.pool)
    }

    /// Marks one reply of this callback's connection as owed, to be written later with
    /// [`Context::reply`]. While a connection owes a reply it is never closed as idle (the
    /// protocol sets its own deadline with a timer), and a close waits for the reply.
    ///
    /// # Panics
    /// In a callback that is about no connection (`on_core_timer`, `on_message`).
    pub fn defer(&mut self) -> ConnId {
        let conn = self
            .conn()
            .expect("Context::defer needs a connection's callback");
        if let Some(c) = self.conns.get_mut(conn.slot as usize) {
            if c.id == conn.id {
                c.owed += 1;
            }
        }
        conn
    }

    /// Writes one message to connection `to` of this core, unasked (a push). It is sent after
    /// everything written to `to` before. Output pushed into a connection is bounded: the write
    /// that passes `max_queued_bytes` closes it as `slow_consumer`.
    pub fn push(&mut self, to: ConnId, message: &[u8]) -> Result<(), WriteError> {
        self.push_with(to, |buf| buf.extend_from_slice(message))
    }

    /// [`Context::push`] with a writer that appends the message (at least one byte).
    pub fn push_with(
        &mut self,
        to: ConnId,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), WriteError> {
        let slot = self.writable(to)?;
        let conn = &mut self.conns[slot];
        conn.out.output(self.pool).push_with(write);
        if conn.out.queued_bytes() > self.max_queued_bytes {
            conn.output_closed = true;
            self.agenda
                .request(slot, conn.id, Request::Close(Intent::SlowConsumer));
            return Err(WriteError::SlowConsumer);
        }
        self.agenda.mark_flush(conn, slot);
        Ok(())
    }

    /// Writes a reply that was owed ([`Context::defer`]): a push that also settles one owed
    /// reply. When none is owed any more, the idle clock starts again.
    pub fn reply(&mut self, to: ConnId, message: &[u8]) -> Result<(), WriteError> {
        self.reply_with(to, |buf| buf.extend_from_slice(message))
    }

    /// [`Context::reply`] with a writer that appends the message.
    pub fn reply_with(
        &mut self,
        to: ConnId,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), WriteError> {
        let slot = self.writable(to)?;
        let conn = &mut self.conns[slot];
        if conn.owed > 0 {
            conn.owed -= 1;
            if conn.owed == 0 {
                // Idle from now on unless the peer sends more: the idle clock starts again.
                conn.last_active_us = self.now_us;
                let idle_at_us = self.now_us + self.idle_timeout_us;
                self.agenda.check_by(conn, slot, idle_at_us);
            }
        }
        self.push_with(to, write)
    }

    /// Closes connection `conn` after the output written to it so far, the server's own
    /// decision (cause `local_close`); writes to it fail from now on.
    pub fn close(&mut self, conn: ConnId) -> Result<(), WriteError> {
        self.request_close(conn, Intent::LocalClose)
    }

    /// Closes connection `conn` after the output written to it so far because its peer asked
    /// to, in a message answered later (cause `peer_close`); writes to it fail from now on.
    pub fn close_as_asked(&mut self, conn: ConnId) -> Result<(), WriteError> {
        self.request_close(conn, Intent::PeerClose)
    }

    fn request_close(&mut self, conn: ConnId, intent: Intent) -> Result<(), WriteError> {
        let slot = self.writable(conn)?;
        let c = &mut self.conns[slot];
        c.output_closed = true;
        let intent = if self.draining && intent == Intent::LocalClose {
            Intent::Shutdown
        } else {
            intent
        };
        self.agenda.request(slot, c.id, Request::Close(intent));
        Ok(())
    }

    /// Offers connection `conn` the input it held ([`Step::hold`]) again, once this callback
    /// returns, and reads from it again (unless it holds again). Nothing happens if it holds
    /// nothing.
    ///
    /// [`Step::hold`]: crate::Step::hold
    pub fn resume(&mut self, conn: ConnId) -> Result<(), WriteError> {
        match self.find(conn, |_| true) {
            Ok(slot) => {
                self.agenda.request(slot, conn.id, Request::Resume);
                Ok(())
            }
            Err(Some(core)) => Err(WriteError::OtherCore { core }),
            Err(None) => Err(WriteError::Closed),
        }
    }

    /// Arms timer `timer` of connection `conn` to fire `after` from now
    /// ([`Protocol::on_timer`]), replacing its previous deadline. Costs no allocation.
    pub fn set_timer(
        &mut self,
        conn: ConnId,
        timer: usize,
        after: Duration,
    ) -> Result<(), TimerError> {
        check_timer(timer, CONN_TIMERS)?;
        let at_us = self.deadline(after)?;
        let slot = self.timed(conn)?;
        self.conns[slot].timers[timer] = at_us;
        self.agenda.check_by(&mut self.conns[slot], slot, at_us);
        Ok(())
    }

    /// Disarms timer `timer` of connection `conn` (nothing happens if it is not armed).
    pub fn cancel_timer(&mut self, conn: ConnId, timer: usize) -> Result<(), TimerError> {
        check_timer(timer, CONN_TIMERS)?;
        let slot = self.timed(conn)?;
        self.conns[slot].timers[timer] = u64::MAX;
        Ok(())
    }

    /// Arms core timer `timer` to fire `after` from now ([`Protocol::on_core_timer`]).
    pub fn set_core_timer(&mut self, timer: usize, after: Duration) -> Result<(), TimerError> {
        check_timer(timer, CORE_TIMERS)?;
        self.agenda.core_timers[timer] = self.deadline(after)?;
        Ok(())
    }

    /// Disarms core timer `timer`.
    pub fn cancel_core_timer(&mut self, timer: usize) -> Result<(), TimerError> {
        check_timer(timer, CORE_TIMERS)?;
        self.agenda.core_timers[timer] = u64::MAX;
        Ok(())
    }

    /// Queues `message` for core `core` ([`Protocol::on_message`] there; this core included).
    /// Messages from one core to another arrive in the order sent. A full queue is refused,
    /// never waited for: the message comes back in the error.
    pub fn send(&mut self, core: u16, message: P::Message) -> Result<(), SendError<P::Message>> {
        self.mesh.send(core, message)
    }

    /// Queues a copy of `message` for every core, this one included.
    pub fn broadcast(&mut self, message: P::Message) -> Result<(), BroadcastError>
    where
        P::Message: Clone,
    {
        self.mesh.broadcast(message)
    }

    /// The slot of `to` if it is a live connection of this core that takes output.
    fn writable(&self, to: ConnId) -> Result<usize, WriteError> {
        self.find(to, Conn::accepts_output)
            .map_err(|other| match other {
                Some(core) => WriteError::OtherCore { core },
                None => WriteError::Closed,
            })
    }

    /// The slot of `conn` if it is a live connection of this core whose timers still fire.
    fn timed(&self, conn: ConnId) -> Result<usize, TimerError> {
        self.find(conn, Conn::timers_fire)
            .map_err(|other| match other {
                Some(core) => TimerError::OtherCore { core },
                None => TimerError::Closed,
            })
    }

    /// The slot of `conn` if it is still open on this core and `usable`; else the core it
    /// belongs to if another (`Err(Some)`), or that it is gone or unusable (`Err(None)`).
    fn find(&self, conn: ConnId, usable: impl Fn(&Conn) -> bool) -> Result<usize, Option<u16>> {
        if conn.core != self.core {
            return Err(Some(conn.core));
        }
        let slot = conn.slot as usize;
        match self.conns.get(slot) {
            Some(c) if c.id == conn.id && usable(c) => Ok(slot),
            _ => Err(None),
        }
    }

    fn deadline(&self, after: Duration) -> Result<u64, TimerError> {
        if after > TIMER_AFTER_MAX {
            return Err(TimerError::TooFar);
        }
        // At least 1 µs: a timer set from its own callback fires on a later pass, never in a loop.
        Ok(self.now_us + (after.as_micros() as u64).max(1))
    }
}

fn check_timer(timer: usize, timers: usize) -> Result<(), TimerError> {
    if timer < timers {
        Ok(())
    } else {
        Err(TimerError::NoSuchTimer { timer, timers })
    }
}
