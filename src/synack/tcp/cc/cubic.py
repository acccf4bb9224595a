"""CUBIC (RFC 9438) as Linux's tcp_cubic.c computes it, with HyStart.

Theory of operation
-------------------
After a loss at window W_max, cwnd follows a cubic in the time t since the
congestion-avoidance *epoch* began (RFC 9438 4.2, eq. 1 and 2)::

    W_cubic(t) = C * (t - K)**3 + W_max        K = cbrt((W_max - cwnd_epoch) / C)

so it climbs fast, flattens into a plateau at W_max (concave region, 4.4),
then probes beyond it ever faster (convex region, 4.5). Linux's arithmetic,
kept here integer for integer:

* The epoch starts at the first congestion-avoidance ACK after a loss (not at
  the loss), with cwnd_epoch the cwnd then (normally ssthresh). Time is kept in
  1/1024 s; C is ``bic_scale`` 41 * 10 / 1024 = 0.4004 (the RFC's 0.4).
* The target is ``W_cubic(t + min_rtt)``, where cwnd should be one RTT from now
  (RFC 9438 4.2). Growth toward it is ``tcp_cong_avoid_ai`` with
  ``cnt = cwnd / (target - cwnd)`` ACKs per +1, at least 2: at most 1.5 * cwnd
  per RTT, the RFC's clamp. At or above target, +1 per 100 windows.
* ``cnt`` is recomputed at most once per jiffy (1 ms here, HZ = 1000), and not
  at all while cwnd is unchanged for 31 jiffies (HZ / 32).
* Reno-friendly region (4.3): W_est grows by 1 per ``cwnd * 15 / 8`` segments
  acked (Linux's ``beta_scale``, the integer form of 1 / alpha_cubic with
  alpha_cubic = 3 (1 - beta) / (1 + beta)); while W_est > cwnd the faster
  of the two increases wins.
* Multiplicative decrease (4.6): ``ssthresh = max(cwnd * 717 / 1024, 2)``,
  beta = 0.7. Fast convergence (4.7): a loss below the previous W_max sets
  W_max = cwnd * (1 + beta) / 2, yielding bandwidth to newer flows.
* Timeout (4.8): Linux forgets everything (W_max = 0, min RTT, HyStart), so the
  next epoch starts with K = 0 at its own cwnd; with W_max = 0 growth is at
  least 5% per RTT (cnt <= 20).
* RTT samples within 1 s of an epoch's start are ignored, as in Linux (they
  are inflated by the queue that caused the loss).

HyStart (Ha and Rhee, "Taming the elephants", 2011; Linux's hystart_update(),
not RFC 9406 HyStart++) ends slow start before the first loss, once cwnd >= 16
(``hystart_low_window``), with either of two signals (``hystart_detect``: 1 the
ACK train, 2 the delay, 3 both, Linux's default). Rounds: one round ends when
everything in flight at its start is acknowledged (Linux compares SND.UNA with
the SND.NXT of the round's start; this object sees no sequence numbers and counts
segments acked instead).

* ACK train: ACKs of one round arriving at most ``hystart_ack_delta_us``
  (2 ms) apart form a train; once the train has lasted longer than half the
  minimum RTT (plus Linux's allowance for ACKs delayed by the sender's own
  pacing, ``hystart_ack_delay()``, at most 1 ms) the pipe is full: ssthresh =
  cwnd.
* Delay: after 8 RTT samples in a round, if the round's minimum RTT exceeds the
  all-time minimum by ``clamp(min_rtt / 8, 4 ms, 16 ms)``, ssthresh = cwnd.

The parameters are Linux's module parameters (``/sys/module/tcp_cubic/parameters``),
in synack's sysctl table as ``tcp_cubic.hystart`` and friends (:class:`HystartParams`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .base import INITIAL_CWND, CongestionControl

BETA = 717                  # Linux beta: 717 / 1024 = 0.7 (RFC 9438 beta_cubic)
BETA_SCALE = 1024           # Linux BICTCP_BETA_SCALE
CUBE_RTT_SCALE = 41 * 10    # Linux bic_scale * 10: C = 410 / 1024
CUBE_FACTOR = (1 << 40) // CUBE_RTT_SCALE  # Linux cube_factor: K**3 = factor * dW, K in 1/1024 s
RENO_BETA_SCALE = 8 * (BETA_SCALE + BETA) // 3 // (BETA_SCALE - BETA)  # Linux beta_scale = 15
JIFFY_US = 1000             # Linux HZ = 1000
CNT_CACHE_JIFFIES = 1000 // 32  # Linux HZ / 32: keep cnt while cwnd is unchanged this long
RTT_SKIP_US = 1_000_000     # Linux HZ: ignore RTT samples this long into an epoch
HYSTART_LOW_WINDOW = 16     # Linux hystart_low_window
HYSTART_ACK_TRAIN, HYSTART_DELAY = 1, 2   # Linux hystart_detect bits
GSO_MAX_SIZE = 65536        # Linux GSO_MAX_SIZE, for hystart_ack_delay()
HYSTART_MIN_SAMPLES = 8     # Linux HYSTART_MIN_SAMPLES
HYSTART_DELAY_MIN_US = 4000   # Linux HYSTART_DELAY_MIN
HYSTART_DELAY_MAX_US = 16000  # Linux HYSTART_DELAY_MAX
_NO_RTT = 1 << 62


class HystartParams(NamedTuple):
    """Linux's tcp_cubic module parameters for HyStart."""

    enabled: bool = True        # hystart
    detect: int = HYSTART_ACK_TRAIN | HYSTART_DELAY   # hystart_detect
    low_window: int = HYSTART_LOW_WINDOW              # hystart_low_window
    ack_delta_us: int = 2000                          # hystart_ack_delta_us


DEFAULT_HYSTART = HystartParams()


def _icbrt(x: int) -> int:
    """Integer cube root, floor (Linux cubic_root() approximates this)."""
    r = round(x ** (1 / 3))
    while r * r * r > x:
        r -= 1
    while (r + 1) ** 3 <= x:
        r += 1
    return r


class _Epoch:
    """CUBIC's curve and HyStart's round: made at the first change from their starting
    values, so that a connection that has not sent yet keeps twelve slots fewer."""

    __slots__ = ("ack_cnt", "cnt", "curr_rtt", "epoch_start", "k", "last_ack", "last_cwnd",
                 "last_time", "origin", "sample_cnt", "w_est", "w_max")

    def __init__(self, round_start: int = 0) -> None:
        self.cnt = 0                    #: ACKs per +1 segment in congestion avoidance
        self.w_max = 0                  #: Linux last_max_cwnd (segments)
        self.origin = 0                 #: Linux bic_origin_point: the plateau of this epoch
        self.k = 0                      #: 1/1024 s from epoch start to the plateau
        self.epoch_start: int | None = None  #: microseconds; None until the first CA ACK
        self.ack_cnt = 0                #: segments acked toward the next W_est step
        self.w_est = 0                  #: Linux tcp_cwnd: the Reno-friendly window
        self.last_cwnd = 0
        self.last_time = 0
        self.curr_rtt = _NO_RTT         #: HyStart: the round's minimum RTT
        self.sample_cnt = 0             #: HyStart: RTT samples in the round
        self.last_ack = round_start     #: HyStart: the last ACK of the ACK train


_FRESH = _Epoch()   # what a Cubic without an _Epoch of its own reads (never written)


class Cubic(CongestionControl):
    """CUBIC with Linux's integer arithmetic and HyStart (ACK train and delay)."""

    name = "cubic"

    __slots__ = ("_acked_total", "_ep", "_round_end", "_round_start", "delay_min", "found",
                 "hystart")

    _ep: _Epoch | None

    def __init__(self, *, mss: int, now: int, initial_cwnd: int = INITIAL_CWND,
                 hystart: HystartParams = DEFAULT_HYSTART) -> None:
        super().__init__(mss=mss, now=now, initial_cwnd=initial_cwnd)
        self.hystart = hystart
        self._acked_total = 0  # segments acked ever: HyStart's stand-in for snd_una
        # _reset() and _hystart_reset(0, now), inline (once per connection): no _Epoch
        # yet, and a round that starts now. (The round's end is kept here, not in the
        # _Epoch: the first ACK of data starts a new round, and a connection that is
        # never cwnd-limited needs no _Epoch for that.)
        self._ep = None
        self.delay_min = 0
        self.found = False
        self._round_start = now
        self._round_end = 0    # HyStart: the round ends when _acked_total passes it

    def fresh(self, mss: int, now: int) -> Cubic:
        """CongestionControl.fresh(), with CUBIC's fields as __init__ sets them (and the
        prototype's HyStart parameters)."""
        new = super().fresh(mss, now)       # (type(self): a Cubic)
        new.hystart = self.hystart
        new._acked_total = 0
        new._ep = None
        new.delay_min = 0
        new.found = False
        new._round_start = now
        new._round_end = 0
        return new

    def _epoch(self) -> _Epoch:
        """The curve and round state of this connection, made on first use (the ACK
        train's last ACK is the round's start until then)."""
        ep = self._ep
        if ep is None:
            ep = self._ep = _Epoch(self._round_start)
        return ep

    def _reset(self) -> None:
        """Linux bictcp_reset(): forget the curve, W_max and the min RTT."""
        self._ep = None                 # None: every field of an _Epoch at its start value
        self._round_end = 0
        self.delay_min = 0              #: microseconds; 0 = no sample yet
        self.found = False              #: HyStart has ended slow start

    def _hystart_reset(self, in_flight: int, now: int) -> None:
        """Linux bictcp_hystart_reset(): a new round starts now."""
        self._round_start = now
        self._round_end = self._acked_total + in_flight
        ep = self._ep
        if ep is not None:              # (else the round's fields read as their start)
            ep.last_ack = now
            ep.curr_rtt = _NO_RTT
            ep.sample_cnt = 0

    def ssthresh_after_loss(self) -> int:
        """cwnd * 0.7, at least 2 (Linux cubictcp_recalc_ssthresh)."""
        return max(self.cwnd * BETA // BETA_SCALE, 2)

    def on_ack(self, acked: int, now: int, rtt_us: int | None, in_flight: int,
               cwnd_limited: bool) -> None:
        """Take the RTT sample (Linux cubictcp_acked), then grow (cubictcp_cong_avoid)."""
        total = self._acked_total = self._acked_total + acked
        ep = self._ep
        if rtt_us is not None and (ep is None or ep.epoch_start is None
                                   or now - ep.epoch_start >= RTT_SKIP_US):
            delay = rtt_us if rtt_us > 0 else 1
            if self.delay_min == 0 or delay < self.delay_min:
                self.delay_min = delay
            cwnd = self.cwnd
            if not self.found and cwnd < self.ssthresh and (params := self.hystart).enabled:
                # _hystart_update()'s first step inline (Linux hystart_update(): a new
                # round), and its tests only from hystart_low_window on.
                if total > self._round_end:
                    # self._hystart_reset(in_flight, now), inline: a new round.
                    self._round_start = now
                    self._round_end = total + in_flight
                    if ep is not None:
                        ep.last_ack = now
                        ep.curr_rtt = _NO_RTT
                        ep.sample_cnt = 0
                if cwnd >= params.low_window:
                    self._hystart_update(delay, now)
        # super().on_ack(), inline (CongestionControl.on_ack(): once per ACK of data).
        self._last_busy = now
        if acked <= 0:
            return
        self._rto_repeat = False
        if not cwnd_limited:
            return
        if self.cwnd < self.ssthresh:
            # Linux tcp_slow_start(): grow to ssthresh at most, spill the rest.
            cwnd = self.cwnd + acked
            if cwnd > self.ssthresh:  # noqa: PLR1730 - cheaper than min()
                cwnd = self.ssthresh
            acked -= cwnd - self.cwnd
            self.cwnd = cwnd
            if not acked:
                return
        self._cong_avoid(acked, now)

    def _hystart_update(self, delay: int, now: int) -> None:
        """Linux hystart_update() once the round is current and cwnd is at least
        hystart_low_window: the ACK-train and delay tests."""
        params = self.hystart
        ep = self._ep
        last_ack = self._round_start if ep is None else ep.last_ack
        if params.detect & HYSTART_ACK_TRAIN and now - last_ack <= params.ack_delta_us:
            if ep is None:
                ep = self._ep = _Epoch(self._round_start)
            ep.last_ack = now
            # Half the minimum RTT, plus what pacing may have delayed (hystart_ack_delay():
            # four 64 KB bursts at the pacing rate, at most 1 ms; Linux paces slow start at
            # twice cwnd per RTT, here per minimum RTT). No pacing qdisc: halved.
            rate = 2 * self.cwnd * self.mss * 1_000_000 // max(self.delay_min, 1)
            ack_delay = min(1000, GSO_MAX_SIZE * 4 * 1_000_000 // max(rate, 1))
            if now - self._round_start > (self.delay_min + ack_delay) >> 1:
                self.found = True
                self.ssthresh = self.cwnd
        if params.detect & HYSTART_DELAY:
            if ep is None:
                ep = self._ep = _Epoch(self._round_start)
            ep.curr_rtt = min(ep.curr_rtt, delay)
            if ep.sample_cnt < HYSTART_MIN_SAMPLES:
                ep.sample_cnt += 1
                return
            threshold = min(max(self.delay_min >> 3, HYSTART_DELAY_MIN_US), HYSTART_DELAY_MAX_US)
            if ep.curr_rtt > self.delay_min + threshold:
                self.found = True
                self.ssthresh = self.cwnd

    def _cong_avoid(self, acked: int, now: int) -> None:
        self._cong_avoid_ai(self._update(acked, now), acked)

    def _update(self, acked: int, now: int) -> int:
        """Linux bictcp_update(): choose ``cnt`` from the cubic and Reno-friendly windows
        (and return it)."""
        cwnd = self.cwnd
        ep = self._ep
        if ep is None:
            ep = self._ep = _Epoch(self._round_start)
        ep.ack_cnt += acked
        # Per-ACK thrift, as Linux: the curve is evaluated at most once per jiffy,
        # and not at all while cwnd has not moved for HZ / 32.
        jiffies, last = now // JIFFY_US, ep.last_time // JIFFY_US
        if ep.last_cwnd == cwnd and jiffies - last <= CNT_CACHE_JIFFIES:
            return ep.cnt
        if ep.epoch_start is None or jiffies != last:
            ep.last_cwnd = cwnd
            ep.last_time = now
            if ep.epoch_start is None:
                ep.epoch_start = now
                ep.ack_cnt = acked
                ep.w_est = cwnd
                if ep.w_max <= cwnd:
                    ep.k = 0
                    ep.origin = cwnd
                else:
                    ep.k = _icbrt(CUBE_FACTOR * (ep.w_max - cwnd))
                    ep.origin = ep.w_max
            t = ((now - ep.epoch_start + self.delay_min) << 10) // 1_000_000
            offs = abs(t - ep.k)
            delta = (CUBE_RTT_SCALE * offs * offs * offs) >> 40  # C * (t - K)**3, segments
            target = ep.origin - delta if t < ep.k else ep.origin + delta
            cnt = cwnd // (target - cwnd) if target > cwnd else 100 * cwnd
            if ep.w_max == 0 and cnt > 20:
                cnt = 20  # no W_max (no loss yet, or a timeout): at least 5% per RTT
            ep.cnt = cnt
        # Reno-friendly region (RFC 9438 4.3).
        step = (cwnd * RENO_BETA_SCALE) >> 3
        if ep.ack_cnt > step:
            n = (ep.ack_cnt - 1) // step
            ep.ack_cnt -= n * step
            ep.w_est += n
        if ep.w_est > cwnd:
            max_cnt = cwnd // (ep.w_est - cwnd)
            ep.cnt = min(ep.cnt, max_cnt)
        ep.cnt = max(ep.cnt, 2)  # at most +1 per 2 ACKed: 1.5 * cwnd per RTT
        return ep.cnt

    def _on_loss(self, now: int, in_flight: int, *, timeout: bool) -> None:
        if timeout:  # Linux cubictcp_state(TCP_CA_Loss); RFC 9438 4.8
            self._reset()
            self._hystart_reset(in_flight, now)
            return
        ep = self._epoch()
        ep.epoch_start = None
        if self.cwnd < ep.w_max:
            ep.w_max = self.cwnd * (BETA_SCALE + BETA) // (2 * BETA_SCALE)  # fast convergence
        else:
            ep.w_max = self.cwnd

    def _on_tx_start(self, idle: int, now: int) -> None:
        # Application-limited, not congested: shift the curve instead of jumping along it.
        ep = self._ep
        if ep is not None and ep.epoch_start is not None and idle > 0:
            ep.epoch_start = min(ep.epoch_start + idle, now)

    def state(self) -> dict[str, float]:
        """Base numbers plus W_max, K (s), the epoch start (us, NaN if none), cnt, W_est."""
        s = super().state()
        ep = self._ep or _FRESH
        s.update(w_max=float(ep.w_max), k=ep.k / 1024, origin=float(ep.origin),
                 epoch_start=math.nan if ep.epoch_start is None else float(ep.epoch_start),
                 cnt=float(ep.cnt), w_est=float(ep.w_est), delay_min=float(self.delay_min),
                 hystart_found=float(self.found))
        return s
