"""Data in ESTABLISHED: acknowledgement, reassembly, the receive window, segmentation.

The connection is accepted by the stack (ISS 300) from the peer (ISS 100, MSS 1460,
no window scaling), so data starts at 301 and 101 and our window field is the
plain 16-bit window: 65535 until data sits unread.
"""

from __future__ import annotations

import itertools
import socket

import pytest
from transcript import L_ISN, R_ISN, established_server, listening, ours, quiet

from synack.tcp.state import State
from synack.wire.tcp import ACK, FIN, PSH, SYN

ISS, IRS = L_ISN, R_ISN
WIN = 65535
SEC = 1_000_000


def small_window_server(rcvbuf: int = 1152):
    """A connection whose receive window is ``rcvbuf`` bytes (SO_RCVBUF, stored doubled)."""
    stack, lfd, peer = listening()
    stack.setsockopt(lfd, socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)   # Linux stores 2x
    (synack,) = peer.send(seq=IRS, flags=SYN, mss=1460)
    assert synack.window == rcvbuf    # and keeps half of that for overhead
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK)
    fd, _ = stack.accept(lfd)
    return stack, fd, peer


def server_with_peer_mss(mss: int | None):
    stack, lfd, peer = listening()
    peer.send(seq=IRS, flags=SYN, mss=mss)
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK)
    fd, _ = stack.accept(lfd)
    return stack, fd, peer


# ---------------------------------------------------------------- receiving
def test_established_data():
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK | PSH, payload=b"abcdef") == [
        ours(seq=ISS + 1, ack=IRS + 7, flags=ACK, window=WIN - 6)
    ]
    assert stack.recv(fd, 100, now=0) == b"abcdef"


def test_established_recv_small_read_sends_no_update():
    # Receiver SWS avoidance (RFC 9293 3.8.6.2.2): reading 6 bytes of a 64 KiB window
    # does not move the right edge enough to announce it.
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abcdef")
    assert stack.recv(fd, 100, now=0) == b"abcdef"
    assert peer.out() == []


def test_established_out_of_order():
    # A hole: immediate duplicate ACK for RCV.NXT (RFC 5681 4.2), window unchanged.
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 7, ack=ISS + 1, flags=ACK, payload=b"ghi") == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=WIN)
    ]
    with pytest.raises(BlockingIOError):
        stack.recv(fd, 100, now=0)
    # Filling the hole acknowledges both segments at once.
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abcdef") == [
        ours(seq=ISS + 1, ack=IRS + 10, flags=ACK, window=WIN - 9)
    ]
    assert stack.recv(fd, 100, now=0) == b"abcdefghi"


def test_established_out_of_order_two_holes():
    stack, fd, peer = established_server()
    dup = [ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=WIN)]
    assert peer.send(seq=IRS + 7, ack=ISS + 1, flags=ACK, payload=b"ghi") == dup
    assert peer.send(seq=IRS + 13, ack=ISS + 1, flags=ACK, payload=b"mno") == dup
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abcdef") == [
        ours(seq=ISS + 1, ack=IRS + 10, flags=ACK, window=WIN - 9)
    ]
    assert peer.send(seq=IRS + 10, ack=ISS + 1, flags=ACK, payload=b"jkl") == [
        ours(seq=ISS + 1, ack=IRS + 16, flags=ACK, window=WIN - 15)
    ]
    assert stack.recv(fd, 100, now=0) == b"abcdefghijklmno"


def test_established_duplicate_segment():
    stack, fd, peer = established_server()
    ack = [ours(seq=ISS + 1, ack=IRS + 4, flags=ACK, window=WIN - 3)]
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abc") == ack
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abc") == ack
    assert stack.recv(fd, 100, now=0) == b"abc"


def test_established_old_segment_partly_new():
    # The already received front is trimmed, the rest is taken.
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abc")
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abcdef") == [
        ours(seq=ISS + 1, ack=IRS + 7, flags=ACK, window=WIN - 6)
    ]
    assert stack.recv(fd, 100, now=0) == b"abcdef"


def test_established_segment_beyond_window_trimmed():
    # RFC 9293 3.10.7.4: text past the right edge is cut off; the window is then 0.
    stack, fd, peer = small_window_server(1152)
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"x" * 2000) == [
        ours(seq=ISS + 1, ack=IRS + 1 + 1152, flags=ACK, window=0)
    ]
    # Reading everything reopens the window, and the stack says so at once.
    assert stack.recv(fd, 4096, now=0) == b"x" * 1152
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 1 + 1152, flags=ACK, window=1152)]


def test_established_zero_window_probe():
    # With RCV.WND = 0 no text is acceptable (RFC 9293 3.10.7.4): the probe byte is ACKed
    # with the unchanged RCV.NXT and the zero window.
    stack, fd, peer = small_window_server(1152)
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"x" * 1152)
    assert peer.send(seq=IRS + 1153, ack=ISS + 1, flags=ACK, payload=b"y") == [
        ours(seq=ISS + 1, ack=IRS + 1153, flags=ACK, window=0)
    ]
    assert stack.recv(fd, 4096, now=0) == b"x" * 1152


def test_established_zero_window_probe_carries_an_ack_we_take():
    # RFC 9293 3.10.7.4: with RCV.WND = 0 "special allowance should be made to accept valid
    # ACKs". A probe with data at RCV.NXT (Linux's tcp_sequence() accepts it) acknowledges
    # our data: SND.UNA moves although its text is dropped, and the zero window is repeated
    # at once. Dropping it whole would deadlock two full buffers: each side would discard
    # the segments carrying the other's ACKs.
    stack, fd, peer = small_window_server(1152)
    assert stack.send(fd, b"ours", now=0) == 4
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 1, flags=ACK | PSH, window=1152,
                               payload=b"ours")]
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"x" * 1152)   # window now 0
    assert peer.send(seq=IRS + 1153, ack=ISS + 5, flags=ACK, payload=b"y", now=1000) == [
        ours(seq=ISS + 5, ack=IRS + 1153, flags=ACK, window=0)
    ]
    assert stack.connection(fd).snd.snd_una == ISS + 5      # our 4 bytes are acknowledged
    quiet(peer, 5 * SEC)                                     # so nothing is retransmitted
    assert stack.recv(fd, 4096, now=5 * SEC) == b"x" * 1152


def test_scaled_window_right_edge_never_moves_left():
    # With window scaling the field counts 2**wscale-byte units. Rounding the window down
    # to a unit at every ACK would pull the right edge left a little each time (a
    # shrinking window, RFC 9293 3.8.6.2.2); Linux rounds up. The peer offers scaling,
    # sends 1448-byte segments, and the application reads nothing.
    stack, lfd, peer = listening()
    (synack,) = peer.send(seq=IRS, flags=SYN, mss=1460, wscale=7)
    shift = synack.wscale
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK)
    stack.accept(lfd)
    edges = []
    seq = IRS + 1
    for i in range(40):
        for ack in peer.send(seq=seq, ack=ISS + 1, flags=ACK, payload=b"z" * 1448,
                             now=i * 1000):
            edges.append(ack.ack + (ack.window << shift))
        seq += 1448
    edges += [a.ack + (a.window << shift) for _t, a in peer.run_until(2 * SEC)]
    assert len(edges) >= 20
    assert all(b >= a for a, b in itertools.pairwise(edges)), edges


def test_established_data_and_fin():
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=FIN | ACK | PSH, payload=b"bye") == [
        ours(seq=ISS + 1, ack=IRS + 5, flags=ACK, window=WIN - 4)
    ]
    assert stack.state(fd) is State.CLOSE_WAIT
    assert stack.recv(fd, 100, now=0) == b"bye"
    assert stack.recv(fd, 100, now=0) == b""


def test_established_fin_out_of_order():
    # A FIN ahead of a hole counts only once the hole is filled.
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 4, ack=ISS + 1, flags=FIN | ACK) == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=WIN)
    ]
    assert stack.state(fd) is State.ESTABLISHED
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abc") == [
        ours(seq=ISS + 1, ack=IRS + 5, flags=ACK, window=WIN - 4)
    ]
    assert stack.state(fd) is State.CLOSE_WAIT
    assert stack.recv(fd, 100, now=0) == b"abc"
    assert stack.recv(fd, 100, now=0) == b""


def test_established_bare_ack_no_reply():
    # An ACK that carries nothing is never answered (no ACK-of-ACK loop).
    _stack, _fd, peer = established_server()
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK) == []


# ---------------------------------------------------------------- sending
def test_established_send():
    stack, fd, peer = established_server()
    assert stack.send(fd, b"hello", now=0) == 5
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 1, flags=ACK | PSH, window=WIN,
                               payload=b"hello")]
    assert peer.send(seq=IRS + 1, ack=ISS + 6, flags=ACK, now=50_000) == []
    quiet(peer, 600 * SEC)      # acknowledged: nothing left to retransmit


def test_established_send_segments_of_peer_mss():
    # The peer announced MSS 1460: full segments, PSH only on the last one (Linux tcp_push).
    stack, fd, peer = established_server()
    data = bytes(range(256)) * 16        # 4096 bytes
    assert stack.send(fd, data, now=0) == 4096
    assert peer.out() == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=WIN, payload=data[:1460]),
        ours(seq=ISS + 1461, ack=IRS + 1, flags=ACK, window=WIN, payload=data[1460:2920]),
        ours(seq=ISS + 2921, ack=IRS + 1, flags=ACK | PSH, window=WIN, payload=data[2920:]),
    ]


@pytest.mark.parametrize(("mss", "effective"), [(536, 536), (None, 536), (9000, 1460)])
def test_established_send_mss(mss, effective):
    # No MSS option means 536 (RFC 9293 3.7.1); never more than our own 1460 either.
    stack, fd, peer = server_with_peer_mss(mss)
    assert stack.send(fd, b"z" * 2000, now=0) == 2000
    sizes = [len(s.payload) for s in peer.out()]
    assert sizes == [effective] * (2000 // effective) + (
        [2000 % effective] if 2000 % effective else [])


def test_established_send_limited_by_peer_window():
    # The peer's window (1000) is smaller than one segment (MSS 1460). Like Linux
    # (tcp_snd_wnd_test: a full-sized segment must fit; the largest window seen, 65535
    # from the SYN, keeps tcp_bound_to_half_wnd() from shrinking the MSS), the sender
    # does not split its segment to fit: it waits, and the persist timer sends a
    # window-sized piece at the RTO (srtt 1 us + 200 ms floor, Linux's rto formula).
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, window=1000) == []
    assert stack.send(fd, b"a" * 2500, now=0) == 2500
    assert peer.out() == []
    # (A probe that carries data has PSH: Linux tcp_write_wakeup() sets it.)
    assert peer.run_until(200_001) == [
        (200_001, ours(seq=ISS + 1, ack=IRS + 1, flags=ACK | PSH, window=WIN,
                       payload=b"a" * 1000))
    ]
    # Its ACK (an RTT sample of ~100 ms: RTO 212.5 ms) leaves the window still below a
    # segment: nothing at once, the next piece at the next persist deadline.
    assert peer.send(seq=IRS + 1, ack=ISS + 1001, flags=ACK, window=1000, now=300_000) == []
    assert stack.connection(fd).rtt.rto == 212_500
    assert peer.run_until(512_500) == [
        (512_500, ours(seq=ISS + 1001, ack=IRS + 1, flags=ACK | PSH, window=WIN,
                       payload=b"a" * 1000))
    ]
    # A window that holds everything left lets the last 500 bytes go at once, with PSH.
    assert peer.send(seq=IRS + 1, ack=ISS + 2001, flags=ACK, window=4000, now=600_000) == [
        ours(seq=ISS + 2001, ack=IRS + 1, flags=ACK | PSH, window=WIN, payload=b"a" * 500)
    ]


def test_established_window_update_opens_window():
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, window=0)
    assert stack.send(fd, b"wait", now=0) == 4
    assert peer.out() == []
    assert peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, window=100, now=10_000) == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK | PSH, window=WIN, payload=b"wait")
    ]


def test_established_old_window_update_ignored():
    # RFC 9293 3.10.7.4: SND.WND is taken only from segments newer than SND.WL1/WL2;
    # a late segment that filled a hole must not undo the window of a later one.
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"abc")
    peer.send(seq=IRS + 7, ack=ISS + 1, flags=ACK, payload=b"ghi")           # SND.WL1 = 107
    assert peer.send(seq=IRS + 4, ack=ISS + 1, flags=ACK, payload=b"def", window=0) == [
        ours(seq=ISS + 1, ack=IRS + 10, flags=ACK, window=WIN - 9)
    ]
    assert stack.send(fd, b"go", now=0) == 2
    assert [s.payload for s in peer.out()] == [b"go"]


def test_established_send_piggybacks_ack():
    # Data sent after receiving carries the ACK of what was received.
    stack, fd, peer = established_server()
    peer.send(seq=IRS + 1, ack=ISS + 1, flags=ACK, payload=b"ping")
    assert stack.recv(fd, 10, now=0) == b"ping"
    stack.send(fd, b"pong", now=0)
    # Everything was read, so the full window is offered again.
    assert peer.out() == [ours(seq=ISS + 1, ack=IRS + 5, flags=ACK | PSH, window=WIN,
                               payload=b"pong")]


def test_established_ack_of_unsent_data():
    # RFC 9293 3.10.7.4: SEG.ACK > SND.NXT -> send an ACK and drop the segment.
    stack, fd, peer = established_server()
    assert peer.send(seq=IRS + 1, ack=ISS + 1000, flags=ACK, payload=b"nope") == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=WIN)
    ]
    with pytest.raises(BlockingIOError):
        stack.recv(fd, 10, now=0)


def test_established_ack_too_old():
    # RFC 5961 5.2: an ACK below SND.UNA - MAX.SND.WND is answered and the segment dropped.
    _stack, _fd, peer = established_server()
    too_old = (ISS - 70_000) % 2**32
    assert peer.send(seq=IRS + 1, ack=too_old, flags=ACK, payload=b"old") == [
        ours(seq=ISS + 1, ack=IRS + 1, flags=ACK, window=WIN)
    ]


def test_established_send_buffer_full():
    # SO_SNDBUF bounds what send() takes; the rest raises BlockingIOError (EAGAIN).
    stack, fd, _peer = established_server()
    stack.setsockopt(fd, socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    taken = stack.send(fd, b"q" * 100_000, now=0)
    assert 0 < taken < 100_000
    with pytest.raises(BlockingIOError):
        stack.send(fd, b"more", now=0)


def _shuttle(a, b, now: int) -> int:
    """Exchange packets between two stacks until both are quiet; the new time."""
    for _ in range(1000):
        for st in (a, b):
            due = st.next_deadline()
            if due is not None and due <= now:
                st.tick(now=now)
        pa, pb = a.transmit(now=now), b.transmit(now=now)
        if not pa and not pb:
            return now
        for p in pa:
            b.receive(p, now=now)
        for p in pb:
            a.receive(p, now=now)
        now += 100
    raise AssertionError("the stacks still talk")


def test_delivery_counted_past_two_gigabytes():
    """After 2**31 bytes the ACKs still count as delivered data and grow cwnd: only the
    SYN's sequence number is no data (a bound computed from the ISS wrapped there)."""
    from synack.seq import MASK
    from synack.stack import Stack

    c, s = Stack("192.0.2.1", seed=1), Stack("192.0.2.2", seed=2)
    lfd = s.socket()
    s.bind(lfd, ("0.0.0.0", 80))
    s.listen(lfd, 8)
    fd = c.socket()
    c.connect_ex(fd, ("192.0.2.2", 80), now=0)
    now = _shuttle(c, s, 0)
    sfd = s.accept(lfd)[0]
    conn = c.socks[fd].conn
    assert conn is not None and conn.state is State.ESTABLISHED
    # As if 2 GB and a little more had gone before: the ISS lies 2**31 + 1000 back.
    conn.snd.iss = (conn.snd.snd_una - (1 << 31) - 1000) & MASK
    delivered, cwnd = conn.delivered, conn.rec.cc.cwnd
    total = got = 0
    block = b"d" * 20_000
    while got < 200_000:
        if total < 200_000:
            total += c.send(fd, block[:200_000 - total], now=now)
        now = _shuttle(c, s, now)
        while True:
            try:
                got += len(s.recv(sfd, 1 << 20, now=now))
            except BlockingIOError:
                break
        now = _shuttle(c, s, now + 50_000)   # past the delayed ACK
    assert conn.delivered - delivered == 200_000
    assert conn.rec.cc.cwnd > cwnd
