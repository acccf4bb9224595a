"""Every scenario of `synack demo` runs as a test and shows what it claims."""

import errno

import pytest

from synack.cli import main
from synack.config import Sysctl
from synack.demo.scenarios import DESCRIPTIONS, DESCRIPTIONS_ZH, SCENARIOS, worked_example
from synack.demo.scenarios.base import TEXT_WIDTH, fold
from synack.stack import Stack
from synack.tcp.timewait import TimeWait
from synack.wire.ipv4 import parse_tcp_packet
from synack.wire.ipv6 import parse_tcp6_packet
from synack.wire.tcp import ACK, CWR, ECE, FIN, RST

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


def test_fast_open_saves_one_round_trip() -> None:
    # RFC 7413 as Linux does it: a cookie request first (empty option, no data), then
    # the cookie and the whole request in the SYN, acknowledged in the SYN,ACK.
    from synack.demo.scenarios.fastopen import REQUEST, RESPONSE
    f = SCENARIOS["fast-open"](1).facts
    assert f["answers"] == [RESPONSE, RESPONSE]
    assert f["answer_us"] == [40_000, 20_000]         # two round trips of 20 ms, then one
    assert f["syn_data"] == [0, len(REQUEST)]
    assert f["synack_acks"] == [0, len(REQUEST)]
    assert f["syn_options"] == [((34, b""),), ((34, bytes.fromhex(f["cookie"])),)]
    assert (f["cookie_requests"], f["fastopen_passive"], f["fastopen_active"]) == (1, 1, 1)


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
        if rec.data[0] >> 4 == 6:
            parse_tcp6_packet(rec.data)
        else:
            parse_tcp_packet(rec.data)


# ----------------------------------------------------------------------------- opening
def test_three_way_handshake_numbers() -> None:
    f = SCENARIOS["three-way-handshake"](1).facts
    assert f["syn"] == (CLIENT_ISN, 0x02)
    assert f["synack"] == (SERVER_ISN, CLIENT_ISN + 1)
    assert f["ack"] == (CLIENT_ISN + 1, SERVER_ISN + 1)
    assert f["first_data_seq"] == CLIENT_ISN + 1        # the bare ACK used no number
    assert f["client_established_us"] == 20_000 and f["server_established_us"] == 30_000
    assert f["mss"] == (1460, 1460) and f["sack_ok"] and f["timestamps"]


def test_why_not_two_way_old_syn_is_reset_by_the_client() -> None:
    f = SCENARIOS["why-not-two-way"](1).facts
    assert f["synack_acks"] == [91, CLIENT_ISN + 1]     # first answers the old SYN (seq 90)
    assert f["client_rst"] == (91, RST)                 # SEQ = the unacceptable ACK
    assert f["server_child_closed_by_rst"]
    assert f["client_state"] == "ESTABLISHED" and f["connect_result"] == 0
    # Linux tcp_check_req(): the RST frees the request only; the listener keeps listening.
    assert f["server_still_listening"] == "LISTEN"


def test_simultaneous_open_goes_through_syn_received_on_both_sides() -> None:
    f = SCENARIOS["simultaneous-open"](1).facts
    path = ["SYN_SENT", "SYN_RECEIVED", "ESTABLISHED"]
    assert f["a_states"] == path and f["b_states"] == path
    assert f["synacks"] == 2 and f["segments"] == 6


# ----------------------------------------------------------------------------- closing
def test_four_way_close_is_four_segments() -> None:
    f = SCENARIOS["four-way-close"](1).facts
    flags = [(src, int(fl)) for src, fl, _s, _a in f["close_segments"]]
    assert flags == [("left", FIN | ACK), ("right", ACK), ("right", FIN | ACK), ("left", ACK)]
    assert f["client_states"][-4:] == ["FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT", "CLOSED"]
    assert f["server_states"][-3:] == ["CLOSE_WAIT", "LAST_ACK", "CLOSED"]
    assert f["close_wait_us"] >= 100_000 and f["time_wait_us"] == 60_000_000


def test_simultaneous_close_passes_through_closing() -> None:
    f = SCENARIOS["simultaneous-close"](1).facts
    for states in (f["client_states"], f["server_states"]):
        assert states[-4:] == ["FIN_WAIT_1", "CLOSING", "TIME_WAIT", "CLOSED"]
    assert f["fins"] == 2
    assert f["client_time_wait_us"] == f["server_time_wait_us"] is not None


def test_close_wait_leak_piles_up_and_outlives_the_peer() -> None:
    out = SCENARIOS["close-wait-leak"](1)
    f = out.facts
    assert f["server_close_wait_1s"] == 4 and f["client_fin_wait_2_1s"] == 4
    assert f["server_close_wait_end"] == 4          # nothing but close() ends CLOSE_WAIT
    assert f["client_sockets_end"] == 0             # the peer gave up after tcp_fin_timeout
    assert 60_000_000 <= f["fin_wait_2_end_us"] < 61_000_000
    assert sum("CLOSE_WAIT" in line for line in out.extra) == 8   # two ss tables of 4 rows


# ----------------------------------------------------------------------------- ports
def test_port_exhaustion_fails_with_eaddrnotavail() -> None:
    out = SCENARIOS["port-exhaustion"](1)
    f = out.facts
    assert f["ports"] == 4 and f["connected"] == 4 and f["failed"] == 2
    assert f["errnos"] == ["EADDRNOTAVAIL"]
    assert f["time_wait_at_failure"] == 4 and f["tw_reuse"] == 2
    assert sum("TIME_WAIT " in line for line in out.extra) == 4


def test_tw_reuse_lets_connect_take_over_time_wait() -> None:
    f = SCENARIOS["port-exhaustion-tw-reuse"](1).facts
    assert f["tw_reuse"] == 1 and f["failed"] == 0 and f["connected"] == 6
    assert f["completed"] == 6 and len(f["reused_ports"]) == 2
    assert f["iss_offsets"] == [65537, 65537]           # Linux: old SND.NXT + 65535 + 2


def test_tw_reuse_needs_timestamps_and_one_second() -> None:
    cfg = Sysctl()
    cfg.set("net.ipv4.ip_local_port_range", (40000, 40000))
    cfg.set("net.ipv4.tcp_tw_reuse", 1)
    c = Stack("192.0.2.1", cfg=cfg, seed=1)
    key = ("192.0.2.1", 40000, "192.0.2.2", 80)
    c.timewait[key] = TimeWait(local=key[:2], remote=key[2:], snd_nxt=1000, rcv_nxt=5,
                               window=100, expires=60_000_000, since=0, ts=True)
    fd = c.socket()
    with pytest.raises(OSError) as exc:                 # too young: 0.5 s
        c.connect_ex(fd, ("192.0.2.2", 80), now=500_000)
    assert exc.value.errno == errno.EADDRNOTAVAIL
    assert c.connect_ex(fd, ("192.0.2.2", 80), now=1_000_000) == errno.EINPROGRESS
    assert key not in c.timewait and c.connection(fd).snd.iss == 1000 + 65537
    c2 = Stack("192.0.2.1", cfg=cfg, seed=1)            # no timestamps: never reused
    c2.timewait[key] = TimeWait(local=key[:2], remote=key[2:], snd_nxt=1000, rcv_nxt=5,
                                window=100, expires=60_000_000, since=0, ts=False)
    with pytest.raises(OSError):
        c2.connect_ex(c2.socket(), ("192.0.2.2", 80), now=5_000_000)


# ----------------------------------------------------------------------------- RST
def test_rst_unread_data() -> None:
    f = SCENARIOS["rst-unread-data"](1).facts
    assert f["unread_bytes"] == 18 and f["server_fins"] == 0
    assert f["server_rst"] == (SERVER_ISN + 1, RST | ACK)
    assert f["client_errno"] == errno.ECONNRESET and f["time_wait"] is None


def test_rst_linger_zero() -> None:
    f = SCENARIOS["rst-linger-zero"](1).facts
    assert f["client_rst"] == (CLIENT_ISN + 1, RST | ACK) and f["client_fins"] == 0
    assert f["client_states"] == ["SYN_SENT", "ESTABLISHED", "CLOSED"]
    assert f["client_time_wait"] is None and f["server_errno"] == errno.ECONNRESET


def test_rst_timeout() -> None:
    f = SCENARIOS["rst-timeout"](1).facts
    # Linux: one tail loss probe (tcp_send_loss_probe()), then tcp_retries2 RTOs.
    assert f["loss_probes"] == 1
    assert f["rto_retransmissions"] == 15                # tcp_retries2
    assert f["retransmissions"] == 16
    assert 900 < f["gave_up_s"] < 1000
    assert f["client_errno"] == errno.ETIMEDOUT
    assert f["client_rst"] is not None and f["client_rst"][2] == RST
    assert f["server_errno"] == errno.ECONNRESET


# ----------------------------------------------------------------------------- queues, timers
def test_syn_flood_syncookies_let_the_client_in() -> None:
    f = SCENARIOS["syn-flood"](1).facts
    assert f["syncookies"] == 1                          # Linux's default
    assert f["syn_queue_1s"] == 9 == f["syn_recv_1s"]    # backlog 8, Linux admits one more
    assert f["syn_drops_1s"] == 0 == f["syn_drops_total"]
    assert f["cookies_sent_1s"] == 40 - 9 + 1            # the rest of the flood + the real SYN
    assert f["cookies_received"] == 1                    # only the real client answers
    assert f["client_syns"] == 1
    assert f["client_established_us"] == 100_000 + 2 * 10_000   # one round trip after 100 ms
    # Queued ones retransmit, cookies do not. At 7 s, with the queue over half full and
    # no young entry, old entries are pruned after 2 retries (Linux reqsk_timer_handler())
    # until it is back to half (4 of backlog 8); those 4 keep all 5 retries.
    assert f["synacks_to_spoofed"] == 5 * 3 + 4 * 6 + 31


def test_syn_flood_without_cookies_fills_the_syn_queue() -> None:
    f = SCENARIOS["syn-flood-no-cookies"](1).facts
    assert f["syncookies"] == 0
    assert f["syn_queue_1s"] == 9 == f["syn_recv_1s"]
    assert f["syn_drops_1s"] == 40 - 9 + 1              # the rest of the flood + the real SYN
    assert f["cookies_sent_1s"] == 0
    # The forged entries are pruned at 7 s (see above): the client's 4th SYN gets in.
    assert f["client_syns"] == 4                          # 0.1, 1.1, 3.1, 7.1 s
    assert 7_000_000 < f["client_established_us"] < 8_000_000
    assert f["synacks_to_spoofed"] == 5 * 3 + 4 * 6


def test_zero_window_probes_then_resumes() -> None:
    f = SCENARIOS["zero-window"](1).facts
    assert f["zero_window_at_us"] is not None and f["zero_window_at_us"] < 3_000_000
    assert f["probes"] >= 2
    assert all(b > a for a, b in zip(f["probe_gaps_ms"], f["probe_gaps_ms"][1:]))
    assert f["reopened_at_us"] == 3_000_000
    assert f["received"] == f["sent"] == 24_000


def test_fast_retransmit_beats_the_rto() -> None:
    f = SCENARIOS["fast-retransmit"](1).facts
    assert f["sacked_segments"] >= 3 and f["sack_in_repeats"]   # DupThresh SACKed segments
    assert f["retransmit_marks"] == ["Fast Retransmission"]
    assert f["retransmit_after_ms"] < f["rto_ms"]
    assert f["retransmit_after_ms"] == 20                # one round trip
    assert f["received"] == f["sent"]


def test_tail_loss_probe_recovers_the_tail_without_a_timeout() -> None:
    """Linux tcp_schedule_loss_probe() / tcp_send_loss_probe(): two segments out, SRTT
    20 ms: the probe goes 2 * SRTT + 2 ms after the last ACK, resends the last segment,
    its SACK lets RACK mark the other lost; no RTO."""
    f = SCENARIOS["tail-loss-probe"](1).facts
    assert f["segments"] == 6 and f["lost"] == [5, 6]
    assert f["srtt_ms"] == 20 and f["probe_after_last_ack_ms"] == 2 * 20 + 2
    assert f["probe_is_last"] and f["loss_probes"] == 1
    assert f["repaired_seq"] is not None and f["repaired_seq"] < f["probe_seq"]
    assert f["repaired_after_ms"] < f["rto_ms"] and f["rto_count"] == 0
    assert f["received"] == f["sent"] == 8192


def test_rack_finds_the_lost_retransmission_before_the_rto() -> None:
    """Linux tcp_rack_detect_loss(): the retransmission is marked lost once data sent
    after it is SACKed (TCPLostRetransmit), and sent a third time; no RTO."""
    f = SCENARIOS["rack-lost-retransmit"](1).facts
    assert f["transmissions"] == 3 and f["fates"] == ["lost", "lost", "delivered"]
    assert f["lost_retransmits"] == 1 and f["rto_count"] == 0
    assert f["after_ms"][1] == 20                           # one round trip
    # Detected one round trip after the first new data sent after the retransmission.
    assert f["after_ms"][2] == f["new_data_after_ms"] + 20
    assert f["after_ms"][2] < f["after_ms"][1] + f["rto_ms"]
    assert f["received"] == f["sent"] == 40_000


def test_syn_scan_classifies_ports() -> None:
    f = SCENARIOS["syn-scan"](1).facts
    assert f["verdict"] == {21: "closed", 22: "open", 23: "closed", 80: "open",
                            443: "filtered", 8080: "closed"}
    assert f["client_rsts"] == 2 and f["server_established"] == 0
    assert f["retried"] == [443]


# ----------------------------------------------------------------------------- both languages
def test_descriptions_in_both_languages() -> None:
    assert set(DESCRIPTIONS) == set(DESCRIPTIONS_ZH) == set(SCENARIOS)
    for name in SCENARIOS:
        assert DESCRIPTIONS[name] and _has_cjk(DESCRIPTIONS_ZH[name])


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_in_both_languages(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = SCENARIOS[name](1)
    assert out.explanation_zh and out.title_zh and out.sysctls
    for t in out.sysctls:
        assert t.value and t.en and _has_cjk(t.zh)
    for lang, heading in (("en", "What changes it (= the value in this run):"), ("zh", "相关参数")):
        assert main(["demo", name, "--lang", lang]) == 0
        text = capsys.readouterr().out
        assert out.ladder[0].strip() in text and "->" in text    # the ladder
        expl = fold(out.explanation_zh if lang == "zh" else out.explanation)
        assert expl.strip() in text and heading in text
        assert _has_cjk(text[text.index(expl.strip()[:20]):]) == (lang == "zh")


def test_sysctl_values_come_from_the_run() -> None:
    out = SCENARIOS["port-exhaustion"](1)
    values = {t.name: t.value for t in out.sysctls}
    assert values["net.ipv4.ip_local_port_range"] == "40000 40003"
    assert SCENARIOS["port-exhaustion-tw-reuse"](1).sysctls[1].value == "1"


def test_demo_list_in_both_languages(capsys: pytest.CaptureFixture[str]) -> None:
    for lang, table in (("en", DESCRIPTIONS), ("zh", DESCRIPTIONS_ZH)):
        assert main(["demo", "--list", "--lang", lang]) == 0
        out = capsys.readouterr().out
        assert len(out.splitlines()) == len(SCENARIOS)
        for name in SCENARIOS:
            assert f"{name} " in out and table[name] in out


def test_demo_unknown_language_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "half-close", "--lang", "fr"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("synack: ") and "'fr'" in err


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_explanations_fit_the_terminal(name: str) -> None:
    from synack.demo.scenarios.base import _columns

    out = SCENARIOS[name](1)
    for lang in ("en", "zh"):
        text = out.text(lang)
        expl = text[text.index(out.ladder[-1]) + len(out.ladder[-1]):].split("\n\n")[1:-2]
        for line in "\n".join(expl).splitlines():
            assert sum(map(_columns, line)) <= TEXT_WIDTH, line


def test_handshake_over_ipv6_shows_what_differs() -> None:
    """Issue 14: the IPv6 handshake's header, MSS and flow labels, read off the run."""
    out = SCENARIOS["handshake-ipv6"](1)
    f = out.facts
    assert f["syn_len"] == (80, 60) and f["ip_header"] == (40, 20)
    assert f["mss"] == (1440, 1440, 1460) and f["send_mss"] == 1428
    assert all(0 < x <= 0xFFFFF for x in f["flow"]) and f["flow"][0] != f["flow"][1]
    assert f["payload_length"] == 40 and f["hop_limit"] == 64
    assert f["peers"][0][0] == "2001:db8::1" and f["peers"][1][0] == "::ffff:192.0.2.1"
    assert (f["nd_group"], f["nd_mac"]) == ("ff02::1:ff00:2", "33:33:ff:00:00:02")
    assert any("<mss 1440," in line for line in out.ladder)
    assert "2001:db8::1" in out.ladder[0] and "2001:db8::2" in out.ladder[0]
    for lang in ("en", "zh"):
        text = out.text(lang)
        assert "1440" in text and "ff02::1:ff00:2" in text and "::ffff:192.0.2.1" in text


# ----------------------------------------------------------------------------- ecn
def test_ecn_marks_instead_of_dropping_and_the_sender_slows_down() -> None:
    from synack.tcp.ecn import CE
    out = SCENARIOS["ecn"](1)
    f = out.facts
    assert (f["syn_flags"], f["synack_flags"], f["ecn_ok"]) == (ECE | CWR, ECE, True)
    assert f["data_ect"] == ["ECT(0)"]                  # every data segment sent ECT(0)
    assert f["ce_marked"] == f["link_ce_marked"] >= 1
    assert f["ece_acks"] >= 1 and f["cwr_segments"] >= 1
    # At least one reduction by ECE, cubic's: ssthresh = cwnd x 717/1024, cwnd cut to it.
    assert f["reductions"] >= 1
    # The cwnd it is computed from: the one before the ACK, or (synack applies the ACK
    # before its ECE) that plus the segments the ACK newly acknowledged in slow start.
    assert f["cwnd_reduced_from"] in (f["cwnd_before"],
                                      f["cwnd_before"] + f["cut_acked_segments"])
    assert f["ssthresh"] == f["cwnd_reduced_from"] * 717 // 1024 == f["cwnd_after"]
    assert f["ece_arrives_ms"] <= f["cwr_sent_ms"]       # CWR answers the ECE
    # Nothing lost or retransmitted, everything delivered.
    assert f["lost"] == 0 and f["retransmissions"] == 0 and f["total_retrans"] == 0
    assert f["received"] == f["sent"] == 100_000
    assert all(r.fate == "delivered" for r in out.net.records)
    marked = [r for r in out.net.records if r.delivered_data is not None
              and r.delivered_data[1] & 3 == CE]
    assert len(marked) == f["ce_marked"]
    for r in marked:                                     # marked on the way, checksum valid
        parse_tcp_packet(r.delivered_data)
        assert r.data[1] & 3 != CE
    assert {t.name for t in out.sysctls} >= {"net.ipv4.tcp_ecn"}
