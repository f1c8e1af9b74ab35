//! One run: checks the setup, starts the workers, shows progress, verifies, diagnoses and
//! builds the report.

use std::sync::atomic::Ordering;
use std::thread;

use crate::cli::{RunArgs, Shape};
use crate::concurrency::Concurrency;
use crate::cpu;
use crate::diagnose::{end_timeout_hints, engine_gone_headline};
use crate::error::LoadgenError;
use crate::interrupt::Interrupt;
use crate::plan::{plans, run_nonce, WorkerPlan};
use crate::progress::{Gauge, Progress};
use crate::rate::{connect_check, request_check, RateCheck};
use crate::report::{Report, RunFacts};
use crate::stats::Stats;
use crate::verify::{check_log, check_metrics, require_log, scrape, LogCauses, Verification};
use crate::wire::WireProtocol;
use crate::worker::{self, Shared};

/// Raises RLIMIT_NOFILE for the connections the run keeps open at once and fits them into it.
fn fit_fd_limit(wanted: Concurrency) -> Result<(Concurrency, u64), LoadgenError> {
    let limit = engine::sys::socket::raise_nofile_limit(wanted.fds_needed()).map_err(|error| {
        LoadgenError::Io {
            what: "raising RLIMIT_NOFILE",
            error,
        }
    })?;
    Ok((wanted.fit(limit)?, limit))
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
        "protocol": args.protocol,
        "http_workload": (args.protocol == WireProtocol::Http).then(|| args.http_workload()),
        "connections": args.connections,
        "pipeline": args.pipeline,
        "payload": (args.protocol == WireProtocol::Frame).then(|| args.payloads()),
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
    if let Some(path) = &args.verify_log {
        require_log(path, "--verify-log")?;
    }
    let (concurrency, fd_limit) = fit_fd_limit(Concurrency::wanted(args))?;
    check_cpus(args)?;
    let interrupt = Interrupt::install().map_err(|error| LoadgenError::Io {
        what: "installing the SIGINT / SIGTERM handlers",
        error,
    })?;
    let metrics_before = args.verify_metrics.as_deref().map(scrape).transpose()?;
    let plans = plans(args, run_nonce(), concurrency.open_max);
    let total: u64 = plans.iter().map(|p| p.conns.len()).sum();
    let cpu_before = cpu::process_cpu_time();
    let shared = Shared::new();
    let gauge = match (args.shape(), args.run_for()) {
        (Shape::Churn { .. }, _) => Gauge::Connections(total),
        (_, Some(run_for)) => Gauge::Time(run_for),
        (_, None) => unreachable!("only churn runs without a duration"),
    };
    let mut progress = Progress::new(args.quiet, gauge);
    let results = run_workers(plans, &shared, &mut progress, &interrupt);
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
    report_unreachable(args, &stats);
    let (verification, causes) = verify(args, &stats, metrics_before.as_ref())?;
    let target = args.target.expect("--target is required for a run");
    let facts = RunFacts {
        shape: args.shape().name(),
        protocol: args.wire().name(),
        open_loop: matches!(args.shape(), Shape::OpenLoop { .. }),
        config: config_json(args),
        cpu_percent,
        fd_limit,
        concurrency,
        rates: rate_checks(args, &stats, &concurrency, cpu_percent),
        headline: engine_gone_headline(target, &stats),
        hints: end_timeout_hints(&stats.tags, args.end_timeout, causes.as_ref()),
        interrupted: shared.interrupted.load(Ordering::Acquire),
    };
    Ok(Report::new(stats, facts, verification))
}

/// Runs one thread per plan until all are done; the first Ctrl-C or SIGTERM stops them all.
fn run_workers(
    plans: Vec<WorkerPlan>,
    shared: &Shared,
    progress: &mut Progress,
    interrupt: &Interrupt,
) -> Vec<Result<Stats, LoadgenError>> {
    thread::scope(|scope| {
        let handles: Vec<_> = plans
            .into_iter()
            .enumerate()
            .map(|(i, plan)| {
                thread::Builder::new()
                    .name(format!("loadgen-{i}"))
                    .spawn_scoped(scope, move || {
                        let result = worker::run(plan, shared);
                        if result.is_err() {
                            shared.abort.store(true, Ordering::Release);
                        }
                        result
                    })
                    .expect("spawning a worker thread")
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            if interrupt.happened() && !shared.interrupted.swap(true, Ordering::AcqRel) {
                shared.abort.store(true, Ordering::Release);
            }
            progress.update(shared);
            thread::sleep(progress.tick_interval());
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("a worker panicked"))
            .collect()
    })
}

/// No connect succeeded: says so on stderr, with the errors seen.
fn report_unreachable(args: &RunArgs, stats: &Stats) {
    if stats.opened > 0 || stats.connect_failed == 0 {
        return;
    }
    eprintln!(
        "loadgen: target {} unreachable: all {} connects failed ({})",
        args.target.expect("--target is required for a run"),
        stats.connect_failed,
        stats
            .errors
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// The client's own checks, then the close log and the metrics if asked for.
fn verify(
    args: &RunArgs,
    stats: &Stats,
    metrics_before: Option<&crate::verify::MetricsSnapshot>,
) -> Result<(Verification, Option<LogCauses>), LoadgenError> {
    let mut verification = Verification {
        lost_replies: stats.lost_replies,
        corrupt_replies: stats.corrupt_replies,
        ..Verification::default()
    };
    verification.check_client(&stats.tags);
    let causes = match &args.verify_log {
        Some(path) => Some(check_log(
            path,
            &stats.tags,
            args.verify_wait,
            &mut verification,
        )?),
        None => None,
    };
    if let (Some(url), Some(before)) = (&args.verify_metrics, metrics_before) {
        check_metrics(
            url,
            before,
            &stats.tags,
            args.verify_wait,
            &mut verification,
        )?;
    }
    Ok((verification, causes))
}

/// The asked rate against the reached one: open loop's --rate, churn's --connect-rate.
fn rate_checks(
    args: &RunArgs,
    stats: &Stats,
    concurrency: &Concurrency,
    cpu_percent: f64,
) -> Vec<RateCheck> {
    match args.shape() {
        Shape::OpenLoop { rate } => vec![request_check(
            rate,
            stats,
            args.connections(),
            args.pipeline,
            cpu_percent,
        )],
        Shape::Churn { .. } => args
            .connect_rate
            .map(|rate| connect_check(rate, stats, concurrency, cpu_percent))
            .into_iter()
            .collect(),
        Shape::ClosedLoop | Shape::Hold { .. } => Vec::new(),
    }
}
