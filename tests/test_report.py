"""`synack report`: one self-contained interactive page per run, checked as data and in Chromium.

The generation tests read the data the page carries and compare it with what the
other tools compute from the same capture (``read_capture``, ``synack header``'s
dissection). The browser tests open the page from a file:// URL in Debian's
headless Chromium (selenium), click a segment with the mouse and read what the
page shows; one of them saves the screenshot docs/report.png is made from
(``tests/report_browser.py`` regenerates that file).
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import pytest
from report_browser import (
    click_canvas,
    missing_tools,
    open_report,
    screenshot,
    select_first_retransmission,
    wait_for,
)
from test_cli_ladder import kernel_capture  # noqa: F401  (a fixture: tcpdump of the kernel)

from synack.cli import main
from synack.commands.header import dissect, raw_packets
from synack.trace.capture import read_capture
from synack.trace.cctrace import read_cc_trace

SYNACK = [sys.executable, "-m", "synack.cli"]


def page_data(path: Path) -> dict[str, Any]:
    """The JSON the page carries, with the dissections inflated as the page does."""
    html = path.read_text("utf-8")
    m = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', html, re.DOTALL)
    assert m, "no data block in the page"
    data = json.loads(m.group(1))
    data["dis"] = json.loads(zlib.decompress(base64.b64decode(data.pop("dis_z"))))
    return data


@pytest.fixture(scope="module")
def lossy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A sim run with losses: its capture, synack's cc trace and the page `synack report` made."""
    d = tmp_path_factory.mktemp("report")
    pcap, trace, page = d / "run.pcap", d / "cc.json", d / "run.html"
    assert main(["sim", "--bytes", "300K", "--loss", "2%", "--seed", "1", "--pcap", str(pcap),
                 "--trace-out", str(trace)]) == 0
    assert main(["report", str(pcap), "--trace", str(trace), "-o", str(page)]) == 0
    return {"pcap": pcap, "trace": trace, "page": page}


def test_page_carries_every_segment_time_from_first_packet(lossy: dict[str, Path]) -> None:
    data = page_data(lossy["page"])
    [conn] = read_capture(lossy["pcap"]).connections
    assert len(data["seg"]) == len(conn.segments)
    t0 = conn.segments[0].t_us
    first = data["seg"][0]
    assert first[1] == 0 and first[7] == "SYN"               # time starts at the first packet
    for row, s in zip(data["seg"], conn.segments, strict=True):
        assert row[0] == s.number and row[1] == s.t_us - t0
        assert (row[3], row[4], row[5], row[9]) == (s.seq, s.ack, s.length, s.marks)
    assert data["duration_us"] == conn.segments[-1].t_us - t0
    assert data["conn"] == {"number": 1, "a": conn.name(0), "b": conn.name(1)}


def test_dissection_is_synack_headers_own_text_in_both_languages(lossy: dict[str, Path]) -> None:
    data = page_data(lossy["page"])
    [conn] = read_capture(lossy["pcap"]).connections
    raw = raw_packets(str(lossy["pcap"]), {s.number for s in conn.segments})
    for i in (0, 1, len(conn.segments) // 2, len(conn.segments) - 1):
        s = conn.segments[i]
        for lang in ("en", "zh"):
            assert data["dis"][lang][i] == "\n".join(dissect(conn, s, raw[s.number], lang=lang))
    assert "sequence number" in data["dis"]["en"][1] and "序号" in data["dis"]["zh"][1]


def test_every_mark_has_a_reason_and_retransmissions_name_their_rule(
        lossy: dict[str, Path]) -> None:
    data = page_data(lossy["page"])
    marked = {i for i, row in enumerate(data["seg"]) if row[9]}
    assert marked and {int(k) for k in data["reasons"]} == marked
    for i in marked:
        r = data["reasons"][str(i)]
        assert len(r["en"]) == len(r["zh"]) == len(data["seg"][i][9])
        for mark, en, zh in zip(data["seg"][i][9], r["en"], r["zh"], strict=True):
            assert en.startswith(f"{mark}: ") and len(en) > len(mark) + 20
            assert zh.startswith(f"{mark}：")
    fast = [i for i in marked if "Fast Retransmission" in data["seg"][i][9]]
    assert fast, "the run was expected to show a fast retransmission"
    seq = data["seg"][fast[0]][3]
    text = data["reasons"][str(fast[0])]["en"][0]
    assert f"duplicate ACKs asking for seq {seq}" in text and "RFC 5681" in text
    # The duplicate ACKs it names are in the capture, acknowledging exactly that seq.
    numbers = {int(n) for n in re.findall(r"#(\d+)", text.split("duplicates", 1)[1])}
    by_number = {row[0]: row for row in data["seg"]}
    assert numbers and all(by_number[n][4] == seq and any(m.startswith("Dup ACK")
                                                          for m in by_number[n][9])
                           for n in numbers)


def test_rto_retransmission_reason_comes_from_synacks_trace(tmp_path: Path) -> None:
    pcap, trace, page = tmp_path / "r.pcap", tmp_path / "cc.json", tmp_path / "r.html"
    assert main(["sim", "--bytes", "60K", "--loss", "15%", "--seed", "13", "--pcap", str(pcap),
                 "--trace-out", str(trace)]) == 0
    _, samples = read_cc_trace(trace)
    rtos = [c.t_us for c in samples if c.event == "rto"]
    assert rtos, "this seed was expected to time out once"
    assert main(["report", str(pcap), "--trace", str(trace), "-o", str(page)]) == 0
    data = page_data(page)
    t0 = read_capture(pcap).connections[0].segments[0].t_us
    timer = [i for i, r in data["reasons"].items() if "retransmission timer expired" in r["en"][0]]
    assert timer
    for i in timer:
        row = data["seg"][int(i)]
        assert "Retransmission" in row[9]
        assert any(0 <= row[1] + t0 - t <= 1000 for t in rtos)   # sent when the timer fired
        assert "重传定时器" in data["reasons"][i]["zh"][0]


def test_cc_series_and_capture_series(lossy: dict[str, Path]) -> None:
    data = page_data(lossy["page"])
    _, samples = read_cc_trace(lossy["trace"])
    cc = data["cc"]
    assert cc["aligned"] is True and cc["cwnd"] == [c.cwnd for c in samples]
    t0 = read_capture(lossy["pcap"]).connections[0].segments[0].t_us
    assert cc["t"] == [c.t_us - t0 for c in samples]
    assert data["data_dir"] == 0 and data["mss"] > 500
    # Bytes in flight never go below zero and reach at least one full segment.
    assert min(v for _, v in data["inflight"]) >= 0
    assert max(v for _, v in data["inflight"]) >= data["mss"]
    assert data["rtt"] and all(r > 0 for _, r in data["rtt"])
    # The scoreboard only holds ranges above the cumulative ACK.
    assert data["sack"] and all(left >= ack and right > left
                                for _, ack, ranges in data["sack"] for left, right in ranges)


def test_page_is_self_contained(lossy: dict[str, Path]) -> None:
    html = lossy["page"].read_text("utf-8")
    assert html.count("<script") == 2 and "<script src" not in html and "<link" not in html
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:""", html)
    assert "fetch(" not in html and "XMLHttpRequest" not in html and "@import" not in html


def test_sim_and_demo_report_flags(tmp_path: Path) -> None:
    sim_page, demo_page = tmp_path / "s.html", tmp_path / "d.html"
    r = subprocess.run([*SYNACK, "sim", "--bytes", "20K", "--report", str(sim_page)],
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = page_data(sim_page)
    assert data["cc"] and data["file"] == "run.pcap" and len(data["seg"]) > 10
    assert not list(tmp_path.glob("*.pcap*"))              # its temporary capture is gone
    r = subprocess.run([*SYNACK, "demo", "fast-retransmit", "--report", str(demo_page)],
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = page_data(demo_page)
    assert "Fast Retransmission" in data["notes"]["en"] and "快速重传" in data["notes"]["zh"]
    assert any("Fast Retransmission" in row[9] for row in data["seg"])


@pytest.mark.parametrize("case", ["missing", "not-a-pcap", "bad-dir", "bad-trace", "is-dir"])
def test_bad_input_is_one_line(tmp_path: Path, lossy: dict[str, Path], case: str) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_text("hello, not a capture\n")
    out = str(tmp_path / "o.html")
    args = {
        "missing": [str(tmp_path / "nope.pcap"), "-o", out],
        "not-a-pcap": [str(junk), "-o", out],
        "bad-dir": [str(lossy["pcap"]), "-o", str(tmp_path / "no" / "such" / "o.html")],
        "bad-trace": [str(lossy["pcap"]), "--trace", str(junk), "-o", out],
        "is-dir": [str(lossy["pcap"]), "-o", str(tmp_path)],
    }[case]
    r = subprocess.run([*SYNACK, "report", *args], check=False, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("synack: "), r.stderr
    assert not (tmp_path / "o.html").exists()


@pytest.mark.parametrize("command", [["sim", "--bytes", "10K"], ["demo", "fast-retransmit"]])
def test_report_into_missing_directory_fails_before_running(tmp_path: Path,
                                                            command: list[str]) -> None:
    r = subprocess.run([*SYNACK, *command, "--report", str(tmp_path / "no" / "p.html")],
                       check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "does not exist" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stdout == "", r.stdout


def test_report_of_a_kernel_capture(kernel_capture: Path, tmp_path: Path) -> None:  # noqa: F811
    page = tmp_path / "k.html"
    assert main(["report", str(kernel_capture), "-o", str(page)]) == 0
    data = page_data(page)
    [conn] = read_capture(kernel_capture).connections
    assert [row[0] for row in data["seg"]] == [s.number for s in conn.segments]
    assert data["seg"][0][1] == 0 and data["seg"][0][7] == "SYN"
    assert data["cc"] is None and data["reasons"] == {}        # a clean loopback connection
    assert all("sequence number" in text for text in data["dis"]["en"])
    assert data["conn"]["b"] == "127.0.0.1:5555"


# ------------------------------------------------------------------ in a real browser

@pytest.fixture(scope="module")
def chromium() -> Any:
    missing = missing_tools()
    if missing:   # `make test` installs them (system-deps, [test] extras)
        pytest.fail(f"missing for the browser tests: {', '.join(missing)} "
                    "(run make system-deps)")
    from report_browser import browser

    with browser() as driver:
        yield driver


def _text(driver: Any, element_id: str) -> str:
    return str(driver.execute_script(f"return document.getElementById('{element_id}').textContent;"))


def test_browser_click_segment_shows_dissection_reason_language_and_steps(
        chromium: Any, lossy: dict[str, Path], tmp_path: Path) -> None:
    driver = chromium
    data = page_data(lossy["page"])
    open_report(driver, lossy["page"])
    assert driver.execute_script("return document.title") == "synack report"
    i = next(k for k, row in enumerate(data["seg"]) if "Fast Retransmission" in row[9])
    row = data["seg"][i]
    # Show 80 ms around it, zoom in, then click its label in the ladder with the mouse.
    t = row[1]
    driver.execute_script("synackReport.select(0);")         # start elsewhere
    driver.execute_script(f"synackReport.showRange({t} - 40000, {t} + 40000 + {data['owd_us']});")
    for _ in range(20):          # zoom in with the + button until its label fits whole
        wait_for(driver, "synackReport.drawn()", "the redraw")
        if driver.execute_script(f"return synackReport.labelBox({i});"):
            break
        driver.find_element("id", "zoom-in").click()
    point = wait_for(driver, f"synackReport.labelBox({i})", "the segment's label to be drawn")
    click_canvas(driver, "c-ladder", point["x"], point["y"])
    wait_for(driver, f"synackReport.selected() === {i}", "the click to select the segment")
    title = _text(driver, "sel-title")
    assert f"#{row[0]} " in title and f"[{row[7]}]" in title
    dis = _text(driver, "dissection")
    assert "sequence number" in dis and f"relative {row[3]}" in dis
    assert "flags" in dis and "ACK" in dis
    marks = _text(driver, "sel-marks")
    assert "Fast Retransmission" in marks and f"duplicate ACKs asking for seq {row[3]}" in marks
    assert f"seq {row[3]}" in _text(driver, "sel-facts")
    assert "cwnd" in _text(driver, "sel-facts")             # synack's own state at that time
    # Chinese: the same segment, dissected and explained in the seeds' terms.
    driver.find_element("id", "lang-zh").click()
    wait_for(driver, "synackReport.lang() === 'zh'", "the language switch")
    assert "序号" in _text(driver, "dissection") and "快速重传" in _text(driver, "sel-marks")
    assert _text(driver, "next") == "下一个 ▶"
    driver.find_element("id", "lang-en").click()
    # Step-through: next and prev walk the segments in time order.
    order = sorted(range(len(data["seg"])), key=lambda k: (data["seg"][k][1], k))
    pos = order.index(i)
    driver.find_element("id", "next").click()
    wait_for(driver, f"synackReport.selected() === {order[pos + 1]}", "next")
    assert f"#{data['seg'][order[pos + 1]][0]} " in _text(driver, "sel-title")
    assert f"segment {pos + 2} of {len(data['seg'])}" == _text(driver, "pos")
    driver.find_element("id", "prev").click()
    driver.find_element("id", "prev").click()
    wait_for(driver, f"synackReport.selected() === {order[pos - 1]}", "prev twice")
    # A click on a data segment in the Stevens graph selects it too.
    j = next(k for k in order[pos + 1:] if data["seg"][k][5] and data["seg"][k][2] == 0)
    wait_for(driver, "synackReport.drawn()", "the redraw")
    point = driver.execute_script(f"return synackReport.stevensPoint({j});")
    click_canvas(driver, "c-stevens", point["x"], point["y"])
    wait_for(driver, f"synackReport.selected() === {j}", "the Stevens click")
    out = tmp_path / "report.png"
    screenshot(lossy["page"], out, select_first_retransmission, driver)
    png = out.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_browser_7000_segments_stay_one_screen_and_zoom(chromium: Any, tmp_path: Path) -> None:
    driver = chromium
    page = tmp_path / "big.html"
    assert main(["sim", "--bytes", "6M", "--loss", "1%", "--seed", "3", "--report",
                 str(page)]) == 0
    data = page_data(page)
    assert len(data["seg"]) >= 7000
    assert page.stat().st_size < 4_000_000
    open_report(driver, page)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    assert height < 2000, height                # a viewport, not a 220,000-pixel page
    span0 = driver.execute_script("return synackReport.view.t1 - synackReport.view.t0")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin

    ladder = driver.find_element("id", "c-ladder")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", ladder)
    ActionChains(driver).scroll_from_origin(ScrollOrigin.from_element(ladder), 0, -1200).perform()
    span1 = wait_for(driver, f"(synackReport.view.t1 - synackReport.view.t0) < {span0} / 2 && "
                     "(synackReport.view.t1 - synackReport.view.t0)", "the wheel to zoom in")
    assert span1 < span0 / 2
    # Zoomed in, labels fit whole and a click on one selects its segment.
    t_mid = data["duration_us"] // 2
    driver.execute_script(f"synackReport.showRange({t_mid}, {t_mid} + 30000);")
    wait_for(driver, "synackReport.drawn()", "the redraw")
    labels = wait_for(driver, "synackReport.labels().length && synackReport.labels()",
                      "labels in the zoomed view")
    box = labels[len(labels) // 2]
    click_canvas(driver, "c-ladder", box["x"], box["y"])
    wait_for(driver, f"synackReport.selected() === {box['i']}", "the click to select it")
    assert f"#{data['seg'][box['i']][0]} " in _text(driver, "sel-title")
    assert "sequence number" in _text(driver, "dissection")


def test_every_analysis_mark_has_a_reason_in_both_languages() -> None:
    # A mark the page shows with no reason is a hole in the lesson (marks added to
    # trace/analysis.py must be explained in report/reasons.py too).
    from synack.report import reasons
    from synack.trace import analysis as an

    coded = {an.FAST_RETRANSMISSION, an.SPURIOUS_RETRANSMISSION, an.RETRANSMISSION,
             an.OUT_OF_ORDER}
    for mark in an.MARKS:
        if mark in coded or mark.startswith(an.DUP_ACK):
            continue
        en, zh = reasons._FIXED.get(mark, ("", ""))
        assert en and zh, f"no reason for [{mark}]"
