/* Secondary indexes: definitions, maintenance on every write path (writes,
 * overwrites of the indexed bin, bin deletes, record deletes, expiry,
 * truncate), collection indexes, queries and paging, and index maintenance
 * racing with create / drop. */
#include <pthread.h>

#include "fixture.h"

static int send_req(spk_srv_ctx *c, fx_req *r) {
  spk_msg_header h = {0};
  fx_send(c, r, &h);
  return h.result_code;
}

/* The value of a single info command. */
static const char *info(spk_srv_ctx *c, const char *text) {
  const char *t = strchr(fx_info(c, text), '\t');
  SPK_ASSERT(t != NULL);
  char *nl = strrchr(t, '\n');
  if (nl) *nl = '\0';
  return t + 1;
}

static int put_int(spk_srv_ctx *c, const char *set, uint32_t seed, const char *bin,
                   int64_t v, uint32_t ttl) {
  fx_req r;
  fx_begin(&r, 0, SPK_INFO2_WRITE, 0, ttl);
  fx_key(&r, "test", set, seed);
  spk_msg_op_int(&r.b, SPK_OP_WRITE, bin, strlen(bin), v);
  r.no++;
  return send_req(c, &r);
}

static int put_raw(spk_srv_ctx *c, uint32_t seed, const char *bin, uint8_t ptype,
                   const void *v, size_t len) {
  fx_req r;
  fx_begin(&r, 0, SPK_INFO2_WRITE, 0, 0);
  fx_key(&r, "test", "s", seed);
  spk_msg_op_raw(&r.b, SPK_OP_WRITE, ptype, bin, strlen(bin), v, len);
  r.no++;
  return send_req(c, &r);
}

static int delete_rec(spk_srv_ctx *c, uint32_t seed) {
  fx_req r;
  fx_begin(&r, 0, SPK_INFO2_WRITE | SPK_INFO2_DELETE, 0, 0);
  fx_key(&r, "test", "s", seed);
  return send_req(c, &r);
}

static spk_srv_sindex *index_named(spk_srv_ns *ns, const char *name) {
  for (uint32_t i = 0; i < SPK_SRV_MAX_SINDEXES; i++)
    if (ns->si_slots[i] && !strcmp(ns->si_slots[i]->name, name)) return ns->si_slots[i];
  return NULL;
}

static int64_t entries(spk_srv_ns *ns, const char *name) {
  spk_srv_sindex *si = index_named(ns, name);
  SPK_ASSERT(si != NULL);
  return atomic_load(&si->n_entries);
}

/* Does the index hold (bval, record seed)? */
static bool has_entry(spk_srv_ns *ns, const char *name, int64_t bval, uint32_t seed) {
  uint8_t d[20];
  fx_digest(d, seed);
  spk_srv_sindex *si = index_named(ns, name);
  const spk_srv_si_tree *t = &si->trees[spk_partition_id(d)];
  for (uint32_t i = 0; i < t->n; i++)
    if (t->e[i].bval == bval && !memcmp(t->e[i].digest, d, 20)) return true;
  return false;
}

SPK_TEST(wyhash_matches_the_server) {
  /* 'beta' hashes to the BVAL the real server sent (scan-query.json). */
  SPK_ASSERT_EQ(spk_srv_wyhash64("beta", 4), (int64_t)0x9472cdd54af22494ull);
  /* Every length class of the algorithm against an independent
   * implementation (Python) of the same function. */
  static const char *s =
      "The quick brown fox jumps over the lazy dog; pack my box with five dozen "
      "liquor jugs.";
  static const struct { size_t len; uint64_t h; } v[] = {
      {0, 0xda3421757d70ae2dull},  {1, 0xb6b39268641524c2ull},
      {3, 0xf92429c05cd5ba73ull},  {8, 0x42d25895167e3097ull},
      {16, 0x57b4638773d2da00ull}, {17, 0xee2b8f470cf42b09ull},
      {48, 0xfa531cabc7f1d056ull}, {49, 0xa30ee7d8e73aa0ffull},
      {85, 0x8ccd8ca88acd26acull}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    if (spk_srv_wyhash64(s, v[i].len) != v[i].h)
      SPK_FAIL("len %zu: %016" PRIx64, v[i].len, spk_srv_wyhash64(s, v[i].len));
}

SPK_TEST(maintenance_on_writes_and_deletes) {
  spk_srv *s = fx_server(1, 1);
  spk_srv_ns *ns = s->ns[0];
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;set=s;indexname=ix;bin=n;"
                             "type=numeric\n"), "ok");
  SPK_ASSERT(atomic_load(&ns->si_live) != NULL);
  for (uint32_t i = 1; i <= 50; i++) SPK_ASSERT_OK(put_int(&c, "s", i, "n", i * 10, 0));
  /* Other sets and other bins are not indexed. */
  SPK_ASSERT_OK(put_int(&c, "other", 100, "n", 5, 0));
  SPK_ASSERT_OK(put_int(&c, "s", 101, "m", 5, 0));
  SPK_ASSERT_EQ(entries(ns, "ix"), 50);
  SPK_ASSERT(has_entry(ns, "ix", 70, 7));
  /* Overwrite of the indexed bin: the old value goes, the new one comes. */
  SPK_ASSERT_OK(put_int(&c, "s", 7, "n", -3, 0));
  SPK_ASSERT(!has_entry(ns, "ix", 70, 7));
  SPK_ASSERT(has_entry(ns, "ix", -3, 7));
  /* A write of another bin keeps the entry. */
  SPK_ASSERT_OK(put_int(&c, "s", 8, "other", 1, 0));
  SPK_ASSERT(has_entry(ns, "ix", 80, 8));
  /* The bin changes type: no longer in a numeric index. */
  SPK_ASSERT_OK(put_raw(&c, 9, "n", SPK_PARTICLE_STRING, "x", 1));
  SPK_ASSERT(!has_entry(ns, "ix", 90, 9));
  /* Bin delete (NULL write) and record delete. */
  SPK_ASSERT_OK(put_raw(&c, 10, "n", SPK_PARTICLE_NULL, NULL, 0));
  SPK_ASSERT(!has_entry(ns, "ix", 100, 10));
  SPK_ASSERT_OK(delete_rec(&c, 11));
  SPK_ASSERT(!has_entry(ns, "ix", 110, 11));
  SPK_ASSERT_EQ(entries(ns, "ix"), 47);
  SPK_ASSERT_EQ(spk_srv_sindex_verify(ns, "ix"), 0);
  /* A failed write (create-only on an existing record) changes nothing. */
  fx_req r;
  fx_begin(&r, 0, SPK_INFO2_WRITE | SPK_INFO2_CREATE_ONLY, 0, 0);
  fx_key(&r, "test", "s", 12);
  spk_msg_op_int(&r.b, SPK_OP_WRITE, "n", 1, 999);
  r.no++;
  SPK_ASSERT_EQ(send_req(&c, &r), SPK_SRV_ERR_RECORD_EXISTS);
  SPK_ASSERT(has_entry(ns, "ix", 120, 12));
  SPK_ASSERT(!has_entry(ns, "ix", 999, 12));
  SPK_ASSERT_EQ(spk_srv_sindex_verify(ns, "ix"), 0);
  spk_srv_ctx_free(&c);
  fx_free(s);
}

SPK_TEST(maintenance_on_expiry_and_truncate) {
  spk_srv *s = fx_server(1, 1);
  spk_srv_ns *ns = s->ns[0];
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=ix;bin=n;type=numeric\n"),
                    "ok");
  for (uint32_t i = 1; i <= 20; i++) SPK_ASSERT_OK(put_int(&c, "s", i, "n", i, i <= 5 ? 1 : 0));
  for (uint32_t i = 21; i <= 30; i++) SPK_ASSERT_OK(put_int(&c, "t", i, "n", i, 0));
  SPK_ASSERT_EQ(entries(ns, "ix"), 30);
  sleep(2);
  /* Expired records stay indexed until the sweep frees them (queries skip
   * them meanwhile), as the real server's do until its GC. */
  SPK_ASSERT_EQ(spk_srv_nsup(ns), 5);
  SPK_ASSERT_EQ(entries(ns, "ix"), 25);
  SPK_ASSERT_EQ(spk_srv_sindex_verify(ns, "ix"), 0);
  /* A write over an expired (not yet swept) record replaces its entry. */
  SPK_ASSERT_OK(put_int(&c, "s", 6, "n", 600, 1));
  sleep(2);
  SPK_ASSERT_OK(put_int(&c, "s", 6, "n", 601, 0));
  SPK_ASSERT(!has_entry(ns, "ix", 600, 6) && has_entry(ns, "ix", 601, 6));
  /* Truncate of one set, then of the namespace. */
  SPK_ASSERT_STR_EQ(info(&c, "truncate:namespace=test;set=t\n"), "ok");
  SPK_ASSERT_EQ(entries(ns, "ix"), 15);
  SPK_ASSERT_EQ(spk_srv_sindex_verify(ns, "ix"), 0);
  SPK_ASSERT_STR_EQ(info(&c, "truncate-namespace:namespace=test\n"), "ok");
  SPK_ASSERT_EQ(entries(ns, "ix"), 0);
  SPK_ASSERT_EQ(spk_srv_sindex_verify(ns, "ix"), 0);
  spk_srv_ctx_free(&c);
  fx_free(s);
}

SPK_TEST(collection_indexes) {
  spk_srv *s = fx_server(1, 1);
  spk_srv_ns *ns = s->ns[0];
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=li;indextype=list;"
                             "bin=l;type=numeric\n"), "ok");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=mk;indextype=mapkeys;"
                             "bin=m;type=string\n"), "ok");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=mv;indextype=mapvalues;"
                             "bin=m;type=numeric\n"), "ok");
  /* [1, 2, 2, 3, "x"]: three distinct integers. */
  static const uint8_t l1[] = {0x95, 0x01, 0x02, 0x02, 0x03, 0xa2, 0x03, 'x'};
  SPK_ASSERT_OK(put_raw(&c, 1, "l", SPK_PARTICLE_LIST, l1, sizeof l1));
  SPK_ASSERT_EQ(entries(ns, "li"), 3);
  /* Ordered list [3, 4] (ext flags element first). */
  static const uint8_t l2[] = {0x93, 0xc7, 0x00, 0x01, 0x03, 0x04};
  SPK_ASSERT_OK(put_raw(&c, 1, "l", SPK_PARTICLE_LIST, l2, sizeof l2));
  SPK_ASSERT_EQ(entries(ns, "li"), 2);
  SPK_ASSERT(has_entry(ns, "li", 3, 1) && has_entry(ns, "li", 4, 1));
  SPK_ASSERT(!has_entry(ns, "li", 1, 1));
  /* {"a": 1, "b": 2} */
  static const uint8_t m1[] = {0x82, 0xa2, 0x03, 'a', 0x01, 0xa2, 0x03, 'b', 0x02};
  SPK_ASSERT_OK(put_raw(&c, 2, "m", SPK_PARTICLE_MAP, m1, sizeof m1));
  SPK_ASSERT_EQ(entries(ns, "mk"), 2);
  SPK_ASSERT(has_entry(ns, "mk", (int64_t)spk_srv_wyhash64("a", 1), 2));
  SPK_ASSERT(has_entry(ns, "mv", 2, 2));
  SPK_ASSERT_EQ(spk_srv_sindex_verify(ns, "li"), 0);
  SPK_ASSERT_EQ(spk_srv_sindex_verify(ns, "mk"), 0);
  SPK_ASSERT_EQ(spk_srv_sindex_verify(ns, "mv"), 0);
  /* Context index: the value at map key "a". */
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=cx;context=kiKiA2E=;"
                             "bin=m;type=numeric\n"), "ok");
  SPK_ASSERT_EQ(entries(ns, "cx"), 1);
  SPK_ASSERT(has_entry(ns, "cx", 1, 2));
  /* Not normalized (int 0x22 as 0xd0 0x22) and invalid contexts. */
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=bad;context=ktAiogNh;"
                             "bin=m;type=numeric\n"), "ERROR:4:'context' not normalized msgpack");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=bad;context=kQ==;"
                             "bin=m;type=numeric\n"), "ERROR:4:'context' invalid cdt context");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=bad;context=!!;"
                             "bin=m;type=numeric\n"), "ERROR:4:'context' invalid base64");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-list:namespace=test\n"),
                    "ns=test:indexname=li:set=null:bin=l:type=numeric:indextype=list:"
                    "context=null:exp=null:state=RW;"
                    "ns=test:indexname=mk:set=null:bin=m:type=string:indextype=mapkeys:"
                    "context=null:exp=null:state=RW;"
                    "ns=test:indexname=mv:set=null:bin=m:type=numeric:indextype=mapvalues:"
                    "context=null:exp=null:state=RW;"
                    "ns=test:indexname=cx:set=null:bin=m:type=numeric:indextype=default:"
                    "context=[map_key(\"a\")]:exp=null:state=RW");
  spk_srv_ctx_free(&c);
  fx_free(s);
}

SPK_TEST(definitions) {
  spk_srv *s = fx_server(1, 1);
  spk_srv_ns *ns = s->ns[0];
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  /* Records first: create populates. */
  for (uint32_t i = 1; i <= 30; i++) SPK_ASSERT_OK(put_int(&c, "s", i, "n", i % 7, 0));
  const char *mk = "sindex-create:namespace=test;set=s;indexname=a;bin=n;type=numeric\n";
  SPK_ASSERT_STR_EQ(info(&c, mk), "ok");
  SPK_ASSERT_EQ(entries(ns, "a"), 30);
  SPK_ASSERT_STR_EQ(info(&c, mk), "ok");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;set=s;indexname=a;bin=x;type=numeric\n"),
                    "ERROR:200:'indexname' already exists with different definition");
  /* Same definition, new name: renamed in place (same slot, same data). */
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:ns=test;set=s;indexname=b;indexdata=n,numeric\n"),
                    "ok");
  SPK_ASSERT(index_named(ns, "a") == NULL && index_named(ns, "b") == ns->si_slots[0]);
  static const char stat_b[] = "entries=30;used_bytes=16777216;entries_per_bval=4;"
                               "entries_per_rec=1;load_pct=100;load_time=";
  SPK_ASSERT(!strncmp(info(&c, "sindex-stat:namespace=test;indexname=b\n"), stat_b,
                      sizeof stat_b - 1));
  SPK_ASSERT(!strncmp(info(&c, "sindex/test/b\n"), stat_b, sizeof stat_b - 1));
  SPK_ASSERT(strstr(info(&c, "sets/test/s\n"), ":sindexes=1:") != NULL);
  SPK_ASSERT_STR_EQ(info(&c, "sindex-stat:namespace=test;indexname=a\n"), "ERROR:201:no index");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-exists:namespace=test;indexname=b\n"), "true");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=c;bin=n;type=INTEGER\n"),
                    "ERROR:4:bad 'type' - must be one of 'numeric', 'string', 'blob', "
                    "'geo2dsphere'");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=c;bin=n\n"),
                    "ERROR:4:both 'indexdata' and 'type' are missing");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=c;indexdata=n,string;"
                             "type=string\n"),
                    "ERROR:4:both 'indexdata' and 'type' are specified");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=c;type=string\n"),
                    "ERROR:4:both 'bin' and 'exp' are missing");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=c;bin=n;exp=AQ;"
                             "type=string\n"),
                    "ERROR:4:both 'bin' and 'exp' are specified");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=c;indextype=x;bin=n;"
                             "type=string\n"),
                    "ERROR:4:bad 'indextype' - must be one of 'default', 'list', 'mapkeys', "
                    "'mapvalues'");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;bin=n;type=string\n"),
                    "ERROR:4:missing 'indexname'");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=nosuch;indexname=c;bin=n;type=string\n"),
                    "ERROR:4:namespace not found");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=g;bin=g;type=GEO2DSPHERE\n"),
                    "ok");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-list:ns=test;b64=maybe\n"), "ERROR:4:bad b64");
  /* Slots: a freed slot is reused first. */
  SPK_ASSERT_STR_EQ(info(&c, "sindex-delete:namespace=test;indexname=b\n"), "ok");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-delete:namespace=test;indexname=b\n"), "ok");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;indexname=d;bin=d;type=blob\n"),
                    "ok");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-list\n"),
                    "ns=test:indexname=d:set=null:bin=d:type=blob:indextype=default:"
                    "context=null:exp=null:state=RW;"
                    "ns=test:indexname=g:set=null:bin=g:type=geo2dsphere:indextype=default:"
                    "context=null:exp=null:state=RW");
  SPK_ASSERT(strstr(info(&c, "sets/test/s\n"), ":sindexes=0:") != NULL);
  SPK_ASSERT_STR_EQ(info(&c, "sindex-delete:namespace=test;indexname=d\n"), "ok");
  SPK_ASSERT_STR_EQ(info(&c, "sindex-delete:namespace=test;indexname=g\n"), "ok");
  SPK_ASSERT(atomic_load(&ns->si_live) == NULL);
  SPK_ASSERT_STR_EQ(info(&c, "sindex-list\n"), "");
  spk_srv_ctx_free(&c);
  fx_free(s);
}

SPK_TEST(populating_index_is_write_only) {
  spk_srv *s = fx_server(1, 1);
  s->cfg.sindex_populate_ms = 300;
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  /* On an empty set: readable at once. */
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;set=s;indexname=e;bin=n;"
                             "type=numeric\n"), "ok");
  SPK_ASSERT_OK(put_int(&c, "s", 1, "n", 1, 0));
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;set=s;indexname=w;bin=m;"
                             "type=numeric\n"), "ok");
  const char *l = info(&c, "sindex-list\n");
  SPK_ASSERT(strstr(l, "indexname=e:set=s:bin=n:type=numeric:indextype=default:context=null:"
                       "exp=null:state=RW") != NULL);
  SPK_ASSERT(strstr(l, "indexname=w:set=s:bin=m:type=numeric:indextype=default:context=null:"
                       "exp=null:state=WO") != NULL);
  SPK_ASSERT(strstr(info(&c, "sindex-stat:namespace=test;indexname=w\n"), "load_pct=0;") != NULL);
  usleep(400 * 1000);
  SPK_ASSERT(strstr(info(&c, "sindex-list\n"), "state=WO") == NULL);
  SPK_ASSERT(strstr(info(&c, "sindex-stat:namespace=test;indexname=w\n"),
                    "load_pct=100;load_time=300;") != NULL);
  spk_srv_ctx_free(&c);
  fx_free(s);
}

/* ---- queries -------------------------------------------------------------------------------- */

typedef struct row {
  uint8_t digest[20];
  int64_t bval;
} row;

/* A numeric range query over every partition; rows out, result code back
 * (a start error, or 0 for a stream that ended with LAST). */
static int query(spk_srv_ctx *c, const char *bin, int64_t lo, int64_t hi, uint64_t max,
                 uint32_t from_pid, const uint8_t *digests, const uint8_t *bvals,
                 uint32_t n_resume, row *rows, uint32_t *n_rows) {
  fx_req r;
  fx_begin(&r, SPK_INFO1_READ | SPK_INFO1_GET_ALL, 0, SPK_INFO3_PARTITION_DONE, 0xFFFFFFFF);
  spk_msg_field(&r.b, SPK_FIELD_NAMESPACE, "test", 4);
  spk_msg_field(&r.b, SPK_FIELD_SETNAME, "s", 1);
  r.nf += 2;
  uint8_t range[64];
  size_t bl = strlen(bin), k = 0;
  range[k++] = 1;
  range[k++] = (uint8_t)bl;
  memcpy(range + k, bin, bl);
  k += bl;
  range[k++] = SPK_PARTICLE_INTEGER;
  spk_put_be32(range + k, 8);
  spk_put_be64(range + k + 4, (uint64_t)lo);
  spk_put_be32(range + k + 12, 8);
  spk_put_be64(range + k + 16, (uint64_t)hi);
  k += 24;
  spk_msg_field(&r.b, SPK_FIELD_INDEX_RANGE, range, k);
  r.nf++;
  /* Partitions from from_pid on without a resume point go in PID_ARRAY. */
  uint8_t pids[2 * 4096];
  uint32_t np = 0;
  for (uint32_t p = from_pid; p < 4096; p++) {
    bool resumed = false;
    for (uint32_t i = 0; i < n_resume; i++)
      resumed |= spk_partition_id(digests + 20 * i) == p;
    if (resumed) continue;
    pids[2 * np] = (uint8_t)p;
    pids[2 * np + 1] = (uint8_t)(p >> 8);
    np++;
  }
  if (np) {
    spk_msg_field(&r.b, SPK_FIELD_PID_ARRAY, pids, 2 * np);
    r.nf++;
  }
  if (n_resume) {
    spk_msg_field(&r.b, SPK_FIELD_DIGEST_ARRAY, digests, 20 * n_resume);
    spk_msg_field(&r.b, SPK_FIELD_BVAL_ARRAY, bvals, 8 * n_resume);
    r.nf += 2;
  }
  if (max) {
    uint8_t m[8];
    spk_put_be64(m, max);
    spk_msg_field(&r.b, SPK_FIELD_MAX_RECORDS, m, 8);
    r.nf++;
  }
  spk_msg_end(&r.b, r.start, r.nf, r.no);
  c->out.len = 0;
  spk_srv_dispatch(c, r.b.data, r.b.len);
  spk_buf_free(&r.b);
  *n_rows = 0;
  size_t p = 0;
  while (p + 8 <= c->out.len) {
    uint64_t sz = spk_be64(c->out.data + p) & 0xFFFFFFFFFFFFull;
    const uint8_t *m = c->out.data + p + 8, *e = m + sz;
    while (m < e) {
      spk_msg_header h;
      spk_msg_header_read(m, &h);
      const uint8_t *f = m + SPK_MSG_HEADER_SIZE;
      row rw = {{0}, 0};
      for (uint16_t i = 0; i < h.n_fields; i++) {
        uint32_t fl = spk_be32(f) - 1;
        if (f[4] == SPK_FIELD_DIGEST) memcpy(rw.digest, f + 5, 20);
        if (f[4] == SPK_FIELD_BVAL_ARRAY) rw.bval = (int64_t)spk_le64(f + 5);
        f += 5 + fl;
      }
      for (uint16_t i = 0; i < h.n_ops; i++) f += 4 + spk_be32(f);
      if (h.info3 & SPK_INFO3_LAST) return h.result_code;
      if (h.n_fields == 0) return h.result_code; /* start error */
      rows[(*n_rows)++] = rw;
      m = f;
    }
    p += 8 + sz;
  }
  return -1;
}

SPK_TEST(query_order_and_paging) {
  spk_srv *s = fx_server(1, 1);
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;set=s;indexname=ix;bin=n;"
                             "type=numeric\n"), "ok");
  for (uint32_t i = 0; i < 400; i++) SPK_ASSERT_OK(put_int(&c, "s", i, "n", i % 50, 0));
  static row rows[1000];
  uint32_t n;
  SPK_ASSERT_OK(query(&c, "n", 10, 19, 0, 0, NULL, NULL, 0, rows, &n));
  SPK_ASSERT_EQ(n, 80);
  /* Partition order, then (bval, digest) inside a partition. */
  for (uint32_t i = 1; i < n; i++) {
    uint32_t p0 = spk_partition_id(rows[i - 1].digest), p1 = spk_partition_id(rows[i].digest);
    SPK_ASSERT(p0 <= p1);
    if (p0 == p1)
      SPK_ASSERT(rows[i - 1].bval < rows[i].bval ||
                 (rows[i - 1].bval == rows[i].bval &&
                  memcmp(rows[i - 1].digest, rows[i].digest, 20) < 0));
    SPK_ASSERT(rows[i].bval >= 10 && rows[i].bval <= 19);
  }
  /* Pages of 7, resumed with DIGEST_ARRAY + BVAL_ARRAY of the last record:
   * partitions before its partition are done, later ones untouched. */
  static row all[1000];
  uint32_t total = 0, from = 0, nres = 0;
  uint8_t dg[20], bv[8];
  for (int page = 0; page < 100; page++) {
    uint32_t k;
    SPK_ASSERT_OK(query(&c, "n", 10, 19, 7, from, dg, bv, nres, all + total, &k));
    SPK_ASSERT(k <= 7);
    total += k;
    if (k < 7) break;
    memcpy(dg, all[total - 1].digest, 20);
    spk_put_le64(bv, (uint64_t)all[total - 1].bval);
    nres = 1;
    from = spk_partition_id(dg);
  }
  SPK_ASSERT_EQ(total, 80);
  for (uint32_t i = 0; i < total; i++) SPK_ASSERT_MEM_EQ(all[i].digest, rows[i].digest, 20);
  /* Start errors: no index on the bin, begin > end. */
  SPK_ASSERT_EQ(query(&c, "x", 0, 1, 0, 0, NULL, NULL, 0, rows, &n), SPK_SRV_ERR_SINDEX_NOT_FOUND);
  SPK_ASSERT_EQ(query(&c, "n", 5, 1, 0, 0, NULL, NULL, 0, rows, &n), SPK_SRV_ERR_PARAMETER);
  /* Queries skip expired records. */
  SPK_ASSERT_OK(put_int(&c, "s", 9000, "n", 1000, 1));
  SPK_ASSERT_OK(query(&c, "n", 1000, 1000, 0, 0, NULL, NULL, 0, rows, &n));
  SPK_ASSERT_EQ(n, 1);
  sleep(2);
  SPK_ASSERT_OK(query(&c, "n", 1000, 1000, 0, 0, NULL, NULL, 0, rows, &n));
  SPK_ASSERT_EQ(n, 0);
  spk_srv_ctx_free(&c);
  fx_free(s);
}

/* ---- concurrency ------------------------------------------------------------------------------ */

typedef struct worker {
  spk_srv *s;
  uint32_t id;
  _Atomic bool *stop;
} worker;

static void *writer(void *arg) {
  worker *w = arg;
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, w->s, &w->s->nodes[0]);
  uint32_t x = w->id * 7919u + 1;
  while (!atomic_load(w->stop)) {
    x = x * 1103515245u + 12345u;
    uint32_t seed = (x >> 8) % 500;
    if ((x >> 4) % 8 == 0) delete_rec(&c, seed);
    else put_int(&c, "s", seed, (x >> 3) % 2 ? "n" : "o", (int64_t)(x % 97), 0);
  }
  spk_srv_ctx_free(&c);
  return NULL;
}

static void *churner(void *arg) {
  worker *w = arg;
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, w->s, &w->s->nodes[1 % w->s->n_nodes]);
  static row rows[2000];
  for (int i = 0; i < 40 && !atomic_load(w->stop); i++) {
    info(&c, "sindex-create:namespace=test;set=s;indexname=tmp;bin=o;type=numeric\n");
    uint32_t n;
    query(&c, "o", 0, 50, 0, 0, NULL, NULL, 0, rows, &n);
    info(&c, "sindex-stat:namespace=test;indexname=tmp\n");
    info(&c, "sindex-delete:namespace=test;indexname=tmp\n");
  }
  spk_srv_ctx_free(&c);
  return NULL;
}

SPK_TEST(writes_racing_with_create_and_drop) {
  spk_srv *s = fx_server(1, 1);
  spk_srv_ns *ns = s->ns[0];
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;set=s;indexname=ix;bin=n;"
                             "type=numeric\n"), "ok");
  _Atomic bool stop = false;
  worker w[4];
  pthread_t t[4];
  for (uint32_t i = 0; i < 4; i++) {
    w[i] = (worker){s, i, &stop};
    SPK_ASSERT_OK(pthread_create(&t[i], NULL, i < 3 ? writer : churner, &w[i]));
  }
  pthread_join(t[3], NULL);
  atomic_store(&stop, true);
  for (uint32_t i = 0; i < 3; i++) pthread_join(t[i], NULL);
  SPK_ASSERT_EQ(spk_srv_sindex_verify(ns, "ix"), 0);
  /* An index created while writes ran is consistent too. */
  atomic_store(&stop, false);
  for (uint32_t i = 0; i < 3; i++) SPK_ASSERT_OK(pthread_create(&t[i], NULL, writer, &w[i]));
  SPK_ASSERT_STR_EQ(info(&c, "sindex-create:namespace=test;set=s;indexname=late;bin=o;"
                             "type=numeric\n"), "ok");
  usleep(50 * 1000);
  atomic_store(&stop, true);
  for (uint32_t i = 0; i < 3; i++) pthread_join(t[i], NULL);
  SPK_ASSERT_EQ(spk_srv_sindex_verify(ns, "late"), 0);
  SPK_ASSERT_EQ(spk_srv_sindex_verify(ns, "ix"), 0);
  spk_srv_ctx_free(&c);
  fx_free(s);
}
