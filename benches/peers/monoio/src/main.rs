//! Comparison peer on monoio's io_uring driver: owned-buffer reads and writes, one task per
//! connection.

use std::io;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};
use monoio::{IoUringDriver, RuntimeBuilder};
use peer_common::{Next, Session, READ_LEN_MAX, REPLY_LEN_MAX};

fn main() -> io::Result<()> {
    let addr = peer_common::listen_addr();
    let mut runtime = RuntimeBuilder::<IoUringDriver>::new().build()?;
    runtime.block_on(async {
        let listener = TcpListener::from_std(peer_common::listener(addr)?)?;
        peer_common::announce(listener.local_addr()?)?;
        loop {
            let (stream, _) = listener.accept().await?;
            monoio::spawn(serve(stream));
        }
    })
}

async fn serve(mut stream: TcpStream) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut session = Session::default();
    let mut input = Vec::with_capacity(READ_LEN_MAX);
    let mut replies = Vec::with_capacity(REPLY_LEN_MAX);
    loop {
        input.clear();
        let (result, buf) = stream.read(input).await;
        input = buf;
        match result {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let next = session.on_read(&input, &mut replies);
        if !replies.is_empty() {
            let (result, buf) = stream.write_all(replies).await;
            replies = buf;
            if result.is_err() {
                return;
            }
            replies.clear();
        }
        if next == Next::Close {
            return;
        }
    }
}
