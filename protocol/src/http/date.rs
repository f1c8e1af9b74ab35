//! The `Date` header's value, formatted once per second rather than once per response.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const DATE_LEN: usize = 29;
/// The last second `httpdate` can format (9999-12-31T23:59:59Z); later clocks are clamped.
const UNIX_SECS_MAX: u64 = 253_402_300_799;

/// A formatted IMF-fixdate (RFC 9110 §5.6.7) and the second it names. The caller refreshes it
/// (at most once per second does any work); response writers copy its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpDate {
    bytes: [u8; DATE_LEN],
    unix_secs: u64,
}

impl HttpDate {
    /// The date of `now` (clamped to 1970..=9999).
    pub fn new(now: SystemTime) -> HttpDate {
        let unix_secs = unix_secs(now);
        HttpDate {
            bytes: format(unix_secs),
            unix_secs,
        }
    }

    /// Moves to `now`; formats only if the second changed. Returns whether it did.
    pub fn refresh(&mut self, now: SystemTime) -> bool {
        let unix_secs = unix_secs(now);
        if unix_secs == self.unix_secs {
            return false;
        }
        self.bytes = format(unix_secs);
        self.unix_secs = unix_secs;
        true
    }

    /// The 29 bytes, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn as_bytes(&self) -> &[u8; DATE_LEN] {
        &self.bytes
    }

    /// The second it names, since the Unix epoch.
    pub fn unix_secs(&self) -> u64 {
        self.unix_secs
    }
}

fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
        .min(UNIX_SECS_MAX)
}

fn format(unix_secs: u64) -> [u8; DATE_LEN] {
    assert!(unix_secs <= UNIX_SECS_MAX);
    let date = httpdate::HttpDate::from(UNIX_EPOCH + Duration::from_secs(unix_secs));
    let mut bytes = [0u8; DATE_LEN];
    let mut cursor = &mut bytes[..];
    write!(cursor, "{date}").expect("an IMF-fixdate is 29 bytes");
    assert!(cursor.is_empty(), "an IMF-fixdate is 29 bytes");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_imf_fixdate() {
        let cases: &[(u64, &str)] = &[
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (UNIX_SECS_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (1 << 40, "Fri, 31 Dec 9999 23:59:59 GMT"),
        ];
        for &(secs, expected) in cases {
            let date = HttpDate::new(UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(date.as_bytes(), expected.as_bytes(), "{secs}");
        }
    }

    #[test]
    fn before_the_epoch_is_the_epoch() {
        let date = HttpDate::new(UNIX_EPOCH - Duration::from_secs(5));
        assert_eq!(date.as_bytes(), b"Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn refresh_formats_once_per_second() {
        let start = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let mut date = HttpDate::new(start);
        assert!(!date.refresh(start + Duration::from_millis(999)));
        assert!(date.refresh(start + Duration::from_secs(1)));
        assert_eq!(date.as_bytes(), b"Sun, 06 Nov 1994 08:49:38 GMT");
        assert_eq!(date.unix_secs(), 784_111_778);
    }
}
