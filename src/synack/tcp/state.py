"""TCP connection states and the table of legal transitions (RFC 9293 3.3.2).

Theory of operation
-------------------
Everything that moves a connection from one state to another is an
:class:`Event`, and :data:`TRANSITIONS` says, for each state, which events are
legal there and where they lead. The connection never assigns its state
directly: it calls :func:`next_state`, so an illegal move is a bug that raises
at once instead of a silent wrong state. The table is the RFC's state diagram
(Figure 5) written as data, plus the two ways Linux leaves a state that the
diagram does not draw: the orphaned FIN_WAIT_2 timeout (``tcp_fin_timeout``) and
the abortive close (RST).

::

                              +---------+ ---------\\      active OPEN
                              |  CLOSED |            \\    -----------
                              +---------+<---------\\   \\   create TCB
                                |     ^              \\   \\  snd SYN
                   passive OPEN |     |   CLOSE        \\   \\
                   ------------ |     | ----------       \\   \\
                    create TCB  |     | delete TCB         \\   \\
                                V     |                      \\   \\
            rcv RST (note 1)  +---------+            CLOSE    |    \\
         -------------------->|  LISTEN |          ---------- |     |
        /                     +---------+          delete TCB |     |
       /           rcv SYN      |     |     SEND              |     |
      /           -----------   |     |    -------            |     V
  +--------+      snd SYN,ACK  /       \\   snd SYN          +--------+
  |        |<-----------------           ------------------>|        |
  |  SYN   |                    rcv SYN                     |  SYN   |
  |  RCVD  |<-----------------------------------------------|  SENT  |
  |        |                  snd SYN,ACK                   |        |
  |        |------------------           -------------------|        |
  +--------+   rcv ACK of SYN  \\       /  rcv SYN,ACK       +--------+
     |         --------------   |     |   -----------
     |                x         |     |     snd ACK
     |                          V     V
     |  CLOSE                 +---------+
     | -------                |  ESTAB  |
     | snd FIN                +---------+
     |                 CLOSE    |     |    rcv FIN
     V                -------   |     |    -------
  +---------+         snd FIN  /       \\   snd ACK         +---------+
  |  FIN    |<----------------          ------------------>|  CLOSE  |
  | WAIT-1  |------------------                            |   WAIT  |
  +---------+          rcv FIN  \\                          +---------+
    | rcv ACK of FIN   -------   |                          CLOSE  |
    | --------------   snd ACK   |                         ------- |
    V        x                   V                         snd FIN V
  +---------+               +---------+                    +---------+
  |FINWAIT-2|               | CLOSING |                    | LAST-ACK|
  +---------+               +---------+                    +---------+
    |              rcv ACK of FIN |                 rcv ACK of FIN |
    |  rcv FIN     -------------- |    Timeout=2MSL -------------- |
    |  -------            x       V    ------------        x       V
     \\ snd ACK              +---------+delete TCB          +---------+
       -------------------->|TIME-WAIT|------------------->| CLOSED  |
                            +---------+                    +---------+
"""

from __future__ import annotations

import enum


class State(enum.Enum):
    """The eleven states of RFC 9293, named as ``ss`` and ``netstat`` show them."""

    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN_SENT"
    SYN_RECEIVED = "SYN_RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN_WAIT_1"
    FIN_WAIT_2 = "FIN_WAIT_2"
    CLOSE_WAIT = "CLOSE_WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST_ACK"
    TIME_WAIT = "TIME_WAIT"

    def __str__(self) -> str:
        return self.value


class Event(enum.Enum):
    """What can move a connection between states."""

    PASSIVE_OPEN = "passive OPEN"          # listen()
    ACTIVE_OPEN = "active OPEN"            # connect(): SYN sent
    RCV_SYN = "rcv SYN"                    # SYN in LISTEN, or simultaneous open in SYN_SENT
    RCV_SYN_ACK = "rcv SYN,ACK"            # our SYN acknowledged by the peer's SYN
    RCV_ACK_OF_SYN = "rcv ACK of SYN"      # SYN_RECEIVED -> ESTABLISHED
    CLOSE = "CLOSE"                        # close() or shutdown(SHUT_WR): FIN queued
    RCV_FIN = "rcv FIN"
    RCV_ACK_OF_FIN = "rcv ACK of FIN"
    RCV_FIN_ACK_OF_FIN = "rcv FIN + ACK of FIN"  # FIN_WAIT_1 straight to TIME_WAIT
    TIMEOUT = "timeout"                    # 2*MSL, tcp_fin_timeout, retries exhausted
    RCV_RST = "rcv RST"
    ABORT = "abort"                        # RST sent: linger 0, unread data, keepalive death


S = State
E = Event

#: ``TRANSITIONS[state][event] -> new state``. Anything absent is illegal.
TRANSITIONS: dict[State, dict[Event, State]] = {
    S.CLOSED: {E.PASSIVE_OPEN: S.LISTEN, E.ACTIVE_OPEN: S.SYN_SENT},
    S.LISTEN: {E.RCV_SYN: S.SYN_RECEIVED, E.CLOSE: S.CLOSED, E.ABORT: S.CLOSED},
    S.SYN_SENT: {
        E.RCV_SYN_ACK: S.ESTABLISHED,
        E.RCV_SYN: S.SYN_RECEIVED,          # simultaneous open
        E.CLOSE: S.CLOSED,
        E.RCV_RST: S.CLOSED,                # connection refused
        E.TIMEOUT: S.CLOSED,                # tcp_syn_retries exhausted
        E.ABORT: S.CLOSED,
    },
    S.SYN_RECEIVED: {
        E.RCV_ACK_OF_SYN: S.ESTABLISHED,
        E.CLOSE: S.FIN_WAIT_1,
        E.RCV_FIN: S.CLOSE_WAIT,            # ACK of SYN and FIN in one segment
        E.RCV_RST: S.CLOSED,                # a passive one goes back to its listener
        E.TIMEOUT: S.CLOSED,                # tcp_synack_retries exhausted
        E.ABORT: S.CLOSED,
    },
    S.ESTABLISHED: {
        E.CLOSE: S.FIN_WAIT_1,
        E.RCV_FIN: S.CLOSE_WAIT,
        E.RCV_RST: S.CLOSED,
        E.TIMEOUT: S.CLOSED,
        E.ABORT: S.CLOSED,
    },
    S.FIN_WAIT_1: {
        E.RCV_ACK_OF_FIN: S.FIN_WAIT_2,
        E.RCV_FIN: S.CLOSING,               # simultaneous close
        E.RCV_FIN_ACK_OF_FIN: S.TIME_WAIT,
        E.RCV_RST: S.CLOSED,
        E.TIMEOUT: S.CLOSED,
        E.ABORT: S.CLOSED,
    },
    S.FIN_WAIT_2: {
        E.RCV_FIN: S.TIME_WAIT,
        E.TIMEOUT: S.CLOSED,                # orphaned: tcp_fin_timeout
        E.RCV_RST: S.CLOSED,
        E.ABORT: S.CLOSED,
    },
    S.CLOSE_WAIT: {
        E.CLOSE: S.LAST_ACK,
        E.RCV_RST: S.CLOSED,
        E.TIMEOUT: S.CLOSED,
        E.ABORT: S.CLOSED,
    },
    S.CLOSING: {
        E.RCV_ACK_OF_FIN: S.TIME_WAIT,
        E.RCV_RST: S.CLOSED,
        E.TIMEOUT: S.CLOSED,
        E.ABORT: S.CLOSED,
    },
    S.LAST_ACK: {
        E.RCV_ACK_OF_FIN: S.CLOSED,
        E.RCV_RST: S.CLOSED,
        E.TIMEOUT: S.CLOSED,
        E.ABORT: S.CLOSED,
    },
    S.TIME_WAIT: {E.TIMEOUT: S.CLOSED, E.RCV_RST: S.CLOSED, E.ABORT: S.CLOSED},
}


class IllegalTransition(RuntimeError):
    """A state change the table does not allow: a bug in synack, never the peer's fault."""


# TRANSITIONS keyed by the members' names: an Enum member's hash is Python code
# (Enum.__hash__), a str's is cached; next_state() runs at every state change.
_BY_NAME: dict[str, dict[str, State]] = {
    s._name_: {e._name_: t for e, t in moves.items()} for s, moves in TRANSITIONS.items()}


#: The same table for a caller that reads it inline (Connection._change(), at every
#: state change): ``MOVES_BY_NAME[state._name_].get(event._name_)``, None where
#: :func:`next_state` would raise. Every state has an entry.
MOVES_BY_NAME = _BY_NAME


def next_state(state: State, event: Event) -> State:
    """Where ``event`` leads from ``state``; raises :class:`IllegalTransition` if nowhere."""
    try:
        return _BY_NAME[state._name_][event._name_]
    except KeyError:
        raise IllegalTransition(f"{event.value!r} is not legal in {state}") from None


#: States in which both sides' initial sequence numbers are known.
SYNCHRONIZED = frozenset(
    {S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2, S.CLOSE_WAIT, S.CLOSING, S.LAST_ACK,
     S.TIME_WAIT}
)
#: States in which the peer may still send us data.
CAN_RECEIVE = frozenset({S.ESTABLISHED, S.FIN_WAIT_1, S.FIN_WAIT_2})
#: States in which we may still send new data.
CAN_SEND = frozenset({S.ESTABLISHED, S.CLOSE_WAIT})
