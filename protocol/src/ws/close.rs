//! The close frame's payload: an optional status code and a UTF-8 reason (RFC 6455 5.5.1, 7.4).

use super::Error;

/// The status a close frame without a payload stands for (never sent on the wire).
pub const CLOSE_NO_STATUS: u16 = 1005;
/// Close code 1000: normal closure.
pub const CLOSE_NORMAL: u16 = 1000;
/// Bytes of a close reason: a control payload (125) less the status code (2).
pub const CLOSE_REASON_MAX: usize = 123;

/// Whether a peer may send `code` in a close frame: 1000-1003, 1007-1014 (RFC 6455 and the
/// IANA registry) and 3000-4999 (libraries and applications). 1004 is reserved; 1005, 1006 and
/// 1015 stand for conditions that are never sent; 1016-2999 are unassigned; the rest undefined.
pub const fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A validated close frame payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Close<'a> {
    /// The status code; `None` for an empty payload (1005, "no status received").
    pub code: Option<u16>,
    /// The reason, empty when absent.
    pub reason: &'a str,
}

impl Close<'_> {
    /// The code to report: the status sent, else 1005.
    pub fn code_or_no_status(&self) -> u16 {
        self.code.unwrap_or(CLOSE_NO_STATUS)
    }
}

/// Validates an unmasked close payload: empty, or a valid code and a UTF-8 reason.
pub fn parse_close(payload: &[u8]) -> Result<Close<'_>, Error> {
    match payload {
        [] => Ok(Close {
            code: None,
            reason: "",
        }),
        [_] => Err(Error::CloseLenOne),
        [high, low, reason @ ..] => {
            let code = u16::from_be_bytes([*high, *low]);
            if !is_valid_close_code(code) {
                return Err(Error::InvalidCloseCode { code });
            }
            let reason = std::str::from_utf8(reason).map_err(|_| Error::InvalidCloseReason)?;
            Ok(Close {
                code: Some(code),
                reason,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_table() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1011, 1014, 3000, 4000, 4999,
        ];
        let invalid = [
            0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for code in valid {
            assert!(is_valid_close_code(code), "{code}");
            let payload = code.to_be_bytes();
            assert_eq!(
                parse_close(&payload),
                Ok(Close {
                    code: Some(code),
                    reason: ""
                })
            );
        }
        for code in invalid {
            assert!(!is_valid_close_code(code), "{code}");
            let error = parse_close(&code.to_be_bytes()).unwrap_err();
            assert_eq!(error, Error::InvalidCloseCode { code });
            assert_eq!(error.close_code(), 1002);
        }
    }

    #[test]
    fn payload_shapes() {
        assert_eq!(parse_close(&[]).map(|c| c.code_or_no_status()), Ok(1005));
        assert_eq!(parse_close(&[0x03]), Err(Error::CloseLenOne));
        assert_eq!(
            parse_close(b"\x03\xe8bye"),
            Ok(Close {
                code: Some(1000),
                reason: "bye"
            })
        );
        let error = parse_close(b"\x03\xe8\xce\xba\xe1\xbd\xb9\xed\xa0\x80").unwrap_err();
        assert_eq!(
            (error, error.close_code()),
            (Error::InvalidCloseReason, 1007)
        );
    }
}
