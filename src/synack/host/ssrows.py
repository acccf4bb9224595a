"""The rows ``synack ss`` prints, with what ``-i`` and ``-e`` add: for every socket of
a host, its state, queues, addresses, descriptor and (asked for) its ``tcp_info`` line
as iproute2's ``ss -ti`` prints it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from synack.tcp.info import ss_info
from synack.tcp.state import State

if TYPE_CHECKING:
    from synack.stack import Stack


def ss_rows(stack: Stack, now: int, *, info: bool = False) -> list[dict[str, Any]]:
    """Listeners, half-open and open connections, TIME_WAIT entries, as JSON-ready dicts."""
    rows: list[dict[str, Any]] = []

    def row(state: State, recv_q: int, send_q: int, local: tuple[str, int],
            peer: tuple[str, int], fd: int = -1, line: str | None = None) -> None:
        r: dict[str, Any] = {"state": state.value, "recv_q": recv_q, "send_q": send_q,
                             "local": list(local), "peer": list(peer), "fd": fd}
        if line is not None:
            r["info"] = line
        rows.append(r)

    for lst in stack.listeners.values():
        row(State.LISTEN, len(lst.accept_queue), lst.max_backlog, lst.local,
            ("::" if ":" in lst.local[0] else "0.0.0.0", 0),
            lst.fd)
    half_open = list(stack.listeners.values())
    if stack.forward is not None:       # a forwarder's handshakes (host/forward.py)
        half_open += stack.forward.lsts.values()
    for lst in half_open:
        for c in lst.syn_queue.values():
            row(c.state, 0, 0, c.local, c.remote, -1, ss_info(c, now) if info else None)
    for c in stack.conns.values():
        row(c.state, c.recv_q, c.send_q, c.local, c.remote, max(c.fd, -1),
            ss_info(c, now) if info else None)
    for tw in stack.timewait.values():
        row(State.TIME_WAIT, 0, 0, tw.local, tw.remote)
    return rows
