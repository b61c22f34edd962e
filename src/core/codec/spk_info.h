/*
 * spk_info.h - info protocol (type 1) requests, responses and the parsers
 * the cluster tender needs (protocol-core 2).  No I/O.
 *
 * A response body is lines "<request line>\t<value>\n"; a line may also be
 * just "<name>\n" (no value).  Parsers never read past the length given and
 * never require NUL termination.
 */
#ifndef SPK_INFO_H
#define SPK_INFO_H

#include "../spk_common.h"
#include "spk_digest.h"

/* A borrowed, non-NUL-terminated slice of text. */
typedef struct spk_strv {
  const char *p;
  size_t len;
} spk_strv;

static inline int spk_strv_eq(spk_strv s, const char *z) {
  size_t n = strlen(z);
  return s.len == n && memcmp(s.p, z, n) == 0;
}

/*
 * Build an info request: proto header (type 1) + each command followed by
 * '\n'.  Appends to b.  Returns 0 or SPK_ERR_CLIENT (OOM).
 */
int spk_info_request(spk_buf *b, const char *const *cmds, size_t n);

/* Iterate "name\tvalue\n" lines of a response body.  Returns 1 and fills
 * name / value (value.len == 0 when absent) while lines remain, else 0.
 * *pos is the cursor, start at 0. */
int spk_info_next(const char *body, size_t len, size_t *pos, spk_strv *name,
                  spk_strv *value);

/* Value of the line whose name equals `name`; 1 if found. */
int spk_info_find(const char *body, size_t len, const char *name,
                  spk_strv *value);

/* If value is "ERROR:<code>:<msg>" (or "FAIL:...", or udf-put's
 * "error=<msg>"), return 1 and the code (1 when omitted or 0) and message;
 * else 0.  code / message may be NULL. */
int spk_info_error(spk_strv value, int *code, spk_strv *message);

/* Decimal integers (whole value must be a number).  0 or SPK_ERR_PROTOCOL. */
int spk_info_parse_i64(spk_strv v, int64_t *out);
int spk_info_parse_u64(spk_strv v, uint64_t *out);

/* "8.1.2.0" -> major<<24 | minor<<16 | patch<<8 | build (each clamped to
 * 255; 1..4 parts, missing ones 0; a "-suffix" is ignored).  0 or
 * SPK_ERR_PROTOCOL. */
int spk_info_parse_version(spk_strv v, uint32_t *out);

/* ---- peers-clear-std ------------------------------------------------------ */

#define SPK_NODE_NAME_MAX 20   /* node id text, NUL included */
#define SPK_HOST_NAME_MAX 256  /* host text, NUL included */

typedef struct spk_host {
  char name[SPK_HOST_NAME_MAX]; /* IPv4, IPv6 (no brackets) or DNS name */
  uint16_t port;
} spk_host;

typedef struct spk_peer {
  char node_name[SPK_NODE_NAME_MAX];
  char tls_name[SPK_HOST_NAME_MAX];
  uint32_t n_hosts;
  spk_host *hosts; /* owned by the enclosing spk_peers */
} spk_peer;

typedef struct spk_peers {
  uint64_t generation;
  uint16_t default_port;
  uint32_t n_peers;
  spk_peer *peers; /* owned; release with spk_peers_free */
} spk_peers;

/*
 * Parse a peers value: gen,[port],[[id,[tls],[host,...]],...].  Hosts
 * without a port get the default port (3000 when the field is empty).
 * A peer without a host list ("[id,,]", the generation-delta form) gets
 * n_hosts 0.  At most 4096 peers and 256 hosts per peer are accepted (a
 * sanity bound on the allocation).  Returns 0, SPK_ERR_PROTOCOL, or
 * SPK_ERR_CLIENT (OOM); on error *out holds nothing to free.  All hosts
 * live in the same allocation as the peers array.
 */
int spk_peers_parse(spk_strv v, spk_peers *out, spk_error *err);
void spk_peers_free(spk_peers *p);

/* ---- replicas -------------------------------------------------------------- */

#define SPK_REPLICA_BITMAP_BYTES (SPK_N_PARTITIONS / 8) /* 512 */
#define SPK_REPLICA_BITMAP_B64 684
#define SPK_MAX_REPLICAS 3 /* columns kept; more are parsed and ignored */

/* Called once per namespace entry of a "replicas" value.  bitmaps[i] is the
 * decoded 512-byte bitmap of replica column i (0 = master), MSB first; only
 * min(n_replicas, SPK_MAX_REPLICAS) columns are passed.  Return non-zero to
 * stop parsing (that value is returned by spk_replicas_parse). */
typedef int (*spk_replicas_cb)(void *ctx, spk_strv ns, uint32_t regime,
                               uint32_t n_replicas,
                               const uint8_t (*bitmaps)[SPK_REPLICA_BITMAP_BYTES],
                               uint32_t n_bitmaps);

/* Parse "ns:regime,n,b64,...;ns:..." (the `replicas` command).  Validates
 * namespace length 1..31 and each bitmap (684 base64 chars -> 512 bytes),
 * including columns beyond SPK_MAX_REPLICAS; exactly n bitmaps must follow.
 * One trailing ';' is tolerated.  Returns 0, the callback's non-zero value,
 * or SPK_ERR_PROTOCOL.  The whole value is validated before the first
 * callback, so on SPK_ERR_PROTOCOL the callback was never called. */
int spk_replicas_parse(spk_strv v, spk_replicas_cb cb, void *ctx,
                       spk_error *err);

/* The same for the older `replicas-all` value "ns:n,b64,...;..." (no
 * regime; the callback gets regime 0). */
int spk_replicas_all_parse(spk_strv v, spk_replicas_cb cb, void *ctx,
                           spk_error *err);

static inline int spk_bitmap_test(const uint8_t *bm, uint32_t pid) {
  return (bm[pid >> 3] & (0x80u >> (pid & 7))) != 0;
}
static inline void spk_bitmap_set(uint8_t *bm, uint32_t pid) {
  bm[pid >> 3] = (uint8_t)(bm[pid >> 3] | (0x80u >> (pid & 7)));
}

/* Standard base64 (with padding).  decode: returns the decoded length or -1
 * on bad input / overflow of out_cap.  encode: writes 4*ceil(n/3) chars. */
long spk_base64_decode(const char *in, size_t len, uint8_t *out,
                       size_t out_cap);
size_t spk_base64_encode(const uint8_t *in, size_t len, char *out);

#endif /* SPK_INFO_H */
