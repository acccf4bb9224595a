"""ECN (RFC 3168) between synack and the Linux kernel, both ways, over a TAP.

Root only; the namespace and helpers are test_interop_tfo's (the kernel at
192.0.2.1, synack at 192.0.2.2). The kernel's ``tcp_info`` says whether ECN was
agreed (TCPI_OPT_ECN) and whether ECT-marked packets arrived from synack
(TCPI_OPT_ECN_SEEN): synack must both negotiate ECN and mark its data ECT(0).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from test_interop_tfo import (  # noqa: F401 - the fixtures are used by name
    KERNEL,
    NS,
    SYNACK,
    US,
    _env,
    kernel_process,
    namespace,
    sh,
    synack_serve,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
    reason="interop tests need root and /dev/net/tun")

TCPI_OPT_ECN, TCPI_OPT_ECN_SEEN = 8, 16


@pytest.fixture
def saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """synack's saved sysctls for this test only (not the user's)."""
    conf = tmp_path / "sysctl.conf"
    conf.write_text("")
    monkeypatch.setenv("SYNACK_SYSCTL_CONF", str(conf))
    return conf

KERNEL_ECN_CLIENT = r"""
import socket, sys
print("ready", flush=True)
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
msg = b"x" * 3000
s.sendall(msg)
got = b""
while len(got) < len(msg):
    got += s.recv(65536)
print(got == msg, s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[5], flush=True)
"""

KERNEL_ECN_SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(4)
s.settimeout(60)
print("ready", flush=True)
c, _ = s.accept()
data = b""
while (b := c.recv(65536)):
    data += b
c.sendall(data)
options = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[5]
c.close()
print(len(data), options, flush=True)
"""


def ns_ecn(value: int) -> None:
    sh("ip", "netns", "exec", NS, "sysctl", "-qw", f"net.ipv4.tcp_ecn={value}")


def test_kernel_client_asking_for_ecn_gets_it_from_synack_serve(tmp_path: Path,
                                                                 saved: Path) -> None:
    # The kernel asks (tcp_ecn = 1); synack agrees with its default tcp_ecn = 2 and
    # sends the echo ECT(0), which the kernel sees (TCPI_OPT_ECN_SEEN).
    del saved                            # synack's defaults: tcp_ecn = 2
    ns_ecn(1)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with synack_serve(run_dir, "echo"), kernel_process(KERNEL_ECN_CLIENT, US, "7") as proc:
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    intact, options = out.split()
    assert intact == "True"
    assert int(options) & TCPI_OPT_ECN and int(options) & TCPI_OPT_ECN_SEEN, out


def test_synack_client_asking_for_ecn_gets_it_from_the_kernel(tmp_path: Path,
                                                              saved: Path) -> None:
    # synack asks (tcp_ecn = 1 saved with `synack sysctl -w`), the kernel agrees with
    # its default 2, and synack's data reaches it ECT(0).
    saved.write_text("net.ipv4.tcp_ecn = 1\n")
    ns_ecn(2)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    data = os.urandom(5000)
    with kernel_process(KERNEL_ECN_SERVER, "7") as server:
        res = subprocess.run([*SYNACK, "connect", KERNEL, "7", "--netns", NS], input=data,
                             capture_output=True, timeout=120, env=_env(run_dir), check=False)
        out, err = server.communicate(timeout=30)
    assert res.returncode == 0, res.stderr
    assert res.stdout == data
    n, options = out.split()
    assert int(n) == len(data), (out, err)
    assert int(options) & TCPI_OPT_ECN and int(options) & TCPI_OPT_ECN_SEEN, out

