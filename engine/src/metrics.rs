//! Per-core counters and their Prometheus text rendering.
//!
//! Each core writes only its own [`CoreMetrics`] (single writer), so a bump is a relaxed load and
//! store, no locked instruction; the admin thread reads every core's and sums them.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::classify::{Cause, Rearm};
use crate::sys::socket;

/// A counter written by one thread and read by others.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Only the owning core calls this.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    #[inline]
    pub fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The accept errnos given their own label; the rest count as "other".
pub const ACCEPT_ERRNOS: [i32; 6] = [
    libc::EMFILE,
    libc::ENFILE,
    libc::ENOBUFS,
    libc::ENOMEM,
    libc::ECONNABORTED,
    libc::EPERM,
];
const ACCEPT_ERROR_LABELS: usize = ACCEPT_ERRNOS.len() + 1;

/// One core's counters (cache-line aligned so cores never share a line).
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct CoreMetrics {
    pub accepted: Counter,
    pub open: Counter,
    pub rejected: Counter,
    pub closed: [Counter; Cause::COUNT],
    pub frames_received: Counter,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    pub rearm_enobufs: Counter,
    pub rearm_overflow: Counter,
    /// Passes of the event loop (each one wait on the ring) and the completions they handled.
    pub waits: Counter,
    pub completions: Counter,
    pub accept_errors: [Counter; ACCEPT_ERROR_LABELS],
}

impl CoreMetrics {
    pub fn count_rearm(&self, reason: Rearm) {
        match reason {
            Rearm::Enobufs => self.rearm_enobufs.add(1),
            Rearm::Overflow => self.rearm_overflow.add(1),
        }
    }

    pub fn count_accept_error(&self, errno: i32) {
        let slot = ACCEPT_ERRNOS
            .iter()
            .position(|&e| e == errno)
            .unwrap_or(ACCEPT_ERRNOS.len());
        self.accept_errors[slot].add(1);
    }
}

/// One metric family: name, type, help, and its samples as (labels, value).
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, u64)>,
}

impl Family {
    fn counter(name: &'static str, help: &'static str, value: u64) -> Family {
        Family::labelled(name, "counter", help, vec![(String::new(), value)])
    }

    fn gauge(name: &'static str, help: &'static str, value: u64) -> Family {
        Family::labelled(name, "gauge", help, vec![(String::new(), value)])
    }

    fn labelled(
        name: &'static str,
        kind: &'static str,
        help: &'static str,
        samples: Vec<(String, u64)>,
    ) -> Family {
        Family {
            name,
            kind,
            help,
            samples,
        }
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} {}",
            self.name, self.help, self.name, self.kind
        );
        for (labels, value) in &self.samples {
            let _ = writeln!(out, "{}{labels} {value}", self.name);
        }
    }
}

/// Renders the sum over the serving cores, then the admin endpoint's own connections, in the
/// Prometheus text format (version 0.0.4).
pub fn render(cores: &[CoreMetrics], admin: &[CoreMetrics], log_lines_dropped: u64) -> String {
    let mut out = String::with_capacity(8192);
    for family in families(cores, log_lines_dropped)
        .iter()
        .chain(&admin_families(admin))
    {
        family.write(&mut out);
    }
    out
}

/// The connections of the admin endpoint itself, apart from the served ones.
fn admin_families(admin: &[CoreMetrics]) -> [Family; 3] {
    let sum = |get| total(admin, get);
    [
        Family::counter(
            "engine_admin_connections_accepted_total",
            "Connections to the metrics endpoint accepted.",
            sum(|c| &c.accepted),
        ),
        Family::gauge(
            "engine_admin_connections_open",
            "Connections to the metrics endpoint open now.",
            sum(|c| &c.open),
        ),
        Family::labelled(
            "engine_admin_connections_closed_total",
            "counter",
            "Connections to the metrics endpoint closed, by cause.",
            closed_samples(admin),
        ),
    ]
}

/// One counter summed over `cores`.
fn total(cores: &[CoreMetrics], get: fn(&CoreMetrics) -> &Counter) -> u64 {
    cores.iter().map(|c| get(c).get()).sum()
}

fn closed_samples(cores: &[CoreMetrics]) -> Vec<(String, u64)> {
    Cause::ALL
        .iter()
        .map(|cause| {
            let value = cores.iter().map(|c| c.closed[cause.index()].get()).sum();
            (format!("{{cause=\"{}\"}}", cause.as_str()), value)
        })
        .collect()
}

fn accept_error_samples(cores: &[CoreMetrics]) -> Vec<(String, u64)> {
    ACCEPT_ERRNOS
        .iter()
        .map(|&errno| socket::errno_name(errno))
        .chain(std::iter::once("other"))
        .enumerate()
        .map(|(slot, name)| {
            let value = cores.iter().map(|c| c.accept_errors[slot].get()).sum();
            (format!("{{errno=\"{name}\"}}"), value)
        })
        .collect()
}

fn families(cores: &[CoreMetrics], log_lines_dropped: u64) -> [Family; 12] {
    let sum = |get| total(cores, get);
    let rearms = vec![
        ("{reason=\"enobufs\"}".to_owned(), sum(|c| &c.rearm_enobufs)),
        (
            "{reason=\"overflow\"}".to_owned(),
            sum(|c| &c.rearm_overflow),
        ),
    ];
    [
        Family::counter(
            "engine_connections_accepted_total",
            "Connections accepted.",
            sum(|c| &c.accepted),
        ),
        Family::gauge(
            "engine_connections_open",
            "Connections open now.",
            sum(|c| &c.open),
        ),
        Family::counter(
            "engine_connections_rejected_total",
            "Connections closed at accept because the core was at its connection limit.",
            sum(|c| &c.rejected),
        ),
        Family::labelled(
            "engine_connections_closed_total",
            "counter",
            "Connections closed, by cause.",
            closed_samples(cores),
        ),
        Family::counter(
            "engine_frames_received_total",
            "Messages (frames, requests) received.",
            sum(|c| &c.frames_received),
        ),
        Family::counter(
            "engine_bytes_received_total",
            "Bytes received.",
            sum(|c| &c.bytes_received),
        ),
        Family::counter(
            "engine_bytes_sent_total",
            "Bytes sent.",
            sum(|c| &c.bytes_sent),
        ),
        Family::labelled(
            "engine_recv_rearms_total",
            "counter",
            "Multishot recvs armed again after a final completion that was not a close.",
            rearms,
        ),
        Family::counter(
            "engine_waits_total",
            "Waits on the ring (passes of the event loops); fewer for the same work means fewer wake-ups.",
            sum(|c| &c.waits),
        ),
        Family::counter(
            "engine_completions_total",
            "Completions (CQEs) the event loops handled.",
            sum(|c| &c.completions),
        ),
        Family::labelled(
            "engine_accept_errors_total",
            "counter",
            "Failed accepts, by errno.",
            accept_error_samples(cores),
        ),
        Family::counter(
            "engine_log_lines_dropped_total",
            "Log lines dropped because stderr could not keep up (close records are never dropped).",
            log_lines_dropped,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accept_errno_has_its_own_label() {
        for errno in ACCEPT_ERRNOS {
            assert_ne!(socket::errno_name(errno), "other", "errno {errno}");
        }
    }

    #[test]
    fn renders_sums_over_cores() {
        let cores = [CoreMetrics::default(), CoreMetrics::default()];
        cores[0].accepted.add(2);
        cores[1].accepted.add(3);
        cores[1].closed[Cause::PeerReset.index()].add(4);
        cores[0].count_accept_error(libc::EMFILE);
        cores[0].count_accept_error(libc::EBADF);
        cores[1].count_rearm(Rearm::Enobufs);
        cores[0].completions.add(7);
        cores[1].completions.add(5);
        let admin = [CoreMetrics::default()];
        admin[0].closed[Cause::LocalClose.index()].add(2);
        let text = render(&cores, &admin, 3);
        for line in [
            "engine_connections_accepted_total 5",
            "engine_connections_closed_total{cause=\"peer_reset\"} 4",
            "engine_connections_closed_total{cause=\"peer_fin\"} 0",
            "engine_accept_errors_total{errno=\"EMFILE\"} 1",
            "engine_accept_errors_total{errno=\"other\"} 1",
            "engine_recv_rearms_total{reason=\"enobufs\"} 1",
            "engine_recv_rearms_total{reason=\"overflow\"} 0",
            "engine_completions_total 12",
            "engine_waits_total 0",
            "engine_log_lines_dropped_total 3",
            "engine_admin_connections_closed_total{cause=\"local_close\"} 2",
            "engine_admin_connections_closed_total{cause=\"peer_fin\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
