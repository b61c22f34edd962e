"""Raw wire helpers for the server tests: send bytes, read proto messages,
decode as_msg / info answers into plain structures for field-by-field
comparison."""
import socket
import struct
import time

CL_EPOCH = 1262304000


def now_cl():
    return int(time.time()) - CL_EPOCH


class Closed(Exception):
    """The peer closed (EOF) or reset the connection."""

    def __init__(self, how, got=b""):
        super().__init__(how)
        self.how = how  # "closed" or "reset"
        self.got = got


def connect(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exact(s, n, deadline):
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        s.settimeout(left)
        try:
            chunk = s.recv(n - len(buf))
        except ConnectionResetError:
            raise Closed("reset", bytes(buf))
        if not chunk:
            raise Closed("closed", bytes(buf))
        buf += chunk
    return bytes(buf)


def read_message(s, timeout=5.0):
    """One proto message (header + body)."""
    deadline = time.monotonic() + timeout
    hdr = recv_exact(s, 8, deadline)
    size = int.from_bytes(hdr[2:8], "big")
    return hdr + recv_exact(s, size, deadline)


def read_stream(s, timeout=5.0):
    """Proto messages up to and including the one holding info3 LAST."""
    out = []
    while True:
        m = read_message(s, timeout)
        out.append(m)
        if m[1] != 3:
            return out
        for a in split_msgs(m[8:]):
            if a["info3"] & 1:
                return out


def request(port, data, timeout=5.0):
    with connect(port, timeout) as s:
        s.sendall(data)
        return read_message(s, timeout)


def info(port, *cmds, timeout=5.0):
    body = "".join(c + "\n" for c in cmds).encode()
    m = request(port, b"\x02\x01" + len(body).to_bytes(6, "big") + body, timeout)
    return m[8:].decode()


# ---- decoding --------------------------------------------------------------


def split_msgs(body):
    """as_msg records of a type-3 body."""
    out = []
    off = 0
    while off < len(body):
        a, off = parse_msg(body, off)
        out.append(a)
    return out


def parse_msg(b, off=0):
    (hsz, i1, i2, i3, i4, rc, gen, ttl, tttl, nf, no) = struct.unpack_from(
        ">BBBBBBIIIHH", b, off)
    p = off + 22
    fields = []
    for _ in range(nf):
        sz = int.from_bytes(b[p:p + 4], "big")
        fields.append((b[p + 4], b[p + 5:p + 4 + sz].hex()))
        p += 4 + sz
    ops = []
    for _ in range(no):
        sz = int.from_bytes(b[p:p + 4], "big")
        op, pt, fl, nl = b[p + 4], b[p + 5], b[p + 6], b[p + 7]
        name = b[p + 8:p + 8 + nl].decode("utf-8", "replace")
        val = b[p + 8 + nl:p + 4 + sz].hex()
        ops.append({"op": op, "particle": pt, "flags": fl, "bin": name, "value": val})
        p += 4 + sz
    return {"header_sz": hsz, "info1": i1, "info2": i2, "info3": i3, "info4": i4,
            "result_code": rc, "generation": gen, "record_ttl": ttl,
            "transaction_ttl": tttl, "n_fields": nf, "n_ops": no,
            "fields": fields, "ops": ops}, p


def decode(m):
    """A proto message as a dict."""
    d = {"version": m[0], "type": m[1], "size": int.from_bytes(m[2:8], "big")}
    body = m[8:]
    if m[1] == 1:
        d["text"] = body.decode("utf-8", "replace")
    elif m[1] == 2:
        d["admin"] = body.hex()
    elif m[1] == 3:
        d["msgs"] = split_msgs(body)
    else:
        d["raw"] = body.hex()
    return d


# ---- building ----------------------------------------------------------------


def field(t, data):
    return (len(data) + 1).to_bytes(4, "big") + bytes([t]) + data


def op(o, particle, name, value=b""):
    n = name.encode() if isinstance(name, str) else name
    return ((4 + len(n) + len(value)).to_bytes(4, "big")
            + bytes([o, particle, 0, len(n)]) + n + value)


def msg(info1=0, info2=0, info3=0, fields=(), ops=(), gen=0, ttl=0, tttl=1000,
        info4=0, rc=0):
    body = struct.pack(">BBBBBBIIIHH", 22, info1, info2, info3, info4, rc, gen,
                       ttl, tttl, len(fields), len(ops))
    body += b"".join(fields) + b"".join(ops)
    return b"\x02\x03" + len(body).to_bytes(6, "big") + body


def ripemd160(data):
    import hashlib

    try:
        h = hashlib.new("ripemd160")
        h.update(data)
        return h.digest()
    except ValueError:
        return _ripemd160_py(data)


def _ripemd160_py(message):
    # Pure-Python RIPEMD-160 for systems whose OpenSSL lacks it.
    import struct as st

    def rol(x, n):
        return ((x << n) | (x >> (32 - n))) & 0xFFFFFFFF

    KL = [0x00000000, 0x5A827999, 0x6ED9EBA1, 0x8F1BBCDC, 0xA953FD4E]
    KR = [0x50A28BE6, 0x5C4DD124, 0x6D703EF3, 0x7A6D76E9, 0x00000000]
    RL = [list(range(16)),
          [7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8],
          [3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12],
          [1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2],
          [4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13]]
    RR = [[5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12],
          [6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2],
          [15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13],
          [8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14],
          [12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11]]
    SL = [[11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8],
          [7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12],
          [11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5],
          [11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12],
          [9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6]]
    SR = [[8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6],
          [9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11],
          [9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5],
          [15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8],
          [8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11]]

    def f(j, x, y, z):
        if j == 0:
            return x ^ y ^ z
        if j == 1:
            return (x & y) | (~x & z)
        if j == 2:
            return (x | ~y) ^ z
        if j == 3:
            return (x & z) | (y & ~z)
        return x ^ (y | ~z)

    h = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0]
    ml = len(message) * 8
    message += b"\x80" + b"\x00" * ((55 - len(message)) % 64) + st.pack("<Q", ml)
    for i in range(0, len(message), 64):
        X = st.unpack("<16I", message[i:i + 64])
        al, bl, cl, dl, el = h
        ar, br, cr, dr, er = h
        for j in range(5):
            for k in range(16):
                t = (rol((al + (f(j, bl, cl, dl) & 0xFFFFFFFF) + X[RL[j][k]] + KL[j])
                         & 0xFFFFFFFF, SL[j][k]) + el) & 0xFFFFFFFF
                al, el, dl, cl, bl = el, dl, rol(cl, 10), bl, t
                t = (rol((ar + (f(4 - j, br, cr, dr) & 0xFFFFFFFF) + X[RR[j][k]] + KR[j])
                         & 0xFFFFFFFF, SR[j][k]) + er) & 0xFFFFFFFF
                ar, er, dr, cr, br = er, dr, rol(cr, 10), br, t
        t = (h[1] + cl + dr) & 0xFFFFFFFF
        h[1] = (h[2] + dl + er) & 0xFFFFFFFF
        h[2] = (h[3] + el + ar) & 0xFFFFFFFF
        h[3] = (h[4] + al + br) & 0xFFFFFFFF
        h[4] = (h[0] + bl + cr) & 0xFFFFFFFF
        h[0] = t
    return st.pack("<5I", *h)


def digest(set_name, key):
    if isinstance(key, int):
        kb = bytes([1]) + key.to_bytes(8, "big", signed=True)
    elif isinstance(key, str):
        kb = bytes([3]) + key.encode()
    else:
        kb = bytes([4]) + bytes(key)
    return ripemd160(set_name.encode() + kb)


def key_fields(ns, set_name, key, send_key=False):
    d = digest(set_name, key)
    fs = [field(0, ns.encode()), field(1, set_name.encode()), field(4, d)]
    if send_key:
        if isinstance(key, int):
            fs.append(field(2, bytes([1]) + key.to_bytes(8, "big", signed=True)))
        elif isinstance(key, str):
            fs.append(field(2, bytes([3]) + key.encode()))
        else:
            fs.append(field(2, bytes([4]) + bytes(key)))
    return fs


def int_op(o, name, v):
    return op(o, 1, name, v.to_bytes(8, "big", signed=True))


def str_op(o, name, v):
    return op(o, 3, name, v.encode())
