"""``synack drill --ip_version ipv4-mapped-ipv6`` (issue 14): packetdrill's third mode.

The script's sockets are AF_INET6 (IPV6_V6ONLY off) and the addresses their calls
use are IPv4-mapped (``::ffff:192.0.2.1``); the segments on the wire are IPv4 ones.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_drill_sim import LISTEN, fails, passes

from synack.drill.conformance import MODE_FLAGS, find_scripts
from synack.drill.runner import RunOptions
from synack.drill.session import Settings, run_file, sim_factory
from synack.drill.target import Target, TargetConfig

ROOT = Path(__file__).resolve().parents[1]
PKT = ROOT / "tests" / "pkt"
MAPPED = "ipv4-mapped-ipv6"
# The project's IPv4 scripts, and two that check their sockets are AF_INET6.
OWN = sorted(PKT.glob("*.pkt"))
DUAL = sorted((PKT / "mapped").glob("*.pkt"))
ADDRS = ("--local_ip=192.0.2.1", "--remote_ip=198.51.100.1")


def drill(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "synack.cli", "drill", *args],
                          capture_output=True, text=True, timeout=120, env=env, check=False)


@pytest.mark.parametrize("path", OWN + DUAL, ids=lambda p: p.name)
def test_scripts_pass_in_mapped_mode_against_synack(path: Path) -> None:
    out = run_file(path, Settings(ip_version=MAPPED))
    assert out.passed, f"{out.message}\n{out.detail}"


@pytest.mark.parametrize("path", DUAL, ids=lambda p: p.name)
def test_the_dual_stack_scripts_fail_in_ipv4_mode(path: Path) -> None:
    """Their IPV6_V6ONLY lines need an AF_INET6 socket: the mode is what they check."""
    out = run_file(path, Settings(ip_version="ipv4"))
    assert not out.passed
    assert "level 41 option 26" in out.message, out.message


def test_the_sockets_are_af_inet6_with_mapped_peers() -> None:
    """After the run, synack's sockets are AF_INET6 and name their ends IPv4-mapped,
    while the host's connection itself is an IPv4 one."""
    made: list[Target] = []

    def factory(tcfg: TargetConfig, opts: RunOptions) -> Target:
        assert tcfg.mapped and tcfg.local_ip == "192.168.0.1"
        made.append(sim_factory(tcfg, opts))
        return made[-1]

    path = PKT / "mapped" / "passive-open-dual-stack.pkt"   # leaves its listener open
    out = run_file(path, Settings(ip_version=MAPPED), factory=factory)
    assert out.passed, f"{out.message}\n{out.detail}"
    stack = made[0].stack  # type: ignore[attr-defined]
    listener = made[0].fdmap[3]  # type: ignore[attr-defined]
    assert stack.socks[listener].family == 10
    assert stack.getsockname(listener) == ("::ffff:192.168.0.1", 8080, 0, 0)


def test_the_connect_address_is_mapped(tmp_path: Path) -> None:
    made: list[Target] = []

    def factory(tcfg: TargetConfig, opts: RunOptions) -> Target:
        made.append(sim_factory(tcfg, opts))
        return made[-1]

    # The script up to its close: the connected socket is still there to look at.
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "defaults.sh").write_text((ROOT / "tests" / "common" /
                                                     "defaults.sh").read_text())
    (tmp_path / "a" / "b").mkdir(parents=True)
    path = tmp_path / "a" / "b" / "open.pkt"
    text = (PKT / "mapped" / "active-open-dual-stack.pkt").read_text()
    assert "   +0 close(3) = 0" in text
    path.write_text(text.split("   +0 close(3) = 0")[0])
    out = run_file(path, Settings(ip_version=MAPPED), factory=factory)
    assert out.passed, f"{out.message}\n{out.detail}"
    stack, fd = made[0].stack, made[0].fdmap[3]  # type: ignore[attr-defined]
    assert stack.socks[fd].family == 10
    assert stack.getpeername(fd) == ("::ffff:192.0.2.1", 8080, 0, 0)
    assert stack.getsockname(fd)[0] == "::ffff:192.168.0.1"


def test_the_ladder_shows_ipv4_on_the_wire(tmp_path: Path) -> None:
    """A wrong script fails with the IPv4 addresses of the wire in its ladder."""
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "defaults.sh").write_text((ROOT / "tests" / "common" /
                                                     "defaults.sh").read_text())
    (tmp_path / "s").mkdir()
    path = tmp_path / "s" / "p.pkt"
    path.write_text((PKT / "passive-open-data-close.pkt").read_text().replace(
        "mss 1460", "mss 1440"))
    r = drill("--ip_version", MAPPED, *ADDRS, str(path))
    assert r.returncode != 0, r.stdout + r.stderr
    assert "expected: mss 1440 actual: mss 1460" in r.stdout + r.stderr, r.stdout + r.stderr
    assert "synack 192.0.2.1" in r.stdout and "script 198.51.100.1" in r.stdout, r.stdout


def test_ipv6_addresses_are_one_line() -> None:
    r = drill("--ip_version", MAPPED, "--local_ip=2001:db8::2", "--remote_ip=2001:db8::1",
              str(PKT / "rst-closed-port.pkt"))
    assert r.returncode != 0
    lines = [ln for ln in (r.stdout + r.stderr).splitlines()
             if "needs IPv4 addresses" in ln]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stdout + r.stderr


def test_a_bad_ip_version_is_one_line() -> None:
    r = drill("--ip_version", "ipv4-mapped", str(PKT / "rst-closed-port.pkt"))
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    bad = [ln for ln in (r.stdout + r.stderr).splitlines() if "--ip_version" in ln]
    assert len(bad) == 1, r.stdout + r.stderr
    assert bad[0].endswith("command line: unsupported: --ip_version=ipv4-mapped "
                           "(ipv4, ipv6 or ipv4-mapped-ipv6)"), r.stdout + r.stderr


def test_an_ipv6_script_in_mapped_mode_is_one_line() -> None:
    """Its header's --ip_version=ipv6 brings IPv6 addresses; the command line's mode
    needs IPv4 ones (packetdrill refuses them too)."""
    path = PKT / "ipv6" / "active-open.pkt"
    out = run_file(path, Settings(ip_version=MAPPED))
    assert not out.passed
    assert out.message == (f"{path}:1: --ip_version=ipv4-mapped-ipv6 needs IPv4 addresses, "
                           "not --local_ip=2001:db8::2 --remote_ip=2001:db8::1"), out.message


ZEROCOPY = LISTEN + """\
   +0 accept(3, ..., ...) = 4
   +0 setsockopt(4, SOL_SOCKET, SO_ZEROCOPY, [1], 4) = 0
   +0 send(4, ..., 1000, MSG_ZEROCOPY) = 1000
   +0 > P. 1:1001(1000) ack 1
   +0 < . 1:1(0) ack 1001 win 257
   +0 recvmsg(4, {msg_name(...)=..., msg_iov(1)=[{...,0}], msg_flags=MSG_ERRQUEUE,
                  msg_control=[{cmsg_level=CMSG_LEVEL_IP, cmsg_type=CMSG_TYPE_RECVERR,
                                cmsg_data={ee_errno=0, ee_origin=SO_EE_ORIGIN_ZEROCOPY,
                                           ee_type=0, ee_code=SO_EE_CODE_ZEROCOPY_COPIED,
                                           ee_info=0, ee_data=0}}]}, MSG_ERRQUEUE) = 0
"""
V4_ERR = {"CMSG_LEVEL_IP": "SOL_IP", "CMSG_TYPE_RECVERR": "IP_RECVERR"}
V6_ERR = {"CMSG_LEVEL_IP": "SOL_IPV6", "CMSG_TYPE_RECVERR": "IPV6_RECVERR"}


def test_the_error_queue_of_an_af_inet6_socket_is_ipv6_recverr(tmp_path: Path) -> None:
    """Linux ipv6_recv_error(): an AF_INET6 socket's error queue comes as SOL_IPV6
    IPV6_RECVERR, IPv4 traffic or not (run_all.py's -D flags for this mode say so)."""
    passes(tmp_path, ZEROCOPY, ip_version=MAPPED, defines=V6_ERR)
    out = fails(tmp_path, ZEROCOPY, ip_version=MAPPED, defines=V4_ERR)
    assert "expected level 0 type 11 but got level 41 type 25" in out.message, out.message
    passes(tmp_path, ZEROCOPY, ip_version="ipv4", defines=V4_ERR)


def test_proc_net_tcp6_lists_the_af_inet6_sockets(tmp_path: Path) -> None:
    """Linux lists an AF_INET6 socket in /proc/net/tcp6 (tcp6_seq_show()), its IPv4
    addresses mapped: the listener on ::ffff:192.168.0.1 port 8080 (1F90), its
    connection from ::ffff:192.0.2.1; /proc/net/tcp has none of them."""
    mapped_listener = "0000000000000000FFFF00000100A8C0:1F90"   # ::ffff:192.168.0.1
    mapped_peer = "0000000000000000FFFF0000010200C0:"          # ::ffff:192.0.2.1
    body = LISTEN + "   +0 accept(3, ..., ...) = 4\n"
    passes(tmp_path, body + f'   +0 `grep " 0A " /proc/net/tcp6 | grep "{mapped_listener}"`\n'
           f'   +0 `grep " 01 " /proc/net/tcp6 | grep "{mapped_peer}"`\n', ip_version=MAPPED)
    out = fails(tmp_path, body + '   +0 `grep ":1F90" /proc/net/tcp`\n', ip_version=MAPPED)
    assert "grep selected nothing" in out.message, out.message
    # In ipv4 mode the same sockets are AF_INET ones, in /proc/net/tcp.
    out = fails(tmp_path, body + '   +0 `grep ":1F90" /proc/net/tcp6`\n')
    assert "grep selected nothing" in out.message, out.message
    passes(tmp_path, body + '   +0 `grep " 0A " /proc/net/tcp | grep "0100A8C0:1F90"`\n')


def test_conformance_modes_pick_run_all_variants(tmp_path: Path) -> None:
    for name in ("a.pkt", "b-v4.pkt", "c-v6.pkt"):
        (tmp_path / name).write_text("")
    names = {m: [p.name for p in find_scripts(tmp_path, m)] for m in MODE_FLAGS}
    assert names == {"ipv4": ["a.pkt", "b-v4.pkt"], MAPPED: ["a.pkt", "b-v4.pkt"],
                     "ipv6": ["a.pkt", "c-v6.pkt"]}
    assert "--ip_version=ipv4-mapped-ipv6" in MODE_FLAGS[MAPPED]
    assert "CMSG_LEVEL_IP=SOL_IPV6" in MODE_FLAGS[MAPPED]


# --- against Linux (root) -------------------------------------------------------------
KERNEL = [*DUAL, PKT / "kernel_server_echo.pkt", PKT / "kernel_client_connect.pkt",
          PKT / "passive-open-data-close.pkt"]


@pytest.mark.skipif(os.geteuid() != 0,
                    reason="synack drill --kernel needs root (namespaces and TUN devices)")
@pytest.mark.parametrize("path", KERNEL, ids=lambda p: p.name)
def test_scripts_pass_in_mapped_mode_on_the_kernel(path: Path) -> None:
    """Linux's AF_INET6 sockets on an IPv4 tun0 send what the scripts say."""
    for _attempt in range(2):   # a timing slip on a shared machine gets one more run
        r = drill("--kernel", "--ip_version", MAPPED, *ADDRS, str(path))
        if r.returncode == 0 or "timing error" not in r.stdout:
            break
    assert r.returncode == 0, r.stdout + r.stderr
    assert "against the kernel" in r.stdout


@pytest.mark.skipif(os.geteuid() != 0,
                    reason="synack drill --kernel needs root (namespaces and TUN devices)")
def test_the_kernel_socket_is_af_inet_in_ipv4_mode() -> None:
    """The dual-stack script's IPV6_V6ONLY line fails on an AF_INET socket (Linux:
    EOPNOTSUPP): the pass above is the mode's doing."""
    r = drill("--kernel", *ADDRS, str(PKT / "mapped" / "passive-open-dual-stack.pkt"))
    assert r.returncode != 0, r.stdout + r.stderr
    assert "getsockopt" in r.stdout + r.stderr, r.stdout + r.stderr
