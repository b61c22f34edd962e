/*
 * fuzz_server.c - libFuzzer target: bytes -> the request handler, as a
 * connection would feed it (framing, header checks, dispatch), no sockets.
 *
 *   CC=clang meson setup build/srvfuzz -Dfuzz=true -Dtests=false
 *   ninja -C build/srvfuzz server/fuzz_server
 *   build/srvfuzz/server/fuzz_server -max_total_time=60
 *
 * One in-process server (3 nodes, so routing and views are exercised) lives
 * for the whole run; records written by one input are visible to the next,
 * which lets the fuzzer reach read-modify-write paths.
 */
#include <stdio.h>
#include <stdlib.h>

#include "srv.h"

static spk_srv *g;
static spk_srv_ctx g_ctx;

static void setup(void) {
  g = calloc(1, sizeof *g);
  if (!g) abort();
  g->start_ms = spk_srv_mono_ms();
  const char *names[2] = {"test", "bar"};
  g->n_ns = 2;
  for (uint32_t i = 0; i < 2; i++) {
    spk_srv_ns_cfg c = {0};
    snprintf(c.name, sizeof c.name, "%s", names[i]);
    c.rf = 2;
    c.max_record_size = 64 * 1024;
    c.nsup_period = 1;
    c.data_size = 1ull << 30;
    g->ns[i] = spk_srv_ns_create(&c, i);
    if (!g->ns[i]) abort();
  }
  g->n_nodes = 3;
  for (uint32_t i = 0; i < 3; i++) {
    g->nodes[i].ix = i;
    g->nodes[i].port = (uint16_t)(3000 + 10 * i);
    g->nodes[i].listen_fd = -1;
  }
  if (spk_srv_cluster_init(g) != 0) abort();
  spk_srv_ctx_init(&g_ctx, g, &g->nodes[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g) setup();
  /* First byte picks the node that receives the stream. */
  if (size < 1) return 0;
  g_ctx.node = &g->nodes[data[0] % 3];
  data++;
  size--;
  size_t off = 0;
  while (size - off >= 8) {
    uint64_t body;
    if (spk_srv_check_header(data + off, &body) != 0) break;
    if (body > size - off - 8) break; /* the server would wait */
    g_ctx.out.len = 0;
    int act = spk_srv_dispatch(&g_ctx, data + off, 8 + (size_t)body);
    off += 8 + (size_t)body;
    if (act != SPK_SRV_REPLY) break;
    /* Every answer must be well-framed proto messages. */
    size_t p = 0;
    while (p < g_ctx.out.len) {
      if (g_ctx.out.len - p < 8) abort();
      uint64_t sz = spk_be64(g_ctx.out.data + p) & 0xFFFFFFFFFFFFull;
      if (g_ctx.out.data[p] != 2 || sz > g_ctx.out.len - p - 8) abort();
      p += 8 + (size_t)sz;
    }
  }
  /* Keep memory bounded across a long run. */
  if (atomic_load(&g->ns[0]->objects) + atomic_load(&g->ns[1]->objects) > 20000) {
    spk_srv_truncate(g->ns[0], 0, UINT64_MAX);
    spk_srv_truncate(g->ns[1], 0, UINT64_MAX);
  }
  return 0;
}
