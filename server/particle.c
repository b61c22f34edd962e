/*
 * particle.c - what a bin value may be, as the real server decides it:
 * particle validation on writes, msgpack size / ordering with the server's
 * rules (type order nil < false < true < negative int < int < string < list
 * < map < bytes < double < geojson < ext), ordered-container checks and the
 * key sort applied to unordered maps, and the flat-record size rules behind
 * max-record-size.
 */
#include <stdlib.h>

#include "spk_msgpack.h"
#include "srv.h"

/* ---- msgpack sizing --------------------------------------------------------------- */

/* Size of the item header at p and how many child items follow; 0 on error. */
static size_t item_head(const uint8_t *p, const uint8_t *end, uint64_t *kids) {
  if (p >= end) return 0;
  size_t left = (size_t)(end - p);
  uint8_t b = p[0];
  *kids = 0;
  if (b < 0x80 || b >= 0xe0) return 1;
  if ((b & 0xe0) == 0xa0) return (size_t)1 + (b & 0x1f) <= left ? 1u + (b & 0x1f) : 0;
  if ((b & 0xf0) == 0x80) {
    *kids = 2u * (b & 0x0f);
    return 1;
  }
  if ((b & 0xf0) == 0x90) {
    *kids = b & 0x0f;
    return 1;
  }
  size_t n;
  switch (b) {
  case 0xc0: case 0xc2: case 0xc3: return 1;
  case 0xcc: case 0xd0: return left >= 2 ? 2 : 0;
  case 0xcd: case 0xd1: return left >= 3 ? 3 : 0;
  case 0xca: case 0xce: case 0xd2: return left >= 5 ? 5 : 0;
  case 0xcb: case 0xcf: case 0xd3: return left >= 9 ? 9 : 0;
  case 0xc4: case 0xd9:
    if (left < 2) return 0;
    n = 2u + p[1];
    return n <= left ? n : 0;
  case 0xc5: case 0xda:
    if (left < 3) return 0;
    n = 3u + spk_be16(p + 1);
    return n <= left ? n : 0;
  case 0xc6: case 0xdb:
    if (left < 5) return 0;
    n = 5u + (size_t)spk_be32(p + 1);
    return n <= left ? n : 0;
  case 0xdc:
    if (left < 3) return 0;
    *kids = spk_be16(p + 1);
    return 3;
  case 0xdd:
    if (left < 5) return 0;
    *kids = spk_be32(p + 1);
    return 5;
  case 0xde:
    if (left < 3) return 0;
    *kids = 2u * spk_be16(p + 1);
    return 3;
  case 0xdf:
    if (left < 5) return 0;
    *kids = 2u * (uint64_t)spk_be32(p + 1);
    return 5;
  case 0xd4: return left >= 3 ? 3 : 0;
  case 0xd5: return left >= 4 ? 4 : 0;
  case 0xd6: return left >= 6 ? 6 : 0;
  case 0xd7: return left >= 10 ? 10 : 0;
  case 0xd8: return left >= 18 ? 18 : 0;
  case 0xc7:
    if (left < 3) return 0;
    n = 3u + p[1];
    return n <= left ? n : 0;
  case 0xc8:
    if (left < 4) return 0;
    n = 4u + spk_be16(p + 1);
    return n <= left ? n : 0;
  case 0xc9:
    if (left < 6) return 0;
    n = 6u + (size_t)spk_be32(p + 1);
    return n <= left ? n : 0;
  default: return 0; /* 0xc1 */
  }
}

size_t spk_srv_mp_size(const uint8_t *p, const uint8_t *end) {
  const uint8_t *start = p;
  uint64_t pending = 1;
  while (pending) {
    uint64_t kids;
    size_t h = item_head(p, end, &kids);
    if (h == 0) return 0;
    /* Each child needs at least one byte: reject impossible counts early. */
    if (kids > (uint64_t)(end - p)) return 0;
    p += h;
    pending = pending - 1 + kids;
  }
  return (size_t)(p - start);
}

/* ---- msgpack comparison ------------------------------------------------------------ */

enum {
  T_ERR, T_NIL, T_FALSE, T_TRUE, T_NEGINT, T_INT, T_STRING, T_LIST, T_MAP,
  T_BYTES, T_DOUBLE, T_GEOJSON, T_EXT, T_WILDCARD, T_INF
};

typedef struct mp_item {
  int type;
  uint64_t i;
  double d;
  const uint8_t *data;
  uint32_t len; /* bytes length, or child count for containers */
} mp_item;

static int bytes_type(const uint8_t *d, uint32_t len) {
  if (len == 0) return T_BYTES;
  if (d[0] == SPK_PARTICLE_STRING) return T_STRING;
  if (d[0] == SPK_PARTICLE_GEOJSON) return T_GEOJSON;
  return T_BYTES;
}

/* Parse one item at *pp, advancing past its header (containers: the leading
 * ext metadata element is skipped as the server does). */
static int mp_parse(const uint8_t **pp, const uint8_t *end, mp_item *it) {
  const uint8_t *p = *pp;
  uint64_t kids;
  size_t h = item_head(p, end, &kids);
  if (h == 0) return -1;
  uint8_t b = p[0];
  it->type = T_ERR;
  it->len = 0;
  if (b < 0x80) {
    it->type = T_INT;
    it->i = b;
  } else if (b >= 0xe0) {
    it->type = T_NEGINT;
    it->i = (uint64_t)(int64_t)(int8_t)b;
  } else if ((b & 0xe0) == 0xa0 || b == 0xc4 || b == 0xc5 || b == 0xc6 ||
             b == 0xd9 || b == 0xda || b == 0xdb) {
    size_t hdr = (b & 0xe0) == 0xa0 ? 1 : (b == 0xc4 || b == 0xd9) ? 2
                 : (b == 0xc5 || b == 0xda) ? 3 : 5;
    it->data = p + hdr;
    it->len = (uint32_t)(h - hdr);
    it->type = bytes_type(it->data, it->len);
  } else if ((b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd) {
    it->type = T_LIST;
    it->len = (uint32_t)kids;
  } else if ((b & 0xf0) == 0x80 || b == 0xde || b == 0xdf) {
    it->type = T_MAP;
    it->len = (uint32_t)kids;
  } else {
    switch (b) {
    case 0xc0: it->type = T_NIL; break;
    case 0xc2: it->type = T_FALSE; break;
    case 0xc3: it->type = T_TRUE; break;
    case 0xcc: it->type = T_INT; it->i = p[1]; break;
    case 0xcd: it->type = T_INT; it->i = spk_be16(p + 1); break;
    case 0xce: it->type = T_INT; it->i = spk_be32(p + 1); break;
    case 0xcf: it->type = T_INT; it->i = spk_be64(p + 1); break;
    case 0xd0: {
      int64_t v = (int8_t)p[1];
      it->type = v < 0 ? T_NEGINT : T_INT;
      it->i = (uint64_t)v;
      break;
    }
    case 0xd1: {
      int64_t v = (int16_t)spk_be16(p + 1);
      it->type = v < 0 ? T_NEGINT : T_INT;
      it->i = (uint64_t)v;
      break;
    }
    case 0xd2: {
      int64_t v = (int32_t)spk_be32(p + 1);
      it->type = v < 0 ? T_NEGINT : T_INT;
      it->i = (uint64_t)v;
      break;
    }
    case 0xd3: {
      uint64_t v = spk_be64(p + 1);
      it->type = (v >> 63) ? T_NEGINT : T_INT;
      it->i = v;
      break;
    }
    case 0xca: {
      uint32_t u = spk_be32(p + 1);
      float f;
      memcpy(&f, &u, 4);
      it->type = T_DOUBLE;
      it->d = (double)f;
      break;
    }
    case 0xcb:
      it->type = T_DOUBLE;
      /* The server converts the raw bits numerically (not a bit cast);
       * orderings follow from that, so do the same. */
      it->d = (double)spk_be64(p + 1);
      break;
    case 0xd4:
      if ((uint8_t)p[1] == 0xff && p[2] == 0x00) it->type = T_WILDCARD;
      else if ((uint8_t)p[1] == 0xff && p[2] == 0x01) it->type = T_INF;
      else {
        it->type = T_EXT;
        it->data = p + 2;
        it->len = 1;
      }
      break;
    case 0xc7:
      if (p[1] == 1 && p[2] == 0xff && h >= 4 && (p[3] == 0 || p[3] == 1)) {
        it->type = p[3] == 0 ? T_WILDCARD : T_INF;
      } else {
        it->type = T_EXT;
        it->data = p + 3;
        it->len = p[1];
      }
      break;
    default:
      it->type = T_EXT;
      it->data = p + 1;
      it->len = (uint32_t)(h - 1);
      break;
    }
  }
  p += h;
  if (it->type == T_LIST || it->type == T_MAP) {
    /* Skip the ordering metadata: an ext (not type 0xff) as first element,
     * plus its nil value for maps. */
    uint32_t skip = it->type == T_LIST ? 1 : 2;
    if (it->len >= skip && p < end) {
      uint8_t e = p[0];
      int ext_type = -1;
      if (e >= 0xd4 && e <= 0xd8 && end - p >= 2) ext_type = p[1];
      else if (e == 0xc7 && end - p >= 3) ext_type = p[2];
      else if (e == 0xc8 && end - p >= 4) ext_type = p[3];
      else if (e == 0xc9 && end - p >= 6) ext_type = p[5];
      if (ext_type >= 0 && ext_type != 0xff) {
        for (uint32_t k = 0; k < skip; k++) {
          size_t sz = spk_srv_mp_size(p, end);
          if (sz == 0) return -1;
          p += sz;
        }
        it->len -= skip;
      }
    }
  }
  *pp = p;
  return 0;
}

#define CMP_ERR 2

static int cmp_rec(const uint8_t **a, const uint8_t *ae, const uint8_t **b,
                   const uint8_t *be, int depth) {
  if (depth > SPK_MP_MAX_DEPTH) return CMP_ERR;
  mp_item x, y;
  const uint8_t *a0 = *a, *b0 = *b;
  if (mp_parse(a, ae, &x) != 0 || mp_parse(b, be, &y) != 0) return CMP_ERR;
  if (x.type == T_WILDCARD || y.type == T_WILDCARD) {
    /* Skip whatever the other side holds. */
    size_t sa = spk_srv_mp_size(a0, ae), sb = spk_srv_mp_size(b0, be);
    if (!sa || !sb) return CMP_ERR;
    *a = a0 + sa;
    *b = b0 + sb;
    return 0;
  }
  if (x.type != y.type) {
    int r = x.type < y.type ? -1 : 1;
    size_t sa = spk_srv_mp_size(a0, ae), sb = spk_srv_mp_size(b0, be);
    if (!sa || !sb) return CMP_ERR;
    *a = a0 + sa;
    *b = b0 + sb;
    return r;
  }
  switch (x.type) {
  case T_NEGINT:
  case T_INT:
    return x.i < y.i ? -1 : x.i > y.i ? 1 : 0;
  case T_DOUBLE:
    return x.d < y.d ? -1 : x.d > y.d ? 1 : 0;
  case T_STRING:
  case T_BYTES:
  case T_GEOJSON:
  case T_EXT: {
    uint32_t n = x.len < y.len ? x.len : y.len;
    int c = n ? memcmp(x.data, y.data, n) : 0;
    if (c) return c < 0 ? -1 : 1;
    return x.len < y.len ? -1 : x.len > y.len ? 1 : 0;
  }
  case T_LIST:
  case T_MAP: {
    int result = 0;
    if (x.type == T_MAP && x.len != y.len) result = x.len < y.len ? -1 : 1;
    uint32_t n = x.len < y.len ? x.len : y.len;
    for (uint32_t i = 0; i < n; i++) {
      int r = cmp_rec(a, ae, b, be, depth + 1);
      if (r == CMP_ERR) return CMP_ERR;
      if (r != 0 && result == 0) result = r;
    }
    /* Consume what is left so callers comparing siblings stay aligned. */
    for (uint32_t i = n; i < x.len; i++) {
      size_t s = spk_srv_mp_size(*a, ae);
      if (!s) return CMP_ERR;
      *a += s;
    }
    for (uint32_t i = n; i < y.len; i++) {
      size_t s = spk_srv_mp_size(*b, be);
      if (!s) return CMP_ERR;
      *b += s;
    }
    if (result) return result;
    return x.len < y.len ? -1 : x.len > y.len ? 1 : 0;
  }
  default:
    return 0;
  }
}

int spk_srv_mp_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                   size_t blen) {
  const uint8_t *pa = a, *pb = b;
  return cmp_rec(&pa, a + alen, &pb, b + blen, 0);
}

/* ---- list / map particles ---------------------------------------------------------- */

typedef struct map_ent {
  const uint8_t *k;
  size_t klen;
  size_t vlen; /* value follows the key */
} map_ent;

static int ent_cmp(const void *a, const void *b) {
  const map_ent *x = a, *y = b;
  int r = spk_srv_mp_cmp(x->k, x->klen, y->k, y->klen);
  return r == CMP_ERR ? 0 : r;
}

/* Container header: size and element count (maps: pairs). */
static size_t container_head(const uint8_t *p, const uint8_t *end, bool map,
                             uint32_t *n) {
  uint64_t kids;
  size_t h = item_head(p, end, &kids);
  if (!h) return 0;
  uint8_t b = p[0];
  bool is_map = (b & 0xf0) == 0x80 || b == 0xde || b == 0xdf;
  bool is_list = (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd;
  if (map ? !is_map : !is_list) return 0;
  *n = (uint32_t)(map ? kids / 2 : kids);
  return h;
}

/* Flags of a leading ordering-metadata element (ext 8 with no data whose
 * type byte carries the flags: c7 00 <flags>), or -1 when absent. */
static int meta_flags(const uint8_t *p, const uint8_t *end) {
  if (end - p >= 3 && p[0] == 0xc7 && p[1] == 0 && p[2] != 0xff) return p[2];
  return -1;
}

int spk_srv_cdt_validate(spk_srv_ctx *c, uint8_t ptype, const uint8_t *p,
                         uint32_t len, bool *rewritten, size_t *off,
                         uint32_t *out_len) {
  const uint8_t *end = p + len;
  *rewritten = false;
  if (spk_srv_mp_size(p, end) != len) return SPK_SRV_ERR_UNKNOWN;
  bool map = ptype == SPK_PARTICLE_MAP;
  uint32_t n;
  size_t h = container_head(p, end, map, &n);
  if (!h) return SPK_SRV_ERR_UNKNOWN;
  const uint8_t *q = p + h;
  int flags = 0;
  bool has_meta = false;
  if (n > 0) {
    int f = meta_flags(q, end);
    if (f >= 0) {
      flags = f;
      has_meta = true;
      size_t s = spk_srv_mp_size(q, end);
      if (!s) return SPK_SRV_ERR_UNKNOWN;
      q += s;
      if (map) {
        if (q >= end || q[0] != 0xc0) return SPK_SRV_ERR_UNKNOWN;
        q++;
      }
      n--;
    }
  }
  if (!map) {
    if (!(flags & 1)) return 0;
    /* Ordered list: the server does not sort client data; it must already
     * be in order. */
    const uint8_t *prev = NULL;
    size_t prev_len = 0;
    for (uint32_t i = 0; i < n; i++) {
      size_t s = spk_srv_mp_size(q, end);
      if (!s) return SPK_SRV_ERR_UNKNOWN;
      if (prev) {
        int r = spk_srv_mp_cmp(prev, prev_len, q, s);
        if (r == CMP_ERR || r > 0) return SPK_SRV_ERR_UNKNOWN;
      }
      prev = q;
      prev_len = s;
      q += s;
    }
    return 0;
  }
  if (n == 0) return 0;
  map_ent *e = malloc((size_t)n * sizeof *e);
  if (!e) return SPK_SRV_ERR_UNKNOWN;
  bool sorted = true;
  int rc = 0;
  for (uint32_t i = 0; i < n && rc == 0; i++) {
    size_t ks = spk_srv_mp_size(q, end);
    size_t vs = ks ? spk_srv_mp_size(q + ks, end) : 0;
    if (!ks || !vs) {
      rc = SPK_SRV_ERR_UNKNOWN;
      break;
    }
    e[i].k = q;
    e[i].klen = ks;
    e[i].vlen = vs;
    if (i > 0) {
      int r = spk_srv_mp_cmp(e[i - 1].k, e[i - 1].klen, q, ks);
      if (r == CMP_ERR || r == 0) rc = SPK_SRV_ERR_UNKNOWN; /* duplicate */
      else if (r > 0) sorted = false;
    }
    q += ks + vs;
  }
  if (rc == 0 && !sorted) {
    if (has_meta && (flags & 1)) {
      /* Key-ordered map not in order: rejected, not sorted. */
      rc = SPK_SRV_ERR_UNKNOWN;
    } else {
      qsort(e, n, sizeof *e, ent_cmp);
      for (uint32_t i = 1; i < n && rc == 0; i++)
        if (spk_srv_mp_cmp(e[i - 1].k, e[i - 1].klen, e[i].k, e[i].klen) == 0)
          rc = SPK_SRV_ERR_UNKNOWN;
      if (rc == 0) {
        /* Unordered maps are stored key-sorted: header and metadata as sent,
         * entries in server order. */
        size_t meta_len = (size_t)(e[0].k - p);
        for (uint32_t i = 0; i < n; i++)
          if ((size_t)(e[i].k - p) < meta_len) meta_len = (size_t)(e[i].k - p);
        *off = c->scratch.len;
        if (spk_buf_append(&c->scratch, p, meta_len) != 0) rc = SPK_SRV_ERR_UNKNOWN;
        for (uint32_t i = 0; i < n && rc == 0; i++)
          if (spk_buf_append(&c->scratch, e[i].k, e[i].klen + e[i].vlen) != 0)
            rc = SPK_SRV_ERR_UNKNOWN;
        if (rc == 0) {
          *rewritten = true;
          *out_len = len;
        }
      }
    }
  }
  free(e);
  return rc;
}

/* ---- particles from the client ---------------------------------------------------------- */

int spk_srv_particle_from_client(spk_srv_ctx *c, const spk_srv_op *o,
                                 spk_srv_bin *b) {
  b->ptype = o->ptype;
  b->in_scratch = false;
  b->val = o->val;
  b->len = o->len;
  switch (o->ptype) {
  case SPK_PARTICLE_INTEGER:
    if (o->len == 8) return 0;
    if (o->len == 1 || o->len == 2 || o->len == 4) {
      /* Narrow integers are unsigned big-endian; stored as 8 bytes. */
      uint64_t v = 0;
      for (uint32_t i = 0; i < o->len; i++) v = v << 8 | o->val[i];
      b->off = c->scratch.len;
      uint8_t *p = spk_buf_extend(&c->scratch, 8);
      if (!p) return SPK_SRV_ERR_UNKNOWN;
      spk_put_be64(p, v);
      b->in_scratch = true;
      b->len = 8;
      return 0;
    }
    return SPK_SRV_ERR_PARAMETER;
  case SPK_PARTICLE_FLOAT:
    return o->len == 8 ? 0 : SPK_SRV_ERR_PARAMETER;
  case SPK_PARTICLE_STRING:
  case SPK_PARTICLE_BLOB:
  case SPK_PARTICLE_JAVA_BLOB:
  case SPK_PARTICLE_CSHARP_BLOB:
  case SPK_PARTICLE_PYTHON_BLOB:
  case SPK_PARTICLE_RUBY_BLOB:
  case SPK_PARTICLE_PHP_BLOB:
  case SPK_PARTICLE_ERLANG_BLOB:
  case SPK_PARTICLE_HLL:
    return 0;
  case SPK_PARTICLE_BOOL:
    if (o->len != 1) return SPK_SRV_ERR_PARAMETER;
    if (o->val[0] > 1) {
      b->off = c->scratch.len;
      uint8_t one = 1;
      if (spk_buf_append(&c->scratch, &one, 1) != 0) return SPK_SRV_ERR_UNKNOWN;
      b->in_scratch = true;
    }
    return 0;
  case SPK_PARTICLE_MAP:
  case SPK_PARTICLE_LIST: {
    bool rw;
    size_t off = 0;
    uint32_t len = 0;
    int rc = spk_srv_cdt_validate(c, o->ptype, o->val, o->len, &rw, &off, &len);
    if (rc) return rc;
    if (rw) {
      b->in_scratch = true;
      b->off = off;
      b->len = len;
    }
    return 0;
  }
  case SPK_PARTICLE_GEOJSON: {
    size_t off = c->scratch.len;
    int rc = spk_srv_geo_from_client(o->val, o->len, &c->scratch);
    if (rc) return rc;
    b->in_scratch = true;
    b->off = off;
    b->len = (uint32_t)(c->scratch.len - off);
    return 0;
  }
  default:
    return SPK_SRV_ERR_PARAMETER;
  }
}

/* ---- flat record sizes -------------------------------------------------------------------- */

uint32_t spk_srv_uintvar_size(uint32_t v) {
  uint32_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

uint32_t spk_srv_particle_flat_size(uint8_t ptype, const uint8_t *val,
                                    uint32_t len) {
  switch (ptype) {
  case SPK_PARTICLE_INTEGER:
  case SPK_PARTICLE_FLOAT: {
    /* type, size byte, then the value's 64 bits cut to the smallest of
     * 1, 2, 4 or 8 bytes that holds them (floats by their bit pattern). */
    uint64_t v = len == 8 && val ? spk_be64(val) : UINT64_MAX;
    return 2 + (v > 0xFFFFFFFFu ? 8 : v > 0xFFFFu ? 4 : v > 0xFFu ? 2 : 1);
  }
  case SPK_PARTICLE_BOOL:
    return 1 + 1;
  default:
    return 1 + 4 + len; /* type, u32 size, bytes */
  }
}

uint32_t spk_srv_rec_flat_size(spk_srv_ns *ns, const spk_srv_rec *r) {
  uint64_t sz = 35; /* the real flat record header */
  if (r->void_time) sz += 4;
  const spk_srv_set *st = spk_srv_set_get(ns, r->set_id);
  if (st) sz += 1 + st->len;
  if (r->key_len) sz += spk_srv_uintvar_size(r->key_len) + r->key_len;
  if (r->n_bins) sz += spk_srv_uintvar_size(r->n_bins);
  const uint8_t *p = spk_srv_rec_bins(r);
  for (uint16_t i = 0; i < r->n_bins; i++) {
    uint32_t op_sz = spk_be32(p);
    uint8_t nlen = p[7];
    sz += 1u + nlen +
          spk_srv_particle_flat_size(p[5], p + 8 + nlen, op_sz - 4 - nlen);
    p += 4 + op_sz;
  }
  return sz > UINT32_MAX ? UINT32_MAX : (uint32_t)sz;
}
