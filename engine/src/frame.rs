//! The engine's own length-prefixed frame protocol (ECHO, CLOSE, HELLO; see the `protocol`
//! crate) as one [`Protocol`] among others: nothing in the core knows about frames.

use std::net::SocketAddr;

use protocol::{encode_frame, encoded_len, next_frame, Kind, Next, HEADER_LEN, HELLO_LEN};

use crate::protocol_api::{Context, MessagePhase, Protocol, Step};

/// The payload bound of one frame: default; the wire format caps it at `u16::MAX`.
pub const MAX_FRAME_DEFAULT: usize = 16 * 1024;

/// ECHO replies with the same payload, CLOSE closes after the replies before it
/// (`peer_close`), HELLO sets the record's tag; any other kind, a frame longer than
/// `max_frame`, HELLO not 8 bytes long or CLOSE not empty is a `protocol_error`, found from the
/// 3-byte header before the payload arrives.
#[derive(Clone, Copy, Debug)]
pub struct FrameProtocol {
    max_frame: usize,
}

/// Why a frame protocol cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxFrameError {
    pub max_frame: usize,
}

impl std::fmt::Display for MaxFrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "max frame {} must be between {HELLO_LEN} and {}",
            self.max_frame,
            protocol::PAYLOAD_LEN_MAX
        )
    }
}

impl std::error::Error for MaxFrameError {}

impl FrameProtocol {
    /// Frames of up to `max_frame` payload bytes (at least a HELLO's 8, at most 65535).
    pub fn new(max_frame: usize) -> Result<FrameProtocol, MaxFrameError> {
        if !(HELLO_LEN..=protocol::PAYLOAD_LEN_MAX).contains(&max_frame) {
            return Err(MaxFrameError { max_frame });
        }
        Ok(FrameProtocol { max_frame })
    }

    pub fn max_frame(&self) -> usize {
        self.max_frame
    }
}

impl Default for FrameProtocol {
    fn default() -> FrameProtocol {
        FrameProtocol {
            max_frame: MAX_FRAME_DEFAULT,
        }
    }
}

/// One connection of the frame protocol: its HELLO tag.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameSession {
    tag: Option<u64>,
}

impl Protocol for FrameProtocol {
    type Session = FrameSession;
    type CoreState = ();
    type Message = ();

    fn core_state(&self, _core: u16) {}

    fn open(&self, _peer: Option<SocketAddr>, _cx: &mut Context<'_, Self>) -> FrameSession {
        FrameSession::default()
    }

    fn on_input(
        &self,
        session: &mut FrameSession,
        input: &[u8],
        cx: &mut Context<'_, Self>,
    ) -> Step {
        let (mut at, mut messages) = (0, 0);
        loop {
            match next_frame(&input[at..], self.max_frame) {
                Ok(Next::Frame { frame, len }) => {
                    at += len;
                    messages += 1;
                    match frame.kind {
                        Kind::Echo => cx
                            .output()
                            .push_with(|buf| encode_frame(Kind::Echo, frame.payload, buf)),
                        Kind::Hello => session.tag = Some(frame.hello_tag()),
                        Kind::Close => return Step::peer_close(at, messages),
                    }
                }
                Ok(Next::Incomplete { .. }) => return Step::more(at, messages),
                Err(_) => return Step::violation(at, messages),
            }
        }
    }

    fn partial_phase(&self, _session: &FrameSession, tail: &[u8]) -> MessagePhase {
        if tail.len() >= HEADER_LEN {
            MessagePhase::Body
        } else {
            MessagePhase::Header
        }
    }

    fn tag(&self, session: &FrameSession) -> Option<u64> {
        session.tag
    }

    fn message_max(&self) -> usize {
        encoded_len(self.max_frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::testing::Harness;
    use crate::protocol_api::Verdict;

    fn run(input: &[u8]) -> (Step, Vec<u8>, FrameSession) {
        let proto = FrameProtocol::new(16).unwrap();
        let mut core = Harness::new(&proto);
        let mut session = proto.open(None, &mut core.cx());
        let step = proto.on_input(&mut session, input, &mut core.cx());
        (step, core.written(), session)
    }

    fn frames(list: &[(Kind, &[u8])]) -> Vec<u8> {
        let mut stream = Vec::new();
        for (kind, payload) in list {
            encode_frame(*kind, payload, &mut stream);
        }
        stream
    }

    #[test]
    fn echoes_tags_and_keeps_the_incomplete_rest() {
        let mut input = frames(&[
            (Kind::Hello, &7u64.to_be_bytes()),
            (Kind::Echo, b"ab"),
            (Kind::Echo, b"c"),
        ]);
        let whole = input.len();
        input.extend_from_slice(&[0, 5, 1, b'x']);
        let (step, replies, session) = run(&input);
        assert_eq!(step, Step::more(whole, 3));
        assert_eq!(replies, frames(&[(Kind::Echo, b"ab"), (Kind::Echo, b"c")]));
        assert_eq!(session.tag, Some(7));
    }

    #[test]
    fn close_stops_after_the_replies_before_it() {
        let input = frames(&[(Kind::Echo, b"a"), (Kind::Close, b""), (Kind::Echo, b"b")]);
        let (step, replies, _) = run(&input);
        assert_eq!(step, Step::peer_close(7, 2));
        assert_eq!(replies, frames(&[(Kind::Echo, b"a")]));
    }

    #[test]
    fn a_bad_header_is_a_violation_before_its_payload() {
        for bad in [&[0, 0, 9][..], &[0, 17, 1], &[0, 7, 3], &[0, 1, 2]] {
            let (step, replies, _) = run(bad);
            assert_eq!(step.verdict, Verdict::Violation, "{bad:?}");
            assert!(replies.is_empty());
        }
        let proto = FrameProtocol::default();
        assert_eq!(
            proto.partial_phase(&FrameSession::default(), &[0, 1]),
            MessagePhase::Header
        );
        assert_eq!(
            proto.partial_phase(&FrameSession::default(), &[0, 1, 1]),
            MessagePhase::Body
        );
        assert!(FrameProtocol::new(7).is_err() && FrameProtocol::new(65536).is_err());
    }
}
