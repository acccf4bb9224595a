"""`make bench` works: bench/run.py with tiny sizes prints its table and exits 0.

No figure is asserted (speed is measured by `make bench`, never by tests): only
that each row has a number or a stated reason, and that the run leaves no
namespace behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "bench" / "run.py"
sys.path.insert(0, str(ROOT / "bench"))

import peer

NUMBER = re.compile(r"\d+\.\d+ MB")


def _bench(*args: str) -> list[str]:
    res = subprocess.run([sys.executable, str(RUN), "--runs", "1", "--scale", "0.01", *args],
                         check=False, capture_output=True, text=True, timeout=60,
                         cwd=ROOT)
    assert res.returncode == 0, res.stderr
    return res.stdout.splitlines()


def _row(lines: list[str], name: str) -> str:
    found = [line for line in lines if line.startswith(name + "  ")]
    assert len(found) == 1, (name, lines)
    return found[0]


def test_header_round_trip() -> None:
    raw = peer.make_header("down", 123_456_789)
    assert len(raw) == peer.HEADER
    assert peer.parse_header(raw) == ("down", 123_456_789)
    assert peer.parse_header(peer.make_header("up", 0)) == ("up", 0)


def test_sim_rows_have_figures_and_ratios() -> None:
    lines = _bench("--only", "sim")
    base = _row(lines, "sim 0.2 MB, no offload")
    assert NUMBER.search(base)
    for name in ("sim 0.2 MB, csum offload", "sim 0.2 MB, csum+TSO"):
        row = _row(lines, name)
        assert "sim, no offload" in row
        assert re.search(r"\d+(\.\d+)?x$", row), row     # the ratio column


def test_bad_arguments_exit_nonzero() -> None:
    res = subprocess.run([sys.executable, str(RUN), "--runs", "0"], check=False,
                         capture_output=True,
                         text=True, timeout=30, cwd=ROOT)
    assert res.returncode != 0
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                    reason="the wire rows need root and /dev/net/tun")
def test_wire_rows_measure_or_explain() -> None:
    before = subprocess.run(["ip", "netns", "list"], check=False, capture_output=True,
                            text=True).stdout
    lines = _bench("--only", "wire")
    for name in ("kernel->kernel veth, upload", "kernel->synack TAP, offload off",
                 "kernel->synack TAP, offload on", "synack->kernel TAP, offload off",
                 "synack->kernel TAP, offload on", "kernel->kernel veth, download"):
        assert NUMBER.search(_row(lines, name)), name
    for name in ("kernel->PyTCP TAP", "PyTCP->kernel TAP"):
        row = _row(lines, name)
        # PyTCP is in the `bench` extra, not `test`: a number, or n/a with a note saying why.
        assert NUMBER.search(re.split(r"\s{2,}", row)[1]) or (
            "n/a" in row and any(line.startswith("note: ") for line in lines)), row
    after = subprocess.run(["ip", "netns", "list"], check=False, capture_output=True,
                            text=True).stdout
    assert not {n for n in after.split() if n.startswith("sa-bench")} - set(before.split())
