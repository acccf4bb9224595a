"""Socket options and send flags Linux has, with Linux's semantics and errors (issue 10).

Each test states the Linux behaviour it checks; the numbers were read off Linux 6.18
(the packetdrill scripts in gtests/net/tcp/{zerocopy,inq,notsent_lowat,user_timeout}
and the kernel sources named in synack's comments).
"""

from __future__ import annotations

import errno

import pytest
from transcript import (
    LOCAL,
    LPORT,
    R_ISN,
    REMOTE,
    RPORT,
    Peer,
    established_client,
    established_server,
    listening,
    new_stack,
    quiet,
)

from synack.host.calls import MSG_ZEROCOPY
from synack.host.errqueue import SO_EE_CODE_ZEROCOPY_COPIED, SO_EE_ORIGIN_ZEROCOPY
from synack.sockopts import (
    SO_MARK,
    SO_TIMESTAMPING,
    SO_ZEROCOPY,
    TCP_INQ,
    TCP_NOTSENT_LOWAT,
    TCP_USER_TIMEOUT,
)
from synack.stack import Stack
from synack.tcp.state import State
from synack.wire.ipv4 import build_tcp_packet, parse_tcp_packet
from synack.wire.tcp import ACK, FIN, PSH, SYN

IPPROTO_IP, IPPROTO_TCP, SOL_SOCKET = 0, 6, 1
IP_TOS, SO_RCVLOWAT = 1, 18
TCP_DEFER_ACCEPT, TCP_WINDOW_CLAMP, TCP_QUICKACK = 9, 10, 12
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


def test_a_pure_ack_touches_a_socket_only_while_it_waits_on_acks():
    """Linux wakes a socket's waiters for a pure ACK only when a writer wanted room
    (SOCK_NOSPACE) or completions were queued (sk_error_report()): a write taken whole
    and then acknowledged touches nothing, a short write or a MSG_ZEROCOPY one does."""
    stack, fd, peer = established_server()
    assert stack.send(fd, b"a" * 1000, now=0) == 1000
    peer.out()
    stack.touched.clear()
    _ack(peer, stack, fd, 1000, now=1000)
    assert fd not in stack.touched                # nobody waits for this ACK
    conn = stack.connection(fd)
    assert conn is not None
    room = conn.snd.space()
    assert 0 < stack.send(fd, b"b" * (room + 5000), now=2000) < room + 5000   # short
    peer.out(2000)
    stack.touched.clear()
    _ack(peer, stack, fd, 2000, now=3000)
    assert fd in stack.touched                    # the writer waits for room
    stack2, fd2, peer2 = established_server()
    stack2.setsockopt(fd2, SOL_SOCKET, SO_ZEROCOPY, 1)
    assert stack2.send(fd2, b"z" * 1000, now=0, flags=MSG_ZEROCOPY) == 1000
    peer2.out()
    stack2.touched.clear()
    _ack(peer2, stack2, fd2, 1000, now=1000)
    assert fd2 in stack2.touched and _errs(stack2, fd2) == [(0, 0)]


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
    stack, fd, _, _ = _big_sndbuf_server()
    assert stack.cfg["net.ipv4.tcp_notsent_lowat"] == 2**32 - 1
    assert stack.send(fd, bytes(200_000), now=0) == 200_000
    stack2, fd2, _, conn2 = _big_sndbuf_server()
    stack2.cfg.set("net.ipv4.tcp_notsent_lowat", 1000)
    assert stack2.send(fd2, bytes(200_000), now=0) < 200_000
    assert conn2.snd.unsent() >= 1000 and not stack2.writable(fd2)


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
    stack, fd, _peer = established_server()
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


# ---------------------------------------------------------------- TCP_QUICKACK

def test_quickack_zero_delays_acks_and_one_sends_the_pending_ack():
    """Linux __tcp_sock_set_quickack(): 0 enters ping-pong mode, so data is ACKed by
    the delayed-ACK timer; 1 leaves it and, with an ACK pending and the data read,
    sends that ACK at once. getsockopt says 1 when not in ping-pong mode."""
    stack, fd, peer = established_server()
    assert stack.getsockopt(fd, IPPROTO_TCP, TCP_QUICKACK) == 1
    stack.setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, 0)
    assert stack.getsockopt(fd, IPPROTO_TCP, TCP_QUICKACK) == 0
    conn = stack.connection(fd)
    assert conn is not None
    una = conn.snd.iss + 1
    assert peer.send(seq=R_ISN + 1, ack=una, flags=ACK | PSH, payload=b"q" * 100,
                     now=1000) == []                 # delayed
    assert stack.recv(fd, 100, now=2000) == b"q" * 100
    assert peer.out(2000) == []
    stack.setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, 1, now=3000)
    (ack,) = peer.out(3000)
    assert ack.flags == ACK and ack.ack == R_ISN + 101


# ---------------------------------------------------------------- TCP_WINDOW_CLAMP

def test_window_clamp_bounds_the_syn_window_and_later_windows():
    """Linux tcp_select_initial_window(): the SYN's window and its window scale come
    from at most TCP_WINDOW_CLAMP; tcp_set_window_clamp() raises a clamp below
    SOCK_MIN_RCVBUF / 2 to that, and refuses 0 on a connected socket (EINVAL)."""
    stack = new_stack()
    fd = stack.socket()
    stack.setsockopt(fd, IPPROTO_TCP, TCP_WINDOW_CLAMP, 5000)
    assert stack.getsockopt(fd, IPPROTO_TCP, TCP_WINDOW_CLAMP) == 5000
    stack.bind(fd, (LOCAL, LPORT))
    stack.connect_ex(fd, (REMOTE, RPORT), now=0)
    peer = Peer(stack)
    (syn,) = peer.out()
    assert syn.window <= 5000 and not syn.wscale
    (ack,) = peer.send(seq=R_ISN, ack=syn.seq + 1, flags=SYN | ACK, mss=1000, now=10_000)
    assert ack.window <= 5000
    got = peer.send(seq=R_ISN + 1, ack=syn.seq + 1, flags=ACK | PSH, payload=b"w" * 1000,
                    now=20_000)
    assert got and all(s.window <= 5000 for s in got)
    with pytest.raises(OSError) as exc:
        stack.setsockopt(fd, IPPROTO_TCP, TCP_WINDOW_CLAMP, 0)
    assert exc.value.errno == errno.EINVAL
    stack.setsockopt(fd, IPPROTO_TCP, TCP_WINDOW_CLAMP, 100)
    assert stack.getsockopt(fd, IPPROTO_TCP, TCP_WINDOW_CLAMP) == 1152


# ---------------------------------------------------------------- SO_RCVLOWAT

def test_rcvlowat_sets_when_a_socket_is_readable():
    """Linux tcp_stream_is_readable(): POLLIN once SO_RCVLOWAT bytes are queued (or
    the peer closed); a non-blocking read still returns what is there. 0 means 1,
    and a negative value is capped at half of tcp_rmem[2] (tcp_set_rcvlowat())."""
    stack, fd, peer = established_server()
    stack.setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, 1000)
    assert stack.getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT) == 1000
    conn = stack.connection(fd)
    assert conn is not None
    una = conn.snd.iss + 1
    peer.send(seq=R_ISN + 1, ack=una, flags=ACK | PSH, payload=b"r" * 600, now=1000)
    assert not stack.readable(fd)
    peer.send(seq=R_ISN + 601, ack=una, flags=ACK | PSH, payload=b"s" * 600, now=2000)
    assert stack.readable(fd)
    assert len(stack.recv(fd, 1100, now=3000)) == 1100
    assert not stack.readable(fd)                      # 100 left, below the mark
    assert stack.recv(fd, 1000, now=3000) == b"s" * 100  # non-blocking: what is there
    stack.setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, 0)
    assert stack.getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT) == 1
    stack.setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, -1)
    assert stack.getsockopt(fd, SOL_SOCKET, SO_RCVLOWAT) == \
        stack.cfg.triple("net.ipv4.tcp_rmem")[2] // 2


# ---------------------------------------------------------------- IP_TOS

def test_ip_tos_marks_every_packet_and_keeps_the_ecn_bits():
    """Linux do_ip_setsockopt(IP_TOS) on a TCP socket: the DSCP part is the socket's,
    the two ECN bits stay the stack's; every packet carries it; a listener's value
    is its children's (their SYN,ACK too)."""
    stack, lfd, peer = listening()
    stack.setsockopt(lfd, IPPROTO_IP, IP_TOS, 0x10 | 0x3)
    assert stack.getsockopt(lfd, IPPROTO_IP, IP_TOS) == 0x10
    stack.receive(build_tcp_packet(REMOTE, LOCAL, peer.seg(seq=R_ISN, flags=SYN, mss=1460)),
                  now=0)
    (packet,) = stack.transmit(now=0)
    ip, synack = parse_tcp_packet(packet)
    assert synack.flags == SYN | ACK and ip.tos == 0x10
    peer.send(seq=R_ISN + 1, ack=synack.seq + 1, flags=ACK, now=1000)
    fd, _ = stack.accept(lfd)
    stack.send(fd, b"t" * 10, now=2000)
    (packet,) = stack.transmit(now=2000)
    assert parse_tcp_packet(packet)[0].tos == 0x10


# ---------------------------------------------------------------- TCP_DEFER_ACCEPT

def test_defer_accept_waits_for_data_after_the_handshake():
    """Linux TCP_DEFER_ACCEPT: the seconds become SYN,ACK timeouts (secs_to_retrans(),
    read back rounded up: 5 s -> 3 timeouts -> 7 s); the handshake's bare ACK is
    dropped (TcpExtTCPDeferAcceptDrop) and no SYN,ACK is resent until the period's last
    timeout (syn_ack_recalc()); the first data completes the connection."""
    stack, lfd, peer = listening()
    stack.setsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT, 5)
    assert stack.getsockopt(lfd, IPPROTO_TCP, TCP_DEFER_ACCEPT) == 7
    (synack,) = peer.send(seq=R_ISN, flags=SYN, mss=1460)
    assert peer.send(seq=R_ISN + 1, ack=synack.seq + 1, flags=ACK, now=1000) == []
    assert stack.cfg.mib["TcpExtTCPDeferAcceptDrop"] == 1
    with pytest.raises(BlockingIOError):
        stack.accept(lfd)
    quiet(peer, 6 * SEC)                              # timeouts at 1 s and 3 s: silent
    again = peer.run_until(8 * SEC)                   # the third, at 7 s: a last chance
    assert [s.flags for _t, s in again] == [SYN | ACK]
    peer.send(seq=R_ISN + 1, ack=synack.seq + 1, flags=ACK | PSH, payload=b"GET /",
              now=9 * SEC)
    fd, _ = stack.accept(lfd)
    assert stack.recv(fd, 100, now=9 * SEC) == b"GET /"


# ---------------------------------------------------------------- SO_TIMESTAMPING

def test_timestamping_reports_the_last_byte_of_each_write():
    """Linux tcp_tx_timestamp() marks the last byte of a write; __skb_tstamp_tx()
    queues SCHED and SND reports when it is sent and an ACK report when it is
    acknowledged (origin SO_EE_ORIGIN_TIMESTAMPING, errno ENOMSG, ee_data the byte's
    number from SND.UNA at the time OPT_ID was set); OPT_ID on an unconnected socket
    is EINVAL, and so is an unknown flag."""
    from synack.host.errqueue import (
        ENOMSG,
        SCM_TSTAMP_ACK,
        SCM_TSTAMP_SCHED,
        SCM_TSTAMP_SND,
        SO_EE_ORIGIN_TIMESTAMPING,
    )
    flags = 0x100 | 0x2 | 0x200 | 0x10 | 0x80   # TX_SCHED|TX_SOFTWARE|TX_ACK|SOFTWARE|OPT_ID
    stack = Stack(LOCAL)
    fresh = stack.socket()
    with pytest.raises(OSError) as exc:
        stack.setsockopt(fresh, SOL_SOCKET, SO_TIMESTAMPING, flags)
    assert exc.value.errno == errno.EINVAL
    stack, fd, peer = established_server()
    with pytest.raises(OSError) as exc:
        stack.setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, 1 << 30)
    assert exc.value.errno == errno.EINVAL
    stack.setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, flags)
    assert stack.getsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING) == flags
    stack.setsockopt(fd, IPPROTO_TCP, 1, 1)           # TCP_NODELAY: both writes go at once
    stack.send(fd, b"a" * 2000, now=5000)
    stack.send(fd, b"b" * 2000, now=5000)
    peer.out(5000)
    _ack(peer, stack, fd, 4000, now=15_000)
    got = []
    while True:
        try:
            ee = stack.recv_errqueue(fd)
        except BlockingIOError:
            break
        assert (ee.errno, ee.origin) == (ENOMSG, SO_EE_ORIGIN_TIMESTAMPING)
        got.append((ee.info, ee.data, ee.stamp_us))
    assert got == [(SCM_TSTAMP_SCHED, 1999, 5000), (SCM_TSTAMP_SND, 1999, 5000),
                   (SCM_TSTAMP_SCHED, 3999, 5000), (SCM_TSTAMP_SND, 3999, 5000),
                   (SCM_TSTAMP_ACK, 1999, 15_000), (SCM_TSTAMP_ACK, 3999, 15_000)]


def test_zerocopy_send_of_many_buffers_splits_at_17_fragments():
    """Linux skb_zerocopy_iter_stream(): each buffer of a MSG_ZEROCOPY sendmsg is a page
    fragment, at most MAX_SKB_FRAGS (17) to an skb; a full skb gets PSH and the next
    starts a new segment. The call is still one notification (gtests zerocopy/maxfrags)."""
    stack, fd, peer = established_server()
    stack.setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, 1)
    assert stack.send(fd, bytes(18), now=0, flags=MSG_ZEROCOPY, iov=[1] * 18) == 18
    (first,) = peer.out()
    assert len(first.payload) == 17 and first.flags & PSH
    (second,) = _ack(peer, stack, fd, 17, now=1000)     # Nagle held it until this ACK
    assert len(second.payload) == 1 and second.flags & PSH
    _ack(peer, stack, fd, 18, now=2000)
    assert _errs(stack, fd) == [(0, 0)]
    stack.send(fd, bytes(18), now=3000, iov=[1] * 18)   # not zerocopy: one segment
    (plain,) = peer.out(3000)
    assert len(plain.payload) == 18


def test_options_through_synack_socket():
    """The stdlib-shaped socket passes issue 10's options to the stack: set, read back,
    and Linux's errors (EINVAL for a negative TCP_USER_TIMEOUT)."""
    import socket as std

    import synack.socket as ss
    from synack.api_host import Host

    host = Host.loopback("127.0.0.1", seed=7)
    try:
        s = ss.socket(host=host)
        s.setsockopt(std.IPPROTO_TCP, TCP_USER_TIMEOUT, 2500)
        s.setsockopt(std.IPPROTO_TCP, TCP_NOTSENT_LOWAT, 16384)
        s.setsockopt(std.SOL_SOCKET, SO_ZEROCOPY, 1)
        s.setsockopt(std.IPPROTO_IP, std.IP_TOS, 0x28)
        s.setsockopt(std.SOL_SOCKET, std.SO_RCVLOWAT, 100)
        assert s.getsockopt(std.IPPROTO_TCP, TCP_USER_TIMEOUT) == 2500
        assert s.getsockopt(std.IPPROTO_TCP, TCP_NOTSENT_LOWAT) == 16384
        assert s.getsockopt(std.SOL_SOCKET, SO_ZEROCOPY) == 1
        assert s.getsockopt(std.IPPROTO_IP, std.IP_TOS) == 0x28
        assert s.getsockopt(std.SOL_SOCKET, std.SO_RCVLOWAT) == 100
        with pytest.raises(OSError) as exc:
            s.setsockopt(std.IPPROTO_TCP, TCP_USER_TIMEOUT, -5)
        assert exc.value.errno == errno.EINVAL
        s.close()
    finally:
        host.close()
