"""32-bit sequence arithmetic: comparisons and windows across the 2**32 wrap."""

from hypothesis import given
from hypothesis import strategies as st

from synack import seq as sq

u32 = st.integers(0, 2**32 - 1)
dist = st.integers(1, 2**31 - 1)


def test_wraparound_examples() -> None:
    assert sq.add(0xFFFFFFFF, 1) == 0
    assert sq.add(5, -10) == 2**32 - 5
    assert sq.lt(0xFFFFFFF0, 0x10)
    assert sq.gt(0x10, 0xFFFFFFF0)
    assert sq.diff(0x10, 0xFFFFFFF0) == 0x20
    assert sq.between(0xFFFFFFF0, 0, 0x10)
    assert not sq.between(0xFFFFFFF0, 0x10, 0x10)
    assert sq.max_seq(0xFFFFFFFF, 3) == 3 and sq.min_seq(0xFFFFFFFF, 3) == 0xFFFFFFFF


@given(u32, dist)
def test_adding_a_positive_distance_moves_forward(a: int, n: int) -> None:
    b = sq.add(a, n)
    assert sq.lt(a, b) and sq.le(a, b) and sq.gt(b, a) and sq.ge(b, a)
    assert not sq.lt(b, a) and not sq.ge(a, b)
    assert sq.diff(b, a) == n and sq.diff(a, b) == -n


@given(u32)
def test_equal_is_neither_before_nor_after(a: int) -> None:
    assert not sq.lt(a, a) and not sq.gt(a, a) and sq.le(a, a) and sq.ge(a, a)
    assert sq.diff(a, a) == 0


@given(u32, st.integers(0, 2**31 - 1), st.integers(0, 2**31 - 1))
def test_between_matches_offsets(lo: int, off: int, width: int) -> None:
    x = sq.add(lo, off)
    hi = sq.add(lo, width)
    assert sq.between(lo, x, hi) == (off < width)


@given(u32, st.integers(-(2**31) + 1, 2**31 - 1))
def test_add_then_diff_round_trips(a: int, n: int) -> None:
    assert sq.diff(sq.add(a, n), a) == n
