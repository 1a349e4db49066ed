// The flat toolpath views of a checked program, for small screens and printing: top (XY) and front (XZ), or Z/X
// for a lathe, with the machine's envelope, keep-out boxes and the flagged segments in red. They draw the same
// compact toolpath as the 3D view (js/preview/), so a million-line program costs what the screen shows.
import { $ } from "../dom.js";
import { t } from "../i18n.js";
import { CUT, FLAGGED, JUMP, RAPID, pathBounds, vertexForLine } from "../preview/toolpath.js";
import { state } from "../store.js";

const NAMES = ["X", "Y", "Z"];
const STYLE = { [RAPID]: ["#999", 1, [4, 4]], [CUT]: ["#16c", 1.2, []], [FLAGGED]: ["#e11", 2.5, []] };

function drawBoxes(ctx, tp, ai, bi, X, Y, k) {
  for (const box of tp.header.keep_out) {
    const a0 = box.min[NAMES[ai]], a1 = box.max[NAMES[ai]], b0 = box.min[NAMES[bi]], b1 = box.max[NAMES[bi]];
    if ([a0, a1, b0, b1].some((v) => v === undefined)) continue;
    ctx.fillStyle = "rgba(230,140,0,0.25)"; ctx.strokeStyle = "#e80";
    ctx.fillRect(X(a0), Y(b1), (a1 - a0) * k, (b1 - b0) * k);
    ctx.strokeRect(X(a0), Y(b1), (a1 - a0) * k, (b1 - b0) * k);
  }
}

/** Segments of one kind as one path (rapids, then cuts, then flagged on top); the highlighted line thicker. */
function drawSegments(ctx, tp, ai, bi, X, Y, highlight) {
  const { positions: p, kinds, lines, count } = tp;
  for (const kind of [RAPID, CUT, FLAGGED]) {
    const [colour, width, dash] = STYLE[kind];
    ctx.beginPath();
    ctx.strokeStyle = colour; ctx.lineWidth = width; ctx.setLineDash(dash);
    for (let i = 1; i < count; i++) {
      if (kinds[i] !== kind) continue;
      ctx.moveTo(X(p[3 * (i - 1) + ai]), Y(p[3 * (i - 1) + bi]));
      ctx.lineTo(X(p[3 * i + ai]), Y(p[3 * i + bi]));
    }
    ctx.stroke();
  }
  ctx.setLineDash([]);
  if (highlight === null || highlight === undefined) return;
  ctx.beginPath(); ctx.strokeStyle = "#a0f"; ctx.lineWidth = 3;
  for (let i = 1; i < count; i++) {  // a flagged segment stays red (drawn above), the rest turn purple
    if (kinds[i] === JUMP || kinds[i] === FLAGGED || lines[i] !== highlight) continue;
    ctx.moveTo(X(p[3 * (i - 1) + ai]), Y(p[3 * (i - 1) + bi]));
    ctx.lineTo(X(p[3 * i + ai]), Y(p[3 * i + bi]));
  }
  ctx.stroke();
}

function drawView(canvas, tp, ai, bi, highlight, aName, bName) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 24;
  ctx.clearRect(0, 0, W, H);
  const [lo, hi] = pathBounds(tp, true);
  const ea = tp.header.envelope[NAMES[ai]] || [0, 0], eb = tp.header.envelope[NAMES[bi]] || [0, 0];
  const spanA = Math.max(hi[ai] - lo[ai], 1e-6), spanB = Math.max(hi[bi] - lo[bi], 1e-6);
  const k = Math.min((W - 2 * pad) / spanA, (H - 2 * pad) / spanB);
  const X = (a) => pad + (a - lo[ai]) * k;
  const Y = (b) => H - pad - (b - lo[bi]) * k;
  ctx.strokeStyle = "#2a7"; ctx.lineWidth = 1.5; ctx.setLineDash([]);
  ctx.strokeRect(X(ea[0]), Y(eb[1]), (ea[1] - ea[0]) * k, (eb[1] - eb[0]) * k);
  drawBoxes(ctx, tp, ai, bi, X, Y, k);
  drawSegments(ctx, tp, ai, bi, X, Y, highlight);
  ctx.fillStyle = "#555"; ctx.font = "12px sans-serif";
  ctx.fillText(`${aName} →`, W - 60, H - 6); ctx.fillText(`↑ ${bName}`, 4, 14);
  canvas.dataset.segments = tp.count;
  canvas.dataset.bad = tp.kinds.filter((v) => v === FLAGGED).length;
}

/** Draw the last check's toolpath flat; highlight is a program line to draw thicker. */
export function drawPreview(highlight) {
  const tp = state.toolpath;
  if (!tp) return;
  const at = highlight === null || highlight === undefined ? -1 : vertexForLine(tp, highlight);
  highlight = at < 0 ? null : tp.lines[at];  // the segment that draws the line may stand for several lines
  if (tp.header.lathe) {
    drawView($("#view-xy"), tp, 2, 0, highlight, "Z", t("preview.x_diameter"));   // lathe: Z across, X up
    $("#view-xz").parentElement.hidden = true;
  } else {
    $("#view-xz").parentElement.hidden = false;
    drawView($("#view-xy"), tp, 0, 1, highlight, "X", "Y");
    drawView($("#view-xz"), tp, 0, 2, highlight, "X", "Z");
  }
}
