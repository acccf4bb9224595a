"""Socket options and send flags Linux has, with Linux's semantics and errors (issue 10).

Each test states the Linux behaviour it checks; the numbers were read off Linux 6.18
(the packetdrill scripts in gtests/net/tcp/{zerocopy,inq,notsent_lowat,user_timeout}
and the kernel sources named in synack's comments).
"""

from __future__ import annotations

import errno

import pytest
from transcript import R_ISN, established_client, established_server

from synack.host.calls import MSG_ZEROCOPY
from synack.host.errqueue import SO_EE_CODE_ZEROCOPY_COPIED, SO_EE_ORIGIN_ZEROCOPY
from synack.sockopts import SO_MARK, SO_ZEROCOPY, TCP_INQ, TCP_NOTSENT_LOWAT, TCP_USER_TIMEOUT
from synack.stack import Stack
from synack.tcp.state import State
from synack.wire.tcp import ACK, FIN, PSH

IPPROTO_TCP = 6
SOL_SOCKET = 1
SEC = 1_000_000


def _ack(peer, stack: Stack, fd: int, upto: int, *, now: int, window: int = 65535) -> list:
    conn = stack.connection(fd)
    assert conn is not None
    return peer.send(seq=R_ISN + 1, ack=conn.snd.iss + 1 + upto, flags=ACK, window=window,
                     now=now)


def _errs(stack: Stack, fd: int) -> list[tuple[int, int]]:
    got = []
    while True:
        try:
            ee = stack.recv_errqueue(fd)
        except BlockingIOError:
            return got
        assert (ee.errno, ee.origin, ee.type, ee.code) == (
            0, SO_EE_ORIGIN_ZEROCOPY, 0, SO_EE_CODE_ZEROCOPY_COPIED)
        got.append((ee.info, ee.data))


# ---------------------------------------------------------------- SO_ZEROCOPY

def test_zerocopy_completion_after_the_ack_each_read_alone():
    """Linux: each MSG_ZEROCOPY send is numbered from 0; its notification (origin
    SO_EE_ORIGIN_ZEROCOPY, code COPIED as the device copied) is queued once the bytes
    are acknowledged, read with recvmsg(MSG_ERRQUEUE); an empty queue says EAGAIN."""
    stack, fd, peer = established_server()
    stack.setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, 1)
    assert stack.getsockopt(fd, SOL_SOCKET, SO_ZEROCOPY) == 1
    assert stack.send(fd, b"a" * 4000, now=0, flags=MSG_ZEROCOPY) == 4000
    peer.out()
    assert _errs(stack, fd) == []                 # not acknowledged yet
    _ack(peer, stack, fd, 4000, now=1000)
    assert _errs(stack, fd) == [(0, 0)]
    stack.send(fd, b"b" * 4000, now=2000, flags=MSG_ZEROCOPY)
    peer.out(2000)
    _ack(peer, stack, fd, 8000, now=3000)
    assert _errs(stack, fd) == [(1, 1)]


def test_zerocopy_notifications_coalesce_while_queued():
    """Linux skb_zerocopy_notify_extend(): a completion that follows the last queued
    notification extends its range instead of queueing another."""
    stack, fd, peer = established_server()
    stack.setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, 1)
    for i in range(3):
        stack.send(fd, b"x" * 1000, now=i * 1000, flags=MSG_ZEROCOPY)
        peer.out(i * 1000)
        _ack(peer, stack, fd, (i + 1) * 1000, now=i * 1000 + 500)
    assert _errs(stack, fd) == [(0, 2)]


def test_zerocopy_flag_ignored_without_the_option_and_option_range():
    """Linux: MSG_ZEROCOPY without SO_ZEROCOPY is an ordinary send (no notification);
    SO_ZEROCOPY takes 0 or 1 (EINVAL otherwise); SO_MARK is kept and read back."""
    stack, fd, peer = established_server()
    stack.send(fd, b"x" * 100, now=0, flags=MSG_ZEROCOPY)
    peer.out()
    _ack(peer, stack, fd, 100, now=1000)
    assert _errs(stack, fd) == []
    with pytest.raises(OSError) as exc:
        stack.setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, 2)
    assert exc.value.errno == errno.EINVAL
    stack.setsockopt(fd, SOL_SOCKET, SO_MARK, 666)
    assert stack.getsockopt(fd, SOL_SOCKET, SO_MARK) == 666


def test_zerocopy_sends_joining_an_unsent_tail_share_one_notification():
    """Linux msg_zerocopy_realloc(): a send whose bytes join the previous send's still
    unsent skb extends that send's notification, so both complete as one range."""
    stack, fd, peer = established_server()
    stack.setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, 1)
    stack.send(fd, b"a" * 1460, now=0, flags=MSG_ZEROCOPY)    # 0: goes out at once
    stack.send(fd, b"b" * 10, now=0, flags=MSG_ZEROCOPY)      # 1: goes out (Minshall)
    stack.send(fd, b"c" * 10, now=0, flags=MSG_ZEROCOPY)      # 2: Nagle holds it
    stack.send(fd, b"d" * 10, now=0, flags=MSG_ZEROCOPY)      # 3: joins 2's unsent tail
    assert [len(s.payload) for s in peer.out()] == [1460, 10]
    (seg,) = _ack(peer, stack, fd, 1470, now=1000)            # 2 and 3 leave together
    assert len(seg.payload) == 20
    assert _errs(stack, fd) == [(0, 1)]
    _ack(peer, stack, fd, 1480, now=2000)                     # 2's bytes only
    assert _errs(stack, fd) == []                             # 2 waits for 3
    _ack(peer, stack, fd, 1490, now=3000)
    assert _errs(stack, fd) == [(2, 3)]


# ---------------------------------------------------------------- TCP_INQ

def test_inq_counts_unread_bytes_and_the_fin():
    """Linux tcp_inq_hint(): rcv_nxt - copied_seq, so the bytes still unread, and 1
    once the peer's FIN is in and everything before it read; TCP_INQ takes 0 or 1."""
    stack, fd, peer = established_server()
    stack.setsockopt(fd, IPPROTO_TCP, TCP_INQ, 1)
    assert stack.getsockopt(fd, IPPROTO_TCP, TCP_INQ) == 1
    conn = stack.connection(fd)
    assert conn is not None
    una = conn.snd.iss + 1
    peer.send(seq=R_ISN + 1, ack=una, flags=ACK | PSH, payload=b"d" * 1000, now=1000)
    stack.recv(fd, 300, now=1000)
    assert stack.inq(fd) == 700
    peer.send(seq=R_ISN + 1001, ack=una, flags=ACK | FIN, now=2000)
    assert stack.inq(fd) == 701
    stack.recv(fd, 700, now=2000)
    assert stack.inq(fd) == 1
    with pytest.raises(OSError) as exc:
        stack.setsockopt(fd, IPPROTO_TCP, TCP_INQ, 2)
    assert exc.value.errno == errno.EINVAL


# ---------------------------------------------------------------- TCP_NOTSENT_LOWAT

def _big_sndbuf_server():
    stack, fd, peer = established_server()
    stack.setsockopt(fd, SOL_SOCKET, 7, 1 << 20)     # SO_SNDBUF: room beyond the mark
    conn = stack.connection(fd)
    assert conn is not None
    return stack, fd, peer, conn


def test_notsent_lowat_limits_a_write_and_writability():
    """Linux tcp_sendmsg_locked(): a new skb is started only while fewer than
    TCP_NOTSENT_LOWAT bytes are unsent, the unsent tail skb filling to the size goal
    first; poll says writable once twice the unsent bytes are below the mark
    (tcp_stream_memory_free(sk, wake=1)). getsockopt reads the socket's own value."""
    stack, fd, peer, conn = _big_sndbuf_server()
    assert stack.getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT) == 0
    stack.setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, 4000)
    assert stack.getsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT) == 4000
    n = stack.send(fd, bytes(200_000), now=0)
    sent = sum(len(s.payload) for s in peer.out())
    goal = conn.size_goal()
    assert sent > 0
    assert n < 200_000 and conn.snd.unsent() == n - sent
    assert conn.snd.unsent() >= 4000 and conn.snd.unsent() % goal == 0
    assert not stack.writable(fd)
    with pytest.raises(BlockingIOError):
        stack.send(fd, b"more", now=0)          # the tail skb is full: a new one is needed


def test_notsent_lowat_sysctl_is_the_default():
    """Linux tcp_notsent_lowat(): the socket's value, else net.ipv4.tcp_notsent_lowat
    (default 4294967295: no limit)."""
    stack, fd, peer, conn = _big_sndbuf_server()
    assert stack.cfg["net.ipv4.tcp_notsent_lowat"] == 2**32 - 1
    assert stack.send(fd, bytes(20_000), now=0) == 20_000
    stack2, fd2, peer2, conn2 = _big_sndbuf_server()
    stack2.cfg.set("net.ipv4.tcp_notsent_lowat", 1000)
    assert stack2.send(fd2, bytes(200_000), now=0) < 200_000


# ---------------------------------------------------------------- TCP_USER_TIMEOUT

def test_user_timeout_ends_retransmission_at_its_deadline():
    """Linux retransmits_timed_out() with icsk_user_timeout: the connection dies with
    ETIMEDOUT once TCP_USER_TIMEOUT ms have passed since the head was first sent,
    the last RTO clamped to that deadline (tcp_clamp_rto_to_user_timeout())."""
    stack, fd, peer = established_client()
    stack.setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 3000)
    assert stack.getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT) == 3000
    stack.send(fd, b"x" * 100, now=20_000)
    peer.out(20_000)
    stack.changes.clear()
    sent = peer.run_until(20 * SEC)
    conn = stack.connection(fd)
    assert conn is not None and conn.state is State.CLOSED
    assert conn.error == errno.ETIMEDOUT
    (died,) = [ch.now for _k, ch in stack.changes if ch.new is State.CLOSED]
    assert died == 20_000 + 3 * SEC             # the clamped last RTO lands on the deadline
    assert all(t < died for t, _s in sent) and 3 <= len(sent) < 6
    with pytest.raises(OSError) as exc:
        stack.setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, -1)
    assert exc.value.errno == errno.EINVAL


def test_user_timeout_ends_zero_window_probing():
    """Linux tcp_probe_timer(): with TCP_USER_TIMEOUT set, zero-window probing stops
    and the connection dies once that long has passed since the first probe."""
    stack, fd, peer = established_server()
    _ack(peer, stack, fd, 0, now=1000, window=0)
    stack.setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, 3000)
    stack.send(fd, b"x" * 100, now=1000)
    assert peer.out(1000) == []
    probes = [t for t, s in peer.run_until(60 * SEC) if not s.payload]
    conn = stack.connection(fd)
    assert conn is not None and conn.state is State.CLOSED
    assert conn.error == errno.ETIMEDOUT
    assert probes and probes[-1] - probes[0] <= 3 * SEC


# ---------------------------------------------------------------- SO_SNDBUF

def test_sndbuf_on_a_connected_socket_takes_effect_at_once():
    """Linux: sk_sndbuf is read on every write, so SO_SNDBUF set on an established
    connection bounds the next write (and stops tcp_sndbuf_expand())."""
    stack, fd, peer = established_server()
    stack.setsockopt(fd, SOL_SOCKET, 7, 8192)       # SO_SNDBUF: stored doubled
    assert stack.getsockopt(fd, SOL_SOCKET, 7) == 16384
    assert stack.send(fd, bytes(100_000), now=0) == 8192


# ---------------------------------------------------------------- PSH on retransmission

def test_retransmitted_write_end_keeps_its_psh():
    """Linux keeps TCPHDR_PSH in the skb (tcp_mark_push()): a retransmission of the
    segment that ends a write carries PSH again."""
    stack, fd, peer = established_server()
    stack.setsockopt(fd, IPPROTO_TCP, 1, 1)          # TCP_NODELAY
    stack.send(fd, b"a" * 400, now=0)
    stack.send(fd, b"b" * 400, now=0)
    first = peer.out()
    assert [s.flags & PSH for s in first] == [PSH, PSH]
    again = [s for _t, s in peer.run_until(2 * SEC)]
    assert again and again[0].seq == first[0].seq and again[0].flags & PSH
