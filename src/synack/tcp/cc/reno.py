"""Reno: additive increase, multiplicative decrease (RFC 5681).

Theory of operation
-------------------
Slow start, the loss responses and idle restart live in the base class. What
makes Reno is two rules:

* Congestion avoidance (RFC 5681 3.1, eq. 3) adds one segment per window of
  segments acknowledged, i.e. one per RTT. Like Linux ``tcp_reno_cong_avoid``
  -> ``tcp_cong_avoid_ai(tp, snd_cwnd, acked)`` it counts ACKed segments in
  ``cwnd_cnt`` instead of adding fractions of a segment, so stretch ACKs and
  SACKed segments count fully and nothing is lost to rounding.
* A loss halves the window: ``ssthresh = max(cwnd / 2, 2)`` (RFC 5681 eq. 4
  uses FlightSize; Linux ``tcp_reno_ssthresh`` uses cwnd, and so do we).
"""

from __future__ import annotations

from .base import CongestionControl


class Reno(CongestionControl):
    """RFC 5681 congestion control with Linux's segment-counting increase."""

    name = "reno"

    __slots__ = ()

    def ssthresh_after_loss(self) -> int:
        """Half the window, at least 2 segments (Linux tcp_reno_ssthresh)."""
        return max(self.cwnd >> 1, 2)

    def _cong_avoid(self, acked: int, now: int) -> None:
        self._cong_avoid_ai(self.cwnd, acked)
