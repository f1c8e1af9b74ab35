//! Verification: the client's own checks (lost and corrupt replies, what it saw at the end),
//! the engine's close log per tag, and the /metrics close counters' deltas.

mod log;
mod metrics;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use log::{check_log, require_log, LogCauses, LogRecord};
pub use metrics::{check_metrics, scrape, MetricsSnapshot};

use crate::limits::MISMATCHES_LISTED_MAX;
use crate::stats::{Outcome, TagResult};

/// One thing that is not as the close mode says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// The connection's tag; `None` for a metrics counter.
    pub tag: Option<u64>,
    /// What was checked: `cause`, `record`, `frames_out`, `phase`, `partial_bytes`,
    /// `client_outcome`, `metric`, `log_line`.
    pub check: String,
    pub expected: String,
    pub got: String,
    pub mode: Option<String>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(tag) = self.tag {
            write!(f, "tag {tag:#x} ")?;
        }
        if let Some(mode) = &self.mode {
            write!(f, "({mode}) ")?;
        }
        write!(
            f,
            "{}: expected {}, got {}",
            self.check, self.expected, self.got
        )
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Tags looked up in the close log.
    pub checked: u64,
    /// Mismatches of every kind (the first MISMATCHES_LISTED_MAX are listed).
    pub mismatched: u64,
    pub lost_replies: u64,
    pub corrupt_replies: u64,
    /// Tags with no close record (also counted in `mismatched`).
    pub missing_records: u64,
    pub log_checked: bool,
    pub metrics_checked: bool,
    pub mismatches: Vec<Mismatch>,
}

impl Verification {
    pub fn add(&mut self, mismatch: Mismatch) {
        self.mismatched += 1;
        if self.mismatches.len() < MISMATCHES_LISTED_MAX {
            self.mismatches.push(mismatch);
        }
    }

    /// The client's own checks: every connection saw the end its mode predicts.
    pub fn check_client(&mut self, tags: &[TagResult]) {
        for tag in tags.iter().filter(|t| t.connected) {
            let expected = Outcome::expected_for(tag.mode);
            if tag.outcome != expected {
                self.add(Mismatch {
                    tag: Some(tag.tag),
                    check: "client_outcome".into(),
                    expected: expected.as_str().into(),
                    got: tag.outcome.as_str().into(),
                    mode: Some(tag.mode.as_str().into()),
                });
            }
        }
    }

    pub fn absorb(&mut self, other: Verification) {
        self.checked += other.checked;
        self.mismatched += other.mismatched;
        self.lost_replies += other.lost_replies;
        self.corrupt_replies += other.corrupt_replies;
        self.missing_records += other.missing_records;
        self.log_checked |= other.log_checked;
        self.metrics_checked |= other.metrics_checked;
        for mismatch in other.mismatches {
            if self.mismatches.len() < MISMATCHES_LISTED_MAX {
                self.mismatches.push(mismatch);
            }
        }
    }
}
