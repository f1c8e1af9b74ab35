#!/usr/bin/env python3
"""Soak: a bounded churn run with the full close-mix, then a check that the engine returned to its
baseline — no open connections (slab occupancy 0), the same open fds, and no RSS growth beyond a
bound between a short warm-up run and the long run (pools and touched buffers plateau; a leak
grows with the run) — and that the loadgen verified every verdict.

    cargo build --release -p engine -p loadgen
    python3 benches/scripts/soak.py --minutes 10 [--rate 3000]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE = os.path.join(ROOT, "target", "release", "engine")
LOADGEN = os.path.join(ROOT, "target", "release", "loadgen")
MIX = "fin=5,reset=1,mid-frame=1,half-close=1,close-request=1,bad-frame=1,idle=1,stall=1"
RSS_GROWTH_MAX_KB = 4 * 1024


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def open_connections(admin):
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("engine_connections_open "):
                return int(float(line.split()[1]))
    sys.exit("no engine_connections_open in /metrics")


def churn(listen, admin, log, total, rate, report):
    args = ["taskset", "-c", "1", LOADGEN, "--target", listen, "--total", str(total),
            "--connect-rate", str(rate), "--connections", "2000", "--requests-per-conn", "4",
            "--pipeline", "2", "--close-mix", MIX, "--verify-log", log,
            "--verify-metrics", f"http://{admin}/metrics", "--quiet", "--json", report]
    done = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(report) as f:
        data = json.load(f)
    return done.returncode, data


def settle(pid, admin, timeout_s=10):
    deadline = time.time() + timeout_s
    while open_connections(admin) != 0 and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    return {"open": open_connections(admin), "fds": fds(pid), "rss_kb": rss_kb(pid)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=int, default=3000, help="connections per second")
    args = parser.parse_args()
    for binary in (ENGINE, LOADGEN):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: run `cargo build --release -p engine -p loadgen` first")
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "close.jsonl")
        engine = subprocess.Popen(
            ["taskset", "-c", "0", ENGINE, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
             "--cores", "1", "--idle-timeout", "1s", "--read-timeout", "1s", "--close-log", log],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn"), text=True)
        try:
            fields = dict(w.split("=", 1) for w in engine.stdout.readline().split()[2:])
            listen, admin = fields["listen"], fields["admin"]
            baseline = settle(engine.pid, admin)
            code, warm = churn(listen, admin, log, args.rate * 20, args.rate, os.path.join(tmp, "warm.json"))
            warmed = settle(engine.pid, admin)
            total = int(args.rate * args.minutes * 60)
            started = time.time()
            code_long, long = churn(listen, admin, log, total, args.rate, os.path.join(tmp, "long.json"))
            elapsed = time.time() - started
            after = settle(engine.pid, admin)
        finally:
            engine.terminate()
            engine.wait(timeout=30)
    verification = long["verification"]
    checks = [
        ("loadgen verified every connection (exit 0)", code == 0 and code_long == 0),
        ("0 misclassified", verification["mismatched"] == 0),
        ("0 lost / corrupt replies", verification["lost_replies"] == 0 and verification["corrupt_replies"] == 0),
        ("no connection left open", after["open"] == 0),
        ("open fds back to the baseline", after["fds"] == baseline["fds"]),
        (f"RSS growth during the long run < {RSS_GROWTH_MAX_KB} kB", after["rss_kb"] - warmed["rss_kb"] < RSS_GROWTH_MAX_KB),
    ]
    print(f"soak: {long['connections']['opened']} connections in {elapsed:.0f} s "
          f"({verification['checked']} checked, {verification['mismatched']} mismatched)")
    print(f"  baseline  open={baseline['open']} fds={baseline['fds']} rss={baseline['rss_kb']} kB")
    print(f"  warmed    open={warmed['open']} fds={warmed['fds']} rss={warmed['rss_kb']} kB")
    print(f"  after     open={after['open']} fds={after['fds']} rss={after['rss_kb']} kB")
    for name, ok in checks:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    sys.exit(0 if all(ok for _, ok in checks) else 1)


if __name__ == "__main__":
    main()
