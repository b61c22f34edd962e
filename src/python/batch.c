/*
 * batch.c - batch calls: many keys, one crossing into C.
 *
 * _batch(rows) takes [(kind, key, arg, opts), ...] (the same row shape as
 * _execute), encodes every row body once, runs the batch job (per-node
 * batch-index commands, retry rounds) with the GIL released, then decodes
 * each answered row straight into a RecordResult, in input order.
 */
#include <stdlib.h>

#include "cmd/spk_batch.h"
#include "spkpy.h"

int spkpy_bjob_build(spkpy_state *st, spkpy_Session *s, PyObject *rows_obj,
                     spkpy_bjob *bj) {
  memset(bj, 0, sizeof *bj);
  if (!s->cluster || !s->cluster->cluster) {
    PyErr_SetString(PyExc_RuntimeError, "session is not initialised");
    return -1;
  }
  PyObject *seq = PySequence_Fast(rows_obj, "batch rows must be a list");
  if (!seq) return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n == 0 || n > 10000000) {
    Py_DECREF(seq);
    PyErr_SetString(PyExc_ValueError, "a batch needs 1 to 10,000,000 keys");
    return -1;
  }
  bj->rows = PyMem_Calloc((size_t)n, sizeof *bj->rows);
  bj->reqs = PyMem_Calloc((size_t)n, sizeof *bj->reqs);
  if (!bj->rows || !bj->reqs) {
    Py_DECREF(seq);
    PyErr_NoMemory();
    return -1;
  }
  bj->n = n;
  spk_buf *b = &bj->job.rows_buf;
  bool any_write = false;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *t = PySequence_Fast_GET_ITEM(seq, i);
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != 4) {
      PyErr_Format(PyExc_TypeError, "batch row %zd must be (kind, key, arg, opts)", i);
      goto fail;
    }
    PyObject *args[4] = {PyTuple_GET_ITEM(t, 0), PyTuple_GET_ITEM(t, 1),
                         PyTuple_GET_ITEM(t, 2), PyTuple_GET_ITEM(t, 3)};
    spkpy_kind kind;
    spkpy_opts opts;
    if (spkpy_parse_execute(args, 4, &kind, &opts)) goto fail;
    if (!spkpy_is_key(st, args[1])) {
      PyErr_Format(PyExc_TypeError, "batch row %zd: key must be a cspike.Key, not %.100s",
                   i, Py_TYPE(args[1])->tp_name);
      goto fail;
    }
    spkpy_Key *k = (spkpy_Key *)args[1];
    spkpy_req *req = &bj->reqs[i];
    req->kind = kind;
    req->key = (spkpy_Key *)Py_NewRef((PyObject *)k);
    spkpy_attrs a;
    if (spkpy_attrs_for(st, s, kind, args[2], &opts, true, &a, req)) goto fail;
    uint8_t flags = SPK_BROW_EXTRA_INFO | SPK_BROW_RECORD_TTL |
                    (req->is_write ? SPK_BROW_GENERATION : 0);
    size_t off = spk_batch_row_begin(b, flags, a.info1, a.info2, a.info3,
                                     (uint16_t)a.generation, a.ttl);
    if (off == (size_t)-1) goto oom;
    bool send_key = req->is_write && a.p->send_key && k->key_type != 0;
    int nf = 2;
    if (spk_msg_field(b, SPK_FIELD_NAMESPACE, k->ns, k->ns_len) ||
        spk_msg_field(b, SPK_FIELD_SETNAME, k->set, k->set_len))
      goto oom;
    if (opts.filter) {
      if (spk_msg_field(b, SPK_FIELD_FILTER, PyBytes_AS_STRING(opts.filter),
                        (size_t)PyBytes_GET_SIZE(opts.filter)))
        goto oom;
      nf++;
    }
    if (send_key) {
      /* The KEY field goes last; rows carrying it may not be repeated. */
      spk_buf tmp = {0};
      int kf = spkpy_write_key_fields(&tmp, k, true);
      if (kf < 0) {
        spk_buf_free(&tmp);
        goto fail;
      }
      /* tmp holds ns, set, digest, key: keep only the key field. */
      size_t skip = (5 + k->ns_len) + (5 + k->set_len) + (5 + SPK_DIGEST_SIZE);
      if (spk_buf_append(b, tmp.data + skip, tmp.len - skip)) {
        spk_buf_free(&tmp);
        goto oom;
      }
      spk_buf_free(&tmp);
      nf++;
    }
    int nops = spkpy_write_ops(st, b, kind, args[2], &opts, req);
    if (nops < 0) goto fail;
    spk_batch_row_end(b, off, (uint16_t)nf, (uint16_t)nops);
    spk_batch_row *r = &bj->rows[i];
    memcpy(r->digest, k->digest, SPK_DIGEST_SIZE);
    r->ns = k->ns;
    r->ns_len = k->ns_len;
    r->pid = spk_partition_id(k->digest);
    r->is_write = req->is_write;
    r->repeatable = !send_key;
    if (b->len - off > UINT32_MAX || off > UINT32_MAX) {
      PyErr_SetString(PyExc_ValueError, "batch request too large");
      goto fail;
    }
    r->body_off = (uint32_t)off;
    r->body_len = (uint32_t)(b->len - off);
    if (req->is_write) any_write = true;
  }
  Py_DECREF(seq);
  bj->policy = &s->pol[any_write ? SPKPY_POL_WRITE_BATCH : SPKPY_POL_READ_BATCH];
  {
    spk_buf keep = bj->job.rows_buf;
    spk_batch_init(&bj->job, s->cluster->cluster, bj->policy, bj->rows, (uint32_t)n);
    bj->job.rows_buf = keep;
  }
  return 0;
oom:
  PyErr_NoMemory();
fail:
  Py_DECREF(seq);
  return -1;
}

void spkpy_bjob_free(spkpy_bjob *bj) {
  for (Py_ssize_t i = 0; i < bj->n; i++) spkpy_req_clear(&bj->reqs[i]);
  PyMem_Free(bj->reqs);
  PyMem_Free(bj->rows);
  spk_batch_destroy(&bj->job);
  memset(bj, 0, sizeof *bj);
}

static PyObject *row_result(spkpy_state *st, spkpy_bjob *bj, Py_ssize_t i) {
  spk_batch_row *r = &bj->rows[i];
  spkpy_req *req = &bj->reqs[i];
  PyObject *key = (PyObject *)req->key;
  if (r->result != 0) {
    const char *msg = r->result == bj->job.err.code && bj->job.err.message[0]
                          ? bj->job.err.message
                          : spk_result_message(r->result);
    return spkpy_result_new(st, key, NULL, r->result, r->in_doubt, i, msg);
  }
  PyObject *record = NULL;
  if (req->kind == SPKPY_K_GET || req->kind == SPKPY_K_EXISTS || req->kind == SPKPY_K_OPERATE) {
    spk_msg_view v;
    if (spk_batch_row_msg(&bj->job, r, &v) != 0) {
      spkpy_raise_code(st, SPK_ERR_PROTOCOL, "malformed batch row");
      return NULL;
    }
    if (req->kind == SPKPY_K_OPERATE) {
      record = spkpy_finish_operate(st, req, &v);
    } else {
      PyObject *bins = spkpy_decode_bins(st, &v);
      record = bins ? spkpy_record_new(st, key, bins, NULL, v.h.generation, v.h.record_ttl)
                    : NULL;
    }
    if (!record) return NULL;
  }
  return spkpy_result_new(st, key, record, 0, false, i, NULL);
}

PyObject *spkpy_bjob_results(spkpy_state *st, spkpy_bjob *bj) {
  PyObject *out = PyList_New(bj->n);
  if (!out) return NULL;
  for (Py_ssize_t i = 0; i < bj->n; i++) {
    PyObject *r = row_result(st, bj, i);
    if (!r) {
      Py_DECREF(out);
      return NULL;
    }
    PyList_SET_ITEM(out, i, r);
  }
  return out;
}

PyObject *spkpy_session_batch(PyObject *self, PyTypeObject *defining, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames) {
  spkpy_state *st = spkpy_state_of_type(defining);
  if (nargs != 1 || kwnames)
    return PyErr_Format(PyExc_TypeError, "_batch(rows) takes one list");
  spkpy_bjob bj;
  if (spkpy_bjob_build(st, (spkpy_Session *)self, args[0], &bj) != 0) {
    spkpy_bjob_free(&bj);
    return NULL;
  }
  Py_BEGIN_ALLOW_THREADS
  spk_sync_batch(&bj.job); /* every row ends answered, errors included */
  Py_END_ALLOW_THREADS
  PyObject *res = spkpy_bjob_results(st, &bj);
  spkpy_bjob_free(&bj);
  return res;
}
