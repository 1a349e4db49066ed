// The compact toolpath the server sends (labbridge/safety/toolpath.py): read without copying into typed arrays.
//
// Layout: "LBTP", uint32 version, uint32 header length, JSON header, then float32 x,y,z per vertex, uint32 program
// line per vertex, uint8 kind per vertex (kind of the segment that ends at the vertex: 0 jump, 1 rapid, 2 cut,
// 3 flagged). The path is one polyline in display coordinates (a lathe's X is a diameter).
import { getToken } from "../api.js";
import { currentLocale, t } from "../i18n.js";

export const JUMP = 0, RAPID = 1, CUT = 2, FLAGGED = 3;
const VERSION = 1;

/** Decode an ArrayBuffer from GET /api/programs/{hash}/toolpath. */
export function decodeToolpath(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  if (magic !== "LBTP") throw new Error(t("error.toolpath_magic"));
  const view = new DataView(buffer);
  const version = view.getUint32(4, true), hlen = view.getUint32(8, true);
  if (version !== VERSION) throw new Error(t("error.toolpath_format", { version, expected: VERSION }));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + hlen)));
  const n = header.vertices, at = 12 + hlen;
  return {
    header,
    count: n,
    positions: new Float32Array(buffer, at, 3 * n),
    lines: new Uint32Array(buffer, at + 12 * n, n),
    kinds: new Uint8Array(buffer, at + 16 * n, n),
  };
}

/** Fetch and decode a toolpath (the URL comes with the check result); rejects with a readable Error. */
export async function fetchToolpath(url) {
  const headers = { "Accept-Language": currentLocale() };  // the server's refusals in the page's language
  if (getToken()) headers.Authorization = `Bearer ${getToken()}`;
  const res = await fetch(url, { headers });
  if (!res.ok) {
    let detail = t("error.http", { status: res.status, text: res.statusText });
    try { detail = (await res.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  const tp = decodeToolpath(await res.arrayBuffer());
  tp.bytes = Number(res.headers.get("content-length")) || 0;
  return tp;
}

/** The vertex whose segment draws program line `line` (the first vertex reaching or passing it), or -1. */
export function vertexForLine(tp, line) {
  const { lines, count } = tp;
  let lo = 0, hi = count - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (lines[mid] >= line) { found = mid; hi = mid - 1; } else lo = mid + 1;
  }
  return found;
}

/** The program lines a segment (ending at vertex i) stands for: [first, last]. */
export function segmentLines(tp, i) {
  const last = tp.lines[i];
  const first = i > 0 && tp.kinds[i] !== JUMP ? Math.min(last, tp.lines[i - 1] + 1) : last;
  return [first, last];
}

/** Bounds [min xyz, max xyz] of the path, with the envelope folded in when `withEnvelope`. */
export function pathBounds(tp, withEnvelope = false) {
  const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
  const p = tp.positions;
  for (let i = 0; i < tp.count; i++) {
    for (let k = 0; k < 3; k++) {
      const v = p[3 * i + k];
      if (v < lo[k]) lo[k] = v;
      if (v > hi[k]) hi[k] = v;
    }
  }
  if (withEnvelope || !tp.count) {
    ["X", "Y", "Z"].forEach((a, k) => {
      const e = tp.header.envelope[a];
      if (e) { lo[k] = Math.min(lo[k], e[0]); hi[k] = Math.max(hi[k], e[1]); }
    });
  }
  for (let k = 0; k < 3; k++) if (!Number.isFinite(lo[k])) { lo[k] = 0; hi[k] = 0; }
  return [lo, hi];
}
