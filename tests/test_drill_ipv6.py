"""``synack drill --ip_version ipv6`` (issue 14): scripts run over IPv6 against synack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from synack.drill.session import Settings, run_file

PKT = Path(__file__).parent / "pkt"
V6 = sorted((PKT / "ipv6").glob("*.pkt"))


@pytest.mark.parametrize("path", V6, ids=lambda p: p.name)
def test_ipv6_scripts_pass_against_synack(path: Path) -> None:
    out = run_file(path, Settings())
    assert out.passed, f"{out.message}\n{out.detail}"


def _variant(tmp_path: Path, src: Path, old: str, new: str) -> Path:
    (tmp_path / "common").mkdir(exist_ok=True)
    (tmp_path / "common" / "defaults.sh").write_text(
        (PKT.parent / "common" / "defaults.sh").read_text())
    d = tmp_path / "s"
    d.mkdir(exist_ok=True)
    text = src.read_text().replace("../../common", "../common")
    assert old in text
    path = d / src.name
    path.write_text(text.replace(old, new))
    return path


def test_the_ipv4_mss_fails_over_ipv6(tmp_path: Path) -> None:
    """The script is checked: an MSS of 1460 (IPv4's) is wrong over IPv6."""
    path = _variant(tmp_path, PKT / "ipv6" / "passive-open-data-close.pkt",
                    "> S. 0:0(0) ack 1 <mss 1440", "> S. 0:0(0) ack 1 <mss 1460")
    out = run_file(path, Settings())
    assert not out.passed
    assert "expected: mss 1460 actual: mss 1440" in out.message, out.message


def test_packet_too_big_below_1280_is_taken_as_1280(tmp_path: Path) -> None:
    path = _variant(tmp_path, PKT / "ipv6" / "packet-too-big.pkt", "mtu 1300", "mtu 1000")
    text = path.read_text().replace("1:1241(1240)", "1:1221(1220)").replace(
        "> P. 1241:2481(1240)", "> P. 1221:2441(1220)").replace("2481:2881(400)", "2441:2881(440)")
    path.write_text(text)
    out = run_file(path, Settings())
    assert out.passed, f"{out.message}\n{out.detail}"


def test_an_ipv4_script_runs_over_ipv6_from_the_command_line(tmp_path: Path) -> None:
    """--ip_version ipv6 on the command line: the IPv4 scripts' segments go over IPv6,
    and they pass once their MSS is IPv6's."""
    src = PKT / "passive-open-data-close.pkt"
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "defaults.sh").write_text(
        (PKT.parent / "common" / "defaults.sh").read_text())
    (tmp_path / "s").mkdir()
    path = tmp_path / "s" / src.name
    path.write_text(src.read_text().replace("mss 1460", "mss 1440"))
    env = {"PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    r = subprocess.run([sys.executable, "-m", "synack.cli", "drill", "--ip_version", "ipv6",
                        str(path)], capture_output=True, text=True, timeout=120, env=env,
                       check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"PASS {path}" in r.stdout
    # Unchanged, its IPv4 MSS is caught; the ladder shows the IPv6 addresses.
    path.write_text(src.read_text())
    r = subprocess.run([sys.executable, "-m", "synack.cli", "drill", "--ip_version", "ipv6",
                        str(path)], capture_output=True, text=True, timeout=120, env=env,
                       check=False)
    assert r.returncode != 0
    assert "synack 2001:db8::2" in r.stdout + r.stderr and "script 2001:db8::1" in \
        r.stdout + r.stderr, r.stdout + r.stderr


def test_an_unknown_ip_version_is_one_line(tmp_path: Path) -> None:
    out = run_file(PKT / "rst-closed-port.pkt", Settings(ip_version="ipv5"))
    assert not out.passed and "unsupported: --ip_version=ipv5 (ipv4, ipv6 or ipv4-mapped-ipv6)" in out.message


# --- the same scripts against Linux (root) ------------------------------------------
# packet-too-big.pkt stays synack-only: Linux resends the refused data as one TSO skb
# cut to the new size by the device, and the sniffer on its TUN sees the uncut skb.
KERNEL_V6 = [p for p in V6 if p.name != "packet-too-big.pkt"]


@pytest.mark.skipif(os.geteuid() != 0, reason="synack drill --kernel needs root (namespaces and TUN devices)")
@pytest.mark.parametrize("path", KERNEL_V6, ids=lambda p: p.name)
def test_ipv6_scripts_pass_on_the_kernel(path: Path) -> None:
    """Conformance over IPv6: Linux sends what the scripts say synack sends."""
    env = {"PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    for _attempt in range(2):   # a timing slip on a shared machine gets one more run
        r = subprocess.run([sys.executable, "-m", "synack.cli", "drill", "--kernel", str(path)],
                           capture_output=True, text=True, timeout=120, env=env, check=False)
        if r.returncode == 0 or "timing error" not in r.stdout:
            break
    assert r.returncode == 0, r.stdout + r.stderr
    assert "against the kernel" in r.stdout
