//! Property: any split of a WebSocket byte stream decodes to the same events and the same end
//! (error, or incomplete message) as the whole stream, and a valid stream to the messages it
//! was made from.

use proptest::prelude::*;
use protocol::ws::{encode_masked_frame, Decoder, Limits, Opcode, Step};

mod ws_common;

use ws_common::{owned, Ev, Outcome};

/// Feeds the stream cut at `cuts` the way the engine does: append each piece to the unconsumed
/// tail, decode until incomplete, drop what was consumed.
fn decode_in_pieces(stream: &[u8], cuts: &[usize], limits: Limits) -> Outcome {
    let mut ends: Vec<usize> = cuts.iter().map(|cut| cut % (stream.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(stream.len());
    let mut decoder = Decoder::new(limits);
    let mut tail = Vec::new();
    let mut events = Vec::new();
    let mut start = 0;
    for end in ends {
        tail.extend_from_slice(&stream[start..end]);
        start = end;
        loop {
            let len = match decoder.next(&mut tail) {
                Ok(Step::Frame { len, event }) => {
                    events.extend(event.map(owned));
                    len
                }
                Ok(Step::Incomplete { needed }) => {
                    assert!(needed > tail.len());
                    assert!(
                        tail.len() < limits.buffer_max(),
                        "{} bytes held",
                        tail.len()
                    );
                    break;
                }
                Err(error) => return (events, Err(error)),
            };
            tail.drain(..len);
        }
    }
    (events, Ok(decoder.pending(&tail)))
}

/// One generated piece of a valid stream: its frames and the events they give.
#[derive(Clone, Debug)]
struct Piece {
    frames: Vec<u8>,
    events: Vec<Ev>,
}

fn control() -> impl Strategy<Value = (bool, Vec<u8>, [u8; 4])> {
    (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..=125),
        any::<[u8; 4]>(),
    )
}

fn push_control(ping: bool, payload: &[u8], mask: [u8; 4], piece: &mut Piece) {
    let opcode = if ping { Opcode::Ping } else { Opcode::Pong };
    encode_masked_frame(opcode, true, mask, payload, &mut piece.frames);
    piece.events.push(if ping {
        Ev::Ping(payload.to_vec())
    } else {
        Ev::Pong(payload.to_vec())
    });
}

/// A text or binary message cut into fragments (text cut anywhere, inside code points too),
/// with control frames between fragments.
fn message() -> impl Strategy<Value = Piece> {
    let text = proptest::collection::vec(any::<char>(), 0..40)
        .prop_map(|chars| (true, String::from_iter(chars).into_bytes()));
    let binary = proptest::collection::vec(any::<u8>(), 0..200).prop_map(|bytes| (false, bytes));
    (
        prop_oneof![text, binary],
        proptest::collection::vec(any::<usize>(), 0..5),
        proptest::collection::vec(proptest::option::of(control()), 5),
        any::<[u8; 4]>(),
    )
        .prop_map(|((is_text, payload), cuts, controls, mask)| {
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (payload.len() + 1)).collect();
            bounds.sort_unstable();
            bounds.push(payload.len());
            let mut piece = Piece {
                frames: Vec::new(),
                events: Vec::new(),
            };
            let mut start = 0;
            for (i, &end) in bounds.iter().enumerate() {
                let opcode = match (i, is_text) {
                    (0, true) => Opcode::Text,
                    (0, false) => Opcode::Binary,
                    _ => Opcode::Continuation,
                };
                let fin = i + 1 == bounds.len();
                encode_masked_frame(opcode, fin, mask, &payload[start..end], &mut piece.frames);
                start = end;
                if let (false, Some((ping, bytes, mask))) = (fin, &controls[i]) {
                    push_control(*ping, bytes, *mask, &mut piece);
                }
            }
            piece.events.push(if is_text {
                Ev::Text(String::from_utf8(payload).expect("made from chars"))
            } else {
                Ev::Binary(payload)
            });
            piece
        })
}

fn piece() -> impl Strategy<Value = Piece> {
    let lone_control = control().prop_map(|(ping, payload, mask)| {
        let mut piece = Piece {
            frames: Vec::new(),
            events: Vec::new(),
        };
        push_control(ping, &payload, mask, &mut piece);
        piece
    });
    prop_oneof![4 => message(), 1 => lone_control]
}

/// A valid close frame, or none.
fn close() -> impl Strategy<Value = Option<Piece>> {
    let code = prop_oneof![1000u16..=1003, 1007u16..=1014, 3000u16..=4999];
    let reason = proptest::collection::vec(any::<char>(), 0..20).prop_map(|chars| {
        let mut reason = String::new();
        for c in chars {
            if reason.len() + c.len_utf8() <= 123 {
                reason.push(c);
            }
        }
        reason
    });
    proptest::option::of((proptest::option::of((code, reason)), any::<[u8; 4]>())).prop_map(
        |close| {
            close.map(|(status, mask)| {
                let mut payload = Vec::new();
                if let Some((code, reason)) = &status {
                    payload.extend_from_slice(&code.to_be_bytes());
                    payload.extend_from_slice(reason.as_bytes());
                }
                let mut frames = Vec::new();
                encode_masked_frame(Opcode::Close, true, mask, &payload, &mut frames);
                let event = match status {
                    Some((code, reason)) => Ev::Close(Some(code), reason),
                    None => Ev::Close(None, String::new()),
                };
                Piece {
                    frames,
                    events: vec![event],
                }
            })
        },
    )
}

fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        (0usize..150, 1u32..4).prop_map(|(message_max, fragments_max)| Limits {
            message_max,
            fragments_max,
        }),
    ]
}

proptest! {
    #[test]
    fn valid_stream_any_split_same_events(
        pieces in proptest::collection::vec(piece(), 0..8),
        close in close(),
        cuts in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        let pieces: Vec<Piece> = pieces.into_iter().chain(close).collect();
        let stream: Vec<u8> = pieces.iter().flat_map(|p| p.frames.clone()).collect();
        let expected: Vec<Ev> = pieces.iter().flat_map(|p| p.events.clone()).collect();
        let whole = decode_in_pieces(&stream, &[], Limits::default());
        prop_assert_eq!(&whole, &(expected, Ok(None)));
        prop_assert_eq!(&decode_in_pieces(&stream, &cuts, Limits::default()), &whole);
        let bytewise: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(&decode_in_pieces(&stream, &bytewise, Limits::default()), &whole);
    }

    #[test]
    fn damaged_stream_any_split_same_outcome(
        pieces in proptest::collection::vec(piece(), 1..6),
        damage in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3),
        truncate in any::<usize>(),
        limits in limits(),
        cuts in proptest::collection::vec(any::<usize>(), 0..30),
    ) {
        let mut stream: Vec<u8> = pieces.iter().flat_map(|p| p.frames.clone()).collect();
        for (at, byte) in damage {
            let at = at % stream.len();
            stream[at] ^= byte;
        }
        stream.truncate(truncate % (stream.len() + 1));
        let whole = decode_in_pieces(&stream, &[], limits);
        prop_assert_eq!(&decode_in_pieces(&stream, &cuts, limits), &whole);
        let bytewise: Vec<usize> = (0..stream.len()).collect();
        prop_assert_eq!(&decode_in_pieces(&stream, &bytewise, limits), &whole);
    }

    #[test]
    fn random_bytes_any_split_same_outcome(
        stream in proptest::collection::vec(any::<u8>(), 0..64),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let whole = decode_in_pieces(&stream, &[], Limits::default());
        prop_assert_eq!(&decode_in_pieces(&stream, &cuts, Limits::default()), &whole);
    }
}
