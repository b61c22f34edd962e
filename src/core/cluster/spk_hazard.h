/*
 * spk_hazard.h - hazard pointers: lets many threads read a shared snapshot
 * (the partition map) without locks or reference-count traffic, while one
 * writer (the tend thread) retires old snapshots and frees them only when
 * no reader has them protected.
 *
 * Each thread owns one hazard record (allocated on first use, recycled when
 * the thread exits).  A reader protects exactly one pointer at a time.
 */
#ifndef SPK_HAZARD_H
#define SPK_HAZARD_H

#include <stdatomic.h>

/* Load *src and publish it as this thread's hazard; the returned pointer
 * stays valid until spk_hazard_clear().  NULL when out of memory for the
 * thread's record (callers treat it as "no snapshot"). */
void *spk_hazard_protect(_Atomic(void *) *src);

/* Drop this thread's hazard. */
void spk_hazard_clear(void);

/* 1 if any thread currently protects p (writer side; O(threads)). */
int spk_hazard_in_use(const void *p);

#endif /* SPK_HAZARD_H */
