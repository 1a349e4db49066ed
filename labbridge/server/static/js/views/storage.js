// "Storage full": when the data directory cannot be written, admins, operators and technicians see a banner
// saying so (records wait in memory until space returns; uploads are refused; stop commands work as always).
import { api } from "../api.js";
import { $ } from "../dom.js";
import { t } from "../i18n.js";
import { can, subscribe } from "../store.js";

function show(status) {
  const banner = $("#storage-banner");
  if (!status || status.ok) { banner.hidden = true; banner.textContent = ""; return; }
  banner.textContent = t("storage.full", { problem: status.problem || "", dir: status.data_dir || "",
    pending: status.pending || 0 });
  banner.hidden = false;
}

/** Ask once after sign-in (the live link then reports every change). */
export async function checkStorage() {
  if (!can("storage")) { show(null); return; }
  try { show(await api("GET", "/api/server/storage")); } catch (_) { /* the live link will tell */ }
}

export function initStorage() {
  subscribe("storage", show);
}
