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
//! - `drain`: shutdown, and what is left when a core must stop at once;
//! - `calls`: the protocol's callbacks and the closes they ask for;
//! - `agenda`: what callbacks and the core leave for later in the pass.

mod accept;
mod agenda;
mod batch;
mod calls;
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
use crate::mesh::{Mesh, Wake};
use crate::metrics::CoreMetrics;
use crate::protocol_api::{MessagePhase, Protocol};
use crate::record::CloseLogSender;
use crate::sys::{socket, Completion, Op, Ring, RingError, RingMode};
use crate::token::Token;

pub(crate) use agenda::{Agenda, Request};
use batch::Batcher;
pub(crate) use close::Records;
pub(crate) use drain::Drain;

/// What a core needs from the process.
#[derive(Debug)]
pub(crate) struct CoreSetup<P: Protocol> {
    pub core: u16,
    pub cpu: Option<usize>,
    pub listener: OwnedFd,
    pub protocol: Arc<P>,
    pub settings: Arc<Settings>,
    /// The counters of every core of its kind; this core writes only `metrics[metrics_slot]`.
    pub metrics: Arc<[CoreMetrics]>,
    pub metrics_slot: usize,
    pub close_log: Option<CloseLogSender>,
    /// Written by the main thread to wake the core, after setting `stop` (and by other cores
    /// for their messages when MSG_RING is not used).
    pub wake: Arc<OwnedFd>,
    pub stop: Arc<AtomicBool>,
    /// This core's end of the message queues between cores.
    pub mesh: Mesh<P::Message>,
}

pub(crate) struct Core<P: Protocol> {
    core: u16,
    proto: Arc<P>,
    ring: Ring,
    conns: Slab<Conn>,
    /// The protocol's session of each connection, at the same slot as its `Conn` (the two are
    /// inserted and removed together), apart so that a callback can hold one session and
    /// write to any connection.
    sessions: Slab<P::Session>,
    /// The protocol's per-core state.
    state: P::CoreState,
    mesh: Mesh<P::Message>,
    /// Other cores are woken with MSG_RING (else with their eventfd).
    msg_ring: bool,
    agenda: Agenda,
    /// Closes asked for by callbacks are being carried out (they are not nested).
    running_requests: bool,
    /// The protocol panicked on this core: it is called no more.
    protocol_failed: bool,
    completions: Vec<Completion>,
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
        let msg_ring = match settings.wake {
            Wake::Auto => ring.supports_msg_ring(),
            Wake::MsgRing if !ring.supports_msg_ring() => {
                return Err(RingError::MissingOpcode {
                    name: "MSG_RING",
                    since: "5.18",
                })
            }
            Wake::MsgRing => true,
            Wake::Eventfd => false,
        };
        let own_ring = ring.dup_fd().map_err(|error| RingError::Setup {
            error,
            disabled_sysctl: None,
        })?;
        let _ = setup.mesh.own_waker().ring.set(own_ring);
        let state = setup.protocol.core_state(setup.core);
        Ok(Core {
            core: setup.core,
            proto: setup.protocol,
            ring,
            conns: Slab::new(),
            sessions: Slab::new(),
            state,
            mesh: setup.mesh,
            msg_ring,
            agenda: Agenda::default(),
            running_requests: false,
            protocol_failed: false,
            completions: Vec::with_capacity((CQ_PER_SQ * sq_entries) as usize),
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
            self.deliver_messages()?;
            self.rearm_starved()?;
            self.flush()?;
            self.wake_cores()?;
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
        let messages = if self.mesh.self_pending {
            Some(self.now_us)
        } else {
            self.mesh
                .wakes_pending()
                .then_some(self.now_us + STARVED_RETRY_US)
        };
        let next = [
            self.agenda.deadlines.next_us(),
            self.agenda.next_core_timer_us(),
            messages,
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
        let result = pending.try_for_each(|mut completion| {
            self.on_completion(&mut completion)?;
            self.run_requests()
        });
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
            // The eventfd: the main thread (`stop` is looked at every pass) or another core's
            // messages.
            Op::Poll => {
                socket::eventfd_clear(&*self.wake);
                self.mesh.woken();
                self.ring.poll_readable(&*self.wake, Token::GLOBAL.encode())
            }
            Op::Wake => {
                self.mesh.woken();
                Ok(())
            }
            Op::WakeFailed => {
                tracing::debug!(
                    core = self.core,
                    target = completion.user_data(),
                    errno = -completion.res(),
                    "MSG_RING failed; waking again"
                );
                self.mesh.rewake(completion.user_data() as usize);
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

    /// Whether `slot` still holds connection `id` (it was not closed meanwhile).
    fn holds(&self, slot: usize, id: u64) -> bool {
        self.conns.get(slot).is_some_and(|conn| conn.id == id)
    }

    fn token(&self, slot: usize) -> Token {
        Token::new(slot, self.conns[slot].generation)
    }

    fn facts(&self, slot: usize) -> Facts {
        // A connection has no session only if the protocol's `open` panicked.
        let phase = |tail: &[u8]| match self.sessions.get(slot) {
            Some(session) => self.proto.partial_phase(session, tail),
            None => MessagePhase::Header,
        };
        self.conns[slot].facts(phase, self.settings.max_queued_bytes)
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
