// Sign in, sign out, change one's own password.
import { api, setToken } from "../api.js";
import { $, toast } from "../dom.js";
import { t } from "../i18n.js";
import { showView } from "../shell.js";
import { clearSession, subscribe } from "../store.js";
import { disconnect } from "../ws.js";
import { chooseFirstPassword } from "./firstpassword.js";

/** Forget the session and show the sign-in form, with a message saying why. */
export function signedOut(message) {
  setToken(null);
  clearSession();
  disconnect();
  $("#topbar").hidden = true;
  $("#hold-all").hidden = true;
  showView("login");
  if (message) $("#login-error").textContent = message;
}

async function signIn(ev, onSignedIn) {
  ev.preventDefault();
  const form = ev.target;
  $("#login-error").textContent = "";
  try {
    const r = await api("POST", "/api/auth/login", { username: form.username.value, password: form.password.value });
    const typed = form.password.value;
    form.password.value = "";
    setToken(r.token);  // with a one-time password this token may only choose the new password
    if (r.must_change_password) { chooseFirstPassword(form.username.value, typed, onSignedIn); return; }
    await onSignedIn();
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
}

async function signOut() {
  try { await api("POST", "/api/auth/logout"); } catch (_) { /* already gone */ }
  signedOut(t("signin.signed_out"));
}

async function changePassword() {
  const oldPw = prompt(t("signin.prompt_current"));
  if (oldPw === null) return;
  const newPw = prompt(t("signin.prompt_new"));
  if (newPw === null) return;
  try {
    await api("POST", "/api/auth/password", { old_password: oldPw, new_password: newPw });
    signedOut(t("signin.password_changed"));
  } catch (e) { toast(e.message, "error"); }
}

/** Wire the sign-in form and the top bar's buttons; onSignedIn runs after a successful sign-in. */
export function initSignIn(onSignedIn) {
  $("#login-form").addEventListener("submit", (ev) => signIn(ev, onSignedIn));
  $("#login-form button[type=submit]").disabled = false;  // only now may the form be sent (see index.html)
  $("#signout").addEventListener("click", signOut);
  $("#password").addEventListener("click", changePassword);
  subscribe("session-ended", () => signedOut(t("signin.session_ended")));
}
