// The students' page, /join/<code>: no account. A student types a name, pastes or picks a program, and sees the
// safety gate's report (each problem on its line, in their language) and the toolpath; they fix and check again.
// Their own attempts stay listed on this device only (localStorage); nobody else's are ever sent to them.
import { api } from "./api.js";
import { $, h } from "./dom.js";
import { FALLBACK, dateTime, loadLocale, onLocaleChange, t, translatePage } from "./i18n.js";
import { bindPicker, startLanguage, useLanguage } from "./language.js";
import { diagnosticItems, listingItems, showLine, summary } from "./report.js";
import { canDraw3d, mountToolpath } from "./preview/three_view.js";
import { decodeToolpath } from "./preview/toolpath.js";
import { drawToolpath } from "./views/preview.js";

const NAME_KEY = "lb.join.name";
const KEEP = 10;                  // attempts kept on this device per class
const KEEP_TEXT = 64 * 1024;      // longer programs are listed without their text

let cls = null;                   // the class: {code, name, machine, machine_name, expires_at, max_bytes}
/** The reply's base64 compact toolpath, decoded (null when absent). */
function unpack(b64) {
  if (!b64) return null;
  const bin = atob(b64), bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return decodeToolpath(bytes.buffer);
}

let view3d = null;                // the 3D view of the attempt on screen, where the screen allows
let shown = null;                 // the attempt on screen: {id, time, text, report, preview}

const storage = {
  get(key, fallback) {
    try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch (_) { return fallback; }
  },
  set(key, value) {
    try { localStorage.setItem(key, JSON.stringify(value)); } catch (_) { /* full or disabled: not kept */ }
  },
};
const attemptsKey = () => `lb.join.attempts.${cls.code}`;

function codeFromPath() {
  const m = location.pathname.match(/^\/join\/([^/]+)\/?$/);
  return m ? decodeURIComponent(m[1]).replace(/\s+/g, "").toUpperCase() : "";
}

async function lookUp(code) {
  $("#join-code-error").textContent = "";
  try {
    cls = await api("GET", `/api/classes/${encodeURIComponent(code)}/public`);
  } catch (e) {
    cls = null;
    $("#join-code-step").hidden = false;
    $("#join-class").hidden = true;
    $("#join-code").value = code;
    $("#join-code-error").textContent = e.message;
    return;
  }
  if (location.pathname !== `/join/${cls.code}`) history.replaceState(null, "", `/join/${cls.code}`);
  $("#join-code-step").hidden = true;
  $("#join-class").hidden = false;
  renderClass();
  renderAttempts();
}

function renderClass() {
  if (!cls) return;
  $("#join-class-name").textContent = cls.name;
  $("#join-class-machine").textContent = t("join.class_info", { machine: cls.machine_name, code: cls.code,
    time: dateTime(cls.expires_at) });
}

function keep(result, text) {
  const kept = storage.get(attemptsKey(), []);
  kept.unshift({ id: result.id, time: result.time, student: result.student, ok: result.report.ok,
    errors: result.report.diagnostics.filter((d) => d.severity === "error").length,
    text: text.length <= KEEP_TEXT ? text : null, report: result.report });
  storage.set(attemptsKey(), kept.slice(0, KEEP));
}

function renderAttempts() {
  const kept = cls ? storage.get(attemptsKey(), []) : [];
  $("#join-no-attempts").hidden = kept.length > 0;
  $("#join-attempts").replaceChildren(...kept.map((a) => h("li", {
    class: a.ok ? "ok" : "error", dataset: { attempt: a.id }, onclick: () => showKept(a) },
  dateTime(a.time), " — ", a.ok ? t("check.ok") : t("check.n_errors", { count: a.errors }))));
}

function showKept(a) {
  if (a.text !== null) $("#join-text").value = a.text;
  show({ id: a.id, time: a.time, text: a.text ?? "", report: a.report, preview: null });
}

function show(attempt) {
  shown = attempt;
  const r = attempt.report;
  $("#join-result").hidden = false;
  $("#join-summary").replaceChildren(summary(r));
  $("#join-next").textContent = t(r.ok ? "join.ok_next" : "join.fix_next");
  $("#join-diagnostics").replaceChildren(...diagnosticItems(r, pickLine));
  $("#join-listing").replaceChildren(...listingItems(attempt.text, r, "J"));
  for (const fig of document.querySelectorAll("#join-result figure")) fig.hidden = !attempt.preview;
  if (attempt.preview) drawToolpath($("#join-xy"), $("#join-xz"), attempt.preview);
  show3d(attempt.preview);
}

/** On a screen wide enough (a school PC, a tablet) the attempt's path in 3D too; phones keep the light flat views. */
function show3d(tp) {
  if (view3d) { view3d.dispose(); view3d = null; }
  const box = $("#join-3d");
  box.hidden = !tp || window.matchMedia("(max-width: 700px)").matches || !canDraw3d();
  if (box.hidden) return;
  view3d = mountToolpath(box, tp);
  view3d.onSelect((range) => pickLine(range[0]));
}

function pickLine(line) {
  showLine($("#join-listing"), "J", line);
  if (shown && shown.preview) drawToolpath($("#join-xy"), $("#join-xz"), shown.preview, line);
}

async function submit(ev) {
  ev.preventDefault();
  const student = $("#join-name").value.trim();
  const text = $("#join-text").value;
  $("#join-error").textContent = "";
  if (!text.trim()) { $("#join-error").textContent = t("join.empty"); return; }
  storage.set(NAME_KEY, student);
  $("#join-submit").disabled = true;
  try {
    const result = await api("POST", `/api/classes/${encodeURIComponent(cls.code)}/submissions`, { student, text });
    keep(result, text);
    renderAttempts();
    show({ id: result.id, time: result.time, text, report: result.report, preview: unpack(result.toolpath) });
    $("#join-summary").scrollIntoView({ block: "start", behavior: "smooth" });
  } catch (e) {
    $("#join-error").textContent = e.message;
  } finally {
    $("#join-submit").disabled = false;
  }
}

function readFile(ev) {
  const file = ev.target.files[0];
  if (!file) return;
  if (cls && file.size > cls.max_bytes) {
    $("#join-error").textContent = t("join.too_big", { kb: Math.floor(cls.max_bytes / 1024) });
    return;
  }
  const reader = new FileReader();
  reader.onload = () => { $("#join-text").value = String(reader.result); };
  reader.readAsText(file);
}

async function init() {
  try { await loadLocale(startLanguage()); } catch (e) {
    try { await loadLocale(FALLBACK); } catch (_) { /* the page keeps its built-in English */ }
  }
  translatePage();
  const sync = bindPicker($("#lang-picker"), useLanguage);
  onLocaleChange(() => {
    sync();
    translatePage();
    renderClass();
    renderAttempts();
    if (shown) show(shown);
  });
  $("#join-name").value = storage.get(NAME_KEY, "");
  $("#join-code-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    lookUp($("#join-code").value.trim());
  });
  $("#join-form").addEventListener("submit", submit);
  $("#join-file").addEventListener("change", readFile);
  const code = codeFromPath();
  if (code) await lookUp(code);
  else $("#join-code-step").hidden = false;
}

init();
