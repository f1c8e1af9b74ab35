//! Messages between cores: one bounded queue per core that every core may push into, and a
//! wake-up per target core, sent at most once per loop pass and only when the target has not
//! been woken since it last looked (so a burst of messages costs one wake-up).
//!
//! The wake-up is an `IORING_OP_MSG_RING` from the sender's ring to the target's (Linux 5.18): a
//! CQE appears in the target's ring, no syscall of its own and no eventfd on the path. Where
//! the kernel lacks it (or `--wake eventfd` asks), the sender writes the target's eventfd, which
//! the target's ring polls.
//!
//! Lost wake-ups cannot happen: a sender queues the message *before* it swaps the target's
//! `notified` flag, and the target clears the flag *before* it empties its queue. Either the
//! target's emptying sees the message, or the sender sees the flag clear and wakes it again.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, OnceLock};

use crate::context::{BroadcastError, SendError};

/// Messages queued for one core at most; a sender past it gets [`SendError::Full`].
pub const MESSAGES_QUEUED_MAX: usize = 4096;
/// Messages a core handles per loop pass at most, so a flood of them cannot starve its I/O.
pub const MESSAGES_PER_PASS_MAX: usize = 1024;

/// How a core wakes another for its messages.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Wake {
    /// `IORING_OP_MSG_RING` where the kernel has it, else the eventfd.
    #[default]
    Auto,
    /// `IORING_OP_MSG_RING`; start-up fails on a kernel without it.
    MsgRing,
    /// The target's eventfd, polled by its ring.
    Eventfd,
}

/// What every core knows about one core to wake it.
#[derive(Debug)]
pub(crate) struct Waker {
    /// The core was woken and has not yet emptied its queue since.
    notified: AtomicBool,
    /// A descriptor of the core's ring (a dup, kept open by every holder of the mesh, so the
    /// number never names another file), set once the ring exists.
    pub ring: OnceLock<OwnedFd>,
    /// The core's eventfd, polled by its ring.
    pub eventfd: Arc<OwnedFd>,
}

impl Waker {
    pub fn new(eventfd: Arc<OwnedFd>) -> Waker {
        Waker {
            notified: AtomicBool::new(false),
            ring: OnceLock::new(),
            eventfd,
        }
    }
}

/// One core's end of the mesh: a sender to every core, its own queue, and whom to wake.
#[derive(Debug)]
pub(crate) struct Mesh<M> {
    core: u16,
    senders: Vec<SyncSender<M>>,
    inbox: Receiver<M>,
    pub wakers: Arc<[Waker]>,
    /// Cores to wake at the end of this pass (indexed by core).
    to_wake: Vec<bool>,
    /// This core queued messages for itself, or left some for the next pass.
    pub self_pending: bool,
}

/// The queues of `cores` cores, one [`Mesh`] end per core, in core order.
pub(crate) fn build<M>(wakers: Arc<[Waker]>) -> Vec<Mesh<M>> {
    let cores = wakers.len();
    let (senders, inboxes): (Vec<_>, Vec<_>) = (0..cores)
        .map(|_| mpsc::sync_channel(MESSAGES_QUEUED_MAX))
        .unzip();
    inboxes
        .into_iter()
        .enumerate()
        .map(|(core, inbox)| Mesh {
            core: core as u16,
            senders: senders.clone(),
            inbox,
            wakers: wakers.clone(),
            to_wake: vec![false; cores],
            self_pending: false,
        })
        .collect()
}

impl<M> Mesh<M> {
    /// How other cores wake this one.
    pub fn own_waker(&self) -> &Waker {
        &self.wakers[usize::from(self.core)]
    }

    pub fn cores(&self) -> u16 {
        self.senders.len() as u16
    }

    pub fn send(&mut self, core: u16, message: M) -> Result<(), SendError<M>> {
        let Some(sender) = self.senders.get(usize::from(core)) else {
            return Err(SendError::NoSuchCore(message));
        };
        match sender.try_send(message) {
            Ok(()) => {
                if core == self.core {
                    self.self_pending = true;
                } else {
                    self.to_wake[usize::from(core)] = true;
                }
                Ok(())
            }
            Err(TrySendError::Full(message)) => Err(SendError::Full(message)),
            Err(TrySendError::Disconnected(message)) => Err(SendError::Stopped(message)),
        }
    }

    pub fn broadcast(&mut self, message: M) -> Result<(), BroadcastError>
    where
        M: Clone,
    {
        let mut error = BroadcastError {
            full: 0,
            stopped: 0,
        };
        for core in 0..self.cores() {
            match self.send(core, message.clone()) {
                Ok(()) => {}
                Err(SendError::Full(_)) => error.full += 1,
                Err(SendError::Stopped(_) | SendError::NoSuchCore(_)) => error.stopped += 1,
            }
        }
        if error.full + error.stopped == 0 {
            Ok(())
        } else {
            Err(error)
        }
    }

    /// Takes the cores to wake now; `wake` returns whether it could (if not, the core stays in
    /// the list for the next pass). A core already woken and not yet looking is skipped.
    pub fn wake_targets(&mut self, mut wake: impl FnMut(usize, &Waker) -> bool) {
        for core in 0..self.to_wake.len() {
            if !self.to_wake[core] {
                continue;
            }
            let waker = &self.wakers[core];
            if waker.notified.swap(true, Ordering::SeqCst) {
                self.to_wake[core] = false; // woken already; it will see this message too
            } else if wake(core, waker) {
                self.to_wake[core] = false;
            } else {
                waker.notified.store(false, Ordering::SeqCst);
            }
        }
    }

    /// Whether a wake-up is still to be sent (it could not be, e.g. the target's ring was not
    /// set up yet): the core should not sleep long.
    pub fn wakes_pending(&self) -> bool {
        self.to_wake.iter().any(|&wake| wake)
    }

    /// A wake-up sent to `core` failed: send it again next pass.
    pub fn rewake(&mut self, core: usize) {
        if let Some(waker) = self.wakers.get(core) {
            waker.notified.store(false, Ordering::SeqCst);
            self.to_wake[core] = true;
        }
    }

    /// This core was woken: clear its flag before looking at the queue (see the module docs).
    pub fn woken(&mut self) {
        self.own_waker().notified.store(false, Ordering::SeqCst);
        self.self_pending = true;
    }

    /// The next queued message, at most [`MESSAGES_PER_PASS_MAX`] per pass (`taken` counts).
    pub fn next(&mut self, taken: usize) -> Option<M> {
        if taken >= MESSAGES_PER_PASS_MAX {
            return None; // `self_pending` stays set: the next pass goes on
        }
        match self.inbox.try_recv() {
            Ok(message) => Some(message),
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => {
                self.self_pending = false;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh(cores: usize) -> Vec<Mesh<u32>> {
        let wakers: Vec<Waker> = (0..cores)
            .map(|_| Waker::new(Arc::new(crate::sys::socket::eventfd().unwrap())))
            .collect();
        build(wakers.into())
    }

    #[test]
    fn one_wake_per_burst_and_none_lost() {
        let mut ends = mesh(2);
        let (a, b) = ends.split_at_mut(1);
        let (a, b) = (&mut a[0], &mut b[0]);
        for n in 0..3 {
            a.send(1, n).unwrap();
        }
        let mut woken = 0;
        a.wake_targets(|core, _| {
            assert_eq!(core, 1);
            woken += 1;
            true
        });
        a.send(1, 3).unwrap();
        a.wake_targets(|_, _| panic!("already woken, not yet looking"));
        assert_eq!(woken, 1);
        b.woken();
        let got: Vec<u32> = std::iter::from_fn(|| b.next(0)).collect();
        assert_eq!(got, [0, 1, 2, 3], "in the order sent");
        a.send(1, 4).unwrap();
        a.wake_targets(|_, _| {
            woken += 1;
            true
        });
        assert_eq!(woken, 2, "looked since: woken again");
    }

    #[test]
    fn a_full_queue_gives_the_message_back() {
        let mut ends = mesh(2);
        for n in 0..MESSAGES_QUEUED_MAX as u32 {
            ends[0].send(1, n).unwrap();
        }
        match ends[0].send(1, 7) {
            Err(SendError::Full(7)) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(ends[0].send(9, 1), Err(SendError::NoSuchCore(1))));
        assert_eq!(
            ends[0].broadcast(5),
            Err(BroadcastError {
                full: 1,
                stopped: 0
            })
        );
        assert!(ends[0].self_pending, "its own copy was queued");
    }
}
