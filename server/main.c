/*
 * main.c - cspike-server: arguments, start-up, and the control channel.
 *
 * The server listens on 127.0.0.1 only.  Once every node listens it prints
 * one JSON line {"nodes":[{"name":..,"port":..}],"pid":..} on stdout.  Then
 * stdin carries control commands, one per line, each answered with one line
 * "ok ..." or "error ..."; EOF on stdin stops the server, so a crashed test
 * run never leaves servers behind.  This (control) thread also accepts
 * connections, runs delayed cluster transitions and the expiry sweep.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net.h"
#include "srv.h"

static const char usage[] =
    "usage: cspike-server [options]\n"
    "  --nodes N                 nodes in the cluster (default 1)\n"
    "  --port P                  first port (node i gets P+i; 0 = ephemeral)\n"
    "  --ports P1,P2,...         one port per node\n"
    "  --node-ids ID1,ID2,...    node ids in hex (default derived from port)\n"
    "  --namespace NAME[:k=v,...] namespace (repeatable; default test, bar);\n"
    "                            keys rf, default-ttl, max-record-size,\n"
    "                            nsup-period, data-size\n"
    "  --replication-factor N    default rf (1 single node, 2 in a cluster)\n"
    "  --threads N               service threads (default 2)\n"
    "  --cluster-name NAME       cluster-name (default none: \"null\")\n"
    "  --enterprise              behave like Enterprise Edition\n"
    "  --rebalance-delay MS      node loss -> cluster reformed (default 0)\n"
    "  --migrate-delay MS        reformed -> migrations done (default 0)\n"
    "  --sindex-populate-ms MS   a new index on a non-empty set is write-only\n"
    "                            (WO) at least this long (default 20)\n";

/* ---- configuration -------------------------------------------------------------------- */

static int parse_u32(const char *s, uint32_t *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || end == s || *end || v > UINT32_MAX) return -1;
  *out = (uint32_t)v;
  return 0;
}

static void ns_defaults(spk_srv_ns_cfg *c, const char *name) {
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  c->rf = 0; /* filled from --replication-factor */
  c->default_ttl = 0;
  c->max_record_size = 1024 * 1024;
  c->nsup_period = 1;
  c->data_size = 1ull << 30;
}

static int parse_ns(const char *spec, spk_srv_ns_cfg *c) {
  char buf[512];
  snprintf(buf, sizeof buf, "%s", spec);
  char *colon = strchr(buf, ':');
  if (colon) *colon = '\0';
  if (buf[0] == '\0' || strlen(buf) > SPK_NAMESPACE_MAX) return -1;
  ns_defaults(c, buf);
  if (!colon) return 0;
  for (char *kv = strtok(colon + 1, ","); kv; kv = strtok(NULL, ",")) {
    char *eq = strchr(kv, '=');
    if (!eq) return -1;
    *eq = '\0';
    uint32_t v;
    if (parse_u32(eq + 1, &v) != 0) return -1;
    if (!strcmp(kv, "rf") || !strcmp(kv, "replication-factor")) c->rf = v;
    else if (!strcmp(kv, "default-ttl")) c->default_ttl = v;
    else if (!strcmp(kv, "max-record-size")) c->max_record_size = v;
    else if (!strcmp(kv, "nsup-period")) c->nsup_period = v;
    else if (!strcmp(kv, "data-size")) c->data_size = (uint64_t)v << 20;
    else return -1;
  }
  return 0;
}

static int parse_args(int argc, char **argv, spk_srv_cfg *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->n_nodes = 1;
  cfg->threads = 2;
  cfg->sindex_populate_ms = 20;
  uint32_t base_port = 0, rf = 0;
  bool ports_given = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED() \
  do {         \
    if (!v) return -1; \
    i++;       \
  } while (0)
    if (!strcmp(a, "--nodes")) {
      NEED();
      if (parse_u32(v, &cfg->n_nodes) || !cfg->n_nodes ||
          cfg->n_nodes > SPK_SRV_MAX_NODES)
        return -1;
    } else if (!strcmp(a, "--port")) {
      NEED();
      if (parse_u32(v, &base_port) || base_port > 65535) return -1;
    } else if (!strcmp(a, "--ports")) {
      NEED();
      char buf[512];
      snprintf(buf, sizeof buf, "%s", v);
      uint32_t k = 0;
      for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        uint32_t p;
        if (k == SPK_SRV_MAX_NODES || parse_u32(t, &p) || p > 65535) return -1;
        cfg->ports[k++] = (uint16_t)p;
      }
      ports_given = true;
    } else if (!strcmp(a, "--node-ids")) {
      NEED();
      char buf[512];
      snprintf(buf, sizeof buf, "%s", v);
      uint32_t k = 0;
      for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
        char *end;
        uint64_t id = strtoull(t, &end, 16);
        if (k == SPK_SRV_MAX_NODES || *end || !id) return -1;
        cfg->node_ids[k++] = id;
      }
    } else if (!strcmp(a, "--namespace")) {
      NEED();
      if (cfg->n_ns == SPK_SRV_MAX_NS || parse_ns(v, &cfg->ns[cfg->n_ns]) != 0)
        return -1;
      cfg->n_ns++;
    } else if (!strcmp(a, "--replication-factor")) {
      NEED();
      if (parse_u32(v, &rf) || !rf) return -1;
    } else if (!strcmp(a, "--threads")) {
      NEED();
      if (parse_u32(v, &cfg->threads) || !cfg->threads || cfg->threads > 64)
        return -1;
    } else if (!strcmp(a, "--cluster-name")) {
      NEED();
      snprintf(cfg->cluster_name, sizeof cfg->cluster_name, "%s", v);
    } else if (!strcmp(a, "--enterprise")) {
      cfg->enterprise = true;
    } else if (!strcmp(a, "--rebalance-delay")) {
      NEED();
      if (parse_u32(v, &cfg->reform_ms)) return -1;
    } else if (!strcmp(a, "--migrate-delay")) {
      NEED();
      if (parse_u32(v, &cfg->migrate_ms)) return -1;
    } else if (!strcmp(a, "--sindex-populate-ms")) {
      NEED();
      if (parse_u32(v, &cfg->sindex_populate_ms)) return -1;
    } else {
      return -1;
    }
#undef NEED
  }
  if (!ports_given && base_port)
    for (uint32_t i = 0; i < cfg->n_nodes; i++)
      cfg->ports[i] = (uint16_t)(base_port + i);
  if (cfg->n_ns == 0) {
    ns_defaults(&cfg->ns[0], "test");
    ns_defaults(&cfg->ns[1], "bar");
    cfg->n_ns = 2;
  }
  if (!rf) rf = cfg->n_nodes > 1 ? 2 : 1;
  for (uint32_t i = 0; i < cfg->n_ns; i++)
    if (!cfg->ns[i].rf) cfg->ns[i].rf = rf;
  return 0;
}

/* ---- listeners ------------------------------------------------------------------------------ */

static int listen_on(uint16_t *port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons(*port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 1024) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof sa;
  getsockname(fd, (struct sockaddr *)&sa, &len);
  *port = ntohs(sa.sin_port);
  return fd;
}

static void accept_all(spk_srv_node *n) {
  for (;;) {
    int fd = accept4(n->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    spk_srv_net_add(fd, n->ix);
  }
}

/* ---- control commands ------------------------------------------------------------------------ */

static spk_srv g_srv;
static int g_epfd;

static void reply(const char *fmt, ...) SPK_PRINTF(1, 2);
static void reply(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stdout, fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
  fflush(stdout);
}

static int node_arg(const char *s) {
  if (!s) return -1;
  uint32_t ix;
  if (parse_u32(s, &ix) == 0 && ix < g_srv.n_nodes) return (int)ix;
  for (uint32_t i = 0; i < g_srv.n_nodes; i++)
    if (!strcasecmp(g_srv.nodes[i].name, s)) return (int)i;
  return -1;
}

static void print_nodes(spk_buf *b) {
  spk_srv_buf_str(b, "[");
  for (uint32_t i = 0; i < g_srv.n_nodes; i++) {
    spk_srv_node *n = &g_srv.nodes[i];
    spk_srv_buf_printf(
        b,
        "%s{\"name\":\"%s\",\"port\":%u,\"alive\":%s,\"requests\":%" PRIu64
        ",\"connections\":%" PRIu64 "}",
        i ? "," : "", n->name, n->port, atomic_load(&n->alive) ? "true" : "false",
        atomic_load(&n->n_requests),
        atomic_load(&n->conns_opened) - atomic_load(&n->conns_closed));
  }
  spk_srv_buf_str(b, "]");
}

static void cmd_stats(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  uint64_t user = (uint64_t)ru.ru_utime.tv_sec * 1000000u + ru.ru_utime.tv_usec;
  uint64_t sys = (uint64_t)ru.ru_stime.tv_sec * 1000000u + ru.ru_stime.tv_usec;
  uint64_t req = 0;
  for (uint32_t i = 0; i < g_srv.n_nodes; i++) req += atomic_load(&g_srv.nodes[i].n_requests);
  spk_buf b = {0};
  spk_srv_buf_printf(&b,
                     "{\"cpu_user_us\":%" PRIu64 ",\"cpu_sys_us\":%" PRIu64
                     ",\"requests\":%" PRIu64 ",\"nodes\":",
                     user, sys, req);
  print_nodes(&b);
  spk_srv_buf_str(&b, "}");
  reply("ok %.*s", (int)b.len, (const char *)b.data);
  spk_buf_free(&b);
}

static int reopen(spk_srv_node *n) {
  uint16_t port = n->port;
  int fd = listen_on(&port);
  if (fd < 0) return -1;
  n->listen_fd = fd;
  struct epoll_event e = {.events = EPOLLIN, .data.u64 = n->ix + 1u};
  epoll_ctl(g_epfd, EPOLL_CTL_ADD, fd, &e);
  return 0;
}

static bool handle_line(char *line) {
  char *argv[8] = {0};
  int argc = 0;
  for (char *t = strtok(line, " \t\r"); t && argc < 8; t = strtok(NULL, " \t\r"))
    argv[argc++] = t;
  if (argc == 0) return true;
  const char *cmd = argv[0];
  const char *msg = "bad arguments";
  int ix = argc > 1 ? node_arg(argv[1]) : -1;
  uint32_t v = 0, cnt = 1;
  if (!strcmp(cmd, "ping")) {
    reply("ok pong");
  } else if (!strcmp(cmd, "quit")) {
    reply("ok bye");
    return false;
  } else if (!strcmp(cmd, "stats")) {
    cmd_stats();
  } else if (!strcmp(cmd, "nodes")) {
    spk_buf b = {0};
    print_nodes(&b);
    reply("ok %.*s", (int)b.len, (const char *)b.data);
    spk_buf_free(&b);
  } else if (!strcmp(cmd, "kill")) {
    if (ix < 0) goto bad;
    spk_srv_node *n = &g_srv.nodes[ix];
    if (spk_srv_cluster_kill(&g_srv, (uint32_t)ix, &msg) != 0) goto bad;
    epoll_ctl(g_epfd, EPOLL_CTL_DEL, n->listen_fd, NULL);
    close(n->listen_fd);
    n->listen_fd = -1;
    spk_srv_net_kill((uint32_t)ix);
    reply("ok");
  } else if (!strcmp(cmd, "restart")) {
    if (ix < 0) goto bad;
    spk_srv_node *n = &g_srv.nodes[ix];
    if (atomic_load(&n->alive)) {
      msg = "node is running";
      goto bad;
    }
    if (reopen(n) != 0) {
      msg = "cannot listen on the node's port";
      goto bad;
    }
    if (spk_srv_cluster_restart(&g_srv, (uint32_t)ix, &msg) != 0) goto bad;
    reply("ok");
  } else if (!strcmp(cmd, "migrate")) {
    /* migrate <ns|*> <pid|lo-hi|all> <node> */
    if (argc != 4) goto bad;
    int ns_ix = -1;
    if (strcmp(argv[1], "*") != 0) {
      spk_srv_ns *ns = spk_srv_ns_find(&g_srv, (const uint8_t *)argv[1], strlen(argv[1]));
      if (!ns) {
        msg = "unknown namespace";
        goto bad;
      }
      ns_ix = (int)ns->ix;
    }
    uint32_t lo = 0, hi = SPK_SRV_NPART - 1;
    if (strcmp(argv[2], "all") != 0) {
      char *dash = strchr(argv[2], '-');
      if (dash) *dash = '\0';
      if (parse_u32(argv[2], &lo) || (dash && parse_u32(dash + 1, &hi))) goto bad;
      if (!dash) hi = lo;
      if (lo > hi || hi >= SPK_SRV_NPART) goto bad;
    }
    int to = node_arg(argv[3]);
    if (to < 0) goto bad;
    if (spk_srv_cluster_migrate(&g_srv, ns_ix, lo, hi, (uint32_t)to, &msg) != 0) goto bad;
    reply("ok");
  } else if (!strcmp(cmd, "delay")) {
    if (ix < 0 || argc < 3 || parse_u32(argv[2], &v)) goto bad;
    atomic_store(&g_srv.nodes[ix].faults.delay_ms, v);
    reply("ok");
  } else if (!strcmp(cmd, "close_after")) {
    if (ix < 0 || argc < 3 || parse_u32(argv[2], &v)) goto bad;
    uint32_t mode = SPK_SRV_CLOSE_REPLY;
    if (argc > 3) {
      if (!strcmp(argv[3], "drop")) mode = SPK_SRV_CLOSE_DROP;
      else if (strcmp(argv[3], "reply") != 0) goto bad;
    }
    atomic_store(&g_srv.nodes[ix].faults.close_mode, mode);
    atomic_store(&g_srv.nodes[ix].faults.close_after, (int64_t)v);
    reply("ok");
  } else if (!strcmp(cmd, "fail_next")) {
    if (ix < 0 || argc < 3 || parse_u32(argv[2], &v) || v > 255 ||
        (argc > 3 && parse_u32(argv[3], &cnt)))
      goto bad;
    atomic_store(&g_srv.nodes[ix].faults.fail_code, v);
    atomic_store(&g_srv.nodes[ix].faults.fail_count, (int32_t)cnt);
    reply("ok");
  } else if (!strcmp(cmd, "corrupt_next")) {
    static const char *const modes[] = {"", "garbage", "truncate", "type",
                                        "version", "oversize"};
    if (ix < 0 || argc < 3) goto bad;
    uint32_t mode = 0;
    for (uint32_t m = 1; m < 6; m++)
      if (!strcmp(argv[2], modes[m])) mode = m;
    uint32_t target = SPK_SRV_TARGET_MSG;
    if (!mode || (argc > 3 && parse_u32(argv[3], &cnt))) goto bad;
    if (argc > 4) {
      if (!strcmp(argv[4], "info")) target = SPK_SRV_TARGET_INFO;
      else if (!strcmp(argv[4], "any")) target = SPK_SRV_TARGET_ANY;
      else if (strcmp(argv[4], "msg") != 0) goto bad;
    }
    spk_srv_faults *f = &g_srv.nodes[ix].faults;
    atomic_store(&f->corrupt_mode, mode);
    atomic_store(&f->corrupt_target, target);
    atomic_store(&f->corrupt_count, (int32_t)cnt);
    reply("ok");
  } else if (!strcmp(cmd, "clear")) {
    if (ix < 0) goto bad;
    spk_srv_faults *f = &g_srv.nodes[ix].faults;
    atomic_store(&f->delay_ms, 0);
    atomic_store(&f->close_after, 0);
    atomic_store(&f->fail_count, 0);
    atomic_store(&f->corrupt_count, 0);
    reply("ok");
  } else if (!strcmp(cmd, "rebalance_delay")) {
    uint32_t m = 0;
    if (argc < 2 || parse_u32(argv[1], &v) || (argc > 2 && parse_u32(argv[2], &m)))
      goto bad;
    pthread_mutex_lock(&g_srv.cluster_lock);
    g_srv.cfg.reform_ms = v;
    g_srv.cfg.migrate_ms = m;
    pthread_mutex_unlock(&g_srv.cluster_lock);
    reply("ok");
  } else {
    msg = "unknown command";
    goto bad;
  }
  return true;
bad:
  reply("error %s", msg);
  return true;
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
  spk_srv_cfg cfg;
  if (parse_args(argc, argv, &cfg) != 0) {
    fputs(usage, stderr);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  spk_srv *s = &g_srv;
  s->cfg = cfg;
  s->start_ms = spk_srv_mono_ms();
  s->n_ns = cfg.n_ns;
  for (uint32_t i = 0; i < cfg.n_ns; i++) {
    s->ns[i] = spk_srv_ns_create(&cfg.ns[i], i);
    if (!s->ns[i]) {
      fprintf(stderr, "cspike-server: out of memory\n");
      return 1;
    }
  }
  s->n_nodes = cfg.n_nodes;
  g_epfd = epoll_create1(EPOLL_CLOEXEC);
  for (uint32_t i = 0; i < cfg.n_nodes; i++) {
    spk_srv_node *n = &s->nodes[i];
    n->ix = i;
    n->port = cfg.ports[i];
    n->id = cfg.node_ids[i];
    n->listen_fd = listen_on(&n->port);
    if (n->listen_fd < 0) {
      fprintf(stderr, "cspike-server: cannot listen on 127.0.0.1:%u: %s\n",
              cfg.ports[i], strerror(errno));
      return 1;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = i + 1u};
    epoll_ctl(g_epfd, EPOLL_CTL_ADD, n->listen_fd, &e);
  }
  if (spk_srv_cluster_init(s) != 0 || spk_srv_net_start(s, cfg.threads) != 0) {
    fprintf(stderr, "cspike-server: start-up failed\n");
    return 1;
  }
  struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0};
  epoll_ctl(g_epfd, EPOLL_CTL_ADD, STDIN_FILENO, &e);
  {
    spk_buf b = {0};
    spk_srv_buf_str(&b, "{\"nodes\":[");
    for (uint32_t i = 0; i < s->n_nodes; i++)
      spk_srv_buf_printf(&b, "%s{\"name\":\"%s\",\"port\":%u}", i ? "," : "",
                         s->nodes[i].name, s->nodes[i].port);
    spk_srv_buf_printf(&b, "],\"pid\":%d}", (int)getpid());
    reply("%.*s", (int)b.len, (const char *)b.data);
    spk_buf_free(&b);
  }

  char line[4096];
  size_t llen = 0;
  bool running = true;
  uint64_t next_nsup = spk_srv_mono_ms() + 1000;
  while (running) {
    int64_t t = spk_srv_cluster_tick(s);
    uint64_t now = spk_srv_mono_ms();
    if (now >= next_nsup) {
      for (uint32_t i = 0; i < s->n_ns; i++)
        if (s->ns[i]->cfg.nsup_period) spk_srv_nsup(s->ns[i]);
      next_nsup = now + 1000;
    }
    int64_t wait = (int64_t)(next_nsup - now);
    if (t >= 0 && t < wait) wait = t;
    struct epoll_event evs[16];
    int n = epoll_wait(g_epfd, evs, 16, (int)wait);
    for (int i = 0; i < n && running; i++) {
      uint64_t tag = evs[i].data.u64;
      if (tag) {
        spk_srv_node *node = &s->nodes[tag - 1];
        if (node->listen_fd >= 0) accept_all(node);
        continue;
      }
      ssize_t r = read(STDIN_FILENO, line + llen, sizeof line - 1 - llen);
      if (r <= 0) {
        if (r < 0 && errno == EINTR) continue;
        running = false; /* EOF: the owner is gone */
        break;
      }
      llen += (size_t)r;
      char *p = line, *nl;
      while (running && (nl = memchr(p, '\n', llen - (size_t)(p - line)))) {
        *nl = '\0';
        running = handle_line(p);
        p = nl + 1;
      }
      llen -= (size_t)(p - line);
      memmove(line, p, llen);
      if (llen == sizeof line - 1) llen = 0; /* overlong line: drop it */
    }
  }
  spk_srv_net_stop();
  for (uint32_t i = 0; i < s->n_nodes; i++)
    if (s->nodes[i].listen_fd >= 0) close(s->nodes[i].listen_fd);
  close(g_epfd);
  spk_srv_cluster_free(s);
  for (uint32_t i = 0; i < s->n_ns; i++) spk_srv_ns_destroy(s->ns[i]);
  return 0;
}
