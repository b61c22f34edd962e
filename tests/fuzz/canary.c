/*
 * canary.c - the fuzz leg's planted bug, linked into every libFuzzer target
 * only with -Dcanary=fuzz (`make canary-check`).  The target's own entry
 * point is renamed (-DLLVMFuzzerTestOneInput=spk_fuzz_target_one_input) and
 * called from here, after a check that crashes on a magic prefix.  The
 * prefix is in no seed corpus: libFuzzer has to find it by itself (its
 * memcmp hook does, in seconds), which shows the fuzz loop really runs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int spk_fuzz_target_one_input(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size >= 8 && memcmp(data, "SPKCANRY", 8) == 0) {
    volatile size_t n = size;
    uint8_t *copy = malloc(n);
    if (copy) {
      memcpy(copy, data, n);
      volatile uint8_t *volatile vp = copy;
      volatile uint8_t c = vp[n]; /* BUG (planted): one past the end */
      (void)c;
      free(copy);
    }
  }
  return spk_fuzz_target_one_input(data, size);
}
