"""Software GSO and the virtio-net header for IPv6 super-segments (TSO6, issue 14)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from synack.wire.gso import segment
from synack.wire.ipv6 import build_tcp6_packet, parse_tcp6_packet
from synack.wire.tcp import ACK, CWR, FIN, PSH, TcpSegment
from synack.wire.vnet import F_NEEDS_CSUM, GSO_ECN, GSO_TCPV6, NO_OFFLOAD, tx_header

A, B = "2001:db8::1", "2001:db8::2"


@settings(max_examples=80)
@given(st.integers(1, 20_000), st.integers(500, 1440), st.sampled_from([ACK, ACK | PSH,
       ACK | PSH | FIN, ACK | CWR]), st.booleans(), st.integers(0, 2**32 - 1))
def test_cut_frames_are_what_the_stack_would_build(n: int, mss: int, flags: int, ts: bool,
                                                   seq: int) -> None:
    """Each frame is byte for byte the packet built for its piece: sequence advanced,
    FIN and PSH on the last only, CWR on the first only, checksums complete."""
    data = bytes((i * 7) & 0xFF for i in range(n))
    stamps = (11, 22) if ts else None
    sup = TcpSegment(40000, 80, seq, 5, flags, 300, timestamps=stamps, payload=data)
    frames = segment(build_tcp6_packet(A, B, sup, flow_label=77, csum_partial=True), mss)
    pieces = [data[i:i + mss] for i in range(0, n, mss)]
    assert len(frames) == len(pieces)
    for i, (frame, piece) in enumerate(zip(frames, pieces, strict=True)):
        f = flags
        if i < len(pieces) - 1:
            f &= ~(FIN | PSH)
        if i > 0:
            f &= ~CWR
        want = TcpSegment(40000, 80, (seq + i * mss) & 0xFFFFFFFF, 5, f, 300,
                          timestamps=stamps, payload=piece)
        assert frame == build_tcp6_packet(A, B, want, flow_label=77)
        parse_tcp6_packet(frame)                     # checksum verified


def test_partial_checksum_frames_hold_the_pseudo_header_sum() -> None:
    sup = TcpSegment(1, 2, 3, 4, ACK, 5, payload=bytes(3000))
    frames = segment(build_tcp6_packet(A, B, sup, csum_partial=True), 1000, csum_partial=True)
    for frame in frames:
        piece = parse_tcp6_packet(frame, verify_checksum=False)[1]
        want = build_tcp6_packet(A, B, TcpSegment(1, 2, piece.seq, 4, ACK, 5,
                                                  payload=bytes(1000)), csum_partial=True)
        assert frame == want


def test_vnet_header_for_tso6() -> None:
    sup = TcpSegment(1, 2, 3, 4, ACK | CWR, 5, timestamps=(1, 2), payload=bytes(5000))
    packet = build_tcp6_packet(A, B, sup, csum_partial=True)
    vh = tx_header(packet, 0, csum=True, gso_size=1428)
    assert (vh.flags, vh.gso_type, vh.gso_size) == (F_NEEDS_CSUM, GSO_TCPV6 | GSO_ECN, 1428)
    assert (vh.hdr_len, vh.csum_start, vh.csum_offset) == (40 + 32, 40, 16)
    plain = tx_header(packet, 0, csum=True)
    assert (plain.gso_type, plain.csum_start) == (0, 40)
    assert tx_header(packet, 0, csum=False) is NO_OFFLOAD
    icmp = bytearray(packet)
    icmp[6] = 58                                    # not TCP after the header: no offload
    assert tx_header(bytes(icmp), 0, csum=True, gso_size=1000) is NO_OFFLOAD
