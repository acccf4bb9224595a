"""Run the fuzzers for a while, then measure what they reached; print one summary.

    python fuzz/run.py --seconds 60 [--seed 1] [--keep DIR] [--json FILE]

Each harness (``fuzz_tcp.py``: segments, calls and ticks into a host with a
connection in every state; ``fuzz_capture.py``: the capture readers) runs in a
subprocess under atheris (libFuzzer) with a fixed ``-seed``, starting from the seed
corpus in ``fuzz/corpus/`` (read only: new inputs go to a temporary directory, or to
``--keep DIR``). The TCP harness gets three quarters of the time. Then the seed
corpus and every input the run kept are replayed under coverage.py (``branch=True``,
``src/synack/tcp/`` only), which gives the branch coverage of the TCP machine and
the fraction of inputs whose segments reached ``Connection.on_segment``.

Exit status 1 when a harness crashed (its input is saved as ``crash-*`` in the
artifact directory, named in the summary): replay it with
``python fuzz/fuzz_tcp.py CRASH_FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"
CORPUS = HERE / "corpus"
HARNESSES = (("tcp", "fuzz_tcp.py", 0.75), ("capture", "fuzz_capture.py", 0.25))


def fuzz(name: str, script: str, seconds: int, seed: int, work: Path) -> dict[str, object]:
    """Run one harness for ``seconds``; its counters and what libFuzzer printed."""
    out = work / name / "corpus"
    art = work / name / "artifacts"
    out.mkdir(parents=True, exist_ok=True)
    art.mkdir(parents=True, exist_ok=True)
    stats = work / name / "stats.json"
    env = dict(os.environ, PYTHONPATH=str(SRC), FUZZ_STATS=str(stats))
    cmd = [sys.executable, str(HERE / script), str(out), str(CORPUS / name),
           f"-max_total_time={seconds}", f"-seed={seed}", "-timeout=20", "-rss_limit_mb=3072",
           f"-artifact_prefix={art}/", "-print_final_stats=1", "-max_len=4096",
           "-len_control=0"]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 300,
                          check=False)
    wall = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    (work / name / "libfuzzer.log").write_text(log)
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    crashes = sorted(str(p) for p in art.glob("crash-*")) + sorted(
        str(p) for p in art.glob("timeout-*")) + sorted(str(p) for p in art.glob("oom-*"))
    counters = json.loads(stats.read_text()) if stats.exists() else {}
    executed = int(runs[-1]) if runs else int(counters.get("inputs", 0))
    return {
        "harness": name, "seconds": round(wall, 1), "executed": executed,
        "inputs_per_s": round(executed / max(wall, 1e-9), 1), "returncode": proc.returncode,
        "crashes": crashes, "counters": counters, "corpus_dir": str(out),
        "command": " ".join(cmd), "tail": log[-3000:] if proc.returncode else "",
    }


def replay(dirs: list[str], report: str) -> None:
    """In this process: replay every input of ``dirs`` under coverage (branch), write JSON."""
    import coverage

    cov = coverage.Coverage(branch=True, source=[str(SRC / "synack" / "tcp")], data_file=None)
    cov.start()
    sys.path.insert(0, str(HERE))
    import tcp_actions
    from counters import Counters

    counters = Counters.install()
    failures: list[str] = []
    files = sorted({p for d in dirs for p in Path(d).glob("*") if p.is_file()},
                   key=lambda p: (p.name, str(p)))
    for path in files:
        counters.start_input()
        try:
            w = tcp_actions.run_input(path.read_bytes(), on_built=counters.after_build)
        except Exception as exc:  # noqa: BLE001 - a crash in replay is reported, not raised
            failures.append(f"{path}: {type(exc).__name__}: {exc}")
            continue
        counters.end_input(w.segments)
    cov.stop()
    out = Path(report)
    cov.json_report(outfile=str(out.with_suffix(".cov.json")))
    data = json.loads(out.with_suffix(".cov.json").read_text())
    files_cov = {
        os.path.relpath(f, SRC): (s["summary"]["covered_branches"], s["summary"]["num_branches"])
        for f, s in data["files"].items()
    }
    totals = data["totals"]
    out.write_text(json.dumps({
        "inputs": len(files), "counters": counters.as_dict(), "failures": failures,
        "branches": [totals["covered_branches"], totals["num_branches"]],
        "lines": [totals["covered_lines"], totals["num_statements"]],
        "files": files_cov,
    }))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=60, help="total fuzzing time (default 60)")
    ap.add_argument("--seed", type=int, default=1, help="libFuzzer -seed (default 1)")
    ap.add_argument("--keep", metavar="DIR", help="keep the run's corpora and logs here")
    ap.add_argument("--json", metavar="FILE", help="write the summary as JSON too")
    ap.add_argument("--replay", nargs="+", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--report", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.replay:
        replay(args.replay, args.report)
        return 0
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="synack-fuzz-"))
    work.mkdir(parents=True, exist_ok=True)
    results = [fuzz(name, script, max(int(args.seconds * share), 1), args.seed, work)
               for name, script, share in HARNESSES]
    tcp = results[0]
    report = work / "replay.json"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    t0 = time.monotonic()
    rep = subprocess.run([sys.executable, str(HERE / "run.py"), "--replay", str(CORPUS / "tcp"),
                          str(tcp["corpus_dir"]), "--report", str(report)],
                         env=env, capture_output=True, text=True, check=False)
    if rep.returncode:
        print(rep.stdout + rep.stderr, file=sys.stderr)
        return 2
    cov = json.loads(report.read_text())
    summary = {"fuzz": results, "replay": cov, "replay_seconds": round(time.monotonic() - t0, 1),
               "work": str(work)}
    print(format_summary(summary, args))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    crashed = any(r["crashes"] or r["returncode"] for r in results) or cov["failures"]
    return 1 if crashed else 0


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:.1f} %" if b else "-"


def format_summary(s: dict, args: argparse.Namespace) -> str:
    lines = [f"fuzz: {args.seconds} s in all, -seed={args.seed}, seed corpus {CORPUS}"]
    for r in s["fuzz"]:
        c = r["counters"]
        lines.append(f"  {r['harness']:8s} {r['executed']} inputs in {r['seconds']} s "
                     f"({r['inputs_per_s']} inputs/s), crashes: {len(r['crashes'])}"
                     + (f" (exit {r['returncode']})" if r["returncode"] else ""))
        if c.get("segments"):
            lines.append(f"           inputs reaching Connection.on_segment: "
                         f"{_pct(c['inputs_reaching'], c['inputs'])}; segments reaching it: "
                         f"{_pct(c['on_segment'], c['segments'])}, reaching the TCP machine "
                         f"(a connection, TIME_WAIT or a listener): "
                         f"{_pct(c['reached_tcp'], c['segments'])}")
        for crash in r["crashes"]:
            lines.append(f"           crash: {crash}")
        if r["tail"]:
            lines.append("           " + r["tail"].replace("\n", "\n           "))
    rep = s["replay"]
    c = rep["counters"]
    covered, total = rep["branches"]
    lines.append(f"  replay of the corpus ({rep['inputs']} inputs, {s['replay_seconds']} s): "
                 f"inputs reaching Connection.on_segment {_pct(c['inputs_reaching'], c['inputs'])}"
                 f", segments {_pct(c['on_segment'], c['segments'])}")
    lines.append(f"  src/synack/tcp/ branch coverage: {_pct(covered, total)} "
                 f"({covered} of {total} branches; lines {_pct(*rep['lines'])})")
    worst = sorted(rep["files"].items(), key=lambda kv: kv[1][0] / max(kv[1][1], 1))
    lines.append("    lowest: " + ", ".join(
        f"{os.path.basename(f)} {_pct(a, b)}" for f, (a, b) in worst[:6] if b))
    for failure in rep["failures"]:
        lines.append(f"  replay crash: {failure}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
