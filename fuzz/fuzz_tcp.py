"""atheris harness: mutated segments, calls and timer ticks into a synack host with a
connection in every TCP state (the world: ``tcp_world.py``, the input format: ``tcp_actions.py``).

Run through ``fuzz/run.py`` (``make fuzz``); by hand::

    PYTHONPATH=src python fuzz/fuzz_tcp.py OUT_DIR fuzz/corpus/tcp -max_total_time=60 -seed=1

With ``FUZZ_STATS=FILE`` it writes its counters there (JSON) every second: inputs run,
inputs with at least one segment that reached ``Connection.on_segment``, segments sent,
segments that reached the TCP machine (a connection, a TIME_WAIT entry or a listener).
Any exception out of the stack, or an :class:`InvariantError`, is a crash.
"""

from __future__ import annotations

import json
import os
import sys
import time

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["synack"]):
    import tcp_actions

    import synack.stack  # noqa: F401 - instrumented here, before the world imports it

from counters import Counters

COUNTERS = Counters.install()
_STATS = os.environ.get("FUZZ_STATS")
_last_write = [0.0]


def test_one_input(data: bytes) -> None:
    COUNTERS.start_input()
    world = tcp_actions.run_input(data, on_built=COUNTERS.after_build)
    COUNTERS.end_input(world.segments)
    if _STATS and time.monotonic() - _last_write[0] > 1.0:
        _last_write[0] = time.monotonic()
        with open(_STATS + ".tmp", "w") as f:
            json.dump(COUNTERS.as_dict(), f)
        os.replace(_STATS + ".tmp", _STATS)


if __name__ == "__main__":
    # libFuzzer runs argv[0] through the shell for -merge and -fork: make it this Python.
    atheris.Setup([f"{sys.executable} {os.path.abspath(__file__)}", *sys.argv[1:]],
                  test_one_input)
    atheris.Fuzz()
