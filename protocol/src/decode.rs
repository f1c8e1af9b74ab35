//! Incremental frame decoder: same frames for any split of the stream, no buffer at a boundary.

use std::fmt;

use bytes::BytesMut;

use crate::{Frame, Kind, HEADER_LEN, HELLO_LEN, PAYLOAD_LEN_MAX};

/// Why a byte stream is not a valid frame sequence. Detected from the header alone, so a bad
/// frame is rejected before its payload arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    UnknownKind { kind: u8 },
    TooLong { len: usize, max: usize },
    HelloLen { len: usize },
    CloseLen { len: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownKind { kind } => write!(f, "unknown frame kind {kind:#04x}"),
            DecodeError::TooLong { len, max } => {
                write!(
                    f,
                    "frame payload of {len} bytes exceeds the maximum of {max}"
                )
            }
            DecodeError::HelloLen { len } => {
                write!(f, "HELLO payload must be {HELLO_LEN} bytes, got {len}")
            }
            DecodeError::CloseLen { len } => write!(f, "CLOSE payload must be empty, got {len}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// What the frame callback wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Keep decoding.
    Continue,
    /// Stop here and ignore the rest of the input (after CLOSE).
    Stop,
}

/// A validated frame header.
#[derive(Clone, Copy, Debug)]
struct Header {
    kind: Kind,
    payload_len: usize,
}

impl Header {
    fn parse(bytes: &[u8], max_frame: usize) -> Result<Header, DecodeError> {
        assert!(bytes.len() >= HEADER_LEN);
        let payload_len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        let kind = Kind::from_byte(bytes[2]).ok_or(DecodeError::UnknownKind { kind: bytes[2] })?;
        if payload_len > max_frame {
            return Err(DecodeError::TooLong {
                len: payload_len,
                max: max_frame,
            });
        }
        match kind {
            Kind::Hello if payload_len != HELLO_LEN => {
                Err(DecodeError::HelloLen { len: payload_len })
            }
            Kind::Close if payload_len != 0 => Err(DecodeError::CloseLen { len: payload_len }),
            _ => Ok(Header { kind, payload_len }),
        }
    }

    fn frame_len(self) -> usize {
        HEADER_LEN + self.payload_len
    }
}

/// What the start of a byte stream holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A whole frame of `len` bytes (header included).
    Frame { frame: Frame<'a>, len: usize },
    /// The start of a frame whose `len` bytes (header included) are not all there; `None` while
    /// the header itself is incomplete.
    Incomplete { len: Option<usize> },
}

/// The frame at the start of `input`, without copying: for a caller that keeps the unconsumed
/// rest of the stream itself. A bad header is an error as soon as its 3 bytes are there.
pub fn next_frame(input: &[u8], max_frame: usize) -> Result<Next<'_>, DecodeError> {
    if input.len() < HEADER_LEN {
        return Ok(Next::Incomplete { len: None });
    }
    let header = Header::parse(input, max_frame)?;
    let len = header.frame_len();
    if input.len() < len {
        return Ok(Next::Incomplete { len: Some(len) });
    }
    Ok(Next::Frame {
        frame: Frame {
            kind: header.kind,
            payload: &input[HEADER_LEN..len],
        },
        len,
    })
}

/// Decodes frames from a byte stream fed in arbitrary pieces.
///
/// Complete frames inside one piece are yielded straight from it (no copy); only a frame that
/// straddles pieces is assembled in `partial`, which is freed as soon as that frame completes.
#[derive(Debug)]
pub struct Decoder {
    max_frame: usize,
    partial: BytesMut,
    failed: Option<DecodeError>,
}

impl Decoder {
    /// `max_frame` is the largest payload accepted; longer frames are a [`DecodeError::TooLong`].
    pub fn new(max_frame: usize) -> Decoder {
        assert!(
            max_frame <= PAYLOAD_LEN_MAX,
            "max_frame {max_frame} > {PAYLOAD_LEN_MAX}"
        );
        assert!(
            max_frame >= HELLO_LEN,
            "max_frame {max_frame} cannot carry a HELLO"
        );
        Decoder {
            max_frame,
            partial: BytesMut::new(),
            failed: None,
        }
    }

    /// The error that stopped decoding, if any.
    pub fn error(&self) -> Option<DecodeError> {
        self.failed
    }

    /// Bytes of an incomplete frame held back; 0 at a frame boundary.
    pub fn partial_len(&self) -> usize {
        self.partial.len()
    }

    /// Feeds the next piece of the stream, calling `on_frame` for every frame it completes.
    ///
    /// Returns `Progress::Stop` if the callback stopped (the rest of `input` is then ignored).
    /// After an error every later call returns the same error.
    pub fn feed<F>(&mut self, input: &[u8], mut on_frame: F) -> Result<Progress, DecodeError>
    where
        F: FnMut(Frame<'_>) -> Progress,
    {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let result = self.feed_inner(input, &mut on_frame);
        if let Err(error) = result {
            self.failed = Some(error);
            self.partial = BytesMut::new();
        }
        result
    }

    fn feed_inner<F>(&mut self, mut input: &[u8], on_frame: &mut F) -> Result<Progress, DecodeError>
    where
        F: FnMut(Frame<'_>) -> Progress,
    {
        if !self.partial.is_empty() {
            match self.complete_partial(&mut input, on_frame)? {
                None => return Ok(Progress::Continue),
                Some(Progress::Stop) => return Ok(Progress::Stop),
                Some(Progress::Continue) => {}
            }
        }
        while !input.is_empty() {
            match next_frame(input, self.max_frame)? {
                Next::Frame { frame, len } => {
                    input = &input[len..];
                    if on_frame(frame) == Progress::Stop {
                        return Ok(Progress::Stop);
                    }
                }
                Next::Incomplete { len } => {
                    self.partial.reserve(len.unwrap_or(0));
                    self.partial.extend_from_slice(input);
                    break;
                }
            }
        }
        Ok(Progress::Continue)
    }

    /// Moves bytes from `input` into the pending frame. Returns `None` if `input` ran out first,
    /// else the callback's answer for the completed frame.
    fn complete_partial<F>(
        &mut self,
        input: &mut &[u8],
        on_frame: &mut F,
    ) -> Result<Option<Progress>, DecodeError>
    where
        F: FnMut(Frame<'_>) -> Progress,
    {
        if self.partial.len() < HEADER_LEN {
            let take = (HEADER_LEN - self.partial.len()).min(input.len());
            self.take_input(input, take);
            if self.partial.len() < HEADER_LEN {
                return Ok(None);
            }
        }
        let header = Header::parse(&self.partial, self.max_frame)?;
        let frame_len = header.frame_len();
        assert!(self.partial.len() <= frame_len);
        let take = (frame_len - self.partial.len()).min(input.len());
        self.take_input(input, take);
        if self.partial.len() < frame_len {
            return Ok(None);
        }
        let progress = on_frame(Frame {
            kind: header.kind,
            payload: &self.partial[HEADER_LEN..],
        });
        // Free the buffer: an idle connection holds no receive memory.
        self.partial = BytesMut::new();
        Ok(Some(progress))
    }

    fn take_input(&mut self, input: &mut &[u8], count: usize) {
        let (head, rest) = input.split_at(count);
        self.partial.extend_from_slice(head);
        *input = rest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_frame;

    fn decode_all(
        decoder: &mut Decoder,
        input: &[u8],
    ) -> Result<Vec<(Kind, Vec<u8>)>, DecodeError> {
        let mut frames = Vec::new();
        decoder.feed(input, |frame| {
            frames.push((frame.kind, frame.payload.to_vec()));
            Progress::Continue
        })?;
        Ok(frames)
    }

    #[test]
    fn header_errors() {
        let cases: &[(&[u8], DecodeError)] = &[
            (&[0, 0, 0x09], DecodeError::UnknownKind { kind: 0x09 }),
            (&[0, 0, 0x00], DecodeError::UnknownKind { kind: 0x00 }),
            (
                &[0x01, 0x00, 0x01],
                DecodeError::TooLong { len: 256, max: 100 },
            ),
            (&[0, 7, 0x03], DecodeError::HelloLen { len: 7 }),
            (&[0, 9, 0x03], DecodeError::HelloLen { len: 9 }),
            (&[0, 1, 0x02], DecodeError::CloseLen { len: 1 }),
        ];
        for (input, expected) in cases {
            let mut decoder = Decoder::new(100);
            assert_eq!(
                decode_all(&mut decoder, input),
                Err(*expected),
                "input {input:?}"
            );
            assert_eq!(decoder.partial_len(), 0);
            // Poisoned: the same error again, even for good input.
            assert_eq!(decode_all(&mut decoder, &[0, 0, 1]), Err(*expected));
        }
    }

    #[test]
    fn next_frame_reads_one_frame_in_place() {
        let mut stream = Vec::new();
        encode_frame(Kind::Echo, b"abc", &mut stream);
        encode_frame(Kind::Close, b"", &mut stream);
        let Ok(Next::Frame { frame, len }) = next_frame(&stream, 100) else {
            panic!("a whole frame");
        };
        assert_eq!(
            (frame.kind, frame.payload, len),
            (Kind::Echo, &b"abc"[..], 6)
        );
        assert_eq!(
            next_frame(&stream[..2], 100),
            Ok(Next::Incomplete { len: None })
        );
        assert_eq!(
            next_frame(&stream[..4], 100),
            Ok(Next::Incomplete { len: Some(6) })
        );
        assert_eq!(
            next_frame(&[0, 0, 9], 100),
            Err(DecodeError::UnknownKind { kind: 9 })
        );
    }

    #[test]
    fn max_frame_is_inclusive() {
        let mut stream = Vec::new();
        encode_frame(Kind::Echo, &[7; 100], &mut stream);
        let mut decoder = Decoder::new(100);
        assert_eq!(
            decode_all(&mut decoder, &stream),
            Ok(vec![(Kind::Echo, vec![7; 100])])
        );
    }

    #[test]
    fn partial_is_freed_at_boundary() {
        let mut stream = Vec::new();
        encode_frame(Kind::Echo, b"hello", &mut stream);
        let mut decoder = Decoder::new(100);
        assert_eq!(decode_all(&mut decoder, &stream[..4]), Ok(vec![]));
        assert_eq!(decoder.partial_len(), 4);
        assert_eq!(
            decode_all(&mut decoder, &stream[4..]),
            Ok(vec![(Kind::Echo, b"hello".to_vec())])
        );
        assert_eq!(decoder.partial_len(), 0);
        assert_eq!(
            decoder.partial.capacity(),
            0,
            "no buffer held at a frame boundary"
        );
    }

    #[test]
    fn stop_ignores_the_rest() {
        let mut stream = Vec::new();
        encode_frame(Kind::Echo, b"a", &mut stream);
        encode_frame(Kind::Close, b"", &mut stream);
        encode_frame(Kind::Echo, b"b", &mut stream);
        let mut decoder = Decoder::new(100);
        let mut seen = Vec::new();
        let progress = decoder.feed(&stream, |frame| {
            seen.push(frame.kind);
            if frame.kind == Kind::Close {
                Progress::Stop
            } else {
                Progress::Continue
            }
        });
        assert_eq!(progress, Ok(Progress::Stop));
        assert_eq!(seen, vec![Kind::Echo, Kind::Close]);
    }

    #[test]
    fn hello_tag_roundtrip() {
        let mut stream = Vec::new();
        encode_frame(
            Kind::Hello,
            &0x0102_0304_0506_0708u64.to_be_bytes(),
            &mut stream,
        );
        let mut decoder = Decoder::new(16);
        let mut tag = None;
        decoder
            .feed(&stream, |frame| {
                tag = Some(frame.hello_tag());
                Progress::Continue
            })
            .unwrap();
        assert_eq!(tag, Some(0x0102_0304_0506_0708));
    }
}
