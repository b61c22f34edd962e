/*
 * spk_cluster.c - seeding, node validation, peers discovery, partition map
 * refresh, node removal and reclamation: everything the tend thread does
 * (protocol-core 3.1-3.6).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "spk_cluster.h"
#include "spk_cluster_int.h"
#include "spk_hazard.h"

/* Info bodies above this are treated as a protocol error (tend socket). */
#define SPK_INFO_MAX (16u * 1024u * 1024u)
#define SPK_MAX_NODES 512

struct spk_cluster {
  spk_cluster_config cfg;
  spk_host *seeds;
  _Atomic(void *) pmap; /* spk_pmap*, published by the tend thread */
  /* tend thread state */
  spk_node **nodes;
  uint32_t n_nodes;
  spk_pmap *retired_maps;
  spk_node *retired_nodes;
  spk_buf scratch;
  uint32_t tends_since_window;
  /* lifecycle */
  pthread_t tend_thread;
  bool tend_started;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool stop;
  bool tend_requested;
  _Atomic int closed;
  _Atomic uint64_t tend_count;
  uint32_t fork_gen;
  spk_error last_seed_error;
};

/* ---- fork safety ---------------------------------------------------------- */

static _Atomic uint32_t fork_gen;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static void on_fork_child(void) {
  atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}
static void install_atfork(void) { pthread_atfork(NULL, NULL, on_fork_child); }

uint32_t spk_fork_generation(void) {
  return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}
int spk_cluster_forked(const spk_cluster *c) {
  return c->fork_gen != spk_fork_generation();
}

/* ---- config ------------------------------------------------------------------ */

void spk_cluster_config_init(spk_cluster_config *c) {
  memset(c, 0, sizeof *c);
  c->conn_timeout_ms = 1000;
  c->tend_interval_ms = 1000;
  c->max_conns_per_node = 100;
  c->max_socket_idle_ms = 55000;
  c->max_error_rate = 100;
  c->error_rate_window = 1;
  c->fail_if_not_connected = true;
}

const spk_cluster_config *spk_cluster_config_get(const spk_cluster *c) {
  return &c->cfg;
}

int spk_cluster_is_closed(const spk_cluster *c) {
  return atomic_load_explicit(&c->closed, memory_order_acquire);
}

uint64_t spk_cluster_tend_count(spk_cluster *c) {
  return atomic_load_explicit(&c->tend_count, memory_order_acquire);
}

/* ---- reader side ------------------------------------------------------------- */

const spk_pmap *spk_cluster_pmap(spk_cluster *c) {
  return spk_hazard_protect(&c->pmap);
}

void spk_cluster_unpin(void) { spk_hazard_clear(); }

int spk_cluster_is_connected(spk_cluster *c) {
  if (spk_cluster_is_closed(c)) return 0;
  const spk_pmap *m = spk_cluster_pmap(c);
  int ok = m && spk_pmap_any_node(m) != NULL;
  spk_cluster_unpin();
  return ok;
}

/* ---- info exchange ------------------------------------------------------------ */

/* Read exactly n bytes; the socket's SO_RCVTIMEO was set from the
 * deadline, so a wait that times out ends the exchange. */
static int read_full(int fd, uint8_t *p, size_t n, uint64_t deadline_ns,
                     spk_error *err) {
  while (n > 0) {
    long r = spk_sock_recv(fd, p, n, err);
    if (r < 0) return (int)r;
    if (r == 0 || (deadline_ns && spk_now_ns() >= deadline_ns))
      return spk_error_set(err, SPK_ERR_TIMEOUT, "info request timed out");
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

int spk_info_exchange(int fd, const char *const *cmds, size_t n,
                      uint64_t deadline_ns, spk_buf *resp, spk_error *err) {
  uint64_t now = spk_now_ns();
  if (deadline_ns && now >= deadline_ns)
    return spk_error_set(err, SPK_ERR_TIMEOUT, "info request timed out");
  uint32_t ms = 0;
  if (deadline_ns) {
    uint64_t left = (deadline_ns - now + 999999) / 1000000;
    ms = left > 0xFFFFFFFu ? 0xFFFFFFFu : (uint32_t)left;
  }
  if (spk_sock_set_timeout(fd, ms) != 0)
    return spk_error_set(err, SPK_ERR_CONNECTION, "setsockopt failed");
  resp->len = 0;
  if (spk_info_request(resp, cmds, n) != 0)
    return spk_error_set(err, SPK_ERR_CLIENT, "out of memory");
  int rc = spk_sock_send_all(fd, resp->data, resp->len, err);
  if (rc) return rc;
  uint8_t hdr[8];
  rc = read_full(fd, hdr, 8, deadline_ns, err);
  if (rc) return rc;
  spk_proto p;
  rc = spk_proto_check(hdr, SPK_PROTO_INFO, &p, err);
  if (rc) return rc;
  if (p.size > SPK_INFO_MAX)
    return spk_error_set(err, SPK_ERR_PROTOCOL,
                         "info response of %llu bytes is too large",
                         (unsigned long long)p.size);
  resp->len = 0;
  uint8_t *body = spk_buf_extend(resp, (size_t)p.size);
  if (!body) return spk_error_set(err, SPK_ERR_CLIENT, "out of memory");
  return read_full(fd, body, (size_t)p.size, deadline_ns, err);
}

/* ---- nodes --------------------------------------------------------------------- */

static spk_node *node_new(spk_cluster *c, const char *host, uint16_t port,
                          const spk_addr *addr, spk_strv name, int fd,
                          uint32_t build) {
  spk_node *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  size_t nl = name.len < SPK_NODE_NAME_MAX - 1 ? name.len : SPK_NODE_NAME_MAX - 1;
  memcpy(n->name, name.p, nl);
  snprintf(n->host, sizeof n->host, "%s", host);
  n->port = port;
  n->addr = *addr;
  n->cluster = c;
  spk_pool_init(&n->pool, c->cfg.max_conns_per_node, c->cfg.max_socket_idle_ms);
  atomic_init(&n->active, 1);
  atomic_init(&n->error_count, 0);
  atomic_init(&n->error_limit, c->cfg.max_error_rate);
  n->tend_fd = fd;
  n->partition_generation = -1;
  n->peers_generation = UINT64_MAX;
  n->build = build;
  n->partition_changed = true;
  n->peers_changed = true;
  return n;
}

static void node_free(spk_node *n) {
  /* In a forked child the sockets are shared with the parent: close our
   * descriptors but never shut the connections down. */
  if (spk_cluster_forked(n->cluster)) spk_pool_abandon(&n->pool);
  else spk_pool_destroy(&n->pool);
  spk_sock_close(&n->tend_fd);
  free(n);
}

static spk_node *find_node(spk_cluster *c, const char *name, size_t len) {
  for (uint32_t i = 0; i < c->n_nodes; i++)
    if (strlen(c->nodes[i]->name) == len &&
        memcmp(c->nodes[i]->name, name, len) == 0)
      return c->nodes[i];
  return NULL;
}

/*
 * Connect to host:port and check it is a usable cluster node (protocol-core
 * 3.1 step 3).  expected: required node name (peers), or NULL (seeds).
 */
static spk_node *validate_host(spk_cluster *c, const char *host, uint16_t port,
                               spk_strv expected, spk_error *err) {
  spk_addr addrs[4];
  int na = spk_addr_resolve(host, port, addrs, 4, err);
  if (na < 0) return NULL;
  for (int i = 0; i < na; i++) {
    int fd = -1;
    uint64_t deadline = spk_now_ns() + (uint64_t)c->cfg.conn_timeout_ms * 1000000u;
    if (spk_sock_connect(&addrs[i], deadline, 0, &fd, err) != 0) continue;
    const char *cmds[4] = {"node", "partition-generation", "build", "cluster-name"};
    size_t ncmds = c->cfg.cluster_name[0] ? 4 : 3;
    if (spk_info_exchange(fd, cmds, ncmds, deadline, &c->scratch, err) != 0) {
      spk_sock_close(&fd);
      continue;
    }
    const char *body = (const char *)c->scratch.data;
    size_t blen = c->scratch.len;
    spk_strv name, pgen, build, cname;
    int64_t pg = -1;
    uint32_t ver = 0;
    if (!spk_info_find(body, blen, "node", &name) || name.len == 0 ||
        name.len >= SPK_NODE_NAME_MAX) {
      spk_error_set(err, SPK_ERR_INVALID_NODE, "%s:%u did not report a node name",
                    host, (unsigned)port);
    } else if (expected.len && !(expected.len == name.len &&
                                 memcmp(expected.p, name.p, name.len) == 0)) {
      spk_error_set(err, SPK_ERR_INVALID_NODE,
                    "%s:%u is node %.*s, expected %.*s", host, (unsigned)port,
                    (int)name.len, name.p, (int)expected.len, expected.p);
    } else if (!spk_info_find(body, blen, "partition-generation", &pgen) ||
               spk_info_parse_i64(pgen, &pg) != 0 || pg == -1) {
      spk_error_set(err, SPK_ERR_INVALID_NODE,
                    "node %.*s at %s:%u is not ready (partition-generation -1)",
                    (int)name.len, name.p, host, (unsigned)port);
    } else if (!spk_info_find(body, blen, "build", &build) ||
               spk_info_parse_version(build, &ver) != 0 ||
               ver < (4u << 24 | 9u << 16 | 0u << 8 | 3u)) {
      spk_error_set(err, SPK_ERR_INVALID_NODE,
                    "node %.*s at %s:%u runs an unsupported server build '%.*s'",
                    (int)name.len, name.p, host, (unsigned)port,
                    (int)build.len, build.p);
    } else if (c->cfg.cluster_name[0] &&
               (!spk_info_find(body, blen, "cluster-name", &cname) ||
                !spk_strv_eq(cname, c->cfg.cluster_name))) {
      spk_error_set(err, SPK_ERR_INVALID_NODE,
                    "node %.*s at %s:%u belongs to cluster '%.*s', expected '%s'",
                    (int)name.len, name.p, host, (unsigned)port,
                    (int)cname.len, cname.p, c->cfg.cluster_name);
    } else {
      spk_node *n = node_new(c, host, port, &addrs[i], name, fd, ver);
      if (n) return n;
      spk_error_set(err, SPK_ERR_CLIENT, "out of memory");
    }
    spk_sock_close(&fd);
  }
  return NULL;
}

static int add_node(spk_cluster *c, spk_node *n) {
  if (c->n_nodes >= SPK_MAX_NODES) {
    node_free(n);
    return -1;
  }
  spk_node **v = realloc(c->nodes, sizeof *v * (c->n_nodes + 1));
  if (!v) {
    node_free(n);
    return -1;
  }
  c->nodes = v;
  c->nodes[c->n_nodes++] = n;
  return 0;
}

/* ---- tend ------------------------------------------------------------------------ */

static void seed(spk_cluster *c) {
  spk_strv none = {NULL, 0};
  for (uint32_t i = 0; i < c->cfg.n_seeds; i++) {
    spk_error err;
    spk_error_reset(&err);
    spk_node *n = validate_host(c, c->seeds[i].name, c->seeds[i].port, none, &err);
    if (!n) {
      c->last_seed_error = err;
      continue;
    }
    if (find_node(c, n->name, strlen(n->name))) {
      node_free(n); /* two seeds naming one node */
      continue;
    }
    add_node(c, n);
  }
}

static int tend_fd_ready(spk_node *n, uint64_t deadline, spk_error *err) {
  if (n->tend_fd >= 0) return 0;
  return spk_sock_connect(&n->addr, deadline, 0, &n->tend_fd, err);
}

/* node / peers-generation / partition-generation of one node. */
static int refresh_node(spk_cluster *c, spk_node *n) {
  spk_error err;
  uint64_t deadline = spk_now_ns() + (uint64_t)c->cfg.conn_timeout_ms * 1000000u;
  static const char *const cmds[] = {"node", "peers-generation",
                                     "partition-generation"};
  if (tend_fd_ready(n, deadline, &err) != 0 ||
      spk_info_exchange(n->tend_fd, cmds, 3, deadline, &c->scratch, &err) != 0) {
    spk_sock_close(&n->tend_fd);
    return -1;
  }
  const char *body = (const char *)c->scratch.data;
  size_t len = c->scratch.len;
  spk_strv name, pgen, ppgen;
  if (!spk_info_find(body, len, "node", &name) || !spk_strv_eq(name, n->name)) {
    /* A different server now answers at this address. */
    atomic_store_explicit(&n->active, 0, memory_order_release);
    return 0;
  }
  uint64_t peers_gen;
  int64_t part_gen;
  if (!spk_info_find(body, len, "peers-generation", &ppgen) ||
      spk_info_parse_u64(ppgen, &peers_gen) != 0 ||
      !spk_info_find(body, len, "partition-generation", &pgen) ||
      spk_info_parse_i64(pgen, &part_gen) != 0) {
    spk_sock_close(&n->tend_fd);
    return -1;
  }
  if (peers_gen != n->peers_generation) n->peers_changed = true;
  if (part_gen != n->partition_generation) n->partition_changed = true;
  return 0;
}

/* Ask n for its peers; validate and add the ones we do not know. */
static void refresh_peers(spk_cluster *c, spk_node *n, bool *nodes_changed) {
  spk_error err;
  uint64_t deadline = spk_now_ns() + (uint64_t)c->cfg.conn_timeout_ms * 1000000u;
  const char *cmd[2] = {c->cfg.use_services_alternate ? "peers-clear-alt"
                                                      : "peers-clear-std",
                        "peers-generation"};
  if (tend_fd_ready(n, deadline, &err) != 0 ||
      spk_info_exchange(n->tend_fd, cmd, 2, deadline, &c->scratch, &err) != 0) {
    spk_sock_close(&n->tend_fd);
    n->failures++;
    return;
  }
  spk_strv v;
  if (!spk_info_find((const char *)c->scratch.data, c->scratch.len, cmd[0], &v))
    return;
  spk_peers peers;
  if (spk_peers_parse(v, &peers, &err) != 0) return;
  bool all_added = true;
  n->peers_count = peers.n_peers;
  for (uint32_t i = 0; i < peers.n_peers; i++) {
    spk_peer *pe = &peers.peers[i];
    spk_node *known = find_node(c, pe->node_name, strlen(pe->node_name));
    if (known) {
      if (atomic_load(&known->active)) known->friends++;
      continue;
    }
    spk_strv want = {pe->node_name, strlen(pe->node_name)};
    spk_node *added = NULL;
    for (uint32_t h = 0; h < pe->n_hosts && !added; h++)
      added = validate_host(c, pe->hosts[h].name, pe->hosts[h].port, want, &err);
    if (added && add_node(c, added) == 0) {
      added->friends++;
      *nodes_changed = true;
    } else {
      all_added = false;
    }
  }
  if (all_added) n->peers_generation = peers.generation;
  spk_peers_free(&peers);
}

static spk_pmap *current_map(spk_cluster *c) {
  return atomic_load_explicit(&c->pmap, memory_order_acquire);
}

static void refresh_partitions(spk_cluster *c, spk_node *n, spk_pmap **next,
                               bool *map_changed) {
  spk_error err;
  uint64_t deadline = spk_now_ns() + (uint64_t)c->cfg.conn_timeout_ms * 1000000u;
  static const char *const cmds[] = {"partition-generation", "replicas"};
  if (tend_fd_ready(n, deadline, &err) != 0 ||
      spk_info_exchange(n->tend_fd, cmds, 2, deadline, &c->scratch, &err) != 0) {
    spk_sock_close(&n->tend_fd);
    n->failures++;
    return;
  }
  const char *body = (const char *)c->scratch.data;
  size_t len = c->scratch.len;
  spk_strv pgen, replicas;
  int64_t gen;
  if (!spk_info_find(body, len, "partition-generation", &pgen) ||
      spk_info_parse_i64(pgen, &gen) != 0 ||
      !spk_info_find(body, len, "replicas", &replicas))
    return;
  if (!*next) {
    *next = spk__pmap_clone(current_map(c));
    if (!*next) return;
  }
  int changed = 0;
  if (spk__pmap_apply_replicas(*next, n, replicas, &changed, &err) == 0)
    n->partition_generation = gen;
  if (changed) *map_changed = true;
}

static void publish(spk_cluster *c, spk_pmap *next) {
  for (uint32_t i = 0; i < next->n_nodes; i++) next->nodes[i]->snap_refs++;
  spk_pmap *old = current_map(c);
  atomic_store_explicit(&c->pmap, next, memory_order_release);
  if (old) {
    old->retired_next = c->retired_maps;
    c->retired_maps = old;
  }
}

/* Free retired snapshots nobody reads and retired nodes nobody can reach. */
static void reclaim(spk_cluster *c, bool force) {
  spk_pmap **pp = &c->retired_maps;
  while (*pp) {
    spk_pmap *m = *pp;
    if (force || !spk_hazard_in_use(m)) {
      *pp = m->retired_next;
      for (uint32_t i = 0; i < m->n_nodes; i++) m->nodes[i]->snap_refs--;
      spk__pmap_free(m);
    } else {
      pp = &m->retired_next;
    }
  }
  spk_node **np = &c->retired_nodes;
  while (*np) {
    spk_node *n = *np;
    if (force || (n->snap_refs == 0 && !spk_pool_in_use(&n->pool))) {
      *np = n->retired_next;
      node_free(n);
    } else {
      np = &n->retired_next;
    }
  }
}

static void fill_min_conns(spk_cluster *c, spk_node *n) {
  while (spk_pool_count(&n->pool) < c->cfg.min_conns_per_node) {
    if (spk_pool_reserve(&n->pool) != 0) return;
    int fd = -1;
    spk_error err;
    uint64_t deadline = spk_now_ns() + (uint64_t)c->cfg.conn_timeout_ms * 1000000u;
    if (spk_sock_connect(&n->addr, deadline, 0, &fd, &err) != 0) {
      spk_pool_unreserve(&n->pool);
      return;
    }
    spk_conn *conn = spk_pool_adopt(&n->pool, fd);
    if (!conn) return;
    spk_pool_put(&n->pool, conn);
  }
}

static void tend(spk_cluster *c) {
  bool nodes_changed = false, map_changed = false;
  spk_pmap *next = NULL;

  if (c->n_nodes == 0) {
    seed(c);
    if (c->n_nodes) nodes_changed = true;
  }

  uint32_t refresh_count = 0;
  bool peers_changed = false;
  for (uint32_t i = 0; i < c->n_nodes; i++) {
    spk_node *n = c->nodes[i];
    n->friends = 0;
    if (spk_cluster_is_closed(c)) return; /* closing: do not start more I/O */
    if (refresh_node(c, n) == 0) {
      if (n->failures) {
        /* Coming back from failures: re-read everything. */
        n->peers_changed = n->partition_changed = true;
      }
      n->failures = 0;
      refresh_count++;
    } else {
      n->failures++;
      peers_changed = true;
    }
    if (n->peers_changed) peers_changed = true;
  }

  if (peers_changed) {
    /* Every healthy node lists its peers, so `friends` is complete. */
    for (uint32_t i = 0; i < c->n_nodes; i++) {
      spk_node *n = c->nodes[i];
      if (n->failures == 0 && atomic_load(&n->active)) {
        refresh_peers(c, n, &nodes_changed);
        n->peers_changed = false;
      }
    }
    /* Removal rules (protocol-core 3.4). */
    const spk_pmap *cur = current_map(c);
    for (uint32_t i = 0; i < c->n_nodes;) {
      spk_node *n = c->nodes[i];
      bool remove = !atomic_load(&n->active) ||
                    (refresh_count == 0 && n->failures >= 5) ||
                    (c->n_nodes > 1 && refresh_count >= 1 && n->friends == 0 &&
                     (n->failures > 0 || !cur || !spk__pmap_owns_partitions(cur, n)));
      if (!remove) {
        i++;
        continue;
      }
      atomic_store_explicit(&n->active, 0, memory_order_release);
      spk_pool_close(&n->pool);
      n->retired = true;
      n->retired_next = c->retired_nodes;
      c->retired_nodes = n;
      c->nodes[i] = c->nodes[--c->n_nodes];
      nodes_changed = true;
    }
  }

  for (uint32_t i = 0; i < c->n_nodes; i++) {
    spk_node *n = c->nodes[i];
    if (n->partition_changed && n->failures == 0 && atomic_load(&n->active) &&
        (n->peers_count > 0 || refresh_count <= 1)) {
      refresh_partitions(c, n, &next, &map_changed);
      n->partition_changed = false;
    }
  }

  if (nodes_changed || map_changed) {
    if (!next) next = spk__pmap_clone(current_map(c));
    if (next && spk__pmap_set_nodes(next, c->nodes, c->n_nodes) == 0) {
      publish(c, next);
      next = NULL;
    }
  }
  spk__pmap_free(next);

  if (++c->tends_since_window >= (c->cfg.error_rate_window ? c->cfg.error_rate_window : 1)) {
    c->tends_since_window = 0;
    for (uint32_t i = 0; i < c->n_nodes; i++)
      atomic_store_explicit(&c->nodes[i]->error_count, 0, memory_order_relaxed);
  }
  for (uint32_t i = 0; i < c->n_nodes; i++) {
    spk_pool_trim(&c->nodes[i]->pool);
    if (c->cfg.min_conns_per_node) fill_min_conns(c, c->nodes[i]);
  }
  reclaim(c, false);
  atomic_fetch_add_explicit(&c->tend_count, 1, memory_order_release);
}

static void *tend_main(void *arg) {
  spk_cluster *c = arg;
  pthread_mutex_lock(&c->lock);
  while (!c->stop) {
    if (!c->tend_requested) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)c->cfg.tend_interval_ms * 1000000u;
      ts.tv_sec += (time_t)(ns / 1000000000u);
      ts.tv_nsec = (long)(ns % 1000000000u);
      int rc = 0;
      while (!c->stop && !c->tend_requested && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&c->cond, &c->lock, &ts);
      if (c->stop) break;
    }
    c->tend_requested = false;
    pthread_mutex_unlock(&c->lock);
    tend(c);
    pthread_mutex_lock(&c->lock);
  }
  pthread_mutex_unlock(&c->lock);
  return NULL;
}

void spk_cluster_tend_now(spk_cluster *c) {
  pthread_mutex_lock(&c->lock);
  c->tend_requested = true;
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->lock);
}

/* ---- lifecycle ------------------------------------------------------------------ */

int spk_cluster_create(const spk_cluster_config *cfg, spk_cluster **out,
                       spk_error *err) {
  pthread_once(&atfork_once, install_atfork);
  if (cfg->n_seeds == 0)
    return spk_error_set(err, SPK_ERR_PARAM, "no seed hosts given");
  spk_cluster *c = calloc(1, sizeof *c);
  if (!c) return spk_error_set(err, SPK_ERR_CLIENT, "out of memory");
  c->cfg = *cfg;
  c->seeds = malloc(sizeof *c->seeds * cfg->n_seeds);
  if (!c->seeds) {
    free(c);
    return spk_error_set(err, SPK_ERR_CLIENT, "out of memory");
  }
  memcpy(c->seeds, cfg->seeds, sizeof *c->seeds * cfg->n_seeds);
  c->cfg.seeds = c->seeds;
  c->fork_gen = spk_fork_generation();
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&c->lock, NULL);
  spk_error_set(&c->last_seed_error, SPK_ERR_CONNECTION,
                "no seed host could be reached");

  spk_pmap *empty = spk__pmap_clone(NULL);
  if (!empty) {
    spk_cluster_free(c);
    return spk_error_set(err, SPK_ERR_CLIENT, "out of memory");
  }
  atomic_store(&c->pmap, empty);

  /* First tends run on the caller's thread: seeds, then peers of peers
   * until no new node appears, with their partition maps. */
  for (int i = 0; i < 8; i++) {
    uint32_t before = c->n_nodes;
    tend(c);
    if (c->n_nodes == 0 || c->n_nodes == before) break;
  }
  if (c->n_nodes == 0 && cfg->fail_if_not_connected) {
    /* Whatever went wrong with each seed, the caller could not connect. */
    spk_error_set(err, SPK_ERR_CONNECTION, "failed to connect to the cluster: %s",
                  c->last_seed_error.message);
    spk_cluster_free(c);
    return SPK_ERR_CONNECTION;
  }
  if (pthread_create(&c->tend_thread, NULL, tend_main, c) != 0) {
    spk_cluster_free(c);
    return spk_error_set(err, SPK_ERR_CLIENT, "cannot start the tend thread");
  }
  c->tend_started = true;
  *out = c;
  return 0;
}

void spk_cluster_close(spk_cluster *c) {
  int was = atomic_exchange(&c->closed, 1);
  if (was) return;
  pthread_mutex_lock(&c->lock);
  c->stop = true;
  pthread_cond_signal(&c->cond);
  pthread_mutex_unlock(&c->lock);
  if (spk_cluster_forked(c)) return; /* no tend thread here; parent's sockets */
  /* Wake threads blocked on commands first: the tend thread may be in an
   * info exchange with a slow node for up to the connect timeout. */
  const spk_pmap *m = spk_cluster_pmap(c);
  for (uint32_t i = 0; m && i < m->n_nodes; i++) spk_pool_close(&m->nodes[i]->pool);
  spk_cluster_unpin();
  if (c->tend_started) pthread_join(c->tend_thread, NULL);
  c->tend_started = false;
  /* The tend thread is gone: its sockets can be closed now, not at free. */
  for (uint32_t i = 0; i < c->n_nodes; i++) {
    atomic_store(&c->nodes[i]->active, 0);
    spk_pool_close(&c->nodes[i]->pool);
    spk_sock_close(&c->nodes[i]->tend_fd);
  }
}

void spk_cluster_free(spk_cluster *c) {
  if (!c) return;
  if (!spk_cluster_is_closed(c)) spk_cluster_close(c);
  spk_pmap *m = current_map(c);
  if (m) {
    for (uint32_t i = 0; i < m->n_nodes; i++) m->nodes[i]->snap_refs--;
    spk__pmap_free(m);
  }
  reclaim(c, true);
  for (uint32_t i = 0; i < c->n_nodes; i++) node_free(c->nodes[i]);
  free(c->nodes);
  free(c->seeds);
  spk_buf_free(&c->scratch);
  pthread_mutex_destroy(&c->lock);
  pthread_cond_destroy(&c->cond);
  free(c);
}
