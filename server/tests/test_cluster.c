/* Partition assignment and membership changes. */
#include "fixture.h"

static uint32_t count_bits(const uint8_t *bm) {
  uint32_t n = 0;
  for (int i = 0; i < SPK_REPLICA_BITMAP_BYTES; i++) n += (uint32_t)__builtin_popcount(bm[i]);
  return n;
}

SPK_TEST(assignment_matches_real_cluster) {
  /* Succession order is node id descending: B3, B2, B1. */
  uint64_t ids[3] = {0xB3, 0xB2, 0xB1};
  uint8_t o[3];
  /* Masters / first replicas read from the captured 3-node bitmaps. */
  const struct { uint32_t pid; uint64_t master, prole; } want[] = {
      {0, 0xB3, 0xB1}, {1, 0xB2, 0xB3}, {2, 0xB1, 0xB3},
      {3, 0xB3, 0xB2}, {5, 0xB1, 0xB2}, {8, 0xB3, 0xB1}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    spk_srv_assign(ids, 3, want[i].pid, o);
    SPK_ASSERT_EQ(ids[o[0]], want[i].master);
    SPK_ASSERT_EQ(ids[o[1]], want[i].prole);
  }
  /* Whole-map counts of the capture. */
  uint32_t masters[3] = {0};
  for (uint32_t pid = 0; pid < 4096; pid++) {
    spk_srv_assign(ids, 3, pid, o);
    masters[o[0]]++;
  }
  SPK_ASSERT_EQ(masters[2], 1378); /* B1 */
  SPK_ASSERT_EQ(masters[1], 1383); /* B2 */
  SPK_ASSERT_EQ(masters[0], 1335); /* B3 */
  uint64_t two[2] = {0xB2, 0xB1};
  uint32_t m2[2] = {0};
  for (uint32_t pid = 0; pid < 4096; pid++) {
    spk_srv_assign(two, 2, pid, o);
    m2[o[0]]++;
  }
  SPK_ASSERT_EQ(m2[1], 2044);
  SPK_ASSERT_EQ(m2[0], 2052);
}

SPK_TEST(single_node_view) {
  spk_srv *s = fx_server(1, 2);
  spk_srv_view *v = spk_srv_view_of(&s->nodes[0]);
  SPK_ASSERT_EQ(v->partition_gen, 0);
  SPK_ASSERT_EQ(v->peers_gen, 0);
  SPK_ASSERT_EQ(v->rebalance_gen, 1);
  SPK_ASSERT_EQ(v->n_peers, 0);
  SPK_ASSERT_EQ(v->ns[0].rf, 1); /* capped by cluster size */
  SPK_ASSERT_EQ(count_bits(v->ns[0].bitmap[0]), 4096);
  SPK_ASSERT(v->stable && v->integrity);
  fx_free(s);
}

SPK_TEST(three_nodes_then_kill) {
  spk_srv *s = fx_server(3, 2);
  uint32_t total[2] = {0};
  for (uint32_t n = 0; n < 3; n++) {
    spk_srv_view *v = spk_srv_view_of(&s->nodes[n]);
    SPK_ASSERT_EQ(v->n_members, 3);
    SPK_ASSERT_EQ(v->n_peers, 2);
    SPK_ASSERT_EQ(v->peers_gen, 4);
    SPK_ASSERT_EQ(v->principal, 0xB3);
    total[0] += count_bits(v->ns[0].bitmap[0]);
    total[1] += count_bits(v->ns[0].bitmap[1]);
  }
  SPK_ASSERT_EQ(total[0], 4096);
  SPK_ASSERT_EQ(total[1], 4096);
  SPK_ASSERT_EQ(count_bits(spk_srv_view_of(&s->nodes[0])->ns[0].bitmap[0]), 1378);
  const char *msg = NULL;
  SPK_ASSERT_OK(spk_srv_cluster_kill(s, 2, &msg)); /* B3, no delays */
  SPK_ASSERT(spk_srv_cluster_kill(s, 2, &msg) != 0);
  for (uint32_t n = 0; n < 2; n++) {
    spk_srv_view *v = spk_srv_view_of(&s->nodes[n]);
    SPK_ASSERT_EQ(v->n_members, 2);
    SPK_ASSERT_EQ(v->n_peers, 1);
    SPK_ASSERT_EQ(v->peers_gen, 5);
    SPK_ASSERT_EQ(v->rebalance_gen, 2);
    SPK_ASSERT(v->partition_gen > 0);
    SPK_ASSERT_EQ(v->principal, 0xB2);
    for (uint32_t pid = 0; pid < 4096; pid++) {
      SPK_ASSERT(v->ns[0].replicas[pid][0] != 2);
      SPK_ASSERT(v->ns[0].replicas[pid][1] != 2);
      SPK_ASSERT(v->ns[0].replicas[pid][0] != v->ns[0].replicas[pid][1]);
    }
  }
  SPK_ASSERT_EQ(count_bits(spk_srv_view_of(&s->nodes[0])->ns[0].bitmap[0]), 2044);
  SPK_ASSERT_OK(spk_srv_cluster_restart(s, 2, &msg));
  spk_srv_view *v = spk_srv_view_of(&s->nodes[2]);
  SPK_ASSERT_EQ(v->n_members, 3);
  SPK_ASSERT_EQ(count_bits(v->ns[0].bitmap[0]), 1335);
  fx_free(s);
}

SPK_TEST(kill_goes_through_phases) {
  spk_srv *s = fx_server(3, 2);
  s->cfg.reform_ms = 200;
  s->cfg.migrate_ms = 200;
  const char *msg;
  uint64_t key0 = spk_srv_view_of(&s->nodes[0])->cluster_key;
  SPK_ASSERT_OK(spk_srv_cluster_kill(s, 2, &msg));
  spk_srv_view *v = spk_srv_view_of(&s->nodes[0]);
  SPK_ASSERT(!v->stable && !v->integrity);
  SPK_ASSERT_EQ(v->n_members, 3);
  SPK_ASSERT_EQ(v->cluster_key, key0);
  while (spk_srv_mono_ms() < s->reform_at_ms + 5) usleep(10000);
  spk_srv_cluster_tick(s);
  v = spk_srv_view_of(&s->nodes[0]);
  SPK_ASSERT(!v->stable && v->integrity && v->is_member && !v->migrate_allowed);
  SPK_ASSERT_EQ(v->n_members, 2);
  SPK_ASSERT_EQ(v->n_peers, 2); /* peers not updated yet */
  SPK_ASSERT(v->cluster_key != key0);
  uint64_t key1 = v->cluster_key;
  while (spk_srv_mono_ms() < s->migrate_at_ms + 5) usleep(10000);
  SPK_ASSERT_EQ(spk_srv_cluster_tick(s), -1);
  v = spk_srv_view_of(&s->nodes[0]);
  SPK_ASSERT(v->stable && v->migrate_allowed);
  SPK_ASSERT_EQ(v->n_peers, 1);
  SPK_ASSERT_EQ(v->cluster_key, key1);
  fx_free(s);
}

SPK_TEST(migrate_moves_master_and_marks_old_owner) {
  spk_srv *s = fx_server(3, 2);
  spk_srv_view *v0 = spk_srv_view_of(&s->nodes[0]);
  uint8_t old_master = v0->ns[0].replicas[0][0]; /* B3 = index 2 */
  SPK_ASSERT_EQ(old_master, 2);
  const char *msg;
  SPK_ASSERT_OK(spk_srv_cluster_migrate(s, 0, 0, 9, 0, &msg));
  spk_srv_view *v = spk_srv_view_of(&s->nodes[0]);
  SPK_ASSERT_EQ(v->ns[0].regime, 1);
  SPK_ASSERT_EQ(v->ns[1].regime, 0);
  for (uint32_t pid = 0; pid <= 9; pid++) {
    SPK_ASSERT_EQ(v->ns[0].replicas[pid][0], 0);
    SPK_ASSERT(spk_bitmap_test(v->ns[0].bitmap[0], pid));
  }
  spk_srv_view *v2 = spk_srv_view_of(&s->nodes[2]);
  SPK_ASSERT(!spk_srv_part_available(v2, 0, 0));
  SPK_ASSERT(spk_srv_part_available(v2, 1, 0));
  SPK_ASSERT(spk_srv_part_available(spk_srv_view_of(&s->nodes[1]), 0, 0));
  SPK_ASSERT(v->partition_gen > 0);
  fx_free(s);
}
