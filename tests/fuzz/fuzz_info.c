/*
 * fuzz_info.c - libFuzzer target for the info text parsers.
 *
 * The input is an info response body: every line's value (and the whole
 * input as one value) goes through spk_info_error, the number and version
 * parsers, spk_peers_parse and both replicas grammars.  Accepted peers
 * values are printed back in the grammar and must re-parse to the same
 * result; base64 must round-trip.
 */
#include <stdio.h>
#include <stdlib.h>

#include "spk_info.h"

#define CHECK(c)                 \
  do {                           \
    if (!(c)) __builtin_trap();  \
  } while (0)

static volatile uint8_t sink;

static void touch(const void *p, size_t n) {
  const uint8_t *q = p;
  uint8_t x = 0;
  for (size_t i = 0; i < n; i++) x ^= q[i];
  sink ^= x;
}

static void put(spk_buf *b, const char *s) {
  CHECK(spk_buf_append(b, s, strlen(s)) == 0);
}

/* Print a parsed peers list back in the peers grammar. */
static void print_peers(const spk_peers *p, spk_buf *b) {
  char num[48];
  snprintf(num, sizeof num, "%llu,%u,[", (unsigned long long)p->generation,
           p->default_port);
  put(b, num);
  for (uint32_t i = 0; i < p->n_peers; i++) {
    const spk_peer *pe = &p->peers[i];
    put(b, i ? ",[" : "[");
    put(b, pe->node_name);
    put(b, ",");
    put(b, pe->tls_name);
    put(b, ",[");
    for (uint32_t h = 0; h < pe->n_hosts; h++) {
      const spk_host *ho = &pe->hosts[h];
      if (h) put(b, ",");
      bool v6 = strchr(ho->name, ':') != NULL;
      if (v6) put(b, "[");
      put(b, ho->name);
      snprintf(num, sizeof num, "%s:%u", v6 ? "]" : "", ho->port);
      put(b, num);
    }
    put(b, "]]");
  }
  put(b, "]");
}

static int same_peers(const spk_peers *a, const spk_peers *b) {
  if (a->generation != b->generation || a->default_port != b->default_port ||
      a->n_peers != b->n_peers)
    return 0;
  for (uint32_t i = 0; i < a->n_peers; i++) {
    const spk_peer *x = &a->peers[i], *y = &b->peers[i];
    if (strcmp(x->node_name, y->node_name) || strcmp(x->tls_name, y->tls_name) ||
        x->n_hosts != y->n_hosts)
      return 0;
    for (uint32_t h = 0; h < x->n_hosts; h++)
      if (strcmp(x->hosts[h].name, y->hosts[h].name) ||
          x->hosts[h].port != y->hosts[h].port)
        return 0;
  }
  return 1;
}

static void check_peers(spk_strv v) {
  spk_peers p;
  spk_error err;
  int rc = spk_peers_parse(v, &p, &err);
  if (rc) {
    CHECK(rc == SPK_ERR_PROTOCOL && err.code == rc && p.peers == NULL);
    return;
  }
  uint32_t total = 0;
  for (uint32_t i = 0; i < p.n_peers; i++) {
    const spk_peer *pe = &p.peers[i];
    CHECK(strlen(pe->node_name) > 0 && strlen(pe->node_name) < SPK_NODE_NAME_MAX);
    CHECK(pe->n_hosts == 0 || pe->hosts != NULL);
    for (uint32_t h = 0; h < pe->n_hosts; h++) {
      CHECK(pe->hosts[h].port != 0);
      CHECK(strlen(pe->hosts[h].name) > 0);
    }
    total += pe->n_hosts;
  }
  CHECK(total <= v.len);

  spk_buf b = {0};
  print_peers(&p, &b);
  spk_strv again = {(const char *)b.data, b.len};
  spk_peers q;
  CHECK(spk_peers_parse(again, &q, NULL) == 0);
  CHECK(same_peers(&p, &q));
  spk_peers_free(&q);
  spk_peers_free(&p);
  spk_buf_free(&b);
}

typedef struct {
  uint32_t calls;
} rep_ctx;

static int rep_cb(void *vctx, spk_strv ns, uint32_t regime,
                  uint32_t n_replicas,
                  const uint8_t (*bitmaps)[SPK_REPLICA_BITMAP_BYTES],
                  uint32_t n_bitmaps) {
  rep_ctx *c = vctx;
  (void)regime;
  CHECK(ns.len >= 1 && ns.len <= 31);
  touch(ns.p, ns.len);
  CHECK(n_bitmaps <= SPK_MAX_REPLICAS && n_bitmaps <= n_replicas);
  for (uint32_t i = 0; i < n_bitmaps; i++)
    touch(bitmaps[i], SPK_REPLICA_BITMAP_BYTES);
  c->calls++;
  return c->calls == 3 ? 42 : 0; /* exercise the early stop too */
}

static void check_value(spk_strv v) {
  int code;
  spk_strv msg;
  if (spk_info_error(v, &code, &msg)) {
    CHECK(code != 0);
    CHECK(msg.p >= v.p && msg.p + msg.len == v.p + v.len);
  }
  int64_t i;
  uint64_t u;
  uint32_t ver;
  (void)spk_info_parse_i64(v, &i);
  (void)spk_info_parse_u64(v, &u);
  (void)spk_info_parse_version(v, &ver);
  check_peers(v);

  rep_ctx c = {0};
  int rc = spk_replicas_parse(v, rep_cb, &c, NULL);
  CHECK(rc == 0 || rc == 42 || (rc == SPK_ERR_PROTOCOL && c.calls == 0));
  c.calls = 0;
  rc = spk_replicas_all_parse(v, rep_cb, &c, NULL);
  CHECK(rc == 0 || rc == 42 || (rc == SPK_ERR_PROTOCOL && c.calls == 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *body = (const char *)data;
  size_t pos = 0, lines = 0;
  spk_strv name, value;
  while (spk_info_next(body, size, &pos, &name, &value)) {
    CHECK(pos <= size); /* "\tvalue" yields an empty name */
    CHECK(name.p >= body && value.p + value.len <= body + size);
    touch(name.p, name.len);
    check_value(value);
    /* find returns the first line of that name. */
    if (name.len < 64) {
      char z[64];
      memcpy(z, name.p, name.len);
      z[name.len] = '\0';
      spk_strv found;
      if (!memchr(z, '\0', name.len)) {
        CHECK(spk_info_find(body, size, z, &found));
        CHECK(found.p <= value.p);
      }
    }
    if (++lines > 64) break;
  }
  spk_strv all = {body, size};
  check_value(all);

  /* Base64: decode, then encode/decode is the identity on the bytes. */
  uint8_t *out = malloc(size / 4 * 3 + 1);
  CHECK(out != NULL);
  long n = spk_base64_decode(body, size, out, size / 4 * 3);
  if (n >= 0) {
    char *enc = malloc(((size_t)n + 2) / 3 * 4 + 1);
    uint8_t *back = malloc((size_t)n + 1);
    CHECK(enc && back);
    size_t elen = spk_base64_encode(out, (size_t)n, enc);
    CHECK(elen == size);
    CHECK(spk_base64_decode(enc, elen, back, (size_t)n) == n);
    CHECK(memcmp(back, out, (size_t)n) == 0);
    free(enc);
    free(back);
  }
  free(out);
  return 0;
}
