/*
 * cluster.c - cspike._core.Cluster: one connected cluster (seeds, tend
 * thread, partition map, connection pools).  Created connected; close() is
 * idempotent and safe while other threads run commands on it (they get
 * ClientClosedError).
 */
#include <stddef.h>

#include "spkpy.h"

static int cfg_u32(PyObject *kw, const char *name, uint32_t *out) {
  PyObject *v = kw ? PyDict_GetItemString(kw, name) : NULL;
  if (!v) return 0;
  unsigned long x = PyLong_AsUnsignedLong(v);
  if (x == (unsigned long)-1 && PyErr_Occurred()) {
    PyErr_Format(PyExc_ValueError, "%s must be a non-negative int", name);
    return -1;
  }
  if (x > UINT32_MAX) {
    PyErr_Format(PyExc_ValueError, "%s is too large", name);
    return -1;
  }
  *out = (uint32_t)x;
  return 0;
}

static int cfg_bool(PyObject *kw, const char *name, bool *out) {
  PyObject *v = kw ? PyDict_GetItemString(kw, name) : NULL;
  if (!v) return 0;
  int t = PyObject_IsTrue(v);
  if (t < 0) return -1;
  *out = t;
  return 0;
}

static int parse_seeds(PyObject *seeds, spk_host **out, uint32_t *n_out) {
  PyObject *seq = PySequence_Fast(seeds, "seeds must be a sequence of (host, port)");
  if (!seq) return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n == 0 || n > 1024) {
    Py_DECREF(seq);
    PyErr_SetString(PyExc_ValueError, "seeds must hold 1 to 1024 hosts");
    return -1;
  }
  spk_host *hosts = PyMem_Calloc((size_t)n, sizeof *hosts);
  if (!hosts) {
    Py_DECREF(seq);
    PyErr_NoMemory();
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
    const char *host;
    int port;
    if (!PyArg_ParseTuple(item, "si;each seed must be a (host, port) tuple", &host,
                          &port))
      goto fail;
    if (port <= 0 || port > 65535) {
      PyErr_Format(PyExc_ValueError, "seed port %d is out of range", port);
      goto fail;
    }
    if (strlen(host) == 0 || strlen(host) >= SPK_HOST_NAME_MAX) {
      PyErr_Format(PyExc_ValueError, "seed host name '%s' is invalid", host);
      goto fail;
    }
    snprintf(hosts[i].name, sizeof hosts[i].name, "%s", host);
    hosts[i].port = (uint16_t)port;
  }
  Py_DECREF(seq);
  *out = hosts;
  *n_out = (uint32_t)n;
  return 0;
fail:
  Py_DECREF(seq);
  PyMem_Free(hosts);
  return -1;
}

static PyObject *Cluster_new(PyTypeObject *type, PyObject *args, PyObject *kw) {
  PyObject *seeds;
  if (!PyArg_ParseTuple(args, "O:Cluster", &seeds)) return NULL;
  spkpy_state *st = spkpy_state_of_type(type);
  spk_cluster_config cfg;
  spk_cluster_config_init(&cfg);
  PyObject *name = kw ? PyDict_GetItemString(kw, "cluster_name") : NULL;
  if (name && name != Py_None) {
    const char *s = PyUnicode_AsUTF8(name);
    if (!s) return NULL;
    if (strlen(s) >= sizeof cfg.cluster_name)
      return PyErr_Format(PyExc_ValueError, "cluster_name is too long");
    snprintf(cfg.cluster_name, sizeof cfg.cluster_name, "%s", s);
  }
  if (cfg_u32(kw, "conn_timeout_ms", &cfg.conn_timeout_ms) ||
      cfg_u32(kw, "tend_interval_ms", &cfg.tend_interval_ms) ||
      cfg_u32(kw, "max_conns_per_node", &cfg.max_conns_per_node) ||
      cfg_u32(kw, "min_conns_per_node", &cfg.min_conns_per_node) ||
      cfg_u32(kw, "max_socket_idle_ms", &cfg.max_socket_idle_ms) ||
      cfg_u32(kw, "max_error_rate", &cfg.max_error_rate) ||
      cfg_u32(kw, "error_rate_window", &cfg.error_rate_window) ||
      cfg_bool(kw, "fail_if_not_connected", &cfg.fail_if_not_connected) ||
      cfg_bool(kw, "use_services_alternate", &cfg.use_services_alternate))
    return NULL;
  if (cfg.tend_interval_ms < 10) cfg.tend_interval_ms = 10;
  if (cfg.conn_timeout_ms == 0) cfg.conn_timeout_ms = 1000;
  spk_host *hosts;
  if (parse_seeds(seeds, &hosts, &cfg.n_seeds) != 0) return NULL;
  cfg.seeds = hosts;

  spk_cluster *c = NULL;
  spk_error err;
  spk_error_reset(&err);
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = spk_cluster_create(&cfg, &c, &err);
  Py_END_ALLOW_THREADS
  PyMem_Free(hosts);
  if (rc != 0) return spkpy_raise(st, &err);
  spkpy_Cluster *self = (spkpy_Cluster *)type->tp_alloc(type, 0);
  if (!self) {
    spk_cluster_free(c);
    return NULL;
  }
  self->cluster = c;
  return (PyObject *)self;
}

static int Cluster_traverse(spkpy_Cluster *self, visitproc visit, void *arg) {
  Py_VISIT(Py_TYPE(self));
  return 0;
}

static void Cluster_dealloc(spkpy_Cluster *self) {
  PyTypeObject *tp = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  if (self->weakreflist) PyObject_ClearWeakRefs((PyObject *)self);
  if (self->cluster) {
    spk_cluster *c = self->cluster;
    self->cluster = NULL;
    Py_BEGIN_ALLOW_THREADS
    spk_cluster_free(c);
    Py_END_ALLOW_THREADS
  }
  tp->tp_free(self);
  Py_DECREF(tp);
}

static PyObject *Cluster_close(spkpy_Cluster *self, PyObject *unused) {
  (void)unused;
  if (self->cluster) {
    Py_BEGIN_ALLOW_THREADS
    spk_cluster_close(self->cluster);
    Py_END_ALLOW_THREADS
  }
  Py_RETURN_NONE;
}

static PyObject *Cluster_is_connected(spkpy_Cluster *self, void *c) {
  (void)c;
  return PyBool_FromLong(self->cluster && spk_cluster_is_connected(self->cluster));
}

static PyObject *Cluster_is_closed(spkpy_Cluster *self, void *c) {
  (void)c;
  return PyBool_FromLong(!self->cluster || spk_cluster_is_closed(self->cluster));
}

static PyObject *Cluster_tend_count(spkpy_Cluster *self, void *c) {
  (void)c;
  return PyLong_FromUnsignedLongLong(spk_cluster_tend_count(self->cluster));
}

/* [(name, host, port), ...] of the active nodes. */
static PyObject *Cluster_nodes(spkpy_Cluster *self, PyObject *unused) {
  (void)unused;
  PyObject *out = PyList_New(0);
  if (!out) return NULL;
  const spk_pmap *m = spk_cluster_pmap(self->cluster);
  for (uint32_t i = 0; m && i < m->n_nodes; i++) {
    spk_node *n = m->nodes[i];
    if (!atomic_load(&n->active)) continue;
    PyObject *t = Py_BuildValue("(ssi)", n->name, n->host, (int)n->port);
    if (!t || PyList_Append(out, t) < 0) {
      Py_XDECREF(t);
      Py_DECREF(out);
      out = NULL;
      break;
    }
    Py_DECREF(t);
  }
  spk_cluster_unpin();
  return out;
}

/* route(namespace, partition_id, replica_index=0) -> node name or None. */
static PyObject *Cluster_route(spkpy_Cluster *self, PyObject *args) {
  const char *ns;
  Py_ssize_t ns_len;
  unsigned int pid, index = 0;
  if (!PyArg_ParseTuple(args, "s#I|I:route", &ns, &ns_len, &pid, &index)) return NULL;
  if (pid >= SPK_N_PARTITIONS) return PyErr_Format(PyExc_ValueError, "bad partition id");
  const spk_pmap *m = spk_cluster_pmap(self->cluster);
  const spk_ns_map *t = m ? spk_pmap_ns(m, ns, (size_t)ns_len) : NULL;
  PyObject *r = NULL;
  if (t && index < SPK_MAX_REPLICAS && t->nodes[pid][index])
    r = PyUnicode_FromString(t->nodes[pid][index]->name);
  spk_cluster_unpin();
  if (r || PyErr_Occurred()) return r;
  Py_RETURN_NONE;
}

/*
 * info(commands, node=None, timeout_ms=1000) -> str: the raw response body
 * ("name\tvalue\n" lines) from one node (round robin when node is None).
 */
static PyObject *Cluster_info(PyObject *self_obj, PyTypeObject *defining,
                              PyObject *const *args, Py_ssize_t nargs,
                              PyObject *kwnames) {
  spkpy_Cluster *self = (spkpy_Cluster *)self_obj;
  spkpy_state *st = spkpy_state_of_type(defining);
  static const char *const names[] = {"commands", "node", "timeout_ms"};
  PyObject *vals[3] = {NULL, Py_None, NULL};
  if (spkpy_parse_args("info", args, nargs, kwnames, names, 1, 3, vals) != 0)
    return NULL;
  PyObject *cmds_obj = vals[0], *node_obj = vals[1];
  unsigned int timeout_ms = 1000;
  if (vals[2]) {
    timeout_ms = (unsigned)PyLong_AsUnsignedLong(vals[2]);
    if (PyErr_Occurred()) return NULL;
  }
  const char *text;
  Py_ssize_t text_len;
  if (!(text = PyUnicode_AsUTF8AndSize(cmds_obj, &text_len))) return NULL;

  spk_buf tx = {0}, rx = {0};
  /* The request is the text as given, each command ending in '\n'. */
  uint8_t *hdr = spk_buf_extend(&tx, SPK_PROTO_HEADER_SIZE);
  if (!hdr || spk_buf_append(&tx, text, (size_t)text_len) != 0 ||
      (text_len && text[text_len - 1] != '\n' && spk_buf_append(&tx, "\n", 1) != 0)) {
    spk_buf_free(&tx);
    return PyErr_NoMemory();
  }
  spk_proto_write(tx.data, SPK_PROTO_INFO, tx.len - SPK_PROTO_HEADER_SIZE);

  spk_policy pol;
  spk_policy_init(&pol);
  pol.total_timeout_ms = timeout_ms;
  pol.socket_timeout_ms = timeout_ms;
  pol.max_retries = 0;
  spk_cmd cmd;
  spk_cmd_init(&cmd, self->cluster, &pol, SPK_CMD_INFO, &tx, &rx);

  const spk_pmap *m = spk_cluster_pmap(self->cluster);
  spk_node *target = NULL;
  if (node_obj == Py_None) {
    target = m ? spk_pmap_any_node(m) : NULL;
  } else {
    const char *want = PyUnicode_AsUTF8(node_obj);
    for (uint32_t i = 0; want && m && i < m->n_nodes; i++)
      if (strcmp(m->nodes[i]->name, want) == 0) target = m->nodes[i];
  }
  if (!target) {
    spk_cluster_unpin();
    spk_buf_free(&tx);
    if (PyErr_Occurred()) return NULL;
    return spkpy_raise_code(st, SPK_ERR_INVALID_NODE, "no such cluster node: %s",
                            node_obj == Py_None ? "(any)" : PyUnicode_AsUTF8(node_obj));
  }
  cmd.target = target; /* kept alive by our hazard until unpinned below */
  int rc = spkpy_execute(&cmd);
  spk_cluster_unpin();
  PyObject *result = NULL;
  if (rc != 0) spkpy_raise(st, &cmd.err);
  else result = PyUnicode_DecodeUTF8((const char *)cmd.body, (Py_ssize_t)cmd.body_len, "replace");
  spk_buf_free(&tx);
  spk_buf_free(&rx);
  return result;
}

static PyObject *Cluster_tend_now(spkpy_Cluster *self, PyObject *unused) {
  (void)unused;
  spk_cluster_tend_now(self->cluster);
  Py_RETURN_NONE;
}

static PyGetSetDef Cluster_getset[] = {
    {"is_connected", (getter)Cluster_is_connected, NULL, "at least one live node", NULL},
    {"is_closed", (getter)Cluster_is_closed, NULL, "close() was called", NULL},
    {"tend_count", (getter)Cluster_tend_count, NULL, "tend cycles completed", NULL},
    {NULL}};

static PyMethodDef Cluster_methods[] = {
    {"close", (PyCFunction)Cluster_close, METH_NOARGS, "close the cluster"},
    {"nodes", (PyCFunction)Cluster_nodes, METH_NOARGS, "[(name, host, port)]"},
    {"route", (PyCFunction)Cluster_route, METH_VARARGS,
     "route(namespace, partition_id, replica_index=0) -> node name or None"},
    {"info", (PyCFunction)(void (*)(void))Cluster_info,
     METH_METHOD | METH_FASTCALL | METH_KEYWORDS,
     "info(commands, node=None, timeout_ms=1000) -> raw response text"},
    {"tend_now", (PyCFunction)Cluster_tend_now, METH_NOARGS, "wake the tend thread"},
    {NULL}};

static PyMemberDef Cluster_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(spkpy_Cluster, weakreflist), READONLY},
    {NULL}};

static PyType_Slot Cluster_slots[] = {
    {Py_tp_doc, "Cluster(seeds, **config): a connected Aerospike cluster"},
    {Py_tp_new, Cluster_new},
    {Py_tp_dealloc, Cluster_dealloc},
    {Py_tp_traverse, Cluster_traverse},
    {Py_tp_getset, Cluster_getset},
    {Py_tp_methods, Cluster_methods},
    {Py_tp_members, Cluster_members},
    {0, NULL}};

static PyType_Spec Cluster_spec = {
    .name = "cspike._core.Cluster",
    .basicsize = sizeof(spkpy_Cluster),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = Cluster_slots,
};

int spkpy_cluster_init_types(PyObject *module, spkpy_state *st) {
  st->ClusterType =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &Cluster_spec, NULL);
  if (!st->ClusterType) return -1;
  return PyModule_AddType(module, st->ClusterType);
}
