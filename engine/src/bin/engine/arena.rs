//! HttpArena's H1 workload (`GET /pipeline`, `GET`/`POST /baseline11`; see
//! `protocol::http::arena`) as one service on the engine's HTTP handler API. It writes each
//! response itself, in one copy into the output ([`Exchange::write`]).

use engine::http::{Answer, Exchange, Handler, NoUpgrade};
use protocol::http::{self, Request};

#[derive(Clone, Copy, Debug, Default)]
pub struct Arena;

impl Handler for Arena {
    type CoreState = ();
    type Upgraded = NoUpgrade;
    type Message = ();

    fn core_state(&self, _core: u16) {}

    fn request(&self, request: &Request<'_>, exchange: &mut Exchange<'_, '_, Self>) -> Answer {
        let date = *exchange.date();
        let mut reply = None;
        exchange.write(|buf| reply = Some(http::arena::respond(request, &date, buf)));
        match reply {
            Some(reply) if reply.rejected() => Answer::Reject,
            Some(reply) if reply.close => Answer::Close,
            _ => Answer::KeepAlive,
        }
    }
}
