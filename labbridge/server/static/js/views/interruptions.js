// Machines whose last job was cut off (a crash of the bridge, a lost cable): a banner above the cards with the
// machine as it is now, and what an operator can do — stop spindle and coolant, resume from a line, dismiss.
import { api } from "../api.js";
import { $, h, toast } from "../dom.js";
import { num, t, word } from "../i18n.js";
import { applyPerms } from "../shell.js";
import { state, subscribe } from "../store.js";

const shown = new Map();  // machine id -> job id of the banner on screen

function box() {
  let el = $("#interruptions");
  if (!el) {
    el = h("section", { id: "interruptions", class: "interruptions", role: "alert" });
    $("#cards").before(el);
  }
  return el;
}

function nowText(st) {
  const sp = st.spindle || {};
  const spindle = sp.direction && sp.direction !== "off"
    ? t("recovery.spindle_on", { direction: word("spindle", sp.direction), rpm: num(sp.rpm, 0) })
    : sp.direction === "off" ? t("recovery.spindle_off") : t("recovery.unknown");
  const coolant = st.coolant ? (st.coolant === "off" ? t("recovery.coolant_off")
    : t("recovery.coolant_on", { coolant: st.coolant })) : t("recovery.unknown");
  return t("recovery.now", { state: word("state", st.state), spindle, coolant });
}

async function act(method, path, body, done) {
  try {
    const r = await api(method, path, body);
    toast(typeof r.result === "string" ? r.result : done, "ok");
  } catch (e) {
    toast(e.message, "error");
  }
}

function banner(id, job) {
  const st = state.states[id];
  const line = h("input", { type: "number", min: 1, value: job.line_number || 1, class: "resume-line",
    title: t("recovery.line_title") });
  const jobPath = `/api/jobs/${encodeURIComponent(job.job_id)}`;
  return h("div", { class: "interruption", dataset: { machine: id, job: job.job_id } },
    h("strong", {}, t("recovery.title", { machine: id, program: job.program })),
    h("div", { class: "interruption-message" }, job.message),
    h("div", { class: "interruption-now" }, nowText(st)),
    h("div", { class: "interruption-actions" },
      h("button", { class: "danger stop-spindle", "data-perm": "reset", onclick: () => act("POST",
        `/api/machines/${encodeURIComponent(id)}/spindle-coolant-off`, {}, t("recovery.stopped")) },
      t("recovery.stop")),
      h("span", { "data-perm": "job.start" }, t("recovery.line"), " ", line, " ",
        h("button", { class: "resume-from", onclick: () => act("POST", `${jobPath}/resume`,
          { from_line: Number(line.value) }, t("recovery.resumed")) }, t("recovery.resume"))),
      h("button", { class: "small dismiss", "data-perm": "job.resume",
        onclick: () => act("POST", `${jobPath}/dismiss`, {}, t("recovery.dismissed")) }, t("recovery.dismiss"))));
}

/** Show, refresh or remove the banner of one machine after its state changed. */
function update(id) {
  const st = state.states[id];
  const job = st && st.job && st.job.state === "interrupted" ? st.job : null;
  const el = box();
  const current = el.querySelector(`.interruption[data-machine="${id}"]`);
  if (!job) {
    if (current) current.remove();
    shown.delete(id);
    return;
  }
  if (current && shown.get(id) === job.job_id) {
    $(".interruption-now", current).textContent = nowText(st);  // keep the operator's line number
    return;
  }
  const fresh = banner(id, job);
  if (current) current.replaceWith(fresh); else el.append(fresh);
  shown.set(id, job.job_id);
  applyPerms(fresh);
}

function rebuild() {
  box().replaceChildren();
  shown.clear();
  for (const id of Object.keys(state.machines)) update(id);
}

export function initInterruptions() {
  subscribe("machines", rebuild);
  subscribe("machine", update);
}
