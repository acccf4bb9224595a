"""Fields kept off the slots (synack/tcp/rare.py): Rare and Brief fields live in a dict
made only when one leaves its default, Pooled fields in a tuple shared by every object
with the same values; an idle established connection holds neither dict."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from synack.config import Sysctl
from synack.stack import Stack
from synack.tcp.rare import Brief, Pooled, Rare, pooled
from synack.tcp.state import State

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import memory as bench_memory  # the bench's addresses and pump


class Thing:
    __slots__ = ("brief", "pool", "rare")

    error = Rare[int | None](None)
    count = Rare[int](0)
    seq = Brief[int | None](None, drops=("stamp",))
    stamp = Brief[int](0)
    size = Pooled[int](0)
    flag = Pooled[bool](1)

    def __init__(self, size: int = 1460) -> None:
        self.rare: dict[str, object] | None = None
        self.brief: dict[str, object] | None = None
        self.pool: tuple[object, ...] = pooled((size, False))


def test_a_rare_field_reads_its_default_without_a_dict() -> None:
    t = Thing()
    assert (t.error, t.count, t.rare) == (None, 0, None)
    t.count = 0                      # the default: still no dict
    t.error = None
    assert t.rare is None


def test_a_rare_field_set_makes_the_dict_and_the_default_back_drops_it() -> None:
    t = Thing()
    t.count += 1
    t.error = 104
    assert t.rare == {"count": 1, "error": 104}
    assert (t.count, t.error) == (1, 104)
    t.count = 0
    assert t.rare == {"error": 104} and t.count == 0
    t.error = None
    assert t.rare is None and t.error is None


def test_brief_fields_use_their_own_dict_and_drop_their_companions() -> None:
    t = Thing()
    t.count = 3
    t.seq, t.stamp = 1000, 5_000_000
    assert t.brief == {"seq": 1000, "stamp": 5_000_000}
    assert t.rare == {"count": 3}
    t.seq = None                     # stamp means nothing without seq: it goes too
    assert t.brief is None and t.stamp == 0
    assert t.rare == {"count": 3}


def test_pooled_fields_share_one_tuple_for_the_same_values() -> None:
    a, b = Thing(1460), Thing(1460)
    assert a.pool is b.pool
    assert (a.size, a.flag) == (1460, False)
    a.flag = True
    assert (a.size, a.flag, b.flag) == (1460, True, False)
    b.flag = True
    assert a.pool is b.pool
    c = Thing(1200)
    assert c.pool is not a.pool and c.size == 1200


def _open(n: int, *, lose_first_syn: bool = False) -> tuple[Stack, Stack]:
    """N connections between two stacks joined by hand, as bench/memory.py makes them;
    ``lose_first_syn``: the client's first SYNs are dropped and sent again."""
    cfg = Sysctl()
    cli = Stack(bench_memory.CLIENT, cfg=cfg, seed=1, name="client")
    srv = Stack(bench_memory.SERVER, cfg=cfg, seed=2, name="server")
    lfd = srv.socket()
    srv.bind(lfd, ("0.0.0.0", bench_memory.PORT))
    srv.listen(lfd, n)
    now = 1_000_000
    for _ in range(n):
        cli.connect_ex(cli.socket(), (bench_memory.SERVER, bench_memory.PORT), now=now)
    if lose_first_syn:
        assert cli.transmit(now=now)     # the SYNs, dropped
        now += 1_500_000                 # past the 1 s initial RTO
        cli.tick(now=now)
    bench_memory._settle(cli, srv, now)
    return cli, srv


def test_an_idle_established_connection_holds_no_dict() -> None:
    cli, srv = _open(2)
    conns = [*cli.conns.values(), *srv.conns.values()]
    assert len(conns) == 4
    for c in conns:
        assert c.state is State.ESTABLISHED
        assert c.rcv is not None
        assert (c.rare, c.brief, c.rcv.rare) == (None, None, None), c.remote
        assert c.rtt is c.snd and c.ackp is c.rcv and c.timers is c and c.neg is c


def test_after_a_retransmitted_syn_only_the_counter_stays() -> None:
    cli, srv = _open(1, lose_first_syn=True)
    (c,) = cli.conns.values()
    (s,) = srv.conns.values()
    assert c.state is State.ESTABLISHED and s.state is State.ESTABLISHED
    assert c.brief is None and c.rare == {"total_retrans": 1}
    assert (s.brief, s.rare) == (None, None)
    assert c.rtt_seq is None and c.retrans_stamp is None


def test_an_accepted_socket_shares_the_listeners_pool_and_has_no_dict() -> None:
    _cli, srv = _open(2)
    lfd = next(fd for fd, s in srv.socks.items() if s.listener is not None)
    for _ in range(2):
        fd, peer = srv.accept(lfd)
        child, lst = srv.socks[fd], srv.socks[lfd]
        assert child.pool is lst.pool
        assert (child.reuseaddr, child.connecting, child.family) == (False, False, socket.AF_INET)
        assert child.rare is None and child.listener is None and not child.v6only
        assert child.conn is not None and child.conn.fd == fd
        assert (child.local, child.remote, child.opts) == (
            child.conn.local, child.conn.remote, child.conn.opts)
        assert peer == child.remote
        assert child in srv.ports.on(bench_memory.PORT)


def test_close_sets_rd_shut_and_app_closed_in_their_dicts() -> None:
    cli, _srv = _open(1)
    (fd,) = [fd for fd, s in cli.socks.items() if s.conn is not None]
    conn = cli.socks[fd].conn
    assert conn is not None and (conn.rd_shut, conn.app_closed) == (False, False)
    cli.close(fd, now=2_000_000)
    assert (conn.rd_shut, conn.app_closed) == (True, True)
    assert conn.rare is not None and conn.rare.get("rd_shut") is True
    assert conn.brief is not None and conn.brief.get("app_closed") is True
    assert conn.state is State.FIN_WAIT_1
