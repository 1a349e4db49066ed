// The toolpath preview of a checked program: top (XY) and front (XZ) views, or Z/X for a lathe, with the
// machine's envelope, keep-out boxes and the segments that leave them in red.
import { $ } from "../dom.js";
import { t } from "../i18n.js";
import { state } from "../store.js";

const NAMES = ["X", "Y", "Z"];

function bounds(p, ai, bi) {
  const ea = p.envelope[NAMES[ai]] || [0, 0], eb = p.envelope[NAMES[bi]] || [0, 0];
  let minA = ea[0], maxA = ea[1], minB = eb[0], maxB = eb[1];
  for (const s of p.segments) for (const pt of s.points) {
    minA = Math.min(minA, pt[ai]); maxA = Math.max(maxA, pt[ai]);
    minB = Math.min(minB, pt[bi]); maxB = Math.max(maxB, pt[bi]);
  }
  return { ea, eb, minA, maxA, minB, maxB };
}

function drawBoxes(ctx, p, ai, bi, X, Y, k) {
  for (const box of p.keep_out) {
    const a0 = box.min[NAMES[ai]], a1 = box.max[NAMES[ai]], b0 = box.min[NAMES[bi]], b1 = box.max[NAMES[bi]];
    if ([a0, a1, b0, b1].some((v) => v === undefined)) continue;
    ctx.fillStyle = "rgba(230,140,0,0.25)"; ctx.strokeStyle = "#e80";
    ctx.fillRect(X(a0), Y(b1), (a1 - a0) * k, (b1 - b0) * k);
    ctx.strokeRect(X(a0), Y(b1), (a1 - a0) * k, (b1 - b0) * k);
  }
}

function drawSegments(ctx, p, ai, bi, X, Y, highlight) {
  for (const pass of [false, true]) {  // good first, violations on top
    for (const s of p.segments) {
      if (s.bad !== pass) continue;
      ctx.beginPath();
      ctx.setLineDash(s.kind === "traverse" && !s.bad ? [4, 4] : []);
      ctx.strokeStyle = s.bad ? "#e11" : (s.kind === "traverse" ? "#999" : "#16c");
      ctx.lineWidth = s.bad ? 2.5 : (s.line === highlight ? 3 : 1.2);
      if (s.line === highlight && !s.bad) ctx.strokeStyle = "#a0f";
      s.points.forEach((pt, i) => (i ? ctx.lineTo(X(pt[ai]), Y(pt[bi])) : ctx.moveTo(X(pt[ai]), Y(pt[bi]))));
      ctx.stroke();
    }
  }
  ctx.setLineDash([]);
}

function drawView(canvas, p, ai, bi, highlight, aName, bName) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 24;
  ctx.clearRect(0, 0, W, H);
  const { ea, eb, minA, maxA, minB, maxB } = bounds(p, ai, bi);
  const spanA = Math.max(maxA - minA, 1e-6), spanB = Math.max(maxB - minB, 1e-6);
  const k = Math.min((W - 2 * pad) / spanA, (H - 2 * pad) / spanB);
  const X = (a) => pad + (a - minA) * k;
  const Y = (b) => H - pad - (b - minB) * k;
  ctx.strokeStyle = "#2a7"; ctx.lineWidth = 1.5; ctx.setLineDash([]);
  ctx.strokeRect(X(ea[0]), Y(eb[1]), (ea[1] - ea[0]) * k, (eb[1] - eb[0]) * k);
  drawBoxes(ctx, p, ai, bi, X, Y, k);
  drawSegments(ctx, p, ai, bi, X, Y, highlight);
  ctx.fillStyle = "#555"; ctx.font = "12px sans-serif";
  ctx.fillText(`${aName} →`, W - 60, H - 6); ctx.fillText(`↑ ${bName}`, 4, 14);
  canvas.dataset.segments = p.segments.length;
  canvas.dataset.bad = p.segments.filter((s) => s.bad).length;
}

/** Draw preview p into a top (xy) and a front (xz) canvas; highlight is a program line to draw thicker. */
export function drawToolpath(xy, xz, p, highlight) {
  if (!p) return;
  if (p.lathe) {
    drawView(xy, p, 2, 0, highlight, "Z", t("preview.x_diameter"));   // lathe: Z across, X up
    xz.parentElement.hidden = true;
  } else {
    xz.parentElement.hidden = false;
    drawView(xy, p, 0, 1, highlight, "X", "Y");
    drawView(xz, p, 0, 2, highlight, "X", "Z");
  }
}

/** Draw the last check's preview; highlight is a program line to draw thicker. */
export function drawPreview(highlight) {
  drawToolpath($("#view-xy"), $("#view-xz"), state.check && state.check.preview, highlight);
}
