/* fixture.h - an in-process server (no sockets) for the C unit tests. */
#ifndef SPK_SRV_TEST_FIXTURE_H
#define SPK_SRV_TEST_FIXTURE_H

#include <stdlib.h>
#include <unistd.h>

#include "../srv.h"
#include "spk_test.h"

static inline spk_srv *fx_server(uint32_t n_nodes, uint32_t rf) {
  spk_srv *s = calloc(1, sizeof *s);
  SPK_ASSERT(s != NULL);
  s->start_ms = spk_srv_mono_ms();
  s->cfg.n_nodes = n_nodes;
  s->n_ns = 2;
  const char *names[2] = {"test", "bar"};
  for (uint32_t i = 0; i < 2; i++) {
    spk_srv_ns_cfg c = {0};
    snprintf(c.name, sizeof c.name, "%s", names[i]);
    c.rf = rf;
    c.max_record_size = 1024 * 1024;
    c.nsup_period = 1;
    c.data_size = 1ull << 30;
    s->cfg.ns[i] = c;
    s->ns[i] = spk_srv_ns_create(&c, i);
  }
  s->n_nodes = n_nodes;
  for (uint32_t i = 0; i < n_nodes; i++) {
    s->nodes[i].ix = i;
    s->nodes[i].port = (uint16_t)(3000 + 10 * i);
    s->nodes[i].id = 0xB1 + i;
    s->nodes[i].listen_fd = -1;
  }
  SPK_ASSERT_OK(spk_srv_cluster_init(s));
  return s;
}

static inline void fx_free(spk_srv *s) {
  spk_srv_cluster_free(s);
  for (uint32_t i = 0; i < s->n_ns; i++) spk_srv_ns_destroy(s->ns[i]);
  free(s);
}

static inline void fx_digest(uint8_t d[20], uint32_t seed) {
  /* Distinct, well-spread digests without RIPEMD: a xorshift stream. */
  uint64_t x = 0x9E3779B97F4A7C15ull * (seed + 1);
  for (int i = 0; i < 20; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    d[i] = (uint8_t)x;
  }
}

#endif
