//! The frame header of RFC 6455 section 5.2, read from the start of a byte slice (no copy).

use super::Error;

/// Payload bytes a control frame may carry.
pub const CONTROL_PAYLOAD_MAX: usize = 125;
/// The longest header: 2 bytes, a 64-bit extended length, a 4-byte mask key.
pub const HEADER_LEN_MAX: usize = 2 + 8 + 4;
/// The shortest header a client may send: 2 bytes and the mask key.
pub const HEADER_LEN_MIN: usize = 2 + 4;

/// A frame's opcode (the ones RFC 6455 defines; the reserved ones are an error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// 0x0: the next fragment of a text or binary message.
    Continuation,
    /// 0x1: the first (or only) frame of a UTF-8 text message.
    Text,
    /// 0x2: the first (or only) frame of a binary message.
    Binary,
    /// 0x8: the peer closes; payload empty or a status code and a UTF-8 reason.
    Close,
    /// 0x9: the peer asks for a pong with the same payload.
    Ping,
    /// 0xA: an answer to a ping, or an unsolicited heartbeat.
    Pong,
}

impl Opcode {
    /// The opcode of a frame's 4 low bits; `None` for the reserved ones (3-7, 11-15).
    pub const fn from_bits(bits: u8) -> Option<Opcode> {
        match bits {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }

    /// The 4 bits on the wire.
    pub const fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, at most 125 payload bytes, allowed between the
    /// fragments of a message.
    pub const fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A validated client frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// The final frame of its message.
    pub fin: bool,
    /// RSV1-3 (bits 6-4 of the first byte, shifted down). Always 0 in a header
    /// [`parse_header`] returns: no extension is negotiated, so set bits are an error.
    pub rsv: u8,
    /// What the frame carries.
    pub opcode: Opcode,
    /// The masking key (client frames are always masked: an unmasked one is an error).
    pub mask: [u8; 4],
    /// Payload bytes after the header (below 2^63).
    pub payload_len: u64,
    /// Header bytes: 6, 8 or 14.
    pub header_len: usize,
}

impl FrameHeader {
    /// Header and payload bytes.
    pub const fn frame_len(&self) -> u64 {
        self.header_len as u64 + self.payload_len
    }
}

/// What the start of the input holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderParse {
    /// A whole, valid header.
    Complete(FrameHeader),
    /// The header is not all there: at least `needed` bytes (from the start of the input) are
    /// needed before the next call can say more. Always more than the input's length.
    Incomplete { needed: usize },
}

/// Reads the frame header at the start of `input`, without copying.
///
/// Each rule is checked as soon as the byte it needs is there (RSV, opcode and FIN from the
/// first byte; the mask bit and a control frame's length from the second), so a bad frame is
/// an error before the rest of its header arrives, and the answer is the same for any split.
///
/// Non-minimal length encodings (126 with a length below 126, 127 with one below 65536) are
/// accepted: RFC 6455 says the sender MUST use the minimal one but gives the receiver no
/// instruction, and common servers accept them; the length means the same either way.
pub fn parse_header(input: &[u8]) -> Result<HeaderParse, Error> {
    let Some(&first) = input.first() else {
        return Ok(HeaderParse::Incomplete { needed: 2 });
    };
    let fin = first & 0x80 != 0;
    let rsv = (first >> 4) & 0x7;
    if rsv != 0 {
        return Err(Error::ReservedBits { rsv });
    }
    let bits = first & 0x0F;
    let opcode = Opcode::from_bits(bits).ok_or(Error::UnknownOpcode { opcode: bits })?;
    if opcode.is_control() && !fin {
        return Err(Error::FragmentedControl { opcode: bits });
    }
    let Some(&second) = input.get(1) else {
        return Ok(HeaderParse::Incomplete { needed: 2 });
    };
    if second & 0x80 == 0 {
        return Err(Error::Unmasked);
    }
    let len7 = second & 0x7F;
    if opcode.is_control() && usize::from(len7) > CONTROL_PAYLOAD_MAX {
        return Err(Error::ControlTooLong { len: len7 });
    }
    let length_bytes = match len7 {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let header_len = HEADER_LEN_MIN + length_bytes;
    if input.len() < 2 + length_bytes {
        return Ok(HeaderParse::Incomplete { needed: header_len });
    }
    let payload_len = match length_bytes {
        2 => u64::from(u16::from_be_bytes([input[2], input[3]])),
        8 => {
            let bytes: [u8; 8] = input[2..10].try_into().expect("8 length bytes");
            let len = u64::from_be_bytes(bytes);
            if len >> 63 != 0 {
                return Err(Error::LengthTopBit);
            }
            len
        }
        _ => u64::from(len7),
    };
    if input.len() < header_len {
        return Ok(HeaderParse::Incomplete { needed: header_len });
    }
    let mask: [u8; 4] = input[header_len - 4..header_len]
        .try_into()
        .expect("4 mask bytes");
    Ok(HeaderParse::Complete(FrameHeader {
        fin,
        rsv,
        opcode,
        mask,
        payload_len,
        header_len,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_bits_roundtrip() {
        for bits in 0..16u8 {
            match Opcode::from_bits(bits) {
                Some(opcode) => assert_eq!(opcode.bits(), bits),
                None => assert!(matches!(bits, 3..=7 | 11..=15), "bits {bits}"),
            }
        }
    }

    #[test]
    fn incomplete_asks_for_the_header_length() {
        let frame = [0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4];
        assert_eq!(
            parse_header(&frame[..0]),
            Ok(HeaderParse::Incomplete { needed: 2 })
        );
        assert_eq!(
            parse_header(&frame[..1]),
            Ok(HeaderParse::Incomplete { needed: 2 })
        );
        for cut in 2..8 {
            assert_eq!(
                parse_header(&frame[..cut]),
                Ok(HeaderParse::Incomplete { needed: 8 }),
                "cut {cut}"
            );
        }
        let Ok(HeaderParse::Complete(header)) = parse_header(&frame) else {
            panic!("a whole header");
        };
        assert_eq!((header.payload_len, header.header_len), (256, 8));
        assert_eq!(header.frame_len(), 264);
    }
}
