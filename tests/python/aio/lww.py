"""A write log and a last-writer-wins checker for concurrency tests.

Every writer (thread or task) numbers its writes; the value it writes names
(writer, seq), so the final state of each key says which write landed last.
A write's outcome is "ok" (acknowledged), "doubt" (failed, in doubt: may or
may not be applied) or "fail" (failed and certainly not applied).

Check, per key, against the final state read after the run:

* the final value comes from a write that was acknowledged or in doubt,
  never from one reported as not applied;
* that write is not older than any acknowledged write that *started after
  it ended*: such a write must have been applied later (in-doubt writes
  count as ending at +inf, since they may land late);
* a final "absent" needs an acknowledged/in-doubt delete with the same
  property, or no acknowledged put at all;
* every value a read returned was written by a write not reported as "not
  applied", and belongs to the key it was read from.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

INF = float("inf")
Token = tuple  # (writer, seq)


@dataclass
class Write:
    key: Any
    token: Token | None  # None = delete
    start: int
    end: float = INF
    outcome: str = "pending"  # ok / doubt / fail


@dataclass
class WriteLog:
    writes: dict = field(default_factory=lambda: defaultdict(list))
    reads: list = field(default_factory=list)
    errors: dict = field(default_factory=lambda: defaultdict(int))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- recording (thread-safe) --------------------------------------------
    def begin(self, key: Any, token: Token | None) -> Write:
        w = Write(key, token, time.monotonic_ns())
        with self._lock:
            self.writes[key].append(w)
        return w

    def end(self, w: Write, exc: BaseException | None = None) -> None:
        w.end = time.monotonic_ns()
        if exc is None:
            w.outcome = "ok"
        elif getattr(exc, "in_doubt", False):
            w.outcome = "doubt"
            w.end = INF
        else:
            w.outcome = "fail"
        if exc is not None:
            with self._lock:
                self.errors[f"{type(exc).__name__}:{getattr(exc, 'result_code', None)}"] += 1

    @contextlib.contextmanager
    def write(self, key: Any, token: Token | None):
        """Record the write the block performs: its outcome is the
        AerospikeError the block raised (swallowed: a failed write is an
        expected outcome here), or "ok".  Yields the Write."""
        from cspike import AerospikeError
        w = self.begin(key, token)
        try:
            yield w
        except AerospikeError as e:
            self.end(w, e)
        else:
            self.end(w)

    def read(self, key: Any, token: Token | None) -> None:
        with self._lock:
            self.reads.append((key, token))

    def error(self, exc: BaseException) -> None:
        with self._lock:
            self.errors[f"{type(exc).__name__}:{getattr(exc, 'result_code', None)}"] += 1

    # -- checking ----------------------------------------------------------------
    def acked(self) -> int:
        return sum(1 for ws in self.writes.values() for w in ws if w.outcome == "ok")

    def check(self, final: dict) -> None:
        problems = []
        for key, ws in self.writes.items():
            if any(w.outcome == "pending" for w in ws):
                problems.append(f"{key}: a write never finished")
                continue
            v = final.get(key)
            ok = [w for w in ws if w.outcome == "ok"]

            def eligible(w: Write) -> bool:
                return not any(w2 is not w and w2.start > w.end for w2 in ok)

            if v is None:
                dels = [w for w in ws if w.token is None and w.outcome in ("ok", "doubt")]
                if any(eligible(w) for w in dels):
                    continue
                if not any(w.token is not None for w in ok):
                    continue  # never written for sure (puts all failed or in doubt)
                last = max((w for w in ok), key=lambda w: w.end)
                problems.append(f"{key}: record missing, but acknowledged write {last.token} "
                                f"was never deleted afterwards")
                continue
            mine = [w for w in ws if w.token == v]
            if not mine:
                problems.append(f"{key}: final value {v} was never written to this key")
                continue
            if all(w.outcome == "fail" for w in mine):
                problems.append(f"{key}: final value {v} comes from a write reported as not applied")
                continue
            if not any(eligible(w) for w in mine if w.outcome in ("ok", "doubt")):
                newer = [w2.token for w in mine for w2 in ok if w2.start > w.end]
                problems.append(f"{key}: final value {v} is older than acknowledged write(s) "
                                f"{newer[:3]} that started after it returned (lost write)")
        failed = {(w.key, w.token) for ws in self.writes.values() for w in ws
                  if w.outcome == "fail" and w.token is not None}
        written = {(w.key, w.token) for ws in self.writes.values() for w in ws}
        for key, tok in self.reads:
            if tok is None:
                continue
            if (key, tok) not in written:
                problems.append(f"read of {key} returned {tok}, never written to that key")
            elif (key, tok) in failed and not any(
                    w.token == tok and w.outcome != "fail" for w in self.writes[key]):
                problems.append(f"read of {key} returned {tok}, a write reported as not applied")
        assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:20])
