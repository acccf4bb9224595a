"""Keep the fewest fuzz-found inputs that add to the seeds' coverage of src/synack/tcp/.

    PYTHONPATH=src python fuzz/distill.py OUT_DIR CORPUS_DIR...

Each input of the corpus directories (what a long ``make fuzz`` run kept, e.g. with
``FUZZ_ARGS="--keep DIR"``) is replayed alone under coverage.py; then, greedily, the
input that adds the most line-to-line arcs of ``tcp/`` beyond what the seed corpus
(``fuzz/corpus/tcp``) and the inputs already chosen reach is chosen, until none adds
any. The chosen inputs are written to OUT_DIR (``fuzz/corpus/tcp-kept``), named by
their SHA-1, so that a short run starts where a long one ended.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import coverage

HERE = Path(__file__).resolve().parent
TCP = str(HERE.parent / "src" / "synack" / "tcp")
sys.path.insert(0, str(HERE))


def arcs_of(data: bytes) -> frozenset[tuple[str, int, int]]:
    cov = coverage.Coverage(branch=True, source=[TCP], data_file=None)
    cov.start()
    import tcp_actions
    try:
        tcp_actions.run_input(data)
    except Exception:  # noqa: BLE001 - a crashing input is for fuzz/crashes/, not the corpus
        cov.stop()
        return frozenset()
    cov.stop()
    got = cov.get_data()
    return frozenset((f, a, b) for f in got.measured_files() for a, b in got.arcs(f) or ())


def main() -> None:
    out, dirs = Path(sys.argv[1]), sys.argv[2:]
    seen: set[tuple[str, int, int]] = set()
    for p in sorted((HERE / "corpus" / "tcp").iterdir()):
        seen |= arcs_of(p.read_bytes())
    candidates = {p.read_bytes() for d in dirs for p in Path(d).iterdir() if p.is_file()}
    gains = {data: arcs_of(data) - seen for data in candidates}
    chosen: list[bytes] = []
    while True:
        best = max(gains, key=lambda d: (len(gains[d] - seen), -len(d)), default=None)
        if best is None or not gains[best] - seen:
            break
        chosen.append(best)
        seen |= gains.pop(best)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    for data in chosen:
        (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
    print(f"{out}: {len(chosen)} inputs of {len(candidates)}, {sum(map(len, chosen))} bytes")


if __name__ == "__main__":
    main()
