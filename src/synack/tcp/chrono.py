"""Where a sender's time goes, as Linux's ``tcp_chrono_*`` counts it for TCP_INFO.

While data is queued the connection is *busy*; while the peer's window stops it from
sending (``tcp_write_xmit()``: the next segment does not fit, tcp_snd_wnd_test()) it
is *rwnd limited* instead. One state runs at a time, a higher one displacing a
lower (tcp_chrono_start()); stopping one falls back to busy while data is queued,
else to none (tcp_chrono_stop()). ``tcpi_busy_time`` is the sum of every state's
time, ``tcpi_rwnd_limited`` that of the window's (microseconds).

The record is a list ``[state, since, busy, rwnd]`` made at the first write (an idle
connection keeps none).
"""

from __future__ import annotations

NONE, BUSY, RWND = 0, 1, 2


def start(ch: list[int], state: int, now: int) -> None:
    """tcp_chrono_start(): ``state`` begins unless a higher one runs."""
    if state > ch[0]:
        _switch(ch, state, now)


def stop(ch: list[int], state: int, queued: bool, now: int) -> None:
    """tcp_chrono_stop(): ``state`` ends, to busy while data is queued, else none."""
    if state == ch[0] or state == BUSY and not queued:
        _switch(ch, BUSY if queued else NONE, now)


def _switch(ch: list[int], state: int, now: int) -> None:
    if ch[0] != NONE:
        ch[1 + ch[0]] += now - ch[1]
    ch[0], ch[1] = state, now


def totals(ch: list[int] | None, now: int) -> tuple[int, int]:
    """(busy time in all, rwnd-limited time) up to ``now``, in microseconds."""
    if ch is None:
        return 0, 0
    busy, rwnd = ch[2], ch[3]
    if ch[0] == BUSY:
        busy += now - ch[1]
    elif ch[0] == RWND:
        rwnd += now - ch[1]
    return busy + rwnd, rwnd
