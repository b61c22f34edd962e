/*
 * dispatch.c - one complete proto message in, response bytes out.  No
 * sockets here: net.c feeds it, and so does the fuzz target.
 *
 * Connection-level rules of the real server: a TLS ClientHello, a bad proto
 * version (0 is tolerated only for type 2) or type, or a size above 128 MiB
 * closes the connection after the 8-byte header; type 5 (XDR) from a client
 * is dropped and the connection is never read again; type 4 (compressed) is
 * Enterprise-only; admin messages (type 2) on CE answer 51.
 */
#include "srv.h"

int spk_srv_check_header(const uint8_t hdr[8], uint64_t *body_len) {
  if (hdr[0] == 22 && hdr[1] == 3 && hdr[5] == 1) return -1; /* TLS hello */
  spk_proto p;
  spk_proto_read(hdr, &p);
  if (p.version != SPK_PROTO_VERSION &&
      !(p.version == 0 && p.type == SPK_PROTO_ADMIN))
    return -1;
  if (p.type == 0 || p.type > SPK_PROTO_XDR) return -1;
  if (p.size > SPK_PROTO_SIZE_MAX) return -1;
  *body_len = p.size;
  return 0;
}

static void admin_reply(spk_srv_ctx *c) {
  uint8_t *p = spk_buf_extend(&c->out, 24);
  if (!p) return;
  spk_proto_write(p, SPK_PROTO_ADMIN, 16);
  memset(p + 8, 0, 16);
  p[9] = c->srv->cfg.enterprise ? SPK_SRV_ERR_SECURITY_NOT_ENABLED
                                : SPK_SRV_ERR_SECURITY_NOT_SUPPORTED;
}

static void batch_error(spk_srv_ctx *c, uint8_t rc) {
  uint8_t *p = spk_buf_extend(&c->out, 30);
  if (!p) return;
  spk_proto_write(p, SPK_PROTO_MSG, SPK_MSG_HEADER_SIZE);
  spk_msg_header h = {0};
  h.info3 = SPK_INFO3_LAST;
  h.result_code = rc;
  spk_msg_header_write(p + 8, &h);
}

static void as_msg(spk_srv_ctx *c, const uint8_t *body, size_t len) {
  spk_srv *s = c->srv;
  spk_srv_faults *f = &c->node->faults;
  bool batch = len >= SPK_MSG_HEADER_SIZE && (body[1] & SPK_INFO1_BATCH);
  int32_t left = atomic_load_explicit(&f->fail_count, memory_order_relaxed);
  bool fail = false;
  while (left > 0 && !fail)
    fail = atomic_compare_exchange_weak(&f->fail_count, &left, left - 1);
  if (fail) {
    uint8_t rc = (uint8_t)atomic_load(&f->fail_code);
    if (batch) batch_error(c, rc);
    else spk_srv_reply_header(c, rc, 0, 0);
    return;
  }
  spk_srv_view *v = spk_srv_view_of(c->node);
  if (v && v->partition_gen < 0) {
    /* Not balanced yet (restarted node before it joined). */
    if (batch) batch_error(c, SPK_SRV_ERR_UNAVAILABLE);
    else spk_srv_reply_header(c, SPK_SRV_ERR_UNAVAILABLE, 0, 0);
    return;
  }
  if (batch) {
    spk_srv_batch(c, body, len);
    return;
  }
  spk_srv_req r;
  if (spk_srv_req_parse(body, len, &r) != 0) {
    atomic_fetch_add_explicit(&s->demarshal_error, 1, memory_order_relaxed);
    spk_srv_reply_header(c, SPK_SRV_ERR_PARAMETER, 0, 0);
    return;
  }
  if (!spk_srv_req_has(&r, SPK_FIELD_NAMESPACE)) {
    spk_srv_reply_header(c, SPK_SRV_ERR_NAMESPACE, 0, 0);
    return;
  }
  spk_srv_ns *ns = spk_srv_ns_find(s, r.f[SPK_FIELD_NAMESPACE].p,
                                   r.f[SPK_FIELD_NAMESPACE].len);
  if (!ns) {
    spk_srv_reply_header(c, SPK_SRV_ERR_NAMESPACE, 0, 0);
    return;
  }
  if (!spk_srv_req_has(&r, SPK_FIELD_DIGEST)) {
    /* A KEY without a digest is an old client; neither means a scan or
     * query. */
    if (spk_srv_req_has(&r, SPK_FIELD_KEY))
      spk_srv_reply_header(c, SPK_SRV_ERR_UNSUPPORTED, 0, 0);
    else
      spk_srv_scan(c, ns, &r);
    return;
  }
  if (r.f[SPK_FIELD_DIGEST].len != SPK_DIGEST_SIZE) {
    spk_srv_reply_header(c, SPK_SRV_ERR_PARAMETER, 0, 0);
    return;
  }
  spk_srv_rw(c, ns, &r, NULL);
}

int spk_srv_dispatch(spk_srv_ctx *c, const uint8_t *msg, size_t len) {
  spk_proto p;
  spk_proto_read(msg, &p);
  const uint8_t *body = msg + SPK_PROTO_HEADER_SIZE;
  size_t blen = len - SPK_PROTO_HEADER_SIZE;
  atomic_fetch_add_explicit(&c->node->n_requests, 1, memory_order_relaxed);
  switch (p.type) {
  case SPK_PROTO_INFO:
    spk_srv_info(c, body, blen);
    return SPK_SRV_REPLY;
  case SPK_PROTO_ADMIN:
    admin_reply(c);
    return SPK_SRV_REPLY;
  case SPK_PROTO_COMPRESSED:
    /* Compression is Enterprise-only; CE answers 25 in a plain reply. */
    spk_srv_reply_header(c, SPK_SRV_ERR_ENTERPRISE_ONLY, 0, 0);
    return SPK_SRV_REPLY;
  case SPK_PROTO_XDR:
    return SPK_SRV_STALL;
  default:
    as_msg(c, body, blen);
    return SPK_SRV_REPLY;
  }
}
