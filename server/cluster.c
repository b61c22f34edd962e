/*
 * cluster.c - membership, partition assignment and the per-node views that
 * info answers and request routing read.
 *
 * Assignment follows the real server (AP, no racks, prefer-uniform-balance
 * off): nodes in succession order (node id descending) are shuffled per
 * partition by a Jenkins one-at-a-time hash of (FNV-1a(node id), FNV-1a(pid))
 * sorted descending; the first replication-factor nodes are the replicas,
 * master first.  With node ids B1, B2, B3 this reproduces the captured
 * 3-node replicas bitmaps bit for bit.
 *
 * A node loss goes through the phases a real cluster shows (captures,
 * info-cluster3): immediately the survivors report an unstable cluster
 * (cluster-stable -> ERROR:7, old size, integrity false); after reform_ms
 * they report the new size and key but peers, maps and generations are
 * still old; after migrate_ms more the peers list drops the node, the maps
 * and partition / peers / rebalance generations change.  Both delays
 * default to 0 (immediate).
 *
 * Views are immutable and never freed before exit, so readers load the
 * pointer without locks; only the control thread publishes new ones.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "srv.h"

/* ---- partition assignment ---------------------------------------------------------- */

static uint64_t fnv64(const uint8_t *p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static uint64_t jen64(const uint8_t *p, size_t n) {
  uint64_t h = 0;
  for (size_t i = 0; i < n; i++) {
    h += p[i];
    h += h << 10;
    h ^= h >> 6;
  }
  h += h << 3;
  h ^= h >> 11;
  h += h << 15;
  return h;
}

static void le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

void spk_srv_assign(const uint64_t *succession, uint32_t n, uint32_t pid,
                    uint8_t *order) {
  uint8_t pb[4] = {(uint8_t)pid, (uint8_t)(pid >> 8), (uint8_t)(pid >> 16),
                   (uint8_t)(pid >> 24)};
  uint64_t hp = fnv64(pb, 4);
  uint64_t v[SPK_SRV_MAX_NODES];
  for (uint32_t i = 0; i < n; i++) {
    uint8_t nb[8], buf[16];
    le64(nb, succession[i]);
    le64(buf, fnv64(nb, 8));
    le64(buf + 8, hp);
    /* The low byte carries the succession index so ties keep an order. */
    v[i] = (jen64(buf, 16) & ~(uint64_t)0xff) + i;
  }
  /* Insertion sort, descending (n is tiny). */
  for (uint32_t i = 1; i < n; i++) {
    uint64_t x = v[i];
    uint32_t j = i;
    while (j > 0 && v[j - 1] < x) {
      v[j] = v[j - 1];
      j--;
    }
    v[j] = x;
  }
  for (uint32_t i = 0; i < n; i++) order[i] = (uint8_t)(v[i] & 0xff);
}

/* ---- views ---------------------------------------------------------------------------- */

static uint64_t rng_next(spk_srv *s) {
  uint64_t x = s->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  s->rng = x;
  return x;
}

static uint64_t new_cluster_key(spk_srv *s) {
  return (rng_next(s) & 0x0FFFFFFFFFFFull) | 0x100000000000ull;
}

static spk_srv_view *view_alloc(spk_srv *s) {
  spk_srv_view *v = calloc(1, sizeof *v);
  if (!v) return NULL;
  for (uint32_t i = 0; i < s->n_ns; i++) {
    v->ns[i].replicas = calloc(SPK_SRV_NPART, sizeof *v->ns[i].replicas);
    if (!v->ns[i].replicas) {
      for (uint32_t j = 0; j < i; j++) free(v->ns[j].replicas);
      free(v);
      return NULL;
    }
  }
  v->retired_next = s->retired;
  s->retired = v;
  return v;
}

static spk_srv_view *view_copy(spk_srv *s, const spk_srv_view *from) {
  spk_srv_view *v = view_alloc(s);
  if (!v) return NULL;
  spk_srv_view *keep = v->retired_next;
  uint8_t(*reps[SPK_SRV_MAX_NS])[SPK_SRV_MAX_RF];
  for (uint32_t i = 0; i < s->n_ns; i++) reps[i] = v->ns[i].replicas;
  *v = *from;
  v->retired_next = keep;
  for (uint32_t i = 0; i < s->n_ns; i++) {
    v->ns[i].replicas = reps[i];
    memcpy(reps[i], from->ns[i].replicas,
           SPK_SRV_NPART * sizeof *from->ns[i].replicas);
  }
  return v;
}

static void publish(spk_srv_node *n, spk_srv_view *v) {
  atomic_store_explicit(&n->view, v, memory_order_release);
}

/* Bitmaps of node `self` from the replica table; returns how many
 * (ns, pid, column) claims differ from `old` (NULL: all). */
static uint32_t fill_bitmaps(spk_srv *s, spk_srv_view *v, uint32_t self,
                             const spk_srv_view *old) {
  uint32_t changes = 0;
  for (uint32_t i = 0; i < s->n_ns; i++) {
    spk_srv_view_ns *vn = &v->ns[i];
    memset(vn->bitmap, 0, sizeof vn->bitmap);
    for (uint32_t pid = 0; pid < SPK_SRV_NPART; pid++)
      for (uint32_t r = 0; r < vn->rf; r++)
        if (vn->replicas[pid][r] == self) spk_bitmap_set(vn->bitmap[r], pid);
    for (uint32_t r = 0; r < SPK_SRV_MAX_RF; r++)
      for (uint32_t b = 0; b < SPK_REPLICA_BITMAP_BYTES; b++) {
        uint8_t x = vn->bitmap[r][b] ^ (old ? old->ns[i].bitmap[r][b] : 0xff);
        changes += (uint32_t)__builtin_popcount(x);
      }
  }
  return changes;
}

/* Sort member indexes by node id, descending (the succession list). */
static void succession(spk_srv *s, uint8_t *m, uint32_t n) {
  for (uint32_t i = 1; i < n; i++) {
    uint8_t x = m[i];
    uint32_t j = i;
    while (j > 0 && s->nodes[m[j - 1]].id < s->nodes[x].id) {
      m[j] = m[j - 1];
      j--;
    }
    m[j] = x;
  }
}

/* Replica tables for a membership. */
static void assign_all(spk_srv *s, spk_srv_view *v) {
  uint64_t ids[SPK_SRV_MAX_NODES];
  for (uint32_t i = 0; i < v->n_members; i++) ids[i] = s->nodes[v->members[i]].id;
  for (uint32_t i = 0; i < s->n_ns; i++) {
    uint32_t rf = s->ns[i]->cfg.rf;
    if (rf > v->n_members) rf = v->n_members;
    if (rf > SPK_SRV_MAX_RF) rf = SPK_SRV_MAX_RF;
    if (rf == 0) rf = 1;
    v->ns[i].rf = rf;
    memset(v->ns[i].unavailable, 0, sizeof v->ns[i].unavailable);
  }
  uint8_t order[SPK_SRV_MAX_NODES];
  for (uint32_t pid = 0; pid < SPK_SRV_NPART; pid++) {
    spk_srv_assign(ids, v->n_members, pid, order);
    for (uint32_t i = 0; i < s->n_ns; i++)
      for (uint32_t r = 0; r < SPK_SRV_MAX_RF; r++)
        v->ns[i].replicas[pid][r] =
            r < v->ns[i].rf ? v->members[order[r]] : 0xff;
  }
}

/* The final (stable) view of node `self` for the alive membership. */
static spk_srv_view *final_view(spk_srv *s, uint32_t self,
                                const spk_srv_view *old, uint64_t key,
                                uint32_t cluster_gen, const spk_srv_view *tmpl) {
  spk_srv_view *v = tmpl ? view_copy(s, tmpl) : view_alloc(s);
  if (!v) return NULL;
  if (!tmpl) {
    v->n_members = 0;
    for (uint32_t i = 0; i < s->n_nodes; i++)
      if (atomic_load(&s->nodes[i].alive)) v->members[v->n_members++] = (uint8_t)i;
    succession(s, v->members, v->n_members);
    assign_all(s, v);
    for (uint32_t i = 0; i < s->n_ns; i++)
      v->ns[i].regime = old ? old->ns[i].regime : 0;
  }
  v->n_peers = 0;
  for (uint32_t i = v->n_members; i-- > 0;) /* peers by node id, ascending */
    if (v->members[i] != self) v->peers[v->n_peers++] = v->members[i];
  v->cluster_key = key;
  v->cluster_gen = cluster_gen;
  v->principal = v->n_members ? s->nodes[v->members[0]].id : s->nodes[self].id;
  v->integrity = v->is_member = v->migrate_allowed = v->stable = true;
  v->rebalance_ms = spk_srv_mono_ms();
  for (uint32_t i = 0; i < s->n_ns; i++)
    memset(v->ns[i].unavailable, 0, sizeof v->ns[i].unavailable);
  uint32_t changes = fill_bitmaps(s, v, self, old);
  if (!old) {
    v->partition_gen = 0;
    v->peers_gen = 2u * (v->n_members > 0 ? v->n_members - 1 : 0);
    v->rebalance_gen = 1;
  } else {
    /* The real counter moves once per partition whose client map changes
     * (it jumped 0 -> 5425 after one node loss), never by a small step. */
    v->partition_gen = (old->partition_gen < 0 ? 0 : old->partition_gen) +
                       (int32_t)changes + 1;
    v->peers_gen = old->peers_gen + 1;
    v->rebalance_gen = old->rebalance_gen + 1;
  }
  return v;
}

int spk_srv_cluster_init(spk_srv *s) {
  pthread_mutex_init(&s->cluster_lock, NULL);
  s->rng = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
  if (!s->rng) s->rng = 1;
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    spk_srv_node *n = &s->nodes[i];
    if (!n->id)
      n->id = 0x0BB9000000000000ull | (uint64_t)n->port << 16 | (0x0200u + i);
    snprintf(n->name, sizeof n->name, "%" PRIX64, n->id);
    atomic_store(&n->alive, true);
  }
  uint64_t key = new_cluster_key(s);
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    spk_srv_view *v = final_view(s, i, NULL, key, 1, NULL);
    if (!v) return -1;
    publish(&s->nodes[i], v);
  }
  return 0;
}

void spk_srv_cluster_free(spk_srv *s) {
  spk_srv_view *v = s->retired;
  while (v) {
    spk_srv_view *next = v->retired_next;
    for (uint32_t i = 0; i < s->n_ns; i++) free(v->ns[i].replicas);
    free(v);
    v = next;
  }
  s->retired = NULL;
  pthread_mutex_destroy(&s->cluster_lock);
}

/* ---- membership changes ------------------------------------------------------------- */

/* Phase "unstable": survivors keep their view but lose integrity. */
static void phase_unstable(spk_srv *s) {
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    spk_srv_node *n = &s->nodes[i];
    if (!atomic_load(&n->alive)) continue;
    spk_srv_view *cur = spk_srv_view_of(n);
    spk_srv_view *v = view_copy(s, cur);
    if (!v) continue;
    v->integrity = v->is_member = v->migrate_allowed = v->stable = false;
    publish(n, v);
  }
}

static uint32_t alive_members(spk_srv *s, uint8_t *m) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    if (atomic_load(&s->nodes[i].alive)) m[k++] = (uint8_t)i;
  succession(s, m, k);
  return k;
}

/* Phase "reformed": new size / key / principal, old peers and maps. */
static void phase_reformed(spk_srv *s) {
  uint8_t m[SPK_SRV_MAX_NODES];
  uint32_t k = alive_members(s, m);
  uint64_t key = new_cluster_key(s);
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    spk_srv_node *n = &s->nodes[i];
    if (!atomic_load(&n->alive)) continue;
    spk_srv_view *v = view_copy(s, spk_srv_view_of(n));
    if (!v) continue;
    v->n_members = k;
    memcpy(v->members, m, k);
    v->cluster_key = key;
    v->cluster_gen++;
    v->principal = k ? s->nodes[m[0]].id : n->id;
    v->integrity = v->is_member = true;
    v->migrate_allowed = false;
    v->stable = false;
    publish(n, v);
  }
}

/* Phase "migrated": everything final. */
static void phase_final(spk_srv *s) {
  uint64_t key = 0;
  uint32_t gen = 0;
  spk_srv_view *tmpl = NULL;
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    spk_srv_node *n = &s->nodes[i];
    if (!atomic_load(&n->alive)) continue;
    spk_srv_view *old = spk_srv_view_of(n);
    if (!key) {
      /* Keep the key of the reformed phase when there was one. */
      key = old->is_member && old->integrity && !old->stable
                ? old->cluster_key : new_cluster_key(s);
      gen = old->is_member && old->integrity && !old->stable
                ? old->cluster_gen : old->cluster_gen + 1;
    }
    spk_srv_view *v = final_view(s, i, old, key, gen, tmpl);
    if (!v) continue;
    if (!tmpl) tmpl = v;
    publish(n, v);
  }
}

static void schedule(spk_srv *s) {
  uint64_t now = spk_srv_mono_ms();
  if (s->cfg.reform_ms == 0 && s->cfg.migrate_ms == 0) {
    phase_final(s);
    s->reform_at_ms = s->migrate_at_ms = 0;
    return;
  }
  phase_unstable(s);
  s->reform_at_ms = now + s->cfg.reform_ms;
  s->migrate_at_ms = now + s->cfg.reform_ms + s->cfg.migrate_ms;
  if (s->cfg.reform_ms == 0) {
    phase_reformed(s);
    s->reform_at_ms = 0;
  }
}

int64_t spk_srv_cluster_tick(spk_srv *s) {
  pthread_mutex_lock(&s->cluster_lock);
  uint64_t now = spk_srv_mono_ms();
  if (s->reform_at_ms && now >= s->reform_at_ms) {
    phase_reformed(s);
    s->reform_at_ms = 0;
  }
  if (!s->reform_at_ms && s->migrate_at_ms && now >= s->migrate_at_ms) {
    phase_final(s);
    s->migrate_at_ms = 0;
  }
  int64_t next = -1;
  if (s->reform_at_ms) next = (int64_t)(s->reform_at_ms - now);
  else if (s->migrate_at_ms) next = (int64_t)(s->migrate_at_ms - now);
  pthread_mutex_unlock(&s->cluster_lock);
  return next;
}

int spk_srv_cluster_kill(spk_srv *s, uint32_t ix, const char **msg) {
  pthread_mutex_lock(&s->cluster_lock);
  int rc = 0;
  if (!atomic_load(&s->nodes[ix].alive)) {
    *msg = "node is not running";
    rc = -1;
  } else {
    atomic_store(&s->nodes[ix].alive, false);
    bool any = false;
    for (uint32_t i = 0; i < s->n_nodes; i++) any |= atomic_load(&s->nodes[i].alive);
    if (any) schedule(s);
  }
  pthread_mutex_unlock(&s->cluster_lock);
  return rc;
}

int spk_srv_cluster_restart(spk_srv *s, uint32_t ix, const char **msg) {
  pthread_mutex_lock(&s->cluster_lock);
  int rc = 0;
  spk_srv_node *n = &s->nodes[ix];
  if (atomic_load(&n->alive)) {
    *msg = "node is running";
    rc = -1;
  } else {
    /* A restarted node starts as an orphan that has not balanced yet
     * (partition-generation -1, no partitions), then joins. */
    spk_srv_view *v = view_alloc(s);
    if (v) {
      v->n_members = 1;
      v->members[0] = (uint8_t)ix;
      v->principal = n->id;
      v->cluster_key = new_cluster_key(s);
      v->partition_gen = -1;
      v->rebalance_ms = spk_srv_mono_ms();
      for (uint32_t i = 0; i < s->n_ns; i++) v->ns[i].rf = 1;
      publish(n, v);
    }
    /* New incarnation first: once alive reads true, no connection of the
     * killed incarnation passes net.c's check. */
    atomic_fetch_add(&n->incarnation, 1);
    atomic_store(&n->alive, true);
    schedule(s);
  }
  pthread_mutex_unlock(&s->cluster_lock);
  return rc;
}

int spk_srv_cluster_migrate(spk_srv *s, int ns_ix, uint32_t pid_lo,
                            uint32_t pid_hi, uint32_t to, const char **msg) {
  pthread_mutex_lock(&s->cluster_lock);
  int rc = 0;
  if (!atomic_load(&s->nodes[to].alive)) {
    *msg = "target node is not running";
    rc = -1;
    goto out;
  }
  spk_srv_view *cur[SPK_SRV_MAX_NODES] = {0};
  spk_srv_view *next[SPK_SRV_MAX_NODES] = {0};
  for (uint32_t i = 0; i < s->n_nodes; i++) {
    if (!atomic_load(&s->nodes[i].alive)) continue;
    cur[i] = spk_srv_view_of(&s->nodes[i]);
    next[i] = view_copy(s, cur[i]);
    if (!next[i]) {
      *msg = "out of memory";
      rc = -1;
      goto out;
    }
  }
  for (uint32_t i = 0; i < s->n_ns; i++) {
    if (ns_ix >= 0 && (uint32_t)ns_ix != i) continue;
    /* Every node adopts the same new assignment; the regime moves on so
     * clients prefer the new owner's claims over stale ones. */
    for (uint32_t n = 0; n < s->n_nodes; n++) {
      if (!next[n]) continue;
      spk_srv_view_ns *vn = &next[n]->ns[i];
      vn->regime++;
      for (uint32_t pid = pid_lo; pid <= pid_hi; pid++) {
        uint8_t *rep = vn->replicas[pid];
        uint8_t old_master = rep[0];
        if (old_master == to) continue;
        uint8_t fresh[SPK_SRV_MAX_RF];
        uint32_t k = 0;
        fresh[k++] = (uint8_t)to;
        for (uint32_t r = 0; r < vn->rf && k < vn->rf; r++)
          if (rep[r] != to) fresh[k++] = rep[r];
        memcpy(rep, fresh, vn->rf);
        /* The old master no longer holds it: it answers 11. */
        if (n == old_master) spk_bitmap_set(vn->unavailable, pid);
      }
      for (uint32_t pid = pid_lo; pid <= pid_hi && n == to; pid++)
        vn->unavailable[pid >> 3] &= (uint8_t) ~(0x80u >> (pid & 7));
    }
  }
  for (uint32_t n = 0; n < s->n_nodes; n++) {
    if (!next[n]) continue;
    uint32_t changes = fill_bitmaps(s, next[n], n, cur[n]);
    next[n]->partition_gen += (int32_t)changes + 1;
    publish(&s->nodes[n], next[n]);
  }
out:
  pthread_mutex_unlock(&s->cluster_lock);
  return rc;
}
