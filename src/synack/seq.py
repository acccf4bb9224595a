"""32-bit sequence number arithmetic (RFC 9293 section 3.4, RFC 1982).

Sequence numbers live on a circle of 2**32. ``a`` is "before" ``b`` when the
signed 32-bit distance from ``a`` to ``b`` is positive, which is correct as long
as the two are less than 2**31 apart -- TCP keeps every window far below that.
"""

from __future__ import annotations

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31


def add(a: int, n: int) -> int:
    """``a + n`` modulo 2**32 (``n`` may be negative)."""
    return (a + n) & MASK


def diff(a: int, b: int) -> int:
    """Signed distance ``a - b`` in the range [-2**31, 2**31)."""
    return ((a - b + HALF) & MASK) - HALF


def lt(a: int, b: int) -> bool:
    """``a`` comes strictly before ``b``."""
    return ((a - b + HALF) & MASK) < HALF


def le(a: int, b: int) -> bool:
    """``a`` comes before or is ``b``."""
    return a == b or lt(a, b)


def gt(a: int, b: int) -> bool:
    """``a`` comes strictly after ``b``."""
    return lt(b, a)


def ge(a: int, b: int) -> bool:
    """``a`` comes after or is ``b``."""
    return a == b or lt(b, a)


def between(lo: int, x: int, hi: int) -> bool:
    """``lo <= x < hi`` on the circle (an empty range when ``lo == hi``)."""
    return ((x - lo) & MASK) < ((hi - lo) & MASK)


def max_seq(a: int, b: int) -> int:
    """The later of two sequence numbers."""
    return b if lt(a, b) else a


def min_seq(a: int, b: int) -> int:
    """The earlier of two sequence numbers."""
    return a if lt(a, b) else b
