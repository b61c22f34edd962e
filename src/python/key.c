/*
 * key.c - cspike.Key: namespace, set, user key and its digest.
 *
 * Immutable: the digest and partition id are computed once at construction,
 * and namespace / set are kept as UTF-8 too so commands encode them without
 * touching Python objects.
 */
#include <stddef.h>

#include "spkpy.h"

static int copy_name(PyObject *s, const char *what, size_t max, char *out,
                     uint8_t *out_len, int allow_empty) {
  if (!PyUnicode_Check(s)) {
    PyErr_Format(PyExc_TypeError, "%s must be a str, not %.100s", what,
                 Py_TYPE(s)->tp_name);
    return -1;
  }
  Py_ssize_t n;
  const char *u = PyUnicode_AsUTF8AndSize(s, &n);
  if (!u) return -1;
  if (n == 0 && !allow_empty) {
    PyErr_Format(PyExc_ValueError, "%s must not be empty", what);
    return -1;
  }
  if ((size_t)n > max) {
    PyErr_Format(PyExc_ValueError, "%s is %zd bytes long; the limit is %zu",
                 what, n, max);
    return -1;
  }
  if (memchr(u, '\0', (size_t)n)) {
    PyErr_Format(PyExc_ValueError, "%s must not contain NUL characters", what);
    return -1;
  }
  memcpy(out, u, (size_t)n);
  out[n] = '\0';
  *out_len = (uint8_t)n;
  return 0;
}

/* Fill digest from (set, value); sets key_type. */
static int compute_digest(spkpy_Key *k, PyObject *value) {
  if (PyLong_CheckExact(value) || (PyLong_Check(value) && !PyBool_Check(value))) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow) {
      PyErr_SetString(PyExc_ValueError,
                      "integer key does not fit in a signed 64-bit integer");
      return -1;
    }
    k->key_type = SPK_PARTICLE_INTEGER;
    spk_key_digest_int(k->set, k->set_len, (int64_t)v, k->digest);
    return 0;
  }
  if (PyUnicode_Check(value)) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(value, &n);
    if (!u) return -1;
    k->key_type = SPK_PARTICLE_STRING;
    spk_key_digest(k->set, k->set_len, SPK_PARTICLE_STRING, (const uint8_t *)u,
                   (size_t)n, k->digest);
    return 0;
  }
  if (PyBytes_Check(value)) {
    k->key_type = SPK_PARTICLE_BLOB;
    spk_key_digest(k->set, k->set_len, SPK_PARTICLE_BLOB,
                   (const uint8_t *)PyBytes_AS_STRING(value),
                   (size_t)PyBytes_GET_SIZE(value), k->digest);
    return 0;
  }
  PyErr_Format(PyExc_TypeError,
               "key value must be str, int or bytes, not %.100s",
               Py_TYPE(value)->tp_name);
  return -1;
}

static PyObject *Key_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"namespace", "set_name", "value", NULL};
  PyObject *ns, *set, *value;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOO:Key", kwlist, &ns, &set,
                                   &value))
    return NULL;
  spkpy_Key *k = (spkpy_Key *)type->tp_alloc(type, 0);
  if (!k) return NULL;
  if (set == Py_None) set = PyUnicode_FromStringAndSize("", 0);
  else Py_INCREF(set);
  k->set_obj = set;
  Py_INCREF(ns);
  k->ns_obj = ns;
  /* bytearray / memoryview keys are frozen to bytes so the key stays
   * immutable and hashable. */
  if (PyByteArray_Check(value) || PyMemoryView_Check(value))
    value = PyBytes_FromObject(value);
  else
    Py_INCREF(value);
  k->value = value;
  if (!set || !value ||
      copy_name(ns, "namespace", SPK_NAMESPACE_MAX, k->ns, &k->ns_len, 0) ||
      copy_name(set, "set_name", SPK_SET_MAX, k->set, &k->set_len, 1) ||
      compute_digest(k, value)) {
    Py_DECREF(k);
    return NULL;
  }
  return (PyObject *)k;
}

static PyObject *Key_from_digest(PyObject *cls, PyObject *args, PyObject *kwds) {
  static char *kwlist[] = {"namespace", "set_name", "digest", NULL};
  PyObject *ns, *set;
  Py_buffer d;
  if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOy*:Key.from_digest", kwlist,
                                   &ns, &set, &d))
    return NULL;
  if (d.len != SPK_DIGEST_SIZE) {
    PyBuffer_Release(&d);
    return PyErr_Format(PyExc_ValueError, "digest must be %d bytes, not %zd",
                        SPK_DIGEST_SIZE, d.len);
  }
  PyTypeObject *type = (PyTypeObject *)cls;
  spkpy_Key *k = (spkpy_Key *)type->tp_alloc(type, 0);
  if (!k) {
    PyBuffer_Release(&d);
    return NULL;
  }
  memcpy(k->digest, d.buf, SPK_DIGEST_SIZE);
  PyBuffer_Release(&d);
  if (set == Py_None) set = PyUnicode_FromStringAndSize("", 0);
  else Py_INCREF(set);
  k->set_obj = set;
  Py_INCREF(ns);
  k->ns_obj = ns;
  k->value = Py_NewRef(Py_None);
  if (!set || copy_name(ns, "namespace", SPK_NAMESPACE_MAX, k->ns, &k->ns_len, 0) ||
      copy_name(set, "set_name", SPK_SET_MAX, k->set, &k->set_len, 1)) {
    Py_DECREF(k);
    return NULL;
  }
  return (PyObject *)k;
}

static int Key_traverse(spkpy_Key *k, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(k));
  return 0;
}

static void Key_dealloc(spkpy_Key *k) {
  PyTypeObject *tp = Py_TYPE(k);
  PyObject_GC_UnTrack(k);
  Py_XDECREF(k->ns_obj);
  Py_XDECREF(k->set_obj);
  Py_XDECREF(k->value);
  tp->tp_free(k);
  Py_DECREF(tp);
}

static PyObject *Key_get_digest(spkpy_Key *k, void *c) {
  (void)c;
  return PyBytes_FromStringAndSize((const char *)k->digest, SPK_DIGEST_SIZE);
}

static PyObject *Key_get_pid(spkpy_Key *k, void *c) {
  (void)c;
  return PyLong_FromUnsignedLong(spk_partition_id(k->digest));
}

static PyObject *Key_repr(spkpy_Key *k) {
  if (k->value == Py_None) {
    PyObject *d = Key_get_digest(k, NULL);
    if (!d) return NULL;
    PyObject *h = PyObject_CallMethod(d, "hex", NULL);
    Py_DECREF(d);
    if (!h) return NULL;
    PyObject *r = PyUnicode_FromFormat("Key(%R, %R, digest=%U)", k->ns_obj,
                                       k->set_obj, h);
    Py_DECREF(h);
    return r;
  }
  return PyUnicode_FromFormat("Key(%R, %R, %R)", k->ns_obj, k->set_obj, k->value);
}

/* Keys are equal when they address the same record: namespace + digest. */
static PyObject *Key_richcompare(PyObject *a, PyObject *b, int op) {
  if ((op != Py_EQ && op != Py_NE) || !PyObject_TypeCheck(b, Py_TYPE(a)))
    Py_RETURN_NOTIMPLEMENTED;
  spkpy_Key *x = (spkpy_Key *)a, *y = (spkpy_Key *)b;
  int eq = x->ns_len == y->ns_len && memcmp(x->ns, y->ns, x->ns_len) == 0 &&
           memcmp(x->digest, y->digest, SPK_DIGEST_SIZE) == 0;
  return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t Key_hash(spkpy_Key *k) {
  uint64_t h = 0;
  memcpy(&h, k->digest + 4, sizeof h);
  h ^= (uint64_t)k->ns_len * 0x9E3779B97F4A7C15ull;
  for (uint8_t i = 0; i < k->ns_len; i++) h = h * 31 + (uint8_t)k->ns[i];
  Py_hash_t r = (Py_hash_t)(h >> 1);
  return r == -1 ? -2 : r;
}

static PyObject *Key_reduce(spkpy_Key *k, PyObject *unused) {
  (void)unused;
  if (k->value == Py_None) {
    PyObject *d = Key_get_digest(k, NULL);
    PyObject *f = d ? PyObject_GetAttrString((PyObject *)Py_TYPE(k), "from_digest") : NULL;
    PyObject *r = f ? Py_BuildValue("(O(OON))", f, k->ns_obj, k->set_obj, d) : NULL;
    Py_XDECREF(f);
    if (!r) Py_XDECREF(d);
    return r;
  }
  return Py_BuildValue("(O(OOO))", Py_TYPE(k), k->ns_obj, k->set_obj, k->value);
}

static PyMemberDef Key_members[] = {
    {"namespace", T_OBJECT_EX, offsetof(spkpy_Key, ns_obj), READONLY, "namespace"},
    {"set_name", T_OBJECT_EX, offsetof(spkpy_Key, set_obj), READONLY, "set name"},
    {"value", T_OBJECT_EX, offsetof(spkpy_Key, value), READONLY,
     "user key (None for a key built from a digest)"},
    {NULL}};

static PyGetSetDef Key_getset[] = {
    {"digest", (getter)Key_get_digest, NULL, "20-byte RIPEMD-160 digest", NULL},
    {"partition_id", (getter)Key_get_pid, NULL, "partition id (0..4095)", NULL},
    {NULL}};

static PyMethodDef Key_methods[] = {
    {"from_digest", (PyCFunction)(void (*)(void))Key_from_digest,
     METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "Key.from_digest(namespace, set_name, digest) -> Key without a user key"},
    {"__reduce__", (PyCFunction)Key_reduce, METH_NOARGS, NULL},
    {NULL}};

static PyType_Slot Key_slots[] = {
    {Py_tp_doc, "Key(namespace, set_name, value): address of one record.\n\n"
                "value is a str, int (signed 64-bit) or bytes; the digest and "
                "partition id are computed on construction."},
    {Py_tp_new, Key_new},
    {Py_tp_dealloc, Key_dealloc},
    {Py_tp_traverse, Key_traverse},
    {Py_tp_repr, Key_repr},
    {Py_tp_richcompare, Key_richcompare},
    {Py_tp_hash, Key_hash},
    {Py_tp_members, Key_members},
    {Py_tp_getset, Key_getset},
    {Py_tp_methods, Key_methods},
    {0, NULL}};

static PyType_Spec Key_spec = {
    .name = "cspike._core.Key",
    .basicsize = sizeof(spkpy_Key),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Key_slots,
};

int spkpy_key_init_types(PyObject *module, spkpy_state *st) {
  st->KeyType = (PyTypeObject *)PyType_FromModuleAndSpec(module, &Key_spec, NULL);
  if (!st->KeyType) return -1;
  return PyModule_AddType(module, st->KeyType);
}
