//! The binary's command line: help, bad flags, bad addresses. Clear errors, never a panic.
//!
//! (Having an integration test here also makes `cargo test --workspace` build the `engine`
//! binary that the `tests` crate runs.)

use std::process::{Command, Output};

fn engine(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(args)
        .output()
        .expect("run engine")
}

#[track_caller]
fn assert_rejected(args: &[&str], needle: &str) {
    let output = engine(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_explains_the_flags() {
    let output = engine(&["--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--admin",
        "--cores",
        "--idle-timeout",
        "--read-timeout",
        "--max-frame",
        "--close-log",
        "--classify",
        "--tcp-user-timeout",
        "--log-format",
        "--buffers",
        "--max-connections",
        "--max-queued-bytes",
        "--shutdown-timeout",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    assert!(
        help.contains("peer_fin_mid_frame"),
        "--help names the causes"
    );
}

#[test]
fn bad_flags_are_clear_errors() {
    assert_rejected(&["--idle-timeout", "soon"], "--idle-timeout");
    assert_rejected(&["--max-frame", "70000"], "between 8 and 65535");
    assert_rejected(&["--buffers", "1000"], "power of two");
    assert_rejected(&["--classify", "maybe"], "--classify");
    assert_rejected(&["--cores", "0"], "--cores");
    assert_rejected(&["--no-such-flag"], "--no-such-flag");
}

#[test]
fn an_address_in_use_is_one_clear_line_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = engine(&["--listen", "127.0.0.1:0", "--admin", &addr, "--cores", "1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("engine: cannot serve metrics on {addr}")),
        "{stderr}"
    );
    assert!(output.stdout.is_empty(), "no ready line on failure");
}

#[test]
fn a_listen_port_in_use_is_refused_even_with_reuseport() {
    // Another SO_REUSEPORT listener of the same user would otherwise be joined silently.
    let first = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--cores",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = KillOnDrop(first);
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(first.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let listen = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .expect(&line)
        .to_owned();
    let output = engine(&[
        "--listen",
        &listen,
        "--admin",
        "127.0.0.1:0",
        "--cores",
        "1",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("engine: cannot listen on {listen}")),
        "{stderr}"
    );
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn an_ordinary_start_prints_one_ready_line_and_no_warning() {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut ready).unwrap();
    assert!(ready.starts_with("engine ready listen="), "{ready}");
    assert!(ready.contains(" max_connections="), "{ready}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(child.0.wait().unwrap().success(), "{stderr}");
    assert!(rest.is_empty(), "one ready line only, then {rest:?}");
    assert!(
        !stderr.contains("WARN"),
        "an ordinary start warns: {stderr}"
    );
    assert!(
        !stderr.contains("ready"),
        "the ready line is printed once: {stderr}"
    );
}
