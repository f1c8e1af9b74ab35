//! Turns the run flags into per-worker plans: which connections (tag, close mode, requests,
//! source address) each worker opens, and its share of the concurrency and rates.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cli::{RunArgs, Shape};
use crate::limits::TAG_INDEX_BITS;
use crate::mix::{CloseMix, CloseMode};
use crate::worker::{ConnSpec, WorkerPlan};

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
/// runs against one engine (one close log) never share a tag.
pub fn tag_of(nonce: u64, index: u64) -> u64 {
    assert!(index < 1 << TAG_INDEX_BITS);
    nonce << TAG_INDEX_BITS | index
}

/// A per-run nonce of 64 - TAG_INDEX_BITS bits from the clock and the pid (never 0).
pub fn run_nonce() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = crate::mix::splitmix64(nanos ^ u64::from(std::process::id()) << 32);
    (mixed >> TAG_INDEX_BITS).max(1)
}

/// Splits `total` into `parts` shares differing by at most one; share `i`.
fn share(total: u64, parts: u64, i: u64) -> u64 {
    total / parts + u64::from(i < total % parts)
}

/// One plan per worker thread.
pub fn plans(args: &RunArgs, nonce: u64) -> Vec<WorkerPlan> {
    let shape = args.shape();
    let total = match shape {
        Shape::Churn { total } => total,
        Shape::Hold { count } => count,
        Shape::ClosedLoop | Shape::OpenLoop { .. } => args.connections,
    };
    let threads = args.threads.min(total).max(1);
    let concurrency = args.concurrency();
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
            concurrency: share(concurrency, threads, w).max(1) as usize,
            connect_rate: args.connect_rate.map(|r| r / threads as f64),
            request_rate: match shape {
                Shape::OpenLoop { rate } => Some(rate / threads as f64),
                _ => None,
            },
            pipeline: args.pipeline as usize,
            payloads: args.payload.0.clone(),
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
        let plans = plans(&cli.run, 5);
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
}
