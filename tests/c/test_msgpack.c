/* test_msgpack.c - msgpack writer and reader: every width at its
 * boundaries, both directions; nesting, truncation, reserved bytes, depth
 * and count limits. */
#include <math.h>

#include "spk_msgpack.h"
#include "spk_test.h"

static void assert_buf_hex(const spk_buf *b, const char *want) {
  char *got = malloc(2 * b->len + 1);
  if (!got) abort();
  spk_test_hex(b->data, b->len, got);
  if (strcmp(got, want) != 0) SPK_FAIL("got %s want %s", got, want);
  free(got);
}

/* Read exactly one item from an exact-size heap copy of b. */
static spk_mp_item read_one(const spk_buf *b) {
  uint8_t *p = malloc(b->len);
  if (!p) abort();
  memcpy(p, b->data, b->len);
  spk_mp_reader r;
  spk_mp_item it;
  spk_mp_reader_init(&r, p, b->len);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT(it.type == SPK_MP_ARRAY || it.type == SPK_MP_MAP ||
             r.p == r.end);
  free(p);
  return it;
}

/* ---- integers ------------------------------------------------------------- */

SPK_TEST(mp_int_boundaries) {
  static const struct {
    int64_t v;
    const char *hex;
  } v[] = {
      {0, "00"},
      {1, "01"},
      {127, "7f"},
      {128, "cc80"},
      {255, "ccff"},
      {256, "cd0100"},
      {65535, "cdffff"},
      {65536, "ce00010000"},
      {4294967295LL, "ceffffffff"},
      {4294967296LL, "cf0000000100000000"},
      {INT64_MAX, "cf7fffffffffffffff"},
      {-1, "ff"},
      {-32, "e0"},
      {-33, "d0df"},
      {-128, "d080"},
      {-129, "d1ff7f"},
      {-32768, "d18000"},
      {-32769, "d2ffff7fff"},
      {INT32_MIN, "d280000000"},
      {(int64_t)INT32_MIN - 1, "d3ffffffff7fffffff"},
      {INT64_MIN, "d38000000000000000"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    spk_buf b = {0};
    SPK_ASSERT_OK(spk_mp_pack_int(&b, v[i].v));
    assert_buf_hex(&b, v[i].hex);
    spk_mp_item it = read_one(&b);
    SPK_ASSERT_EQ(it.type, SPK_MP_INT);
    SPK_ASSERT(it.v.i == v[i].v);
    spk_buf_free(&b);
  }
}

SPK_TEST(mp_uint_boundaries) {
  static const struct {
    uint64_t v;
    const char *hex;
  } v[] = {
      {0, "00"},
      {127, "7f"},
      {128, "cc80"},
      {255, "ccff"},
      {256, "cd0100"},
      {65535, "cdffff"},
      {65536, "ce00010000"},
      {UINT32_MAX, "ceffffffff"},
      {(uint64_t)UINT32_MAX + 1, "cf0000000100000000"},
      {(uint64_t)INT64_MAX, "cf7fffffffffffffff"},
      {(uint64_t)INT64_MAX + 1, "cf8000000000000000"},
      {UINT64_MAX, "cfffffffffffffffff"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    spk_buf b = {0};
    SPK_ASSERT_OK(spk_mp_pack_uint(&b, v[i].v));
    assert_buf_hex(&b, v[i].hex);
    spk_mp_item it = read_one(&b);
    if (v[i].v <= (uint64_t)INT64_MAX) {
      SPK_ASSERT_EQ(it.type, SPK_MP_INT);
      SPK_ASSERT((uint64_t)it.v.i == v[i].v);
    } else {
      SPK_ASSERT_EQ(it.type, SPK_MP_UINT);
      SPK_ASSERT(it.v.u == v[i].v);
    }
    spk_buf_free(&b);
  }
}

/* Non-minimal encodings from other writers decode to the same value. */
SPK_TEST(mp_read_wide_forms) {
  static const struct {
    const char *hex;
    int64_t v;
  } v[] = {
      {"cc05", 5},          {"cd0005", 5},         {"ce00000005", 5},
      {"cf0000000000000005", 5},                   {"d005", 5},
      {"d0ff", -1},         {"d10005", 5},         {"d1ffff", -1},
      {"d200000005", 5},    {"d2ffffffff", -1},    {"d37fffffffffffffff", INT64_MAX},
      {"d3ffffffffffffffff", -1},                  {"d08000", -128},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    size_t n;
    uint8_t *p = spk_test_unhex(v[i].hex, &n);
    spk_mp_reader r;
    spk_mp_item it;
    spk_mp_reader_init(&r, p, n);
    SPK_ASSERT_OK(spk_mp_next(&r, &it));
    SPK_ASSERT_EQ(it.type, SPK_MP_INT);
    if (it.v.i != v[i].v) SPK_FAIL("%s: %lld", v[i].hex, (long long)it.v.i);
    /* "d08000" has one trailing byte; everything else is consumed. */
    SPK_ASSERT_EQ(r.end - r.p, i == sizeof v / sizeof v[0] - 1 ? 1 : 0);
    free(p);
  }
}

/* ---- scalars ----------------------------------------------------------------- */

SPK_TEST(mp_scalars) {
  spk_buf b = {0};
  SPK_ASSERT_OK(spk_mp_pack_nil(&b));
  assert_buf_hex(&b, "c0");
  SPK_ASSERT_EQ(read_one(&b).type, SPK_MP_NIL);
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_bool(&b, true));
  assert_buf_hex(&b, "c3");
  SPK_ASSERT(read_one(&b).v.b);
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_bool(&b, false));
  assert_buf_hex(&b, "c2");
  SPK_ASSERT(!read_one(&b).v.b);
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_double(&b, 3.5));
  assert_buf_hex(&b, "cb400c000000000000");
  spk_mp_item it = read_one(&b);
  SPK_ASSERT(it.type == SPK_MP_DOUBLE && it.v.d == 3.5);
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_double(&b, -0.1));
  assert_buf_hex(&b, "cbbfb999999999999a");
  SPK_ASSERT(read_one(&b).v.d == -0.1);
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_double(&b, INFINITY));
  assert_buf_hex(&b, "cb7ff0000000000000");
  SPK_ASSERT(isinf(read_one(&b).v.d));
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_double(&b, NAN));
  SPK_ASSERT(isnan(read_one(&b).v.d));
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_float32(&b, 1.5f));
  assert_buf_hex(&b, "ca3fc00000");
  it = read_one(&b);
  SPK_ASSERT(it.type == SPK_MP_FLOAT && it.v.d == 1.5);
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_float32(&b, -0.25f));
  assert_buf_hex(&b, "cabe800000");
  SPK_ASSERT(read_one(&b).v.d == -0.25);
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_wildcard(&b));
  SPK_ASSERT_OK(spk_mp_pack_infinity(&b));
  assert_buf_hex(&b, "d4ff00d4ff01");
  spk_mp_reader r;
  spk_mp_reader_init(&r, b.data, b.len);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT(it.type == SPK_MP_EXT && it.v.s.ext_type == -1 &&
             it.v.s.len == 1 && it.v.s.p[0] == 0);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT(it.type == SPK_MP_EXT && it.v.s.ext_type == -1 &&
             it.v.s.p[0] == 1);
  SPK_ASSERT(r.p == r.end);
  spk_buf_free(&b);
}

/* ---- str / bin / ext / containers at every length boundary ---------------- */

typedef int (*pack_bytes_fn)(spk_buf *, const void *, uint32_t);

static void check_bytes_form(pack_bytes_fn fn, uint32_t len, const char *hdr,
                             spk_mp_type type) {
  uint8_t *data = malloc(len ? len : 1);
  if (!data) abort();
  for (uint32_t i = 0; i < len; i++) data[i] = (uint8_t)(i * 31 + 7);
  spk_buf b = {0};
  SPK_ASSERT_OK(fn(&b, data, len));
  size_t hl = strlen(hdr) / 2;
  SPK_ASSERT_EQ(b.len, hl + len);
  char got[16];
  spk_test_hex(b.data, hl, got);
  if (strcmp(got, hdr) != 0) SPK_FAIL("len %u: header %s != %s", len, got, hdr);
  SPK_ASSERT_MEM_EQ(b.data + hl, data, len);
  spk_mp_item it = read_one(&b);
  SPK_ASSERT_EQ(it.type, type);
  SPK_ASSERT_EQ(it.v.s.len, len);
  spk_mp_reader r;
  spk_mp_reader_init(&r, b.data, b.len);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT(it.v.s.p == b.data + hl);
  SPK_ASSERT(r.p == r.end);
  SPK_ASSERT_OK(spk_mp_validate(b.data, b.len));
  /* One byte short fails. */
  SPK_ASSERT_EQ(spk_mp_validate(b.data, b.len - 1), SPK_ERR_PROTOCOL);
  spk_buf_free(&b);
  free(data);
}

SPK_TEST(mp_str_boundaries) {
  check_bytes_form(spk_mp_pack_str, 0, "a0", SPK_MP_STR);
  check_bytes_form(spk_mp_pack_str, 1, "a1", SPK_MP_STR);
  check_bytes_form(spk_mp_pack_str, 31, "bf", SPK_MP_STR);
  check_bytes_form(spk_mp_pack_str, 32, "d920", SPK_MP_STR);
  check_bytes_form(spk_mp_pack_str, 255, "d9ff", SPK_MP_STR);
  check_bytes_form(spk_mp_pack_str, 256, "da0100", SPK_MP_STR);
  check_bytes_form(spk_mp_pack_str, 65535, "daffff", SPK_MP_STR);
  check_bytes_form(spk_mp_pack_str, 65536, "db00010000", SPK_MP_STR);
}

SPK_TEST(mp_bin_boundaries) {
  check_bytes_form(spk_mp_pack_bin, 0, "c400", SPK_MP_BIN);
  check_bytes_form(spk_mp_pack_bin, 1, "c401", SPK_MP_BIN);
  check_bytes_form(spk_mp_pack_bin, 255, "c4ff", SPK_MP_BIN);
  check_bytes_form(spk_mp_pack_bin, 256, "c50100", SPK_MP_BIN);
  check_bytes_form(spk_mp_pack_bin, 65535, "c5ffff", SPK_MP_BIN);
  check_bytes_form(spk_mp_pack_bin, 65536, "c600010000", SPK_MP_BIN);
}

SPK_TEST(mp_str_header_only) {
  spk_buf b = {0};
  SPK_ASSERT_OK(spk_mp_pack_str_header(&b, 31));
  SPK_ASSERT_OK(spk_mp_pack_str_header(&b, 32));
  SPK_ASSERT_OK(spk_mp_pack_str_header(&b, 70000));
  SPK_ASSERT_OK(spk_mp_pack_str_header(&b, UINT32_MAX));
  assert_buf_hex(&b, "bf" "d920" "db00011170" "dbffffffff");
  spk_buf_free(&b);
}

static int pack_ext5(spk_buf *b, const void *p, uint32_t len) {
  return spk_mp_pack_ext(b, 5, p, len);
}

SPK_TEST(mp_ext_boundaries) {
  check_bytes_form(pack_ext5, 1, "d405", SPK_MP_EXT);
  check_bytes_form(pack_ext5, 2, "d505", SPK_MP_EXT);
  check_bytes_form(pack_ext5, 4, "d605", SPK_MP_EXT);
  check_bytes_form(pack_ext5, 8, "d705", SPK_MP_EXT);
  check_bytes_form(pack_ext5, 16, "d805", SPK_MP_EXT);
  check_bytes_form(pack_ext5, 0, "c70005", SPK_MP_EXT);
  check_bytes_form(pack_ext5, 3, "c70305", SPK_MP_EXT);
  check_bytes_form(pack_ext5, 17, "c71105", SPK_MP_EXT);
  check_bytes_form(pack_ext5, 255, "c7ff05", SPK_MP_EXT);
  check_bytes_form(pack_ext5, 256, "c8010005", SPK_MP_EXT);
  check_bytes_form(pack_ext5, 65535, "c8ffff05", SPK_MP_EXT);
  check_bytes_form(pack_ext5, 65536, "c90001000005", SPK_MP_EXT);

  /* Negative ext types survive the round trip. */
  spk_buf b = {0};
  SPK_ASSERT_OK(spk_mp_pack_ext(&b, -128, "xyz", 3));
  SPK_ASSERT_OK(spk_mp_pack_ext(&b, 127, "x", 1));
  assert_buf_hex(&b, "c7038078797a" "d47f78");
  spk_mp_reader r;
  spk_mp_item it;
  spk_mp_reader_init(&r, b.data, b.len);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT_EQ(it.v.s.ext_type, -128);
  SPK_ASSERT_EQ(it.v.s.len, 3);
  SPK_ASSERT_MEM_EQ(it.v.s.p, "xyz", 3);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT_EQ(it.v.s.ext_type, 127);
  spk_buf_free(&b);
}

SPK_TEST(mp_container_headers) {
  static const struct {
    uint32_t n;
    const char *arr, *map;
  } v[] = {
      {0, "90", "80"},          {1, "91", "81"},
      {15, "9f", "8f"},         {16, "dc0010", "de0010"},
      {255, "dc00ff", "de00ff"}, {65535, "dcffff", "deffff"},
      {65536, "dd00010000", "df00010000"},
      {UINT32_MAX, "ddffffffff", "dfffffffff"},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    spk_buf b = {0};
    SPK_ASSERT_OK(spk_mp_pack_array_header(&b, v[i].n));
    assert_buf_hex(&b, v[i].arr);
    /* Fill with nils so the count is satisfiable (up to 65536). */
    if (v[i].n <= 65536) {
      for (uint32_t k = 0; k < v[i].n; k++) SPK_ASSERT_OK(spk_mp_pack_nil(&b));
      spk_mp_item it = read_one(&b);
      SPK_ASSERT_EQ(it.type, SPK_MP_ARRAY);
      SPK_ASSERT_EQ(it.v.n, v[i].n);
      SPK_ASSERT_OK(spk_mp_validate(b.data, b.len));
    }
    b.len = 0;
    SPK_ASSERT_OK(spk_mp_pack_map_header(&b, v[i].n));
    assert_buf_hex(&b, v[i].map);
    if (v[i].n <= 65536) {
      for (uint32_t k = 0; k < 2 * v[i].n; k++)
        SPK_ASSERT_OK(spk_mp_pack_int(&b, k));
      spk_mp_item it = read_one(&b);
      SPK_ASSERT_EQ(it.type, SPK_MP_MAP);
      SPK_ASSERT_EQ(it.v.n, v[i].n);
      SPK_ASSERT_OK(spk_mp_validate(b.data, b.len));
    }
    spk_buf_free(&b);
  }
}

/* A count the remaining bytes cannot hold is refused at the header, so a
 * caller never sizes an allocation from a hostile count. */
SPK_TEST(mp_container_count_bound) {
  static const char *bad[] = {
      "91",         "92c0",       "81c0",       "82c0c0c0",
      "dc0002c0",   "dd00000002c0", "de0001c0", "df00000001c0",
      "ddffffffff", "dfffffffff", "dfffffffffc0c0c0c0",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t n;
    uint8_t *p = spk_test_unhex(bad[i], &n);
    spk_mp_reader r;
    spk_mp_item it;
    spk_mp_reader_init(&r, p, n);
    if (spk_mp_next(&r, &it) != SPK_ERR_PROTOCOL) SPK_FAIL("accepted %s", bad[i]);
    SPK_ASSERT_EQ(spk_mp_validate(p, n), SPK_ERR_PROTOCOL);
    free(p);
  }
  /* Exactly enough bytes: accepted by next (validate decides the rest). */
  size_t n;
  uint8_t *p = spk_test_unhex("92c0c0", &n);
  SPK_ASSERT_OK(spk_mp_validate(p, n));
  free(p);
}

SPK_TEST(mp_particle_str) {
  spk_buf b = {0};
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, 3, "bob", 3));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, 4, "\xaa", 1));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, 3, "", 0));
  assert_buf_hex(&b, "a403626f62" "a204aa" "a103");
  spk_mp_reader r;
  spk_mp_item it;
  uint8_t pt;
  const uint8_t *d;
  uint32_t len;
  spk_mp_reader_init(&r, b.data, b.len);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT_OK(spk_mp_particle_str(&it, &pt, &d, &len));
  SPK_ASSERT(pt == 3 && len == 3 && memcmp(d, "bob", 3) == 0);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT_OK(spk_mp_particle_str(&it, &pt, &d, &len));
  SPK_ASSERT(pt == 4 && len == 1 && d[0] == 0xaa);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT_OK(spk_mp_particle_str(&it, &pt, &d, &len));
  SPK_ASSERT(pt == 3 && len == 0);

  /* 30 + type byte = 31: still fixstr; 31 + 1 = 32: str8. */
  char s[300];
  memset(s, 'x', sizeof s);
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, 3, s, 30));
  SPK_ASSERT_EQ(b.data[0], 0xbf);
  SPK_ASSERT_EQ(b.data[1], 3);
  SPK_ASSERT_EQ(b.len, 32);
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, 23, s, 31));
  SPK_ASSERT(b.data[0] == 0xd9 && b.data[1] == 32 && b.data[2] == 23);
  b.len = 0;
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, 4, s, 255));
  SPK_ASSERT(b.data[0] == 0xda && b.data[1] == 1 && b.data[2] == 0 &&
             b.data[3] == 4);
  SPK_ASSERT_EQ(spk_mp_pack_particle_str(&b, 3, s, UINT32_MAX), SPK_ERR_PARAM);

  /* The bin family is read the same way; empty payloads and other types
   * are refused. */
  static const uint8_t bin[] = {0xc4, 0x02, 0x04, 0x99, 0xc4, 0x00, 0xa0, 0x05};
  spk_mp_reader_init(&r, bin, sizeof bin);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT_OK(spk_mp_particle_str(&it, &pt, &d, &len));
  SPK_ASSERT(pt == 4 && len == 1 && d[0] == 0x99);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT_EQ(spk_mp_particle_str(&it, &pt, &d, &len), SPK_ERR_PROTOCOL);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT_EQ(spk_mp_particle_str(&it, &pt, &d, &len), SPK_ERR_PROTOCOL);
  SPK_ASSERT_OK(spk_mp_next(&r, &it));
  SPK_ASSERT_EQ(it.type, SPK_MP_INT);
  SPK_ASSERT_EQ(spk_mp_particle_str(&it, &pt, &d, &len), SPK_ERR_PROTOCOL);
  spk_buf_free(&b);
}

/* ---- hostile input ---------------------------------------------------------- */

/* A blob holding every marker family, nested. */
static void pack_everything(spk_buf *b) {
  uint8_t big[300];
  memset(big, 0x5a, sizeof big);
  SPK_ASSERT_OK(spk_mp_pack_map_header(b, 3));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(b, 3, "ints", 4));
  SPK_ASSERT_OK(spk_mp_pack_array_header(b, 18));
  static const int64_t ints[] = {0, 127, 128, 255, 256, 65535, 65536,
                                 4294967296LL, -1, -32, -33, -128, -129,
                                 -32768, -32769, INT32_MIN, INT64_MIN};
  for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
    SPK_ASSERT_OK(spk_mp_pack_int(b, ints[i]));
  SPK_ASSERT_OK(spk_mp_pack_uint(b, UINT64_MAX));
  SPK_ASSERT_OK(spk_mp_pack_int(b, 7));
  SPK_ASSERT_OK(spk_mp_pack_array_header(b, 17));
  SPK_ASSERT_OK(spk_mp_pack_nil(b));
  SPK_ASSERT_OK(spk_mp_pack_bool(b, true));
  SPK_ASSERT_OK(spk_mp_pack_double(b, 2.5));
  SPK_ASSERT_OK(spk_mp_pack_float32(b, 2.5f));
  SPK_ASSERT_OK(spk_mp_pack_str(b, big, 5));
  SPK_ASSERT_OK(spk_mp_pack_str(b, big, 40));
  SPK_ASSERT_OK(spk_mp_pack_str(b, big, 300));
  SPK_ASSERT_OK(spk_mp_pack_bin(b, big, 3));
  SPK_ASSERT_OK(spk_mp_pack_bin(b, big, 300));
  SPK_ASSERT_OK(spk_mp_pack_ext(b, 1, big, 1));
  SPK_ASSERT_OK(spk_mp_pack_ext(b, 2, big, 16));
  SPK_ASSERT_OK(spk_mp_pack_ext(b, 3, big, 7));
  SPK_ASSERT_OK(spk_mp_pack_ext(b, 4, big, 300));
  SPK_ASSERT_OK(spk_mp_pack_wildcard(b));
  SPK_ASSERT_OK(spk_mp_pack_array_header(b, 0));
  SPK_ASSERT_OK(spk_mp_pack_map_header(b, 0));
  SPK_ASSERT_OK(spk_mp_pack_map_header(b, 1));
  SPK_ASSERT_OK(spk_mp_pack_nil(b));
  SPK_ASSERT_OK(spk_mp_pack_array_header(b, 1));
  SPK_ASSERT_OK(spk_mp_pack_infinity(b));
  /* third pair: empty bin -> empty str */
  SPK_ASSERT_OK(spk_mp_pack_bin(b, big, 0));
  SPK_ASSERT_OK(spk_mp_pack_str(b, big, 0));
}

/* Count items with a full pull walk (containers' elements included). */
static int walk(const uint8_t *p, size_t n, size_t *items) {
  spk_mp_reader r;
  spk_mp_reader_init(&r, p, n);
  uint64_t left = 1;
  *items = 0;
  while (left) {
    spk_mp_item it;
    if (spk_mp_next(&r, &it)) return SPK_ERR_PROTOCOL;
    left--;
    (*items)++;
    if (it.type == SPK_MP_ARRAY) left += it.v.n;
    if (it.type == SPK_MP_MAP) left += 2 * (uint64_t)it.v.n;
  }
  return r.p == r.end ? 0 : SPK_ERR_PROTOCOL;
}

SPK_TEST(mp_truncation_at_every_offset) {
  spk_buf b = {0};
  pack_everything(&b);
  size_t items;
  SPK_ASSERT_OK(spk_mp_validate(b.data, b.len));
  SPK_ASSERT_OK(walk(b.data, b.len, &items));
  /* map, 3 keys + 3 values, 18 ints, 17 elements, and inside the last
   * element {nil: [infinity]} three more. */
  SPK_ASSERT_EQ(items, 1 + 2 * 3 + 18 + 17 + 3);
  for (size_t cut = 0; cut < b.len; cut++) {
    /* Exact-size copy so ASan flags any read past the cut. */
    uint8_t *p = malloc(cut ? cut : 1);
    if (!p) abort();
    memcpy(p, b.data, cut);
    SPK_ASSERT_EQ(spk_mp_validate(p, cut), SPK_ERR_PROTOCOL);
    spk_mp_reader r;
    spk_mp_reader_init(&r, p, cut);
    SPK_ASSERT_EQ(spk_mp_skip(&r), SPK_ERR_PROTOCOL);
    SPK_ASSERT_EQ(walk(p, cut, &items), SPK_ERR_PROTOCOL);
    free(p);
  }
  /* Trailing bytes: skip succeeds, validate does not. */
  SPK_ASSERT_OK(spk_mp_pack_nil(&b));
  SPK_ASSERT_EQ(spk_mp_validate(b.data, b.len), SPK_ERR_PROTOCOL);
  spk_mp_reader r;
  spk_mp_reader_init(&r, b.data, b.len);
  SPK_ASSERT_OK(spk_mp_skip(&r));
  SPK_ASSERT_EQ(r.end - r.p, 1);
  spk_buf_free(&b);
}

SPK_TEST(mp_reserved_c1) {
  static const char *bad[] = {"c1", "91c1", "92c0c1", "81c1c0", "81c0c1",
                              "9391c0c1c0"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t n;
    uint8_t *p = spk_test_unhex(bad[i], &n);
    SPK_ASSERT_EQ(spk_mp_validate(p, n), SPK_ERR_PROTOCOL);
    free(p);
  }
  spk_mp_reader r;
  spk_mp_item it;
  spk_mp_reader_init(&r, (const uint8_t *)"\xc1\xc0", 2);
  SPK_ASSERT_EQ(spk_mp_next(&r, &it), SPK_ERR_PROTOCOL);
  /* Empty input. */
  spk_mp_reader_init(&r, (const uint8_t *)"", 0);
  SPK_ASSERT_EQ(spk_mp_next(&r, &it), SPK_ERR_PROTOCOL);
  SPK_ASSERT_EQ(spk_mp_skip(&r), SPK_ERR_PROTOCOL);
  SPK_ASSERT_EQ(spk_mp_validate((const uint8_t *)"", 0), SPK_ERR_PROTOCOL);
}

/* Every one of the 256 first bytes, alone and followed by plenty of zeros:
 * decodes or fails cleanly, never reads past the end. */
SPK_TEST(mp_every_first_byte) {
  for (int c = 0; c < 256; c++) {
    uint8_t *one = malloc(1);
    if (!one) abort();
    one[0] = (uint8_t)c;
    spk_mp_reader r;
    spk_mp_item it;
    spk_mp_reader_init(&r, one, 1);
    int rc = spk_mp_next(&r, &it);
    bool single = c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 ||
                  c == 0xc3 || c == 0xa0 || c == 0x90 || c == 0x80;
    if ((rc == 0) != single) SPK_FAIL("byte %02x: rc %d", c, rc);
    free(one);

    uint8_t buf[40] = {0};
    buf[0] = (uint8_t)c;
    spk_mp_reader_init(&r, buf, sizeof buf);
    rc = spk_mp_next(&r, &it);
    SPK_ASSERT_EQ(rc, c == 0xc1 ? SPK_ERR_PROTOCOL : 0);
  }
}

static uint8_t *nested(size_t depth, uint8_t open, size_t *len) {
  /* depth containers of one element each, innermost holding nil (or
   * being empty when open is a map header, to test empty containers). */
  uint8_t *p = malloc(2 * depth + 1);
  if (!p) abort();
  size_t n = 0;
  for (size_t i = 0; i < depth; i++) {
    p[n++] = open;
    if (open == 0x81) p[n++] = 0xc0; /* map key */
  }
  p[n++] = 0xc0;
  *len = n;
  return p;
}

SPK_TEST(mp_depth_limit) {
  size_t n;
  uint8_t *p = nested(SPK_MP_MAX_DEPTH, 0x91, &n);
  SPK_ASSERT_OK(spk_mp_validate(p, n));
  free(p);
  p = nested(SPK_MP_MAX_DEPTH + 1, 0x91, &n);
  SPK_ASSERT_EQ(spk_mp_validate(p, n), SPK_ERR_PROTOCOL);
  free(p);
  p = nested(SPK_MP_MAX_DEPTH, 0x81, &n);
  SPK_ASSERT_OK(spk_mp_validate(p, n));
  free(p);
  p = nested(SPK_MP_MAX_DEPTH + 1, 0x81, &n);
  SPK_ASSERT_EQ(spk_mp_validate(p, n), SPK_ERR_PROTOCOL);
  free(p);

  /* An empty container at level 257 counts as well. */
  uint8_t deep[SPK_MP_MAX_DEPTH + 1];
  memset(deep, 0x91, sizeof deep);
  deep[SPK_MP_MAX_DEPTH] = 0x90;
  SPK_ASSERT_EQ(spk_mp_validate(deep, sizeof deep), SPK_ERR_PROTOCOL);
  SPK_ASSERT_OK(spk_mp_validate(deep + 1, sizeof deep - 1));

  /* Wide rather than deep: fine. Siblings do not add depth. */
  uint8_t wide[1 + 15 * 2];
  wide[0] = 0x9f;
  for (int i = 0; i < 15; i++) {
    wide[1 + 2 * i] = 0x91;
    wide[2 + 2 * i] = 0x90;
  }
  SPK_ASSERT_OK(spk_mp_validate(wide, sizeof wide));

  /* A million nested arrays: rejected quickly, no recursion. */
  size_t big = 1000000;
  uint8_t *q = malloc(big);
  if (!q) abort();
  memset(q, 0x91, big);
  SPK_ASSERT_EQ(spk_mp_validate(q, big), SPK_ERR_PROTOCOL);
  free(q);
}

/* The server's own messages: captured list/map bins, exact bytes. */
SPK_TEST(mp_captured_values_validate) {
  static const char *v[] = {
      ("9801a40374776fcb400c0000000000009304a50366697665a2040681a2036ba203"
       "76c3c0ff"),
      "85039201020a81a2036ec0a2036101a20362a20378a204bbfe",
      "84c70001c005a50366697665a2036102a2037a01",
      "94c70001010203",
      "83c70008c0a2036101a2036202",
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    size_t n, items;
    uint8_t *p = spk_test_unhex(v[i], &n);
    SPK_ASSERT_OK(spk_mp_validate(p, n));
    SPK_ASSERT_OK(walk(p, n, &items));
    free(p);
  }
}
