"""What a connection does with an ICMP error about one of its segments.

Theory of operation
-------------------
The stack has already found the connection from the 4-tuple in the embedded
TCP header and hands over the error's type, code, next-hop MTU and the
embedded sequence number. As Linux's ``tcp_v4_err`` does:

* the sequence number must lie in [SND.UNA, SND.NXT] (RFC 5927 4.1: a blind
  attacker has to guess it), else the message is dropped and counted;
* "fragmentation needed" (RFC 1191) lowers the path MTU -- never below
  Linux's ``net.ipv4.route.min_pmtu``, 552 -- re-syncs the MSS
  (``tcp_sync_mss``) and resends what was in flight at the new size
  (``tcp_simple_retransmit``: a loss state that leaves cwnd alone, since the
  units shrank, not the amount of data in the network);
* any other destination unreachable or time exceeded is turned into an errno
  (``icmp_err_convert``). During the handshake (SYN_SENT, or SYN_RECEIVED of a
  simultaneous open) it is a hard error: the connection aborts and connect()
  reports it. Once established it is a soft error (RFC 1122 4.2.3.9: routes
  come back): remembered, and reported instead of ETIMEDOUT if the connection
  later times out (Linux ``tcp_write_err``).

Mixed into :class:`~synack.tcp.connection.Connection`.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from synack import seq as sq
from synack.tcp.recovery import CaState
from synack.tcp.scoreboard import NO_SACKS
from synack.tcp.state import Event, State

if TYPE_CHECKING:
    from synack.tcp.connection import Connection

MIN_PMTU = 552   # Linux ip_rt_min_pmtu = 512 + 20 + 20 (net.ipv4.route.min_pmtu)
IP_TCP_HEADERS = 40
IP6_TCP_HEADERS = 60   # the fixed IPv6 header is 40 bytes (RFC 8200)
DEST_UNREACH, TIME_EXCEEDED = 3, 11
FRAG_NEEDED = 4

#: Linux icmp_err_convert[]: destination unreachable code -> (errno, fatal).
UNREACH_ERRNO: tuple[tuple[int, bool], ...] = (
    (errno.ENETUNREACH, False),    # 0 net unreachable
    (errno.EHOSTUNREACH, False),   # 1 host unreachable
    (errno.ENOPROTOOPT, True),     # 2 protocol unreachable
    (errno.ECONNREFUSED, True),    # 3 port unreachable
    (errno.EMSGSIZE, False),       # 4 fragmentation needed (handled as PMTU, not here)
    (errno.EOPNOTSUPP, False),     # 5 source route failed
    (errno.ENETUNREACH, True),     # 6 net unknown
    (errno.EHOSTDOWN, True),       # 7 host unknown
    (errno.ENONET, True),          # 8 host isolated
    (errno.ENETUNREACH, True),     # 9 net administratively prohibited
    (errno.EHOSTUNREACH, True),    # 10 host administratively prohibited
    (errno.ENETUNREACH, False),    # 11 net unreachable for TOS
    (errno.EHOSTUNREACH, False),   # 12 host unreachable for TOS
    (errno.EHOSTUNREACH, True),    # 13 communication administratively prohibited
    (errno.EHOSTUNREACH, True),    # 14 host precedence violation
    (errno.EHOSTUNREACH, True),    # 15 precedence cutoff
)


def ip_tcp_headers(local_ip: str) -> int:
    """Bytes of IP and TCP headers (no options) on a connection from ``local_ip``:
    Linux tcp_mtu_to_mss() takes the address family's network header length."""
    return IP6_TCP_HEADERS if ":" in local_ip else IP_TCP_HEADERS


def icmp_errno(type_: int, code: int) -> int:
    """The errno an ICMP error stands for (Linux icmp_err_convert, tcp_v4_err)."""
    if type_ == DEST_UNREACH:
        return UNREACH_ERRNO[code][0]
    return errno.EHOSTUNREACH          # time exceeded


def aborts_request(type_: int, code: int) -> bool:
    """Linux tcp_v4_err for a request socket (a passive open still in SYN_RECEIVED):
    time exceeded and net/host unreachable drop it; nothing else does."""
    return type_ == TIME_EXCEEDED or (type_ == DEST_UNREACH and code in (0, 1))


class IcmpErrorsMixin:
    """ICMP errors about a connection's own segments."""

    __slots__ = ()   # Connection's slots hold the state: no __dict__ per connection

    soft_error: int | None   # a Rare field of Connection (rare.py)
    rtt_seq: int | None      # set in Connection.__init__

    def on_icmp_error(self: Connection, *, type_: int, code: int, mtu: int, seq: int,
                      now: int, err: int | None = None) -> str:
        """One validated ICMP error naming this 4-tuple; returns what was done
        ("out of window", "pmtu", "hard error", "soft error", "ignored"). ``err``:
        the errno already converted (ICMPv6, Linux icmpv6_err_convert()); else it
        comes from the ICMPv4 type and code. A path MTU is given as IPv4's "fragmentation
        needed" (type 3 code 4) by either family."""
        self.now = now
        state = self.state
        if state in (State.CLOSED, State.TIME_WAIT, State.LISTEN):
            return "ignored"
        snd = self.snd
        # Linux compares with its snd_nxt, the highest sequence sent: synack's snd_max.
        if not sq.between(snd.snd_una, seq, sq.add(snd.snd_max, 1)):
            return "out of window"
        if type_ == DEST_UNREACH and code == FRAG_NEEDED:
            return self._pmtu_reduced(mtu, now)
        if err is None:
            err = icmp_errno(type_, code)
        if state in (State.SYN_SENT, State.SYN_RECEIVED):
            self._fail(err, now, Event.ABORT, f"ICMP error: {errno.errorcode[err]}")
            return "hard error"
        self.soft_error = err
        return "soft error"

    def _pmtu_reduced(self: Connection, mtu: int, now: int) -> str:
        """RFC 1191 / Linux tcp_v4_mtu_reduced(): a router could not forward a segment."""
        # Linux __ip_rt_update_pmtu(): a figure below min_pmtu (or none at all, from a
        # pre-RFC 1191 router) pins the path MTU at min_pmtu; it only ever goes down.
        new = mtu if mtu >= MIN_PMTU else min(self.pmtu, MIN_PMTU)
        if new >= self.pmtu:
            return "pmtu not lower"
        self.pmtu = new
        tfo = self.tfo
        if self.state is State.SYN_SENT and tfo is not None and tfo.data_len \
                and self.retransmits == 0:
            # A Fast Open SYN with data was too big (Linux tcp_simple_retransmit() for
            # SYN data): a plain SYN goes again at once, announcing the MSS of the new
            # path (tcp_advertise_mss() follows the route's lowered advmss); the data
            # follows the handshake.
            self.adv_mss = min(self.adv_mss, new - IP_TCP_HEADERS)
            self.retransmits += 1
            self.total_retrans += 1
            self.rtt_seq = None              # Karn: the SYN,ACK may answer either SYN
            self._send_syn(now)
            return "pmtu"
        if self.state is State.SYN_SENT or self.rcv is None:
            return "pmtu"                    # the MSS is computed when the SYN,ACK comes
        mss = self._mss_for_path()
        if mss >= self.mss:
            return "pmtu"
        self.mss = mss
        rec = self.rec
        rec.mss = rec.cc.mss = mss
        if rec.board is not None and rec.board is not NO_SACKS:
            rec.board.mss = mss
        rack = rec.rack
        if rack is not None and rack.recs:
            rack.mss = mss                   # (the shared idle one has no records)
        snd = self.snd
        if snd.in_flight() > 0 and self.state is not State.SYN_RECEIVED:
            # Linux tcp_simple_retransmit(): everything in flight was sent too big and is
            # lost; resend it at the new size without touching cwnd.
            if rec.state is not CaState.LOSS:
                rec.state = CaState.LOSS
                rec.recover = snd.snd_max
                rec.high_rxt = snd.snd_una
                rec.dupacks = 0
                rec.head_pending = False
            snd.rtx_high = snd.snd_max       # Karn: none of it can be timed now
            if rack is not None:
                rack.mark_all_lost()         # resent from the lost marks, as Linux does
            else:
                snd.snd_nxt = snd.snd_una
            self._output(now)
        return "pmtu"

    def _mss_for_path(self: Connection) -> int:
        """Linux tcp_mtu_to_mss(): the path MTU less headers and the options every
        segment carries, within what the peer accepts."""
        clamp = min(self.peer_mss, self.adv_mss, self.pmtu - ip_tcp_headers(self.local[0]))
        return max(clamp - self.option_len(), 64)
