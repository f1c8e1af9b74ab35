//! The life of a connection: send and recv completions, reply checks, the end its close mode
//! asks for, deadlines, and the final bookkeeping when its socket closes.

use std::io;
use std::net::Shutdown;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::stats::errno_name;
use engine::sys::{Completion, Target};
use engine::token::Token;

use super::conn::{Conn, RecvState, Step};
use super::Worker;
use crate::mix::CloseMode;
use crate::stats::{Outcome, Stats, TagResult};

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl Worker<'_> {
    /// Closed loop and churn: keeps the pipeline full (open loop is fed by the schedule).
    pub(super) fn top_up(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if self.plan.request_rate.is_some()
            || conn.step != Step::Running
            || conn.spec.mode == CloseMode::Hold
            || (self.stopping && conn.spec.requests.is_none())
        {
            return;
        }
        while conn.outstanding.len() < self.plan.pipeline && conn.may_request() {
            conn.queue_request(&self.plan.wire, self.now_ns, self.now_ns);
            self.stats.count_request();
        }
    }

    /// Every connection's first send carries its tag: the frame protocol's HELLO, or HTTP's
    /// first request (`x-client-tag`). A connection whose shape queues no request when it opens
    /// (open loop, hold) sends one anyway over HTTP, so that it connects and is tagged.
    pub(super) fn greet(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if conn.pending.is_empty() {
            conn.queue_request(&self.plan.wire, self.now_ns, self.now_ns);
            self.stats.count_request();
        }
    }

    /// Starts a send of the queued bytes if none is in flight.
    pub(super) fn flush(&mut self, slot: usize) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        if let Some(buf) = conn.next_send() {
            let token = Token::new(slot, conn.generation).encode();
            conn.send_in_flight = Some(self.ring.send(&conn.socket, buf, token)?);
        }
        Ok(())
    }

    pub(super) fn on_send(&mut self, slot: usize, completion: &mut Completion) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        let buf = completion
            .take_sent()
            .expect("a send completion hands its buffer back");
        conn.send_returned(buf);
        let res = completion.res();
        // A send issued while the connect was in progress completes once the connection is
        // established, with the bytes taken, or fails with the connect's error, having sent
        // nothing: only the former counts as sent.
        self.stats.count_sent(res);
        if res < 0 {
            let errno = -res;
            conn.pending.clear();
            conn.send_rest = None;
            let outcome = match errno {
                libc::ECONNREFUSED => Outcome::Refused,
                libc::ECONNRESET | libc::EPIPE => Outcome::Rst,
                libc::ETIMEDOUT => Outcome::Timeout,
                _ => Outcome::Error,
            };
            if !conn.connected && conn.outcome.is_none() {
                self.stats.connect_failed += 1;
                self.stats.error(&format!("connect_{}", errno_name(errno)));
                self.shared.errors.fetch_add(1, Ordering::Relaxed);
            }
            return self.give_up(slot, outcome);
        }
        if conn.step == Step::Closing {
            // The connection is ending (given up, or the engine closed it while this send was
            // in flight): send nothing more, and close once nothing is in flight.
            return self.try_finish(slot);
        }
        if !conn.connected {
            conn.connected = true;
            conn.deadline_ns = 0;
            self.stats.opened += 1;
            // A connect succeeded: the refusals so far did not last.
            self.stats.refusing_since_us = None;
            self.shared.open.fetch_add(1, Ordering::Relaxed);
            let token = Token::new(slot, conn.generation).encode();
            self.ring.recv_multi(&conn.socket, token)?;
            conn.recv = RecvState::Armed;
        }
        if conn.send_rest.is_some() {
            return self.flush(slot);
        }
        self.top_up(slot);
        self.flush(slot)?;
        self.advance(slot)
    }

    /// Checks every reply a recv delivered against the request it answers.
    pub(super) fn on_data(&mut self, slot: usize, completion: &mut Completion) {
        let (now_ns, open_loop) = (self.now_ns, self.plan.request_rate.is_some());
        let Worker {
            ring, conns, stats, ..
        } = self;
        let conn = &mut conns[slot];
        let delivered = ring.consume_buffers(completion, |data| {
            check_replies(conn, stats, data, now_ns, open_loop);
        });
        assert!(delivered > 0, "a data completion has a buffer");
    }

    /// After the data of a recv CQE: more requests, and the next step of the connection.
    pub(super) fn after_data(&mut self, slot: usize) -> io::Result<()> {
        let conn = &self.conns[slot];
        if conn.broken && conn.step != Step::Closing {
            return self.give_up(slot, Outcome::Error);
        }
        self.top_up(slot);
        self.flush(slot)?;
        self.advance(slot)
    }

    /// The multishot recv ended.
    pub(super) fn on_recv_final(&mut self, slot: usize, res: i32) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        let cancelling = conn.recv == RecvState::Cancelling;
        if (res > 0 || res == -libc::ENOBUFS) && !cancelling {
            // CQ overflow or an empty buffer ring: not a close, arm again.
            let token = Token::new(slot, conn.generation).encode();
            return self.ring.recv_multi(&conn.socket, token);
        }
        conn.recv = RecvState::Done;
        let outcome = match res {
            0 => Outcome::Fin,
            _ if res > 0 || res == -libc::ENOBUFS || res == -libc::ECANCELED => Outcome::Local,
            _ if res == -libc::ECONNRESET => Outcome::Rst,
            _ if res == -libc::ETIMEDOUT => Outcome::Timeout,
            _ => {
                self.stats.error(&format!("recv_{}", errno_name(-res)));
                Outcome::Error
            }
        };
        conn.set_outcome(outcome);
        conn.step = Step::Closing;
        conn.deadline_ns = 0;
        self.try_finish(slot)
    }

    /// Moves a connection on once the step it is in is complete.
    pub(super) fn advance(&mut self, slot: usize) -> io::Result<()> {
        let end_deadline = self.now_ns + nanos(self.plan.end_timeout);
        let conn = &mut self.conns[slot];
        match conn.step {
            Step::Running => {}
            Step::ShutAfterSend => {
                if conn.send_idle() {
                    if let Err(error) = conn.socket.shutdown(Shutdown::Write) {
                        self.stats.error(&format!(
                            "shutdown_{}",
                            errno_name(error.raw_os_error().unwrap_or(0))
                        ));
                    }
                    self.await_eof(slot, end_deadline);
                }
                return Ok(());
            }
            Step::AwaitEof | Step::Closing => return Ok(()),
        }
        if !conn.connected {
            return Ok(());
        }
        let done_requesting =
            conn.all_requested() || (self.stopping && conn.spec.requests.is_none());
        if !done_requesting {
            return Ok(());
        }
        let mode = conn.spec.mode;
        if !mode.ends_after_last_send() && (!conn.outstanding.is_empty() || !conn.send_idle()) {
            return Ok(());
        }
        self.end_as_mode(slot, mode, end_deadline)
    }

    /// Every request is done (or, for the modes that end right after the last send, sent):
    /// the connection ends the way its close mode says.
    fn end_as_mode(&mut self, slot: usize, mode: CloseMode, end_deadline: u64) -> io::Result<()> {
        match mode {
            CloseMode::Fin | CloseMode::Hold => self.close_now(slot),
            CloseMode::Reset => {
                if let Err(error) = self.conns[slot].socket.set_linger(Some(Duration::ZERO)) {
                    self.stats.error(&format!(
                        "linger_{}",
                        errno_name(error.raw_os_error().unwrap_or(0))
                    ));
                }
                self.close_now(slot)
            }
            CloseMode::HalfClose | CloseMode::MidFrame => {
                self.queue_ending(slot, mode);
                self.conns[slot].step = Step::ShutAfterSend;
                self.flush(slot)?;
                self.advance(slot)
            }
            CloseMode::CloseRequest | CloseMode::BadFrame | CloseMode::Stall => {
                self.queue_ending(slot, mode);
                self.flush(slot)?;
                self.await_eof(slot, end_deadline);
                Ok(())
            }
            CloseMode::Idle => {
                self.await_eof(slot, end_deadline);
                Ok(())
            }
        }
    }

    /// Queues the last bytes of the connection's mode (see `Wire::ending`), the reply they
    /// must get, and what the close record must then show.
    fn queue_ending(&mut self, slot: usize, mode: CloseMode) {
        let turn = self.next_turn(mode);
        let conn = &mut self.conns[slot];
        let ending = self.plan.wire.ending(mode, turn, &mut conn.pending);
        if let Some(expect) = ending.reply {
            conn.expect_reply(expect, self.now_ns, self.now_ns);
            self.stats.requests += 1;
        }
        if let Some(record) = ending.record {
            conn.record = Some(record);
        }
    }

    fn await_eof(&mut self, slot: usize, deadline_ns: u64) {
        let conn = &mut self.conns[slot];
        conn.step = Step::AwaitEof;
        conn.deadline_ns = deadline_ns;
        self.timers
            .push(std::cmp::Reverse((deadline_ns, slot, conn.generation)));
    }

    /// The client closes, as its mode says: cancel the recv, close the socket once it ended.
    fn close_now(&mut self, slot: usize) -> io::Result<()> {
        self.give_up(slot, Outcome::Local)
    }

    /// Stops the connection: records `outcome` (unless one was seen), cancels what is in
    /// flight, and closes the socket once every operation has completed.
    pub(super) fn give_up(&mut self, slot: usize, outcome: Outcome) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        conn.set_outcome(outcome);
        conn.step = Step::Closing;
        conn.deadline_ns = 0;
        let token = Token::new(slot, conn.generation).encode();
        if conn.recv == RecvState::Armed {
            self.ring.cancel(Target::Recv(token), token)?;
            conn.recv = RecvState::Cancelling;
        }
        if let Some(id) = conn.send_in_flight {
            self.ring.cancel(Target::Send(id), token)?;
        }
        self.try_finish(slot)
    }

    pub(super) fn on_deadline(&mut self, slot: usize) -> io::Result<()> {
        let conn = &self.conns[slot];
        if !conn.connected {
            self.stats.connect_failed += 1;
            self.stats.error("connect_timeout");
            self.shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        if conn.step == Step::Closing {
            return Ok(());
        }
        if conn.step == Step::AwaitEof {
            self.conns[slot].end_timed_out = true;
        }
        self.give_up(slot, Outcome::Timeout)
    }

    /// Remembers when the engine first refused, reset or closed a connection it should not have.
    pub(super) fn note_engine_failure(&mut self, outcome: Outcome) {
        let now_us = self.now_ns / 1000;
        self.stats.first_engine_failure_us.get_or_insert(now_us);
        if outcome == Outcome::Refused {
            self.stats.refusing_since_us.get_or_insert(now_us);
        }
    }

    /// Closes the socket and records the connection once nothing of it is in flight.
    fn try_finish(&mut self, slot: usize) -> io::Result<()> {
        let conn = &self.conns[slot];
        let recv_over = matches!(conn.recv, RecvState::Off | RecvState::Done);
        if !recv_over || conn.send_in_flight.is_some() {
            return Ok(());
        }
        let conn = self.conns.remove(slot);
        let outcome = conn.outcome.unwrap_or(Outcome::Error);
        // A connection that never connected sent nothing: its queued requests are not lost.
        let lost = if conn.connected {
            conn.outstanding.len() as u64
        } else {
            self.stats.requests -= conn.next_seq;
            0
        };
        self.stats.lost_replies += lost;
        let expected = outcome == Outcome::expected_for(conn.spec.mode);
        if conn.connected && !expected {
            self.stats
                .error(&format!("unexpected_{}", outcome.as_str()));
            self.shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        if !expected && outcome.is_engine_gone_sign() {
            self.note_engine_failure(outcome);
        }
        if conn.connected {
            self.shared.open.fetch_sub(1, Ordering::Relaxed);
        }
        self.stats.tags.push(TagResult {
            tag: conn.spec.tag,
            mode: conn.spec.mode,
            outcome,
            connected: conn.connected,
            requests: conn.next_seq,
            replies: conn.replies,
            lost,
            corrupt: conn.corrupt,
            ended_by_end_timeout: conn.end_timed_out,
            phase: conn.record.map(|r| r.phase),
            partial_bytes: conn.record.map(|r| r.partial_bytes),
        });
        self.shared.finished.fetch_add(1, Ordering::Relaxed);
        // Dropping `conn` closes the socket: FIN, or RST with SO_LINGER {1, 0}.
        drop(conn);
        Ok(())
    }
}

/// Checks the replies in `data` against the requests they answer, in order.
fn check_replies(conn: &mut Conn, stats: &mut Stats, data: &[u8], now_ns: u64, open_loop: bool) {
    let len = data.len();
    stats.bytes_received += len as u64;
    let tag = conn.spec.tag;
    let outstanding = &mut conn.outstanding;
    let (mut replies, mut corrupt, mut unexpected) = (0u64, 0u64, 0u64);
    let fed = conn.decoder.feed(data, |reply| {
        let Some(request) = outstanding.pop_front() else {
            unexpected += 1;
            return;
        };
        replies += 1;
        if !request.expect.matches(tag, request.seq, &reply) {
            corrupt += 1;
        }
        let since = |ns: u64| now_ns.saturating_sub(ns) / 1000;
        Stats::record_latency(&mut stats.latency_us, since(request.intended_ns));
        if open_loop {
            Stats::record_latency(&mut stats.latency_uncorrected_us, since(request.sent_ns));
        }
    });
    conn.replies += replies;
    conn.corrupt += corrupt + unexpected;
    stats.replies += replies;
    stats.corrupt_replies += corrupt + unexpected;
    if unexpected > 0 {
        stats.error("unrequested_reply");
    }
    if fed.is_err() {
        stats.error("undecodable_reply_stream");
        stats.corrupt_replies += 1;
        conn.corrupt += 1;
        conn.broken = true;
    }
}
