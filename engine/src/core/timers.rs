//! Deadlines: the protocol's timers, idle and read timeouts, flushes that make no progress,
//! lingering closes. One min-heap of lazy checks per core (see `crate::timers`), at most one
//! live check per connection for the earliest of its deadlines: traffic costs no timer work.

use std::io;

use super::close::LINGER_POLL_US;
use super::Core;
use crate::protocol_api::Protocol;
use crate::sys::socket;

impl<P: Protocol> Core<P> {
    /// Makes sure the deadline heap holds a check no later than the connection's deadline.
    pub(super) fn schedule(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        let at_us = conn.deadline_us(self.settings.idle_timeout_us, self.settings.read_timeout_us);
        self.agenda.check_by(conn, slot, at_us);
    }

    pub(super) fn on_timers(&mut self) -> io::Result<()> {
        if let Some(at) = self.accept_retry_us {
            if at <= self.now_us && self.drain.is_none() {
                self.arm_accept()?;
            }
        }
        self.on_drain_timers()?;
        self.on_core_timers()?;
        while let Some(due) = self.agenda.deadlines.pop_due(self.now_us) {
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
            if !self.fire_protocol_timers(slot)? {
                continue; // a timer's callback closed it
            }
            let conn = &mut self.conns[slot];
            let (idle_us, read_us) = (self.settings.idle_timeout_us, self.settings.read_timeout_us);
            if conn.engine_deadline_us(idle_us, read_us) > self.now_us {
                // Traffic came since, or only a protocol timer was due: check again later.
                let at_us = conn.deadline_us(idle_us, read_us);
                self.agenda.check_by(conn, slot, at_us);
            } else {
                self.on_deadline(slot)?;
            }
        }
        self.run_requests()
    }

    /// Calls the protocol for each of the connection's timers that is due, earliest first;
    /// whether the connection is still there afterwards.
    fn fire_protocol_timers(&mut self, slot: usize) -> io::Result<bool> {
        let id = self.conns[slot].id;
        loop {
            let conn = &mut self.conns[slot];
            let Some((timer, at_us)) = conn.next_timer() else {
                return Ok(true);
            };
            if at_us > self.now_us {
                return Ok(true);
            }
            conn.timers[timer] = u64::MAX;
            self.call_timer(slot, timer)?;
            if !self.holds(slot, id) {
                return Ok(false);
            }
        }
    }

    /// The peer has every reply and our FIN once nothing is unacknowledged.
    fn on_linger_check(&mut self, slot: usize, until_us: u64) -> io::Result<()> {
        if self.now_us >= until_us || socket::unacked_bytes(&self.conns[slot].fd) == 0 {
            let action = self.conns[slot].life.give_up();
            return self.apply(slot, action);
        }
        let at_us = (self.now_us + LINGER_POLL_US).min(until_us);
        self.agenda.check_at(&mut self.conns[slot], slot, at_us);
        Ok(())
    }

    fn on_deadline(&mut self, slot: usize) -> io::Result<()> {
        let id = self.conns[slot].id;
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
        if self.holds(slot, id) {
            let at_us = self.now_us + self.settings.idle_timeout_us;
            self.agenda.check_at(&mut self.conns[slot], slot, at_us);
        }
        Ok(())
    }
}
