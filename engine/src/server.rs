//! Starting and stopping an engine: listeners, cores, the admin endpoint, the close log,
//! signals, and what happens when a core fails.
//!
//! Failure policy (fail fast): a core that panics closes and records every connection it had
//! (cause `error`); the other cores drain as on SIGTERM and write their records; then
//! [`Server::wait`] returns [`RunError::CorePanicked`] and the binary exits 1 with one line. A
//! core is never restarted: its state is whatever the panic left.

mod error;

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use protocol::http;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::admin;
use crate::config::{Config, Settings, CONNECTIONS_PER_CORE_DEFAULT_MAX, CORES_MAX, FD_RESERVE};
use crate::core::{self, CoreExit, CoreSetup};
use crate::http::Http;
use crate::mesh::{self, Waker};
use crate::metrics::CoreMetrics;
use crate::protocol_api::Protocol;
use crate::record::{CloseLog, CloseLogSender};
use crate::sys::{socket, RingError, RingMode};

pub use error::{RunError, StartError};

enum Event {
    Signal(i32),
    Shutdown,
    Exited { core: u16, exit: CoreExit },
}

/// Asks a running engine to drain, as SIGTERM does. Cheap to clone; works from any thread.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    events: Sender<Event>,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Signal(signal) => write!(f, "Signal({signal})"),
            Event::Shutdown => write!(f, "Shutdown"),
            Event::Exited { core, .. } => write!(f, "Exited({core})"),
        }
    }
}

impl ShutdownHandle {
    /// Stop accepting, flush replies, close every connection as `shutdown`. Returns at once;
    /// [`Server::wait`] returns when the drain is over.
    pub fn shutdown(&self) {
        let _ = self.events.send(Event::Shutdown);
    }
}

/// A running engine. Dropping it without [`Server::wait`] leaves the cores running until the
/// process exits.
///
/// ```
/// use std::io::{Read, Write};
/// use engine::{frame::FrameProtocol, Config, Server};
///
/// let config = Config::new()
///     .listen("127.0.0.1:0".parse().unwrap()) // any free port
///     .admin(None)
///     .cores(1)
///     .handle_signals(false);
/// let server = Server::start(config, FrameProtocol::default()).unwrap();
/// let mut client = std::net::TcpStream::connect(server.local_addr()).unwrap();
/// client.write_all(&[0, 2, 0x01, b'h', b'i']).unwrap(); // ECHO "hi"
/// let mut reply = [0; 5];
/// client.read_exact(&mut reply).unwrap();
/// assert_eq!(reply, [0, 2, 0x01, b'h', b'i']);
/// server.shutdown_handle().shutdown(); // as SIGTERM: the connection closes as `shutdown`
/// server.wait().unwrap();
/// ```
#[derive(Debug)]
pub struct Server {
    listen: SocketAddr,
    admin: Option<SocketAddr>,
    cores: usize,
    max_connections: u32,
    ring_mode: RingMode,
    stop: Arc<AtomicBool>,
    wakes: Vec<Arc<OwnedFd>>,
    /// The serving cores' threads, then the admin core's.
    threads: Vec<JoinHandle<()>>,
    /// Stopped only once every serving core has: metrics stay scrapable during a drain.
    admin_core: Option<AdminCore>,
    events: Sender<Event>,
    inbox: Receiver<Event>,
    close_log: Option<CloseLog>,
}

impl Server {
    /// Binds the listeners, starts one core per CPU (or `config.cores`) serving `protocol`, and
    /// returns once every core is ready.
    pub fn start<P: Protocol>(config: Config, protocol: P) -> Result<Server, StartError> {
        config.validate()?;
        let cpus = socket::allowed_cpus().map_err(|error| StartError::Io {
            what: "sched_getaffinity",
            error,
        })?;
        let cores = config
            .cores
            .map_or(cpus.len().clamp(1, CORES_MAX.into()), usize::from);
        if cores > cpus.len() {
            tracing::warn!(
                cores,
                cpus = cpus.len(),
                "more cores than CPUs this process may use: no core thread is pinned, and the \
                 cores share the CPUs (and the file limit: fewer connections per core)"
            );
        }
        let max_connections = connection_limit(config.max_connections, cores);
        let settings = Arc::new(Settings::new(&config, max_connections));
        let listeners = bind_listeners(&config, cores)?;
        let listen = socket::local_addr(&listeners[0]).map_err(|error| StartError::Io {
            what: "getsockname",
            error,
        })?;
        let metrics: Arc<[CoreMetrics]> = (0..cores).map(|_| CoreMetrics::default()).collect();
        let admin_listener = bind_admin(&config)?;
        let (close_log, close_sender) = open_close_log(&config)?;
        let (events, inbox) = mpsc::channel();
        if config.signals {
            // Before any core starts: a SIGTERM from then on drains.
            watch_signals(events.clone())?;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Shared {
            protocol: Arc::new(protocol),
            settings,
            metrics,
            close_log: close_sender,
            stop: stop.clone(),
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let cores_metrics = shared.metrics.clone();
        let Cores { wakes, mut threads } =
            spawn_cores(listeners, &cpus, shared, &events, ready_tx.clone())?;
        let (admin, admin_core_handle) = match admin_listener {
            Some(listener) => {
                let (addr, core, thread) =
                    spawn_admin(&config, cores, listener, cores_metrics, &events, ready_tx)?;
                threads.push(thread);
                (Some(addr), Some(core))
            }
            None => (None, None),
        };
        let mut server = Server {
            listen,
            admin,
            cores,
            max_connections,
            ring_mode: RingMode::CoopTaskrun,
            stop,
            wakes,
            threads,
            admin_core: admin_core_handle,
            events,
            inbox,
            close_log,
        };
        server.ring_mode = server.await_ready(ready_rx)?;
        tracing::debug!(%listen, cores, max_connections, ring = ?server.ring_mode, "cores ready");
        Ok(server)
    }

    fn await_ready(
        &mut self,
        ready: Receiver<(u16, Result<RingMode, RingError>)>,
    ) -> Result<RingMode, StartError> {
        let mut mode = RingMode::DeferTaskrun;
        for _ in 0..self.threads.len() {
            let (core, result) = ready.recv().expect("every core reports once");
            match result {
                Ok(ring_mode) => mode = ring_mode,
                Err(error) => {
                    self.stop_cores();
                    self.stop_admin();
                    tracing::debug!(core, "core failed to start");
                    return Err(StartError::Ring(error));
                }
            }
        }
        Ok(mode)
    }

    /// The address the listeners are bound to (the port picked, with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listen
    }

    /// Where `GET /metrics` is served, if anywhere.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin
    }

    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Connections each core keeps open at most.
    pub fn max_connections(&self) -> u32 {
        self.max_connections
    }

    /// How the cores' rings run deferred work.
    pub fn ring_mode(&self) -> RingMode {
        self.ring_mode
    }

    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            events: self.events.clone(),
        }
    }

    /// Serves until a drain (SIGINT, SIGTERM or a [`ShutdownHandle`]) has closed every
    /// connection and written every record, or a core failed and the others drained.
    pub fn wait(mut self) -> Result<(), RunError> {
        let mut failure = None;
        let mut running = self.threads.len();
        let mut serving = self.cores;
        while running > 0 {
            match self.inbox.recv().expect("this server holds a sender") {
                Event::Signal(signal) => {
                    tracing::info!(signal, "draining: stop accepting, flush replies, close all");
                    self.stop_cores();
                }
                Event::Shutdown => self.stop_cores(),
                Event::Exited { core, exit } => {
                    running -= 1;
                    if usize::from(core) < self.cores {
                        serving -= 1;
                    }
                    if let Some(error) = core_failure(core, exit) {
                        tracing::error!(%error, "stopping the other cores");
                        failure.get_or_insert(error);
                        self.stop_cores();
                    }
                    if serving == 0 {
                        self.stop_admin();
                    }
                }
            }
        }
        for thread in std::mem::take(&mut self.threads) {
            let _ = thread.join();
        }
        if let Some(log) = self.close_log.take() {
            log.finish().map_err(RunError::CloseLog)?;
        }
        match failure {
            Some(error) => Err(error),
            None => {
                tracing::info!("drained; exiting");
                Ok(())
            }
        }
    }

    fn stop_admin(&self) {
        if let Some(admin) = &self.admin_core {
            admin.stop.store(true, Ordering::Relaxed);
            socket::eventfd_signal(&*admin.wake);
        }
    }

    fn stop_cores(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for wake in &self.wakes {
            socket::eventfd_signal(&**wake);
        }
    }
}

/// Starts an engine serving `protocol` and runs it until it drains: [`Server::start`] then
/// [`Server::wait`].
pub fn serve<P: Protocol>(config: Config, protocol: P) -> Result<(), Box<dyn std::error::Error>> {
    Server::start(config, protocol)?.wait()?;
    Ok(())
}

fn core_failure(core: u16, exit: CoreExit) -> Option<RunError> {
    match exit {
        CoreExit::Served(Ok(())) => None,
        CoreExit::Served(Err(error)) => Some(RunError::CoreFailed { core, error }),
        CoreExit::Panicked(message) => Some(RunError::CorePanicked { core, message }),
    }
}

/// Sends the core's exit to the main thread on every path, a panic outside the core's own
/// catch included, so that no exit goes unreported and no drain waits forever.
struct ExitReport {
    core: u16,
    events: Option<Sender<Event>>,
}

impl ExitReport {
    fn send(mut self, exit: CoreExit) {
        if let Some(events) = self.events.take() {
            let _ = events.send(Event::Exited {
                core: self.core,
                exit,
            });
        }
    }
}

impl Drop for ExitReport {
    fn drop(&mut self) {
        if let Some(events) = self.events.take() {
            let exit = CoreExit::Panicked("the core's thread ended without a report".into());
            let _ = events.send(Event::Exited {
                core: self.core,
                exit,
            });
        }
    }
}

/// What every core gets a handle to.
struct Shared<P> {
    protocol: Arc<P>,
    settings: Arc<Settings>,
    metrics: Arc<[CoreMetrics]>,
    close_log: Option<CloseLogSender>,
    stop: Arc<AtomicBool>,
}

type Ready = Sender<(u16, Result<RingMode, RingError>)>;

/// One thread per listener, each pinned to its CPU when there are enough of them.
fn spawn_cores<P: Protocol>(
    listeners: Vec<OwnedFd>,
    cpus: &[usize],
    shared: Shared<P>,
    events: &Sender<Event>,
    ready: Ready,
) -> Result<Cores, StartError> {
    let cores = listeners.len();
    let wakes = (0..cores)
        .map(|_| new_eventfd().map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let wakers: Arc<[Waker]> = wakes.iter().cloned().map(Waker::new).collect();
    let meshes = mesh::build(wakers);
    let mut threads = Vec::with_capacity(cores);
    for ((core, listener), mesh) in listeners.into_iter().enumerate().zip(meshes) {
        let wake = wakes[core].clone();
        let setup = CoreSetup {
            core: core as u16,
            cpu: (cores <= cpus.len()).then(|| cpus[core]),
            listener,
            protocol: shared.protocol.clone(),
            settings: shared.settings.clone(),
            metrics: shared.metrics.clone(),
            metrics_slot: core,
            close_log: shared.close_log.clone(),
            wake,
            stop: shared.stop.clone(),
            mesh,
        };
        threads.push(spawn_core(setup, events.clone(), ready.clone())?);
    }
    Ok(Cores { wakes, threads })
}

/// What stops the admin core.
#[derive(Debug)]
struct AdminCore {
    stop: Arc<AtomicBool>,
    wake: Arc<OwnedFd>,
}

/// The started cores: the eventfd that wakes each, and its thread.
struct Cores {
    wakes: Vec<Arc<OwnedFd>>,
    threads: Vec<JoinHandle<()>>,
}

fn open_close_log(
    config: &Config,
) -> Result<(Option<CloseLog>, Option<CloseLogSender>), StartError> {
    let Some(path) = &config.close_log else {
        return Ok((None, None));
    };
    let (log, sender) = CloseLog::open(path).map_err(|error| StartError::CloseLog {
        path: path.display().to_string(),
        error,
    })?;
    Ok((Some(log), Some(sender)))
}

fn spawn_core<P: Protocol>(
    setup: CoreSetup<P>,
    events: Sender<Event>,
    ready: Ready,
) -> Result<JoinHandle<()>, StartError> {
    let core = setup.core;
    std::thread::Builder::new()
        .name(format!("core-{core}"))
        .spawn(move || {
            let report = ExitReport {
                core,
                events: Some(events),
            };
            let exit = core::run(setup, |result| {
                let _ = ready.send((core, result));
            });
            report.send(exit);
        })
        .map_err(|error| StartError::Io {
            what: "spawn core thread",
            error,
        })
}

fn watch_signals(events: Sender<Event>) -> Result<(), StartError> {
    let io = |error| StartError::Io {
        what: "signal handler",
        error,
    };
    let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(io)?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if events.send(Event::Signal(signal)).is_err() {
                    return;
                }
            }
        })
        .map_err(io)?;
    Ok(())
}

/// Binds the admin address (a plain listener: no other process may share it).
fn bind_admin(config: &Config) -> Result<Option<OwnedFd>, StartError> {
    let Some(addr) = config.admin else {
        return Ok(None);
    };
    socket::listen_exclusive(addr)
        .map(Some)
        .map_err(|error| StartError::Admin { addr, error })
}

/// Starts the admin core (after the serving cores: it is given the id after theirs).
fn spawn_admin(
    config: &Config,
    cores: usize,
    listener: OwnedFd,
    metrics: Arc<[CoreMetrics]>,
    events: &Sender<Event>,
    ready: Ready,
) -> Result<(SocketAddr, AdminCore, JoinHandle<()>), StartError> {
    let addr = socket::local_addr(&listener).map_err(|error| StartError::Io {
        what: "getsockname",
        error,
    })?;
    let wake = Arc::new(new_eventfd()?);
    let stop = Arc::new(AtomicBool::new(false));
    let setup = admin_core(config, cores, listener, metrics, wake.clone(), stop.clone());
    let thread = spawn_core(setup, events.clone(), ready)?;
    Ok((addr, AdminCore { stop, wake }, thread))
}

/// The core that serves `/metrics` with the engine's HTTP protocol: the engine's timeouts,
/// its own small limits, counters of its own, no close-log lines (the log is the served
/// connections' record), not pinned.
fn admin_core(
    config: &Config,
    id: usize,
    listener: OwnedFd,
    cores: Arc<[CoreMetrics]>,
    wake: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
) -> CoreSetup<Http<admin::Metrics>> {
    let mut settings = Settings::new(config, admin::ADMIN_CONNECTIONS_MAX);
    settings.ring_entries = admin::ADMIN_RING_ENTRIES;
    settings.buffers = admin::ADMIN_BUFFERS;
    settings.buffer_size = admin::ADMIN_BUFFER_SIZE;
    settings.batching = crate::config::Batching::Off;
    let own: Arc<[CoreMetrics]> = Arc::new([CoreMetrics::default()]);
    let mesh = mesh::build(Arc::new([Waker::new(wake.clone())]))
        .pop()
        .expect("a mesh of one core");
    let handler = admin::Metrics {
        cores,
        admin: own.clone(),
        log_drops: config.log_drops.clone(),
    };
    CoreSetup {
        core: id as u16,
        cpu: None,
        listener,
        protocol: Arc::new(Http::new(handler, http::Limits::default())),
        settings: Arc::new(settings),
        metrics: own,
        metrics_slot: 0,
        close_log: None,
        wake,
        stop,
        mesh,
    }
}

fn new_eventfd() -> Result<OwnedFd, StartError> {
    socket::eventfd().map_err(|error| StartError::Io {
        what: "eventfd",
        error,
    })
}

fn bind_listeners(config: &Config, cores: usize) -> Result<Vec<OwnedFd>, StartError> {
    let addr = config.listen;
    let listen_error = |error| StartError::Listen { addr, error };
    if addr.port() != 0 {
        // SO_REUSEPORT would let us silently share the port with another engine of this user:
        // a plain bind fails while anyone listens there.
        std::net::TcpListener::bind(addr).map_err(listen_error)?;
    }
    let timeout = config.tcp_user_timeout;
    let first = socket::listen_reuseport(addr, timeout).map_err(listen_error)?;
    // With port 0 the first bind picks the port; the other cores join it.
    let bound = socket::local_addr(&first).map_err(listen_error)?;
    let mut listeners = vec![first];
    for _ in 1..cores {
        listeners.push(socket::listen_reuseport(bound, timeout).map_err(listen_error)?);
    }
    Ok(listeners)
}

/// Connections per core: the user's explicit setting (with a warning when the file limit cannot
/// hold it), or what the file limit allows, at most `CONNECTIONS_PER_CORE_DEFAULT_MAX`.
fn connection_limit(explicit: Option<u32>, cores: usize) -> u32 {
    let cores = cores as u64;
    let want = cores * u64::from(explicit.unwrap_or(CONNECTIONS_PER_CORE_DEFAULT_MAX));
    let limit = match socket::raise_nofile_limit(want + FD_RESERVE) {
        Ok(limit) => limit,
        Err(error) => {
            tracing::warn!(%error, "could not read RLIMIT_NOFILE");
            want + FD_RESERVE
        }
    };
    let usable = limit.saturating_sub(FD_RESERVE.min(limit / 4));
    match explicit {
        Some(per_core) => {
            if u64::from(per_core) * cores > usable {
                tracing::warn!(
                    limit,
                    per_core,
                    cores,
                    "RLIMIT_NOFILE cannot hold --max-connections on every core: accepts beyond \
                     it fail with EMFILE (counted)"
                );
            }
            per_core
        }
        None => (usable / cores).clamp(1, u64::from(CONNECTIONS_PER_CORE_DEFAULT_MAX)) as u32,
    }
}
