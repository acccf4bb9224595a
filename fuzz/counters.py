"""Which inputs reach the TCP state machine: counted from the harness side, by wrapping
the entry points (``Connection.on_segment``, ``TimeWait.on_segment``, the listener's
``Stack._to_listener``) -- the core files are not edited."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from synack.stack import Stack
from synack.tcp.connection import Connection
from synack.tcp.timewait import TimeWait


@dataclass
class Counters:
    """Counts over the inputs run in this process."""

    inputs: int = 0
    inputs_reaching: int = 0        # inputs with a fuzzed segment into Connection.on_segment
    segments: int = 0               # segments the fuzz actions sent
    on_segment: int = 0             # ... that reached Connection.on_segment
    reached_tcp: int = 0            # ... that reached a connection, a TIME_WAIT entry or a listener
    _armed: bool = False
    _in_input: int = 0
    _tcp_in_input: int = 0

    @classmethod
    def install(cls) -> Counters:
        """Wrap the entry points (once per process) and return the counters."""
        c = cls()
        conn_on_segment = Connection.on_segment
        tw_on_segment = TimeWait.on_segment
        to_listener = Stack._to_listener

        def counted_conn(self: Connection, seg: Any, now: int) -> None:
            if c._armed:
                c._in_input += 1
                c._tcp_in_input += 1
            conn_on_segment(self, seg, now)

        def counted_tw(self: TimeWait, seg: Any, **kw: Any) -> Any:
            if c._armed:
                c._tcp_in_input += 1
            return tw_on_segment(self, seg, **kw)

        def counted_listener(self: Stack, lst: Any, key: Any, seg: Any, now: int,
                             *rest: Any) -> None:
            # A segment for a SYN_RECEIVED child goes on to Connection.on_segment and is
            # counted there; count the rest (SYNs, cookie ACKs) here.
            if c._armed and lst.syn_queue.get((key[2], key[3])) is None:
                c._tcp_in_input += 1
            to_listener(self, lst, key, seg, now, *rest)

        Connection.on_segment = counted_conn  # type: ignore[method-assign]
        TimeWait.on_segment = counted_tw  # type: ignore[method-assign]
        Stack._to_listener = counted_listener  # type: ignore[method-assign]
        return c

    def start_input(self) -> None:
        self._armed = False
        self._in_input = self._tcp_in_input = 0

    def after_build(self, world: Any) -> None:
        """The world is built: count from here (its own handshakes do not count)."""
        self._armed = True

    def end_input(self, segments: int) -> None:
        self._armed = False
        self.inputs += 1
        self.segments += segments
        self.on_segment += self._in_input
        self.reached_tcp += self._tcp_in_input
        if self._in_input:
            self.inputs_reaching += 1

    def as_dict(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}
