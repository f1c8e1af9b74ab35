//! The message assembler: frames in, messages and control events out, no I/O, bounded memory.

use super::close::{parse_close, Close};
use super::header::{parse_header, FrameHeader, HeaderParse, Opcode};
use super::mask::unmask;
use super::utf8::Utf8Stream;
use super::{Error, Limits};

/// What a client sent, borrowed from the caller's input (a whole message in one frame, a
/// control frame) or from the decoder (a message reassembled from fragments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A complete text message, validated UTF-8.
    Text(&'a str),
    /// A complete binary message.
    Binary(&'a [u8]),
    /// A ping: answer with a pong carrying the same payload.
    Ping(&'a [u8]),
    /// A pong (the answer to a ping, or a heartbeat): nothing to do.
    Pong(&'a [u8]),
    /// The client closes: answer with a close frame (echoing the code) and close the connection.
    Close(Close<'a>),
}

/// What the start of the input holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// A whole frame of `len` bytes (header included): drop them and call again. `event` is
    /// `None` for a fragment that does not end its message.
    Frame {
        /// The frame's bytes on the wire.
        len: usize,
        /// What the frame completed, if anything.
        event: Option<Event<'a>>,
    },
    /// The frame is incomplete: call again with at least `needed` bytes (the same bytes
    /// followed by more).
    Incomplete {
        /// Bytes from the start of the input needed before the next call can say more.
        needed: usize,
    },
}

/// Where an incomplete message stands when the stream stops (the engine's `partial_phase`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Inside a frame header, no fragmented message begun.
    Header,
    /// A frame's header is complete but its payload is not, or a fragmented message waits for
    /// its next fragment.
    Body,
}

/// The incomplete message a decoder and the caller's tail hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// Where the stream stopped.
    pub phase: Phase,
    /// Bytes of the incomplete message received, headers included: the data frames of a
    /// fragmented message consumed so far plus the caller's unconsumed tail.
    pub bytes: usize,
}

/// A fragmented message being reassembled.
#[derive(Debug)]
struct Message {
    text: bool,
    fragments: u32,
    payload: Vec<u8>,
    utf8: Utf8Stream,
    /// Bytes on the wire of its frames so far, headers included.
    wire_bytes: usize,
}

/// Where the event of a frame just consumed is (computed before borrowing it).
#[derive(Clone, Copy, Debug)]
enum Found {
    Incomplete {
        needed: usize,
    },
    /// A non-final fragment.
    Nothing {
        len: usize,
    },
    /// A single-frame message or a control frame: `input[start..len]`.
    InInput {
        opcode: Opcode,
        start: usize,
        len: usize,
    },
    /// A reassembled message, in `Decoder::done`.
    Assembled {
        text: bool,
        len: usize,
    },
}

/// Decodes client frames from the start of the caller's unconsumed bytes, the way
/// [`Parser`](crate::http::Parser) parses requests: the caller keeps the bytes it has not
/// consumed, appends what it receives, and calls [`Decoder::next`] until it says incomplete.
///
/// Payloads are unmasked in place, in the caller's buffer, in one pass: a message in one frame
/// and a control frame are borrowed from it without a copy. Only a fragmented message is copied,
/// into a buffer of at most `message_max` bytes that is freed at the next call. Every limit and
/// rule is enforced at the frame header that breaks it, before its payload is received; text is
/// validated at each frame (a fragment with a byte no continuation can make UTF-8 fails at once).
///
/// After an error every call returns the same error; after a close event, more frames are
/// [`Error::FrameAfterClose`].
#[derive(Debug)]
pub struct Decoder {
    limits: Limits,
    message: Option<Message>,
    /// The last reassembled message, lent to the caller until the next call.
    done: Vec<u8>,
    closed: bool,
    failed: Option<Error>,
}

impl Decoder {
    /// A decoder for one connection. Panics if the limits do not validate (a configuration bug).
    pub fn new(limits: Limits) -> Decoder {
        let limits = match limits.validate() {
            Ok(limits) => limits,
            Err(error) => panic!("invalid WebSocket limits: {error}"),
        };
        Decoder {
            limits,
            message: None,
            done: Vec::new(),
            closed: false,
            failed: None,
        }
    }

    /// The limits it enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The error that stopped decoding, if any.
    pub fn error(&self) -> Option<Error> {
        self.failed
    }

    /// Whether the client's close frame was received.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Decodes the frame at the start of `input`, unmasking its payload in place.
    ///
    /// The unmasked bytes are the frame's `len` bytes the caller then drops; an incomplete frame
    /// is left untouched.
    pub fn next<'a>(&'a mut self, input: &'a mut [u8]) -> Result<Step<'a>, Error> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        if self.done.capacity() != 0 {
            // The message lent by the last call: an idle connection holds no message memory.
            self.done = Vec::new();
        }
        let found = match self.advance(input) {
            Ok(found) => found,
            Err(error) => return Err(self.fail(error)),
        };
        let input: &'a [u8] = input;
        let (len, event) = match found {
            Found::Incomplete { needed } => return Ok(Step::Incomplete { needed }),
            Found::Nothing { len } => (len, None),
            Found::InInput { opcode, start, len } => {
                let payload = &input[start..len];
                let event = match opcode {
                    Opcode::Text => match std::str::from_utf8(payload) {
                        Ok(text) => Event::Text(text),
                        Err(_) => return Err(self.fail(Error::InvalidUtf8)),
                    },
                    Opcode::Binary => Event::Binary(payload),
                    Opcode::Ping => Event::Ping(payload),
                    Opcode::Pong => Event::Pong(payload),
                    Opcode::Close => match parse_close(payload) {
                        Ok(close) => Event::Close(close),
                        Err(error) => return Err(self.fail(error)),
                    },
                    Opcode::Continuation => unreachable!("a continuation is never in the input"),
                };
                (len, Some(event))
            }
            Found::Assembled { text, len } => {
                let event = if text {
                    let text = std::str::from_utf8(&self.done)
                        .expect("text validated fragment by fragment");
                    Event::Text(text)
                } else {
                    Event::Binary(&self.done)
                };
                (len, Some(event))
            }
        };
        Ok(Step::Frame { len, event })
    }

    /// The incomplete message held when the stream stops, given the caller's unconsumed `tail`;
    /// `None` at a message boundary (or after the client's close).
    pub fn pending(&self, tail: &[u8]) -> Option<Pending> {
        if self.closed {
            return None;
        }
        let (phase, held) = match &self.message {
            Some(message) => (Phase::Body, message.wire_bytes),
            None if tail.is_empty() => return None,
            None => match parse_header(tail) {
                Ok(HeaderParse::Complete(_)) => (Phase::Body, 0),
                Ok(HeaderParse::Incomplete { .. }) | Err(_) => (Phase::Header, 0),
            },
        };
        Some(Pending {
            phase,
            bytes: held + tail.len(),
        })
    }

    fn fail(&mut self, error: Error) -> Error {
        self.failed = Some(error);
        self.message = None;
        self.done = Vec::new();
        error
    }

    /// Reads, checks and unmasks the frame at the start of `input` and updates the state.
    fn advance(&mut self, input: &mut [u8]) -> Result<Found, Error> {
        if self.closed && !input.is_empty() {
            return Err(Error::FrameAfterClose);
        }
        let header = match parse_header(input)? {
            HeaderParse::Complete(header) => header,
            HeaderParse::Incomplete { needed } => return Ok(Found::Incomplete { needed }),
        };
        self.check(&header)?;
        // `check` bounds the payload by the limits, so the frame length fits a usize.
        let len = usize::try_from(header.frame_len()).expect("payload within the limits");
        if input.len() < len {
            return Ok(Found::Incomplete { needed: len });
        }
        let start = header.header_len;
        let payload = &mut input[start..len];
        unmask(payload, header.mask, 0);
        let opcode = header.opcode;
        match opcode {
            Opcode::Close => {
                self.closed = true;
                Ok(Found::InInput { opcode, start, len })
            }
            Opcode::Ping | Opcode::Pong => Ok(Found::InInput { opcode, start, len }),
            Opcode::Text | Opcode::Binary if header.fin => {
                Ok(Found::InInput { opcode, start, len })
            }
            Opcode::Text | Opcode::Binary => {
                let mut message = Message {
                    text: opcode == Opcode::Text,
                    fragments: 0,
                    payload: Vec::new(),
                    utf8: Utf8Stream::new(),
                    wire_bytes: 0,
                };
                self.append(&mut message, payload, len)?;
                self.message = Some(message);
                Ok(Found::Nothing { len })
            }
            Opcode::Continuation => {
                let mut message = self.message.take().expect("check: a message to continue");
                self.append(&mut message, payload, len)?;
                if !header.fin {
                    self.message = Some(message);
                    return Ok(Found::Nothing { len });
                }
                if message.text && message.utf8.finish().is_err() {
                    return Err(Error::InvalidUtf8);
                }
                self.done = message.payload;
                Ok(Found::Assembled {
                    text: message.text,
                    len,
                })
            }
        }
    }

    /// The rules that depend on the state and the limits, checked on the header alone.
    fn check(&self, header: &FrameHeader) -> Result<(), Error> {
        let (held, fragments) = match (&self.message, header.opcode) {
            (_, opcode) if opcode.is_control() => return Ok(()),
            (None, Opcode::Continuation) => return Err(Error::UnexpectedContinuation),
            (Some(_), Opcode::Text | Opcode::Binary) => return Err(Error::ExpectedContinuation),
            (Some(message), _) => (message.payload.len(), message.fragments),
            (None, _) => (0, 0),
        };
        if fragments >= self.limits.fragments_max {
            return Err(Error::TooManyFragments);
        }
        let room = self.limits.message_max - held;
        if header.payload_len > room as u64 {
            return Err(Error::MessageTooBig);
        }
        Ok(())
    }

    /// Adds a fragment's unmasked payload, validating text as it goes.
    fn append(&self, message: &mut Message, payload: &[u8], len: usize) -> Result<(), Error> {
        if message.text && message.utf8.push(payload).is_err() {
            return Err(Error::InvalidUtf8);
        }
        let needed = message.payload.len() + payload.len();
        assert!(
            needed <= self.limits.message_max,
            "check bounds the message"
        );
        if needed > message.payload.capacity() {
            // Grow by doubling, but never past the limit: the buffer stays within message_max.
            let target = needed
                .max(2 * message.payload.capacity())
                .min(self.limits.message_max);
            message
                .payload
                .reserve_exact(target - message.payload.len());
        }
        message.payload.extend_from_slice(payload);
        message.fragments += 1;
        message.wire_bytes += len;
        Ok(())
    }
}
