/*
 * msg.c - strict as_msg parsing (the real server's demarshal rules) and
 * response building.  Responses are written straight into the context's
 * output buffer; nothing else is allocated per request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "srv.h"

/* ---- context --------------------------------------------------------------- */

void spk_srv_ctx_init(spk_srv_ctx *c, spk_srv *srv, spk_srv_node *node) {
  memset(c, 0, sizeof *c);
  c->srv = srv;
  c->node = node;
}

void spk_srv_ctx_free(spk_srv_ctx *c) {
  spk_buf_free(&c->out);
  spk_buf_free(&c->scratch);
  free(c->bins);
  free(c->rops);
  c->bins = NULL;
  c->rops = NULL;
  c->bins_cap = c->rops_cap = 0;
}

int spk_srv_ctx_bins(spk_srv_ctx *c, uint32_t n) {
  if (n <= c->bins_cap) return 0;
  uint32_t cap = c->bins_cap ? c->bins_cap : 64;
  while (cap < n) cap *= 2;
  spk_srv_bin *b = realloc(c->bins, (size_t)cap * sizeof *b);
  if (!b) return -1;
  c->bins = b;
  c->bins_cap = cap;
  return 0;
}

int spk_srv_ctx_rops(spk_srv_ctx *c, uint32_t n) {
  if (n <= c->rops_cap) return 0;
  uint32_t cap = c->rops_cap ? c->rops_cap : 64;
  while (cap < n) cap *= 2;
  spk_srv_resp_op *r = realloc(c->rops, (size_t)cap * sizeof *r);
  if (!r) return -1;
  c->rops = r;
  c->rops_cap = cap;
  return 0;
}

/* ---- parsing ------------------------------------------------------------------- */

int spk_srv_ops_check(const uint8_t *p, size_t len, uint16_t n_ops,
                      const uint8_t **end) {
  size_t off = 0;
  for (uint16_t i = 0; i < n_ops; i++) {
    if (len - off < SPK_OP_HEADER_SIZE) return -1;
    const uint8_t *op = p + off;
    uint64_t op_sz = spk_be32(op);
    uint32_t name_len = op[7];
    uint32_t meta = (op[6] & 1) ? 8 : 0; /* has_lut: XDR's 8-byte LUT */
    /* The name (and LUT) must be inside the message. */
    if ((uint64_t)off + SPK_OP_HEADER_SIZE + name_len + meta > len) return -1;
    if (4u + name_len + meta > op_sz) return -1;
    if ((uint64_t)off + 4 + op_sz > len) return -1;
    off += 4 + (size_t)op_sz;
  }
  if (end) *end = p + off;
  return 0;
}

int spk_srv_req_parse(const uint8_t *msg, size_t len, spk_srv_req *r) {
  r->msg = msg;
  r->len = len;
  r->fields = 0;
  if (len < SPK_MSG_HEADER_SIZE) return SPK_SRV_ERR_PARAMETER;
  spk_msg_header_read(msg, &r->h);
  /* header_sz is not checked: fields always start after 22 bytes. */
  size_t off = SPK_MSG_HEADER_SIZE;
  for (uint16_t i = 0; i < r->h.n_fields; i++) {
    if (len - off < SPK_FIELD_HEADER_SIZE) return SPK_SRV_ERR_PARAMETER;
    uint64_t sz = spk_be32(msg + off);
    if (sz == 0 || off + 4 + sz > len) return SPK_SRV_ERR_PARAMETER;
    uint8_t type = msg[off + 4];
    if (type < 64 && !(r->fields & SPK_SRV_F(type))) {
      r->fields |= SPK_SRV_F(type);
      r->f[type].p = msg + off + 5;
      r->f[type].len = (uint32_t)(sz - 1);
    }
    off += 4 + (size_t)sz;
  }
  r->ops = msg + off;
  const uint8_t *end;
  if (spk_srv_ops_check(msg + off, len - off, r->h.n_ops, &end) != 0)
    return SPK_SRV_ERR_PARAMETER;
  if (end != msg + len) return SPK_SRV_ERR_PARAMETER;
  return 0;
}

int spk_srv_next_op(spk_srv_op_iter *it, spk_srv_op *o) {
  if (it->left == 0) return 0;
  const uint8_t *p = it->p;
  uint32_t op_sz = spk_be32(p);
  o->op = p[4];
  o->ptype = p[5];
  o->flags = p[6];
  o->name_len = p[7];
  o->name = (const char *)p + 8;
  uint32_t meta = (o->flags & 1) ? 8 : 0;
  o->val = p + 8 + o->name_len + meta;
  o->len = op_sz - 4 - o->name_len - meta;
  it->p = p + 4 + op_sz;
  it->left--;
  return 1;
}

/* ---- responses ------------------------------------------------------------------- */

static void put_header(uint8_t *p, uint8_t info3, uint8_t rc, uint32_t gen,
                       uint32_t void_time, uint32_t ttl, uint16_t n_ops) {
  p[0] = SPK_MSG_HEADER_SIZE;
  p[1] = 0;
  p[2] = 0;
  p[3] = info3;
  p[4] = 0;
  p[5] = rc;
  spk_put_be32(p + 6, gen);
  spk_put_be32(p + 10, void_time);
  spk_put_be32(p + 14, ttl);
  spk_put_be16(p + 18, 0);
  spk_put_be16(p + 20, n_ops);
}

void spk_srv_reply_header(spk_srv_ctx *c, uint8_t rc, uint32_t gen,
                          uint32_t void_time) {
  uint8_t *p = spk_buf_extend(&c->out, 30);
  if (!p) return;
  spk_proto_write(p, SPK_PROTO_MSG, SPK_MSG_HEADER_SIZE);
  put_header(p + 8, 0, rc, gen, void_time, 0, 0);
}

void spk_srv_put_op(spk_buf *b, uint8_t op, uint8_t ptype, const char *name,
                    uint8_t name_len, const uint8_t *val, uint32_t len) {
  uint8_t *p = spk_buf_extend(b, (size_t)8 + name_len + len);
  if (!p) return;
  spk_put_be32(p, 4u + name_len + len);
  p[4] = op;
  p[5] = ptype;
  p[6] = 0;
  p[7] = name_len;
  if (name_len) memcpy(p + 8, name, name_len);
  if (len) memcpy(p + 8 + name_len, val, len);
}

static size_t ops_size(const spk_srv_resp_op *ops, uint32_t n) {
  size_t sz = 0;
  for (uint32_t i = 0; i < n; i++) sz += 8u + ops[i].name_len + ops[i].len;
  return sz;
}

static void put_ops(spk_srv_ctx *c, const spk_srv_resp_op *ops, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    const spk_srv_resp_op *o = &ops[i];
    /* Resolve scratch offsets only after the output grew: scratch and out
     * are distinct buffers, so the pointer stays valid during the copy. */
    const uint8_t *v = o->in_scratch ? c->scratch.data + o->off : o->val;
    spk_srv_put_op(&c->out, o->op, o->ptype, o->name, o->name_len, v, o->len);
  }
}

void spk_srv_msg_ops(spk_srv_ctx *c, uint8_t info3, uint8_t rc, uint32_t gen,
                     uint32_t void_time, uint32_t ttl,
                     const spk_srv_resp_op *ops, uint32_t n_ops) {
  uint8_t *p = spk_buf_extend(&c->out, SPK_MSG_HEADER_SIZE);
  if (!p) return;
  put_header(p, info3, rc, gen, void_time, ttl, (uint16_t)n_ops);
  if (spk_buf_reserve(&c->out, ops_size(ops, n_ops)) != 0) return;
  put_ops(c, ops, n_ops);
}

void spk_srv_reply_ops(spk_srv_ctx *c, uint8_t rc, uint32_t gen,
                       uint32_t void_time, const spk_srv_resp_op *ops,
                       uint32_t n_ops) {
  size_t body = SPK_MSG_HEADER_SIZE + ops_size(ops, n_ops);
  if (spk_buf_reserve(&c->out, 8 + body) != 0) return;
  uint8_t *p = spk_buf_extend(&c->out, 8);
  spk_proto_write(p, SPK_PROTO_MSG, body);
  spk_srv_msg_ops(c, 0, rc, gen, void_time, 0, ops, n_ops);
}

/* ---- misc ------------------------------------------------------------------------ */

uint64_t spk_srv_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t spk_srv_now_cl(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return (uint32_t)((uint64_t)ts.tv_sec - SPK_CITRUSLEAF_EPOCH);
}

uint64_t spk_srv_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void spk_srv_buf_printf(spk_buf *b, const char *fmt, ...) {
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof tmp) {
    (void)spk_buf_append(b, tmp, (size_t)n);
    return;
  }
  if (spk_buf_reserve(b, (size_t)n + 1) != 0) return;
  va_start(ap, fmt);
  vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}
