//! Finds where a request head ends, examining each byte once across calls, and enforces the
//! head limits (414, 431) at the byte that crosses them.
//!
//! This only finds line boundaries; the request line and the header fields are parsed by
//! `httparse` (see `head.rs`). Line endings follow `httparse`: CRLF or a bare LF.

use super::error::Error;
use super::examined;
use super::limits::Caps;

/// Where the scanner stands within the head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// Before the request line: empty lines (CRLF or LF) are skipped (RFC 9112 §2.2).
    Leading,
    /// A CR of a leading empty line; LF must follow.
    LeadingCr,
    /// Inside the request line.
    RequestLine,
    /// At the start of a header line, or of the blank line that ends the head.
    FieldStart,
    /// A CR at the start of a line; LF ends the head.
    BlankCr,
    /// Inside a header line.
    Field,
}

/// Progress through one head, kept by the parser between calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct HeadScan {
    pub place: Place,
    /// Header lines begun so far.
    pub fields: u16,
    /// Where the request line starts (after the leading empty lines).
    pub line_start: u32,
    /// Bytes examined so far: the next call resumes here.
    pub pos: u32,
}

/// What a scan reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// The input ends inside the head.
    Partial,
    /// The request line ends at `end` (after its LF): validate it, then scan on.
    RequestLine { start: usize, end: usize },
    /// The head ends at `end` (after the blank line's LF).
    Done { end: usize },
}

impl HeadScan {
    pub const fn new() -> HeadScan {
        HeadScan {
            place: Place::Leading,
            fields: 0,
            line_start: 0,
            pos: 0,
        }
    }

    /// Scans `input` from where the last call stopped. `input` must start with the bytes the
    /// earlier calls saw.
    pub fn scan(&mut self, input: &[u8], caps: &Caps) -> Result<Step, Error> {
        let head_max = caps.head_max as usize;
        loop {
            let pos = self.pos as usize;
            assert!(pos <= head_max, "scanned {pos} past head_max {head_max}");
            // A byte that is examined stays below head_max: `pos == head_max` means the limit
            // was crossed without the blank line (checked where `pos` advances).
            let Some(&byte) = input.get(pos) else {
                return Ok(Step::Partial);
            };
            match self.place {
                Place::RequestLine => return self.request_line(input, caps),
                Place::Field => {
                    let end = input.len().min(head_max);
                    match find_lf(&input[pos..end]) {
                        Some(at) => {
                            self.advance(at + 1, caps)?;
                            self.place = Place::FieldStart;
                        }
                        None => {
                            self.advance(end - pos, caps)?;
                            return Ok(Step::Partial);
                        }
                    }
                    continue;
                }
                Place::Leading => match byte {
                    b'\r' => self.place = Place::LeadingCr,
                    b'\n' => {}
                    _ => {
                        self.place = Place::RequestLine;
                        self.line_start = self.pos;
                        continue; // this byte is the request line's first
                    }
                },
                Place::LeadingCr if byte == b'\n' => self.place = Place::Leading,
                Place::LeadingCr => return Err(Error::BadRequestLine),
                Place::FieldStart => match byte {
                    b'\r' => self.place = Place::BlankCr,
                    b'\n' => return Ok(self.done()),
                    _ => {
                        self.fields += 1;
                        if usize::from(self.fields) > usize::from(caps.headers_max) {
                            return Err(Error::TooManyHeaders);
                        }
                        self.place = Place::Field;
                        continue; // the field line's first byte
                    }
                },
                Place::BlankCr if byte == b'\n' => return Ok(self.done()),
                // httparse would reject it too: a line that starts with CR must be the blank one.
                Place::BlankCr => return Err(Error::BadHeader),
            }
            self.advance(1, caps)?;
        }
    }

    /// Inside the request line: finds its LF within `request_line_max` of its start.
    fn request_line(&mut self, input: &[u8], caps: &Caps) -> Result<Step, Error> {
        let pos = self.pos as usize;
        let start = self.line_start as usize;
        let line_end_max = start + caps.request_line_max as usize;
        let end = input.len().min(line_end_max).min(caps.head_max as usize);
        match find_lf(&input[pos..end]) {
            Some(at) => {
                self.advance(at + 1, caps)?;
                self.place = Place::FieldStart;
                Ok(Step::RequestLine {
                    start,
                    end: self.pos as usize,
                })
            }
            None => {
                self.skip(end - pos, caps);
                // A full request line is the more precise answer when both limits fall on
                // one byte.
                if self.pos as usize >= line_end_max {
                    return Err(Error::RequestLineTooLong);
                }
                self.check_head_max(caps)?;
                Ok(Step::Partial)
            }
        }
    }

    /// Moves past `count` examined bytes that did not end the head.
    fn advance(&mut self, count: usize, caps: &Caps) -> Result<(), Error> {
        self.skip(count, caps);
        self.check_head_max(caps)
    }

    fn skip(&mut self, count: usize, caps: &Caps) {
        examined(count);
        let pos = self.pos as usize + count;
        assert!(pos <= caps.head_max as usize, "{pos} > {}", caps.head_max);
        self.pos = pos as u32;
    }

    /// Once `head_max` bytes are examined and none ended the head, it cannot fit.
    fn check_head_max(&self, caps: &Caps) -> Result<(), Error> {
        if self.pos >= caps.head_max {
            return Err(Error::HeadTooLarge);
        }
        Ok(())
    }

    /// The byte at `pos` is the blank line's LF.
    fn done(&mut self) -> Step {
        examined(1);
        self.pos += 1;
        Step::Done {
            end: self.pos as usize,
        }
    }
}

fn find_lf(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&byte| byte == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::limits::Limits;

    fn caps(request_line_max: usize, head_max: usize, headers_max: usize) -> Caps {
        Caps::new(&Limits {
            request_line_max,
            head_max,
            headers_max,
            ..Limits::default()
        })
    }

    /// Scans `input` whole, validating nothing: the final step or error.
    fn scan_whole(input: &[u8], caps: &Caps) -> Result<Step, Error> {
        let mut scan = HeadScan::new();
        loop {
            match scan.scan(input, caps)? {
                Step::RequestLine { .. } => continue,
                other => return Ok(other),
            }
        }
    }

    #[test]
    fn scan_table() {
        let c = caps(16, 40, 2);
        let cases: &[(&[u8], Result<Step, Error>)] = &[
            (b"", Ok(Step::Partial)),
            (b"GET / HTTP/1.1\r\n\r\n", Ok(Step::Done { end: 18 })),
            (b"GET / HTTP/1.1\n\n", Ok(Step::Done { end: 16 })),
            (
                b"\r\n\nGET / HTTP/1.1\r\n\r\nNEXT",
                Ok(Step::Done { end: 21 }),
            ),
            (
                b"GET / HTTP/1.1\r\nA: b\r\n\r\n",
                Ok(Step::Done { end: 24 }),
            ),
            (b"GET / HTTP/1.1\r\nA: b\r\n", Ok(Step::Partial)),
            (b"GET / HTTP/1.1\r\nA: b\r\n\r", Ok(Step::Partial)),
            (b"\rGET", Err(Error::BadRequestLine)),
            (b"GET / HTTP/1.1\r\n\rX", Err(Error::BadHeader)),
            // The line with its CRLF fits in 16 bytes; one more byte does not.
            (b"GET /a HTTP/1.1\n\n", Ok(Step::Done { end: 17 })),
            (b"GET /ab HTTP/1.1\r\n\r\n", Err(Error::RequestLineTooLong)),
            (b"GET /abcdefghijk", Err(Error::RequestLineTooLong)),
            (b"GET /abcdefghij", Ok(Step::Partial)),
            (
                b"GET / HTTP/1.1\r\nA: b\r\nB: c\r\n\r\n",
                Ok(Step::Done { end: 30 }),
            ),
            (
                b"GET / HTTP/1.1\r\nA: b\r\nB: c\r\nC",
                Err(Error::TooManyHeaders),
            ),
            (
                b"GET / HTTP/1.1\r\nAbcdefghijklmnopqrstuvwx",
                Err(Error::HeadTooLarge),
            ),
            (
                b"GET / HTTP/1.1\r\nAbcdefghijklmnopqrstuvw",
                Ok(Step::Partial),
            ),
        ];
        for (input, expected) in cases {
            let got = scan_whole(input, &c);
            assert_eq!(&got, expected, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn a_request_line_as_long_as_the_head_limit_leaves_no_room() {
        let c = caps(16, 16, 2);
        let cases: &[(&[u8], Result<Step, Error>)] = &[
            (b"GET /a HTTP/1.1\n", Err(Error::HeadTooLarge)),
            (b"GET /a HTTP/1.1\n\n", Err(Error::HeadTooLarge)),
            (b"GET /a HTTP/1.1\n\r\n", Err(Error::HeadTooLarge)),
            (b"GET /a HTTP/1.1\r\n", Err(Error::RequestLineTooLong)),
            (b"GET /ab HTTP/1.1\n", Err(Error::RequestLineTooLong)),
            (b"GET / HTTP/1.1\n\n", Ok(Step::Done { end: 16 })),
        ];
        for (input, expected) in cases {
            let got = scan_whole(input, &c);
            assert_eq!(&got, expected, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn head_limit_counts_leading_empty_lines() {
        let c = caps(16, 20, 2);
        let input = b"\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(scan_whole(input, &c), Err(Error::HeadTooLarge));
        assert_eq!(scan_whole(&input[4..], &c), Ok(Step::Done { end: 20 }));
    }

    #[test]
    fn a_head_fed_byte_by_byte_gives_the_same_steps() {
        let c = caps(64, 200, 8);
        let input = b"\r\nPOST /x?y=1 HTTP/1.1\r\nHost: a\r\nB: c\n\r\nbody";
        let mut scan = HeadScan::new();
        let mut steps = Vec::new();
        for end in 0..=input.len() {
            loop {
                match scan.scan(&input[..end], &c) {
                    Ok(Step::Partial) => break,
                    step => {
                        steps.push((end, step));
                        if !matches!(step, Ok(Step::RequestLine { .. })) {
                            break;
                        }
                    }
                }
            }
            if matches!(steps.last(), Some((_, Ok(Step::Done { .. })))) {
                break;
            }
        }
        assert_eq!(
            steps,
            vec![
                (24, Ok(Step::RequestLine { start: 2, end: 24 })),
                (40, Ok(Step::Done { end: 40 })),
            ]
        );
    }
}
