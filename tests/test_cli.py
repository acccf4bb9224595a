"""The synack command: demo, sysctl, and the capture it writes (read by tshark)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synack.cli import main

SYNACK = [sys.executable, "-m", "synack.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SYNACK, *args], check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_demo_prints_the_seed_ladder(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "FIN,ACK seq=1101 ack=2301" in out          # the client's FIN
    assert "ACK seq=2301 ack=1102" in out              # the server's ACK of it
    assert "FIN,ACK seq=2351 ack=1102" in out          # the server's FIN
    assert "ACK seq=1102 ack=2352" in out              # the client's last ACK
    assert "TIME_WAIT -> CLOSED  (2*MSL)" in out


def test_demo_list_names_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    from synack.demo.scenarios import SCENARIOS
    assert main(["demo", "--list"]) == 0
    out = capsys.readouterr().out
    for name in SCENARIOS:
        assert name in out


def test_bad_arguments_give_one_line_and_nonzero_exit(tmp_path: Path) -> None:
    env = {"SYNACK_SYSCTL_CONF": str(tmp_path / "sysctl.conf")}
    for args in (["demo", "no-such-scenario"], ["demo", "--seed", "x"],
                 ["sysctl", "-w", "net.ipv4.nope=1"], ["sysctl", "-w", "net.ipv4.tcp_tw_reuse=9"],
                 ["sysctl", "net.ipv4.nope"], ["bogus"]):
        r = run(*args, env=env)
        assert r.returncode != 0, args
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("synack: "), (args, r.stderr)
    assert not (tmp_path / "sysctl.conf").exists()     # nothing saved by a failed -w


def test_sysctl_write_is_saved_and_listed(tmp_path: Path) -> None:
    env = {"SYNACK_SYSCTL_CONF": str(tmp_path / "sysctl.conf")}
    r = run("sysctl", "-w", "net.ipv4.tcp_keepalive_time=3600", env=env)
    assert r.returncode == 0 and r.stdout.strip() == "net.ipv4.tcp_keepalive_time = 3600"
    r = run("sysctl", env=env)
    assert "net.ipv4.tcp_keepalive_time = 3600" in r.stdout
    assert "net.ipv4.tcp_keepalive_intvl = 75" in r.stdout
    assert "net.core.somaxconn = 4096" in r.stdout
    r = run("sysctl", "--reset", env=env)
    assert "net.ipv4.tcp_keepalive_time = 7200" in run("sysctl", env=env).stdout


@pytest.mark.parametrize("scenario", ["worked-example", "lost-last-ack"])
def test_demo_pcap_reads_clean_in_tshark(tmp_path: Path, scenario: str) -> None:
    tshark = shutil.which("tshark")
    assert tshark, "tshark is installed by `make test`"
    pcap = tmp_path / "demo.pcap"
    r = run("demo", scenario, "--pcap", str(pcap))
    assert r.returncode == 0, r.stderr
    fields = subprocess.run(
        [tshark, "-r", str(pcap), "-o", "tcp.check_checksum:TRUE", "-T", "fields",
         "-e", "tcp.checksum.status", "-e", "_ws.malformed", "-e", "tcp.flags.str"],
        capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert len(fields) >= 8
    for line in fields:
        status, malformed, _flags = line.split("\t")
        assert status == "1", line  # PROTO_CHECKSUM_E_GOOD (0 bad, 2 unverified)
        assert malformed == "", line


def test_sim_reports_and_is_reproducible() -> None:
    args = ["sim", "--bytes", "300K", "--delay", "10ms", "--rate", "20mbit", "--loss", "2%",
            "--reorder", "3%", "--duplicate", "1%", "--corrupt", "1%", "--seed", "7",
            "--cc", "reno"]
    first, second = run(*args), run(*args)
    assert first.returncode == 0, first.stderr
    assert "received      307200 bytes, intact" in first.stdout
    for key in ("goodput", "retransmitted", "final cwnd", "virtual time"):
        assert key in first.stdout
    strip = [ln for ln in first.stdout.splitlines() if "simulated in" not in ln]
    assert strip == [ln for ln in second.stdout.splitlines() if "simulated in" not in ln]
    other = run(*args[:-4], "--seed", "8")
    assert other.stdout != first.stdout


def test_sim_rejects_bad_units() -> None:
    for args in (["sim", "--rate", "fast"], ["sim", "--loss", "120%"], ["sim", "--delay", "5y"],
                 ["sim", "--bytes", "-3"], ["sim", "--cc", "vegas"]):
        r = run(*args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, (args, r.stderr)


def test_connect_counts_a_handshake_that_has_already_moved_on_as_success() -> None:
    # The flaky interop test of an earlier round: the kernel sent its data and FIN
    # right after the SYN,ACK, the connection was in CLOSE_WAIT when `synack connect`
    # looked, and it reported "Connection timed out".
    import errno as _errno

    from synack.commands.connect import connect_error
    from synack.tcp.state import State
    for state in (State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSED):
        assert connect_error(0, state) == 0, state
    assert connect_error(0, State.SYN_SENT) == _errno.ETIMEDOUT
    assert connect_error(_errno.ECONNREFUSED, State.CLOSED) == _errno.ECONNREFUSED


def test_bare_synack_prints_usage_and_version_is_known() -> None:
    res = run()
    assert res.returncode == 2 and res.stdout.startswith("usage: synack")
    assert "demo" in res.stdout and "ladder" in res.stdout and not res.stderr
    res = run("--version")
    assert res.returncode == 0 and res.stdout.strip().startswith("synack ")


def test_a_reader_that_goes_away_ends_the_output_quietly(tmp_path: Path) -> None:
    # `synack ladder F | head -1`: no "[Errno 32] Broken pipe", no traceback, status 0.
    pcap = tmp_path / "run.pcap"
    assert run("sim", "--bytes", "2M", "--pcap", str(pcap)).returncode == 0   # > a pipe's 64 KB
    proc = subprocess.Popen([*SYNACK, "ladder", str(pcap)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()                               # what head does after one line
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert first.startswith("connection 1 of 1") and err == ""
