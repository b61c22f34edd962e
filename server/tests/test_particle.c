/* Particles: msgpack order, container validation, sizes, GeoJSON. */
#include "fixture.h"

static uint8_t *unhex(const char *h, size_t *n) { return spk_test_unhex(h, n); }

static int cmp_hex(const char *a, const char *b) {
  size_t na, nb;
  uint8_t *x = unhex(a, &na), *y = unhex(b, &nb);
  int r = spk_srv_mp_cmp(x, na, y, nb);
  free(x);
  free(y);
  return r;
}

SPK_TEST(msgpack_type_order) {
  /* nil < false < true < -1 < 0 < "a" < [] < {} < blob < 1.0 */
  const char *asc[] = {"c0", "c2", "c3", "ff", "00", "a20361", "90", "80",
                       "a20401", "cb3ff0000000000000"};
  for (int i = 0; i + 1 < 10; i++) SPK_ASSERT_EQ(cmp_hex(asc[i], asc[i + 1]), -1);
  SPK_ASSERT_EQ(cmp_hex("d0ff", "ff"), 0);      /* -1 in two encodings */
  SPK_ASSERT_EQ(cmp_hex("cd0100", "cc05"), 1);  /* 256 > 5 */
  SPK_ASSERT_EQ(cmp_hex("a20362", "a3036161"), 1); /* "b" > "aa" */
  SPK_ASSERT_EQ(cmp_hex("920102", "93010200"), -1); /* prefix is smaller */
  SPK_ASSERT_EQ(cmp_hex("d4ff00", "05"), 0);    /* wildcard matches anything */
  SPK_ASSERT_EQ(cmp_hex("c1", "00"), 2);        /* malformed */
}

SPK_TEST(msgpack_size) {
  size_t n;
  uint8_t *p = unhex("9801a40374776fcb400c0000000000009304a50366697665a2040681a2036ba20376c3c0ff", &n);
  SPK_ASSERT_EQ(spk_srv_mp_size(p, p + n), n);
  SPK_ASSERT_EQ(spk_srv_mp_size(p, p + n - 1), 0);
  free(p);
  uint8_t bad[] = {0xdd, 0xff, 0xff, 0xff, 0xff}; /* array of 4G elements */
  SPK_ASSERT_EQ(spk_srv_mp_size(bad, bad + sizeof bad), 0);
}

static int validate(spk_srv_ctx *c, uint8_t ptype, const char *hex, char *out) {
  size_t n;
  uint8_t *p = unhex(hex, &n);
  bool rw;
  size_t off = 0;
  uint32_t len = 0;
  c->scratch.len = 0;
  int rc = spk_srv_cdt_validate(c, ptype, p, (uint32_t)n, &rw, &off, &len);
  if (rc == 0 && out) {
    if (rw) spk_test_hex(c->scratch.data + off, len, out);
    else spk_test_hex(p, n, out);
  }
  free(p);
  return rc;
}

SPK_TEST(containers_as_the_server_stores_them) {
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, NULL, NULL);
  char out[256];
  /* Unordered map z,a,m is stored key-sorted (records.json). */
  SPK_ASSERT_OK(validate(&c, SPK_PARTICLE_MAP, "83a2037a01a2036102a2036d03", out));
  SPK_ASSERT_STR_EQ(out, "83a2036102a2036d03a2037a01");
  SPK_ASSERT_OK(validate(&c, SPK_PARTICLE_MAP,
                         "85a2036101a20362a20378039201020a81a2036ec0a204bbfe", out));
  SPK_ASSERT_STR_EQ(out, "85039201020a81a2036ec0a2036101a20362a20378a204bbfe");
  /* K-ordered map not in order, duplicate keys, ordered list unsorted: 1. */
  SPK_ASSERT_EQ(validate(&c, SPK_PARTICLE_MAP, "84c70001c0a2037a01a203610205a50366697665", NULL), 1);
  SPK_ASSERT_EQ(validate(&c, SPK_PARTICLE_MAP, "82a2036101a2036102", NULL), 1);
  SPK_ASSERT_EQ(validate(&c, SPK_PARTICLE_LIST, "94c70001030102", NULL), 1);
  SPK_ASSERT_OK(validate(&c, SPK_PARTICLE_LIST, "94c70001010203", out));
  SPK_ASSERT_STR_EQ(out, "94c70001010203");
  /* Truncated list, wrong container type. */
  SPK_ASSERT_EQ(validate(&c, SPK_PARTICLE_LIST, "930102", NULL), 1);
  SPK_ASSERT_EQ(validate(&c, SPK_PARTICLE_LIST, "80", NULL), 1);
  spk_srv_ctx_free(&c);
}

SPK_TEST(flat_sizes) {
  SPK_ASSERT_EQ(spk_srv_uintvar_size(127), 1);
  SPK_ASSERT_EQ(spk_srv_uintvar_size(128), 2);
  static const uint8_t i10[8] = {0, 0, 0, 0, 0, 0, 0, 10};
  static const uint8_t i300[8] = {0, 0, 0, 0, 0, 0, 1, 44};
  static const uint8_t i70k[8] = {0, 0, 0, 0, 0, 1, 0x11, 0x70};
  static const uint8_t neg1[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  SPK_ASSERT_EQ(spk_srv_particle_flat_size(SPK_PARTICLE_INTEGER, i10, 8), 3);
  SPK_ASSERT_EQ(spk_srv_particle_flat_size(SPK_PARTICLE_INTEGER, i300, 8), 4);
  SPK_ASSERT_EQ(spk_srv_particle_flat_size(SPK_PARTICLE_INTEGER, i70k, 8), 6);
  SPK_ASSERT_EQ(spk_srv_particle_flat_size(SPK_PARTICLE_INTEGER, neg1, 8), 10);
  SPK_ASSERT_EQ(spk_srv_particle_flat_size(SPK_PARTICLE_BLOB, NULL, 1048576), 1048581);
}

SPK_TEST(geojson_point_cell) {
  /* records.json: Point(-122.25, 37.5) is stored with cell 808fa2163c31aa2f. */
  SPK_ASSERT_EQ(spk_srv_s2_cell(37.5, -122.25), 0x808fa2163c31aa2full);
  const char *js = "{\"type\":\"Point\",\"coordinates\":[-122.25,37.5]}";
  uint8_t in[128] = {0, 0, 0};
  memcpy(in + 3, js, strlen(js));
  spk_buf out = {0};
  SPK_ASSERT_OK(spk_srv_geo_from_client(in, 3 + (uint32_t)strlen(js), &out));
  SPK_ASSERT_EQ(out.len, 11 + strlen(js));
  SPK_ASSERT_EQ(spk_be16(out.data + 1), 1);
  SPK_ASSERT_EQ(spk_be64(out.data + 3), 0x808fa2163c31aa2full);
  spk_buf_free(&out);
  const char *bad[] = {"not json", "{\"type\":\"Point\"}", "{\"type\":\"Line\",\"coordinates\":[]}",
                       "{\"type\":\"Point\",\"coordinates\":[200,0]}", "{\"type\":\"Point\",\"coordinates\":[1,2]"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t b[128] = {0};
    memcpy(b + 3, bad[i], strlen(bad[i]));
    spk_buf o = {0};
    SPK_ASSERT_EQ(spk_srv_geo_from_client(b, 3 + (uint32_t)strlen(bad[i]), &o), 160);
    spk_buf_free(&o);
  }
  const char *poly = "{\"type\":\"Polygon\",\"coordinates\":[[[0,0],[0,1],[1,1],[0,0]]]}";
  uint8_t p[128] = {0};
  memcpy(p + 3, poly, strlen(poly));
  spk_buf o = {0};
  SPK_ASSERT_OK(spk_srv_geo_from_client(p, 3 + (uint32_t)strlen(poly), &o));
  spk_buf_free(&o);
}
