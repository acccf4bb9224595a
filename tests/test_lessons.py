"""The lessons say what their own run shows (issue 13, item 2).

Each test reads a number off the scenario's ladder -- the text a learner sees --
or off the capture, and checks that the explanation quotes that number, in both
languages; the old wrong wordings are checked to be gone.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from synack.cli import main
from synack.demo.scenarios import SCENARIOS
from synack.trace import analysis

# Every mark synack ladder can write (the ladder's notes such as "old duplicate" are not marks).
MARKS = (analysis.RETRANSMISSION, analysis.FAST_RETRANSMISSION,
         analysis.SPURIOUS_RETRANSMISSION, analysis.OUT_OF_ORDER, analysis.DUP_ACK,
         analysis.ZERO_WINDOW, analysis.ZERO_WINDOW_PROBE, analysis.WINDOW_UPDATE,
         analysis.KEEP_ALIVE, analysis.PREVIOUS_NOT_CAPTURED, analysis.ACKED_UNSEEN)


def arrows(lines: list[str], side: str) -> list[str]:
    """The ladder lines of segments sent by ``side`` ("client" or "server")."""
    out = []
    for line in lines:
        if "|" not in line:
            continue
        body = line[line.index("|"):]
        from_client = body.startswith("|-") or ("X" in body[-8:] and not body.startswith("|   X"))
        if (side == "client") == from_client:
            out.append(line)
    return out


def marks_of(line: str) -> list[str]:
    """The analysis marks of one ladder line, ``Dup ACK 11#2`` counted as ``Dup ACK``."""
    found = []
    for m in re.findall(r"\[([^\]]+)\]", line.split(" <", 1)[0]):
        name = analysis.DUP_ACK if m.startswith(analysis.DUP_ACK + " ") else m
        if name in MARKS:
            found.append(name)
    return found


def t_ms(line: str) -> float:
    return float(line.split()[0])


# ----------------------------------------------------------------------------- fast-retransmit
@pytest.fixture(scope="module")
def fast() -> object:
    return SCENARIOS["fast-retransmit"](1)


def test_fast_retransmit_counts_the_segments_of_its_own_ladder(fast) -> None:  # type: ignore[no-untyped-def]
    data = [x for x in arrows(fast.ladder, "client")
            if re.search(r" len=[1-9]", x) and "Retransmission" not in x]
    n = len(data)
    assert n == fast.facts["segments"] == 6          # 5 x 1448 + 952: 8192 bytes
    assert f"leave as {n} segments" in fast.explanation and "8 segments" not in fast.explanation
    assert f"分成 {n} 个报文段" in fast.explanation_zh
    lost = [x for x in data if "lost" in x]
    assert len(lost) == 1 and f"Segment {data.index(lost[0]) + 1} (seq=" in fast.explanation


def test_fast_retransmit_cwnd_reduction_is_cubics(fast) -> None:  # type: ignore[no-untyped-def]
    f = fast.facts
    assert f["cc"] == "cubic"
    assert f["cwnd_initial"] == 10                   # Linux's initial window
    # Two ACKs before the hole: slow start grows an application-limited sender up to twice
    # the segments it had out (6), as Linux tcp_is_cwnd_limited() allows.
    assert f["cwnd_before"] == 12
    assert f["ssthresh_recovery"] == f["cwnd_before"] * 717 // 1024 == 8
    # PRR (Linux tcp_cwnd_reduction()): cwnd = in flight (nothing: the rest is SACKed)
    # + 1 for the fast retransmission; recovery ends at ssthresh.
    assert f["cwnd_recovery"] == 1
    assert f["cwnd_after"] == f["ssthresh_recovery"]
    assert f"grow it to {f['cwnd_before']}" in fast.explanation
    assert f"so cwnd = {f['cwnd_recovery']}:" in fast.explanation
    assert f"cwnd = ssthresh = {f['cwnd_after']}." in fast.explanation
    assert "x 0.7" in fast.explanation and "enters fast recovery and halves" not in fast.explanation
    assert f"增大到 {f['cwnd_before']}" in fast.explanation_zh
    assert f"cwnd = ssthresh = {f['cwnd_after']}。" in fast.explanation_zh
    assert "窗口减半" not in fast.explanation_zh and "0.7" in fast.explanation_zh


def test_fast_retransmit_dup_acks_as_the_ladder_marks_them(fast) -> None:  # type: ignore[no-untyped-def]
    server = arrows(fast.ladder, "server")
    counts = Counter(m for line in server for m in marks_of(line))
    f = fast.facts
    # The ladder (like tshark on this capture): one Window Update, then two Dup ACKs.
    assert counts[analysis.WINDOW_UPDATE] == f["window_updates"] == 1
    assert counts[analysis.DUP_ACK] == f["wireshark_dup_acks"] == 2
    assert f"the other {counts[analysis.DUP_ACK]} are [Dup ACK]s" in fast.explanation
    assert f"其余 {counts[analysis.DUP_ACK]} 个是 [Dup ACK]" in fast.explanation_zh
    assert "3 duplicate ACKs" not in fast.explanation
    # What the sender counted: segments SACKed above the hole (3 = DupThresh).
    assert f"{f['sacked_segments']} segments are SACKed" in fast.explanation
    rtx = [x for x in arrows(fast.ladder, "client") if "Fast Retransmission" in x]
    assert len(rtx) == 1
    hole_acks = [x for x in server if f"ack={f['lost_seq']} " in x and t_ms(x) < t_ms(rtx[0])]
    assert len(hole_acks) == f["acks_for_hole"] == f["repeat_acks"] + 1


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_no_python_values_in_prose(name: str) -> None:
    out = SCENARIOS[name](1)
    for text in (out.explanation, out.explanation_zh, "\n".join(out.extra)):
        assert not re.search(r"\b(True|False|None)\b", text), text


# ----------------------------------------------------------------------------- worked example
def test_worked_example_tells_the_delayed_ack_of_the_fin() -> None:
    out = SCENARIOS["worked-example"](1)
    close_wait = next(x for x in out.ladder if "ESTABLISHED -> CLOSE_WAIT" in x)
    ack = next(x for x in arrows(out.ladder, "server") if " ACK seq=" in x and "ack=1102" in x)
    delay = t_ms(ack) - t_ms(close_wait)
    assert delay == 40                                 # Linux's delayed ACK (TCP_DELACK_MIN)
    assert f"its ACK leaves only at {t_ms(ack):.0f} ms, {delay:.0f} ms later" in out.explanation
    assert "ACKs the FIN at once" not in out.explanation
    assert f"晚了 {delay:.0f} ms" in out.explanation_zh and "立即确认" not in out.explanation_zh
    f = out.facts
    assert f["server_close_us"] > f["ack_of_fin_us"]   # so the ACK went alone: four segments


# ----------------------------------------------------------------------------- handshakes
def test_why_not_two_way_final_ack_window_is_scaled() -> None:
    out = SCENARIOS["why-not-two-way"](1)
    final = arrows(out.ladder, "client")[-1]
    assert " ACK seq=101 ack=401 " in final and "win=65536" in final and "win=512 " not in final
    assert out.facts["final_ack_window"] == (512, 65536)
    assert "512 x 2^7" in out.explanation and "512 x 2^7" in out.explanation_zh


def test_why_not_two_way_says_the_listener_stays() -> None:
    """Linux: an acceptable RST in SYN_RECEIVED frees the request sock; the listener is
    untouched (the text must not say the server closes or stops listening)."""
    out = SCENARIOS["why-not-two-way"](1)
    assert "drops the request" in out.explanation
    assert "listening socket stays in LISTEN" in " ".join(out.explanation.split())
    assert "监听套接字仍处于 LISTEN" in out.explanation_zh


def test_three_way_handshake_options_in_words() -> None:
    out = SCENARIOS["three-way-handshake"](1)
    assert "SACK permitted: True" not in out.explanation
    assert "SACK permitted by both: yes" in out.explanation
    assert "双方都允许 SACK：是" in out.explanation_zh
    ack = next(x for x in arrows(out.ladder, "client") if " ACK seq=101 ack=301 len=0" in x)
    assert "win=65536" in ack and "512 x 2^7 = 65536" in out.explanation


def test_isn_is_not_called_random_where_it_is_fixed() -> None:
    for name in ("three-way-handshake", "worked-example"):
        zh = SCENARIOS[name](1).explanation_zh
        assert "随机选择" not in zh and "RFC 6528" in zh


def test_header_zh_isn_and_urg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcap = tmp_path / "w.pcap"
    assert main(["demo", "--pcap", str(pcap)]) == 0
    capsys.readouterr()
    assert main(["header", str(pcap), "--packet", "1", "--lang", "zh"]) == 0
    text = capsys.readouterr().out
    seq = next(x for x in text.splitlines() if x.strip().startswith("序号"))
    assert "100" in seq and "随机" not in seq
    urg = next(x for x in text.splitlines() if " URG " in x)
    assert "应该优先处理" not in urg and "RFC 6093" in urg


# ----------------------------------------------------------------------------- marks
# Scenarios whose capture holds one connection, all of it on the ladder.
ONE_CONNECTION = ["worked-example", "three-way-handshake", "lost-synack", "simultaneous-open",
                  "four-way-close", "half-close", "simultaneous-close", "lost-last-ack",
                  "rst-unread-data", "rst-linger-zero", "rst-timeout", "keepalive",
                  "zero-window", "fast-retransmit", "tail-loss-probe", "rack-lost-retransmit",
                  "ecn"]
WITH_MARKS = {"lost-synack", "simultaneous-open", "lost-last-ack", "rst-timeout", "keepalive",
              "zero-window", "fast-retransmit", "tail-loss-probe", "rack-lost-retransmit", "ecn"}


@pytest.mark.parametrize("name", ONE_CONNECTION)
def test_scenario_ladder_marks_are_synack_ladders(name: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    pcap = tmp_path / f"{name}.pcap"
    assert main(["demo", name, "--pcap", str(pcap)]) == 0
    demo = capsys.readouterr().out
    assert main(["ladder", str(pcap)]) == 0
    ladder = capsys.readouterr().out
    assert "connection 1 of 1:" in ladder
    ours = Counter(m for line in demo.splitlines() if "|" in line for m in marks_of(line))
    theirs = Counter(m for line in ladder.splitlines() if "|" in line for m in marks_of(line))
    assert ours == theirs
    assert bool(ours) == (name in WITH_MARKS)


# ----------------------------------------------------------------------------- saved sysctls
def test_demo_pins_its_sysctls_and_says_which_saved_ones_it_ignores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    conf = tmp_path / "sysctl.conf"
    monkeypatch.setenv("SYNACK_SYSCTL_CONF", str(conf))
    assert main(["sysctl", "-w", "net.ipv4.tcp_sack=0",
                 "-w", "net.ipv4.tcp_keepalive_time=60"]) == 0
    capsys.readouterr()
    assert main(["demo", "fast-retransmit"]) == 0
    out = capsys.readouterr().out
    assert "values saved with `synack sysctl -w` are not used" in out
    assert "not used here: net.ipv4.tcp_sack = 0 (this run: 1)" in out
    assert "sackOK" in out and "[Fast Retransmission]" in out      # the lesson's run, unchanged
    assert main(["demo", "keepalive", "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert "net.ipv4.tcp_keepalive_time = 60 (本次运行: 7200)" in out
    assert main(["demo", "half-close"]) == 0                   # lists neither: no such line
    out = capsys.readouterr().out
    assert "not used here" not in out and "are not used" in out
    # sim does use them: the saved value reaches its stacks.
    from synack.cli import load_sysctl
    assert load_sysctl()["net.ipv4.tcp_sack"] == 0


# ----------------------------------------------------------------------------- every scenario
def test_four_way_close_delayed_ack_read_off_the_ladder() -> None:
    out = SCENARIOS["four-way-close"](1)
    cw = next(x for x in out.ladder if "ESTABLISHED -> CLOSE_WAIT" in x)
    ack = next(x for x in arrows(out.ladder, "server") if " ACK seq=" in x and "FIN" not in x
               and t_ms(x) >= t_ms(cw))
    delay = t_ms(ack) - t_ms(cw)
    assert f"its TCP ACKs the FIN\n   {delay:.0f} ms later" in out.explanation
    assert f"TCP 在 {delay:.0f} ms 后才确认它" in out.explanation_zh


def test_half_close_chunks_as_the_ladder_shows_them() -> None:
    out = SCENARIOS["half-close"](1)
    cw = next(x for x in out.ladder if "ESTABLISHED -> CLOSE_WAIT" in x)
    chunks = [x for x in arrows(out.ladder, "server") if re.search(r" len=[1-9]", x)
              and t_ms(x) > t_ms(cw)]
    times = ", ".join(f"{t_ms(x):.0f}" for x in chunks)
    assert f"sends {len(chunks)} more chunks, at {times} ms" in out.explanation
    assert "over 600 ms" not in out.explanation and "600 ms 内" not in out.explanation_zh
    assert f"又在 {times} ms 发了 {len(chunks)} 块数据" in out.explanation_zh
    # The seed's tcp_fin_timeout applies to orphans only (Linux), said in both languages.
    assert "only for an orphan" in out.explanation and "孤儿连接" in out.explanation_zh


def test_lost_synack_retry_time_read_off_the_ladder() -> None:
    out = SCENARIOS["lost-synack"](1)
    syns = [x for x in arrows(out.ladder, "client") if "|-- SYN seq=" in x]
    retry_s = (t_ms(syns[1]) - t_ms(syns[0])) / 1000
    assert f"after the {retry_s:g} s initial RTO" in out.explanation
    assert f"在 {retry_s:g} 秒的初始 RTO 后重传" in out.explanation_zh


def test_accept_overflow_names_the_dropped_acks() -> None:
    out = SCENARIOS["accept-overflow"](1)
    acks = [x for x in arrows(out.ladder, "client") if " ACK seq=" in x and " len=0" in x]
    dropped = ", ".join(f"{t_ms(x):.0f}" for x in acks[:-1])
    assert len(acks) == 3 and out.facts["overflows"] == len(acks) - 1
    assert f"c4's ACKs sent at {dropped} ms are dropped" in out.explanation
    assert f"sent at {t_ms(acks[-1]):.0f} ms gets in" in out.explanation
    assert f"{dropped} ms 发出的 ACK 都被丢弃" in out.explanation_zh


def test_zero_window_explains_the_probe_marks() -> None:
    out = SCENARIOS["zero-window"](1)
    zero = next(x for x in arrows(out.ladder, "server") if "[ZeroWindow]" in x)
    probes = [x for x in arrows(out.ladder, "client") if "[Keep-Alive]" in x]
    assert len(probes) == out.facts["probes"] == 3
    # The one whose answer tcp_invalid_ratelimit held back is named in the text.
    assert out.facts["unanswered_probes_ms"] == [round(t_ms(probes[1]))]
    assert f"The probe at {round(t_ms(probes[1]))} ms draws no answer" in out.explanation
    first = round(t_ms(probes[0]) - t_ms(zero))
    assert f"the first {first} ms after the zero window" in out.explanation
    assert "marks the probes [Keep-Alive]" in out.explanation
    assert "标为 [Keep-Alive]" in out.explanation_zh


def test_simultaneous_open_explains_its_marks() -> None:
    out = SCENARIOS["simultaneous-open"](1)
    synacks = [x for x in out.ladder if "SYN,ACK seq=" in x]
    shown = sorted({m for x in synacks for m in marks_of(x)})
    assert shown and all(f"[{m}]" in out.explanation for m in shown)
    if any(analysis.WINDOW_UPDATE in marks_of(x) for x in out.ladder):
        assert "[Window Update]" in out.explanation and "[Window Update]" in out.explanation_zh


def test_keepalive_probe_seq_is_the_syns_when_no_data_was_sent() -> None:
    out = SCENARIOS["keepalive"](1)
    probe = next(x for x in arrows(out.ladder, "client") if "[Keep-Alive]" in x)
    syn = next(x for x in arrows(out.ladder, "client") if "SYN seq=" in x)
    seq = re.search(r"seq=(\d+)", probe)
    assert seq and f"SYN seq={seq.group(1)} " in syn            # SND.UNA - 1 is the SYN's number
    assert "one byte it\nalready sent" not in out.explanation and "no data was sent" in out.explanation
    assert "一个已经发过的字节" not in out.explanation_zh
    assert f"= {out.facts['idle_since_s']:g} + 7200 + 9 x 75" in out.explanation


def test_rst_timeout_budget_is_linuxs_formula() -> None:
    from synack.tcp.rtt import retries_timeout_us

    out = SCENARIOS["rst-timeout"](1)
    budget = retries_timeout_us(15) / 1_000_000
    assert budget == 924.6 and f"({budget:g} s for 15 with a 200 ms" in out.explanation
    assert out.facts["gave_up_s"] > budget                  # checked when a timeout fires


def test_seed_claims_where_linux_differs_are_said() -> None:
    ports = SCENARIOS["port-exhaustion"](1)
    assert "holds no file descriptor" in ports.explanation and "不占文件描述符" in ports.explanation_zh
    linger = SCENARIOS["rst-linger-zero"](1).explanation_zh
    assert "的一种强制方式" not in linger and "向已经 close() 的一端继续发数据" in linger


def test_syn_flood_no_cookies_retry_times_read_off_the_ladder() -> None:
    out = SCENARIOS["syn-flood-no-cookies"](1)
    syns = [x for x in arrows(out.ladder, "client") if "|-- SYN seq=" in x or "SYN seq=" in x]
    gaps = ", ".join(f"{(t_ms(x) - t_ms(syns[0])) / 1000:g} s" for x in syns[1:])
    assert len(syns) == out.facts["client_syns"] == 4
    assert f"its retries ({gaps} later" in out.explanation
    for text in (out.explanation, out.explanation_zh):
        assert "1024" in text and "somaxconn" not in text     # the seed's figure, and Linux's rule
    assert "only adds a limit when SYN cookies are off" in out.explanation


def test_accept_overflow_says_somaxconn_default_changed() -> None:
    out = SCENARIOS["accept-overflow"](1)
    assert "128 was Linux's default before 5.4, now it is 4096" in out.explanation
    assert "Linux 5.4\n之前的默认值，现在是 4096" in out.explanation_zh


def test_lost_last_ack_timing_and_marks_read_off_the_ladder() -> None:
    out = SCENARIOS["lost-last-ack"](1)
    fins = [x for x in arrows(out.ladder, "server") if "FIN,ACK" in x]
    assert len(fins) == 2
    gap = t_ms(fins[1]) - t_ms(fins[0])
    assert f"RTO expires, {gap:.0f} ms later" in out.explanation
    assert f"（{gap:.0f} ms 后）重传 FIN" in out.explanation_zh
    answer = next(x for x in arrows(out.ladder, "client") if t_ms(x) > t_ms(fins[1]))
    assert analysis.DUP_ACK in marks_of(answer) and "[Dup ACK]" in out.explanation


def test_a_syn_sent_again_is_a_plain_retransmission_as_tshark_says() -> None:
    # Only data already acknowledged is "spurious"; a SYN or SYN,ACK sent again is a
    # retransmission (tshark: "This frame is a (suspected) retransmission").
    out = SCENARIOS["lost-synack"](1)
    again = [x for x in out.ladder if "SYN" in x and "Retrans" in x]
    assert again and all("[Retransmission]" in x and "Spurious" not in x for x in again), again


# ----------------------------------------------------------------------------- ecn
def test_ecn_explanation_quotes_its_ladder() -> None:
    out = SCENARIOS["ecn"](1)
    f = out.facts
    client = arrows(out.ladder, "client")
    server = arrows(out.ladder, "server")
    # The handshake as the ladder shows it: an ECN-setup SYN, a SYN,ACK with ECE alone.
    assert "SYN,ECE,CWR seq=" in client[0]
    assert "SYN,ACK,ECE seq=" in server[0]
    # The first segment marked [CE] is the one the explanation names, sent when it says.
    ce = [x for x in client if "[CE]" in x]
    assert len(ce) == f["ce_marked"]
    assert f" seq={f['ce_seq']} " in ce[0] and t_ms(ce[0]) == f["ce_sent_ms"]
    first_ece = next(x for x in server if "ACK,ECE " in x and "SYN" not in x)
    assert f" ack={f['ece_ack']} " in first_ece and t_ms(first_ece) == f["ece_sent_ms"]
    assert sum("ACK,ECE " in x and "SYN" not in x for x in server) == f["ece_acks"]
    cwr = [x for x in client if "CWR" in x.split(" seq=")[0] and "SYN" not in x]
    assert len(cwr) == f["cwr_segments"] and f" seq={f['cwr_seq']} " in cwr[0]
    assert not any(marks_of(x) for x in client)          # no retransmission of any kind
    for text, words in ((out.explanation, (
            f"data segment {f['ce_index']} (seq={f['ce_seq']}) leaves at {f['ce_sent_ms']:.3f} ms",
            f"the first at {f['ece_sent_ms']:.3f} ms (ack={f['ece_ack']})",
            f"Its cwnd is {f['cwnd_before']}.",
            f"= {f['cwnd_reduced_from']} x 0.7 = {f['ssthresh']}",
            f"cwnd goes down to {f['cwnd_after']}",
            f"{f['retransmissions']} retransmissions", "RFC 3168", "net.ipv4.tcp_ecn = 1")), (
            out.explanation_zh, (
            f"第 {f['ce_index']} 个数据报文段（seq={f['ce_seq']}）在 {f['ce_sent_ms']:.3f} ms 发出",
            f"（ack={f['ece_ack']}）", f"cwnd 是 {f['cwnd_before']}。",
            f"= {f['cwnd_reduced_from']} x 0.7 = {f['ssthresh']}",
            f"cwnd 降到 {f['cwnd_after']}",
            f"重传 {f['retransmissions']} 次", "RFC 3168", "net.ipv4.tcp_ecn = 1"))):
        for w in words:
            assert w in text, w
