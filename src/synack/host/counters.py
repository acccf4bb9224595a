"""The host's counters under the names ``nstat`` prints (Linux's SNMP MIB and its
TcpExt extensions), from :attr:`Stack.stats` and :attr:`Sysctl.mib`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from synack.stack import Stack

# Stack.stats keys that have a Linux name.
_LINUX_NAMES = {
    "segments in": "TcpInSegs",
    "segments out": "TcpOutSegs",
    "resets sent": "TcpOutRsts",
    "listen overflows": "TcpExtListenOverflows",
    "syncookies sent": "TcpExtSyncookiesSent",
    "syncookies received": "TcpExtSyncookiesRecv",
    "syncookies failed": "TcpExtSyncookiesFailed",
    "icmp: out of window": "TcpExtOutOfWindowIcmps",
}


def nstat(stack: Stack) -> dict[str, int]:
    """Every counter with a Linux name, sorted by name."""
    out = dict(stack.cfg.mib)
    for key, name in _LINUX_NAMES.items():
        if stack.stats[key]:
            out[name] = out.get(name, 0) + stack.stats[key]
    out["TcpCurrEstab"] = sum(1 for c in stack.conns.values() if c.state.name == "ESTABLISHED")
    return dict(sorted(out.items()))


def summary(stack: Stack) -> dict[str, int]:
    """``ss -s``'s TCP line: sockets by kind."""
    states = [c.state.name for c in stack.conns.values()]
    return {
        "total": len(states) + len(stack.timewait) + len(stack.listeners),
        "estab": states.count("ESTABLISHED"),
        "synrecv": sum(len(lst.syn_queue) for lst in stack.listeners.values()),
        "orphaned": stack.orphans,
        "timewait": len(stack.timewait),
        "listening": len(stack.listeners),
    }
