/*
 * spk_pool.h - per-node connection pool.
 *
 * Checkout first tries a small array of atomic slots indexed by a per-thread
 * hint, so threads that keep using "their" slot never touch a shared lock
 * (no pool convoy on free-threaded Python); only when the slot is empty do
 * they fall back to a mutex-protected LIFO stack.  Every open connection is
 * also on an "all" list (touched only on open/close), so close() can shut
 * down sockets that are in use by other threads and wake them with an error.
 *
 * Ownership: the pool owns idle connections; a checked-out connection is
 * owned by the caller until it is returned with spk_pool_put() or closed
 * with spk_pool_discard().
 */
#ifndef SPK_POOL_H
#define SPK_POOL_H

#include <pthread.h>
#include <stdatomic.h>

#include "../spk_common.h"

#define SPK_POOL_SLOTS 16

typedef struct spk_conn {
  int fd;
  uint32_t timeout_ms;       /* SO_RCVTIMEO in force; UINT32_MAX = unknown */
  uint64_t last_used_ns;     /* spk_now_ns() when last returned */
  struct spk_conn *next;     /* idle stack link */
  struct spk_conn *all_prev; /* "all" list links (under pool lock) */
  struct spk_conn *all_next;
} spk_conn;

typedef struct spk_pool {
  _Atomic(spk_conn *) slots[SPK_POOL_SLOTS];
  pthread_mutex_t lock;
  spk_conn *stack; /* idle LIFO (under lock) */
  spk_conn *all;   /* every open connection (under lock) */
  _Atomic uint32_t total; /* open connections incl. reservations */
  uint32_t max;
  uint64_t max_idle_ns; /* 0 = never expire idle connections */
  _Atomic int closed;
  _Atomic uint32_t ext_refs; /* connections owned by event-loop drivers */
} spk_pool;

void spk_pool_init(spk_pool *p, uint32_t max_conns, uint32_t max_idle_ms);

/* Release everything; no connection may be checked out any more. */
void spk_pool_destroy(spk_pool *p);
/* Like destroy, but only close descriptors (no shutdown): for a forked
 * child whose sockets are still the parent's connections. */
void spk_pool_abandon(spk_pool *p);

/* An idle connection, or NULL.  Connections idle longer than max_idle are
 * closed on the way. */
spk_conn *spk_pool_get(spk_pool *p);

/* Reserve room for a new connection: 0, or SPK_NO_MORE_CONNECTIONS when
 * max would be exceeded, or SPK_ERR_CLOSED. */
int spk_pool_reserve(spk_pool *p);
/* Give back a reservation whose connect failed. */
void spk_pool_unreserve(spk_pool *p);

/* Wrap a freshly connected fd (after spk_pool_reserve) into a connection
 * owned by the caller; NULL on OOM (fd is then closed, reservation freed). */
spk_conn *spk_pool_adopt(spk_pool *p, int fd);

/* Return a healthy connection (response fully read). */
void spk_pool_put(spk_pool *p, spk_conn *c);

/* Close a connection whose stream state is unknown. */
void spk_pool_discard(spk_pool *p, spk_conn *c);

/* Close idle connections unused for more than max_idle; returns how many. */
int spk_pool_trim(spk_pool *p);

/* Mark closed: idle connections are closed, in-use sockets are shut down so
 * blocked threads return with an error; later puts close their connection. */
void spk_pool_close(spk_pool *p);

/* Event-loop drivers own their connections but must keep the node alive:
 * each of their connections holds a reference.  ref fails with
 * SPK_ERR_CLOSED once the pool is closed (node removed, client closed). */
int spk_pool_ref(spk_pool *p);
void spk_pool_unref(spk_pool *p);
static inline int spk_pool_is_closed(spk_pool *p) {
  return atomic_load_explicit(&p->closed, memory_order_acquire);
}
/* 1 while anything (a connection, a reservation, a loop) uses the pool. */
static inline int spk_pool_in_use(spk_pool *p) {
  return atomic_load_explicit(&p->total, memory_order_acquire) != 0 ||
         atomic_load_explicit(&p->ext_refs, memory_order_acquire) != 0;
}

static inline uint32_t spk_pool_count(spk_pool *p) {
  return atomic_load_explicit(&p->total, memory_order_relaxed);
}

#endif /* SPK_POOL_H */
