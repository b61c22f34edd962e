/*
 * sindex.c - secondary indexes.
 *
 * Definitions.  Per namespace up to 256 indexes, kept in slots (the order
 * sindex-list shows: a new index takes the lowest free slot).  A definition
 * is (set, bin, type, index type, context); creating a known name with the
 * same definition answers ok, with another one ERROR:200; a known definition
 * under a new name renames the index in place (as SMD does on the real
 * server); deleting an unknown name answers ok.
 *
 * Entries.  An index holds, per partition, a sorted array of (bval, digest):
 * one entry per distinct value of the indexed bin (list elements, map keys
 * or values for collection indexes) per record.  bval is the integer, the
 * wyhash of a string or blob, or the S2 cell of a GeoJSON point (regions,
 * which this server stores without covering cells, are entered under bval
 * 0).  Order: bval (unsigned for geo), then digest, which is the real
 * server's tree order inside a partition (its key stub is the digest's next
 * nibbles), so query results and BVAL_ARRAY resume points agree with it.
 *
 * Concurrency.  The entries of partition p are only touched under p's record
 * lock: writes (rw.c), deletes, expiry and truncate sweeps (store.c) update
 * record and index entries in the same critical section.  Writers find the
 * live indexes through an immutable list (ns->si_live, one atomic load; no
 * index = no other cost).  Create / drop / rename / list / stat run under
 * the namespace's si_lock, which is always taken before a partition lock,
 * never while holding one.  Create publishes the new list, then populates
 * partition by partition (writes racing with it insert idempotently); drop
 * publishes a list without the index, then takes every partition lock once:
 * after that no writer can still hold the old list, which is freed.  Index
 * memory is reference counted (the namespace's reference, plus one per
 * running query), so a query never walks a freed index.
 *
 * Population is synchronous, but like on the real server an index created
 * on a non-empty set is write-only (state WO, load_pct 0, queries answer
 * 203) until population is over; here that is at least
 * cfg.sindex_populate_ms (default 20 ms, the real load_time of a small set).
 * An index on an empty set is readable at once (the real server's shortcut).
 */
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "spk_msgpack.h"
#include "srv.h"

enum { IT_DEFAULT = 0, IT_LIST = 1, IT_MAPKEYS = 2, IT_MAPVALUES = 3 };

#define MAX_STRING_KSIZE 2048
#define MAX_BLOB_KSIZE 2048
#define MAX_GEOJSON_KSIZE (1024u * 1024u)
#define INAME_MAX_SZ 64
#define NODE_SZ 4096 /* the real tree's node (arena element) size */

static const char *const itype_names[] = {"default", "list", "mapkeys", "mapvalues"};

/* ---- wyhash (final version 3, the server's seed) ---------------------------------------- */

static inline uint64_t wymix(uint64_t a, uint64_t b) {
  __uint128_t r = (__uint128_t)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t rd4(const uint8_t *p) {
  return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

uint64_t spk_srv_wyhash64(const void *key, size_t len) {
  static const uint64_t k[4] = {0xa0761d6478bd642full, 0xe7037ed1a0b428dbull,
                                0x8ebc6af09c88c6e3ull, 0x589965cc75374cc3ull};
  uint64_t seed = 0x29FBB14cc886full ^ k[0];
  const uint8_t *p = key;
  uint64_t a, b;
  if (len <= 16) {
    if (len >= 4) {
      size_t m = (len >> 3) << 2;
      a = rd4(p) << 32 | rd4(p + m);
      b = rd4(p + len - 4) << 32 | rd4(p + len - 4 - m);
    } else if (len > 0) {
      a = (uint64_t)p[0] << 16 | (uint64_t)p[len >> 1] << 8 | p[len - 1];
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    size_t i = len;
    if (i > 48) {
      uint64_t s1 = seed, s2 = seed;
      do {
        seed = wymix(spk_le64(p) ^ k[1], spk_le64(p + 8) ^ seed);
        s1 = wymix(spk_le64(p + 16) ^ k[2], spk_le64(p + 24) ^ s1);
        s2 = wymix(spk_le64(p + 32) ^ k[3], spk_le64(p + 40) ^ s2);
        p += 48;
        i -= 48;
      } while (i > 48);
      seed ^= s1 ^ s2;
    }
    while (i > 16) {
      seed = wymix(spk_le64(p) ^ k[1], spk_le64(p + 8) ^ seed);
      i -= 16;
      p += 16;
    }
    a = spk_le64(p + i - 16);
    b = spk_le64(p + i - 8);
  }
  return wymix(k[1] ^ len, wymix(a ^ k[1], b ^ seed));
}

/* ---- entry order and the per-partition arrays ------------------------------------------- */

int spk_srv_si_cmp(const spk_srv_sindex *si, int64_t b1, const uint8_t *d1,
                   int64_t b2, const uint8_t *d2) {
  if (b1 != b2) {
    if (si->ktype == SPK_PARTICLE_GEOJSON) return (uint64_t)b1 < (uint64_t)b2 ? -1 : 1;
    return b1 < b2 ? -1 : 1;
  }
  if (!d1) return d2 ? -1 : 0; /* no digest: before every entry of bval */
  if (!d2) return 1;
  return memcmp(d1, d2, SPK_DIGEST_SIZE);
}

/* First position whose entry is >= (bval, digest). */
static uint32_t tree_lower(const spk_srv_sindex *si, const spk_srv_si_tree *t,
                           int64_t bval, const uint8_t *digest) {
  uint32_t lo = 0, hi = t->n;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (spk_srv_si_cmp(si, t->e[mid].bval, t->e[mid].digest, bval, digest) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static bool tree_insert(spk_srv_sindex *si, spk_srv_si_tree *t, int64_t bval,
                        const uint8_t *digest) {
  uint32_t i = tree_lower(si, t, bval, digest);
  if (i < t->n && t->e[i].bval == bval &&
      memcmp(t->e[i].digest, digest, SPK_DIGEST_SIZE) == 0)
    return false;
  if (t->n == t->cap) {
    uint32_t cap = t->cap ? t->cap * 2 : 4;
    spk_srv_si_ent *e = realloc(t->e, cap * sizeof *e);
    if (!e) return false;
    t->e = e;
    t->cap = cap;
  }
  if (i < t->n) memmove(t->e + i + 1, t->e + i, (t->n - i) * sizeof *t->e);
  t->e[i].bval = bval;
  memcpy(t->e[i].digest, digest, SPK_DIGEST_SIZE);
  t->n++;
  atomic_fetch_add_explicit(&si->n_entries, 1, memory_order_relaxed);
  return true;
}

static void tree_delete(spk_srv_sindex *si, spk_srv_si_tree *t, int64_t bval,
                        const uint8_t *digest) {
  uint32_t i = tree_lower(si, t, bval, digest);
  if (i >= t->n || t->e[i].bval != bval ||
      memcmp(t->e[i].digest, digest, SPK_DIGEST_SIZE) != 0)
    return;
  memmove(t->e + i, t->e + i + 1, (t->n - i - 1) * sizeof *t->e);
  t->n--;
  atomic_fetch_sub_explicit(&si->n_entries, 1, memory_order_relaxed);
  if (t->n == 0) {
    free(t->e);
    t->e = NULL;
    t->cap = 0;
  } else if (t->cap >= 64 && t->n < t->cap / 4) {
    spk_srv_si_ent *e = realloc(t->e, (t->cap / 2) * sizeof *e);
    if (e) {
      t->e = e;
      t->cap /= 2;
    }
  }
}

/* ---- values of a record ------------------------------------------------------------------ */

/* One indexable value: its particle type, bval, and the bytes a query
 * compares (string / blob bytes, GeoJSON text). */
typedef struct si_val {
  uint8_t type;
  int64_t bval;
  const uint8_t *p;
  uint32_t n;
} si_val;

typedef bool (*si_visit)(void *arg, const si_val *v); /* false: stop */

/* An element as the index sees it. */
typedef struct si_elem {
  uint8_t type;     /* particle type; 0 = not indexable */
  int64_t i;        /* INTEGER */
  const uint8_t *p; /* STRING / BLOB / GEOJSON bytes (no prefix), or the
                     * whole msgpack LIST / MAP */
  uint32_t n;
  bool particle;    /* a top-level bin (GeoJSON with its cell header) */
} si_elem;

static si_elem elem_of_msgpack(const uint8_t *p, uint32_t n) {
  si_elem e = {0};
  spk_mp_reader r;
  spk_mp_item it;
  spk_mp_reader_init(&r, p, n);
  if (spk_mp_next(&r, &it) != 0) return e;
  switch (it.type) {
  case SPK_MP_INT:
    e.type = SPK_PARTICLE_INTEGER;
    e.i = it.v.i;
    break;
  case SPK_MP_STR:
  case SPK_MP_BIN:
    if (it.v.s.len >= 1) {
      e.type = it.v.s.p[0];
      e.p = it.v.s.p + 1;
      e.n = it.v.s.len - 1;
    }
    break;
  case SPK_MP_ARRAY:
    e.type = SPK_PARTICLE_LIST;
    e.p = p;
    e.n = n;
    break;
  case SPK_MP_MAP:
    e.type = SPK_PARTICLE_MAP;
    e.p = p;
    e.n = n;
    break;
  default:
    break;
  }
  return e;
}

/* Emit the bval(s) of a scalar element of the index's key type. */
static bool emit_scalar(const si_elem *e, si_visit fn, void *arg) {
  si_val v = {e->type, 0, e->p, e->n};
  switch (e->type) {
  case SPK_PARTICLE_INTEGER:
    v.bval = e->i;
    return fn(arg, &v);
  case SPK_PARTICLE_STRING:
  case SPK_PARTICLE_BLOB:
    if (e->n > (e->type == SPK_PARTICLE_STRING ? MAX_STRING_KSIZE : MAX_BLOB_KSIZE))
      return true; /* too long to index, as the real server */
    v.bval = (int64_t)spk_srv_wyhash64(e->p, e->n);
    return fn(arg, &v);
  case SPK_PARTICLE_GEOJSON:
    if (e->particle) {
      /* Stored bin: flags, ncells, cells, then the JSON text. */
      if (e->n < 3) return true;
      uint32_t nc = spk_be16(e->p + 1);
      if (3u + 8u * nc > e->n) return true;
      v.p = e->p + 3 + 8 * nc;
      v.n = e->n - 3 - 8 * nc;
      if (nc == 0) return fn(arg, &v); /* region: bval 0 */
      for (uint32_t k = 0; k < nc; k++) {
        v.bval = (int64_t)spk_be64(e->p + 3 + 8 * k);
        if (!fn(arg, &v)) return false;
      }
      return true;
    } else {
      uint64_t cell;
      if (spk_srv_geo_cell(e->p, e->n, &cell) != 0) return true;
      v.bval = (int64_t)cell;
      return fn(arg, &v);
    }
  default:
    return true;
  }
}

/* Elements of a list (or keys / values of a map), ext flags skipped. */
static bool each_element(const spk_srv_sindex *si, const si_elem *c, bool keys,
                         si_visit fn, void *arg) {
  spk_mp_reader r;
  spk_mp_item it;
  spk_mp_reader_init(&r, c->p, c->n);
  if (spk_mp_next(&r, &it) != 0) return true;
  bool map = it.type == SPK_MP_MAP;
  uint32_t n = it.v.n;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t *k = r.p;
    size_t ks = spk_srv_mp_size(r.p, r.end);
    if (!ks) return true;
    r.p += ks;
    const uint8_t *v = NULL;
    size_t vs = 0;
    if (map) {
      v = r.p;
      vs = spk_srv_mp_size(r.p, r.end);
      if (!vs) return true;
      r.p += vs;
    }
    if (i == 0) {
      /* The ordered-container header: an ext (with nil for maps). */
      spk_mp_reader pr;
      spk_mp_item pi;
      spk_mp_reader_init(&pr, k, ks);
      if (spk_mp_next(&pr, &pi) == 0 && pi.type == SPK_MP_EXT) continue;
    }
    si_elem e = map && !keys ? elem_of_msgpack(v, (uint32_t)vs)
                             : elem_of_msgpack(k, (uint32_t)ks);
    if (e.type == si->ktype && !emit_scalar(&e, fn, arg)) return false;
  }
  return true;
}

/* A stored bin by name. */
static bool rec_bin(const spk_srv_rec *r, const char *name, uint8_t nlen,
                    uint8_t *ptype, const uint8_t **val, uint32_t *len) {
  const uint8_t *p = spk_srv_rec_bins(r);
  for (uint16_t i = 0; i < r->n_bins; i++) {
    uint32_t op_sz = spk_be32(p);
    if (p[7] == nlen && memcmp(p + 8, name, nlen) == 0) {
      *ptype = p[5];
      *val = p + 8 + nlen;
      *len = op_sz - 4 - nlen;
      return true;
    }
    p += 4 + (size_t)op_sz;
  }
  return false;
}

static inline bool set_matches(const spk_srv_sindex *si, const spk_srv_rec *r) {
  return si->set_id == 0 || r->set_id == si->set_id;
}

/* Visit every value the index holds for record r. */
static void rec_values(const spk_srv_sindex *si, const spk_srv_rec *r, si_visit fn,
                       void *arg) {
  if (!set_matches(si, r)) return;
  uint8_t ptype;
  const uint8_t *val;
  uint32_t len;
  if (!rec_bin(r, si->bin, si->bin_len, &ptype, &val, &len)) return;
  si_elem e = {.type = ptype, .p = val, .n = len, .particle = true};
  if (ptype == SPK_PARTICLE_INTEGER) {
    if (len != 8) return;
    e.i = (int64_t)spk_be64(val);
  }
  if (si->ctx) {
    if (ptype != SPK_PARTICLE_LIST && ptype != SPK_PARTICLE_MAP) return;
    const uint8_t *sub;
    uint32_t sub_len;
    if (spk_srv_cdt_ctx_get(val, len, si->ctx, si->ctx_len, &sub, &sub_len) != 0) return;
    e = elem_of_msgpack(sub, sub_len);
  }
  switch (si->itype) {
  case IT_DEFAULT:
    if (e.type == si->ktype) emit_scalar(&e, fn, arg);
    break;
  case IT_LIST:
    if (e.type == SPK_PARTICLE_LIST) each_element(si, &e, false, fn, arg);
    break;
  case IT_MAPKEYS:
  case IT_MAPVALUES:
    if (e.type == SPK_PARTICLE_MAP) each_element(si, &e, si->itype == IT_MAPKEYS, fn, arg);
    break;
  default:
    break;
  }
}

/* ---- bval sets ---------------------------------------------------------------------------- */

typedef struct bvec {
  int64_t *v;
  uint32_t n, cap;
  int64_t inl[8];
} bvec;

static void bvec_init(bvec *b) {
  b->v = b->inl;
  b->n = 0;
  b->cap = 8;
}

static void bvec_free(bvec *b) {
  if (b->v != b->inl) free(b->v);
}

static bool bvec_push(void *arg, const si_val *v) {
  bvec *b = arg;
  if (b->n == b->cap) {
    uint32_t cap = b->cap * 2;
    int64_t *nv = b->v == b->inl ? malloc(cap * sizeof *nv) : realloc(b->v, cap * sizeof *nv);
    if (!nv) return false;
    if (b->v == b->inl) memcpy(nv, b->inl, sizeof b->inl);
    b->v = nv;
    b->cap = cap;
  }
  b->v[b->n++] = v->bval;
  return true;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void bvec_sort_unique(bvec *b) {
  if (b->n < 2) return;
  qsort(b->v, b->n, sizeof *b->v, cmp_i64);
  uint32_t k = 1;
  for (uint32_t i = 1; i < b->n; i++)
    if (b->v[i] != b->v[k - 1]) b->v[k++] = b->v[i];
  b->n = k;
}

/* ---- maintenance ---------------------------------------------------------------------------- */

static bool same_bin(const spk_srv_sindex *si, const spk_srv_rec *a, const spk_srv_rec *b) {
  uint8_t pa = 0, pb = 0;
  const uint8_t *va = NULL, *vb = NULL;
  uint32_t la = 0, lb = 0;
  bool ha = set_matches(si, a) && rec_bin(a, si->bin, si->bin_len, &pa, &va, &la);
  bool hb = set_matches(si, b) && rec_bin(b, si->bin, si->bin_len, &pb, &vb, &lb);
  if (ha != hb) return false;
  return !ha || (pa == pb && la == lb && memcmp(va, vb, la) == 0);
}

static void update_one(spk_srv_sindex *si, spk_srv_si_tree *t, const uint8_t *digest,
                       const spk_srv_rec *old, const spk_srv_rec *nw) {
  if (old && nw && same_bin(si, old, nw)) return;
  bvec ov, nv;
  bvec_init(&ov);
  bvec_init(&nv);
  if (old) rec_values(si, old, bvec_push, &ov);
  if (nw) rec_values(si, nw, bvec_push, &nv);
  bvec_sort_unique(&ov);
  bvec_sort_unique(&nv);
  /* Deletes before inserts; values in both stay. */
  uint32_t i = 0, k = 0;
  while (i < ov.n || k < nv.n) {
    if (k == nv.n || (i < ov.n && ov.v[i] < nv.v[k])) {
      tree_delete(si, t, ov.v[i++], digest);
    } else if (i == ov.n || nv.v[k] < ov.v[i]) {
      k++;
    } else {
      i++;
      k++;
    }
  }
  i = k = 0;
  while (k < nv.n) {
    if (i < ov.n && ov.v[i] < nv.v[k]) i++;
    else if (i < ov.n && ov.v[i] == nv.v[k]) i++, k++;
    else tree_insert(si, t, nv.v[k++], digest);
  }
  bvec_free(&ov);
  bvec_free(&nv);
}

void spk_srv_sindex_update(spk_srv_ns *ns, const spk_srv_rec *old,
                           const spk_srv_rec *nw) {
  spk_srv_si_list *l = atomic_load_explicit(&ns->si_live, memory_order_acquire);
  if (SPK_LIKELY(l == NULL)) return;
  const spk_srv_rec *any = nw ? nw : old;
  if (!any) return;
  uint32_t pid = spk_partition_id(any->digest);
  for (uint32_t i = 0; i < l->n; i++) {
    spk_srv_sindex *si = l->si[i];
    update_one(si, &si->trees[pid], any->digest, old, nw);
  }
}

/* ---- life cycle ------------------------------------------------------------------------------ */

static void si_free(spk_srv_sindex *si) {
  for (uint32_t p = 0; p < SPK_SRV_NPART; p++) free(si->trees[p].e);
  free(si->ctx);
  free(si->ctx_b64);
  free(si);
}

void spk_srv_sindex_release(spk_srv_sindex *si) {
  if (si && atomic_fetch_sub_explicit(&si->refs, 1, memory_order_acq_rel) == 1) si_free(si);
}

/* Publish the writers' list from the slots (under si_lock).  *old gets
 * the previous list, to be freed once every partition lock was taken.
 * -1 when out of memory (nothing changed). */
static int publish(spk_srv_ns *ns, spk_srv_si_list **old) {
  uint32_t n = 0;
  for (uint32_t i = 0; i < SPK_SRV_MAX_SINDEXES; i++) n += ns->si_slots[i] != NULL;
  spk_srv_si_list *l = NULL;
  if (n) {
    l = malloc(sizeof *l + n * sizeof l->si[0]);
    if (!l) return -1;
    l->n = 0;
    for (uint32_t i = 0; i < SPK_SRV_MAX_SINDEXES; i++)
      if (ns->si_slots[i]) l->si[l->n++] = ns->si_slots[i];
  }
  *old = atomic_exchange_explicit(&ns->si_live, l, memory_order_acq_rel);
  return 0;
}

/* Every writer that could still see an old list holds a partition lock. */
static void quiesce(spk_srv_ns *ns) {
  for (uint32_t p = 0; p < SPK_SRV_NPART; p++) {
    pthread_mutex_lock(&ns->parts[p].lock);
    pthread_mutex_unlock(&ns->parts[p].lock);
  }
}

void spk_srv_sindex_free_all(spk_srv_ns *ns) {
  free(atomic_exchange(&ns->si_live, NULL));
  for (uint32_t i = 0; i < SPK_SRV_MAX_SINDEXES; i++) {
    spk_srv_sindex *si = ns->si_slots[i];
    ns->si_slots[i] = NULL;
    spk_srv_sindex_release(si);
  }
}

static bool insert_visit(void *arg, const si_val *v) {
  void **a = arg;
  spk_srv_sindex *si = a[0];
  const spk_srv_rec *r = a[1];
  tree_insert(si, &si->trees[spk_partition_id(r->digest)], v->bval, r->digest);
  return true;
}

static void populate(spk_srv_ns *ns, spk_srv_sindex *si) {
  for (uint32_t p = 0; p < SPK_SRV_NPART; p++) {
    spk_srv_part *part = &ns->parts[p];
    pthread_mutex_lock(&part->lock);
    for (uint32_t i = 0; i < part->cap; i++) {
      spk_srv_rec *r = part->slots[i];
      if (!r || !set_matches(si, r)) continue;
      void *arg[2] = {si, r};
      rec_values(si, r, insert_visit, arg);
    }
    pthread_mutex_unlock(&part->lock);
  }
}

/* ---- definitions ------------------------------------------------------------------------------ */

typedef struct si_def {
  char name[INAME_MAX_SZ];
  char set[64];
  char bin[16];
  uint8_t ktype, itype;
  uint8_t *ctx;
  uint32_t ctx_len;
  char *ctx_b64;
} si_def;

static bool same_def(const spk_srv_sindex *si, const si_def *d) {
  return strcmp(si->set, d->set) == 0 && strcmp(si->bin, d->bin) == 0 &&
         si->ktype == d->ktype && si->itype == d->itype && si->ctx_len == d->ctx_len &&
         (d->ctx_len == 0 || memcmp(si->ctx, d->ctx, d->ctx_len) == 0);
}

static spk_srv_sindex *by_name(spk_srv_ns *ns, const char *name) {
  for (uint32_t i = 0; i < SPK_SRV_MAX_SINDEXES; i++)
    if (ns->si_slots[i] && strcmp(ns->si_slots[i]->name, name) == 0) return ns->si_slots[i];
  return NULL;
}

static bool empty_set(spk_srv_ns *ns, uint16_t set_id) {
  if (set_id) return atomic_load(&ns->sets[set_id - 1].objects) == 0;
  return atomic_load(&ns->objects) == 0;
}

/* Create (or rename, or accept the identical) index; the answer goes to b. */
static void create(spk_srv_ctx *c, spk_buf *b, spk_srv_ns *ns, si_def *d) {
  pthread_mutex_lock(&ns->si_lock);
  spk_srv_sindex *cur = by_name(ns, d->name);
  if (cur) {
    if (same_def(cur, d)) spk_srv_buf_str(b, "ok");
    else spk_srv_buf_str(b, "ERROR:200:'indexname' already exists with different definition");
    goto out;
  }
  uint32_t n = 0, free_slot = SPK_SRV_MAX_SINDEXES;
  for (uint32_t i = 0; i < SPK_SRV_MAX_SINDEXES; i++) {
    spk_srv_sindex *si = ns->si_slots[i];
    if (!si) {
      if (free_slot == SPK_SRV_MAX_SINDEXES) free_slot = i;
      continue;
    }
    n++;
    if (same_def(si, d)) {
      /* The definition exists under another name: renamed, as SMD does. */
      snprintf(si->name, sizeof si->name, "%s", d->name);
      spk_srv_buf_str(b, "ok");
      goto out;
    }
  }
  if (n >= SPK_SRV_MAX_SINDEXES) {
    spk_srv_buf_str(b, "ERROR:202:already at sindex definition limit");
    goto out;
  }
  int set_id = 0;
  if (d->set[0]) {
    set_id = spk_srv_set_id(ns, (const uint8_t *)d->set, strlen(d->set), true);
    if (set_id <= 0) {
      spk_srv_buf_str(b, "ERROR:4:failed to get/create set");
      goto out;
    }
  }
  spk_srv_sindex *si = calloc(1, sizeof *si);
  if (!si) {
    spk_srv_buf_str(b, "ERROR:1:out of memory");
    goto out;
  }
  atomic_init(&si->refs, 1);
  memcpy(si->name, d->name, sizeof si->name);
  memcpy(si->set, d->set, sizeof si->set);
  memcpy(si->bin, d->bin, sizeof si->bin);
  si->bin_len = (uint8_t)strlen(d->bin);
  si->set_id = (uint16_t)set_id;
  si->ktype = d->ktype;
  si->itype = d->itype;
  si->ctx = d->ctx;
  si->ctx_len = d->ctx_len;
  si->ctx_b64 = d->ctx_b64;
  d->ctx = NULL;
  d->ctx_b64 = NULL;
  uint64_t t0 = spk_srv_mono_ms();
  bool empty = empty_set(ns, si->set_id);
  si->ready_ms = UINT64_MAX;
  ns->si_slots[free_slot] = si;
  spk_srv_si_list *old = NULL;
  if (publish(ns, &old) != 0) {
    ns->si_slots[free_slot] = NULL;
    spk_srv_sindex_release(si);
    spk_srv_buf_str(b, "ERROR:1:out of memory");
    goto out;
  }
  populate(ns, si); /* takes every partition lock: old list unreachable */
  free(old);
  uint64_t t1 = spk_srv_mono_ms();
  if (empty) {
    si->ready_ms = t0; /* load_time stays 0, as the real shortcut */
  } else {
    uint64_t min = t0 + c->srv->cfg.sindex_populate_ms;
    si->ready_ms = t1 > min ? t1 : min;
    si->load_time = si->ready_ms - t0;
  }
  spk_srv_buf_str(b, "ok");
out:
  pthread_mutex_unlock(&ns->si_lock);
}

static void drop(spk_buf *b, spk_srv_ns *ns, const char *name) {
  pthread_mutex_lock(&ns->si_lock);
  spk_srv_sindex *si = NULL;
  for (uint32_t i = 0; i < SPK_SRV_MAX_SINDEXES && !si; i++) {
    if (ns->si_slots[i] && strcmp(ns->si_slots[i]->name, name) == 0) {
      si = ns->si_slots[i];
      ns->si_slots[i] = NULL;
    }
  }
  if (si) {
    atomic_store(&si->dropped, true);
    spk_srv_si_list *old = NULL;
    /* Out of memory for the shorter list: a list without the index is
     * needed before it can go; keep trying (it is small). */
    while (publish(ns, &old) != 0) sched_yield();
    quiesce(ns);
    free(old);
  }
  pthread_mutex_unlock(&ns->si_lock);
  spk_srv_sindex_release(si);
  spk_srv_buf_str(b, "ok");
}

uint32_t spk_srv_sindex_count_set(spk_srv_ns *ns, uint16_t set_id, bool *populating) {
  uint32_t n = 0;
  uint64_t now = spk_srv_mono_ms();
  *populating = false;
  pthread_mutex_lock(&ns->si_lock);
  for (uint32_t i = 0; i < SPK_SRV_MAX_SINDEXES; i++) {
    const spk_srv_sindex *si = ns->si_slots[i];
    if (!si || si->set_id != set_id) continue;
    n++;
    if (now < si->ready_ms) *populating = true;
  }
  pthread_mutex_unlock(&ns->si_lock);
  return n;
}

/* ---- info: parameters ----------------------------------------------------------------------- */

enum { P_OK = 0, P_NOT_FOUND, P_TOO_LONG };

/* The value of key in "k=v;k=v" (copied, NUL-terminated, at most cap - 1). */
static int param_get(const char *params, size_t plen, const char *key, char *out,
                     size_t cap) {
  size_t kl = strlen(key);
  const char *p = params, *e = params ? params + plen : NULL;
  while (p && p < e) {
    const char *semi = memchr(p, ';', (size_t)(e - p));
    const char *end = semi ? semi : e;
    if ((size_t)(end - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
      size_t vl = (size_t)(end - p) - kl - 1;
      if (vl >= cap) return P_TOO_LONG;
      memcpy(out, p + kl + 1, vl);
      out[vl] = '\0';
      return P_OK;
    }
    p = end + 1;
  }
  return P_NOT_FOUND;
}

/* Required parameter: false (answer written) when missing, empty or too
 * long.  (rv P_OK with an empty value is reported as missing.) */
static bool required(spk_buf *b, int rv, const char *name, const char *value) {
  if (rv == P_OK && value[0]) return true;
  if (rv == P_OK) rv = P_NOT_FOUND;
  if (rv == P_NOT_FOUND) spk_srv_buf_printf(b, "ERROR:4:missing '%s'", name);
  else spk_srv_buf_printf(b, "ERROR:4:'%s' too long", name);
  return false;
}

/* Optional parameter: false (answer written) when too long. */
static bool optional(spk_buf *b, int rv, const char *name) {
  if (rv != P_TOO_LONG) return true;
  spk_srv_buf_printf(b, "ERROR:4:'%s' too long", name);
  return false;
}

/* Exactly one of two alternative parameters (results of param_get). */
static bool exactly_one(spk_buf *b, int rv1, int rv2, const char *n1, const char *n2) {
  if (rv1 == P_OK && rv2 == P_OK) {
    spk_srv_buf_printf(b, "ERROR:4:both '%s' and '%s' are specified", n1, n2);
    return false;
  }
  if (rv1 == P_NOT_FOUND && rv2 == P_NOT_FOUND) {
    spk_srv_buf_printf(b, "ERROR:4:both '%s' and '%s' are missing", n1, n2);
    return false;
  }
  return true;
}

static int ns_param(const char *params, size_t plen, char *out, size_t cap) {
  int rv = param_get(params, plen, "namespace", out, cap);
  if (rv == P_NOT_FOUND) rv = param_get(params, plen, "ns", out, cap);
  return rv;
}

static uint8_t ktype_of(const char *s) {
  if (!strcasecmp(s, "numeric")) return SPK_PARTICLE_INTEGER;
  if (!strcasecmp(s, "string")) return SPK_PARTICLE_STRING;
  if (!strcasecmp(s, "blob")) return SPK_PARTICLE_BLOB;
  if (!strcasecmp(s, "geo2dsphere")) return SPK_PARTICLE_GEOJSON;
  return 0;
}

static const char *ktype_name(uint8_t t) {
  switch (t) {
  case SPK_PARTICLE_INTEGER: return "numeric";
  case SPK_PARTICLE_STRING: return "string";
  case SPK_PARTICLE_BLOB: return "blob";
  default: return "geo2dsphere";
  }
}

static int itype_of(const char *s) {
  for (int i = 0; i < 4; i++)
    if (!strcasecmp(s, itype_names[i])) return i;
  return -1;
}

static bool bad_name(const char *s) {
  return s[0] == '\0';
}

/* sindex-create: the parameter checks of the real server, in its order. */
static void cmd_create(spk_srv_ctx *c, spk_buf *b, const char *params, size_t plen) {
  si_def d;
  memset(&d, 0, sizeof d);
  char ns_name[32], itype_s[10], ktype_s[12], idata[16 + 12], exp[16 * 1024];
  char ctx_s[2048];
  if (!required(b, param_get(params, plen, "indexname", d.name, sizeof d.name), "indexname",
                d.name))
    return;
  if (!required(b, ns_param(params, plen, ns_name, sizeof ns_name), "namespace", ns_name))
    return;
  int rv = param_get(params, plen, "set", d.set, sizeof d.set);
  if (!optional(b, rv, "set")) return;
  rv = param_get(params, plen, "context", ctx_s, sizeof ctx_s);
  if (!optional(b, rv, "context")) return;
  bool has_ctx = rv == P_OK;
  if (has_ctx) {
    size_t l = strlen(ctx_s);
    uint8_t *buf = malloc(l / 4 * 3 + 3);
    long n = buf ? spk_base64_decode(ctx_s, l, buf, l / 4 * 3 + 3) : -1;
    if (n <= 0) {
      free(buf);
      spk_srv_buf_str(b, "ERROR:4:'context' invalid base64");
      return;
    }
    int bad = spk_srv_cdt_ctx_check(buf, (uint32_t)n);
    if (bad) {
      free(buf);
      spk_srv_buf_str(b, bad == 2 ? "ERROR:4:'context' not normalized msgpack"
                                  : "ERROR:4:'context' invalid cdt context");
      return;
    }
    d.ctx = buf;
    d.ctx_len = (uint32_t)n;
    d.ctx_b64 = strdup(ctx_s);
    if (!d.ctx_b64) goto oom;
  }
  rv = param_get(params, plen, "indextype", itype_s, sizeof itype_s);
  if (!optional(b, rv, "indextype")) goto done;
  if (rv == P_OK) {
    int it = itype_of(itype_s);
    if (it < 0) {
      spk_srv_buf_str(b, "ERROR:4:bad 'indextype' - must be one of 'default', 'list', "
                         "'mapkeys', 'mapvalues'");
      goto done;
    }
    d.itype = (uint8_t)it;
  }
  int idata_rv = param_get(params, plen, "indexdata", idata, sizeof idata);
  if (!optional(b, idata_rv, "indexdata")) goto done;
  int type_rv = param_get(params, plen, "type", ktype_s, sizeof ktype_s);
  if (!optional(b, type_rv, "type")) goto done;
  if (!exactly_one(b, idata_rv, type_rv, "indexdata", "type")) goto done;
  if (type_rv == P_OK) {
    d.ktype = ktype_of(ktype_s);
    if (!d.ktype) {
      spk_srv_buf_str(b, "ERROR:4:bad 'type' - must be one of 'numeric', 'string', "
                         "'blob', 'geo2dsphere'");
      goto done;
    }
    int bin_rv = param_get(params, plen, "bin", d.bin, sizeof d.bin);
    if (!optional(b, bin_rv, "bin")) goto done;
    int exp_rv = param_get(params, plen, "exp", exp, sizeof exp);
    if (!optional(b, exp_rv, "exp")) goto done;
    if (!exactly_one(b, bin_rv, exp_rv, "bin", "exp")) goto done;
    if (exp_rv == P_OK) {
      if (has_ctx) {
        spk_srv_buf_str(b, "ERROR:4:both 'context' and 'exp' are specified");
        goto done;
      }
      /* Expression indexes are not implemented by the embedded server. */
      spk_srv_buf_str(b, "ERROR:4:bad 'exp' - expression indexes not supported");
      goto done;
    }
    if (bad_name(d.bin)) {
      spk_srv_buf_str(b, "ERROR:4:bad 'bin'");
      goto done;
    }
  } else {
    /* Old protocol: indexdata=bin,type. */
    char *comma = strchr(idata, ',');
    if (!comma) {
      spk_srv_buf_str(b, "ERROR:4:'indexdata' missing bin type");
      goto done;
    }
    *comma = '\0';
    if (idata[0] == '\0') {
      spk_srv_buf_str(b, "ERROR:4:'indexdata' missing bin name");
      goto done;
    }
    if (strlen(idata) >= sizeof d.bin) {
      spk_srv_buf_str(b, "ERROR:4:'indexdata' bin name too long");
      goto done;
    }
    d.ktype = ktype_of(comma + 1);
    if (!d.ktype) {
      spk_srv_buf_str(b, "ERROR:4:bad 'indexdata' bin type - must be one of 'numeric', "
                         "'string', 'blob', 'geo2dsphere'");
      goto done;
    }
    memcpy(d.bin, idata, strlen(idata) + 1);
  }
  if (d.itype == IT_MAPKEYS && d.ktype == SPK_PARTICLE_GEOJSON) {
    spk_srv_buf_str(b, "ERROR:4:bad 'indexdata' bin type for 'indextype' 'mapkeys' - "
                       "must be one of 'numeric', 'string', 'blob'");
    goto done;
  }
  spk_srv_ns *ns = spk_srv_ns_find(c->srv, (const uint8_t *)ns_name, strlen(ns_name));
  if (!ns) {
    spk_srv_buf_str(b, "ERROR:4:namespace not found");
    goto done;
  }
  create(c, b, ns, &d);
  goto done;
oom:
  spk_srv_buf_str(b, "ERROR:1:out of memory");
done:
  free(d.ctx);
  free(d.ctx_b64);
}

static void cmd_delete(spk_srv_ctx *c, spk_buf *b, const char *params, size_t plen) {
  char name[INAME_MAX_SZ], ns_name[32];
  if (!required(b, param_get(params, plen, "indexname", name, sizeof name), "indexname", name))
    return;
  if (!required(b, ns_param(params, plen, ns_name, sizeof ns_name), "namespace", ns_name))
    return;
  spk_srv_ns *ns = spk_srv_ns_find(c->srv, (const uint8_t *)ns_name, strlen(ns_name));
  if (!ns) {
    spk_srv_buf_str(b, "ok"); /* no such index there */
    return;
  }
  drop(b, ns, name);
}

/* Context in list form: [type(value), ...]. */
static void ctx_text(spk_buf *b, const uint8_t *ctx, uint32_t len) {
  static const char *const names[] = {"list_index", "list_rank", "?", "list_value",
                                      "map_index", "map_rank", "map_key", "map_value"};
  spk_mp_reader r;
  spk_mp_item it;
  spk_mp_reader_init(&r, ctx, len);
  if (spk_mp_next(&r, &it) != 0 || it.type != SPK_MP_ARRAY) return;
  spk_srv_buf_str(b, "[");
  for (uint32_t i = 0; i + 1 < it.v.n; i += 2) {
    spk_mp_item t, v;
    if (spk_mp_next(&r, &t) != 0 || t.type != SPK_MP_INT) return;
    const uint8_t *vp = r.p;
    size_t vs = spk_srv_mp_size(r.p, r.end);
    if (!vs) return;
    spk_mp_reader vr;
    spk_mp_reader_init(&vr, vp, vs);
    r.p += vs;
    int64_t ty = t.v.i;
    uint32_t ix = (uint32_t)((ty & 0x20 ? 4 : 0) + (ty & 0x03));
    spk_srv_buf_printf(b, "%s%s(", i ? ", " : "", names[ix & 7]);
    if (spk_mp_next(&vr, &v) == 0) {
      if (v.type == SPK_MP_INT) spk_srv_buf_printf(b, "%" PRId64, v.v.i);
      else if ((v.type == SPK_MP_STR || v.type == SPK_MP_BIN) && v.v.s.len && v.v.s.p[0] == 3)
        spk_srv_buf_printf(b, "\"%.*s\"", (int)v.v.s.len - 1, (const char *)v.v.s.p + 1);
      else
        for (size_t k = 0; k < vs; k++) spk_srv_buf_printf(b, "%02x", vp[k]);
    }
    spk_srv_buf_str(b, ")");
  }
  spk_srv_buf_str(b, "]");
}

static void list_ns(spk_buf *b, spk_srv_ns *ns, bool b64) {
  uint64_t now = spk_srv_mono_ms();
  pthread_mutex_lock(&ns->si_lock);
  for (uint32_t i = 0; i < SPK_SRV_MAX_SINDEXES; i++) {
    const spk_srv_sindex *si = ns->si_slots[i];
    if (!si) continue;
    spk_srv_buf_printf(b, "ns=%s:indexname=%s:set=%s:bin=%s:type=%s:indextype=%s:context=",
                       ns->cfg.name, si->name, si->set[0] ? si->set : "null", si->bin,
                       ktype_name(si->ktype), itype_names[si->itype]);
    if (!si->ctx) spk_srv_buf_str(b, "null");
    else if (b64) spk_srv_buf_str(b, si->ctx_b64);
    else ctx_text(b, si->ctx, si->ctx_len);
    spk_srv_buf_printf(b, ":exp=null:state=%s;", now >= si->ready_ms ? "RW" : "WO");
  }
  pthread_mutex_unlock(&ns->si_lock);
}

static void chomp(spk_buf *b, size_t from) {
  if (b->len > from && b->data[b->len - 1] == ';') b->len--;
}

static void cmd_list(spk_srv_ctx *c, spk_buf *b, const char *params, size_t plen) {
  char ns_name[128], b64s[6];
  spk_srv_ns *ns = NULL;
  int rv = ns_param(params, plen, ns_name, sizeof ns_name);
  if (!optional(b, rv, "namespace")) return;
  if (rv == P_OK) {
    ns = spk_srv_ns_find(c->srv, (const uint8_t *)ns_name, strlen(ns_name));
    if (!ns) {
      spk_srv_buf_str(b, "ERROR:4:namespace not found");
      return;
    }
  }
  bool b64 = false;
  rv = param_get(params, plen, "b64", b64s, sizeof b64s);
  if (rv == P_TOO_LONG || (rv == P_OK && strcmp(b64s, "true") && strcmp(b64s, "false"))) {
    spk_srv_buf_str(b, "ERROR:4:bad b64");
    return;
  }
  b64 = rv == P_OK && !strcmp(b64s, "true");
  size_t start = b->len;
  for (uint32_t i = 0; i < c->srv->n_ns; i++)
    if (!ns || c->srv->ns[i] == ns) list_ns(b, c->srv->ns[i], b64);
  chomp(b, start);
}

static uint64_t round_frac(uint64_t n, uint64_t d) {
  return (uint64_t)((double)n / (double)d + 0.5);
}

static int cmp_digest(const void *a, const void *b) {
  return memcmp(a, b, SPK_DIGEST_SIZE);
}

/* Tree nodes the real index would use for n entries in a partition (one
 * 4 KiB node per partition even when empty; approximate beyond one leaf). */
static uint64_t tree_nodes(uint32_t n) {
  if (n <= 291) return 1;
  uint64_t leaves = (n + 145) / 146;
  return leaves + (leaves + 112) / 113;
}

static void stats(spk_buf *b, spk_srv_ns *ns, spk_srv_sindex *si) {
  /* Live cardinality (the real server refreshes it hourly). */
  uint64_t n_keys = 0, nodes = 0, n_recs = 0, cap = 0;
  int64_t *bv = NULL;
  bool ok = true;
  uint8_t *dg = NULL;
  for (uint32_t p = 0; p < SPK_SRV_NPART; p++) {
    pthread_mutex_lock(&ns->parts[p].lock);
    const spk_srv_si_tree *t = &si->trees[p];
    nodes += tree_nodes(t->n);
    if (t->n && ok) {
      if (n_keys + t->n > cap) {
        uint64_t nc = (n_keys + t->n) * 2;
        int64_t *nb = realloc(bv, nc * sizeof *nb);
        if (nb) {
          bv = nb;
          cap = nc;
        } else {
          ok = false;
        }
      }
      if (ok && si->itype != IT_DEFAULT) {
        uint8_t *nd = realloc(dg, (size_t)t->n * SPK_DIGEST_SIZE);
        if (nd) {
          dg = nd;
          for (uint32_t i = 0; i < t->n; i++)
            memcpy(dg + (size_t)i * SPK_DIGEST_SIZE, t->e[i].digest, SPK_DIGEST_SIZE);
          qsort(dg, t->n, SPK_DIGEST_SIZE, cmp_digest);
          n_recs++;
          for (uint32_t i = 1; i < t->n; i++)
            n_recs += memcmp(dg + (size_t)i * SPK_DIGEST_SIZE,
                             dg + (size_t)(i - 1) * SPK_DIGEST_SIZE, SPK_DIGEST_SIZE) != 0;
        }
      }
      if (ok)
        for (uint32_t i = 0; i < t->n; i++) bv[n_keys + i] = t->e[i].bval;
    }
    n_keys += t->n;
    pthread_mutex_unlock(&ns->parts[p].lock);
  }
  uint64_t n_bvals = 0;
  if (ok && n_keys) {
    qsort(bv, n_keys, sizeof *bv, cmp_i64);
    n_bvals = 1;
    for (uint64_t i = 1; i < n_keys; i++) n_bvals += bv[i] != bv[i - 1];
  }
  free(bv);
  free(dg);
  uint64_t per_rec = si->itype == IT_DEFAULT ? (n_keys ? 1 : 0)
                                             : (n_recs ? round_frac(n_keys, n_recs) : 0);
  bool readable = spk_srv_mono_ms() >= si->ready_ms;
  spk_srv_buf_printf(b,
                     "entries=%" PRIu64 ";used_bytes=%" PRIu64 ";entries_per_bval=%" PRIu64
                     ";entries_per_rec=%" PRIu64 ";load_pct=%u;load_time=%" PRIu64
                     ";stat_gc_recs=0",
                     n_keys, nodes * NODE_SZ, n_bvals ? round_frac(n_keys, n_bvals) : 0,
                     per_rec, readable ? 100u : 0u, readable ? si->load_time : 0);
}

static void stat_of(spk_srv_ctx *c, spk_buf *b, const char *ns_name, size_t ns_len,
                    const char *name) {
  spk_srv_ns *ns = spk_srv_ns_find(c->srv, (const uint8_t *)ns_name, ns_len);
  if (!ns) {
    spk_srv_buf_str(b, "ERROR:4:namespace not found");
    return;
  }
  pthread_mutex_lock(&ns->si_lock);
  spk_srv_sindex *si = by_name(ns, name);
  if (si) stats(b, ns, si);
  else spk_srv_buf_str(b, "ERROR:201:no index");
  pthread_mutex_unlock(&ns->si_lock);
}

static void cmd_stat(spk_srv_ctx *c, spk_buf *b, const char *params, size_t plen) {
  char name[INAME_MAX_SZ], ns_name[32];
  if (!required(b, ns_param(params, plen, ns_name, sizeof ns_name), "namespace", ns_name))
    return;
  if (!required(b, param_get(params, plen, "indexname", name, sizeof name), "indexname", name))
    return;
  stat_of(c, b, ns_name, strlen(ns_name), name);
}

static void cmd_exists(spk_srv_ctx *c, spk_buf *b, const char *params, size_t plen) {
  char name[INAME_MAX_SZ], ns_name[32];
  if (!required(b, param_get(params, plen, "indexname", name, sizeof name), "indexname", name))
    return;
  if (!required(b, ns_param(params, plen, ns_name, sizeof ns_name), "namespace", ns_name))
    return;
  spk_srv_ns *ns = spk_srv_ns_find(c->srv, (const uint8_t *)ns_name, strlen(ns_name));
  if (!ns) {
    spk_srv_buf_str(b, "ERROR:4:namespace not found");
    return;
  }
  pthread_mutex_lock(&ns->si_lock);
  spk_srv_buf_str(b, by_name(ns, name) ? "true" : "false");
  pthread_mutex_unlock(&ns->si_lock);
}

/* sindex[/ns[/name]]: the old tree form. */
static void cmd_tree(spk_srv_ctx *c, spk_buf *b, const char *args, size_t alen) {
  if (!args || alen == 0) {
    cmd_list(c, b, NULL, 0);
    return;
  }
  const char *slash = memchr(args, '/', alen);
  size_t ns_len = slash ? (size_t)(slash - args) : alen;
  if (!slash) {
    spk_srv_ns *ns = spk_srv_ns_find(c->srv, (const uint8_t *)args, ns_len);
    if (!ns) {
      spk_srv_buf_str(b, "ERROR:4:namespace not found");
      return;
    }
    size_t start = b->len;
    list_ns(b, ns, false);
    chomp(b, start);
    return;
  }
  size_t nl = alen - ns_len - 1;
  char name[INAME_MAX_SZ];
  if (nl == 0 || nl >= sizeof name) {
    spk_srv_buf_str(b, "ERROR:201:no index");
    return;
  }
  memcpy(name, slash + 1, nl);
  name[nl] = '\0';
  stat_of(c, b, args, ns_len, name);
}

void spk_srv_sindex_info(spk_srv_ctx *c, spk_buf *b, const char *cmd,
                         const char *args, size_t args_len, const char *params,
                         size_t params_len) {
  if (!strcmp(cmd, "sindex-create")) cmd_create(c, b, params, params_len);
  else if (!strcmp(cmd, "sindex-delete")) cmd_delete(c, b, params, params_len);
  else if (!strcmp(cmd, "sindex-list")) cmd_list(c, b, params, params_len);
  else if (!strcmp(cmd, "sindex-stat")) cmd_stat(c, b, params, params_len);
  else if (!strcmp(cmd, "sindex-exists")) cmd_exists(c, b, params, params_len);
  else cmd_tree(c, b, args, args_len);
}

/* ---- queries ---------------------------------------------------------------------------------- */

int spk_srv_si_query_parse(const spk_srv_req *r, spk_srv_si_query *q) {
  memset(q, 0, sizeof *q);
  const uint8_t *p = r->f[SPK_FIELD_INDEX_RANGE].p;
  uint32_t len = r->f[SPK_FIELD_INDEX_RANGE].len;
  if (len == 0 || p[0] != 1) return SPK_SRV_ERR_PARAMETER; /* one range only */
  p++;
  len--;
  if (len == 0) return SPK_SRV_ERR_PARAMETER;
  uint8_t bl = *p++;
  len--;
  bool by_name = spk_srv_req_has(r, SPK_FIELD_INDEX_NAME) ||
                 spk_srv_req_has(r, SPK_FIELD_INDEX_EXPRESSION);
  if ((bl == 0 && !by_name) || bl >= sizeof q->bin || len < bl) return SPK_SRV_ERR_PARAMETER;
  memcpy(q->bin, p, bl);
  q->bin_len = bl;
  p += bl;
  len -= bl;
  if (len == 0) return SPK_SRV_ERR_PARAMETER;
  q->ptype = *p++;
  len--;
  switch (q->ptype) {
  case SPK_PARTICLE_INTEGER:
    if (len < 24 || spk_be32(p) != 8 || spk_be32(p + 12) != 8) return SPK_SRV_ERR_PARAMETER;
    q->begin = (int64_t)spk_be64(p + 4);
    q->end = (int64_t)spk_be64(p + 16);
    if (q->begin > q->end) return SPK_SRV_ERR_PARAMETER;
    q->isrange = q->begin != q->end;
    break;
  case SPK_PARTICLE_STRING:
  case SPK_PARTICLE_BLOB: {
    if (len < 4) return SPK_SRV_ERR_PARAMETER;
    uint32_t sl = spk_be32(p);
    if (sl >= (q->ptype == SPK_PARTICLE_STRING ? MAX_STRING_KSIZE : MAX_BLOB_KSIZE) ||
        len - 4 < sl)
      return SPK_SRV_ERR_PARAMETER;
    /* The end value repeats the begin one; the server ignores it. */
    q->value = p + 4;
    q->value_len = sl;
    q->begin = q->end = (int64_t)spk_srv_wyhash64(q->value, sl);
    break;
  }
  case SPK_PARTICLE_GEOJSON: {
    if (len < 4) return SPK_SRV_ERR_PARAMETER;
    uint32_t sl = spk_be32(p);
    uint64_t cell;
    if (sl == 0 || sl >= MAX_GEOJSON_KSIZE || len - 4 < sl ||
        spk_srv_geo_cell(p + 4, sl, &cell) != 0)
      return SPK_SRV_ERR_PARAMETER;
    q->value = p + 4;
    q->value_len = sl;
    /* Without covering cells every entry is a candidate; records are then
     * checked for containment. */
    q->geo = true;
    q->isrange = true;
    q->begin = 0;
    q->end = -1; /* UINT64_MAX in the unsigned geo order */
    break;
  }
  default:
    return SPK_SRV_ERR_PARAMETER;
  }
  if (spk_srv_req_has(r, SPK_FIELD_INDEX_TYPE)) {
    if (r->f[SPK_FIELD_INDEX_TYPE].len == 0) return SPK_SRV_ERR_PARAMETER;
    q->itype = r->f[SPK_FIELD_INDEX_TYPE].p[0];
  }
  if (spk_srv_req_has(r, SPK_FIELD_INDEX_CONTEXT)) {
    const spk_srv_field *f = &r->f[SPK_FIELD_INDEX_CONTEXT];
    if (f->len == 0 || spk_srv_cdt_ctx_check(f->p, f->len) != 0) return SPK_SRV_ERR_PARAMETER;
    q->ctx = f->p;
    q->ctx_len = f->len;
  }
  return 0;
}

static bool query_def(const spk_srv_sindex *si, const spk_srv_si_query *q, uint16_t set_id) {
  return si->set_id == set_id && si->bin_len == q->bin_len &&
         memcmp(si->bin, q->bin, q->bin_len) == 0 && si->ktype == q->ptype &&
         si->itype == q->itype && si->ctx_len == q->ctx_len &&
         (q->ctx_len == 0 || memcmp(si->ctx, q->ctx, q->ctx_len) == 0);
}

int spk_srv_si_query_find(spk_srv_ns *ns, const spk_srv_req *r,
                          const spk_srv_si_query *q, int set_id,
                          spk_srv_sindex **out) {
  *out = NULL;
  spk_srv_sindex *found = NULL;
  pthread_mutex_lock(&ns->si_lock);
  if (spk_srv_req_has(r, SPK_FIELD_INDEX_NAME)) {
    const spk_srv_field *f = &r->f[SPK_FIELD_INDEX_NAME];
    char name[INAME_MAX_SZ];
    if (f->len > 0 && f->len < sizeof name) {
      memcpy(name, f->p, f->len);
      name[f->len] = '\0';
      found = by_name(ns, name);
      /* An index of another key type cannot answer this range. */
      if (found && found->ktype != q->ptype) found = NULL;
    }
  } else if (!spk_srv_req_has(r, SPK_FIELD_INDEX_EXPRESSION)) {
    /* The query's set first, then a whole-namespace index. */
    for (int pass = set_id > 0 ? 0 : 1; pass < 2 && !found; pass++) {
      uint16_t sid = pass == 0 ? (uint16_t)set_id : 0;
      for (uint32_t i = 0; i < SPK_SRV_MAX_SINDEXES && !found; i++)
        if (ns->si_slots[i] && query_def(ns->si_slots[i], q, sid)) found = ns->si_slots[i];
    }
  }
  int rc = 0;
  if (!found) rc = SPK_SRV_ERR_SINDEX_NOT_FOUND;
  else if (spk_srv_mono_ms() < found->ready_ms) rc = SPK_SRV_ERR_SINDEX_NOT_READABLE;
  else {
    atomic_fetch_add_explicit(&found->refs, 1, memory_order_relaxed);
    *out = found;
  }
  pthread_mutex_unlock(&ns->si_lock);
  return rc;
}

typedef struct match_arg {
  const spk_srv_si_query *q;
  bool hit;
} match_arg;

static bool match_visit(void *arg, const si_val *v) {
  match_arg *m = arg;
  const spk_srv_si_query *q = m->q;
  if (q->geo) {
    if (v->type == SPK_PARTICLE_GEOJSON &&
        spk_srv_geo_match(v->p, v->n, q->value, q->value_len) == 1)
      m->hit = true;
  } else if (v->n == q->value_len && v->bval == q->begin &&
             (v->n == 0 || memcmp(v->p, q->value, v->n) == 0)) {
    m->hit = true;
  }
  return !m->hit;
}

bool spk_srv_si_rec_matches(const spk_srv_sindex *si, const spk_srv_rec *r,
                            const spk_srv_si_query *q) {
  /* Integer entries are exact: the index moves with the record. */
  if (si->ktype == SPK_PARTICLE_INTEGER) return true;
  match_arg m = {q, false};
  rec_values(si, r, match_visit, &m);
  return m.hit;
}

/* ---- consistency check (tests) ----------------------------------------------------------------- */

static bool collect_visit(void *arg, const si_val *v) {
  return bvec_push(arg, v);
}

int64_t spk_srv_sindex_verify(spk_srv_ns *ns, const char *name) {
  pthread_mutex_lock(&ns->si_lock);
  spk_srv_sindex *si = by_name(ns, name);
  if (!si) {
    pthread_mutex_unlock(&ns->si_lock);
    return -1;
  }
  int64_t bad = 0, total = 0;
  for (uint32_t p = 0; p < SPK_SRV_NPART; p++) {
    spk_srv_part *part = &ns->parts[p];
    pthread_mutex_lock(&part->lock);
    const spk_srv_si_tree *t = &si->trees[p];
    uint32_t expected = 0;
    for (uint32_t i = 0; i < part->cap; i++) {
      const spk_srv_rec *r = part->slots[i];
      if (!r) continue;
      bvec v;
      bvec_init(&v);
      rec_values(si, r, collect_visit, &v);
      bvec_sort_unique(&v);
      expected += v.n;
      for (uint32_t k = 0; k < v.n; k++) {
        uint32_t at = tree_lower(si, t, v.v[k], r->digest);
        if (at >= t->n || t->e[at].bval != v.v[k] ||
            memcmp(t->e[at].digest, r->digest, SPK_DIGEST_SIZE) != 0)
          bad++;
      }
      bvec_free(&v);
    }
    if (t->n != expected) bad += t->n > expected ? t->n - expected : expected - t->n;
    for (uint32_t i = 1; i < t->n; i++)
      if (spk_srv_si_cmp(si, t->e[i - 1].bval, t->e[i - 1].digest, t->e[i].bval,
                         t->e[i].digest) >= 0)
        bad++;
    total += t->n;
    pthread_mutex_unlock(&part->lock);
  }
  if (total != atomic_load(&si->n_entries)) bad++;
  pthread_mutex_unlock(&ns->si_lock);
  return bad;
}
