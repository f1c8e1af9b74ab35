//! Table tests of the WebSocket frame header parser: every shape, every header error and its
//! close code, and the answer for every prefix of a header.

use protocol::ws::{parse_header, Error, FrameHeader, HeaderParse, Opcode};

const MASK: [u8; 4] = [0xA1, 0xB2, 0xC3, 0xD4];

fn header(fin: bool, opcode: Opcode, payload_len: u64, header_len: usize) -> HeaderParse {
    HeaderParse::Complete(FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask: MASK,
        payload_len,
        header_len,
    })
}

/// `bytes` followed by the mask key.
fn with_mask(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.extend_from_slice(&MASK);
    out
}

#[test]
fn valid_headers() {
    let cases: Vec<(Vec<u8>, HeaderParse)> = vec![
        (with_mask(&[0x81, 0x80]), header(true, Opcode::Text, 0, 6)),
        (with_mask(&[0x01, 0x85]), header(false, Opcode::Text, 5, 6)),
        (
            with_mask(&[0x82, 0xFD]),
            header(true, Opcode::Binary, 125, 6),
        ),
        (
            with_mask(&[0x00, 0x81]),
            header(false, Opcode::Continuation, 1, 6),
        ),
        (
            with_mask(&[0x80, 0x81]),
            header(true, Opcode::Continuation, 1, 6),
        ),
        (with_mask(&[0x88, 0x82]), header(true, Opcode::Close, 2, 6)),
        (with_mask(&[0x89, 0xFD]), header(true, Opcode::Ping, 125, 6)),
        (with_mask(&[0x8A, 0x80]), header(true, Opcode::Pong, 0, 6)),
        (
            with_mask(&[0x82, 0xFE, 0x00, 0x7E]),
            header(true, Opcode::Binary, 126, 8),
        ),
        (
            with_mask(&[0x82, 0xFE, 0xFF, 0xFF]),
            header(true, Opcode::Binary, 65535, 8),
        ),
        (
            with_mask(&[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]),
            header(true, Opcode::Binary, 65536, 14),
        ),
        (
            with_mask(&[0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]),
            header(true, Opcode::Binary, u64::MAX >> 1, 14),
        ),
        // Non-minimal length encodings are accepted (documented on `parse_header`).
        (
            with_mask(&[0x82, 0xFE, 0x00, 0x05]),
            header(true, Opcode::Binary, 5, 8),
        ),
        (
            with_mask(&[0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0, 5]),
            header(true, Opcode::Binary, 5, 14),
        ),
    ];
    for (bytes, expected) in cases {
        assert_eq!(parse_header(&bytes), Ok(expected), "{bytes:x?}");
        // Bytes after the header (the payload) change nothing.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0x55; 20]);
        assert_eq!(parse_header(&longer), Ok(expected), "{bytes:x?} and more");
        // Every prefix is incomplete, and asks for more than it has.
        for cut in 0..bytes.len() {
            match parse_header(&bytes[..cut]) {
                Ok(HeaderParse::Incomplete { needed }) => {
                    assert!(
                        needed > cut && needed <= bytes.len(),
                        "{bytes:x?} cut {cut}"
                    )
                }
                other => panic!("{bytes:x?} cut {cut}: {other:?}"),
            }
        }
    }
}

#[test]
fn header_errors_and_close_codes() {
    let mut cases: Vec<(Vec<u8>, Error)> = vec![
        (vec![0xC1], Error::ReservedBits { rsv: 4 }),
        (vec![0xA1], Error::ReservedBits { rsv: 2 }),
        (vec![0x91], Error::ReservedBits { rsv: 1 }),
        (vec![0xF2], Error::ReservedBits { rsv: 7 }),
        (vec![0x08], Error::FragmentedControl { opcode: 8 }),
        (vec![0x09], Error::FragmentedControl { opcode: 9 }),
        (vec![0x0A], Error::FragmentedControl { opcode: 10 }),
        (vec![0x81, 0x05], Error::Unmasked),
        (vec![0x88, 0x00], Error::Unmasked),
        (vec![0x89, 0xFE], Error::ControlTooLong { len: 126 }),
        (vec![0x8A, 0xFF], Error::ControlTooLong { len: 127 }),
        (
            vec![0x88, 0xFE, 0x00, 0x05],
            Error::ControlTooLong { len: 126 },
        ),
        (
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0],
            Error::LengthTopBit,
        ),
        (
            vec![0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            Error::LengthTopBit,
        ),
    ];
    for opcode in (3..=7).chain(11..=15) {
        cases.push((vec![0x80 | opcode], Error::UnknownOpcode { opcode }));
        cases.push((vec![opcode], Error::UnknownOpcode { opcode }));
    }
    for (bytes, expected) in cases {
        assert_eq!(parse_header(&bytes), Err(expected), "{bytes:x?}");
        assert_eq!(expected.close_code(), 1002, "{expected:?}");
        // The error holds whatever follows.
        let longer = with_mask(&bytes);
        assert_eq!(parse_header(&longer), Err(expected), "{bytes:x?} and more");
    }
}

#[test]
fn first_failing_rule_wins() {
    // RSV is checked before the opcode, the opcode before FIN, FIN before the mask bit.
    assert_eq!(parse_header(&[0x43]), Err(Error::ReservedBits { rsv: 4 }));
    assert_eq!(
        parse_header(&[0x03]),
        Err(Error::UnknownOpcode { opcode: 3 })
    );
    assert_eq!(
        parse_header(&[0x09, 0x7E]),
        Err(Error::FragmentedControl { opcode: 9 })
    );
    assert_eq!(parse_header(&[0x89, 0x7E]), Err(Error::Unmasked));
}
