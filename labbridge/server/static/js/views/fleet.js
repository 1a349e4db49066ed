// The fleet link on the lab's dashboard: is headquarters reachable, and which settings changes wait for an operator.
// Shows nothing when the lab has no fleet link (the server answers 404 on /api/fleet/link).
import { api } from "../api.js";
import { $, h, toast } from "../dom.js";
import { dateTime, t } from "../i18n.js";
import { can, state } from "../store.js";

let absent = false;

async function showLink() {
  const pill = $("#fleet-link");
  let s;
  try { s = await api("GET", "/api/fleet/link"); } catch (e) {
    if (e.status === 404) { absent = true; pill.hidden = true; }
    return;
  }
  pill.hidden = false;
  pill.className = `fleet-link ${s.state === "connected" ? "up" : "down"}`;
  const waiting = s.events_waiting ? t("fleet.waiting", { count: s.events_waiting }) : "";
  const retry = s.retry_in !== null && s.retry_in !== undefined ? t("fleet.retry", { sec: Math.round(s.retry_in) }) : "";
  pill.textContent = s.state === "connected" ? t("fleet.connected", { waiting })
    : t("fleet.down", { state: s.state, retry, waiting });
  pill.title = s.last_error ? `${s.broker}: ${s.last_error}` : s.broker;
}

async function showApprovals() {
  const box = $("#fleet-approvals");
  let rows;
  try { rows = await api("GET", "/api/fleet/approvals"); } catch (_) { box.hidden = true; return; }
  const pending = rows.filter((r) => r.state === "pending");
  box.hidden = !pending.length;
  const decide = async (id, verb) => {
    try {
      const r = await api("POST", `/api/fleet/approvals/${id}/${verb}`);
      toast(t("fleet.decided", { machine: r.machine, key: r.key, value: r.value, state: r.state }),
        r.state === "accepted" ? "ok" : "info");
    } catch (e) { toast(e.message, "error"); }
    showApprovals();
  };
  const operator = can("job.start");
  box.replaceChildren(h("strong", {}, t("fleet.approvals_title")),
    h("ul", {}, ...pending.map((r) => h("li", { dataset: { approval: r.id } },
      h("b", {}, `${r.machine}: ${r.key} = ${r.value}`),
      " ", t("fleet.asked_by", { user: r.requested_by, time: dateTime(r.requested_at) }),
      r.reason ? ` (“${r.reason}”)` : "", r.result ? h("span", { class: "error" }, ` ${r.result}`) : "", " ",
      operator ? h("button", { class: "small accept", onclick: () => decide(r.id, "accept") }, t("fleet.accept")) : null,
      operator ? h("button", { class: "small danger refuse", onclick: () => decide(r.id, "refuse") }, t("fleet.refuse")) : null))),
    operator ? "" : h("p", { class: "muted" }, t("fleet.operator_decides")));
}

function poll() {
  if (absent || !state.me) return;
  showLink();
  showApprovals();
}

/** Start watching the fleet link (every 3 s while signed in). */
export function initFleet() {
  setInterval(poll, 3000);
  setTimeout(poll, 500);
}
