"""A listener's child is built by shortcuts (tcp/connection.py, tcp/sizing.py,
tcp/cc/): its congestion controller is a ``fresh()`` copy of a per-configuration
prototype, its ACK policy is its Receiver from the start, ``_take_syn_options``
keeps its pool, MSS and quick-ACK count per key, and the first SYN,ACK's window
skips ``Receiver.window()``. Each shortcut must give what the long way gives."""

from __future__ import annotations

import pytest

from synack.config import Sysctl
from synack.tcp import cc as ccmod
from synack.tcp import sizing
from synack.tcp.ackpolicy import MAX_QUICKACKS
from synack.tcp.connection import _NO_ACKP, Connection
from synack.tcp.receiver import Receiver
from synack.tcp.records import DEFAULT_OPTS, SockOpts
from synack.tcp.state import State
from synack.wire.tcp import CWR, ECE, SYN, TcpSegment

LOCAL = ("192.0.2.1", 80)
REMOTE = ("198.51.100.2", 40000)


def slots(obj: object) -> dict[str, object]:
    names = [n for cls in type(obj).__mro__ for n in getattr(cls, "__slots__", ())]
    return {n: getattr(obj, n) for n in names if hasattr(obj, n)}


@pytest.mark.parametrize("name", sorted(ccmod.REGISTRY))
def test_fresh_is_what_create_makes(name: str) -> None:
    hyst = ccmod.HystartParams(enabled=False, detect=1, low_window=8, ack_delta_us=1000)
    proto = ccmod.create(name, mss=1000, now=5, hystart=hyst)
    proto.on_ack(3, now=9, rtt_us=100, in_flight=0, cwnd_limited=True)   # a used prototype
    got = proto.fresh(1460, 77)
    want = ccmod.create(name, mss=1460, now=77, hystart=hyst)
    assert type(got) is type(want)
    assert slots(got) == slots(want)
    assert set(slots(got)) == {n for c in type(want).__mro__ for n in getattr(c, "__slots__", ())}


def syn(**kw: object) -> TcpSegment:
    fields: dict[str, object] = {"src_port": REMOTE[1], "dst_port": LOCAL[1], "seq": 1000,
                                 "flags": SYN, "window": 65535}
    fields.update(kw)
    return TcpSegment(**fields)  # type: ignore[arg-type]


def child(seg: TcpSegment, cfg: Sysctl, opts: SockOpts = DEFAULT_OPTS,
          local: tuple[str, int] = LOCAL) -> Connection:
    conn = Connection(local, REMOTE, cfg, opts, 5000, 10, 1500, 3, True)
    assert conn.ackp is _NO_ACKP
    conn.open_passive(seg, 10)
    return conn


OPTIONS = [
    {"mss": 1460, "wscale": 7, "sack_permitted": True, "timestamps": (1, 0)},
    {"mss": 1460},
    {"mss": 500, "timestamps": (1, 0)},
    {"mss": 9000, "wscale": 2},
    {},
    {"mss": 40, "timestamps": (1, 0)},
]


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("v6", [False, True])
def test_child_agrees_as_the_long_way(opts: dict[str, object], v6: bool) -> None:
    cfg = Sysctl()
    local = ("2001:db8::1", 80) if v6 else LOCAL
    seg = syn(**opts)
    for _ in range(2):                   # the second from the caches
        conn = child(seg, cfg, local=local)
        assert conn.state is State.SYN_RECEIVED
        assert conn.ackp is conn.rcv
        assert conn.passive
        rcv = conn.rcv
        assert rcv is not None
        # Linux tcp_sync_mss(), computed here the long way.
        headers = 60 if v6 else 40
        ts_ok = "timestamps" in opts
        peer_mss = opts.get("mss") or sizing.DEFAULT_MSS
        assert conn.peer_mss == peer_mss
        want = min(conn.pmtu - headers, peer_mss, conn.adv_mss) - (12 if ts_ok else 0)
        assert conn.mss == max(want, 64) == rcv.mss == conn.rec.mss == conn.rec.cc.mss
        assert conn.ts_ok is ts_ok
        assert conn.sack_ok is bool(opts.get("sack_permitted"))
        assert conn.rcv_wscale == (7 if "wscale" in opts else None)
        assert rcv.wscale == (conn.rcv_wscale or 0)
        quick = min(max(conn.rcv_capacity // (2 * conn.mss), 2), MAX_QUICKACKS)
        assert rcv.quick == quick - 1        # the SYN,ACK took one
    # The shared placeholder was never written.
    assert (_NO_ACKP.quick, _NO_ACKP.deadline, _NO_ACKP.pingpong) == (0, None, False)


def test_first_synack_window_is_receiver_window() -> None:
    for rcvbuf in (0, 2000, 100_000, 1 << 20):
        conn = child(syn(mss=1460, wscale=7), Sysctl(), SockOpts(rcvbuf=rcvbuf))
        (synack,) = conn.outbox
        rcv = conn.rcv
        assert rcv is not None
        fresh = Receiver(rcv.irs, rcv.capacity, rcv.mss, rcv.wscale, rcv.max_capacity)
        assert synack.window == min(fresh.window(), 0xFFFF)
        assert rcv.rcv_adv == (rcv.rcv_nxt + synack.window) & 0xFFFFFFFF


def deep(obj: object, seen: set[int] | None = None) -> object:
    """An object's slots, and those of the objects of synack's in them, as dicts."""
    seen = set() if seen is None else seen
    if not type(obj).__module__.startswith("synack."):
        return obj
    if id(obj) in seen:
        return "(again)"                 # the Sender as rtt, the connection as itself
    seen.add(id(obj))
    return {n: deep(v, seen) for n, v in slots(obj).items()}


def test_positional_and_keyword_connections_agree() -> None:
    cfg = Sysctl()
    a = Connection(LOCAL, REMOTE, cfg, DEFAULT_OPTS, 7, 3, 1400, 9)
    b = Connection(local=LOCAL, remote=REMOTE, cfg=cfg, opts=DEFAULT_OPTS, iss=7, now=3,
                   mtu=1400, ts_offset=9)
    assert a.ackp is not _NO_ACKP        # an active open's own ACK policy
    assert deep(a) == deep(b)


@pytest.mark.parametrize("opts", OPTIONS)
@pytest.mark.parametrize("ecn", [False, True])
def test_new_child_arms_only_its_synack_timer(opts: dict[str, object], ecn: bool) -> None:
    # The listener arms a new child's timer entry with child.rtx, not child.next()
    # (host/listen.py _to_listener): the two must agree right after open_passive().
    cfg = Sysctl()
    seg = syn(flags=SYN | ECE | CWR, **opts) if ecn else syn(**opts)
    conn = child(seg, cfg)
    assert conn.rtx is not None
    assert conn.next() == conn.rtx
    assert conn.timer_at is None
