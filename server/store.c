/*
 * store.c - records in memory.
 *
 * Each namespace has 4096 partitions; each partition is an open-addressing
 * hash table of record pointers (linear probing, backward-shift deletion)
 * under its own mutex.  Requests on different partitions never contend, and
 * a request holds one partition lock for its whole read-modify-write, which
 * gives single-record atomicity.
 *
 * In cluster mode all nodes share these tables: the real cluster keeps
 * replica copies identical (RF >= 2 writes are synchronous), so a client
 * cannot tell one shared copy from N synchronised ones.
 */
#include <stdlib.h>

#include "srv.h"

spk_srv_ns *spk_srv_ns_create(const spk_srv_ns_cfg *cfg, uint32_t ix) {
  spk_srv_ns *ns = calloc(1, sizeof *ns);
  if (!ns) return NULL;
  ns->cfg = *cfg;
  ns->ix = ix;
  pthread_mutex_init(&ns->sets_lock, NULL);
  pthread_mutex_init(&ns->si_lock, NULL);
  for (uint32_t i = 0; i < SPK_SRV_NPART; i++)
    pthread_mutex_init(&ns->parts[i].lock, NULL);
  return ns;
}

void spk_srv_ns_destroy(spk_srv_ns *ns) {
  if (!ns) return;
  spk_srv_sindex_free_all(ns);
  pthread_mutex_destroy(&ns->si_lock);
  for (uint32_t i = 0; i < SPK_SRV_NPART; i++) {
    spk_srv_part *p = &ns->parts[i];
    for (uint32_t j = 0; j < p->cap; j++) free(p->slots[j]);
    free(p->slots);
    pthread_mutex_destroy(&p->lock);
  }
  pthread_mutex_destroy(&ns->sets_lock);
  free(ns);
}

spk_srv_ns *spk_srv_ns_find(spk_srv *s, const uint8_t *name, size_t len) {
  for (uint32_t i = 0; i < s->n_ns; i++) {
    const char *n = s->ns[i]->cfg.name;
    if (strlen(n) == len && memcmp(n, name, len) == 0) return s->ns[i];
  }
  return NULL;
}

/* ---- partition hash table ------------------------------------------------------ */

/* The first 12 bits of the digest select the partition; hash on later ones. */
static inline uint32_t slot_hash(const uint8_t *d) {
  uint32_t h;
  memcpy(&h, d + 8, sizeof h);
  return h;
}

spk_srv_rec *spk_srv_part_get(spk_srv_part *p, const uint8_t *digest) {
  if (p->cap == 0) return NULL;
  uint32_t mask = p->cap - 1;
  for (uint32_t i = slot_hash(digest) & mask;; i = (i + 1) & mask) {
    spk_srv_rec *r = p->slots[i];
    if (!r) return NULL;
    if (memcmp(r->digest, digest, SPK_DIGEST_SIZE) == 0) return r;
  }
}

static int grow(spk_srv_part *p) {
  uint32_t cap = p->cap ? p->cap * 2 : 8;
  spk_srv_rec **slots = calloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (uint32_t i = 0; i < p->cap; i++) {
    spk_srv_rec *r = p->slots[i];
    if (!r) continue;
    uint32_t j = slot_hash(r->digest) & (cap - 1);
    while (slots[j]) j = (j + 1) & (cap - 1);
    slots[j] = r;
  }
  free(p->slots);
  p->slots = slots;
  p->cap = cap;
  return 0;
}

int spk_srv_part_put(spk_srv_part *p, spk_srv_rec *r, spk_srv_rec **old) {
  *old = NULL;
  if ((p->n + 1) * 4 > p->cap * 3 && grow(p) != 0) return -1;
  uint32_t mask = p->cap - 1;
  for (uint32_t i = slot_hash(r->digest) & mask;; i = (i + 1) & mask) {
    spk_srv_rec *cur = p->slots[i];
    if (!cur) {
      p->slots[i] = r;
      p->n++;
      return 0;
    }
    if (memcmp(cur->digest, r->digest, SPK_DIGEST_SIZE) == 0) {
      *old = cur;
      p->slots[i] = r;
      return 0;
    }
  }
}

spk_srv_rec *spk_srv_part_remove(spk_srv_part *p, const uint8_t *digest) {
  if (p->cap == 0) return NULL;
  uint32_t mask = p->cap - 1;
  uint32_t i = slot_hash(digest) & mask;
  for (;; i = (i + 1) & mask) {
    spk_srv_rec *r = p->slots[i];
    if (!r) return NULL;
    if (memcmp(r->digest, digest, SPK_DIGEST_SIZE) == 0) break;
  }
  spk_srv_rec *found = p->slots[i];
  /* Backward-shift: pull later entries of the probe chain into the hole so
   * lookups never need tombstones. */
  uint32_t hole = i;
  for (uint32_t j = (i + 1) & mask; p->slots[j]; j = (j + 1) & mask) {
    uint32_t home = slot_hash(p->slots[j]->digest) & mask;
    bool movable = hole <= j ? (home <= hole || home > j)
                             : (home <= hole && home > j);
    if (movable) {
      p->slots[hole] = p->slots[j];
      hole = j;
    }
  }
  p->slots[hole] = NULL;
  p->n--;
  return found;
}

/* ---- sets ------------------------------------------------------------------------ */

int spk_srv_set_id(spk_srv_ns *ns, const uint8_t *name, size_t len,
                   bool create) {
  if (len == 0) return 0;
  if (len >= sizeof ns->sets[0].name) return -1;
  uint32_t n = atomic_load_explicit(&ns->n_sets, memory_order_acquire);
  for (uint32_t i = 0; i < n; i++)
    if (ns->sets[i].len == len && memcmp(ns->sets[i].name, name, len) == 0)
      return (int)i + 1;
  if (!create) return 0;
  pthread_mutex_lock(&ns->sets_lock);
  int id = 0;
  n = atomic_load_explicit(&ns->n_sets, memory_order_relaxed);
  for (uint32_t i = 0; i < n; i++)
    if (ns->sets[i].len == len && memcmp(ns->sets[i].name, name, len) == 0)
      id = (int)i + 1;
  if (id == 0) {
    if (n == SPK_SRV_MAX_SETS) {
      id = -1;
    } else {
      spk_srv_set *st = &ns->sets[n];
      memcpy(st->name, name, len);
      st->name[len] = '\0';
      st->len = (uint32_t)len;
      atomic_store_explicit(&ns->n_sets, n + 1, memory_order_release);
      id = (int)n + 1;
    }
  }
  pthread_mutex_unlock(&ns->sets_lock);
  return id;
}

const spk_srv_set *spk_srv_set_get(spk_srv_ns *ns, uint16_t id) {
  if (id == 0 || id > atomic_load(&ns->n_sets)) return NULL;
  return &ns->sets[id - 1];
}

static inline int64_t rec_bytes(const spk_srv_rec *r) {
  return (int64_t)(sizeof *r + r->key_len + r->bins_len);
}

void spk_srv_rec_added(spk_srv_ns *ns, const spk_srv_rec *r) {
  atomic_fetch_add_explicit(&ns->objects, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&ns->bytes, rec_bytes(r), memory_order_relaxed);
  if (r->void_time == 0)
    atomic_fetch_add_explicit(&ns->non_expirable, 1, memory_order_relaxed);
  if (r->set_id) {
    spk_srv_set *st = &ns->sets[r->set_id - 1];
    atomic_fetch_add_explicit(&st->objects, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->bytes, rec_bytes(r), memory_order_relaxed);
  }
}

void spk_srv_rec_removed(spk_srv_ns *ns, const spk_srv_rec *r) {
  atomic_fetch_sub_explicit(&ns->objects, 1, memory_order_relaxed);
  atomic_fetch_sub_explicit(&ns->bytes, rec_bytes(r), memory_order_relaxed);
  if (r->void_time == 0)
    atomic_fetch_sub_explicit(&ns->non_expirable, 1, memory_order_relaxed);
  if (r->set_id) {
    spk_srv_set *st = &ns->sets[r->set_id - 1];
    atomic_fetch_sub_explicit(&st->objects, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&st->bytes, rec_bytes(r), memory_order_relaxed);
  }
}

bool spk_srv_rec_truncated(spk_srv_ns *ns, const spk_srv_rec *r) {
  uint64_t t = atomic_load_explicit(&ns->truncate_lut_ms, memory_order_relaxed);
  if (t && r->lut_ms <= t) return true;
  if (r->set_id) {
    t = atomic_load_explicit(&ns->sets[r->set_id - 1].truncate_lut_ms,
                             memory_order_relaxed);
    if (t && r->lut_ms <= t) return true;
  }
  return false;
}

/* ---- background sweeps -------------------------------------------------------------- */

typedef bool (*doomed_fn)(spk_srv_ns *ns, const spk_srv_rec *r, void *arg);

static uint64_t sweep(spk_srv_ns *ns, doomed_fn doomed, void *arg) {
  uint64_t n = 0;
  for (uint32_t pid = 0; pid < SPK_SRV_NPART; pid++) {
    spk_srv_part *p = &ns->parts[pid];
    pthread_mutex_lock(&p->lock);
    for (uint32_t i = 0; i < p->cap;) {
      spk_srv_rec *r = p->slots[i];
      if (r && doomed(ns, r, arg)) {
        /* Removal may shift a later record into slot i: re-check it. */
        spk_srv_part_remove(p, r->digest);
        spk_srv_rec_removed(ns, r);
        spk_srv_sindex_update(ns, r, NULL);
        free(r);
        n++;
        continue;
      }
      i++;
    }
    pthread_mutex_unlock(&p->lock);
  }
  return n;
}

static bool is_expired(spk_srv_ns *ns, const spk_srv_rec *r, void *arg) {
  (void)ns;
  return spk_srv_rec_expired(r, *(uint32_t *)arg);
}

uint64_t spk_srv_nsup(spk_srv_ns *ns) {
  uint32_t now = spk_srv_now_cl();
  uint64_t n = sweep(ns, is_expired, &now);
  atomic_fetch_add_explicit(&ns->st.expired, n, memory_order_relaxed);
  return n;
}

typedef struct {
  int set_id;
  uint64_t lut_ms;
} trunc_arg;

static bool is_truncated(spk_srv_ns *ns, const spk_srv_rec *r, void *arg) {
  (void)ns;
  const trunc_arg *t = arg;
  return (t->set_id == 0 || r->set_id == t->set_id) && r->lut_ms <= t->lut_ms;
}

uint64_t spk_srv_truncate(spk_srv_ns *ns, int set_id, uint64_t lut_ms) {
  trunc_arg t = {set_id, lut_ms};
  return sweep(ns, is_truncated, &t);
}
