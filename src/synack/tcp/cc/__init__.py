"""Pluggable congestion control, chosen by name as Linux's ``tcp_congestion_control``.

Every algorithm is a :class:`CongestionControl` (see ``base`` for the events the
connection delivers and what each one does); :func:`create` builds one by name.
"""

from __future__ import annotations

from .base import INFINITE_SSTHRESH, CongestionControl
from .cubic import Cubic, HystartParams
from .reno import Reno

REGISTRY: dict[str, type[CongestionControl]] = {"reno": Reno, "cubic": Cubic}
AVAILABLE: tuple[str, ...] = tuple(sorted(REGISTRY))


def create(name: str, *, mss: int, now: int,
           hystart: HystartParams | None = None) -> CongestionControl:
    """A new controller for a connection; ``name`` as in ``net.ipv4.tcp_congestion_control``;
    ``hystart``: CUBIC's module parameters (Linux's defaults when None)."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown congestion control {name!r} (available: {' '.join(AVAILABLE)})"
        ) from None
    if cls is Cubic and hystart is not None:
        return Cubic(mss=mss, now=now, hystart=hystart)
    return cls(mss=mss, now=now)


__all__ = ["AVAILABLE", "INFINITE_SSTHRESH", "REGISTRY", "CongestionControl", "Cubic",
           "HystartParams", "Reno", "create"]
