//! Input: the multishot recv of each connection, what its data and final CQEs mean, backpressure
//! and the line of recvs starved of buffers.

use std::io;

use super::Core;
use crate::classify::Intent;
use crate::conn::{Action, Fed};
use crate::protocol_api::Protocol;
use crate::sys::{Completion, Target};
use crate::token::Token;

impl<P: Protocol> Core<P> {
    pub(super) fn arm_recv(&mut self, slot: usize) -> io::Result<()> {
        let token = self.token(slot);
        self.ring.recv_multi(&self.conns[slot].fd, token.encode())
    }

    pub(super) fn cancel_recv(&mut self, slot: usize) -> io::Result<()> {
        let token = self.token(slot).encode();
        self.ring.cancel(Target::Recv(token), token)
    }

    pub(super) fn on_recv(&mut self, completion: &mut Completion) -> io::Result<()> {
        let token = Token::decode(completion.user_data());
        let Some(slot) = self.live(token) else {
            // Cannot happen: a connection outlives its recv. Give the buffer back and move on.
            self.ring.consume_buffers(completion, |_| ());
            tracing::error!(
                core = self.core,
                ?token,
                "recv completion for a closed connection"
            );
            return Ok(());
        };
        if completion.has_buffer() {
            self.on_input(slot, completion)?;
        }
        let conn = &mut self.conns[slot];
        if conn.out.pending() {
            super::send::mark_flush(&mut self.flush_list, conn, slot);
        }
        if !completion.more() {
            let facts = self.facts(slot);
            let action = self.conns[slot].life.recv_final(completion.res(), facts);
            return self.apply(slot, action);
        }
        self.schedule(slot);
        Ok(())
    }

    /// Hands the bytes a recv delivered to the protocol, then acts on its verdict.
    fn on_input(&mut self, slot: usize, completion: &mut Completion) -> io::Result<()> {
        let cx = self.context();
        let Core {
            ring,
            conns,
            proto,
            pool,
            metrics,
            ..
        } = self;
        let conn = &mut conns[slot];
        let mut fed = Fed::default();
        let len = ring.consume_buffers(completion, |data| {
            conn.feed(&**proto, data, pool, &cx, &mut fed);
        });
        let metrics = &metrics[self.metrics_slot];
        metrics.bytes_received.add(len as u64);
        metrics.frames_received.add(fed.messages);
        let intent = fed.intent.or_else(|| {
            // The drain let this message finish: now it has.
            let conn = &self.conns[slot];
            (conn.life.finishing_message() && conn.tail.is_empty()).then_some(Intent::Shutdown)
        });
        let action = match intent {
            Some(intent) => {
                let facts = self.facts(slot);
                self.conns[slot].life.decide(intent, facts)
            }
            // The peer does not read its replies: stop reading from it until they drain.
            None if self.conns[slot].out.queued_bytes() > self.settings.max_queued_bytes => {
                self.conns[slot].life.pause()
            }
            None => Action::None,
        };
        self.apply(slot, action)
    }

    /// Re-arms the recvs that ran out of buffers, oldest first, at most as many as the ring has
    /// buffers. One that closed or got an intent meanwhile was classified without them.
    pub(super) fn rearm_starved(&mut self) -> io::Result<()> {
        let count = self
            .starved
            .len()
            .min(usize::from(self.ring.buffer_count()));
        for _ in 0..count {
            let Some((slot, generation)) = self.starved.pop_front() else {
                break;
            };
            if let Some(slot) = self.live(Token::new(slot, generation)) {
                let action = self.conns[slot].life.unstarve();
                self.apply(slot, action)?;
            }
        }
        Ok(())
    }
}
