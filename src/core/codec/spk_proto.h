/*
 * spk_proto.h - Aerospike wire framing and as_msg encode/decode.  No I/O.
 *
 * Layout reference: protocol-core sections 1, 5, 6, 7, 8.  All multi-byte
 * integers are big-endian unless a name says _le.
 *
 * Writing: build a message into a spk_buf with spk_msg_begin(), then fields,
 * then ops, then spk_msg_end() which patches the proto size and the
 * n_fields / n_ops counts.  Nothing is allocated beyond the buffer.
 *
 * Reading: spk_msg_parse() validates one as_msg completely (every field and
 * op length inside the bounds given) and returns a view into the caller's
 * bytes; iterating fields/ops of a parsed view cannot read out of bounds.
 */
#ifndef SPK_PROTO_H
#define SPK_PROTO_H

#include "../spk_common.h"

/* ---- proto header (8 bytes) ------------------------------------------ */

#define SPK_PROTO_VERSION 2
#define SPK_PROTO_HEADER_SIZE 8
#define SPK_PROTO_SIZE_MAX (128u * 1024u * 1024u)

enum spk_proto_type {
  SPK_PROTO_INFO = 1,
  SPK_PROTO_ADMIN = 2,
  SPK_PROTO_MSG = 3,
  SPK_PROTO_COMPRESSED = 4,
  SPK_PROTO_XDR = 5
};

typedef struct spk_proto {
  uint8_t version;
  uint8_t type;
  uint64_t size; /* body bytes after the 8-byte header */
} spk_proto;

static inline void spk_proto_write(uint8_t out[8], uint8_t type, uint64_t size) {
  spk_put_be64(out, (uint64_t)SPK_PROTO_VERSION << 56 | (uint64_t)type << 48 |
                        (size & 0xFFFFFFFFFFFFull));
}

/* Decode without validation. */
static inline void spk_proto_read(const uint8_t in[8], spk_proto *p) {
  uint64_t v = spk_be64(in);
  p->version = (uint8_t)(v >> 56);
  p->type = (uint8_t)(v >> 48);
  p->size = v & 0xFFFFFFFFFFFFull;
}

/*
 * Decode and validate a header received by a client: version 2, type equal
 * to `expect_type` (or 3/4 when expect_type is SPK_PROTO_MSG), size not above
 * SPK_PROTO_SIZE_MAX.  Returns 0 or SPK_ERR_PROTOCOL with a message.
 */
int spk_proto_check(const uint8_t in[8], uint8_t expect_type, spk_proto *p,
                    spk_error *err);

/* ---- as_msg header (22 bytes) ---------------------------------------- */

#define SPK_MSG_HEADER_SIZE 22

/* info1 */
#define SPK_INFO1_READ 0x01
#define SPK_INFO1_GET_ALL 0x02
#define SPK_INFO1_SHORT_QUERY 0x04
#define SPK_INFO1_BATCH 0x08
#define SPK_INFO1_XDR 0x10
#define SPK_INFO1_GET_NOBINDATA 0x20
#define SPK_INFO1_READ_MODE_AP_ALL 0x40
#define SPK_INFO1_COMPRESS_RESPONSE 0x80
/* info2 */
#define SPK_INFO2_WRITE 0x01
#define SPK_INFO2_DELETE 0x02
#define SPK_INFO2_GENERATION 0x04
#define SPK_INFO2_GENERATION_GT 0x08
#define SPK_INFO2_DURABLE_DELETE 0x10
#define SPK_INFO2_CREATE_ONLY 0x20
#define SPK_INFO2_RELAX_AP_LONG_QUERY 0x40
#define SPK_INFO2_RESPOND_ALL_OPS 0x80
/* info3 */
#define SPK_INFO3_LAST 0x01
#define SPK_INFO3_COMMIT_MASTER 0x02
#define SPK_INFO3_PARTITION_DONE 0x04
#define SPK_INFO3_UPDATE_ONLY 0x08
#define SPK_INFO3_CREATE_OR_REPLACE 0x10
#define SPK_INFO3_REPLACE_ONLY 0x20
#define SPK_INFO3_SC_READ_TYPE 0x40
#define SPK_INFO3_SC_READ_RELAX 0x80
/* info4 */
#define SPK_INFO4_TXN_VERIFY_READ 0x01
#define SPK_INFO4_TXN_ROLL_FORWARD 0x02
#define SPK_INFO4_TXN_ROLL_BACK 0x04
#define SPK_INFO4_TXN_ON_LOCKING_ONLY 0x10

/* record_ttl specials on writes (protocol-core 5.5) */
#define SPK_TTL_NAMESPACE_DEFAULT 0u
#define SPK_TTL_NEVER_EXPIRE 0xFFFFFFFFu
#define SPK_TTL_DONT_UPDATE 0xFFFFFFFEu
/* Seconds between the Unix epoch and the Citrusleaf epoch (2010-01-01). */
#define SPK_CITRUSLEAF_EPOCH 1262304000u

typedef struct spk_msg_header {
  uint8_t header_sz; /* 22 */
  uint8_t info1, info2, info3, info4;
  uint8_t result_code;
  uint32_t generation;
  uint32_t record_ttl;
  uint32_t transaction_ttl;
  uint16_t n_fields;
  uint16_t n_ops;
} spk_msg_header;

void spk_msg_header_write(uint8_t out[22], const spk_msg_header *h);
void spk_msg_header_read(const uint8_t in[22], spk_msg_header *h);

/* ---- fields ------------------------------------------------------------ */

enum spk_field_type {
  SPK_FIELD_NAMESPACE = 0,
  SPK_FIELD_SETNAME = 1,
  SPK_FIELD_KEY = 2,
  SPK_FIELD_RECORD_VERSION = 3,
  SPK_FIELD_DIGEST = 4,
  SPK_FIELD_TXN_ID = 5,
  SPK_FIELD_TXN_DEADLINE = 6,
  SPK_FIELD_TASK_ID = 7,
  SPK_FIELD_SOCKET_TIMEOUT = 9,
  SPK_FIELD_RPS = 10,
  SPK_FIELD_PID_ARRAY = 11,
  SPK_FIELD_DIGEST_ARRAY = 12,
  SPK_FIELD_MAX_RECORDS = 13,
  SPK_FIELD_BVAL_ARRAY = 15,
  SPK_FIELD_INDEX_NAME = 21,
  SPK_FIELD_INDEX_RANGE = 22,
  SPK_FIELD_INDEX_CONTEXT = 23,
  SPK_FIELD_INDEX_EXPRESSION = 24,
  SPK_FIELD_INDEX_TYPE = 26,
  SPK_FIELD_UDF_PACKAGE_NAME = 30,
  SPK_FIELD_UDF_FUNCTION = 31,
  SPK_FIELD_UDF_ARGLIST = 32,
  SPK_FIELD_UDF_OP = 33,
  SPK_FIELD_QUERY_BINS = 40,
  SPK_FIELD_BATCH_INDEX = 41,
  SPK_FIELD_FILTER = 43,
  SPK_FIELD_ERROR_DETAILS = 45
};

#define SPK_FIELD_HEADER_SIZE 5 /* u32 size (= len + 1), u8 type */

/* ---- ops and particles -------------------------------------------------- */

enum spk_op_type {
  SPK_OP_READ = 1,
  SPK_OP_WRITE = 2,
  SPK_OP_CDT_READ = 3,
  SPK_OP_CDT_MODIFY = 4,
  SPK_OP_INCR = 5,
  SPK_OP_EXP_READ = 7,
  SPK_OP_EXP_MODIFY = 8,
  SPK_OP_APPEND = 9,
  SPK_OP_PREPEND = 10,
  SPK_OP_TOUCH = 11,
  SPK_OP_BITS_READ = 12,
  SPK_OP_BITS_MODIFY = 13,
  SPK_OP_DELETE_ALL = 14,
  SPK_OP_HLL_READ = 15,
  SPK_OP_HLL_MODIFY = 16
};

enum spk_particle_type {
  SPK_PARTICLE_NULL = 0,
  SPK_PARTICLE_INTEGER = 1,
  SPK_PARTICLE_FLOAT = 2,
  SPK_PARTICLE_STRING = 3,
  SPK_PARTICLE_BLOB = 4,
  SPK_PARTICLE_JAVA_BLOB = 7,
  SPK_PARTICLE_CSHARP_BLOB = 8,
  SPK_PARTICLE_PYTHON_BLOB = 9,
  SPK_PARTICLE_RUBY_BLOB = 10,
  SPK_PARTICLE_PHP_BLOB = 11,
  SPK_PARTICLE_ERLANG_BLOB = 12,
  SPK_PARTICLE_VECTOR = 16,
  SPK_PARTICLE_BOOL = 17,
  SPK_PARTICLE_HLL = 18,
  SPK_PARTICLE_MAP = 19,
  SPK_PARTICLE_LIST = 20,
  SPK_PARTICLE_GEOJSON = 23
};

#define SPK_OP_HEADER_SIZE 8 /* u32 op_sz, op, particle, flags, name_len */
#define SPK_BIN_NAME_MAX 15
#define SPK_NAMESPACE_MAX 31
#define SPK_SET_MAX 63

/* ---- message writer ------------------------------------------------------ */

/*
 * Start a type-3 message in b: reserves the proto header and writes the
 * as_msg header h (its n_fields / n_ops are patched by spk_msg_end).
 * Returns the offset of the message start in b, or (size_t)-1 on OOM.
 */
size_t spk_msg_begin(spk_buf *b, const spk_msg_header *h);

/*
 * Patch proto size (from start to b->len) and the counts.  Returns 0 or
 * SPK_ERR_PARAM when the message exceeds SPK_PROTO_SIZE_MAX.
 */
int spk_msg_end(spk_buf *b, size_t start, uint16_t n_fields, uint16_t n_ops);

/* Append a field of `len` data bytes; returns 0 or SPK_ERR_CLIENT (OOM),
 * SPK_ERR_PARAM when len > SPK_PROTO_SIZE_MAX. */
int spk_msg_field(spk_buf *b, uint8_t type, const void *data, size_t len);

/* Append a field header for `len` data bytes and return where the data goes
 * (the caller writes exactly len bytes there); NULL on OOM or when
 * len > SPK_PROTO_SIZE_MAX. */
uint8_t *spk_msg_field_reserve(spk_buf *b, uint8_t type, size_t len);

/*
 * Ops.  spk_msg_op_begin writes the op header for a value of unknown length
 * and returns its offset; append the value bytes to b, then call
 * spk_msg_op_end to patch op_sz.  name_len must be <= 255 (callers enforce
 * SPK_BIN_NAME_MAX themselves so the error can name the bin).
 * spk_msg_op_begin returns (size_t)-1 on OOM or name_len > 255;
 * spk_msg_op_end ignores such an offset.
 */
size_t spk_msg_op_begin(spk_buf *b, uint8_t op, uint8_t particle,
                        const char *name, size_t name_len);
void spk_msg_op_end(spk_buf *b, size_t op_off);

/* One-call ops with a fixed-size value.  Return 0 or SPK_ERR_CLIENT (OOM),
 * SPK_ERR_PARAM when name_len > 255 (or value_len > SPK_PROTO_SIZE_MAX). */
int spk_msg_op_raw(spk_buf *b, uint8_t op, uint8_t particle, const char *name,
                   size_t name_len, const void *value, size_t value_len);
int spk_msg_op_int(spk_buf *b, uint8_t op, const char *name, size_t name_len,
                   int64_t v);
int spk_msg_op_float(spk_buf *b, uint8_t op, const char *name, size_t name_len,
                     double v);
int spk_msg_op_bool(spk_buf *b, uint8_t op, const char *name, size_t name_len,
                    bool v);

/* ---- message reader ------------------------------------------------------ */

typedef struct spk_field_view {
  uint8_t type;
  uint32_t len;
  const uint8_t *data;
} spk_field_view;

typedef struct spk_op_view {
  uint8_t op;
  uint8_t particle;
  uint8_t flags;
  uint8_t name_len;
  const char *name;
  uint32_t value_len;
  const uint8_t *value;
} spk_op_view;

typedef struct spk_msg_view {
  spk_msg_header h;
  const uint8_t *fields; /* first field */
  const uint8_t *ops;    /* first op */
  const uint8_t *end;    /* one past the last op */
} spk_msg_view;

/*
 * Parse and fully validate one as_msg starting at p, with at most `len`
 * bytes available (for a single-record response: the whole proto body).
 * On success *used (may be NULL) receives the bytes this as_msg occupies
 * (header_sz + fields + ops), so stream readers can step to the next one;
 * a single-record reader should check *used == len.  header_sz < 22 is
 * rejected, a larger one is skipped.  An op's value is everything after its
 * name (the XDR-only has_lut flag is not interpreted).
 * Returns 0 or SPK_ERR_PROTOCOL (message says what was wrong).
 */
int spk_msg_parse(const uint8_t *p, size_t len, spk_msg_view *v, size_t *used,
                  spk_error *err);

/* Iterate the fields / ops of a view that spk_msg_parse accepted. */
typedef struct spk_msg_iter {
  const uint8_t *p;
  uint16_t left;
} spk_msg_iter;

static inline spk_msg_iter spk_msg_fields(const spk_msg_view *v) {
  spk_msg_iter it = {v->fields, v->h.n_fields};
  return it;
}
static inline spk_msg_iter spk_msg_ops(const spk_msg_view *v) {
  spk_msg_iter it = {v->ops, v->h.n_ops};
  return it;
}
/* Return 1 and fill *f / *o while items remain, 0 at the end. */
int spk_msg_next_field(spk_msg_iter *it, spk_field_view *f);
int spk_msg_next_op(spk_msg_iter *it, spk_op_view *o);

/* Find a field by type in a parsed view; 1 if found. */
int spk_msg_find_field(const spk_msg_view *v, uint8_t type, spk_field_view *f);

/* ---- particle values ------------------------------------------------------ */

/*
 * Decode fixed-width particles of a response op.  Aerospike returns INTEGER
 * as 8 bytes but accepts 1/2/4-byte values; spk_particle_int accepts 1, 2,
 * 4 (unsigned, as the server reads them) and 8 bytes (signed).  FLOAT must
 * be 8 bytes, BOOL 1 byte of value 0 or 1.  Return 0 or SPK_ERR_PROTOCOL.
 */
int spk_particle_int(const uint8_t *v, uint32_t len, int64_t *out);
int spk_particle_float(const uint8_t *v, uint32_t len, double *out);
int spk_particle_bool(const uint8_t *v, uint32_t len, bool *out);

/*
 * GeoJSON particle: u8 flags, u16 ncells, ncells * u64 cell ids, JSON text.
 * On success *json / *json_len point at the JSON text inside v.
 */
int spk_particle_geojson(const uint8_t *v, uint32_t len, const char **json,
                         uint32_t *json_len);

/* Void time (citrusleaf seconds, 0 = never) to TTL seconds as clients show
 * it: 0 -> -1 (never expires), else void_time - now, floored at 1. */
int64_t spk_void_time_to_ttl(uint32_t void_time, uint64_t now_unix_s);

#endif /* SPK_PROTO_H */
