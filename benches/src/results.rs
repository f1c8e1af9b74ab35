//! Reads the results JSON written by `scripts/compare.py` and reduces its runs to one
//! median (with min and max) per server and scenario, the numbers the `plot` binary draws.

use std::collections::HashMap;

use anyhow::{bail, Context};
use serde::Deserialize;

/// The loadgen flag only the connection-churn scenario passes: its rates and costs are per
/// connection, not per reply (compare.py does not record the unit, only the flags).
const PER_CONNECTION_FLAG: &str = "--requests-per-conn";
/// The loadgen flag of the fixed-rate scenarios, where servers differ in CPU and latency only.
const FIXED_RATE_FLAG: &str = "--rate";

/// The machine the runs were measured on, as compare.py records it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Machine {
    pub date: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cpus_online: Option<u32>,
    pub commit: String,
}

/// Median, minimum and maximum of one measure over the ok runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// One server in one scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// Every run failed: a loadgen error, or a lost or corrupt reply.
    Failed {
        runs: usize,
    },
    Measured(Measured),
}

/// The stats of a server's ok runs in one scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    /// How many ok runs the stats are over.
    pub runs: usize,
    /// Replies/s, or connections/s when the scenario is per connection.
    pub rate: Stat,
    /// Server CPU µs per reply (or per connection).
    pub cpu_us: Stat,
    /// 99th percentile latency in µs, when every ok run recorded it.
    pub p99_us: Option<Stat>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub name: String,
    /// Rates and costs count connections rather than replies.
    pub per_connection: bool,
    /// The load offers a fixed rate: every server answers it, so CPU and latency compare.
    pub fixed_rate: bool,
    /// One entry per `Summary::servers`, `None` when that server was not run here (compare.py
    /// runs some engine variants in a few scenarios only).
    pub cells: Vec<Option<Cell>>,
}

/// Servers and scenarios keep the order of their first run, which is the order compare.py
/// was asked for (engine first), rather than an alphabetical one.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub machine: Machine,
    pub servers: Vec<String>,
    pub scenarios: Vec<Scenario>,
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    machine: Machine,
    /// Loadgen flags per scenario; values, as a calibrated rate may be a number.
    #[serde(default)]
    scenarios: HashMap<String, Vec<serde_json::Value>>,
    runs: Vec<Run>,
}

/// Failed runs, and those of the held scenario (memory), carry no rate: hence the options.
#[derive(Deserialize)]
struct Run {
    server: String,
    scenario: String,
    #[serde(default)]
    ok: bool,
    rate: Option<f64>,
    cpu_us_per_unit: Option<f64>,
    p99_us: Option<f64>,
}

/// The runs of one server in one scenario.
#[derive(Default)]
struct Samples {
    /// Rates and CPU costs of the ok runs.
    rates: Vec<f64>,
    cpus: Vec<f64>,
    p99s: Vec<f64>,
    failed: usize,
}

/// Parses a compare.py results JSON and aggregates its ok runs.
pub fn summarize(json: &str) -> anyhow::Result<Summary> {
    let file: File = serde_json::from_str(json).context("not a compare.py results JSON")?;
    let mut servers: Vec<String> = Vec::new();
    let mut scenario_names: Vec<String> = Vec::new();
    let mut samples: HashMap<(&str, &str), Samples> = HashMap::new();
    for run in &file.runs {
        let measures = run.rate.zip(run.cpu_us_per_unit);
        // An ok run without these measures something else (the held scenario: memory).
        if run.ok && measures.is_none() {
            continue;
        }
        if !servers.contains(&run.server) {
            servers.push(run.server.clone());
        }
        if !scenario_names.contains(&run.scenario) {
            scenario_names.push(run.scenario.clone());
        }
        let entry = samples.entry((&run.scenario, &run.server)).or_default();
        match measures {
            Some((rate, cpu)) if run.ok => {
                entry.rates.push(rate);
                entry.cpus.push(cpu);
                entry.p99s.extend(run.p99_us);
            }
            _ => entry.failed += 1,
        }
    }
    if samples.values().all(|s| s.rates.is_empty()) {
        bail!("no ok runs among the {} runs", file.runs.len());
    }
    let scenarios = scenario_names
        .iter()
        .map(|name| Scenario {
            name: name.clone(),
            per_connection: has_flag(&file, name, PER_CONNECTION_FLAG),
            fixed_rate: has_flag(&file, name, FIXED_RATE_FLAG),
            cells: servers
                .iter()
                .map(|server| {
                    let samples = samples.get(&(name.as_str(), server.as_str()))?;
                    Some(if samples.rates.is_empty() {
                        Cell::Failed {
                            runs: samples.failed,
                        }
                    } else {
                        Cell::Measured(Measured {
                            runs: samples.rates.len(),
                            rate: stat(&samples.rates),
                            cpu_us: stat(&samples.cpus),
                            p99_us: (samples.p99s.len() == samples.rates.len())
                                .then(|| stat(&samples.p99s)),
                        })
                    })
                })
                .collect(),
        })
        .collect();
    Ok(Summary {
        machine: file.machine,
        servers,
        scenarios,
    })
}

fn has_flag(file: &File, scenario: &str, flag: &str) -> bool {
    file.scenarios
        .get(scenario)
        .is_some_and(|flags| flags.iter().any(|f| f.as_str() == Some(flag)))
}

/// Median as compare.py's `statistics.median`: the mean of the middle two for an even count.
/// `values` is never empty: only cells with ok runs have stats.
fn stat(values: &[f64]) -> Stat {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    Stat {
        // The same element twice for an odd count.
        median: (sorted[(n - 1) / 2] + sorted[n / 2]) / 2.0,
        min: sorted[0],
        max: sorted[n - 1],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &str = r#"{
        "machine": {"date": "2026-01-02", "kernel": "6.1", "cpu_model": "Test CPU",
                    "cpus_online": 2, "commit": "abc1234", "runtimes": {}},
        "args": {},
        "scenarios": {"pingpong": ["--pipeline", "1", "--rate", 20000],
                      "churn": ["--requests-per-conn", "4"]},
        "runs": [
            {"server": "engine", "scenario": "pingpong", "ok": true, "rate": 100.0, "cpu_us_per_unit": 3.0, "p99_us": 30},
            {"server": "tokio", "scenario": "pingpong", "ok": true, "rate": 80.0, "cpu_us_per_unit": 4.0},
            {"server": "engine", "scenario": "pingpong", "ok": true, "rate": 300.0, "cpu_us_per_unit": 1.0, "p99_us": 10},
            {"server": "engine", "scenario": "pingpong", "ok": false, "rate": 9999.0, "cpu_us_per_unit": 99.0},
            {"server": "tokio", "scenario": "pingpong", "ok": false, "loadgen_exit": 1},
            {"server": "engine", "scenario": "pingpong", "ok": true, "rate": 200.0, "cpu_us_per_unit": 2.0, "p99_us": 50},
            {"server": "engine", "scenario": "churn", "ok": true, "rate": 10.0, "cpu_us_per_unit": 50.0},
            {"server": "engine", "scenario": "churn", "ok": true, "rate": 30.0, "cpu_us_per_unit": 40.0},
            {"server": "tokio", "scenario": "churn", "ok": false},
            {"server": "tokio", "scenario": "churn", "ok": true, "rate": 5.0},
            {"server": "tokio", "scenario": "churn", "ok": false, "rate": 5.0, "cpu_us_per_unit": 9.0},
            {"server": "monoio", "scenario": "churn", "ok": false},
            {"server": "engine", "scenario": "held", "ok": true, "kb_per_conn": 3.5}
        ]
    }"#;

    #[test]
    fn medians_over_ok_runs_grouped_in_first_seen_order() {
        let summary = summarize(JSON).unwrap();
        assert_eq!(summary.machine.commit, "abc1234");
        assert_eq!(summary.machine.cpus_online, Some(2));
        assert_eq!(summary.servers, ["engine", "tokio", "monoio"]);
        let names: Vec<_> = summary.scenarios.iter().map(|s| s.name.as_str()).collect();
        // The held scenario measures memory, not throughput: left out.
        assert_eq!(names, ["pingpong", "churn"]);

        let pingpong = &summary.scenarios[0];
        assert!(!pingpong.per_connection);
        assert!(pingpong.fixed_rate);
        // The failed run's 9999 replies/s is left out.
        let engine = Measured {
            runs: 3,
            rate: Stat {
                median: 200.0,
                min: 100.0,
                max: 300.0,
            },
            cpu_us: Stat {
                median: 2.0,
                min: 1.0,
                max: 3.0,
            },
            p99_us: Some(Stat {
                median: 30.0,
                min: 10.0,
                max: 50.0,
            }),
        };
        assert_eq!(pingpong.cells[0], Some(Cell::Measured(engine)));
        let Some(Cell::Measured(tokio)) = pingpong.cells[1] else {
            panic!("tokio has an ok pingpong run: {:?}", pingpong.cells[1]);
        };
        assert_eq!((tokio.runs, tokio.rate.median), (1, 80.0));
        assert_eq!(pingpong.cells[2], None);

        let churn = &summary.scenarios[1];
        assert!(churn.per_connection);
        assert!(!churn.fixed_rate);
        let Some(Cell::Measured(engine)) = churn.cells[0] else {
            panic!("engine has ok churn runs: {:?}", churn.cells[0]);
        };
        // Even count: the mean of the middle two.
        assert_eq!((engine.rate.median, engine.cpu_us.median), (20.0, 45.0));
        // Runs without a p99 give the cell none.
        assert_eq!(engine.p99_us, None);
        assert_eq!(churn.cells[1], Some(Cell::Failed { runs: 2 }));
        assert_eq!(churn.cells[2], Some(Cell::Failed { runs: 1 }));
    }

    #[test]
    fn no_ok_run_and_bad_json_are_errors() {
        let failed = r#"{"runs": [{"server": "engine", "scenario": "x", "ok": false}]}"#;
        let err = summarize(failed).unwrap_err();
        assert_eq!(err.to_string(), "no ok runs among the 1 runs");
        assert!(summarize("{").is_err());
        assert!(summarize(r#"{"machine": {}}"#).is_err());
    }
}
