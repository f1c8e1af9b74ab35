//! Deadlines: idle and read timeouts, flushes that make no progress, lingering closes. One
//! min-heap of lazy checks per core (see `crate::timers`): traffic costs no timer work.

use std::io;

use super::close::LINGER_POLL_US;
use super::Core;
use crate::protocol_api::Protocol;
use crate::sys::socket;
use crate::timers::Due;

impl<P: Protocol> Core<P> {
    /// Makes sure the deadline heap holds a check no later than the connection's deadline.
    pub(super) fn schedule(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let at_us = conn.deadline_us(self.settings.idle_timeout_us, self.settings.read_timeout_us);
        if at_us < conn.armed_check_us {
            self.push_check(slot, at_us);
        }
    }

    /// Arms a check of the connection at `at_us`, superseding any armed one.
    pub(super) fn push_check(&mut self, slot: usize, at_us: u64) {
        let conn = &mut self.conns[slot];
        conn.armed_check_us = at_us;
        self.deadlines.push(Due {
            at_us,
            slot: slot as u32,
            generation: conn.generation,
        });
    }

    pub(super) fn on_timers(&mut self) -> io::Result<()> {
        if let Some(at) = self.accept_retry_us {
            if at <= self.now_us && self.drain.is_none() {
                self.arm_accept()?;
            }
        }
        self.on_drain_timers()?;
        while let Some(due) = self.deadlines.pop_due(self.now_us) {
            let slot = due.slot as usize;
            let live = self
                .conns
                .get(slot)
                .is_some_and(|c| c.generation == due.generation && c.armed_check_us == due.at_us);
            if !live {
                continue; // closed, or superseded by an earlier check
            }
            self.conns[slot].armed_check_us = u64::MAX;
            if let Some(until_us) = self.conns[slot].life.linger_until_us() {
                self.on_linger_check(slot, until_us)?;
                continue;
            }
            let conn = &self.conns[slot];
            let deadline =
                conn.deadline_us(self.settings.idle_timeout_us, self.settings.read_timeout_us);
            if deadline > self.now_us {
                self.push_check(slot, deadline); // traffic came since: check again later
            } else {
                self.on_deadline(slot)?;
            }
        }
        Ok(())
    }

    /// The peer has every reply and our FIN once nothing is unacknowledged.
    fn on_linger_check(&mut self, slot: usize, until_us: u64) -> io::Result<()> {
        if self.now_us >= until_us || socket::unacked_bytes(&self.conns[slot].fd) == 0 {
            let action = self.conns[slot].life.give_up();
            return self.apply(slot, action);
        }
        let at_us = (self.now_us + LINGER_POLL_US).min(until_us);
        self.push_check(slot, at_us);
        Ok(())
    }

    fn on_deadline(&mut self, slot: usize) -> io::Result<()> {
        let generation = self.conns[slot].generation;
        let action = if self.conns[slot].life.is_classified() {
            // A flush that made no progress for the idle timeout: close without waiting longer.
            self.conns[slot].life.give_up()
        } else {
            // Record the intent first: the cancel's -ECANCELED alone says nothing.
            let conn = &self.conns[slot];
            let intent = conn.life.timeout_intent(conn.tail.len());
            let facts = self.facts(slot);
            self.conns[slot].life.decide(intent, facts)
        };
        self.apply(slot, action)?;
        // If the close is still under way, look again after another idle timeout.
        if self
            .conns
            .get(slot)
            .is_some_and(|c| c.generation == generation)
        {
            self.push_check(slot, self.now_us + self.settings.idle_timeout_us);
        }
        Ok(())
    }
}
