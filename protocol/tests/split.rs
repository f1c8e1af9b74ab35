//! Property: any split of any byte stream decodes to the same frames, or the same error.

use proptest::prelude::*;
use protocol::{encode_frame, DecodeError, Decoder, Kind, Progress};

const MAX_FRAME: usize = 300;

/// Frames seen and how decoding ended.
type Outcome = (Vec<(Kind, Vec<u8>)>, Result<Progress, DecodeError>);

fn decode_in_pieces(stream: &[u8], cuts: &[usize]) -> Outcome {
    let mut decoder = Decoder::new(MAX_FRAME);
    let mut frames = Vec::new();
    let mut start = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|cut| cut % (stream.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(stream.len());
    for end in ends {
        let result = decoder.feed(&stream[start..end], |frame| {
            frames.push((frame.kind, frame.payload.to_vec()));
            if frame.kind == Kind::Close {
                Progress::Stop
            } else {
                Progress::Continue
            }
        });
        start = end;
        match result {
            Ok(Progress::Continue) => {}
            other => return (frames, other),
        }
    }
    (frames, Ok(Progress::Continue))
}

fn frame_strategy() -> impl Strategy<Value = Vec<u8>> {
    let echo = proptest::collection::vec(any::<u8>(), 0..400).prop_map(|payload| {
        let mut out = Vec::new();
        // Payloads over MAX_FRAME make TooLong errors part of the space.
        encode_frame(Kind::Echo, &payload, &mut out);
        out
    });
    let hello = any::<u64>().prop_map(|tag| {
        let mut out = Vec::new();
        encode_frame(Kind::Hello, &tag.to_be_bytes(), &mut out);
        out
    });
    let raw = proptest::collection::vec(any::<u8>(), 1..6);
    prop_oneof![8 => echo, 2 => hello, 1 => Just(vec![0, 0, 2]), 1 => raw]
}

proptest! {
    #[test]
    fn any_split_gives_the_same_result(
        frames in proptest::collection::vec(frame_strategy(), 0..20),
        cuts in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        let stream: Vec<u8> = frames.concat();
        let whole = decode_in_pieces(&stream, &[]);
        let split = decode_in_pieces(&stream, &cuts);
        prop_assert_eq!(&whole, &split);
        let bytewise: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(&whole, &decode_in_pieces(&stream, &bytewise));
    }

    #[test]
    fn encoded_frames_decode_back(payloads in proptest::collection::vec(
        proptest::collection::vec(any::<u8>(), 0..=MAX_FRAME), 0..10)) {
        let mut stream = Vec::new();
        for payload in &payloads {
            encode_frame(Kind::Echo, payload, &mut stream);
        }
        let (frames, end) = decode_in_pieces(&stream, &[]);
        prop_assert_eq!(end, Ok(Progress::Continue));
        let expected: Vec<(Kind, Vec<u8>)> = payloads.into_iter().map(|p| (Kind::Echo, p)).collect();
        prop_assert_eq!(frames, expected);
    }
}
