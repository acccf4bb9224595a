"""The Internet checksum against RFC 1071's example, a real header and a plain
reference implementation (the textbook loop, slow and obviously right)."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from synack.wire import internet_checksum, ones_sum, pseudo_header_sum


def reference_checksum(data: bytes, initial: int = 0) -> int:
    """RFC 1071 section 4.1, transcribed: add 16-bit words, fold carries, complement."""
    if len(data) % 2:
        data += b"\0"
    total = initial
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def reference_pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    """RFC 9293 section 3.1: source, destination, zero, protocol, TCP length."""
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, proto, length)


def test_rfc1071_example() -> None:
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to 0xddf2.
    data = bytes.fromhex("0001f203f4f5f6f7")
    assert internet_checksum(data) == ~0xDDF2 & 0xFFFF == 0x220D


def test_real_ipv4_header() -> None:
    # A UDP packet from 192.168.0.1 to 192.168.0.199 whose header checksum is 0xb861.
    header = bytes.fromhex("450000730000400040110000c0a80001c0a800c7")
    assert internet_checksum(header) == 0xB861
    filled = header[:10] + b"\xb8\x61" + header[12:]
    assert internet_checksum(filled) == 0  # a correct header sums to zero


def test_edge_values() -> None:
    assert internet_checksum(b"") == 0xFFFF
    assert internet_checksum(b"\0" * 64) == 0xFFFF
    # A non-zero sum that is a multiple of 0xFFFF is "negative zero": checksum 0.
    assert internet_checksum(b"\xff\xff" * 3) == 0
    assert internet_checksum(b"\x00\x01\xff\xfe") == 0
    assert internet_checksum(b"\x01") == reference_checksum(b"\x01") == 0xFEFF


def test_odd_trailing_byte_is_padded_on_the_right() -> None:
    assert internet_checksum(b"\x12\x34\x56") == internet_checksum(b"\x12\x34\x56\x00")


@given(st.binary(max_size=3000), st.integers(0, 2**40))
def test_matches_reference(data: bytes, initial: int) -> None:
    assert internet_checksum(data, initial) == reference_checksum(data, initial)


@given(st.binary(min_size=600, max_size=70000))
def test_matches_reference_large_buffers(data: bytes) -> None:
    # Large enough to take the folding path.
    assert internet_checksum(data) == reference_checksum(data)


@pytest.mark.parametrize("size", [65535, 65536, 131071])
def test_all_ones_large(size: int) -> None:
    data = b"\xff" * size
    assert internet_checksum(data) == reference_checksum(data)


@given(st.binary(max_size=200))
def test_buffer_types_agree(data: bytes) -> None:
    expected = internet_checksum(data)
    assert internet_checksum(bytearray(data)) == expected
    assert internet_checksum(memoryview(data)) == expected
    padded = memoryview(b"xx" + data + b"yy")[2 : 2 + len(data)]
    assert internet_checksum(padded) == expected


@given(st.binary(max_size=100).map(lambda b: b[: len(b) & ~1]), st.binary(max_size=100))
def test_partial_sums_combine(head: bytes, tail: bytes) -> None:
    # Any even-length head can be summed separately and passed as `initial`.
    assert internet_checksum(tail, ones_sum(head)) == internet_checksum(head + tail)


def test_checksum_written_into_data_verifies() -> None:
    data = bytearray(bytes(range(50)))
    data[10:12] = b"\0\0"  # the checksum field is zero while computing
    data[10:12] = internet_checksum(data).to_bytes(2, "big")
    assert internet_checksum(data) == 0


addresses = st.integers(0, 2**32 - 1).map(lambda a: socket.inet_ntoa(a.to_bytes(4, "big")))


@given(addresses, addresses, st.integers(0, 255), st.integers(0, 65535), st.binary(max_size=64))
def test_pseudo_header_sum(src: str, dst: str, proto: int, length: int, body: bytes) -> None:
    pseudo = reference_pseudo_header(src, dst, proto, length)
    expected = reference_checksum(pseudo + body)
    assert internet_checksum(body, pseudo_header_sum(src, dst, proto, length)) == expected


@pytest.mark.parametrize("bad", ["10.1", "256.0.0.1", "example.com", "", "::1::", "1.2.3.4 "])
def test_pseudo_header_sum_rejects_non_dotted_quads(bad: str) -> None:
    # IPv6 text (with a colon) takes the IPv6 pseudo-header: tests/test_wire_ipv6.py.
    with pytest.raises(ValueError, match="IPv[46] address"):
        pseudo_header_sum(bad, "192.0.2.1", 6, 20)
