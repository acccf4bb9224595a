"""IPv4 reassembly at the host (RFC 791 3.2; RFC 815's hole list, kept as a sorted map).

Theory of operation
-------------------
:meth:`Stack.receive <synack.stack.Stack.receive>` hands every fragment here.
Fragments are queued by (source, destination, protocol, identification); when
the last one (MF clear) has come and the pieces cover every byte from 0 to its
end, the datagram is rebuilt -- the first fragment's header with the fragment
fields cleared and the total length and checksum made anew -- and handed back
to be received as if it had come whole. As Linux does:

* a fragment overlapping one already queued (not an exact duplicate) discards
  the whole datagram (``ip_frag_queue``, since Linux 4.19: overlaps are only
  ever made by attackers);
* a queue that does not complete within ``ipfrag_time`` (30 s) is dropped; here
  lazily, when the next fragment arrives (no ICMP time exceeded is sent);
* fragments beyond ``ipfrag_high_thresh`` bytes held (4 MB) are dropped.

Everything dropped is counted in ``stack.stats`` under ``frag: ...``.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field

from synack.wire.checksum import internet_checksum
from synack.wire.errors import ParseError
from synack.wire.frag import parse_fragment

__all__ = ["IPFRAG_HIGH_THRESH", "IPFRAG_TIME_US", "Reassembler"]

IPFRAG_TIME_US = 30_000_000           # Linux net.ipv4.ipfrag_time, 30 s
IPFRAG_HIGH_THRESH = 4 * 1024 * 1024  # Linux net.ipv4.ipfrag_high_thresh
_U16 = struct.Struct("!H")

FragKey = tuple[int, int, int, int]   # src, dst, proto, ident


@dataclass(slots=True)
class _Queue:
    since: int
    pieces: dict[int, bytes] = field(default_factory=dict)    # offset -> data
    header: bytes | None = None       # the first fragment's header
    end: int | None = None            # the datagram's length, once the last one came
    held: int = 0


class Reassembler:
    """The fragment queues of one host."""

    def __init__(self, stats: Counter[str]) -> None:
        self.stats = stats
        self.queues: dict[FragKey, _Queue] = {}
        self.held = 0

    def add(self, packet: bytes, *, now: int) -> bytes | None:
        """One fragment in; the whole datagram (an IPv4 packet) when it completes."""
        self._expire(now)
        try:
            f = parse_fragment(packet)
        except ParseError as exc:
            self.stats["frag: dropped " + exc.kind] += 1
            return None
        if not f.data:
            self.stats["frag: dropped empty fragment"] += 1   # Linux: end == offset
            return None
        if self.held + len(f.data) > IPFRAG_HIGH_THRESH:
            self.stats["frag: dropped over ipfrag_high_thresh"] += 1
            return None
        key = (f.src, f.dst, f.proto, f.ident)
        q = self.queues.get(key)
        if q is None:
            q = self.queues[key] = _Queue(now)
        start, stop = f.offset, f.offset + len(f.data)
        if q.pieces.get(start) == f.data:
            self.stats["frag: duplicate"] += 1
            return None
        if (not f.more and q.end is not None) or (q.end is not None and stop > q.end) or any(
                o < stop and start < o + len(d) for o, d in q.pieces.items()):
            self.stats["frag: dropped overlapping datagram"] += 1
            self._drop(key)
            return None
        if not f.more:
            if any(o + len(d) > stop for o, d in q.pieces.items()):
                self.stats["frag: dropped overlapping datagram"] += 1
                self._drop(key)
                return None
            q.end = stop
        q.pieces[start] = f.data
        q.held += len(f.data)
        self.held += len(f.data)
        if start == 0:
            q.header = f.header
        if q.end is None or q.header is None or q.held != q.end:
            return None
        # No overlaps and as many bytes as the datagram has: the pieces tile it.
        self._drop(key)
        data = b"".join(q.pieces[o] for o in sorted(q.pieces))
        header = bytearray(q.header)
        _U16.pack_into(header, 2, len(header) + len(data))
        _U16.pack_into(header, 6, _U16.unpack_from(header, 6)[0] & 0x4000)   # keep DF only
        _U16.pack_into(header, 10, 0)
        _U16.pack_into(header, 10, internet_checksum(header))
        self.stats["frag: datagrams reassembled"] += 1
        return bytes(header) + data

    def _drop(self, key: FragKey) -> None:
        q = self.queues.pop(key)
        self.held -= q.held

    def _expire(self, now: int) -> None:
        # Queues are in arrival order (dict order): the oldest come first.
        while self.queues:
            key, q = next(iter(self.queues.items()))
            if now - q.since < IPFRAG_TIME_US:
                return
            self.stats["frag: dropped reassembly timeout"] += 1
            self._drop(key)
