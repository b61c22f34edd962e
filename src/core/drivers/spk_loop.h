/*
 * spk_loop.h - the event-loop driver: runs the same command state machines
 * as the blocking driver, on non-blocking sockets, for one event loop.
 *
 * One spk_loop holds an epoll set with all its connections; the binding
 * registers that single fd with the host event loop (asyncio add_reader)
 * and calls spk_loop_run_ready() when it is readable: one callback drains
 * every ready connection and completes every command it can.  Deadlines
 * (socket / total timeouts, sleeps between retries) live in a heap; the
 * binding arms one host timer for spk_loop_next_timer().
 *
 * Threading: an spk_loop and its commands belong to the thread running its
 * event loop; no function here may be called from another thread.  Cluster
 * state is shared with every other driver through the cluster's snapshots.
 *
 * Connections: a loop keeps its own connections per node (the host loop
 * serialises access, so no lock), at most max_conns_per_node of them per
 * node; a command that finds none free waits in a FIFO queue for one (its
 * timeout still runs), so 10,000 concurrent commands need no more sockets
 * than the cap.
 */
#ifndef SPK_LOOP_H
#define SPK_LOOP_H

#include "../cmd/spk_cmd.h"

typedef struct spk_loop spk_loop;
typedef struct spk_lconn spk_lconn;

typedef struct spk_acmd spk_acmd;
/* Completion callback, on the loop thread; the command is finished
 * (cmd.err says how) and is owned by the callback, which must eventually
 * return it with spk_loop_acmd_free. */
typedef void (*spk_acmd_done_fn)(spk_acmd *a);

struct spk_acmd {
  spk_cmd cmd;
  spk_cmd *cmdp; /* the command this runs: &cmd, or one owned elsewhere (a
                    batch job's node command); set after acmd_alloc */
  spk_buf tx; /* request; kept across reuse */
  spk_buf rx; /* response; kept across reuse */
  spk_acmd_done_fn on_done;
  void *udata; /* points at the extra bytes asked for in spk_loop_new */
  /* ---- internal ---- */
  spk_loop *loop;
  spk_lconn *conn;
  int step;
  bool connecting;
  bool active;
  uint64_t timer_ns; /* 0 = none */
  int heap_index;    /* -1 when not in the timer heap */
  spk_acmd *next;    /* free list / active list */
  spk_acmd *prev;
  bool waiting;      /* queued for a connection to cmdp->node */
  spk_acmd *wnext;   /* wait queue links */
  spk_acmd *wprev;
};

/* udata_size: bytes of caller data carried by every command.  NULL on
 * failure with err set. */
spk_loop *spk_loop_new(spk_cluster *c, size_t udata_size, spk_error *err);

/* The epoll fd to watch for readability. */
int spk_loop_fd(const spk_loop *l);

/* A command object (reused from a free list; tx/rx keep their capacity).
 * NULL on out-of-memory. */
spk_acmd *spk_loop_acmd_alloc(spk_loop *l);
void spk_loop_acmd_free(spk_loop *l, spk_acmd *a);

/*
 * Start a command whose cmd fields (spk_cmd_init + inputs) and tx are set.
 * Runs until it must wait; on_done may be called before this returns (e.g.
 * an unknown namespace, or a closed client).
 */
void spk_loop_start(spk_loop *l, spk_acmd *a);

/* Handle every ready connection (epoll_wait with timeout 0); returns the
 * number of events handled. */
int spk_loop_run_ready(spk_loop *l);

/* Fire due timers (timeouts, retry sleeps). */
void spk_loop_run_timers(spk_loop *l, uint64_t now_ns);

/* Earliest pending timer (spk_now_ns clock), 0 when none. */
uint64_t spk_loop_next_timer(const spk_loop *l);

/* Commands in flight. */
size_t spk_loop_inflight(const spk_loop *l);

/* Optional hook: 1 when nobody waits for a command's result any more (its
 * future was cancelled).  When every connection to a node is busy, such a
 * command gives up its connection (closed, since its answer is unread)
 * instead of making live commands queue behind it. */
void spk_loop_set_abandoned_fn(spk_loop *l, int (*fn)(spk_acmd *a));

/* Visit every in-flight command (GC traversal in the binding). */
void spk_loop_foreach(spk_loop *l, void (*fn)(spk_acmd *a, void *ctx), void *ctx);

/* Fail every in-flight command with `code` (on_done runs for each) and
 * close every connection.  The loop stays usable. */
void spk_loop_abort_all(spk_loop *l, int code, const char *message);

/* Close idle connections unused for idle_ms (or of removed nodes). */
void spk_loop_trim(spk_loop *l, uint64_t now_ns, uint32_t idle_ms);

/* Release everything.  No command may be in flight (abort them first). */
void spk_loop_free(spk_loop *l);

#endif /* SPK_LOOP_H */
