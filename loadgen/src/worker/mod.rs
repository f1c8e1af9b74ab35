//! One worker thread: its own io_uring and buffer ring, a share of the connections, and the
//! loop that opens them, schedules requests, fires timers and handles completions.

mod conn;
mod events;
mod slots;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use engine::sys::{Completion, Op, Ring};
use engine::token::{Token, GENERATION_MASK};

use conn::{start_connect, Conn, Step};
use slots::Slots;

use crate::error::LoadgenError;
use crate::limits::{
    CONNECT_TIMEOUT, DRAIN_TIMEOUT, INTERRUPT_DRAIN_TIMEOUT, RECV_BUFFERS, RECV_BUFFER_BYTES,
    RING_CQ_ENTRIES, RING_SQ_ENTRIES, SCHEDULE_TICK, WAIT_SLICE,
};
use crate::mix::CloseMode;
use crate::plan::{ConnSpec, WorkerPlan};
use crate::stats::{Outcome, Stats, TagResult};

/// Counters the progress display reads while workers run.
#[derive(Debug)]
pub struct Shared {
    pub start: Instant,
    pub replies: AtomicU64,
    /// Connections connected and not yet closed, now.
    pub open: AtomicU64,
    pub finished: AtomicU64,
    pub errors: AtomicU64,
    /// Set by the main thread to stop every worker (e.g. on a fatal error elsewhere).
    pub abort: AtomicBool,
    /// Set with `abort` on Ctrl-C or SIGTERM: the drain is shortened to INTERRUPT_DRAIN_TIMEOUT.
    pub interrupted: AtomicBool,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            start: Instant::now(),
            replies: AtomicU64::new(0),
            open: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            abort: AtomicBool::new(false),
            interrupted: AtomicBool::new(false),
        }
    }
}

impl Default for Shared {
    fn default() -> Shared {
        Shared::new()
    }
}

/// The worker's state; completions are handled in `events.rs`.
struct Worker<'a> {
    plan: WorkerPlan,
    shared: &'a Shared,
    ring: Ring,
    conns: Slots<Conn>,
    generation: u32,
    stats: Stats,
    now_ns: u64,
    /// (deadline_ns, slot, generation): lazy, checked against the connection's deadline.
    timers: BinaryHeap<Reverse<(u64, usize, u32)>>,
    next_spec: u64,
    /// Connects started (the connect schedule counts them).
    opened: u64,
    /// When the last connect started.
    last_open_ns: u64,
    /// Run stopped: no new requests or connections; connections end once drained.
    stopping: bool,
    stop_at_ns: Option<u64>,
    /// When the stop began.
    stopped_at_ns: Option<u64>,
    /// Open loop: intended send times waiting for a connection with room.
    backlog: VecDeque<u64>,
    scheduled: u64,
    schedule_start_ns: Option<u64>,
    /// Open loop: round-robin cursor over connection slots.
    cursor: usize,
    /// Open loop: slots given requests in this turn, flushed together.
    dirty: Vec<usize>,
    /// Connections of each close mode that reached their ending (see `Wire::ending`).
    endings: [u64; CloseMode::ALL.len()],
}

/// Per-connection results reserved up front, at most.
const TAG_RESERVE_MAX: usize = 1 << 24;

/// Runs one worker to its end and returns what it measured.
pub fn run(plan: WorkerPlan, shared: &Shared) -> Result<Stats, LoadgenError> {
    if let Some(cpu) = plan.cpu {
        engine::sys::socket::pin_current_thread(cpu).map_err(|error| LoadgenError::Io {
            what: "pinning a worker thread",
            error,
        })?;
    }
    let mut ring = Ring::new(RING_SQ_ENTRIES, RING_CQ_ENTRIES)?;
    ring.provide_buffers(RECV_BUFFERS, RECV_BUFFER_BYTES)?;
    let stop_at_ns = plan.run_for.map(|d| d.as_nanos() as u64);
    let tag_capacity = usize::try_from(plan.conns.len())
        .unwrap_or(0)
        .min(TAG_RESERVE_MAX);
    let mut worker = Worker {
        plan,
        shared,
        ring,
        conns: Slots::new(),
        generation: 0,
        // Reserved up front: growing a million-entry Vec mid-run stalls the worker for long
        // enough to trip a short engine idle timeout.
        stats: Stats {
            tags: Vec::with_capacity(tag_capacity),
            ..Stats::default()
        },
        now_ns: 0,
        timers: BinaryHeap::new(),
        next_spec: 0,
        opened: 0,
        last_open_ns: 0,
        stopping: false,
        stop_at_ns,
        stopped_at_ns: None,
        backlog: VecDeque::new(),
        scheduled: 0,
        schedule_start_ns: None,
        cursor: 0,
        dirty: Vec::new(),
        endings: [0; CloseMode::ALL.len()],
    };
    let result = worker.run_loop();
    result.map_err(|error| LoadgenError::Io {
        what: "worker io_uring",
        error,
    })?;
    worker.stats.elapsed_us = worker.now_ns / 1000;
    worker.stats.connect_rate_per_s = worker.connect_rate_reached();
    worker.stats.request_rate_per_s = worker.request_rate_reached();
    Ok(worker.stats)
}

impl Worker<'_> {
    fn clock(&mut self) {
        self.now_ns = self.shared.start.elapsed().as_nanos() as u64;
    }

    fn run_loop(&mut self) -> std::io::Result<()> {
        let mut completions: Vec<Completion> = Vec::with_capacity(RING_CQ_ENTRIES as usize);
        let mut drain_deadline_ns = None;
        loop {
            self.clock();
            if !self.stopping
                && (self.stop_at_ns.is_some_and(|at| self.now_ns >= at)
                    || self.shared.abort.load(Ordering::Acquire))
            {
                self.begin_stop()?;
                drain_deadline_ns = Some(self.now_ns + self.drain_timeout().as_nanos() as u64);
            }
            if let Some(deadline) = drain_deadline_ns {
                if self.now_ns >= deadline {
                    self.abandon_all()?;
                    drain_deadline_ns = Some(u64::MAX);
                }
            }
            self.open_new()?;
            self.schedule_requests()?;
            self.fire_timers()?;
            let no_more = self.stopping || self.next_spec >= self.plan.conns.len();
            if no_more && self.conns.is_empty() {
                return Ok(());
            }
            let wait = self.wait_for();
            self.ring.submit_and_wait(Some(wait), None)?;
            self.ring.reap(&mut completions);
            self.clock();
            let replies_before = self.stats.replies;
            for mut completion in completions.drain(..) {
                self.dispatch(&mut completion)?;
            }
            self.shared
                .replies
                .fetch_add(self.stats.replies - replies_before, Ordering::Relaxed);
        }
    }

    /// How the drain after the stop is bounded: shorter after Ctrl-C or SIGTERM.
    fn drain_timeout(&self) -> Duration {
        if self.shared.interrupted.load(Ordering::Acquire) {
            INTERRUPT_DRAIN_TIMEOUT
        } else {
            DRAIN_TIMEOUT
        }
    }

    /// How long to sleep: until the next timer, open or scheduled request, at most a slice.
    /// A connect or a send that could not go out now (every slot busy, every pipeline full) is
    /// not a reason to wake: the completion that frees room wakes the loop.
    fn wait_for(&self) -> Duration {
        let mut until_ns = self.now_ns + WAIT_SLICE.as_nanos() as u64;
        if let Some(Reverse((at, _, _))) = self.timers.peek() {
            until_ns = until_ns.min(*at);
        }
        if let Some(at) = self.next_open_ns().filter(|_| self.slot_free()) {
            until_ns = until_ns.min(at);
        }
        if let Some(at) = self.next_scheduled_ns().filter(|_| self.backlog.is_empty()) {
            // Batch the schedule: intended times stay exact, sends go out per tick.
            until_ns = until_ns.min(at.max(self.now_ns + SCHEDULE_TICK.as_nanos() as u64));
        }
        if let Some(at) = self.stop_at_ns.filter(|_| !self.stopping) {
            until_ns = until_ns.min(at);
        }
        Duration::from_nanos(until_ns.saturating_sub(self.now_ns).max(1_000))
    }

    fn dispatch(&mut self, completion: &mut Completion) -> std::io::Result<()> {
        let token = Token::decode(completion.user_data());
        let slot = token.slot as usize;
        let live = self
            .conns
            .get(slot)
            .is_some_and(|c| c.generation == token.generation);
        match completion.op() {
            Op::Cancel => Ok(()),
            Op::Accept | Op::Poll | Op::Wake | Op::WakeFailed => {
                unreachable!("the loadgen neither accepts, polls nor wakes rings")
            }
            Op::Send => {
                assert!(live, "a connection outlives its sends");
                self.on_send(slot, completion)
            }
            Op::Recv => {
                if completion.has_buffer() {
                    if live {
                        self.on_data(slot, completion);
                        self.after_data(slot)?;
                    } else {
                        self.ring.consume_buffers(completion, |_| ());
                    }
                }
                assert!(live, "a connection outlives its recv");
                if !completion.more() {
                    self.on_recv_final(slot, completion.res())?;
                }
                Ok(())
            }
        }
    }

    // ---- opening ----

    /// Whether a connection is left to open and the run still opens them.
    fn more_to_open(&self) -> bool {
        !self.stopping && self.next_spec < self.plan.conns.len()
    }

    /// Whether a connection may open now as far as concurrency goes.
    fn slot_free(&self) -> bool {
        self.conns.len() < self.plan.concurrency
    }

    /// When the next connect is due by the connect rate; `None`: none left, or no rate.
    fn next_open_ns(&self) -> Option<u64> {
        let rate = self.plan.connect_rate?;
        if !self.more_to_open() {
            return None;
        }
        Some((self.opened as f64 / rate * 1e9) as u64)
    }

    fn open_new(&mut self) -> std::io::Result<()> {
        while self.more_to_open() && due(self.next_open_ns(), self.now_ns) {
            if !self.slot_free() {
                // Due by the rate, but every slot is busy: the rate is held back here.
                self.stats.open_blocked = true;
                break;
            }
            let spec = self.plan.conns.get(self.next_spec);
            self.next_spec += 1;
            self.opened += 1;
            self.last_open_ns = self.now_ns;
            self.open(spec)?;
        }
        self.stats.peak_open = self.stats.peak_open.max(self.conns.len() as u64);
        Ok(())
    }

    /// Connects started per second. The k-th connect is due at k / rate, so n connects span
    /// n / rate: the window is the last start plus one interval, or the stop if it came first.
    fn connect_rate_reached(&self) -> f64 {
        let Some(rate) = self.plan.connect_rate else {
            return 0.0;
        };
        let window_ns = match self.stopped_at_ns {
            Some(stop) if self.next_spec < self.plan.conns.len() => stop,
            _ => self.last_open_ns + (1e9 / rate) as u64,
        };
        per_second(self.opened, window_ns)
    }

    /// Open loop: scheduled requests sent per second while the schedule ran (an HTTP
    /// connection's greeting, sent when it opens, is not one of them).
    fn request_rate_reached(&self) -> f64 {
        let (Some(_), Some(start)) = (self.plan.request_rate, self.schedule_start_ns) else {
            return 0.0;
        };
        let end = self.stopped_at_ns.unwrap_or(self.now_ns);
        let sent = self.scheduled - self.backlog.len() as u64;
        per_second(sent, end.saturating_sub(start))
    }

    /// The number of connections of `mode` that reached their ending before this one.
    fn next_turn(&mut self, mode: CloseMode) -> u64 {
        let at = CloseMode::ALL
            .iter()
            .position(|&m| m == mode)
            .expect("every mode is in ALL");
        let turn = self.endings[at];
        self.endings[at] += 1;
        turn
    }

    fn open(&mut self, spec: ConnSpec) -> std::io::Result<()> {
        let socket = match start_connect(self.plan.target, spec.source) {
            Ok(socket) => socket,
            Err(error) => {
                let outcome = if error.raw_os_error() == Some(libc::ECONNREFUSED) {
                    self.note_engine_failure(Outcome::Refused);
                    Outcome::Refused
                } else {
                    Outcome::Error
                };
                self.connect_failed(spec, outcome, &error);
                return Ok(());
            }
        };
        self.generation = (self.generation + 1) & GENERATION_MASK;
        let slot = self.conns.next_key();
        let mut conn = Conn::new(spec, self.generation, socket, &self.plan.wire);
        conn.deadline_ns = self.now_ns + CONNECT_TIMEOUT.as_nanos() as u64;
        self.timers
            .push(Reverse((conn.deadline_ns, slot, conn.generation)));
        assert_eq!(self.conns.insert(conn), slot);
        self.top_up(slot);
        self.greet(slot);
        self.flush(slot)
    }

    fn connect_failed(&mut self, spec: ConnSpec, outcome: Outcome, error: &std::io::Error) {
        let kind = match error.raw_os_error() {
            Some(errno) => format!("connect_{}", crate::stats::errno_name(errno)),
            None => "connect_error".to_owned(),
        };
        self.stats.error(&kind);
        self.stats.connect_failed += 1;
        self.shared.errors.fetch_add(1, Ordering::Relaxed);
        self.shared.finished.fetch_add(1, Ordering::Relaxed);
        self.stats.tags.push(TagResult {
            tag: spec.tag,
            mode: spec.mode,
            outcome,
            connected: false,
            requests: 0,
            replies: 0,
            lost: 0,
            corrupt: 0,
            ended_by_end_timeout: false,
            phase: None,
            partial_bytes: None,
        });
    }

    // ---- open-loop schedule ----

    fn next_scheduled_ns(&self) -> Option<u64> {
        let rate = self.plan.request_rate?;
        let start = self.schedule_start_ns?;
        if self.stopping {
            return None;
        }
        Some(start + (self.scheduled as f64 / rate * 1e9) as u64)
    }

    /// Open loop: turns elapsed time into intended send times and hands them to connections
    /// with room in their pipeline. The schedule starts once every connection is connected.
    fn schedule_requests(&mut self) -> std::io::Result<()> {
        if self.plan.request_rate.is_none() || self.stopping {
            return Ok(());
        }
        if self.schedule_start_ns.is_none() {
            let all_open = self.next_spec >= self.plan.conns.len();
            if !all_open || self.conns.iter().any(|(_, c)| !c.connected) {
                return Ok(());
            }
            self.schedule_start_ns = Some(self.now_ns);
        }
        while let Some(at) = self.next_scheduled_ns().filter(|&at| at <= self.now_ns) {
            self.backlog.push_back(at);
            self.scheduled += 1;
        }
        let bound = self.conns.key_bound();
        // Hand each intended send to the next connection (round robin) with room; stop after a
        // full turn without room: the backlog then waits, and its latency counts from `intended`.
        let mut without_room = 0;
        while let Some(&intended) = self.backlog.front() {
            if without_room >= bound {
                // Every pipeline is full: the rate is held back by --connections x --pipeline.
                self.stats.backlog_waited = true;
                break;
            }
            let slot = self.cursor % bound;
            self.cursor = self.cursor.wrapping_add(1);
            let pipeline = self.plan.pipeline;
            let Some(conn) = self
                .conns
                .get_mut(slot)
                .filter(|c| c.step == Step::Running && c.outstanding.len() < pipeline)
            else {
                without_room += 1;
                continue;
            };
            without_room = 0;
            self.backlog.pop_front();
            conn.queue_request(&self.plan.wire, self.now_ns, intended);
            self.stats.count_request();
            if !self.dirty.contains(&slot) {
                self.dirty.push(slot);
            }
        }
        let dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            self.flush(slot)?;
        }
        self.dirty = dirty;
        self.dirty.clear();
        Ok(())
    }

    // ---- timers and stopping ----

    fn fire_timers(&mut self) -> std::io::Result<()> {
        while let Some(&Reverse((at, slot, generation))) = self.timers.peek() {
            if at > self.now_ns {
                break;
            }
            self.timers.pop();
            let live = self
                .conns
                .get(slot)
                .is_some_and(|c| c.generation == generation && c.deadline_ns == at);
            if live {
                self.on_deadline(slot)?;
            }
        }
        Ok(())
    }

    fn begin_stop(&mut self) -> std::io::Result<()> {
        self.stopping = true;
        self.stopped_at_ns = Some(self.now_ns);
        let slots = self.conns.keys();
        for slot in slots {
            self.advance(slot)?;
        }
        Ok(())
    }

    /// The drain took too long: close whatever is left, counting it.
    fn abandon_all(&mut self) -> std::io::Result<()> {
        let slots = self.conns.keys();
        for slot in slots {
            if self.conns[slot].step != Step::Closing {
                self.stats.error("drain_timeout");
                self.give_up(slot, Outcome::Timeout)?;
            }
        }
        Ok(())
    }
}

/// Whether an optional time has come (`None`: no constraint).
fn due(at: Option<u64>, now: u64) -> bool {
    !matches!(at, Some(at) if at > now)
}

/// `count` per second over `window_ns` (0 for an empty window).
fn per_second(count: u64, window_ns: u64) -> f64 {
    if window_ns == 0 {
        return 0.0;
    }
    count as f64 * 1e9 / window_ns as f64
}
