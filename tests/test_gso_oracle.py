"""Software GSO changes nothing on the wire: seeded simulator runs, byte for byte.

The stack builds every burst of full-sized segments as one super-segment and the
link (here :meth:`Stack.transmit`) cuts it into MSS frames from a header template
(:mod:`synack.wire.gso`). The frames must be exactly what the stack sent when it
built one TCP segment and one IPv4 packet per MSS: each run below is made twice, with
software GSO and with it off (``synack.stack.SOFT_GSO_MAX = 0``: the stack builds one
segment per MSS, as it did before software GSO, commit 84926a6), and the SHA-256
digests of the two packet streams (the capture the simulator writes: send time and
bytes of every packet, lost ones included) must be equal.
"""

from __future__ import annotations

import hashlib
import io
import socket
from collections.abc import Callable

import pytest

import synack.stack as stack_module
from synack.config import Sysctl
from synack.demo.bulk import transfer
from synack.demo.driver import AppHost
from synack.demo.scenarios import SCENARIOS
from synack.sim import LinkParams, Network
from synack.stack import Stack

MS = 1000


def _digest(net: Network) -> str:
    buf = io.BytesIO()
    net.write_pcap(buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _transfer(nbytes: int, seed: int, link: LinkParams, cc: str | None = None) -> str:
    nets: list[Network] = []
    cfg = Sysctl()
    if cc is not None:
        cfg.set("net.ipv4.tcp_congestion_control", cc)
    r = transfer(nbytes, seed=seed, link=link, back=link, sender_cfg=cfg, setup=nets.append)
    assert r.intact and r.finished
    return _digest(nets[0])


class GsoAppHost(AppHost):
    """An AppHost the simulator drains through ``transmit_gso()``: the network cuts."""

    def transmit_gso(self, *, now: int) -> list[tuple[bytes, int]]:
        return self.stack.transmit_gso(now=now)


def _pair(seed: int, link: LinkParams, port: int, host: type[AppHost],
          ) -> tuple[Network, Stack, Stack, AppHost, AppHost, int, int]:
    """Two hosts on one link: b listening on ``port``, a with a socket to connect."""
    net = Network(seed)
    a = Stack("192.0.2.1", seed=seed, name="a")
    b = Stack("192.0.2.2", seed=seed + 1, name="b")
    ha, hb = host(a), host(b)
    net.add_host(a.addr, ha)
    net.add_host(b.addr, hb)
    net.add_link(a.addr, b.addr, link)
    lfd = b.socket()
    b.bind(lfd, (b.addr, port))
    b.listen(lfd)
    return net, a, b, ha, hb, lfd, a.socket()


def full_duplex(seed: int, link: LinkParams, nbytes: int = 400_000,
                host: type[AppHost] = AppHost) -> str:
    """Both ends write ``nbytes`` in writes of varied sizes and read everything, at
    once: data segments carry SACK and D-SACK blocks and ACKs in quick-ACK mode."""
    net, a, b, ha, hb, lfd, cfd = _pair(seed, link, 7, host)
    sizes = [1, 700, 3000, 20_000, 65_536, 1448, 100_000]
    st: dict[str, dict[str, int]] = {"a": {"fd": cfd, "off": 0, "i": 0, "got": 0},
                                     "b": {"off": 0, "i": 0, "got": 0}}

    def app(stack: Stack, me: dict[str, int]) -> Callable[[int], None]:
        def poll(now: int) -> None:
            if "fd" not in me:
                try:
                    me["fd"], _ = stack.accept(lfd)
                except BlockingIOError:
                    return
            fd = me["fd"]
            if "closed" in me:
                return
            while me["off"] < nbytes and "shut" not in me:
                n = min(sizes[me["i"] % len(sizes)], nbytes - me["off"])
                try:
                    sent = stack.send(fd, bytes([me["i"] & 0xFF]) * n, now=now)
                except (BlockingIOError, OSError):
                    break
                me["off"] += sent
                if sent == n:
                    me["i"] += 1
            if me["off"] >= nbytes and "shut" not in me:
                me["shut"] = 1
                stack.shutdown(fd, socket.SHUT_WR, now=now)
            while True:
                try:
                    chunk = stack.recv(fd, 1 << 16, now=now)
                except BlockingIOError:
                    return
                if not chunk:
                    if "shut" in me:
                        me["closed"] = 1
                        stack.close(fd, now=now)
                    return
                me["got"] += len(chunk)

        return poll

    ha.apps.append(app(a, st["a"]))
    hb.apps.append(app(b, st["b"]))
    net.call_at(0, lambda now: a.connect_ex(cfd, (b.addr, 7), now=now))
    net.run(until=600_000_000,
            stop=lambda: "closed" in st["a"] and "closed" in st["b"])
    assert st["a"]["got"] == st["b"]["got"] == nbytes
    return _digest(net)


def request_response(seed: int, link: LinkParams, request: int, response: int,
                     host: type[AppHost] = AppHost) -> str:
    """The client writes ``request`` bytes at once (a burst while it is in quick-ACK
    mode), the server answers ``response`` bytes once it has them all, then both
    close: how the client ACKs the answer depends on its quick-ACK quota, which
    each segment of its request used up (Linux tcp_dec_quickack_mode())."""
    net, a, b, ha, hb, lfd, cfd = _pair(seed, link, 80, host)
    st = {"a_off": 0, "b_off": 0, "b_got": 0, "a_got": 0}

    def client(now: int) -> None:
        if "a_closed" in st or a.state(cfd).name == "SYN_SENT":
            return
        while st["a_off"] < request:
            try:
                st["a_off"] += a.send(cfd, b"q" * (request - st["a_off"]), now=now)
            except BlockingIOError:
                return
        while "a_closed" not in st:
            try:
                chunk = a.recv(cfd, 1 << 16, now=now)
            except BlockingIOError:
                return
            st["a_got"] += len(chunk)
            if not chunk or st["a_got"] == response:
                st["a_closed"] = now
                a.close(cfd, now=now)

    def server(now: int) -> None:
        if "fd" not in st:
            try:
                st["fd"], _ = b.accept(lfd)
            except BlockingIOError:
                return
        fd = st["fd"]
        while st["b_got"] < request:
            try:
                st["b_got"] += len(b.recv(fd, 1 << 16, now=now))
            except BlockingIOError:
                return
        while st["b_off"] < response:
            try:
                st["b_off"] += b.send(fd, b"r" * (response - st["b_off"]), now=now)
            except BlockingIOError:
                return
        if "b_closed" not in st:
            st["b_closed"] = now
            b.close(fd, now=now)

    ha.apps.append(client)
    hb.apps.append(server)
    net.call_at(0, lambda now: a.connect_ex(cfd, (b.addr, 80), now=now))
    net.run(until=600_000_000, stop=lambda: "a_closed" in st and "b_closed" in st
            and not a.conns and not b.conns)
    assert st["a_got"] == response
    return _digest(net)


def _scenario(name: str) -> str:
    net = SCENARIOS[name](1).net        # as `synack demo NAME --pcap F` writes it
    assert net is not None
    return _digest(net)


LOSSY = LinkParams(delay_us=20 * MS, rate_bps=100_000_000, loss=0.02, reorder=0.05,
                   duplicate=0.01, corrupt=0.01)
DUPLEX = LinkParams(delay_us=5 * MS, rate_bps=50_000_000, loss=0.02, reorder=0.03,
                    duplicate=0.05)

RUNS = {
    "lossy-cubic-7": lambda: _transfer(1_500_000, 7, LOSSY),
    "lossy-reno-3": lambda: _transfer(1_500_000, 3, LOSSY, cc="reno"),
    "clean-1gbit": lambda: _transfer(2_000_000, 3, LinkParams(delay_us=5 * MS,
                                                             rate_bps=1_000_000_000)),
    "duplex-1": lambda: full_duplex(1, DUPLEX),
    "duplex-2": lambda: full_duplex(2, DUPLEX),
    "request-response": lambda: request_response(1, LinkParams(delay_us=10 * MS),
                                                 14_480, 200_000),
    "demos": lambda: hashlib.sha256(" ".join(
        f"{name}:{_scenario(name)}" for name in SCENARIOS).encode()).hexdigest(),
}


def _mss_at_a_time(run: Callable[[], str], monkeypatch: pytest.MonkeyPatch) -> str:
    """``run`` with software GSO off: every segment built and sent one MSS at a time."""
    with monkeypatch.context() as m:
        m.setattr(stack_module, "SOFT_GSO_MAX", 0)
        return run()


@pytest.mark.parametrize("name", list(RUNS))
def test_packets_are_byte_identical_to_the_mss_at_a_time_sender(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert RUNS[name]() == _mss_at_a_time(RUNS[name], monkeypatch)


def test_the_simulator_cuts_what_transmit_gso_hands_it_the_same_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert full_duplex(1, DUPLEX, host=GsoAppHost) == _mss_at_a_time(RUNS["duplex-1"],
                                                                     monkeypatch)
    rr = RUNS["request-response"]
    assert request_response(1, LinkParams(delay_us=10 * MS), 14_480, 200_000,
                            host=GsoAppHost) == _mss_at_a_time(rr, monkeypatch)
