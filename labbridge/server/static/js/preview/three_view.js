// The 3D toolpath view: rapids and cuts in their colours, flagged lines in red, the machine's envelope and keep-out
// boxes, machine and work zero, the tool at its live position (smoothly between status reports) and the part
// already cut drawn differently. A lathe is shown in its XZ plane with the part's axis.
//
// Anyone may mount it: mountToolpath(container, toolpath, options) with a toolpath from fetchToolpath() returns a
// view with setTool(), setProgress(), select(), setPreset(), onSelect(), resize(), dispose(). It draws only when
// something changed, so an idle view costs nothing.
import * as THREE from "../../node_modules/three/build/three.module.js";
import { OrbitPanZoom } from "./controls.js";
import { pathBounds, segmentLines, vertexForLine } from "./toolpath.js";

export const COLORS = {
  background: 0xffffff, rapid: 0x9aa0a6, cut: 0x1666cc, flagged: 0xe01010, done: 0xf08c00,
  selected: 0xa000ff, envelope: 0x22aa77, keepOut: 0xee8800, tool: 0x222222, axis: 0x555555,
};
const PICK_PIXELS = 8;
const LOD_VERTICES = 4000;  // while the view turns, a longer path is drawn from a sample of its segments
const SETTLE_MS = 250;     // full detail again this long after the last turn

const VERTEX = `
in float aLine;
in float aKind;
flat out float vLine;
flat out float vKind;
void main() {
  vLine = aLine;
  vKind = aKind;
  gl_Position = projectionMatrix * modelViewMatrix * vec4(position, 1.0);
}`;

// Flat varyings take the segment's last vertex (WebGL 2's provoking vertex): the kind and line of the segment.
const FRAGMENT = `
flat in float vLine;
flat in float vKind;
uniform float uDone;
uniform float uSelected;
uniform vec3 uRapid, uCut, uFlagged, uDoneColor, uSelectedColor;
out vec4 fragColor;
void main() {
  if (vKind < 0.5) discard;
  vec3 c = vKind < 1.5 ? uRapid : (vKind < 2.5 ? uCut : uFlagged);
  if (vKind > 1.5 && vKind < 2.5 && vLine <= uDone) c = uDoneColor;
  if (vLine == uSelected) c = uSelectedColor;
  fragColor = vec4(c, 1.0);
}`;

// The shader writes these as they are: sRGB values, the same the flat views and the legend use.
function color(hex) { return new THREE.Color().setHex(hex, THREE.LinearSRGBColorSpace); }

/** Every n-th segment of a long path (and every flagged one), as separate segments, to draw while the view
 * moves: software rendering pays for every pixel a line covers, so a sparser path turns faster. */
function sampled(tp) {
  const stride = Math.ceil(tp.count / LOD_VERTICES);
  const keep = [];
  for (let i = 1; i < tp.count; i++) {
    if (tp.kinds[i] !== 0 && (i % stride === 0 || tp.kinds[i] === 3)) keep.push(i);
  }
  const n = 2 * keep.length;
  const positions = new Float32Array(n * 3), lines = new Uint32Array(n), kinds = new Uint8Array(n);
  keep.forEach((i, j) => {
    positions.set(tp.positions.subarray(3 * (i - 1), 3 * i + 3), 6 * j);
    lines[2 * j] = lines[2 * j + 1] = tp.lines[i];
    kinds[2 * j] = kinds[2 * j + 1] = tp.kinds[i];
  });
  return { header: tp.header, count: n, positions, lines, kinds, segments: true };
}

function pathObject(tp) {
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute("position", new THREE.BufferAttribute(tp.positions, 3));
  // Float attributes: byte and integer vertex formats are converted on the CPU by ANGLE on every draw under
  // software rendering (measured: 4x slower orbiting). Line numbers stay exact below 2^24.
  geometry.setAttribute("aLine", new THREE.BufferAttribute(Float32Array.from(tp.lines), 1));
  geometry.setAttribute("aKind", new THREE.BufferAttribute(Float32Array.from(tp.kinds), 1));
  const material = new THREE.ShaderMaterial({
    glslVersion: THREE.GLSL3, vertexShader: VERTEX, fragmentShader: FRAGMENT,
    uniforms: {
      uDone: { value: -1 }, uSelected: { value: -1 },
      uRapid: { value: color(COLORS.rapid) }, uCut: { value: color(COLORS.cut) },
      uFlagged: { value: color(COLORS.flagged) }, uDoneColor: { value: color(COLORS.done) },
      uSelectedColor: { value: color(COLORS.selected) },
    },
  });
  const line = tp.segments ? new THREE.LineSegments(geometry, material) : new THREE.Line(geometry, material);
  line.frustumCulled = false;
  return line;
}

function box(min, max, hex, fill) {
  const size = new THREE.Vector3(max[0] - min[0], max[1] - min[1], max[2] - min[2]);
  const centre = new THREE.Vector3((min[0] + max[0]) / 2, (min[1] + max[1]) / 2, (min[2] + max[2]) / 2);
  const geometry = new THREE.BoxGeometry(Math.max(size.x, 1e-3), Math.max(size.y, 1e-3), Math.max(size.z, 1e-3));
  const group = new THREE.Group();
  const edges = new THREE.LineSegments(new THREE.EdgesGeometry(geometry), new THREE.LineBasicMaterial({ color: hex }));
  group.add(edges);
  if (fill) {
    group.add(new THREE.Mesh(geometry, new THREE.MeshBasicMaterial({
      color: hex, transparent: true, opacity: 0.18, depthWrite: false })));
  }
  group.position.copy(centre);
  return group;
}

/** The box of an axis map {X: [lo, hi], ...}; axes it lacks span `fallback` (a lathe has no Y). */
function axisBox(minMap, maxMap, fallback) {
  const min = [], max = [];
  ["X", "Y", "Z"].forEach((a, k) => {
    min.push(minMap[a] ?? fallback[0][k]);
    max.push(maxMap[a] ?? fallback[1][k]);
  });
  return [min, max];
}

function machineObjects(h, bounds) {
  const group = new THREE.Group();
  const thin = [[bounds[0][0], -0.5, bounds[0][2]], [bounds[1][0], 0.5, bounds[1][2]]];
  const envMin = {}, envMax = {};
  for (const [a, v] of Object.entries(h.envelope)) { envMin[a] = v[0]; envMax[a] = v[1]; }
  group.add(box(...axisBox(envMin, envMax, thin), COLORS.envelope, false));
  for (const k of h.keep_out) group.add(box(...axisBox(k.min, k.max, thin), COLORS.keepOut, true));
  const size = Math.max(...bounds[1].map((v, k) => v - bounds[0][k])) || 10;
  const machineZero = new THREE.AxesHelper(size * 0.08);
  machineZero.position.fromArray(h.machine_zero);
  const workZero = new THREE.AxesHelper(size * 0.05);
  workZero.position.fromArray(h.work_zero);
  group.add(machineZero, workZero);
  if (h.lathe) {  // the part's (spindle) axis: X = 0 along Z
    const z = h.envelope.Z || [bounds[0][2], bounds[1][2]];
    const axis = new THREE.BufferGeometry().setFromPoints([new THREE.Vector3(0, 0, z[0]), new THREE.Vector3(0, 0, z[1])]);
    group.add(new THREE.Line(axis, new THREE.LineDashedMaterial({ color: COLORS.axis, dashSize: size * 0.03,
      gapSize: size * 0.015 })).computeLineDistances());
  }
  return group;
}

function toolObject(size, lathe) {
  const height = size * 0.06;
  const geometry = new THREE.ConeGeometry(height * 0.3, height, 16);
  geometry.translate(0, -height / 2, 0);  // the tip at the origin, the body along -Y
  if (lathe) geometry.rotateZ(Math.PI / 2);  // a lathe's tool points at the part's axis: body along +X
  else geometry.rotateX(-Math.PI / 2);  // a mill's tool points down: body along +Z
  const tool = new THREE.Mesh(geometry, new THREE.MeshBasicMaterial({ color: COLORS.tool }));
  tool.visible = false;
  return tool;
}

class ToolpathView {
  constructor(container, tp, options) {
    this.container = container;
    this.tp = tp;
    this.options = options;
    this.lathe = !!tp.header.lathe;
    this.listeners = [];
    this.frames = 0;
    this.renderer = new THREE.WebGLRenderer({ antialias: false, preserveDrawingBuffer: !!options.preserveDrawingBuffer });
    this.renderer.setPixelRatio(Math.min(window.devicePixelRatio || 1, 2));
    this.renderer.setClearColor(COLORS.background);
    this.canvas = this.renderer.domElement;
    this.canvas.className = "toolpath-3d";
    container.append(this.canvas);
    this.scene = new THREE.Scene();
    this.bounds = pathBounds(tp, false);
    const all = pathBounds(tp, true);
    this.size = Math.max(...all[1].map((v, k) => v - all[0][k]), 1);
    this.path = pathObject(tp);
    this.scene.add(this.path, machineObjects(tp.header, all));
    if (tp.count > LOD_VERTICES) {  // software rendering cannot turn 50k segments smoothly: a sample while moving
      const coarse = pathObject(sampled(tp));
      coarse.material.dispose();
      coarse.material = this.path.material;  // the same colours, progress and selection
      coarse.visible = false;
      this.coarse = coarse;
      this.scene.add(coarse);
    }
    this.interactUntil = 0;
    this.tool = toolObject(this.size, this.lathe);
    this.scene.add(this.tool);
    this.camera = new THREE.PerspectiveCamera(40, 1, this.size / 1000, this.size * 20);
    this.controls = new OrbitPanZoom(this.camera, this.canvas, () => this.interact());
    this.canvas.addEventListener("click", (e) => this.click(e));
    this.motion = null;
    this.resizeObserver = new ResizeObserver(() => this.resize());
    this.resizeObserver.observe(container);
    this.setPreset(options.preset || (this.lathe ? "xz" : "iso"));
    this.resize();
  }

  /** Frame the path from a named direction: top, front, side, iso (mill) or xz (lathe). */
  setPreset(name) {
    const [lo, hi] = this.bounds;
    const centre = new THREE.Vector3((lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, (lo[2] + hi[2]) / 2);
    const span = Math.max(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2], 1);
    const dist = span * 1.6;
    const cam = this.camera;
    const dirs = { top: [0, -1e-3, 1], front: [0, -1, 0], side: [1, 0, 0], iso: [1, -1, 0.8], xz: [0, 1, 0] };
    const d = new THREE.Vector3(...(dirs[name] || dirs.iso)).normalize();
    cam.up.set(...(name === "xz" ? [1, 0, 0] : [0, 0, 1]));  // a lathe: Z across, X up
    cam.position.copy(centre).addScaledVector(d, dist);
    this.controls.target.copy(centre);
    cam.lookAt(centre);
    this.preset = name;
    this.requestRender();
  }

  resize() {
    const w = this.container.clientWidth || 300, h = this.container.clientHeight || Math.round(w * 0.66);
    this.renderer.setSize(w, h, true);
    this.camera.aspect = w / h;
    this.camera.updateProjectionMatrix();
    this.requestRender();
  }

  /** The view is being turned: draw the sampled path until it settles, then the whole path once. */
  interact() {
    this.interactUntil = performance.now() + SETTLE_MS;
    clearTimeout(this.settle);
    this.settle = setTimeout(() => this.requestRender(), SETTLE_MS + 10);
    this.requestRender();
  }

  requestRender() {
    if (this.pending) return;
    this.pending = requestAnimationFrame((now) => this.draw(now));
  }

  draw(now) {
    this.pending = null;
    if (this.motion) this.stepTool(now);
    if (this.coarse) {
      const moving = performance.now() < this.interactUntil;
      this.coarse.visible = moving;
      this.path.visible = !moving;
    }
    this.renderer.render(this.scene, this.camera);
    this.frames += 1;
    if (this.motion) this.requestRender();
  }

  /** The tool's live position {X, Y, Z} (display coordinates), eased from the last one; null hides it. */
  setTool(position) {
    if (!position) { this.tool.visible = false; this.motion = null; this.requestRender(); return; }
    const target = new THREE.Vector3(position.X ?? 0, position.Y ?? 0, position.Z ?? 0);
    const now = performance.now();
    if (!this.tool.visible) {
      this.tool.position.copy(target);
      this.tool.visible = true;
      this.lastReport = now;
      this.requestRender();
      return;
    }
    const interval = Math.min(Math.max(now - (this.lastReport || now), 50), 500);
    this.lastReport = now;
    this.motion = { from: this.tool.position.clone(), to: target, start: now, duration: interval };
    this.requestRender();
  }

  stepTool(now) {
    const m = this.motion;
    const f = Math.min(1, (now - m.start) / m.duration);
    this.tool.position.lerpVectors(m.from, m.to, f);
    if (f >= 1) this.motion = null;
  }

  /** Draw lines up to and including `line` as already cut (-1: none). */
  setProgress(line) {
    this.path.material.uniforms.uDone.value = line ?? -1;
    this.requestRender();
  }

  /** Highlight the segment that draws program line `line` (null: none). */
  select(line) {
    const i = line === null || line === undefined ? -1 : vertexForLine(this.tp, line);
    this.path.material.uniforms.uSelected.value = i < 0 ? -1 : this.tp.lines[i];
    this.selected = i < 0 ? null : segmentLines(this.tp, i);
    this.requestRender();
    return this.selected;
  }

  /** fn([firstLine, lastLine]) when someone clicks a segment. */
  onSelect(fn) { this.listeners.push(fn); }

  click(e) {
    if (this.controls.moved > 4) return;  // the end of a drag, not a click
    const i = this.pick(e.offsetX, e.offsetY);
    if (i < 0) return;
    const range = this.select(this.tp.lines[i]);
    for (const fn of this.listeners) fn(range);
  }

  /** The vertex ending the drawn segment nearest to the canvas point (x, y), within a few pixels; else -1. */
  pick(x, y) {
    const cam = this.camera;
    cam.updateMatrixWorld();
    const m = new THREE.Matrix4().multiplyMatrices(cam.projectionMatrix, cam.matrixWorldInverse).elements;
    const w = this.canvas.clientWidth, h = this.canvas.clientHeight;
    const { positions: p, kinds, count } = this.tp;
    let best = -1, bestD = PICK_PIXELS * PICK_PIXELS, px = 0, py = 0, pOk = false;
    for (let i = 0; i < count; i++) {
      const X = p[3 * i], Y = p[3 * i + 1], Z = p[3 * i + 2];
      const cw = m[3] * X + m[7] * Y + m[11] * Z + m[15];
      const sx = ((m[0] * X + m[4] * Y + m[8] * Z + m[12]) / cw + 1) * w / 2;
      const sy = (1 - (m[1] * X + m[5] * Y + m[9] * Z + m[13]) / cw) * h / 2;
      const ok = cw > 0;
      if (ok && pOk && kinds[i] !== 0) {
        const d = segDist2(x, y, px, py, sx, sy);
        if (d < bestD) { bestD = d; best = i; }
      }
      px = sx; py = sy; pOk = ok;
    }
    return best;
  }

  /** What a test or a benchmark may ask: frames drawn, vertices, the preset. */
  stats() { return { frames: this.frames, vertices: this.tp.count, preset: this.preset }; }

  dispose() {
    if (this.pending) cancelAnimationFrame(this.pending);
    clearTimeout(this.settle);
    this.resizeObserver.disconnect();
    this.controls.dispose();
    this.scene.traverse((o) => { if (o.geometry) o.geometry.dispose(); if (o.material) o.material.dispose(); });
    this.renderer.dispose();
    this.canvas.remove();
    if (this.container.toolpathView === this) delete this.container.toolpathView;
  }
}

function segDist2(x, y, ax, ay, bx, by) {
  const dx = bx - ax, dy = by - ay, l2 = dx * dx + dy * dy;
  let s = l2 > 0 ? ((x - ax) * dx + (y - ay) * dy) / l2 : 0;
  s = Math.max(0, Math.min(1, s));
  const ex = ax + s * dx - x, ey = ay + s * dy - y;
  return ex * ex + ey * ey;
}

let webgl2 = null;

/** Whether this browser can draw the 3D view (WebGL 2); asked once, as each probe costs a GL context. */
export function canDraw3d() {
  if (webgl2 === null) {
    try {
      const gl = document.createElement("canvas").getContext("webgl2");
      webgl2 = !!gl;
      if (gl) gl.getExtension("WEBGL_lose_context")?.loseContext();  // give the probe's context back now
    } catch (_) { webgl2 = false; }
  }
  return webgl2;
}

/** Mount a 3D view of `toolpath` (from fetchToolpath) in `container`; see the module notes for the view's API. */
export function mountToolpath(container, toolpath, options = {}) {
  const view = new ToolpathView(container, toolpath, options);
  container.toolpathView = view;  // for whoever holds only the element (tests, the benchmark)
  return view;
}
