/*
 * spk_common.h - basics shared by every layer of the core: the error struct,
 * the growable byte buffer and big-endian load/store helpers.
 *
 * Conventions (all of src/core):
 *   - public symbols spk_, internal non-static symbols spk__, macros SPK_;
 *   - functions that can fail return int: 0 on success, a negative
 *     spk_result code (or a positive server result code) on failure, and
 *     fill the caller-owned spk_error when one is passed (NULL is allowed);
 *   - ownership is stated next to each declaration: "borrowed" pointers stay
 *     owned by the caller, "owned" results must be released by the caller
 *     with the named function.
 */
#ifndef SPK_COMMON_H
#define SPK_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "spk_result.h"

#if defined(__GNUC__) || defined(__clang__)
#define SPK_LIKELY(x) __builtin_expect(!!(x), 1)
#define SPK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SPK_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define SPK_LIKELY(x) (x)
#define SPK_UNLIKELY(x) (x)
#define SPK_PRINTF(f, a)
#endif

/*
 * Thread-locals of the hot path.  The core is linked into a dlopen'ed
 * extension, where the default TLS model calls __tls_get_addr on every
 * access; initial-exec is a plain fs-relative load.  Only a few small
 * variables use it, well within glibc's static TLS reserve for dlopen.
 */
#if defined(__GNUC__) || defined(__clang__)
#define SPK_TLS _Thread_local __attribute__((tls_model("initial-exec")))
#else
#define SPK_TLS _Thread_local
#endif

#define SPK_ERROR_MSG_SIZE 256

/*
 * Error details of a failed call.  code: negative = client-side status,
 * positive = server result code (spk_result.h).  in_doubt: a write may have
 * been applied by the server although the call failed.
 */
typedef struct spk_error {
  int code;
  bool in_doubt;
  char message[SPK_ERROR_MSG_SIZE];
} spk_error;

static inline void spk_error_reset(spk_error *err) {
  if (err) {
    err->code = 0;
    err->in_doubt = false;
    err->message[0] = '\0';
  }
}

/* Set code and a printf-style message; returns code.  err may be NULL. */
int spk_error_set(spk_error *err, int code, const char *fmt, ...)
    SPK_PRINTF(3, 4);
/* Set code with the table's default message; returns code. */
int spk_error_code(spk_error *err, int code);

/*
 * Growable byte buffer.  Owns data (malloc); release with spk_buf_free.
 * A zero-initialised spk_buf is a valid empty buffer.
 */
typedef struct spk_buf {
  uint8_t *data;
  size_t len;
  size_t cap;
} spk_buf;

/* Make room for at least `extra` more bytes; 0 or SPK_ERR_CLIENT (OOM). */
int spk_buf_reserve(spk_buf *b, size_t extra);
void spk_buf_free(spk_buf *b);

static inline int spk_buf_append(spk_buf *b, const void *p, size_t n) {
  if (SPK_UNLIKELY(b->cap - b->len < n) && spk_buf_reserve(b, n) != 0)
    return SPK_ERR_CLIENT;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* Reserve n bytes at the end and return a pointer to them (NULL on OOM). */
static inline uint8_t *spk_buf_extend(spk_buf *b, size_t n) {
  if (SPK_UNLIKELY(b->cap - b->len < n) && spk_buf_reserve(b, n) != 0)
    return NULL;
  uint8_t *p = b->data + b->len;
  b->len += n;
  return p;
}

/* Big-endian / little-endian loads and stores on unaligned memory. */
static inline uint16_t spk_be16(const uint8_t *p) {
  return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t spk_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}
static inline uint64_t spk_be64(const uint8_t *p) {
  return (uint64_t)spk_be32(p) << 32 | spk_be32(p + 4);
}
static inline void spk_put_be16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void spk_put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static inline void spk_put_be64(uint8_t *p, uint64_t v) {
  spk_put_be32(p, (uint32_t)(v >> 32));
  spk_put_be32(p + 4, (uint32_t)v);
}
static inline uint16_t spk_le16(const uint8_t *p) {
  return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}
static inline uint64_t spk_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}
static inline void spk_put_le16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void spk_put_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Monotonic clock in nanoseconds / milliseconds. */
uint64_t spk_now_ns(void);
static inline uint64_t spk_now_ms(void) { return spk_now_ns() / 1000000u; }

#endif /* SPK_COMMON_H */
