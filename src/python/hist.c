/*
 * hist.c - cspike._core.Histogram: a latency histogram kept in C.
 *
 * Log-linear buckets (HdrHistogram's layout with 7 significant bits): values
 * below 128 ns get a bucket each; above, every power of two is split into 64
 * equal buckets, so a bucket is at most 1/64 of its value wide (~1.6 %) and
 * the midpoint we report is within ~0.8 % of any value recorded in it.  The
 * range is 0 .. 2^36 ns (about 68.7 s); larger values land in the last bucket
 * (max still records them exactly).  1,984 counters, 16 KB.
 *
 * record() is wait-free: one relaxed atomic add on the bucket and one on the
 * sum, plus a compare-and-swap on min/max only when the value extends them.
 * Several threads may record into one histogram on free-threaded Python; the
 * benchmark gives each thread its own and merges them, so the counters do
 * not bounce between cores.  Readers (percentile, count, merge) see each
 * counter atomically but not all counters at one instant: good enough for a
 * progress line, and exact once the writers have stopped.
 */
#include <stdatomic.h>
#include <time.h>

#include "spkpy.h"

#define H_SUB_BITS 7
#define H_SUB (1u << H_SUB_BITS)       /* 128 exact buckets */
#define H_HALF (H_SUB >> 1)            /* 64 buckets per power of two above */
#define H_MAX_BITS 36                  /* values up to 2^36 - 1 ns */
#define H_MAX_VALUE ((1ull << H_MAX_BITS) - 1)
#define H_N (H_SUB + (H_MAX_BITS - H_SUB_BITS) * H_HALF) /* 1984 */

typedef struct {
  PyObject_HEAD
  _Atomic uint64_t min; /* UINT64_MAX while empty */
  _Atomic uint64_t max;
  _Atomic uint64_t sum; /* wraps after ~584 years of latency: fine */
  _Atomic uint64_t counts[H_N];
} spkpy_Hist;

/* ---- bucket layout ---------------------------------------------------------- */

static inline uint32_t bucket_of(uint64_t v) {
  if (v < H_SUB) return (uint32_t)v;
  if (v > H_MAX_VALUE) v = H_MAX_VALUE;
  int msb = 63 - __builtin_clzll(v);              /* >= H_SUB_BITS */
  int shift = msb - (H_SUB_BITS - 1);             /* >= 1 */
  uint32_t top = (uint32_t)(v >> shift);          /* [H_HALF, H_SUB) */
  return H_SUB + (uint32_t)(shift - 1) * H_HALF + (top - H_HALF);
}

/* [lo, hi] of values that map to bucket i. */
static inline void bucket_range(uint32_t i, uint64_t *lo, uint64_t *hi) {
  if (i < H_SUB) {
    *lo = *hi = i;
    return;
  }
  uint32_t shift = (i - H_SUB) / H_HALF + 1;
  uint64_t top = (i - H_SUB) % H_HALF + H_HALF;
  *lo = top << shift;
  *hi = *lo + (1ull << shift) - 1;
}

static inline void h_record(spkpy_Hist *h, uint64_t v, uint64_t n) {
  atomic_fetch_add_explicit(&h->counts[bucket_of(v)], n, memory_order_relaxed);
  atomic_fetch_add_explicit(&h->sum, v * n, memory_order_relaxed);
  uint64_t cur = atomic_load_explicit(&h->min, memory_order_relaxed);
  while (v < cur && !atomic_compare_exchange_weak_explicit(
                        &h->min, &cur, v, memory_order_relaxed, memory_order_relaxed)) {
  }
  cur = atomic_load_explicit(&h->max, memory_order_relaxed);
  while (v > cur && !atomic_compare_exchange_weak_explicit(
                        &h->max, &cur, v, memory_order_relaxed, memory_order_relaxed)) {
  }
}

static void h_reset(spkpy_Hist *h) {
  for (uint32_t i = 0; i < H_N; i++)
    atomic_store_explicit(&h->counts[i], 0, memory_order_relaxed);
  atomic_store_explicit(&h->sum, 0, memory_order_relaxed);
  atomic_store_explicit(&h->min, UINT64_MAX, memory_order_relaxed);
  atomic_store_explicit(&h->max, 0, memory_order_relaxed);
}

static uint64_t h_count(spkpy_Hist *h) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < H_N; i++)
    n += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
  return n;
}

/* Value at percentile p (0..100): the midpoint of the bucket holding the
 * ceil(p% * count)-th smallest value, clamped into [min, max]. */
static uint64_t h_percentile(spkpy_Hist *h, double p) {
  uint64_t n = h_count(h);
  if (n == 0) return 0;
  uint64_t mn = atomic_load_explicit(&h->min, memory_order_relaxed);
  uint64_t mx = atomic_load_explicit(&h->max, memory_order_relaxed);
  if (p <= 0.0) return mn;
  if (p >= 100.0) return mx;
  double want = p / 100.0 * (double)n;
  uint64_t rank = (uint64_t)want;
  if ((double)rank < want) rank++;
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (uint32_t i = 0; i < H_N; i++) {
    seen += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    if (seen >= rank) {
      uint64_t lo, hi;
      bucket_range(i, &lo, &hi);
      uint64_t mid = lo + (hi - lo) / 2;
      if (mid < mn) mid = mn;
      if (mid > mx) mid = mx;
      return mid;
    }
  }
  return mx;
}

/* ---- Python type ------------------------------------------------------------ */

static PyObject *Hist_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  if ((args && PyTuple_GET_SIZE(args)) || (kw && PyDict_GET_SIZE(kw))) {
    PyErr_SetString(PyExc_TypeError, "Histogram() takes no arguments");
    return NULL;
  }
  spkpy_Hist *h = (spkpy_Hist *)type->tp_alloc(type, 0);
  if (h) h_reset(h);
  return (PyObject *)h;
}

static void Hist_dealloc(spkpy_Hist *self) {
  PyTypeObject *tp = Py_TYPE(self);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* A non-negative int (ns); values above 2^63 are clamped. */
static int as_ns(PyObject *o, uint64_t *out) {
  if (SPK_UNLIKELY(!PyLong_Check(o))) {
    PyErr_Format(PyExc_TypeError, "latency must be an int of nanoseconds, not %.100s",
                 Py_TYPE(o)->tp_name);
    return -1;
  }
  int overflow = 0;
  long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
  if (SPK_UNLIKELY(overflow > 0)) {
    *out = (uint64_t)INT64_MAX;
    return 0;
  }
  if (SPK_UNLIKELY(overflow < 0 || v < 0)) {
    if (!PyErr_Occurred())
      PyErr_SetString(PyExc_ValueError, "latency must not be negative");
    return -1;
  }
  *out = (uint64_t)v;
  return 0;
}

static PyObject *Hist_record(spkpy_Hist *self, PyObject *arg) {
  uint64_t v;
  if (as_ns(arg, &v)) return NULL;
  h_record(self, v, 1);
  Py_RETURN_NONE;
}

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* record_since(t0) -> now: records now - t0 and returns now (ns, the clock
 * of time.perf_counter_ns / time.monotonic_ns on Linux), so a timing loop
 * pays one clock call per operation instead of two. */
static PyObject *Hist_record_since(spkpy_Hist *self, PyObject *arg) {
  uint64_t t0;
  if (as_ns(arg, &t0)) return NULL;
  uint64_t t = now_ns();
  h_record(self, t > t0 ? t - t0 : 0, 1);
  return PyLong_FromUnsignedLongLong(t);
}

static PyObject *Hist_record_n(spkpy_Hist *self, PyObject *const *args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "record_n(ns, count) takes 2 arguments");
    return NULL;
  }
  uint64_t v, n;
  if (as_ns(args[0], &v) || as_ns(args[1], &n)) return NULL;
  if (n) h_record(self, v, n);
  Py_RETURN_NONE;
}

/* record_many(values): an iterable of ints, or a buffer of int64 ('q'). */
static PyObject *Hist_record_many(spkpy_Hist *self, PyObject *arg) {
  if (PyObject_CheckBuffer(arg)) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) != 0) return NULL;
    int ok = b.itemsize == 8 && b.format &&
             (strcmp(b.format, "q") == 0 || strcmp(b.format, "l") == 0 ||
              strcmp(b.format, "Q") == 0 || strcmp(b.format, "L") == 0);
    if (!ok) {
      PyBuffer_Release(&b);
      PyErr_SetString(PyExc_TypeError, "record_many() needs a buffer of 64-bit ints");
      return NULL;
    }
    bool is_signed = b.format[0] == 'q' || b.format[0] == 'l';
    Py_ssize_t n = b.len / 8;
    const int64_t *p = b.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
      if (is_signed && p[i] < 0) {
        PyBuffer_Release(&b);
        PyErr_SetString(PyExc_ValueError, "latency must not be negative");
        return NULL;
      }
      h_record(self, (uint64_t)p[i], 1);
    }
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
  }
  PyObject *it = PyObject_GetIter(arg);
  if (!it) return NULL;
  PyObject *o;
  while ((o = PyIter_Next(it)) != NULL) {
    uint64_t v;
    int rc = as_ns(o, &v);
    Py_DECREF(o);
    if (rc) {
      Py_DECREF(it);
      return NULL;
    }
    h_record(self, v, 1);
  }
  Py_DECREF(it);
  if (PyErr_Occurred()) return NULL;
  Py_RETURN_NONE;
}

static PyObject *Hist_merge(PyObject *self, PyTypeObject *defining, PyObject *const *args,
                            Py_ssize_t nargs, PyObject *kwnames) {
  if (nargs != 1 || kwnames) {
    PyErr_SetString(PyExc_TypeError, "merge(other) takes one Histogram");
    return NULL;
  }
  if (!PyObject_TypeCheck(args[0], defining)) {
    PyErr_Format(PyExc_TypeError, "merge() needs a Histogram, not %.100s",
                 Py_TYPE(args[0])->tp_name);
    return NULL;
  }
  spkpy_Hist *h = (spkpy_Hist *)self, *o = (spkpy_Hist *)args[0];
  if (h == o) {
    PyErr_SetString(PyExc_ValueError, "cannot merge a histogram into itself");
    return NULL;
  }
  for (uint32_t i = 0; i < H_N; i++) {
    uint64_t c = atomic_load_explicit(&o->counts[i], memory_order_relaxed);
    if (c) atomic_fetch_add_explicit(&h->counts[i], c, memory_order_relaxed);
  }
  atomic_fetch_add_explicit(&h->sum, atomic_load_explicit(&o->sum, memory_order_relaxed),
                            memory_order_relaxed);
  uint64_t omin = atomic_load_explicit(&o->min, memory_order_relaxed);
  uint64_t omax = atomic_load_explicit(&o->max, memory_order_relaxed);
  uint64_t cur = atomic_load_explicit(&h->min, memory_order_relaxed);
  while (omin < cur && !atomic_compare_exchange_weak_explicit(
                           &h->min, &cur, omin, memory_order_relaxed, memory_order_relaxed)) {
  }
  cur = atomic_load_explicit(&h->max, memory_order_relaxed);
  while (omax > cur && !atomic_compare_exchange_weak_explicit(
                           &h->max, &cur, omax, memory_order_relaxed, memory_order_relaxed)) {
  }
  Py_RETURN_NONE;
}

static int as_pct(PyObject *o, double *p) {
  *p = PyFloat_AsDouble(o);
  if (*p == -1.0 && PyErr_Occurred()) return -1;
  if (!(*p >= 0.0 && *p <= 100.0)) {
    PyErr_SetString(PyExc_ValueError, "percentile must be between 0 and 100");
    return -1;
  }
  return 0;
}

static PyObject *Hist_percentile(spkpy_Hist *self, PyObject *arg) {
  double p;
  if (as_pct(arg, &p)) return NULL;
  return PyLong_FromUnsignedLongLong(h_percentile(self, p));
}

/* percentiles([50, 99, 99.9]) -> [ns, ...] in one pass per value. */
static PyObject *Hist_percentiles(spkpy_Hist *self, PyObject *arg) {
  PyObject *seq = PySequence_Fast(arg, "percentiles() needs a sequence of numbers");
  if (!seq) return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  PyObject *out = PyList_New(n);
  for (Py_ssize_t i = 0; out && i < n; i++) {
    double p;
    PyObject *v = NULL;
    if (as_pct(PySequence_Fast_GET_ITEM(seq, i), &p) == 0)
      v = PyLong_FromUnsignedLongLong(h_percentile(self, p));
    if (!v) Py_CLEAR(out);
    else PyList_SET_ITEM(out, i, v);
  }
  Py_DECREF(seq);
  return out;
}

static PyObject *Hist_reset(spkpy_Hist *self, PyObject *unused) {
  (void)unused;
  h_reset(self);
  Py_RETURN_NONE;
}

/* snapshot() -> (min, max, sum, ((bucket, count), ...)) of the non-empty
 * buckets: compact enough to ship as JSON between processes. */
static PyObject *Hist_snapshot(spkpy_Hist *self, PyObject *unused) {
  (void)unused;
  PyObject *rows = PyList_New(0);
  if (!rows) return NULL;
  for (uint32_t i = 0; i < H_N; i++) {
    uint64_t c = atomic_load_explicit(&self->counts[i], memory_order_relaxed);
    if (!c) continue;
    PyObject *row = Py_BuildValue("(IK)", i, (unsigned long long)c);
    if (!row || PyList_Append(rows, row) < 0) {
      Py_XDECREF(row);
      Py_DECREF(rows);
      return NULL;
    }
    Py_DECREF(row);
  }
  uint64_t mn = atomic_load_explicit(&self->min, memory_order_relaxed);
  PyObject *t = PyList_AsTuple(rows);
  Py_DECREF(rows);
  if (!t) return NULL;
  return Py_BuildValue("(KKKN)", (unsigned long long)(mn == UINT64_MAX ? 0 : mn),
                       (unsigned long long)atomic_load_explicit(&self->max, memory_order_relaxed),
                       (unsigned long long)atomic_load_explicit(&self->sum, memory_order_relaxed),
                       t);
}

/* Histogram.from_snapshot(snapshot()): the inverse (also accepts lists). */
static PyObject *Hist_from_snapshot(PyObject *cls, PyObject *arg) {
  PyObject *mn_o, *mx_o, *sum_o, *rows;
  if (!PyTuple_Check(arg) && !PyList_Check(arg)) {
    PyErr_SetString(PyExc_TypeError, "from_snapshot() needs (min, max, sum, buckets)");
    return NULL;
  }
  PyObject *t = PySequence_Tuple(arg);
  if (!t) return NULL;
  if (!PyArg_ParseTuple(t, "OOOO:from_snapshot", &mn_o, &mx_o, &sum_o, &rows)) {
    Py_DECREF(t);
    return NULL;
  }
  spkpy_Hist *h = (spkpy_Hist *)PyObject_CallNoArgs(cls);
  PyObject *seq = h ? PySequence_Fast(rows, "buckets must be a sequence") : NULL;
  uint64_t mn, mx, sum, total = 0;
  if (!seq || as_ns(mn_o, &mn) || as_ns(mx_o, &mx) || as_ns(sum_o, &sum)) goto fail;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
    PyObject *row = PySequence_Fast_GET_ITEM(seq, i);
    PyObject *pair = PySequence_Tuple(row);
    uint64_t idx, c;
    int bad = !pair || PyTuple_GET_SIZE(pair) != 2 ||
              as_ns(PyTuple_GET_ITEM(pair, 0), &idx) || as_ns(PyTuple_GET_ITEM(pair, 1), &c);
    Py_XDECREF(pair);
    if (bad || idx >= H_N) {
      if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "bad bucket in histogram snapshot");
      goto fail;
    }
    atomic_fetch_add_explicit(&h->counts[idx], c, memory_order_relaxed);
    total += c;
  }
  if (total) {
    atomic_store_explicit(&h->min, mn, memory_order_relaxed);
    atomic_store_explicit(&h->max, mx, memory_order_relaxed);
    atomic_store_explicit(&h->sum, sum, memory_order_relaxed);
  }
  Py_DECREF(seq);
  Py_DECREF(t);
  return (PyObject *)h;
fail:
  Py_XDECREF(seq);
  Py_XDECREF(h);
  Py_DECREF(t);
  return NULL;
}

/* bucket_range(ns) -> (lo, hi): the values that share ns's bucket. */
static PyObject *Hist_bucket_range(PyObject *cls, PyObject *arg) {
  (void)cls;
  uint64_t v, lo, hi;
  if (as_ns(arg, &v)) return NULL;
  bucket_range(bucket_of(v), &lo, &hi);
  return Py_BuildValue("(KK)", (unsigned long long)lo, (unsigned long long)hi);
}

static PyObject *Hist_reduce(PyObject *self, PyObject *unused) {
  (void)unused;
  PyObject *snap = Hist_snapshot((spkpy_Hist *)self, NULL);
  if (!snap) return NULL;
  PyObject *fn = PyObject_GetAttrString((PyObject *)Py_TYPE(self), "from_snapshot");
  if (!fn) {
    Py_DECREF(snap);
    return NULL;
  }
  return Py_BuildValue("(N(N))", fn, snap);
}

static PyObject *Hist_get_count(spkpy_Hist *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(h_count(self));
}
static PyObject *Hist_get_min(spkpy_Hist *self, void *c) {
  (void)c;
  uint64_t v = atomic_load_explicit(&self->min, memory_order_relaxed);
  return PyLong_FromUnsignedLongLong(v == UINT64_MAX ? 0 : v);
}
static PyObject *Hist_get_max(spkpy_Hist *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(atomic_load_explicit(&self->max, memory_order_relaxed));
}
static PyObject *Hist_get_sum(spkpy_Hist *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(atomic_load_explicit(&self->sum, memory_order_relaxed));
}
static PyObject *Hist_get_mean(spkpy_Hist *self, void *c) {
  (void)c;
  uint64_t n = h_count(self);
  if (!n) return PyFloat_FromDouble(0.0);
  return PyFloat_FromDouble(
      (double)atomic_load_explicit(&self->sum, memory_order_relaxed) / (double)n);
}

static PyObject *Hist_repr(spkpy_Hist *self) {
  uint64_t n = h_count(self);
  if (!n) return PyUnicode_FromString("<Histogram empty>");
  return PyUnicode_FromFormat("<Histogram count=%llu p50=%lluns p99=%lluns max=%lluns>",
                              (unsigned long long)n,
                              (unsigned long long)h_percentile(self, 50.0),
                              (unsigned long long)h_percentile(self, 99.0),
                              (unsigned long long)atomic_load_explicit(&self->max,
                                                                       memory_order_relaxed));
}

static PyMethodDef Hist_methods[] = {
    {"record", (PyCFunction)Hist_record, METH_O, "record(ns): add one value (int ns >= 0)"},
    {"record_since", (PyCFunction)Hist_record_since, METH_O,
     "record_since(t0_ns) -> now_ns: record now - t0 (perf_counter_ns clock)"},
    {"record_n", (PyCFunction)(void (*)(void))Hist_record_n, METH_FASTCALL,
     "record_n(ns, count): add a value count times"},
    {"record_many", (PyCFunction)Hist_record_many, METH_O,
     "record_many(values): an iterable of ints or a buffer of int64"},
    {"merge", (PyCFunction)(void (*)(void))Hist_merge,
     METH_METHOD | METH_FASTCALL | METH_KEYWORDS, "merge(other): add other's values"},
    {"percentile", (PyCFunction)Hist_percentile, METH_O,
     "percentile(p) -> ns at percentile p (0..100); 0 when empty"},
    {"percentiles", (PyCFunction)Hist_percentiles, METH_O,
     "percentiles([p, ...]) -> [ns, ...]"},
    {"reset", (PyCFunction)Hist_reset, METH_NOARGS, "reset(): forget every value"},
    {"snapshot", (PyCFunction)Hist_snapshot, METH_NOARGS,
     "snapshot() -> (min, max, sum, ((bucket, count), ...))"},
    {"from_snapshot", (PyCFunction)Hist_from_snapshot, METH_O | METH_CLASS,
     "Histogram.from_snapshot(snapshot) -> Histogram"},
    {"bucket_range", (PyCFunction)Hist_bucket_range, METH_O | METH_CLASS,
     "Histogram.bucket_range(ns) -> (lo, hi) of the bucket holding ns"},
    {"__reduce__", (PyCFunction)Hist_reduce, METH_NOARGS, NULL},
    {NULL}};

static PyGetSetDef Hist_getset[] = {
    {"count", (getter)Hist_get_count, NULL, "number of values recorded", NULL},
    {"min", (getter)Hist_get_min, NULL, "smallest value (exact; 0 when empty)", NULL},
    {"max", (getter)Hist_get_max, NULL, "largest value (exact; 0 when empty)", NULL},
    {"sum", (getter)Hist_get_sum, NULL, "sum of the values (exact)", NULL},
    {"mean", (getter)Hist_get_mean, NULL, "exact mean (0.0 when empty)", NULL},
    {NULL}};

static PyType_Slot Hist_slots[] = {
    {Py_tp_doc,
     "Histogram(): latency histogram in nanoseconds, log-linear buckets "
     "(<= 1/64 wide, 0 .. 68.7 s), lock-free record()"},
    {Py_tp_new, Hist_new},
    {Py_tp_dealloc, Hist_dealloc},
    {Py_tp_methods, Hist_methods},
    {Py_tp_getset, Hist_getset},
    {Py_tp_repr, Hist_repr},
    {0, NULL}};

static PyType_Spec Hist_spec = {
    .name = "cspike._core.Histogram",
    .basicsize = sizeof(spkpy_Hist),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Hist_slots,
};

int spkpy_hist_init_types(PyObject *m, spkpy_state *st) {
  (void)st;
  PyObject *t = PyType_FromModuleAndSpec(m, &Hist_spec, NULL);
  if (!t) return -1;
  int rc = PyModule_AddType(m, (PyTypeObject *)t);
  Py_DECREF(t);
  if (rc) return -1;
  return PyModule_AddIntConstant(m, "HISTOGRAM_BUCKETS", H_N);
}
