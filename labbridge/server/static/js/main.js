// The dashboard's entry point: load the language, wire the views, sign in, and route #/view to a view.
import { api, getToken, whenUnauthorized } from "./api.js";
import { $ } from "./dom.js";
import { FALLBACK, loadLocale, onLocaleChange, t, translatePage, word } from "./i18n.js";
import { applyPerms, showView } from "./shell.js";
import { setMachines, state } from "./store.js";
import { connect } from "./ws.js";
import { openAudit } from "./views/audit.js";
import { initDiagnostics, openDiagnostics } from "./views/diagnostics.js";
import { initFleet } from "./views/fleet.js";
import { initInterruptions } from "./views/interruptions.js";
import { buildCards, initMachines } from "./views/machines.js";
import { initMachinePaths } from "./views/machine_path.js";
import { initNotices } from "./views/notices.js";
import { initPrograms } from "./views/programs.js";
import { initQueue, openQueue, refreshQueue } from "./views/queue.js";
import { initSignIn, signedOut } from "./views/signin.js";
import { initUsers, openUsers } from "./views/users.js";
import { initFirstPassword } from "./views/firstpassword.js";
import { initShare, openShare, takeShareToken } from "./views/share.js";
import { checkStorage, initStorage } from "./views/storage.js";

const DEFAULT_VIEW = "machines";
const OPEN = { queue: openQueue, diagnostics: openDiagnostics, users: openUsers, audit: openAudit, share: openShare };

function route() {
  if (!state.me) { showView("login"); return; }
  let name = (location.hash.replace(/^#\//, "") || DEFAULT_VIEW).split("?")[0];
  const link = document.querySelector(`#nav a[data-view="${name}"]`);
  if (!link || link.hidden) name = DEFAULT_VIEW;
  showView(name);
  if (OPEN[name]) OPEN[name]();
}

function showWho() {
  if (state.me) $("#whoami").textContent = t("top.whoami", { user: state.me.username, role: word("role", state.me.role) });
}

/** After sign-in (or with a token kept from before): who am I, the machines, the live link, the queue. */
async function start() {
  state.me = await api("GET", "/api/auth/me");
  document.body.dataset.role = state.me.role;
  showWho();
  $("#topbar").hidden = false;
  applyPerms(document);
  setMachines(await api("GET", "/api/machines"));
  connect();
  await refreshQueue();
  checkStorage();
  route();
}

async function init() {
  try { await loadLocale(FALLBACK); } catch (e) { /* the page keeps its built-in English */ }
  translatePage();
  onLocaleChange(() => {
    translatePage();
    showWho();
    if (state.me) { buildCards(); route(); }
  });
  whenUnauthorized(() => signedOut(t("signin.session_ended")));
  initSignIn(start);
  initNotices();
  initMachines();
  initInterruptions();
  initMachinePaths();
  initPrograms();
  initQueue();
  initDiagnostics();
  initFleet();
  initUsers();
  initFirstPassword();
  initShare();
  initStorage();
  window.addEventListener("hashchange", route);
  takeShareToken();  // a class's share link: watch without a password
  if (getToken()) start().catch(() => signedOut());
  else showView("login");
}

init();
