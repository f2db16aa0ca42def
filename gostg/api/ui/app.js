// gostg status page: polls api/status (and api/connections when the API has it) once a
// second with this origin's credentials and redraws. No framework, no build step.
// Everything from the server goes into the page as text (textContent), never as HTML:
// log messages and addresses can carry what a client sent.
"use strict";

const POLL_MS = 1000;
const HISTORY = 60;              // points per chart: the last minute
const charts = new Map();        // service name -> {prev: {t, inp, out}, points: [{inp, out}]}
let connsAvailable = true;       // false once api/connections answers 404 (an older gostg)
// Above this many open connections the list is not fetched: its JSON grows with every tunnel,
// and a page polling it each second would cost a busy gostg more than the page is worth.
const MAX_LISTED = 300;

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return e;
}

function bytes(n) {
  if (n == null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 1 : 0) : String(n)) + " " + units[i];
}

function clock(t) {
  if (t == null) return "";
  const d = typeof t === "number" ? new Date(t * 1000) : new Date(t.replace(/(\.\d{3})([+-]\d{2})(\d{2})$/, "$1$2:$3"));
  return isNaN(d) ? String(t) : d.toLocaleTimeString();
}

function age(seconds) {
  if (seconds == null) return "";
  const s = Math.max(0, Math.round(seconds));
  return s < 60 ? s + " s" : s < 3600 ? Math.floor(s / 60) + " min" : (s / 3600).toFixed(1) + " h";
}

function badge(text, kind) {
  return el("span", {class: "badge " + kind}, text);
}

function empty(tbody, note, rows) {
  tbody.replaceChildren(...rows);
  $(note).hidden = rows.length > 0;
}

// --- services and their throughput charts -------------------------------------------------

function sample(svc, now) {
  let c = charts.get(svc.name);
  if (!c) { c = {prev: null, points: []}; charts.set(svc.name, c); }
  const inp = svc.stats.inputBytes, out = svc.stats.outputBytes;
  let rate = {inp: 0, out: 0};
  // a restarted or replaced service starts its counters again: no negative rate
  if (c.prev && now > c.prev.t && inp >= c.prev.inp && out >= c.prev.out) {
    const dt = now - c.prev.t;
    rate = {inp: (inp - c.prev.inp) / dt, out: (out - c.prev.out) / dt};
  }
  if (c.prev) c.points.push(rate);
  if (c.points.length > HISTORY) c.points.splice(0, c.points.length - HISTORY);
  c.prev = {t: now, inp, out};
  return c;
}

function draw(canvas, points) {
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 180, h = canvas.clientHeight || 36;
  if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const max = Math.max(1, ...points.map((p) => Math.max(p.inp, p.out)));
  const css = getComputedStyle(document.documentElement);
  const x = (i) => w - (points.length - 1 - i) * (w / (HISTORY - 1));
  const y = (v) => h - 1 - (v / max) * (h - 4);
  for (const [key, color] of [["out", "--out"], ["inp", "--in"]]) {
    if (!points.length) break;
    const c = css.getPropertyValue(color).trim() || "#333";
    g.beginPath();
    points.forEach((p, i) => (i ? g.lineTo(x(i), y(p[key])) : g.moveTo(x(i), y(p[key]))));
    g.strokeStyle = c;
    g.lineWidth = 1.5;
    g.stroke();
    g.lineTo(x(points.length - 1), h);   // the area under the line, faint
    g.lineTo(x(0), h);
    g.closePath();
    g.globalAlpha = 0.15;
    g.fillStyle = c;
    g.fill();
    g.globalAlpha = 1;
  }
}

function stateBadge(state) {
  return badge(state, state === "ready" ? "ok" : state === "closed" || state === "failed" ? "bad" : "warn");
}

function serviceRow(svc) {
  const tr = el("tr", {"data-service": svc.name});
  const canvas = el("canvas", {width: 180, height: 36});
  tr.append(
    el("td", {class: "name"}), el("td", {class: "state"}), el("td", {class: "addr mono"}),
    el("td", {class: "types"}), el("td", {class: "chain"}),
    el("td", {class: "num conns"}), el("td", {class: "num total"}), el("td", {class: "num errs"}),
    el("td", {class: "num in"}), el("td", {class: "num out"}),
    el("td", {}, el("div", {class: "chart"}, canvas, el("span", {class: "rate"}))));
  return tr;
}

function setCell(tr, cls, text, value) {
  const td = tr.querySelector("." + cls);
  td.textContent = text;
  if (value !== undefined) td.setAttribute("data-value", String(value));
}

function renderServices(services, now) {
  const tbody = $("#services tbody");
  const rows = new Map([...tbody.children].map((tr) => [tr.getAttribute("data-service"), tr]));
  const wanted = [];
  for (const svc of services) {
    const tr = rows.get(svc.name) || serviceRow(svc);
    const st = svc.stats;
    setCell(tr, "name", svc.name);
    tr.querySelector(".state").replaceChildren(stateBadge(svc.state));
    setCell(tr, "addr", svc.addr);
    setCell(tr, "types", svc.listener + " / " + svc.handler);
    setCell(tr, "chain", svc.chain || "");
    setCell(tr, "conns", st.currentConns, st.currentConns);
    setCell(tr, "total", st.totalConns, st.totalConns);
    setCell(tr, "errs", st.totalErrs, st.totalErrs);
    setCell(tr, "in", bytes(st.inputBytes), st.inputBytes);
    setCell(tr, "out", bytes(st.outputBytes), st.outputBytes);
    const c = sample(svc, now);
    const last = c.points.length ? c.points[c.points.length - 1] : {inp: 0, out: 0};
    const rate = tr.querySelector(".rate");
    rate.replaceChildren(el("span", {class: "in"}, "▼ " + bytes(Math.round(last.inp)) + "/s"), el("br"),
                         el("span", {class: "out"}, "▲ " + bytes(Math.round(last.out)) + "/s"));
    rate.setAttribute("data-value", String(last.inp + last.out));
    draw(tr.querySelector("canvas"), c.points);
    wanted.push(tr);
  }
  for (const name of charts.keys()) if (!services.some((s) => s.name === name)) charts.delete(name);
  empty(tbody, "#no-services", wanted);
}

// --- chain nodes, errors, connections -----------------------------------------------------

function health(n) {
  if (n.dead) return badge("dead until " + clock(n.deadUntil), "bad");
  if (n.probeFailed) return badge("probe failed", "bad");
  if (n.fails > 0) return badge("failing", "warn");
  return badge("ok", "ok");
}

function nodeRows(owner, hop) {
  return hop.nodes.map((n) => el("tr", {"data-node": owner + "/" + hop.name + "/" + n.name},
    el("td", {}, owner), el("td", {}, hop.name), el("td", {}, n.name + (n.backup ? " (backup)" : "")),
    el("td", {class: "mono"}, n.addr), el("td", {}, health(n)),
    el("td", {class: "num"}, n.fails + " / " + n.maxFails),
    el("td", {class: "msg"}, n.lastError ? n.lastError + " (" + clock(n.lastErrorTime) + ")" : ""),
    el("td", {class: "num"}, n.latency == null ? "" : (n.latency * 1000).toFixed(1) + " ms")));
}

function renderNodes(data) {
  const rows = [];
  for (const c of data.chains || []) {
    for (const hop of c.hops) {
      if (hop.missing) rows.push(el("tr", {}, el("td", {}, c.name), el("td", {}, hop.name),
                                    el("td", {colSpan: 6}, badge("hop not defined", "bad"))));
      else rows.push(...nodeRows(c.name, hop));
    }
  }
  for (const f of data.forwarders || []) rows.push(...nodeRows(f.service + " (forwarder)", f));
  empty($("#nodes tbody"), "#no-nodes", rows);
}

function renderErrors(errors) {
  const rows = errors.slice().reverse().slice(0, 50).map((e) => el("tr", {},
    el("td", {class: "mono"}, clock(e.time)),
    el("td", {}, badge(e.level || "?", e.level === "warning" ? "warn" : "bad")),
    el("td", {}, e.service || ""),
    el("td", {class: "msg mono"}, e.msg == null ? "" : e.msg)));
  empty($("#errors tbody"), "#no-errors", rows);
}

function renderConns(body) {
  if (body) $("#no-conns").textContent = "No open connections.";
  const list = (body && (body.data ? body.data.list : body.list)) || [];
  const rows = list.slice(0, 200).map((c) => el("tr", {"data-sid": c.sid || ""},
    el("td", {}, c.service || ""), el("td", {class: "mono"}, c.client || ""),
    el("td", {class: "mono"}, c.target || ""),
    el("td", {class: "mono"}, Array.isArray(c.route) ? c.route.join(" > ") : (c.route || "")),
    el("td", {class: "num"}, bytes(c.inputBytes)), el("td", {class: "num"}, bytes(c.outputBytes)),
    el("td", {class: "num"}, age(c.age))));
  $("#conns-section").hidden = false;
  empty($("#conns tbody"), "#no-conns", rows);
}

// --- polling ---------------------------------------------------------------------------

async function get(path) {
  const r = await fetch(path, {credentials: "same-origin", cache: "no-store"});
  if (r.status === 401) throw new Error("unauthorized: reload the page to sign in");
  if (!r.ok) { const e = new Error("HTTP " + r.status); e.status = r.status; throw e; }
  return r.json();
}

async function poll() {
  const updated = $("#updated");
  try {
    const data = await get("api/status");
    renderServices(data.services || [], data.time);
    renderNodes(data);
    renderErrors(data.errors || []);
    const open = (data.services || []).reduce((n, s) => n + (s.stats.currentConns || 0), 0);
    if (connsAvailable && open <= MAX_LISTED) {
      try {
        renderConns(await get("api/connections"));
      } catch (e) {
        if (e.status === 404) connsAvailable = false;
      }
    } else if (connsAvailable) {
      renderConns(null);
      $("#no-conns").textContent = open + " open connections: too many to list here (GET api/connections?service=NAME lists them).";
      $("#no-conns").hidden = false;
    }
    updated.textContent = "updated " + clock(data.time);
    updated.classList.remove("stale");
  } catch (e) {
    updated.textContent = "not updating: " + e.message;
    updated.classList.add("stale");
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
