#!/usr/bin/env python3
"""Conformance checks of a line-based chat server, written from its specification only: JOIN
(OK to the sender, JOINED to every member, the sender included), SAY (MSG to every member, the
sender included; ERR not in room for a non-member), LEAVE (OK; LEFT ... leave to the others),
QUIT (BYE, then close), ERR unknown command, \\r\\n line endings, nick and room names (1-32 bytes
of [A-Za-z0-9_-]), the LEFT cause of a connection that ends (peer_fin, peer_reset, peer_close,
protocol_error for a line over 4 KiB, idle_timeout, slow_consumer), and the order of each
sender's lines at every member. Every check uses fresh connections and fresh room names.
Connections may land on any of the server's cores; that must not matter. Loopback only.

usage: check_chat.py HOST:PORT [--close-log FILE] [--idle-timeout-ms N] [--max-queued BYTES]
  --close-log FILE      the server's JSON-lines close log (one record per closed connection,
                        with "cause" and "peer" ("ip:port")): each leaver's record must carry
                        the cause of its LEFT line
  --idle-timeout-ms N   the server's idle timeout: enables the idle_timeout check, and every
                        other connection sends a SAY in a private room of its own more often
                        than that, so that no check is cut short by the timeout
  --max-queued BYTES    the server's output limit per connection: enables the slow_consumer check
"""

import argparse
import collections
import json
import os
import queue
import random
import select
import socket
import struct
import sys
import threading
import time

TIMEOUT_S = 5.0        # the wait for a line that must come
QUIET_S = 0.3          # the wait that asserts that no line comes
LINE_LIMIT = 4096      # a line over this is protocol_error
EOF = object()         # queued by a reader when the server closed
RUN = "%06x" % random.randrange(1 << 24)

# set by main()
IDLE_MS = None
MAX_QUEUED = None
CLOSE_LOG = None

_names = iter(range(1, 1 << 30))


def fresh(prefix):
    """A room or nick name no earlier check (or run) used: [A-Za-z0-9_-], at most 32 bytes."""
    name = f"{prefix}-{RUN}-{next(_names)}"
    assert len(name) <= 32, name
    return name


def host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return text


class Pinger:
    """Keeps connections from the idle timeout: every idle/4 it has each registered client say
    something in a room of its own (the echo is filtered out by the client's reader)."""

    def __init__(self):
        self.clients, self.lock, self.stop = [], threading.Lock(), threading.Event()
        self.thread = None

    def start(self, idle_ms):
        self.interval = max(0.02, idle_ms / 4000.0)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def add(self, client):
        with self.lock:
            self.clients.append(client)

    def remove(self, client):
        with self.lock:
            if client in self.clients:
                self.clients.remove(client)

    def run(self):
        while not self.stop.wait(self.interval):
            with self.lock:
                clients = list(self.clients)
            for client in clients:
                client.ping()


PINGER = Pinger()


class Client:
    """One connection. A reader thread queues its lines (without "\\n" and one "\\r" before it);
    the echoes of its keepalive SAYs are counted, not queued."""

    def __init__(self, addr, rcvbuf=None, keepalive=True):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.settimeout(TIMEOUT_S)
        self.sock.connect((host, int(port)))
        self.local = "%s:%d" % self.sock.getsockname()[:2]
        self.lines = queue.Queue()
        self.send_lock = threading.Lock()
        self.stop_reading = threading.Event()
        self.eof = False
        self.closed = False
        self.ka_room, self.ka_on, self.ka_sent, self.ka_seen = None, False, 0, 0
        self.reader = threading.Thread(target=self.read_loop, daemon=True)
        self.reader.start()
        if keepalive and IDLE_MS:
            self.ka_room = fresh("ka")
            self.send(f"JOIN {self.ka_room} k{next(_names)}")
            nick = None
            for _ in range(2):
                line = self.next_line()
                assert isinstance(line, str), f"keepalive JOIN {self.ka_room}: {describe(line)}"
                parts = line.split(" ")
                if parts[:2] == ["JOINED", self.ka_room]:
                    nick = parts[2]
                elif line != "OK":
                    raise AssertionError(f"keepalive JOIN {self.ka_room}: got {line!r}")
            assert nick, "keepalive JOIN: no JOINED"
            self.ka_on = True
            PINGER.add(self)

    # --- reading -------------------------------------------------------------------------
    def read_loop(self):
        buf = b""
        while not self.stop_reading.is_set():
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.05)
                if not ready:
                    continue
                data = self.sock.recv(65536)
            except (OSError, ValueError):
                data = b""
            if not data:
                if buf:
                    self.lines.put("<unterminated at EOF> " + buf.decode("latin-1"))
                self.eof = True
                self.lines.put(EOF)
                return
            buf += data
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                line = raw.decode("latin-1")
                if self.ka_room is not None:
                    parts = line.split(" ", 2)
                    if len(parts) >= 2 and parts[1] == self.ka_room and parts[0] in ("MSG", "JOINED"):
                        if parts[0] == "MSG":
                            self.ka_seen += 1
                            continue
                self.lines.put(line)

    def pause_reading(self):
        """Stops the reader thread: from now on nothing is read off the socket."""
        self.stop_reading.set()
        self.reader.join(1.0)

    def next_line(self, timeout=TIMEOUT_S):
        """The next line, EOF, or None when nothing came within `timeout`."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def expect(self, expected, timeout=TIMEOUT_S, what=""):
        """Reads until every line of `expected` (any order) came; any other line fails."""
        want = collections.Counter(expected)
        got = []
        deadline = time.monotonic() + timeout
        while sum(want.values()):
            line = self.next_line(max(0.0, deadline - time.monotonic()))
            if not isinstance(line, str) or want[line] <= 0:
                missing = sorted(want.elements())
                raise AssertionError(
                    f"{what or self.local}: expected {missing!r}"
                    + (f" (after {got!r})" if got else "") + f", got {describe(line)}")
            want[line] -= 1
            got.append(line)

    def quiet(self, wait_s=QUIET_S, what=""):
        line = self.next_line(wait_s)
        assert line is None, f"{what or self.local}: expected no line for {wait_s} s, got {describe(line)}"

    def expect_eof(self, timeout=TIMEOUT_S, what=""):
        line = self.next_line(timeout)
        assert line is EOF, f"{what or self.local}: expected the server to close, got {describe(line)}"

    # --- writing -------------------------------------------------------------------------
    def send(self, line, end="\n"):
        data = line.encode("latin-1") if isinstance(line, str) else line
        with self.send_lock:
            self.sock.sendall(data + end.encode())

    def send_raw(self, data):
        with self.send_lock:
            self.sock.sendall(data)

    def ping(self):
        with self.send_lock:
            if not self.ka_on or self.closed:
                return
            try:
                self.sock.sendall(f"SAY {self.ka_room} .\n".encode())
                self.ka_sent += 1
            except OSError:
                self.ka_on = False

    def stop_keepalive(self, drain=True):
        """No more keepalive SAYs; with `drain`, waits until the echoes of the sent ones came, so
        that nothing is left unread."""
        with self.send_lock:
            self.ka_on = False
        PINGER.remove(self)
        if drain and self.ka_room is not None:
            deadline = time.monotonic() + TIMEOUT_S
            while self.ka_seen < self.ka_sent and time.monotonic() < deadline:
                time.sleep(0.01)
            assert self.ka_seen >= self.ka_sent, (
                f"{self.local}: {self.ka_sent - self.ka_seen} keepalive echoes missing")

    # --- ending --------------------------------------------------------------------------
    def close(self, reset=False):
        self.stop_keepalive(drain=False)
        self.pause_reading()
        with self.send_lock:
            self.closed = True
            if reset:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()


def describe(line):
    if line is None:
        return "nothing (timed out)"
    if line is EOF:
        return "EOF (the server closed)"
    return repr(line)


class Check:
    """The clients one check opened, all closed at its end whatever happened."""

    def __init__(self, addr):
        self.addr, self.clients = addr, []
        self.log_offset = close_log_size()

    def client(self, **kwargs):
        c = Client(self.addr, **kwargs)
        self.clients.append(c)
        return c

    def finish(self):
        for c in self.clients:
            if not c.closed:
                try:
                    c.close()
                except OSError:
                    pass


def join_all(room, members, nicks):
    """Joins the members one after another; each join must reach the joiner and the earlier ones."""
    for i, (member, nick) in enumerate(zip(members, nicks)):
        member.send(f"JOIN {room} {nick}")
        member.expect(["OK", f"JOINED {room} {nick}"], what=f"{nick} joining {room}")
        for earlier, enick in zip(members[:i], nicks[:i]):
            earlier.expect([f"JOINED {room} {nick}"], what=f"{enick} seeing {nick} join {room}")


# --- the close log -------------------------------------------------------------------------

def close_log_size():
    if not CLOSE_LOG:
        return 0
    try:
        return os.path.getsize(CLOSE_LOG)
    except OSError:
        return 0


def close_record(peer, offset, timeout=TIMEOUT_S):
    """The first record for `peer` written at or after `offset`, or None within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(CLOSE_LOG, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            data = b""
        for raw in data.split(b"\n")[:-1]:  # complete lines only
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("peer") == peer:
                return record
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def check_close_log(check, leaver, cause, nick):
    if not CLOSE_LOG:
        return
    record = close_record(leaver.local, check.log_offset)
    assert record is not None, (
        f"no close-log record for {nick} (peer {leaver.local}) within {TIMEOUT_S} s in {CLOSE_LOG}")
    assert record.get("cause") == cause, (
        f"close-log record of {nick} (peer {leaver.local}) has cause {record.get('cause')!r}, "
        f"its LEFT said {cause!r}: {json.dumps(record)}")


# --- the checks ----------------------------------------------------------------------------

def check_join(chk):
    """JOIN: OK to the sender, JOINED to every member, the sender included; nothing else."""
    room = fresh("join")
    members = [chk.client() for _ in range(3)]
    nicks = [fresh("n") for _ in members]
    join_all(room, members, nicks)
    for m, n in zip(members, nicks):
        m.quiet(what=n)


def check_say(chk):
    """SAY: MSG <room> <nick> <text...> to every member, the sender included."""
    room = fresh("say")
    members = [chk.client() for _ in range(3)]
    nicks = [fresh("n") for _ in members]
    join_all(room, members, nicks)
    text = "hello there, world: 1 2 3"
    members[1].send(f"SAY {room} {text}")
    for m, n in zip(members, nicks):
        m.expect([f"MSG {room} {nicks[1]} {text}"], what=n)
    for m, n in zip(members, nicks):
        m.quiet(what=n)


def check_say_not_member(chk):
    """SAY by a connection not in the room: ERR not in room, and the members get nothing."""
    room = fresh("nm")
    members = [chk.client() for _ in range(2)]
    nicks = [fresh("n") for _ in members]
    join_all(room, members, nicks)
    outsider = chk.client()
    outsider.send(f"SAY {room} sneaky")
    outsider.expect(["ERR not in room"], what="outsider")
    # also in a room that does not exist at all
    outsider.send(f"SAY {fresh('none')} hello")
    outsider.expect(["ERR not in room"], what="outsider, room without members")
    for m, n in zip(members + [outsider], nicks + ["outsider"]):
        m.quiet(what=n)


def check_leave(chk):
    """LEAVE: OK to the leaver, LEFT <room> <nick> leave to the others; then the leaver gets none
    of that room's messages."""
    room = fresh("leave")
    members = [chk.client() for _ in range(3)]
    nicks = [fresh("n") for _ in members]
    join_all(room, members, nicks)
    leaver = members[2]
    leaver.send(f"LEAVE {room}")
    leaver.expect(["OK"], what=f"{nicks[2]} (leaver)")
    for m, n in zip(members[:2], nicks[:2]):
        m.expect([f"LEFT {room} {nicks[2]} leave"], what=n)
    members[0].send(f"SAY {room} after the leave")
    for m, n in zip(members[:2], nicks[:2]):
        m.expect([f"MSG {room} {nicks[0]} after the leave"], what=n)
    leaver.quiet(what=f"{nicks[2]} (leaver)")
    # the leaver's connection is still usable; it is no longer in the room
    leaver.send(f"SAY {room} still here")
    leaver.expect(["ERR not in room"], what=f"{nicks[2]} (leaver) saying in the room it left")
    for m, n in zip(members[:2], nicks[:2]):
        m.quiet(what=n)


def check_quit(chk):
    """QUIT: BYE, then the server closes."""
    c = chk.client()
    c.stop_keepalive()
    c.send("QUIT")
    c.expect(["BYE"], what="quitter")
    c.expect_eof(what="quitter after BYE")


def check_unknown(chk):
    """An unknown command: ERR unknown command, and the connection stays usable."""
    c = chk.client()
    for line in ("HELLO there", "FROB", "PING 1 2 3"):
        c.send(line)
        c.expect(["ERR unknown command"], what=repr(line))
    room, nick = fresh("unk"), fresh("n")
    c.send(f"JOIN {room} {nick}")
    c.expect(["OK", f"JOINED {room} {nick}"], what="JOIN after the unknown commands")
    c.quiet()


def check_crlf(chk):
    """\\r\\n line endings: the \\r is not part of the nick, the room or the text."""
    room = fresh("crlf")
    a, b = chk.client(), chk.client()
    na, nb = fresh("n"), fresh("n")
    a.send(f"JOIN {room} {na}", end="\r\n")
    a.expect(["OK", f"JOINED {room} {na}"], what=f"{na} joining with \\r\\n")
    b.send(f"JOIN {room} {nb}", end="\r\n")
    b.expect(["OK", f"JOINED {room} {nb}"], what=f"{nb} joining with \\r\\n")
    a.expect([f"JOINED {room} {nb}"], what=na)
    a.send(f"SAY {room} crlf text", end="\r\n")
    for c, n in ((a, na), (b, nb)):
        c.expect([f"MSG {room} {na} crlf text"], what=n)
    b.send(f"LEAVE {room}", end="\r\n")
    b.expect(["OK"], what=f"{nb} leaving with \\r\\n")
    a.expect([f"LEFT {room} {nb} leave"], what=na)
    b.send("FROB", end="\r\n")
    b.expect(["ERR unknown command"], what="FROB with \\r\\n")
    for c, n in ((a, na), (b, nb)):
        c.quiet(what=n)


def check_nick_32(chk):
    """A 32-byte nick of every allowed character class is accepted."""
    room = fresh("n32")
    a, b = chk.client(), chk.client()
    na = fresh("n")
    nick = ("Az09_-" + RUN + "x" * 32)[:32]
    assert len(nick) == 32
    join_all(room, [a, b], [na, nick])
    b.send(f"SAY {room} long nick")
    for c, n in ((a, na), (b, nick)):
        c.expect([f"MSG {room} {nick} long nick"], what=n)
    for c, n in ((a, na), (b, nick)):
        c.quiet(what=n)


def refused_join(chk, room, observer, oname, bad_room, bad_nick, what):
    c = chk.client()
    c.send(b"JOIN " + bad_room + b" " + bad_nick)
    line = c.next_line()
    assert isinstance(line, str) and line.startswith("ERR"), (
        f"{what}: expected an ERR line, got {describe(line)}")
    c.quiet(what=f"{what} after {line!r}")
    observer.quiet(what=f"{oname} (member) after {what}")
    # it did not join: its SAY is refused, and the member gets nothing
    c.send(f"SAY {room} am I in")
    c.expect(["ERR not in room"], what=f"{what}: SAY in {room} afterwards")
    observer.quiet(what=f"{oname} (member) after the SAY of {what}")
    return line


def check_nick_refused(chk):
    """A 33-byte nick or one with a bad character: some ERR line, and no join (no JOINED)."""
    room = fresh("nbad")
    observer, oname = chk.client(), fresh("n")
    join_all(room, [observer], [oname])
    r = room.encode()
    for nick, what in ((b"N" * 33, "33-byte nick"), (b"bad.nick", "nick 'bad.nick'"),
                       (b"bad!nick", "nick 'bad!nick'"), ("n\u00e9".encode(), "nick 'n\\xc3\\xa9'")):
        line = refused_join(chk, room, observer, oname, r, nick, what)
        print(f"  info: {what}: {line!r}")


def check_room_names(chk):
    """Room names: 32 bytes accepted; 33 bytes or a bad character refused with some ERR line."""
    room = ("R-_9" + RUN + "r" * 32)[:32]
    a, b = chk.client(), chk.client()
    na, nb = fresh("n"), fresh("n")
    join_all(room, [a, b], [na, nb])
    a.send(f"SAY {room} long room")
    for c, n in ((a, na), (b, nb)):
        c.expect([f"MSG {room} {na} long room"], what=n)
    for bad, what in ((room.encode() + b"x", "33-byte room"), (b"bad.room", "room 'bad.room'")):
        line = refused_join(chk, room, a, na, bad, fresh("n").encode(), what)
        print(f"  info: {what}: {line!r}")
    b.quiet(what=nb)


def leaver_setup(chk, prefix, rooms=1, **kwargs):
    """An observer and a leaver in `rooms` fresh rooms."""
    names = [fresh(prefix) for _ in range(rooms)]
    observer, oname = chk.client(), fresh("o")
    leaver, lname = chk.client(**kwargs), fresh("l")
    for room in names:
        join_all(room, [observer, leaver], [oname, lname])
    return names, observer, oname, leaver, lname


def expect_left(chk, rooms, observer, oname, leaver, lname, cause):
    observer.expect([f"LEFT {room} {lname} {cause}" for room in rooms], what=f"{oname} (observer)")
    check_close_log(chk, leaver, cause, lname)
    observer.quiet(what=f"{oname} (observer)")


def check_peer_fin(chk):
    """shutdown(SHUT_WR) between lines (leaver in two rooms), then close() with nothing unread:
    LEFT ... peer_fin in each room."""
    rooms, observer, oname, leaver, lname = leaver_setup(chk, "fin", rooms=2)
    leaver.stop_keepalive()
    leaver.sock.shutdown(socket.SHUT_WR)
    expect_left(chk, rooms, observer, oname, leaver, lname, "peer_fin")
    leaver.expect_eof(what=f"{lname} after its shutdown(SHUT_WR)")
    # a plain close() with nothing unread
    chk.log_offset = close_log_size()
    rooms, observer, oname, leaver, lname = leaver_setup(chk, "fin")
    leaver.stop_keepalive()
    leaver.pause_reading()
    # (select, not recv(MSG_DONTWAIT): Python would wait out the socket's timeout on EAGAIN)
    readable, _, _ = select.select([leaver.sock], [], [], 0)
    unread = leaver.sock.recv(64, socket.MSG_PEEK) if readable else b""
    assert not readable, f"{lname}: the socket is readable before close(): {unread!r}"
    leaver.close()
    expect_left(chk, rooms, observer, oname, leaver, lname, "peer_fin")


def check_peer_reset(chk):
    """SO_LINGER 0, then close(): LEFT ... peer_reset."""
    rooms, observer, oname, leaver, lname = leaver_setup(chk, "rst")
    leaver.close(reset=True)
    expect_left(chk, rooms, observer, oname, leaver, lname, "peer_reset")


def check_peer_close(chk):
    """QUIT: BYE and close for the quitter, LEFT ... peer_close for the others."""
    rooms, observer, oname, leaver, lname = leaver_setup(chk, "quit")
    leaver.stop_keepalive()
    leaver.send("QUIT")
    leaver.expect(["BYE"], what=f"{lname} (quitter)")
    leaver.expect_eof(what=f"{lname} (quitter) after BYE")
    expect_left(chk, rooms, observer, oname, leaver, lname, "peer_close")


def check_protocol_error(chk):
    """A 5000-byte line: the connection is closed, LEFT ... protocol_error, the line not said."""
    rooms, observer, oname, leaver, lname = leaver_setup(chk, "perr")
    leaver.stop_keepalive()
    head = f"SAY {rooms[0]} ".encode()
    line = head + b"y" * (5000 - len(head)) + b"\n"
    assert len(line) == 5001 and len(line) > LINE_LIMIT
    try:
        leaver.send_raw(line)
    except OSError as error:  # the server may close (and reset) before all of it is sent
        print(f"  info: sending the 5000-byte line: {error!r}")
    expect_left(chk, rooms, observer, oname, leaver, lname, "protocol_error")
    got = leaver.next_line()
    while isinstance(got, str) and got.startswith("ERR"):  # an ERR before the close is allowed
        print(f"  info: the leaver got {got!r}")
        got = leaver.next_line()
    assert got is EOF, f"{lname}: expected the server to close, got {describe(got)}"


def check_idle_timeout(chk):
    """A member that sends nothing for the idle timeout: LEFT ... idle_timeout, not earlier than
    the timeout; the observer (kept busy in a room of its own) stays."""
    rooms, observer, oname, leaver, lname = leaver_setup(chk, "idle", keepalive=False)
    sent_last = time.monotonic()  # the leaver's JOIN ended just before
    limit = IDLE_MS / 1000.0 + TIMEOUT_S
    observer.expect([f"LEFT {rooms[0]} {lname} idle_timeout"], timeout=limit,
                    what=f"{oname} (observer, {limit:.1f} s)")
    elapsed = time.monotonic() - sent_last
    print(f"  info: LEFT idle_timeout {elapsed:.2f} s after the leaver's last line (timeout {IDLE_MS} ms)")
    assert elapsed >= 0.9 * IDLE_MS / 1000.0, (
        f"closed {elapsed:.3f} s after the last line, before the idle timeout of {IDLE_MS} ms")
    leaver.expect_eof(what=f"{lname} (idle)")
    check_close_log(chk, leaver, "idle_timeout", lname)
    observer.quiet(what=f"{oname} (observer)")
    # the observer is still served
    observer.send(f"SAY {rooms[0]} still here")
    observer.expect([f"MSG {rooms[0]} {oname} still here"], what=f"{oname} after the idle close")


def check_ordering(chk):
    """3 senders x 200 SAYs as fast as possible, 6 members: each member gets all 600, each
    sender's in the order sent."""
    room, senders, count = fresh("ord"), 3, 200
    members = [chk.client() for _ in range(6)]
    nicks = [fresh("m") for _ in members]
    join_all(room, members, nicks)
    errors = []

    def send_all(member, s):
        try:
            for k in range(count):
                member.send(f"SAY {room} s{s} {k}")
        except OSError as error:
            errors.append(f"sender {s}: {error!r}")

    threads = [threading.Thread(target=send_all, args=(members[s], s)) for s in range(senders)]
    for t in threads:
        t.start()
    for m, n in zip(members, nicks):
        following = [0] * senders
        for _ in range(senders * count):
            line = m.next_line()
            parts = line.split(" ") if isinstance(line, str) else []
            ok = (len(parts) == 5 and parts[:2] == ["MSG", room] and parts[3][:1] == "s")
            s = nicks.index(parts[2]) if ok and parts[2] in nicks else -1
            if not ok or s < 0 or s >= senders or parts[3] != f"s{s}":
                raise AssertionError(f"{n}: expected a MSG of a sender, got {describe(line)} "
                                     f"(so far {following} lines of each sender)")
            assert parts[4] == str(following[s]), (
                f"{n}: sender {s}'s line {parts[4]} came where line {following[s]} was due: {line!r}")
            following[s] += 1
    for t in threads:
        t.join(TIMEOUT_S)
    assert not errors, errors
    for m, n in zip(members, nicks):
        m.quiet(what=n)


def check_slow_consumer(chk):
    """A member with SO_RCVBUF 4096 that stops reading while another says ~3.9 KB lines in bursts:
    closed as slow_consumer once its output passes --max-queued; the readers get everything, the
    LEFT, and the lines said after it."""
    room = fresh("slow")
    sayer, readers = chk.client(), [chk.client() for _ in range(3)]
    stuck = chk.client(rcvbuf=4096)
    everyone = [sayer] + readers + [stuck]
    nicks = [fresh("s")] + [fresh("r") for _ in readers] + [fresh("x")]
    join_all(room, everyone, nicks)
    stuck.pause_reading()  # it never reads again (its keepalive SAYs go on)
    listeners = list(zip([sayer] + readers, nicks[:-1]))
    left = f"LEFT {room} {nicks[-1]} slow_consumer"
    seen_left = {n: False for _, n in listeners}
    burst, pad = 8, "z" * 3880
    sent = 0
    budget_bytes, deadline = 64 * 1024 * 1024, time.monotonic() + 60
    assert len(f"SAY {room} {sent:08d} {pad}") < LINE_LIMIT - 10

    def collect(upto):
        """Reads lines 0..upto-1 (in order) at every listener; notes the LEFT wherever it comes."""
        for c, n in listeners:
            while collect.next[n] < upto:
                line = c.next_line()
                if line == left and not seen_left[n]:
                    seen_left[n] = True
                    continue
                want = f"MSG {room} {nicks[0]} {collect.next[n]:08d} {pad}"
                if line != want:
                    shown = describe(line)
                    if isinstance(line, str) and len(line) > 80:
                        shown = repr(line[:80] + "...")
                    raise AssertionError(f"{n}: expected line {collect.next[n]} of the sayer "
                                         f"(or the LEFT), got {shown}")
                collect.next[n] += 1
    collect.next = {n: 0 for _, n in listeners}

    while not all(seen_left.values()):
        assert sent * 3900 < budget_bytes and time.monotonic() < deadline, (
            f"no {left!r} at {[n for n, s in seen_left.items() if not s]} after {sent} lines "
            f"(~{sent * 3.9:.0f} KB) to a member that does not read")
        for _ in range(burst):
            sayer.send(f"SAY {room} {sent:08d} {pad}")
            sent += 1
        collect(sent)
        if any(seen_left.values()) and not all(seen_left.values()):
            # the LEFT may still be on its way to some: give it the usual time
            for c, n in listeners:
                if not seen_left[n]:
                    line = c.next_line()
                    assert line == left, f"{n}: expected {left!r}, got {describe(line)}"
                    seen_left[n] = True
    print(f"  info: slow_consumer after {sent} lines (~{sent * 3.9:.0f} KB), --max-queued {MAX_QUEUED}")
    check_close_log(chk, stuck, "slow_consumer", nicks[-1])
    # the others keep receiving
    for k in range(5):
        sayer.send(f"SAY {room} {sent:08d} {pad}")
        sent += 1
    collect(sent)
    readers[0].send(f"SAY {room} after")
    for c, n in listeners:
        c.expect([f"MSG {room} {nicks[1]} after"], what=n)
    for c, n in listeners:
        c.quiet(what=n)


CHECKS = [
    ("JOIN: OK, JOINED to every member incl. the sender", check_join, None),
    ("SAY: MSG to every member incl. the sender", check_say, None),
    ("SAY by a non-member: ERR not in room", check_say_not_member, None),
    ("LEAVE: OK, LEFT ... leave, no more messages", check_leave, None),
    ("QUIT: BYE, then close", check_quit, None),
    ("unknown command: ERR unknown command", check_unknown, None),
    ("\\r\\n line endings", check_crlf, None),
    ("32-byte nick accepted", check_nick_32, None),
    ("33-byte nick / bad character refused, no JOINED", check_nick_refused, None),
    ("room names: 32 bytes accepted, 33 / bad character refused", check_room_names, None),
    ("LEFT peer_fin (shutdown, close)", check_peer_fin, None),
    ("LEFT peer_reset", check_peer_reset, None),
    ("LEFT peer_close", check_peer_close, None),
    ("LEFT protocol_error (5000-byte line)", check_protocol_error, None),
    ("LEFT idle_timeout", check_idle_timeout, "idle"),
    ("ordering: 3 senders x 200 SAYs, 6 members", check_ordering, None),
    ("LEFT slow_consumer, the others keep receiving", check_slow_consumer, "queued"),
]


def main():
    global IDLE_MS, MAX_QUEUED, CLOSE_LOG
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\nusage:")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("addr", metavar="HOST:PORT", type=host_port, help="the server to check (loopback)")
    parser.add_argument("--close-log", metavar="FILE", help="the server's JSON-lines close log")
    parser.add_argument("--idle-timeout-ms", metavar="N", type=int,
                        help="the server's idle timeout (enables the idle_timeout check)")
    parser.add_argument("--max-queued", metavar="BYTES", type=int,
                        help="the server's output limit per connection (enables the slow_consumer check)")
    args = parser.parse_args()
    if args.idle_timeout_ms is not None and args.idle_timeout_ms <= 0:
        parser.error("--idle-timeout-ms must be positive")
    host = args.addr.rpartition(":")[0]
    if host not in ("127.0.0.1", "localhost") and not host.startswith("127."):
        parser.error("loopback addresses only")
    IDLE_MS, MAX_QUEUED, CLOSE_LOG = args.idle_timeout_ms, args.max_queued, args.close_log
    if IDLE_MS:
        PINGER.start(IDLE_MS)
    passed = failed = 0
    for name, check, needs in CHECKS:
        if needs == "idle" and not IDLE_MS:
            print(f"SKIP  {name} (no --idle-timeout-ms)")
            continue
        if needs == "queued" and not MAX_QUEUED:
            print(f"SKIP  {name} (no --max-queued)")
            continue
        started = time.monotonic()
        chk = None
        try:
            chk = Check(args.addr)
            check(chk)
            passed += 1
            print(f"PASS  {name} ({time.monotonic() - started:.2f} s)")
        except Exception as error:  # noqa: BLE001 -- any error is this check's failure
            failed += 1
            kind = "" if isinstance(error, AssertionError) else f"{type(error).__name__}: "
            print(f"FAIL  {name}: {kind}{error}")
        finally:
            if chk is not None:
                chk.finish()
        sys.stdout.flush()
    PINGER.stop.set()
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
