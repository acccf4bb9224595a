// The report page's code: hand-written, no library, no network (inlined by writer.py).
// It only draws: every number comes from the data block writer.py puts in the page.
"use strict";
(function () {
const D = JSON.parse(document.getElementById("report-data").textContent);
const T = {
  en: { fit: "Fit", prev: "◀ Prev", next: "Next ▶", play: "Play", pause: "Pause",
        hint: "wheel: zoom · drag: scroll · click a segment · ←/→: step",
        ladder: "Ladder", stevens: "Time-sequence (Stevens) graph", cc: "Congestion window",
        rtt: "Round-trip time", sack: "SACK scoreboard", overview: "Whole run (click or drag to move the view)",
        seg: "segment", of: "of", time: "time", since: "time since the first packet",
        data: "data", ack: "pure ACK", syn: "SYN / FIN", rst: "RST", retrans: "retransmission",
        dup: "dup ACK / other mark", selected: "selected",
        dataseg: "data segment", ackline: "ACK (cumulative)", win: "receive window edge (ack + rwnd)",
        sackb: "SACK blocks", cwnd: "cwnd (synack)", ssthresh: "ssthresh (synack)",
        inflight: "bytes in flight / MSS (capture)", rtoev: "RTO fired", srtt: "SRTT (synack)",
        rtoline: "RTO (synack)", rttsample: "RTT sample (capture)", board: "SACKed ranges above the cumulative ACK (capture)",
        segs: "segments", ms: "ms", above: "bytes above ACK", seqrel: "relative seq",
        nocc: "cwnd, ssthresh, SRTT and RTO are synack's own: give --trace cc.json (synack sim --trace-out) where synack was the sender.",
        unaligned: "the trace's clock does not overlap the capture's: aligned at its first sample.",
        packets: "packets", conn: "connection", conns: "connections in the file",
        marks: "Analysis marks", nomarks: "no analysis marks", decoding: "decoding the dissection…",
        slant: "arrival drawn one-way delay later (first RTT / 2, estimated)",
        len: "len", win_: "win", ca: "CA state" },
  zh: { fit: "全部", prev: "◀ 上一个", next: "下一个 ▶", play: "播放", pause: "暂停",
        hint: "滚轮：缩放 · 拖动：平移 · 点击报文段 · ←/→：逐个查看",
        ladder: "时序图（梯形图）", stevens: "时间-序号图（Stevens 图）", cc: "拥塞窗口",
        rtt: "往返时间", sack: "SACK 记分板", overview: "整个过程（点击或拖动以移动视图）",
        seg: "报文段", of: "/", time: "时间", since: "距第一个包的时间",
        data: "数据", ack: "纯确认", syn: "SYN / FIN", rst: "RST", retrans: "重传",
        dup: "重复确认 / 其他标记", selected: "选中",
        dataseg: "数据报文段", ackline: "确认号（累计）", win: "接收窗口右沿（确认号 + 窗口）",
        sackb: "SACK 块", cwnd: "cwnd（synack）", ssthresh: "ssthresh（synack）",
        inflight: "在途字节 / MSS（抓包）", rtoev: "RTO 超时", srtt: "SRTT（synack）",
        rtoline: "RTO（synack）", rttsample: "RTT 样本（抓包）", board: "累计确认之上被 SACK 的范围（抓包）",
        segs: "报文段", ms: "毫秒", above: "高于确认号的字节", seqrel: "相对序号",
        nocc: "cwnd、ssthresh、SRTT 和 RTO 是 synack 自己的状态：synack 作为发送方时用 --trace cc.json（synack sim --trace-out）给出。",
        unaligned: "记录的时钟与抓包不重叠：按其第一个样本对齐。",
        packets: "个包", conn: "连接", conns: "个连接（文件中）",
        marks: "分析标记", nomarks: "没有分析标记", decoding: "正在解码首部解析…",
        slant: "到达位置画在单程时延之后（首个 RTT / 2，估计值）",
        len: "长度", win_: "窗口", ca: "拥塞状态" },
};
const C = { data: "#1f3a93", ack: "#7a8594", syn: "#7b2cbf", rst: "#111", retrans: "#d62728",
            mark: "#e67700", sel: "#d6336c", ackline: "#2ca02c", win: "#ff7f0e", sackb: "#17becf",
            cwnd: "#1f3a93", ssthresh: "#ff7f0e", inflight: "#9aa3ad", srtt: "#2ca02c", rto: "#9467bd",
            grid: "#eef1f4", axis: "#5a6472" };
const MARGIN_L = 64, MARGIN_R = 12;
const SEG = D.seg.map((r, i) => ({ i, n: r[0], t: r[1], dir: r[2], seq: r[3], ack: r[4], len: r[5],
  flags: r[6], fl: r[7], win: r[8], marks: r[9], sack: r[10] }));
const RETRANS = new Set(["Retransmission", "Fast Retransmission", "Spurious Retransmission"]);
SEG.forEach(s => { s.re = s.marks.some(m => RETRANS.has(m)); });
const ORDER = SEG.slice().sort((a, b) => a.t - b.t || a.i - b.i);
const TS = ORDER.map(s => s.t);
const DUR = Math.max(D.duration_us, 1);
const OWD = D.owd_us;
const DD = D.data_dir;
let lang = (navigator.language || "").startsWith("zh") ? "zh" : "en";
const view = { t0: -DUR * 0.02, t1: DUR * 1.02 + OWD };
const FULL = { t0: view.t0, t1: view.t1 };
let selected = null;
let DIS = null;
let playing = null;

function tr(k) { return (T[lang] && T[lang][k]) || T.en[k] || k; }
function lowerBound(arr, v) { let lo = 0, hi = arr.length; while (lo < hi) { const m = (lo + hi) >> 1; if (arr[m] < v) lo = m + 1; else hi = m; } return lo; }
function visible(t0, t1) { return [lowerBound(TS, t0), lowerBound(TS, t1 + 1)]; }

// ---------------------------------------------------------------- canvases
const canvases = {};
function setupCanvas(id) {
  const cv = document.getElementById(id);
  const h = Number(cv.getAttribute("height"));
  const o = { cv, h, w: 0, ctx: cv.getContext("2d") };
  canvases[id] = o;
  return o;
}
function resize() {
  const dpr = window.devicePixelRatio || 1;
  for (const o of Object.values(canvases)) {
    const w = o.cv.clientWidth || 800;
    o.w = w; o.cv.width = Math.round(w * dpr); o.cv.height = Math.round(o.h * dpr);
    o.cv.style.height = o.h + "px";
    o.ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  }
  draw();
}
function xOf(o, t) { return MARGIN_L + (t - view.t0) / (view.t1 - view.t0) * (o.w - MARGIN_L - MARGIN_R); }
function tOf(o, x) { return view.t0 + (x - MARGIN_L) / (o.w - MARGIN_L - MARGIN_R) * (view.t1 - view.t0); }

function niceStep(span, n) {
  const raw = span / Math.max(n, 1), p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}
function fmtTime(us, step) {
  let unit = "µs", div = 1;
  if (step >= 1e6) { unit = "s"; div = 1e6; } else if (step >= 1e3) { unit = "ms"; div = 1e3; }
  const dec = Math.max(0, -Math.floor(Math.log10(step / div) + 1e-9));
  return (us / div).toFixed(dec) + " " + unit;
}
function fmtTimeFine(us) { return us >= 1e6 ? (us / 1e6).toFixed(6) + " s" : (us / 1e3).toFixed(3) + " ms"; }
function fmtNum(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return +(v / 1e9).toPrecision(4) + "G";
  if (a >= 1e6) return +(v / 1e6).toPrecision(4) + "M";
  if (a >= 1e4) return +(v / 1e3).toPrecision(4) + "k";
  return String(+v.toPrecision(4));
}
function timeGrid(o, top, bottom) {
  const ctx = o.ctx, step = niceStep(view.t1 - view.t0, (o.w - MARGIN_L) / 110);
  ctx.strokeStyle = C.grid; ctx.lineWidth = 1; ctx.beginPath();
  for (let t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
    const x = Math.round(xOf(o, t)) + 0.5; ctx.moveTo(x, top); ctx.lineTo(x, bottom);
  }
  ctx.stroke();
}
function yAxis(o, lo, hi, top, bottom, label) {
  const ctx = o.ctx, step = niceStep(hi - lo || 1, Math.max(2, (bottom - top) / 34));
  const y = v => bottom - (v - lo) / ((hi - lo) || 1) * (bottom - top);
  ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = C.axis; ctx.textAlign = "right"; ctx.textBaseline = "middle";
  ctx.strokeStyle = C.grid; ctx.beginPath();
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) {
    const yy = Math.round(y(v)) + 0.5; ctx.moveTo(MARGIN_L, yy); ctx.lineTo(o.w - MARGIN_R, yy);
    ctx.fillText(fmtNum(v), MARGIN_L - 5, yy);
  }
  ctx.stroke();
  ctx.save(); ctx.translate(11, (top + bottom) / 2); ctx.rotate(-Math.PI / 2); ctx.textAlign = "center";
  ctx.fillText(label, 0, 0); ctx.restore();
  return y;
}
function clipPlot(o) { o.ctx.save(); o.ctx.beginPath(); o.ctx.rect(MARGIN_L, 0, o.w - MARGIN_L - MARGIN_R, o.h); o.ctx.clip(); }
function selLine(o) {
  if (selected === null) return;
  const x = xOf(o, SEG[selected].t), ctx = o.ctx;
  ctx.save(); ctx.strokeStyle = C.sel; ctx.setLineDash([4, 3]); ctx.lineWidth = 1;
  ctx.beginPath(); ctx.moveTo(x, 0); ctx.lineTo(x, o.h); ctx.stroke(); ctx.restore();
}
function segColor(s) {
  if (s.re) return C.retrans;
  if (s.flags & 4) return C.rst;
  if (s.flags & 3) return C.syn;
  if (s.marks.length) return C.mark;
  return s.len ? C.data : C.ack;
}
function stepIndex(ts, t) { return lowerBound(ts, t + 1) - 1; }

// ---------------------------------------------------------------- ladder
const LANE_TOP = 28, LANE_PAD = 26;
function ladderGeom(o) { return { ya: LANE_TOP, yb: o.h - LANE_PAD }; }
function arrowOf(o, s) {
  const g = ladderGeom(o), y0 = s.dir === 0 ? g.ya : g.yb, y1 = s.dir === 0 ? g.yb : g.ya;
  return { x0: xOf(o, s.t), y0, x1: xOf(o, s.t + OWD), y1 };
}
function segLabel(s) {
  if (!s.len && !(s.flags & 7)) {            // a pure ACK: what it acknowledges, and its SACK
    let t = (s.fl === "ACK" ? "" : s.fl + " ") + "ack " + s.ack;
    if (s.sack.length) t += " SACK " + s.sack[0][0] + "-" + s.sack[0][1] + (s.sack.length > 1 ? " (+" + (s.sack.length - 1) + ")" : "");
    return t;
  }
  let t = s.fl + " " + s.seq;
  if (s.len) t += ":" + (s.seq + s.len);
  if (s.flags & 16) t += " ack " + s.ack;
  return t;
}
function drawLadder() {
  const o = canvases["c-ladder"], ctx = o.ctx, g = ladderGeom(o);
  ctx.clearRect(0, 0, o.w, o.h);
  timeGrid(o, 0, o.h);
  ctx.font = "12px system-ui, sans-serif"; ctx.fillStyle = C.axis; ctx.textBaseline = "bottom"; ctx.textAlign = "left";
  ctx.strokeStyle = "#444"; ctx.lineWidth = 2;
  for (const [y, name, tag] of [[g.ya, D.conn.a, "A"], [g.yb, D.conn.b, "B"]]) {
    ctx.beginPath(); ctx.moveTo(MARGIN_L, y); ctx.lineTo(o.w - MARGIN_R, y); ctx.stroke();
    ctx.fillText(tag, 8, y + 6);
  }
  clipPlot(o);
  const [lo, hi] = visible(view.t0 - OWD, view.t1);
  const n = hi - lo, pxPer = (o.w - MARGIN_L) / Math.max(n, 1);
  ctx.lineWidth = n > 2000 ? 0.6 : 1.2;
  for (let k = lo; k < hi; k++) {
    const s = ORDER[k], a = arrowOf(o, s);
    ctx.strokeStyle = segColor(s); ctx.fillStyle = ctx.strokeStyle;
    ctx.beginPath(); ctx.moveTo(a.x0, a.y0); ctx.lineTo(a.x1, a.y1); ctx.stroke();
    if (pxPer > 4) arrowHead(ctx, a);
  }
  // Labels only where they fit whole: never cut, never overlapping (zoom in to read them).
  // Each direction has rows of its own, so a burst sent at one instant gets one row each.
  ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
  labelBoxes = [];
  const rows = Math.max(1, Math.floor((g.yb - g.ya - 40) / 2 / 15));   // clear of the names
  const taken = [[], []].map(() => Array.from({ length: rows }, () => []));   // [dir][row]: [x0, x1]
  const mid = (g.ya + g.yb) / 2;
  // The selected segment's label is placed first, so a crowd never hides it.
  const ks = [];
  if (n <= 4000) {                        // beyond that no label could fit anyway
    const sk = selected === null ? -1 : ORDER.findIndex(x => x.i === selected);
    if (sk >= lo && sk < hi) ks.push(sk);
    for (let k = lo; k < hi; k++) if (k !== sk) ks.push(k);
  }
  for (const k of ks) {
    const s = ORDER[k], a = arrowOf(o, s), text = segLabel(s), w = ctx.measureText(text).width;
    const x = (a.x0 + a.x1) / 2 - w / 2;
    if (x < MARGIN_L || x + w > o.w - MARGIN_R) continue;
    const row = taken[s.dir].findIndex(iv => iv.every(([l, r]) => x > r + 6 || x + w < l - 6));
    if (row < 0) continue;
    const y = s.dir === DD ? mid - 9 - row * 15 : mid + 9 + row * 15;
    ctx.fillStyle = "rgba(255,255,255,0.85)"; ctx.fillRect(x - 2, y - 7, w + 4, 14);
    ctx.fillStyle = segColor(s); ctx.fillText(text, x, y);
    if (s.i === selected) { ctx.strokeStyle = C.sel; ctx.lineWidth = 1; ctx.strokeRect(x - 2.5, y - 7.5, w + 5, 15); }
    taken[s.dir][row].push([x, x + w]);
    labelBoxes.push({ x0: x - 2, x1: x + w + 2, y0: y - 7, y1: y + 7, i: s.i });
  }
  if (selected !== null) {
    const a = arrowOf(o, SEG[selected]);
    ctx.strokeStyle = C.sel; ctx.lineWidth = 3.5; ctx.beginPath(); ctx.moveTo(a.x0, a.y0); ctx.lineTo(a.x1, a.y1); ctx.stroke();
  }
  ctx.restore();
  // The endpoints' names last, on a white ground: never hidden under the arrows.
  ctx.font = "12px system-ui, sans-serif"; ctx.textBaseline = "bottom"; ctx.textAlign = "left";
  for (const [y, name] of [[g.ya, D.conn.a], [g.yb, D.conn.b]]) {
    const w = ctx.measureText(name).width;
    ctx.fillStyle = "rgba(255,255,255,0.9)"; ctx.fillRect(MARGIN_L + 2, y - 17, w + 6, 15);
    ctx.fillStyle = C.axis; ctx.fillText(name, MARGIN_L + 5, y - 3);
  }
  selLine(o);
}
function arrowHead(ctx, a) {
  const ang = Math.atan2(a.y1 - a.y0, a.x1 - a.x0), L = 7;
  ctx.beginPath(); ctx.moveTo(a.x1, a.y1);
  ctx.lineTo(a.x1 - L * Math.cos(ang - 0.4), a.y1 - L * Math.sin(ang - 0.4));
  ctx.lineTo(a.x1 - L * Math.cos(ang + 0.4), a.y1 - L * Math.sin(ang + 0.4));
  ctx.closePath(); ctx.fill();
}
function distToSeg(px, py, a) {
  const dx = a.x1 - a.x0, dy = a.y1 - a.y0, l2 = dx * dx + dy * dy || 1;
  const u = Math.max(0, Math.min(1, ((px - a.x0) * dx + (py - a.y0) * dy) / l2));
  return Math.hypot(px - (a.x0 + u * dx), py - (a.y0 + u * dy));
}
let labelBoxes = [];
function hitLadder(o, x, y) {
  const box = labelBoxes.find(b => x >= b.x0 && x <= b.x1 && y >= b.y0 && y <= b.y1);
  if (box) return box.i;
  const [lo, hi] = visible(tOf(o, x - 40) - OWD, tOf(o, x + 40));
  let best = null, bd = 7;
  for (let k = lo; k < hi; k++) { const d = distToSeg(x, y, arrowOf(o, ORDER[k])); if (d < bd) { bd = d; best = ORDER[k].i; } }
  return best;
}

// ---------------------------------------------------------------- Stevens graph
const DATA_SEGS = ORDER.filter(s => s.dir === DD && (s.len || (s.flags & 3)));
const DATA_TS = DATA_SEGS.map(s => s.t);
const ACKS = ORDER.filter(s => s.dir !== DD && (s.flags & 16));
const ACK_TS = ACKS.map(s => s.t);
let stevensY = null;
function drawStevens() {
  const o = canvases["c-stevens"], ctx = o.ctx, top = 8, bottom = o.h - 8;
  ctx.clearRect(0, 0, o.w, o.h);
  const [dlo, dhi] = [lowerBound(DATA_TS, view.t0), lowerBound(DATA_TS, view.t1 + 1)];
  const [alo, ahi] = [Math.max(lowerBound(ACK_TS, view.t0) - 1, 0), lowerBound(ACK_TS, view.t1 + 1)];
  let lo = Infinity, hi = -Infinity;
  for (let k = dlo; k < dhi; k++) { const s = DATA_SEGS[k]; lo = Math.min(lo, s.seq); hi = Math.max(hi, s.seq + Math.max(s.len, 1)); }
  for (let k = alo; k < ahi; k++) { lo = Math.min(lo, ACKS[k].ack); hi = Math.max(hi, ACKS[k].ack); }
  if (!isFinite(lo)) { lo = 0; hi = 1; }
  const pad = (hi - lo) * 0.06 || 1; lo = Math.max(0, lo - pad); hi += pad;
  timeGrid(o, top, bottom);
  const y = yAxis(o, lo, hi, top, bottom, tr("seqrel"));
  stevensY = y;
  clipPlot(o);
  // receive window edge and cumulative ACK as step lines
  for (const [key, col] of [["win", C.win], ["ack", C.ackline]]) {
    ctx.strokeStyle = col; ctx.lineWidth = 1.2; ctx.beginPath();
    let first = true, prev = null;
    for (let k = alo; k < ahi; k++) {
      const s = ACKS[k], v = key === "ack" ? s.ack : s.ack + s.win, x = xOf(o, s.t);
      if (first) { ctx.moveTo(x, y(v)); first = false; } else { ctx.lineTo(x, y(prev)); ctx.lineTo(x, y(v)); }
      prev = v;
    }
    if (prev !== null) ctx.lineTo(o.w, y(prev));
    ctx.stroke();
  }
  ctx.strokeStyle = C.sackb; ctx.lineWidth = 3; ctx.globalAlpha = 0.7; ctx.beginPath();
  for (let k = alo; k < ahi; k++) { const s = ACKS[k], x = xOf(o, s.t); for (const [l, r] of s.sack) { ctx.moveTo(x, y(l)); ctx.lineTo(x, y(r)); } }
  ctx.stroke(); ctx.globalAlpha = 1;
  for (let k = dlo; k < dhi; k++) {
    const s = DATA_SEGS[k], x = xOf(o, s.t), y0 = y(s.seq), y1 = y(s.seq + Math.max(s.len, 1));
    ctx.strokeStyle = s.re ? C.retrans : (s.flags & 3 ? C.syn : C.data); ctx.lineWidth = s.re ? 2 : 1.2;
    ctx.beginPath(); ctx.moveTo(x, y0); ctx.lineTo(x, y1); ctx.moveTo(x - 3, y1); ctx.lineTo(x + 3, y1); ctx.stroke();
    if (s.re) { ctx.beginPath(); ctx.arc(x, y1, 4.5, 0, 2 * Math.PI); ctx.stroke(); }
  }
  if (selected !== null) {
    const s = SEG[selected], x = xOf(o, s.t);
    const v0 = s.dir === DD ? s.seq : s.ack, v1 = s.dir === DD ? s.seq + Math.max(s.len, 1) : s.ack;
    ctx.strokeStyle = C.sel; ctx.lineWidth = 2; ctx.beginPath(); ctx.arc(x, (y(v0) + y(v1)) / 2, 7, 0, 2 * Math.PI); ctx.stroke();
  }
  ctx.restore();
  selLine(o);
}
function hitStevens(o, x, yy) {
  if (!stevensY) return null;
  let best = null, bd = 8;
  const [dlo, dhi] = [lowerBound(DATA_TS, tOf(o, x - 10)), lowerBound(DATA_TS, tOf(o, x + 10))];
  for (let k = dlo; k < dhi; k++) {
    const s = DATA_SEGS[k], sx = xOf(o, s.t), y0 = stevensY(s.seq + Math.max(s.len, 1)), y1 = stevensY(s.seq);
    const d = Math.abs(sx - x) + (yy < y0 ? y0 - yy : yy > y1 ? yy - y1 : 0);
    if (d < bd) { bd = d; best = s.i; }
  }
  const [alo, ahi] = [lowerBound(ACK_TS, tOf(o, x - 10)), lowerBound(ACK_TS, tOf(o, x + 10))];
  for (let k = alo; k < ahi; k++) {
    const s = ACKS[k], d = Math.abs(xOf(o, s.t) - x) + Math.abs(stevensY(s.ack) - yy);
    if (d < bd) { bd = d; best = s.i; }
  }
  return best;
}

// ---------------------------------------------------------------- line panels
function stepLine(o, ts, vs, y, color, width, dash) {
  const ctx = o.ctx, lo = Math.max(lowerBound(ts, view.t0) - 1, 0), hi = Math.min(lowerBound(ts, view.t1 + 1) + 1, ts.length);
  ctx.strokeStyle = color; ctx.lineWidth = width; ctx.setLineDash(dash || []); ctx.beginPath();
  let pen = false, prev = null;
  for (let k = lo; k < hi; k++) {
    const v = vs[k], x = xOf(o, ts[k]);
    if (v === null || v === undefined) { if (pen && prev !== null) ctx.lineTo(x, y(prev)); pen = false; prev = null; continue; }
    if (!pen) { ctx.moveTo(x, y(v)); pen = true; } else { ctx.lineTo(x, y(prev)); ctx.lineTo(x, y(v)); }
    prev = v;
  }
  if (pen && prev !== null && hi === ts.length) ctx.lineTo(xOf(o, DUR), y(prev));
  ctx.stroke(); ctx.setLineDash([]);
}
function rangeMax(ts, vs, floor) {
  const lo = Math.max(lowerBound(ts, view.t0) - 1, 0), hi = Math.min(lowerBound(ts, view.t1 + 1) + 1, ts.length);
  let m = floor; for (let k = lo; k < hi; k++) if (vs[k] !== null && vs[k] > m) m = vs[k];
  return m;
}
const CC = D.cc;
const IF_TS = D.inflight.map(p => p[0]);
const IF_SEG = D.inflight.map(p => p[1] / Math.max(D.mss, 1));
function drawCc() {
  const o = canvases["c-cc"], ctx = o.ctx, top = 8, bottom = o.h - 8;
  ctx.clearRect(0, 0, o.w, o.h);
  let hi = rangeMax(IF_TS, IF_SEG, 1);
  if (CC) { hi = Math.max(rangeMax(CC.t, CC.cwnd, 1), rangeMax(CC.t, CC.ssthresh, 1), hi); }
  timeGrid(o, top, bottom);
  const y = yAxis(o, 0, hi * 1.1, top, bottom, tr("segs"));
  clipPlot(o);
  ctx.globalAlpha = 0.9; stepLine(o, IF_TS, IF_SEG, y, C.inflight, 1.2); ctx.globalAlpha = 1;
  if (CC) {
    stepLine(o, CC.t, CC.cwnd, y, C.cwnd, 2.6);
    // ssthresh after cwnd, dashed and thinner: visible even where it equals cwnd.
    stepLine(o, CC.t, CC.ssthresh, y, C.ssthresh, 1.6, [6, 4]);
    ctx.strokeStyle = C.retrans; ctx.lineWidth = 2;
    for (let k = 0; k < CC.t.length; k++) if (CC.event[k] === "rto" && CC.t[k] >= view.t0 && CC.t[k] <= view.t1) {
      const x = xOf(o, CC.t[k]), yy = y(CC.cwnd[k]);
      ctx.beginPath(); ctx.moveTo(x - 5, yy - 5); ctx.lineTo(x + 5, yy + 5); ctx.moveTo(x + 5, yy - 5); ctx.lineTo(x - 5, yy + 5); ctx.stroke();
    }
  }
  ctx.restore(); selLine(o);
}
const RTT_TS = D.rtt.map(p => p[0]), RTT_MS = D.rtt.map(p => p[1] / 1000);
const CC_SRTT = CC ? CC.srtt.map(v => v === null ? null : v / 1000) : [];
const CC_RTO = CC ? CC.rto.map(v => v / 1000) : [];
function drawRtt() {
  const o = canvases["c-rtt"], ctx = o.ctx, top = 8, bottom = o.h - 8;
  ctx.clearRect(0, 0, o.w, o.h);
  let hi = rangeMax(RTT_TS, RTT_MS, 0.001);
  if (CC) hi = Math.max(hi, rangeMax(CC.t, CC_SRTT, 0), rangeMax(CC.t, CC_RTO, 0));
  timeGrid(o, top, bottom);
  const y = yAxis(o, 0, hi * 1.1, top, bottom, tr("ms"));
  clipPlot(o);
  if (CC) { stepLine(o, CC.t, CC_RTO, y, C.rto, 1.4, [5, 3]); stepLine(o, CC.t, CC_SRTT, y, C.srtt, 2); }
  ctx.fillStyle = "#555";
  const lo = lowerBound(RTT_TS, view.t0), hi2 = lowerBound(RTT_TS, view.t1 + 1);
  for (let k = lo; k < hi2; k++) { ctx.beginPath(); ctx.arc(xOf(o, RTT_TS[k]), y(RTT_MS[k]), 2, 0, 2 * Math.PI); ctx.fill(); }
  ctx.restore(); selLine(o);
}
const SB_TS = D.sack.map(p => p[0]);
function drawSack() {
  const o = canvases["c-sack"], ctx = o.ctx, top = 8, bottom = o.h - 8;
  ctx.clearRect(0, 0, o.w, o.h);
  const lo = Math.max(lowerBound(SB_TS, view.t0) - 1, 0), hi = lowerBound(SB_TS, view.t1 + 1);
  let m = 1;
  for (let k = lo; k < hi; k++) { const [, ack, rs] = D.sack[k]; for (const r of rs) m = Math.max(m, r[1] - ack); }
  timeGrid(o, top, bottom);
  const y = yAxis(o, 0, m * 1.1, top, bottom, tr("above"));
  clipPlot(o);
  ctx.fillStyle = C.sackb; ctx.globalAlpha = 0.75;
  for (let k = lo; k < hi; k++) {
    const [t, ack, rs] = D.sack[k], x0 = xOf(o, t), x1 = k + 1 < D.sack.length ? xOf(o, D.sack[k + 1][0]) : xOf(o, DUR);
    for (const [l, r] of rs) ctx.fillRect(x0, y(r - ack), Math.max(x1 - x0, 1.5), Math.max(y(l - ack) - y(r - ack), 1.5));
  }
  ctx.globalAlpha = 1; ctx.restore(); selLine(o);
}
function drawAxis(id) {
  const o = canvases[id], ctx = o.ctx, step = niceStep(view.t1 - view.t0, (o.w - MARGIN_L) / 110);
  ctx.clearRect(0, 0, o.w, o.h);
  ctx.font = "11px system-ui, sans-serif"; ctx.fillStyle = C.axis; ctx.strokeStyle = C.axis; ctx.textAlign = "center"; ctx.textBaseline = "top";
  ctx.beginPath(); ctx.moveTo(MARGIN_L, 0.5); ctx.lineTo(o.w - MARGIN_R, 0.5);
  for (let t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
    const x = Math.round(xOf(o, t)) + 0.5; ctx.moveTo(x, 0); ctx.lineTo(x, 5);
    ctx.fillText(fmtTime(Math.abs(t) < step / 1e6 ? 0 : t, step), x, 7);
  }
  ctx.stroke();
  ctx.textAlign = "left"; ctx.fillText(tr("since"), MARGIN_L, 21);
}
function drawOverview() {
  const o = canvases.overview, ctx = o.ctx;
  ctx.clearRect(0, 0, o.w, o.h);
  const X = t => MARGIN_L + (t - FULL.t0) / (FULL.t1 - FULL.t0) * (o.w - MARGIN_L - MARGIN_R);
  const bins = new Float32Array(Math.max(1, Math.floor(o.w - MARGIN_L - MARGIN_R))), bre = new Float32Array(bins.length);
  for (const s of SEG) { const b = Math.min(bins.length - 1, Math.max(0, Math.floor(X(s.t) - MARGIN_L))); bins[b]++; if (s.re) bre[b]++; }
  const mx = Math.max(1, ...bins);
  for (let b = 0; b < bins.length; b++) {
    if (!bins[b]) continue;
    const h = 4 + (o.h - 8) * bins[b] / mx;
    ctx.fillStyle = bre[b] ? C.retrans : C.data; ctx.fillRect(MARGIN_L + b, o.h - h, 1, h);
  }
  ctx.fillStyle = "rgba(31,58,147,0.12)"; ctx.strokeStyle = C.data;
  const a = X(view.t0), b = X(view.t1);
  ctx.fillRect(a, 0, Math.max(b - a, 2), o.h); ctx.strokeRect(a + 0.5, 0.5, Math.max(b - a, 2), o.h - 1);
}

let pending = false;
function draw() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; drawLadder(); drawStevens(); drawCc(); drawRtt(); drawSack(); drawAxis("c-axis"); drawAxis("c-axis-top"); drawOverview(); });
}

// ---------------------------------------------------------------- interaction
function clampView() {
  const span = Math.min(Math.max(view.t1 - view.t0, 20), FULL.t1 - FULL.t0);
  let t0 = Math.max(FULL.t0, Math.min(view.t0, FULL.t1 - span));
  view.t0 = t0; view.t1 = t0 + span;
}
function zoom(factor, tc) {
  if (tc === undefined) tc = (view.t0 + view.t1) / 2;
  view.t0 = tc - (tc - view.t0) * factor; view.t1 = tc + (view.t1 - tc) * factor;
  clampView(); draw();
}
const hitters = { "c-ladder": hitLadder, "c-stevens": hitStevens };
for (const id of ["c-ladder", "c-stevens", "c-cc", "c-rtt", "c-sack"]) {
  const o = setupCanvas(id), cv = o.cv;
  cv.addEventListener("wheel", ev => {
    ev.preventDefault();
    const r = cv.getBoundingClientRect();
    if (ev.shiftKey || Math.abs(ev.deltaX) > Math.abs(ev.deltaY)) {
      const d = (ev.deltaX || ev.deltaY) / (o.w - MARGIN_L) * (view.t1 - view.t0);
      view.t0 += d; view.t1 += d; clampView(); draw();
    } else zoom(Math.pow(1.0015, ev.deltaY), tOf(o, ev.clientX - r.left));
  }, { passive: false });
  let drag = null;
  cv.addEventListener("mousedown", ev => { drag = { x: ev.clientX, t0: view.t0, t1: view.t1, moved: false }; });
  window.addEventListener("mousemove", ev => {
    if (!drag) return;
    const dx = ev.clientX - drag.x;
    if (Math.abs(dx) > 3) { drag.moved = true; cv.classList.add("grab"); }
    if (drag.moved) {
      const d = dx / (o.w - MARGIN_L - MARGIN_R) * (drag.t1 - drag.t0);
      view.t0 = drag.t0 - d; view.t1 = drag.t1 - d; clampView(); draw();
    }
  });
  window.addEventListener("mouseup", ev => {
    if (!drag) return;
    const moved = drag.moved; drag = null; cv.classList.remove("grab");
    if (moved || ev.target !== cv) return;
    const r = cv.getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    let hit = hitters[id] ? hitters[id](o, x, y) : null;
    if (hit === null) {           // elsewhere: the segment nearest in time
      const k = lowerBound(TS, tOf(o, x));
      const cands = [ORDER[k - 1], ORDER[k]].filter(Boolean);
      const best = cands.sort((a, b) => Math.abs(xOf(o, a.t) - x) - Math.abs(xOf(o, b.t) - x))[0];
      if (best && Math.abs(xOf(o, best.t) - x) < 8) hit = best.i;
    }
    if (hit !== null) select(hit, false);
  });
}
setupCanvas("c-axis"); setupCanvas("c-axis-top");
const ov = setupCanvas("overview");
let ovDrag = false;
function ovMove(ev) {
  const r = ov.cv.getBoundingClientRect();
  const t = FULL.t0 + (ev.clientX - r.left - MARGIN_L) / (ov.w - MARGIN_L - MARGIN_R) * (FULL.t1 - FULL.t0);
  const span = view.t1 - view.t0; view.t0 = t - span / 2; view.t1 = t + span / 2; clampView(); draw();
}
ov.cv.addEventListener("mousedown", ev => { ovDrag = true; ovMove(ev); });
window.addEventListener("mousemove", ev => { if (ovDrag) ovMove(ev); });
window.addEventListener("mouseup", () => { ovDrag = false; });

function reveal(s) {
  const span = view.t1 - view.t0, m = span * 0.08;
  if (s.t < view.t0 + m || s.t + OWD > view.t1 - m) { view.t0 = s.t - span / 2; view.t1 = s.t + span / 2; clampView(); }
}
function select(i, scroll) {
  selected = i;
  if (scroll) reveal(SEG[i]);
  showDetail(); draw();
}
function step(dk) {
  let k = selected === null ? (dk > 0 ? -1 : ORDER.length) : ORDER.findIndex(s => s.i === selected);
  k = Math.max(0, Math.min(ORDER.length - 1, k + dk));
  select(ORDER[k].i, true);
}
function colWidth(s) {              // display columns, a CJK character counting two (as header.py)
  let w = 0;
  for (const ch of s) w += /[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6]/.test(ch) ? 2 : 1;
  return w;
}
function escapeHtml(s) { return s.replace(/[&<>]/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;" }[c])); }
function showDetail() {
  const pos = document.getElementById("pos");
  if (selected === null) { pos.textContent = tr("seg") + " – " + tr("of") + " " + SEG.length; return; }
  const s = SEG[selected], k = ORDER.findIndex(x => x.i === selected);
  pos.textContent = tr("seg") + " " + (k + 1) + " " + tr("of") + " " + SEG.length;
  const src = s.dir === 0 ? D.conn.a : D.conn.b, dst = s.dir === 0 ? D.conn.b : D.conn.a;
  document.getElementById("sel-title").textContent = "#" + s.n + "  " + src + " → " + dst + "  [" + s.fl + "]";
  let facts = tr("time") + " " + fmtTimeFine(s.t) + " · seq " + s.seq + (s.flags & 16 ? " · ack " + s.ack : "") +
              " · " + tr("len") + " " + s.len + " · " + tr("win_") + " " + s.win;
  if (CC) {
    const k2 = stepIndex(CC.t, s.t);
    if (k2 >= 0) facts += " · cwnd " + CC.cwnd[k2] + " · ssthresh " + (CC.ssthresh[k2] === null ? "∞" : CC.ssthresh[k2]) + " · " + tr("ca") + " " + CC.state[k2];
  }
  document.getElementById("sel-facts").textContent = facts;
  const ul = document.getElementById("sel-marks"), r = D.reasons[String(selected)];
  ul.innerHTML = "";
  const items = r ? r[lang] : [];
  if (!items.length) { const li = document.createElement("li"); li.textContent = tr("nomarks"); ul.appendChild(li); }
  for (const text of items) {
    const li = document.createElement("li"), cut = text.search(/[:：]/);
    li.className = "mark";
    li.innerHTML = "<b>" + escapeHtml(text.slice(0, cut)) + "</b>" + escapeHtml(text.slice(cut));
    ul.appendChild(li);
  }
  // One block per line, wrapped with a hanging indent: nothing is cut at the panel's edge.
  const pre = document.getElementById("dissection");
  pre.innerHTML = "";
  for (const line of (DIS ? DIS[lang][selected] : tr("decoding")).split("\n")) {
    const div = document.createElement("div");
    // Continuation lines start under the value column (after the label and its spaces).
    const m = /^(\s*\S.*?\s{2,})\S/.exec(line);
    const hang = Math.min(m ? colWidth(m[1]) : colWidth(line) - colWidth(line.trimStart()) + 4, 40);
    div.style.paddingLeft = hang + "ch"; div.style.textIndent = -hang + "ch";
    div.textContent = line || "\u00a0";
    pre.appendChild(div);
  }
}
function legend(id, items) {
  document.getElementById(id).innerHTML = items.map(([cls, col, key]) =>
    '<span><i class="sw ' + cls + '" style="border-color:' + col + (cls === "box" ? ";background:" + col : "") + '"></i>' + escapeHtml(tr(key)) + "</span>").join("");
}
function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = tr(el.dataset.t);
  document.getElementById("play").textContent = tr(playing ? "pause" : "play");
  for (const b of document.querySelectorAll("[data-lang]")) b.classList.toggle("on", b.dataset.lang === lang);
  document.getElementById("title").textContent = D.title;
  document.getElementById("sub").textContent = D.file + " · " + D.packets + " " + tr("packets") + " · " + tr("conn") + " " +
    D.conn.number + " (" + D.connections + " " + tr("conns") + "): A " + D.conn.a + " ⇄ B " + D.conn.b;
  document.getElementById("warnings").textContent = D.warnings.join(" ");
  document.getElementById("notes").textContent = D.notes[lang] || D.notes.en || "";
  legend("lg-ladder", [["", C.data, "data"], ["", C.ack, "ack"], ["", C.syn, "syn"], ["", C.rst, "rst"],
                       ["", C.retrans, "retrans"], ["", C.mark, "dup"], ["", C.sel, "selected"]]);
  document.getElementById("lg-ladder").insertAdjacentHTML("beforeend", '<span class="note">' + escapeHtml(tr("slant")) + "</span>");
  legend("lg-stevens", [["", C.data, "dataseg"], ["dot", C.retrans, "retrans"], ["", C.ackline, "ackline"],
                        ["", C.win, "win"], ["", C.sackb, "sackb"]]);
  legend("lg-cc", CC ? [["", C.cwnd, "cwnd"], ["dash", C.ssthresh, "ssthresh"], ["", C.inflight, "inflight"], ["", C.retrans, "rtoev"]]
                     : [["", C.inflight, "inflight"]]);
  document.getElementById("cc-note").textContent = CC ? (CC.aligned ? "" : tr("unaligned")) : tr("nocc");
  legend("lg-rtt", CC ? [["", C.srtt, "srtt"], ["dash", C.rto, "rtoline"], ["dot", "#555", "rttsample"]] : [["dot", "#555", "rttsample"]]);
  legend("lg-sack", [["box", C.sackb, "board"]]);
  showDetail(); draw();
}
for (const b of document.querySelectorAll("[data-lang]")) b.addEventListener("click", () => { lang = b.dataset.lang; applyLang(); });
document.getElementById("zoom-in").addEventListener("click", () => zoom(0.5));
document.getElementById("zoom-out").addEventListener("click", () => zoom(2));
document.getElementById("zoom-fit").addEventListener("click", () => { view.t0 = FULL.t0; view.t1 = FULL.t1; draw(); });
document.getElementById("prev").addEventListener("click", () => step(-1));
document.getElementById("next").addEventListener("click", () => step(1));
document.getElementById("play").addEventListener("click", () => {
  if (playing) { clearInterval(playing); playing = null; }
  else playing = setInterval(() => { if (selected !== null && ORDER[ORDER.length - 1].i === selected) { clearInterval(playing); playing = null; applyLang(); } else step(1); }, 600);
  applyLang();
});
window.addEventListener("keydown", ev => {
  if (ev.key === "ArrowRight") { step(1); ev.preventDefault(); }
  else if (ev.key === "ArrowLeft") { step(-1); ev.preventDefault(); }
  else if (ev.key === "+" || ev.key === "=") zoom(0.5);
  else if (ev.key === "-") zoom(2);
});
window.addEventListener("resize", resize);

async function inflate(b64) {
  const bin = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
  const stream = new Blob([bin]).stream().pipeThrough(new DecompressionStream("deflate"));
  return JSON.parse(await new Response(stream).text());
}
// For tests and for the curious: the page's state, and where a segment is drawn.
window.synackReport = {
  data: D, view, ready: false,
  select: i => select(i, true),
  selected: () => selected,
  lang: () => lang,
  labels: () => labelBoxes.map(b => ({ i: b.i, x: (b.x0 + b.x1) / 2, y: (b.y0 + b.y1) / 2 })),
  labelBox(i) {
    const b = labelBoxes.find(x => x.i === i), r = canvases["c-ladder"].cv.getBoundingClientRect();
    return b ? { x: (b.x0 + b.x1) / 2, y: (b.y0 + b.y1) / 2, left: r.left, top: r.top } : null;
  },
  ladderPoint(i) {
    const o = canvases["c-ladder"], a = arrowOf(o, SEG[i]), r = o.cv.getBoundingClientRect();
    return { x: (a.x0 + a.x1) / 2, y: (a.y0 + a.y1) / 2, left: r.left, top: r.top, w: r.width, h: r.height };
  },
  stevensPoint(i) {
    const o = canvases["c-stevens"], s = SEG[i];
    if (!stevensY) return null;
    return { x: xOf(o, s.t), y: (stevensY(s.seq) + stevensY(s.seq + Math.max(s.len, 1))) / 2 };
  },
  drawn: () => !pending,
  showRange(t0, t1) { view.t0 = t0; view.t1 = t1; clampView(); draw(); },
};
selected = ORDER.length ? ORDER[0].i : null;
applyLang(); resize();
inflate(D.dis_z).then(d => { DIS = d; window.synackReport.ready = true; showDetail(); },
                      e => { document.getElementById("dissection").textContent = String(e); });
})();
