//! The core's multishot accept, and what a new connection gets: a session, a recv, a timer.

use std::io;
use std::os::fd::OwnedFd;

use super::Core;
use crate::conn::Conn;
use crate::protocol_api::Protocol;
use crate::sys::{socket, Completion};
use crate::token::{Token, GENERATION_MASK};

/// After EMFILE/ENFILE/ENOMEM on accept, wait this long before accepting again.
const ACCEPT_RETRY_DELAY_US: u64 = 10_000;

impl<P: Protocol> Core<P> {
    pub(super) fn arm_accept(&mut self) -> io::Result<()> {
        if let Some(listener) = &self.listener {
            self.ring.accept_multi(listener, Token::GLOBAL.encode())?;
            self.accept_armed = true;
            self.accept_retry_us = None;
        }
        Ok(())
    }

    pub(super) fn on_accept(&mut self, completion: &mut Completion) -> io::Result<()> {
        if !completion.more() {
            self.accept_armed = false;
        }
        match completion.take_accepted() {
            Some(fd) => {
                let full = self.conns.len() >= self.settings.max_connections as usize;
                if self.drain.is_some() || full {
                    self.metrics().rejected.add(1);
                    drop(fd);
                } else {
                    self.open(fd)?;
                }
            }
            None => self.accept_failed(-completion.res(), completion.more()),
        }
        if !self.accept_armed && self.accept_retry_us.is_none() && self.drain.is_none() {
            self.arm_accept()?;
        }
        Ok(())
    }

    fn accept_failed(&mut self, errno: i32, more: bool) {
        match errno {
            libc::ECANCELED if self.drain.is_some() => {}
            libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS => {
                self.metrics().count_accept_error(errno);
                tracing::debug!(
                    core = self.core,
                    errno = socket::errno_name(errno),
                    "accept failed; retrying shortly"
                );
                if !more {
                    self.accept_retry_us = Some(self.now_us + ACCEPT_RETRY_DELAY_US);
                }
            }
            _ => {
                self.metrics().count_accept_error(errno);
                tracing::warn!(
                    core = self.core,
                    errno = socket::errno_name(errno),
                    "accept failed"
                );
            }
        }
    }

    fn open(&mut self, fd: OwnedFd) -> io::Result<()> {
        let peer = socket::peer_addr(&fd);
        let generation = self.next_generation;
        self.next_generation = (generation + 1) & GENERATION_MASK;
        let id = self.next_conn_id;
        self.next_conn_id += 1;
        let conn = Conn::new(fd, generation, id, peer, self.now_us);
        let slot = self.conns.insert(conn);
        self.call_open(slot, peer);
        self.metrics().accepted.add(1);
        self.metrics().open.add(1);
        self.arm_recv(slot)?;
        self.schedule(slot);
        Ok(())
    }
}
