/* fixture.h - an in-process server (no sockets) for the C unit tests. */
#ifndef SPK_SRV_TEST_FIXTURE_H
#define SPK_SRV_TEST_FIXTURE_H

#include <stdlib.h>
#include <string.h>
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

/* A request under construction: its buffer (owned until fx_send frees it)
 * and the field and op counts spk_msg_end needs. */
typedef struct fx_req {
  spk_buf b;
  size_t start;
  uint16_t nf, no;
} fx_req;

static inline void fx_begin(fx_req *r, uint8_t i1, uint8_t i2, uint8_t i3, uint32_t ttl) {
  memset(r, 0, sizeof *r);
  spk_msg_header h = {0};
  h.info1 = i1;
  h.info2 = i2;
  h.info3 = i3;
  h.record_ttl = ttl;
  h.transaction_ttl = 1000;
  r->start = spk_msg_begin(&r->b, &h);
}

/* The namespace, set and digest fields of the record numbered seed. */
static inline void fx_key(fx_req *r, const char *ns, const char *set, uint32_t seed) {
  uint8_t d[20];
  fx_digest(d, seed);
  spk_msg_field(&r->b, SPK_FIELD_NAMESPACE, ns, strlen(ns));
  spk_msg_field(&r->b, SPK_FIELD_SETNAME, set, strlen(set));
  spk_msg_field(&r->b, SPK_FIELD_DIGEST, d, 20);
  r->nf += 3;
}

/* Dispatch r (its buffer is freed) and read the first answer's as_msg
 * header into h when there is one (h untouched otherwise).  Returns the
 * dispatcher's action. */
static inline int fx_send(spk_srv_ctx *c, fx_req *r, spk_msg_header *h) {
  spk_msg_end(&r->b, r->start, r->nf, r->no);
  c->out.len = 0;
  int act = spk_srv_dispatch(c, r->b.data, r->b.len);
  spk_buf_free(&r->b);
  if (h && c->out.len >= 30) spk_msg_header_read(c->out.data + 8, h);
  return act;
}

/* Dispatch an info request; returns its whole answer text (NUL-terminated,
 * in c->out until the next dispatch). */
static inline const char *fx_info(spk_srv_ctx *c, const char *text) {
  uint8_t buf[512];
  size_t n = strlen(text);
  SPK_ASSERT(n + 8 <= sizeof buf);
  spk_proto_write(buf, SPK_PROTO_INFO, n);
  memcpy(buf + 8, text, n);
  c->out.len = 0;
  spk_srv_dispatch(c, buf, 8 + n);
  spk_buf_append(&c->out, "", 1);
  return (const char *)c->out.data + 8;
}

#endif
