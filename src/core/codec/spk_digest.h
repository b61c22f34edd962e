/*
 * spk_digest.h - RIPEMD-160 and Aerospike key digests (protocol-core 3.7, 4).
 *
 * digest = RIPEMD-160(set bytes || key particle type || key bytes);
 * the namespace is not hashed.  partition id = (d[0] | d[1] << 8) & 4095.
 */
#ifndef SPK_DIGEST_H
#define SPK_DIGEST_H

#include "../spk_common.h"

#define SPK_DIGEST_SIZE 20
#define SPK_N_PARTITIONS 4096

/* Streaming state.  The typedef is spk_ripemd160_ctx because a typedef
 * named spk_ripemd160 would clash with the one-shot function below (both
 * live in C's ordinary identifier namespace); `struct spk_ripemd160` is the
 * same type. */
typedef struct spk_ripemd160 {
  uint32_t h[5];
  uint64_t total;     /* bytes hashed so far */
  uint8_t block[64];
  uint32_t block_len; /* bytes waiting in block */
} spk_ripemd160_ctx;

void spk_ripemd160_init(spk_ripemd160_ctx *c);
void spk_ripemd160_update(spk_ripemd160_ctx *c, const void *data, size_t len);
void spk_ripemd160_final(spk_ripemd160_ctx *c, uint8_t out[SPK_DIGEST_SIZE]);
/* One-shot. */
void spk_ripemd160(const void *data, size_t len, uint8_t out[SPK_DIGEST_SIZE]);

/*
 * Key digest.  key_type is the particle type of the user key: INTEGER (1,
 * key = 8-byte big-endian), STRING (3, UTF-8), BLOB (4).  set may be NULL
 * when set_len is 0.
 */
void spk_key_digest(const char *set, size_t set_len, uint8_t key_type,
                    const uint8_t *key, size_t key_len,
                    uint8_t out[SPK_DIGEST_SIZE]);
/* Integer key convenience: encodes v as 8-byte big-endian, type INTEGER. */
void spk_key_digest_int(const char *set, size_t set_len, int64_t v,
                        uint8_t out[SPK_DIGEST_SIZE]);

static inline uint32_t spk_partition_id(const uint8_t d[SPK_DIGEST_SIZE]) {
  return ((uint32_t)d[0] | (uint32_t)d[1] << 8) & (SPK_N_PARTITIONS - 1);
}

#endif /* SPK_DIGEST_H */
