//! How many connections a run may keep open at once, and what set that number: a flag, or
//! (churn with --connect-rate and no --connections) what the rate needs, within the limits.

use std::fmt;
use std::time::Duration;

use crate::cli::{RunArgs, Shape};
use crate::error::LoadgenError;
use crate::limits::{CHURN_OPEN_MAX, CONNECT_TIMEOUT, FD_RESERVE};

/// What set the number of connections allowed open at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OpenBound {
    /// `--connections N`, as given.
    Flag,
    /// `--connections` not given: its default.
    Default,
    /// `--hold N`.
    Hold,
    /// Churn with `--connect-rate`: the rate times the longest a connection can live.
    Rate { rate: f64, lifetime: Duration },
    /// What the rate needs, lowered to `--total`.
    Total,
    /// What the rate needs, lowered to CHURN_OPEN_MAX.
    Cap,
    /// What the rate needs, lowered to what RLIMIT_NOFILE leaves.
    FdLimit { limit: u64 },
}

/// Connections allowed open at once, over all workers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Concurrency {
    pub open_max: u64,
    pub bound: OpenBound,
}

/// The longest a churn connection can live: its connect, then its wait for the engine.
pub fn churn_lifetime(end_timeout: Duration) -> Duration {
    CONNECT_TIMEOUT.saturating_add(end_timeout)
}

impl Concurrency {
    /// What the flags ask for, before the descriptor limit is known.
    pub fn wanted(args: &RunArgs) -> Concurrency {
        let shape = args.shape();
        match (shape, args.connections, args.connect_rate) {
            (Shape::Hold { count }, _, _) => Concurrency {
                open_max: count,
                bound: OpenBound::Hold,
            },
            (_, Some(connections), _) => Concurrency {
                open_max: connections,
                bound: OpenBound::Flag,
            },
            (Shape::Churn { total }, None, Some(rate)) => {
                Concurrency::for_rate(rate, churn_lifetime(args.end_timeout), total)
            }
            _ => Concurrency {
                open_max: args.connections(),
                bound: OpenBound::Default,
            },
        }
    }

    /// Enough connections for `rate` connects per second that each live up to `lifetime`,
    /// at most `total` and CHURN_OPEN_MAX.
    pub fn for_rate(rate: f64, lifetime: Duration, total: u64) -> Concurrency {
        let needed = (rate * lifetime.as_secs_f64()).ceil();
        let needed = if needed.is_finite() && needed >= 1.0 {
            needed.min(u64::MAX as f64) as u64
        } else {
            1
        };
        let mut concurrency = Concurrency {
            open_max: needed,
            bound: OpenBound::Rate { rate, lifetime },
        };
        if total < concurrency.open_max {
            concurrency = Concurrency {
                open_max: total,
                bound: OpenBound::Total,
            };
        }
        if CHURN_OPEN_MAX < concurrency.open_max {
            concurrency = Concurrency {
                open_max: CHURN_OPEN_MAX,
                bound: OpenBound::Cap,
            };
        }
        concurrency
    }

    /// Whether the number was worked out (and may be lowered) rather than given by a flag.
    pub fn derived(&self) -> bool {
        matches!(
            self.bound,
            OpenBound::Rate { .. } | OpenBound::Total | OpenBound::Cap | OpenBound::FdLimit { .. }
        )
    }

    /// Descriptors a run with this many connections needs.
    pub fn fds_needed(&self) -> u64 {
        self.open_max.saturating_add(FD_RESERVE)
    }

    /// Fits the number into RLIMIT_NOFILE `limit`: a worked-out number is lowered to what the
    /// limit leaves; one a flag set that does not fit is an error naming the limit.
    pub fn fit(self, limit: u64) -> Result<Concurrency, LoadgenError> {
        let needed = self.fds_needed();
        if needed <= limit {
            return Ok(self);
        }
        let room = limit.saturating_sub(FD_RESERVE);
        if self.derived() && room > 0 {
            return Ok(Concurrency {
                open_max: room,
                bound: OpenBound::FdLimit { limit },
            });
        }
        Err(LoadgenError::FdLimit { needed, limit })
    }

    /// What to change to allow more connections open at once.
    pub fn advice(&self) -> &'static str {
        match self.bound {
            OpenBound::Flag => "raise --connections",
            OpenBound::Hold => "raise --hold",
            OpenBound::FdLimit { .. } => "raise the hard RLIMIT_NOFILE (ulimit -Hn)",
            OpenBound::Default | OpenBound::Rate { .. } | OpenBound::Total | OpenBound::Cap => {
                "pass a larger --connections"
            }
        }
    }
}

/// Why the number is what it is, e.g. `--connections 5`.
impl fmt::Display for Concurrency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.bound {
            OpenBound::Flag => write!(f, "--connections {}", self.open_max),
            OpenBound::Default => write!(f, "the default --connections {}", self.open_max),
            OpenBound::Hold => write!(f, "--hold {}", self.open_max),
            OpenBound::Rate { rate, lifetime } => write!(
                f,
                "--connect-rate {rate} x {} (the {} connect timeout + --end-timeout, the longest \
                 a connection can live)",
                humantime::format_duration(lifetime),
                humantime::format_duration(CONNECT_TIMEOUT),
            ),
            OpenBound::Total => write!(f, "--total {}", self.open_max),
            OpenBound::Cap => write!(f, "CHURN_OPEN_MAX {CHURN_OPEN_MAX}"),
            OpenBound::FdLimit { limit } => {
                write!(f, "RLIMIT_NOFILE {limit} less {FD_RESERVE} kept aside")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> RunArgs {
        let base = ["loadgen", "--target", "127.0.0.1:1"];
        crate::cli::Cli::try_parse_from(base.iter().chain(extra))
            .unwrap()
            .run
    }

    /// Defect: churn defaulted to one connection at a time, so --connect-rate 2000 opened about
    /// two per second. Without --connections the rate sets how many may be open.
    #[test]
    fn churn_with_a_connect_rate_allows_what_the_rate_needs() {
        let churn = ["--total", "20000", "--close-mix", "idle=1"];
        let wanted =
            Concurrency::wanted(&args(&[&churn[..], &["--connect-rate", "2000"]].concat()));
        // 2000/s x (5 s connect timeout + 5 s end timeout).
        assert_eq!(wanted.open_max, 20_000);
        assert!(matches!(wanted.bound, OpenBound::Rate { .. }), "{wanted:?}");
        assert!(
            wanted.to_string().contains("--connect-rate 2000 x 10s"),
            "{wanted}"
        );

        let short = args(
            &[
                &churn[..],
                &["--connect-rate", "100", "--end-timeout", "1s"],
            ]
            .concat(),
        );
        assert_eq!(Concurrency::wanted(&short).open_max, 600);

        let few = args(&[
            "--total",
            "50",
            "--close-mix",
            "idle=1",
            "--connect-rate",
            "2000",
        ]);
        let wanted = Concurrency::wanted(&few);
        assert_eq!((wanted.open_max, wanted.bound), (50, OpenBound::Total));

        let huge = Concurrency::for_rate(1e9, Duration::from_secs(10), u64::MAX);
        assert_eq!(
            (huge.open_max, huge.bound),
            (CHURN_OPEN_MAX, OpenBound::Cap)
        );
        assert_eq!(Concurrency::for_rate(1e-6, Duration::ZERO, 9).open_max, 1);

        let explicit = args(
            &[
                &churn[..],
                &["--connect-rate", "2000", "--connections", "5"],
            ]
            .concat(),
        );
        let wanted = Concurrency::wanted(&explicit);
        assert_eq!((wanted.open_max, wanted.bound), (5, OpenBound::Flag));
        assert_eq!(wanted.to_string(), "--connections 5");

        let no_rate = Concurrency::wanted(&args(&churn));
        assert_eq!((no_rate.open_max, no_rate.bound), (1, OpenBound::Default));
        let hold = Concurrency::wanted(&args(&["--hold", "7"]));
        assert_eq!((hold.open_max, hold.bound), (7, OpenBound::Hold));
    }

    #[test]
    fn the_fd_limit_lowers_a_worked_out_number_and_refuses_a_given_one() {
        let rate = Concurrency::for_rate(2000.0, Duration::from_secs(10), 100_000);
        let fitted = rate.fit(20_000).unwrap();
        assert_eq!(fitted.open_max, 20_000 - FD_RESERVE);
        assert_eq!(fitted.bound, OpenBound::FdLimit { limit: 20_000 });
        assert!(
            fitted.to_string().contains("RLIMIT_NOFILE 20000"),
            "{fitted}"
        );
        assert_eq!(rate.fit(1 << 20).unwrap(), rate);
        assert!(rate.fit(FD_RESERVE).is_err(), "no room at all");

        let given = Concurrency {
            open_max: 30_000,
            bound: OpenBound::Flag,
        };
        match given.fit(20_000) {
            Err(LoadgenError::FdLimit { needed, limit }) => {
                assert_eq!((needed, limit), (30_000 + FD_RESERVE, 20_000));
            }
            other => panic!("expected an fd-limit error, got {other:?}"),
        }
    }
}
