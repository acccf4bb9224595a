"""TCP Fast Open between synack and the Linux kernel, both ways, over a TAP.

Root only. The kernel end lives in a namespace made here (192.0.2.1) with
``net.ipv4.tcp_fastopen = 3`` (client and server); synack is 192.0.2.2. Each
test makes two connections: the first fetches a cookie, the second must carry
its data in the SYN, and the other end must acknowledge it there -- which the
kernel reports as TCPI_OPT_SYN_DATA in its ``tcp_info`` and as
TcpExtTCPFastOpenActive / TcpExtTCPFastOpenPassive in ``nstat``. Everything
made is removed; processes started are ended by pid; every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYNACK = [sys.executable, "-m", "synack.cli"]
KERNEL, US = "192.0.2.1", "192.0.2.2"
NS = f"sa-tfo-{os.getpid()}"
TCP_FASTOPEN_CONNECT = 30

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
    reason="interop tests need root and /dev/net/tun")


def sh(*cmd: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)


def nstat(counter: str) -> int:
    """A kernel counter in the test's namespace (``nstat -az``)."""
    out = sh("ip", "netns", "exec", NS, "nstat", "-az", counter).stdout
    m = re.search(rf"{counter}\s+(\d+)", out)
    assert m, out
    return int(m.group(1))


@pytest.fixture(scope="module", autouse=True)
def namespace() -> Iterator[str]:
    subprocess.run(["ip", "netns", "del", NS], capture_output=True, check=False)
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "-n", NS, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", NS, "sysctl", "-qw", "net.ipv4.tcp_fastopen=3")
        yield NS
    finally:
        subprocess.run(["ip", "netns", "del", NS], capture_output=True, timeout=30, check=False)


@pytest.fixture
def sysctl_conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """synack's saved sysctls for this test only (not the user's)."""
    conf = tmp_path / "sysctl.conf"
    conf.write_text("")
    monkeypatch.setenv("SYNACK_SYSCTL_CONF", str(conf))
    return conf


def _env(run_dir: Path) -> dict[str, str]:
    env = dict(os.environ, SYNACK_RUN_DIR=str(run_dir), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@contextlib.contextmanager
def synack_serve(run_dir: Path, *args: str) -> Iterator[list[bytes]]:
    """``synack serve ARGS --netns NS`` until the block ends; yields its stderr lines."""
    proc = subprocess.Popen([*SYNACK, "serve", *args, "--netns", NS], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(run_dir))
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
            raise AssertionError(f"synack serve did not start: {b''.join(errors)!r}")
        yield errors
    finally:
        _stop(proc)
        assert not any(b"Traceback" in e for e in errors), errors


KERNEL_TFO_CLIENT = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
MSG_FASTOPEN = 0x20000000
print("ready", flush=True)
out = []
for i in range(2):
    s = socket.socket()                  # blocking: sendto() waits for the handshake
    msg = b"fast open %d" % i
    s.sendto(msg, MSG_FASTOPEN, (host, port))
    s.settimeout(30)
    got = b""
    while len(got) < len(msg):
        got += s.recv(100)
    options = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[5]
    out.append("%s|%d" % (got.decode(), options & 32))
    s.close()
print(";".join(out), flush=True)
"""

KERNEL_TFO_SERVER = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(8)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, 8)
s.settimeout(60)
print("ready", flush=True)
out = []
for i in range(2):
    c, _ = s.accept()
    options = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[5]
    data = c.recv(100)
    c.sendall(data)
    c.close()
    out.append("%s|%d" % (data.decode(), options & 32))
print(";".join(out), flush=True)
"""


@contextlib.contextmanager
def kernel_process(script: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A python program in the namespace; waits for its "ready" line."""
    proc = subprocess.Popen(["ip", "netns", "exec", NS, sys.executable, "-c", script, *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "ready", (line, proc.stderr.read() if proc.stderr else "")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def test_kernel_client_fast_open_to_synack_serve(tmp_path: Path, sysctl_conf: Path) -> None:
    # net.ipv4.tcp_fastopen = 0x403 for synack: server on, every listener (0x400), so
    # `synack serve echo` needs no TCP_FASTOPEN. The kernel's first SYN asks for a
    # cookie; its second carries the cookie and the data, which synack must take
    # and acknowledge in its SYN,ACK (the kernel then counts TcpExtTCPFastOpenActive).
    sysctl_conf.write_text("net.ipv4.tcp_fastopen = 0x403\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with synack_serve(run_dir, "echo"):
        before = nstat("TcpExtTCPFastOpenActive")
        with kernel_process(KERNEL_TFO_CLIENT, US, "7") as proc:
            out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "fast open 0|0;fast open 1|32", (out, err)
        assert nstat("TcpExtTCPFastOpenActive") == before + 1


def _wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_synack_fastopen_connect_to_kernel_server(sysctl_conf: Path) -> None:
    # synack the client, TCP_FASTOPEN_CONNECT: the first connect() has no cookie and
    # sends a cookie request (EINPROGRESS); the second returns 0 at once and the first
    # send() goes in the SYN with the kernel's cookie. The kernel server must see that
    # connection's data acknowledged in its SYN,ACK (TCPI_OPT_SYN_DATA,
    # TcpExtTCPFastOpenPassive).
    from synack.cli import build_parser
    from synack.commands._live import running
    from synack.tcp.state import State

    del sysctl_conf                      # synack's defaults: tcp_fastopen = 1, client on
    args = build_parser().parse_args(["connect", KERNEL, "7", "--netns", NS])
    with kernel_process(KERNEL_TFO_SERVER, "7") as server:
        before = nstat("TcpExtTCPFastOpenPassive")
        codes = []
        echoes = []
        with running(args, "tfo-interop", control=False) as live:
            stack, loop = live.stack, live.loop
            for i in range(2):
                msg = b"synack %d" % i
                with loop.lock:
                    fd = stack.socket()
                    stack.setsockopt(fd, socket.IPPROTO_TCP, TCP_FASTOPEN_CONNECT, 1)
                    code = stack.connect_ex(fd, (KERNEL, 7), now=loop.now())
                    codes.append(code)
                loop.wake()
                if code == errno.EINPROGRESS:
                    _wait(lambda fd=fd: stack.state(fd) is not State.SYN_SENT, 20, "handshake")
                with loop.lock:
                    assert stack.send(fd, msg, now=loop.now()) == len(msg)
                loop.wake()
                got = b""

                def readable(fd: int = fd) -> bool:
                    with loop.lock:
                        return stack.readable(fd)
                while len(got) < len(msg):
                    _wait(readable, 20, "the echo")
                    with loop.lock:
                        got += stack.recv(fd, 100, now=loop.now())
                    loop.wake()
                echoes.append(got)
                with loop.lock:
                    stack.close(fd, now=loop.now())
                loop.wake()
            with loop.lock:
                active = stack.cfg.mib["TcpExtTCPFastOpenActive"]
        out, err = server.communicate(timeout=30)
    assert codes == [errno.EINPROGRESS, 0]
    assert echoes == [b"synack 0", b"synack 1"]
    assert out.strip() == "synack 0|0;synack 1|32", (out, err)
    assert active == 1
    assert nstat("TcpExtTCPFastOpenPassive") == before + 1
