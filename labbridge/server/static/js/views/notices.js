// Short notices for what the live link reports: alarms, finished jobs, command results and refusals.
import { $, toast } from "../dom.js";
import { t, word } from "../i18n.js";
import { subscribe } from "../store.js";

const GOOD_OUTCOMES = new Set(["completed"]);

function jobNotice(msg) {
  const params = { machine: msg.machine, outcome: word("job", msg.outcome), message: msg.message };
  toast(t(msg.message ? "notice.job_message" : "notice.job", params), GOOD_OUTCOMES.has(msg.outcome) ? "ok" : "error");
}

export function initNotices() {
  subscribe("alarm", (msg) => toast(t("notice.alarm", { machine: msg.machine, code: msg.alarm.code,
    message: msg.alarm.message }), "error"));
  subscribe("job", jobNotice);
  subscribe("live-error", (msg) => toast(msg.message, "error"));
  subscribe("result", (msg) => toast(t("notice.result", { machine: msg.machine, result: msg.result }), "ok"));
  subscribe("link", (up) => { $("#link-state").className = up ? "link up" : "link down"; });
}
