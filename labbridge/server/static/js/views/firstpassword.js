// The one-time admin password printed at the server's first start works once: the sign-in that uses it may only
// choose a new password. This view asks for it, changes it, and signs in again with the new one.
import { api, setToken } from "../api.js";
import { $ } from "../dom.js";
import { t } from "../i18n.js";
import { showView } from "../shell.js";

let pending = null; // { username, oneTime, onSignedIn } while the view is shown

/** Called by sign-in when the server says this token may only change the password. */
export function chooseFirstPassword(username, oneTime, onSignedIn) {
  pending = { username, oneTime, onSignedIn };
  $("#first-password-error").textContent = "";
  $("#first-password-form").reset();
  showView("first-password");
  $("#first-password-form input[name=password]").focus();
}

async function submit(ev) {
  ev.preventDefault();
  const form = ev.target;
  const error = $("#first-password-error");
  error.textContent = "";
  if (!pending) return;
  if (form.password.value !== form.repeat.value) { error.textContent = t("firstpw.mismatch"); return; }
  try {
    await api("POST", "/api/auth/password", { old_password: pending.oneTime, new_password: form.password.value });
    const r = await api("POST", "/api/auth/login", { username: pending.username, password: form.password.value });
    setToken(r.token);
    const done = pending.onSignedIn;
    pending = null;
    form.reset();
    await done();
  } catch (e) {
    error.textContent = e.message;
  }
}

export function initFirstPassword() {
  $("#first-password-form").addEventListener("submit", submit);
}
