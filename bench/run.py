"""`make bench`: synack's speed, each figure beside a baseline measured in the same run.

    .venv/bin/python bench/run.py                 # the full table (root: namespaces, TAPs)
    .venv/bin/python bench/run.py --scale 0.05 --runs 1 --only sim   # a quick check

Rows:

* core, no I/O: a bulk transfer between two synack stacks in the simulator
  (no impairment), as MB of payload per CPU second (both stacks and the
  simulator), without offload, with checksum offload, and with checksum
  offload + TSO/GRO; the baseline is the no-offload run.
* real wire: the Linux kernel (a Python socket in a namespace) uploads to and
  downloads from synack over a TAP, offload off and on; the baseline is the
  same transfer between two kernels over a veth pair (same MTU, 1500).
* PyTCP (PyPI ``pmd-pytcp``, a pure-Python TCP/IP stack on a TAP) serving the
  same transfers: the baseline for a pure-Python stack.

Every transfer is timed by the same kernel-side client (``bench/peer.py``),
from after the connection's header to the last byte or the server's FIN.
Each figure is the best of ``--runs``; "spread" shows slowest..fastest.
Namespaces and devices are named ``sa-bench*`` and removed on exit, also on
failure; every process started is killed by its pid if it outlives its bound.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import peer  # bench/ is a directory of scripts, not a package: found via sys.path

PORT = 6000
SERVER_IP = "192.0.2.2"           # synack, PyTCP or the serving kernel; the client is .1
MB = 1e6
TAG = f"sa-bench{os.getpid() % 10000}"


@dataclass
class Figure:
    """A measured figure: the best of several runs, or why there is none."""

    values: list[float]
    error: str = ""

    @property
    def best(self) -> float | None:
        return max(self.values) if self.values and not self.error else None

    def spread(self) -> str:
        if self.error or not self.values:
            return ""
        return f"{min(self.values):.1f}..{max(self.values):.1f}"


def _fmt(fig: Figure | None, unit: str) -> str:
    if fig is None:
        return "-"
    if fig.best is None:
        return "n/a (see note)"
    return f"{fig.best:.1f} {unit}"


# ------------------------------------------------------------------ core, no I/O
def sim_figures(nbytes: int, runs: int) -> dict[str, Figure]:
    """MB per CPU second of simulated transfers: no offload, csum, csum+TSO."""
    from offload_cpu import run as sim_run

    from synack.stack import Offload

    modes = {"none": None, "csum": Offload(tx_csum=True),
             "csum+tso": Offload(tx_csum=True, tso_max=65535)}
    out: dict[str, Figure] = {name: Figure([]) for name in modes}
    for seed in range(1, runs + 1):
        for name, off in modes.items():       # interleaved: load changes hit every mode
            cpu, _packets, ok = sim_run(nbytes, off, seed)
            if not ok:
                out[name].error = "transfer not intact"
            out[name].values.append(nbytes / MB / cpu)
    return out


# ------------------------------------------------------------------ the real wire
def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _client(netns: str, mode: str, nbytes: int, bound: float) -> float:
    """One timed kernel-side transfer from ``netns``; MB/s. Raises on failure or short count."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", netns, sys.executable, os.path.join(HERE, "peer.py"),
         "client", SERVER_IP, str(PORT), mode, str(nbytes)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise TimeoutError(f"{mode} of {nbytes} bytes took over {bound:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"client failed: {(err.strip().splitlines() or ['?'])[-1]}")
    moved, secs = out.split()
    if int(moved) != nbytes:
        raise RuntimeError(f"client moved {moved} of {nbytes} bytes")
    return nbytes / MB / float(secs)


def _transfers(netns: str, sizes: dict[str, int], runs: int, bound: float
               ) -> dict[str, Figure]:
    """``runs`` uploads and downloads, interleaved, against the server at SERVER_IP."""
    figs = {mode: Figure([]) for mode in sizes}
    for _ in range(runs):
        for mode, n in sizes.items():
            if figs[mode].error:
                continue
            try:
                figs[mode].values.append(_client(netns, mode, n, bound))
            except (OSError, RuntimeError) as exc:
                figs[mode].error = str(exc)
    return figs


@contextmanager
def _netns(*names: str) -> Iterator[None]:
    """Fresh namespaces, deleted on exit (their interfaces go with them)."""
    made: list[str] = []
    try:
        for name in names:
            _ip("netns", "add", name)
            made.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        yield
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True,
                           timeout=30)


def _wait_listening(proc: subprocess.Popen[str], bound: float) -> None:
    """Wait (bounded) for the server's ``listening`` line."""
    assert proc.stdout is not None
    line: list[str] = []
    t = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    t.start()
    t.join(bound)
    if not line or line[0].strip() != "listening":
        raise RuntimeError(f"server not listening after {bound:.0f} s")


def _stop(proc: subprocess.Popen[str]) -> None:
    """End a server we started, by its pid, if it is still there."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def kernel_figures(sizes: dict[str, int], runs: int, bound: float) -> dict[str, Figure]:
    """Kernel to kernel over a veth pair between two namespaces (the reference)."""
    srv_ns, cli_ns = f"{TAG}-ks", f"{TAG}-kc"
    try:
        with _netns(srv_ns, cli_ns):
            _ip("-n", srv_ns, "link", "add", f"{TAG}s", "type", "veth",
                "peer", "name", f"{TAG}c", "netns", cli_ns)
            for ns, dev, addr in ((srv_ns, f"{TAG}s", SERVER_IP), (cli_ns, f"{TAG}c", "192.0.2.1")):
                _ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
                _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
            proc = subprocess.Popen(
                ["ip", "netns", "exec", srv_ns, sys.executable, os.path.join(HERE, "peer.py"),
                 "server", SERVER_IP, str(PORT), str(runs * len(sizes))],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                _wait_listening(proc, 20)
                return _transfers(cli_ns, sizes, runs, bound)
            finally:
                _stop(proc)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return {mode: Figure([], f"veth lab failed: {exc}") for mode in sizes}


def synack_figures(offload: bool, sizes: dict[str, int], runs: int, bound: float
                   ) -> dict[str, Figure]:
    """synack (synack.socket on its Loop, in this process) serving over a TAP in a lab."""
    import synack.socket as ss
    from synack.api_host import Host
    from synack.link.netns import Lab

    ns = f"{TAG}-s"
    try:
        with Lab(ns, tap=f"{TAG}t", offload=offload, synack_addr=SERVER_IP,
                 kernel_addr="192.0.2.1/24") as link:
            host = Host.on_link(SERVER_IP, link, seed=1, mtu=link.mtu)
            try:
                srv = ss.create_server((SERVER_IP, PORT), host=host)
                errors: list[BaseException] = []

                def serve() -> None:
                    try:
                        for _ in range(runs * len(sizes)):
                            c, _ = srv.accept()
                            peer.serve_conn(c)
                    except BaseException as exc:  # noqa: BLE001 - reported in the table
                        errors.append(exc)

                t = threading.Thread(target=serve, name="bench-synack-server", daemon=True)
                t.start()
                figs = _transfers(ns, sizes, runs, bound)
                t.join(10)
                srv.close()
                if errors:
                    for f in figs.values():
                        f.error = f.error or f"server: {errors[0]!r}"
                return figs
            finally:
                host.loop.stop()
    except (OSError, RuntimeError) as exc:
        return {mode: Figure([], f"TAP lab failed: {exc}") for mode in sizes}


def pytcp_figures(sizes: dict[str, int], runs: int, bound: float) -> dict[str, Figure]:
    """PyTCP serving the same transfers over a TAP, in a child process."""
    try:
        import pmd_pytcp  # noqa: F401
    except ImportError:
        why = "pmd-pytcp not installed (pip install -e '.[bench]')"
        return {mode: Figure([], why) for mode in sizes}
    ns = f"{TAG}-p"
    try:
        with _netns(ns):
            proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "pytcp_server.py"), "--netns", ns,
                 "--tap", f"{TAG}p", "--conns", str(runs * len(sizes))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                _wait_listening(proc, 40)         # RFC 5227 probing of its address: ~7 s
                return _transfers(ns, sizes, runs, bound)
            except RuntimeError as exc:
                _stop(proc)
                err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
                raise RuntimeError(f"{exc}; {err[-1] if err else ''}") from None
            finally:
                _stop(proc)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return {mode: Figure([], f"PyTCP failed: {exc}") for mode in sizes}


# ------------------------------------------------------------------ the table
@dataclass
class Row:
    """One line of the table: a figure, its baseline and their ratio."""

    name: str
    fig: Figure
    unit: str
    base_name: str = ""
    base: Figure | None = None

    def cells(self) -> list[str]:
        ratio = "-"
        if self.base is not None and self.fig.best is not None and self.base.best:
            r = self.fig.best / self.base.best
            ratio = f"{r:.2f}x" if r >= 0.1 else f"{r:.2g}x"
        return [self.name, _fmt(self.fig, self.unit), self.fig.spread(),
                self.base_name or "-", _fmt(self.base, self.unit) if self.base else "-", ratio]


def print_table(rows: list[Row], out: Callable[[str], None] = print) -> None:
    """Aligned columns; n/a cells carry their reason at the end of the line."""
    head = ["figure", "value", "spread", "baseline", "baseline value", "ratio"]
    body = [r.cells() for r in rows]
    widths = [max(len(c) for c in col) for col in zip(head, *body, strict=True)]
    widths = [min(w, 44) for w in widths]
    for line in [head, ["-" * w for w in widths], *body]:
        out("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (best is shown)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every transfer size")
    ap.add_argument("--only", choices=["all", "sim", "wire"], default="all")
    ap.add_argument("--bound", type=float, default=60, help="seconds allowed per transfer")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.scale <= 0:
        print("bench: --runs must be >= 1 and --scale > 0", file=sys.stderr)
        return 2

    def size(mb: float) -> int:
        return max(int(mb * MB * args.scale), 64 * 1024)

    rows: list[Row] = []
    t0 = time.monotonic()
    print(f"synack benchmark: best of {args.runs} runs per figure, sizes x{args.scale}; "
          f"MB = 10^6 bytes", flush=True)
    if args.only in ("all", "sim"):
        n = size(20)
        sim = sim_figures(n, args.runs)
        label = f"sim {n / MB:g} MB"
        rows += [
            Row(f"{label}, no offload", sim["none"], "MB/cpu-s"),
            Row(f"{label}, csum offload", sim["csum"], "MB/cpu-s",
                "sim, no offload", sim["none"]),
            Row(f"{label}, csum+TSO", sim["csum+tso"], "MB/cpu-s",
                "sim, no offload", sim["none"]),
        ]
    if args.only in ("all", "wire"):
        if os.geteuid() != 0:
            why = "needs root (namespaces, TAP)"
            none = {m: Figure([], why) for m in ("up", "down")}
            kern = syn_off = syn_on = pyt = none
        else:
            kern = kernel_figures({"up": size(500), "down": size(500)}, args.runs, args.bound)
            syn_off = synack_figures(False, {"up": size(30), "down": size(30)},
                                     args.runs, args.bound)
            syn_on = synack_figures(True, {"up": size(100), "down": size(100)},
                                    args.runs, args.bound)
            pyt = pytcp_figures({"up": size(4), "down": size(4)}, args.runs, args.bound)
        for mode, arrow in (("up", "kernel->{}"), ("down", "{}->kernel")):
            kref = f"kernel->kernel veth, {mode}load"
            rows += [
                Row(kref, kern[mode], "MB/s"),
                Row(f"{arrow.format('synack')} TAP, offload off", syn_off[mode], "MB/s",
                    kref, kern[mode]),
                Row(f"{arrow.format('synack')} TAP, offload on", syn_on[mode], "MB/s",
                    kref, kern[mode]),
                Row(f"{arrow.format('PyTCP')} TAP", pyt[mode], "MB/s", kref, kern[mode]),
                Row(f"{arrow.format('synack')} TAP, off vs PyTCP", syn_off[mode], "MB/s",
                    f"{arrow.format('PyTCP')} TAP", pyt[mode]),
                Row(f"{arrow.format('synack')} TAP, on vs PyTCP", syn_on[mode], "MB/s",
                    f"{arrow.format('PyTCP')} TAP", pyt[mode]),
            ]
    print()
    print_table(rows)
    notes = sorted({r.fig.error for r in rows if r.fig.error}
                   | {r.base.error for r in rows if r.base is not None and r.base.error})
    for note in notes:
        print(f"note: {note}")
    print(f"\n(total {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
