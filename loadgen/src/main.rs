//! The `loadgen` binary: parse flags, run / merge / verify, print the table, set the exit code.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use loadgen::cli::{Cli, Command};
use loadgen::report::Report;
use loadgen::verify::{check_log, Verification};

/// Exit codes: the verdict failed; bad flags or setup (clap also exits 2).
const EXIT_FAILED: u8 = 1;
const EXIT_SETUP: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(report) => {
            print!("{}", report.table());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            }
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
            let mut report = Report::read(&report)?;
            let mut verification = Verification {
                lost_replies: report.tags.iter().map(|t| t.lost).sum(),
                corrupt_replies: report.tags.iter().map(|t| t.corrupt).sum(),
                ..Verification::default()
            };
            verification.check_client(&report.tags);
            check_log(&log, &report.tags, verify_wait, &mut verification)?;
            report.verification = verification;
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
