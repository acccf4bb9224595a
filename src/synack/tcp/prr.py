"""Proportional Rate Reduction (RFC 6937), as Linux's tcp_cwnd_reduction().

Theory of operation
-------------------
When fast recovery starts, cwnd must come down from ``prior_cwnd`` to
``ssthresh``. Dropping it at once stalls the sender (nothing may leave until
the pipe drains below the new window); NewReno's inflation sends bursts. PRR
spreads the reduction over the round trip instead: for every segment the peer
reports delivered (``prr_delivered``), the sender may send ``ssthresh /
prior_cwnd`` of one, so that after one round trip ``ssthresh`` segments have
left in all (``prr_out``).

Once the pipe has drained below ``ssthresh`` (further losses), PRR lets it
grow back toward ``ssthresh`` like slow start: at most as many segments as
were delivered on this ACK, or as many as were delivered and not yet answered
(``prr_delivered - prr_out``), plus one more when the ACK advanced SND.UNA
and found no new loss -- the "slow start reduction bound" variant Linux uses
(its conservative bound otherwise). The first ACK of recovery always lets one
segment out: the fast retransmission.

Linux sets ``cwnd = in_flight + sndcnt`` on each ACK; so does :meth:`Prr.on_ack`,
with everything counted in segments.
"""

from __future__ import annotations


class Prr:
    """PRR's three counters for one recovery episode."""

    __slots__ = ("delivered", "out", "prior_cwnd")

    def __init__(self, prior_cwnd: int) -> None:
        self.prior_cwnd = max(prior_cwnd, 1)  # Linux tp->prior_cwnd
        self.delivered = 0                    # Linux tp->prr_delivered
        self.out = 0                          # Linux tp->prr_out

    def on_ack(self, *, newly_acked_sacked: int, newly_lost: bool, una_advanced: bool,
               in_flight: int, ssthresh: int) -> int | None:
        """The cwnd after an ACK that delivered ``newly_acked_sacked`` segments
        (mirrors tcp_cwnd_reduction()); None when the ACK delivered nothing."""
        if newly_acked_sacked <= 0:
            return None
        self.delivered += newly_acked_sacked
        delta = ssthresh - in_flight
        if delta < 0:
            # Proportional part: ssthresh / prior_cwnd of what was delivered, rounded up.
            sndcnt = (ssthresh * self.delivered + self.prior_cwnd - 1) // self.prior_cwnd \
                - self.out
        else:
            sndcnt = max(self.delivered - self.out, newly_acked_sacked)
            if una_advanced and not newly_lost:
                sndcnt += 1
            sndcnt = min(delta, sndcnt)
        # The fast retransmission goes out on the first ACK of recovery.
        sndcnt = max(sndcnt, 0 if self.out else 1)
        return in_flight + sndcnt
