/* spk_hazard.c - hazard-pointer records (see spk_hazard.h). */
#include "spk_hazard.h"

#include "../spk_common.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct hazard_rec {
  _Atomic(void *) ptr;
  _Atomic int owned;        /* 1 while a live thread uses this record */
  struct hazard_rec *next;  /* immutable once published */
} hazard_rec;

/* Records are never freed: a thread's record returns to the list for reuse
 * when the thread exits, so the list is bounded by peak thread count. */
static _Atomic(hazard_rec *) records;
static pthread_key_t rec_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static SPK_TLS hazard_rec *my_rec;

static void release_rec(void *p) {
  hazard_rec *r = p;
  atomic_store_explicit(&r->ptr, NULL, memory_order_release);
  atomic_store_explicit(&r->owned, 0, memory_order_release);
}

static void make_key(void) { pthread_key_create(&rec_key, release_rec); }

static hazard_rec *thread_rec(void) {
  if (my_rec) return my_rec;
  pthread_once(&key_once, make_key);
  hazard_rec *r;
  for (r = atomic_load_explicit(&records, memory_order_acquire); r; r = r->next) {
    int expect = 0;
    if (atomic_compare_exchange_strong(&r->owned, &expect, 1)) break;
  }
  if (!r) {
    r = calloc(1, sizeof *r);
    if (!r) return NULL;
    atomic_init(&r->ptr, NULL);
    atomic_init(&r->owned, 1);
    hazard_rec *head = atomic_load_explicit(&records, memory_order_relaxed);
    do {
      r->next = head;
    } while (!atomic_compare_exchange_weak_explicit(
        &records, &head, r, memory_order_release, memory_order_relaxed));
  }
  pthread_setspecific(rec_key, r);
  my_rec = r;
  return r;
}

void *spk_hazard_protect(_Atomic(void *) *src) {
  hazard_rec *r = thread_rec();
  if (!r) return NULL;
  void *p = atomic_load_explicit(src, memory_order_acquire);
  for (;;) {
    /* seq_cst store then re-load: the writer either sees our hazard or we
     * see its new pointer. */
    atomic_store(&r->ptr, p);
    void *again = atomic_load(src);
    if (again == p) return p;
    p = again;
  }
}

void spk_hazard_clear(void) {
  if (my_rec) atomic_store_explicit(&my_rec->ptr, NULL, memory_order_release);
}

int spk_hazard_in_use(const void *p) {
  for (hazard_rec *r = atomic_load(&records); r; r = r->next)
    if (atomic_load(&r->ptr) == p) return 1;
  return 0;
}
