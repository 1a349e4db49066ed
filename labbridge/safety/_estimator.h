/*
 * _estimator.h: the run-time estimate in C (the Estimator type of labbridge.safety._fastcheck). Included once,
 * by _fastcheck.c, after _arc_kernel.h.
 */
#ifndef LABBRIDGE_ESTIMATOR_H
#define LABBRIDGE_ESTIMATOR_H

/* ------------------------------------------------------------------ estimator */

/* The run-time estimate of labbridge/safety/estimate.py and the GRBL planner of labbridge/safety/planner.py
   (a port of GRBL 1.1h's planner.c), line for line: same blocks, same junctions, same 15-block horizon.
   Where it saves work (arc chords in batches, junctions that cannot limit, cruising blocks) it computes what the
   long way would to the bit; tests/test_estimate_differential.py holds it to the Python planner. */

#define PLANNED_BLOCKS 15
#define RING_SLOTS 16 /* a power of two above PLANNED_BLOCKS: a slot's index is a mask away */
#define SOME_LARGE_VALUE 1.0e38
#define MINIMUM_FEED_RATE 1.0
#define DWELL_STEPS_PER_SECOND 20.0
#define MAX_ESTIMATE_CHORDS 4096

/* What the planning and the timing need of a block (plan_block_t without the stepper's fields). */
typedef struct {
    double mm, accel, nominal, max_entry_sqr, entry_sqr;
    long line;
} pblock;

typedef struct {
    PyObject_HEAD
    double steps[3], rate[3], accel[3], jd, arc_tol;
    double inv_steps[3], inv_rate[3], inv_accel[3];
    double clear_nominal, clear_cos; /* junction_clear_cos for the last nominal speed asked */
    int grbl;
    pblock ring[RING_SLOTS];
    int head, n, planned;
    long pos[3];
    double prev_unit[3], prev_nominal;
    double minutes, extra, speed_sqr;
    int started;
    double last_mark, mark_interval;
    double *marks;
    Py_ssize_t nmarks, capmarks;
} Estimator;

/* The i-th queued block (0: the executing one). */
static inline pblock *BLK(Estimator *e, int i) { return &e->ring[(e->head + i) & (RING_SLOTS - 1)]; }

static double est_seconds(Estimator *e) { return e->minutes * 60.0 + e->extra; }

/* planner.limit_by_axis_maximum, with the limits' inverses: min(lim/|u|) is 1/max(|u|/lim), one division. */
static double limit3(const double inv_lim[3], const double u[3]) {
    double worst = 1.0 / SOME_LARGE_VALUE;
    for (int i = 0; i < 3; i++) {
        double v = fabs(u[i]) * inv_lim[i];
        if (v > worst) worst = v;
    }
    return 1.0 / worst;
}

static int est_mark(Estimator *e, long line) {
    if (e->nmarks >= 2 * MAX_MARKS) {
        Py_ssize_t kept = 0;
        for (Py_ssize_t i = 0; i < e->nmarks; i += 4) {
            e->marks[kept++] = e->marks[i];
            e->marks[kept++] = e->marks[i + 1];
        }
        e->nmarks = kept;
        e->mark_interval *= 2.0;
    }
    if (e->nmarks + 2 > e->capmarks) {
        Py_ssize_t cap = e->capmarks ? e->capmarks * 2 : 256;
        double *m = PyMem_Realloc(e->marks, cap * sizeof(double));
        if (!m) { PyErr_NoMemory(); return -1; }
        e->marks = m;
        e->capmarks = cap;
    }
    double now = est_seconds(e);
    e->marks[e->nmarks++] = (double)line;
    e->marks[e->nmarks++] = now;
    e->last_mark = now;
    return 0;
}

/* C's lround (halves away from zero) without a library call: below 2^52 the fractional part is exact. */
static inline long round_half_away(double x) {
    if (!(fabs(x) < 4503599627370496.0)) return lround(x);
    long t = (long)x;
    double f = x - (double)t;
    return t + (long)(f >= 0.5) - (long)(f <= -0.5); /* no branch: which way a chord end rounds is a coin toss */
}

/* planner.profile_time: minutes to run a block along the stepper's ramps. */
static double profile_time(double length, double entry_sqr, double exit_sqr, double nominal, double accel) {
    if (length <= 0.0) return 0.0;
    double nominal_sqr = nominal * nominal;
    /* Cruising through (most chords of an arc): the trapezoid below with no ramps, 0 + length / nominal + 0, to
       the bit (sqrt of a correctly rounded square is the number itself in binary floating point). */
    if (entry_sqr == nominal_sqr && exit_sqr == nominal_sqr) return length / nominal;
    double inv_2a = 0.5 / accel;
    double entry = sqrt(entry_sqr), exit_ = sqrt(exit_sqr);
    if (entry_sqr > nominal_sqr) {
        double down = inv_2a * (entry_sqr - nominal_sqr);
        if (down >= length) return 2.0 * length / (entry + exit_);
        return (entry - nominal) / accel + profile_time(length - down, nominal_sqr, exit_sqr, nominal, accel);
    }
    double intersect = 0.5 * (length + inv_2a * (entry_sqr - exit_sqr));
    if (intersect <= 0.0 || intersect >= length) return entry + exit_ > 0.0 ? 2.0 * length / (entry + exit_) : 0.0;
    double decelerate_after = inv_2a * (nominal_sqr - exit_sqr);
    if (decelerate_after < intersect) {
        double accelerate = inv_2a * (nominal_sqr - entry_sqr);
        return (nominal - entry) / accel + (length - accelerate - decelerate_after) / nominal + (nominal - exit_) / accel;
    }
    double peak = sqrt(2.0 * accel * intersect + exit_sqr);
    return (peak - entry) / accel + (peak - exit_) / accel;
}

/* planner.Planner.nominal_speed for a block along `unit`: a rapid at the axes' rapid rate, a feed at its rate
   but no faster. limit3's division is left out when the feed is clearly (twice over) below the rapid rate, as the
   comparison cannot then come out otherwise. */
static double nominal_speed(const Estimator *e, const double unit[3], double programmed, int rapid) {
    double speed;
    if (rapid) speed = limit3(e->inv_rate, unit) * 0.01 * 100;
    else {
        speed = programmed * (0.01 * 100);
        double worst = 1.0 / SOME_LARGE_VALUE; /* as limit3 */
        for (int i = 0; i < 3; i++) {
            double v = fabs(unit[i]) * e->inv_rate[i];
            if (v > worst) worst = v;
        }
        if (speed * worst > 0.5) {
            double rapid_rate = 1.0 / worst;
            if (speed > rapid_rate) speed = rapid_rate;
        }
    }
    return speed > MINIMUM_FEED_RATE ? speed : MINIMUM_FEED_RATE;
}

static void recalculate(Estimator *e) {
    int last = e->n - 1;
    if (last <= e->planned) return;
    pblock *current = BLK(e, last), *next;
    double reach = 2 * current->accel * current->mm;
    current->entry_sqr = current->max_entry_sqr < reach ? current->max_entry_sqr : reach;
    for (int i = last - 1; i > e->planned; i--) {
        next = current;
        current = BLK(e, i);
        if (current->entry_sqr != current->max_entry_sqr) {
            double v = next->entry_sqr + 2 * current->accel * current->mm;
            current->entry_sqr = current->max_entry_sqr < v ? current->max_entry_sqr : v;
        }
    }
    next = BLK(e, e->planned);
    for (int i = e->planned + 1; i <= last; i++) {
        current = next;
        next = BLK(e, i);
        if (current->entry_sqr < next->entry_sqr) {
            double v = current->entry_sqr + 2 * current->accel * current->mm;
            if (v < next->entry_sqr) {
                next->entry_sqr = v;
                e->planned = i;
            }
        }
        if (next->entry_sqr == next->max_entry_sqr) e->planned = i;
    }
}

static double junction_speed_sqr(const Estimator *e, const double prev[3], const double unit[3], double cos_theta) {
    if (cos_theta > 0.999999) return 0.0;
    if (cos_theta < -0.999999) return SOME_LARGE_VALUE;
    double j[3] = {unit[0] - prev[0], unit[1] - prev[1], unit[2] - prev[2]};
    double inv_norm = 1.0 / sqrt(j[0] * j[0] + j[1] * j[1] + j[2] * j[2]);
    j[0] *= inv_norm; j[1] *= inv_norm; j[2] *= inv_norm;
    double accel = limit3(e->inv_accel, j);
    double sin_half = sqrt(0.5 * (1.0 - cos_theta));
    double v = accel * e->jd * sin_half / (1.0 - sin_half);
    return v > 0.0 ? v : 0.0;
}

/* The turns gentle enough that the junction allows at least `nominal`: cos_theta at or below the returned value.
   Then a block's entry limit is min(nominal, previous nominal) squared whatever the junction's exact value, so
   it need not be computed (most chords of an arc). In exact arithmetic the junction there allows twice nominal
   squared: rounding never decides. Cached for the last nominal speed, as a program's feed rarely changes. */
static double junction_clear_cos(Estimator *e, double nominal) {
    if (nominal == e->clear_nominal) return e->clear_cos;
    double min_accel = e->accel[0] < e->accel[1] ? e->accel[0] : e->accel[1];
    if (e->accel[2] < min_accel) min_accel = e->accel[2];
    /* junction_speed_sqr is at least min_accel * jd * s / (1 - s), s = sqrt((1 - cos_theta) / 2) */
    double k = 2.0 * nominal * nominal / (min_accel * e->jd);
    double s = k / (1.0 + k);
    double t = 1.0 - 2.0 * s * s;
    e->clear_nominal = nominal;
    e->clear_cos = e->jd > 0.0 && isfinite(t) ? t : -INFINITY;
    return e->clear_cos;
}

/* What a block needs from the one before it (plan_buffer_line's pl.position, pl.previous_unit_vec,
   pl.previous_nominal_speed, and whether the ring is empty). */
typedef struct {
    const long *pos;
    const double *unit;
    double nominal;
    int empty;
} block_before;

/* A target in mm as the planner's step position (plan_buffer_line's target_steps). */
static inline void to_steps(const Estimator *e, const double target[3], long ts[3]) {
    for (int i = 0; i < 3; i++) ts[i] = round_half_away(target[i] * e->steps[i]);
}

/* The first half of planner.Planner.buffer_line: the block for a move to step position `ts` after `before`, not
   yet queued (its planning needs the ring). Returns 0 for a move shorter than one step, which the firmware
   drops. */
static int block_geometry(Estimator *e, const long ts[3], double rate, int rapid, long line,
                          const block_before *before, pblock *b, double unit[3]) {
    long delta[3], count = 0;
    for (int i = 0; i < 3; i++) {
        delta[i] = ts[i] - before->pos[i];
        long m = labs(delta[i]);
        if (m > count) count = m;
    }
    if (count == 0) return 0;
    for (int i = 0; i < 3; i++) unit[i] = delta[i] * e->inv_steps[i];
    double mm = sqrt(unit[0] * unit[0] + unit[1] * unit[1] + unit[2] * unit[2]);
    double inv_mm = 1.0 / mm;
    unit[0] *= inv_mm; unit[1] *= inv_mm; unit[2] *= inv_mm;
    b->mm = mm;
    b->accel = limit3(e->inv_accel, unit);
    b->line = line;
    b->entry_sqr = 0.0;
    double nominal = b->nominal = nominal_speed(e, unit, rate, rapid);
    double lower = nominal > before->nominal ? before->nominal : nominal;
    double junction_sqr = 0.0; /* from rest when the ring is empty */
    if (!before->empty) {
        const double *prev = before->unit;
        double cos_theta = -(prev[0] * unit[0] + prev[1] * unit[1] + prev[2] * unit[2]);
        junction_sqr = cos_theta <= junction_clear_cos(e, nominal) ? SOME_LARGE_VALUE
                                                                   : junction_speed_sqr(e, prev, unit, cos_theta);
    }
    b->max_entry_sqr = lower * lower < junction_sqr ? lower * lower : junction_sqr;
    return 1;
}

/* The second half of buffer_line: queue the block and replan. */
static void queue_block(Estimator *e, const pblock *b, const long ts[3], const double unit[3]) {
    *BLK(e, e->n) = *b;
    e->prev_nominal = b->nominal;
    memcpy(e->prev_unit, unit, sizeof e->prev_unit);
    memcpy(e->pos, ts, sizeof e->pos);
    e->n++;
    recalculate(e);
}

/* planner.Planner.buffer_line */
static void buffer_line(Estimator *e, const double target[3], double rate, int rapid, long line) {
    block_before before = {e->pos, e->prev_unit, e->prev_nominal, e->n == 0};
    pblock b;
    long ts[3];
    double unit[3];
    to_steps(e, target, ts);
    if (block_geometry(e, ts, rate, rapid, line, &before, &b, unit)) queue_block(e, &b, ts, unit);
}

/* planner.BlockTimer.run_one plus the estimator's marks */
static int run_one(Estimator *e) {
    pblock *b = BLK(e, 0);
    if (b->entry_sqr != e->speed_sqr) { /* only if the plan and the machine disagree: replan */
        b->entry_sqr = e->speed_sqr;
        e->planned = 0;
        recalculate(e);
    }
    double exit_sqr = e->n > 1 ? BLK(e, 1)->entry_sqr : 0.0;
    e->minutes += profile_time(b->mm, b->entry_sqr, exit_sqr, b->nominal, b->accel);
    e->speed_sqr = exit_sqr;
    long line = b->line;
    e->head = (e->head + 1) & (RING_SLOTS - 1);
    e->n--;
    e->planned = e->planned > 0 ? e->planned - 1 : 0;
    if (est_seconds(e) - e->last_mark >= e->mark_interval) return est_mark(e, line);
    return 0;
}

static int est_flush(Estimator *e) {
    if (e->n) {
        long last = BLK(e, e->n - 1)->line;
        while (e->n)
            if (run_one(e) < 0) return -1;
        if (est_mark(e, last) < 0) return -1;
    }
    e->speed_sqr = 0.0;
    return 0;
}

static int est_block(Estimator *e, const double target[3], double rate, int rapid, long line) {
    if (e->n >= PLANNED_BLOCKS && run_one(e) < 0) return -1;
    buffer_line(e, target, rate, rapid, line);
    return 0;
}

/* An arc's chords, each block as est_block would buffer it, in batches: first the geometry of every chord of
   the batch (independent of the planning, so the processor overlaps them), then each chord through the ring in
   order. The same operations on the same values as chord by chord, so the same result to the bit. */
#define CHORD_BATCH 32

typedef struct {
    pblock b;
    long ts[3];
    double unit[3];
    int kept;
} chord_block;

static int est_arc(Estimator *e, const double s[3], const double en[3], const double c[3], int a, int b, int nn,
                   double sweep, long segments, long count, double feed, long line) {
    arc_chords ac;
    chord_block batch[CHORD_BATCH];
    arc_chords_init(&ac, s, en, c, a, b, nn, sweep, segments);
    for (long first = 1; first <= count; first += CHORD_BATCH) {
        int m = count - first + 1 < CHORD_BATCH ? (int)(count - first + 1) : CHORD_BATCH;
        /* A block in est_block is buffered after the ring made room, so it never finds the ring empty unless
           it was empty before (the ring empties only at a flush). */
        block_before before = {e->pos, e->prev_unit, e->prev_nominal, e->n == 0};
        for (int k = 0; k < m; k++) {
            double p[3];
            arc_chords_point(&ac, first + k, p);
            to_steps(e, p, batch[k].ts);
        }
        for (int k = 0; k < m; k++) {
            chord_block *q = &batch[k];
            q->kept = block_geometry(e, q->ts, feed, 0, line, &before, &q->b, q->unit);
            if (q->kept) {
                before.pos = q->ts;
                before.unit = q->unit;
                before.nominal = q->b.nominal;
                before.empty = 0;
            }
        }
        for (int k = 0; k < m; k++) {
            if (e->n >= PLANNED_BLOCKS && run_one(e) < 0) return -1;
            if (batch[k].kept) queue_block(e, &batch[k].b, batch[k].ts, batch[k].unit);
        }
    }
    return 0;
}

/* kind: 0 traverse, 1 feed, 2 arc, 3 probe, 4 dwell (estimate.Estimator.add) */
static int est_add(Estimator *e, int kind, const double s[3], const double en[3], double feed, const double c[3],
                   int a, int b, int nn, double sweep, double radius, double seconds, long line) {
    if (kind == 4) {
        if (est_flush(e) < 0) return -1;
        e->extra += e->grbl ? ceil(seconds * DWELL_STEPS_PER_SECOND - 1e-9) / DWELL_STEPS_PER_SECOND : seconds;
        return est_mark(e, line);
    }
    int off_plan = 0;
    for (int i = 0; i < 3; i++)
        if (fabs(s[i] * e->steps[i] - e->pos[i]) > 0.5 + 1e-6) off_plan = 1;
    if (!e->started || off_plan) {
        if (est_flush(e) < 0) return -1;
        for (int i = 0; i < 3; i++) e->pos[i] = lround(s[i] * e->steps[i]);
        e->started = 1;
    }
    if (kind == 3 && est_flush(e) < 0) return -1;
    if (kind == 2) {
        long segments = grbl_arc_segments(sweep, radius, e->arc_tol);
        if (segments > MAX_ESTIMATE_CHORDS) segments = MAX_ESTIMATE_CHORDS; /* as estimate.MAX_ESTIMATE_CHORDS */
        long count = segments > 1 ? segments : 1;
        if (est_arc(e, s, en, c, a, b, nn, sweep, segments, count, feed, line) < 0) return -1;
    } else if (est_block(e, en, feed, kind == 0, line) < 0) {
        return -1;
    }
    if (kind == 3 && est_flush(e) < 0) return -1;
    return 0;
}

static int Estimator_init(Estimator *self, PyObject *args, PyObject *kw) {
    if (!PyArg_ParseTuple(args, "(ddd)(ddd)(ddd)ddp", &self->steps[0], &self->steps[1], &self->steps[2],
                          &self->rate[0], &self->rate[1], &self->rate[2], &self->accel[0], &self->accel[1],
                          &self->accel[2], &self->jd, &self->arc_tol, &self->grbl))
        return -1;
    for (int i = 0; i < 3; i++) {
        if (!(self->steps[i] > 0 && self->rate[i] > 0 && self->accel[i] > 0)) {
            PyErr_SetString(PyExc_ValueError, "steps, rates and accelerations must be above zero");
            return -1;
        }
        self->inv_steps[i] = 1.0 / self->steps[i];
        self->inv_rate[i] = 1.0 / self->rate[i];
        self->inv_accel[i] = 1.0 / self->accel[i];
    }
    self->head = self->n = self->planned = 0;
    self->pos[0] = self->pos[1] = self->pos[2] = 0;
    self->prev_unit[0] = self->prev_unit[1] = self->prev_unit[2] = 0.0;
    self->prev_nominal = 0.0;
    self->clear_nominal = NAN;
    self->minutes = self->extra = self->speed_sqr = 0.0;
    self->started = 0;
    self->last_mark = -1.0;
    self->mark_interval = 1.0;
    self->nmarks = 0;
    return 0;
}

static void Estimator_dealloc(Estimator *self) {
    PyMem_Free(self->marks);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Estimator_add(Estimator *self, PyObject *args) {
    int kind, a, b, n;
    double s[3], en[3], c[3], feed, sweep, radius, seconds;
    long line;
    if (!PyArg_ParseTuple(args, "i(ddd)(ddd)d(ddd)(iii)dddl", &kind, &s[0], &s[1], &s[2], &en[0], &en[1], &en[2],
                          &feed, &c[0], &c[1], &c[2], &a, &b, &n, &sweep, &radius, &seconds, &line))
        return NULL;
    if (a < 0 || a > 2 || b < 0 || b > 2 || n < 0 || n > 2) {
        PyErr_SetString(PyExc_ValueError, "plane axes must be 0..2");
        return NULL;
    }
    if (est_add(self, kind, s, en, feed, c, a, b, n, sweep, radius, seconds, line) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Estimator_flush(Estimator *self, PyObject *unused) {
    if (est_flush(self) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *Estimator_finish(Estimator *self, PyObject *unused) {
    if (est_flush(self) < 0) return NULL;
    return PyFloat_FromDouble(est_seconds(self));
}

static PyObject *Estimator_pairs(Estimator *self, PyObject *unused) {
    PyObject *out = PyList_New(self->nmarks / 2);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < self->nmarks / 2; i++) {
        PyObject *t = Py_BuildValue("(ld)", (long)self->marks[2 * i], self->marks[2 * i + 1]);
        if (!t) { Py_DECREF(out); return NULL; }
        PyList_SET_ITEM(out, i, t);
    }
    return out;
}

static PyObject *Estimator_get_seconds(Estimator *self, void *closure) { return PyFloat_FromDouble(est_seconds(self)); }

static PyMethodDef Estimator_methods[] = {
    {"add_raw", (PyCFunction)Estimator_add, METH_VARARGS, "Add one motion (kind, start, end, feed, centre, plane, "
     "sweep, radius, seconds, line)."},
    {"flush", (PyCFunction)Estimator_flush, METH_NOARGS, "Plan everything pending to a stop."},
    {"finish", (PyCFunction)Estimator_finish, METH_NOARGS, "Flush and return the total seconds."},
    {"pairs", (PyCFunction)Estimator_pairs, METH_NOARGS, "ETA marks as (line, cumulative seconds)."},
    {NULL}};

static PyGetSetDef Estimator_getset[] = {{"seconds", (getter)Estimator_get_seconds, NULL, "seconds so far", NULL},
                                         {NULL}};

static PyTypeObject EstimatorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "labbridge.safety._fastcheck.Estimator",
    .tp_basicsize = sizeof(Estimator),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Estimator_init,
    .tp_dealloc = (destructor)Estimator_dealloc,
    .tp_methods = Estimator_methods,
    .tp_getset = Estimator_getset,
    .tp_doc = "Run-time estimate through GRBL's planner (see labbridge/safety/estimate.py and planner.py)",
};

#endif
