"""The scenario library: each mechanism of the seeds, happening in the simulator.

Every scenario builds a small network (client 192.0.2.1, server 192.0.2.2,
10 ms each way unless said otherwise), runs applications on synack stacks,
and returns an :class:`Outcome`: the ladder, an explanation, the sysctls that
change the behaviour, and ``facts`` -- numbers read off the run that the tests
check and the explanation quotes. Nothing printed is written by hand: every
number comes from the segments and states of the run.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from synack.config import Sysctl
from synack.demo.driver import AppHost, drop_next, ladder_steps
from synack.sim import LinkParams, Network
from synack.stack import SHUT_WR, Stack
from synack.tcp.isn import FixedIsn
from synack.tcp.state import State
from synack.trace.ladder import SegmentStep, render
from synack.wire.tcp import ACK, FIN, RST, SYN

CLIENT, SERVER = "192.0.2.1", "192.0.2.2"
MS = 1000
SECOND = 1_000_000


@dataclass
class Outcome:
    """What a scenario produced."""

    name: str
    title: str
    ladder: list[str]
    explanation: str
    sysctls: list[str]
    facts: dict[str, Any] = field(default_factory=dict)
    net: Network | None = None

    def text(self) -> str:
        """Everything a user sees from ``synack demo NAME``."""
        out = [f"== {self.title} ==", "", *self.ladder, "", self.explanation.strip()]
        if self.sysctls:
            out += ["", "What changes it:"] + [f"  {s}" for s in self.sysctls]
        return "\n".join(out)


@dataclass
class Lab:
    """A client and a server stack joined by one link."""

    net: Network
    client: AppHost
    server: AppHost

    @property
    def c(self) -> Stack:
        return self.client.stack

    @property
    def s(self) -> Stack:
        return self.server.stack

    def steps(self) -> list:
        return ladder_steps(self.net, self.c, self.s)

    def ladder(self, *, absolute: bool = True) -> list[str]:
        return render(self.steps(), left=f"client {CLIENT}", right=f"server {SERVER}")

    def segments(self, src: str = "left") -> list:
        return [st.seg for st in self.steps() if isinstance(st, SegmentStep) and st.src == src]


def lab(seed: int = 1, *, delay_us: int = 10 * MS, client_isn: int | None = None,
        server_isn: int | None = None, client_cfg: Sysctl | None = None,
        server_cfg: Sysctl | None = None) -> Lab:
    """Two stacks and a link; fixed ISNs when given."""
    net = Network(seed)
    c = Stack(CLIENT, seed=seed, cfg=client_cfg, name="client",
              isn=FixedIsn([client_isn]) if client_isn is not None else None)
    s = Stack(SERVER, seed=seed + 1, cfg=server_cfg, name="server",
              isn=FixedIsn([server_isn]) if server_isn is not None else None)
    ch, sh = AppHost(c), AppHost(s)
    net.add_host(CLIENT, ch)
    net.add_host(SERVER, sh)
    net.add_link(CLIENT, SERVER, LinkParams(delay_us=delay_us))
    return Lab(net, ch, sh)


def _drain(stack: Stack, fd: int, now: int) -> tuple[bytes, bool]:
    """Read everything available: (data, eof)."""
    chunks: list[bytes] = []
    while True:
        try:
            data = stack.recv(fd, 65536, now=now)
        except BlockingIOError:
            return b"".join(chunks), False
        except OSError:
            return b"".join(chunks), True
        if not data:
            return b"".join(chunks), True
        chunks.append(data)


def _find(segs: list[Any], flags: int, *, without: int = 0,
          payload: bool | None = None) -> Any:
    for seg in segs:
        if seg.flags & flags == flags and not seg.flags & without and (
                payload is None or bool(seg.payload) == payload):
            return seg
    return None


# ----------------------------------------------------------------------------- the seed's example
def worked_example(seed: int = 1) -> Outcome:
    """The seed's numbers: ISNs 100 and 300, 1000 bytes up, 2000 down, 50 after the FIN."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd, 128)
    srv: dict[str, Any] = {"fd": None, "got": 0, "sent": False, "eof": False}

    def finish(now: int) -> None:
        fd = srv["fd"]
        assert isinstance(fd, int)
        s.send(fd, b"z" * 50, now=now)      # the last 50 bytes, then FIN
        s.close(fd, now=now)

    def server(now: int) -> None:
        if srv["fd"] is None:
            try:
                srv["fd"], _ = s.accept(lfd)
            except BlockingIOError:
                return
        fd = srv["fd"]
        assert isinstance(fd, int)
        data, eof = _drain(s, fd, now)
        srv["got"] = int(srv["got"]) + len(data)  # type: ignore[call-overload]
        if srv["got"] == 1000 and not srv["sent"]:
            srv["sent"] = True
            s.send(fd, b"s" * 2000, now=now)
        if eof and not srv["eof"]:
            srv["eof"] = True                   # CLOSE_WAIT: finish the work, then close
            net.call_later(50 * MS, finish)

    cfd = c.socket()
    cli: dict[str, Any] = {"sent": False, "got": 0, "shut": False, "closed": False}

    def client(now: int) -> None:
        if cli["closed"] or c.state(cfd) is State.SYN_SENT:
            return
        if not cli["sent"]:
            cli["sent"] = True
            c.send(cfd, b"c" * 1000, now=now)
        data, eof = _drain(c, cfd, now)
        cli["got"] = int(cli["got"]) + len(data)  # type: ignore[call-overload]
        if cli["got"] >= 2000 and not cli["shut"]:
            cli["shut"] = True
            c.shutdown(cfd, SHUT_WR, now=now)     # FIN, but keep receiving (half-close)
        if eof:
            cli["closed"] = True
            c.close(cfd, now=now)

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.run(until=200 * SECOND)

    cseg, sseg = L.segments("left"), L.segments("right")
    fin_c = _find(cseg, FIN)
    fin_s = _find(sseg, FIN)
    ack_of_fin = next((g for g in sseg if fin_c and g.ack == fin_c.seq + 1
                       and not g.payload and not g.flags & FIN), None)
    last_ack = next((g for g in cseg if fin_s and g.ack == fin_s.seq + 1), None)
    tw_end = next((ch.now for _k, ch in c.changes if ch.old is State.TIME_WAIT), None)
    tw_start = next((ch.now for _k, ch in c.changes if ch.new is State.TIME_WAIT), None)
    facts: dict[str, Any] = {
        "client_syn_seq": _find(cseg, SYN).seq,
        "server_synack": (_find(sseg, SYN | ACK).seq, _find(sseg, SYN | ACK).ack),
        "client_fin_seq": fin_c.seq if fin_c else None,
        "server_ack_of_fin": (ack_of_fin.seq, ack_of_fin.ack) if ack_of_fin else None,
        "server_fin": (fin_s.seq, fin_s.ack) if fin_s else None,
        "client_last_ack": (last_ack.seq, last_ack.ack) if last_ack else None,
        "client_bytes": int(srv["got"]),   # type: ignore[call-overload]
        "server_bytes": int(cli["got"]),   # type: ignore[call-overload]
        "time_wait_us": (tw_end - tw_start) if tw_end and tw_start else None,
    }
    expl = _worked_example_text(facts)
    return Outcome("worked-example", "The seed's worked example: handshake, data, four-way close",
                   L.ladder(), expl, [
                       "net.ipv4.tcp_fin_timeout  (an orphaned FIN_WAIT_2's lifetime)",
                       "TIME_WAIT lasts 60 s = 2*MSL on Linux (TCP_TIMEWAIT_LEN, not a sysctl)",
                   ], facts, net)


def _worked_example_text(f: dict[str, Any]) -> str:
    sa = f["server_synack"]
    ack_fin = f["server_ack_of_fin"] or (None, None)
    fin = f["server_fin"] or (None, None)
    last = f["client_last_ack"] or (None, None)
    assert isinstance(sa, tuple) and isinstance(ack_fin, tuple)
    assert isinstance(fin, tuple) and isinstance(last, tuple)
    tw = f["time_wait_us"]
    rows = [
        ("client SYN seq", "100", f["client_syn_seq"]),
        ("server SYN,ACK seq / ack", "300 / 101", f"{sa[0]} / {sa[1]}"),
        ("client FIN seq", "1101", f["client_fin_seq"]),
        ("server ACK of the FIN: ack", "1102", ack_fin[1]),
        ("server ACK of the FIN: seq", "2300", ack_fin[0]),
        ("server FIN seq / ack", "2350 / 1102", f"{fin[0]} / {fin[1]}"),
        ("client last ACK seq / ack", "1102 / 2351", f"{last[0]} / {last[1]}"),
    ]
    table = "\n".join(f"  {a:<30} {b:>13} {c!s:>13}" for a, b, c in rows)
    return f"""
The client (ISN 100) and the server (ISN 300) shake hands: SYN and SYN,ACK each
use one sequence number, the bare ACK none, so the first data byte is 101.
The client sends {f['client_bytes']} bytes, the server {f['server_bytes'] - 50} (+50 later).
The client half-closes with shutdown(SHUT_WR): its FIN says "no more data from
me" and it keeps receiving (FIN_WAIT_2). The server ACKs the FIN at once and
sits in CLOSE_WAIT until its application has sent its last 50 bytes and called
close(): then its own FIN (LAST_ACK). The client ACKs it and waits in TIME_WAIT
for 2*MSL ({(tw or 0) / 1e6:.0f} s of virtual time) before the 4-tuple is free.

  {'':<30} {'the seed says':>13} {'synack sent':>13}
{table}

The seed's server-side numbers are one lower than TCP's: it computes 300 + 2000
= 2300, forgetting that the server's SYN used sequence number 300 itself, so
its data occupies 301..2300 and the next sequence number is 300 + 1 + 2000 =
2301 -- the same "+1" the seed applies on the client side (100 + 1 + 1000 =
1101). The Linux kernel sends exactly these numbers too.
"""


# ----------------------------------------------------------------------------- handshake loss
def lost_synack(seed: int = 1) -> Outcome:
    """Why a third message: the SYN-ACK is lost and only the client's retry recovers."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    drop_next(net, lambda ip, seg: bool(seg.flags & SYN and seg.flags & ACK))
    cfd = c.socket()
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    states: dict[str, Any] = {}

    def look(now: int) -> None:
        states["server_at_500ms"] = ", ".join(str(r.state) for r in s.connections()
                                              if r.state is not State.LISTEN)
        states["client_at_500ms"] = str(c.state(cfd))

    net.call_at(500 * MS, look)
    net.run(until=5 * SECOND)
    established = next((ch.now for _k, ch in c.changes if ch.new is State.ESTABLISHED), None)
    synacks = [g for g in L.segments("right") if g.flags & SYN]
    facts: dict[str, Any] = {**states, "client_established_us": established, "synacks_sent": len(synacks),
             "syns_sent": len([g for g in L.segments("left") if g.flags & SYN])}
    expl = f"""
The server's SYN,ACK is lost. Half a second in, the server is in
{states['server_at_500ms']} and the client still in {states['client_at_500ms']}:
neither may treat the connection as open. With a two-way handshake the server
would already be "connected" and sending to a client that knows nothing of it
(and a delayed duplicate SYN from an old connection would open a ghost one). The
third message -- the client's ACK of the server's ISN -- is what proves to the
server that the client received its SYN,ACK. Here the client retransmits its
SYN after the 1 s initial RTO, the server answers with its SYN,ACK again, and
the connection opens at {(established or 0) / 1000:.0f} ms.
"""
    return Outcome("lost-synack", "Why three messages: a lost SYN,ACK", L.ladder(), expl,
                   ["net.ipv4.tcp_syn_retries = 6     (SYN retransmissions, 1 s doubling: 127 s)",
                    "net.ipv4.tcp_synack_retries = 5  (SYN,ACK retransmissions)"], facts, net)


# ----------------------------------------------------------------------------- close
def _client_server_close(L: Lab, *, server_closes_first: bool = False,
                         client_half_close: bool = True) -> dict[str, int]:
    """Connect, exchange a little data, and close client-first."""
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    fds: dict[str, int] = {}

    def server(now: int) -> None:
        if "s" not in fds:
            try:
                fds["s"], _ = s.accept(lfd)
            except BlockingIOError:
                return
        _data, eof = _drain(s, fds["s"], now)
        if eof and "s_closed" not in fds:
            fds["s_closed"] = 1
            s.close(fds["s"], now=now)

    cfd = c.socket()
    fds["c"] = cfd

    def client(now: int) -> None:
        if "c_shut" not in fds and c.state(cfd) is State.ESTABLISHED:
            fds["c_shut"] = 1
            c.send(cfd, b"hello", now=now)
            c.close(cfd, now=now)

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    return fds


def lost_last_ack(seed: int = 1) -> Outcome:
    """Why TIME_WAIT: the last ACK is lost and the server's FIN comes again."""
    L = lab(seed, client_isn=100, server_isn=300)
    _client_server_close(L)
    # Lose the client's ACK of the server's FIN (a bare ACK acknowledging a FIN).
    fins: dict[str, int] = {}

    def is_last_ack(ip, seg) -> bool:
        if ip.src == SERVER and seg.flags & FIN:
            fins["server_fin_end"] = seg.seq + 1
        return ip.src == CLIENT and seg.flags == ACK and seg.ack == fins.get("server_fin_end")

    drop_next(L.net, is_last_ack)
    L.net.run(until=120 * SECOND)
    s_fins = [g for g in L.segments("right") if g.flags & FIN]
    tw_acks = [g for g in L.segments("left") if g.flags == ACK and s_fins
               and g.ack == s_fins[0].seq + 1]
    server_closed = next((ch.now for _k, ch in L.s.changes if ch.old is State.LAST_ACK), None)
    facts: dict[str, Any] = {"server_fins": len(s_fins), "client_acks_of_fin": len(tw_acks),
             "server_closed_us": server_closed,
             "resets": sum(1 for g in L.segments("left") if g.flags & RST)}
    expl = f"""
The client's last ACK is lost. The server, in LAST_ACK, does not know whether
its FIN arrived, so it retransmits it after its RTO ({len(s_fins)} FINs in all).
The client is in TIME_WAIT and still remembers the connection: it answers the
retransmitted FIN with the same ACK, and the server closes cleanly at
{(server_closed or 0) / 1000:.0f} ms. Had the client gone straight to CLOSED,
that FIN would have met no connection and been answered with RST: the server
would report an error for a connection that had in fact ended well.
TIME_WAIT lasts 2*MSL so that an ACK can be lost and the FIN come again, and so
that stray segments of this connection die out before the 4-tuple is reused.
"""
    return Outcome("lost-last-ack", "Why TIME_WAIT: the last ACK of the close is lost",
                   L.ladder(), expl, [
                       "TIME_WAIT = 60 s (Linux TCP_TIMEWAIT_LEN = 2*MSL, MSL 30 s)",
                       "net.ipv4.tcp_tw_reuse  (reuse a TIME_WAIT port for new connect()s)",
                       "net.ipv4.tcp_max_tw_buckets  (size of the TIME_WAIT table)"],
                   facts, L.net)


def half_close(seed: int = 1) -> Outcome:
    """shutdown(SHUT_WR): the client's side is closed, the server keeps sending."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    st: dict[str, Any] = {"got": 0, "chunks": 0}

    def server(now: int) -> None:
        if "fd" not in st:
            try:
                st["fd"], _ = s.accept(lfd)
            except BlockingIOError:
                return
        fd = st["fd"]
        assert isinstance(fd, int)
        _data, eof = _drain(s, fd, now)
        if eof and "eof" not in st:
            st["eof"] = now

            def chunk(now: int) -> None:
                s.send(fd, b"x" * 100, now=now)
                st["chunks"] = int(st["chunks"]) + 1  # type: ignore[call-overload]
                if st["chunks"] == 3:
                    s.close(fd, now=now)
                else:
                    net.call_later(200 * MS, chunk)
            net.call_later(200 * MS, chunk)

    cfd = c.socket()

    def client(now: int) -> None:
        if "c_eof" in st:
            return
        if "shut" not in st and c.state(cfd) is State.ESTABLISHED:
            st["shut"] = True
            c.send(cfd, b"request", now=now)
            c.shutdown(cfd, SHUT_WR, now=now)
        if "shut" in st and "c_eof" not in st:
            data, eof = _drain(c, cfd, now)
            st["got"] = int(st["got"]) + len(data)  # type: ignore[call-overload]
            if eof:
                st["c_eof"] = now
                c.close(cfd, now=now)

    L.server.apps.append(server)
    L.client.apps.append(client)
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))
    net.run(until=100 * SECOND)
    fw2 = [ch.now for _k, ch in c.changes if ch.new is State.FIN_WAIT_2]
    facts: dict[str, Any] = {"client_received": st["got"], "fin_wait_2_at_us": fw2[0] if fw2 else None}
    expl = f"""
The client sends its request and calls shutdown(SHUT_WR): a FIN, meaning "I
will send no more". The server ACKs it and enters CLOSE_WAIT; the client is in
FIN_WAIT_2 -- this is the half-close. The connection still carries data the
other way: the server sends three more chunks over 600 ms and the client
receives all {st['got']} bytes. Only the server's own close() sends the second
FIN. This is why closing takes four messages while opening takes three: the
ACK of the first FIN cannot wait for the second, which only the server's
application decides.
A FIN_WAIT_2 whose socket the application has closed (an orphan) does not
wait forever: after net.ipv4.tcp_fin_timeout (60 s) Linux drops it.
"""
    return Outcome("half-close", "Half-close: shutdown(SHUT_WR) and FIN_WAIT_2 / CLOSE_WAIT",
                   L.ladder(), expl, ["net.ipv4.tcp_fin_timeout = 60  (orphaned FIN_WAIT_2)"],
                   facts, net)


# ----------------------------------------------------------------------------- RST
def rst_closed_port(seed: int = 1) -> Outcome:
    """A SYN to a port nobody listens on is answered with RST: connection refused."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, net = L.c, L.net
    cfd = c.socket()
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 81), now=now))
    net.run(until=2 * SECOND)
    err = c.getsockopt(cfd, 1, 4)  # SOL_SOCKET, SO_ERROR
    rst = _find(L.segments("right"), RST)
    facts: dict[str, Any] = {"so_error": err, "rst": (rst.seq, rst.ack, rst.flags) if rst else None}
    expl = f"""
Nothing listens on port 81. RFC 9293 (3.10.7.1) answers a segment that belongs
to no connection with RST. A SYN carries no ACK, so the RST takes SEQ=0 and
acknowledges SEG.SEQ + SEG.LEN = {rst.ack if rst else '?'} (the SYN counts one) -- that is how
the client knows the RST answers its SYN and not some forged packet. connect()
fails with {errno.errorcode.get(int(err), err)} ("Connection refused"). A port scanner
reads exactly this: RST means closed, SYN,ACK means open, silence means filtered.
"""
    return Outcome("rst-closed-port", "RST: a SYN to a closed port", L.ladder(), expl,
                   [], facts, net)


# ----------------------------------------------------------------------------- keepalive
def keepalive(seed: int = 1) -> Outcome:
    """Keepalive with Linux's defaults (7200 / 75 / 9) finds a dead peer."""
    L = lab(seed, client_isn=100, server_isn=300)
    c, s, net = L.c, L.s, L.net
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd)
    cfd = c.socket()
    c.setsockopt(cfd, 1, 9, 1)  # SOL_SOCKET, SO_KEEPALIVE
    net.call_at(0, lambda now: c.connect_ex(cfd, (SERVER, 80), now=now))

    def crash(now: int) -> None:          # the server host dies: nothing gets through
        net.set_link(CLIENT, SERVER, LinkParams(delay_us=10 * MS, loss=1.0))
        net.set_link(SERVER, CLIENT, LinkParams(delay_us=10 * MS, loss=1.0))
    net.call_at(1 * SECOND, crash)
    net.run(until=9000 * SECOND)
    probes = [g for g in L.segments("left") if g.flags == ACK and not g.payload
              and g.seq == 100]
    probe_times = [st.t_us for st in L.steps() if isinstance(st, SegmentStep)
                   and st.src == "left" and st.seg.flags == ACK and st.seg.seq == 100]
    dead = next((ch.now for _k, ch in c.changes if ch.new is State.CLOSED), None)
    try:
        c.recv(cfd, 1, now=net.now)
        err = 0
    except OSError as e:
        err = e.errno or 0
    facts: dict[str, Any] = {"probes": len(probes), "first_probe_s": probe_times[0] / 1e6 if probe_times else None,
             "interval_s": (probe_times[1] - probe_times[0]) / 1e6 if len(probe_times) > 1 else None,
             "dead_s": dead / 1e6 if dead else None, "errno": err}
    expl = f"""
The client turned on SO_KEEPALIVE and the server host died at 1 s without a
word. After net.ipv4.tcp_keepalive_time (TCP_KEEPIDLE) = 7200 s of silence the
client sends a probe: an ACK with SEQ = SND.UNA - 1 (seq 100, one byte it
already sent), which a live peer must answer with an ACK. No answer: it probes
again every tcp_keepalive_intvl (TCP_KEEPINTVL) = 75 s, {len(probes)} probes in
all (tcp_keepalive_probes, TCP_KEEPCNT = 9). At {facts['dead_s']} s = 7200 + 9 x 75
it gives up: it sends RST (as Linux does) and the next recv() fails with
{errno.errorcode.get(err, err)}.
(The seed's note says 10 probes; Linux's default is 9.)
"""
    return Outcome("keepalive", "Keepalive finds a dead peer (7200 / 75 / 9)", L.ladder(), expl, [
        "net.ipv4.tcp_keepalive_time = 7200  (or TCP_KEEPIDLE per socket)",
        "net.ipv4.tcp_keepalive_intvl = 75   (or TCP_KEEPINTVL)",
        "net.ipv4.tcp_keepalive_probes = 9   (or TCP_KEEPCNT)"], facts, net)


# ----------------------------------------------------------------------------- queues
def _connector(stack: Stack, fd: int, addr: tuple[str, int]) -> Callable[[int], object]:
    return lambda now: stack.connect_ex(fd, addr, now=now)


def accept_overflow(seed: int = 1, *, abort_on_overflow: int = 0) -> Outcome:
    """A listener that never accepts: the accept queue fills, then SYNs and ACKs are dropped."""
    net = Network(seed)
    cfg = Sysctl()
    cfg.set("net.ipv4.tcp_abort_on_overflow", abort_on_overflow)
    s = Stack(SERVER, seed=seed + 1, cfg=cfg, name="server", isn=FixedIsn(range(300, 10**6,
                                                                                   1000)))
    sh = AppHost(s)
    net.add_host(SERVER, sh)
    clients = []
    for i in range(4):
        addr = f"192.0.2.{11 + i}"
        cs = Stack(addr, seed=seed + 10 + i, isn=FixedIsn([100 * (i + 1)]), name=f"c{i + 1}")
        net.add_host(addr, AppHost(cs))
        net.add_link(addr, SERVER, LinkParams(delay_us=10 * MS))
        clients.append(cs)
    lfd = s.socket()
    s.bind(lfd, (SERVER, 80))
    s.listen(lfd, 2)
    fds = [cs.socket() for cs in clients]
    for i, (cs, fd) in enumerate(zip(clients, fds)):
        t = 0 if i < 2 else 100 * MS
        net.call_at(t, _connector(cs, fd, (SERVER, 80)))
    snapshot: dict[str, Any] = {}

    def look(now: int) -> None:
        lst = s.listeners[(SERVER, 80)]
        snapshot["accept_queue"] = len(lst.accept_queue)
        snapshot["client_states"] = ", ".join(str(cs.state(fd)) for cs, fd in zip(clients, fds))
        snapshot["overflows"] = lst.listen_overflows

    net.call_at(1500 * MS, look)
    accepted: list[int] = []

    def accept_all(now: int) -> None:
        while True:
            try:
                fd, _ = s.accept(lfd)
            except BlockingIOError:
                break
            accepted.append(fd)
    net.call_at(2500 * MS, accept_all)
    net.call_at(5 * SECOND, accept_all)
    net.run(until=6 * SECOND)
    last = clients[3]
    steps = ladder_steps(net, last, s)
    lines = render(steps, left=f"c4 {last.addr}", right=f"server {SERVER}")
    resets = sum(1 for st in steps if isinstance(st, SegmentStep) and st.src == "right"
                 and st.seg.flags & RST)
    facts: dict[str, Any] = {**snapshot, "accepted": len(accepted), "resets_to_c4": resets,
             "final_c4": str(last.state(fds[3]))}
    if abort_on_overflow:
        how = ("With net.ipv4.tcp_abort_on_overflow = 1 the server answers that ACK with RST "
               "instead, and c4's connection is reset at once.")
    else:
        how = ("By default (net.ipv4.tcp_abort_on_overflow = 0) the server drops that ACK and "
               "keeps c4 in its SYN queue; c4 believes it is connected. The server's SYN,ACK "
               "retransmission draws another ACK, which succeeds once accept() has made room.")
    expl = f"""
The server listens with backlog 2 and its application does not call accept()
until 2.5 s. Linux lets the accept queue hold backlog + 1 = 3 connections.
c1 and c2 connect at 0 ms, c3 and c4 at 100 ms; c3's handshake completes and
fills the queue, so c4's final ACK finds it full. At 1.5 s the accept queue
holds {snapshot.get('accept_queue')} connections and the four clients are
{snapshot.get('client_states')}.
{how}
The ladder shows c4's connection only.
"""
    return Outcome("accept-overflow", "Accept queue overflow", lines, expl, [
        "net.core.somaxconn = 4096          (caps listen()'s backlog)",
        "listen(fd, backlog)                (the accept queue holds min(backlog, somaxconn) + 1)",
        "net.ipv4.tcp_max_syn_backlog       (bounds the SYN queue of half-open connections)",
        "net.ipv4.tcp_abort_on_overflow = 0 (1: RST instead of dropping the final ACK)"],
        facts, net)


def accept_overflow_abort(seed: int = 1) -> Outcome:
    """The same with ``net.ipv4.tcp_abort_on_overflow = 1``."""
    out = accept_overflow(seed, abort_on_overflow=1)
    out.name = "accept-overflow-abort"
    out.title = "Accept queue overflow with tcp_abort_on_overflow = 1"
    return out


SCENARIOS: dict[str, Callable[[int], Outcome]] = {
    "worked-example": worked_example,
    "lost-synack": lost_synack,
    "lost-last-ack": lost_last_ack,
    "half-close": half_close,
    "rst-closed-port": rst_closed_port,
    "keepalive": keepalive,
    "accept-overflow": accept_overflow,
    "accept-overflow-abort": accept_overflow_abort,
}

DESCRIPTIONS: dict[str, str] = {
    name: (fn.__doc__ or "").strip().splitlines()[0] for name, fn in SCENARIOS.items()
}
