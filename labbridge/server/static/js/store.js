// The dashboard's state in one place. Views read `state` and subscribe to topics; whoever changes the state
// publishes the topic, so a view never calls another view to say that something changed.
//
// Topics: "machines" (the list from /api/machines was loaded), "machine" (id: its live state changed),
// "queue" (the queue list was reloaded), "queue-changed" (the server says the queue changed),
// "job", "alarm", "result", "live-error" (websocket messages), "link" (true/false: the live link is up),
// "session-ended" (the server closed the session), "view" (name: a view was opened),
// "dryrun" (a dry run's progress or result on a machine's digital twin).

export const state = {
  me: null,          // the signed-in user: {username, role, permissions}
  machines: {},      // id -> description from /api/machines (config part)
  states: {},        // id -> live MachineState
  queue: [],         // queue entries from /api/queue
  program: null,     // {hash, name, text}: the program last checked
  check: null,       // the last check result
  toolpath: null,    // its decoded compact toolpath (js/preview/toolpath.js)
  dryRuns: {},       // machine id -> the latest "dryrun" message (a rehearsal on the machine's twin)
};

const listeners = new Map();

/** Call fn(detail) whenever topic is published; returns a function that stops it. */
export function subscribe(topic, fn) {
  if (!listeners.has(topic)) listeners.set(topic, new Set());
  listeners.get(topic).add(fn);
  return () => listeners.get(topic).delete(fn);
}

export function publish(topic, detail) {
  for (const fn of listeners.get(topic) || []) fn(detail);
}

/** Whether the signed-in user holds a permission (the server decides; this only hides what would be refused). */
export const can = (perm) => !!(state.me && state.me.permissions.includes(perm));

/** Take the machine list from /api/machines: descriptions and their first states. */
export function setMachines(list) {
  state.machines = {};
  state.states = {};
  for (const m of list) { state.machines[m.id] = m; state.states[m.id] = m.state; }
  publish("machines");
}

/** Replace (snapshot) or merge (changes) a machine's live state. */
export function updateMachineState(id, st, merge = false) {
  state.states[id] = merge ? Object.assign({}, state.states[id] || {}, st) : st;
  publish("machine", id);
}

export function setQueue(entries) {
  state.queue = entries;
  publish("queue");
}

export function clearSession() {
  state.me = null;
}
