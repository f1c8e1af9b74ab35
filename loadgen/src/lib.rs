//! The load generator: drives the engine over io_uring in its frame protocol or HTTP/1.1, checks
//! every reply, ends connections in every way the engine classifies, and verifies the engine's
//! verdicts.
//!
//! See README.md for the flags and the JSON report's schema.

pub mod cli;
pub mod concurrency;
pub mod cpu;
pub mod diagnose;
pub mod error;
pub mod interrupt;
pub mod limits;
pub mod mix;
pub mod pattern;
pub mod plan;
pub mod progress;
pub mod rate;
pub mod report;
pub mod run;
pub mod stats;
pub mod verify;
pub mod wire;
pub mod worker;
