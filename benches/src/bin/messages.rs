//! What one message between two cores costs ([`engine::Context::send`]), woken with
//! `IORING_OP_MSG_RING` or with the target's eventfd: messages per second and process CPU per
//! message, for a one-way flood and for a ping-pong (every message a wake-up).
//!
//! It starts two engines in this process (one per wake mode, two cores each, pinned to CPUs 0
//! and 1), then runs the same workloads on each in turn, interleaved, and prints the median of
//! each. A client connection asks a core for a run (`FLOOD n` or `PINGPONG n`) and reads `DONE`.
//!
//!     cargo run --release -p benches --bin messages -- --runs 7 --messages 2000000

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use engine::{Config, ConnId, Context, MessagePhase, Protocol, SendError, Server, Step, Wake};

/// The core timer a flood uses to go on after a full queue.
const RESUME_TIMER: usize = 0;

/// One run at a time: a flood from the core the client is on to the other core, or a ball
/// passed back and forth.
struct Relay;

#[derive(Clone, Copy, Debug)]
enum Hop {
    /// One message of a flood.
    Flood,
    /// The flood is over: answer `origin` with how many arrived.
    FloodEnd { origin: ConnId },
    /// The ball, with the hops still to make.
    Ping { origin: ConnId, left: u64 },
    /// Tell `origin` its run is done.
    Done { origin: ConnId },
}

#[derive(Default)]
struct Core {
    /// The flood this core is sending: for whom, and how many are left.
    sending: Option<(ConnId, u64)>,
    /// Flood messages this core received in the current run.
    received: u64,
}

impl Relay {
    fn other(cx: &Context<'_, Self>) -> u16 {
        (cx.core() + 1) % cx.cores()
    }

    /// Sends what is left of this core's flood until the queue is full.
    fn keep_flooding(&self, cx: &mut Context<'_, Self>) {
        let Some((origin, mut left)) = cx.state().sending else {
            return;
        };
        let other = Relay::other(cx);
        while left > 0 {
            match cx.send(other, Hop::Flood) {
                Ok(()) => left -= 1,
                Err(SendError::Full(_)) => break,
                Err(error) => panic!("flood: {error}"),
            }
        }
        if left == 0 && cx.send(other, Hop::FloodEnd { origin }).is_ok() {
            cx.state().sending = None;
            return;
        }
        cx.state().sending = Some((origin, left));
        cx.set_core_timer(RESUME_TIMER, Duration::from_micros(1))
            .expect("timer 0 exists");
    }
}

impl Protocol for Relay {
    type Session = ();
    type CoreState = Core;
    type Message = Hop;

    fn core_state(&self, _core: u16) -> Core {
        Core::default()
    }

    fn open(&self, _peer: Option<SocketAddr>, _cx: &mut Context<'_, Self>) {}

    fn on_input(&self, _: &mut (), input: &[u8], cx: &mut Context<'_, Self>) -> Step {
        let Some(end) = input.iter().position(|&b| b == b'\n') else {
            return Step::more(0, 0);
        };
        let line = std::str::from_utf8(&input[..end]).unwrap_or("");
        let (verb, count) = line.split_once(' ').unwrap_or((line, ""));
        let Ok(count) = count.parse::<u64>() else {
            cx.output().push(b"ERR\n");
            return Step::violation(end + 1, 1);
        };
        let origin = cx.defer();
        match verb {
            "FLOOD" => {
                cx.state().sending = Some((origin, count));
                self.keep_flooding(cx);
            }
            "PINGPONG" => {
                let other = Relay::other(cx);
                let hop = Hop::Ping {
                    origin,
                    left: count,
                };
                cx.send(other, hop).expect("an empty queue");
            }
            _ => {
                cx.output().push(b"ERR\n");
                return Step::violation(end + 1, 1);
            }
        }
        Step::more(end + 1, 1)
    }

    fn on_core_timer(&self, _timer: usize, cx: &mut Context<'_, Self>) {
        self.keep_flooding(cx);
    }

    fn on_message(&self, hop: Hop, cx: &mut Context<'_, Self>) {
        match hop {
            Hop::Flood => cx.state().received += 1,
            Hop::FloodEnd { origin } => {
                cx.state().received = 0;
                cx.send(origin.core(), Hop::Done { origin })
                    .expect("room for one");
            }
            Hop::Ping { origin, left: 0 } => {
                cx.send(origin.core(), Hop::Done { origin })
                    .expect("room for one");
            }
            Hop::Ping { origin, left } => {
                let other = Relay::other(cx);
                cx.send(
                    other,
                    Hop::Ping {
                        origin,
                        left: left - 1,
                    },
                )
                .expect("one ball in flight");
            }
            Hop::Done { origin } => {
                let _ = cx.reply(origin, b"DONE\n");
            }
        }
    }

    fn partial_phase(&self, _: &(), _tail: &[u8]) -> MessagePhase {
        MessagePhase::Header
    }
}

#[derive(Parser)]
#[command(about = "Messages between two cores: MSG_RING against the eventfd fallback")]
struct Args {
    /// Repetitions of each workload on each engine (interleaved).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Messages per flood.
    #[arg(long, default_value_t = 2_000_000)]
    messages: u64,
    /// Hops per ping-pong.
    #[arg(long, default_value_t = 200_000)]
    hops: u64,
}

/// Process CPU time (all threads) so far.
fn process_cpu() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').context("/proc/self/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_millis(ticks * 10)) // USER_HZ is 100 on Linux
}

/// One run: (seconds, CPU seconds) to get `DONE` for `request`.
fn run(addr: SocketAddr, request: &str) -> anyhow::Result<(f64, f64)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let (cpu, start) = (process_cpu()?, Instant::now());
    stream.write_all(request.as_bytes())?;
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line)?;
    let (wall, cpu) = (start.elapsed(), process_cpu()? - cpu);
    if line != "DONE\n" {
        bail!("{request:?} got {line:?}");
    }
    Ok((wall.as_secs_f64(), cpu.as_secs_f64()))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let modes = [("msg_ring", Wake::MsgRing), ("eventfd", Wake::Eventfd)];
    let servers = modes
        .iter()
        .map(|&(_, wake)| {
            let config = Config::new()
                .listen("127.0.0.1:0".parse().expect("an address"))
                .admin(None)
                .cores(2)
                .handle_signals(false)
                .wake(wake);
            Server::start(config, Relay)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let workloads = [
        ("flood", format!("FLOOD {}\n", args.messages), args.messages),
        ("pingpong", format!("PINGPONG {}\n", args.hops), args.hops),
    ];
    println!("workload  wake      messages/s (median)  CPU ns/message (median)  runs");
    for (name, request, count) in &workloads {
        let mut results = vec![(Vec::new(), Vec::new()); modes.len()];
        for _ in 0..args.runs {
            for (server, result) in servers.iter().zip(&mut results) {
                let (wall, cpu) = run(server.local_addr(), request)?;
                result.0.push(*count as f64 / wall);
                result.1.push(cpu * 1e9 / *count as f64);
            }
        }
        for ((mode, _), (rates, cpus)) in modes.iter().zip(results) {
            println!(
                "{name:<9} {mode:<9} {:>19.0}  {:>23.1}  {}",
                median(rates),
                median(cpus),
                args.runs
            );
        }
    }
    for server in servers {
        server.shutdown_handle().shutdown();
        server.wait()?;
    }
    Ok(())
}
