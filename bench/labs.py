"""Namespaces and processes for the bench rows: made, bounded in time, and always undone.

Every namespace is named after :data:`TAG` (``sa-bench<pid>``) and deleted on exit,
also on failure; every process started here is ended by its pid if it outlives
its bound (:func:`stop`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
TAG = f"sa-bench{os.getpid() % 10000}"
KERNEL_IP = "192.0.2.1"    # the kernel's end of a lab (the client, or a kernel server)
SYNACK_IP = "192.0.2.2"    # synack's end


class ToolMissing(RuntimeError):
    """A program the row needs is not installed; the message says which and from where."""


def need(tool: str, package: str) -> None:
    """Raise :class:`ToolMissing` unless ``tool`` is on the PATH."""
    if shutil.which(tool) is None:
        raise ToolMissing(f"{tool} not installed (apt-get install {package}; `make bench` does)")


def ip(*args: str) -> None:
    """``ip ARGS``, checked, bounded."""
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def in_ns(ns: str, *cmd: str) -> list[str]:
    """``cmd`` run inside namespace ``ns``."""
    return ["ip", "netns", "exec", ns, *cmd]


def ns_sysctl(ns: str, setting: str) -> None:
    """``sysctl -w`` inside ``ns`` (its per-namespace knobs: ports, somaxconn, ...)."""
    subprocess.run(in_ns(ns, "sysctl", "-qw", setting), check=True, capture_output=True,
                   timeout=30)


@contextmanager
def netns(*names: str) -> Iterator[None]:
    """Fresh namespaces, deleted on exit (their interfaces go with them)."""
    made: list[str] = []
    try:
        for name in names:
            ip("netns", "add", name)
            made.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        yield
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True,
                           timeout=30)


def wait_line(stream: object, want: str, bound: float) -> str:
    """Read lines of ``stream`` (bounded in time) until one contains ``want``; that line.

    Raises RuntimeError with the last line read if none does within ``bound`` seconds.
    The stream is drained in a thread until it ends.
    """
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        # Reads to the end, so a chatty process never blocks on a full pipe.
        for line in stream:  # type: ignore[attr-defined]
            if not found.is_set():
                seen.append(line.strip())
                if want in line:
                    found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(bound):
        last = seen[-1] if seen else "nothing"
        raise RuntimeError(f"no {want!r} after {bound:.0f} s (last: {last})")
    return seen[-1]


def stop(proc: subprocess.Popen[str]) -> None:
    """End a process we started, by its pid, if it is still there."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_bounded(cmd: list[str], bound: float, label: str) -> str:
    """Run ``cmd`` (called ``label`` in messages) to its end within ``bound`` seconds; its stdout.

    Raises TimeoutError past the bound (the process is killed) and RuntimeError
    with the last line of stderr if it fails.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise TimeoutError(f"{label} took over {bound:.0f} s") from None
    if proc.returncode != 0:
        last = (err.strip().splitlines() or out.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"{label} failed: {last}")
    return out


def script(name: str) -> str:
    """Path of a script in bench/."""
    return os.path.join(HERE, name)


@contextmanager
def synack_serve(ns: str, service: str, port: int, *extra: str,
                 bound: float = 30) -> Iterator[subprocess.Popen[str]]:
    """``synack serve SERVICE --port PORT --netns NS`` until the block ends.

    ``ns`` must exist already (made by :func:`netns`): serve then leaves it in
    place when it stops, so kernel servers can run in it before and after. Its
    control socket goes to a temporary directory, not /run/synack.
    """
    run_dir = tempfile.mkdtemp(prefix="sa-bench-run")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (SRC, os.environ.get("PYTHONPATH", "")) if p), SYNACK_RUN_DIR=run_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "synack.cli", "serve", service, "--port", str(port),
         "--netns", ns, "--synack-addr", SYNACK_IP, "--kernel-addr", f"{KERNEL_IP}/24",
         "--no-offload", *extra],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env=env)
    try:
        wait_line(proc.stderr, "server on", bound)
        yield proc
    finally:
        stop(proc)
        shutil.rmtree(run_dir, ignore_errors=True)


def wait_listening_in(ns: str, port: int, bound: float) -> None:
    """Poll ``ss`` in ``ns`` until something listens on ``port``."""
    end = time.monotonic() + bound
    while time.monotonic() < end:
        out = subprocess.run(in_ns(ns, "ss", "-Hltn", f"sport = :{port}"), check=False,
                             capture_output=True, text=True, timeout=10).stdout
        if out.strip():
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on port {port} after {bound:.0f} s")
