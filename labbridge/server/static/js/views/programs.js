// Programs: upload or paste, check against a machine, read the diagnostics on their lines, submit to the queue.
import { api } from "../api.js";
import { $, $$, h, toast } from "../dom.js";
import { t } from "../i18n.js";
import { diagnosticItems, listingItems, showLine, summary } from "../report.js";
import { can, state, subscribe } from "../store.js";
import { drawPreview } from "./preview.js";
import { refreshQueue } from "./queue.js";
import { canDraw3d, mountToolpath } from "../preview/three_view.js";
import { fetchToolpath } from "../preview/toolpath.js";

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

function showCheck() {
  const r = state.check.report;
  $("#check-summary").replaceChildren(summary(r));
  $("#check-result").hidden = false;
  $("#listing").replaceChildren(...listingItems(state.program.text, r, "L"));
  $("#diagnostics").replaceChildren(...diagnosticItems(r, jumpTo));
  drawPreview();
  $(".submit-row").hidden = !can("queue.submit") || !r.ok;
}

function jumpTo(line, fromView = false) {
  drawPreview(line);
  if (view3d && !fromView) showSelected(view3d.select(line));
  showLine($("#listing"), "L", line);
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
