/* spk_pool.c - per-node connection pool (see spk_pool.h). */
#include "spk_pool.h"

#include "spk_socket.h"

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static _Atomic unsigned next_hint;
static SPK_TLS unsigned tls_hint = ~0u;

static unsigned thread_slot(void) {
  if (SPK_UNLIKELY(tls_hint == ~0u))
    tls_hint = atomic_fetch_add_explicit(&next_hint, 1, memory_order_relaxed);
  return tls_hint % SPK_POOL_SLOTS;
}

void spk_pool_init(spk_pool *p, uint32_t max_conns, uint32_t max_idle_ms) {
  for (int i = 0; i < SPK_POOL_SLOTS; i++) atomic_init(&p->slots[i], NULL);
  pthread_mutex_init(&p->lock, NULL);
  p->stack = NULL;
  p->all = NULL;
  atomic_init(&p->total, 0);
  p->max = max_conns ? max_conns : 1;
  p->max_idle_ns = (uint64_t)max_idle_ms * 1000000u;
  atomic_init(&p->closed, 0);
  atomic_init(&p->ext_refs, 0);
}

int spk_pool_ref(spk_pool *p) {
  atomic_fetch_add_explicit(&p->ext_refs, 1, memory_order_acq_rel);
  if (atomic_load_explicit(&p->closed, memory_order_acquire)) {
    atomic_fetch_sub_explicit(&p->ext_refs, 1, memory_order_acq_rel);
    return SPK_ERR_CLOSED;
  }
  return 0;
}

void spk_pool_unref(spk_pool *p) {
  atomic_fetch_sub_explicit(&p->ext_refs, 1, memory_order_acq_rel);
}

static void all_unlink_locked(spk_pool *p, spk_conn *c) {
  if (c->all_prev) c->all_prev->all_next = c->all_next;
  else p->all = c->all_next;
  if (c->all_next) c->all_next->all_prev = c->all_prev;
}

/* Close and free a connection; caller holds no lock. */
static void conn_free(spk_pool *p, spk_conn *c) {
  pthread_mutex_lock(&p->lock);
  all_unlink_locked(p, c);
  pthread_mutex_unlock(&p->lock);
  if (c->fd >= 0) close(c->fd);
  free(c);
  atomic_fetch_sub_explicit(&p->total, 1, memory_order_relaxed);
}

static int is_stale(const spk_pool *p, const spk_conn *c, uint64_t now) {
  return p->max_idle_ns && now - c->last_used_ns > p->max_idle_ns;
}

/* A connection idle longer than this is checked (one non-blocking peek)
 * before reuse: the server may have closed it (restart, idle reaping).  A
 * busy connection is reused within microseconds and skips the syscall. */
#define SPK_POOL_CHECK_IDLE_NS 1000000u

/* Cold path: the caller's slot and the stack are empty; connections may
 * still sit in other threads' slots (a thread that stopped using the pool
 * leaves its connection there). */
static spk_conn *steal_slot(spk_pool *p) {
  unsigned mine = thread_slot();
  for (unsigned i = 1; i < SPK_POOL_SLOTS; i++) {
    _Atomic(spk_conn *) *slot = &p->slots[(mine + i) % SPK_POOL_SLOTS];
    if (!atomic_load_explicit(slot, memory_order_relaxed)) continue;
    spk_conn *c = atomic_exchange_explicit(slot, NULL, memory_order_acquire);
    if (c) return c;
  }
  return NULL;
}

spk_conn *spk_pool_get(spk_pool *p) {
  spk_conn *c = atomic_exchange_explicit(&p->slots[thread_slot()], NULL,
                                         memory_order_acquire);
  uint64_t now = 0;
  for (;;) {
    if (!c) {
      pthread_mutex_lock(&p->lock);
      c = p->stack;
      if (c) p->stack = c->next;
      pthread_mutex_unlock(&p->lock);
      if (!c) c = steal_slot(p);
      if (!c) return NULL;
    }
    if (!now) now = spk_now_ns();
    if (!is_stale(p, c, now) &&
        (now - c->last_used_ns <= SPK_POOL_CHECK_IDLE_NS || spk_sock_idle_ok(c->fd)))
      return c;
    conn_free(p, c);
    c = NULL;
  }
}

int spk_pool_reserve(spk_pool *p) {
  if (atomic_load_explicit(&p->closed, memory_order_acquire))
    return SPK_ERR_CLOSED;
  uint32_t n = atomic_load_explicit(&p->total, memory_order_relaxed);
  do {
    if (n >= p->max) return SPK_NO_MORE_CONNECTIONS;
  } while (!atomic_compare_exchange_weak_explicit(
      &p->total, &n, n + 1, memory_order_relaxed, memory_order_relaxed));
  return 0;
}

void spk_pool_unreserve(spk_pool *p) {
  atomic_fetch_sub_explicit(&p->total, 1, memory_order_relaxed);
}

spk_conn *spk_pool_adopt(spk_pool *p, int fd) {
  spk_conn *c = calloc(1, sizeof *c);
  if (!c) {
    close(fd);
    spk_pool_unreserve(p);
    return NULL;
  }
  c->fd = fd;
  c->timeout_ms = UINT32_MAX;
  c->last_used_ns = spk_now_ns();
  pthread_mutex_lock(&p->lock);
  c->all_next = p->all;
  if (p->all) p->all->all_prev = c;
  p->all = c;
  pthread_mutex_unlock(&p->lock);
  /* A close() that raced with this connect must not leave it running. */
  if (atomic_load_explicit(&p->closed, memory_order_acquire))
    shutdown(fd, SHUT_RDWR);
  return c;
}

void spk_pool_put(spk_pool *p, spk_conn *c) {
  if (atomic_load_explicit(&p->closed, memory_order_acquire)) {
    conn_free(p, c);
    return;
  }
  c->last_used_ns = spk_now_ns();
  spk_conn *expect = NULL;
  if (atomic_compare_exchange_strong_explicit(&p->slots[thread_slot()], &expect,
                                              c, memory_order_release,
                                              memory_order_relaxed))
    return;
  pthread_mutex_lock(&p->lock);
  c->next = p->stack;
  p->stack = c;
  pthread_mutex_unlock(&p->lock);
}

void spk_pool_discard(spk_pool *p, spk_conn *c) { conn_free(p, c); }

int spk_pool_trim(spk_pool *p) {
  if (!p->max_idle_ns) return 0;
  uint64_t now = spk_now_ns();
  int closed = 0;
  for (int i = 0; i < SPK_POOL_SLOTS; i++) {
    /* Only a connection we own may be inspected: take it out of the slot
     * (its thread then finds the stack instead, for this one call). */
    if (!atomic_load_explicit(&p->slots[i], memory_order_relaxed)) continue;
    spk_conn *c = atomic_exchange_explicit(&p->slots[i], NULL, memory_order_acquire);
    if (!c) continue;
    if (is_stale(p, c, now)) {
      conn_free(p, c);
      closed++;
      continue;
    }
    spk_conn *expect = NULL;
    if (!atomic_compare_exchange_strong_explicit(&p->slots[i], &expect, c,
                                                 memory_order_release,
                                                 memory_order_relaxed)) {
      pthread_mutex_lock(&p->lock);
      c->next = p->stack;
      p->stack = c;
      pthread_mutex_unlock(&p->lock);
    }
  }
  /* The stack is LIFO: stale connections sit at its tail. */
  spk_conn *stale = NULL;
  pthread_mutex_lock(&p->lock);
  spk_conn **pp = &p->stack;
  while (*pp) {
    spk_conn *c = *pp;
    if (is_stale(p, c, now)) {
      *pp = c->next;
      c->next = stale;
      stale = c;
    } else {
      pp = &c->next;
    }
  }
  pthread_mutex_unlock(&p->lock);
  while (stale) {
    spk_conn *n = stale->next;
    conn_free(p, stale);
    stale = n;
    closed++;
  }
  return closed;
}

void spk_pool_close(spk_pool *p) {
  atomic_store_explicit(&p->closed, 1, memory_order_release);
  for (int i = 0; i < SPK_POOL_SLOTS; i++) {
    spk_conn *c = atomic_exchange_explicit(&p->slots[i], NULL,
                                           memory_order_acquire);
    if (c) conn_free(p, c);
  }
  pthread_mutex_lock(&p->lock);
  spk_conn *idle = p->stack;
  p->stack = NULL;
  /* Wake threads blocked on in-use sockets; they close them on return.
   * shutdown() keeps the descriptor allocated, so no fd can be reused
   * under a thread still holding it. */
  for (spk_conn *c = p->all; c; c = c->all_next) shutdown(c->fd, SHUT_RDWR);
  pthread_mutex_unlock(&p->lock);
  while (idle) {
    spk_conn *n = idle->next;
    conn_free(p, idle);
    idle = n;
  }
}

void spk_pool_destroy(spk_pool *p) {
  spk_pool_close(p);
  pthread_mutex_lock(&p->lock);
  spk_conn *c = p->all;
  p->all = NULL;
  pthread_mutex_unlock(&p->lock);
  while (c) {
    spk_conn *n = c->all_next;
    if (c->fd >= 0) close(c->fd);
    free(c);
    c = n;
  }
  pthread_mutex_destroy(&p->lock);
}

void spk_pool_abandon(spk_pool *p) {
  spk_conn *c = p->all;
  p->all = NULL;
  while (c) {
    spk_conn *n = c->all_next;
    if (c->fd >= 0) close(c->fd);
    free(c);
    c = n;
  }
}
