//! Whether a core's wait gathers completions before it returns, and for how long.
//!
//! At moderate load what separates servers is wake-ups: each costs a sleep, a wake and a pass
//! of the loop, whatever it then handles. A wait that gathers several completions
//! (IORING_FEAT_MIN_TIMEOUT, 6.12) makes fewer of them, at the price of the gathering time in
//! latency. The adaptive policy gathers only when it pays: it estimates the rate at which
//! completions arrive, and asks for a target number of them within a window sized from that
//! rate — never longer than the latency budget, never when fewer than two are expected in it
//! (an idle core, or a lone client waiting for each answer), and never when they already
//! arrive faster than a window is worth.

use crate::config::Batching;
use crate::sys::Batch;

/// Below this many expected completions in the budget, waiting gathers nothing worth it.
const EXPECTED_MIN: f64 = 2.0;
/// A window shorter than this saves no wake-up: completions come faster than the core wakes.
const WINDOW_MIN_US: f64 = 5.0;
/// Weight of the newest rate sample in the moving average.
const RATE_WEIGHT: f64 = 0.125;

/// The batching of one core.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batcher {
    mode: Batching,
    /// Completions per microsecond, a moving average over the loop's passes.
    rate_per_us: f64,
    last_us: u64,
}

impl Batcher {
    pub fn new(mode: Batching) -> Batcher {
        Batcher {
            mode,
            rate_per_us: 0.0,
            last_us: 0,
        }
    }

    /// A pass of the loop reaped `reaped` completions at `now_us`.
    pub fn observe(&mut self, reaped: usize, now_us: u64) {
        let elapsed_us = now_us.saturating_sub(self.last_us).max(1) as f64;
        self.last_us = now_us;
        let sample = reaped as f64 / elapsed_us;
        self.rate_per_us += RATE_WEIGHT * (sample - self.rate_per_us);
    }

    /// How the next wait gathers, with `open` connections on the core.
    pub fn next(&self, open: usize) -> Option<Batch> {
        match self.mode {
            Batching::Off => None,
            Batching::Fixed { wait_us } => Some(Batch {
                want: crate::config::BATCH_WANT,
                min_wait_us: wait_us,
            }),
            Batching::Adaptive { budget_us, target } => self.adaptive(open, budget_us, target),
        }
    }

    fn adaptive(&self, open: usize, budget_us: u32, target: u32) -> Option<Batch> {
        if open < 2 || self.rate_per_us * f64::from(budget_us) < EXPECTED_MIN {
            return None; // idle, a lone client, or too slow a trickle to gather
        }
        let window_us = f64::from(target) / self.rate_per_us;
        if window_us < WINDOW_MIN_US {
            return None; // busy: every wait returns with plenty already
        }
        Some(Batch {
            want: target,
            min_wait_us: window_us.min(f64::from(budget_us)) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settled(rate_per_us: f64) -> Batcher {
        let mut batcher = Batcher::new(Batching::Adaptive {
            budget_us: 100,
            target: 4,
        });
        let mut now = 0;
        for _ in 0..200 {
            now += 1000;
            batcher.observe((rate_per_us * 1000.0) as usize, now);
        }
        batcher
    }

    #[test]
    fn idle_lone_and_busy_cores_do_not_wait() {
        assert_eq!(settled(0.0).next(64), None, "idle");
        assert_eq!(
            settled(0.01).next(64),
            None,
            "1 expected in 100 us: a trickle"
        );
        assert_eq!(settled(0.1).next(1), None, "a lone client");
        assert_eq!(settled(2.0).next(64), None, "busy: 4 arrive within 2 us");
    }

    #[test]
    fn moderate_load_gathers_within_the_budget() {
        // 80 000 completions/s (40k replies/s: a recv and a send each): 4 in 50 us.
        let batch = settled(0.08).next(64).expect("gathers");
        assert_eq!(batch.want, 4);
        assert!((45..=55).contains(&batch.min_wait_us), "{batch:?}");
        // 30 000/s: 4 would take 133 us, the budget caps it at 100.
        assert_eq!(settled(0.03).next(64).map(|b| b.min_wait_us), Some(100));
    }

    #[test]
    fn fixed_and_off_are_what_they_say() {
        let fixed = Batcher::new(Batching::Fixed { wait_us: 200 });
        assert_eq!(fixed.next(1).map(|b| b.min_wait_us), Some(200));
        assert_eq!(Batcher::new(Batching::Off).next(64), None);
    }
}
