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


def _live_stack_server(tmp_path: Path) -> tuple[ControlServer, object]:
    """A ControlServer over a transcript stack: a listener, an established connection
    (the peer sent 3 bytes), and a TIME_WAIT entry."""
    from transcript import R_ISN, Peer, established_server

    from synack.host.counters import nstat, summary
    from synack.host.ssrows import ss_rows
    from synack.wire.tcp import ACK, FIN

    stack, _fd, peer = established_server()
    peer.send(seq=R_ISN + 1, ack=301, flags=ACK, payload=b"abc")
    other = Peer(stack, port=40009)
    (synack,) = other.send(seq=R_ISN, flags=0x02, mss=1460)
    other.send(seq=R_ISN + 1, ack=synack.seq + 1, flags=ACK)
    fd2, _ = stack.accept(3)
    stack.close(fd2, now=0)
    (fin,) = other.out()
    other.send(seq=R_ISN + 1, ack=fin.seq + 1, flags=FIN | ACK)
    assert len(stack.timewait) == 1
    ctl = ControlServer("serve echo", stack.connections, directory=tmp_path,
                        counters=lambda: {"nstat": nstat(stack), "summary": summary(stack)},
                        details=lambda info: ss_rows(stack, 1_000_000, info=info))
    return ctl, stack


def test_ss_shows_what_ss_shows_by_default_and_with_options(tmp_path: Path) -> None:
    from synack.commands.ss import format_table, parse_states

    ctl, _stack = _live_stack_server(tmp_path)
    try:
        (doc,) = query_all(tmp_path)
        states = lambda table: [ln.split()[0] for ln in table.splitlines()[1:]]
        assert states(format_table([doc], states=parse_states([]))) == ["ESTAB"]
        assert sorted(states(format_table([doc], states=parse_states([], all_=True)))) == [
            "ESTAB", "LISTEN", "TIME-WAIT"]
        assert states(format_table([doc], states=parse_states([], listening=True))) == [
            "LISTEN"]
        assert states(format_table([doc], states=parse_states(["state", "time-wait"]))) == [
            "TIME-WAIT"]
        assert sorted(states(format_table([doc], states=parse_states(["exclude", "bucket"])))) \
            == ["ESTAB", "LISTEN"]
        with pytest.raises(ValueError, match="unknown state"):
            parse_states(["state", "establised"])
        # -i: tcp_info under each connection, in iproute2's words; -e: the descriptor.
        (doc,) = query_all(tmp_path, info=True)
        table = format_table([doc], states=parse_states([]), extended=True).splitlines()
        assert table[1].split()[0] == "ESTAB" and "fd:" in table[1]
        assert table[2].startswith("\t ") and "cubic" in table[2] and "rtt:" in table[2] \
            and "bytes_received:3" in table[2]
        assert main(["ss", "-tan", "--run-dir", str(tmp_path), "-H"]) == 0
    finally:
        ctl.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="runs ss inside a network namespace it makes")
def test_ss_asks_only_the_callers_network_namespace(tmp_path: Path) -> None:
    ctl, _stack = _live_stack_server(tmp_path)
    ns = f"sa-ss-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        def ss(*extra: str) -> str:
            res = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "synack.cli",
                                  "ss", "-ta", "--run-dir", str(tmp_path), *extra],
                                 capture_output=True, text=True, timeout=60, check=False)
            assert res.returncode == 0, res.stderr
            return res.stdout
        assert "ESTAB" not in ss()                      # another namespace's process
        assert "ESTAB" in ss("--any-netns")
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)
        ctl.close()
