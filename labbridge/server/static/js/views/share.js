// View-only share links: an operator makes a link for a class; students scan its QR code and watch the machines'
// live state without a password. Links expire and can be revoked here. The QR code is drawn by the server
// (no internet needed); a link's token is shown only when it is made.
import { api, setToken } from "../api.js";
import { $, h, toast } from "../dom.js";
import { dateTime, t } from "../i18n.js";

const PREFIX = "#share=";

/** A share link opened on a phone: take its token from the URL (and drop it from the address bar). */
export function takeShareToken() {
  if (!location.hash.startsWith(PREFIX)) return false;
  const token = decodeURIComponent(location.hash.slice(PREFIX.length));
  history.replaceState(null, "", location.pathname);
  if (!token) return false;
  setToken(token);
  return true;
}

async function create(ev) {
  ev.preventDefault();
  const form = ev.target;
  try {
    const link = await api("POST", "/api/share", { label: form.label.value || "class", hours: Number(form.hours.value) || 4 });
    const out = $("#share-new");
    out.replaceChildren(
      h("img", { src: link.qr_svg, alt: t("share.qr_alt"), class: "qr" }),
      h("p", {}, h("a", { href: link.url }, link.url)),
      h("p", { class: "muted" }, t("share.expires", { when: dateTime(link.expires_at) })));
    out.hidden = false;
    openShare();
  } catch (e) { toast(e.message, "error"); }
}

async function revoke(id) {
  try { await api("DELETE", `/api/share/${encodeURIComponent(id)}`); toast(t("share.revoked"), "ok"); }
  catch (e) { toast(e.message, "error"); }
  openShare();
}

/** List the links that still work. */
export async function openShare() {
  const body = $("#share-table tbody");
  try {
    const links = await api("GET", "/api/share");
    body.replaceChildren(...links.map((l) => h("tr", {},
      h("td", {}, l.label), h("td", {}, dateTime(l.expires_at)),
      h("td", {}, dateTime(l.last_used)),
      h("td", {}, h("button", { class: "small", onclick: () => revoke(l.id) }, t("share.revoke"))))));
  } catch (e) { toast(e.message, "error"); }
}

export function initShare() {
  $("#share-form").addEventListener("submit", create);
}
