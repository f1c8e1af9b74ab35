#!/usr/bin/env python3
"""End-to-end comparison (issue 4): the engine against single-threaded peers on tokio (epoll),
tokio-uring, monoio and compio, all speaking the engine's wire protocol (benches/peers/).

Each run starts a fresh server pinned to CPU 0 and the loadgen pinned to CPU 1, which checks every
reply byte. Runs are interleaved (for each repetition: each scenario, each server in turn) so
drift hits every server alike. Per server it reports the median and min-max of throughput,
p50/p99/p99.9 latency, server CPU us per reply (utime+stime of the server process from /proc),
the user share of that CPU, and voluntary context switches per 1,000 replies (summed over
/proc/PID/task/*), then the engine / best-peer ratios and the issue's goals as MET or MISSED.
Fixed-rate scenarios include 80% of the slowest peer's ping-pong peak (calibrated by one short
run of each peer first) and 4 KiB frames; "held" holds 10,000 idle connections and reports the
server's RSS per connection. Engine variants (--batch-wait, --classify off|count, a close-log
file, --cores 2) run next to the plain engine in the scenarios where they matter.
The raw runs go to benches/results/<date>-compare.json and the printed report to
benches/results/<date>-compare.txt. Usage:

    cargo build --release -p engine -p loadgen
    (cd benches/peers && cargo build --release)     # peers: a standalone workspace
    python3 benches/scripts/compare.py [--runs 5] [--duration 3s] [--scenario pipelined,...]
        [--servers engine,tokio,...] [--peers-dir DIR]   # DIR: where the peer-* binaries are
        [--baseline PATH]   # A/B: an engine binary of another commit, run as "engine-base" in
                            # every scenario and paired with "engine" run by run
"""

import argparse
import glob
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pairstats  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENGINE = os.path.join(ROOT, "target", "release", "engine")
LOADGEN = os.path.join(ROOT, "target", "release", "loadgen")
PEERS = os.path.join(ROOT, "benches", "peers")
RESULTS = os.path.join(ROOT, "benches", "results")
PEER_SERVERS = ["tokio", "tokio-uring", "monoio", "compio"]
# The engine against itself: variant -> (its flags, the scenarios it runs in). Interleaved with
# the rest. The plain "engine" runs with the defaults (--classify log, no close-log file).
CLOSE_LOG = os.path.join(tempfile.gettempdir(), "compare-close-log.jsonl")
ENGINE_VARIANTS = {
    "engine-batch25": (["--batch-wait", "25us"], ["fixed-20k", "fixed-40k", "fixed-80k", "fixed-4k"]),
    "engine-batch": (["--batch-wait", "50us"], ["fixed-20k", "fixed-40k", "fixed-80k", "fixed-peak", "fixed-4k"]),
    "engine-batch200": (["--batch-wait", "200us"], ["fixed-20k", "fixed-40k", "fixed-80k", "fixed-peak", "fixed-4k"]),
    "engine-off": (["--classify", "off"], ["pipelined", "fixed-40k", "churn"]),
    "engine-count": (["--classify", "count"], ["pipelined", "fixed-40k", "churn"]),
    "engine-closelog": (["--classify", "log", "--close-log", CLOSE_LOG], ["pipelined", "fixed-40k", "churn"]),
    "engine-2cores": (["--cores", "2"], ["pingpong", "pipelined", "churn"]),
    # Issue 13: io_uring features, each against the default in the same runs.
    "engine-bundle": (["--buffer-mode", "bundle"], ["pipelined", "fixed-40k", "4k", "16k"]),
    "engine-inc": (["--buffer-mode", "incremental"], ["pipelined", "fixed-40k", "4k", "16k"]),
    "engine-ringfd": (["--ring-fd", "registered"], ["pipelined", "fixed-40k", "4k"]),
    "engine-adaptive": (["--batch-wait", "adaptive"], ["fixed-20k", "fixed-40k", "fixed-80k", "fixed-4k"]),
    "engine-a16-200": (["--batch-wait", "adaptive", "--batch-target", "16", "--batch-budget", "200us"],
                       ["fixed-20k", "fixed-40k", "fixed-80k", "fixed-4k"]),
    "engine-a8-100": (["--batch-wait", "adaptive", "--batch-target", "8", "--batch-budget", "100us"],
                      ["fixed-20k", "fixed-40k", "fixed-80k", "fixed-4k"]),
    "engine-batch100": (["--batch-wait", "100us"], ["fixed-20k", "fixed-40k", "fixed-80k", "fixed-4k"]),
}
SERVERS = ["engine"] + PEER_SERVERS + list(ENGINE_VARIANTS)
SERVER_CPU = "0"
# --cores 2 gets both CPUs (it then shares CPU 1 with the loadgen: a 2-core machine has no third).
SERVER_CPUS = {"engine-2cores": "0,1"}
LOADGEN_CPU = "1"
TICKS = os.sysconf("SC_CLK_TCK")
READY_TIMEOUT_S = 10
LOADGEN_TIMEOUT_S = 300
STOP_TIMEOUT_S = 30
# Other processes share the two CPUs (builds, test suites): before each run wait until both CPUs
# are this idle over one probe window, for at most --idle-wait seconds (then run anyway, and the
# report shows how busy the machine was).
IDLE_BUSY_MAX = 0.10
IDLE_PROBE_S = 0.5

HELD = 10000  # the machine's hard RLIMIT_NOFILE is 20000: 100k cannot be held here
# name -> (loadgen flags, unit the rates and costs are counted in). Closed loop unless --rate.
CONNECTIONS = ["--connections", "64"]
SCENARIOS = {
    "pingpong": (CONNECTIONS + ["--pipeline", "1", "--payload", "64"], "reply"),
    "pipelined": (CONNECTIONS + ["--pipeline", "16", "--payload", "64"], "reply"),
    "4k": (CONNECTIONS + ["--pipeline", "4", "--payload", "4096"], "reply"),
    "fixed-20k": (CONNECTIONS + ["--rate", "20000", "--pipeline", "16", "--payload", "64"], "reply"),
    "fixed-40k": (CONNECTIONS + ["--rate", "40000", "--pipeline", "16", "--payload", "64"], "reply"),
    # 80% of the slowest peer's ping-pong peak, measured by a calibration pass before the runs.
    "fixed-peak": (CONNECTIONS + ["--rate", "CALIBRATED", "--pipeline", "16", "--payload", "64"], "reply"),
    "fixed-4k": (CONNECTIONS + ["--rate", "20000", "--pipeline", "16", "--payload", "4096"], "reply"),
    "fixed-80k": (CONNECTIONS + ["--rate", "80000", "--pipeline", "16", "--payload", "64"], "reply"),
    # Large replies (SEND_ZC's break-even): closed loop, 16 connections, one frame in flight each.
    "16k": (["--connections", "16", "--pipeline", "1", "--payload", "16384"], "reply"),
    "churn": (["--connections", "200", "--requests-per-conn", "4", "--pipeline", "4",
               "--payload", "64", "--close-mix", "fin=1"], "conn"),
    # Idle connections held after HELLO; the cost is server memory, sampled while they are held.
    "held": (["--hold", str(HELD)], "held"),
}
FIXED_RATE = ["fixed-20k", "fixed-40k", "fixed-peak", "fixed-4k"]

# --protocol http (issue 12): HttpArena's H1 workloads against nginx, hyper and a raw epoll
# server (benches/peers, benches/nginx), every response checked by the loadgen.
HTTP = ["--protocol", "http"]
HTTP_PEERS = ["nginx", "hyper", "epoll"]
HTTP_SCENARIOS = {
    "pipelined": (HTTP + CONNECTIONS + ["--http-workload", "pipeline", "--pipeline", "16"], "reply"),
    "baseline": (HTTP + ["--connections", "256", "--http-workload", "baseline", "--pipeline", "1"], "reply"),
    "baseline-64": (HTTP + CONNECTIONS + ["--http-workload", "baseline", "--pipeline", "1"], "reply"),
    "baseline-512": (HTTP + ["--connections", "512", "--http-workload", "baseline", "--pipeline", "1"], "reply"),
    # HttpArena's short-lived profile: 10 requests per connection, then a new one.
    "short-lived": (HTTP + ["--connections", "256", "--http-workload", "baseline", "--requests-per-conn", "10",
                            "--close-mix", "fin=1"], "conn"),
    "fixed-20k": (HTTP + CONNECTIONS + ["--http-workload", "baseline", "--rate", "20000", "--pipeline", "4"], "reply"),
    "fixed-40k": (HTTP + CONNECTIONS + ["--http-workload", "baseline", "--rate", "40000", "--pipeline", "4"], "reply"),
    "fixed-80k": (HTTP + CONNECTIONS + ["--http-workload", "pipeline", "--rate", "80000", "--pipeline", "16"], "reply"),
    "held": (HTTP + ["--hold", str(HELD)], "held"),
}
HTTP_VARIANTS = {
    "engine-off": (["--classify", "off"], ["pipelined", "baseline-64", "fixed-40k", "short-lived"]),
    "engine-bundle": (["--buffer-mode", "bundle"], ["pipelined", "baseline-64"]),
    "engine-inc": (["--buffer-mode", "incremental"], ["pipelined", "baseline-64"]),
    "engine-ringfd": (["--ring-fd", "registered"], ["pipelined", "baseline-64", "fixed-40k"]),
    "engine-a16-200": (["--batch-wait", "adaptive", "--batch-target", "16", "--batch-budget", "200us"],
                       ["fixed-20k", "fixed-40k", "fixed-80k"]),
}
HTTP_FIXED_RATE = ["fixed-20k", "fixed-40k", "fixed-80k"]
# The wrk scripts per scenario (a second generator, written elsewhere): HttpArena's shapes.
WRK_SCRIPTS = {"pipelined": "pipeline.lua", "baseline": "baseline.lua", "baseline-64": "baseline.lua",
               "baseline-512": "baseline.lua"}
HTTP_CPU_RATIO_GOAL = 0.9
HTTP_HELD_KB_GOAL = 1.0
PROTOCOL = ["frame"]  # set by --protocol; a list so functions see the change
PEAK_SHARE = 0.8
CALIBRATION_DURATION = "2s"
HOLD_DURATION_S = 12
RSS_POLL_S = 0.1
# The goals.
CPU_RATIO_GOAL = 0.8
USER_SHARE_GOAL = 0.15
THROUGHPUT_COST_GOAL = 0.01
CPU_COST_GOAL = 0.02
HELD_GOAL_CONNS = 100_000
HELD_GOAL_MB = 64


def process_tree(pid):
    """`pid` and its descendants (nginx runs as a master and a worker under run.sh)."""
    children = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_ticks(pid):
    """utime, stime of every thread of the process tree, live and exited."""
    utime = stime = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        utime, stime = utime + int(fields[11]), stime + int(fields[12])
    return utime, stime


def voluntary_switches(pid):
    total = 0
    for member in process_tree(pid):
        for status in glob.glob(f"/proc/{member}/task/*/status"):
            try:
                with open(status) as f:
                    total += sum(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))
            except FileNotFoundError:  # the thread ended between glob and open
                pass
    return total


def busy_seconds(cpus):
    """CPU time the listed CPUs spent busy (anything but idle and iowait), from /proc/stat."""
    total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *ticks = line.split()
            if name in cpus:
                user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, ticks[:8])
                total += user + nice + system + irq + softirq + steal
    return total / TICKS


def wait_for_idle(limit_s):
    """Seconds waited until CPUs 0-1 were idle; None if they never were within limit_s."""
    cpus = {"cpu" + SERVER_CPU, "cpu" + LOADGEN_CPU}
    started = time.monotonic()
    while True:
        before = busy_seconds(cpus)
        time.sleep(IDLE_PROBE_S)
        if (busy_seconds(cpus) - before) / (IDLE_PROBE_S * len(cpus)) <= IDLE_BUSY_MAX:
            return time.monotonic() - started
        if time.monotonic() - started >= limit_s:
            return None


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sample(pid):
    utime, stime = cpu_ticks(pid)
    return {"utime_s": utime / TICKS, "stime_s": stime / TICKS, "vcs": voluntary_switches(pid),
            "busy_s": busy_seconds({"cpu" + SERVER_CPU, "cpu" + LOADGEN_CPU}), "wall_s": time.monotonic()}


BASELINE = "engine-base"
# The binary "engine-base" runs (--baseline), if any.
BASELINE_BINARY = {}


def server_command(server, peers_dir):
    if is_engine(server):
        flags = ENGINE_VARIANTS.get(server, ([], []))[0]
        cores = [] if "--cores" in flags else ["--cores", "1"]
        binary = BASELINE_BINARY.get(server, ENGINE)
        protocol = HTTP if PROTOCOL[0] == "http" else []
        return [binary, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"] + protocol + cores + flags
    if server == "nginx":
        return [os.path.join(ROOT, "benches", "nginx", "run.sh"), "0"]
    return [os.path.join(peers_dir, f"peer-{server}"), "--listen", "127.0.0.1:0"]


def start_server(server, peers_dir):
    args = ["taskset", "-c", SERVER_CPUS.get(server, SERVER_CPU)] + server_command(server, peers_dir)
    env = dict(os.environ, RUST_LOG="warn")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    line = proc.stdout.readline()  # engine: "engine ready listen=.. admin=..", peers: "ready listen=.."
    fields = dict(word.split("=", 1) for word in line.split() if "=" in word)
    if "ready" not in line.split() or "listen" not in fields:
        stop_server(proc)
        sys.exit(f"{server} did not start: {line!r}")
    return proc, fields["listen"], fields.get("admin")


# The engine's own counts of its event loop: waits (wake-ups) and completions.
LOOP_COUNTERS = {"engine_waits_total": "waits", "engine_completions_total": "completions"}


def loop_counts(admin):
    """The engine's loop counters from its /metrics, or None (a peer, or an engine without them)."""
    if not admin:
        return None
    try:
        with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    counts = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in LOOP_COUNTERS:
            counts[LOOP_COUNTERS[name]] = int(value)
    return counts if len(counts) == len(LOOP_COUNTERS) else None


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def scenario_flags(scenario, args):
    flags = [args.peak_rate if flag == "CALIBRATED" else flag for flag in SCENARIOS[scenario][0]]
    if scenario in ("churn", "short-lived"):
        return flags + ["--total", str(args.total)]
    if scenario == "held":
        return flags + ["--duration", f"{HOLD_DURATION_S}s"]
    return flags + ["--duration", args.duration]


def loadgen_command(listen, report, flags):
    return ["taskset", "-c", LOADGEN_CPU, LOADGEN, "--target", listen, "--quiet", "--json", report] + flags


def runs_in(server, scenario):
    return server not in ENGINE_VARIANTS or scenario in ENGINE_VARIANTS[server][1]


def rss_kb(pid):
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
        except FileNotFoundError:
            pass
    return total


def open_fds(pid):
    total = 0
    for member in process_tree(pid):
        try:
            total += len(os.listdir(f"/proc/{member}/fd"))
        except (FileNotFoundError, PermissionError):
            pass
    return total


def run_loadgen(command, pid, held):
    """Runs the loadgen. While it opens `held` connections, samples the server's RSS: the first
    sample once half of them are open (their descriptors counted in /proc), the largest once all
    are; returns (exit code, stderr, {"half": kb, "all": kb} or None)."""
    fds_before, rss = open_fds(pid), {}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + LOADGEN_TIMEOUT_S
    while held and proc.poll() is None and time.monotonic() < deadline:
        opened = open_fds(pid) - fds_before
        if opened >= held // 2 and "half" not in rss:
            rss["half"] = rss_kb(pid)
        if opened >= held:
            rss["all"] = max(rss.get("all", 0), rss_kb(pid))
        time.sleep(RSS_POLL_S)
    complete = rss if "half" in rss and "all" in rss else None
    try:
        _, stderr = proc.communicate(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
    return proc.returncode, stderr, complete


def calibrate_peak(args, servers):
    """The fixed-peak rate: PEAK_SHARE of the slowest peer's ping-pong throughput, one short
    closed-loop run each (the engine's own if no peer runs)."""
    peers = [s for s in servers if not is_engine(s)] or ["engine"]
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        for server in peers:
            proc, listen, _ = start_server(server, args.peers_dir)
            try:
                command = loadgen_command(listen, report, SCENARIOS["pingpong"][0] + ["--duration", CALIBRATION_DURATION])
                subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=LOADGEN_TIMEOUT_S)
            finally:
                stop_server(proc)
            with open(report) as f:
                data = json.load(f)
            rates[server] = data["replies"] / max(data["duration_s"], 1e-9)
    slowest = min(rates, key=rates.get)
    rate = int(rates[slowest] * PEAK_SHARE / 1000) * 1000
    print(f"calibration: ping-pong peaks {', '.join(f'{s} {r:.0f}/s' for s, r in rates.items())}; "
          f"fixed-peak = {PEAK_SHARE:.0%} of {slowest} = {rate}/s", file=sys.stderr)
    return str(max(rate, 1000)), rates


def wrk_command(listen, scenario, args):
    flags = SCENARIOS[scenario][0]
    connections = flags[flags.index("--connections") + 1]
    script = os.path.join(PEERS, "wrk", WRK_SCRIPTS[scenario])
    return ["taskset", "-c", LOADGEN_CPU, "wrk", "-t1", f"-c{connections}", f"-d{args.duration}", "--latency",
            "-s", script, f"http://{listen}"]


WRK_UNITS_US = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}


def parse_wrk(text):
    """Requests, requests/s, latency percentiles (us) and error counts from wrk's output."""
    def number(pattern, default=None):
        found = re.search(pattern, text)
        return float(found.group(1)) if found else default

    latency = {}
    for percent, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        latency[percent] = float(value) * WRK_UNITS_US[unit]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "requests": number(r"(\d+) requests in"),
        "rate": number(r"Requests/sec:\s+([\d.]+)"),
        "latency_us": latency,
        "non_2xx": number(r"Non-2xx or 3xx responses: (\d+)", 0),
        "wrong": number(r"wrong replies: (\d+)", 0),
        "socket_errors": sum(int(n) for n in errors.groups()) if errors else 0,
    }


def server_costs(before, after, client_s, units):
    """The server's CPU between two samples, per unit of work; and the busy time of both CPUs
    spent by neither the server nor the generator: other processes on the machine (and
    unattributed interrupts). Interleaving spreads it, this shows how much there was."""
    user_s = after["utime_s"] - before["utime_s"]
    sys_s = after["stime_s"] - before["stime_s"]
    cpu_s = user_s + sys_s
    wall_s = after["wall_s"] - before["wall_s"]
    other_s = after["busy_s"] - before["busy_s"] - cpu_s - client_s
    return {"server_user_s": user_s, "server_sys_s": sys_s, "cpu_us_per_unit": cpu_s * 1e6 / units,
            "user_share": user_s / cpu_s if cpu_s > 0 else 0.0,
            "vcs_per_1k": (after["vcs"] - before["vcs"]) * 1000 / units,
            "other_cpu_percent": max(other_s, 0.0) * 100 / wall_s}


def run_wrk_once(server, scenario, args):
    """One run with wrk (written by others) as the generator: the same row as a loadgen run;
    wrk reports no p99.9, so that cell shows its p99."""
    idle_wait_s = wait_for_idle(args.idle_wait)
    proc, listen, _ = start_server(server, args.peers_dir)
    try:
        before = sample(proc.pid)
        client_before_s = children_cpu_seconds()
        done = subprocess.run(wrk_command(listen, scenario, args), capture_output=True, text=True,
                              timeout=LOADGEN_TIMEOUT_S)
        client_s = children_cpu_seconds() - client_before_s
        after = sample(proc.pid)
    finally:
        stop_server(proc)
    run = {"server": server, "scenario": scenario, "idle_wait_s": idle_wait_s, "loadgen_exit": done.returncode,
           "loadgen_stderr": (done.stderr + done.stdout).strip()[-2000:], "generator": "wrk"}
    wrk = parse_wrk(done.stdout)
    if done.returncode != 0 or not wrk["requests"] or "99" not in wrk["latency_us"]:
        return dict(run, ok=False)
    wall_s = after["wall_s"] - before["wall_s"]
    # With a pipelining script wrk prints 0.00us for its upper percentiles: not a measurement.
    p99 = wrk["latency_us"]["99"] or None
    return dict(run, ok=wrk["wrong"] == 0 and wrk["non_2xx"] == 0 and wrk["socket_errors"] == 0,
                replies=wrk["requests"], connections=None, duration_s=wall_s, rate=wrk["rate"],
                p50_us=wrk["latency_us"]["50"], p99_us=p99, p999_us=p99,
                **server_costs(before, after, client_s, wrk["requests"]),
                client_cpu_percent=client_s * 100 / wall_s,
                loadgen_process_cpu_s=client_s, lost_replies=0, corrupt_replies=int(wrk["wrong"]), errors={})


def run_once(server, scenario, args, tmp):
    if args.generator == "wrk" and scenario in WRK_SCRIPTS:
        return run_wrk_once(server, scenario, args)
    idle_wait_s = wait_for_idle(args.idle_wait)
    proc, listen, admin = start_server(server, args.peers_dir)
    report = os.path.join(tmp, "report.json")
    if os.path.exists(report):
        os.remove(report)
    try:
        # Scraped outside the measured interval, so the scrape's CPU is not counted.
        loop_before = loop_counts(admin)
        before = sample(proc.pid)
        rss_before_kb = rss_kb(proc.pid)
        client_before_s = children_cpu_seconds()  # the loadgen is the only child reaped meanwhile
        held = HELD if scenario == "held" else 0
        exit_code, stderr, held_rss = run_loadgen(loadgen_command(listen, report, scenario_flags(scenario, args)), proc.pid, held)
        client_s = children_cpu_seconds() - client_before_s
        after = sample(proc.pid)
        loop_after = loop_counts(admin)
    finally:
        stop_server(proc)
    run = {"server": server, "scenario": scenario, "idle_wait_s": idle_wait_s, "loadgen_exit": exit_code,
           "loadgen_stderr": stderr.strip()[-2000:]}
    if not os.path.exists(report):
        return dict(run, ok=False)
    if held:
        if exit_code != 0 or held_rss is None:
            return dict(run, ok=False)
        # Marginal: the second half of the connections, past one-off costs such as the receive
        # buffers first touched by HELLOs.
        return dict(run, ok=True, connections=held, rss_before_kb=rss_before_kb, rss_half_kb=held_rss["half"],
                    rss_held_kb=held_rss["all"], kb_per_conn=(held_rss["all"] - rss_before_kb) / held,
                    marginal_kb_per_conn=(held_rss["all"] - held_rss["half"]) / (held - held // 2))
    with open(report) as f:
        data = json.load(f)
    check = data["verification"]
    units = data["connections"]["opened"] if SCENARIOS[scenario][1] == "conn" else data["replies"]
    units = max(units, 1)
    if loop_before and loop_after:
        run.update({f"{key}_per_unit": (loop_after[key] - loop_before[key]) / units for key in loop_before})
    return dict(
        run,
        ok=exit_code == 0 and check["lost_replies"] == 0 and check["corrupt_replies"] == 0,
        replies=data["replies"],
        connections=data["connections"]["opened"],
        duration_s=data["duration_s"],
        rate=units / max(data["duration_s"], 1e-9),
        p50_us=data["latency_us"]["p50"],
        p99_us=data["latency_us"]["p99"],
        p999_us=data["latency_us"]["p999"],
        **server_costs(before, after, client_s, units),
        client_cpu_percent=data.get("client_cpu_percent"),
        loadgen_process_cpu_s=client_s,
        lost_replies=check["lost_replies"],
        corrupt_replies=check["corrupt_replies"],
        errors=data["errors"],
    )


def summary(values):
    return statistics.median(values), min(values), max(values)


def cell(values, digits):
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    m, lo, hi = summary(values)
    return f"{m:.{digits}f} ({lo:.{digits}f}-{hi:.{digits}f})"


def median(runs, key):
    return statistics.median(r[key] for r in runs)


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "kernel": os.uname().release, "cpu_model": model,
            "cpus_online": os.cpu_count(), "commit": commit or "unknown", "runtimes": runtime_versions()}


def runtime_versions():
    lock = os.path.join(PEERS, "Cargo.lock")
    if not os.path.exists(lock):
        return {}
    with open(lock) as f:
        text = f.read()
    found = re.findall(r'name = "(tokio|tokio-uring|monoio|compio|hyper)"\nversion = "([^"]+)"', text)
    return dict(found)


def held_table(results, servers, args, out):
    out(f"\n== held: loadgen {' '.join(scenario_flags('held', args))}")
    out(f"{'server':12} {'RSS before MB':>14} {'RSS held MB':>12} {'KB per connection (min-max)':>30} "
        f"{'marginal KB/conn (2nd half)':>30} {'bad':>4}")
    medians = {}
    for server in [s for s in servers if runs_in(s, "held")]:
        runs = [r for r in results if r["server"] == server and r["scenario"] == "held" and r["ok"]]
        bad = sum(1 for r in results if r["server"] == server and r["scenario"] == "held" and not r["ok"])
        if not runs:
            out(f"{server:12} no successful run ({bad} failed)")
            continue
        medians[server] = {key: median(runs, key) for key in ("rss_before_kb", "rss_held_kb", "kb_per_conn",
                                                                  "marginal_kb_per_conn")}
        out(f"{server:12} {medians[server]['rss_before_kb'] / 1024:14.1f} {medians[server]['rss_held_kb'] / 1024:12.1f} "
            f"{cell([r['kb_per_conn'] for r in runs], 2):>30} {cell([r['marginal_kb_per_conn'] for r in runs], 2):>30} {bad:4}")
    return medians


def scenario_table(scenario, results, servers, args, out):
    if scenario == "held":
        return held_table(results, servers, args, out)
    unit = SCENARIOS[scenario][1]
    out(f"\n== {scenario}: loadgen {' '.join(scenario_flags(scenario, args))}")
    rate_name = "conns/s" if unit == "conn" else "replies/s"
    out(f"{'server':12} {rate_name + ' median (min-max)':30} {'p50 us':18} {'p99 us':18} {'p99.9 us':20} "
        f"{'CPU us/' + unit:20} {'user %':16} {'vol cs/1k ' + ('conns' if unit == 'conn' else 'replies'):20} "
        f"{'client CPU%':>11} {'other CPU%':>15} {'bad':>4}")
    medians = {}
    for server in [s for s in servers if runs_in(s, scenario)]:
        runs = [r for r in results if r["server"] == server and r["scenario"] == scenario and r["ok"]]
        bad = sum(1 for r in results if r["server"] == server and r["scenario"] == scenario and not r["ok"])
        if not runs:
            out(f"{server:12} no successful run ({bad} failed)")
            continue
        medians[server] = {key: median(runs, key) for key in ("rate", "cpu_us_per_unit", "user_share")}
        medians[server]["ranges"] = {key: (min(r[key] for r in runs), max(r[key] for r in runs))
                                     for key in ("rate", "cpu_us_per_unit")}
        out(f"{server:12} {cell([r['rate'] for r in runs], 0):30} {cell([r['p50_us'] for r in runs], 0):18} "
            f"{cell([r['p99_us'] for r in runs], 0):18} {cell([r['p999_us'] for r in runs], 0):20} "
            f"{cell([r['cpu_us_per_unit'] for r in runs], 3):20} {cell([100 * r['user_share'] for r in runs], 0):16} "
            f"{cell([r['vcs_per_1k'] for r in runs], 1):20} {median(runs, 'client_cpu_percent'):11.0f} "
            f"{median(runs, 'other_cpu_percent'):6.0f} (max {max(r['other_cpu_percent'] for r in runs):3.0f}) {bad:4}")
    loop_cells = []
    for server in [s for s in medians if is_engine(s)]:
        runs = [r for r in results if r["server"] == server and r["scenario"] == scenario and r["ok"]
                and "completions_per_unit" in r]
        if runs:
            loop_cells.append(f"{server} {median(runs, 'completions_per_unit'):.3f} / {median(runs, 'waits_per_unit'):.3f}")
    if loop_cells:
        out(f"CQEs / waits per {unit} (medians): " + ", ".join(loop_cells))
    if BASELINE in medians and "engine" in medians:
        baseline_pairs(scenario, results, unit, out)
    variant_pairs(scenario, results, unit, medians, out)
    peers = {s: m for s, m in medians.items() if not is_engine(s)}
    for name in [s for s in medians if is_engine(s)] if peers else []:
        engine = medians[name]
        fastest = max(peers, key=lambda s: peers[s]["rate"])
        cheapest = min(peers, key=lambda s: peers[s]["cpu_us_per_unit"])
        out(f"{name} / best peer: {rate_name} {engine['rate'] / peers[fastest]['rate']:.2f}x (best: {fastest}), "
            f"CPU us/{unit} {engine['cpu_us_per_unit'] / peers[cheapest]['cpu_us_per_unit']:.2f}x (best: {cheapest})")
    return medians


def is_engine(server):
    return server in ("engine", BASELINE) or server in ENGINE_VARIANTS


def variant_pairs(scenario, results, unit, medians, out):
    """Each engine variant / the default engine, run by run, with the paired interval."""
    if "engine" not in medians:
        return
    for variant in [s for s in medians if s in ENGINE_VARIANTS]:
        cells = []
        for key, what in (("rate", "rate"), ("cpu_us_per_unit", f"CPU/{unit}"), ("p99_us", "p99")):
            ratios = pairstats.paired_ratios(runs_by_repetition(results, "engine", scenario, key),
                                             runs_by_repetition(results, variant, scenario, key))
            if ratios:
                cells.append(f"{what} " + pairstats.interval_text(ratios, lambda v: f"{v:.3f}x"))
        if cells:
            out(f"{variant} / engine: " + "; ".join(cells))


def baseline_pairs(scenario, results, unit, out):
    """engine / engine-base, run by run (the same repetition), with the paired interval."""
    for key, what in (("rate", "conns/s" if unit == "conn" else "replies/s"),
                      ("cpu_us_per_unit", f"CPU us/{unit}"), ("p99_us", "p99 us")):
        ratios = pairstats.paired_ratios(runs_by_repetition(results, BASELINE, scenario, key),
                                         runs_by_repetition(results, "engine", scenario, key))
        if ratios:
            text = pairstats.interval_text(ratios, lambda v: f"{v:.3f}x")
            out(f"engine / {BASELINE} {what}: {text}")


def goals(all_medians, results, out):
    out("\n== issue 4 goals (medians)")

    def verdict(ok):
        return "MET" if ok else "MISSED"

    def peers_of(medians):
        return {s: m for s, m in medians.items() if not is_engine(s)}

    for scenario in FIXED_RATE:
        medians = all_medians.get(scenario, {})
        peers = peers_of(medians)
        for engine in [s for s in medians if is_engine(s)] if peers else []:
            best = min(peers, key=lambda s: peers[s]["cpu_us_per_unit"])
            ratio = medians[engine]["cpu_us_per_unit"] / peers[best]["cpu_us_per_unit"]
            out(f"CPU us/reply <= {CPU_RATIO_GOAL}x best peer at {scenario}: {engine} {medians[engine]['cpu_us_per_unit']:.3f}, "
                f"{best} {peers[best]['cpu_us_per_unit']:.3f} -> {ratio:.2f}x  {verdict(ratio <= CPU_RATIO_GOAL)}")
            ratios = pairstats.paired_ratios(runs_by_repetition(results, best, scenario, "cpu_us_per_unit"),
                                             runs_by_repetition(results, engine, scenario, "cpu_us_per_unit"))
            if ratios:
                out("    paired: " + pairstats.verdict(ratios, CPU_RATIO_GOAL, "ratio", lambda v: f"{v:.2f}x",
                                                       lambda v: f"{v}x")[0])
        if "engine" not in medians or not peers:
            out(f"CPU us/reply <= {CPU_RATIO_GOAL}x best peer at {scenario}: not measured")
    medians = all_medians.get("pipelined", {})
    peers = peers_of(medians)
    if "engine" in medians and peers:
        best = max(peers, key=lambda s: peers[s]["rate"])
        engine = medians["engine"]
        out(f"pipelined throughput >= best peer median: engine {engine['rate']:.0f}, {best} {peers[best]['rate']:.0f} "
            f"-> {engine['rate'] / peers[best]['rate']:.2f}x  {verdict(engine['rate'] >= peers[best]['rate'])}")
    else:
        out("pipelined throughput >= best peer median: not measured")
    if "engine" in medians:
        share = medians["engine"]["user_share"]
        out(f"server user time <= {USER_SHARE_GOAL:.0%} of server CPU on pipelined: engine {share:.1%}  "
            f"{verdict(share <= USER_SHARE_GOAL)}")
    else:
        out(f"server user time <= {USER_SHARE_GOAL:.0%} of server CPU on pipelined: not measured")
    classification_goals(results, out)
    held = all_medians.get("held", {}).get("engine")
    if held:
        projected_mb = (held["rss_held_kb"] + held["marginal_kb_per_conn"] * (HELD_GOAL_CONNS - HELD)) / 1024
        out(f"{HELD_GOAL_CONNS} idle connections <= {HELD_GOAL_MB} MB RSS: RSS at {HELD} held + marginal cost x "
            f"{HELD_GOAL_CONNS - HELD} more = {projected_mb:.1f} MB  {verdict(projected_mb <= HELD_GOAL_MB)} "
            f"(a projection: this machine's fd limit cannot hold {HELD_GOAL_CONNS})")
    else:
        out(f"{HELD_GOAL_CONNS} idle connections <= {HELD_GOAL_MB} MB RSS: not measured")


def http_goals(all_medians, results, out):
    """Issue 12's goals: server CPU per request <= 0.9x the cheapest peer with p99 no worse than
    the best peer's, short-lived connections/s >= the best peer, RSS per idle keep-alive
    connection <= 1 KB, classification log vs off <= 2% CPU per request; each as a median and,
    where it pairs runs, a paired interval (pairstats.py: MET, MISSED or UNRESOLVED)."""
    out("\n== issue 12 goals (HTTP)")
    ratio = (lambda v: f"{v:.2f}x", lambda v: f"{v:.2f}x")
    for scenario in ["pipelined", "baseline", "baseline-64", "baseline-512"] + HTTP_FIXED_RATE:
        medians = all_medians.get(scenario, {})
        peers = {s: m for s, m in medians.items() if not is_engine(s)}
        if "engine" not in medians or not peers:
            continue
        cheapest = min(peers, key=lambda s: peers[s]["cpu_us_per_unit"])
        cpu = pairstats.paired_ratios(runs_by_repetition(results, cheapest, scenario, "cpu_us_per_unit"),
                                      runs_by_repetition(results, "engine", scenario, "cpu_us_per_unit"))
        if cpu:
            out(f"{scenario}: CPU us/request engine / {cheapest}: "
                + pairstats.verdict(cpu, HTTP_CPU_RATIO_GOAL, "ratio", *ratio)[0])
        tails = {s: [r["p99_us"] for r in results if r["server"] == s and r["scenario"] == scenario
                     and r["ok"] and r.get("p99_us") is not None] for s in peers}
        tails = {s: statistics.median(values) for s, values in tails.items() if values}
        if not tails:
            continue  # the generator measured no tail (wrk when pipelining)
        fastest_tail = min(tails, key=tails.get)
        tail = pairstats.paired_ratios(runs_by_repetition(results, fastest_tail, scenario, "p99_us"),
                                       runs_by_repetition(results, "engine", scenario, "p99_us"))
        if tail:
            out(f"{scenario}: p99 engine / {fastest_tail}: " + pairstats.verdict(tail, 1.0, "ratio", *ratio)[0])
    medians = all_medians.get("short-lived", {})
    peers = {s: m for s, m in medians.items() if not is_engine(s)}
    if "engine" in medians and peers:
        fastest = max(peers, key=lambda s: peers[s]["rate"])
        costs = pairstats.paired_costs(runs_by_repetition(results, fastest, "short-lived", "rate"),
                                       runs_by_repetition(results, "engine", "short-lived", "rate"), True)
        if costs:
            out(f"short-lived: connections/s engine vs {fastest}, shortfall "
                + pairstats.verdict(costs, 0.0)[0])
    held = all_medians.get("held", {}).get("engine")
    if held:
        kb = held["kb_per_conn"]
        out(f"held: RSS per idle keep-alive connection {kb:.2f} KB (goal <= {HTTP_HELD_KB_GOAL} KB)  "
            + ("MET" if kb <= HTTP_HELD_KB_GOAL else "MISSED"))
    for scenario in ["pipelined", "baseline-64", "fixed-40k", "short-lived"]:
        key = "rate" if SCENARIOS[scenario][1] == "conn" else "cpu_us_per_unit"
        costs = pairstats.paired_costs(runs_by_repetition(results, "engine-off", scenario, key),
                                       runs_by_repetition(results, "engine", scenario, key), key == "rate")
        if costs:
            what = "connections/s" if key == "rate" else "CPU/request"
            out(f"classification log vs off at {scenario}, {what}: " + pairstats.verdict(costs, CPU_COST_GOAL)[0])


def classification_goals(results, out):
    """--classify off against the default (log, no file) and log with a close-log file, as paired
    ratios of the runs of one repetition (see pairstats.py: MET, MISSED or UNRESOLVED)."""
    for scenario, key, limit, higher in (("pipelined", "rate", THROUGHPUT_COST_GOAL, True),
                                         ("churn", "rate", THROUGHPUT_COST_GOAL, True),
                                         ("fixed-40k", "cpu_us_per_unit", CPU_COST_GOAL, False)):
        what = "throughput" if higher else "CPU/reply"
        off = runs_by_repetition(results, "engine-off", scenario, key)
        for variant in ("engine", "engine-closelog"):
            costs = pairstats.paired_costs(off, runs_by_repetition(results, variant, scenario, key), higher)
            name = f"classification {variant} vs engine-off at {scenario}, {what}"
            out(f"{name}: " + (pairstats.verdict(costs, limit)[0] if costs else "not measured"))


def runs_by_repetition(results, server, scenario, key):
    """`key` of each run of (server, scenario) in repetition order, None where the run failed."""
    runs = [r for r in results if r["server"] == server and r["scenario"] == scenario]
    return [r.get(key) if r["ok"] else None for r in runs]


def use_protocol(protocol):
    """Swaps the scenario, peer and variant tables for `protocol` (in place: every function
    reads these globals)."""
    PROTOCOL[0] = protocol
    if protocol != "http":
        return
    SCENARIOS.clear()
    SCENARIOS.update(HTTP_SCENARIOS)
    ENGINE_VARIANTS.clear()
    ENGINE_VARIANTS.update(HTTP_VARIANTS)
    PEER_SERVERS[:] = HTTP_PEERS
    SERVERS[:] = ["engine"] + HTTP_PEERS + list(HTTP_VARIANTS)
    FIXED_RATE[:] = HTTP_FIXED_RATE


def main():
    global LOADGEN
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--protocol", choices=["frame", "http"], default="frame")
    use_protocol(pre.parse_known_args()[0].protocol)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="repetitions of every (scenario, server)")
    parser.add_argument("--duration", default="3s", help="length of each closed/open-loop run")
    parser.add_argument("--total", type=int, default=10000, help="connections per churn run")
    parser.add_argument("--scenario", default="all", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--servers", default=",".join(SERVERS), help="comma-separated subset of servers")
    parser.add_argument("--idle-wait", type=float, default=20, help="most seconds to wait for idle CPUs before a run")
    parser.add_argument("--peers-dir", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(PEERS, "target")), "release"),
                        help="where the peer-* binaries are (default: $CARGO_TARGET_DIR/release)")
    parser.add_argument("--out", default=os.path.join(RESULTS, time.strftime("%Y-%m-%d") + "-compare"),
                        help="writes OUT.json (raw runs) and OUT.txt (this report)")
    parser.add_argument("--report", metavar="JSON", help="no runs: print the report of a saved OUT.json again "
                        "(and rewrite its OUT.txt)")
    parser.add_argument("--protocol", choices=["frame", "http"], default="frame",
                        help="frame: the engine's frame protocol against tokio, tokio-uring, monoio, compio; "
                        "http: HttpArena's H1 workloads against nginx, hyper and a raw epoll server")
    parser.add_argument("--generator", choices=["loadgen", "wrk"], default="loadgen",
                        help="wrk: drive the pipelined and baseline scenarios with wrk instead (http only)")
    parser.add_argument("--loadgen", metavar="PATH", help=f"the loadgen binary (default {LOADGEN})")
    parser.add_argument("--baseline", metavar="PATH", help="an engine binary (e.g. of the commit before a "
                        "change) run as engine-base in every scenario, paired with engine")
    args = parser.parse_args()
    LOADGEN = args.loadgen or LOADGEN
    if args.baseline:
        BASELINE_BINARY[BASELINE] = args.baseline
    if args.report:
        return report_again(args.report)
    scenarios = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    servers = args.servers.split(",") + ([BASELINE] if args.baseline else [])
    for name in scenarios:
        if name not in SCENARIOS:
            sys.exit(f"unknown scenario {name!r}: one of {', '.join(SCENARIOS)}")
    for binary in (ENGINE, LOADGEN):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: run `cargo build --release -p engine -p loadgen` first")
    for server in list(servers):
        binary = server_command(server, args.peers_dir)[0]
        known = server in SERVERS or server in ENGINE_VARIANTS or server == BASELINE
        if not known or not os.path.exists(binary):
            print(f"skipping {server}: {binary} is missing (build benches/peers, or see --peers-dir)", file=sys.stderr)
            servers.remove(server)
    info = machine()
    results = []
    started = time.monotonic()
    args.peak_rate = None
    if "fixed-peak" in scenarios:
        args.peak_rate, info["peak_calibration"] = calibrate_peak(args, servers)
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            for scenario in scenarios:
                for server in [s for s in servers if runs_in(s, scenario)]:
                    results.append(run_once(server, scenario, args, tmp))
                    r = results[-1]
                    status = "ok" if r["ok"] else f"FAILED (exit {r['loadgen_exit']}: {r['loadgen_stderr'][-200:]})"
                    rate = f"{r['rate']:.0f}/s" if "rate" in r else "-"
                    print(f"run {run + 1}/{args.runs} {scenario:10} {server:12} {rate:>12} {status}", file=sys.stderr)
    info["total_s"] = time.monotonic() - started
    lines = report(info, args, results, scenarios, servers)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"machine": info, "args": vars(args), "scenarios": {s: scenario_flags(s, args) for s in scenarios},
                   "runs": results}, f, indent=1)
    with open(args.out + ".txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"\nwrote {args.out}.json and {args.out}.txt", file=sys.stderr)


def report_again(path):
    try:
        with open(path) as f:
            data = json.load(f)
        args = argparse.Namespace(**data["args"])
        runs, info, scenarios = data["runs"], data["machine"], list(data["scenarios"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        sys.exit(f"cannot read {path} as a compare.py result: {error}")
    use_protocol(getattr(args, "protocol", "frame"))
    ran = {r["server"] for r in runs}
    servers = [s for s in args.servers.split(",") if s in ran]
    lines = report(info, args, runs, scenarios, servers)
    with open(os.path.splitext(path)[0] + ".txt", "w") as f:
        f.write("\n".join(lines) + "\n")


def report(info, args, results, scenarios, servers):
    """Prints the tables and goals; returns the printed lines."""
    lines = []

    def out(text):
        print(text)
        lines.append(text)

    out(f"engine vs peers, {args.runs} interleaved runs of {args.duration} (churn: {args.total} connections), "
        f"{info['date']}, kernel {info['kernel']}, CPU {info['cpu_model']} ({info['cpus_online']} online), "
        f"commit {info['commit']}")
    out(f"servers pinned to CPU {SERVER_CPU}, loadgen to CPU {LOADGEN_CPU}; peers: "
        + ", ".join(f"{name} {version}" for name, version in sorted(info["runtimes"].items()))
        + (f"; total {info['total_s']:.0f} s" if "total_s" in info else ""))
    out("cells: median (min-max) over runs; CPU = utime+stime of the server process (clock ticks of "
        f"{1000 / TICKS:.0f} ms); bad = runs with a loadgen error or a lost/corrupt reply (left out)")
    out("client CPU% = the loadgen's own CPU (100 = CPU 1 saturated: then the client, not the server, "
        "limits throughput); other CPU% = busy time of CPUs 0-1 used by neither, per wall time (median, max)")
    waits = [r["idle_wait_s"] for r in results]
    out(f"runs started on a busy machine (CPUs 0-1 still over {IDLE_BUSY_MAX:.0%} busy after --idle-wait {args.idle_wait:.0f}s): "
        f"{sum(w is None for w in waits)} of {len(waits)}")
    all_medians = {scenario: scenario_table(scenario, results, servers, args, out) for scenario in scenarios}
    if PROTOCOL[0] == "http":
        http_goals(all_medians, results, out)
    else:
        goals(all_medians, results, out)
    return lines


if __name__ == "__main__":
    main()
