/* spk_cmd.c - the command state machine (see spk_cmd.h). */
#include "spk_cmd.h"

#include <stddef.h>

#include "../cluster/spk_hazard.h"

enum { PHASE_HEADER = 0, PHASE_BODY = 1 };

void spk_policy_init(spk_policy *p) {
  memset(p, 0, sizeof *p);
  p->total_timeout_ms = 1000;
  p->socket_timeout_ms = 30000;
  p->max_retries = 2;
  p->replica = SPK_REPLICA_SEQUENCE;
}

void spk_cmd_init(spk_cmd *cmd, spk_cluster *c, const spk_policy *p,
                  spk_cmd_kind kind, spk_buf *tx, spk_buf *rx) {
  /* Clear everything but the error message buffer and the response view,
   * which are written before they are read: this runs once per command. */
  memset(cmd, 0, offsetof(spk_cmd, err));
  cmd->err.code = 0;
  cmd->err.in_doubt = false;
  cmd->err.message[0] = '\0';
  memset(&cmd->body, 0, sizeof *cmd - offsetof(spk_cmd, body));
  cmd->cluster = c;
  cmd->policy = p;
  cmd->kind = kind;
  cmd->tx = tx;
  cmd->rx = rx;
}

bool spk_cmd_in_doubt(const spk_cmd *cmd, int code) {
  return cmd->is_write &&
         (cmd->sent > 1 ||
          (cmd->sent == 1 && (code == SPK_ERR_TIMEOUT || code <= 0)));
}

uint32_t spk_cmd_io_timeout_ms(const spk_cmd *cmd, uint64_t now_ns) {
  uint32_t st = cmd->policy->socket_timeout_ms;
  if (!cmd->deadline_ns) return st;
  if (now_ns >= cmd->deadline_ns) return SPK_CMD_EXPIRED;
  uint64_t left = (cmd->deadline_ns - now_ns + 999999u) / 1000000u;
  if (left >= SPK_CMD_EXPIRED) left = SPK_CMD_EXPIRED - 1;
  if (st == 0 || left < st) return (uint32_t)left;
  return st;
}

static spk_step done(spk_cmd *cmd, int code) {
  if (code == 0) {
    spk_error_reset(&cmd->err);
  } else {
    cmd->err.code = code;
    if (!cmd->err.message[0])
      spk_error_set(&cmd->err, code, "%s", spk_result_message(code));
    cmd->err.in_doubt = spk_cmd_in_doubt(cmd, code);
  }
  cmd->node = NULL;
  return SPK_STEP_DONE;
}

/* The key's namespace is strong-consistency: switch to the session's SC
 * policy before the first attempt, and set the request bits it implies. */
static void use_sc_policy(spk_cmd *cmd) {
  const spk_policy *sc = cmd->policy_sc;
  cmd->sc = true;
  if (cmd->attempts == 0 && sc->total_timeout_ms != cmd->policy->total_timeout_ms)
    cmd->deadline_ns = sc->total_timeout_ms
                           ? spk_now_ns() + (uint64_t)sc->total_timeout_ms * 1000000u
                           : 0;
  cmd->policy = sc;
  uint8_t *hdr = cmd->tx->data + SPK_PROTO_HEADER_SIZE;
  if (cmd->kind != SPK_CMD_SINGLE || cmd->tx->len < SPK_PROTO_HEADER_SIZE + SPK_MSG_HEADER_SIZE)
    return;
  if (!cmd->is_write) {
    static const uint8_t bits[4] = {0, SPK_INFO3_SC_READ_TYPE, SPK_INFO3_SC_READ_RELAX,
                                    SPK_INFO3_SC_READ_TYPE | SPK_INFO3_SC_READ_RELAX};
    hdr[3] = (uint8_t)(hdr[3] | bits[sc->read_mode_sc & 3]);
  } else if (cmd->sc_durable_default && sc->durable_delete) {
    hdr[2] = (uint8_t)(hdr[2] | SPK_INFO2_DURABLE_DELETE);
  }
}

static spk_step route(spk_cmd *cmd) {
  spk_cluster *c = cmd->cluster;
  if (SPK_UNLIKELY(spk_cluster_is_closed(c))) {
    spk_error_set(&cmd->err, SPK_ERR_CLOSED, "client is closed");
    return done(cmd, SPK_ERR_CLOSED);
  }
  spk_node *n;
  if (cmd->target) {
    n = cmd->target;
    if (!atomic_load_explicit(&n->active, memory_order_acquire)) {
      spk_error_set(&cmd->err, SPK_ERR_INVALID_NODE,
                    "node %s is no longer in the cluster", n->name);
      return done(cmd, SPK_ERR_INVALID_NODE);
    }
  } else {
    const spk_pmap *m = spk_cluster_pmap(c);
    spk_error e;
    if (!cmd->sc_checked && m) {
      cmd->sc_checked = true;
      const spk_ns_map *t = spk_pmap_ns(m, cmd->ns, cmd->ns_len);
      if (t && t->sc_mode && cmd->policy_sc) use_sc_policy(cmd);
    }
    /* SC reads in SESSION mode must see the master's latest write. */
    uint8_t replica = cmd->policy->replica;
    if (cmd->sc && !cmd->is_write && cmd->policy->read_mode_sc == 0)
      replica = SPK_REPLICA_MASTER;
    n = m ? spk_pmap_route(m, cmd->ns, cmd->ns_len, cmd->pid, replica, cmd->is_write,
                           cmd->replica_index, &e)
          : NULL;
    if (!n) {
      spk_cluster_unpin();
      if (!m) spk_error_set(&e, SPK_ERR_CLIENT, "out of memory");
      /* Keep the first attempt's error when a retry finds no node. */
      if (cmd->attempts == 0 || cmd->err.code == 0) cmd->err = e;
      return done(cmd, cmd->err.code);
    }
  }
  cmd->node = n;
  cmd->attempts++;
  cmd->conn_ok = false;
  if (spk_node_breaker_open(n))
    return spk_cmd_failed(cmd, SPK_MAX_ERROR_RATE, NULL);
  return SPK_STEP_CONN;
}

spk_step spk_cmd_begin(spk_cmd *cmd, uint64_t now_ns) {
  uint32_t total = cmd->policy->total_timeout_ms;
  cmd->deadline_ns = total ? now_ns + (uint64_t)total * 1000000u : 0;
  if (SPK_UNLIKELY(spk_cluster_forked(cmd->cluster))) {
    spk_error_set(&cmd->err, SPK_ERR_CLIENT,
                  "client was created in the parent process before fork(); "
                  "create a new client in the child");
    return done(cmd, SPK_ERR_CLIENT);
  }
  return route(cmd);
}

spk_step spk_cmd_conn_ready(spk_cmd *cmd) {
  if (!cmd->target) spk_cluster_unpin();
  cmd->tx_off = 0;
  return SPK_STEP_SEND;
}

spk_step spk_cmd_sent(spk_cmd *cmd) {
  cmd->sent++;
  cmd->rx->len = 0;
  cmd->msg_off = 0;
  cmd->need = SPK_PROTO_HEADER_SIZE;
  cmd->phase = PHASE_HEADER;
  return SPK_STEP_RECV;
}

static spk_step retry_or_done(spk_cmd *cmd, int code) {
  const spk_policy *p = cmd->policy;
  uint64_t now = spk_now_ns();
  if (spk_cluster_is_closed(cmd->cluster)) {
    spk_error_set(&cmd->err, SPK_ERR_CLOSED, "client is closed");
    return done(cmd, SPK_ERR_CLOSED);
  }
  bool expired = cmd->deadline_ns && now >= cmd->deadline_ns;
  if (cmd->attempts > p->max_retries || !spk_result_retryable(code) || expired) {
    if (expired && code == SPK_ERR_TIMEOUT) {
      /* The last attempt's message goes into the new one: copy it first
       * (formatting a buffer into itself is undefined). */
      char last[SPK_ERROR_MSG_SIZE];
      memcpy(last, cmd->err.message, sizeof last);
      last[sizeof last - 1] = '\0';
      spk_error_set(&cmd->err, SPK_ERR_TIMEOUT,
                    "total timeout of %u ms exceeded after %u attempt(s): %s",
                    p->total_timeout_ms, cmd->attempts, last);
    }
    return done(cmd, code);
  }
  /* Move to the next replica, except where staying is right: a write that
   * timed out may still be applied by that node, and pool exhaustion is
   * local.  (The C client also keeps writes on a node whose breaker is
   * open; moving them lets writes to a dead master reach the replica that
   * takes over, instead of failing until the next tend.) */
  if (p->replica != SPK_REPLICA_MASTER && code != SPK_NO_MORE_CONNECTIONS &&
      !(cmd->is_write && code == SPK_ERR_TIMEOUT))
    cmd->replica_index++;
  cmd->prev_node = cmd->node;
  cmd->node = NULL;
  if (p->sleep_between_retries_ms) {
    uint32_t ms = p->sleep_between_retries_ms;
    if (cmd->deadline_ns) {
      uint64_t left = (cmd->deadline_ns - now) / 1000000u;
      if (left < ms) ms = (uint32_t)left;
    }
    if (ms) {
      cmd->sleep_ms = ms;
      return SPK_STEP_SLEEP;
    }
  }
  return route(cmd);
}

spk_step spk_cmd_wake(spk_cmd *cmd, uint64_t now_ns) {
  (void)now_ns;
  cmd->sleep_ms = 0;
  return route(cmd);
}

static spk_step failed(spk_cmd *cmd, int code, const char *message, bool local);

spk_step spk_cmd_failed(spk_cmd *cmd, int code, const char *message) {
  return failed(cmd, code, message, false);
}

spk_step spk_cmd_failed_local(spk_cmd *cmd, int code, const char *message) {
  return failed(cmd, code, message, true);
}

spk_step spk_cmd_pool_closed(spk_cmd *cmd) {
  if (spk_cluster_is_closed(cmd->cluster))
    return failed(cmd, SPK_ERR_CLOSED, "client is closed", true);
  return failed(cmd, SPK_ERR_CONNECTION, "node left the cluster", true);
}

static spk_step failed(spk_cmd *cmd, int code, const char *message, bool local) {
  /* Safe either way: the hazard (CONN step) or the held connection keeps
   * the node alive until the driver releases it after this call.  Local
   * conditions (breaker already open, no connection slot, no file
   * descriptors) say nothing about the node's health. */
  if (cmd->node && !local && code != SPK_MAX_ERROR_RATE &&
      code != SPK_NO_MORE_CONNECTIONS)
    spk_node_error(cmd->node);
  if (!cmd->target) spk_cluster_unpin();
  cmd->conn_ok = false;
  if (cmd->node)
    spk_error_set(&cmd->err, code, "%s (node %s)",
                  message ? message : spk_result_message(code), cmd->node->name);
  else
    spk_error_set(&cmd->err, code, "%s",
                  message ? message : spk_result_message(code));
  return retry_or_done(cmd, code);
}

/* A complete proto message is at rx[msg_off .. need). */
static spk_step on_message(spk_cmd *cmd) {
  const uint8_t *body = cmd->rx->data + cmd->msg_off + SPK_PROTO_HEADER_SIZE;
  size_t len = cmd->need - cmd->msg_off - SPK_PROTO_HEADER_SIZE;
  bool exact = cmd->rx->len == cmd->need; /* nothing unexpected follows */

  if (cmd->kind == SPK_CMD_INFO) {
    cmd->body = body;
    cmd->body_len = len;
    cmd->conn_ok = exact;
    return done(cmd, 0);
  }
  if (cmd->kind == SPK_CMD_SINGLE) {
    size_t used;
    spk_error e;
    if (spk_msg_parse(body, len, &cmd->resp, &used, &e) != 0 ||
        (used != len && spk_error_set(&e, SPK_ERR_PROTOCOL,
                                      "%zu unexpected bytes after the response",
                                      len - used) != 0)) {
      spk_error_set(&cmd->err, SPK_ERR_PROTOCOL, "bad response from node %s: %s",
                    cmd->node->name, e.message);
      cmd->conn_ok = false;
      return done(cmd, SPK_ERR_PROTOCOL);
    }
    cmd->conn_ok = exact;
    int rc = cmd->resp.h.result_code;
    if (rc == 0) return done(cmd, 0);
    spk_error_set(&cmd->err, rc, "%s (node %s)", spk_result_message(rc),
                  cmd->node->name);
    if (spk_result_retryable(rc)) {
      if (rc != SPK_ERR_CLUSTER) spk_node_error(cmd->node);
      return retry_or_done(cmd, rc);
    }
    return done(cmd, rc);
  }
  /* Stream: hand the body over; the callback reports LAST. */
  int rc = cmd->on_msg(cmd->on_msg_ctx, body, len, &cmd->err);
  if (rc < 0) {
    /* Records were already delivered: the caller (batch / query) decides
     * what to re-send, so a stream is never retried here. */
    cmd->conn_ok = false;
    return done(cmd, rc);
  }
  if (rc > 0) {
    cmd->conn_ok = exact;
    return done(cmd, cmd->err.code);
  }
  /* More messages: keep any bytes already read beyond this one. */
  size_t extra = cmd->rx->len - cmd->need;
  if (extra) memmove(cmd->rx->data, cmd->rx->data + cmd->need, extra);
  cmd->rx->len = extra;
  cmd->msg_off = 0;
  cmd->need = SPK_PROTO_HEADER_SIZE;
  cmd->phase = PHASE_HEADER;
  return SPK_STEP_RECV;
}

spk_step spk_cmd_received(spk_cmd *cmd) {
  for (;;) {
    if (cmd->rx->len < cmd->need) return SPK_STEP_RECV;
    if (cmd->phase == PHASE_HEADER) {
      spk_proto p;
      spk_error e;
      uint8_t want = cmd->kind == SPK_CMD_INFO ? SPK_PROTO_INFO : SPK_PROTO_MSG;
      if (spk_proto_check(cmd->rx->data + cmd->msg_off, want, &p, &e) != 0 ||
          (p.type == SPK_PROTO_COMPRESSED &&
           spk_error_set(&e, SPK_ERR_PROTOCOL,
                         "compressed response was not requested") != 0) ||
          (p.size == 0 && cmd->kind != SPK_CMD_INFO &&
           spk_error_set(&e, SPK_ERR_PROTOCOL, "empty response") != 0)) {
        spk_error_set(&cmd->err, SPK_ERR_PROTOCOL, "bad response from node %s: %s",
                      cmd->node->name, e.message);
        cmd->conn_ok = false;
        return done(cmd, SPK_ERR_PROTOCOL);
      }
      cmd->need = cmd->msg_off + SPK_PROTO_HEADER_SIZE + (size_t)p.size;
      if (cmd->rx->cap < cmd->need &&
          spk_buf_reserve(cmd->rx, cmd->need - cmd->rx->len) != 0) {
        spk_error_set(&cmd->err, SPK_ERR_CLIENT,
                      "out of memory for a %llu-byte response",
                      (unsigned long long)p.size);
        cmd->conn_ok = false;
        return done(cmd, SPK_ERR_CLIENT);
      }
      cmd->phase = PHASE_BODY;
      continue;
    }
    spk_step st = on_message(cmd);
    if (st != SPK_STEP_RECV) return st;
  }
}
