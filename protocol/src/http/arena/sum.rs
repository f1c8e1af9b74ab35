//! The `/baseline11` arithmetic: decimal integers from the query and the body, summed in i64.

use std::fmt;

/// Why a `/baseline11` request has no sum (answered with 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SumError {
    /// A query parameter without `=`, or a value or body that is not a decimal integer.
    NotInteger,
    /// A value, or the sum, outside i64.
    Overflow,
}

impl SumError {
    /// A short reason: the 400 response's body.
    pub const fn reason(self) -> &'static str {
        match self {
            SumError::NotInteger => "not a decimal integer",
            SumError::Overflow => "integer overflow",
        }
    }
}

impl fmt::Display for SumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for SumError {}

/// The sum of every parameter's value in `query` (`a=13&b=42` is 55); empty pieces (`a=1&&b=2`)
/// are skipped, so no parameter sums to 0. Names are not checked; values are not
/// percent-decoded.
pub fn query_sum(query: &str) -> Result<i64, SumError> {
    let mut sum = 0i64;
    for parameter in query.split('&').filter(|piece| !piece.is_empty()) {
        let (_name, value) = parameter.split_once('=').ok_or(SumError::NotInteger)?;
        let mut integer = Integer::default();
        integer.feed(value.as_bytes(), false)?;
        sum = sum
            .checked_add(integer.finish()?)
            .ok_or(SumError::Overflow)?;
    }
    Ok(sum)
}

/// The body's decimal integer, from its pieces in order (digits may straddle chunks);
/// surrounding ASCII whitespace is allowed.
pub fn body_value<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> Result<i64, SumError> {
    let mut integer = Integer::default();
    for piece in pieces {
        integer.feed(piece, true)?;
    }
    integer.finish()
}

/// Where an integer being read stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Stage {
    /// Nothing but (allowed) whitespace yet.
    #[default]
    Start,
    /// A `-` was read.
    Sign,
    /// At least one digit was read.
    Digits,
    /// Whitespace after the digits: only more whitespace may follow.
    Trailing,
}

/// `[ws] [-] 1*DIGIT [ws]`, fed in pieces, where `ws` is allowed only when asked for.
#[derive(Clone, Copy, Debug, Default)]
struct Integer {
    stage: Stage,
    negative: bool,
    value: i64,
}

impl Integer {
    fn feed(&mut self, bytes: &[u8], whitespace: bool) -> Result<(), SumError> {
        for &byte in bytes {
            let blank = whitespace && matches!(byte, b' ' | b'\t' | b'\r' | b'\n');
            self.stage = match (self.stage, byte) {
                (Stage::Start | Stage::Trailing, _) if blank => self.stage,
                (Stage::Start, b'-') => {
                    self.negative = true;
                    Stage::Sign
                }
                (Stage::Start | Stage::Sign | Stage::Digits, b'0'..=b'9') => {
                    let digit = i64::from(byte - b'0');
                    let digit = if self.negative { -digit } else { digit };
                    self.value = self
                        .value
                        .checked_mul(10)
                        .and_then(|value| value.checked_add(digit))
                        .ok_or(SumError::Overflow)?;
                    Stage::Digits
                }
                (Stage::Digits, _) if blank => Stage::Trailing,
                _ => return Err(SumError::NotInteger),
            };
        }
        Ok(())
    }

    fn finish(self) -> Result<i64, SumError> {
        match self.stage {
            Stage::Digits | Stage::Trailing => Ok(self.value),
            Stage::Start | Stage::Sign => Err(SumError::NotInteger),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_sum_table() {
        let cases: &[(&str, Result<i64, SumError>)] = &[
            ("a=13&b=42", Ok(55)),
            ("b=42&a=13", Ok(55)),
            ("a=13", Ok(13)),
            ("", Ok(0)),
            ("a=1&&b=2&", Ok(3)),
            ("a=1&b=2&c=3", Ok(6)),
            ("x=-5&y=2", Ok(-3)),
            ("a=007", Ok(7)),
            ("a=9223372036854775807", Ok(i64::MAX)),
            ("a=-9223372036854775808", Ok(i64::MIN)),
            ("a=9223372036854775808", Err(SumError::Overflow)),
            ("a=9223372036854775807&b=1", Err(SumError::Overflow)),
            ("a", Err(SumError::NotInteger)),
            ("a=", Err(SumError::NotInteger)),
            ("a=-", Err(SumError::NotInteger)),
            ("a=+1", Err(SumError::NotInteger)),
            ("a=1.5", Err(SumError::NotInteger)),
            ("a=x", Err(SumError::NotInteger)),
            ("a=%31", Err(SumError::NotInteger)),
            ("a= 1", Err(SumError::NotInteger)),
            ("a=1=2", Err(SumError::NotInteger)),
        ];
        for (query, expected) in cases {
            assert_eq!(query_sum(query), *expected, "{query:?}");
        }
    }

    #[test]
    fn body_value_table() {
        let cases: &[(&[&str], Result<i64, SumError>)] = &[
            (&["20"], Ok(20)),
            (&["2", "0"], Ok(20)),
            (&["-", "2", "0"], Ok(-20)),
            (&[" 20\r\n"], Ok(20)),
            (&["2", "0 ", " \n"], Ok(20)),
            (&["9223372036854775807"], Ok(i64::MAX)),
            (&["922337203685477580", "8"], Err(SumError::Overflow)),
            (&[], Err(SumError::NotInteger)),
            (&["", " "], Err(SumError::NotInteger)),
            (&["2 0"], Err(SumError::NotInteger)),
            (&["2", " ", "0"], Err(SumError::NotInteger)),
            (&["20x"], Err(SumError::NotInteger)),
            (&["-"], Err(SumError::NotInteger)),
            (&["+20"], Err(SumError::NotInteger)),
        ];
        for (pieces, expected) in cases {
            let got = body_value(pieces.iter().map(|piece| piece.as_bytes()));
            assert_eq!(got, *expected, "{pieces:?}");
        }
    }
}
