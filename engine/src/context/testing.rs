//! A core of one connection for the protocols' unit tests: a [`Context`] without a ring.

use std::sync::Arc;

use slab::Slab;

use super::{Context, Own};
use crate::conn::{Conn, Pool};
use crate::core::Agenda;
use crate::mesh::{self, Mesh, Waker};
use crate::protocol_api::Protocol;
use crate::sys::socket;

pub(crate) struct Harness<P: Protocol> {
    pub state: P::CoreState,
    pub now_us: u64,
    pub draining: bool,
    conns: Slab<Conn>,
    pool: Pool,
    agenda: Agenda,
    mesh: Mesh<P::Message>,
}

impl<P: Protocol> Harness<P> {
    pub fn new(proto: &P) -> Harness<P> {
        let fd = socket::eventfd().expect("an eventfd stands in for the socket");
        let mut conns = Slab::new();
        conns.insert(Conn::new(fd, 0, 0, None, 0));
        let waker = Waker::new(Arc::new(socket::eventfd().expect("eventfd")));
        Harness {
            state: proto.core_state(0),
            now_us: 0,
            draining: false,
            conns,
            pool: Pool::default(),
            agenda: Agenda::default(),
            mesh: mesh::build(Arc::new([waker])).pop().expect("one core"),
        }
    }

    /// A context for a callback about the one connection, with its output open.
    pub fn cx(&mut self) -> Context<'_, P> {
        Context {
            core: 0,
            now_us: self.now_us,
            draining: self.draining,
            own: Some(Own {
                slot: 0,
                id: 0,
                output: true,
            }),
            max_queued_bytes: crate::QUEUED_BYTES_DEFAULT,
            idle_timeout_us: crate::IDLE_TIMEOUT_DEFAULT.as_micros() as u64,
            state: &mut self.state,
            conns: &mut self.conns,
            pool: &mut self.pool,
            agenda: &mut self.agenda,
            mesh: &mut self.mesh,
        }
    }

    /// Takes what was written to the connection so far.
    pub fn written(&mut self) -> Vec<u8> {
        self.conns[0].out.take_for_tests()
    }
}
