"""TCP Fast Open (RFC 7413) as transcripts, each checking what Linux does.

The stack under test is 192.0.2.2 (ISS 300); the peer, 192.0.2.1 (ISS 100), plays
the other end. Timestamps are off so that every segment compares whole.
"""

from __future__ import annotations

import errno
import socket

import pytest
from transcript import L_ISN, LOCAL, LPORT, R_ISN, REMOTE, RPORT, Peer, new_stack, ours

from synack.config import Sysctl, SysctlError
from synack.tcp import fastopen as fo
from synack.tcp.state import State
from synack.tcp.tcpinfo import TCPI_OPT_SYN_DATA, TCPI_OPT_TFO_CHILD, TcpInfo
from synack.wire.tcp import ACK, PSH, SYN

TCP_FASTOPEN, TCP_FASTOPEN_CONNECT, TCP_FASTOPEN_KEY = 23, 30, 33
KEY_TEXT = "a0bf63f7-ed803d81-cd641d30-cebc4a90"
KEY = fo.parse_keys(KEY_TEXT)[0]
COOKIE = fo.make_cookie(KEY, REMOTE, LOCAL)      # what we, the server, give the peer
FO = fo.OPT_FASTOPEN
WIN = 65535
SYNACK_OPTS = {"mss": 1460, "wscale": 7}


def cfg(fastopen: int = 0x3, **more: int | str) -> Sysctl:
    return Sysctl(net__ipv4__tcp_fastopen=fastopen, net__ipv4__tcp_timestamps=0,
                  net__ipv4__tcp_fastopen_key=KEY_TEXT, **more)


def tfo_listener(*, qlen: int | None = 16, **kw):
    stack = new_stack(cfg=cfg(**kw))
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    stack.listen(fd, 16)
    if qlen is not None:
        stack.setsockopt(fd, socket.IPPROTO_TCP, TCP_FASTOPEN, qlen)
    return stack, fd, Peer(stack)


def info(stack, fd) -> TcpInfo:
    return TcpInfo.unpack(stack.getsockopt(fd, socket.IPPROTO_TCP, socket.TCP_INFO))


# ------------------------------------------------------------------ the cookie
def test_siphash_matches_the_reference_vectors() -> None:
    # SipHash-2-4 paper, appendix A: key 00..0f; messages of 0 and 15 bytes.
    key = bytes(range(16))
    assert fo.siphash24(key, b"") == 0x726FDB47DD0E0E31
    assert fo.siphash24(key, bytes(range(15))) == 0xA129CA6149BE45E5


@pytest.mark.parametrize(("key", "client", "server", "cookie"), [
    # Linux's own packetdrill scripts (fastopen/server/simple1, sockopt-fastopen-key)
    (KEY_TEXT, "10.248.0.2", "192.168.0.2", "00abaaabe8e954c2"),
    ("00000000-00000000-00000000-00000000", "10.248.0.2", "192.168.0.2", "93b7aa4f550f8a1a"),
    # run_all.py's TFO_COOKIE for its addresses under the key defaults.sh sets
    ("a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4", "192.0.2.1", "192.168.0.1", "3021b9d889017eeb"),
    # ... and its IPv6 one: SipHash of the two 16-byte addresses
    ("a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4", "fd3d:fa7b:d17d::1", "fd3d:a0b:17d6::1",
     "c1d1e9742a47a9bc"),
])
def test_cookie_is_linux_siphash_of_both_addresses(key, client, server, cookie) -> None:
    # Linux __tcp_fastopen_cookie_gen_cipher(): SipHash of saddr,daddr, little-endian.
    assert fo.make_cookie(fo.parse_keys(key)[0], client, server).hex() == cookie


def test_key_sysctl_takes_linux_format_and_refuses_others() -> None:
    c = Sysctl()
    c.assign(f"net.ipv4.tcp_fastopen_key={KEY_TEXT.upper()},00000000-00000000-00000000-00000001")
    assert c["net.ipv4.tcp_fastopen_key"] == f"{KEY_TEXT},00000000-00000000-00000000-00000001"
    with pytest.raises(SysctlError, match="four hex words"):
        c.assign("net.ipv4.tcp_fastopen_key=a0bf63f7-ed803d81")
    c.assign("net.ipv4.tcp_fastopen=0x402")         # hex, as Linux proc_dointvec reads it
    assert c.int("net.ipv4.tcp_fastopen") == 0x402


# ------------------------------------------------------------------ server
def test_cookie_request_gets_a_cookie_and_the_syn_is_acked_alone() -> None:
    # Linux tcp_try_fastopen(): an empty option asks for a cookie; the SYN,ACK carries
    # it (TcpExtTCPFastOpenCookieReqd) and the connection is an ordinary one.
    stack, lfd, peer = tfo_listener()
    assert peer.send(seq=R_ISN, flags=SYN, mss=1460, wscale=7,
                     unknown_options=((FO, b""),)) == [
        ours(seq=L_ISN, ack=R_ISN + 1, flags=SYN | ACK, window=WIN, **SYNACK_OPTS,
             unknown_options=((FO, COOKIE),))]
    assert stack.cfg.mib["TcpExtTCPFastOpenCookieReqd"] == 1
    with pytest.raises(BlockingIOError):
        stack.accept(lfd)                       # not before the handshake's last ACK


def test_good_cookie_delivers_the_syn_data_one_round_trip_early() -> None:
    # Linux tcp_fastopen_create_child(): the child is accepted at once, in SYN_RECV,
    # with the data readable; its SYN,ACK acknowledges the data; it may send before
    # the last ACK; tcpi_options has TCPI_OPT_SYN_DATA and TCPI_OPT_TFO_CHILD.
    stack, lfd, peer = tfo_listener()
    assert peer.send(seq=R_ISN, flags=SYN, mss=1460, wscale=7, payload=b"GET /",
                     unknown_options=((FO, COOKIE),)) == [
        ours(seq=L_ISN, ack=R_ISN + 1 + 5, flags=SYN | ACK, window=WIN, **SYNACK_OPTS)]
    fd, _ = stack.accept(lfd)
    assert stack.state(fd) is State.SYN_RECEIVED
    assert stack.recv(fd, 100, now=0) == b"GET /"
    assert stack.send(fd, b"200 OK", now=0) == 6
    (reply,) = peer.out()
    assert (reply.seq, reply.ack, reply.flags, reply.payload) == (
        L_ISN + 1, R_ISN + 6, ACK | PSH, b"200 OK")
    opts = info(stack, fd).tcpi_options
    assert opts & TCPI_OPT_SYN_DATA and opts & TCPI_OPT_TFO_CHILD
    assert stack.cfg.mib["TcpExtTCPFastOpenPassive"] == 1
    assert peer.send(seq=R_ISN + 6, ack=L_ISN + 7, flags=ACK, window=1000) == []
    assert stack.state(fd) is State.ESTABLISHED
    assert not info(stack, fd).tcpi_options & TCPI_OPT_TFO_CHILD


def test_bad_cookie_ignores_the_data_and_sends_the_right_cookie() -> None:
    # Linux: TcpExtTCPFastOpenPassiveFail; the SYN,ACK acknowledges ISN+1 only and
    # carries a valid cookie; the client sends its data again after the handshake.
    stack, lfd, peer = tfo_listener()
    assert peer.send(seq=R_ISN, flags=SYN, mss=1460, wscale=7, payload=b"data",
                     unknown_options=((FO, bytes(8)),)) == [
        ours(seq=L_ISN, ack=R_ISN + 1, flags=SYN | ACK, window=WIN, **SYNACK_OPTS,
             unknown_options=((FO, COOKIE),))]
    assert stack.cfg.mib["TcpExtTCPFastOpenPassiveFail"] == 1
    with pytest.raises(BlockingIOError):
        stack.accept(lfd)


def test_experimental_option_is_answered_in_its_own_form() -> None:
    # Linux keeps foc->exp: a request in kind 254 (magic 0xF989) gets its cookie there.
    _stack, _lfd, peer = tfo_listener()
    (synack,) = peer.send(seq=R_ISN, flags=SYN, mss=1460,
                          unknown_options=((fo.OPT_EXP, fo.EXP_MAGIC),))
    assert synack.unknown_options == ((fo.OPT_EXP, fo.EXP_MAGIC + COOKIE),)


def test_listener_without_tcp_fastopen_ignores_the_option() -> None:
    # Linux tcp_fastopen_queue_check(): net.ipv4.tcp_fastopen 0x2 is not enough, a
    # listener needs a Fast Open queue, from TCP_FASTOPEN or from 0x400 at listen():
    # without one no cookie is given and the data is not taken.
    _stack, _lfd, peer = tfo_listener(qlen=None)
    (synack,) = peer.send(seq=R_ISN, flags=SYN, mss=1460, payload=b"x",
                          unknown_options=((FO, COOKIE),))
    assert synack.ack == R_ISN + 1 and synack.unknown_options == ()
    _stack, _lfd, peer = tfo_listener(qlen=None, fastopen=0x402)
    (synack,) = peer.send(seq=R_ISN, flags=SYN, mss=1460, payload=b"x",
                          unknown_options=((FO, COOKIE),))
    assert synack.ack == R_ISN + 2            # 0x400: every listener does Fast Open


def test_backup_key_is_accepted_and_the_primary_cookie_returned() -> None:
    # TCP_FASTOPEN_KEY with 32 bytes: a primary and a backup (key rotation). A cookie
    # of the backup key is good (TcpExtTCPFastOpenPassiveAltKey) and the SYN,ACK
    # hands out the primary's.
    stack, lfd, peer = tfo_listener()
    primary = bytes(range(16))
    stack.setsockopt(lfd, socket.IPPROTO_TCP, TCP_FASTOPEN_KEY, primary + KEY)
    assert stack.getsockopt(lfd, socket.IPPROTO_TCP, TCP_FASTOPEN_KEY) == primary + KEY
    (synack,) = peer.send(seq=R_ISN, flags=SYN, mss=1460, payload=b"hi",
                          unknown_options=((FO, COOKIE),))
    assert synack.ack == R_ISN + 3
    assert synack.unknown_options == ((FO, fo.make_cookie(primary, REMOTE, LOCAL)),)
    assert stack.cfg.mib["TcpExtTCPFastOpenPassiveAltKey"] == 1


def test_fast_open_queue_bound_falls_back_to_the_three_way_handshake() -> None:
    # Linux tcp_fastopen_queue_check(): TCP_FASTOPEN's qlen bounds the children still
    # in SYN_RECV; beyond it a SYN is handled as without Fast Open
    # (TcpExtTCPFastOpenListenOverflow), its data not taken.
    stack, _lfd, peer = tfo_listener(qlen=1)
    (a,) = peer.send(seq=R_ISN, flags=SYN, mss=1460, payload=b"a",
                     unknown_options=((FO, COOKIE),))
    other = Peer(stack, port=RPORT + 1)
    (b,) = other.send(seq=R_ISN, flags=SYN, mss=1460, payload=b"b",
                      unknown_options=((FO, COOKIE),))
    assert (a.ack, b.ack) == (R_ISN + 2, R_ISN + 1)
    assert stack.cfg.mib["TcpExtTCPFastOpenListenOverflow"] == 1


def test_cookie_not_required_takes_data_without_a_cookie() -> None:
    # net.ipv4.tcp_fastopen 0x200 (TFO_SERVER_COOKIE_NOT_REQD): SYN data is accepted
    # with no option at all.
    stack, lfd, peer = tfo_listener(fastopen=0x202)
    (synack,) = peer.send(seq=R_ISN, flags=SYN, mss=1460, payload=b"abc")
    assert synack.ack == R_ISN + 4
    fd, _ = stack.accept(lfd)
    assert stack.recv(fd, 10, now=0) == b"abc"


# ------------------------------------------------------------------ client
def client(**kw):
    stack = new_stack(cfg=cfg(**kw))
    fd = stack.socket()
    stack.bind(fd, (LOCAL, LPORT))
    return stack, fd, Peer(stack)


SYN_FIELDS = {"flags": SYN, "window": WIN, "mss": 1460, "wscale": 7, "sack_permitted": True}


def warm_cache(stack, fd, peer, cookie: bytes = b"\x12\x34\x56\x78") -> None:
    """sendto(MSG_FASTOPEN) with no cookie cached: a cookie request, EINPROGRESS."""
    with pytest.raises(BlockingIOError) as exc:
        stack.sendto_fastopen(fd, b"hello", (REMOTE, RPORT), now=0)
    assert exc.value.errno == errno.EINPROGRESS
    assert peer.out() == [ours(seq=L_ISN, **SYN_FIELDS, unknown_options=((FO, b""),))]
    (ack,) = peer.send(seq=R_ISN, ack=L_ISN + 1, flags=SYN | ACK, mss=1200,
                       unknown_options=((FO, cookie),), now=10_000)
    assert ack.flags == ACK
    assert stack.tfo_cache.lookup(REMOTE) == (cookie, 1200, False)


def test_client_asks_for_a_cookie_then_sends_data_in_the_syn() -> None:
    # Linux tcp_send_syn_data(): with a cached cookie the SYN carries it and up to
    # the cached MSS less 40 bytes of data; a SYN,ACK acknowledging the data sets
    # TCPI_OPT_SYN_DATA (TcpExtTCPFastOpenActive).
    stack, fd, peer = client()
    warm_cache(stack, fd, peer)
    fd2 = stack.socket()
    stack.bind(fd2, (LOCAL, LPORT + 1))
    data = bytes(2000)
    assert stack.sendto_fastopen(fd2, data, (REMOTE, RPORT), now=20_000) == 1200 - 40
    p2 = Peer(stack, lport=LPORT + 1)
    (syn,) = p2.out()
    assert (syn.flags, len(syn.payload), syn.unknown_options) == (
        SYN, 1160, ((FO, b"\x12\x34\x56\x78"),))
    (ack,) = p2.send(seq=R_ISN, ack=syn.seq + 1 + 1160, flags=SYN | ACK, mss=1460,
                     now=30_000)
    assert ack.flags == ACK and ack.seq == syn.seq + 1161
    assert info(stack, fd2).tcpi_options & TCPI_OPT_SYN_DATA
    assert stack.cfg.mib["TcpExtTCPFastOpenActive"] == 1


def test_syn_data_not_acked_goes_again_carrying_the_handshake_ack() -> None:
    # Linux tcp_rcv_fastopen_synack(): the SYN,ACK acknowledged the SYN only; the data
    # is retransmitted at once and that segment is the third of the handshake.
    stack, fd, peer = client()
    warm_cache(stack, fd, peer)
    fd2 = stack.socket()
    stack.bind(fd2, (LOCAL, LPORT + 1))
    assert stack.sendto_fastopen(fd2, b"req", (REMOTE, RPORT), now=20_000) == 3
    p2 = Peer(stack, lport=LPORT + 1)
    (syn,) = p2.out()
    assert syn.payload == b"req"
    (again,) = p2.send(seq=R_ISN, ack=syn.seq + 1, flags=SYN | ACK, mss=1460, now=30_000)
    assert (again.seq, again.ack, again.flags & ACK, again.payload) == (
        syn.seq + 1, R_ISN + 1, ACK, b"req")
    assert not info(stack, fd2).tcpi_options & TCPI_OPT_SYN_DATA
    assert info(stack, fd2).tcpi_fastopen_client_fail == fo.TFO_DATA_NOT_ACKED
    assert stack.cfg.mib["TcpExtTCPFastOpenActiveFail"] == 1


def test_retransmitted_syn_carries_neither_data_nor_cookie() -> None:
    # Linux tcp_send_syn_data(): "Exclude Fast Open option for SYN retries"; the data
    # waits in the retransmission queue for the handshake.
    stack, fd, peer = client()
    warm_cache(stack, fd, peer)
    fd2 = stack.socket()
    stack.bind(fd2, (LOCAL, LPORT + 1))
    stack.sendto_fastopen(fd2, b"req", (REMOTE, RPORT), now=20_000)
    p2 = Peer(stack, lport=LPORT + 1)
    (syn,) = p2.out()
    (rtx,) = p2.tick(20_000 + 1_000_000)
    assert (rtx.flags, rtx.seq, rtx.payload, rtx.unknown_options) == (SYN, syn.seq, b"", ())


def test_fastopen_connect_defers_the_syn_to_the_first_write() -> None:
    # TCP_FASTOPEN_CONNECT with a cookie cached: connect() returns 0 and sends nothing
    # (Linux tcp_fastopen_defer_connect()); the first send() goes in the SYN.
    stack, fd, peer = client()
    warm_cache(stack, fd, peer)
    fd2 = stack.socket()
    stack.bind(fd2, (LOCAL, LPORT + 1))
    stack.setsockopt(fd2, socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
    assert stack.connect_ex(fd2, (REMOTE, RPORT), now=20_000) == 0
    p2 = Peer(stack, lport=LPORT + 1)
    assert p2.out() == []
    assert stack.writable(fd2)
    assert stack.connect_ex(fd2, (REMOTE, RPORT), now=20_000) == errno.EISCONN
    assert stack.send(fd2, b"GET", now=21_000) == 3
    (syn,) = p2.out()
    assert (syn.flags, syn.payload) == (SYN, b"GET")


def test_options_are_checked_as_linux_checks_them() -> None:
    stack, fd, _peer = client(fastopen=0)
    with pytest.raises(OSError) as exc:       # client Fast Open off: EOPNOTSUPP
        stack.setsockopt(fd, socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
    assert exc.value.errno == errno.EOPNOTSUPP
    with pytest.raises(OSError) as exc:
        stack.sendto_fastopen(fd, b"x", (REMOTE, RPORT), now=0)
    assert exc.value.errno == errno.EOPNOTSUPP
    with pytest.raises(OSError) as exc:       # a key is 16 or 32 bytes
        stack.setsockopt(fd, socket.IPPROTO_TCP, TCP_FASTOPEN_KEY, b"short")
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(OSError) as exc:
        stack.setsockopt(fd, socket.IPPROTO_TCP, TCP_FASTOPEN, -1)
    assert exc.value.errno == errno.EINVAL
