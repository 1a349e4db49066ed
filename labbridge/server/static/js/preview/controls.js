// Orbit, pan and zoom for the 3D view, with mouse and touch (pointer events).
// Drag: orbit around the target. Right drag, Shift+drag or two fingers: pan. Wheel or pinch: zoom.
// The camera's `up` is the world's up (Z on a mill, X on a lathe shown in its XZ plane).
import * as THREE from "../../node_modules/three/build/three.module.js";

const ROTATE_SPEED = 0.008;  // radians per pixel
const MIN_POLAR = 0.02;

export class OrbitPanZoom {
  constructor(camera, element, onChange) {
    this.camera = camera;
    this.element = element;
    this.onChange = onChange;
    this.target = new THREE.Vector3();
    this.pointers = new Map();
    this.mode = null;
    this._handlers = {
      pointerdown: (e) => this.down(e), pointermove: (e) => this.move(e), pointerup: (e) => this.up(e),
      pointercancel: (e) => this.up(e), wheel: (e) => this.wheel(e), contextmenu: (e) => e.preventDefault(),
    };
    for (const [name, fn] of Object.entries(this._handlers)) element.addEventListener(name, fn, { passive: false });
    element.style.touchAction = "none";
  }

  dispose() {
    for (const [name, fn] of Object.entries(this._handlers)) this.element.removeEventListener(name, fn);
  }

  down(e) {
    this.element.setPointerCapture(e.pointerId);
    this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    this.moved = 0;
    if (this.pointers.size === 2) this.mode = "pinch";
    else this.mode = e.button === 2 || e.shiftKey ? "pan" : "orbit";
    this.pinch = this.pinchState();
  }

  move(e) {
    const prev = this.pointers.get(e.pointerId);
    if (!prev) return;
    const dx = e.clientX - prev.x, dy = e.clientY - prev.y;
    this.moved += Math.abs(dx) + Math.abs(dy);
    if (this.mode === "pinch") {
      this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      const now = this.pinchState();
      if (this.pinch && now) {
        this.zoom(this.pinch.dist / Math.max(now.dist, 1));
        this.pan(now.cx - this.pinch.cx, now.cy - this.pinch.cy);
      }
      this.pinch = now;
    } else {
      this.pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
      if (this.mode === "pan") this.pan(dx, dy);
      else this.orbit(dx, dy);
    }
    this.onChange();
  }

  up(e) {
    this.pointers.delete(e.pointerId);
    if (this.pointers.size < 2 && this.mode === "pinch") this.mode = this.pointers.size ? "orbit" : null;
    if (!this.pointers.size) this.mode = null;
  }

  wheel(e) {
    e.preventDefault();
    this.zoom(Math.exp(e.deltaY * 0.001));
    this.onChange();
  }

  pinchState() {
    if (this.pointers.size !== 2) return null;
    const [a, b] = [...this.pointers.values()];
    return { dist: Math.hypot(a.x - b.x, a.y - b.y), cx: (a.x + b.x) / 2, cy: (a.y + b.y) / 2 };
  }

  /** Turn around the world's up axis (dx) and the camera's right axis (dy), never over the pole. */
  orbit(dx, dy) {
    const cam = this.camera, up = cam.up.clone().normalize();
    const offset = cam.position.clone().sub(this.target);
    offset.applyAxisAngle(up, -dx * ROTATE_SPEED);
    const right = new THREE.Vector3().crossVectors(offset, up).normalize();
    const polar = offset.angleTo(up);
    const turn = Math.max(MIN_POLAR - polar, Math.min(Math.PI - MIN_POLAR - polar, -dy * ROTATE_SPEED));
    if (right.lengthSq() > 0) offset.applyAxisAngle(right, -turn);
    cam.position.copy(this.target).add(offset);
    cam.lookAt(this.target);
  }

  /** Move the camera and its target across the screen, by pixels at the target's depth. */
  pan(dx, dy) {
    const cam = this.camera;
    cam.updateMatrixWorld();
    const distance = cam.position.distanceTo(this.target);
    const perPixel = 2 * distance * Math.tan((cam.fov * Math.PI) / 360) / this.element.clientHeight;
    const right = new THREE.Vector3().setFromMatrixColumn(cam.matrixWorld, 0).multiplyScalar(-dx * perPixel);
    const upv = new THREE.Vector3().setFromMatrixColumn(cam.matrixWorld, 1).multiplyScalar(dy * perPixel);
    cam.position.add(right).add(upv);
    this.target.add(right).add(upv);
  }

  zoom(factor) {
    const cam = this.camera;
    const offset = cam.position.clone().sub(this.target).multiplyScalar(factor);
    if (offset.length() < 0.5) return;
    cam.position.copy(this.target).add(offset);
  }
}
