"""struct virtio_net_hdr and the TAP helpers: layout, tx headers, partial checksums."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synack.wire import ACK, CWR, PSH, ParseError, TcpSegment, build_tcp_packet
from synack.wire.checksum import internet_checksum, pseudo_header_sum
from synack.wire.icmp import build_icmp_packet, echo
from synack.wire.vnet import (
    F_DATA_VALID,
    F_NEEDS_CSUM,
    GSO_ECN,
    GSO_NONE,
    GSO_TCPV4,
    VNET_HDR_LEN,
    VnetHeader,
    partial_csum,
    rx_csum_valid,
    tx_header,
    tx_header_bytes,
)

SRC, DST = "192.0.2.2", "192.0.2.1"
ETH = bytes(14)   # the header itself does not matter to the helpers, only its length
u8 = st.integers(0, 255)
u16 = st.integers(0, 0xFFFF)


@given(u8, u8, u16, u16, u16, u16)
def test_round_trip(flags: int, gso: int, hdr_len: int, size: int, start: int, off: int) -> None:
    h = VnetHeader(flags, gso, hdr_len, size, start, off)
    raw = h.encode()
    assert len(raw) == VNET_HDR_LEN
    assert VnetHeader.parse(raw + b"frame") == h


def test_little_endian_layout() -> None:
    raw = VnetHeader(F_NEEDS_CSUM, GSO_TCPV4, 66, 1448, 34, 16).encode()
    assert raw == bytes([1, 1, 66, 0, 0xA8, 0x05, 34, 0, 16, 0])


def test_parse_truncated_and_encode_range() -> None:
    with pytest.raises(ParseError) as e:
        VnetHeader.parse(bytes(9))
    assert (e.value.field, e.value.kind) == ("virtio-net header", "truncated")
    with pytest.raises(ValueError):
        VnetHeader(gso_size=70000).encode()


def _packet(payload: bytes = b"x" * 3000, flags: int = ACK, partial: bool = True) -> bytes:
    seg = TcpSegment(src_port=80, dst_port=40000, seq=1, ack=2, flags=flags, window=100,
                     timestamps=(1, 2), payload=payload)
    return build_tcp_packet(SRC, DST, seg, csum_partial=partial)


def test_tx_header_tap_with_tso() -> None:
    frame = ETH + _packet()
    h = tx_header(frame, 14, csum=True, gso_size=1448)
    # Ethernet 14 + IP 20 + TCP 32 (timestamps) = 66 bytes of headers.
    assert h == VnetHeader(F_NEEDS_CSUM, GSO_TCPV4, 66, 1448, 34, 16)
    assert tx_header_bytes(frame, 14, csum=True, gso_size=1448) == h.encode()


def test_tx_header_tun_csum_only_and_ecn() -> None:
    pkt = _packet(b"abc", flags=ACK | PSH | CWR)
    assert tx_header(pkt, 0, csum=True) == VnetHeader(F_NEEDS_CSUM, GSO_NONE, 52, 0, 20, 16)
    assert tx_header(pkt, 0, csum=True, gso_size=1000).gso_type == GSO_TCPV4 | GSO_ECN


def test_tx_header_without_offload_or_for_other_protocols() -> None:
    assert tx_header(_packet(), 0, csum=False) == VnetHeader()
    assert tx_header_bytes(_packet(), 0, csum=False) == bytes(10)
    icmp = build_icmp_packet(SRC, DST, echo(1, 1, b"ping"))
    assert tx_header(icmp, 0, csum=True, gso_size=1448) == VnetHeader()


def test_partial_checksum_completed_like_a_device() -> None:
    """What NEEDS_CSUM promises: summing from csum_start with the field as is, then
    storing the complement, gives the packet a correct TCP checksum."""
    pkt = bytearray(_packet(b"hello, world", partial=True))
    full = _packet(b"hello, world", partial=False)
    h = tx_header(pkt, 0, csum=True)
    start, at = h.csum_start, h.csum_start + h.csum_offset
    tcp_len = len(pkt) - start
    assert int.from_bytes(pkt[at:at + 2], "big") == partial_csum(SRC, DST, tcp_len)
    pkt[at:at + 2] = internet_checksum(pkt[start:]).to_bytes(2, "big")
    assert bytes(pkt) == full
    assert internet_checksum(full[20:], pseudo_header_sum(SRC, DST, 6, tcp_len)) == 0


@pytest.mark.parametrize("flags, valid", [
    (0, False), (F_NEEDS_CSUM, True), (F_DATA_VALID, True), (F_NEEDS_CSUM | F_DATA_VALID, True),
])
def test_rx_csum_valid(flags: int, valid: bool) -> None:
    assert rx_csum_valid(VnetHeader(flags=flags)) is valid
