"""Pure-Python twin of ``cspike._core.Histogram`` (same bucket layout).

Only for a bench worker whose interpreter cannot load cspike's extension
(say, a peer installed under another Python version); it costs that worker
more CPU per operation, so the report flags rows measured with it.  Not
thread-safe under free-threading beyond what the GIL gives; the workers use
one per thread.
"""

from __future__ import annotations

import time

SUB_BITS = 7
SUB = 1 << SUB_BITS
HALF = SUB >> 1
MAX_BITS = 36
MAX_VALUE = (1 << MAX_BITS) - 1
N_BUCKETS = SUB + (MAX_BITS - SUB_BITS) * HALF


def bucket_of(v: int) -> int:
    if v < SUB:
        return v
    if v > MAX_VALUE:
        v = MAX_VALUE
    shift = v.bit_length() - SUB_BITS
    return SUB + (shift - 1) * HALF + ((v >> shift) - HALF)


def bucket_range(i: int) -> tuple[int, int]:
    if i < SUB:
        return i, i
    shift = (i - SUB) // HALF + 1
    top = (i - SUB) % HALF + HALF
    lo = top << shift
    return lo, lo + (1 << shift) - 1


class Histogram:
    __slots__ = ("counts", "min", "max", "sum")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.counts = [0] * N_BUCKETS
        self.min = None
        self.max = 0
        self.sum = 0

    def record(self, v: int) -> None:
        if v < 0:
            raise ValueError("latency must not be negative")
        self.counts[bucket_of(v)] += 1
        self.sum += v
        if self.min is None or v < self.min:
            self.min = v
        if v > self.max:
            self.max = v

    def record_since(self, t0: int) -> int:
        t = time.perf_counter_ns()
        self.record(max(t - t0, 0))
        return t

    def record_n(self, v: int, n: int) -> None:
        if n:
            self.counts[bucket_of(v)] += n
            self.sum += v * n
            self.min = v if self.min is None else min(self.min, v)
            self.max = max(self.max, v)

    def record_many(self, values) -> None:
        for v in values:
            self.record(int(v))

    @property
    def count(self) -> int:
        return sum(self.counts)

    @property
    def mean(self) -> float:
        n = self.count
        return self.sum / n if n else 0.0

    def merge(self, other: "Histogram") -> None:
        mn, mx, s, rows = other.snapshot()
        for i, c in rows:
            self.counts[i] += c
        if rows:
            self.sum += s
            self.min = mn if self.min is None else min(self.min, mn)
            self.max = max(self.max, mx)

    def percentile(self, p: float) -> int:
        n = self.count
        if not n:
            return 0
        if p <= 0:
            return self.min
        if p >= 100:
            return self.max
        want = p / 100.0 * n
        rank = max(int(want) + (int(want) < want), 1)
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                lo, hi = bucket_range(i)
                return min(max(lo + (hi - lo) // 2, self.min), self.max)
        return self.max

    def percentiles(self, ps) -> list[int]:
        return [self.percentile(p) for p in ps]

    def snapshot(self):
        rows = tuple((i, c) for i, c in enumerate(self.counts) if c)
        return (self.min or 0, self.max, self.sum, rows)

    @classmethod
    def from_snapshot(cls, snap) -> "Histogram":
        mn, mx, s, rows = snap
        h = cls()
        for i, c in rows:
            h.counts[i] += c
        if rows:
            h.min, h.max, h.sum = mn, mx, s
        return h
