/*
 * canary_py.c - the extension module _spk_canary, built only with
 * -Dcanary=asan (install: false).  tests/canary/test_asan_canary.py loads it
 * from the ASan build directory and calls the planted bugs, so the ASan
 * Python leg (LD_PRELOAD of the ASan runtime, PYTHONMALLOC=malloc) is shown
 * to catch bugs in extension code:
 *
 *   heap_overflow()   reads one byte past a malloc'd block: needs the
 *                     extension to be instrumented and the runtime loaded;
 *   object_use_after_free()
 *                     reads a bytes object's payload after its last
 *                     reference is gone: with pymalloc the block goes back
 *                     to an arena and nothing notices, so this one also
 *                     proves that PYTHONMALLOC=malloc is in effect.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *heap_overflow(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  volatile size_t n = 16;
  char *p = malloc(n);
  if (!p) return PyErr_NoMemory();
  memset(p, 'x', n);
  const volatile char *volatile vp = p;
  volatile char c = vp[n]; /* BUG (planted): one past the end */
  free(p);
  return PyLong_FromLong(c);
}

static PyObject *object_use_after_free(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  /* 100 bytes: a pymalloc-sized block without PYTHONMALLOC=malloc. */
  PyObject *b = PyBytes_FromStringAndSize(NULL, 100);
  if (!b) return NULL;
  memset(PyBytes_AS_STRING(b), 'y', 100);
  const volatile char *payload = PyBytes_AS_STRING(b);
  Py_DECREF(b);            /* the last reference: the object is freed */
  volatile char c = payload[10]; /* BUG (planted): use after free */
  return PyLong_FromLong(c);
}

static PyMethodDef methods[] = {
    {"heap_overflow", heap_overflow, METH_NOARGS, "planted heap overflow"},
    {"object_use_after_free", object_use_after_free, METH_NOARGS,
     "planted use after free of a Python object"},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
#ifdef Py_GIL_DISABLED
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_spk_canary", "planted bugs for the ASan leg", 0,
    methods, slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__spk_canary(void) { return PyModuleDef_Init(&module); }
