"""Helpers for info responses ("name\\tvalue\\n" lines)."""

from __future__ import annotations


def parse_info(text: str) -> dict[str, str]:
    """Response body -> {request line: value}."""
    out: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        name, sep, value = line.partition("\t")
        out[name] = value if sep else ""
    return out


def info_value(text: str, command: str) -> str:
    """The value answered for one command (the whole body when absent)."""
    values = parse_info(text)
    cmd = command.rstrip("\n")
    if cmd in values:
        return values[cmd]
    if len(values) == 1:
        return next(iter(values.values()))
    return text


def parse_kv(value: str, sep: str = ";") -> dict[str, str]:
    """``"a=1;b=2"`` -> ``{"a": "1", "b": "2"}``."""
    out = {}
    for item in value.split(sep):
        if not item:
            continue
        k, _, v = item.partition("=")
        out[k] = v
    return out
