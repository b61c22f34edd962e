/*
 * spk_cluster.h - cluster state: seeds, nodes, partition map snapshots and
 * the tend thread (protocol-core section 3).
 *
 * Threading: the tend thread is the only writer of cluster state.  It
 * publishes an immutable spk_pmap (node list + partition tables) with one
 * atomic store; commands read it under a hazard pointer (spk_hazard.h), so
 * routing takes no lock and touches no shared counter.  Old snapshots and
 * removed nodes are freed by the tend thread once nothing can reach them:
 * a snapshot when no hazard points at it, a node when no live snapshot
 * lists it and its pool holds no connection (a command in flight always
 * holds a connection or a pool reservation, so it keeps its node alive).
 */
#ifndef SPK_CLUSTER_H
#define SPK_CLUSTER_H

#include <pthread.h>
#include <stdatomic.h>

#include "../codec/spk_digest.h"
#include "../codec/spk_info.h"
#include "../codec/spk_proto.h"
#include "../net/spk_pool.h"
#include "../net/spk_socket.h"

#define SPK_MAX_NAMESPACES 32
#define SPK_CLUSTER_NAME_MAX 64

/* Replica policies (protocol-core 3.8). */
enum spk_replica {
  SPK_REPLICA_MASTER = 0,
  SPK_REPLICA_ANY = 1,
  SPK_REPLICA_SEQUENCE = 2,
  SPK_REPLICA_PREFER_RACK = 3,
  SPK_REPLICA_RANDOM = 4
};

typedef struct spk_cluster_config {
  const spk_host *seeds; /* borrowed for the duration of spk_cluster_create */
  uint32_t n_seeds;
  char cluster_name[SPK_CLUSTER_NAME_MAX]; /* "" = do not check */
  uint32_t conn_timeout_ms;    /* connect + tend info; default 1000 */
  uint32_t tend_interval_ms;   /* default 1000 */
  uint32_t max_conns_per_node; /* default 100 */
  uint32_t min_conns_per_node; /* default 0 */
  uint32_t max_socket_idle_ms; /* default 55000; 0 = keep forever */
  uint32_t max_error_rate;     /* errors per window before the breaker
                                  opens; 0 = off; default 100 */
  uint32_t error_rate_window;  /* tends; default 1 */
  bool fail_if_not_connected;  /* default true */
  bool use_services_alternate; /* peers-clear-alt instead of -std */
} spk_cluster_config;

/* Fill defaults (everything zeroed except what is documented above). */
void spk_cluster_config_init(spk_cluster_config *c);

typedef struct spk_cluster spk_cluster;

typedef struct spk_node {
  char name[SPK_NODE_NAME_MAX];
  char host[SPK_HOST_NAME_MAX];
  uint16_t port;
  spk_addr addr;
  spk_cluster *cluster;
  spk_pool pool;
  _Atomic int active;           /* 0 once removed: commands skip it */
  _Atomic uint32_t error_count; /* errors in the current window */
  _Atomic uint32_t error_limit; /* breaker threshold (0 = off) */
  /* Below: tend thread only. */
  int tend_fd;
  uint32_t failures;
  int64_t partition_generation;
  uint64_t peers_generation;
  uint32_t peers_count;
  uint32_t friends;
  uint32_t build;      /* spk_info_parse_version of "build" */
  uint32_t snap_refs;  /* live snapshots listing this node */
  bool partition_changed;
  bool peers_changed;
  bool retired;
  struct spk_node *retired_next;
} spk_node;

typedef struct spk_ns_map {
  char name[SPK_NAMESPACE_MAX + 1];
  uint8_t name_len;
  uint8_t n_replicas; /* min(replication factor, SPK_MAX_REPLICAS) */
  bool sc_mode;
  uint32_t regime[SPK_N_PARTITIONS];
  spk_node *nodes[SPK_N_PARTITIONS][SPK_MAX_REPLICAS];
} spk_ns_map;

/* Immutable once published. */
typedef struct spk_pmap {
  uint32_t n_nodes;
  spk_node **nodes; /* active nodes */
  uint32_t n_ns;
  spk_ns_map *ns[SPK_MAX_NAMESPACES];
  uint64_t version;
  struct spk_pmap *retired_next;
} spk_pmap;

/*
 * Connect to the seeds, discover peers and load the partition map, then
 * start the tend thread.  On success *out is owned by the caller: call
 * spk_cluster_close() then spk_cluster_free().
 */
int spk_cluster_create(const spk_cluster_config *cfg, spk_cluster **out,
                       spk_error *err);

/* Stop tending, close every pool (blocked threads return with errors).
 * Idempotent; safe while other threads run commands. */
void spk_cluster_close(spk_cluster *c);

/* Free everything.  Only when no command can still be running. */
void spk_cluster_free(spk_cluster *c);

int spk_cluster_is_closed(const spk_cluster *c);
const spk_cluster_config *spk_cluster_config_get(const spk_cluster *c);
/* 1 if the cluster has at least one active node. */
int spk_cluster_is_connected(spk_cluster *c);

/*
 * Reader side.  spk_cluster_pmap() returns the current snapshot protected by
 * this thread's hazard pointer; it stays valid until spk_cluster_unpin().
 * Never NULL after a successful create (an empty map has n_nodes == 0).
 */
const spk_pmap *spk_cluster_pmap(spk_cluster *c);
void spk_cluster_unpin(void);

/* Namespace table by name, or NULL. */
const spk_ns_map *spk_pmap_ns(const spk_pmap *m, const char *ns, size_t len);

/*
 * Pick the node for (ns, pid) by the replica policy; replica_index is the
 * attempt's position in the replica sequence (incremented on retries that
 * switch replicas).  Returns an active node, or NULL with err set
 * (SPK_ERR_NAMESPACE_NOT_FOUND, SPK_ERR_INVALID_NODE).
 */
spk_node *spk_pmap_route(const spk_pmap *m, const char *ns, size_t ns_len,
                         uint32_t pid, uint8_t replica, bool is_write,
                         uint32_t replica_index, spk_error *err);

/* Any active node, round robin (info commands). NULL if none. */
spk_node *spk_pmap_any_node(const spk_pmap *m);

/* Breaker: count an error against a node / test whether it is open. */
static inline void spk_node_error(spk_node *n) {
  atomic_fetch_add_explicit(&n->error_count, 1, memory_order_relaxed);
}
static inline int spk_node_breaker_open(spk_node *n) {
  uint32_t lim = atomic_load_explicit(&n->error_limit, memory_order_relaxed);
  return lim &&
         atomic_load_explicit(&n->error_count, memory_order_relaxed) > lim;
}

/* Fork generation: bumped in the child after fork(); a cluster created in
 * another generation refuses commands (its threads and sockets belong to
 * the parent). */
uint32_t spk_fork_generation(void);
int spk_cluster_forked(const spk_cluster *c);

/*
 * Blocking info exchange on an open socket (tend and seed validation):
 * sends the request for `cmds` and reads one type-1 response into resp
 * (body only, proto header stripped).  Returns 0 or an error.
 */
int spk_info_exchange(int fd, const char *const *cmds, size_t n,
                      uint64_t deadline_ns, spk_buf *resp, spk_error *err);

/* Testing / introspection: number of tends completed. */
uint64_t spk_cluster_tend_count(spk_cluster *c);
/* Ask the tend thread to run now (tests, and after node errors). */
void spk_cluster_tend_now(spk_cluster *c);

#endif /* SPK_CLUSTER_H */
