/*
 * encode.c - Python values straight to wire bytes: key fields, bin ops and
 * msgpack for lists and maps.  No intermediate value tree; no user Python
 * code runs during encoding (exact type checks only, containers iterated
 * under a critical section on free-threaded builds).
 */
#include "spkpy.h"

#define SPKPY_MAX_DEPTH 128

int spkpy_write_key_fields(spk_buf *b, spkpy_Key *k, bool send_key) {
  if (spk_msg_field(b, SPK_FIELD_NAMESPACE, k->ns, k->ns_len) ||
      spk_msg_field(b, SPK_FIELD_SETNAME, k->set, k->set_len) ||
      spk_msg_field(b, SPK_FIELD_DIGEST, k->digest, SPK_DIGEST_SIZE)) {
    PyErr_NoMemory();
    return -1;
  }
  if (!send_key || k->key_type == 0) return 3;
  uint8_t *p;
  if (k->key_type == SPK_PARTICLE_INTEGER) {
    p = spk_msg_field_reserve(b, SPK_FIELD_KEY, 9);
    if (!p) goto oom;
    p[0] = SPK_PARTICLE_INTEGER;
    long long v = PyLong_AsLongLong(k->value);
    if (v == -1 && PyErr_Occurred()) return -1;
    spk_put_be64(p + 1, (uint64_t)v);
    return 4;
  }
  const char *data;
  Py_ssize_t n;
  if (k->key_type == SPK_PARTICLE_STRING) {
    data = PyUnicode_AsUTF8AndSize(k->value, &n);
    if (!data) return -1;
  } else {
    data = PyBytes_AS_STRING(k->value);
    n = PyBytes_GET_SIZE(k->value);
  }
  p = spk_msg_field_reserve(b, SPK_FIELD_KEY, (size_t)n + 1);
  if (!p) goto oom;
  p[0] = k->key_type;
  memcpy(p + 1, data, (size_t)n);
  return 4;
oom:
  PyErr_NoMemory();
  return -1;
}

const char *spkpy_bin_name(PyObject *name, Py_ssize_t *len) {
  if (SPK_UNLIKELY(!PyUnicode_Check(name))) {
    PyErr_Format(PyExc_TypeError, "bin name must be a str, not %.100s",
                 Py_TYPE(name)->tp_name);
    return NULL;
  }
  const char *u = PyUnicode_AsUTF8AndSize(name, len);
  if (!u) return NULL;
  if (SPK_UNLIKELY(*len > SPK_BIN_NAME_MAX)) {
    PyErr_Format(PyExc_ValueError,
                 "bin name %R is %zd bytes long; Aerospike allows at most %d",
                 name, *len, SPK_BIN_NAME_MAX);
    return NULL;
  }
  return u;
}

static int oom(void) {
  PyErr_NoMemory();
  return -1;
}

static int int_value(PyObject *v, int64_t *out, const char *what,
                     const char *name) {
  int overflow = 0;
  long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
  if (x == -1 && PyErr_Occurred()) return -1;
  if (overflow) {
    PyErr_Format(PyExc_ValueError,
                 "%s %s holds an integer outside the signed 64-bit range", what,
                 name);
    return -1;
  }
  *out = (int64_t)x;
  return 0;
}

static int is_geojson(spkpy_state *st, PyObject *v) {
  return st->geojson_type && PyObject_TypeCheck(v, (PyTypeObject *)st->geojson_type);
}

/* GeoJSON objects expose their JSON text as .value (a str). */
static const char *geojson_text(PyObject *v, Py_ssize_t *n, PyObject **hold) {
  *hold = PyObject_GetAttrString(v, "value");
  if (!*hold) return NULL;
  if (!PyUnicode_Check(*hold)) {
    PyErr_SetString(PyExc_TypeError, "GeoJSON.value must be a str");
    return NULL;
  }
  return PyUnicode_AsUTF8AndSize(*hold, n);
}

int spkpy_write_value_op(spkpy_state *st, spk_buf *b, uint8_t op,
                         const char *name, Py_ssize_t name_len, PyObject *v) {
  PyTypeObject *t = Py_TYPE(v);
  if (t == &PyUnicode_Type) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(v, &n);
    if (!u) return -1;
    return spk_msg_op_raw(b, op, SPK_PARTICLE_STRING, name, (size_t)name_len, u,
                          (size_t)n) ? oom() : 0;
  }
  if (t == &PyLong_Type) {
    int64_t x;
    if (int_value(v, &x, "bin", name)) return -1;
    return spk_msg_op_int(b, op, name, (size_t)name_len, x) ? oom() : 0;
  }
  if (t == &PyFloat_Type)
    return spk_msg_op_float(b, op, name, (size_t)name_len, PyFloat_AS_DOUBLE(v))
               ? oom() : 0;
  if (t == &PyBool_Type)
    return spk_msg_op_bool(b, op, name, (size_t)name_len, v == Py_True) ? oom() : 0;
  if (v == Py_None)
    return spk_msg_op_raw(b, op, SPK_PARTICLE_NULL, name, (size_t)name_len, NULL, 0)
               ? oom() : 0;
  if (t == &PyBytes_Type)
    return spk_msg_op_raw(b, op, SPK_PARTICLE_BLOB, name, (size_t)name_len,
                          PyBytes_AS_STRING(v), (size_t)PyBytes_GET_SIZE(v))
               ? oom() : 0;
  if (PyByteArray_Check(v) || PyMemoryView_Check(v)) {
    Py_buffer view;
    if (PyObject_GetBuffer(v, &view, PyBUF_CONTIG_RO) != 0) return -1;
    int rc = spk_msg_op_raw(b, op, SPK_PARTICLE_BLOB, name, (size_t)name_len,
                            view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return rc ? oom() : 0;
  }
  if (PyList_Check(v) || PyTuple_Check(v) || PyDict_Check(v)) {
    uint8_t pt = PyDict_Check(v) ? SPK_PARTICLE_MAP : SPK_PARTICLE_LIST;
    size_t off = spk_msg_op_begin(b, op, pt, name, (size_t)name_len);
    if (off == (size_t)-1) return oom();
    if (spkpy_pack(st, b, v, 0) != 0) return -1;
    spk_msg_op_end(b, off);
    return 0;
  }
  if (is_geojson(st, v)) {
    PyObject *hold;
    Py_ssize_t n;
    const char *json = geojson_text(v, &n, &hold);
    if (!json) {
      Py_XDECREF(hold);
      return -1;
    }
    size_t off = spk_msg_op_begin(b, op, SPK_PARTICLE_GEOJSON, name, (size_t)name_len);
    uint8_t *p = off == (size_t)-1 ? NULL : spk_buf_extend(b, 3 + (size_t)n);
    if (!p) {
      Py_DECREF(hold);
      return oom();
    }
    p[0] = 0; /* flags */
    p[1] = p[2] = 0; /* ncells: the server computes cells */
    memcpy(p + 3, json, (size_t)n);
    Py_DECREF(hold);
    spk_msg_op_end(b, off);
    return 0;
  }
  if (PyLong_Check(v)) { /* int subclasses (IntEnum ...) */
    int64_t x;
    if (int_value(v, &x, "bin", name)) return -1;
    return spk_msg_op_int(b, op, name, (size_t)name_len, x) ? oom() : 0;
  }
  if (PyUnicode_Check(v)) {
    Py_ssize_t n;
    const char *u = PyUnicode_AsUTF8AndSize(v, &n);
    if (!u) return -1;
    return spk_msg_op_raw(b, op, SPK_PARTICLE_STRING, name, (size_t)name_len, u,
                          (size_t)n) ? oom() : 0;
  }
  if (PyFloat_Check(v))
    return spk_msg_op_float(b, op, name, (size_t)name_len, PyFloat_AS_DOUBLE(v))
               ? oom() : 0;
  (void)name_len; /* name is NUL-terminated UTF-8 (PyErr_Format has no %.*s) */
  PyErr_Format(PyExc_TypeError,
               "bin '%s' has a value of unsupported type %.100s (supported: "
               "str, int, float, bool, bytes, list, dict, GeoJSON, None)",
               name, t->tp_name);
  return -1;
}

static int pack_bytes_like(spk_buf *b, PyObject *v) {
  Py_buffer view;
  if (PyObject_GetBuffer(v, &view, PyBUF_CONTIG_RO) != 0) return -1;
  if ((size_t)view.len >= UINT32_MAX) {
    PyBuffer_Release(&view);
    PyErr_SetString(PyExc_ValueError, "bytes value too large");
    return -1;
  }
  int rc = spk_mp_pack_particle_str(b, SPK_PARTICLE_BLOB, view.buf,
                                    (uint32_t)view.len);
  PyBuffer_Release(&view);
  return rc ? oom() : 0;
}

static int pack_str(spk_buf *b, PyObject *v) {
  Py_ssize_t n;
  const char *u = PyUnicode_AsUTF8AndSize(v, &n);
  if (!u) return -1;
  if ((size_t)n >= UINT32_MAX) {
    PyErr_SetString(PyExc_ValueError, "string value too large");
    return -1;
  }
  return spk_mp_pack_particle_str(b, SPK_PARTICLE_STRING, u, (uint32_t)n) ? oom() : 0;
}

/*
 * Containers are read item by item, each under its own critical section and
 * with a strong reference, because on free-threaded builds a nested critical
 * section may briefly release an outer one: another thread can then mutate
 * the container.  That is the caller's race, but it must end in an
 * exception, never a crash, so sizes are re-checked.
 */
static int changed_error(const char *what) {
  PyErr_Format(PyExc_RuntimeError, "%s changed size while it was being encoded",
               what);
  return -1;
}

static int pack_seq(spkpy_state *st, spk_buf *b, PyObject *v, int depth) {
  if (PyTuple_Check(v)) {
    Py_ssize_t n = PyTuple_GET_SIZE(v);
    if (spk_mp_pack_array_header(b, (uint32_t)n)) return oom();
    for (Py_ssize_t i = 0; i < n; i++)
      if (spkpy_pack(st, b, PyTuple_GET_ITEM(v, i), depth + 1)) return -1;
    return 0;
  }
  Py_ssize_t n = PyList_GET_SIZE(v);
  if ((size_t)n > UINT32_MAX) {
    PyErr_SetString(PyExc_ValueError, "list too long");
    return -1;
  }
  if (spk_mp_pack_array_header(b, (uint32_t)n)) return oom();
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *item = NULL;
    Py_BEGIN_CRITICAL_SECTION(v);
    if (i < PyList_GET_SIZE(v)) item = Py_NewRef(PyList_GET_ITEM(v, i));
    Py_END_CRITICAL_SECTION();
    if (!item) return changed_error("list");
    int rc = spkpy_pack(st, b, item, depth + 1);
    Py_DECREF(item);
    if (rc) return -1;
  }
  if (PyList_GET_SIZE(v) != n) return changed_error("list");
  return 0;
}

int spkpy_dict_next(PyObject *d, Py_ssize_t *pos, PyObject **key, PyObject **value) {
  int more;
  Py_BEGIN_CRITICAL_SECTION(d);
  more = PyDict_Next(d, pos, key, value);
  if (more) {
    Py_INCREF(*key);
    Py_INCREF(*value);
  }
  Py_END_CRITICAL_SECTION();
  return more;
}

static int pack_dict(spkpy_state *st, spk_buf *b, PyObject *v, int depth) {
  Py_ssize_t n = PyDict_GET_SIZE(v), pos = 0, seen = 0;
  PyObject *key, *val;
  if (spk_mp_pack_map_header(b, (uint32_t)n)) return oom();
  while (spkpy_dict_next(v, &pos, &key, &val)) {
    int rc = ++seen > n ? changed_error("dict") : spkpy_pack(st, b, key, depth + 1);
    if (rc == 0) rc = spkpy_pack(st, b, val, depth + 1);
    Py_DECREF(key);
    Py_DECREF(val);
    if (rc) return -1;
  }
  if (seen != n) return changed_error("dict");
  return 0;
}

int spkpy_pack(spkpy_state *st, spk_buf *b, PyObject *v, int depth) {
  if (SPK_UNLIKELY(depth > SPKPY_MAX_DEPTH)) {
    PyErr_Format(PyExc_ValueError,
                 "value nested more than %d levels deep (cyclic list or dict?)",
                 SPKPY_MAX_DEPTH);
    return -1;
  }
  PyTypeObject *t = Py_TYPE(v);
  if (t == &PyUnicode_Type) return pack_str(b, v);
  if (t == &PyLong_Type) {
    int overflow = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (x == -1 && PyErr_Occurred()) return -1;
    if (overflow > 0) {
      unsigned long long u = PyLong_AsUnsignedLongLong(v);
      if (u == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError,
                        "integer in a list or map does not fit in 64 bits");
        return -1;
      }
      return spk_mp_pack_uint(b, u) ? oom() : 0;
    }
    if (overflow < 0) {
      PyErr_SetString(PyExc_ValueError,
                      "integer in a list or map does not fit in 64 bits");
      return -1;
    }
    return spk_mp_pack_int(b, x) ? oom() : 0;
  }
  if (t == &PyFloat_Type) return spk_mp_pack_double(b, PyFloat_AS_DOUBLE(v)) ? oom() : 0;
  if (t == &PyBool_Type) return spk_mp_pack_bool(b, v == Py_True) ? oom() : 0;
  if (v == Py_None) return spk_mp_pack_nil(b) ? oom() : 0;
  if (t == &PyList_Type || t == &PyTuple_Type) return pack_seq(st, b, v, depth);
  if (t == &PyDict_Type) return pack_dict(st, b, v, depth);
  if (t == &PyBytes_Type || PyByteArray_Check(v) || PyMemoryView_Check(v))
    return pack_bytes_like(b, v);
  if (is_geojson(st, v)) {
    PyObject *hold;
    Py_ssize_t n;
    const char *json = geojson_text(v, &n, &hold);
    int rc = json ? (spk_mp_pack_particle_str(b, SPK_PARTICLE_GEOJSON, json,
                                               (uint32_t)n) ? oom() : 0)
                  : -1;
    Py_XDECREF(hold);
    return rc;
  }
  /* Subclasses of the basic types (IntEnum, str enums, OrderedDict ...). */
  if (PyBool_Check(v)) return spk_mp_pack_bool(b, v == Py_True) ? oom() : 0;
  if (PyLong_Check(v)) {
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred()) {
      PyErr_SetString(PyExc_ValueError, "integer in a list or map does not fit in 64 bits");
      return -1;
    }
    return spk_mp_pack_int(b, x) ? oom() : 0;
  }
  if (PyUnicode_Check(v)) return pack_str(b, v);
  if (PyFloat_Check(v)) return spk_mp_pack_double(b, PyFloat_AS_DOUBLE(v)) ? oom() : 0;
  if (PyList_Check(v) || PyTuple_Check(v)) return pack_seq(st, b, v, depth);
  if (PyDict_Check(v)) return pack_dict(st, b, v, depth);
  PyErr_Format(PyExc_TypeError,
               "unsupported type %.100s inside a list or map (supported: str, "
               "int, float, bool, bytes, list, tuple, dict, GeoJSON, None)",
               t->tp_name);
  return -1;
}
