/*
 * cspike-bench-c - the pure-C baseline of `python -m cspike bench`.
 *
 * The same workload as the Python sync fast path (random keys in 0..N-1, a
 * read/write mix, one bin), driven straight through the core library: one
 * cluster, N threads, each encoding requests with the codec's message
 * writer into its own buffers and running them with spk_sync_execute.  The
 * requests are byte for byte what SyncSession.get / .put send with
 * Behavior.DEFAULT (same header bits, fields, timeouts), so the difference
 * to the Python rows is the cost of the Python layer.
 *
 * With --inflight N the same requests run on the core's event-loop driver
 * instead (spk_loop: one epoll set, non-blocking sockets, N commands in
 * flight per loop, --loops threads each with its own loop): the C
 * counterpart of the async and AsyncPool rows.
 *
 * Output: one JSON object per line on stdout, the protocol of the Python
 * bench workers ({"ev": "measure"}, {"ev": "progress"}, {"ev": "done"},
 * {"ev": "result", ...}); `--populate` writes every key once first.
 *
 * CPU is getrusage(RUSAGE_SELF) over the measured window: all threads,
 * including the cluster's tend thread.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cluster/spk_cluster.h"
#include "cmd/spk_cmd.h"
#include "codec/spk_digest.h"
#include "codec/spk_proto.h"
#include "drivers/spk_loop.h"
#include "drivers/spk_sync.h"

/* ---- histogram: the layout of cspike._core.Histogram (src/python/hist.c),
 * so the Python side can rebuild it with Histogram.from_snapshot ---------- */

#define H_SUB_BITS 7
#define H_SUB (1u << H_SUB_BITS)
#define H_HALF (H_SUB >> 1)
#define H_MAX_BITS 36
#define H_MAX_VALUE ((1ull << H_MAX_BITS) - 1)
#define H_N (H_SUB + (H_MAX_BITS - H_SUB_BITS) * H_HALF)

typedef struct hist {
  uint64_t counts[H_N];
  uint64_t min, max, sum;
} hist;

static uint32_t bucket_of(uint64_t v) {
  if (v < H_SUB) return (uint32_t)v;
  if (v > H_MAX_VALUE) v = H_MAX_VALUE;
  int msb = 63 - __builtin_clzll(v);
  int shift = msb - (H_SUB_BITS - 1);
  uint32_t top = (uint32_t)(v >> shift);
  return H_SUB + (uint32_t)(shift - 1) * H_HALF + (top - H_HALF);
}

static void bucket_range(uint32_t i, uint64_t *lo, uint64_t *hi) {
  if (i < H_SUB) {
    *lo = *hi = i;
    return;
  }
  uint32_t shift = (i - H_SUB) / H_HALF + 1;
  uint64_t top = (i - H_SUB) % H_HALF + H_HALF;
  *lo = top << shift;
  *hi = *lo + (1ull << shift) - 1;
}

static void hist_init(hist *h) {
  memset(h, 0, sizeof *h);
  h->min = UINT64_MAX;
}

static inline void hist_record(hist *h, uint64_t v) {
  h->counts[bucket_of(v)]++;
  h->sum += v;
  if (v < h->min) h->min = v;
  if (v > h->max) h->max = v;
}

static void hist_merge(hist *into, const hist *h) {
  for (uint32_t i = 0; i < H_N; i++) into->counts[i] += h->counts[i];
  into->sum += h->sum;
  if (h->min < into->min) into->min = h->min;
  if (h->max > into->max) into->max = h->max;
}

static uint64_t hist_percentile(const hist *h, double p) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < H_N; i++) n += h->counts[i];
  if (!n) return 0;
  if (p <= 0) return h->min;
  if (p >= 100) return h->max;
  double want = p / 100.0 * (double)n;
  uint64_t rank = (uint64_t)want;
  if ((double)rank < want) rank++;
  if (!rank) rank = 1;
  uint64_t seen = 0;
  for (uint32_t i = 0; i < H_N; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t lo, hi;
      bucket_range(i, &lo, &hi);
      uint64_t mid = lo + (hi - lo) / 2;
      if (mid < h->min) mid = h->min;
      if (mid > h->max) mid = h->max;
      return mid;
    }
  }
  return h->max;
}

/* ---- options -------------------------------------------------------------- */

typedef struct opts {
  char hosts[1024];
  char ns[SPK_NAMESPACE_MAX + 1];
  char set[SPK_SET_MAX + 1];
  char bin[SPK_BIN_NAME_MAX + 1];
  long keys;
  int read_pct;
  int payload_int; /* 0: string of `size` chars, 1: 8-byte int */
  int size;
  int threads;
  double duration, warmup;
  int populate;
  int progress;
  uint32_t max_conns;
  int inflight; /* > 0: event-loop driver with this many commands per loop */
  int loops;
} opts;

static opts O = {
    .hosts = "127.0.0.1:3000", .ns = "test", .set = "bench", .bin = "b0",
    .keys = 100000, .read_pct = 50, .payload_int = 0, .size = 50, .threads = 4,
    .duration = 5, .warmup = 1, .populate = 0, .progress = 1, .max_conns = 0,
    .inflight = 0, .loops = 1,
};

static spk_cluster *cluster;
static uint8_t (*digests)[SPK_DIGEST_SIZE];
static char *payload;
static spk_policy read_pol, write_pol;
/* The int payload: the same value the Python workers write. */
#define INT_PAYLOAD 1234567890123ll

/* ---- requests: what SyncSession.get / .put encode (src/python/session.c) -- */

static inline uint32_t server_timeout(const spk_policy *p) {
  if (p->socket_timeout_ms &&
      (p->total_timeout_ms == 0 || p->socket_timeout_ms < p->total_timeout_ms))
    return p->socket_timeout_ms;
  return p->total_timeout_ms;
}

static int key_fields(spk_buf *tx, long k, bool send_key) {
  size_t ns_len = strlen(O.ns), set_len = strlen(O.set);
  if (spk_msg_field(tx, SPK_FIELD_NAMESPACE, O.ns, ns_len) ||
      spk_msg_field(tx, SPK_FIELD_SETNAME, O.set, set_len) ||
      spk_msg_field(tx, SPK_FIELD_DIGEST, digests[k], SPK_DIGEST_SIZE))
    return -1;
  if (!send_key) return 3;
  uint8_t *p = spk_msg_field_reserve(tx, SPK_FIELD_KEY, 9);
  if (!p) return -1;
  p[0] = SPK_PARTICLE_INTEGER;
  spk_put_be64(p + 1, (uint64_t)k);
  return 4;
}

static int encode(spk_buf *tx, long k, bool write) {
  const spk_policy *p = write ? &write_pol : &read_pol;
  spk_msg_header h;
  memset(&h, 0, sizeof h);
  h.header_sz = SPK_MSG_HEADER_SIZE;
  if (write) {
    h.info2 = SPK_INFO2_WRITE;
    h.info3 = p->commit_level ? SPK_INFO3_COMMIT_MASTER : 0;
  } else {
    h.info1 = SPK_INFO1_READ | SPK_INFO1_GET_ALL;
    h.record_ttl = p->read_touch_ttl_percent;
  }
  h.transaction_ttl = server_timeout(p);
  tx->len = 0;
  size_t start = spk_msg_begin(tx, &h);
  if (start == (size_t)-1) return -1;
  int nf = key_fields(tx, k, write && p->send_key);
  if (nf < 0) return -1;
  int nops = 0;
  if (write) {
    size_t bl = strlen(O.bin);
    int rc = O.payload_int
                 ? spk_msg_op_int(tx, SPK_OP_WRITE, O.bin, bl, INT_PAYLOAD)
                 : spk_msg_op_raw(tx, SPK_OP_WRITE, SPK_PARTICLE_STRING, O.bin, bl,
                                  payload, (size_t)O.size);
    if (rc) return -1;
    nops = 1;
  }
  return spk_msg_end(tx, start, (uint16_t)nf, (uint16_t)nops);
}

static void prepare(spk_cmd *cmd, spk_buf *tx, spk_buf *rx, long k, bool write) {
  spk_cmd_init(cmd, cluster, write ? &write_pol : &read_pol, SPK_CMD_SINGLE, tx, rx);
  rx->len = 0;
  cmd->is_write = write;
  cmd->ns = O.ns;
  cmd->ns_len = (uint8_t)strlen(O.ns);
  cmd->pid = spk_partition_id(digests[k]);
}

/* Outcome of a finished command: 0, or its error in *err. */
static int outcome(const spk_cmd *cmd, bool write, spk_error *err) {
  int rc = cmd->err.code;
  if (rc != 0) *err = cmd->err;
  else if (!write && cmd->resp.h.n_ops == 0)
    return spk_error_set(err, SPK_ERR_PROTOCOL, "read returned no bins");
  return rc;
}

static int run_one(spk_buf *tx, spk_buf *rx, long k, bool write, spk_error *err) {
  if (encode(tx, k, write) != 0) return spk_error_set(err, SPK_ERR_CLIENT, "encode failed");
  spk_cmd cmd;
  prepare(&cmd, tx, rx, k, write);
  spk_sync_execute(&cmd);
  return outcome(&cmd, write, err);
}

/* ---- workers ---------------------------------------------------------------- */

typedef struct worker {
  pthread_t tid;
  int idx;
  uint64_t rng;
  uint64_t t_measure, t_end; /* ns */
  long pop_from, pop_to;     /* populate stripe */
  _Atomic uint64_t progress; /* ops in the measured phase so far */
  uint64_t reads, writes, not_found, errors, timeouts;
  uint64_t stopped_ns;
  int first_error;
  char first_error_msg[SPK_ERROR_MSG_SIZE];
  hist h;
  /* event-loop mode */
  spk_loop *loop;
  int to_start; /* commands that finished and may be replaced */
} worker;

static inline uint64_t xorshift(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

static void note_error(worker *w, const spk_error *e) {
  if (e->code == SPK_ERR_TIMEOUT) w->timeouts++;
  else w->errors++;
  if (!w->first_error) {
    w->first_error = e->code;
    snprintf(w->first_error_msg, sizeof w->first_error_msg, "%s", e->message);
  }
}

/* Count one finished command that started at t0 and ended at t. */
static inline void account(worker *w, uint64_t t0, uint64_t t, bool write, int rc,
                           const spk_error *err) {
  if (t0 < w->t_measure) return; /* warm-up */
  if (rc == 0 || (!write && rc == SPK_ERR_RECORD_NOT_FOUND)) {
    hist_record(&w->h, t - t0);
    if (write) w->writes++;
    else w->reads++;
    if (rc) w->not_found++;
    atomic_store_explicit(&w->progress, w->reads + w->writes, memory_order_relaxed);
  } else {
    note_error(w, err);
  }
}

/* ---- event-loop driver: N commands in flight on one thread ------------------ */

typedef struct aslot {
  worker *w;
  uint64_t t0;
  long k;
  bool write;
} aslot;

static void loop_done(spk_acmd *a) {
  aslot *sl = a->udata;
  worker *w = sl->w;
  spk_error err;
  int rc = outcome(a->cmdp, sl->write, &err);
  account(w, sl->t0, spk_now_ns(), sl->write, rc, &err);
  spk_loop_acmd_free(w->loop, a);
  w->to_start++; /* restarted by the loop, never from inside a callback */
}

static void loop_start_one(worker *w, uint64_t now) {
  spk_acmd *a = spk_loop_acmd_alloc(w->loop);
  if (!a) {
    spk_error e;
    spk_error_set(&e, SPK_ERR_CLIENT, "out of memory");
    note_error(w, &e);
    return;
  }
  uint64_t r = xorshift(&w->rng);
  aslot *sl = a->udata;
  sl->w = w;
  sl->k = (long)((r >> 8) % (uint64_t)O.keys);
  sl->write = (int)(r % 100) >= O.read_pct;
  sl->t0 = now;
  if (encode(&a->tx, sl->k, sl->write) != 0) {
    spk_error e;
    spk_error_set(&e, SPK_ERR_CLIENT, "encode failed");
    note_error(w, &e);
    spk_loop_acmd_free(w->loop, a);
    return;
  }
  prepare(&a->cmd, &a->tx, &a->rx, sl->k, sl->write);
  a->on_done = loop_done;
  spk_loop_start(w->loop, a);
}

static void *work_loop(void *arg) {
  worker *w = arg;
  spk_error err;
  w->loop = spk_loop_new(cluster, sizeof(aslot), &err);
  if (!w->loop) {
    note_error(w, &err);
    return NULL;
  }
  int efd = spk_loop_fd(w->loop);
  w->to_start = O.inflight;
  uint64_t t = spk_now_ns();
  for (;;) {
    if (t < w->t_end) {
      while (w->to_start > 0) {
        w->to_start--;
        loop_start_one(w, t);
      }
    } else if (spk_loop_inflight(w->loop) == 0) {
      break;
    }
    int timeout_ms = 100;
    uint64_t next = spk_loop_next_timer(w->loop);
    if (next) {
      uint64_t now = spk_now_ns();
      timeout_ms = next <= now ? 0 : (int)((next - now) / 1000000u) + 1;
      if (timeout_ms > 100) timeout_ms = 100;
    }
    struct epoll_event ev;
    int n = epoll_wait(efd, &ev, 1, timeout_ms);
    if (n > 0) spk_loop_run_ready(w->loop);
    t = spk_now_ns();
    spk_loop_run_timers(w->loop, t);
  }
  w->stopped_ns = spk_now_ns();
  spk_loop_free(w->loop);
  return NULL;
}

static void *work(void *arg) {
  worker *w = arg;
  spk_buf tx = {0}, rx = {0};
  spk_error err;
  if (w->pop_to > w->pop_from) {
    for (long k = w->pop_from; k < w->pop_to; k++)
      if (run_one(&tx, &rx, k, true, &err) != 0) note_error(w, &err);
    goto out;
  }
  uint64_t t = spk_now_ns();
  while (t < w->t_end) {
    uint64_t r = xorshift(&w->rng);
    long k = (long)((r >> 8) % (uint64_t)O.keys);
    bool write = (int)(r % 100) >= O.read_pct;
    uint64_t t0 = t;
    int rc = run_one(&tx, &rx, k, write, &err);
    t = spk_now_ns();
    account(w, t0, t, write, rc, &err);
  }
  w->stopped_ns = t;
out:
  spk_buf_free(&tx);
  spk_buf_free(&rx);
  return NULL;
}

/* ---- main ------------------------------------------------------------------------ */

static double cpu_s(const struct rusage *r, int sys) {
  const struct timeval *tv = sys ? &r->ru_stime : &r->ru_utime;
  return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void sleep_until(uint64_t t) {
  for (;;) {
    uint64_t now = spk_now_ns();
    if (now >= t) return;
    uint64_t d = t - now;
    struct timespec ts = {(time_t)(d / 1000000000u), (long)(d % 1000000000u)};
    nanosleep(&ts, NULL);
  }
}

static void json_str(const char *s) {
  putchar('"');
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') printf("\\%c", c);
    else if (c < 0x20) printf("\\u%04x", c);
    else putchar(c);
  }
  putchar('"');
}

static int parse_hosts(const char *s, spk_host *out, int max) {
  int n = 0;
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", s);
  for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok && n < max;
       tok = strtok_r(NULL, ",", &save)) {
    char *colon = strrchr(tok, ':');
    int port = 3000;
    if (colon) {
      *colon = '\0';
      port = atoi(colon + 1);
    }
    if (tok[0] == '[') {
      tok++;
      char *e = strchr(tok, ']');
      if (e) *e = '\0';
    }
    if (!*tok || port <= 0 || port > 65535) return -1;
    snprintf(out[n].name, sizeof out[n].name, "%s", tok);
    out[n].port = (uint16_t)port;
    n++;
  }
  return n;
}

static void usage(void) {
  fprintf(stderr,
          "usage: cspike-bench-c [--hosts H:P,...] [--namespace test] [--set bench]\n"
          "  [--keys 100000] [--read-pct 50] [--payload str|int] [--size 50]\n"
          "  [--threads 4] [--duration 5] [--warmup 1] [--populate] [--no-progress]\n"
          "  [--max-conns N] [--inflight N [--loops L]]\n"
          "--inflight: N commands in flight per event loop (spk_loop driver), --loops\n"
          "event loops (threads); without it: --threads blocking threads\n");
}

int main(int argc, char **argv) {
  static const struct option longopts[] = {
      {"hosts", required_argument, 0, 'H'},    {"namespace", required_argument, 0, 'n'},
      {"set", required_argument, 0, 's'},      {"keys", required_argument, 0, 'k'},
      {"read-pct", required_argument, 0, 'r'}, {"payload", required_argument, 0, 'p'},
      {"size", required_argument, 0, 'z'},     {"threads", required_argument, 0, 't'},
      {"duration", required_argument, 0, 'd'}, {"warmup", required_argument, 0, 'w'},
      {"populate", no_argument, 0, 'P'},       {"no-progress", no_argument, 0, 'q'},
      {"max-conns", required_argument, 0, 'm'}, {"inflight", required_argument, 0, 'i'},
      {"loops", required_argument, 0, 'l'},    {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    switch (c) {
      case 'H': snprintf(O.hosts, sizeof O.hosts, "%s", optarg); break;
      case 'n': snprintf(O.ns, sizeof O.ns, "%s", optarg); break;
      case 's': snprintf(O.set, sizeof O.set, "%s", optarg); break;
      case 'k': O.keys = atol(optarg); break;
      case 'r': O.read_pct = atoi(optarg); break;
      case 'p': O.payload_int = strcmp(optarg, "int") == 0; break;
      case 'z': O.size = atoi(optarg); break;
      case 't': O.threads = atoi(optarg); break;
      case 'd': O.duration = atof(optarg); break;
      case 'w': O.warmup = atof(optarg); break;
      case 'P': O.populate = 1; break;
      case 'q': O.progress = 0; break;
      case 'm': O.max_conns = (uint32_t)atol(optarg); break;
      case 'i': O.inflight = atoi(optarg); break;
      case 'l': O.loops = atoi(optarg); break;
      default: usage(); return c == 'h' ? 0 : 2;
    }
  }
  if (O.keys <= 0 || O.threads <= 0 || O.threads > 1024 || O.size < 0 ||
      O.read_pct < 0 || O.read_pct > 100 || O.duration < 0 || O.warmup < 0 ||
      O.inflight < 0 || O.inflight > 100000 || O.loops < 1 || O.loops > 1024) {
    usage();
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);

  spk_host seeds[64];
  int n_seeds = parse_hosts(O.hosts, seeds, 64);
  if (n_seeds <= 0) {
    fprintf(stderr, "bad --hosts %s\n", O.hosts);
    return 2;
  }
  spk_cluster_config cfg;
  spk_cluster_config_init(&cfg);
  cfg.seeds = seeds;
  cfg.n_seeds = (uint32_t)n_seeds;
  if (O.max_conns) cfg.max_conns_per_node = O.max_conns;
  spk_error err;
  if (spk_cluster_create(&cfg, &cluster, &err) != 0) {
    printf("{\"ev\": \"error\", \"error\": ");
    json_str(err.message);
    printf("}\n");
    return 1;
  }

  /* Behavior.DEFAULT, as cspike compiles it for point reads and retryable
   * writes: 30 s total, 5 s socket, 2 retries, send_key, replica SEQUENCE. */
  spk_policy_init(&read_pol);
  read_pol.total_timeout_ms = 30000;
  read_pol.socket_timeout_ms = 5000;
  read_pol.max_retries = 2;
  read_pol.replica = SPK_REPLICA_SEQUENCE;
  read_pol.send_key = true;
  write_pol = read_pol;

  digests = malloc((size_t)O.keys * sizeof *digests);
  payload = malloc((size_t)O.size + 1);
  if (!digests || !payload) return 1;
  for (long k = 0; k < O.keys; k++)
    spk_key_digest_int(O.set, strlen(O.set), k, digests[k]);
  for (int i = 0; i < O.size; i++) payload[i] = "0123456789abcdef"[(i * 7 + 3) & 15];
  payload[O.size] = '\0';

  worker *ws = calloc((size_t)O.threads, sizeof *ws);
  if (!ws) return 1;

  if (O.populate) {
    uint64_t t0 = spk_now_ns();
    long per = (O.keys + O.threads - 1) / O.threads;
    for (int i = 0; i < O.threads; i++) {
      ws[i].pop_from = i * per;
      ws[i].pop_to = (i + 1) * per < O.keys ? (i + 1) * per : O.keys;
      pthread_create(&ws[i].tid, NULL, work, &ws[i]);
    }
    uint64_t errors = 0;
    for (int i = 0; i < O.threads; i++) {
      pthread_join(ws[i].tid, NULL);
      errors += ws[i].errors + ws[i].timeouts;
    }
    printf("{\"ev\": \"populated\", \"keys\": %ld, \"errors\": %llu, \"secs\": %.3f}\n",
           O.keys, (unsigned long long)errors, (double)(spk_now_ns() - t0) / 1e9);
    memset(ws, 0, (size_t)O.threads * sizeof *ws);
    if (O.duration <= 0) goto done;
  }

  {
    int n_workers = O.inflight ? O.loops : O.threads;
    if (n_workers > O.threads) {
      worker *more = realloc(ws, (size_t)n_workers * sizeof *ws);
      if (!more) return 1;
      ws = more;
    }
    memset(ws, 0, (size_t)n_workers * sizeof *ws);
    uint64_t start = spk_now_ns() + 20000000u; /* let every thread start */
    uint64_t t_measure = start + (uint64_t)(O.warmup * 1e9);
    uint64_t t_end = t_measure + (uint64_t)(O.duration * 1e9);
    for (int i = 0; i < n_workers; i++) {
      ws[i].idx = i;
      ws[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1) ^ (uint64_t)start;
      if (!ws[i].rng) ws[i].rng = 1;
      ws[i].t_measure = t_measure;
      ws[i].t_end = t_end;
      hist_init(&ws[i].h);
      pthread_create(&ws[i].tid, NULL, O.inflight ? work_loop : work, &ws[i]);
    }
    printf("{\"ev\": \"ready\"}\n");
    sleep_until(t_measure);
    struct rusage r0, r1;
    getrusage(RUSAGE_SELF, &r0);
    printf("{\"ev\": \"measure\"}\n");
    for (;;) {
      uint64_t now = spk_now_ns();
      if (now >= t_end) break;
      uint64_t next = now + 500000000u;
      sleep_until(next < t_end ? next : t_end);
      if (O.progress && spk_now_ns() < t_end) {
        uint64_t ops = 0;
        for (int i = 0; i < n_workers; i++)
          ops += atomic_load_explicit(&ws[i].progress, memory_order_relaxed);
        printf("{\"ev\": \"progress\", \"t\": %.3f, \"ops\": %llu}\n",
               (double)(spk_now_ns() - t_measure) / 1e9, (unsigned long long)ops);
      }
    }
    uint64_t stopped = 0;
    hist all;
    hist_init(&all);
    uint64_t reads = 0, writes = 0, nf = 0, errors = 0, timeouts = 0;
    int first_error = 0;
    const char *first_msg = "";
    for (int i = 0; i < n_workers; i++) {
      pthread_join(ws[i].tid, NULL);
      worker *w = &ws[i];
      if (w->stopped_ns > stopped) stopped = w->stopped_ns;
      hist_merge(&all, &w->h);
      reads += w->reads;
      writes += w->writes;
      nf += w->not_found;
      errors += w->errors;
      timeouts += w->timeouts;
      if (!first_error && w->first_error) {
        first_error = w->first_error;
        first_msg = w->first_error_msg;
      }
    }
    getrusage(RUSAGE_SELF, &r1);
    printf("{\"ev\": \"done\"}\n");
    double wall = (double)(stopped - t_measure) / 1e9;
    const char *mode = !O.inflight ? "sync" : O.loops == 1 ? "async" : "pool";
    printf("{\"ev\": \"result\", \"client\": \"c\", \"mode\": \"%s\", \"threads\": %d, "
           "\"inflight\": %d, "
           "\"reads\": %llu, \"writes\": %llu, \"ops\": %llu, \"not_found\": %llu, "
           "\"errors\": %llu, \"timeouts\": %llu, \"wall_s\": %.6f, "
           "\"cpu_user_s\": %.6f, \"cpu_sys_s\": %.6f, "
           "\"p50_ns\": %llu, \"p99_ns\": %llu, \"p999_ns\": %llu, ",
           mode, n_workers, O.inflight, (unsigned long long)reads,
           (unsigned long long)writes,
           (unsigned long long)(reads + writes), (unsigned long long)nf,
           (unsigned long long)errors, (unsigned long long)timeouts, wall,
           cpu_s(&r1, 0) - cpu_s(&r0, 0), cpu_s(&r1, 1) - cpu_s(&r0, 1),
           (unsigned long long)hist_percentile(&all, 50),
           (unsigned long long)hist_percentile(&all, 99),
           (unsigned long long)hist_percentile(&all, 99.9));
    if (first_error) {
      printf("\"first_error\": ");
      json_str(first_msg);
      printf(", ");
    }
    printf("\"hist\": [%llu, %llu, %llu, [",
           (unsigned long long)(all.min == UINT64_MAX ? 0 : all.min),
           (unsigned long long)all.max, (unsigned long long)all.sum);
    const char *sep = "";
    for (uint32_t i = 0; i < H_N; i++) {
      if (!all.counts[i]) continue;
      printf("%s[%u, %llu]", sep, i, (unsigned long long)all.counts[i]);
      sep = ", ";
    }
    printf("]]}\n");
  }
done:
  spk_cluster_close(cluster);
  spk_cluster_free(cluster);
  free(ws);
  free(digests);
  free(payload);
  return 0;
}
