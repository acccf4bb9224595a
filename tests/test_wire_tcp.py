"""TCP segments: round trips, Linux's option layout byte for byte, every malformed
shape with its ParseError, and fuzzing that nothing but ParseError escapes."""

from __future__ import annotations

import dataclasses
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.wire import (
    ACK,
    CWR,
    ECE,
    FIN,
    PSH,
    RST,
    SYN,
    URG,
    Flags,
    ParseError,
    TcpSegment,
    encode_tcp,
    flags_short,
    flags_str,
    internet_checksum,
    parse_tcp,
    pseudo_header_sum,
)

SRC, DST = "192.0.2.1", "198.51.100.2"

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
# Kinds parse_tcp keeps as unknown: not EOL, NOP, MSS, WSCALE, SACK_PERM, SACK, TIMESTAMP.
unknown_kinds = st.integers(6, 255).filter(lambda kind: kind != 8)


@st.composite
def segments(draw: st.DrawFn, max_payload: int = 200) -> TcpSegment:
    """Any encodable segment: every field, options drawn within the 40-byte limit."""
    budget = 40
    mss = draw(st.none() | u16)
    budget -= 4 if mss is not None else 0
    sack_permitted = draw(st.booleans())
    timestamps = draw(st.none() | st.tuples(u32, u32))
    budget -= 12 if timestamps is not None else 4 if sack_permitted else 0
    wscale = draw(st.none() | st.integers(0, 255))
    budget -= 4 if wscale is not None else 0
    most_blocks = max(0, min(4, (budget - 4) // 8))
    sack_blocks = draw(st.lists(st.tuples(u32, u32), max_size=most_blocks))
    budget -= 4 + 8 * len(sack_blocks) if sack_blocks else 0
    unknown = []
    while budget >= 2 and draw(st.booleans()):
        data = draw(st.binary(max_size=budget - 2))
        unknown.append((draw(unknown_kinds), data))
        budget -= 2 + len(data)
    return TcpSegment(
        src_port=draw(u16), dst_port=draw(u16), seq=draw(u32), ack=draw(u32),
        flags=draw(st.integers(0, 255)), window=draw(u16), urgent=draw(u16),
        payload=draw(st.binary(max_size=max_payload)), mss=mss, wscale=wscale,
        sack_permitted=sack_permitted, sack_blocks=tuple(sack_blocks), timestamps=timestamps,
        unknown_options=tuple(unknown), reserved=draw(st.integers(0, 15)),
    )  # fmt: skip


def raw_segment(
    options: bytes = b"", *, data_offset: int | None = None, payload: bytes = b""
) -> bytes:
    """A hand-built segment (checksum left zero) for malformed cases."""
    if data_offset is None:
        data_offset = 5 + (len(options) + 3) // 4
        options += bytes(-len(options) % 4)
    header = struct.pack("!HHIIBBHHH", 1234, 80, 1, 2, data_offset << 4, ACK, 100, 0, 0)
    return header + options + payload


# --- round trips -------------------------------------------------------------------------


@settings(max_examples=300)
@given(segments())
def test_round_trip(seg: TcpSegment) -> None:
    data = encode_tcp(seg, SRC, DST)
    back = parse_tcp(data, SRC, DST)
    assert back == seg
    assert back.data_offset * 4 == len(data) - len(seg.payload)
    assert back.checksum == int.from_bytes(data[16:18], "big")
    assert internet_checksum(data, pseudo_header_sum(SRC, DST, 6, len(data))) == 0
    assert type(back.payload) is bytes


@given(segments(max_payload=20))
def test_round_trip_from_memoryview_and_bytearray(seg: TcpSegment) -> None:
    data = encode_tcp(seg, SRC, DST)
    assert parse_tcp(memoryview(b"\0" + data)[1:], SRC, DST) == seg
    assert parse_tcp(bytearray(data), SRC, DST) == seg
    assert type(parse_tcp(memoryview(data)).payload) is bytes


@given(segments(max_payload=0))
def test_option_kinds_follow_the_wire(seg: TcpSegment) -> None:
    data = encode_tcp(seg, SRC, DST)
    kinds = parse_tcp(data).option_kinds
    # Walk the encoding the slow way: NOP and EOL are one byte, others carry a length.
    i, expected = 20, []
    while i < len(data):
        expected.append(data[i])
        if data[i] == 0:
            break
        i += 1 if data[i] == 1 else data[i + 1]
    assert kinds == tuple(expected)


def test_records_compare_by_content_not_by_parse_only_fields() -> None:
    seg = TcpSegment(1, 2, 3, flags=SYN, mss=1460)
    parsed = parse_tcp(encode_tcp(seg, SRC, DST))
    assert parsed.data_offset == 6 and parsed.checksum != 0 and parsed.option_kinds == (2,)
    assert parsed == seg
    assert hash(parsed) == hash(seg)
    assert TcpSegment(1, 2, 3, flags=Flags.SYN) == TcpSegment(1, 2, 3, flags=SYN)
    with pytest.raises(dataclasses.FrozenInstanceError):
        seg.seq = 4  # type: ignore[misc]


# --- Linux's option layout -------------------------------------------------------------


def test_linux_syn_layout_byte_for_byte() -> None:
    syn = TcpSegment(
        40000, 80, 0x01020304, flags=SYN, window=64240,
        mss=1460, sack_permitted=True, timestamps=(0x0A0B0C0D, 0), wscale=7,
    )  # fmt: skip
    data = encode_tcp(syn, SRC, DST)
    assert len(data) == 40
    assert data[12] >> 4 == 10  # data offset in words
    assert data[20:] == bytes.fromhex(
        "020405b4"  # MSS 1460
        "0402"  # SACK permitted
        "080a0a0b0c0d00000000"  # TS val ecr
        "01"  # NOP
        "030307"  # window scale 7
    )
    # ports 40000 -> 80, seq, ack 0, data offset 10, SYN, window 64240
    assert data[:16] == bytes.fromhex("9c400050 01020304 00000000 a002 faf0")
    assert data[18:20] == b"\0\0"  # urgent pointer


@pytest.mark.parametrize(
    ("seg", "options_hex"),
    [
        (TcpSegment(1, 2, 3, flags=SYN, mss=1460), "020405b4"),
        (TcpSegment(1, 2, 3, flags=SYN, mss=1460, timestamps=(1, 2), wscale=7),
         "020405b4 0101080a0000000100000002 01030307"),
        (TcpSegment(1, 2, 3, flags=SYN, mss=1460, sack_permitted=True, wscale=14),
         "020405b4 01010402 0103030e"),
        (TcpSegment(1, 2, 3, flags=SYN | ACK, mss=1400, sack_permitted=True, timestamps=(5, 6)),
         "02040578 0402080a0000000500000006"),
        (TcpSegment(1, 2, 3, flags=ACK, timestamps=(7, 8)), "0101080a0000000700000008"),
        (TcpSegment(1, 2, 3, flags=ACK, timestamps=(7, 8), sack_blocks=((10, 20), (30, 40))),
         "0101080a0000000700000008 01010512 0000000a00000014 0000001e00000028"),
        (TcpSegment(1, 2, 3, flags=ACK, sack_blocks=((1, 2),)), "0101050a 0000000100000002"),
        (TcpSegment(1, 2, 3, flags=ACK, unknown_options=((30, b"\x01"),)), "1e030100"),
        (TcpSegment(1, 2, 3, flags=ACK, timestamps=(0, 0), unknown_options=((254, b""),)),
         "0101080a0000000000000000 fe020000"),
        (TcpSegment(1, 2, 3, flags=ACK), ""),
    ],
)  # fmt: skip
def test_option_layouts(seg: TcpSegment, options_hex: str) -> None:
    data = encode_tcp(seg, SRC, DST)
    options = bytes.fromhex(options_hex)
    assert data[20:] == options
    assert data[12] >> 4 == 5 + len(options) // 4


def test_full_sized_option_block() -> None:
    seg = TcpSegment(1, 2, 3, flags=ACK, sack_blocks=((1, 2), (3, 4), (5, 6), (7, 8)))
    data = encode_tcp(seg, SRC, DST)
    assert len(data) == 56 and data[12] >> 4 == 14
    seg = TcpSegment(1, 2, 3, flags=ACK, timestamps=(1, 2), sack_blocks=((1, 2),) * 3)
    assert len(encode_tcp(seg, SRC, DST)) == 60  # the largest header there is


@pytest.mark.parametrize(
    "change",
    [
        {"src_port": 65536}, {"dst_port": -1}, {"seq": 2**32}, {"ack": -1}, {"flags": 256},
        {"window": 65536}, {"urgent": -1}, {"reserved": 16}, {"reserved": -1},
        {"mss": 65536}, {"wscale": 256}, {"timestamps": (2**32, 0)},
        {"sack_blocks": ((0, 2**32),)}, {"unknown_options": ((256, b""),)},
        {"unknown_options": ((30, bytes(39)),)},
        {"timestamps": (1, 2), "sack_blocks": ((1, 2),) * 4},
        {"mss": 1, "sack_permitted": True, "timestamps": (1, 2), "wscale": 1,
         "sack_blocks": ((1, 2),) * 3},
    ],
)  # fmt: skip
def test_encode_rejects_what_does_not_fit(change: dict[str, object]) -> None:
    seg = dataclasses.replace(TcpSegment(1, 2, 3), **change)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        encode_tcp(seg, SRC, DST)


def test_encode_rejects_bad_addresses() -> None:
    with pytest.raises(ValueError, match="IPv4 address"):
        encode_tcp(TcpSegment(1, 2, 3), "10.1", DST)


# --- parsing options -------------------------------------------------------------------


def test_eol_ends_the_option_list() -> None:
    seg = parse_tcp(raw_segment(b"\x01\x00\x02\x04\x05\xb4\xff\xff"))
    assert seg.option_kinds == (1, 0)
    assert seg.mss is None and seg.unknown_options == ()


def test_unknown_options_are_skipped_by_length_and_kept() -> None:
    seg = parse_tcp(raw_segment(b"\x1e\x04\xab\xcd\x13\x02\x02\x04\x05\xb4"))
    assert seg.unknown_options == ((30, b"\xab\xcd"), (19, b""))
    assert seg.mss == 1460
    assert seg.option_kinds == (30, 19, 2, 0)  # the last 0 is padding read as EOL


def test_payload_follows_the_options() -> None:
    seg = parse_tcp(raw_segment(b"\x01\x01\x04\x02", payload=b"data"))
    assert seg.sack_permitted and seg.payload == b"data" and seg.data_offset == 6


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        (b"\x02\x03\x05\xb4", "TCP option MSS", "TCP option MSS: bad option length 3 (expected 4)"),
        (b"\x02\x05\x05\xb4\x00\x00\x00\x00", "TCP option MSS", "5 (expected 4)"),
        (b"\x01\x01\x01\x02", "TCP option MSS", "no length byte"),
        (b"\x02\x01\x00\x00", "TCP option MSS", "1 (minimum 2)"),
        (b"\x1e\x00\x00\x00", "TCP option kind 30", "0 (minimum 2)"),
        (b"\x1e\x08\x00\x00", "TCP option kind 30", "8 (only 4 bytes of options left)"),
        (b"\x03\x04\x07\x00", "TCP option WSCALE", "4 (expected 3)"),
        (b"\x03\x02\x01\x01", "TCP option WSCALE", "2 (expected 3)"),
        (b"\x04\x03\x00\x00", "TCP option SACK_PERM", "3 (expected 2)"),
        (b"\x08\x08" + bytes(6), "TCP option TIMESTAMP", "8 (expected 10)"),
        (b"\x01\x01\x08\x0a" + bytes(4), "TCP option TIMESTAMP", "10 (only 6 bytes"),
        (b"\x05\x02\x00\x00", "TCP option SACK", "2 (expected 2 + 8n, n >= 1)"),
        (b"\x05\x09" + bytes(10), "TCP option SACK", "9 (expected 2 + 8n"),
        (b"\x05\x11" + bytes(18), "TCP option SACK", "17 (expected 2 + 8n"),
        (b"\x01\x01\x05\x2a" + bytes(32), "TCP option SACK", "42 (only 34 bytes"),
    ],
)  # fmt: skip
def test_bad_option_lengths(options: bytes, field: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_tcp(raw_segment(options))
    assert info.value.kind == "bad option length"
    assert info.value.field == field
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_truncated() -> None:
    with pytest.raises(ParseError) as info:
        parse_tcp(raw_segment()[:19])
    assert (info.value.field, info.value.kind) == ("TCP header", "truncated")
    assert str(info.value) == "TCP header: truncated (19 bytes, need at least 20)"


@pytest.mark.parametrize(("data_offset", "extra"), [(0, 0), (4, 0), (6, 0), (15, 36)])
def test_bad_data_offset(data_offset: int, extra: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_tcp(raw_segment(bytes(extra), data_offset=data_offset))
    assert (info.value.field, info.value.kind) == ("TCP data offset", "bad data offset")


def test_bad_checksum_names_the_expected_value() -> None:
    good = encode_tcp(TcpSegment(1, 2, 3, flags=ACK, payload=b"abc"), SRC, DST)
    checksum = int.from_bytes(good[16:18], "big")
    bad = good[:16] + (checksum ^ 0x1234).to_bytes(2, "big") + good[18:]
    with pytest.raises(ParseError) as info:
        parse_tcp(bad, SRC, DST)
    assert (info.value.field, info.value.kind) == ("TCP checksum", "bad checksum")
    assert f"(expected 0x{checksum:04x})" in str(info.value)
    # Not verified without addresses or when told not to.
    assert parse_tcp(bad).payload == b"abc"
    assert parse_tcp(bad, SRC, DST, verify_checksum=False).checksum == checksum ^ 0x1234


def test_checksum_covers_the_pseudo_header() -> None:
    data = encode_tcp(TcpSegment(1, 2, 3), SRC, DST)
    with pytest.raises(ParseError):
        parse_tcp(data, SRC, "198.51.100.3")


def test_either_zero_checksum_is_accepted() -> None:
    # 0x0000 and 0xFFFF are both zero in one's complement (RFC 1624 section 3).
    # A payload word equal to the checksum without it brings the sum to 0xFFFF.
    base = encode_tcp(TcpSegment(1, 2, 3, payload=b"\0\0"), SRC, DST)
    seg = TcpSegment(1, 2, 3, payload=base[16:18])
    data = encode_tcp(seg, SRC, DST)
    assert data[16:18] == b"\0\0"
    assert parse_tcp(data, SRC, DST) == seg
    assert parse_tcp(data[:16] + b"\xff\xff" + data[18:], SRC, DST) == seg


# --- fuzzing ---------------------------------------------------------------------------


def parse_or_parse_error(data: bytes, *args: str) -> None:
    try:
        parse_tcp(data, *args)
    except ParseError as exc:
        assert exc.kind in {"truncated", "bad data offset", "bad option length", "bad checksum"}


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_random_bytes_raise_only_parse_error(data: bytes) -> None:
    parse_or_parse_error(data)
    parse_or_parse_error(data, SRC, DST)


@settings(max_examples=500)
@given(st.binary(min_size=20, max_size=70), st.integers(5, 15))
def test_random_options_raise_only_parse_error(data: bytes, data_offset: int) -> None:
    # A plausible data offset gets random bytes past the header checks into option parsing.
    data = data[:12] + bytes([data_offset << 4 | data[12] & 0x0F]) + data[13:]
    parse_or_parse_error(data)


@settings(max_examples=300)
@given(segments(max_payload=8), st.lists(st.tuples(st.integers(0, 100), st.integers(0, 255))))
def test_mutated_segments_raise_only_parse_error(
    seg: TcpSegment, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(encode_tcp(seg, SRC, DST))
    for position, value in edits:
        data[position % len(data)] = value
    parse_or_parse_error(bytes(data))
    parse_or_parse_error(bytes(data), SRC, DST)
    parse_or_parse_error(bytes(data[: len(data) // 2]))


# --- flags -----------------------------------------------------------------------------


def test_flag_constants_match_the_enum() -> None:
    assert [FIN, SYN, RST, PSH, ACK, URG, ECE, CWR] == [int(f) for f in Flags]
    assert [f.name for f in Flags] == ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"]
    assert type(SYN) is int


@pytest.mark.parametrize(
    ("flags", "long", "short"),
    [
        (SYN, "SYN", "S"), (SYN | ACK, "SYN,ACK", "S."), (ACK, "ACK", "."),
        (PSH | ACK, "PSH,ACK", "P."), (FIN | ACK, "FIN,ACK", "F."),
        (FIN | PSH | ACK, "FIN,PSH,ACK", "FP."), (RST, "RST", "R"), (RST | ACK, "RST,ACK", "R."),
        (SYN | ECE | CWR, "SYN,ECE,CWR", "SEW"), (URG | ACK, "ACK,URG", ".U"),
        (0, "none", "none"), (0xFF, "FIN,SYN,RST,PSH,ACK,URG,ECE,CWR", "FSRP.UEW"),
    ],
)  # fmt: skip
def test_flag_strings(flags: int, long: str, short: str) -> None:
    assert flags_str(flags) == long
    assert flags_short(flags) == short


def test_seg_len_and_has() -> None:
    assert TcpSegment(1, 2, 3, flags=SYN).seg_len == 1
    assert TcpSegment(1, 2, 3, flags=ACK, payload=b"abc").seg_len == 3
    assert TcpSegment(1, 2, 3, flags=SYN | FIN | ACK, payload=b"abc").seg_len == 5
    seg = TcpSegment(1, 2, 3, flags=SYN | ACK)
    assert seg.has(SYN) and seg.has(SYN | ACK) and seg.has(Flags.ACK)
    assert not seg.has(FIN) and not seg.has(SYN | FIN)
