"""Pictures (issue 13): the SVG ladder on a time axis, ``ladder --html``, and the plots."""

from __future__ import annotations

import itertools
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from test_cli_ladder import read_raw
from test_report import page_data
from test_trace_capture import lossy_run, worked_example_pcap

from synack.cli import main
from synack.trace.capture import read_capture
from synack.trace.capture_ladder import ladder_steps
from synack.trace.cctrace import CcSample
from synack.trace.ladder import SegmentStep
from synack.trace.ladder_svg import MAX_SEGMENTS
from synack.wire.pcap import LINKTYPE_RAW, PcapWriter

NS = "{http://www.w3.org/2000/svg}"


def svg_of(tmp_path: Path, pcap: Path, *extra: str) -> ET.Element:
    out = tmp_path / f"{pcap.stem}.svg"
    assert main(["ladder", str(pcap), "--svg", str(out), *extra]) == 0
    return ET.parse(out).getroot()


def groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{NS}g") if g.get("class") == cls]


def rows(root: ET.Element) -> list[tuple[int, float]]:
    """(time, top y) of every drawn row, arrows and state boxes, in document order."""
    return [(int(g.get("data-t-us", "")), float(g.get("data-y", "")))
            for g in root.iter(f"{NS}g") if g.get("class") in ("seg", "state")]


@pytest.fixture(scope="module")
def sim_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short run with 20 ms each way and some loss: bursts and round-trip waits."""
    path = tmp_path_factory.mktemp("pics") / "run.pcap"
    assert main(["sim", "--bytes", "60K", "--delay", "20ms", "--rate", "10mbit", "--loss", "3%",
                 "--seed", "4", "--pcap", str(path)]) == 0
    return path


def test_svg_rows_are_on_a_time_axis_with_a_ruler(tmp_path: Path, sim_pcap: Path) -> None:
    root = svg_of(tmp_path, sim_pcap)
    drawn = rows(root)
    assert len(drawn) > 40
    # Down the page is later: a row is never above an earlier one.
    assert all(a[0] <= b[0] and a[1] < b[1] for a, b in itertools.pairwise(drawn))
    # Time is to scale where rows are not pushed apart: the smallest pixels per
    # microsecond between neighbours is the scale, and every gap of 5 ms or more
    # (the round-trip waits) is drawn at exactly that scale.
    ratios = [((y2 - y1) / (t2 - t1), t2 - t1)
              for (t1, y1), (t2, y2) in itertools.pairwise(drawn) if t2 > t1]
    scale = min(r for r, _ in ratios)
    long = [r for r, dt in ratios if dt >= 5000]
    assert len(long) >= 5
    assert all(abs(r - scale) <= 0.01 * scale for r in long), (scale, long)
    # The ruler: ticks in ms, each where its time is among the rows.
    ticks = [(int(g.get("data-t-us", "")), float(g.get("data-y", ""))) for g in groups(root, "tick")]
    assert len(ticks) >= 5
    labels = ["".join(g.itertext()) for g in groups(root, "tick")]
    assert all(lab.endswith(" ms") for lab in labels) and labels[0] == "0 ms"
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in itertools.pairwise(ticks))
    for t, y in drawn:
        before = [ty for tt, ty in ticks if tt <= t]
        after = [ty for tt, ty in ticks if tt > t]
        if before:
            assert max(before) <= y + 0.2, (t, y, ticks)
        if after:
            assert min(after) >= y - 0.2, (t, y, ticks)


def test_a_long_idle_gap_is_a_break_marker(tmp_path: Path) -> None:
    recs = read_raw(worked_example_pcap(tmp_path))
    pcap = tmp_path / "idle.pcap"
    with PcapWriter(pcap, LINKTYPE_RAW) as w:       # 2.1 s of silence before the close
        for i, (ts, data) in enumerate(recs):
            w.write(data, ts + (2_100_000 if i >= 9 else 0))
    root = svg_of(tmp_path, pcap)
    texts = ["".join(t.itertext()) for t in root.iter(f"{NS}text")]
    assert "// 2.1 s idle" in texts
    assert int(root.get("height", "")) < 2000, root.get("height")
    # Both sides of the break keep their time scale; no tick falls inside it.
    drawn = rows(root)
    ticks = [int(g.get("data-t-us", "")) for g in groups(root, "tick")]
    gap = next((a, b) for a, b in itertools.pairwise(drawn) if b[0] - a[0] >= 2_000_000)
    assert not [t for t in ticks if gap[0][0] < t < gap[1][0]]
    assert gap[1][1] - gap[0][1] < 120


def test_svg_labels_are_whole_and_wrapped(tmp_path: Path, sim_pcap: Path) -> None:
    root = svg_of(tmp_path, sim_pcap, "--absolute")
    [conn] = read_capture(sim_pcap).connections
    labels = [s.label for s in ladder_steps(conn, absolute=True) if isinstance(s, SegmentStep)]
    assert any(len(lab) > 110 for lab in labels)        # some need a second line
    shown = [next(g.iter(f"{NS}text")) for g in groups(root, "seg")]
    texts = ["".join(t.itertext()) for t in shown]
    assert texts == labels
    assert not any("..." in t for t in texts)
    assert any(len(list(t.iter(f"{NS}tspan"))) >= 2 for t in shown)


def test_svg_has_a_legend_for_every_colour(tmp_path: Path, sim_pcap: Path) -> None:
    root = svg_of(tmp_path, sim_pcap)
    [legend] = [g for g in root.iter(f"{NS}g") if g.get("id") == "legend"]
    keys = {"".join(k.itertext()): k.get("data-colour") for k in legend
            if k.get("data-colour")}
    for name in ("data", "pure ACK", "SYN / FIN", "RST", "retransmission", "dup ACK",
                 "other mark [..]"):
        assert name in keys, keys
    used: dict[str, str] = {}
    for g in groups(root, "seg"):
        label = "".join(next(g.iter(f"{NS}text")).itertext())
        used[label] = next(g.iter(f"{NS}line")).get("stroke", "")
    assert set(used.values()) <= set(keys.values())
    assert len(set(used.values())) >= 4
    for label, c in used.items():
        if "Retransmission]" in label:
            assert c == keys["retransmission"], label
        elif "[" not in label and label.startswith("SYN"):
            assert c == keys["SYN / FIN"], label
        elif "[" not in label and " len=0 " in label and label.startswith("ACK"):
            assert c == keys["pure ACK"], label
    assert any("Retransmission]" in label for label in used)


def test_a_huge_capture_gives_a_bounded_svg_and_the_whole_page(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pcap, svg, page = tmp_path / "big.pcap", tmp_path / "big.svg", tmp_path / "big.html"
    assert main(["sim", "--bytes", "10M", "--pcap", str(pcap)]) == 0
    [conn] = read_capture(pcap).connections
    assert len(conn.segments) > 7000
    capsys.readouterr()
    assert main(["ladder", str(pcap), "--svg", str(svg), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert f"the SVG has the first {MAX_SEGMENTS} of {len(conn.segments)} segments" in out
    root = ET.parse(svg).getroot()
    assert int(root.get("height", "")) < 20_000, root.get("height")
    assert len(groups(root, "seg")) == MAX_SEGMENTS
    [note] = [g for g in root.iter(f"{NS}g") if g.get("id") == "left-out"]
    text = "".join(note.itertext())
    assert f"{len(conn.segments) - MAX_SEGMENTS} more segments not drawn" in text
    assert f"synack report {pcap} -o run.html" in text
    # --html is synack report's page: every segment, for zooming.
    assert len(page_data(page)["seg"]) == len(conn.segments)


def test_ladder_html_is_the_report_page_of_the_chosen_connection(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synack.demo.bulk import transfer
    from synack.sim import LinkParams

    a = read_raw(worked_example_pcap(tmp_path))
    transfer(20_000, seed=2, link=LinkParams(delay_us=5000), pcap=str(tmp_path / "b.pcap"))
    b = read_raw(tmp_path / "b.pcap")
    pcap = tmp_path / "two.pcap"
    with PcapWriter(pcap, LINKTYPE_RAW) as w:
        for ts, data in a + [(ts + 10_000_000, d) for ts, d in b]:
            w.write(data, ts)
    cap = read_capture(pcap)
    page = tmp_path / "l.html"
    for number in (1, 2):
        assert main(["ladder", str(pcap), "--conn", str(number), "--html", str(page)]) == 0
        assert f"wrote {page}" in capsys.readouterr().out
        data = page_data(page)
        conn = cap.connections[number - 1]
        assert data["conn"] == {"number": number, "a": conn.name(0), "b": conn.name(1)}
        assert len(data["seg"]) == len(conn.segments)
        assert data["title"].startswith(f"synack ladder: connection {number} of 2")
    capsys.readouterr()
    assert main(["ladder", str(pcap), "--html", str(tmp_path / "no" / "x.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err, err


# ----------------------------------------------------------------------------- plots

def test_stevens_sack_blocks_each_byte_once_and_thin(tmp_path: Path) -> None:
    from matplotlib.collections import LineCollection

    from synack.trace.plot import stevens_figure

    path, _ = lossy_run(tmp_path, seed=1, loss=0.03)
    [conn] = read_capture(path).connections
    fig = stevens_figure(conn, 0)
    [ax] = fig.axes
    [sack] = [c for c in ax.collections
              if isinstance(c, LineCollection) and c.get_label().startswith("SACK")]
    drawn = sorted((min(y for _, y in seg), max(y for _, y in seg)) for seg in sack.get_segments())
    reported = [(max(a, s.ack), b) for s in conn.segments if s.direction == 1
                for a, b in s.sack if b > max(a, s.ack)]
    assert len(drawn) < len(reported)             # not every block of every ACK again
    # Drawn ranges never overlap, and together they are every byte ever SACKed.
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(drawn)), drawn
    union: list[list[int]] = []
    for a, b in sorted(reported):
        if union and a <= union[-1][1]:
            union[-1][1] = max(union[-1][1], b)
        else:
            union.append([a, b])
    assert sum(b - a for a, b in drawn) == sum(b - a for a, b in union)
    assert all(w <= 1.5 for w in sack.get_linewidths())


def test_stevens_window_line_stays_in_the_frame(tmp_path: Path) -> None:
    from synack.trace.plot import stevens_figure

    for seed, loss in ((1, 0.03), (2, 0.0)):
        path, _ = lossy_run(tmp_path, seed=seed, loss=loss)
        [conn] = read_capture(path).connections
        fig = stevens_figure(conn, 0)
        [ax] = fig.axes
        [win] = [ln for ln in ax.get_lines() if ln.get_label().startswith("receive window")]
        lo, hi = ax.get_ylim()
        ys: Any = win.get_ydata()
        assert all(lo <= y <= hi for y in ys), (seed, lo, hi, max(ys))
        # And the data stays in view: a window drawn whole is at most three times the
        # data's height (else it runs along the top), so the highest data byte is in the
        # frame's upper two thirds.
        top = max(s.seq + s.length for s in conn.segments if s.direction == 0)
        assert (hi - lo) / 3.2 < top <= hi, (seed, lo, hi, top)


def cc_samples() -> list[CcSample]:
    """A trace starting 80 ms into the connection; ssthresh equals cwnd after a loss."""
    out = []
    for i in range(200):
        cwnd = 10 + i if i < 100 else 55
        ssthresh = 0x7FFFFFFF if i < 100 else 55
        out.append(CcSample(80_000 + 2_000 * i, "ack", cwnd, ssthresh, 40_000, 240_000,
                            "OPEN"))
    return out


def test_cwnd_plot_shows_ssthresh_over_cwnd_and_starts_at_zero(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from synack.trace.plot import cc_figure, save_png

    fig = cc_figure(cc_samples())
    top, bottom = fig.axes
    lines = {ln.get_label(): ln for ln in top.get_lines()}
    cwnd, ssthresh = lines["cwnd"], lines["ssthresh"]
    assert ssthresh.get_zorder() > cwnd.get_zorder()
    assert ssthresh.get_linestyle() not in ("-", "solid")
    assert ssthresh.get_linewidth() < cwnd.get_linewidth()
    for ax in (top, bottom):
        for ln in ax.get_lines():
            xs: Any = ln.get_xdata()
            assert min(xs) == 0.0, ln.get_label()
    assert bottom.get_xlim()[0] == 0
    # Drawn, the orange dashes show on the blue line where the two are equal.
    out = tmp_path / "cc.png"
    save_png(fig, out)
    with Image.open(out) as im:
        px = np.asarray(im.convert("RGB")).astype(int)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    orange = int(((r > 200) & (g > 90) & (g < 170) & (b < 80)).sum())
    assert orange > 300, orange


def test_sim_trace_plot_time_zero_is_the_syn(tmp_path: Path) -> None:
    # The cwnd plot of a sim run and the Stevens graph of its capture share time 0:
    # the SYN (the trace records when the connection began; its first point is an ACK
    # about two round trips later, and sits there on the axis).
    import json
    import subprocess
    import sys

    from synack.trace.cctrace import read_cc_trace
    from synack.trace.plot import cc_figure

    trace = tmp_path / "cc.json"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src"),
           "SYNACK_SYSCTL_CONF": os.devnull}
    r = subprocess.run([sys.executable, "-m", "synack.cli", "sim", "--bytes", "300K",
                        "--delay", "20ms", "--trace-out", str(trace)], capture_output=True,
                       text=True, env=env, timeout=120, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(trace.read_text())["start_us"] == 0
    meta, samples = read_cc_trace(trace)
    fig = cc_figure(samples, start_us=meta["start_us"])
    top, bottom = fig.axes
    first = min(top.get_lines()[0].get_xdata())
    assert 0.07 < first < 0.1, first          # two 40 ms round trips after the SYN
    assert bottom.get_xlim()[0] == 0 and "SYN" in bottom.get_xlabel()
