/*
 * decode.c - wire bytes straight to Python objects: particles, msgpack
 * lists/maps (Aerospike conventions), and the bins of a response.
 *
 * Anything the server sends is untrusted: lengths come checked from the
 * codec, and malformed values raise cspike's ProtocolError-class exception
 * rather than crash.
 */
#include "spkpy.h"

#define SPKPY_MAX_DEPTH 128

static PyObject *protocol_error(spkpy_state *st, const char *what) {
  spkpy_raise_code(st, SPK_ERR_PROTOCOL, "malformed %s in server response", what);
  return NULL;
}

static PyObject *make_geojson(spkpy_state *st, const char *p, Py_ssize_t n) {
  PyObject *s = PyUnicode_DecodeUTF8(p, n, "surrogateescape");
  if (!s || !st->geojson_type) return s;
  PyObject *g = PyObject_CallOneArg(st->geojson_type, s);
  Py_DECREF(s);
  return g;
}

/* An Aerospike-convention string inside msgpack: type byte + payload. */
static PyObject *particle_str(spkpy_state *st, const spk_mp_item *it) {
  uint8_t pt;
  const uint8_t *d;
  uint32_t n;
  if (it->v.s.len == 0) {
    /* An empty msgpack str has no type byte: treat as empty text. */
    return it->type == SPK_MP_STR ? PyUnicode_FromStringAndSize("", 0)
                                  : PyBytes_FromStringAndSize("", 0);
  }
  if (spk_mp_particle_str(it, &pt, &d, &n) != 0) return protocol_error(st, "string");
  switch (pt) {
    case SPK_PARTICLE_STRING:
      return PyUnicode_DecodeUTF8((const char *)d, (Py_ssize_t)n, "surrogateescape");
    case SPK_PARTICLE_GEOJSON:
      return make_geojson(st, (const char *)d, (Py_ssize_t)n);
    default: /* BLOB and the language blobs (7..12): raw bytes */
      return PyBytes_FromStringAndSize((const char *)d, (Py_ssize_t)n);
  }
}

static PyObject *unpack_map(spkpy_state *st, spk_mp_reader *r, uint32_t n,
                            int depth) {
  PyObject *d = PyDict_New();
  if (!d) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    /* An ordered map starts with an (ext, nil) pair carrying its flags. */
    if (i == 0 && r->p < r->end && (*r->p == 0xc7 || (*r->p >= 0xd4 && *r->p <= 0xd8))) {
      spk_mp_reader peek = *r;
      spk_mp_item it;
      if (spk_mp_next(&peek, &it) == 0 && it.type == SPK_MP_EXT) {
        *r = peek;
        if (spk_mp_skip(r) != 0) goto bad;
        continue;
      }
    }
    PyObject *k = spkpy_unpack(st, r, depth + 1);
    if (!k) goto fail;
    PyObject *v = spkpy_unpack(st, r, depth + 1);
    if (!v) {
      Py_DECREF(k);
      goto fail;
    }
    if (PyList_Check(k)) { /* list keys: keep them hashable */
      PyObject *t = PyList_AsTuple(k);
      Py_DECREF(k);
      k = t;
      if (!k) {
        Py_DECREF(v);
        goto fail;
      }
    }
    int rc = PyDict_SetItem(d, k, v);
    Py_DECREF(k);
    Py_DECREF(v);
    if (rc < 0) goto fail;
  }
  return d;
bad:
  protocol_error(st, "map");
fail:
  Py_DECREF(d);
  return NULL;
}

static PyObject *unpack_list(spkpy_state *st, spk_mp_reader *r, uint32_t n,
                             int depth) {
  /* A leading ext element carries list flags (ordered): not a value. */
  if (n > 0 && r->p < r->end && (*r->p == 0xc7 || (*r->p >= 0xd4 && *r->p <= 0xd8))) {
    spk_mp_reader peek = *r;
    spk_mp_item it;
    if (spk_mp_next(&peek, &it) == 0 && it.type == SPK_MP_EXT) {
      *r = peek;
      n--;
    }
  }
  if ((size_t)n > (size_t)(r->end - r->p)) return protocol_error(st, "list");
  PyObject *l = PyList_New((Py_ssize_t)n);
  if (!l) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    PyObject *v = spkpy_unpack(st, r, depth + 1);
    if (!v) {
      Py_DECREF(l);
      return NULL;
    }
    PyList_SET_ITEM(l, i, v);
  }
  return l;
}

PyObject *spkpy_unpack(spkpy_state *st, spk_mp_reader *r, int depth) {
  if (depth > SPKPY_MAX_DEPTH) return protocol_error(st, "deeply nested value");
  spk_mp_item it;
  if (spk_mp_next(r, &it) != 0) return protocol_error(st, "msgpack value");
  switch (it.type) {
    case SPK_MP_NIL:
      Py_RETURN_NONE;
    case SPK_MP_BOOL:
      return PyBool_FromLong(it.v.b);
    case SPK_MP_INT:
      return PyLong_FromLongLong(it.v.i);
    case SPK_MP_UINT:
      return PyLong_FromUnsignedLongLong(it.v.u);
    case SPK_MP_FLOAT:
    case SPK_MP_DOUBLE:
      return PyFloat_FromDouble(it.v.d);
    case SPK_MP_STR:
    case SPK_MP_BIN:
      return particle_str(st, &it);
    case SPK_MP_ARRAY:
      return unpack_list(st, r, it.v.n, depth);
    case SPK_MP_MAP:
      if ((size_t)it.v.n > (size_t)(r->end - r->p)) return protocol_error(st, "map");
      return unpack_map(st, r, it.v.n, depth);
    case SPK_MP_EXT:
      /* Wildcard / infinity markers and other exts: opaque bytes. */
      return PyBytes_FromStringAndSize((const char *)it.v.s.p, it.v.s.len);
  }
  return protocol_error(st, "msgpack value");
}

PyObject *spkpy_decode_particle(spkpy_state *st, uint8_t type, const uint8_t *p,
                                uint32_t len) {
  switch (type) {
    case SPK_PARTICLE_NULL:
      Py_RETURN_NONE;
    case SPK_PARTICLE_INTEGER: {
      int64_t v;
      if (spk_particle_int(p, len, &v) != 0) return protocol_error(st, "integer");
      return PyLong_FromLongLong(v);
    }
    case SPK_PARTICLE_FLOAT: {
      double d;
      if (spk_particle_float(p, len, &d) != 0) return protocol_error(st, "float");
      return PyFloat_FromDouble(d);
    }
    case SPK_PARTICLE_STRING:
      return PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)len, "surrogateescape");
    case SPK_PARTICLE_BOOL: {
      bool b;
      if (spk_particle_bool(p, len, &b) != 0) return protocol_error(st, "bool");
      return PyBool_FromLong(b);
    }
    case SPK_PARTICLE_LIST:
    case SPK_PARTICLE_MAP: {
      spk_mp_reader r;
      spk_mp_reader_init(&r, p, len);
      PyObject *v = spkpy_unpack(st, &r, 0);
      if (v && r.p != r.end) {
        Py_DECREF(v);
        return protocol_error(st, "list/map (trailing bytes)");
      }
      return v;
    }
    case SPK_PARTICLE_GEOJSON: {
      const char *json;
      uint32_t n;
      if (spk_particle_geojson(p, len, &json, &n) != 0) return protocol_error(st, "GeoJSON");
      return make_geojson(st, json, (Py_ssize_t)n);
    }
    default:
      /* BLOB, language blobs, HLL, vectors: the raw bytes. */
      return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)len);
  }
}

PyObject *spkpy_decode_bins(spkpy_state *st, const spk_msg_view *v) {
  PyObject *bins = PyDict_New();
  if (!bins) return NULL;
  spk_msg_iter it = spk_msg_ops(v);
  spk_op_view op;
  while (spk_msg_next_op(&it, &op)) {
    PyObject *name = PyUnicode_DecodeUTF8(op.name, op.name_len, "surrogateescape");
    if (!name) goto fail;
    PyObject *val = spkpy_decode_particle(st, op.particle, op.value, op.value_len);
    if (!val) {
      Py_DECREF(name);
      goto fail;
    }
    int rc = PyDict_SetItem(bins, name, val);
    Py_DECREF(name);
    Py_DECREF(val);
    if (rc < 0) goto fail;
  }
  return bins;
fail:
  Py_DECREF(bins);
  return NULL;
}
