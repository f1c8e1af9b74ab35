//! Comparison peer on tokio's current_thread runtime (epoll): one task per connection.

use std::io;

use peer_common::{Next, Session, READ_LEN_MAX, REPLY_LEN_MAX};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() -> io::Result<()> {
    let addr = peer_common::listen_addr();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let listener = peer_common::listener(addr)?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        peer_common::announce(listener.local_addr()?)?;
        loop {
            let (stream, _) = listener.accept().await?;
            tokio::spawn(serve(stream));
        }
    })
}

async fn serve(mut stream: TcpStream) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let mut session = Session::default();
    let mut input = vec![0; READ_LEN_MAX];
    let mut replies = Vec::with_capacity(REPLY_LEN_MAX);
    loop {
        let read_len = match stream.read(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(read_len) => read_len,
        };
        let next = session.on_read(&input[..read_len], &mut replies);
        if !replies.is_empty() && stream.write_all(&replies).await.is_err() {
            return;
        }
        replies.clear();
        if next == Next::Close {
            return;
        }
    }
}
