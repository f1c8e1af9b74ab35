//! Reads the engine's close log and checks each tag's record against its close mode.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{Mismatch, Verification};
use crate::error::LoadgenError;
use crate::stats::TagResult;

/// How often the log is re-read while records are missing.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The fields of a close record the verifier uses.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct LogRecord {
    pub tag: Option<u64>,
    pub cause: String,
    pub frames_out: u64,
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub partial_bytes: Option<u64>,
}

/// Reads new complete lines of the log, keeping the records of the wanted tags.
struct LogReader {
    offset: u64,
    partial: Vec<u8>,
    unparsable: u64,
}

/// The cause of each checked tag's close record (tags with exactly one record).
pub type LogCauses = HashMap<u64, String>;

/// Opens the close log `path` named by `flag`; a missing file is a setup error, found before
/// any traffic (the engine creates its log when it starts, so missing means a wrong path).
pub fn require_log(path: &Path, flag: &'static str) -> Result<File, LoadgenError> {
    File::open(path).map_err(|error| LoadgenError::CloseLog {
        flag,
        path: path.to_owned(),
        error,
    })
}

impl LogReader {
    fn read_new(
        &mut self,
        path: &Path,
        wanted: &HashMap<u64, &TagResult>,
        records: &mut HashMap<u64, Vec<LogRecord>>,
    ) -> Result<(), LoadgenError> {
        let io = |error| LoadgenError::CloseLog {
            flag: "close log",
            path: path.to_owned(),
            error,
        };
        let mut file = require_log(path, "close log")?;
        file.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        for line in complete.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<LogRecord>(line) {
                Ok(record) => {
                    if let Some(tag) = record.tag.filter(|t| wanted.contains_key(t)) {
                        records.entry(tag).or_default().push(record);
                    }
                }
                Err(_) => self.unparsable += 1,
            }
        }
        Ok(())
    }
}

/// Waits (up to `wait`) for the log at `path` to hold a record for every connected tag, then
/// checks each: one record, the cause the mode predicts, as many replies sent by the engine
/// as the client received, and (where the client knows them, see `TagResult::phase`) the
/// phase and partial bytes. Returns the cause recorded for each tag with one record.
pub fn check_log(
    path: &Path,
    tags: &[TagResult],
    wait: Duration,
    verification: &mut Verification,
) -> Result<LogCauses, LoadgenError> {
    let wanted: HashMap<u64, &TagResult> = tags
        .iter()
        .filter(|t| t.connected)
        .map(|t| (t.tag, t))
        .collect();
    let mut records: HashMap<u64, Vec<LogRecord>> = HashMap::new();
    let mut reader = LogReader {
        offset: 0,
        partial: Vec::new(),
        unparsable: 0,
    };
    let deadline = Instant::now() + wait;
    loop {
        reader.read_new(path, &wanted, &mut records)?;
        if records.len() >= wanted.len() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    verification.log_checked = true;
    if reader.unparsable > 0 {
        verification.add(Mismatch {
            tag: None,
            check: "log_line".into(),
            expected: "JSON close records".into(),
            got: format!("{} unparsable lines", reader.unparsable),
            mode: None,
        });
    }
    let mut ordered: Vec<&TagResult> = wanted.values().copied().collect();
    ordered.sort_by_key(|t| t.tag);
    let mut causes = LogCauses::new();
    for tag in ordered {
        verification.checked += 1;
        let found = records.get(&tag.tag).map(Vec::as_slice).unwrap_or_default();
        let [record] = found else {
            if found.is_empty() {
                verification.missing_records += 1;
            }
            verification.add(mismatch(
                tag,
                "record",
                "one close record".into(),
                format!("{} records", found.len()),
            ));
            continue;
        };
        causes.insert(tag.tag, record.cause.clone());
        check_record(tag, record, verification);
    }
    Ok(causes)
}

fn mismatch(tag: &TagResult, check: &str, expected: String, got: String) -> Mismatch {
    Mismatch {
        tag: Some(tag.tag),
        check: check.into(),
        expected,
        got,
        mode: Some(tag.mode.as_str().into()),
    }
}

/// Checks the one close record of `tag`: cause, frames out, and phase and partial bytes where
/// the client knows them.
fn check_record(tag: &TagResult, record: &LogRecord, verification: &mut Verification) {
    let expected = tag.mode.expected_cause();
    if record.cause != expected {
        verification.add(mismatch(
            tag,
            "cause",
            expected.into(),
            record.cause.clone(),
        ));
    }
    if record.frames_out != tag.replies {
        verification.add(mismatch(
            tag,
            "frames_out",
            format!("{} replies (as the client received)", tag.replies),
            format!("{} sent by the engine", record.frames_out),
        ));
    }
    if let Some(phase) = tag.phase {
        if record.phase.as_deref() != Some(phase.as_str()) {
            let got = record.phase.as_deref().unwrap_or("no phase");
            verification.add(mismatch(tag, "phase", phase.as_str().into(), got.into()));
        }
    }
    if let Some(partial) = tag.partial_bytes {
        if record.partial_bytes != Some(partial) {
            let got = record
                .partial_bytes
                .map_or_else(|| "none".into(), |n| n.to_string());
            verification.add(mismatch(
                tag,
                "partial_bytes",
                format!("{partial} (as the client sent)"),
                got,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mix::CloseMode;
    use crate::stats::Outcome;

    fn tag(tag: u64, mode: CloseMode, replies: u64) -> TagResult {
        TagResult {
            tag,
            mode,
            outcome: Outcome::expected_for(mode),
            connected: true,
            requests: replies,
            replies,
            lost: 0,
            corrupt: 0,
            ended_by_end_timeout: false,
            phase: None,
            partial_bytes: None,
        }
    }

    #[test]
    fn finds_a_changed_cause_a_missing_and_a_duplicate_record() {
        let dir = std::env::temp_dir().join(format!("loadgen-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("close.jsonl");
        std::fs::write(
            &path,
            "{\"tag\":1,\"cause\":\"peer_fin\",\"frames_out\":2}\n\
             {\"tag\":2,\"cause\":\"peer_fin\",\"frames_out\":0}\n\
             {\"tag\":3,\"cause\":\"idle_timeout\",\"frames_out\":0}\n\
             {\"tag\":3,\"cause\":\"idle_timeout\",\"frames_out\":0}\n\
             {\"tag\":null,\"cause\":\"peer_fin\",\"frames_out\":0}\n",
        )
        .unwrap();
        let tags = [
            tag(1, CloseMode::Fin, 2),
            tag(2, CloseMode::Reset, 0),
            tag(3, CloseMode::Idle, 0),
            tag(4, CloseMode::Stall, 0),
        ];
        let mut verification = Verification::default();
        let causes = check_log(&path, &tags, Duration::ZERO, &mut verification).unwrap();
        assert_eq!(causes.get(&3), None, "two records: no single cause");
        assert_eq!(causes.get(&2).map(String::as_str), Some("peer_fin"));
        assert_eq!(verification.checked, 4);
        assert_eq!(verification.mismatched, 3, "{:#?}", verification.mismatches);
        assert_eq!(verification.missing_records, 1);
        let checks: Vec<_> = verification
            .mismatches
            .iter()
            .map(|m| m.check.as_str())
            .collect();
        assert_eq!(checks, ["cause", "record", "record"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_known_phase_and_partial_bytes_are_checked() {
        use crate::wire::RecordPhase;
        let dir = std::env::temp_dir().join(format!("loadgen-phase-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("close.jsonl");
        let line = |tag: u64, phase: &str, partial: u64| {
            format!(
                "{{\"tag\":{tag},\"cause\":\"peer_fin_mid_frame\",\"frames_out\":1,\
                 \"phase\":\"{phase}\",\"partial_bytes\":{partial}}}\n"
            )
        };
        let log = [
            line(1, "header", 39),
            line(2, "header", 39),
            line(3, "body", 38),
        ];
        std::fs::write(&path, log.concat()).unwrap();
        let expect = |t: u64, phase: RecordPhase, partial: u64| TagResult {
            phase: Some(phase),
            partial_bytes: Some(partial),
            ..tag(t, CloseMode::MidFrame, 1)
        };
        let tags = [
            expect(1, RecordPhase::Header, 39),
            expect(2, RecordPhase::Body, 39),
            expect(3, RecordPhase::Body, 63),
        ];
        let mut verification = Verification::default();
        check_log(&path, &tags, Duration::ZERO, &mut verification).unwrap();
        let found: Vec<_> = verification
            .mismatches
            .iter()
            .map(|m| (m.tag, m.check.as_str(), m.expected.as_str(), m.got.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (Some(2), "phase", "body", "header"),
                (Some(3), "partial_bytes", "63 (as the client sent)", "38"),
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Defect: a wrong --verify-log path reported "expected one close record, got 0" per tag.
    #[test]
    fn a_missing_log_is_a_setup_error_naming_the_path() {
        let path = std::env::temp_dir().join("loadgen-no-such-dir/close.jsonl");
        let error = require_log(&path, "--verify-log").unwrap_err().to_string();
        assert!(error.contains("no such file"), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
        let mut verification = Verification::default();
        let error = check_log(&path, &[], Duration::ZERO, &mut verification).unwrap_err();
        assert!(error.to_string().contains("no such file"), "{error}");
    }
}
