// Users and their session tokens (admins only).
import { api } from "../api.js";
import { $, h, toast } from "../dom.js";
import { dateTime, t, word } from "../i18n.js";

export const ROLES = ["viewer", "trainer", "operator", "technician", "admin"];

async function patchUser(name, body) {
  try { await api("PATCH", `/api/users/${encodeURIComponent(name)}`, body); toast(t("users.updated", { user: name }), "ok"); }
  catch (e) { toast(e.message, "error"); }
  loadUsers();
}

async function deleteUser(name) {
  try { await api("DELETE", `/api/users/${encodeURIComponent(name)}`); } catch (e) { toast(e.message, "error"); }
  loadUsers();
}

async function revokeToken(id) {
  try { await api("DELETE", `/api/tokens/${id}`); } catch (e) { toast(e.message, "error"); }
  loadUsers();
}

function setPassword(user) {
  const pw = prompt(t("users.prompt_password", { user }));
  if (pw) patchUser(user, { password: pw });
}

function userRow(u) {
  const role = h("select", { onchange: (ev) => patchUser(u.username, { role: ev.target.value }) },
    ...ROLES.map((r) => h("option", { value: r, selected: r === u.role }, word("role", r))));
  return h("tr", { dataset: { user: u.username } }, h("td", {}, u.username), h("td", {}, role),
    h("td", {}, t(u.disabled ? "users.disabled" : "users.active")),
    h("td", {},
      h("button", { class: "small", onclick: () => patchUser(u.username, { disabled: !u.disabled }) },
        t(u.disabled ? "users.enable" : "users.disable")),
      h("button", { class: "small", onclick: () => setPassword(u.username) }, t("users.set_password")),
      h("button", { class: "small danger", onclick: () => { if (confirm(t("users.confirm_delete", { user: u.username }))) deleteUser(u.username); } },
        t("users.delete"))));
}

function tokenState(tk) {
  if (tk.revoked_at) return t("tokens.revoked");
  return t(tk.expires_at * 1000 < Date.now() ? "tokens.expired" : "tokens.valid");
}

function tokenRow(tk) {
  return h("tr", {},
    h("td", { class: "mono" }, tk.id), h("td", {}, tk.username), h("td", {}, dateTime(tk.created_at)),
    h("td", {}, dateTime(tk.last_used)), h("td", {}, tokenState(tk)),
    h("td", {}, tk.revoked_at ? null : h("button", { class: "small", onclick: () => revokeToken(tk.id) }, t("tokens.revoke"))));
}

async function loadUsers() {
  try {
    const users = await api("GET", "/api/users");
    $("#users-table tbody").replaceChildren(...users.map(userRow));
    const tokens = await api("GET", "/api/tokens");
    $("#tokens-table tbody").replaceChildren(...tokens.map(tokenRow));
  } catch (e) { toast(e.message, "error"); }
}

async function addUser(ev) {
  ev.preventDefault();
  const f = ev.target;
  try {
    await api("POST", "/api/users", { username: f.username.value, password: f.password.value, role: f.role.value });
    $("#user-status").textContent = t("users.added", { user: f.username.value });
    f.reset();
  } catch (e) { $("#user-status").textContent = e.message; }
  loadUsers();
}

export const openUsers = loadUsers;

export function initUsers() {
  $("#user-form").addEventListener("submit", addUser);
}
