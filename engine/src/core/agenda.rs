//! What a core has to do later in its loop pass, written by the core itself and by protocol
//! callbacks (through their [`Context`](crate::Context)): connections to flush, closes asked
//! for, deadline checks, and the protocol's core timers.

use std::collections::VecDeque;

use crate::classify::Intent;
use crate::conn::Conn;
use crate::context::CORE_TIMERS;
use crate::timers::{Deadlines, Due};

/// What a callback asked of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Close it, with this intent.
    Close(Intent),
    /// Offer it its held input again, and read from it again.
    Resume,
}

#[derive(Debug)]
pub(crate) struct Agenda {
    /// Connections with output to send this pass, (slot, generation).
    pub flush: Vec<(usize, u32)>,
    /// What callbacks asked of connections, (slot, connection id, request), carried out in
    /// order once the callback returns.
    pub requests: VecDeque<(usize, u64, Request)>,
    /// Lazy checks of connection deadlines.
    pub deadlines: Deadlines,
    /// When each of the protocol's core timers is due (`u64::MAX`: not armed).
    pub core_timers: [u64; CORE_TIMERS],
}

impl Default for Agenda {
    fn default() -> Agenda {
        Agenda {
            flush: Vec::new(),
            requests: VecDeque::new(),
            deadlines: Deadlines::default(),
            core_timers: [u64::MAX; CORE_TIMERS],
        }
    }
}

impl Agenda {
    /// Marks a connection for the next flush (once per pass).
    pub fn mark_flush(&mut self, conn: &mut Conn, slot: usize) {
        if !conn.in_flush_list {
            conn.in_flush_list = true;
            self.flush.push((slot, conn.generation));
        }
    }

    /// Records what to do to a connection when the current callback returns.
    pub fn request(&mut self, slot: usize, id: u64, request: Request) {
        self.requests.push_back((slot, id, request));
    }

    /// Arms a check of the connection at `at_us`, superseding any armed one.
    pub fn check_at(&mut self, conn: &mut Conn, slot: usize, at_us: u64) {
        conn.armed_check_us = at_us;
        self.deadlines.push(Due {
            at_us,
            slot: slot as u32,
            generation: conn.generation,
        });
    }

    /// Makes sure a check is armed no later than `at_us`.
    pub fn check_by(&mut self, conn: &mut Conn, slot: usize, at_us: u64) {
        if at_us < conn.armed_check_us {
            self.check_at(conn, slot, at_us);
        }
    }

    /// The earliest armed core timer, if any.
    pub fn next_core_timer_us(&self) -> Option<u64> {
        self.core_timers
            .iter()
            .copied()
            .filter(|&at_us| at_us != u64::MAX)
            .min()
    }
}
