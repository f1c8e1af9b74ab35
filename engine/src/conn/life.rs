//! The life cycle of one connection: one enum of states whose transitions are the only way to
//! change it, each returning what the core must do. No I/O: the core issues the operations and
//! reports their results back here as events.
//!
//! ```text
//!            ┌──── -ENOBUFS ────► Starved ── buffer free ──┐
//!            │                                              ▼
//! accept ─► Reading ◄────────── replies drained ────────── Paused ◄── final CQE ── Pausing
//!            │  │ queued > max ─────────────────────────────────────────────────────▲
//!            │  │
//!            │  └ intent (timer, verdict, drain) or a failed send ─► Stopping ─┐
//!            │                                                                  │ final CQE
//!            ├ final CQE: FIN / RST / error ───────────────────────────────────┤ (classified)
//!            └ final CQE res 0, send in flight ─► AwaitingSend ─ send done ─────┤
//!                                                                               ▼
//!                   closed ◄── replies sent / given up ── Flushing ── our decision ─► Lingering
//!                     ▲                                                                │
//!                     └──────── peer acked everything, peer closed, or the bound ──────┘
//! ```
//!
//! A connection is classified exactly once, on its recv's final CQE, or — when the recv already
//! stopped (Starved, Paused, AwaitingSend) — from that final CQE's res, with the engine's recorded
//! intent and the first send error as the other evidence (see `classify`).

use crate::classify::{classify, Cause, FinalRecv, Intent, Phase, Rearm, Verdict};
use crate::protocol_api::MessagePhase;

/// The classification, fixed once made; the connection closes when its replies have drained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closing {
    pub cause: Cause,
    pub phase: Phase,
    /// The completion code the verdict came from (the recv's final res, or a failed send's).
    pub res: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The recv is armed; input is served.
    Reading,
    /// The recv ended with -ENOBUFS: it waits in the core's line for a free buffer.
    Starved,
    /// The recv is being cancelled because the peer does not read its replies.
    Pausing,
    /// The recv is stopped until the replies drain.
    Paused,
    /// The recv is being cancelled to close; `intent` is the evidence (`Intent::None`: a send
    /// failed, and its errno is).
    Stopping { intent: Intent },
    /// The recv ended with res 0 while a send was in flight. After an RST, whichever of the two
    /// reads the socket error first consumes it, so that send decides: RST or FIN.
    AwaitingSend,
    /// Classified, recv stopped: the replies flush, unless they were given up.
    Flushing { closing: Closing, abandoned: bool },
    /// Our decision, FIN sent: input is read and discarded until the peer has every reply.
    Lingering {
        closing: Closing,
        until_us: u64,
        recv: LingerRecv,
    },
}

/// The discarding recv of a lingering close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LingerRecv {
    Armed,
    Cancelling,
    Stopped,
}

/// What the core knows about the connection when an event arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// Bytes of an incomplete message buffered, and which part they are.
    pub partial_bytes: usize,
    pub partial_phase: MessagePhase,
    pub send_in_flight: bool,
    pub replies_pending: bool,
    /// The protocol deferred a reply it has not written yet.
    pub replies_owed: bool,
    /// The replies queued have drained below the resume mark (half of the backpressure bound).
    pub drained: bool,
}

/// What the core must do after a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Action {
    None,
    ArmRecv,
    CancelRecv,
    /// Join the line of recvs waiting for a free buffer (the recv ended with -ENOBUFS).
    Starve,
    /// Arm the recv again: it ended because the CQ overflowed, not for a close.
    Rearm,
    /// Classified: close once the replies are flushed (see [`Life::finish`]); `abandon`: give
    /// the replies up first (cancel the send in flight, drop the queued ones).
    Classified {
        abandon: bool,
    },
    /// Closing: see whether the connection can close now.
    Finish,
}

/// What a classified connection needs before it can close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Finish {
    /// An operation is in flight: its completion comes back here.
    Wait,
    /// Replies are queued and not in flight: send them.
    Flush,
    /// Our decision and every reply sent: send FIN, then linger if the peer has not
    /// acknowledged everything ([`Life::linger`]).
    Fin,
    /// Remove the connection and write its record.
    Close(Closing),
}

/// One connection's state and the evidence gathered for its classification.
#[derive(Clone, Copy, Debug)]
pub struct Life {
    state: State,
    /// res of the recv's latest final CQE.
    last_res: i32,
    /// The first errno a send failed with.
    send_errno: Option<i32>,
    /// A drain began while a message was incomplete: close once it completes.
    finish_message: bool,
    /// The protocol holds its input (`Step::hold`) until it resumes: reading stops, and the
    /// kept input is offered again on resume.
    held: bool,
    /// While held, the recv's final CQE said the peer ended (`last_res`: its FIN or error):
    /// classified once the protocol has resumed and read what it held.
    peer_ended: bool,
}

impl Default for Life {
    fn default() -> Life {
        Life::new()
    }
}

impl Life {
    /// A connection whose recv is being armed.
    pub const fn new() -> Life {
        Life {
            state: State::Reading,
            last_res: 0,
            send_errno: None,
            finish_message: false,
            held: false,
            peer_ended: false,
        }
    }

    /// Received input is served (not once a close is decided or a send failed).
    pub fn serving(&self) -> bool {
        matches!(self.state, State::Reading | State::Pausing | State::Paused)
            && !self.evidence_recorded()
    }

    /// The protocol holds its input: received bytes are kept, not handed to it.
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// A drain is waiting for the message in progress to complete.
    pub fn finishing_message(&self) -> bool {
        self.finish_message && self.serving()
    }

    #[cfg(test)]
    fn is_starved(&self) -> bool {
        self.state == State::Starved
    }

    /// Reading stopped for backpressure (a silence then is not the peer's fault).
    pub fn is_paused(&self) -> bool {
        matches!(self.state, State::Pausing | State::Paused)
    }

    pub fn is_classified(&self) -> bool {
        self.closing().is_some()
    }

    pub fn closing(&self) -> Option<Closing> {
        match self.state {
            State::Flushing { closing, .. } | State::Lingering { closing, .. } => Some(closing),
            _ => None,
        }
    }

    pub fn linger_until_us(&self) -> Option<u64> {
        match self.state {
            State::Lingering { until_us, .. } => Some(until_us),
            _ => None,
        }
    }

    pub fn replies_abandoned(&self) -> bool {
        matches!(
            self.state,
            State::Flushing {
                abandoned: true,
                ..
            }
        )
    }

    /// Replies may still be sent: not given up, and no send failed.
    pub fn may_send(&self) -> bool {
        !self.replies_abandoned() && self.send_errno.is_none()
    }

    /// New output may still be written: it would be sent (no FIN yet).
    pub fn accepts_output(&self) -> bool {
        self.may_send() && !matches!(self.state, State::Lingering { .. })
    }

    #[cfg(test)]
    fn send_errno(&self) -> Option<i32> {
        self.send_errno
    }

    /// A close intent was recorded or a send failed: no other intent may be recorded.
    fn evidence_recorded(&self) -> bool {
        self.send_errno.is_some() || matches!(self.state, State::Stopping { .. })
    }

    // ---- events ----

    /// The replies queued passed the backpressure bound: stop reading.
    pub fn pause(&mut self) -> Action {
        if self.state == State::Reading && !self.evidence_recorded() {
            self.state = State::Pausing;
            return Action::CancelRecv;
        }
        Action::None
    }

    /// The engine decided to close (a timer fired, the protocol's verdict, the drain). Records
    /// the intent before anything is cancelled, so the cancel's -ECANCELED is read right.
    pub fn decide(&mut self, intent: Intent, facts: Facts) -> Action {
        assert!(intent.close_cause().is_some(), "{intent:?} is not a close");
        if self.evidence_recorded() {
            return Action::None; // the first intent, or a send's error, stands
        }
        match self.state {
            State::Reading => {
                self.state = State::Stopping { intent };
                Action::CancelRecv
            }
            // The cancel is already on its way; its final CQE now reads as this intent.
            State::Pausing => {
                self.state = State::Stopping { intent };
                Action::None
            }
            // No recv to cancel: classify from the final CQE that stopped it.
            State::Starved | State::Paused | State::AwaitingSend => {
                self.classify_stopped(intent, facts)
            }
            State::Stopping { .. } | State::Flushing { .. } | State::Lingering { .. } => {
                Action::None
            }
        }
    }

    /// The drain begins: idle connections close now; one in the middle of a message gets to
    /// finish it (its reply says it is the last), bounded by the shutdown timeout.
    pub fn drain(&mut self, facts: Facts) -> Action {
        if self.state == State::Reading && facts.partial_bytes > 0 && !self.evidence_recorded() {
            self.finish_message = true;
            return Action::None;
        }
        self.decide(Intent::Shutdown, facts)
    }

    /// The protocol holds its input until [`Life::resume`]: stop reading.
    pub fn hold(&mut self) -> Action {
        self.held = true;
        self.pause()
    }

    /// The protocol resumed: its held input may be offered to it again (then [`Life::resume`]).
    pub fn unhold(&mut self) {
        self.held = false;
    }

    /// The protocol resumed and has read what it held (if it did not hold again): read again,
    /// or classify the end the peer made meanwhile.
    pub fn resume(&mut self, facts: Facts) -> Action {
        if self.held || self.state != State::Paused || self.evidence_recorded() {
            return Action::None;
        }
        if self.peer_ended {
            self.peer_ended = false;
            if self.last_res == 0 && facts.send_in_flight && self.send_errno.is_none() {
                self.state = State::AwaitingSend; // the send decides: FIN or a consumed RST
                return Action::None;
            }
            return self.classify_final(Intent::None, facts);
        }
        if facts.drained {
            self.state = State::Reading;
            return Action::ArmRecv;
        }
        Action::None // backpressure: the replies' drain re-arms it
    }

    /// The recv's final CQE (IORING_CQE_F_MORE clear) arrived with `res`.
    pub fn recv_final(&mut self, res: i32, facts: Facts) -> Action {
        if self.held && self.state == State::Pausing && ends_the_peer(res) {
            // The peer's FIN or error while the protocol holds input: read what is held first.
            self.last_res = res;
            self.peer_ended = true;
            self.state = State::Paused;
            return Action::None;
        }
        let intent = match self.state {
            State::Reading => Intent::None,
            State::Pausing => Intent::Pause,
            State::Stopping { intent } => intent,
            State::Lingering {
                closing, until_us, ..
            } => {
                // The lingering read ended (the peer closed, or the buffers ran dry): close.
                self.state = State::Lingering {
                    closing,
                    until_us,
                    recv: LingerRecv::Stopped,
                };
                return Action::Finish;
            }
            other => panic!("a final recv CQE in state {other:?}, with no recv armed"),
        };
        self.last_res = res;
        if res == 0
            && facts.send_in_flight
            && intent.close_cause().is_none()
            && self.send_errno.is_none()
        {
            self.state = State::AwaitingSend;
            return Action::None;
        }
        self.classify_final(intent, facts)
    }

    /// A send failed with `errno`.
    pub fn send_failed(&mut self, errno: i32, facts: Facts) -> Action {
        if errno == libc::ECANCELED && self.replies_abandoned() {
            return Action::Finish; // our own cancel of a flush we gave up: not evidence
        }
        let first = self.send_errno.is_none();
        self.send_errno.get_or_insert(errno);
        match self.state {
            // The peer is gone: stop the recv; its final CQE gets classified.
            State::Reading if first => {
                self.state = State::Stopping {
                    intent: Intent::None,
                };
                Action::CancelRecv
            }
            State::Starved | State::Paused | State::AwaitingSend => {
                self.classify_stopped(Intent::None, facts)
            }
            State::Flushing { .. } | State::Lingering { .. } => Action::Finish,
            State::Reading | State::Pausing | State::Stopping { .. } => Action::None,
        }
    }

    /// A send completed (whole or in part).
    pub fn send_done(&mut self, facts: Facts) -> Action {
        match self.state {
            // The send that had to decide did not see an RST: the recv's res 0 is a FIN.
            State::AwaitingSend => self.classify_stopped(Intent::None, facts),
            State::Paused
                if facts.drained && !self.evidence_recorded() && !self.held && !self.peer_ended =>
            {
                self.state = State::Reading;
                Action::ArmRecv
            }
            State::Flushing { .. } | State::Lingering { .. } => Action::Finish,
            _ => Action::None,
        }
    }

    /// A buffer is free for a starved recv.
    pub fn unstarve(&mut self) -> Action {
        match self.state {
            State::Starved if self.held => {
                self.state = State::Paused; // stays stopped until the protocol resumes
                Action::None
            }
            State::Starved => {
                self.state = State::Reading;
                Action::ArmRecv
            }
            _ => Action::None,
        }
    }

    /// Stop waiting for a flush or a linger: the peer does not read, or a bound passed.
    pub fn give_up(&mut self) -> Action {
        match self.state {
            State::Flushing {
                closing,
                abandoned: false,
            } => {
                self.state = State::Flushing {
                    closing,
                    abandoned: true,
                };
                Action::Classified { abandon: true }
            }
            State::Lingering {
                recv: LingerRecv::Armed,
                closing,
                until_us,
            } => {
                self.state = State::Lingering {
                    closing,
                    until_us,
                    recv: LingerRecv::Cancelling,
                };
                Action::CancelRecv
            }
            State::Lingering {
                recv: LingerRecv::Cancelling,
                ..
            } => Action::None,
            State::Flushing { .. } | State::Lingering { .. } => Action::Finish,
            _ => Action::None,
        }
    }

    /// Whether a classified connection can close, or what it still needs.
    pub fn finish(&self, facts: Facts) -> Finish {
        let closing = match self.state {
            State::Flushing { closing, .. } => closing,
            State::Lingering {
                closing,
                recv: LingerRecv::Stopped,
                ..
            } => return Finish::Close(closing),
            _ => return Finish::Wait,
        };
        if facts.send_in_flight {
            return Finish::Wait;
        }
        let abandoned = self.replies_abandoned();
        if facts.replies_pending && !abandoned && self.send_errno.is_none() {
            return Finish::Flush;
        }
        if facts.replies_owed && !abandoned && self.send_errno.is_none() {
            return Finish::Wait; // the protocol's deferred reply comes, or the idle bound passes
        }
        if closing.cause.is_engine_decision() && !abandoned && self.send_errno.is_none() {
            return Finish::Fin;
        }
        Finish::Close(closing)
    }

    /// FIN is sent and the peer has not acknowledged everything: read and discard its input
    /// until it has, it closes, or `until_us`.
    pub fn linger(&mut self, until_us: u64) -> Action {
        let State::Flushing { closing, .. } = self.state else {
            panic!("linger from state {:?}", self.state);
        };
        self.state = State::Lingering {
            closing,
            until_us,
            recv: LingerRecv::Armed,
        };
        Action::ArmRecv
    }

    // ---- classification ----

    fn classify_stopped(&mut self, intent: Intent, facts: Facts) -> Action {
        let intent = match (intent, self.state) {
            (Intent::None, State::Paused) => Intent::Pause,
            _ => intent,
        };
        self.classify_final(intent, facts)
    }

    fn classify_final(&mut self, intent: Intent, facts: Facts) -> Action {
        let verdict = classify(FinalRecv {
            res: self.last_res,
            intent,
            partial_bytes: facts.partial_bytes,
            send_errno: self.send_errno,
        });
        match verdict {
            Verdict::Rearm(Rearm::Overflow) => {
                self.state = State::Reading;
                Action::Rearm
            }
            Verdict::Rearm(Rearm::Enobufs) => {
                self.state = State::Starved;
                Action::Starve
            }
            Verdict::Paused => {
                self.state = State::Paused;
                if facts.drained && self.send_errno.is_none() && !self.held {
                    self.state = State::Reading;
                    return Action::ArmRecv;
                }
                Action::None
            }
            Verdict::Close(cause) => {
                // The verdict's evidence: a failed send when no intent was recorded, else the recv.
                let res = match (intent.close_cause(), self.send_errno) {
                    (None, Some(errno)) => -errno,
                    _ => self.last_res,
                };
                let closing = Closing {
                    cause,
                    phase: phase(facts),
                    res,
                };
                // Idle while replies wait, or too slow for what is pushed to it: the peer does not
                // read them; do not wait for it (a slow consumer not even for the bytes the
                // kernel already took: lingering for its ACKs would keep it 2 s longer).
                let abandon = cause == Cause::SlowConsumer
                    || (cause == Cause::IdleTimeout && facts.replies_pending);
                self.state = State::Flushing {
                    closing,
                    abandoned: abandon,
                };
                Action::Classified { abandon }
            }
        }
    }

    /// What the last final CQE of a stopped recv said (for a record written without one).
    pub fn last_res(&self) -> i32 {
        self.last_res
    }

    /// The intent a due timer records: a stalled message, or idleness.
    pub fn timeout_intent(&self, partial_bytes: usize) -> Intent {
        if partial_bytes > 0 && !self.is_paused() {
            Intent::ReadTimeout
        } else {
            Intent::IdleTimeout
        }
    }
}

/// Whether a recv's final res ends the connection from the peer's side (a FIN or an error),
/// rather than a cancel, a dry buffer ring or a full CQ.
fn ends_the_peer(res: i32) -> bool {
    res == 0 || (res < 0 && res != -libc::ECANCELED && res != -libc::ENOBUFS)
}

/// Where in the stream the connection was when it was classified.
pub fn phase(facts: Facts) -> Phase {
    match (facts.partial_bytes, facts.partial_phase) {
        (0, _) if facts.replies_pending => Phase::Flushing,
        (0, _) => Phase::Idle,
        (_, MessagePhase::Header) => Phase::Header,
        (_, MessagePhase::Body) => Phase::Body,
    }
}

#[cfg(test)]
mod tests;
