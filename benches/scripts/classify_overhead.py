#!/usr/bin/env python3
"""What classification costs (issue 4 goal: `log` vs `off` <= 1% throughput, <= 2% CPU per reply).

The same load against `engine --classify off|count|log` and `log` with a --close-log file, run
interleaved (off, count, log, log-file, off, ...), engine pinned to CPU 0 and loadgen to CPU 1.
Each mode's cost is taken against the `off` run of the same repetition (a paired ratio, which
cancels the machine's drift) and reported as the median over repetitions with a distribution-free
95% interval: MET, MISSED, or UNRESOLVED when the interval straddles the goal (see pairstats.py).

Scenarios (--scenario, comma-separated):
  fixed        open loop at --rate replies/s: server CPU us per reply (the goal's CPU figure)
  churn-fixed  --connect-rate connections/s, 4 requests each, then FIN: CPU us per connection,
               where every connection is one classification (the worst case per reply)
  closed       closed loop, --connections x --pipeline: throughput (the goal's throughput figure)
  churn        connections as fast as they go: connections/s

Usage (after `cargo build --release -p engine -p loadgen`):

    python3 benches/scripts/classify_overhead.py [--runs 15] [--scenario fixed,churn-fixed,closed]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pairstats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE = os.path.join(ROOT, "target", "release", "engine")
LOADGEN = os.path.join(ROOT, "target", "release", "loadgen")
MODES = ["off", "count", "log", "log-file"]
TICKS = os.sysconf("SC_CLK_TCK")
THROUGHPUT_GOAL = 0.01
CPU_GOAL = 0.02
CHURN = ["--requests-per-conn", "4", "--pipeline", "4", "--payload", "64", "--close-mix", "fin=1"]
# scenario -> (measured key, higher is better, goal, unit)
SCENARIOS = {
    "fixed": ("cpu_us_per_reply", False, CPU_GOAL, "CPU us/reply"),
    "churn-fixed": ("cpu_us_per_conn", False, CPU_GOAL, "CPU us/conn"),
    "closed": ("rps", True, THROUGHPUT_GOAL, "replies/s"),
    "churn": ("conns_per_s", True, THROUGHPUT_GOAL, "conns/s"),
}
LOADGEN_TIMEOUT_S = 600


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def start_engine(mode, log_path):
    args = ["taskset", "-c", "0", ENGINE, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
            "--cores", "1", "--classify", "log" if mode == "log-file" else mode]
    if mode == "log-file":
        args += ["--close-log", log_path]
    env = dict(os.environ, RUST_LOG="warn")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = proc.stdout.readline()
    if not line.startswith("engine ready"):
        proc.kill()
        sys.exit(f"engine did not start: {line!r}")
    fields = dict(word.split("=", 1) for word in line.split()[2:])
    return proc, fields["listen"]


def load_flags(scenario, args):
    if scenario in ("fixed", "closed"):
        rate = ["--rate", str(args.rate)] if scenario == "fixed" else []
        return ["--connections", str(args.connections), "--pipeline", str(args.pipeline), "--payload", "64",
                *rate, "--duration", f"{args.duration_s}s"]
    if scenario == "churn-fixed":
        return CHURN + ["--connections", "200", "--connect-rate", str(args.connect_rate),
                        "--total", str(int(args.connect_rate * args.duration_s))]
    return CHURN + ["--connections", "200", "--total", str(args.total)]


def run_once(mode, scenario, args, tmp):
    log_path = os.path.join(tmp, "close.jsonl")
    if os.path.exists(log_path):
        os.remove(log_path)
    proc, listen = start_engine(mode, log_path)
    report = os.path.join(tmp, "report.json")
    load = ["taskset", "-c", "1", LOADGEN, "--target", listen, "--quiet", "--json", report] + load_flags(scenario, args)
    try:
        before = cpu_seconds(proc.pid)
        done = subprocess.run(load, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              timeout=LOADGEN_TIMEOUT_S)
        after = cpu_seconds(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if done.returncode != 0:
        print(f"loadgen failed against {mode} in {scenario} (run left out): {done.stderr.strip()[-300:]}",
              file=sys.stderr)
        return None
    with open(report) as f:
        data = json.load(f)
    cpu_us = (after - before) * 1e6
    opened = max(data["connections"]["opened"], 1)
    return {
        "rps": data["throughput_rps"],
        "conns_per_s": opened / max(data["duration_s"], 1e-9),
        "cpu_us_per_reply": cpu_us / max(data["replies"], 1),
        "cpu_us_per_conn": cpu_us / opened,
        "p99_us": data["latency_us"]["p99"],
    }


def report(results, args, out):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    out(f"classification overhead: {args.runs} interleaved repetitions of {', '.join(MODES)}; "
        f"{time.strftime('%Y-%m-%d')}, kernel {os.uname().release}, commit {commit or 'unknown'}; "
        "engine on CPU 0, loadgen on CPU 1")
    for scenario in args.scenarios:
        key, higher, goal, unit = SCENARIOS[scenario]
        out(f"\n== {scenario}: loadgen {' '.join(load_flags(scenario, args))}")
        base = [r and r[key] for r in results[scenario]["off"]]
        for mode in MODES:
            values = [r[key] for r in results[scenario][mode] if r]
            if not values:
                out(f"{mode:9} no successful run")
                continue
            line = f"{mode:9} {unit} {statistics.median(values):10.3f} ({min(values):.3f}-{max(values):.3f})"
            if mode != "off":
                costs = pairstats.paired_costs(base, [r and r[key] for r in results[scenario][mode]], higher)
                if costs:
                    line += "   vs off: " + pairstats.verdict(costs, goal)[0]
            out(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="repetitions (pairs per mode); >= 6 for a 95%% interval")
    parser.add_argument("--scenario", default="fixed,churn-fixed,closed", help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument("--duration-s", type=float, default=3.0, help="seconds per run (not churn)")
    parser.add_argument("--rate", type=int, default=40000, help="fixed: replies/s")
    parser.add_argument("--connect-rate", type=int, default=5000, help="churn-fixed: connections/s")
    parser.add_argument("--connections", type=int, default=64, help="fixed, closed: connections")
    parser.add_argument("--pipeline", type=int, default=16, help="fixed, closed: requests in flight per connection")
    parser.add_argument("--total", type=int, default=20000, help="churn: connections per run")
    parser.add_argument("--json", help="write the raw runs here")
    args = parser.parse_args()
    args.scenarios = args.scenario.split(",")
    for scenario in args.scenarios:
        if scenario not in SCENARIOS:
            parser.error(f"unknown scenario {scenario!r}: one of {', '.join(SCENARIOS)}")
    if args.runs < 1 or args.duration_s <= 0 or args.rate < 1 or args.connect_rate < 1:
        parser.error("--runs, --duration-s, --rate and --connect-rate must be positive")
    for binary in (ENGINE, LOADGEN):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: run `cargo build --release -p engine -p loadgen` first")
    results = {s: {mode: [] for mode in MODES} for s in args.scenarios}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for scenario in args.scenarios:
                for mode in MODES:
                    result = run_once(mode, scenario, args, tmp)
                    results[scenario][mode].append(result)
                    shown = f"{result[SCENARIOS[scenario][0]]:.3f}" if result else "failed"
                    print(f"run {run + 1}/{args.runs} {scenario:11} {mode:9} {shown}", file=sys.stderr)
    report(results, args, print)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
