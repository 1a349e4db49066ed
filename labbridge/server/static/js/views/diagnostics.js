// Diagnostics for technicians: controller and link facts, settings against the config, alarm history, log events.
import { api } from "../api.js";
import { $, h, toast } from "../dom.js";
import { dateTime, t } from "../i18n.js";
import { can, state, subscribe } from "../store.js";

const TIME_KEY = /(_since|_attempt|time)$/;
const EVENT_FIELDS = ["timestamp", "level", "event", "machine"];

const sec = (title, ...content) => h("section", { class: "diag-sec" }, h("h3", {}, title), ...content);
const show = (k, v) => (TIME_KEY.test(k) && typeof v === "number") ? dateTime(v)
  : (typeof v === "object" && v !== null ? JSON.stringify(v) : String(v ?? "—"));
const kv = (obj) => h("table", { class: "grid" }, ...Object.entries(obj || {}).map(([k, v]) =>
  h("tr", {}, h("th", {}, k), h("td", { class: "mono" }, show(k, v)))));

function fillMachineSelect() {
  $("#diag-machine").replaceChildren(...Object.values(state.machines).map((m) =>
    h("option", { value: m.id }, t("machine.option", { id: m.id, name: m.name }))));
}

function settingsTable(id, d) {
  const described = d.settings_described || {};
  const about = (k) => {
    const s = described[k];
    if (!s) return "";
    return s.unit ? t("diag.setting_unit", { name: s.name, unit: s.unit }) : s.name;
  };
  return h("table", { class: "grid", id: "settings-table" }, ...Object.entries(d.settings || {}).map(([k, v]) =>
    h("tr", {}, h("th", {}, `$${k}`), h("td", { class: "mono" }, typeof v === "object" ? JSON.stringify(v) : String(v)),
      h("td", { class: "muted" }, about(k)),
      can("settings.write") ? h("td", {}, h("button", { class: "small", onclick: () => editSetting(id, k, v) }, t("diag.edit"))) : null)));
}

function mismatches(d) {
  const list = Array.isArray(d.mismatches) ? d.mismatches : Object.entries(d.mismatches || {}).map(([k, v]) =>
    ({ setting: k, ...(typeof v === "object" ? v : { value: v }) }));
  if (list.length) {
    return h("ul", { class: "mismatch" }, ...list.map((m) => h("li", { class: "error" }, typeof m === "string" ? m : JSON.stringify(m))));
  }
  return h("p", { class: "ok" }, t(d.settings ? "diag.no_mismatches" : "diag.not_known"));
}

function alarmHistory(d) {
  if (!(d.alarm_history || []).length) return h("p", { class: "muted" }, t("diag.no_alarms"));
  return h("table", { class: "grid" }, ...d.alarm_history.map((a) =>
    h("tr", {}, h("td", {}, dateTime(a.time)), h("td", {}, a.code), h("td", {}, a.message), h("td", { class: "muted" }, a.source))));
}

function recentEvents(d) {
  const events = d.recent_events || [];
  if (!events.length) return h("p", { class: "muted" }, t("diag.no_events"));
  return h("pre", { class: "events" }, events.slice(-60).map((e) => {
    const rest = Object.fromEntries(Object.entries(e).filter(([k]) => !EVENT_FIELDS.includes(k)));
    return `${e.timestamp || ""} ${e.level || ""} ${e.event || ""} ${JSON.stringify(rest)}`;
  }).join("\n"));
}

async function loadDiagnostics() {
  const id = $("#diag-machine").value;
  const box = $("#diag-body");
  box.replaceChildren(h("p", { class: "muted" }, t("common.loading")));
  try {
    const d = await api("GET", `/api/machines/${encodeURIComponent(id)}/diagnostics`);
    const controller = { controller: d.controller, driver: d.driver, firmware: d.firmware, simulated: d.simulated,
      build: d.build_info };
    box.replaceChildren(
      sec(t("diag.controller"), kv(controller)),
      sec(t("diag.connection"), kv(d.connection)),
      sec(t("diag.settings_vs_config"), mismatches(d)),
      sec(t("diag.settings"), Object.keys(d.settings || {}).length ? settingsTable(id, d) : h("p", { class: "muted" }, t("diag.not_read"))),
      sec(t("diag.alarm_history"), alarmHistory(d)),
      sec(t("diag.recent_events"), recentEvents(d)));
  } catch (e) { box.replaceChildren(h("p", { class: "error" }, e.message)); }
}

async function editSetting(machine, key, current) {
  const value = prompt(t("diag.prompt_setting", { key, machine }), typeof current === "object" ? "" : String(current));
  if (value === null) return;
  try {
    await api("PUT", `/api/machines/${encodeURIComponent(machine)}/settings/${encodeURIComponent(key)}`, { value });
    toast(t("diag.setting_written", { machine, key, value }), "ok");
    loadDiagnostics();
  } catch (e) { toast(e.message, "error"); }
}

export const openDiagnostics = loadDiagnostics;

export function initDiagnostics() {
  $("#diag-refresh").addEventListener("click", loadDiagnostics);
  $("#diag-machine").addEventListener("change", loadDiagnostics);
  subscribe("machines", fillMachineSelect);
}
