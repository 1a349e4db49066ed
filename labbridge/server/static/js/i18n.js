// Every word the dashboard shows goes through t(key, params). Catalogs are JSON files under /locales/, served by
// labbridge itself (the lab is often offline); English is the fallback for any key a catalog lacks.
//
// A catalog maps stable keys to messages. "{name}" in a message is replaced by params.name. A message may be an
// object of plural forms ({"one": …, "few": …, "other": …}, the categories of Intl.PluralRules for the language):
// params.count picks the form. Markup never comes from a catalog: messages are set as text.
// In index.html, data-i18n="key" sets an element's text and data-i18n-attr="title:key;placeholder:key" its
// attributes (translatePage). Numbers, dates and durations are formatted for the current language here too.

export const FALLBACK = "en";

let locale = FALLBACK;
let catalog = {};
let fallback = {};
const listeners = new Set();

async function fetchCatalog(name) {
  const res = await fetch(`/locales/${encodeURIComponent(name)}.json`, { cache: "no-cache" });
  if (!res.ok) throw new Error(`no catalog for language "${name}" (${res.status})`);
  return res.json();
}

/** Load a language's catalog (and English once, as the fallback), then tell the listeners. */
export async function loadLocale(name) {
  if (!Object.keys(fallback).length) fallback = await fetchCatalog(FALLBACK);
  catalog = name === FALLBACK ? fallback : await fetchCatalog(name);
  locale = name;
  numberFormats.clear();
  document.documentElement.lang = name;
  for (const fn of listeners) fn(name);
}

export const currentLocale = () => locale;

/** Call fn(locale) after every language change (views re-render what they drew). */
export function onLocaleChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Whether a key has a message (used for words that come from the server, such as state names). */
export const has = (key) => key in catalog || key in fallback;

/** The message for key in the current language, with {name} placeholders filled from params. */
export function t(key, params = {}) {
  let msg = catalog[key] ?? fallback[key];
  if (msg === undefined) return key;
  if (typeof msg === "object") {
    const form = new Intl.PluralRules(locale).select(Number(params.count));
    msg = msg[form] ?? msg.other;
  }
  return msg.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** t() for a word the server sends (state, outcome, role): its message if the catalog has one, else the word. */
export function word(group, value) {
  const key = `${group}.${value}`;
  return has(key) ? t(key) : String(value);
}

/** A code's meaning from the catalog (group "grbl": "error:22", "ALARM:1"), else the server's own words. */
export function explain(group, code, serverText) {
  const key = `${group}.${code}`;
  if (has(key)) return t(key);
  return serverText ?? (code === null || code === undefined ? "" : String(code));
}

/** Apply data-i18n and data-i18n-attr under root. */
export function translatePage(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of el.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
  const titled = document.querySelector("title[data-i18n]");  // a page whose <title> names its own key keeps it
  if (root === document && !titled && has("page.title")) document.title = t("page.title");
}

const numberFormats = new Map();

/** A number with a fixed count of decimals in the current language ("—" when unknown). */
export function num(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return "—";
  let f = numberFormats.get(digits);
  if (!f) {
    f = new Intl.NumberFormat(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits,
      useGrouping: false, signDisplay: "negative" });
    numberFormats.set(digits, f);
  }
  return f.format(Number(value));
}

/** A Unix time (seconds) as a date and time in the current language ("—" when unknown). */
export const dateTime = (seconds) => (seconds ? new Date(seconds * 1000).toLocaleString(locale) : "—");

/** A duration in seconds as "3 min 5 s" / "42 s". */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const min = Math.floor(s / 60), sec = s % 60;
  return min ? t("time.min_sec", { min, sec }) : t("time.sec", { sec });
}
