/*
 * expr_eval.c - evaluation of a built expression (see expr.c) against a
 * record: bins come from the record, or from the working bins of a write
 * whose earlier ops already ran.  Results are values or "unknown".
 */
#include <math.h>
#include <regex.h>
#include <stdlib.h>

#include "expr.h"

/* ---- evaluation helpers ------------------------------------------------------------ */

static double d_of(uint64_t bits) {
  double d;
  memcpy(&d, &bits, 8);
  return d;
}

static bool find_bin(ex *x, const uint8_t *name, uint32_t len, uint8_t *pt,
                     const uint8_t **val, uint32_t *vlen) {
  const spk_srv_exp_env *e = x->env;
  if (e->bins) {
    for (uint32_t i = 0; i < e->n_bins; i++) {
      const spk_srv_bin *b = &e->bins[i];
      if (b->name_len != len || (len && memcmp(b->name, name, len) != 0)) continue;
      *pt = b->ptype;
      *vlen = b->len;
      /* Values in scratch may move when scratch grows: copy them. */
      *val = b->in_scratch ? ex_copy(x, spk_srv_bin_val(e->c, b), b->len) : b->val;
      return *val != NULL || b->len == 0;
    }
    return false;
  }
  if (!e->rec) return false;
  const uint8_t *p = spk_srv_rec_bins(e->rec);
  for (uint16_t i = 0; i < e->rec->n_bins; i++) {
    uint32_t op_sz = spk_be32(p);
    uint8_t nlen = p[7];
    if (nlen == len && memcmp(p + 8, name, len) == 0) {
      *pt = p[5];
      *val = p + 8 + nlen;
      *vlen = op_sz - 4 - nlen;
      return true;
    }
    p += 4 + op_sz;
  }
  return false;
}

/* A bin value read as type t (unknown when the particle type differs). */
static void bin_value(uint8_t t, uint8_t pt, const uint8_t *v, uint32_t n, xv *o) {
  o->t = T_UNK;
  if (t >= T_END || t == T_NIL || spk_srv_exp_particle[t] != pt) return;
  switch (t) {
  case T_BOOL:
    o->b = n && v[0];
    break;
  case T_INT:
    if (n != 8) return;
    o->i = (int64_t)spk_be64(v);
    break;
  case T_FLOAT:
    if (n != 8) return;
    o->d = d_of(spk_be64(v));
    break;
  case T_GEO: {
    if (n < 3) return;
    uint32_t skip = 3 + 8u * spk_be16(v + 1);
    if (skip > n) return;
    o->p = v + skip;
    o->n = n - skip;
    break;
  }
  default:
    o->p = v;
    o->n = n;
    break;
  }
  o->t = t;
}

/* msgpack element -> value (CDT results, map keys...). */
static void mp_value(ex *x, const uint8_t *p, uint32_t n, xv *o) {
  spk_mp_reader r;
  spk_mp_item it;
  memset(o, 0, sizeof *o);
  o->t = T_UNK;
  spk_mp_reader_init(&r, p, n);
  if (spk_mp_next(&r, &it) != 0) return;
  switch (it.type) {
  case SPK_MP_NIL: o->t = T_NIL; break;
  case SPK_MP_BOOL: o->t = T_BOOL; o->b = it.v.b; break;
  case SPK_MP_INT: o->t = T_INT; o->i = it.v.i; break;
  case SPK_MP_UINT: o->t = T_INT; o->i = (int64_t)it.v.u; break;
  case SPK_MP_FLOAT:
  case SPK_MP_DOUBLE: o->t = T_FLOAT; o->d = it.v.d; break;
  case SPK_MP_STR:
  case SPK_MP_BIN:
    if (it.v.s.len == 0) return;
    switch (it.v.s.p[0]) {
    case SPK_PARTICLE_STRING: o->t = T_STR; break;
    case SPK_PARTICLE_BLOB: o->t = T_BLOB; break;
    case SPK_PARTICLE_HLL: o->t = T_HLL; break;
    case SPK_PARTICLE_GEOJSON: o->t = T_GEO; break;
    default: return;
    }
    o->p = ex_copy(x, it.v.s.p + 1, it.v.s.len - 1);
    o->n = it.v.s.len - 1;
    if (!o->p) o->t = T_UNK;
    break;
  case SPK_MP_ARRAY:
  case SPK_MP_MAP:
    o->t = it.type == SPK_MP_ARRAY ? T_LIST : T_MAP;
    o->p = ex_copy(x, p, n);
    o->n = n;
    if (!o->p) o->t = T_UNK;
    break;
  default:
    break;
  }
}

/* Value -> msgpack (CDT call arguments, in_list). */
static void mp_pack(spk_buf *b, const xv *v) {
  switch (v->t) {
  case T_NIL: spk_mp_pack_nil(b); break;
  case T_BOOL: spk_mp_pack_bool(b, v->b); break;
  case T_INT: spk_mp_pack_int(b, v->i); break;
  case T_FLOAT: spk_mp_pack_double(b, v->d); break;
  case T_STR: spk_mp_pack_particle_str(b, SPK_PARTICLE_STRING, v->p, v->n); break;
  case T_BLOB: spk_mp_pack_particle_str(b, SPK_PARTICLE_BLOB, v->p, v->n); break;
  case T_HLL: spk_mp_pack_particle_str(b, SPK_PARTICLE_HLL, v->p, v->n); break;
  case T_GEO: spk_mp_pack_particle_str(b, SPK_PARTICLE_GEOJSON, v->p, v->n); break;
  default: spk_buf_append(b, v->p, v->n); break; /* LIST, MAP, opaque */
  }
}

/* Maps without the key-ordered flag make a comparison unknown, as in the
 * real server (an unordered map has no defined order). */
static int has_unordered(spk_mp_reader *r, int depth) {
  spk_mp_item it;
  if (depth > SPK_MP_MAX_DEPTH || spk_mp_next(r, &it) != 0) return -1;
  if (it.type == SPK_MP_ARRAY) {
    for (uint32_t i = 0; i < it.v.n; i++) {
      int u = has_unordered(r, depth + 1);
      if (u) return u;
    }
  } else if (it.type == SPK_MP_MAP) {
    if (!(it.v.n > 0 && r->end - r->p >= 3 && r->p[0] == 0xc7 && r->p[1] == 0 &&
          (r->p[2] & 1)))
      return 1;
    for (uint32_t i = 0; i < 2 * it.v.n; i++) {
      int u = has_unordered(r, depth + 1);
      if (u) return u;
    }
  }
  return 0;
}

static bool mp_ordered(const xv *v) {
  spk_mp_reader r;
  spk_mp_reader_init(&r, v->p, v->n);
  return has_unordered(&r, 0) == 0;
}

/* Elements of a list / map (skipping the ordering metadata pair). */
typedef struct mp_iter {
  spk_mp_reader r;
  uint32_t left;
  bool map;
} mp_iter;

static bool mp_iter_init(mp_iter *m, const xv *v, bool map) {
  spk_mp_item it;
  spk_mp_reader_init(&m->r, v->p, v->n);
  if (spk_mp_next(&m->r, &it) != 0 || it.type != (map ? SPK_MP_MAP : SPK_MP_ARRAY))
    return false;
  m->left = it.v.n;
  m->map = map;
  const uint8_t *p = m->r.p;
  if (m->left && m->r.end - p >= 3 && p[0] == 0xc7 && p[1] == 0 && p[2] != 0xff) {
    m->r.p += 3;
    if (map && !rd_skip(&m->r)) return false;
    m->left--;
  }
  return true;
}

/* Next element (maps: key then value); spans are raw msgpack. */
static bool mp_iter_next(mp_iter *m, const uint8_t **k, uint32_t *kn,
                         const uint8_t **v, uint32_t *vn) {
  if (m->left == 0) return false;
  m->left--;
  *k = m->r.p;
  if (!rd_skip(&m->r)) return false;
  *kn = (uint32_t)(m->r.p - *k);
  if (m->map) {
    *v = m->r.p;
    if (!rd_skip(&m->r)) return false;
    *vn = (uint32_t)(m->r.p - *v);
  }
  return true;
}

/* ---- evaluation ---------------------------------------------------------------------- */


#define KID(j) (nd->kid + (j))
#define UNK_IF(v)                                                                      \
  do {                                                                                 \
    if ((v).t == T_UNK) {                                                              \
      o->t = T_UNK;                                                                    \
      return;                                                                          \
    }                                                                                  \
  } while (0)

static void ev_compare(ex *x, const xn *nd, xv *o) {
  xv a, b;
  spk_srv_exp_eval(x, KID(0), &a);
  UNK_IF(a);
  spk_srv_exp_eval(x, KID(1), &b);
  UNK_IF(b);
  o->t = T_BOOL;
  int c = 0;
  switch (a.t) {
  case T_NIL: c = 0; break;
  case T_BOOL: c = (int)a.b - (int)b.b; break;
  case T_INT: c = (a.i > b.i) - (a.i < b.i); break;
  case T_FLOAT:
    switch (nd->op) {
    case 1: o->b = a.d == b.d; return;
    case 2: o->b = a.d != b.d; return;
    case 3: o->b = a.d > b.d; return;
    case 4: o->b = a.d >= b.d; return;
    case 5: o->b = a.d < b.d; return;
    default: o->b = a.d <= b.d; return;
    }
  case T_STR:
  case T_BLOB: {
    uint32_t m = a.n < b.n ? a.n : b.n;
    c = m ? memcmp(a.p, b.p, m) : 0;
    if (c == 0 && a.n != b.n) c = a.n < b.n ? -1 : 1;
    break;
  }
  default: { /* lists, maps, opaque msgpack */
    if (!mp_ordered(&a) || !mp_ordered(&b)) {
      o->t = T_UNK;
      return;
    }
    c = spk_srv_mp_cmp(a.p, a.n, b.p, b.n);
    if (c == 2) {
      o->t = T_UNK;
      return;
    }
    break;
  }
  }
  switch (nd->op) {
  case 1: o->b = c == 0; break;
  case 2: o->b = c != 0; break;
  case 3: o->b = c > 0; break;
  case 4: o->b = c >= 0; break;
  case 5: o->b = c < 0; break;
  default: o->b = c <= 0; break;
  }
}

static void ev_logic(ex *x, const xn *nd, xv *o) {
  xv v;
  if (nd->op == 18) {
    spk_srv_exp_eval(x, KID(0), &v);
    UNK_IF(v);
    o->t = T_BOOL;
    o->b = !v.b;
    return;
  }
  bool unk = false, res = nd->op == 16;
  int n_true = 0;
  for (uint32_t j = 0; j < nd->nk; j++) {
    spk_srv_exp_eval(x, KID(j), &v);
    if (v.t == T_UNK) {
      if (nd->op == 19) break; /* exclusive: unknown as soon as one is */
      unk = true;
      continue;
    }
    if (nd->op == 16 && !v.b) {
      o->t = T_BOOL;
      o->b = false;
      return;
    }
    if (nd->op == 17 && v.b) {
      o->t = T_BOOL;
      o->b = true;
      return;
    }
    if (nd->op == 19 && v.b && ++n_true == 2) {
      o->t = T_BOOL;
      o->b = false;
      return;
    }
  }
  if (nd->op == 19) {
    if (v.t == T_UNK) {
      o->t = T_UNK;
      return;
    }
    res = n_true == 1;
  }
  o->t = unk ? T_UNK : T_BOOL;
  o->b = res;
}

static void ev_math(ex *x, const xn *nd, xv *o) {
  spk_srv_exp_eval(x, KID(0), o);
  if (o->t == T_UNK) return;
  bool fl = o->t == T_FLOAT;
  if (nd->op == 21 && nd->nk == 1) { /* negate */
    if (fl) o->d = -o->d;
    else o->i = (int64_t)(0 - (uint64_t)o->i);
    return;
  }
  double dprod = 1.0;
  int64_t iprod = 1;
  for (uint32_t j = 1; j < nd->nk; j++) {
    xv v;
    spk_srv_exp_eval(x, KID(j), &v);
    if (v.t == T_UNK) {
      o->t = T_UNK;
      return;
    }
    switch (nd->op) {
    case 20:
      if (fl) o->d += v.d;
      else o->i = (int64_t)((uint64_t)o->i + (uint64_t)v.i);
      break;
    case 21:
      if (fl) o->d -= v.d;
      else o->i = (int64_t)((uint64_t)o->i - (uint64_t)v.i);
      break;
    case 22:
      if (fl) o->d *= v.d;
      else o->i = (int64_t)((uint64_t)o->i * (uint64_t)v.i);
      break;
    case 23:
      if (fl) dprod *= v.d;
      else iprod = (int64_t)((uint64_t)iprod * (uint64_t)v.i);
      break;
    case 50:
      if (fl ? v.d < o->d : v.i < o->i) *o = v;
      break;
    default: /* 51 */
      if (fl ? v.d > o->d : v.i > o->i) *o = v;
      break;
    }
  }
  if (nd->op != 23) return;
  if (nd->nk == 1) { /* div(x) = 1 / x */
    if (fl) {
      dprod = o->d;
      o->d = 1.0;
    } else {
      iprod = o->i;
      o->i = 1;
    }
  }
  if (fl) {
    o->d /= dprod;
  } else if (iprod == 0) {
    o->t = T_UNK;
  } else if (iprod == -1) {
    o->i = (int64_t)(0 - (uint64_t)o->i);
  } else {
    o->i /= iprod;
  }
}

static void ev_int(ex *x, const xn *nd, xv *o) {
  spk_srv_exp_eval(x, KID(0), o);
  if (o->t == T_UNK) return;
  uint64_t u = (uint64_t)o->i;
  xv b = {0};
  if (nd->nk > 1 && nd->op != 32 && nd->op != 33 && nd->op != 34) {
    spk_srv_exp_eval(x, KID(1), &b);
    UNK_IF(b);
  }
  o->t = T_INT;
  switch (nd->op) {
  case 26:
    if (b.i == 0) o->t = T_UNK;
    else o->i = b.i == -1 ? 0 : o->i % b.i;
    return;
  case 27:
    o->i = o->i < 0 ? (int64_t)(0 - u) : o->i;
    return;
  case 32: case 33: case 34:
    for (uint32_t j = 1; j < nd->nk; j++) {
      spk_srv_exp_eval(x, KID(j), &b);
      UNK_IF(b);
      if (nd->op == 32) u &= (uint64_t)b.i;
      else if (nd->op == 33) u |= (uint64_t)b.i;
      else u ^= (uint64_t)b.i;
    }
    o->i = (int64_t)u;
    return;
  case 35: o->i = (int64_t)~u; return;
  /* Shift counts use their low 6 bits, as the x86 instructions do. */
  case 36: o->i = (int64_t)(u << (b.i & 63)); return;
  case 37: o->i = (int64_t)(u >> (b.i & 63)); return;
  case 38: o->i = o->i < 0 ? (int64_t)~(~u >> (b.i & 63)) : (int64_t)(u >> (b.i & 63)); return;
  case 39: o->i = __builtin_popcountll(u); return;
  case 40:
    if (!b.b) u = ~u;
    o->i = u ? __builtin_clzll(u) : -1;
    return;
  case 41:
    if (!b.b) u = ~u;
    o->i = u ? 63 - __builtin_ctzll(u) : -1;
    return;
  default:
    return;
  }
}

static void ev_float(ex *x, const xn *nd, xv *o) {
  spk_srv_exp_eval(x, KID(0), o);
  if (o->t == T_UNK) return;
  switch (nd->op) {
  case 24:
  case 25: {
    xv b;
    spk_srv_exp_eval(x, KID(1), &b);
    UNK_IF(b);
    o->d = nd->op == 24 ? pow(o->d, b.d) : log(o->d) / log(b.d);
    return;
  }
  case 27: o->d = fabs(o->d); return;
  case 28: o->d = floor(o->d); return;
  case 29: o->d = ceil(o->d); return;
  case 30:
    o->t = T_INT;
    /* Out of range (and NaN) converts to INT64_MIN, as on x86. */
    o->i = (o->d >= -9223372036854775808.0 && o->d < 9223372036854775808.0)
               ? (int64_t)o->d : INT64_MIN;
    return;
  case 31:
    o->t = T_FLOAT;
    o->d = (double)o->i;
    return;
  default:
    return;
  }
}

static void ev_meta(ex *x, const xn *nd, xv *o) {
  const spk_srv_rec *rec = x->env->rec;
  uint64_t lut_ms = rec ? rec->lut_ms : (uint64_t)SPK_CITRUSLEAF_EPOCH * 1000u;
  uint32_t vt = rec ? rec->void_time : 0;
  o->t = T_INT;
  switch (nd->op) {
  case 64: {
    const uint8_t *d = x->env->digest + 16;
    uint32_t v = (uint32_t)d[0] | (uint32_t)d[1] << 8 | (uint32_t)d[2] << 16 |
                 (uint32_t)d[3] << 24;
    o->i = (int64_t)v % nd->a;
    return;
  }
  case 65: o->i = 0; return; /* device_size: 0 for memory namespaces */
  case 66: o->i = (int64_t)(lut_ms * 1000000u); return;
  case 67: {
    uint64_t now = spk_srv_now_ms();
    o->i = now > lut_ms ? (int64_t)(now - lut_ms) : 0;
    return;
  }
  case 68:
    o->i = vt ? (int64_t)((uint64_t)(vt + SPK_CITRUSLEAF_EPOCH) * 1000000000u) : -1;
    return;
  case 69: {
    uint32_t now = spk_srv_now_cl();
    o->i = vt == 0 ? -1 : vt > now ? (int64_t)(vt - now) : 1;
    return;
  }
  case 70: {
    const spk_srv_set *st = rec ? spk_srv_set_get(x->env->ns, rec->set_id) : NULL;
    o->t = T_STR;
    o->p = st ? (const uint8_t *)st->name : (const uint8_t *)"";
    o->n = st ? st->len : 0;
    return;
  }
  case 71: o->t = T_BOOL; o->b = rec && rec->key_len; return;
  case 72: o->t = T_BOOL; o->b = false; return;
  default: /* 73 memory_size, 74 record_size: stored size in 16-byte blocks */
    o->i = rec ? (int64_t)((spk_srv_rec_flat_size(x->env->ns, rec) + 15u) & ~15u) : 0;
    return;
  }
}

static void ev_key(ex *x, const xn *nd, xv *o) {
  const spk_srv_rec *rec = x->env->rec;
  o->t = T_UNK;
  if (!rec || rec->key_len == 0) return;
  const uint8_t *k = rec->data;
  uint8_t t;
  switch (k[0]) {
  case SPK_PARTICLE_INTEGER:
    if (rec->key_len != 9) return;
    t = T_INT;
    o->i = (int64_t)spk_be64(k + 1);
    break;
  case SPK_PARTICLE_STRING:
  case SPK_PARTICLE_BLOB:
    t = k[0] == SPK_PARTICLE_STRING ? T_STR : T_BLOB;
    o->p = k + 1;
    o->n = rec->key_len - 1;
    break;
  default:
    return;
  }
  if (t == nd->type) o->t = t;
}

static void ev_in_list(ex *x, const xn *nd, xv *o) {
  xv v, l;
  spk_srv_exp_eval(x, KID(0), &v);
  UNK_IF(v);
  spk_srv_exp_eval(x, KID(1), &l);
  UNK_IF(l);
  spk_buf b = {0};
  mp_pack(&b, &v);
  mp_iter m;
  const uint8_t *e, *unused;
  uint32_t en, un;
  o->t = T_BOOL;
  o->b = false;
  if (!mp_iter_init(&m, &l, false)) {
    o->t = T_UNK;
  } else {
    while (mp_iter_next(&m, &e, &en, &unused, &un)) {
      if (spk_srv_mp_cmp(b.data, b.len, e, en) == 0) {
        o->b = true;
        break;
      }
    }
  }
  spk_buf_free(&b);
}

static void ev_map_part(ex *x, const xn *nd, xv *o) {
  xv m;
  spk_srv_exp_eval(x, KID(0), &m);
  UNK_IF(m);
  mp_iter it;
  o->t = T_UNK;
  if (!mp_iter_init(&it, &m, true)) return;
  spk_buf b = {0};
  spk_mp_pack_array_header(&b, it.left);
  const uint8_t *k = NULL, *v = NULL;
  uint32_t kn = 0, vn = 0;
  while (mp_iter_next(&it, &k, &kn, &v, &vn))
    spk_buf_append(&b, nd->op == 101 ? k : v, nd->op == 101 ? kn : vn);
  if (it.left == 0 && b.data) {
    o->p = ex_copy(x, b.data, (uint32_t)b.len);
    o->n = (uint32_t)b.len;
    if (o->p) o->t = T_LIST;
  }
  spk_buf_free(&b);
}

/* Copy one raw msgpack element from r to b. */
static bool copy_raw(spk_mp_reader *r, spk_buf *b) {
  const uint8_t *p = r->p;
  if (!rd_skip(r)) return false;
  return spk_buf_append(b, p, (size_t)(r->p - p)) == 0;
}

static void ev_call(ex *x, const xn *nd, xv *o) {
  o->t = T_UNK;
  /* Rebuild the op list with evaluated arguments spliced in. */
  spk_buf pl = {0}, out = {0}, res = {0};
  spk_mp_reader r;
  spk_mp_item it;
  int64_t code;
  spk_mp_reader_init(&r, nd->s, nd->sn);
  if (spk_mp_next(&r, &it) != 0) goto done;
  spk_mp_pack_array_header(&pl, it.v.n);
  uint32_t n = it.v.n - 1;
  const uint8_t *cp = r.p;
  if (!rd_int(&r, &code)) goto done;
  spk_buf_append(&pl, cp, (size_t)(r.p - cp));
  if (code == 0xff) {
    if (!copy_raw(&r, &pl) || spk_mp_next(&r, &it) != 0) goto done;
    spk_mp_pack_array_header(&pl, it.v.n);
    n = it.v.n - 1;
    cp = r.p;
    if (!rd_int(&r, &code)) goto done;
    spk_buf_append(&pl, cp, (size_t)(r.p - cp));
  }
  for (uint32_t i = 0, j = 0; i < n; i++) {
    if (is_array_byte(*r.p)) {
      xv v;
      if (!rd_skip(&r)) goto done;
      spk_srv_exp_eval(x, KID(j++), &v);
      if (v.t == T_UNK) goto done;
      mp_pack(&pl, &v);
    } else if (!copy_raw(&r, &pl)) {
      goto done;
    }
  }
  xv t;
  spk_srv_exp_eval(x, KID(nd->nk - 1), &t);
  if (t.t == T_UNK || (nd->a & ~(int64_t)0x40) != 0) goto done; /* bits, HLL */
  const uint8_t *val = NULL;
  uint32_t vlen = 0;
  if (t.t != T_NIL) {
    if (t.n == 0 || (!is_array_byte(t.p[0]) && t.t != T_MAP && t.t != T_END)) goto done;
    val = t.p;
    vlen = t.n;
  }
  bool modify_local = (nd->a & 0x40) != 0, modified = false, has = false;
  if (!pl.data || spk_srv_cdt_call(x->env->c, val, vlen, pl.data, (uint32_t)pl.len,
                                   modify_local, &out, &modified, &res, &has) != 0)
    goto done;
  xv v = {0};
  if (modify_local) {
    if (modified) mp_value(x, out.data, (uint32_t)out.len, &v);
    else if (val) mp_value(x, val, vlen, &v);
    else v.t = T_NIL;
  } else if (has) {
    mp_value(x, res.data, (uint32_t)res.len, &v);
  } else {
    v.t = T_NIL;
  }
  if (v.t == nd->type) *o = v;
done:
  spk_buf_free(&pl);
  spk_buf_free(&out);
  spk_buf_free(&res);
}

void spk_srv_exp_eval(ex *x, uint32_t i, xv *o) {
  const xn *nd = &x->n[i];
  memset(o, 0, sizeof *o);
  switch (nd->op) {
  case N_LIT:
    *o = nd->v;
    return;
  case 0:
    o->t = T_UNK;
    return;
  case 1: case 2: case 3: case 4: case 5: case 6:
    ev_compare(x, nd, o);
    return;
  case 7: {
    xv s;
    spk_srv_exp_eval(x, KID(0), &s);
    UNK_IF(s);
    char *tmp = spk_srv_exp_alloc(x, (size_t)s.n + 1);
    if (!tmp) {
      o->t = T_UNK;
      return;
    }
    if (s.n) memcpy(tmp, s.p, s.n);
    tmp[s.n] = '\0';
    o->t = T_BOOL;
    o->b = regexec(nd->re, tmp, 0, NULL, 0) == 0;
    return;
  }
  case 8: {
    xv a, b;
    spk_srv_exp_eval(x, KID(0), &a);
    UNK_IF(a);
    spk_srv_exp_eval(x, KID(1), &b);
    UNK_IF(b);
    int m = spk_srv_geo_match(a.p, a.n, b.p, b.n);
    o->t = m < 0 ? T_UNK : T_BOOL;
    o->b = m == 1;
    return;
  }
  case 9:
    ev_in_list(x, nd, o);
    return;
  case 16: case 17: case 18: case 19:
    ev_logic(x, nd, o);
    return;
  case 20: case 21: case 22: case 23: case 50: case 51:
    ev_math(x, nd, o);
    return;
  case 24: case 25: case 28: case 29: case 30: case 31:
    ev_float(x, nd, o);
    return;
  case 27:
    if (nd->type == T_FLOAT) ev_float(x, nd, o);
    else ev_int(x, nd, o);
    return;
  case 26: case 32: case 33: case 34: case 35: case 36: case 37: case 38:
  case 39: case 40: case 41:
    ev_int(x, nd, o);
    return;
  case 64: case 65: case 66: case 67: case 68: case 69: case 70: case 71:
  case 72: case 73: case 74:
    ev_meta(x, nd, o);
    return;
  case 80:
    ev_key(x, nd, o);
    return;
  case 81: {
    uint8_t pt;
    const uint8_t *v;
    uint32_t n;
    if (!find_bin(x, nd->s, nd->sn, &pt, &v, &n)) o->t = T_UNK;
    else bin_value(nd->type, pt, v, n, o);
    return;
  }
  case 82: {
    uint8_t pt;
    const uint8_t *v;
    uint32_t n;
    o->t = T_INT;
    o->i = find_bin(x, nd->s, nd->sn, &pt, &v, &n) ? pt : SPK_PARTICLE_NULL;
    return;
  }
  case 101: case 102:
    ev_map_part(x, nd, o);
    return;
  case 123:
    for (uint32_t j = 0; j + 1 < nd->nk; j += 2) {
      xv c;
      spk_srv_exp_eval(x, KID(j), &c);
      UNK_IF(c);
      if (c.b) {
        spk_srv_exp_eval(x, KID(j + 1), o);
        return;
      }
    }
    spk_srv_exp_eval(x, KID(nd->nk - 1), o);
    return;
  case 124:
    *o = x->slots[nd->a];
    return;
  case 125:
    for (uint32_t j = 0; j + 1 < nd->nk; j++) spk_srv_exp_eval(x, KID(j), &x->slots[nd->a + j]);
    spk_srv_exp_eval(x, KID(nd->nk - 1), o);
    return;
  case 127:
    ev_call(x, nd, o);
    return;
  default:
    o->t = T_UNK;
    return;
  }
}
