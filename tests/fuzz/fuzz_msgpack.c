/*
 * fuzz_msgpack.c - libFuzzer target for the msgpack reader and writer.
 *
 * 1. spk_mp_validate must agree with a reference walk (same depth rule,
 *    but no early stop) on whether the input is exactly one object.
 * 2. Every item of a full pull walk is re-packed with the writer; reading
 *    the result back gives the same items, and re-packing that again is
 *    byte-identical (the writer's output is canonical).
 */
#include <math.h>
#include <stdlib.h>

#include "spk_msgpack.h"

#define CHECK(c)                 \
  do {                           \
    if (!(c)) __builtin_trap();  \
  } while (0)

#define MAX_ITEMS 4096

typedef struct {
  spk_mp_item items[MAX_ITEMS];
  size_t n;
} item_list;

static int pack_item(spk_buf *b, const spk_mp_item *it) {
  switch (it->type) {
    case SPK_MP_NIL: return spk_mp_pack_nil(b);
    case SPK_MP_BOOL: return spk_mp_pack_bool(b, it->v.b);
    case SPK_MP_INT: return spk_mp_pack_int(b, it->v.i);
    case SPK_MP_UINT: return spk_mp_pack_uint(b, it->v.u);
    case SPK_MP_FLOAT: return spk_mp_pack_float32(b, (float)it->v.d);
    case SPK_MP_DOUBLE: return spk_mp_pack_double(b, it->v.d);
    case SPK_MP_STR: return spk_mp_pack_str(b, it->v.s.p, it->v.s.len);
    case SPK_MP_BIN: return spk_mp_pack_bin(b, it->v.s.p, it->v.s.len);
    case SPK_MP_ARRAY: return spk_mp_pack_array_header(b, it->v.n);
    case SPK_MP_MAP: return spk_mp_pack_map_header(b, it->v.n);
    case SPK_MP_EXT:
      return spk_mp_pack_ext(b, it->v.s.ext_type, it->v.s.p, it->v.s.len);
  }
  return -1;
}

static int same_item(const spk_mp_item *a, const spk_mp_item *b) {
  if (a->type != b->type) return 0;
  switch (a->type) {
    case SPK_MP_NIL: return 1;
    case SPK_MP_BOOL: return a->v.b == b->v.b;
    case SPK_MP_INT: return a->v.i == b->v.i;
    case SPK_MP_UINT: return a->v.u == b->v.u;
    case SPK_MP_FLOAT:
    case SPK_MP_DOUBLE:
      return (isnan(a->v.d) && isnan(b->v.d)) ||
             memcmp(&a->v.d, &b->v.d, sizeof(double)) == 0;
    case SPK_MP_ARRAY:
    case SPK_MP_MAP: return a->v.n == b->v.n;
    case SPK_MP_STR:
    case SPK_MP_BIN:
    case SPK_MP_EXT:
      return a->v.s.len == b->v.s.len && a->v.s.ext_type == b->v.s.ext_type &&
             memcmp(a->v.s.p, b->v.s.p, a->v.s.len) == 0;
  }
  return 0;
}

/*
 * Reference walk of one object: a depth counter per open container, the
 * same rule as spk_mp_skip (a container nested inside SPK_MP_MAX_DEPTH
 * others is too deep).  Records up to MAX_ITEMS items.  Returns 0 when one
 * object was read (depth within the limit), 1 when it was too deep, -1 on
 * a read error; *end gets the stop position.
 */
static int reference_walk(const uint8_t *p, size_t n, item_list *out,
                          const uint8_t **end) {
  static uint64_t owed[1 << 16];
  size_t depth = 0;
  uint64_t left = 1;
  int too_deep = 0;
  spk_mp_reader r;
  spk_mp_reader_init(&r, p, n);
  out->n = 0;
  for (;;) {
    while (left == 0) {
      if (depth == 0) {
        *end = r.p;
        return too_deep;
      }
      left = owed[--depth];
    }
    left--;
    spk_mp_item it;
    if (spk_mp_next(&r, &it)) {
      *end = r.p;
      return -1;
    }
    if (out->n < MAX_ITEMS) out->items[out->n++] = it;
    if (it.type != SPK_MP_ARRAY && it.type != SPK_MP_MAP) continue;
    if (depth >= SPK_MP_MAX_DEPTH) too_deep = 1;
    uint64_t c = it.type == SPK_MP_MAP ? 2 * (uint64_t)it.v.n : it.v.n;
    if (c == 0) continue;
    if (depth == sizeof owed / sizeof owed[0]) {
      *end = r.p;
      return 1;
    }
    owed[depth++] = left;
    left = c;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static item_list a, b2;
  const uint8_t *end;
  int ref = reference_walk(data, size, &a, &end);
  int valid = spk_mp_validate(data, size);
  CHECK((valid == 0) == (ref == 0 && end == data + size));

  spk_mp_reader r;
  spk_mp_reader_init(&r, data, size);
  int skipped = spk_mp_skip(&r);
  CHECK((skipped == 0) == (ref == 0));
  if (skipped == 0) CHECK(r.p == end);

  if (ref != 0 || a.n >= MAX_ITEMS) return 0;

  /* Re-pack, read back, compare; then re-pack again: identical bytes. */
  spk_buf b = {0}, c = {0};
  for (size_t i = 0; i < a.n; i++) CHECK(pack_item(&b, &a.items[i]) == 0);
  /* The writer picks the smallest forms, so it never grows the input. */
  CHECK(b.len <= (size_t)(end - data));
  int ref2 = reference_walk(b.data, b.len, &b2, &end);
  CHECK(ref2 == 0 && end == b.data + b.len);
  CHECK(spk_mp_validate(b.data, b.len) == 0);
  CHECK(b2.n == a.n);
  for (size_t i = 0; i < a.n; i++) CHECK(same_item(&a.items[i], &b2.items[i]));
  for (size_t i = 0; i < b2.n; i++) CHECK(pack_item(&c, &b2.items[i]) == 0);
  CHECK(c.len == b.len && memcmp(c.data, b.data, b.len) == 0);
  spk_buf_free(&b);
  spk_buf_free(&c);
  return 0;
}
