//! One core: its ring, listener, connections and timers, and the event loop that drives them.
//!
//! Each pass of the loop: wait → reap → handle each completion (accept / recv / send / cancel /
//! wake) → fire due timers → re-arm starved recvs → issue the batched sends → hand close records
//! to the log writer when due. What each event means for a connection is decided by its
//! [`Life`](crate::conn::Life); this module and its children only carry the decisions out:
//! - `accept`: the multishot accept and new connections;
//! - `recv`: input, backpressure, starvation;
//! - `send`: batched sends and their completions;
//! - `close`: finishing a connection (flush, FIN, linger) and its record;
//! - `timers`: idle, read and linger deadlines;
//! - `drain`: shutdown, and what is left when a core must stop at once.

mod accept;
mod batch;
mod close;
mod drain;
mod recv;
mod send;
mod timers;

use std::collections::VecDeque;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::classify::Rearm;
use crate::config::{Settings, CQ_PER_SQ};
use crate::conn::{Action, Conn, Facts, Pool};
use crate::metrics::CoreMetrics;
use crate::protocol_api::{Context, Protocol};
use crate::record::CloseLogSender;
use crate::sys::{socket, Completion, Op, Ring, RingError, RingMode};
use crate::timers::Deadlines;
use crate::token::Token;

use batch::Batcher;
pub(crate) use close::Records;
pub(crate) use drain::Drain;

/// What a core needs from the process.
#[derive(Debug)]
pub(crate) struct CoreSetup<P> {
    pub core: u16,
    pub cpu: Option<usize>,
    pub listener: OwnedFd,
    pub protocol: Arc<P>,
    pub settings: Arc<Settings>,
    /// The counters of every core of its kind; this core writes only `metrics[metrics_slot]`.
    pub metrics: Arc<[CoreMetrics]>,
    pub metrics_slot: usize,
    pub close_log: Option<CloseLogSender>,
    /// Written by the main thread to wake the core, after setting `stop`.
    pub wake: Arc<OwnedFd>,
    pub stop: Arc<AtomicBool>,
}

pub(crate) struct Core<P: Protocol> {
    core: u16,
    proto: Arc<P>,
    ring: Ring,
    conns: Slab<Conn<P::Session>>,
    deadlines: Deadlines,
    completions: Vec<Completion>,
    /// Connections with replies to send this pass, (slot, generation).
    flush_list: Vec<(usize, u32)>,
    /// Connections whose recv ended with -ENOBUFS, in arrival order. Re-armed at most a ring's
    /// worth per pass: re-arming thousands at once while the ring is empty only fails them all
    /// again, a storm of -ENOBUFS that starves everyone.
    starved: VecDeque<(usize, u32)>,
    pool: Pool,
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
    metrics_slot: usize,
    records: Records,
    drain: Option<Drain>,
    batcher: Batcher,
}

impl<P: Protocol> Core<P> {
    /// Sets up the core's ring and buffers on the calling thread (the ring's only submitter).
    pub fn new(setup: CoreSetup<P>) -> Result<Core<P>, RingError> {
        if let Some(cpu) = setup.cpu {
            if let Err(error) = socket::pin_current_thread(cpu) {
                tracing::warn!(core = setup.core, cpu, %error, "could not pin the core's thread");
            }
        }
        let settings = setup.settings;
        let sq_entries = settings.ring_entries;
        let mut ring = Ring::new(sq_entries, CQ_PER_SQ * sq_entries)?;
        let consumption =
            ring.provide_buffers_as(settings.buffers, settings.buffer_size, settings.consumption)?;
        let ring_fd = settings.register_ring_fd && ring.register_ring_fd();
        tracing::debug!(core = setup.core, ?consumption, ring_fd, "receive buffers");
        Ok(Core {
            core: setup.core,
            proto: setup.protocol,
            ring,
            conns: Slab::new(),
            deadlines: Deadlines::default(),
            completions: Vec::with_capacity((CQ_PER_SQ * sq_entries) as usize),
            flush_list: Vec::new(),
            starved: VecDeque::new(),
            pool: Pool::default(),
            listener: Some(setup.listener),
            accept_armed: false,
            accept_retry_us: None,
            wake: setup.wake,
            stop: setup.stop,
            epoch: Instant::now(),
            now_us: 0,
            next_conn_id: 0,
            next_generation: 0,
            records: Records::new(setup.close_log),
            metrics: setup.metrics,
            metrics_slot: setup.metrics_slot,
            batcher: Batcher::new(settings.batching),
            settings,
            drain: None,
        })
    }

    pub fn ring_mode(&self) -> RingMode {
        self.ring.mode()
    }

    fn metrics(&self) -> &CoreMetrics {
        &self.metrics[self.metrics_slot]
    }

    fn context(&self) -> Context {
        Context {
            core: self.core,
            now_us: self.now_us,
            draining: self.drain.is_some(),
        }
    }

    /// Serves until a drain finishes.
    pub fn run(&mut self) -> io::Result<()> {
        self.arm_accept()?;
        self.ring
            .poll_readable(&*self.wake, Token::GLOBAL.encode())?;
        loop {
            let batch = self.batcher.next(self.conns.len());
            self.ring.submit_and_wait(self.wait_timeout(), batch)?;
            self.now_us = self.epoch.elapsed().as_micros() as u64;
            let reaped = self.handle_completions()?;
            self.batcher.observe(reaped, self.now_us);
            let metrics = self.metrics();
            metrics.waits.add(1);
            metrics.completions.add(reaped as u64);
            self.on_timers()?;
            self.rearm_starved()?;
            self.flush()?;
            if self.records.due(self.now_us) {
                self.send_records();
            }
            if self.stop.load(Ordering::Relaxed) && self.drain.is_none() {
                self.begin_drain()?;
            }
            if self.drain_done()? {
                return Ok(());
            }
        }
    }

    fn wait_timeout(&self) -> Option<Duration> {
        let drain = self.drain.map(|drain| drain.next_us(self.now_us));
        let starved = (!self.starved.is_empty()).then_some(self.now_us + STARVED_RETRY_US);
        let next = [
            self.deadlines.next_us(),
            self.accept_retry_us,
            drain,
            starved,
            self.records.due_us(),
        ]
        .into_iter()
        .flatten()
        .min()?;
        let now = self.epoch.elapsed().as_micros() as u64;
        Some(Duration::from_micros(next.saturating_sub(now)))
    }

    /// Handles every ready completion; returns how many there were.
    fn handle_completions(&mut self) -> io::Result<usize> {
        let mut completions = std::mem::take(&mut self.completions);
        self.ring.reap(&mut completions);
        let reaped = completions.len();
        let mut pending = completions.drain(..);
        let result = pending.try_for_each(|mut completion| self.on_completion(&mut completion));
        // On an error, the rest still give their buffers back.
        for mut completion in pending {
            self.ring.consume_buffers(&mut completion, |_| ());
        }
        self.completions = completions;
        result.map(|()| reaped)
    }

    fn on_completion(&mut self, completion: &mut Completion) -> io::Result<()> {
        match completion.op() {
            Op::Accept => self.on_accept(completion),
            Op::Recv => self.on_recv(completion),
            Op::Send => self.on_send(completion),
            // The cancelled operation's own final CQE carries the news.
            Op::Cancel => Ok(()),
            Op::Poll => {
                self.stop.store(true, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// The connection `token` names, if it is still the one the token was issued for.
    fn live(&self, token: Token) -> Option<usize> {
        let slot = token.slot as usize;
        self.conns
            .get(slot)
            .is_some_and(|conn| conn.generation == token.generation)
            .then_some(slot)
    }

    fn token(&self, slot: usize) -> Token {
        Token::new(slot, self.conns[slot].generation)
    }

    fn facts(&self, slot: usize) -> Facts {
        self.conns[slot].facts(&*self.proto, self.settings.max_queued_bytes)
    }

    /// Carries out what a connection's life cycle decided.
    fn apply(&mut self, slot: usize, action: Action) -> io::Result<()> {
        match action {
            Action::None => Ok(()),
            Action::ArmRecv => self.arm_recv(slot),
            Action::CancelRecv => self.cancel_recv(slot),
            Action::Starve => {
                self.metrics().count_rearm(Rearm::Enobufs);
                self.starved.push_back((slot, self.conns[slot].generation));
                Ok(())
            }
            Action::Rearm => {
                self.metrics().count_rearm(Rearm::Overflow);
                self.arm_recv(slot)
            }
            Action::Classified { abandon } => {
                if abandon {
                    self.abandon_flush(slot)?;
                }
                self.finish(slot)
            }
            Action::Finish => self.finish(slot),
        }
    }
}

/// A recv that ended with -ENOBUFS waits in line; the next pass also looks again after this long
/// even if nothing else completes.
const STARVED_RETRY_US: u64 = 1_000;

/// Sets up the core, reports how it went, and serves.
pub(crate) fn run<P: Protocol>(
    setup: CoreSetup<P>,
    ready: impl FnOnce(Result<RingMode, RingError>),
) -> CoreExit {
    let mut core = match Core::new(setup) {
        Ok(core) => core,
        Err(error) => {
            ready(Err(error));
            return CoreExit::Served(Ok(()));
        }
    };
    ready(Ok(core.ring_mode()));
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| core.run()));
    match served {
        Ok(result) => {
            core.finish_records();
            CoreExit::Served(result)
        }
        Err(panic) => {
            let message = panic_message(&*panic);
            core.fail_all();
            core.finish_records();
            // The core's state is whatever the panic left: keep its ring and buffers (which the
            // kernel may still use) rather than tear them down.
            std::mem::forget(core);
            CoreExit::Panicked(message)
        }
    }
}

/// How a core's thread ended.
#[derive(Debug)]
pub(crate) enum CoreExit {
    /// The loop returned: drained (`Ok`) or an io_uring call failed.
    Served(io::Result<()>),
    /// The core panicked; its connections were closed and recorded as `error`.
    Panicked(String),
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}
