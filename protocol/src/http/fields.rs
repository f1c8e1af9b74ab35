//! The header fields that decide framing and persistence, read from `httparse`'s fields:
//! Content-Length, Transfer-Encoding, Connection and the client tag. List-valued fields are
//! comma-separated, case-insensitive, with optional whitespace and empty elements ignored
//! (RFC 9110 §5.6.1).

use super::error::Error;

/// Longest decimal u64 (`18446744073709551615`).
const U64_DIGITS_MAX: usize = 20;

/// The elements of a list-valued field, whitespace trimmed, empty ones skipped.
pub(super) fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&byte| byte == b',')
        .map(trim_ows)
        .filter(|element| !element.is_empty())
}

/// `bytes` without leading and trailing SP/HTAB.
pub(super) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |at| at + 1);
    &bytes[start..end]
}

/// A decimal number of 1 or more digits; `Ok(None)` if it has too many digits for a u64.
fn decimal(bytes: &[u8]) -> Result<Option<u64>, ()> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(());
    }
    let value = bytes.iter().try_fold(0u64, |value, &digit| {
        value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    });
    Ok(value)
}

/// The client tag of an `x-client-tag` value: a decimal u64, or nothing if malformed.
/// Whether a Host value is `uri-host [":" port]` (RFC 9112 §3.2, RFC 3986 §3.2.2): empty, a
/// reg-name (unreserved, `%`-encoded and sub-delim characters; an IPv4 address is one), or an
/// IP literal in brackets, then an optional decimal port. A comma, though a sub-delim, is
/// refused: `Host: a,b` reads as two hosts to some intermediaries.
pub(super) fn is_host(value: &[u8]) -> bool {
    let value = trim_ows(value);
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|&byte| byte == b']') {
            Some(end) => (&value[..=end], &value[end + 1..]),
            None => return false,
        },
        _ => match value.iter().position(|&byte| byte == b':') {
            Some(at) => (&value[..at], &value[at..]),
            None => (value, &value[value.len()..]),
        },
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => digits.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    let host_ok = match host {
        [b'[', literal @ .., b']'] => {
            !literal.is_empty()
                && literal
                    .iter()
                    .all(|&byte| byte.is_ascii_hexdigit() || byte == b':' || byte == b'.')
        }
        name => name
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || b"-._~%!$&'()*+;=".contains(&byte)),
    };
    port_ok && host_ok
}

pub(super) fn client_tag(value: &[u8]) -> Option<u64> {
    let digits = trim_ows(value);
    if digits.len() > U64_DIGITS_MAX {
        return None;
    }
    decimal(digits).ok().flatten()
}

/// Content-Length over every field and list element: they must agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ContentLength {
    /// The value so far (`u64::MAX` for one too large to represent), or the first error.
    state: Option<Result<u64, Error>>,
}

impl ContentLength {
    pub fn add(&mut self, value: &[u8]) -> &mut Self {
        if let Some(Err(_)) = self.state {
            return self;
        }
        let mut elements = 0;
        for element in list(value) {
            elements += 1;
            let length = match decimal(element) {
                Ok(length) => length.unwrap_or(u64::MAX),
                Err(()) => {
                    self.state = Some(Err(Error::BadContentLength));
                    return self;
                }
            };
            match self.state {
                Some(Ok(seen)) if seen != length => {
                    self.state = Some(Err(Error::ConflictingContentLength));
                    return self;
                }
                _ => self.state = Some(Ok(length)),
            }
        }
        if elements == 0 {
            self.state = Some(Err(Error::BadContentLength));
        }
        self
    }

    /// `None` without the field; the length, or why the fields are not one length.
    pub fn get(&self) -> Option<Result<u64, Error>> {
        self.state
    }
}

/// Transfer-Encoding over every field, in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct TransferCodings {
    present: bool,
    last_chunked: bool,
    chunked: u8,
    other: bool,
}

impl TransferCodings {
    pub fn add(&mut self, value: &[u8]) -> &mut Self {
        self.present = true;
        for coding in list(value) {
            self.last_chunked = coding.eq_ignore_ascii_case(b"chunked");
            if self.last_chunked {
                self.chunked = self.chunked.saturating_add(1);
            } else {
                self.other = true;
            }
        }
        self
    }

    /// Whether the field was present at all.
    pub fn present(&self) -> bool {
        self.present
    }

    /// Checks that the codings are exactly `chunked`, once and last (RFC 9112 §6.1, §6.3).
    pub fn check(&self) -> Result<(), Error> {
        if !self.last_chunked || self.chunked > 1 {
            Err(Error::BadTransferEncoding)
        } else if self.other {
            Err(Error::UnsupportedTransferCoding)
        } else {
            Ok(())
        }
    }
}

/// The Connection options that decide persistence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ConnectionOptions {
    pub close: bool,
    pub keep_alive: bool,
}

impl ConnectionOptions {
    pub fn add(&mut self, value: &[u8]) -> &mut Self {
        for option in list(value) {
            self.close |= option.eq_ignore_ascii_case(b"close");
            self.keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
        }
        self
    }

    /// HTTP/1.1 persists unless `close`; HTTP/1.0 only with `keep-alive` (RFC 9112 §9.3).
    pub fn keep_alive(&self, http11: bool) -> bool {
        !self.close && (http11 || self.keep_alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_values() {
        let good: [&[u8]; 8] = [
            b"",
            b"a",
            b"example.com",
            b"example.com:8080",
            b"127.0.0.1:80",
            b"[::1]:7000",
            b"[fe80::1]",
            b"xn--bcher-kva.example",
        ];
        for value in good {
            assert!(is_host(value), "{:?}", String::from_utf8_lossy(value));
        }
        let bad: [&[u8]; 9] = [
            b"x, y", b"a b", b"x/y", b"x,y", b"a:b", b"a:80:90", b"[::1", b"[]", b"a@b",
        ];
        for value in bad {
            assert!(!is_host(value), "{:?}", String::from_utf8_lossy(value));
        }
    }

    /// What the Content-Length fields add up to.
    type Length = Option<Result<u64, Error>>;

    #[test]
    fn content_length_table() {
        let too_big = Some(Ok(u64::MAX));
        let cases: &[(&[&str], Length)] = &[
            (&[], None),
            (&["0"], Some(Ok(0))),
            (&["42"], Some(Ok(42))),
            (&[" 42 "], Some(Ok(42))),
            (&["007"], Some(Ok(7))),
            (&["5, 5"], Some(Ok(5))),
            (&["5", "5"], Some(Ok(5))),
            (&["5, 05"], Some(Ok(5))),
            (&["5,,5,"], Some(Ok(5))),
            (&["99999999999999999999999"], too_big),
            (&["5, 6"], Some(Err(Error::ConflictingContentLength))),
            (&["5", "6"], Some(Err(Error::ConflictingContentLength))),
            (&["5", "6", "x"], Some(Err(Error::ConflictingContentLength))),
            (&[""], Some(Err(Error::BadContentLength))),
            (&[","], Some(Err(Error::BadContentLength))),
            (&["-1"], Some(Err(Error::BadContentLength))),
            (&["+1"], Some(Err(Error::BadContentLength))),
            (&["1.0"], Some(Err(Error::BadContentLength))),
            (&["0x10"], Some(Err(Error::BadContentLength))),
            (&["1 2"], Some(Err(Error::BadContentLength))),
            (&["5", "abc"], Some(Err(Error::BadContentLength))),
            (&["abc", "5"], Some(Err(Error::BadContentLength))),
        ];
        for (values, expected) in cases {
            let mut length = ContentLength::default();
            for value in *values {
                length.add(value.as_bytes());
            }
            assert_eq!(length.get(), *expected, "{values:?}");
        }
    }

    #[test]
    fn transfer_codings_table() {
        let cases: &[(&[&str], Result<(), Error>)] = &[
            (&["chunked"], Ok(())),
            (&["Chunked"], Ok(())),
            (&[" CHUNKED "], Ok(())),
            (&["chunked,"], Ok(())),
            (&["gzip, chunked"], Err(Error::UnsupportedTransferCoding)),
            (&["gzip", "chunked"], Err(Error::UnsupportedTransferCoding)),
            (
                &["identity, chunked"],
                Err(Error::UnsupportedTransferCoding),
            ),
            (&["gzip"], Err(Error::BadTransferEncoding)),
            (&["chunked, gzip"], Err(Error::BadTransferEncoding)),
            (&["chunked", "gzip"], Err(Error::BadTransferEncoding)),
            (&["chunked, chunked"], Err(Error::BadTransferEncoding)),
            (&["chunked;q=1"], Err(Error::BadTransferEncoding)),
            (&[""], Err(Error::BadTransferEncoding)),
        ];
        for (values, expected) in cases {
            let mut codings = TransferCodings::default();
            for value in *values {
                codings.add(value.as_bytes());
            }
            assert!(codings.present());
            assert_eq!(codings.check(), *expected, "{values:?}");
        }
    }

    #[test]
    fn keep_alive_table() {
        // (Connection values, HTTP/1.1?, keep-alive?)
        let cases: &[(&[&str], bool, bool)] = &[
            (&[], true, true),
            (&[], false, false),
            (&["close"], true, false),
            (&["Close"], true, false),
            (&["keep-alive"], true, true),
            (&["keep-alive"], false, true),
            (&["Keep-Alive"], false, true),
            (&["upgrade, close"], true, false),
            (&["upgrade", "CLOSE"], true, false),
            (&["keep-alive, close"], false, false),
            (&["closed"], true, true),
            (&["keep-alive-ish"], false, false),
            (&["foo,, keep-alive ,"], false, true),
        ];
        for (values, http11, expected) in cases {
            let mut options = ConnectionOptions::default();
            for value in *values {
                options.add(value.as_bytes());
            }
            assert_eq!(
                options.keep_alive(*http11),
                *expected,
                "{values:?} {http11}"
            );
        }
    }

    #[test]
    fn client_tag_table() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("42", Some(42)),
            (" 42\t", Some(42)),
            ("18446744073709551615", Some(u64::MAX)),
            ("18446744073709551616", None),
            ("000000000000000000001", None),
            ("", None),
            ("-1", None),
            ("0x2a", None),
            ("4 2", None),
        ];
        for (value, expected) in cases {
            assert_eq!(client_tag(value.as_bytes()), *expected, "{value:?}");
        }
    }
}
