"""Whole conversations between two synack stacks in the simulator, seeded."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from synack.demo.bulk import transfer
from synack.sim import LinkParams

MS = 1000


def test_clean_link_transfer_is_intact() -> None:
    r = transfer(300_000, link=LinkParams(delay_us=5 * MS))
    assert r.intact and r.finished
    assert r.retransmits == 0


def test_lossy_link_transfer_is_intact() -> None:
    r = transfer(200_000, seed=3, link=LinkParams(delay_us=5 * MS, loss=0.05))
    assert r.intact and r.finished
    assert r.retransmits > 0


def test_every_impairment_at_once() -> None:
    impaired = LinkParams(delay_us=10 * MS, loss=0.03, duplicate=0.03, reorder=0.05,
                          corrupt=0.02, jitter_us=2 * MS)
    r = transfer(150_000, seed=11, link=impaired, back=impaired)
    assert r.intact and r.finished


def test_same_seed_same_run() -> None:
    p = LinkParams(delay_us=5 * MS, loss=0.05, reorder=0.05)
    a = transfer(100_000, seed=9, link=p)
    b = transfer(100_000, seed=9, link=p)
    assert (a.duration_us, a.retransmits, a.packets) == (b.duration_us, b.retransmits, b.packets)


def test_zero_window_stall_then_resume() -> None:
    r = transfer(400_000, seed=2, link=LinkParams(delay_us=5 * MS), rcvbuf=16_384,
                 stall=(50 * MS, 3_000 * MS))
    assert r.intact and r.finished
    assert r.duration_us > 3_000 * MS        # nothing could finish during the stall


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), nbytes=st.integers(0, 60_000),
       loss=st.floats(0, 0.2), dup=st.floats(0, 0.1), reorder=st.floats(0, 0.2),
       corrupt=st.floats(0, 0.05),
       rcvbuf=st.one_of(st.none(), st.integers(1_200, 8_000), st.integers(1 << 20, 8 << 20)),
       stall=st.one_of(st.none(), st.tuples(st.integers(0, 200), st.integers(1, 3_000))))
def test_random_impairments_deliver_every_byte_once_in_order(
        seed: int, nbytes: int, loss: float, dup: float, reorder: float, corrupt: float,
        rcvbuf: int | None, stall: tuple[int, int] | None) -> None:
    """Any loss up to 20 %, reordering, duplication, corruption, tiny or huge windows and
    zero-window stalls: every byte arrives once, in order, and every transfer finishes."""
    p = LinkParams(delay_us=2 * MS, loss=loss, duplicate=dup, reorder=reorder, corrupt=corrupt)
    window = None if stall is None else (stall[0] * MS, (stall[0] + stall[1]) * MS)
    r = transfer(nbytes, seed=seed, link=p, back=p, rcvbuf=rcvbuf, stall=window)
    assert r.intact, (r.received, nbytes)
    assert r.finished
