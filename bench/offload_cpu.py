"""CPU time per MB of a bulk transfer in the simulator, with and without offloads.

    .venv/bin/python bench/offload_cpu.py --bytes 20M

Three runs of the same seeded transfer between two synack stacks (no delay
limits beyond a 5 ms link): no offload (every checksum summed in Python, MSS
packets); checksum offload (the stacks put the pseudo-header sum and trust the
"device"); checksum offload + TSO/GRO (super-segments of up to 64 KB cross the
simulated link whole, as between two stacks whose devices cut and merge them).
The figure is the process CPU time (both stacks and the simulator) per MB of
payload delivered.
"""

from __future__ import annotations

import argparse
import time

from synack.demo.bulk import RECEIVER, SENDER, transfer
from synack.demo.driver import AppHost
from synack.sim import LinkParams, Network
from synack.stack import Offload
from synack.units import parse_size
from synack.wire.gso import segment_all


def _offloaded(host: AppHost, offload: Offload) -> None:
    stack = host.stack
    stack.offload = offload

    def transmit(*, now: int) -> list[bytes]:
        if not offload.tso_max:      # no TSO: the "device" cuts the stack's super-segments
            return segment_all(stack.transmit_gso(now=now), csum_partial=True)
        return [p for p, _ in stack.transmit_gso(now=now)]

    def receive(packet: bytes, *, now: int) -> None:
        stack.receive(packet, now=now, csum_valid=True)
        host._poll(now)

    host.transmit = transmit   # type: ignore[method-assign]
    host.receive = receive     # type: ignore[method-assign]


def run(nbytes: int, offload: Offload | None, seed: int) -> tuple[float, int, bool]:
    """CPU seconds, packets on the wire, and whether the bytes arrived intact."""

    def setup(net: Network) -> None:
        if offload is not None:
            for addr in (SENDER, RECEIVER):
                _offloaded(net.hosts[addr], offload)  # type: ignore[arg-type]

    t0 = time.process_time()
    r = transfer(nbytes, seed=seed, link=LinkParams(delay_us=5_000), setup=setup)
    return time.process_time() - t0, r.packets, r.intact and r.finished


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bytes", default="20M", help="payload per run (default 20M)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    nbytes = parse_size(args.bytes)
    mb = nbytes / 1e6
    rows = [("none", None), ("csum", Offload(tx_csum=True)),
            ("csum+tso", Offload(tx_csum=True, tso_max=65535))]
    print(f"{'offload':10} {'CPU s':>8} {'ms/MB':>8} {'packets':>9}  intact")
    for name, off in rows:
        cpu, packets, ok = run(nbytes, off, args.seed)
        print(f"{name:10} {cpu:8.2f} {cpu * 1000 / mb:8.1f} {packets:9d}  {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
