/*
 * spk_msgpack.c - msgpack writer and pull reader (protocol-core 7.4,
 * protocol-expressions 1).
 *
 * The writer always picks the smallest encoding, which is also what the
 * server produces, so packed values compare byte-for-byte with its output.
 * The reader never trusts a length: each item is checked against the bytes
 * left before anything is read, and container counts are checked against a
 * lower bound of what their elements need so callers may size arrays from
 * them.
 */
#include "spk_msgpack.h"

/* ---- writer ---------------------------------------------------------------- */

#define EXTEND(b, n)                                   \
  uint8_t *o = spk_buf_extend((b), (n));               \
  if (SPK_UNLIKELY(!o)) return SPK_ERR_CLIENT

int spk_mp_pack_nil(spk_buf *b) {
  EXTEND(b, 1);
  o[0] = 0xc0;
  return 0;
}

int spk_mp_pack_bool(spk_buf *b, bool v) {
  EXTEND(b, 1);
  o[0] = v ? 0xc3 : 0xc2;
  return 0;
}

int spk_mp_pack_uint(spk_buf *b, uint64_t v) {
  if (v < 0x80) {
    EXTEND(b, 1);
    o[0] = (uint8_t)v;
  } else if (v <= UINT8_MAX) {
    EXTEND(b, 2);
    o[0] = 0xcc;
    o[1] = (uint8_t)v;
  } else if (v <= UINT16_MAX) {
    EXTEND(b, 3);
    o[0] = 0xcd;
    spk_put_be16(o + 1, (uint16_t)v);
  } else if (v <= UINT32_MAX) {
    EXTEND(b, 5);
    o[0] = 0xce;
    spk_put_be32(o + 1, (uint32_t)v);
  } else {
    EXTEND(b, 9);
    o[0] = 0xcf;
    spk_put_be64(o + 1, v);
  }
  return 0;
}

int spk_mp_pack_int(spk_buf *b, int64_t v) {
  if (v >= 0) return spk_mp_pack_uint(b, (uint64_t)v);
  /* Conversions to unsigned are modular, so (uint64_t)v is v's two's
   * complement bit pattern; the narrower stores keep its low bytes. */
  uint64_t u = (uint64_t)v;
  if (v >= -32) {
    EXTEND(b, 1);
    o[0] = (uint8_t)u;
  } else if (v >= INT8_MIN) {
    EXTEND(b, 2);
    o[0] = 0xd0;
    o[1] = (uint8_t)u;
  } else if (v >= INT16_MIN) {
    EXTEND(b, 3);
    o[0] = 0xd1;
    spk_put_be16(o + 1, (uint16_t)u);
  } else if (v >= INT32_MIN) {
    EXTEND(b, 5);
    o[0] = 0xd2;
    spk_put_be32(o + 1, (uint32_t)u);
  } else {
    EXTEND(b, 9);
    o[0] = 0xd3;
    spk_put_be64(o + 1, u);
  }
  return 0;
}

int spk_mp_pack_double(spk_buf *b, double v) {
  uint64_t bits;
  memcpy(&bits, &v, 8);
  EXTEND(b, 9);
  o[0] = 0xcb;
  spk_put_be64(o + 1, bits);
  return 0;
}

int spk_mp_pack_float32(spk_buf *b, float v) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  EXTEND(b, 5);
  o[0] = 0xca;
  spk_put_be32(o + 1, bits);
  return 0;
}

/* Header with a fix form (base | n when n < fix_limit), then 16/32-bit forms. */
static inline int pack_header(spk_buf *b, uint32_t n, uint8_t fix,
                             uint32_t fix_limit, uint8_t m8, uint8_t m16,
                             uint8_t m32) {
  if (n < fix_limit) {
    EXTEND(b, 1);
    o[0] = (uint8_t)(fix | n);
  } else if (m8 && n <= UINT8_MAX) {
    EXTEND(b, 2);
    o[0] = m8;
    o[1] = (uint8_t)n;
  } else if (n <= UINT16_MAX) {
    EXTEND(b, 3);
    o[0] = m16;
    spk_put_be16(o + 1, (uint16_t)n);
  } else {
    EXTEND(b, 5);
    o[0] = m32;
    spk_put_be32(o + 1, n);
  }
  return 0;
}

int spk_mp_pack_array_header(spk_buf *b, uint32_t n) {
  return pack_header(b, n, 0x90, 16, 0, 0xdc, 0xdd);
}

int spk_mp_pack_map_header(spk_buf *b, uint32_t n) {
  return pack_header(b, n, 0x80, 16, 0, 0xde, 0xdf);
}

int spk_mp_pack_str_header(spk_buf *b, uint32_t len) {
  return pack_header(b, len, 0xa0, 32, 0xd9, 0xda, 0xdb);
}

static inline int append(spk_buf *b, const void *p, uint32_t len) {
  return spk_buf_append(b, p, len);
}

int spk_mp_pack_str(spk_buf *b, const void *p, uint32_t len) {
  if (SPK_UNLIKELY(spk_mp_pack_str_header(b, len))) return SPK_ERR_CLIENT;
  return append(b, p, len);
}

int spk_mp_pack_bin(spk_buf *b, const void *p, uint32_t len) {
  /* bin has no fix form: fix_limit 0 never matches. */
  if (SPK_UNLIKELY(pack_header(b, len, 0, 0, 0xc4, 0xc5, 0xc6)))
    return SPK_ERR_CLIENT;
  return append(b, p, len);
}

int spk_mp_pack_particle_str(spk_buf *b, uint8_t particle_type, const void *p,
                             uint32_t len) {
  if (SPK_UNLIKELY(len == UINT32_MAX)) return SPK_ERR_PARAM;
  /* One reservation for header (<= 5), type byte and payload. */
  if (SPK_UNLIKELY(spk_buf_reserve(b, (size_t)len + 6))) return SPK_ERR_CLIENT;
  spk_mp_pack_str_header(b, len + 1); /* cannot fail now */
  b->data[b->len++] = particle_type;
  if (len) memcpy(b->data + b->len, p, len);
  b->len += len;
  return 0;
}

int spk_mp_pack_ext(spk_buf *b, int8_t type, const void *p, uint32_t len) {
  uint8_t t = (uint8_t)type; /* modular: the wire byte of a signed type */
  uint8_t *o;
  switch (len) {
    case 1: case 2: case 4: case 8: case 16: {
      static const uint8_t fix[17] = {[1] = 0xd4, [2] = 0xd5, [4] = 0xd6,
                                      [8] = 0xd7, [16] = 0xd8};
      if (SPK_UNLIKELY(!(o = spk_buf_extend(b, 2 + (size_t)len))))
        return SPK_ERR_CLIENT;
      o[0] = fix[len];
      o[1] = t;
      o += 2;
      break;
    }
    default:
      if (len <= UINT8_MAX) {
        if (SPK_UNLIKELY(!(o = spk_buf_extend(b, 3 + (size_t)len))))
          return SPK_ERR_CLIENT;
        o[0] = 0xc7;
        o[1] = (uint8_t)len;
        o[2] = t;
        o += 3;
      } else if (len <= UINT16_MAX) {
        if (SPK_UNLIKELY(!(o = spk_buf_extend(b, 4 + (size_t)len))))
          return SPK_ERR_CLIENT;
        o[0] = 0xc8;
        spk_put_be16(o + 1, (uint16_t)len);
        o[3] = t;
        o += 4;
      } else {
        if (SPK_UNLIKELY(!(o = spk_buf_extend(b, 6 + (size_t)len))))
          return SPK_ERR_CLIENT;
        o[0] = 0xc9;
        spk_put_be32(o + 1, len);
        o[5] = t;
        o += 6;
      }
  }
  if (len) memcpy(o, p, len);
  return 0;
}

int spk_mp_pack_wildcard(spk_buf *b) {
  EXTEND(b, 3);
  o[0] = 0xd4;
  o[1] = 0xff;
  o[2] = 0x00;
  return 0;
}

int spk_mp_pack_infinity(spk_buf *b) {
  EXTEND(b, 3);
  o[0] = 0xd4;
  o[1] = 0xff;
  o[2] = 0x01;
  return 0;
}

#undef EXTEND

/* ---- reader ---------------------------------------------------------------- */

static inline int64_t u64_to_i64(uint64_t u) {
  return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

static inline int8_t u8_to_i8(uint8_t u) {
  return u < 0x80 ? (int8_t)u : (int8_t)((int)u - 256);
}

/* Payload of len bytes follows the header (hdr bytes, already known to be
 * available); set up the slice and advance. */
static inline int take(spk_mp_reader *r, spk_mp_item *it, spk_mp_type type,
                       size_t hdr, uint32_t len) {
  if (SPK_UNLIKELY((size_t)(r->end - r->p) - hdr < len)) return SPK_ERR_PROTOCOL;
  it->type = type;
  it->v.s.p = r->p + hdr;
  it->v.s.len = len;
  it->v.s.ext_type = 0;
  r->p += hdr + len;
  return 0;
}

/* Container: each element needs at least one byte (two per map pair), so a
 * count above that bound cannot be satisfied by the input. */
static inline int container(spk_mp_reader *r, spk_mp_item *it, spk_mp_type type,
                            size_t hdr, uint32_t n) {
  size_t left = (size_t)(r->end - r->p) - hdr;
  uint64_t need = type == SPK_MP_MAP ? 2 * (uint64_t)n : n;
  if (SPK_UNLIKELY(need > left)) return SPK_ERR_PROTOCOL;
  it->type = type;
  it->v.n = n;
  r->p += hdr;
  return 0;
}

static inline int ext(spk_mp_reader *r, spk_mp_item *it, size_t hdr,
                      uint32_t len) {
  /* hdr includes the type byte, the last header byte. */
  int8_t t = u8_to_i8(r->p[hdr - 1]);
  if (SPK_UNLIKELY(take(r, it, SPK_MP_EXT, hdr, len))) return SPK_ERR_PROTOCOL;
  it->v.s.ext_type = t;
  return 0;
}

/* Header bytes (marker included) of the 0xc0..0xdf forms; 0 = reserved. */
static const uint8_t hdr_size[32] = {
    1, 0, 1, 1,        /* c0 nil, c1 reserved, c2 false, c3 true */
    2, 3, 5,           /* c4-c6 bin 8/16/32 */
    3, 4, 6,           /* c7-c9 ext 8/16/32 (length + type) */
    5, 9,              /* ca float32, cb float64 */
    2, 3, 5, 9,        /* cc-cf uint 8..64 */
    2, 3, 5, 9,        /* d0-d3 int 8..64 */
    2, 2, 2, 2, 2,     /* d4-d8 fixext 1..16 (type) */
    2, 3, 5,           /* d9-db str 8/16/32 */
    3, 5,              /* dc-dd array 16/32 */
    3, 5,              /* de-df map 16/32 */
};

int spk_mp_next(spk_mp_reader *r, spk_mp_item *it) {
  const uint8_t *p = r->p;
  if (SPK_UNLIKELY(p >= r->end)) return SPK_ERR_PROTOCOL;
  uint8_t c = p[0];

  if (c < 0x80) { /* positive fixint */
    it->type = SPK_MP_INT;
    it->v.i = c;
    r->p = p + 1;
    return 0;
  }
  if (c >= 0xe0) { /* negative fixint */
    it->type = SPK_MP_INT;
    it->v.i = (int64_t)c - 256;
    r->p = p + 1;
    return 0;
  }
  if (c < 0xc0) {
    if (c >= 0xa0) return take(r, it, SPK_MP_STR, 1, c & 0x1fu);
    if (c >= 0x90) return container(r, it, SPK_MP_ARRAY, 1, c & 0x0fu);
    return container(r, it, SPK_MP_MAP, 1, c & 0x0fu);
  }

  size_t hdr = hdr_size[c - 0xc0];
  if (SPK_UNLIKELY(hdr == 0 || (size_t)(r->end - p) < hdr))
    return SPK_ERR_PROTOCOL;

  switch (c) {
    case 0xc0: it->type = SPK_MP_NIL; break;
    case 0xc2: it->type = SPK_MP_BOOL; it->v.b = false; break;
    case 0xc3: it->type = SPK_MP_BOOL; it->v.b = true; break;
    case 0xc4: return take(r, it, SPK_MP_BIN, 2, p[1]);
    case 0xc5: return take(r, it, SPK_MP_BIN, 3, spk_be16(p + 1));
    case 0xc6: return take(r, it, SPK_MP_BIN, 5, spk_be32(p + 1));
    case 0xc7: return ext(r, it, 3, p[1]);
    case 0xc8: return ext(r, it, 4, spk_be16(p + 1));
    case 0xc9: return ext(r, it, 6, spk_be32(p + 1));
    case 0xca: {
      uint32_t bits = spk_be32(p + 1);
      float f;
      memcpy(&f, &bits, 4);
      it->type = SPK_MP_FLOAT;
      it->v.d = (double)f;
      break;
    }
    case 0xcb: {
      uint64_t bits = spk_be64(p + 1);
      it->type = SPK_MP_DOUBLE;
      memcpy(&it->v.d, &bits, 8);
      break;
    }
    case 0xcc: it->type = SPK_MP_INT; it->v.i = p[1]; break;
    case 0xcd: it->type = SPK_MP_INT; it->v.i = spk_be16(p + 1); break;
    case 0xce: it->type = SPK_MP_INT; it->v.i = spk_be32(p + 1); break;
    case 0xcf: {
      uint64_t u = spk_be64(p + 1);
      if (u <= (uint64_t)INT64_MAX) {
        it->type = SPK_MP_INT;
        it->v.i = (int64_t)u;
      } else {
        it->type = SPK_MP_UINT;
        it->v.u = u;
      }
      break;
    }
    case 0xd0: it->type = SPK_MP_INT; it->v.i = u8_to_i8(p[1]); break;
    case 0xd1:
      it->type = SPK_MP_INT;
      it->v.i = (int64_t)spk_be16(p + 1) - ((p[1] & 0x80) ? 0x10000 : 0);
      break;
    case 0xd2:
      it->type = SPK_MP_INT;
      it->v.i = (int64_t)spk_be32(p + 1) - ((p[1] & 0x80) ? 0x100000000 : 0);
      break;
    case 0xd3: it->type = SPK_MP_INT; it->v.i = u64_to_i64(spk_be64(p + 1)); break;
    case 0xd4: return ext(r, it, 2, 1);
    case 0xd5: return ext(r, it, 2, 2);
    case 0xd6: return ext(r, it, 2, 4);
    case 0xd7: return ext(r, it, 2, 8);
    case 0xd8: return ext(r, it, 2, 16);
    case 0xd9: return take(r, it, SPK_MP_STR, 2, p[1]);
    case 0xda: return take(r, it, SPK_MP_STR, 3, spk_be16(p + 1));
    case 0xdb: return take(r, it, SPK_MP_STR, 5, spk_be32(p + 1));
    case 0xdc: return container(r, it, SPK_MP_ARRAY, 3, spk_be16(p + 1));
    case 0xdd: return container(r, it, SPK_MP_ARRAY, 5, spk_be32(p + 1));
    case 0xde: return container(r, it, SPK_MP_MAP, 3, spk_be16(p + 1));
    case 0xdf: return container(r, it, SPK_MP_MAP, 5, spk_be32(p + 1));
    default: return SPK_ERR_PROTOCOL; /* 0xc1 is caught by hdr_size */
  }
  r->p = p + hdr;
  return 0;
}

int spk_mp_skip(spk_mp_reader *r) {
  /* An explicit stack of "elements still owed" per open container replaces
   * recursion, so hostile nesting costs at most SPK_MP_MAX_DEPTH slots. */
  uint64_t owed[SPK_MP_MAX_DEPTH];
  unsigned depth = 0;
  uint64_t left = 1;
  spk_mp_item it;
  for (;;) {
    while (left == 0) {
      if (depth == 0) return 0;
      left = owed[--depth];
    }
    left--;
    if (SPK_UNLIKELY(spk_mp_next(r, &it))) return SPK_ERR_PROTOCOL;
    if (it.type != SPK_MP_ARRAY && it.type != SPK_MP_MAP) continue;
    /* depth = containers enclosing this one; it would be level depth+1. */
    if (SPK_UNLIKELY(depth >= SPK_MP_MAX_DEPTH)) return SPK_ERR_PROTOCOL;
    uint64_t n = it.type == SPK_MP_MAP ? 2 * (uint64_t)it.v.n : it.v.n;
    if (n == 0) continue;
    owed[depth++] = left;
    left = n;
  }
}

int spk_mp_validate(const uint8_t *p, size_t len) {
  spk_mp_reader r;
  spk_mp_reader_init(&r, p, len);
  if (spk_mp_skip(&r)) return SPK_ERR_PROTOCOL;
  return r.p == r.end ? 0 : SPK_ERR_PROTOCOL;
}

int spk_mp_particle_str(const spk_mp_item *it, uint8_t *ptype,
                        const uint8_t **data, uint32_t *len) {
  if (SPK_UNLIKELY((it->type != SPK_MP_STR && it->type != SPK_MP_BIN) ||
                   it->v.s.len == 0))
    return SPK_ERR_PROTOCOL;
  *ptype = it->v.s.p[0];
  *data = it->v.s.p + 1;
  *len = it->v.s.len - 1;
  return 0;
}
