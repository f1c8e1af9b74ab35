//! The CPU time this process used (user + system, all threads), from /proc/self/stat.

use std::time::Duration;

use crate::limits::USER_HZ;

/// User plus system CPU time of the whole process so far; `None` if /proc is unreadable.
pub fn process_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat)
}

/// Fields 14 (utime) and 15 (stime), counted after the parenthesised command name.
fn parse_stat(stat: &str) -> Option<Duration> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // after_name starts at field 3 (state): utime is field 14, index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

/// CPU time over wall time, in percent of one CPU (above 100 with several busy threads).
pub fn percent(cpu: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_tricky_name() {
        let line = "1234 (load gen) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 100 0 0";
        assert_eq!(parse_stat(line), Some(Duration::from_secs(3)));
        assert!(process_cpu_time().is_some());
        assert_eq!(
            percent(Duration::from_secs(1), Duration::from_secs(2)),
            50.0
        );
    }
}
