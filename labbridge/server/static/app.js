// labbridge dashboard: plain JS, no libraries, every asset served by the labbridge server.
"use strict";

const S = {
  token: sessionStorage.getItem("lb.token"),
  me: null,
  machines: {},      // id -> description from /api/machines (config part)
  states: {},        // id -> live state (websocket)
  queue: [],
  ws: null,
  wsRetry: 1000,
  program: null,     // {hash, name, text}
  check: null,       // last check result
  dirty: new Set(),
};

// ---------- helpers ----------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const $ = (sel, root = document) => root.querySelector(sel);
const can = (perm) => !!(S.me && S.me.permissions.includes(perm));
const fmt = (v, d = 3) => (v === null || v === undefined || Number.isNaN(v)) ? "—" : Number(v).toFixed(d);
const time = (t) => t ? new Date(t * 1000).toLocaleString() : "—";

function toast(message, kind = "info") {
  const el = h("div", { class: `toast ${kind}` }, message);
  $("#toasts").append(el);
  setTimeout(() => el.remove(), kind === "error" ? 8000 : 4000);
}

async function api(method, path, body, isForm) {
  const headers = {};
  if (S.token) headers["Authorization"] = `Bearer ${S.token}`;
  let payload;
  if (body !== undefined) {
    if (isForm) payload = body;
    else { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  }
  const res = await fetch(path, { method, headers, body: payload });
  let data = null;
  try { data = await res.json(); } catch (_) { /* empty body */ }
  if (res.status === 401 && path !== "/api/auth/login") { signedOut("Your session ended; sign in again."); }
  if (!res.ok) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ");
    const err = new Error(detail || `${res.status} ${res.statusText}`);
    err.status = res.status;
    throw err;
  }
  return data;
}

// ---------- sign in / out ----------
async function signIn(ev) {
  ev.preventDefault();
  const form = ev.target;
  $("#login-error").textContent = "";
  try {
    const r = await api("POST", "/api/auth/login", { username: form.username.value, password: form.password.value });
    S.token = r.token;
    sessionStorage.setItem("lb.token", r.token);
    form.password.value = "";
    await start();
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
}

function signedOut(message) {
  S.token = null; S.me = null;
  sessionStorage.removeItem("lb.token");
  if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
  $("#topbar").hidden = true;
  $("#hold-all").hidden = true;
  showView("login");
  if (message) $("#login-error").textContent = message;
}

async function signOut() {
  try { await api("POST", "/api/auth/logout"); } catch (_) { /* already gone */ }
  signedOut("Signed out.");
}

async function changePassword() {
  const oldPw = prompt("Current password");
  if (oldPw === null) return;
  const newPw = prompt("New password (at least 8 characters)");
  if (newPw === null) return;
  try {
    await api("POST", "/api/auth/password", { old_password: oldPw, new_password: newPw });
    signedOut("Password changed; sign in with the new one.");
  } catch (e) { toast(e.message, "error"); }
}

async function start() {
  S.me = await api("GET", "/api/auth/me");
  document.body.dataset.role = S.me.role;
  $("#whoami").textContent = `${S.me.username} (${S.me.role})`;
  $("#topbar").hidden = false;
  applyPerms(document);
  const list = await api("GET", "/api/machines");
  S.machines = {}; S.states = {};
  for (const m of list) { S.machines[m.id] = m; S.states[m.id] = m.state; }
  fillMachineSelects();
  buildCards();
  connectWs();
  await refreshQueue();
  route();
}

function applyPerms(root) {
  for (const el of root.querySelectorAll("[data-perm]")) el.hidden = !can(el.dataset.perm);
}

// ---------- websocket ----------
function connectWs() {
  if (!S.token) return;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws`);
  S.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: S.token }));
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    switch (msg.type) {
      case "hello":
        S.wsRetry = 1000;
        $("#link-state").className = "link up";
        ws.send(JSON.stringify({ type: "subscribe", machines: "*" }));
        break;
      case "snapshot": S.states[msg.machine] = msg.state; markDirty(msg.machine); break;
      case "state":
        S.states[msg.machine] = Object.assign({}, S.states[msg.machine] || {}, msg.changes);
        markDirty(msg.machine);
        break;
      case "alarm": toast(`${msg.machine}: ALARM ${msg.alarm.code} — ${msg.alarm.message}`, "error"); break;
      case "queue": refreshQueue(); if (!$("#view-queue").hidden) loadJobs(); break;
      case "job":
        toast(`${msg.machine}: job ${msg.outcome}${msg.message ? " — " + msg.message : ""}`,
          msg.outcome === "done" || msg.outcome === "completed" ? "ok" : "error");
        refreshQueue();
        break;
      case "ping": ws.send(JSON.stringify({ type: "pong" })); break;
      case "error": toast(msg.message, "error"); break;
      case "result": toast(`${msg.machine}: ${msg.result}`, "ok"); break;
      default: break;
    }
  };
  ws.onclose = (ev) => {
    $("#link-state").className = "link down";
    S.ws = null;
    if (ev.code === 4001) { signedOut("Your session ended; sign in again."); return; }
    if (S.token) setTimeout(connectWs, S.wsRetry);
    S.wsRetry = Math.min(S.wsRetry * 2, 15000);
  };
}

function markDirty(id) {
  S.dirty.add(id);
  requestAnimationFrame(() => {
    for (const m of S.dirty) updateCard(m);
    S.dirty.clear();
  });
}

// ---------- machine cards ----------
const ALARM_STATES = new Set(["Alarm", "Door"]);

function buildCards() {
  const box = $("#cards");
  box.replaceChildren();
  for (const id of Object.keys(S.machines)) box.append(card(id));
  for (const id of Object.keys(S.machines)) updateCard(id);
  applyPerms(box);
  for (const id of Object.keys(S.machines)) {
    const caps = S.machines[id].capabilities || [];
    for (const el of document.querySelectorAll(`.card[data-machine="${id}"] [data-cap]`)) {
      if (!caps.includes(el.dataset.cap)) el.hidden = true;  // the controller cannot do it
    }
  }
}

function card(id) {
  const m = S.machines[id];
  const axes = m.axes;
  const send = (action, body) => command(id, action, body);
  const jogStep = h("select", { class: "jog-step", title: "jog step (mm)" },
    ...[0.1, 1, 10, 50].map((v) => h("option", { value: v, selected: v === 1 }, `${v} mm`)));
  const jogBtn = (axis, sign) => h("button", {
    class: "jog", onclick: () => send("jog", {
      [axis.toLowerCase()]: sign * Number(jogStep.value), feed: Math.min(1000, m.max_feed), relative: true }),
  }, `${axis}${sign > 0 ? "+" : "−"}`);
  const ovr = (target, delta) => h("button", { class: "small", onclick: () => {
    const cur = (S.states[id].overrides || {})[target] || 100;
    send("override", { target, value: Math.max(10, Math.min(200, cur + delta)) });
  } }, `${target[0].toUpperCase()}${delta > 0 ? "+" : "−"}`);
  return h("article", { class: "card", dataset: { machine: id } },
    h("header", {},
      h("div", {}, h("strong", {}, m.name), h("div", { class: "muted" }, `${id} · ${m.controller}${m.simulated ? " · simulated" : ""}`)),
      h("span", { class: "badge" }, "…")),
    h("div", { class: "fault" }),
    h("table", { class: "pos" },
      h("tr", {}, h("th", {}), ...axes.map((a) => h("th", {}, a))),
      h("tr", {}, h("th", { title: "work position" }, "WPos"), ...axes.map((a) => h("td", { class: `wpos wpos-${a}` }, "—"))),
      h("tr", {}, h("th", { title: "machine position" }, "MPos"), ...axes.map((a) => h("td", { class: `mpos mpos-${a}` }, "—")))),
    h("dl", { class: "facts" },
      h("dt", {}, "Spindle"), h("dd", { class: "spindle" }, "—"),
      h("dt", {}, "Feed"), h("dd", { class: "feed" }, "—"),
      h("dt", {}, "Overrides"), h("dd", { class: "overrides" }, "—"),
      h("dt", {}, "Line"), h("dd", { class: "line" }, "—")),
    h("ul", { class: "alarms" }),
    h("div", { class: "job", hidden: true },
      h("div", { class: "job-title" }),
      h("div", { class: "progress" }, h("div", { class: "bar" })),
      h("div", { class: "job-detail muted" })),
    h("div", { class: "controls" },
      h("button", { class: "hold", "data-perm": "hold", onclick: () => send("hold") }, "Hold"),
      h("button", { "data-perm": "job.resume", "data-cap": "cycle_start", onclick: () => send("resume") }, "Resume"),
      h("button", { "data-perm": "cancel", class: "danger", onclick: () => send("cancel") }, "Cancel"),
      h("button", { "data-perm": "home", "data-cap": "home", onclick: () => send("home") }, "Home"),
      h("button", { "data-perm": "unlock", "data-cap": "unlock", onclick: () => send("unlock") }, "Unlock"),
      h("button", { "data-perm": "reset", "data-cap": "soft_reset", onclick: () => send("reset") }, "Reset")),
    h("div", { class: "hint" }),
    h("div", { class: "jogpad", "data-perm": "jog", "data-cap": "jog" },
      ...axes.flatMap((a) => [jogBtn(a, -1), jogBtn(a, +1)]), jogStep),
    h("div", { class: "ovr", "data-perm": "override", "data-cap": "override" }, "Overrides: ",
      ovr("feed", -10), ovr("feed", 10), ovr("spindle", -10), ovr("spindle", 10),
      ...[25, 50, 100].map((v) => h("button", { class: "small", onclick: () => send("override", { target: "rapid", value: v }) }, `R${v}`))),
    h("div", { class: "card-queue" }));
}

function updateCard(id) {
  const el = document.querySelector(`.card[data-machine="${id}"]`);
  const st = S.states[id];
  if (!el || !st) return;
  const badge = $(".badge", el);
  badge.textContent = st.state;
  badge.className = `badge st-${st.state.toLowerCase()}`;
  el.dataset.state = st.state;
  $(".fault", el).textContent = st.fault || "";
  const pos = st.position || {};
  for (const a of S.machines[id].axes) {
    $(`.wpos-${a}`, el).textContent = fmt(pos.work && pos.work[a]);
    $(`.mpos-${a}`, el).textContent = fmt(pos.machine && pos.machine[a]);
  }
  const sp = st.spindle || {};
  const dir = { cw: "CW (M3)", ccw: "CCW (M4)", off: "off" }[sp.direction] || sp.direction || "";
  $(".spindle", el).textContent = sp.rpm === null || sp.rpm === undefined ? "—" : `${fmt(sp.rpm, 0)} rpm ${dir}`;
  $(".feed", el).textContent = st.feed === null || st.feed === undefined ? "—" : `${fmt(st.feed, 0)} mm/min`;
  const o = st.overrides || {};
  $(".overrides", el).textContent = o.feed === null || o.feed === undefined ? "—"
    : `feed ${o.feed}% · rapid ${o.rapid ?? "—"}% · spindle ${o.spindle ?? "—"}%`;
  $(".line", el).textContent = st.line_number ?? (st.job && st.job.line_number) ?? "—";
  const caps = S.machines[id].capabilities || [];
  $(".hint", el).textContent = st.state === "Alarm" && !(st.alarms || []).length && st.homed === false
    ? (caps.includes("home") && can("home") ? "Not homed: press Home before running a job." : "Not homed: an operator must home this machine.")
    : "";
  const alarms = $(".alarms", el);
  alarms.replaceChildren(...(st.alarms || []).map((a) => h("li", {}, h("b", {}, a.code), " ", a.message)));
  const job = st.job;
  const jobBox = $(".job", el);
  jobBox.hidden = !job;
  if (job) {
    const pct = Math.round((job.fraction || 0) * 100);
    $(".job-title", el).textContent = `${job.program} — ${job.state} ${pct}%`;
    $(".bar", el).style.width = `${pct}%`;
    const eta = job.eta_seconds === null || job.eta_seconds === undefined ? "" : ` · ETA ${fmtDuration(job.eta_seconds)}`;
    $(".job-detail", el).textContent = `${job.lines_acked}/${job.lines_total} lines${eta}${job.message ? " · " + job.message : ""}`;
  }
}

function fmtDuration(s) {
  s = Math.max(0, Math.round(s));
  const m = Math.floor(s / 60), sec = s % 60;
  return m ? `${m} min ${sec} s` : `${sec} s`;
}

async function command(id, action, body) {
  try {
    const r = await api("POST", `/api/machines/${encodeURIComponent(id)}/${action}`, body || {});
    toast(`${id}: ${action} — ${typeof r.result === "string" ? r.result : "ok"}`, "ok");
  } catch (e) {
    toast(e.message, "error");
  }
}

async function holdAll() {
  const ids = Object.keys(S.states).filter((id) => S.states[id].connected);
  if (!ids.length) { toast("No machine is connected.", "error"); return; }
  if (S.ws && S.ws.readyState === 1) {
    for (const id of ids) S.ws.send(JSON.stringify({ type: "hold", machine: id }));
  } else {
    await Promise.all(ids.map((id) => command(id, "hold")));
  }
}

// ---------- queue ----------
async function refreshQueue() {
  if (!S.me) return;
  try {
    S.queue = await api("GET", `/api/queue${$("#queue-all").checked ? "?all=true" : ""}`);
  } catch (e) { return; }
  const body = $("#queue-table tbody");
  body.replaceChildren(...S.queue.map(queueRow));
  for (const id of Object.keys(S.machines)) {
    const box = document.querySelector(`.card[data-machine="${id}"] .card-queue`);
    if (!box) continue;
    const mine = S.queue.filter((e) => e.machine === id && e.state === "queued");
    box.replaceChildren(...(mine.length ? [h("div", { class: "muted" }, "Queued:")] : []),
      ...mine.map((e) => h("div", { class: "qitem" }, `#${e.id} ${e.name} (${e.submitted_by})`,
        can("job.start") ? h("button", { class: "small start", onclick: () => startEntry(e.id) }, "Start") : null)));
  }
}

function queueRow(e) {
  const mayRemove = e.state === "queued" && can("queue.remove") &&
    (S.me.role !== "trainer" || e.submitted_by === S.me.username);
  return h("tr", { dataset: { entry: e.id } },
    h("td", {}, e.id), h("td", {}, e.machine), h("td", {}, e.name, h("div", { class: "muted mono" }, e.hash.slice(0, 12))),
    h("td", {}, e.submitted_by), h("td", {}, e.note), h("td", { class: "qstate" }, e.state, e.message ? ` — ${e.message}` : ""),
    h("td", {},
      e.state === "queued" && can("job.start") ? h("button", { class: "small start", onclick: () => startEntry(e.id) }, "Start") : null,
      mayRemove ? h("button", { class: "small", onclick: () => removeEntry(e.id) }, "Remove") : null));
}

async function loadJobs() {
  try {
    const jobs = await api("GET", "/api/jobs?limit=30");
    $("#jobs-table tbody").replaceChildren(...jobs.map((j) => h("tr", { class: `out-${j.state}` },
      h("td", {}, time(j.started_at || j.created_at)), h("td", {}, j.machine), h("td", {}, j.program_name),
      h("td", {}, j.user || "—"), h("td", {}, j.state), h("td", {}, `${j.lines_acked}/${j.lines_total}`),
      h("td", {}, j.error_line ? `line ${j.error_line}: ${j.error_message || ""}` : (j.message || "")))));
  } catch (e) { /* the list is a convenience; errors show elsewhere */ }
}

async function startEntry(id) {
  try { await api("POST", `/api/queue/${id}/start`); toast(`Job #${id} started`, "ok"); }
  catch (e) { toast(e.message, "error"); }
  refreshQueue();
}
async function removeEntry(id) {
  try { await api("DELETE", `/api/queue/${id}`); } catch (e) { toast(e.message, "error"); }
  refreshQueue();
}

// ---------- programs ----------
function fillMachineSelects() {
  for (const sel of [$("#program-machine"), $("#diag-machine")]) {
    sel.replaceChildren(...Object.values(S.machines).map((m) => h("option", { value: m.id }, `${m.id} — ${m.name}`)));
  }
}

async function uploadAndCheck() {
  const file = $("#program-file").files[0];
  const machine = $("#program-machine").value;
  $("#check-summary").textContent = "checking…";
  $("#submit-status").textContent = "";
  try {
    let info;
    if (file) {
      const fd = new FormData();
      fd.append("file", file, file.name);
      info = await api("POST", "/api/programs", fd, true);
    } else {
      info = await api("POST", "/api/programs/text", { name: $("#program-name").value || "pasted.nc", text: $("#program-text").value });
    }
    const prog = await api("GET", `/api/programs/${info.hash}`);
    S.program = { hash: info.hash, name: info.name, text: prog.text };
    S.check = await api("POST", `/api/programs/${info.hash}/check`, { machine, preview: true });
    showCheck();
  } catch (e) {
    $("#check-summary").textContent = "";
    $("#check-result").hidden = true;
    toast(e.message, "error");
    $("#check-summary").append(h("span", { class: "error" }, e.message));
  }
}

function showCheck() {
  const r = S.check.report;
  const errors = r.diagnostics.filter((d) => d.severity === "error").length;
  const warnings = r.diagnostics.length - errors;
  const sum = $("#check-summary");
  sum.replaceChildren(h("span", { class: r.ok ? "ok" : "error" },
    r.ok ? "OK" : "ERRORS", ` — ${errors} error(s), ${warnings} warning(s), ${r.lines} lines`,
    r.estimated_seconds ? `, about ${fmtDuration(r.estimated_seconds)}` : ""));
  $("#check-result").hidden = false;
  const lines = S.program.text.replace(/\r?\n$/, "").split(/\r?\n/);
  const byLine = {};
  for (const d of r.diagnostics) (byLine[d.line] = byLine[d.line] || []).push(d);
  const max = Math.min(lines.length, 5000);
  const listing = $("#listing");
  listing.replaceChildren(...lines.slice(0, max).map((text, i) => {
    const ds = byLine[i + 1];
    const sev = ds ? (ds.some((d) => d.severity === "error") ? "error" : "warning") : "";
    return h("li", { id: `L${i + 1}`, class: sev, title: ds ? ds.map((d) => d.message).join("\n") : null }, text || " ");
  }));
  if (lines.length > max) listing.append(h("li", { class: "muted" }, `… ${lines.length - max} more lines not shown`));
  $("#diagnostics").replaceChildren(...(r.diagnostics.length ? r.diagnostics.map((d) =>
    h("li", { class: `diag ${d.severity}`, dataset: { line: d.line }, onclick: () => jumpTo(d.line) },
      h("b", {}, `line ${d.line}`), ` ${d.severity}[${d.code}]: ${d.message}`)) : [h("li", { class: "ok" }, "No problems found.")]));
  drawPreview();
  $(".submit-row").hidden = !can("queue.submit") || !r.ok;
}

function jumpTo(line) {
  const li = document.getElementById(`L${line}`);
  if (!li) return;
  for (const el of document.querySelectorAll("#listing li.current")) el.classList.remove("current");
  li.classList.add("current");
  li.scrollIntoView({ block: "center", behavior: "smooth" });
  drawPreview(line);
}

async function submitToQueue() {
  try {
    const e = await api("POST", "/api/queue", { program: S.check.hash, machine: S.check.machine, note: $("#submit-note").value });
    $("#submit-status").textContent = `queued as #${e.id} on ${e.machine}`;
    refreshQueue();
  } catch (err) { $("#submit-status").textContent = err.message; toast(err.message, "error"); }
}

// ---------- toolpath preview ----------
function drawPreview(highlight) {
  const p = S.check && S.check.preview;
  if (!p) return;
  if (p.lathe) {
    drawView($("#view-xy"), p, 2, 0, highlight, "Z", "X (diameter)");   // lathe: Z across, X up
    $("#view-xz").parentElement.hidden = true;
  } else {
    $("#view-xz").parentElement.hidden = false;
    drawView($("#view-xy"), p, 0, 1, highlight, "X", "Y");
    drawView($("#view-xz"), p, 0, 2, highlight, "X", "Z");
  }
}

function drawView(canvas, p, ai, bi, highlight, aName, bName) {
  const names = ["X", "Y", "Z"];
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 24;
  ctx.clearRect(0, 0, W, H);
  const env = p.envelope;
  const ea = env[names[ai]] || [0, 0], eb = env[names[bi]] || [0, 0];
  let minA = ea[0], maxA = ea[1], minB = eb[0], maxB = eb[1];
  for (const s of p.segments) for (const pt of s.points) {
    minA = Math.min(minA, pt[ai]); maxA = Math.max(maxA, pt[ai]);
    minB = Math.min(minB, pt[bi]); maxB = Math.max(maxB, pt[bi]);
  }
  const spanA = Math.max(maxA - minA, 1e-6), spanB = Math.max(maxB - minB, 1e-6);
  const k = Math.min((W - 2 * pad) / spanA, (H - 2 * pad) / spanB);
  const X = (a) => pad + (a - minA) * k;
  const Y = (b) => H - pad - (b - minB) * k;
  // envelope
  ctx.strokeStyle = "#2a7"; ctx.lineWidth = 1.5; ctx.setLineDash([]);
  ctx.strokeRect(X(ea[0]), Y(eb[1]), (ea[1] - ea[0]) * k, (eb[1] - eb[0]) * k);
  // keep-out boxes
  for (const box of p.keep_out) {
    const a0 = box.min[names[ai]], a1 = box.max[names[ai]], b0 = box.min[names[bi]], b1 = box.max[names[bi]];
    if ([a0, a1, b0, b1].some((v) => v === undefined)) continue;
    ctx.fillStyle = "rgba(230,140,0,0.25)"; ctx.strokeStyle = "#e80";
    ctx.fillRect(X(a0), Y(b1), (a1 - a0) * k, (b1 - b0) * k);
    ctx.strokeRect(X(a0), Y(b1), (a1 - a0) * k, (b1 - b0) * k);
  }
  // segments: good first, violations on top
  for (const pass of [false, true]) {
    for (const s of p.segments) {
      if (s.bad !== pass) continue;
      ctx.beginPath();
      ctx.setLineDash(s.kind === "traverse" && !s.bad ? [4, 4] : []);
      ctx.strokeStyle = s.bad ? "#e11" : (s.kind === "traverse" ? "#999" : "#16c");
      ctx.lineWidth = s.bad ? 2.5 : (s.line === highlight ? 3 : 1.2);
      if (s.line === highlight && !s.bad) ctx.strokeStyle = "#a0f";
      s.points.forEach((pt, i) => (i ? ctx.lineTo(X(pt[ai]), Y(pt[bi])) : ctx.moveTo(X(pt[ai]), Y(pt[bi]))));
      ctx.stroke();
    }
  }
  ctx.setLineDash([]);
  ctx.fillStyle = "#555"; ctx.font = "12px sans-serif";
  ctx.fillText(`${aName} →`, W - 60, H - 6); ctx.fillText(`↑ ${bName}`, 4, 14);
  canvas.dataset.segments = p.segments.length;
  canvas.dataset.bad = p.segments.filter((s) => s.bad).length;
}

// ---------- diagnostics ----------
async function loadDiagnostics() {
  const id = $("#diag-machine").value;
  const box = $("#diag-body");
  box.replaceChildren(h("p", { class: "muted" }, "loading…"));
  try {
    const d = await api("GET", `/api/machines/${encodeURIComponent(id)}/diagnostics`);
    const sec = (title, ...content) => h("section", { class: "diag-sec" }, h("h3", {}, title), ...content);
    const show = (k, v) => (/(_since|_attempt|time)$/.test(k) && typeof v === "number") ? time(v)
      : (typeof v === "object" && v !== null ? JSON.stringify(v) : String(v ?? "—"));
    const kv = (obj) => h("table", { class: "grid" }, ...Object.entries(obj || {}).map(([k, v]) =>
      h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, show(k, v)))));
    const settings = d.settings || {};
    const described = d.settings_described || {};
    const settingsTable = h("table", { class: "grid", id: "settings-table" }, ...Object.entries(settings).map(([k, v]) =>
      h("tr", {}, h("th", {}, `$${k}`), h("td", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : String(v)),
        h("td", { class: "muted" }, described[k] ? `${described[k].name}${described[k].unit ? " (" + described[k].unit + ")" : ""}` : ""),
        can("settings.write") ? h("td", {}, h("button", { class: "small", onclick: () => editSetting(id, k, v) }, "Edit")) : null)));
    const mism = Array.isArray(d.mismatches) ? d.mismatches : Object.entries(d.mismatches || {}).map(([k, v]) => ({ setting: k, ...(typeof v === "object" ? v : { value: v }) }));
    box.replaceChildren(
      sec("Controller", kv({ controller: d.controller, driver: d.driver, firmware: d.firmware, simulated: d.simulated, build: d.build_info })),
      sec("Connection", kv(d.connection)),
      sec("Settings vs config", mism.length ? h("ul", { class: "mismatch" }, ...mism.map((m) => h("li", { class: "error" }, typeof m === "string" ? m : JSON.stringify(m)))) : h("p", { class: "ok" }, d.settings ? "No mismatches." : "Not known yet.")),
      sec("Settings", Object.keys(settings).length ? settingsTable : h("p", { class: "muted" }, "Not read yet.")),
      sec("Alarm and error history", (d.alarm_history || []).length ? h("table", { class: "grid" }, ...d.alarm_history.map((a) =>
        h("tr", {}, h("td", {}, time(a.time)), h("td", {}, a.code), h("td", {}, a.message), h("td", { class: "muted" }, a.source))))
        : h("p", { class: "muted" }, "None recorded.")),
      sec("Recent log events", !(d.recent_events || []).length ? h("p", { class: "muted" }, "None at this log level.") : h("pre", { class: "events" }, (d.recent_events || []).slice(-60).map((e) =>
        `${e.timestamp || ""} ${e.level || ""} ${e.event || ""} ${JSON.stringify(Object.fromEntries(Object.entries(e).filter(([k]) => !["timestamp", "level", "event", "machine"].includes(k))))}`).join("\n"))));
  } catch (e) { box.replaceChildren(h("p", { class: "error" }, e.message)); }
}

async function editSetting(machine, key, current) {
  const value = prompt(`New value for ${key} on ${machine}`, typeof current === "object" ? "" : String(current));
  if (value === null) return;
  try {
    await api("PUT", `/api/machines/${encodeURIComponent(machine)}/settings/${encodeURIComponent(key)}`, { value });
    toast(`${machine}: ${key} = ${value}`, "ok");
    loadDiagnostics();
  } catch (e) { toast(e.message, "error"); }
}

// ---------- users & audit ----------
async function loadUsers() {
  try {
    const users = await api("GET", "/api/users");
    $("#users-table tbody").replaceChildren(...users.map((u) => {
      const role = h("select", { onchange: (ev) => patchUser(u.username, { role: ev.target.value }) },
        ...["viewer", "trainer", "operator", "technician", "admin"].map((r) => h("option", { selected: r === u.role }, r)));
      return h("tr", { dataset: { user: u.username } }, h("td", {}, u.username), h("td", {}, role),
        h("td", {}, u.disabled ? "disabled" : "active"),
        h("td", {},
          h("button", { class: "small", onclick: () => patchUser(u.username, { disabled: !u.disabled }) }, u.disabled ? "Enable" : "Disable"),
          h("button", { class: "small", onclick: () => { const pw = prompt(`New password for ${u.username} (8+ characters)`); if (pw) patchUser(u.username, { password: pw }); } }, "Set password"),
          h("button", { class: "small danger", onclick: () => { if (confirm(`Delete ${u.username}?`)) deleteUser(u.username); } }, "Delete")));
    }));
    const tokens = await api("GET", "/api/tokens");
    $("#tokens-table tbody").replaceChildren(...tokens.map((t) => h("tr", {},
      h("td", { class: "mono" }, t.id), h("td", {}, t.username), h("td", {}, time(t.created_at)), h("td", {}, time(t.last_used)),
      h("td", {}, t.revoked_at ? "revoked" : (t.expires_at * 1000 < Date.now() ? "expired" : "valid")),
      h("td", {}, t.revoked_at ? null : h("button", { class: "small", onclick: () => revokeToken(t.id) }, "Revoke")))));
  } catch (e) { toast(e.message, "error"); }
}
async function patchUser(name, body) {
  try { await api("PATCH", `/api/users/${encodeURIComponent(name)}`, body); toast(`${name} updated`, "ok"); }
  catch (e) { toast(e.message, "error"); }
  loadUsers();
}
async function deleteUser(name) {
  try { await api("DELETE", `/api/users/${encodeURIComponent(name)}`); } catch (e) { toast(e.message, "error"); }
  loadUsers();
}
async function revokeToken(id) {
  try { await api("DELETE", `/api/tokens/${id}`); } catch (e) { toast(e.message, "error"); }
  loadUsers();
}
async function addUser(ev) {
  ev.preventDefault();
  const f = ev.target;
  try {
    await api("POST", "/api/users", { username: f.username.value, password: f.password.value, role: f.role.value });
    $("#user-status").textContent = `added ${f.username.value}`;
    f.reset();
  } catch (e) { $("#user-status").textContent = e.message; }
  loadUsers();
}
async function loadAudit() {
  try {
    const rows = await api("GET", "/api/audit?limit=300");
    $("#audit-table tbody").replaceChildren(...rows.map((r) => h("tr", { class: `out-${r.outcome}` },
      h("td", {}, time(r.time)), h("td", {}, r.username || "—"), h("td", {}, r.machine || "—"), h("td", {}, r.action),
      h("td", {}, r.outcome), h("td", {}, r.detail))));
  } catch (e) { toast(e.message, "error"); }
}

// ---------- routing ----------
function showView(name) {
  for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${name}`;
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.view === name);
  $("#hold-all").hidden = !(S.me && can("hold")) || name === "login";
}

function route() {
  if (!S.me) { showView("login"); return; }
  let name = (location.hash.replace(/^#\//, "") || "machines").split("?")[0];
  const link = document.querySelector(`#nav a[data-view="${name}"]`);
  if (!link || link.hidden) name = "machines";
  showView(name);
  if (name === "queue") { refreshQueue(); loadJobs(); }
  if (name === "diagnostics") loadDiagnostics();
  if (name === "users") loadUsers();
  if (name === "audit") loadAudit();
}

function init() {
  $("#login-form").addEventListener("submit", signIn);
  $("#signout").addEventListener("click", signOut);
  $("#password").addEventListener("click", changePassword);
  $("#hold-all").addEventListener("click", holdAll);
  $("#check-btn").addEventListener("click", uploadAndCheck);
  $("#submit-btn").addEventListener("click", submitToQueue);
  $("#queue-all").addEventListener("change", refreshQueue);
  $("#diag-refresh").addEventListener("click", loadDiagnostics);
  $("#diag-machine").addEventListener("change", loadDiagnostics);
  $("#user-form").addEventListener("submit", addUser);
  $("#program-text").addEventListener("input", () => { $("#program-file").value = ""; });
  $("#program-file").addEventListener("change", (ev) => {
    const f = ev.target.files[0];
    if (f) $("#program-name").value = f.name;
  });
  window.addEventListener("hashchange", route);
  if (S.token) start().catch(() => signedOut());
  else showView("login");
}

init();
