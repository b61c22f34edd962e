/*
 * record.c - cspike.Record: the bins, generation and expiry of one record.
 *
 * ttl is derived from the server's void time when read, so a Record kept
 * around reports the time actually left.  -1 means "never expires".
 */
#include <stddef.h>
#include <time.h>

#include "spkpy.h"

PyObject *spkpy_record_new(spkpy_state *st, PyObject *key, PyObject *bins,
                           PyObject *results, uint32_t generation,
                           uint32_t void_time) {
  spkpy_Record *r = PyObject_GC_New(spkpy_Record, st->RecordType);
  if (!r) {
    Py_XDECREF(bins);
    Py_XDECREF(results);
    return NULL;
  }
  r->key = Py_NewRef(key ? key : Py_None);
  r->bins = bins;
  r->results = results;
  r->generation = generation;
  r->void_time = void_time;
  PyObject_GC_Track(r);
  return (PyObject *)r;
}

static PyObject *Record_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"key", "bins", "generation", "ttl", NULL};
  PyObject *key = Py_None, *bins = NULL;
  unsigned int gen = 0;
  long long ttl = -1;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO!IL:Record", kwlist, &key,
                                   &PyDict_Type, &bins, &gen, &ttl))
    return NULL;
  spkpy_Record *r = (spkpy_Record *)type->tp_alloc(type, 0);
  if (!r) return NULL;
  r->key = Py_NewRef(key);
  r->bins = bins ? PyDict_Copy(bins) : PyDict_New();
  if (!r->bins) {
    Py_DECREF(r);
    return NULL;
  }
  r->generation = gen;
  if (ttl < 0) {
    r->void_time = 0;
  } else {
    long long now = (long long)time(NULL) - SPK_CITRUSLEAF_EPOCH;
    long long vt = now + (ttl ? ttl : 1);
    r->void_time = vt > 0xFFFFFFFFll ? 0xFFFFFFFFu : (uint32_t)vt;
  }
  return (PyObject *)r;
}

static int Record_traverse(spkpy_Record *r, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(r));
  Py_VISIT(r->key);
  Py_VISIT(r->bins);
  Py_VISIT(r->results);
  return 0;
}

static int Record_clear(spkpy_Record *r) {
  Py_CLEAR(r->key);
  Py_CLEAR(r->bins);
  Py_CLEAR(r->results);
  return 0;
}

static void Record_dealloc(spkpy_Record *r) {
  PyTypeObject *tp = Py_TYPE(r);
  PyObject_GC_UnTrack(r);
  Record_clear(r);
  tp->tp_free(r);
  Py_DECREF(tp);
}

static PyObject *Record_get_ttl(spkpy_Record *r, void *c) {
  (void)c;
  uint64_t now = (uint64_t)time(NULL);
  return PyLong_FromLongLong(spk_void_time_to_ttl(r->void_time, now));
}

static PyObject *Record_get_generation(spkpy_Record *r, void *c) {
  (void)c;
  return PyLong_FromUnsignedLong(r->generation);
}

static PyObject *Record_get_void_time(spkpy_Record *r, void *c) {
  (void)c;
  if (r->void_time == 0) Py_RETURN_NONE;
  return PyLong_FromUnsignedLongLong((unsigned long long)r->void_time +
                                     SPK_CITRUSLEAF_EPOCH);
}

static PyObject *Record_get_results(spkpy_Record *r, void *c) {
  (void)c;
  if (!r->results) Py_RETURN_NONE;
  return Py_NewRef(r->results);
}

static PyObject *Record_bin(spkpy_Record *r, PyObject *const *args,
                            Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2)
    return PyErr_Format(PyExc_TypeError, "bin() takes 1 or 2 arguments");
  PyObject *v = PyDict_GetItemWithError(r->bins, args[0]);
  if (v) return Py_NewRef(v);
  if (PyErr_Occurred()) return NULL;
  return Py_NewRef(nargs == 2 ? args[1] : Py_None);
}

static PyObject *Record_getitem(spkpy_Record *r, PyObject *name) {
  return PyObject_GetItem(r->bins, name);
}

static PyObject *Record_repr(spkpy_Record *r) {
  PyObject *ttl = Record_get_ttl(r, NULL);
  if (!ttl) return NULL;
  PyObject *s = PyUnicode_FromFormat("Record(key=%R, bins=%R, generation=%u, ttl=%S)",
                                     r->key, r->bins, (unsigned)r->generation, ttl);
  Py_DECREF(ttl);
  return s;
}

static PyObject *Record_richcompare(PyObject *a, PyObject *b, int op) {
  if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, Py_TYPE(a)))
    Py_RETURN_NOTIMPLEMENTED;
  spkpy_Record *x = (spkpy_Record *)a, *y = (spkpy_Record *)b;
  int eq = x->generation == y->generation;
  if (eq) {
    eq = PyObject_RichCompareBool(x->bins, y->bins, Py_EQ);
    if (eq < 0) return NULL;
  }
  if (eq) {
    eq = PyObject_RichCompareBool(x->key, y->key, Py_EQ);
    if (eq < 0) return NULL;
  }
  return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static PyMemberDef Record_members[] = {
    {"key", T_OBJECT_EX, offsetof(spkpy_Record, key), READONLY,
     "the record's Key (None when not known)"},
    {"bins", T_OBJECT_EX, offsetof(spkpy_Record, bins), READONLY,
     "dict of bin name -> value"},
    {NULL}};

static PyGetSetDef Record_getset[] = {
    {"generation", (getter)Record_get_generation, NULL,
     "record generation (write counter)", NULL},
    {"ttl", (getter)Record_get_ttl, NULL,
     "seconds until the record expires; -1 = never expires", NULL},
    {"void_time", (getter)Record_get_void_time, NULL,
     "Unix time at which the record expires, or None", NULL},
    {"results", (getter)Record_get_results, NULL,
     "operate(): one result per operation, in request order (None otherwise)",
     NULL},
    {NULL}};

static PyMethodDef Record_methods[] = {
    {"bin", (PyCFunction)(void (*)(void))Record_bin, METH_FASTCALL,
     "bin(name, default=None) -> value of a bin"},
    {NULL}};

static PyType_Slot Record_slots[] = {
    {Py_tp_doc, "Record(key=None, bins=None, generation=0, ttl=-1)"},
    {Py_tp_new, Record_new},
    {Py_tp_dealloc, Record_dealloc},
    {Py_tp_traverse, Record_traverse},
    {Py_tp_clear, Record_clear},
    {Py_tp_repr, Record_repr},
    {Py_tp_richcompare, Record_richcompare},
    {Py_mp_subscript, Record_getitem},
    {Py_tp_members, Record_members},
    {Py_tp_getset, Record_getset},
    {Py_tp_methods, Record_methods},
    {0, NULL}};

static PyType_Spec Record_spec = {
    .name = "cspike._core.Record",
    .basicsize = sizeof(spkpy_Record),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Record_slots,
};

int spkpy_record_init_types(PyObject *module, spkpy_state *st) {
  st->RecordType =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &Record_spec, NULL);
  if (!st->RecordType) return -1;
  return PyModule_AddType(module, st->RecordType);
}

/* ---- RecordResult ------------------------------------------------------------ */

PyObject *spkpy_result_new(spkpy_state *st, PyObject *key, PyObject *record, int code,
                           bool in_doubt, Py_ssize_t index, const char *message) {
  spkpy_RecordResult *r = PyObject_GC_New(spkpy_RecordResult, st->RecordResultType);
  if (!r) {
    Py_XDECREF(record);
    return NULL;
  }
  r->key = Py_NewRef(key ? key : Py_None);
  r->record = record ? record : Py_NewRef(Py_None);
  r->result_code = code;
  r->in_doubt = in_doubt;
  r->index = index;
  r->message = NULL;
  if (message && message[0]) {
    r->message = PyUnicode_DecodeUTF8(message, (Py_ssize_t)strlen(message), "replace");
    if (!r->message) PyErr_Clear();
  }
  r->exception = NULL;
  r->udf_result = NULL;
  PyObject_GC_Track(r);
  return (PyObject *)r;
}

static PyObject *Result_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"key", "record", "result_code", "in_doubt", "index",
                           "exception", "udf_result", NULL};
  PyObject *key = Py_None, *record = Py_None, *exc = Py_None, *udf = Py_None;
  int code = 0, in_doubt = 0;
  Py_ssize_t index = -1;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOipnOO:RecordResult", kwlist, &key,
                                   &record, &code, &in_doubt, &index, &exc, &udf))
    return NULL;
  spkpy_RecordResult *r = (spkpy_RecordResult *)type->tp_alloc(type, 0);
  if (!r) return NULL;
  r->key = Py_NewRef(key);
  r->record = Py_NewRef(record);
  r->result_code = code;
  r->in_doubt = in_doubt;
  r->index = index;
  r->exception = exc == Py_None ? NULL : Py_NewRef(exc);
  r->udf_result = udf == Py_None ? NULL : Py_NewRef(udf);
  return (PyObject *)r;
}

static int Result_traverse(spkpy_RecordResult *r, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(r));
  Py_VISIT(r->key);
  Py_VISIT(r->record);
  Py_VISIT(r->exception);
  Py_VISIT(r->udf_result);
  Py_VISIT(r->message);
  return 0;
}

static int Result_clear(spkpy_RecordResult *r) {
  Py_CLEAR(r->key);
  Py_CLEAR(r->record);
  Py_CLEAR(r->exception);
  Py_CLEAR(r->udf_result);
  Py_CLEAR(r->message);
  return 0;
}

static void Result_dealloc(spkpy_RecordResult *r) {
  PyTypeObject *tp = Py_TYPE(r);
  PyObject_GC_UnTrack(r);
  Result_clear(r);
  tp->tp_free(r);
  Py_DECREF(tp);
}

static PyObject *Result_is_ok(spkpy_RecordResult *r, void *c) {
  (void)c;
  return PyBool_FromLong(r->result_code == 0);
}

/* The exception for a failed row, built on first use (most rows never
 * need it).  None for a successful row. */
static PyObject *Result_exception(PyObject *self, PyTypeObject *defining, PyObject *const *a,
                                  Py_ssize_t n, PyObject *kw) {
  (void)a;
  (void)n;
  (void)kw;
  spkpy_RecordResult *r = (spkpy_RecordResult *)self;
  if (r->result_code == 0) Py_RETURN_NONE;
  if (r->exception) return Py_NewRef(r->exception);
  spkpy_state *st = spkpy_state_of_type(defining);
  spk_error e;
  e.code = r->result_code;
  e.in_doubt = r->in_doubt;
  const char *msg = r->message ? PyUnicode_AsUTF8(r->message) : NULL;
  snprintf(e.message, sizeof e.message, "%s", msg ? msg : spk_result_message(e.code));
  spkpy_raise(st, &e);
  PyObject *exc = spkpy_fetch_exception();
  if (!exc) return NULL;
  PyObject *old = r->exception;
  r->exception = Py_NewRef(exc);
  Py_XDECREF(old);
  return exc;
}

static PyObject *Result_or_raise(PyObject *self, PyTypeObject *defining, PyObject *const *a,
                                 Py_ssize_t n, PyObject *kw) {
  spkpy_RecordResult *r = (spkpy_RecordResult *)self;
  if (r->result_code == 0) return Py_NewRef(self);
  PyObject *exc = Result_exception(self, defining, a, n, kw);
  if (!exc) return NULL;
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
  return NULL;
}

static PyObject *Result_record_or_raise(PyObject *self, PyTypeObject *defining,
                                        PyObject *const *a, Py_ssize_t n, PyObject *kw) {
  spkpy_RecordResult *r = (spkpy_RecordResult *)self;
  if (r->result_code != 0) return Result_or_raise(self, defining, a, n, kw);
  if (r->record == Py_None)
    return PyErr_Format(PyExc_ValueError, "result for %R has no record", r->key);
  return Py_NewRef(r->record);
}

static PyObject *Result_as_bool(PyObject *self, PyTypeObject *defining, PyObject *const *a,
                                Py_ssize_t n, PyObject *kw) {
  spkpy_RecordResult *r = (spkpy_RecordResult *)self;
  if (r->result_code == 0) Py_RETURN_TRUE;
  if (r->result_code == SPK_ERR_RECORD_NOT_FOUND) Py_RETURN_FALSE;
  return Result_or_raise(self, defining, a, n, kw);
}

static PyObject *Result_repr(spkpy_RecordResult *r) {
  if (r->result_code == 0)
    return PyUnicode_FromFormat("RecordResult(key=%R, record=%R, index=%zd)", r->key,
                                r->record, r->index);
  return PyUnicode_FromFormat("RecordResult(key=%R, result_code=%d (%s), in_doubt=%s, index=%zd)",
                              r->key, r->result_code, spk_result_name(r->result_code),
                              r->in_doubt ? "True" : "False", r->index);
}

static PyObject *Result_get_exc(PyObject *self, void *c) {
  (void)c;
  spkpy_RecordResult *r = (spkpy_RecordResult *)self;
  if (r->result_code == 0) Py_RETURN_NONE;
  /* RecordResult cannot be subclassed, so its own type carries the state. */
  return Result_exception(self, Py_TYPE(self), NULL, 0, NULL);
}

static PyMemberDef Result_members[] = {
    {"key", T_OBJECT_EX, offsetof(spkpy_RecordResult, key), READONLY, "the row's Key"},
    {"record", T_OBJECT_EX, offsetof(spkpy_RecordResult, record), READONLY,
     "Record, or None (failed row, delete, exists)"},
    {"result_code", T_INT, offsetof(spkpy_RecordResult, result_code), READONLY,
     "Aerospike result code (0 = OK)"},
    {"in_doubt", T_BOOL, offsetof(spkpy_RecordResult, in_doubt), READONLY,
     "a failed write may have been applied"},
    {"index", T_PYSSIZET, offsetof(spkpy_RecordResult, index), READONLY,
     "position of the key in the request (-1 for query rows)"},
    {"udf_result", T_OBJECT, offsetof(spkpy_RecordResult, udf_result), READONLY, NULL},
    {NULL}};

static PyGetSetDef Result_getset[] = {
    {"is_ok", (getter)Result_is_ok, NULL, "result_code == 0", NULL},
    {"exception", (getter)Result_get_exc, NULL,
     "the AerospikeError of a failed row (None when OK)", NULL},
    {NULL}};

#define RM(name, fn, doc) \
  {name, (PyCFunction)(void (*)(void))fn, METH_METHOD | METH_FASTCALL | METH_KEYWORDS, doc}

static PyMethodDef Result_methods[] = {
    RM("or_raise", Result_or_raise, "self if OK, else raise the row's exception"),
    RM("record_or_raise", Result_record_or_raise, "the Record, or raise"),
    RM("as_bool", Result_as_bool, "True if OK, False if not found, else raise"),
    {NULL}};

static PyType_Slot Result_slots[] = {
    {Py_tp_doc, "RecordResult: the outcome for one key of a builder or batch call"},
    {Py_tp_new, Result_new},
    {Py_tp_dealloc, Result_dealloc},
    {Py_tp_traverse, Result_traverse},
    {Py_tp_clear, Result_clear},
    {Py_tp_repr, Result_repr},
    {Py_tp_members, Result_members},
    {Py_tp_getset, Result_getset},
    {Py_tp_methods, Result_methods},
    {0, NULL}};

static PyType_Spec Result_spec = {
    .name = "cspike._core.RecordResult",
    .basicsize = sizeof(spkpy_RecordResult),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Result_slots,
};

int spkpy_result_init_types(PyObject *module, spkpy_state *st) {
  st->RecordResultType =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &Result_spec, NULL);
  if (!st->RecordResultType) return -1;
  return PyModule_AddType(module, st->RecordResultType);
}
