"""Host-wide bounds that a remote crowd cannot push past (issue 11), as Linux has them.

* ``net.ipv4.tcp_max_orphans``: connections the application closed that are still
  closing (FIN_WAIT_*, CLOSING, LAST_ACK). One more is reset at once (Linux
  tcp_close() -> tcp_check_oom(), TcpExtTCPAbortOnMemory).
* ``net.ipv4.tcp_max_tw_buckets``: TIME_WAIT entries. A connection that would enter a
  full table closes at once instead (Linux tcp_time_wait(), TcpExtTCPTimeWaitOverflow).
"""

from __future__ import annotations

from collections import Counter

import pytest
from transcript import L_ISN, LOCAL, LPORT, R_ISN, Peer, listening

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


def _stalled(n: int, mem: tuple[int, int, int],
             ) -> tuple[Stack, list[int], list[Peer], list[int]]:
    """``n`` accepted connections whose peers never read or ACK (window stays open);
    the stack, their fds, the peers, and our ISS on each."""
    stack = Stack(LOCAL, seed=7)
    lfd = stack.socket()
    stack.bind(lfd, (LOCAL, LPORT))
    stack.listen(lfd, 128)
    stack.cfg.set("net.ipv4.tcp_mem", mem)
    stack.cfg.set("net.ipv4.tcp_wmem", (4096, 1 << 20, 4 << 20))   # 512 KB send buffers
    stack.cfg.set("net.ipv4.tcp_rmem", (4096, 1 << 20, 6 << 20))
    peers = [Peer(stack, port=40001 + i) for i in range(n)]
    accepted = [_accept(stack, lfd, p) for p in peers]
    return stack, [a[0] for a in accepted], peers, [a[1] for a in accepted]


def test_writers_to_stalled_readers_are_bounded_by_tcp_mem() -> None:
    # 20 connections, each writing 1 MB to a peer that never reads: without tcp_mem the
    # host would hold 20 x 512 KB. With tcp_mem[2] = 64 pages (256 KiB) it stops there,
    # give or take one segment for each connection that had nothing queued.
    stack, fds, peers, _ = _stalled(20, (16, 32, 64))
    taken = [stack.send(fd, b"x" * (1 << 20), now=0) for fd in fds]
    for p in peers:
        p.out()
    limit = 64 * 4096
    assert taken[0] == limit                              # the first fills the host's share
    assert taken[1:] == [1460] * 19                       # the others: one segment each
    assert stack.cfg.mem_used == sum(taken) <= limit + 20 * 1460
    assert stack.cfg.mem_pressure and stack.cfg.mib["TcpExtTCPMemoryPressures"] == 1
    # Writing again: every writer waits (EAGAIN), nothing more is queued.
    for fd in fds:
        with pytest.raises(BlockingIOError):
            stack.send(fd, b"y" * 1000, now=0)
    assert stack.cfg.mem_used == sum(taken)
    # Closing them gives everything back, and the pressure ends.
    for fd in fds:
        stack.setsockopt(fd, 1, 13, b"\x01\x00\x00\x00\x00\x00\x00\x00")   # SO_LINGER 0
        stack.close(fd, now=0)
    assert stack.cfg.mem_used == 0 and not stack.cfg.mem_pressure


def test_data_for_readers_that_never_read_is_refused_above_tcp_mem() -> None:
    # 10 peers each send 100 segments to applications that never read.
    stack, fds, peers, isss = _stalled(10, (4, 8, 16))
    for p, iss in zip(peers, isss):
        for i in range(100):
            p.send(seq=IRS + 1 + i * 1000, ack=iss + 1, flags=ACK, payload=b"d" * 1000)
    limit = 16 * 4096
    assert stack.cfg.mem_used <= limit + 10 * 1000        # one segment over, at most
    assert stack.cfg.mib["TcpExtTCPRcvQDrop"] > 0
    # What was kept is intact and in order: the readers get a prefix of what was sent.
    for fd in fds:
        got = stack.recv(fd, 1 << 20, now=0)
        assert got == b"d" * len(got) and len(got) % 1000 == 0
    assert stack.cfg.mem_used == 0


def _half_open(n: int, backlog: int) -> tuple[Stack, list[Peer]]:
    """A listener with ``backlog`` and ``n`` SYNs from peers that never answer."""
    stack = Stack(LOCAL, seed=7)
    lfd = stack.socket()
    stack.bind(lfd, (LOCAL, LPORT))
    stack.listen(lfd, backlog)
    peers = [Peer(stack, port=41000 + i) for i in range(n)]
    for p in peers:
        assert len(p.send(seq=IRS, flags=SYN, mss=1460)) == 1
    return stack, peers


def _synacks_until(stack: Stack, peers: list[Peer], t: int) -> dict[int, int]:
    """SYN,ACKs each peer gets (first one included) while timers run up to ``t``."""
    got = {p.port: 1 for p in peers}
    while (d := stack.next_deadline()) is not None and d <= t:
        stack.tick(now=d)
        for seg in peers[0].out(d):           # every peer's segments: count by port
            got[seg.dst_port] += 1
    return got


def test_a_crowded_syn_queue_prunes_old_entries_after_two_retries() -> None:
    # Linux reqsk_timer_handler(): with the queue over half full (12 of 16) and no young
    # entry left, an entry gets 2 SYN,ACK retransmissions instead of tcp_synack_retries
    # (5): it is gone after 1 + 2 + 4 = 7 s instead of 63 s -- until the queue is back
    # to half (8): those left keep every retry.
    stack, peers = _half_open(12, 16)
    got = _synacks_until(stack, peers, 70_000_000)
    assert sorted(Counter(got.values()).items()) == [(3, 4), (6, 8)]
    assert stack.stats["SYN queue entries pruned"] == 4
    assert not any(lst.syn_queue for lst in stack.listeners.values())
    assert all(lst.young == 0 for lst in stack.listeners.values())


def test_a_quiet_syn_queue_keeps_every_retry() -> None:
    # 4 of 16: under half full, every entry gets all 5 retransmissions.
    stack, peers = _half_open(4, 16)
    got = _synacks_until(stack, peers, 70_000_000)
    assert set(got.values()) == {6}
    assert stack.stats["SYN queue entries pruned"] == 0
    assert all(lst.young == 0 for lst in stack.listeners.values())
