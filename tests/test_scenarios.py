"""Every scenario of `synack demo` runs as a test and shows what it claims."""

import errno

import pytest

from synack.demo.scenarios import SCENARIOS, worked_example
from synack.wire.ipv4 import parse_tcp_packet

CLIENT_ISN, SERVER_ISN = 100, 300
UP, DOWN, LAST = 1000, 2000, 50


def test_worked_example_numbers() -> None:
    f = worked_example().facts
    assert f["client_syn_seq"] == CLIENT_ISN
    assert f["server_synack"] == (SERVER_ISN, CLIENT_ISN + 1)
    # The seed: client FIN seq = 100 + 1 + 1000 = 1101, ACKed with 1102.
    assert f["client_fin_seq"] == CLIENT_ISN + 1 + UP == 1101
    ack_seq, ack_ack = f["server_ack_of_fin"]
    assert ack_ack == 1102
    # The server's SYN uses 300 itself; its 2000 bytes are 301..2300, so SND.NXT = 2301.
    assert ack_seq == SERVER_ISN + 1 + DOWN
    assert f["server_fin"] == (SERVER_ISN + 1 + DOWN + LAST, 1102)
    assert f["client_last_ack"] == (1102, SERVER_ISN + 1 + DOWN + LAST + 1)
    assert f["client_bytes"] == UP and f["server_bytes"] == DOWN + LAST
    assert f["time_wait_us"] == 60_000_000


def test_worked_example_ladder_has_every_state_of_the_close() -> None:
    text = worked_example().text()
    for change in ("ESTABLISHED -> FIN_WAIT_1", "FIN_WAIT_1 -> FIN_WAIT_2",
                   "FIN_WAIT_2 -> TIME_WAIT", "TIME_WAIT -> CLOSED", "ESTABLISHED -> CLOSE_WAIT",
                   "CLOSE_WAIT -> LAST_ACK", "LAST_ACK -> CLOSED", "LISTEN -> SYN_RECEIVED"):
        assert change in text
    assert "FIN,ACK seq=1101 ack=2301" in text


def test_worked_example_is_deterministic_per_seed() -> None:
    a = [r.data for r in worked_example(5).net.records]
    b = [r.data for r in worked_example(5).net.records]
    c = [r.data for r in worked_example(6).net.records]
    assert a == b
    assert a != c   # another seed: other ephemeral port and IP idents


def test_lost_synack_recovers_by_syn_retransmission() -> None:
    f = SCENARIOS["lost-synack"](1).facts
    assert f["server_at_500ms"] == "SYN_RECEIVED"
    assert f["client_at_500ms"] == "SYN_SENT"
    assert f["syns_sent"] == 2 and f["synacks_sent"] == 2
    assert f["client_established_us"] == 1_020_000   # 1 s RTO + one round trip


def test_lost_last_ack_is_answered_from_time_wait() -> None:
    f = SCENARIOS["lost-last-ack"](1).facts
    assert f["server_fins"] == 2
    assert f["client_acks_of_fin"] == 2
    assert f["server_closed_us"] is not None
    assert f["resets"] == 0


def test_half_close_delivers_everything_after_the_fin() -> None:
    f = SCENARIOS["half-close"](1).facts
    assert f["client_received"] == 300
    assert f["fin_wait_2_at_us"] is not None


def test_rst_to_closed_port() -> None:
    f = SCENARIOS["rst-closed-port"](1).facts
    assert f["so_error"] == errno.ECONNREFUSED
    seq, ack, flags = f["rst"]
    assert (seq, ack) == (0, CLIENT_ISN + 1) and flags == 0x14  # RST,ACK


def test_keepalive_defaults_find_the_dead_peer() -> None:
    f = SCENARIOS["keepalive"](1).facts
    assert f["probes"] == 9
    assert f["interval_s"] == 75
    assert f["first_probe_s"] == pytest.approx(7200.02)     # idle since the last segment
    assert f["dead_s"] == pytest.approx(7200.02 + 9 * 75)
    assert f["errno"] == errno.ETIMEDOUT


def test_accept_overflow_drops_then_completes() -> None:
    f = SCENARIOS["accept-overflow"](1).facts
    assert f["accept_queue"] == 3          # backlog 2, Linux admits one more
    assert f["resets_to_c4"] == 0
    assert f["accepted"] == 4              # c4 got in once accept() made room
    assert f["final_c4"] == "ESTABLISHED"


def test_accept_overflow_abort_resets() -> None:
    f = SCENARIOS["accept-overflow-abort"](1).facts
    assert f["resets_to_c4"] == 1
    assert f["final_c4"] == "CLOSED"
    assert f["accepted"] == 3


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_prints_ladder_and_explanation(name: str) -> None:
    out = SCENARIOS[name](1)
    text = out.text()
    assert out.ladder and "->" in text
    assert len(out.explanation.split()) > 30
    for rec in out.net.records:       # every packet on the wire is well formed
        parse_tcp_packet(rec.data)
