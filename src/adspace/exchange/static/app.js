/* adspace dashboard: vanilla JS, SVG charts, no network but this exchange's own API.
 *
 * The API key lives in sessionStorage (this tab only) and goes out as "Authorization: Bearer".
 * Every string from the server is put on the page as text (never as HTML).
 */
"use strict";

const KEY = "adspace.key";
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"];
const state = { me: null, market: null };

// -- small helpers ---------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const SVGNS = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
const $ = (sel) => document.querySelector(sel);

function money(micros) {
  if (micros === null || micros === undefined) return "–";
  const v = Number(micros) / 1e6;
  const digits = Math.abs(v) > 0 && Math.abs(v) < 0.01 ? 6 : 2;
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: Math.max(digits, 4) });
}
const toMicros = (v) => Math.round(Number(v) * 1e6);
const num = (v, d = 4) => (v === null || v === undefined ? "–" : Number(v).toFixed(d));
const pct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");
const shortId = (id) => (id ? id.slice(0, 12) + "…" : "–");
const plural = (n, one, many) => `${n} ${n === 1 ? one : many || one + "s"}`;
const present = (v) => v !== null && v !== undefined && v !== "";

function toast(msg, isError) {
  const t = $("#toast");
  t.textContent = msg;
  t.className = "toast show" + (isError ? " error" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.className = "toast"), isError ? 6000 : 2500);
}

function errorText(body, status) {
  if (!body) return `HTTP ${status}`;
  const d = body.detail;
  if (Array.isArray(d)) return d.map((e) => {
    const loc = (e.loc || []).filter((x) => x !== "body" && x !== "query").join(".");
    const msg = String(e.msg || "").replace(/^Value error, /, "");
    return loc && !msg.startsWith(loc + ":") ? `${loc}: ${msg}` : msg;
  }).join("; ");
  return typeof d === "string" ? d : `HTTP ${status}`;
}

async function api(method, path, body) {
  const key = sessionStorage.getItem(KEY);
  const opts = { method, headers: { Authorization: `Bearer ${key}` } };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (r.status === 401 && path !== "/v1/me") { signOut(); throw new Error("Your key is no longer valid: sign in again."); }
  if (!r.ok) throw new Error(errorText(data, r.status));
  return data;
}

function guard(fn) {
  return async (ev) => {
    if (ev && ev.preventDefault) ev.preventDefault();
    const btn = ev && ev.submitter ? ev.submitter : ev && ev.currentTarget && ev.currentTarget.tagName === "BUTTON" ? ev.currentTarget : null;
    if (btn) btn.disabled = true;
    try { await fn(ev); } catch (e) { toast(e.message, true); } finally { if (btn) btn.disabled = false; }
  };
}

// -- sign in, tabs, routing ------------------------------------------------------------------------

const VIEWS = {
  advertiser: [["campaigns", "Campaigns"], ["performance", "Spend & win rate"], ["ledger", "Ledger"], ["market", "Market map"]],
  publisher: [["auctions", "Auctions"], ["performance", "Fill rate & revenue"], ["ledger", "Ledger"], ["market", "Market map"]],
  admin: [["log", "Auction log"], ["revenue", "Revenue"], ["accounts", "Accounts"], ["market", "Market map"]],
};

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    state.me = await api("GET", "/v1/me");
  } catch (e) {
    sessionStorage.removeItem(KEY);
    throw e;
  }
  renderChrome();
  const first = VIEWS[state.me.kind][0][0];
  if (!location.hash || !VIEWS[state.me.kind].some(([id]) => location.hash === "#" + id)) location.hash = "#" + first;
  else route();
}

function signOut() {
  sessionStorage.removeItem(KEY);
  state.me = null;
  state.market = null;
  renderChrome();
}

function renderChrome() {
  const tabs = $("#tabs"), who = $("#who"), view = $("#view");
  tabs.replaceChildren();
  who.replaceChildren();
  if (!state.me) {
    $("#signin").hidden = false;
    view.replaceChildren();
    return;
  }
  $("#signin").hidden = true;
  for (const [id, label] of VIEWS[state.me.kind]) tabs.append(h("a", { href: "#" + id, id: "tab-" + id, text: label }));
  who.append(
    h("span", { class: "role", id: "role", text: state.me.kind }),
    h("span", { id: "account-name", text: state.me.name }),
    h("button", { class: "small", id: "signout", onclick: () => { signOut(); location.hash = ""; } }, "Sign out"),
  );
}

function route() {
  if (!state.me) return;
  const views = VIEWS[state.me.kind];
  let id = location.hash.slice(1);
  if (!views.some(([v]) => v === id)) id = views[0][0];
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.id === "tab-" + id);
  const view = $("#view");
  view.replaceChildren();
  const fn = {
    campaigns: viewCampaigns, performance: state.me.kind === "advertiser" ? viewAdvertiserPerformance : viewPublisherPerformance,
    ledger: viewLedger, market: viewMarket, auctions: viewAuctions, log: viewAuctionLog, revenue: viewRevenue, accounts: viewAccounts,
  }[id];
  const root = h("div", { id: "view-" + id });
  view.append(root);
  guard(() => fn(root))();
}

window.addEventListener("hashchange", route);
document.addEventListener("DOMContentLoaded", () => {
  $("#signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("#signin-error").textContent = "";
    try { await signIn($("#api-key").value.trim()); $("#api-key").value = ""; }
    catch (e) { $("#signin-error").textContent = e.message; }
  });
  const key = sessionStorage.getItem(KEY);
  if (key) signIn(key).catch(() => renderChrome());
  else renderChrome();
});

// -- charts (SVG) ----------------------------------------------------------------------------------

function ticks(lo, hi, n) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (!(hi - lo > 1e-9 * Math.max(Math.abs(lo), Math.abs(hi), 1e-12))) return [lo];
  const span = hi - lo, step0 = span / n, mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((st) => span / st <= n) || 10 * mag;
  const out = [];
  for (let k = Math.ceil(lo / step); k * step <= hi + 1e-9 * span && out.length < 50; k++) out.push(+(k * step).toPrecision(12));
  return out;
}

/* chart(opts): {x: [...numbers], series: [{name, values, color, width, dash, kind: "line"|"bar", axis: "left"|"right"}],
 *   xFormat, yFormat, y2Format, yMin, yMax, bands: [{lo, hi, color, label}], points: [{x, y, color, r, label, shape}],
 *   width, height, xLabel, yLabel, y2Label, legend} -> element */
function chart(o) {
  const W = o.width || 760, H = o.height || 260, m = { l: 62, r: o.series.some((q) => q.axis === "right") ? 56 : 16, t: 12, b: 40 };
  const xs = o.x;
  const xlo = o.xMin ?? Math.min(...xs), xhi = o.xMax ?? Math.max(...xs);
  const left = o.series.filter((q) => q.axis !== "right"), right = o.series.filter((q) => q.axis === "right");
  const range = (ser, lo0, hi0) => {
    let lo = Infinity, hi = -Infinity;
    for (const q of ser) for (const v of q.values) if (v !== null && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    for (const p of o.points || []) if (ser === left && Number.isFinite(p.y)) { lo = Math.min(lo, p.y); hi = Math.max(hi, p.y); }
    if (lo0 !== undefined) lo = lo0;
    if (hi0 !== undefined) hi = hi0;
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    if (hi <= lo) hi = lo + (Math.abs(lo) || 1);
    return [lo, hi];
  };
  const [ylo, yhi] = range(left, o.yMin, o.yMax);
  const [y2lo, y2hi] = right.length ? range(right, o.y2Min, o.y2Max) : [0, 1];
  const X = (v) => m.l + ((v - xlo) / (xhi - xlo || 1)) * (W - m.l - m.r);
  const Y = (v) => H - m.b - ((v - ylo) / (yhi - ylo)) * (H - m.t - m.b);
  const Y2 = (v) => H - m.b - ((v - y2lo) / (y2hi - y2lo)) * (H - m.t - m.b);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": o.title || "chart" });
  const clipId = "c" + Math.random().toString(36).slice(2);
  svg.append(s("defs", {}, s("clipPath", { id: clipId }, s("rect", { x: m.l, y: m.t, width: W - m.l - m.r, height: H - m.t - m.b }))));
  const grid = s("g", { class: "grid" }), axis = s("g", { class: "axis" });
  for (const v of ticks(ylo, yhi, 5)) {
    grid.append(s("line", { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v) }));
    axis.append(s("text", { x: m.l - 6, y: Y(v) + 4, "text-anchor": "end" }, (o.yFormat || String)(v)));
  }
  if (right.length) for (const v of ticks(y2lo, y2hi, 5)) axis.append(s("text", { x: W - m.r + 6, y: Y2(v) + 4 }, (o.y2Format || String)(v)));
  const xt = o.xTicks || ticks(xlo, xhi, 6);
  for (const v of xt) axis.append(s("text", { x: X(v), y: H - m.b + 16, "text-anchor": "middle" }, (o.xFormat || String)(v)));
  axis.append(s("line", { x1: m.l, x2: W - m.r, y1: H - m.b, y2: H - m.b }), s("line", { x1: m.l, x2: m.l, y1: m.t, y2: H - m.b }));
  if (o.xLabel) axis.append(s("text", { x: (m.l + W - m.r) / 2, y: H - 6, "text-anchor": "middle" }, o.xLabel));
  if (o.yLabel) axis.append(s("text", { x: 12, y: (m.t + H - m.b) / 2, transform: `rotate(-90 12 ${(m.t + H - m.b) / 2})`, "text-anchor": "middle" }, o.yLabel));
  if (o.y2Label) axis.append(s("text", { x: W - 8, y: (m.t + H - m.b) / 2, transform: `rotate(90 ${W - 8} ${(m.t + H - m.b) / 2})`, "text-anchor": "middle" }, o.y2Label));
  svg.append(grid);
  const plot = s("g", { "clip-path": `url(#${clipId})` });
  for (const b of o.bands || []) {
    const x1 = X(b.lo), x2 = X(b.hi);
    plot.append(s("rect", { x: x1, width: Math.max(0, x2 - x1), y: b.y !== undefined ? b.y : m.t, height: b.h !== undefined ? b.h : H - m.t - m.b, fill: b.color, opacity: b.opacity ?? 0.9 }, s("title", {}, b.label || "")));
    if (b.label && x2 - x1 > 40 && b.y !== undefined) plot.append(s("text", { x: (x1 + x2) / 2, y: b.y + b.h / 2 + 4, "text-anchor": "middle", fill: "#fff", style: "fill:#fff;font-weight:600" }, b.label.length > (x2 - x1) / 7 ? b.label.slice(0, Math.max(2, Math.floor((x2 - x1) / 7) - 1)) + "…" : b.label));
  }
  const bars = o.series.filter((q) => q.kind === "bar");
  const bw = ((W - m.l - m.r) / Math.max(1, xs.length)) * 0.8 / Math.max(1, bars.length);
  bars.forEach((q, bi) => {
    const YY = q.axis === "right" ? Y2 : Y;
    q.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) return;
      const x = X(xs[i]) - (bw * bars.length) / 2 + bi * bw, y0 = YY(Math.max(0, q.axis === "right" ? y2lo : ylo)), y1 = YY(v);
      plot.append(s("rect", { x, y: Math.min(y0, y1), width: Math.max(1, bw - 1), height: Math.abs(y0 - y1), fill: q.color }, s("title", {}, `${q.name}: ${(q.format || String)(v)}`)));
    });
  });
  for (const q of o.series.filter((q) => q.kind !== "bar")) {
    const YY = q.axis === "right" ? Y2 : Y;
    let d = "", pen = false;
    q.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) { pen = false; return; }
      d += (pen ? "L" : "M") + X(xs[i]).toFixed(1) + "," + YY(v).toFixed(1);
      pen = true;
    });
    plot.append(s("path", { d, fill: "none", stroke: q.color, "stroke-width": q.width || 1.8, "stroke-dasharray": q.dash || null, opacity: q.opacity ?? 1, "data-series": q.name }));
    if (q.markers) q.values.forEach((v, i) => { if (v !== null && Number.isFinite(v)) plot.append(s("circle", { cx: X(xs[i]), cy: YY(v), r: 2.5, fill: q.color })); });
  }
  for (const p of o.points || []) {
    const cx = X(p.x), cy = Y(p.y);
    const shape = p.shape === "diamond"
      ? s("path", { d: `M${cx},${cy - 7}L${cx + 7},${cy}L${cx},${cy + 7}L${cx - 7},${cy}Z`, fill: p.color, stroke: "#1d2330", "stroke-width": 1 })
      : p.shape === "star"
        ? s("path", { d: starPath(cx, cy, 9, 4), fill: p.color, stroke: "#1d2330", "stroke-width": 1 })
        : s("circle", { cx, cy, r: p.r || 4, fill: p.color, stroke: p.stroke || "none", opacity: p.opacity ?? 0.85 });
    shape.append(s("title", {}, p.tip || p.label || ""));
    plot.append(shape);
  }
  svg.append(plot, axis, pointLabels(o.points || [], X, Y, { l: m.l, r: W - m.r, t: m.t, b: H - m.b }));
  const wrap = h("div", { class: "chart-wrap" }, svg);
  if (o.legend !== false) {
    const items = o.series.filter((q) => q.name && !q.noLegend).map((q) => h("span", { style: `--c:${q.color}` }, q.name));
    for (const l of o.extraLegend || []) items.push(h("span", { class: l.dot ? "dot" : "", style: `--c:${l.color}` }, l.name));
    wrap.append(h("div", { class: "legend" }, items));
  }
  return wrap;
}
/* Labels beside points, inside the plot: to the right of the point, or to its left near the right edge;
 * moved up or down a line to miss labels already placed; left out (the point's tooltip keeps it) when no
 * place is free. Long labels are shortened with an ellipsis. */
function pointLabels(points, X, Y, box) {
  const g = s("g", { class: "labels" });
  const placed = [];
  for (const p of points) {
    if (!p.label) continue;
    const text = p.label.length > 24 ? p.label.slice(0, 23) + "…" : p.label;
    const w = text.length * 6.6 + 2, lh = 13;
    const cx = X(p.x), cy = Y(p.y);
    const x0 = cx + 9 + w <= box.r ? cx + 9 : Math.max(box.l + 2, cx - 9 - w);
    let spot = null;
    for (const dy of [0, -lh, lh, -2 * lh, 2 * lh, -3 * lh, 3 * lh]) {
      const b = { x0, x1: x0 + w, y0: cy + 4 + dy - 10, y1: cy + 4 + dy + 3 };
      if (b.y0 < box.t || b.y1 > box.b) continue;
      if (!placed.some((q) => q.x0 < b.x1 && b.x0 < q.x1 && q.y0 < b.y1 && b.y0 < q.y1)) { spot = b; break; }
    }
    if (!spot) continue;
    placed.push(spot);
    g.append(s("text", { x: spot.x0, y: spot.y1 - 3, style: "font-weight:600" }, s("title", {}, p.label), text));
  }
  return g;
}
function starPath(cx, cy, R, r) {
  let d = "";
  for (let i = 0; i < 10; i++) {
    const a = (Math.PI / 5) * i - Math.PI / 2, rr = i % 2 ? r : R;
    d += (i ? "L" : "M") + (cx + rr * Math.cos(a)).toFixed(1) + "," + (cy + rr * Math.sin(a)).toFixed(1);
  }
  return d + "Z";
}

function table(cols, rows, opts = {}) {
  // Columns marked optional are shown only when some row has a value for them (e.g. what a role cannot see).
  cols = cols.filter((c) => !c.optional || rows.some((r) => present(c.value ? c.value(r) : c.get(r))));
  const t = h("table", { id: opts.id || null },
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { class: c.num ? "num" : null }, c.label)))),
    h("tbody", {}, rows.length ? rows.map((r) => h("tr", { class: opts.rowClass ? opts.rowClass(r) : null, "data-id": opts.rowId ? opts.rowId(r) : null },
      cols.map((c) => h("td", { class: c.num ? "num" : null }, c.get(r))))) : h("tr", {}, h("td", { colspan: cols.length, class: "muted" }, opts.empty || "Nothing yet."))));
  return h("div", { class: "scroll" }, t);
}
const pill = (text, cls) => h("span", { class: "pill " + (cls || text) }, text);
const kpi = (k, v, id) => h("div", { class: "kpi" }, h("div", { class: "v", id: id || null }, v), h("div", { class: "k" }, k));

function windowPicker(onChange, value = "24h") {
  const sel = h("select", { id: "window" }, ["1h", "24h", "7d", "30d"].map((w) => h("option", { value: w, selected: w === value }, "last " + w)));
  sel.addEventListener("change", () => onChange(sel.value));
  return sel;
}
function bucketLabel(iso, seconds) {
  const d = new Date(iso);
  return seconds >= 86400 ? d.toLocaleDateString() : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
function seriesChart(data, series, extra = {}) {
  const x = data.starts.map((_, i) => i);
  const step = Math.max(1, Math.ceil(x.length / 8));
  return chart({
    x, series, xMin: -0.5, xMax: x.length - 0.5, xTicks: x.filter((i) => i % step === 0),
    xFormat: (i) => bucketLabel(data.starts[i], data.bucket_seconds), height: 230, ...extra,
  });
}

// -- advertiser: campaigns -------------------------------------------------------------------------

async function viewCampaigns(root) {
  const campaigns = await api("GET", "/v1/campaigns?limit=1000");
  const formCard = h("div", { class: "card", id: "campaign-form-card", hidden: true });
  const list = h("div", { class: "card" },
    h("div", { class: "row" }, h("h2", {}, "Your campaigns"), h("div", { class: "spacer" }),
      h("button", { id: "new-campaign", onclick: () => openCampaignForm(formCard, null) }, "New campaign")),
    table([
      { label: "Name", get: (c) => h("span", {}, h("b", {}, c.name), h("div", { class: "muted small" }, c.kind === "keyword" ? "keywords: " + (c.keywords || []).join(", ") : (c.description || "(embedding)").slice(0, 80))) },
      { label: "Status", get: (c) => pill(c.status) },
      { label: "σ", num: true, get: (c) => (c.sigma === null ? "→0" : c.sigma) },
      { label: "Bid", num: true, get: (c) => money(c.bid_micros) },
      { label: "Budget", num: true, get: (c) => money(c.budget_micros) },
      { label: "Daily", num: true, get: (c) => money(c.daily_budget_micros) },
      { label: "Spent", num: true, get: (c) => h("span", { class: "spent" }, money(c.spent_micros)) },
      { label: "Held", num: true, get: (c) => money(c.held_micros) },
      { label: "Remaining", num: true, get: (c) => money(c.remaining_micros) },
      { label: "", get: (c) => h("span", { class: "row" },
        h("button", { class: "small secondary edit", onclick: () => openCampaignForm(formCard, c) }, "Edit"),
        h("button", { class: "small secondary toggle", onclick: guard(async () => {
          await api("PATCH", `/v1/campaigns/${c.id}`, { status: c.status === "active" ? "paused" : "active" });
          toast(c.status === "active" ? `Paused ${c.name}` : `Resumed ${c.name}`);
          route();
        }) }, c.status === "active" ? "Pause" : "Resume")) },
    ], campaigns, { id: "campaigns-table", rowId: (c) => c.id, empty: "No campaigns yet: create one." }));
  root.append(formCard, list);
}

function openCampaignForm(card, c) {
  const editing = !!c;
  const kind = editing ? c.kind : "embedding";
  const f = h("form", { class: "fields", id: "campaign-form" },
    h("label", { class: "wide" }, "Name", h("input", { name: "name", required: true, value: c ? c.name : "" })),
    h("label", {}, "Targeting", h("select", { name: "kind", disabled: editing },
      h("option", { value: "embedding", selected: kind === "embedding" }, "description (embedded)"),
      h("option", { value: "keyword", selected: kind === "keyword" }, "keywords (σ → 0)"))),
    h("label", {}, "Status", h("select", { name: "status" }, ["active", "paused"].map((st) => h("option", { value: st, selected: c && c.status === st }, st)))),
    h("label", { class: "full desc" }, "Description: who your customer is (embedded to the center)",
      h("textarea", { name: "description" }, c && c.description ? c.description : "")),
    reachSection(c),
    h("label", { class: "full kw", hidden: true }, "Keywords (comma separated)", h("input", { name: "keywords", value: c && c.keywords ? c.keywords.join(", ") : "" })),
    h("label", { class: "sig" }, "Reach σ (> 0)", h("input", { name: "sigma", type: "number", step: "any", min: "0.000001", value: c && c.sigma !== null ? c.sigma : "0.8" })),
    h("label", {}, "Bid: value at the center", h("input", { name: "bid", type: "number", step: "any", min: "0.000001", required: true, value: c ? c.bid_micros / 1e6 : "1.00" })),
    h("label", {}, "Budget", h("input", { name: "budget", type: "number", step: "any", min: "0", required: true, value: c ? c.budget_micros / 1e6 : "100" })),
    h("label", {}, "Daily budget (optional)", h("input", { name: "daily", type: "number", step: "any", min: "0", value: c && c.daily_budget_micros !== null ? c.daily_budget_micros / 1e6 : "" })),
    h("label", { class: "wide" }, "Ad title", h("input", { name: "title", required: true, value: c ? c.creative.title : "" })),
    h("label", { class: "wide" }, "Ad URL", h("input", { name: "url", type: "url", required: true, value: c ? c.creative.url : "https://" })),
    h("label", { class: "full" }, "Ad text", h("input", { name: "body", value: c ? c.creative.body : "" })),
    h("div", { class: "row full" }, h("button", { type: "submit", id: "save-campaign" }, editing ? "Save changes" : "Create campaign"),
      h("button", { type: "button", class: "secondary", onclick: () => { card.hidden = true; } }, "Cancel")),
  );
  const sync = () => {
    const kw = f.elements.kind.value === "keyword";
    f.querySelector(".desc").hidden = kw;
    f.querySelector(".kw").hidden = !kw;
    f.querySelector(".sig").hidden = kw;
    f.querySelector(".reach").hidden = kw;
  };
  f.elements.kind.addEventListener("change", sync);
  sync();
  f.addEventListener("submit", guard(async () => {
    const v = (n) => f.elements[n].value.trim();
    const kw = f.elements.kind.value === "keyword";
    const body = {
      name: v("name"), status: v("status"), bid_micros: toMicros(v("bid")), budget_micros: toMicros(v("budget")),
      daily_budget_micros: v("daily") === "" ? null : toMicros(v("daily")),
      creative: { title: v("title"), body: v("body"), url: v("url") },
    };
    const keywords = v("keywords").split(",").map((k) => k.trim()).filter(Boolean);
    if (kw) { if (!editing || keywords.join(",") !== (c.keywords || []).join(",")) body.keywords = keywords; }
    else {
      body.sigma = Number(v("sigma"));
      if (f._center) body.embedding = f._center; // the center fitted from example conversations
      else if (!editing || v("description") !== (c.description || "")) body.description = v("description");
    }
    if (!editing && body.daily_budget_micros === null) delete body.daily_budget_micros;
    const out = editing ? await api("PATCH", `/v1/campaigns/${c.id}`, body) : await api("POST", "/v1/campaigns", body);
    toast(editing ? `Saved ${out.name}` : `Created ${out.name}`);
    route();
  }));
  card.replaceChildren(h("h2", {}, editing ? `Edit ${c.name}` : "New campaign"), f);
  card.hidden = false;
  card.scrollIntoView({ block: "start" });
}

// The campaign form's reach helper: fit a center and σ to example conversations, preview the wins.
function reachSection(c) {
  const lines = (el) => el.value.split("\n").map((t) => t.trim()).filter(Boolean);
  const cust = h("textarea", { id: "reach-customers", placeholder: "which trail shoes grip on wet rock?\nmy trail shoes slip on muddy descents" });
  const others = h("textarea", { id: "reach-others", placeholder: "how do I file my taxes?\ncheap flights to Lisbon" });
  const queries = h("textarea", { id: "reach-queries", placeholder: "(default: the conversations above)" });
  const out = h("div", { id: "reach-result" });
  const box = h("details", { class: "full reach", id: "reach" },
    h("summary", {}, "Choose the center and σ from example conversations, and preview what you would win"),
    h("p", { class: "muted small" }, "The center becomes your customers' mean embedding. With non-customers too, σ is the maximum-likelihood fit of the value model bid·exp(−‖x − c‖²/σ²); with customers only, the σ at which the median customer is worth half your bid. The preview clears each conversation against the live market with your campaign added, at the bid above; nothing is charged."),
    h("div", { class: "grid2" },
      h("label", {}, "Your customers' conversations (one per line, at least 2)", cust),
      h("label", {}, "Conversations of non-customers (optional, one per line)", others)),
    h("label", {}, "Conversations to preview (optional, one per line)", queries),
    h("div", { class: "row" }, h("button", { type: "button", class: "secondary", id: "reach-fit" }, "Fit σ and preview")),
    out);
  box.querySelector("#reach-fit").addEventListener("click", guard(async () => {
    const f = box.closest("form");
    const body = { customers: lines(cust) };
    if (body.customers.length < 2) { cust.focus(); throw new Error("Customers: give at least 2 example conversations, one per line."); }
    if (lines(others).length) body.non_customers = lines(others);
    if (lines(queries).length) body.queries = lines(queries);
    const bid = f.elements.bid.value.trim();
    if (bid !== "") body.bid_micros = toMicros(bid);
    if (c) body.campaign_id = c.id;
    renderReach(out, await api("POST", "/v1/campaigns/reach", body), f);
  }));
  return box;
}

function renderReach(out, r, f) {
  const fit = r.fit;
  const share = (k) => pct(fit[k] && fit[k].median);
  const how = fit.method === "likelihood"
    ? `maximum likelihood from ${plural(fit.customers, "customer")} and ${plural(fit.non_customers, "non-customer")}`
    : `the median rule from ${plural(fit.customers, "customer")} (add non-customers for the likelihood fit)`;
  const useSigma = h("button", { type: "button", class: "small secondary", id: "reach-use-sigma", onclick: () => {
    f.elements.sigma.value = r.sigma.toFixed(4);
    f._center = null;
    f.querySelector(".desc").hidden = false;
    out.querySelector("#reach-note").hidden = true;
    toast(`σ set to ${r.sigma.toFixed(4)}`);
  } }, "Use this σ");
  const useBoth = h("button", { type: "button", class: "small", id: "reach-use", onclick: () => {
    f.elements.sigma.value = r.sigma.toFixed(4);
    f._center = r.center;
    f.querySelector(".desc").hidden = true;
    out.querySelector("#reach-note").hidden = false;
    toast("Center and σ set from the examples");
  } }, "Use this center and σ");
  const parts = [
    h("p", {}, h("b", { id: "reach-sigma" }, `Proposed σ = ${r.sigma.toFixed(4)}`), ` by ${how}. `,
      `At the median, customers sit at ‖x − c‖² = ${num(fit.customer_sqdist.median, 3)} and keep ${share("customer_value_share")} of the bid`,
      fit.non_customer_sqdist ? `; non-customers sit at ${num(fit.non_customer_sqdist.median, 3)} and keep ${share("non_customer_value_share")}.` : "."),
    h("div", { class: "row" }, useSigma, useBoth),
    h("p", { class: "muted small", id: "reach-note", hidden: true }, "The campaign's center is your customers' mean embedding (the description is not used)."),
  ];
  const pv = r.preview;
  if (pv) {
    parts.push(h("h3", {}, `Preview at bid ${money(pv.bid_micros)}, σ ${pv.sigma.toFixed(3)}: wins ${pv.wins} of ${plural(pv.queries.length, "conversation")}`),
      table([
        { label: "Conversation", get: (q) => whyCell(q.text) },
        { label: "‖x − c‖²", num: true, get: (q) => num(q.sqdist, 3) },
        { label: "Wins", get: (q) => (q.won ? pill("wins", "billed") : h("span", { class: "muted" }, q.winner ? `lost to ${q.winner}` : "no fill")) },
        { label: "Price", num: true, get: (q) => (q.won ? money(q.price_micros) : "") },
        { label: "Bid to win", num: true, get: (q) => (q.bid_to_win_micros === null ? "out of reach" : money(q.bid_to_win_micros)) },
      ], pv.queries, { id: "reach-table" }));
  } else parts.push(h("p", { class: "muted small" }, "Enter a bid above to preview wins and prices."));
  out.replaceChildren(...parts);
}

// -- advertiser: spend and win rate ----------------------------------------------------------------

async function viewAdvertiserPerformance(root, win = "24h") {
  const [data, report] = await Promise.all([api("GET", `/v1/dashboard/series?window=${win}`), api("GET", "/v1/reports/campaigns")]);
  const t = data.totals;
  root.replaceChildren(
    h("div", { class: "card" },
      h("div", { class: "row" }, h("h2", {}, "Spend and win rate"), h("div", { class: "spacer" }), windowPicker((w) => guard(() => viewAdvertiserPerformance(root, w))(), win)),
      demoNote(data),
      h("div", { class: "kpis" },
        kpi("spend (billed)", money(t.spend_micros), "kpi-spend"), kpi("wins", t.wins, "kpi-wins"), kpi("impressions (billed)", t.impressions),
        kpi("win rate", pct(t.auctions ? t.wins / t.auctions : null))),
      h("div", { class: "grid2" },
        h("div", {}, h("h3", {}, "Spend per bucket"), seriesChart(data, [{ name: "spend", kind: "bar", values: data.spend_micros.map((v) => v / 1e6), color: COLORS[0], format: (v) => v.toFixed(6) }], { yMin: 0, yFormat: (v) => v.toFixed(2) })),
        h("div", {}, h("h3", {}, "Win rate (your wins ÷ the exchange's auctions)"), seriesChart(data, [{ name: "win rate", values: data.win_rate, color: COLORS[2], markers: true }], { yMin: 0, yMax: 1, yFormat: (v) => (100 * v).toFixed(0) + "%" })))),
    h("div", { class: "card" }, h("h2", {}, "Per campaign (all time)"),
      table([
        { label: "Campaign", get: (r) => r.name }, { label: "Status", get: (r) => pill(r.status) },
        { label: "Wins", num: true, get: (r) => r.wins }, { label: "Impressions", num: true, get: (r) => r.impressions },
        { label: "Clicks", num: true, get: (r) => r.clicks }, { label: "CTR", num: true, get: (r) => pct(r.ctr) },
        { label: "Spend", num: true, get: (r) => money(r.spend_micros) }, { label: "Avg price", num: true, get: (r) => money(r.avg_price_micros) },
      ], report.campaigns, { id: "report-table" })),
  );
}

// -- ledger (any role) -----------------------------------------------------------------------------

async function viewLedger(root) {
  const entries = [];
  let page = await api("GET", "/v1/ledger?limit=1000");
  entries.push(...page.entries);
  while (page.next_after !== null && entries.length < 10000) {
    page = await api("GET", `/v1/ledger?limit=1000&after=${page.next_after}`);
    entries.push(...page.entries);
  }
  entries.reverse();
  root.append(h("div", { class: "card" },
    h("h2", {}, state.me.kind === "admin" ? "The exchange's ledger account" : "Your ledger account"),
    h("div", { class: "kpis" }, kpi("balance", money(page.balance_micros), "ledger-balance"), kpi("entries", entries.length)),
    h("p", { class: "muted small" }, "Double-entry, integer micros: each charge debits the advertiser and credits the publisher and the exchange. Newest first."),
    table([
      { label: "Time", get: (e) => when(e.created_at) }, { label: "Transaction", num: true, get: (e) => e.transaction_id },
      { label: "Kind", get: (e) => e.kind }, { label: "Auction", get: (e) => h("code", { title: e.auction_id }, shortId(e.auction_id)) },
      { label: "Amount", num: true, get: (e) => h("span", { class: e.amount_micros < 0 ? "bad" : "good" }, money(e.amount_micros)) },
    ], entries, { id: "ledger-table" })));
}

// -- publisher: auctions, fill rate and revenue ----------------------------------------------------

async function viewAuctions(root) {
  const data = await api("GET", "/v1/dashboard/publisher/auctions?limit=200");
  const rows = data.auctions;
  root.append(h("div", { class: "card" },
    h("div", { class: "row" }, h("h2", {}, "Your auctions"), h("span", { class: "muted", id: "auctions-total" }, data.total > rows.length ? `newest ${rows.length} of ${data.total}` : plural(data.total, "auction")), h("div", { class: "spacer" }),
      h("a", { href: "#market" }, "Run one from the market map →")),
    h("p", { class: "muted small" }, "Bill an auction when its ad was shown (charged exactly once; a repeat charges nothing). Held auctions expire unbilled and release their hold."),
    table([
      { label: "Time", get: (a) => when(a.created_at) }, { label: "Auction", get: (a) => h("code", { title: a.auction_id }, shortId(a.auction_id)) },
      { label: "Status", get: (a) => pill(a.status) }, { label: "Ad", get: (a) => (a.ad_title ? h("span", { class: "ad-title" }, a.ad_title) : h("span", { class: "muted" }, "no ad")) },
      { label: "Price", num: true, get: (a) => money(a.price_micros) },
      { label: "Why", optional: true, value: (a) => (a.explain ? a.explain.reason : null), get: (a) => whyCell(a.explain && a.explain.reason) },
      { label: "", get: (a) => h("span", { class: "row" },
        a.status === "held" ? h("button", { class: "small bill", onclick: guard(async () => {
          const r = await api("POST", `/v1/auctions/${a.auction_id}/billing`);
          toast(`Billed ${money(r.price_micros)} (your share ${money(r.publisher_micros)})`);
          route();
        }) }, "Bill (ad shown)") : null,
        a.status === "billed" && !a.clicked_at ? h("button", { class: "small secondary", onclick: guard(async () => { await api("POST", `/v1/auctions/${a.auction_id}/click`); toast("Click recorded"); route(); }) }, "Click") : null) },
    ], rows, { id: "auctions-table", rowId: (a) => a.auction_id, empty: "No auctions yet: run one from the market map." })));
}
// A long explanation in a table cell: one line cut with an ellipsis (CSS), the whole text on hover.
// Simulated auctions (seeded by `adspace serve --demo`) are labelled wherever they are counted.
const demoNote = (data) => (data && data.demo_auctions
  ? h("div", { class: "demo-banner", id: "demo-note" }, `Demo data: ${plural(data.demo_auctions, "auction")} in this window ${data.demo_auctions === 1 ? "is" : "are"} simulated traffic seeded by adspace serve --demo.`)
  : null);
const whyCell = (text) => (present(text) ? h("span", { class: "muted small why", title: text }, text) : "");

async function viewPublisherPerformance(root, win = "24h") {
  const data = await api("GET", `/v1/dashboard/series?window=${win}`);
  const t = data.totals;
  root.replaceChildren(h("div", { class: "card" },
    h("div", { class: "row" }, h("h2", {}, "Fill rate and revenue"), h("div", { class: "spacer" }), windowPicker((w) => guard(() => viewPublisherPerformance(root, w))(), win)),
    demoNote(data),
    h("div", { class: "kpis" }, kpi("auctions", t.auctions, "kpi-auctions"), kpi("fill rate", pct(t.auctions ? t.filled / t.auctions : null), "kpi-fill"),
      kpi("billed impressions", t.billed), kpi("revenue (your share)", money(t.revenue_micros), "kpi-revenue")),
    h("div", { class: "grid2" },
      h("div", {}, h("h3", {}, "Auctions and fill rate"), seriesChart(data, [
        { name: "auctions", kind: "bar", values: data.auctions, color: "#c7d2fe" },
        { name: "filled", kind: "bar", values: data.filled, color: COLORS[0] },
        { name: "fill rate", values: data.fill_rate, color: COLORS[2], axis: "right", markers: true }],
        { yMin: 0, y2Min: 0, y2Max: 1, y2Format: (v) => (100 * v).toFixed(0) + "%", yFormat: (v) => String(v) })),
      h("div", {}, h("h3", {}, "Revenue per bucket"), seriesChart(data, [{ name: "revenue", kind: "bar", values: data.revenue_micros.map((v) => v / 1e6), color: COLORS[2] }], { yMin: 0, yFormat: (v) => v.toFixed(2) })))));
}

// -- admin: auction log, revenue, accounts ---------------------------------------------------------

async function viewAuctionLog(root, status = "", offset = 0) {
  const q = `/v1/dashboard/auctions?limit=100&offset=${offset}` + (status ? `&status=${status}` : "");
  const data = await api("GET", q);
  const sel = h("select", { id: "log-status" }, ["", "held", "billed", "no_fill", "expired"].map((v) => h("option", { value: v, selected: v === status }, v || "all statuses")));
  sel.addEventListener("change", () => guard(() => viewAuctionLog(root, sel.value, 0))());
  root.replaceChildren(h("div", { class: "card" },
    h("div", { class: "row" }, h("h2", {}, "Auction log"), h("span", { class: "muted", id: "log-total" }, plural(data.total, "auction")), h("div", { class: "spacer" }), sel,
      h("button", { class: "small secondary", disabled: offset === 0, onclick: () => guard(() => viewAuctionLog(root, status, Math.max(0, offset - 100)))() }, "Newer"),
      h("button", { class: "small secondary", disabled: offset + 100 >= data.total, onclick: () => guard(() => viewAuctionLog(root, status, offset + 100))() }, "Older")),
    table([
      { label: "Time", get: (a) => when(a.created_at) }, { label: "Auction", get: (a) => h("code", { title: a.auction_id }, shortId(a.auction_id)) },
      { label: "Publisher", get: (a) => a.publisher }, { label: "Status", get: (a) => h("span", {}, pill(a.status), a.source === "demo" ? h("span", { class: "muted small" }, " simulated") : null) },
      { label: "Winner", get: (a) => (a.campaign ? h("span", {}, a.campaign, h("div", { class: "muted small" }, a.advertiser)) : "–") },
      { label: "Price", num: true, get: (a) => money(a.price_micros) },
      { label: "Considered", num: true, get: (a) => (a.explain ? `${a.explain.considered}/${a.explain.campaigns_total}` : "–") },
      { label: "Why", get: (a) => whyCell(a.explain && a.explain.winner && present(a.explain.winner.score) ? `score ${num(a.explain.winner.score)}` + (a.explain.runner_up ? ` vs ${num(a.explain.runner_up.score)}` : " unopposed") : (a.explain ? a.explain.reason : "")) },
    ], data.auctions, { id: "log-table", rowId: (a) => a.auction_id })));
}

async function viewRevenue(root, win = "24h") {
  const [data, check, ledger] = await Promise.all([api("GET", `/v1/dashboard/series?window=${win}`), api("GET", "/v1/ledger/check"), api("GET", "/v1/ledger?limit=1")]);
  const t = data.totals;
  root.replaceChildren(h("div", { class: "card" },
    h("div", { class: "row" }, h("h2", {}, "Revenue"), h("div", { class: "spacer" }), windowPicker((w) => guard(() => viewRevenue(root, w))(), win)),
    demoNote(data),
    h("div", { class: "kpis" },
      kpi("exchange revenue (window)", money(t.revenue_micros), "kpi-revenue"), kpi("gross billed (window)", money(t.gross_micros), "kpi-gross"),
      kpi("auctions", t.auctions), kpi("fill rate", pct(t.auctions ? t.filled / t.auctions : null)),
      kpi("exchange balance (all time)", money(ledger.balance_micros)),
      kpi("ledger", check.balanced ? "balanced ✓" : "UNBALANCED", "kpi-ledger")),
    h("div", { class: "grid2" },
      h("div", {}, h("h3", {}, "Gross billed and the exchange's share"), seriesChart(data, [
        { name: "gross", kind: "bar", values: data.gross_micros.map((v) => v / 1e6), color: "#c7d2fe" },
        { name: "exchange revenue", kind: "bar", values: data.revenue_micros.map((v) => v / 1e6), color: COLORS[0] }], { yMin: 0, yFormat: (v) => v.toFixed(2) })),
      h("div", {}, h("h3", {}, "Auctions and fill rate"), seriesChart(data, [
        { name: "auctions", kind: "bar", values: data.auctions, color: "#c7d2fe" },
        { name: "fill rate", values: data.fill_rate, color: COLORS[2], axis: "right", markers: true }], { yMin: 0, y2Min: 0, y2Max: 1, y2Format: (v) => (100 * v).toFixed(0) + "%" }))),
    h("p", { class: "muted small" }, `Ledger check: postings sum ${check.postings_sum_micros} micros, ${check.transactions} charges for ${check.billed_auctions} billed auctions, campaigns' spend ${money(check.campaign_spent_micros)} = billed prices ${money(check.billed_price_micros)}.`)));
}

async function viewAccounts(root) {
  const data = await api("GET", "/v1/dashboard/accounts");
  const keyBox = h("div", { id: "new-key", hidden: true });
  const nameIn = h("input", { id: "account-name-input", placeholder: "Name", required: true });
  const kindSel = h("select", { id: "account-kind" }, h("option", { value: "advertiser" }, "advertiser"), h("option", { value: "publisher" }, "publisher"));
  const showKey = (acc) => {
    keyBox.replaceChildren(h("p", {}, `API key of ${acc.kind} ${acc.name} (shown once; only its hash is stored):`), h("div", { class: "keybox", id: "new-key-value" }, acc.api_key));
    keyBox.hidden = false;
  };
  const form = h("form", { class: "row", id: "account-form" }, kindSel, nameIn, h("button", { type: "submit", id: "create-account" }, "Create account"));
  form.addEventListener("submit", guard(async () => {
    const acc = await api("POST", kindSel.value === "advertiser" ? "/v1/advertisers" : "/v1/publishers", { name: nameIn.value.trim() });
    await viewAccounts(root);
    showKeyAfter(root, acc);
  }));
  root.replaceChildren(
    h("div", { class: "card" }, h("h2", {}, "New account"), form, keyBox),
    h("div", { class: "card" }, h("h2", {}, "Accounts"),
      h("div", { class: "kpis" }, kpi("advertisers", data.accounts.filter((a) => a.kind === "advertiser").length),
        kpi("publishers", data.accounts.filter((a) => a.kind === "publisher").length), kpi("exchange balance", money(data.exchange_balance_micros))),
      table([
        { label: "Name", get: (a) => h("b", {}, a.name) }, { label: "Kind", get: (a) => pill(a.kind, a.kind === "admin" ? "held" : "") },
        { label: "Id", get: (a) => h("code", {}, a.id) }, { label: "Created", get: (a) => when(a.created_at) },
        { label: "Campaigns / auctions", num: true, get: (a) => (a.kind === "advertiser" ? `${a.campaigns} campaigns, ${a.wins} wins` : a.kind === "publisher" ? `${a.auctions} auctions` : "") },
        { label: "Ledger balance", num: true, get: (a) => (a.balance_micros === undefined ? "" : money(a.balance_micros)) },
        { label: "", get: (a) => (a.kind === "admin" ? "" : h("button", { class: "small secondary", onclick: guard(async () => {
          if (!confirm(`Issue a new key for ${a.name}? Its current keys stop working.`)) return;
          showKey(await api("POST", `/v1/accounts/${a.id}/keys`, undefined));
        }) }, "New key")) },
      ], data.accounts, { id: "accounts-table", rowId: (a) => a.id })));
  root._showKey = showKey;
}
function showKeyAfter(root, acc) { if (root._showKey) root._showKey(acc); }

// -- market map ------------------------------------------------------------------------------------

// One colour per campaign for the whole page (slice, projection), in order of first appearance.
const palette = new Map();
function colorFor(label) {
  if (label === "no fill") return "#98a2b3";
  if (!label || label === "others (best)" || label.startsWith("other")) return "#667085";
  if (!palette.has(label)) palette.set(label, COLORS[palette.size % COLORS.length]);
  return palette.get(label);
}

async function viewMarket(root) {
  const isPub = state.me.kind === "publisher";
  const f = h("form", { class: "fields", id: "market-form" },
    h("label", { class: "full" }, "Query: a conversation, or what the user is asking",
      h("textarea", { name: "text", id: "market-query", placeholder: "which trail shoes for a muddy ultramarathon?" }, state.market ? state.market.query.text || "" : "")),
    h("label", {}, "Keywords (optional, comma separated)", h("input", { name: "keywords", id: "market-keywords" })),
    // Reserves: the admin's what-if, or a publisher's real auction (a preview at chosen reserves would reveal bids).
    state.me.kind === "advertiser" ? null : h("label", {}, isPub ? "Reserve (optional; applies when you run the auction)" : "Reserve (optional)", h("input", { name: "reserve", id: "market-reserve", type: "number", step: "any", min: "0" })),
    h("label", {}, "Relevance gate τ (optional): ‖x − c‖² ≤ τ", h("input", { name: "tau", id: "market-tau", type: "number", step: "any", min: "0" })),
    h("div", { class: "row" },
      h("button", { type: "submit", name: "score", id: "market-score", value: "score" }, "Score every campaign"),
      isPub ? h("button", { type: "submit", name: "run", id: "market-run", value: "run", class: "secondary" }, "Run auction") : null),
  );
  const result = h("div", { id: "market-result" });
  root.append(h("div", { class: "card" }, h("h2", {}, "Market map"),
    h("p", { class: "muted small" }, "Every campaign scores log(bid) − ‖x − c‖²/σ² at the query x; the highest eligible score wins and pays the Clarke pivot (the runner-up's reported value bid·exp(−‖x − c‖²/σ²), at least the reserve). ",
      isPub ? "“Run auction” runs the real auction (held against the winner's budget; bill it under Auctions). You see names, eligibility, the winner and the price, never bids or scores." : state.me.kind === "admin" ? "You see every campaign." : "Your campaigns are named and scored; rivals are anonymous, without scores."),
    f), result);
  f.addEventListener("submit", guard(async (ev) => {
    const run = ev.submitter && ev.submitter.value === "run";
    const v = (n) => f.elements[n].value.trim();
    const body = { run };
    if (v("text")) body.text = v("text");
    const kws = v("keywords").split(",").map((k) => k.trim()).filter(Boolean);
    if (kws.length) body.keywords = kws;
    if (!body.text && !kws.length) { f.elements.text.focus(); throw new Error("Query: type a conversation (or keywords) to score."); }
    if (f.elements.reserve && v("reserve") !== "" && (run || !isPub)) body.reserve_micros = toMicros(v("reserve"));
    if (v("tau") !== "") body.tau = Number(v("tau"));
    const data = await api("POST", "/v1/dashboard/market", body);
    state.market = { query: body, data };
    if (data.auction) { toast(data.auction.filled ? `Auction ${shortId(data.auction.auction_id)} filled at ${money(data.auction.price_micros)}` : "Auction ran: no fill"); }
    renderMarket(result, body, data);
  }));
  if (state.market) renderMarket(result, state.market.query, state.market.data);
  else {
    result.append(h("div", { class: "grid2" }, h("div", { class: "card", id: "projection-card" }, h("h2", {}, "Campaign centers and recent queries (2-D projection)"), h("div", { id: "projection" }))));
    drawProjection($("#projection"), null);
  }
}

function renderMarket(result, query, data) {
  const o = data.outcome;
  const card = h("div", { class: "outcome" + (o.filled ? "" : " nofill"), id: "market-outcome" },
    h("div", { class: "big" }, o.filled ? h("span", {}, "Winner: ", h("span", { id: "market-winner" }, o.winner), " · price ", h("span", { id: "market-price" }, money(o.price_micros))) : h("span", { id: "market-winner" }, "No fill")),
    h("div", { class: "muted small" }, [
      present(o.considered) && present(o.total) ? `${o.considered} of ${plural(o.total, "campaign")} considered` : null,
      o.excluded && Object.keys(o.excluded).length ? "left out: " + Object.entries(o.excluded).map(([k, v]) => `${v} ${k}`).join(", ") : null,
      o.point === "keyword" ? `auction at keyword “${o.keyword}”` : null,
    ].filter(Boolean).join(" · ")),
    present(o.why) ? h("p", { id: "market-why" }, o.why) : null);
  if (data.auction) {
    const a = data.auction;
    card.append(h("div", { id: "market-auction" }, h("b", {}, "Auction recorded: "), h("code", { id: "market-auction-id" }, a.auction_id), ` (${a.filled ? "held until billed" : "no fill"})`));
    if (a.ad) card.append(h("div", { class: "ad" }, h("div", { class: "label" }, a.ad.label), h("div", { class: "title" }, a.ad.title), h("div", {}, a.ad.body), h("a", { href: a.ad.url, target: "_blank", rel: "noopener" }, a.ad.url)));
  }
  // Rows the caller has nothing to see of (a publisher sees the top two scores only) are counted, not listed.
  const shown = data.campaigns.filter((r) => r.winner || r.runner_up || present(r.campaign_id) || present(r.score) || present(r.value_micros));
  const hidden = data.campaigns.length - shown.length;
  const rows = table([
    { label: "#", num: true, optional: true, value: (r) => r.rank, get: (r) => r.rank },
    { label: "Campaign", get: (r) => h("span", {}, h("b", {}, r.label), r.mine ? pill("yours", "mine") : null, r.advertiser ? h("div", { class: "muted small" }, r.advertiser) : null) },
    { label: "Kind", optional: true, value: (r) => r.kind, get: (r) => r.kind || "" },
    { label: "σ", num: true, optional: true, value: (r) => r.sigma, get: (r) => (present(r.sigma) ? r.sigma : r.kind === "keyword" ? "→0" : "") },
    { label: "Bid", num: true, optional: true, value: (r) => r.bid_micros, get: (r) => (present(r.bid_micros) ? money(r.bid_micros) : "") },
    { label: "‖x − c‖²", num: true, optional: true, value: (r) => r.sqdist, get: (r) => (present(r.sqdist) ? num(r.sqdist) : "") },
    { label: "Score", num: true, optional: true, value: (r) => r.score, get: (r) => (present(r.score) ? num(r.score) : "") },
    { label: "Reported value", num: true, optional: true, value: (r) => r.value_micros, get: (r) => (present(r.value_micros) ? money(r.value_micros) : "") },
    { label: "Eligible", optional: true, value: (r) => (present(r.eligible) ? true : null), get: (r) => (r.eligible ? pill("eligible") : h("span", { class: "muted" }, r.reason || "not scored")) },
    { label: "", get: (r) => (r.winner ? pill("winner", "billed") : r.runner_up ? pill("runner-up (sets the price)", "held") : "") },
  ], shown, { id: "market-table", rowClass: (r) => (r.winner ? "winner" : r.runner_up ? "runner" : r.eligible === false ? "ineligible" : null), rowId: (r) => r.campaign_id || r.label });
  const hiddenNote = hidden ? h("p", { class: "muted small", id: "market-hidden" }, `and ${plural(hidden, "other campaign")}, whose scores are not shown to ${state.me.kind}s.`) : null;

  // Slice: endpoints are your visible embedding campaigns or the query (publishers have no slices).
  const vis = state.me.kind === "publisher" ? [] : data.campaigns.filter((r) => r.campaign_id && r.kind === "embedding");
  const opts = (sel) => [h("option", { value: "query", selected: sel === "query" }, "the query"), ...vis.map((r) => h("option", { value: r.campaign_id, selected: sel === r.campaign_id }, r.label))];
  const canSlice = vis.length >= 2 || (vis.length >= 1 && !!query.text);
  // Default line: your best campaign to the next one with another center (another distance to x).
  const a0 = vis[0] ? vis[0].campaign_id : "query";
  const other = vis.find((r) => vis[0] && Math.abs((r.sqdist ?? 0) - (vis[0].sqdist ?? 0)) > 1e-9);
  const b0 = other ? other.campaign_id : vis[1] ? vis[1].campaign_id : "query";
  const selA = h("select", { id: "slice-a" }, opts(a0)), selB = h("select", { id: "slice-b" }, opts(b0));
  const sliceBox = h("div", { id: "slice" });
  const drawSlice = guard(async () => {
    if (selA.value === selB.value) { sliceBox.replaceChildren(h("p", { class: "muted" }, "Choose two different points.")); return; }
    if ((selA.value === "query" || selB.value === "query") && !query.text) { sliceBox.replaceChildren(h("p", { class: "muted" }, "The query has no text: choose two campaigns.")); return; }
    const body = { a: selA.value, b: selB.value };
    if (query.text) body.text = query.text;
    try {
      renderSlice(sliceBox, await api("POST", "/v1/dashboard/slice", body));
    } catch (e) {
      sliceBox.replaceChildren(h("p", { class: "muted", id: "slice-note" }, e.message));
    }
  });
  selA.addEventListener("change", drawSlice);
  selB.addEventListener("change", drawSlice);
  const proj = h("div", { id: "projection" });
  // Publishers see no campaign's center, bid or reach: no slice card for them (nothing to draw).
  const sliceCard = canSlice || state.me.kind !== "publisher"
    ? h("div", { class: "card", id: "slice-card" }, h("h2", {}, "1-D slice: the upper envelope of score parabolas"),
      canSlice ? h("div", { class: "row" }, h("label", {}, "from (t = 0)", selA), h("label", {}, "to (t = 1)", selB)) : null,
      canSlice ? sliceBox : h("p", { class: "muted", id: "slice-note" }, "Slices run through your own campaigns (or one of them and the query): create a campaign first."))
    : null;
  result.replaceChildren(
    h("div", { class: "card" }, h("h2", {}, "Outcome"), card),
    h("div", { class: "card" }, h("h2", {}, state.me.kind === "publisher" ? "The campaigns that decided this auction" : "Every campaign at this query"), rows, hiddenNote),
    h("div", { class: "grid2" }, sliceCard,
      h("div", { class: "card", id: "projection-card" }, h("h2", {}, "Campaign centers and recent queries (2-D projection)"), proj)),
  );
  // The query at a campaign's very center leaves no line to draw from that campaign to the query.
  const atCenter = (id) => id === "query" || (vis.find((r) => r.campaign_id === id) || {}).sqdist === 0;
  if (canSlice && !(atCenter(a0) && atCenter(b0))) drawSlice();
  else if (canSlice) sliceBox.replaceChildren(h("p", { class: "muted", id: "slice-note" }, "The query sits at your campaign's center: choose two points that differ."));
  drawProjection(proj, data.query_xy);
}

function renderSlice(box, sl) {
  const series = sl.curves.map((c) => ({ name: c.label + (c.eligible ? "" : " (not eligible)"), values: c.score, color: colorFor(c.label), dash: c.eligible ? null : "4 3", width: 1.4, opacity: 0.75 }));
  series.push({ name: "upper envelope (the allocation)", values: sl.envelope, color: "#111", width: 3 });
  const vals = sl.envelope.filter((v) => v !== null);
  const top = vals.length ? Math.max(...vals) : 1;
  const low = vals.length ? Math.min(...vals) : 0;
  const yMin = low - 0.35 * (top - low + 1e-9) - 0.5, yMax = top + 0.15 * (top - low + 1e-9) + 0.2;
  const H = 300, bandH = 16, innerBottom = H - 40;
  const bands = sl.intervals.filter((iv) => iv.winner !== null).map((iv) => ({ lo: iv.lo, hi: iv.hi, color: colorFor(iv.winner), label: iv.winner, y: innerBottom - bandH, h: bandH }));
  box.replaceChildren(chart({
    x: sl.t, series, bands, yMin, yMax, height: H, width: 620, xLabel: `t along the line: ${sl.a} at 0, ${sl.b} at 1`, yLabel: "score",
    yFormat: (v) => v.toFixed(1), xFormat: (v) => v.toFixed(1),
  }), h("p", { class: "muted small", id: "slice-intervals" }, "Winning intervals: " + sl.intervals.map((iv) => `${iv.winner ?? "nobody"} [${iv.lo.toFixed(3)}, ${iv.hi.toFixed(3)}]`).join(" · ")));
}

async function drawProjection(box, queryXY) {
  let p;
  try { p = await api("GET", "/v1/dashboard/projection"); }
  catch (e) { box.replaceChildren(h("p", { class: "error" }, e.message)); return; }
  const points = [];
  for (const q of p.queries) points.push({ x: q.xy[0], y: q.xy[1], color: colorFor(q.winner), r: 4, tip: `${q.text} → ${q.winner}` });
  p.campaigns.forEach((c) => points.push({ x: c.xy[0], y: c.xy[1], color: colorFor(c.label), shape: "diamond", label: c.label, tip: `${c.label} (σ ${c.sigma}, bid ${money(c.bid_micros)})${c.eligible ? "" : " not eligible"}` }));
  if (queryXY) points.push({ x: queryXY[0], y: queryXY[1], color: "#ffd400", shape: "star", tip: "this query" });
  if (!points.length) { box.replaceChildren(h("p", { class: "muted" }, "No campaign centers to show yet.")); return; }
  const xs = points.map((q) => q.x), ys = points.map((q) => q.y);
  const pad = (lo, hi) => { const d = Math.max(hi - lo, 0.05); return [lo - 0.12 * d, hi + 0.25 * d]; };
  const [xlo, xhi] = pad(Math.min(...xs), Math.max(...xs)), [ylo, yhi] = pad(Math.min(...ys), Math.max(...ys));
  const winners = [...new Set(p.queries.map((q) => q.winner))];
  box.replaceChildren(chart({
    x: [xlo, xhi], series: [], points, xMin: xlo, xMax: xhi, yMin: ylo, yMax: yhi, height: 300, width: 620,
    xLabel: `principal axis 1 (${pct(p.explained[0])} of the centers' variance)`, yLabel: `axis 2 (${pct(p.explained[1])})`,
    xFormat: (v) => String(+v.toPrecision(3)), yFormat: (v) => String(+v.toPrecision(3)),
    extraLegend: [{ name: "campaign center", color: "#1d2330" }, ...(queryXY ? [{ name: "this query", color: "#ffd400", dot: true }] : []),
      ...winners.map((w) => ({ name: `query won by ${w}`, color: colorFor(w), dot: true }))],
  }), h("p", { class: "muted small", id: "projection-note" }, `${p.campaigns.length} campaign centers, ${p.queries.length} recent market-map queries (coloured by winner).`));
}
