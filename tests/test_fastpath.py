"""Header prediction (tcp/fastpath.py) changes nothing: every segment it takes is also
run through the general path (InputMixin._rcv_slow) on a deep copy of the connection,
and the two connections -- every field, the host's counters, the segments queued --
must come out alike."""

from __future__ import annotations

import collections
import copy
import difflib
import enum
import functools
import pprint
from collections.abc import Iterator
from typing import Any

import pytest

from synack.apps.http import HttpServer
from synack.apps.runner import AppRunner
from synack.apps.simple import EchoServer
from synack.stack import Stack
from synack.tcp import input as inp
from synack.tcp.rack import IDLE
from synack.tcp.scoreboard import NO_SACKS
from synack.tcp.sender import NO_DATA
from synack.wire.tcp import FIN

A, B = "192.0.2.1", "192.0.2.2"
ENTRIES = ("_rcv_synchronized", "_rcv_handshake_ack", "_rcv_last_ack")
SHARED = (IDLE, NO_SACKS, NO_DATA)       # sentinels compared by identity: never copied


def dump(obj: Any, seen: dict[int, str], path: str = "c") -> Any:
    """Everything reachable from ``obj`` as plain values (shared objects as references)."""
    if obj is None or isinstance(obj, (int, float, str, bytes, bool, enum.Enum)):
        return obj
    for i, s in enumerate(SHARED):
        if obj is s:
            return ("shared", i)
    if id(obj) in seen:
        return ("ref", seen[id(obj)])
    seen[id(obj)] = path
    if isinstance(obj, bytearray):
        return ("bytearray", bytes(obj))
    if isinstance(obj, (list, tuple, collections.deque)):
        return (type(obj).__name__, [dump(x, seen, f"{path}[{i}]") for i, x in enumerate(obj)])
    if isinstance(obj, dict):
        return ("dict", sorted((repr(k), dump(v, seen, f"{path}.{k}")) for k, v in obj.items()))
    names: list[str] = []
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names += [n for n in ((slots,) if isinstance(slots, str) else slots) if n not in names]
    if hasattr(obj, "__dict__"):
        names += sorted(k for k in vars(obj) if k not in names)
    return (type(obj).__name__,
            [(n, dump(getattr(obj, n, "<unset>"), seen, f"{path}.{n}")) for n in names])


def difference(fast: Any, general: Any) -> str:
    """Where two dumps differ, as a unified diff (fast path -, general path +)."""
    return "\n".join(difflib.unified_diff(pprint.pformat(fast, width=120).splitlines(),
                                          pprint.pformat(general, width=120).splitlines(),
                                          lineterm="", n=1))


@pytest.fixture
def twin(monkeypatch: pytest.MonkeyPatch) -> Iterator[collections.Counter[str]]:
    """Count the segments the fast path took; fail at the first that differs. (Its
    entries: one per state that has predictions.)"""
    counts: collections.Counter[str] = collections.Counter()
    slow = inp.InputMixin._rcv_slow

    def checked(self: Any, entry: Any, seg: Any, now: int) -> None:
        took = [True]

        def general(conn: Any, s: Any, n: int) -> None:
            took[0] = False
            slow(conn, s, n)

        other = copy.deepcopy(self, {id(s): s for s in SHARED})
        state = self.state.name
        monkeypatch.setattr(inp.InputMixin, "_rcv_slow", general)
        try:
            entry(self, seg, now)
        finally:
            monkeypatch.setattr(inp.InputMixin, "_rcv_slow", slow)
        if took[0]:
            counts["fast"] += 1
            counts["fast " + state] += 1
            if seg.flags & FIN:
                counts["fast FIN"] += 1
            slow(other, seg, now)
            by_fast, by_general = dump(self, {}), dump(other, {})
            assert by_fast == by_general, (seg, difference(by_fast, by_general))
        else:
            counts["general"] += 1
            counts["general " + state] += 1

    for name in ENTRIES:
        monkeypatch.setattr(inp.InputMixin, name, functools.partialmethod(
            checked, getattr(inp.InputMixin, name)))
    yield counts


def shuttle(a: Any, b: Any, now: int, drop: int = 0, count: list[int] | None = None) -> None:
    """Until both are quiet; with ``drop``, every drop-th packet from a to b (``count``
    counts them over calls) is lost."""
    count = [0] if count is None else count
    while True:
        pa, pb = a.transmit(now=now), b.transmit(now=now)
        if not pa and not pb:
            return
        for p in pa:
            count[0] += 1
            if not drop or count[0] % drop:
                b.receive(p, now=now)
        for p in pb:
            a.receive(p, now=now)


def test_keep_alive_requests_take_the_fast_path_unchanged(twin: collections.Counter[str]) -> None:
    c, s = Stack(A, seed=1), Stack(B, seed=2)
    r = AppRunner(s, [HttpServer(s, 80, clock=lambda: 1_700_000_000.0)], keep_changes=False)
    fd = c.socket()
    c.connect_ex(fd, (B, 80), now=0)
    now = 0
    shuttle(c, r, now)
    req = b"GET /bytes/1024 HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 192.0.2.2\r\n\r\n"
    for _ in range(20):
        c.send(fd, req, now=now)
        shuttle(c, r, now)
        assert c.recv(fd, 1 << 16, now=now).startswith(b"HTTP/1.1 200")
        now += 50
    # Both ends: the request and the response, each acknowledging the other.
    assert twin["fast"] >= 38, twin


def test_a_lossy_bulk_transfer_is_unchanged(twin: collections.Counter[str]) -> None:
    a, b = Stack(A, seed=3), Stack(B, seed=4)
    lfd = b.socket()
    b.bind(lfd, (B, 9))
    b.listen(lfd, 8)
    fd = a.socket()
    a.connect_ex(fd, (B, 9), now=0)
    now = 0
    shuttle(a, b, now)
    sfd, _ = b.accept(lfd)
    data = bytes(range(256)) * 800
    sent = got = 0
    received = bytearray()
    count = [0]
    for _ in range(400):
        if sent < len(data):
            sent += a.send(fd, data[sent:sent + 16384], now=now)
        shuttle(a, b, now, drop=23, count=count)
        received += b.recv(sfd, 1 << 20, now=now)
        if len(received) == len(data):
            break
        now += 10_000
        for st in (a, b):
            d = st.next_deadline()
            if d is not None and d <= now:
                st.tick(now=now)
        got = len(received)
    assert bytes(received) == data, got
    assert twin["fast"] > 50 and twin["general"] > 20, twin


@pytest.mark.parametrize("timestamps", [1, 0])
def test_short_connections_close_by_the_fast_path_unchanged(
        twin: collections.Counter[str], timestamps: int) -> None:
    # What `synack serve echo` sees: the peer's FIN in ESTABLISHED (its ACK delayed
    # after data, at once without), and the last ACK of the orphan in LAST_ACK; also a
    # FIN while the echo is still unacknowledged and a FIN after a request that was not
    # echoed yet (both for the general path). And the handshake's ACK in SYN_RECEIVED.
    c, s = Stack(A, seed=5), Stack(B, seed=6)
    s.cfg.set("net.ipv4.tcp_timestamps", timestamps)
    r = AppRunner(s, [EchoServer(s, 7)], keep_changes=False)
    now = 0
    for i in range(12):
        fd = c.socket()
        c.connect_ex(fd, (B, 7), now=now)
        shuttle(c, r, now)
        kind = i % 4
        if kind in (0, 1):
            c.send(fd, b"x" * (1 + 700 * kind), now=now)
            shuttle(c, r, now)
            assert c.recv(fd, 1 << 16, now=now) == b"x" * (1 + 700 * kind)
        elif kind == 3:
            c.send(fd, b"y" * 100, now=now)
            for p in c.transmit(now=now):        # the request in, its echo not out yet
                r.receive(p, now=now)
        c.close(fd, now=now)
        shuttle(c, r, now)
        now += 100_000
        for st in (c, r):
            d = st.next_deadline()
            if d is not None and d <= now:
                st.tick(now=now)
        shuttle(c, r, now)
        now += 100_000
    assert twin["fast FIN"] >= 6 and twin["fast LAST_ACK"] >= 6, twin
    assert twin["fast SYN_RECEIVED"] == 12, twin
    assert twin["general ESTABLISHED"] >= 1, twin


@pytest.mark.parametrize("timestamps", [1, 0])
def test_sequence_numbers_that_wrap_take_the_same_decisions(
        twin: collections.Counter[str], timestamps: int) -> None:
    # The predictions test sequence numbers by their differences without masking where
    # the sign decides: ISNs just below 2**32 make every connection's numbers wrap
    # (the SYN, the request, the echo and the FIN each on either side of the wrap).
    from synack.tcp.isn import FixedIsn

    top = 1 << 32
    client = [top - 1 - k for k in range(0, 1600, 100)]
    server = [top - 2 - k for k in range(0, 1600, 100)][::-1]
    c = Stack(A, seed=7, isn=FixedIsn(client))
    s = Stack(B, seed=8, isn=FixedIsn(server))
    s.cfg.set("net.ipv4.tcp_timestamps", timestamps)
    r = AppRunner(s, [EchoServer(s, 7)], keep_changes=False)
    now = 0
    for i in range(len(client)):
        fd = c.socket()
        c.connect_ex(fd, (B, 7), now=now)
        shuttle(c, r, now)
        data = bytes([65 + i % 26]) * (1 + 150 * i)
        c.send(fd, data, now=now)
        shuttle(c, r, now)
        assert c.recv(fd, 1 << 16, now=now) == data
        c.close(fd, now=now)
        shuttle(c, r, now)
        now += 100_000
        for st in (c, r):
            d = st.next_deadline()
            if d is not None and d <= now:
                st.tick(now=now)
        shuttle(c, r, now)
        now += 100_000
    assert twin["fast SYN_RECEIVED"] == len(client), twin
    assert twin["fast ESTABLISHED"] >= len(client) and twin["fast LAST_ACK"] >= 8, twin
