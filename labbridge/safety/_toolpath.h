/* The toolpath builder's C side (see _toolpath.c), shared with the safety gate's fast path. */
#ifndef LABBRIDGE_TOOLPATH_H
#define LABBRIDGE_TOOLPATH_H
#define PY_SSIZE_T_CLEAN
#include <Python.h>

extern PyTypeObject ToolpathType;

/* Kinds of the segment that ends at a vertex. */
enum { TP_JUMP = 0, TP_RAPID = 1, TP_CUT = 2, TP_FLAGGED = 3 };

/* One motion in the interpreter's coordinates (a lathe's X is a radius there). ``center`` is NULL for
   straight moves; arcs give their plane axes (a, b, n), signed sweep and radius. Returns -1 on error. */
int tp_motion(PyObject *sink, int kind, const double s[3], const double e[3], const double *center, int a, int b,
              int n, double sweep, double radius, long line);

#endif
