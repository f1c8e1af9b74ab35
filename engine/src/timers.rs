//! Per-core deadlines: one min-heap, checked lazily, so traffic costs no timer work.
//!
//! A recv CQE only stores `last_active_us` in its connection. A heap entry is a *lower bound* on
//! when the connection may time out; when it comes due, the core recomputes the real deadline
//! and either fires or pushes one new entry. A linked timeout would be an absolute deadline (the
//! kernel does not push it back on traffic) and updating it walks every armed link timeout, so
//! timers stay in user space and a timeout is carried out with an async cancel.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One pending check: at `at_us`, look at slot `slot` if it still holds `generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Due {
    pub at_us: u64,
    pub slot: u32,
    pub generation: u32,
}

#[derive(Debug, Default)]
pub struct Deadlines {
    heap: BinaryHeap<Reverse<Due>>,
}

impl Deadlines {
    pub fn push(&mut self, due: Due) {
        self.heap.push(Reverse(due));
    }

    /// The earliest pending check.
    pub fn next_us(&self) -> Option<u64> {
        self.heap.peek().map(|Reverse(due)| due.at_us)
    }

    /// Removes and returns a check that is due at `now_us`.
    pub fn pop_due(&mut self, now_us: u64) -> Option<Due> {
        match self.heap.peek() {
            Some(Reverse(due)) if due.at_us <= now_us => self.heap.pop().map(|Reverse(due)| due),
            _ => None,
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let mut deadlines = Deadlines::default();
        for (at_us, slot) in [(30, 1), (10, 2), (20, 3)] {
            deadlines.push(Due {
                at_us,
                slot,
                generation: 0,
            });
        }
        assert_eq!(deadlines.next_us(), Some(10));
        assert_eq!(deadlines.pop_due(5), None);
        assert_eq!(deadlines.pop_due(25).map(|d| d.slot), Some(2));
        assert_eq!(deadlines.pop_due(25).map(|d| d.slot), Some(3));
        assert_eq!(deadlines.pop_due(25), None);
        assert_eq!(deadlines.len(), 1);
    }
}
