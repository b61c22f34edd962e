"""The captured Aerospike 8.1.2 transcripts, and a small independent wire
reader/writer used to check the client against them.

Nothing here uses cspike: the parser follows protocol-core.md directly, so a
misunderstanding in the client's codec is not mirrored in the checks.

The capture files live next to this module (``captures/``, copied from the
project's reference set); ``CSPIKE_CAPTURES_DIR`` points elsewhere.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from dataclasses import dataclass, field
from functools import lru_cache

HERE = os.path.dirname(os.path.abspath(__file__))
CAPTURES_DIR = os.environ.get("CSPIKE_CAPTURES_DIR", os.path.join(HERE, "captures"))
CITRUSLEAF_EPOCH = 1262304000

# as_msg bits (protocol-core 5.1-5.3)
INFO1_READ, INFO1_GET_ALL, INFO1_NOBINDATA = 0x01, 0x02, 0x20
INFO2_WRITE, INFO2_DELETE, INFO2_GENERATION, INFO2_GENERATION_GT = 0x01, 0x02, 0x04, 0x08
INFO2_DURABLE_DELETE, INFO2_CREATE_ONLY, INFO2_RESPOND_ALL_OPS = 0x10, 0x20, 0x80
INFO3_LAST, INFO3_UPDATE_ONLY, INFO3_CREATE_OR_REPLACE, INFO3_REPLACE_ONLY = 0x01, 0x08, 0x10, 0x20

FIELD_NAMESPACE, FIELD_SET, FIELD_KEY, FIELD_DIGEST = 0, 1, 2, 4

OP_READ, OP_WRITE, OP_CDT_READ, OP_CDT_MODIFY, OP_INCR = 1, 2, 3, 4, 5
OP_EXP_READ, OP_EXP_MODIFY, OP_APPEND, OP_PREPEND, OP_TOUCH = 7, 8, 9, 10, 11
OP_BITS_READ, OP_DELETE_ALL, OP_HLL_READ = 12, 14, 15
READ_OPS = {OP_READ, OP_CDT_READ, OP_EXP_READ, OP_BITS_READ, OP_HLL_READ}

P_NULL, P_INTEGER, P_FLOAT, P_STRING, P_BLOB = 0, 1, 2, 3, 4
P_BOOL, P_MAP, P_LIST, P_GEOJSON = 17, 19, 20, 23


@lru_cache(maxsize=None)
def load(name: str) -> tuple:
    """All cases of one capture file (``"records"``, ``"operate"`` ...)."""
    with open(os.path.join(CAPTURES_DIR, f"{name}.json"), encoding="utf-8") as f:
        return tuple(json.load(f))


def case(file: str, name: str) -> dict:
    hits = [c for c in load(file) if c["name"] == name]
    if len(hits) != 1:
        raise KeyError(f"{file}.json has {len(hits)} cases named {name!r}")
    return hits[0]


# --------------------------------------------------------------------------- framing

def proto(ptype: int, body: bytes, version: int = 2) -> bytes:
    return struct.pack(">Q", (version << 56) | (ptype << 48) | len(body)) + body


def split_proto(data: bytes) -> list[tuple[int, int, bytes]]:
    """Concatenated proto messages -> [(version, type, body)]."""
    out, pos = [], 0
    while pos < len(data):
        if len(data) - pos < 8:
            raise ValueError("truncated proto header")
        (hdr,) = struct.unpack_from(">Q", data, pos)
        size = hdr & 0xFFFFFFFFFFFF
        body = data[pos + 8:pos + 8 + size]
        if len(body) != size:
            raise ValueError("truncated proto body")
        out.append((hdr >> 56, (hdr >> 48) & 0xFF, body))
        pos += 8 + size
    return out


@dataclass
class Op:
    op: int
    particle: int
    name: bytes
    value: bytes
    flags: int = 0

    def encode(self) -> bytes:
        return (struct.pack(">IBBBB", 4 + len(self.name) + len(self.value), self.op,
                            self.particle, self.flags, len(self.name))
                + self.name + self.value)


@dataclass
class Msg:
    """One as_msg (protocol-core 5-7): header fields, raw fields, raw ops."""

    info1: int = 0
    info2: int = 0
    info3: int = 0
    info4: int = 0
    result_code: int = 0
    generation: int = 0
    record_ttl: int = 0
    transaction_ttl: int = 0
    fields: list = field(default_factory=list)  # [(type, data)]
    ops: list = field(default_factory=list)     # [Op]
    header_sz: int = 22

    @classmethod
    def parse(cls, body: bytes, pos: int = 0) -> tuple["Msg", int]:
        (hsz, i1, i2, i3, i4, rc, gen, ttl, tttl, nf, nops) = struct.unpack_from(
            ">BBBBBBIIIHH", body, pos)
        m = cls(i1, i2, i3, i4, rc, gen, ttl, tttl, header_sz=hsz)
        pos += hsz
        for _ in range(nf):
            (sz, ftype) = struct.unpack_from(">IB", body, pos)
            m.fields.append((ftype, bytes(body[pos + 5:pos + 4 + sz])))
            pos += 4 + sz
        for _ in range(nops):
            (sz, op, pt, flags, nl) = struct.unpack_from(">IBBBB", body, pos)
            name = bytes(body[pos + 8:pos + 8 + nl])
            value = bytes(body[pos + 8 + nl:pos + 4 + sz])
            m.ops.append(Op(op, pt, name, value, flags))
            pos += 4 + sz
        if pos > len(body):
            raise ValueError("as_msg runs past its proto body")
        return m, pos

    @classmethod
    def from_request(cls, data: bytes) -> "Msg":
        """A complete single-record request (proto header included)."""
        msgs = split_proto(data)
        if len(msgs) != 1 or msgs[0][1] != 3:
            raise ValueError("not one type-3 message")
        m, end = cls.parse(msgs[0][2])
        if end != len(msgs[0][2]):
            raise ValueError("trailing bytes after the as_msg")
        return m

    def encode_body(self) -> bytes:
        out = bytearray(struct.pack(
            ">BBBBBBIIIHH", self.header_sz, self.info1, self.info2, self.info3, self.info4,
            self.result_code, self.generation, self.record_ttl, self.transaction_ttl,
            len(self.fields), len(self.ops)))
        for ftype, data in self.fields:
            out += struct.pack(">IB", len(data) + 1, ftype) + data
        for op in self.ops:
            out += op.encode()
        return bytes(out)

    def encode(self) -> bytes:
        return proto(3, self.encode_body())

    def field(self, ftype: int) -> bytes | None:
        for t, d in self.fields:
            if t == ftype:
                return d
        return None


def request_bytes(c: dict) -> bytes:
    """The captured request; for the two 1 MiB cases only the leading bytes
    (request_hex ends with a "...(truncated; ...)" note there)."""
    h = c["request_hex"]
    cut = h.find("...")
    return bytes.fromhex(h if cut < 0 else h[:cut])


def response_bytes(c: dict) -> list[bytes]:
    """One bytes object per proto message received (a few long info answers
    were stored cut short: see is_truncated)."""
    return [bytes.fromhex(h.split("...", 1)[0]) for h in c["response_hex"]]


def is_truncated(c: dict) -> bool:
    return any("..." in h for h in c["response_hex"]) or "..." in c["request_hex"]


def single_response(c: dict) -> Msg | None:
    """The one as_msg of a single-record answer, or None if the case has
    no such answer (stream, info, admin, nothing received)."""
    rs = response_bytes(c)
    if len(rs) != 1 or any("..." in h for h in c["response_hex"]):
        return None
    msgs = split_proto(rs[0])
    if len(msgs) != 1 or msgs[0][1] != 3:
        return None
    m, end = Msg.parse(msgs[0][2])
    if end != len(msgs[0][2]) or m.info3 & INFO3_LAST:
        return None
    return m


# --------------------------------------------------------------------------- values

class NotExpressible(Exception):
    """The value has no cspike Python equivalent (ordered-map/list flags,
    raw msgpack strings, deliberately malformed particles...)."""


def py_value(particle: int, raw: bytes, geo_cls=None):
    """A particle's wire bytes -> the Python value cspike should produce.
    Independent of cspike's decoder (msgpack decoded here)."""
    if particle == P_NULL:
        return None
    if particle == P_INTEGER:
        return int.from_bytes(raw, "big", signed=True)
    if particle == P_FLOAT:
        return struct.unpack(">d", raw)[0]
    if particle == P_STRING:
        return raw.decode("utf-8")
    if particle == P_BOOL:
        return raw == b"\x01"
    if particle == P_GEOJSON:
        ncells = struct.unpack_from(">H", raw, 1)[0]
        text = raw[3 + 8 * ncells:].decode("utf-8")
        return geo_cls(text) if geo_cls else ("geojson", text)
    if particle in (P_LIST, P_MAP):
        v, end = _mp(raw, 0, geo_cls, lenient=True)
        if end != len(raw):
            raise ValueError("trailing msgpack bytes")
        return v
    return raw  # blobs, language blobs, HLL


def _mp(b: bytes, i: int, geo_cls, lenient: bool):
    """Minimal msgpack reader with Aerospike's conventions (protocol-core
    7.4).  lenient: skip ordered-container ext markers (what a reader does);
    otherwise raise NotExpressible for them (cspike cannot write them)."""
    t = b[i]
    if t <= 0x7F:
        return t, i + 1
    if t >= 0xE0:
        return t - 0x100, i + 1
    if 0x80 <= t <= 0x8F:
        return _mp_map(b, i + 1, t & 0x0F, geo_cls, lenient)
    if 0x90 <= t <= 0x9F:
        return _mp_list(b, i + 1, t & 0x0F, geo_cls, lenient)
    if 0xA0 <= t <= 0xBF:
        return _mp_str(b, i + 1, t & 0x1F, geo_cls)
    if t == 0xC0:
        return None, i + 1
    if t == 0xC2:
        return False, i + 1
    if t == 0xC3:
        return True, i + 1
    if t in (0xC4, 0xD9):
        n = b[i + 1]
        return _mp_str(b, i + 2, n, geo_cls)
    if t in (0xC5, 0xDA):
        n = struct.unpack_from(">H", b, i + 1)[0]
        return _mp_str(b, i + 3, n, geo_cls)
    if t in (0xC6, 0xDB):
        n = struct.unpack_from(">I", b, i + 1)[0]
        return _mp_str(b, i + 5, n, geo_cls)
    if t == 0xCA:
        return struct.unpack_from(">f", b, i + 1)[0], i + 5
    if t == 0xCB:
        return struct.unpack_from(">d", b, i + 1)[0], i + 9
    ints = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
            0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    if t in ints:
        fmt = ints[t]
        return struct.unpack_from(fmt, b, i + 1)[0], i + 1 + struct.calcsize(fmt)
    if t == 0xDC:
        return _mp_list(b, i + 3, struct.unpack_from(">H", b, i + 1)[0], geo_cls, lenient)
    if t == 0xDD:
        return _mp_list(b, i + 5, struct.unpack_from(">I", b, i + 1)[0], geo_cls, lenient)
    if t == 0xDE:
        return _mp_map(b, i + 3, struct.unpack_from(">H", b, i + 1)[0], geo_cls, lenient)
    if t == 0xDF:
        return _mp_map(b, i + 5, struct.unpack_from(">I", b, i + 1)[0], geo_cls, lenient)
    if _ext_len(b, i) is not None:
        raise NotExpressible(f"msgpack ext 0x{t:02x} as a value")
    raise ValueError(f"msgpack type 0x{t:02x} not handled")


def _ext_len(b: bytes, i: int) -> int | None:
    t = b[i]
    fixed = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
    if t in fixed:
        return 2 + fixed[t]
    if t == 0xC7:
        return 3 + b[i + 1]
    if t == 0xC8:
        return 4 + struct.unpack_from(">H", b, i + 1)[0]
    if t == 0xC9:
        return 6 + struct.unpack_from(">I", b, i + 1)[0]
    return None


def _mp_str(b: bytes, i: int, n: int, geo_cls):
    data = b[i:i + n]
    if n == 0:
        return "", i
    kind, payload = data[0], data[1:]
    if kind == P_STRING:
        return payload.decode("utf-8"), i + n
    if kind == P_GEOJSON:
        return (geo_cls(payload.decode("utf-8")) if geo_cls else ("geojson", payload.decode())), i + n
    if kind == P_BLOB or 7 <= kind <= 12:
        return bytes(payload), i + n
    raise NotExpressible(f"msgpack string without a particle-type prefix ({data[:8]!r})")


def _mp_list(b, i, n, geo_cls, lenient):
    out = []
    if n and _ext_len(b, i) is not None:
        if not lenient:
            raise NotExpressible("ordered list (leading ext element)")
        i += _ext_len(b, i)
        n -= 1
    for _ in range(n):
        v, i = _mp(b, i, geo_cls, lenient)
        out.append(v)
    return out, i


def _mp_map(b, i, n, geo_cls, lenient):
    out = {}
    if n and _ext_len(b, i) is not None:
        if not lenient:
            raise NotExpressible("ordered map (leading ext, nil pair)")
        i += _ext_len(b, i)
        _, i = _mp(b, i, geo_cls, lenient)  # the nil
        n -= 1
    for _ in range(n):
        k, i = _mp(b, i, geo_cls, lenient)
        v, i = _mp(b, i, geo_cls, lenient)
        if isinstance(k, list):
            k = tuple(k)
        if k in out:
            raise NotExpressible("map with duplicate keys")
        out[k] = v
    return out, i


def request_value(op: Op, geo_cls=None):
    """The Python value that makes cspike encode exactly op.value, or raise
    NotExpressible.  Stricter than py_value: no ordered-container markers,
    and only the encodings cspike produces (8-byte ints, 1-byte bools, 3-byte
    GeoJSON headers without cells)."""
    p, raw = op.particle, op.value
    if p == P_INTEGER and len(raw) != 8:
        raise NotExpressible(f"{len(raw)}-byte INTEGER particle")
    if p == P_FLOAT and len(raw) != 8:
        raise NotExpressible(f"{len(raw)}-byte FLOAT particle")
    if p == P_BOOL and (len(raw) != 1 or raw[0] > 1):
        raise NotExpressible("malformed BOOL particle")
    if p == P_GEOJSON and raw[:3] != b"\x00\x00\x00":
        raise NotExpressible("GeoJSON particle with flags or cells")
    if p not in (P_NULL, P_INTEGER, P_FLOAT, P_STRING, P_BLOB, P_BOOL, P_MAP, P_LIST,
                 P_GEOJSON):
        raise NotExpressible(f"particle type {p}")
    if p in (P_LIST, P_MAP):
        try:
            v, end = _mp(raw, 0, geo_cls, lenient=False)
        except (IndexError, struct.error, UnicodeDecodeError) as e:
            raise NotExpressible(f"malformed msgpack ({e})") from None
        if end != len(raw):
            raise NotExpressible("trailing msgpack bytes")
        return v
    return py_value(p, raw, geo_cls)


# --------------------------------------------------------------------------- info / maps

def info_pairs(text: str) -> dict[str, str]:
    """Info response body -> {request line: value}."""
    out = {}
    for line in text.split("\n"):
        if line:
            k, _, v = line.partition("\t")
            out[k] = v
    return out


def replicas_masters(value: str) -> dict[str, list[set[int]]]:
    """``replicas`` value -> {namespace: [set of pids per replica column]},
    bit order MSB first (protocol-core 2.4)."""
    out = {}
    for entry in value.split(";"):
        if not entry:
            continue
        ns, _, rest = entry.partition(":")
        parts = rest.split(",")
        n = int(parts[1])
        cols = []
        for b64 in parts[2:2 + n]:
            bm = base64.b64decode(b64)
            cols.append({p for p in range(4096) if bm[p >> 3] & (0x80 >> (p & 7))})
        out[ns] = cols
    return out


def full_replicas(namespaces=("test", "bar")) -> str:
    """A single-node ``replicas`` value owning every partition."""
    b64 = base64.b64encode(b"\xff" * 512).decode()
    return ";".join(f"{ns}:0,1,{b64}" for ns in namespaces)
