//! The room registry: one `tokio::sync::broadcast` channel per room, created by the first JOIN
//! and removed when its last member has gone.
//!
//! A member holds its own clone of the room's sender (a SAY takes no lock) and its receiver; the
//! registry's lock is taken only to join and to release. Subscribing under the lock and counting
//! receivers under it is what makes "the last member has gone" exact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::{self, Receiver, Sender};

/// One line for a room's members, `\n` included, built once and shared by every receiver.
pub type Line = Arc<[u8]>;

/// Every room with at least one member.
#[derive(Debug)]
pub struct Rooms {
    /// Messages a room's channel holds for its slowest member (`--max-queued`).
    queued_max: usize,
    channels: Mutex<HashMap<String, Sender<Line>>>,
}

impl Rooms {
    pub fn new(queued_max: usize) -> Rooms {
        assert!(
            queued_max > 0,
            "a broadcast channel holds at least one message"
        );
        Rooms {
            queued_max,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// Messages a room's channel holds for its slowest member.
    pub fn queued_max(&self) -> usize {
        self.queued_max
    }

    /// Subscribes to `room` (creating it): the receiver sees every line sent from now on.
    pub fn join(&self, room: &str) -> (Sender<Line>, Receiver<Line>) {
        let mut channels = self.channels.lock().expect("rooms lock");
        let sender = channels
            .entry(room.to_owned())
            .or_insert_with(|| broadcast::channel(self.queued_max).0);
        (sender.clone(), sender.subscribe())
    }

    /// Removes `room` if no receiver is left; call after dropping a member's receiver.
    pub fn release(&self, room: &str) {
        let mut channels = self.channels.lock().expect("rooms lock");
        if channels.get(room).is_some_and(|s| s.receiver_count() == 0) {
            channels.remove(room);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.channels.lock().expect("rooms lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_lives_while_it_has_a_member() {
        let rooms = Rooms::new(4);
        let (a_tx, a_rx) = rooms.join("r");
        let (_b_tx, mut b_rx) = rooms.join("r");
        assert_eq!(rooms.len(), 1);
        a_tx.send(Line::from(&b"x\n"[..])).expect("two receivers");
        assert_eq!(&*b_rx.try_recv().expect("sent"), b"x\n");
        drop(a_rx);
        rooms.release("r");
        assert_eq!(rooms.len(), 1, "b is still in");
        drop(b_rx);
        rooms.release("r");
        assert_eq!(rooms.len(), 0);
        rooms.release("never-joined");
    }
}
