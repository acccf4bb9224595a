"""SYN cookies (RFC 4987 3.6, Linux net/ipv4/syncookies.c): a SYN that would overflow
the SYN queue is answered statelessly; a final ACK carrying a valid cookie makes the
connection straight into the accept queue.

The listener has backlog 0, so its SYN queue holds one request (port 40000); the
next SYN (port 40001, ...) overflows it.
"""

from __future__ import annotations

from transcript import LOCAL, LPORT, R_ISN, REMOTE, Peer, conn_state, ours

from synack.config import Sysctl
from synack.stack import Stack
from synack.tcp import syncookies as sc
from synack.tcp.isn import FixedIsn
from synack.tcp.state import State
from synack.wire.tcp import ACK, RST, SYN

IRS = R_ISN
SEC = 1_000_000
TUP = ("192.0.2.1", 40001, LOCAL, LPORT)
KEY = bytes(range(16))


def listener(backlog: int = 0, **sysctls: int) -> tuple[Stack, int]:
    cfg = Sysctl()
    for name, value in sysctls.items():
        cfg.set(name.replace("__", "."), value)
    stack = Stack(LOCAL, seed=7, cfg=cfg, isn=FixedIsn(300 + 10_000 * k for k in range(50)))
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    stack.listen(fd, backlog)
    return stack, fd


def flooded(**sysctls: int) -> tuple[Stack, int]:
    """A listener whose SYN queue is full (one request from port 40000)."""
    stack, fd = listener(**sysctls)
    (synack,) = Peer(stack, port=40000).send(seq=IRS, flags=SYN, mss=1460)
    assert synack.seq == 300 and conn_state(stack, 40000) is State.SYN_RECEIVED
    return stack, fd


# ---------------------------------------------------------------- the arithmetic
def test_cookie_round_trip_and_mss_table():
    for mss, want in ((1460, 1460), (1400, 1300), (1440, 1440), (600, 536), (100, 536)):
        c = sc.make_cookie(KEY, TUP, IRS, mss, now=5 * SEC)
        assert sc.check_cookie(KEY, TUP, IRS, c, now=5 * SEC) == want


def test_cookie_rejects_forgery_and_age():
    c = sc.make_cookie(KEY, TUP, IRS, 1460, now=0)
    # The MSS index is added to the low bits, so (as in Linux) an error of a few units
    # may land on another valid index; anything else fails.
    assert sc.check_cookie(KEY, TUP, IRS, c + 1, now=0) is None         # index 4: none
    assert sc.check_cookie(KEY, TUP, IRS, c + 5000, now=0) is None      # wrong ack
    assert sc.check_cookie(KEY, TUP, IRS + 1000, c, now=0) is None      # wrong client ISN
    assert sc.check_cookie(KEY, ("192.0.2.1", 40002, LOCAL, LPORT), IRS, c, now=0) is None
    assert sc.check_cookie(bytes(16), TUP, IRS, c, now=0) is None       # other secret
    assert sc.check_cookie(KEY, TUP, IRS, c, now=119 * SEC) == 1460     # last minute's count
    assert sc.check_cookie(KEY, TUP, IRS, c, now=120 * SEC) is None     # two minutes old


def test_timestamp_carries_options():
    ts = sc.encode_ts(0x12345678, 7, True)
    assert ts <= 0x12345678 and 0x12345678 - ts < 64
    assert sc.decode_ts(ts) == sc.TsOptions(7, True)
    assert sc.decode_ts(sc.encode_ts(1000, None, False)) == sc.TsOptions(None, False)


# ---------------------------------------------------------------- the listener
def test_overflowing_syn_gets_cookie_and_connection_carries_data():
    stack, fd = flooded()
    peer = Peer(stack, port=40001)
    (synack,) = peer.send(seq=IRS, flags=SYN, mss=1400, wscale=7, sack_permitted=True)
    # No timestamps: window scaling and SACK cannot be kept, so they are not agreed to.
    assert synack == ours(seq=synack.seq, ack=IRS + 1, flags=SYN | ACK, window=65535,
                          mss=1460, dst_port=40001)
    assert synack.seq == sc.make_cookie(stack._secret(), TUP, IRS, 1400, now=0)
    assert conn_state(stack, 40001) is None                          # no state kept
    assert stack.stats["syncookies sent"] == 1
    assert peer.send(seq=IRS + 1, ack=synack.seq + 1, flags=ACK, now=10_000) == []
    assert stack.stats["syncookies received"] == 1
    assert conn_state(stack, 40001) is State.ESTABLISHED
    cfd, addr = stack.accept(fd)
    assert addr == ("192.0.2.1", 40001)
    conn = stack.connection(cfd)
    assert conn is not None and conn.mss == 1300                     # from the cookie table
    assert not conn.neg.sack_ok and not conn.neg.ts_ok
    # Data both ways.
    (ack,) = peer.send(seq=IRS + 1, ack=synack.seq + 1, flags=ACK, payload=b"hello",
                       now=20_000)
    assert ack.ack == IRS + 6
    assert stack.recv(cfd, 100, now=20_000) == b"hello"
    assert stack.send(cfd, b"x" * 3000, now=30_000) == 3000
    segs = peer.out(30_000)
    assert [len(s.payload) for s in segs] == [1300, 1300, 400]
    assert segs[0].seq == synack.seq + 1 and all(s.ack == IRS + 6 for s in segs)


def test_cookie_with_timestamps_keeps_wscale_and_sack():
    stack, fd = flooded()
    peer = Peer(stack, port=40001)
    (synack,) = peer.send(seq=IRS, flags=SYN, mss=1460, wscale=5, sack_permitted=True,
                          timestamps=(5000, 0))
    assert synack.sack_permitted and synack.wscale is not None
    assert synack.timestamps is not None
    tsval = synack.timestamps[0]
    assert synack.timestamps[1] == 5000
    # wscale 5 and SACK permitted sit in the clock's low bits, under the connection's
    # TS offset (Linux adds ts_off after cookie_init_timestamp()): not on the wire.
    conn_off = sc.ts_offset(stack._secret(),
                                    (REMOTE, 40001, LOCAL, LPORT))
    assert (tsval - conn_off) & 0x3F == 5 | 16
    assert peer.send(seq=IRS + 1, ack=synack.seq + 1, flags=ACK, timestamps=(5010, tsval),
                     now=10_000) == []
    cfd, _ = stack.accept(fd)
    conn = stack.connection(cfd)
    assert conn is not None
    assert conn.neg.ts_ok and conn.neg.sack_ok and conn.neg.snd_wscale == 5
    assert conn.neg.rcv_wscale == synack.wscale
    assert conn.mss == 1460 - 12                        # the TS option takes 12 bytes
    # The peer's window field is scaled by 2**5.
    peer.send(seq=IRS + 1, ack=synack.seq + 1, flags=ACK, window=100, timestamps=(5020, tsval),
              now=20_000)
    assert conn.snd.snd_wnd == 100 << 5
    stack.send(cfd, b"y" * 10, now=30_000)
    (data,) = peer.out(30_000)
    assert data.payload == b"y" * 10 and data.timestamps is not None
    assert data.timestamps[0] >= tsval and data.timestamps[1] == 5020


def test_forged_ack_gets_rst_and_no_connection():
    stack, _fd = flooded()
    peer = Peer(stack, port=40001)
    (synack,) = peer.send(seq=IRS, flags=SYN, mss=1460)
    bad = synack.seq + 2
    assert peer.send(seq=IRS + 1, ack=bad, flags=ACK) == [
        ours(seq=bad, flags=RST, dst_port=40001)]
    assert stack.stats["syncookies failed"] == 1 and stack.stats["syncookies received"] == 0
    assert conn_state(stack, 40001) is None


def test_cookie_valid_for_two_minute_counts():
    stack, _fd = flooded()
    peer = Peer(stack, port=40001)
    (synack,) = peer.send(seq=IRS, flags=SYN, mss=1460)
    assert peer.send(seq=IRS + 1, ack=synack.seq + 1, flags=ACK, now=119 * SEC) == []
    assert conn_state(stack, 40001) is State.ESTABLISHED


def test_old_cookie_gets_rst():
    stack, _fd = flooded()
    peer = Peer(stack, port=40001)
    (synack,) = peer.send(seq=IRS, flags=SYN, mss=1460)
    # Another overflow at 120 s keeps cookies checked; 40001's cookie is now too old.
    (other,) = Peer(stack, port=40002).send(seq=IRS, flags=SYN, mss=1460, now=120 * SEC)
    assert other.flags == SYN | ACK and stack.stats["syncookies sent"] == 2
    assert peer.send(seq=IRS + 1, ack=synack.seq + 1, flags=ACK, now=120 * SEC) == [
        ours(seq=synack.seq + 1, flags=RST, dst_port=40001)]
    assert stack.stats["syncookies failed"] == 1
    assert conn_state(stack, 40001) is None


def test_ack_without_recent_overflow_is_not_checked():
    # Linux tcp_synq_no_recent_overflow(): no cookie sent, so an ACK is just an ACK
    # to a listener.
    stack, _fd = listener()
    assert Peer(stack, port=40001).send(seq=IRS + 1, ack=5000, flags=ACK) == [
        ours(seq=5000, flags=RST, dst_port=40001)]
    assert stack.stats["syncookies failed"] == 0


def test_cookie_ack_with_accept_queue_full_is_dropped():
    stack, fd = flooded()
    peer = Peer(stack, port=40001)
    (synack,) = peer.send(seq=IRS, flags=SYN, mss=1460)
    assert Peer(stack, port=40000).send(seq=IRS + 1, ack=301, flags=ACK) == []
    assert peer.send(seq=IRS + 1, ack=synack.seq + 1, flags=ACK) == []   # 1 > backlog 0
    assert conn_state(stack, 40001) is None
    assert stack.stats["syncookies received"] == 1 and stack.stats["listen overflows"] == 1
    stack.accept(fd)
    assert peer.send(seq=IRS + 1, ack=synack.seq + 1, flags=ACK, now=SEC) == []
    assert stack.accept(fd)[1] == ("192.0.2.1", 40001)


def test_syncookies_0_drops():
    stack, _fd = flooded(net__ipv4__tcp_syncookies=0)
    assert Peer(stack, port=40001).send(seq=IRS, flags=SYN, mss=1460) == []
    assert stack.stats["SYNs dropped: SYN queue full (backlog)"] == 1
    assert stack.stats["syncookies sent"] == 0


def test_syncookies_2_always():
    stack, fd = listener(16, net__ipv4__tcp_syncookies=2)
    peer = Peer(stack, port=40000)
    (synack,) = peer.send(seq=IRS, flags=SYN, mss=1460)
    assert synack.seq != 300 and stack.stats["syncookies sent"] == 1
    assert conn_state(stack, 40000) is None
    assert peer.send(seq=IRS + 1, ack=synack.seq + 1, flags=ACK) == []
    assert stack.accept(fd)[1] == ("192.0.2.1", 40000)
