"""`synack header`: every TCP header field of a capture, checked value by value."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from synack.cli import main
from synack.trace.capture import read_capture
from synack.wire.ipv4 import build_tcp_packet
from synack.wire.pcap import LINKTYPE_RAW, PcapReader, PcapWriter
from synack.wire.tcp import ACK, SYN, URG, TcpSegment

A, B = "192.0.2.1", "192.0.2.2"


@pytest.fixture(scope="module")
def worked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seeds' worked example (ISNs 100 and 300), as `synack demo --pcap` writes it."""
    from synack.demo.scenarios import SCENARIOS

    outcome = SCENARIOS["worked-example"](1)
    path = tmp_path_factory.mktemp("header") / "worked.pcap"
    assert outcome.net is not None
    outcome.net.write_pcap(path)
    return path


def header(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["header", *args]) == 0
    return capsys.readouterr().out


def blocks(out: str) -> list[str]:
    return out.rstrip("\n").split("\n\n")


def field(block: str, label: str) -> str:
    """The value printed after ``label`` (the label column is padded with spaces)."""
    m = re.search(rf"^  {re.escape(label)} +(.*)$", block, re.MULTILINE)
    assert m, f"no {label!r} in:\n{block}"
    return m.group(1)


def options(block: str) -> list[tuple[int, int, int, str]]:
    """(offset, kind, length, text) of every option line."""
    return [(int(o), int(k), int(n), text) for o, k, n, text in
            re.findall(r"^    @(\d+) +kind (\d+) +len (\d+) +(.*)$", block, re.MULTILINE)]


def flag(block: str, name: str) -> str:
    m = re.search(rf"^    [.01]{{4}} [.01]{{4}} {name}  (set|not set)", block, re.MULTILINE)
    assert m, name
    return m.group(1)


def write_pcap(path: Path, packets: list[bytes]) -> Path:
    with PcapWriter(path, LINKTYPE_RAW) as w:
        for i, packet in enumerate(packets):
            w.write(packet, i * 1000)
    return path


def raw_packets(path: Path) -> list[bytes]:
    with PcapReader(path) as r:
        return [rec.data for rec in r]


# ----------------------------------------------------------------------------- the worked example

def test_syn_fields(worked: Path, capsys: pytest.CaptureFixture[str]) -> None:
    syn = blocks(header(capsys, str(worked), "--packet", "1"))[0]
    seg = read_capture(worked).connections[0].segments[0].seg
    assert syn.startswith("packet 1: connection 1, 192.0.2.1:")
    assert "-> 192.0.2.2:80 (client -> server), SYN" in syn.splitlines()[0]
    assert field(syn, "source port") == str(seg.src_port)
    assert field(syn, "destination port") == "80"
    assert field(syn, "sequence number").startswith("100 (the ISN of this direction: relative 0)")
    assert field(syn, "acknowledgment number").startswith("0 (not valid: ACK is not set")
    assert field(syn, "data offset") == "10 x 4 = 40 bytes of header (20 fixed + 20 of options)"
    assert field(syn, "reserved").startswith("0000")
    assert field(syn, "flags") == "0x02 = SYN"
    assert flag(syn, "SYN") == "set"
    for name in ("CWR", "ECE", "URG", "ACK", "PSH", "RST", "FIN"):
        assert flag(syn, name) == "not set", name
    assert field(syn, "window").startswith("65535 (never scaled on a SYN")
    assert field(syn, "checksum") == (f"0x{seg.checksum:04x} correct "
                                      "(verified over the IPv4 pseudo-header)")
    assert field(syn, "urgent pointer").startswith("0 (meaningless: URG is not set")
    assert field(syn, "options") == "20 bytes"
    opts = options(syn)
    assert [o[:3] for o in opts] == [(20, 2, 4), (24, 4, 2), (26, 8, 10), (36, 1, 1), (37, 3, 3)]
    assert "maximum segment size 1460" in opts[0][3]
    assert opts[1][3].startswith("SACK permitted")
    assert opts[2][3].startswith(f"timestamps TSval {seg.timestamps[0]} TSecr 0")  # type: ignore[index]
    assert "no-operation" in opts[3][3]
    assert opts[4][3].startswith("window scale 7: this side's windows are x 128")
    assert field(syn, "padding").startswith("0 bytes")
    assert field(syn, "payload") == "0 bytes"
    assert field(syn, "IPv4 header").startswith("5 x 4 = 20 bytes; total length 60 = 20 IPv4"
                                                " + 40 TCP + 0 payload")
    assert field(syn, "headers") == "60 bytes = 20 IPv4 + 40 TCP (at least 20 + 20 = 40)"


def test_pure_ack_and_data_segment(worked: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ack, data = blocks(header(capsys, str(worked), "--packet", "3,4"))
    assert ack.startswith("packet 3: ") and data.startswith("packet 4: ")
    assert field(ack, "sequence number").startswith("101 (relative 1: counted from the ISN 100")
    assert field(ack, "acknowledgment number").startswith("301 (relative 1; valid: ACK is set")
    assert field(ack, "data offset").startswith("8 x 4 = 32 bytes")
    assert field(ack, "flags") == "0x10 = ACK" and flag(ack, "ACK") == "set"
    # Both SYNs offered window scale 7: the raw 512 means 65536 bytes.
    assert field(ack, "window").startswith("512 x 2^7 = 65536 bytes")
    assert [o[:3] for o in options(ack)] == [(20, 1, 1), (21, 1, 1), (22, 8, 10)]
    assert field(ack, "payload") == "0 bytes"
    assert field(ack, "headers").startswith("52 bytes = 20 IPv4 + 32 TCP")
    assert field(data, "flags") == "0x18 = PSH,ACK"
    assert flag(data, "PSH") == "set" and flag(data, "ACK") == "set"
    assert field(data, "payload") == "1000 bytes"
    assert field(data, "IPv4 header").startswith("5 x 4 = 20 bytes; total length 1052 = 20 IPv4"
                                                 " + 32 TCP + 1000 payload")
    assert field(data, "checksum").endswith("correct (verified over the IPv4 pseudo-header)")
    # The server's data: relative numbers from the server's ISN 300.
    server = blocks(header(capsys, str(worked), "--packet", "6"))[0]
    assert "(server -> client)" in server.splitlines()[0]
    assert field(server, "sequence number").startswith("301 (relative 1: counted from the ISN 300")
    assert field(server, "acknowledgment number").startswith("1101 (relative 1001;")


def test_default_is_every_segment_of_connection_1(worked: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = blocks(header(capsys, str(worked)))
    assert [b.split(":")[0] for b in out] == [f"packet {n}" for n in range(1, 16)]
    assert out == blocks(header(capsys, str(worked), "--conn", "1"))
    assert blocks(header(capsys, str(worked), "--packet", "2-4")) == out[1:4]


def test_hex_rows_follow_the_rfc_diagram(worked: Path, capsys: pytest.CaptureFixture[str]) -> None:
    syn = blocks(header(capsys, str(worked), "--packet", "1", "--hex"))[0]
    rows = re.findall(r"^ +(\d+): ((?:[0-9a-f]{2} ?){4}) +(.*)$", syn, re.MULTILINE)
    assert [int(r[0]) for r in rows] == list(range(0, 40, 4))
    packet = raw_packets(worked)[0]
    assert [bytes.fromhex(r[1]) for r in rows] == [packet[20 + i:24 + i] for i in range(0, 40, 4)]
    assert rows[0][2] == "source port | destination port"
    assert rows[3][2] == "data offset, reserved, flags | window"
    assert rows[5][2] == "MSS" and rows[6][2] == "SACK_PERM, TIMESTAMP"
    assert rows[7][2] == rows[8][2] == "TIMESTAMP" and rows[9][2] == "NOP, WSCALE"


def test_lang_zh_uses_the_seed_terms(worked: Path, capsys: pytest.CaptureFixture[str]) -> None:
    syn = blocks(header(capsys, str(worked), "--packet", "1", "--lang", "zh"))[0]
    assert syn.startswith("第 1 个包：连接 1")
    for label in ("源端口", "目的端口", "序号", "确认号", "数据偏移", "保留位", "标志位",
                  "窗口", "校验和", "紧急指针", "选项", "填充", "数据"):
        assert re.search(rf"^  {label} ", syn, re.MULTILINE), label
    assert field(syn, "数据偏移").startswith("10 x 4 = 40 字节首部")
    assert field(syn, "校验和").endswith("正确（含 IPv4 伪首部校验）")
    assert "同步标志位：开启时表明连接建立的标志" in syn
    assert field(syn, "首部合计").endswith("（至少 20 + 20 = 40 字节）")
    assert "最大报文段长度 1460" in syn


# ----------------------------------------------------------------------------- hand-made segments

def test_option_layout_that_needs_eol_padding(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # MSS (4 bytes) and a bare window scale (3, no NOP before it): 7 bytes, 1 of padding.
    syn = TcpSegment(40000, 80, 5000, flags=SYN | URG, window=1024, urgent=3, mss=536,
                     unknown_options=((3, b"\x02"), ))
    pcap = write_pcap(tmp_path / "eol.pcap", [build_tcp_packet(A, B, syn)])
    out = header(capsys, str(pcap), "--hex")
    assert field(out, "data offset") == "7 x 4 = 28 bytes of header (20 fixed + 8 of options)"
    assert [o[:3] for o in options(out)] == [(20, 2, 4), (24, 3, 3), (27, 0, 1)]
    assert "end of option list" in options(out)[2][3]
    assert field(out, "padding") == ("1 byte at offset 27 (EOL and zeros) make the header "
                                     "28 = 7 x 4")
    assert field(out, "urgent pointer").startswith("3 (URG set: urgent data ends 3 bytes after")
    assert flag(out, "URG") == "set"
    assert re.search(r"^    24: 03 03 02 00  WSCALE, EOL \+ padding$", out, re.MULTILINE)


def test_unknown_kind_sack_blocks_and_no_handshake(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    seg = TcpSegment(40000, 80, 7000, ack=9000, flags=ACK, window=300,
                     sack_blocks=((9100, 9200),), unknown_options=((30, b"\xab\xcd"),))
    pcap = write_pcap(tmp_path / "mid.pcap", [build_tcp_packet(A, B, seg)])
    out = header(capsys, str(pcap))
    assert field(out, "sequence number").startswith("7000 (no SYN of this direction")
    assert field(out, "acknowledgment number").startswith("9000 (valid: ACK is set; peer's SYN")
    assert field(out, "window").startswith("300 (raw: the handshake is not in the capture")
    opts = options(out)
    assert [o[:3] for o in opts] == [(20, 1, 1), (21, 1, 1), (22, 5, 10), (32, 30, 4)]
    assert "SACK blocks 9100-9200" in opts[2][3]
    assert opts[3][3] == "kind 30 Multipath TCP (RFC 8684), 2 bytes of data abcd"
    assert field(out, "padding").startswith("0 bytes")


def test_corrupted_checksum_is_incorrect(worked: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    packets = raw_packets(worked)
    good = int.from_bytes(packets[2][36:38], "big")      # IPv4 20 + TCP checksum offset 16
    bad = bytearray(packets[2])
    bad[37] ^= 0x01
    pcap = write_pcap(tmp_path / "bad.pcap", [*packets[:2], bytes(bad), *packets[3:]])
    out = blocks(header(capsys, str(pcap), "--packet", "2,3"))
    assert field(out[0], "checksum").endswith("correct (verified over the IPv4 pseudo-header)")
    assert field(out[1], "checksum").startswith(
        f"0x{good ^ 1:04x} incorrect (should be 0x{good:04x};")
    zh = header(capsys, str(pcap), "--packet", "3", "--lang", "zh")
    assert f"0x{good ^ 1:04x} 错误（应为 0x{good:04x}" in zh


# ----------------------------------------------------------------------------- bad input

def failing(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    try:
        status = main(["header", *args])
    except SystemExit as exc:                 # argparse's own errors
        status = exc.code  # type: ignore[assignment]
    err = capsys.readouterr().err
    assert status not in (0, None), args
    assert err.startswith("synack: ") and err.count("\n") == 1, err
    return err


def test_bad_arguments_and_files(worked: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    w = str(worked)
    assert "no such file" in failing(capsys, str(tmp_path / "missing.pcap"))
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture at all")
    assert "junk.pcap" in failing(capsys, str(junk))
    # A file cut inside its second record: the first packet is shown, with one warning
    # (as tshark reads such a file).
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(worked.read_bytes()[:150])
    assert main(["header", str(cut)]) == 0
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "cut short after packet 1" in err, err
    assert "seq" in out
    assert "'0' is not a packet number" in failing(capsys, w, "--packet", "0")
    assert "'x' is not a packet number" in failing(capsys, w, "--packet", "1,x")
    assert "'5-3' is not a packet number" in failing(capsys, w, "--packet", "5-3")
    assert "the file has packets 1 to 15" in failing(capsys, w, "--packet", "16")
    assert "the file has connections 1 to 1" in failing(capsys, w, "--conn", "2")
    assert "connections are numbered from 1" in failing(capsys, w, "--conn", "0")
    assert "--lang" in failing(capsys, w, "--lang", "fr")
    assert "not allowed with" in failing(capsys, w, "--packet", "1", "--conn", "1")
    empty = write_pcap(tmp_path / "empty.pcap", [])
    assert "no TCP connections in 0 packets" in failing(capsys, str(empty))


def test_packets_that_are_not_tcp_segments(worked: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    packets = raw_packets(worked)
    icmp = bytearray(packets[0])
    icmp[9] = 1                                          # protocol ICMP: not a TCP packet
    truncated_opt = bytearray(packets[0])
    truncated_opt[20 + 21] = 40                          # MSS option length 40: past the header
    pcap = write_pcap(tmp_path / "mixed.pcap", [bytes(icmp), bytes(truncated_opt), packets[2]])
    assert "packet 1 is not a TCP segment over IPv4 or IPv6" in failing(capsys, str(pcap), "--packet", "1")
    err = failing(capsys, str(pcap), "--packet", "2")
    assert "packet 2 cannot be dissected: TCP option MSS: bad option length 40" in err
    out = header(capsys, str(pcap), "--packet", "3")
    assert out.startswith("packet 3: connection 1")


def test_ipv4_tos_byte_shows_dscp_and_ecn(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # RFC 3168: the ECN field is the TOS byte's low two bits (Not-ECT, ECT(1), ECT(0), CE).
    syn = TcpSegment(src_port=40000, dst_port=80, seq=100, flags=SYN, window=65535)
    synack = TcpSegment(src_port=80, dst_port=40000, seq=300, ack=101, flags=SYN | ACK,
                        window=65535)
    data = TcpSegment(src_port=40000, dst_port=80, seq=101, ack=301, flags=ACK, window=512,
                      payload=b"x" * 10)
    pcap = write_pcap(tmp_path / "ecn.pcap", [
        build_tcp_packet(A, B, syn), build_tcp_packet(B, A, synack),
        build_tcp_packet(A, B, data, tos=2), build_tcp_packet(A, B, data, tos=0xB8 | 3),
        build_tcp_packet(A, B, data, tos=1)])
    out = blocks(header(capsys, str(pcap)))
    assert field(out[0], "type of service").startswith("0x00 (DSCP 0, ECN 0 = Not-ECT")
    assert field(out[2], "type of service").startswith("0x02 (DSCP 0, ECN 2 = ECT(0)")
    assert field(out[3], "type of service").startswith("0xbb (DSCP 46, ECN 3 = CE: congestion")
    assert field(out[4], "type of service").startswith("0x01 (DSCP 0, ECN 1 = ECT(1)")
    zh = blocks(header(capsys, str(pcap), "--packet", "4", "--lang", "zh"))[0]
    assert field(zh, "服务类型").startswith("0xbb（DSCP 46，ECN 3 = CE：经历拥塞")
