"""synack against the Linux kernel over real TAP and TUN devices, offloads off and on.

Needs root and /dev/net/tun (these machines and CI have both). Every test makes
its own namespace ``sa-dev-*`` and device ``sadev*`` and removes them.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from synack.link.loop import Loop
from synack.link.netns import Lab, netns_exists
from synack.link.tap import TapLink
from synack.link.tun import TunLink
from synack.stack import SHUT_WR, Stack

KERNEL, SYNACK = "192.0.2.1", "192.0.2.2"
MB = 1 << 20
PY = sys.executable
# iputils prints the reply's TTL; synack can only when the stack records it.
TTL = " ttl=64"                       # the kernel's default TTL, as iputils ping shows it

# Runs in the namespace: the kernel's TCP as client or server, sending N seeded
# random bytes while it reads everything the other side sends, then printing
# "<bytes received> <sha256 received> <sha256 sent>".
PEER = r"""
import hashlib, random, socket, sys, threading
mode, host, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = random.Random(1).randbytes(n)
if mode == "client":
    s = socket.create_connection((host, port), timeout=30)
else:
    ls = socket.create_server((host, port))
    print("listening", flush=True)
    ls.settimeout(30)
    s, _ = ls.accept()
    s.settimeout(30)
def tx():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=tx)
t.start()
h, total = hashlib.sha256(), 0
while True:
    d = s.recv(1 << 20)
    if not d:
        break
    h.update(d)
    total += len(d)
t.join()
print(total, h.hexdigest(), hashlib.sha256(data).hexdigest(), flush=True)
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
    reason="needs root and /dev/net/tun")


@dataclass
class Rig:
    lab: Lab
    link: TapLink | TunLink
    stack: Stack
    loop: Loop

    def csum_errors(self) -> int:
        out = self.lab.exec("nstat", "-az", "TcpInCsumErrors")
        m = re.search(r"^TcpInCsumErrors\s+(\d+)", out, re.MULTILINE)
        assert m, out
        return int(m.group(1))


_counter = iter(range(1, 10_000))


@pytest.fixture(params=[("tap", False), ("tap", True), ("tun", False), ("tun", True)],
                ids=["tap", "tap-offload", "tun", "tun-offload"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    kind, offload = request.param
    n = f"{os.getpid() % 1000}x{next(_counter)}"
    ns = f"sa-dev-{n}"
    lab = Lab(ns, tap=f"sadev{n}", kind=kind, offload=offload)
    with lab as link:
        stack = Stack(SYNACK, seed=1, mtu=link.mtu)
        loop = Loop(stack, link, name=ns)
        loop.start()
        try:
            yield Rig(lab=lab, link=link, stack=stack, loop=loop)
        finally:
            loop.stop()
    assert not netns_exists(ns)


# ---------------------------------------------------------------- helpers
def wait_for(rig: Rig, pred, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    with rig.loop.cond:
        assert rig.loop.cond.wait_for(pred, timeout), "timed out"


def pump(rig: Rig, fd: int, data: bytes, *, timeout: float = 60.0) -> bytes:
    """Send ``data`` then FIN on ``fd`` while reading until the peer's FIN; return what came."""
    stack, loop = rig.stack, rig.loop
    view, off, got = memoryview(data), 0, []
    shut = eof = False
    deadline = time.monotonic() + timeout
    with loop.cond:
        while not (shut and eof):
            now = loop.now()
            while off < len(data):
                try:
                    off += stack.send(fd, bytes(view[off:off + 256 * 1024]), now=now)
                except BlockingIOError:
                    break
            if off == len(data) and not shut:
                stack.shutdown(fd, SHUT_WR, now=now)
                shut = True
            while not eof:
                try:
                    chunk = stack.recv(fd, MB, now=now)
                except BlockingIOError:
                    break
                if chunk:
                    got.append(chunk)
                else:
                    eof = True
            loop.wake()
            if not (shut and eof):
                left = deadline - time.monotonic()
                assert left > 0, f"transfer stalled: sent {off}, got {sum(map(len, got))}"
                loop.cond.wait(min(left, 0.5))
    return b"".join(got)


def peer(rig: Rig, mode: str, port: int, n: int) -> subprocess.Popen[str]:
    host = SYNACK if mode == "client" else KERNEL
    return subprocess.Popen(
        ["ip", "netns", "exec", rig.lab.netns, PY, "-c", PEER, mode, host, str(port), str(n)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def check_offload_counters(rig: Rig) -> None:
    if rig.link.offload is None:
        assert rig.link.stats["gso super-segments in"] == 0
        assert rig.link.stats["tso super-segments out"] == 0
        # The stack's super-segments were cut in software (synack.wire.gso).
        assert rig.link.stats["gso super-segments cut"] > 0, rig.link.stats
    else:
        # The kernel handed us super-segments and took ours: offloads were really used.
        assert rig.link.stats["gso super-segments in"] > 0, rig.link.stats
        assert rig.link.stats["tso super-segments out"] > 0, rig.link.stats


# ---------------------------------------------------------------- ICMP and ARP
def test_kernel_pings_synack(rig: Rig) -> None:
    out = rig.lab.exec("ping", "-c", "3", "-i", "0.2", "-W", "1", SYNACK)
    assert "3 packets transmitted, 3 received" in out, out
    if isinstance(rig.link, TapLink):
        neigh = subprocess.run(["ip", "-n", rig.lab.netns, "neigh", "show", SYNACK],
                               capture_output=True, text=True, check=True).stdout
        assert rig.link.mac in neigh                       # the kernel resolved us
        assert rig.link.arp.lookup(KERNEL, now=rig.loop.now()) is not None  # and we it
        assert rig.link.arp.stats["arp replies out"] >= 1


def test_synack_pings_kernel(rig: Rig) -> None:
    payload = b"synack ping test"
    for seq in (1, 2):
        rig.loop.call_soon(lambda now, s=seq: rig.stack.send_echo(KERNEL, 77, s, payload,
                                                                    now=now))
        wait_for(rig, lambda s=seq: any(r.seq == s for r in rig.stack.echo_replies), 5)
    replies = [r for r in rig.stack.echo_replies if r.ident == 77]
    assert [(r.src, r.seq, bytes(r.payload)) for r in replies] == [
        (KERNEL, 1, payload), (KERNEL, 2, payload)]
    if isinstance(rig.link, TapLink):
        kernel_mac = subprocess.run(
            ["ip", "-n", rig.lab.netns, "-br", "link", "show", rig.link.name],
            capture_output=True, text=True, check=True).stdout.split()[2]
        assert rig.link.arp.lookup(KERNEL, now=rig.loop.now()) == kernel_mac
        assert rig.link.arp.stats["arp requests out"] >= 1


# ---------------------------------------------------------------- TCP, 1 MB each way
def test_kernel_client_synack_server(rig: Rig) -> None:
    before = rig.csum_errors()
    with rig.loop.lock:
        lfd = rig.stack.socket()
        rig.stack.bind(lfd, (SYNACK, 5001))
        rig.stack.listen(lfd, 8)
    proc = peer(rig, "client", 5001, MB)
    conn: list[int] = []

    def accepted() -> bool:
        try:
            conn.append(rig.stack.accept(lfd)[0])
        except BlockingIOError:
            return False
        return True

    wait_for(rig, accepted, 10)
    ours = random.Random(2).randbytes(MB)
    got = pump(rig, conn[0], ours)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    total, sha_got, sha_sent = out.split()
    assert (int(total), sha_got) == (MB, hashlib.sha256(ours).hexdigest())
    assert hashlib.sha256(got).hexdigest() == sha_sent and len(got) == MB
    with rig.loop.lock:
        rig.stack.close(conn[0], now=rig.loop.now())
    check_offload_counters(rig)
    assert rig.csum_errors() == before == 0


def test_synack_client_kernel_server(rig: Rig) -> None:
    before = rig.csum_errors()
    proc = peer(rig, "server", 5002, MB)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
    with rig.loop.lock:
        fd = rig.stack.socket()
        rig.stack.connect_ex(fd, (KERNEL, 5002), now=rig.loop.now())
    rig.loop.wake()
    wait_for(rig, lambda: rig.stack.writable(fd), 10)
    ours = random.Random(3).randbytes(MB)
    got = pump(rig, fd, ours)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    total, sha_got, sha_sent = out.split()
    assert (int(total), sha_got) == (MB, hashlib.sha256(ours).hexdigest())
    assert hashlib.sha256(got).hexdigest() == sha_sent and len(got) == MB
    with rig.loop.lock:
        rig.stack.close(fd, now=rig.loop.now())
    check_offload_counters(rig)
    assert rig.csum_errors() == before == 0


# ---------------------------------------------------------------- the lab and the command
def test_lab_removes_what_it_made_and_keeps_what_it_did_not() -> None:
    ns = f"sa-dev-keep{os.getpid() % 1000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        def disabled() -> str:
            return subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n",
                                   "net.ipv6.conf.all.disable_ipv6"],
                                  capture_output=True, text=True, check=True).stdout.strip()

        # Issue 14: IPv6 stays on, the kernel gets 2001:db8::1/64 beside 192.0.2.1.
        with Lab(ns, tap="sadevkeep") as link:
            assert subprocess.run(["ip", "-n", ns, "link", "show", link.name],
                                  check=False, capture_output=True).returncode == 0
            assert disabled() == "0"
            addrs = subprocess.run(["ip", "-n", ns, "-6", "addr", "show", link.name],
                                   capture_output=True, text=True, check=True).stdout
            assert "2001:db8::1/64" in addrs, addrs
        # Without IPv6 addresses the lab turns IPv6 off in the namespace, as it used to.
        with Lab(ns, tap="sadevkeep", kernel_addr6=None, synack_addr6=None):
            assert disabled() == "1"
        assert netns_exists(ns)                         # not ours to delete
        assert subprocess.run(["ip", "-n", ns, "link", "show", "sadevkeep"],
                              check=False, capture_output=True).returncode != 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


@pytest.mark.parametrize("signals", [1, 2], ids=["one", "twice"])
def test_lab_cleans_up_on_sigterm(signals: int) -> None:
    # timeout(1) and process-group kills often deliver SIGTERM twice: the second one
    # must not interrupt the cleanup the first one started.
    ns = f"sa-dev-term{os.getpid() % 1000}"
    code = ("import time; from synack.link.netns import Lab\n"
            f"with Lab({ns!r}, tap='sadevterm'):\n"
            "    print('up', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([PY, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        assert netns_exists(ns)
        for _ in range(signals):
            proc.terminate()
        assert proc.wait(20) == 128 + 15
        assert not netns_exists(ns)
    finally:
        if proc.poll() is None:
            proc.kill()
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)


def test_lab_rejects_bad_addresses() -> None:
    with pytest.raises(ValueError, match="not in"):
        Lab("sa-dev-x", kernel_addr="192.0.2.1/24", synack_addr="198.51.100.2")
    with pytest.raises(ValueError):
        Lab("sa-dev-x", kernel_addr="192.0.2.300/24")


@pytest.mark.parametrize("offload", [False, True], ids=["plain", "offload"])
def test_ping_command(offload: bool) -> None:
    ns = f"sa-dev-ping{os.getpid() % 1000}"
    cmd = [PY, "-m", "synack.cli", "ping", KERNEL, "-c", "3", "-i", "0.2", "--netns", ns]
    res = subprocess.run(cmd + (["--offload"] if offload else []), check=False,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == f"PING {KERNEL} ({KERNEL}) 56(84) bytes of data."
    replies = [ln for ln in lines if ln.startswith("64 bytes from")]
    assert len(replies) == 3
    for i, ln in enumerate(replies, 1):
        assert re.fullmatch(rf"64 bytes from {KERNEL}: icmp_seq={i}{TTL} time=\d+\.\d+ ms",
                            ln), ln
    assert f"--- {KERNEL} ping statistics ---" in lines
    assert re.search(r"^3 packets transmitted, 3 received, 0% packet loss, time \d+ms$",
                     res.stdout, re.MULTILINE)
    assert re.search(r"^rtt min/avg/max/mdev = [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms$",
                     res.stdout, re.MULTILINE)
    assert not netns_exists(ns)


def test_ping_command_no_reply_exits_1() -> None:
    ns = f"sa-dev-noreply{os.getpid() % 1000}"
    res = subprocess.run([PY, "-m", "synack.cli", "ping", "192.0.2.9", "-c", "1", "-W", "1",
                          "--netns", ns], check=False, capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "1 packets transmitted, 0 received, 100% packet loss" in res.stdout
