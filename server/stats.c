/*
 * stats.c - the long key=value answers: "statistics", "namespace/<ns>" and
 * "sets".  Keys come out in the real server's order (stats_keys.h); the
 * values the embedded server can know are computed, the rest (memory,
 * threads, XDR, migration internals...) are reported as a freshly started
 * real node reported them.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "srv.h"
#include "stats_keys.h"

#define N_NS_KEYS (sizeof spk_srv_ns_keys / sizeof spk_srv_ns_keys[0])
#define N_STAT_KEYS (sizeof spk_srv_stat_keys / sizeof spk_srv_stat_keys[0])

static uint64_t ld(_Atomic uint64_t *v) {
  return atomic_load_explicit(v, memory_order_relaxed);
}

static int64_t ldi(_Atomic int64_t *v) {
  return atomic_load_explicit(v, memory_order_relaxed);
}

static void ns_value(spk_srv_ctx *c, spk_buf *b, spk_srv_ns *ns,
                     const char *k) {
  spk_srv_view *v = spk_srv_view_of(c->node);
  uint32_t rf = v ? v->ns[ns->ix].rf : 1;
  int64_t objects = ldi(&ns->objects);
  int64_t bytes = ldi(&ns->bytes);
  uint64_t total = ns->cfg.data_size;
#define IS(x) (strcmp(k, x) == 0)
  if (IS("ns_cluster_size")) spk_srv_buf_printf(b, "%u", v ? v->n_members : 1);
  else if (IS("effective_replication_factor") || IS("replication-factor"))
    spk_srv_buf_printf(b, "%u", IS("replication-factor") ? ns->cfg.rf : rf);
  else if (IS("objects")) spk_srv_buf_printf(b, "%" PRId64, objects);
  else if (IS("master_objects")) {
    /* One shared copy: report an even share per live node. */
    uint32_t n = v && v->n_members ? v->n_members : 1;
    spk_srv_buf_printf(b, "%" PRId64, objects / n);
  } else if (IS("prole_objects")) {
    uint32_t n = v && v->n_members ? v->n_members : 1;
    spk_srv_buf_printf(b, "%" PRId64, rf > 1 ? objects / n * (rf - 1) : 0);
  } else if (IS("non_replica_objects")) spk_srv_buf_str(b, "0");
  else if (IS("current_time")) spk_srv_buf_printf(b, "%u", spk_srv_now_cl());
  else if (IS("non_expirable_objects"))
    spk_srv_buf_printf(b, "%" PRId64, ldi(&ns->non_expirable));
  else if (IS("expired_objects"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.expired));
  else if (IS("data_total_bytes") || IS("storage-engine.data-size"))
    spk_srv_buf_printf(b, "%" PRIu64, total);
  else if (IS("data_used_bytes")) spk_srv_buf_printf(b, "%" PRId64, bytes);
  else if (IS("data_used_pct"))
    spk_srv_buf_printf(b, "%" PRIu64, total ? (uint64_t)bytes * 100 / total : 0);
  else if (IS("data_avail_pct"))
    spk_srv_buf_printf(b, "%" PRIu64,
                       total ? 93 - (uint64_t)bytes * 93 / total : 0);
  else if (IS("client_read_success"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.read_success));
  else if (IS("client_read_error"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.read_error));
  else if (IS("client_read_not_found"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.read_not_found));
  else if (IS("client_read_filtered_out"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.read_filtered));
  else if (IS("client_write_success"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.write_success));
  else if (IS("client_write_error"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.write_error));
  else if (IS("client_write_filtered_out"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.write_filtered));
  else if (IS("client_delete_success"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.delete_success));
  else if (IS("client_delete_error"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.delete_error));
  else if (IS("client_delete_not_found"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.delete_not_found));
  else if (IS("fail_generation"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.fail_generation));
  else if (IS("fail_record_too_big"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->st.fail_too_big));
  else if (IS("default-ttl")) spk_srv_buf_printf(b, "%u", ns->cfg.default_ttl);
  else if (IS("max-record-size"))
    spk_srv_buf_printf(b, "%u", ns->cfg.max_record_size);
  else if (IS("nsup-period")) spk_srv_buf_printf(b, "%u", ns->cfg.nsup_period);
  else if (IS("truncate_lut"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&ns->truncate_lut_ms));
  else if (IS("migrate_fresh_partitions")) spk_srv_buf_str(b, "4096");
  else spk_srv_buf_str(b, "0");
#undef IS
}

void spk_srv_info_namespace(spk_srv_ctx *c, spk_buf *b, spk_srv_ns *ns) {
  for (size_t i = 0; i < N_NS_KEYS; i++) {
    if (i) spk_srv_buf_str(b, ";");
    spk_srv_buf_str(b, spk_srv_ns_keys[i][0]);
    spk_srv_buf_str(b, "=");
    if (spk_srv_ns_keys[i][1]) spk_srv_buf_str(b, spk_srv_ns_keys[i][1]);
    else ns_value(c, b, ns, spk_srv_ns_keys[i][0]);
  }
}

static void stat_value(spk_srv_ctx *c, spk_buf *b, const char *k) {
  spk_srv *s = c->srv;
  spk_srv_node *n = c->node;
  spk_srv_view *v = spk_srv_view_of(n);
#define IS(x) (strcmp(k, x) == 0)
  if (IS("cluster_size")) spk_srv_buf_printf(b, "%u", v ? v->n_members : 1);
  else if (IS("cluster_key"))
    spk_srv_buf_printf(b, "%" PRIX64, v ? v->cluster_key : 0);
  else if (IS("cluster_generation"))
    spk_srv_buf_printf(b, "%u", v ? v->cluster_gen : 1);
  else if (IS("cluster_principal") || IS("paxos_principal"))
    spk_srv_buf_printf(b, "%" PRIX64, v ? v->principal : n->id);
  else if (IS("cluster_integrity"))
    spk_srv_buf_str(b, v && v->integrity ? "true" : "false");
  else if (IS("cluster_is_member"))
    spk_srv_buf_str(b, v && v->is_member ? "true" : "false");
  else if (IS("migrate_allowed"))
    spk_srv_buf_str(b, v && v->migrate_allowed ? "true" : "false");
  else if (IS("uptime"))
    spk_srv_buf_printf(b, "%" PRIu64, (spk_srv_mono_ms() - s->start_ms) / 1000);
  else if (IS("time_since_rebalance"))
    spk_srv_buf_printf(b, "%" PRIu64,
                       v ? (spk_srv_mono_ms() - v->rebalance_ms) / 1000 : 0);
  else if (IS("objects")) {
    int64_t total = 0;
    for (uint32_t i = 0; i < s->n_ns; i++) total += ldi(&s->ns[i]->objects);
    spk_srv_buf_printf(b, "%" PRId64, total);
  } else if (IS("client_connections")) {
    uint64_t o = ld(&n->conns_opened), cl = ld(&n->conns_closed);
    spk_srv_buf_printf(b, "%" PRIu64, o > cl ? o - cl : 0);
  } else if (IS("client_connections_opened"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&n->conns_opened));
  else if (IS("client_connections_closed"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&n->conns_closed));
  else if (IS("info_complete"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&n->n_info));
  else if (IS("batch_index_initiate"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&s->batch_index_initiate));
  else if (IS("batch_index_complete"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&s->batch_index_complete));
  else if (IS("batch_index_error"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&s->batch_index_error));
  else if (IS("demarshal_error"))
    spk_srv_buf_printf(b, "%" PRIu64, ld(&s->demarshal_error));
  else spk_srv_buf_str(b, "0");
#undef IS
}

void spk_srv_info_statistics(spk_srv_ctx *c, spk_buf *b) {
  for (size_t i = 0; i < N_STAT_KEYS; i++) {
    if (i) spk_srv_buf_str(b, ";");
    spk_srv_buf_str(b, spk_srv_stat_keys[i][0]);
    spk_srv_buf_str(b, "=");
    if (spk_srv_stat_keys[i][1]) spk_srv_buf_str(b, spk_srv_stat_keys[i][1]);
    else stat_value(c, b, spk_srv_stat_keys[i][0]);
  }
}

static void one_set(spk_buf *b, spk_srv_ns *ns, const spk_srv_set *st) {
  bool populating;
  uint32_t n_si = spk_srv_sindex_count_set(ns, (uint16_t)(st - ns->sets + 1), &populating);
  spk_srv_buf_printf(
      b,
      "ns=%s:set=%s:objects=%" PRId64 ":tombstones=0:data_used_bytes=%" PRId64
      ":truncate_lut=%" PRIu64
      ":sindexes=%u:index_populating=%s:truncating=false"
      ":default-read-touch-ttl-pct=0:default-ttl=0:disable-eviction=false"
      ":enable-index=false:stop-writes-count=0:stop-writes-size=0;",
      ns->cfg.name, st->name,
      atomic_load_explicit(&st->objects, memory_order_relaxed),
      atomic_load_explicit(&st->bytes, memory_order_relaxed),
      atomic_load_explicit(&st->truncate_lut_ms, memory_order_relaxed), n_si,
      populating ? "true" : "false");
}

void spk_srv_info_sets(spk_srv_ctx *c, spk_buf *b, spk_srv_ns *ns,
                       const char *set, size_t set_len) {
  for (uint32_t i = 0; i < c->srv->n_ns; i++) {
    spk_srv_ns *n = c->srv->ns[i];
    if (ns && n != ns) continue;
    uint32_t cnt = atomic_load_explicit(&n->n_sets, memory_order_acquire);
    for (uint32_t j = 0; j < cnt; j++) {
      const spk_srv_set *st = &n->sets[j];
      if (set && (st->len != set_len || memcmp(st->name, set, set_len) != 0))
        continue;
      one_set(b, n, st);
    }
  }
}
