"""Initial sequence numbers (RFC 6528) and the injectable source behind them.

``ISN = M + F(localip, localport, remoteip, remoteport, secretkey)`` where M is
a clock ticking every 4 microseconds and F a keyed hash. An off-path attacker
cannot guess F, and M makes a reused 4-tuple start ahead of its previous
incarnation. Tests and demos replace the whole source with a fixed sequence.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Iterator

#: ``isn(local_ip, local_port, remote_ip, remote_port, now_us) -> int``
IsnSource = Callable[[str, int, str, int, int], int]


class Rfc6528:
    """The RFC 6528 generator with a secret key drawn from ``rng``."""

    def __init__(self, rng: random.Random) -> None:
        self._key = rng.getrandbits(128).to_bytes(16, "big")
        # The keyed state, set up once: a copy per ISN is cheaper than keying again.
        self._keyed = hashlib.blake2s(key=self._key, digest_size=4)

    def __call__(self, lip: str, lport: int, rip: str, rport: int, now: int) -> int:
        h = self._keyed.copy()
        h.update(f"{lip}:{lport}>{rip}:{rport}".encode())
        return (int.from_bytes(h.digest(), "big") + now // 4) & 0xFFFFFFFF


class FixedIsn:
    """Hands out the given ISNs in order (for transcripts and the seeds' example)."""

    def __init__(self, values: Iterable[int]) -> None:
        self._values: Iterator[int] = iter(values)

    def __call__(self, lip: str, lport: int, rip: str, rport: int, now: int) -> int:
        try:
            return next(self._values) & 0xFFFFFFFF
        except StopIteration:
            raise RuntimeError("FixedIsn ran out of initial sequence numbers") from None
