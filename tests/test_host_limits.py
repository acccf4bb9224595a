"""Host-wide bounds that a remote crowd cannot push past (issue 11), as Linux has them.

* ``net.ipv4.tcp_max_orphans``: connections the application closed that are still
  closing (FIN_WAIT_*, CLOSING, LAST_ACK). One more is reset at once (Linux
  tcp_close() -> tcp_check_oom(), TcpExtTCPAbortOnMemory).
* ``net.ipv4.tcp_max_tw_buckets``: TIME_WAIT entries. A connection that would enter a
  full table closes at once instead (Linux tcp_time_wait(), TcpExtTCPTimeWaitOverflow).
"""

from __future__ import annotations

from transcript import L_ISN, R_ISN, Peer, listening

from synack.stack import Stack
from synack.tcp.state import State
from synack.wire.tcp import ACK, FIN, RST, SYN

ISS, IRS = L_ISN, R_ISN


def _accept(stack: Stack, lfd: int, peer: Peer) -> tuple[int, int]:
    """A connection from ``peer``, accepted; (fd, our ISS)."""
    (synack,) = peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.send(seq=IRS + 1, ack=synack.seq + 1, flags=ACK) == []
    fd, _ = stack.accept(lfd)
    return fd, synack.seq


def test_one_orphan_too_many_is_reset() -> None:
    stack, lfd, _ = listening()
    stack.cfg.set("net.ipv4.tcp_max_orphans", 1)
    a, b = Peer(stack, port=40001), Peer(stack, port=40002)
    fa, iss_a = _accept(stack, lfd, a)
    fb, _iss_b = _accept(stack, lfd, b)
    stack.close(fa, now=0)
    (fin,) = a.out()
    assert fin.flags & FIN
    assert stack.orphans == 1
    stack.close(fb, now=0)
    # The second orphan: its FIN went out, then a RST at once, as tcp_close() does.
    fin_b, rst = b.out()
    assert fin_b.flags & FIN and rst.flags & RST
    assert stack.cfg.mib["TcpExtTCPAbortOnMemory"] == 1
    assert stack.orphans == 1
    # The first finishes its close: the peer ACKs our FIN and sends its own.
    a.send(seq=IRS + 1, ack=iss_a + 2, flags=ACK)
    assert stack.orphans == 1                    # FIN_WAIT_2: still closing
    a.send(seq=IRS + 1, ack=iss_a + 2, flags=FIN | ACK)
    assert stack.orphans == 0                    # TIME_WAIT is not an orphan any more
    assert len(stack.timewait) == 1


def test_a_full_time_wait_table_closes_the_next_one_at_once() -> None:
    stack, lfd, _ = listening()
    stack.cfg.set("net.ipv4.tcp_max_tw_buckets", 1)
    peers = [Peer(stack, port=40001 + i) for i in range(3)]
    for p in peers:
        fd, iss = _accept(stack, lfd, p)
        stack.close(fd, now=0)
        p.out()
        p.send(seq=IRS + 1, ack=iss + 2, flags=FIN | ACK)   # ACK of our FIN, and theirs
    assert len(stack.timewait) == 1
    assert stack.cfg.mib["TcpExtTCPTimeWaitOverflow"] == 2
    assert stack.orphans == 0
    assert not stack.conns
    states = {c.state for c in stack.connections()}
    assert states == {State.LISTEN, State.TIME_WAIT}
