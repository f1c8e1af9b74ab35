#!/usr/bin/env python3
"""Chat fan-out load: M members in one room, S of them saying numbered, timestamped lines; every
member counts the lines it gets back, checks their order and measures their latency.

Works against any server that speaks the chat line protocol of benches/peers/chat-tokio
(`JOIN <room> <nick>` -> `OK` + `JOINED <room> <nick>` to all; `SAY <room> <text>` ->
`MSG <room> <nick> <text>` to all, the sender included). One run:

  1. setup (at most 5 s): connect M members to 127.0.0.1, JOIN all but the last, wait for every
     `OK`, JOIN the last and wait until every member has seen its `JOINED` (all are in the room);
  2. run (--duration s): the first S members send `SAY <room> <sender> <seq> <send_us>`, at
     --rate lines/s in total (open loop: the lines due are made and sent every --tick-ms, so a
     member reads several per read), or with --rate 0 as fast as the echoes allow (closed loop:
     at most 64 lines in flight per sender, counted from the sender's own copy);
  3. drain (at most 3 s): wait for the lines still on their way (sent x M deliveries in all).

Every member reads with one selector loop and, for each `MSG`, checks that the sequence numbers
of each sender rise (an order violation otherwise; must be 0) and records the latency from the
send timestamp to the read. Reported: deliveries/s (lines received by members within the run
window / duration), messages/s sent, order violations, p50/p99 latency, missing deliveries
after the drain, members the server closed, and with --server-pid the server's CPU seconds
(utime + stime of /proc/PID/stat, all its threads) per delivery over run + drain.

The loader is single-threaded Python: when its own CPU (reported as `client cpu`) is near 100% of
the run, it is the bottleneck, deliveries/s is a lower bound of what the server can do, and
latency includes the loader's queueing (a member read late is a late delivery). The comparable
figure across servers is then the server CPU microseconds per delivery, at the same --members,
--senders, --rate and --tick-ms (how many lines a server can write per syscall depends on
them); pin the server and this script to different CPUs:

    cargo build --release --manifest-path benches/peers/chat-tokio/Cargo.toml
    taskset -c 0 benches/peers/target/release/peer-chat-tokio --listen 127.0.0.1:7300 &
    taskset -c 1 python3 benches/scripts/chat_fanout.py --addr 127.0.0.1:7300 \\
        --members 100 --senders 4 --rate 2000 --duration 5 --server-pid $!

Exit status 0, or 1 when setup failed or a member saw lines out of order. Only 127.0.0.1; the
whole run ends by itself within duration + 10 s.
"""

import argparse
import json
import os
import re
import resource
import selectors
import socket
import sys
import time
from array import array

SETUP_S = 5.0  # connect + JOIN, at most
DRAIN_S = 3.0  # waiting for the deliveries still on their way, at most
IN_FLIGHT_MAX = 64  # per sender with --rate 0
RECV_LEN = 256 * 1024
SENDER_BACKLOG_MAX = 1 << 20  # unsent bytes per sender before it stops making lines
BURST_MAX = 1024  # lines made per tick in the open loop (the rest waits a tick)
OTHER_LINES_KEPT = 5  # non-MSG lines quoted in the report

SEQ_DIGITS = 10  # zero-padded, so sequence numbers compare as bytes (no int() per delivery)

# `MSG <room> <nick> <sender> <seq> <send_us>`: one regex call per read finds every delivery.
MSG_RE = re.compile(rb"^MSG \S+ \S+ (\d+) (\d{%d}) (\d+)$" % SEQ_DIGITS, re.MULTILINE)


def now_us():
    return time.monotonic_ns() // 1000


class Member:
    """One connection: its socket, its partial line and what it received."""

    __slots__ = ("index", "key", "sock", "tail", "last_seq", "deliveries", "in_window", "closed",
                 "oks", "ready", "errors", "out", "seq", "echo_seq")

    def __init__(self, index, sock):
        self.index = index
        self.key = b"%d" % index  # the sender field of its lines
        self.sock = sock
        self.tail = b""
        self.last_seq = {}  # sender field -> highest zero-padded seq seen
        self.deliveries = 0
        self.in_window = 0
        self.closed = False
        self.oks = 0  # setup: OK lines seen
        self.ready = False  # setup: saw the last joiner's JOINED
        self.errors = []  # setup: ERR lines
        self.out = bytearray()  # a sender's unsent bytes
        self.seq = 0  # a sender's next sequence number
        self.echo_seq = -1  # a sender's highest own seq received back


class Stats:
    """Counters shared by every member."""

    def __init__(self):
        self.violations = 0
        self.other_lines = 0
        self.other_kept = []
        # Latency as runs: latency_us[i] was seen latency_n[i] times (the lines of one read
        # that were made together), so a run of millions of deliveries stays small to sort.
        self.latency_us = array("q")
        self.latency_n = array("q")
        self.closed = 0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--addr", default="127.0.0.1:7300", help="server HOST:PORT; HOST must be 127.0.0.1")
    p.add_argument("--members", type=int, default=100, help="connections in the room (default 100)")
    p.add_argument("--senders", type=int, default=4, help="members that SAY, the first S (default 4)")
    p.add_argument("--rate", type=float, default=2000,
                   help="SAY lines/s in total, open loop; 0 = closed loop, %d in flight per sender "
                        "(default 2000)" % IN_FLIGHT_MAX)
    p.add_argument("--duration", type=float, default=5, help="seconds of sending (default 5)")
    p.add_argument("--tick-ms", type=float, default=2,
                   help="open loop: the lines due are made and sent together every tick (default 2; "
                        "smaller is smoother and costs the loader about one read per delivery)")
    p.add_argument("--room", default="fanout", help="room name (default fanout)")
    p.add_argument("--server-pid", type=int, help="server process: report its CPU per delivery")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args()
    host, _, port = args.addr.rpartition(":")
    if host != "127.0.0.1" or not port.isdigit():
        p.error("--addr must be 127.0.0.1:PORT")
    if not 1 <= args.senders <= args.members:
        p.error("need 1 <= --senders <= --members")
    if args.rate < 0 or not 0 < args.duration <= 3600 or not 0 < args.tick_ms <= 1000:
        p.error("need --rate >= 0, 0 < --duration <= 3600 and 0 < --tick-ms <= 1000")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", args.room):
        p.error("--room must be 1-32 of [A-Za-z0-9_-]")
    if args.server_pid is not None:
        try:
            server_cpu_s(args.server_pid)
        except (OSError, IndexError, ValueError) as error:
            p.error(f"--server-pid {args.server_pid}: {error}")
    args.port = int(port)
    return args


def server_cpu_s(pid):
    """utime + stime of the whole process (every thread, live and exited), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_fd_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))


def connect(args, deadline):
    members = []
    for i in range(args.members):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"connected {i} of {args.members} in {SETUP_S:.0f} s")
        sock = socket.create_connection(("127.0.0.1", args.port), timeout=left)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        members.append(Member(i, sock))
    return members


def setup_read(member, last_joined, stats):
    """Setup: counts OKs, notes ERRs and whether the last joiner's JOINED has come."""
    data = recv(member, stats)
    if not data:
        return
    data = member.tail + data
    cut = data.rfind(b"\n") + 1
    member.tail = data[cut:]
    for line in data[:cut].split(b"\n")[:-1]:
        line = line.rstrip(b"\r")
        if line == b"OK":
            member.oks += 1
        elif line == last_joined:
            member.ready = True
        elif line.startswith(b"ERR"):
            member.errors.append(line)


def recv(member, stats):
    """One read; None if nothing was there or the server closed the member."""
    try:
        data = member.sock.recv(RECV_LEN)
    except BlockingIOError:
        return None
    except OSError:
        data = b""
    if not data:
        mark_closed(member, stats)
    return data or None


def mark_closed(member, stats):
    """The server closed the member (EOF, reset): it reads and sends no more."""
    if not member.closed:
        member.closed = True
        stats.closed += 1


def setup(args, selector, members, stats, deadline):
    """JOIN everyone; returns once every member has seen the last joiner's JOINED."""
    room = args.room.encode()
    last = members[-1]
    last_joined = b"JOINED %s m%d" % (room, last.index)

    def wait(done, what):
        while not all(done(m) or m.closed for m in members):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: not done in {SETUP_S:.0f} s")
            for key, _ in selector.select(min(left, 0.1)):
                setup_read(key.data, last_joined, stats)
        bad = [m for m in members if m.closed or m.errors]
        if bad:
            m = bad[0]
            raise RuntimeError(f"{what}: member {m.index} {'closed' if m.closed else m.errors[0]!r}")

    for m in members[:-1]:
        m.sock.sendall(b"JOIN %s m%d\n" % (room, m.index))
    wait(lambda m: m is last or m.oks >= 1, "JOIN")
    last.sock.sendall(b"JOIN %s m%d\n" % (room, last.index))
    wait(lambda m: m.oks >= 1 and m.ready, "last JOINED")


def read_messages(member, stats, t_end_us):
    """Run: every MSG of one read, its order and latency; other lines are counted."""
    data = recv(member, stats)
    if not data:
        return
    received_us = time.monotonic_ns() // 1000
    if member.tail:
        data = member.tail + data
    cut = data.rfind(b"\n") + 1
    member.tail = data[cut:]
    found = MSG_RE.findall(data, 0, cut)
    lines = data.count(b"\n", 0, cut)
    if lines != len(found):
        note_other_lines(data[:cut], stats)
    # The hot loop: bytes compare for order; lines made together share a stamp, so int() runs
    # once per run of equal stamps, not per line.
    last = member.last_seq
    violations = 0
    stamp = None
    run = 0
    for sender, seq, sent_us in found:
        if seq <= last.get(sender, b""):
            violations += 1
        else:
            last[sender] = seq
        if sent_us != stamp:
            if run:
                stats.latency_us.append(received_us - int(stamp))
                stats.latency_n.append(run)
            stamp = sent_us
            run = 0
        run += 1
    if run:
        stats.latency_us.append(received_us - int(stamp))
        stats.latency_n.append(run)
    stats.violations += violations
    member.deliveries += len(found)
    if received_us <= t_end_us:
        member.in_window += len(found)
    if member.key in last:
        member.echo_seq = int(last[member.key])


def note_other_lines(chunk, stats):
    for line in chunk.split(b"\n")[:-1]:
        if not MSG_RE.fullmatch(line):
            stats.other_lines += 1
            if len(stats.other_kept) < OTHER_LINES_KEPT:
                stats.other_kept.append(line[:120].decode(errors="replace"))


def make_lines(sender, room, count):
    """Queues `count` SAY lines on a sender, stamped now."""
    stamp = now_us()
    first = sender.seq
    sender.seq += count
    sender.out += b"".join(b"SAY %s %d %0*d %d\n" % (room, sender.index, SEQ_DIGITS, seq, stamp)
                           for seq in range(first, first + count))


def flush(sender, stats):
    if not sender.out or sender.closed:
        return
    try:
        sent = sender.sock.send(sender.out)
    except BlockingIOError:
        return
    except OSError:
        mark_closed(sender, stats)
        return
    del sender.out[:sent]


def run(args, selector, members, stats):
    """Sends for --duration seconds, then drains. Returns the monotonic times of the start, the
    end of sending and the end of the drain, and this process's CPU seconds while sending (a
    delivery read after the planned end, in the last turn, counts as out of the window)."""
    room = args.room.encode()
    senders = members[:args.senders]
    cpu_start = time.process_time()
    t_start = time.monotonic()
    t_end = t_start + args.duration
    t_end_us = int(t_end * 1e6)
    tick_s = args.tick_ms / 1000
    made = 0  # open loop: lines made so far
    next_sender = 0
    next_tick = t_start
    while True:
        now = time.monotonic()
        if now >= t_end:
            break
        if args.rate > 0:
            if now >= next_tick:
                next_tick = now + tick_s
                due = min(int(args.rate * (now - t_start)) + 1 - made, BURST_MAX)
                next_sender = share_out(senders, room, due, next_sender)
                made += due
            timeout = max(0.0, next_tick - time.monotonic())
        else:
            for sender in senders:
                free = IN_FLIGHT_MAX - (sender.seq - 1 - sender.echo_seq)
                if free > 0 and not sender.closed:
                    make_lines(sender, room, free)
            timeout = 0.005
        for sender in senders:
            flush(sender, stats)
        for key, _ in selector.select(min(timeout, t_end - now)):
            read_messages(key.data, stats, t_end_us)
    client_cpu_s = time.process_time() - cpu_start
    t_end = time.monotonic()  # the last turn may end a little after the planned end
    drain_end = t_end + DRAIN_S
    while time.monotonic() < drain_end:
        sent = sum(s.seq for s in senders)
        live = [m for m in members if not m.closed]
        if sum(m.deliveries for m in live) >= sent * len(live):
            break
        for sender in senders:
            flush(sender, stats)
        for key, _ in selector.select(0.05):
            read_messages(key.data, stats, t_end_us)
    return t_start, t_end, time.monotonic(), client_cpu_s


def share_out(senders, room, due, first):
    """Open loop: makes `due` lines, an even share per sender, the odd ones from `first` on;
    returns where the next odd ones start. A sender that is closed or whose unsent bytes passed
    SENDER_BACKLOG_MAX skips its share (those lines are not made later)."""
    shares = [due // len(senders)] * len(senders)
    for i in range(due % len(senders)):
        shares[(first + i) % len(senders)] += 1
    for sender, share in zip(senders, shares):
        if share and not sender.closed and len(sender.out) < SENDER_BACKLOG_MAX:
            make_lines(sender, room, share)
    return (first + due % len(senders)) % len(senders)


def percentiles(values, counts, fractions):
    """The given percentiles of values seen counts[i] times each (None when empty)."""
    total = sum(counts)
    if not total:
        return [None] * len(fractions)
    order = sorted(range(len(values)), key=values.__getitem__)
    result = []
    for fraction in fractions:
        rank = min(total - 1, int(fraction * total))
        seen = 0
        for i in order:
            seen += counts[i]
            if seen > rank:
                result.append(values[i])
                break
    return result


def report(args, members, stats, times, server_cpu_s):
    t_start, t_end, t_drained, client_cpu_s = times
    senders = members[:args.senders]
    sent = sum(s.seq for s in senders)
    unsent = sum(len(s.out) for s in senders)
    delivered = sum(m.deliveries for m in members)
    in_window = sum(m.in_window for m in members)
    duration = t_end - t_start
    p50, p99 = percentiles(stats.latency_us, stats.latency_n, (0.50, 0.99))
    result = {
        "addr": args.addr, "members": args.members, "senders": args.senders, "rate": args.rate,
        "duration_s": round(duration, 3), "drain_s": round(t_drained - t_end, 3),
        "messages_sent": sent, "messages_per_s": round(sent / duration, 1),
        "unsent_bytes": unsent,
        "deliveries": delivered, "deliveries_in_window": in_window,
        "deliveries_per_s": round(in_window / duration, 1),
        "expected_deliveries": sent * args.members,
        "missing_deliveries": sent * args.members - delivered,
        "order_violations": stats.violations,
        "latency_p50_us": p50, "latency_p99_us": p99,
        "members_closed": stats.closed, "other_lines": stats.other_lines,
        "other_lines_first": stats.other_kept,
        "client_cpu_s": round(client_cpu_s, 3),
        "client_cpu_share": round(client_cpu_s / duration, 3),
        # Open loop: kept up when the window saw 99% of what the rate asks (some of the last
        # tick's lines are still on their way at the end).
        "kept_up": bool(args.rate) and in_window >= 0.99 * args.rate * args.duration * args.members,
        "loader_saturated": client_cpu_s / duration > 0.9,
    }
    if server_cpu_s is not None:
        result["server_cpu_s"] = round(server_cpu_s, 3)
        result["server_cpu_us_per_delivery"] = round(server_cpu_s * 1e6 / delivered, 4) if delivered else None
    return result


def print_report(r):
    def ms(us):
        return "-" if us is None else f"{us / 1000:.2f} ms"
    print(f"members {r['members']}, senders {r['senders']}, rate {r['rate']:g}/s "
          f"({'closed loop' if not r['rate'] else 'open loop'}), {r['duration_s']} s + drain {r['drain_s']} s")
    print(f"deliveries/s        {r['deliveries_per_s']:,.0f}  ({r['deliveries_in_window']:,} in the window)")
    print(f"messages/s sent     {r['messages_per_s']:,.0f}  ({r['messages_sent']:,} lines)")
    print(f"order violations    {r['order_violations']}")
    print(f"latency p50 / p99   {ms(r['latency_p50_us'])} / {ms(r['latency_p99_us'])}")
    print(f"missing deliveries  {r['missing_deliveries']:,} of {r['expected_deliveries']:,} after the drain")
    quoted = r["other_lines_first"] or ""
    print(f"members closed      {r['members_closed']}, other lines {r['other_lines']} {quoted}")
    if r["kept_up"] and r["loader_saturated"]:
        verdict = "the offered rate was delivered; the loader is saturated (latency includes its queueing)"
    elif r["kept_up"]:
        verdict = "the offered rate was delivered"
    elif r["loader_saturated"]:
        verdict = "the loader is saturated: deliveries/s is a lower bound, compare server cpu per delivery"
    else:
        verdict = "the loader is not saturated"
    print(f"client cpu          {r['client_cpu_s']} s while sending ({r['client_cpu_share']:.0%}): {verdict}")
    if "server_cpu_s" in r:
        print(f"server cpu          {r['server_cpu_s']} s, {r['server_cpu_us_per_delivery']} us per delivery")
    if r["members_closed"] or r["missing_deliveries"]:
        print("warning: the server closed members or lines went missing (slow consumers? a rate the "
              "loader cannot read?): not a steady state")


def main():
    args = parse_args()
    raise_fd_limit(args.members + 64)
    stats = Stats()
    selector = selectors.DefaultSelector()
    deadline = time.monotonic() + SETUP_S
    members = []
    try:
        members = connect(args, deadline)
        for m in members:
            selector.register(m.sock, selectors.EVENT_READ, m)
        setup(args, selector, members, stats, deadline)
    except (OSError, TimeoutError, RuntimeError) as error:
        print(f"setup failed: {error}", file=sys.stderr)
        return 1
    server_before = server_cpu_s(args.server_pid) if args.server_pid else None
    times = run(args, selector, members, stats)
    server_used = None
    if args.server_pid:
        try:
            server_used = server_cpu_s(args.server_pid) - server_before
        except OSError as error:  # the server exited during the run
            print(f"--server-pid {args.server_pid}: {error}", file=sys.stderr)
    for m in members:
        m.sock.close()
    result = report(args, members, stats, times, server_used)
    print_report(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 1 if stats.violations else 0


if __name__ == "__main__":
    sys.exit(main())
