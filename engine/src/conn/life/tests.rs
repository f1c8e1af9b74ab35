//! The life cycle without sockets: each event from each state, the action it returns, and the
//! close it ends in.

use super::*;

const IDLE: Facts = Facts {
    partial_bytes: 0,
    partial_phase: MessagePhase::Header,
    send_in_flight: false,
    replies_pending: false,
    replies_owed: false,
    drained: true,
};

fn with(f: impl FnOnce(&mut Facts)) -> Facts {
    let mut facts = IDLE;
    f(&mut facts);
    facts
}

fn closing(life: &Life) -> Closing {
    life.closing().expect("classified")
}

#[test]
fn peer_fin_closes_at_once() {
    let mut life = Life::new();
    assert_eq!(
        life.recv_final(0, IDLE),
        Action::Classified { abandon: false }
    );
    assert_eq!(
        life.finish(IDLE),
        Finish::Close(Closing {
            cause: Cause::PeerFin,
            phase: Phase::Idle,
            res: 0
        })
    );
}

#[test]
fn fin_mid_message_keeps_its_phase() {
    let mut life = Life::new();
    let facts = with(|f| {
        f.partial_bytes = 5;
        f.partial_phase = MessagePhase::Body;
    });
    let _ = life.recv_final(0, facts);
    assert_eq!(closing(&life).cause, Cause::PeerFinMidFrame);
    assert_eq!(closing(&life).phase, Phase::Body);
}

#[test]
fn an_intent_is_recorded_before_the_cancel_and_wins() {
    let mut life = Life::new();
    assert_eq!(life.decide(Intent::IdleTimeout, IDLE), Action::CancelRecv);
    assert!(!life.serving());
    // A later intent does not replace it.
    assert_eq!(life.decide(Intent::Shutdown, IDLE), Action::None);
    let _ = life.recv_final(-libc::ECANCELED, IDLE);
    assert_eq!(closing(&life).cause, Cause::IdleTimeout);
    assert_eq!(closing(&life).res, -libc::ECANCELED);
    assert_eq!(life.finish(IDLE), Finish::Fin, "our decision: FIN first");
    assert_eq!(life.linger(1_000), Action::ArmRecv);
    assert_eq!(life.finish(IDLE), Finish::Wait, "lingering read armed");
    assert_eq!(life.recv_final(0, IDLE), Action::Finish);
    assert!(matches!(life.finish(IDLE), Finish::Close(_)));
}

#[test]
fn res_zero_with_a_send_in_flight_waits_for_that_send() {
    let in_flight = with(|f| {
        f.send_in_flight = true;
        f.replies_pending = true;
    });
    // The send saw the RST: reset.
    let mut reset = Life::new();
    assert_eq!(reset.recv_final(0, in_flight), Action::None);
    assert!(!reset.is_classified());
    let _ = reset.send_failed(libc::ECONNRESET, IDLE);
    assert_eq!(closing(&reset).cause, Cause::PeerReset);
    assert_eq!(closing(&reset).res, -libc::ECONNRESET);
    // The send went through: FIN.
    let mut fin = Life::new();
    let _ = fin.recv_final(0, in_flight);
    let _ = fin.send_done(with(|f| f.replies_pending = true));
    assert_eq!(closing(&fin).cause, Cause::PeerFin);
    assert_eq!(closing(&fin).phase, Phase::Flushing);
    assert_eq!(
        fin.finish(with(|f| f.replies_pending = true)),
        Finish::Flush,
        "a half-closed peer still gets its replies"
    );
}

#[test]
fn a_failed_send_stops_the_recv_and_is_the_evidence() {
    let mut life = Life::new();
    assert_eq!(life.send_failed(libc::EPIPE, IDLE), Action::CancelRecv);
    assert_eq!(life.decide(Intent::IdleTimeout, IDLE), Action::None);
    let _ = life.recv_final(-libc::ECANCELED, IDLE);
    assert_eq!(closing(&life).cause, Cause::PeerReset);
    assert_eq!(closing(&life).res, -libc::EPIPE);
    assert!(
        matches!(life.finish(IDLE), Finish::Close(_)),
        "no FIN to a reset peer"
    );
}

#[test]
fn backpressure_pauses_and_resumes_without_a_close() {
    let mut life = Life::new();
    assert_eq!(life.pause(), Action::CancelRecv);
    assert!(life.serving(), "data already in flight is still served");
    let pending = with(|f| {
        f.replies_pending = true;
        f.drained = false;
    });
    assert_eq!(life.recv_final(-libc::ECANCELED, pending), Action::None);
    assert!(life.is_paused() && !life.is_classified());
    assert_eq!(life.send_done(pending), Action::None);
    assert_eq!(life.send_done(IDLE), Action::ArmRecv);
    assert!(life.serving());
}

#[test]
fn a_timer_on_a_paused_connection_classifies_from_its_stopped_recv() {
    let mut life = Life::new();
    let _ = life.pause();
    let pending = with(|f| {
        f.replies_pending = true;
        f.drained = false;
    });
    let _ = life.recv_final(-libc::ECANCELED, pending);
    assert_eq!(
        life.timeout_intent(3),
        Intent::IdleTimeout,
        "paused: not a stall"
    );
    assert_eq!(
        life.decide(Intent::IdleTimeout, pending),
        Action::Classified { abandon: true }
    );
    assert_eq!(closing(&life).cause, Cause::IdleTimeout);
    assert!(life.replies_abandoned());
}

#[test]
fn enobufs_starves_and_rearms() {
    let mut life = Life::new();
    assert_eq!(life.recv_final(-libc::ENOBUFS, IDLE), Action::Starve);
    assert!(life.is_starved());
    assert_eq!(life.unstarve(), Action::ArmRecv);
    assert_eq!(life.recv_final(512, IDLE), Action::Rearm, "CQ overflow");
    // A shutdown reaching a starved connection classifies it at once.
    let _ = life.recv_final(-libc::ENOBUFS, IDLE);
    assert_eq!(
        life.decide(Intent::Shutdown, IDLE),
        Action::Classified { abandon: false }
    );
    assert_eq!(closing(&life).cause, Cause::Shutdown);
    assert_eq!(life.unstarve(), Action::None);
}

#[test]
fn the_drain_lets_a_started_message_finish() {
    let mut life = Life::new();
    let partial = with(|f| f.partial_bytes = 4);
    assert_eq!(life.drain(partial), Action::None);
    assert!(life.finishing_message() && life.serving());
    assert_eq!(life.decide(Intent::Shutdown, IDLE), Action::CancelRecv);
    assert!(!life.finishing_message());
    let mut idle = Life::new();
    assert_eq!(idle.drain(IDLE), Action::CancelRecv);
}

#[test]
fn giving_up_a_flush_cancels_and_then_closes() {
    let mut life = Life::new();
    let pending = with(|f| {
        f.replies_pending = true;
        f.send_in_flight = true;
    });
    let _ = life.decide(Intent::Shutdown, pending);
    let _ = life.recv_final(-libc::ECANCELED, pending);
    assert_eq!(life.finish(pending), Finish::Wait);
    assert_eq!(life.give_up(), Action::Classified { abandon: true });
    assert_eq!(life.send_failed(libc::ECANCELED, IDLE), Action::Finish);
    assert_eq!(life.send_errno(), None, "our own cancel is not evidence");
    assert!(matches!(life.finish(IDLE), Finish::Close(_)));
}

#[test]
#[should_panic(expected = "no recv armed")]
fn a_final_cqe_without_a_recv_is_a_bug() {
    let mut life = Life::new();
    let _ = life.recv_final(-libc::ENOBUFS, IDLE);
    let _ = life.recv_final(0, IDLE);
}

#[test]
fn a_close_waits_for_an_owed_reply_until_given_up() {
    let mut life = Life::new();
    let owed = with(|f| f.replies_owed = true);
    // The peer half-closes while a deferred reply is owed: classified, but not closed yet.
    assert_eq!(
        life.recv_final(0, owed),
        Action::Classified { abandon: false }
    );
    assert!(life.accepts_output(), "the owed reply may still be written");
    assert_eq!(life.finish(owed), Finish::Wait);
    assert!(matches!(life.finish(IDLE), Finish::Close(c) if c.cause == Cause::PeerFin));
    // Giving up (the idle bound) closes without the reply.
    let mut stuck = Life::new();
    let _ = stuck.recv_final(0, owed);
    assert_eq!(stuck.give_up(), Action::Classified { abandon: true });
    assert!(!stuck.accepts_output());
    assert!(matches!(stuck.finish(owed), Finish::Close(_)));
}

#[test]
fn a_slow_consumer_gives_its_replies_up() {
    let mut life = Life::new();
    let pending = with(|f| f.replies_pending = true);
    assert_eq!(
        life.decide(Intent::SlowConsumer, pending),
        Action::CancelRecv
    );
    assert_eq!(
        life.recv_final(-libc::ECANCELED, pending),
        Action::Classified { abandon: true }
    );
    assert!(!life.accepts_output());
    assert!(matches!(life.finish(IDLE), Finish::Close(c) if c.cause == Cause::SlowConsumer));
    // Even when the kernel took every byte queued: no FIN, no lingering for the ACKs of a peer
    // that does not read.
    let mut taken = Life::new();
    let _ = taken.decide(Intent::SlowConsumer, IDLE);
    assert_eq!(
        taken.recv_final(-libc::ECANCELED, IDLE),
        Action::Classified { abandon: true }
    );
    assert!(matches!(taken.finish(IDLE), Finish::Close(_)));
}

#[test]
fn no_output_after_the_fin() {
    let mut life = Life::new();
    let _ = life.decide(Intent::PeerClose, IDLE);
    let _ = life.recv_final(-libc::ECANCELED, IDLE);
    assert_eq!(life.finish(IDLE), Finish::Fin);
    assert!(life.accepts_output());
    assert_eq!(life.linger(1_000), Action::ArmRecv);
    assert!(!life.accepts_output());
}

#[test]
fn held_input_stops_reading_until_the_protocol_resumes() {
    let mut life = Life::new();
    assert_eq!(life.hold(), Action::CancelRecv);
    assert!(life.serving() && life.is_held());
    assert_eq!(life.recv_final(-libc::ECANCELED, IDLE), Action::None);
    assert_eq!(
        life.send_done(IDLE),
        Action::None,
        "drained replies do not re-arm it"
    );
    assert_eq!(life.unstarve(), Action::None);
    life.unhold(); // then the core offers the held input again, then `resume`
    assert_eq!(life.resume(IDLE), Action::ArmRecv);
    assert_eq!(
        life.recv_final(0, IDLE),
        Action::Classified { abandon: false }
    );
}

#[test]
fn a_fin_while_held_is_classified_after_the_held_input_is_read() {
    for (partial_bytes, cause) in [(0, Cause::PeerFin), (5, Cause::PeerFinMidFrame)] {
        let mut life = Life::new();
        let _ = life.hold();
        // The held input is whole requests: not a FIN mid-message yet.
        let held = with(|f| f.partial_bytes = 40);
        assert_eq!(life.recv_final(0, held), Action::None);
        assert!(!life.is_classified());
        life.unhold();
        // Resumed: what is left unread after the protocol read the held input decides.
        let left = with(|f| f.partial_bytes = partial_bytes);
        assert_eq!(life.resume(left), Action::Classified { abandon: false });
        assert!(matches!(life.finish(IDLE), Finish::Close(c) if c.cause == cause));
    }
    let mut reset = Life::new();
    let _ = reset.hold();
    assert_eq!(reset.recv_final(-libc::ECONNRESET, IDLE), Action::None);
    reset.unhold();
    let _ = reset.resume(IDLE);
    assert!(matches!(reset.finish(IDLE), Finish::Close(c) if c.cause == Cause::PeerReset));
}

#[test]
fn a_fin_while_held_with_a_send_in_flight_waits_for_the_send() {
    let mut life = Life::new();
    let _ = life.hold();
    let _ = life.recv_final(0, IDLE);
    life.unhold();
    let sending = with(|f| f.send_in_flight = true);
    assert_eq!(life.resume(sending), Action::None);
    assert_eq!(
        life.send_failed(libc::ECONNRESET, IDLE),
        Action::Classified { abandon: false }
    );
    assert!(matches!(life.finish(IDLE), Finish::Close(c) if c.cause == Cause::PeerReset));
}
