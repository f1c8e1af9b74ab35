//! Output: one batch of replies in flight per connection, issued once per pass of the loop, and
//! what a send's completion means.

use std::io;

use super::Core;
use crate::protocol_api::Protocol;
use crate::sys::{Completion, Target};
use crate::token::Token;

impl<P: Protocol> Core<P> {
    /// Sends the next batch of every connection marked this pass.
    pub(super) fn flush(&mut self) -> io::Result<()> {
        let mut list = std::mem::take(&mut self.agenda.flush);
        for &(slot, generation) in &list {
            let Some(slot) = self.live(Token::new(slot, generation)) else {
                continue;
            };
            let conn = &mut self.conns[slot];
            conn.in_flush_list = false;
            if !conn.life.may_send() {
                continue;
            }
            if let Some(batch) = conn.out.next_batch() {
                let token = Token::new(slot, generation).encode();
                let id = self.ring.send(&conn.fd, batch, token)?;
                conn.out.started(id);
            }
        }
        list.clear();
        self.agenda.flush = list;
        Ok(())
    }

    pub(super) fn on_send(&mut self, completion: &mut Completion) -> io::Result<()> {
        let token = Token::decode(completion.user_data());
        let Some(slot) = self.live(token) else {
            unreachable!("a connection is never closed with a send in flight");
        };
        let buf = completion
            .take_sent()
            .expect("a send completion hands its buffer back");
        let conn = &mut self.conns[slot];
        let result = conn.out.completed(buf, completion.res(), &mut self.pool);
        let action = match result {
            Ok(sent) => {
                conn.bytes_out += sent.bytes as u64;
                conn.frames_out += sent.replies;
                conn.last_active_us = self.now_us;
                if conn.out.pending() {
                    self.agenda.mark_flush(conn, slot);
                }
                self.metrics().bytes_sent.add(sent.bytes as u64);
                let facts = self.facts(slot);
                self.conns[slot].life.send_done(facts)
            }
            Err(errno) => {
                conn.drop_replies(&mut self.pool);
                let facts = self.facts(slot);
                self.conns[slot].life.send_failed(errno, facts)
            }
        };
        self.apply(slot, action)
    }

    /// Gives up the replies: cancels the send in flight (its completion then drops the rest), or
    /// drops the queued ones now.
    pub(super) fn abandon_flush(&mut self, slot: usize) -> io::Result<()> {
        let conn = &mut self.conns[slot];
        match conn.out.in_flight() {
            Some(id) => {
                let token = Token::new(slot, conn.generation).encode();
                self.ring.cancel(Target::Send(id), token)
            }
            None => {
                conn.drop_replies(&mut self.pool);
                Ok(())
            }
        }
    }
}
