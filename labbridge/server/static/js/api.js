// The REST client: one fetch wrapper that sends the session token and turns error replies into readable text.
import { currentLocale, t } from "./i18n.js";

const TOKEN_KEY = "lb.token";
const LOGIN_PATH = "/api/auth/login";

let token = sessionStorage.getItem(TOKEN_KEY);
let unauthorized = () => {};

export const getToken = () => token;

/** Remember (or, with null, forget) the session token for this browser tab. */
export function setToken(value) {
  token = value;
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** What to do when the server says the session is gone (401 on anything but sign-in). */
export function whenUnauthorized(fn) { unauthorized = fn; }

function errorText(res, data) {
  let detail = data && data.detail;
  if (Array.isArray(detail)) detail = detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ");
  return detail || t("error.http", { status: res.status, text: res.statusText });
}

/** Call the API; resolves to the JSON reply, rejects with an Error whose message says what went wrong. */
export async function api(method, path, body, isForm = false) {
  const headers = { "Accept-Language": currentLocale() };  // the server's messages in the page's language
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body !== undefined) {
    if (isForm) payload = body;
    else { headers["Content-Type"] = "application/json"; payload = JSON.stringify(body); }
  }
  const res = await fetch(path, { method, headers, body: payload });
  let data = null;
  try { data = await res.json(); } catch (_) { /* empty body */ }
  if (res.status === 401 && path !== LOGIN_PATH) unauthorized();
  if (!res.ok) {
    const err = new Error(errorText(res, data));
    err.status = res.status;
    throw err;
  }
  return data;
}
