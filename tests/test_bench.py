"""`make bench` works: bench/run.py with tiny sizes prints its table and exits 0.

No figure is asserted (speed is measured by `make bench`, never by tests): only
that each row has a number or a stated reason, and that the run leaves no
namespace behind.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"
sys.path.insert(0, str(ROOT / "bench"))

import kclient
import peer
import tunfloor
from table import Figure, Row, Target

NUMBER = re.compile(r"\d+\.\d+ MB")
COUNT = re.compile(r"^\d+ ")       # a value cell of the connection, HTTP and memory rows


def _bench(*args: str, timeout: float = 60) -> list[str]:
    """Run bench/run.py; it must succeed and leave none of its namespaces behind
    (they are named after its pid, so other processes' namespaces do not count)."""
    proc = subprocess.Popen([sys.executable, str(RUN), "--runs", "1", "--scale", "0.01", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    tag = f"sa-bench{proc.pid % 10000}-"
    left = {n for n in _namespaces() if n.startswith(tag)}
    assert not left, f"bench/run.py left {left}"
    return out.splitlines()


def _row(lines: list[str], name: str) -> str:
    found = [line for line in lines if line.startswith(name + "  ")]
    assert len(found) == 1, (name, lines)
    return found[0]


def _cells(row: str) -> list[str]:
    return re.split(r"\s{2,}", row)


def _namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], check=False, capture_output=True,
                         text=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _measured_or_explained(lines: list[str], row: str) -> None:
    """A number in the value cell, or n/a with a note below the table saying why."""
    assert COUNT.match(_cells(row)[1]) or (
        "n/a" in row and any(line.startswith("note: ") for line in lines)), row


def test_header_round_trip() -> None:
    raw = peer.make_header("down", 123_456_789)
    assert len(raw) == peer.HEADER
    assert peer.parse_header(raw) == ("down", 123_456_789)
    assert peer.parse_header(peer.make_header("up", 0)) == ("up", 0)


def test_sim_rows_have_figures_and_ratios() -> None:
    lines = _bench("--only", "sim")
    base = _row(lines, "sim 0.2 MB, no offload")
    assert NUMBER.search(base)
    for name in ("sim 0.2 MB, csum offload", "sim 0.2 MB, csum+TSO"):
        row = _row(lines, name)
        assert "sim, no offload" in row
        assert re.search(r"\d+(\.\d+)?x$", row), row     # the ratio column


@pytest.mark.parametrize("args", [["--runs", "0"], ["--conns", "0"], ["--bound", "-1"]])
def test_bad_arguments_exit_nonzero(args: list[str]) -> None:
    res = subprocess.run([sys.executable, str(RUN), *args], check=False,
                         capture_output=True,
                         text=True, timeout=30, cwd=ROOT)
    assert res.returncode != 0
    assert len(res.stderr.strip().splitlines()) == 1


def test_rows_with_targets_and_lower_is_better() -> None:
    rate = Row("conn/s", Figure([300.0]), "conn/s", "kernel", Figure([1000.0]), Target(0.5))
    assert rate.cells()[-2:] == ["0.30x", ">= 0.5x not met"]
    rtt = Figure([900.0, 700.0, 800.0], lower_better=True)
    assert rtt.best == 700.0 and rtt.spread(0) == "700..900"
    mem = Row("memory", Figure([6000.0], lower_better=True), "B",
              target=Target(2048, "<=", "value"), digits=0)
    assert mem.cells()[1] == "6000 B" and mem.cells()[-2:] == ["-", "<= 2048 B not met"]
    syn = Row("SYN retrans", Figure([0.0], lower_better=True), "SYNs", "nginx",
              Figure([0.0], lower_better=True), Target(0, "<=", "value"), digits=0)
    assert syn.cells()[-2:] == ["-", "<= 0 SYNs met"]           # no ratio of 0 by 0
    assert Row("x", Figure([], "why"), "B", target=Target(1, "<=", "value")).cells()[-1] \
        == "<= 1 B ?"


def test_kernel_client_holds_idle_connections_and_times_round_trips() -> None:
    with socket.socket() as probe:          # a free port on loopback
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bench = ROOT / "bench"
    server = subprocess.Popen([sys.executable, str(bench / "kecho.py"), "127.0.0.1", str(port)],
                              stdout=subprocess.PIPE, text=True)
    holder = None
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "listening"
        holder = subprocess.Popen([sys.executable, str(bench / "kclient.py"), "hold",
                                   "127.0.0.1", str(port), "40", "30"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert holder.stdin is not None and holder.stdout is not None
        first = json.loads(holder.stdout.readline())
        assert first["held"] == 40 and "error" not in first, first
        doc = kclient.probe("127.0.0.1", port, 30, 30)
        assert doc["rtts"] == 30 and "error" not in doc, doc
        assert 0 < doc["p50_us"] <= doc["p99_us"]                  # type: ignore[operator]
        holder.stdin.close()
        assert json.loads(holder.stdout.readline()) == {"held": 40}
        assert holder.wait(30) == 0
        n, secs = kclient.rate("127.0.0.1", port, 30, 25)
        assert n == 25 and secs > 0
    finally:
        for proc in (holder, server):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)


def test_memory_rows_measure_against_the_issues_bounds() -> None:
    lines = _bench("--only", "mem")
    est = _row(lines, "memory per idle ESTABLISHED (100 x 2)")
    tw = _row(lines, "memory per TIME_WAIT entry (100)")
    assert re.match(r"\d+ B$", _cells(est)[1]) and re.match(r"\d+ B$", _cells(tw)[1])
    assert re.search(r"<= 2048 B (met|not met)$", est), est
    assert re.search(r"<= 256 B (met|not met)$", tw), tw


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                    reason="the wire rows need root and /dev/net/tun")
def test_wire_rows_measure_or_explain() -> None:
    before = subprocess.run(["ip", "netns", "list"], check=False, capture_output=True,
                            text=True).stdout
    lines = _bench("--only", "wire")
    for name in ("kernel->kernel veth, upload", "kernel->synack TAP, offload off",
                 "kernel->synack TAP, offload on", "synack->kernel TAP, offload off",
                 "synack->kernel TAP, offload on", "kernel->kernel veth, download"):
        assert NUMBER.search(_row(lines, name)), name
    for name in ("kernel->PyTCP TAP", "PyTCP->kernel TAP"):
        row = _row(lines, name)
        # PyTCP is in the `bench` extra, not `test`: a number, or n/a with a note saying why.
        assert NUMBER.search(re.split(r"\s{2,}", row)[1]) or (
            "n/a" in row and any(line.startswith("note: ") for line in lines)), row
    after = subprocess.run(["ip", "netns", "list"], check=False, capture_output=True,
                            text=True).stdout
    assert not {n for n in after.split() if n.startswith("sa-bench")} - set(before.split())


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                    reason="the connection and HTTP rows need root and /dev/net/tun")
def test_connection_and_http_rows_measure_or_explain() -> None:
    lines = _bench("--only", "conns", timeout=240) + _bench("--only", "http", timeout=240)
    for name in ("conn/s: kernel -> synack serve echo",
                 "conn/s: kernel -> do-nothing TUN responder", "conn/s: synack serve echo",
                 "echo RTT p50 beside 100 idle: synack",
                 "echo RTT p99 beside 100 idle: synack", "idle conns held of 100: synack",
                 "ab -k -c 50, 1024 B: synack serve http",
                 "ab -c 500 (no -k), SYN retrans: synack"):
        _measured_or_explained(lines, _row(lines, name))
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False)
    assert "sa-bench-nginx" not in ps.stdout        # our nginx, by its temporary prefix, is gone


def test_tun_ceiling_responder_answers_as_tcp_would() -> None:
    """bench/tunfloor.py's replies are well-formed TCP a kernel client accepts: checksums
    right, SYN,ACK acknowledging the SYN with MSS and the SYN's TSval echoed, data ACKed
    and echoed, FIN answered with FIN,ACK."""
    from synack.wire.ipv4 import build_tcp_packet, parse_tcp_packet
    from synack.wire.tcp import ACK, FIN, PSH, SYN, TcpSegment

    def client(flags: int, seq: int, payload: bytes = b"", **opts: object) -> bytes:
        seg = TcpSegment(src_port=40000, dst_port=7, seq=seq, ack=5000, flags=flags,
                         window=512, payload=payload, timestamps=(77, 0), **opts)  # type: ignore[arg-type]
        return build_tcp_packet("192.0.2.1", "192.0.2.2", seg)

    ip, synack = parse_tcp_packet(tunfloor._answer(client(SYN, 100, mss=1460, wscale=7), 0x12,
                                                    4000, 101))
    assert (ip.src, ip.dst, synack.src_port, synack.dst_port) == ("192.0.2.2", "192.0.2.1", 7,
                                                                  40000)
    assert (synack.flags, synack.seq, synack.ack, synack.mss) == (SYN | ACK, 4000, 101, 1460)
    assert synack.timestamps is not None and synack.timestamps[1] == 77
    _, echo = parse_tcp_packet(tunfloor._answer(client(ACK | PSH, 101, b"x"), 0x18, 4001, 102,
                                                b"x"))
    assert (echo.flags, echo.payload, echo.ack) == (ACK | PSH, b"x", 102)
    _, fin = parse_tcp_packet(tunfloor._answer(client(FIN | ACK, 102), 0x11, 4002, 103))
    assert (fin.flags, fin.seq, fin.ack) == (FIN | ACK, 4002, 103)
