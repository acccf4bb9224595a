"""pcap files: our own round trips, files written by hand in every byte order and
resolution, files made by Wireshark's tools, and tshark reading what we write.

tshark facts these tests rely on (TShark 4.0, ``-T fields``): with
``-o tcp.check_checksum:TRUE`` the field ``tcp.checksum.status`` prints 1 for Good
and 0 for Bad (2 is Unverified, what you get without the option); ``_ws.malformed``
is empty for a well-formed packet; ``_ws.expert.severity`` is 2097152 (chat),
4194304 (note), 6291456 (warning) or 8388608 (error).
"""

from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.wire import (
    ACK,
    CWR,
    ECE,
    FIN,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PSH,
    RST,
    SYN,
    ParseError,
    PcapReader,
    PcapRecord,
    PcapWriter,
    TcpSegment,
    build_tcp_packet,
    ip_packet,
    parse_tcp,
    parse_tcp_packet,
)
from synack.wire.ipv6 import build_tcp6_packet

CLIENT, SERVER = "192.0.2.1", "198.51.100.2"
T0 = 1_700_000_000_000_000  # microseconds


def conversation() -> list[tuple[str, str, TcpSegment]]:
    """A consistent exchange: handshake, request, a lost-looking segment answered
    with SACK, a retransmission, FIN both ways; then an ECN SYN refused with RST."""
    c, s = (CLIENT, SERVER), (SERVER, CLIENT)
    request = b"GET / HTTP/1.0\r\n\r\n"
    return [
        (*c, TcpSegment(40000, 80, 1000, 0, SYN, 64240, mss=1460, sack_permitted=True,
                        timestamps=(100, 0), wscale=7)),
        (*s, TcpSegment(80, 40000, 5000, 1001, SYN | ACK, 65160, mss=1460,
                        sack_permitted=True, timestamps=(900, 100), wscale=7)),
        (*c, TcpSegment(40000, 80, 1001, 5001, ACK, 502, timestamps=(101, 900))),
        (*c, TcpSegment(40000, 80, 1001, 5001, PSH | ACK, 502, payload=request,
                        timestamps=(102, 900))),
        (*s, TcpSegment(80, 40000, 5001, 1019, ACK, 509, timestamps=(901, 102))),
        (*s, TcpSegment(80, 40000, 5001, 1019, ACK, 509, payload=b"a" * 1000,
                        timestamps=(902, 102))),
        (*s, TcpSegment(80, 40000, 6001, 1019, PSH | ACK, 509, payload=b"b" * 500,
                        timestamps=(902, 102))),
        (*c, TcpSegment(40000, 80, 1019, 5001, ACK, 502, timestamps=(103, 902),
                        sack_blocks=((6001, 6501),))),
        (*s, TcpSegment(80, 40000, 5001, 1019, ACK, 509, payload=b"a" * 1000,
                        timestamps=(903, 103))),
        (*c, TcpSegment(40000, 80, 1019, 6501, ACK, 502, timestamps=(104, 903))),
        (*c, TcpSegment(40000, 80, 1019, 6501, FIN | ACK, 502, timestamps=(105, 903))),
        (*s, TcpSegment(80, 40000, 6501, 1020, FIN | ACK, 509, timestamps=(904, 105))),
        (*c, TcpSegment(40000, 80, 1020, 6502, ACK, 502, timestamps=(106, 904))),
        (*c, TcpSegment(40001, 81, 7000, 0, SYN | ECE | CWR, 64240, mss=1460)),
        (*s, TcpSegment(81, 40001, 0, 7001, RST | ACK, 0)),
    ]  # fmt: skip


def packets() -> list[bytes]:
    return [build_tcp_packet(src, dst, seg) for src, dst, seg in conversation()]


def write_capture(
    target: Path | io.BytesIO, frames: list[bytes], linktype: int = LINKTYPE_RAW
) -> None:
    with PcapWriter(target, linktype) as writer:
        for i, frame in enumerate(frames):
            writer.write(frame, T0 + i * 1500)


# --- our own round trips -----------------------------------------------------------------


def test_file_header_bytes() -> None:
    buffer = io.BytesIO()
    PcapWriter(buffer).close()
    assert buffer.getvalue() == bytes.fromhex(
        "d4c3b2a1 0200 0400 00000000 00000000 00000400 65000000"
    )


def test_round_trip_through_a_path(tmp_path: Path) -> None:
    path = tmp_path / "capture.pcap"
    write_capture(path, packets())
    with PcapReader(path) as reader:
        assert reader.linktype == LINKTYPE_RAW and reader.snaplen == 262144
        records = list(reader)
    assert records == [PcapRecord(T0 + i * 1500, p, LINKTYPE_RAW) for i, p in enumerate(packets())]
    assert [parse_tcp_packet(r.data)[1] for r in records] == [s for _, _, s in conversation()]


def test_writer_leaves_a_caller_file_open() -> None:
    buffer = io.BytesIO()
    with PcapWriter(buffer, LINKTYPE_ETHERNET) as writer:
        writer.write(b"frame", 0)
        writer.write(b"another", 1_999_999)
    assert not buffer.closed
    records = list(PcapReader(io.BytesIO(buffer.getvalue())))
    assert records == [PcapRecord(0, b"frame", 1), PcapRecord(1_999_999, b"another", 1)]


def test_writer_cuts_at_the_snaplen_and_rejects_negative_times() -> None:
    buffer = io.BytesIO()
    writer = PcapWriter(buffer)
    writer.write(bytes(262145), 5)
    with pytest.raises(ValueError):
        writer.write(b"x", -1)
    data = buffer.getvalue()
    assert struct.unpack_from("<IIII", data, 24) == (0, 5, 262144, 262145)
    assert len(data) == 24 + 16 + 262144


def hand_made(
    order: str, nanoseconds: bool, records: list[tuple[int, int, bytes]], linktype: int = 101
) -> bytes:
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    out = struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, 65535, linktype)
    for seconds, fraction, data in records:
        out += struct.pack(order + "IIII", seconds, fraction, len(data), len(data)) + data
    return out


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanoseconds", [False, True])
def test_reads_both_byte_orders_and_resolutions(order: str, nanoseconds: bool) -> None:
    fraction = 123_456_789 if nanoseconds else 123_456
    data = hand_made(order, nanoseconds, [(7, fraction, b"abc"), (8, 0, b"")])
    reader = PcapReader(io.BytesIO(data))
    assert (reader.big_endian, reader.nanoseconds) == (order == ">", nanoseconds)
    assert list(reader) == [PcapRecord(7_123_456, b"abc", 101), PcapRecord(8_000_000, b"", 101)]


def test_link_type_ignores_the_fcs_bits() -> None:
    data = hand_made("<", False, [], linktype=0x1000_0000 | LINKTYPE_ETHERNET)
    assert PcapReader(io.BytesIO(data)).linktype == LINKTYPE_ETHERNET


# --- what is not a pcap file -------------------------------------------------------------


VALID = hand_made("<", False, [(1, 2, b"0123456789")])


@pytest.mark.parametrize(
    ("data", "field", "kind", "message"),
    [
        (b"", "pcap header", "truncated", "0 bytes"),
        (VALID[:23], "pcap header", "truncated", "23 bytes"),
        (b"GET / HTTP/1.1\r\nHost: example\r\n\r\n", "pcap header", "unsupported", "not a pcap"),
        (bytes.fromhex("0a0d0d0a") + bytes(40), "pcap header", "unsupported",
         "pcapng: convert with `editcap -F pcap`"),
        (VALID[:4] + b"\x03\x00" + VALID[6:], "pcap header", "bad version", "3.4 (expected 2.4)"),
    ],
)  # fmt: skip
def test_bad_file_headers(data: bytes, field: str, kind: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        PcapReader(io.BytesIO(data))
    assert (info.value.field, info.value.kind) == (field, kind)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        (VALID[:30], "truncated", "header of 6 bytes"),
        (VALID[:-1], "truncated", "9 of 10 bytes"),
        (VALID[:32] + struct.pack("<I", 2**31) + VALID[36:], "bad total length", "2147483648"),
    ],
)
def test_bad_records(data: bytes, kind: str, message: str) -> None:
    with pytest.raises(ParseError) as info:
        list(PcapReader(io.BytesIO(data)))
    assert (info.value.field, info.value.kind) == ("pcap record", kind)
    assert message in str(info.value)


def test_reader_closes_the_file_it_opened_when_the_header_is_bad(tmp_path: Path) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(b"nope")
    with pytest.raises(ParseError):
        PcapReader(path)


@settings(max_examples=300)
@given(st.binary(max_size=120), st.booleans())
def test_random_files_raise_only_parse_error(tail: bytes, with_header: bool) -> None:
    data = (VALID[:24] + tail) if with_header else tail
    try:
        for record in PcapReader(io.BytesIO(data)):
            ip_packet(record)
    except ParseError as exc:
        assert exc.field in {"pcap header", "pcap record"}


# --- link layers -------------------------------------------------------------------------

IP = build_tcp_packet(CLIENT, SERVER, TcpSegment(1, 2, 3, flags=ACK, window=9))
IP6 = build_tcp6_packet("2001:db8::1", "2001:db8::2", TcpSegment(1, 2, 3, flags=ACK, window=9))
MACS = bytes.fromhex("020000000001 020000000002")


@pytest.mark.parametrize(
    ("linktype", "frame", "expected"),
    [
        (LINKTYPE_RAW, IP, IP),
        (LINKTYPE_IPV4, IP, IP),
        (LINKTYPE_ETHERNET, MACS + b"\x08\x00" + IP, IP),
        (LINKTYPE_ETHERNET, MACS + b"\x81\x00\x00\x05\x08\x00" + IP, IP),
        (LINKTYPE_ETHERNET, MACS + b"\x86\xdd" + IP6, IP6),      # IPv6 (issue 14)
        (LINKTYPE_ETHERNET, MACS + b"\x88\xcc" + IP, None),      # LLDP: not IP
        (LINKTYPE_ETHERNET, MACS + b"\x08\x06" + bytes(28), None),
        (LINKTYPE_ETHERNET, MACS + b"\x81\x00\x00", None),
        (LINKTYPE_ETHERNET, MACS[:10], None),
        (LINKTYPE_LINUX_SLL, bytes.fromhex("0000 0001 0006 020000000001 0000 0800") + IP, IP),
        (LINKTYPE_LINUX_SLL, bytes.fromhex("0000 0001 0006 020000000001 0000 86dd") + IP6, IP6),
        (LINKTYPE_LINUX_SLL, bytes.fromhex("0000 0001 0006 020000000001 0000 0806") + IP, None),
        (LINKTYPE_LINUX_SLL, bytes(15), None),
        (LINKTYPE_LINUX_SLL2, bytes.fromhex("0800 0000 00000002 0001 00 06 020000000001 0000")
                              + IP, IP),
        (LINKTYPE_LINUX_SLL2, bytes(19), None),
        (LINKTYPE_NULL, b"\x02\x00\x00\x00" + IP, IP),
        (LINKTYPE_NULL, b"\x00\x00\x00\x02" + IP, IP),
        (LINKTYPE_NULL, b"\x18\x00\x00\x00" + IP6, IP6),          # AF_INET6 (NetBSD)
        (LINKTYPE_NULL, b"\x1e\x00\x00\x00" + IP6, IP6),          # AF_INET6 (macOS)
        (LINKTYPE_NULL, b"\x07\x00\x00\x00" + IP, None),
        (147, IP, None),
    ],
)  # fmt: skip
def test_ip_packet(linktype: int, frame: bytes, expected: bytes | None) -> None:
    assert ip_packet(PcapRecord(0, frame, linktype)) == expected


# --- files made by Wireshark's tools -------------------------------------------------------


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (make system-deps)")
    return path


def run(*argv: str) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def test_reads_a_nanosecond_file_from_editcap(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "us.pcap", tmp_path / "ns.pcap"
    write_capture(ours, packets())
    run(tool("editcap"), "-F", "nsecpcap", str(ours), str(theirs))
    reader = PcapReader(theirs)
    assert reader.nanoseconds
    assert list(reader) == list(PcapReader(ours))


def test_refuses_pcapng_from_editcap(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "us.pcap", tmp_path / "us.pcapng"
    write_capture(ours, packets())
    run(tool("editcap"), "-F", "pcapng", str(ours), str(theirs))
    with pytest.raises(ParseError, match="editcap -F pcap") as info:
        PcapReader(theirs)
    assert info.value.kind == "unsupported"


def test_reads_ethernet_frames_from_text2pcap(tmp_path: Path) -> None:
    dump, capture = tmp_path / "dump.txt", tmp_path / "eth.pcap"
    dump.write_text("".join(f"0000 {p.hex(' ')}\n\n" for p in packets()))
    run(tool("text2pcap"), "-q", "-F", "pcap", "-e", "0x800", str(dump), str(capture))
    records = list(PcapReader(capture))
    assert {r.linktype for r in records} == {LINKTYPE_ETHERNET}
    for record, packet, (_, _, seg) in zip(records, packets(), conversation(), strict=True):
        ip = ip_packet(record)
        assert ip is not None
        # text2pcap pads frames to Ethernet's 60-byte minimum; the IP total length cuts it off.
        assert ip[: len(packet)] == packet and not any(ip[len(packet) :])
        assert parse_tcp_packet(ip)[1] == seg


# --- tshark reads what we write ------------------------------------------------------------

FIELDS = [
    "tcp.checksum.status", "ip.checksum.status", "_ws.malformed", "_ws.expert.severity",
    "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
    "tcp.window_size_value", "tcp.len", "tcp.hdr_len", "tcp.option_kind",
    "tcp.options.mss_val", "tcp.options.wscale.shift", "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr", "tcp.options.sack_le", "tcp.options.sack_re",
    "tcp.checksum_calculated",
]  # fmt: skip
WARNING = 6291456


def tshark(path: Path) -> list[dict[str, str]]:
    argv = [tool("tshark"), "-n", "-r", str(path), "-T", "fields", "-E", "separator=|"]
    argv += ["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
    argv += ["-o", "tcp.relative_sequence_numbers:FALSE"]
    for name in FIELDS:
        argv += ["-e", name]
    return [dict(zip(FIELDS, line.split("|"), strict=True)) for line in run(*argv).splitlines()]


def opt(value: int | None) -> str:
    return "" if value is None else str(value)


@pytest.mark.parametrize("linktype", [LINKTYPE_RAW, LINKTYPE_ETHERNET])
def test_tshark_finds_every_checksum_good_and_nothing_malformed(
    tmp_path: Path, linktype: int
) -> None:
    path = tmp_path / "conversation.pcap"
    frames = packets()
    if linktype == LINKTYPE_ETHERNET:
        frames = [MACS + b"\x08\x00" + p for p in frames]
    write_capture(path, frames, linktype)
    rows = tshark(path)
    assert len(rows) == len(frames)
    for row, (_, _, seg) in zip(rows, conversation(), strict=True):
        assert row["tcp.checksum.status"] == "1", row  # Good
        assert row["ip.checksum.status"] == "1", row
        assert row["_ws.malformed"] == "", row
        severities = [int(s) for s in row["_ws.expert.severity"].split(",") if s]
        if not seg.has(RST):  # "Connection reset (RST)" is a warning in any capture
            assert max(severities, default=0) < WARNING, row
        # tshark decodes the same fields we encoded.
        assert row["tcp.srcport"] == str(seg.src_port) and row["tcp.dstport"] == str(seg.dst_port)
        assert (row["tcp.seq_raw"], row["tcp.ack_raw"]) == (str(seg.seq), str(seg.ack))
        assert int(row["tcp.flags"], 16) == seg.flags
        assert row["tcp.window_size_value"] == str(seg.window)
        assert row["tcp.len"] == str(len(seg.payload))
        ours = parse_tcp(build_tcp_packet(CLIENT, SERVER, seg)[20:])
        assert row["tcp.hdr_len"] == str(ours.data_offset * 4)
        assert row["tcp.option_kind"] == ",".join(map(str, ours.option_kinds))
        assert row["tcp.options.mss_val"] == opt(seg.mss)
        assert row["tcp.options.wscale.shift"] == opt(seg.wscale)
        tsval, tsecr = seg.timestamps or (None, None)
        assert (row["tcp.options.timestamp.tsval"], row["tcp.options.timestamp.tsecr"]) == (
            opt(tsval), opt(tsecr))  # fmt: skip
        assert row["tcp.options.sack_le"] == ",".join(str(le) for le, _ in seg.sack_blocks)
        assert row["tcp.options.sack_re"] == ",".join(str(re) for _, re in seg.sack_blocks)


def test_tshark_sees_a_corrupted_checksum_and_a_malformed_header(tmp_path: Path) -> None:
    good = packets()[3]
    corrupted = bytearray(good)
    corrupted[-1] ^= 0x20  # a payload byte: the TCP checksum no longer matches
    malformed = bytearray(good)
    malformed[32] = 0xF0 | malformed[32] & 0x0F  # data offset 15: past the end of the packet
    path = tmp_path / "bad.pcap"
    write_capture(path, [good, bytes(corrupted), bytes(malformed)])
    rows = tshark(path)
    assert [row["tcp.checksum.status"] for row in rows] == ["1", "0", "0"]  # Good, Bad, Bad
    assert [bool(row["_ws.malformed"]) for row in rows] == [False, False, True]
    # tshark and ParseError agree on what the checksum should have been.
    with pytest.raises(ParseError) as info:
        parse_tcp_packet(corrupted)
    assert info.value.kind == "bad checksum"
    assert f"expected {rows[1]['tcp.checksum_calculated']})" in str(info.value)
