"""The forwarder (any address, any port) and packet-pipe links.

In process: two hosts joined by a LinkPair, by PipeLinks and by an AsyncQueueLink;
the forwarder's host terminates connections to addresses that are not its own.
Live: examples/forward_ns.py makes a namespace whose default route is a TUN to
synack; the kernel's curl and nc there reach several addresses and ports, all
terminated by synack and spliced to servers on the host's loopback; every
transfer is checked by sha256, and ``synack ss`` lists the connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.server
import os
import socket as kernel_socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import synack.socket as ssock
from synack.api_host import Host
from synack.forwarder import Forwarder, ForwardRequest
from synack.link.loopback import LinkPair
from synack.link.pipe import AsyncQueueLink, PipeLink

ROOT = Path(__file__).resolve().parent.parent
live = pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
                          reason="the live forwarder needs root and /dev/net/tun")


def _digest_handler(req: ForwardRequest) -> None:
    """Accept; read to EOF; answer with the sha256 of what came and the destination."""
    if req.dst[1] == 9:
        req.reject()
        return
    conn = req.accept(timeout=10)
    h = hashlib.sha256()
    while data := conn.recv(65536):
        h.update(data)
    conn.sendall(f"{h.hexdigest()} {req.dst[0]}:{req.dst[1]}".encode())
    conn.close()


def _exchange(host: Host, dst: tuple[str, int], payload: bytes) -> str:
    s = ssock.socket(host=host)
    s.settimeout(20)
    try:
        s.connect(dst)
        s.sendall(payload)
        s.shutdown(ssock.SHUT_WR)
        chunks = []
        while data := s.recv(4096):
            chunks.append(data)
        return b"".join(chunks).decode()
    finally:
        s.close()


def _check_forwarding(client: Host, server: Host) -> None:
    with Forwarder(server, _digest_handler) as fwd:
        for dst in [("198.51.100.7", 80), ("203.0.113.9", 443), (server.stack.addr, 5555)]:
            payload = os.urandom(200_000)
            answer = _exchange(client, dst, payload)
            assert answer == f"{hashlib.sha256(payload).hexdigest()} {dst[0]}:{dst[1]}"
        with pytest.raises(ConnectionRefusedError):
            _exchange(client, ("198.51.100.7", 9), b"x")
        assert fwd.fwd.accepted == 3 and fwd.fwd.rejected == 1


def test_forwarder_terminates_any_address_over_a_link_pair() -> None:
    a, b = LinkPair()
    client, server = Host.on_link("192.0.2.1", a), Host.on_link("192.0.2.2", b)
    try:
        _check_forwarding(client, server)
    finally:
        client.close()
        server.close()


def test_a_host_without_forwarder_still_drops_other_addresses() -> None:
    a, b = LinkPair()
    client, server = Host.on_link("192.0.2.1", a), Host.on_link("192.0.2.2", b)
    try:
        s = ssock.socket(host=client)
        s.settimeout(1.5)
        with pytest.raises(TimeoutError):
            s.connect(("198.51.100.7", 80))     # no answer at all, as for a black hole
        s.close()
        with server.loop.lock:
            assert server.stack.stats["dropped not for us"] >= 1
    finally:
        client.close()
        server.close()


def test_pipe_links_carry_a_forwarded_connection() -> None:
    """Two PipeLinks whose send() is the other's deliver(): any tunnel looks like this."""
    ends: dict[str, PipeLink] = {}
    ends["a"] = PipeLink(send=lambda p: ends["b"].deliver(p), name="a")
    ends["b"] = PipeLink(send=lambda p: ends["a"].deliver(p), name="b")
    client = Host.on_link("192.0.2.1", ends["a"])
    server = Host.on_link("192.0.2.2", ends["b"])
    try:
        _check_forwarding(client, server)
        assert ends["a"].packets_out > 0 and ends["b"].packets_in == ends["a"].packets_out
    finally:
        client.close()
        server.close()


def test_undecided_or_failing_handlers_reset_and_a_held_syn_is_retried() -> None:
    """A handler that returns without deciding, or raises, means RST; a SYN
    retransmitted while the handler decides is absorbed, not a second request."""
    a, b = LinkPair()
    client, server = Host.on_link("192.0.2.1", a), Host.on_link("192.0.2.2", b)
    seen: list[ForwardRequest] = []
    go = threading.Event()

    def handler(req: ForwardRequest) -> None:
        seen.append(req)
        if req.dst[1] == 1:
            return                              # undecided: the forwarder resets
        if req.dst[1] == 2:
            raise RuntimeError("handler bug (expected by the test)")
        assert go.wait(30)                      # decide only after the client's SYN retry
        req.accept().close()

    try:
        with Forwarder(server, handler) as fwd:
            for port in (1, 2):
                with pytest.raises(ConnectionRefusedError):
                    _exchange(client, ("198.51.100.1", port), b"")
            s = ssock.socket(host=client)
            s.settimeout(30)
            t = threading.Thread(target=s.connect, args=(("198.51.100.1", 3),))
            t.start()
            deadline = time.monotonic() + 30
            while True:                          # the client's SYN is sent again (RTO 1 s)
                with client.loop.lock:
                    conn = client.stack.connection(s.stack_fd)
                    if conn is not None and conn.retransmits >= 1:
                        break
                assert time.monotonic() < deadline, "no SYN retransmission"
                time.sleep(0.02)
            go.set()
            t.join(30)
            assert s.getpeername() == ("198.51.100.1", 3)
            s.close()
            assert [r.dst[1] for r in seen] == [1, 2, 3]
            assert fwd.fwd.requests == 3 and not fwd.fwd.pending
    finally:
        client.close()
        server.close()


def test_pipe_link_rejects_a_non_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        PipeLink(send=b"not callable")  # type: ignore[arg-type]


def test_async_queue_link_bridges_an_asyncio_tunnel() -> None:
    """The server side's packets travel through asyncio queues moved by a coroutine."""

    async def main() -> None:
        link = AsyncQueueLink()
        link.start()
        peer = PipeLink(send=lambda p: loop.call_soon_threadsafe(link.incoming.put_nowait, p))
        client = Host.on_link("192.0.2.1", peer)
        server = Host.on_link("192.0.2.2", link)

        async def carry() -> None:          # the "tunnel": outgoing queue -> the peer
            while True:
                peer.deliver(await link.outgoing.get())

        carrier = asyncio.create_task(carry())
        try:
            await asyncio.to_thread(_check_forwarding, client, server)
        finally:
            carrier.cancel()
            client.close()
            server.close()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


# ------------------------------------------------------------------ live: the example
class _DigestServer(threading.Thread):
    """On the host's loopback: read to EOF, answer the sha256 (what nc uploads)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = kernel_socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    @staticmethod
    def _one(conn: kernel_socket.socket) -> None:
        with conn:
            h = hashlib.sha256()
            while data := conn.recv(65536):
                h.update(data)
            conn.sendall(h.hexdigest().encode() + b"\n")


def _free_port() -> int:
    with kernel_socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _http_server(root: Path) -> Iterator[int]:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as srv:
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            yield srv.server_address[1]
        finally:
            srv.shutdown()


def _wait_line(proc: subprocess.Popen[str], want: str, deadline: float) -> str:
    seen = []
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if want in line:
            return line
    raise AssertionError(f"no {want!r} from the forwarder; it printed: {''.join(seen)}")


@live
@pytest.mark.parametrize("kind", ["tun", "tap"])
def test_example_terminates_a_namespaces_tcp(tmp_path: Path, kind: str) -> None:
    ns = f"sa-fwd-{os.getpid()}-{kind}"
    env = dict(os.environ, SYNACK_RUN_DIR=str(tmp_path / "run"),
               PYTHONPATH=str(ROOT / "src"))
    blob = os.urandom(3_000_000)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "blob").write_bytes(blob)
    upload = tmp_path / "upload"
    upload.write_bytes(os.urandom(1_500_000))
    digest = _DigestServer()
    digest.start()
    closed_port = _free_port()
    with _http_server(tmp_path / "www") as http_port:
        proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "forward_ns.py"),
                                 "--netns", ns, "--to", "127.0.0.1", "--link", kind],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env)
        out = ""
        try:
            _wait_line(proc, "forwarding every TCP connection", time.monotonic() + 30)

            def nsexec(*cmd: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
                return subprocess.run(["ip", "netns", "exec", ns, *cmd], input=stdin,
                                      capture_output=True, timeout=60, check=False)

            # Downloads by curl from three addresses that exist nowhere.
            # (An address on the TAP's own subnet would need synack to answer ARP for it:
            # the TUN, with no ARP, takes one, the TAP one more beyond the gateway.)
            third = "192.0.2.99" if kind == "tun" else "198.51.100.99"
            for addr in ("198.51.100.7", "203.0.113.200", third):
                r = nsexec("curl", "-sS", "-m", "30", f"http://{addr}:{http_port}/blob")
                assert r.returncode == 0, r.stderr.decode()
                assert hashlib.sha256(r.stdout).digest() == hashlib.sha256(blob).digest()
            # Uploads by nc to two more; the server on the host answers the sha256.
            for addr in ("198.51.100.8", "203.0.113.1"):
                r = nsexec("nc", "-N", "-w", "30", addr, str(digest.port),
                           stdin=upload.read_bytes())
                assert r.stdout.decode().strip() == hashlib.sha256(upload.read_bytes()).hexdigest(), \
                    r.stderr.decode()
            # A port nothing listens on upstream: refused, as the far end would.
            r = nsexec("curl", "-sS", "-m", "10", f"http://198.51.100.7:{closed_port}/")
            assert r.returncode == 7, (r.returncode, r.stderr.decode())
            # An open connection, listed by synack ss.
            holder = subprocess.Popen(
                ["ip", "netns", "exec", ns, sys.executable, "-c",
                 ("import socket, sys\n"
                 f"s = socket.create_connection(('203.0.113.77', {digest.port}))\n"
                 "print('up', flush=True)\nsys.stdin.read()\n")],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                assert holder.stdout is not None and holder.stdout.readline() == "up\n"
                deadline = time.monotonic() + 10
                while True:
                    ss = subprocess.run([sys.executable, "-m", "synack.cli", "ss", "-t", "-n"],
                                        capture_output=True, text=True, env=env, timeout=30,
                                        check=False)
                    rows = [line for line in ss.stdout.splitlines()
                            if f"203.0.113.77:{digest.port}" in line]
                    if rows and "ESTAB" in rows[0]:
                        break
                    assert time.monotonic() < deadline, ss.stdout + ss.stderr
            finally:
                holder.communicate("", timeout=30)
        finally:
            proc.terminate()
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            digest.sock.close()
    assert proc.returncode == 0, out
    assert "Connection refused; RST" in out, out
    assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, check=False,
                                    text=True).stdout


def test_udp_tunnel_example() -> None:
    """examples/udp_tunnel.py: PipeLinks over kernel UDP on loopback, a forwarder at the far end."""
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "udp_tunnel.py"), "--bytes", "1M"],
                       capture_output=True, text=True, timeout=120, check=False,
                       env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("sha256 matches") == 3, r.stdout + r.stderr


def test_held_syn_then_accept_sans_io() -> None:
    """The stack side alone: a SYN to another address is held (nothing sent), accept()
    answers SYN,ACK from that address, ``ss`` rows show the half-open connection, and
    the final ACK hands it over with a descriptor."""
    from synack.host.forward import Forwarding
    from synack.host.ssrows import ss_rows
    from synack.stack import Stack
    from synack.wire.ipv4 import build_tcp_packet, parse_ipv4
    from synack.wire.tcp import ACK, SYN, TcpSegment, parse_tcp

    stack = Stack("192.0.2.2", seed=1)
    fwd = Forwarding(stack)
    fwd.install()
    syn = TcpSegment(src_port=40000, dst_port=443, seq=1000, flags=SYN, window=65535, mss=1460)
    stack.receive(build_tcp_packet("192.0.2.1", "198.51.100.7", syn), now=0)
    assert stack.transmit(now=0) == []                  # held: the application decides
    key = ("198.51.100.7", 443, "192.0.2.1", 40000)
    assert fwd.take_new() == [key]
    stack.receive(build_tcp_packet("192.0.2.1", "198.51.100.7", syn), now=1000)  # SYN again
    assert stack.transmit(now=1000) == [] and fwd.take_new() == []
    fwd.accept(key, now=2000)
    (out,) = stack.transmit(now=2000)
    ip, body = parse_ipv4(out)
    synack = parse_tcp(body, ip.src, ip.dst)
    assert (ip.src, ip.dst, synack.flags, synack.ack) == ("198.51.100.7", "192.0.2.1",
                                                         SYN | ACK, 1001)
    assert fwd.take(key) is None                        # still handshaking
    rows = ss_rows(stack, 2000)
    assert [(r["state"], r["local"]) for r in rows] == [("SYN_RECEIVED", ["198.51.100.7", 443])]
    ack = TcpSegment(src_port=40000, dst_port=443, seq=1001, ack=synack.seq + 1, flags=ACK,
                     window=65535)
    stack.receive(build_tcp_packet("192.0.2.1", "198.51.100.7", ack), now=3000)
    fd = fwd.take(key)
    assert fd is not None and stack.getpeername(fd) == ("192.0.2.1", 40000)
    assert stack.getsockname(fd) == ("198.51.100.7", 443)


def test_a_request_reset_by_the_client_cannot_be_accepted() -> None:
    from synack.host.forward import Forwarding
    from synack.stack import Stack
    from synack.wire.ipv4 import build_tcp_packet
    from synack.wire.tcp import RST, SYN, TcpSegment

    stack = Stack("192.0.2.2", seed=1)
    fwd = Forwarding(stack)
    fwd.install()
    syn = TcpSegment(src_port=40001, dst_port=80, seq=5, flags=SYN, window=65535)
    stack.receive(build_tcp_packet("192.0.2.1", "203.0.113.3", syn), now=0)
    rst = TcpSegment(src_port=40001, dst_port=80, seq=6, flags=RST, window=0)
    stack.receive(build_tcp_packet("192.0.2.1", "203.0.113.3", rst), now=10)
    key = ("203.0.113.3", 80, "192.0.2.1", 40001)
    assert fwd.take_new() == []                     # gone before anyone looked
    with pytest.raises(ConnectionResetError):
        fwd.accept(key, now=20)
    assert stack.transmit(now=20) == []
