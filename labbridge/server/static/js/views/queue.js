// The queue of checked programs waiting for a machine, and the list of recent jobs.
import { api } from "../api.js";
import { $, h, toast } from "../dom.js";
import { dateTime, t, word } from "../i18n.js";
import { isShown } from "../shell.js";
import { can, setQueue, state, subscribe } from "../store.js";
import { dryRunButtons, rehearsalText } from "./machine_path.js";

/** Reload the queue (the store tells the views that show it). */
export async function refreshQueue() {
  if (!state.me) return;
  try {
    setQueue(await api("GET", `/api/queue${$("#queue-all").checked ? "?all=true" : ""}`));
  } catch (e) { /* the queue shows again on the next change */ }
}

/** Start a queued entry (an operator at the machine starts every job). */
export async function startEntry(id) {
  try { await api("POST", `/api/queue/${id}/start`); toast(t("queue.started", { id }), "ok"); }
  catch (e) { toast(e.message, "error"); }
  refreshQueue();
}

async function removeEntry(id) {
  try { await api("DELETE", `/api/queue/${id}`); } catch (e) { toast(e.message, "error"); }
  refreshQueue();
}

function queueRow(e) {
  const mayRemove = e.state === "queued" && can("queue.remove") &&
    (state.me.role !== "trainer" || e.submitted_by === state.me.username);
  return h("tr", { dataset: { entry: e.id } },
    h("td", {}, e.id), h("td", {}, e.machine), h("td", {}, e.name, h("div", { class: "muted mono" }, e.hash.slice(0, 12))),
    h("td", {}, e.submitted_by), h("td", {}, e.note),
    h("td", { class: "qstate" }, word("queue_state", e.state), e.message ? ` — ${e.message}` : "",
      e.rehearsal ? h("div", { class: `rehearsed ${e.rehearsal.outcome === "completed" ? "" : "failed"}` },
        rehearsalText(e.rehearsal)) : null),
    h("td", {},
      e.state === "queued" && can("job.start")
        ? h("button", { class: "small start", onclick: () => startEntry(e.id) }, t("queue.start")) : null,
      mayRemove ? h("button", { class: "small", onclick: () => removeEntry(e.id) }, t("queue.remove")) : null,
      ...dryRunButtons(e)));
}

function renderQueue() {
  $("#queue-table tbody").replaceChildren(...state.queue.map(queueRow));
}

function outcome(j) {
  if (j.error_line) return t("jobs.error_at", { line: j.error_line, message: j.error_message || "" });
  return j.message || "";
}

async function loadJobs() {
  try {
    const jobs = await api("GET", "/api/jobs?limit=30");
    $("#jobs-table tbody").replaceChildren(...jobs.map((j) => h("tr", { class: `out-${j.state}` },
      h("td", {}, dateTime(j.started_at || j.created_at)), h("td", {}, j.machine), h("td", {}, j.program_name),
      h("td", {}, j.user || "—"), h("td", {}, word("job", j.state)), h("td", {}, `${j.lines_acked}/${j.lines_total}`),
      h("td", {}, outcome(j)))));
  } catch (e) { /* the list is a convenience; errors show elsewhere */ }
}

/** The router opens the view. */
export function openQueue() {
  refreshQueue();
  loadJobs();
}

export function initQueue() {
  $("#queue-all").addEventListener("change", refreshQueue);
  subscribe("queue", renderQueue);
  subscribe("queue-changed", () => { refreshQueue(); if (isShown("queue")) loadJobs(); });
  subscribe("job", () => refreshQueue());
}
