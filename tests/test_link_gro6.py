"""Software GRO for IPv6 (synack.link.gro6): the IPv4 rules on the 40-byte header."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from synack.link.gro import Gro
from synack.wire.ipv4 import build_tcp_packet
from synack.wire.ipv6 import build_tcp6_packet, parse_ipv6, parse_tcp6_packet
from synack.wire.tcp import ACK, FIN, PSH, SYN, TcpSegment

A, B = "2001:db8::1", "2001:db8::2"
MSS = 1428


def seg(seq: int, n: int, flags: int = ACK, **kw: object) -> TcpSegment:
    return TcpSegment(40000, 80, seq, 7, flags, 500, timestamps=(5, 6),
                      payload=bytes((seq + i) & 0xFF for i in range(n)), **kw)  # type: ignore[arg-type]


def pkt(s: TcpSegment, **kw: object) -> bytes:
    return build_tcp6_packet(A, B, s, flow_label=0x12345, **kw)  # type: ignore[arg-type]


def test_in_order_segments_become_one_super_segment() -> None:
    g = Gro()
    segs = [seg(1000 + i * MSS, MSS) for i in range(4)] + [seg(1000 + 4 * MSS, 100, ACK | PSH)]
    out = g.merge([pkt(s) for s in segs])
    assert len(out) == 1 and out[0][1]
    hdr, merged = parse_tcp6_packet(out[0][0])             # checksum verified
    assert merged.payload == b"".join(s.payload for s in segs)
    assert merged.flags == ACK | PSH and merged.seq == 1000 and merged.timestamps == (5, 6)
    assert hdr.flow_label == 0x12345 and hdr.payload_length == len(out[0][0]) - 40
    assert g.stats["gro super-segments"] == 1 and g.stats["gro segments merged"] == 5


@settings(max_examples=60)
@given(st.lists(st.integers(1, MSS), min_size=1, max_size=8), st.booleans())
def test_any_run_keeps_every_byte_in_order(sizes: list[int], fin: bool) -> None:
    segs, seq = [], 1
    for n in sizes:
        segs.append(seg(seq, n))
        seq += n
    if fin:
        segs.append(seg(seq, 10, ACK | FIN))
    out = Gro().merge([pkt(s) for s in segs])
    data = b"".join(parse_tcp6_packet(p)[1].payload for p, _ in out)
    assert data == b"".join(s.payload for s in segs)
    assert all(valid for _, valid in out)


def test_what_may_not_join_flushes() -> None:
    g = Gro()
    first = pkt(seg(1, MSS))
    other_label = build_tcp6_packet(A, B, seg(1 + MSS, MSS), flow_label=0x54321)
    gap = pkt(seg(1 + 3 * MSS, MSS))
    out = g.merge([first, other_label, gap])
    assert [p for p, _ in out] == [first, other_label, gap]
    assert g.stats["gro flush not mergeable"] == 2


def test_a_bad_checksum_passes_unverified_and_order_is_kept_across_families() -> None:
    g = Gro()
    bad = bytearray(pkt(seg(1, 100)))
    bad[-1] ^= 0xFF
    v4 = build_tcp_packet("192.0.2.1", "192.0.2.2", seg(1, 100))
    syn = pkt(seg(0, 0, SYN, mss=1440))
    out = g.merge([bytes(bad), v4, syn])
    assert [p for p, _ in out] == [bytes(bad), v4, syn]
    assert [v for _, v in out] == [False, True, True]
    assert g.stats["gro bad checksum"] == 1
    assert parse_ipv6(out[2][0])[0].src == A
