//! Every raw io_uring call, every `unsafe` block and every buffer-ring pointer of the engine.
//!
//! The rest of the engine sees safe types that are sound for any caller, not only in the
//! engine's own call order:
//! - [`Ring`]: submission, waiting, and completions. It owns every resource the kernel may use
//!   on a caller's behalf — the provided buffers its recvs fill and the bytes of its sends in
//!   flight — and frees none of them while an operation may still touch it.
//! - [`Completion`]: what an operation was ([`Op`], kept in the user_data by this layer, not by
//!   the caller) and what it carries; an accepted socket, a buffer or a send's bytes can be
//!   taken once, because a completion is neither `Copy` nor `Clone`.
//! - [`SendBuf`]: bytes to send; moved into the ring while in flight.
//! - [`socket`]: listeners, socket options, limits, CPUs.
//! - [`seccomp`]: a child process in which io_uring is unavailable, for tests.
#![allow(unsafe_code)]

mod buf_ring;
mod completion;
mod enter;
mod op;
mod ring;
pub mod seccomp;
mod send_buf;
pub mod socket;

pub use buf_ring::{Consumption, BUF_RING_ENTRIES_MAX};
pub use completion::Completion;
pub use op::{Op, USER_DATA_BITS, USER_DATA_MAX};
pub use ring::{Batch, Ring, RingError, RingMode, Target, KERNEL_MIN};
pub use send_buf::{SendBuf, SendId};
