// Programs: upload or paste, check against a machine, read the diagnostics on their lines, submit to the queue.
import { api } from "../api.js";
import { $, h, toast } from "../dom.js";
import { t } from "../i18n.js";
import { diagnosticItems, listingItems, showLine, summary } from "../report.js";
import { can, state, subscribe } from "../store.js";
import { drawPreview } from "./preview.js";
import { refreshQueue } from "./queue.js";

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

function showCheck() {
  const r = state.check.report;
  $("#check-summary").replaceChildren(summary(r));
  $("#check-result").hidden = false;
  $("#listing").replaceChildren(...listingItems(state.program.text, r, "L"));
  $("#diagnostics").replaceChildren(...diagnosticItems(r, jumpTo));
  drawPreview();
  $(".submit-row").hidden = !can("queue.submit") || !r.ok;
}

function jumpTo(line) {
  showLine($("#listing"), "L", line);
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
