/*
 * spk_proto.c - proto header checks, the as_msg writer and the validating
 * as_msg reader (protocol-core 1, 5-8).
 *
 * The writer trusts its caller (sizes are ours); the reader trusts nothing:
 * spk_msg_parse walks every field and op once, so the iterators that run
 * afterwards can decode without re-checking bounds.
 */
#include "spk_proto.h"

#include <inttypes.h>

/* ---- proto header --------------------------------------------------------- */

int spk_proto_check(const uint8_t in[8], uint8_t expect_type, spk_proto *p,
                    spk_error *err) {
  spk_proto_read(in, p);
  if (SPK_UNLIKELY(p->version != SPK_PROTO_VERSION))
    return spk_error_set(err, SPK_ERR_PROTOCOL, "bad proto version %u",
                         (unsigned)p->version);
  bool type_ok = p->type == expect_type ||
                 (expect_type == SPK_PROTO_MSG && p->type == SPK_PROTO_COMPRESSED);
  if (SPK_UNLIKELY(!type_ok))
    return spk_error_set(err, SPK_ERR_PROTOCOL,
                         "unexpected proto type %u (expected %u)",
                         (unsigned)p->type, (unsigned)expect_type);
  if (SPK_UNLIKELY(p->size > SPK_PROTO_SIZE_MAX))
    return spk_error_set(err, SPK_ERR_PROTOCOL,
                         "proto size %" PRIu64 " exceeds limit %u", p->size,
                         SPK_PROTO_SIZE_MAX);
  return 0;
}

/* ---- as_msg header ----------------------------------------------------------- */

void spk_msg_header_write(uint8_t out[22], const spk_msg_header *h) {
  out[0] = SPK_MSG_HEADER_SIZE;
  out[1] = h->info1;
  out[2] = h->info2;
  out[3] = h->info3;
  out[4] = h->info4;
  out[5] = h->result_code;
  spk_put_be32(out + 6, h->generation);
  spk_put_be32(out + 10, h->record_ttl);
  spk_put_be32(out + 14, h->transaction_ttl);
  spk_put_be16(out + 18, h->n_fields);
  spk_put_be16(out + 20, h->n_ops);
}

void spk_msg_header_read(const uint8_t in[22], spk_msg_header *h) {
  h->header_sz = in[0];
  h->info1 = in[1];
  h->info2 = in[2];
  h->info3 = in[3];
  h->info4 = in[4];
  h->result_code = in[5];
  h->generation = spk_be32(in + 6);
  h->record_ttl = spk_be32(in + 10);
  h->transaction_ttl = spk_be32(in + 14);
  h->n_fields = spk_be16(in + 18);
  h->n_ops = spk_be16(in + 20);
}

/* ---- writer ------------------------------------------------------------------ */

size_t spk_msg_begin(spk_buf *b, const spk_msg_header *h) {
  size_t start = b->len;
  uint8_t *p = spk_buf_extend(b, SPK_PROTO_HEADER_SIZE + SPK_MSG_HEADER_SIZE);
  if (SPK_UNLIKELY(!p)) return (size_t)-1;
  spk_proto_write(p, SPK_PROTO_MSG, 0);
  spk_msg_header_write(p + SPK_PROTO_HEADER_SIZE, h);
  return start;
}

int spk_msg_end(spk_buf *b, size_t start, uint16_t n_fields, uint16_t n_ops) {
  if (SPK_UNLIKELY(start > b->len ||
                   b->len - start < SPK_PROTO_HEADER_SIZE + SPK_MSG_HEADER_SIZE))
    return SPK_ERR_PARAM;
  size_t body = b->len - start - SPK_PROTO_HEADER_SIZE;
  if (SPK_UNLIKELY(body > SPK_PROTO_SIZE_MAX)) return SPK_ERR_PARAM;
  uint8_t *p = b->data + start;
  spk_proto_write(p, SPK_PROTO_MSG, body);
  spk_put_be16(p + SPK_PROTO_HEADER_SIZE + 18, n_fields);
  spk_put_be16(p + SPK_PROTO_HEADER_SIZE + 20, n_ops);
  return 0;
}

uint8_t *spk_msg_field_reserve(spk_buf *b, uint8_t type, size_t len) {
  /* The wire size is len + 1 in a u32; anything near that is far beyond
   * SPK_PROTO_SIZE_MAX anyway, so refuse it here rather than truncate. */
  if (SPK_UNLIKELY(len > SPK_PROTO_SIZE_MAX)) return NULL;
  uint8_t *p = spk_buf_extend(b, SPK_FIELD_HEADER_SIZE + len);
  if (SPK_UNLIKELY(!p)) return NULL;
  spk_put_be32(p, (uint32_t)len + 1);
  p[4] = type;
  return p + SPK_FIELD_HEADER_SIZE;
}

int spk_msg_field(spk_buf *b, uint8_t type, const void *data, size_t len) {
  uint8_t *p = spk_msg_field_reserve(b, type, len);
  if (SPK_UNLIKELY(!p))
    return len > SPK_PROTO_SIZE_MAX ? SPK_ERR_PARAM : SPK_ERR_CLIENT;
  if (len) memcpy(p, data, len);
  return 0;
}

/* Write an op header with op_sz for value_len bytes; returns where the value
 * goes, or NULL on OOM / oversized input. */
static inline uint8_t *op_header(spk_buf *b, uint8_t op, uint8_t particle,
                                 const char *name, size_t name_len,
                                 size_t value_len) {
  if (SPK_UNLIKELY(name_len > 255 || value_len > SPK_PROTO_SIZE_MAX))
    return NULL;
  uint8_t *p = spk_buf_extend(b, SPK_OP_HEADER_SIZE + name_len + value_len);
  if (SPK_UNLIKELY(!p)) return NULL;
  spk_put_be32(p, (uint32_t)(4 + name_len + value_len));
  p[4] = op;
  p[5] = particle;
  p[6] = 0;
  p[7] = (uint8_t)name_len;
  if (name_len) memcpy(p + SPK_OP_HEADER_SIZE, name, name_len);
  return p + SPK_OP_HEADER_SIZE + name_len;
}

size_t spk_msg_op_begin(spk_buf *b, uint8_t op, uint8_t particle,
                        const char *name, size_t name_len) {
  size_t off = b->len;
  if (SPK_UNLIKELY(!op_header(b, op, particle, name, name_len, 0)))
    return (size_t)-1;
  return off;
}

void spk_msg_op_end(spk_buf *b, size_t op_off) {
  /* Tolerate a failed spk_msg_op_begin so callers may check once at the
   * end; never write outside the buffer. */
  if (SPK_UNLIKELY(op_off > b->len || b->len - op_off < SPK_OP_HEADER_SIZE))
    return;
  spk_put_be32(b->data + op_off, (uint32_t)(b->len - op_off - 4));
}

int spk_msg_op_raw(spk_buf *b, uint8_t op, uint8_t particle, const char *name,
                   size_t name_len, const void *value, size_t value_len) {
  uint8_t *v = op_header(b, op, particle, name, name_len, value_len);
  if (SPK_UNLIKELY(!v))
    return (name_len > 255 || value_len > SPK_PROTO_SIZE_MAX) ? SPK_ERR_PARAM
                                                              : SPK_ERR_CLIENT;
  if (value_len) memcpy(v, value, value_len);
  return 0;
}

int spk_msg_op_int(spk_buf *b, uint8_t op, const char *name, size_t name_len,
                   int64_t v) {
  uint8_t *p = op_header(b, op, SPK_PARTICLE_INTEGER, name, name_len, 8);
  if (SPK_UNLIKELY(!p)) return name_len > 255 ? SPK_ERR_PARAM : SPK_ERR_CLIENT;
  spk_put_be64(p, (uint64_t)v);
  return 0;
}

int spk_msg_op_float(spk_buf *b, uint8_t op, const char *name, size_t name_len,
                     double v) {
  uint8_t *p = op_header(b, op, SPK_PARTICLE_FLOAT, name, name_len, 8);
  if (SPK_UNLIKELY(!p)) return name_len > 255 ? SPK_ERR_PARAM : SPK_ERR_CLIENT;
  uint64_t bits;
  memcpy(&bits, &v, 8);
  spk_put_be64(p, bits);
  return 0;
}

int spk_msg_op_bool(spk_buf *b, uint8_t op, const char *name, size_t name_len,
                    bool v) {
  uint8_t *p = op_header(b, op, SPK_PARTICLE_BOOL, name, name_len, 1);
  if (SPK_UNLIKELY(!p)) return name_len > 255 ? SPK_ERR_PARAM : SPK_ERR_CLIENT;
  p[0] = v ? 1 : 0;
  return 0;
}

/* ---- reader ------------------------------------------------------------------ */

int spk_msg_parse(const uint8_t *p, size_t len, spk_msg_view *v, size_t *used,
                  spk_error *err) {
  if (SPK_UNLIKELY(len < SPK_MSG_HEADER_SIZE))
    return spk_error_set(err, SPK_ERR_PROTOCOL,
                         "as_msg truncated: %zu bytes, header needs %d", len,
                         SPK_MSG_HEADER_SIZE);
  spk_msg_header_read(p, &v->h);
  /* The server always sends 22; a larger header_sz is honoured (the extra
   * bytes are skipped) because that is how the field is defined. */
  if (SPK_UNLIKELY(v->h.header_sz < SPK_MSG_HEADER_SIZE))
    return spk_error_set(err, SPK_ERR_PROTOCOL, "bad as_msg header_sz %u",
                         (unsigned)v->h.header_sz);
  if (SPK_UNLIKELY(v->h.header_sz > len))
    return spk_error_set(err, SPK_ERR_PROTOCOL,
                         "as_msg header_sz %u exceeds %zu available bytes",
                         (unsigned)v->h.header_sz, len);

  const uint8_t *q = p + v->h.header_sz;
  const uint8_t *end = p + len;
  /* Cheap up-front bound: every field takes >= 5 bytes, every op >= 8. */
  size_t min_need = (size_t)v->h.n_fields * SPK_FIELD_HEADER_SIZE +
                    (size_t)v->h.n_ops * SPK_OP_HEADER_SIZE;
  if (SPK_UNLIKELY(min_need > (size_t)(end - q)))
    return spk_error_set(err, SPK_ERR_PROTOCOL,
                         "as_msg claims %u fields and %u ops but only %zu "
                         "bytes follow the header",
                         (unsigned)v->h.n_fields, (unsigned)v->h.n_ops,
                         (size_t)(end - q));

  v->fields = q;
  for (uint32_t i = 0; i < v->h.n_fields; i++) {
    size_t left = (size_t)(end - q);
    if (SPK_UNLIKELY(left < SPK_FIELD_HEADER_SIZE))
      return spk_error_set(err, SPK_ERR_PROTOCOL, "field %u truncated", i);
    uint32_t sz = spk_be32(q);
    if (SPK_UNLIKELY(sz == 0))
      return spk_error_set(err, SPK_ERR_PROTOCOL, "field %u has size 0", i);
    if (SPK_UNLIKELY(sz > left - 4))
      return spk_error_set(err, SPK_ERR_PROTOCOL,
                           "field %u (type %u) size %u exceeds %zu available "
                           "bytes",
                           i, (unsigned)q[4], sz, left - 4);
    q += 4 + (size_t)sz;
  }

  v->ops = q;
  for (uint32_t i = 0; i < v->h.n_ops; i++) {
    size_t left = (size_t)(end - q);
    if (SPK_UNLIKELY(left < SPK_OP_HEADER_SIZE))
      return spk_error_set(err, SPK_ERR_PROTOCOL, "op %u truncated", i);
    uint32_t sz = spk_be32(q);
    uint8_t name_len = q[7];
    if (SPK_UNLIKELY(sz < 4u + name_len))
      return spk_error_set(err, SPK_ERR_PROTOCOL,
                           "op %u size %u smaller than its header and name "
                           "(%u)",
                           i, sz, 4u + name_len);
    if (SPK_UNLIKELY(sz > left - 4))
      return spk_error_set(err, SPK_ERR_PROTOCOL,
                           "op %u size %u exceeds %zu available bytes", i, sz,
                           left - 4);
    q += 4 + (size_t)sz;
  }

  v->end = q;
  if (used) *used = (size_t)(q - p);
  return 0;
}

int spk_msg_next_field(spk_msg_iter *it, spk_field_view *f) {
  if (!it->left) return 0;
  const uint8_t *q = it->p;
  uint32_t sz = spk_be32(q);
  f->type = q[4];
  f->len = sz - 1;
  f->data = q + SPK_FIELD_HEADER_SIZE;
  it->p = q + 4 + sz;
  it->left--;
  return 1;
}

int spk_msg_next_op(spk_msg_iter *it, spk_op_view *o) {
  if (!it->left) return 0;
  const uint8_t *q = it->p;
  uint32_t sz = spk_be32(q);
  o->op = q[4];
  o->particle = q[5];
  o->flags = q[6];
  o->name_len = q[7];
  o->name = (const char *)(q + SPK_OP_HEADER_SIZE);
  o->value_len = sz - 4 - o->name_len;
  o->value = q + SPK_OP_HEADER_SIZE + o->name_len;
  it->p = q + 4 + sz;
  it->left--;
  return 1;
}

int spk_msg_find_field(const spk_msg_view *v, uint8_t type, spk_field_view *f) {
  spk_msg_iter it = spk_msg_fields(v);
  while (spk_msg_next_field(&it, f))
    if (f->type == type) return 1;
  return 0;
}

/* ---- particles ----------------------------------------------------------------- */

/* Two's complement reinterpretation without implementation-defined casts. */
static inline int64_t u64_to_i64(uint64_t u) {
  return u <= (uint64_t)INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

int spk_particle_int(const uint8_t *v, uint32_t len, int64_t *out) {
  switch (len) {
    case 8: *out = u64_to_i64(spk_be64(v)); return 0;
    /* Shorter widths are unsigned on the server side too. */
    case 4: *out = (int64_t)spk_be32(v); return 0;
    case 2: *out = (int64_t)spk_be16(v); return 0;
    case 1: *out = (int64_t)v[0]; return 0;
    default: return SPK_ERR_PROTOCOL;
  }
}

int spk_particle_float(const uint8_t *v, uint32_t len, double *out) {
  if (SPK_UNLIKELY(len != 8)) return SPK_ERR_PROTOCOL;
  uint64_t bits = spk_be64(v);
  memcpy(out, &bits, 8);
  return 0;
}

int spk_particle_bool(const uint8_t *v, uint32_t len, bool *out) {
  if (SPK_UNLIKELY(len != 1 || v[0] > 1)) return SPK_ERR_PROTOCOL;
  *out = v[0] != 0;
  return 0;
}

int spk_particle_geojson(const uint8_t *v, uint32_t len, const char **json,
                         uint32_t *json_len) {
  if (SPK_UNLIKELY(len < 3)) return SPK_ERR_PROTOCOL;
  uint32_t ncells = spk_be16(v + 1);
  uint32_t skip = 3 + 8 * ncells; /* <= 3 + 8 * 65535, no overflow */
  if (SPK_UNLIKELY(skip > len)) return SPK_ERR_PROTOCOL;
  *json = (const char *)(v + skip);
  *json_len = len - skip;
  return 0;
}

int64_t spk_void_time_to_ttl(uint32_t void_time, uint64_t now_unix_s) {
  if (void_time == 0) return -1;
  uint64_t now_cl =
      now_unix_s > SPK_CITRUSLEAF_EPOCH ? now_unix_s - SPK_CITRUSLEAF_EPOCH : 0;
  return void_time > now_cl ? (int64_t)(void_time - now_cl) : 1;
}
