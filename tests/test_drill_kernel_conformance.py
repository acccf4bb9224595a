"""``make conformance``: every script of a tree on the kernel and on synack, one table.

A small tree is made from the project's own scripts: one that passes on both, one
Linux behaviour synack does not match (tests/pkt/linux), one broken on purpose. The
synack column needs nothing; the kernel column needs root (CI runs as root).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synack.drill.conformance import Outcome, find_scripts, report

ROOT = Path(__file__).resolve().parents[1]
PKT = ROOT / "tests" / "pkt"


def tree(tmp: Path) -> Path:
    (tmp / "t" / "good").mkdir(parents=True)
    (tmp / "t" / "linux").mkdir()
    # good/*.pkt run ../common/defaults.sh, linux/*.pkt ../../common/defaults.sh.
    for common in (tmp / "t" / "common", tmp / "common"):
        common.mkdir()
        shutil.copy(ROOT / "tests" / "common" / "defaults.sh", common / "defaults.sh")
    shutil.copy(PKT / "kernel_close_unread_rst.pkt", tmp / "t" / "good" / "rst.pkt")
    shutil.copy(PKT / "linux" / "kernel-calls.pkt", tmp / "t" / "linux" / "calls.pkt")
    bad = (PKT / "kernel_close_unread_rst.pkt").read_text().replace("> R. 1:1(0) ack 11",
                                                                    "> F. 1:1(0) ack 11")
    (tmp / "t" / "good" / "wrong.pkt").write_text(bad)
    (tmp / "t" / "good" / "skipped-v6.pkt").write_text("// IPv6 only: left out, as run_all.py\n")
    return tmp / "t"


def conformance(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "synack.drill.conformance", *args],
                          capture_output=True, text=True, timeout=300, env=env, check=False)


def test_find_scripts_leaves_out_v6_and_sorts(tmp_path: Path) -> None:
    root = tree(tmp_path)
    assert [p.relative_to(root).as_posix() for p in find_scripts(root)] == [
        "good/rst.pkt", "good/wrong.pkt", "linux/calls.pkt"]


def test_report_counts_per_directory_and_lists_the_gap() -> None:
    outs = [Outcome("a/x.pkt", "kernel", True), Outcome("a/x.pkt", "synack", False, "x.pkt:3: no"),
            Outcome("a/y.pkt", "kernel", True), Outcome("a/y.pkt", "synack", True),
            Outcome("b/z.pkt", "kernel", False, "z.pkt:1: k"), Outcome("b/z.pkt", "synack", False)]
    text = report(outs, "T", ("--ip_version=ipv4",))
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:4]]
            for ln in text.splitlines() if ln.startswith("| ") and "directory" not in ln}
    assert rows == {"a": ["2/0", "1/1"], "b": ["0/1", "0/1"], "total": ["2/1", "1/2"]}
    assert "Pass on the kernel, fail on synack (1):\n- a/x.pkt: x.pkt:3: no" in text


def test_synack_column_without_root(tmp_path: Path) -> None:
    res = conformance(str(tree(tmp_path)), "--target", "synack")
    assert res.returncode == 0, res.stderr
    assert "| good      | 1/1" in res.stdout, res.stdout
    assert "| linux     | 0/1" in res.stdout, res.stdout
    assert "kernel" not in res.stdout.split("\n\n")[1], res.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="the kernel column needs root (namespaces, TUN)")
def test_both_columns_and_the_gap(tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    res = conformance(str(tree(tmp_path)), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert out.read_text() == res.stdout
    assert "| good      | 1/1                  | 1/1                  |" in res.stdout, res.stdout
    assert "| linux     | 1/0                  | 0/1                  |" in res.stdout, res.stdout
    assert "Pass on the kernel, fail on synack (1):\n- linux/calls.pkt: calls.pkt:" in res.stdout


def test_missing_directory_is_one_line(tmp_path: Path) -> None:
    res = conformance(str(tmp_path / "nope"))
    assert res.returncode == 2
    assert res.stderr.strip().endswith("no such file or directory")
    assert "Traceback" not in res.stderr
