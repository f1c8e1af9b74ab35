//! The close classifier: one pure function from a recv's final completion and the engine's
//! recorded intent to a close cause (or to "not a close: re-arm").
//!
//! It is only called on a *final* recv CQE (IORING_CQE_F_MORE clear), or when a connection whose
//! recv is already stopped must close. The completion code alone cannot tell who closed: res 0 is
//! a peer FIN but also a local shutdown, or an RST whose error a send already consumed; -ECANCELED
//! is any cancel. So the engine records its intent *before* it cancels, remembers the first
//! error a send saw, and this function weighs them in that order: intent, send error, res.

/// Why a connection closed. The label values are the public contract (metrics, close log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    PeerFin,
    PeerFinMidFrame,
    PeerReset,
    IdleTimeout,
    ReadTimeout,
    /// The peer asked, in its protocol, to end the connection; the engine closed after answering.
    PeerClose,
    LocalClose,
    ProtocolError,
    /// Output pushed into the connection passed its bound: the peer does not read fast enough.
    SlowConsumer,
    Shutdown,
    TcpTimeout,
    Aborted,
    Error,
}

impl Cause {
    pub const ALL: [Cause; 13] = [
        Cause::PeerFin,
        Cause::PeerFinMidFrame,
        Cause::PeerReset,
        Cause::IdleTimeout,
        Cause::ReadTimeout,
        Cause::PeerClose,
        Cause::LocalClose,
        Cause::ProtocolError,
        Cause::SlowConsumer,
        Cause::Shutdown,
        Cause::TcpTimeout,
        Cause::Aborted,
        Cause::Error,
    ];
    pub const COUNT: usize = Cause::ALL.len();

    pub const fn as_str(self) -> &'static str {
        match self {
            Cause::PeerFin => "peer_fin",
            Cause::PeerFinMidFrame => "peer_fin_mid_frame",
            Cause::PeerReset => "peer_reset",
            Cause::IdleTimeout => "idle_timeout",
            Cause::ReadTimeout => "read_timeout",
            Cause::PeerClose => "peer_close",
            Cause::LocalClose => "local_close",
            Cause::ProtocolError => "protocol_error",
            Cause::SlowConsumer => "slow_consumer",
            Cause::Shutdown => "shutdown",
            Cause::TcpTimeout => "tcp_timeout",
            Cause::Aborted => "aborted",
            Cause::Error => "error",
        }
    }

    /// Position in [`Cause::ALL`], for counter arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether the engine decided this close (the cause of a recorded [`Intent`]), rather than
    /// the peer, the kernel or an error.
    pub const fn is_engine_decision(self) -> bool {
        match self {
            Cause::IdleTimeout
            | Cause::ReadTimeout
            | Cause::PeerClose
            | Cause::LocalClose
            | Cause::ProtocolError
            | Cause::SlowConsumer
            | Cause::Shutdown => true,
            Cause::PeerFin
            | Cause::PeerFinMidFrame
            | Cause::PeerReset
            | Cause::TcpTimeout
            | Cause::Aborted
            | Cause::Error => false,
        }
    }
}

/// What the engine decided about a connection, recorded before it acts (cancel, shutdown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    None,
    /// Reading stopped because the peer does not read its replies: not a close.
    Pause,
    IdleTimeout,
    ReadTimeout,
    PeerClose,
    LocalClose,
    ProtocolError,
    SlowConsumer,
    Shutdown,
}

impl Intent {
    /// The cause a close intent stands for; `None` for no intent or a pause.
    pub const fn close_cause(self) -> Option<Cause> {
        match self {
            Intent::None | Intent::Pause => None,
            Intent::IdleTimeout => Some(Cause::IdleTimeout),
            Intent::ReadTimeout => Some(Cause::ReadTimeout),
            Intent::PeerClose => Some(Cause::PeerClose),
            Intent::LocalClose => Some(Cause::LocalClose),
            Intent::ProtocolError => Some(Cause::ProtocolError),
            Intent::SlowConsumer => Some(Cause::SlowConsumer),
            Intent::Shutdown => Some(Cause::Shutdown),
        }
    }
}

/// Why a final CQE that is not a close ended the multishot recv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rearm {
    /// -ENOBUFS: the buffer ring ran dry.
    Enobufs,
    /// res > 0 without F_MORE: the CQ ring overflowed.
    Overflow,
}

/// What to do after a recv's final completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not a close: arm the recv again.
    Rearm(Rearm),
    /// Not a close: reading stays stopped until the replies drain.
    Paused,
    Close(Cause),
}

/// Everything the verdict depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FinalRecv {
    /// res of the recv's final CQE (or of the last one, if the recv was already stopped).
    pub res: i32,
    pub intent: Intent,
    /// Bytes of an incomplete frame buffered.
    pub partial_bytes: usize,
    /// The first errno a send on this connection failed with.
    pub send_errno: Option<i32>,
}

/// Classifies a recv's final completion. Pure; see the module docs for the order of evidence.
///
/// A lookup in [`VERDICTS`], which is [`classify_by_rule`] evaluated at compile time for every
/// class of evidence: no unpredictable branch on a mix of closes (a test checks that both agree).
#[inline]
pub fn classify(input: FinalRecv) -> Verdict {
    let send = SEND_CLASS[send_index(input.send_errno)] as usize;
    let res = res_class(input.res, input.partial_bytes);
    VERDICTS[input.intent as usize][send][res]
}

/// The rule itself, readable: recorded intent first, then a send's error, then the recv's res.
pub const fn classify_by_rule(input: FinalRecv) -> Verdict {
    if let Some(cause) = input.intent.close_cause() {
        return Verdict::Close(cause);
    }
    if let Some(errno) = input.send_errno {
        return Verdict::Close(errno_cause(errno));
    }
    let paused = matches!(input.intent, Intent::Pause);
    match input.res {
        0 if input.partial_bytes > 0 => Verdict::Close(Cause::PeerFinMidFrame),
        0 => Verdict::Close(Cause::PeerFin),
        res if res > 0 && paused => Verdict::Paused,
        res if res > 0 => Verdict::Rearm(Rearm::Overflow),
        res => match res.saturating_neg() {
            libc::ENOBUFS | libc::ECANCELED if paused => Verdict::Paused,
            libc::ENOBUFS => Verdict::Rearm(Rearm::Enobufs),
            errno => Verdict::Close(errno_cause(errno)),
        },
    }
}

// Classes of evidence: within a class, `classify_by_rule` gives the same verdict.
const INTENTS: [Intent; 9] = [
    Intent::None,
    Intent::Pause,
    Intent::IdleTimeout,
    Intent::ReadTimeout,
    Intent::PeerClose,
    Intent::LocalClose,
    Intent::ProtocolError,
    Intent::SlowConsumer,
    Intent::Shutdown,
];
const SEND_NONE: usize = 0;
/// A representative errno per send class (index 0: no send error).
const SEND_SAMPLES: [i32; 5] = [
    0,
    libc::ECONNRESET,
    libc::ETIMEDOUT,
    libc::ECONNABORTED,
    libc::EBADF,
];
/// A representative (res, partial bytes) per res class.
const RES_SAMPLES: [(i32, usize); 9] = [
    (0, 0),
    (0, 1),
    (1, 0),
    (-libc::ENOBUFS, 0),
    (-libc::ECANCELED, 0),
    (-libc::ECONNRESET, 0),
    (-libc::ETIMEDOUT, 0),
    (-libc::ECONNABORTED, 0),
    (-libc::EBADF, 0),
];
const RES_FIN: usize = 0;
const RES_DATA: usize = 2;
const RES_OTHER_ERRNO: u8 = 8;
const SEND_OTHER_ERRNO: u8 = 4;
/// errno values above this share the class of an unexpected errno.
const ERRNO_INDEX_MAX: usize = 255;

/// The res class by (errno + 1) * 2 + (a partial frame is buffered): errno + 1 is 0 for
/// res > 0 and 1 for res == 0, the only res where a partial frame changes the class.
const RES_CLASS: [u8; (ERRNO_INDEX_MAX + 2) * 2] = {
    let mut by_errno = [RES_OTHER_ERRNO; ERRNO_INDEX_MAX + 2];
    by_errno[0] = RES_DATA as u8;
    by_errno[1] = RES_FIN as u8;
    by_errno[libc::ENOBUFS as usize + 1] = 3;
    by_errno[libc::ECANCELED as usize + 1] = 4;
    by_errno[libc::ECONNRESET as usize + 1] = 5;
    by_errno[libc::EPIPE as usize + 1] = 5;
    by_errno[libc::ETIMEDOUT as usize + 1] = 6;
    by_errno[libc::ECONNABORTED as usize + 1] = 7;
    let mut table = [0; (ERRNO_INDEX_MAX + 2) * 2];
    let mut i = 0;
    while i < by_errno.len() {
        table[2 * i] = by_errno[i];
        table[2 * i + 1] = by_errno[i];
        i += 1;
    }
    table[3] = RES_FIN as u8 + 1; // res == 0 with a partial frame
    table
};

/// Index into SEND_CLASS for no send error: past every errno index.
const SEND_INDEX_NONE: usize = ERRNO_INDEX_MAX + 2;

/// The send class by errno (0 and anything above ERRNO_INDEX_MAX: unexpected); the last entry
/// stands for no send error.
const SEND_CLASS: [u8; SEND_INDEX_NONE + 1] = {
    let mut table = [SEND_OTHER_ERRNO; SEND_INDEX_NONE + 1];
    table[SEND_INDEX_NONE] = SEND_NONE as u8;
    table[libc::ECONNRESET as usize] = 1;
    table[libc::EPIPE as usize] = 1;
    table[libc::ETIMEDOUT as usize] = 2;
    table[libc::ECONNABORTED as usize] = 3;
    table
};

/// Index into SEND_CLASS: the errno, capped just past ERRNO_INDEX_MAX (a negative one, impossible,
/// wraps to a large u32 and is capped too). Written to compile to selects, not branches.
fn send_index(send_errno: Option<i32>) -> usize {
    send_errno.map_or(SEND_INDEX_NONE, |errno| {
        (errno as u32).min(ERRNO_INDEX_MAX as u32 + 1) as usize
    })
}

fn res_class(res: i32, partial_bytes: usize) -> usize {
    // -res widened (i32::MIN has no i32 negation) and clamped to -1..=255, then shifted by one:
    // res > 0 lands on 0, res == 0 on 1, -errno on errno + 1; the low bit says "partial frame".
    let index = (-i64::from(res)).clamp(-1, ERRNO_INDEX_MAX as i64) + 1;
    RES_CLASS[(index as usize) << 1 | usize::from(partial_bytes > 0)] as usize
}

/// Every verdict, indexed by intent, send class and res class.
pub const VERDICTS: [[[Verdict; RES_SAMPLES.len()]; SEND_SAMPLES.len()]; INTENTS.len()] = {
    let mut table = [[[Verdict::Paused; RES_SAMPLES.len()]; SEND_SAMPLES.len()]; INTENTS.len()];
    let mut i = 0;
    while i < INTENTS.len() {
        let mut s = 0;
        while s < SEND_SAMPLES.len() {
            let mut r = 0;
            while r < RES_SAMPLES.len() {
                let (res, partial_bytes) = RES_SAMPLES[r];
                let send_errno = if s == SEND_NONE {
                    None
                } else {
                    Some(SEND_SAMPLES[s])
                };
                let input = FinalRecv {
                    res,
                    intent: INTENTS[i],
                    partial_bytes,
                    send_errno,
                };
                table[i][s][r] = classify_by_rule(input);
                r += 1;
            }
            s += 1;
        }
        i += 1;
    }
    table
};

/// The cause an error completion (recv or send) stands for.
pub const fn errno_cause(errno: i32) -> Cause {
    match errno {
        // After an RST the first send gets ECONNRESET, later ones EPIPE.
        libc::ECONNRESET | libc::EPIPE => Cause::PeerReset,
        libc::ETIMEDOUT => Cause::TcpTimeout,
        libc::ECONNABORTED => Cause::Aborted,
        // ECANCELED without a recorded intent (ring teardown) and anything unexpected.
        _ => Cause::Error,
    }
}

/// Where in the stream the connection was when it closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    Header,
    Body,
    Flushing,
}

impl Phase {
    pub const fn as_str(self) -> &'static str {
        match self {
            Phase::Idle => "idle",
            Phase::Header => "header",
            Phase::Body => "body",
            Phase::Flushing => "flushing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Cause::*;

    #[test]
    fn the_engines_decisions_are_the_causes_of_its_intents() {
        for cause in Cause::ALL {
            let of_an_intent = INTENTS.iter().any(|i| i.close_cause() == Some(cause));
            assert_eq!(cause.is_engine_decision(), of_an_intent, "{cause:?}");
        }
    }
    use Verdict::{Close, Paused};

    const RESET: i32 = -libc::ECONNRESET;
    const CANCELED: i32 = -libc::ECANCELED;
    const NOBUFS: i32 = -libc::ENOBUFS;

    #[test]
    fn table() {
        #[rustfmt::skip]
        let rows: &[(i32, Intent, usize, Option<i32>, Verdict)] = &[
            // res        intent                partial send errno              verdict
            (0,           Intent::None,          0, None,                    Close(PeerFin)),
            (0,           Intent::None,          5, None,                    Close(PeerFinMidFrame)),
            (0,           Intent::None,          1, None,                    Close(PeerFinMidFrame)),
            (0,           Intent::Pause,         0, None,                    Close(PeerFin)),
            (RESET,       Intent::None,          0, None,                    Close(PeerReset)),
            (RESET,       Intent::None,          9, None,                    Close(PeerReset)),
            // A send consumed the RST, so recv saw 0: still a reset.
            (0,           Intent::None,          0, Some(libc::ECONNRESET),  Close(PeerReset)),
            (0,           Intent::None,          0, Some(libc::EPIPE),       Close(PeerReset)),
            (CANCELED,    Intent::None,          0, Some(libc::ECONNRESET),  Close(PeerReset)),
            (CANCELED,    Intent::Pause,         0, Some(libc::ETIMEDOUT),   Close(TcpTimeout)),
            (0,           Intent::None,          0, Some(libc::EINVAL),      Close(Error)),
            // Recorded intents win over whatever the completion says.
            (CANCELED,    Intent::IdleTimeout,   0, None,                    Close(IdleTimeout)),
            (0,           Intent::IdleTimeout,   0, None,                    Close(IdleTimeout)),
            (CANCELED,    Intent::ReadTimeout,   2, None,                    Close(ReadTimeout)),
            (CANCELED,    Intent::LocalClose,    0, None,                    Close(LocalClose)),
            (CANCELED,    Intent::PeerClose,     0, None,                    Close(PeerClose)),
            (0,           Intent::PeerClose,     0, Some(libc::EPIPE),       Close(PeerClose)),
            (CANCELED,    Intent::SlowConsumer,  0, None,                    Close(SlowConsumer)),
            (-libc::ENOBUFS, Intent::SlowConsumer, 0, None,                  Close(SlowConsumer)),
            (RESET,       Intent::LocalClose,    0, Some(libc::EPIPE),       Close(LocalClose)),
            (CANCELED,    Intent::ProtocolError, 0, None,                    Close(ProtocolError)),
            (NOBUFS,      Intent::Shutdown,      0, None,                    Close(Shutdown)),
            (100,         Intent::Shutdown,      0, None,                    Close(Shutdown)),
            // Not closes.
            (NOBUFS,      Intent::None,          0, None,                    Verdict::Rearm(Rearm::Enobufs)),
            (NOBUFS,      Intent::None,          7, None,                    Verdict::Rearm(Rearm::Enobufs)),
            (512,         Intent::None,          0, None,                    Verdict::Rearm(Rearm::Overflow)),
            (NOBUFS,      Intent::Pause,         0, None,                    Paused),
            (CANCELED,    Intent::Pause,         0, None,                    Paused),
            (512,         Intent::Pause,         0, None,                    Paused),
            // Recv bundles: a final CQE may carry several buffers' data (res > one buffer) when the
            // CQ overflowed; it is still only a final CQE, read by the same rule.
            (49_152,      Intent::None,          0, None,                    Verdict::Rearm(Rearm::Overflow)),
            (49_152,      Intent::Pause,         0, None,                    Paused),
            (49_152,      Intent::LocalClose,    0, None,                    Close(LocalClose)),
            (0,           Intent::None,         40, None,                    Close(PeerFinMidFrame)),
            // Errors of the connection itself.
            (-libc::ETIMEDOUT,    Intent::None,  0, None,                    Close(TcpTimeout)),
            (-libc::ECONNABORTED, Intent::None,  0, None,                    Close(Aborted)),
            (CANCELED,    Intent::None,          0, None,                    Close(Error)),
            (-libc::EBADF,        Intent::None,  0, None,                    Close(Error)),
        ];
        for &(res, intent, partial_bytes, send_errno, expected) in rows {
            let input = FinalRecv {
                res,
                intent,
                partial_bytes,
                send_errno,
            };
            assert_eq!(classify(input), expected, "{input:?}");
        }
    }

    /// The table agrees with the rule on every intent, many errnos and res values.
    #[test]
    fn table_matches_the_rule() {
        let mut sends: Vec<Option<i32>> = vec![None];
        sends.extend((0..300).map(Some));
        sends.push(Some(i32::MAX));
        let mut results: Vec<i32> = (-300..300).collect();
        results.extend([i32::MIN, i32::MAX, 65536]);
        for intent in INTENTS {
            for &send_errno in &sends {
                for &res in &results {
                    for partial_bytes in [0, 1, 2, 3, 70_000] {
                        let input = FinalRecv {
                            res,
                            intent,
                            partial_bytes,
                            send_errno,
                        };
                        assert_eq!(classify(input), classify_by_rule(input), "{input:?}");
                    }
                }
            }
        }
        for (index, intent) in INTENTS.iter().enumerate() {
            assert_eq!(
                *intent as usize, index,
                "INTENTS follows the declaration order"
            );
        }
    }

    #[test]
    fn labels_are_unique_and_indexed() {
        for (i, cause) in Cause::ALL.iter().enumerate() {
            assert_eq!(cause.index(), i);
            assert_eq!(
                Cause::ALL
                    .iter()
                    .filter(|c| c.as_str() == cause.as_str())
                    .count(),
                1
            );
        }
    }
}
