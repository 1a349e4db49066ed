// Programs: upload or paste, check against a machine, read the diagnostics on their lines, submit to the queue.
import { api } from "../api.js";
import { $, $$, h, toast } from "../dom.js";
import { duration, t, word } from "../i18n.js";
import { can, state, subscribe } from "../store.js";
import { drawPreview } from "./preview.js";
import { refreshQueue } from "./queue.js";

const MAX_LISTING = 5000;

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
    showCheck();
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

function jumpTo(line) {
  const li = document.getElementById(`L${line}`);
  if (!li) return;
  for (const el of $$("#listing li.current")) el.classList.remove("current");
  li.classList.add("current");
  li.scrollIntoView({ block: "center", behavior: "smooth" });
  drawPreview(line);
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
  $("#program-file").addEventListener("change", (ev) => {
    const f = ev.target.files[0];
    if (f) $("#program-name").value = f.name;
  });
  subscribe("machines", fillMachineSelect);
}
