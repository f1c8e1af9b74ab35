//! A per-core io_uring TCP server engine that knows why every connection closed.
//!
//! One thread and one io_uring per core, multishot accept, multishot recv on a provided-buffer
//! ring, batched sends. You bring a [`Protocol`]: how to turn received bytes into replies and
//! verdicts. The engine brings the I/O, backpressure, idle and read timeouts, a graceful drain,
//! and for every connection the exact [`Cause`] of its close — peer FIN, FIN mid-message, reset,
//! idle timeout, stalled message, local close, protocol error, shutdown — as a tracing event
//! (target `engine::close`), a JSON line in the close log and a Prometheus counter.
//!
//! ```no_run
//! use engine::{Config, Context, MessagePhase, Output, Protocol, Step};
//!
//! /// Newline-delimited: every line is answered with itself; `QUIT` closes after its reply.
//! struct Echo;
//!
//! impl Protocol for Echo {
//!     type Session = ();
//!
//!     fn open(&self, _peer: Option<std::net::SocketAddr>) {}
//!
//!     fn on_input(&self, _: &mut (), input: &[u8], out: &mut Output<'_>, _: &Context) -> Step {
//!         let (mut used, mut lines) = (0, 0);
//!         while let Some(end) = input[used..].iter().position(|&b| b == b'\n') {
//!             let line = &input[used..used + end + 1];
//!             used += end + 1;
//!             lines += 1;
//!             out.push(line);
//!             if line == b"QUIT\n" {
//!                 return Step::close(used, lines);
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
mod core;
pub mod frame;
pub mod http;
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
pub use protocol_api::{
    Context, MessagePhase, Output, Protocol, Step, Verdict, MESSAGE_MAX_DEFAULT, REPLY_MAX,
};
pub use server::{serve, RunError, Server, ShutdownHandle, StartError};
pub use sys::RingMode;
