// A check report as people read it: the verdict, the diagnostics (each on its line) and the program listing with
// the lines that have problems marked. Used by the Programs view, the class view and the students' join page.
import { $$, h } from "./dom.js";
import { duration, t, word } from "./i18n.js";

export const MAX_LISTING = 5000;

/** "OK — 0 errors, 1 warning, 12 lines, about 20 s" (or ERRORS …) as a coloured span. */
export function summary(r) {
  const errors = r.diagnostics.filter((d) => d.severity === "error").length;
  const warnings = r.diagnostics.length - errors;
  const params = { verdict: t(r.ok ? "check.ok" : "check.errors"), errors: t("check.n_errors", { count: errors }),
    warnings: t("check.n_warnings", { count: warnings }), lines: t("check.n_lines", { count: r.lines }) };
  const text = r.estimated_seconds
    ? t("check.summary_eta", { ...params, duration: duration(r.estimated_seconds) }) : t("check.summary", params);
  return h("span", { class: r.ok ? "ok" : "error" }, text);
}

/** The program's lines as <li> items (ids prefix + line number), problem lines marked. */
export function listingItems(text, r, prefix) {
  const lines = text.replace(/\r?\n$/, "").split(/\r?\n/);
  const byLine = {};
  for (const d of r.diagnostics) (byLine[d.line] = byLine[d.line] || []).push(d);
  const max = Math.min(lines.length, MAX_LISTING);
  const items = lines.slice(0, max).map((line, i) => {
    const ds = byLine[i + 1];
    const sev = ds ? (ds.some((d) => d.severity === "error") ? "error" : "warning") : "";
    return h("li", { id: `${prefix}${i + 1}`, class: sev, title: ds ? ds.map((d) => d.message).join("\n") : null },
      line || " ");
  });
  if (lines.length > max) items.push(h("li", { class: "muted" }, t("check.more_lines", { count: lines.length - max })));
  return items;
}

/** The diagnostics as <li> items; onPick(line) runs when one is clicked. */
export function diagnosticItems(r, onPick) {
  if (!r.diagnostics.length) return [h("li", { class: "ok" }, t("check.no_problems"))];
  return r.diagnostics.map((d) =>
    h("li", { class: `diag ${d.severity}`, dataset: { line: d.line }, onclick: () => onPick(d.line) },
      h("b", {}, t("check.line", { line: d.line })),
      " ", t("check.diagnostic", { severity: word("severity", d.severity), code: d.code, message: d.message })));
}

/** Mark a line of a listing as the current one and scroll it into view. */
export function showLine(list, prefix, line) {
  const li = document.getElementById(`${prefix}${line}`);
  if (!li) return;
  for (const el of $$("li.current", list)) el.classList.remove("current");
  li.classList.add("current");
  li.scrollIntoView({ block: "center", behavior: "smooth" });
}
