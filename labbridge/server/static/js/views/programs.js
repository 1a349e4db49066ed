// Programs: upload or paste, check against a machine, read the diagnostics on their lines, submit to the queue.
import { api } from "../api.js";
import { $, $$, h, toast } from "../dom.js";
import { duration, t, word } from "../i18n.js";
import { can, state, subscribe } from "../store.js";
import { drawPreview } from "./preview.js";
import { refreshQueue } from "./queue.js";
import { canDraw3d, mountToolpath } from "../preview/three_view.js";
import { fetchToolpath } from "../preview/toolpath.js";

const MAX_LISTING = 5000;
const NARROW = "(max-width: 700px)";  // phones get the light flat views only
let view3d = null;

function fillMachineSelect() {
  $("#program-machine").replaceChildren(...Object.values(state.machines).map((m) =>
    h("option", { value: m.id }, t("machine.option", { id: m.id, name: m.name }))));
}

async function storeProgram() {
  const file = $("#program-file").files[0];
  if (file) {
    const fd = new FormData();
    fd.append("file", file, file.name);
    return api("POST", "/api/programs", fd, true);
  }
  return api("POST", "/api/programs/text", { name: $("#program-name").value || "pasted.nc", text: $("#program-text").value });
}

async function uploadAndCheck() {
  const machine = $("#program-machine").value;
  $("#check-summary").textContent = t("programs.checking");
  $("#submit-status").textContent = "";
  try {
    const info = await storeProgram();
    const prog = await api("GET", `/api/programs/${info.hash}`);
    state.program = { hash: info.hash, name: info.name, text: prog.text };
    state.check = await api("POST", `/api/programs/${info.hash}/check`, { machine, preview: true });
    state.toolpath = null;
    showCheck();
    loadToolpath().catch((e) => { $("#view3d-info").textContent = e.message; });
  } catch (e) {
    $("#check-summary").textContent = "";
    $("#check-result").hidden = true;
    toast(e.message, "error");
    $("#check-summary").append(h("span", { class: "error" }, e.message));
  }
}

function summary(r) {
  const errors = r.diagnostics.filter((d) => d.severity === "error").length;
  const warnings = r.diagnostics.length - errors;
  const params = { verdict: t(r.ok ? "check.ok" : "check.errors"), errors: t("check.n_errors", { count: errors }),
    warnings: t("check.n_warnings", { count: warnings }), lines: t("check.n_lines", { count: r.lines }) };
  const text = r.estimated_seconds
    ? t("check.summary_eta", { ...params, duration: duration(r.estimated_seconds) }) : t("check.summary", params);
  return h("span", { class: r.ok ? "ok" : "error" }, text);
}

function listing(r) {
  const lines = state.program.text.replace(/\r?\n$/, "").split(/\r?\n/);
  const byLine = {};
  for (const d of r.diagnostics) (byLine[d.line] = byLine[d.line] || []).push(d);
  const max = Math.min(lines.length, MAX_LISTING);
  const items = lines.slice(0, max).map((text, i) => {
    const ds = byLine[i + 1];
    const sev = ds ? (ds.some((d) => d.severity === "error") ? "error" : "warning") : "";
    return h("li", { id: `L${i + 1}`, class: sev, title: ds ? ds.map((d) => d.message).join("\n") : null }, text || " ");
  });
  if (lines.length > max) items.push(h("li", { class: "muted" }, t("check.more_lines", { count: lines.length - max })));
  return items;
}

function diagnosticItems(r) {
  if (!r.diagnostics.length) return [h("li", { class: "ok" }, t("check.no_problems"))];
  return r.diagnostics.map((d) =>
    h("li", { class: `diag ${d.severity}`, dataset: { line: d.line }, onclick: () => jumpTo(d.line) },
      h("b", {}, t("check.line", { line: d.line })),
      " ", t("check.diagnostic", { severity: word("severity", d.severity), code: d.code, message: d.message })));
}

function showCheck() {
  const r = state.check.report;
  $("#check-summary").replaceChildren(summary(r));
  $("#check-result").hidden = false;
  $("#listing").replaceChildren(...listing(r));
  $("#diagnostics").replaceChildren(...diagnosticItems(r));
  drawPreview();
  $(".submit-row").hidden = !can("queue.submit") || !r.ok;
}

function jumpTo(line, fromView = false) {
  drawPreview(line);
  if (view3d && !fromView) showSelected(view3d.select(line));
  const li = document.getElementById(`L${line}`);
  if (!li) return;
  for (const el of $$("#listing li.current")) el.classList.remove("current");
  li.classList.add("current");
  li.scrollIntoView({ block: "center", behavior: "smooth" });
}

function showSelected(range) {
  const info = $("#view3d-info");
  if (!range) { info.textContent = ""; return; }
  info.textContent = range[0] === range[1] ? t("preview.selected", { first: range[0] })
    : t("preview.selected_range", { first: range[0], last: range[1] });
}

function bytesText(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} kB`;
}

/** Fetch the checked program's compact toolpath; draw it flat and, on a large enough screen, in 3D. */
async function loadToolpath() {
  if (view3d) { view3d.dispose(); view3d = null; }
  const box = $("#view-3d");
  delete box.dataset.ready;
  $("#view3d-info").textContent = t("preview.loading");
  const tp = await fetchToolpath(state.check.toolpath);
  state.toolpath = tp;
  drawPreview();
  $("#view3d-info").textContent = t("preview.info", { vertices: tp.count, lines: tp.header.lines_total,
    size: bytesText(tp.bytes) });
  for (const b of $$("#view3d-box [data-preset]")) b.hidden = (b.dataset.preset === "xz") !== !!tp.header.lathe;
  if (window.matchMedia(NARROW).matches) return;
  if (!canDraw3d()) { $("#view3d-info").textContent = t("preview.no_webgl"); return; }
  view3d = mountToolpath(box, tp);
  view3d.onSelect((range) => { showSelected(range); jumpTo(range[0], true); });
  box.dataset.ready = "true";
}

async function submitToQueue() {
  try {
    const e = await api("POST", "/api/queue", { program: state.check.hash, machine: state.check.machine,
      note: $("#submit-note").value });
    $("#submit-status").textContent = t("programs.queued_as", { id: e.id, machine: e.machine });
    refreshQueue();
  } catch (err) { $("#submit-status").textContent = err.message; toast(err.message, "error"); }
}

export function initPrograms() {
  $("#check-btn").addEventListener("click", uploadAndCheck);
  $("#submit-btn").addEventListener("click", submitToQueue);
  $("#program-text").addEventListener("input", () => { $("#program-file").value = ""; });
  for (const b of $$("#view3d-box [data-preset]")) {
    b.addEventListener("click", () => view3d && view3d.setPreset(b.dataset.preset));
  }
  $("#program-file").addEventListener("change", (ev) => {
    const f = ev.target.files[0];
    if (f) $("#program-name").value = f.name;
  });
  subscribe("machines", fillMachineSelect);
}
