/* Service threads (net.c) with real loopback sockets: nodes killed and
 * restarted, and the server stopped, while client threads keep pipelined
 * gets / puts / info requests in flight on many connections.
 *
 * Regression: a Q_KILL drained from the eventfd in the middle of an epoll
 * batch closed (and freed) connections whose events came later in the same
 * batch, which were then used (heap-use-after-free, a segfault about one
 * kill in six with a client under load).  ASan builds catch any such access
 * directly; every build checks that answers stay well-formed, that no
 * connection is left without an answer, and that every connection handed
 * to the service threads is closed again.
 *
 * SPK_NET_STRESS_ITERS sets the number of kill / restart rounds. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "../net.h"
#include "fixture.h"

#define N_NODES 3
#define N_CLIENTS 6

/* What the clients share.  In the server only the control thread hands
 * connections over, and never after spk_srv_net_stop(); here clients do it
 * under `lock`, which the test takes to set `stopped` before stopping. */
typedef struct shared {
  spk_srv *s;
  _Atomic bool stop;
  pthread_mutex_t lock;
  bool stopped;
} shared;

typedef struct client {
  spk_srv *s;
  shared *sh;
  pthread_t thr;
  uint32_t id;
  uint64_t rng;
  int lfd; /* own listener: connect, accept, hand the server end over */
  uint16_t port;
  uint64_t answers, closed_by_server, conns;
  const char *error; /* first protocol error seen, or NULL */
} client;

static uint32_t rnd(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return (uint32_t)(*x >> 32);
}

static void pause_us(uint32_t us) {
  struct timespec ts = {0, (long)us * 1000};
  nanosleep(&ts, NULL);
}

static int iters(int dflt) {
  const char *e = getenv("SPK_NET_STRESS_ITERS");
  int v = e ? atoi(e) : 0;
  return v > 0 ? v : dflt;
}

static void listener(client *c) {
  c->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  SPK_ASSERT(c->lfd >= 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  SPK_ASSERT_OK(bind(c->lfd, (struct sockaddr *)&sa, sizeof sa));
  SPK_ASSERT_OK(listen(c->lfd, 16));
  socklen_t len = sizeof sa;
  SPK_ASSERT_OK(getsockname(c->lfd, (struct sockaddr *)&sa, &len));
  c->port = ntohs(sa.sin_port);
}

/* A connected client socket whose server end belongs to node `ix` (as the
 * control thread's accept_all does), or -1. */
static int open_conn(client *c, uint32_t ix) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(c->port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  int sfd = accept4(c->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (sfd < 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  pthread_mutex_lock(&c->sh->lock);
  bool stopped = c->sh->stopped;
  if (!stopped) spk_srv_net_add(sfd, ix);
  pthread_mutex_unlock(&c->sh->lock);
  if (stopped) {
    close(sfd);
    close(fd);
    return -1;
  }
  return fd;
}

static void add_info(spk_buf *b) {
  static const char body[] = "node\npartition-generation\n";
  uint8_t *h = spk_buf_extend(b, 8);
  SPK_ASSERT(h != NULL);
  spk_proto_write(h, SPK_PROTO_INFO, sizeof body - 1);
  SPK_ASSERT_OK(spk_buf_append(b, body, sizeof body - 1));
}

static void add_rw(spk_buf *b, uint32_t key, bool write) {
  spk_msg_header h = {0};
  h.info1 = write ? 0 : SPK_INFO1_READ | SPK_INFO1_GET_ALL;
  h.info2 = write ? SPK_INFO2_WRITE : 0;
  h.transaction_ttl = 1000;
  size_t start = spk_msg_begin(b, &h);
  uint8_t d[20];
  fx_digest(d, key);
  spk_msg_field(b, SPK_FIELD_NAMESPACE, "test", 4);
  spk_msg_field(b, SPK_FIELD_SETNAME, "s", 1);
  spk_msg_field(b, SPK_FIELD_DIGEST, d, 20);
  if (write) spk_msg_op_int(b, SPK_OP_WRITE, "v", 1, (int64_t)key);
  SPK_ASSERT_OK(spk_msg_end(b, start, 3, write ? 1 : 0));
}

/* Read exactly n bytes: 1 done, 0 closed by the server (EOF / RST),
 * -1 no answer within 10 s. */
static int read_full(int fd, uint8_t *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    int r = poll(&pf, 1, 10000);
    if (r == 0) return -1;
    if (r < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    ssize_t k = recv(fd, p + got, n - got, 0);
    if (k == 0) return 0;
    if (k < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return 0; /* ECONNRESET: killed node */
    }
    got += (size_t)k;
  }
  return 1;
}

/* One connection: bursts of pipelined requests until the server closes it,
 * a burst count is reached, or the client drops it with answers unread. */
static void run_conn(client *c, int fd) {
  spk_buf req = {0};
  uint8_t *body = NULL;
  size_t body_cap = 0;
  uint32_t bursts = 1 + rnd(&c->rng) % 40;
  for (uint32_t b = 0; b < bursts && !atomic_load(&c->sh->stop); b++) {
    uint32_t n = 1 + rnd(&c->rng) % 8;
    req.len = 0;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t r = rnd(&c->rng);
      if (r % 5 == 0) add_info(&req);
      else add_rw(&req, c->id * 1000 + r % 200, (r >> 8) & 1);
    }
    if (send(fd, req.data, req.len, MSG_NOSIGNAL) != (ssize_t)req.len) {
      c->closed_by_server++;
      break;
    }
    /* Sometimes leave with the answers unread (the server sees RST). */
    if (rnd(&c->rng) % 64 == 0) break;
    for (uint32_t i = 0; i < n; i++) {
      uint8_t hdr[8];
      int r = read_full(fd, hdr, 8);
      if (r < 0 && !c->error) c->error = "no answer within 10 s";
      if (r <= 0) goto closed;
      spk_proto p;
      spk_proto_read(hdr, &p);
      if (p.version != 2 || (p.type != SPK_PROTO_INFO && p.type != SPK_PROTO_MSG) ||
          p.size > (1u << 20)) {
        if (!c->error) c->error = "malformed answer header";
        goto closed;
      }
      if (p.size > body_cap) {
        body_cap = p.size;
        body = realloc(body, body_cap);
        SPK_ASSERT(body != NULL);
      }
      r = read_full(fd, body, p.size);
      if (r < 0 && !c->error) c->error = "no answer body within 10 s";
      if (r <= 0) goto closed;
      if (p.type == SPK_PROTO_MSG) {
        spk_msg_header h;
        if (p.size < 22) {
          if (!c->error) c->error = "short as_msg answer";
          goto closed;
        }
        spk_msg_header_read(body, &h);
        /* 0 / 2 (not found yet), or 11 from a restarted node before its
         * final view. */
        if (h.result_code != 0 && h.result_code != 2 && h.result_code != 11 &&
            !c->error)
          c->error = "unexpected result code";
      }
      c->answers++;
    }
  }
  goto done;
closed:
  c->closed_by_server++;
done:
  spk_buf_free(&req);
  free(body);
  close(fd);
}

static void *client_main(void *arg) {
  client *c = arg;
  while (!atomic_load(&c->sh->stop)) {
    int fd = open_conn(c, rnd(&c->rng) % c->s->n_nodes);
    if (fd < 0) continue;
    c->conns++;
    run_conn(c, fd);
  }
  return NULL;
}

static void start_clients(shared *sh, client *cl) {
  for (uint32_t i = 0; i < N_CLIENTS; i++) {
    cl[i] = (client){.s = sh->s, .sh = sh, .id = i,
                     .rng = 0x9E3779B97F4A7C15ull * (i + 1)};
    listener(&cl[i]);
    SPK_ASSERT_OK(pthread_create(&cl[i].thr, NULL, client_main, &cl[i]));
  }
}

static void join_clients(client *cl, uint64_t *answers, uint64_t *conns) {
  *answers = *conns = 0;
  for (uint32_t i = 0; i < N_CLIENTS; i++) {
    pthread_join(cl[i].thr, NULL);
    close(cl[i].lfd);
    if (cl[i].error) SPK_FAIL("client %u: %s", i, cl[i].error);
    *answers += cl[i].answers;
    *conns += cl[i].conns;
  }
}

static void shared_init(shared *sh, spk_srv *s) {
  sh->s = s;
  atomic_store(&sh->stop, false);
  pthread_mutex_init(&sh->lock, NULL);
  sh->stopped = false;
}

/* No more hand-overs, then stop the service threads. */
static void stop_net(shared *sh) {
  pthread_mutex_lock(&sh->lock);
  sh->stopped = true;
  pthread_mutex_unlock(&sh->lock);
  spk_srv_net_stop();
}

static uint64_t open_conns(spk_srv *s) {
  uint64_t open = 0;
  for (uint32_t i = 0; i < s->n_nodes; i++)
    open += atomic_load(&s->nodes[i].conns_opened) -
            atomic_load(&s->nodes[i].conns_closed);
  return open;
}

/* One request on a fresh connection to node ix gets an answer. */
static void check_node_answers(client *c, uint32_t ix) {
  int fd = open_conn(c, ix);
  SPK_ASSERT(fd >= 0);
  spk_buf b = {0};
  add_info(&b);
  SPK_ASSERT_EQ(send(fd, b.data, b.len, MSG_NOSIGNAL), (ssize_t)b.len);
  uint8_t hdr[8];
  SPK_ASSERT_EQ(read_full(fd, hdr, 8), 1);
  SPK_ASSERT_EQ(hdr[1], SPK_PROTO_INFO);
  spk_buf_free(&b);
  close(fd);
}

/* The control thread's kill (main.c): cluster state, then connections. */
static void kill_node(spk_srv *s, uint32_t ix) {
  const char *msg = NULL;
  SPK_ASSERT_OK(spk_srv_cluster_kill(s, ix, &msg));
  spk_srv_net_kill(ix);
}

static void restart_node(spk_srv *s, uint32_t ix) {
  const char *msg = NULL;
  SPK_ASSERT_OK(spk_srv_cluster_restart(s, ix, &msg));
}

static void kill_restart_rounds(uint32_t reform_ms, uint32_t migrate_ms) {
  spk_srv *s = fx_server(N_NODES, 2);
  s->cfg.reform_ms = reform_ms;
  s->cfg.migrate_ms = migrate_ms;
  SPK_ASSERT_OK(spk_srv_net_start(s, 2));
  shared sh;
  shared_init(&sh, s);
  client cl[N_CLIENTS];
  start_clients(&sh, cl);
  uint64_t rng = 12345;
  int rounds = iters(300);
  for (int i = 0; i < rounds; i++) {
    uint32_t a = (uint32_t)i % N_NODES;
    kill_node(s, a);
    /* Every fourth round a second node goes down as well. */
    uint32_t b = (a + 1) % N_NODES;
    bool two = i % 4 == 3;
    if (two) kill_node(s, b);
    pause_us(rnd(&rng) % 3000);
    (void)spk_srv_cluster_tick(s);
    restart_node(s, a);
    /* Restart right behind the kill (Q_KILL still queued) or later. */
    if (two) {
      if (rnd(&rng) & 1) pause_us(rnd(&rng) % 2000);
      restart_node(s, b);
    }
    pause_us(rnd(&rng) % 3000);
    (void)spk_srv_cluster_tick(s);
  }
  atomic_store(&sh.stop, true);
  uint64_t answers, conns;
  join_clients(cl, &answers, &conns);
  fprintf(stderr, "%d rounds: %" PRIu64 " connections, %" PRIu64 " answers\n",
          rounds, conns, answers);
  SPK_ASSERT(answers > 0);
  /* Every node serves again after the last restart. */
  client probe = {.s = s, .sh = &sh};
  listener(&probe);
  for (uint32_t i = 0; i < N_NODES; i++) check_node_answers(&probe, i);
  close(probe.lfd);
  /* Every connection the clients closed is closed by its service thread
   * too (they see EOF on their next epoll_wait); wait for that. */
  for (int w = 0; w < 10000 && open_conns(s) != 0; w++) pause_us(1000);
  SPK_ASSERT_EQ(open_conns(s), 0);
  stop_net(&sh);
  pthread_mutex_destroy(&sh.lock);
  fx_free(s);
}

SPK_TEST(kill_restart_under_load) { kill_restart_rounds(0, 0); }

/* Kills and restarts while a previous loss is still in its unstable /
 * reformed phases. */
SPK_TEST(kill_restart_under_load_with_phases) { kill_restart_rounds(1, 2); }

/* Stop with connections open and requests in flight: every connection is
 * closed by its own thread, nothing is used after the stop. */
SPK_TEST(stop_with_open_connections) {
  int rounds = iters(300) / 10;
  if (rounds < 3) rounds = 3;
  for (int r = 0; r < rounds; r++) {
    spk_srv *s = fx_server(N_NODES, 2);
    SPK_ASSERT_OK(spk_srv_net_start(s, 2));
    shared sh;
    shared_init(&sh, s);
    client cl[N_CLIENTS];
    start_clients(&sh, cl);
    pause_us(2000 + (uint32_t)r * 500);
    if (r & 1) kill_node(s, (uint32_t)r % N_NODES); /* a Q_KILL queued too */
    stop_net(&sh);
    SPK_ASSERT_EQ(open_conns(s), 0);
    atomic_store(&sh.stop, true);
    /* Clients see their connections closed; none may hang. */
    uint64_t answers, conns;
    join_clients(cl, &answers, &conns);
    pthread_mutex_destroy(&sh.lock);
    fx_free(s);
  }
}
