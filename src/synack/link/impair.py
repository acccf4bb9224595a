"""Impairments on a real link, in synack's own process: delay, loss, reordering.

``tc qdisc add dev D root netem delay 10ms loss 2% reorder 5%`` is the usual way
to make a link lossy for the kernel. Kernels built without ``sch_netem`` (the
one on these machines is one) refuse it, so :class:`ImpairedLink` does the same
in userspace: it wraps a real link (a TAP or TUN to the kernel) and passes every
packet, in both directions, through the simulator's
:class:`~synack.sim.LinkDirection` -- the very dice ``synack sim`` uses. The
kernel's TCP and synack's both see the delay, the losses and the reordering.

Packets wait in a heap until their arrival time; the loop learns when to come
back from :meth:`ImpairedLink.next_deadline` and calls :meth:`ImpairedLink.tick`.
Software GRO (:mod:`synack.link.gro`), when the wrapped link has it, moves out
here and runs on what arrives: the dice fall on wire packets, not on
super-segments, and a corrupted packet still fails its checksum.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from typing import TYPE_CHECKING

from synack.link.gro import Gro
from synack.sim.link import LinkDirection, LinkParams
from synack.units import parse_ratio, parse_time_us
from synack.wire.gso import segment_all

if TYPE_CHECKING:
    from synack.link.base import Link
    from synack.stack import Offload

__all__ = ["ImpairedLink", "parse_impairment"]


def parse_impairment(spec: str) -> LinkParams:
    """``"delay 10ms loss 2% reorder 5% duplicate 1% corrupt 0.1%"``, netem's words.

    Raises ``ValueError`` with a one-line reason for anything else.
    """
    words = spec.split()
    if not words or len(words) % 2:
        raise ValueError(f"bad impairment {spec!r}: expected pairs like 'delay 10ms loss 2%'")
    fields: dict[str, float | int] = {}
    for key, value in zip(words[::2], words[1::2], strict=True):
        if key == "delay":
            fields["delay_us"] = parse_time_us(value)
        elif key in ("loss", "reorder", "duplicate", "corrupt"):
            fields[key] = parse_ratio(value)
        else:
            raise ValueError(f"bad impairment {spec!r}: unknown word {key!r} "
                             "(use delay, loss, reorder, duplicate, corrupt)")
    fields.setdefault("delay_us", 0)
    return LinkParams(**fields)  # type: ignore[arg-type]


class ImpairedLink:
    """A :class:`~synack.link.base.Link` whose packets cross simulated impairments.

    ``outbound`` applies to what the stack sends, ``inbound`` to what the wire
    brings; ``seed`` makes the dice reproducible (the timing, of course, is real).
    """

    def __init__(self, inner: Link, *, outbound: LinkParams, inbound: LinkParams,
                 seed: int = 0) -> None:
        self.inner = inner
        rng = random.Random(seed)
        self._out = LinkDirection("synack", "wire", outbound, random.Random(rng.getrandbits(64)))
        self._in = LinkDirection("wire", "synack", inbound, random.Random(rng.getrandbits(64)))
        self._order = itertools.count()      # ties keep the order packets were decided in
        self._out_q: list[tuple[int, int, bytes, int]] = []      # (arrival, n, packet, gso)
        self._in_q: list[tuple[int, int, bytes, bool]] = []      # (arrival, n, packet, csum)
        self.stats: Counter[str] = Counter()
        self._gro: Gro | None = getattr(inner, "gro", None)
        if self._gro is not None:
            inner.gro = None  # type: ignore[attr-defined]   # merged after the dice instead

    @property
    def offload(self) -> Offload | None:  # type: ignore[override]
        return self.inner.offload

    @property
    def name(self) -> str:
        return str(getattr(self.inner, "name", "impaired"))

    @property
    def mtu(self) -> int:
        return int(getattr(self.inner, "mtu", 1500))

    def fileno(self) -> int:
        return self.inner.fileno()

    def _decide(self, direction: LinkDirection, packet: bytes, now: int) -> list[tuple[int, bytes]]:
        t = direction.offer(packet, now)
        if t.data is None or t.arrival_us is None:
            self.stats[f"{direction.src}>{direction.dst} {t.fate}"] += 1
            return []
        copies = [(t.arrival_us, t.data)]
        if t.duplicate:
            copies.append((t.arrival_us, packet))
        return copies

    def recv_packets(self, *, now: int) -> list[tuple[bytes, bool]]:
        """What the wire brought, held back until its (impaired) arrival time."""
        for packet, csum_valid in self.inner.recv_packets(now=now):
            for arrival, data in self._decide(self._in, packet, now):
                heapq.heappush(self._in_q, (arrival, next(self._order), data, csum_valid))
        out: list[tuple[bytes, bool]] = []
        q = self._in_q
        while q and q[0][0] <= now:
            _, _, data, csum_valid = heapq.heappop(q)
            out.append((data, csum_valid))
        if self._gro is not None and out:
            return self._gro.merge([data for data, _ in out])
        return out

    def send_packets(self, packets: list[tuple[bytes, int]], *, now: int) -> None:
        """Decide each packet's fate now; those that survive leave at their time.

        Super-segments for a device without TSO are cut first: the impairments
        act on the frames the wire carries."""
        off = self.inner.offload
        if off is None or not off.tso_max:
            packets = [(f, 0) for f in segment_all(
                packets, csum_partial=off is not None and off.tx_csum)]
        for packet, gso in packets:
            for arrival, data in self._decide(self._out, packet, now):
                heapq.heappush(self._out_q, (arrival, next(self._order), data, gso))
        self._release(now)

    def _release(self, now: int) -> None:
        q = self._out_q
        due: list[tuple[bytes, int]] = []
        while q and q[0][0] <= now:
            _, _, data, gso = heapq.heappop(q)
            due.append((data, gso))
        if due:
            self.inner.send_packets(due, now=now)

    def next_deadline(self) -> int | None:
        """The next held packet's arrival, or the wrapped link's own timer."""
        times = [q[0][0] for q in (self._out_q, self._in_q) if q]
        inner = getattr(self.inner, "next_deadline", None)
        t = inner() if inner is not None else None
        if t is not None:
            times.append(t)
        return min(times) if times else None

    def tick(self, *, now: int) -> None:
        """Send what is due outbound and run the wrapped link's timers.

        Inbound packets that are due are handed over by the loop's next
        :meth:`recv_packets` (the loop calls it after a link tick).
        """
        self._release(now)
        inner_tick = getattr(self.inner, "tick", None)
        if inner_tick is not None:
            inner_tick(now=now)

    def close(self) -> None:
        self.inner.close()
