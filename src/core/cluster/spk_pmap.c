/* spk_pmap.c - partition map snapshots: lookup and replica routing. */
#include <stdlib.h>

#include "spk_cluster.h"
#include "spk_cluster_int.h"

const spk_ns_map *spk_pmap_ns(const spk_pmap *m, const char *ns, size_t len) {
  for (uint32_t i = 0; i < m->n_ns; i++) {
    const spk_ns_map *t = m->ns[i];
    if (t->name_len == len && memcmp(t->name, ns, len) == 0) return t;
  }
  return NULL;
}

static int usable(spk_node *n) {
  return n && atomic_load_explicit(&n->active, memory_order_relaxed);
}

/* Per-thread round robin for ANY / RANDOM: no shared counter to contend on. */
static SPK_TLS uint32_t tls_rr;

spk_node *spk_pmap_route(const spk_pmap *m, const char *ns, size_t ns_len,
                         uint32_t pid, uint8_t replica, bool is_write,
                         uint32_t replica_index, spk_error *err) {
  const spk_ns_map *t = spk_pmap_ns(m, ns, ns_len);
  if (SPK_UNLIKELY(!t)) {
    if (m->n_nodes == 0) {
      spk_error_set(err, SPK_ERR_INVALID_NODE,
                    "no cluster node is available for namespace '%.*s'",
                    (int)ns_len, ns);
    } else {
      spk_error_set(err, SPK_ERR_NAMESPACE_NOT_FOUND,
                    "namespace '%.*s' not found in the cluster's partition map",
                    (int)ns_len, ns);
    }
    return NULL;
  }
  spk_node *const *reps = t->nodes[pid & (SPK_N_PARTITIONS - 1)];
  uint32_t size = t->n_replicas ? t->n_replicas : 1;

  if (replica == SPK_REPLICA_MASTER) {
    if (usable(reps[0])) return reps[0];
    spk_error_set(err, SPK_ERR_INVALID_NODE,
                  "master of partition %u of namespace '%.*s' is not available",
                  pid, (int)ns_len, ns);
    return NULL;
  }
  uint32_t start = replica_index;
  if (!is_write && (replica == SPK_REPLICA_ANY || replica == SPK_REPLICA_RANDOM))
    start += tls_rr++;
  /* SEQUENCE (and PREFER_RACK without racks): first usable replica from
   * the attempt's position; writes start at the master like reads. */
  for (uint32_t i = 0; i < size; i++) {
    spk_node *n = reps[(start + i) % size];
    if (usable(n)) return n;
  }
  spk_error_set(err, SPK_ERR_INVALID_NODE,
                "no replica of partition %u of namespace '%.*s' is available",
                pid, (int)ns_len, ns);
  return NULL;
}

spk_node *spk_pmap_any_node(const spk_pmap *m) {
  if (m->n_nodes == 0) return NULL;
  uint32_t start = tls_rr++;
  for (uint32_t i = 0; i < m->n_nodes; i++) {
    spk_node *n = m->nodes[(start + i) % m->n_nodes];
    if (usable(n)) return n;
  }
  return NULL;
}

/* ---- snapshot construction (tend thread) -------------------------------- */

spk_pmap *spk__pmap_clone(const spk_pmap *old) {
  spk_pmap *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  if (old) {
    m->n_nodes = old->n_nodes;
    if (old->n_nodes) {
      m->nodes = malloc(sizeof *m->nodes * old->n_nodes);
      if (!m->nodes) goto oom;
      memcpy(m->nodes, old->nodes, sizeof *m->nodes * old->n_nodes);
    }
    for (uint32_t i = 0; i < old->n_ns; i++) {
      m->ns[i] = malloc(sizeof *m->ns[i]);
      if (!m->ns[i]) goto oom;
      memcpy(m->ns[i], old->ns[i], sizeof *m->ns[i]);
      m->n_ns = i + 1;
    }
    m->version = old->version + 1;
  }
  return m;
oom:
  spk__pmap_free(m);
  return NULL;
}

void spk__pmap_free(spk_pmap *m) {
  if (!m) return;
  for (uint32_t i = 0; i < m->n_ns; i++) free(m->ns[i]);
  free(m->nodes);
  free(m);
}

int spk__pmap_set_nodes(spk_pmap *m, spk_node *const *nodes, uint32_t n) {
  spk_node **copy = NULL;
  if (n) {
    copy = malloc(sizeof *copy * n);
    if (!copy) return SPK_ERR_CLIENT;
    memcpy(copy, nodes, sizeof *copy * n);
  }
  free(m->nodes);
  m->nodes = copy;
  m->n_nodes = n;
  /* Keep the invariant that tables only name nodes of this snapshot. */
  for (uint32_t i = 0; i < m->n_ns; i++) {
    spk_ns_map *t = m->ns[i];
    for (uint32_t p = 0; p < SPK_N_PARTITIONS; p++)
      for (uint32_t r = 0; r < SPK_MAX_REPLICAS; r++) {
        spk_node *x = t->nodes[p][r];
        if (!x) continue;
        uint32_t k = 0;
        while (k < n && nodes[k] != x) k++;
        if (k == n) t->nodes[p][r] = NULL;
      }
  }
  return 0;
}

typedef struct apply_ctx {
  spk_pmap *m;
  spk_node *node;
  spk_error *err;
  int changed;
} apply_ctx;

static int apply_ns(void *vctx, spk_strv ns, uint32_t regime,
                    uint32_t n_replicas,
                    const uint8_t (*bitmaps)[SPK_REPLICA_BITMAP_BYTES],
                    uint32_t n_bitmaps) {
  apply_ctx *ctx = vctx;
  spk_pmap *m = ctx->m;
  spk_ns_map *t = (spk_ns_map *)spk_pmap_ns(m, ns.p, ns.len);
  if (!t) {
    if (m->n_ns == SPK_MAX_NAMESPACES) return 0; /* ignore the excess */
    t = calloc(1, sizeof *t);
    if (!t) return spk_error_set(ctx->err, SPK_ERR_CLIENT, "out of memory");
    memcpy(t->name, ns.p, ns.len);
    t->name[ns.len] = '\0';
    t->name_len = (uint8_t)ns.len;
    /* As the C client: a namespace is strong-consistency when first seen
     * with a regime; AP namespaces report 0, and a later bump (migration)
     * does not change the mode. */
    t->sc_mode = regime != 0;
    m->ns[m->n_ns++] = t;
  }
  uint32_t nr = n_replicas < SPK_MAX_REPLICAS ? n_replicas : SPK_MAX_REPLICAS;
  if (nr == 0) nr = 1;
  if (t->n_replicas != nr) {
    t->n_replicas = (uint8_t)nr;
    ctx->changed = 1;
  }
  for (uint32_t col = 0; col < n_bitmaps && col < SPK_MAX_REPLICAS; col++) {
    const uint8_t *bm = bitmaps[col];
    for (uint32_t p = 0; p < SPK_N_PARTITIONS; p++) {
      if (!spk_bitmap_test(bm, p)) continue;
      if (regime < t->regime[p]) continue; /* stale answer: ignore */
      t->regime[p] = regime;
      spk_node *old = t->nodes[p][col];
      if (old != ctx->node) {
        t->nodes[p][col] = ctx->node;
        ctx->changed = 1;
        /* The previous owner's view is stale: make it refresh. */
        if (old) old->partition_generation = -1;
      }
    }
  }
  return 0;
}

int spk__pmap_apply_replicas(spk_pmap *m, spk_node *node, spk_strv replicas,
                             int *changed, spk_error *err) {
  apply_ctx ctx = {m, node, err, 0};
  int rc = spk_replicas_parse(replicas, apply_ns, &ctx, err);
  if (ctx.changed) *changed = 1;
  return rc;
}

int spk__pmap_owns_partitions(const spk_pmap *m, const spk_node *n) {
  for (uint32_t i = 0; i < m->n_ns; i++)
    for (uint32_t p = 0; p < SPK_N_PARTITIONS; p++)
      for (uint32_t r = 0; r < SPK_MAX_REPLICAS; r++)
        if (m->ns[i]->nodes[p][r] == n) return 1;
  return 0;
}
