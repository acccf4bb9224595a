"""Parsing the units people type: sizes (50M), rates (100mbit), times (20ms), ratios (2%).

Rates and times follow tc(8): ``kbit``/``mbit``/``gbit`` are powers of 1000
bits per second, ``kbps``/``mbps``/``gbps`` bytes per second. Sizes follow
iperf: ``K``/``M``/``G`` are powers of 1024 bytes.
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


def parse_time_us(text: str) -> int:
    """Microseconds from ``20ms``, ``1.5s``, ``300us`` (a bare number means ms, as in tc)."""
    value, unit = _split(text, "time")
    scale = {"": 1000, "us": 1, "usec": 1, "ms": 1000, "msec": 1000, "s": 10**6, "sec": 10**6}
    if unit not in scale:
        raise ValueError(f"bad time unit in {text!r} (use us, ms or s)")
    return round(value * scale[unit])


def parse_ratio(text: str) -> float:
    """A probability from ``2%`` or ``0.02``."""
    value, unit = _split(text, "probability")
    if unit == "%":
        value /= 100
    elif unit:
        raise ValueError(f"bad probability {text!r} (use 2% or 0.02)")
    if not 0 <= value <= 1:
        raise ValueError(f"probability {text!r} is outside 0..100%")
    return value
