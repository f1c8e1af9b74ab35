//! What a connection becomes after `101 Switching Protocols` ([`Exchange::upgrade`]): its
//! session of the new protocol, driven with the HTTP protocol's context (the same core state,
//! messages and close records), for the rest of the connection.
//!
//! [`Exchange::upgrade`]: super::Exchange::upgrade

use super::{Handler, Http};
use crate::protocol_api::{Context, MessagePhase, Step};
use crate::record::CloseRecord;

/// The protocol an upgraded connection speaks: one value per connection (its session). The
/// callbacks are those of [`Protocol`](crate::Protocol) for one connection.
pub trait Upgraded<H: Handler>: Sized + 'static {
    /// The most bytes of one incomplete message of this protocol the engine keeps (the
    /// connection's bound is the larger of this and HTTP's).
    const MESSAGE_MAX: usize;

    /// Input after the upgrade (the first call gets what followed the upgrade request in the
    /// same receive): as [`Protocol::on_input`](crate::Protocol::on_input).
    fn on_input(&mut self, input: &[u8], cx: &mut Context<'_, Http<H>>) -> Step;

    /// A timer of this connection is due.
    fn on_timer(&mut self, _timer: usize, _cx: &mut Context<'_, Http<H>>) {}

    /// The connection closed (the handler's `on_close` is called after this).
    fn on_close(self, _record: &CloseRecord, _cx: &mut Context<'_, Http<H>>) {}

    /// Which part of a message the unconsumed `tail` is.
    fn partial_phase(&self, tail: &[u8]) -> MessagePhase;
}

/// For a handler that upgrades no connection: it has no value.
#[derive(Debug)]
pub enum NoUpgrade {}

impl<H: Handler> Upgraded<H> for NoUpgrade {
    const MESSAGE_MAX: usize = 0;

    fn on_input(&mut self, _input: &[u8], _cx: &mut Context<'_, Http<H>>) -> Step {
        match *self {}
    }

    fn partial_phase(&self, _tail: &[u8]) -> MessagePhase {
        match *self {}
    }
}
