//! Progress while a run goes, on stderr: an indicatif bar when stderr is a terminal (time
//! elapsed and left for a timed run, connections done of --total for churn, and the reply
//! rate), plain lines once a second when it is not (logs, CI), nothing with --quiet.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{FormattedDuration, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::worker::Shared;

/// How often the display is refreshed.
const TICK: Duration = Duration::from_millis(100);
/// How often a plain line is printed, and the window of the reply rate.
const PLAIN_EVERY: Duration = Duration::from_secs(1);
/// Width of the bar, in cells.
const BAR_WIDTH: u16 = 30;

/// What the bar measures the run by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gauge {
    /// A timed run (closed / open loop, hold): elapsed of its duration, and the time left.
    Time(Duration),
    /// Churn: connections done of --total, and the time left as indicatif estimates it.
    Connections(u64),
}

impl Gauge {
    /// The bar's length: milliseconds, or connections.
    fn length(self) -> u64 {
        match self {
            Gauge::Time(run_for) => millis(run_for),
            Gauge::Connections(total) => total,
        }
    }

    /// The bar's position now (at most its length).
    fn position(self, shared: &Shared) -> u64 {
        let at = match self {
            Gauge::Time(_) => millis(shared.start.elapsed()),
            Gauge::Connections(_) => shared.finished.load(Ordering::Relaxed),
        };
        at.min(self.length())
    }

    /// indicatif's usual form: elapsed, bar, elapsed / remaining or position / length.
    fn style(self) -> ProgressStyle {
        let head = format!("{{spinner}} {{elapsed_precise}} [{{bar:{BAR_WIDTH}}}]");
        let template = match self {
            Gauge::Time(_) => format!("{head} {{left}} left | {{wide_msg}}"),
            Gauge::Connections(_) => {
                format!("{head} {{pos}}/{{len}} connections, {{eta}} left | {{wide_msg}}")
            }
        };
        ProgressStyle::with_template(&template)
            .expect("a valid template")
            .progress_chars("=> ")
            .with_key(
                "left",
                |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                    // Time gauge: length and position are milliseconds, so what is left is exact.
                    let left_ms = state.len().unwrap_or(0).saturating_sub(state.pos());
                    let _ = write!(out, "{}", FormattedDuration(Duration::from_millis(left_ms)));
                },
            )
    }

    /// A bar for this gauge drawn to `target`.
    fn bar(self, target: ProgressDrawTarget) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(self.length()), target);
        bar.set_style(self.style());
        bar
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Replies per second over the last window of [`PLAIN_EVERY`].
#[derive(Debug)]
struct ReplyRate {
    window_start: Instant,
    window_replies: u64,
    per_s: f64,
}

impl ReplyRate {
    /// Closes the window if it is over; returns whether it was.
    fn sample(&mut self, replies: u64) -> bool {
        let seconds = self.window_start.elapsed().as_secs_f64();
        if seconds < PLAIN_EVERY.as_secs_f64() {
            return false;
        }
        self.per_s = replies.saturating_sub(self.window_replies) as f64 / seconds;
        self.window_start = Instant::now();
        self.window_replies = replies;
        true
    }
}

#[derive(Debug)]
pub struct Progress {
    bar: Option<(ProgressBar, Gauge)>,
    plain: bool,
    rate: ReplyRate,
}

impl Progress {
    pub fn new(quiet: bool, gauge: Gauge) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        Progress {
            bar: (!quiet && terminal).then(|| (gauge.bar(ProgressDrawTarget::stderr()), gauge)),
            plain: !quiet && !terminal,
            rate: ReplyRate {
                window_start: Instant::now(),
                window_replies: 0,
                per_s: 0.0,
            },
        }
    }

    pub fn tick_interval(&self) -> Duration {
        TICK
    }

    /// Refreshes the display from the shared counters.
    pub fn update(&mut self, shared: &Shared) {
        let replies = shared.replies.load(Ordering::Relaxed);
        let new_window = self.rate.sample(replies);
        let line = counters(shared, replies);
        if let Some((bar, gauge)) = &self.bar {
            bar.set_position(gauge.position(shared));
            bar.set_message(format!("{:.0} replies/s | {line}", self.rate.per_s));
        } else if self.plain && new_window {
            eprintln!(
                "loadgen t={:.0}s {line} | {:.0} replies/s",
                shared.start.elapsed().as_secs_f64(),
                self.rate.per_s
            );
        }
    }

    pub fn finish(&self) {
        if let Some((bar, _)) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The counters of a progress line.
fn counters(shared: &Shared, replies: u64) -> String {
    // `open`: connected and not yet closed, now (not how many have opened so far).
    format!(
        "replies {} | open {} | done {} | errors {}",
        replies,
        shared.open.load(Ordering::Relaxed),
        shared.finished.load(Ordering::Relaxed),
        shared.errors.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A terminal that keeps what is written to it.
    #[derive(Clone, Debug, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            160
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.0.lock().unwrap().clear();
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The line the bar of `gauge` draws at `position` with the message `message`.
    fn drawn(gauge: Gauge, position: u64, message: &str) -> String {
        let screen = Screen::default();
        let bar = gauge.bar(ProgressDrawTarget::term_like(Box::new(screen.clone())));
        bar.set_message(message.to_owned());
        bar.set_position(position);
        bar.tick();
        let text = screen.0.lock().unwrap().clone();
        text
    }

    /// Defect: the terminal line showed a spinner and the elapsed time only. A timed run shows
    /// a bar, the elapsed and the time left, and the reply rate.
    #[test]
    fn a_timed_run_shows_a_bar_the_time_left_and_the_rate() {
        let line = drawn(
            Gauge::Time(Duration::from_secs(10)),
            2_500,
            "1200 replies/s | replies 3000",
        );
        assert!(line.contains("00:00:07 left"), "{line}");
        assert!(line.contains("[======="), "{line}");
        assert!(line.contains("1200 replies/s"), "{line}");
        let line = drawn(Gauge::Time(Duration::from_secs(90)), 90_000, "");
        assert!(line.contains("00:00:00 left"), "{line}");
    }

    /// Churn shows connections done of --total and indicatif's estimate of the time left.
    #[test]
    fn a_churn_run_shows_connections_done_of_the_total() {
        let line = drawn(Gauge::Connections(200), 50, "10 replies/s");
        assert!(line.contains("50/200 connections"), "{line}");
        assert!(line.contains(" left | 10 replies/s"), "{line}");
    }

    #[test]
    fn the_position_stays_within_the_length() {
        let shared = Shared::new();
        shared.finished.store(500, Ordering::Relaxed);
        assert_eq!(Gauge::Connections(200).position(&shared), 200);
        assert!(Gauge::Time(Duration::from_secs(60)).position(&shared) < 60_000);
    }
}
