/*
 * aio.c - asyncio glue of the event-loop driver.
 *
 * A LoopDriver belongs to one (client, event loop) pair.  Its epoll fd is
 * registered once with loop.add_reader(); a command encodes and send()s
 * straight from the awaiting call, parks an asyncio Future and returns it;
 * when the epoll fd is readable one C callback completes every ready
 * command, resolving futures inline on the loop thread.  One loop timer
 * (call_at) covers the earliest deadline of the C timer heap.
 *
 * Everything here runs on the loop's thread, which holds the GIL (or, on
 * free-threaded builds, an attached thread state); a driver is never used
 * from two threads.
 */
#include <stddef.h>

#include "drivers/spk_loop.h"
#include "spkpy.h"

typedef struct spkpy_Driver {
  PyObject_HEAD
  spk_loop *l;
  spkpy_state *st;
  spkpy_Cluster *cluster;
  PyObject *loop;
  PyObject *create_future;
  PyObject *call_at;
  PyObject *on_timer; /* bound self._on_timer */
  PyObject *timer_handle;
  uint64_t timer_when_ns;
  uint64_t last_trim_ns;
  uint32_t idle_ms;
  int reader_fd; /* -1 when not registered */
  bool closed;
  PyObject *weakreflist;
} spkpy_Driver;

typedef struct abatch abatch_t;

typedef struct inflight {
  spkpy_req req;
  PyObject *future;
  PyObject *session;  /* strong: the command points at its compiled policy */
  spkpy_Driver *drv;
  abatch_t *batch;    /* batch node commands: their job */
  spk_batch_node *bn; /* ... and their node slot */
} inflight_t;

/* An async batch: the job, its future, and how many node commands of the
 * current round are still running. */
struct abatch {
  spkpy_bjob bj;
  PyObject *future;
  PyObject *session; /* strong: the job points at its compiled policy */
  spkpy_Driver *drv; /* strong */
  int pending;
};


/* ---- completion ------------------------------------------------------------- */

static void resolve(spkpy_Driver *d, PyObject *fut, PyObject *res) {
  PyObject *r;
  if (res) {
    r = PyObject_CallMethodOneArg(fut, d->st->str_set_result, res);
    Py_DECREF(res);
  } else {
    PyObject *exc = spkpy_fetch_exception();
    r = exc ? PyObject_CallMethodOneArg(fut, d->st->str_set_exception, exc) : NULL;
    Py_XDECREF(exc);
  }
  if (!r) {
    /* The future was cancelled (InvalidStateError) or its loop closed:
     * the result has nowhere to go, which is what the caller asked for. */
    PyErr_Clear();
  }
  Py_XDECREF(r);
  (void)d;
}

static void aio_done(spk_acmd *a) {
  inflight_t *f = a->udata;
  spkpy_Driver *d = f->drv;
  PyObject *fut = f->future;
  f->future = NULL;
  PyObject *res = spkpy_finish(d->st, &f->req, &a->cmd);
  if (fut) {
    resolve(d, fut, res);
    Py_DECREF(fut);
  } else {
    Py_XDECREF(res);
    PyErr_Clear();
  }
  spkpy_req_clear(&f->req);
  Py_CLEAR(f->session);
  spk_loop_acmd_free(d->l, a);
}

/* A command whose future is already done (cancelled) has nobody waiting.
 * Called only when a node's connections are all busy. */
static int aio_abandoned(spk_acmd *a) {
  inflight_t *f = a->udata;
  if (!f->future) return 0;
  PyObject *r = PyObject_CallMethod(f->future, "done", NULL);
  if (!r) {
    PyErr_Clear();
    return 0;
  }
  int done = r == Py_True;
  Py_DECREF(r);
  return done;
}

/* ---- timer ------------------------------------------------------------------- */

static int schedule_timer(spkpy_Driver *d) {
  uint64_t next = spk_loop_next_timer(d->l);
  if (!next) return 0;
  if (d->timer_handle && d->timer_when_ns <= next) return 0;
  if (d->timer_handle) {
    PyObject *r = PyObject_CallMethodNoArgs(d->timer_handle, d->st->str_cancel);
    Py_XDECREF(r);
    Py_CLEAR(d->timer_handle);
  }
  PyObject *when = PyFloat_FromDouble((double)next / 1e9);
  if (!when) return -1;
  PyObject *args[2] = {when, d->on_timer};
  d->timer_handle = PyObject_Vectorcall(d->call_at, args, 2, NULL);
  Py_DECREF(when);
  if (!d->timer_handle) return -1;
  d->timer_when_ns = next;
  return 0;
}

static PyObject *Driver_on_timer(spkpy_Driver *d, PyObject *unused) {
  (void)unused;
  Py_CLEAR(d->timer_handle);
  d->timer_when_ns = 0;
  if (d->closed || !d->l) Py_RETURN_NONE;
  uint64_t now = spk_now_ns();
  spk_loop_run_timers(d->l, now);
  if (now - d->last_trim_ns > 1000000000u) {
    d->last_trim_ns = now;
    spk_loop_trim(d->l, now, d->idle_ms);
  }
  if (schedule_timer(d) != 0) return NULL;
  Py_RETURN_NONE;
}

static PyObject *Driver_on_readable(spkpy_Driver *d, PyObject *unused) {
  (void)unused;
  if (d->closed || !d->l) Py_RETURN_NONE;
  spk_loop_run_ready(d->l);
  if (schedule_timer(d) != 0) return NULL;
  Py_RETURN_NONE;
}

/* ---- lifecycle ----------------------------------------------------------------- */

static PyObject *Driver_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  static char *kwlist[] = {"cluster", "loop", "idle_ms", NULL};
  PyObject *cluster, *loop;
  unsigned int idle_ms = 55000;
  if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|I:LoopDriver", kwlist, &cluster, &loop,
                                   &idle_ms))
    return NULL;
  spkpy_state *st = spkpy_state_of_type(type);
  if (!PyObject_TypeCheck(cluster, st->ClusterType))
    return PyErr_Format(PyExc_TypeError, "cluster must be a cspike._core.Cluster");
  spkpy_Driver *d = (spkpy_Driver *)type->tp_alloc(type, 0);
  if (!d) return NULL;
  d->st = st;
  d->reader_fd = -1;
  d->idle_ms = idle_ms;
  d->cluster = (spkpy_Cluster *)Py_NewRef(cluster);
  d->loop = Py_NewRef(loop);
  spk_error err;
  d->l = spk_loop_new(d->cluster->cluster, sizeof(inflight_t), &err);
  if (!d->l) {
    Py_DECREF(d);
    return spkpy_raise(st, &err);
  }
  spk_loop_set_abandoned_fn(d->l, aio_abandoned);
  d->create_future = PyObject_GetAttrString(loop, "create_future");
  d->call_at = d->create_future ? PyObject_GetAttrString(loop, "call_at") : NULL;
  d->on_timer = d->call_at ? PyObject_GetAttrString((PyObject *)d, "_on_timer") : NULL;
  PyObject *reader = d->on_timer ? PyObject_GetAttrString((PyObject *)d, "_on_readable") : NULL;
  PyObject *fd = reader ? PyLong_FromLong(spk_loop_fd(d->l)) : NULL;
  PyObject *r = fd ? PyObject_CallMethodObjArgs(loop, d->st->str_add_reader, fd, reader, NULL) : NULL;
  Py_XDECREF(reader);
  Py_XDECREF(fd);
  if (!r) {
    Py_DECREF(d);
    return NULL;
  }
  Py_DECREF(r);
  d->reader_fd = spk_loop_fd(d->l);
  d->last_trim_ns = spk_now_ns();
  return (PyObject *)d;
}

/* Fail everything in flight, unregister from the loop, close sockets. */
static void driver_shutdown(spkpy_Driver *d, int code, const char *msg) {
  if (d->closed) return;
  d->closed = true;
  if (d->l) spk_loop_abort_all(d->l, code, msg);
  if (d->timer_handle) {
    PyObject *r = PyObject_CallMethodNoArgs(d->timer_handle, d->st->str_cancel);
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    Py_CLEAR(d->timer_handle);
  }
  if (d->reader_fd >= 0 && d->loop) {
    PyObject *fd = PyLong_FromLong(d->reader_fd);
    PyObject *r = fd ? PyObject_CallMethodOneArg(d->loop, d->st->str_remove_reader, fd) : NULL;
    /* A closed loop refuses; its selector is gone already. */
    if (!r) PyErr_Clear();
    Py_XDECREF(r);
    Py_XDECREF(fd);
  }
  d->reader_fd = -1;
  /* Nothing is in flight any more: release the epoll fd and connections
   * now, not when the last session drops the driver. */
  if (d->l) {
    spk_loop_free(d->l);
    d->l = NULL;
  }
}

static PyObject *Driver_close(spkpy_Driver *d, PyObject *unused) {
  (void)unused;
  driver_shutdown(d, SPK_ERR_CLOSED, "client is closed");
  Py_RETURN_NONE;
}

static void visit_inflight(spk_acmd *a, void *ctx) {
  void **c = ctx;
  visitproc visit = (visitproc)c[0];
  inflight_t *f = a->udata;
  if (c[2]) return;
  if (f->future) {
    int r = visit(f->future, c[1]);
    if (r) c[2] = (void *)(intptr_t)r;
  }
  if (f->session && !c[2]) {
    int r = visit(f->session, c[1]);
    if (r) c[2] = (void *)(intptr_t)r;
  }
}

static int Driver_traverse(spkpy_Driver *d, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(d));
  Py_VISIT(d->cluster);
  Py_VISIT(d->loop);
  Py_VISIT(d->create_future);
  Py_VISIT(d->call_at);
  Py_VISIT(d->on_timer);
  Py_VISIT(d->timer_handle);
  if (d->l) {
    void *ctx[3] = {(void *)visit, arg, NULL};
    spk_loop_foreach(d->l, visit_inflight, ctx);
    if (ctx[2]) return (int)(intptr_t)ctx[2];
  }
  return 0;
}

static int Driver_clear(spkpy_Driver *d) {
  if (d->l && spk_loop_inflight(d->l)) driver_shutdown(d, SPK_ERR_CLOSED, "client is closed");
  Py_CLEAR(d->on_timer);
  Py_CLEAR(d->timer_handle);
  Py_CLEAR(d->create_future);
  Py_CLEAR(d->call_at);
  return 0;
}

static void Driver_dealloc(spkpy_Driver *d) {
  PyTypeObject *tp = Py_TYPE(d);
  PyObject_GC_UnTrack(d);
  if (d->weakreflist) PyObject_ClearWeakRefs((PyObject *)d);
  if (d->l) {
    driver_shutdown(d, SPK_ERR_CLOSED, "client is closed");
    spk_loop_free(d->l);
    d->l = NULL;
  }
  Driver_clear(d);
  Py_CLEAR(d->loop);
  Py_CLEAR(d->cluster);
  tp->tp_free(d);
  Py_DECREF(tp);
}

static PyObject *Driver_inflight(spkpy_Driver *d, void *c) {
  (void)c;
  return PyLong_FromSize_t(d->l ? spk_loop_inflight(d->l) : 0);
}

static PyObject *Driver_is_closed(spkpy_Driver *d, void *c) {
  (void)c;
  return PyBool_FromLong(d->closed);
}

static PyMethodDef Driver_methods[] = {
    {"_on_readable", (PyCFunction)Driver_on_readable, METH_NOARGS, NULL},
    {"_on_timer", (PyCFunction)Driver_on_timer, METH_NOARGS, NULL},
    {"close", (PyCFunction)Driver_close, METH_NOARGS,
     "fail commands in flight with ClientClosedError and close the sockets"},
    {NULL}};

static PyGetSetDef Driver_getset[] = {
    {"inflight", (getter)Driver_inflight, NULL, "commands in flight", NULL},
    {"is_closed", (getter)Driver_is_closed, NULL, NULL, NULL},
    {NULL}};

static PyMemberDef Driver_members[] = {
    {"loop", T_OBJECT_EX, offsetof(spkpy_Driver, loop), READONLY, "the event loop"},
    {"__weaklistoffset__", T_PYSSIZET, offsetof(spkpy_Driver, weakreflist), READONLY},
    {NULL}};

static PyType_Slot Driver_slots[] = {
    {Py_tp_doc, "LoopDriver(cluster, loop): cspike's I/O on one asyncio event loop"},
    {Py_tp_new, Driver_new},
    {Py_tp_dealloc, Driver_dealloc},
    {Py_tp_traverse, Driver_traverse},
    {Py_tp_clear, Driver_clear},
    {Py_tp_methods, Driver_methods},
    {Py_tp_getset, Driver_getset},
    {Py_tp_members, Driver_members},
    {0, NULL}};

static PyType_Spec Driver_spec = {
    .name = "cspike._core.LoopDriver",
    .basicsize = sizeof(spkpy_Driver),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Driver_slots,
};

/* ---- the awaitable session ---------------------------------------------------- */

static PyObject *get_running_loop(spkpy_state *st) {
  if (!st->get_running_loop) {
    PyObject *m = PyImport_ImportModule("asyncio");
    if (!m) return NULL;
    st->get_running_loop = PyObject_GetAttrString(m, "_get_running_loop");
    Py_DECREF(m);
    if (!st->get_running_loop) return NULL;
  }
  PyObject *loop = PyObject_CallNoArgs(st->get_running_loop);
  if (loop == Py_None) {
    Py_DECREF(loop);
    PyErr_SetString(PyExc_RuntimeError,
                    "no running event loop: await cspike's async calls inside a coroutine");
    return NULL;
  }
  return loop;
}

/* The driver for the running loop (new reference).  The session caches the
 * last (loop, driver) pair; a miss asks the Python client, which keeps one
 * driver per loop. */
static spkpy_Driver *driver_for(spkpy_state *st, spkpy_Session *s) {
  PyObject *loop = get_running_loop(st);
  if (!loop) return NULL;
  spkpy_Driver *d = NULL;
  Py_BEGIN_CRITICAL_SECTION(s);
  if (s->drv_loop == loop && s->drv) d = (spkpy_Driver *)Py_NewRef(s->drv);
  Py_END_CRITICAL_SECTION();
  if (d && !d->closed) {
    Py_DECREF(loop);
    return d;
  }
  Py_XDECREF(d);
  if (!s->driver_for) {
    Py_DECREF(loop);
    PyErr_SetString(PyExc_RuntimeError, "session has no event-loop driver factory");
    return NULL;
  }
  PyObject *r = PyObject_CallOneArg(s->driver_for, loop);
  if (!r) {
    Py_DECREF(loop);
    return NULL;
  }
  if (!PyObject_TypeCheck(r, st->LoopDriverType)) {
    Py_DECREF(r);
    Py_DECREF(loop);
    PyErr_SetString(PyExc_TypeError, "driver factory must return a LoopDriver");
    return NULL;
  }
  d = (spkpy_Driver *)r;
  Py_BEGIN_CRITICAL_SECTION(s);
  Py_XSETREF(s->drv_loop, Py_NewRef(loop));
  Py_XSETREF(s->drv, Py_NewRef(r));
  Py_END_CRITICAL_SECTION();
  Py_DECREF(loop);
  if (d->closed) {
    Py_DECREF(d);
    spkpy_raise_code(st, SPK_ERR_CLOSED, "client is closed");
    return NULL;
  }
  return d;
}

/* Start a command built by `build` (fast-path args or _execute args). */
static PyObject *async_call(PyObject *self, PyTypeObject *defining, PyObject *const *args,
                            Py_ssize_t nargs, PyObject *kwnames, spkpy_kind kind) {
  spkpy_state *st = spkpy_state_of_type(defining);
  spkpy_Session *s = (spkpy_Session *)self;
  spkpy_opts opts;
  bool execute = (int)kind < 0;
  if (execute) {
    if (kwnames || spkpy_parse_execute(args, nargs, &kind, &opts)) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_execute takes no keywords");
      return NULL;
    }
  }
  spkpy_Driver *d = driver_for(st, s);
  if (!d) return NULL;
  spk_acmd *a = spk_loop_acmd_alloc(d->l);
  if (!a) {
    Py_DECREF(d);
    return PyErr_NoMemory();
  }
  inflight_t *f = a->udata;
  memset(f, 0, sizeof *f);
  f->drv = d;
  int brc = execute ? spkpy_build_vals(st, s, kind, args[1], args[2], &opts, &a->tx, &f->req)
                    : spkpy_build(st, s, kind, args, nargs, kwnames, &a->tx, &f->req);
  if (execute) f->req.rr = true;
  if (brc != 0) {
    spkpy_req_clear(&f->req);
    spk_loop_acmd_free(d->l, a);
    Py_DECREF(d);
    return NULL;
  }
  PyObject *fut = PyObject_CallNoArgs(d->create_future);
  if (!fut) {
    spkpy_req_clear(&f->req);
    spk_loop_acmd_free(d->l, a);
    Py_DECREF(d);
    return NULL;
  }
  f->future = Py_NewRef(fut);
  f->session = Py_NewRef(self);
  spkpy_req_cmd(&a->cmd, s, &f->req, &a->tx, &a->rx);
  a->on_done = aio_done;
  spk_loop_start(d->l, a);
  if (schedule_timer(d) != 0) {
    Py_DECREF(fut);
    Py_DECREF(d);
    return NULL;
  }
  Py_DECREF(d);
  return fut;
}

/* ---- async batch ---------------------------------------------------------------- */

static void abatch_round(abatch_t *ab);

static void abatch_finish(abatch_t *ab) {
  spkpy_Driver *d = ab->drv;
  PyObject *res = spkpy_bjob_results(d->st, &ab->bj);
  PyObject *fut = ab->future;
  ab->future = NULL;
  resolve(d, fut, res);
  Py_DECREF(fut);
  spkpy_bjob_free(&ab->bj);
  Py_XDECREF(ab->session);
  Py_DECREF(d);
  PyMem_Free(ab);
}

static void abatch_node_done(spk_acmd *a) {
  inflight_t *f = a->udata;
  abatch_t *ab = f->batch;
  spk_batch_node_done(&ab->bj.job, f->bn);
  f->batch = NULL;
  spk_loop_acmd_free(ab->drv->l, a);
  if (--ab->pending == 0) abatch_round(ab);
}

static void abatch_round(abatch_t *ab) {
  spkpy_Driver *d = ab->drv;
  spk_batch *job = &ab->bj.job;
  if (d->closed) {
    for (uint32_t i = 0; i < job->n_rows; i++)
      if (!job->rows[i].answered) {
        job->rows[i].answered = true;
        job->rows[i].result = SPK_ERR_CLOSED;
      }
    spk_batch_round_end(job);
    abatch_finish(ab);
    return;
  }
  int n = spk_batch_plan(job, spk_now_ns());
  if (n <= 0) {
    spk_cluster_unpin();
    spk_batch_round_end(job);
    abatch_finish(ab);
    return;
  }
  ab->pending = n + 1; /* +1: node commands may finish while we start them */
  for (int i = 0; i < n; i++) {
    spk_batch_node *bn = &job->nodes[i];
    spk_acmd *a = spk_loop_acmd_alloc(d->l);
    if (!a) {
      spk_error_set(&bn->cmd.err, SPK_ERR_CLIENT, "out of memory");
      spk_batch_node_done(job, bn);
      ab->pending--;
      continue;
    }
    inflight_t *f = a->udata;
    memset(f, 0, sizeof *f);
    f->drv = d;
    f->batch = ab;
    f->bn = bn;
    a->cmdp = &bn->cmd;
    a->on_done = abatch_node_done;
    spk_loop_start(d->l, a);
  }
  /* Each started command now holds its node (connection or pool ref). */
  spk_cluster_unpin();
  if (--ab->pending == 0) abatch_round(ab);
}

static PyObject *ASession_batch(PyObject *self, PyTypeObject *defining, PyObject *const *args,
                                Py_ssize_t nargs, PyObject *kwnames) {
  spkpy_state *st = spkpy_state_of_type(defining);
  if (nargs != 1 || kwnames)
    return PyErr_Format(PyExc_TypeError, "_batch(rows) takes one list");
  spkpy_Driver *d = driver_for(st, (spkpy_Session *)self);
  if (!d) return NULL;
  abatch_t *ab = PyMem_Calloc(1, sizeof *ab);
  if (!ab) {
    Py_DECREF(d);
    return PyErr_NoMemory();
  }
  if (spkpy_bjob_build(st, (spkpy_Session *)self, args[0], &ab->bj) != 0) {
    spkpy_bjob_free(&ab->bj);
    PyMem_Free(ab);
    Py_DECREF(d);
    return NULL;
  }
  PyObject *fut = PyObject_CallNoArgs(d->create_future);
  if (!fut) {
    spkpy_bjob_free(&ab->bj);
    PyMem_Free(ab);
    Py_DECREF(d);
    return NULL;
  }
  ab->future = Py_NewRef(fut);
  ab->session = Py_NewRef(self);
  ab->drv = d; /* our reference moves into the job */
  abatch_round(ab);
  if (schedule_timer(d) != 0) {
    Py_DECREF(fut);
    return NULL;
  }
  return fut;
}

#define ASYNC_METHOD(fn, kind)                                                      \
  static PyObject *fn(PyObject *self, PyTypeObject *defining, PyObject *const *args, \
                      Py_ssize_t nargs, PyObject *kwnames) {                        \
    return async_call(self, defining, args, nargs, kwnames, kind);                  \
  }
ASYNC_METHOD(ASession_get, SPKPY_K_GET)
ASYNC_METHOD(ASession_put, SPKPY_K_PUT)
ASYNC_METHOD(ASession_delete, SPKPY_K_DELETE)
ASYNC_METHOD(ASession_exists, SPKPY_K_EXISTS)
ASYNC_METHOD(ASession_touch, SPKPY_K_TOUCH)
ASYNC_METHOD(ASession_operate, SPKPY_K_OPERATE)
ASYNC_METHOD(ASession_execute, (spkpy_kind)-1)

#define FASTM(name, fn, doc) \
  {name, (PyCFunction)(void (*)(void))fn, METH_METHOD | METH_FASTCALL | METH_KEYWORDS, doc}

static PyMethodDef ASession_methods[] = {
    FASTM("get", ASession_get, "await get(key, bins=None) -> Record"),
    FASTM("put", ASession_put, "await put(key, bins: dict) -> None"),
    FASTM("delete", ASession_delete, "await delete(key) -> bool"),
    FASTM("exists", ASession_exists, "await exists(key) -> bool"),
    FASTM("touch", ASession_touch, "await touch(key) -> None"),
    FASTM("operate", ASession_operate, "await operate(key, ops) -> Record"),
    FASTM("_execute", ASession_execute, "await _execute(kind, key, arg, opts)"),
    FASTM("_batch", ASession_batch, "await _batch(rows) -> [RecordResult]"),
    {NULL}};

int spkpy_aio_init_types(PyObject *module, spkpy_state *st) {
  if (!(st->str_set_result = PyUnicode_InternFromString("set_result")) ||
      !(st->str_set_exception = PyUnicode_InternFromString("set_exception")) ||
      !(st->str_cancel = PyUnicode_InternFromString("cancel")) ||
      !(st->str_add_reader = PyUnicode_InternFromString("add_reader")) ||
      !(st->str_remove_reader = PyUnicode_InternFromString("remove_reader")))
    return -1;
  st->LoopDriverType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Driver_spec, NULL);
  if (!st->LoopDriverType || PyModule_AddType(module, st->LoopDriverType)) return -1;
  PyType_Slot slots[] = {
      {Py_tp_doc, "AsyncSessionCore(cluster, policies, driver_for): awaitable fast path"},
      {Py_tp_methods, ASession_methods},
      {0, NULL}};
  PyType_Spec spec = {
      .name = "cspike._core.AsyncSessionCore",
      .basicsize = 0, /* same layout as SessionCore; GC slots inherited */
      .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
      .slots = slots,
  };
  PyObject *bases = PyTuple_Pack(1, (PyObject *)st->SessionType);
  if (!bases) return -1;
  st->AsyncSessionType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &spec, bases);
  Py_DECREF(bases);
  if (!st->AsyncSessionType) return -1;
  return PyModule_AddType(module, st->AsyncSessionType);
}
