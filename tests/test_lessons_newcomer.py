"""The README's first run is a test (issue 13, item 6).

A fresh ``git clone`` of this repository (its committed HEAD) into a temporary
directory, then every command of the README's first code block, in order, in
one shell -- so ``. .venv/bin/activate`` carries over to the commands after it,
as it does for a person typing them. Skipped, and only these: the ``git clone``
line (the test made its own clone), lines run as root with ``sudo``, and
``make test`` (the suite this test belongs to).

``make demo`` builds synack with pip, which takes setuptools (the build backend)
from the configured package index or pip's cache, as it does for a newcomer;
synack itself has no dependencies, and the test checks that no other package
(pytest, hypothesis, matplotlib) was installed.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SKIPPED = ("git clone ", "sudo ", "make test")
BUDGET_S = 600          # pip's build of synack is the slow part (seconds, not minutes)


def first_run_commands(readme: str) -> list[str]:
    """The commands of the README's first ``sh`` block, comments removed."""
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    out = []
    for line in block.splitlines():
        cmd = line.split("  #", 1)[0].strip()
        if cmd:
            out.append(cmd)
    return out


def test_readme_first_lines_are_the_newcomer_commands() -> None:
    cmds = first_run_commands((ROOT / "README.md").read_text())
    assert cmds[0].startswith("git clone ") and cmds[1] == "make demo"
    activate = cmds.index(". .venv/bin/activate")
    assert all(not c.startswith("synack ") for c in cmds[:activate])   # PATH first
    assert any(c.startswith("sudo .venv/bin/synack ") for c in cmds)    # sudo resets PATH
    assert not any(c.startswith("sudo synack") for c in cmds)


def test_pyproject_license_is_an_spdx_string() -> None:
    """setuptools >= 77 prints a deprecation box for the TOML table form, once per build step."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "MIT"
    assert meta["project"]["dependencies"] == []
    assert any(r.replace(" ", "").startswith("setuptools>=77")
               for r in meta["build-system"]["requires"])


def test_newcomer_path_from_a_fresh_clone(tmp_path: Path) -> None:
    assert shutil.which("git") and shutil.which("make"), "the test needs git and make"
    clone = tmp_path / "synack"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=60)
    cmds = first_run_commands((clone / "README.md").read_text())
    run = [c for c in cmds if not c.startswith(SKIPPED)]
    assert len(cmds) - len(run) == 3                      # clone, the sudo line, make test
    lines = ["set -e"]
    for i, cmd in enumerate(run):
        lines += [f"echo '@@ {i} {shlex.quote(cmd)[1:-1]}'", cmd]
        if cmd == ". .venv/bin/activate":                 # the venv's synack, nobody else's
            lines.append('test "$(command -v synack)" = "$PWD/.venv/bin/synack"')
    lines.append("echo '@@ done'")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env["SYNACK_SYSCTL_CONF"] = str(tmp_path / "sysctl.conf")   # the user's saved values stay out
    proc = subprocess.run(["bash", "-c", "\n".join(lines)], check=False, cwd=clone, env=env,
                          capture_output=True, text=True, timeout=BUDGET_S)
    out = proc.stdout + proc.stderr
    failed = [x for x in proc.stdout.splitlines() if x.startswith("@@ ")][-1:]
    assert proc.returncode == 0 and "@@ done" in proc.stdout, (
        f"README command failed ({failed}), exit {proc.returncode}:\n{out[-6000:]}")
    # make demo ran the worked example, quietly: no setuptools deprecation box.
    assert "== The seed's worked example" in proc.stdout
    assert "SetuptoolsDeprecationWarning" not in out and "*" * 20 not in out
    assert "快速重传" in proc.stdout and (clone / "lost.pcap").stat().st_size
    # Only synack in the venv: none of the test/plot extras.
    code = ("import importlib.util as u; "
            "print([m for m in ('pytest', 'hypothesis', 'matplotlib') if u.find_spec(m)])")
    probe = subprocess.run([str(clone / ".venv/bin/python"), "-c", code], check=False,
                           capture_output=True, text=True, env=env, timeout=60)
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr
