"""Round-trip time estimation and the retransmission timeout (RFC 6298).

Linux's bounds, not the RFC's: the RFC asks for a 1 s minimum RTO, Linux uses
200 ms and floors the variance term rather than the sum, so a LAN connection
with a 1 ms RTT has an RTO of about 201 ms.
"""

from __future__ import annotations

RTO_INITIAL_US = 1_000_000  # RFC 6298 (2.1); Linux TCP_TIMEOUT_INIT
RTO_MIN_US = 200_000        # Linux TCP_RTO_MIN; RFC 6298 (2.4) says 1 s
RTO_MAX_US = 120_000_000    # Linux TCP_RTO_MAX; RFC 6298 (2.5) allows >= 60 s
RTO_FALLBACK_US = 3_000_000  # Linux TCP_TIMEOUT_FALLBACK; RFC 6298 (5.7): no sample from the SYN


class RttEstimator:
    """SRTT, RTTVAR and RTO, updated from RTT samples (microseconds)."""

    __slots__ = ("min_rtt", "rto", "rttvar", "samples", "srtt")

    def __init__(self) -> None:
        self.srtt: int | None = None
        self.rttvar: int = 0
        self.rto: int = RTO_INITIAL_US
        self.min_rtt: int | None = None
        self.samples = 0

    def sample(self, rtt_us: int) -> None:
        """Fold one measurement in (RFC 6298 2.2 and 2.3, alpha 1/8, beta 1/4)."""
        # (Comparisons, not min() and max(): those parse arguments, ten times the cost.)
        if rtt_us < 1:  # noqa: PLR1730
            rtt_us = 1
        self.samples += 1
        if self.min_rtt is None or rtt_us < self.min_rtt:
            self.min_rtt = rtt_us
        if self.srtt is None:
            self.srtt = rtt_us
            self.rttvar = rtt_us // 2
        else:
            self.rttvar = (3 * self.rttvar + abs(self.srtt - rtt_us)) // 4
            self.srtt = (7 * self.srtt + rtt_us) // 8
        # Linux tcp_set_rto(): srtt + max(4 * rttvar, rto_min) (at least rto_min, as
        # srtt >= 1), at most RTO_MAX.
        var = 4 * self.rttvar
        rto = self.srtt + (var if var > RTO_MIN_US else RTO_MIN_US)  # noqa: FURB136
        self.rto = rto if rto < RTO_MAX_US else RTO_MAX_US  # noqa: FURB136

    def backed_off(self, backoff: int) -> int:
        """The RTO after ``backoff`` consecutive timeouts (RFC 6298 5.5), capped at the max."""
        rto = self.rto << backoff
        return rto if rto < RTO_MAX_US else RTO_MAX_US  # noqa: FURB136


def retries_timeout_us(boundary: int, rto_base_us: int = RTO_MIN_US) -> int:
    """How long Linux keeps retransmitting before giving up after ``boundary`` retries.

    Linux ``tcp_model_timeout()``: the time ``boundary`` doublings from
    ``rto_base`` would take, with each interval capped at ``RTO_MAX``. For
    ``tcp_retries2 = 15`` this is 924.6 s.
    """
    thresh = 0
    while (rto_base_us << (thresh + 1)) <= RTO_MAX_US:
        thresh += 1
    if boundary <= thresh:
        return ((2 << boundary) - 1) * rto_base_us
    return ((2 << thresh) - 1) * rto_base_us + (boundary - thresh) * RTO_MAX_US
