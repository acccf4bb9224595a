"""TapLink's reading of one batch (synack.link.tap), on a device stand-in: no root needed.

A read of one frame takes a short path (the usual read of a quiet link); it must
hand the stack exactly what the general path would, with the same counters and
the same frames written (an ARP reply). A lone packet skips GRO (nothing to merge
with) and reaches the stack unchecked; two or more go through GRO.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import synack.link.tap as tap_module
from synack.link.tap import TapLink
from synack.wire.arp import OP_REQUEST, ArpPacket, encode_arp
from synack.wire.ethernet import mac_aton
from synack.wire.ipv4 import build_tcp_packet
from synack.wire.ipv6 import build_tcp6_packet
from synack.wire.tcp import ACK, PSH, SYN, TcpSegment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from loop_cost import FakeDevice  # the benches' device stand-in

US, PEER = "192.0.2.2", "192.0.2.1"
US_MAC, PEER_MAC = "02:00:00:00:00:02", "2a:00:00:00:00:01"


@pytest.fixture
def links(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TapLink, TapLink]]:
    monkeypatch.setattr(tap_module, "TunTapDevice", FakeDevice)
    pair = tuple(TapLink(addr=US, mac=US_MAC, addr6="2001:db8::2", dad_transmits=0,
                         rng=random.Random(1)) for _ in range(2))
    yield pair  # type: ignore[misc]


def _eth(dst: str, etype: bytes, payload: bytes) -> bytes:
    return mac_aton(dst) + mac_aton(PEER_MAC) + etype + payload


def _frames() -> list[bytes]:
    def tcp(flags: int, n: int) -> bytes:
        return build_tcp_packet(PEER, US, TcpSegment(src_port=40000, dst_port=7, seq=1, ack=2,
                                                     flags=flags, window=500,
                                                     payload=b"x" * n))
    v4 = b"\x08\x00"
    good = [tcp(SYN, 0), tcp(ACK, 0), tcp(ACK | PSH, 1), tcp(ACK, 100)]
    bad = bytearray(good[3])
    bad[-1] ^= 1
    six = build_tcp6_packet("2001:db8::1", "2001:db8::2",
                            TcpSegment(src_port=1, dst_port=7, seq=1, ack=0, flags=SYN,
                                       window=500))
    arp = encode_arp(ArpPacket(OP_REQUEST, PEER_MAC, PEER, "00:00:00:00:00:00", US))
    out = [_eth(dst, v4, p) for p in good for dst in (US_MAC, "ff:ff:ff:ff:ff:ff",
                                                      "01:00:5e:00:00:01", "02:00:00:00:00:09")]
    return out + [
        _eth(US_MAC, v4, bytes(bad)), _eth(US_MAC, v4, good[0][:30]), _eth(US_MAC, v4, b""),
        _eth(US_MAC, v4, b"\x46" + good[0][1:]), _eth(US_MAC, b"\x86\xdd", six),
        _eth("ff:ff:ff:ff:ff:ff", b"\x08\x06", arp), _eth(US_MAC, b"\x88\xcc", b"lldp"),
        b"\x02\x00\x00", _eth(US_MAC, v4, good[1])[:13]]


def test_a_read_of_one_frame_is_the_general_path(links: tuple[TapLink, TapLink]) -> None:
    alone, batched = links
    filler = _eth("02:00:00:00:00:09", b"\x08\x00", b"")   # not ours: dropped and counted
    handed = []
    for frame in _frames():
        da, db = alone.dev, batched.dev
        assert isinstance(da, FakeDevice) and isinstance(db, FakeDevice)
        da.inq, db.inq = [frame], [frame, filler]
        got = alone.recv_packets(now=5)
        assert got == batched.recv_packets(now=5), frame.hex()
        batched.stats["dropped not our MAC"] -= 1
        assert alone.stats == batched.stats, frame.hex()
        assert da.outq == db.outq, frame.hex()
        handed += got
    assert alone.stats["packets in"] == 12 + 4 + 1          # the IPv4 and IPv6 for us
    # A lone packet has nothing to merge with: GRO neither sees nor vouches for it (the
    # stack checks it, bad checksum and all).
    assert len(handed) == 17 and not any(valid for _, valid in handed)
    assert alone.stats["gro segments in"] == 0 and alone.stats["gro bad checksum"] == 0
    assert alone.dev.outq                                   # the ARP request was answered


def test_two_packets_go_through_gro(links: tuple[TapLink, TapLink]) -> None:
    link = links[0]
    dev = link.dev
    assert isinstance(dev, FakeDevice)
    tcp = [build_tcp_packet(PEER, US, TcpSegment(src_port=40000, dst_port=7, seq=1 + 100 * i,
                                                 ack=2, flags=ACK, window=500,
                                                 payload=b"x" * 100)) for i in range(2)]
    bad = bytearray(tcp[1])
    bad[-1] ^= 1
    dev.inq = [_eth(US_MAC, b"\x08\x00", p) for p in tcp]
    [(merged, valid)] = link.recv_packets(now=5)
    assert valid and len(merged) == len(tcp[0]) + 100
    assert link.stats["gro super-segments"] == 1 and link.stats["gro segments in"] == 2
    dev.inq = [_eth(US_MAC, b"\x08\x00", p) for p in (tcp[0], bytes(bad))]
    assert link.recv_packets(now=5) == [(tcp[0], True), (bytes(bad), False)]
    assert link.stats["gro bad checksum"] == 1 and link.stats["gro segments in"] == 4


def test_sending_follows_the_neighbour_state(links: tuple[TapLink, TapLink]) -> None:
    # send_packets() frames a packet to a REACHABLE neighbour itself (arp.output()'s usual
    # case, inline); every other state goes through ARP: a request and the packet queued
    # until the answer, a unicast probe once STALE, and a new request once aged out.
    link = links[0]
    dev = link.dev
    assert isinstance(dev, FakeDevice)
    s = 1_000_000
    packet = build_tcp_packet(US, PEER, TcpSegment(src_port=7, dst_port=40000, seq=1, ack=2,
                                                   flags=ACK, window=500))
    ours = mac_aton(PEER_MAC) + mac_aton(US_MAC) + b"\x08\x00" + packet

    def sent(now: int) -> list[bytes]:
        dev.outq = []
        link.send_packets([(packet, 0)], now=now)
        return dev.outq

    assert link.next_deadline() is None         # (and remembered as quiet)
    [request] = sent(0)                         # unresolved: a broadcast request
    assert request[:6] == b"\xff" * 6 and request[12:14] == b"\x08\x06"
    assert link.next_deadline() == s            # its retry is a timer
    reply = encode_arp(ArpPacket(2, PEER_MAC, PEER, US_MAC, US))
    dev.inq = [_eth(US_MAC, b"\x08\x06", reply)]
    dev.outq = []
    assert link.recv_packets(now=10) == []
    assert dev.outq == [ours]                   # the queued packet, released
    assert link.next_deadline() is None
    assert sent(20) == [ours]                   # REACHABLE
    assert sent(10 + 30 * s - 1) == [ours]
    again, probe = sent(10 + 30 * s)            # STALE: still sent, and a unicast probe
    assert probe[:6] == mac_aton(PEER_MAC) and probe[12:14] == b"\x08\x06" and again == ours
    assert sent(10 + 31 * s) == [ours]          # (one probe only)
    assert link.next_deadline() is None
    [request] = sent(10 + 90 * s)               # aged out: resolving anew
    assert request[:6] == b"\xff" * 6
    assert link.next_deadline() == 10 + 91 * s  # the quiet link was asked again


def test_the_link_counts_in_the_devices_counter(links: tuple[TapLink, TapLink]) -> None:
    # TapLink swaps the device's collections.Counter for synack's (whose += runs no
    # Python): one table still, the device's counts and the link's in it.
    from synack.counts import Counter

    link = links[0]
    assert type(link.stats) is Counter and link.dev.stats is link.stats
    dev = link.dev
    assert isinstance(dev, FakeDevice)
    dev.stats["frames in"] += 1
    dev.inq = [_frames()[0]]
    assert len(link.recv_packets(now=1)) == 1
    assert link.stats["frames in"] == 1 and link.stats["packets in"] == 1


def test_a_lone_packet_to_write_is_the_general_path(links: tuple[TapLink, TapLink]) -> None:
    # send_packets() of one packet takes a short path (a REACHABLE neighbour, no
    # super-segment); it must write what a batch writes for that packet.
    alone, batched = links
    for link in links:
        request = encode_arp(ArpPacket(OP_REQUEST, PEER_MAC, PEER, "00:00:00:00:00:00", US))
        link.arp.receive(request, now=0)            # the peer's MAC, learnt
        link.arp.transmit()
    seg = TcpSegment(src_port=7, dst_port=40000, seq=1, ack=2, flags=ACK, window=500)
    known = build_tcp_packet(US, PEER, seg)
    unknown = build_tcp_packet(US, "192.0.2.77", seg)   # ARP must resolve it first
    six = build_tcp6_packet("2001:db8::2", "2001:db8::1", seg)
    for now, packet, gso in [(1, known, 0), (2, unknown, 0), (3, six, 0), (4, known, 0),
                             (5, b"\x45\0", 0), (10**9, known, 0)]:   # (the last: STALE)
        da, db = alone.dev, batched.dev
        assert isinstance(da, FakeDevice) and isinstance(db, FakeDevice)
        alone.send_packets([(packet, gso)], now)
        batched.send_packets([(packet, gso), (b"", 0)], now=now)   # ("" : dropped, counted)
        batched.stats["dropped bad packet"] -= 1
        assert da.outq == db.outq and alone.stats == batched.stats, (now, da.outq, db.outq)
    assert alone.dev.outq[0] == mac_aton(PEER_MAC) + mac_aton(US_MAC) + b"\x08\x00" + known


def test_two_packets_to_write_are_the_general_path(links: tuple[TapLink, TapLink]) -> None:
    # send_packets() of two IPv4 packets to one REACHABLE neighbour (a pure ACK and the
    # reply) takes a short path too; it must write what the loop writes for them, and
    # every other pair goes the general way.
    alone, batched = links
    for link in links:
        request = encode_arp(ArpPacket(OP_REQUEST, PEER_MAC, PEER, "00:00:00:00:00:00", US))
        link.arp.receive(request, now=0)            # the peer's MAC, learnt
        link.arp.transmit()
    seg = TcpSegment(src_port=7, dst_port=40000, seq=1, ack=2, flags=ACK, window=500)
    known = build_tcp_packet(US, PEER, seg)
    reply = build_tcp_packet(US, PEER, TcpSegment(src_port=7, dst_port=40000, seq=1, ack=2,
                                                  flags=ACK | PSH, window=500, payload=b"x"))
    unknown = build_tcp_packet(US, "192.0.2.77", seg)   # ARP must resolve it first
    six = build_tcp6_packet("2001:db8::2", "2001:db8::1", seg)
    pairs = [((known, 0), (reply, 0)), ((known, 0), (unknown, 0)), ((unknown, 0), (known, 0)),
             ((known, 0), (six, 0)), ((six, 0), (known, 0)), ((known, 0), (reply, 1000)),
             ((known, 0), (b"\x45\0", 0)), ((reply, 0), (known, 0))]
    for now, pair in enumerate(pairs, 1):
        da, db = alone.dev, batched.dev
        assert isinstance(da, FakeDevice) and isinstance(db, FakeDevice)
        da.outq, db.outq = [], []
        alone.send_packets(list(pair), now)
        batched.send_packets([*pair, (b"", 0)], now=now)   # ("" : dropped, counted)
        batched.stats["dropped bad packet"] -= 1
        assert da.outq == db.outq and alone.stats == batched.stats, (now, da.outq, db.outq)
    head = mac_aton(PEER_MAC) + mac_aton(US_MAC) + b"\x08\x00"
    alone.dev.outq = []
    alone.send_packets([(known, 0), (reply, 0)], 100)
    assert alone.dev.outq == [head + known, head + reply]
