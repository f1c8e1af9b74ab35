//! Progress while a run goes: an indicatif line on a terminal, plain lines once a second when
//! stdout is not a terminal (logs, CI), nothing with --quiet.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::worker::Shared;

/// How often the display is refreshed.
const TICK: Duration = Duration::from_millis(100);
/// How often a plain line is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    last_line: Instant,
    last_replies: u64,
}

impl Progress {
    pub fn new(quiet: bool, total_connections: u64) -> Progress {
        let terminal = std::io::stdout().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = ProgressBar::new(total_connections);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {wide_msg}")
                    .expect("a valid template"),
            );
            bar
        });
        Progress {
            bar,
            plain: !quiet && !terminal,
            last_line: Instant::now(),
            last_replies: 0,
        }
    }

    pub fn tick_interval(&self) -> Duration {
        TICK
    }

    /// Refreshes the display from the shared counters.
    pub fn update(&mut self, shared: &Shared) {
        let replies = shared.replies.load(Ordering::Relaxed);
        // `open`: connected and not yet closed, now (not how many have opened so far).
        let line = format!(
            "replies {} | open {} | done {} | errors {}",
            replies,
            shared.open.load(Ordering::Relaxed),
            shared.finished.load(Ordering::Relaxed),
            shared.errors.load(Ordering::Relaxed),
        );
        if let Some(bar) = &self.bar {
            bar.set_message(line);
            bar.tick();
        } else if self.plain && self.last_line.elapsed() >= PLAIN_EVERY {
            let seconds = self.last_line.elapsed().as_secs_f64();
            let rps = (replies - self.last_replies) as f64 / seconds;
            eprintln!(
                "loadgen t={:.0}s {line} | {rps:.0} replies/s",
                shared.start.elapsed().as_secs_f64()
            );
            self.last_line = Instant::now();
            self.last_replies = replies;
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
