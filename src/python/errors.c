/*
 * errors.c - core errors to Python exceptions.  The classes live in
 * cspike/exceptions.py, which registers them by result code (from the one
 * table in spk_result.h, exported by result_table()); C only looks them up.
 */
#include <stdarg.h>

#include "spkpy.h"

PyObject *spkpy_raise(spkpy_state *st, const spk_error *err) {
  PyObject *cls = NULL;
  if (st->exc_by_code) {
    PyObject *code = PyLong_FromLong(err->code);
    if (!code) return NULL;
    cls = PyDict_GetItemWithError(st->exc_by_code, code);
    Py_DECREF(code);
    if (!cls && PyErr_Occurred()) return NULL;
  }
  if (!cls) cls = st->exc_base;
  if (!cls) {
    PyErr_Format(PyExc_RuntimeError, "Aerospike error %d: %s", err->code,
                 err->message);
    return NULL;
  }
  const char *msg = err->message[0] ? err->message : spk_result_message(err->code);
  PyObject *args[3];
  args[0] = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
  args[1] = PyLong_FromLong(err->code);
  args[2] = Py_NewRef(err->in_doubt ? Py_True : Py_False);
  PyObject *exc = NULL;
  if (args[0] && args[1])
    exc = PyObject_Vectorcall(cls, args, 1, st->kwnames_exc);
  Py_XDECREF(args[0]);
  Py_XDECREF(args[1]);
  Py_DECREF(args[2]);
  if (!exc) return NULL;
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
  return NULL;
}

PyObject *spkpy_raise_code(spkpy_state *st, int code, const char *fmt, ...) {
  spk_error e;
  va_list ap;
  e.code = code;
  e.in_doubt = false;
  va_start(ap, fmt);
  vsnprintf(e.message, sizeof e.message, fmt, ap);
  va_end(ap);
  return spkpy_raise(st, &e);
}

int spkpy_execute(spk_cmd *cmd) {
  int rc;
  Py_BEGIN_ALLOW_THREADS
  rc = spk_sync_execute(cmd);
  Py_END_ALLOW_THREADS
  return rc;
}

int spkpy_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames, const char *const *names, int n_required,
                     int n_total, PyObject **vals) {
  if (nargs > n_total) {
    PyErr_Format(PyExc_TypeError, "%s() takes at most %d arguments (%zd given)",
                 fname, n_total, nargs);
    return -1;
  }
  unsigned given = 0;
  for (Py_ssize_t i = 0; i < nargs; i++) {
    vals[i] = args[i];
    given |= 1u << i;
  }
  Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t i = 0; i < nkw; i++) {
    PyObject *k = PyTuple_GET_ITEM(kwnames, i);
    int slot = -1;
    for (int j = 0; j < n_total && slot < 0; j++)
      if (PyUnicode_CompareWithASCIIString(k, names[j]) == 0) slot = j;
    if (slot < 0) {
      PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument %R",
                   fname, k);
      return -1;
    }
    if (given & (1u << slot)) {
      PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                   fname, names[slot]);
      return -1;
    }
    vals[slot] = args[nargs + i];
    given |= 1u << slot;
  }
  for (int j = 0; j < n_required; j++)
    if (!(given & (1u << j))) {
      PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", fname,
                   names[j]);
      return -1;
    }
  return 0;
}
