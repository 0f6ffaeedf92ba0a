// gpuskew monitor dashboard: renders /api/state, live through the /api/stream server-sent events.
// Every value from the server is written with textContent (never as HTML).
"use strict";

const SEVERITY = { ok: 0, warn: 1, breach: 2, critical: 3 };
let state = null;
let lastMessage = 0;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function fmt(x, digits) {
  if (x === null || x === undefined || !isFinite(x)) return "n/a";
  const a = Math.abs(x);
  if (a === 0 && digits === undefined) return "0";
  const d = digits !== undefined ? digits : (a >= 1000 ? 0 : a >= 1 ? 2 : 4);
  return x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

function usd(x) {
  if (x === null || x === undefined || !isFinite(x)) return "n/a";
  const a = Math.abs(x);
  if (a >= 1e9) return (x / 1e9).toFixed(2) + "B";
  if (a >= 1e6) return (x / 1e6).toFixed(2) + "M";
  if (a >= 1e3) return (x / 1e3).toFixed(1) + "k";
  return x.toFixed(0);
}

function signed(x, digits) {
  if (x === null || x === undefined || !isFinite(x)) return "n/a";
  return (x > 0 ? "+" : "") + fmt(x, digits);
}

function when(iso) {
  return iso ? iso.replace("T", " ").replace(/\.\d+Z$/, "").replace("Z", "") : "-";
}

function groupLabel(g) {
  if (g.level === "underlying") return "All (per underlying)";
  const tags = g.group || {};
  return g.level.split(",").map((t) => (t in tags ? tags[t] : "(no " + t + ")")).join(" / ");
}

function groupKey(g) {
  const tags = Object.entries(g.group || {}).map(([k, v]) => k + "=" + v).join(",");
  return g.underlying + "|" + g.level + "|" + tags;
}

function chip(status) {
  const s = status || "ok";
  return el("span", "chip " + (s in SEVERITY ? s : "ok"), s);
}

function bandBar(g) {
  const bar = el("div", "bar");
  const lo = g.half_width_lower, up = g.half_width_upper, t = g.target, a = g.actual;
  if (![lo, up, t, a].every((v) => v !== null && isFinite(v)) || lo + up <= 0) return bar;
  const min = t - 2 * lo, max = t + 2 * up, span = max - min;
  const pct = (v) => ((v - min) / span) * 100;
  const band = el("div", "band");
  band.style.left = pct(g.lower) + "%";
  band.style.width = (pct(g.upper) - pct(g.lower)) + "%";
  const target = el("div", "target");
  target.style.left = pct(t) + "%";
  const status = g.effective_status || g.status || "ok";
  const actual = el("div", "actual " + status);
  const p = pct(a);
  actual.style.left = Math.max(0, Math.min(100, p)) + "%";
  actual.title = "net " + fmt(a) + " vs band [" + fmt(g.lower) + ", " + fmt(g.upper) + "]";
  bar.append(band, target, actual);
  if (p < 0 || p > 100) {
    actual.classList.add("off");
    actual.textContent = p < 0 ? "\u25C0" : "\u25B6";
    actual.title = "off the chart: " + actual.title;
  }
  return bar;
}

function renderUnderlyings(s) {
  const root = document.getElementById("underlyings");
  root.replaceChildren();
  const list = (s.underlyings || []).filter((u) => (u.groups || []).length);
  document.getElementById("no-data").classList.toggle("hidden", list.length > 0);
  for (const u of list) {
    const card = el("section", "card " + (u.worst || "ok"));
    card.dataset.underlying = u.underlying;
    const h = el("h2");
    h.append(el("span", "name", u.underlying), el("span", "sub", "index " + fmt(u.spot)));
    if (u.delta !== undefined) {
      h.append(el("span", "sub", "net delta " + signed(u.delta) + " coins (" + usd(u.delta_usd) + " USD)"));
      h.append(el("span", "sub", fmt(u.n_positions, 0) + " positions"));
    }
    h.append(chip(u.worst));
    card.append(h);
    const table = el("table");
    const head = el("tr");
    for (const [name, cls] of [["Group", ""], ["Measure", ""], ["Net delta", "num"], ["Target", "num"],
      ["Band lower", "num"], ["Band upper", "num"], ["Position in band", ""], ["Skew", "num"],
      ["Deviation USD", "num"], ["Status", ""]]) head.append(el("th", cls, name));
    const thead = el("thead");
    thead.append(head);
    table.append(thead);
    const body = el("tbody");
    const groups = [...u.groups].sort((a, b) =>
      (a.level === "underlying" ? 0 : a.level.split(",").length) - (b.level === "underlying" ? 0 : b.level.split(",").length)
      || groupLabel(a).localeCompare(groupLabel(b)));
    for (const g of groups) {
      const tr = el("tr", g.level === "underlying" ? "total" : "");
      tr.dataset.group = groupKey(g);
      const name = el("td", "group");
      if (g.level !== "underlying") name.append(el("span", "lvl", g.level));
      name.append(document.createTextNode(groupLabel(g)));
      const status = g.effective_status || g.status;
      const net = el("td", "num net " + (g.actual >= 0 ? "pos" : "neg"), signed(g.actual));
      const skew = el("td", "num skew", signed(g.skew, 2));
      const st = el("td", "status");
      st.append(chip(status));
      if (g.status && g.status !== status) st.title = "raw status " + g.status + " (hysteresis)";
      const barCell = el("td");
      barCell.append(bandBar(g));
      tr.append(name, el("td", "", g.measure), net, el("td", "num", fmt(g.target)), el("td", "num", fmt(g.lower)),
        el("td", "num", fmt(g.upper)), barCell, skew, el("td", "num", usd(g.deviation_usd)), st);
      body.append(tr);
    }
    table.append(body);
    card.append(table);
    root.append(card);
  }
}

function renderHedges(s) {
  const body = document.querySelector("#hedges tbody");
  body.replaceChildren();
  const hedges = s.hedges || [];
  document.getElementById("no-hedges").classList.toggle("hidden", hedges.length > 0);
  document.getElementById("hedges").classList.toggle("hidden", hedges.length === 0);
  for (const h of hedges) {
    const tr = el("tr");
    const g = el("td");
    g.append(el("b", "", h.underlying), document.createTextNode(" " + groupLabel(h)));
    const trade = el("td");
    trade.append(el("span", "side-" + (h.side === "buy" ? "buy" : "sell"), (h.side || "").toUpperCase()),
      document.createTextNode(" " + fmt(Math.abs(h.contracts)) + " " + h.hedge_instrument));
    if (h.mode) trade.append(el("span", "mode", h.mode.replace("_", " ") + (h.lot_limited ? ", lot-limited" : "")));
    tr.append(g, trade, el("td", "num", signed(h.coin_delta)), el("td", "num", usd(h.est_cost_usd)));
    body.append(tr);
  }
}

function renderAlerts(s) {
  const list = document.getElementById("alerts");
  list.replaceChildren();
  const alerts = s.alerts || [];
  document.getElementById("no-alerts").classList.toggle("hidden", alerts.length > 0);
  for (const a of alerts.slice(0, 100)) {
    const li = el("li");
    const g = a.group || {};
    const tags = Object.entries(g).filter(([k]) => k !== "level" && k !== "underlying").map(([k, v]) => k + "=" + v);
    li.append(el("span", "when", when(a.as_of) + "  "), chip(a.kind === "cleared" ? "ok" : a.status));
    li.append(el("span", "what", a.kind + ": " + g.underlying + (tags.length ? " " + tags.join(", ") : "") +
      "  skew " + signed(a.skew, 2) + " (" + a.previous_status + " \u2192 " + a.status + ")"));
    li.append(el("span", "action", a.suggested_action || ""));
    list.append(li);
  }
}

function renderFeeds(s) {
  const root = document.getElementById("feeds");
  root.replaceChildren();
  const now = Date.now() / 1000;
  for (const f of s.feeds || []) {
    const age = f.age_s === null || f.age_s === undefined ? null : f.age_s + Math.max(0, now - (s.generated_at || now));
    const cls = age === null ? "stale" : age < 5 ? "fresh" : age < 30 ? "slow" : "stale";
    const d = el("span", "feed " + cls);
    d.title = f.kind + (f.error ? ": " + f.error : "");
    d.append(el("b", "", f.source));
    d.append(el("span", "age", age === null ? "no message yet" : fmt(age, 1) + " s ago" + (f.drained ? " (drained)" : "")));
    root.append(d);
  }
}

function renderHeader(s) {
  document.getElementById("as-of").textContent = s.as_of ? when(s.as_of) : "waiting for events";
  document.getElementById("score").textContent = s.score === null || s.score === undefined ? "-" : fmt(s.score, 3);
  const p = s.positions || {};
  document.getElementById("positions").textContent = p.priced === undefined ? "-" :
    fmt(p.priced, 0) + " priced" + (p.pending ? ", " + fmt(p.pending, 0) + " pending" : "");
  const ev = s.events || {};
  const sum = (o) => Object.values(o || {}).reduce((x, y) => x + y, 0);
  document.getElementById("events").textContent = fmt(sum(ev.applied), 0) + " / " + fmt(sum(ev.rejected), 0);
  tick();
}

function tick() {
  const out = document.getElementById("published");
  if (!state || !state.published_at) { out.textContent = "-"; return; }
  const age = Math.max(0, Date.now() / 1000 - state.published_at);
  out.textContent = "#" + state.publish + ", " + fmt(age, 1) + " s ago";
}

function render(s) {
  state = s;
  document.body.dataset.publish = s.publish === undefined ? "" : String(s.publish);
  renderHeader(s);
  renderFeeds(s);
  renderUnderlyings(s);
  renderHedges(s);
  renderAlerts(s);
}

function connect() {
  const conn = document.getElementById("conn");
  const source = new EventSource("/api/stream");
  source.addEventListener("state", (e) => {
    lastMessage = Date.now();
    conn.textContent = "live";
    conn.className = "pill live";
    try { render(JSON.parse(e.data)); } catch (err) { console.error(err); }
  });
  source.onerror = () => { conn.textContent = "reconnecting"; conn.className = "pill down"; };
}

window.addEventListener("DOMContentLoaded", () => {
  fetch("/api/state").then((r) => r.json()).then((s) => { if (s && s.status) render(s); }).catch(() => {});
  connect();
  setInterval(tick, 1000);
});
