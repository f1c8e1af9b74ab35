//! The close classifier over a realistic mix of final completions (goal: ≤ 2 ns per call).

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use engine::classify::{classify, classify_by_rule, FinalRecv, Intent};

/// Final CQEs as a busy server sees them: mostly FINs, some resets and timeouts, re-arms.
fn realistic_mix(count: usize) -> Vec<FinalRecv> {
    let mut rng = benches::Rng::new(7);
    (0..count)
        .map(|_| {
            let (res, intent, partial_bytes, send_errno) = match rng.below(100) {
                0..=54 => (0, Intent::None, 0, None),
                55..=59 => (0, Intent::None, 17, None),
                60..=69 => (-libc::ECONNRESET, Intent::None, 0, None),
                70..=72 => (0, Intent::None, 0, Some(libc::EPIPE)),
                73..=79 => (-libc::ECANCELED, Intent::IdleTimeout, 0, None),
                80..=82 => (-libc::ECANCELED, Intent::ReadTimeout, 2, None),
                83..=87 => (-libc::ECANCELED, Intent::PeerClose, 0, None),
                88..=89 => (-libc::ECANCELED, Intent::ProtocolError, 0, None),
                90..=94 => (-libc::ENOBUFS, Intent::None, 0, None),
                95..=96 => (4096, Intent::None, 0, None),
                97 => (-libc::ECANCELED, Intent::Pause, 0, None),
                98 => (-libc::ETIMEDOUT, Intent::None, 0, None),
                _ => (-libc::ECANCELED, Intent::Shutdown, 0, None),
            };
            FinalRecv {
                res,
                intent,
                partial_bytes,
                send_errno,
            }
        })
        .collect()
}

// The inputs are hidden from the optimiser as one slice (not each input copied through
// `black_box`, which would add a store and reloads per call that the engine does not pay).
fn bench_classify(c: &mut Criterion) {
    let inputs = realistic_mix(4096);
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(inputs.len() as u64));
    group.bench_function("realistic_mix", |b| {
        b.iter(|| {
            for input in black_box(inputs.as_slice()) {
                black_box(classify(*input));
            }
        })
    });
    // What the loop itself costs (load an input, a trivial result through `black_box`), so a
    // reader can subtract it from the per-call figures above and below.
    group.bench_function("loop_floor", |b| {
        b.iter(|| {
            for input in black_box(inputs.as_slice()) {
                black_box(input.res as u8 ^ input.intent as u8);
            }
        })
    });
    // The readable rule with its branches, in the same run, for the ratio.
    group.bench_function("realistic_mix_by_rule", |b| {
        b.iter(|| {
            for input in black_box(inputs.as_slice()) {
                black_box(classify_by_rule(*input));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_classify);
criterion_main!(benches);
