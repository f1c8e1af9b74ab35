//! Input: the multishot recv of each connection, what its data and final CQEs mean, handing
//! input to the protocol, backpressure and the line of recvs starved of buffers.

use std::io;

use super::calls::Split;
use super::Core;
use crate::classify::Intent;
use crate::conn::Action;
use crate::context::{Context, Own};
use crate::protocol_api::{Protocol, Verdict};
use crate::sys::{Completion, Target};
use crate::token::Token;

/// What the bytes of one completion did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Fed {
    messages: u64,
    /// The intent the protocol's verdict (or the engine's message bound) records.
    intent: Option<Intent>,
    /// The protocol holds its input until it resumes.
    hold: bool,
}

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
        let Some(slot) = self.live(token) else {
            return Ok(()); // closed by what the input asked for
        };
        let conn = &mut self.conns[slot];
        if conn.out.pending() {
            self.agenda.mark_flush(conn, slot);
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
        let own = Own {
            slot,
            id: self.conns[slot].id,
            output: true,
        };
        let mut fed = Fed::default();
        let len = {
            let Split {
                proto,
                sessions,
                ring,
                mut cx,
            } = self.split(Some(own));
            let session = &mut sessions[slot];
            ring.consume_buffers(completion, |data| {
                feed(proto, session, slot, data, &mut cx, &mut fed);
            })
        };
        self.metrics().bytes_received.add(len as u64);
        self.after_input(slot, fed)
    }

    /// The protocol resumed the connection at `slot`: offers it the input it held (and what
    /// arrived meanwhile), then reads again or classifies the end the peer made meanwhile.
    pub(super) fn resume_input(&mut self, slot: usize) -> io::Result<()> {
        self.conns[slot].life.unhold();
        let id = self.conns[slot].id;
        if !self.conns[slot].tail.is_empty() {
            let own = Own {
                slot,
                id,
                output: true,
            };
            let mut fed = Fed::default();
            {
                let Split {
                    proto,
                    sessions,
                    mut cx,
                    ..
                } = self.split(Some(own));
                feed(proto, &mut sessions[slot], slot, &[], &mut cx, &mut fed);
            }
            self.after_input(slot, fed)?;
            if self.conns[slot].out.pending() {
                self.agenda.mark_flush(&mut self.conns[slot], slot);
            }
        }
        if !self.holds(slot, id) {
            return Ok(());
        }
        let facts = self.facts(slot);
        let action = self.conns[slot].life.resume(facts);
        self.apply(slot, action)?;
        if self.holds(slot, id) {
            self.schedule(slot);
        }
        Ok(())
    }

    /// Acts on what the protocol made of some input: its verdict, a hold, backpressure.
    fn after_input(&mut self, slot: usize, fed: Fed) -> io::Result<()> {
        self.metrics().frames_received.add(fed.messages);
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
            None if fed.hold => self.conns[slot].life.hold(),
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

/// Hands `data` (with the tail kept from before) to the protocol and keeps what it leaves;
/// adds what it did to `fed`. A completion may deliver several pieces (a bundle): once one of
/// them ends in a verdict, the rest is only counted.
fn feed<P: Protocol>(
    proto: &P,
    session: &mut P::Session,
    slot: usize,
    data: &[u8],
    cx: &mut Context<'_, P>,
    fed: &mut Fed,
) {
    let conn = &mut cx.conns[slot];
    conn.bytes_in += data.len() as u64;
    conn.last_active_us = cx.now_us;
    if fed.intent.is_some() || !conn.life.serving() {
        return;
    }
    if fed.hold || conn.life.is_held() {
        // Held: kept for the protocol's resume (what arrives before reading stops).
        if conn.tail.capacity() == 0 {
            conn.tail = cx.pool.take();
        }
        conn.tail.extend_from_slice(data);
        return;
    }
    // Out of the connection while the protocol reads it: the callback may write to any
    // connection, this one included.
    let mut tail = std::mem::take(&mut conn.tail);
    let had_partial = !tail.is_empty();
    if had_partial {
        tail.extend_from_slice(data);
    }
    let input = if had_partial { &tail[..] } else { data };
    let step = proto.on_input(session, input, cx);
    assert!(
        step.consumed <= input.len(),
        "{step:?} of {} bytes",
        input.len()
    );
    if had_partial {
        tail.drain(..step.consumed);
    } else if matches!(step.verdict, Verdict::Continue | Verdict::Hold)
        && step.consumed < data.len()
    {
        if tail.capacity() == 0 {
            tail = cx.pool.take();
        }
        tail.extend_from_slice(&data[step.consumed..]);
    }
    let mut intent = match step.verdict {
        Verdict::Continue | Verdict::Hold => None,
        Verdict::PeerClose => Some(Intent::PeerClose),
        Verdict::Close if cx.draining => Some(Intent::Shutdown),
        Verdict::Close => Some(Intent::LocalClose),
        Verdict::Violation => Some(Intent::ProtocolError),
    };
    fed.hold = step.verdict == Verdict::Hold;
    if intent.is_none() && !fed.hold && tail.len() > proto.message_max() {
        intent = Some(Intent::ProtocolError); // the engine's own bound on one message
    }
    if intent.is_some() {
        tail.clear(); // what follows a closing verdict is ignored
    }
    let conn = &mut cx.conns[slot];
    conn.out.settle(cx.pool);
    conn.frames_in += step.messages;
    if tail.is_empty() {
        cx.pool.give(tail);
    } else {
        if !had_partial || step.messages > 0 {
            conn.message_started_us = cx.now_us; // a message started in this chunk
        }
        conn.tail = tail;
    }
    fed.messages += step.messages;
    fed.intent = intent;
}
