// labbridge headquarters: every lab's machines, live over the websocket; requests to a lab over the fleet link.
// Plain JS, no libraries; every text from a lab is untrusted and only ever set as textContent.
"use strict";

const HQ = { token: sessionStorage.getItem("hq.token"), me: null, labs: {}, ws: null, retry: 1000, page: null, labPage: null, brokerTimer: null };

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
    const typed = form.password.value;
    form.password.value = "";
    if (r.must_change_password) { chooseFirstPassword(form.username.value, typed, r.token); return; }
    signedIn(r.token);
    await begin();
  } catch (e) { q("#login-error").textContent = e.message; }
}

function signedIn(token) {
  HQ.token = token;
  sessionStorage.setItem("hq.token", token);
}

// ---------- first sign-in ----------
// The one-time admin password printed at the first start works once: its token may only choose the new
// password (every other call answers 403). The token stays in memory, never in sessionStorage.
let firstSignIn = null; // { username, oneTime } while the form is shown

function chooseFirstPassword(username, oneTime, token) {
  HQ.token = token;
  firstSignIn = { username, oneTime };
  q("#first-password-form").reset();
  q("#first-password-error").textContent = "";
  show("first-password");
  q("#first-password-form input[name=password]").focus();
}

async function saveFirstPassword(ev) {
  ev.preventDefault();
  const form = ev.target;
  const error = q("#first-password-error");
  error.textContent = "";
  if (!firstSignIn) return;
  if (form.password.value !== form.repeat.value) { error.textContent = "The two passwords differ; type the same one twice."; return; }
  try {
    await call("POST", "/api/auth/password", { old_password: firstSignIn.oneTime, new_password: form.password.value });
    const r = await call("POST", "/api/auth/login", { username: firstSignIn.username, password: form.password.value });
    firstSignIn = null;
    form.reset();
    signedIn(r.token);
    await begin();
  } catch (e) { error.textContent = e.message; }
}

function leave(message) {
  HQ.token = null; HQ.me = null; firstSignIn = null;
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
  clearInterval(HQ.brokerTimer);  // signing in again must not start a second timer
  HQ.brokerTimer = setInterval(brokerState, 10000);
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
  if (HQ.labPage === lab) {
    q("#l-events tbody").prepend(eventRow({ lab, ...e }));
    if (String(e.kind).startsWith("job.")) labJobs(lab);
  }
}

// ---------- labs ----------
async function loadLabs() {
  const [list, status] = await Promise.all([call("GET", "/api/fleet/labs"), call("GET", "/api/fleet/status")]);
  const since = Object.fromEntries(status.map((s) => [s.id, s.since]));
  HQ.labs = Object.fromEntries(list.map((lab) => [lab.id, { ...lab, since: since[lab.id] }]));
  const box = q("#labs");
  box.replaceChildren(...list.map(labSection));
  q("#no-labs").hidden = list.length > 0;
  if (HQ.page) machinePage();
  if (HQ.labPage) drawLabState();
}

function labSection(lab) {
  return el("section", { class: "lab", "data-lab": lab.id },
    el("h2", {}, el("a", { href: `#/lab/${encodeURIComponent(lab.id)}`, class: "lab-link" }, lab.name || lab.id), " ",
      el("span", { class: `badge ${lab.online ? "st-run" : "st-disconnected"}` }, lab.online ? "online" : "offline"),
      el("span", { class: "muted" }, ` ${lab.id} · ${lab.online ? "online" : "offline"} since ${when(lab.since)}` +
        ` · last seen ${when(lab.last_seen)}`)),
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

// Many labs change many times a second: redraw each changed lab at most once per frame.
const dirty = new Set();
function redraw(labId, machine) {
  if (HQ.page && HQ.page.lab === labId && HQ.page.machine === machine) drawMachineState();
  if (dirty.size === 0) requestAnimationFrame(flushLabs);
  dirty.add(labId);
}

function flushLabs() {
  for (const labId of dirty) {
    const old = document.querySelector(`section.lab[data-lab="${CSS.escape(labId)}"]`);
    if (old && HQ.labs[labId]) old.replaceWith(labSection(HQ.labs[labId]));
  }
  if (HQ.labPage && dirty.has(HQ.labPage)) drawLabState();
  dirty.clear();
}

// ---------- one lab: its machines' active alarms, recent events and jobs ----------
async function labPage() {
  const id = HQ.labPage;
  drawLabState();
  try {
    const d = await call("GET", `/api/fleet/labs/${encodeURIComponent(id)}`);
    if (HQ.labPage !== id) return;
    q("#l-events tbody").replaceChildren(...d.events.map(eventRow));
    q("#l-jobs tbody").replaceChildren(...d.jobs.map(jobRow));
  } catch (e) { q("#l-status").textContent = e.message; }
}

function drawLabState() {
  const id = HQ.labPage;
  const lab = HQ.labs[id];
  q("#l-title").textContent = lab ? `${lab.name || id} (${id})` : id;
  q("#l-status").textContent = lab ? `${lab.online ? "online" : "offline"} since ${when(lab.since)} · last seen ${when(lab.last_seen)}`
    : "This lab has not reported yet.";
  const machines = lab ? lab.machines : [];
  const alarms = machines.flatMap((st) => (st.alarms || []).map((a) => ({ machine: st.machine, ...a })));
  q("#l-alarms").replaceChildren(...alarms.map((a) => el("li", {}, el("b", {}, `${a.machine}: ${a.code}`), " ", a.message)));
  q("#l-no-alarms").hidden = alarms.length > 0;
  q("#l-machines").replaceChildren(...machines.map((st) => machineCard(id, st)));
}

async function labJobs(id) {
  try {
    const rows = await call("GET", `/api/fleet/jobs?lab=${encodeURIComponent(id)}&limit=30`);
    if (HQ.labPage === id) q("#l-jobs tbody").replaceChildren(...rows.map(jobRow));
  } catch (_) { /* the next job event tries again */ }
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
  HQ.labPage = null;
  if (parts[0] === "lab" && parts.length === 2) {
    HQ.labPage = parts[1];
    show("lab");
    labPage();
    return;
  }
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
q("#first-password-form").addEventListener("submit", saveFirstPassword);
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
