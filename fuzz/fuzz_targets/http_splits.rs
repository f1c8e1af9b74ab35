//! Fuzz target: any bytes, cut at any points, parse to the same HTTP requests and the same final
//! error or phase as the whole stream in one piece; the parser never panics, and a pending
//! request never holds more than the limits allow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::http::{Error, Limits, Parse, Parser, Phase, Version};

/// Small limits, so that every limit is reachable from short inputs.
const SMALL: Limits = Limits {
    request_line_max: 64,
    head_max: 256,
    headers_max: 8,
    body_max: 512,
    chunk_overhead_max: 128,
};

/// A request line as long as the whole head: the edge where the two limits meet.
const EDGE: Limits = Limits {
    request_line_max: 48,
    head_max: 48,
    headers_max: 2,
    body_max: 4,
    chunk_overhead_max: 12,
};

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Request {
        len: usize,
        method: String,
        path: String,
        query: Option<String>,
        version: Version,
        keep_alive: bool,
        tag: Option<u64>,
        body: Vec<u8>,
    },
    Invalid(Error),
    /// The stream ended with this many bytes of an incomplete request (`None`: none pending).
    End(Option<(Phase, usize)>),
}

fn parse(stream: &[u8], cuts: &[usize], limits: Limits) -> Vec<Event> {
    let mut parser = Parser::new(limits);
    let mut tail = Vec::new();
    let mut events = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&stream.len())) {
        tail.extend_from_slice(&stream[start..end]);
        start = end;
        loop {
            match parser.parse(&tail) {
                Parse::Complete { request, len } => {
                    assert!(len > 0 && len <= tail.len(), "len {len} of {}", tail.len());
                    let body: Vec<u8> = request.body.pieces().flatten().copied().collect();
                    assert_eq!(body.len(), request.body.len());
                    assert!(body.len() <= limits.body_max);
                    events.push(Event::Request {
                        len,
                        method: request.method.to_owned(),
                        path: request.path.to_owned(),
                        query: request.query.map(str::to_owned),
                        version: request.version,
                        keep_alive: request.keep_alive,
                        tag: request.tag,
                        body,
                    });
                    tail.drain(..len);
                }
                Parse::Partial(_) => {
                    assert!(
                        tail.len() < limits.buffer_max(),
                        "{} bytes pending",
                        tail.len()
                    );
                    break;
                }
                Parse::Invalid(error) => {
                    events.push(Event::Invalid(error));
                    return events;
                }
            }
        }
    }
    let pending = match parser.parse(&tail) {
        Parse::Partial(phase) if !tail.is_empty() => Some((phase, tail.len())),
        Parse::Partial(_) => None,
        other => panic!("a stream that was partial is now {other:?}"),
    };
    events.push(Event::End(pending));
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
        1 => EDGE,
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
    assert_eq!(parse(stream, &[], limits), parse(stream, &cuts, limits));
});
