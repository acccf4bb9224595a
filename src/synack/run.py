"""Run an unmodified Python program with its sockets on synack.

``synack run [link options] -- python PROG.py ARGS`` (or ``python -m synack.run
[link options] -- python PROG.py ARGS``) opens the link as ``synack connect``
and ``serve`` do, starts a stack on it, and then runs the program *in this
interpreter* after :func:`install` has put :mod:`synack.socket` in
``sys.modules['socket']``. Everything the program imports afterwards -- asyncio,
http.client, socketserver, urllib3, redis -- finds synack's ``socket`` module
where the stdlib's was, so its connections are synack's. Threads are ordinary
threads; subprocesses are ordinary processes (they use the kernel's sockets).

The swap must come before the program imports anything that holds on to the
``socket`` module: :func:`install` therefore also forgets stdlib modules that
were imported earlier and bound the kernel's module (none are, when synack's
own start-up is all that ran), so that the program imports them afresh.
"""

from __future__ import annotations

import builtins
import os
import runpy
import sys
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from synack.api_host import Host

__all__ = ["install", "main", "run_program", "uninstall"]

# Modules synack itself keeps using with the kernel's socket (its control socket).
_KEEP = ("synack", "_socket", "socket")
_real_socket: Any = None


def install(host: Host) -> list[str]:
    """Make ``import socket`` give :mod:`synack.socket`, on ``host``, from now on.

    Returns the names of modules imported earlier with the kernel's ``socket``
    bound in them, which were dropped from ``sys.modules`` so that the next
    import of them binds synack's.
    """
    global _real_socket
    import socket as kernel_socket

    import synack.socket as synack_socket

    synack_socket.set_default_host(host)
    if _real_socket is None:
        _real_socket = kernel_socket
    sys.modules["socket"] = synack_socket
    stale = []
    for name, mod in list(sys.modules.items()):
        if mod is None or name.split(".", 1)[0] in _KEEP:
            continue
        if getattr(mod, "socket", None) is _real_socket or getattr(mod, "_socket", None) is \
                _real_socket:
            stale.append(name)
            del sys.modules[name]
    # Blocking TLS: ssl (imported afresh from here on) wraps synack sockets with
    # synack.tls.TLSSocket, since the C _ssl module can only wrap a kernel socket.
    from synack import tls

    tls.install()
    return stale


def uninstall() -> None:
    """Put the kernel's ``socket`` module back in ``sys.modules``."""
    from synack import tls

    tls.uninstall()
    if _real_socket is not None:
        sys.modules["socket"] = _real_socket


def run_program(kind: str, target: str, args: list[str]) -> int:
    """Run a script (``kind`` "script"), a module ("module") or code ("code") as
    ``__main__`` with ``sys.argv`` set as Python would; returns its exit status."""
    saved_argv, saved_path0 = sys.argv[:], sys.path[0] if sys.path else ""
    try:
        if kind == "script":
            sys.argv = [target, *args]
            sys.path[0] = os.path.dirname(os.path.abspath(target))
            runpy.run_path(target, run_name="__main__")
        elif kind == "module":
            sys.argv = [target, *args]
            sys.path[0] = os.getcwd()
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.argv = ["-c", *args]
            sys.path[0] = ""
            main_globals = {"__name__": "__main__", "__builtins__": builtins}
            exec(compile(target, "<string>", "exec"), main_globals)  # noqa: S102
        _join_threads()
        return 0
    except SystemExit as exc:
        _join_threads()
        return _exit_status(exc.code)
    except KeyboardInterrupt as exc:
        _report(exc)
        return 130
    except BaseException as exc:  # noqa: BLE001 - the program's failure, reported as Python does
        _report(exc)
        return 1
    finally:
        sys.argv = saved_argv
        if sys.path:
            sys.path[0] = saved_path0


def _join_threads() -> None:
    """Wait for the program's non-daemon threads, as the interpreter does before it exits
    (the network must outlive them)."""
    import threading

    me = threading.current_thread()
    while True:
        alive = [t for t in threading.enumerate() if t is not me and not t.daemon and t.is_alive()]
        if not alive:
            return
        for t in alive:
            t.join()


def _report(exc: BaseException) -> None:
    """The traceback as Python prints it for the program: without runpy's and our frames."""
    tb = exc.__traceback__
    while tb is not None and (tb.tb_frame.f_code.co_filename in (__file__, "<frozen runpy>")):
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _exit_status(code: object) -> int:
    """``SystemExit.code`` as Python's own exit would turn it into a status."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    """``python -m synack.run [link options] -- python PROG.py ARGS``."""
    from synack.cli import main as cli_main

    return cli_main(["run", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
