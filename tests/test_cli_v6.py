"""`synack ladder`, `header` and `plot` on IPv6 captures (issue 14): raw and Ethernet
(ethertype 0x86DD) link types, the IPv6 header dissected in English and Chinese."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from synack.cli import main
from synack.stack import Stack
from synack.trace.capture import read_capture
from synack.wire.ipv6 import EXT_DSTOPTS, IPv6Header, encode_ipv6, parse_ipv6
from synack.wire.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapWriter

A6, B6 = "2001:db8::1", "2001:db8::2"
MACS = bytes.fromhex("020000000002 020000000001")


def _transfer() -> list[bytes]:
    """A connection over IPv6 between two stacks: handshake, 20 kB one way, close."""
    a = Stack("192.0.2.1", addr6=A6, seed=1)
    b = Stack("192.0.2.2", addr6=B6, seed=2)
    lfd = b.socket(socket.AF_INET6)
    b.bind(lfd, ("::", 80))
    b.listen(lfd)
    c = a.socket(socket.AF_INET6)
    a.connect_ex(c, (B6, 80), now=0)
    seen: list[bytes] = []
    now = 0

    def pump() -> None:
        for _ in range(100):
            moved = False
            for x, y in ((a, b), (b, a)):
                for p in x.transmit(now=now):
                    moved = True
                    seen.append(p)
                    y.receive(p, now=now)
            if not moved:
                return

    pump()
    fd, _ = b.accept(lfd)
    sent = 0
    data = bytes(20_000)
    while sent < len(data) or b.readable(fd):
        if sent < len(data):
            sent += a.send(c, data[sent:], now=now)
        pump()
        if b.readable(fd):
            b.recv(fd, 1 << 20, now=now)
        now += 50_000
        a.tick(now=now)
        b.tick(now=now)
    a.close(c, now=now)
    pump()
    b.close(fd, now=now)
    pump()
    return seen


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    packets = _transfer()
    d = tmp_path_factory.mktemp("v6")
    out = {}
    for name, linktype, wrap in (("raw", LINKTYPE_RAW, lambda p: p),
                                 ("eth", LINKTYPE_ETHERNET, lambda p: MACS + b"\x86\xdd" + p)):
        path = out[name] = d / f"{name}.pcap"
        with PcapWriter(path, linktype) as w:
            for i, p in enumerate(packets):
                w.write(wrap(p), i * 1000)
    # One more: the SYN behind a destination-options header.
    hdr, body = parse_ipv6(packets[0])
    ext = IPv6Header(hdr.src, hdr.dst, hop_limit=hdr.hop_limit, flow_label=hdr.flow_label,
                     extensions=((EXT_DSTOPTS, bytes(6)),))
    path = out["ext"] = d / "ext.pcap"
    with PcapWriter(path, LINKTYPE_RAW) as w:
        w.write(encode_ipv6(ext, bytes(body)), 0)
    return out


@pytest.mark.parametrize("kind", ["raw", "eth"])
def test_capture_reads_ipv6_connections(captures: dict[str, Path], kind: str) -> None:
    cap = read_capture(captures[kind])
    assert cap.other == 0 and not cap.skipped
    (conn,) = cap.connections
    assert conn.a[0] == A6 and conn.b == (B6, 80)
    assert conn.name(1) == f"[{B6}]:80"
    assert conn.payload_bytes(0) == 20_000


def test_ladder_shows_the_ipv6_handshake(captures: dict[str, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ladder", str(captures["eth"])]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"connection 1 of 1: \[{A6}\]:\d+ -> \[{B6}\]:80", out), out
    assert "<mss 1440," in out, out                          # 1500 - 40 - 20
    assert "LISTEN -> SYN_RECEIVED" in out


def test_header_dissects_the_ipv6_fields(captures: dict[str, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["header", str(captures["raw"]), "--packet", "1"]) == 0
    en = capsys.readouterr().out
    flow = parse_ipv6(next(iter(_packets(captures["raw"]))))[0].flow_label
    for label, value in (("IPv6 header", "version 6, 40 bytes fixed"),
                         ("flow label", f"0x{flow:05x} (one label per flow"),
                         ("payload length", "40 = 0 extension + 40 TCP + 0 payload"),
                         ("next header", "6 (TCP)"), ("hop limit", "64"),
                         ("source address", A6), ("destination address", B6),
                         ("checksum", "correct (verified over the IPv6 pseudo-header"),
                         ("headers", "80 bytes = 40 IPv6 + 40 TCP")):
        assert _has(en, label, value), (label, en)
    assert flow != 0
    assert main(["header", str(captures["raw"]), "--packet", "1", "--lang", "zh"]) == 0
    zh = capsys.readouterr().out
    for label, value in (("IPv6 首部", "版本 6，固定 40 字节"), ("流标签", f"0x{flow:05x}"),
                         ("有效载荷长度", "40 = 0 扩展首部"), ("下一个首部", "6（TCP）"),
                         ("跳数限制", "64"), ("源地址", A6), ("目的地址", B6),
                         ("校验和", "正确（含 IPv6 伪首部校验")):
        assert _has(zh, label, value), (label, zh)


def test_header_names_the_extension_chain(captures: dict[str, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["header", str(captures["ext"])]) == 0
    out = capsys.readouterr().out
    assert "extension headers destination options (8 bytes)" in out, out
    assert re.search(r"^  next header\s+60 \(destination options\)", out, re.MULTILINE), out
    assert re.search(r"^  payload length\s+48 = 8 extension \+ 40 TCP", out, re.MULTILINE), out


def test_plot_draws_an_ipv6_connection(captures: dict[str, Path], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "v6.png"
    assert main(["plot", str(captures["eth"]), "-o", str(out), "--dir", f"{A6}->{B6}"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert out.stat().st_size > 10_000


def _has(out: str, label: str, value: str) -> bool:
    """A row ``label  value...`` (a checksum's hex value may come first)."""
    pattern = rf"^  {label}\s+(0x[0-9a-f]{{4}} )?{re.escape(value)}"
    return re.search(pattern, out, re.MULTILINE) is not None


def _packets(path: Path) -> list[bytes]:
    from synack.wire.pcap import PcapReader
    with PcapReader(path) as r:
        return [rec.data for rec in r]
