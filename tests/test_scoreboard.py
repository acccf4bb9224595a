"""The RFC 6675 SACK scoreboard: transcripts of ACKs, D-SACK, validation, wraparound,
and a per-byte reference model."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.seq import add, lt
from synack.tcp.scoreboard import Scoreboard

MSS = 1000
NEAR_WRAP = 0xFFFFF000  # segment 4 straddles 2**32 when una = seg 0


def seg(base: int, n: int) -> int:
    """Start of segment ``n`` (10 segments of MSS bytes from ``base``)."""
    return add(base, n * MSS)


class Sender:
    """Transcript helper: one scoreboard plus the sender variables the RFC names."""

    def __init__(self, base: int, segments: int = 10) -> None:
        self.base = base
        self.sb = Scoreboard(MSS)
        self.snd_una = base
        self.high_rxt = base
        self.high_data = seg(base, segments)

    def s(self, n: int) -> int:
        return seg(self.base, n)

    def ack(self, una: int, *blocks: tuple[int, int]) -> int:
        """Feed an ACK whose cumulative point and SACK blocks are given in segment numbers."""
        self.snd_una = self.s(una)
        if lt(self.high_rxt, self.snd_una):
            self.high_rxt = self.snd_una
        seq_blocks = [(self.s(a), self.s(b)) for a, b in blocks]
        return self.sb.on_ack(self.snd_una, seq_blocks, self.high_data)

    def expect(self, *, sacked: list[tuple[int, int]], lost_below: int, pipe: int,
               next_seg: int | None) -> None:
        sb = self.sb
        assert [tuple(r) for r in sb.sacked] == [(self.s(a), self.s(b)) for a, b in sacked]
        assert sb.sacked_bytes == sum(b - a for a, b in sacked) * MSS
        assert sb.lost_boundary(self.snd_una) == self.s(lost_below)
        assert sb.pipe(self.snd_una, self.high_rxt, self.high_data) == pipe
        want = None if next_seg is None else (self.s(next_seg), self.s(next_seg + 1))
        assert sb.next_seg(self.snd_una, self.high_rxt, self.high_data, MSS) == want

    def retransmit(self) -> None:
        """Send what NextSeg offers, as the connection would."""
        nxt = self.sb.next_seg(self.snd_una, self.high_rxt, self.high_data, MSS)
        assert nxt is not None
        self.high_rxt = nxt[1]


@pytest.mark.parametrize("base", [1000, NEAR_WRAP, 0xFFFFFFFF - 3500, 0])
def test_segments_3_and_6_lost_blocks_arrive_one_by_one(base: int) -> None:
    # Segments 0..9 sent; 3 and 6 are lost. 0, 1, 2 arrive: the cumulative ACK is 3.
    t = Sender(base)
    assert t.ack(3) == 0
    t.expect(sacked=[], lost_below=3, pipe=7000, next_seg=None)

    assert t.ack(3, (4, 5)) == MSS
    t.expect(sacked=[(4, 5)], lost_below=3, pipe=6000, next_seg=None)

    assert t.ack(3, (4, 6)) == MSS
    # 2000 bytes above segment 3 is not *more than* (DupThresh - 1) * SMSS.
    t.expect(sacked=[(4, 6)], lost_below=3, pipe=5000, next_seg=None)

    assert t.ack(3, (7, 8), (4, 6)) == MSS
    # Three segments SACKed above 3: it is lost and leaves the pipe; 6 is not lost yet.
    t.expect(sacked=[(4, 6), (7, 8)], lost_below=4, pipe=3000, next_seg=3)

    t.retransmit()  # segment 3 again: high_rxt = 4, the retransmission is in flight
    t.expect(sacked=[(4, 6), (7, 8)], lost_below=4, pipe=4000, next_seg=None)

    assert t.ack(3, (7, 9), (4, 6)) == MSS
    t.expect(sacked=[(4, 6), (7, 9)], lost_below=4, pipe=3000, next_seg=None)

    assert t.ack(3, (7, 10), (4, 6)) == MSS
    # Now 3000 bytes above segment 6: lost too, and NextSeg moves on to it.
    t.expect(sacked=[(4, 6), (7, 10)], lost_below=7, pipe=1000, next_seg=6)

    # The retransmitted 3 arrives: the cumulative ACK jumps to the next hole.
    assert t.ack(6, (7, 10)) == 0
    t.expect(sacked=[(7, 10)], lost_below=7, pipe=0, next_seg=6)

    t.retransmit()
    t.expect(sacked=[(7, 10)], lost_below=7, pipe=1000, next_seg=None)

    assert t.ack(10) == 0
    t.expect(sacked=[], lost_below=10, pipe=0, next_seg=None)


def test_next_seg_cuts_a_long_hole_to_one_mss_and_resumes_after_high_rxt() -> None:
    t = Sender(5000)
    t.ack(0, (3, 6))  # 3000 bytes SACKed above a 3-segment hole
    t.expect(sacked=[(3, 6)], lost_below=3, pipe=4000, next_seg=0)
    t.retransmit()
    t.expect(sacked=[(3, 6)], lost_below=3, pipe=5000, next_seg=1)
    t.retransmit()
    t.retransmit()
    t.expect(sacked=[(3, 6)], lost_below=3, pipe=7000, next_seg=None)
    # A smaller mss argument cuts shorter; high_rxt inside a hole starts there.
    assert t.sb.next_seg(t.s(0), t.s(0) + 300, t.high_data, 500) == (t.s(0) + 300, t.s(0) + 800)


def test_three_small_discontiguous_ranges_make_a_hole_lost() -> None:
    sb = Scoreboard(MSS)
    una, top = 10_000, 20_000
    blocks = [(11_000, 11_100), (12_000, 12_100), (13_000, 13_100)]
    for i, block in enumerate(blocks):
        assert sb.on_ack(una, [block], top) == 100
        # 300 bytes is far below 2 * SMSS; the count of ranges decides.
        assert sb.lost_boundary(una) == (una if i < 2 else 11_000)
    assert sb.holes(una, 13_500) == [(10_000, 11_000), (11_100, 12_000), (12_100, 13_000),
                                    (13_100, 13_500)]


def test_more_than_dupthresh_minus_one_mss_bytes_is_the_byte_rule() -> None:
    # RFC 6675 IsLost: "more than (DupThresh - 1) * SMSS bytes" -- 2001 bytes suffice.
    sb = Scoreboard(MSS)
    sb.on_ack(0, [(1000, 3000)], 10_000)
    assert sb.lost_boundary(0) == 0
    sb.on_ack(0, [(1000, 3001)], 10_000)
    assert sb.lost_boundary(0) == 1000


def test_dupthresh_is_adjustable() -> None:
    sb = Scoreboard(MSS, dupthresh=5)
    sb.on_ack(0, [(1000, 4000)], 10_000)
    assert sb.lost_boundary(0) == 0
    sb.dupthresh = 3
    assert sb.lost_boundary(0) == 1000


def test_dsack_below_the_cumulative_ack() -> None:
    # RFC 2883 4.1.1: segment 2 was retransmitted needlessly; the receiver reports it.
    t = Sender(NEAR_WRAP)
    t.ack(4, (5, 6))
    assert t.ack(4, (2, 3), (5, 7)) == MSS
    assert t.sb.last_dsack == (t.s(2), t.s(3))
    assert [tuple(r) for r in t.sb.sacked] == [(t.s(5), t.s(7))]
    assert not t.sb.is_sacked(t.s(2))
    # The next ACK without a D-SACK clears it.
    assert t.ack(4, (5, 8)) == MSS
    assert t.sb.last_dsack is None


def test_dsack_straddling_the_cumulative_ack_is_a_dsack() -> None:
    t = Sender(1000)
    assert t.ack(4, (3, 5)) == 0  # the first block starts below snd_una
    assert t.sb.last_dsack == (t.s(3), t.s(5))
    assert t.sb.sacked == [] and t.sb.sacked_bytes == 0


def test_dsack_inside_the_second_block() -> None:
    # RFC 2883 4.1.2: a duplicate of out-of-order data, reported first, then its block.
    t = Sender(1000)
    t.ack(2, (4, 7))
    assert t.ack(2, (5, 6), (4, 7)) == 0
    assert t.sb.last_dsack == (t.s(5), t.s(6))
    # Equal to the second block counts as contained.
    assert t.ack(2, (4, 7), (4, 7)) == 0
    assert t.sb.last_dsack == (t.s(4), t.s(7))
    # A first block merely overlapping the second is ordinary SACK information.
    assert t.ack(2, (6, 8), (4, 7)) == MSS
    assert t.sb.last_dsack is None
    assert [tuple(r) for r in t.sb.sacked] == [(t.s(4), t.s(8))]


def test_dsack_with_new_data_in_the_second_block_counts_only_the_new_data() -> None:
    t = Sender(1000)
    assert t.ack(3, (1, 2), (5, 6)) == MSS
    assert t.sb.last_dsack == (t.s(1), t.s(2))
    assert t.sb.sacked_bytes == MSS


@pytest.mark.parametrize("base", [1000, NEAR_WRAP])
def test_blocks_outside_the_window_are_ignored(base: int) -> None:
    t = Sender(base)
    s = t.s
    bad = [
        (s(9), s(11)),     # ends beyond snd_max
        (s(11), s(12)),    # wholly beyond snd_max
        (s(6), s(5)),      # reversed
        (s(6), s(6)),      # empty
        (s(3), s(4)),      # starts at snd_una (the ACK would have covered it)
        (s(1), s(2)),      # below snd_una, not first: not a D-SACK either
        (add(base, 2**31 + 7), add(base, 2**31 + 9)),  # half the sequence space away
    ]
    assert t.sb.on_ack(s(3), [(s(5), s(6)), *bad], t.high_data) == MSS
    assert t.sb.last_dsack is None
    assert [tuple(r) for r in t.sb.sacked] == [(s(5), s(6))]
    # A first block that is not a plausible D-SACK (beyond snd_max) is just ignored.
    assert t.sb.on_ack(s(3), [(s(1), s(12))], t.high_data) == 0
    assert t.sb.last_dsack is None
    # A block ending exactly at snd_max is valid.
    assert t.sb.on_ack(s(3), [(s(9), s(10))], t.high_data) == MSS


def test_overlapping_and_adjacent_blocks_merge_and_count_once() -> None:
    sb = Scoreboard(MSS)
    assert sb.on_ack(0, [(100, 200), (300, 400)], 1000) == 200
    assert sb.on_ack(0, [(150, 350)], 1000) == 100  # fills 200..300 only
    assert sb.sacked == [[100, 400]]
    assert sb.on_ack(0, [(400, 500), (50, 100)], 1000) == 150  # touching on both sides
    assert sb.sacked == [[50, 500]] and sb.sacked_bytes == 450
    assert sb.on_ack(0, [(50, 500)], 1000) == 0


def test_cumulative_ack_into_a_sacked_range_trims_it() -> None:
    sb = Scoreboard(MSS)
    sb.on_ack(0, [(1000, 3000), (4000, 5000)], 10_000)
    sb.on_ack(2000, [], 10_000)
    assert sb.sacked == [[2000, 3000], [4000, 5000]] and sb.sacked_bytes == 2000
    sb.on_ack(4500, [], 10_000)
    assert sb.sacked == [[4500, 5000]] and sb.sacked_bytes == 500


def test_wraparound_across_zero() -> None:
    sb = Scoreboard(MSS)
    una, top = 0xFFFFF000, add(0xFFFFF000, 20_000)
    a, b = 0xFFFFFC00, 0x00000400  # a SACKed range straddling 2**32
    assert sb.on_ack(una, [(a, b), (0x1000, 0x1800)], top) == 0x800 + 0x800
    assert sb.sacked == [[a, b], [0x1000, 0x1800]]
    assert sb.is_sacked(0xFFFFFFFF) and sb.is_sacked(0) and not sb.is_sacked(0x400)
    assert sb.holes(una, 0x2000) == [(una, a), (b, 0x1000), (0x1800, 0x2000)]
    # 2048 bytes SACKed above the hole at 0x400 is more than 2 * 1000: both holes are lost.
    assert sb.lost_boundary(una) == 0x1000
    assert sb.next_seg(una, una, top, MSS) == (una, add(una, MSS))
    sb.on_ack(0x200, [], top)
    assert sb.sacked == [[0x200, 0x400], [0x1000, 0x1800]]


def test_reset_forgets_everything() -> None:
    sb = Scoreboard(MSS)
    sb.on_ack(0, [(2000, 3000), (500, 600)], 10_000)
    sb.reset()
    assert sb.sacked == [] and sb.sacked_bytes == 0 and sb.last_dsack is None
    assert sb.pipe(0, 0, 10_000) == 10_000


def test_local_misuse_raises() -> None:
    with pytest.raises(ValueError, match="mss"):
        Scoreboard(0)
    with pytest.raises(ValueError, match="dupthresh"):
        Scoreboard(MSS, dupthresh=0)


# -- the per-byte reference model ----------------------------------------------------


class Model:
    """RFC 6675 read literally: a set of SACKed offsets and per-byte IsLost."""

    def __init__(self, n: int, mss: int, dupthresh: int) -> None:
        self.n, self.mss, self.dupthresh = n, mss, dupthresh
        self.una = 0
        self.sacked: set[int] = set()
        self.dsack: tuple[int, int] | None = None

    def ack(self, una: int, blocks: Sequence[tuple[int, int]]) -> int:
        self.una = una
        self.sacked = {x for x in self.sacked if x >= una}
        self.dsack = None
        before = len(self.sacked)
        for i, (s, e) in enumerate(blocks):
            if i == 0 and s < e <= self.n and (
                s < una or (len(blocks) > 1 and blocks[1][0] <= s and e <= blocks[1][1])
            ):
                self.dsack = (s, e)
                continue
            if una < s < e <= self.n:
                self.sacked.update(range(s, e))
        return len(self.sacked) - before

    def runs(self, present: bool, lo: int, hi: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for x in range(lo, hi):
            if (x in self.sacked) == present:
                if out and out[-1][1] == x:
                    out[-1] = (out[-1][0], x + 1)
                else:
                    out.append((x, x + 1))
        return out

    def is_lost(self, x: int) -> bool:
        if x in self.sacked:
            return False
        above = sum(1 for y in self.sacked if y > x)
        ranges = sum(1 for s, _ in self.runs(True, x + 1, self.n))
        return above > (self.dupthresh - 1) * self.mss or ranges >= self.dupthresh

    def pipe(self, high_rxt: int, high_data: int) -> int:
        return sum(
            (not self.is_lost(x)) + (x < high_rxt)
            for x in range(self.una, high_data)
            if x not in self.sacked
        )

    def next_seg(self, high_rxt: int, high_data: int, mss: int) -> tuple[int, int] | None:
        def ok(x: int) -> bool:
            return x < high_data and x not in self.sacked and self.is_lost(x)

        for x in range(max(high_rxt, self.una), high_data):
            if ok(x):
                end = x
                while end < x + mss and ok(end):
                    end += 1
                return x, end
        return None


offsets = st.integers(-6, 70)
acks = st.lists(
    st.tuples(st.integers(0, 12), st.lists(st.tuples(offsets, offsets), max_size=4)),
    min_size=1, max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(
    base=st.one_of(st.sampled_from([0, NEAR_WRAP, 0xFFFFFFFF - 20, 2**31 - 10]),
                   st.integers(0, 2**32 - 1)),
    n=st.integers(1, 64),
    mss=st.integers(1, 9),
    dupthresh=st.integers(1, 4),
    script=acks,
    probes=st.lists(st.tuples(st.integers(-4, 70), st.integers(0, 70), st.integers(1, 12)),
                    min_size=1, max_size=3),
)
def test_agrees_with_the_per_byte_model(
    base: int, n: int, mss: int, dupthresh: int,
    script: list[tuple[int, list[tuple[int, int]]]],
    probes: list[tuple[int, int, int]],
) -> None:
    sb = Scoreboard(mss, dupthresh)
    model = Model(n, mss, dupthresh)
    una = 0

    def q(off: int) -> int:
        return add(base, off)

    for advance, blocks in script:
        una = min(una + advance, n)
        newly = sb.on_ack(q(una), [(q(s), q(e)) for s, e in blocks], q(n))
        assert newly == model.ack(una, blocks)
        assert sb.last_dsack == (None if model.dsack is None else
                                 (q(model.dsack[0]), q(model.dsack[1])))
        assert [tuple(r) for r in sb.sacked] == [(q(s), q(e)) for s, e in
                                               model.runs(True, una, n)]
        assert sb.sacked_bytes == len(model.sacked)
        for x in range(una - 3, n + 3):
            assert sb.is_sacked(q(x)) == (x in model.sacked)
        assert sb.holes(q(una), q(n)) == [(q(s), q(e)) for s, e in model.runs(False, una, n)]

        boundary = sb.lost_boundary(q(una))
        for x in range(una, n):
            if x not in model.sacked:
                assert lt(q(x), boundary) == model.is_lost(x), x
        lost = [x for x in range(una, n) if model.is_lost(x)]
        expected = una if not lost else min(x for x in model.sacked if x > max(lost))
        assert boundary == q(expected)

        for rxt_off, data_off, seg_mss in probes:
            high_rxt = max(rxt_off, una - 4)
            high_data = max(una, min(data_off, n))
            assert sb.pipe(q(una), q(high_rxt), q(high_data)) == model.pipe(high_rxt, high_data)
            want = model.next_seg(high_rxt, high_data, seg_mss)
            got = sb.next_seg(q(una), q(high_rxt), q(high_data), seg_mss)
            assert got == (None if want is None else (q(want[0]), q(want[1])))
