//! HttpArena's H1 endpoints on a hand-written, single-threaded, level-triggered epoll loop: what
//! the raw engines at the top of HttpArena's board do (one read buffer per connection, every
//! pipelined request of a read answered, one write per read, templates with a `Date` slot), but
//! bounded and correct: splits anywhere, HTTP/1.0, `Connection: close`, 400 / 404 / 405 / 413 /
//! 431, partial writes.
//!
//! Code map: `http` parses a request (no I/O), `reply` answers a buffer of them (no I/O),
//! `conn` is one connection's state machine, `server` the epoll loop and the connection slab,
//! `sys` every libc call.

mod conn;
mod http;
mod reply;
mod server;
// The one module with `unsafe`: each libc call, with its `SAFETY` comment.
#[allow(unsafe_code)]
mod sys;

use std::io;

fn main() -> io::Result<()> {
    let addr = peer_common::listen_addr();
    let listener = peer_common::listener(addr)?;
    listener.set_nonblocking(true)?;
    let mut server = server::Server::new(listener)?;
    peer_common::announce(server.local_addr()?)?;
    server.run()
}
