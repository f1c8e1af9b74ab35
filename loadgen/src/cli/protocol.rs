//! The protocol flags: their defaults, the wire they select, and the combinations clap's
//! attributes cannot express (the flags of one protocol given with the other).

use std::ffi::OsString;
use std::fmt;

use clap::{CommandFactory, Parser};

use super::{Cli, RunArgs, Shape};
use crate::limits::PAYLOAD_DEFAULT;
use crate::wire::{HttpWorkload, Wire, WireProtocol};

/// A combination of run flags that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagError {
    /// `--http-workload` without `--protocol http`.
    WorkloadWithoutHttp,
    /// `--payload` with `--protocol http`.
    PayloadWithHttp,
    /// Churn over HTTP with `--requests-per-conn 0`: nothing would carry the tag.
    NoRequestForTheTag,
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlagError::WorkloadWithoutHttp => {
                "--http-workload needs --protocol http (the frame protocol sends ECHOs sized by \
                 --payload)"
            }
            FlagError::PayloadWithHttp => {
                "--payload sizes ECHO frames: with --protocol http the requests are those of \
                 --http-workload"
            }
            FlagError::NoRequestForTheTag => {
                "--requests-per-conn must be at least 1 with --protocol http: a connection's \
                 tag rides on its first request (x-client-tag)"
            }
        })
    }
}

impl std::error::Error for FlagError {}

impl RunArgs {
    /// `--payload`, or its default.
    pub fn payloads(&self) -> Vec<u16> {
        self.payload
            .as_ref()
            .map_or_else(|| vec![PAYLOAD_DEFAULT], |sizes| sizes.0.clone())
    }

    /// `--http-workload`, or its default.
    pub fn http_workload(&self) -> HttpWorkload {
        self.http_workload.unwrap_or(HttpWorkload::Baseline)
    }

    /// The protocol and what shapes its requests.
    pub fn wire(&self) -> Wire {
        match self.protocol {
            WireProtocol::Frame => Wire::Frame {
                payloads: self.payloads(),
            },
            WireProtocol::Http => Wire::Http {
                workload: self.http_workload(),
            },
        }
    }

    /// Whether the flags work together.
    pub fn check(&self) -> Result<(), FlagError> {
        match self.protocol {
            WireProtocol::Frame if self.http_workload.is_some() => {
                Err(FlagError::WorkloadWithoutHttp)
            }
            WireProtocol::Http if self.payload.is_some() => Err(FlagError::PayloadWithHttp),
            WireProtocol::Http
                if matches!(self.shape(), Shape::Churn { .. }) && self.requests_per_conn == 0 =>
            {
                Err(FlagError::NoRequestForTheTag)
            }
            WireProtocol::Frame | WireProtocol::Http => Ok(()),
        }
    }
}

impl Cli {
    /// Parses `args` (the program name first) and checks the combinations clap cannot (see
    /// [`FlagError`]): an error is clap's, with the usage, exit status 2.
    pub fn try_parse_checked<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let cli = Cli::try_parse_from(args)?;
        if cli.command.is_none() {
            if let Err(error) = cli.run.check() {
                return Err(Cli::command().error(clap::error::ErrorKind::ArgumentConflict, error));
            }
        }
        Ok(cli)
    }
}

#[cfg(test)]
mod tests {
    use crate::cli::Cli;
    use crate::wire::{HttpWorkload, Wire};

    fn parse(extra: &[&str]) -> Result<Cli, clap::Error> {
        let args = ["loadgen", "--target", "127.0.0.1:1"];
        Cli::try_parse_checked(args.iter().chain(extra))
    }

    #[test]
    fn the_flags_of_one_protocol_are_refused_with_the_other() {
        for (extra, says) in [
            (
                &["--http-workload", "pipeline"][..],
                "--http-workload needs --protocol http",
            ),
            (
                &["--protocol", "frame", "--http-workload", "baseline"],
                "--http-workload needs --protocol http",
            ),
            (
                &["--protocol", "http", "--payload", "16"],
                "--payload sizes ECHO frames",
            ),
            (
                &[
                    "--protocol",
                    "http",
                    "--total",
                    "3",
                    "--requests-per-conn",
                    "0",
                ],
                "--requests-per-conn must be at least 1",
            ),
        ] {
            let error = parse(extra).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{extra:?}");
            let text = error.to_string();
            assert!(text.contains(says), "{extra:?}: {text}");
        }
        let error = parse(&["--protocol", "gopher"]).unwrap_err().to_string();
        assert!(error.contains("frame") && error.contains("http"), "{error}");
    }

    #[test]
    fn the_wire_follows_the_flags() {
        let wire = |extra: &[&str]| parse(extra).unwrap().run.wire();
        assert_eq!(wire(&[]), Wire::Frame { payloads: vec![64] });
        assert_eq!(
            wire(&["--payload", "1,2"]),
            Wire::Frame {
                payloads: vec![1, 2]
            }
        );
        assert_eq!(
            wire(&["--protocol", "http"]),
            Wire::Http {
                workload: HttpWorkload::Baseline
            }
        );
        assert_eq!(
            wire(&["--protocol", "http", "--http-workload", "pipeline"]),
            Wire::Http {
                workload: HttpWorkload::Pipeline
            }
        );
        let churn = [
            "--protocol",
            "http",
            "--total",
            "3",
            "--requests-per-conn",
            "1",
        ];
        assert!(parse(&churn).is_ok());
        let frame_churn = ["--total", "3", "--requests-per-conn", "0"];
        assert!(
            parse(&frame_churn).is_ok(),
            "the frame protocol tags with HELLO"
        );
        let merge = Cli::try_parse_checked(["loadgen", "merge", "a.json"]);
        assert!(merge.is_ok(), "subcommands are not run flags");
    }
}
