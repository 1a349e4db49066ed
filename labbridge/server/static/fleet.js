// The fleet link on the lab's dashboard: is headquarters reachable, and which settings changes wait for an operator.
// Loaded after app.js and uses its helpers (S, api, h, can, toast); shows nothing when the lab has no fleet link.
"use strict";

const FLEET = { timer: null, absent: false };

async function fleetLink() {
  const pill = $("#fleet-link");
  let s;
  try { s = await api("GET", "/api/fleet/link"); } catch (e) {
    if (e.status === 404) { FLEET.absent = true; pill.hidden = true; }
    return;
  }
  pill.hidden = false;
  pill.className = `fleet-link ${s.state === "connected" ? "up" : "down"}`;
  const waiting = s.events_waiting ? ` · ${s.events_waiting} events waiting` : "";
  pill.textContent = s.state === "connected" ? `HQ link: connected${waiting}`
    : `HQ link: ${s.state}${s.retry_in !== null && s.retry_in !== undefined ? `, retry in ${Math.round(s.retry_in)} s` : ""}${waiting}`;
  pill.title = s.last_error ? `${s.broker}: ${s.last_error}` : s.broker;
}

async function fleetApprovals() {
  const box = $("#fleet-approvals");
  let rows;
  try { rows = await api("GET", "/api/fleet/approvals"); } catch (_) { box.hidden = true; return; }
  const pending = rows.filter((r) => r.state === "pending");
  box.hidden = !pending.length;
  const decide = async (id, verb) => {
    try {
      const r = await api("POST", `/api/fleet/approvals/${id}/${verb}`);
      toast(`${r.machine}: ${r.key}=${r.value} ${r.state}`, r.state === "accepted" ? "ok" : "info");
    } catch (e) { toast(e.message, "error"); }
    fleetApprovals();
  };
  box.replaceChildren(h("strong", {}, "Headquarters asks for settings changes"),
    h("ul", {}, ...pending.map((r) => h("li", { dataset: { approval: r.id } },
      h("b", {}, `${r.machine}: ${r.key} = ${r.value}`), ` — asked by ${r.requested_by} at ${time(r.requested_at)}`,
      r.reason ? ` (“${r.reason}”)` : "", r.result ? h("span", { class: "error" }, ` ${r.result}`) : "", " ",
      can("job.start") ? h("button", { class: "small accept", onclick: () => decide(r.id, "accept") }, "Accept") : null,
      can("job.start") ? h("button", { class: "small danger refuse", onclick: () => decide(r.id, "refuse") }, "Refuse") : null))),
    can("job.start") ? "" : h("p", { class: "muted" }, "An operator at the machine accepts or refuses these."));
}

function fleetPoll() {
  if (FLEET.absent || !S.token || !S.me) return;
  fleetLink();
  fleetApprovals();
}

FLEET.timer = setInterval(fleetPoll, 3000);
setTimeout(fleetPoll, 500);
