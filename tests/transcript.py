"""Transcript helpers: drive one Stack with hand-made segments, read its exact replies.

``Peer`` plays the remote host. ``peer.send(...)`` builds a segment (fields as
in :class:`TcpSegment`), delivers it as an IPv4 packet at ``now`` and returns
the segments the stack answered with, parsed back from the wire. ``quiet``
asserts that nothing is sent until a given time.
"""

from __future__ import annotations

from dataclasses import replace

from synack.stack import Stack
from synack.tcp.isn import FixedIsn
from synack.tcp.state import State
from synack.wire.ipv4 import build_tcp_packet, parse_tcp_packet
from synack.wire.tcp import ACK, SYN, TcpSegment

LOCAL = "192.0.2.2"    # the stack under test
REMOTE = "192.0.2.1"   # the peer the test plays
LPORT, RPORT = 80, 40000
L_ISN, R_ISN = 300, 100


def new_stack(*, isn: int = L_ISN, **kw) -> Stack:
    return Stack(LOCAL, seed=7, isn=FixedIsn([isn, isn + 10_000, isn + 20_000]), **kw)


class Peer:
    def __init__(self, stack: Stack, *, port: int = RPORT, lport: int = LPORT,
                 addr: str = REMOTE) -> None:
        self.stack = stack
        self.port = port
        self.lport = lport
        self.addr = addr

    def seg(self, **fields) -> TcpSegment:
        base = {"src_port": self.port, "dst_port": self.lport, "seq": 0, "window": 65535}
        base.update(fields)
        return TcpSegment(**base)

    def send(self, *, now: int = 0, **fields) -> list[TcpSegment]:
        packet = build_tcp_packet(self.addr, self.stack.addr, self.seg(**fields))
        self.stack.receive(packet, now=now)
        return self.out(now)

    def out(self, now: int = 0) -> list[TcpSegment]:
        segs = []
        for packet in self.stack.transmit(now=now):
            ip, seg = parse_tcp_packet(packet)
            assert ip.src == self.stack.addr and ip.dst == self.addr
            segs.append(seg)
        return segs

    def tick(self, now: int) -> list[TcpSegment]:
        self.stack.tick(now=now)
        return self.out(now)

    def run_until(self, t: int) -> list[tuple[int, TcpSegment]]:
        """Tick the stack at each deadline up to ``t``: [(time, segment sent)]."""
        sent = []
        while True:
            d = self.stack.next_deadline()
            if d is None or d > t:
                return sent
            sent += [(d, s) for s in self.tick(d)]


def quiet(peer: Peer, until: int) -> None:
    """Assert the stack sends nothing up to and including ``until`` (timers run)."""
    sent = peer.run_until(until)
    assert sent == [], f"expected silence until {until}, got {sent}"


def ours(**fields) -> TcpSegment:
    """A segment as the stack under test sends it to the default peer (for whole-record asserts)."""
    base = {"src_port": LPORT, "dst_port": RPORT, "seq": 0}
    base.update(fields)
    return TcpSegment(**base)


# What a Linux-like stack offers in its own SYN (net.ipv4.tcp_sack and tcp_timestamps on),
# in Linux's order: mss, sackOK, TS val ecr, nop, wscale (tcp_options_write()).
SYN_OPTIONS = {"mss": 1460, "sack_permitted": True, "wscale": 7}
LINUX_SYN_OPTION_KINDS = (2, 4, 8, 1, 3)


def our_syn(ts0: int, now: int = 0, **fields) -> TcpSegment:
    """The stack's SYN sent at ``now``, its TS clock reading ``ts0`` at time 0 (1 ms ticks)."""
    base = {"seq": L_ISN, "flags": SYN, "window": 65535,
            "timestamps": ((ts0 + now // 1000) & 0xFFFFFFFF, 0), **SYN_OPTIONS}
    base.update(fields)
    return ours(**base)


def first_syn(peer: Peer) -> int:
    """Consume the stack's first SYN, check all of it but the random TS value; return that."""
    (syn,) = peer.out()
    assert syn.option_kinds == LINUX_SYN_OPTION_KINDS
    assert syn.timestamps is not None
    ts0 = syn.timestamps[0]
    assert syn == our_syn(ts0)
    return ts0


def conn_state(stack: Stack, port: int = RPORT) -> State | None:
    """The state of the stack's connection to the peer on ``port`` (None: none left), as ``ss``."""
    for row in stack.connections():
        if row.state is not State.LISTEN and row.peer == (REMOTE, port):
            return row.state
    return None


def strip(seg: TcpSegment, **changes) -> TcpSegment:
    """A copy with the given fields changed (for comparisons that ignore some fields)."""
    return replace(seg, **changes)


def listening(**kw) -> tuple[Stack, int, Peer]:
    stack = new_stack(**kw)
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    stack.listen(fd, 16)
    return stack, fd, Peer(stack)


def established_server(**kw) -> tuple[Stack, int, Peer]:
    """Handshake driven by the peer; returns the accepted fd."""
    stack, lfd, peer = listening(**kw)
    (synack,) = peer.send(seq=R_ISN, flags=SYN, mss=1460)
    assert synack.flags == SYN | ACK
    assert peer.send(seq=R_ISN + 1, ack=synack.seq + 1, flags=ACK) == []
    fd, _ = stack.accept(lfd)
    return stack, fd, peer


def established_client(**kw) -> tuple[Stack, int, Peer]:
    """connect() from the stack; the peer answers SYN,ACK."""
    stack = new_stack(**kw)
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    assert stack.connect_ex(fd, (REMOTE, RPORT), now=0) == 115  # EINPROGRESS
    peer = Peer(stack)
    (syn,) = peer.out()
    assert syn.flags == SYN and syn.seq == L_ISN
    (ack,) = peer.send(seq=R_ISN, ack=L_ISN + 1, flags=SYN | ACK, mss=1460, now=10_000)
    assert ack.flags == ACK and ack.seq == L_ISN + 1 and ack.ack == R_ISN + 1
    return stack, fd, peer
