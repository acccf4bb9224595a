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
* issue 8, the engine (``bench/engine_rows.py``): connections per second and
  echo latency beside C idle connections against ``synack serve echo`` (baseline:
  a kernel ``selectors`` echo server in the same namespace); ``ab`` against
  ``synack serve http`` (baseline: nginx with one worker); bytes per connection
  and per TIME_WAIT entry (against the issue's bounds, in the target column).
  ``--conns C`` (or $SYNACK_BENCH_CONNS) sets C, default 10000; ``--full``: 50000.

Every transfer is timed by the same kernel-side client (``bench/peer.py``),
from after the connection's header to the last byte or the server's FIN.
Each transfer figure is the best of ``--runs``; "spread" shows slowest..fastest.
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
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# bench/ is a directory of scripts, not a package: its modules are found via sys.path.
import engine_rows
import peer
from labs import TAG, ip, netns, stop, wait_line
from table import Figure, Row, notes, print_table

from synack.progress import bar

PORT = 6000
SERVER_IP = "192.0.2.2"           # synack, PyTCP or the serving kernel; the client is .1
MB = 1e6


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


def kernel_figures(sizes: dict[str, int], runs: int, bound: float) -> dict[str, Figure]:
    """Kernel to kernel over a veth pair between two namespaces (the reference)."""
    srv_ns, cli_ns = f"{TAG}-ks", f"{TAG}-kc"
    try:
        with netns(srv_ns, cli_ns):
            ip("-n", srv_ns, "link", "add", f"{TAG}s", "type", "veth",
                "peer", "name", f"{TAG}c", "netns", cli_ns)
            for ns, dev, addr in ((srv_ns, f"{TAG}s", SERVER_IP), (cli_ns, f"{TAG}c", "192.0.2.1")):
                ip("netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
                ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
                ip("-n", ns, "link", "set", dev, "up")
            proc = subprocess.Popen(
                ["ip", "netns", "exec", srv_ns, sys.executable, os.path.join(HERE, "peer.py"),
                 "server", SERVER_IP, str(PORT), str(runs * len(sizes))],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            try:
                wait_line(proc.stdout, "listening", 20)
                return _transfers(cli_ns, sizes, runs, bound)
            finally:
                stop(proc)
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
        with netns(ns):
            proc = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "pytcp_server.py"), "--netns", ns,
                 "--tap", f"{TAG}p", "--conns", str(runs * len(sizes))],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                wait_line(proc.stdout, "listening", 40)         # RFC 5227 probing of its address: ~7 s
                return _transfers(ns, sizes, runs, bound)
            except RuntimeError as exc:
                stop(proc)
                err = (proc.stderr.read() if proc.stderr else "").strip().splitlines()
                raise RuntimeError(f"{exc}; {err[-1] if err else ''}") from None
            finally:
                stop(proc)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return {mode: Figure([], f"PyTCP failed: {exc}") for mode in sizes}


# ------------------------------------------------------------------ the table
def sim_rows(args: argparse.Namespace) -> list[Row]:
    """The simulator's bulk transfer, no offload, csum, csum+TSO."""
    n = _size(20, args.scale)
    sim = sim_figures(n, args.runs)
    label = f"sim {n / MB:g} MB"
    return [
        Row(f"{label}, no offload", sim["none"], "MB/cpu-s"),
        Row(f"{label}, csum offload", sim["csum"], "MB/cpu-s", "sim, no offload", sim["none"]),
        Row(f"{label}, csum+TSO", sim["csum+tso"], "MB/cpu-s", "sim, no offload", sim["none"]),
    ]


def wire_rows(args: argparse.Namespace) -> list[Row]:
    """Bulk transfers with the kernel: synack over a TAP, PyTCP, kernel to kernel."""
    def size(mb: float) -> int:
        return _size(mb, args.scale)

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
    rows: list[Row] = []
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
    return rows


def _size(mb: float, scale: float) -> int:
    return max(int(mb * MB * scale), 64 * 1024)


GROUPS = ("sim", "wire", "conns", "http", "mem")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per figure (best is shown)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply every transfer size, count and duration")
    ap.add_argument("--only", choices=["all", *GROUPS], default="all")
    ap.add_argument("--bound", type=float, default=60, help="seconds allowed per transfer")
    engine_rows.add_args(ap)
    args = ap.parse_args(argv)
    try:
        if args.runs < 1 or args.scale <= 0 or args.bound <= 0:
            raise ValueError("--runs must be >= 1, --scale and --bound > 0")
        conns = engine_rows.conns_wanted(args)
    except ValueError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2

    rows: list[Row] = []
    t0 = time.monotonic()
    print(f"synack benchmark: best of {args.runs} runs per figure (connection, HTTP and "
          f"memory rows: one run), sizes x{args.scale}; MB = 10^6 bytes", flush=True)
    build: dict[str, Callable[[], list[Row]]] = {
        "sim": lambda: sim_rows(args),
        "wire": lambda: wire_rows(args),
        "conns": lambda: engine_rows.conn_rows(args, conns),
        "http": lambda: engine_rows.http_rows(args),
        "mem": lambda: engine_rows.memory_rows(args),
    }
    groups = [g for g in GROUPS if args.only in ("all", g)]
    with bar(len(groups), "bench", unit="group") as b:
        for group in groups:
            b.note(f"{group} ({len(rows)} rows done)")
            rows += build[group]()
            b.update()
    print()
    print_table(rows)
    for note in notes(rows):
        print(f"note: {note}")
    print(f"\n(total {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
