//! Frame decoding over random splits of a realistic stream, and reply encoding.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use protocol::{encode_frame, Decoder, Kind, Progress};

/// A stream of ECHO frames: mostly small, some 512 B, a few 4 KiB.
fn realistic_stream(frames: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut rng = benches::Rng::new(11);
    let mut stream = Vec::new();
    let mut payloads = Vec::new();
    for i in 0..frames {
        let len = match rng.below(10) {
            0..=6 => 64,
            7..=8 => 512,
            _ => 4096,
        };
        let payload: Vec<u8> = (0..len).map(|j| (i + j) as u8).collect();
        encode_frame(Kind::Echo, &payload, &mut stream);
        payloads.push(payload);
    }
    (stream, payloads)
}

/// Cut points as recv completions of up to `max_piece` bytes would give.
fn random_pieces(len: usize, max_piece: usize) -> Vec<usize> {
    let mut rng = benches::Rng::new(13);
    let mut cuts = Vec::new();
    let mut at = 0;
    while at < len {
        at = (at + 1 + rng.below(max_piece as u64) as usize).min(len);
        cuts.push(at);
    }
    cuts
}

fn bench_decode(c: &mut Criterion) {
    let (stream, _) = realistic_stream(4096);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    for max_piece in [1500usize, 16 * 1024] {
        let cuts = random_pieces(stream.len(), max_piece);
        group.bench_function(format!("random_splits_up_to_{max_piece}"), |b| {
            b.iter(|| {
                let mut decoder = Decoder::new(16 * 1024);
                let mut payload_bytes = 0usize;
                let mut start = 0;
                for &end in &cuts {
                    decoder
                        .feed(&stream[start..end], |frame| {
                            payload_bytes += frame.payload.len();
                            Progress::Continue
                        })
                        .unwrap();
                    start = end;
                }
                black_box(payload_bytes)
            })
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let (stream, payloads) = realistic_stream(4096);
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    let mut out = Vec::with_capacity(stream.len());
    group.bench_function("echo_replies", |b| {
        b.iter(|| {
            out.clear();
            for payload in &payloads {
                encode_frame(Kind::Echo, black_box(payload), &mut out);
            }
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_decode, bench_encode);
criterion_main!(benches);
