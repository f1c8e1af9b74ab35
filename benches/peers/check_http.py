#!/usr/bin/env python3
"""Correctness checks of an HTTP peer against HttpArena's H1 isolated endpoints (baseline,
pipelined, short-lived), with raw sockets: keep-alive, pipelining, HTTP/1.0, Connection: close,
requests split at every byte with a 200 ms pause, 400/404/405, partial writes. Every response
must carry Content-Length and Date. A few seconds, loopback only.

usage: check_http.py HOST:PORT [--limits]
  --limits  also require 431 for a 20 KiB head and 413 for a 2 MiB body (the epoll peer's
            limits; hyper and nginx have their own, so without the flag they are only printed)
"""

import argparse
import random
import socket
import sys
import threading
import time

TIMEOUT_S = 5.0
SPLIT_PAUSE_S = 0.2
SPLIT_BATCH = 300


def connect(addr, rcvbuf=None):
    host, port = addr.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(TIMEOUT_S)
    sock.connect((host, int(port)))
    return sock


class Reader:
    """Responses off one socket, framed by Content-Length (which every reply must have)."""

    def __init__(self, sock):
        self.sock, self.buf, self.eof = sock, b"", False

    def fill(self):
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        self.eof = not data
        self.buf += data
        return bool(data)

    def response(self):
        """(status, headers, body), or None at EOF before a whole one."""
        while b"\r\n\r\n" not in self.buf:
            if not self.fill():
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        for field in ("content-length", "date"):
            if field not in headers:
                raise AssertionError(f"{status} reply without {field}: {head!r}")
        length = int(headers["content-length"])
        while len(self.buf) < length:
            if not self.fill():
                raise AssertionError("EOF inside a body")
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def closed(self, wait_s=TIMEOUT_S):
        """True when the server closes next (nothing more is sent) within `wait_s`."""
        self.sock.settimeout(wait_s)
        try:
            return not self.buf and not self.fill()
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(TIMEOUT_S)


def get(path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


def post(path, body, extra=""):
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n{body}".encode()


def chunked(path, chunks, extra=""):
    body = "".join(f"{len(c):x}\r\n{c}\r\n" for c in chunks) + "0\r\n\r\n"
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n{extra}\r\n{body}".encode()


def exchange(addr, request, count=1):
    """Sends `request` on a new connection and reads `count` responses."""
    sock = connect(addr)
    sock.sendall(request)
    reader = Reader(sock)
    responses = [reader.response() for _ in range(count)]
    return responses, reader, sock


def expect(response, status, body=None):
    assert response is not None, f"no response, expected {status}"
    got_status, headers, got_body = response
    assert got_status == status, f"status {got_status}, expected {status} ({got_body!r})"
    if body is not None:
        assert got_body == body, f"body {got_body!r}, expected {body!r}"
        assert headers.get("content-type", "").startswith("text/plain"), headers


def check_endpoints(addr):
    a, b, n = random.randint(100, 999), random.randint(100, 999), random.randint(100, 999)
    q = f"/baseline11?a={a}&b={b}"
    cases = [
        (get("/pipeline"), 200, b"ok"),
        (get("/baseline11?a=13&b=42"), 200, b"55"),
        (get(q), 200, str(a + b).encode()),
        (post("/baseline11?a=13&b=42", "20"), 200, b"75"),
        (post(q, str(n)), 200, str(a + b + n).encode()),
        (chunked("/baseline11?a=13&b=42", ["20"]), 200, b"75"),
        (chunked("/baseline11?a=13&b=42", ["2", "0"]), 200, b"75"),
        # lower-cased field names (methods are case-sensitive, so not the method)
        (b"POST /baseline11?a=13&b=42 HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n20", 200, b"75"),
        (get("/nope"), 404, None),
        (get("/"), 404, None),
        (b"DELETE /baseline11 HTTP/1.1\r\nHost: x\r\n\r\n", 405, None),
        (post("/pipeline", "x"), 405, None),
    ]
    # all on one kept-alive connection, one at a time
    sock = connect(addr)
    reader = Reader(sock)
    for request, status, body in cases:
        sock.sendall(request)
        expect(reader.response(), status, body)
    sock.close()


def check_http10(addr):
    (response,), reader, sock = exchange(addr, b"GET /pipeline HTTP/1.0\r\n\r\n")
    expect(response, 200, b"ok")
    assert reader.closed(), "HTTP/1.0 without keep-alive stayed open"
    sock.close()
    keep = b"GET /pipeline HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    responses, reader, sock = exchange(addr, keep + keep, 2)
    for response in responses:
        expect(response, 200, b"ok")
    assert not reader.closed(wait_s=0.3), "HTTP/1.0 keep-alive was closed"
    sock.close()


def check_connection_close(addr):
    (response,), reader, sock = exchange(addr, get("/baseline11?a=1&b=2", "Connection: close\r\n"))
    expect(response, 200, b"3")
    assert reader.closed(), "Connection: close stayed open"
    sock.close()
    # bytes after the closing request: its reply still comes, the rest is ignored
    after = get("/baseline11?a=1&b=2", "Connection: close\r\n") + get("/pipeline")
    (response,), reader, sock = exchange(addr, after)
    expect(response, 200, b"3")
    assert reader.closed(), "Connection: close with bytes after it stayed open"
    sock.close()


def check_pipelined(addr):
    responses, _, sock = exchange(addr, get("/pipeline") * 16, 16)
    for response in responses:
        expect(response, 200, b"ok")
    sock.close()
    mixed = [
        (get("/pipeline"), b"ok"),
        (get("/baseline11?a=1&b=2"), b"3"),
        (post("/baseline11?a=1&b=2", "4"), b"7"),
        (chunked("/baseline11?a=1&b=2", ["1", "0"]), b"13"),
    ] * 4
    responses, _, sock = exchange(addr, b"".join(r for r, _ in mixed), len(mixed))
    for response, (_, body) in zip(responses, mixed):
        expect(response, 200, body)
    sock.close()


def check_errors(addr, limits):
    for garbage in (b"garbage\r\n\r\n", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"):
        (response,), reader, sock = exchange(addr, garbage)
        expect(response, 400)
        assert reader.closed(), f"{garbage!r}: not closed after 400"
        sock.close()
    big_head = get("/pipeline", "X-Big: " + "a" * (20 * 1024) + "\r\n")
    big_body = b"POST /baseline11 HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n"
    for name, request, status in (("20 KiB head", big_head, 431), ("2 MiB body", big_body, 413)):
        try:
            (response,), reader, sock = exchange(addr, request)
            got = response[0] if response else "no response"
            closed = reader.closed()
            sock.close()
        except (ConnectionResetError, BrokenPipeError) as error:
            got, closed = repr(error), True
        if limits:
            assert got == status and closed, f"{name}: {got}, closed={closed}; expected {status}"
        else:
            print(f"  info: {name}: {got}, closed={closed}")


def split_shapes():
    a, b, n = random.randint(100, 999), random.randint(100, 999), random.randint(100, 999)
    close = "Connection: close\r\n"
    return [
        (get("/baseline11?a=13&b=42", close), b"55"),
        (get("/baseline11?a=13&b=42", "User-Agent: t\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n" + close), b"55"),
        (b"GET /baseline11?a=13&b=42 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", b"55"),
        (get(f"/baseline11?a={a}&b={b}", close), str(a + b).encode()),
        (post("/baseline11?a=13&b=42", "20", close), b"75"),
        (b"POST /baseline11?a=13&b=42 HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n20", b"75"),
        (post(f"/baseline11?a={a}&b={b}", str(n), close), str(a + b + n).encode()),
        (chunked("/baseline11?a=13&b=42", ["20"], close), b"75"),
        (chunked("/baseline11?a=13&b=42", ["2", "0"], close), b"75"),
        (get("/pipeline", close), b"ok"),
    ]


def check_splits(addr):
    """Every shape split at every byte: first part, a 200 ms pause, the rest, read to EOF."""
    cases = [(shape, body, cut) for shape, body in split_shapes() for cut in range(1, len(shape))]
    for start in range(0, len(cases), SPLIT_BATCH):
        batch = cases[start:start + SPLIT_BATCH]
        socks = [connect(addr) for _ in batch]
        for sock, (shape, _, cut) in zip(socks, batch):
            sock.sendall(shape[:cut])
        time.sleep(SPLIT_PAUSE_S)
        for sock, (shape, _, cut) in zip(socks, batch):
            sock.sendall(shape[cut:])
        for sock, (shape, body, cut) in zip(socks, batch):
            reader = Reader(sock)
            try:
                expect(reader.response(), 200, body)
                assert reader.closed(), "not closed after Connection: close"
            except AssertionError as error:
                raise AssertionError(f"{shape[:cut]!r} | {shape[cut:]!r}: {error}") from None
            sock.close()
    print(f"  info: {len(cases)} split requests")


def check_short_lived(addr):
    """HttpArena's short-lived shape: connect, 10 requests one at a time, close; 200 times."""
    for _ in range(200):
        sock = connect(addr)
        reader = Reader(sock)
        for i in range(10):
            sock.sendall(get(f"/baseline11?a={i}&b=1"))
            expect(reader.response(), 200, str(i + 1).encode())
        sock.close()


def check_partial_writes(addr):
    """Replies the client reads late, through a 4 KiB receive buffer, must all come, in order:
    about 6 MiB of them, more than the server's socket buffer takes (tcp_wmem max 4 MiB)."""
    count = 60000
    requests = [get(f"/baseline11?a={i}&b=0") for i in range(count)]
    sock = connect(addr, rcvbuf=4096)
    sender = threading.Thread(target=sock.sendall, args=(b"".join(requests),))
    sender.start()
    time.sleep(0.5)
    reader = Reader(sock)
    for i in range(count):
        expect(reader.response(), 200, str(i).encode())
    sender.join()
    sock.close()


def host_port(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return text


CHECKS = [
    ("endpoints, one kept-alive connection", check_endpoints),
    ("HTTP/1.0 closes; 1.0 keep-alive stays", check_http10),
    ("Connection: close", check_connection_close),
    ("pipelined 16 and mixed 16, in order", check_pipelined),
    ("400 and close on garbage", check_errors),
    ("split at every byte, 200 ms pause", check_splits),
    ("short-lived: 200 connections x 10 requests", check_short_lived),
    ("partial writes (slow reader)", check_partial_writes),
]


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\nusage:")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("addr", metavar="HOST:PORT", type=host_port, help="the server to check (loopback)")
    parser.add_argument("--limits", action="store_true",
                        help="also require 431 for a 20 KiB head and 413 for a 2 MiB body")
    args = parser.parse_args()
    addr, limits = args.addr, args.limits
    passed = failed = 0
    for name, check in CHECKS:
        started = time.monotonic()
        try:
            check(addr, limits) if check is check_errors else check(addr)
            passed += 1
            print(f"ok    {name} ({time.monotonic() - started:.2f} s)")
        except (AssertionError, OSError) as error:
            failed += 1
            print(f"FAIL  {name}: {error}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
