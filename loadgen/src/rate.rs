//! The rate a run asked for against the rate it reached: requests in open loop (`--rate`),
//! connects in churn (`--connect-rate`). More than RATE_TOLERANCE_PERCENT short does not pass.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::concurrency::Concurrency;
use crate::limits::RATE_TOLERANCE_PERCENT;
use crate::stats::Stats;

/// Which rate was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateKind {
    /// `--rate`: ECHO requests per second (open loop).
    Request,
    /// `--connect-rate`: new connections per second (churn).
    Connect,
}

impl RateKind {
    pub const fn label(self) -> &'static str {
        match self {
            RateKind::Request => "request rate",
            RateKind::Connect => "connect rate",
        }
    }

    pub const fn flag(self) -> &'static str {
        match self {
            RateKind::Request => "--rate",
            RateKind::Connect => "--connect-rate",
        }
    }
}

/// One asked rate and what the run reached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateCheck {
    pub what: RateKind,
    pub asked_per_s: f64,
    pub reached_per_s: f64,
    pub tolerance_percent: u32,
    /// Whether `reached_per_s` is within the tolerance of `asked_per_s`.
    pub reached: bool,
    /// When not reached: what most likely held the rate back, and what to change.
    pub held_back_by: Option<String>,
}

impl RateCheck {
    /// Compares the rates; `held_back_by` is asked only when the rate was not reached.
    pub fn new(
        what: RateKind,
        asked_per_s: f64,
        reached_per_s: f64,
        held_back_by: impl FnOnce() -> String,
    ) -> RateCheck {
        let floor = asked_per_s * (1.0 - f64::from(RATE_TOLERANCE_PERCENT) / 100.0);
        let reached = reached_per_s >= floor;
        RateCheck {
            what,
            asked_per_s,
            reached_per_s,
            tolerance_percent: RATE_TOLERANCE_PERCENT,
            reached,
            held_back_by: (!reached).then(held_back_by),
        }
    }

    /// The reached rate as a percentage of the asked one.
    pub fn percent_of_asked(&self) -> f64 {
        if self.asked_per_s > 0.0 {
            100.0 * self.reached_per_s / self.asked_per_s
        } else {
            0.0
        }
    }
}

/// `asked 20000/s (--rate), reached 3012/s (15%)`, then `NOT REACHED ...` when short.
impl fmt::Display for RateCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "asked {}/s ({}), reached {}/s ({:.0}%)",
            per_second(self.asked_per_s),
            self.what.flag(),
            per_second(self.reached_per_s),
            self.percent_of_asked()
        )?;
        if !self.reached {
            write!(
                f,
                ": NOT REACHED (more than {}% short)",
                self.tolerance_percent
            )?;
        }
        Ok(())
    }
}

/// A rate for people: whole numbers from 10/s up, two decimals below.
pub fn per_second(rate: f64) -> String {
    if rate >= 10.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.2}")
    }
}

/// Open loop: the request rate reached. Every pipeline full means --connections x --pipeline
/// (or the engine) held it back; otherwise the client itself fell behind.
pub fn request_check(
    asked_per_s: f64,
    stats: &Stats,
    connections: u64,
    pipeline: u64,
    cpu_percent: f64,
) -> RateCheck {
    RateCheck::new(
        RateKind::Request,
        asked_per_s,
        stats.request_rate_per_s,
        || {
            if stats.backlog_waited {
                let in_flight = connections.saturating_mul(pipeline);
                format!(
                    "every pipeline was full: at most {in_flight} {} in flight (--connections \
                 {connections} x --pipeline {pipeline}); raise --connections or --pipeline, or \
                 the engine is too slow for this rate",
                    if in_flight == 1 {
                        "request"
                    } else {
                        "requests"
                    }
                )
            } else {
                format!(
                "the sends fell behind the schedule with room in the pipelines: the client was \
                 too slow (client cpu {cpu_percent:.0} %; try --threads)"
            )
            }
        },
    )
}

/// Churn: the connect rate reached. Connects due while every slot was busy mean the number
/// allowed open at once held it back; otherwise the connects themselves were too slow.
pub fn connect_check(
    asked_per_s: f64,
    stats: &Stats,
    concurrency: &Concurrency,
    cpu_percent: f64,
) -> RateCheck {
    RateCheck::new(
        RateKind::Connect,
        asked_per_s,
        stats.connect_rate_per_s,
        || {
            if stats.open_blocked {
                format!(
                    "connects were due while all {} connections allowed open at once were busy \
                 ({concurrency}); {}",
                    concurrency.open_max,
                    concurrency.advice()
                )
            } else {
                format!(
                    "the connects fell behind the schedule with slots free: the client or the \
                 engine was too slow (client cpu {cpu_percent:.0} %)"
                )
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrency::OpenBound;

    /// Defect: `--rate 20000` reached 15% and still said PASS.
    #[test]
    fn a_rate_more_than_the_tolerance_short_is_not_reached() {
        let edge = 1.0 - f64::from(RATE_TOLERANCE_PERCENT) / 100.0;
        let check = |reached| RateCheck::new(RateKind::Request, 1000.0, reached, || "why".into());
        assert!(check(1000.0).reached);
        assert!(check(1000.0 * edge).reached, "exactly at the tolerance");
        assert!(check(1200.0).reached);
        let short = check(1000.0 * edge - 1.0);
        assert!(!short.reached);
        assert_eq!(short.held_back_by.as_deref(), Some("why"));
        assert_eq!(check(1000.0).held_back_by, None);

        let mut stats = Stats {
            request_rate_per_s: 3000.0,
            backlog_waited: true,
            ..Stats::default()
        };
        let open_loop = request_check(20_000.0, &stats, 1, 1, 50.0);
        assert_eq!(
            open_loop.to_string(),
            "asked 20000/s (--rate), reached 3000/s (15%): NOT REACHED (more than 10% short)"
        );
        let why = open_loop.held_back_by.unwrap();
        assert!(why.contains("--connections 1 x --pipeline 1"), "{why}");

        stats.connect_rate_per_s = 25.0;
        stats.open_blocked = true;
        let slots = Concurrency {
            open_max: 5,
            bound: OpenBound::Flag,
        };
        let churn = connect_check(2000.0, &stats, &slots, 1.0);
        assert!(!churn.reached);
        let why = churn.held_back_by.unwrap();
        assert!(
            why.contains("(--connections 5); raise --connections"),
            "{why}"
        );
        assert_eq!(per_second(0.5), "0.50");
    }
}
