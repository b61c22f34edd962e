/*
 * cdt.c - list and map operations (CDT_READ / CDT_MODIFY ops).
 *
 * Payload: msgpack [op, args...], or [0xff, [ctx_type, ctx_value, ...],
 * [op, args...]] to act on a nested container.  Containers are parsed into
 * element spans, selections are computed (by index, rank, value, key,
 * interval, list...), and results encoded per return type; a modified
 * container is re-encoded whole.  Maps are kept key-sorted (the server
 * stores unordered maps that way too), so map index order is key order.
 *
 * Implemented: list ops 0-13, 16-27, 32-40; map ops 64-70, 73-79, 81-89,
 * 96-100, 102-110; contexts by list index / rank / value and map index /
 * rank / key / value (without the create flags).  Not implemented: context
 * create flags, persisted list/map indexes, bit and HLL ops.
 */
#include <stdlib.h>

#include "spk_msgpack.h"
#include "srv.h"

#define RT_NONE 0
#define RT_INDEX 1
#define RT_REVINDEX 2
#define RT_RANK 3
#define RT_REVRANK 4
#define RT_COUNT 5
#define RT_KEY 6
#define RT_VALUE 7
#define RT_MAP 8
#define RT_INVERTED 0x10000

typedef struct span {
  const uint8_t *p;
  uint32_t n;
} span;

typedef struct ctr {
  bool map;
  int flags; /* list: 1 ordered; map: 1 key-ordered, 3 key/value-ordered */
  uint32_t n; /* elements (maps: pairs) */
  span *e;    /* maps: e[2i] key, e[2i+1] value */
} ctr;

static inline span key_of(const ctr *c, uint32_t i) { return c->map ? c->e[2 * i] : c->e[i]; }
static inline span val_of(const ctr *c, uint32_t i) { return c->map ? c->e[2 * i + 1] : c->e[i]; }

/* memmove that accepts empty (possibly NULL) ranges. */
static inline void mv(void *d, const void *s, size_t n) {
  if (n) memmove(d, s, n);
}

static int cmp(span a, span b) {
  int r = spk_srv_mp_cmp(a.p, a.n, b.p, b.n);
  return r == 2 ? 0 : r;
}

/* ---- msgpack helpers ------------------------------------------------------------------ */

static bool get_int(span s, int64_t *v) {
  spk_mp_reader r;
  spk_mp_item it;
  spk_mp_reader_init(&r, s.p, s.n);
  if (spk_mp_next(&r, &it) != 0 || it.type != SPK_MP_INT) return false;
  *v = it.v.i;
  return true;
}

/* Elements of a msgpack array (args lists). */
static int array_items(span s, span **out, uint32_t *n) {
  spk_mp_reader r;
  spk_mp_item it;
  spk_mp_reader_init(&r, s.p, s.n);
  if (spk_mp_next(&r, &it) != 0 || it.type != SPK_MP_ARRAY) return -1;
  *n = it.v.n;
  *out = it.v.n ? malloc(it.v.n * sizeof **out) : NULL;
  if (it.v.n && !*out) return -1;
  const uint8_t *p = r.p, *end = s.p + s.n;
  for (uint32_t i = 0; i < it.v.n; i++) {
    size_t sz = spk_srv_mp_size(p, end);
    if (!sz) {
      free(*out);
      return -1;
    }
    (*out)[i] = (span){p, (uint32_t)sz};
    p += sz;
  }
  return 0;
}

static int ctr_parse(const uint8_t *p, uint32_t len, bool map, ctr *c) {
  memset(c, 0, sizeof *c);
  c->map = map;
  const uint8_t *end = p + len;
  if (len == 0) return -1;
  uint8_t b = p[0];
  uint32_t n;
  size_t h;
  if (map) {
    if ((b & 0xf0) == 0x80) { n = b & 0x0f; h = 1; }
    else if (b == 0xde && len >= 3) { n = spk_be16(p + 1); h = 3; }
    else if (b == 0xdf && len >= 5) { n = spk_be32(p + 1); h = 5; }
    else return -1;
  } else {
    if ((b & 0xf0) == 0x90) { n = b & 0x0f; h = 1; }
    else if (b == 0xdc && len >= 3) { n = spk_be16(p + 1); h = 3; }
    else if (b == 0xdd && len >= 5) { n = spk_be32(p + 1); h = 5; }
    else return -1;
  }
  p += h;
  if (n > 0 && end - p >= 3 && p[0] == 0xc7 && p[1] == 0 && p[2] != 0xff) {
    c->flags = p[2];
    p += 3;
    if (map) {
      if (p >= end || p[0] != 0xc0) return -1;
      p++;
    }
    n--;
  }
  uint32_t k = map ? 2 * n : n;
  if (k > (uint32_t)(end - p)) return -1;
  c->n = n;
  /* Never NULL: pointer arithmetic on an empty array stays defined. */
  c->e = malloc((k ? k : 1) * sizeof *c->e);
  if (!c->e) return -1;
  for (uint32_t i = 0; i < k; i++) {
    size_t sz = spk_srv_mp_size(p, end);
    if (!sz) return -1;
    c->e[i] = (span){p, (uint32_t)sz};
    p += sz;
  }
  return p == end ? 0 : -1;
}

static void ctr_free(ctr *c) {
  free(c->e);
  c->e = NULL;
}

static void put_header(spk_buf *b, bool map, uint32_t n) {
  if (map) spk_mp_pack_map_header(b, n);
  else spk_mp_pack_array_header(b, n);
}

static void ctr_encode(const ctr *c, spk_buf *b) {
  bool meta = c->flags != 0;
  put_header(b, c->map, c->n + (meta ? 1 : 0));
  if (meta) {
    uint8_t m[4] = {0xc7, 0, (uint8_t)c->flags, 0xc0};
    spk_buf_append(b, m, c->map ? 4 : 3);
  }
  for (uint32_t i = 0; i < (c->map ? 2 * c->n : c->n); i++)
    spk_buf_append(b, c->e[i].p, c->e[i].n);
}

/* Insert / remove spans (the backing bytes stay where they are). */
static int ctr_insert(ctr *c, uint32_t at, const span *items, uint32_t k) {
  uint32_t w = c->map ? 2 : 1;
  span *e = realloc(c->e, ((size_t)c->n + k) * w * sizeof *e);
  if (!e) return -1;
  mv(e + (at + k) * w, e + at * w, (size_t)(c->n - at) * w * sizeof *e);
  mv(e + at * w, items, (size_t)k * w * sizeof *e);
  c->e = e;
  c->n += k;
  return 0;
}

static void ctr_remove_mask(ctr *c, const bool *sel) {
  uint32_t w = c->map ? 2 : 1, j = 0;
  for (uint32_t i = 0; i < c->n; i++) {
    if (sel[i]) continue;
    memmove(c->e + j * w, c->e + i * w, w * sizeof *c->e);
    j++;
  }
  c->n = j;
}

/* Sorted position for value v (ordered list) / key (map). */
static uint32_t lower_bound(const ctr *c, span v, bool by_key) {
  uint32_t lo = 0, hi = c->n;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    span x = by_key ? key_of(c, mid) : val_of(c, mid);
    if (cmp(x, v) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static int find_key(const ctr *c, span k) {
  uint32_t i = lower_bound(c, k, true);
  return i < c->n && cmp(key_of(c, i), k) == 0 ? (int)i : -1;
}

/* ---- selections ------------------------------------------------------------------------- */

typedef struct sel {
  bool *mask;
  uint32_t *order; /* selected indexes in result order */
  uint32_t count;
  bool single;     /* a single-element op (scalar results) */
} sel;

/* Indexes in value order (stable), by merge sort: qsort has no context
 * argument and a global one would race between service threads. */
static void msort(uint32_t *a, uint32_t *tmp, uint32_t n, const ctr *c) {
  if (n < 2) return;
  uint32_t h = n / 2;
  msort(a, tmp, h, c);
  msort(a + h, tmp, n - h, c);
  uint32_t i = 0, j = h, k = 0;
  while (i < h && j < n)
    tmp[k++] = cmp(val_of(c, a[j]), val_of(c, a[i])) < 0 ? a[j++] : a[i++];
  while (i < h) tmp[k++] = a[i++];
  while (j < n) tmp[k++] = a[j++];
  memcpy(a, tmp, n * sizeof *a);
}

/* Value ranks: result[r] = index of the element with rank r. */
static uint32_t *ranks(const ctr *c) {
  uint32_t *o = malloc((c->n ? c->n : 1) * sizeof *o);
  uint32_t *t = malloc((c->n ? c->n : 1) * sizeof *t);
  if (!o || !t) {
    free(o);
    free(t);
    return NULL;
  }
  for (uint32_t i = 0; i < c->n; i++) o[i] = i;
  msort(o, t, c->n, c);
  free(t);
  return o;
}

static int sel_init(sel *s, uint32_t n) {
  memset(s, 0, sizeof *s);
  s->mask = calloc(n ? n : 1, sizeof *s->mask);
  s->order = malloc((n ? n : 1) * sizeof *s->order);
  return s->mask && s->order ? 0 : -1;
}

static void sel_free(sel *s) {
  free(s->mask);
  free(s->order);
}

static void sel_add(sel *s, uint32_t i) {
  if (s->mask[i]) return;
  s->mask[i] = true;
  s->order[s->count++] = i;
}

/* Python-like range: start (negative from end), count (absent = to end,
 * negative = none). */
static void range_of(uint32_t n, int64_t start, bool has_count, int64_t count,
                     uint32_t *lo, uint32_t *hi) {
  if (start < 0) start += n;
  if (start < 0) {
    if (has_count) count += start;
    start = 0;
  }
  if ((uint64_t)start > n) start = n;
  int64_t end = has_count ? start + (count < 0 ? 0 : count) : (int64_t)n;
  if (end > (int64_t)n) end = n;
  *lo = (uint32_t)start;
  *hi = (uint32_t)end;
}

static void invert(sel *s, uint32_t n) {
  s->count = 0;
  for (uint32_t i = 0; i < n; i++) {
    s->mask[i] = !s->mask[i];
    if (s->mask[i]) s->order[s->count++] = i;
  }
  s->single = false;
}

/* ---- results -------------------------------------------------------------------------------- */

static void pack_list_of(spk_buf *b, const ctr *c, const sel *s, bool keys) {
  spk_mp_pack_array_header(b, s->count);
  for (uint32_t k = 0; k < s->count; k++) {
    span x = keys ? key_of(c, s->order[k]) : val_of(c, s->order[k]);
    spk_buf_append(b, x.p, x.n);
  }
}

/* Encode the result of a selection; -1 = no result (RT_NONE). */
static int pack_result(spk_buf *b, const ctr *c, sel *s, uint32_t rt,
                       const uint32_t *rank_order) {
  uint32_t base = rt & 0xffff;
  if (base == RT_NONE) return -1;
  if ((base == RT_KEY || base == RT_MAP) && !c->map) return SPK_SRV_ERR_PARAMETER;
  if (base == RT_COUNT) {
    spk_mp_pack_uint(b, s->count);
    return 0;
  }
  if (base == RT_INDEX || base == RT_REVINDEX || base == RT_RANK ||
      base == RT_REVRANK) {
    uint32_t *rank_of = NULL;
    if (base == RT_RANK || base == RT_REVRANK) {
      rank_of = malloc((c->n ? c->n : 1) * sizeof *rank_of);
      if (!rank_of) return SPK_SRV_ERR_UNKNOWN;
      for (uint32_t r = 0; r < c->n; r++) rank_of[rank_order[r]] = r;
    }
    if (!s->single) spk_mp_pack_array_header(b, s->count);
    if (s->single && s->count == 0) spk_mp_pack_nil(b);
    for (uint32_t k = 0; k < s->count; k++) {
      uint32_t i = s->order[k];
      uint32_t v = base == RT_INDEX ? i
                   : base == RT_REVINDEX ? c->n - 1 - i
                   : base == RT_RANK ? rank_of[i] : c->n - 1 - rank_of[i];
      spk_mp_pack_uint(b, v);
    }
    free(rank_of);
    return 0;
  }
  if (base == RT_MAP) {
    /* Key/value results keep their order: preserve-order flag 8. */
    spk_mp_pack_map_header(b, s->count + 1);
    uint8_t m[4] = {0xc7, 0, 8, 0xc0};
    spk_buf_append(b, m, 4);
    for (uint32_t k = 0; k < s->count; k++) {
      span x = key_of(c, s->order[k]), y = val_of(c, s->order[k]);
      spk_buf_append(b, x.p, x.n);
      spk_buf_append(b, y.p, y.n);
    }
    return 0;
  }
  if (base == RT_KEY || base == RT_VALUE) {
    bool keys = base == RT_KEY;
    if (s->single) {
      if (s->count == 0) spk_mp_pack_nil(b);
      else {
        span x = keys ? key_of(c, s->order[0]) : val_of(c, s->order[0]);
        spk_buf_append(b, x.p, x.n);
      }
    } else {
      pack_list_of(b, c, s, keys);
    }
    return 0;
  }
  return SPK_SRV_ERR_PARAMETER;
}

/* msgpack value -> response particle (type, bytes) appended to scratch. */
static int to_particle(spk_srv_ctx *cx, const uint8_t *p, size_t len,
                       spk_srv_resp_op *res) {
  spk_mp_reader r;
  spk_mp_item it;
  spk_mp_reader_init(&r, p, len);
  if (spk_mp_next(&r, &it) != 0) return SPK_SRV_ERR_UNKNOWN;
  res->in_scratch = true;
  res->off = cx->scratch.len;
  uint8_t tmp[8];
  switch (it.type) {
  case SPK_MP_NIL:
    res->ptype = SPK_PARTICLE_NULL;
    res->len = 0;
    return 0;
  case SPK_MP_BOOL:
    res->ptype = SPK_PARTICLE_BOOL;
    tmp[0] = it.v.b;
    res->len = 1;
    break;
  case SPK_MP_INT:
  case SPK_MP_UINT:
    res->ptype = SPK_PARTICLE_INTEGER;
    spk_put_be64(tmp, it.type == SPK_MP_INT ? (uint64_t)it.v.i : it.v.u);
    res->len = 8;
    break;
  case SPK_MP_FLOAT:
  case SPK_MP_DOUBLE: {
    uint64_t u;
    memcpy(&u, &it.v.d, 8);
    res->ptype = SPK_PARTICLE_FLOAT;
    spk_put_be64(tmp, u);
    res->len = 8;
    break;
  }
  case SPK_MP_STR:
  case SPK_MP_BIN:
    if (it.v.s.len == 0) {
      res->ptype = SPK_PARTICLE_BLOB;
      res->len = 0;
      return 0;
    }
    res->ptype = it.v.s.p[0];
    res->len = it.v.s.len - 1;
    return spk_buf_append(&cx->scratch, it.v.s.p + 1, res->len) ? SPK_SRV_ERR_UNKNOWN : 0;
  case SPK_MP_ARRAY:
    res->ptype = SPK_PARTICLE_LIST;
    res->len = (uint32_t)len;
    return spk_buf_append(&cx->scratch, p, len) ? SPK_SRV_ERR_UNKNOWN : 0;
  case SPK_MP_MAP:
    res->ptype = SPK_PARTICLE_MAP;
    res->len = (uint32_t)len;
    return spk_buf_append(&cx->scratch, p, len) ? SPK_SRV_ERR_UNKNOWN : 0;
  default:
    return SPK_SRV_ERR_PARAMETER;
  }
  return spk_buf_append(&cx->scratch, tmp, res->len) ? SPK_SRV_ERR_UNKNOWN : 0;
}

/* ---- the operations ------------------------------------------------------------------------ */

typedef struct opctx {
  ctr c;           /* container the op works on */
  bool exists;     /* container existed */
  bool modified;   /* c changed: re-encode */
  spk_buf res;     /* result msgpack (empty: none) */
  bool has_res;
  spk_buf owned;   /* bytes created by the op (new values) */
} opctx;

static bool is_modify_list(int op) {
  return (op >= 0 && op <= 13) || (op >= 32 && op <= 40);
}

static bool is_modify_map(int op) {
  return (op >= 64 && op <= 89);
}

/* Copy a value into owned storage; spans into it stay valid because owned
 * is sized up front (see run_op). */
static span own(opctx *o, const uint8_t *p, size_t n) {
  uint8_t *d = spk_buf_extend(&o->owned, n);
  if (!d) return (span){NULL, 0};
  memcpy(d, p, n);
  return (span){d, (uint32_t)n};
}

/* Selection ops shared by lists and maps.  Returns 0 or an error; *done=0
 * when the op is not a selection op. */
static int select_op(opctx *o, int op, const span *a, uint32_t na, bool *done,
                     bool *remove, uint32_t *rt_out, sel *s, uint32_t **rank_order) {
  ctr *c = &o->c;
  bool map = c->map;
  int base = map ? op - 64 : op;
  /* Normalise removes onto gets: list 32.. -> 19..; map 76.. -> 97.. */
  int kind;
  *remove = false;
  *done = true;
  if (!map) {
    if (op >= 32 && op <= 40) {
      *remove = true;
      base = op - 32 + 19;
    }
    switch (base) {
    case 19: kind = 'i'; break;   /* by index */
    case 20: kind = 'V'; break;   /* by value (all) */
    case 21: kind = 'r'; break;   /* by rank */
    case 22: kind = 'V'; break;   /* all by value */
    case 23: kind = 'L'; break;   /* all by value list */
    case 24: kind = 'I'; break;   /* index range */
    case 25: kind = 'W'; break;   /* value interval */
    case 26: kind = 'R'; break;   /* rank range */
    case 27: kind = 'X'; break;   /* value rel rank range */
    default: *done = false; return 0;
    }
  } else {
    static const struct { int get, rem; char kind; } m[] = {
        {97, 76, 'k'}, {98, 77, 'i'}, {99, 78, 'V'}, {100, 79, 'r'},
        {107, 81, 'K'}, {102, 82, 'V'}, {108, 83, 'L'}, {103, 84, 'J'},
        {104, 85, 'I'}, {105, 86, 'W'}, {106, 87, 'R'}, {109, 88, 'Y'},
        {110, 89, 'X'}};
    kind = 0;
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
      if (op == m[i].get) kind = m[i].kind;
      if (op == m[i].rem) {
        kind = m[i].kind;
        *remove = true;
      }
    }
    if (!kind) {
      *done = false;
      return 0;
    }
  }
  (void)base;
  int64_t rt;
  if (na < 2 || !get_int(a[0], &rt)) return SPK_SRV_ERR_PARAMETER;
  *rt_out = (uint32_t)rt;
  if (sel_init(s, c->n) != 0) return SPK_SRV_ERR_UNKNOWN;
  uint32_t n = c->n;
  int64_t x, cnt = 0;
  bool has_cnt = na >= 3;
  bool need_ranks = kind == 'r' || kind == 'R' || kind == 'X' ||
                    (rt & 0xffff) == RT_RANK || (rt & 0xffff) == RT_REVRANK;
  if (need_ranks) {
    *rank_order = ranks(c);
    if (!*rank_order) return SPK_SRV_ERR_UNKNOWN;
  }
  switch (kind) {
  case 'i':
    if (!get_int(a[1], &x)) return SPK_SRV_ERR_PARAMETER;
    s->single = true;
    if (x < 0) x += n;
    if (x >= 0 && x < (int64_t)n) sel_add(s, (uint32_t)x);
    else if (!map) return SPK_SRV_ERR_OP_NOT_APPLICABLE;
    break;
  case 'I': {
    if (!get_int(a[1], &x) || (has_cnt && !get_int(a[2], &cnt))) return SPK_SRV_ERR_PARAMETER;
    uint32_t lo, hi;
    range_of(n, x, has_cnt, cnt, &lo, &hi);
    for (uint32_t i = lo; i < hi; i++) sel_add(s, i);
    break;
  }
  case 'r':
    if (!get_int(a[1], &x)) return SPK_SRV_ERR_PARAMETER;
    s->single = true;
    if (x < 0) x += n;
    if (x >= 0 && x < (int64_t)n) sel_add(s, (*rank_order)[x]);
    else if (!map) return SPK_SRV_ERR_OP_NOT_APPLICABLE;
    break;
  case 'R': {
    if (!get_int(a[1], &x) || (has_cnt && !get_int(a[2], &cnt))) return SPK_SRV_ERR_PARAMETER;
    uint32_t lo, hi;
    range_of(n, x, has_cnt, cnt, &lo, &hi);
    for (uint32_t r = lo; r < hi; r++) sel_add(s, (*rank_order)[r]);
    break;
  }
  case 'V':
    for (uint32_t i = 0; i < n; i++)
      if (cmp(val_of(c, i), a[1]) == 0) sel_add(s, i);
    break;
  case 'L':
  case 'K': {
    span *items;
    uint32_t k;
    if (array_items(a[1], &items, &k) != 0) return SPK_SRV_ERR_PARAMETER;
    if (kind == 'K') {
      for (uint32_t j = 0; j < k; j++) {
        int i = find_key(c, items[j]);
        if (i >= 0) sel_add(s, (uint32_t)i);
      }
    } else {
      for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < k; j++)
          if (cmp(val_of(c, i), items[j]) == 0) sel_add(s, i);
    }
    free(items);
    break;
  }
  case 'k': {
    s->single = true;
    int i = find_key(c, a[1]);
    if (i >= 0) sel_add(s, (uint32_t)i);
    break;
  }
  case 'J':
  case 'W': {
    /* [begin, end): nil end = infinity. */
    span end = na >= 3 ? a[2] : (span){NULL, 0};
    bool open_end = !end.p || (end.n == 1 && end.p[0] == 0xc0);
    for (uint32_t i = 0; i < n; i++) {
      span v = kind == 'J' ? key_of(c, i) : val_of(c, i);
      if (cmp(v, a[1]) >= 0 && (open_end || cmp(v, end) < 0)) sel_add(s, i);
    }
    break;
  }
  case 'X':
  case 'Y': {
    /* Relative to the position value / key would take. */
    int64_t rel;
    if (na < 3 || !get_int(a[2], &rel)) return SPK_SRV_ERR_PARAMETER;
    has_cnt = na >= 4;
    if (has_cnt && !get_int(a[3], &cnt)) return SPK_SRV_ERR_PARAMETER;
    uint32_t anchor = 0;
    if (kind == 'Y') {
      anchor = lower_bound(c, a[1], true);
    } else {
      while (anchor < n && cmp(val_of(c, (*rank_order)[anchor]), a[1]) < 0) anchor++;
    }
    uint32_t lo, hi;
    int64_t start = (int64_t)anchor + rel;
    if (start < 0) {
      if (has_cnt) cnt += start;
      start = 0;
    }
    range_of(n, start, has_cnt, cnt, &lo, &hi);
    for (uint32_t r = lo; r < hi; r++) sel_add(s, kind == 'Y' ? r : (*rank_order)[r]);
    break;
  }
  default:
    return SPK_SRV_ERR_PARAMETER;
  }
  if (rt & RT_INVERTED) invert(s, n);
  return 0;
}

static int list_op(opctx *o, int op, const span *a, uint32_t na) {
  ctr *c = &o->c;
  int64_t x, cnt;
  uint32_t lo, hi;
  switch (op) {
  case 0: /* set type */
    if (na < 1 || !get_int(a[0], &x)) return SPK_SRV_ERR_PARAMETER;
    c->flags = (int)(x & 1);
    if (c->flags) {
      uint32_t *ord = ranks(c);
      span *e = malloc((c->n ? c->n : 1) * sizeof *e);
      if (!ord || !e) {
        free(ord);
        free(e);
        return SPK_SRV_ERR_UNKNOWN;
      }
      for (uint32_t i = 0; i < c->n; i++) e[i] = c->e[ord[i]];
      mv(c->e, e, c->n * sizeof *e);
      free(ord);
      free(e);
    }
    o->modified = true;
    return 0;
  case 1: /* append */
  case 2: /* append items */
  case 3: /* insert */
  case 4: /* insert items */ {
    bool items = op == 2 || op == 4, insert = op == 3 || op == 4;
    uint32_t vi = insert ? 1 : 0;
    if (na <= vi) return SPK_SRV_ERR_PARAMETER;
    int64_t flags = 0;
    uint32_t fi = insert ? 2 : 2; /* [value, order, flags] / [index, value, flags] */
    if (na > fi && !get_int(a[fi], &flags)) return SPK_SRV_ERR_PARAMETER;
    if (!insert && na > 1) {
      int64_t order;
      if (get_int(a[1], &order) && !o->exists) c->flags = (int)(order & 1);
    }
    span *vals;
    uint32_t k;
    if (items) {
      if (array_items(a[vi], &vals, &k) != 0) return SPK_SRV_ERR_PARAMETER;
    } else {
      vals = malloc(sizeof *vals);
      if (!vals) return SPK_SRV_ERR_UNKNOWN;
      vals[0] = a[vi];
      k = 1;
    }
    int64_t at = c->n;
    if (insert) {
      if (!get_int(a[0], &at)) {
        free(vals);
        return SPK_SRV_ERR_PARAMETER;
      }
      if (c->flags & 1) {
        free(vals);
        return SPK_SRV_ERR_OP_NOT_APPLICABLE; /* no positional insert in ordered lists */
      }
      if (at < 0) at += c->n;
      if (at < 0 || ((flags & 2) && at > (int64_t)c->n)) {
        free(vals);
        return SPK_SRV_ERR_OP_NOT_APPLICABLE;
      }
    }
    int rc = 0;
    for (uint32_t j = 0; j < k && rc == 0; j++) {
      if (flags & 1) { /* add unique */
        bool dup = false;
        for (uint32_t i = 0; i < c->n && !dup; i++) dup = cmp(c->e[i], vals[j]) == 0;
        if (dup) {
          if (flags & 4) continue; /* no fail */
          rc = SPK_SRV_ERR_ELEMENT_EXISTS;
          break;
        }
      }
      uint32_t pos;
      if (c->flags & 1) pos = lower_bound(c, vals[j], false);
      else pos = (uint32_t)at;
      while (pos > c->n) { /* pad with nils */
        span nil = own(o, (const uint8_t *)"\xc0", 1);
        if (ctr_insert(c, c->n, &nil, 1) != 0) rc = SPK_SRV_ERR_UNKNOWN;
      }
      if (rc == 0 && ctr_insert(c, pos, &vals[j], 1) != 0) rc = SPK_SRV_ERR_UNKNOWN;
      if (!(c->flags & 1)) at++;
    }
    free(vals);
    if (rc) return rc;
    o->modified = true;
    spk_mp_pack_uint(&o->res, c->n);
    o->has_res = true;
    return 0;
  }
  case 5: /* pop */
  case 7: /* remove */
    if (na < 1 || !get_int(a[0], &x)) return SPK_SRV_ERR_PARAMETER;
    if (x < 0) x += c->n;
    if (x < 0 || x >= (int64_t)c->n) return SPK_SRV_ERR_OP_NOT_APPLICABLE;
    lo = (uint32_t)x;
    hi = lo + 1;
    goto remove_range;
  case 6: /* pop range */
  case 8: /* remove range */
    if (na < 1 || !get_int(a[0], &x) || (na > 1 && !get_int(a[1], &cnt)))
      return SPK_SRV_ERR_PARAMETER;
    range_of(c->n, x, na > 1, na > 1 ? cnt : 0, &lo, &hi);
  remove_range: {
    if (op == 5) {
      spk_buf_append(&o->res, c->e[lo].p, c->e[lo].n);
    } else if (op == 6) {
      spk_mp_pack_array_header(&o->res, hi - lo);
      for (uint32_t i = lo; i < hi; i++) spk_buf_append(&o->res, c->e[i].p, c->e[i].n);
    } else {
      spk_mp_pack_uint(&o->res, hi - lo);
    }
    o->has_res = true;
    mv(c->e + lo, c->e + hi, (c->n - hi) * sizeof *c->e);
    c->n -= hi - lo;
    o->modified = true;
    return 0;
  }
  case 9: /* set */
    if (na < 2 || !get_int(a[0], &x)) return SPK_SRV_ERR_PARAMETER;
    if (c->flags & 1) return SPK_SRV_ERR_OP_NOT_APPLICABLE;
    if (x < 0) x += c->n;
    if (x < 0) return SPK_SRV_ERR_OP_NOT_APPLICABLE;
    while ((uint32_t)x >= c->n) {
      span nil = own(o, (const uint8_t *)"\xc0", 1);
      if (ctr_insert(c, c->n, &nil, 1) != 0) return SPK_SRV_ERR_UNKNOWN;
    }
    c->e[x] = a[1];
    o->modified = true;
    return 0;
  case 10: /* trim: keep [index, index+count) */
    if (na < 2 || !get_int(a[0], &x) || !get_int(a[1], &cnt)) return SPK_SRV_ERR_PARAMETER;
    range_of(c->n, x, true, cnt, &lo, &hi);
    spk_mp_pack_uint(&o->res, c->n - (hi - lo));
    o->has_res = true;
    mv(c->e, c->e + lo, (hi - lo) * sizeof *c->e);
    c->n = hi - lo;
    o->modified = true;
    return 0;
  case 11: /* clear */
    c->n = 0;
    o->modified = true;
    return 0;
  case 12: { /* increment [index, delta] */
    if (na < 1 || !get_int(a[0], &x)) return SPK_SRV_ERR_PARAMETER;
    if (x < 0) x += c->n;
    if (x < 0 || x >= (int64_t)c->n) return SPK_SRV_ERR_OP_NOT_APPLICABLE;
    spk_mp_reader r;
    spk_mp_item cur, d;
    spk_mp_reader_init(&r, c->e[x].p, c->e[x].n);
    if (spk_mp_next(&r, &cur) != 0) return SPK_SRV_ERR_UNKNOWN;
    d.type = SPK_MP_INT;
    d.v.i = 1;
    if (na > 1) {
      spk_mp_reader_init(&r, a[1].p, a[1].n);
      if (spk_mp_next(&r, &d) != 0) return SPK_SRV_ERR_PARAMETER;
    }
    spk_buf tmp = {0};
    if (cur.type == SPK_MP_INT && d.type == SPK_MP_INT)
      spk_mp_pack_int(&tmp, (int64_t)((uint64_t)cur.v.i + (uint64_t)d.v.i));
    else if (cur.type == SPK_MP_DOUBLE && (d.type == SPK_MP_DOUBLE || d.type == SPK_MP_INT))
      spk_mp_pack_double(&tmp, cur.v.d + (d.type == SPK_MP_INT ? (double)d.v.i : d.v.d));
    else {
      spk_buf_free(&tmp);
      return SPK_SRV_ERR_INCOMPATIBLE_TYPE;
    }
    c->e[x] = own(o, tmp.data, tmp.len);
    spk_buf_append(&o->res, tmp.data, tmp.len);
    spk_buf_free(&tmp);
    o->has_res = true;
    o->modified = true;
    return 0;
  }
  case 13: { /* sort [flags]: 1 descending, 2 drop duplicates */
    int64_t f = 0;
    if (na > 0) get_int(a[0], &f);
    uint32_t *ord = ranks(c);
    span *e = malloc((c->n ? c->n : 1) * sizeof *e);
    if (!ord || !e) {
      free(ord);
      free(e);
      return SPK_SRV_ERR_UNKNOWN;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < c->n; i++) {
      span v = c->e[ord[(f & 1) ? c->n - 1 - i : i]];
      if ((f & 2) && k && cmp(e[k - 1], v) == 0) continue;
      e[k++] = v;
    }
    mv(c->e, e, k * sizeof *e);
    c->n = k;
    free(ord);
    free(e);
    o->modified = true;
    return 0;
  }
  case 16: /* size */
    spk_mp_pack_uint(&o->res, c->n);
    o->has_res = true;
    return 0;
  case 17: /* get */
    if (na < 1 || !get_int(a[0], &x)) return SPK_SRV_ERR_PARAMETER;
    if (x < 0) x += c->n;
    if (x < 0 || x >= (int64_t)c->n) return SPK_SRV_ERR_OP_NOT_APPLICABLE;
    spk_buf_append(&o->res, c->e[x].p, c->e[x].n);
    o->has_res = true;
    return 0;
  case 18: /* get range */
    if (na < 1 || !get_int(a[0], &x) || (na > 1 && !get_int(a[1], &cnt)))
      return SPK_SRV_ERR_PARAMETER;
    range_of(c->n, x, na > 1, na > 1 ? cnt : 0, &lo, &hi);
    spk_mp_pack_array_header(&o->res, hi - lo);
    for (uint32_t i = lo; i < hi; i++) spk_buf_append(&o->res, c->e[i].p, c->e[i].n);
    o->has_res = true;
    return 0;
  default:
    return SPK_SRV_ERR_PARAMETER;
  }
}

static int map_put(opctx *o, span k, span v, int64_t flags, int mode) {
  /* mode: 0 put, 1 add (create only), 2 replace (update only) */
  ctr *c = &o->c;
  int i = find_key(c, k);
  bool no_overwrite = mode == 1 || (flags & 1);
  bool no_create = mode == 2 || (flags & 2);
  if (i >= 0 && no_overwrite)
    return (flags & 4) ? 1 : SPK_SRV_ERR_ELEMENT_EXISTS;
  if (i < 0 && no_create)
    return (flags & 4) ? 1 : SPK_SRV_ERR_ELEMENT_NOT_FOUND;
  if (i >= 0) {
    c->e[2 * i + 1] = v;
  } else {
    span kv[2] = {k, v};
    if (ctr_insert(c, lower_bound(c, k, true), kv, 1) != 0) return SPK_SRV_ERR_UNKNOWN;
  }
  o->modified = true;
  return 0;
}

static int map_op(opctx *o, int op, const span *a, uint32_t na) {
  ctr *c = &o->c;
  int64_t attr = 0, flags = 0;
  switch (op) {
  case 64: /* set type */
    if (na < 1 || !get_int(a[0], &attr)) return SPK_SRV_ERR_PARAMETER;
    c->flags = (int)(attr & 3);
    o->modified = true;
    return 0;
  case 65: case 67: case 69: { /* add, put, replace [key, value, attr, flags] */
    if (na < 2) return SPK_SRV_ERR_PARAMETER;
    if (na > 2 && get_int(a[2], &attr) && !o->exists) c->flags = (int)(attr & 3);
    if (na > 3 && !get_int(a[3], &flags)) return SPK_SRV_ERR_PARAMETER;
    int rc = map_put(o, a[0], a[1], flags, op == 65 ? 1 : op == 69 ? 2 : 0);
    if (rc > 1) return rc;
    spk_mp_pack_uint(&o->res, c->n);
    o->has_res = true;
    return 0;
  }
  case 66: case 68: case 70: { /* items variants [map, attr, flags] */
    if (na < 1) return SPK_SRV_ERR_PARAMETER;
    if (na > 1 && get_int(a[1], &attr) && !o->exists) c->flags = (int)(attr & 3);
    if (na > 2 && !get_int(a[2], &flags)) return SPK_SRV_ERR_PARAMETER;
    ctr items;
    if (ctr_parse(a[0].p, a[0].n, true, &items) != 0) {
      ctr_free(&items);
      return SPK_SRV_ERR_PARAMETER;
    }
    int rc = 0;
    for (uint32_t i = 0; i < items.n && rc <= 1; i++) {
      rc = map_put(o, items.e[2 * i], items.e[2 * i + 1], flags,
                   op == 66 ? 1 : op == 70 ? 2 : 0);
      if (rc == 1 && !(flags & 8)) {
        /* no-fail without partial: the whole op is a no-op */
        rc = 1;
        break;
      }
    }
    ctr_free(&items);
    if (rc > 1) return rc;
    spk_mp_pack_uint(&o->res, c->n);
    o->has_res = true;
    return 0;
  }
  case 73: case 74: { /* increment / decrement [key, delta, attr] */
    if (na < 1) return SPK_SRV_ERR_PARAMETER;
    if (na > 2 && get_int(a[2], &attr) && !o->exists) c->flags = (int)(attr & 3);
    spk_mp_item d = {.type = SPK_MP_INT, .v.i = 1};
    if (na > 1) {
      spk_mp_reader r;
      spk_mp_reader_init(&r, a[1].p, a[1].n);
      if (spk_mp_next(&r, &d) != 0) return SPK_SRV_ERR_PARAMETER;
    }
    int i = find_key(c, a[0]);
    spk_mp_item cur = {.type = d.type == SPK_MP_DOUBLE ? SPK_MP_DOUBLE : SPK_MP_INT};
    if (i >= 0) {
      spk_mp_reader r;
      spk_mp_reader_init(&r, c->e[2 * i + 1].p, c->e[2 * i + 1].n);
      if (spk_mp_next(&r, &cur) != 0) return SPK_SRV_ERR_UNKNOWN;
    }
    spk_buf tmp = {0};
    double sign = op == 74 ? -1 : 1;
    if (cur.type == SPK_MP_INT && d.type == SPK_MP_INT)
      spk_mp_pack_int(&tmp, (int64_t)((uint64_t)cur.v.i + (uint64_t)(op == 74 ? -d.v.i : d.v.i)));
    else if (cur.type == SPK_MP_DOUBLE && (d.type == SPK_MP_DOUBLE || d.type == SPK_MP_INT))
      spk_mp_pack_double(&tmp, cur.v.d + sign * (d.type == SPK_MP_INT ? (double)d.v.i : d.v.d));
    else {
      spk_buf_free(&tmp);
      return SPK_SRV_ERR_INCOMPATIBLE_TYPE;
    }
    span v = own(o, tmp.data, tmp.len);
    spk_buf_append(&o->res, tmp.data, tmp.len);
    spk_buf_free(&tmp);
    o->has_res = true;
    return map_put(o, a[0], v, 0, 0);
  }
  case 75:
    c->n = 0;
    o->modified = true;
    return 0;
  case 96:
    spk_mp_pack_uint(&o->res, c->n);
    o->has_res = true;
    return 0;
  default:
    return SPK_SRV_ERR_PARAMETER;
  }
}

/* Apply op (code, args) to container bytes; new bytes to out when modified. */
static int run_op(spk_srv_ctx *cx, const uint8_t *val, uint32_t vlen, bool exists,
                  bool map, int code, const span *args, uint32_t na, spk_buf *out,
                  bool *modified, spk_buf *res, bool *has_res) {
  opctx o;
  memset(&o, 0, sizeof o);
  (void)cx;
  o.exists = exists;
  /* Values created by the op (padding nils, increments) live in owned;
   * reserve once so spans into it never move. */
  if (spk_buf_reserve(&o.owned, 4096 + (size_t)na * 16) != 0) return SPK_SRV_ERR_UNKNOWN;
  if (exists) {
    if (ctr_parse(val, vlen, map, &o.c) != 0) {
      ctr_free(&o.c);
      spk_buf_free(&o.owned);
      return SPK_SRV_ERR_UNKNOWN;
    }
  } else {
    o.c.map = map;
    o.c.e = malloc(sizeof *o.c.e);
    if (!o.c.e) {
      spk_buf_free(&o.owned);
      return SPK_SRV_ERR_UNKNOWN;
    }
  }
  int rc;
  bool done = false, remove = false;
  uint32_t rt = 0;
  sel s;
  memset(&s, 0, sizeof s);
  uint32_t *rank_order = NULL;
  rc = select_op(&o, code, args, na, &done, &remove, &rt, &s, &rank_order);
  if (rc == 0 && done) {
    int r = pack_result(&o.res, &o.c, &s, rt, rank_order);
    if (r > 0) rc = r;
    else o.has_res = r == 0;
    if (rc == 0 && remove && s.count) {
      ctr_remove_mask(&o.c, s.mask);
      o.modified = true;
    }
  } else if (rc == 0) {
    rc = map ? map_op(&o, code, args, na) : list_op(&o, code, args, na);
  }
  sel_free(&s);
  free(rank_order);
  if (rc == 0) {
    if (o.modified || !exists) ctr_encode(&o.c, out);
    *modified = o.modified || !exists;
    if (o.has_res) spk_buf_append(res, o.res.data, o.res.len);
    *has_res = o.has_res;
  }
  ctr_free(&o.c);
  spk_buf_free(&o.res);
  spk_buf_free(&o.owned);
  return rc;
}

/* ---- contexts -------------------------------------------------------------------------------- */

/* Apply through a context path: ctx holds (type, value) pairs. */
static int apply(spk_srv_ctx *cx, const uint8_t *val, uint32_t vlen, bool exists,
                 bool top_map, const span *ctx, uint32_t n_ctx, int code,
                 const span *args, uint32_t na, spk_buf *out, bool *modified,
                 spk_buf *res, bool *has_res) {
  if (n_ctx == 0) {
    bool map = code >= 64;
    if (exists && val && vlen) {
      bool is_map = (val[0] & 0xf0) == 0x80 || val[0] == 0xde || val[0] == 0xdf;
      if (is_map != map) return SPK_SRV_ERR_INCOMPATIBLE_TYPE;
    }
    (void)top_map;
    return run_op(cx, val, vlen, exists, map, code, args, na, out, modified, res, has_res);
  }
  int64_t type;
  if (!get_int(ctx[0], &type)) return SPK_SRV_ERR_PARAMETER;
  bool map = (type & 0x20) != 0;
  if (!exists) return SPK_SRV_ERR_OP_NOT_APPLICABLE;
  ctr c;
  if (ctr_parse(val, vlen, map, &c) != 0) {
    ctr_free(&c);
    return SPK_SRV_ERR_INCOMPATIBLE_TYPE;
  }
  int64_t x;
  int found = -1;
  uint32_t base = (uint32_t)(type & 0x0f);
  if (base == 0 || base == 1) { /* index / rank */
    if (!get_int(ctx[1], &x)) {
      ctr_free(&c);
      return SPK_SRV_ERR_PARAMETER;
    }
    if (x < 0) x += c.n;
    if (x >= 0 && x < (int64_t)c.n) {
      if (base == 0) found = (int)x;
      else {
        uint32_t *ord = ranks(&c);
        if (ord) found = (int)ord[x];
        free(ord);
      }
    }
  } else if (base == 2 && map) {
    found = find_key(&c, ctx[1]);
  } else if (base == 3) {
    for (uint32_t i = 0; i < c.n && found < 0; i++)
      if (cmp(val_of(&c, i), ctx[1]) == 0) found = (int)i;
  } else {
    ctr_free(&c);
    return SPK_SRV_ERR_PARAMETER;
  }
  if (found < 0) {
    ctr_free(&c);
    return SPK_SRV_ERR_OP_NOT_APPLICABLE;
  }
  span child = val_of(&c, (uint32_t)found);
  spk_buf sub = {0};
  bool sub_mod = false;
  int rc = apply(cx, child.p, child.n, true, false, ctx + 2, n_ctx - 2, code, args, na,
                 &sub, &sub_mod, res, has_res);
  if (rc == 0 && sub_mod) {
    c.e[map ? 2 * (uint32_t)found + 1 : (uint32_t)found] = (span){sub.data, (uint32_t)sub.len};
    ctr_encode(&c, out);
    *modified = true;
  }
  spk_buf_free(&sub);
  ctr_free(&c);
  return rc;
}

static int do_op(spk_srv_ctx *cx, const uint8_t *val, uint32_t vlen, bool exists,
                 const spk_srv_op *o, bool want_modify, spk_buf *out, bool *modified,
                 spk_buf *res, bool *has_res) {
  if (o->ptype != SPK_PARTICLE_BLOB && o->ptype != SPK_PARTICLE_LIST &&
      o->ptype != SPK_PARTICLE_MAP)
    return SPK_SRV_ERR_PARAMETER;
  span payload = {o->val, o->len};
  span *top, *ctx = NULL, *inner = NULL;
  uint32_t nt, nctx = 0, ni;
  if (spk_srv_mp_size(o->val, o->val + o->len) != o->len ||
      array_items(payload, &top, &nt) != 0 || nt == 0)
    return SPK_SRV_ERR_PARAMETER;
  int rc = 0;
  int64_t code;
  const span *args;
  uint32_t na;
  if (!get_int(top[0], &code)) {
    free(top);
    return SPK_SRV_ERR_PARAMETER;
  }
  if (code == 0xff) {
    if (nt != 3 || array_items(top[1], &ctx, &nctx) != 0 || nctx % 2 ||
        array_items(top[2], &inner, &ni) != 0 || ni == 0 || !get_int(inner[0], &code)) {
      free(top);
      free(ctx);
      free(inner);
      return SPK_SRV_ERR_PARAMETER;
    }
    args = inner + 1;
    na = ni - 1;
  } else {
    args = top + 1;
    na = nt - 1;
  }
  bool map = code >= 64;
  bool is_mod = map ? is_modify_map((int)code) : is_modify_list((int)code);
  if (code < 0 || code > 110 || is_mod != want_modify) {
    rc = SPK_SRV_ERR_PARAMETER;
  } else if (!exists && !want_modify) {
    rc = 0; /* caller handles missing bins on reads */
  } else {
    rc = apply(cx, val, vlen, exists, map, ctx, nctx, (int)code, args, na, out,
               modified, res, has_res);
  }
  free(top);
  free(ctx);
  free(inner);
  return rc;
}

int spk_srv_cdt_call(spk_srv_ctx *c, const uint8_t *val, uint32_t len,
                     const uint8_t *payload, uint32_t plen, bool modify,
                     spk_buf *out, bool *modified, spk_buf *res, bool *has_res) {
  spk_srv_op o = {.op = modify ? SPK_OP_CDT_MODIFY : SPK_OP_CDT_READ,
                  .ptype = SPK_PARTICLE_BLOB, .val = payload, .len = plen};
  *modified = *has_res = false;
  /* val NULL: no container yet (a modify creates one, a read finds none). */
  return do_op(c, val, len, val != NULL, &o, modify, out, modified, res, has_res);
}

static bool bin_is_cdt(const spk_srv_bin *b) {
  return b->ptype == SPK_PARTICLE_LIST || b->ptype == SPK_PARTICLE_MAP;
}

int spk_srv_cdt_read(spk_srv_ctx *c, const spk_srv_bin *b, const spk_srv_op *o,
                     spk_srv_resp_op *res, bool *has_res) {
  *has_res = false;
  if (!bin_is_cdt(b)) return SPK_SRV_ERR_INCOMPATIBLE_TYPE;
  spk_buf out = {0}, r = {0};
  bool modified = false;
  const uint8_t *val = spk_srv_bin_val(c, b);
  int rc = do_op(c, val, b->len, true, o, false, &out, &modified, &r, has_res);
  if (rc == 0 && *has_res) rc = to_particle(c, r.data, r.len, res);
  spk_buf_free(&out);
  spk_buf_free(&r);
  return rc;
}

int spk_srv_cdt_modify(spk_srv_ctx *c, spk_srv_bin *b, bool *exists,
                       const spk_srv_op *o, spk_srv_resp_op *res, bool *has_res) {
  *has_res = false;
  if (*exists && !bin_is_cdt(b)) return SPK_SRV_ERR_INCOMPATIBLE_TYPE;
  spk_buf out = {0}, r = {0};
  bool modified = false;
  const uint8_t *val = *exists ? spk_srv_bin_val(c, b) : NULL;
  int rc = do_op(c, val, *exists ? b->len : 0, *exists, o, true, &out, &modified, &r,
                 has_res);
  if (rc == 0 && modified) {
    size_t off = c->scratch.len;
    if (spk_buf_append(&c->scratch, out.data, out.len) != 0) {
      rc = SPK_SRV_ERR_UNKNOWN;
    } else {
      b->ptype = (out.len && ((out.data[0] & 0xf0) == 0x80 || out.data[0] == 0xde ||
                              out.data[0] == 0xdf))
                     ? SPK_PARTICLE_MAP : SPK_PARTICLE_LIST;
      b->in_scratch = true;
      b->off = off;
      b->len = (uint32_t)out.len;
      *exists = true;
    }
  }
  if (rc == 0 && *has_res) rc = to_particle(c, r.data, r.len, res);
  spk_buf_free(&out);
  spk_buf_free(&r);
  return rc;
}

/* ---- index contexts (sindex.c) ------------------------------------------------------------ */

/* Context element types an index may use (no create flags). */
static bool ctx_type_ok(int64_t t) {
  return t == 0x10 || t == 0x11 || t == 0x13 || t == 0x20 || t == 0x21 ||
         t == 0x22 || t == 0x23;
}

/* One msgpack object in its shortest encoding (the server rejects index
 * contexts that msgpack_compactify would change).  Returns its size or 0. */
static size_t mp_minimal(const uint8_t *p, const uint8_t *end, int depth) {
  if (p >= end || depth > 32) return 0;
  size_t sz = spk_srv_mp_size(p, end);
  if (!sz) return 0;
  uint8_t b = p[0];
  uint64_t u;
  int64_t s;
  uint32_t n = 0;
  size_t h = 1;
  bool map = false, arr = false;
  switch (b) {
  case 0xcc: return p[1] < 0x80 ? 0 : sz;
  case 0xcd: return spk_be16(p + 1) <= 0xff ? 0 : sz;
  case 0xce: return spk_be32(p + 1) <= 0xffff ? 0 : sz;
  case 0xcf: u = spk_be64(p + 1); return u <= 0xffffffffu ? 0 : sz;
  case 0xd0: return (int8_t)p[1] >= -32 ? 0 : sz;
  case 0xd1: s = (int16_t)spk_be16(p + 1); return s >= -128 ? 0 : sz;
  case 0xd2: s = (int32_t)spk_be32(p + 1); return s >= -32768 ? 0 : sz;
  case 0xd3: s = (int64_t)spk_be64(p + 1); return s >= INT32_MIN ? 0 : sz;
  case 0xd9: case 0xc4: return p[1] < (b == 0xd9 ? 32 : 0) ? 0 : sz;
  case 0xda: case 0xc5: return spk_be16(p + 1) <= 0xff ? 0 : sz;
  case 0xdb: case 0xc6: return spk_be32(p + 1) <= 0xffff ? 0 : sz;
  case 0xdc: arr = true; n = spk_be16(p + 1); h = 3; if (n < 16) return 0; break;
  case 0xdd: arr = true; n = spk_be32(p + 1); h = 5; if (n <= 0xffff) return 0; break;
  case 0xde: map = true; n = spk_be16(p + 1); h = 3; if (n < 16) return 0; break;
  case 0xdf: map = true; n = spk_be32(p + 1); h = 5; if (n <= 0xffff) return 0; break;
  default:
    if ((b & 0xf0) == 0x90) { arr = true; n = b & 0x0f; }
    else if ((b & 0xf0) == 0x80) { map = true; n = b & 0x0f; }
    else return sz;
  }
  const uint8_t *q = p + h;
  uint64_t k = map ? 2ull * n : n;
  (void)arr;
  for (uint64_t i = 0; i < k; i++) {
    size_t e = mp_minimal(q, end, depth + 1);
    if (!e) return 0;
    q += e;
  }
  return (size_t)(q - p) == sz ? sz : 0;
}

int spk_srv_cdt_ctx_check(const uint8_t *ctx, uint32_t len) {
  if (len == 0 || spk_srv_mp_size(ctx, ctx + len) != len) return 1;
  span *items = NULL;
  uint32_t n = 0;
  if (array_items((span){ctx, len}, &items, &n) != 0) return 1;
  bool ok = n >= 2 && n % 2 == 0;
  for (uint32_t i = 0; ok && i < n; i += 2) {
    int64_t t, x;
    ok = get_int(items[i], &t) && ctx_type_ok(t);
    /* index / rank take an integer */
    if (ok && (t & 0x0f) <= 1) ok = get_int(items[i + 1], &x);
  }
  free(items);
  if (!ok) return 1;
  return mp_minimal(ctx, ctx + len, 0) == len ? 0 : 2;
}

int spk_srv_cdt_ctx_get(const uint8_t *val, uint32_t len, const uint8_t *ctx,
                        uint32_t ctx_len, const uint8_t **out,
                        uint32_t *out_len) {
  span *items = NULL;
  uint32_t n = 0;
  if (array_items((span){ctx, ctx_len}, &items, &n) != 0 || n % 2) {
    free(items);
    return -1;
  }
  span cur = {val, len};
  int rc = 0;
  for (uint32_t i = 0; i < n && rc == 0; i += 2) {
    int64_t type, x;
    if (!get_int(items[i], &type) || !ctx_type_ok(type)) {
      rc = -1;
      break;
    }
    bool map = (type & 0x20) != 0;
    ctr c;
    if (ctr_parse(cur.p, cur.n, map, &c) != 0) {
      ctr_free(&c);
      rc = -1;
      break;
    }
    int found = -1;
    uint32_t base = (uint32_t)(type & 0x0f);
    if (base <= 1) {
      if (get_int(items[i + 1], &x)) {
        if (x < 0) x += c.n;
        if (x >= 0 && x < (int64_t)c.n) {
          if (base == 0) {
            found = (int)x;
          } else {
            uint32_t *ord = ranks(&c);
            if (ord) found = (int)ord[x];
            free(ord);
          }
        }
      }
    } else if (base == 2) {
      found = find_key(&c, items[i + 1]);
    } else {
      for (uint32_t k = 0; k < c.n && found < 0; k++)
        if (cmp(val_of(&c, k), items[i + 1]) == 0) found = (int)k;
    }
    if (found < 0) rc = -1;
    else cur = val_of(&c, (uint32_t)found);
    ctr_free(&c);
  }
  free(items);
  if (rc == 0) {
    *out = cur.p;
    *out_len = cur.n;
  }
  return rc;
}
