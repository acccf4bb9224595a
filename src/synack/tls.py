"""Blocking TLS over a synack socket: ``ssl.SSLContext.wrap_socket`` for synack.

The C ``_ssl`` module can only wrap a kernel socket, so ``ctx.wrap_socket(sock)``
on a :class:`synack.socket.socket` fails. :class:`TLSSocket` is the stdlib's
``ssl.SSLSocket`` rebuilt over an :class:`ssl.SSLObject` and two
:class:`ssl.MemoryBIO`: the same calls (``do_handshake``, ``send``/``sendall``/
``recv``/``recv_into``/``read``/``write``, ``pending``, ``makefile``, ``unwrap``,
``getpeercert``, ``cipher``, ``version``, ``accept``, ...), the same errors
(``SSLWantReadError``/``SSLWantWriteError`` when non-blocking,
``SSLEOFError``/``SSLZeroReturnError``, ``SSLCertVerificationError``,
``TimeoutError``), the same ``suppress_ragged_eofs`` rule.

:func:`install` (``synack run`` calls it) patches ``ssl.SSLContext.wrap_socket``
so that a synack socket gets a :class:`TLSSocket` and anything else the
original; ``ssl.wrap_socket`` (3.11) calls the method, so it follows. Under
``synack run``, where ``ssl`` is imported after the swap and its ``SSLSocket``
derives from synack's socket, the class handed out derives from ``ssl.SSLSocket``
as well, so ``isinstance(sock, ssl.SSLSocket)`` holds as with the kernel.

Theory of operation
-------------------
The :class:`TLSSocket` takes over the synack socket's stack descriptor (as the
stdlib's ``detach()``: the object that was wrapped is closed, without closing
the connection) and its ``fileno()`` readiness descriptor. Every TLS call is a
loop: try the ``SSLObject`` call; send whatever it wrote to the outgoing BIO;
when it wants to read, receive from the stack into the incoming BIO and try
again. A blocking call waits on the stack (the loop's condition) with one
deadline for the whole call, as ``_ssl.c`` does; a non-blocking one raises
``SSLWantReadError``/``SSLWantWriteError`` where the stack would block.

The moving of ciphertext between the SSLObject and the stack (one TLS record
at a time, as OpenSSL reads a kernel socket) is :mod:`synack.tlspump`'s.
"""

from __future__ import annotations

import errno
import importlib
import ssl
from typing import Any, Literal, overload

from synack import socket as _sock
from synack.tlspump import TLSPump, would_block

__all__ = ["TLSSocket", "install", "uninstall", "wrap"]

_WRITE_CHUNK = 64 * 1024        # plaintext encrypted per step of a blocking send
_originals: dict[Any, Any] = {}
# The plain socket's methods, called by name rather than through super(): under
# ``synack run`` the class handed out also derives from ssl.SSLSocket (see install),
# whose methods must never run in between.
_Plain = _sock.socket


class TLSSocket(TLSPump):
    """A TLS connection over a synack socket, with ``ssl.SSLSocket``'s interface.

    Made by :func:`wrap` (what the patched ``SSLContext.wrap_socket`` calls)."""

    _sslobj: ssl.SSLObject | None
    _context: ssl.SSLContext
    _session: ssl.SSLSession | None
    _write_pending: int
    _connected: bool
    server_side: bool
    server_hostname: str | None
    do_handshake_on_connect: bool
    suppress_ragged_eofs: bool

    @classmethod
    def _create(cls, sock: _sock.socket, context: ssl.SSLContext, server_side: bool,
                do_handshake_on_connect: bool, suppress_ragged_eofs: bool,
                server_hostname: str | bytes | None, session: ssl.SSLSession | None,
                ) -> TLSSocket:
        # The stdlib's SSLSocket._create, checks and order included.
        if sock.type != _sock.SOCK_STREAM:
            raise NotImplementedError("only stream sockets are supported")
        if server_side:
            if server_hostname:
                raise ValueError("server_hostname can only be specified in client mode")
            if session is not None:
                raise ValueError("session can only be specified in client mode")
        if context.check_hostname and not server_hostname:
            raise ValueError("check_hostname requires server_hostname")
        self: TLSSocket = cls.__new__(cls)
        self._take_over(sock)
        self._context = context
        self._session = session
        self._sslobj = None
        self._init_pump()
        self._write_pending = 0     # plaintext taken by a write that raised SSLWantWriteError
        self.server_side = server_side
        if isinstance(server_hostname, bytes):
            server_hostname = server_hostname.decode("ascii")
        self.server_hostname = server_hostname
        self.do_handshake_on_connect = do_handshake_on_connect
        self.suppress_ragged_eofs = suppress_ragged_eofs
        try:
            self.getpeername()
        except OSError as exc:
            if exc.errno != errno.ENOTCONN:
                self.close()
                raise
            connected = False
        else:
            connected = True
        self._connected = connected
        if connected:
            try:
                self._sslobj = self._new_sslobj()
                if do_handshake_on_connect:
                    if self.gettimeout() == 0.0:
                        raise ValueError("do_handshake_on_connect should not be specified "
                                         "for non-blocking sockets")
                    self.do_handshake()
            except (OSError, ValueError):
                self.close()
                raise
        return self

    def _take_over(self, sock: _sock.socket) -> None:
        """Own ``sock``'s stack descriptor and readiness descriptor; ``sock`` is left
        closed without the connection closing (the stdlib's ``sock.detach()``)."""
        loop = sock._host.loop
        with loop.lock:
            fd = sock._live_fd()
            _sock.socket.__init__(self, _sock.AF_INET, _sock.SOCK_STREAM, sock._proto,
                                  host=sock._host, _fd=fd)
            self._timeout = sock._timeout
            self._ready, self._watcher = sock._ready, sock._watcher
            sock._fd = None
            sock._ready = sock._watcher = None
            sock._closed = True

    def _new_sslobj(self) -> ssl.SSLObject:
        return self._context.wrap_bio(self._incoming, self._outgoing, self.server_side,
                                      self.server_hostname, self._session)

    # ------------------------------------------------------------ handshake and state
    def _check_connected(self) -> None:
        if not self._connected:
            self.getpeername()          # ENOTCONN unless connected meanwhile

    def _obj(self) -> ssl.SSLObject:
        if self._sslobj is None:
            raise ValueError("No SSL wrapper around " + str(self))
        return self._sslobj

    def do_handshake(self, block: bool = False) -> None:
        """Perform the TLS handshake (non-blocking: SSLWantReadError/SSLWantWriteError)."""
        self._check_connected()
        timeout = self.gettimeout()
        try:
            if timeout == 0.0 and block:
                self.settimeout(None)
            self._run(self._obj().do_handshake, "handshake")
        finally:
            self.settimeout(timeout)

    def _real_connect(self, addr: tuple[str, int], connect_ex: bool) -> int | None:
        if self.server_side:
            raise ValueError("can't connect in server-side mode")
        if self._connected or self._sslobj is not None:
            raise ValueError("attempt to connect already-connected SSLSocket!")
        self._sslobj = self._new_sslobj()
        try:
            rc: int | None = None
            if connect_ex:
                rc = _Plain.connect_ex(self, addr)
            else:
                _Plain.connect(self, addr)
            if not rc:
                self._connected = True
                if self.do_handshake_on_connect:
                    self.do_handshake()
            return rc
        except (OSError, ValueError):
            self._sslobj = None
            raise

    def connect(self, address: tuple[str, int]) -> None:
        """Connect, then (do_handshake_on_connect) perform the handshake."""
        self._real_connect(address, False)

    def connect_ex(self, address: tuple[str, int]) -> int:
        """Like :meth:`connect`, returning an errno."""
        return self._real_connect(address, True) or 0

    def accept(self) -> tuple[Any, tuple[str, int]]:  # type: ignore[override]
        """A connection, wrapped server-side as this socket was (handshake included when
        do_handshake_on_connect), as the stdlib's SSLSocket.accept."""
        newsock, addr = _Plain.accept(self)
        return wrap(self._context, newsock, server_side=True,
                    do_handshake_on_connect=self.do_handshake_on_connect,
                    suppress_ragged_eofs=self.suppress_ragged_eofs), addr

    def unwrap(self) -> TLSSocket:
        """Send close_notify, wait for the peer's, and return this socket, now plain
        TCP (the bytes after the peer's close_notify are still to be received)."""
        obj = self._obj()
        self._run(obj.unwrap, "shutdown")
        self._sslobj = None
        return self

    def verify_client_post_handshake(self) -> None:
        """Ask a TLS 1.3 client for its certificate (sent with the next write)."""
        obj = self._obj()
        with self._ssl_lock:
            obj.verify_client_post_handshake()
        self._flush_soft("write")

    @property
    def context(self) -> ssl.SSLContext:
        """The SSLContext; assigning one switches it (for SNI callbacks), as the stdlib."""
        return self._context

    @context.setter
    def context(self, ctx: ssl.SSLContext) -> None:
        self._context = ctx
        if self._sslobj is not None:
            self._sslobj.context = ctx

    @property
    def session(self) -> ssl.SSLSession | None:
        """The TLS session (for resumption on a later connection)."""
        if self._sslobj is not None:
            return self._sslobj.session
        return None

    @session.setter
    def session(self, session: ssl.SSLSession | None) -> None:
        self._session = session
        if self._sslobj is not None:
            self._sslobj.session = session

    @property
    def session_reused(self) -> bool | None:
        """Whether the handshake resumed a session (None before a connection)."""
        return self._sslobj.session_reused if self._sslobj is not None else None

    @overload
    def getpeercert(self, binary_form: Literal[False] = ...) -> Any: ...
    @overload
    def getpeercert(self, binary_form: Literal[True]) -> bytes | None: ...
    @overload
    def getpeercert(self, binary_form: bool) -> Any: ...
    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate: a dict (when verified), or DER bytes."""
        self._check_connected()
        return self._obj().getpeercert(binary_form)

    def cipher(self) -> tuple[str, str, int] | None:
        """(name, protocol, secret bits) of the cipher in use; None before the handshake."""
        return self._sslobj.cipher() if self._sslobj is not None else None

    def shared_ciphers(self) -> list[tuple[str, str, int]] | None:
        """The ciphers both ends offered (server side), as the stdlib."""
        return self._sslobj.shared_ciphers() if self._sslobj is not None else None

    def compression(self) -> str | None:
        """The compression algorithm in use (None: none)."""
        return self._sslobj.compression() if self._sslobj is not None else None

    def version(self) -> str | None:
        """The protocol version ("TLSv1.3", ...); None before the handshake."""
        return self._sslobj.version() if self._sslobj is not None else None

    def selected_alpn_protocol(self) -> str | None:
        """The ALPN protocol agreed on, or None."""
        return self._sslobj.selected_alpn_protocol() if self._sslobj is not None else None

    def selected_npn_protocol(self) -> str | None:
        """None: NPN is gone from OpenSSL (as the stdlib's answer)."""
        return None

    def get_channel_binding(self, cb_type: str = "tls-unique") -> bytes | None:
        """Channel binding data (RFC 5929), or None before the handshake."""
        if self._sslobj is None:
            return None
        return self._sslobj.get_channel_binding(cb_type)

    def get_verified_chain(self) -> Any:
        """The verified certificate chain (Python 3.13's SSLSocket call)."""
        obj: Any = self._obj()
        return obj.get_verified_chain()

    def get_unverified_chain(self) -> Any:
        """The chain as the peer sent it (Python 3.13's SSLSocket call)."""
        obj: Any = self._obj()
        return obj.get_unverified_chain()

    def pending(self) -> int:
        """Decrypted bytes ready to read without touching the network."""
        obj = self._sslobj
        if obj is None:
            return 0
        with self._ssl_lock:
            return obj.pending()

    # ------------------------------------------------------------ data
    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        """Up to ``len`` bytes (into ``buffer`` when given); b"" at the end."""
        obj = self._sslobj
        if obj is None:
            raise ValueError("Read on closed or unwrapped SSL socket.")
        try:
            if buffer is not None:
                return self._run(lambda: obj.read(len, buffer), "read")
            return self._run(lambda: obj.read(len), "read")
        except ssl.SSLError as exc:
            if exc.args[0] == ssl.SSL_ERROR_EOF and self.suppress_ragged_eofs:
                return 0 if buffer is not None else b""
            raise

    def write(self, data: Any) -> int:
        """Encrypt and send ``data``; returns how many bytes were taken."""
        obj = self._sslobj
        if obj is None:
            raise ValueError("Write on closed or unwrapped SSL socket.")
        view = memoryview(data).cast("B")
        end, nonblock = self._deadline()
        if nonblock:
            # OpenSSL's contract for a non-blocking SSL_write: a record that could not
            # all be sent raises SSLWantWriteError, the caller calls again with the same
            # data, and that call returns its length once the record is all sent. So a
            # count returned means the ciphertext is in the stack.
            if self._write_pending:
                self._flush(end, True, "write")
                n, self._write_pending = self._write_pending, 0
                return n
            self._flush(end, True, "write")
            n = int(self._run(lambda: obj.write(view[:_WRITE_CHUNK]), "write"))
            if self._unsent:
                self._write_pending = n
                raise would_block(ssl.SSLWantWriteError)
            return n
        done = 0
        while done < len(view):
            done += self._run(lambda at=done: obj.write(view[at:at + _WRITE_CHUNK]), "write")
        return done

    def send(self, data: Any, flags: int = 0) -> int:
        """Send ``data`` over TLS (plain TCP once unwrapped)."""
        if self._sslobj is not None:
            if flags != 0:
                raise ValueError(f"non-zero flags not allowed in calls to send() on "
                                 f"{self.__class__}")
            return self.write(data)
        return _Plain.send(self, data, flags)

    def sendall(self, data: Any, flags: int = 0) -> None:
        """Send all of ``data``."""
        if self._sslobj is None:
            _Plain.sendall(self, data, flags)
            return
        if flags != 0:
            raise ValueError(f"non-zero flags not allowed in calls to sendall() on "
                             f"{self.__class__}")
        view = memoryview(data).cast("B")
        count = 0
        while count < len(view):
            count += self.send(view[count:])

    def recv(self, bufsize: int = 1024, flags: int = 0) -> bytes:
        """Up to ``bufsize`` decrypted bytes; b"" at the end."""
        if self._sslobj is not None:
            if flags != 0:
                raise ValueError(f"non-zero flags not allowed in calls to recv() on "
                                 f"{self.__class__}")
            return bytes(self.read(bufsize))
        return _Plain.recv(self, bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int | None = None,  # type: ignore[override]
                  flags: int = 0) -> int:
        """Decrypted bytes into ``buffer``; returns how many."""
        if nbytes is None or nbytes == 0:
            with memoryview(buffer) as view:
                nbytes = view.nbytes or 1024
        if self._sslobj is not None:
            if flags != 0:
                raise ValueError(f"non-zero flags not allowed in calls to recv_into() on "
                                 f"{self.__class__}")
            return int(self.read(nbytes, buffer))
        return _Plain.recv_into(self, buffer, nbytes, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> Any:
        """Refused over TLS, as the stdlib."""
        if self._sslobj is not None:
            raise ValueError(f"recvfrom not allowed on instances of {self.__class__}")
        return _Plain.recvfrom(self, bufsize, flags)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> Any:
        """Refused over TLS, as the stdlib."""
        if self._sslobj is not None:
            raise ValueError(f"recvfrom_into not allowed on instances of {self.__class__}")
        return _Plain.recvfrom_into(self, buffer, nbytes, flags)

    def sendto(self, data: Any, flags_or_address: Any, address: Any = None) -> int:
        """Refused over TLS, as the stdlib."""
        if self._sslobj is not None:
            raise ValueError(f"sendto not allowed on instances of {self.__class__}")
        return _Plain.sendto(self, data, flags_or_address, address)

    def recvmsg(self, *args: Any, **kwargs: Any) -> Any:
        """Not over TLS, as the stdlib."""
        raise NotImplementedError(f"recvmsg not allowed on instances of {self.__class__}")

    def recvmsg_into(self, *args: Any, **kwargs: Any) -> Any:
        """Not over TLS, as the stdlib."""
        raise NotImplementedError(f"recvmsg_into not allowed on instances of "
                                  f"{self.__class__}")

    def sendmsg(self, *args: Any, **kwargs: Any) -> int:
        """Not over TLS, as the stdlib."""
        raise NotImplementedError(f"sendmsg not allowed on instances of {self.__class__}")

    def shutdown(self, how: int) -> None:
        """Drop TLS (no close_notify, as the stdlib) and shut the TCP connection down."""
        self._sslobj = None
        _Plain.shutdown(self, how)

    def _real_close(self) -> None:
        self._sslobj = None
        _Plain._real_close(self)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """The file sent in blocks through :meth:`send` (encrypted), as the stdlib."""
        return _Plain.sendfile(self, file, offset, count)

    def dup(self) -> Any:
        """Refused, as the stdlib's SSLSocket.dup."""
        raise NotImplementedError(f"Can't dup() {self.__class__.__name__} instances")

    def __repr__(self) -> str:
        return _Plain.__repr__(self).replace("<synack.socket.socket", "<synack.tls.TLSSocket", 1)


def wrap(context: ssl.SSLContext, sock: _sock.socket, server_side: bool = False,
         do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
         server_hostname: str | bytes | None = None,
         session: ssl.SSLSession | None = None) -> TLSSocket:
    """``context.wrap_socket(sock, ...)`` for a synack socket."""
    return _tls_class._create(sock, context, server_side, do_handshake_on_connect,
                              suppress_ragged_eofs, server_hostname, session)


def install() -> None:
    """Make ``ssl.SSLContext.wrap_socket`` (and so ``ssl.wrap_socket``) wrap synack
    sockets with :class:`TLSSocket`; every other socket goes to the original."""
    ssl_mod = importlib.import_module("ssl")   # the module the program will import
    cls: Any = ssl_mod.SSLContext
    if cls in _originals:
        return
    original = cls.wrap_socket
    _originals[cls] = original

    def wrap_socket(self: ssl.SSLContext, sock: Any, server_side: bool = False,
                    do_handshake_on_connect: bool = True, suppress_ragged_eofs: bool = True,
                    server_hostname: str | bytes | None = None,
                    session: ssl.SSLSession | None = None) -> Any:
        if isinstance(sock, _sock.socket):
            return wrap(self, sock, server_side, do_handshake_on_connect,
                        suppress_ragged_eofs, server_hostname, session)
        return original(self, sock, server_side, do_handshake_on_connect,
                        suppress_ragged_eofs, server_hostname, session)

    global _tls_class
    if issubclass(ssl_mod.SSLSocket, _sock.socket):
        # ssl imported after synack run's swap: its SSLSocket derives from synack's
        # socket, so the wrapped sockets can be instances of it too, and the library
        # code that asks isinstance(sock, ssl.SSLSocket) (ftplib's unwrap of a data
        # connection, asyncio's refusals) sees what it would see with the kernel.
        _tls_class = type("TLSSocket", (TLSSocket, ssl_mod.SSLSocket),
                          {"__module__": __name__, "__doc__": TLSSocket.__doc__})
    wrap_socket.__doc__ = original.__doc__
    wrap_socket.__wrapped__ = original  # type: ignore[attr-defined]
    cls.wrap_socket = wrap_socket


def uninstall() -> None:
    """Put back every ``SSLContext.wrap_socket`` :func:`install` replaced."""
    global _tls_class
    for cls, original in _originals.items():
        cls.wrap_socket = original
    _originals.clear()
    _tls_class = TLSSocket


_tls_class: type[TLSSocket] = TLSSocket      # what wrap() makes (install may derive one)
