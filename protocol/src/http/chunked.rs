//! The chunked transfer coding (RFC 9112 §7.1): an incremental validator that examines each
//! framing byte once across calls and skips data in one step, and an iterator over the data of
//! an encoding it validated.

use super::error::Error;
use super::examined;
use super::limits::Caps;

/// Where the validator stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first hex digit of a size.
    SizeStart,
    /// In the hex digits.
    Size,
    /// Whitespace after the digits: `;` or CR may follow.
    SizeWs,
    /// In a chunk extension (`;name=value`), tolerated and ignored.
    Ext,
    /// CR of the size line seen; LF must follow.
    SizeLf,
    /// In chunk data: `size` bytes left.
    Data,
    /// Chunk data done; CR must follow.
    DataCr,
    /// LF must follow the data's CR.
    DataLf,
    /// After the last chunk's size line, at the start of a trailer line or the final CRLF.
    TrailerStart,
    /// In a trailer field line, tolerated and ignored.
    Trailer,
    /// LF must follow a trailer line's CR.
    TrailerLf,
    /// LF of the final CRLF must follow.
    EndLf,
}

/// Progress through one chunked body, kept by the parser between calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ChunkScan {
    state: State,
    /// The size being read (size states), or the data bytes left of this chunk (`Data`).
    size: u32,
    /// The sum of the chunk sizes read so far.
    data_total: u32,
    /// Framing bytes (everything but data) examined so far.
    overhead: u32,
    /// Bytes of the body examined so far: the next call resumes here.
    pos: u32,
}

impl ChunkScan {
    pub const fn new() -> ChunkScan {
        ChunkScan {
            state: State::SizeStart,
            size: 0,
            data_total: 0,
            overhead: 0,
            pos: 0,
        }
    }

    /// Bytes of the body examined so far.
    pub fn pos(&self) -> usize {
        self.pos as usize
    }

    /// The decoded length: the sum of the chunk sizes.
    pub fn data_len(&self) -> usize {
        self.data_total as usize
    }

    /// Validates `body` (the bytes after the head) from where the last call stopped. `Some(end)`
    /// once the encoding ends at `end`; `None` if more bytes are needed.
    pub fn scan(&mut self, body: &[u8], caps: &Caps) -> Result<Option<usize>, Error> {
        loop {
            let pos = self.pos as usize;
            assert!(
                pos <= body.len(),
                "resumed at {pos} past {} bytes",
                body.len()
            );
            if self.state == State::Data {
                let take = (body.len() - pos).min(self.size as usize);
                if take == 0 {
                    return Ok(None);
                }
                examined(take);
                self.pos += take as u32;
                self.size -= take as u32;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let Some(&byte) = body.get(pos) else {
                return Ok(None);
            };
            examined(1);
            self.pos += 1;
            self.overhead += 1;
            if self.overhead > caps.chunk_overhead_max {
                return Err(Error::ChunkOverheadTooLarge);
            }
            if self.step(byte, caps)? {
                return Ok(Some(self.pos as usize));
            }
        }
    }

    /// One framing byte; `true` when it ends the encoding.
    fn step(&mut self, byte: u8, caps: &Caps) -> Result<bool, Error> {
        self.state = match (self.state, byte) {
            (State::SizeStart | State::Size, _) if hex_value(byte).is_some() => {
                let digit = hex_value(byte).map_or(0, u64::from);
                let size = u64::from(self.size) * 16 + digit;
                if u64::from(self.data_total) + size > u64::from(caps.body_max) {
                    return Err(Error::BodyTooLarge);
                }
                self.size = size as u32; // <= body_max, checked above
                State::Size
            }
            (State::Size | State::SizeWs, b' ' | b'\t') => State::SizeWs,
            (State::Size | State::SizeWs, b';') => State::Ext,
            (State::Size | State::SizeWs | State::Ext, b'\r') => State::SizeLf,
            (State::Ext, _) if is_text(byte) => State::Ext,
            (State::SizeStart | State::Size | State::SizeWs | State::Ext, _) => {
                return Err(Error::BadChunkSize)
            }
            (State::SizeLf, b'\n') => {
                self.data_total += self.size;
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            (State::SizeLf, _) => return Err(Error::BadChunkSize),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => {
                self.size = 0;
                State::SizeStart
            }
            (State::DataCr | State::DataLf, _) => return Err(Error::BadChunkData),
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::Trailer, b'\r') => State::TrailerLf,
            (State::TrailerStart | State::Trailer, _) if is_text(byte) => State::Trailer,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => return Ok(true),
            (State::TrailerStart | State::Trailer | State::TrailerLf | State::EndLf, _) => {
                return Err(Error::BadTrailer)
            }
            (State::Data, _) => unreachable!("data is skipped, not stepped"),
        };
        Ok(false)
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// A byte allowed inside an extension or a trailer line: HTAB, or visible/SP/obs-text.
fn is_text(byte: u8) -> bool {
    byte == b'\t' || (byte >= 0x20 && byte != 0x7f)
}

/// The data pieces of a chunked encoding the parser validated, in order, without the
/// framing; borrowed from the input. Never yields an empty piece.
#[derive(Clone, Debug)]
pub struct Chunks<'a> {
    rest: &'a [u8],
}

impl<'a> Chunks<'a> {
    /// `encoded` must be a validated encoding (anything else ends the iteration early).
    pub(super) fn new(encoded: &'a [u8]) -> Chunks<'a> {
        Chunks { rest: encoded }
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = std::mem::take(&mut self.rest);
        let mut size: usize = 0;
        for &byte in rest.iter().take_while(|&&byte| hex_value(byte).is_some()) {
            let digit = usize::from(hex_value(byte)?);
            size = size.checked_mul(16)?.checked_add(digit)?;
        }
        let data_start = rest.iter().position(|&byte| byte == b'\n')? + 1;
        if size == 0 {
            return None; // the last chunk: trailers follow
        }
        let data_end = data_start.checked_add(size)?;
        let data = rest.get(data_start..data_end)?;
        self.rest = rest.get(data_end + 2..).unwrap_or_default();
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::limits::Limits;

    fn caps(body_max: usize, chunk_overhead_max: usize) -> Caps {
        Caps::new(&Limits {
            body_max,
            chunk_overhead_max,
            ..Limits::default()
        })
    }

    /// The end of the encoding once complete, or why it is not one.
    type Scanned = Result<Option<usize>, Error>;

    fn scan_whole(body: &[u8], caps: &Caps) -> Scanned {
        ChunkScan::new().scan(body, caps)
    }

    #[test]
    fn scan_table() {
        let c = caps(16, 40);
        let cases: &[(&[u8], Scanned)] = &[
            (b"0\r\n\r\n", Ok(Some(5))),
            (b"0\r\n\r\nGET", Ok(Some(5))),
            (b"2\r\n20\r\n0\r\n\r\n", Ok(Some(12))),
            (b"1\r\n2\r\n1\r\n0\r\n0\r\n\r\n", Ok(Some(17))),
            (b"a\r\n0123456789\r\n0\r\n\r\n", Ok(Some(20))),
            (b"A\r\n0123456789\r\n0\r\n\r\n", Ok(Some(20))),
            (b"002\r\nab\r\n0\r\n\r\n", Ok(Some(14))),
            (b"2;name=value\r\nab\r\n0;x\r\n\r\n", Ok(Some(25))),
            (b"2 ;x\r\nab\r\n0\r\n\r\n", Ok(Some(15))),
            (b"2\t\r\nab\r\n0\r\n\r\n", Ok(Some(13))),
            (b"0\r\nTrailer: x\r\n\r\n", Ok(Some(17))),
            (b"0\r\n\r", Ok(None)),
            (b"2\r\na", Ok(None)),
            (b"", Ok(None)),
            (b"\r\n", Err(Error::BadChunkSize)),
            (b"x\r\n", Err(Error::BadChunkSize)),
            (b" 2\r\n", Err(Error::BadChunkSize)),
            (b"2 3\r\n", Err(Error::BadChunkSize)),
            (b"-2\r\n", Err(Error::BadChunkSize)),
            (b"2\n", Err(Error::BadChunkSize)),
            (b"2\rx", Err(Error::BadChunkSize)),
            (b"2;a\x01\r\n", Err(Error::BadChunkSize)),
            (b"2\r\nabc", Err(Error::BadChunkData)),
            (b"2\r\nab\rx", Err(Error::BadChunkData)),
            (b"2\r\nab\n", Err(Error::BadChunkData)),
            (b"0\r\n\n", Err(Error::BadTrailer)),
            (b"0\r\nX: y\n", Err(Error::BadTrailer)),
            (b"0\r\nX: y\r\r", Err(Error::BadTrailer)),
            (b"0\r\n\rx", Err(Error::BadTrailer)),
            // 413 from the size line: the hex says too much before any data arrives.
            (b"11", Err(Error::BodyTooLarge)),
            (b"10\r\n", Ok(None)),
            (b"8\r\n01234567\r\n9", Err(Error::BodyTooLarge)),
            (b"ffffffffffffffffffffffff", Err(Error::BodyTooLarge)),
            (
                b"00000000000000000000000000000000000000001",
                Err(Error::ChunkOverheadTooLarge),
            ),
            (
                b"1;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                Err(Error::ChunkOverheadTooLarge),
            ),
        ];
        for (body, expected) in cases {
            let got = scan_whole(body, &c);
            assert_eq!(&got, expected, "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn byte_by_byte_matches_whole() {
        let c = caps(64, 64);
        let body = b"3;x=y\r\nabc\r\n1\r\nd\r\n0\r\nT: v\r\n\r\n";
        let mut scan = ChunkScan::new();
        for end in 0..body.len() {
            assert_eq!(scan.scan(&body[..end], &c), Ok(None), "at {end}");
        }
        assert_eq!(scan.scan(body, &c), Ok(Some(body.len())));
        assert_eq!(scan.data_len(), 4);
        let pieces: Vec<&[u8]> = Chunks::new(body).collect();
        assert_eq!(pieces, vec![&b"abc"[..], b"d"]);
    }

    #[test]
    fn chunks_of_a_truncated_encoding_end_early() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"", &[]),
            (b"2\r\n", &[]),
            (b"2\r\nab", &[b"ab"]),
            (b"ffffffffffffffffffffff\r\nab", &[]),
            (b"0\r\n\r\n", &[]),
        ];
        for (encoded, expected) in cases {
            let got: Vec<&[u8]> = Chunks::new(encoded).collect();
            assert_eq!(&got, expected, "{:?}", String::from_utf8_lossy(encoded));
        }
    }
}
