//! The admin endpoint: `GET /metrics` in Prometheus text format, on its own thread.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use crate::metrics::{render, CoreMetrics};

/// A request head larger than this is refused.
const REQUEST_HEAD_MAX: usize = 8 * 1024;
/// A slow admin client cannot hold the thread longer than this.
const ADMIN_IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds the admin address and serves it on a background thread. Returns the bound address.
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<[CoreMetrics]>,
    log_drops: impl Fn() -> u64 + Send + 'static,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                match stream {
                    Ok(stream) => {
                        if let Err(error) = handle(stream, &metrics, &log_drops) {
                            tracing::debug!(%error, "admin request failed");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "admin accept failed"),
                }
            }
        })?;
    Ok(local)
}

fn handle(
    mut stream: TcpStream,
    metrics: &[CoreMetrics],
    log_drops: &dyn Fn() -> u64,
) -> io::Result<()> {
    stream.set_read_timeout(Some(ADMIN_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(ADMIN_IO_TIMEOUT))?;
    let head = read_head(&mut stream)?;
    let request_line = head.lines().next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (status, body) = match (parts.next(), parts.next()) {
        (Some("GET"), Some("/metrics")) => ("200 OK", render(metrics, log_drops())),
        (Some("GET"), Some(_)) => ("404 Not Found", "only /metrics is served\n".to_owned()),
        _ => (
            "405 Method Not Allowed",
            "only GET /metrics is served\n".to_owned(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())
}

fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > REQUEST_HEAD_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "request head too large",
            ));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}
