//! The `Date` of a core's responses, formatted at most once per second.

use std::time::{SystemTime, UNIX_EPOCH};

use protocol::http::HttpDate;

/// The `Date` of a core, formatted at most once per second: the clock is read only when the
/// core's loop time passed the end of the second the cached date names.
#[derive(Debug, Default)]
pub(super) struct DateClock {
    date: Option<HttpDate>,
    valid_until_us: u64,
}

impl DateClock {
    pub(super) fn date_at(&mut self, now_us: u64) -> HttpDate {
        match self.date {
            Some(date) if now_us < self.valid_until_us => date,
            _ => {
                let now = SystemTime::now();
                let into_second = now
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |since| u64::from(since.subsec_micros()));
                let date = HttpDate::new(now);
                self.date = Some(date);
                self.valid_until_us = now_us + (1_000_000 - into_second);
                date
            }
        }
    }
}
