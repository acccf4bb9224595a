"""IPv6 in the host (issue 14): AF_INET6 sockets, dual-stack listeners, the MSS and
path MTU of IPv6, flow labels, ICMPv6, fragments and link noise, TIME_WAIT and cookies."""

from __future__ import annotations

import errno
import socket
import struct

import pytest

from synack.config import Sysctl
from synack.stack import Stack
from synack.tcp.state import State
from synack.wire.icmp6 import (
    ECHO_REPLY,
    ECHO_REQUEST,
    NEIGHBOR_SOLICIT,
    PACKET_TOO_BIG,
    Icmp6Message,
    NdMessage,
    build_icmp6_packet,
    error_for6,
    parse_icmp6,
    solicited_node,
)
from synack.wire.ipv4 import build_tcp_packet, parse_tcp_packet
from synack.wire.ipv6 import (
    EXT_DSTOPTS,
    EXT_FRAGMENT,
    IPv6Header,
    build_tcp6_packet,
    encode_ipv6,
    parse_ipv6,
    parse_tcp6_packet,
)
from synack.wire.tcp import ACK, RST, SYN, TcpSegment, encode_tcp

A4, B4 = "192.0.2.1", "192.0.2.2"
A6, B6 = "2001:db8::1", "2001:db8::2"


def pair(**kw: object) -> tuple[Stack, Stack]:
    a = Stack(A4, addr6=A6, seed=1)
    b = Stack(B4, addr6=B6, seed=2, **kw)  # type: ignore[arg-type]
    return a, b


def pump(a: Stack, b: Stack, now: int, seen: list[bytes] | None = None) -> None:
    """Deliver packets both ways until both are quiet."""
    for _ in range(1000):
        moved = False
        for x, y in ((a, b), (b, a)):
            for p in x.transmit(now=now):
                moved = True
                if seen is not None:
                    seen.append(p)
                y.receive(p, now=now)
        if not moved:
            return
    raise AssertionError("the hosts never went quiet")


def run(a: Stack, b: Stack, start: int, until: int,
        seen: list[bytes] | None = None) -> int:
    """Pump, running timers as they fall due, up to ``until`` (simulated microseconds)."""
    now = start
    while now <= until:
        pump(a, b, now, seen)
        nxt = [d for d in (a.next_deadline(), b.next_deadline()) if d is not None]
        if not nxt:
            break
        now = max(min(nxt), now + 1)
        a.tick(now=now)
        b.tick(now=now)
    return now


def connect6(a: Stack, b: Stack, *, port: int = 80, now: int = 0,
             seen: list[bytes] | None = None) -> tuple[int, int, int]:
    lfd = b.socket(socket.AF_INET6)
    b.bind(lfd, ("::", port))
    b.listen(lfd)
    c = a.socket(socket.AF_INET6)
    assert a.connect_ex(c, (B6, port), now=now) == errno.EINPROGRESS
    pump(a, b, now, seen)
    fd, _peer = b.accept(lfd)
    return lfd, c, fd


def test_handshake_over_ipv6_mss_1440_header_40_flow_label() -> None:
    a, b = pair()
    seen: list[bytes] = []
    _lfd, c, fd = connect6(a, b, seen=seen)
    syn_h, syn = parse_tcp6_packet(seen[0])
    _h, synack = parse_tcp6_packet(seen[1])
    assert syn.flags == SYN and synack.flags == SYN | ACK
    assert syn.mss == 1440 and synack.mss == 1440            # 1500 - 40 - 20
    assert (syn_h.src, syn_h.dst, syn_h.hop_limit) == (A6, B6, 64)
    assert len(seen[0]) == 40 + syn.data_offset * 4          # the fixed 40-byte header
    # One flow label per direction (the SYN,ACK's is the accepted socket's too).
    labels = {parse_ipv6(p)[0].src: parse_ipv6(p)[0].flow_label for p in seen}
    assert all(0 < v <= 0xFFFFF for v in labels.values())
    assert all(parse_ipv6(p)[0].flow_label == labels[parse_ipv6(p)[0].src] for p in seen)
    assert b.state(fd) is State.ESTABLISHED and a.state(c) is State.ESTABLISHED
    assert b.getsockname(fd) == (B6, 80, 0, 0)
    assert b.getpeername(fd) == (A6, a.getsockname(c)[1], 0, 0)
    assert a.getpeername(c) == (B6, 80, 0, 0)
    conn = a.connection(c)
    assert conn is not None and conn.mss == 1440 - 12        # less the timestamp option


def test_flow_label_is_the_sockets_random_hash_redrawn_after_a_timeout() -> None:
    # Linux: the label comes from sk_txhash, random per socket (net_tx_rndhash()) and
    # drawn again after a retransmission timeout (sk_rethink_txhash(), net.core.txrehash
    # = 1), so a new connection on the same 4-tuple, and a timed-out one, change label.
    a, b = pair()
    _lfd, c, fd = connect6(a, b)
    local = a.getsockname(c)[1]
    first: list[bytes] = []
    a.send(c, b"x" * 100, now=10)
    first += a.transmit(now=10)
    label = parse_ipv6(first[0])[0].flow_label
    conn = a.connection(c)
    assert conn is not None
    probe: list[bytes] = []
    for _ in range(5):                   # never delivered: the loss probe, then the RTO
        t = conn.timers.rtx
        assert t is not None
        a.tick(now=t)
        if conn.rto_count:
            break
        probe += a.transmit(now=t)       # the tail loss probe keeps the label
    assert conn.rto_count == 1 and probe
    assert all(parse_ipv6(p)[0].flow_label == label for p in probe)
    again = a.transmit(now=t)
    assert again and all(parse_ipv6(p)[0].flow_label != label for p in again), (label, again)
    # Replies outside a connection carry a hash of the flow: the same for the same flow.
    rst1, rst2 = [], []
    for out in (rst1, rst2):
        stray = build_tcp6_packet(A6, B6, TcpSegment(src_port=local + 1, dst_port=81,
                                                     seq=1, flags=SYN), hop_limit=64)
        b.receive(stray, now=20)
        out += b.transmit(now=20)
    assert parse_ipv6(rst1[0])[0].flow_label == parse_ipv6(rst2[0])[0].flow_label != 0
    del fd


def test_auto_flowlabels_off_sends_label_zero() -> None:
    cfg = Sysctl()
    cfg.set("net.ipv6.auto_flowlabels", 0)
    a = Stack(A4, addr6=A6, seed=1, cfg=cfg)
    b = Stack(B4, addr6=B6, seed=2)
    seen: list[bytes] = []
    connect6(a, b, seen=seen)
    assert parse_ipv6(seen[0])[0].flow_label == 0 and parse_ipv6(seen[1])[0].flow_label != 0


@pytest.mark.parametrize("size", [1, 1440, 300_000])
def test_data_both_ways(size: int) -> None:
    a, b = pair()
    _lfd, c, fd = connect6(a, b)
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    got_b, got_a = bytearray(), bytearray()
    sent_a = sent_b = 0
    now = 0
    for _ in range(2000):
        if sent_a < size:
            try:
                sent_a += a.send(c, data[sent_a:], now=now)
            except BlockingIOError:
                pass
        if sent_b < size:
            try:
                sent_b += b.send(fd, data[sent_b:], now=now)
            except BlockingIOError:
                pass
        now = run(a, b, now, now + 50_000)
        for st, s, buf in ((b, fd, got_b), (a, c, got_a)):
            try:
                buf += st.recv(s, 1 << 20, now=now)
            except BlockingIOError:
                pass
        if len(got_a) == len(got_b) == size:
            break
    assert bytes(got_b) == data and bytes(got_a) == data
    assert a.stats["dropped bad checksum"] == b.stats["dropped bad checksum"] == 0


def test_dual_stack_listener_accepts_ipv4_as_mapped() -> None:
    a, b = pair()
    lfd = b.socket(socket.AF_INET6)
    assert b.getsockopt(lfd, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
    b.bind(lfd, ("", 80))
    b.listen(lfd)
    c = a.socket()
    seen: list[bytes] = []
    assert a.connect_ex(c, (B4, 80), now=0) == errno.EINPROGRESS
    pump(a, b, 0, seen)
    fd, peer = b.accept(lfd)
    assert peer == ("::ffff:" + A4, a.getsockname(c)[1], 0, 0)
    assert b.getsockname(fd) == ("::ffff:" + B4, 80, 0, 0)
    _ip, synack = parse_tcp_packet(seen[1])          # the wire stays IPv4
    assert synack.mss == 1460
    conn = b.connection(fd)
    assert conn is not None and conn.local == (B4, 80)


def test_v6only_listener_refuses_ipv4() -> None:
    a, b = pair()
    lfd = b.socket(socket.AF_INET6)
    b.setsockopt(lfd, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    b.bind(lfd, ("::", 80))
    b.listen(lfd)
    c = a.socket()
    a.connect_ex(c, (B4, 80), now=0)
    seen: list[bytes] = []
    pump(a, b, 0, seen)
    assert parse_tcp_packet(seen[1])[1].flags & RST
    assert a.connect_ex(c, (B4, 80), now=0) == errno.ECONNREFUSED
    with pytest.raises(OSError) as e:
        b.setsockopt(lfd, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    assert e.value.errno == errno.EINVAL


def test_bindv6only_sysctl_is_the_default() -> None:
    cfg = Sysctl()
    cfg.set("net.ipv6.bindv6only", 1)
    s = Stack(B4, addr6=B6, cfg=cfg)
    fd = s.socket(socket.AF_INET6)
    assert s.getsockopt(fd, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


def test_bind_conflicts_between_families() -> None:
    s = Stack(B4, addr6=B6)
    dual = s.socket(socket.AF_INET6)
    s.bind(dual, ("::", 80))
    v4 = s.socket()
    with pytest.raises(OSError) as e:
        s.bind(v4, ("0.0.0.0", 80))                # :: without V6ONLY holds IPv4 too
    assert e.value.errno == errno.EADDRINUSE
    only = s.socket(socket.AF_INET6)
    s.setsockopt(only, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(only, ("::", 81))
    s.bind(v4, ("0.0.0.0", 81))                     # v6only: the IPv4 side is free
    six = s.socket(socket.AF_INET6)
    with pytest.raises(OSError) as e:
        s.bind(six, (B6, 81))
    assert e.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as e:
        s.bind(six, ("2001:db8::99", 82))
    assert e.value.errno == errno.EADDRNOTAVAIL
    with pytest.raises(TypeError):
        s.bind(six, ("::",))                        # type: ignore[arg-type]
    with pytest.raises(socket.gaierror):
        s.bind(v4 := s.socket(), (B6, 83))
    assert s.getsockname(v4) == ("0.0.0.0", 0)
    with pytest.raises(OSError) as e:
        s.socket(socket.AF_UNIX)
    assert e.value.errno == errno.EAFNOSUPPORT


def test_ipv4_only_host_cannot_connect_over_ipv6() -> None:
    s = Stack(A4)
    fd = s.socket(socket.AF_INET6)
    assert s.connect_ex(fd, (B6, 80), now=0) == errno.ENETUNREACH


def test_packet_too_big_lowers_the_mss_not_below_1280() -> None:
    a, b = pair()
    _lfd, c, _fd = connect6(a, b)
    a.send(c, bytes(20_000), now=1)
    out = a.transmit(now=1)
    assert len(out[0]) == 1500
    conn = a.connection(c)
    assert conn is not None
    a.receive(build_icmp6_packet("2001:db8:1::1", A6,
                                 error_for6(out[0], PACKET_TOO_BIG, 0, mtu=1400)), now=2)
    assert conn.mss == 1400 - 60 - 12 and a.stats["icmp6: pmtu"] == 1
    resent = a.transmit(now=2)
    assert resent and max(len(p) for p in resent) == 1400
    a.receive(build_icmp6_packet("2001:db8:1::1", A6,
                                 error_for6(resent[0], PACKET_TOO_BIG, 0, mtu=600)), now=3)
    assert conn.mss == 1280 - 60 - 12                # RFC 8200: never below 1280
    # An error naming a sequence number outside the window is ignored (RFC 5927).
    bad = bytearray(resent[0])
    bad[44:48] = struct.pack("!I", (conn.snd.snd_una - 100_000) & 0xFFFFFFFF)
    a.receive(build_icmp6_packet(B6, A6, error_for6(bytes(bad), 1, 4)), now=4)
    assert a.stats["icmp6: out of window"] == 1 and conn.error is None


def test_unreachable_during_handshake_is_a_hard_error() -> None:
    a = Stack(A4, addr6=A6, seed=1)
    c = a.socket(socket.AF_INET6)
    a.connect_ex(c, (B6, 80), now=0)
    (syn,) = a.transmit(now=0)
    a.receive(build_icmp6_packet(B6, A6, error_for6(syn, 1, 4)), now=1)  # port unreachable
    assert a.connect_ex(c, (B6, 80), now=2) == errno.ECONNREFUSED


def test_ping6_both_ways() -> None:
    a, b = pair()
    a.send_echo6(B6, 7, 1, b"hello", now=0)
    (req,) = a.transmit(now=0)
    msg = parse_icmp6(req[40:], A6, B6)
    assert msg == Icmp6Message(ECHO_REQUEST, 0, 7, 1, payload=b"hello")
    b.receive(req, now=0)
    (rep,) = b.transmit(now=0)
    assert parse_icmp6(rep[40:], B6, A6) == Icmp6Message(ECHO_REPLY, 0, 7, 1, payload=b"hello")
    a.receive(rep, now=5)
    (got,) = a.echo_replies
    assert (got.src, got.ident, got.seq, got.payload, got.ttl) == (B6, 7, 1, b"hello", 64)


def test_fragments_are_dropped_and_counted() -> None:
    b = Stack(B4, addr6=B6)
    tcp = encode_tcp(TcpSegment(1234, 80, 1, 0, SYN, 1000), A6, B6)
    frag = encode_ipv6(IPv6Header(A6, B6, extensions=(
        (EXT_FRAGMENT, struct.pack("!HI", 0x0001, 99)),)), tcp)
    b.receive(frag, now=0)
    assert b.stats["IPv6 fragments dropped"] == 1 and b.stats["dropped unsupported"] == 1
    assert b.transmit(now=0) == []
    # Destination options are walked over: the SYN behind them reaches TCP (a RST: no
    # listener).
    opts = encode_ipv6(IPv6Header(A6, B6, extensions=((EXT_DSTOPTS, bytes(6)),)), tcp)
    b.receive(opts, now=0)
    (rst,) = b.transmit(now=0)
    assert parse_tcp6_packet(rst)[1].flags == RST | ACK


def test_nd_and_mld_noise_is_dropped_quietly() -> None:
    b = Stack(B4, addr6=B6)
    ns = build_icmp6_packet(A6, solicited_node(B6), NdMessage(NEIGHBOR_SOLICIT, B6,
                                                              source_lladdr=bytes(6)))
    b.receive(ns, now=0)
    mld = encode_ipv6(IPv6Header("fe80::1", "ff02::16", proto=58, hop_limit=1),
                      bytes((143, 0, 0, 0)) + bytes(4))
    b.receive(mld, now=0)
    assert b.stats["icmp6: ignored ND/MLD"] == 2
    assert not any(k.startswith("dropped") for k in b.stats), b.stats
    assert b.transmit(now=0) == []


def test_malformed_ipv6_is_counted_never_raised() -> None:
    b = Stack(B4, addr6=B6)
    good = build_tcp6_packet(A6, B6, TcpSegment(1, 80, 1, 0, SYN, 100))
    for bad in (good[:30], good[:4] + b"\xff\xff" + good[6:], good[:-1] + bytes([good[-1] ^ 1])):
        b.receive(bad, now=0)
    assert b.stats["dropped truncated"] == 1 and b.stats["dropped bad total length"] == 1
    assert b.stats["dropped bad checksum"] == 1
    b.receive(build_tcp6_packet(A6, "2001:db8::3", TcpSegment(1, 80, 1, 0, SYN, 100)), now=0)
    assert b.stats["dropped not for us"] == 1


def test_time_wait_over_ipv6() -> None:
    a, b = pair()
    _lfd, c, fd = connect6(a, b)
    a.close(c, now=10)
    pump(a, b, 10)
    b.close(fd, now=20)
    pump(a, b, 20)
    (key,) = list(a.timewait)
    assert key[0] == A6 and key[2] == B6
    tw = a.timewait[key]
    assert tw.local == (A6, key[1]) and tw.remote == (B6, 80)
    run(a, b, 20, 70_000_000)
    assert not a.timewait


def test_syn_cookies_use_the_ipv6_mss_table() -> None:
    cfg = Sysctl()
    cfg.set("net.ipv4.tcp_syncookies", 2)                # a cookie for every SYN
    b = Stack(B4, addr6=B6, cfg=cfg)
    lfd = b.socket(socket.AF_INET6)
    b.bind(lfd, ("::", 80))
    b.listen(lfd)
    syn = TcpSegment(4000, 80, 1000, 0, SYN, 65535, mss=1440)
    b.receive(build_tcp6_packet(A6, B6, syn), now=0)
    (synack_p,) = b.transmit(now=0)
    synack = parse_tcp6_packet(synack_p)[1]
    assert b.stats["syncookies sent"] == 1
    ack = TcpSegment(4000, 80, 1001, (synack.seq + 1) & 0xFFFFFFFF, ACK, 500)
    b.receive(build_tcp6_packet(A6, B6, ack), now=1000)
    fd, peer = b.accept(lfd)
    assert peer == (A6, 4000, 0, 0)
    conn = b.connection(fd)
    assert conn is not None and conn.peer_mss == 1440     # msstab6 holds 1440


def test_ipv4_output_is_unchanged_on_a_dual_stack_host() -> None:
    """The same seed gives the same IPv4 bytes with or without an IPv6 address."""
    outs = []
    for addr6 in (None, A6):
        s = Stack(A4, seed=5, addr6=addr6)
        c = s.socket()
        s.connect_ex(c, (B4, 80), now=0)
        outs.append(s.transmit(now=0))
    assert outs[0] == outs[1]
    assert build_tcp_packet(A4, B4, parse_tcp_packet(outs[0][0])[1],
                            ident=parse_tcp_packet(outs[0][0])[0].ident) == outs[0][0]


def test_send_echo_takes_an_ipv6_address_too() -> None:
    a, b = pair()
    a.send_echo(B6, 9, 2, b"x", now=0)
    pump(a, b, 0)
    (got,) = a.echo_replies
    assert (got.src, got.ident, got.seq) == (B6, 9, 2)
    no6 = Stack(A4)
    with pytest.raises(OSError) as e:
        no6.send_echo(B6, 1, 1, now=0)
    assert e.value.errno == errno.EADDRNOTAVAIL


def test_an_ipv6_socket_reaches_ipv4_through_a_mapped_address() -> None:
    a, b = pair()
    lfd = b.socket()
    b.bind(lfd, ("0.0.0.0", 80))
    b.listen(lfd)
    c = a.socket(socket.AF_INET6)
    seen: list[bytes] = []
    assert a.connect_ex(c, ("::ffff:" + B4, 80), now=0) == errno.EINPROGRESS
    pump(a, b, 0, seen)
    assert parse_tcp_packet(seen[0])[0].dst == B4            # IPv4 on the wire
    assert a.getpeername(c) == ("::ffff:" + B4, 80, 0, 0)
    assert a.getsockname(c)[0] == "::ffff:" + A4
    only = a.socket(socket.AF_INET6)
    a.setsockopt(only, socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    assert a.connect_ex(only, ("::ffff:" + B4, 80), now=0) == errno.ENETUNREACH   # as Linux
