//! The engine: a per-core io_uring TCP server that records why every connection closed.
//!
//! See ARCHITECTURE.md for the code map and the invariants.

pub mod admin;
pub mod classify;
pub mod cli;
pub mod config;
pub mod conn;
pub mod metrics;
pub mod record;
pub mod server;
pub mod sys;
pub mod timers;
pub mod token;
pub mod worker;
