//! The protocol's callbacks other than input (`open`, timers, messages, `on_close`), each given
//! a [`Context`] over the core, and the closes they ask for, carried out once they return.
//! Also the other end of messages: delivering this core's, waking the cores it wrote to.

use std::io;
use std::net::SocketAddr;

use slab::Slab;

use super::{Core, Request};
use crate::context::{Context, Own, CORE_TIMERS};
use crate::protocol_api::Protocol;
use crate::record::CloseRecord;
use crate::sys::{socket, Ring};

/// What a callback is handed, borrowed from the core apart: the protocol, the sessions (one of
/// which the callback gets), the ring, and the context over everything else.
pub(super) struct Split<'a, P: Protocol> {
    pub proto: &'a P,
    pub sessions: &'a mut Slab<P::Session>,
    pub ring: &'a mut Ring,
    pub cx: Context<'a, P>,
}

impl<P: Protocol> Core<P> {
    /// Borrows the core apart for a callback about `own` (if any).
    pub(super) fn split(&mut self, own: Option<Own>) -> Split<'_, P> {
        let Core {
            core,
            now_us,
            drain,
            proto,
            sessions,
            ring,
            state,
            conns,
            pool,
            agenda,
            mesh,
            settings,
            ..
        } = self;
        Split {
            proto: &**proto,
            sessions,
            ring,
            cx: Context {
                core: *core,
                now_us: *now_us,
                draining: drain.is_some(),
                own,
                max_queued_bytes: settings.max_queued_bytes,
                idle_timeout_us: settings.idle_timeout_us,
                state,
                conns,
                pool,
                agenda,
                mesh,
            },
        }
    }

    /// The connection at `slot` is new: the protocol opens its session (at the same slot).
    pub(super) fn call_open(&mut self, slot: usize, peer: Option<SocketAddr>) {
        let own = Own {
            slot,
            id: self.conns[slot].id,
            output: true,
        };
        let Split {
            proto,
            sessions,
            mut cx,
            ..
        } = self.split(Some(own));
        let session = proto.open(peer, &mut cx);
        let key = sessions.insert(session);
        assert_eq!(key, slot, "a session sits at its connection's slot");
        self.after_own_output(slot);
    }

    /// Sends what a callback wrote with `output()` with this pass's batch.
    pub(super) fn after_own_output(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        conn.out.settle(&mut self.pool);
        if conn.out.pending() {
            self.agenda.mark_flush(conn, slot);
        }
    }

    /// Timer `timer` of the connection at `slot` is due (and was disarmed).
    pub(super) fn call_timer(&mut self, slot: usize, timer: usize) -> io::Result<()> {
        let own = Own {
            slot,
            id: self.conns[slot].id,
            output: false,
        };
        let Split {
            proto,
            sessions,
            mut cx,
            ..
        } = self.split(Some(own));
        proto.on_timer(&mut sessions[slot], timer, &mut cx);
        self.run_requests()
    }

    /// Fires the core timers that are due.
    pub(super) fn on_core_timers(&mut self) -> io::Result<()> {
        for timer in 0..CORE_TIMERS {
            if self.agenda.core_timers[timer] <= self.now_us {
                self.agenda.core_timers[timer] = u64::MAX;
                let Split { proto, mut cx, .. } = self.split(None);
                proto.on_core_timer(timer, &mut cx);
                self.run_requests()?;
            }
        }
        Ok(())
    }

    /// Hands the protocol the messages queued for this core (a bounded number per pass).
    pub(super) fn deliver_messages(&mut self) -> io::Result<()> {
        let mut taken = 0;
        while self.mesh.self_pending {
            let Some(message) = self.mesh.next(taken) else {
                break;
            };
            taken += 1;
            let Split { proto, mut cx, .. } = self.split(None);
            proto.on_message(message, &mut cx);
            self.run_requests()?;
        }
        Ok(())
    }

    /// Wakes the cores this pass queued messages for (once each, unless already woken).
    pub(super) fn wake_cores(&mut self) -> io::Result<()> {
        let Core {
            mesh,
            ring,
            msg_ring,
            ..
        } = self;
        let mut failed = None;
        mesh.wake_targets(|core, waker| {
            if !*msg_ring {
                socket::eventfd_signal(&*waker.eventfd);
                return true;
            }
            // A core whose ring is not set up yet is woken on a later pass.
            let Some(target) = waker.ring.get() else {
                return false;
            };
            match ring.msg_ring(target, 0, core as u64) {
                Ok(()) => true,
                Err(error) => {
                    failed = Some(error);
                    false
                }
            }
        });
        failed.map_or(Ok(()), Err)
    }

    /// The connection `id` (at `slot`, now removed) closed: its session goes to the protocol
    /// with the record, then is dropped.
    pub(super) fn call_close(
        &mut self,
        slot: usize,
        id: u64,
        session: P::Session,
        record: &CloseRecord,
    ) {
        if self.protocol_failed {
            return; // after a panic, its state is whatever the panic left
        }
        let own = Own {
            slot,
            id,
            output: false,
        };
        let Split { proto, mut cx, .. } = self.split(Some(own));
        proto.on_close(session, record, &mut cx);
    }

    /// Carries out the closes callbacks asked for (a slow consumer, `Context::close`), in the
    /// order asked. Not nested: a close carried out here may call `on_close`, whose requests
    /// join the same line.
    pub(super) fn run_requests(&mut self) -> io::Result<()> {
        if self.running_requests {
            return Ok(());
        }
        self.running_requests = true;
        let mut result = Ok(());
        while let Some((slot, id, request)) = self.agenda.requests.pop_front() {
            if !self.holds(slot, id) {
                continue; // closed meanwhile
            }
            result = match request {
                Request::Close(intent) => {
                    let facts = self.facts(slot);
                    let action = self.conns[slot].life.decide(intent, facts);
                    self.apply(slot, action)
                }
                Request::Resume => self.resume_input(slot),
            };
            if result.is_err() {
                break;
            }
        }
        self.running_requests = false;
        result
    }
}
