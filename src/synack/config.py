"""Configuration keyed by Linux sysctl names, with Linux's defaults.

Each :class:`Stack` owns one :class:`Sysctl`. Values are validated the way
``sysctl -w`` would reject them: unknown names and out-of-range values raise
:class:`SysctlError` with a one-line reason. Defaults are those of a current
kernel (6.x) on a machine with a few GiB of memory.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from dataclasses import dataclass

from synack.counts import Counter


class SysctlError(ValueError):
    """An unknown sysctl name or a value it does not accept."""


@dataclass(frozen=True, slots=True)
class Knob:
    """One sysctl: its default, bounds and meaning."""

    name: str
    default: int | tuple[int, ...] | str
    help: str
    lo: int = 0
    hi: int = 2**31 - 1
    choices: tuple[str, ...] = ()

    def parse(self, text: str) -> int | tuple[int, ...] | str:
        """Convert ``text`` (as typed after ``NAME=``) to a valid value or raise."""
        if isinstance(self.default, str):
            value = text.strip()
            if self.choices and value not in self.choices:
                raise SysctlError(
                    f"{self.name}: {value!r} is not one of {', '.join(self.choices)}"
                )
            if self.name == "net.ipv4.tcp_fastopen_key" and value:
                from synack.tcp.fastopen import format_keys, parse_keys
                try:
                    return format_keys(parse_keys(value))
                except ValueError as exc:
                    raise SysctlError(f"{self.name}: {exc}") from None
            return value
        parts = text.replace(",", " ").split()
        want = len(self.default) if isinstance(self.default, tuple) else 1
        if len(parts) != want:
            raise SysctlError(f"{self.name}: expected {want} integer(s), got {text!r}")
        try:
            # Linux proc_dointvec reads with base 0: 0x402 is hex, as scripts write it.
            nums = tuple(int(p, 0) if "0x" in p.lower() else int(p)
                         for p in parts)
        except ValueError:
            raise SysctlError(f"{self.name}: {text!r} is not an integer") from None
        for n in nums:
            if not self.lo <= n <= self.hi:
                raise SysctlError(f"{self.name}: {n} is outside [{self.lo}, {self.hi}]")
        if isinstance(self.default, tuple):
            if list(nums) != sorted(nums):
                raise SysctlError(f"{self.name}: values must be in increasing order")
            return nums
        return nums[0]

    def format(self, value: int | tuple[int, ...] | str) -> str:
        """Render a value the way ``sysctl`` prints it."""
        if isinstance(value, tuple):
            return "\t".join(str(v) for v in value)
        return str(value)


_KNOBS = [
    Knob("net.core.somaxconn", 4096, "upper bound of a listen() backlog (accept queue)", 0),
    Knob("net.ipv4.ip_default_ttl", 64, "TTL of outgoing IPv4 packets", 1, 255),
    Knob("net.ipv6.conf.all.hop_limit", 64, "hop limit of outgoing IPv6 packets", 1, 255),
    Knob("net.ipv6.bindv6only", 0,
         "default IPV6_V6ONLY of new AF_INET6 sockets (0: they accept IPv4 too)", 0, 1),
    Knob("net.ipv6.auto_flowlabels", 1,
         "flow labels from a hash of the 4-tuple (0 off; 1, 3 on; 2 only on request)", 0, 3),
    Knob("net.ipv4.ip_local_port_range", (32768, 60999), "ephemeral ports for connect()",
         1, 65535),
    Knob("net.ipv4.tcp_abort_on_overflow", 0,
         "1: answer RST when the accept queue is full instead of dropping the ACK", 0, 1),
    Knob("net.ipv4.tcp_congestion_control", "cubic", "default congestion control",
         choices=("reno", "cubic")),
    Knob("net.ipv4.tcp_dsack", 1, "send D-SACK blocks for duplicate segments", 0, 1),
    Knob("net.ipv4.tcp_challenge_ack_limit", 2**31 - 1,
         "challenge ACKs per second, host-wide (2147483647: no host-wide limit)", 0),
    Knob("net.ipv4.tcp_early_retrans", 3,
         "tail loss probe: 3 or 4 on (RFC 8985 TLP), 0 to 2 off", 0, 4),
    Knob("net.ipv4.tcp_ecn", 2,
         "ECN (RFC 3168): 1 ask for it in SYNs and agree, 2 only agree when asked, 0 off "
         "(AccECN, Linux's 3 to 5, is not in synack)", 0, 2),
    Knob("net.ipv4.tcp_ecn_fallback", 1,
         "1: a retransmitted SYN no longer asks for ECN", 0, 1),
    Knob("net.ipv4.tcp_fastopen", 1,
         "TCP Fast Open bits: 0x1 client, 0x2 server, 0x4 client data without a cookie, "
         "0x200 server data without a cookie, 0x400 every listener without TCP_FASTOPEN",
         0),
    Knob("net.ipv4.tcp_fastopen_blackhole_timeout_sec", 0,
         "seconds active Fast Open would pause after a middlebox seems to drop it; "
         "synack has no such detection, so only 0 (off, Linux's default since 5.14)", 0, 0),
    Knob("net.ipv4.tcp_fastopen_key", "",
         "Fast Open cookie key(s), xxxxxxxx-xxxxxxxx-xxxxxxxx-xxxxxxxx[,backup] "
         "(empty: drawn at random on first use, as Linux does)"),
    Knob("net.ipv4.tcp_fin_timeout", 60,
         "seconds an orphaned connection stays in FIN_WAIT_2", 1),
    Knob("net.ipv4.tcp_notsent_lowat", 2**32 - 1,
         "bytes written and not yet sent above which a socket is not writable "
         "(TCP_NOTSENT_LOWAT's default; 4294967295: no limit)", 0, 2**32 - 1),
    Knob("net.ipv4.tcp_invalid_ratelimit", 500,
         "ms a connection waits before answering another invalid segment with an ACK", 0),
    Knob("net.ipv4.tcp_keepalive_intvl", 75, "seconds between keepalive probes", 1, 32767),
    Knob("net.ipv4.tcp_keepalive_probes", 9, "unanswered probes before the connection dies",
         1, 127),
    Knob("net.ipv4.tcp_keepalive_time", 7200, "idle seconds before the first keepalive probe",
         1, 32767),
    Knob("net.ipv4.tcp_mem", (49152, 65536, 98304),
         "pages (4 KiB) of TCP buffers for the whole host: below the first no pressure, "
         "above the second buffers stop growing, above the third new data is refused "
         "(Linux sizes these from RAM: a 4 GiB machine's)", 1),
    Knob("net.ipv4.tcp_max_orphans", 131072,
         "connections closed by their application and still closing; above it, RST", 0),
    Knob("net.ipv4.tcp_max_syn_backlog", 2048, "bound of the SYN (half-open) queue", 1),
    Knob("net.ipv4.tcp_max_tw_buckets", 131072, "bound of the TIME_WAIT table", 0),
    Knob("net.ipv4.tcp_orphan_retries", 0,
         "retransmissions of an orphaned connection (0 means 8)", 0, 255),
    Knob("net.ipv4.tcp_recovery", 1,
         "1: RACK loss detection (RFC 8985) with SACK; 0: RFC 6675 DupThresh", 0, 7),
    Knob("net.ipv4.tcp_retries1", 3,
         "no effect in synack (Linux re-checks the route and probes the path MTU after "
         "this many retransmissions; synack has no route cache)", 0, 255),
    Knob("net.ipv4.tcp_retries2", 15,
         "retransmissions before an established connection times out", 0, 255),
    Knob("net.ipv4.tcp_rfc1337", 0, "1: ignore RST in TIME_WAIT (RFC 1337)", 0, 1),
    Knob("net.ipv4.tcp_rmem", (4096, 131072, 6291456), "receive buffer min, default, max",
         1),
    Knob("net.ipv4.tcp_sack", 1, "offer and use selective acknowledgements", 0, 1),
    Knob("net.ipv4.tcp_syn_retries", 6, "SYN retransmissions of connect()", 1, 127),
    Knob("net.ipv4.tcp_synack_retries", 5, "SYN-ACK retransmissions of a listener", 0, 255),
    Knob("net.ipv4.tcp_syncookies", 1, "send SYN cookies when the SYN queue is full", 0, 2),
    Knob("net.ipv4.tcp_timestamps", 1, "offer and use RFC 7323 timestamps", 0, 1),
    Knob("net.ipv4.tcp_tw_reuse", 2,
         "reuse TIME_WAIT ports for connect(): 0 off, 1 on, 2 loopback only", 0, 2),
    Knob("net.ipv4.tcp_window_scaling", 1, "offer and use RFC 7323 window scaling", 0, 1),
    Knob("net.ipv4.tcp_wmem", (4096, 16384, 4194304), "send buffer min, default, max", 1),
    # CUBIC's HyStart: module parameters in Linux (/sys/module/tcp_cubic/parameters/NAME),
    # not sysctls; kept in the same table under the module's name.
    Knob("tcp_cubic.hystart", 1, "CUBIC leaves slow start early on HyStart's signals "
         "(Linux: /sys/module/tcp_cubic/parameters/hystart)", 0, 1),
    Knob("tcp_cubic.hystart_detect", 3, "HyStart's signals: 1 ACK train, 2 delay, 3 both "
         "(Linux: /sys/module/tcp_cubic/parameters/hystart_detect)", 0, 3),
    Knob("tcp_cubic.hystart_low_window", 16, "segments of cwnd below which HyStart "
         "does not act (Linux: /sys/module/tcp_cubic/parameters/hystart_low_window)", 0),
    Knob("tcp_cubic.hystart_ack_delta_us", 2000, "most microseconds between ACKs of one "
         "train (Linux: /sys/module/tcp_cubic/parameters/hystart_ack_delta_us)", 0),
]

KNOBS: dict[str, Knob] = {k.name: k for k in _KNOBS}


# Integer sysctls read for every packet, mirrored as plain attributes of the table
# (``cfg.ip_ttl``: no call); set() keeps them equal to the values.
_HOT = {"net.ipv4.ip_default_ttl": "ip_ttl", "net.ipv4.tcp_early_retrans": "early_retrans",
        "net.ipv4.tcp_notsent_lowat": "notsent_lowat",
        # and per SYN, or per connection
        "net.ipv4.tcp_syncookies": "syncookies", "net.ipv4.tcp_max_syn_backlog": "max_syn_backlog",
        "net.ipv4.tcp_fastopen": "fastopen", "net.ipv4.tcp_recovery": "recovery",
        "net.ipv4.tcp_max_orphans": "max_orphans"}


class Sysctl:
    """A host's sysctl table: ``cfg["net.ipv4.tcp_fin_timeout"]``."""

    ip_ttl: builtins.int          # net.ipv4.ip_default_ttl (_HOT)
    early_retrans: builtins.int   # net.ipv4.tcp_early_retrans
    notsent_lowat: builtins.int   # net.ipv4.tcp_notsent_lowat
    syncookies: builtins.int      # net.ipv4.tcp_syncookies
    max_syn_backlog: builtins.int  # net.ipv4.tcp_max_syn_backlog
    fastopen: builtins.int        # net.ipv4.tcp_fastopen
    recovery: builtins.int        # net.ipv4.tcp_recovery
    max_orphans: builtins.int     # net.ipv4.tcp_max_orphans

    def __init__(self, **overrides: int | tuple[int, ...] | str) -> None:
        # The host's counters under nstat's names (TcpExtTCPChallengeACK, ...). Linux keeps
        # them in struct net beside the sysctls; connections reach both through ``cfg``.
        self.mib: Counter[str] = Counter()
        # The host-wide challenge-ACK budget: [second it was drawn for, ACKs left].
        self.challenge_budget = [-1, 0]
        # Bytes held in every connection's send and receive queues (Linux
        # tcp_memory_allocated), and whether the host is under memory pressure.
        self.mem_used = 0
        self.mem_pressure = False
        self._mem_bytes: tuple[builtins.int, ...] = ()   # tcp_mem in bytes (_update_mem)
        # What the host's users compute from the values and keep until the next write
        # (a new connection's buffer sizes, pool and window scale: connection.py): any
        # set() empties it, so nothing derived outlives the values it came from.
        self.derived: dict[object, object] = {}
        self._values: dict[str, int | tuple[int, ...] | str] = {
            k.name: k.default for k in _KNOBS
        }
        self._update_mem()
        for name, attr in _HOT.items():
            setattr(self, attr, self._values[name])
        for key, value in overrides.items():
            self.set(key.replace("__", "."), value)

    def _update_mem(self) -> None:
        self._mem_bytes = tuple(pages * 4096 for pages in self.triple("net.ipv4.tcp_mem"))

    def __getitem__(self, name: str) -> int | tuple[int, ...] | str:
        try:
            return self._values[name]
        except KeyError:
            raise SysctlError(f"unknown sysctl {name!r}") from None

    def mem_add(self, delta: builtins.int) -> None:
        """Charge (or release) TCP buffer bytes; enters memory pressure above
        tcp_mem[1] and leaves it below tcp_mem[0] (Linux sk_enter/leave_memory_pressure)."""
        used = self.mem_used = self.mem_used + delta
        low, pressure, _high = self._mem_bytes
        if self.mem_pressure:
            if used < low:
                self.mem_pressure = False
        elif used > pressure:
            self.mem_pressure = True
            self.mib["TcpExtTCPMemoryPressures"] += 1

    def mem_over_limit(self) -> bool:
        """Above tcp_mem[2]: connections that already hold data may take no more."""
        return self.mem_used > self._mem_bytes[2]

    def mem_room(self) -> builtins.int:
        """Bytes the host may still queue before tcp_mem[2]."""
        room = self._mem_bytes[2] - self.mem_used
        return room if room > 0 else 0  # noqa: FURB136 - cheaper than max() at every send()

    def int(self, name: str) -> int:
        """An integer sysctl."""
        try:
            value = self._values[name]     # not self[name]: one call less, per segment
        except KeyError:
            raise SysctlError(f"unknown sysctl {name!r}") from None
        assert isinstance(value, int)
        return value

    def triple(self, name: str) -> tuple[builtins.int, ...]:
        """A sysctl holding several integers (``tcp_rmem``, port range)."""
        value = self[name]
        assert isinstance(value, tuple)
        return value

    def set(self, name: str, value: builtins.int | tuple[builtins.int, ...] | str) -> None:
        """Set ``name`` after validating ``value`` (a string is parsed as sysctl -w would)."""
        knob = KNOBS.get(name)
        if knob is None:
            raise SysctlError(f"unknown sysctl {name!r}")
        if isinstance(value, str) and not isinstance(knob.default, str):
            self._values[name] = knob.parse(value)
        else:
            self._values[name] = knob.parse(knob.format(value))
        self.derived.clear()
        attr = _HOT.get(name)
        if attr is not None:
            setattr(self, attr, self._values[name])
        if name == "net.ipv4.tcp_mem":
            self._update_mem()

    def assign(self, assignment: str) -> None:
        """Apply ``NAME=VALUE`` as ``sysctl -w`` does."""
        name, sep, value = assignment.partition("=")
        if not sep:
            raise SysctlError(f"expected NAME=VALUE, got {assignment!r}")
        self.set(name.strip(), value)

    def items(self) -> Iterator[tuple[str, builtins.int | tuple[builtins.int, ...] | str]]:
        """All sysctls, sorted by name."""
        return iter(sorted(self._values.items()))

    def format(self, name: str) -> str:
        """``NAME = VALUE`` as ``sysctl`` prints it."""
        return f"{name} = {KNOBS[name].format(self[name])}"
