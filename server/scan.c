/*
 * scan.c - multi-record requests: partition scans ("primary-index queries").
 *
 * A request without a digest is a scan or query.  The start checks follow
 * the real server's order; a start error is one 22-byte as_msg without
 * LAST and the connection stays open.  A scan then walks the requested
 * partitions in partition-id order, each partition's records in digest
 * order (a DIGEST_ARRAY entry resumes its partition after that digest),
 * applies the set and the FILTER expression, stops after MAX_RECORDS, and
 * answers record messages packed into proto messages of up to 1 MiB,
 * followed by a separate LAST message.  A partition this node is not master
 * of answers one PARTITION_DONE message (result 11, generation = pid),
 * like a real node asked for a partition it does not hold.
 *
 * Not implemented (see README): secondary-index queries (they answer 201,
 * index not found, as for a bin without an index), aggregation and
 * background (UDF / write-ops) queries (16).
 */
#include <stdlib.h>

#include "srv.h"

#define CHUNK_LIMIT (1024u * 1024u)
#define ERR_SINDEX_NOT_FOUND 201

/* Task ids of recent queries per node: a reused id is rejected (the real
 * server keeps the running ones and the last 100 finished). */
static pthread_mutex_t task_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t task_seq; /* ids for requests that send none */

static bool task_register(spk_srv_node *n, uint64_t id) {
  bool ok = true;
  pthread_mutex_lock(&task_lock);
  for (uint32_t i = 0; i < n->n_tasks; i++)
    if (n->tasks[i] == id) ok = false;
  if (ok) {
    n->tasks[n->task_pos] = id;
    n->task_pos = (n->task_pos + 1) % SPK_SRV_MAX_TASKS;
    if (n->n_tasks < SPK_SRV_MAX_TASKS) n->n_tasks++;
  }
  pthread_mutex_unlock(&task_lock);
  return ok;
}

typedef struct scan_job {
  spk_srv_ctx *c;
  spk_srv_ns *ns;
  const spk_srv_req *r;
  int set_id;          /* 0: whole namespace */
  bool set_unknown;    /* named set that does not exist: nothing matches */
  uint8_t *requested;  /* per pid: 0 no, 1 yes, 2 resume after digests[pid] */
  uint8_t (*resume)[SPK_DIGEST_SIZE];
  uint64_t max_records; /* 0: no limit */
  uint64_t count;
  bool no_bins;
  const uint8_t *filter;
  uint32_t filter_len;
  size_t chunk;        /* offset of the open proto header in c->out, or -1 */
} scan_job;

/* ---- output ---------------------------------------------------------------------------- */

static void chunk_close(scan_job *j) {
  if (j->chunk == (size_t)-1) return;
  spk_proto_write(j->c->out.data + j->chunk, SPK_PROTO_MSG,
                  j->c->out.len - j->chunk - SPK_PROTO_HEADER_SIZE);
  j->chunk = (size_t)-1;
}

static void chunk_open(scan_job *j) {
  if (j->chunk != (size_t)-1) {
    if (j->c->out.len - j->chunk <= CHUNK_LIMIT) return;
    chunk_close(j);
  }
  j->chunk = j->c->out.len;
  (void)spk_buf_extend(&j->c->out, SPK_PROTO_HEADER_SIZE);
}

static void put_field(spk_buf *b, uint8_t type, const void *p, uint32_t len) {
  uint8_t *h = spk_buf_extend(b, SPK_FIELD_HEADER_SIZE + (size_t)len);
  if (!h) return;
  spk_put_be32(h, len + 1);
  h[4] = type;
  if (len) memcpy(h + SPK_FIELD_HEADER_SIZE, p, len);
}

static void pid_done(scan_job *j, uint32_t pid) {
  chunk_open(j);
  uint8_t *p = spk_buf_extend(&j->c->out, SPK_MSG_HEADER_SIZE);
  if (!p) return;
  spk_msg_header h = {0};
  h.info3 = SPK_INFO3_PARTITION_DONE;
  h.result_code = SPK_SRV_ERR_UNAVAILABLE;
  h.generation = pid;
  spk_msg_header_write(p, &h);
}

/* Selected bins come from READ ops (or the old QUERY_BINS field). */
typedef struct sel_bin {
  const char *name;
  uint8_t len;
} sel_bin;

static void put_record(scan_job *j, const spk_srv_rec *rec, const sel_bin *sel,
                       uint32_t n_sel) {
  spk_buf *b = &j->c->out;
  chunk_open(j);
  size_t at = b->len;
  if (!spk_buf_extend(b, SPK_MSG_HEADER_SIZE)) return;
  uint16_t n_fields = 2, n_ops = 0;
  put_field(b, SPK_FIELD_NAMESPACE, j->ns->cfg.name, (uint32_t)strlen(j->ns->cfg.name));
  put_field(b, SPK_FIELD_DIGEST, rec->digest, SPK_DIGEST_SIZE);
  const spk_srv_set *st = spk_srv_set_get(j->ns, rec->set_id);
  if (st) {
    put_field(b, SPK_FIELD_SETNAME, st->name, st->len);
    n_fields++;
  }
  if (rec->key_len) {
    put_field(b, SPK_FIELD_KEY, rec->data, rec->key_len);
    n_fields++;
  }
  if (!j->no_bins) {
    const uint8_t *bins = spk_srv_rec_bins(rec);
    if (!sel) {
      if (rec->bins_len) spk_buf_append(b, bins, rec->bins_len);
      n_ops = rec->n_bins;
    } else {
      for (uint32_t s = 0; s < n_sel; s++) {
        const uint8_t *p = bins;
        for (uint16_t i = 0; i < rec->n_bins; i++) {
          uint32_t op_sz = spk_be32(p);
          if (p[7] == sel[s].len && memcmp(p + 8, sel[s].name, sel[s].len) == 0) {
            spk_buf_append(b, p, 4 + (size_t)op_sz);
            n_ops++;
            break;
          }
          p += 4 + op_sz;
        }
      }
    }
  }
  if (b->len < at + SPK_MSG_HEADER_SIZE) return; /* out of memory */
  spk_msg_header h = {0};
  h.info1 = j->no_bins ? SPK_INFO1_GET_NOBINDATA : 0; /* as the real server */
  h.generation = rec->gen;
  h.record_ttl = rec->void_time;
  h.n_fields = n_fields;
  h.n_ops = n_ops;
  spk_msg_header_write(b->data + at, &h);
}

/* ---- the walk ------------------------------------------------------------------------------- */

static int cmp_rec(const void *a, const void *b) {
  const spk_srv_rec *x = *(spk_srv_rec *const *)a, *y = *(spk_srv_rec *const *)b;
  return memcmp(x->digest, y->digest, SPK_DIGEST_SIZE);
}

static void scan_partition(scan_job *j, uint32_t pid, const sel_bin *sel,
                           uint32_t n_sel, spk_srv_rec ***buf, uint32_t *cap) {
  spk_srv_part *part = &j->ns->parts[pid];
  uint32_t now = spk_srv_now_cl();
  pthread_mutex_lock(&part->lock);
  if (part->n > *cap) {
    spk_srv_rec **nb = realloc(*buf, part->n * sizeof *nb);
    if (!nb) {
      pthread_mutex_unlock(&part->lock);
      return;
    }
    *buf = nb;
    *cap = part->n;
  }
  uint32_t n = 0;
  for (uint32_t i = 0; i < part->cap; i++) {
    spk_srv_rec *r = part->slots[i];
    if (!r || spk_srv_rec_expired(r, now) || spk_srv_rec_truncated(j->ns, r)) continue;
    if (j->set_id && r->set_id != j->set_id) continue;
    if (j->requested[pid] == 2 && memcmp(r->digest, j->resume[pid], SPK_DIGEST_SIZE) <= 0)
      continue;
    (*buf)[n++] = r;
  }
  if (n > 1) qsort(*buf, n, sizeof **buf, cmp_rec);
  for (uint32_t i = 0; i < n; i++) {
    spk_srv_rec *r = (*buf)[i];
    if (j->filter) {
      spk_srv_exp_env env = {j->c, j->ns, r, r->digest, NULL, 0};
      if (spk_srv_filter(&env, j->filter, j->filter_len) != 0) continue;
    }
    if (j->max_records && j->count >= j->max_records) break;
    j->count++;
    put_record(j, r, sel, n_sel);
  }
  pthread_mutex_unlock(&part->lock);
}

static bool owns(spk_srv_ctx *c, const spk_srv_ns *ns, uint32_t pid) {
  spk_srv_view *v = spk_srv_view_of(c->node);
  if (!v) return true;
  const spk_srv_view_ns *vn = &v->ns[ns->ix];
  return vn->replicas[pid][0] == c->node->ix && spk_srv_part_available(v, ns->ix, pid);
}

/* ---- start checks ------------------------------------------------------------------------- */

static int parse_pids(scan_job *j, const spk_srv_req *r, bool *any) {
  *any = false;
  if (spk_srv_req_has(r, SPK_FIELD_PID_ARRAY)) {
    const spk_srv_field *f = &r->f[SPK_FIELD_PID_ARRAY];
    uint32_t n = f->len / 2;
    if (n == 0 || n > SPK_SRV_NPART) return SPK_SRV_ERR_PARAMETER;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t pid = (uint32_t)f->p[2 * i] | (uint32_t)f->p[2 * i + 1] << 8;
      if (pid >= SPK_SRV_NPART || j->requested[pid]) return SPK_SRV_ERR_PARAMETER;
      j->requested[pid] = 1;
    }
    *any = true;
  }
  if (spk_srv_req_has(r, SPK_FIELD_DIGEST_ARRAY)) {
    const spk_srv_field *f = &r->f[SPK_FIELD_DIGEST_ARRAY];
    uint32_t n = f->len / SPK_DIGEST_SIZE;
    if (n == 0 || n > SPK_SRV_NPART) return SPK_SRV_ERR_PARAMETER;
    /* Resuming a secondary-index query also needs the BVAL_ARRAY. */
    if (spk_srv_req_has(r, SPK_FIELD_INDEX_RANGE) &&
        (!spk_srv_req_has(r, SPK_FIELD_BVAL_ARRAY) ||
         r->f[SPK_FIELD_BVAL_ARRAY].len / 8 != n))
      return SPK_SRV_ERR_PARAMETER;
    for (uint32_t i = 0; i < n; i++) {
      const uint8_t *d = f->p + (size_t)i * SPK_DIGEST_SIZE;
      uint32_t pid = spk_partition_id(d);
      if (j->requested[pid]) return SPK_SRV_ERR_PARAMETER;
      j->requested[pid] = 2;
      memcpy(j->resume[pid], d, SPK_DIGEST_SIZE);
    }
    *any = true;
  } else if (spk_srv_req_has(r, SPK_FIELD_BVAL_ARRAY)) {
    return SPK_SRV_ERR_PARAMETER;
  }
  return 0;
}

static int start_checks(scan_job *j, const spk_srv_req *r, bool *has_pids) {
  if (r->h.info2 & SPK_INFO2_WRITE) return SPK_SRV_ERR_UNSUPPORTED; /* background */
  if (spk_srv_req_has(r, SPK_FIELD_UDF_OP) || spk_srv_req_has(r, SPK_FIELD_UDF_PACKAGE_NAME))
    return SPK_SRV_ERR_UNSUPPORTED; /* aggregation / background UDF */
  if (!(r->h.info3 & SPK_INFO3_PARTITION_DONE)) return SPK_SRV_ERR_UNSUPPORTED;
  if (spk_srv_req_has(r, SPK_FIELD_SETNAME) && r->f[SPK_FIELD_SETNAME].len) {
    const spk_srv_field *f = &r->f[SPK_FIELD_SETNAME];
    if (f->len >= 64) return SPK_SRV_ERR_PARAMETER;
    int id = spk_srv_set_id(j->ns, f->p, f->len, false);
    if (id > 0) j->set_id = id;
    else j->set_unknown = true;
  }
  int rc = parse_pids(j, r, has_pids);
  if (rc) return rc;
  if (spk_srv_req_has(r, SPK_FIELD_INDEX_RANGE) && r->f[SPK_FIELD_INDEX_RANGE].len == 0)
    return SPK_SRV_ERR_PARAMETER;
  if (spk_srv_req_has(r, SPK_FIELD_RPS) &&
      ((r->h.info1 & SPK_INFO1_SHORT_QUERY) || r->f[SPK_FIELD_RPS].len != 4))
    return SPK_SRV_ERR_PARAMETER;
  if (!*has_pids) return SPK_SRV_ERR_UNSUPPORTED;
  if (spk_srv_req_has(r, SPK_FIELD_INDEX_RANGE)) return ERR_SINDEX_NOT_FOUND;
  if (spk_srv_req_has(r, SPK_FIELD_SOCKET_TIMEOUT) && r->f[SPK_FIELD_SOCKET_TIMEOUT].len != 4)
    return SPK_SRV_ERR_PARAMETER;
  if (spk_srv_req_has(r, SPK_FIELD_MAX_RECORDS)) {
    if (r->f[SPK_FIELD_MAX_RECORDS].len != 8) return SPK_SRV_ERR_PARAMETER;
    j->max_records = spk_be64(r->f[SPK_FIELD_MAX_RECORDS].p);
  }
  if (spk_srv_req_has(r, SPK_FIELD_QUERY_BINS) && r->h.n_ops > 0)
    return SPK_SRV_ERR_PARAMETER;
  if (spk_srv_req_has(r, SPK_FIELD_FILTER)) {
    j->filter = r->f[SPK_FIELD_FILTER].p;
    j->filter_len = r->f[SPK_FIELD_FILTER].len;
    if (spk_srv_exp_check_filter(j->c, j->filter, j->filter_len) != 0)
      return SPK_SRV_ERR_PARAMETER;
  }
  uint64_t task = 0;
  if (spk_srv_req_has(r, SPK_FIELD_TASK_ID) && r->f[SPK_FIELD_TASK_ID].len == 8)
    task = spk_be64(r->f[SPK_FIELD_TASK_ID].p);
  else
    task = (1ull << 63) | atomic_fetch_add(&task_seq, 1); /* the server picks one */
  if (!task_register(j->c->node, task)) return SPK_SRV_ERR_PARAMETER;
  return 0;
}

/* Bin selection: READ ops, or the QUERY_BINS field (count, then len+name). */
static uint32_t selection(const spk_srv_req *r, sel_bin *sel, uint32_t cap) {
  uint32_t n = 0;
  if (r->h.n_ops > 0) {
    spk_srv_op_iter it = spk_srv_ops(r);
    spk_srv_op op;
    while (spk_srv_next_op(&it, &op) && n < cap)
      if (op.name_len <= SPK_BIN_NAME_MAX) sel[n++] = (sel_bin){op.name, op.name_len};
  } else if (spk_srv_req_has(r, SPK_FIELD_QUERY_BINS)) {
    const spk_srv_field *f = &r->f[SPK_FIELD_QUERY_BINS];
    uint32_t off = 1, count = f->len ? f->p[0] : 0;
    for (uint32_t i = 0; i < count && off < f->len && n < cap; i++) {
      uint8_t len = f->p[off++];
      if (off + len > f->len) break;
      if (len <= SPK_BIN_NAME_MAX) sel[n++] = (sel_bin){(const char *)f->p + off, len};
      off += len;
    }
  }
  return n;
}

void spk_srv_scan(spk_srv_ctx *c, spk_srv_ns *ns, const spk_srv_req *r) {
  scan_job j = {.c = c, .ns = ns, .r = r, .chunk = (size_t)-1};
  j.requested = calloc(SPK_SRV_NPART, 1);
  j.resume = calloc(SPK_SRV_NPART, sizeof *j.resume);
  sel_bin *sel = NULL;
  spk_srv_rec **buf = NULL;
  uint32_t cap = 0;
  bool has_pids;
  int rc = (!j.requested || !j.resume) ? SPK_SRV_ERR_UNKNOWN : start_checks(&j, r, &has_pids);
  if (rc) {
    spk_srv_reply_header(c, (uint8_t)rc, 0, 0);
    goto done;
  }
  j.no_bins = (r->h.info1 & SPK_INFO1_GET_NOBINDATA) != 0;
  uint32_t n_sel = 0;
  if (r->h.n_ops > 0 || spk_srv_req_has(r, SPK_FIELD_QUERY_BINS)) {
    uint32_t want = r->h.n_ops > 0 ? r->h.n_ops : 255;
    sel = malloc(want * sizeof *sel);
    if (sel) n_sel = selection(r, sel, want);
  }
  for (uint32_t pid = 0; pid < SPK_SRV_NPART; pid++) {
    if (!j.requested[pid]) continue;
    if (!owns(c, ns, pid)) {
      pid_done(&j, pid);
      continue;
    }
    if (j.set_unknown || (j.max_records && j.count >= j.max_records)) continue;
    scan_partition(&j, pid, sel, n_sel, &buf, &cap);
  }
  /* LAST: a separate message, except for a short query, whose single
   * worker appends it to its last buffer. */
  if (!(r->h.info1 & SPK_INFO1_SHORT_QUERY)) chunk_close(&j);
  if (j.chunk == (size_t)-1) chunk_open(&j);
  uint8_t *p = spk_buf_extend(&c->out, SPK_MSG_HEADER_SIZE);
  if (p) {
    spk_msg_header h = {0};
    h.info3 = SPK_INFO3_LAST;
    spk_msg_header_write(p, &h);
  }
  chunk_close(&j);
done:
  free(buf);
  free(sel);
  free(j.requested);
  free(j.resume);
}
