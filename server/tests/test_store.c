/* Storage: partition hash tables, sets, expiry and truncate sweeps. */
#include "fixture.h"

static spk_srv_rec *mk_rec(const uint8_t *d, uint32_t void_time, uint16_t set) {
  spk_srv_rec *r = calloc(1, sizeof *r + 16);
  SPK_ASSERT(r != NULL);
  memcpy(r->digest, d, 20);
  r->gen = 1;
  r->void_time = void_time;
  r->set_id = set;
  r->lut_ms = spk_srv_now_ms();
  return r;
}

SPK_TEST(part_put_get_remove_many) {
  spk_srv_ns_cfg cfg = {.name = "t", .rf = 1, .max_record_size = 1 << 20};
  spk_srv_ns *ns = spk_srv_ns_create(&cfg, 0);
  spk_srv_part *p = &ns->parts[7];
  enum { N = 2000 };
  static uint8_t d[N][20];
  for (uint32_t i = 0; i < N; i++) {
    fx_digest(d[i], i);
    /* Force equal hash slots for many records: probe chains get long. */
    if (i % 3 == 0) memset(d[i] + 8, 0, 4);
    spk_srv_rec *old;
    SPK_ASSERT_OK(spk_srv_part_put(p, mk_rec(d[i], 0, 0), &old));
    SPK_ASSERT(old == NULL);
  }
  SPK_ASSERT_EQ(p->n, N);
  for (uint32_t i = 0; i < N; i += 2) {
    spk_srv_rec *r = spk_srv_part_remove(p, d[i]);
    SPK_ASSERT(r != NULL);
    free(r);
  }
  for (uint32_t i = 0; i < N; i++) {
    spk_srv_rec *r = spk_srv_part_get(p, d[i]);
    if (i % 2 == 0) SPK_ASSERT(r == NULL);
    else SPK_ASSERT(r != NULL && memcmp(r->digest, d[i], 20) == 0);
  }
  /* Replace returns the old record. */
  spk_srv_rec *old;
  spk_srv_rec *fresh = mk_rec(d[1], 0, 0);
  SPK_ASSERT_OK(spk_srv_part_put(p, fresh, &old));
  SPK_ASSERT(old != NULL && old != fresh);
  free(old);
  SPK_ASSERT(spk_srv_part_get(p, d[1]) == fresh);
  SPK_ASSERT_EQ(p->n, N / 2);
  spk_srv_ns_destroy(ns);
}

SPK_TEST(sets_create_lookup_limits) {
  spk_srv_ns_cfg cfg = {.name = "t", .rf = 1};
  spk_srv_ns *ns = spk_srv_ns_create(&cfg, 0);
  SPK_ASSERT_EQ(spk_srv_set_id(ns, (const uint8_t *)"cap", 3, false), 0);
  SPK_ASSERT_EQ(spk_srv_set_id(ns, (const uint8_t *)"cap", 3, true), 1);
  SPK_ASSERT_EQ(spk_srv_set_id(ns, (const uint8_t *)"other", 5, true), 2);
  SPK_ASSERT_EQ(spk_srv_set_id(ns, (const uint8_t *)"cap", 3, false), 1);
  SPK_ASSERT_EQ(spk_srv_set_id(ns, (const uint8_t *)"", 0, true), 0);
  char name63[64], name64[65];
  memset(name63, 's', 63);
  memset(name64, 's', 64);
  SPK_ASSERT(spk_srv_set_id(ns, (const uint8_t *)name63, 63, true) > 0);
  SPK_ASSERT_EQ(spk_srv_set_id(ns, (const uint8_t *)name64, 64, true), -1);
  SPK_ASSERT_STR_EQ(spk_srv_set_get(ns, 2)->name, "other");
  spk_srv_ns_destroy(ns);
}

SPK_TEST(nsup_frees_expired_only) {
  spk_srv_ns_cfg cfg = {.name = "t", .rf = 1, .nsup_period = 1};
  spk_srv_ns *ns = spk_srv_ns_create(&cfg, 0);
  uint32_t now = spk_srv_now_cl();
  uint8_t d[300][20];
  for (uint32_t i = 0; i < 300; i++) {
    fx_digest(d[i], 1000 + i);
    uint32_t vt = i % 3 == 0 ? now - 5 : i % 3 == 1 ? now + 1000 : 0;
    spk_srv_part *p = spk_srv_part_of(ns, d[i]);
    spk_srv_rec *r = mk_rec(d[i], vt, 0), *old;
    SPK_ASSERT_OK(spk_srv_part_put(p, r, &old));
    spk_srv_rec_added(ns, r);
    SPK_ASSERT(spk_srv_rec_expired(r, now) == (i % 3 == 0));
  }
  SPK_ASSERT_EQ(atomic_load(&ns->objects), 300);
  SPK_ASSERT_EQ(atomic_load(&ns->non_expirable), 100);
  SPK_ASSERT_EQ(spk_srv_nsup(ns), 100);
  SPK_ASSERT_EQ(atomic_load(&ns->objects), 200);
  SPK_ASSERT_EQ(atomic_load(&ns->st.expired), 100);
  for (uint32_t i = 0; i < 300; i++) {
    spk_srv_rec *r = spk_srv_part_get(spk_srv_part_of(ns, d[i]), d[i]);
    SPK_ASSERT((r == NULL) == (i % 3 == 0));
  }
  SPK_ASSERT_EQ(spk_srv_nsup(ns), 0);
  spk_srv_ns_destroy(ns);
}

SPK_TEST(truncate_by_set_and_namespace) {
  spk_srv_ns_cfg cfg = {.name = "t", .rf = 1};
  spk_srv_ns *ns = spk_srv_ns_create(&cfg, 0);
  int a = spk_srv_set_id(ns, (const uint8_t *)"a", 1, true);
  int b = spk_srv_set_id(ns, (const uint8_t *)"b", 1, true);
  uint8_t d[100][20];
  for (uint32_t i = 0; i < 100; i++) {
    fx_digest(d[i], 5000 + i);
    spk_srv_rec *r = mk_rec(d[i], 0, (uint16_t)(i % 2 ? a : b)), *old;
    SPK_ASSERT_OK(spk_srv_part_put(spk_srv_part_of(ns, d[i]), r, &old));
    spk_srv_rec_added(ns, r);
  }
  SPK_ASSERT_EQ(atomic_load(&ns->sets[a - 1].objects), 50);
  uint64_t now = spk_srv_now_ms();
  SPK_ASSERT_EQ(spk_srv_truncate(ns, a, now), 50);
  SPK_ASSERT_EQ(atomic_load(&ns->sets[a - 1].objects), 0);
  SPK_ASSERT_EQ(atomic_load(&ns->sets[b - 1].objects), 50);
  SPK_ASSERT_EQ(spk_srv_truncate(ns, 0, now), 50);
  SPK_ASSERT_EQ(atomic_load(&ns->objects), 0);
  spk_srv_ns_destroy(ns);
}
