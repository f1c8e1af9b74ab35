//! A chat server on tokio, one `tokio::sync::broadcast` channel per room: the fan-out peer for
//! `benches/scripts/chat_fanout.py`.
//!
//! Newline-delimited protocol (a `\r` before the `\n` is ignored):
//!
//! | client sends | effect |
//! |---|---|
//! | `JOIN <room> <nick>` | `OK`; every member, the sender included, gets `JOINED <room> <nick>` |
//! | `SAY <room> <text...>` | every member, the sender included, gets `MSG <room> <nick> <text...>`; not a member: `ERR not in room` |
//! | `LEAVE <room>` | `OK`; the other members get `LEFT <room> <nick> leave` (not a member: `ERR not in room`) |
//! | `QUIT` | `BYE`, then close |
//! | other | `ERR unknown command` |
//!
//! When a connection ends, the other members of each of its rooms get `LEFT <room> <nick>
//! closed`. Rooms and nicks are 1..=32 bytes of `[A-Za-z0-9_-]` (else `ERR bad name`); a line over
//! 4 KiB gets `ERR line too long` and a close. Limits beyond the table: 64 rooms per connection
//! (`ERR too many rooms`); a member more than `--max-queued` lines behind its room, or whose
//! write stalls for 5 s, is closed as a slow consumer.
//!
//! `peer-chat-tokio [--listen 127.0.0.1:7300] [--workers 1] [--max-queued 1024]` prints
//! `ready listen=ADDR` once it listens, like the other peers.

mod command;
mod conn;
mod rooms;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tokio::net::TcpListener;

use crate::rooms::Rooms;

/// How long accepting pauses after an error (out of file descriptors, say).
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// A chat server on tokio: one broadcast channel per room (see the crate docs for the protocol).
#[derive(Debug, Parser)]
#[command(name = "peer-chat-tokio")]
struct Flags {
    /// Address to listen on (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:7300")]
    listen: SocketAddr,
    /// Worker threads of tokio's multi-thread runtime (benchmarks pin the server to one CPU).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Capacity of each room's broadcast channel, in messages: a member further behind is a
    /// slow consumer and is closed.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1 << 20))]
    max_queued: u32,
}

fn main() -> io::Result<()> {
    let flags = Flags::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(flags.workers.into())
        .enable_io()
        .enable_time()
        .build()?;
    let rooms = Arc::new(Rooms::new(flags.max_queued as usize));
    runtime.block_on(async move {
        let listener = peer_common::listener(flags.listen)?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        peer_common::announce(listener.local_addr()?)?;
        // On a worker, not on this thread: every task then runs on the `--workers` threads.
        tokio::spawn(accept(listener, rooms))
            .await
            .expect("the accept loop does not panic")
    })
}

/// Accepts forever: one task per connection.
async fn accept(listener: TcpListener, rooms: Arc<Rooms>) -> io::Result<()> {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => drop(tokio::spawn(conn::serve(stream, Arc::clone(&rooms)))),
            Err(error) => {
                eprintln!("accept: {error}");
                tokio::time::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}
