/* test_info.c - info requests, line iteration, errors, numbers, versions,
 * base64, and the peers / replicas parsers, against the captured answers
 * of Aerospike 8.1.2 and against malformed input. */
#include <stdarg.h>

#include "spk_info.h"
#include "spk_test.h"

#include "cap_info.inc"

#define N_CAP_INFOS (sizeof cap_infos / sizeof cap_infos[0])

static spk_strv sv(const char *z) {
  spk_strv s = {z, strlen(z)};
  return s;
}

typedef struct {
  char *p;
  size_t len, cap;
} text;

static void addf(text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void addf(text *t, const char *fmt, ...) {
  va_list ap;
  if (!t->p) { /* NULL + 0 is undefined: start with a real block */
    t->cap = 256;
    t->p = malloc(t->cap);
    if (!t->p) abort();
  }
  for (;;) {
    va_start(ap, fmt);
    int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) abort();
    if ((size_t)n < t->cap - t->len) {
      t->len += (size_t)n;
      return;
    }
    t->cap = t->cap * 2 + (size_t)n + 64;
    t->p = realloc(t->p, t->cap);
    if (!t->p) abort();
  }
}

/* Copy a slice into an exact-size heap block: ASan then flags any read
 * past it, and nothing may rely on a terminating NUL. */
static spk_strv heap_copy(const char *p, size_t n) {
  char *q = malloc(n ? n : 1);
  if (!q) abort();
  memcpy(q, p, n);
  spk_strv s = {q, n};
  return s;
}

/* ---- requests and lines --------------------------------------------------- */

SPK_TEST(info_request_bytes) {
  spk_buf b = {0};
  const char *cmds[] = {"node", "partition-generation"};
  SPK_ASSERT_OK(spk_info_request(&b, cmds, 2));
  char hex[200];
  spk_test_hex(b.data, b.len, hex);
  SPK_ASSERT_STR_EQ(hex, "020100000000001a6e6f64650a706172746974696f6e2d67656e"
                         "65726174696f6e0a");
  /* Appends; an empty command list is an empty body. */
  SPK_ASSERT_OK(spk_info_request(&b, cmds, 0));
  SPK_ASSERT_EQ(b.len, 34 + 8);
  spk_test_hex(b.data + 34, 8, hex);
  SPK_ASSERT_STR_EQ(hex, "0201000000000000");
  spk_buf_free(&b);
}

SPK_TEST(info_next_lines) {
  static const char body[] =
      "node\tA1\nbuild\t8.1.2.0\npartition-generation\t0\n"
      "cluster-name\tasbuild\nno-such-cmd\tERROR:4:unrecognized command\n";
  spk_strv in = heap_copy(body, sizeof body - 1);
  size_t pos = 0;
  spk_strv n, v;
  static const char *want[][2] = {{"node", "A1"},
                                  {"build", "8.1.2.0"},
                                  {"partition-generation", "0"},
                                  {"cluster-name", "asbuild"},
                                  {"no-such-cmd", "ERROR:4:unrecognized command"}};
  for (int i = 0; i < 5; i++) {
    SPK_ASSERT(spk_info_next(in.p, in.len, &pos, &n, &v));
    SPK_ASSERT(spk_strv_eq(n, want[i][0]));
    SPK_ASSERT(spk_strv_eq(v, want[i][1]));
  }
  SPK_ASSERT(!spk_info_next(in.p, in.len, &pos, &n, &v));
  SPK_ASSERT(!spk_info_next(in.p, in.len, &pos, &n, &v));
  SPK_ASSERT_EQ(pos, in.len);

  SPK_ASSERT(spk_info_find(in.p, in.len, "build", &v));
  SPK_ASSERT(spk_strv_eq(v, "8.1.2.0"));
  SPK_ASSERT(!spk_info_find(in.p, in.len, "nod", &v));
  SPK_ASSERT(!spk_info_find(in.p, in.len, "node\tA1", &v));
  SPK_ASSERT(spk_info_find(in.p, in.len, "no-such-cmd", &v));
  int code;
  spk_strv msg;
  SPK_ASSERT(spk_info_error(v, &code, &msg));
  SPK_ASSERT_EQ(code, 4);
  SPK_ASSERT(spk_strv_eq(msg, "unrecognized command"));
  free((void *)in.p);

  /* Lines without a value, an empty value, blank lines, no final '\n'. */
  static const char odd[] = "services-alumni\t\n\nlonely\nlast\tx";
  in = heap_copy(odd, sizeof odd - 1);
  pos = 0;
  SPK_ASSERT(spk_info_next(in.p, in.len, &pos, &n, &v));
  SPK_ASSERT(spk_strv_eq(n, "services-alumni") && v.len == 0);
  SPK_ASSERT(spk_info_next(in.p, in.len, &pos, &n, &v));
  SPK_ASSERT(spk_strv_eq(n, "lonely") && v.len == 0);
  SPK_ASSERT(spk_info_next(in.p, in.len, &pos, &n, &v));
  SPK_ASSERT(spk_strv_eq(n, "last") && spk_strv_eq(v, "x"));
  SPK_ASSERT(!spk_info_next(in.p, in.len, &pos, &n, &v));
  free((void *)in.p);

  /* Empty body (the answer to an unterminated request). */
  pos = 0;
  SPK_ASSERT(!spk_info_next("", 0, &pos, &n, &v));
  SPK_ASSERT(!spk_info_find("", 0, "node", &v));
  /* A value may itself contain tabs. */
  pos = 0;
  SPK_ASSERT(spk_info_next("a\tb\tc\n", 6, &pos, &n, &v));
  SPK_ASSERT(spk_strv_eq(n, "a") && spk_strv_eq(v, "b\tc"));
}

/* Every line of every captured body, and every truncation of one. */
SPK_TEST(info_next_captured_bodies) {
  for (size_t c = 0; c < N_CAP_INFOS; c++) {
    spk_strv in = heap_copy(cap_infos[c].body, strlen(cap_infos[c].body));
    size_t pos = 0, lines = 0, nl = 0;
    spk_strv n, v;
    for (size_t i = 0; i < in.len; i++) nl += in.p[i] == '\n';
    while (spk_info_next(in.p, in.len, &pos, &n, &v)) {
      SPK_ASSERT(n.len > 0);
      SPK_ASSERT(n.p >= in.p && v.p + v.len <= in.p + in.len);
      lines++;
    }
    SPK_ASSERT_EQ(lines, nl);
    free((void *)in.p);
  }
  const char *body = cap_infos[N_CAP_INFOS - 1].body;
  size_t len = strlen(body);
  for (size_t cut = 0; cut <= len; cut++) {
    spk_strv in = heap_copy(body, cut);
    size_t pos = 0;
    spk_strv n, v;
    while (spk_info_next(in.p, in.len, &pos, &n, &v))
      SPK_ASSERT(v.p + v.len <= in.p + in.len);
    free((void *)in.p);
  }
}

SPK_TEST(info_error_values) {
  static const struct {
    const char *v;
    int is_err, code;
    const char *msg;
  } v[] = {
      {"ERROR:4:unrecognized command", 1, 4, "unrecognized command"},
      {"ERROR:7:unstable cluster", 1, 7, "unstable cluster"},
      {"ERROR:25:enterprise only", 1, 25, "enterprise only"},
      {"ERROR:81:role violation - requires permission 'x'", 1, 81,
       "role violation - requires permission 'x'"},
      {"ERROR::msg", 1, 1, "msg"},
      {"ERROR:", 1, 1, ""},
      {"ERROR:200", 1, 200, ""},
      {"ERROR:0:odd", 1, 1, "odd"},
      {"ERROR:no code here", 1, 1, "no code here"},
      {"ERROR:12x:y", 1, 1, "12x:y"},
      {"ERROR:9999999999:big", 1, 1, "9999999999:big"},
      {"ERROR:200:'cap_qn' already exists with different definition", 1, 200,
       "'cap_qn' already exists with different definition"},
      {"FAIL:5:nope", 1, 5, "nope"},
      {"error=invalid_content;file=x.lua", 1, 1, "invalid_content;file=x.lua"},
      {"ok", 0, 0, NULL},
      {"", 0, 0, NULL},
      {"ERROR", 0, 0, NULL},
      {"error:1:x", 0, 0, NULL},
      {"B557DDA41402", 0, 0, NULL},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    spk_strv in = heap_copy(v[i].v, strlen(v[i].v));
    int code = -99;
    spk_strv msg = {0};
    int r = spk_info_error(in, &code, &msg);
    if (r != v[i].is_err) SPK_FAIL("%s: %d", v[i].v, r);
    if (r) {
      SPK_ASSERT_EQ(code, v[i].code);
      if (!spk_strv_eq(msg, v[i].msg))
        SPK_FAIL("%s: message '%.*s'", v[i].v, (int)msg.len, msg.p);
      SPK_ASSERT(spk_info_error(in, NULL, NULL));
    }
    free((void *)in.p);
  }
}

/* ---- numbers and versions --------------------------------------------------- */

SPK_TEST(info_numbers) {
  int64_t i;
  uint64_t u;
  SPK_ASSERT_OK(spk_info_parse_i64(sv("0"), &i));
  SPK_ASSERT_EQ(i, 0);
  SPK_ASSERT_OK(spk_info_parse_i64(sv("-1"), &i));
  SPK_ASSERT_EQ(i, -1);
  SPK_ASSERT_OK(spk_info_parse_i64(sv("5425"), &i));
  SPK_ASSERT_EQ(i, 5425);
  SPK_ASSERT_OK(spk_info_parse_i64(sv("9223372036854775807"), &i));
  SPK_ASSERT(i == INT64_MAX);
  SPK_ASSERT_OK(spk_info_parse_i64(sv("-9223372036854775808"), &i));
  SPK_ASSERT(i == INT64_MIN);
  SPK_ASSERT_OK(spk_info_parse_i64(sv("-0"), &i));
  SPK_ASSERT_EQ(i, 0);
  SPK_ASSERT_OK(spk_info_parse_u64(sv("18446744073709551615"), &u));
  SPK_ASSERT(u == UINT64_MAX);
  SPK_ASSERT_OK(spk_info_parse_u64(sv("007"), &u));
  SPK_ASSERT_EQ(u, 7);
  static const char *bad_i[] = {"", "-", "+1", " 1", "1 ", "1a", "0x10",
                                "9223372036854775808", "-9223372036854775809",
                                "99999999999999999999", "1-", "--1"};
  for (size_t k = 0; k < sizeof bad_i / sizeof bad_i[0]; k++)
    if (spk_info_parse_i64(sv(bad_i[k]), &i) != SPK_ERR_PROTOCOL)
      SPK_FAIL("i64 accepted '%s'", bad_i[k]);
  static const char *bad_u[] = {"", "-1", "18446744073709551616", "1.5",
                                "ERROR:4:x"};
  for (size_t k = 0; k < sizeof bad_u / sizeof bad_u[0]; k++)
    if (spk_info_parse_u64(sv(bad_u[k]), &u) != SPK_ERR_PROTOCOL)
      SPK_FAIL("u64 accepted '%s'", bad_u[k]);
  /* Not NUL-terminated: the slice ends before the garbage. */
  spk_strv s = {"12345xyz", 5};
  SPK_ASSERT_OK(spk_info_parse_u64(s, &u));
  SPK_ASSERT_EQ(u, 12345);
}

SPK_TEST(info_versions) {
  static const struct {
    const char *v;
    uint32_t want;
  } ok[] = {
      {"8.1.2.0", 0x08010200u}, {"4.9.0.3", 0x04090003u},
      {"5.7.0.7", 0x05070007u}, {"6.0.0.0", 0x06000000u},
      {"10.300.1", 0x0aff0100u}, {"8", 0x08000000u},
      {"8.1", 0x08010000u},     {"8.1.2.0-rc1", 0x08010200u},
      {"7.2.0.4-1-gabc", 0x07020004u}, {"999999999999.1", 0xff010000u},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    uint32_t out = 0;
    SPK_ASSERT_OK(spk_info_parse_version(sv(ok[i].v), &out));
    if (out != ok[i].want) SPK_FAIL("%s: %08x", ok[i].v, out);
  }
  /* Ordering works as plain integer comparison. */
  uint32_t a, b;
  SPK_ASSERT_OK(spk_info_parse_version(sv("8.1.2.0"), &a));
  SPK_ASSERT_OK(spk_info_parse_version(sv("8.1.10.0"), &b));
  SPK_ASSERT(a < b);
  static const char *bad[] = {"", "a", "8.", ".8", "8..1", "1.2.3.4.5",
                              "8.1.2.0 ", "v8.1", "8.1.x", "-1", "8.-1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint32_t out;
    if (spk_info_parse_version(sv(bad[i]), &out) != SPK_ERR_PROTOCOL)
      SPK_FAIL("accepted version '%s'", bad[i]);
  }
}

/* ---- base64 ------------------------------------------------------------------ */

SPK_TEST(base64_vectors) {
  /* RFC 4648 section 10. */
  static const char *v[][2] = {{"", ""},         {"f", "Zg=="},
                               {"fo", "Zm8="},   {"foo", "Zm9v"},
                               {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="},
                               {"foobar", "Zm9vYmFy"}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char enc[16];
    size_t n = spk_base64_encode((const uint8_t *)v[i][0], strlen(v[i][0]), enc);
    SPK_ASSERT_EQ(n, strlen(v[i][1]));
    SPK_ASSERT_MEM_EQ(enc, v[i][1], n);
    uint8_t dec[16];
    spk_strv in = heap_copy(v[i][1], strlen(v[i][1]));
    long m = spk_base64_decode(in.p, in.len, dec, sizeof dec);
    SPK_ASSERT_EQ(m, (long)strlen(v[i][0]));
    SPK_ASSERT_MEM_EQ(dec, v[i][0], (size_t)m);
    /* Exactly enough room is fine, one byte less is not. */
    if (m > 0) {
      SPK_ASSERT_EQ(spk_base64_decode(in.p, in.len, dec, (size_t)m), m);
      SPK_ASSERT_EQ(spk_base64_decode(in.p, in.len, dec, (size_t)m - 1), -1);
    }
    free((void *)in.p);
  }
  /* All byte values round-trip, and the alphabet's last characters. */
  uint8_t all[256], back[256];
  for (int i = 0; i < 256; i++) all[i] = (uint8_t)i;
  char enc[400];
  size_t n = spk_base64_encode(all, 256, enc);
  SPK_ASSERT_EQ(n, 344);
  SPK_ASSERT_EQ(spk_base64_decode(enc, n, back, sizeof back), 256);
  SPK_ASSERT_MEM_EQ(back, all, 256);
  SPK_ASSERT_EQ(spk_base64_decode("+/+/", 4, back, 3), 3);
  SPK_ASSERT(back[0] == 0xfb && back[1] == 0xff && back[2] == 0xbf);

  static const char *bad[] = {"Z",    "Zg=",  "Zg===", "Z===", "====",
                              "Zg=a", "Z=g=", "Zm9v=Zm9", "Zm 9", "Zm9-",
                              "Zm9_", "Zm9\n", "Zm9\xc3"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t out[16];
    if (spk_base64_decode(bad[i], strlen(bad[i]), out, sizeof out) != -1)
      SPK_FAIL("decoded '%s'", bad[i]);
  }
}

/* ---- peers --------------------------------------------------------------------- */

static void describe_peers(const spk_peers *p, text *t) {
  addf(t, "gen=%llu port=%u", (unsigned long long)p->generation,
       p->default_port);
  for (uint32_t i = 0; i < p->n_peers; i++) {
    const spk_peer *pe = &p->peers[i];
    addf(t, " %s/%s/", pe->node_name, pe->tls_name);
    for (uint32_t h = 0; h < pe->n_hosts; h++)
      addf(t, "%s%s:%u", h ? "," : "", pe->hosts[h].name, pe->hosts[h].port);
  }
}

static void expect_peers(const char *value, const char *want) {
  spk_strv in = heap_copy(value, strlen(value));
  spk_peers p;
  spk_error err;
  spk_error_reset(&err);
  if (spk_peers_parse(in, &p, &err))
    SPK_FAIL("'%s' rejected: %s", value, err.message);
  text t = {0};
  describe_peers(&p, &t);
  if (strcmp(t.p, want) != 0) SPK_FAIL("'%s':\n got  %s\n want %s", value, t.p, want);
  free(t.p);
  spk_peers_free(&p);
  SPK_ASSERT(p.peers == NULL && p.n_peers == 0);
  spk_peers_free(&p); /* idempotent */
  free((void *)in.p);
}

static void expect_peers_bad(const char *value, const char *msg_part) {
  spk_strv in = heap_copy(value, strlen(value));
  spk_peers p;
  spk_error err;
  spk_error_reset(&err);
  int rc = spk_peers_parse(in, &p, &err);
  if (rc != SPK_ERR_PROTOCOL) SPK_FAIL("'%s' accepted (rc %d)", value, rc);
  SPK_ASSERT_EQ(err.code, SPK_ERR_PROTOCOL);
  if (msg_part && !strstr(err.message, msg_part))
    SPK_FAIL("'%s': message '%s' lacks '%s'", value, err.message, msg_part);
  SPK_ASSERT(p.peers == NULL && p.n_peers == 0);
  free((void *)in.p);
}

SPK_TEST(peers_grammar) {
  expect_peers("0,3000,[]", "gen=0 port=3000");
  expect_peers("5,3000,[]", "gen=5 port=3000");
  expect_peers("7,,[]", "gen=7 port=3000");
  /* The example of protocol-core 2.3. */
  expect_peers("12,3000,[[BB9020011AC4202,,[10.0.0.2]],"
               "[BB9030011AC4202,,[10.0.0.3,[2001:db8::3]:3100]]]",
               "gen=12 port=3000 BB9020011AC4202//10.0.0.2:3000 "
               "BB9030011AC4202//10.0.0.3:3000,2001:db8::3:3100");
  expect_peers("3,4000,[[A1,tls.example.com,[[::1],host.example.com:3005,"
               "192.168.1.1]]]",
               "gen=3 port=4000 A1/tls.example.com/::1:4000,"
               "host.example.com:3005,192.168.1.1:4000");
  expect_peers("3,,[[A1,,[[fe80::1%eth0]:3000]]]",
               "gen=3 port=3000 A1//fe80::1%eth0:3000");
  /* Empty host list, and the departed-node form of the delta variant. */
  expect_peers("9,3000,[[A1,,[]],[A2,,]]", "gen=9 port=3000 A1// A2//");
  expect_peers("18446744073709551615,65535,[[ABCDEF0123456789ABC,,[h:1]]]",
               "gen=18446744073709551615 port=65535 "
               "ABCDEF0123456789ABC//h:1");
  /* Many peers and hosts share one allocation. */
  text big = {0}, want = {0};
  addf(&big, "1,3000,[");
  addf(&want, "gen=1 port=3000");
  for (int i = 0; i < 50; i++) {
    addf(&big, "%s[N%d,,[", i ? "," : "", i);
    addf(&want, " N%d//", i);
    for (int h = 0; h < i % 4; h++) {
      addf(&big, "%s10.0.%d.%d:%d", h ? "," : "", i, h, 3000 + h);
      addf(&want, "%s10.0.%d.%d:%d", h ? "," : "", i, h, 3000 + h);
    }
    addf(&big, "]]");
  }
  addf(&big, "]");
  expect_peers(big.p, want.p);
  free(big.p);
  free(want.p);
}

SPK_TEST(peers_malformed) {
  expect_peers_bad("", "bad generation");
  expect_peers_bad("x,3000,[]", "bad generation");
  expect_peers_bad("-1,3000,[]", "bad generation");
  expect_peers_bad("18446744073709551616,3000,[]", "bad generation");
  expect_peers_bad("1", "after generation");
  expect_peers_bad("1,3000", "after default port");
  expect_peers_bad("1,3000,", "before peer list");
  expect_peers_bad("1,3000,[", "before peer");
  expect_peers_bad("1,3000,[]x", "trailing");
  expect_peers_bad("1,3000,[],", "trailing");
  expect_peers_bad("1,3000,[]]", "trailing");
  expect_peers_bad("1,0,[]", "bad port");
  expect_peers_bad("1,65536,[]", "bad port");
  expect_peers_bad("1,30a0,[]", "bad port");
  expect_peers_bad("1,3000,[[A1,,[h]]", "unterminated peer list");
  expect_peers_bad("1,3000,[[A1,,[h]", "unterminated peer");
  expect_peers_bad("1,3000,[[A1,,[h", "unterminated host list");
  expect_peers_bad("1,3000,[[A1,,[[::1", "unterminated IPv6");
  expect_peers_bad("1,3000,[[A1,,[[::1]", "unterminated host list");
  expect_peers_bad("1,3000,[[A1,,[[::1]:]]]", "bad port");
  expect_peers_bad("1,3000,[[A1,,[[]]]]", "empty host");
  expect_peers_bad("1,3000,[[A1,,[h:0]]]", "bad port");
  expect_peers_bad("1,3000,[[A1,,[h:65536]]]", "bad port");
  expect_peers_bad("1,3000,[[A1,,[h:123456]]]", "bad port");
  expect_peers_bad("1,3000,[[A1,,[h:]]]", "bad port");
  expect_peers_bad("1,3000,[[A1,,[::1]]]", "empty host");
  expect_peers_bad("1,3000,[[A1,,[fe80::1]]]", "bad port");
  expect_peers_bad("1,3000,[[A1,,[h,]]]", "empty host");
  expect_peers_bad("1,3000,[[A1,,[,h]]]", "empty host");
  expect_peers_bad("1,3000,[[,,[h]]]", "empty node name");
  expect_peers_bad("1,3000,[[A1]]", "after node name");
  expect_peers_bad("1,3000,[[A1,]]", "after TLS name");
  expect_peers_bad("1,3000,[[A1,,h]]", "before host list");
  expect_peers_bad("1,3000,[[A1,,[h]],]", "before peer");
  expect_peers_bad("1,3000,[A1,,[h]]", "before peer");
  expect_peers_bad("1,3000,[[A[1,,[h]]]", "after node name");
  /* Spaces and control bytes end a name (and so break the grammar). */
  expect_peers_bad("1,3000,[[A 1,,[h]]]", "after node name");
  expect_peers_bad("1,3000,[[A1,t\tls,[h]]]", "after TLS name");
  expect_peers_bad("1,3000,[[A1,,[h x]]]", "unterminated host list");
  expect_peers_bad("1,3000,[[A1,,[[::1\x7f]]]]", "unterminated IPv6");
  expect_peers_bad(" 1,3000,[]", "bad generation");
  spk_strv nul = heap_copy("1,3000,[[A\0001,,[h]]]", 19);
  spk_peers np;
  SPK_ASSERT_EQ(spk_peers_parse(nul, &np, NULL), SPK_ERR_PROTOCOL);
  free((void *)nul.p);
  /* Overlong names: node 19 chars is the maximum, 20 is too long. */
  expect_peers("1,3000,[[0123456789ABCDEF012,,[h]]]",
               "gen=1 port=3000 0123456789ABCDEF012//h:3000");
  expect_peers_bad("1,3000,[[0123456789ABCDEF0123,,[h]]]",
                   "node name too long");
  char v[700];
  char name[300];
  memset(name, 'h', sizeof name);
  snprintf(v, sizeof v, "1,3000,[[A1,,[%.255s]]]", name);
  spk_strv in = heap_copy(v, strlen(v));
  spk_peers p;
  SPK_ASSERT_OK(spk_peers_parse(in, &p, NULL));
  SPK_ASSERT_EQ(strlen(p.peers[0].hosts[0].name), 255);
  spk_peers_free(&p);
  free((void *)in.p);
  snprintf(v, sizeof v, "1,3000,[[A1,,[%.256s]]]", name);
  expect_peers_bad(v, "host too long");
  snprintf(v, sizeof v, "1,3000,[[A1,,[[%.256s]]]]", name);
  expect_peers_bad(v, "host too long");
  snprintf(v, sizeof v, "1,3000,[[A1,%.256s,[h]]]", name);
  expect_peers_bad(v, "TLS name too long");
  /* Sanity bounds: 4096 peers, 256 hosts per peer. */
  for (int extra = 0; extra <= 1; extra++) {
    text t = {0};
    addf(&t, "1,3000,[");
    for (int i = 0; i < 4096 + extra; i++) addf(&t, "%s[N%d,,[]]", i ? "," : "", i);
    addf(&t, "]");
    in = heap_copy(t.p, t.len);
    spk_error err;
    int rc = spk_peers_parse(in, &p, &err);
    if (extra) {
      SPK_ASSERT_EQ(rc, SPK_ERR_PROTOCOL);
      SPK_ASSERT(strstr(err.message, "too many peers") != NULL);
    } else {
      SPK_ASSERT_OK(rc);
      SPK_ASSERT_EQ(p.n_peers, 4096);
      spk_peers_free(&p);
    }
    free((void *)in.p);
    free(t.p);
    t = (text){0};
    addf(&t, "1,3000,[[A,,[");
    for (int i = 0; i < 256 + extra; i++) addf(&t, "%sh%d", i ? "," : "", i);
    addf(&t, "]],[B,,[h]]]");
    in = heap_copy(t.p, t.len);
    rc = spk_peers_parse(in, &p, &err);
    if (extra) {
      SPK_ASSERT_EQ(rc, SPK_ERR_PROTOCOL);
      SPK_ASSERT(strstr(err.message, "too many hosts") != NULL);
    } else {
      SPK_ASSERT_OK(rc);
      SPK_ASSERT_EQ(p.peers[0].n_hosts, 256);
      SPK_ASSERT_EQ(p.peers[1].n_hosts, 1);
      SPK_ASSERT_STR_EQ(p.peers[1].hosts[0].name, "h");
      SPK_ASSERT_STR_EQ(p.peers[0].hosts[255].name, "h255");
      spk_peers_free(&p);
    }
    free((void *)in.p);
    free(t.p);
  }
  /* NULL error pointer. */
  in = heap_copy("1,3000,[", 8);
  SPK_ASSERT_EQ(spk_peers_parse(in, &p, NULL), SPK_ERR_PROTOCOL);
  free((void *)in.p);
}

/* Every strict prefix of a valid peers value is invalid. */
SPK_TEST(peers_every_truncation) {
  static const char v[] =
      "12,3000,[[BB9020011AC4202,tls1,[10.0.0.2]],"
      "[BB9030011AC4202,,[10.0.0.3,[2001:db8::3]:3100,h.example:3001]],"
      "[C1,,[]]]";
  spk_strv full = heap_copy(v, sizeof v - 1);
  spk_peers p;
  SPK_ASSERT_OK(spk_peers_parse(full, &p, NULL));
  SPK_ASSERT_EQ(p.n_peers, 3);
  spk_peers_free(&p);
  for (size_t cut = 0; cut < full.len; cut++) {
    spk_strv in = heap_copy(v, cut);
    spk_error err;
    if (spk_peers_parse(in, &p, &err) != SPK_ERR_PROTOCOL)
      SPK_FAIL("prefix %zu accepted", cut);
    free((void *)in.p);
  }
  free((void *)full.p);
}

/* ---- replicas ------------------------------------------------------------------- */

typedef struct {
  text t;
  int calls;
  int stop_after; /* return 7 after this many calls; 0 = never */
  uint32_t last_n_bitmaps;
} rep_ctx;

static int rep_cb(void *vctx, spk_strv ns, uint32_t regime,
                  uint32_t n_replicas,
                  const uint8_t (*bitmaps)[SPK_REPLICA_BITMAP_BYTES],
                  uint32_t n_bitmaps) {
  rep_ctx *c = vctx;
  addf(&c->t, "%s%.*s r%u n%u", c->calls ? ";" : "", (int)ns.len, ns.p, regime,
       n_replicas);
  for (uint32_t i = 0; i < n_bitmaps; i++) {
    uint32_t count = 0, shown = 0;
    char first[80] = "";
    size_t fl = 0;
    for (uint32_t pid = 0; pid < SPK_N_PARTITIONS; pid++) {
      if (!spk_bitmap_test(bitmaps[i], pid)) continue;
      if (shown < 8)
        fl += (size_t)snprintf(first + fl, sizeof first - fl, "%s%u",
                               shown ? "," : "", pid);
      shown++;
      count++;
    }
    addf(&c->t, " c%u=%u[%s]", i, count, first);
  }
  c->calls++;
  c->last_n_bitmaps = n_bitmaps;
  return c->stop_after && c->calls == c->stop_after ? 7 : 0;
}

typedef int (*replicas_fn)(spk_strv, spk_replicas_cb, void *, spk_error *);

SPK_TEST(captured_peers_and_replicas) {
  int peers_seen = 0, replicas_seen = 0;
  for (size_t c = 0; c < N_CAP_INFOS; c++) {
    const struct cap_info *ci = &cap_infos[c];
    spk_strv body = heap_copy(ci->body, strlen(ci->body));
    spk_strv v;
    if (ci->peers) {
      SPK_ASSERT(spk_info_find(body.p, body.len, "peers-clear-std", &v) ||
                 spk_info_find(body.p, body.len, "peers-clear-alt", &v));
      spk_peers p;
      spk_error err;
      spk_error_reset(&err);
      if (spk_peers_parse(v, &p, &err)) SPK_FAIL("%s: %s", ci->name, err.message);
      text t = {0};
      describe_peers(&p, &t);
      if (strcmp(t.p, ci->peers) != 0)
        SPK_FAIL("%s:\n got  %s\n want %s", ci->name, t.p, ci->peers);
      free(t.p);
      spk_peers_free(&p);
      peers_seen++;
    }
    if (ci->replicas) {
      SPK_ASSERT(spk_info_find(body.p, body.len, ci->rkey, &v));
      replicas_fn fn = ci->rkind == 1 ? spk_replicas_parse : spk_replicas_all_parse;
      rep_ctx rc = {0};
      spk_error err;
      spk_error_reset(&err);
      if (fn(v, rep_cb, &rc, &err)) SPK_FAIL("%s: %s", ci->name, err.message);
      if (strcmp(rc.t.p, ci->replicas) != 0)
        SPK_FAIL("%s:\n got  %s\n want %s", ci->name, rc.t.p, ci->replicas);
      free(rc.t.p);
      /* The other grammar must reject it cleanly. */
      replicas_fn other = ci->rkind == 1 ? spk_replicas_all_parse : spk_replicas_parse;
      rep_ctx none = {0};
      SPK_ASSERT_EQ(other(v, rep_cb, &none, NULL), SPK_ERR_PROTOCOL);
      SPK_ASSERT_EQ(none.calls, 0);
      replicas_seen++;
    }
    free((void *)body.p);
  }
  SPK_ASSERT_EQ(peers_seen, 11);
  SPK_ASSERT_EQ(replicas_seen, 12);
}

/* A 684-char bitmap (512 bytes) with the given partitions set. */
static void make_bitmap(char out[SPK_REPLICA_BITMAP_B64 + 1], const uint32_t *pids,
                        size_t n) {
  uint8_t bm[SPK_REPLICA_BITMAP_BYTES] = {0};
  for (size_t i = 0; i < n; i++) spk_bitmap_set(bm, pids[i]);
  size_t len = spk_base64_encode(bm, sizeof bm, out);
  SPK_ASSERT_EQ(len, SPK_REPLICA_BITMAP_B64);
  out[len] = '\0';
}

static int replicas_try(const char *value, rep_ctx *c, spk_error *err) {
  spk_strv in = heap_copy(value, strlen(value));
  spk_error_reset(err);
  int rc = spk_replicas_parse(in, rep_cb, c, err);
  free((void *)in.p);
  return rc;
}

SPK_TEST(replicas_grammar) {
  static const uint32_t p0[] = {0, 7, 8, 4095}, p1[] = {1}, p2[] = {2, 3},
                        p3[] = {100};
  char b0[700], b1[700], b2[700], b3[700];
  make_bitmap(b0, p0, 4);
  make_bitmap(b1, p1, 1);
  make_bitmap(b2, p2, 2);
  make_bitmap(b3, p3, 1);
  text v = {0};
  addf(&v, "test:3,4,%s,%s,%s,%s;b:0,1,%s;zero:0,0", b0, b1, b2, b3, b1);
  rep_ctx c = {0};
  spk_error err;
  SPK_ASSERT_OK(replicas_try(v.p, &c, &err));
  SPK_ASSERT_STR_EQ(c.t.p,
                    "test r3 n4 c0=4[0,7,8,4095] c1=1[1] c2=2[2,3];"
                    "b r0 n1 c0=1[1];zero r0 n0");
  SPK_ASSERT_EQ(c.calls, 3);
  free(c.t.p);

  /* The callback's non-zero return stops the walk and is returned. */
  rep_ctx s = {0};
  s.stop_after = 2;
  SPK_ASSERT_EQ(replicas_try(v.p, &s, &err), 7);
  SPK_ASSERT_EQ(s.calls, 2);
  free(s.t.p);

  /* Empty value: no namespaces. A trailing ';' is tolerated. */
  rep_ctx e = {0};
  SPK_ASSERT_OK(replicas_try("", &e, &err));
  SPK_ASSERT_EQ(e.calls, 0);
  text t2 = {0};
  addf(&t2, "ns:0,1,%s;", b1);
  SPK_ASSERT_OK(replicas_try(t2.p, &e, &err));
  SPK_ASSERT_EQ(e.calls, 1);
  free(e.t.p);
  free(t2.p);

  /* 31-char namespace is the maximum; regime is a u32. */
  text t3 = {0};
  addf(&t3, "0123456789012345678901234567890:4294967295,1,%s", b0);
  rep_ctx m = {0};
  SPK_ASSERT_OK(replicas_try(t3.p, &m, &err));
  SPK_ASSERT(strstr(m.t.p, " r4294967295 n1 ") != NULL);
  free(m.t.p);
  free(t3.p);
  free(v.p);
}

static void expect_replicas_bad(const char *fmt, const char *bm,
                                const char *msg_part) {
  text v = {0};
  addf(&v, fmt, bm, bm);
  rep_ctx c = {0};
  spk_error err;
  int rc = replicas_try(v.p, &c, &err);
  if (rc != SPK_ERR_PROTOCOL) SPK_FAIL("accepted (rc %d): %.80s", rc, v.p);
  SPK_ASSERT_EQ(c.calls, 0); /* nothing reported before validation */
  if (!strstr(err.message, msg_part))
    SPK_FAIL("message '%s' lacks '%s'", err.message, msg_part);
  free(v.p);
  free(c.t.p);
}

SPK_TEST(replicas_malformed) {
  static const uint32_t p0[] = {5};
  char b[700];
  make_bitmap(b, p0, 1);
  expect_replicas_bad("test:0,1,%s;bar", b, "missing ':'");
  expect_replicas_bad("test:0,1,%s;;bar:0,1,%s", b, "empty namespace entry");
  expect_replicas_bad(";test:0,1,%s", b, "missing ':'");
  expect_replicas_bad(":0,1,%s", b, "namespace length");
  expect_replicas_bad("01234567890123456789012345678901:0,1,%s", b,
                      "namespace length");
  expect_replicas_bad("test:x,1,%s", b, "bad regime");
  expect_replicas_bad("test:4294967296,1,%s", b, "bad regime");
  expect_replicas_bad("test:,1,%s", b, "bad regime");
  expect_replicas_bad("test:0%.0s", b, "missing replica count");
  expect_replicas_bad("test:0,%s", b, "bad replica count");
  expect_replicas_bad("test:0,-1,%s", b, "bad replica count");
  expect_replicas_bad("test:0,2,%s", b, "fewer bitmaps");
  expect_replicas_bad("test:0,1%.0s", b, "fewer bitmaps");
  expect_replicas_bad("test:0,4294967295,%s", b, "fewer bitmaps");
  expect_replicas_bad("test:0,1,%s,%s", b, "more bitmaps");
  expect_replicas_bad("test:0,1,%s,", b, "more bitmaps");
  expect_replicas_bad("test:0,0,%s", b, "more bitmaps");
  expect_replicas_bad("test:0,1,A%s", b, "685 base64 chars");
  expect_replicas_bad("test:0,1,%.683s", b, "683 base64 chars");
  expect_replicas_bad("test:0,1,%.0s", b, "0 base64 chars");
  expect_replicas_bad("test:0,1,%.0s//8=", b, "4 base64 chars");
  /* Right length, bad content. */
  char bad[700];
  memcpy(bad, b, sizeof bad);
  bad[10] = '!';
  expect_replicas_bad("test:0,1,%s", bad, "bad base64");
  memcpy(bad, b, sizeof bad);
  bad[682] = '=';
  bad[683] = '=';
  expect_replicas_bad("test:0,1,%s", bad, "bad base64"); /* decodes to 511 */
  memcpy(bad, b, sizeof bad);
  bad[100] = '=';
  expect_replicas_bad("test:0,1,%s", bad, "bad base64");
  /* A valid first entry does not reach the callback when a later one is
   * broken. */
  expect_replicas_bad("good:0,1,%s;bad:0,1,%.5s", b, "5 base64 chars");
}

/* Truncations either fail cleanly or end exactly at an entry boundary. */
SPK_TEST(replicas_every_truncation) {
  static const uint32_t p0[] = {1, 2, 3};
  char b[700];
  make_bitmap(b, p0, 1);
  text v = {0};
  addf(&v, "test:0,2,%s,%s;bar:0,1,%s", b, b, b);
  size_t boundary1 = strlen("test:0,2,") + 684 + 1 + 684;
  for (size_t cut = 0; cut <= v.len; cut++) {
    rep_ctx c = {0};
    spk_error err;
    spk_strv in = heap_copy(v.p, cut);
    int rc = spk_replicas_parse(in, rep_cb, &c, &err);
    bool at_boundary = cut == 0 || cut == boundary1 || cut == boundary1 + 1 ||
                       cut == v.len;
    if ((rc == 0) != at_boundary) SPK_FAIL("cut %zu: rc %d", cut, rc);
    if (rc) SPK_ASSERT_EQ(c.calls, 0);
    free((void *)in.p);
    free(c.t.p);
  }
  free(v.p);
}

SPK_TEST(replicas_all_grammar) {
  static const uint32_t p0[] = {9};
  char b[700];
  make_bitmap(b, p0, 1);
  text v = {0};
  addf(&v, "test:2,%s,%s;bar:1,%s", b, b, b);
  rep_ctx c = {0};
  spk_strv in = heap_copy(v.p, v.len);
  SPK_ASSERT_OK(spk_replicas_all_parse(in, rep_cb, &c, NULL));
  SPK_ASSERT_STR_EQ(c.t.p, "test r0 n2 c0=1[9] c1=1[9];bar r0 n1 c0=1[9]");
  free((void *)in.p);
  free(c.t.p);
  free(v.p);
  in = heap_copy("test:1", 6);
  SPK_ASSERT_EQ(spk_replicas_all_parse(in, rep_cb, &c, NULL), SPK_ERR_PROTOCOL);
  free((void *)in.p);
}

SPK_TEST(bitmap_helpers) {
  uint8_t bm[SPK_REPLICA_BITMAP_BYTES] = {0};
  spk_bitmap_set(bm, 0);
  spk_bitmap_set(bm, 9);
  spk_bitmap_set(bm, 4095);
  SPK_ASSERT_EQ(bm[0], 0x80);
  SPK_ASSERT_EQ(bm[1], 0x40);
  SPK_ASSERT_EQ(bm[511], 0x01);
  SPK_ASSERT(spk_bitmap_test(bm, 0) && spk_bitmap_test(bm, 9) &&
             spk_bitmap_test(bm, 4095));
  SPK_ASSERT(!spk_bitmap_test(bm, 1) && !spk_bitmap_test(bm, 8));
}
