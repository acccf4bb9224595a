"""A sender's congestion state over time, saved as JSON for ``synack plot --cc``.

The samples are the connection's :class:`~synack.tcp.connection.TracePoint`
records (one per ACK processed and per timeout). The file is::

    {"format": "synack-cc-trace", "version": 1, "mss": 1448, "cc": "cubic", "start_us": 0,
     "samples": [{"t_us": 0, "event": "ack", "cwnd": 10, "ssthresh": 2147483647,
                  "srtt_us": 40000, "rto_us": 240000, "ca_state": "OPEN"}, ...]}

``cwnd`` and ``ssthresh`` are in segments; times in integer microseconds.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

FORMAT = "synack-cc-trace"
VERSION = 1


@dataclass(frozen=True, slots=True)
class CcSample:
    """The sender's congestion state at one moment."""

    t_us: int
    event: str
    cwnd: int
    ssthresh: int
    srtt_us: int | None
    rto_us: int
    ca_state: str


def samples_from_trace(points: Iterable[Any]) -> list[CcSample]:
    """:class:`CcSample` from a connection's TracePoints (duck-typed)."""
    return [CcSample(p.now, p.event, p.cwnd, p.ssthresh, p.srtt, p.rto, p.ca_state)
            for p in points]


def write_cc_trace(path: str | os.PathLike[str], samples: Iterable[CcSample], *,
                   mss: int | None = None, cc: str | None = None,
                   start_us: int | None = None) -> None:
    """Save ``samples`` as JSON (``start_us``: when the connection began, on the samples'
    clock; plots take it as time 0)."""
    doc = {"format": FORMAT, "version": VERSION, "mss": mss, "cc": cc, "start_us": start_us,
           "samples": [{"t_us": s.t_us, "event": s.event, "cwnd": s.cwnd,
                        "ssthresh": s.ssthresh, "srtt_us": s.srtt_us, "rto_us": s.rto_us,
                        "ca_state": s.ca_state} for s in samples]}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


def read_cc_trace(path: str | os.PathLike[str]) -> tuple[dict[str, Any], list[CcSample]]:
    """``(metadata, samples)``; ValueError (one line) for a file that is not a cc trace."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a synack cc trace ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ValueError(f"{path}: not a synack cc trace (no \"format\": \"{FORMAT}\")")
    try:
        samples = [CcSample(int(d["t_us"]), str(d["event"]), int(d["cwnd"]), int(d["ssthresh"]),
                            None if d["srtt_us"] is None else int(d["srtt_us"]),
                            int(d["rto_us"]), str(d["ca_state"])) for d in doc["samples"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: bad cc trace sample ({exc!r})") from None
    meta = {k: v for k, v in doc.items() if k != "samples"}
    return meta, samples
