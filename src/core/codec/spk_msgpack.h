/*
 * spk_msgpack.h - msgpack writer and pull reader with Aerospike's
 * conventions (protocol-core 7.4, protocol-expressions 1).  No I/O, no
 * allocation beyond the caller's spk_buf.
 *
 * Aerospike strings inside msgpack are msgpack str whose payload starts with
 * a particle-type byte: 0x03 for text, 0x04 (or 7..12) for blobs, 0x17 for
 * GeoJSON.  The writer's spk_mp_pack_particle_str() adds that byte; the
 * reader reports SPK_MP_STR / SPK_MP_BIN items raw, and
 * spk_mp_particle_str() splits off the type byte.
 *
 * Integers are written in their smallest form (positive: fixint, uint8..64;
 * negative: negative fixint, int8..64), as the server normalises them.
 */
#ifndef SPK_MSGPACK_H
#define SPK_MSGPACK_H

#include "../spk_common.h"

/* ---- writer --------------------------------------------------------------- */
/* Each returns 0 or SPK_ERR_CLIENT (OOM); spk_mp_pack_particle_str also
 * SPK_ERR_PARAM for len == UINT32_MAX (the type byte would not fit). */

int spk_mp_pack_nil(spk_buf *b);
int spk_mp_pack_bool(spk_buf *b, bool v);
int spk_mp_pack_int(spk_buf *b, int64_t v);
int spk_mp_pack_uint(spk_buf *b, uint64_t v);
int spk_mp_pack_double(spk_buf *b, double v);
int spk_mp_pack_float32(spk_buf *b, float v);
int spk_mp_pack_array_header(spk_buf *b, uint32_t n);
int spk_mp_pack_map_header(spk_buf *b, uint32_t n);
/* Raw msgpack str / bin of len bytes (no particle byte). */
int spk_mp_pack_str(spk_buf *b, const void *p, uint32_t len);
int spk_mp_pack_bin(spk_buf *b, const void *p, uint32_t len);
/* Aerospike string: msgpack str of len+1 bytes = particle_type, then p.
 * Used with SPK_PARTICLE_STRING, _BLOB (and 7..12), _GEOJSON. */
int spk_mp_pack_particle_str(spk_buf *b, uint8_t particle_type, const void *p,
                             uint32_t len);
/* ext (fixext 1/2/4/8/16 or ext 8/16/32 chosen by len). */
int spk_mp_pack_ext(spk_buf *b, int8_t type, const void *p, uint32_t len);
/* Header of a str of len bytes, for callers that write the payload
 * themselves (e.g. UTF-8 straight from a Python str). */
int spk_mp_pack_str_header(spk_buf *b, uint32_t len);

/* Aerospike markers: wildcard 0xd4 0xff 0x00, infinity 0xd4 0xff 0x01. */
int spk_mp_pack_wildcard(spk_buf *b);
int spk_mp_pack_infinity(spk_buf *b);

/* ---- reader --------------------------------------------------------------- */

typedef enum spk_mp_type {
  SPK_MP_NIL,
  SPK_MP_BOOL,
  SPK_MP_INT,    /* fits int64: i (negative values, and positive <= INT64_MAX) */
  SPK_MP_UINT,   /* positive above INT64_MAX: u */
  SPK_MP_FLOAT,  /* float32 widened: d */
  SPK_MP_DOUBLE, /* d */
  SPK_MP_STR,    /* bytes: p, len */
  SPK_MP_BIN,    /* bytes: p, len */
  SPK_MP_ARRAY,  /* n elements follow */
  SPK_MP_MAP,    /* n key/value pairs follow */
  SPK_MP_EXT     /* ext_type, p, len */
} spk_mp_type;

typedef struct spk_mp_item {
  spk_mp_type type;
  union {
    bool b;
    int64_t i;
    uint64_t u;
    double d;
    uint32_t n;
    struct {
      const uint8_t *p;
      uint32_t len;
      int8_t ext_type;
    } s;
  } v;
} spk_mp_item;

typedef struct spk_mp_reader {
  const uint8_t *p;
  const uint8_t *end;
} spk_mp_reader;

static inline void spk_mp_reader_init(spk_mp_reader *r, const uint8_t *p,
                                      size_t len) {
  r->p = p;
  r->end = len ? p + len : p; /* NULL + 0 is undefined */
}

/* Maximum container nesting accepted by spk_mp_skip / spk_mp_validate. */
#define SPK_MP_MAX_DEPTH 256

/*
 * Read the next item header.  Containers report their count; their
 * elements are read by later calls.  Returns 0, or SPK_ERR_PROTOCOL on
 * truncated input or a reserved byte (0xc1).  A container whose count
 * cannot fit in the remaining bytes (n > left for arrays, 2n > left for
 * maps) is rejected, so callers may size allocations from the count.
 */
int spk_mp_next(spk_mp_reader *r, spk_mp_item *it);

/* Skip one complete object (containers recursively, depth-limited). */
int spk_mp_skip(spk_mp_reader *r);

/* Check that [p, p+len) holds exactly one well-formed object. */
int spk_mp_validate(const uint8_t *p, size_t len);

/*
 * Split an Aerospike-convention string item (SPK_MP_STR or SPK_MP_BIN with
 * at least one byte): *ptype gets the particle byte, *data / *len the rest.
 * Returns 0, or SPK_ERR_PROTOCOL for an empty payload.
 */
int spk_mp_particle_str(const spk_mp_item *it, uint8_t *ptype,
                        const uint8_t **data, uint32_t *len);

#endif /* SPK_MSGPACK_H */
