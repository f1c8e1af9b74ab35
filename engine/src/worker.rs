//! One core: its ring, provided buffers, listener, connections and timers, and the event loop.
//!
//! Life of a connection: accepted by the multishot accept → multishot recv armed → data CQEs
//! decoded, replies queued and sent in one batch per loop turn → the recv's final CQE (or the
//! engine's own decision, recorded as an intent and carried out by an async cancel) classified
//! once → replies flushed → fd closed → one close record.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::classify::{classify, Cause, FinalRecv, Intent, Phase, Rearm, Verdict};
use crate::config::{ClassifyMode, Settings, BATCH_WANT, CQ_PER_SQ};
use crate::conn::{Closing, Conn, RecvState, ReplyPool};
use crate::metrics::CoreMetrics;
use crate::record::{CloseLogSender, CloseRecord, RECORD_BATCH_MAX, RECORD_HOLD_MAX_US};
use crate::sys::{socket, Batch, BufRing, Completion, Ring, RingError, RingMode};
use crate::timers::{Deadlines, Due};
use crate::token::{Op, Token, GENERATION_MASK};

/// The buffer group id of the core's provided-buffer ring.
const BUFFER_GROUP: u16 = 0;
/// After EMFILE/ENFILE/ENOMEM on accept, wait this long before accepting again.
const ACCEPT_RETRY_DELAY_US: u64 = 10_000;
/// Unread input discarded before a local close, so that the close sends FIN, not RST.
const DISCARD_BEFORE_CLOSE_MAX: usize = 64 * 1024;
/// The longest a local close reads and discards input so that the peer gets every reply before
/// the close (never longer than the idle timeout either).
const LINGER_MAX_US: u64 = 2_000_000;
/// How often a lingering close checks whether the peer has acknowledged everything.
const LINGER_POLL_US: u64 = 10_000;
/// After the shutdown bound, how long cancelled sends get to complete before the core exits.
const SHUTDOWN_GRACE_US: u64 = 1_000_000;
/// A recv that ended with -ENOBUFS waits in line; the next pass also looks again after this long
/// even if nothing else completes.
const STARVED_RETRY_US: u64 = 1_000;

/// What a core needs from the process.
#[derive(Debug)]
pub struct WorkerSetup {
    pub core: u16,
    pub cpu: Option<usize>,
    pub listener: OwnedFd,
    pub settings: Arc<Settings>,
    pub metrics: Arc<[CoreMetrics]>,
    pub close_log: Option<CloseLogSender>,
    /// Written by the main thread on SIGINT/SIGTERM, after setting `stop`.
    pub wake: Arc<OwnedFd>,
    pub stop: Arc<AtomicBool>,
}

#[derive(Clone, Copy, Debug)]
struct Drain {
    /// Stop waiting for replies to flush.
    force_at_us: u64,
    /// Exit even if cancelled operations have not completed.
    exit_at_us: u64,
}

#[derive(Debug)]
pub struct Worker {
    core: u16,
    ring: Ring,
    bufs: BufRing,
    conns: Slab<Conn>,
    deadlines: Deadlines,
    completions: Vec<Completion>,
    flush_list: Vec<(usize, u32)>,
    /// Connections whose recv ended with -ENOBUFS, (slot, generation) in arrival order. Re-armed
    /// at most a ring's worth per pass: re-arming thousands at once while the ring is empty only
    /// fails them all again, a storm of -ENOBUFS that starves everyone.
    starved: VecDeque<(usize, u32)>,
    pool: ReplyPool,
    listener: Option<OwnedFd>,
    accept_armed: bool,
    accept_retry_us: Option<u64>,
    wake: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    epoch: Instant,
    now_us: u64,
    next_conn_id: u64,
    next_generation: u32,
    settings: Arc<Settings>,
    metrics: Arc<[CoreMetrics]>,
    close_log: Option<CloseLogSender>,
    records: Vec<CloseRecord>,
    /// When the oldest record in `records` must be handed to the writer.
    records_due_us: Option<u64>,
    drain: Option<Drain>,
    batch: Option<Batch>,
}

impl Worker {
    /// Sets up the core's ring and buffers on the calling thread (the ring's only submitter).
    pub fn new(setup: WorkerSetup) -> Result<Worker, RingError> {
        if let Some(cpu) = setup.cpu {
            if let Err(error) = socket::pin_current_thread(cpu) {
                tracing::warn!(core = setup.core, cpu, %error, "could not pin the core's thread");
            }
        }
        let sq_entries = setup.settings.ring_entries;
        let batch_wait_us = setup.settings.batch_wait_us;
        let batch = (batch_wait_us > 0).then_some(Batch {
            want: BATCH_WANT,
            min_wait_us: batch_wait_us,
        });
        let ring = Ring::new(sq_entries, CQ_PER_SQ * sq_entries)?;
        let bufs = BufRing::new(
            &ring,
            BUFFER_GROUP,
            setup.settings.buffers,
            setup.settings.buffer_size,
        )?;
        Ok(Worker {
            core: setup.core,
            ring,
            bufs,
            conns: Slab::new(),
            deadlines: Deadlines::default(),
            completions: Vec::with_capacity((CQ_PER_SQ * sq_entries) as usize),
            flush_list: Vec::new(),
            starved: VecDeque::new(),
            pool: ReplyPool::default(),
            listener: Some(setup.listener),
            accept_armed: false,
            accept_retry_us: None,
            wake: setup.wake,
            stop: setup.stop,
            epoch: Instant::now(),
            now_us: 0,
            next_conn_id: 0,
            next_generation: 0,
            settings: setup.settings,
            metrics: setup.metrics,
            close_log: setup.close_log,
            records: Vec::with_capacity(RECORD_BATCH_MAX),
            records_due_us: None,
            drain: None,
            batch,
        })
    }

    pub fn ring_mode(&self) -> RingMode {
        self.ring.mode()
    }

    fn metrics(&self) -> &CoreMetrics {
        &self.metrics[usize::from(self.core)]
    }

    /// Serves until a drain finishes.
    pub fn run(mut self) -> io::Result<()> {
        self.arm_accept()?;
        self.ring
            .poll_readable(self.wake.as_raw_fd(), Token::global(Op::Wake).encode())?;
        loop {
            let timeout = self.wait_timeout();
            self.ring.submit_and_wait(timeout, self.batch)?;
            self.now_us = self.epoch.elapsed().as_micros() as u64;
            let mut completions = std::mem::take(&mut self.completions);
            self.ring.reap(&mut completions);
            for completion in &completions {
                self.on_completion(completion)?;
            }
            self.completions = completions;
            self.on_timers()?;
            self.rearm_starved()?;
            self.flush()?;
            if self.records_due_us.is_some_and(|due| self.now_us >= due) {
                self.send_records();
            }
            if self.stop.load(Ordering::Relaxed) && self.drain.is_none() {
                self.begin_drain()?;
            }
            if let Some(drain) = self.drain {
                if self.conns.is_empty() {
                    break;
                }
                if self.now_us >= drain.exit_at_us {
                    tracing::warn!(
                        core = self.core,
                        open = self.conns.len(),
                        "exiting with operations in flight"
                    );
                    self.close_all_now();
                    // Recvs may still be armed: leave the buffer ring registered, and its
                    // memory mapped (BufRing's Drop leaks it), until the process exits.
                    self.send_records();
                    return Ok(());
                }
            }
        }
        self.send_records();
        self.ring.submit()?;
        // Every connection closed after its recv's final CQE: the kernel no longer picks buffers.
        self.bufs.unregister(&self.ring)?;
        Ok(())
    }

    fn wait_timeout(&self) -> Option<Duration> {
        let drain = self.drain.map(|d| {
            if self.now_us < d.force_at_us {
                d.force_at_us
            } else {
                d.exit_at_us
            }
        });
        let starved = (!self.starved.is_empty()).then_some(self.now_us + STARVED_RETRY_US);
        let next = [
            self.deadlines.next_us(),
            self.accept_retry_us,
            drain,
            starved,
            self.records_due_us,
        ]
        .into_iter()
        .flatten()
        .min()?;
        let now = self.epoch.elapsed().as_micros() as u64;
        Some(Duration::from_micros(next.saturating_sub(now)))
    }

    fn on_completion(&mut self, completion: &Completion) -> io::Result<()> {
        let Some(token) = Token::decode(completion.user_data()) else {
            unreachable!("user_data {:#x} was never issued", completion.user_data());
        };
        match token.op {
            Op::Accept => self.on_accept(completion),
            Op::Recv => self.on_recv(token, completion),
            Op::Send => self.on_send(token, completion),
            // The cancelled operation's own final CQE carries the news.
            Op::Cancel => Ok(()),
            Op::Wake => {
                self.stop.store(true, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    // ---- accept ----

    fn arm_accept(&mut self) -> io::Result<()> {
        if let Some(listener) = &self.listener {
            self.ring
                .accept_multi(listener.as_raw_fd(), Token::global(Op::Accept).encode())?;
            self.accept_armed = true;
            self.accept_retry_us = None;
        }
        Ok(())
    }

    fn on_accept(&mut self, completion: &Completion) -> io::Result<()> {
        if !completion.more() {
            self.accept_armed = false;
        }
        let res = completion.res();
        if res >= 0 {
            let fd = socket::adopt_accepted(res);
            if self.drain.is_some() || self.conns.len() >= self.settings.max_connections as usize {
                self.metrics().rejected.add(1);
                drop(fd);
            } else {
                self.open(fd)?;
            }
        } else {
            match -res {
                libc::ECANCELED if self.drain.is_some() => return Ok(()),
                errno @ (libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS) => {
                    self.metrics().count_accept_error(errno);
                    tracing::debug!(
                        core = self.core,
                        errno = socket::errno_name(errno),
                        "accept failed; retrying shortly"
                    );
                    if !completion.more() {
                        self.accept_retry_us = Some(self.now_us + ACCEPT_RETRY_DELAY_US);
                    }
                }
                errno => {
                    self.metrics().count_accept_error(errno);
                    tracing::warn!(
                        core = self.core,
                        errno = socket::errno_name(errno),
                        "accept failed"
                    );
                }
            }
        }
        if !self.accept_armed && self.accept_retry_us.is_none() && self.drain.is_none() {
            self.arm_accept()?;
        }
        Ok(())
    }

    fn open(&mut self, fd: OwnedFd) -> io::Result<()> {
        let peer = socket::peer_addr(&fd);
        let generation = self.next_generation;
        self.next_generation = (generation + 1) & GENERATION_MASK;
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        let slot = self.conns.insert(Conn::new(
            fd,
            generation,
            id,
            peer,
            self.settings.max_frame,
            self.now_us,
        ));
        self.metrics().accepted.add(1);
        self.metrics().open.add(1);
        self.arm_recv(slot)?;
        self.schedule(slot);
        Ok(())
    }

    // ---- recv ----

    fn arm_recv(&mut self, slot: usize) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        assert_eq!(conn.recv, RecvState::Stopped);
        let token = Token::new(Op::Recv, slot, conn.generation).encode();
        self.ring
            .recv_multi(conn.fd.as_raw_fd(), self.bufs.group(), token)?;
        conn.recv = RecvState::Armed;
        Ok(())
    }

    /// Re-arms the recvs that ran out of buffers, oldest first, at most as many as the ring has
    /// buffers. One that closed or got an intent meanwhile was classified without them.
    fn rearm_starved(&mut self) -> io::Result<()> {
        for _ in 0..self.starved.len().min(usize::from(self.bufs.count())) {
            let Some((slot, generation)) = self.starved.pop_front() else {
                break;
            };
            let waiting = self.conns.get(slot).is_some_and(|c| {
                c.generation == generation
                    && c.recv == RecvState::Stopped
                    && c.intent == Intent::None
                    && c.closing.is_none()
            });
            if waiting {
                self.arm_recv(slot)?;
            }
        }
        Ok(())
    }

    fn cancel_recv(&mut self, slot: usize) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        assert_eq!(conn.recv, RecvState::Armed);
        let target = Token::new(Op::Recv, slot, conn.generation).encode();
        self.ring.cancel(
            target,
            Token::new(Op::Cancel, slot, conn.generation).encode(),
        )?;
        conn.recv = RecvState::Cancelling;
        Ok(())
    }

    fn on_recv(&mut self, token: Token, completion: &Completion) -> io::Result<()> {
        let slot = token.slot as usize;
        let res = completion.res();
        if let Some(bid) = completion.buffer_id() {
            let len = usize::try_from(res).expect("a CQE that names a buffer has res > 0");
            if let Some(conn) = live(&mut self.conns, token) {
                let fed = conn.feed(self.bufs.filled(bid, len), &mut self.pool, self.now_us);
                let metrics = &self.metrics[usize::from(self.core)];
                metrics.bytes_received.add(len as u64);
                metrics.frames_received.add(fed.frames);
            }
            self.bufs.recycle(bid);
        }
        let Some(conn) = live(&mut self.conns, token) else {
            // Cannot happen: a connection outlives its recv. Nothing to do but ignore it.
            tracing::error!(
                core = self.core,
                ?token,
                res,
                "recv completion for a closed connection"
            );
            return Ok(());
        };
        if conn.replies_pending() {
            mark_flush(&mut self.flush_list, conn, slot);
        }
        if !completion.more() {
            conn.recv = RecvState::Stopped;
            if conn.linger_until_us.is_some() {
                // The lingering read ended (the peer closed, or the buffers ran dry): close.
                return self.try_finish(slot, token.generation);
            }
            conn.last_recv_res = res;
            return self.on_recv_final(slot);
        }
        if conn.recv == RecvState::Armed && conn.linger_until_us.is_none() {
            if conn.intent.close_cause().is_some() {
                self.cancel_recv(slot)?;
            } else if conn.intent == Intent::None
                && conn.queued_bytes() > self.settings.max_queued_bytes
            {
                // The peer does not read its replies: stop reading from it until they drain.
                conn.intent = Intent::Pause;
                self.cancel_recv(slot)?;
            }
        }
        self.schedule(slot);
        Ok(())
    }

    /// The recv stopped (its final CQE arrived, or it was stopped already): classify.
    fn on_recv_final(&mut self, slot: usize) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        assert_eq!(conn.recv, RecvState::Stopped);
        if conn.last_recv_res == 0
            && conn.send_in_flight()
            && conn.intent.close_cause().is_none()
            && conn.send_errno.is_none()
        {
            // res 0 is a FIN, or an RST whose error the send in flight consumed: that send's
            // completion decides (see on_send).
            conn.classify_pending = true;
            return Ok(());
        }
        let verdict = classify(FinalRecv {
            res: conn.last_recv_res,
            intent: conn.intent,
            partial_bytes: conn.decoder.partial_len(),
            send_errno: conn.send_errno,
        });
        match verdict {
            Verdict::Rearm(reason) => {
                self.metrics().count_rearm(reason);
                if reason == Rearm::Enobufs {
                    // No buffer now: wait in line (see rearm_starved).
                    self.starved.push_back((slot, self.conns[slot].generation));
                    return Ok(());
                }
                self.arm_recv(slot)
            }
            Verdict::Paused => self.maybe_resume(slot),
            Verdict::Close(cause) => {
                self.decide_close(slot, cause)?;
                self.try_finish(slot, self.conns[slot].generation)
            }
        }
    }

    /// Reading was paused for backpressure: resume once the replies have drained to half.
    fn maybe_resume(&mut self, slot: usize) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        if conn.intent == Intent::Pause
            && conn.recv == RecvState::Stopped
            && conn.closing.is_none()
            && conn.send_errno.is_none()
            && conn.queued_bytes() <= self.settings.max_queued_bytes / 2
        {
            conn.intent = Intent::None;
            self.arm_recv(slot)?;
        }
        Ok(())
    }

    fn decide_close(&mut self, slot: usize, cause: Cause) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        assert!(conn.closing.is_none(), "a connection is classified once");
        // The verdict's evidence: a failed send when no intent was recorded, else the recv.
        let res = match (conn.intent.close_cause(), conn.send_errno) {
            (None, Some(errno)) => -errno,
            _ => conn.last_recv_res,
        };
        let phase = Phase::of(conn.decoder.partial_len(), conn.replies_pending());
        conn.closing = Some(Closing { cause, phase, res });
        if cause == Cause::IdleTimeout && conn.replies_pending() {
            // Idle while replies wait: the peer does not read them; do not wait for it.
            self.abandon_flush(slot)?;
        }
        Ok(())
    }

    // ---- send ----

    fn flush(&mut self) -> io::Result<()> {
        let mut list = std::mem::take(&mut self.flush_list);
        for &(slot, generation) in &list {
            let Some(conn) = self
                .conns
                .get_mut(slot)
                .filter(|c| c.generation == generation)
            else {
                continue;
            };
            conn.in_flush_list = false;
            if conn.start_send(&mut self.pool) {
                let token = Token::new(Op::Send, slot, generation).encode();
                self.ring
                    .send(conn.fd.as_raw_fd(), &mut conn.inflight, token)?;
            }
        }
        list.clear();
        self.flush_list = list;
        Ok(())
    }

    fn on_send(&mut self, token: Token, completion: &Completion) -> io::Result<()> {
        let slot = token.slot as usize;
        let Some(conn) = live(&mut self.conns, token) else {
            unreachable!("a connection is never closed with a send in flight");
        };
        match conn.send_completed(completion, &mut self.pool, self.now_us) {
            Ok(sent) => {
                self.metrics[usize::from(self.core)]
                    .bytes_sent
                    .add(sent as u64);
                if conn.replies_pending() {
                    mark_flush(&mut self.flush_list, conn, slot);
                }
            }
            Err(errno) => {
                let abandoned = conn.abandon_flush && errno == libc::ECANCELED;
                if !abandoned {
                    conn.send_errno.get_or_insert(errno);
                }
                conn.drop_replies(&mut self.pool);
                if conn.closing.is_none() && !abandoned && conn.recv == RecvState::Armed {
                    // The peer is gone: stop the recv; its final CQE gets classified.
                    self.cancel_recv(slot)?;
                }
            }
        }
        let conn = &mut self.conns[slot];
        let waiting_for_this_send = std::mem::take(&mut conn.classify_pending);
        if conn.recv == RecvState::Stopped
            && conn.closing.is_none()
            && (waiting_for_this_send || conn.send_errno.is_some())
        {
            self.on_recv_final(slot)?;
        }
        if self
            .conns
            .get(slot)
            .is_some_and(|c| c.generation == token.generation)
        {
            self.maybe_resume(slot)?;
        }
        self.try_finish(slot, token.generation)
    }

    fn abandon_flush(&mut self, slot: usize) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        if conn.abandon_flush {
            return Ok(());
        }
        conn.abandon_flush = true;
        if conn.send_in_flight() {
            let target = Token::new(Op::Send, slot, conn.generation).encode();
            self.ring.cancel(
                target,
                Token::new(Op::Cancel, slot, conn.generation).encode(),
            )?;
        } else {
            conn.drop_replies(&mut self.pool);
        }
        Ok(())
    }

    // ---- close ----

    /// Closes the connection if it is classified, its recv stopped, and its replies are sent
    /// (or given up on).
    fn try_finish(&mut self, slot: usize, generation: u32) -> io::Result<()> {
        let Some(conn) = self
            .conns
            .get_mut(slot)
            .filter(|c| c.generation == generation)
        else {
            return Ok(());
        };
        let Some(closing) = conn.closing else {
            return Ok(());
        };
        if conn.recv != RecvState::Stopped || conn.send_in_flight() {
            return Ok(());
        }
        if conn.linger_until_us.is_none() {
            if conn.replies_pending() && !conn.abandon_flush && conn.send_errno.is_none() {
                mark_flush(&mut self.flush_list, conn, slot);
                return Ok(());
            }
            if conn.intent.close_cause().is_some()
                && conn.send_errno.is_none()
                && !conn.abandon_flush
            {
                // Our decision: FIN after the replies. Closing with unread input would send an
                // RST that throws away replies the peer has not received yet, so read (and
                // discard) until the peer has them all, it closes, or the linger bound passes.
                socket::discard_input(&conn.fd, DISCARD_BEFORE_CLOSE_MAX);
                let unacked = socket::unacked_bytes(&conn.fd);
                socket::shutdown_write(&conn.fd);
                if unacked > 0 {
                    let until_us = self.now_us + LINGER_MAX_US.min(self.settings.idle_timeout_us);
                    conn.linger_until_us = Some(until_us);
                    let at_us = self.now_us + LINGER_POLL_US;
                    conn.armed_check_us = at_us;
                    self.deadlines.push(Due {
                        at_us,
                        slot: slot as u32,
                        generation,
                    });
                    self.arm_recv(slot)?;
                    return Ok(());
                }
            }
        }
        let conn = self.conns.remove(slot);
        self.close(conn, closing);
        Ok(())
    }

    fn close(&mut self, mut conn: Conn, closing: Closing) {
        conn.drop_replies(&mut self.pool);
        let metrics = &self.metrics[usize::from(self.core)];
        metrics.open.sub(1);
        if self.settings.classify != ClassifyMode::Off {
            metrics.closed[closing.cause.index()].add(1);
        }
        if self.settings.classify == ClassifyMode::Log {
            let record = CloseRecord {
                core: self.core,
                conn: conn.id,
                tag: conn.tag,
                peer: conn.peer,
                cause: closing.cause,
                phase: closing.phase,
                res: closing.res,
                bytes_in: conn.bytes_in,
                bytes_out: conn.bytes_out,
                frames_in: conn.frames_in,
                frames_out: conn.frames_out,
                partial_bytes: conn.decoder.partial_len() as u64,
                duration_us: self.now_us.saturating_sub(conn.accepted_us),
            };
            record.emit_event();
            if self.close_log.is_some() {
                if self.records.is_empty() {
                    self.records_due_us = Some(self.now_us + RECORD_HOLD_MAX_US);
                }
                self.records.push(record);
                if self.records.len() >= RECORD_BATCH_MAX {
                    self.send_records();
                }
            }
        }
        // Dropping `conn` closes the fd: nothing of it is in flight any more.
    }

    fn send_records(&mut self) {
        self.records_due_us = None;
        if let Some(log) = &self.close_log {
            if !self.records.is_empty() {
                log.send(std::mem::replace(
                    &mut self.records,
                    Vec::with_capacity(RECORD_BATCH_MAX),
                ));
            }
        }
    }

    // ---- timers ----

    /// Makes sure the deadline heap holds a check no later than the connection's deadline.
    fn schedule(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let at_us = conn.deadline_us(self.settings.idle_timeout_us, self.settings.read_timeout_us);
        if at_us < conn.armed_check_us {
            conn.armed_check_us = at_us;
            self.deadlines.push(Due {
                at_us,
                slot: slot as u32,
                generation: conn.generation,
            });
        }
    }

    fn on_timers(&mut self) -> io::Result<()> {
        if let Some(at) = self.accept_retry_us {
            if at <= self.now_us && self.drain.is_none() {
                self.arm_accept()?;
            }
        }
        if let Some(drain) = self.drain {
            if self.now_us >= drain.force_at_us {
                let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
                for slot in slots {
                    self.stop_waiting(slot)?;
                }
            }
        }
        while let Some(due) = self.deadlines.pop_due(self.now_us) {
            let slot = due.slot as usize;
            let Some(conn) = self
                .conns
                .get_mut(slot)
                .filter(|c| c.generation == due.generation)
            else {
                continue;
            };
            if due.at_us != conn.armed_check_us {
                continue; // superseded by an earlier check
            }
            conn.armed_check_us = u64::MAX;
            if let Some(until_us) = conn.linger_until_us {
                // The peer has every reply and our FIN once nothing is unacknowledged.
                if self.now_us >= until_us || socket::unacked_bytes(&conn.fd) == 0 {
                    self.stop_waiting(slot)?;
                } else {
                    let at_us = (self.now_us + LINGER_POLL_US).min(until_us);
                    conn.armed_check_us = at_us;
                    self.deadlines.push(Due {
                        at_us,
                        slot: due.slot,
                        generation: due.generation,
                    });
                }
                continue;
            }
            let deadline =
                conn.deadline_us(self.settings.idle_timeout_us, self.settings.read_timeout_us);
            if deadline > self.now_us {
                self.schedule(slot); // traffic came since: check again later
            } else {
                self.on_deadline(slot)?;
            }
        }
        Ok(())
    }

    fn on_deadline(&mut self, slot: usize) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        let generation = conn.generation;
        if conn.closing.is_some() {
            // A flush that made no progress for the idle timeout, or a linger that ran out:
            // close without waiting longer.
            return self.stop_waiting(slot);
        }
        if conn.intent.close_cause().is_none() && conn.send_errno.is_none() {
            // Record the intent first: the cancel's -ECANCELED alone says nothing.
            conn.intent = conn.timeout_intent();
            self.stop_recv(slot)?;
        }
        // If the close is still under way, look again after another idle timeout.
        if let Some(conn) = self
            .conns
            .get_mut(slot)
            .filter(|c| c.generation == generation)
        {
            let at_us = self.now_us + self.settings.idle_timeout_us;
            conn.armed_check_us = at_us;
            self.deadlines.push(Due {
                at_us,
                slot: slot as u32,
                generation,
            });
        }
        Ok(())
    }

    /// Closes a connection that is only waiting for its replies to flush or its linger to end.
    fn stop_waiting(&mut self, slot: usize) -> io::Result<()> {
        let generation = self.conns[slot].generation;
        self.abandon_flush(slot)?;
        if self.conns[slot].linger_until_us.is_some() && self.conns[slot].recv == RecvState::Armed {
            self.cancel_recv(slot)?;
        }
        self.try_finish(slot, generation)
    }

    /// After an intent was recorded: cancel the recv, or classify now if it is already stopped.
    fn stop_recv(&mut self, slot: usize) -> io::Result<()> {
        match self.conns[slot].recv {
            RecvState::Armed => self.cancel_recv(slot),
            RecvState::Cancelling => Ok(()),
            RecvState::Stopped => self.on_recv_final(slot),
        }
    }

    // ---- shutdown ----

    fn begin_drain(&mut self) -> io::Result<()> {
        let timeout = self.settings.shutdown_timeout_us;
        self.drain = Some(Drain {
            force_at_us: self.now_us + timeout,
            exit_at_us: self.now_us + timeout + SHUTDOWN_GRACE_US,
        });
        if self.accept_armed {
            let target = Token::global(Op::Accept).encode();
            self.ring
                .cancel(target, Token::global(Op::Cancel).encode())?;
        }
        // The accept request holds its own reference; new connections now go to no one here.
        self.listener = None;
        self.accept_retry_us = None;
        let slots: Vec<usize> = self.conns.iter().map(|(slot, _)| slot).collect();
        tracing::info!(core = self.core, open = slots.len(), "draining");
        for slot in slots {
            let conn = &mut self.conns[slot];
            if conn.closing.is_none()
                && conn.intent.close_cause().is_none()
                && conn.send_errno.is_none()
            {
                conn.intent = Intent::Shutdown;
                self.stop_recv(slot)?;
            }
        }
        Ok(())
    }

    /// Last resort after the shutdown grace: record every remaining connection and drop it
    /// (a send still in flight leaks its buffer rather than free memory the kernel may read).
    fn close_all_now(&mut self) {
        for mut conn in std::mem::take(&mut self.conns)
            .into_iter()
            .map(|(_, conn)| conn)
        {
            let closing = conn.closing.unwrap_or(Closing {
                cause: Cause::Shutdown,
                phase: Phase::of(conn.decoder.partial_len(), conn.replies_pending()),
                res: conn.last_recv_res,
            });
            conn.intent = Intent::Shutdown;
            // A SendBuf dropped in flight leaks its bytes instead of freeing them.
            drop(std::mem::take(&mut conn.inflight));
            self.close(conn, closing);
        }
    }
}

/// The connection a token names, if it is still the one the token was issued for.
fn live(conns: &mut Slab<Conn>, token: Token) -> Option<&mut Conn> {
    conns
        .get_mut(token.slot as usize)
        .filter(|conn| conn.generation == token.generation)
}

fn mark_flush(list: &mut Vec<(usize, u32)>, conn: &mut Conn, slot: usize) {
    if !conn.in_flush_list {
        conn.in_flush_list = true;
        list.push((slot, conn.generation));
    }
}

/// Sets up the core, reports how it went, and serves.
pub fn run(setup: WorkerSetup, ready: impl FnOnce(Result<RingMode, RingError>)) -> io::Result<()> {
    match Worker::new(setup) {
        Ok(worker) => {
            ready(Ok(worker.ring_mode()));
            worker.run()
        }
        Err(error) => {
            ready(Err(error));
            Ok(())
        }
    }
}
