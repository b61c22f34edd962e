/*
 * spk_info.c - info protocol text: request building, line iteration, error
 * values, numbers, and the peers / replicas grammars the tender depends on
 * (protocol-core 2.1-2.4).
 *
 * Every parser works on a (pointer, length) slice and checks the cursor
 * against the end before each read: info values come from the network and
 * are never NUL-terminated.
 */
#include "spk_info.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>

#include "spk_proto.h"

/* ---- requests and lines ------------------------------------------------------ */

int spk_info_request(spk_buf *b, const char *const *cmds, size_t n) {
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += strlen(cmds[i]) + 1;
  if (SPK_UNLIKELY(total > SPK_PROTO_SIZE_MAX)) return SPK_ERR_PARAM;
  uint8_t *p = spk_buf_extend(b, SPK_PROTO_HEADER_SIZE + total);
  if (SPK_UNLIKELY(!p)) return SPK_ERR_CLIENT;
  spk_proto_write(p, SPK_PROTO_INFO, total);
  p += SPK_PROTO_HEADER_SIZE;
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(cmds[i]);
    memcpy(p, cmds[i], len);
    p[len] = '\n';
    p += len + 1;
  }
  return 0;
}

int spk_info_next(const char *body, size_t len, size_t *pos, spk_strv *name,
                  spk_strv *value) {
  while (*pos < len) {
    const char *line = body + *pos;
    size_t rest = len - *pos;
    const char *nl = memchr(line, '\n', rest);
    size_t line_len = nl ? (size_t)(nl - line) : rest;
    *pos += line_len + (nl ? 1 : 0);
    if (line_len == 0) continue; /* blank lines carry nothing */
    const char *tab = memchr(line, '\t', line_len);
    if (tab) {
      size_t nlen = (size_t)(tab - line);
      name->p = line;
      name->len = nlen;
      value->p = tab + 1;
      value->len = line_len - nlen - 1;
    } else {
      name->p = line;
      name->len = line_len;
      value->p = line + line_len;
      value->len = 0;
    }
    return 1;
  }
  return 0;
}

int spk_info_find(const char *body, size_t len, const char *name,
                  spk_strv *value) {
  size_t pos = 0;
  spk_strv n, v;
  while (spk_info_next(body, len, &pos, &n, &v)) {
    if (spk_strv_eq(n, name)) {
      *value = v;
      return 1;
    }
  }
  return 0;
}

static int has_prefix(spk_strv v, const char *pre, size_t n) {
  return v.len >= n && memcmp(v.p, pre, n) == 0;
}

int spk_info_error(spk_strv value, int *code, spk_strv *message) {
  size_t skip;
  bool coded = true;
  if (has_prefix(value, "ERROR:", 6)) {
    skip = 6;
  } else if (has_prefix(value, "FAIL:", 5)) {
    skip = 5;
  } else if (has_prefix(value, "error=", 6)) {
    /* udf-put failure: "error=<reason>[;file=..]", no numeric code. */
    skip = 6;
    coded = false;
  } else {
    return 0;
  }
  const char *p = value.p + skip, *end = value.p + value.len;
  int c = 1;
  const char *msg = p;
  if (coded) {
    /* "<digits>:<msg>", "<digits>", or ":<msg>" (code omitted = 1).
     * Anything else is all message. */
    const char *q = p;
    int v = 0, nd = 0;
    while (q < end && *q >= '0' && *q <= '9' && nd < 9) {
      v = v * 10 + (*q - '0');
      q++;
      nd++;
    }
    if (q == end && nd > 0) {
      c = v;
      msg = end;
    } else if (q < end && *q == ':') {
      if (nd > 0) c = v;
      msg = q + 1;
    }
    /* An error must not read as success. */
    if (c == 0) c = 1;
  }
  if (code) *code = c;
  if (message) {
    message->p = msg;
    message->len = (size_t)(end - msg);
  }
  return 1;
}

/* ---- numbers --------------------------------------------------------------- */

static int parse_digits(const char *p, size_t len, uint64_t limit,
                        uint64_t *out) {
  if (len == 0) return SPK_ERR_PROTOCOL;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned d = (unsigned)(unsigned char)p[i] - '0';
    if (d > 9) return SPK_ERR_PROTOCOL;
    if (v > (limit - d) / 10) return SPK_ERR_PROTOCOL;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int spk_info_parse_u64(spk_strv v, uint64_t *out) {
  return parse_digits(v.p, v.len, UINT64_MAX, out);
}

int spk_info_parse_i64(spk_strv v, int64_t *out) {
  uint64_t u;
  if (v.len && v.p[0] == '-') {
    if (parse_digits(v.p + 1, v.len - 1, (uint64_t)INT64_MAX + 1, &u))
      return SPK_ERR_PROTOCOL;
    *out = u == 0 ? 0 : -(int64_t)(u - 1) - 1;
    return 0;
  }
  if (parse_digits(v.p, v.len, INT64_MAX, &u)) return SPK_ERR_PROTOCOL;
  *out = (int64_t)u;
  return 0;
}

int spk_info_parse_version(spk_strv v, uint32_t *out) {
  /* 1..4 dot-separated numbers, missing parts 0; an optional suffix after
   * '-' (e.g. "8.1.2.0-rc1") is ignored. */
  const char *p = v.p, *end = v.p + v.len;
  uint32_t parts[4] = {0, 0, 0, 0};
  int n = 0;
  for (;;) {
    if (p == end || *p < '0' || *p > '9') return SPK_ERR_PROTOCOL;
    uint32_t x = 0;
    while (p < end && *p >= '0' && *p <= '9') {
      if (x < 1000) x = x * 10 + (uint32_t)(*p - '0');
      p++;
    }
    parts[n++] = x > 255 ? 255 : x;
    if (p == end || *p == '-') break;
    if (*p != '.' || n == 4) return SPK_ERR_PROTOCOL;
    p++;
  }
  *out = parts[0] << 24 | parts[1] << 16 | parts[2] << 8 | parts[3];
  return 0;
}

/* ---- base64 ------------------------------------------------------------------ */

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* 0..63, or -1 for anything that is not an alphabet character. */
static inline int b64_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

long spk_base64_decode(const char *in, size_t len, uint8_t *out,
                       size_t out_cap) {
  if (len % 4) return -1;
  if (len == 0) return 0;
  size_t pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
  size_t n = len / 4 * 3 - pad;
  if (n > out_cap || n > (size_t)LONG_MAX) return -1;
  size_t o = 0;
  for (size_t i = 0; i < len; i += 4) {
    bool last = i + 4 == len;
    int a = b64_val((unsigned char)in[i]);
    int b = b64_val((unsigned char)in[i + 1]);
    /* Pad characters are only legal at the tail of the last group. */
    int c = last && pad == 2 ? 0 : b64_val((unsigned char)in[i + 2]);
    int d = last && pad >= 1 ? 0 : b64_val((unsigned char)in[i + 3]);
    if ((a | b | c | d) < 0) return -1;
    uint32_t w = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 |
                 (uint32_t)d;
    out[o++] = (uint8_t)(w >> 16);
    if (!last || pad < 2) out[o++] = (uint8_t)(w >> 8);
    if (!last || pad < 1) out[o++] = (uint8_t)w;
  }
  return (long)o;
}

size_t spk_base64_encode(const uint8_t *in, size_t len, char *out) {
  size_t o = 0, i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t w = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = b64_chars[w >> 18];
    out[o++] = b64_chars[(w >> 12) & 63];
    out[o++] = b64_chars[(w >> 6) & 63];
    out[o++] = b64_chars[w & 63];
  }
  if (i < len) {
    uint32_t w = (uint32_t)in[i] << 16;
    if (i + 1 < len) w |= (uint32_t)in[i + 1] << 8;
    out[o++] = b64_chars[w >> 18];
    out[o++] = b64_chars[(w >> 12) & 63];
    out[o++] = i + 1 < len ? b64_chars[(w >> 6) & 63] : '=';
    out[o++] = '=';
  }
  return o;
}

/* ---- peers ------------------------------------------------------------------- */

/* Each peer costs ~300 bytes of output for as little as 6 bytes of input,
 * so a corrupt multi-megabyte value could ask for gigabytes.  Real
 * clusters are far below these limits. */
#define PEERS_MAX 4096
#define PEER_HOSTS_MAX 256

/*
 * The grammar is walked twice with the same code: a counting pass that
 * validates and sizes one allocation, then a filling pass.  That keeps the
 * error path free of partial allocations.
 */
typedef struct peers_cursor {
  const char *start, *p, *end;
  spk_error *err;
  spk_peer *peers;   /* NULL in the counting pass */
  spk_host *hosts;
  uint32_t n_peers, n_hosts;
  uint32_t peer_first_host; /* n_hosts when the current peer started */
} peers_cursor;

static int peers_fail(peers_cursor *c, const char *what) {
  return spk_error_set(c->err, SPK_ERR_PROTOCOL,
                       "bad peers value: %s at offset %zu", what,
                       (size_t)(c->p - c->start));
}

static int expect(peers_cursor *c, char ch, const char *what) {
  if (c->p == c->end || *c->p != ch) return peers_fail(c, what);
  c->p++;
  return 0;
}

static bool at(const peers_cursor *c, char ch) {
  return c->p < c->end && *c->p == ch;
}

/* A run of characters up to (not including) any of `stops`.  Brackets,
 * spaces and control bytes (NUL above all: names become C strings) never
 * belong to a token, so they end it and the grammar check that follows
 * rejects them. */
static spk_strv token(peers_cursor *c, const char *stops) {
  spk_strv t = {c->p, 0};
  while (c->p < c->end) {
    unsigned char ch = (unsigned char)*c->p;
    if (ch <= ' ' || ch == 0x7f || ch == '[' || ch == ']' || strchr(stops, ch))
      break;
    c->p++;
  }
  t.len = (size_t)(c->p - t.p);
  return t;
}

static int port_value(peers_cursor *c, spk_strv t, uint16_t *port) {
  uint64_t v;
  if (t.len > 5 || parse_digits(t.p, t.len, 65535, &v) || v == 0)
    return peers_fail(c, "bad port");
  *port = (uint16_t)v;
  return 0;
}

static void copy_text(char *dst, spk_strv t) {
  memcpy(dst, t.p, t.len);
  dst[t.len] = '\0';
}

static int parse_host(peers_cursor *c, uint16_t default_port) {
  spk_strv name;
  if (at(c, '[')) {
    c->p++;
    name = token(c, ",");
    if (expect(c, ']', "unterminated IPv6 address")) return SPK_ERR_PROTOCOL;
  } else {
    name = token(c, ",:");
  }
  if (name.len == 0) return peers_fail(c, "empty host");
  if (name.len >= SPK_HOST_NAME_MAX) return peers_fail(c, "host too long");
  uint16_t port = default_port;
  if (at(c, ':')) {
    c->p++;
    if (port_value(c, token(c, ","), &port)) return SPK_ERR_PROTOCOL;
  }
  if (c->n_hosts - c->peer_first_host >= PEER_HOSTS_MAX)
    return peers_fail(c, "too many hosts for one peer");
  if (c->peers) {
    spk_host *h = &c->hosts[c->n_hosts];
    copy_text(h->name, name);
    h->port = port;
    c->peers[c->n_peers].n_hosts++;
  }
  c->n_hosts++;
  return 0;
}

static int parse_peer(peers_cursor *c, uint16_t default_port) {
  if (c->n_peers >= PEERS_MAX) return peers_fail(c, "too many peers");
  c->peer_first_host = c->n_hosts;
  if (expect(c, '[', "expected '[' before peer")) return SPK_ERR_PROTOCOL;
  spk_strv node = token(c, ",");
  if (node.len == 0) return peers_fail(c, "empty node name");
  if (node.len >= SPK_NODE_NAME_MAX) return peers_fail(c, "node name too long");
  if (expect(c, ',', "expected ',' after node name")) return SPK_ERR_PROTOCOL;
  spk_strv tls = token(c, ",");
  if (tls.len >= SPK_HOST_NAME_MAX) return peers_fail(c, "TLS name too long");
  if (expect(c, ',', "expected ',' after TLS name")) return SPK_ERR_PROTOCOL;
  if (c->peers) {
    spk_peer *pe = &c->peers[c->n_peers];
    copy_text(pe->node_name, node);
    copy_text(pe->tls_name, tls);
    pe->n_hosts = 0;
    pe->hosts = c->hosts + c->n_hosts;
  }
  /* "[id,,]" (a departed node in the generation-delta form) has no list. */
  if (!at(c, ']')) {
    if (expect(c, '[', "expected '[' before host list")) return SPK_ERR_PROTOCOL;
    if (!at(c, ']')) {
      for (;;) {
        if (parse_host(c, default_port)) return SPK_ERR_PROTOCOL;
        if (!at(c, ',')) break;
        c->p++;
      }
    }
    if (expect(c, ']', "unterminated host list")) return SPK_ERR_PROTOCOL;
  }
  if (expect(c, ']', "unterminated peer")) return SPK_ERR_PROTOCOL;
  if (c->peers && c->peers[c->n_peers].n_hosts == 0)
    c->peers[c->n_peers].hosts = NULL;
  c->n_peers++;
  return 0;
}

static int parse_peers(peers_cursor *c, spk_peers *out) {
  spk_strv gen = token(c, ",");
  if (spk_info_parse_u64(gen, &out->generation))
    return peers_fail(c, "bad generation");
  if (expect(c, ',', "expected ',' after generation")) return SPK_ERR_PROTOCOL;
  spk_strv port = token(c, ",");
  out->default_port = 3000;
  if (port.len && port_value(c, port, &out->default_port))
    return SPK_ERR_PROTOCOL;
  if (expect(c, ',', "expected ',' after default port")) return SPK_ERR_PROTOCOL;
  if (expect(c, '[', "expected '[' before peer list")) return SPK_ERR_PROTOCOL;
  if (!at(c, ']')) {
    for (;;) {
      if (parse_peer(c, out->default_port)) return SPK_ERR_PROTOCOL;
      if (!at(c, ',')) break;
      c->p++;
    }
  }
  if (expect(c, ']', "unterminated peer list")) return SPK_ERR_PROTOCOL;
  if (c->p != c->end) return peers_fail(c, "trailing characters");
  return 0;
}

int spk_peers_parse(spk_strv v, spk_peers *out, spk_error *err) {
  memset(out, 0, sizeof *out);
  peers_cursor c = {v.p, v.p, v.p + v.len, err, NULL, NULL, 0, 0, 0};
  spk_peers tmp;
  if (parse_peers(&c, &tmp)) return SPK_ERR_PROTOCOL;
  if (c.n_peers == 0) {
    *out = tmp;
    out->n_peers = 0;
    out->peers = NULL;
    return 0;
  }
  /* One block: peers, then every peer's hosts (spk_peers_free frees it). */
  size_t peers_sz = (size_t)c.n_peers * sizeof(spk_peer);
  void *mem = malloc(peers_sz + (size_t)c.n_hosts * sizeof(spk_host));
  if (!mem) return spk_error_set(err, SPK_ERR_CLIENT, "out of memory");
  uint32_t n_peers = c.n_peers;
  c = (peers_cursor){v.p, v.p, v.p + v.len, err, mem,
                     (spk_host *)((char *)mem + peers_sz), 0, 0, 0};
  if (parse_peers(&c, &tmp) || c.n_peers != n_peers) { /* cannot happen */
    free(mem);
    return spk_error_set(err, SPK_ERR_PROTOCOL, "bad peers value");
  }
  *out = tmp;
  out->n_peers = c.n_peers;
  out->peers = mem;
  return 0;
}

void spk_peers_free(spk_peers *p) {
  if (!p) return;
  free(p->peers);
  p->peers = NULL;
  p->n_peers = 0;
}

/* ---- replicas ---------------------------------------------------------------- */

static int replicas_fail(spk_error *err, spk_strv ns, const char *what) {
  return spk_error_set(err, SPK_ERR_PROTOCOL,
                       "bad replicas value for namespace '%.*s': %s",
                       (int)(ns.len > 31 ? 31 : ns.len), ns.p, what);
}

/* Next ','-separated item of [*p, end); advances past the comma. */
static spk_strv next_item(const char **p, const char *end) {
  spk_strv t = {*p, 0};
  const char *comma = memchr(*p, ',', (size_t)(end - *p));
  const char *stop = comma ? comma : end;
  t.len = (size_t)(stop - *p);
  *p = comma ? comma + 1 : end;
  return t;
}

/* One pass over the value; cb == NULL only validates.  with_regime picks
 * the `replicas` grammar over `replicas-all`. */
static int replicas_walk(spk_strv v, bool with_regime, spk_replicas_cb cb,
                         void *ctx, spk_error *err) {
  /* Columns past SPK_MAX_REPLICAS are decoded into the spare last slot so
   * they are still validated. */
  uint8_t bm[SPK_MAX_REPLICAS + 1][SPK_REPLICA_BITMAP_BYTES];
  const char *p = v.p, *end = v.p + v.len;
  while (p < end) {
    const char *semi = memchr(p, ';', (size_t)(end - p));
    const char *eend = semi ? semi : end;
    spk_strv ns = {p, 0};
    const char *colon = memchr(p, ':', (size_t)(eend - p));
    if (!colon) {
      ns.len = (size_t)(eend - p);
      return replicas_fail(err, ns, "missing ':'");
    }
    ns.len = (size_t)(colon - p);
    if (ns.len < 1 || ns.len > SPK_NAMESPACE_MAX)
      return replicas_fail(err, ns, "namespace length not 1..31");

    /* An item that stops before eend was followed by a comma. */
    const char *q = colon + 1;
    uint64_t regime = 0, n;
    spk_strv t;
    if (with_regime) {
      t = next_item(&q, eend);
      if (parse_digits(t.p, t.len, UINT32_MAX, &regime))
        return replicas_fail(err, ns, "bad regime");
      if (t.p + t.len == eend)
        return replicas_fail(err, ns, "missing replica count");
    }
    t = next_item(&q, eend);
    if (parse_digits(t.p, t.len, UINT32_MAX, &n))
      return replicas_fail(err, ns, "bad replica count");
    bool more = t.p + t.len < eend;
    for (uint64_t i = 0; i < n; i++) {
      if (!more) return replicas_fail(err, ns, "fewer bitmaps than replicas");
      t = next_item(&q, eend);
      more = t.p + t.len < eend;
      if (t.len != SPK_REPLICA_BITMAP_B64)
        return spk_error_set(err, SPK_ERR_PROTOCOL,
                             "bad replicas value for namespace '%.*s': "
                             "bitmap %" PRIu64 " has %zu base64 chars "
                             "(expected %d)",
                             (int)ns.len, ns.p, i, t.len,
                             SPK_REPLICA_BITMAP_B64);
      uint8_t *dst = bm[i < SPK_MAX_REPLICAS ? i : SPK_MAX_REPLICAS];
      if (spk_base64_decode(t.p, t.len, dst, SPK_REPLICA_BITMAP_BYTES) !=
          SPK_REPLICA_BITMAP_BYTES)
        return replicas_fail(err, ns, "bad base64 bitmap");
    }
    if (more) return replicas_fail(err, ns, "more bitmaps than replicas");
    uint32_t kept = n < SPK_MAX_REPLICAS ? (uint32_t)n : SPK_MAX_REPLICAS;
    if (cb) {
      int rc = cb(ctx, ns, (uint32_t)regime, (uint32_t)n,
                  (const uint8_t(*)[SPK_REPLICA_BITMAP_BYTES])bm, kept);
      if (rc) return rc;
    }
    if (!semi) break;
    p = semi + 1;
    /* A trailing ';' is tolerated; an empty entry elsewhere is not. */
    if (p < end && *p == ';')
      return spk_error_set(err, SPK_ERR_PROTOCOL,
                           "bad replicas value: empty namespace entry");
  }
  return 0;
}

int spk_replicas_parse(spk_strv v, spk_replicas_cb cb, void *ctx,
                       spk_error *err) {
  /* Validate everything before the first callback, so a truncated or
   * corrupt answer never leaves the caller's map half updated. */
  int rc = replicas_walk(v, true, NULL, NULL, err);
  return rc ? rc : replicas_walk(v, true, cb, ctx, err);
}

int spk_replicas_all_parse(spk_strv v, spk_replicas_cb cb, void *ctx,
                           spk_error *err) {
  int rc = replicas_walk(v, false, NULL, NULL, err);
  return rc ? rc : replicas_walk(v, false, cb, ctx, err);
}
