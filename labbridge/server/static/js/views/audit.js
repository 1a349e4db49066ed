// The audit log: who did what to which machine, and how it ended.
import { api } from "../api.js";
import { $, h, toast } from "../dom.js";
import { dateTime } from "../i18n.js";

export async function openAudit() {
  try {
    const rows = await api("GET", "/api/audit?limit=300");
    $("#audit-table tbody").replaceChildren(...rows.map((r) => h("tr", { class: `out-${r.outcome}` },
      h("td", {}, dateTime(r.time)), h("td", {}, r.username || "—"), h("td", {}, r.machine || "—"), h("td", {}, r.action),
      h("td", {}, r.count > 1 ? `${r.outcome} ×${r.count}` : r.outcome), h("td", {}, r.detail))));
  } catch (e) { toast(e.message, "error"); }
}
