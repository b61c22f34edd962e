/*
 * test_core.c - the client core under concurrency: connection pool
 * checkout/return from many threads, hazard-pointer snapshot swaps, and the
 * tend thread racing commands (and close) against the embedded server.
 * These are the programs the TSan and ASan legs run.
 *
 * The server tests need SPK_SERVER_BIN (meson sets it).
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster/spk_cluster.h"
#include "cluster/spk_hazard.h"
#include "cmd/spk_batch.h"
#include "drivers/spk_sync.h"
#include "net/spk_pool.h"
#include "spk_test.h"

/* ---- pool --------------------------------------------------------------------- */

typedef struct {
  spk_pool *pool;
  int devnull;
  int iters;
  _Atomic int *checked_out;
} pool_arg;

static void *pool_worker(void *p) {
  pool_arg *a = p;
  unsigned seed = (unsigned)(uintptr_t)pthread_self();
  for (int i = 0; i < a->iters; i++) {
    spk_conn *c = spk_pool_get(a->pool);
    if (!c) {
      if (spk_pool_reserve(a->pool) != 0) continue;
      c = spk_pool_adopt(a->pool, dup(a->devnull));
      if (!c) continue;
    }
    atomic_fetch_add(a->checked_out, 1);
    SPK_ASSERT(c->fd >= 0);
    atomic_fetch_sub(a->checked_out, 1);
    if (rand_r(&seed) % 16 == 0) spk_pool_discard(a->pool, c);
    else spk_pool_put(a->pool, c);
  }
  return NULL;
}

SPK_TEST(pool_threads_stay_within_max) {
  spk_pool pool;
  spk_pool_init(&pool, 8, 0);
  _Atomic int out = 0;
  pool_arg a = {&pool, open("/dev/null", O_RDONLY), 20000, &out};
  pthread_t t[16];
  for (int i = 0; i < 16; i++) pthread_create(&t[i], NULL, pool_worker, &a);
  for (int i = 0; i < 16; i++) pthread_join(t[i], NULL);
  SPK_ASSERT(spk_pool_count(&pool) <= 8);
  SPK_ASSERT_EQ(atomic_load(&out), 0);
  /* Every connection counted is reachable on the idle structures. */
  int idle = 0;
  spk_conn *c;
  while ((c = spk_pool_get(&pool)) != NULL) {
    idle++;
    spk_pool_discard(&pool, c);
  }
  SPK_ASSERT_EQ(spk_pool_count(&pool), 0);
  SPK_ASSERT(idle <= 8);
  spk_pool_destroy(&pool);
  close(a.devnull);
}

SPK_TEST(pool_close_rejects_new_connections) {
  spk_pool pool;
  spk_pool_init(&pool, 4, 0);
  int fd = open("/dev/null", O_RDONLY);
  SPK_ASSERT_OK(spk_pool_reserve(&pool));
  spk_conn *c = spk_pool_adopt(&pool, dup(fd));
  SPK_ASSERT(c != NULL);
  spk_pool_close(&pool);
  SPK_ASSERT_EQ(spk_pool_reserve(&pool), SPK_ERR_CLOSED);
  SPK_ASSERT_EQ(spk_pool_ref(&pool), SPK_ERR_CLOSED);
  spk_pool_put(&pool, c); /* closed: the connection is freed, not pooled */
  SPK_ASSERT_EQ(spk_pool_count(&pool), 0);
  spk_pool_destroy(&pool);
  close(fd);
}

/* ---- hazard pointers ------------------------------------------------------------ */

#define MAGIC 0x5eed5eedu

typedef struct snap {
  uint32_t magic;
  uint32_t version;
  struct snap *next_retired;
} snap;

static _Atomic(void *) current;
static _Atomic int stop_readers;
static _Atomic long reads_done;

static void *hazard_reader(void *unused) {
  (void)unused;
  while (!atomic_load(&stop_readers)) {
    snap *s = spk_hazard_protect(&current);
    SPK_ASSERT(s != NULL);
    SPK_ASSERT_EQ(s->magic, MAGIC);
    spk_hazard_clear();
    atomic_fetch_add(&reads_done, 1);
  }
  return NULL;
}

SPK_TEST(hazard_pointers_protect_snapshots) {
  snap *first = calloc(1, sizeof *first);
  first->magic = MAGIC;
  atomic_store(&current, first);
  pthread_t t[4];
  for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, hazard_reader, NULL);
  snap *retired = NULL;
  /* Let the readers start before the writer races them. */
  while (atomic_load(&reads_done) == 0) sched_yield();
  for (uint32_t v = 1; v < 20000; v++) {
    snap *n = calloc(1, sizeof *n);
    n->magic = MAGIC;
    n->version = v;
    snap *old = atomic_exchange(&current, n);
    old->next_retired = retired;
    retired = old;
    /* Free what nobody protects; poison first so a reader would notice. */
    for (snap **pp = &retired; *pp;) {
      snap *r = *pp;
      if (!spk_hazard_in_use(r)) {
        *pp = r->next_retired;
        r->magic = 0;
        free(r);
      } else {
        pp = &r->next_retired;
      }
    }
  }
  atomic_store(&stop_readers, 1);
  for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
  SPK_ASSERT(atomic_load(&reads_done) > 0);
  while (retired) {
    snap *n = retired->next_retired;
    free(retired);
    retired = n;
  }
  free(atomic_load(&current));
}

/* ---- cluster vs. the embedded server -------------------------------------------- */

typedef struct server {
  pid_t pid;
  int in_fd; /* its stdin: closing it stops the server */
  uint16_t ports[3];
  int n;
} server;

static int start_server(server *s, int nodes) {
  const char *bin = getenv("SPK_SERVER_BIN");
  if (!bin) SPK_FAIL("SPK_SERVER_BIN is not set");
  int in[2], out[2];
  SPK_ASSERT_OK(pipe(in));
  SPK_ASSERT_OK(pipe(out));
  pid_t pid = fork();
  if (pid == 0) {
    char nbuf[8];
    snprintf(nbuf, sizeof nbuf, "%d", nodes);
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[1]);
    close(out[0]);
    execl(bin, bin, "--nodes", nbuf, (char *)NULL);
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  char line[4096];
  size_t len = 0;
  while (len < sizeof line - 1) {
    ssize_t r = read(out[0], line + len, 1);
    if (r <= 0) SPK_FAIL("server did not start");
    if (line[len] == '\n') break;
    len++;
  }
  line[len] = '\0';
  close(out[0]);
  s->pid = pid;
  s->in_fd = in[1];
  s->n = 0;
  for (const char *p = line; (p = strstr(p, "\"port\":")) && s->n < 3; p++)
    s->ports[s->n++] = (uint16_t)atoi(p + 7);
  SPK_ASSERT_EQ(s->n, nodes);
  return 0;
}

static void stop_server(server *s) {
  close(s->in_fd);
  waitpid(s->pid, NULL, 0);
}

static spk_cluster *connect_cluster(server *s, uint32_t tend_ms) {
  spk_cluster_config cfg;
  spk_cluster_config_init(&cfg);
  spk_host h;
  snprintf(h.name, sizeof h.name, "127.0.0.1");
  h.port = s->ports[0];
  cfg.seeds = &h;
  cfg.n_seeds = 1;
  cfg.tend_interval_ms = tend_ms;
  spk_cluster *c = NULL;
  spk_error err;
  int rc = spk_cluster_create(&cfg, &c, &err);
  if (rc) SPK_FAIL("connect: %s", err.message);
  return c;
}

/* A put (bin "v" = value) or a get of test/core/<key>. */
static int run_cmd(spk_cluster *c, const spk_policy *pol, int64_t key, bool write,
                   int64_t value, int64_t *read_back) {
  spk_buf *tx = spk_sync_tx_buf(), *rx = spk_sync_rx_buf();
  tx->len = 0;
  uint8_t digest[SPK_DIGEST_SIZE];
  spk_key_digest_int("core", 4, key, digest);
  spk_msg_header h = {.header_sz = 22,
                      .info1 = write ? 0 : (SPK_INFO1_READ | SPK_INFO1_GET_ALL),
                      .info2 = write ? SPK_INFO2_WRITE : 0,
                      .transaction_ttl = 1000};
  size_t start = spk_msg_begin(tx, &h);
  spk_msg_field(tx, SPK_FIELD_NAMESPACE, "test", 4);
  spk_msg_field(tx, SPK_FIELD_SETNAME, "core", 4);
  spk_msg_field(tx, SPK_FIELD_DIGEST, digest, SPK_DIGEST_SIZE);
  if (write) spk_msg_op_int(tx, SPK_OP_WRITE, "v", 1, value);
  spk_msg_end(tx, start, 3, write ? 1 : 0);
  spk_cmd cmd;
  spk_cmd_init(&cmd, c, pol, SPK_CMD_SINGLE, tx, rx);
  cmd.is_write = write;
  cmd.ns = "test";
  cmd.ns_len = 4;
  cmd.pid = spk_partition_id(digest);
  int rc = spk_sync_execute(&cmd);
  if (rc == 0 && read_back) {
    spk_msg_iter it = spk_msg_ops(&cmd.resp);
    spk_op_view op;
    *read_back = INT64_MIN;
    while (spk_msg_next_op(&it, &op))
      if (op.name_len == 1 && op.name[0] == 'v')
        SPK_ASSERT_OK(spk_particle_int(op.value, op.value_len, read_back));
  }
  return rc;
}

typedef struct {
  spk_cluster *c;
  int id;
  int iters;
  _Atomic long *ok;
  _Atomic long *closed_errors;
  bool expect_close;
} load_arg;

static void *load_worker(void *p) {
  load_arg *a = p;
  spk_policy pol;
  spk_policy_init(&pol);
  pol.total_timeout_ms = 2000;
  pol.socket_timeout_ms = 1000;
  for (int i = 0; i < a->iters; i++) {
    int64_t key = a->id * 1000000 + (i % 50);
    int64_t got = 0;
    int rc = run_cmd(a->c, &pol, key, true, i, NULL);
    if (rc == 0) rc = run_cmd(a->c, &pol, key, false, 0, &got);
    if (rc == 0) {
      SPK_ASSERT_EQ(got, i); /* each thread owns its keys */
      atomic_fetch_add(a->ok, 1);
    } else if (a->expect_close) {
      SPK_ASSERT(rc == SPK_ERR_CLOSED || rc == SPK_ERR_CONNECTION ||
                 rc == SPK_ERR_INVALID_NODE || rc == SPK_ERR_TIMEOUT);
      atomic_fetch_add(a->closed_errors, 1);
      if (spk_cluster_is_closed(a->c)) break;
    } else {
      SPK_FAIL("command failed: %d", rc);
    }
  }
  return NULL;
}

SPK_TEST(tend_races_commands) {
  server s;
  start_server(&s, 3);
  spk_cluster *c = connect_cluster(&s, 5);
  _Atomic long ok = 0, closed = 0;
  load_arg args[6];
  pthread_t t[6];
  for (int i = 0; i < 6; i++) {
    args[i] = (load_arg){c, i, 1500, &ok, &closed, false};
    pthread_create(&t[i], NULL, load_worker, &args[i]);
  }
  /* Hammer the tender meanwhile: each tend may publish and retire maps. */
  uint64_t before = spk_cluster_tend_count(c);
  for (int i = 0; i < 200; i++) {
    spk_cluster_tend_now(c);
    usleep(500);
  }
  for (int i = 0; i < 6; i++) pthread_join(t[i], NULL);
  SPK_ASSERT_EQ(atomic_load(&ok), 6 * 1500);
  SPK_ASSERT(spk_cluster_tend_count(c) > before);
  spk_cluster_close(c);
  spk_cluster_free(c);
  stop_server(&s);
}

SPK_TEST(close_while_commands_run) {
  server s;
  start_server(&s, 1);
  spk_cluster *c = connect_cluster(&s, 10);
  _Atomic long ok = 0, closed = 0;
  load_arg args[6];
  pthread_t t[6];
  for (int i = 0; i < 6; i++) {
    args[i] = (load_arg){c, i, 1000000, &ok, &closed, true};
    pthread_create(&t[i], NULL, load_worker, &args[i]);
  }
  /* Close only once commands are flowing (TSan and a busy machine are slow). */
  for (int i = 0; i < 1000 && atomic_load(&ok) < 50; i++) usleep(10000);
  spk_cluster_close(c);
  for (int i = 0; i < 6; i++) pthread_join(t[i], NULL);
  SPK_ASSERT(atomic_load(&ok) > 0);
  SPK_ASSERT(atomic_load(&closed) > 0);
  spk_cluster_free(c);
  stop_server(&s);
}

SPK_TEST(batch_reads_what_was_written) {
  server s;
  start_server(&s, 3);
  spk_cluster *c = connect_cluster(&s, 100);
  spk_policy pol;
  spk_policy_init(&pol);
  for (int64_t k = 0; k < 64; k++) SPK_ASSERT_OK(run_cmd(c, &pol, k, true, k * 7, NULL));
  spk_batch_row rows[70];
  spk_batch job;
  memset(rows, 0, sizeof rows);
  spk_batch_init(&job, c, &pol, rows, 70);
  for (int i = 0; i < 70; i++) {
    spk_key_digest_int("core", 4, i, rows[i].digest);
    rows[i].ns = "test";
    rows[i].ns_len = 4;
    rows[i].pid = spk_partition_id(rows[i].digest);
    rows[i].repeatable = true;
    size_t off = spk_batch_row_begin(&job.rows_buf, SPK_BROW_EXTRA_INFO,
                                     SPK_INFO1_READ | SPK_INFO1_GET_ALL, 0, 0, 0, 0);
    spk_msg_field(&job.rows_buf, SPK_FIELD_NAMESPACE, "test", 4);
    spk_msg_field(&job.rows_buf, SPK_FIELD_SETNAME, "core", 4);
    spk_batch_row_end(&job.rows_buf, off, 2, 0);
    rows[i].body_off = (uint32_t)off;
    rows[i].body_len = (uint32_t)(job.rows_buf.len - off);
  }
  SPK_ASSERT_OK(spk_sync_batch(&job));
  for (int i = 0; i < 70; i++) {
    SPK_ASSERT(rows[i].answered);
    if (i >= 64) {
      SPK_ASSERT_EQ(rows[i].result, SPK_ERR_RECORD_NOT_FOUND);
      continue;
    }
    SPK_ASSERT_EQ(rows[i].result, 0);
    spk_msg_view v;
    SPK_ASSERT_OK(spk_batch_row_msg(&job, &rows[i], &v));
    spk_msg_iter it = spk_msg_ops(&v);
    spk_op_view op;
    SPK_ASSERT(spk_msg_next_op(&it, &op));
    int64_t val;
    SPK_ASSERT_OK(spk_particle_int(op.value, op.value_len, &val));
    SPK_ASSERT_EQ(val, i * 7);
  }
  spk_batch_destroy(&job);
  spk_cluster_close(c);
  spk_cluster_free(c);
  stop_server(&s);
}
