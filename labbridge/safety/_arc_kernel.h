/*
 * _arc_kernel.h: the one arc kernel of labbridge/safety/geometry.py in C, function for function (same names,
 * same formulas), for the fast path (_fastcheck.c) and the estimator (_estimator.h). Included once, by
 * _fastcheck.c; the differential tests (tests/test_safety_fastpath.py, test_safety_fuzz.py) hold the two
 * languages together.
 */
#ifndef LABBRIDGE_ARC_KERNEL_H
#define LABBRIDGE_ARC_KERNEL_H

/* geometry.arc_center_offset: the centre of an R arc as an offset from its start; 0 when no circle exists
   (None in Python). */
static int arc_center_offset(double dx, double dy, double radius, int clockwise, double *i, double *j) {
    double h_x2_div_d = 4.0 * radius * radius - dx * dx - dy * dy;
    double chord = hypot(dx, dy);
    if (h_x2_div_d < 0.0 || chord == 0.0 || !isfinite(h_x2_div_d)) return 0;
    h_x2_div_d = -sqrt(h_x2_div_d) / chord;
    if (!clockwise) h_x2_div_d = -h_x2_div_d;
    if (radius < 0.0) h_x2_div_d = -h_x2_div_d;
    *i = 0.5 * (dx - dy * h_x2_div_d);
    *j = 0.5 * (dy + dx * h_x2_div_d);
    return isfinite(*i) && isfinite(*j);
}

static double arc_sweep(const double s[3], const double e[3], const double c[3], int a, int b, int clockwise) {
    double ra = s[a] - c[a], rb = s[b] - c[b];
    double ta = e[a] - c[a], tb = e[b] - c[b];
    double travel = atan2(ra * tb - rb * ta, ra * ta + rb * tb);
    if (clockwise) { if (travel >= -ARC_EPS) travel -= TWO_PI; }
    else if (travel <= ARC_EPS) travel += TWO_PI;
    return travel;
}

static void arc_bounds(const double s[3], const double e[3], const double c[3], int a, int b, double r,
                       double sweep, double lo[3], double hi[3]) {
    for (int i = 0; i < 3; i++) {
        lo[i] = s[i] < e[i] ? s[i] : e[i];
        hi[i] = s[i] > e[i] ? s[i] : e[i];
    }
    double start_angle = atan2(s[b] - c[b], s[a] - c[a]);
    int full = fabs(sweep) >= TWO_PI - 1e-12;
    for (int k = 0; k < 4; k++) {
        double cardinal = k * (M_PI / 2.0);
        double delta = sweep > 0 ? cardinal - start_angle : start_angle - cardinal;
        delta = fmod(delta, TWO_PI);
        if (delta < 0) delta += TWO_PI;
        if (!full && !(delta <= fabs(sweep))) continue;
        if (k == 0) { if (c[a] + r > hi[a]) hi[a] = c[a] + r; }
        else if (k == 1) { if (c[b] + r > hi[b]) hi[b] = c[b] + r; }
        else if (k == 2) { if (c[a] - r < lo[a]) lo[a] = c[a] - r; }
        else { if (c[b] - r < lo[b]) lo[b] = c[b] - r; }
    }
}

/* geometry.grbl_arc_segments: how many chords GRBL's mc_arc makes (0 or 1: one straight line). */
static long grbl_arc_segments(double sweep, double radius, double tolerance) {
    double denominator = (2.0 * radius > tolerance && tolerance > 0.0) ? sqrt(tolerance * (2.0 * radius - tolerance)) : 0.0;
    if (!(denominator > 0.0)) return 0;
    double segments = floor(fabs(0.5 * sweep * radius) / denominator);
    if (!(segments < 65535.0)) return segments >= 65535.0 ? 65535 : 0;
    return (long)segments;
}

/* geometry.arc_path, one point at a time: what every chord of one arc shares (computed once per arc, with the
   same expressions as arc_path), then the end of chord i (1-based) of `segments`; the last is the arc's end. */
typedef struct {
    double s[3], e[3], c[3], ra, rb, step, linear;
    int a, b, n;
    long segments;
} arc_chords;

static void arc_chords_init(arc_chords *ac, const double s[3], const double e[3], const double c[3], int a, int b,
                            int n, double sweep, long segments) {
    memcpy(ac->s, s, sizeof ac->s);
    memcpy(ac->e, e, sizeof ac->e);
    memcpy(ac->c, c, sizeof ac->c);
    ac->a = a; ac->b = b; ac->n = n;
    ac->segments = segments;
    ac->ra = s[a] - c[a];
    ac->rb = s[b] - c[b];
    ac->step = segments > 1 ? sweep / segments : 0.0;
    ac->linear = segments > 1 ? (e[n] - s[n]) / segments : 0.0;
}

static inline void arc_chords_point(const arc_chords *ac, long i, double out[3]) {
    if (ac->segments <= 1 || i >= ac->segments) { memcpy(out, ac->e, sizeof ac->e); return; }
    double co = cos(i * ac->step), si = sin(i * ac->step);
    out[ac->a] = ac->c[ac->a] + ac->ra * co - ac->rb * si;
    out[ac->b] = ac->c[ac->b] + ac->ra * si + ac->rb * co;
    out[ac->n] = ac->s[ac->n] + ac->linear * i;
}

#endif
