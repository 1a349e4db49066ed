// The live link: one websocket, signed in with the session token, reconnecting with backoff.
// Machine states go into the store; other messages are published as store topics for the views.
import { getToken } from "./api.js";
import { currentLocale } from "./i18n.js";
import { publish, updateMachineState } from "./store.js";

const SESSION_ENDED = 4001;
let ws = null;
let retry = 1000;

function handle(socket, msg) {
  switch (msg.type) {
    case "hello":
      retry = 1000;
      publish("link", true);
      socket.send(JSON.stringify({ type: "subscribe", machines: "*" }));
      break;
    case "snapshot": updateMachineState(msg.machine, msg.state); break;
    case "state": updateMachineState(msg.machine, msg.changes, true); break;
    case "alarm": publish("alarm", msg); break;
    case "queue": publish("queue-changed", msg); break;
    case "job": publish("job", msg); break;
    case "ping": socket.send(JSON.stringify({ type: "pong" })); break;
    case "error": publish("live-error", msg); break;
    case "result": publish("result", msg); break;
    case "storage": publish("storage", msg); break;
    case "dryrun": publish("dryrun", msg); break;
    case "class": publish("class", msg); break;
    default: break;
  }
}

/** Open the link (if signed in); it reopens itself until disconnect() or the session ends. */
export function connect() {
  if (!getToken()) return;
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${proto}://${location.host}/ws`);
  ws = socket;
  socket.onopen = () => socket.send(JSON.stringify({ type: "auth", token: getToken(), language: currentLocale() }));
  socket.onmessage = (ev) => handle(socket, JSON.parse(ev.data));
  socket.onclose = (ev) => {
    publish("link", false);
    ws = null;
    if (ev.code === SESSION_ENDED) { publish("session-ended"); return; }
    if (getToken()) setTimeout(connect, retry);
    retry = Math.min(retry * 2, 15000);
  };
}

export function disconnect() {
  if (!ws) return;
  ws.onclose = null;
  ws.close();
  ws = null;
}

export const isOpen = () => !!ws && ws.readyState === WebSocket.OPEN;

/** Send a message over the live link; false when the link is down (the caller falls back to REST). */
export function send(msg) {
  if (!isOpen()) return false;
  ws.send(JSON.stringify(msg));
  return true;
}
