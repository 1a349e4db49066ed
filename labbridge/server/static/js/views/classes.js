// Class mode for the trainer: open a class (its code large, with a QR code to scan), watch the students' attempts
// arrive live, see who passes and which errors are most common, look at an attempt and approve it into the queue.
// Students' names and programs are untrusted text: they are only ever set as text, never as markup.
import { api } from "../api.js";
import { $, h, toast } from "../dom.js";
import { dateTime, explain, t, word } from "../i18n.js";
import { diagnosticItems, listingItems, showLine, summary } from "../report.js";
import { isShown } from "../shell.js";
import { state, subscribe } from "../store.js";
import { drawToolpath } from "./preview.js";
import { refreshQueue } from "./queue.js";

let current = null;   // the class shown: {code, name, machine, url, qr, state, expires_at, summary}
let attempt = null;   // the attempt shown: {id, student, text, report, preview, ok, queue_entry}
let reloadTimer = null;

function fillMachineSelect() {
  $("#class-machine").replaceChildren(...Object.values(state.machines).map((m) =>
    h("option", { value: m.id }, t("machine.option", { id: m.id, name: m.name }))));
}

async function openClass(ev) {
  ev.preventDefault();
  const f = ev.target;
  try {
    const cls = await api("POST", "/api/classes", { name: f.elements.name.value, machine: f.elements.machine.value,
      minutes: Number(f.elements.minutes.value) });
    f.elements.name.value = "";
    await showClass(cls.code);
  } catch (e) { toast(e.message, "error"); }
  loadList();
}

async function loadList() {
  try {
    const classes = await api("GET", "/api/classes");
    $("#class-list").replaceChildren(...classes.map((c) => h("button", {
      class: `class-chip st-${c.state}`, dataset: { code: c.code }, onclick: () => showClass(c.code) },
    h("b", {}, c.code), " ", c.name, " · ", word("class_state", c.state),
    " · ", t("classes.n_attempts", { count: c.submissions }))));
  } catch (e) { toast(e.message, "error"); }
}

async function showClass(code) {
  try {
    current = await api("GET", `/api/classes/${encodeURIComponent(code)}`);
  } catch (e) { toast(e.message, "error"); return; }
  attempt = null;
  $("#class-attempt").hidden = true;
  renderHead();
  await loadAttempts();
}

function renderHead() {
  $("#class-current").hidden = false;
  $("#class-code").textContent = current.code;
  $("#class-title").textContent = t("classes.heading", { name: current.name, machine: current.machine });
  $("#class-url").textContent = current.url;
  $("#class-qr").src = current.qr;
  $("#class-qr").alt = t("classes.qr_alt", { url: current.url });
  const open = current.state === "open";
  $("#class-state").textContent = open ? t("classes.open_until", { time: dateTime(current.expires_at) })
    : t("classes.ended", { state: word("class_state", current.state), time: dateTime(current.delete_after) });
  $("#class-close").hidden = !open;
  $("#class-current").dataset.state = current.state;
}

function studentRow(s) {
  const latest = s.latest_ok ? h("span", { class: "ok" }, t("classes.passes"))
    : h("span", { class: "error" }, t("check.n_errors", { count: s.latest_errors }));
  return h("tr", { dataset: { student: s.student } }, h("td", {}, s.student), h("td", {}, s.attempts),
    h("td", {}, latest), h("td", {}, s.approved || ""));
}

function commonItem(c) {
  return h("li", { dataset: { code: c.code } }, h("b", {}, c.code), " — ", explain("diag_code", c.code, ""),
    h("div", { class: "muted" }, t("classes.common_counts", {
      students: t("classes.n_students", { count: c.students }),
      attempts: t("classes.n_attempts", { count: c.attempts }) })));
}

/** The first error in the trainer's words (what its code means); the student's own message is its tooltip. */
function firstError(a) {
  if (!a.first_error) return "";
  const e = a.first_error;
  return t("classes.first_error", { line: e.line, code: e.code, message: explain("diag_code", e.code, e.message) });
}

function attemptRow(a) {
  const result = a.ok ? h("span", { class: "ok" }, t("check.ok"))
    : h("span", { class: "error" }, t("check.n_errors", { count: a.errors }));
  const queued = a.queue_entry ? h("span", { class: "muted" }, t("classes.in_queue", { id: a.queue_entry })) : null;
  return h("tr", { dataset: { attempt: a.id }, class: attempt && attempt.id === a.id ? "current" : null },
    h("td", {}, dateTime(a.time)), h("td", {}, a.student), h("td", {}, result),
    h("td", { title: a.first_error ? a.first_error.message : null }, firstError(a)),
    h("td", {}, h("button", { class: "small", onclick: () => showAttempt(a.id) }, t("classes.view")),
      a.ok && !a.queue_entry
        ? h("button", { class: "small approve", onclick: () => approve(a.id) }, t("classes.approve")) : null,
      queued));
}

async function loadAttempts() {
  if (!current) return;
  const code = encodeURIComponent(current.code);
  try {
    const [detail, attempts] = await Promise.all([
      api("GET", `/api/classes/${code}`), api("GET", `/api/classes/${code}/submissions`)]);
    current = detail;
    renderHead();
    const s = detail.summary;
    $("#class-students tbody").replaceChildren(...s.students.map(studentRow));
    $("#class-common").replaceChildren(...(s.common_errors.length ? s.common_errors.map(commonItem)
      : [h("li", { class: "muted" }, t("classes.no_errors_yet"))]));
    $("#class-attempts tbody").replaceChildren(...attempts.map(attemptRow));
    $("#class-empty").hidden = attempts.length > 0;
  } catch (e) { toast(e.message, "error"); }
}

async function showAttempt(id) {
  try {
    attempt = await api("GET", `/api/classes/${encodeURIComponent(current.code)}/submissions/${id}`);
  } catch (e) { toast(e.message, "error"); return; }
  $("#class-attempt").hidden = false;
  $("#class-attempt-title").textContent = t("classes.attempt_of",
    { student: attempt.student, time: dateTime(attempt.time) });
  $("#class-attempt-summary").replaceChildren(summary(attempt.report));
  $("#class-listing").replaceChildren(...listingItems(attempt.text, attempt.report, "CL"));
  $("#class-diagnostics").replaceChildren(...diagnosticItems(attempt.report, pickLine));
  $("#class-approve").hidden = !attempt.ok || !!attempt.queue_entry;
  drawToolpath($("#class-xy"), $("#class-xz"), attempt.preview);
  for (const row of document.querySelectorAll("#class-attempts tr.current")) row.classList.remove("current");
  const row = document.querySelector(`#class-attempts tr[data-attempt="${id}"]`);
  if (row) row.classList.add("current");
}

function pickLine(line) {
  showLine($("#class-listing"), "CL", line);
  drawToolpath($("#class-xy"), $("#class-xz"), attempt.preview, line);
}

async function approve(id) {
  try {
    const r = await api("POST", `/api/classes/${encodeURIComponent(current.code)}/submissions/${id}/approve`);
    toast(t("classes.approved", { id: r.entry.id, machine: r.entry.machine, student: r.submission.student }), "ok");
    if (attempt && attempt.id === id) { attempt.queue_entry = r.entry.id; $("#class-approve").hidden = true; }
    refreshQueue();
  } catch (e) { toast(e.message, "error"); }
  loadAttempts();
}

async function closeClass() {
  if (!current || !confirm(t("classes.confirm_close", { code: current.code }))) return;
  try { await api("DELETE", `/api/classes/${encodeURIComponent(current.code)}`); }
  catch (e) { toast(e.message, "error"); }
  await showClass(current.code);
  loadList();
}

/** A student submitted (or an attempt was approved): reload the class shown, at most a few times a second. */
function onClassEvent(msg) {
  if (!current || msg.code !== current.code || !isShown("classes")) return;
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(() => { loadAttempts(); loadList(); }, 250);
}

/** The router opens the view. */
export function openClasses() {
  loadList();
  if (current) loadAttempts();
}

export function initClasses() {
  $("#class-form").addEventListener("submit", openClass);
  $("#class-close").addEventListener("click", closeClass);
  $("#class-approve").addEventListener("click", () => attempt && approve(attempt.id));
  subscribe("machines", fillMachineSelect);
  subscribe("class", onClassEvent);
}
