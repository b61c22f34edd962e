"""Client integration tests (a package so module names cannot clash with
other test directories, e.g. tests/python/server/test_faults.py)."""
