"""synack against the Linux kernel over IPv6 (issue 14): echo, curl, nmap, ping, tshark.

Root only, as tests/test_interop.py: each test runs ``synack serve``/``connect``/
``ping`` as a subprocess whose lab (a TAP into the namespace made here) puts the
kernel at 2001:db8::1/64 (and 192.0.2.1) and synack at 2001:db8::2 (and
192.0.2.2); the kernel finds synack's MAC by Neighbor Discovery. Everything made
is removed, every process started is ended by pid, and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_interop import (  # the lab's helpers, shared with the IPv4 interop tests
    NS,
    _env,
    _stop,
    figure,
    generated_sha256,
    kernel_process,
    namespace,  # noqa: F401 - the lab namespace (autouse fixture)
    need,
    ns,
    nstat,
    sh,
    tap_name,
)

ROOT = Path(__file__).resolve().parent.parent
SYNACK = [sys.executable, "-m", "synack.cli"]
KERNEL6, US6 = "2001:db8::1", "2001:db8::2"
MB20 = 20_000_000

@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    return d


pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
    reason="interop tests need root and /dev/net/tun")


@contextlib.contextmanager
def synack_serve(run_dir: Path, *args: str, offload: bool = False,
                 ) -> Iterator[subprocess.Popen[bytes]]:
    """``synack serve ARGS --netns NS`` until the block ends; waits until it listens and
    the kernel's address is usable."""
    cmd = [*SYNACK, "serve", *args, "--netns", NS, "--offload" if offload else "--no-offload"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=_env(run_dir))
    errors: list[bytes] = []
    try:
        ready = threading.Event()

        def watch() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                errors.append(line)
                if b"server on" in line:
                    ready.set()

        threading.Thread(target=watch, daemon=True).start()
        if not ready.wait(20):
            _stop(proc)
            raise AssertionError(f"synack serve did not start: {b''.join(errors)!r}")
        assert f"[{US6}]".encode() in b"".join(errors), errors
        yield proc
    finally:
        _stop(proc)
        assert not any(b"Traceback" in e for e in errors), errors


def csum_errors() -> int:
    return nstat("TcpInCsumErrors") + nstat("Icmp6InCsumErrors")


KERNEL_ECHO_CLIENT = r"""
import hashlib, random, socket, sys, threading, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = random.Random(42).randbytes(n)
print("ready", flush=True)
s = socket.create_connection((host, port), timeout=60)
assert s.family == socket.AF_INET6
mss = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
got, count = hashlib.sha256(), [0]
def reader():
    while (b := s.recv(1 << 20)):
        got.update(b); count[0] += len(b)
t0 = time.monotonic()
th = threading.Thread(target=reader); th.start()
s.sendall(data); s.shutdown(socket.SHUT_WR); th.join()
print(count[0], got.hexdigest() == hashlib.sha256(data).hexdigest(), time.monotonic() - t0, mss)
"""

KERNEL_ECHO_SERVER6 = r"""
import socket, sys, threading
s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("::", int(sys.argv[1]))); s.listen(16)
print("ready", flush=True)
def serve(c):
    with c:
        while (b := c.recv(1 << 20)):
            c.sendall(b)
while True:
    c, peer = s.accept()
    print("peer", peer[0], c.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG), flush=True)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


# ------------------------------------------------------------------ transfers


@pytest.mark.parametrize("offload", [False, True], ids=["no-offload", "offload"])
def test_kernel_client_echo_20mb_over_ipv6(run_dir: Path, offload: bool) -> None:
    need("ip", "nstat")
    with synack_serve(run_dir, "echo", "--port", "7", offload=offload):
        before = csum_errors()
        with kernel_process(KERNEL_ECHO_CLIENT, US6, "7", str(MB20)) as proc:
            out, _ = proc.communicate(timeout=180)
        assert csum_errors() == before
    count, ok, secs, mss = out.split()
    assert int(count) == MB20 and ok == "True", out
    # The kernel's MSS toward synack: synack announced 1440 (1500 - 40 - 20), less the
    # 12 bytes of timestamps.
    assert int(mss) == 1428, out
    figure(f"IPv6 echo 20 MB, kernel client -> synack serve echo "
           f"({'offload' if offload else 'no offload'}): {float(secs):.2f} s, "
           f"{MB20 / float(secs) / 1e6:.1f} MB/s each way")


@pytest.mark.parametrize("offload", [False, True], ids=["no-offload", "offload"])
def test_synack_client_kernel_echo_over_ipv6(run_dir: Path, tmp_path: Path,
                                             offload: bool) -> None:
    need("nstat")
    data = random.Random(7).randbytes(MB20)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    with kernel_process(KERNEL_ECHO_SERVER6, "7") as server, src.open("rb") as stdin:
        before = csum_errors()
        t0 = time.monotonic()
        res = subprocess.run([*SYNACK, "connect", KERNEL6, "7", "--netns", NS,
                              "--offload" if offload else "--no-offload"],
                             stdin=stdin, capture_output=True, timeout=300, env=_env(run_dir),
                             check=False)
        secs = time.monotonic() - t0
        assert csum_errors() == before
        assert server.stdout is not None
        peer = server.stdout.readline().split()
    assert res.returncode == 0, res.stderr
    assert hashlib.sha256(res.stdout).digest() == hashlib.sha256(data).digest()
    assert peer[:2] == ["peer", US6] and int(peer[2]) == 1428, peer
    figure(f"IPv6 synack connect -> kernel echo, 20 MB "
           f"({'offload' if offload else 'no offload'}): {secs:.2f} s including setup, "
           f"{MB20 / secs / 1e6:.1f} MB/s each way")


@pytest.mark.parametrize("offload", [False, True], ids=["no-offload", "offload"])
def test_curl_over_ipv6(run_dir: Path, tmp_path: Path, offload: bool) -> None:
    need("curl", "nstat")
    n = 20 * 1024 * 1024
    out = tmp_path / "dl.bin"
    with synack_serve(run_dir, "http", offload=offload):
        before = csum_errors()
        res = ns("curl", "-g", "-sS", "--max-time", "120", "-o", str(out), "-w",
                 "%{http_code} %{size_download} %{speed_download} %{remote_ip}",
                 f"http://[{US6}]/bytes/{n}", timeout=150)
        assert csum_errors() == before
    code, size, speed, remote = res.stdout.split()
    assert (code, int(size), remote) == ("200", n, US6), res.stdout
    assert hashlib.sha256(out.read_bytes()).hexdigest() == generated_sha256(n)
    figure(f"IPv6 curl 20 MiB from synack serve http ({'offload' if offload else 'no offload'})"
           f": {float(speed) / 1e6:.1f} MB/s")


def test_tun_carries_ipv6_without_neighbor_discovery(run_dir: Path) -> None:
    """A TUN link (--tun): IP only, no Ethernet, so no ND; echo and ping over IPv6."""
    n = 2_000_000
    with synack_serve(run_dir, "echo", "--port", "7", "--tun"):
        res = ns("ping", "-6", "-c", "2", "-i", "0.2", "-W", "5", US6, timeout=60, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        with kernel_process(KERNEL_ECHO_CLIENT, US6, "7", str(n)) as proc:
            out, _ = proc.communicate(timeout=120)
    count, ok, _secs, mss = out.split()
    assert int(count) == n and ok == "True" and int(mss) == 1428, out


# ------------------------------------------------------------------ scanners and ping


def test_nmap_6_sees_exactly_synacks_open_ports(run_dir: Path) -> None:
    need("nmap")
    with synack_serve(run_dir, "discard", "--port", "9", "--port", "22", "--port", "8080"):
        res = ns("nmap", "-6", "-sS", "-n", "-Pn", "-p", "1-1024,8080", "-oG", "-", US6,
                 timeout=180)
    ports = re.search(r"Ports: (.*?)(\t|$)", res.stdout, re.MULTILINE)
    assert ports, res.stdout
    opened = {int(p.split("/")[0]) for p in ports.group(1).split(", ") if "/open/" in p}
    assert opened == {9, 22, 8080}, res.stdout
    assert "Ignored State: closed (1022)" in res.stdout, res.stdout


KERNEL_LISTENERS6 = r"""
import socket, sys, time
socks = []
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::", int(p))); s.listen(16); socks.append(s)
print("ready", flush=True)
time.sleep(600)
"""


def test_synack_scan_of_the_kernel_over_ipv6(run_dir: Path) -> None:
    listening = {22, 80, 5000}
    with kernel_process(KERNEL_LISTENERS6, *map(str, sorted(listening))):
        res = subprocess.run([*SYNACK, "scan", KERNEL6, "-p", "1-1024,5000", "--netns", NS],
                             capture_output=True, text=True, timeout=120, env=_env(run_dir),
                             check=False)
    assert res.returncode == 0, res.stderr
    ours = {int(m.group(1)) for m in re.finditer(r"^(\d+)/tcp\s+open\s", res.stdout, re.MULTILINE)}
    assert ours == listening, res.stdout
    assert f"synack scan report for {KERNEL6}" in res.stdout
    assert "Not shown: 1022 closed tcp ports (reset)" in res.stdout, res.stdout


def test_ping6_both_ways(run_dir: Path) -> None:
    with synack_serve(run_dir, "discard", "--port", "9"):
        res = ns("ping", "-6", "-c", "3", "-i", "0.2", "-W", "5", US6, timeout=60, check=False)
        assert res.returncode == 0 and "3 received" in res.stdout, res.stdout + res.stderr
    out = subprocess.run([*SYNACK, "ping", KERNEL6, "-c", "3", "-i", "0.2", "--netns", NS],
                         capture_output=True, text=True, timeout=60, env=_env(run_dir),
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"PING {KERNEL6} ({KERNEL6}) 56 data bytes" in out.stdout, out.stdout
    assert len(re.findall(rf"64 bytes from {KERNEL6}: icmp_seq=\d ttl=64", out.stdout)) == 3, \
        out.stdout
    assert "3 packets transmitted, 3 received, 0% packet loss" in out.stdout, out.stdout


def test_ipv6_capture_is_clean(run_dir: Path, tmp_path: Path) -> None:
    """tcpdump on the kernel's side of the TAP during ND, ping and a download: tshark
    finds the handshake as issue 14 describes it and no malformed packet or bad checksum."""
    need("curl", "tcpdump", "tshark")
    pcap = tmp_path / "v6.pcap"
    with synack_serve(run_dir, "http"):
        # A fresh start for the neighbour entry, so the capture holds the ND exchange.
        ns("ip", "-6", "neigh", "flush", "dev", tap_name(), check=False)
        dump = subprocess.Popen(["ip", "netns", "exec", NS, "tcpdump", "-i", tap_name(), "-U",
                                 "-s", "0", "-w", str(pcap), "ip6"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            assert dump.stderr is not None
            assert "listening on" in dump.stderr.readline()
            ns("curl", "-g", "-sS", "--max-time", "60", "-o", "/dev/null",
               f"http://[{US6}]/bytes/3000000", timeout=90)
            ns("ping", "-6", "-c", "2", "-i", "0.2", US6, timeout=30)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                fins = subprocess.run(["tshark", "-r", str(pcap), "-Y",
                                       "tcp.flags.fin == 1 || icmpv6.type == 129"],
                                      capture_output=True, text=True, check=False).stdout
                if len(fins.splitlines()) >= 4:
                    break
                time.sleep(0.1)
        finally:
            dump.send_signal(signal.SIGINT)
            dump.wait(timeout=10)
    fields = ["-T", "fields", "-E", "separator=|"]
    syn = sh("tshark", "-r", str(pcap), "-Y", "tcp.flags.syn == 1 && tcp.flags.ack == 1",
             *fields, "-e", "ipv6.src", "-e", "ipv6.plen", "-e", "tcp.options.mss_val",
             "-e", "ipv6.flow").stdout.split("|")
    assert syn[0] == US6 and syn[2] == "1440", syn            # MSS 1440 over IPv6
    assert int(syn[3], 16) != 0, syn                          # a flow label, as Linux sets
    nd = sh("tshark", "-r", str(pcap), "-Y", "icmpv6.type == 136 && ipv6.src == " + US6,
            *fields, "-e", "icmpv6.nd.na.target_address").stdout.split()
    assert US6 in nd, nd                                       # synack answered ND
    bad = sh("tshark", "-r", str(pcap), "-o", "tcp.check_checksum:TRUE", "-Y",
             "_ws.malformed || tcp.checksum.status == 0 || icmpv6.checksum.status == 0 "
             "|| _ws.expert.severity >= error").stdout
    assert bad == "", bad
    total = sh("tshark", "-r", str(pcap)).stdout
    assert len(total.splitlines()) > 500, total[-2000:]
