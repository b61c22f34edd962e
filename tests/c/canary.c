/*
 * canary.c - deliberately planted bugs that prove a safety leg really runs.
 *
 * Compiled into test_core only when meson is configured with
 * -Dcanary=asan|ubsan|tsan (never by default).  Each canary is a real bug
 * that a plain build does not notice (the test passes there) and that only
 * the named sanitizer reports, so when `make canary-check` switches it on,
 * the leg that runs test_core (test-asan, test-tsan) must fail.
 *
 *   asan   a one-byte heap-buffer-overflow write past an 8-byte block (glibc
 *          rounds the block up to 24 usable bytes, so nothing else notices),
 *          and a leaked block, which LeakSanitizer reports when the test's
 *          process exits (leak detection is on for the C tests);
 *   ubsan  a signed integer overflow (wraps silently without -fsanitize);
 *   tsan   two threads incrementing a plain int (a data race; the count is
 *          not checked, so without TSan nothing fails).
 */
#include <limits.h>
#include <pthread.h>

#include "spk_test.h"

#if defined(SPK_CANARY_ASAN)

SPK_TEST(canary_asan_heap_overflow) {
  volatile size_t n = 8; /* volatile: no compile-time diagnosis */
  char *p = malloc(n);
  SPK_ASSERT(p != NULL);
  memset(p, 'x', n);
  volatile char *volatile vp = p; /* volatile: the store stays */
  vp[n] = '\0';         /* BUG (planted): one byte past the block */
  free(p);
}

static void *volatile canary_leaked;

SPK_TEST(canary_asan_leak) {
  canary_leaked = malloc(4096);
  SPK_ASSERT(canary_leaked != NULL);
  canary_leaked = NULL; /* BUG (planted): the only pointer is dropped */
}

#elif defined(SPK_CANARY_UBSAN)

SPK_TEST(canary_ubsan_signed_overflow) {
  volatile int big = INT_MAX;
  volatile int one = 1;
  volatile int r = big + one; /* BUG (planted): signed overflow is undefined */
  (void)r;
}

#elif defined(SPK_CANARY_TSAN)

static int canary_counter; /* BUG (planted): shared, not atomic, no lock */

static void *canary_racer(void *unused) {
  (void)unused;
  for (int i = 0; i < 100000; i++) canary_counter++;
  return NULL;
}

SPK_TEST(canary_tsan_data_race) {
  pthread_t a, b;
  SPK_ASSERT_OK(pthread_create(&a, NULL, canary_racer, NULL));
  SPK_ASSERT_OK(pthread_create(&b, NULL, canary_racer, NULL));
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  SPK_ASSERT(canary_counter > 0);
}

#else
#error "canary.c is built only with -Dcanary=asan|ubsan|tsan"
#endif
