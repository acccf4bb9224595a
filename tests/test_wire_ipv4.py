"""IPv4 headers and whole IPv4 + TCP packets."""

from __future__ import annotations

import dataclasses
import socket

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from synack.wire import (
    ACK,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    SYN,
    IPv4Header,
    ParseError,
    TcpSegment,
    build_tcp_packet,
    encode_ipv4,
    encode_tcp,
    internet_checksum,
    ipv4,
    parse_ipv4,
    parse_tcp,
    parse_tcp_packet,
)
from synack.wire._addr import ntoa
from synack.wire.ipv4 import _header_bytes, parse_ipv4_route, parse_ipv4_tcp
from synack.wire.tcp import _encode_tcp_parts

SRC, DST = "192.0.2.1", "198.51.100.2"

addresses = st.integers(0, 2**32 - 1).map(lambda a: socket.inet_ntoa(a.to_bytes(4, "big")))
u8 = st.integers(0, 255)


@st.composite
def headers(draw: st.DrawFn) -> IPv4Header:
    return IPv4Header(
        src=draw(addresses), dst=draw(addresses), proto=draw(u8), ttl=draw(u8), tos=draw(u8),
        ident=draw(st.integers(0, 0xFFFF)), dont_fragment=draw(st.booleans()),
        more_fragments=draw(st.booleans()), frag_offset=draw(st.integers(0, 0x1FFF)),
        options=draw(st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n,
                                                                    max_size=4 * n))),
    )  # fmt: skip


@settings(max_examples=300)
@given(headers(), st.binary(max_size=300))
def test_round_trip(hdr: IPv4Header, payload: bytes) -> None:
    packet = encode_ipv4(hdr, payload)
    back, body = parse_ipv4(packet)
    assert back == hdr
    assert bytes(body) == payload
    assert back.header_length == 20 + len(hdr.options) == (packet[0] & 0x0F) * 4
    assert back.total_length == len(packet)
    assert back.checksum == int.from_bytes(packet[10:12], "big")
    assert internet_checksum(packet[: back.header_length]) == 0


def test_known_header() -> None:
    # A real UDP packet's header, checksum 0xb861, with 95 bytes of payload.
    packet = bytes.fromhex("45000073000040004011b861c0a80001c0a800c7") + bytes(95)
    hdr, payload = parse_ipv4(packet)
    assert hdr == IPv4Header("192.168.0.1", "192.168.0.199", PROTO_UDP, ttl=64)
    assert (hdr.total_length, hdr.header_length, hdr.checksum) == (0x73, 20, 0xB861)
    assert len(payload) == 95
    assert encode_ipv4(hdr, bytes(95)) == packet


def test_payload_stops_at_total_length() -> None:
    frame = encode_ipv4(IPv4Header(SRC, DST), b"abc") + b"\0" * 20  # Ethernet padding
    _, payload = parse_ipv4(frame)
    assert bytes(payload) == b"abc"
    assert isinstance(payload, memoryview) and payload.obj is frame  # a view, not a copy


def test_options_are_padded_to_a_word() -> None:
    packet = encode_ipv4(IPv4Header(SRC, DST, options=b"\x94\x04\x00"), b"")
    hdr, _ = parse_ipv4(packet)
    assert hdr.options == b"\x94\x04\x00\x00" and hdr.header_length == 24


def header_bytes(**change: int) -> bytearray:
    packet = bytearray(encode_ipv4(IPv4Header(SRC, DST), b"0123456789"))
    for name, value in change.items():
        offset, size = {"vihl": (0, 1), "total": (2, 2), "checksum": (10, 2)}[name]
        packet[offset : offset + size] = value.to_bytes(size, "big")
    return packet


@pytest.mark.parametrize(
    ("packet", "field", "kind", "message"),
    [
        (header_bytes()[:19], "IPv4 header", "truncated", "19 bytes, need at least 20"),
        (b"", "IPv4 header", "truncated", "0 bytes"),
        (header_bytes(vihl=0x65), "IPv4 version", "bad version", "6 (expected 4)"),
        (header_bytes(vihl=0x44), "IPv4 header length", "bad header length", "16 bytes"),
        (header_bytes(vihl=0x40), "IPv4 header length", "bad header length", "0 bytes"),
        (header_bytes(total=19), "IPv4 total length", "bad total length", "less than"),
        (header_bytes(vihl=0x46, total=22), "IPv4 total length", "bad total length", "than the 24"),
        (header_bytes(total=31), "IPv4 total length", "bad total length", "only 30 bytes"),
        (header_bytes(vihl=0x4F, total=30), "IPv4 total length", "bad total length", "less"),
        (header_bytes(checksum=0x1234), "IPv4 checksum", "bad checksum", "0x1234 (expected"),
    ],
)  # fmt: skip
def test_malformed(packet: bytes, field: str, kind: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_ipv4(packet)
    assert (info.value.field, info.value.kind) == (field, kind)
    assert message in str(info.value)


def test_bad_checksum_message_names_the_right_value() -> None:
    packet = header_bytes()
    good = int.from_bytes(packet[10:12], "big")
    packet[10:12] = b"\0\0"
    with pytest.raises(ParseError, match=f"expected 0x{good:04x}"):
        parse_ipv4(packet)
    hdr, _ = parse_ipv4(packet, verify_checksum=False)
    assert hdr.checksum == 0


@pytest.mark.parametrize(
    ("hdr", "payload"),
    [
        (IPv4Header(SRC, DST), bytes(65516)),
        (IPv4Header(SRC, DST, options=bytes(44)), b""),
        (IPv4Header(SRC, DST, ttl=256), b""),
        (IPv4Header(SRC, DST, frag_offset=8192), b""),
        (IPv4Header(SRC, DST, ident=-1), b""),
        (IPv4Header("10.1", DST), b""),
        (IPv4Header(SRC, "localhost"), b""),
    ],
)
def test_encode_rejects(hdr: IPv4Header, payload: bytes) -> None:
    with pytest.raises(ValueError):
        encode_ipv4(hdr, payload)


def test_largest_packet() -> None:
    packet = encode_ipv4(IPv4Header(SRC, DST), bytes(65515))
    assert len(packet) == 65535 and parse_ipv4(packet)[0].total_length == 65535


# --- IPv4 + TCP ------------------------------------------------------------------------


def test_build_and_parse_tcp_packet() -> None:
    seg = TcpSegment(40000, 80, 1, 2, ACK, 502, payload=b"hello", timestamps=(1, 2))
    packet = build_tcp_packet(SRC, DST, seg, ttl=17, ident=99, tos=2)
    hdr, back = parse_tcp_packet(packet)
    assert back == seg
    assert hdr == IPv4Header(SRC, DST, PROTO_TCP, ttl=17, tos=2, ident=99, dont_fragment=True)
    assert hdr.total_length == len(packet) == 20 + 32 + 5


@settings(max_examples=200)
@given(
    addresses, addresses, st.integers(0, 2**32 - 1), st.binary(max_size=100),
    st.sampled_from([(), ((1, 2),)]), st.none() | st.tuples(st.integers(0, 9), st.integers(0, 9)),
)  # fmt: skip
def test_tcp_packet_round_trip(
    src: str,
    dst: str,
    seq: int,
    payload: bytes,
    sack: tuple[tuple[int, int], ...],
    ts: tuple[int, int] | None,
) -> None:
    seg = TcpSegment(1, 2, seq, 0, ACK, 1, payload=payload, sack_blocks=sack, timestamps=ts)
    packet = build_tcp_packet(src, dst, seg)
    hdr, back = parse_tcp_packet(packet)
    assert back == seg and (hdr.src, hdr.dst) == (src, dst)
    assert packet[20:] == encode_tcp(seg, src, dst)


def test_parse_tcp_packet_rejects_other_protocols_and_fragments() -> None:
    for proto in (PROTO_ICMP, PROTO_UDP, 41):
        with pytest.raises(ParseError) as info:
            parse_tcp_packet(encode_ipv4(IPv4Header(SRC, DST, proto), bytes(20)))
        assert (info.value.field, info.value.kind) == ("IPv4 protocol", "unsupported")
    for hdr in (IPv4Header(SRC, DST, more_fragments=True), IPv4Header(SRC, DST, frag_offset=185)):
        with pytest.raises(ParseError) as info:
            parse_tcp_packet(encode_ipv4(hdr, bytes(20)))
        assert (info.value.field, info.value.kind) == ("IPv4 fragment", "unsupported")


def test_parse_tcp_packet_checks_the_tcp_checksum_with_the_ip_addresses() -> None:
    packet = bytearray(build_tcp_packet(SRC, DST, TcpSegment(1, 2, 3, flags=SYN, mss=1460)))
    packet[-1] ^= 1  # the last MSS byte
    with pytest.raises(ParseError) as info:
        parse_tcp_packet(packet)
    assert (info.value.field, info.value.kind) == ("TCP checksum", "bad checksum")
    assert parse_tcp_packet(packet, verify_checksum=False)[1].mss == 1461
    # Rewriting an address (and fixing only the IP checksum) breaks the pseudo-header.
    packet = bytearray(build_tcp_packet(SRC, DST, TcpSegment(1, 2, 3)))
    packet[12:16] = socket.inet_aton("192.0.2.9")
    packet[10:12] = b"\0\0"
    packet[10:12] = internet_checksum(packet[:20]).to_bytes(2, "big")
    with pytest.raises(ParseError, match="TCP checksum"):
        parse_tcp_packet(packet)


def test_dataclass_replace_keeps_working() -> None:
    hdr = IPv4Header(SRC, DST)
    assert dataclasses.replace(hdr, ttl=1).ttl == 1


# --- fuzzing ---------------------------------------------------------------------------


def parse_or_parse_error(data: bytes, verify: bool) -> None:
    try:
        parse_tcp_packet(data, verify_checksum=verify)
    except ParseError:
        pass
    try:
        parse_ipv4(data, verify_checksum=verify)
    except ParseError:
        pass


@settings(max_examples=500)
@given(st.binary(max_size=100), st.booleans())
def test_random_bytes_raise_only_parse_error(data: bytes, verify: bool) -> None:
    parse_or_parse_error(data, verify)


@settings(max_examples=500)
@given(
    st.binary(max_size=40),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=6),
    st.booleans(),
)
def test_mutated_packets_raise_only_parse_error(
    payload: bytes, edits: list[tuple[int, int]], verify: bool
) -> None:
    seg = TcpSegment(1, 2, 3, 4, ACK, 5, payload=payload, timestamps=(6, 7), sack_blocks=((8, 9),))
    packet = bytearray(build_tcp_packet(SRC, DST, seg))
    for position, value in edits:
        packet[position % len(packet)] = value
    parse_or_parse_error(bytes(packet), verify)


def general_parse(packet: bytes, verify_tcp: bool) -> tuple[str, str, TcpSegment] | None:
    """What a host's general receive path makes of ``packet``: None where it does not
    end in one TCP segment (another protocol, a fragment, an error)."""
    try:
        src, dst, proto, frag, body = parse_ipv4_route(packet)
        if proto != PROTO_TCP or frag & 0x3FFF:
            return None
        return src, dst, parse_tcp(body, src, dst, verify_checksum=verify_tcp)
    except ParseError:
        return None


@settings(max_examples=500)
@given(
    st.binary(max_size=600),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=3),
    st.booleans(),
    st.booleans(),
)
def test_parse_ipv4_tcp_agrees_with_the_general_path(
    payload: bytes, edits: list[tuple[int, int]], verify: bool, syn: bool
) -> None:
    # parse_ipv4_tcp(): the same segment as the general path, or None (the packet is
    # then left to it); it raises only what parse_tcp() would for the same bytes.
    # (A SYN with Linux's four options, or the timestamp alone: the shapes it packs.)
    seg = TcpSegment(1, 2, 3, 4, SYN | ACK if syn else ACK, 5, payload=payload,
                     timestamps=(6, 7), mss=1460 if syn else None, wscale=7 if syn else None,
                     sack_permitted=syn)
    packet = bytearray(build_tcp_packet(SRC, DST, seg))
    for position, value in edits:
        packet[position % len(packet)] = value
    want = general_parse(bytes(packet), verify)
    try:
        got = parse_ipv4_tcp(bytes(packet), verify)
    except ParseError:
        assert want is None
        return
    if got is not None:
        assert got == want
        assert want is not None
        # The fields for display too, which records leave out of ==.
        for name in ("data_offset", "checksum", "option_kinds"):
            assert getattr(got[2], name) == getattr(want[2], name), name
    if not edits:
        assert got == (SRC, DST, seg)


@settings(max_examples=300)
@example(0, [(55, 53)], True, 1, "0.0.0.0", "0.0.0.0")    # a total length taking in the pad
@given(st.integers(0, 700), st.lists(st.tuples(st.integers(0, 59), u8), max_size=3),
       st.booleans(), st.integers(0, 3), addresses, addresses)
def test_parse_ipv4_tcp_checks_the_checksums(n: int, flips: list[tuple[int, int]], fix: bool,
                                             pad: int, src: str, dst: str) -> None:
    # parse_ipv4_tcp() sums the header from its fields and the segment inline (the whole
    # packet at once when nothing pads it): for any damage in the first 60 bytes, with or
    # without a recomputed header checksum, and link padding or none, it accepts exactly
    # what the plain rules do (wire.checksum's own function, not an inline sum).
    b = bytearray(build_tcp_packet(src, dst, TcpSegment(1, 2, 3, 4, ACK, 5, payload=b"\xa5" * n,
                                                        timestamps=(6, 7))))
    for i, v in flips:
        b[i % len(b)] = v
    if fix:
        b[10:12] = b"\0\0"
        b[10:12] = internet_checksum(b[:20]).to_bytes(2, "big")
    packet = bytes(b) + bytes(pad)
    total = int.from_bytes(packet[2:4], "big")
    header_ok = (packet[0] == 0x45 and packet[9] == PROTO_TCP
                 and not (packet[6] & 0x3F or packet[7])
                 and 40 <= total <= len(packet) and internet_checksum(packet[:20]) == 0)
    tcp_ok = header_ok and internet_checksum(
        packet[20:total], int.from_bytes(packet[12:20], "big") + PROTO_TCP + total - 20) == 0
    try:
        got = parse_ipv4_tcp(packet)
    except ParseError:
        got = None
        assert tcp_ok       # (a malformed TCP header: parse_tcp()'s error, checksum right)
    else:
        assert (got is not None) == tcp_ok
    if header_ok:
        try:
            assert parse_ipv4_tcp(packet, verify_tcp_checksum=False) is not None
        except ParseError:
            pass            # the TCP header itself is malformed
    else:
        assert parse_ipv4_tcp(packet, verify_tcp_checksum=False) is None


def test_parse_ipv4_tcp_leaves_faults_to_the_general_path() -> None:
    good = build_tcp_packet(SRC, DST, TcpSegment(1, 2, 3, 4, ACK, 5, payload=b"x" * 700))
    assert parse_ipv4_tcp(good) is not None
    bad_tcp = bytearray(good)
    bad_tcp[-1] ^= 1                      # the payload: only the TCP checksum notices
    assert parse_ipv4_tcp(bytes(bad_tcp)) is None
    assert parse_ipv4_tcp(bytes(bad_tcp), verify_tcp_checksum=False) is not None
    bad_ip = bytearray(good)
    bad_ip[8] ^= 1                        # the TTL: the header checksum is always checked
    assert parse_ipv4_tcp(bytes(bad_ip), verify_tcp_checksum=False) is None


def general_build(seg: TcpSegment, ttl: int, ident: int, tos: int, partial: bool) -> bytes:
    """build_tcp_packet() the long way: the TCP encoder and the IPv4 header encoder."""
    tcp_header, payload = _encode_tcp_parts(seg, SRC, DST, partial)
    ip = _header_bytes(SRC, DST, PROTO_TCP, ttl, tos, ident, 0x4000, b"",
                       len(tcp_header) + len(payload))
    return bytes(ip) + bytes(tcp_header) + payload


u32 = st.integers(0, 2**32 - 1)
u16 = st.integers(0, 0xFFFF)


@settings(max_examples=300)
@given(u16, u16, u32, u32, u8, u16, u16, st.binary(max_size=700), u16, st.integers(0, 14),
       u32, u32, st.integers(0, 15), u8, u16, u8, st.booleans(), st.booleans())
def test_packed_builders_match_the_general_encoders(
    sport: int, dport: int, seq: int, ack: int, flags: int, window: int, urgent: int,
    payload: bytes, mss: int, wscale: int, tsval: int, tsecr: int, reserved: int,
    ttl: int, ident: int, tos: int, syn_options: bool, partial: bool,
) -> None:
    # build_tcp_packet() packs the usual shapes (a SYN's four options, or the timestamp
    # alone) in one go, checksums from the field values: byte for byte what the
    # general encoders write.
    seg = TcpSegment(sport, dport, seq, ack, flags, window, urgent, payload,
                     mss=mss if syn_options else None, wscale=wscale if syn_options else None,
                     sack_permitted=syn_options, timestamps=(tsval, tsecr), reserved=reserved)
    built = build_tcp_packet(SRC, DST, seg, ttl=ttl, ident=ident, tos=tos,
                             csum_partial=partial)
    assert built == general_build(seg, ttl, ident, tos, partial)
    if not partial:
        assert parse_tcp_packet(built)[1] == seg


@settings(max_examples=200)
@given(u32, u32, u16, u16, u32, u32, u8, st.binary(max_size=600), u32, u32, u8, u16, u8,
       st.booleans(), st.booleans())
def test_packed_builders_match_for_any_address_pair(
    a_src: int, a_dst: int, sport: int, dport: int, seq: int, ack: int, flags: int,
    payload: bytes, tsval: int, tsecr: int, ttl: int, ident: int, tos: int, partial: bool,
    syn_options: bool,
) -> None:
    # The packed builders sum each address pair's fixed words once and keep them
    # (wire/ipv4.py _FIXED): any pair, an all-zero one too, gives the general bytes.
    src, dst = ntoa(a_src), ntoa(a_dst)
    seg = TcpSegment(sport, dport, seq, ack, flags, 1000, 0, payload,
                     mss=1460 if syn_options else None, wscale=7 if syn_options else None,
                     sack_permitted=syn_options, timestamps=(tsval, tsecr))
    tcp_header, body = _encode_tcp_parts(seg, src, dst, partial)
    ip = _header_bytes(src, dst, PROTO_TCP, ttl, tos, ident, 0x4000, b"",
                       len(tcp_header) + len(body))
    for _ in range(2):                    # the pair's sums computed, then kept
        built = build_tcp_packet(src, dst, seg, ttl=ttl, ident=ident, tos=tos,
                                 csum_partial=partial)
        assert built == bytes(ip) + bytes(tcp_header) + body


def test_fixed_sums_kept_per_pair_within_a_bound() -> None:
    seg = TcpSegment(1, 2, 3, 4, 0x10, 5, timestamps=(6, 7))
    ipv4._FIXED.clear()
    for i in range(ipv4._FIXED_MAX + 10):
        build_tcp_packet(SRC, ntoa(0xC6336400 + i), seg)
    assert 0 < len(ipv4._FIXED) <= ipv4._FIXED_MAX
    assert parse_tcp_packet(build_tcp_packet(SRC, DST, seg))[1] == seg


def test_the_names_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # parse_ipv4_tcp() names addresses through a table (a subscript, not ntoa()'s call):
    # right names, and a host meeting many addresses does not grow it without end.
    from synack.wire import _addr

    monkeypatch.setattr(_addr, "NAMES_MAX", 8)
    _addr.NAMES.clear()
    for i in range(20):
        src = f"198.51.100.{i}"
        packet = build_tcp_packet(src, DST, TcpSegment(1, 2, 3, 4, ACK, 5, timestamps=(6, 7)))
        got = parse_ipv4_tcp(packet)
        assert got is not None and got[:2] == (src, DST)
        assert len(_addr.NAMES) <= 8
    assert _addr.NAMES[int.from_bytes(socket.inet_aton("198.51.100.19"), "big")] == "198.51.100.19"
