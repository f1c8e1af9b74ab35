//! What one close costs: the record as JSON, the tracing event, and the counters.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use engine::classify::{Cause, Phase};
use engine::metrics::CoreMetrics;
use engine::record::CloseRecord;

fn record() -> CloseRecord {
    CloseRecord {
        core: 1,
        conn: 123_456,
        tag: Some(0xdead_beef),
        peer: Some("127.0.0.1:45678".parse().unwrap()),
        cause: Cause::PeerFinMidFrame,
        phase: Phase::Body,
        res: 0,
        bytes_in: 1_048_576,
        bytes_out: 1_048_000,
        frames_in: 2048,
        frames_out: 2047,
        partial_bytes: 576,
        duration_us: 12_345_678,
    }
}

fn bench_close_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("close_record");
    let mut line = Vec::with_capacity(512);
    group.bench_function("json_line", |b| {
        b.iter(|| {
            line.clear();
            black_box(record()).write_json(&mut line).unwrap();
            black_box(line.len())
        })
    });
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("tracing_event_fmt_to_sink", |b| {
            b.iter(|| black_box(record()).emit_event())
        });
    });
    let metrics = CoreMetrics::default();
    group.bench_function("close_counters", |b| {
        b.iter(|| {
            metrics.open.sub(1);
            metrics.closed[black_box(Cause::PeerReset).index()].add(1);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_close_record);
criterion_main!(benches);
