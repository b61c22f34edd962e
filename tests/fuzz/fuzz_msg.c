/*
 * fuzz_msg.c - libFuzzer target for the as_msg reader (and writer).
 *
 * Input: a stream of proto messages; once framing fails, the rest is read
 * as raw concatenated as_msgs.  Every accepted as_msg is walked completely:
 * each field and op byte is touched (so a view past the input is an ASan
 * report), particles are decoded, LIST / MAP values are pulled item by
 * item, and the message is re-encoded with the writer and compared with
 * the input bytes.
 */
#include <stdlib.h>

#include "spk_msgpack.h"
#include "spk_proto.h"

#define CHECK(c)                 \
  do {                           \
    if (!(c)) __builtin_trap();  \
  } while (0)

static volatile uint8_t sink;

static void touch(const uint8_t *p, size_t n) {
  uint8_t x = 0;
  for (size_t i = 0; i < n; i++) x ^= p[i];
  sink ^= x;
}

/* Pull-walk one msgpack value; agree with spk_mp_validate. */
static void walk_msgpack(const uint8_t *p, size_t n) {
  int valid = spk_mp_validate(p, n);
  spk_mp_reader r;
  spk_mp_reader_init(&r, p, n);
  uint64_t left = 1;
  int ok = 1;
  while (left) {
    spk_mp_item it;
    if (spk_mp_next(&r, &it)) {
      ok = 0;
      break;
    }
    left--;
    switch (it.type) {
      case SPK_MP_ARRAY: left += it.v.n; break;
      case SPK_MP_MAP: left += 2 * (uint64_t)it.v.n; break;
      case SPK_MP_STR:
      case SPK_MP_BIN: {
        touch(it.v.s.p, it.v.s.len);
        uint8_t pt;
        const uint8_t *d;
        uint32_t len;
        if (spk_mp_particle_str(&it, &pt, &d, &len) == 0)
          CHECK(d + len == it.v.s.p + it.v.s.len);
        else
          CHECK(it.v.s.len == 0);
        break;
      }
      case SPK_MP_EXT: touch(it.v.s.p, it.v.s.len); break;
      default: break;
    }
    CHECK(r.p <= r.end);
  }
  /* validate == 0 means one complete object, so the walk must agree (the
   * walk has no depth limit, so the converse need not hold). */
  if (valid == 0) CHECK(ok && r.p == r.end);

  spk_mp_reader_init(&r, p, n);
  if (spk_mp_skip(&r) == 0) CHECK(r.p <= r.end);
}

static void check_particle(const spk_op_view *o) {
  int64_t i;
  double d;
  bool b;
  const char *json;
  uint32_t jl;
  switch (o->particle) {
    case SPK_PARTICLE_INTEGER:
      if (spk_particle_int(o->value, o->value_len, &i) == 0)
        CHECK(o->value_len == 1 || o->value_len == 2 || o->value_len == 4 ||
              o->value_len == 8);
      break;
    case SPK_PARTICLE_FLOAT:
      if (spk_particle_float(o->value, o->value_len, &d) == 0)
        CHECK(o->value_len == 8);
      break;
    case SPK_PARTICLE_BOOL:
      if (spk_particle_bool(o->value, o->value_len, &b) == 0)
        CHECK(o->value_len == 1);
      break;
    case SPK_PARTICLE_GEOJSON:
      if (spk_particle_geojson(o->value, o->value_len, &json, &jl) == 0) {
        CHECK((const uint8_t *)json + jl == o->value + o->value_len);
        touch((const uint8_t *)json, jl);
      }
      break;
    case SPK_PARTICLE_LIST:
    case SPK_PARTICLE_MAP:
      walk_msgpack(o->value, o->value_len);
      break;
    default:
      break;
  }
}

/* Rebuild the message with the writer; with a 22-byte header and no op
 * flags the bytes must be identical. */
static void reencode(const spk_msg_view *v, const uint8_t *orig, size_t used) {
  spk_buf b = {0};
  size_t start = spk_msg_begin(&b, &v->h);
  CHECK(start == 0);
  spk_msg_iter it = spk_msg_fields(v);
  spk_field_view f;
  while (spk_msg_next_field(&it, &f))
    CHECK(spk_msg_field(&b, f.type, f.data, f.len) == 0);
  it = spk_msg_ops(v);
  spk_op_view o;
  int flags = 0;
  while (spk_msg_next_op(&it, &o)) {
    flags |= o.flags;
    /* Alternate between the one-call and the begin/end writers. */
    if (o.value_len & 1) {
      size_t off = spk_msg_op_begin(&b, o.op, o.particle, o.name, o.name_len);
      CHECK(off != (size_t)-1);
      CHECK(spk_buf_append(&b, o.value, o.value_len) == 0);
      spk_msg_op_end(&b, off);
    } else {
      CHECK(spk_msg_op_raw(&b, o.op, o.particle, o.name, o.name_len, o.value,
                           o.value_len) == 0);
    }
  }
  CHECK(spk_msg_end(&b, start, v->h.n_fields, v->h.n_ops) == 0);
  CHECK(b.len == SPK_PROTO_HEADER_SIZE + used);
  if (!flags) CHECK(memcmp(b.data + SPK_PROTO_HEADER_SIZE, orig, used) == 0);

  spk_msg_view w;
  size_t used2;
  CHECK(spk_msg_parse(b.data + SPK_PROTO_HEADER_SIZE, used, &w, &used2,
                      NULL) == 0);
  CHECK(used2 == used);
  spk_buf_free(&b);
}

static void walk_body(const uint8_t *p, size_t n) {
  size_t off = 0;
  while (off < n) {
    spk_msg_view v;
    size_t used = 0;
    spk_error err;
    if (spk_msg_parse(p + off, n - off, &v, &used, &err)) {
      CHECK(err.code == SPK_ERR_PROTOCOL && err.message[0]);
      return;
    }
    CHECK(used >= SPK_MSG_HEADER_SIZE && used <= n - off);
    CHECK(v.end == p + off + used);

    spk_msg_iter it = spk_msg_fields(&v);
    spk_field_view f;
    unsigned nf = 0;
    while (spk_msg_next_field(&it, &f)) {
      CHECK(f.data >= p + off && f.data + f.len <= v.ops);
      touch(f.data, f.len);
      nf++;
    }
    CHECK(nf == v.h.n_fields);
    if (v.h.n_fields) {
      spk_field_view g;
      CHECK(spk_msg_find_field(&v, f.type, &g));
    }

    it = spk_msg_ops(&v);
    spk_op_view o;
    unsigned no = 0;
    while (spk_msg_next_op(&it, &o)) {
      CHECK((const uint8_t *)o.name >= v.ops);
      CHECK(o.value + o.value_len <= v.end);
      touch((const uint8_t *)o.name, o.name_len);
      touch(o.value, o.value_len);
      check_particle(&o);
      no++;
    }
    CHECK(no == v.h.n_ops);
    CHECK(it.p == v.end);

    if (v.h.header_sz == SPK_MSG_HEADER_SIZE) reencode(&v, p + off, used);
    (void)spk_void_time_to_ttl(v.h.record_ttl, 1795304128u);
    off += used;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  while (size - off >= SPK_PROTO_HEADER_SIZE) {
    spk_proto pr;
    spk_error err;
    if (spk_proto_check(data + off, SPK_PROTO_MSG, &pr, &err)) {
      CHECK(err.code == SPK_ERR_PROTOCOL);
      break;
    }
    CHECK(pr.size <= SPK_PROTO_SIZE_MAX);
    size_t avail = size - off - SPK_PROTO_HEADER_SIZE;
    size_t body = pr.size < avail ? (size_t)pr.size : avail;
    walk_body(data + off + SPK_PROTO_HEADER_SIZE, body);
    off += SPK_PROTO_HEADER_SIZE + body;
  }
  /* Whatever is left (or everything, for unframed input) as raw as_msgs. */
  if (off < size) walk_body(data + off, size - off);
  return 0;
}
