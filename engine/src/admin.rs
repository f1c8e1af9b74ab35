//! The admin endpoint: `GET /metrics` (also `HEAD`, and `/metrics?...`) in Prometheus text
//! format, served by the engine's own HTTP protocol on a core of its own. Its connections get the
//! engine's timeouts, limits and close causes (counted apart, as `engine_admin_*`), and one slow
//! or idle client cannot delay another's scrape.

use std::sync::Arc;

use protocol::http::{write_response, ConnectionHeader, HttpDate, Request, Response};

use crate::config::LogDrops;
use crate::http::{Answer, Handler};
use crate::metrics::{render, CoreMetrics};

/// The admin core's resources: a few scrapers at a time, small receive buffers.
pub const ADMIN_CONNECTIONS_MAX: u32 = 1024;
pub const ADMIN_RING_ENTRIES: u32 = 256;
pub const ADMIN_BUFFERS: u16 = 64;
pub const ADMIN_BUFFER_SIZE: u32 = 4096;

const METRICS_PATH: &str = "/metrics";
const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// Answers `/metrics` with the sum of every core's counters.
pub struct Metrics {
    /// The serving cores' counters.
    pub cores: Arc<[CoreMetrics]>,
    /// The admin core's own.
    pub admin: Arc<[CoreMetrics]>,
    pub log_drops: Option<LogDrops>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("cores", &self.cores.len())
            .finish_non_exhaustive()
    }
}

impl Handler for Metrics {
    fn respond(&self, request: &Request<'_>, date: &HttpDate, out: &mut Vec<u8>) -> Answer {
        let (status, allow, text) = match (request.path, request.method) {
            (METRICS_PATH, "GET" | "HEAD") => {
                let dropped = self.log_drops.as_ref().map_or(0, |count| count());
                (200, None, render(&self.cores, &self.admin, dropped))
            }
            (METRICS_PATH, _) => (405, Some("GET, HEAD"), "only GET /metrics\n".to_owned()),
            _ => (404, None, "only /metrics is served here\n".to_owned()),
        };
        let response = Response {
            status,
            content_type: CONTENT_TYPE,
            body: text.as_bytes(),
            allow,
            head_only: request.method == "HEAD",
            connection: ConnectionHeader::new(request.version, request.keep_alive),
        };
        write_response(out, date, &response);
        Answer::KeepAlive // `Http` closes when the request did not ask to keep the connection
    }
}
