// labbridge headquarters: every lab's machines, live over the websocket; requests to a lab over the fleet link.
// Plain JS, no libraries; every text from a lab is untrusted and only ever set as textContent.
"use strict";

const HQ = { token: sessionStorage.getItem("hq.token"), me: null, labs: {}, ws: null, retry: 1000, page: null };

const q = (sel, root = document) => root.querySelector(sel);
const may = (perm) => !!(HQ.me && HQ.me.permissions.includes(perm));
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "—");
const num = (v, d = 3) => (v === null || v === undefined ? "—" : Number(v).toFixed(d));

function el(tag, props, ...kids) {
  const node = document.createElement(tag);
  Object.entries(props || {}).forEach(([key, value]) => {
    if (value === null || value === undefined || value === false) return;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  });
  kids.flat().forEach((kid) => {
    if (kid !== null && kid !== undefined && kid !== false) node.append(kid instanceof Node ? kid : String(kid));
  });
  return node;
}

function notify(text, kind = "info") {
  const note = el("div", { class: `toast ${kind}` }, text);
  q("#toasts").append(note);
  setTimeout(() => note.remove(), kind === "error" ? 8000 : 4000);
}

async function call(method, path, body) {
  const headers = HQ.token ? { Authorization: `Bearer ${HQ.token}` } : {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await res.json().catch(() => null);
  if (res.status === 401 && path !== "/api/auth/login") leave("Your session ended; sign in again.");
  if (!res.ok) {
    const detail = data && data.detail;
    throw new Error(Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : detail || `${res.status}`);
  }
  return data;
}

// ---------- session ----------
async function enter(ev) {
  ev.preventDefault();
  const form = ev.target;
  try {
    const r = await call("POST", "/api/auth/login", { username: form.username.value, password: form.password.value });
    HQ.token = r.token;
    sessionStorage.setItem("hq.token", r.token);
    form.password.value = "";
    await begin();
  } catch (e) { q("#login-error").textContent = e.message; }
}

function leave(message) {
  HQ.token = null; HQ.me = null;
  sessionStorage.removeItem("hq.token");
  if (HQ.ws) { HQ.ws.onclose = null; HQ.ws.close(); HQ.ws = null; }
  q("#topbar").hidden = true;
  show("login");
  if (message) q("#login-error").textContent = message;
}

async function begin() {
  HQ.me = await call("GET", "/api/auth/me");
  q("#whoami").textContent = `${HQ.me.username} (${HQ.me.role})`;
  q("#topbar").hidden = false;
  document.querySelectorAll("[data-perm]").forEach((node) => { node.hidden = !may(node.dataset.perm); });
  await loadLabs();
  live();
  brokerState();
  setInterval(brokerState, 10000);
  route();
}

async function brokerState() {
  try {
    const s = await call("GET", "/api/fleet/link");
    q("#broker-state").textContent = s.state === "connected" ? "broker: connected" : `broker: ${s.state} — ${s.last_error || ""}`;
  } catch (_) { /* shown on the next try */ }
}

// ---------- live updates ----------
function live() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  HQ.ws = ws;
  ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: HQ.token }));
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "hello") { HQ.retry = 1000; q("#link-state").className = "link up"; }
    else if (msg.type === "fleet.state") {
      const lab = HQ.labs[msg.lab];
      if (!lab) { loadLabs(); return; }
      const i = lab.machines.findIndex((m) => m.machine === msg.machine);
      if (i >= 0) lab.machines[i] = msg.state; else lab.machines.push(msg.state);
      lab.last_seen = msg.sent;
      redraw(msg.lab, msg.machine);
    } else if (msg.type === "fleet.status" || msg.type === "resync") loadLabs();
    else if (msg.type === "fleet.event") onEvent(msg.lab, msg.event);
    else if (msg.type === "ping") ws.send(JSON.stringify({ type: "pong" }));
  };
  ws.onclose = (ev) => {
    q("#link-state").className = "link down";
    if (ev.code === 4001) { leave("Your session ended; sign in again."); return; }
    if (HQ.token) setTimeout(live, HQ.retry);
    HQ.retry = Math.min(HQ.retry * 2, 15000);
  };
}

function onEvent(lab, e) {
  if (e.kind === "alarm.raised") notify(`${lab}/${e.machine}: ALARM ${e.code} — ${e.message}`, "error");
  if (e.kind === "approval.decided") notify(`${lab}/${e.machine}: ${e.key}=${e.value} ${e.state} by ${e.decided_by}`, "ok");
  if (HQ.page && HQ.page.lab === lab && (!e.machine || e.machine === HQ.page.machine)) {
    q("#m-events tbody").prepend(eventRow({ lab, ...e }));
  }
}

// ---------- labs ----------
async function loadLabs() {
  const list = await call("GET", "/api/fleet/labs");
  HQ.labs = Object.fromEntries(list.map((lab) => [lab.id, lab]));
  const box = q("#labs");
  box.replaceChildren(...list.map(labSection));
  q("#no-labs").hidden = list.length > 0;
  if (HQ.page) machinePage();
}

function labSection(lab) {
  return el("section", { class: "lab", "data-lab": lab.id },
    el("h2", {}, lab.name || lab.id, " ",
      el("span", { class: `badge ${lab.online ? "st-run" : "st-disconnected"}` }, lab.online ? "online" : "offline"),
      el("span", { class: "muted" }, ` ${lab.id} · last seen ${when(lab.last_seen)}`)),
    el("div", { class: "cards" }, lab.machines.map((st) => machineCard(lab.id, st))));
}

function machineCard(lab, st) {
  const pos = (st.position && (st.position.work || st.position.machine)) || {};
  const job = st.job;
  return el("article", { class: "card", "data-state": st.state, "data-machine": st.machine },
    el("header", {}, el("a", { href: `#/machine/${encodeURIComponent(lab)}/${encodeURIComponent(st.machine)}` }, st.machine),
      el("span", { class: `badge st-${String(st.state).toLowerCase()}` }, st.state)),
    el("div", { class: "fault" }, st.fault || ""),
    el("div", { class: "mono" }, Object.entries(pos).map(([a, v]) => `${a} ${num(v)}  `).join("") || "position unknown"),
    el("div", { class: "muted" }, `spindle ${num(st.spindle && st.spindle.rpm, 0)} rpm · feed ${num(st.feed, 0)} mm/min`),
    el("ul", { class: "alarms" }, (st.alarms || []).map((a) => el("li", {}, el("b", {}, a.code), " ", a.message))),
    job ? el("div", { class: "muted" }, `${job.program}: ${job.state} ${Math.round((job.fraction || 0) * 100)}%`) : null);
}

function redraw(labId, machine) {
  const lab = HQ.labs[labId];
  const old = document.querySelector(`section.lab[data-lab="${CSS.escape(labId)}"]`);
  if (old) old.replaceWith(labSection(lab));
  if (HQ.page && HQ.page.lab === labId && HQ.page.machine === machine) drawMachineState();
}

// ---------- one machine ----------
function machinePage() {
  const { lab, machine } = HQ.page;
  const info = HQ.labs[lab];
  q("#m-title").textContent = `${info ? info.name || lab : lab} · ${machine}${info && !info.online ? " (lab offline)" : ""}`;
  drawMachineState();
  call("GET", `/api/fleet/events?lab=${encodeURIComponent(lab)}&machine=${encodeURIComponent(machine)}&limit=50`)
    .then((rows) => q("#m-events tbody").replaceChildren(...rows.map(eventRow))).catch(() => {});
}

function drawMachineState() {
  const lab = HQ.labs[HQ.page.lab];
  const st = lab && lab.machines.find((m) => m.machine === HQ.page.machine);
  q("#m-state").replaceChildren(st ? machineCard(HQ.page.lab, st) : el("p", { class: "muted" }, "No state received yet."));
}

async function ask(kind, args = {}) {
  const { lab, machine } = HQ.page;
  q("#m-status").textContent = `asking ${lab} for ${kind}…`;
  try {
    const r = await call("POST", `/api/fleet/labs/${encodeURIComponent(lab)}/machines/${encodeURIComponent(machine)}/requests`, { kind, args });
    q("#m-status").textContent = r.ok ? `${kind}: answered` : `${kind}: refused`;
    q("#m-result").replaceChildren(el("h3", {}, kind), r.ok ? el("pre", { class: "events", id: "m-answer" }, JSON.stringify(r.result, null, 2))
      : el("p", { class: "error", id: "m-answer" }, r.error));
  } catch (e) { q("#m-status").textContent = ""; notify(e.message, "error"); }
}

function eventRow(e) {
  const skip = new Set(["seq", "time", "machine", "kind", "lab", "received_at"]);
  const what = Object.entries(e).filter(([k, v]) => !skip.has(k) && v !== null && v !== "").map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
  return el("tr", { class: `ev-${e.kind.replace(/\W/g, "-")}` }, el("td", {}, when(e.time)), el("td", {}, e.lab || ""),
    el("td", {}, e.machine || "—"), el("td", { class: "mono" }, e.seq), el("td", {}, e.kind), el("td", {}, what));
}

// ---------- lists ----------
async function table(path, selector, row) {
  try { q(`${selector} tbody`).replaceChildren(...(await call("GET", path)).map(row)); }
  catch (e) { notify(e.message, "error"); }
}

const jobRow = (j) => el("tr", {}, el("td", {}, when(j.started_at || j.finished_at)), el("td", {}, j.lab), el("td", {}, j.machine),
  el("td", {}, j.program || "—"), el("td", {}, j.state), el("td", {}, j.percent ?? "—"), el("td", {}, j.line ?? "—"), el("td", {}, j.message));
const userRow = (u) => el("tr", {}, el("td", {}, u.username), el("td", {}, u.role), el("td", {}, u.disabled ? "disabled" : "active"));
const auditRow = (r) => el("tr", { class: `out-${r.outcome}` }, el("td", {}, when(r.time)), el("td", {}, r.username || "—"),
  el("td", {}, r.machine || "—"), el("td", {}, r.action), el("td", {}, r.outcome), el("td", {}, r.detail));

async function addUser(ev) {
  ev.preventDefault();
  const f = ev.target;
  try {
    await call("POST", "/api/users", { username: f.username.value, password: f.password.value, role: f.role.value });
    q("#user-status").textContent = `added ${f.username.value}`;
    f.reset();
  } catch (e) { q("#user-status").textContent = e.message; }
  table("/api/users", "#users-table", userRow);
}

// ---------- routing ----------
function show(name) {
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${name}`; });
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === name));
}

function route() {
  if (!HQ.me) { show("login"); return; }
  const parts = location.hash.replace(/^#\//, "").split("/").map(decodeURIComponent);
  HQ.page = null;
  if (parts[0] === "machine" && parts.length === 3) {
    HQ.page = { lab: parts[1], machine: parts[2] };
    q("#m-result").replaceChildren();
    q("#m-status").textContent = "";
    show("machine");
    machinePage();
    return;
  }
  const name = ["labs", "events", "jobs", "users", "audit"].includes(parts[0]) ? parts[0] : "labs";
  show(name);
  if (name === "events") table("/api/fleet/events?limit=300", "#events-table", eventRow);
  if (name === "jobs") table("/api/fleet/jobs", "#jobs-table", jobRow);
  if (name === "users") table("/api/users", "#users-table", userRow);
  if (name === "audit") table("/api/audit?limit=300", "#audit-table", auditRow);
}

q("#login-form").addEventListener("submit", enter);
q("#signout").addEventListener("click", async () => { await call("POST", "/api/auth/logout").catch(() => {}); leave("Signed out."); });
q("#user-form").addEventListener("submit", addUser);
document.querySelectorAll("#m-actions button[data-kind]").forEach((b) => b.addEventListener("click", () => ask(b.dataset.kind)));
q("#change-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const f = ev.target;
  ask("settings-change", { key: f.key.value, value: f.value.value, reason: f.reason.value });
});
window.addEventListener("hashchange", route);
if (HQ.token) begin().catch(() => leave()); else show("login");
