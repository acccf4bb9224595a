"""synack.sim link impairments: loss, duplication, reordering, corruption, queue, jitter."""

from __future__ import annotations

import socket
import struct
from collections import Counter
from collections.abc import Callable, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synack.sim import LinkParams, Network

A, B = "10.0.0.1", "10.0.0.2"


def ipv4(payload: bytes = b"", ident: int = 0, options: bytes = b"") -> bytes:
    """A minimal A -> B IPv4 packet; ``options`` (a multiple of 4 bytes) raises the IHL."""
    ihl = 5 + len(options) // 4
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), ident, 0, 64, 253, 0,
        socket.inet_aton(A), socket.inet_aton(B),
    )
    return header + options + payload


def ident_of(packet: bytes) -> int:
    return int.from_bytes(packet[4:6], "big")


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[int, bytes]] = []
        self.outbox: list[bytes] = []

    def receive(self, packet: bytes, *, now: int) -> None:
        self.got.append((now, packet))

    def transmit(self, *, now: int) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out

    def next_deadline(self) -> int | None:
        return None

    def tick(self, *, now: int) -> None:
        pass


def one_way(params: LinkParams, sends: list[tuple[int, bytes]], seed: int = 0,
            changes: Sequence[tuple[int, LinkParams]] = ()) -> tuple[Network, Sink]:
    """Send each (time, packet) from A to B over ``params``; apply ``changes`` at their times."""
    net = Network(seed)
    a, b = Sink(), Sink()
    net.add_host(A, a)
    net.add_host(B, b)
    net.add_link(A, B, params)

    def sender(packet: bytes) -> Callable[[int], None]:
        return lambda now: a.outbox.append(packet)

    def changer(new: LinkParams) -> Callable[[int], None]:
        return lambda now: net.set_link(A, B, new)

    for t, packet in sends:
        net.call_at(t, sender(packet))
    for t, params_then in changes:
        net.call_at(t, changer(params_then))
    net.run()
    return net, b


def stream(n: int, spacing_us: int = 100, size: int = 0) -> list[tuple[int, bytes]]:
    return [(i * spacing_us, ipv4(bytes(size), ident=i)) for i in range(n)]


def lost_idents(net: Network) -> set[int]:
    return {ident_of(r.data) for r in net.records if r.fate == "lost"}


# -- parameters --------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    {"delay_us": -1}, {"rate_bps": 0}, {"loss": 1.5}, {"duplicate": -0.1},
    {"reorder": 2.0}, {"corrupt": -1.0}, {"reorder_delay_us": -5}, {"queue_bytes": -1},
    {"jitter_us": -1},
])
def test_link_params_reject_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        LinkParams(**bad)  # type: ignore[arg-type]


def test_default_reorder_delay() -> None:
    assert LinkParams(delay_us=300).effective_reorder_delay_us == 1000
    assert LinkParams(delay_us=5000).effective_reorder_delay_us == 5000
    assert LinkParams(reorder_delay_us=0).effective_reorder_delay_us == 0


# -- loss --------------------------------------------------------------------------


def test_loss_rate_is_near_the_probability_and_reproducible() -> None:
    sends = stream(20_000, spacing_us=10)
    net, b = one_way(LinkParams(loss=0.1), sends, seed=3)
    lost = net.stats[(A, B)].lost
    assert 0.088 * 20_000 < lost < 0.112 * 20_000  # about 5 standard deviations
    assert len(b.got) == 20_000 - lost
    again, _ = one_way(LinkParams(loss=0.1), sends, seed=3)
    assert lost_idents(again) == lost_idents(net)
    other, _ = one_way(LinkParams(loss=0.1), sends, seed=4)
    assert lost_idents(other) != lost_idents(net)


def test_more_loss_loses_a_superset_and_other_impairments_do_not_shift_it() -> None:
    sends = stream(2000)
    light, _ = one_way(LinkParams(loss=0.1), sends, seed=9)
    heavy, _ = one_way(LinkParams(loss=0.2), sends, seed=9)
    noisy, _ = one_way(LinkParams(loss=0.1, duplicate=0.3, reorder=0.3, corrupt=0.3,
                                  jitter_us=50), sends, seed=9)
    assert lost_idents(light) < lost_idents(heavy)
    assert lost_idents(noisy) == lost_idents(light)


def test_total_loss_and_no_loss() -> None:
    net, b = one_way(LinkParams(loss=1.0), stream(100))
    assert b.got == [] and net.stats[(A, B)].lost == 100
    net, b = one_way(LinkParams(loss=0.0), stream(100))
    assert len(b.got) == 100 and net.stats[(A, B)].lost == 0


# -- duplication -------------------------------------------------------------------


def test_duplicate_arrives_right_behind_the_original() -> None:
    net, b = one_way(LinkParams(duplicate=1.0), stream(3))
    assert [(t, ident_of(p)) for t, p in b.got] == [
        (1000, 0), (1000, 0), (1100, 1), (1100, 1), (1200, 2), (1200, 2),
    ]
    assert [(r.fate, r.index, ident_of(r.data)) for r in net.records] == [
        ("delivered", 0, 0), ("duplicate", 1, 0), ("delivered", 2, 1),
        ("duplicate", 3, 1), ("delivered", 4, 2), ("duplicate", 5, 2),
    ]
    assert net.stats[(A, B)].duplicated == 3
    assert net.stats[(A, B)].delivered == 6


def test_duplication_rate_is_near_the_probability() -> None:
    net, b = one_way(LinkParams(duplicate=0.25), stream(8000, spacing_us=10), seed=1)
    extra = net.stats[(A, B)].duplicated
    assert 0.23 * 8000 < extra < 0.27 * 8000
    assert len(b.got) == 8000 + extra
    counts = Counter(ident_of(p) for _, p in b.got)
    assert sorted(set(counts.values())) == [1, 2]


# -- reordering --------------------------------------------------------------------


def test_a_reordered_packet_is_held_back_and_overtaken() -> None:
    net, b = one_way(
        LinkParams(delay_us=300, reorder=1.0), stream(3), changes=[(50, LinkParams(delay_us=300))]
    )
    # Packet 0 is held back the default max(delay, 1000) us; 1 and 2 overtake it.
    assert [(t, ident_of(p)) for t, p in b.got] == [(400, 1), (500, 2), (1300, 0)]
    assert [r.reordered for r in net.records] == [True, False, False]
    assert net.stats[(A, B)].reordered == 1


def test_reordered_packets_overtake_nothing() -> None:
    params = LinkParams(delay_us=1000, reorder=0.2, reorder_delay_us=5000, jitter_us=300)
    net, b = one_way(params, stream(3000), seed=5)
    order = [ident_of(p) for _, p in b.got]
    reordered = {ident_of(r.data) for r in net.records if r.reordered}
    assert 0.17 * 3000 < len(reordered) < 0.23 * 3000
    assert order != sorted(order)
    position = {ident: i for i, ident in enumerate(order)}
    for ident in reordered:
        assert all(position[earlier] < position[ident] for earlier in range(ident))
    in_place = [i for i in order if i not in reordered]
    assert in_place == sorted(in_place)


# -- corruption --------------------------------------------------------------------


def differing_bits(x: bytes, y: bytes) -> list[int]:
    assert len(x) == len(y)
    diff = int.from_bytes(x, "big") ^ int.from_bytes(y, "big")
    nbits = len(x) * 8
    return [nbits - 1 - i for i in range(nbits) if diff >> i & 1]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    payload=st.binary(min_size=1, max_size=300),
    option_words=st.integers(0, 10),
)
def test_corruption_flips_exactly_one_bit_after_the_ip_header(
    seed: int, payload: bytes, option_words: int
) -> None:
    packet = ipv4(payload, options=b"\x01" * (4 * option_words))
    net, b = one_way(LinkParams(corrupt=1.0), [(0, packet)], seed=seed)
    (record,) = net.records
    assert record.fate == "corrupted" and record.data == packet
    ((_, got),) = b.got
    assert got == record.delivered_data
    (bit,) = differing_bits(packet, got)
    assert bit >= (5 + option_words) * 32
    assert net.stats[(A, B)].corrupted == 1


def test_corruption_hits_every_part_of_the_payload() -> None:
    packet = ipv4(bytes(8))
    sends = [(i, packet) for i in range(2000)]
    _, b = one_way(LinkParams(corrupt=1.0), sends, seed=11)
    hit = Counter(differing_bits(packet, got)[0] for _, got in b.got)
    assert sorted(hit) == list(range(160, 224))


def test_a_packet_with_nothing_after_its_header_is_not_corrupted() -> None:
    net, b = one_way(LinkParams(corrupt=1.0), [(0, ipv4())])
    assert net.records[0].fate == "delivered" and b.got == [(1000, ipv4())]
    assert net.stats[(A, B)].corrupted == 0


def test_the_duplicate_of_a_corrupted_packet_carries_the_bytes_as_sent() -> None:
    packet = ipv4(b"payload")
    _, b = one_way(LinkParams(corrupt=1.0, duplicate=1.0), [(0, packet)])
    assert b.got[0][1] != packet and b.got[1][1] == packet


# -- serialization queue -----------------------------------------------------------


def test_queue_tail_drops_then_accepts_as_the_backlog_drains() -> None:
    params = LinkParams(delay_us=0, rate_bps=8000, queue_bytes=300)  # 1 byte per ms
    packet = ipv4(bytes(80))  # 100 bytes: 100 ms on the wire
    sends = [(0, packet)] * 5 + [(100_000, packet)] * 2
    net, b = one_way(params, sends)
    assert [r.fate for r in net.records] == [
        "delivered", "delivered", "delivered", "queue-drop", "queue-drop",
        "delivered", "queue-drop",
    ]
    assert [t for t, _ in b.got] == [100_000, 200_000, 300_000, 400_000]
    assert net.stats[(A, B)].queue_drops == 3
    assert net.link(A, B).backlog_bytes(400_000) == 0


def test_a_lost_packet_still_used_the_link() -> None:
    params = LinkParams(delay_us=10, rate_bps=1_000_000)
    packet = ipv4(bytes(105))  # 1000 us at 1 Mbit/s
    net, b = one_way(
        LinkParams(delay_us=10, rate_bps=1_000_000, loss=1.0), [(0, packet), (1, packet)],
        changes=[(0, params)],
    )
    # The change at time 0 is scheduled after the first send, so only packet 0 is lost.
    assert [r.fate for r in net.records] == ["lost", "delivered"]
    assert [t for t, _ in b.got] == [2010]


# -- jitter and clean links --------------------------------------------------------


def test_jitter_varies_the_delay_within_bounds() -> None:
    net, _ = one_way(LinkParams(delay_us=1000, jitter_us=500), stream(500, spacing_us=2000))
    delays = [r.delivered_us - r.sent_us for r in net.records if r.delivered_us is not None]
    assert min(delays) >= 1000 and max(delays) <= 1500
    assert len(set(delays)) > 100


clean_params = st.builds(
    LinkParams,
    delay_us=st.integers(0, 50_000),
    rate_bps=st.none() | st.integers(1_000, 10_000_000_000),
    jitter_us=st.integers(0, 20_000),
)


@settings(max_examples=80, deadline=None)
@given(
    params=clean_params,
    seed=st.integers(0, 2**32),
    sends=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 1480)), max_size=40),
)
def test_a_clean_link_delivers_every_packet_exactly_once_in_order(
    params: LinkParams, seed: int, sends: list[tuple[int, int]]
) -> None:
    packets = [(t, ipv4(bytes(size), ident=i)) for i, (t, size) in enumerate(sorted(sends))]
    net, b = one_way(params, packets, seed=seed)
    assert [p for _, p in b.got] == [p for _, p in packets]
    for (sent, _), (arrived, _) in zip(packets, b.got, strict=True):
        assert arrived >= sent + params.delay_us
        if params.rate_bps is None and params.jitter_us == 0:
            assert arrived == sent + params.delay_us
    assert all(r.fate == "delivered" for r in net.records)


probability = st.floats(0.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(
    loss=probability, duplicate=probability, reorder=probability, corrupt=probability,
    queue=st.none() | st.integers(0, 4000), seed=st.integers(0, 1000),
)
def test_counters_and_records_agree(
    loss: float, duplicate: float, reorder: float, corrupt: float, queue: int | None, seed: int
) -> None:
    params = LinkParams(delay_us=500, rate_bps=5_000_000, loss=loss, duplicate=duplicate,
                        reorder=reorder, corrupt=corrupt, queue_bytes=queue, jitter_us=200)
    net, b = one_way(params, stream(200, spacing_us=50, size=100), seed=seed)
    s = net.stats[(A, B)]
    fates = Counter(r.fate for r in net.records)
    assert s.sent == 200 and s.bytes == 200 * 120
    assert s.lost == fates["lost"] and s.queue_drops == fates["queue-drop"]
    assert s.duplicated == fates["duplicate"] and s.corrupted == fates["corrupted"]
    assert s.delivered == len(b.got) == s.sent - s.lost - s.queue_drops + s.duplicated
    assert sorted(t for t, _ in b.got) == [t for t, _ in b.got]
