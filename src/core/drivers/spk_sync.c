/* spk_sync.c - blocking driver (see spk_sync.h). */
#include "spk_sync.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "../cmd/spk_batch.h"
#include "../net/spk_socket.h"

/* Receive in chunks of at least this much, so one recv() usually takes a
 * whole single-record response. */
#define SPK_RX_CHUNK 16384

typedef struct thread_bufs {
  spk_buf tx;
  spk_buf rx;
} thread_bufs;

static pthread_key_t bufs_key;
static pthread_once_t bufs_once = PTHREAD_ONCE_INIT;
static SPK_TLS thread_bufs *my_bufs;

static void free_bufs(void *p) {
  thread_bufs *b = p;
  spk_buf_free(&b->tx);
  spk_buf_free(&b->rx);
  free(b);
}

static void make_key(void) { pthread_key_create(&bufs_key, free_bufs); }

static thread_bufs *bufs(void) {
  if (SPK_LIKELY(my_bufs != NULL)) return my_bufs;
  pthread_once(&bufs_once, make_key);
  thread_bufs *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  pthread_setspecific(bufs_key, b);
  my_bufs = b;
  return b;
}

spk_buf *spk_sync_tx_buf(void) {
  thread_bufs *b = bufs();
  return b ? &b->tx : NULL;
}

spk_buf *spk_sync_rx_buf(void) {
  thread_bufs *b = bufs();
  return b ? &b->rx : NULL;
}

/* Put the socket's timeouts at `ms` unless what is set already bounds the
 * wait at least as tightly (so the common case makes no syscall). */
static int apply_timeout(spk_conn *c, uint32_t ms) {
  if (c->timeout_ms == ms) return 0;
  if (c->timeout_ms != UINT32_MAX && c->timeout_ms != 0 && ms != 0 &&
      c->timeout_ms < ms)
    return 0; /* tighter already: an early wake-up re-checks the clock */
  if (spk_sock_set_timeout(c->fd, ms) != 0) return SPK_ERR_CONNECTION;
  c->timeout_ms = ms;
  return 0;
}

static void release(spk_cmd *cmd, spk_node *node, spk_conn **conn) {
  if (!*conn) return;
  if (cmd->conn_ok) spk_pool_put(&node->pool, *conn);
  else spk_pool_discard(&node->pool, *conn);
  *conn = NULL;
}

static spk_step get_conn(spk_cmd *cmd, spk_conn **out) {
  spk_node *n = cmd->node;
  spk_conn *c = spk_pool_get(&n->pool);
  if (!c) {
    int rc = spk_pool_reserve(&n->pool);
    if (rc == SPK_ERR_CLOSED) return spk_cmd_pool_closed(cmd);
    if (rc != 0) return spk_cmd_failed(cmd, rc, NULL);
    uint64_t now = spk_now_ns();
    uint64_t deadline =
        now + (uint64_t)spk_cluster_config_get(cmd->cluster)->conn_timeout_ms * 1000000u;
    if (cmd->deadline_ns && cmd->deadline_ns < deadline) deadline = cmd->deadline_ns;
    int fd = -1;
    spk_error e;
    rc = spk_sock_connect(&n->addr, deadline, 0, &fd, &e);
    if (rc != 0) {
      spk_step st = rc == SPK_NO_MORE_CONNECTIONS ? spk_cmd_failed_local(cmd, rc, e.message)
                                                  : spk_cmd_failed(cmd, rc, e.message);
      spk_pool_unreserve(&n->pool);
      return st;
    }
    c = spk_pool_adopt(&n->pool, fd);
    if (!c) return spk_cmd_failed(cmd, SPK_ERR_CLIENT, "out of memory");
  }
  *out = c;
  return spk_cmd_conn_ready(cmd);
}

/* One socket op failed with rc; decide socket vs total timeout. */
static spk_step io_failed(spk_cmd *cmd, spk_node *node, spk_conn **conn, int rc,
                          const char *msg) {
  spk_step st = spk_cmd_failed(cmd, rc, msg);
  cmd->conn_ok = false;
  release(cmd, node, conn);
  return st;
}

static spk_step do_send(spk_cmd *cmd, spk_node *node, spk_conn **conn) {
  uint32_t ms = spk_cmd_io_timeout_ms(cmd, spk_now_ns());
  if (ms == SPK_CMD_EXPIRED)
    return io_failed(cmd, node, conn, SPK_ERR_TIMEOUT, "timed out before send");
  if (apply_timeout(*conn, ms) != 0)
    return io_failed(cmd, node, conn, SPK_ERR_CONNECTION, "setsockopt failed");
  spk_error e;
  int rc = spk_sock_send_all((*conn)->fd, cmd->tx->data + cmd->tx_off,
                             cmd->tx->len - cmd->tx_off, &e);
  if (rc != 0) return io_failed(cmd, node, conn, rc, e.message);
  return spk_cmd_sent(cmd);
}

static spk_step do_recv(spk_cmd *cmd, spk_node *node, spk_conn **conn) {
  spk_buf *rx = cmd->rx;
  uint64_t start = spk_now_ns();
  uint32_t sock_ms = cmd->policy->socket_timeout_ms;
  while (rx->len < cmd->need) {
    uint64_t now = spk_now_ns();
    uint32_t ms = spk_cmd_io_timeout_ms(cmd, now);
    if (ms == SPK_CMD_EXPIRED)
      return io_failed(cmd, node, conn, SPK_ERR_TIMEOUT, "total timeout while reading");
    if (sock_ms && now - start >= (uint64_t)sock_ms * 1000000u)
      return io_failed(cmd, node, conn, SPK_ERR_TIMEOUT, "socket timeout while reading");
    if (apply_timeout(*conn, ms) != 0)
      return io_failed(cmd, node, conn, SPK_ERR_CONNECTION, "setsockopt failed");
    size_t want = cmd->need - rx->len;
    if (want < SPK_RX_CHUNK) want = SPK_RX_CHUNK;
    if (rx->cap - rx->len < want && spk_buf_reserve(rx, want) != 0)
      return io_failed(cmd, node, conn, SPK_ERR_CLIENT, "out of memory");
    spk_error e;
    long r = spk_sock_recv((*conn)->fd, rx->data + rx->len, rx->cap - rx->len, &e);
    if (r == 0) continue; /* SO_RCVTIMEO elapsed: re-check both clocks above */
    if (r < 0) return io_failed(cmd, node, conn, (int)r, e.message);
    rx->len += (size_t)r;
    start = spk_now_ns(); /* the socket timeout bounds idleness, not the read */
    if (rx->len >= cmd->need) {
      spk_step st = spk_cmd_received(cmd);
      if (st != SPK_STEP_RECV) {
        release(cmd, node, conn);
        return st;
      }
    }
  }
  spk_step st = spk_cmd_received(cmd);
  if (st != SPK_STEP_RECV) release(cmd, node, conn);
  return st;
}

int spk_sync_execute(spk_cmd *cmd) {
  spk_conn *conn = NULL;
  spk_node *node = NULL; /* node owning conn */
  spk_step st = spk_cmd_begin(cmd, spk_now_ns());
  for (;;) {
    switch (st) {
      case SPK_STEP_CONN:
        node = cmd->node;
        st = get_conn(cmd, &conn);
        break;
      case SPK_STEP_SEND:
        st = do_send(cmd, node, &conn);
        break;
      case SPK_STEP_RECV:
        st = do_recv(cmd, node, &conn);
        break;
      case SPK_STEP_SLEEP: {
        struct timespec ts = {(time_t)(cmd->sleep_ms / 1000),
                              (long)(cmd->sleep_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
        st = spk_cmd_wake(cmd, spk_now_ns());
        break;
      }
      case SPK_STEP_DONE:
        if (conn) release(cmd, node, &conn);
        return cmd->err.code;
    }
  }
}

int spk_sync_batch(spk_batch *job) {
  for (;;) {
    int n = spk_batch_plan(job, spk_now_ns());
    if (n <= 0) {
      spk_cluster_unpin();
      spk_batch_round_end(job);
      return n < 0 ? n : 0;
    }
    /* The snapshot stays pinned while this round's node commands run, so
     * their nodes cannot be freed under them. */
    for (int i = 0; i < n; i++) {
      spk_sync_execute(&job->nodes[i].cmd);
      spk_batch_node_done(job, &job->nodes[i]);
    }
    spk_cluster_unpin();
  }
}
