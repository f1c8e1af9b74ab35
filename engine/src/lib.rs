//! A per-core io_uring TCP server engine that knows why every connection closed.
//!
//! One thread and one io_uring per core, multishot accept, multishot recv on a provided-buffer
//! ring, batched sends. You bring a [`Protocol`]: how to turn received bytes into replies and
//! verdicts. The engine brings the I/O, backpressure, idle and read timeouts, a graceful drain,
//! and for every connection the exact [`Cause`] of its close — peer FIN, FIN mid-message, reset,
//! idle timeout, stalled message, the peer's request, local close, protocol error, slow consumer,
//! shutdown — as a tracing event (target `engine::close`), a JSON line in the close log, a
//! Prometheus counter and a call of [`Protocol::on_close`].
//!
//! Real servers need more than answering the bytes at hand; every callback gets a [`Context`]
//! for it: replies that come later ([`Context::defer`], [`Context::reply`]), pushes to any
//! connection of the core by its [`ConnId`] ([`Context::push`], bounded: a peer that does not
//! read is closed as `slow_consumer`), timers per connection and per core, messages to other
//! cores ([`Context::send`], woken with `IORING_OP_MSG_RING`) and per-core state
//! ([`Protocol::CoreState`]).
//!
//! ```no_run
//! use engine::{Config, Context, MessagePhase, Protocol, Step};
//!
//! /// Newline-delimited: every line is answered with itself; `QUIT` closes after its reply.
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     type Session = ();
//!     type CoreState = ();
//!     type Message = ();
//!
//!     fn core_state(&self, _core: u16) {}
//!
//!     fn open(&self, _peer: Option<std::net::SocketAddr>, _: &mut Context<'_, Self>) {}
//!
//!     fn on_input(&self, _: &mut (), input: &[u8], cx: &mut Context<'_, Self>) -> Step {
//!         let (mut used, mut lines) = (0, 0);
//!         while let Some(end) = input[used..].iter().position(|&b| b == b'\n') {
//!             let line = &input[used..used + end + 1];
//!             used += end + 1;
//!             lines += 1;
//!             cx.output().push(line);
//!             if line == b"QUIT\n" {
//!                 return Step::peer_close(used, lines); // the peer asked: `peer_close`
//!             }
//!         }
//!         Step::more(used, lines) // the engine keeps the incomplete line
//!     }
//!
//!     fn partial_phase(&self, _: &(), _tail: &[u8]) -> MessagePhase {
//!         MessagePhase::Header
//!     }
//! }
//!
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = Config::new().listen("127.0.0.1:7000".parse()?);
//!     engine::serve(config, Echo) // until SIGINT/SIGTERM has drained every connection
//! }
//! ```
//!
//! [`Server`] gives more control: the bound addresses (with port 0), a [`ShutdownHandle`], and
//! the reason a run failed. `engine/examples/line.rs` is a complete server built only on this
//! public API. See ARCHITECTURE.md for the code map and its invariants.
#![deny(unsafe_code)]

mod admin;
pub mod classify;
mod config;
mod conn;
mod context;
mod core;
pub mod frame;
pub mod http;
mod mesh;
pub mod metrics;
mod protocol_api;
pub mod record;
mod server;
pub mod sys;
mod timers;
pub mod token;

pub use classify::{Cause, Phase};
pub use config::{
    Batching, ClassifyMode, Config, ConfigError, LogDrops, BATCH_BUDGET_DEFAULT,
    BATCH_TARGET_DEFAULT, BATCH_TARGET_MAX, BATCH_TARGET_MIN, BATCH_WAIT_MAX, BUFFERS_DEFAULT,
    BUFFERS_MAX, BUFFER_SIZE_DEFAULT, BUFFER_SIZE_MAX, BUFFER_SIZE_MIN,
    CONNECTIONS_PER_CORE_DEFAULT_MAX, CONNECTIONS_PER_CORE_MAX, CORES_MAX, IDLE_TIMEOUT_DEFAULT,
    QUEUED_BYTES_DEFAULT, QUEUED_BYTES_MIN, READ_TIMEOUT_DEFAULT, RING_ENTRIES_DEFAULT,
    RING_ENTRIES_MAX, RING_ENTRIES_MIN, SHUTDOWN_TIMEOUT_DEFAULT, TIMEOUT_MAX, TIMEOUT_MIN,
};
pub use mesh::{Wake, MESSAGES_PER_PASS_MAX, MESSAGES_QUEUED_MAX};
pub use protocol_api::{
    BroadcastError, ConnId, Context, MessagePhase, Output, Protocol, SendError, Step, TimerError,
    Verdict, WriteError, CONN_TIMERS, CORE_TIMERS, MESSAGE_MAX_DEFAULT, REPLY_MAX, TIMER_AFTER_MAX,
};
pub use record::CloseRecord;
pub use server::{serve, RunError, Server, ShutdownHandle, StartError};
pub use sys::RingMode;
