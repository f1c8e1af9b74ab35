//! The WebSocket message assembler: events, every state and limit error with its close code,
//! incomplete frames, and what it reports for a message cut by the peer's FIN.

use protocol::ws::{
    encode_masked_frame, Decoder, Error, Event, Limits, Opcode, Pending, Phase, Step,
};

const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

fn frame(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_masked_frame(opcode, fin, MASK, payload, &mut out);
    out
}

mod ws_common;

use ws_common::{owned, Ev, Outcome};

/// Decodes the whole stream as the engine does: events, then the error or what is pending.
#[track_caller]
fn decode(limits: Limits, stream: &[u8]) -> Outcome {
    let mut decoder = Decoder::new(limits);
    let mut tail = stream.to_vec();
    let mut events = Vec::new();
    loop {
        let len = match decoder.next(&mut tail) {
            Ok(Step::Frame { len, event }) => {
                events.extend(event.map(owned));
                len
            }
            Ok(Step::Incomplete { needed }) => {
                assert!(needed > tail.len(), "needed {needed} of {}", tail.len());
                break;
            }
            Err(error) => {
                // Poisoned: the same error again.
                assert_eq!(decoder.next(&mut tail), Err(error));
                return (events, Err(error));
            }
        };
        tail.drain(..len);
    }
    (events, Ok(decoder.pending(&tail)))
}

fn small(message_max: usize, fragments_max: u32) -> Limits {
    Limits {
        message_max,
        fragments_max,
    }
}

#[test]
fn single_frames_and_control_events() {
    let stream = [
        frame(Opcode::Text, true, "héllo".as_bytes()),
        frame(Opcode::Binary, true, &[0, 1, 2, 255]),
        frame(Opcode::Text, true, b""),
        frame(Opcode::Ping, true, b"p"),
        frame(Opcode::Pong, true, b""),
        frame(Opcode::Close, true, b"\x03\xe8bye"),
    ]
    .concat();
    let expected = vec![
        Ev::Text("héllo".into()),
        Ev::Binary(vec![0, 1, 2, 255]),
        Ev::Text(String::new()),
        Ev::Ping(b"p".to_vec()),
        Ev::Pong(vec![]),
        Ev::Close(Some(1000), "bye".into()),
    ];
    assert_eq!(decode(Limits::default(), &stream), (expected, Ok(None)));
    let empty_close = frame(Opcode::Close, true, b"");
    assert_eq!(
        decode(Limits::default(), &empty_close),
        (vec![Ev::Close(None, String::new())], Ok(None))
    );
}

#[test]
fn single_frame_payload_is_borrowed_from_the_input() {
    let mut input = frame(Opcode::Binary, true, b"zero copy");
    let range = input.as_ptr_range();
    let mut decoder = Decoder::new(Limits::default());
    let Ok(Step::Frame {
        len,
        event: Some(Event::Binary(payload)),
    }) = decoder.next(&mut input)
    else {
        panic!("a binary message");
    };
    assert_eq!((len, payload), (15, &b"zero copy"[..]));
    assert!(range.contains(&payload.as_ptr()), "unmasked in place");
}

#[test]
fn fragments_with_control_frames_between() {
    let stream = [
        frame(Opcode::Text, false, "κό".as_bytes()),
        frame(Opcode::Ping, true, b"1"),
        frame(Opcode::Continuation, false, b""),
        frame(Opcode::Pong, true, b"2"),
        frame(Opcode::Continuation, true, "σμε".as_bytes()),
        frame(Opcode::Binary, false, b"ab"),
        frame(Opcode::Continuation, true, b"cd"),
    ]
    .concat();
    let expected = vec![
        Ev::Ping(b"1".to_vec()),
        Ev::Pong(b"2".to_vec()),
        Ev::Text("κόσμε".into()),
        Ev::Binary(b"abcd".to_vec()),
    ];
    assert_eq!(decode(Limits::default(), &stream), (expected, Ok(None)));
}

#[test]
fn text_split_inside_code_points() {
    let text = "a€😀b".as_bytes();
    for cut in 0..=text.len() {
        let stream = [
            frame(Opcode::Text, false, &text[..cut]),
            frame(Opcode::Continuation, true, &text[cut..]),
        ]
        .concat();
        assert_eq!(
            decode(Limits::default(), &stream),
            (vec![Ev::Text("a€😀b".into())], Ok(None)),
            "cut {cut}"
        );
    }
}

#[test]
fn limits_are_inclusive() {
    let limits = small(10, 3);
    let whole = frame(Opcode::Binary, true, &[7; 10]);
    assert_eq!(
        decode(limits, &whole),
        (vec![Ev::Binary(vec![7; 10])], Ok(None))
    );
    let fragmented = [
        frame(Opcode::Binary, false, &[1; 4]),
        frame(Opcode::Continuation, false, &[2; 4]),
        frame(Opcode::Continuation, true, &[3; 2]),
    ]
    .concat();
    let payload = [[1; 4].as_slice(), &[2; 4], &[3; 2]].concat();
    assert_eq!(
        decode(limits, &fragmented),
        (vec![Ev::Binary(payload)], Ok(None))
    );
    // Control frames are not counted in the message.
    let ping = frame(Opcode::Ping, true, &[0; 125]);
    assert_eq!(
        decode(limits, &ping),
        (vec![Ev::Ping(vec![0; 125])], Ok(None))
    );
}

/// Each row: the frames, the limits, the events before the error, the error and its close code.
#[test]
fn errors_and_close_codes() {
    let text = |fin, payload: &[u8]| frame(Opcode::Text, fin, payload);
    let cont = |fin, payload: &[u8]| frame(Opcode::Continuation, fin, payload);
    let close = |payload: &[u8]| frame(Opcode::Close, true, payload);
    let d = Limits::default();
    let rows: Vec<(Vec<Vec<u8>>, Limits, usize, Error)> = vec![
        (vec![cont(true, b"x")], d, 0, Error::UnexpectedContinuation),
        (vec![cont(false, b"x")], d, 0, Error::UnexpectedContinuation),
        (
            vec![text(true, b"a"), cont(true, b"x")],
            d,
            1,
            Error::UnexpectedContinuation,
        ),
        (
            vec![text(false, b"a"), text(true, b"b")],
            d,
            0,
            Error::ExpectedContinuation,
        ),
        (
            vec![text(false, b"a"), frame(Opcode::Binary, false, b"b")],
            d,
            0,
            Error::ExpectedContinuation,
        ),
        (
            vec![vec![0xC1, 0x80, 0, 0, 0, 0]],
            d,
            0,
            Error::ReservedBits { rsv: 4 },
        ),
        (
            vec![vec![0x83, 0x80, 0, 0, 0, 0]],
            d,
            0,
            Error::UnknownOpcode { opcode: 3 },
        ),
        (
            vec![vec![0x8B, 0x80, 0, 0, 0, 0]],
            d,
            0,
            Error::UnknownOpcode { opcode: 11 },
        ),
        (vec![vec![0x81, 0x00]], d, 0, Error::Unmasked),
        (
            vec![vec![0x09, 0x80]],
            d,
            0,
            Error::FragmentedControl { opcode: 9 },
        ),
        (
            vec![vec![0x89, 0xFE, 0, 126]],
            d,
            0,
            Error::ControlTooLong { len: 126 },
        ),
        (
            vec![vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]],
            d,
            0,
            Error::LengthTopBit,
        ),
        (vec![close(b"\x03")], d, 0, Error::CloseLenOne),
        (
            vec![close(&999u16.to_be_bytes())],
            d,
            0,
            Error::InvalidCloseCode { code: 999 },
        ),
        (
            vec![close(&1004u16.to_be_bytes())],
            d,
            0,
            Error::InvalidCloseCode { code: 1004 },
        ),
        (
            vec![close(&1005u16.to_be_bytes())],
            d,
            0,
            Error::InvalidCloseCode { code: 1005 },
        ),
        (
            vec![close(&1006u16.to_be_bytes())],
            d,
            0,
            Error::InvalidCloseCode { code: 1006 },
        ),
        (
            vec![close(&1015u16.to_be_bytes())],
            d,
            0,
            Error::InvalidCloseCode { code: 1015 },
        ),
        (
            vec![close(&2999u16.to_be_bytes())],
            d,
            0,
            Error::InvalidCloseCode { code: 2999 },
        ),
        (
            vec![close(&5000u16.to_be_bytes())],
            d,
            0,
            Error::InvalidCloseCode { code: 5000 },
        ),
        (
            vec![close(b"\x03\xe8\xff")],
            d,
            0,
            Error::InvalidCloseReason,
        ),
        (
            vec![close(b""), frame(Opcode::Ping, true, b"")],
            d,
            1,
            Error::FrameAfterClose,
        ),
        (vec![text(true, b"\xff")], d, 0, Error::InvalidUtf8),
        (vec![text(true, b"ok\xe2\x82")], d, 0, Error::InvalidUtf8),
        // Fails at the fragment with the bad byte, with no FIN in sight.
        (
            vec![text(false, b"\xce"), cont(false, b"\xba\xff")],
            d,
            0,
            Error::InvalidUtf8,
        ),
        (vec![text(false, b"\xed\xa0")], d, 0, Error::InvalidUtf8),
        (vec![text(false, b"\xf4\x90")], d, 0, Error::InvalidUtf8),
        // A code point left unfinished at FIN.
        (
            vec![text(false, b"a"), cont(true, b"\xf0\x9f\x98")],
            d,
            0,
            Error::InvalidUtf8,
        ),
        (
            vec![frame(Opcode::Binary, true, &[0; 11])],
            small(10, 4),
            0,
            Error::MessageTooBig,
        ),
        (
            vec![text(false, b"123456"), cont(true, b"12345")],
            small(10, 4),
            0,
            Error::MessageTooBig,
        ),
        (
            vec![text(false, b"a"), cont(false, b"b"), cont(true, b"c")],
            small(10, 2),
            0,
            Error::TooManyFragments,
        ),
    ];
    for (frames, limits, events_before, expected) in rows {
        let stream = frames.concat();
        let (events, end) = decode(limits, &stream);
        assert_eq!(end, Err(expected), "{stream:x?}");
        assert_eq!(events.len(), events_before, "{stream:x?}");
        let code = match expected {
            Error::InvalidUtf8 | Error::InvalidCloseReason => 1007,
            Error::MessageTooBig | Error::TooManyFragments => 1009,
            _ => 1002,
        };
        assert_eq!(expected.close_code(), code, "{expected:?}");
    }
}

#[test]
fn limits_fail_at_the_header() {
    // Only the header of an over-long frame: refused before its payload arrives.
    let stream = frame(Opcode::Binary, true, &[0; 300]);
    assert_eq!(
        decode(small(299, 4), &stream[..8]),
        (vec![], Err(Error::MessageTooBig))
    );
    let stream = [
        frame(Opcode::Text, false, b"a"),
        frame(Opcode::Continuation, true, b"b"),
    ]
    .concat();
    assert_eq!(
        decode(small(10, 1), &stream[..13]),
        (vec![], Err(Error::TooManyFragments))
    );
}

#[test]
fn incomplete_frames_ask_for_the_rest() {
    let stream = frame(Opcode::Binary, true, &[5; 200]);
    let mut decoder = Decoder::new(Limits::default());
    let cases = [(0, 2), (1, 2), (2, 8), (7, 8), (8, 208), (207, 208)];
    for (cut, needed) in cases {
        let mut input = stream[..cut].to_vec();
        assert_eq!(
            decoder.next(&mut input),
            Ok(Step::Incomplete { needed }),
            "cut {cut}"
        );
        assert_eq!(
            input,
            &stream[..cut],
            "an incomplete frame is left untouched"
        );
    }
}

#[test]
fn pending_reports_phase_and_bytes() {
    let d = Limits::default();
    let first = frame(Opcode::Text, false, b"hello");
    let second = frame(Opcode::Continuation, true, b"world");
    let pending = |phase, bytes| Ok(Some(Pending { phase, bytes }));
    assert_eq!(decode(d, &first[..1]), (vec![], pending(Phase::Header, 1)));
    assert_eq!(decode(d, &first[..5]), (vec![], pending(Phase::Header, 5)));
    assert_eq!(decode(d, &first[..6]), (vec![], pending(Phase::Body, 6)));
    assert_eq!(decode(d, &first), (vec![], pending(Phase::Body, 11)));
    let cut = [first.clone(), second[..3].to_vec()].concat();
    assert_eq!(decode(d, &cut), (vec![], pending(Phase::Body, 14)));
    // A control frame between fragments is its own message: not counted.
    let ping = frame(Opcode::Ping, true, b"ping");
    let cut = [first.clone(), ping.clone(), second[..3].to_vec()].concat();
    assert_eq!(
        decode(d, &cut),
        (vec![Ev::Ping(b"ping".to_vec())], pending(Phase::Body, 14))
    );
    let whole = [first, ping, second].concat();
    assert_eq!(decode(d, &whole).1, Ok(None));
}

#[test]
#[should_panic(expected = "fragments_max must be at least 1")]
fn invalid_limits_are_a_configuration_bug() {
    Decoder::new(small(10, 0));
}
