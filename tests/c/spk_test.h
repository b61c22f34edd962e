/*
 * spk_test.h - a small C test harness (after libuv's runner): each test is
 * registered by SPK_TEST(name) and run by runner.c in a forked child with a
 * timeout, so a crash or hang fails that test alone.
 *
 *   SPK_TEST(digest_vectors) { SPK_ASSERT_EQ(spk_partition_id(d), 2451); }
 *
 * Run one test: ./test_codec digest_vectors ; list: ./test_codec --list
 */
#ifndef SPK_TEST_H
#define SPK_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*spk_test_fn)(void);
void spk_test_register(const char *name, spk_test_fn fn, const char *file);

#define SPK_TEST(name)                                                      \
  static void spk_test_##name(void);                                        \
  __attribute__((constructor)) static void spk_test_reg_##name(void) {      \
    spk_test_register(#name, spk_test_##name, __FILE__);                    \
  }                                                                         \
  static void spk_test_##name(void)

#define SPK_FAIL(...)                                                       \
  do {                                                                      \
    fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                         \
    fprintf(stderr, __VA_ARGS__);                                           \
    fputc('\n', stderr);                                                    \
    exit(1);                                                                \
  } while (0)

#define SPK_ASSERT(c)                                                       \
  do {                                                                      \
    if (!(c)) SPK_FAIL("assertion failed: %s", #c);                         \
  } while (0)

#define SPK_ASSERT_EQ(a, b)                                                 \
  do {                                                                      \
    long long spk__a = (long long)(a), spk__b = (long long)(b);             \
    if (spk__a != spk__b)                                                   \
      SPK_FAIL("%s == %s failed: %lld != %lld", #a, #b, spk__a, spk__b);    \
  } while (0)

#define SPK_ASSERT_OK(a) SPK_ASSERT_EQ((a), 0)

#define SPK_ASSERT_MEM_EQ(a, b, n)                                          \
  do {                                                                      \
    if (memcmp((a), (b), (n)) != 0)                                         \
      SPK_FAIL("memory %s != %s (%zu bytes)", #a, #b, (size_t)(n));         \
  } while (0)

#define SPK_ASSERT_STR_EQ(a, b)                                             \
  do {                                                                      \
    const char *spk__x = (a), *spk__y = (b);                                \
    if (strcmp(spk__x, spk__y) != 0)                                        \
      SPK_FAIL("%s == %s failed: \"%s\" != \"%s\"", #a, #b, spk__x, spk__y);\
  } while (0)

/* Hex helpers for vectors: returns malloc'd bytes (caller frees). */
unsigned char *spk_test_unhex(const char *hex, size_t *len);
void spk_test_hex(const unsigned char *p, size_t n, char *out);

#endif /* SPK_TEST_H */
