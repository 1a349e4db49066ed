/*
 * _fastcheck: the safety gate's fast path and its run-time estimator, in C.
 *
 * Why this exists: a student's program is a few hundred lines, but CAM output for the lab's
 * demos runs to a million. Most of those lines are plain G0/G1/G2/G3 moves, so this module
 * checks such lines directly and hands every other line back to the Python interpreter
 * (labbridge/safety/interpreter.py), which stays the single source of G-code semantics and of
 * every diagnostic message.
 *
 * Rules of the fast path:
 *   - It accepts a line only if it is certainly clean: plain words G0-G3 X Y Z I J K R F N (and ASCII comments),
 *     feed per minute, inside the envelope, clear of keep-out boxes, under the feed limit,
 *     spindle running for cuts, arc geometry within GRBL's tolerance. Anything else (a
 *     comment, an M-code, a problem of any kind) is "punted": run() stops before that line
 *     and Python interprets it, producing the diagnostic with its wording.
 *   - It changes only position, motion mode and feed; Python syncs the rest (offsets,
 *     units, plane, distance mode, spindle) back after every line it interprets.
 *   - Its arithmetic mirrors the Python code line for line; tests compare the two paths.
 *
 * The Estimator type is the run-time estimate of labbridge/safety/estimate.py (GRBL's own planner, ported in
 * labbridge/safety/planner.py) in C; both paths feed the same instance, so the estimate does not depend on
 * which path ran a line.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_BOXES 32
#define TWO_PI (2.0 * M_PI)
#define ARC_EPS 5e-7
#define ENV_EPS 1e-6
#define MAX_LINE_NUMBER 10000000.0
#define MAX_MARKS 4096 /* as in estimate.py: bounded ETA marks, spacing doubles when full */

/* Modal values as labbridge/safety/modal.py names them (the G-code number x10); the module exports them and
   a test checks that they agree with MotionMode and Plane. */
enum { MOTION_RAPID = 0, MOTION_LINEAR = 10, MOTION_ARC_CW = 20, MOTION_ARC_CCW = 30 };
enum { PLANE_XY = 170, PLANE_ZX = 180, PLANE_YZ = 190 };

#include "_arc_kernel.h"
#include "_estimator.h"
#include "_toolpath.h"

/* ------------------------------------------------------------------ fast path */

typedef struct {
    PyObject_HEAD
    Estimator *est;
    double env_lo[3], env_hi[3];
    int nboxes;
    double box_lo[MAX_BOXES][3], box_hi[MAX_BOXES][3];
    double max_feed;
    long line_buffer;
    double xscale;
    int require_decimal;
    /* modal state synced from Python */
    double pos[3], offset[3], unit_scale;
    int absolute, motion, plane, per_minute, spindle_on, enabled;
    double feed;
    /* bounds of fast-path motions */
    double lo[3], hi[3];
    int have_bounds;
    PyObject *sink; /* a Toolpath that also receives every motion (the dashboard's preview), or NULL */
} FastPath;

static int FastPath_init(FastPath *self, PyObject *args, PyObject *kw) {
    PyObject *est, *boxes;
    if (!PyArg_ParseTuple(args, "O!(ddd)(ddd)Odldp", &EstimatorType, &est, &self->env_lo[0], &self->env_lo[1],
                          &self->env_lo[2], &self->env_hi[0], &self->env_hi[1], &self->env_hi[2], &boxes,
                          &self->max_feed, &self->line_buffer, &self->xscale, &self->require_decimal))
        return -1;
    Py_INCREF(est);
    Py_XSETREF(self->est, (Estimator *)est);
    PyObject *seq = PySequence_Fast(boxes, "boxes must be a sequence");
    if (!seq) return -1;
    Py_ssize_t nb = PySequence_Fast_GET_SIZE(seq);
    if (nb > MAX_BOXES) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "too many keep-out boxes for the fast path");
        return -1;
    }
    for (Py_ssize_t i = 0; i < nb; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyArg_ParseTuple(item, "(ddd)(ddd)", &self->box_lo[i][0], &self->box_lo[i][1], &self->box_lo[i][2],
                              &self->box_hi[i][0], &self->box_hi[i][1], &self->box_hi[i][2])) {
            Py_DECREF(seq);
            return -1;
        }
    }
    Py_DECREF(seq);
    self->nboxes = (int)nb;
    self->have_bounds = 0;
    self->enabled = 0;
    return 0;
}

static void FastPath_dealloc(FastPath *self) {
    Py_XDECREF(self->est);
    Py_XDECREF(self->sink);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *FastPath_sync(FastPath *self, PyObject *args) {
    if (!PyArg_ParseTuple(args, "(ddd)(ddd)dpiipdpp", &self->pos[0], &self->pos[1], &self->pos[2], &self->offset[0],
                          &self->offset[1], &self->offset[2], &self->unit_scale, &self->absolute, &self->motion,
                          &self->plane, &self->per_minute, &self->feed, &self->spindle_on, &self->enabled))
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *FastPath_set_sink(FastPath *self, PyObject *sink) {
    if (sink != Py_None && !PyObject_TypeCheck(sink, &ToolpathType)) {
        PyErr_SetString(PyExc_TypeError, "the sink must be a Toolpath or None");
        return NULL;
    }
    Py_XSETREF(self->sink, sink == Py_None ? NULL : Py_NewRef(sink));
    Py_RETURN_NONE;
}

static PyObject *FastPath_state(FastPath *self, PyObject *unused) {
    return Py_BuildValue("(ddd)id", self->pos[0], self->pos[1], self->pos[2], self->motion, self->feed);
}

static PyObject *FastPath_bounds(FastPath *self, PyObject *unused) {
    if (!self->have_bounds) Py_RETURN_NONE;
    return Py_BuildValue("(ddd)(ddd)", self->lo[0], self->lo[1], self->lo[2], self->hi[0], self->hi[1], self->hi[2]);
}

/* Parse a G-code number at p: [+-] digits [. digits] with at least one digit. Returns chars used or 0. */
static int parse_number(const char *p, const char *end, double *out, int *has_point) {
    const char *q = p;
    int neg = 0;
    if (q < end && (*q == '+' || *q == '-')) { neg = (*q == '-'); q++; }
    uint64_t mant = 0;
    int digits = 0, frac = 0, point = 0;
    while (q < end) {
        char ch = *q;
        if (ch >= '0' && ch <= '9') {
            /* More digits than GRBL's read_float keeps (MAX_INT_DIGITS) or a Fanuc-style control accepts:
               Python reads it as the controller does, or refuses it. */
            if (digits >= 8) return 0;
            mant = mant * 10 + (uint64_t)(ch - '0');
            digits++;
            if (point) frac++;
        } else if (ch == '.' && !point) {
            point = 1;
        } else break;
        q++;
    }
    if (!digits) return 0;
    static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18};
    /* mant < 2^53 and 10^frac exact: the division is correctly rounded, like float(). */
    if (mant >= (1ULL << 53)) return 0;
    double v = (double)mant / p10[frac];
    *out = neg ? -v : v;
    *has_point = point;
    return (int)(q - p);
}

enum { W_G, W_X, W_Y, W_Z, W_I, W_J, W_K, W_R, W_F, W_N, W_COUNT };

static int word_index(char c) {
    switch (c) {
    case 'G': return W_G; case 'X': return W_X; case 'Y': return W_Y; case 'Z': return W_Z;
    case 'I': return W_I; case 'J': return W_J; case 'K': return W_K; case 'R': return W_R;
    case 'F': return W_F; case 'N': return W_N;
    default: return -1;
    }
}

/* The words of one line [p, eol), comments and spaces skipped as GRBL's reader skips them. Returns the count
   of characters GRBL would keep, or -1 to hand the line to Python. */
static long read_words(const char *p, const char *eol, double val[W_COUNT], int have[W_COUNT],
                       int points[W_COUNT]) {
    long cleaned = 0;
    const char *q = p;
    while (q < eol) {
        unsigned char ch = (unsigned char)*q;
        if (ch == ' ' || ch == '\t' || ch == '\r') { q++; continue; }
        if (ch == '(' || ch == ';') {
            /* A comment: skipped, as GRBL's reader does. Bytes that are not plain ASCII (maybe not even
               UTF-8) and unclosed parentheses go to Python, which judges and words them. */
            const char *stop = eol;
            if (ch == '(') {
                stop = memchr(q, ')', (size_t)(eol - q));
                if (!stop) return -1;
            }
            for (const char *c = q; c < stop; c++)
                if ((unsigned char)*c >= 0x80 || *c == 0) return -1;
            q = ch == '(' ? stop + 1 : eol;
            continue;
        }
        if (ch >= 'a' && ch <= 'z') ch = (unsigned char)(ch - 'a' + 'A');
        int w = word_index((char)ch);
        if (w < 0 || have[w]) return -1;
        q++;
        cleaned++;
        /* numbers may contain spaces in GRBL's reading only if stripped first: keep it simple, punt on them */
        int used = parse_number(q, eol, &val[w], &points[w]);
        if (!used) return -1;
        cleaned += used;
        q += used;
        have[w] = 1;
    }
    return cleaned;
}

/* Try one line [p, eol). Returns 1 if it was clean and applied, 0 to hand it to Python, -1 on error. */
static int fast_line(FastPath *self, const char *p, const char *eol, long line_no) {
    double val[W_COUNT];
    int have[W_COUNT] = {0};
    int points[W_COUNT] = {0};
    long cleaned = read_words(p, eol, val, have, points);
    if (cleaned < 0 || cleaned > self->line_buffer) return 0;
    if (!self->per_minute) return 0; /* G93/G95: F means something else; Python interprets */
    if (!cleaned) return 1; /* blank line */
    if (have[W_N] && (val[W_N] < 0 || val[W_N] > MAX_LINE_NUMBER)) return 0;
    int motion = self->motion;
    if (have[W_G]) {
        double g = val[W_G];
        if (g != 0.0 && g != 1.0 && g != 2.0 && g != 3.0) return 0;
        motion = (int)g * 10; /* G0..G3 -> MOTION_RAPID..MOTION_ARC_CCW */
    }
    if (motion != MOTION_RAPID && motion != MOTION_LINEAR && motion != MOTION_ARC_CW && motion != MOTION_ARC_CCW)
        return 0;
    if (self->require_decimal) {
        for (int w = W_X; w <= W_R; w++)
            if (have[w] && !points[w]) return 0;
    }
    double feed = self->feed;
    if (have[W_F]) {
        if (val[W_F] < 0) return 0;
        feed = val[W_F] * self->unit_scale;
    }
    int axis_words = have[W_X] || have[W_Y] || have[W_Z];
    int arc = motion == MOTION_ARC_CW || motion == MOTION_ARC_CCW;
    int ijk = have[W_I] || have[W_J] || have[W_K];
    if ((ijk || have[W_R]) && !(arc && axis_words)) return 0; /* unused words: Python explains */
    if (ijk && have[W_R]) return 0;
    if ((axis_words || have[W_G]) && motion != 0 && !(feed > 0.0)) return 0;
    if (arc && have[W_G] && !axis_words) return 0;
    if (!axis_words) {
        self->motion = motion;
        self->feed = feed;
        return 1;
    }
    double target[3] = {self->pos[0], self->pos[1], self->pos[2]};
    static const int axis_word[3] = {W_X, W_Y, W_Z};
    for (int i = 0; i < 3; i++) {
        if (!have[axis_word[i]]) continue;
        double v = val[axis_word[i]] * self->unit_scale;
        if (i == 0) v *= self->xscale;
        target[i] = self->absolute ? v + self->offset[i] : self->pos[i] + v;
    }
    double lo[3], hi[3], center[3] = {0, 0, 0}, radius = 0, sweep = 0;
    int a = 0, b = 1, n = 2;
    if (self->plane == PLANE_ZX) { a = 2; b = 0; n = 1; }
    else if (self->plane == PLANE_YZ) { a = 1; b = 2; n = 0; }
    if (arc) {
        static const int plane_word[3] = {W_X, W_Y, W_Z};
        if (!have[plane_word[a]] && !have[plane_word[b]]) return 0;
        double *pos = self->pos;
        double x = target[a] - pos[a], y = target[b] - pos[b];
        double i_off, j_off;
        if (have[W_R]) {
            double r = val[W_R] * self->unit_scale;
            if (target[0] == pos[0] && target[1] == pos[1] && target[2] == pos[2]) return 0;
            if (r == 0.0) return 0;
            if (!arc_center_offset(x, y, r, motion == MOTION_ARC_CW, &i_off, &j_off)) return 0;
            radius = fabs(r);
        } else {
            static const int off_word[3] = {W_I, W_J, W_K};
            if (!have[off_word[a]] && !have[off_word[b]]) return 0;
            i_off = have[off_word[a]] ? val[off_word[a]] * self->unit_scale : 0.0;
            j_off = have[off_word[b]] ? val[off_word[b]] * self->unit_scale : 0.0;
            if (have[off_word[n]]) return 0; /* an offset on the linear axis: Python decides */
            radius = hypot(i_off, j_off);
            double target_r = hypot(x - i_off, y - j_off);
            double delta = fabs(target_r - radius);
            if (!(delta <= 0.005) && (delta > 0.5 || delta > 0.001 * radius)) return 0;
            if (radius == 0.0) return 0;
        }
        center[0] = pos[0]; center[1] = pos[1]; center[2] = pos[2];
        center[a] = pos[a] + i_off;
        center[b] = pos[b] + j_off;
        sweep = arc_sweep(pos, target, center, a, b, motion == MOTION_ARC_CW);
        /* Anything not finite (a huge radius, an overflowing centre) is Python's to explain. */
        if (!isfinite(radius) || !isfinite(sweep) || !isfinite(center[a]) || !isfinite(center[b])) return 0;
        arc_bounds(pos, target, center, a, b, radius, sweep, lo, hi);
    } else {
        for (int i = 0; i < 3; i++) {
            lo[i] = self->pos[i] < target[i] ? self->pos[i] : target[i];
            hi[i] = self->pos[i] > target[i] ? self->pos[i] : target[i];
        }
    }
    if (motion != MOTION_RAPID) {
        if (!self->spindle_on) return 0;
        if (feed > self->max_feed + ENV_EPS) return 0;
    }
    for (int i = 0; i < 3; i++)
        if (lo[i] < self->env_lo[i] - ENV_EPS || hi[i] > self->env_hi[i] + ENV_EPS) return 0;
    for (int k = 0; k < self->nboxes; k++) {
        if (hi[0] > self->box_lo[k][0] && lo[0] < self->box_hi[k][0] && hi[1] > self->box_lo[k][1] &&
            lo[1] < self->box_hi[k][1] && hi[2] > self->box_lo[k][2] && lo[2] < self->box_hi[k][2])
            return 0; /* near a keep-out box: the exact test is Python's */
    }
    /* clean: apply */
    if (!self->have_bounds) {
        memcpy(self->lo, lo, sizeof lo);
        memcpy(self->hi, hi, sizeof hi);
        self->have_bounds = 1;
    } else {
        for (int i = 0; i < 3; i++) {
            if (lo[i] < self->lo[i]) self->lo[i] = lo[i];
            if (hi[i] > self->hi[i]) self->hi[i] = hi[i];
        }
    }
    int kind = motion == MOTION_RAPID ? 0 : (arc ? 2 : 1);
    if (est_add(self->est, kind, self->pos, target, feed, center, a, b, n, sweep, radius, 0.0, line_no) < 0)
        return -1;
    if (self->sink != NULL &&
        tp_motion(self->sink, kind, self->pos, target, arc ? center : NULL, a, b, n, sweep, radius, line_no) < 0)
        return -1;
    memcpy(self->pos, target, sizeof target);
    self->motion = motion;
    self->feed = feed;
    return 1;
}

static PyObject *FastPath_run(FastPath *self, PyObject *args) {
    Py_buffer buf;
    Py_ssize_t start;
    long line_no;
    if (!PyArg_ParseTuple(args, "y*nl", &buf, &start, &line_no)) return NULL;
    const char *base = (const char *)buf.buf;
    const char *p = base + (start < 0 ? 0 : start);
    const char *end = base + buf.len;
    if (self->enabled) {
        while (p < end) {
            /* Lines end as GRBL ends them: LF, CR or CR LF. A CR that ends the buffer is left to Python,
               which knows whether an LF follows in the next chunk. */
            const char *eol = memchr(p, '\n', (size_t)(end - p));
            const char *cr = memchr(p, '\r', (size_t)((eol ? eol : end) - p));
            const char *next;
            if (cr) {
                if (cr + 1 == end) break;
                eol = cr;
                next = cr[1] == '\n' ? cr + 2 : cr + 1;
            } else if (eol) {
                next = eol + 1;
            } else {
                break;
            }
            int r = fast_line(self, p, eol, line_no + 1);
            if (r < 0) { PyBuffer_Release(&buf); return NULL; }
            if (r == 0) break;
            p = next;
            line_no++;
        }
    }
    Py_ssize_t offset = p - base;
    PyBuffer_Release(&buf);
    return Py_BuildValue("nl", offset, line_no);
}

static PyMethodDef FastPath_methods[] = {
    {"sync", (PyCFunction)FastPath_sync, METH_VARARGS, "Load the modal state Python's interpreter holds."},
    {"set_sink", (PyCFunction)FastPath_set_sink, METH_O, "Also hand every motion to this Toolpath (None: stop)."},
    {"state", (PyCFunction)FastPath_state, METH_NOARGS, "(position, motion, feed) after fast lines."},
    {"bounds", (PyCFunction)FastPath_bounds, METH_NOARGS, "Bounds of the motions the fast path ran, or None."},
    {"run", (PyCFunction)FastPath_run, METH_VARARGS,
     "run(buffer, offset, line_no) -> (offset, line_no): check clean lines until one needs Python."},
    {NULL}};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "labbridge.safety._fastcheck.FastPath",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastPath_init,
    .tp_dealloc = (destructor)FastPath_dealloc,
    .tp_methods = FastPath_methods,
    .tp_doc = "Checks plain G0-G3 lines in C; hands everything else to the Python interpreter.",
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_fastcheck",
                                       "Fast path of the labbridge safety gate.", -1, NULL};

PyMODINIT_FUNC PyInit__fastcheck(void) {
    if (PyType_Ready(&EstimatorType) < 0 || PyType_Ready(&FastPathType) < 0 || PyType_Ready(&ToolpathType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&EstimatorType);
    PyModule_AddObject(m, "Estimator", (PyObject *)&EstimatorType);
    Py_INCREF(&FastPathType);
    PyModule_AddObject(m, "FastPath", (PyObject *)&FastPathType);
    Py_INCREF(&ToolpathType);
    PyModule_AddObject(m, "Toolpath", (PyObject *)&ToolpathType);
    static const struct { const char *name; long value; } constants[] = {
        {"MOTION_RAPID", MOTION_RAPID}, {"MOTION_LINEAR", MOTION_LINEAR}, {"MOTION_ARC_CW", MOTION_ARC_CW},
        {"MOTION_ARC_CCW", MOTION_ARC_CCW}, {"PLANE_XY", PLANE_XY}, {"PLANE_ZX", PLANE_ZX}, {"PLANE_YZ", PLANE_YZ}};
    for (size_t i = 0; i < sizeof constants / sizeof constants[0]; i++)
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
