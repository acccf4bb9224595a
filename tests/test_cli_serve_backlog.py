"""``synack serve --backlog N`` reaches the listening sockets; a bad N is a one-line error."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from synack.apps import EchoServer, HttpServer
from synack.cli import main
from synack.commands.serve import make_servers, parse_backlog
from synack.config import Sysctl
from synack.stack import Stack
from synack.tcp.state import State

ROOT = Path(__file__).resolve().parent.parent


def _listen_rows(stack: Stack) -> dict[int, int]:
    """Port -> the backlog ``ss -l`` would show as Send-Q."""
    return {r.local[1]: r.send_q for r in stack.connections() if r.state is State.LISTEN}


def test_default_backlog_is_the_stacks_somaxconn() -> None:
    stack = Stack("192.0.2.2", cfg=Sysctl(**{"net.core.somaxconn": 1000}), seed=1)
    make_servers(stack, EchoServer, [7, 8], None, {})
    assert _listen_rows(stack) == {7: 1000, 8: 1000}


def test_default_backlog_with_linux_defaults_is_4096() -> None:
    stack = Stack("192.0.2.2", seed=1)
    make_servers(stack, EchoServer, [7], None, {})
    assert _listen_rows(stack) == {7: 4096}


def test_given_backlog_reaches_every_listener_capped_by_somaxconn() -> None:
    stack = Stack("192.0.2.2", cfg=Sysctl(**{"net.core.somaxconn": 1000}), seed=1)
    make_servers(stack, HttpServer, [80, 8080], 77, {})
    assert _listen_rows(stack) == {80: 77, 8080: 77}
    capped = Stack("192.0.2.2", cfg=Sysctl(**{"net.core.somaxconn": 1000}), seed=1)
    make_servers(capped, EchoServer, [7], 5000, {})
    assert _listen_rows(capped) == {7: 1000}


def test_parse_backlog() -> None:
    assert parse_backlog(None) is None
    assert parse_backlog("0") == 0
    assert parse_backlog("65535") == 65535
    with pytest.raises(ValueError, match="not a whole number"):
        parse_backlog("lots")
    with pytest.raises(ValueError, match="must be 0 or more"):
        parse_backlog("-1")


@pytest.mark.parametrize("value, why", [("lots", "not a whole number"),
                                        ("-5", "must be 0 or more"),
                                        ("1.5", "not a whole number")])
def test_bad_backlog_is_a_one_line_error(value: str, why: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "echo", "--backlog", value, "--netns", "sa-never-made"]) == 2
    err = capsys.readouterr().err
    assert why in err and err.count("\n") == 1


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                    reason="a live serve needs root and /dev/net/tun")
def test_live_serve_listens_with_the_backlog_ss_shows(tmp_path: Path) -> None:
    env = dict(os.environ, SYNACK_RUN_DIR=str(tmp_path),
               PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    ns = f"sa-backlog-{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-m", "synack.cli", "serve", "echo", "--port", "7",
                             "--backlog", "77", "--netns", ns],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready = threading.Event()

        def watch() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if "server on" in line:
                    ready.set()

        threading.Thread(target=watch, daemon=True).start()
        assert ready.wait(30), "synack serve did not start"
        out = subprocess.run([sys.executable, "-m", "synack.cli", "ss", "-l"], env=env,
                             capture_output=True, text=True, timeout=30, check=True).stdout
        # One listener per family (the lab has IPv6 too), each with the backlog.
        rows = [line.split() for line in out.splitlines()[1:]]
        assert [r[:5] for r in rows] == [["LISTEN", "0", "77", "0.0.0.0:7", "0.0.0.0:*"],
                                         ["LISTEN", "0", "77", "[::]:7", "[::]:*"]], out
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(15)
    assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                                    check=False).stdout
