//! Close records: the tracing event and the JSON line each close produces, and the writer thread
//! that keeps file I/O off the cores.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use serde::Serialize;

use crate::classify::{Cause, Phase};

/// Records a core gathers before handing them to the writer in one message.
pub const RECORD_BATCH_MAX: usize = 256;
/// The longest a record waits in its core before the hand-over. Handing over each pass would
/// wake the writer, and write(2), once per close: that cost 18% of a short connection's CPU.
pub const RECORD_HOLD_MAX_US: u64 = 20_000;
/// Batches queued for the writer; a core blocks (no record is dropped) past this bound.
pub const RECORD_QUEUE_BATCHES_MAX: usize = 256;

/// Everything the engine knows about one connection when it closes. Plain data: formatting
/// happens on the writer thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CloseRecord {
    pub core: u16,
    pub conn: u64,
    /// HELLO's client tag; null without a HELLO.
    pub tag: Option<u64>,
    pub peer: Option<SocketAddr>,
    #[serde(serialize_with = "as_label")]
    pub cause: Cause,
    #[serde(serialize_with = "phase_label")]
    pub phase: Phase,
    /// The completion code the verdict came from (the recv's final res, or a failed send's).
    pub res: i32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub partial_bytes: u64,
    pub duration_us: u64,
}

fn as_label<S: serde::Serializer>(cause: &Cause, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(cause.as_str())
}

fn phase_label<S: serde::Serializer>(phase: &Phase, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(phase.as_str())
}

impl CloseRecord {
    /// The `engine::close` tracing event.
    pub fn emit_event(&self) {
        tracing::info!(
            target: "engine::close",
            core = self.core,
            conn = self.conn,
            tag = self.tag,
            peer = self.peer.map(tracing::field::display),
            cause = self.cause.as_str(),
            phase = self.phase.as_str(),
            res = self.res,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            frames_in = self.frames_in,
            frames_out = self.frames_out,
            partial_bytes = self.partial_bytes,
            duration_us = self.duration_us,
            "connection closed"
        );
    }

    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        out.write_all(b"\n")
    }
}

/// The sending side a core holds; cloned per core.
#[derive(Clone, Debug)]
pub struct CloseLogSender(SyncSender<Vec<CloseRecord>>);

impl CloseLogSender {
    /// Hands a batch to the writer, blocking while the queue is full.
    pub fn send(&self, batch: Vec<CloseRecord>) {
        // The writer only stops after every sender is gone, so this cannot fail while we run.
        let _ = self.0.send(batch);
    }
}

/// The writer thread of `--close-log`.
#[derive(Debug)]
pub struct CloseLog {
    thread: JoinHandle<io::Result<()>>,
}

impl CloseLog {
    pub fn open(path: &Path) -> io::Result<(CloseLog, CloseLogSender)> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (sender, receiver) = mpsc::sync_channel(RECORD_QUEUE_BATCHES_MAX);
        let thread = std::thread::Builder::new()
            .name("close-log".into())
            .spawn(move || write_records(receiver, file))?;
        Ok((CloseLog { thread }, CloseLogSender(sender)))
    }

    /// Waits until every sender is dropped and every record is on disk.
    pub fn finish(self) -> io::Result<()> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("close-log writer panicked")))
    }
}

fn write_records(receiver: Receiver<Vec<CloseRecord>>, file: File) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    while let Ok(batch) = receiver.recv() {
        write_batch(&mut out, &batch)?;
        while let Ok(batch) = receiver.try_recv() {
            write_batch(&mut out, &batch)?;
        }
        // Caught up: make the lines visible to readers of the file now.
        out.flush()?;
    }
    out.flush()
}

fn write_batch(out: &mut impl Write, batch: &[CloseRecord]) -> io::Result<()> {
    batch.iter().try_for_each(|record| record.write_json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keys_are_exactly_the_contract() {
        let record = CloseRecord {
            core: 1,
            conn: 7,
            tag: None,
            peer: Some("127.0.0.1:4000".parse().unwrap()),
            cause: Cause::PeerFinMidFrame,
            phase: Phase::Body,
            res: 0,
            bytes_in: 10,
            bytes_out: 4,
            frames_in: 1,
            frames_out: 1,
            partial_bytes: 5,
            duration_us: 1234,
        };
        let mut line = Vec::new();
        record.write_json(&mut line).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = vec![
            "core",
            "conn",
            "tag",
            "peer",
            "cause",
            "phase",
            "res",
            "bytes_in",
            "bytes_out",
            "frames_in",
            "frames_out",
            "partial_bytes",
            "duration_us",
        ];
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected);
        assert_eq!(value["tag"], serde_json::Value::Null);
        assert_eq!(value["peer"], "127.0.0.1:4000");
        assert_eq!(value["cause"], "peer_fin_mid_frame");
        assert_eq!(value["phase"], "body");
        assert!(line.ends_with(b"}\n"));
    }
}
