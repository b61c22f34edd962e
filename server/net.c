/*
 * net.c - service threads.
 *
 * Each service thread owns an epoll set, an eventfd for hand-offs from the
 * control thread (new connections, node kills, stop) and the connections it
 * was given; a connection never moves between threads, so its state needs no
 * lock.  Per request the steady state costs one epoll_wait, one recv and one
 * send; pipelined requests in one recv are answered with one send, in order.
 * A connection is not read while a response is still pending (delay fault,
 * full socket buffer), which keeps answers in request order.
 *
 * Fault hooks live here because they act on the transport: delayed
 * responses, closing after K requests, corrupt or truncated frames.
 *
 * Connection lifetime.  A conn is allocated by its service thread (add_conn,
 * from a Q_CONN hand-off) and only that thread ever touches it.  Closing is
 * two steps: conn_close() takes it out of the epoll set and the thread's
 * list, closes the socket and marks it closed, but only moves the memory to
 * the thread's graveyard; reap() frees the graveyard after the epoll batch
 * (and run_delayed) is done.  This matters because one epoll_wait batch can
 * hold events for a conn that something earlier in the same batch closed:
 * a Q_KILL drained from the eventfd closes every conn of the killed node,
 * including conns whose events come later in evs[].  Those stale events find
 * c->closed set and are skipped; the memory is still valid, and since it is
 * not freed until the batch ends, a conn added in the same batch can never
 * reuse its address either.
 *
 * Node incarnations.  A conn belongs to one incarnation of its node (stamped
 * when the control thread hands it over); it is served only while the node
 * is alive and still in that incarnation, so a connection accepted before a
 * kill is never served by the restarted node, whatever the order in which
 * the service thread sees the Q_KILL and the connection's bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"

#define READ_CHUNK (16 * 1024)
#define MAX_EVENTS 64

typedef struct conn {
  int fd;
  spk_srv_node *node;
  uint32_t incarnation; /* node->incarnation when it was accepted */
  struct conn *prev, *next; /* s->conns, or (closed) s->dead via next */
  uint8_t *rbuf;
  size_t rlen, rcap;
  spk_buf w;
  size_t woff;
  uint64_t due_ms;   /* delayed response: send at this time */
  uint32_t events;   /* registered epoll events */
  bool stalled;      /* type-5 message: never read again */
  bool close_after_send;
  bool closed;       /* conn_close() done; freed by reap() after the batch */
} conn;

typedef enum { Q_CONN, Q_KILL, Q_STOP } qkind;

typedef struct qitem {
  qkind kind;
  int fd;
  uint32_t node;
  uint32_t incarnation; /* Q_CONN: the node's incarnation at accept */
  struct qitem *next;
} qitem;

typedef struct svc {
  spk_srv *srv;
  int epfd;
  int evfd;
  pthread_t thr;
  pthread_mutex_t qlock;
  qitem *qhead, *qtail;
  conn *conns;       /* open connections of this thread */
  conn *dead;        /* closed, not yet freed (see reap) */
  uint32_t n_delayed;
  spk_srv_ctx ctx;
  bool running;
} svc;

static spk_srv *g_net_srv;
static svc *g_svcs;
static uint32_t g_n_svcs;
static _Atomic uint32_t g_rr;

/* ---- fault helpers -------------------------------------------------------------------- */

/* Decrement a positive counter; true when this call took one. */
static bool take_one(_Atomic int32_t *cnt) {
  int32_t cur = atomic_load_explicit(cnt, memory_order_relaxed);
  while (cur > 0)
    if (atomic_compare_exchange_weak(cnt, &cur, cur - 1)) return true;
  return false;
}

/* close_after: true when this request is the one that ends the connection. */
static bool take_close(spk_srv_faults *f) {
  int64_t cur = atomic_load_explicit(&f->close_after, memory_order_relaxed);
  while (cur > 0)
    if (atomic_compare_exchange_weak(&f->close_after, &cur, cur - 1))
      return cur == 1;
  return false;
}

static void corrupt(conn *c, size_t start, uint32_t mode) {
  spk_buf *w = &c->w;
  size_t len = w->len - start;
  uint8_t *m = w->data + start;
  if (len < 8) return;
  switch (mode) {
  case SPK_SRV_CORRUPT_GARBAGE:
    for (size_t i = 8; i < len; i++) m[i] = (uint8_t)(0xA5 ^ i);
    if (len == 8) m[7] ^= 0x01; /* no body: make the size lie instead */
    break;
  case SPK_SRV_CORRUPT_TRUNCATE:
    w->len = start + len / 2;
    c->close_after_send = true;
    break;
  case SPK_SRV_CORRUPT_TYPE:
    m[1] = 9;
    break;
  case SPK_SRV_CORRUPT_VERSION:
    m[0] = 1;
    break;
  case SPK_SRV_CORRUPT_OVERSIZE:
    spk_proto_write(m, m[1], 0xFFFFFFFFFFFFull);
    w->len = start + 8;
    c->close_after_send = true;
    break;
  default:
    break;
  }
}

/* ---- connections ----------------------------------------------------------------------- */

static void set_events(svc *s, conn *c, uint32_t ev) {
  if (c->events == ev) return;
  struct epoll_event e = {.events = ev, .data.ptr = c};
  epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &e);
  c->events = ev;
}

/* Close a connection: socket, epoll registration and list membership go
 * now, the memory at the end of the batch (reap), so event pointers still
 * in the current epoll batch stay valid and see c->closed.  Idempotent. */
static void conn_close(svc *s, conn *c, bool rst) {
  if (c->closed) return;
  if (rst) {
    /* Unread request bytes: the kernel answers with RST anyway, make it
     * certain so clients see the same outcome as with the real server. */
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  c->closed = true;
  if (c->due_ms) s->n_delayed--;
  c->due_ms = 0;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = NULL;
  c->next = s->dead;
  s->dead = c;
  atomic_fetch_add_explicit(&c->node->conns_closed, 1, memory_order_relaxed);
  free(c->rbuf);
  c->rbuf = NULL;
  c->rlen = c->rcap = 0;
  spk_buf_free(&c->w);
  c->woff = 0;
}

/* Free the connections closed during the batch that just ended.  Called
 * only between epoll batches, when no evs[] entry or list walk holds a
 * conn pointer. */
static void reap(svc *s) {
  while (s->dead) {
    conn *c = s->dead;
    s->dead = c->next;
    free(c);
  }
}

/* Send what is pending.  Returns false when the connection was closed. */
static bool flush(svc *s, conn *c) {
  while (c->woff < c->w.len) {
    ssize_t n = send(c->fd, c->w.data + c->woff, c->w.len - c->woff,
                     MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        set_events(s, c, EPOLLOUT);
        return true;
      }
      conn_close(s, c, false);
      return false;
    }
    c->woff += (size_t)n;
  }
  c->w.len = c->woff = 0;
  /* Do not keep a large answer's buffer on an idle connection. */
  if (c->w.cap > (1u << 20)) spk_buf_free(&c->w);
  if (c->close_after_send) {
    shutdown(c->fd, SHUT_RDWR);
    conn_close(s, c, false);
    return false;
  }
  set_events(s, c, c->stalled ? 0 : EPOLLIN);
  return true;
}

static bool process(svc *s, conn *c);

/* Make room to read; the buffer grows with what the current message needs
 * but never jumps to a huge announced size before the bytes arrive. */
static bool ensure_room(conn *c, size_t need) {
  if (c->rcap - c->rlen >= need) return true;
  size_t cap = c->rcap ? c->rcap : READ_CHUNK;
  while (cap - c->rlen < need) cap *= 2;
  uint8_t *p = realloc(c->rbuf, cap);
  if (!p) return false;
  c->rbuf = p;
  c->rcap = cap;
  return true;
}

static void on_readable(svc *s, conn *c) {
  for (;;) {
    size_t want = READ_CHUNK;
    if (c->rlen >= 8) {
      uint64_t body;
      if (spk_srv_check_header(c->rbuf, &body) == 0 && 8 + body > c->rlen) {
        size_t missing = 8 + (size_t)body - c->rlen;
        /* Grow by at most 1 MiB (or double) per read for big messages. */
        size_t step = c->rcap > (1u << 20) ? c->rcap : (1u << 20);
        want = missing < step ? missing : step;
        if (want < READ_CHUNK) want = READ_CHUNK;
      }
    }
    if (!ensure_room(c, want)) {
      conn_close(s, c, true);
      return;
    }
    size_t space = c->rcap - c->rlen;
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, space, 0);
    if (n == 0) {
      conn_close(s, c, false);
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      conn_close(s, c, false);
      return;
    }
    c->rlen += (size_t)n;
    if (!process(s, c)) return;
    /* A short read means the socket is drained (level-triggered epoll
     * reports anything that arrives later). */
    if ((size_t)n < space || c->stalled || c->due_ms || c->w.len) return;
  }
}

/* Answer the complete messages in the buffer.  false if closed. */
static bool process(svc *s, conn *c) {
  size_t off = 0;
  spk_srv_ctx *x = &s->ctx;
  spk_srv_faults *f = &c->node->faults;
  bool ok = true;
  while (!c->stalled && !c->due_ms) {
    if (c->rlen - off < 8) break;
    uint64_t body;
    if (spk_srv_check_header(c->rbuf + off, &body) != 0) {
      int pending = 0;
      ioctl(c->fd, FIONREAD, &pending);
      conn_close(s, c, c->rlen - off > 8 || pending > 0);
      return false;
    }
    size_t need = 8 + (size_t)body;
    if (c->rlen - off < need) break;
    const uint8_t *msg = c->rbuf + off;
    /* A killed node, or one restarted since this connection was accepted,
     * answers nothing more on it (the Q_KILL may still be queued). */
    if (!atomic_load_explicit(&c->node->alive, memory_order_acquire) ||
        atomic_load_explicit(&c->node->incarnation, memory_order_acquire) !=
            c->incarnation) {
      conn_close(s, c, true);
      return false;
    }
    bool data = msg[1] == SPK_PROTO_MSG || msg[1] == SPK_PROTO_COMPRESSED;
    uint32_t target = atomic_load_explicit(&f->corrupt_target, memory_order_relaxed);
    bool close_now = data && take_close(f);
    if (close_now && atomic_load(&f->close_mode) == SPK_SRV_CLOSE_DROP) {
      shutdown(c->fd, SHUT_RDWR);
      conn_close(s, c, false);
      return false;
    }
    x->node = c->node;
    x->out.len = 0;
    int act = spk_srv_dispatch(x, msg, need);
    off += need;
    if (act == SPK_SRV_STALL) {
      c->stalled = true;
      break;
    }
    if (act == SPK_SRV_CLOSE) {
      conn_close(s, c, true);
      return false;
    }
    size_t start = c->w.len;
    if (start == 0 && c->w.cap < x->out.cap) {
      /* Swap buffers instead of copying a large answer. */
      spk_buf t = c->w;
      c->w = x->out;
      x->out = t;
      x->out.len = 0;
    } else if (spk_buf_append(&c->w, x->out.data, x->out.len) != 0) {
      conn_close(s, c, false);
      return false;
    }
    bool match = target == SPK_SRV_TARGET_ANY ||
                 (target == SPK_SRV_TARGET_INFO && msg[1] == SPK_PROTO_INFO) ||
                 (target == SPK_SRV_TARGET_MSG && data);
    if (match && take_one(&f->corrupt_count))
      corrupt(c, start, atomic_load(&f->corrupt_mode));
    if (close_now) c->close_after_send = true;
    uint32_t delay = atomic_load_explicit(&f->delay_ms, memory_order_relaxed);
    if (delay) {
      c->due_ms = spk_srv_mono_ms() + delay;
      s->n_delayed++;
      set_events(s, c, 0);
    }
    if (c->close_after_send) break;
  }
  if (off) {
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    if (c->rlen == 0 && c->rcap > 4 * READ_CHUNK) {
      free(c->rbuf);
      c->rbuf = NULL;
      c->rcap = 0;
    }
  }
  if (c->stalled && c->w.len == 0) set_events(s, c, 0);
  if (!c->due_ms && c->w.len) ok = flush(s, c);
  return ok;
}

static void add_conn(svc *s, int fd, uint32_t node_ix, uint32_t incarnation) {
  spk_srv_node *node = &s->srv->nodes[node_ix];
  conn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    return;
  }
  c->fd = fd;
  c->node = node;
  c->incarnation = incarnation;
  c->events = EPOLLIN;
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) != 0) {
    close(fd);
    free(c);
    return;
  }
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  atomic_fetch_add_explicit(&node->conns_opened, 1, memory_order_relaxed);
}

/* Q_KILL: close every connection of the node.  Connections accepted after
 * the kill (a restart) were queued after this item, so none is here yet.
 * This runs in the middle of an epoll batch: see the lifetime note above. */
static void kill_node_conns(svc *s, uint32_t node_ix) {
  conn *c = s->conns;
  while (c) {
    conn *next = c->next;
    if (c->node->ix == node_ix) conn_close(s, c, false);
    c = next;
  }
}

static void drain_queue(svc *s) {
  uint64_t v;
  if (read(s->evfd, &v, sizeof v) < 0 && errno != EAGAIN) return;
  pthread_mutex_lock(&s->qlock);
  qitem *q = s->qhead;
  s->qhead = s->qtail = NULL;
  pthread_mutex_unlock(&s->qlock);
  while (q) {
    qitem *next = q->next;
    if (q->kind == Q_CONN) add_conn(s, q->fd, q->node, q->incarnation);
    else if (q->kind == Q_KILL) kill_node_conns(s, q->node);
    else s->running = false;
    free(q);
    q = next;
  }
}

static void run_delayed(svc *s) {
  uint64_t now = spk_srv_mono_ms();
  conn *c = s->conns;
  while (c && s->n_delayed) {
    conn *next = c->next;
    if (c->due_ms && c->due_ms <= now) {
      c->due_ms = 0;
      s->n_delayed--;
      if (flush(s, c) && c->rlen && !c->w.len) process(s, c);
    }
    c = next;
  }
}

static int next_timeout(svc *s) {
  if (!s->n_delayed) return -1;
  uint64_t now = spk_srv_mono_ms(), best = UINT64_MAX;
  for (conn *c = s->conns; c; c = c->next)
    if (c->due_ms && c->due_ms < best) best = c->due_ms;
  return best <= now ? 0 : (int)(best - now);
}

static void *svc_main(void *arg) {
  svc *s = arg;
  struct epoll_event evs[MAX_EVENTS];
  while (s->running) {
    int n = epoll_wait(s->epfd, evs, MAX_EVENTS, next_timeout(s));
    for (int i = 0; i < n; i++) {
      if (evs[i].data.ptr == NULL) {
        drain_queue(s);
        continue;
      }
      conn *c = evs[i].data.ptr;
      /* Closed earlier in this batch (Q_KILL, Q_STOP): a stale event. */
      if (c->closed) continue;
      uint32_t ev = evs[i].events;
      if (ev & EPOLLOUT) {
        if (!flush(s, c)) continue;
        if (c->rlen && !c->w.len && !process(s, c)) continue;
        continue;
      }
      if (ev & EPOLLIN) on_readable(s, c);
      else if (ev & (EPOLLERR | EPOLLHUP)) conn_close(s, c, false);
    }
    if (s->n_delayed) run_delayed(s);
    reap(s);
  }
  while (s->conns) conn_close(s, s->conns, false);
  reap(s);
  return NULL;
}

/* ---- control-thread API ------------------------------------------------------------------ */

static void push(svc *s, qitem *q) {
  pthread_mutex_lock(&s->qlock);
  if (s->qtail) s->qtail->next = q;
  else s->qhead = q;
  s->qtail = q;
  pthread_mutex_unlock(&s->qlock);
  uint64_t one = 1;
  ssize_t r = write(s->evfd, &one, sizeof one);
  (void)r;
}

int spk_srv_net_start(spk_srv *srv, uint32_t n_threads) {
  g_svcs = calloc(n_threads, sizeof *g_svcs);
  if (!g_svcs) return -1;
  g_n_svcs = n_threads;
  g_net_srv = srv;
  for (uint32_t i = 0; i < n_threads; i++) {
    svc *s = &g_svcs[i];
    s->srv = srv;
    s->running = true;
    pthread_mutex_init(&s->qlock, NULL);
    spk_srv_ctx_init(&s->ctx, srv, &srv->nodes[0]);
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    s->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->epfd < 0 || s->evfd < 0) return -1;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->evfd, &e);
    if (pthread_create(&s->thr, NULL, svc_main, s) != 0) return -1;
  }
  return 0;
}

void spk_srv_net_add(int fd, uint32_t node_ix) {
  qitem *q = calloc(1, sizeof *q);
  if (!q) {
    close(fd);
    return;
  }
  q->kind = Q_CONN;
  q->fd = fd;
  q->node = node_ix;
  q->incarnation = atomic_load(&g_net_srv->nodes[node_ix].incarnation);
  uint32_t i = atomic_fetch_add(&g_rr, 1) % g_n_svcs;
  push(&g_svcs[i], q);
}

void spk_srv_net_kill(uint32_t node_ix) {
  for (uint32_t i = 0; i < g_n_svcs; i++) {
    qitem *q = calloc(1, sizeof *q);
    if (!q) continue;
    q->kind = Q_KILL;
    q->node = node_ix;
    push(&g_svcs[i], q);
  }
}

void spk_srv_net_stop(void) {
  for (uint32_t i = 0; i < g_n_svcs; i++) {
    qitem *q = calloc(1, sizeof *q);
    if (q) {
      q->kind = Q_STOP;
      push(&g_svcs[i], q);
    }
  }
  for (uint32_t i = 0; i < g_n_svcs; i++) {
    svc *s = &g_svcs[i];
    pthread_join(s->thr, NULL);
    qitem *q = s->qhead;
    while (q) {
      qitem *next = q->next;
      if (q->kind == Q_CONN) close(q->fd);
      free(q);
      q = next;
    }
    close(s->epfd);
    close(s->evfd);
    spk_srv_ctx_free(&s->ctx);
    pthread_mutex_destroy(&s->qlock);
  }
  free(g_svcs);
  g_svcs = NULL;
  g_n_svcs = 0;
  g_net_srv = NULL;
}
