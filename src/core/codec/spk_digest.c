/*
 * spk_digest.c - RIPEMD-160 (Dobbertin, Bosselaers, Preneel 1996) and the
 * Aerospike key digest built on it (protocol-core 3.7, 4).
 *
 * Written from the published algorithm description.  The compression
 * function is fully unrolled: keys are short, so nearly every digest is one
 * or two blocks and the per-step table lookups of a looped version would
 * dominate.
 */
#include "spk_digest.h"

#include "spk_proto.h"

static inline uint32_t rol(uint32_t x, unsigned s) {
  return (x << s) | (x >> (32 - s));
}

static inline uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}

static inline void put_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

/* The five boolean functions of the spec. */
#define F1(x, y, z) ((x) ^ (y) ^ (z))
#define F2(x, y, z) (((x) & (y)) | (~(x) & (z)))
#define F3(x, y, z) (((x) | ~(y)) ^ (z))
#define F4(x, y, z) (((x) & (z)) | ((y) & ~(z)))
#define F5(x, y, z) ((x) ^ ((y) | ~(z)))

/*
 * One step: T = rol(A + f(B,C,D) + X[r] + K, s) + E, then the registers
 * shift (A<-E, E<-D, D<-rol(C,10), C<-B, B<-T).  Instead of moving values,
 * the callers rotate the argument order, so the step updates a and c in
 * place.
 */
#define STEP(f, k, a, b, c, d, e, r, s)      \
  do {                                       \
    (a) += f(b, c, d) + X[r] + (k);          \
    (a) = rol((a), (s)) + (e);               \
    (c) = rol((c), 10);                      \
  } while (0)

/* Left line: f1..f5 with K = 0, 2^30*sqrt(2), sqrt(3), sqrt(5), sqrt(7). */
#define L1(a, b, c, d, e, r, s) STEP(F1, 0x00000000u, a, b, c, d, e, r, s)
#define L2(a, b, c, d, e, r, s) STEP(F2, 0x5a827999u, a, b, c, d, e, r, s)
#define L3(a, b, c, d, e, r, s) STEP(F3, 0x6ed9eba1u, a, b, c, d, e, r, s)
#define L4(a, b, c, d, e, r, s) STEP(F4, 0x8f1bbcdcu, a, b, c, d, e, r, s)
#define L5(a, b, c, d, e, r, s) STEP(F5, 0xa953fd4eu, a, b, c, d, e, r, s)
/* Right line: f5..f1 with K' = 2^30 * cube roots of 2, 3, 5, 7, then 0. */
#define R1(a, b, c, d, e, r, s) STEP(F5, 0x50a28be6u, a, b, c, d, e, r, s)
#define R2(a, b, c, d, e, r, s) STEP(F4, 0x5c4dd124u, a, b, c, d, e, r, s)
#define R3(a, b, c, d, e, r, s) STEP(F3, 0x6d703ef3u, a, b, c, d, e, r, s)
#define R4(a, b, c, d, e, r, s) STEP(F2, 0x7a6d76e9u, a, b, c, d, e, r, s)
#define R5(a, b, c, d, e, r, s) STEP(F1, 0x00000000u, a, b, c, d, e, r, s)

/* Arguments after the registers: message word index r(j) / r'(j) and
 * rotation s(j) / s'(j), as tabulated in the spec. */
static void compress(uint32_t h[5], const uint8_t block[64]) {
  uint32_t X[16];
  for (int i = 0; i < 16; i++) X[i] = le32(block + 4 * i);

  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  uint32_t a2 = a, b2 = b, c2 = c, d2 = d, e2 = e;

  L1(a, b, c, d, e,  0, 11);
  L1(e, a, b, c, d,  1, 14);
  L1(d, e, a, b, c,  2, 15);
  L1(c, d, e, a, b,  3, 12);
  L1(b, c, d, e, a,  4,  5);
  L1(a, b, c, d, e,  5,  8);
  L1(e, a, b, c, d,  6,  7);
  L1(d, e, a, b, c,  7,  9);
  L1(c, d, e, a, b,  8, 11);
  L1(b, c, d, e, a,  9, 13);
  L1(a, b, c, d, e, 10, 14);
  L1(e, a, b, c, d, 11, 15);
  L1(d, e, a, b, c, 12,  6);
  L1(c, d, e, a, b, 13,  7);
  L1(b, c, d, e, a, 14,  9);
  L1(a, b, c, d, e, 15,  8);

  L2(e, a, b, c, d,  7,  7);
  L2(d, e, a, b, c,  4,  6);
  L2(c, d, e, a, b, 13,  8);
  L2(b, c, d, e, a,  1, 13);
  L2(a, b, c, d, e, 10, 11);
  L2(e, a, b, c, d,  6,  9);
  L2(d, e, a, b, c, 15,  7);
  L2(c, d, e, a, b,  3, 15);
  L2(b, c, d, e, a, 12,  7);
  L2(a, b, c, d, e,  0, 12);
  L2(e, a, b, c, d,  9, 15);
  L2(d, e, a, b, c,  5,  9);
  L2(c, d, e, a, b,  2, 11);
  L2(b, c, d, e, a, 14,  7);
  L2(a, b, c, d, e, 11, 13);
  L2(e, a, b, c, d,  8, 12);

  L3(d, e, a, b, c,  3, 11);
  L3(c, d, e, a, b, 10, 13);
  L3(b, c, d, e, a, 14,  6);
  L3(a, b, c, d, e,  4,  7);
  L3(e, a, b, c, d,  9, 14);
  L3(d, e, a, b, c, 15,  9);
  L3(c, d, e, a, b,  8, 13);
  L3(b, c, d, e, a,  1, 15);
  L3(a, b, c, d, e,  2, 14);
  L3(e, a, b, c, d,  7,  8);
  L3(d, e, a, b, c,  0, 13);
  L3(c, d, e, a, b,  6,  6);
  L3(b, c, d, e, a, 13,  5);
  L3(a, b, c, d, e, 11, 12);
  L3(e, a, b, c, d,  5,  7);
  L3(d, e, a, b, c, 12,  5);

  L4(c, d, e, a, b,  1, 11);
  L4(b, c, d, e, a,  9, 12);
  L4(a, b, c, d, e, 11, 14);
  L4(e, a, b, c, d, 10, 15);
  L4(d, e, a, b, c,  0, 14);
  L4(c, d, e, a, b,  8, 15);
  L4(b, c, d, e, a, 12,  9);
  L4(a, b, c, d, e,  4,  8);
  L4(e, a, b, c, d, 13,  9);
  L4(d, e, a, b, c,  3, 14);
  L4(c, d, e, a, b,  7,  5);
  L4(b, c, d, e, a, 15,  6);
  L4(a, b, c, d, e, 14,  8);
  L4(e, a, b, c, d,  5,  6);
  L4(d, e, a, b, c,  6,  5);
  L4(c, d, e, a, b,  2, 12);

  L5(b, c, d, e, a,  4,  9);
  L5(a, b, c, d, e,  0, 15);
  L5(e, a, b, c, d,  5,  5);
  L5(d, e, a, b, c,  9, 11);
  L5(c, d, e, a, b,  7,  6);
  L5(b, c, d, e, a, 12,  8);
  L5(a, b, c, d, e,  2, 13);
  L5(e, a, b, c, d, 10, 12);
  L5(d, e, a, b, c, 14,  5);
  L5(c, d, e, a, b,  1, 12);
  L5(b, c, d, e, a,  3, 13);
  L5(a, b, c, d, e,  8, 14);
  L5(e, a, b, c, d, 11, 11);
  L5(d, e, a, b, c,  6,  8);
  L5(c, d, e, a, b, 15,  5);
  L5(b, c, d, e, a, 13,  6);

  R1(a2, b2, c2, d2, e2,  5,  8);
  R1(e2, a2, b2, c2, d2, 14,  9);
  R1(d2, e2, a2, b2, c2,  7,  9);
  R1(c2, d2, e2, a2, b2,  0, 11);
  R1(b2, c2, d2, e2, a2,  9, 13);
  R1(a2, b2, c2, d2, e2,  2, 15);
  R1(e2, a2, b2, c2, d2, 11, 15);
  R1(d2, e2, a2, b2, c2,  4,  5);
  R1(c2, d2, e2, a2, b2, 13,  7);
  R1(b2, c2, d2, e2, a2,  6,  7);
  R1(a2, b2, c2, d2, e2, 15,  8);
  R1(e2, a2, b2, c2, d2,  8, 11);
  R1(d2, e2, a2, b2, c2,  1, 14);
  R1(c2, d2, e2, a2, b2, 10, 14);
  R1(b2, c2, d2, e2, a2,  3, 12);
  R1(a2, b2, c2, d2, e2, 12,  6);

  R2(e2, a2, b2, c2, d2,  6,  9);
  R2(d2, e2, a2, b2, c2, 11, 13);
  R2(c2, d2, e2, a2, b2,  3, 15);
  R2(b2, c2, d2, e2, a2,  7,  7);
  R2(a2, b2, c2, d2, e2,  0, 12);
  R2(e2, a2, b2, c2, d2, 13,  8);
  R2(d2, e2, a2, b2, c2,  5,  9);
  R2(c2, d2, e2, a2, b2, 10, 11);
  R2(b2, c2, d2, e2, a2, 14,  7);
  R2(a2, b2, c2, d2, e2, 15,  7);
  R2(e2, a2, b2, c2, d2,  8, 12);
  R2(d2, e2, a2, b2, c2, 12,  7);
  R2(c2, d2, e2, a2, b2,  4,  6);
  R2(b2, c2, d2, e2, a2,  9, 15);
  R2(a2, b2, c2, d2, e2,  1, 13);
  R2(e2, a2, b2, c2, d2,  2, 11);

  R3(d2, e2, a2, b2, c2, 15,  9);
  R3(c2, d2, e2, a2, b2,  5,  7);
  R3(b2, c2, d2, e2, a2,  1, 15);
  R3(a2, b2, c2, d2, e2,  3, 11);
  R3(e2, a2, b2, c2, d2,  7,  8);
  R3(d2, e2, a2, b2, c2, 14,  6);
  R3(c2, d2, e2, a2, b2,  6,  6);
  R3(b2, c2, d2, e2, a2,  9, 14);
  R3(a2, b2, c2, d2, e2, 11, 12);
  R3(e2, a2, b2, c2, d2,  8, 13);
  R3(d2, e2, a2, b2, c2, 12,  5);
  R3(c2, d2, e2, a2, b2,  2, 14);
  R3(b2, c2, d2, e2, a2, 10, 13);
  R3(a2, b2, c2, d2, e2,  0, 13);
  R3(e2, a2, b2, c2, d2,  4,  7);
  R3(d2, e2, a2, b2, c2, 13,  5);

  R4(c2, d2, e2, a2, b2,  8, 15);
  R4(b2, c2, d2, e2, a2,  6,  5);
  R4(a2, b2, c2, d2, e2,  4,  8);
  R4(e2, a2, b2, c2, d2,  1, 11);
  R4(d2, e2, a2, b2, c2,  3, 14);
  R4(c2, d2, e2, a2, b2, 11, 14);
  R4(b2, c2, d2, e2, a2, 15,  6);
  R4(a2, b2, c2, d2, e2,  0, 14);
  R4(e2, a2, b2, c2, d2,  5,  6);
  R4(d2, e2, a2, b2, c2, 12,  9);
  R4(c2, d2, e2, a2, b2,  2, 12);
  R4(b2, c2, d2, e2, a2, 13,  9);
  R4(a2, b2, c2, d2, e2,  9, 12);
  R4(e2, a2, b2, c2, d2,  7,  5);
  R4(d2, e2, a2, b2, c2, 10, 15);
  R4(c2, d2, e2, a2, b2, 14,  8);

  R5(b2, c2, d2, e2, a2, 12,  8);
  R5(a2, b2, c2, d2, e2, 15,  5);
  R5(e2, a2, b2, c2, d2, 10, 12);
  R5(d2, e2, a2, b2, c2,  4,  9);
  R5(c2, d2, e2, a2, b2,  1, 12);
  R5(b2, c2, d2, e2, a2,  5,  5);
  R5(a2, b2, c2, d2, e2,  8, 14);
  R5(e2, a2, b2, c2, d2,  7,  6);
  R5(d2, e2, a2, b2, c2,  6,  8);
  R5(c2, d2, e2, a2, b2,  2, 13);
  R5(b2, c2, d2, e2, a2, 13,  6);
  R5(a2, b2, c2, d2, e2, 14,  5);
  R5(e2, a2, b2, c2, d2,  0, 15);
  R5(d2, e2, a2, b2, c2,  3, 13);
  R5(c2, d2, e2, a2, b2,  9, 11);
  R5(b2, c2, d2, e2, a2, 11, 11);

  uint32_t t = h[1] + c + d2;
  h[1] = h[2] + d + e2;
  h[2] = h[3] + e + a2;
  h[3] = h[4] + a + b2;
  h[4] = h[0] + b + c2;
  h[0] = t;
}

void spk_ripemd160_init(spk_ripemd160_ctx *c) {
  c->h[0] = 0x67452301u;
  c->h[1] = 0xefcdab89u;
  c->h[2] = 0x98badcfeu;
  c->h[3] = 0x10325476u;
  c->h[4] = 0xc3d2e1f0u;
  c->total = 0;
  c->block_len = 0;
}

void spk_ripemd160_update(spk_ripemd160_ctx *c, const void *data, size_t len) {
  if (!len) return; /* data may be NULL then */
  const uint8_t *p = data;
  c->total += len;
  if (c->block_len) {
    size_t n = 64 - c->block_len;
    if (n > len) n = len;
    memcpy(c->block + c->block_len, p, n);
    c->block_len += (uint32_t)n;
    p += n;
    len -= n;
    if (c->block_len < 64) return;
    compress(c->h, c->block);
    c->block_len = 0;
  }
  for (; len >= 64; p += 64, len -= 64) compress(c->h, p);
  if (len) memcpy(c->block, p, len);
  c->block_len = (uint32_t)len;
}

void spk_ripemd160_final(spk_ripemd160_ctx *c, uint8_t out[SPK_DIGEST_SIZE]) {
  /* MD4-style padding: 0x80, zeros to 56 mod 64, bit length as LE u64. */
  uint64_t bits = c->total << 3;
  uint32_t n = c->block_len;
  c->block[n++] = 0x80;
  if (n > 56) {
    memset(c->block + n, 0, 64 - n);
    compress(c->h, c->block);
    n = 0;
  }
  memset(c->block + n, 0, 56 - n);
  spk_put_le64(c->block + 56, bits);
  compress(c->h, c->block);
  for (int i = 0; i < 5; i++) put_le32(out + 4 * i, c->h[i]);
}

void spk_ripemd160(const void *data, size_t len, uint8_t out[SPK_DIGEST_SIZE]) {
  spk_ripemd160_ctx c;
  spk_ripemd160_init(&c);
  spk_ripemd160_update(&c, data, len);
  spk_ripemd160_final(&c, out);
}

void spk_key_digest(const char *set, size_t set_len, uint8_t key_type,
                    const uint8_t *key, size_t key_len,
                    uint8_t out[SPK_DIGEST_SIZE]) {
  spk_ripemd160_ctx c;
  spk_ripemd160_init(&c);
  if (set_len) spk_ripemd160_update(&c, set, set_len);
  spk_ripemd160_update(&c, &key_type, 1);
  if (key_len) spk_ripemd160_update(&c, key, key_len);
  spk_ripemd160_final(&c, out);
}

void spk_key_digest_int(const char *set, size_t set_len, int64_t v,
                        uint8_t out[SPK_DIGEST_SIZE]) {
  uint8_t key[8];
  spk_put_be64(key, (uint64_t)v);
  spk_key_digest(set, set_len, SPK_PARTICLE_INTEGER, key, 8, out);
}
