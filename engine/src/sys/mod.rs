//! Every raw io_uring call, every `unsafe` block and every buffer-ring pointer of the engine.
//!
//! The rest of the engine sees safe types: [`Ring`] (submission, completion, waiting),
//! [`BufRing`] (the per-core provided-buffer ring), [`SendBuf`] (reply bytes pinned while the
//! kernel sends them) and the socket helpers in [`socket`].

mod buf_ring;
mod ring;
mod send_buf;
pub mod socket;

pub use buf_ring::BufRing;
pub use ring::{Batch, Completion, Ring, RingError, RingMode};
pub use send_buf::SendBuf;
