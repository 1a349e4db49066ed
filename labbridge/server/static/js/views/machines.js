// The machine cards: live readout, alarms, job progress, and the controls the user's role allows.
import { api } from "../api.js";
import { $, $$, h, toast } from "../dom.js";
import { duration, explain, num, t, word } from "../i18n.js";
import { applyPerms } from "../shell.js";
import { can, state, subscribe } from "../store.js";
import { send } from "../ws.js";
import { dryRunButtons, rehearsalText } from "./machine_path.js";
import { startEntry } from "./queue.js";

const JOG_STEPS = [0.1, 1, 10, 50];
const dirty = new Set();

/** Run a machine command over REST and say how it went. */
export async function command(id, action, body) {
  try {
    const r = await api("POST", `/api/machines/${encodeURIComponent(id)}/${action}`, body || {});
    const result = typeof r.result === "string" ? r.result : t("command.ok");
    toast(t("command.done", { machine: id, action: word("command", action), result }), "ok");
  } catch (e) {
    toast(e.message, "error");
  }
}

/** Feed hold on every connected machine: over the live link when it is up (fastest), else over REST. */
async function holdAll() {
  const ids = Object.keys(state.states).filter((id) => state.states[id].connected);
  if (!ids.length) { toast(t("machines.none_connected"), "error"); return; }
  if (!ids.every((id) => send({ type: "hold", machine: id }))) {
    await Promise.all(ids.map((id) => command(id, "hold")));
  }
}

function jogPad(id, m) {
  const jogStep = h("select", { class: "jog-step", title: t("card.jog_step") },
    ...JOG_STEPS.map((v) => h("option", { value: v, selected: v === 1 }, t("card.jog_mm", { step: v }))));
  const jogBtn = (axis, sign) => h("button", {
    class: "jog", onclick: () => command(id, "jog", {
      [axis.toLowerCase()]: sign * Number(jogStep.value), feed: Math.min(1000, m.max_feed), relative: true }),
  }, `${axis}${sign > 0 ? "+" : "−"}`);
  return h("div", { class: "jogpad", "data-perm": "jog", "data-cap": "jog" },
    ...m.axes.flatMap((a) => [jogBtn(a, -1), jogBtn(a, +1)]), jogStep);
}

function overrides(id) {
  const ovr = (target, delta, short, title) => h("button", { class: "small", title, onclick: () => {
    const cur = (state.states[id].overrides || {})[target] || 100;
    command(id, "override", { target, value: Math.max(10, Math.min(200, cur + delta)) });
  } }, `${short}${delta > 0 ? "+" : "−"}`);
  const feed = [t("override.feed_short"), t("override.feed")];
  const spindle = [t("override.spindle_short"), t("override.spindle")];
  const rapid = (v) => h("button", { class: "small", title: t("override.rapid"),
    onclick: () => command(id, "override", { target: "rapid", value: v }) }, `${t("override.rapid_short")}${v}`);
  return h("div", { class: "ovr", "data-perm": "override", "data-cap": "override" }, t("card.overrides_label"),
    ovr("feed", -10, ...feed), ovr("feed", 10, ...feed), ovr("spindle", -10, ...spindle), ovr("spindle", 10, ...spindle),
    ...[25, 50, 100].map(rapid));
}

function controls(id) {
  const btn = (action, label, perm, cap, cls) => h("button", {
    class: cls, "data-perm": perm, "data-cap": cap, onclick: () => command(id, action) }, label);
  return h("div", { class: "controls" },
    btn("hold", t("card.hold"), "hold", null, "hold"),
    btn("resume", t("card.resume"), "job.resume", "cycle_start"),
    btn("cancel", t("card.cancel"), "cancel", null, "danger"),
    btn("home", t("card.home"), "home", "home"),
    btn("unlock", t("card.unlock"), "unlock", "unlock"),
    btn("reset", t("card.reset"), "reset", "soft_reset"));
}

function card(id) {
  const m = state.machines[id];
  const axes = m.axes;
  const sub = t(m.simulated ? "card.subtitle_simulated" : "card.subtitle", { id, controller: m.controller });
  return h("article", { class: "card", dataset: { machine: id } },
    h("header", {},
      h("div", {}, h("strong", {}, m.name), h("div", { class: "muted" }, sub)),
      h("span", { class: "badge" }, "…")),
    h("div", { class: "fault" }),
    h("table", { class: "pos" },
      h("tr", {}, h("th", {}), ...axes.map((a) => h("th", {}, a))),
      h("tr", {}, h("th", { title: t("card.wpos_title") }, t("card.wpos")),
        ...axes.map((a) => h("td", { class: `wpos wpos-${a}` }, "—"))),
      h("tr", {}, h("th", { title: t("card.mpos_title") }, t("card.mpos")),
        ...axes.map((a) => h("td", { class: `mpos mpos-${a}` }, "—")))),
    h("dl", { class: "facts" },
      h("dt", {}, t("card.spindle")), h("dd", { class: "spindle" }, "—"),
      h("dt", {}, t("card.feed")), h("dd", { class: "feed" }, "—"),
      h("dt", {}, t("card.overrides")), h("dd", { class: "overrides" }, "—"),
      h("dt", {}, t("card.line")), h("dd", { class: "line" }, "—")),
    h("ul", { class: "alarms" }),
    h("div", { class: "job", hidden: true },
      h("div", { class: "job-title" }),
      h("div", { class: "progress" }, h("div", { class: "bar" })),
      h("div", { class: "job-detail muted" })),
    controls(id),
    h("div", { class: "hint" }),
    jogPad(id, m),
    overrides(id),
    h("div", { class: "card-queue" }));
}

/** Build every card afresh (after sign-in, or when the language changes). */
export function buildCards() {
  const box = $("#cards");
  box.replaceChildren(...Object.keys(state.machines).map(card));
  for (const id of Object.keys(state.machines)) updateCard(id);
  applyPerms(box);
  for (const id of Object.keys(state.machines)) {
    const caps = state.machines[id].capabilities || [];
    for (const el of $$(`.card[data-machine="${id}"] [data-cap]`)) {
      if (!caps.includes(el.dataset.cap)) el.hidden = true;  // the controller cannot do it
    }
  }
  renderCardQueues();
}

function spindleText(sp) {
  if (sp.rpm === null || sp.rpm === undefined) return "—";
  const dir = sp.direction ? word("spindle", sp.direction) : "";
  return t("card.spindle_value", { rpm: num(sp.rpm, 0), direction: dir });
}

function overridesText(o) {
  if (o.feed === null || o.feed === undefined) return "—";
  return t("card.overrides_value", { feed: o.feed, rapid: o.rapid ?? "—", spindle: o.spindle ?? "—" });
}

function hintText(id, st) {
  if (!(st.state === "Alarm" && !(st.alarms || []).length && st.homed === false)) return "";
  const caps = state.machines[id].capabilities || [];
  return t(caps.includes("home") && can("home") ? "card.hint_home" : "card.hint_home_operator");
}

function updateJob(el, job) {
  const jobBox = $(".job", el);
  jobBox.hidden = !job;
  if (!job) return;
  const pct = Math.round((job.fraction || 0) * 100);
  $(".job-title", el).textContent = t("card.job_title", { program: job.program, state: word("job", job.state), pct });
  $(".bar", el).style.width = `${pct}%`;
  const parts = [t("card.job_lines", { acked: job.lines_acked, total: job.lines_total })];
  if (job.eta_seconds !== null && job.eta_seconds !== undefined) parts.push(t("card.job_eta", { eta: duration(job.eta_seconds) }));
  if (job.message) parts.push(job.message);
  $(".job-detail", el).textContent = parts.join(" · ");
}

function updateCard(id) {
  const el = $(`.card[data-machine="${id}"]`);
  const st = state.states[id];
  if (!el || !st) return;
  const badge = $(".badge", el);
  badge.textContent = word("state", st.state);
  badge.className = `badge st-${st.state.toLowerCase()}`;
  el.dataset.state = st.state;
  $(".fault", el).textContent = st.fault || "";
  const pos = st.position || {};
  for (const a of state.machines[id].axes) {
    $(`.wpos-${a}`, el).textContent = num(pos.work && pos.work[a]);
    $(`.mpos-${a}`, el).textContent = num(pos.machine && pos.machine[a]);
  }
  $(".spindle", el).textContent = spindleText(st.spindle || {});
  $(".feed", el).textContent = st.feed === null || st.feed === undefined ? "—" : t("card.feed_value", { feed: num(st.feed, 0) });
  $(".overrides", el).textContent = overridesText(st.overrides || {});
  $(".line", el).textContent = st.line_number ?? (st.job && st.job.line_number) ?? "—";
  $(".hint", el).textContent = hintText(id, st);
  $(".alarms", el).replaceChildren(...(st.alarms || []).map((a) =>
    h("li", {}, h("b", {}, a.code), " ", explain("grbl", a.code, a.message))));
  updateJob(el, st.job);
}

/** Repaint changed cards once per frame, however many state messages arrived. */
function markDirty(id) {
  dirty.add(id);
  requestAnimationFrame(() => {
    for (const m of dirty) updateCard(m);
    dirty.clear();
  });
}

/** The queued entries of each machine, under its card, with Start for those who may start jobs. */
function renderCardQueues() {
  for (const id of Object.keys(state.machines)) {
    const box = $(`.card[data-machine="${id}"] .card-queue`);
    if (!box) continue;
    const mine = state.queue.filter((e) => e.machine === id && e.state === "queued");
    box.replaceChildren(...(mine.length ? [h("div", { class: "muted" }, t("card.queued"))] : []),
      ...mine.map((e) => h("div", { class: "qitem", dataset: { entry: e.id } },
        t("card.queue_item", { id: e.id, name: e.name, by: e.submitted_by }),
        e.rehearsal ? (e.rehearsal.outcome === "completed"  // a rehearsal that did not complete is no tick
          ? h("span", { class: "rehearsed" }, ` ✓ ${rehearsalText(e.rehearsal)}`)
          : h("span", { class: "rehearsed failed" }, ` ✗ ${rehearsalText(e.rehearsal)}`)) : null,
        can("job.start") ? h("button", { class: "small start", onclick: () => startEntry(e.id) }, t("queue.start")) : null,
        ...dryRunButtons(e))));
  }
}

/** Wire the view to the store. */
export function initMachines() {
  $("#hold-all").addEventListener("click", holdAll);
  subscribe("machines", buildCards);
  subscribe("machine", markDirty);
  subscribe("queue", renderCardQueues);
}
