//! The admin endpoint: `GET /metrics` (also `HEAD`, and `/metrics?...`) in Prometheus text
//! format, served by the engine's own HTTP protocol on a core of its own. Its connections get the
//! engine's timeouts, limits and close causes (counted apart, as `engine_admin_*`), and one slow
//! or idle client cannot delay another's scrape.

use std::sync::Arc;

use protocol::http::Request;

use crate::config::LogDrops;
use crate::http::{Answer, Exchange, Handler, NoUpgrade};
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
    type CoreState = ();
    type Upgraded = NoUpgrade;
    type Message = ();

    fn core_state(&self, _core: u16) {}

    fn request(&self, request: &Request<'_>, exchange: &mut Exchange<'_, '_, Self>) -> Answer {
        // Only the metrics are in Prometheus' format; the errors are plain text.
        let answered = match (request.path, request.method) {
            (METRICS_PATH, "GET" | "HEAD") => {
                let dropped = self.log_drops.as_ref().map_or(0, |count| count());
                let text = render(&self.cores, &self.admin, dropped);
                exchange.respond(200, &[("Content-Type", CONTENT_TYPE)], text.as_bytes())
            }
            (METRICS_PATH, _) => exchange.respond(
                405,
                &[("Content-Type", "text/plain"), ("Allow", "GET, HEAD")],
                b"only GET /metrics\n",
            ),
            _ => exchange.respond(
                404,
                &[("Content-Type", "text/plain")],
                b"only /metrics is served here\n",
            ),
        };
        answered.expect("fixed, well-formed fields");
        Answer::KeepAlive // `Http` closes when the request did not ask to keep the connection
    }
}
