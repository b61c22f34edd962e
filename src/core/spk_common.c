/* spk_common.c - error struct, byte buffer, clock. */
#include "spk_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int spk_error_set(spk_error *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
  }
  return code;
}

int spk_error_code(spk_error *err, int code) {
  return spk_error_set(err, code, "%s", spk_result_message(code));
}

int spk_buf_reserve(spk_buf *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  if (extra > SIZE_MAX / 2 - b->len) return SPK_ERR_CLIENT;
  size_t need = b->len + extra;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need) cap *= 2;
  uint8_t *p = realloc(b->data, cap);
  if (!p) return SPK_ERR_CLIENT;
  b->data = p;
  b->cap = cap;
  return 0;
}

void spk_buf_free(spk_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

uint64_t spk_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
