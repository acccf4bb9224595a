"""Stack.receive()'s path for a known peer (synack.host.receive) does exactly what the
general path does: two servers get the same packets, one of them forgetting its peers
before each (so it always takes the general path), and must answer and count alike --
for a real client's conversation and for damaged copies of its packets."""

from __future__ import annotations

import contextlib
import random

import pytest

import synack.host.receive as receive_module
from synack.stack import Stack
from synack.wire.checksum import internet_checksum
from synack.wire.ipv4 import IPv4Header, build_tcp_packet, encode_ipv4
from synack.wire.tcp import ACK, TcpSegment
from synack.wire.udp import UdpDatagram, build_udp_packet

SERVER, CLIENT = "192.0.2.2", "192.0.2.1"


def _server() -> Stack:
    s = Stack(SERVER, seed=3)
    fd = s.socket()
    s.bind(fd, (SERVER, 7))
    s.listen(fd, 16)
    return s


def _damaged(packet: bytes, rng: random.Random) -> list[bytes]:
    """Copies of ``packet`` each wrong in one way (or right in an unusual one)."""
    out = [packet + bytes(6),                         # link padding
           packet[:-1], packet[:40], packet[:52]]     # cut short
    for i in (0, 1, 3, 6, 8, 9, 10, 12, 16, 19, 20, 33, 46, 48, len(packet) - 1):
        if i >= len(packet):
            continue
        b = bytearray(packet)
        b[i] ^= 1 << rng.randrange(8)
        out.append(bytes(b))
    ce = bytearray(packet)                    # marked CE on the way (RFC 3168), intact
    ce[1] |= 3
    ce[10:12] = b"\0\0"
    ce[10:12] = internet_checksum(ce[:20]).to_bytes(2, "big")
    out.append(bytes(ce))
    ip_opts = bytearray(packet[:20]) + bytes(4) + packet[20:]   # an IPv4 option (NOPs)
    ip_opts[0], ip_opts[3] = 0x46, ip_opts[3] + 4
    out.append(bytes(ip_opts))
    return out


class _Twins:
    def __init__(self) -> None:
        self.fast, self.general = _server(), _server()

    def feed(self, packet: bytes, now: int, csum_valid: bool = False) -> list[bytes]:
        self.general._peers.clear()         # the general path, always
        self.fast.receive(packet, now=now, csum_valid=csum_valid)
        self.general.receive(packet, now=now, csum_valid=csum_valid)
        out = self.fast.transmit(now=now)
        assert out == self.general.transmit(now=now), packet.hex()
        assert self.fast.stats == self.general.stats, packet.hex()
        assert self.fast.cfg.mib == self.general.cfg.mib, packet.hex()
        return out


def _shuttle(twins: _Twins, client: Stack, now: int, rng: random.Random,
             csum_valid: bool) -> None:
    while True:
        sent = client.transmit(now=now)
        if not sent:
            return
        for packet in sent:
            replies = twins.feed(packet, now, csum_valid)
            for bad in _damaged(packet, rng):
                replies += twins.feed(bad, now, csum_valid)
            for reply in replies:
                client.receive(reply, now=now)


@pytest.mark.parametrize(("csum_valid", "ecn"), [(False, False), (True, False), (False, True)])
def test_the_known_peers_path_is_the_general_one(csum_valid: bool, ecn: bool) -> None:
    rng = random.Random(5)
    twins = _Twins()
    servers = (twins.fast, twins.general)
    client = Stack(CLIENT, seed=1)
    if ecn:
        client.cfg.set("net.ipv4.tcp_ecn", 1)     # (the servers answer it: 2, the default)
    now = 0
    for size in (1, 0, 700, 3):
        fd = client.socket()
        client.connect_ex(fd, (SERVER, 7), now=now)
        _shuttle(twins, client, now, rng, csum_valid)
        got = [s.accept_some(3) for s in servers]
        assert got[0] == got[1]
        if size:
            # (With csum_valid a damaged copy may have reset the client: its business.)
            with contextlib.suppress(OSError):
                client.send(fd, bytes(size), now=now)
            _shuttle(twins, client, now, rng, csum_valid)
        client.close(fd, now=now)
        _shuttle(twins, client, now, rng, csum_valid)
        if got[0] is not None:
            for s in servers:
                s.close(got[0][0], now=now)
            for reply in twins.feed(b"", now):     # (nothing read: the replies only)
                client.receive(reply, now=now)
            _shuttle(twins, client, now, rng, csum_valid)
        now += 100_000_000
        for s in (client, *servers):
            s.tick(now=now)
        for reply in twins.feed(b"", now):
            client.receive(reply, now=now)
    assert twins.fast._peers and not twins.general._peers
    # What else a known peer may send, checksums right: UDP (to a closed port), a TCP
    # fragment (its first part, with the TCP header), a TTL that changes.
    tcp = build_tcp_packet(CLIENT, SERVER, TcpSegment(
        src_port=5555, dst_port=7, seq=1, ack=1, flags=ACK, timestamps=(1, 2),
        payload=bytes(40)))
    others = [
        build_udp_packet(CLIENT, SERVER, UdpDatagram(5555, 9, bytes(40))),
        encode_ipv4(IPv4Header(CLIENT, SERVER, more_fragments=True, dont_fragment=False,
                               ident=9), tcp[20:64]),
        encode_ipv4(IPv4Header(CLIENT, SERVER, ttl=3, ident=0xFFFF, tos=2), tcp[20:]),
    ]
    for packet in others:
        twins.feed(packet, now, csum_valid)


def test_known_peers_take_the_short_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # After the first packet of a peer, its usual packets no longer reach the general
    # parse; a SACK block (an option the short path leaves to parse_tcp()) does.
    calls = []
    real = receive_module.parse_ipv4_tcp
    monkeypatch.setattr(receive_module, "parse_ipv4_tcp",
                        lambda p, v: (calls.append(p) if p[16:20] == b"\xc0\0\2\2" else None)
                        or real(p, v))
    server = _server()
    client = Stack(CLIENT, seed=1)
    fd = client.socket()
    client.connect_ex(fd, (SERVER, 7), now=0)
    for _ in range(3):
        for packet in client.transmit(now=0):
            server.receive(packet, 0)
        for packet in server.transmit(now=0):
            client.receive(packet, now=0)
    assert len(calls) == 1, calls       # the SYN; the handshake's ACK went the short way
    seg = TcpSegment(src_port=1234, dst_port=7, seq=1, ack=1, flags=ACK,
                     sack_blocks=((5, 9),), timestamps=(1, 2))
    server.receive(build_tcp_packet(CLIENT, SERVER, seg), 0)
    assert len(calls) == 2


def test_the_short_paths_records_are_parse_tcps(monkeypatch: pytest.MonkeyPatch) -> None:
    # Field for field, those that take no part in comparison too, and of the same type.
    import dataclasses

    from synack.wire.ipv4 import parse_tcp_packet
    from synack.wire.tcp import SYN

    got: list[TcpSegment] = []
    monkeypatch.setattr(Stack, "_segment_in", lambda self, s, d, seg, now, ecn=0:
                        got.append(seg))
    server = _server()
    server.receive(build_tcp_packet(CLIENT, SERVER, TcpSegment(src_port=1, dst_port=7,
                                                                seq=0, flags=ACK)), 0)
    segs = [TcpSegment(src_port=40000, dst_port=7, seq=2**32 - 1, ack=2**31 + 5,
                       flags=ACK, window=0xFFFF, urgent=3, payload=p, timestamps=(2**32 - 1, 7),
                       reserved=r) for p in (b"", b"x", bytes(600)) for r in (0, 5)]
    segs.append(TcpSegment(src_port=40000, dst_port=7, seq=9, flags=SYN, window=1000,
                           mss=1460, wscale=7, sack_permitted=True, timestamps=(1, 0)))
    for seg in segs:
        packet = build_tcp_packet(CLIENT, SERVER, seg)
        server.receive(packet, 0)
        want = parse_tcp_packet(packet)[1]
        assert type(got[-1]) is TcpSegment
        assert [getattr(got[-1], f.name) for f in dataclasses.fields(TcpSegment)] == \
            [getattr(want, f.name) for f in dataclasses.fields(TcpSegment)]
    assert len(got) == 1 + len(segs) and server._peers
