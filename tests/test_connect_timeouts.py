"""``synack connect`` fails like Linux and nc: no ARP answer, -w.

Root only: each test runs ``synack connect`` in a namespace lab it makes. A
neighbour that never answers ARP fails the connect with EHOSTUNREACH once ARP
gives up (3 probes 1 s apart), instead of after 127 s of SYN retries; ``-w SECS``
gives up on a connect, or closes a connection idle both ways, after SECS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from synack.link.arp import ArpResolver

ROOT = Path(__file__).resolve().parent.parent
SYNACK = [sys.executable, "-m", "synack.cli"]
KERNEL, SILENT = "192.0.2.1", "192.0.2.9"
NS = f"sa-conn-{os.getpid() % 10000}"

SINK_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(4)
print("ready", flush=True)
c, _ = s.accept()
while c.recv(65536):
    pass
"""


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def namespace() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.fail("these tests make a network namespace: run them as root")
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", NS], check=True, timeout=30)
    try:
        subprocess.run(["ip", "-n", NS, "link", "set", "lo", "up"], check=True, timeout=30)
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=30, check=False)


def connect(*args: str, stdin: int = subprocess.DEVNULL) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SYNACK, "connect", *args, "--netns", NS], stdin=stdin,
                          capture_output=True, text=True, timeout=90, env=_env(), check=False)


def test_arp_gives_up_after_linux_probes() -> None:
    # The sans-I/O part: 3 requests 1 s apart, then the queued SYN comes back.
    arp = ArpResolver("02:00:00:00:00:02", "192.0.2.2")
    assert arp.output(b"syn", SILENT, now=0) is None
    assert arp.output(b"syn again", SILENT, now=1_000_000) is None
    sent = []
    for t in range(0, 4_000_000, 100_000):
        arp.tick(now=t)
        sent += [t for frame, _ in arp.transmit()]
        failed = arp.unreachable()
        if failed:
            assert failed == [b"syn", b"syn again"]
            assert t == 3_000_000
            break
    else:
        pytest.fail("ARP never gave up")
    assert sent == [0, 1_000_000, 2_000_000]


def test_silent_neighbour_is_no_route_to_host(namespace: str) -> None:
    res = connect(SILENT, "7")
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert f"connect to {SILENT} port 7 failed: No route to host" in res.stderr, res.stderr


def test_w_gives_up_on_a_connect(namespace: str) -> None:
    res = connect(SILENT, "7", "-w", "1")
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert f"connect to {SILENT} port 7 failed: Connection timed out" in res.stderr, res.stderr


def test_w_closes_an_idle_connection(namespace: str) -> None:
    server = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", SINK_SERVER,
                               "7007"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        # stdin stays open (a pipe nobody writes): only -w can end the command.
        r, w = os.pipe()
        try:
            res = connect(KERNEL, "7007", "-w", "1", stdin=r)
        finally:
            os.close(r)
            os.close(w)
        assert res.returncode == 0, (res.stdout, res.stderr)
        assert res.stderr == "", res.stderr
        # The close reached the kernel: its recv() saw the FIN and the server ended.
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_w_needs_a_positive_number() -> None:
    res = subprocess.run([*SYNACK, "connect", KERNEL, "7", "-w", "soon"], capture_output=True,
                         text=True, timeout=60, env=_env(), check=False)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "not a number of seconds" in res.stderr
