// The c3t-edge live view: one panel per device, fed by server-sent events from ./events (no polling).
// Messages: {devices: [{name, meta?, status, plot?: {t, x}, events?: [...], state?: {...}}], sent_at, view}.
// window.c3t keeps what arrived (events per device, plot points, page-update delays) for tests and benchmarks.
"use strict";

const SHOWN_S = 8;            // seconds of signal on screen
const MAX_LOG = 200;          // event lines kept on screen per device
const COLORS = ["#e03131", "#2f9e44", "#1971c2"];

const c3t = window.c3t = { panels: {}, events: {}, delays: [], messages: 0, server: "connecting", view: null };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function percentile(values, p) {
  if (!values.length) return null;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))];
}

function fmt(v, digits = 1) { return v === null || v === undefined ? "–" : v.toFixed(digits); }

function setServer(state) {
  c3t.server = state;
  const b = document.getElementById("server");
  b.textContent = state;
  b.className = "badge " + state;
}

function makeChart(panel, unit, columns) {
  const host = el("div", "plot");
  panel.plots.appendChild(host);
  const series = [{ label: "t (s)" }].concat(columns.map((c, i) => ({
    label: `${panel.meta.channels[c]} (${unit})`, stroke: COLORS[i % COLORS.length], width: 1.5, points: { show: false },
  })));
  const opts = {
    width: Math.max(300, panel.plots.clientWidth || 600), height: 170, series,
    scales: { x: { time: false } }, cursor: { show: false }, legend: { show: true, live: false },
    axes: [{ label: "device time (s)" }, { label: unit }],
  };
  const chart = new uPlot(opts, [[]].concat(columns.map(() => [])), host);
  return { chart, columns };
}

function buildPanel(name, meta) {
  const root = el("section", "panel");
  root.dataset.device = name;
  const head = el("header");
  const title = el("h2", null, name);
  const info = el("span", "muted");
  const link = el("span", "badge waiting", "waiting");
  head.append(title, info, link);
  const grid = el("div", "grid");
  const plots = el("div", "plots");
  const side = el("div", "side");
  const decision = el("div", "decision");
  const label = el("span", "label", "–");
  const score = el("span", "score");
  decision.append(label, score);
  const probs = el("div", "probs");
  const status = el("table", "status");
  side.append(decision, probs, status);
  grid.append(plots, side);
  const log = el("ol", "events");
  root.append(head, grid, log);
  document.getElementById("panels").appendChild(root);
  const panel = { name, meta, root, info, link, plots, label, score, probs, status, log, charts: [], bars: [],
                  t: [], x: [], received: 0, delays: [] };
  setMeta(panel, meta);
  return panel;
}

function setMeta(panel, meta) {
  panel.meta = meta;
  const dev = meta.device;
  panel.info.textContent = [meta.port, dev && dev.name ? `device ${dev.name}` : null,
    dev ? `${dev.rate_hz} Hz` : null, meta.model ? `model ${meta.model}` : null].filter(Boolean).join(" · ");
  if (!panel.charts.length && meta.channels) {
    const byUnit = {};
    meta.channels.forEach((c, i) => { (byUnit[meta.units[i]] = byUnit[meta.units[i]] || []).push(i); });
    for (const unit of Object.keys(byUnit)) panel.charts.push(makeChart(panel, unit, byUnit[unit]));
  }
  if (!panel.bars.length && meta.labels) {
    for (const label of meta.labels) {
      const row = [el("span", "name", label), el("div", "bar"), el("span", "value", "–")];
      const fill = el("div");
      row[1].appendChild(fill);
      panel.probs.append(...row);
      panel.bars.push({ row, fill });
    }
  }
}

function addPlot(panel, plot) {
  for (let i = 0; i < plot.t.length; i++) {
    if (panel.t.length && plot.t[i] < panel.t[panel.t.length - 1]) { panel.t = []; panel.x = []; } // clock reset
    panel.t.push(plot.t[i]);
    panel.x.push(plot.x[i]);
  }
  panel.received += plot.t.length;
  const last = panel.t[panel.t.length - 1];
  let cut = 0;
  while (cut < panel.t.length && panel.t[cut] < last - SHOWN_S) cut++;
  if (cut) { panel.t.splice(0, cut); panel.x.splice(0, cut); }
  panel.dirtyPlot = true;
}

function drawPlot(panel) {
  for (const { chart, columns } of panel.charts) {
    chart.setData([panel.t].concat(columns.map(c => panel.x.map(row => row[c]))));
  }
  panel.dirtyPlot = false;
}

function describe(e) {
  const t = e.t !== undefined ? `${e.t.toFixed(2)} s` : "";
  switch (e.type) {
    case "action": return `${t}  ${e.label}  ${e.confidence.toFixed(2)}  (${e.latency_ms.toFixed(1)} ms)`;
    case "no_action": return `${t}  -- no action`;
    case "gap": return `${t}  gap ${e.duration_s === null ? "(device reset)" : e.duration_s.toFixed(2) + " s"}, ` +
      `${e.cause}, ${e.lost_frames} frames lost, ${e.filled ? "filled" : "windows restart"}`;
    case "link": return `link ${e.state}: ${e.reason}${e.gap_s ? ` (after ${e.gap_s.toFixed(2)} s)` : ""}`;
    case "device": return `device ${e.name || "(unnamed)"} fw ${e.firmware}: ${e.sample_rate_hz} Hz`;
    default: return e.message || e.type;
  }
}

function addEvents(panel, events) {
  const kept = c3t.events[panel.name];
  for (const e of events) {
    kept.push(e);
    panel.log.prepend(el("li", e.type, describe(e)));
  }
  while (panel.log.childElementCount > MAX_LOG) panel.log.lastChild.remove();
}

function noteState(panel, state, receivedAt) {
  if (receivedAt !== null) {
    const delay = receivedAt - state.decided_at * 1000;   // host clock: decision -> this page (ms)
    c3t.delays.push(delay);
    panel.delays.push(delay);
    if (panel.delays.length > 1000) panel.delays.shift();
  }
  panel.pendingState = state;
}

function drawState(panel, state) {
  panel.label.textContent = state.state || "no action";
  panel.score.textContent = state.score.toFixed(2);
  const p = state.probabilities;
  const top = p ? p.indexOf(Math.max(...p)) : -1;
  panel.bars.forEach((bar, i) => {
    const v = p ? p[i] : 0;
    bar.fill.style.width = `${(100 * v).toFixed(1)}%`;
    bar.row[2].textContent = p ? v.toFixed(2) : "still";
    bar.row.forEach(cell => cell.classList.toggle("best", i === top));
  });
}

function setStatus(panel, s) {
  panel.link.textContent = s.link;
  panel.link.className = "badge " + s.link;
  const rows = [
    ["link", s.link], ["frames", s.frames], ["lost frames", s.lost], ["corrupt frames", s.corrupt],
    ["gaps", s.gaps], ["reconnects", s.reconnects],
    ["window latency p50 / p99", `${fmt(s.latency_p50_ms, 2)} / ${fmt(s.latency_p99_ms, 2)} ms`],
    ["page update delay p50 / p99", `${fmt(percentile(panel.delays, 50))} / ${fmt(percentile(panel.delays, 99))} ms`],
  ];
  panel.status.replaceChildren(...rows.map(([k, v]) => {
    const tr = el("tr");
    tr.append(el("td", "muted", k), el("td", null, String(v)));
    return tr;
  }));
}

// Messages are noted as they arrive (receipt time stamped at once); the screen is redrawn once per
// animation frame, whatever the number of messages in between.
let drawScheduled = false;

function draw() {
  drawScheduled = false;
  for (const panel of Object.values(c3t.panels)) {
    if (panel.dirtyPlot) drawPlot(panel);
    if (panel.pendingState) { drawState(panel, panel.pendingState); panel.pendingState = null; }
    if (panel.pendingStatus) { setStatus(panel, panel.pendingStatus); panel.pendingStatus = null; }
  }
  const v = c3t.view;
  if (v) {
    document.getElementById("view-counters").textContent =
      `${c3t.messages} updates; skipped while busy: ${v.coalesced} merged, ${v.dropped_samples} plot samples`;
  }
}

function receive(message, fresh) {
  const receivedAt = performance.timeOrigin + performance.now();
  const msg = JSON.parse(message.data);
  c3t.messages++;
  c3t.view = msg.view;
  for (const d of msg.devices) {
    let panel = c3t.panels[d.name];
    if (!panel) {
      panel = c3t.panels[d.name] = buildPanel(d.name, d.meta || {});
      c3t.events[d.name] = [];
    } else if (d.meta) {
      setMeta(panel, d.meta);
    }
    if (fresh) { panel.t = []; panel.x = []; c3t.events[d.name] = []; panel.log.replaceChildren(); }
    if (d.plot) addPlot(panel, d.plot);
    if (d.events) addEvents(panel, d.events);
    if (d.state) noteState(panel, d.state, fresh ? null : receivedAt);  // a snapshot's state is older than the page
    panel.pendingStatus = d.status;
  }
  if (!drawScheduled) { drawScheduled = true; requestAnimationFrame(draw); }
}

const source = new EventSource("events");  // relative: the page also works behind a reverse proxy's path prefix
source.onopen = () => setServer("connected");
source.onerror = () => setServer(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
source.addEventListener("snapshot", m => receive(m, true));
source.addEventListener("update", m => receive(m, false));
source.addEventListener("end", m => { receive(m, false); source.close(); setServer("ended"); draw(); });
window.addEventListener("resize", () => {
  for (const panel of Object.values(c3t.panels)) {
    for (const { chart } of panel.charts) chart.setSize({ width: Math.max(300, panel.plots.clientWidth), height: 170 });
  }
});
