//! Shutdown: stop accepting, let every connection finish (its message in progress, its replies),
//! close each as `shutdown`, and give up on whatever is left when the bounds pass. Also what a
//! core does with its connections when it must stop at once (after a panic).

use std::io;

use super::Core;
use crate::classify::{Cause, Intent};
use crate::conn::{phase, Action, Closing};
use crate::protocol_api::Protocol;
use crate::sys::Target;
use crate::token::Token;

/// After the shutdown bound, how long cancelled operations get to complete before the core exits.
const SHUTDOWN_GRACE_US: u64 = 1_000_000;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Drain {
    /// Stop waiting for messages to finish and replies to flush.
    force_at_us: u64,
    /// Exit even if cancelled operations have not completed.
    exit_at_us: u64,
}

impl Drain {
    /// The next moment the drain needs the core awake.
    pub fn next_us(&self, now_us: u64) -> u64 {
        if now_us < self.force_at_us {
            self.force_at_us
        } else {
            self.exit_at_us
        }
    }
}

impl<P: Protocol> Core<P> {
    pub(super) fn begin_drain(&mut self) -> io::Result<()> {
        let timeout = self.settings.shutdown_timeout_us;
        self.drain = Some(Drain {
            force_at_us: self.now_us + timeout,
            exit_at_us: self.now_us + timeout + SHUTDOWN_GRACE_US,
        });
        if self.accept_armed {
            let target = Target::Accept(Token::GLOBAL.encode());
            self.ring.cancel(target, Token::GLOBAL.encode())?;
        }
        // The accept request holds its own reference; new connections now go to no one here.
        self.listener = None;
        self.accept_retry_us = None;
        let slots = self.open_slots();
        // One line per core is for debugging: the server says once, at INFO, that it drains.
        tracing::debug!(core = self.core, open = slots.len(), "draining");
        for slot in slots {
            if !self.conns.contains(slot) {
                continue; // closed by the close of another (its `on_close`)
            }
            let facts = self.facts(slot);
            let action = self.conns[slot].life.drain(facts);
            self.apply(slot, action)?;
        }
        self.run_requests()
    }

    /// The slots of every open connection, so each can be acted on while `self` is borrowed
    /// mutably.
    fn open_slots(&self) -> Vec<usize> {
        self.conns.iter().map(|(slot, _)| slot).collect()
    }

    /// Past the shutdown bound: stop waiting for anyone (repeated each pass, for connections
    /// classified since).
    pub(super) fn on_drain_timers(&mut self) -> io::Result<()> {
        let Some(drain) = self.drain else {
            return Ok(());
        };
        if self.now_us < drain.force_at_us {
            return Ok(());
        }
        let slots = self.open_slots();
        for slot in slots {
            if !self.conns.contains(slot) {
                continue;
            }
            let facts = self.facts(slot);
            let life = &mut self.conns[slot].life;
            let action = match life.decide(Intent::Shutdown, facts) {
                Action::None => life.give_up(),
                decided => decided,
            };
            self.apply(slot, action)?;
        }
        Ok(())
    }

    /// Whether the core may exit: every connection closed, or the grace after the bound is over.
    pub(super) fn drain_done(&mut self) -> io::Result<bool> {
        let Some(drain) = self.drain else {
            return Ok(false);
        };
        // The cancelled accept holds the listening socket until its final completion is reaped:
        // exiting before would leave the port bound (and accepting) after the process is gone,
        // until the kernel tears the ring down.
        if self.conns.is_empty() && !self.accept_armed {
            self.send_records();
            self.ring.submit()?;
            return Ok(true);
        }
        if self.now_us < drain.exit_at_us {
            return Ok(false);
        }
        tracing::warn!(
            core = self.core,
            open = self.conns.len(),
            accept_armed = self.accept_armed,
            "exiting with operations in flight"
        );
        self.close_all_now(Cause::Shutdown);
        Ok(true)
    }

    /// Records every remaining connection as closed for `cause` (unless already classified) and
    /// drops it. Operations still in flight keep their memory: the ring leaks it on drop rather
    /// than free what the kernel may use.
    pub(super) fn close_all_now(&mut self, cause: Cause) {
        let slots = self.open_slots();
        for slot in slots {
            if !self.conns.contains(slot) {
                continue;
            }
            let facts = self.facts(slot);
            let conn = &self.conns[slot];
            let closing = conn.life.closing().unwrap_or(Closing {
                cause,
                phase: phase(facts),
                res: conn.life.last_res(),
            });
            self.close(slot, closing);
        }
        self.send_records();
    }

    /// After a panic on this core: every connection it had is closed and recorded as `error`.
    pub(super) fn fail_all(&mut self) {
        tracing::error!(
            core = self.core,
            open = self.conns.len(),
            "core panicked: closing its connections"
        );
        self.protocol_failed = true;
        self.close_all_now(Cause::Error);
    }
}
