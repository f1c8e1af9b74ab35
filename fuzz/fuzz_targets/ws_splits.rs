//! Fuzz target: any bytes, cut at any points, decode to the same WebSocket events and the same
//! final error or pending message as the whole stream in one piece; the decoder never panics,
//! and the caller's tail never holds more than the limits allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::ws::{Decoder, Error, Event, Limits, Pending, Step};

/// Small limits, so that message and fragment limits are reachable from short inputs.
const SMALL: Limits = Limits {
    message_max: 64,
    fragments_max: 3,
};

/// A message limit below a control frame's 125 bytes.
const TINY: Limits = Limits {
    message_max: 0,
    fragments_max: 1,
};

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
    Invalid(Error),
    /// The stream ended with this incomplete message (`None`: none pending).
    End(Option<Pending>),
}

fn owned(event: Event<'_>) -> Ev {
    match event {
        Event::Text(text) => Ev::Text(text.to_owned()),
        Event::Binary(bytes) => Ev::Binary(bytes.to_vec()),
        Event::Ping(bytes) => Ev::Ping(bytes.to_vec()),
        Event::Pong(bytes) => Ev::Pong(bytes.to_vec()),
        Event::Close(close) => Ev::Close(close.code, close.reason.to_owned()),
    }
}

fn decode(stream: &[u8], cuts: &[usize], limits: Limits) -> Vec<Ev> {
    let mut decoder = Decoder::new(limits);
    let mut tail = Vec::new();
    let mut events = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
        tail.extend_from_slice(&stream[start..end]);
        start = end;
        loop {
            let len = match decoder.next(&mut tail) {
                Ok(Step::Frame { len, event }) => {
                    if let Some(event) = event {
                        let message_len = match event {
                            Event::Text(text) => text.len(),
                            Event::Binary(bytes) => bytes.len(),
                            _ => 0,
                        };
                        assert!(message_len <= limits.message_max);
                        events.push(owned(event));
                    }
                    len
                }
                Ok(Step::Incomplete { needed }) => {
                    assert!(needed > tail.len(), "needed {needed} of {}", tail.len());
                    assert!(
                        tail.len() < limits.buffer_max(),
                        "{} bytes pending",
                        tail.len()
                    );
                    break;
                }
                Err(error) => {
                    assert!(matches!(error.close_code(), 1002 | 1007 | 1009));
                    assert_eq!(decoder.next(&mut tail), Err(error), "poisoned");
                    events.push(Ev::Invalid(error));
                    return events;
                }
            };
            assert!(len > 0 && len <= tail.len(), "len {len} of {}", tail.len());
            tail.drain(..len);
        }
    }
    events.push(Ev::End(decoder.pending(&tail)));
    events
}

fuzz_target!(|data: &[u8]| {
    // Byte 0: how many cut points follow (two bytes each); byte 1: which limits; the rest is
    // the stream.
    let Some((&count, rest)) = data.split_first() else {
        return;
    };
    let Some((&which, rest)) = rest.split_first() else {
        return;
    };
    let limits = match which % 3 {
        0 => SMALL,
        1 => TINY,
        _ => Limits::default(),
    };
    let cut_bytes = (usize::from(count) * 2).min(rest.len());
    let (cut_data, stream) = rest.split_at(cut_bytes);
    let mut cuts: Vec<usize> = cut_data
        .chunks(2)
        .map(|pair| usize::from(pair[0]) << 8 | usize::from(*pair.get(1).unwrap_or(&0)))
        .map(|cut| cut % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    assert_eq!(decode(stream, &[], limits), decode(stream, &cuts, limits));
});
