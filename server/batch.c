/*
 * batch.c - batch-index requests (info1 BATCH, field 41).
 *
 * The whole request is validated before any row runs, as the real server
 * does: a bad row count, a missing field 41, a row with an unknown
 * namespace or a malformed row answer only the LAST message with result 4.
 * Rows then run one by one through the single-record code; their answers
 * (as_msg with the row index in transaction_ttl) are packed into proto
 * messages of up to 128 KiB, followed by a separate LAST message.
 *
 * Field-41 flags: 0x04 report every row, LAST rc 0; 0x08 (without 0x04)
 * report every row and put the first row error in LAST; 0x00: the first
 * real error (not NOT_FOUND / FILTERED_OUT) drops every answer and only
 * LAST with that code is sent.  Rows are answered in request order (the
 * real server answers in completion order; clients use the index).
 */
#include <stdlib.h>

#include "srv.h"

#define BATCH_BLOCK_SIZE (128 * 1024)
#define BATCH_MAX_REQUESTS 5000

#define ROW_REPEAT 0x01
#define ROW_EXTRA_INFO 0x02
#define ROW_GENERATION 0x04
#define ROW_RECORD_TTL 0x08
#define ROW_INFO4 0x10

#define FLAG_REPORT_ALL 0x04
#define FLAG_REPORT_ERROR 0x08

/* A validated row: where its bytes are, so the run pass can parse it again
 * into one reusable request instead of keeping a request per row. */
typedef struct batch_row {
  uint32_t index;
  uint8_t flags;
  const uint8_t *digest;
  const uint8_t *body; /* after the row-flags byte (unused for REPEAT) */
  size_t body_len;
  spk_srv_ns *ns;
} batch_row;

static void send_last(spk_srv_ctx *c, uint8_t rc) {
  uint8_t *p = spk_buf_extend(&c->out, 30);
  if (!p) return;
  spk_proto_write(p, SPK_PROTO_MSG, SPK_MSG_HEADER_SIZE);
  spk_msg_header h = {0};
  h.info3 = SPK_INFO3_LAST;
  h.result_code = rc;
  spk_msg_header_write(p + 8, &h);
}

/* Fields of a row: same rules as a message. */
static int parse_fields(const uint8_t *p, size_t len, uint16_t n, spk_srv_req *r,
                        size_t *used) {
  size_t off = 0;
  r->fields = 0;
  for (uint16_t i = 0; i < n; i++) {
    if (len - off < SPK_FIELD_HEADER_SIZE) return -1;
    uint64_t sz = spk_be32(p + off);
    if (sz == 0 || off + 4 + sz > len) return -1;
    uint8_t type = p[off + 4];
    if (type < 64 && !(r->fields & SPK_SRV_F(type))) {
      r->fields |= SPK_SRV_F(type);
      r->f[type].p = p + off + 5;
      r->f[type].len = (uint32_t)(sz - 1);
    }
    off += 4 + (size_t)sz;
  }
  *used = off;
  return 0;
}

/* Parse one full row (after its flags byte) into r; returns bytes used or
 * 0 when malformed. */
static size_t parse_row(const uint8_t *p, size_t len, uint8_t flags,
                        spk_srv_req *r) {
  size_t off = 0;
  memset(&r->h, 0, sizeof r->h);
  r->h.header_sz = SPK_MSG_HEADER_SIZE;
  size_t need = 1 + ((flags & ROW_EXTRA_INFO) ? 2 : 0) +
                ((flags & ROW_INFO4) ? 1 : 0) + ((flags & ROW_GENERATION) ? 2 : 0) +
                ((flags & ROW_RECORD_TTL) ? 4 : 0) + 4;
  if (len < need) return 0;
  r->h.info1 = p[off++];
  if (flags & ROW_EXTRA_INFO) {
    r->h.info2 = p[off++];
    r->h.info3 = p[off++];
  }
  if (flags & ROW_INFO4) r->h.info4 = p[off++];
  if (flags & ROW_GENERATION) {
    r->h.generation = spk_be16(p + off);
    off += 2;
  }
  if (flags & ROW_RECORD_TTL) {
    r->h.record_ttl = spk_be32(p + off);
    off += 4;
  }
  r->h.n_fields = spk_be16(p + off);
  r->h.n_ops = spk_be16(p + off + 2);
  off += 4;
  /* Rows never carry these parent-only bits. */
  r->h.info1 &= (uint8_t) ~(SPK_INFO1_BATCH | SPK_INFO1_COMPRESS_RESPONSE |
                            SPK_INFO1_XDR);
  size_t used;
  if (parse_fields(p + off, len - off, r->h.n_fields, r, &used) != 0) return 0;
  off += used;
  const uint8_t *end;
  if (spk_srv_ops_check(p + off, len - off, r->h.n_ops, &end) != 0) return 0;
  r->ops = p + off;
  r->msg = NULL;
  r->len = 0;
  return (size_t)(end - p);
}

static int validate_rows(spk_srv_ctx *c, const uint8_t *p, size_t len,
                         uint32_t n_rows, batch_row *rows, spk_srv_req *tmp) {
  size_t off = 0;
  const batch_row *prev = NULL;
  bool prev_has_key = false;
  for (uint32_t i = 0; i < n_rows; i++) {
    batch_row *row = &rows[i];
    if (len - off < 25) return -1;
    row->index = spk_be32(p + off);
    row->digest = p + off + 4;
    row->flags = p[off + 24];
    off += 25;
    if (row->flags & ROW_REPEAT) {
      /* Reuse the previous row's namespace, attributes and ops; a row that
       * sent a KEY must not be repeated. */
      if (!prev || prev_has_key) return -1;
      row->ns = prev->ns;
      row->body = NULL;
      row->body_len = 0;
      continue;
    }
    size_t used = parse_row(p + off, len - off, row->flags, tmp);
    if (!used || !spk_srv_req_has(tmp, SPK_FIELD_NAMESPACE)) return -1;
    row->ns = spk_srv_ns_find(c->srv, tmp->f[SPK_FIELD_NAMESPACE].p,
                              tmp->f[SPK_FIELD_NAMESPACE].len);
    if (!row->ns) return -1;
    row->body = p + off;
    row->body_len = used;
    off += used;
    prev = row;
    prev_has_key = spk_srv_req_has(tmp, SPK_FIELD_KEY);
  }
  return 0;
}

void spk_srv_batch(spk_srv_ctx *c, const uint8_t *msg, size_t len) {
  spk_srv *s = c->srv;
  atomic_fetch_add_explicit(&s->batch_index_initiate, 1, memory_order_relaxed);
  spk_srv_req parent;
  if (spk_srv_req_parse(msg, len, &parent) != 0 ||
      !spk_srv_req_has(&parent, SPK_FIELD_BATCH_INDEX) ||
      parent.f[SPK_FIELD_BATCH_INDEX].len < 5) {
    atomic_fetch_add_explicit(&s->batch_index_error, 1, memory_order_relaxed);
    send_last(c, SPK_SRV_ERR_PARAMETER);
    return;
  }
  const uint8_t *bf = parent.f[SPK_FIELD_BATCH_INDEX].p;
  uint32_t bf_len = parent.f[SPK_FIELD_BATCH_INDEX].len;
  uint32_t n_rows = spk_be32(bf);
  uint8_t flags = bf[4];
  if (n_rows == 0 || n_rows > BATCH_MAX_REQUESTS) {
    atomic_fetch_add_explicit(&s->batch_index_error, 1, memory_order_relaxed);
    send_last(c, n_rows == 0 ? SPK_SRV_ERR_PARAMETER : 151);
    return;
  }
  /* Each row takes at least 25 bytes: reject impossible counts before
   * allocating for them. */
  if ((uint64_t)n_rows * 25 > bf_len - 5) {
    atomic_fetch_add_explicit(&s->batch_index_error, 1, memory_order_relaxed);
    send_last(c, SPK_SRV_ERR_PARAMETER);
    return;
  }
  batch_row *rows = malloc((size_t)n_rows * sizeof *rows);
  spk_srv_req req;
  if (!rows || validate_rows(c, bf + 5, bf_len - 5, n_rows, rows, &req) != 0) {
    free(rows);
    atomic_fetch_add_explicit(&s->batch_index_error, 1, memory_order_relaxed);
    send_last(c, SPK_SRV_ERR_PARAMETER);
    return;
  }
  spk_srv_rw_opts o = {0};
  if (spk_srv_req_has(&parent, SPK_FIELD_FILTER)) {
    o.filter = parent.f[SPK_FIELD_FILTER].p;
    o.filter_len = parent.f[SPK_FIELD_FILTER].len;
  }
  size_t start = c->out.len;
  size_t block = start; /* offset of the current proto header */
  if (!spk_buf_extend(&c->out, 8)) {
    free(rows);
    return;
  }
  uint8_t last_rc = 0;
  bool dropped = false;
  for (uint32_t i = 0; i < n_rows; i++) {
    batch_row *row = &rows[i];
    o.row_ix = row->index;
    o.digest = row->digest;
    /* A REPEAT row runs with the request of the row before it. */
    if (!(row->flags & ROW_REPEAT)) parse_row(row->body, row->body_len, row->flags, &req);
    size_t before = c->out.len;
    int rc = spk_srv_rw(c, row->ns, &req, &o);
    bool real_error = rc != 0 && rc != SPK_SRV_ERR_NOT_FOUND &&
                      rc != SPK_SRV_ERR_FILTERED_OUT;
    if (real_error && !(flags & FLAG_REPORT_ALL)) {
      if (last_rc == 0) last_rc = (uint8_t)rc;
      if (!(flags & FLAG_REPORT_ERROR)) dropped = true;
    }
    if (dropped) {
      /* Later rows still run (the real server queued them all), but
       * nothing of the batch is sent except LAST. */
      c->out.len = before;
      continue;
    }
    if (c->out.len - block > BATCH_BLOCK_SIZE && before > block + 8) {
      /* Close the current block before this row and open a new one. */
      size_t row_len = c->out.len - before;
      if (!spk_buf_extend(&c->out, 8)) break;
      memmove(c->out.data + before + 8, c->out.data + before, row_len);
      spk_proto_write(c->out.data + block, SPK_PROTO_MSG, before - block - 8);
      block = before;
    }
  }
  free(rows);
  if (dropped) {
    c->out.len = start;
  } else if (c->out.len == block + 8) {
    c->out.len = block; /* no rows in the last block */
  } else {
    spk_proto_write(c->out.data + block, SPK_PROTO_MSG,
                    c->out.len - block - 8);
  }
  send_last(c, last_rc);
  if (last_rc)
    atomic_fetch_add_explicit(&s->batch_index_error, 1, memory_order_relaxed);
  else
    atomic_fetch_add_explicit(&s->batch_index_complete, 1, memory_order_relaxed);
}
