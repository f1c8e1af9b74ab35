//! The `loadgen` binary: parse flags, run / merge / verify, print the table, set the exit code.

use std::process::ExitCode;

use anyhow::Context;
use loadgen::cli::{Cli, Command};
use loadgen::diagnose::end_timeout_hints;
use loadgen::report::{Report, EXIT_SETUP};
use loadgen::verify::{check_log, require_log, Verification};

/// Exit status: 0 pass, 1 failed checks, 2 bad flags or setup, 3 an asked rate not reached,
/// 130 interrupted (see `loadgen --help`).
fn main() -> ExitCode {
    let cli = Cli::try_parse_checked(std::env::args_os()).unwrap_or_else(|error| error.exit());
    match dispatch(cli) {
        Ok(report) => {
            print!("{}", report.table());
            ExitCode::from(report.verdict().exit_code())
        }
        Err(error) => {
            eprintln!("loadgen: {error:#}");
            ExitCode::from(EXIT_SETUP)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<Report> {
    let (report, json) = match cli.command {
        None => {
            let report = loadgen::run::run(&cli.run)?;
            (report, cli.run.json)
        }
        Some(Command::Merge { reports, json }) => {
            let reports = reports
                .iter()
                .map(|path| Report::read(path))
                .collect::<Result<Vec<_>, _>>()?;
            (Report::merge(reports), json)
        }
        Some(Command::Verify {
            report,
            log,
            json,
            verify_wait,
        }) => {
            require_log(&log, "--log")?;
            let mut report = Report::read(&report)?;
            let mut verification = Verification {
                lost_replies: report.tags.iter().map(|t| t.lost).sum(),
                corrupt_replies: report.tags.iter().map(|t| t.corrupt).sum(),
                ..Verification::default()
            };
            verification.check_client(&report.tags);
            let causes = check_log(&log, &report.tags, verify_wait, &mut verification)?;
            report.verification = verification;
            if let Some(end_timeout) = report_end_timeout(&report) {
                report.hints = end_timeout_hints(&report.tags, end_timeout, Some(&causes));
            }
            (report, json)
        }
    };
    if let Some(path) = json {
        report
            .write(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// The `--end-timeout` a saved report's run used, if its config says.
fn report_end_timeout(report: &Report) -> Option<std::time::Duration> {
    let text = report.config.get("end_timeout")?.as_str()?;
    humantime::parse_duration(text).ok()
}
