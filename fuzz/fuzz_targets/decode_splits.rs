//! Fuzz target: any bytes, cut at any points, decode to the same frames or the same error as the
//! whole stream in one piece; and the decoder never panics or holds more than one frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{Decoder, Kind, Progress, HEADER_LEN, PAYLOAD_LEN_MAX};

const MAX_FRAME: usize = 1024;

type Outcome = (Vec<(Kind, Vec<u8>)>, Result<Progress, protocol::DecodeError>);

fn decode(stream: &[u8], cuts: &[usize]) -> Outcome {
    let mut decoder = Decoder::new(MAX_FRAME);
    let mut frames = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
        let result = decoder.feed(&stream[start..end], |frame| {
            frames.push((frame.kind, frame.payload.to_vec()));
            if frame.kind == Kind::Close { Progress::Stop } else { Progress::Continue }
        });
        assert!(decoder.partial_len() < HEADER_LEN + PAYLOAD_LEN_MAX.min(MAX_FRAME));
        start = end;
        match result {
            Ok(Progress::Continue) => {}
            other => return (frames, other),
        }
    }
    (frames, Ok(Progress::Continue))
}

fuzz_target!(|data: &[u8]| {
    // The first byte says how many cut points follow (two bytes each); the rest is the stream.
    let Some((&count, rest)) = data.split_first() else { return };
    let cut_bytes = (usize::from(count) * 2).min(rest.len());
    let (cut_data, stream) = rest.split_at(cut_bytes);
    let mut cuts: Vec<usize> = cut_data
        .chunks(2)
        .map(|pair| usize::from(pair[0]) << 8 | usize::from(*pair.get(1).unwrap_or(&0)))
        .map(|cut| cut % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    assert_eq!(decode(stream, &[]), decode(stream, &cuts));
});
