"""python -m cspike: command-line entry (benchmark)."""

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m cspike bench [options]   (see: python -m cspike bench --help)")
        return 0
    if argv[0] == "bench":
        from .bench import main as bench_main
        return bench_main(argv[1:])
    print(f"unknown command {argv[0]!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
