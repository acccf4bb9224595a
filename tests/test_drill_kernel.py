"""``synack drill --kernel``: the scripts against Linux's own TCP, in a namespace of their own.

Needs root (namespaces, TUN); CI runs as root. Each test runs the command as a user
would, in a subprocess, and shows its output when it fails. Every run makes an
anonymous network namespace (``unshare``) that must be gone when the command exits:
the tests read the namespace's identity from inside (a script's shell line) and then
look for any process still in it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKT = ROOT / "tests" / "pkt"
ADDRS = ("--local_ip=192.0.2.1", "--remote_ip=198.51.100.1")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="synack drill --kernel needs root (namespaces and TUN devices)")


def drill(*args: str, timeout: float = 120, **kw: object) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "synack.cli", "drill", *args],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          check=False, **kw)  # type: ignore[call-overload]


def shown(res: subprocess.CompletedProcess[str]) -> str:
    return f"exit {res.returncode}\n--- stdout\n{res.stdout}--- stderr\n{res.stderr}"


def procs_in_netns(ident: str) -> list[int]:
    """Pids of every process whose network namespace is ``ident`` (``net:[inode]``)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/net") == ident:
                    found.append(int(entry))
            except OSError:
                continue
    return found


def wait_gone(ident: str, deadline_s: float = 5.0) -> list[int]:
    end = time.monotonic() + deadline_s
    left = procs_in_netns(ident)
    while left and time.monotonic() < end:
        time.sleep(0.05)
        left = procs_in_netns(ident)
    return left


# tests/pkt: pass on synack and on Linux; tests/pkt/linux: Linux behaviour synack lacks yet.
OWN = sorted(PKT.glob("*.pkt")) + sorted((PKT / "linux").glob("*.pkt"))


@pytest.mark.parametrize("script", OWN, ids=[str(p.relative_to(PKT)) for p in OWN])
def test_own_script_passes_on_the_kernel(script: Path) -> None:
    res = drill("--kernel", *ADDRS, str(script))
    if res.returncode != 0 and "timing error" in res.stdout:
        # Wall-clock time on a shared machine: a timing slip gets one more run, as
        # packetdrill's users rerun one (any other failure counts at once).
        res = drill("--kernel", *ADDRS, str(script))
    assert res.returncode == 0, shown(res)


def _variant(tmp: Path, name: str, source: Path, old: str, new: str) -> Path:
    """A copy of one of our scripts with one change, beside a ../common/defaults.sh."""
    text = source.read_text()
    assert old in text
    (tmp / "common").mkdir(exist_ok=True)
    shutil.copy(ROOT / "tests" / "common" / "defaults.sh", tmp / "common" / "defaults.sh")
    (tmp / "pkt").mkdir(exist_ok=True)
    out = tmp / "pkt" / name
    out.write_text(text.replace(old, new, 1))
    return out


def test_wrong_packet_expectation_fails_with_file_line_and_both_packets(tmp_path: Path) -> None:
    src = PKT / "kernel_server_echo.pkt"
    bad = _variant(tmp_path, "wrong_wscale.pkt", src,
                   "> S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 100 ecr 100,nop,wscale 8>",
                   "> S. 0:0(0) ack 1 <mss 1460,sackOK,TS val 100 ecr 100,nop,wscale 6>")
    line = next(i for i, ln in enumerate(bad.read_text().splitlines(), 1) if "wscale 6" in ln)
    res = drill("--kernel", *ADDRS, str(bad))
    assert res.returncode == 1, shown(res)
    out = res.stdout + res.stderr
    assert f"wrong_wscale.pkt:{line}:" in out, shown(res)
    assert "wscale 6" in out and "wscale 8" in out, shown(res)   # expected vs actual
    assert "Traceback" not in out, shown(res)


def test_wrong_result_expectation_fails_with_the_call(tmp_path: Path) -> None:
    bad = _variant(tmp_path, "wrong_read.pkt", PKT / "kernel_server_echo.pkt",
                   "read(4, ..., 1000) = 100", "read(4, ..., 1000) = 99")
    line = next(i for i, ln in enumerate(bad.read_text().splitlines(), 1) if "= 99" in ln)
    res = drill("--kernel", *ADDRS, str(bad))
    assert res.returncode == 1, shown(res)
    out = res.stdout + res.stderr
    assert f"wrong_read.pkt:{line}:" in out, shown(res)
    assert re.search(r"[Ee]xpected result 99 but got 100", out), shown(res)


def test_the_namespace_is_gone_afterwards(tmp_path: Path) -> None:
    mark = tmp_path / "netns"
    script = tmp_path / "where.pkt"
    script.write_text(
        "// Which namespace does the script run in, and does it have tun0?\n"
        f"`readlink /proc/self/ns/net > {mark}; ip -o link show tun0 >> {mark}`\n"
        "    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "   +0 close(3) = 0\n")
    res = drill("--kernel", *ADDRS, str(script))
    assert res.returncode == 0, shown(res)
    ident, link = mark.read_text().splitlines()[:2]
    assert ident.startswith("net:[") and ident != os.readlink("/proc/self/ns/net")
    assert "tun0" in link
    assert wait_gone(ident) == []
    assert subprocess.run(["ip", "link", "show", "tun0"], capture_output=True,
                          check=False).returncode != 0          # nothing leaked out here


def test_ctrl_c_mid_script_still_cleans_up(tmp_path: Path) -> None:
    mark = tmp_path / "netns"
    script = tmp_path / "long.pkt"
    script.write_text(
        f"`readlink /proc/self/ns/net > {mark}.tmp; mv {mark}.tmp {mark}`\n"
        "    0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n"
        "  +30 close(3) = 0\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "synack.cli", "drill", "--kernel", *ADDRS,
                             str(script)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        end = time.monotonic() + 20
        while not mark.exists() and proc.poll() is None and time.monotonic() < end:
            time.sleep(0.02)
        assert mark.exists(), proc.communicate(timeout=5)
        ident = mark.read_text().strip()
        os.killpg(proc.pid, signal.SIGINT)               # ctrl-C reaches the whole group
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, (out, err)
    assert "Traceback" not in err, err
    assert wait_gone(ident) == []


def test_without_root_one_line_and_status_2() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    res = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
         sys.executable, "-m", "synack.cli", "drill", "--kernel", str(PKT / "kernel_keepalive.pkt")],
        capture_output=True, text=True, timeout=60, env=env, check=False, cwd="/")
    assert res.returncode == 2, shown(res)
    assert res.stderr.strip() == "synack drill --kernel needs root", shown(res)
