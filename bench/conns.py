"""Connection rows (issue 8): connections per second, and echo latency beside C idle ones.

Both against ``synack serve echo`` (synack on a TAP in a lab namespace) and,
as the baseline, against a kernel Python ``selectors`` echo server
(``bench/kecho.py``) in the same namespace, with the same kernel-side client
(``bench/kclient.py``):

* ``rate``: sequential connect + 1-byte echo + close, for a few seconds;
* ``hold``: open C connections and leave them idle, then time 1-byte round
  trips on one more; also how many of the C were established and stayed open.

The kernel echo server listens on the namespace's own address (192.0.2.1), so
its traffic never leaves the namespace; synack serve stays up, idle, meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import sys

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


def _rate(ns: str, host: str, seconds: float, maxconn: int) -> Figure:
    try:
        out = run_bounded(in_ns(ns, sys.executable, script("kclient.py"), "rate", host,
                                str(PORT), str(seconds), str(maxconn)),
                          seconds + 60, "the rate client")
        n, secs = out.split()
        return Figure([int(n) / float(secs)])
    except (OSError, RuntimeError, ValueError) as exc:
        return Figure([], f"conn/s vs {host}: {exc}")


def _hold(ns: str, host: str, conns: int, probes: int, bound: float,
          who: str) -> dict[str, Figure]:
    try:
        out = run_bounded(in_ns(ns, sys.executable, script("kclient.py"), "hold", host,
                                str(PORT), str(conns), str(probes), str(bound)),
                          bound + 60, "the hold client")
        doc = json.loads(out.strip().splitlines()[-1])
    except (OSError, RuntimeError, ValueError) as exc:
        why = f"{who}, {conns} conns: {exc}"
        return {k: Figure([], why, lower_better=k != "held") for k in KEYS[1:]}
    note = f"{who}, {conns} conns: {doc['error']}" if doc.get("error") else ""
    figs = {"held": Figure([float(doc["held"])], note=note)}
    for k in ("p50", "p99"):
        if f"{k}_us" in doc:
            figs[k] = Figure([float(doc[f"{k}_us"])], lower_better=True,
                             note=f"{who}: {doc['rtts']} round trips timed"
                             if doc["rtts"] < probes else "")
        else:
            figs[k] = Figure([], note or f"{who}: no round trip timed", lower_better=True)
    return figs


def echo_figures(seconds: float, maxconn: int, conns: int, probes: int, bound: float
                 ) -> dict[str, dict[str, Figure]]:
    """``{"synack": {key: Figure}, "kernel": {...}}`` for KEYS; n/a figures say why."""
    try:
        need("ip", "iproute2")
        ns = f"{TAG}-e"
        with netns(ns):
            # Room for C client connections to one address and port.
            ns_sysctl(ns, "net.ipv4.ip_local_port_range=1024 65535")
            with synack_serve(ns, "echo", PORT):
                kecho = subprocess.Popen(
                    in_ns(ns, sys.executable, script("kecho.py"), KERNEL_IP, str(PORT)),
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                try:
                    wait_line(kecho.stdout, "listening", 20)
                    out: dict[str, dict[str, Figure]] = {"synack": {}, "kernel": {}}
                    for who, host in (("kernel", KERNEL_IP), ("synack", SYNACK_IP)):
                        out[who]["rate"] = _rate(ns, host, seconds, maxconn)
                    for who, host in (("kernel", KERNEL_IP), ("synack", SYNACK_IP)):
                        out[who].update(_hold(ns, host, conns, probes, bound, who))
                    return out
                finally:
                    stop(kecho)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        why = f"echo lab failed: {exc}"
        return {who: {k: Figure([], why, lower_better=k in ("p50", "p99")) for k in KEYS}
                for who in ("synack", "kernel")}
