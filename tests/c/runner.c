/* runner.c - runs the SPK_TEST cases of one test program, each in a forked
 * child with a timeout (SPK_TEST_TIMEOUT seconds, default 60). */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spk_test.h"

typedef struct {
  const char *name;
  spk_test_fn fn;
  const char *file;
} spk_test_case;

static spk_test_case cases[1024];
static int n_cases;

void spk_test_register(const char *name, spk_test_fn fn, const char *file) {
  if (n_cases == (int)(sizeof cases / sizeof cases[0])) {
    fprintf(stderr, "too many tests\n");
    abort();
  }
  cases[n_cases].name = name;
  cases[n_cases].fn = fn;
  cases[n_cases].file = file;
  n_cases++;
}

unsigned char *spk_test_unhex(const char *hex, size_t *len) {
  size_t n = strlen(hex) / 2;
  unsigned char *p = malloc(n ? n : 1);
  if (!p) abort();
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) abort();
    p[i] = (unsigned char)v;
  }
  *len = n;
  return p;
}

void spk_test_hex(const unsigned char *p, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[p[i] >> 4];
    out[2 * i + 1] = d[p[i] & 15];
  }
  out[2 * n] = '\0';
}

static int run_one(const spk_test_case *c, int timeout_s) {
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return 1;
  }
  if (pid == 0) {
    alarm((unsigned)timeout_s);
    c->fn();
    fflush(stdout);
    fflush(stderr);
    exit(0);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
  if (WIFSIGNALED(status))
    fprintf(stderr, "  %s: killed by signal %d%s\n", c->name,
            WTERMSIG(status),
            WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
  return 1;
}

int main(int argc, char **argv) {
  const char *t = getenv("SPK_TEST_TIMEOUT");
  int timeout_s = t ? atoi(t) : 60;
  int failed = 0, ran = 0;
  if (argc > 1 && strcmp(argv[1], "--list") == 0) {
    for (int i = 0; i < n_cases; i++) printf("%s\n", cases[i].name);
    return 0;
  }
  for (int i = 0; i < n_cases; i++) {
    if (argc > 1) {
      int want = 0;
      for (int a = 1; a < argc; a++)
        if (strcmp(argv[a], cases[i].name) == 0) want = 1;
      if (!want) continue;
    }
    ran++;
    int rc = run_one(&cases[i], timeout_s);
    printf("%s %d - %s\n", rc ? "not ok" : "ok", ran, cases[i].name);
    failed += rc;
  }
  printf("1..%d\n# %d passed, %d failed\n", ran, ran - failed, failed);
  return failed ? 1 : 0;
}
