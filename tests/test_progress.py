"""Progress bars: drawn on a terminal, absent from a pipe, and never needed.

Each command runs twice: under a pseudo-terminal (stdout and stderr both the
pty) where tqdm's bar must show (its ``NN%|`` and a ``\\r`` redraw), and with
pipes, where the output must hold no trace of one. Without tqdm the commands
still work and draw nothing.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from synack import progress

ROOT = Path(__file__).resolve().parent.parent
SYNACK = [sys.executable, "-m", "synack.cli"]
BAR = re.compile(r"\d+%\|")
REDRAW = re.compile(r"\r(?!\n)")      # a carriage return that is not a pty's newline
DRILL_SCRIPT = """\
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 32792 <mss 1000,sackOK,nop,nop,nop,wscale 7>
+0  > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK,nop,wscale 7>
+.1 < . 1:1(0) ack 1 win 257
+0  accept(3, ..., ...) = 4
"""


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, COLUMNS="100", TERM="xterm")
    env.pop("NO_PROGRESS", None)
    env.update(extra)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["SYNACK_SYSCTL_CONF"] = os.devnull
    return env


def under_pty(args: list[str], *, timeout: float = 120, **env: str) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; (status, everything written)."""
    master, slave = pty.openpty()
    # A terminal 100 columns wide (a fresh pty is 0x0, and a bar fits in no width).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                            env=_env(**env), close_fds=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:          # EIO: the child closed the pty
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        status = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return status, b"".join(chunks).decode(errors="replace")


def piped(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=_env(**env),
                          check=False)


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cap") / "big.pcap"
    r = piped([*SYNACK, "sim", "--bytes", "2M", "--delay", "1ms", "--pcap", str(path)])
    assert r.returncode == 0, r.stderr
    assert path.stat().st_size >= progress.BIG_FILE
    return path


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    d = tmp_path_factory.mktemp("drill")
    out = []
    for i in range(3):
        p = d / f"accept{i}.pkt"
        p.write_text(DRILL_SCRIPT)
        out.append(str(p))
    return out


def commands(big: Path, scripts: list[str]) -> dict[str, list[str]]:
    return {
        "sim": [*SYNACK, "sim", "--bytes", "3M", "--delay", "1ms"],
        "ladder": [*SYNACK, "ladder", str(big), "--list"],
        "drill": [*SYNACK, "drill", *scripts],
    }


@pytest.mark.parametrize("name", ["sim", "ladder", "drill"])
def test_bar_on_a_terminal_none_in_a_pipe(name: str, big_capture: Path,
                                          scripts: list[str]) -> None:
    args = commands(big_capture, scripts)[name]
    status, text = under_pty(args)
    assert status == 0, text
    assert BAR.search(text) and REDRAW.search(text), text[-2000:]
    r = piped(args)
    assert r.returncode == 0, r.stderr
    assert not BAR.search(r.stdout + r.stderr) and "\r" not in r.stdout + r.stderr, r.stderr


def test_bench_draws_its_bar_over_groups() -> None:
    status, text = under_pty([sys.executable, str(ROOT / "bench" / "run.py"), "--only", "sim",
                              "--runs", "1", "--scale", "0.05"], timeout=300)
    assert status == 0, text
    assert BAR.search(text) and "bench" in text, text[-2000:]


def test_no_progress_env_and_dumb_terminal_silence_the_bar(scripts: list[str]) -> None:
    for env in ({"NO_PROGRESS": "1"}, {"TERM": "dumb"}):
        status, text = under_pty([*SYNACK, "drill", *scripts], **env)
        assert status == 0, text
        assert not BAR.search(text), (env, text)


def test_commands_work_without_tqdm(tmp_path: Path, scripts: list[str]) -> None:
    # A tqdm that cannot be imported, first on the path: the bar quietly goes.
    fake = tmp_path / "fake"
    (fake / "tqdm").mkdir(parents=True)
    (fake / "tqdm" / "__init__.py").write_text("raise ImportError('no tqdm here')\n")
    status, text = under_pty([*SYNACK, "drill", *scripts],
                             PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{fake}")
    assert status == 0, text
    assert "3 passed, 0 failed" in text and not BAR.search(text), text
