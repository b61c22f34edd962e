/* spk_batch.c - batch-index command (see spk_batch.h). */
#include "spk_batch.h"

#include <stdlib.h>

size_t spk_batch_row_begin(spk_buf *b, uint8_t row_flags, uint8_t info1,
                           uint8_t info2, uint8_t info3, uint16_t gen,
                           uint32_t ttl) {
  size_t off = b->len;
  size_t n = 1 + 1 + ((row_flags & SPK_BROW_EXTRA_INFO) ? 2 : 0) +
             ((row_flags & SPK_BROW_GENERATION) ? 2 : 0) +
             ((row_flags & SPK_BROW_RECORD_TTL) ? 4 : 0) + 4;
  uint8_t *p = spk_buf_extend(b, n);
  if (!p) return (size_t)-1;
  *p++ = row_flags;
  *p++ = info1;
  if (row_flags & SPK_BROW_EXTRA_INFO) {
    *p++ = info2;
    *p++ = info3;
  }
  if (row_flags & SPK_BROW_GENERATION) {
    spk_put_be16(p, gen);
    p += 2;
  }
  if (row_flags & SPK_BROW_RECORD_TTL) {
    spk_put_be32(p, ttl);
    p += 4;
  }
  /* n_fields / n_ops patched by spk_batch_row_end */
  spk_put_be32(p, 0);
  return off;
}

void spk_batch_row_end(spk_buf *b, size_t off, uint16_t n_fields, uint16_t n_ops) {
  uint8_t flags = b->data[off];
  size_t at = off + 2 + ((flags & SPK_BROW_EXTRA_INFO) ? 2 : 0) +
              ((flags & SPK_BROW_GENERATION) ? 2 : 0) +
              ((flags & SPK_BROW_RECORD_TTL) ? 4 : 0);
  spk_put_be16(b->data + at, n_fields);
  spk_put_be16(b->data + at + 2, n_ops);
}

void spk_batch_init(spk_batch *job, spk_cluster *c, const spk_policy *p,
                    spk_batch_row *rows, uint32_t n_rows) {
  memset(job, 0, sizeof *job);
  job->cluster = c;
  job->policy = p;
  job->rows = rows;
  job->n_rows = n_rows;
  job->node_policy = *p;
  job->node_policy.max_retries = 0;
  job->node_policy.sleep_between_retries_ms = 0;
  job->field_flags = SPK_BATCH_RESPOND_ALL;
  for (uint32_t i = 0; i < n_rows; i++) {
    rows[i].result = SPK_NO_RESPONSE;
    rows[i].answered = false;
    rows[i].in_doubt = false;
  }
}

void spk_batch_round_end(spk_batch *job) {
  for (uint32_t i = 0; i < job->n_nodes; i++) {
    spk_batch_node *bn = &job->nodes[i];
    free(bn->rows);
    spk_buf_free(&bn->tx);
    spk_buf_free(&bn->rx);
  }
  free(job->nodes);
  job->nodes = NULL;
  job->n_nodes = 0;
}

void spk_batch_destroy(spk_batch *job) {
  spk_batch_round_end(job);
  spk_buf_free(&job->rows_buf);
  spk_buf_free(&job->resp);
}

/* Stream callback of one node command: every as_msg of the body. */
static int on_msg(void *ctx, const uint8_t *body, size_t len, spk_error *err) {
  spk_batch_node *bn = ctx;
  spk_batch *job = bn->job;
  size_t pos = 0;
  while (pos < len) {
    spk_msg_view v;
    size_t used;
    if (spk_msg_parse(body + pos, len - pos, &v, &used, err) != 0) return SPK_ERR_PROTOCOL;
    if (v.h.info3 & SPK_INFO3_LAST) {
      if (v.h.result_code != 0)
        spk_error_set(err, v.h.result_code, "batch failed on node %s: %s",
                      bn->node->name, spk_result_message(v.h.result_code));
      return 1;
    }
    uint32_t idx = v.h.transaction_ttl;
    if (idx >= job->n_rows) {
      spk_error_set(err, SPK_ERR_PROTOCOL, "batch answer for row %u of %u", idx,
                    job->n_rows);
      return SPK_ERR_PROTOCOL;
    }
    spk_batch_row *row = &job->rows[idx];
    if (!row->answered) {
      size_t off = job->resp.len;
      if (off > UINT32_MAX || spk_buf_append(&job->resp, body + pos, used) != 0) {
        spk_error_set(err, SPK_ERR_CLIENT, "out of memory for batch results");
        return SPK_ERR_CLIENT;
      }
      row->answered = true;
      row->result = v.h.result_code;
      row->generation = v.h.generation;
      row->void_time = v.h.record_ttl;
      row->resp_off = (uint32_t)off;
      row->resp_len = (uint32_t)used;
      row->in_doubt = false;
    }
    pos += used;
  }
  return 0;
}

static spk_batch_node *node_slot(spk_batch *job, spk_node *n, uint32_t *cap) {
  for (uint32_t i = 0; i < job->n_nodes; i++)
    if (job->nodes[i].node == n) return &job->nodes[i];
  if (job->n_nodes == *cap) {
    uint32_t nc = *cap ? *cap * 2 : 4;
    spk_batch_node *v = realloc(job->nodes, nc * sizeof *v);
    if (!v) return NULL;
    job->nodes = v;
    *cap = nc;
  }
  spk_batch_node *bn = &job->nodes[job->n_nodes++];
  memset(bn, 0, sizeof *bn);
  bn->job = job;
  bn->node = n;
  return bn;
}

static int add_row(spk_batch_node *bn, uint32_t idx, uint32_t *cap) {
  if (bn->n_rows == *cap) {
    uint32_t nc = *cap ? *cap * 2 : 16;
    uint32_t *v = realloc(bn->rows, nc * sizeof *v);
    if (!v) return -1;
    bn->rows = v;
    *cap = nc;
  }
  bn->rows[bn->n_rows++] = idx;
  return 0;
}

static int build_request(spk_batch *job, spk_batch_node *bn) {
  spk_msg_header h;
  memset(&h, 0, sizeof h);
  h.header_sz = SPK_MSG_HEADER_SIZE;
  h.info1 = SPK_INFO1_BATCH;
  h.transaction_ttl = job->policy->total_timeout_ms;
  spk_buf *b = &bn->tx;
  b->len = 0;
  size_t start = spk_msg_begin(b, &h);
  if (start == (size_t)-1) return SPK_ERR_CLIENT;
  size_t field_off = b->len;
  uint8_t *p = spk_buf_extend(b, SPK_FIELD_HEADER_SIZE + 5);
  if (!p) return SPK_ERR_CLIENT;
  p[4] = SPK_FIELD_BATCH_INDEX;
  spk_put_be32(p + 5, bn->n_rows);
  p[9] = job->field_flags;
  const spk_batch_row *prev = NULL;
  for (uint32_t i = 0; i < bn->n_rows; i++) {
    uint32_t idx = bn->rows[i];
    const spk_batch_row *r = &job->rows[idx];
    const uint8_t *body = job->rows_buf.data + r->body_off;
    bool repeat = prev && r->repeatable && prev->repeatable &&
                  prev->body_len == r->body_len &&
                  memcmp(job->rows_buf.data + prev->body_off, body, r->body_len) == 0;
    p = spk_buf_extend(b, 4 + SPK_DIGEST_SIZE + (repeat ? 1 : r->body_len));
    if (!p) return SPK_ERR_CLIENT;
    spk_put_be32(p, idx);
    memcpy(p + 4, r->digest, SPK_DIGEST_SIZE);
    if (repeat) p[4 + SPK_DIGEST_SIZE] = SPK_BROW_REPEAT;
    else memcpy(p + 4 + SPK_DIGEST_SIZE, body, r->body_len);
    prev = r;
  }
  size_t flen = b->len - field_off - 4;
  if (flen > UINT32_MAX) return SPK_ERR_PARAM;
  spk_put_be32(b->data + field_off, (uint32_t)flen);
  return spk_msg_end(b, start, 1, 0);
}

int spk_batch_plan(spk_batch *job, uint64_t now_ns) {
  spk_batch_round_end(job);
  if (job->round == 0) {
    uint32_t total = job->policy->total_timeout_ms;
    job->deadline_ns = total ? now_ns + (uint64_t)total * 1000000u : 0;
  }
  uint32_t round = job->round++;
  if (round > 0 && job->deadline_ns) {
    if (now_ns >= job->deadline_ns) {
      for (uint32_t i = 0; i < job->n_rows; i++)
        if (!job->rows[i].answered) {
          job->rows[i].answered = true;
          job->rows[i].result = SPK_ERR_TIMEOUT;
        }
      spk_cluster_pmap(job->cluster); /* callers always unpin after plan */
      return 0;
    }
    /* Later rounds get what is left of the total timeout. */
    uint64_t left = (job->deadline_ns - now_ns + 999999u) / 1000000u;
    job->node_policy.total_timeout_ms = left < 1 ? 1 : (uint32_t)left;
  }
  const spk_pmap *m = spk_cluster_pmap(job->cluster);
  if (!m) return spk_error_set(&job->err, SPK_ERR_CLIENT, "out of memory");
  uint32_t cap_nodes = 0;
  uint32_t *row_caps = NULL;
  int rc = 0;
  for (uint32_t i = 0; i < job->n_rows; i++) {
    spk_batch_row *r = &job->rows[i];
    if (r->answered) continue;
    spk_error e;
    spk_node *n = spk_pmap_route(m, r->ns, r->ns_len, r->pid, job->policy->replica,
                                 r->is_write, round, &e);
    if (!n) {
      r->answered = true;
      r->result = e.code;
      if (!job->err.code) job->err = e;
      continue;
    }
    uint32_t before = job->n_nodes;
    spk_batch_node *bn = node_slot(job, n, &cap_nodes);
    if (!bn) {
      rc = SPK_ERR_CLIENT;
      break;
    }
    if (job->n_nodes != before) {
      uint32_t *v = realloc(row_caps, job->n_nodes * sizeof *v);
      if (!v) {
        rc = SPK_ERR_CLIENT;
        break;
      }
      row_caps = v;
      row_caps[job->n_nodes - 1] = 0;
    }
    if (add_row(bn, i, &row_caps[bn - job->nodes]) != 0) {
      rc = SPK_ERR_CLIENT;
      break;
    }
  }
  free(row_caps);
  for (uint32_t i = 0; rc == 0 && i < job->n_nodes; i++) {
    spk_batch_node *bn = &job->nodes[i];
    rc = build_request(job, bn);
    if (rc) break;
    spk_cmd_init(&bn->cmd, job->cluster, &job->node_policy, SPK_CMD_STREAM, &bn->tx,
                 &bn->rx);
    bn->cmd.target = bn->node;
    bn->cmd.on_msg = on_msg;
    bn->cmd.on_msg_ctx = bn;
    for (uint32_t k = 0; k < bn->n_rows; k++)
      if (job->rows[bn->rows[k]].is_write) bn->cmd.is_write = true;
  }
  if (rc) {
    spk_batch_round_end(job);
    spk_error_set(&job->err, rc, "cannot build the batch: %s", spk_result_message(rc));
    for (uint32_t i = 0; i < job->n_rows; i++)
      if (!job->rows[i].answered) {
        job->rows[i].answered = true;
        job->rows[i].result = rc;
      }
    return rc; /* still pinned: callers unpin after every plan */
  }
  /* The caller unpins once each node command holds its node (sync: after
   * the round; event loop: after starting the commands). */
  return (int)job->n_nodes;
}

void spk_batch_node_done(spk_batch *job, spk_batch_node *bn) {
  int rc = bn->cmd.err.code;
  bn->done = true;
  bool retry = rc != 0 && spk_result_retryable(rc) &&
               job->round <= job->policy->max_retries &&
               !(job->deadline_ns && spk_now_ns() >= job->deadline_ns);
  for (uint32_t k = 0; k < bn->n_rows; k++) {
    spk_batch_row *r = &job->rows[bn->rows[k]];
    if (r->answered) continue;
    if (r->is_write && bn->cmd.sent > 0) r->in_doubt = true;
    if (retry) continue;
    r->answered = true;
    r->result = rc ? rc : SPK_NO_RESPONSE;
    if (r->is_write) r->in_doubt = r->in_doubt || spk_cmd_in_doubt(&bn->cmd, rc);
  }
  if (rc && !job->err.code) job->err = bn->cmd.err;
}

int spk_batch_row_msg(const spk_batch *job, const spk_batch_row *row,
                      spk_msg_view *v) {
  size_t used;
  return spk_msg_parse(job->resp.data + row->resp_off, row->resp_len, v, &used, NULL);
}
