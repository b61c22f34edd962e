/*
 * module.c - cspike._core: multi-phase init, module state, and the few
 * module-level functions (result-code table, registration hooks used by
 * the Python package).
 */
#include "spkpy.h"

static PyObject *result_table(PyObject *m, PyObject *unused) {
  (void)m;
  (void)unused;
  int n;
  const spk_result_info *t = spk_result_table(&n);
  PyObject *out = PyList_New(n);
  if (!out) return NULL;
  for (int i = 0; i < n; i++) {
    PyObject *row = Py_BuildValue("(issis)", t[i].code, t[i].name, t[i].pyclass,
                                  t[i].retryable, t[i].message);
    if (!row) {
      Py_DECREF(out);
      return NULL;
    }
    PyList_SET_ITEM(out, i, row);
  }
  return out;
}

/* Called once by cspike/exceptions.py at import. */
static PyObject *register_exceptions(PyObject *m, PyObject *args) {
  PyObject *by_code, *base;
  if (!PyArg_ParseTuple(args, "O!O:_register_exceptions", &PyDict_Type, &by_code, &base))
    return NULL;
  spkpy_state *st = PyModule_GetState(m);
  PyObject *copy = PyDict_Copy(by_code);
  if (!copy) return NULL;
  Py_XSETREF(st->exc_by_code, copy);
  Py_XSETREF(st->exc_base, Py_NewRef(base));
  Py_RETURN_NONE;
}

static PyObject *register_geojson(PyObject *m, PyObject *cls) {
  spkpy_state *st = PyModule_GetState(m);
  if (!PyType_Check(cls)) return PyErr_Format(PyExc_TypeError, "expected a class");
  Py_XSETREF(st->geojson_type, Py_NewRef(cls));
  Py_RETURN_NONE;
}

/* calc_digest(set_name, value) -> bytes: the record digest for a user key. */
static PyObject *calc_digest(PyObject *m, PyObject *args) {
  PyObject *set, *value;
  if (!PyArg_ParseTuple(args, "OO:calc_digest", &set, &value)) return NULL;
  spkpy_state *st = PyModule_GetState(m);
  PyObject *ns = PyUnicode_FromString("x");
  if (!ns) return NULL;
  PyObject *k = PyObject_CallFunctionObjArgs((PyObject *)st->KeyType, ns, set, value, NULL);
  Py_DECREF(ns);
  if (!k) return NULL;
  PyObject *d = PyBytes_FromStringAndSize((const char *)((spkpy_Key *)k)->digest,
                                          SPK_DIGEST_SIZE);
  Py_DECREF(k);
  return d;
}

static PyObject *ripemd160(PyObject *m, PyObject *arg) {
  (void)m;
  Py_buffer b;
  if (PyObject_GetBuffer(arg, &b, PyBUF_CONTIG_RO) != 0) return NULL;
  uint8_t out[SPK_DIGEST_SIZE];
  spk_ripemd160(b.buf, (size_t)b.len, out);
  PyBuffer_Release(&b);
  return PyBytes_FromStringAndSize((const char *)out, SPK_DIGEST_SIZE);
}

static PyMethodDef module_methods[] = {
    {"result_table", result_table, METH_NOARGS,
     "[(code, NAME, PyClass, retryable, message)]: the result-code table"},
    {"_register_exceptions", register_exceptions, METH_VARARGS, NULL},
    {"_register_geojson", register_geojson, METH_O, NULL},
    {"calc_digest", calc_digest, METH_VARARGS,
     "calc_digest(set_name, value) -> 20-byte digest"},
    {"ripemd160", ripemd160, METH_O, "ripemd160(data) -> 20-byte hash"},
    {NULL}};

static int module_exec(PyObject *m) {
  spkpy_state *st = PyModule_GetState(m);
  st->str_result_code = PyUnicode_InternFromString("result_code");
  st->str_in_doubt = PyUnicode_InternFromString("in_doubt");
  if (!st->str_result_code || !st->str_in_doubt) return -1;
  st->kwnames_exc = PyTuple_Pack(2, st->str_result_code, st->str_in_doubt);
  if (!st->kwnames_exc) return -1;
  if (spkpy_key_init_types(m, st) || spkpy_record_init_types(m, st) ||
      spkpy_result_init_types(m, st) ||
      spkpy_cluster_init_types(m, st) || spkpy_session_init_types(m, st) ||
      spkpy_aio_init_types(m, st) || spkpy_hist_init_types(m, st))
    return -1;
  if (PyModule_AddIntConstant(m, "N_PARTITIONS", SPK_N_PARTITIONS) ||
      PyModule_AddIntConstant(m, "BIN_NAME_MAX", SPK_BIN_NAME_MAX))
    return -1;
  return 0;
}

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
  spkpy_state *st = PyModule_GetState(m);
  Py_VISIT(st->KeyType);
  Py_VISIT(st->RecordType);
  Py_VISIT(st->RecordResultType);
  Py_VISIT(st->ClusterType);
  Py_VISIT(st->SessionType);
  Py_VISIT(st->LoopDriverType);
  Py_VISIT(st->exc_by_code);
  Py_VISIT(st->exc_base);
  Py_VISIT(st->geojson_type);
  Py_VISIT(st->AsyncSessionType);
  Py_VISIT(st->get_running_loop);
  return 0;
}

static int module_clear(PyObject *m) {
  spkpy_state *st = PyModule_GetState(m);
  Py_CLEAR(st->KeyType);
  Py_CLEAR(st->RecordType);
  Py_CLEAR(st->RecordResultType);
  Py_CLEAR(st->ClusterType);
  Py_CLEAR(st->SessionType);
  Py_CLEAR(st->LoopDriverType);
  Py_CLEAR(st->exc_by_code);
  Py_CLEAR(st->exc_base);
  Py_CLEAR(st->geojson_type);
  Py_CLEAR(st->str_result_code);
  Py_CLEAR(st->str_in_doubt);
  Py_CLEAR(st->kwnames_exc);
  Py_CLEAR(st->empty_bytes);
  Py_CLEAR(st->AsyncSessionType);
  Py_CLEAR(st->get_running_loop);
  Py_CLEAR(st->str_set_result);
  Py_CLEAR(st->str_set_exception);
  Py_CLEAR(st->str_cancel);
  Py_CLEAR(st->str_add_reader);
  Py_CLEAR(st->str_remove_reader);
  return 0;
}

static void module_free(void *m) { module_clear((PyObject *)m); }

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL}};

PyModuleDef spkpy_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "cspike._core",
    .m_doc = "cspike C core binding",
    .m_size = sizeof(spkpy_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&spkpy_module); }
