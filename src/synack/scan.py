"""A SYN scanner (``nmap -sS`` semantics), sans I/O.

Theory of operation
-------------------
For each port a bare SYN goes out from one raw source port, never through a
connection: a SYN,ACK means *open* (and the half-open connection is torn down
at once with a RST whose sequence number is the SYN,ACK's acknowledgment, as the
kernel under nmap does), a RST means *closed*, and silence after the retries,
or an ICMP unreachable, means *filtered*. Replies are matched by port and
checked against the sequence numbers sent, so stray or forged segments do not
count.

At most ``max_parallel`` probes are outstanding and at most ``rate`` are sent
per second. The timeout starts at ``timeout_us`` (nmap's 1 s) and follows the
measured round trips, like RFC 6298's RTO, within [``min_timeout_us``,
``timeout_us``] -- so a scan of a host on a fast link is not paced by its
filtered ports' first timeout more than once.

:class:`SynScanner` is the state machine: ``receive`` / ``transmit`` /
``next_deadline`` / ``tick`` like a Stack, all taking ``now``. :class:`ScanHost`
puts it beside a Stack for a driver (the link loop or the simulator): replies
to the probe port go to the scanner, everything else to the stack. An IPv6
target (``nmap -6 -sS``) is probed from the host's IPv6 address; ICMPv6
destination unreachable marks a port filtered.
"""

from __future__ import annotations

import random
import socket as _socket
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from synack.stack import Offload, Stack
from synack.wire.errors import ParseError
from synack.wire.icmp import DEST_UNREACH, parse_icmp
from synack.wire.icmp6 import Icmp6Message, parse_icmp6
from synack.wire.ipv4 import PROTO_ICMP, PROTO_TCP, build_tcp_packet, parse_ipv4, parse_tcp
from synack.wire.ipv6 import PROTO_ICMPV6, build_tcp6_packet, parse_ipv6
from synack.wire.tcp import ACK, RST, SYN, TcpSegment

INITIAL_TIMEOUT_US = 1_000_000   # nmap --initial-rtt-timeout 1000ms
MIN_TIMEOUT_US = 100_000         # nmap --min-rtt-timeout 100ms
PROBE_WINDOW = 1024              # what nmap's SYN probes advertise
PROBE_MSS = 1460                 # nmap's only option on a -sS probe


@dataclass
class PortResult:
    """What one port answered."""

    port: int
    state: str          # "open", "closed" or "filtered"
    reason: str         # "syn-ack", "reset", "no-response", "host-unreach", ...
    rtt_us: int | None = None


@dataclass
class _Probe:
    sent_at: int
    tries: int


_ICMP_REASONS = {0: "net-unreach", 1: "host-unreach", 2: "proto-unreach", 3: "port-unreach",
                 9: "net-prohibited", 10: "host-prohibited", 13: "admin-prohibited"}
# nmap's reasons for ICMPv6 destination unreachable codes (RFC 4443 3.1).
_ICMP6_REASONS = {0: "no-route", 1: "admin-prohibited", 3: "addr-unreach", 4: "port-unreach"}


def parse_ports(spec: str) -> list[int]:
    """nmap's ``-p`` syntax: ``22``, ``1-1024``, ``22,80,8000-8100``, ``-`` (1-65535)."""
    if spec.strip() == "-":
        return list(range(1, 65536))
    ports: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"bad port specification {spec!r}")
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s) if lo_s else 1
            hi = (int(hi_s) if hi_s else 65535) if sep else lo
        except ValueError:
            raise ValueError(f"bad port specification {part!r}") from None
        if not (0 <= lo <= hi <= 65535):
            raise ValueError(f"bad port range {part!r} (ports are 0-65535)")
        ports.update(range(lo, hi + 1))
    if not ports:
        raise ValueError("no ports to scan")
    return sorted(ports)


class SynScanner:
    """Scan ``ports`` of ``target`` from ``src`` (see the module docstring)."""

    def __init__(self, src: str, target: str, ports: Iterable[int], *,
                 src_port: int | None = None, seed: int | None = None, retries: int = 1,
                 timeout_us: int = INITIAL_TIMEOUT_US, min_timeout_us: int = MIN_TIMEOUT_US,
                 max_parallel: int = 100, rate: float | None = None, ttl: int = 64) -> None:
        if max_parallel < 1:
            raise ValueError("max_parallel must be at least 1")
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive")
        self.src, self.target = src, target
        self.rng = random.Random(seed)
        self.src_port = src_port if src_port is not None else self.rng.randrange(40000, 65000)
        self.ports = list(dict.fromkeys(ports))
        self.retries, self.max_parallel, self.rate, self.ttl = retries, max_parallel, rate, ttl
        self.max_timeout_us, self.min_timeout_us = timeout_us, min(min_timeout_us, timeout_us)
        self.offload: Offload | None = None
        self.results: dict[int, PortResult] = {}
        self.started_at: int | None = None
        self.finished_at: int | None = None
        self.probes_sent = 0
        self._todo: deque[int] = deque(self.ports)
        self._flight: dict[int, _Probe] = {}
        self._seqs: dict[int, list[int]] = {}   # every ISN sent to a port, for late replies
        self._out: list[bytes] = []
        self._next_send = 0
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._ident = self.rng.getrandbits(16)

    # ------------------------------------------------------------ queries
    @property
    def done(self) -> bool:
        """Every port has a verdict."""
        return not self._todo and not self._flight

    @property
    def timeout_us(self) -> int:
        """The current probe timeout (RFC 6298 style, clamped)."""
        if self._srtt is None:
            return self.max_timeout_us
        rto = int(self._srtt + 4 * self._rttvar)
        return min(max(rto, self.min_timeout_us), self.max_timeout_us)

    def latency_us(self) -> int | None:
        """The smallest round trip measured (nmap's "Host is up (...s latency)")."""
        rtts = [r.rtt_us for r in self.results.values() if r.rtt_us is not None]
        return min(rtts) if rtts else None

    # ------------------------------------------------------------ packets
    def owns(self, packet: bytes) -> bool:
        """Whether ``packet`` is a reply for this scan (cheap: addresses and port only)."""
        if len(packet) >= 44 and packet[0] >> 4 == 6:
            return self._owns6(packet)
        if len(packet) < 24 or packet[0] >> 4 != 4:
            return False
        hl = (packet[0] & 0x0F) * 4
        if _socket.inet_ntoa(packet[16:20]) != self.src:
            return False
        if packet[9] == PROTO_TCP:
            return (len(packet) >= hl + 4 and _socket.inet_ntoa(packet[12:16]) == self.target
                    and int.from_bytes(packet[hl + 2:hl + 4], "big") == self.src_port)
        if packet[9] == PROTO_ICMP and len(packet) >= hl + 8 + 20 + 4:
            inner = hl + 8
            ihl = (packet[inner] & 0x0F) * 4
            return (packet[hl] == DEST_UNREACH and packet[inner + 9] == PROTO_TCP
                    and _socket.inet_ntoa(packet[inner + 16:inner + 20]) == self.target
                    and int.from_bytes(packet[inner + ihl:inner + ihl + 2], "big")
                    == self.src_port)
        return False

    def _owns6(self, packet: bytes) -> bool:
        if _socket.inet_ntop(_socket.AF_INET6, packet[24:40]) != self.src:
            return False
        if packet[6] == PROTO_TCP:
            return (_socket.inet_ntop(_socket.AF_INET6, packet[8:24]) == self.target
                    and int.from_bytes(packet[42:44], "big") == self.src_port)
        # ICMPv6 destination unreachable quoting one of our probes (IPv6 + TCP ports).
        return (packet[6] == PROTO_ICMPV6 and len(packet) >= 48 + 44 and packet[40] == 1
                and packet[48 + 6] == PROTO_TCP
                and _socket.inet_ntop(_socket.AF_INET6, packet[72:88]) == self.target
                and int.from_bytes(packet[88:90], "big") == self.src_port)

    def receive(self, packet: bytes, *, now: int, csum_valid: bool = False) -> None:
        """A reply (one :meth:`owns` accepted). Malformed ones are ignored."""
        try:
            if packet[0] >> 4 == 6:
                ip6, body = parse_ipv6(packet)
                if ip6.proto == PROTO_ICMPV6:
                    msg = parse_icmp6(body, ip6.src, ip6.dst, verify_checksum=not csum_valid)
                    if isinstance(msg, Icmp6Message) and msg.type == 1:
                        self._on_unreach(msg.original_data,
                                         _ICMP6_REASONS.get(msg.code, "unreach"), now)
                    return
                seg = parse_tcp(body, ip6.src, ip6.dst, verify_checksum=not csum_valid)
            else:
                ip, body = parse_ipv4(packet, verify_checksum=not csum_valid)
                if ip.proto == PROTO_ICMP:
                    self._on_icmp(parse_icmp(body, verify_checksum=not csum_valid), now)
                    return
                seg = parse_tcp(body, ip.src, ip.dst, verify_checksum=not csum_valid)
        except ParseError:
            return
        port = seg.src_port
        sent = self._seqs.get(port)
        if sent is None or not seg.flags & ACK or (seg.ack - 1) & 0xFFFFFFFF not in sent:
            return          # not an answer to one of our probes
        if seg.flags & RST:
            self._verdict(port, "closed", "reset", now)
        elif seg.flags & SYN:
            # Tear the half-open connection down, as the kernel does under nmap.
            self._emit(port, seg.ack, RST)
            self._verdict(port, "open", "syn-ack", now)

    def transmit(self, *, now: int) -> list[bytes]:
        """Probes (and RSTs) due now."""
        self._send_probes(now)
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> int | None:
        """The next probe timeout, or the next send slot (0 before the start: now)."""
        if self.started_at is None:
            return 0 if self._todo else None
        best: int | None = None
        tmo = self.timeout_us
        for p in self._flight.values():
            t = p.sent_at + tmo
            if best is None or t < best:
                best = t
        if self._todo and len(self._flight) < self.max_parallel and (
                best is None or self._next_send < best):
            best = self._next_send
        return best

    def tick(self, *, now: int) -> None:
        """Start, send what the window and rate allow, retry or give up on timeouts."""
        tmo = self.timeout_us
        for port, p in list(self._flight.items()):
            if now >= p.sent_at + tmo:
                if p.tries > self.retries:
                    self._verdict(port, "filtered", "no-response", now)
                else:
                    self._probe(port, now, retry=p)
        self._send_probes(now)

    # ------------------------------------------------------------ internals
    def _send_probes(self, now: int) -> None:
        if self.started_at is None:
            self.started_at = self._next_send = now
        while self._todo and len(self._flight) < self.max_parallel and now >= self._next_send:
            self._probe(self._todo.popleft(), now)
            if self.rate is not None:
                self._next_send = max(self._next_send, now - int(1e6 / self.rate)) + int(
                    1e6 / self.rate)

    def _probe(self, port: int, now: int, retry: _Probe | None = None) -> None:
        seq = self.rng.getrandbits(32)
        self._seqs.setdefault(port, []).append(seq)
        if retry is None:
            self._flight[port] = _Probe(now, 1)
        else:
            retry.sent_at, retry.tries = now, retry.tries + 1
        self.probes_sent += 1
        self._emit(port, seq, SYN, mss=PROBE_MSS)

    def _emit(self, port: int, seq: int, flags: int, mss: int | None = None) -> None:
        seg = TcpSegment(src_port=self.src_port, dst_port=port, seq=seq, flags=flags,
                         window=PROBE_WINDOW if flags & SYN else 0, mss=mss)
        self._ident = (self._ident + 1) & 0xFFFF
        partial = self.offload is not None and self.offload.tx_csum
        kw: dict[str, Any] = {"csum_partial": True} if partial else {}
        if ":" in self.target:
            self._out.append(build_tcp6_packet(self.src, self.target, seg, hop_limit=self.ttl,
                                               **kw))
            return
        self._out.append(build_tcp_packet(self.src, self.target, seg, ttl=self.ttl,
                                          ident=self._ident, **kw))

    def _verdict(self, port: int, state: str, reason: str, now: int) -> None:
        p = self._flight.pop(port, None)
        prev = self.results.get(port)
        rtt = None
        if p is not None and state != "filtered" and p.tries == 1:
            rtt = now - p.sent_at          # Karn: only unambiguous samples
            self._rtt_sample(rtt)
        if prev is not None and (prev.state != "filtered" or state == "filtered"):
            return      # the first answer wins; a late one still beats a timeout
        self.results[port] = PortResult(port, state, reason, rtt)
        if self.done and self.finished_at is None:
            self.finished_at = now

    def _on_icmp(self, msg: Any, now: int) -> None:
        if msg.type != DEST_UNREACH:
            return
        try:
            data = msg.original_data
        except ParseError:
            return
        self._on_unreach(data, _ICMP_REASONS.get(msg.code, "unreach"), now)

    def _on_unreach(self, data: bytes, reason: str, now: int) -> None:
        """An unreachable quoting ``data`` (ports and sequence number of a probe)."""
        if len(data) < 8:
            return
        port = int.from_bytes(data[2:4], "big")
        seq = int.from_bytes(data[4:8], "big")
        sent = self._seqs.get(port)
        if sent is None or seq not in sent:
            return
        self._verdict(port, "filtered", reason, now)

    def _rtt_sample(self, rtt: int) -> None:
        # RFC 6298 2.2/2.3 with its alpha 1/8 and beta 1/4.
        if self._srtt is None:
            self._srtt, self._rttvar = float(rtt), rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt

    # ------------------------------------------------------------ output
    def report(self, *, hide_over: int = 25) -> str:
        """The result in the layout of ``nmap -sS``'s port table."""
        rows = [self.results[p] for p in sorted(self.results)]
        counts: dict[str, list[PortResult]] = {}
        for r in rows:
            counts.setdefault(r.state, []).append(r)
        hidden = {s for s in ("closed", "filtered") if len(counts.get(s, ())) > hide_over}
        lines = [f"synack scan report for {self.target}"]
        lat = self.latency_us()
        if lat is not None:
            lines.append(f"Host is up ({lat / 1e6:.5f}s latency).")
        shown = [r for r in rows if r.state not in hidden]
        if hidden:
            parts = []
            for s in ("closed", "filtered"):
                if s in hidden:
                    group = counts[s]
                    reasons: dict[str, int] = {}
                    for r in group:
                        reasons[r.reason] = reasons.get(r.reason, 0) + 1
                    why = max(reasons, key=lambda k: reasons[k])
                    parts.append(f"{len(group)} {s} tcp ports ({why})")
            if not shown:
                lines.append(f"All {len(rows)} scanned ports on {self.target} are in "
                             "ignored states.")
            lines.append("Not shown: " + ", ".join(parts))
        if shown:
            names = [f"{r.port}/tcp" for r in shown]
            pw = max(len("PORT"), *map(len, names)) + 1
            sw = max(len("STATE"), *(len(r.state) for r in shown)) + 1
            lines.append(f"{'PORT':<{pw}}{'STATE':<{sw}}SERVICE")
            for name, r in zip(names, shown):
                lines.append(f"{name:<{pw}}{r.state:<{sw}}{service_name(r.port)}")
        return "\n".join(lines)


def service_name(port: int) -> str:
    """The name /etc/services gives ``port``/tcp, or "unknown" (as nmap prints)."""
    try:
        return _socket.getservbyport(port, "tcp")
    except OSError:
        return "unknown"


class ScanHost:
    """A Stack with a :class:`SynScanner` beside it, as one host for a driver."""

    def __init__(self, stack: Stack, scanner: SynScanner) -> None:
        self.stack, self.scanner = stack, scanner
        scanner.offload = stack.offload

    @property
    def offload(self) -> Offload | None:
        """The link's offloads, shared by the stack and the scanner."""
        return self.stack.offload

    @offload.setter
    def offload(self, value: Offload | None) -> None:
        self.stack.offload = value
        self.scanner.offload = value

    def receive(self, packet: bytes, *, now: int, csum_valid: bool = False) -> None:
        """Replies to the probe port go to the scanner, the rest to the stack."""
        if self.scanner.owns(packet):
            self.scanner.receive(packet, now=now, csum_valid=csum_valid)
        else:
            self.stack.receive(packet, now=now, csum_valid=csum_valid)

    def receive_local(self, packet: bytes, *, now: int) -> None:
        """The host's own ICMP errors (ARP gave up) go to the stack."""
        self.stack.receive_local(packet, now=now)

    def transmit(self, *, now: int) -> list[bytes]:
        """Probes first, then the stack's packets."""
        return self.scanner.transmit(now=now) + self.stack.transmit(now=now)

    def transmit_gso(self, *, now: int) -> list[tuple[bytes, int]]:
        """Like :meth:`transmit`, with GSO sizes (probes are never super-segments)."""
        probes = [(p, 0) for p in self.scanner.transmit(now=now)]
        return probes + self.stack.transmit_gso(now=now)

    def next_deadline(self) -> int | None:
        """The earlier of the two."""
        a, b = self.scanner.next_deadline(), self.stack.next_deadline()
        return a if b is None else b if a is None else min(a, b)

    def tick(self, *, now: int) -> None:
        """Run whichever timers are due."""
        t = self.scanner.next_deadline()
        if t is not None and t <= now:
            self.scanner.tick(now=now)
        t = self.stack.next_deadline()
        if t is not None and t <= now:
            self.stack.tick(now=now)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stack, name)
