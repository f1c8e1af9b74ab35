//! Process start-up and shutdown: listeners, cores, admin, close log, signals.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::config::{Args, Settings};
use crate::metrics::CoreMetrics;
use crate::record::CloseLog;
use crate::sys::{socket, RingError, RingMode};
use crate::worker::{self, WorkerSetup};

/// Why the engine could not start or stopped abnormally. Printed as one line, exit code 1.
#[derive(Debug)]
pub enum StartError {
    Listen {
        addr: SocketAddr,
        error: io::Error,
    },
    Admin {
        addr: SocketAddr,
        error: io::Error,
    },
    CloseLog {
        path: String,
        error: io::Error,
    },
    Ring(RingError),
    Io {
        what: &'static str,
        error: io::Error,
    },
    Worker {
        core: u16,
        error: io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Listen { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
            StartError::Admin { addr, error } => {
                write!(f, "cannot serve metrics on {addr}: {error}")
            }
            StartError::CloseLog { path, error } => {
                write!(f, "cannot open close log {path}: {error}")
            }
            StartError::Ring(error) => error.fmt(f),
            StartError::Io { what, error } => write!(f, "{what}: {error}"),
            StartError::Worker { core, error } => write!(f, "core {core} failed: {error}"),
        }
    }
}

impl std::error::Error for StartError {}

enum Event {
    Signal(i32),
    Exited { core: u16, result: io::Result<()> },
}

/// Runs the engine until SIGINT/SIGTERM has drained every core. `log_drops` counts log lines
/// dropped because stderr could not keep up.
pub fn run(args: &Args, log_drops: impl Fn() -> u64 + Send + 'static) -> Result<(), StartError> {
    let settings = Arc::new(Settings::from_args(args));
    let cpus = socket::allowed_cpus().map_err(|error| StartError::Io {
        what: "sched_getaffinity",
        error,
    })?;
    let cores = args.cores.map_or(cpus.len().max(1), usize::from);
    raise_fd_limit(cores as u64 * u64::from(settings.max_connections));
    let listeners = bind_listeners(args.listen, cores, &settings)?;
    let listen = socket::local_addr(&listeners[0]).map_err(|error| StartError::Io {
        what: "getsockname",
        error,
    })?;

    let metrics: Arc<[CoreMetrics]> = (0..cores).map(|_| CoreMetrics::default()).collect();
    let admin = crate::admin::serve(args.admin, metrics.clone(), log_drops).map_err(|error| {
        StartError::Admin {
            addr: args.admin,
            error,
        }
    })?;
    let (close_log, close_sender) = match &args.close_log {
        Some(path) => {
            let (log, sender) = CloseLog::open(path).map_err(|error| StartError::CloseLog {
                path: path.display().to_string(),
                error,
            })?;
            (Some(log), Some(sender))
        }
        None => (None, None),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let (events, inbox) = mpsc::channel();
    // Before any core starts and before the ready line: a SIGTERM from then on drains.
    let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|error| StartError::Io {
        what: "signal handler",
        error,
    })?;
    let signal_events = events.clone();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let _ = signal_events.send(Event::Signal(signal));
            }
        })
        .map_err(|error| StartError::Io {
            what: "spawn signal thread",
            error,
        })?;
    let mut wakes = Vec::with_capacity(cores);
    let mut threads: Vec<JoinHandle<()>> = Vec::with_capacity(cores);
    let (ready_tx, ready_rx) = mpsc::channel();
    for (core, listener) in listeners.into_iter().enumerate() {
        let core = core as u16;
        let wake = Arc::new(socket::eventfd().map_err(|error| StartError::Io {
            what: "eventfd",
            error,
        })?);
        wakes.push(wake.clone());
        let setup = WorkerSetup {
            core,
            // Pin core i to the i-th CPU we may use, when there are enough of them.
            cpu: (cores <= cpus.len()).then(|| cpus[usize::from(core)]),
            listener,
            settings: settings.clone(),
            metrics: metrics.clone(),
            close_log: close_sender.clone(),
            wake,
            stop: stop.clone(),
        };
        let events = events.clone();
        let ready_tx = ready_tx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("core-{core}"))
            .spawn(move || {
                let result = worker::run(setup, |ready| {
                    let _ = ready_tx.send((core, ready));
                });
                let _ = events.send(Event::Exited { core, result });
            })
            .map_err(|error| StartError::Io {
                what: "spawn core thread",
                error,
            })?;
        threads.push(thread);
    }
    drop(close_sender);
    drop(ready_tx);

    let mut mode = None;
    for _ in 0..cores {
        let (core, ready) = ready_rx.recv().expect("every core reports once");
        match ready {
            Ok(ring_mode) => mode = Some(ring_mode),
            Err(error) => {
                stop_cores(&stop, &wakes);
                tracing::debug!(core, "core failed to start");
                return Err(StartError::Ring(error));
            }
        }
    }
    let mode_name = match mode {
        Some(RingMode::DeferTaskrun) => "single_issuer+defer_taskrun",
        _ => "coop_taskrun",
    };
    tracing::info!(%listen, %admin, cores, ring = mode_name, "engine ready");
    // The one line on stdout: scripts and tests read the bound addresses from it.
    println!("engine ready listen={listen} admin={admin}");

    drop(events);

    let mut failure = None;
    let mut running = cores;
    while running > 0 {
        match inbox.recv().expect("cores report before they exit") {
            Event::Signal(signal) => {
                tracing::info!(signal, "draining: stop accepting, flush replies, close all");
                stop_cores(&stop, &wakes);
            }
            Event::Exited { core, result } => {
                running -= 1;
                if let Err(error) = result {
                    tracing::error!(core, %error, "core failed");
                    failure.get_or_insert(StartError::Worker { core, error });
                    stop_cores(&stop, &wakes);
                }
            }
        }
    }
    for thread in threads {
        let _ = thread.join();
    }
    if let Some(log) = close_log {
        log.finish().map_err(|error| StartError::Io {
            what: "close log",
            error,
        })?;
    }
    match failure {
        Some(error) => Err(error),
        None => {
            tracing::info!("drained; exiting");
            Ok(())
        }
    }
}

fn bind_listeners(
    addr: SocketAddr,
    cores: usize,
    settings: &Settings,
) -> Result<Vec<OwnedFd>, StartError> {
    let listen_error = |error| StartError::Listen { addr, error };
    if addr.port() != 0 {
        // SO_REUSEPORT would let us silently share the port with another engine of this user:
        // a plain bind fails while anyone listens there.
        std::net::TcpListener::bind(addr).map_err(listen_error)?;
    }
    let first = socket::listen_reuseport(addr, settings.tcp_user_timeout).map_err(listen_error)?;
    // With port 0 the first bind picks the port; the other cores join it.
    let bound = socket::local_addr(&first).map_err(listen_error)?;
    let mut listeners = vec![first];
    for _ in 1..cores {
        listeners.push(
            socket::listen_reuseport(bound, settings.tcp_user_timeout).map_err(listen_error)?,
        );
    }
    Ok(listeners)
}

/// Descriptors kept for listeners, rings, eventfds, the log and the admin endpoint.
const FD_RESERVE: u64 = 1024;

fn raise_fd_limit(connections: u64) {
    let want = connections + FD_RESERVE;
    match socket::raise_nofile_limit(want) {
        Ok(limit) if limit < want => tracing::warn!(
            limit,
            connections,
            "RLIMIT_NOFILE is below --max-connections × cores: accepts beyond it fail with EMFILE (counted)"
        ),
        Ok(limit) => tracing::debug!(limit, "RLIMIT_NOFILE"),
        Err(error) => tracing::warn!(%error, "could not raise RLIMIT_NOFILE"),
    }
}

fn stop_cores(stop: &AtomicBool, wakes: &[Arc<OwnedFd>]) {
    stop.store(true, Ordering::Relaxed);
    for wake in wakes {
        socket::eventfd_signal(&**wake);
    }
}
