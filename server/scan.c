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
 * A secondary-index query (INDEX_RANGE) walks, per requested partition,
 * the index's entries in the range in the real order (bval, then digest);
 * each record carries BVAL_ARRAY (the entry's bval, u64 LE) so a page can
 * resume at (DIGEST_ARRAY, BVAL_ARRAY).  A range query on a collection index
 * answers each record once per partition.
 *
 * Not implemented (see README): aggregation and background (UDF /
 * write-ops) queries (16).
 */
#include <stdlib.h>

#include "srv.h"

#define CHUNK_LIMIT (1024u * 1024u)

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
  int64_t *resume_bval;  /* per pid, with resume: BVAL_ARRAY entry */
  bool sindex;           /* INDEX_RANGE: a secondary-index query */
  spk_srv_si_query q;
  spk_srv_sindex *si;    /* referenced for the query's duration */
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
                       uint32_t n_sel, const int64_t *bval) {
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
  if (bval) {
    uint8_t le[8];
    spk_put_le64(le, (uint64_t)*bval);
    put_field(b, SPK_FIELD_BVAL_ARRAY, le, sizeof le);
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
    put_record(j, r, sel, n_sel, NULL);
  }
  pthread_mutex_unlock(&part->lock);
}

/* Digests already answered in this partition (range queries on collection
 * indexes find a record once per matching element). */
typedef struct seen_set {
  uint8_t (*d)[SPK_DIGEST_SIZE];
  uint32_t n, cap;
} seen_set;

/* true when d was new (and is now recorded). */
static bool seen_add(seen_set *s, const uint8_t *d) {
  uint32_t lo = 0, hi = s->n;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    int c = memcmp(s->d[mid], d, SPK_DIGEST_SIZE);
    if (c == 0) return false;
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  if (s->n == s->cap) {
    uint32_t cap = s->cap ? s->cap * 2 : 16;
    void *nd = realloc(s->d, cap * sizeof *s->d);
    if (!nd) return true; /* answer it again rather than lose it */
    s->d = nd;
    s->cap = cap;
  }
  memmove(s->d + lo + 1, s->d + lo, (s->n - lo) * sizeof *s->d);
  memcpy(s->d[lo], d, SPK_DIGEST_SIZE);
  s->n++;
  return true;
}

static void sindex_partition(scan_job *j, uint32_t pid, const sel_bin *sel,
                             uint32_t n_sel, seen_set *seen) {
  spk_srv_part *part = &j->ns->parts[pid];
  const spk_srv_sindex *si = j->si;
  const spk_srv_si_query *q = &j->q;
  uint32_t now = spk_srv_now_cl();
  bool dedup = q->isrange && q->itype != 0;
  seen->n = 0;
  pthread_mutex_lock(&part->lock);
  /* Dropped meanwhile: writers stop maintaining it, so stop walking it (as
   * the real server's queries do).  Seen false under the partition lock,
   * every earlier write of the partition still maintained the index. */
  if (atomic_load(&si->dropped)) {
    pthread_mutex_unlock(&part->lock);
    return;
  }
  const spk_srv_si_tree *t = &si->trees[pid];
  /* Start: the range's begin, or just after the resume entry when that
   * lies inside the range (as the real server's tree walk). */
  int64_t sb = q->begin;
  const uint8_t *sd = NULL;
  if (j->requested[pid] == 2 &&
      spk_srv_si_cmp(si, j->resume_bval[pid], NULL, q->begin, NULL) >= 0) {
    sb = j->resume_bval[pid];
    sd = j->resume[pid];
  }
  uint32_t lo = 0, hi = t->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    /* first entry > (sb, sd) with a digest, >= sb without */
    int c = spk_srv_si_cmp(si, t->e[mid].bval, t->e[mid].digest, sb, sd);
    if (sd ? c <= 0 : c < 0) lo = mid + 1;
    else hi = mid;
  }
  for (uint32_t i = lo; i < t->n; i++) {
    const spk_srv_si_ent *e = &t->e[i];
    if (e->bval != q->end && spk_srv_si_cmp(si, e->bval, NULL, q->end, NULL) > 0) break;
    spk_srv_rec *r = spk_srv_part_get(part, e->digest);
    if (!r || spk_srv_rec_expired(r, now) || spk_srv_rec_truncated(j->ns, r)) continue;
    if (j->set_id && r->set_id != j->set_id) continue;
    if (dedup && !seen_add(seen, e->digest)) continue;
    if (!spk_srv_si_rec_matches(si, r, q)) continue;
    if (j->filter) {
      spk_srv_exp_env env = {j->c, j->ns, r, r->digest, NULL, 0};
      if (spk_srv_filter(&env, j->filter, j->filter_len) != 0) continue;
    }
    if (j->max_records && j->count >= j->max_records) break;
    j->count++;
    put_record(j, r, sel, n_sel, &e->bval);
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
    const uint8_t *bvals = NULL;
    if (spk_srv_req_has(r, SPK_FIELD_INDEX_RANGE)) {
      if (!spk_srv_req_has(r, SPK_FIELD_BVAL_ARRAY) ||
          r->f[SPK_FIELD_BVAL_ARRAY].len / 8 != n)
        return SPK_SRV_ERR_PARAMETER;
      bvals = r->f[SPK_FIELD_BVAL_ARRAY].p;
    }
    for (uint32_t i = 0; i < n; i++) {
      const uint8_t *d = f->p + (size_t)i * SPK_DIGEST_SIZE;
      uint32_t pid = spk_partition_id(d);
      if (j->requested[pid]) return SPK_SRV_ERR_PARAMETER;
      j->requested[pid] = 2;
      memcpy(j->resume[pid], d, SPK_DIGEST_SIZE);
      j->resume_bval[pid] = bvals ? (int64_t)spk_le64(bvals + 8 * (size_t)i) : 0;
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
  j->sindex = spk_srv_req_has(r, SPK_FIELD_INDEX_RANGE);
  if (j->sindex && (rc = spk_srv_si_query_parse(r, &j->q)) != 0) return rc;
  if (spk_srv_req_has(r, SPK_FIELD_RPS) &&
      ((r->h.info1 & SPK_INFO1_SHORT_QUERY) || r->f[SPK_FIELD_RPS].len != 4))
    return SPK_SRV_ERR_PARAMETER;
  if (!*has_pids) return SPK_SRV_ERR_UNSUPPORTED;
  /* 201 without a matching index, 203 while it is populating. */
  if (j->sindex && (rc = spk_srv_si_query_find(j->ns, r, &j->q, j->set_id, &j->si)) != 0)
    return rc;
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
  j.resume_bval = calloc(SPK_SRV_NPART, sizeof *j.resume_bval);
  sel_bin *sel = NULL;
  spk_srv_rec **buf = NULL;
  uint32_t cap = 0;
  seen_set seen = {0};
  bool has_pids;
  int rc = (!j.requested || !j.resume || !j.resume_bval) ? SPK_SRV_ERR_UNKNOWN
                                                        : start_checks(&j, r, &has_pids);
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
    if (j.si) sindex_partition(&j, pid, sel, n_sel, &seen);
    else scan_partition(&j, pid, sel, n_sel, &buf, &cap);
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
  spk_srv_sindex_release(j.si);
  free(seen.d);
  free(buf);
  free(sel);
  free(j.requested);
  free(j.resume);
  free(j.resume_bval);
}
