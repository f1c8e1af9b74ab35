//! Finishing a connection once it is classified: flush its replies, send FIN and linger when the
//! close was our decision, then remove it and produce its close record — batched to the log
//! writer, at most `RECORD_HOLD_MAX_US` after the close.

use std::io;

use super::Core;
use crate::config::ClassifyMode;
use crate::conn::{Closing, Conn, Finish};
use crate::protocol_api::Protocol;
use crate::record::{CloseLogSender, CloseRecord, RECORD_BATCH_MAX, RECORD_HOLD_MAX_US};
use crate::sys::socket;

/// Unread input discarded before a local close, so that the close sends FIN, not RST.
const DISCARD_BEFORE_CLOSE_MAX: usize = 64 * 1024;
/// The longest a local close reads and discards input so that the peer gets every reply before
/// the close (never longer than the idle timeout either).
const LINGER_MAX_US: u64 = 2_000_000;
/// How often a lingering close checks whether the peer has acknowledged everything.
pub(super) const LINGER_POLL_US: u64 = 10_000;

impl<P: Protocol> Core<P> {
    /// Closes the connection if it is classified, nothing is in flight and its replies are sent
    /// (or given up); else does the next thing that takes it there.
    pub(super) fn finish(&mut self, slot: usize) -> io::Result<()> {
        let facts = self.facts(slot);
        match self.conns[slot].life.finish(facts) {
            Finish::Wait => Ok(()),
            Finish::Flush => {
                self.agenda.mark_flush(&mut self.conns[slot], slot);
                Ok(())
            }
            Finish::Fin => self.fin(slot),
            Finish::Close(closing) => {
                self.close(slot, closing);
                Ok(())
            }
        }
    }

    /// Our decision: FIN after the replies. Closing with unread input would send an RST that
    /// throws away replies the peer has not received yet, so read (and discard) until the peer
    /// has them all, it closes, or the linger bound passes.
    fn fin(&mut self, slot: usize) -> io::Result<()> {
        let conn = &self.conns[slot];
        socket::discard_input(&conn.fd, DISCARD_BEFORE_CLOSE_MAX);
        let unacked = socket::unacked_bytes(&conn.fd);
        socket::shutdown_write(&conn.fd);
        let closing = conn.life.closing().expect("FIN only once classified");
        if unacked == 0 {
            self.close(slot, closing);
            return Ok(());
        }
        let until_us = self.now_us + LINGER_MAX_US.min(self.settings.idle_timeout_us);
        self.agenda
            .check_at(&mut self.conns[slot], slot, self.now_us + LINGER_POLL_US);
        let action = self.conns[slot].life.linger(until_us);
        self.apply(slot, action)
    }

    /// Removes the connection (closing its socket), produces its record and hands the
    /// session to the protocol's `on_close`. A send still in flight (only when a core must stop
    /// at once) stays the ring's.
    pub(super) fn close(&mut self, slot: usize, closing: Closing) {
        let mut conn = self.conns.remove(slot);
        // None only if the protocol's `open` panicked (the core is failing).
        let session = self.sessions.try_remove(slot);
        if conn.out.in_flight().is_none() {
            conn.drop_replies(&mut self.pool);
        }
        let record = self.record(&conn, session.as_ref(), closing);
        let metrics = self.metrics();
        metrics.open.sub(1);
        if self.settings.classify != ClassifyMode::Off {
            metrics.closed[closing.cause.index()].add(1);
        }
        if self.settings.classify == ClassifyMode::Log {
            record.emit_event();
            self.records.push(record, self.now_us);
        }
        self.pool.give(std::mem::take(&mut conn.tail));
        // Dropping `conn` closes the socket (an operation still in flight holds its own
        // reference to the file, so it cannot touch another socket).
        let id = conn.id;
        drop(conn);
        if let Some(session) = session {
            self.call_close(slot, id, session, &record);
        }
    }

    fn record(&self, conn: &Conn, session: Option<&P::Session>, closing: Closing) -> CloseRecord {
        CloseRecord {
            core: self.core,
            conn: conn.id,
            tag: session.and_then(|session| self.proto.tag(session)),
            peer: conn.peer,
            cause: closing.cause,
            phase: closing.phase,
            res: closing.res,
            bytes_in: conn.bytes_in,
            bytes_out: conn.bytes_out,
            frames_in: conn.frames_in,
            frames_out: conn.frames_out,
            partial_bytes: conn.tail.len() as u64,
            duration_us: self.now_us.saturating_sub(conn.accepted_us),
        }
    }

    /// Hands the records gathered so far to the log writer.
    pub(super) fn send_records(&mut self) {
        self.records.send();
    }

    /// The core is done: every record it holds goes to the writer, and the writer no longer
    /// waits for this core (it finishes once every core let go).
    pub(super) fn finish_records(&mut self) {
        self.records.send();
        self.records.log = None;
    }
}

/// Close records waiting in a core for the next hand-over to the writer. Handing each over at
/// once woke the writer and wrote once per close: 18% of a short connection's CPU.
#[derive(Debug)]
pub(crate) struct Records {
    log: Option<CloseLogSender>,
    batch: Vec<CloseRecord>,
    /// When the oldest record in `batch` must be handed over.
    due_us: Option<u64>,
}

impl Records {
    pub fn new(log: Option<CloseLogSender>) -> Records {
        Records {
            log,
            batch: Vec::new(),
            due_us: None,
        }
    }

    pub fn push(&mut self, record: CloseRecord, now_us: u64) {
        if self.log.is_none() {
            return;
        }
        if self.batch.is_empty() {
            self.due_us = Some(now_us + RECORD_HOLD_MAX_US);
        }
        self.batch.push(record);
        if self.batch.len() >= RECORD_BATCH_MAX {
            self.send();
        }
    }

    pub fn due_us(&self) -> Option<u64> {
        self.due_us
    }

    pub fn due(&self, now_us: u64) -> bool {
        self.due_us.is_some_and(|due| now_us >= due)
    }

    pub fn send(&mut self) {
        self.due_us = None;
        if let Some(log) = &self.log {
            if !self.batch.is_empty() {
                log.send(std::mem::replace(
                    &mut self.batch,
                    Vec::with_capacity(RECORD_BATCH_MAX),
                ));
            }
        }
    }
}
