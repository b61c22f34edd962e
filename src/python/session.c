/*
 * session.c - cspike._core.SessionCore: the single-record fast path.
 *
 * Each call encodes the request straight from the Python arguments into a
 * per-thread buffer, runs the command on this thread with the GIL released
 * (spkpy_execute), and decodes the answer straight into Python objects.
 * Policies were compiled once when the session was created.
 *
 * Thread safety: a session is immutable after __init__ (which may run only
 * once), so any number of threads may share it.
 */
#include <stddef.h>

#include "spkpy.h"

/* ---- per-thread buffers with re-entrancy protection ---------------------- */

/* A finalizer run by the GC while we decode can call back into cspike on
 * this thread; such nested calls get private buffers. */
static SPK_TLS int tls_depth;
#define SPKPY_KEEP_BUF (1u << 20) /* shrink thread buffers above this */

typedef struct {
  spk_buf *tx, *rx;
  spk_buf own_tx, own_rx;
  bool nested;
} bufs_t;

static int bufs_acquire(bufs_t *b) {
  if (tls_depth++ == 0) {
    b->tx = spk_sync_tx_buf();
    b->rx = spk_sync_rx_buf();
    b->nested = false;
    if (!b->tx || !b->rx) {
      tls_depth--;
      PyErr_NoMemory();
      return -1;
    }
  } else {
    memset(&b->own_tx, 0, sizeof b->own_tx);
    memset(&b->own_rx, 0, sizeof b->own_rx);
    b->tx = &b->own_tx;
    b->rx = &b->own_rx;
    b->nested = true;
  }
  b->tx->len = 0;
  b->rx->len = 0;
  return 0;
}

static void bufs_release(bufs_t *b) {
  tls_depth--;
  if (b->nested) {
    spk_buf_free(&b->own_tx);
    spk_buf_free(&b->own_rx);
    return;
  }
  if (b->tx->cap > SPKPY_KEEP_BUF) spk_buf_free(b->tx);
  if (b->rx->cap > SPKPY_KEEP_BUF) spk_buf_free(b->rx);
}

/* ---- policies -------------------------------------------------------------- */

int spkpy_policy_from_tuple(PyObject *t, spk_policy *p, const char *what) {
  unsigned int total, sock, retries, delay, commit, replica, ap, sc;
  int send_key, durable, compress;
  long long touch;
  unsigned int threshold;
  if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 13) {
    PyErr_Format(PyExc_TypeError, "%s policy must be a 13-tuple from compile_settings()", what);
    return -1;
  }
  if (!PyArg_ParseTuple(t, "IIIIppIIIILpI", &total, &sock, &retries, &delay,
                        &send_key, &durable, &commit, &replica, &ap, &sc, &touch,
                        &compress, &threshold))
    return -1;
  spk_policy_init(p);
  p->total_timeout_ms = total;
  p->socket_timeout_ms = sock;
  p->max_retries = retries;
  p->sleep_between_retries_ms = delay;
  p->send_key = send_key;
  p->durable_delete = durable;
  p->commit_level = (uint8_t)commit;
  p->replica = (uint8_t)(replica <= SPK_REPLICA_RANDOM ? replica : SPK_REPLICA_SEQUENCE);
  p->read_mode_ap = (uint8_t)ap;
  p->read_mode_sc = (uint8_t)sc;
  p->read_touch_ttl_percent = touch < 0 ? 0xFFFFFFFFu : (uint32_t)touch;
  return 0;
}

/* Server-side deadline sent in transaction_ttl (protocol-core 3.9). */
static inline uint32_t server_timeout(const spk_policy *p) {
  if (p->socket_timeout_ms && (p->total_timeout_ms == 0 ||
                               p->socket_timeout_ms < p->total_timeout_ms))
    return p->socket_timeout_ms;
  return p->total_timeout_ms;
}

/* ---- object ------------------------------------------------------------------ */

static PyObject *Session_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  (void)args;
  (void)kw;
  spkpy_Session *s = (spkpy_Session *)type->tp_alloc(type, 0);
  return (PyObject *)s;
}

static int Session_init(spkpy_Session *self, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"cluster", "policies", "driver_for", NULL};
  PyObject *cluster, *pols, *driver_for = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO!|O:SessionCore", kwlist, &cluster,
                                   &PyTuple_Type, &pols, &driver_for))
    return -1;
  spkpy_state *st = PyType_GetModuleState(Py_TYPE(cluster));
  if (!st || !PyObject_TypeCheck(cluster, st->ClusterType)) {
    PyErr_SetString(PyExc_TypeError, "cluster must be a cspike._core.Cluster");
    return -1;
  }
  if (PyTuple_GET_SIZE(pols) != 2 * SPKPY_POL_N) {
    PyErr_Format(PyExc_TypeError, "policies must be a tuple of %d policy tuples",
                 2 * SPKPY_POL_N);
    return -1;
  }
  if (self->cluster) {
    PyErr_SetString(PyExc_RuntimeError, "session is already initialised");
    return -1;
  }
  static const char *const what[] = {"read", "write", "retryable write", "batch read",
                                     "batch write"};
  spk_policy pol[2 * SPKPY_POL_N];
  for (int i = 0; i < 2 * SPKPY_POL_N; i++)
    if (spkpy_policy_from_tuple(PyTuple_GET_ITEM(pols, i), &pol[i],
                                what[i % SPKPY_POL_N]) != 0)
      return -1;
  memcpy(self->pol, pol, sizeof self->pol);
  memcpy(self->pol_sc, pol + SPKPY_POL_N, sizeof self->pol_sc);
  Py_INCREF(cluster);
  self->cluster = (spkpy_Cluster *)cluster;
  if (driver_for && driver_for != Py_None) self->driver_for = Py_NewRef(driver_for);
  return 0;
}

static int Session_traverse(spkpy_Session *self, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(self->cluster);
  Py_VISIT(self->dict);
  Py_VISIT(self->driver_for);
  Py_VISIT(self->drv_loop);
  Py_VISIT(self->drv);
  return 0;
}

static int Session_clear(spkpy_Session *self) {
  Py_CLEAR(self->dict);
  Py_CLEAR(self->driver_for);
  Py_CLEAR(self->drv_loop);
  Py_CLEAR(self->drv);
  return 0;
}

static void Session_dealloc(spkpy_Session *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
  Session_clear(self);
  Py_CLEAR(self->cluster);
  tp->tp_free(self);
  Py_DECREF(tp);
}

/* ---- shared pieces ------------------------------------------------------------ */

static inline int check_session(spkpy_Session *s) {
  if (SPK_UNLIKELY(!s->cluster || !s->cluster->cluster)) {
    PyErr_SetString(PyExc_RuntimeError, "session is not initialised");
    return -1;
  }
  return 0;
}

static inline spkpy_Key *as_key(spkpy_state *st, PyObject *o) {
  if (SPK_LIKELY(Py_IS_TYPE(o, st->KeyType)) || PyObject_TypeCheck(o, st->KeyType))
    return (spkpy_Key *)o;
  PyErr_Format(PyExc_TypeError, "key must be a cspike.Key, not %.100s",
               Py_TYPE(o)->tp_name);
  return NULL;
}

static inline uint8_t read_info1(const spk_policy *p) {
  return (uint8_t)(SPK_INFO1_READ | (p->read_mode_ap ? SPK_INFO1_READ_MODE_AP_ALL : 0));
}
static inline uint8_t write_info3(const spk_policy *p) {
  return p->commit_level ? SPK_INFO3_COMMIT_MASTER : 0;
}

/* Append a WRITE op per item of a bins dict; returns op count or -1. */
static int write_bins(spkpy_state *st, spk_buf *tx, PyObject *bins) {
  Py_ssize_t n = PyDict_GET_SIZE(bins), pos = 0, seen = 0;
  if (n == 0) {
    PyErr_SetString(PyExc_ValueError, "bins must hold at least one bin");
    return -1;
  }
  if (n > 65535) {
    PyErr_SetString(PyExc_ValueError, "too many bins (more than 65535)");
    return -1;
  }
  PyObject *name, *val;
  while (spkpy_dict_next(bins, &pos, &name, &val)) {
    int rc = -1;
    Py_ssize_t nl;
    const char *nm;
    if (++seen > n)
      PyErr_SetString(PyExc_RuntimeError, "bins changed size while being encoded");
    else if ((nm = spkpy_bin_name(name, &nl)) != NULL)
      rc = spkpy_write_value_op(st, tx, SPK_OP_WRITE, nm, nl, val);
    Py_DECREF(name);
    Py_DECREF(val);
    if (rc) return -1;
  }
  if (seen != n) {
    PyErr_SetString(PyExc_RuntimeError, "bins changed size while being encoded");
    return -1;
  }
  return (int)n;
}

/* Append a READ op per name of a sequence of bin names; op count or -1. */
static int read_names(spk_buf *tx, PyObject *names) {
  PyObject *seq = PySequence_Fast(names, "bins must be a list or tuple of bin names");
  if (!seq) return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  int rc = 0;
  if (n > 65535) {
    PyErr_SetString(PyExc_ValueError, "too many bin names");
    rc = -1;
  }
  for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
    Py_ssize_t nl;
    const char *nm = spkpy_bin_name(PySequence_Fast_GET_ITEM(seq, i), &nl);
    if (!nm) rc = -1;
    else if (spk_msg_op_raw(tx, SPK_OP_READ, SPK_PARTICLE_NULL, nm, (size_t)nl, NULL, 0)) {
      PyErr_NoMemory();
      rc = -1;
    }
  }
  Py_DECREF(seq);
  return rc ? -1 : (int)n;
}

/* ---- request building and result decoding (shared with aio.c) ------------- */

static int op_is_read(int op) {
  return op == SPK_OP_READ || op == SPK_OP_CDT_READ || op == SPK_OP_EXP_READ ||
         op == SPK_OP_BITS_READ || op == SPK_OP_HLL_READ;
}
static int op_is_idempotent_write(int op) {
  return op == SPK_OP_WRITE || op == SPK_OP_TOUCH || op == SPK_OP_DELETE_ALL;
}
static int op_known(int op) {
  return (op >= SPK_OP_READ && op <= SPK_OP_HLL_MODIFY && op != 6);
}
static int op_code(PyObject *t) {
  return (int)PyLong_AsLong(PyTuple_GET_ITEM(t, 0));
}

static const char *const kind_name[] = {"get", "put", "delete", "exists", "touch",
                                        "operate"};

static int parse_call(spkpy_kind kind, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, PyObject **vals) {
  static const char *const names_get[] = {"key", "bins"};
  static const char *const names_put[] = {"key", "bins"};
  static const char *const names_key[] = {"key"};
  static const char *const names_op[] = {"key", "ops"};
  switch (kind) {
    case SPKPY_K_GET:
      vals[1] = Py_None;
      if (SPK_LIKELY(nargs == 1 && !kwnames)) {
        vals[0] = args[0];
        return 0;
      }
      return spkpy_parse_args("get", args, nargs, kwnames, names_get, 1, 2, vals);
    case SPKPY_K_PUT:
      if (SPK_LIKELY(nargs == 2 && !kwnames)) {
        vals[0] = args[0];
        vals[1] = args[1];
        return 0;
      }
      return spkpy_parse_args("put", args, nargs, kwnames, names_put, 2, 2, vals);
    case SPKPY_K_OPERATE:
      return spkpy_parse_args("operate", args, nargs, kwnames, names_op, 2, 2, vals);
    default:
      if (SPK_LIKELY(nargs == 1 && !kwnames)) {
        vals[0] = args[0];
        return 0;
      }
      return spkpy_parse_args(kind_name[kind], args, nargs, kwnames, names_key, 1, 1,
                              vals);
  }
}

/* Encode an operate() op list; sets header needs in req. Returns op count. */
static int build_ops(spkpy_state *st, spk_buf *tx, PyObject *ops) {
  Py_ssize_t n = PyTuple_GET_SIZE(ops);
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *t = PyTuple_GET_ITEM(ops, i);
    int code = op_code(t);
    PyObject *name = PyTuple_GET_ITEM(t, 1), *val = PyTuple_GET_ITEM(t, 2);
    const char *nm = "";
    Py_ssize_t nl = 0;
    if (name != Py_None && !(nm = spkpy_bin_name(name, &nl))) return -1;
    int rc;
    switch (code) {
      case SPK_OP_READ:
      case SPK_OP_TOUCH:
      case SPK_OP_DELETE_ALL:
        rc = spk_msg_op_raw(tx, (uint8_t)code, SPK_PARTICLE_NULL, nm, (size_t)nl, NULL, 0)
                 ? (PyErr_NoMemory(), -1) : 0;
        break;
      case SPK_OP_WRITE:
      case SPK_OP_INCR:
      case SPK_OP_APPEND:
      case SPK_OP_PREPEND:
        if (code == SPK_OP_INCR && !((PyLong_Check(val) && !PyBool_Check(val)) ||
                                     PyFloat_Check(val))) {
          PyErr_Format(PyExc_TypeError, "increment of bin '%s' needs an int or float", nm);
          return -1;
        }
        if ((code == SPK_OP_APPEND || code == SPK_OP_PREPEND) &&
            !(PyUnicode_Check(val) || PyBytes_Check(val) || PyByteArray_Check(val))) {
          PyErr_Format(PyExc_TypeError, "append/prepend to bin '%s' needs str or bytes", nm);
          return -1;
        }
        rc = spkpy_write_value_op(st, tx, (uint8_t)code, nm, nl, val);
        break;
      default: {
        Py_buffer view;
        if (PyObject_GetBuffer(val, &view, PyBUF_CONTIG_RO) != 0) return -1;
        rc = spk_msg_op_raw(tx, (uint8_t)code, SPK_PARTICLE_BLOB, nm, (size_t)nl,
                            view.buf, (size_t)view.len) ? (PyErr_NoMemory(), -1) : 0;
        PyBuffer_Release(&view);
      }
    }
    if (rc) return -1;
  }
  return (int)n;
}

/* Record-exists actions (builder verbs) -> header bits. */
static void apply_exists(uint8_t exists, uint8_t *info2, uint8_t *info3) {
  switch (exists) {
    case SPKPY_EXISTS_UPDATE_ONLY: *info3 |= SPK_INFO3_UPDATE_ONLY; break;
    case SPKPY_EXISTS_REPLACE: *info3 |= SPK_INFO3_CREATE_OR_REPLACE; break;
    case SPKPY_EXISTS_REPLACE_ONLY: *info3 |= SPK_INFO3_REPLACE_ONLY; break;
    case SPKPY_EXISTS_CREATE_ONLY: *info2 |= SPK_INFO2_CREATE_ONLY; break;
    default: break;
  }
}

int spkpy_opts_parse(PyObject *t, spkpy_opts *o) {
  memset(o, 0, sizeof *o);
  o->durable = -1;
  if (t == NULL || t == Py_None) return 0;
  PyObject *ttl, *filter;
  int exists, gen_policy, durable, no_bins;
  unsigned int generation;
  if (!PyArg_ParseTuple(t, "OiiIipO;opts must be (ttl, exists, gen_policy, generation, "
                           "durable_delete, no_bins, filter)",
                        &ttl, &exists, &gen_policy, &generation, &durable, &no_bins,
                        &filter))
    return -1;
  o->set = true;
  if (ttl != Py_None) {
    long long v = PyLong_AsLongLong(ttl);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < -2 || v > 0xFFFFFFFDll) {
      PyErr_Format(PyExc_ValueError,
                   "ttl %lld is invalid: use seconds > 0, 0 (namespace default), "
                   "-1 (never expire) or -2 (keep the current TTL)", v);
      return -1;
    }
    o->ttl = v == -1 ? SPK_TTL_NEVER_EXPIRE : v == -2 ? SPK_TTL_DONT_UPDATE : (uint32_t)v;
  }
  if (exists < 0 || exists > SPKPY_EXISTS_CREATE_ONLY || gen_policy < 0 || gen_policy > 2) {
    PyErr_SetString(PyExc_ValueError, "bad record-exists or generation policy");
    return -1;
  }
  o->exists = (uint8_t)exists;
  o->gen_policy = (uint8_t)gen_policy;
  o->generation = generation;
  o->durable = (int8_t)(durable < 0 ? -1 : durable > 0);
  o->no_bins = no_bins;
  if (filter != Py_None) {
    if (!PyBytes_Check(filter)) {
      PyErr_SetString(PyExc_TypeError, "filter must be packed expression bytes");
      return -1;
    }
    o->filter = filter;
  }
  return 0;
}

int spkpy_attrs_for(spkpy_state *st, spkpy_Session *self, spkpy_kind kind,
                    PyObject *arg, const spkpy_opts *opts, bool batch,
                    spkpy_attrs *a, spkpy_req *req) {
  (void)st;
  const spk_policy *pol = self->pol;
  bool may_retry = opts->exists != SPKPY_EXISTS_CREATE_ONLY && opts->gen_policy == 0;
  memset(a, 0, sizeof *a);
  switch (kind) {
    case SPKPY_K_GET:
    case SPKPY_K_EXISTS:
      a->p = &pol[batch ? SPKPY_POL_READ_BATCH : SPKPY_POL_READ];
      a->info1 = read_info1(a->p);
      if (kind == SPKPY_K_EXISTS || opts->no_bins) a->info1 |= SPK_INFO1_GET_NOBINDATA;
      else if (arg == Py_None) a->info1 |= SPK_INFO1_GET_ALL;
      a->ttl = a->p->read_touch_ttl_percent;
      return 0;
    case SPKPY_K_PUT:
      if (!PyDict_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "bins must be a dict, not %.100s", Py_TYPE(arg)->tp_name);
        return -1;
      }
      /* fall through */
    case SPKPY_K_DELETE:
    case SPKPY_K_TOUCH:
      a->p = &pol[batch ? SPKPY_POL_WRITE_BATCH
                        : may_retry ? SPKPY_POL_WRITE_RETRYABLE : SPKPY_POL_WRITE];
      req->is_write = true;
      a->info2 = SPK_INFO2_WRITE;
      if (kind == SPKPY_K_DELETE) {
        a->info2 |= SPK_INFO2_DELETE;
        req->durable_default = opts->durable < 0;
        if (opts->durable > 0 || (opts->durable < 0 && a->p->durable_delete))
          a->info2 |= SPK_INFO2_DURABLE_DELETE;
      }
      /* Batch rows answer every write op with a placeholder (as C does). */
      if (batch && kind != SPKPY_K_PUT) a->info2 |= SPK_INFO2_RESPOND_ALL_OPS;
      a->info3 = write_info3(a->p);
      a->ttl = opts->ttl;
      break;
    case SPKPY_K_OPERATE: {
      PyObject *ops = PySequence_Tuple(arg);
      if (!ops) return -1;
      req->ops = ops; /* owned by req from here on */
      Py_ssize_t n = PyTuple_GET_SIZE(ops);
      if (n == 0 || n > 65535) {
        PyErr_Format(PyExc_ValueError, "operate() needs 1 to 65535 operations");
        return -1;
      }
      bool any_read = false, any_write = false, read_all = false, idempotent = true;
      for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PyTuple_GET_ITEM(ops, i);
        if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 3 ||
            !PyLong_Check(PyTuple_GET_ITEM(t, 0))) {
          PyErr_Format(PyExc_TypeError,
                       "operation %zd is not an operation (build it with cspike.Operation)", i);
          return -1;
        }
        int code = op_code(t);
        if (!op_known(code)) {
          PyErr_Format(PyExc_ValueError, "operation %zd has unknown op code %d", i, code);
          return -1;
        }
        if (op_is_read(code)) {
          any_read = true;
          if (code == SPK_OP_READ && PyTuple_GET_ITEM(t, 1) == Py_None) read_all = true;
        } else {
          any_write = true;
          if (!op_is_idempotent_write(code)) idempotent = false;
        }
      }
      if (batch)
        a->p = &pol[any_write ? SPKPY_POL_WRITE_BATCH : SPKPY_POL_READ_BATCH];
      else
        a->p = !any_write ? &pol[SPKPY_POL_READ]
               : (idempotent && may_retry) ? &pol[SPKPY_POL_WRITE_RETRYABLE]
                                           : &pol[SPKPY_POL_WRITE];
      req->is_write = any_write;
      /* One result per op, in order, unless reading all bins (the server
       * does not allow both). */
      req->respond_all = !read_all;
      if (any_read) a->info1 = (uint8_t)(read_info1(a->p) | (read_all ? SPK_INFO1_GET_ALL : 0));
      if (any_write) a->info2 = SPK_INFO2_WRITE;
      if (req->respond_all) a->info2 |= SPK_INFO2_RESPOND_ALL_OPS;
      if (any_write) {
        a->info3 = write_info3(a->p);
        a->ttl = opts->ttl;
      } else {
        a->ttl = a->p->read_touch_ttl_percent;
      }
      break;
    }
    default:
      PyErr_SetString(PyExc_SystemError, "bad command kind");
      return -1;
  }
  if (req->is_write) {
    if (opts->gen_policy == 1) a->info2 |= SPK_INFO2_GENERATION;
    else if (opts->gen_policy == 2) a->info2 |= SPK_INFO2_GENERATION_GT;
    if (opts->gen_policy) a->generation = opts->generation;
    if (kind != SPKPY_K_DELETE && kind != SPKPY_K_TOUCH)
      apply_exists(opts->exists, &a->info2, &a->info3);
  }
  return 0;
}

int spkpy_write_ops(spkpy_state *st, spk_buf *tx, spkpy_kind kind, PyObject *arg,
                    const spkpy_opts *opts, spkpy_req *req) {
  switch (kind) {
    case SPKPY_K_GET:
      if (arg != Py_None && !opts->no_bins) return read_names(tx, arg);
      return 0;
    case SPKPY_K_PUT:
      return write_bins(st, tx, arg);
    case SPKPY_K_TOUCH:
      if (spk_msg_op_raw(tx, SPK_OP_TOUCH, SPK_PARTICLE_NULL, NULL, 0, NULL, 0)) {
        PyErr_NoMemory();
        return -1;
      }
      return 1;
    case SPKPY_K_OPERATE:
      return build_ops(st, tx, req->ops);
    default:
      return 0;
  }
}

int spkpy_build_vals(spkpy_state *st, spkpy_Session *self, spkpy_kind kind,
                     PyObject *key, PyObject *arg, const spkpy_opts *opts, spk_buf *tx,
                     spkpy_req *req) {
  static const spkpy_opts no_opts = {.durable = -1};
  if (!opts) opts = &no_opts;
  memset(req, 0, sizeof *req);
  req->kind = kind;
  spkpy_Key *k = as_key(st, key);
  if (!k || check_session(self)) return -1;
  spkpy_attrs a;
  if (spkpy_attrs_for(st, self, kind, arg, opts, false, &a, req)) return -1;
  spk_msg_header h;
  memset(&h, 0, sizeof h);
  h.header_sz = SPK_MSG_HEADER_SIZE;
  h.info1 = a.info1;
  h.info2 = a.info2;
  h.info3 = a.info3;
  h.generation = a.generation;
  h.record_ttl = a.ttl;
  h.transaction_ttl = server_timeout(a.p);
  size_t start = spk_msg_begin(tx, &h);
  if (start == (size_t)-1) goto oom;
  int nf = spkpy_write_key_fields(tx, k, req->is_write && a.p->send_key);
  if (nf < 0) return -1;
  if (opts->filter) {
    if (spk_msg_field(tx, SPK_FIELD_FILTER, PyBytes_AS_STRING(opts->filter),
                      (size_t)PyBytes_GET_SIZE(opts->filter)))
      goto oom;
    nf++;
  }
  int nops = spkpy_write_ops(st, tx, kind, arg, opts, req);
  if (nops < 0) return -1;
  if (spk_msg_end(tx, start, (uint16_t)nf, (uint16_t)nops) != 0) {
    PyErr_SetString(PyExc_ValueError, "request exceeds the 128 MiB message limit");
    return -1;
  }
  req->policy = a.p;
  req->key = (spkpy_Key *)Py_NewRef((PyObject *)k);
  req->ns = k->ns;
  req->ns_len = k->ns_len;
  req->pid = spk_partition_id(k->digest);
  return 0;
oom:
  PyErr_NoMemory();
  return -1;
}

int spkpy_build(spkpy_state *st, spkpy_Session *self, spkpy_kind kind,
                PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                spk_buf *tx, spkpy_req *req) {
  PyObject *vals[2] = {NULL, NULL};
  memset(req, 0, sizeof *req);
  if (parse_call(kind, args, nargs, kwnames, vals)) return -1;
  return spkpy_build_vals(st, self, kind, vals[0], vals[1], NULL, tx, req);
}

void spkpy_req_clear(spkpy_req *req) {
  Py_CLEAR(req->ops);
  Py_CLEAR(req->key);
}

/* Collect one answered op: the value into results, and (for reads and
 * valued modify results) into bins by name; a bin read twice keeps both. */
static int collect_op(spkpy_state *st, const spk_op_view *op, int code, PyObject *bins,
                      PyObject *results) {
  PyObject *val = spkpy_decode_particle(st, op->particle, op->value, op->value_len);
  if (!val) return -1;
  bool is_read_result = true;
  if (code >= 0) {
    /* Writes answer with NULL placeholders: not bin values. */
    if (!op_is_read(code) && val == Py_None) is_read_result = false;
    if (code == SPK_OP_WRITE || code == SPK_OP_DELETE_ALL || code == SPK_OP_APPEND ||
        code == SPK_OP_PREPEND)
      is_read_result = false;
  }
  int rc = results ? PyList_Append(results, val) : 0;
  if (rc == 0 && is_read_result && op->name_len) {
    PyObject *name = PyUnicode_DecodeUTF8(op->name, op->name_len, "surrogateescape");
    PyObject *lst = name ? PyDict_GetItemWithError(bins, name) : NULL;
    if (!name || (!lst && PyErr_Occurred())) {
      rc = -1;
    } else if (lst) {
      rc = PyList_Append(lst, val);
    } else {
      lst = PyList_New(1);
      if (lst) PyList_SET_ITEM(lst, 0, Py_NewRef(val));
      rc = lst ? PyDict_SetItem(bins, name, lst) : -1;
      Py_XDECREF(lst);
    }
    Py_XDECREF(name);
  }
  Py_DECREF(val);
  return rc;
}

PyObject *spkpy_finish_operate(spkpy_state *st, spkpy_req *req, const spk_msg_view *v) {
  Py_ssize_t n = PyTuple_GET_SIZE(req->ops);
  PyObject *bins = PyDict_New(), *results = NULL;
  if (!bins) return NULL;
  spk_msg_iter it = spk_msg_ops(v);
  spk_op_view op;
  if (req->respond_all) {
    /* One answer per op in request order, except TOUCH, which the server
     * answers with nothing even then: keep results aligned with ops. */
    if (!(results = PyList_New(0))) goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
      int code = op_code(PyTuple_GET_ITEM(req->ops, i));
      if (code == SPK_OP_TOUCH) {
        if (PyList_Append(results, Py_None) < 0) goto fail;
        continue;
      }
      if (!spk_msg_next_op(&it, &op)) break;
      if (collect_op(st, &op, code, bins, results) < 0) goto fail;
    }
  } else {
    while (spk_msg_next_op(&it, &op))
      if (collect_op(st, &op, -1, bins, NULL) < 0) goto fail;
  }
  {
    PyObject *name, *lst;
    Py_ssize_t pos = 0;
    while (PyDict_Next(bins, &pos, &name, &lst))
      if (PyList_GET_SIZE(lst) == 1 &&
          PyDict_SetItem(bins, name, PyList_GET_ITEM(lst, 0)) < 0)
        goto fail;
  }
  return spkpy_record_new(st, (PyObject *)req->key, bins, results, v->h.generation,
                          v->h.record_ttl);
fail:
  Py_XDECREF(bins);
  Py_XDECREF(results);
  return NULL;
}

PyObject *spkpy_finish_rr(spkpy_state *st, spkpy_req *req, spk_cmd *cmd);

PyObject *spkpy_finish(spkpy_state *st, spkpy_req *req, spk_cmd *cmd) {
  if (req->rr) return spkpy_finish_rr(st, req, cmd);
  int rc = cmd->err.code;
  if (rc != 0) {
    if (rc == SPK_ERR_RECORD_NOT_FOUND &&
        (req->kind == SPKPY_K_DELETE || req->kind == SPKPY_K_EXISTS))
      return Py_NewRef(Py_False);
    return spkpy_raise(st, &cmd->err);
  }
  switch (req->kind) {
    case SPKPY_K_GET: {
      PyObject *bins = spkpy_decode_bins(st, &cmd->resp);
      if (!bins) return NULL;
      return spkpy_record_new(st, (PyObject *)req->key, bins, NULL,
                              cmd->resp.h.generation, cmd->resp.h.record_ttl);
    }
    case SPKPY_K_DELETE:
    case SPKPY_K_EXISTS:
      return Py_NewRef(Py_True);
    case SPKPY_K_OPERATE:
      return spkpy_finish_operate(st, req, &cmd->resp);
    default:
      return Py_NewRef(Py_None);
  }
}

void spkpy_req_cmd(spk_cmd *cmd, spkpy_Session *s, spkpy_req *req, spk_buf *tx,
                   spk_buf *rx) {
  spk_cmd_init(cmd, s->cluster->cluster, req->policy, SPK_CMD_SINGLE, tx, rx);
  /* The same slot of the SC policies, picked if the namespace is SC. */
  cmd->policy_sc = &s->pol_sc[req->policy - s->pol];
  cmd->sc_durable_default = req->durable_default;
  cmd->is_write = req->is_write;
  cmd->ns = req->ns;
  cmd->ns_len = req->ns_len;
  cmd->pid = req->pid;
}

/* ---- the blocking fast path -------------------------------------------------------- */

static PyObject *sync_call(PyObject *self, PyTypeObject *defining, PyObject *const *args,
                           Py_ssize_t nargs, PyObject *kwnames, spkpy_kind kind) {
  spkpy_state *st = spkpy_state_of_type(defining);
  bufs_t b;
  if (bufs_acquire(&b)) return NULL;
  spkpy_req req;
  PyObject *res = NULL;
  if (spkpy_build(st, (spkpy_Session *)self, kind, args, nargs, kwnames, b.tx, &req) == 0) {
    spk_cmd cmd;
    spkpy_req_cmd(&cmd, (spkpy_Session *)self, &req, b.tx, b.rx);
    spkpy_execute(&cmd);
    res = spkpy_finish(st, &req, &cmd);
  }
  spkpy_req_clear(&req);
  bufs_release(&b);
  return res;
}

#define SYNC_METHOD(fn, kind)                                                      \
  static PyObject *fn(PyObject *self, PyTypeObject *defining, PyObject *const *args, \
                      Py_ssize_t nargs, PyObject *kwnames) {                       \
    return sync_call(self, defining, args, nargs, kwnames, kind);                  \
  }
SYNC_METHOD(Session_get, SPKPY_K_GET)
SYNC_METHOD(Session_put, SPKPY_K_PUT)
SYNC_METHOD(Session_delete, SPKPY_K_DELETE)
SYNC_METHOD(Session_exists, SPKPY_K_EXISTS)
SYNC_METHOD(Session_touch, SPKPY_K_TOUCH)
SYNC_METHOD(Session_operate, SPKPY_K_OPERATE)

/* _execute(kind, key, arg, opts): the builders' single crossing into C. */
int spkpy_parse_execute(PyObject *const *args, Py_ssize_t nargs, spkpy_kind *kind,
                        spkpy_opts *opts) {
  if (nargs != 4) {
    PyErr_SetString(PyExc_TypeError, "_execute(kind, key, arg, opts)");
    return -1;
  }
  long k = PyLong_AsLong(args[0]);
  if (k < SPKPY_K_GET || k > SPKPY_K_OPERATE) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bad command kind");
    return -1;
  }
  *kind = (spkpy_kind)k;
  return spkpy_opts_parse(args[3], opts);
}

/* The result of a finished command as a RecordResult: server and network
 * failures become result-coded rows instead of exceptions (the builders
 * route them); misuse errors are still raised by the build step. */
PyObject *spkpy_finish_rr(spkpy_state *st, spkpy_req *req, spk_cmd *cmd) {
  int rc = cmd->err.code;
  PyObject *key = (PyObject *)req->key;
  if (rc != 0)
    return spkpy_result_new(st, key, NULL, rc, cmd->err.in_doubt, 0, cmd->err.message);
  PyObject *record = NULL;
  if (req->kind == SPKPY_K_GET || req->kind == SPKPY_K_EXISTS) {
    PyObject *bins = spkpy_decode_bins(st, &cmd->resp);
    record = bins ? spkpy_record_new(st, key, bins, NULL, cmd->resp.h.generation,
                                     cmd->resp.h.record_ttl)
                  : NULL;
    if (!record) return NULL;
  } else if (req->kind == SPKPY_K_OPERATE) {
    record = spkpy_finish_operate(st, req, &cmd->resp);
    if (!record) return NULL;
  }
  return spkpy_result_new(st, key, record, 0, false, 0, NULL);
}

static PyObject *Session_execute(PyObject *self, PyTypeObject *defining,
                                 PyObject *const *args, Py_ssize_t nargs,
                                 PyObject *kwnames) {
  spkpy_state *st = spkpy_state_of_type(defining);
  spkpy_kind kind;
  spkpy_opts opts;
  if (kwnames || spkpy_parse_execute(args, nargs, &kind, &opts)) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_execute takes no keywords");
    return NULL;
  }
  bufs_t b;
  if (bufs_acquire(&b)) return NULL;
  spkpy_req req;
  PyObject *res = NULL;
  if (spkpy_build_vals(st, (spkpy_Session *)self, kind, args[1], args[2], &opts, b.tx,
                       &req) == 0) {
    req.rr = true;
    spk_cmd cmd;
    spkpy_req_cmd(&cmd, (spkpy_Session *)self, &req, b.tx, b.rx);
    spkpy_execute(&cmd);
    res = spkpy_finish(st, &req, &cmd);
  }
  spkpy_req_clear(&req);
  bufs_release(&b);
  return res;
}

/* ---- type ---------------------------------------------------------------------- */

static PyObject *Session_get_cluster(spkpy_Session *self, void *c) {
  (void)c;
  if (!self->cluster) Py_RETURN_NONE;
  return Py_NewRef((PyObject *)self->cluster);
}

#define FASTM(name, fn, doc) \
  {name, (PyCFunction)(void (*)(void))fn, METH_METHOD | METH_FASTCALL | METH_KEYWORDS, doc}

static PyMethodDef Session_methods[] = {
    FASTM("get", Session_get,
          "get(key, bins=None) -> Record; raises RecordNotFoundError if absent"),
    FASTM("put", Session_put, "put(key, bins: dict) -> None (upsert)"),
    FASTM("delete", Session_delete, "delete(key) -> bool (False if absent)"),
    FASTM("exists", Session_exists, "exists(key) -> bool"),
    FASTM("touch", Session_touch, "touch(key) -> None; resets the record's TTL"),
    FASTM("_batch", spkpy_session_batch,
          "_batch(rows) -> [RecordResult]: rows of (kind, key, arg, opts)"),
    FASTM("_execute", Session_execute,
          "_execute(kind, key, arg, opts): one command with builder options"),
    FASTM("operate", Session_operate,
          "operate(key, ops) -> Record with bins of read results and .results "
          "(one per op)"),
    {NULL}};

static PyGetSetDef Session_getset[] = {
    {"_cluster", (getter)Session_get_cluster, NULL, "the core cluster", NULL},
    {NULL}};

static PyMemberDef Session_members[] = {
    {"__dictoffset__", T_PYSSIZET, offsetof(spkpy_Session, dict), READONLY},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(spkpy_Session, weakreflist), READONLY},
    {NULL}};

static PyType_Slot Session_slots[] = {
    {Py_tp_doc, "SessionCore(cluster, policies): single-record fast path"},
    {Py_tp_new, Session_new},
    {Py_tp_init, Session_init},
    {Py_tp_dealloc, Session_dealloc},
    {Py_tp_traverse, Session_traverse},
    {Py_tp_clear, Session_clear},
    {Py_tp_methods, Session_methods},
    {Py_tp_getset, Session_getset},
    {Py_tp_members, Session_members},
    {0, NULL}};

static PyType_Spec Session_spec = {
    .name = "cspike._core.SessionCore",
    .basicsize = sizeof(spkpy_Session),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = Session_slots,
};

int spkpy_session_init_types(PyObject *module, spkpy_state *st) {
  st->SessionType =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &Session_spec, NULL);
  if (!st->SessionType) return -1;
  return PyModule_AddType(module, st->SessionType);
}
