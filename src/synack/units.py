"""Parsing the units people type: sizes (50M), rates (100mbit), times (20ms), ratios (2%).

Rates follow tc(8): ``kbit``/``mbit``/``gbit`` are powers of 1000 bits per
second, ``kbps``/``mbps``/``gbps`` bytes per second. Times and probabilities
are read as ``tc qdisc ... netem`` reads them (iproute2's q_netem.c): a time is
``get_time64()``'s, so a bare number is nanoseconds (``20ms``, ``300us``,
``1s``, ``5000ns``); a probability is ``parse_percent()``'s, so a bare number
is a percentage (``1`` and ``1%`` are both 1 %). Sizes follow iperf:
``K``/``M``/``G`` are powers of 1024 bytes.
"""

from __future__ import annotations

import re

_NUM = r"(\d+(?:\.\d*)?|\.\d+)"


def _split(text: str, what: str) -> tuple[float, str]:
    m = re.fullmatch(_NUM + r"\s*([a-zA-Z%]*)", text.strip())
    if not m:
        raise ValueError(f"bad {what} {text!r}")
    return float(m.group(1)), m.group(2).lower()


def parse_size(text: str) -> int:
    """Bytes: ``1500``, ``64K``, ``50M``, ``1G`` (powers of 1024; ``KB`` etc. accepted)."""
    value, unit = _split(text, "size")
    scale = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20,
             "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}
    if unit not in scale:
        raise ValueError(f"bad size unit in {text!r} (use K, M or G)")
    return int(value * scale[unit])


def parse_rate(text: str) -> int:
    """Bits per second, tc style: ``100mbit``, ``1gbit``, ``500kbit``, ``10mbps`` (bytes/s)."""
    value, unit = _split(text, "rate")
    scale = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "bps": 8,
             "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9}
    if unit not in scale:
        raise ValueError(f"bad rate unit in {text!r} (use bit, kbit, mbit, gbit, or ...bps)")
    rate = int(value * scale[unit])
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {text!r}")
    return rate


_NS_PER = {"": 1, "ns": 1, "nsec": 1, "nsecs": 1, "us": 10**3, "usec": 10**3, "usecs": 10**3,
           "ms": 10**6, "msec": 10**6, "msecs": 10**6, "s": 10**9, "sec": 10**9, "secs": 10**9}


def parse_time_us(text: str) -> int:
    """Microseconds from ``20ms``, ``1.5s``, ``300us``, ``5000ns``; a bare number is
    nanoseconds, as netem's ``get_time64()`` reads it (rounded to the simulator's
    microseconds)."""
    value, unit = _split(text, "time")
    if unit not in _NS_PER:
        raise ValueError(f"bad time unit in {text!r} (use ns, us, ms or s)")
    return round(value * _NS_PER[unit] / 1000)


def parse_ratio(text: str) -> float:
    """A probability from ``2%`` or ``2`` (a bare number is a percentage, as netem's
    ``parse_percent()`` reads it)."""
    value, unit = _split(text, "probability")
    if unit not in ("", "%"):
        raise ValueError(f"bad probability {text!r} (use a percentage: 2% or 2)")
    if not 0 <= value <= 100:
        raise ValueError(f"probability {text!r} is outside 0..100%")
    return value / 100
