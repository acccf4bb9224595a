"""The userspace impairment (``--impair``): netem's words, and transfers through it intact."""

from __future__ import annotations

import hashlib
import threading

import pytest

from synack import socket as ssock
from synack.api_host import Host
from synack.cli import main
from synack.link.impair import ImpairedLink, parse_impairment
from synack.link.loopback import LinkPair
from synack.sim import LinkParams


def test_parse_impairment_takes_netems_words() -> None:
    p = parse_impairment("delay 10ms loss 2% reorder 5% duplicate 1% corrupt 0.1%")
    assert p == LinkParams(delay_us=10_000, loss=0.02, reorder=0.05, duplicate=0.01,
                           corrupt=0.001)
    assert parse_impairment("loss 1%") == LinkParams(delay_us=0, loss=0.01)


@pytest.mark.parametrize("spec", ["", "delay", "delay 10ms jitter 1ms", "loss lots"])
def test_parse_impairment_rejects_other_words(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_impairment(spec)


def test_bad_impair_option_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "echo", "--netns", "sa-imp-never", "--impair", "wobble 3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "wobble" in err


def test_transfer_through_impaired_link_is_intact_and_was_impaired() -> None:
    # Two stacks, each with its own loop, joined in-process; one end impaired both ways.
    a_end, b_end = LinkPair()
    params = LinkParams(delay_us=2_000, loss=0.03, reorder=0.05, duplicate=0.01)
    impaired = ImpairedLink(a_end, outbound=params, inbound=params, seed=5)
    with Host.on_link("192.0.2.10", impaired) as a, Host.on_link("192.0.2.20", b_end) as b:
        srv = ssock.create_server(("192.0.2.20", 9000), host=b)
        cli = ssock.create_connection(("192.0.2.20", 9000), timeout=30, host=a)
        conn, _ = srv.accept()
        conn.settimeout(30)
        data = hashlib.sha256(b"seed").digest() * 20_000            # 640 KB

        def send() -> None:
            cli.sendall(data)
            cli.shutdown(ssock.SHUT_WR)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        got = bytearray()
        while chunk := conn.recv(65536):
            got += chunk
        sender.join(30)
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
        for s in (cli, conn, srv):
            s.close()
    lost = sum(v for k, v in impaired.stats.items() if k.endswith("lost"))
    assert lost > 0                                  # the dice really took packets away
