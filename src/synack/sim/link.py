"""One direction of a simulated point-to-point link: timing and impairments.

Theory of operation
-------------------
A link between hosts ``a`` and ``b`` is two independent :class:`LinkDirection`
objects, ``a>b`` and ``b>a``.  The network offers each packet to a direction
with :meth:`LinkDirection.offer`, which decides everything about it at once and
returns a :class:`Transit`: its fate and, if it gets through, its arrival time
and the bytes that arrive.  Nothing is decided later, so a run is a pure
function of the seed and the packets offered.

A packet goes through these stages, in this order::

    serialization queue --(tail drop)--> wire (serialize, propagate) --> loss
        --> corruption, duplication, reordering, jitter --> arrival

* **Queue.**  With ``rate_bps`` set, packets serialize one after another:
  ``start = max(now, busy_until)``, ``serialization = ceil(bits * 1e6 / rate)``.
  The backlog is every byte not yet fully serialized (the packet on the wire
  included, as for Linux ``bfifo``); a packet that would take it past
  ``queue_bytes`` is tail-dropped and never occupies the link.  With no rate
  there is no queue, and ``queue_bytes`` has no effect.
* **ECN marking.**  With ``ecn_mark_bytes`` set (and a rate), the queue acts
  like an AQM qdisc with ``ecn`` (RED, CoDel, fq_codel): a packet that arrives
  while the backlog holds more than ``ecn_mark_bytes`` is marked Congestion
  Experienced (RFC 3168 section 5: the IP header's ECN field set to 0b11, the
  IPv4 header checksum updated) if it is ECN-capable (ECT(0) or ECT(1)), and
  dropped (a ``queue-drop``) if it is Not-ECT, as the qdisc would drop it
  instead.  A packet already CE goes through as it is.  Marking happens on
  entry; the marked bytes are what arrives.  Tail drop at ``queue_bytes`` comes
  first, whatever the packet's ECN field.
* **Loss** happens in transit, after serialization: a lost packet still used
  its share of the link's capacity.
* **Arrival** is ``start + serialization + delay_us + jitter``, raised if needed
  to the arrival time of the previous packet in this direction, so that jitter
  (and a smaller ``delay_us`` set mid-run) never reorders on its own.  A packet
  chosen for **reordering** is then held back a further ``reorder_delay_us``;
  later packets may overtake it, but it overtakes nothing.
* A **duplicate** copy arrives right behind the original (same time, delivered
  after it), carrying the bytes as sent; it does not use link capacity, as if
  made past the bottleneck.
* **Corruption** flips one bit after the IPv4 header (TCP header or payload), so
  the transport checksum is what catches it.

Randomness: every packet offered draws exactly six numbers from the
direction's own :class:`random.Random`, whatever the parameters and whatever
happens to it.  The n-th packet therefore always meets the same dice: raising
``loss`` from 0.1 to 0.2 loses a superset of the packets lost before, and
turning on duplication does not change which packets are lost.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

from synack.wire.ecn import CE, NOT_ECT, ip_ecn, mark_ce

IPV4_MIN_HEADER = 20  # RFC 791: IHL is at least 5 32-bit words


@dataclass(frozen=True)
class LinkParams:
    """Properties of one direction of a link.

    Probabilities are per packet and independent of each other; ``reorder``,
    ``duplicate`` and ``corrupt`` apply only to packets that are not lost.
    """

    delay_us: int = 1000
    """One-way propagation delay."""
    rate_bps: int | None = None
    """Serialization rate in bits per second; ``None`` means infinitely fast."""
    loss: float = 0.0
    """Probability that a packet is dropped in transit."""
    duplicate: float = 0.0
    """Probability that a packet is delivered twice."""
    reorder: float = 0.0
    """Probability that a packet is held back by ``reorder_delay_us`` extra."""
    reorder_delay_us: int | None = None
    """Hold-back for reordered packets; ``None`` means ``max(delay_us, 1000)``."""
    corrupt: float = 0.0
    """Probability that one random bit after the IPv4 header is flipped."""
    queue_bytes: int | None = None
    """Tail-drop limit of the serialization queue; ``None`` means unbounded."""
    jitter_us: int = 0
    """Uniform extra delay in ``0..jitter_us``; never reorders by itself."""
    ecn_mark_bytes: int | None = None
    """Backlog above which ECN-capable packets are marked CE and Not-ECT ones
    dropped (an AQM qdisc with ``ecn``); ``None``: no marking. Needs ``rate_bps``."""

    def __post_init__(self) -> None:
        if self.delay_us < 0:
            raise ValueError(f"delay_us must be >= 0, got {self.delay_us}")
        if self.rate_bps is not None and self.rate_bps <= 0:
            raise ValueError(f"rate_bps must be > 0 or None, got {self.rate_bps}")
        for name in ("loss", "duplicate", "reorder", "corrupt"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
        if self.reorder_delay_us is not None and self.reorder_delay_us < 0:
            raise ValueError(f"reorder_delay_us must be >= 0, got {self.reorder_delay_us}")
        if self.queue_bytes is not None and self.queue_bytes < 0:
            raise ValueError(f"queue_bytes must be >= 0 or None, got {self.queue_bytes}")
        if self.jitter_us < 0:
            raise ValueError(f"jitter_us must be >= 0, got {self.jitter_us}")
        if self.ecn_mark_bytes is not None and self.ecn_mark_bytes < 0:
            raise ValueError(f"ecn_mark_bytes must be >= 0 or None, got {self.ecn_mark_bytes}")

    @property
    def effective_reorder_delay_us(self) -> int:
        """The hold-back actually applied to a reordered packet."""
        if self.reorder_delay_us is not None:
            return self.reorder_delay_us
        return max(self.delay_us, 1000)


@dataclass
class LinkStats:
    """Counters of one link direction.

    ``sent`` and ``bytes`` count every packet offered (``bytes`` in octets of
    IP packet).  ``delivered`` counts packets handed to the receiving host so
    far, duplicate copies included; when nothing is in flight,
    ``delivered == sent - lost - queue_drops - no_route + duplicated``.
    """

    sent: int = 0
    bytes: int = 0
    delivered: int = 0
    lost: int = 0
    queue_drops: int = 0
    no_route: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    ce_marked: int = 0
    """Packets marked CE on entry to the queue (``ecn_mark_bytes``)."""


class Transit(NamedTuple):
    """What a link direction decided for one packet (a tuple: cheap to make)."""

    fate: str
    """``"delivered"``, ``"corrupted"``, ``"lost"`` or ``"queue-drop"``."""
    arrival_us: int | None
    """When the packet reaches the far end; ``None`` if it never does."""
    data: bytes | None
    """The bytes that arrive (a bit flipped if corrupted); ``None`` if dropped."""
    reordered: bool = False
    duplicate: bool = False
    """Whether an extra copy of the sent bytes arrives right after this one."""


class LinkDirection:
    """State of one direction of a link: its parameters, queue, dice and counters."""

    def __init__(self, src: str, dst: str, params: LinkParams, rng: random.Random) -> None:
        self.src = src
        self.dst = dst
        self.params = params
        self.stats = LinkStats()
        self._rng = rng
        self._busy_until = 0  # when the serializer finishes the last accepted packet
        self._backlog: deque[tuple[int, int]] = deque()  # (serialized_at, size)
        self._backlog_bytes = 0
        self._last_arrival = 0  # FIFO frontier: no later packet arrives before this

    def __repr__(self) -> str:
        return f"LinkDirection({self.src}>{self.dst}, {self.params!r})"

    def backlog_bytes(self, now: int) -> int:
        """Bytes accepted but not yet fully serialized at ``now``."""
        backlog = self._backlog
        while backlog and backlog[0][0] <= now:
            self._backlog_bytes -= backlog.popleft()[1]
        return self._backlog_bytes

    def offer(self, data: bytes, now: int) -> Transit:
        """Hand one packet to this direction at ``now`` and decide its fate."""
        p = self.params
        stats = self.stats
        size = len(data)
        stats.sent += 1
        stats.bytes += size
        rnd = self._rng.random
        # Always six draws, in this order, so each packet meets fixed dice.
        u_loss, u_dup, u_reorder, u_corrupt, u_jitter, u_bit = (
            rnd(), rnd(), rnd(), rnd(), rnd(), rnd()
        )

        start = now
        if p.rate_bps is not None:
            if p.queue_bytes is not None and self.backlog_bytes(now) + size > p.queue_bytes:
                stats.queue_drops += 1
                return Transit("queue-drop", None, None)
            if p.ecn_mark_bytes is not None and self.backlog_bytes(now) > p.ecn_mark_bytes:
                ecn = ip_ecn(data)
                if ecn == NOT_ECT:
                    stats.queue_drops += 1      # the AQM drops what it cannot mark
                    return Transit("queue-drop", None, None)
                if ecn != CE:
                    data = mark_ce(data)
                    stats.ce_marked += 1
            start = max(now, self._busy_until)
            serialized = start - (-size * 8_000_000 // p.rate_bps)  # ceiling division
            self._busy_until = serialized
            if p.queue_bytes is not None or p.ecn_mark_bytes is not None:
                self._backlog.append((serialized, size))
                self._backlog_bytes += size
            start = serialized

        if u_loss < p.loss:
            stats.lost += 1
            return Transit("lost", None, None)

        arrival = start + p.delay_us
        if p.jitter_us:
            arrival += int(u_jitter * (p.jitter_us + 1))
        arrival = max(arrival, self._last_arrival)
        self._last_arrival = arrival

        reordered = u_reorder < p.reorder
        if reordered:
            stats.reordered += 1
            arrival += p.effective_reorder_delay_us

        fate = "delivered"
        delivered = data
        if u_corrupt < p.corrupt:
            flipped = _flip_bit_after_header(data, u_bit)
            if flipped is not None:
                stats.corrupted += 1
                fate = "corrupted"
                delivered = flipped

        duplicate = u_dup < p.duplicate
        if duplicate:
            stats.duplicated += 1
        return Transit(fate, arrival, delivered, reordered, duplicate)


def _flip_bit_after_header(data: bytes, u: float) -> bytes | None:
    """Flip the bit chosen by ``u`` in ``[0, 1)`` among those after the IP header
    (the IPv6 header has no checksum of its own: corrupting it is not modelled).

    Returns ``None`` when the packet has nothing after its header.
    """
    header = (data[0] & 0x0F) * 4 if data else 0
    header = 40 if data and data[0] >> 4 == 6 else max(header, IPV4_MIN_HEADER)
    nbits = (len(data) - header) * 8
    if nbits <= 0:
        return None
    bit = header * 8 + int(u * nbits)
    out = bytearray(data)
    out[bit >> 3] ^= 0x80 >> (bit & 7)
    return bytes(out)
