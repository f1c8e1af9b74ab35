//! One run: checks limits, starts the workers, shows progress, verifies and builds the report.

use std::sync::atomic::Ordering;
use std::thread;

use crate::cli::{RunArgs, Shape};
use crate::cpu;
use crate::error::LoadgenError;
use crate::limits::FD_RESERVE;
use crate::plan::{plans, run_nonce};
use crate::progress::Progress;
use crate::report::{Report, RunFacts};
use crate::stats::Stats;
use crate::verify::{check_log, check_metrics, scrape, Verification};
use crate::worker::{self, Shared};

/// Raises RLIMIT_NOFILE and checks it covers the connections the run keeps open.
fn check_fd_limit(concurrency: u64) -> Result<u64, LoadgenError> {
    let needed = concurrency + FD_RESERVE;
    let limit =
        engine::sys::socket::raise_nofile_limit(needed).map_err(|error| LoadgenError::Io {
            what: "raising RLIMIT_NOFILE",
            error,
        })?;
    if needed > limit {
        return Err(LoadgenError::FdLimit { needed, limit });
    }
    Ok(limit)
}

fn check_cpus(args: &RunArgs) -> Result<(), LoadgenError> {
    let Some(list) = &args.cpus else {
        return Ok(());
    };
    let allowed = engine::sys::socket::allowed_cpus().map_err(|error| LoadgenError::Io {
        what: "reading the CPU affinity",
        error,
    })?;
    match list.0.iter().find(|cpu| !allowed.contains(cpu)) {
        Some(&cpu) => Err(LoadgenError::Cpu { cpu, allowed }),
        None => Ok(()),
    }
}

fn config_json(args: &RunArgs) -> serde_json::Value {
    let duration =
        |d: Option<std::time::Duration>| d.map(|d| humantime::format_duration(d).to_string());
    serde_json::json!({
        "target": args.target,
        "shape": args.shape().name(),
        "connections": args.connections,
        "pipeline": args.pipeline,
        "payload": args.payload.0,
        "duration": duration(args.run_for()),
        "threads": args.threads,
        "cpus": args.cpus.as_ref().map(|c| c.0.clone()),
        "source_ips": args.source_ips,
        "connect_rate": args.connect_rate,
        "total": args.total,
        "requests_per_conn": args.total.map(|_| args.requests_per_conn),
        "close_mix": args.total.map(|_| args
            .close_mix
            .weights
            .iter()
            .map(|(mode, weight)| format!("{mode}={weight}"))
            .collect::<Vec<_>>()
            .join(",")),
        "seed": args.seed,
        "hold": args.hold,
        "rate": args.rate,
        "end_timeout": duration(Some(args.end_timeout)),
    })
}

/// Runs the traffic the flags describe and returns the verified report.
pub fn run(args: &RunArgs) -> Result<Report, LoadgenError> {
    let fd_limit = check_fd_limit(args.concurrency())?;
    check_cpus(args)?;
    let metrics_before = args.verify_metrics.as_deref().map(scrape).transpose()?;
    let plans = plans(args, run_nonce());
    let total: u64 = plans.iter().map(|p| p.conns.len()).sum();
    let cpu_before = cpu::process_cpu_time();
    let shared = Shared::new();
    let mut progress = Progress::new(args.quiet, total);
    let results: Vec<Result<Stats, LoadgenError>> = thread::scope(|scope| {
        let handles: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(i, plan)| {
                let shared = &shared;
                thread::Builder::new()
                    .name(format!("loadgen-{i}"))
                    .spawn_scoped(scope, move || {
                        let result = worker::run(plan, shared);
                        if result.is_err() {
                            shared.abort.store(true, Ordering::Relaxed);
                        }
                        result
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            progress.update(&shared);
            thread::sleep(progress.tick_interval());
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker panicked"))
            .collect()
    });
    progress.finish();
    let wall = shared.start.elapsed();
    let cpu_percent = match (cpu_before, cpu::process_cpu_time()) {
        (Some(before), Some(after)) => cpu::percent(after.saturating_sub(before), wall),
        _ => 0.0,
    };
    let mut stats = Stats::default();
    for result in results {
        stats.merge(result?);
    }
    if stats.opened == 0 && stats.connect_failed > 0 {
        eprintln!(
            "loadgen: target {} unreachable: all {} connects failed ({})",
            args.target.expect("required"),
            stats.connect_failed,
            stats
                .errors
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let mut verification = Verification {
        lost_replies: stats.lost_replies,
        corrupt_replies: stats.corrupt_replies,
        ..Verification::default()
    };
    verification.check_client(&stats.tags);
    if let Some(path) = &args.verify_log {
        check_log(path, &stats.tags, args.verify_wait, &mut verification)?;
    }
    if let (Some(url), Some(before)) = (&args.verify_metrics, &metrics_before) {
        check_metrics(
            url,
            before,
            &stats.tags,
            args.verify_wait,
            &mut verification,
        )?;
    }
    let facts = RunFacts {
        shape: args.shape().name(),
        open_loop: matches!(args.shape(), Shape::OpenLoop { .. }),
        config: config_json(args),
        cpu_percent,
        fd_limit,
    };
    Ok(Report::new(stats, facts, verification))
}
