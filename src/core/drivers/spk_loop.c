/* spk_loop.c - the event-loop driver (see spk_loop.h). */
#include "spk_loop.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../net/spk_socket.h"

/* Extra step: the command waits for an event or a timer. */
#define STEP_WAIT 100
#define MAX_EVENTS 128
#define RX_CHUNK 16384

struct spk_lconn {
  int fd;
  spk_node *node;  /* kept alive by spk_pool_ref */
  spk_acmd *cmd;   /* running command, NULL when idle */
  uint32_t events; /* registered epoll mask */
  uint64_t last_used_ns;
  spk_lconn *next; /* idle list */
};

typedef struct node_pool {
  spk_node *node;
  spk_lconn *idle;
  uint32_t n_idle;
  uint32_t n_open;     /* connections to the node, idle or busy */
  spk_acmd *wait_head; /* commands waiting for a connection, FIFO */
  spk_acmd *wait_tail;
} node_pool;

struct spk_loop {
  spk_cluster *cluster;
  int epfd;
  uint32_t max_conns;  /* per node */
  int (*abandoned)(spk_acmd *a);
  spk_acmd *runq;      /* waiters woken, to run from a top-level call */
  size_t udata_size;
  spk_acmd *free_list;
  spk_acmd *active; /* doubly linked */
  size_t n_active;
  spk_acmd **heap;
  size_t heap_len, heap_cap;
  node_pool *pools;
  size_t n_pools, cap_pools;
};

/* ---- timer heap (min by timer_ns) ------------------------------------------- */

static void heap_swap(spk_loop *l, size_t i, size_t j) {
  spk_acmd *t = l->heap[i];
  l->heap[i] = l->heap[j];
  l->heap[j] = t;
  l->heap[i]->heap_index = (int)i;
  l->heap[j]->heap_index = (int)j;
}

static void heap_up(spk_loop *l, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (l->heap[p]->timer_ns <= l->heap[i]->timer_ns) break;
    heap_swap(l, i, p);
    i = p;
  }
}

static void heap_down(spk_loop *l, size_t i) {
  for (;;) {
    size_t a = 2 * i + 1, b = a + 1, m = i;
    if (a < l->heap_len && l->heap[a]->timer_ns < l->heap[m]->timer_ns) m = a;
    if (b < l->heap_len && l->heap[b]->timer_ns < l->heap[m]->timer_ns) m = b;
    if (m == i) return;
    heap_swap(l, i, m);
    i = m;
  }
}

static void timer_cancel(spk_loop *l, spk_acmd *a) {
  if (a->heap_index < 0) return;
  size_t i = (size_t)a->heap_index;
  a->heap_index = -1;
  l->heap_len--;
  if (i != l->heap_len) {
    l->heap[i] = l->heap[l->heap_len];
    l->heap[i]->heap_index = (int)i;
    heap_down(l, i);
    heap_up(l, i);
  }
}

static int timer_set(spk_loop *l, spk_acmd *a, uint64_t when) {
  timer_cancel(l, a);
  a->timer_ns = when;
  if (!when) return 0;
  if (l->heap_len == l->heap_cap) {
    size_t cap = l->heap_cap ? l->heap_cap * 2 : 64;
    spk_acmd **h = realloc(l->heap, cap * sizeof *h);
    if (!h) return SPK_ERR_CLIENT;
    l->heap = h;
    l->heap_cap = cap;
  }
  a->heap_index = (int)l->heap_len;
  l->heap[l->heap_len++] = a;
  heap_up(l, (size_t)a->heap_index);
  return 0;
}

uint64_t spk_loop_next_timer(const spk_loop *l) {
  return l->heap_len ? l->heap[0]->timer_ns : 0;
}

/* ---- connections --------------------------------------------------------------- */

/* The loop's idle list for a node.  The entry holds a reference on the
 * node's pool (spk_pool_ref) for as long as it exists, so the tend thread
 * cannot free the node under it; close_idle drops entries of removed nodes. */
static node_pool *pool_for(spk_loop *l, spk_node *n) {
  for (size_t i = 0; i < l->n_pools; i++)
    if (l->pools[i].node == n) return &l->pools[i];
  if (l->n_pools == l->cap_pools) {
    size_t cap = l->cap_pools ? l->cap_pools * 2 : 8;
    node_pool *p = realloc(l->pools, cap * sizeof *p);
    if (!p) return NULL;
    l->pools = p;
    l->cap_pools = cap;
  }
  if (spk_pool_ref(&n->pool) != 0) return NULL; /* node removed: no entry */
  node_pool *p = &l->pools[l->n_pools++];
  memset(p, 0, sizeof *p);
  p->node = n;
  return p;
}

static node_pool *pool_find(spk_loop *l, const spk_node *n) {
  for (size_t i = 0; i < l->n_pools; i++)
    if (l->pools[i].node == n) return &l->pools[i];
  return NULL;
}

/* ---- waiting for a connection ---- */

static void wait_unlink(node_pool *p, spk_acmd *a) {
  if (a->wprev) a->wprev->wnext = a->wnext;
  else p->wait_head = a->wnext;
  if (a->wnext) a->wnext->wprev = a->wprev;
  else p->wait_tail = a->wprev;
  a->wnext = a->wprev = NULL;
  a->waiting = false;
}

/* A connection to p's node became free (or a slot did): the first waiter
 * goes to the run queue.  It runs from the top-level call in progress,
 * never nested inside another command's completion. */
static void wake_one(spk_loop *l, node_pool *p) {
  spk_acmd *a = p->wait_head;
  if (!a) return;
  wait_unlink(p, a);
  a->wnext = l->runq;
  l->runq = a;
}

static void conn_close(spk_loop *l, spk_lconn *c) {
  node_pool *p = pool_find(l, c->node);
  epoll_ctl(l->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  if (p) {
    p->n_open--;
    wake_one(l, p);
  }
  spk_pool_unref(&c->node->pool);
  free(c);
}

static int conn_watch(spk_loop *l, spk_lconn *c, uint32_t events) {
  if (c->events == events) return 0;
  struct epoll_event ev = {.events = events, .data.ptr = c};
  if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0) return SPK_ERR_CONNECTION;
  c->events = events;
  return 0;
}

/* Release the command's connection: back to the idle list when its stream
 * is clean, else closed. */
static void conn_release(spk_loop *l, spk_acmd *a) {
  spk_lconn *c = a->conn;
  if (!c) return;
  a->conn = NULL;
  c->cmd = NULL;
  if (!a->cmdp->conn_ok || a->connecting || spk_pool_is_closed(&c->node->pool) ||
      conn_watch(l, c, EPOLLIN) != 0) {
    a->connecting = false;
    conn_close(l, c);
    return;
  }
  node_pool *p = pool_for(l, c->node);
  if (!p) {
    conn_close(l, c);
    return;
  }
  c->last_used_ns = spk_now_ns();
  c->next = p->idle;
  p->idle = c;
  p->n_idle++;
  wake_one(l, p);
}

static spk_lconn *conn_get_idle(spk_loop *l, spk_node *n) {
  node_pool *p = pool_for(l, n);
  uint64_t now = 0;
  while (p && p->idle) {
    spk_lconn *c = p->idle;
    p->idle = c->next;
    p->n_idle--;
    if (!now) now = spk_now_ns();
    /* As the blocking pool: check a connection that sat idle for a while
     * (its EOF may not have been reported by epoll yet). */
    if (!spk_pool_is_closed(&n->pool) &&
        (now - c->last_used_ns <= 1000000u || spk_sock_idle_ok(c->fd)))
      return c;
    conn_close(l, c);
  }
  return NULL;
}

/* ---- the state machine runner ------------------------------------------------- */

static void run(spk_loop *l, spk_acmd *a, int st);

static int attempt_timer(spk_loop *l, spk_acmd *a) {
  uint64_t now = spk_now_ns(), when = a->cmdp->deadline_ns;
  uint32_t sock = a->cmdp->policy->socket_timeout_ms;
  if (sock) {
    uint64_t s = now + (uint64_t)sock * 1000000u;
    if (!when || s < when) when = s;
  }
  return timer_set(l, a, when);
}

static void finish(spk_loop *l, spk_acmd *a);

/* Every connection to n is busy: end one command nobody waits for, so its
 * connection slot frees.  The connection is closed (its answer is still on
 * the way), never returned to the pool half-read. */
static void reclaim_abandoned(spk_loop *l, spk_node *n) {
  for (spk_acmd *b = l->active; b; b = b->next) {
    if (!b->conn || b->conn->node != n || !l->abandoned(b)) continue;
    b->cmdp->conn_ok = false;
    spk_error_set(&b->cmdp->err, SPK_ERR_CLIENT_ABORT, "command cancelled");
    b->cmdp->err.in_doubt = spk_cmd_in_doubt(b->cmdp, SPK_ERR_CLIENT_ABORT);
    finish(l, b);
    return;
  }
}

static int do_conn(spk_loop *l, spk_acmd *a) {
  spk_node *n = a->cmdp->node;
  spk_lconn *c = conn_get_idle(l, n);
  if (c) {
    c->cmd = a;
    a->conn = c;
    a->connecting = false;
    attempt_timer(l, a);
    return spk_cmd_conn_ready(a->cmdp);
  }
  node_pool *np = pool_for(l, n);
  if (!np) return spk_cmd_pool_closed(a->cmdp);
  if (np->n_open >= l->max_conns && l->abandoned) reclaim_abandoned(l, n);
  if (np->n_open >= l->max_conns) {
    /* Every connection to the node is busy: wait for one.  The pool
     * entry's reference keeps the node alive meanwhile. */
    spk_cluster_unpin();
    a->waiting = true;
    a->wnext = NULL;
    a->wprev = np->wait_tail;
    if (np->wait_tail) np->wait_tail->wnext = a;
    else np->wait_head = a;
    np->wait_tail = a;
    attempt_timer(l, a);
    return STEP_WAIT;
  }
  if (spk_pool_ref(&n->pool) != 0) return spk_cmd_pool_closed(a->cmdp);
  c = calloc(1, sizeof *c);
  if (!c) {
    int st = spk_cmd_failed(a->cmdp, SPK_ERR_CLIENT, "out of memory");
    spk_pool_unref(&n->pool);
    return st;
  }
  c->node = n;
  c->fd = socket(n->addr.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (c->fd >= 0) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  bool in_progress = false;
  if (c->fd < 0 ||
      (connect(c->fd, (const struct sockaddr *)&n->addr.ss, n->addr.len) != 0 &&
       !(in_progress = (errno == EINPROGRESS)))) {
    int e = errno;
    char msg[160], where[80];
    spk_addr_format(&n->addr, where, sizeof where);
    snprintf(msg, sizeof msg, "connect to %s failed: %s", where, strerror(e));
    int st = spk_errno_is_local(e)
                 ? spk_cmd_failed_local(a->cmdp, SPK_NO_MORE_CONNECTIONS, msg)
                 : spk_cmd_failed(a->cmdp, SPK_ERR_CONNECTION, msg);
    if (c->fd >= 0) close(c->fd);
    free(c);
    spk_pool_unref(&n->pool);
    return st;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
  c->events = ev.events;
  if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
    int st = spk_cmd_failed(a->cmdp, SPK_ERR_CONNECTION, "epoll_ctl failed");
    close(c->fd);
    free(c);
    spk_pool_unref(&n->pool);
    return st;
  }
  np->n_open++;
  c->cmd = a;
  a->conn = c;
  a->connecting = in_progress;
  attempt_timer(l, a);
  int st = spk_cmd_conn_ready(a->cmdp);
  return a->connecting ? STEP_WAIT : st;
}

/* Fail the attempt: the connection is closed (stream state unknown). */
static int io_fail(spk_loop *l, spk_acmd *a, int code, const char *msg) {
  int st = spk_cmd_failed(a->cmdp, code, msg);
  a->cmdp->conn_ok = false;
  conn_release(l, a);
  return st;
}

static int do_send(spk_loop *l, spk_acmd *a) {
  spk_lconn *c = a->conn;
  spk_cmd *cmd = a->cmdp;
  while (cmd->tx_off < cmd->tx->len) {
    ssize_t w = send(c->fd, cmd->tx->data + cmd->tx_off, cmd->tx->len - cmd->tx_off,
                     MSG_NOSIGNAL);
    if (w > 0) {
      cmd->tx_off += (size_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (conn_watch(l, c, EPOLLIN | EPOLLOUT) != 0)
        return io_fail(l, a, SPK_ERR_CONNECTION, "epoll_ctl failed");
      return STEP_WAIT;
    }
    return io_fail(l, a, SPK_ERR_CONNECTION, w < 0 ? strerror(errno) : "send failed");
  }
  if (conn_watch(l, c, EPOLLIN) != 0)
    return io_fail(l, a, SPK_ERR_CONNECTION, "epoll_ctl failed");
  return spk_cmd_sent(cmd);
}

static int do_recv(spk_loop *l, spk_acmd *a) {
  spk_cmd *cmd = a->cmdp;
  spk_buf *rx = cmd->rx;
  bool progressed = false;
  for (;;) {
    size_t want = cmd->need > rx->len ? cmd->need - rx->len : 0;
    if (want < RX_CHUNK) want = RX_CHUNK;
    if (rx->cap - rx->len < want && spk_buf_reserve(rx, want) != 0)
      return io_fail(l, a, SPK_ERR_CLIENT, "out of memory");
    ssize_t r = recv(a->conn->fd, rx->data + rx->len, rx->cap - rx->len, 0);
    if (r > 0) {
      rx->len += (size_t)r;
      progressed = true;
      if (rx->len < cmd->need) continue;
      int st = spk_cmd_received(cmd);
      if (st != SPK_STEP_RECV) {
        conn_release(l, a);
        return st;
      }
      continue;
    }
    if (r == 0) return io_fail(l, a, SPK_ERR_CONNECTION, "connection closed by server");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      /* The socket timeout bounds idleness: progress re-arms it. */
      if (progressed && cmd->policy->socket_timeout_ms) attempt_timer(l, a);
      return STEP_WAIT;
    }
    return io_fail(l, a, SPK_ERR_CONNECTION, strerror(errno));
  }
}

static void finish(spk_loop *l, spk_acmd *a) {
  timer_cancel(l, a);
  if (a->waiting) {
    node_pool *p = pool_find(l, a->cmdp->node);
    if (p) wait_unlink(p, a);
  }
  conn_release(l, a);
  if (a->active) {
    a->active = false;
    if (a->prev) a->prev->next = a->next;
    else l->active = a->next;
    if (a->next) a->next->prev = a->prev;
    a->next = a->prev = NULL;
    l->n_active--;
  }
  a->on_done(a);
}

static void run(spk_loop *l, spk_acmd *a, int st) {
  for (;;) {
    int next;
    switch (st) {
      case SPK_STEP_CONN:
        next = do_conn(l, a);
        if (next == STEP_WAIT) {
          /* Waiting for a free connection, or to send once the connect
           * completes. */
          a->step = a->waiting ? SPK_STEP_CONN : SPK_STEP_SEND;
          return;
        }
        break;
      case SPK_STEP_SEND:
        next = do_send(l, a);
        if (next == STEP_WAIT) {
          a->step = SPK_STEP_SEND;
          return;
        }
        break;
      case SPK_STEP_RECV:
        next = do_recv(l, a);
        if (next == STEP_WAIT) {
          a->step = SPK_STEP_RECV;
          return;
        }
        break;
      case SPK_STEP_SLEEP:
        a->step = SPK_STEP_SLEEP;
        timer_set(l, a, spk_now_ns() + (uint64_t)a->cmdp->sleep_ms * 1000000u);
        return;
      default: /* SPK_STEP_DONE */
        a->step = SPK_STEP_DONE;
        finish(l, a);
        return;
    }
    st = next;
  }
}

/* Run the commands woken from wait queues.  Only from top-level entry
 * points, so no command's state machine runs inside another's. */
static void drain_runq(spk_loop *l) {
  while (l->runq) {
    spk_acmd *a = l->runq;
    l->runq = a->wnext;
    a->wnext = NULL;
    if (a->active) run(l, a, SPK_STEP_CONN);
  }
}

/* ---- events ------------------------------------------------------------------ */

static void idle_conn_event(spk_loop *l, spk_lconn *c) {
  /* An idle connection became readable: the server closed it (or sent
   * something unasked).  Either way it is unusable. */
  node_pool *p = pool_for(l, c->node);
  if (p) {
    for (spk_lconn **pp = &p->idle; *pp; pp = &(*pp)->next)
      if (*pp == c) {
        *pp = c->next;
        p->n_idle--;
        break;
      }
  }
  conn_close(l, c);
}

static void on_event(spk_loop *l, spk_lconn *c, uint32_t ev) {
  spk_acmd *a = c->cmd;
  if (!a) {
    idle_conn_event(l, c);
    return;
  }
  if (a->step == SPK_STEP_SEND) {
    if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    if (a->connecting) {
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
      if (err) {
        char msg[160], where[80];
        spk_addr_format(&c->node->addr, where, sizeof where);
        snprintf(msg, sizeof msg, "connect to %s failed: %s", where, strerror(err));
        run(l, a, io_fail(l, a, SPK_ERR_CONNECTION, msg));
        return;
      }
      a->connecting = false;
    }
    run(l, a, SPK_STEP_SEND);
    return;
  }
  if (a->step == SPK_STEP_RECV) run(l, a, SPK_STEP_RECV);
}

int spk_loop_run_ready(spk_loop *l) {
  struct epoll_event evs[MAX_EVENTS];
  int total = 0;
  for (;;) {
    int n = epoll_wait(l->epfd, evs, MAX_EVENTS, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return total;
    }
    for (int i = 0; i < n; i++) on_event(l, evs[i].data.ptr, evs[i].events);
    total += n;
    drain_runq(l);
    if (n < MAX_EVENTS) return total;
  }
}

void spk_loop_run_timers(spk_loop *l, uint64_t now_ns) {
  while (l->heap_len && l->heap[0]->timer_ns <= now_ns) {
    spk_acmd *a = l->heap[0];
    timer_cancel(l, a);
    if (a->step == SPK_STEP_SLEEP) {
      run(l, a, spk_cmd_wake(a->cmdp, now_ns));
    } else if (a->waiting) {
      node_pool *p = pool_find(l, a->cmdp->node);
      if (p) wait_unlink(p, a);
      run(l, a, spk_cmd_failed_local(a->cmdp, SPK_ERR_TIMEOUT,
                                     "timed out waiting for a free connection"));
    } else {
      const char *what = a->connecting ? "timed out connecting"
                         : a->step == SPK_STEP_RECV ? "timed out waiting for the response"
                                                    : "timed out sending the request";
      run(l, a, io_fail(l, a, SPK_ERR_TIMEOUT, what));
    }
  }
  drain_runq(l);
}

/* ---- lifecycle ------------------------------------------------------------------ */

spk_loop *spk_loop_new(spk_cluster *c, size_t udata_size, spk_error *err) {
  spk_loop *l = calloc(1, sizeof *l);
  if (!l) {
    spk_error_set(err, SPK_ERR_CLIENT, "out of memory");
    return NULL;
  }
  l->cluster = c;
  l->max_conns = spk_cluster_config_get(c)->max_conns_per_node;
  if (l->max_conns == 0) l->max_conns = 1;
  l->udata_size = (udata_size + 15) & ~(size_t)15;
  l->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (l->epfd < 0) {
    spk_error_set(err, SPK_ERR_ASYNC_LOOP, "epoll_create1 failed: %s", strerror(errno));
    free(l);
    return NULL;
  }
  return l;
}

int spk_loop_fd(const spk_loop *l) { return l->epfd; }

#define ACMD_SIZE ((sizeof(spk_acmd) + 15) & ~(size_t)15)

spk_acmd *spk_loop_acmd_alloc(spk_loop *l) {
  spk_acmd *a = l->free_list;
  if (a) {
    l->free_list = a->next;
  } else {
    a = calloc(1, ACMD_SIZE + l->udata_size);
    if (!a) return NULL;
  }
  a->next = a->prev = NULL;
  a->loop = l;
  a->conn = NULL;
  a->heap_index = -1;
  a->timer_ns = 0;
  a->connecting = false;
  a->active = false;
  a->tx.len = a->rx.len = 0;
  a->udata = (char *)a + ACMD_SIZE;
  a->cmdp = &a->cmd;
  return a;
}

void spk_loop_acmd_free(spk_loop *l, spk_acmd *a) {
  /* Keep buffers for reuse unless a big response grew them. */
  if (a->rx.cap > (1u << 20)) spk_buf_free(&a->rx);
  if (a->tx.cap > (1u << 20)) spk_buf_free(&a->tx);
  a->next = l->free_list;
  l->free_list = a;
}

void spk_loop_start(spk_loop *l, spk_acmd *a) {
  a->active = true;
  a->prev = NULL;
  a->next = l->active;
  if (l->active) l->active->prev = a;
  l->active = a;
  l->n_active++;
  run(l, a, spk_cmd_begin(a->cmdp, spk_now_ns()));
  drain_runq(l);
}

size_t spk_loop_inflight(const spk_loop *l) { return l->n_active; }

void spk_loop_set_abandoned_fn(spk_loop *l, int (*fn)(spk_acmd *a)) { l->abandoned = fn; }

void spk_loop_foreach(spk_loop *l, void (*fn)(spk_acmd *a, void *ctx), void *ctx) {
  for (spk_acmd *a = l->active; a; a = a->next) fn(a, ctx);
}

static void close_idle(spk_loop *l, uint64_t now, uint64_t idle_ns, bool all) {
  for (size_t i = 0; i < l->n_pools; i++) {
    node_pool *p = &l->pools[i];
    bool dead = spk_pool_is_closed(&p->node->pool);
    spk_lconn **pp = &p->idle;
    while (*pp) {
      spk_lconn *c = *pp;
      if (all || dead || (idle_ns && now - c->last_used_ns > idle_ns)) {
        *pp = c->next;
        p->n_idle--;
        conn_close(l, c);
      } else {
        pp = &c->next;
      }
    }
  }
  /* Forget pools of nodes that are gone (or everything, when closing), so
   * the nodes can be freed. */
  size_t w = 0;
  for (size_t i = 0; i < l->n_pools; i++) {
    node_pool *p = &l->pools[i];
    bool dead = spk_pool_is_closed(&p->node->pool);
    /* Waiters of a removed node retry elsewhere (do_conn fails them). */
    while (dead && p->wait_head) wake_one(l, p);
    if (!all && (p->idle || p->n_open || !dead)) {
      l->pools[w++] = *p;
      continue;
    }
    spk_pool_unref(&p->node->pool);
  }
  l->n_pools = w;
}

void spk_loop_trim(spk_loop *l, uint64_t now_ns, uint32_t idle_ms) {
  close_idle(l, now_ns, (uint64_t)idle_ms * 1000000u, false);
  drain_runq(l);
}

void spk_loop_abort_all(spk_loop *l, int code, const char *message) {
  while (l->active) {
    spk_acmd *a = l->active;
    a->cmdp->conn_ok = false;
    spk_error_set(&a->cmdp->err, code, "%s", message);
    a->cmdp->err.in_doubt = spk_cmd_in_doubt(a->cmdp, code);
    finish(l, a);
  }
  close_idle(l, 0, 0, true);
}

void spk_loop_free(spk_loop *l) {
  if (!l) return;
  spk_loop_abort_all(l, SPK_ERR_CLOSED, "client is closed");
  while (l->free_list) {
    spk_acmd *a = l->free_list;
    l->free_list = a->next;
    spk_buf_free(&a->tx);
    spk_buf_free(&a->rx);
    free(a);
  }
  free(l->heap);
  free(l->pools);
  close(l->epfd);
  free(l);
}
