"""``make conformance PKT=DIR``: every script under DIR against the kernel and against synack.

Each script runs twice, each time in a ``synack drill`` process of its own (a hung or
crashed run costs one script, never the table): once with ``--kernel`` (a fresh
namespace per script, real time) and once against the simulated synack host. As
packetdrill's ``run_all.py`` does for IPv4, scripts named ``*v6.pkt`` are left out
and the run gets its IPv4 flags (``-D TFO_COOKIE=...`` and friends); the addresses
are documentation ones, and the Fast Open cookie is the one Linux computes for them.
``--ip-version ipv6`` or ``ipv4-mapped-ipv6`` runs run_all.py's other variants instead
(over IPv6, ``*v4.pkt`` are left out). A kernel failure is rerun once, alone, before it counts:
the kernel runs in real time on a shared machine, and a timing slip is not a verdict.

The report gives, per directory, passed/failed for each target, then the scripts
the kernel passes and synack fails, each with the first line of its failure.
``--out FILE`` writes the same report to a file (the README cites one).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from synack.progress import Bar, bar
from synack.tcp.fastopen import make_cookie, parse_keys

__all__ = ["DEFAULT_FLAGS", "MODE_FLAGS", "Outcome", "find_scripts", "main", "report", "run_script"]

# run_all.py's IPv4 variant, with documentation-range addresses instead of 192.168/16.
# TFO_COOKIE is the Fast Open cookie Linux makes for these addresses under the key
# defaults.sh sets (run_all.py's 3021b9d889017eeb is the one for its own addresses).
LOCAL_IP, REMOTE_IP = "192.0.2.1", "198.51.100.1"
DEFAULTS_SH_KEY = "a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4"
TFO_COOKIE = make_cookie(parse_keys(DEFAULTS_SH_KEY)[0], REMOTE_IP, LOCAL_IP).hex()
# The same for the IPv6 variant's addresses (a mapped IPv4 connection keys on IPv4's).
TFO_COOKIE6 = make_cookie(parse_keys(DEFAULTS_SH_KEY)[0], "2001:db8::1", "2001:db8::2").hex()
DEFAULT_FLAGS: tuple[str, ...] = (
    "--ip_version=ipv4", f"--local_ip={LOCAL_IP}", f"--remote_ip={REMOTE_IP}",
    "-D", f"TFO_COOKIE={TFO_COOKIE}", "-D", "CODE=host_unreachable",
    "-D", "CMSG_LEVEL_IP=SOL_IP", "-D", "CMSG_TYPE_RECVERR=IP_RECVERR",
)
# run_all.py's three variants (--ip-version picks one); documentation addresses again.
MODE_FLAGS: dict[str, tuple[str, ...]] = {
    "ipv4": DEFAULT_FLAGS,
    "ipv6": ("--ip_version=ipv6", "--mtu=1520", "--local_ip=2001:db8::2",
             "--remote_ip=2001:db8::1", "-D", f"TFO_COOKIE={TFO_COOKIE6}",
             "-D", "CMSG_LEVEL_IP=SOL_IPV6", "-D", "CMSG_TYPE_RECVERR=IPV6_RECVERR"),
    "ipv4-mapped-ipv6": (
        "--ip_version=ipv4-mapped-ipv6", "--local_ip=192.0.2.1", "--remote_ip=198.51.100.1",
        "-D", "TFO_COOKIE=3021b9d889017eeb", "-D", "CODE=host_unreachable",
        "-D", "CMSG_LEVEL_IP=SOL_IPV6", "-D", "CMSG_TYPE_RECVERR=IPV6_RECVERR"),
}
TIMEOUT_S = 180                # run_all.py's max_runtime
TARGETS = ("kernel", "synack")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One script on one target: passed or not, and the first line of why not."""

    script: str              # relative to the tree given
    target: str              # "kernel" or "synack"
    passed: bool
    reason: str = ""
    seconds: float = 0.0


def find_scripts(root: Path, mode: str = "ipv4") -> list[Path]:
    """Every ``*.pkt`` under ``root`` (or ``root`` itself) for the mode, sorted: as
    run_all.py does, ``*v6.pkt`` only over IPv6 and ``*v4.pkt`` only over IPv4 (mapped
    or not)."""
    if root.is_file():
        return [root]
    skip = "v4.pkt" if mode == "ipv6" else "v6.pkt"
    return sorted(p for p in root.rglob("*.pkt") if not p.name.endswith(skip))


def _command(target: str, script: Path, flags: Sequence[str]) -> list[str]:
    cmd = [sys.executable, "-m", "synack.cli", "drill"]
    if target == "kernel":
        cmd.append("--kernel")
    return [*cmd, *flags, script.name]


def _reason(output: str) -> str:
    """The line that says why a run failed: the first naming the script, else the last."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for ln in lines:
        if ".pkt:" in ln:
            return ln
    return lines[-1] if lines else "no output"


def run_script(script: Path, root: Path, target: str, flags: Sequence[str],
               timeout: float = TIMEOUT_S) -> Outcome:
    """Run one script on one target in a process of its own."""
    rel = str(script.relative_to(root)) if script != root else script.name
    t0 = time.monotonic()
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        res = subprocess.run(_command(target, script, flags), cwd=script.parent, env=env,
                             capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return Outcome(rel, target, False, f"timed out after {timeout:.0f} s",
                       time.monotonic() - t0)
    ok = res.returncode == 0
    return Outcome(rel, target, ok, "" if ok else _reason(res.stdout + res.stderr),
                   time.monotonic() - t0)


def run_all(root: Path, scripts: list[Path], targets: Iterable[str], flags: Sequence[str],
            jobs: int = 2, retry: bool = True, progress: bool = True) -> list[Outcome]:
    """Every script on every target, ``jobs`` at once; kernel failures rerun alone once."""
    work = [(s, t) for t in targets for s in scripts]
    results: dict[tuple[str, str], Outcome] = {}
    # On a terminal, a bar over the runs too (the PASS/FAIL lines scroll above it).
    b = bar(len(work), "conformance", unit="run") if progress else Bar()

    def one(item: tuple[Path, str]) -> Outcome:
        out = run_script(item[0], root, item[1], flags)
        if progress:
            b.write(f"{'PASS' if out.passed else 'FAIL'} {out.target:6} {out.script}", err=True)
        return out

    with b, ThreadPoolExecutor(max(1, jobs)) as pool:
        for out in pool.map(one, work):
            results[(out.script, out.target)] = out
            b.update()
    if retry:
        for (rel, target), out in sorted(results.items()):
            if target == "kernel" and not out.passed:
                again = one((root / rel if root.is_dir() else root, target))
                if again.passed:
                    results[(rel, target)] = again
    return list(results.values())


def _machine() -> str:
    return f"Linux {platform.release()} ({platform.machine()})"


def report(outcomes: list[Outcome], root: str, flags: Sequence[str],
           mode: str = "IPv4") -> str:
    """The table: per directory, passed/failed on each target; then kernel-pass synack-fail."""
    by: dict[tuple[str, str], Outcome] = {(o.script, o.target): o for o in outcomes}
    scripts = sorted({o.script for o in outcomes})
    targets = [t for t in TARGETS if any(o.target == t for o in outcomes)]
    dirs = sorted({os.path.dirname(s) or "." for s in scripts})
    head = ["directory", *[f"{t} passed/failed" for t in targets]]
    rows = []
    totals = {t: [0, 0] for t in targets}
    for d in dirs:
        row = [d]
        for t in targets:
            got = [by[(s, t)] for s in scripts if (os.path.dirname(s) or ".") == d and (s, t) in by]
            p = sum(o.passed for o in got)
            totals[t][0] += p
            totals[t][1] += len(got) - p
            row.append(f"{p}/{len(got) - p}")
        rows.append(row)
    rows.append(["total", *[f"{totals[t][0]}/{totals[t][1]}" for t in targets]])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    out = [f"Conformance: {len(scripts)} scripts under {root} ({mode}), {_machine()}",
           f"flags: {' '.join(flags)}", "", line(head),
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    if "kernel" in targets and "synack" in targets:
        gap = [s for s in scripts if by.get((s, "kernel"), Outcome(s, "", False)).passed
               and not by.get((s, "synack"), Outcome(s, "", True)).passed]
        out += ["", f"Pass on the kernel, fail on synack ({len(gap)}):"]
        out += [f"- {s}: {by[(s, 'synack')].reason}" for s in gap]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m synack.drill.conformance DIR [--out FILE]``."""
    ap = argparse.ArgumentParser(prog="synack-conformance",
                                 description="run every .pkt under DIR on the kernel and synack")
    ap.add_argument("dir", help="a directory of packetdrill scripts (e.g. gtests/net/tcp)")
    ap.add_argument("--out", metavar="FILE", help="also write the report here")
    ap.add_argument("--jobs", type=int, default=2, help="scripts at once (default 2)")
    ap.add_argument("--target", choices=TARGETS, action="append",
                    help="only this target (repeatable; default both)")
    ap.add_argument("--no-retry", action="store_true",
                    help="count a kernel failure without rerunning it alone")
    ap.add_argument("--ip-version", choices=tuple(MODE_FLAGS), default="ipv4",
                    help="run_all.py's variant to run (default ipv4)")
    ap.add_argument("--flag", action="append", default=None, metavar="F",
                    help="a drill option instead of the variant's flags (repeatable)")
    args = ap.parse_args(argv)
    root = Path(args.dir).resolve()
    if not root.exists():
        print(f"synack conformance: {args.dir}: no such file or directory", file=sys.stderr)
        return 2
    scripts = find_scripts(root, args.ip_version)
    if not scripts:
        print(f"synack conformance: no .pkt scripts under {args.dir}", file=sys.stderr)
        return 2
    targets = args.target or list(TARGETS)
    if "kernel" in targets and os.geteuid() != 0:
        print("synack drill --kernel needs root (make conformance runs it)", file=sys.stderr)
        return 2
    flags = tuple(args.flag) if args.flag else MODE_FLAGS[args.ip_version]
    outcomes = run_all(root, scripts, targets, flags, jobs=args.jobs, retry=not args.no_retry)
    text = report(outcomes, args.dir, flags,
                  {"ipv4": "IPv4", "ipv6": "IPv6"}.get(args.ip_version, args.ip_version))
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
