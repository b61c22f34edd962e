/*
 * spkpy.h - declarations shared by the files of the cspike._core extension.
 *
 * The extension is a thin layer: Python objects are converted straight to
 * wire bytes (encode.c) and wire bytes straight back to Python objects
 * (decode.c); the C core does everything in between with the GIL released.
 *
 * Module design: multi-phase init, heap types, all state in the module
 * state struct (no static PyObject*), Py_mod_gil = Py_MOD_GIL_NOT_USED.
 * Objects that are shared between threads (Key, Record core, Cluster,
 * SessionCore) are immutable after construction, or guard their mutable C
 * state with the core's own atomics.
 */
#ifndef SPKPY_H
#define SPKPY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include "cmd/spk_cmd.h"
#include "codec/spk_digest.h"
#include "codec/spk_msgpack.h"
#include "codec/spk_proto.h"
#include "drivers/spk_sync.h"

#if PY_VERSION_HEX < 0x030D0000
#define Py_BEGIN_CRITICAL_SECTION(op) {
#define Py_END_CRITICAL_SECTION() }
#endif

typedef struct spkpy_state {
  PyTypeObject *KeyType;
  PyTypeObject *RecordType;
  PyTypeObject *RecordResultType;
  PyTypeObject *ClusterType;
  PyTypeObject *SessionType;
  PyTypeObject *LoopDriverType; /* event-loop driver (async) */
  PyObject *exc_by_code;  /* dict int -> exception class (set from Python) */
  PyObject *exc_base;     /* AerospikeError */
  PyObject *geojson_type; /* cspike.GeoJSON (set from Python) */
  PyObject *str_result_code; /* interned "result_code" */
  PyObject *str_in_doubt;    /* interned "in_doubt" */
  PyObject *kwnames_exc;     /* ("result_code", "in_doubt") */
  PyObject *empty_bytes;
  PyTypeObject *AsyncSessionType;
  PyObject *get_running_loop; /* asyncio._get_running_loop, imported lazily */
  PyObject *str_set_result, *str_set_exception, *str_cancel, *str_add_reader,
      *str_remove_reader;
} spkpy_state;

/* The raised exception as an object (clears the error indicator). */
static inline PyObject *spkpy_fetch_exception(void) {
#if PY_VERSION_HEX >= 0x030C0000
  return PyErr_GetRaisedException();
#else
  PyObject *t, *v, *tb;
  PyErr_Fetch(&t, &v, &tb);
  if (!t) return NULL;
  PyErr_NormalizeException(&t, &v, &tb);
  if (tb && v) PyException_SetTraceback(v, tb);
  Py_XDECREF(t);
  Py_XDECREF(tb);
  return v;
#endif
}

extern PyModuleDef spkpy_module;

static inline spkpy_state *spkpy_state_of_type(PyTypeObject *defining) {
  return (spkpy_state *)PyType_GetModuleState(defining);
}

/* ---- Key ------------------------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  PyObject *ns_obj;  /* str */
  PyObject *set_obj; /* str ("" when the key has no set) */
  PyObject *value;   /* str, int, bytes, or None (digest-only key) */
  uint8_t digest[SPK_DIGEST_SIZE];
  uint8_t ns_len;
  uint8_t set_len;
  uint8_t key_type; /* particle type of value, 0 when digest-only */
  char ns[SPK_NAMESPACE_MAX + 1];
  char set[SPK_SET_MAX + 1];
} spkpy_Key;

int spkpy_key_init_types(PyObject *module, spkpy_state *st);
/* 1 if o is a Key (or subclass). */
static inline int spkpy_is_key(spkpy_state *st, PyObject *o) {
  return Py_IS_TYPE(o, st->KeyType) || PyObject_TypeCheck(o, st->KeyType);
}

/* ---- Record ---------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  PyObject *key;     /* Key or None */
  PyObject *bins;    /* dict */
  PyObject *results; /* list (operate: one entry per op) or NULL */
  uint32_t generation;
  uint32_t void_time;
} spkpy_Record;

int spkpy_record_init_types(PyObject *module, spkpy_state *st);
/* New Record taking ownership of bins / results (results may be NULL). */
PyObject *spkpy_record_new(spkpy_state *st, PyObject *key, PyObject *bins,
                           PyObject *results, uint32_t generation,
                           uint32_t void_time);

/* ---- RecordResult -------------------------------------------------------------- */

typedef struct {
  PyObject_HEAD
  PyObject *key;
  PyObject *record;    /* Record or None */
  PyObject *exception; /* built lazily */
  PyObject *udf_result;
  PyObject *message;   /* str or NULL */
  Py_ssize_t index;
  int result_code;
  bool in_doubt;
} spkpy_RecordResult;

int spkpy_result_init_types(PyObject *module, spkpy_state *st);
/* New RecordResult; steals `record` (may be NULL = None). */
PyObject *spkpy_result_new(spkpy_state *st, PyObject *key, PyObject *record, int code,
                           bool in_doubt, Py_ssize_t index, const char *message);

/* ---- Cluster (client core) ------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  spk_cluster *cluster;
  PyObject *weakreflist;
} spkpy_Cluster;

int spkpy_cluster_init_types(PyObject *module, spkpy_state *st);

/* ---- SessionCore ------------------------------------------------------------- */

enum spkpy_policy_slot {
  SPKPY_POL_READ = 0,
  SPKPY_POL_WRITE = 1,
  SPKPY_POL_WRITE_RETRYABLE = 2,
  SPKPY_POL_READ_BATCH = 3,
  SPKPY_POL_WRITE_BATCH = 4,
  SPKPY_POL_N = 5
};

typedef struct {
  PyObject_HEAD
  spkpy_Cluster *cluster;
  spk_policy pol[SPKPY_POL_N];    /* AP */
  spk_policy pol_sc[SPKPY_POL_N]; /* SC namespaces */
  PyObject *dict;                  /* __dict__ for Python subclasses */
  PyObject *weakreflist;
  /* async sessions: driver of the last loop used, and the factory */
  PyObject *driver_for;
  PyObject *drv_loop;
  PyObject *drv;
} spkpy_Session;

int spkpy_aio_init_types(PyObject *module, spkpy_state *st);
int spkpy_hist_init_types(PyObject *m, spkpy_state *st);

int spkpy_session_init_types(PyObject *module, spkpy_state *st);

/* One single-record command, described once for both drivers. */
typedef enum spkpy_kind {
  SPKPY_K_GET = 0,
  SPKPY_K_PUT,
  SPKPY_K_DELETE,
  SPKPY_K_EXISTS,
  SPKPY_K_TOUCH,
  SPKPY_K_OPERATE
} spkpy_kind;

typedef struct spkpy_req {
  spkpy_kind kind;
  const spk_policy *policy;
  spkpy_Key *key;  /* owned */
  PyObject *ops;   /* operate: tuple of ops, owned */
  const char *ns;  /* inside key */
  uint8_t ns_len;
  uint32_t pid;
  bool is_write;
  bool respond_all;
  bool rr; /* finish as a RecordResult (builders) instead of value/raise */
  bool durable_default; /* delete without an explicit durability choice */
} spkpy_req;

/* Builder options of one command (the fast path uses none). */
enum {
  SPKPY_EXISTS_UPDATE = 0, /* upsert: the server default */
  SPKPY_EXISTS_UPDATE_ONLY = 1,
  SPKPY_EXISTS_REPLACE = 2,
  SPKPY_EXISTS_REPLACE_ONLY = 3,
  SPKPY_EXISTS_CREATE_ONLY = 4
};

typedef struct spkpy_opts {
  bool set;
  uint32_t ttl;        /* wire record_ttl of writes (0 = namespace default) */
  uint8_t exists;      /* SPKPY_EXISTS_* */
  uint8_t gen_policy;  /* 0 none, 1 equal, 2 greater */
  uint32_t generation;
  int8_t durable;      /* -1 = policy, 0 / 1 */
  bool no_bins;        /* header-only read */
  PyObject *filter;    /* packed filter expression (borrowed) or NULL */
} spkpy_opts;

/* opts tuple (ttl, exists, gen_policy, generation, durable, no_bins,
 * filter) or None. 0 / -1. */
int spkpy_opts_parse(PyObject *t, spkpy_opts *o);
int spkpy_parse_execute(PyObject *const *args, Py_ssize_t nargs, spkpy_kind *kind,
                        spkpy_opts *opts);
/* Header attributes of one command, shared by single-record messages and
 * batch rows. */
typedef struct spkpy_attrs {
  const spk_policy *p;
  uint8_t info1, info2, info3;
  uint32_t ttl;
  uint32_t generation;
} spkpy_attrs;

/* Validate arg for kind, choose the policy and header bits.  Fills
 * req->is_write / respond_all / ops.  0 or -1 with an exception. */
int spkpy_attrs_for(spkpy_state *st, spkpy_Session *self, spkpy_kind kind,
                    PyObject *arg, const spkpy_opts *opts, bool batch,
                    spkpy_attrs *a, spkpy_req *req);
/* Append the ops of a command; returns the op count or -1. */
int spkpy_write_ops(spkpy_state *st, spk_buf *tx, spkpy_kind kind, PyObject *arg,
                    const spkpy_opts *opts, spkpy_req *req);

/* Encode one command from already-parsed values (key, bins/ops/names). */
int spkpy_build_vals(spkpy_state *st, spkpy_Session *self, spkpy_kind kind,
                     PyObject *key, PyObject *arg, const spkpy_opts *opts, spk_buf *tx,
                     spkpy_req *req);

/* Parse the Python arguments of a `kind` call and encode the request into
 * tx.  0, or -1 with an exception (req then only needs spkpy_req_clear). */
int spkpy_build(spkpy_state *st, spkpy_Session *self, spkpy_kind kind,
                PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
                spk_buf *tx, spkpy_req *req);
/* Initialise cmd for a built request. */
void spkpy_req_cmd(spk_cmd *cmd, spkpy_Session *s, spkpy_req *req, spk_buf *tx,
                   spk_buf *rx);
/* Python result of a finished command, or NULL with its exception set. */
PyObject *spkpy_finish(spkpy_state *st, spkpy_req *req, spk_cmd *cmd);
void spkpy_req_clear(spkpy_req *req);

/* Parse a compile_settings() tuple into a policy. 0 or -1 with TypeError. */
int spkpy_policy_from_tuple(PyObject *t, spk_policy *p, const char *what);

/* ---- encode / decode ---------------------------------------------------------- */

/* Write the message fields of a key (namespace, set, digest, and the KEY
 * field when send_key).  Returns the number of fields or -1 with an error. */
int spkpy_write_key_fields(spk_buf *b, spkpy_Key *k, bool send_key);

/* Append one WRITE-style op (op code `op`) for a Python value, or raise
 * TypeError / ValueError naming the bin.  name is UTF-8 of len <= 15. */
int spkpy_write_value_op(spkpy_state *st, spk_buf *b, uint8_t op,
                         const char *name, Py_ssize_t name_len, PyObject *v);

/*
 * Next (key, value) of a dict with strong references, read under the
 * dict's critical section (free-threaded builds) so a concurrent mutation
 * cannot free them under us.  Returns 1 and new references, or 0 at the end.
 */
int spkpy_dict_next(PyObject *d, Py_ssize_t *pos, PyObject **key, PyObject **value);

/* Append a Python value as msgpack (list/map element conventions). */
int spkpy_pack(spkpy_state *st, spk_buf *b, PyObject *v, int depth);

/* UTF-8 of a bin name with the length check; NULL + error otherwise. */
const char *spkpy_bin_name(PyObject *name, Py_ssize_t *len);

/* Python value of a response op's particle (new reference, NULL + error). */
PyObject *spkpy_decode_particle(spkpy_state *st, uint8_t type,
                                const uint8_t *p, uint32_t len);
/* One msgpack object into Python (new reference). */
PyObject *spkpy_unpack(spkpy_state *st, spk_mp_reader *r, int depth);

/* Bins dict of a parsed response (ops -> {name: value}); new reference. */
PyObject *spkpy_decode_bins(spkpy_state *st, const spk_msg_view *v);

/* ---- errors ------------------------------------------------------------------ */

/* Raise the exception class registered for err->code (AerospikeError as
 * fallback) with result_code and in_doubt set.  Always returns NULL. */
PyObject *spkpy_raise(spkpy_state *st, const spk_error *err);
PyObject *spkpy_raise_code(spkpy_state *st, int code, const char *fmt, ...);

/*
 * Vectorcall argument parsing on the public API: fills vals[i] from the
 * positional args, then from keywords matching names[i].  vals entries
 * not given keep their initial value (the default).  0 or -1 + TypeError.
 */
int spkpy_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                     PyObject *kwnames, const char *const *names, int n_required,
                     int n_total, PyObject **vals);

/* ---- batch ---- */
#include "cmd/spk_batch.h"

typedef struct spkpy_bjob {
  spk_batch job;
  spk_batch_row *rows;
  spkpy_req *reqs; /* per row: kind, key (owned), ops (owned) */
  Py_ssize_t n;
  const spk_policy *policy;
} spkpy_bjob;

int spkpy_bjob_build(spkpy_state *st, spkpy_Session *s, PyObject *rows, spkpy_bjob *bj);
PyObject *spkpy_bjob_results(spkpy_state *st, spkpy_bjob *bj);
void spkpy_bjob_free(spkpy_bjob *bj);
PyObject *spkpy_session_batch(PyObject *self, PyTypeObject *defining, PyObject *const *args,
                              Py_ssize_t nargs, PyObject *kwnames);
PyObject *spkpy_finish_operate(spkpy_state *st, spkpy_req *req, const spk_msg_view *v);

/* Run a command with the GIL released; returns cmd->err.code. */
int spkpy_execute(spk_cmd *cmd);

#endif /* SPKPY_H */
