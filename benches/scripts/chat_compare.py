#!/usr/bin/env python3
"""Chat fan-out, the engine's chat example against the tokio broadcast peer, interleaved.

Each run starts a fresh server pinned to CPU 0 (the engine with --cores 1, tokio with
--workers 1), drives it with benches/scripts/chat_fanout.py pinned to CPU 1 (M members in one
room, S senders), and stops it. For each repetition every scenario runs on every server in turn,
so drift hits both alike. Reported per scenario and server: the medians of deliveries/s, server
CPU microseconds per delivery, p50 and p99 latency, and the engine / tokio ratio of the medians
of CPU per delivery (the comparable figure when the Python loader is saturated).

    cargo build --release -p engine --example chat
    cargo build --release --manifest-path benches/peers/chat-tokio/Cargo.toml
    python3 benches/scripts/chat_compare.py [--runs 5] [--duration 5] [--members 100]
        [--scenarios 2000,10000,0] [--out benches/results/DATE-chat-fanout]
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FANOUT = os.path.join(ROOT, "benches", "scripts", "chat_fanout.py")
LISTEN = "127.0.0.1:7310"
ADMIN = "127.0.0.1:7311"
READY_TIMEOUT_S = 10


def servers():
    engine = os.path.join(ROOT, "target", "release", "examples", "chat")
    tokio = os.path.join(ROOT, "benches", "peers", "target", "release", "peer-chat-tokio")
    return {
        "engine": [engine, "--cores", "1", "--listen", LISTEN, "--admin", ADMIN],
        "tokio": [tokio, "--workers", "1", "--listen", LISTEN],
    }


def wait_listening(addr, proc):
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            socket.create_connection((host, int(port)), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {addr} after {READY_TIMEOUT_S} s")


def wait_free(addr):
    """Until `addr` can be bound again (a server that exited may hold it a moment longer)."""
    host, port = addr.rsplit(":", 1)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, int(port)))
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{addr} still bound {READY_TIMEOUT_S} s after the last run")
            time.sleep(0.05)
        finally:
            probe.close()


def one_run(name, command, args, rate):
    wait_free(LISTEN)
    proc = subprocess.Popen(["taskset", "-c", "0"] + command,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(LISTEN, proc)
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            load = ["taskset", "-c", "1", sys.executable, FANOUT, "--addr", LISTEN,
                    "--members", str(args.members), "--senders", str(args.senders),
                    "--rate", str(rate), "--duration", str(args.duration),
                    "--server-pid", str(proc.pid), "--json", out.name]
            done = subprocess.run(load, capture_output=True, text=True,
                                  timeout=args.duration + 30)
            if done.returncode != 0:
                print(done.stdout + done.stderr, file=sys.stderr)
                return None
            return json.load(open(out.name))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def median(runs, key):
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5, help="repetitions of every (scenario, server)")
    p.add_argument("--duration", type=float, default=5, help="seconds of each run")
    p.add_argument("--members", type=int, default=100)
    p.add_argument("--senders", type=int, default=4)
    p.add_argument("--scenarios", default="2000,10000,0",
                   help="comma-separated SAY rates (lines/s in all; 0: closed loop)")
    p.add_argument("--out", help="writes OUT.json (raw runs) and OUT.txt (the report)")
    args = p.parse_args()
    rates = [int(rate) for rate in args.scenarios.split(",")]
    commands = servers()
    for name, command in commands.items():
        if not os.path.exists(command[0]):
            sys.exit(f"{name}: {command[0]} is not built (see --help)")
    results = {(rate, name): [] for rate in rates for name in commands}
    for rep in range(args.runs):
        for rate in rates:
            for name, command in commands.items():
                run = one_run(name, command, args, rate)
                status = "failed" if run is None else f"{run['deliveries_per_s']:.0f} deliveries/s"
                print(f"run {rep + 1}/{args.runs} rate {rate} {name}: {status}", flush=True)
                if run is not None:
                    results[(rate, name)].append(run)
    lines = [f"chat fan-out: {args.members} members, {args.senders} senders, {args.runs} "
             f"interleaved runs of {args.duration:g} s; servers on CPU 0 (1 core / 1 worker), "
             "loader on CPU 1; medians",
             f"{'rate':>6} {'server':<7} {'deliveries/s':>13} {'CPU us/delivery':>16} "
             f"{'p50 ms':>7} {'p99 ms':>7} {'ok runs':>7}"]
    for rate in rates:
        for name in commands:
            runs = results[(rate, name)]
            cells = [median(runs, key) for key in
                     ("deliveries_per_s", "server_cpu_us_per_delivery", "latency_p50_us",
                      "latency_p99_us")]
            shown = ["-" if cells[0] is None else f"{cells[0]:.0f}",
                     "-" if cells[1] is None else f"{cells[1]:.3f}"]
            shown += ["-" if c is None else f"{c / 1000:.1f}" for c in cells[2:]]
            lines.append(f"{rate:>6} {name:<7} {shown[0]:>13} {shown[1]:>16} {shown[2]:>7} "
                         f"{shown[3]:>7} {len(runs):>7}")
        engine = median(results[(rate, "engine")], "server_cpu_us_per_delivery")
        tokio = median(results[(rate, "tokio")], "server_cpu_us_per_delivery")
        if engine and tokio:
            lines.append(f"{'':>6} engine / tokio CPU per delivery: {engine / tokio:.2f}x")
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out + ".json", "w") as f:
            json.dump({f"{rate} {name}": runs for (rate, name), runs in results.items()}, f,
                      indent=1)
        with open(args.out + ".txt", "w") as f:
            f.write(report + "\n")


if __name__ == "__main__":
    main()
