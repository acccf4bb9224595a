"""Blocking TLS over synack sockets (:mod:`synack.tls`).

Over a loopback host, both ends synack, with a self-signed certificate made by
``openssl req -x509`` for the test: the handshake and what it tells, a big
transfer both ways checked by sha256, makefile, a non-blocking handshake driven
by ``selectors``, unwrap, ragged EOFs, the stdlib's errors. Then under ``synack
run`` against a kernel HTTPS server in a namespace: ``urllib.request``,
``requests`` and ``http.client``, unmodified, every body checked by sha256.
"""

from __future__ import annotations

import hashlib
import os
import selectors
import socket as kernel_socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_run_libs import KERNEL, SYNACK, Bench, _finish, bench  # noqa: F401 - a fixture

import synack.socket as sock
from synack import tls
from synack.api_host import Host

BIG = 3_000_000


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _make_cert(where: Path, ip: str) -> tuple[Path, Path]:
    key, cert = where / "key.pem", where / "cert.pem"
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-subj", "/CN=synack-test", "-addext",
                        f"subjectAltName=DNS:localhost,IP:{ip}", "-keyout", str(key),
                        "-out", str(cert), "-days", "1"], capture_output=True, check=False)
    assert r.returncode == 0, r.stderr.decode()
    return key, cert


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _make_cert(tmp_path_factory.mktemp("tls"), "127.0.0.1")


@pytest.fixture
def host() -> Iterator[Host]:
    h = Host.loopback()
    tls.install()
    try:
        yield h
    finally:
        tls.uninstall()
        h.close()


def _server_ctx(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert[1]), str(cert[0]))
    return ctx


def _client_ctx(cert: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert[1]))


class Server:
    """A synack TLS listener on the loopback host; ``handler(tls_socket)`` runs in a
    thread for one connection, its result or exception kept for the test."""

    def __init__(self, host: Host, ctx: ssl.SSLContext, handler: Callable[[Any], Any], *,
                 wrap_listener: bool = True) -> None:
        raw = sock.socket(host=host)
        raw.bind(("127.0.0.1", 0))
        raw.listen()
        self.port = raw.getsockname()[1]
        self.listener = ctx.wrap_socket(raw, server_side=True) if wrap_listener else raw
        self.ctx, self.handler, self.wrap = ctx, handler, not wrap_listener
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            if self.wrap:
                conn = self.ctx.wrap_socket(conn, server_side=True)
            with conn:
                self.result = self.handler(conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            self.error = exc

    def join(self) -> Any:
        self.thread.join(30)
        assert not self.thread.is_alive(), "the server thread did not finish"
        self.listener.close()
        if self.error is not None:
            raise self.error
        return self.result


def _connect(host: Host, port: int, timeout: float | None = 30) -> sock.socket:
    c = sock.socket(host=host)
    c.settimeout(timeout)
    c.connect(("127.0.0.1", port))
    return c


def _recv_all(t: Any) -> bytes:
    parts = []
    while data := t.recv(65536):
        parts.append(data)
    return b"".join(parts)


# ------------------------------------------------------------------ loopback
def test_handshake_facts_and_big_transfer_both_ways(host: Host, cert: tuple[Path, Path]) -> None:
    up, down = os.urandom(BIG), os.urandom(BIG)
    sctx = _server_ctx(cert)
    sctx.set_alpn_protocols(["synack/1"])

    def handler(t: Any) -> tuple[str, Any, Any]:
        buf = bytearray(65536)
        h = hashlib.sha256()
        got = 0
        while got < len(up):
            n = t.recv_into(buf)
            assert n, "EOF before the whole upload"
            h.update(buf[:n])
            got += n
        t.sendall(down)
        return h.hexdigest(), t.server_side, t.shared_ciphers()

    srv = Server(host, sctx, handler)
    cctx = _client_ctx(cert)
    cctx.set_alpn_protocols(["synack/1"])
    raw = _connect(host, srv.port)
    t = cctx.wrap_socket(raw, server_hostname="localhost")
    assert isinstance(t, tls.TLSSocket)
    assert raw.fileno() == -1 and t.fileno() >= 0     # taken over, as the stdlib's detach()
    assert t.version() == "TLSv1.3"
    assert t.cipher() is not None and t.cipher()[1] == "TLSv1.3"
    assert t.selected_alpn_protocol() == "synack/1"
    assert t.getpeercert()["subject"] == ((("commonName", "synack-test"),),)
    assert t.getpeercert(binary_form=True) == ssl.PEM_cert_to_DER_cert(cert[1].read_text())
    assert (t.server_side, t.server_hostname, t.context) == (False, "localhost", cctx)
    assert t.session is not None and t.session_reused is False
    assert t.compression() is None
    assert t.getpeername() == ("127.0.0.1", srv.port)
    assert t.getsockname()[0] == "127.0.0.1"
    t.sendall(up)
    assert _sha(t.recv(BIG + 1) + _recv_all(t)) == _sha(down)
    t.close()
    got, server_side, shared = srv.join()
    assert got == _sha(up) and server_side is True and shared


def test_every_public_name_of_sslsocket() -> None:
    assert [n for n in dir(ssl.SSLSocket)
            if not n.startswith("_") and n not in dir(tls.TLSSocket)] == []


def test_session_resumption(host: Host, cert: tuple[Path, Path]) -> None:
    sctx, cctx = _server_ctx(cert), _client_ctx(cert)
    reused = []
    session = None
    for _ in range(2):
        srv = Server(host, sctx, lambda t: t.sendall(b"hello") or t.recv(10))
        t = cctx.wrap_socket(_connect(host, srv.port), server_hostname="localhost",
                             session=session)
        assert t.recv(10) == b"hello"             # TLS 1.3: the ticket came before it
        reused.append(t.session_reused)
        session = t.session
        t.sendall(b"bye")
        t.close()
        assert srv.join() == b"bye"
    assert reused == [False, True]


def test_full_duplex_from_two_threads(host: Host, cert: tuple[Path, Path]) -> None:
    """One thread sends while another receives on the same TLS socket, both ends."""
    up, down = os.urandom(BIG), os.urandom(BIG)

    def duplex(t: Any, data: bytes, expect: int) -> str:
        sender = threading.Thread(target=t.sendall, args=(data,), daemon=True)
        sender.start()
        h, got = hashlib.sha256(), 0
        while got < expect:
            chunk = t.recv(65536)
            assert chunk, f"EOF after {got} bytes"
            h.update(chunk)
            got += len(chunk)
        sender.join(30)
        assert not sender.is_alive()
        return h.hexdigest()

    srv = Server(host, _server_ctx(cert), lambda t: duplex(t, down, len(up)))
    t = _client_ctx(cert).wrap_socket(_connect(host, srv.port), server_hostname="localhost")
    assert duplex(t, up, len(down)) == _sha(down)
    assert srv.join() == _sha(up)
    t.close()


def test_makefile_lines(host: Host, cert: tuple[Path, Path]) -> None:
    lines = [f"line {i} {'x' * (i * 37 % 3000)}\n".encode() for i in range(500)]

    def handler(t: Any) -> bytes:
        with t.makefile("wb") as w:
            for line in lines:
                w.write(line)
        with t.makefile("rb") as r:
            return r.readline()

    srv = Server(host, _server_ctx(cert), handler, wrap_listener=False)
    with _client_ctx(cert).wrap_socket(_connect(host, srv.port),
                                       server_hostname="localhost") as t:
        f = t.makefile("r", encoding="ascii", newline="")
        got = [f.readline().encode() for _ in lines]
        t.sendall(b"thanks\nnot this\n")
        f.close()
    assert got == lines
    assert srv.join() == b"thanks\n"


def test_nonblocking_handshake_and_recv_with_selectors(host: Host,
                                                       cert: tuple[Path, Path]) -> None:
    go = threading.Event()

    def handler(t: Any) -> bytes:
        go.wait(30)
        t.sendall(b"after the go")
        return t.recv(100)

    srv = Server(host, _server_ctx(cert), handler)
    raw = _connect(host, srv.port)
    raw.setblocking(False)
    t = _client_ctx(cert).wrap_socket(raw, server_hostname="localhost",
                                      do_handshake_on_connect=False)
    waits = {"read": 0, "write": 0}
    with selectors.DefaultSelector() as sel:
        sel.register(t, selectors.EVENT_READ)
        while True:
            try:
                t.do_handshake()
                break
            except ssl.SSLWantReadError:
                waits["read"] += 1
                sel.modify(t, selectors.EVENT_READ)
            except ssl.SSLWantWriteError:
                waits["write"] += 1
                sel.modify(t, selectors.EVENT_WRITE)
            assert sel.select(30), "the selector timed out during the handshake"
        assert waits["read"] >= 1               # the ServerHello cannot be there at once
        assert t.version() == "TLSv1.3"
        with pytest.raises(ssl.SSLWantReadError) as info:
            t.recv(100)
        assert info.value.args[0] == ssl.SSL_ERROR_WANT_READ
        go.set()
        sel.modify(t, selectors.EVENT_READ)
        got = b""
        while got != b"after the go":
            assert sel.select(30), f"the selector timed out with {got!r}"
            try:
                got += t.recv(100)
            except ssl.SSLWantReadError:
                pass
        t.setblocking(True)
        t.sendall(b"done")
    t.close()
    assert srv.join() == b"done"


def test_nonblocking_send_with_selectors(host: Host, cert: tuple[Path, Path]) -> None:
    """SSLWantWriteError when the stack is full; the same data again once writable
    (OpenSSL's contract), and every byte arrives once."""
    data = os.urandom(BIG)
    reading = threading.Event()

    def handler(t: Any) -> None:
        reading.wait(30)
        h, got = hashlib.sha256(), 0
        while got < len(data):
            chunk = t.recv(65536)
            assert chunk, f"EOF after {got} bytes"
            h.update(chunk)
            got += len(chunk)
        t.sendall(h.hexdigest().encode())

    srv = Server(host, _server_ctx(cert), handler)
    t = _client_ctx(cert).wrap_socket(_connect(host, srv.port), server_hostname="localhost")
    t.setblocking(False)
    sent = want_write = 0
    with selectors.DefaultSelector() as sel:
        sel.register(t, selectors.EVENT_WRITE)
        while sent < len(data):
            try:
                sent += t.send(data[sent:])
            except ssl.SSLWantWriteError:
                want_write += 1
                reading.set()               # the peer reads only once the stack is full
                assert sel.select(30), f"not writable again after {sent} bytes"
    assert want_write >= 1
    t.setblocking(True)
    # Reading the answer also reads TLS 1.3's session tickets: closing with them unread
    # would be a RST, for synack as for Linux.
    assert t.recv(100) == _sha(data).encode()
    t.close()
    srv.join()


def test_unwrap_then_plain_tcp(host: Host, cert: tuple[Path, Path]) -> None:
    def handler(t: Any) -> bytes:
        t.sendall(b"secret")
        plain = t.unwrap()
        assert plain is t and t.version() is None
        plain.sendall(b"in the clear")
        return plain.recv(100)

    srv = Server(host, _server_ctx(cert), handler)
    t = _client_ctx(cert).wrap_socket(_connect(host, srv.port), server_hostname="localhost")
    assert t.recv(100) == b"secret"
    assert t.recv(100) == b""                        # the server's close_notify
    t.unwrap()
    with pytest.raises(ValueError, match="unwrapped"):
        t.read(10)
    got = b""
    while len(got) < len(b"in the clear"):
        got += t.recv(100)                           # bytes after close_notify: plain TCP
    assert got == b"in the clear"
    t.sendall(b"plain reply")
    t.close()
    assert srv.join() == b"plain reply"


@pytest.mark.parametrize("suppress", [True, False])
def test_ragged_eof(host: Host, cert: tuple[Path, Path], suppress: bool) -> None:
    def handler(t: Any) -> None:
        t.sendall(b"last words")
        t.shutdown(sock.SHUT_RDWR)                   # TCP FIN, no close_notify

    srv = Server(host, _server_ctx(cert), handler)
    t = _client_ctx(cert).wrap_socket(_connect(host, srv.port), server_hostname="localhost",
                                      suppress_ragged_eofs=suppress)
    assert t.recv(100) == b"last words"
    if suppress:
        assert t.recv(100) == b""
        assert t.recv_into(bytearray(10)) == 0
    else:
        with pytest.raises(ssl.SSLEOFError):
            t.recv(100)
    t.close()
    srv.join()


def test_read_timeout(host: Host, cert: tuple[Path, Path]) -> None:
    release = threading.Event()
    srv = Server(host, _server_ctx(cert), lambda t: release.wait(30))
    t = _client_ctx(cert).wrap_socket(_connect(host, srv.port), server_hostname="localhost")
    t.settimeout(0.05)
    with pytest.raises(TimeoutError, match="The read operation timed out"):
        t.recv(100)
    release.set()
    t.close()
    srv.join()


@pytest.mark.parametrize("ctx_kind, name, reason", [
    ("default", "localhost", "self-signed certificate"),
    ("ca", "wrong.example", "Hostname mismatch"),
])
def test_certificate_verification_fails(host: Host, cert: tuple[Path, Path], ctx_kind: str,
                                        name: str, reason: str) -> None:
    srv = Server(host, _server_ctx(cert), lambda t: None)
    ctx = ssl.create_default_context() if ctx_kind == "default" else _client_ctx(cert)
    raw = _connect(host, srv.port)
    with pytest.raises(ssl.SSLCertVerificationError, match=reason):
        ctx.wrap_socket(raw, server_hostname=name)
    with pytest.raises(ssl.SSLError, match="alert"):  # the client's alert reached the server
        srv.join()


def test_not_tls_and_stdlib_argument_errors(host: Host, cert: tuple[Path, Path]) -> None:
    listener = sock.socket(host=host)
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def plain_server() -> None:
        c, _ = listener.accept()
        c.sendall(b"HTTP/1.0 200 OK\r\n\r\nhello")
        c.close()

    th = threading.Thread(target=plain_server, daemon=True)
    th.start()
    with pytest.raises(ssl.SSLError, match="WRONG_VERSION_NUMBER"):
        _client_ctx(cert).wrap_socket(_connect(host, listener.getsockname()[1]),
                                      server_hostname="localhost")
    th.join(30)
    nonblocking = _connect(host, listener.getsockname()[1])     # waits in the backlog
    nonblocking.setblocking(False)
    with pytest.raises(ValueError, match="should not be specified for non-blocking"):
        _client_ctx(cert).wrap_socket(nonblocking, server_hostname="localhost")
    listener.close()
    raw = sock.socket(host=host)
    with pytest.raises(ValueError, match="check_hostname requires server_hostname"):
        ssl.create_default_context().wrap_socket(raw)
    with pytest.raises(ValueError, match="server_hostname can only be specified"):
        _server_ctx(cert).wrap_socket(raw, server_side=True, server_hostname="x")
    udp = sock.socket(sock.AF_INET, sock.SOCK_DGRAM, host=host)
    with pytest.raises(NotImplementedError, match="only stream sockets"):
        _client_ctx(cert).wrap_socket(udp, server_hostname="localhost")
    udp.close()
    raw.close()


def test_data_calls_refused_over_tls(host: Host, cert: tuple[Path, Path]) -> None:
    srv = Server(host, _server_ctx(cert), lambda t: t.recv(10))
    t = _client_ctx(cert).wrap_socket(_connect(host, srv.port), server_hostname="localhost")
    with pytest.raises(ValueError, match="non-zero flags"):
        t.send(b"x", sock.MSG_DONTWAIT)
    with pytest.raises(ValueError, match="recvfrom not allowed"):
        t.recvfrom(10)
    with pytest.raises(NotImplementedError):
        t.dup()
    assert t.pending() == 0
    t.sendall(b"ok")
    t.close()
    assert srv.join() == b"ok"


def test_install_leaves_kernel_sockets_to_the_stdlib(host: Host,
                                                     cert: tuple[Path, Path]) -> None:
    k = kernel_socket.socket()
    wrapped = _client_ctx(cert).wrap_socket(k, server_hostname="localhost",
                                            do_handshake_on_connect=False)
    assert type(wrapped) is ssl.SSLSocket
    wrapped.close()
    if hasattr(ssl, "wrap_socket"):                  # 3.11: through SSLContext.wrap_socket
        srv = Server(host, _server_ctx(cert), lambda t: t.recv(10))
        with pytest.warns(DeprecationWarning):
            t = ssl.wrap_socket(_connect(host, srv.port))  # type: ignore[attr-defined]
        assert isinstance(t, tls.TLSSocket)
        t.sendall(b"old api")
        t.close()
        assert srv.join() == b"old api"
    tls.uninstall()
    assert not hasattr(ssl.SSLContext.wrap_socket, "__wrapped__")   # the stdlib's again


# ------------------------------------------------------------------ under synack run
def _https_server(lab: Bench, cert: tuple[Path, Path], port: int = 8443) -> None:
    """A kernel HTTPS server (http.server behind ssl) in the namespace, serving lab.www."""
    code = f"""
import functools, http.server, ssl
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain({str(cert[1])!r}, {str(cert[0])!r})
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"          # keep-alive: a second request on the connection
handler = functools.partial(Handler, directory={str(lab.www)!r})
srv = http.server.ThreadingHTTPServer(("0.0.0.0", {port}), handler)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
"""
    lab.kernel(sys.executable, "-c", code, port=port)


_CLIENTS = {
    "urllib": """
        import hashlib, ssl, urllib.request
        ctx = ssl.create_default_context(cafile="cert.pem")
        with urllib.request.urlopen("https://{ip}:8443/blob", context=ctx, timeout=30) as r:
            print(hashlib.sha256(r.read()).hexdigest())
    """,
    "requests": """
        import hashlib, requests
        with requests.Session() as s:
            for _ in range(2):
                r = s.get("https://{ip}:8443/blob", verify="cert.pem", timeout=30)
                r.raise_for_status()
                print(hashlib.sha256(r.content).hexdigest())
    """,
    "http.client": """
        import hashlib, http.client, ssl
        ctx = ssl.create_default_context(cafile="cert.pem")
        conn = http.client.HTTPSConnection("{ip}", 8443, context=ctx, timeout=30)
        for _ in range(2):
            conn.request("GET", "/blob")
            r = conn.getresponse()
            assert r.status == 200, r.status
            print(hashlib.sha256(r.read()).hexdigest())
        print(type(conn.sock).__module__, conn.sock.version())
        conn.close()
    """,
}


@pytest.mark.parametrize("client", sorted(_CLIENTS))
def test_https_clients_under_synack_run(bench: Bench, client: str) -> None:  # noqa: F811
    cert = _make_cert(bench.tmp, KERNEL)
    _https_server(bench, cert)
    prog = bench.program(_CLIENTS[client].format(ip=KERNEL))
    out = bench.run([str(prog)]).split()
    want = _sha(bench.blob)
    if client == "urllib":
        assert out == [want]
    elif client == "requests":
        assert out == [want] * 2
    else:
        assert out == [want, want, "synack.tls", "TLSv1.3"]
    bench.carried(8443, 1)


def test_redis_py_ssl_under_synack_run(bench: Bench) -> None:  # noqa: F811
    """redis-py with ``ssl=True`` against redis-server's TLS port in the namespace."""
    cert = _make_cert(bench.tmp, KERNEL)
    bench.kernel("redis-server", "--port", "0", "--tls-port", "6380", "--bind", "0.0.0.0",
                 "--tls-cert-file", str(cert[1]), "--tls-key-file", str(cert[0]),
                 "--tls-ca-cert-file", str(cert[1]), "--tls-auth-clients", "no",
                 "--protected-mode", "no", "--save", "", "--appendonly", "no",
                 "--dir", str(bench.tmp), port=6380)
    prog = bench.program(f"""
        import hashlib, redis
        r = redis.Redis(host="{KERNEL}", port=6380, ssl=True, ssl_ca_certs="cert.pem",
                        socket_timeout=30)
        blob = open("www/blob", "rb").read()
        assert r.ping()
        r.set("blob", blob)
        print(hashlib.sha256(r.get("blob")).hexdigest())
        print(type(r.connection_pool.get_connection("ping")._sock).__module__)
    """)
    assert bench.run([str(prog)]).split() == [_sha(bench.blob), "synack.tls"]
    bench.carried(6380, 1)


_SMTP_SERVER = r'''
import hashlib, socketserver, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
class Handler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) for smtplib: EHLO, STARTTLS, MAIL, RCPT, DATA, QUIT."""
    def handle(self):
        sock = self.request
        if self.server.server_address[1] == 4465:            # implicit TLS (SMTPS)
            sock = ctx.wrap_socket(sock, server_side=True)
        r, w = sock.makefile("rb"), sock.makefile("wb", buffering=0)
        w.write(b"220 kernel ESMTP\r\n")
        while line := r.readline():
            cmd = line[:4].upper()
            if cmd == b"EHLO":
                w.write(b"250-kernel\r\n250-SIZE 10000000\r\n250 STARTTLS\r\n")
            elif cmd == b"STAR":
                w.write(b"220 go ahead\r\n")
                r.close(); w.close()
                sock = ctx.wrap_socket(sock, server_side=True)
                r, w = sock.makefile("rb"), sock.makefile("wb", buffering=0)
            elif cmd == b"DATA":
                w.write(b"354 end with .\r\n")
                body = b""
                while (l := r.readline()) != b".\r\n":
                    body += l[1:] if l.startswith(b".") else l
                w.write(b"250 " + hashlib.sha256(body).hexdigest().encode() + b"\r\n")
            elif cmd == b"QUIT":
                w.write(b"221 bye\r\n")
                break
            else:
                w.write(b"250 ok\r\n")
        sock.close()
socketserver.ThreadingTCPServer.allow_reuse_address = True
servers = [socketserver.ThreadingTCPServer(("0.0.0.0", p), Handler) for p in (4465, 4587)]
import threading
for s in servers:
    threading.Thread(target=s.serve_forever, daemon=True).start()
threading.Event().wait()
'''


def test_smtplib_starttls_and_smtp_ssl_under_synack_run(bench: Bench) -> None:  # noqa: F811
    """smtplib's STARTTLS (wrap mid-connection) and SMTP_SSL (implicit TLS); the kernel's
    server answers DATA with the sha256 of the message it got."""
    cert = _make_cert(bench.tmp, KERNEL)
    (bench.tmp / "smtpd.py").write_text(_SMTP_SERVER)
    bench.kernel(sys.executable, str(bench.tmp / "smtpd.py"), str(cert[1]), str(cert[0]),
                 port=4587)
    prog = bench.program(f"""
        import base64, hashlib, smtplib, ssl
        ctx = ssl.create_default_context(cafile="cert.pem")
        blob = open("www/blob", "rb").read()
        msg = b"Subject: blob\\r\\n\\r\\n" + base64.encodebytes(blob).replace(b"\\n", b"\\r\\n")
        print(hashlib.sha256(msg).hexdigest())
        with smtplib.SMTP("{KERNEL}", 4587, timeout=30) as s:
            s.starttls(context=ctx)
            print(type(s.sock).__module__, s.sock.version())
            s.ehlo()
            print(s.sendmail("a@example.org", ["b@example.org"], msg) == {{}}, s.noop()[0])
            code, text = s.docmd("DATA")
            s.send(msg + b".\\r\\n")
            print(s.getreply()[1].decode())
        with smtplib.SMTP_SSL("{KERNEL}", 4465, context=ctx, timeout=30) as s:
            s.ehlo()
            code, text = s.docmd("DATA")
            s.send(msg + b".\\r\\n")
            print(s.getreply()[1].decode())
    """)
    out = bench.run([str(prog)]).split()
    sha = out[0]
    assert out[1:] == ["synack.tls", "TLSv1.3", "True", "250", sha, sha]
    bench.carried(None, 2, sender=SYNACK)


def test_https_server_under_synack_run(bench: Bench) -> None:  # noqa: F811
    """The stdlib's http.server with its listener wrapped server-side, on synack: the
    kernel's curl fetches over TLS (accept() hands out handshaken TLS sockets)."""
    cert = _make_cert(bench.tmp, SYNACK)
    prog = bench.program("""
        import functools, http.server, ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain("cert.pem", "key.pem")
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory="www")
        with http.server.HTTPServer(("0.0.0.0", 8443), handler) as srv:
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
            print(type(srv.socket).__module__, flush=True)
            for _ in range(3):
                srv.handle_request()
    """)
    p = bench.start([str(prog)])
    for _ in range(3):
        got = bench.curl(f"https://{SYNACK}:8443/blob", p, "--cacert", str(cert[1]))
        assert _sha(got) == _sha(bench.blob)
    assert _finish(bench, p).split() == ["synack.tls"]
    bench.carried(8443, 3, sender=SYNACK)


def test_ftplib_ftp_tls_under_synack_run(bench: Bench) -> None:  # noqa: F811
    """ftplib.FTP_TLS (AUTH TLS on the control connection, PROT P data connections)
    against pyftpdlib's TLS handler run by the kernel."""
    import OpenSSL  # noqa: F401 - pyftpdlib's TLS handler needs pyOpenSSL (the test extra)
    cert = _make_cert(bench.tmp, KERNEL)
    code = f"""
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer
auth = DummyAuthorizer()
auth.add_anonymous({str(bench.www)!r}, perm="elradfmw")
TLS_FTPHandler.certfile, TLS_FTPHandler.keyfile = {str(cert[1])!r}, {str(cert[0])!r}
TLS_FTPHandler.tls_control_required = TLS_FTPHandler.tls_data_required = True
TLS_FTPHandler.authorizer = auth
FTPServer(("0.0.0.0", 2121), TLS_FTPHandler).serve_forever()
"""
    bench.kernel(sys.executable, "-c", code, port=2121)
    upload = os.urandom(1_000_000)
    (bench.tmp / "upload").write_bytes(upload)
    prog = bench.program(f"""
        import ftplib, hashlib, io, ssl
        ctx = ssl.create_default_context(cafile="cert.pem")
        ftp = ftplib.FTP_TLS(context=ctx, timeout=30)
        ftp.connect("{KERNEL}", 2121)
        ftp.login()
        ftp.prot_p()
        print(type(ftp.sock).__module__, ftp.sock.version(), isinstance(ftp.sock, ssl.SSLSocket))
        buf = io.BytesIO()
        ftp.retrbinary("RETR blob", buf.write)
        print(hashlib.sha256(buf.getvalue()).hexdigest())
        with open("upload", "rb") as f:
            ftp.storbinary("STOR up.bin", f)
        print("up.bin" in ftp.nlst())
        ftp.quit()
    """)
    out = bench.run([str(prog)]).split()
    assert out == ["synack.tls", "TLSv1.3", "True", _sha(bench.blob), "True"]
    assert _sha((bench.www / "up.bin").read_bytes()) == _sha(upload)
    bench.carried(None, 3)
