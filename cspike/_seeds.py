"""Parsing of seed strings: "host:port,host:port" (IPv6 as "[addr]:port")."""

from __future__ import annotations

DEFAULT_PORT = 3000


def parse_seeds(seeds: str | list | tuple, default_port: int = DEFAULT_PORT) -> list[tuple[str, int]]:
    """``"a:3000,b"`` -> ``[("a", 3000), ("b", 3000)]``; also accepts a list of
    strings or ``(host, port)`` tuples.  Raises ValueError naming the bad part."""
    if isinstance(seeds, str):
        parts = [p.strip() for p in seeds.split(",")]
    elif isinstance(seeds, (list, tuple)):
        parts = list(seeds)
    else:
        raise TypeError(f"seeds must be a str like 'host:3000', not {type(seeds).__name__}")
    out: list[tuple[str, int]] = []
    for p in parts:
        if isinstance(p, tuple):
            if len(p) != 2:
                raise ValueError(f"seed {p!r} must be (host, port)")
            host, port = p
            out.append((_check_host(host, p), _check_port(port, p)))
            continue
        if not isinstance(p, str) or not p:
            raise ValueError(f"empty or invalid seed in {seeds!r}")
        if p.startswith("["):
            end = p.find("]")
            if end < 0:
                raise ValueError(f"seed {p!r}: unterminated IPv6 address")
            host, rest = p[1:end], p[end + 1:]
            if rest and not rest.startswith(":"):
                raise ValueError(f"seed {p!r}: expected ':port' after the address")
            port = rest[1:] if rest else str(default_port)
        else:
            fields = p.split(":")
            if len(fields) == 1:
                host, port = fields[0], str(default_port)
            elif len(fields) == 2:
                host, port = fields
            elif len(fields) == 3:
                raise ValueError(f"seed {p!r}: TLS seeds (host:tls_name:port) are not supported")
            else:
                raise ValueError(f"seed {p!r}: IPv6 addresses must be written as [addr]:port")
        if not port.isdigit():
            raise ValueError(f"seed {p!r}: port {port!r} is not a number")
        out.append((_check_host(host, p), _check_port(int(port), p)))
    if not out:
        raise ValueError("no seed hosts given")
    return out


def _check_host(host: object, where: object) -> str:
    if not isinstance(host, str) or not host.strip():
        raise ValueError(f"seed {where!r}: empty host name")
    return host.strip()


def _check_port(port: object, where: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"seed {where!r}: port must be 1..65535")
    return port
