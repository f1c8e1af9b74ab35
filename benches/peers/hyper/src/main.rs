//! HttpArena's H1 endpoints on hyper 1.x (`server::conn::http1`) over tokio's current_thread
//! runtime: the server a Rust user would write. One task per connection, pipelined replies
//! flushed together (`pipeline_flush`); hyper adds `Date` and `Content-Length`.

use std::convert::Infallible;
use std::io;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use peer_common::arena::{self, Endpoint, Method};
use tokio::net::{TcpListener, TcpStream};

/// The largest request body read; a longer one is a 413, as for the epoll peer.
const BODY_MAX: usize = 1024 * 1024;

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

async fn serve(stream: TcpStream) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    // An error (reset, malformed request) ends only this connection. With `pipeline_flush`,
    // hyper's automatic 400 and the replies before it are not flushed when the bad bytes stay
    // in its read buffer (README.md, "peer-hyper drops replies").
    let _ = http1::Builder::new()
        .pipeline_flush(true)
        .serve_connection(TokioIo::new(stream), service_fn(answer))
        .await;
}

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = Method::from_token(request.method().as_str().as_bytes());
    let endpoint = Endpoint::route(method, request.uri().path().as_bytes());
    let query = request.uri().query().unwrap_or("").as_bytes();
    let response = match endpoint {
        Endpoint::Pipeline => text(Bytes::from_static(arena::PIPELINE_BODY)),
        Endpoint::BaselineGet => sum(arena::baseline_sum(query, None)),
        Endpoint::BaselinePost => {
            let query = Bytes::copy_from_slice(query);
            match Limited::new(request.into_body(), BODY_MAX).collect().await {
                Ok(body) => sum(arena::baseline_sum(&query, Some(&body.to_bytes()))),
                Err(error) if error.is::<LengthLimitError>() => {
                    status(StatusCode::PAYLOAD_TOO_LARGE)
                }
                Err(_) => status(StatusCode::BAD_REQUEST),
            }
        }
        Endpoint::MethodNotAllowed { allow } => {
            let mut response = status(StatusCode::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            response
        }
        Endpoint::NotFound => status(StatusCode::NOT_FOUND),
    };
    Ok(response)
}

/// `200 text/plain` with the sum as its body, or a 400 when there is no sum.
fn sum(sum: Option<i64>) -> Response<Full<Bytes>> {
    match sum {
        Some(sum) => text(Bytes::copy_from_slice(
            itoa::Buffer::new().format(sum).as_bytes(),
        )),
        None => status(StatusCode::BAD_REQUEST),
    }
}

fn text(body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// An empty response with this status (hyper still writes `content-length: 0`).
fn status(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
