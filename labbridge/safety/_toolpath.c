/*
 * _toolpath: the dashboard's compact toolpath, built in C while the safety gate reads a program.
 *
 * Why this exists: CAM output for a 3D surface runs to a million lines and a browser cannot draw
 * (or receive) every one of them. The gate's fast path hands each clean motion here without a
 * Python call; the interpreter hands the rest (see labbridge/safety/toolpath.py, which holds the
 * same algorithm in Python for builds without a compiler and for the differential test).
 *
 * What it keeps: one continuous polyline in display coordinates (a lathe's X as a diameter), as
 * float32 points, with per vertex the program line of the motion that reached it and the kind of
 * the segment that ends there (jump, rapid, cut, flagged). Runs of one kind are merged while every
 * merged point stays within `tolerance` of the straight segment replacing them (the display
 * resolution); flagged motions (lines with an error) are never merged. Arcs are cut into chords
 * whose sagitta is at most the tolerance, with the gate's formulas (geometry.arc_points).
 *
 * Memory is bounded: when the vertex budget is full the tolerance doubles and the points kept so
 * far are merged again, so a program of any length ends within `max_vertices`.
 */
#include "_toolpath.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define MAX_PENDING 128
#define MAX_ARC_STEPS 100000
#define MAX_COARSEN 24
#define TURN_EPS 1e-9

typedef struct {
    PyObject_HEAD
    double tol, xscale;
    Py_ssize_t max_vertices, n, cap;
    float *pos;
    uint32_t *line;
    uint8_t *kind;
    double anchor[3], cur[3];
    int have_any, truncated, replaying, coarsened;
    double pend[MAX_PENDING][3];
    uint32_t pend_line[MAX_PENDING];
    int np, run_kind;
    int dir[3];  /* sign of the last move along each axis: a point where one turns back is an extreme, kept */
    long long points_in;
    /* overdraw removal, switched on when merging alone cannot keep the budget: a segment whose two ends
       fall in the same grid cells as one already kept is drawn over it, so it is skipped (a jump) */
    int dedupe, skipping;
    double grid, prev[3], skip[3];
    uint32_t skip_line;
    uint64_t *seen;
    Py_ssize_t seen_cap, seen_count;
} Toolpath;

static int emit(Toolpath *t, const double p[3], uint32_t line, int k);
static int flush(Toolpath *t);

static int coarsen(Toolpath *t, double factor) {
    /* Grow the tolerance and merge the vertices kept so far again (they stay in order). */
    Py_ssize_t n = t->n;
    float *pos = PyMem_Malloc((size_t)n * 3 * sizeof(float));
    uint32_t *line = PyMem_Malloc((size_t)n * sizeof(uint32_t));
    uint8_t *kind = PyMem_Malloc((size_t)n);
    if (!pos || !line || !kind) {
        PyMem_Free(pos); PyMem_Free(line); PyMem_Free(kind);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(pos, t->pos, (size_t)n * 3 * sizeof(float));
    memcpy(line, t->line, (size_t)n * sizeof(uint32_t));
    memcpy(kind, t->kind, (size_t)n);
    /* the run in progress survives the replay */
    double pend[MAX_PENDING][3];
    uint32_t pend_line[MAX_PENDING];
    int np = t->np, run_kind = t->run_kind;
    memcpy(pend, t->pend, sizeof pend);
    memcpy(pend_line, t->pend_line, sizeof pend_line);
    double anchor[3] = {t->anchor[0], t->anchor[1], t->anchor[2]};
    double prev[3] = {t->prev[0], t->prev[1], t->prev[2]}, skip[3] = {t->skip[0], t->skip[1], t->skip[2]};
    int skipping = t->skipping;
    uint32_t skip_line = t->skip_line;
    t->tol *= factor;
    t->coarsened++;
    t->n = 0;
    t->skipping = 0;
    if (t->dedupe) {
        t->grid = t->tol;
        t->seen_count = 0;
        memset(t->seen, 0, (size_t)t->seen_cap * sizeof(uint64_t));
    }
    t->np = 0;
    t->replaying = 1;
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        double p[3] = {pos[3 * i], pos[3 * i + 1], pos[3 * i + 2]};
        rc = emit(t, p, line[i], kind[i]);
    }
    if (rc == 0) rc = flush(t);
    t->replaying = 0;
    memcpy(t->pend, pend, sizeof pend);
    memcpy(t->pend_line, pend_line, sizeof pend_line);
    t->np = np;
    t->run_kind = run_kind;
    memcpy(t->anchor, anchor, sizeof anchor);
    memcpy(t->prev, prev, sizeof prev);
    if (skipping) {  /* the path had left the kept vertices before the replay: it still has */
        memcpy(t->skip, skip, sizeof skip);
        t->skip_line = skip_line;
        t->skipping = 1;
    }
    PyMem_Free(pos); PyMem_Free(line); PyMem_Free(kind);
    return rc;
}

static int start_dedupe(Toolpath *t) {
    Py_ssize_t cap = 1024;
    while (cap < 2 * t->max_vertices) cap *= 2;
    t->seen = PyMem_Calloc((size_t)cap, sizeof(uint64_t));
    if (!t->seen) { PyErr_NoMemory(); return -1; }
    t->seen_cap = cap;
    t->dedupe = 1;
    return 0;
}

static int make_room(Toolpath *t) {
    /* First overdraw removal (lossless on screen), then twice the tolerance, and again, as long as needed. */
    while (t->n >= t->max_vertices * 3 / 4 && t->coarsened < MAX_COARSEN) {
        if (!t->dedupe && start_dedupe(t) < 0) return -1;
        if (coarsen(t, t->coarsened == 0 ? 1.0 : 2.0) < 0) return -1;
    }
    if (t->n >= t->max_vertices) t->truncated = 1;
    return 0;
}

static uint64_t mix(uint64_t h, int64_t v) {
    uint64_t z = h ^ ((uint64_t)v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* 1 if the segment a-b (either direction) of this kind was kept before; else remember it and return 0. */
static int seen_before(Toolpath *t, const double a[3], const double b[3], int kind) {
    int64_t qa[3], qb[3];
    for (int i = 0; i < 3; i++) {
        qa[i] = (int64_t)floor(a[i] / t->grid);
        qb[i] = (int64_t)floor(b[i] / t->grid);
    }
    const int64_t *lo = qa, *hi = qb;
    if (qa[0] > qb[0] || (qa[0] == qb[0] && (qa[1] > qb[1] || (qa[1] == qb[1] && qa[2] > qb[2])))) {
        lo = qb; hi = qa;
    }
    uint64_t h = (uint64_t)kind;
    for (int i = 0; i < 3; i++) h = mix(h, lo[i]);
    for (int i = 0; i < 3; i++) h = mix(h, hi[i]);
    h |= 1;
    Py_ssize_t mask = t->seen_cap - 1;
    for (Py_ssize_t i = (Py_ssize_t)(h & (uint64_t)mask);; i = (i + 1) & mask) {
        if (t->seen[i] == h) return 1;
        if (t->seen[i] == 0) {
            if (t->seen_count < t->max_vertices) { t->seen[i] = h; t->seen_count++; }
            return 0;
        }
    }
}

static int append(Toolpath *t, const double p[3], uint32_t line, int kind);

static int store(Toolpath *t, const double p[3], uint32_t line, int kind) {
    if (!t->replaying && t->n >= t->max_vertices) {
        if (make_room(t) < 0) return -1;
        if (t->truncated) return 0;
    }
    if (t->dedupe) {
        int drawn = kind == TP_RAPID || kind == TP_CUT;
        if (drawn && seen_before(t, t->prev, p, kind)) {
            memcpy(t->prev, p, 3 * sizeof(double));
            memcpy(t->anchor, p, 3 * sizeof(double));
            memcpy(t->skip, p, 3 * sizeof(double));
            t->skip_line = line;
            t->skipping = 1;
            return 0;
        }
        if (t->skipping && kind != TP_JUMP && append(t, t->skip, t->skip_line, TP_JUMP) < 0) return -1;
        t->skipping = 0;
    }
    memcpy(t->prev, p, 3 * sizeof(double));
    return append(t, p, line, kind);
}

static int append(Toolpath *t, const double p[3], uint32_t line, int kind) {
    if (t->n >= t->max_vertices) { t->truncated = 1; return 0; }
    if (t->n >= t->cap) {
        Py_ssize_t cap = t->cap ? t->cap * 2 : 4096;
        if (cap > t->max_vertices) cap = t->max_vertices;
        float *pos = PyMem_Realloc(t->pos, (size_t)cap * 3 * sizeof(float));
        if (!pos) { PyErr_NoMemory(); return -1; }
        t->pos = pos;
        uint32_t *ln = PyMem_Realloc(t->line, (size_t)cap * sizeof(uint32_t));
        if (!ln) { PyErr_NoMemory(); return -1; }
        t->line = ln;
        uint8_t *kd = PyMem_Realloc(t->kind, (size_t)cap);
        if (!kd) { PyErr_NoMemory(); return -1; }
        t->kind = kd;
        t->cap = cap;
    }
    Py_ssize_t i = t->n++;
    t->pos[3 * i] = (float)p[0];
    t->pos[3 * i + 1] = (float)p[1];
    t->pos[3 * i + 2] = (float)p[2];
    t->line[i] = line;
    t->kind[i] = (uint8_t)kind;
    memcpy(t->anchor, p, 3 * sizeof(double));
    return 0;
}

static double dist_sq_to_segment(const double q[3], const double a[3], const double b[3]) {
    double d[3] = {b[0] - a[0], b[1] - a[1], b[2] - a[2]};
    double w[3] = {q[0] - a[0], q[1] - a[1], q[2] - a[2]};
    double l2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
    double s = 0.0;
    if (l2 > 0.0) {
        s = (w[0] * d[0] + w[1] * d[1] + w[2] * d[2]) / l2;
        if (s < 0.0) s = 0.0;
        else if (s > 1.0) s = 1.0;
    }
    double e0 = w[0] - s * d[0], e1 = w[1] - s * d[1], e2 = w[2] - s * d[2];
    return e0 * e0 + e1 * e1 + e2 * e2;
}

static int flush(Toolpath *t) {
    if (t->np == 0) return 0;
    int np = t->np;
    t->np = 0;
    return store(t, t->pend[np - 1], t->pend_line[np - 1], t->run_kind);
}

/* One point of the path: merged into the run of its kind while the run stays within the tolerance. */
static int emit(Toolpath *t, const double p[3], uint32_t line, int k) {
    if (k == TP_JUMP || k == TP_FLAGGED) {
        if (flush(t) < 0) return -1;
        if (k == TP_JUMP) memset(t->dir, 0, sizeof t->dir);
        return store(t, p, line, k);
    }
    if (t->np > 0 && k != t->run_kind && flush(t) < 0) return -1;
    const double *from = t->np > 0 ? t->pend[t->np - 1] : t->anchor;
    int turns = 0;
    for (int i = 0; i < 3; i++) {
        double d = p[i] - from[i];
        int sign = d > TURN_EPS ? 1 : (d < -TURN_EPS ? -1 : 0);
        if (sign == 0) continue;
        if (t->dir[i] != 0 && sign != t->dir[i]) turns = 1;
        t->dir[i] = sign;
    }
    if (turns && flush(t) < 0) return -1;
    if (t->np == 0) {
        t->run_kind = k;
        memcpy(t->pend[0], p, 3 * sizeof(double));
        t->pend_line[0] = line;
        t->np = 1;
        return 0;
    }
    int fits = t->np < MAX_PENDING;
    double tol_sq = t->tol * t->tol;
    for (int i = 0; fits && i < t->np; i++)
        if (dist_sq_to_segment(t->pend[i], t->anchor, p) > tol_sq) fits = 0;
    if (!fits && flush(t) < 0) return -1;
    memcpy(t->pend[t->np], p, 3 * sizeof(double));
    t->pend_line[t->np] = line;
    t->np++;
    return 0;
}

static int point(Toolpath *t, const double internal[3], uint32_t line, int kind) {
    double p[3] = {internal[0] * t->xscale, internal[1], internal[2]};
    t->points_in++;
    if (t->truncated) return 0;
    memcpy(t->cur, p, sizeof p);
    return emit(t, p, line, kind);
}

static int arc(Toolpath *t, int kind, const double s[3], const double e[3], const double *c, int a, int b, int n,
               double sweep, double radius, uint32_t line);

static int motion(Toolpath *t, int kind, const double s[3], const double e[3], const double *c, int a, int b,
                  int n, double sweep, double radius, uint32_t line) {
    double sd[3] = {s[0] * t->xscale, s[1], s[2]};
    if (!t->have_any) {
        t->have_any = 1;
        if (point(t, s, line, TP_JUMP) < 0) return -1;
    } else {
        double dx = sd[0] - t->cur[0], dy = sd[1] - t->cur[1], dz = sd[2] - t->cur[2];
        if (dx * dx + dy * dy + dz * dz > 1e-12 && point(t, s, line, TP_JUMP) < 0) return -1;
    }
    if (c == NULL) return point(t, e, line, kind);
    return arc(t, kind, s, e, c, a, b, n, sweep, radius, line);
}

static int cmp_double(const void *x, const void *y) {
    double u = *(const double *)x, v = *(const double *)y;
    return (u > v) - (u < v);
}

/* geometry.arc_points: equal chords within the tolerance plus the points where the arc crosses an axis
   direction (its true extremes), in order of travel; the end point exact. */
static int arc(Toolpath *t, int kind, const double s[3], const double e[3], const double *c, int a, int b, int n,
               double sweep, double radius, uint32_t line) {
    double r = radius > 1e-9 ? radius : 1e-9;
    double tol = t->tol / (t->xscale > 1.0 ? t->xscale : 1.0);
    double theta = tol < r ? 2.0 * acos(1.0 - tol / r) : M_PI / 2.0;
    double want = ceil(fabs(sweep) / theta);
    long steps = want > MAX_ARC_STEPS ? MAX_ARC_STEPS : (want < 2 ? 2 : (long)want);
    double start_angle = atan2(s[b] - c[b], s[a] - c[a]);
    double extra[4];
    int nextra = 0, full = fabs(sweep) >= 2.0 * M_PI - 1e-12;
    for (int k = 0; k < 4; k++) {
        double delta = fmod(sweep > 0 ? k * (M_PI / 2.0) - start_angle : start_angle - k * (M_PI / 2.0), 2.0 * M_PI);
        if (delta < 0) delta += 2.0 * M_PI;
        if (!(full || delta <= fabs(sweep))) continue;
        double f = sweep != 0.0 ? (delta / fabs(sweep) < 1.0 ? delta / fabs(sweep) : 1.0) : 0.0;
        if (f > 0.0 && f < 1.0) extra[nextra++] = f;
    }
    qsort(extra, (size_t)nextra, sizeof(double), cmp_double);
    double ra = s[a] - c[a], rb = s[b] - c[b], linear = e[n] - s[n];
    long i = 1;
    int x = 0;
    double last = 0.0;
    while (i < steps || x < nextra) {
        double f;
        double fi = i < steps ? (double)i / (double)steps : 2.0;
        if (x < nextra && extra[x] <= fi) f = extra[x++];
        else { f = fi; i++; }
        if (f == last) continue;  /* a set: a cardinal point that falls on a chord end is one point */
        last = f;
        double co = cos(sweep * f), si = sin(sweep * f), p[3] = {0.0, 0.0, 0.0};
        p[a] = c[a] + ra * co - rb * si;
        p[b] = c[b] + ra * si + rb * co;
        p[n] = s[n] + linear * f;
        if (point(t, p, line, kind) < 0) return -1;
    }
    return point(t, e, line, kind);
}

int tp_motion(PyObject *sink, int kind, const double s[3], const double e[3], const double *center, int a, int b,
              int n, double sweep, double radius, long line) {
    return motion((Toolpath *)sink, kind == 0 ? TP_RAPID : TP_CUT, s, e, center, a, b, n, sweep, radius,
                  (uint32_t)line);
}

/* ------------------------------------------------------------------ Python type */

static int Toolpath_init(Toolpath *self, PyObject *args, PyObject *kw) {
    double tol, xscale = 1.0;
    Py_ssize_t max_vertices;
    static char *names[] = {"tolerance", "max_vertices", "x_scale", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "dn|d", names, &tol, &max_vertices, &xscale)) return -1;
    if (!(tol > 0.0) || !isfinite(tol) || max_vertices < 16 || !(xscale > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "tolerance and x_scale must be > 0, max_vertices >= 16");
        return -1;
    }
    self->tol = tol;
    self->xscale = xscale;
    self->max_vertices = max_vertices;
    return 0;
}

static void Toolpath_dealloc(Toolpath *self) {
    PyMem_Free(self->pos);
    PyMem_Free(self->line);
    PyMem_Free(self->kind);
    PyMem_Free(self->seen);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Toolpath_add(Toolpath *self, PyObject *args) {
    int cut, flagged, a, b, n;
    double s[3], e[3], c[3], sweep, radius;
    PyObject *center;
    long line;
    if (!PyArg_ParseTuple(args, "pp(ddd)(ddd)O(iii)ddl", &cut, &flagged, &s[0], &s[1], &s[2], &e[0], &e[1], &e[2],
                          &center, &a, &b, &n, &sweep, &radius, &line))
        return NULL;
    if (center != Py_None && !PyArg_ParseTuple(center, "ddd", &c[0], &c[1], &c[2])) return NULL;
    if (a < 0 || a > 2 || b < 0 || b > 2 || n < 0 || n > 2) {
        PyErr_SetString(PyExc_ValueError, "plane axes must be 0, 1 or 2");
        return NULL;
    }
    int kind = flagged ? TP_FLAGGED : (cut ? TP_CUT : TP_RAPID);
    if (motion(self, kind, s, e, center == Py_None ? NULL : c, a, b, n, sweep, radius, (uint32_t)line) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *Toolpath_finish(Toolpath *self, PyObject *unused) {
    if (flush(self) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Toolpath_buffers(Toolpath *self, PyObject *unused) {
    Py_ssize_t n = self->n;
    if (n == 0) return Py_BuildValue("y#y#y#", "", (Py_ssize_t)0, "", (Py_ssize_t)0, "", (Py_ssize_t)0);
    return Py_BuildValue("y#y#y#", (const char *)self->pos, n * 3 * (Py_ssize_t)sizeof(float),
                         (const char *)self->line, n * (Py_ssize_t)sizeof(uint32_t), (const char *)self->kind, n);
}

static PyObject *Toolpath_stats(Toolpath *self, PyObject *unused) {
    return Py_BuildValue("{s:n,s:d,s:L,s:i,s:i,s:i}", "vertices", self->n, "tolerance", self->tol, "points_in",
                         self->points_in, "coarsened", self->coarsened, "truncated", self->truncated,
                         "overdraw_removed", self->dedupe);
}

static PyMethodDef Toolpath_methods[] = {
    {"add", (PyCFunction)Toolpath_add, METH_VARARGS,
     "add(cut, flagged, start, end, center|None, (a, b, n), sweep, radius, line): one motion."},
    {"finish", (PyCFunction)Toolpath_finish, METH_NOARGS, "Keep the last pending point."},
    {"buffers", (PyCFunction)Toolpath_buffers, METH_NOARGS, "(float32 xyz, uint32 lines, uint8 kinds) as bytes."},
    {"stats", (PyCFunction)Toolpath_stats, METH_NOARGS, "vertices, tolerance, points_in, coarsened, truncated."},
    {NULL}};

PyTypeObject ToolpathType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "labbridge.safety._fastcheck.Toolpath",
    .tp_basicsize = sizeof(Toolpath),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Toolpath_init,
    .tp_dealloc = (destructor)Toolpath_dealloc,
    .tp_methods = Toolpath_methods,
    .tp_doc = "A program's toolpath decimated to the display resolution, in bounded memory.",
};
