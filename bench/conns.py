"""Connection rows (issue 8): connections per second, and echo latency beside C idle ones.

Both against ``synack serve echo`` (synack on a TAP in a lab namespace) and,
as the baseline, against a kernel Python ``selectors`` echo server
(``bench/kecho.py``) in the same namespace, with the same kernel-side client
(``bench/kclient.py``):

* ``rate``: sequential connect + 1-byte echo + close, for a few seconds;
* ``hold``: open C connections and leave them idle, then time 1-byte round
  trips on one more; also how many of the C were established and stayed open.
  One process may hold only as many sockets as its hard RLIMIT_NOFILE allows
  (without CAP_SYS_RESOURCE it cannot be raised): the C client connections are
  then spread over several client processes, and the kernel server runs as
  several processes sharing the port (SO_REUSEPORT).

The kernel echo server listens on the namespace's own address (192.0.2.1), so
its traffic never leaves the namespace; synack serve stays up, idle, meanwhile.
"""

from __future__ import annotations

import json
import math
import queue
import resource
import subprocess
import sys
import threading
import time

from labs import (
    KERNEL_IP,
    SYNACK_IP,
    TAG,
    in_ns,
    need,
    netns,
    ns_sysctl,
    run_bounded,
    script,
    stop,
    synack_serve,
    wait_line,
)
from table import Figure

PORT = 7                     # echo (RFC 862); below the widened ephemeral range
KEYS = ("rate", "held", "p50", "p99")


def rate(ns: str, host: str, seconds: float, maxconn: int) -> Figure:
    try:
        out = run_bounded(in_ns(ns, sys.executable, script("kclient.py"), "rate", host,
                                str(PORT), str(seconds), str(maxconn)),
                          seconds + 60, "the rate client")
        n, secs = out.split()
        return Figure([int(n) / float(secs)])
    except (OSError, RuntimeError, ValueError) as exc:
        return Figure([], f"conn/s vs {host}: {exc}")


def per_process() -> int:
    """Connections one process may hold: its hard open-files limit, less some room."""
    return max(1000, resource.getrlimit(resource.RLIMIT_NOFILE)[1] - 200)


class _Lines:
    """The lines of a process's stdout, read by a thread, taken with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.q.put(line)
        self.q.put("")

    def json(self, deadline: float) -> dict[str, object]:
        try:
            line = self.q.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError("no report in time") from None
        if not line:
            raise RuntimeError("ended without a report")
        doc = json.loads(line)
        assert isinstance(doc, dict)
        return doc


def _hold(ns: str, host: str, conns: int, probes: int, bound: float,
          who: str) -> dict[str, Figure]:
    """C idle connections (over as many client processes as the fd limit asks), then probes.

    ``held`` counts those still open after the probes.
    """
    per = per_process()
    shares = [min(per, conns - i) for i in range(0, conns, per)]
    t0 = time.monotonic()
    holders: list[subprocess.Popen[str]] = []
    try:
        for share in shares:
            holders.append(subprocess.Popen(
                in_ns(ns, sys.executable, script("kclient.py"), "hold", host, str(PORT),
                      str(share), str(0.7 * bound)),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                text=True))
        lines = [_Lines(p) for p in holders]
        first = [ln.json(t0 + 0.7 * bound + 30) for ln in lines]
        errors = [str(d["error"]) for d in first if d.get("error")]
        opened = sum(int(d["held"]) for d in first)  # type: ignore[call-overload]
        open_s = max(float(d["open_s"]) for d in first)  # type: ignore[arg-type]
        out = run_bounded(in_ns(ns, sys.executable, script("kclient.py"), "probe", host,
                                str(PORT), str(probes), str(0.3 * bound)),
                          0.3 * bound + 30, "the probe client")
        doc = json.loads(out.strip().splitlines()[-1])
        for p in holders:
            assert p.stdin is not None
            p.stdin.close()
        held = sum(int(ln.json(time.monotonic() + 30)["held"])  # type: ignore[call-overload]
                   for ln in lines)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        why = f"{who}, {conns} conns: {exc}"
        return {k: Figure([], why, lower_better=k != "held") for k in KEYS[1:]}
    finally:
        for p in holders:
            stop(p)
    if held < opened:
        errors.append(f"{opened - held} closed while idle")
    note = f"{who}, {conns} conns: opened {opened} in {open_s:.0f} s" + (
        f" ({'; '.join(errors)})" if errors else "")
    figs = {"held": Figure([float(held)], note=note)}
    if doc.get("error") or doc["rtts"] < probes:
        note = f"{who}: {doc['rtts']} of {probes} round trips timed {doc.get('error', '')}"
    else:
        note = ""
    for k in ("p50", "p99"):
        figs[k] = (Figure([float(doc[f"{k}_us"])], lower_better=True, note=note)
                   if f"{k}_us" in doc else Figure([], note, lower_better=True))
    return figs


def echo_figures(seconds: float, maxconn: int, conns: int, probes: int, bound: float
                 ) -> dict[str, dict[str, Figure]]:
    """``{"synack": {key: Figure}, "kernel": {...}}`` for KEYS; n/a figures say why."""
    try:
        need("ip", "iproute2")
        ns = f"{TAG}-e"
        with netns(ns):
            # Room for C client connections to one address and port, also while the
            # TIME_WAITs of the conn/s row last.
            ns_sysctl(ns, "net.ipv4.ip_local_port_range=1024 65535")
            ns_sysctl(ns, "net.ipv4.tcp_tw_reuse=1")
            with synack_serve(ns, "echo", PORT):
                kecho: list[subprocess.Popen[str]] = []
                try:
                    for _ in range(math.ceil((conns + 1) / per_process())):  # SO_REUSEPORT
                        kecho.append(subprocess.Popen(
                            in_ns(ns, sys.executable, script("kecho.py"), KERNEL_IP, str(PORT)),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
                        wait_line(kecho[-1].stdout, "listening", 20)
                    out: dict[str, dict[str, Figure]] = {"synack": {}, "kernel": {}}
                    for who, host in (("kernel", KERNEL_IP), ("synack", SYNACK_IP)):
                        out[who]["rate"] = rate(ns, host, seconds, maxconn)
                    for who, host in (("kernel", KERNEL_IP), ("synack", SYNACK_IP)):
                        out[who].update(_hold(ns, host, conns, probes, bound, who))
                    return out
                finally:
                    for p in kecho:
                        stop(p)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        why = f"echo lab failed: {exc}"
        return {who: {k: Figure([], why, lower_better=k in ("p50", "p99")) for k in KEYS}
                for who in ("synack", "kernel")}
