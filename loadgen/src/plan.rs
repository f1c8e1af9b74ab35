//! Turns the run flags into per-worker plans: which connections (tag, close mode, requests,
//! source address) each worker opens, and its share of the concurrency and rates. The plan types
//! live here; `worker/` reads them and this module knows nothing of the worker.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cli::{RunArgs, Shape};
use crate::limits::{TAG_INDEX_BITS, TAG_NONCE_BITS};
use crate::mix::{CloseMix, CloseMode};
use crate::wire::Wire;

/// What one worker is asked to do.
#[derive(Debug)]
pub struct WorkerPlan {
    pub target: SocketAddr,
    pub shape: Shape,
    /// Its connections, in the order they open.
    pub conns: Specs,
    /// Connections open at once, at most.
    pub concurrency: usize,
    /// This worker's share of --connect-rate (per second).
    pub connect_rate: Option<f64>,
    /// This worker's share of --rate (requests per second).
    pub request_rate: Option<f64>,
    pub pipeline: usize,
    /// The protocol and what shapes its requests.
    pub wire: Wire,
    pub run_for: Option<Duration>,
    pub end_timeout: Duration,
    pub cpu: Option<usize>,
}

/// What a connection is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnSpec {
    pub tag: u64,
    pub mode: CloseMode,
    /// Requests before it ends; `None`: until the run stops.
    pub requests: Option<u64>,
    pub source: Option<IpAddr>,
}

/// The connections of one worker, made on demand: global indices `first`, `first + stride`, ...
#[derive(Clone, Debug)]
pub struct Specs {
    nonce: u64,
    shape: Shape,
    mix: Arc<CloseMix>,
    seed: u64,
    requests_per_conn: u64,
    sources: Arc<[IpAddr]>,
    first: u64,
    stride: u64,
    count: u64,
}

impl Specs {
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The `k`-th connection of this worker.
    pub fn get(&self, k: u64) -> ConnSpec {
        assert!(k < self.count, "spec {k} of {}", self.count);
        let index = self.first + k * self.stride;
        let (mode, requests) = match self.shape {
            Shape::Churn { .. } => (
                self.mix.draw(self.seed, index),
                Some(self.requests_per_conn),
            ),
            Shape::Hold { .. } => (CloseMode::Hold, None),
            Shape::ClosedLoop | Shape::OpenLoop { .. } => (CloseMode::Fin, None),
        };
        let source = (!self.sources.is_empty())
            .then(|| self.sources[(index % self.sources.len() as u64) as usize]);
        ConnSpec {
            tag: tag_of(self.nonce, index),
            mode,
            requests,
            source,
        }
    }
}

/// A tag: the run's nonce in the high bits, the connection's index in the low ones, so that
/// runs against one engine (one close log) never share a tag. Below 2^TAG_BITS (2^53): exact
/// in every JSON reader, also those that hold numbers as doubles.
pub fn tag_of(nonce: u64, index: u64) -> u64 {
    assert!(nonce < 1 << TAG_NONCE_BITS, "nonce {nonce:#x} too wide");
    assert!(index < 1 << TAG_INDEX_BITS, "index {index:#x} too wide");
    nonce << TAG_INDEX_BITS | index
}

/// A per-run nonce from the clock and the pid (see [`nonce_from`]).
pub fn run_nonce() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nonce_from(nanos ^ u64::from(std::process::id()) << 32)
}

/// A nonce of TAG_NONCE_BITS bits, never 0, from any 64-bit seed.
pub fn nonce_from(seed: u64) -> u64 {
    (crate::mix::splitmix64(seed) >> (64 - TAG_NONCE_BITS)).max(1)
}

/// Splits `total` into `parts` shares differing by at most one; share `i`.
fn share(total: u64, parts: u64, i: u64) -> u64 {
    total / parts + u64::from(i < total % parts)
}

/// One plan per worker thread; `concurrency`: connections open at once over all of them.
pub fn plans(args: &RunArgs, nonce: u64, concurrency: u64) -> Vec<WorkerPlan> {
    let shape = args.shape();
    let total = match shape {
        Shape::Churn { total } => total,
        Shape::Hold { count } => count,
        Shape::ClosedLoop | Shape::OpenLoop { .. } => args.connections(),
    };
    let threads = args.threads.min(total).max(1);
    let mix = Arc::new(args.close_mix.clone());
    let sources: Arc<[IpAddr]> = args.source_ips.clone().into();
    let cpus = args
        .cpus
        .as_ref()
        .map(|list| list.0.clone())
        .unwrap_or_default();
    (0..threads)
        .map(|w| WorkerPlan {
            target: args.target.expect("--target is required for a run"),
            shape,
            conns: Specs {
                nonce,
                shape,
                mix: Arc::clone(&mix),
                seed: args.seed,
                requests_per_conn: args.requests_per_conn,
                sources: Arc::clone(&sources),
                first: w,
                stride: threads,
                count: share(total, threads, w),
            },
            concurrency: usize::try_from(share(concurrency, threads, w).max(1))
                .unwrap_or(usize::MAX),
            connect_rate: args.connect_rate.map(|r| r / threads as f64),
            request_rate: match shape {
                Shape::OpenLoop { rate } => Some(rate / threads as f64),
                _ => None,
            },
            pipeline: args.pipeline as usize,
            wire: args.wire(),
            run_for: args.run_for(),
            end_timeout: args.end_timeout,
            cpu: (!cpus.is_empty()).then(|| cpus[w as usize % cpus.len()]),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Defect: plan.rs and worker/mod.rs imported each other. The worker reads plans; the plan
    /// knows nothing of the worker (its types live here).
    #[test]
    fn the_plan_does_not_depend_on_the_worker() {
        let worker_path = concat!("crate::", "worker");
        assert!(
            !include_str!("plan.rs").contains(worker_path),
            "plan.rs must not use {worker_path}"
        );
        assert!(include_str!("worker/mod.rs").contains("use crate::plan::{ConnSpec, WorkerPlan};"));
    }

    #[test]
    fn workers_split_the_connections_without_overlap() {
        let cli = crate::cli::Cli::try_parse_from([
            "loadgen",
            "--target",
            "127.0.0.1:1",
            "--total",
            "10",
            "--threads",
            "3",
            "--connections",
            "4",
            "--close-mix",
            "fin=1,idle=1",
            "--source-ips",
            "127.0.0.1,127.0.0.2",
        ])
        .unwrap();
        let plans = plans(&cli.run, 5, 4);
        assert_eq!(plans.len(), 3);
        let mut tags: Vec<u64> = plans
            .iter()
            .flat_map(|p| (0..p.conns.len()).map(move |k| p.conns.get(k).tag))
            .collect();
        tags.sort_unstable();
        let expected: Vec<u64> = (0..10).map(|i| tag_of(5, i)).collect();
        assert_eq!(tags, expected);
        assert_eq!(plans.iter().map(|p| p.concurrency).sum::<usize>(), 4);
        let first = plans[0].conns.get(1);
        assert_eq!(first.requests, Some(10));
        assert_eq!(
            first.source,
            Some("127.0.0.2".parse().unwrap()),
            "index 3 → second ip"
        );
    }

    /// Defect: tags reached 2^64, so jq and JavaScript (numbers as doubles) read them wrong.
    /// Every tag a run can draw stays below 2^53, at the edges of both halves too.
    #[test]
    fn every_tag_reads_exactly_as_a_json_double() {
        use crate::limits::{CONNECTIONS_MAX, TAG_BITS, TOTAL_MAX};
        const EXACT: u64 = 1 << TAG_BITS;
        let exact = |tag: u64| {
            let text = serde_json::to_string(&tag).unwrap();
            let as_double: f64 = serde_json::from_str(&text).unwrap();
            tag < EXACT && as_double as u64 == tag && as_double == tag as f64
        };
        let edge_seeds = [0, 1, u64::MAX, u64::MAX - 1, 1 << 63, EXACT, EXACT - 1];
        let seeds = (0..100_000u64).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut widest = 0;
        for seed in seeds.chain(edge_seeds) {
            let nonce = nonce_from(seed);
            assert!(
                (1..1 << TAG_NONCE_BITS).contains(&nonce),
                "nonce {nonce:#x}"
            );
            widest = widest.max(nonce);
            for index in [0, 1, CONNECTIONS_MAX as u64, TOTAL_MAX] {
                let tag = tag_of(nonce, index);
                assert!(exact(tag), "tag {tag:#x} of seed {seed:#x}");
            }
        }
        assert!(
            widest > 1 << (TAG_NONCE_BITS - 1),
            "the nonces use their whole range"
        );
        let top = tag_of((1 << TAG_NONCE_BITS) - 1, TOTAL_MAX);
        assert_eq!(top, EXACT - 1);
        assert!(exact(top));
        assert!(
            !exact(EXACT + 1),
            "2^53 + 1 is where doubles start to round"
        );
        for _ in 0..1000 {
            assert!(exact(tag_of(run_nonce(), TOTAL_MAX)));
        }
        let cli = crate::cli::Cli::try_parse_from([
            "loadgen",
            "--target",
            "127.0.0.1:1",
            "--total",
            "5000",
            "--threads",
            "3",
        ])
        .unwrap();
        for plan in plans(&cli.run, run_nonce(), 10) {
            assert!((0..plan.conns.len()).all(|k| exact(plan.conns.get(k).tag)));
        }
    }
}
