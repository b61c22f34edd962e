/*
 * replay.c - runs a libFuzzer target's inputs without libFuzzer, so saved
 * crash inputs (tests/fuzz/regressions/<target>/) and the seed corpora
 * (tests/fuzz/corpus/<target>/) are regression tests of every normal build:
 * `meson test` runs them with gcc in the plain build and under ASan+UBSan in
 * the ASan leg.  Arguments are files or directories (read recursively,
 * sorted, dot-files skipped); --min N fails when fewer than N inputs ran, so
 * a missing corpus is an error, not a silent pass.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int n_inputs;

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  size_t cap = 4096, len = 0;
  uint8_t *buf = malloc(cap);
  if (!buf) abort();
  size_t r;
  while ((r = fread(buf + len, 1, cap - len, f)) > 0) {
    len += r;
    if (len == cap) {
      cap *= 2;
      buf = realloc(buf, cap);
      if (!buf) abort();
    }
  }
  fclose(f);
  /* An exact-size copy, so ASan sees reads past the input's end. */
  uint8_t *in = malloc(len ? len : 1);
  if (!in) abort();
  memcpy(in, buf, len);
  free(buf);
  fprintf(stderr, "replay %s (%zu bytes)\n", path, len);
  LLVMFuzzerTestOneInput(in, len);
  free(in);
  n_inputs++;
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    perror(path);
    return 1;
  }
  if (!S_ISDIR(st.st_mode)) return run_file(path);
  DIR *d = opendir(path);
  if (!d) {
    perror(path);
    return 1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      names = realloc(names, cap * sizeof *names);
      if (!names) abort();
    }
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  if (n) qsort(names, n, sizeof *names, cmp_names);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(path) + strlen(names[i]) + 2;
    char *p = malloc(l);
    if (!p) abort();
    snprintf(p, l, "%s/%s", path, names[i]);
    rc |= run_path(p);
    free(p);
    free(names[i]);
  }
  free(names);
  return rc;
}

int main(int argc, char **argv) {
  int min = 1, rc = 0;
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--min") == 0 && i + 1 < argc) {
      min = atoi(argv[++i]);
      continue;
    }
    rc |= run_path(argv[i]);
  }
  printf("%d inputs replayed%s\n", n_inputs, rc ? ", some unreadable" : "");
  if (n_inputs < min) {
    fprintf(stderr, "expected at least %d inputs\n", min);
    return 1;
  }
  return rc;
}
