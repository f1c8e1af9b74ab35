//! Incremental UTF-8 validation across the fragments of a text message.

/// Bytes of the longest UTF-8 sequence.
const CODE_POINT_LEN_MAX: usize = 4;

/// Validates a text message fed in pieces, carrying the start of a code point (at most 3 bytes)
/// from one piece to the next. Fails at the first piece holding a byte that no continuation can
/// make valid (`std::str::from_utf8` checks each byte against its lead byte, so an overlong form,
/// a surrogate or a code point above U+10FFFF fails at its second byte).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utf8Stream {
    carry: [u8; CODE_POINT_LEN_MAX],
    carry_len: u8,
}

/// Bytes that are not UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Utf8Error;

impl Utf8Stream {
    /// A stream at a code point boundary.
    pub const fn new() -> Utf8Stream {
        Utf8Stream {
            carry: [0; CODE_POINT_LEN_MAX],
            carry_len: 0,
        }
    }

    /// Whether the bytes so far end on a code point boundary.
    pub const fn is_complete(&self) -> bool {
        self.carry_len == 0
    }

    /// Feeds the next piece.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), Utf8Error> {
        if self.carry_len > 0 {
            let have = usize::from(self.carry_len);
            let want = sequence_len(self.carry[0]);
            assert!(have < want && want <= CODE_POINT_LEN_MAX);
            let take = (want - have).min(bytes.len());
            self.carry[have..have + take].copy_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            let have = have + take;
            match std::str::from_utf8(&self.carry[..have]) {
                Ok(_) => self.carry_len = 0,
                Err(error) if error.error_len().is_some() => return Err(Utf8Error),
                Err(_) => {
                    // Still a valid prefix: the piece ended inside the code point.
                    assert!(bytes.is_empty());
                    self.carry_len = have as u8;
                    return Ok(());
                }
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(error) if error.error_len().is_some() => Err(Utf8Error),
            Err(error) => {
                let rest = &bytes[error.valid_up_to()..];
                assert!(!rest.is_empty() && rest.len() < CODE_POINT_LEN_MAX);
                self.carry[..rest.len()].copy_from_slice(rest);
                self.carry_len = rest.len() as u8;
                Ok(())
            }
        }
    }

    /// Ends the message: an unfinished code point is an error.
    pub fn finish(self) -> Result<(), Utf8Error> {
        if self.is_complete() {
            Ok(())
        } else {
            Err(Utf8Error)
        }
    }
}

/// The length of the sequence a lead byte starts (one that `from_utf8` left as a valid prefix).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => unreachable!("{lead:#x} cannot start an incomplete sequence"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(pieces: &[&[u8]]) -> Result<(), Utf8Error> {
        let mut stream = Utf8Stream::new();
        for piece in pieces {
            stream.push(piece)?;
        }
        stream.finish()
    }

    #[test]
    fn every_two_and_three_way_split_agrees_with_std() {
        let samples: &[&[u8]] = &[
            "aé€😀z".as_bytes(),
            "κόσμε".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
            b"\xf4\x90\x80\x80",
            b"\xf0\x9f\x98",
            b"\xe0\x80\xaf",
            b"\xc0\xaf",
            b"\xff",
            b"\xf0\x9f\x98\x80\x80",
            b"",
        ];
        for sample in samples {
            let expected = std::str::from_utf8(sample)
                .map(|_| ())
                .map_err(|_| Utf8Error);
            for a in 0..=sample.len() {
                for b in a..=sample.len() {
                    let pieces = [&sample[..a], &sample[a..b], &sample[b..]];
                    assert_eq!(validate(&pieces), expected, "{sample:?} cut {a} {b}");
                }
            }
        }
    }

    #[test]
    fn fails_at_the_first_bad_piece() {
        let mut stream = Utf8Stream::new();
        assert_eq!(stream.push(b"ok \xf4"), Ok(()));
        assert_eq!(stream.push(b"\x90"), Err(Utf8Error), "above U+10FFFF");
        let mut stream = Utf8Stream::new();
        assert_eq!(stream.push(b"\xed"), Ok(()));
        assert_eq!(stream.push(b"\xa0"), Err(Utf8Error), "a surrogate");
        let mut stream = Utf8Stream::new();
        assert_eq!(stream.push(b"\xe2\x82"), Ok(()));
        assert!(!stream.is_complete());
        assert_eq!(stream.push(b"\xac"), Ok(()));
        assert!(stream.is_complete());
    }
}
