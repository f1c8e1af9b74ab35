//! The run report: the JSON document (`--json`), the human table, and `merge`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::concurrency::Concurrency;
use crate::error::LoadgenError;
use crate::rate::RateCheck;
use crate::stats::{new_histogram, Stats, TagResult};
use crate::verify::Verification;

/// Bumped when a field changes meaning (fields added since are `#[serde(default)]`).
pub const REPORT_VERSION: u32 = 1;

/// Exit status: a mismatch, lost or corrupt reply, unexpected close or failed connect.
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad flags or a setup error (clap also exits 2).
pub const EXIT_SETUP: u8 = 2;
/// Exit status: everything checked out, but an asked rate was not reached.
pub const EXIT_RATE_NOT_REACHED: u8 = 3;
/// Exit status: Ctrl-C or SIGTERM (128 + SIGINT, as shells report Ctrl-C; the same for both).
pub const EXIT_INTERRUPTED: u8 = 130;

/// What the report says in the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// Everything checked out but an asked rate was not reached.
    RateNotReached,
    /// Ctrl-C or SIGTERM: the report is partial.
    Interrupted,
}

impl Verdict {
    pub const fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Fail => EXIT_FAILED,
            Verdict::RateNotReached => EXIT_RATE_NOT_REACHED,
            Verdict::Interrupted => EXIT_INTERRUPTED,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail => "FAIL",
            Verdict::RateNotReached => "FAIL (rate not reached)",
            Verdict::Interrupted => "INTERRUPTED (partial: what ran before Ctrl-C / SIGTERM)",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    pub fn of(hist: &Histogram<u64>) -> Percentiles {
        if hist.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: hist.len(),
            mean: hist.mean(),
            p50: hist.value_at_quantile(0.50),
            p90: hist.value_at_quantile(0.90),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
        }
    }
}

/// A histogram as its non-empty buckets: `[value_us, count]` pairs (value = the bucket's highest
/// equivalent value). Merging re-records them: exact to the histogram's precision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HistogramCounts {
    pub sigfig: u8,
    pub counts: Vec<(u64, u64)>,
}

impl HistogramCounts {
    pub fn of(hist: &Histogram<u64>) -> HistogramCounts {
        HistogramCounts {
            sigfig: hist.sigfig(),
            counts: hist
                .iter_recorded()
                .map(|v| (v.value_iterated_to(), v.count_at_value()))
                .collect(),
        }
    }

    pub fn to_histogram(&self) -> Histogram<u64> {
        let mut hist = new_histogram();
        for &(value, count) in &self.counts {
            hist.saturating_record_n(value, count);
        }
        hist
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Connections {
    /// Connects that succeeded (HELLO sent).
    pub opened: u64,
    /// Connects that failed or timed out.
    pub failed: u64,
    /// Connections that ended (opened ones), by close mode.
    pub closed: u64,
    pub closed_by_mode: BTreeMap<String, u64>,
    /// What the client saw at the end: fin, rst, timeout, local, refused, error.
    pub outcomes: BTreeMap<String, u64>,
    /// Connections allowed open at once, and what set that number.
    #[serde(default)]
    pub allowed_open: u64,
    #[serde(default)]
    pub allowed_open_by: String,
    /// The most open at once (each worker's peak, summed).
    #[serde(default)]
    pub peak_open: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: u32,
    pub shape: String,
    /// `frame`, `http pipeline` or `http baseline` (merge: `mixed` if they differ).
    #[serde(default = "frame_protocol")]
    pub protocol: String,
    pub config: serde_json::Value,
    pub duration_s: f64,
    pub requests: u64,
    pub replies: u64,
    pub throughput_rps: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Open loop: from each request's intended send time (coordinated omission corrected).
    pub latency_us: Percentiles,
    /// Open loop only: from each request's actual send time.
    pub latency_uncorrected_us: Option<Percentiles>,
    pub connections: Connections,
    pub verification: Verification,
    pub errors: BTreeMap<String, u64>,
    pub client_cpu_percent: f64,
    pub fd_limit: u64,
    pub histogram: HistogramCounts,
    pub histogram_uncorrected: Option<HistogramCounts>,
    /// Open loop (`--rate`) and churn with `--connect-rate`: the rate asked and reached.
    #[serde(default)]
    pub rates: Vec<RateCheck>,
    /// One line that explains many failures at once (the engine stopped answering).
    #[serde(default)]
    pub headline: Option<String>,
    /// What to change when a loadgen flag, not the engine, made connections end wrongly.
    #[serde(default)]
    pub hints: Vec<String>,
    /// Ctrl-C or SIGTERM stopped the run: the report covers what ran until then.
    #[serde(default)]
    pub interrupted: bool,
    /// Every connection: tag, close mode, what the client saw, requests and replies.
    pub tags: Vec<TagResult>,
}

/// What the run itself knew besides the workers' stats.
#[derive(Debug)]
pub struct RunFacts {
    pub shape: &'static str,
    pub protocol: String,
    pub open_loop: bool,
    pub config: serde_json::Value,
    pub cpu_percent: f64,
    pub fd_limit: u64,
    pub concurrency: Concurrency,
    pub rates: Vec<RateCheck>,
    pub headline: Option<String>,
    pub hints: Vec<String>,
    pub interrupted: bool,
}

impl Report {
    pub fn new(stats: Stats, facts: RunFacts, verification: Verification) -> Report {
        let duration_s = stats.elapsed_us as f64 / 1e6;
        let connected = stats.tags.iter().filter(|t| t.connected).count() as u64;
        Report {
            version: REPORT_VERSION,
            shape: facts.shape.to_owned(),
            protocol: facts.protocol,
            config: facts.config,
            duration_s,
            requests: stats.requests,
            replies: stats.replies,
            throughput_rps: if duration_s > 0.0 {
                stats.replies as f64 / duration_s
            } else {
                0.0
            },
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            latency_us: Percentiles::of(&stats.latency_us),
            latency_uncorrected_us: facts
                .open_loop
                .then(|| Percentiles::of(&stats.latency_uncorrected_us)),
            connections: Connections {
                opened: stats.opened,
                failed: stats.connect_failed,
                closed: connected,
                closed_by_mode: stats.closed_by_mode(),
                outcomes: stats.outcomes(),
                allowed_open: facts.concurrency.open_max,
                allowed_open_by: facts.concurrency.to_string(),
                peak_open: stats.peak_open,
            },
            verification,
            errors: stats.errors.clone(),
            client_cpu_percent: facts.cpu_percent,
            fd_limit: facts.fd_limit,
            histogram: HistogramCounts::of(&stats.latency_us),
            histogram_uncorrected: facts
                .open_loop
                .then(|| HistogramCounts::of(&stats.latency_uncorrected_us)),
            rates: facts.rates,
            headline: facts.headline,
            hints: facts.hints,
            interrupted: facts.interrupted,
            tags: stats.tags,
        }
    }

    /// No mismatch, no lost or corrupt reply, no error of any kind.
    pub fn passed(&self) -> bool {
        let v = &self.verification;
        v.mismatched == 0 && v.lost_replies == 0 && v.corrupt_replies == 0 && self.errors.is_empty()
    }

    /// Whether every asked rate was reached (true when none was asked).
    pub fn rates_reached(&self) -> bool {
        self.rates.iter().all(|rate| rate.reached)
    }

    /// Interrupted, then failed checks, then a missed rate, in that order.
    pub fn verdict(&self) -> Verdict {
        if self.interrupted {
            Verdict::Interrupted
        } else if !self.passed() {
            Verdict::Fail
        } else if !self.rates_reached() {
            Verdict::RateNotReached
        } else {
            Verdict::Pass
        }
    }

    pub fn read(path: &Path) -> Result<Report, LoadgenError> {
        let error = |error: String| LoadgenError::Report {
            path: path.to_owned(),
            error,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        let report: Report = serde_json::from_str(&text).map_err(|e| error(e.to_string()))?;
        if report.version != REPORT_VERSION {
            return Err(error(format!(
                "version {} (this loadgen reads {REPORT_VERSION})",
                report.version
            )));
        }
        Ok(report)
    }

    pub fn write(&self, path: &Path) -> Result<(), LoadgenError> {
        let text = serde_json::to_string_pretty(self).expect("a report serializes");
        std::fs::write(path, text + "\n").map_err(|error| LoadgenError::Io {
            what: "writing the JSON report",
            error,
        })
    }

    /// Merges reports of runs that ran side by side: counts add up, throughputs add up, the
    /// duration is the longest, latency percentiles come from the merged histograms.
    pub fn merge(reports: Vec<Report>) -> Report {
        assert!(!reports.is_empty());
        let mut hist = new_histogram();
        let mut hist_uncorrected: Option<Histogram<u64>> = None;
        let mut merged = reports[0].clone();
        merged.config = serde_json::Value::Array(Vec::new());
        merged.tags.clear();
        let zero = Report {
            requests: 0,
            replies: 0,
            throughput_rps: 0.0,
            bytes_sent: 0,
            bytes_received: 0,
            duration_s: 0.0,
            connections: Connections::default(),
            verification: Verification::default(),
            errors: BTreeMap::new(),
            client_cpu_percent: 0.0,
            rates: Vec::new(),
            headline: None,
            hints: Vec::new(),
            interrupted: false,
            ..merged
        };
        let mut merged = zero;
        for report in reports {
            mix_into(&mut merged.shape, &report.shape);
            mix_into(&mut merged.protocol, &report.protocol);
            if let serde_json::Value::Array(configs) = &mut merged.config {
                configs.push(report.config);
            }
            merged.duration_s = merged.duration_s.max(report.duration_s);
            merged.requests += report.requests;
            merged.replies += report.replies;
            merged.throughput_rps += report.throughput_rps;
            merged.bytes_sent += report.bytes_sent;
            merged.bytes_received += report.bytes_received;
            hist.add(report.histogram.to_histogram())
                .expect("same bounds");
            if let Some(counts) = &report.histogram_uncorrected {
                hist_uncorrected
                    .get_or_insert_with(new_histogram)
                    .add(counts.to_histogram())
                    .expect("same bounds");
            }
            let c = &mut merged.connections;
            c.opened += report.connections.opened;
            c.failed += report.connections.failed;
            c.closed += report.connections.closed;
            add_maps(&mut c.closed_by_mode, report.connections.closed_by_mode);
            add_maps(&mut c.outcomes, report.connections.outcomes);
            c.allowed_open += report.connections.allowed_open;
            c.peak_open += report.connections.peak_open;
            merged.rates.extend(report.rates);
            merged.headline = merged.headline.or(report.headline);
            merged.hints.extend(report.hints);
            merged.interrupted |= report.interrupted;
            merged.verification.absorb(report.verification);
            add_maps(&mut merged.errors, report.errors);
            merged.client_cpu_percent += report.client_cpu_percent;
            merged.fd_limit = merged.fd_limit.max(report.fd_limit);
            merged.tags.extend(report.tags);
        }
        merged.connections.allowed_open_by = "the sum over the merged runs".into();
        merged.latency_us = Percentiles::of(&hist);
        merged.histogram = HistogramCounts::of(&hist);
        merged.latency_uncorrected_us = hist_uncorrected.as_ref().map(Percentiles::of);
        merged.histogram_uncorrected = hist_uncorrected.as_ref().map(HistogramCounts::of);
        merged
    }

    /// The human summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "loadgen {} report", self.shape);
        if let Some(headline) = &self.headline {
            row(&mut out, "headline", headline.clone());
        }
        row(&mut out, "protocol", self.protocol.clone());
        self.table_traffic(&mut out);
        self.table_connections(&mut out);
        row(
            &mut out,
            "client cpu",
            format!("{:.1} %", self.client_cpu_percent),
        );
        self.table_verification(&mut out);
        row(&mut out, "verdict", self.verdict().as_str().to_owned());
        out
    }

    fn table_traffic(&self, out: &mut String) {
        row(out, "duration", format!("{:.2} s", self.duration_s));
        row(
            out,
            "requests / replies",
            format!("{} / {}", self.requests, self.replies),
        );
        row(
            out,
            "throughput",
            format!("{:.0} replies/s", self.throughput_rps),
        );
        for rate in &self.rates {
            row(out, rate.what.label(), rate.to_string());
            if let Some(why) = &rate.held_back_by {
                let _ = writeln!(out, "    held back: {why}");
            }
        }
        row(
            out,
            "bytes sent / received",
            format!("{} / {}", self.bytes_sent, self.bytes_received),
        );
        let label = if self.latency_uncorrected_us.is_some() {
            "latency (corrected)"
        } else {
            "latency"
        };
        row(out, label, latency(&self.latency_us));
        if let Some(p) = &self.latency_uncorrected_us {
            row(out, "latency (uncorrected)", latency(p));
        }
    }

    fn table_connections(&self, out: &mut String) {
        let c = &self.connections;
        row(
            out,
            "connections",
            format!(
                "{} opened, {} failed, {} closed",
                c.opened, c.failed, c.closed
            ),
        );
        if c.allowed_open > 0 {
            row(
                out,
                "open at once",
                format!(
                    "at most {} ({}), peak {}",
                    c.allowed_open, c.allowed_open_by, c.peak_open
                ),
            );
        }
        row(out, "closed by mode", join_map(&c.closed_by_mode));
        row(out, "client saw at end", join_map(&c.outcomes));
    }

    fn table_verification(&self, out: &mut String) {
        let v = &self.verification;
        row(
            out,
            "verification",
            format!(
                "{} checked, {} mismatched, {} lost replies, {} corrupt replies{}{}",
                v.checked,
                v.mismatched,
                v.lost_replies,
                v.corrupt_replies,
                if v.log_checked {
                    ""
                } else {
                    " (no --verify-log)"
                },
                if v.metrics_checked {
                    ", metrics checked"
                } else {
                    ""
                },
            ),
        );
        for mismatch in &v.mismatches {
            let _ = writeln!(out, "    MISMATCH {mismatch}");
        }
        let listed = v.mismatches.len() as u64;
        if listed > 0 && listed < v.mismatched {
            let _ = writeln!(out, "    ... {} more", v.mismatched - listed);
        }
        for hint in &self.hints {
            let _ = writeln!(out, "  hint: {hint}");
        }
        row(
            out,
            "errors",
            if self.errors.is_empty() {
                "none".into()
            } else {
                join_map(&self.errors)
            },
        );
    }
}

/// Merge: `into` becomes "mixed" when `other` differs from it.
fn mix_into(into: &mut String, other: &str) {
    if into != other {
        *into = "mixed".into();
    }
}

/// What a report written before `protocol` was added ran.
fn frame_protocol() -> String {
    "frame".into()
}

/// One `key value` line of the table.
fn row(out: &mut String, key: &str, value: String) {
    let _ = writeln!(out, "  {key:<24} {value}");
}

fn latency(p: &Percentiles) -> String {
    format!(
        "p50 {} p90 {} p99 {} p99.9 {} max {} (us, n={})",
        p.p50, p.p90, p.p99, p.p999, p.max, p.count
    )
}

fn add_maps(into: &mut BTreeMap<String, u64>, from: BTreeMap<String, u64>) {
    for (key, count) in from {
        *into.entry(key).or_default() += count;
    }
}

fn join_map(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "-".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report_with(latencies: &[u64], replies: u64) -> Report {
        let mut stats = Stats::default();
        for &us in latencies {
            Stats::record_latency(&mut stats.latency_us, us);
        }
        stats.replies = replies;
        stats.elapsed_us = 1_000_000;
        let facts = RunFacts {
            shape: "closed-loop",
            protocol: "frame".into(),
            open_loop: false,
            config: serde_json::json!({}),
            cpu_percent: 10.0,
            fd_limit: 1024,
            concurrency: Concurrency {
                open_max: 1,
                bound: crate::concurrency::OpenBound::Default,
            },
            rates: Vec::new(),
            headline: None,
            hints: Vec::new(),
            interrupted: false,
        };
        Report::new(stats, facts, Verification::default())
    }

    #[test]
    fn merge_adds_counts_and_merges_histograms() {
        let a = report_with(&[10, 20, 30], 3);
        let b = report_with(&[1000], 1);
        let text = serde_json::to_string(&a).unwrap();
        let a: Report = serde_json::from_str(&text).unwrap();
        let merged = Report::merge(vec![a, b]);
        assert_eq!(merged.replies, 4);
        assert_eq!(merged.throughput_rps, 4.0);
        assert_eq!(merged.latency_us.count, 4);
        assert_eq!(merged.latency_us.p50, 20);
        assert!(merged.latency_us.max >= 1000 && merged.latency_us.max < 1002);
        assert_eq!(merged.client_cpu_percent, 20.0);
        assert!(merged.passed());
        assert!(merged.table().contains("PASS"));
    }
}
