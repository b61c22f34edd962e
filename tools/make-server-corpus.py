"""make-server-corpus.py - (re)build tests/fuzz/corpus/fuzz_server/ from the
golden captures: every captured request (tests/python/golden/captures/*.json,
"request_hex"), prefixed with the byte that fuzz_server.c uses to pick the
receiving node (0, 1, 2 in turn).  Requests over 4 KiB and duplicates are
left out.  Run from the repository root: python3 tools/make-server-corpus.py
"""

import glob
import json
import os
import re

OUT = "tests/fuzz/corpus/fuzz_server"


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    for old in glob.glob(os.path.join(OUT, "*.bin")):
        os.remove(old)
    seen, n = set(), 0
    for f in sorted(glob.glob("tests/python/golden/captures/*.json")):
        for c in json.load(open(f)):
            h = c.get("request_hex")
            if not isinstance(h, str):
                continue
            try:
                b = bytes.fromhex(h)
            except ValueError:  # abbreviated in the capture
                continue
            if b in seen or len(b) > 4096:
                continue
            seen.add(b)
            name = re.sub(r"[^a-z0-9]+", "_", c.get("name", "req").lower()).strip("_")[:48]
            path = os.path.join(OUT, f"{os.path.basename(f)[:-5]}_{name}.bin")
            if os.path.exists(path):
                path = path[:-4] + f"_{n}.bin"
            with open(path, "wb") as o:
                o.write(bytes([n % 3]) + b)
            n += 1
    print(f"{n} seeds in {OUT}")


if __name__ == "__main__":
    main()
