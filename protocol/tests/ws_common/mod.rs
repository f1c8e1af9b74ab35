//! What the WebSocket tests compare: decoder events as owned values.

use protocol::ws::{Error, Event, Pending};

/// An [`Event`] that outlives the decoder's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ev {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

pub fn owned(event: Event<'_>) -> Ev {
    match event {
        Event::Text(text) => Ev::Text(text.to_owned()),
        Event::Binary(bytes) => Ev::Binary(bytes.to_vec()),
        Event::Ping(bytes) => Ev::Ping(bytes.to_vec()),
        Event::Pong(bytes) => Ev::Pong(bytes.to_vec()),
        Event::Close(close) => Ev::Close(close.code, close.reason.to_owned()),
    }
}

/// The events of a stream, then its error or what is left pending.
pub type Outcome = (Vec<Ev>, Result<Option<Pending>, Error>);
