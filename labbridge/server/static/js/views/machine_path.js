// The 3D view on each machine card: while a job runs, its planned path, the part already cut and the tool at its
// live position; during a dry run, the twin's tool under a "DRY RUN — the machine does not move" banner.
import { api } from "../api.js";
import { $, h, toast } from "../dom.js";
import { duration, t, word } from "../i18n.js";
import { canDraw3d, mountToolpath } from "../preview/three_view.js";
import { fetchToolpath } from "../preview/toolpath.js";
import { can, state, subscribe } from "../store.js";
import { refreshQueue } from "./queue.js";

const NARROW = "(max-width: 700px)";  // phones: the card stays numbers only (read-only and light)
const ACTIVE_JOB = new Set(["running", "holding", "checking"]);
const views = {};      // machine id -> {key, view, loading}
const toolpaths = {};  // "hash machine" -> decoded toolpath (a card may show the same program again)

/** What a card should show: {key, hash, tool, line, dry} or null. */
function wanted(id) {
  const dry = state.dryRuns[id];
  if (dry && dry.state === "running") {
    const entry = state.queue.find((e) => e.id === dry.entry);
    const hash = dry.hash || (entry && entry.hash);
    if (hash) return { key: `dry ${hash}`, hash, tool: dry.position, line: dry.line, dry };
  }
  const st = state.states[id] || {};
  const job = st.job;
  if (!job || !ACTIVE_JOB.has(job.state)) return null;
  const entry = state.queue.find((e) => e.machine === id && e.state === "running");
  if (!entry) return null;
  const pos = st.position && st.position.machine;
  return { key: `job ${entry.hash}`, hash: entry.hash, tool: pos, line: st.line_number ?? job.line_number, dry: null };
}

async function load(id, want) {
  const cacheKey = `${want.hash} ${id}`;
  if (!toolpaths[cacheKey]) {
    toolpaths[cacheKey] = await fetchToolpath(`/api/programs/${want.hash}/toolpath?machine=${encodeURIComponent(id)}`);
  }
  return toolpaths[cacheKey];
}

function slot(card) {
  let box = $(".card-3d", card);
  if (!box) {
    box = h("div", { class: "card-3d", hidden: true });
    const banner = h("div", { class: "dry-run-banner", hidden: true }, h("span", { class: "dry-run-text" }),
      dryRunControls(card.dataset.machine));
    $(".job", card).after(banner, box);
  }
  return box;
}

function drop(id) {
  const v = views[id];
  if (v && v.view) v.view.dispose();
  delete views[id];
}

/** Bring one card's view in line with its machine's job or dry run. */
async function sync(id) {
  const card = $(`.card[data-machine="${id}"]`);
  if (!card) { drop(id); return; }
  const box = slot(card);
  const want = wanted(id);
  const banner = $(".dry-run-banner", card);
  banner.hidden = !(want && want.dry);
  if (want && want.dry) {
    $(".dry-run-text", banner).textContent = `${t("dryrun.label")} · ${t("dryrun.progress", { entry: want.dry.entry,
      program: want.dry.program, speed: want.dry.speed, line: want.line ?? "—" })}`;
    const held = want.dry.twin_state === "Hold";  // (a DNC twin may hold after its tape has gone out)
    for (const b of banner.querySelectorAll("button[data-action]")) {
      b.hidden = b.dataset.action === (held ? "hold" : "resume");
    }
  }
  if (!want || window.matchMedia(NARROW).matches || !canDraw3d()) { drop(id); box.hidden = true; return; }
  let v = views[id];
  if (v && v.key !== want.key) { drop(id); v = null; }
  if (!v) {
    v = views[id] = { key: want.key, view: null, loading: true };
    box.hidden = false;
    try {
      const tp = await load(id, want);
      if (views[id] !== v) return;
      v.view = mountToolpath(box, tp);
      box.dataset.ready = "true";
    } catch (e) { box.hidden = true; return; } finally { v.loading = false; }
  }
  if (!v.view) return;
  v.view.setTool(want.tool || null);
  v.view.setProgress(want.line ?? -1);
  box.dataset.mode = want.dry ? "dry-run" : "job";
}

function syncAll() {
  for (const id of Object.keys(state.machines)) sync(id);
}

function dryRunMessage(msg) {
  const before = state.dryRuns[msg.machine];
  state.dryRuns[msg.machine] = msg;
  sync(msg.machine);
  if (msg.state === "finished" && before && before.state !== "finished" && msg.result) {
    toast(t("dryrun.finished", { machine: msg.machine, outcome: word("job", msg.result.outcome) }),
      msg.result.outcome === "completed" ? "ok" : "error");
    refreshQueue();
  }
}

/** The rehearsal of a queue entry in words: speed, outcome, simulated time next to the gate's estimate. */
export function rehearsalText(r) {
  if (!r) return "";
  const parts = [t("dryrun.rehearsed", { speed: r.speed, outcome: word("job", r.outcome) })];
  if (r.simulated_seconds !== null && r.simulated_seconds !== undefined) {
    parts.push(t("dryrun.times", { simulated: duration(r.simulated_seconds),
      estimate: r.estimated_seconds === null || r.estimated_seconds === undefined ? "—" : duration(r.estimated_seconds) }));
  }
  for (const a of r.alarms || []) parts.push(`${a.code}${a.line ? ` @${a.line}` : ""} ${a.message}`);
  return parts.join(" · ");
}

/** Hold, resume and stop the dry run on a machine's twin (the real machine's own buttons stay as they are). */
function dryRunControls(id) {
  if (!can("dry_run")) return null;
  const act = (action) => async () => {
    try {
      await (action === "stop" ? api("DELETE", `/api/machines/${id}/dry-run`)
        : api("POST", `/api/machines/${id}/dry-run/${action}`));
    } catch (e) { toast(e.message, "error"); }
  };
  return h("span", { class: "dry-run-actions" },
    h("button", { class: "small", dataset: { action: "hold" }, onclick: act("hold") }, t("dryrun.hold")),
    h("button", { class: "small", dataset: { action: "resume" }, hidden: true, onclick: act("resume") },
      t("dryrun.resume")),
    h("button", { class: "small", dataset: { action: "stop" }, onclick: act("stop") }, t("dryrun.stop")));
}

/** Dry-run buttons (1×, 4×, 16×) for a queued entry, for those who may rehearse. */
export function dryRunButtons(entry) {
  if (entry.state !== "queued" || !can("dry_run")) return [];
  return [1, 4, 16].map((speed) => h("button", { class: "small dry-run", dataset: { speed },
    onclick: () => startDryRun(entry.id, speed) }, t("dryrun.start", { speed })));
}

async function startDryRun(id, speed) {
  try {
    const st = await api("POST", `/api/queue/${id}/dry-run`, { speed });
    dryRunMessage({ ...st, type: "dryrun" });
    toast(t("dryrun.started", { id, speed }), "ok");
  } catch (e) { toast(e.message, "error"); }
}

export function initMachinePaths() {
  state.dryRuns = {};
  subscribe("machines", () => { for (const id of Object.keys(views)) drop(id); syncAll(); });
  subscribe("machine", (id) => { if (views[id] || wanted(id)) sync(id); });
  subscribe("queue", syncAll);
  subscribe("dryrun", dryRunMessage);
}
