#!/usr/bin/env python3
"""What classification costs: the same closed-loop load against `engine --classify off|count|log`,
interleaved (off, count, log, off, count, log, ...), engine pinned to CPU 0 and loadgen to CPU 1.

Prints, per mode, the median (and min-max) of throughput, p99 latency and server CPU per reply
(utime+stime of the engine process from /proc), and each mode's ratio to `off` measured in the
same run. Usage (after `cargo build --release -p engine -p loadgen`):

    python3 benches/scripts/classify_overhead.py [--runs 5] [--duration 5s] [--connections 64]
        [--pipeline 16] [--payload 64] [--churn]   # --churn: short connections, so closes dominate
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE = os.path.join(ROOT, "target", "release", "engine")
LOADGEN = os.path.join(ROOT, "target", "release", "loadgen")
MODES = ["off", "count", "log"]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def start_engine(mode, log_path):
    args = ["taskset", "-c", "0", ENGINE, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--cores", "1", "--classify", mode]
    if mode == "log":
        args += ["--close-log", log_path]
    env = dict(os.environ, RUST_LOG="warn")  # the close log is the record; keep stderr quiet
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = proc.stdout.readline()
    if not line.startswith("engine ready"):
        proc.kill()
        sys.exit(f"engine did not start: {line!r}")
    fields = dict(word.split("=", 1) for word in line.split()[2:])
    return proc, fields["listen"]


def run_once(mode, args, tmp):
    proc, listen = start_engine(mode, os.path.join(tmp, f"close-{mode}.jsonl"))
    report = os.path.join(tmp, "report.json")
    load = ["taskset", "-c", "1", LOADGEN, "--target", listen, "--quiet", "--json", report]
    if args.churn:
        load += ["--total", str(args.total), "--connections", str(args.connections),
                 "--requests-per-conn", "4", "--pipeline", "4", "--payload", str(args.payload)]
    else:
        load += ["--connections", str(args.connections), "--pipeline", str(args.pipeline),
                 "--payload", str(args.payload), "--duration", args.duration]
    try:
        before = cpu_seconds(proc.pid)
        done = subprocess.run(load, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=600)
        after = cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if done.returncode != 0:
        sys.exit(f"loadgen failed against --classify {mode}: {done.stderr.strip()}")
    with open(report) as f:
        data = json.load(f)
    replies = max(data["replies"], 1)
    return {
        "rps": data["throughput_rps"],
        "p99_us": data["latency_us"]["p99"],
        "cpu_us_per_reply": (after - before) * 1e6 / replies,
        "conns_per_s": data["connections"]["opened"] / max(data["duration_s"], 1e-9),
    }


def summary(values):
    return statistics.median(values), min(values), max(values)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--payload", type=int, default=64)
    parser.add_argument("--churn", action="store_true", help="short connections: closes dominate")
    parser.add_argument("--total", type=int, default=20000, help="connections per run with --churn")
    parser.add_argument("--json", help="write the raw runs here")
    args = parser.parse_args()
    for binary in (ENGINE, LOADGEN):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: run `cargo build --release -p engine -p loadgen` first")
    results = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for mode in MODES:
                results[mode].append(run_once(mode, args, tmp))
                print(f"run {run + 1}/{args.runs} {mode:5}: {results[mode][-1]['rps']:.0f} replies/s", file=sys.stderr)
    metric = "conns_per_s" if args.churn else "rps"
    base = {key: statistics.median(r[key] for r in results["off"]) for key in ("rps", "p99_us", "cpu_us_per_reply", "conns_per_s")}
    print(f"\nclassification overhead, {args.runs} interleaved runs, "
          f"{'churn' if args.churn else 'closed loop'} ({time.strftime('%Y-%m-%d')}, kernel {os.uname().release})")
    print(f"{'mode':6} {metric + ' median (min-max)':34} {'vs off':>8} {'p99 us':>8} {'CPU us/reply':>13} {'vs off':>8}")
    for mode in MODES:
        m, lo, hi = summary([r[metric] for r in results[mode]])
        p99 = statistics.median(r["p99_us"] for r in results[mode])
        cpu = statistics.median(r["cpu_us_per_reply"] for r in results[mode])
        print(f"{mode:6} {m:12.0f} ({lo:.0f}-{hi:.0f}){'':6} {m / base[metric] - 1:+8.1%} {p99:8.0f} {cpu:13.3f} {cpu / base['cpu_us_per_reply'] - 1:+8.1%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
