//! Plain-language diagnoses of a finished run: one headline when the engine stopped answering
//! (instead of only a list of failed connections), and hints when a loadgen flag, not the
//! engine, made connections end the wrong way.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::mix::CloseMode;
use crate::stats::{Outcome, Stats, TagResult};
use crate::verify::LogCauses;

/// How the connections the engine let down ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct LetDown {
    /// Connects refused (nobody listens any more).
    refused: u64,
    /// Resets the close mode did not predict.
    reset: u64,
    /// Connected connections the engine closed although the client was to close them.
    closed_early: u64,
    /// Connected connections among them (reset or closed early).
    connected: u64,
}

fn let_down(tags: &[TagResult]) -> LetDown {
    let mut counts = LetDown::default();
    for tag in tags {
        if tag.connected && tag.outcome == Outcome::expected_for(tag.mode) {
            continue;
        }
        match tag.outcome {
            Outcome::Refused => counts.refused += 1,
            Outcome::Rst => counts.reset += 1,
            Outcome::Fin if tag.connected => counts.closed_early += 1,
            _ => continue,
        }
        counts.connected += u64::from(tag.connected);
    }
    counts
}

/// One line when the engine stopped answering mid-run: connects refused to the end after some
/// had succeeded, or every connection reset or closed under the client. `None` otherwise (and
/// when no connect ever succeeded: the "unreachable" message covers that).
pub fn engine_gone_headline(target: SocketAddr, stats: &Stats) -> Option<String> {
    if stats.opened == 0 {
        return None;
    }
    let counts = let_down(&stats.tags);
    let connected = stats.tags.iter().filter(|t| t.connected).count() as u64;
    let all_broken = counts.connected > 0 && counts.connected == connected;
    let at_us = match (stats.refusing_since_us, all_broken) {
        (Some(since_us), _) => since_us,
        (None, true) => stats.first_engine_failure_us.unwrap_or(0),
        (None, false) => return None,
    };
    let parts: Vec<String> = [
        (counts.refused, "refused"),
        (counts.reset, "reset"),
        (counts.closed_early, "closed early"),
    ]
    .into_iter()
    .filter(|&(count, _)| count > 0)
    .map(|(count, what)| format!("{count} {} {what}", plural(count, "connection")))
    .collect();
    Some(format!(
        "the engine at {target} stopped answering at {:.2} s: {}",
        at_us as f64 / 1e6,
        parts.join(", ")
    ))
}

/// For the modes that wait for an engine timeout: the engine timeout and its flag.
const ENGINE_TIMEOUTS: [(CloseMode, &str, &str); 2] = [
    (CloseMode::Idle, "idle timeout", "--idle-timeout"),
    (CloseMode::Stall, "read timeout", "--read-timeout"),
];

/// A hint per mode whose connections the loadgen's own `--end-timeout` ended before the
/// engine's timeout could (not those a drain or Ctrl-C abandoned): the engine was slower than
/// the loadgen waits, a flag to change rather than an engine fault. `causes` (from the close
/// log) says what the engine recorded instead.
pub fn end_timeout_hints(
    tags: &[TagResult],
    end_timeout: Duration,
    causes: Option<&LogCauses>,
) -> Vec<String> {
    let mut hints = Vec::new();
    for (mode, engine_timeout, flag) in ENGINE_TIMEOUTS {
        let ended: Vec<&TagResult> = tags
            .iter()
            .filter(|t| t.connected && t.mode == mode && t.ended_by_end_timeout)
            .collect();
        if ended.is_empty() {
            continue;
        }
        let count = ended.len() as u64;
        let mut hint = format!(
            "{count} {mode} {} ended by --end-timeout {} before the engine's {engine_timeout}: \
             raise --end-timeout above the engine's {flag}",
            plural(count, "connection"),
            humantime::format_duration(end_timeout)
        );
        if let Some(recorded) = causes.map(|causes| recorded_causes(&ended, causes)) {
            if !recorded.is_empty() {
                hint.push_str(&format!(
                    " (the close log records {recorded}, not {})",
                    mode.expected_cause()
                ));
            }
        }
        hints.push(hint);
    }
    hints
}

/// `peer_fin x3, peer_fin_mid_frame x1`: the causes the log holds for these tags.
fn recorded_causes(tags: &[&TagResult], causes: &LogCauses) -> String {
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for cause in tags.iter().filter_map(|t| causes.get(&t.tag)) {
        *counts.entry(cause.as_str()).or_default() += 1;
    }
    counts
        .iter()
        .map(|(cause, n)| format!("{cause} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn plural(count: u64, noun: &str) -> String {
    if count == 1 {
        noun.to_owned()
    } else {
        format!("{noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(tag: u64, mode: CloseMode, outcome: Outcome, connected: bool) -> TagResult {
        TagResult {
            tag,
            mode,
            outcome,
            connected,
            requests: 0,
            replies: 0,
            lost: 0,
            corrupt: 0,
            ended_by_end_timeout: outcome == Outcome::Timeout,
            phase: None,
            partial_bytes: None,
        }
    }

    fn stats(tags: Vec<TagResult>) -> Stats {
        Stats {
            opened: tags.iter().filter(|t| t.connected).count() as u64,
            tags,
            ..Stats::default()
        }
    }

    #[test]
    fn refusals_after_the_last_good_connect_are_one_headline() {
        let target: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let mut tags = vec![tag(1, CloseMode::Fin, Outcome::Local, true)];
        tags.extend((2..1836).map(|i| tag(i, CloseMode::Fin, Outcome::Refused, false)));
        tags.push(tag(9000, CloseMode::Fin, Outcome::Rst, true));
        let mut run = stats(tags);
        run.first_engine_failure_us = Some(1_190_000);
        run.refusing_since_us = Some(1_204_000);
        assert_eq!(
            engine_gone_headline(target, &run).as_deref(),
            Some(
                "the engine at 127.0.0.1:7000 stopped answering at 1.20 s: 1834 connections \
                 refused, 1 connection reset"
            )
        );
        // A connect succeeded after the refusals: the engine still answers.
        run.refusing_since_us = None;
        assert_eq!(engine_gone_headline(target, &run), None);
    }

    #[test]
    fn every_connection_broken_is_a_headline_and_one_is_not() {
        let target: SocketAddr = "127.0.0.1:7000".parse().unwrap();
        let mut run = stats(vec![
            tag(1, CloseMode::Fin, Outcome::Fin, true),
            tag(2, CloseMode::Fin, Outcome::Rst, true),
        ]);
        run.first_engine_failure_us = Some(500_000);
        let headline = engine_gone_headline(target, &run).unwrap();
        assert!(
            headline.ends_with("at 0.50 s: 1 connection reset, 1 connection closed early"),
            "{headline}"
        );
        run.tags.push(tag(3, CloseMode::Fin, Outcome::Local, true));
        run.opened = 3;
        assert_eq!(engine_gone_headline(target, &run), None, "one kept working");
        let unreachable = Stats {
            tags: vec![tag(1, CloseMode::Fin, Outcome::Refused, false)],
            ..Stats::default()
        };
        assert_eq!(engine_gone_headline(target, &unreachable), None);
    }

    #[test]
    fn end_timeout_hints_name_both_timeouts_and_what_the_log_recorded() {
        let tags = [
            tag(1, CloseMode::Idle, Outcome::Timeout, true),
            tag(2, CloseMode::Idle, Outcome::Timeout, true),
            tag(3, CloseMode::Idle, Outcome::Fin, true),
            tag(4, CloseMode::Stall, Outcome::Timeout, true),
            tag(5, CloseMode::HalfClose, Outcome::Timeout, true),
            TagResult {
                ended_by_end_timeout: false,
                phase: None,
                partial_bytes: None,
                ..tag(6, CloseMode::Idle, Outcome::Timeout, true)
            },
        ];
        let end = Duration::from_secs(2);
        let hints = end_timeout_hints(&tags, end, None);
        assert_eq!(
            hints,
            [
                "2 idle connections ended by --end-timeout 2s before the engine's idle timeout: \
                 raise --end-timeout above the engine's --idle-timeout",
                "1 stall connection ended by --end-timeout 2s before the engine's read timeout: \
                 raise --end-timeout above the engine's --read-timeout",
            ]
        );
        let causes: LogCauses = [(1, "peer_fin".to_owned()), (2, "peer_fin".to_owned())].into();
        let hints = end_timeout_hints(&tags, end, Some(&causes));
        assert!(
            hints[0].ends_with("(the close log records peer_fin x2, not idle_timeout)"),
            "{hints:?}"
        );
        assert!(!hints[1].contains("close log"), "no record for tag 4");
        assert!(end_timeout_hints(&tags[2..3], end, None).is_empty());
    }
}
