//! What every comparison peer shares: one read in, one batch of replies out, plus flags.
//!
//! The peers differ only in how they move bytes; the protocol logic is this one function, built
//! on the engine's own `protocol::Decoder`, so every peer answers byte for byte like the engine.
//! The HTTP peers share [`arena`] (HttpArena's endpoints), the listener and the ready line.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener};

use protocol::{encode_frame, Decoder, Kind, Progress};
use socket2::{Domain, Protocol, Socket, Type};

pub mod arena;

/// The largest ECHO payload a peer accepts, as the engine's `--max-frame` default.
pub const FRAME_PAYLOAD_MAX: usize = 16 * 1024;
/// The engine's listen backlog (`engine::sys::socket::LISTEN_BACKLOG`): the runtimes' own
/// defaults (tokio and monoio 1024, compio 128) overflow under connection churn.
pub const LISTEN_BACKLOG: i32 = 4096;
/// Bytes asked for per read: several 4 KiB frames at depth 4 from one read.
pub const READ_LEN_MAX: usize = 64 * 1024;
/// Reply bytes one read can produce: an ECHO reply is as long as its request, so at most the
/// read plus the start of a frame held back from earlier reads.
pub const REPLY_LEN_MAX: usize = READ_LEN_MAX + protocol::HEADER_LEN + FRAME_PAYLOAD_MAX;

const _: () = assert!(READ_LEN_MAX >= protocol::HEADER_LEN + FRAME_PAYLOAD_MAX);

/// What the connection does after the replies of a read are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Read again.
    Read,
    /// Close: CLOSE was received, or the stream broke the protocol.
    Close,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    decoder: Decoder,
}

impl Default for Session {
    fn default() -> Session {
        Session {
            decoder: Decoder::new(FRAME_PAYLOAD_MAX),
        }
    }
}

impl Session {
    /// Decodes one read (`input` is never empty: EOF is the caller's close) and appends every
    /// reply it completes to `replies`, to be written in one write. Replies decoded before a
    /// CLOSE or a protocol error are still written; then the connection closes.
    pub fn on_read(&mut self, input: &[u8], replies: &mut Vec<u8>) -> Next {
        assert!(!input.is_empty(), "EOF is not a read");
        let result = self.decoder.feed(input, |frame| match frame.kind {
            Kind::Echo => {
                encode_frame(Kind::Echo, frame.payload, replies);
                Progress::Continue
            }
            Kind::Hello => Progress::Continue,
            Kind::Close => Progress::Stop,
        });
        assert!(
            replies.len() <= REPLY_LEN_MAX,
            "{} reply bytes from one read",
            replies.len()
        );
        match result {
            Ok(Progress::Continue) => Next::Read,
            Ok(Progress::Stop) | Err(_) => Next::Close,
        }
    }
}

/// The listen address from `--listen ADDR` (port 0 picks a free port).
pub fn listen_addr() -> SocketAddr {
    let args: Vec<String> = std::env::args().collect();
    let usage = format!("usage: {} --listen 127.0.0.1:PORT", args[0]);
    match args.as_slice() {
        [_, flag, addr] if flag == "--listen" => addr.parse().unwrap_or_else(|error| {
            eprintln!("--listen {addr}: {error}\n{usage}");
            std::process::exit(2)
        }),
        _ => {
            eprintln!("{usage}");
            std::process::exit(2)
        }
    }
}

/// A blocking listener bound like the engine's (SO_REUSEADDR, [`LISTEN_BACKLOG`]), for the
/// runtime's `from_std`. Blocking: io_uring READ on an O_NONBLOCK socket returns EAGAIN to the
/// caller instead of waiting, so only an epoll runtime should switch it to non-blocking.
pub fn listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Prints `ready listen=ADDR` once the listener is bound, as the engine prints its ready line.
pub fn announce(addr: SocketAddr) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "ready listen={addr}")?;
    stdout.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = (payload.len() as u16).to_be_bytes().to_vec();
        bytes.push(kind);
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn echoes_pipelined_frames_split_anywhere() {
        let mut stream = frame(0x03, &7u64.to_be_bytes());
        let echoes = [
            frame(0x01, b"abc"),
            frame(0x01, b""),
            frame(0x01, &[9; 300]),
        ];
        for echo in &echoes {
            stream.extend_from_slice(echo);
        }
        let expected: Vec<u8> = echoes.concat();
        for cut in 1..stream.len() {
            let mut session = Session::default();
            let mut replies = Vec::new();
            assert_eq!(session.on_read(&stream[..cut], &mut replies), Next::Read);
            assert_eq!(session.on_read(&stream[cut..], &mut replies), Next::Read);
            assert_eq!(replies, expected, "cut at {cut}");
        }
    }

    #[test]
    fn close_flushes_earlier_replies_and_ignores_the_rest() {
        let stream = [frame(0x01, b"x"), frame(0x02, b""), frame(0x01, b"y")].concat();
        let mut replies = Vec::new();
        assert_eq!(
            Session::default().on_read(&stream, &mut replies),
            Next::Close
        );
        assert_eq!(replies, frame(0x01, b"x"));
    }

    #[test]
    fn protocol_errors_close() {
        let too_long = frame(0x01, &vec![0; FRAME_PAYLOAD_MAX + 1]);
        let bad = [
            frame(0x09, b""),
            frame(0x03, b"short"),
            too_long[..3].to_vec(),
        ];
        for input in bad {
            let mut replies = Vec::new();
            assert_eq!(
                Session::default().on_read(&input, &mut replies),
                Next::Close
            );
            assert!(replies.is_empty());
        }
    }
}
