/* test_codec.c - RIPEMD-160, key digests, proto header, as_msg writer and
 * reader, particles.  Captured bytes come from
 * /work/shared/reference/captures (records.json). */
#include <math.h>

#include "spk_digest.h"
#include "spk_msgpack.h"
#include "spk_proto.h"
#include "spk_test.h"

static void hex_of(const uint8_t *p, size_t n, char *out) {
  spk_test_hex(p, n, out);
}

static void assert_hex(const uint8_t *p, size_t n, const char *want) {
  char *got = malloc(2 * n + 1);
  if (!got) abort();
  hex_of(p, n, got);
  if (strcmp(got, want) != 0) {
    /* Point at the first differing byte: easier than eyeballing 1 KB. */
    size_t i = 0;
    while (got[i] && got[i] == want[i]) i++;
    SPK_FAIL("bytes differ at offset %zu:\n got  %s\n want %s", i / 2,
             got + (i & ~(size_t)1), want + (i & ~(size_t)1));
  }
  free(got);
}

/* ---- RIPEMD-160 --------------------------------------------------------- */

static void ripemd_hex(const void *p, size_t n, char out[41]) {
  uint8_t d[SPK_DIGEST_SIZE];
  spk_ripemd160(p, n, d);
  hex_of(d, SPK_DIGEST_SIZE, out);
}

/* The test vectors published with the algorithm. */
SPK_TEST(ripemd160_paper_vectors) {
  static const struct {
    const char *msg, *hex;
  } v[] = {
      {"", "9c1185a5c5e9fc54612808977ee8f548b2258d31"},
      {"a", "0bdc9d2d256b3ee9daae347be6f4dc835a467ffe"},
      {"abc", "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"},
      {"message digest", "5d0689ef49d2fae572b881b123a85ffa21595f36"},
      {"abcdefghijklmnopqrstuvwxyz", "f71c27109c692c1b56bbdceb5b9d2865b3708dbc"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "12a053384a9c0c88e405a06c27dcf49ada62eb2b"},
      {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
       "b0e20b6e3116640286ed3a87a5713079b21f5189"},
      {"1234567890123456789012345678901234567890"
       "1234567890123456789012345678901234567890",
       "9b752e45573d4b39f4dbd3323cab82bf63326bfb"},
  };
  char out[41];
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    ripemd_hex(v[i].msg, strlen(v[i].msg), out);
    SPK_ASSERT_STR_EQ(out, v[i].hex);
  }
}

SPK_TEST(ripemd160_million_a) {
  static const char want[] = "52783243c1697bdbe16d37f97f68f08325dc1528";
  char out[41];
  uint8_t d[SPK_DIGEST_SIZE];
  /* Streamed in odd-sized chunks to cross block boundaries at every phase. */
  uint8_t chunk[997];
  memset(chunk, 'a', sizeof chunk);
  spk_ripemd160_ctx c;
  spk_ripemd160_init(&c);
  size_t left = 1000000;
  while (left) {
    size_t n = left < sizeof chunk ? left : sizeof chunk;
    spk_ripemd160_update(&c, chunk, n);
    left -= n;
  }
  spk_ripemd160_final(&c, d);
  hex_of(d, SPK_DIGEST_SIZE, out);
  SPK_ASSERT_STR_EQ(out, want);

  uint8_t *all = malloc(1000000);
  if (!all) abort();
  memset(all, 'a', 1000000);
  ripemd_hex(all, 1000000, out);
  free(all);
  SPK_ASSERT_STR_EQ(out, want);
}

/* Streaming with any split point equals one-shot (padding edge cases at
 * 55/56/63/64 bytes included). */
SPK_TEST(ripemd160_streaming_splits) {
  uint8_t buf[200];
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(i * 7 + 3);
  for (size_t n = 0; n <= sizeof buf; n++) {
    uint8_t want[SPK_DIGEST_SIZE], got[SPK_DIGEST_SIZE];
    spk_ripemd160(buf, n, want);
    for (size_t s = 0; s <= n; s += (n > 70 ? 13 : 1)) {
      spk_ripemd160_ctx c;
      spk_ripemd160_init(&c);
      spk_ripemd160_update(&c, buf, s);
      spk_ripemd160_update(&c, NULL, 0);
      spk_ripemd160_update(&c, buf + s, n - s);
      spk_ripemd160_final(&c, got);
      SPK_ASSERT_MEM_EQ(got, want, SPK_DIGEST_SIZE);
    }
  }
}

/* ---- key digests (protocol-core 4, captures README key table) ---------- */

typedef struct {
  const char *set;
  int type; /* 1 int, 3 string, 4 blob */
  int64_t i;
  const char *s; /* string / hex blob */
  const char *digest;
  uint32_t pid;
} key_vec;

static const key_vec key_vecs[] = {
    /* protocol-core 4 (Go key_test.go) */
    {"set", 1, 0, 0, "93d943aae37b017ad7e011b0c1d2e2143c2fb37d", 2451},
    {"set", 1, -1, 0, "22116d253745e29fc63fdf760b6e26f7e197e01d", 290},
    {"set", 1, INT64_MAX, 0, "1698328974afa62c8e069860c1516f780d63dbb8", 2070},
    {"set", 1, INT64_MIN, 0, "7185c2a47fb02c996daed26b4e01b83240aee9d4", 1393},
    {"set", 3, 0, "", "2819b1ff6e346a43b4f5f6b77a88bc3eaac22a83", 2344},
    {"set", 3, 0, "s", "607cddba7cd111745ef0a3d783d57f0e83c8f311", 3168},
    {"set", 3, 0, "aaaaaaaaaa", "5979fb32a80da070ff356f7695455592272e36c2", 2393},
    {"set", 4, 0, "", "327e2877b8815c7aeede0d5a8620d4ef8df4a4b4", 3634},
    {"set", 4, 0, "73", "ca2d96dc9a184d15a7fa2927565e844e9254e001", 3530},
    {"demo", 3, 0, "key1", "ec91192d4b7f8ce35d5d78d34bca65cbaaaac960", 492},
    {"", 3, 0, "key1", "579f05ecf9e6a9e796f4da2ab0b1323364df5c10", 3927},
    /* captures README */
    {"cap", 3, 0, "all-types", "23066c404604837e76f475d6ad280149c8beac51", 1571},
    {"cap", 3, 0, "no-sendkey", "65bccb56e88c5db9e833891761ad89ec3e080e24", 3173},
    {"cap", 1, 42, 0, "02ff74d8568cb27b2cbf76122c50739d3f0c2178", 3842},
    {"cap", 4, 0, "010203", "8df364b7a6edd584e9ab4481f1f7abae07420e98", 909},
    {"cap", 3, 0, "missing-key", "e64427e04e872c8bf0e53b47ff80c037fa78865c", 1254},
    {"cap", 3, 0, "unsorted-ordered", "14316dedc8413ba42343d40e6206fc983ba97781", 276},
    {"cap", 3, 0, "exists-actions", "cc957ad3bed8d2e67fd9fc8f21917b24e736e745", 1484},
    {"cap", 3, 0, "exists-missing", "ed2a87ae331e5fee7f27e210c00fcb9244b012f0", 2797},
    {"cap", 3, 0, "generation", "3c86cd3ec0d71d84cdacea9769eebdfa85c91db3", 1596},
    {"cap", 3, 0, "gen-missing", "67cf78acc8d9d6a38410849d12d828a94eb233d8", 3943},
    {"cap", 3, 0, "ttl", "e4ccbbce7a565e43df7303153e1a54a55106eee5", 3300},
    {"cap", 3, 0, "ttl-new-minus2", "54b7377b2aa76bdb5232e9867989424a7e0229ce", 1876},
    {"cap", 3, 0, "ttl-huge", "fba39a2c7d5b875df7aec9b73388e8eb129df93c", 1019},
    {"cap", 3, 0, "ttl-minus3", "db41b3bbe810e3820ba8b80da019977a06bb6e8c", 475},
    {"cap", 3, 0, "read-touch", "2cfa471730e4f8e2a1e18624f71ab3fb1a0f99eb", 2604},
    {"cap", 3, 0, "touch", "66a9e65546012956e293516cb556cc4fc76fa0e5", 2406},
    {"cap", 3, 0, "delete", "f11425afee8a6271249dd712e91fc87503fbc3be", 1265},
    {"cap", 3, 0, "only-null", "20817b6c30ac304beea97787a1160eb16534fb7e", 288},
    {"cap", 3, 0, "errors", "412ca0138f183b2e3d1aaf615622f86d22e4fe4a", 3137},
    {"cap", 3, 0, "too-big", "0ce3ae6a8bd38e6c3a1d64faa200677d14c882ce", 780},
    {"cap", 3, 0, "big-ok", "e80116d9159db8945abaea97d2a6d3613474834e", 488},
    {"cap", 3, 0, "operate", "addcc4bedd1b62f4e76ef74c928cbdc0e5900747", 3245},
    {"cap", 3, 0, "operate-missing", "feaebaed8054bbc91b14067871166beedfe573db", 3838},
    {"cap", 3, 0, "operate-cdt", "4c1583da57fd5761e9bce6703d636cd8a96e6bc3", 1356},
    {"cap", 3, 0, "exp-1", "c0924652f1364e8656fc78afe4471f8e941322fd", 704},
    {"cap", 3, 0, "exp-missing", "49d58eca509c32971b72ab01b06e6539476f7eb4", 1353},
    {"cap", 3, 0, "batch-1", "0317950b1df333faade1e2e360518cc5f90ea8b4", 1795},
    {"cap", 3, 0, "batch-2", "07fae7c6ff26b9da019817f623a82a9ee851dd21", 2567},
    {"cap", 3, 0, "batch-3", "3959a3f4cf492069e995b555494cee91cd1c6572", 2361},
    {"cap", 3, 0, "batch-missing", "53e5816b770999769a71d477f4148a6631ac97fc", 1363},
    {"cap", 3, 0, "batch-w1", "f84eeb03da2e4791aa417e7222a9a63adc49b111", 3832},
    {"cap", 3, 0, "scan-100", "13e0f3231573194831b9ad3592c6ec3faa758057", 19},
    {"cap", 3, 0, "scan-157", "4190ce0cc88fee04c6e01ec46654a462040d4806", 65},
    {"cap", 3, 0, "scan-82", "53d0347b5e25e8bb99443366352a49b1b248ecb8", 83},
    {"cap", 3, 0, "scan-114", "5fe0784b037a8534c92ff32b328a863a693dd4b0", 95},
    {"cap", 3, 0, "cl-3", "28a4c7fb8152537f0f46d7c3a7f56142e4838a9d", 1064},
    {"cap", 3, 0, "cl-1", "0f1b5df291c664cf8e574cb50bb62b51de8dc7a7", 2831},
    {"cap", 3, 0, "cl3-0", "1f71d69fd2ad4d608539d12403d73d5188168af9", 287},
    {"cap-newset", 3, 0, "k", "457c284829beddd75b05692da2aa7e981d4ac82e", 3141},
    {"cap-nosuchset", 3, 0, "k", "098bc855215938d36db8ce6ffe649c33ade9d16a", 2825},
};

SPK_TEST(key_digest_vectors) {
  for (size_t i = 0; i < sizeof key_vecs / sizeof key_vecs[0]; i++) {
    const key_vec *k = &key_vecs[i];
    uint8_t d[SPK_DIGEST_SIZE];
    size_t set_len = strlen(k->set);
    if (k->type == 1) {
      spk_key_digest_int(k->set, set_len, k->i, d);
      uint8_t be[8], d2[SPK_DIGEST_SIZE];
      spk_put_be64(be, (uint64_t)k->i);
      spk_key_digest(k->set, set_len, SPK_PARTICLE_INTEGER, be, 8, d2);
      SPK_ASSERT_MEM_EQ(d, d2, SPK_DIGEST_SIZE);
    } else if (k->type == 3) {
      spk_key_digest(set_len ? k->set : NULL, set_len, SPK_PARTICLE_STRING,
                     (const uint8_t *)k->s, strlen(k->s), d);
    } else {
      size_t n;
      uint8_t *blob = spk_test_unhex(k->s, &n);
      spk_key_digest(k->set, set_len, SPK_PARTICLE_BLOB, blob, n, d);
      free(blob);
    }
    char out[41];
    hex_of(d, SPK_DIGEST_SIZE, out);
    if (strcmp(out, k->digest) != 0)
      SPK_FAIL("vector %zu (set '%s'): %s != %s", i, k->set, out, k->digest);
    SPK_ASSERT_EQ(spk_partition_id(d), k->pid);
  }
}

/* ---- proto header ---------------------------------------------------------- */

SPK_TEST(proto_header_round_trip) {
  static const uint64_t sizes[] = {0, 1, 22, 65535, SPK_PROTO_SIZE_MAX};
  for (uint8_t type = 1; type <= 5; type++) {
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      uint8_t h[8];
      spk_proto p;
      spk_proto_write(h, type, sizes[i]);
      SPK_ASSERT_EQ(h[0], 2);
      SPK_ASSERT_EQ(h[1], type);
      spk_proto_read(h, &p);
      SPK_ASSERT_EQ(p.version, 2);
      SPK_ASSERT_EQ(p.type, type);
      SPK_ASSERT_EQ(p.size, sizes[i]);
      uint8_t expect = type == SPK_PROTO_COMPRESSED ? SPK_PROTO_MSG : type;
      spk_error err;
      spk_error_reset(&err);
      SPK_ASSERT_OK(spk_proto_check(h, expect, &p, &err));
      SPK_ASSERT_EQ(err.code, 0);
    }
  }
  /* The documented info example header. */
  uint8_t h[8];
  spk_proto_write(h, SPK_PROTO_INFO, 0x1a);
  assert_hex(h, 8, "020100000000001a");
  /* 48-bit size field: the top bits of an oversized value are dropped. */
  spk_proto_write(h, SPK_PROTO_MSG, 0xFFFF000000000001ull);
  assert_hex(h, 8, "0203000000000001");
}

static void expect_reject(const char *hex, uint8_t type, const char *msg) {
  size_t n;
  uint8_t *h = spk_test_unhex(hex, &n);
  spk_proto p;
  spk_error err;
  spk_error_reset(&err);
  SPK_ASSERT_EQ(spk_proto_check(h, type, &p, &err), SPK_ERR_PROTOCOL);
  SPK_ASSERT_EQ(err.code, SPK_ERR_PROTOCOL);
  SPK_ASSERT_STR_EQ(err.message, msg);
  /* NULL error pointer must be fine too. */
  SPK_ASSERT_EQ(spk_proto_check(h, type, &p, NULL), SPK_ERR_PROTOCOL);
  free(h);
}

SPK_TEST(proto_check_rejects) {
  expect_reject("0703000000000016", 3, "bad proto version 7");
  expect_reject("0003000000000016", 3, "bad proto version 0");
  expect_reject("0103000000000016", 3, "bad proto version 1");
  expect_reject("0201000000000016", 3, "unexpected proto type 1 (expected 3)");
  expect_reject("0202000000000010", 3, "unexpected proto type 2 (expected 3)");
  expect_reject("0205000000000016", 3, "unexpected proto type 5 (expected 3)");
  expect_reject("0200000000000016", 3, "unexpected proto type 0 (expected 3)");
  expect_reject("0209000000000016", 3, "unexpected proto type 9 (expected 3)");
  expect_reject("0203000000000016", 1, "unexpected proto type 3 (expected 1)");
  expect_reject("0204000000000016", 1, "unexpected proto type 4 (expected 1)");
  expect_reject("0204000000000016", 2, "unexpected proto type 4 (expected 2)");
  expect_reject("0203000008000001", 3,
                "proto size 134217729 exceeds limit 134217728");
  expect_reject("0201ffffffffffff", 1,
                "proto size 281474976710655 exceeds limit 134217728");
  /* Exactly at the limit is fine; compressed is accepted for MSG. */
  size_t n;
  uint8_t *h = spk_test_unhex("0203000008000000", &n);
  spk_proto p;
  SPK_ASSERT_OK(spk_proto_check(h, SPK_PROTO_MSG, &p, NULL));
  SPK_ASSERT_EQ(p.size, SPK_PROTO_SIZE_MAX);
  free(h);
  h = spk_test_unhex("0204000000000020", &n);
  SPK_ASSERT_OK(spk_proto_check(h, SPK_PROTO_MSG, &p, NULL));
  SPK_ASSERT_EQ(p.type, SPK_PROTO_COMPRESSED);
  free(h);
}

/* ---- as_msg header --------------------------------------------------------- */

SPK_TEST(msg_header_round_trip) {
  spk_msg_header h = {22,         0x81, 0x42, 0x24, 0x10, 0xfe,
                      0xdeadbeef, 533000228, 0x01020304, 0xabcd, 0x1234};
  uint8_t w[22];
  spk_msg_header_write(w, &h);
  assert_hex(w, 22, "16814224" "10fe" "deadbeef" "1fc4f024" "01020304" "abcd"
                    "1234");
  spk_msg_header r;
  spk_msg_header_read(w, &r);
  SPK_ASSERT_EQ(r.header_sz, 22);
  SPK_ASSERT_EQ(r.info1, 0x81);
  SPK_ASSERT_EQ(r.info2, 0x42);
  SPK_ASSERT_EQ(r.info3, 0x24);
  SPK_ASSERT_EQ(r.info4, 0x10);
  SPK_ASSERT_EQ(r.result_code, 0xfe);
  SPK_ASSERT_EQ(r.generation, 0xdeadbeef);
  SPK_ASSERT_EQ(r.record_ttl, 533000228);
  SPK_ASSERT_EQ(r.transaction_ttl, 0x01020304);
  SPK_ASSERT_EQ(r.n_fields, 0xabcd);
  SPK_ASSERT_EQ(r.n_ops, 0x1234);
  /* header_sz is always written as 22, whatever the struct says. */
  h.header_sz = 0;
  spk_msg_header_write(w, &h);
  SPK_ASSERT_EQ(w[0], 22);
}

/* ---- message writer vs captured requests ----------------------------------- */

static const char GET_ALL_TYPES_HEX[] =
    "02030000000000401603000000000000000000000000000003e800030000000000050074"
    "6573740000000401636170000000150423066c404604837e76f475d6ad280149c8beac51";

static const char PUT_ALL_TYPES_HEX[] =
    "02030000000001fd1600010000000000000000000000000003e800040011000000050074"
    "6573740000000401636170000000150423066c404604837e76f475d6ad280149c8beac51"
    "0000000b0203616c6c2d74797065730000001302010007695f736d616c6c000000000000"
    "00070000001102010005695f6e6567ffffffffffffcfc70000001102010005695f6d6178"
    "7fffffffffffffff0000000d0202000166400a0000000000000000001102020005665f6e"
    "6567bfb999999999999a0000001002030007735f617363696968656c6c6f000000220203"
    "0006735f7574663868c3a96c6c6f2077c3b6726c6420e29c9320e697a5e69cac0000000b"
    "02030007735f656d7074790000000c02040004626c6f62000102ff0000000b0211000662"
    "5f74727565010000000c02110007625f66616c73650000000007020000036e696c000000"
    "2d021400046c6973749801a40374776fcb400c0000000000009304a50366697665a20406"
    "81a2036ba20376c3c0ff00000020021300036d617085a2036101a20362a2037803920102"
    "0a81a2036ec0a204bbfe0000001c021300046f6d617084c70001c005a50366697665a203"
    "6102a2037a0100000010021400056f6c69737494c7000101020300000037021700036765"
    "6f0000007b2274797065223a22506f696e74222c22636f6f7264696e61746573223a5b2d"
    "3132322e32352c33372e355d7d";

static const char GET_SELECTED_HEX[] =
    "020300000000006e1601000000000000000000000000000003e800030003000000050074"
    "6573740000000401636170000000150423066c404604837e76f475d6ad280149c8beac51"
    "0000000b01000007695f736d616c6c0000000a01000006735f757466380000000d010000"
    "096e6f7375636862696e";

static const char PUT_INT_KEY_HEX[] =
    "020300000000005e1600010000000000000000000000000003e800040001000000050074"
    "6573740000000401636170000000150402ff74d8568cb27b2cbf76122c50739d3f0c2178"
    "0000000a0201000000000000002a0000000c0203000176696e742d6b6579";

static const char PUT_BLOB_KEY_HEX[] =
    "020300000000005a1600010000000000000000000000000003e800040001000000050074"
    "657374000000040163617000000015048df364b7a6edd584e9ab4481f1f7abae07420e98"
    "0000000502040102030000000d0203000176626c6f622d6b6579";

#define S(lit) (lit), (sizeof(lit) - 1)

/* namespace, set, digest: the prefix of every single-record command. */
static void key_fields(spk_buf *b, const char *set, const uint8_t *digest) {
  SPK_ASSERT_OK(spk_msg_field(b, SPK_FIELD_NAMESPACE, S("test")));
  SPK_ASSERT_OK(spk_msg_field(b, SPK_FIELD_SETNAME, set, strlen(set)));
  SPK_ASSERT_OK(spk_msg_field(b, SPK_FIELD_DIGEST, digest, SPK_DIGEST_SIZE));
}

SPK_TEST(writer_get_all_bins_matches_capture) {
  uint8_t d[SPK_DIGEST_SIZE];
  spk_key_digest("cap", 3, SPK_PARTICLE_STRING,
                 (const uint8_t *)"all-types", 9, d);
  spk_buf b = {0};
  spk_msg_header h = {0};
  h.info1 = SPK_INFO1_READ | SPK_INFO1_GET_ALL;
  h.transaction_ttl = 1000;
  size_t start = spk_msg_begin(&b, &h);
  SPK_ASSERT_EQ(start, 0);
  key_fields(&b, "cap", d);
  SPK_ASSERT_OK(spk_msg_end(&b, start, 3, 0));
  assert_hex(b.data, b.len, GET_ALL_TYPES_HEX);

  /* A second message appended to the same buffer is independent. */
  size_t start2 = spk_msg_begin(&b, &h);
  SPK_ASSERT_EQ(start2, sizeof(GET_ALL_TYPES_HEX) / 2);
  key_fields(&b, "cap", d);
  SPK_ASSERT_OK(spk_msg_end(&b, start2, 3, 0));
  assert_hex(b.data + start2, b.len - start2, GET_ALL_TYPES_HEX);
  spk_buf_free(&b);
}

SPK_TEST(writer_get_selected_bins_matches_capture) {
  uint8_t d[SPK_DIGEST_SIZE];
  spk_key_digest("cap", 3, SPK_PARTICLE_STRING,
                 (const uint8_t *)"all-types", 9, d);
  spk_buf b = {0};
  spk_msg_header h = {0};
  h.info1 = SPK_INFO1_READ;
  h.transaction_ttl = 1000;
  size_t start = spk_msg_begin(&b, &h);
  key_fields(&b, "cap", d);
  SPK_ASSERT_OK(spk_msg_op_raw(&b, SPK_OP_READ, 0, S("i_small"), NULL, 0));
  SPK_ASSERT_OK(spk_msg_op_raw(&b, SPK_OP_READ, 0, S("s_utf8"), NULL, 0));
  /* An empty value via begin/end gives the same bytes as op_raw. */
  size_t off = spk_msg_op_begin(&b, SPK_OP_READ, 0, S("nosuchbin"));
  SPK_ASSERT(off != (size_t)-1);
  spk_msg_op_end(&b, off);
  SPK_ASSERT_OK(spk_msg_end(&b, start, 3, 3));
  assert_hex(b.data, b.len, GET_SELECTED_HEX);
  spk_buf_free(&b);
}

/* The list bin [1, "two", 3.5, [4, "five", blob 06], {"k": "v"}, true, nil,
 * -1] written with the msgpack writer, as its value_hex shows. */
static void pack_list_bin(spk_buf *b) {
  SPK_ASSERT_OK(spk_mp_pack_array_header(b, 8));
  SPK_ASSERT_OK(spk_mp_pack_int(b, 1));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(b, SPK_PARTICLE_STRING, S("two")));
  SPK_ASSERT_OK(spk_mp_pack_double(b, 3.5));
  SPK_ASSERT_OK(spk_mp_pack_array_header(b, 3));
  SPK_ASSERT_OK(spk_mp_pack_int(b, 4));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(b, SPK_PARTICLE_STRING, S("five")));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(b, SPK_PARTICLE_BLOB, S("\x06")));
  SPK_ASSERT_OK(spk_mp_pack_map_header(b, 1));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(b, SPK_PARTICLE_STRING, S("k")));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(b, SPK_PARTICLE_STRING, S("v")));
  SPK_ASSERT_OK(spk_mp_pack_bool(b, true));
  SPK_ASSERT_OK(spk_mp_pack_nil(b));
  SPK_ASSERT_OK(spk_mp_pack_int(b, -1));
}

SPK_TEST(writer_put_all_types_matches_capture) {
  uint8_t d[SPK_DIGEST_SIZE];
  spk_key_digest("cap", 3, SPK_PARTICLE_STRING,
                 (const uint8_t *)"all-types", 9, d);
  spk_buf b = {0};
  spk_msg_header h = {0};
  h.info2 = SPK_INFO2_WRITE;
  h.transaction_ttl = 1000;
  size_t start = spk_msg_begin(&b, &h);
  key_fields(&b, "cap", d);
  uint8_t *key = spk_msg_field_reserve(&b, SPK_FIELD_KEY, 10);
  SPK_ASSERT(key != NULL);
  key[0] = SPK_PARTICLE_STRING;
  memcpy(key + 1, "all-types", 9);

  SPK_ASSERT_OK(spk_msg_op_int(&b, SPK_OP_WRITE, S("i_small"), 7));
  SPK_ASSERT_OK(spk_msg_op_int(&b, SPK_OP_WRITE, S("i_neg"), -12345));
  SPK_ASSERT_OK(spk_msg_op_int(&b, SPK_OP_WRITE, S("i_max"), INT64_MAX));
  SPK_ASSERT_OK(spk_msg_op_float(&b, SPK_OP_WRITE, S("f"), 3.25));
  SPK_ASSERT_OK(spk_msg_op_float(&b, SPK_OP_WRITE, S("f_neg"), -0.1));
  SPK_ASSERT_OK(spk_msg_op_raw(&b, SPK_OP_WRITE, SPK_PARTICLE_STRING,
                               S("s_ascii"), S("hello")));
  SPK_ASSERT_OK(spk_msg_op_raw(
      &b, SPK_OP_WRITE, SPK_PARTICLE_STRING, S("s_utf8"),
      S("h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac")));
  SPK_ASSERT_OK(spk_msg_op_raw(&b, SPK_OP_WRITE, SPK_PARTICLE_STRING,
                               S("s_empty"), "", 0));
  SPK_ASSERT_OK(spk_msg_op_raw(&b, SPK_OP_WRITE, SPK_PARTICLE_BLOB, S("blob"),
                               S("\x00\x01\x02\xff")));
  SPK_ASSERT_OK(spk_msg_op_bool(&b, SPK_OP_WRITE, S("b_true"), true));
  SPK_ASSERT_OK(spk_msg_op_bool(&b, SPK_OP_WRITE, S("b_false"), false));
  SPK_ASSERT_OK(spk_msg_op_raw(&b, SPK_OP_WRITE, SPK_PARTICLE_NULL, S("nil"),
                               NULL, 0));

  size_t off = spk_msg_op_begin(&b, SPK_OP_WRITE, SPK_PARTICLE_LIST, S("list"));
  pack_list_bin(&b);
  spk_msg_op_end(&b, off);

  /* {"a": 1, "b": "x", 3: [1, 2], 10: {"n": nil}, blob bb: -2} */
  off = spk_msg_op_begin(&b, SPK_OP_WRITE, SPK_PARTICLE_MAP, S("map"));
  SPK_ASSERT_OK(spk_mp_pack_map_header(&b, 5));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, SPK_PARTICLE_STRING, S("a")));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, 1));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, SPK_PARTICLE_STRING, S("b")));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, SPK_PARTICLE_STRING, S("x")));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, 3));
  SPK_ASSERT_OK(spk_mp_pack_array_header(&b, 2));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, 1));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, 2));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, 10));
  SPK_ASSERT_OK(spk_mp_pack_map_header(&b, 1));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, SPK_PARTICLE_STRING, S("n")));
  SPK_ASSERT_OK(spk_mp_pack_nil(&b));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, SPK_PARTICLE_BLOB, S("\xbb")));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, -2));
  spk_msg_op_end(&b, off);

  /* K_ORDERED map: the flags travel as the type of an empty ext
   * (c7 00 01), paired with nil, then 5: "five", "a": 2, "z": 1. */
  off = spk_msg_op_begin(&b, SPK_OP_WRITE, SPK_PARTICLE_MAP, S("omap"));
  SPK_ASSERT_OK(spk_mp_pack_map_header(&b, 4));
  SPK_ASSERT_OK(spk_mp_pack_ext(&b, 1, NULL, 0));
  SPK_ASSERT_OK(spk_mp_pack_nil(&b));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, 5));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, SPK_PARTICLE_STRING, S("five")));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, SPK_PARTICLE_STRING, S("a")));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, 2));
  SPK_ASSERT_OK(spk_mp_pack_particle_str(&b, SPK_PARTICLE_STRING, S("z")));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, 1));
  spk_msg_op_end(&b, off);

  off = spk_msg_op_begin(&b, SPK_OP_WRITE, SPK_PARTICLE_LIST, S("olist"));
  SPK_ASSERT_OK(spk_mp_pack_array_header(&b, 4));
  SPK_ASSERT_OK(spk_mp_pack_ext(&b, 1, NULL, 0));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, 1));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, 2));
  SPK_ASSERT_OK(spk_mp_pack_int(&b, 3));
  spk_msg_op_end(&b, off);

  /* GeoJSON: flags 0, ncells 0, then the text. */
  static const char json[] = "{\"type\":\"Point\",\"coordinates\":[-122.25,37.5]}";
  off = spk_msg_op_begin(&b, SPK_OP_WRITE, SPK_PARTICLE_GEOJSON, S("geo"));
  SPK_ASSERT_OK(spk_buf_append(&b, "\x00\x00\x00", 3));
  SPK_ASSERT_OK(spk_buf_append(&b, json, sizeof json - 1));
  spk_msg_op_end(&b, off);

  SPK_ASSERT_OK(spk_msg_end(&b, start, 4, 17));
  assert_hex(b.data, b.len, PUT_ALL_TYPES_HEX);
  spk_buf_free(&b);
}

SPK_TEST(writer_put_int_and_blob_keys_match_capture) {
  spk_buf b = {0};
  spk_msg_header h = {0};
  h.info2 = SPK_INFO2_WRITE;
  h.transaction_ttl = 1000;

  uint8_t d[SPK_DIGEST_SIZE];
  spk_key_digest_int("cap", 3, 42, d);
  size_t start = spk_msg_begin(&b, &h);
  key_fields(&b, "cap", d);
  uint8_t key[9] = {SPK_PARTICLE_INTEGER};
  spk_put_be64(key + 1, 42);
  SPK_ASSERT_OK(spk_msg_field(&b, SPK_FIELD_KEY, key, 9));
  SPK_ASSERT_OK(spk_msg_op_raw(&b, SPK_OP_WRITE, SPK_PARTICLE_STRING, S("v"),
                               S("int-key")));
  SPK_ASSERT_OK(spk_msg_end(&b, start, 4, 1));
  assert_hex(b.data, b.len, PUT_INT_KEY_HEX);

  b.len = 0;
  spk_key_digest("cap", 3, SPK_PARTICLE_BLOB, (const uint8_t *)"\1\2\3", 3, d);
  start = spk_msg_begin(&b, &h);
  key_fields(&b, "cap", d);
  SPK_ASSERT_OK(spk_msg_field(&b, SPK_FIELD_KEY, S("\x04\x01\x02\x03")));
  SPK_ASSERT_OK(spk_msg_op_raw(&b, SPK_OP_WRITE, SPK_PARTICLE_STRING, S("v"),
                               S("blob-key")));
  SPK_ASSERT_OK(spk_msg_end(&b, start, 4, 1));
  assert_hex(b.data, b.len, PUT_BLOB_KEY_HEX);
  spk_buf_free(&b);
}

/* The constructed examples of protocol-core 8.2 (test/demo/"key1"). */
SPK_TEST(writer_reference_examples) {
  uint8_t d[SPK_DIGEST_SIZE];
  spk_key_digest("demo", 4, SPK_PARTICLE_STRING, (const uint8_t *)"key1", 4, d);
  spk_buf b = {0};
  spk_msg_header h = {0};
  h.info2 = SPK_INFO2_WRITE;
  h.transaction_ttl = 1000;
  size_t start = spk_msg_begin(&b, &h);
  key_fields(&b, "demo", d);
  SPK_ASSERT_OK(spk_msg_field(&b, SPK_FIELD_KEY, S("\x03key1")));
  SPK_ASSERT_OK(spk_msg_op_int(&b, SPK_OP_WRITE, S("a"), 1));
  SPK_ASSERT_OK(spk_msg_end(&b, start, 4, 1));
  assert_hex(b.data + 8, 22, "1600010000000000000000000000000003e800040001");
  assert_hex(b.data + b.len - 17, 17, "0000000d02010001610000000000000001");
  assert_hex(b.data + 30 + 9 + 9 + 25, 10, "0000000602036b657931");
  spk_buf_free(&b);
}

SPK_TEST(writer_limits) {
  spk_buf b = {0};
  char name[300];
  memset(name, 'n', sizeof name);
  SPK_ASSERT_EQ(spk_msg_op_begin(&b, 1, 0, name, 256), (size_t)-1);
  SPK_ASSERT_EQ(b.len, 0);
  spk_msg_op_end(&b, (size_t)-1); /* ignored, no crash */
  SPK_ASSERT_EQ(spk_msg_op_raw(&b, 1, 0, name, 256, NULL, 0), SPK_ERR_PARAM);
  SPK_ASSERT_EQ(spk_msg_op_int(&b, 1, name, 256, 1), SPK_ERR_PARAM);
  SPK_ASSERT_EQ(spk_msg_op_float(&b, 1, name, 256, 1.0), SPK_ERR_PARAM);
  SPK_ASSERT_EQ(spk_msg_op_bool(&b, 1, name, 256, true), SPK_ERR_PARAM);
  SPK_ASSERT_EQ(b.len, 0);
  /* 255 is the wire maximum and is accepted. */
  size_t off = spk_msg_op_begin(&b, 1, 0, name, 255);
  SPK_ASSERT_EQ(off, 0);
  spk_msg_op_end(&b, off);
  SPK_ASSERT_EQ(spk_be32(b.data), 4 + 255);
  SPK_ASSERT_EQ(b.data[7], 255);

  SPK_ASSERT(spk_msg_field_reserve(&b, 0, (size_t)SPK_PROTO_SIZE_MAX + 1) ==
             NULL);
  SPK_ASSERT_EQ(spk_msg_field(&b, 0, name, (size_t)SPK_PROTO_SIZE_MAX + 1),
                SPK_ERR_PARAM);

  /* spk_msg_end refuses a body above the limit without touching memory
   * beyond the header (len is faked; only the first 30 bytes exist). */
  spk_buf_free(&b);
  spk_msg_header h = {0};
  size_t start = spk_msg_begin(&b, &h);
  size_t real_len = b.len;
  b.len = start + 8 + SPK_PROTO_SIZE_MAX + 1;
  SPK_ASSERT_EQ(spk_msg_end(&b, start, 0, 0), SPK_ERR_PARAM);
  b.len = start + 8 + SPK_PROTO_SIZE_MAX;
  SPK_ASSERT_OK(spk_msg_end(&b, start, 0, 0));
  b.len = real_len;
  /* A start that is not a message start is refused. */
  SPK_ASSERT_EQ(spk_msg_end(&b, b.len - 10, 0, 0), SPK_ERR_PARAM);
  SPK_ASSERT_EQ(spk_msg_end(&b, b.len + 1, 0, 0), SPK_ERR_PARAM);
  spk_buf_free(&b);
}

/* ---- message reader: synthetic rejections -------------------------------- */

/* Build an as_msg (no proto header) from hex and parse it with exactly its
 * own length in a heap block, so ASan sees any read past the end. */
static int parse_hex(const char *hex, spk_msg_view *v, size_t *used,
                     spk_error *err) {
  size_t n;
  uint8_t *raw = spk_test_unhex(hex, &n);
  uint8_t *p = malloc(n ? n : 1);
  if (!p) abort();
  memcpy(p, raw, n);
  free(raw);
  spk_error_reset(err);
  int rc = spk_msg_parse(p, n, v, used, err);
  /* Iterate whatever was accepted while the memory is still live. */
  if (rc == 0) {
    spk_msg_iter it = spk_msg_fields(v);
    spk_field_view f;
    while (spk_msg_next_field(&it, &f)) SPK_ASSERT(f.data + f.len <= v->ops);
    it = spk_msg_ops(v);
    spk_op_view o;
    while (spk_msg_next_op(&it, &o)) SPK_ASSERT(o.value + o.value_len <= v->end);
  }
  free(p);
  return rc;
}

static void expect_parse_error(const char *hex, const char *msg) {
  spk_msg_view v;
  size_t used = 12345;
  spk_error err;
  SPK_ASSERT_EQ(parse_hex(hex, &v, &used, &err), SPK_ERR_PROTOCOL);
  SPK_ASSERT_EQ(err.code, SPK_ERR_PROTOCOL);
  if (strcmp(err.message, msg) != 0)
    SPK_FAIL("message \"%s\" != \"%s\" for %s", err.message, msg, hex);
  SPK_ASSERT_EQ(used, 12345); /* untouched on error */
}

#define HDR(nf, nop) "160000000000" "00000001" "00000000" "00000000" nf nop

SPK_TEST(msg_parse_rejects) {
  expect_parse_error("", "as_msg truncated: 0 bytes, header needs 22");
  expect_parse_error("160000000000000000010000000000000000000000",
                     "as_msg truncated: 21 bytes, header needs 22");
  expect_parse_error("150000000000000000010000000000000000000000" "00",
                     "bad as_msg header_sz 21");
  expect_parse_error("000000000000000000010000000000000000000000" "00",
                     "bad as_msg header_sz 0");
  expect_parse_error("170000000000000000010000000000000000000000" "00",
                     "as_msg header_sz 23 exceeds 22 available bytes");
  expect_parse_error("ff0000000000000000010000000000000000000000" "00",
                     "as_msg header_sz 255 exceeds 22 available bytes");
  /* Counts that cannot fit at all are rejected before any walking. */
  expect_parse_error(HDR("0001", "0000"),
                     "as_msg claims 1 fields and 0 ops but only 0 bytes "
                     "follow the header");
  expect_parse_error(HDR("ffff", "ffff") "0000000100",
                     "as_msg claims 65535 fields and 65535 ops but only 5 "
                     "bytes follow the header");
  expect_parse_error(HDR("0000", "0001") "00000004010000",
                     "as_msg claims 0 fields and 1 ops but only 7 bytes "
                     "follow the header");
  /* Fields. */
  expect_parse_error(HDR("0001", "0000") "0000000000", "field 0 has size 0");
  expect_parse_error(HDR("0001", "0000") "0000000200",
                     "field 0 (type 0) size 2 exceeds 1 available bytes");
  expect_parse_error(HDR("0001", "0000") "ffffffff04aa",
                     "field 0 (type 4) size 4294967295 exceeds 2 available "
                     "bytes");
  expect_parse_error(HDR("0002", "0000") "0000000600" "0102030405",
                     "field 1 truncated");
  expect_parse_error(HDR("0002", "0000") "00000001000000000000",
                     "field 1 has size 0");
  /* Ops. */
  expect_parse_error(HDR("0000", "0001") "0000000301000000",
                     "op 0 size 3 smaller than its header and name (4)");
  expect_parse_error(HDR("0000", "0001") "0000000501000002616263",
                     "op 0 size 5 smaller than its header and name (6)");
  expect_parse_error(HDR("0000", "0001") "0000000901000001610000",
                     "op 0 size 9 exceeds 7 available bytes");
  expect_parse_error(HDR("0000", "0001") "ffffffff01000001610000",
                     "op 0 size 4294967295 exceeds 7 available bytes");
  expect_parse_error(HDR("0000", "0002") "0000000c01000000" "0102030405060708",
                     "op 1 truncated");
  expect_parse_error(HDR("0001", "0001") "0000000900" "0102030405060708",
                     "op 0 truncated");
}

SPK_TEST(msg_parse_accepts_and_iterates) {
  spk_msg_view v;
  size_t used;
  spk_error err;
  /* Two fields (one empty) and two ops (one with no name, no value), then
   * trailing bytes that belong to the next message. */
  static const char hex[] =
      "16" "01" "00" "00" "00" "02" "00000007" "1fc4f024" "00000003"
      "0002" "0002"
      "0000000100"
      "000000050474657374"
      "0000000d0101000162" "0000000000000009"
      "000000040e000000"
      "deadbeef";
  SPK_ASSERT_OK(parse_hex(hex, &v, &used, &err));
  SPK_ASSERT_EQ(used, sizeof hex / 2 - 4);
  SPK_ASSERT_EQ(v.h.result_code, 2);
  SPK_ASSERT_EQ(v.h.generation, 7);
  SPK_ASSERT_EQ(v.h.record_ttl, 533000228);
  SPK_ASSERT_EQ(v.h.transaction_ttl, 3);

  size_t n;
  uint8_t *p = spk_test_unhex(hex, &n);
  SPK_ASSERT_OK(spk_msg_parse(p, n, &v, NULL, NULL));
  spk_msg_iter it = spk_msg_fields(&v);
  spk_field_view f;
  SPK_ASSERT(spk_msg_next_field(&it, &f));
  SPK_ASSERT_EQ(f.type, 0);
  SPK_ASSERT_EQ(f.len, 0);
  SPK_ASSERT(spk_msg_next_field(&it, &f));
  SPK_ASSERT_EQ(f.type, 4);
  SPK_ASSERT_EQ(f.len, 4);
  SPK_ASSERT_MEM_EQ(f.data, "test", 4);
  SPK_ASSERT(!spk_msg_next_field(&it, &f));
  SPK_ASSERT(spk_msg_find_field(&v, 4, &f));
  SPK_ASSERT_EQ(f.len, 4);
  SPK_ASSERT(!spk_msg_find_field(&v, 2, &f));

  it = spk_msg_ops(&v);
  spk_op_view o;
  SPK_ASSERT(spk_msg_next_op(&it, &o));
  SPK_ASSERT_EQ(o.op, 1);
  SPK_ASSERT_EQ(o.particle, 1);
  SPK_ASSERT_EQ(o.name_len, 1);
  SPK_ASSERT_EQ(o.name[0], 'b');
  int64_t iv;
  SPK_ASSERT_OK(spk_particle_int(o.value, o.value_len, &iv));
  SPK_ASSERT_EQ(iv, 9);
  SPK_ASSERT(spk_msg_next_op(&it, &o));
  SPK_ASSERT_EQ(o.op, SPK_OP_DELETE_ALL);
  SPK_ASSERT_EQ(o.name_len, 0);
  SPK_ASSERT_EQ(o.value_len, 0);
  SPK_ASSERT(!spk_msg_next_op(&it, &o));
  SPK_ASSERT_EQ(o.value + o.value_len, v.end);
  free(p);

  /* header_sz above 22: the extra header bytes are skipped. */
  p = spk_test_unhex("180000000000" "00000001" "00000000" "00000000"
                     "0001" "0000" "aaaa" "000000020161", &n);
  SPK_ASSERT_OK(spk_msg_parse(p, n, &v, &used, NULL));
  SPK_ASSERT_EQ(used, 24 + 6);
  SPK_ASSERT_EQ(v.h.header_sz, 24);
  SPK_ASSERT(spk_msg_find_field(&v, 1, &f));
  SPK_ASSERT_EQ(f.len, 1);
  SPK_ASSERT_EQ(f.data[0], 'a');
  free(p);

  /* The smallest message: a bare header. */
  SPK_ASSERT_OK(parse_hex("160000000000000000010000000000000000000000" "00",
                          &v, &used, &err));
  SPK_ASSERT_EQ(used, 22);
}

/* Every strict prefix of a valid message with ops must be rejected, and the
 * reader must never touch a byte beyond the prefix (exact-size heap copies
 * let ASan see it). */
SPK_TEST(msg_parse_every_truncation) {
  size_t n;
  uint8_t *full = spk_test_unhex(PUT_ALL_TYPES_HEX, &n);
  const uint8_t *msg = full + 8;
  size_t len = n - 8;
  spk_msg_view v;
  size_t used;
  SPK_ASSERT_OK(spk_msg_parse(msg, len, &v, &used, NULL));
  SPK_ASSERT_EQ(used, len);
  for (size_t cut = 0; cut < len; cut++) {
    uint8_t *p = malloc(cut ? cut : 1);
    if (!p) abort();
    memcpy(p, msg, cut);
    spk_error err;
    spk_error_reset(&err);
    SPK_ASSERT_EQ(spk_msg_parse(p, cut, &v, &used, &err), SPK_ERR_PROTOCOL);
    SPK_ASSERT(err.message[0] != '\0');
    free(p);
  }
  free(full);
}

/* ---- particles ------------------------------------------------------------- */

SPK_TEST(particle_decoders) {
  int64_t i;
  SPK_ASSERT_OK(spk_particle_int((const uint8_t *)"\xff\xff\xff\xff\xff\xff\xcf\xc7", 8, &i));
  SPK_ASSERT_EQ(i, -12345);
  SPK_ASSERT_OK(spk_particle_int((const uint8_t *)"\x80\0\0\0\0\0\0\0", 8, &i));
  SPK_ASSERT(i == INT64_MIN);
  SPK_ASSERT_OK(spk_particle_int((const uint8_t *)"\x7f\xff\xff\xff\xff\xff\xff\xff", 8, &i));
  SPK_ASSERT(i == INT64_MAX);
  SPK_ASSERT_OK(spk_particle_int((const uint8_t *)"\xff\xff\xff\xff", 4, &i));
  SPK_ASSERT_EQ(i, 4294967295LL);
  SPK_ASSERT_OK(spk_particle_int((const uint8_t *)"\x80\x01", 2, &i));
  SPK_ASSERT_EQ(i, 0x8001);
  SPK_ASSERT_OK(spk_particle_int((const uint8_t *)"\xfe", 1, &i));
  SPK_ASSERT_EQ(i, 254);
  for (uint32_t w = 0; w <= 16; w++) {
    if (w == 1 || w == 2 || w == 4 || w == 8) continue;
    SPK_ASSERT_EQ(spk_particle_int((const uint8_t *)"0123456789abcdef", w, &i),
                  SPK_ERR_PROTOCOL);
  }

  double d;
  SPK_ASSERT_OK(spk_particle_float((const uint8_t *)"\x40\x0a\0\0\0\0\0\0", 8, &d));
  SPK_ASSERT(d == 3.25);
  SPK_ASSERT_OK(spk_particle_float((const uint8_t *)"\xbf\xb9\x99\x99\x99\x99\x99\x9a", 8, &d));
  SPK_ASSERT(d == -0.1);
  SPK_ASSERT_OK(spk_particle_float((const uint8_t *)"\x7f\xf0\0\0\0\0\0\0", 8, &d));
  SPK_ASSERT(isinf(d));
  SPK_ASSERT_EQ(spk_particle_float((const uint8_t *)"\0\0\0\0", 4, &d), SPK_ERR_PROTOCOL);
  SPK_ASSERT_EQ(spk_particle_float((const uint8_t *)"", 0, &d), SPK_ERR_PROTOCOL);

  bool b;
  SPK_ASSERT_OK(spk_particle_bool((const uint8_t *)"\x01", 1, &b));
  SPK_ASSERT(b);
  SPK_ASSERT_OK(spk_particle_bool((const uint8_t *)"\x00", 1, &b));
  SPK_ASSERT(!b);
  SPK_ASSERT_EQ(spk_particle_bool((const uint8_t *)"\x02", 1, &b), SPK_ERR_PROTOCOL);
  SPK_ASSERT_EQ(spk_particle_bool((const uint8_t *)"\x00\x01", 2, &b), SPK_ERR_PROTOCOL);
  SPK_ASSERT_EQ(spk_particle_bool((const uint8_t *)"", 0, &b), SPK_ERR_PROTOCOL);

  /* GeoJSON as returned (one cell) and as written (no cells). */
  size_t n;
  uint8_t *g = spk_test_unhex(
      "000001808fa2163c31aa2f7b2274797065223a22506f696e74222c22636f6f7264696e"
      "61746573223a5b2d3132322e32352c33372e355d7d", &n);
  const char *json;
  uint32_t jl;
  SPK_ASSERT_OK(spk_particle_geojson(g, (uint32_t)n, &json, &jl));
  SPK_ASSERT_EQ(jl, 45);
  SPK_ASSERT_MEM_EQ(json, "{\"type\":\"Point\",\"coordinates\":[-122.25,37.5]}", 45);
  /* Claimed cells beyond the value. */
  for (uint32_t cut = 0; cut < 11; cut++)
    SPK_ASSERT_EQ(spk_particle_geojson(g, cut, &json, &jl), SPK_ERR_PROTOCOL);
  SPK_ASSERT_OK(spk_particle_geojson(g, 11, &json, &jl));
  SPK_ASSERT_EQ(jl, 0);
  g[1] = 0xff;
  g[2] = 0xff;
  SPK_ASSERT_EQ(spk_particle_geojson(g, (uint32_t)n, &json, &jl), SPK_ERR_PROTOCOL);
  SPK_ASSERT_OK(spk_particle_geojson((const uint8_t *)"\0\0\0{}", 5, &json, &jl));
  SPK_ASSERT_EQ(jl, 2);
  free(g);
}

SPK_TEST(void_time_to_ttl) {
  /* records.json ttl cases: void 533000228 seen at citrusleaf 533000128. */
  uint64_t now = 533000128u + SPK_CITRUSLEAF_EPOCH;
  SPK_ASSERT_EQ(spk_void_time_to_ttl(533000228u, now), 100);
  SPK_ASSERT_EQ(spk_void_time_to_ttl(0, now), -1);
  SPK_ASSERT_EQ(spk_void_time_to_ttl(533000129u, now), 1);
  SPK_ASSERT_EQ(spk_void_time_to_ttl(533000128u, now), 1);
  SPK_ASSERT_EQ(spk_void_time_to_ttl(5u, now), 1);
  SPK_ASSERT_EQ(spk_void_time_to_ttl(UINT32_MAX, now), (int64_t)UINT32_MAX - 533000128);
  /* A clock before 2010 does not underflow. */
  SPK_ASSERT_EQ(spk_void_time_to_ttl(100, 0), 100);
}
