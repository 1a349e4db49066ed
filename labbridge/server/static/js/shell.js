// The page frame: which view is shown, and which controls the user's role may see.
import { $, $$ } from "./dom.js";
import { can, publish, state } from "./store.js";

/** Hide every element whose data-perm the user lacks (the server refuses them anyway). */
export function applyPerms(root = document) {
  for (const el of $$("[data-perm]", root)) el.hidden = !can(el.dataset.perm);
}

/** Show one view (by name) and mark its link in the navigation. */
export function showView(name) {
  for (const v of $$(".view")) v.hidden = v.id !== `view-${name}`;
  for (const a of $$("#nav a")) a.classList.toggle("active", a.dataset.view === name);
  $("#hold-all").hidden = !(state.me && can("hold")) || name === "login";
  publish("view", name);
}

export const isShown = (name) => !$(`#view-${name}`).hidden;
