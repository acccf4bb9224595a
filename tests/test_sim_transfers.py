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


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), nbytes=st.integers(0, 60_000),
       loss=st.floats(0, 0.2), dup=st.floats(0, 0.1), reorder=st.floats(0, 0.2),
       corrupt=st.floats(0, 0.05))
def test_random_impairments_deliver_every_byte_once_in_order(
        seed: int, nbytes: int, loss: float, dup: float, reorder: float, corrupt: float) -> None:
    p = LinkParams(delay_us=2 * MS, loss=loss, duplicate=dup, reorder=reorder, corrupt=corrupt)
    r = transfer(nbytes, seed=seed, link=p, back=p)
    assert r.intact, (r.received, nbytes)
    assert r.finished
