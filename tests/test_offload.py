"""Checksum offload and TSO in the core (virtio-net offloads), checked against a sender
without them: a test-side "device" completes checksums and cuts super-segments into
MSS segments the way Linux's GSO does, and the wire must carry exactly what an
MSS-at-a-time sender would have put there."""

from __future__ import annotations

from dataclasses import replace

import pytest
from transcript import L_ISN, LOCAL, R_ISN, REMOTE, established_server, ours

from synack.demo.bulk import RECEIVER, SENDER, transfer
from synack.demo.driver import AppHost
from synack.sim import LinkParams, Network
from synack.stack import Offload
from synack.wire.ipv4 import build_tcp_packet, parse_tcp_packet
from synack.wire.tcp import ACK, CWR, FIN, PSH
from synack.wire.vnet import partial_csum

MS = 1000
ISS = L_ISN
MASK = 0xFFFFFFFF


def device(packet: bytes, gso: int, *, partial: bool) -> list[bytes]:
    """What the NIC does with one packet from the stack: check the partial checksum,
    cut a super-segment into ``gso``-byte segments (FIN and PSH on the last only, CWR
    on the first only, IP ids counting up) and compute every checksum."""
    ip, seg = parse_tcp_packet(packet, verify_checksum=not partial)
    if partial:
        tcp_len = len(packet) - ip.header_length
        assert seg.checksum == partial_csum(ip.src, ip.dst, tcp_len)
    if not gso:
        return [build_tcp_packet(ip.src, ip.dst, seg, ttl=ip.ttl, ident=ip.ident, tos=ip.tos)]
    assert len(seg.payload) > gso
    out = []
    pieces = range(0, len(seg.payload), gso)
    for i, off in enumerate(pieces):
        flags = seg.flags
        if off + gso < len(seg.payload):
            flags &= ~(FIN | PSH)
        if i:
            flags &= ~CWR
        piece = replace(seg, seq=(seg.seq + off) & MASK, flags=flags,
                        payload=seg.payload[off:off + gso])
        out.append(build_tcp_packet(ip.src, ip.dst, piece, ttl=ip.ttl,
                                    ident=(ip.ident + i) & 0xFFFF, tos=ip.tos))
    return out


def offloaded_sender(offload: Offload, log: list[tuple[int, int]],
                     nets: list[Network]):
    """A ``transfer`` setup: the sender gets ``offload`` and a device in front."""

    def setup(net: Network) -> None:
        nets.append(net)
        host = net.hosts[SENDER]
        host.stack.offload = offload

        def transmit(*, now: int) -> list[bytes]:
            wire = []
            for pkt, gso in host.stack.transmit_gso(now=now):
                log.append((len(pkt), gso))
                wire += device(pkt, gso, partial=offload.tx_csum or gso > 0)
            return wire

        host.transmit = transmit   # type: ignore[method-assign]

    return setup


def plain_run(nbytes: int, seed: int, link: LinkParams) -> list[bytes]:
    nets: list[Network] = []
    r = transfer(nbytes, seed=seed, link=link, back=link, setup=nets.append)
    assert r.intact and r.finished
    return [rec.data for rec in nets[0].records]


@pytest.mark.parametrize(("seed", "link"), [
    (1, LinkParams(delay_us=5 * MS)),
    (4, LinkParams(delay_us=5 * MS, loss=0.02, reorder=0.02)),
    (9, LinkParams(delay_us=2 * MS, rate_bps=50_000_000)),
])
def test_tso_and_csum_offload_put_the_same_segments_on_the_wire(seed: int,
                                                                link: LinkParams) -> None:
    nbytes = 2_000_000
    log: list[tuple[int, int]] = []
    nets: list[Network] = []
    r = transfer(nbytes, seed=seed, link=link, back=link,
                 setup=offloaded_sender(Offload(tx_csum=True, tso_max=65535), log, nets))
    assert r.intact and r.finished
    wire = [rec.data for rec in nets[0].records]
    assert wire == plain_run(nbytes, seed, link)      # byte for byte, every packet
    supers = [(size, gso) for size, gso in log if gso]
    assert supers, "no super-segment was built"
    assert all(size <= 65535 and gso == 1448 for size, gso in supers)   # MSS 1460 - TS 12
    assert max(size for size, _ in supers) > 4 * 1448   # ACK clocking: bursts of a few MSS
    stack = nets[0].hosts[SENDER].stack
    assert stack.stats["TSO super-segments out"] == len(supers)


def test_csum_offload_alone_changes_nothing_on_the_wire() -> None:
    link = LinkParams(delay_us=5 * MS, loss=0.01)
    log: list[tuple[int, int]] = []
    nets: list[Network] = []
    r = transfer(300_000, seed=3, link=link, back=link,
                 setup=offloaded_sender(Offload(tx_csum=True), log, nets))
    assert r.intact and r.finished
    # Without TSO the stack still hands over super-segments (software GSO); cut by the
    # link, they carry the same segments as before.
    assert {gso for _, gso in log} == {0, 1448}
    assert [rec.data for rec in nets[0].records] == plain_run(300_000, 3, link)


def test_tso_max_bounds_the_super_segment() -> None:
    log: list[tuple[int, int]] = []
    nets: list[Network] = []
    r = transfer(500_000, seed=2, link=LinkParams(delay_us=5 * MS),
                 setup=offloaded_sender(Offload(tx_csum=True, tso_max=5000), log, nets))
    assert r.intact
    # 5000 bytes of IP packet: 52 bytes of headers and at most 3 segments of 1448, the
    # last of them short when it ends the data written so far (Linux sends an skb's
    # short tail in its TSO packet when Nagle allows).
    sizes = {size for size, gso in log if gso}
    assert max(sizes) == 52 + 3 * 1448 and 52 + 2 * 1448 in sizes
    assert all(52 + 1448 < size <= 5000 for size in sizes)


def gro_host(host: AppHost) -> None:
    """Offloads on, and a link that passes super-segments whole and vouches for checksums."""
    stack = host.stack
    stack.offload = Offload(tx_csum=True, tso_max=65535)

    def transmit(*, now: int) -> list[bytes]:
        return [p for p, _ in stack.transmit_gso(now=now)]

    def receive(packet: bytes, *, now: int) -> None:
        stack.receive(packet, now=now, csum_valid=True)
        host._poll(now)

    host.transmit = transmit   # type: ignore[method-assign]
    host.receive = receive     # type: ignore[method-assign]


def test_receiver_takes_super_segments_with_csum_valid() -> None:
    """Both ends offloaded, the super-segments cross unsplit (like GRO handing
    64 KB to the stack): the receiver accepts them over its 1500-byte MTU, skips
    the checksum it was told is valid, and ACKs at once (more than one full segment)."""
    nets: list[Network] = []

    def setup(net: Network) -> None:
        nets.append(net)
        for addr in (SENDER, RECEIVER):
            gro_host(net.hosts[addr])

    r = transfer(3_000_000, seed=5, link=LinkParams(delay_us=5 * MS), setup=setup)
    assert r.intact and r.finished
    sizes = [len(rec.data) for rec in nets[0].records if rec.src == SENDER]
    assert max(sizes) > 60_000
    rx = nets[0].hosts[RECEIVER].stack
    assert rx.stats["dropped bad checksum"] == 0
    assert rx.stats["segments in"] < len(sizes) + 10   # no segment was split on the way


def test_csum_valid_skips_only_the_tcp_checksum() -> None:
    stack, fd, peer = established_server()
    seg = peer.seg(seq=R_ISN + 1, ack=ISS + 1, flags=ACK, payload=b"hello")
    bad = bytearray(build_tcp_packet(REMOTE, LOCAL, seg))
    bad[-1] ^= 0xFF                       # payload changed, TCP checksum now wrong
    stack.receive(bytes(bad), now=0)
    assert stack.stats["dropped bad checksum"] == 1
    stack.receive(bytes(bad), now=0, csum_valid=True)
    assert stack.recv(fd, 100, now=0) == b"hell" + bytes([ord("o") ^ 0xFF])
    worse = bytearray(bad)
    worse[8] = 1                          # TTL changed: the IPv4 header checksum is wrong
    stack.receive(bytes(worse), now=0, csum_valid=True)
    assert stack.stats["dropped bad checksum"] == 2


def test_csum_offload_packet_holds_the_pseudo_header_sum() -> None:
    plain, fd1, _peer1 = established_server()
    off, fd2, _peer2 = established_server()
    off.offload = Offload(tx_csum=True)          # set on a live connection
    plain.send(fd1, b"x" * 3000, now=0)
    off.send(fd2, b"x" * 3000, now=0)
    want = plain.transmit(now=0)
    got = off.transmit(now=0)       # the software cut keeps the checksum to the device
    assert len(got) == 3
    assert [device(p, 0, partial=True)[0] for p in got] == want
    _ip, seg = parse_tcp_packet(got[0], verify_checksum=False)
    assert seg.checksum == partial_csum(LOCAL, REMOTE, 32 - 12 + 1460)


def test_tso_transcript_one_super_segment_then_tail() -> None:
    stack, fd, _peer = established_server()
    stack.offload = Offload(tx_csum=True, tso_max=65535)
    data = bytes(range(256)) * 20              # 5120 bytes: 3 x 1460 + 740
    stack.send(fd, data, now=0)
    # One super-segment, the short tail in it (nothing in flight: Nagle lets it go),
    # with PSH: Linux __tcp_transmit_skb() sets it on every GSO packet.
    ((big, gso),) = stack.transmit_gso(now=0)
    assert gso == 1460
    _, s1 = parse_tcp_packet(big, verify_checksum=False)
    assert s1 == ours(seq=ISS + 1, ack=R_ISN + 1, flags=ACK | PSH, window=s1.window,
                      payload=data)
    assert stack.stats["segments out"] >= 4


def test_writes_queued_together_go_as_one_super_segment() -> None:
    # Linux appends a write to the last one's unsent skb and moves PSH to the new end
    # (tcp_sendmsg_locked()): writes held back together leave as one super-segment.
    stack, fd, peer = established_server()
    stack.offload = Offload(tx_csum=True, tso_max=65535)
    # A zero window holds two writes back; then the window opens on all of them.
    peer.send(seq=R_ISN + 1, ack=ISS + 1, flags=ACK, window=0, now=0)
    stack.send(fd, b"b" * 2000, now=0)
    stack.send(fd, b"c" * 6000, now=0)
    assert stack.transmit_gso(now=0) == []
    stack.receive(build_tcp_packet(REMOTE, LOCAL, peer.seg(
        seq=R_ISN + 1, ack=ISS + 1, flags=ACK, window=65535)), now=10_000)
    out = [(parse_tcp_packet(p, verify_checksum=False)[1], g)
           for p, g in stack.transmit_gso(now=10_000)]
    shapes = [(s.seq - ISS - 1, len(s.payload), bool(s.flags & PSH), g) for s, g in out]
    assert shapes == [(0, 8000, True, 1460)]


def test_no_offload_transmit_cuts_super_segments_with_full_checksums() -> None:
    """Software GSO: without any offload transmit_gso() still gives super-segments
    (pseudo-header checksum only, as for a device), and transmit() cuts them into
    MSS packets with both checksums computed."""
    stack, fd, _peer = established_server()
    twin, fd2, _peer2 = established_server()
    assert stack.offload is None
    assert stack.send(fd, b"q" * 8000, now=0) == twin.send(fd2, b"q" * 8000, now=0) == 8000
    out = stack.transmit_gso(now=0)
    assert [g for _, g in out] == [1460]                 # 5 x 1460 and 700, in one
    assert len(out[0][0]) == 40 + 8000
    frames = twin.transmit(now=0)
    assert [len(parse_tcp_packet(p)[1].payload) for p in frames] == [1460] * 5 + [700]
    assert frames == [f for p, g in out for f in device(p, g, partial=g > 0)]
    assert stack.stats["GSO super-segments out"] == 1
    assert stack.stats["segments out"] == 1 + 6            # the SYN,ACK, then six
