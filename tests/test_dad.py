"""Duplicate address detection of synack's IPv6 address on a TAP, against the kernel.

Root only. A lab namespace (kernel 2001:db8::1/64, synack 2001:db8::2): in one
test the kernel side already holds synack's address, so the kernel answers
synack's DAD solicitation and synack must give IPv6 up with one warning line; in
the other nobody does, and after a second synack's held IPv6 output goes out.
Every wait polls against a deadline.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest

from synack.link.loop import Loop
from synack.link.netns import Lab, netns_exists, print_warning
from synack.link.tap import TapLink
from synack.stack import Stack

KERNEL6, US6 = "2001:db8::1", "2001:db8::2"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/net/tun"),
    reason="needs root and /dev/net/tun")


@dataclass
class Rig:
    lab: Lab
    link: TapLink
    stack: Stack
    loop: Loop


@contextmanager
def _rig(n: str, before_start: Callable[[Lab, TapLink], None]) -> Iterator[Rig]:
    ns = f"sa-dad-{os.getpid() % 1000}{n}"
    lab = Lab(ns, tap=f"sadad{os.getpid() % 1000}{n}")
    with lab as link:
        assert isinstance(link, TapLink)
        before_start(lab, link)
        stack = Stack("192.0.2.2", addr6=US6, seed=1, mtu=link.mtu)
        loop = Loop(stack, link, name=ns)
        loop.start()
        try:
            yield Rig(lab, link, stack, loop)
        finally:
            loop.stop()
    assert not netns_exists(ns)


def poll(pred: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_an_address_the_kernel_already_has_fails_dad(capfd: pytest.CaptureFixture[str]) -> None:
    def duplicate(lab: Lab, link: TapLink) -> None:
        # The kernel end takes synack's address first (nodad: at once, no DAD of its own).
        subprocess.run(["ip", "-n", lab.netns, "-6", "addr", "add", f"{US6}/64", "dev",
                        link.name, "nodad"], check=True, capture_output=True)
        link.on_warning = print_warning          # what the command layer installs

    with _rig("d", duplicate) as rig:
        nd = rig.link.nd
        assert nd is not None
        poll(lambda: nd.dad != "tentative", 10, "the DAD verdict")
        assert nd.dad == "failed", (nd.dad, dict(nd.stats))
        assert nd.stats["nd dad solicitations out"] == 1
        poll(lambda: rig.link.stats["ipv6 dad failed"] == 1, 5, "the link's report")
        rig.loop.call_soon(lambda now: rig.stack.send_echo(KERNEL6, 7, 1, b"x", now=now))
        poll(lambda: nd.stats["ipv6 dropped (dad failed)"] >= 1, 5, "the echo's drop")
        assert not rig.stack.echo_replies
    err = capfd.readouterr().err
    lines = [ln for ln in err.splitlines() if "duplicate address detection" in ln]
    want = (f"synack: IPv6 address {US6} is already in use on the link "
            "(duplicate address detection); IPv6 is off")
    assert lines == [want], err


def test_a_free_address_is_used_after_a_second_and_held_output_goes_out() -> None:
    with _rig("f", lambda lab, link: None) as rig:
        nd = rig.link.nd
        assert nd is not None
        # Sent at once: held while the address is tentative, released when it is preferred.
        rig.loop.call_soon(lambda now: rig.stack.send_echo(KERNEL6, 9, 1, b"held", now=now))
        poll(lambda: any(r.ident == 9 for r in rig.stack.echo_replies), 10, "the echo reply")
        assert nd.dad == "preferred" and nd.stats["ipv6 dad completed"] == 1
        assert nd.stats["ipv6 held (dad)"] == 1          # it waited for DAD's verdict
        assert nd.stats["nd dad solicitations out"] == 1
        assert rig.link.stats["ipv6 dad failed"] == 0
        out = rig.lab.exec("ping", "-6", "-c", "2", "-i", "0.2", "-W", "5", US6, check=False)
        assert "2 packets transmitted, 2 received" in out, out
