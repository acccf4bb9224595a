"""atheris harness: mutated capture files into the readers synack's CLI uses.

Each input is a whole file: pcap (either byte order, micro- or nanoseconds) or pcapng,
with any link type (raw IP, Ethernet, Linux cooked SLL and SLL2, BSD loopback). It goes
through :class:`PcapReader` / :class:`PcapngReader`, :func:`ip_packet` and the IPv4 and
TCP parsers, then through :func:`synack.trace.capture.read_capture` (what ``synack
ladder``, ``header`` and ``plot`` call). Allowed outcomes: records, ``ParseError`` from
the readers, ``CaptureError`` from ``read_capture``. Anything else is a crash, and so is
a read larger than the file (a length trusted before it was checked).
"""

from __future__ import annotations

import json
import os
import sys
import time

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

with atheris.instrument_imports(include=["synack"]):   # the synack modules it imports
    from capture_check import check_capture

_STATS = os.environ.get("FUZZ_STATS")
_count = {"inputs": 0, "records": 0, "parse_errors": 0}
_last = [0.0]


def test_one_input(data: bytes) -> None:
    _count["inputs"] += 1
    records, failed = check_capture(data)
    _count["records"] += records
    _count["parse_errors"] += failed
    if _STATS and time.monotonic() - _last[0] > 1.0:
        _last[0] = time.monotonic()
        with open(_STATS, "w") as out:
            json.dump(_count, out)


if __name__ == "__main__":
    # libFuzzer runs argv[0] through the shell for -merge and -fork: make it this Python.
    atheris.Setup([f"{sys.executable} {os.path.abspath(__file__)}", *sys.argv[1:]],
                  test_one_input)
    atheris.Fuzz()
