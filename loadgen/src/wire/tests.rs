//! The HTTP requests against the engine's own parser and HttpArena handler (`protocol::http`,
//! no I/O): each is one whole request, its answer is what the request expects, and a wrong
//! answer is not; the close modes' last bytes are what the engine needs to close as predicted.

use std::time::SystemTime;

use protocol::http::{arena, HttpDate, Limits, Parse, Parser, Phase};

use super::http::{ExpectBody, BAD_REQUEST, PARTIAL_BODY, PARTIAL_HEAD};
use super::*;

/// Parses one whole request from `bytes` with the engine's parser, answers it with the arena
/// handler, and returns the response bytes.
fn engine_answer(bytes: &[u8]) -> (Vec<u8>, Option<u64>) {
    let mut parser = Parser::new(Limits::default());
    let Parse::Complete { request, len } = parser.parse(bytes) else {
        panic!(
            "not one whole request: {:?}",
            String::from_utf8_lossy(bytes)
        );
    };
    assert_eq!(len, bytes.len(), "exactly one request");
    let mut out = Vec::new();
    arena::respond(&request, &HttpDate::new(SystemTime::now()), &mut out);
    (out, request.tag)
}

fn reply_of(bytes: &[u8], check: impl FnOnce(&Reply<'_>)) {
    let mut decoder = Wire::Http {
        workload: HttpWorkload::Baseline,
    }
    .decoder();
    let mut replies = 0;
    let mut check = Some(check);
    decoder
        .feed(bytes, |reply| {
            replies += 1;
            (check.take().expect("one reply"))(&reply);
        })
        .unwrap();
    assert_eq!(replies, 1);
}

#[test]
fn every_request_gets_the_answer_it_expects_from_the_engine() {
    for workload in [HttpWorkload::Pipeline, HttpWorkload::Baseline] {
        let wire = Wire::Http { workload };
        for seq in 0..12 {
            let spec = RequestSpec {
                tag: 0x1234_5678,
                seq,
                close: seq == 11,
            };
            let mut bytes = Vec::new();
            let expect = wire.request(spec, &mut bytes);
            let (answer, tag) = engine_answer(&bytes);
            assert_eq!(
                tag,
                (seq == 0).then_some(0x1234_5678),
                "the tag on the first only"
            );
            reply_of(&answer, |reply| {
                assert!(expect.matches(spec.tag, seq, reply), "{workload:?} {seq}");
                assert!(!expect.matches(
                    spec.tag,
                    seq,
                    &Reply::Frame(protocol::Frame {
                        kind: protocol::Kind::Echo,
                        payload: b"",
                    })
                ));
            });
        }
    }
}

#[test]
fn a_wrong_or_cached_answer_is_not_the_expected_one() {
    let wire = Wire::Http {
        workload: HttpWorkload::Baseline,
    };
    let spec = |seq| RequestSpec {
        tag: 7,
        seq,
        close: false,
    };
    let mut first = Vec::new();
    let expect = wire.request(spec(0), &mut first);
    let (answer, _) = engine_answer(&first);
    let mut again = Vec::new();
    let next = wire.request(spec(3), &mut again);
    assert_ne!(first, again, "same kind of request, other operands");
    reply_of(&answer, |reply| {
        assert!(!next.matches(7, 3, reply), "the answer to another request");
        let Reply::Http(reply) = *reply else {
            unreachable!()
        };
        let Expect::Http(expect) = expect else {
            unreachable!()
        };
        assert!(expect.matches(&reply));
        for wrong in [
            HttpReply {
                status: 201,
                ..reply
            },
            HttpReply {
                content_type: Some(b"text/html"),
                ..reply
            },
            HttpReply {
                content_type: None,
                ..reply
            },
            HttpReply {
                closes: true,
                ..reply
            },
            HttpReply {
                body: b"0",
                ..reply
            },
        ] {
            assert!(!expect.matches(&wrong), "{wrong:?}");
        }
        let ExpectBody::Sum(sum) = expect.body else {
            unreachable!()
        };
        let padded = format!("0{sum}");
        let padded = HttpReply {
            body: padded.as_bytes(),
            ..reply
        };
        assert!(!expect.matches(&padded), "exactly the sum's digits");
    });
}

#[test]
fn the_close_modes_last_bytes_lead_where_they_should() {
    let wire = Wire::Http {
        workload: HttpWorkload::Pipeline,
    };
    // The lengths README.md states.
    assert_eq!((PARTIAL_HEAD.len(), PARTIAL_BODY.len()), (49, 75));
    let mut parser = Parser::new(Limits::default());
    for (mode, turn, bytes, phase) in [
        (CloseMode::MidFrame, 0, PARTIAL_HEAD, Phase::Head),
        (CloseMode::MidFrame, 1, PARTIAL_BODY, Phase::Body),
        (CloseMode::Stall, 2, PARTIAL_HEAD, Phase::Head),
        (CloseMode::Stall, 3, PARTIAL_BODY, Phase::Body),
    ] {
        let mut out = Vec::new();
        let ending = wire.ending(mode, turn, &mut out);
        assert_eq!(out, bytes);
        parser.reset();
        assert_eq!(parser.parse(&out), Parse::Partial(phase), "{mode} {turn}");
        let record = ending
            .record
            .expect("a partial request determines the record");
        assert_eq!(record.partial_bytes, out.len() as u64);
        let named = if phase == Phase::Head {
            "header"
        } else {
            "body"
        };
        assert_eq!(record.phase.as_str(), named);
    }
    let mut out = Vec::new();
    let ending = wire.ending(CloseMode::BadFrame, 0, &mut out);
    assert_eq!(out, BAD_REQUEST);
    parser.reset();
    assert!(matches!(parser.parse(&out), Parse::Invalid(error) if error.status() == 400));
    let answer = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\
                   Connection: close\r\n\r\nbad\n";
    let reply = ending.reply.expect("a malformed request is answered");
    reply_of(answer, |got| assert!(reply.matches(0, 0, got)));
    for mode in [
        CloseMode::HalfClose,
        CloseMode::CloseRequest,
        CloseMode::Idle,
    ] {
        let mut out = Vec::new();
        assert_eq!(wire.ending(mode, 0, &mut out), Ending::default(), "{mode}");
        assert!(out.is_empty(), "{mode}");
    }
    for (mode, phase) in [
        (CloseMode::Fin, Some(RecordPhase::Idle)),
        (CloseMode::Hold, Some(RecordPhase::Idle)),
        (CloseMode::HalfClose, None),
        (CloseMode::MidFrame, None),
    ] {
        assert_eq!(wire.record_expect(mode).map(|r| r.phase), phase, "{mode}");
    }
    let frame = Wire::Frame { payloads: vec![1] };
    assert_eq!(frame.record_expect(CloseMode::Fin), None);
}
