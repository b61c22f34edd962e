/* test_captures.c - the as_msg reader and particle decoders against every
 * type-3 response of the Aerospike 8.1.2 captures, plus value-level checks
 * of a few of them (/work/shared/reference/captures). */
#include <inttypes.h>
#include <stdarg.h>

#include "spk_msgpack.h"
#include "spk_proto.h"
#include "spk_test.h"

#include "cap_responses.inc"

#define N_CAPS (sizeof cap_resps / sizeof cap_resps[0])

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

/* Describe one parsed as_msg in the expectation format of
 * cap_responses.inc, decoding the particles on the way. */
static void describe(const spk_msg_view *v, text *t, const char *name) {
  addf(t, "%u/%u/%u/%u/%u/%u/%u", v->h.result_code, v->h.generation,
       v->h.record_ttl, v->h.transaction_ttl, v->h.n_fields, v->h.n_ops,
       v->h.info3);
  spk_msg_iter it = spk_msg_fields(v);
  spk_field_view f;
  while (spk_msg_next_field(&it, &f)) addf(t, " f%u:%u", f.type, f.len);
  it = spk_msg_ops(v);
  spk_op_view o;
  while (spk_msg_next_op(&it, &o)) {
    addf(t, " o%u:%u:%.*s:%u", o.op, o.particle, (int)o.name_len, o.name,
         o.value_len);
    switch (o.particle) {
      case SPK_PARTICLE_INTEGER: {
        int64_t i;
        if (o.value_len == 8) {
          SPK_ASSERT_OK(spk_particle_int(o.value, o.value_len, &i));
          addf(t, "=%" PRId64, i);
        }
        break;
      }
      case SPK_PARTICLE_FLOAT: {
        double d;
        if (o.value_len == 8) {
          SPK_ASSERT_OK(spk_particle_float(o.value, o.value_len, &d));
          addf(t, "=%.17g", d);
        }
        break;
      }
      case SPK_PARTICLE_BOOL: {
        bool b;
        SPK_ASSERT_OK(spk_particle_bool(o.value, o.value_len, &b));
        addf(t, "=%d", b ? 1 : 0);
        break;
      }
      case SPK_PARTICLE_GEOJSON: {
        const char *json;
        uint32_t jl;
        SPK_ASSERT_OK(spk_particle_geojson(o.value, o.value_len, &json, &jl));
        SPK_ASSERT(jl > 0 && json[0] == '{');
        break;
      }
      case SPK_PARTICLE_LIST:
      case SPK_PARTICLE_MAP:
        if (spk_mp_validate(o.value, o.value_len) != 0)
          SPK_FAIL("%s: bin %.*s: invalid msgpack", name, (int)o.name_len,
                   o.name);
        break;
      default:
        break;
    }
  }
  addf(t, "\n");
}

SPK_TEST(captured_responses_parse) {
  SPK_ASSERT_EQ(N_CAPS, 258);
  size_t n_msgs = 0;
  for (size_t c = 0; c < N_CAPS; c++) {
    size_t n;
    uint8_t *raw = spk_test_unhex(cap_resps[c].hex, &n);
    spk_proto pr;
    spk_error err;
    spk_error_reset(&err);
    SPK_ASSERT(n >= 8);
    if (spk_proto_check(raw, SPK_PROTO_MSG, &pr, &err))
      SPK_FAIL("%s: %s", cap_resps[c].name, err.message);
    SPK_ASSERT_EQ(pr.size, n - 8);

    /* Exact-size copy of the body, so a read past it is an ASan error. */
    size_t blen = n - 8;
    uint8_t *body = malloc(blen);
    if (!body) abort();
    memcpy(body, raw + 8, blen);
    free(raw);

    text t = {0};
    size_t off = 0;
    while (off < blen) {
      spk_msg_view v;
      size_t used = 0;
      if (spk_msg_parse(body + off, blen - off, &v, &used, &err))
        SPK_FAIL("%s: as_msg at %zu: %s", cap_resps[c].name, off,
                 err.message);
      SPK_ASSERT(used >= SPK_MSG_HEADER_SIZE && used <= blen - off);
      describe(&v, &t, cap_resps[c].name);
      off += used;
      n_msgs++;
    }
    if (!t.p || strcmp(t.p, cap_resps[c].expect) != 0)
      SPK_FAIL("%s:\n got:\n%s want:\n%s", cap_resps[c].name,
               t.p ? t.p : "", cap_resps[c].expect);
    free(t.p);
    free(body);
  }
  SPK_ASSERT(n_msgs > N_CAPS); /* batch / scan bodies hold several */
}

/* Any strict prefix of a captured as_msg that has fields or ops fails to
 * parse, and only the prefix is ever read. */
SPK_TEST(captured_responses_every_truncation) {
  for (size_t c = 0; c < N_CAPS; c++) {
    size_t n;
    uint8_t *raw = spk_test_unhex(cap_resps[c].hex, &n);
    const uint8_t *body = raw + 8;
    size_t blen = n - 8, off = 0;
    while (off < blen) {
      spk_msg_view v;
      size_t used;
      SPK_ASSERT_OK(spk_msg_parse(body + off, blen - off, &v, &used, NULL));
      bool has_items = v.h.n_fields || v.h.n_ops;
      for (size_t cut = 0; cut < used; cut++) {
        if (cut >= SPK_MSG_HEADER_SIZE && !has_items) break;
        uint8_t *p = malloc(cut ? cut : 1);
        if (!p) abort();
        memcpy(p, body + off, cut);
        spk_msg_view w;
        size_t u2;
        if (spk_msg_parse(p, cut, &w, &u2, NULL) != SPK_ERR_PROTOCOL)
          SPK_FAIL("%s: prefix %zu of %zu accepted", cap_resps[c].name, cut,
                   used);
        free(p);
      }
      off += used;
    }
    free(raw);
  }
}

static const struct cap_resp *find_cap(const char *name) {
  for (size_t c = 0; c < N_CAPS; c++)
    if (strcmp(cap_resps[c].name, name) == 0) return &cap_resps[c];
  SPK_FAIL("no capture named %s", name);
}

/* Parse the single as_msg of a single-record response; caller frees *raw. */
static void parse_single(const char *name, uint8_t **raw, spk_msg_view *v) {
  size_t n, used;
  *raw = spk_test_unhex(find_cap(name)->hex, &n);
  spk_proto pr;
  SPK_ASSERT_OK(spk_proto_check(*raw, SPK_PROTO_MSG, &pr, NULL));
  SPK_ASSERT_OK(spk_msg_parse(*raw + 8, n - 8, v, &used, NULL));
  SPK_ASSERT_EQ(used, n - 8);
}

static int next_op_named(spk_msg_iter *it, spk_op_view *o, const char *bin) {
  if (!spk_msg_next_op(it, o)) return 0;
  return o->name_len == strlen(bin) && memcmp(o->name, bin, o->name_len) == 0;
}

static void expect_mp(spk_mp_reader *r, spk_mp_type type) {
  spk_mp_item it;
  SPK_ASSERT_OK(spk_mp_next(r, &it));
  SPK_ASSERT_EQ(it.type, type);
}

static void expect_mp_int(spk_mp_reader *r, int64_t v) {
  spk_mp_item it;
  SPK_ASSERT_OK(spk_mp_next(r, &it));
  SPK_ASSERT_EQ(it.type, SPK_MP_INT);
  SPK_ASSERT_EQ(it.v.i, v);
}

static void expect_mp_count(spk_mp_reader *r, spk_mp_type type, uint32_t n) {
  spk_mp_item it;
  SPK_ASSERT_OK(spk_mp_next(r, &it));
  SPK_ASSERT_EQ(it.type, type);
  SPK_ASSERT_EQ(it.v.n, n);
}

static void expect_mp_pstr(spk_mp_reader *r, uint8_t ptype, const char *s) {
  spk_mp_item it;
  uint8_t pt;
  const uint8_t *data;
  uint32_t len;
  SPK_ASSERT_OK(spk_mp_next(r, &it));
  SPK_ASSERT_OK(spk_mp_particle_str(&it, &pt, &data, &len));
  SPK_ASSERT_EQ(pt, ptype);
  SPK_ASSERT_EQ(len, strlen(s));
  SPK_ASSERT_MEM_EQ(data, s, len);
}

SPK_TEST(captured_get_all_types_values) {
  uint8_t *raw;
  spk_msg_view v;
  parse_single("records: get all bins (all-types)", &raw, &v);
  SPK_ASSERT_EQ(v.h.result_code, 0);
  SPK_ASSERT_EQ(v.h.generation, 1);
  SPK_ASSERT_EQ(v.h.record_ttl, 0);
  SPK_ASSERT_EQ(spk_void_time_to_ttl(v.h.record_ttl, 1795304128u), -1);
  SPK_ASSERT_EQ(v.h.n_ops, 16);

  spk_msg_iter it = spk_msg_ops(&v);
  spk_op_view o;
  int64_t i;
  double d;
  bool b;
  SPK_ASSERT(next_op_named(&it, &o, "i_small"));
  SPK_ASSERT_EQ(o.op, SPK_OP_READ);
  SPK_ASSERT_OK(spk_particle_int(o.value, o.value_len, &i));
  SPK_ASSERT_EQ(i, 7);
  SPK_ASSERT(next_op_named(&it, &o, "i_neg"));
  SPK_ASSERT_OK(spk_particle_int(o.value, o.value_len, &i));
  SPK_ASSERT_EQ(i, -12345);
  SPK_ASSERT(next_op_named(&it, &o, "i_max"));
  SPK_ASSERT_OK(spk_particle_int(o.value, o.value_len, &i));
  SPK_ASSERT(i == INT64_MAX);
  SPK_ASSERT(next_op_named(&it, &o, "f"));
  SPK_ASSERT_OK(spk_particle_float(o.value, o.value_len, &d));
  SPK_ASSERT(d == 3.25);
  SPK_ASSERT(next_op_named(&it, &o, "f_neg"));
  SPK_ASSERT_OK(spk_particle_float(o.value, o.value_len, &d));
  SPK_ASSERT(d == -0.1);
  SPK_ASSERT(next_op_named(&it, &o, "s_ascii"));
  SPK_ASSERT_EQ(o.particle, SPK_PARTICLE_STRING);
  SPK_ASSERT_EQ(o.value_len, 5);
  SPK_ASSERT_MEM_EQ(o.value, "hello", 5);
  SPK_ASSERT(next_op_named(&it, &o, "s_utf8"));
  SPK_ASSERT_EQ(o.value_len, 24);
  SPK_ASSERT_MEM_EQ(o.value, "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 ", 18);
  SPK_ASSERT(next_op_named(&it, &o, "s_empty"));
  SPK_ASSERT_EQ(o.value_len, 0);
  SPK_ASSERT(next_op_named(&it, &o, "blob"));
  SPK_ASSERT_EQ(o.particle, SPK_PARTICLE_BLOB);
  SPK_ASSERT_MEM_EQ(o.value, "\x00\x01\x02\xff", 4);
  SPK_ASSERT(next_op_named(&it, &o, "b_true"));
  SPK_ASSERT_OK(spk_particle_bool(o.value, o.value_len, &b));
  SPK_ASSERT(b);
  SPK_ASSERT(next_op_named(&it, &o, "b_false"));
  SPK_ASSERT_OK(spk_particle_bool(o.value, o.value_len, &b));
  SPK_ASSERT(!b);

  /* [1, "two", 3.5, [4, "five", blob 06], {"k": "v"}, true, nil, -1] */
  SPK_ASSERT(next_op_named(&it, &o, "list"));
  SPK_ASSERT_EQ(o.particle, SPK_PARTICLE_LIST);
  spk_mp_reader r;
  spk_mp_item m;
  spk_mp_reader_init(&r, o.value, o.value_len);
  expect_mp_count(&r, SPK_MP_ARRAY, 8);
  expect_mp_int(&r, 1);
  expect_mp_pstr(&r, SPK_PARTICLE_STRING, "two");
  SPK_ASSERT_OK(spk_mp_next(&r, &m));
  SPK_ASSERT(m.type == SPK_MP_DOUBLE && m.v.d == 3.5);
  expect_mp_count(&r, SPK_MP_ARRAY, 3);
  expect_mp_int(&r, 4);
  expect_mp_pstr(&r, SPK_PARTICLE_STRING, "five");
  expect_mp_pstr(&r, SPK_PARTICLE_BLOB, "\x06");
  expect_mp_count(&r, SPK_MP_MAP, 1);
  expect_mp_pstr(&r, SPK_PARTICLE_STRING, "k");
  expect_mp_pstr(&r, SPK_PARTICLE_STRING, "v");
  SPK_ASSERT_OK(spk_mp_next(&r, &m));
  SPK_ASSERT(m.type == SPK_MP_BOOL && m.v.b);
  expect_mp(&r, SPK_MP_NIL);
  expect_mp_int(&r, -1);
  SPK_ASSERT(r.p == r.end);

  /* Unordered maps come back key-sorted: 3, 10, "a", "b", blob bb. */
  SPK_ASSERT(next_op_named(&it, &o, "map"));
  spk_mp_reader_init(&r, o.value, o.value_len);
  expect_mp_count(&r, SPK_MP_MAP, 5);
  expect_mp_int(&r, 3);
  expect_mp_count(&r, SPK_MP_ARRAY, 2);
  expect_mp_int(&r, 1);
  expect_mp_int(&r, 2);
  expect_mp_int(&r, 10);
  SPK_ASSERT_OK(spk_mp_skip(&r)); /* {"n": nil} */
  expect_mp_pstr(&r, SPK_PARTICLE_STRING, "a");
  expect_mp_int(&r, 1);
  expect_mp_pstr(&r, SPK_PARTICLE_STRING, "b");
  expect_mp_pstr(&r, SPK_PARTICLE_STRING, "x");
  expect_mp_pstr(&r, SPK_PARTICLE_BLOB, "\xbb");
  expect_mp_int(&r, -2);
  SPK_ASSERT(r.p == r.end);

  /* K_ORDERED map keeps its (ext type 1, nil) header pair. */
  SPK_ASSERT(next_op_named(&it, &o, "omap"));
  spk_mp_reader_init(&r, o.value, o.value_len);
  expect_mp_count(&r, SPK_MP_MAP, 4);
  SPK_ASSERT_OK(spk_mp_next(&r, &m));
  SPK_ASSERT_EQ(m.type, SPK_MP_EXT);
  SPK_ASSERT_EQ(m.v.s.ext_type, 1);
  SPK_ASSERT_EQ(m.v.s.len, 0);
  expect_mp(&r, SPK_MP_NIL);
  expect_mp_int(&r, 5);

  SPK_ASSERT(next_op_named(&it, &o, "olist"));
  spk_mp_reader_init(&r, o.value, o.value_len);
  expect_mp_count(&r, SPK_MP_ARRAY, 4);
  SPK_ASSERT_OK(spk_mp_next(&r, &m));
  SPK_ASSERT(m.type == SPK_MP_EXT && m.v.s.ext_type == 1);

  SPK_ASSERT(next_op_named(&it, &o, "geo"));
  const char *json;
  uint32_t jl;
  SPK_ASSERT_OK(spk_particle_geojson(o.value, o.value_len, &json, &jl));
  SPK_ASSERT_EQ(spk_be16(o.value + 1), 1); /* the server adds one cell */
  SPK_ASSERT_EQ(jl, 45);
  SPK_ASSERT_MEM_EQ(json, "{\"type\":\"Point\",\"coordinates\":[-122.25,37.5]}",
                    45);
  SPK_ASSERT(!spk_msg_next_op(&it, &o));
  free(raw);
}

SPK_TEST(captured_operate_values) {
  uint8_t *raw;
  spk_msg_view v;
  spk_msg_iter it;
  spk_op_view o;
  int64_t i;

  /* RESPOND_ALL_OPS: a NULL placeholder for the write, then both reads,
   * the missing bin as a NULL entry. */
  parse_single("operate: write + reads with respond-all-ops", &raw, &v);
  SPK_ASSERT_EQ(v.h.generation, 13);
  it = spk_msg_ops(&v);
  SPK_ASSERT(next_op_named(&it, &o, "w"));
  SPK_ASSERT_EQ(o.op, SPK_OP_WRITE);
  SPK_ASSERT_EQ(o.particle, SPK_PARTICLE_NULL);
  SPK_ASSERT_EQ(o.value_len, 0);
  SPK_ASSERT(next_op_named(&it, &o, "i"));
  SPK_ASSERT_OK(spk_particle_int(o.value, o.value_len, &i));
  SPK_ASSERT_EQ(i, -5);
  SPK_ASSERT(next_op_named(&it, &o, "nosuchbin"));
  SPK_ASSERT_EQ(o.particle, SPK_PARTICLE_NULL);
  SPK_ASSERT(!spk_msg_next_op(&it, &o));
  free(raw);

  /* TOUCH with ttl 300: void time = capture time + 300. */
  parse_single("operate: touch op", &raw, &v);
  SPK_ASSERT_EQ(v.h.generation, 17);
  SPK_ASSERT_EQ(v.h.record_ttl, 533000446u);
  SPK_ASSERT_EQ(spk_void_time_to_ttl(v.h.record_ttl,
                                     533000146u + SPK_CITRUSLEAF_EPOCH),
                300);
  free(raw);

  /* The same bin twice (CDT_READ echoes op 3). */
  parse_single("operate: list size + get_by_index (CDT_READ)", &raw, &v);
  it = spk_msg_ops(&v);
  SPK_ASSERT(next_op_named(&it, &o, "l"));
  SPK_ASSERT_EQ(o.op, SPK_OP_CDT_READ);
  SPK_ASSERT_OK(spk_particle_int(o.value, o.value_len, &i));
  SPK_ASSERT_EQ(i, 4);
  SPK_ASSERT(next_op_named(&it, &o, "l"));
  SPK_ASSERT_OK(spk_particle_int(o.value, o.value_len, &i));
  SPK_ASSERT_EQ(i, 1);
  free(raw);

  /* KEY_VALUE map result flagged with (ext 8, nil). */
  parse_single("operate: map get_by_key_list KEY_VALUE", &raw, &v);
  it = spk_msg_ops(&v);
  SPK_ASSERT(next_op_named(&it, &o, "m"));
  SPK_ASSERT_EQ(o.particle, SPK_PARTICLE_MAP);
  spk_mp_reader r;
  spk_mp_item m;
  spk_mp_reader_init(&r, o.value, o.value_len);
  expect_mp_count(&r, SPK_MP_MAP, 3);
  SPK_ASSERT_OK(spk_mp_next(&r, &m));
  SPK_ASSERT(m.type == SPK_MP_EXT && m.v.s.ext_type == 8 && m.v.s.len == 0);
  expect_mp(&r, SPK_MP_NIL);
  expect_mp_pstr(&r, SPK_PARTICLE_STRING, "a");
  expect_mp_int(&r, 1);
  expect_mp_pstr(&r, SPK_PARTICLE_STRING, "b");
  expect_mp_int(&r, 2);
  SPK_ASSERT(r.p == r.end);
  free(raw);

  parse_single("operate: incr float", &raw, &v);
  it = spk_msg_ops(&v);
  SPK_ASSERT(next_op_named(&it, &o, "f"));
  double d;
  SPK_ASSERT_OK(spk_particle_float(o.value, o.value_len, &d));
  SPK_ASSERT(d == 1.75);
  free(raw);

  parse_single("operate: incr int bin by float", &raw, &v);
  SPK_ASSERT_EQ(v.h.result_code, SPK_ERR_BIN_INCOMPATIBLE_TYPE);
  SPK_ASSERT_EQ(v.h.n_ops, 0);
  free(raw);
}
