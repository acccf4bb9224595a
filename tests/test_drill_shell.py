"""Shell lines in simulation: the sysctl writes scripts use set synack's sysctls;
harmless commands pass; anything else is unsupported, in one line."""

from pathlib import Path

import pytest

from synack.config import Sysctl
from synack.drill.sim_shell import Shell


def shell(tmp_path: Path) -> tuple[Shell, Sysctl]:
    cfg = Sysctl()
    return Shell(cfg, tmp_path), cfg


def test_sysctl_echo_and_set_sysctls_forms(tmp_path: Path) -> None:
    sh, cfg = shell(tmp_path)
    assert sh.run("sysctl -q net.ipv4.tcp_sack=0 net.ipv4.tcp_syn_retries=3") is None
    assert sh.run("echo 0 > /proc/sys/net/ipv4/tcp_timestamps") is None
    assert sh.run('../common/set_sysctls.py /proc/sys/net/ipv4/tcp_wmem="4096 50000 4194304" \\\n'
                  "   /proc/sys/net/ipv4/tcp_fin_timeout=30") is None
    assert (cfg.int("net.ipv4.tcp_sack"), cfg.int("net.ipv4.tcp_syn_retries"),
            cfg.int("net.ipv4.tcp_timestamps"), cfg.int("net.ipv4.tcp_fin_timeout")) == (0, 3, 0, 30)
    assert cfg.triple("net.ipv4.tcp_wmem") == (4096, 50000, 4194304)


def test_defaults_sh_is_read_with_arithmetic_and_unknown_sysctls_noted(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "defaults.sh").write_text(
        "#!/bin/bash\nip tcp_metrics flush all > /dev/null 2>&1\n"
        'sysctl -q net.ipv4.tcp_rmem="4096 540000 $((15*1024*1024))"\n'
        "sysctl -q net.ipv4.tcp_frto=2\ntc qdisc add dev tun0 root pfifo\n")
    sh, cfg = shell(tmp_path / "common")
    assert sh.run("../common/defaults.sh") is None
    assert cfg.triple("net.ipv4.tcp_rmem") == (4096, 540000, 15 * 1024 * 1024)
    assert sh.notes == ["ignored sysctl net.ipv4.tcp_frto=2 (not in synack)"]


def test_missing_defaults_keep_synacks_linux_defaults(tmp_path: Path) -> None:
    sh, cfg = shell(tmp_path)
    assert sh.run("../common/defaults.sh") is None
    assert cfg.triple("net.ipv4.tcp_rmem") == Sysctl().triple("net.ipv4.tcp_rmem")
    assert "not found" in sh.notes[0]


@pytest.mark.parametrize("cmd", [
    "sysctl -q net.ipv4.tcp_ecn=0", "sysctl -q net.ipv4.tcp_fastopen=0",
    "/tmp/sysctl_restore_${PPID}.sh", "nstat > /dev/null", "ethtool -K tun0 tso off gso off",
    "tc qdisc replace dev tun0 root pfifo_fast",
])
def test_harmless_commands_pass(tmp_path: Path, cmd: str) -> None:
    assert shell(tmp_path)[0].run(cmd) is None


def test_cubic_module_parameters_are_set(tmp_path: Path) -> None:
    """Linux's tcp_cubic module parameters (HyStart) are kept as tcp_cubic.NAME."""
    sh, cfg = shell(tmp_path)
    assert sh.run("echo 2 > /sys/module/tcp_cubic/parameters/hystart_detect") is None
    assert cfg.int("tcp_cubic.hystart_detect") == 2


@pytest.mark.parametrize(("cmd", "why"), [
    ("echo 9 > /sys/module/tcp_cubic/parameters/hystart_detect", "outside [0, 3]"),
])
def test_bad_cubic_parameter_is_refused(tmp_path: Path, cmd: str, why: str) -> None:
    err = shell(tmp_path)[0].run(cmd)
    assert err is not None and why in err


@pytest.mark.parametrize(("cmd", "why"), [
    ("sysctl -q net.ipv4.tcp_ecn=3", "sysctl: net.ipv4.tcp_ecn: 3 is outside [0, 2]"),
    ("sysctl -q net.ipv4.tcp_mtu_probing=1", "unsupported: sysctl net.ipv4.tcp_mtu_probing"),
    ("tc qdisc replace dev tun0 root fq", "unsupported: shell command"),
    ("nstat | grep TcpExtOutOfWindowIcmps > /dev/null", "unsupported: shell command"),
    ("echo 3 > /sys/module/tcp_other/parameters/x", "unsupported"),
    ("sysctl -q net.ipv4.tcp_sack=7", "sysctl: net.ipv4.tcp_sack: 7 is outside [0, 1]"),
    ("echo 'unterminated", "unsupported: cannot read command"),
])
def test_other_commands_are_refused_in_one_line(tmp_path: Path, cmd: str, why: str) -> None:
    err = shell(tmp_path)[0].run(cmd)
    assert err is not None and why in err and "\n" not in err


def test_nstat_grep_succeeds_only_when_the_counter_moved(tmp_path: Path) -> None:
    # nstat prints what changed since its last run; `nstat | grep X` is a check that X did.
    counters = {"TcpExtOutOfWindowIcmps": 0}
    sh = Shell(Sysctl(), tmp_path, counters=lambda: dict(counters))
    assert sh.run("nstat > /dev/null") is None
    err = sh.run("nstat | grep TcpExtOutOfWindowIcmps > /dev/null")
    assert err is not None and "did not change" in err
    counters["TcpExtOutOfWindowIcmps"] += 1
    assert sh.run("nstat | grep TcpExtOutOfWindowIcmps > /dev/null") is None


def test_tcp_metrics_flush_empties_the_fast_open_cache(tmp_path: Path) -> None:
    flushed = []
    sh = Shell(Sysctl(), tmp_path, metrics_flush=lambda: flushed.append(1))
    assert sh.run("ip tcp_metrics flush all > /dev/null 2>&1") is None
    assert flushed == [1]
