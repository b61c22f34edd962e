/*
 * srv.h - internal declarations of the embedded Aerospike-compatible server.
 *
 * Layout of the server (one idea per file):
 *   main.c     arguments, start-up, the control channel on stdin
 *   net.c      service threads: epoll, connections, framing, fault hooks
 *   dispatch.c one request buffer in, response bytes out (also the fuzz
 *              entry point); routes to info / admin / records / batch
 *   msg.c      strict as_msg parsing and response building helpers
 *   store.c    records in memory: per-namespace partitions, locks, expiry
 *   particle.c particle validation, msgpack ordering, record size rules
 *   geo.c      GeoJSON validation and S2 cell ids of points
 *   rw.c       single-record read / write / delete / operate semantics
 *   batch.c    batch-index requests
 *   info.c     info commands;   stats.c  the long statistics texts
 *   cluster.c  membership, partition assignment, replicas maps, kill
 *   cdt.c      list / map operations
 *   expr.c     expressions: build + type check (expr_eval.c evaluates)
 *   scan.c     partition scans and secondary-index queries
 *   sindex.c   secondary indexes: definitions, maintenance, index walks
 *
 * Concurrency: records live in 4096 partitions per namespace, each with its
 * own mutex; a request holds at most one partition lock at a time.  Secondary
 * index entries of a partition live under the same mutex; index definitions
 * under a per-namespace mutex taken before (never while holding) a
 * partition lock.  Cluster
 * state is an immutable view per node, swapped atomically by the control
 * thread (retired views are kept until exit, so readers need no lock).
 * Counters are relaxed atomics.
 */
#ifndef SPK_SRV_H
#define SPK_SRV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "spk_common.h"
#include "spk_digest.h"
#include "spk_info.h"
#include "spk_proto.h"

#define SPK_SRV_BUILD "8.1.2.0"
#define SPK_SRV_MAX_NODES 16
#define SPK_SRV_MAX_NS 8
#define SPK_SRV_MAX_SETS 1023
#define SPK_SRV_MAX_RF 4
#define SPK_SRV_MAX_BINS 32767
#define SPK_SRV_MAX_OPS (32 * 1024)
#define SPK_SRV_MAX_TASKS 100 /* query-max-done */
#define SPK_SRV_MAX_SINDEXES 256 /* per namespace, as the real server */
#define SPK_SRV_TEN_YEARS 315360000u
#define SPK_SRV_NPART SPK_N_PARTITIONS

/* Result codes used by the server (spk_result.h has the full table). */
enum {
  SPK_SRV_OK = 0,
  SPK_SRV_ERR_UNKNOWN = 1,
  SPK_SRV_ERR_NOT_FOUND = 2,
  SPK_SRV_ERR_GENERATION = 3,
  SPK_SRV_ERR_PARAMETER = 4,
  SPK_SRV_ERR_RECORD_EXISTS = 5,
  SPK_SRV_ERR_BIN_EXISTS = 6,
  SPK_SRV_ERR_CLUSTER_CHANGE = 7,
  SPK_SRV_ERR_TIMEOUT = 9,
  SPK_SRV_ERR_UNAVAILABLE = 11,
  SPK_SRV_ERR_INCOMPATIBLE_TYPE = 12,
  SPK_SRV_ERR_RECORD_TOO_BIG = 13,
  SPK_SRV_ERR_UNSUPPORTED = 16,
  SPK_SRV_ERR_BIN_NOT_FOUND = 17,
  SPK_SRV_ERR_KEY_MISMATCH = 19,
  SPK_SRV_ERR_NAMESPACE = 20,
  SPK_SRV_ERR_BIN_NAME = 21,
  SPK_SRV_ERR_FORBIDDEN = 22,
  SPK_SRV_ERR_ELEMENT_NOT_FOUND = 23,
  SPK_SRV_ERR_ELEMENT_EXISTS = 24,
  SPK_SRV_ERR_ENTERPRISE_ONLY = 25,
  SPK_SRV_ERR_OP_NOT_APPLICABLE = 26,
  SPK_SRV_ERR_FILTERED_OUT = 27,
  SPK_SRV_ERR_SECURITY_NOT_SUPPORTED = 51,
  SPK_SRV_ERR_SECURITY_NOT_ENABLED = 52,
  SPK_SRV_ERR_GEO_INVALID = 160,
  SPK_SRV_ERR_SINDEX_FOUND = 200,
  SPK_SRV_ERR_SINDEX_NOT_FOUND = 201,
  SPK_SRV_ERR_SINDEX_MAX_COUNT = 202,
  SPK_SRV_ERR_SINDEX_NOT_READABLE = 203
};

/* ---- configuration ------------------------------------------------------ */

typedef struct spk_srv_ns_cfg {
  char name[32];
  uint32_t rf;              /* configured replication-factor */
  uint32_t default_ttl;     /* seconds, 0 = never expire */
  uint32_t max_record_size; /* bytes */
  uint32_t nsup_period;     /* seconds; 0 forbids TTLs, as on the real server */
  uint64_t data_size;       /* reported storage-engine.data-size */
} spk_srv_ns_cfg;

typedef struct spk_srv_cfg {
  uint32_t n_nodes;
  uint16_t ports[SPK_SRV_MAX_NODES];     /* 0 = ephemeral */
  uint64_t node_ids[SPK_SRV_MAX_NODES];  /* 0 = derive from port */
  uint32_t n_ns;
  spk_srv_ns_cfg ns[SPK_SRV_MAX_NS];
  uint32_t threads;
  char cluster_name[64];                 /* "" -> info answers "null" */
  bool enterprise;
  uint32_t reform_ms;  /* kill -> survivors report the reformed cluster */
  uint32_t migrate_ms; /* reformed -> migrations done, maps updated */
  /* A new index on a non-empty set stays write-only (WO, queries 203) at
   * least this long, as the real server's population takes time. */
  uint32_t sindex_populate_ms;
} spk_srv_cfg;

/* ---- records -------------------------------------------------------------
 *
 * One allocation per record.  Bins are stored exactly as response ops with
 * op byte READ (u32 op_sz, op, particle, flags, name_len, name, value), so a
 * read is a memcpy.  data = key bytes (particle type + value) then bins. */
typedef struct spk_srv_rec {
  uint8_t digest[SPK_DIGEST_SIZE];
  uint16_t gen;
  uint16_t set_id;    /* 0 = no set, else index + 1 */
  uint32_t void_time; /* citrusleaf seconds, 0 = never */
  uint64_t lut_ms;    /* last update, ms since the Unix epoch */
  uint32_t key_len;
  uint32_t bins_len;
  uint16_t n_bins;
  uint8_t data[];
} spk_srv_rec;

static inline const uint8_t *spk_srv_rec_bins(const spk_srv_rec *r) {
  return r->data + r->key_len;
}

typedef struct spk_srv_part {
  pthread_mutex_t lock;
  uint32_t n, cap; /* cap is 0 or a power of two */
  spk_srv_rec **slots;
} spk_srv_part;

typedef struct spk_srv_set {
  char name[64];
  uint32_t len;
  _Atomic int64_t objects;
  _Atomic int64_t bytes;
  _Atomic uint64_t truncate_lut_ms;
} spk_srv_set;

typedef struct spk_srv_ns_stats {
  _Atomic uint64_t read_success, read_error, read_not_found, read_filtered;
  _Atomic uint64_t write_success, write_error, write_filtered;
  _Atomic uint64_t delete_success, delete_error, delete_not_found;
  _Atomic uint64_t expired, fail_generation, fail_too_big, fail_key_busy;
  _Atomic uint64_t batch_sub_read_success, batch_sub_write_success;
} spk_srv_ns_stats;

/* ---- secondary indexes (sindex.c) ------------------------------------------
 *
 * An index maps the values of one bin (or of the elements of a list / map
 * bin, optionally through a CDT context) to the digests of the records
 * holding them: per partition a sorted array of (bval, digest) entries, in
 * the real server's order (bval, signed or for geo unsigned, then digest).
 * bval is the integer itself, the 64-bit wyhash of a string / blob, or the
 * S2 cell of a GeoJSON point.  The entries of partition p are read and
 * written only under p's record lock, so a write updates record and index
 * atomically. */
typedef struct spk_srv_si_ent {
  int64_t bval;
  uint8_t digest[SPK_DIGEST_SIZE];
} spk_srv_si_ent;

typedef struct spk_srv_si_tree {
  spk_srv_si_ent *e;
  uint32_t n, cap;
} spk_srv_si_tree;

typedef struct spk_srv_sindex {
  _Atomic uint32_t refs;   /* the namespace's, plus running queries */
  _Atomic bool dropped;
  char name[64];           /* renamed in place (under the ns si_lock) */
  char set[64];            /* "" = whole namespace */
  uint16_t set_id;         /* 0 = whole namespace */
  char bin[16];
  uint8_t bin_len;
  uint8_t ktype;           /* particle type: 1, 3, 4 or 23 */
  uint8_t itype;           /* 0 default, 1 list, 2 mapkeys, 3 mapvalues */
  uint8_t *ctx;            /* msgpack context array, or NULL */
  uint32_t ctx_len;
  char *ctx_b64;
  uint64_t ready_ms;       /* monotonic ms from which it is readable */
  uint64_t load_time;      /* ms, reported by sindex-stat */
  _Atomic int64_t n_entries;
  spk_srv_si_tree trees[SPK_SRV_NPART];
} spk_srv_sindex;

/* The live indexes of a namespace as writers see them: an immutable array,
 * replaced whole on create / drop (and freed once every partition lock has
 * been taken after the swap, so no writer still holds it). */
typedef struct spk_srv_si_list {
  uint32_t n;
  spk_srv_sindex *si[];
} spk_srv_si_list;

typedef struct spk_srv_ns {
  spk_srv_ns_cfg cfg;
  uint32_t ix;
  _Atomic int64_t objects;
  _Atomic int64_t bytes;
  _Atomic int64_t non_expirable;
  _Atomic uint64_t truncate_lut_ms;
  spk_srv_ns_stats st;
  pthread_mutex_t sets_lock;
  _Atomic uint32_t n_sets;
  spk_srv_set sets[SPK_SRV_MAX_SETS];
  /* Secondary indexes: definitions in slot order (the sindex-list order)
   * under si_lock; writers read si_live only. */
  pthread_mutex_t si_lock;
  spk_srv_sindex *si_slots[SPK_SRV_MAX_SINDEXES];
  _Atomic(spk_srv_si_list *) si_live;
  spk_srv_part parts[SPK_SRV_NPART];
} spk_srv_ns;

/* ---- cluster views ------------------------------------------------------- */

typedef struct spk_srv_view_ns {
  uint32_t rf;     /* effective replication factor */
  uint32_t regime; /* 0 for AP; bumped by the migrate fault */
  /* replicas[pid][i] = node index of replica i (0 = master) */
  uint8_t (*replicas)[SPK_SRV_MAX_RF];
  uint8_t bitmap[SPK_SRV_MAX_RF][SPK_REPLICA_BITMAP_BYTES]; /* this node */
  uint8_t unavailable[SPK_REPLICA_BITMAP_BYTES]; /* answer 11 for these */
} spk_srv_view_ns;

typedef struct spk_srv_view {
  struct spk_srv_view *retired_next; /* kept until exit */
  uint32_t n_members;
  uint8_t members[SPK_SRV_MAX_NODES]; /* node indexes, succession order */
  uint32_t n_peers;
  uint8_t peers[SPK_SRV_MAX_NODES];
  uint64_t cluster_key;
  uint32_t cluster_gen;
  uint64_t principal;
  bool integrity, is_member, migrate_allowed, stable;
  int32_t partition_gen;
  uint64_t peers_gen;
  uint64_t rebalance_gen;
  uint64_t rebalance_ms; /* monotonic ms of the last rebalance */
  spk_srv_view_ns ns[SPK_SRV_MAX_NS];
} spk_srv_view;

/* ---- nodes and faults ---------------------------------------------------- */

enum spk_srv_corrupt_mode {
  SPK_SRV_CORRUPT_NONE = 0,
  SPK_SRV_CORRUPT_GARBAGE,  /* body bytes overwritten */
  SPK_SRV_CORRUPT_TRUNCATE, /* half the response, then close */
  SPK_SRV_CORRUPT_TYPE,     /* proto type 9 */
  SPK_SRV_CORRUPT_VERSION,  /* proto version 1 */
  SPK_SRV_CORRUPT_OVERSIZE  /* size header > 128 MiB, then close */
};

/* Which requests a corrupt fault applies to. */
enum { SPK_SRV_TARGET_MSG = 0, SPK_SRV_TARGET_INFO, SPK_SRV_TARGET_ANY };
/* close_after: reply to the K-th request then close, or drop it unanswered. */
enum { SPK_SRV_CLOSE_REPLY = 0, SPK_SRV_CLOSE_DROP };

typedef struct spk_srv_faults {
  _Atomic uint32_t delay_ms;
  _Atomic int64_t close_after; /* data requests left; 0 = off */
  _Atomic uint32_t close_mode;
  _Atomic int32_t fail_count;
  _Atomic uint32_t fail_code;
  _Atomic int32_t corrupt_count;
  _Atomic uint32_t corrupt_mode;
  _Atomic uint32_t corrupt_target;
} spk_srv_faults;

typedef struct spk_srv_node {
  uint32_t ix;
  uint64_t id;
  char name[20]; /* %lX */
  uint16_t port;
  int listen_fd;
  _Atomic bool alive;
  /* Bumped by every restart (before alive turns true): a connection is
   * served only by the incarnation that accepted it (net.c). */
  _Atomic uint32_t incarnation;
  _Atomic(spk_srv_view *) view;
  spk_srv_faults faults;
  _Atomic uint64_t n_requests;
  _Atomic uint64_t n_info;
  _Atomic uint64_t conns_opened, conns_closed;
  /* Task ids of recent scans (scan.c, under its lock). */
  uint64_t tasks[SPK_SRV_MAX_TASKS];
  uint32_t n_tasks, task_pos;
} spk_srv_node;

typedef struct spk_srv {
  spk_srv_cfg cfg;
  uint64_t start_ms;
  uint32_t n_ns;
  spk_srv_ns *ns[SPK_SRV_MAX_NS];
  uint32_t n_nodes;
  spk_srv_node nodes[SPK_SRV_MAX_NODES];
  pthread_mutex_t cluster_lock; /* writers of views */
  spk_srv_view *retired;        /* every view ever published */
  uint64_t reform_at_ms;        /* pending membership change phases */
  uint64_t migrate_at_ms;       /* (monotonic ms; 0 = none pending) */
  uint64_t rng;
  _Atomic uint64_t batch_index_initiate, batch_index_complete;
  _Atomic uint64_t batch_index_error;
  _Atomic uint64_t demarshal_error;
} spk_srv;

/* ---- request context ----------------------------------------------------- */

/* A bin being built by a write; its value lives in an old record, in the
 * request, or in the context's scratch buffer (offset, because scratch may
 * move while it grows). */
typedef struct spk_srv_bin {
  uint8_t ptype;
  uint8_t name_len;
  bool in_scratch;
  const char *name; /* in the old record or the request: stable */
  const uint8_t *val;
  size_t off;
  uint32_t len;
} spk_srv_bin;

/* One op of a response: echoes the request op byte and name. */
typedef struct spk_srv_resp_op {
  uint8_t op;
  uint8_t ptype;
  uint8_t name_len;
  bool in_scratch;
  const char *name;
  const uint8_t *val;
  size_t off;
  uint32_t len;
} spk_srv_resp_op;

typedef struct spk_srv_ctx {
  spk_srv *srv;
  spk_srv_node *node;
  spk_buf out;     /* response bytes */
  spk_buf scratch; /* computed values during one request */
  spk_srv_bin *bins;
  uint32_t bins_cap;
  spk_srv_resp_op *rops;
  uint32_t rops_cap;
} spk_srv_ctx;

void spk_srv_ctx_init(spk_srv_ctx *c, spk_srv *srv, spk_srv_node *node);
void spk_srv_ctx_free(spk_srv_ctx *c);
/* Make room for n bins / n response ops; 0 or -1 (OOM). */
int spk_srv_ctx_bins(spk_srv_ctx *c, uint32_t n);
int spk_srv_ctx_rops(spk_srv_ctx *c, uint32_t n);

static inline const uint8_t *spk_srv_bin_val(const spk_srv_ctx *c,
                                             const spk_srv_bin *b) {
  return b->in_scratch ? c->scratch.data + b->off : b->val;
}

/* ---- parsed requests (msg.c) -------------------------------------------- */

/* Field presence bits for the types the server looks at. */
#define SPK_SRV_F(t) (1ull << (t))

typedef struct spk_srv_field {
  const uint8_t *p;
  uint32_t len;
} spk_srv_field;

typedef struct spk_srv_op {
  uint8_t op, ptype, flags, name_len;
  const char *name;
  const uint8_t *val;
  uint32_t len;
} spk_srv_op;

typedef struct spk_srv_req {
  const uint8_t *msg; /* as_msg start */
  size_t len;         /* bytes of the as_msg */
  spk_msg_header h;
  uint64_t fields;    /* SPK_SRV_F bits of present (known) fields */
  spk_srv_field f[64];
  const uint8_t *ops; /* first op */
} spk_srv_req;

/* Parse like the real server's demarshal: every field and op must fit and
 * fill the message exactly.  0 or SPK_SRV_ERR_PARAMETER. */
int spk_srv_req_parse(const uint8_t *msg, size_t len, spk_srv_req *r);

static inline bool spk_srv_req_has(const spk_srv_req *r, int t) {
  return (r->fields & SPK_SRV_F(t)) != 0;
}

typedef struct spk_srv_op_iter {
  const uint8_t *p;
  uint16_t left;
} spk_srv_op_iter;

static inline spk_srv_op_iter spk_srv_ops(const spk_srv_req *r) {
  spk_srv_op_iter it = {r->ops, r->h.n_ops};
  return it;
}
/* Ops of a parsed request (bounds already checked). 1 while ops remain. */
int spk_srv_next_op(spk_srv_op_iter *it, spk_srv_op *o);
/* Walk ops of an unverified buffer; 0 ok, -1 malformed. */
int spk_srv_ops_check(const uint8_t *p, size_t len, uint16_t n_ops,
                      const uint8_t **end);

/* Response building. */
void spk_srv_reply_header(spk_srv_ctx *c, uint8_t rc, uint32_t gen,
                          uint32_t void_time);
/* Append a full response with ops; values resolved through ctx. */
void spk_srv_reply_ops(spk_srv_ctx *c, uint8_t rc, uint32_t gen,
                       uint32_t void_time, const spk_srv_resp_op *ops,
                       uint32_t n_ops);
/* As an as_msg without proto header (batch rows): info3 / ttl index. */
void spk_srv_msg_ops(spk_srv_ctx *c, uint8_t info3, uint8_t rc, uint32_t gen,
                     uint32_t void_time, uint32_t ttl,
                     const spk_srv_resp_op *ops, uint32_t n_ops);
void spk_srv_put_op(spk_buf *b, uint8_t op, uint8_t ptype, const char *name,
                    uint8_t name_len, const uint8_t *val, uint32_t len);

/* ---- store.c -------------------------------------------------------------- */

spk_srv_ns *spk_srv_ns_create(const spk_srv_ns_cfg *cfg, uint32_t ix);
void spk_srv_ns_destroy(spk_srv_ns *ns);
spk_srv_ns *spk_srv_ns_find(spk_srv *s, const uint8_t *name, size_t len);

static inline spk_srv_part *spk_srv_part_of(spk_srv_ns *ns,
                                            const uint8_t *digest) {
  return &ns->parts[spk_partition_id(digest)];
}
/* Caller holds the partition lock. */
spk_srv_rec *spk_srv_part_get(spk_srv_part *p, const uint8_t *digest);
/* Insert or replace (the old record is returned for the caller to free). */
int spk_srv_part_put(spk_srv_part *p, spk_srv_rec *r, spk_srv_rec **old);
spk_srv_rec *spk_srv_part_remove(spk_srv_part *p, const uint8_t *digest);

/* Set table: id (index + 1) of a set name, created when `create`.  Returns
 * 0 when absent, -1 when the name is invalid or the table is full. */
int spk_srv_set_id(spk_srv_ns *ns, const uint8_t *name, size_t len,
                   bool create);
const spk_srv_set *spk_srv_set_get(spk_srv_ns *ns, uint16_t id);

/* Accounting when a record enters / leaves the store. */
void spk_srv_rec_added(spk_srv_ns *ns, const spk_srv_rec *r);
void spk_srv_rec_removed(spk_srv_ns *ns, const spk_srv_rec *r);

uint32_t spk_srv_now_cl(void); /* citrusleaf seconds */
uint64_t spk_srv_now_ms(void); /* Unix ms */

static inline bool spk_srv_rec_expired(const spk_srv_rec *r, uint32_t now) {
  return r->void_time != 0 && r->void_time <= now;
}
/* Truncated by a truncate command (lut older than the truncate time). */
bool spk_srv_rec_truncated(spk_srv_ns *ns, const spk_srv_rec *r);

/* Free expired records of every partition; returns how many. */
uint64_t spk_srv_nsup(spk_srv_ns *ns);
/* Delete records with lut <= lut_ms (set_id 0 = whole namespace). */
uint64_t spk_srv_truncate(spk_srv_ns *ns, int set_id, uint64_t lut_ms);

/* ---- sindex.c ------------------------------------------------------------------ */

/* Index maintenance: a record replaced (old -> nw), created (old NULL) or
 * removed (nw NULL).  The caller holds the record's partition lock.  Costs
 * one atomic load when the namespace has no index. */
void spk_srv_sindex_update(spk_srv_ns *ns, const spk_srv_rec *old,
                           const spk_srv_rec *nw);
/* Free every index of a namespace (teardown, no concurrency). */
void spk_srv_sindex_free_all(spk_srv_ns *ns);
/* Info commands: sindex-create / -delete / -list / -stat / -exists and the
 * sindex[/ns[/name]] tree.  params: text after ':' (may be NULL). */
void spk_srv_sindex_info(spk_srv_ctx *c, spk_buf *b, const char *cmd,
                         const char *args, size_t args_len, const char *params,
                         size_t params_len);
/* Tests: mismatches between an index and the records (0 = consistent;
 * -1 = no such index). */
int64_t spk_srv_sindex_verify(spk_srv_ns *ns, const char *name);
/* Number of indexes on a set, and whether one is still populating (sets
 * info). */
uint32_t spk_srv_sindex_count_set(spk_srv_ns *ns, uint16_t set_id, bool *populating);

/* A secondary-index query's filter (INDEX_RANGE and friends), parsed. */
typedef struct spk_srv_si_query {
  uint8_t ptype;          /* range particle type */
  uint8_t itype;
  bool isrange;           /* integer range with begin != end */
  bool geo;
  int64_t begin, end;     /* bvals (strings / blobs: the hash, twice) */
  const uint8_t *value;   /* string / blob / GeoJSON bytes of the query */
  uint32_t value_len;
  char bin[16];
  uint8_t bin_len;
  const uint8_t *ctx;     /* INDEX_CONTEXT, or NULL */
  uint32_t ctx_len;
} spk_srv_si_query;

/* Parse INDEX_RANGE (+ INDEX_TYPE, INDEX_CONTEXT) as the real server does:
 * 0 or SPK_SRV_ERR_PARAMETER. */
int spk_srv_si_query_parse(const spk_srv_req *r, spk_srv_si_query *q);
/* Find the index a query uses (by INDEX_NAME, else by definition: the
 * query's set first, then a whole-namespace index) and take a reference.
 * 0, 201 (none) or 203 (still populating). */
int spk_srv_si_query_find(spk_srv_ns *ns, const spk_srv_req *r,
                          const spk_srv_si_query *q, int set_id,
                          spk_srv_sindex **out);
void spk_srv_sindex_release(spk_srv_sindex *si);
/* Does the record still hold a value matching the query in this index
 * (string / blob hash collisions, GeoJSON containment)? */
bool spk_srv_si_rec_matches(const spk_srv_sindex *si, const spk_srv_rec *r,
                            const spk_srv_si_query *q);
/* Entry order of an index. */
int spk_srv_si_cmp(const spk_srv_sindex *si, int64_t b1, const uint8_t *d1,
                   int64_t b2, const uint8_t *d2);
/* The 64-bit hash the real server indexes strings and blobs by (wyhash,
 * final version 3, with the server's seed). */
uint64_t spk_srv_wyhash64(const void *p, size_t len);

/* ---- particle.c ------------------------------------------------------------ */

/* Validate a WRITE op value and normalise it into scratch when needed
 * (narrow integers widen, unordered maps sort).  Fills b's type and value
 * (a pointer into the request, or a scratch offset).  0 or a result code. */
int spk_srv_particle_from_client(spk_srv_ctx *c, const spk_srv_op *o,
                                 spk_srv_bin *b);
/* Size of a bin in the real server's flat record format. */
uint32_t spk_srv_particle_flat_size(uint8_t ptype, const uint8_t *val,
                                    uint32_t len);
uint32_t spk_srv_uintvar_size(uint32_t v);

/* msgpack helpers with the server's semantics (bounds-checked). */
/* Size of one msgpack object at p (<= end); 0 if malformed or too deep. */
size_t spk_srv_mp_size(const uint8_t *p, const uint8_t *end);
/* Compare two msgpack objects in server order: -1, 0, 1; 2 on error. */
int spk_srv_mp_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                   size_t blen);
/* Validate a LIST / MAP particle; sorts unordered maps into out (scratch)
 * when needed.  0 or result code (1 for malformed / unordered data). */
int spk_srv_cdt_validate(spk_srv_ctx *c, uint8_t ptype, const uint8_t *p,
                         uint32_t len, bool *rewritten, size_t *off,
                         uint32_t *out_len);

/* ---- geo.c ----------------------------------------------------------------- */

/* Validate a GeoJSON particle value (flags, ncells, cells, json) and write
 * the stored form (with computed cells) to out.  0 or 160. */
int spk_srv_geo_from_client(const uint8_t *v, uint32_t len, spk_buf *out);
/* cmp_geo on two GeoJSON texts: 1 match, 0 no match, -1 invalid. */
int spk_srv_geo_match(const uint8_t *cand, uint32_t clen, const uint8_t *query,
                      uint32_t qlen);
/* S2 leaf cell id of a point. */
uint64_t spk_srv_s2_cell(double lat_deg, double lng_deg);
/* Parse a GeoJSON text: 0 with *cell the leaf cell of a point (0 for a
 * region), or 160 when invalid. */
int spk_srv_geo_cell(const uint8_t *json, uint32_t len, uint64_t *cell);

/* ---- rw.c / batch.c / info.c / scan.c ---------------------------------------- */

/* Single-record command; appends one response (as_msg) to c->out, or for a
 * batch row (row_ix >= 0) one as_msg without proto header.  Returns the
 * result code. */
typedef struct spk_srv_rw_opts {
  int64_t row_ix;         /* -1 = not a batch row */
  const uint8_t *digest;  /* batch rows carry the digest outside fields */
  const uint8_t *filter;  /* parent filter for batch rows */
  uint32_t filter_len;
} spk_srv_rw_opts;

int spk_srv_rw(spk_srv_ctx *c, spk_srv_ns *ns, const spk_srv_req *r,
               const spk_srv_rw_opts *o);

/* Batch-index request (info1 BATCH): appends the whole response stream. */
void spk_srv_batch(spk_srv_ctx *c, const uint8_t *msg, size_t len);

/* Info request body -> response (type-1 proto message appended). */
void spk_srv_info(spk_srv_ctx *c, const uint8_t *body, size_t len);
/* Statistics texts (stats.c). */
void spk_srv_info_statistics(spk_srv_ctx *c, spk_buf *b);
void spk_srv_info_namespace(spk_srv_ctx *c, spk_buf *b, spk_srv_ns *ns);
void spk_srv_info_sets(spk_srv_ctx *c, spk_buf *b, spk_srv_ns *ns,
                       const char *set, size_t set_len);

/* Multi-record request (no digest, no key): scan / query. */
void spk_srv_scan(spk_srv_ctx *c, spk_srv_ns *ns, const spk_srv_req *r);

/* Follow a CDT context (msgpack [type, value, ...]) into a list / map
 * value: the element found, as a span of val.  0, or -1 (not found). */
int spk_srv_cdt_ctx_get(const uint8_t *val, uint32_t len, const uint8_t *ctx,
                        uint32_t ctx_len, const uint8_t **out,
                        uint32_t *out_len);
/* Is ctx a context array an index may use?  0 yes, 1 invalid, 2 valid but
 * not in normalized (shortest) msgpack. */
int spk_srv_cdt_ctx_check(const uint8_t *ctx, uint32_t len);

/* CDT ops (cdt.c): apply to a bin; result (if any) goes to *res. */
int spk_srv_cdt_read(spk_srv_ctx *c, const spk_srv_bin *b,
                     const spk_srv_op *o, spk_srv_resp_op *res,
                     bool *has_res);
int spk_srv_cdt_modify(spk_srv_ctx *c, spk_srv_bin *b, bool *exists,
                       const spk_srv_op *o, spk_srv_resp_op *res,
                       bool *has_res);

/* A CDT op on a container value (used by expression calls): the result
 * (msgpack) goes to res, a modified container to out. */
int spk_srv_cdt_call(spk_srv_ctx *c, const uint8_t *val, uint32_t len,
                     const uint8_t *payload, uint32_t plen, bool modify,
                     spk_buf *out, bool *modified, spk_buf *res, bool *has_res);

/* Filter expressions (expr.c). */
typedef struct spk_srv_exp_env {
  spk_srv_ctx *c;
  spk_srv_ns *ns;
  const spk_srv_rec *rec;
  const uint8_t *digest;
  const spk_srv_bin *bins; /* NULL: use rec's bins */
  uint32_t n_bins;
} spk_srv_exp_env;
/* Evaluate a FILTER field: 0 pass, 27 filtered out, 4 malformed. */
int spk_srv_filter(const spk_srv_exp_env *env, const uint8_t *exp,
                   uint32_t len);
/* Build-only check of a FILTER field (scans check it before running). */
int spk_srv_exp_check_filter(spk_srv_ctx *c, const uint8_t *exp, uint32_t len);
/* EXP_READ op: result into res (values in scratch); *has when produced. */
int spk_srv_exp_read_op(const spk_srv_exp_env *env, const spk_srv_op *o,
                        spk_srv_resp_op *res, bool *has);
/* EXP_MODIFY op on bin b (exists in/out).  0 or a result code. */
int spk_srv_exp_modify_op(const spk_srv_exp_env *env, const spk_srv_op *o,
                          spk_srv_bin *b, bool *exists);
/* Flat (stored) size of a record (particle.c); the record_size expression
 * reports it rounded up to the 16-byte storage block. */
uint32_t spk_srv_rec_flat_size(spk_srv_ns *ns, const spk_srv_rec *r);

/* ---- dispatch.c --------------------------------------------------------------- */

enum spk_srv_action {
  SPK_SRV_REPLY = 0,  /* send c->out (may be empty) and continue */
  SPK_SRV_CLOSE,      /* close now (RST when bytes are left unread) */
  SPK_SRV_STALL       /* no reply; stop reading this connection */
};

/* Header check done as soon as 8 bytes arrived: 0 ok, else close. */
int spk_srv_check_header(const uint8_t hdr[8], uint64_t *body_len);
/* Handle one complete proto message (header + body). */
int spk_srv_dispatch(spk_srv_ctx *c, const uint8_t *msg, size_t len);

/* ---- cluster.c ------------------------------------------------------------------- */

int spk_srv_cluster_init(spk_srv *s);
void spk_srv_cluster_free(spk_srv *s);
static inline spk_srv_view *spk_srv_view_of(spk_srv_node *n) {
  return atomic_load_explicit(&n->view, memory_order_acquire);
}
/* Membership changes (control thread).  Return 0 or -1 with *msg set. */
int spk_srv_cluster_kill(spk_srv *s, uint32_t ix, const char **msg);
int spk_srv_cluster_restart(spk_srv *s, uint32_t ix, const char **msg);
int spk_srv_cluster_migrate(spk_srv *s, int ns_ix, uint32_t pid_lo,
                            uint32_t pid_hi, uint32_t to, const char **msg);
/* Advance delayed transitions; returns ms until the next one (-1 none). */
int64_t spk_srv_cluster_tick(spk_srv *s);
/* Replica lists for partition assignment (also used by unit tests). */
void spk_srv_assign(const uint64_t *succession, uint32_t n, uint32_t pid,
                    uint8_t *order);
/* Is `node` allowed to serve this partition (not moved away)? */
static inline bool spk_srv_part_available(const spk_srv_view *v,
                                          uint32_t ns_ix, uint32_t pid) {
  return !spk_bitmap_test(v->ns[ns_ix].unavailable, pid);
}

/* ---- misc ---------------------------------------------------------------------- */

uint64_t spk_srv_mono_ms(void);
void spk_srv_buf_printf(spk_buf *b, const char *fmt, ...) SPK_PRINTF(2, 3);
static inline void spk_srv_buf_str(spk_buf *b, const char *s) {
  (void)spk_buf_append(b, s, strlen(s));
}

#endif /* SPK_SRV_H */
