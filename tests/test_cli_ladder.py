"""`synack ladder`: captures of synack and of the Linux kernel as ladder diagrams."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_trace_capture import worked_example_pcap

from synack.cli import main
from synack.sim import LinkParams
from synack.trace.capture import read_capture
from synack.wire.pcap import LINKTYPE_RAW, PcapWriter

SYNACK = [sys.executable, "-m", "synack.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SYNACK, *args], check=False, capture_output=True, text=True,
                          timeout=120)


def arrows(out: str) -> list[str]:
    """The arrow lines of a text ladder, without the time column."""
    return [line.split(None, 1)[1] for line in out.splitlines() if "|" in line and "-" in line]


# ----------------------------------------------------------------------------- synack's own

def test_ladder_of_the_worked_example_has_relative_numbers_and_states(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcap = worked_example_pcap(tmp_path)
    assert main(["ladder", str(pcap), "--width", "120"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("connection 1 of 1: 192.0.2.1:")
    lines = arrows(out)
    assert "SYN seq=0 len=0" in lines[0] and "-->|" in lines[0]
    assert "SYN,ACK seq=0 ack=1 len=0" in lines[1] and "|<-" in lines[1]
    assert "ACK seq=1 ack=1 len=0" in lines[2]
    assert "PSH,ACK seq=1 ack=1 len=1000" in out
    assert "FIN,ACK seq=1001 ack=2001 len=0" in out
    assert "PSH,ACK seq=2001 ack=1002 len=50" in out
    assert "FIN,ACK seq=2051 ack=1002 len=0" in out
    assert "ACK seq=1002 ack=2052 len=0" in out
    for change in ("CLOSED -> SYN_SENT", "LISTEN -> SYN_RECEIVED", "SYN_SENT -> ESTABLISHED",
                   "SYN_RECEIVED -> ESTABLISHED", "ESTABLISHED -> FIN_WAIT_1",
                   "ESTABLISHED -> CLOSE_WAIT", "FIN_WAIT_1 -> FIN_WAIT_2",
                   "CLOSE_WAIT -> LAST_ACK", "FIN_WAIT_2 -> TIME_WAIT", "LAST_ACK -> CLOSED"):
        assert change in out, change
    # The client's changes are on the left, the server's right-aligned.
    assert re.search(r"^\s*[\d.]+  ESTABLISHED -> FIN_WAIT_1", out, re.MULTILINE)
    assert re.search(r"\S\s{20,}ESTABLISHED -> CLOSE_WAIT", out)


def test_absolute_numbers_are_the_isns(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    pcap = worked_example_pcap(tmp_path)
    assert main(["ladder", str(pcap), "--absolute", "--width", "120"]) == 0
    out = capsys.readouterr().out
    assert "SYN seq=100 len=0" in out
    assert "SYN,ACK seq=300 ack=101" in out
    assert "FIN,ACK seq=1101 ack=2301" in out


def test_list_filter_and_conn_pick_connections(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from synack.demo.bulk import transfer

    pcap = tmp_path / "two.pcap"
    # Two captures glued into one file: the worked example (port 80) and a bulk transfer.
    a = read_raw(worked_example_pcap(tmp_path))
    transfer(20_000, seed=2, link=LinkParams(delay_us=5000), pcap=str(tmp_path / "b.pcap"))
    b = read_raw(tmp_path / "b.pcap")
    with PcapWriter(pcap, LINKTYPE_RAW) as w:
        for ts, data in a + [(ts + 10_000_000, d) for ts, d in b]:
            w.write(data, ts)
    assert main(["ladder", str(pcap), "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    assert re.match(r"\s+1\s+192\.0\.2\.1:\d+\s+->\s+192\.0\.2\.2:80\s", out[1])
    assert re.match(r"\s+2\s+192\.0\.2\.1:\d+\s+->\s+192\.0\.2\.2:5001\s", out[2])
    assert "TIME_WAIT / CLOSED" in out[1]
    assert " 20000 " in out[2]
    assert main(["ladder", str(pcap), "--filter", "port 5001"]) == 0
    assert capsys.readouterr().out.startswith("connection 2 of 2: ")
    assert main(["ladder", str(pcap), "--filter", "dst host 192.0.2.2 and dst port 80"]) == 0
    assert capsys.readouterr().out.startswith("connection 1 of 2: ")
    assert main(["ladder", str(pcap), "--conn", "2"]) == 0
    assert "len=1448" in capsys.readouterr().out
    for bad in (["--conn", "3"], ["--filter", "port 9"], ["--filter", "host nonsense"],
                ["--filter", "port 80 or port 81"], ["--width", "10"]):
        r = run("ladder", str(pcap), *bad)
        assert r.returncode != 0, bad
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("synack: "), (bad, r.stderr)


def read_raw(path: Path) -> list[tuple[int, bytes]]:
    from synack.wire.pcap import PcapReader

    with PcapReader(path) as r:
        return [(rec.ts_us, rec.data) for rec in r]


def test_svg_and_html_are_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import xml.etree.ElementTree as ET

    pcap = worked_example_pcap(tmp_path)
    svg, page = tmp_path / "l.svg", tmp_path / "l.html"
    assert main(["ladder", str(pcap), "--svg", str(svg), "--html", str(page)]) == 0
    # One line says what was written; the text ladder is not printed as well.
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and f"wrote {svg} and {page}" in out
    root = ET.parse(svg).getroot()                 # well-formed XML
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{ns}svg"
    texts = ["".join(t.itertext()) for t in root.iter(f"{ns}text")]
    arrows = [g for g in root.iter(f"{ns}g") if g.get("class") == "seg"]
    # One arrow per segment (15 in the worked example), each with its line and label.
    assert len(arrows) == 15
    assert all(len(list(g.iter(f"{ns}line"))) == 1 for g in arrows)
    assert any(t.startswith("SYN seq=0 len=0") for t in texts)
    assert any(t.startswith("FIN,ACK seq=2051 ack=1002") for t in texts)
    assert "FIN_WAIT_2 -> TIME_WAIT" in texts and "LAST_ACK -> CLOSED" in texts
    # --html is the interactive page of synack report (tests/test_report.py tests it).
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "</html>" in html
    assert '<script id="report-data" type="application/json">' in html
    assert "synack ladder: connection 1 of 1" in html


# ----------------------------------------------------------------------------- bad files

def test_bad_captures_give_one_line_and_nonzero_exit(tmp_path: Path) -> None:
    good = worked_example_pcap(tmp_path).read_bytes()
    cases = {
        "empty.pcap": b"",
        "text.pcap": b"this is not a capture at all, just some text\n",
        "short-header.pcap": good[:10],
        "huge-record.pcap": good[:24] + b"\0" * 8 + b"\xff\xff\xff\x7f" * 2,
        "pcapng-garbage.pcapng": b"\x0a\x0d\x0d\x0a" + b"\x01" * 30,
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        r = run("ladder", str(path))
        assert r.returncode != 0, name
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("synack: "), (name, r.stderr)
        assert "Traceback" not in r.stderr and str(path) in r.stderr, (name, r.stderr)
    r = run("ladder", str(tmp_path / "missing.pcap"))
    assert r.returncode != 0 and r.stderr.count("\n") == 1


def test_garbled_packets_are_reported_and_skipped(tmp_path: Path) -> None:
    recs = read_raw(worked_example_pcap(tmp_path))
    path = tmp_path / "garbled.pcap"
    with PcapWriter(path, LINKTYPE_RAW) as w:
        for i, (ts, data) in enumerate(recs):
            if i == 5:
                bad = bytearray(data)
                bad[32] = 0x20          # TCP data offset 2 words: less than the header
                data = bytes(bad)
            w.write(data, ts)
    r = run("ladder", str(path), "--width", "120")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == "synack: packet 6 skipped: TCP data offset: bad data offset " \
                               "2 (minimum 5)"
    assert len(arrows(r.stdout)) == len(recs) - 1


# ----------------------------------------------------------------------------- the kernel

NS = f"sa-lad-{os.getpid()}"

SERVER_AND_CLIENT = textwrap.dedent("""
    import socket, threading, time
    srv = socket.socket()
    srv.bind(("127.0.0.1", 5555))
    srv.listen(1)
    def serve():
        conn, _ = srv.accept()
        got = b""
        while len(got) < 3000:
            got += conn.recv(65536)
        conn.sendall(b"s" * 2000)
        while conn.recv(65536):
            pass
        time.sleep(0.3)      # sit in CLOSE_WAIT, so the client's FIN is ACKed alone
        conn.close()
    t = threading.Thread(target=serve)
    t.start()
    c = socket.create_connection(("127.0.0.1", 5555))
    c.sendall(b"c" * 3000)
    got = b""
    while len(got) < 2000:
        got += c.recv(65536)
    c.close()
    t.join()
    srv.close()
""")


@pytest.fixture
def kernel_capture(tmp_path: Path) -> Iterator[Path]:
    """A tcpdump capture of a kernel-to-kernel connection on a namespace's loopback."""
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.fail("this test needs root and iproute2 (the project's tests run as root)")
    tcpdump = shutil.which("tcpdump")
    assert tcpdump, "tcpdump is installed by `make system-deps`"
    pcap = tmp_path / "kernel.pcap"
    subprocess.run(["ip", "netns", "add", NS], check=True)
    dump = None
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True)
        dump = subprocess.Popen(
            # --immediate-mode: else packets wait in a TPACKET_V3 block that SIGINT discards.
            ["ip", "netns", "exec", NS, tcpdump, "-i", "lo", "--immediate-mode", "-U",
             "-w", str(pcap), "-Z", "root", "tcp port 5555"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert dump.stderr is not None
        line = dump.stderr.readline()               # "listening on lo, ..." once it captures
        assert "listening on" in line, line
        subprocess.run(["ip", "netns", "exec", NS, sys.executable, "-c", SERVER_AND_CLIENT],
                       check=True, timeout=30)
        dump.send_signal(signal.SIGINT)             # tcpdump flushes and exits on SIGINT
        dump.wait(timeout=10)
        yield pcap
    finally:
        if dump is not None and dump.poll() is None:
            dump.kill()
            dump.wait()
        subprocess.run(["ip", "netns", "del", NS], check=False)


def test_ladder_of_a_kernel_connection(kernel_capture: Path) -> None:
    r = run("ladder", str(kernel_capture), "--width", "130")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    lines = arrows(out)
    # Handshake, Wireshark's relative numbers.
    assert re.search(r"-- SYN seq=0 len=0 win=\d+ <mss 65495,sackOK,TS val \d+ ecr 0,wscale",
                     lines[0]), lines[0]
    assert "|<-" in lines[1] and re.search(r" SYN,ACK seq=0 ack=1 len=0 ", lines[1]), lines[1]
    assert re.search(r"-- ACK seq=1 ack=1 len=0 ", lines[2]), lines[2]
    # Data: 3000 bytes up (one segment on loopback's 64 KB MTU), 2000 back.
    assert re.search(r"ACK seq=1 ack=1 len=3000 ", out)
    assert re.search(r"ACK seq=1 ack=3001 len=2000 ", out)
    # Close: the client's FIN, the server's ACK of it, the server's FIN, the last ACK.
    assert re.search(r"-- FIN,ACK seq=3001 ack=2001 len=0 ", out)
    assert re.search(r"<-+ ACK seq=2001 ack=3002 len=0 ", out)
    assert re.search(r"<-+ FIN,ACK seq=2001 ack=3002 len=0 ", out)
    assert re.search(r"-- ACK seq=3002 ack=2002 len=0 ", out)
    order = ["CLOSED -> SYN_SENT", "LISTEN -> SYN_RECEIVED", "SYN_SENT -> ESTABLISHED",
             "SYN_RECEIVED -> ESTABLISHED", "ESTABLISHED -> FIN_WAIT_1",
             "ESTABLISHED -> CLOSE_WAIT", "FIN_WAIT_1 -> FIN_WAIT_2", "CLOSE_WAIT -> LAST_ACK",
             "FIN_WAIT_2 -> TIME_WAIT", "LAST_ACK -> CLOSED"]
    where = [out.find(s) for s in order]
    assert all(w >= 0 for w in where), list(zip(order, where, strict=True))
    assert where == sorted(where), list(zip(order, where, strict=True))
    # Nothing to mark on a clean loopback connection.
    assert "[" not in "".join(lines), [x for x in lines if "[" in x]
    cap = read_capture(kernel_capture)
    assert len(cap.connections) == 1 and not cap.skipped
    assert cap.connections[0].final_states() == ("TIME_WAIT", "CLOSED")
    assert cap.connections[0].b == ("127.0.0.1", 5555)
    # The same capture as pcapng (what Wireshark and dumpcap write) reads the same.
    editcap = shutil.which("editcap")
    assert editcap, "editcap comes with tshark (`make system-deps`)"
    ng = kernel_capture.with_suffix(".pcapng")
    subprocess.run([editcap, "-F", "pcapng", str(kernel_capture), str(ng)], check=True)
    assert run("ladder", str(ng), "--width", "130").stdout == out


def test_a_capture_cut_short_shows_its_good_packets_with_one_warning(tmp_path: Path) -> None:
    # tcpdump killed mid-write: tshark reads the packets before the cut and warns.
    good = worked_example_pcap(tmp_path).read_bytes()
    for name, data, n in (("cut-record.pcap", good[:-7], 14),           # inside the last packet
                          ("cut-record-header.pcap", good[:24 + 16 + 60 + 5], 1)):  # a header
        path = tmp_path / name
        path.write_bytes(data)
        r = run("ladder", str(path))
        assert r.returncode == 0, (name, r.stderr)
        assert r.stderr.count("\n") == 1, r.stderr
        assert f"cut short after packet {n}" in r.stderr and str(path) in r.stderr
        assert "Traceback" not in r.stderr and r.stdout.startswith("connection 1 of 1")
