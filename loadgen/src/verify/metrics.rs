//! Scrapes the engine's /metrics (plain HTTP/1.1 GET) and checks the close counters' deltas.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{Mismatch, Verification};
use crate::error::LoadgenError;
use crate::stats::TagResult;

/// Bound of one scrape's connect, write and read.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(2);
/// A response larger than this is refused.
const RESPONSE_MAX: u64 = 16 * 1024 * 1024;
const POLL_INTERVAL: Duration = Duration::from_millis(50);
const CLOSED: &str = "engine_connections_closed_total";
const ACCEPTED: &str = "engine_connections_accepted_total";

/// Every sample of a scrape: `name{labels}` → value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub samples: HashMap<String, f64>,
}

impl MetricsSnapshot {
    pub fn parse(text: &str) -> MetricsSnapshot {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let (key, value) = line.rsplit_once(' ')?;
                Some((key.trim().to_owned(), value.trim().parse::<f64>().ok()?))
            })
            .collect();
        MetricsSnapshot { samples }
    }

    fn get(&self, key: &str) -> f64 {
        self.samples.get(key).copied().unwrap_or(0.0)
    }

    /// The close causes this snapshot has counters for.
    fn causes(&self) -> impl Iterator<Item = &str> {
        self.samples.keys().filter_map(|key| {
            key.strip_prefix(CLOSED)?
                .strip_prefix("{cause=\"")?
                .strip_suffix("\"}")
        })
    }
}

/// `http://host:port/path` → (address, host header, path).
fn parse_url(url: &str) -> Result<(SocketAddr, String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/metrics"),
    };
    let addr = crate::cli::resolve(authority)?;
    Ok((addr, authority.to_owned(), path.to_owned()))
}

pub fn scrape(url: &str) -> Result<MetricsSnapshot, LoadgenError> {
    let error = |error: String| LoadgenError::Metrics {
        url: url.to_owned(),
        error,
    };
    let (addr, host, path) = parse_url(url).map_err(error)?;
    let mut stream =
        TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT).map_err(|e| error(e.to_string()))?;
    stream
        .set_read_timeout(Some(SCRAPE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(SCRAPE_TIMEOUT)))
        .map_err(|e| error(e.to_string()))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| error(e.to_string()))?;
    let mut response = String::new();
    stream
        .take(RESPONSE_MAX)
        .read_to_string(&mut response)
        .map_err(|e| error(e.to_string()))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| error("no HTTP header end".into()))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(error(format!("status `{status}`")));
    }
    Ok(MetricsSnapshot::parse(body))
}

/// The counter deltas the tags predict: per close cause, and connections accepted.
fn expected_deltas(tags: &[TagResult]) -> BTreeMap<String, f64> {
    let mut expected = BTreeMap::new();
    for tag in tags.iter().filter(|t| t.connected) {
        let key = format!("{CLOSED}{{cause=\"{}\"}}", tag.mode.expected_cause());
        *expected.entry(key).or_insert(0.0) += 1.0;
        *expected.entry(ACCEPTED.to_owned()).or_insert(0.0) += 1.0;
    }
    expected
}

/// Compares `after - before` with what the tags predict (every other cause: 0), scraping again
/// until they agree or `wait` passes. Assumes no other client used the engine meanwhile.
pub fn check_metrics(
    url: &str,
    before: &MetricsSnapshot,
    tags: &[TagResult],
    wait: Duration,
    verification: &mut Verification,
) -> Result<(), LoadgenError> {
    let mut expected = expected_deltas(tags);
    let deadline = Instant::now() + wait;
    let differences = loop {
        let after = scrape(url)?;
        for cause in before.causes().chain(after.causes()) {
            expected
                .entry(format!("{CLOSED}{{cause=\"{cause}\"}}"))
                .or_insert(0.0);
        }
        expected.entry(ACCEPTED.to_owned()).or_insert(0.0);
        let differences: Vec<(String, f64, f64)> = expected
            .iter()
            .map(|(key, &want)| (key.clone(), want, after.get(key) - before.get(key)))
            .filter(|&(_, want, got)| want != got)
            .collect();
        if differences.is_empty() || Instant::now() >= deadline {
            break differences;
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    verification.metrics_checked = true;
    for (key, want, got) in differences {
        verification.add(Mismatch {
            tag: None,
            check: "metric".into(),
            expected: format!("{key} +{want}"),
            got: format!("+{got}"),
            mode: None,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_engine_format() {
        let text = "# HELP engine_connections_closed_total x\n# TYPE engine_connections_closed_total counter\n\
                    engine_connections_closed_total{cause=\"peer_fin\"} 4\n\
                    engine_connections_accepted_total 5\n";
        let snapshot = MetricsSnapshot::parse(text);
        assert_eq!(
            snapshot.get("engine_connections_closed_total{cause=\"peer_fin\"}"),
            4.0
        );
        assert_eq!(snapshot.get(ACCEPTED), 5.0);
        assert_eq!(snapshot.causes().collect::<Vec<_>>(), ["peer_fin"]);
    }

    #[test]
    fn urls() {
        let (addr, host, path) = parse_url("http://127.0.0.1:9/metrics").unwrap();
        assert_eq!(addr.port(), 9);
        assert_eq!(host, "127.0.0.1:9");
        assert_eq!(path, "/metrics");
        assert_eq!(parse_url("http://127.0.0.1:9").unwrap().2, "/metrics");
        assert!(parse_url("https://x").is_err());
    }
}
