"""The event-driven servers (echo, discard, chargen, HTTP) on a synack stack, in the simulator."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection
from pathlib import Path
from socket import IPPROTO_TCP

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.apps import AppRunner
from synack.apps.base import BODY_LOW, OUT_HIGH
from synack.apps.http import (
    BLOCK,
    BadRequest,
    HttpServer,
    _parse_head_checked,
    generated_bytes,
    generated_chunks,
    parse_head,
)
from synack.apps.simple import ChargenServer, DiscardServer, EchoServer, chargen_cycle
from synack.sim import LinkParams, Network
from synack.sockopts import TCP_NOTSENT_LOWAT
from synack.stack import SHUT_WR, Stack
from synack.tcp.state import State

CLIENT, SERVER = "192.0.2.1", "192.0.2.2"
MS = 1000


class Client:
    """A scripted client app: connect, send ``data``, half-close, read to EOF."""

    def __init__(self, stack: Stack, port: int, data: bytes = b"", *, half_close: bool = True,
                 read_limit: int | None = None, start_us: int = 0, reads: bool = True) -> None:
        self.stack, self.port, self.data = stack, port, memoryview(data)
        self.half_close, self.read_limit, self.start_us = half_close, read_limit, start_us
        self.fd: int | None = None
        self.off = 0
        self.got = bytearray()
        self.eof = False
        self.closed = False
        self.error: OSError | None = None
        self.shut = False
        self.reads = reads

    def poll(self, now: int) -> None:
        st = self.stack
        if self.closed or now < self.start_us:
            return
        if self.fd is None:
            self.fd = st.socket()
            st.connect_ex(self.fd, (SERVER, self.port), now=now)
            return
        if st.state(self.fd) in (State.SYN_SENT, State.SYN_RECEIVED):
            return
        try:
            while self.off < len(self.data):
                self.off += st.send(self.fd, self.data[self.off:], now=now)
        except BlockingIOError:
            pass
        except OSError as exc:
            self.error = exc
        if self.off == len(self.data) and self.half_close and not self.shut:
            self.shut = True
            st.shutdown(self.fd, SHUT_WR, now=now)
        while self.reads and not self.eof:
            try:
                chunk = st.recv(self.fd, 1 << 20, now=now)
            except BlockingIOError:
                break
            except OSError as exc:
                self.error = exc
                self.eof = True
                break
            if not chunk:
                self.eof = True
            self.got += chunk
            if self.read_limit is not None and len(self.got) >= self.read_limit:
                self.eof = True
        if self.eof and not self.closed:
            self.closed = True
            st.close(self.fd, now=now)


def lab(server_cls: type, port: int, *, link: LinkParams | None = None, seed: int = 1,
        **kw: object) -> tuple[Network, AppRunner, AppRunner, object]:
    net = Network(seed)
    srv_stack = Stack(SERVER, seed=seed + 1, name="server")
    cli_stack = Stack(CLIENT, seed=seed, name="client")
    server = server_cls(srv_stack, port, **kw)
    srv, cli = AppRunner(srv_stack, [server]), AppRunner(cli_stack)
    net.add_host(SERVER, srv)
    net.add_host(CLIENT, cli)
    net.add_link(CLIENT, SERVER, link or LinkParams(delay_us=2 * MS))
    return net, srv, cli, server


def run_clients(net: Network, cli: AppRunner, clients: list[Client],
                until_s: int = 600) -> None:
    for c in clients:
        cli.add(c)
        net.call_at(max(c.start_us, net.now), lambda now: None)   # wake the client
    net.run(until=until_s * 1_000_000, stop=lambda: all(c.closed for c in clients))
    assert all(c.closed for c in clients), "clients did not finish"


# ------------------------------------------------------------------ echo


def test_the_runner_polls_whatever_its_apps_list_holds_after_each_change() -> None:
    """AppRunner looks up each app's methods once per change of ``apps``: every way of
    changing the list (or replacing it) must still be seen at the next batch."""
    runner = AppRunner(Stack(SERVER, seed=1))
    seen: list[str] = []

    class Tick:                        # poll only: no poll_ready, no next_deadline
        def __init__(self, name: str) -> None:
            self.name = name

        def poll(self, now: int) -> None:
            seen.append(self.name)

    class Timed(Tick):
        def next_deadline(self) -> int:
            return 5

    def batch() -> list[str]:
        seen.clear()
        runner.transmit_gso(now=0)
        return list(seen)

    assert batch() == [] and runner.next_deadline() is None
    runner.add(Tick("a"))
    assert batch() == ["a"]
    runner.apps.append(Timed("b"))
    assert runner.next_deadline() == 5 and batch() == ["a", "b"]
    runner.apps[0] = Tick("c")
    assert batch() == ["c", "b"]
    del runner.apps[1]
    assert runner.next_deadline() is None and batch() == ["c"]
    runner.apps += [Tick("d")]
    runner.apps.insert(0, Tick("e"))
    assert batch() == ["e", "c", "d"]
    runner.apps.sort(key=lambda app: app.name)
    assert batch() == ["c", "d", "e"]
    runner.apps = [Timed("f")]
    assert runner.next_deadline() == 5 and batch() == ["f"]
    runner.apps.clear()
    runner.poll(0)
    assert seen == ["f"] and batch() == []




def test_echo_returns_every_byte_and_closes_after_the_client() -> None:
    data = random.Random(1).randbytes(1_000_000)
    net, srv, cli, server = lab(EchoServer, 7)
    c = Client(cli.stack, 7, data)
    run_clients(net, cli, [c])
    assert bytes(c.got) == data and c.error is None
    net.run(until=net.now + 200 * MS)
    assert server.handlers == {}                          # the server closed its side
    assert not srv.stack.conns                            # passive close ends in CLOSED
    assert [r.state for r in srv.stack.connections()] == [State.LISTEN]
    assert any(ch.new is State.TIME_WAIT for _, ch in cli.stack.changes)


def test_a_connection_accepted_with_data_and_fin_queued_is_polled_at_once() -> None:
    """A new connection is polled before any segment touches it only when something is
    pending (the server skips the empty first poll otherwise): data and a FIN that
    arrived before accept() must still be echoed and answered, with nothing more to
    come from the peer."""
    ready_at = 300 * MS

    class LateEcho(EchoServer):
        """Does not look at its sockets before ``ready_at``: what was touched waits."""

        def poll_ready(self, now: int, fds: Collection[int]) -> None:
            self.held = getattr(self, "held", set()) | set(fds)
            if now >= ready_at:
                held, self.held = self.held, set()
                super().poll_ready(now, held)

    net, srv, cli, server = lab(LateEcho, 7)
    c = Client(cli.stack, 7, b"early bytes")
    cli.add(c)
    net.call_at(0, lambda now: None)
    net.call_at(ready_at, lambda now: None)   # the server wakes with no new segment
    net.run(until=ready_at - MS)
    conn = next(iter(srv.stack.conns.values()))
    assert conn.rcv is not None and conn.rcv.fin_received and conn.fd == -1   # not accepted
    net.run(until=60_000 * MS, stop=lambda: c.closed)
    assert c.closed and bytes(c.got) == b"early bytes" and c.error is None
    assert server.accepted == 1 and server.handlers == {}


class LowatWriter:
    """A client that acts only on the descriptors the stack touched (as an epoll loop
    does) and writes while ``writable()`` says so, under TCP_NOTSENT_LOWAT: its every
    send is taken whole, so only writable() tells it to wait for ACKs."""

    def __init__(self, stack: Stack, port: int, total: int) -> None:
        self.stack, self.port, self.total = stack, port, total
        self.fd: int | None = None
        self.sent = 0
        self.waits = 0          # times writable() said no with bytes left to send
        self.closed = False

    def poll_ready(self, now: int, fds: Collection[int]) -> None:
        st = self.stack
        if self.fd is None:
            self.fd = st.socket()
            st.setsockopt(self.fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, 4000)
            st.connect_ex(self.fd, (SERVER, self.port), now=now)
            return
        if self.closed or self.fd not in fds:
            return
        while self.sent < self.total:
            if not st.writable(self.fd):
                self.waits += 1
                return
            self.sent += st.send(self.fd, b"w" * min(1000, self.total - self.sent), now=now)
        self.closed = True
        st.close(self.fd, now=now)


def test_a_writer_told_not_writable_is_woken_by_the_acks_that_make_room() -> None:
    """A pure ACK touches a socket only while its writer waits for room (Linux
    SOCK_NOSPACE): writable() saying no must count as waiting, or a writer that polls
    it would never hear of the ACKs that drain its unsent bytes."""
    net, _srv, cli, server = lab(DiscardServer, 9)
    w = LowatWriter(cli.stack, 9, 300_000)
    cli.add(w)
    net.call_at(0, lambda now: None)
    net.run(until=60_000 * MS, stop=lambda: w.closed)
    assert w.closed and w.sent == 300_000, f"sent {w.sent}, waited {w.waits} times"
    assert w.waits > 10                 # it did wait on writable(), many times
    net.run(until=net.now + 200 * MS)
    assert server.handlers == {}


def test_state_changes_are_recorded_only_when_someone_reads_them() -> None:
    """AppRunner(keep_changes=False) without a hook drops every state change, so the
    stack makes none; a hook set later gets those of the connections made after it."""
    net, srv, cli, _server = lab(EchoServer, 7)
    srv.keep_changes = False
    assert srv.stack.record_changes is False
    seen: list[object] = []

    def served(c: Client) -> None:
        run_clients(net, cli, [c])
        net.run(until=net.now + 200 * MS)
        assert bytes(c.got) == b"ping" and c.error is None

    served(Client(cli.stack, 7, b"ping"))
    assert srv.stack.changes == [] and srv.stack.stats["segments in"] > 0
    assert any(ch.new is State.TIME_WAIT for _, ch in cli.stack.changes)   # kept there
    srv.on_changes = seen.extend
    assert srv.stack.record_changes is True
    served(Client(cli.stack, 7, b"ping"))
    states = [ch.new for _, ch in seen]                   # type: ignore[attr-defined]
    assert states == [State.SYN_RECEIVED, State.ESTABLISHED, State.CLOSE_WAIT,
                      State.LAST_ACK, State.CLOSED]
    assert srv.stack.changes == []                        # handed to the hook, not kept


def test_echo_over_a_lossy_reordering_link_is_intact() -> None:
    data = random.Random(2).randbytes(300_000)
    bad = LinkParams(delay_us=5 * MS, loss=0.03, reorder=0.05, duplicate=0.01)
    net, _srv, cli, _ = lab(EchoServer, 7, link=bad, seed=5)
    c = Client(cli.stack, 7, data)
    run_clients(net, cli, [c])
    assert bytes(c.got) == data


def test_echo_serves_many_connections_at_once_without_threads() -> None:
    net, srv, cli, server = lab(EchoServer, 7)
    clients = [Client(cli.stack, 7, random.Random(i).randbytes(20_000 + i), start_us=i * 100)
               for i in range(60)]
    seen_open = []
    srv.add(type("Probe", (), {"poll": lambda self, now: seen_open.append(len(server.handlers))})())
    run_clients(net, cli, clients)
    assert all(bytes(c.got) == bytes(c.data) for c in clients)
    assert server.accepted == 60
    assert max(seen_open) > 30          # they really were served concurrently


def test_echo_stops_reading_while_its_output_is_backed_up() -> None:
    """A client that never reads: the server holds at most OUT_HIGH plus a read, and
    the client's sends end up blocked by TCP flow control instead."""
    net, _srv, cli, server = lab(EchoServer, 7)
    c = Client(cli.stack, 7, random.Random(3).randbytes(20_000_000), half_close=False,
               reads=False)
    cli.add(c)
    net.call_at(0, lambda now: None)
    net.run(until=20_000 * MS)
    (h,) = server.handlers.values()  # still open, not aborted
    assert OUT_HIGH <= len(h.out) < OUT_HIGH + 64 * 1024
    assert 0 < c.off < 20_000_000        # the sender is blocked, not everything taken


# ------------------------------------------------------------------ discard, chargen


def test_discard_reads_everything_and_sends_nothing() -> None:
    data = random.Random(4).randbytes(500_000)
    net, srv, cli, server = lab(DiscardServer, 9)
    c = Client(cli.stack, 9, data)
    run_clients(net, cli, [c])
    assert c.got == b"" and c.eof and c.error is None
    net.run(until=net.now + 200 * MS)
    assert server.handlers == {}
    sent = sum(ch.recv_q for ch in srv.stack.connections())
    assert sent == 0


def test_chargen_streams_the_rfc864_pattern_until_the_client_closes() -> None:
    net, _srv, cli, server = lab(ChargenServer, 19)
    c = Client(cli.stack, 19, b"ignored input", half_close=False, read_limit=300_000)
    run_clients(net, cli, [c])
    cycle = chargen_cycle()
    assert len(cycle) == 95 * 74
    assert cycle[:74] == bytes(range(32, 104)) + b"\r\n"
    assert cycle[74:148] == bytes(range(33, 105)) + b"\r\n"
    want = cycle * (len(c.got) // len(cycle) + 1)
    assert bytes(c.got) == want[:len(c.got)]
    net.run(until=net.now + 500 * MS)
    assert server.handlers == {}                     # the server closed when the client did


# ------------------------------------------------------------------ HTTP


def http_get(net: Network, cli: AppRunner, port: int, raw: bytes) -> bytes:
    c = Client(cli.stack, port, raw)
    run_clients(net, cli, [c])
    return bytes(c.got)


def split_responses(blob: bytes, head_at: int | None = None,
                    ) -> list[tuple[int, dict[str, str], bytes]]:
    """Cut a response stream; the response number ``head_at`` answers a HEAD."""
    out: list[tuple[int, dict[str, str], bytes]] = []
    while blob:
        head, _, rest = blob.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
        n = 0 if len(out) == head_at else int(headers["content-length"])
        out.append((status, headers, rest[:n]))
        blob = rest[n:]
    return out


def test_generated_content_is_deterministic_non_repeating_and_rangeable() -> None:
    a = generated_bytes(3 * BLOCK + 100)
    assert a == generated_bytes(3 * BLOCK + 100)
    assert a[:BLOCK] != a[BLOCK:2 * BLOCK]
    assert generated_bytes(1000, start=BLOCK - 500) == a[BLOCK - 500:BLOCK + 500]
    assert all(len(ch) <= BLOCK for ch in generated_chunks(10 * BLOCK + 7))


def test_http_get_bytes_is_intact_and_streamed() -> None:
    n = 3_000_000
    net, srv, cli, server = lab(HttpServer, 80)
    peak = [0]

    class Watch:
        def poll(self, now: int) -> None:
            for h in server.handlers.values():
                peak[0] = max(peak[0], len(h.out))

    srv.add(Watch())
    blob = http_get(net, cli, 80, f"GET /bytes/{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    ((status, headers, body),) = split_responses(blob)
    assert status == 200 and headers["content-length"] == str(n)
    assert hashlib.sha256(body).digest() == hashlib.sha256(generated_bytes(n)).digest()
    assert peak[0] < BODY_LOW + BLOCK       # never more than a chunk or so buffered


def test_http_keep_alive_pipelined_requests_on_one_connection() -> None:
    net, _srv, cli, server = lab(HttpServer, 80)
    raw = (b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n"
           b"HEAD /bytes/70000 HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
           b"DELETE /bytes/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
           b"GET /bytes/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
           b"GET /bytes/6 HTTP/1.1\r\nHost: x\r\n\r\n")            # after close: ignored
    rs = split_responses(http_get(net, cli, 80, raw), head_at=1)
    assert [r[0] for r in rs] == [200, 200, 200, 404, 405, 200]
    assert rs[0][2] == generated_bytes(10)
    assert rs[1][1]["content-length"] == "70000" and rs[1][2] == b""
    assert rs[2][2] == generated_bytes(100_000)
    assert rs[4][1]["allow"] == "GET, HEAD"
    assert rs[5][1]["connection"] == "close" and rs[5][2] == generated_bytes(5)
    assert [r[1]["connection"] for r in rs[:5]] == ["keep-alive"] * 5
    assert server.accepted == 1 and server.requests == 6


def test_http_server_closes_first_on_connection_close_and_sits_in_time_wait() -> None:
    net, srv, cli, _server = lab(HttpServer, 80)
    c = Client(cli.stack, 80, b"GET /bytes/1 HTTP/1.0\r\n\r\n", half_close=False)
    run_clients(net, cli, [c])
    (r,) = split_responses(bytes(c.got))
    assert r[0] == 200 and r[1]["connection"] == "close"
    net.run(until=net.now + 50 * MS)
    assert [row.state for row in srv.stack.connections()] == [State.LISTEN, State.TIME_WAIT]


@pytest.mark.parametrize("raw, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\n\r\n", 400),                         # no Host
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 400),
    (b"GET /a HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n", 400),
    (b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 403),
    (b"GET /%2e%2e/secret HTTP/1.1\r\nHost: x\r\n\r\n", 403),
    (b"GET /bytes/x HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"GET /missing.txt HTTP/1.1\r\nHost: x\r\n\r\n", 404),
    (b"GET /escape/secret HTTP/1.1\r\nHost: x\r\n\r\n", 403),  # symlink out of the root
    (b"PUT /a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 405),
])
def test_http_bad_requests(tmp_path: Path, raw: bytes, status: int) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("hello\n")
    (tmp_path / "secret").write_text("do not serve\n")
    (root / "escape").symlink_to(tmp_path)
    net, _srv, cli, _ = lab(HttpServer, 80, root=root)
    rs = split_responses(http_get(net, cli, 80, raw))
    assert rs[0][0] == status
    assert b"do not serve" not in rs[0][2]
    if status == 400:
        assert len(rs) == 1 and rs[0][1]["connection"] == "close"


def test_http_serves_files_under_root(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    big = random.Random(5).randbytes(700_001)
    (tmp_path / "sub" / "big.bin").write_bytes(big)
    (tmp_path / "page.html").write_text("<p>hi</p>\n")
    net, _srv, cli, _ = lab(HttpServer, 80, root=tmp_path)
    raw = (b"GET /sub/big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /page.html HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /sub/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    rs = split_responses(http_get(net, cli, 80, raw))
    assert [r[0] for r in rs] == [200, 200, 200]
    assert rs[0][2] == big and rs[0][1]["content-type"] == "application/octet-stream"
    assert rs[1][2] == b"<p>hi</p>\n" and rs[1][1]["content-type"].startswith("text/html")
    assert b"big.bin" in rs[2][2]


def test_http_request_split_into_single_bytes() -> None:
    """A request arriving one byte per segment (TCP_NODELAY client) is still parsed."""
    net, _srv, cli, _server = lab(HttpServer, 80)
    raw = b"GET /bytes/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    c = Client(cli.stack, 80, b"", half_close=False)
    cli.add(c)
    net.call_at(0, lambda now: None)
    net.run(until=10 * MS)
    for i, b in enumerate(raw):
        net.call_at(net.now + (i + 1) * MS,
                    lambda now, b=b: cli.stack.send(c.fd, bytes([b]), now=now))
    net.run(until=2_000 * MS, stop=lambda: c.closed)
    (r,) = split_responses(bytes(c.got))
    assert r[0] == 200 and r[2] == generated_bytes(3)


# ------------------------------------------------------------------ HTTP timeouts
class TimedClient(Client):
    """A client that notes when the server's FIN (end of stream) reached it."""

    eof_at: int | None = None

    def poll(self, now: int) -> None:
        super().poll(now)
        if self.eof and self.eof_at is None:
            self.eof_at = now


def _eof_time(raw: bytes, **server_kw: object) -> tuple[int, TimedClient, object]:
    net, _srv, cli, server = lab(HttpServer, 80, **server_kw)
    c = TimedClient(cli.stack, 80, raw, half_close=False)
    run_clients(net, cli, [c], until_s=400)
    assert c.eof_at is not None
    return c.eof_at, c, server


def test_http_closes_an_idle_keep_alive_connection_after_75_s() -> None:
    # nginx keepalive_timeout 75 s: the connection stays open that long after the
    # last response byte was sent, then the server closes it (FIN, not RST).
    eof_at, c, server = _eof_time(b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert c.got.endswith(generated_bytes(10)) and c.error is None
    assert 75_000 * MS <= eof_at <= 75_100 * MS, eof_at
    assert server.stack.stats["app connections timed out"] == 1


def test_http_closes_a_connection_whose_head_never_completes_after_60_s() -> None:
    # nginx client_header_timeout 60 s, counted from the head's first byte.
    eof_at, c, _ = _eof_time(b"GET /bytes/10 HT")
    assert c.got == b""
    assert 60_000 * MS <= eof_at <= 60_100 * MS, eof_at


def test_http_timeouts_are_settable() -> None:
    eof_at, _, _ = _eof_time(b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n",
                             keepalive_timeout_us=5_000 * MS)
    assert 5_000 * MS <= eof_at <= 5_100 * MS, eof_at


def test_http_answers_a_connection_made_long_after_the_server_started() -> None:
    # The idle clock starts when the connection is accepted, not at time 0.
    net, _srv, cli, _server = lab(HttpServer, 80)
    c = TimedClient(cli.stack, 80, b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n",
                    half_close=False, start_us=200_000 * MS)
    run_clients(net, cli, [c], until_s=400)
    assert c.got.endswith(generated_bytes(10)) and c.got.startswith(b"HTTP/1.1 200")
    assert c.eof_at is not None and c.eof_at >= 275_000 * MS


# ------------------------------------------------------------------ the fast head parser
_METHODS = st.sampled_from(["GET", "HEAD", "POST", "G@T", "", "GET GET"])
_TARGETS = st.sampled_from(["/", "/bytes/10", "/a%20b", "/a b", "", "/\x7f", "/é"])
_VERSIONS = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", "http/1.1", ""])
_FIELDS = st.sampled_from([
    "Host: x", "host:x", "Host:", "Connection: close", "Connection: Keep-Alive",
    "Connection: keep-alive, Upgrade", "X-A:\t1 ", "Bad Name: 1", "NoColon", ":empty",
    "X-B: é", "Content-Length: 5", "X-C: a\x01b", "", "Host: y",
    "Transfer-Encoding: chunked", "CONNECTION: close", "content-length: x",
])


@settings(max_examples=1000, deadline=None)
@given(_METHODS, _TARGETS, _VERSIONS, st.lists(_FIELDS, max_size=6))
def test_fast_head_parser_agrees_with_the_checked_one(method: str, target: str, version: str,
                                                      fields: list[str]) -> None:
    # parse_head() takes a regex fast path for well-formed heads and falls back to the
    # line-by-line parser; both must give the same request or the same error.
    head = "\r\n".join([f"{method} {target} {version}", *fields]).encode()

    def outcome(parse):  # type: ignore[no-untyped-def]
        try:
            r = parse(head)
            return ("ok", r.method, r.target, r.version, r.headers, r.keep_alive,
                    r.connection, r.content_length, r.transfer_encoding)
        except BadRequest as exc:
            return ("bad", exc.status, str(exc))

    assert outcome(parse_head) == outcome(_parse_head_checked)


def test_fast_head_parser_takes_a_typical_request() -> None:
    req = parse_head(b"GET /bytes/1024 HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 192.0.2.2\r\n"
                     b"User-Agent: ApacheBench/2.3\r\nAccept: */*")
    assert (req.method, req.target, req.version, req.keep_alive) == \
        ("GET", "/bytes/1024", "HTTP/1.0", True)
    assert req.headers["host"] == "192.0.2.2"


def test_http_repeated_requests_are_answered_the_same_from_the_caches() -> None:
    # A head seen before is not parsed again, and a small /bytes/N response is kept
    # whole for the second: each answer must be what a fresh one would be.
    t = [1_700_000_000.0]
    net, _srv, cli, server = lab(HttpServer, 80, clock=lambda: t[0])
    get = b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n"
    raw = (get + get + b"HEAD /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n" + get
           + b"GET /bytes/10 HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n")
    blob = http_get(net, cli, 80, raw)
    first, _, rest = blob.partition(b"\r\n\r\n" + generated_bytes(10))
    rs = split_responses(blob, head_at=2)
    assert [r[0] for r in rs] == [200, 200, 200, 200, 400]
    assert rest.startswith(first)                    # byte for byte the same response
    assert rs[2][1]["content-length"] == "10" and rs[2][2] == b""
    assert rs[3][2] == generated_bytes(10) and rs[3][1]["connection"] == "keep-alive"
    assert rs[4][1]["connection"] == "close"
    assert get[:-4] in server.parsed                 # type: ignore[attr-defined]
    assert server.requests == 4                      # type: ignore[attr-defined]
    # The same request again with "Connection: close" is not the kept keep-alive answer.
    blob = http_get(net, cli, 80, get[:-2] + b"Connection: close\r\n\r\n")
    ((status, headers, body),) = split_responses(blob)
    assert (status, headers["connection"], body) == (200, "close", generated_bytes(10))


def test_http_kept_responses_last_one_second_of_the_date() -> None:
    t = [1_700_000_000.0]
    net, _srv, cli, _server = lab(HttpServer, 80, clock=lambda: t[0])
    get = b"GET /bytes/3 HTTP/1.1\r\nHost: x\r\n\r\n"
    dates = []
    for _ in range(2):
        ((status, headers, body),) = split_responses(http_get(net, cli, 80, get))
        assert status == 200 and body == generated_bytes(3)
        dates.append(headers["date"])
        t[0] += 1
    assert dates == ["Tue, 14 Nov 2023 22:13:20 GMT", "Tue, 14 Nov 2023 22:13:21 GMT"]
