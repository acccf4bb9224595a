"""`synack ss`'s control sockets, the state-change log, and argument errors (no root)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from synack.cli import main
from synack.commands._live import ControlServer, StateLog, query_all
from synack.commands.ss import format_table
from synack.stack import ConnInfo
from synack.tcp.connection import StateChange
from synack.tcp.state import State


def test_control_socket_answers_with_connection_rows(tmp_path: Path) -> None:
    rows = [ConnInfo(State.LISTEN, 0, 128, ("0.0.0.0", 80), ("0.0.0.0", 0)),
            ConnInfo(State.TIME_WAIT, 0, 0, ("192.0.2.2", 80), ("192.0.2.1", 40000)),
            ConnInfo(State.ESTABLISHED, 5, 7, ("192.0.2.2", 80), ("192.0.2.1", 40001))]
    ctl = ControlServer("serve http", lambda: rows, directory=tmp_path)
    try:
        (doc,) = query_all(tmp_path)
        assert doc["command"] == "serve http" and len(doc["rows"]) == 3
        table = format_table([doc]).splitlines()
        assert table[0].split() == ["State", "Recv-Q", "Send-Q", "Local", "Address:Port",
                                    "Peer", "Address:Port", "Process"]
        assert table[1].split()[:5] == ["LISTEN", "0", "128", "0.0.0.0:80", "0.0.0.0:*"]
        assert table[2].split()[:5] == ["TIME-WAIT", "0", "0", "192.0.2.2:80",
                                        "192.0.2.1:40000"]
        assert table[3].split()[:5] == ["ESTAB", "5", "7", "192.0.2.2:80", "192.0.2.1:40001"]
        assert [ln.split()[0] for ln in format_table([doc], listening=True).splitlines()] == [
            "State", "LISTEN"]
    finally:
        ctl.close()
    assert list(tmp_path.iterdir()) == []


def test_stale_sockets_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / "999999.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(dead))
    s.close()                      # the file stays, nobody listens: a crashed process
    assert query_all(tmp_path) == []
    assert not dead.exists()


def test_state_log_line() -> None:
    log = StateLog(to_wall=lambda us: 0.25)
    line = log.line(("192.0.2.2", 80, "192.0.2.1", 40000),
                    StateChange(0, State.ESTABLISHED, State.CLOSE_WAIT, "rcv FIN"))
    assert line.endswith("192.0.2.2:80          192.0.2.1:40000       "
                         "ESTABLISHED -> CLOSE_WAIT (rcv FIN)")
    assert line.split()[0].endswith(".250000")


@pytest.mark.parametrize("argv, why", [
    (["scan", "not-an-ip"], "not an IPv4 address"),
    (["scan", "192.0.2.1", "-p", "9-1"], "bad port range"),
    (["connect", "192.0.2.1", "70000"], "ports are 1-65535"),
    (["serve", "echo", "--root", "/"], "--root goes with the http service"),
    (["serve", "http", "--port", "0"], "ports are 1-65535"),
    (["serve", "echo", "--tap", "sa-nodev0", "--addr", "192.0.2.2/24"], "no such device"),
    (["connect", "192.0.2.1", "7", "--tap", "sa-nodev0", "--addr", "192.0.2.2/24"],
     "no such device"),
])
def test_bad_arguments_are_one_line_errors(argv: list[str], why: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert why in err and err.count("\n") == 1


def test_nstat_and_ss_summary_show_a_stacks_counters(tmp_path: Path, capsys) -> None:
    # A stack that answered an in-window RST with a challenge ACK and skipped a second.
    from transcript import R_ISN, established_server

    from synack.commands.nstat import format_counters
    from synack.commands.ss import format_summary
    from synack.host.counters import nstat, summary
    from synack.wire.tcp import RST

    stack, _fd, peer = established_server()
    peer.send(seq=R_ISN + 100, flags=RST)
    peer.send(seq=R_ISN + 100, flags=RST)
    ctl = ControlServer("serve echo", stack.connections, directory=tmp_path,
                        counters=lambda: {"nstat": nstat(stack), "summary": summary(stack)})
    try:
        (doc,) = query_all(tmp_path)
        lines = format_counters([doc], [], zeros=False).splitlines()
        assert lines[0].startswith("#pid=")
        values = {ln.split()[0]: int(ln.split()[1]) for ln in lines[1:]}
        assert values["TcpExtTCPChallengeACK"] == 1
        assert values["TcpExtTCPACKSkippedChallenge"] == 1
        assert values["TcpCurrEstab"] == 1
        assert "TcpExtTCPAbortOnMemory" not in values          # zero: shown only with -z
        assert "TcpExtTCPAbortOnMemory" in format_counters([doc], ["TcpExt"], zeros=True)
        assert "TcpInSegs" not in format_counters([doc], ["TcpExt"], zeros=True)
        assert format_summary([doc]).splitlines()[1].split() == [
            "TCP:", "2", "(estab", "1,", "synrecv", "0,", "orphaned", "0,", "timewait", "0,",
            "listening", "1)"]
        assert main(["nstat", "--run-dir", str(tmp_path), "TcpExtTCPChallengeACK"]) == 0
        assert "TcpExtTCPChallengeACK" in capsys.readouterr().out
    finally:
        ctl.close()


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                    reason="drops root with setpriv to try as an ordinary user")
def test_network_commands_say_they_need_root_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "SYNACK_RUN_DIR": str(tmp_path)}
    res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-m", "synack.cli", "serve", "echo", "--netns",
                          "sa-nonroot"], capture_output=True, text=True, timeout=60, env=env,
                         cwd=tmp_path, check=False)
    assert res.returncode == 2, res
    assert res.stderr.count("\n") == 1 and "needs root" in res.stderr, res.stderr
