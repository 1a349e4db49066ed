// Which language the page speaks: the user's choice (kept on this device, and per user on the server once
// signed in), else the browser's languages, else English. The picker lists each language in its own words.
import { FALLBACK, currentLocale, loadLocale } from "./i18n.js";

export const LANGUAGES = { en: "English", lt: "Lietuvių", lv: "Latviešu", et: "Eesti", de: "Deutsch" };
const DEVICE_KEY = "lb.lang";

/** The first of the browser's languages labbridge speaks ("lt-LT" → "lt"), else English. */
export function browserLanguage() {
  for (const tag of navigator.languages || [navigator.language || ""]) {
    const code = String(tag).toLowerCase().split(/[-_]/)[0];
    if (code in LANGUAGES) return code;
  }
  return FALLBACK;
}

/** The language to start in: the one last picked on this device, else the browser's. */
export function startLanguage() {
  let saved = null;
  try { saved = localStorage.getItem(DEVICE_KEY); } catch (_) { /* storage disabled */ }
  return saved && saved in LANGUAGES ? saved : browserLanguage();
}

/** Switch to lang (if labbridge speaks it) and remember it on this device. */
export async function useLanguage(lang) {
  if (!(lang in LANGUAGES)) return;
  try { localStorage.setItem(DEVICE_KEY, lang); } catch (_) { /* storage disabled */ }
  if (lang !== currentLocale()) await loadLocale(lang);
}

/** Fill a <select> with the languages and call onPick(lang) when the user picks one. */
export function bindPicker(select, onPick) {
  select.replaceChildren(...Object.entries(LANGUAGES).map(([code, name]) => {
    const opt = document.createElement("option");
    opt.value = code;
    opt.lang = code;
    opt.textContent = name;
    return opt;
  }));
  select.value = currentLocale();
  select.addEventListener("change", () => onPick(select.value));
  return () => { select.value = currentLocale(); };
}
