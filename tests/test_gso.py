"""Software GSO (synack.wire.gso): one super-segment in, the MSS frames a sender that
built one packet per MSS would have sent out -- header template copied, per frame
sequence number, IP id, lengths, both checksums, FIN/PSH on the last frame only."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from synack.link.loopback import LinkPair
from synack.wire.gso import segment, segment_all
from synack.wire.ipv4 import build_tcp_packet, parse_tcp_packet
from synack.wire.tcp import ACK, CWR, ECE, FIN, PSH, TcpSegment
from synack.wire.vnet import partial_csum

SRC, DST = "192.0.2.1", "198.51.100.7"
MSS = 1448
TS = (0xDEADBEEF, 12345)


def seg(payload: bytes, *, seq: int = 1000, flags: int = ACK | PSH, **kw: object) -> TcpSegment:
    fields: dict[str, object] = {"src_port": 40000, "dst_port": 80, "seq": seq,
                                 "ack": 777, "flags": flags, "window": 501,
                                 "payload": payload, "timestamps": TS}
    fields.update(kw)
    return TcpSegment(**fields)  # type: ignore[arg-type]


def super_segment(s: TcpSegment, ident: int = 41) -> bytes:
    """What Stack.transmit_gso() hands a link: checksum field = pseudo-header sum."""
    return build_tcp_packet(SRC, DST, s, ttl=64, ident=ident, csum_partial=True)


def one_at_a_time(s: TcpSegment, mss: int, ident: int = 41) -> list[bytes]:
    """The reference: one TcpSegment and one IPv4 packet per MSS, as the stack built them."""
    data = s.payload
    out = []
    for i, off in enumerate(range(0, max(len(data), 1), mss)):
        last = off + mss >= len(data)
        flags = s.flags if last else s.flags & ~(FIN | PSH)
        if i:
            flags &= ~CWR
        piece = replace(s, seq=(s.seq + off) & 0xFFFFFFFF, flags=flags,
                        payload=data[off:off + mss])
        out.append(build_tcp_packet(SRC, DST, piece, ttl=64, ident=(ident + i) & 0xFFFF))
    return out


def test_frames_of_a_super_segment_field_by_field() -> None:
    data = bytes(range(256)) * 20                # 5120 bytes: 3 x 1448 + 776
    s = seg(data, seq=0xFFFFF000, flags=ACK | PSH | FIN)   # the sequence space wraps
    frames = segment(super_segment(s, ident=0xFFFE), MSS)   # so do the IP ids
    parsed = [parse_tcp_packet(f) for f in frames]         # verifies both checksums
    assert [ip.ident for ip, _ in parsed] == [0xFFFE, 0xFFFF, 0, 1]
    assert [ip.total_length for ip, _ in parsed] == [20 + 32 + MSS] * 3 + [20 + 32 + 776]
    assert [t.seq for _, t in parsed] == [0xFFFFF000, 0xFFFFF5A8, 0xFFFFFB50, 0xF8]
    assert [t.flags for _, t in parsed] == [ACK, ACK, ACK, ACK | PSH | FIN]
    assert b"".join(t.payload for _, t in parsed) == data
    for ip, t in parsed:           # everything else copied, the timestamp included
        assert (ip.src, ip.dst, ip.ttl, ip.dont_fragment) == (SRC, DST, 64, True)
        assert (t.ack, t.window, t.timestamps, t.option_kinds) == (777, 501, TS, (1, 1, 8))
    assert frames == one_at_a_time(s, MSS, ident=0xFFFE)


def test_a_one_frame_super_segment_gets_its_checksum_completed() -> None:
    s = seg(b"x" * 100)
    (frame,) = segment(super_segment(s), MSS)
    assert frame == build_tcp_packet(SRC, DST, s, ttl=64, ident=41)


def test_a_whole_number_of_segments_has_no_short_tail() -> None:
    s = seg(b"y" * (2 * MSS))
    frames = segment(super_segment(s), MSS)
    assert [len(f) for f in frames] == [52 + MSS, 52 + MSS]
    assert frames == one_at_a_time(s, MSS)


def test_cwr_on_the_first_frame_only_and_sack_blocks_on_every_frame() -> None:
    s = seg(b"z" * 3000, flags=ACK | CWR | ECE, sack_blocks=((5000, 6000), (7000, 8000)))
    frames = segment(super_segment(s), MSS)
    flags = [parse_tcp_packet(f)[1].flags for f in frames]
    assert flags == [ACK | CWR | ECE, ACK | ECE, ACK | ECE]
    assert {parse_tcp_packet(f)[1].sack_blocks for f in frames} == {((5000, 6000), (7000, 8000))}
    assert frames == one_at_a_time(s, MSS)


def test_csum_partial_leaves_the_pseudo_header_sum_for_the_device() -> None:
    s = seg(b"w" * 4000)
    frames = segment(super_segment(s), MSS, csum_partial=True)
    for frame, want in zip(frames, one_at_a_time(s, MSS), strict=True):
        ip, t = parse_tcp_packet(frame, verify_checksum=False)
        assert t.checksum == partial_csum(SRC, DST, ip.total_length - 20)
        assert frame[:36] + frame[38:] == want[:36] + want[38:]   # all but the TCP checksum


def test_segment_all_cuts_only_super_segments() -> None:
    plain = build_tcp_packet(SRC, DST, seg(b"p" * 10), ident=7)
    s = seg(b"q" * 3000)
    assert segment_all([(plain, 0), (super_segment(s), MSS)]) == [plain, *one_at_a_time(s, MSS)]


def test_a_link_pair_without_tso_delivers_mss_frames() -> None:
    pair = LinkPair()
    try:
        s = seg(b"r" * 5000)
        pair.a.send_packets([(super_segment(s), MSS)], now=0)
        assert [p for p, _ in pair.b.recv_packets(now=0)] == one_at_a_time(s, MSS)
    finally:
        pair.close()


@given(size=st.integers(0, 6000), mss=st.integers(8, 1460),
       flags=st.sets(st.sampled_from([PSH, FIN, CWR, ECE])),
       seq=st.integers(0, 0xFFFFFFFF), ident=st.integers(0, 0xFFFF),
       ts=st.none() | st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
       sack=st.lists(st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF)),
                     max_size=3),
       fill=st.integers(0, 255))
def test_cut_equals_one_packet_per_mss(size: int, mss: int, flags: set[int], seq: int,
                                       ident: int, ts: tuple[int, int] | None,
                                       sack: list[tuple[int, int]], fill: int) -> None:
    bits = ACK
    for f in flags:
        bits |= f
    s = seg(bytes([fill]) * size, seq=seq, flags=bits, timestamps=ts,
            sack_blocks=tuple(sack))
    assert segment(super_segment(s, ident), mss) == one_at_a_time(s, mss, ident)
