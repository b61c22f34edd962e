"""cspike._core.Histogram: layout, precision, merge, snapshots, threads; and
the pure-Python twin the bench falls back to (same buckets, same answers)."""

import array
import pickle
import random
import threading
import time

import pytest

from cspike._core import Histogram
from cspike.bench import pyhist

# Every bucket is at most 1/64 of its value wide and we report its midpoint.
REL = 1 / 64


def exact_percentile(values, p):
    v = sorted(values)
    if p <= 0:
        return v[0]
    if p >= 100:
        return v[-1]
    rank = max(1, -(-len(v) * p // 100))
    return v[int(rank) - 1]


def test_empty():
    h = Histogram()
    assert h.count == 0 and h.min == 0 and h.max == 0 and h.sum == 0
    assert h.mean == 0.0
    assert h.percentile(50) == 0
    assert h.percentiles([50, 99]) == [0, 0]
    assert repr(h) == "<Histogram empty>"


def test_small_values_are_exact():
    h = Histogram()
    for v in range(128):
        h.record(v)
    assert h.count == 128
    assert h.min == 0 and h.max == 127
    assert h.percentile(50) == 63
    assert h.sum == sum(range(128))
    for v in range(128):
        assert Histogram.bucket_range(v) == (v, v)


def test_bucket_layout_contiguous_and_bounded():
    prev_hi = -1
    v = 0
    seen = 0
    while v < (1 << 36):
        lo, hi = Histogram.bucket_range(v)
        assert lo == prev_hi + 1, (v, lo, prev_hi)
        assert lo <= v <= hi
        if lo >= 128:
            assert (hi - lo + 1) / lo <= REL + 1e-12
        prev_hi = hi
        v = hi + 1
        seen += 1
    from cspike import _core
    assert seen == _core.HISTOGRAM_BUCKETS


def test_percentiles_within_precision():
    rnd = random.Random(7)
    values = [int(rnd.lognormvariate(11, 1.2)) for _ in range(50_000)]  # ~60 µs median
    h = Histogram()
    for v in values:
        h.record(v)
    assert h.count == len(values)
    assert h.min == min(values) and h.max == max(values)
    assert h.mean == pytest.approx(sum(values) / len(values))
    for p in (1, 10, 50, 90, 99, 99.9, 99.99):
        want = exact_percentile(values, p)
        got = h.percentile(p)
        assert abs(got - want) <= want * REL + 1, (p, got, want)
    assert h.percentile(0) == min(values)
    assert h.percentile(100) == max(values)


def test_range_1us_to_60s():
    h = Histogram()
    for v in (1_000, 60_000_000_000):
        h.record(v)
    assert h.percentile(1) == pytest.approx(1_000, rel=REL)
    assert h.percentile(100) == 60_000_000_000
    assert h.percentile(99) == pytest.approx(60_000_000_000, rel=REL)
    # Beyond the range: last bucket, max still exact.
    h.record(10 ** 13)
    assert h.max == 10 ** 13
    assert h.count == 3


def test_merge_reset_and_errors():
    a, b = Histogram(), Histogram()
    for v in range(1000, 2000):
        a.record(v)
    for v in range(5000, 5100):
        b.record(v)
    a.merge(b)
    assert a.count == 1100
    assert a.min == 1000 and a.max == 5099
    assert a.sum == sum(range(1000, 2000)) + sum(range(5000, 5100))
    with pytest.raises(TypeError):
        a.merge(object())
    with pytest.raises(ValueError):
        a.merge(a)
    a.reset()
    assert a.count == 0 and a.max == 0 and a.min == 0
    with pytest.raises(ValueError):
        a.record(-1)
    with pytest.raises(TypeError):
        a.record(1.5)
    with pytest.raises(ValueError):
        a.percentile(101)
    with pytest.raises(TypeError):
        Histogram(1)


def test_record_many_iterable_and_buffer():
    h = Histogram()
    h.record_many(range(100, 200))
    h.record_many(array.array("q", [300, 400]))
    h.record_many(array.array("Q", [500]))
    assert h.count == 103 and h.max == 500
    with pytest.raises(TypeError):
        h.record_many(array.array("i", [1, 2]))
    with pytest.raises(ValueError):
        h.record_many(array.array("q", [-5]))
    h.record_n(1000, 10)
    assert h.count == 113


def test_record_since_uses_perf_counter_clock():
    h = Histogram()
    t0 = time.perf_counter_ns()
    time.sleep(0.002)
    t1 = h.record_since(t0)
    assert t1 >= t0 + 2_000_000
    assert t1 <= time.perf_counter_ns()
    assert h.count == 1 and h.min >= 2_000_000


def test_snapshot_roundtrip_and_pickle():
    h = Histogram()
    for v in (5, 1234, 99_999, 7_000_000):
        h.record(v)
    snap = h.snapshot()
    assert snap[:3] == (5, 7_000_000, 5 + 1234 + 99_999 + 7_000_000)
    g = Histogram.from_snapshot(snap)
    assert g.snapshot() == snap
    assert Histogram.from_snapshot([list(x) if isinstance(x, tuple) else x
                                    for x in snap]).count == 4  # JSON-shaped
    p = pickle.loads(pickle.dumps(h))
    assert p.percentiles([50, 99]) == h.percentiles([50, 99])
    with pytest.raises(ValueError):
        Histogram.from_snapshot((0, 0, 0, ((99999, 1),)))


def test_threads_record_into_one_histogram():
    h = Histogram()
    n, per = 8, 20_000

    def work(i):
        for v in range(per):
            h.record(1000 + (v % 5000) + i)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert h.count == n * per
    assert h.min == 1000 and h.max == 1000 + 4999 + n - 1
    assert h.sum == sum(1000 + (v % 5000) + i for i in range(n) for v in range(per))


def test_python_twin_matches_c():
    rnd = random.Random(3)
    values = [int(rnd.expovariate(1 / 200_000)) for _ in range(20_000)] + [0, 1, 127, 128]
    c, py = Histogram(), pyhist.Histogram()
    for v in values:
        c.record(v)
        py.record(v)
    assert py.count == c.count
    assert py.snapshot() == c.snapshot()
    ps = [0, 1, 50, 90, 99, 99.9, 100]
    assert py.percentiles(ps) == c.percentiles(ps)
    for v in (0, 127, 128, 129, 1000, 65535, 10 ** 9, 2 ** 36 + 5):
        assert pyhist.bucket_range(pyhist.bucket_of(v)) == Histogram.bucket_range(v)
    # Snapshots travel between the two (worker -> parent).
    assert Histogram.from_snapshot(py.snapshot()).percentiles(ps) == c.percentiles(ps)
