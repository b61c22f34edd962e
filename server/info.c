/*
 * info.c - the info protocol (proto type 1).
 *
 * A request is lines separated by '\n'; each complete line is answered with
 * "<line>\t<value>\n" (the line echoed exactly, parameters included).  Text
 * after the last '\n' is ignored, so "node" without a newline gets an empty
 * answer; an empty request gets the deprecated summary.  Command syntax:
 * name[/arg/arg][:key=value;key=value].
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>

#include "srv.h"

#define FEATURES                                                              \
  "batch-any;batch-index;blob-bits;cdt-index;cdt-list;cdt-map;cluster-"      \
  "stable;float;geo;sindex-exists;peers;pipelining;pquery;pscans;query-show;" \
  "relaxed-sc;replicas;replicas-all;replicas-master;replicas-max;truncate-"  \
  "namespace;udf"
#define BUILD_SHA "05b91c64f5fa7836a36e52e3797da34dc0325649"
#define BUILD_TIME "Sat Nov 21 22:45:55 UTC 2026"

typedef struct cmd {
  const char *line; /* whole request line */
  size_t line_len;
  const char *name;
  size_t name_len;
  const char *args; /* after the first '/', up to ':' */
  size_t args_len;
  const char *params; /* after ':' */
  size_t params_len;
} cmd;

static bool name_is(const cmd *c, const char *s) {
  size_t n = strlen(s);
  return c->name_len == n && memcmp(c->name, s, n) == 0;
}

/* Value of key in "k=v;k=v" params; false when absent. */
static bool param(const cmd *c, const char *key, const char **v, size_t *len) {
  size_t kl = strlen(key);
  if (!c->params) return false;
  const char *p = c->params, *e = c->params + c->params_len;
  while (p < e) {
    const char *semi = memchr(p, ';', (size_t)(e - p));
    const char *end = semi ? semi : e;
    if ((size_t)(end - p) > kl && memcmp(p, key, kl) == 0 && p[kl] == '=') {
      *v = p + kl + 1;
      *len = (size_t)(end - p - (ptrdiff_t)kl - 1);
      return true;
    }
    p = end + 1;
  }
  return false;
}

/* atoi() of a parameter value, which is a slice of the request (not
 * NUL-terminated): leading decimal digits only, saturating. */
static uint32_t param_uint(const char *v, size_t len) {
  uint64_t x = 0;
  for (size_t i = 0; i < len && v[i] >= '0' && v[i] <= '9'; i++) {
    x = x * 10 + (uint64_t)(v[i] - '0');
    if (x > UINT32_MAX) return UINT32_MAX;
  }
  return (uint32_t)x;
}

/* n-th '/'-separated argument (0-based). */
static bool arg(const cmd *c, int n, const char **v, size_t *len) {
  if (!c->args) return false;
  const char *p = c->args, *e = c->args + c->args_len;
  for (int i = 0;; i++) {
    const char *slash = memchr(p, '/', (size_t)(e - p));
    const char *end = slash ? slash : e;
    if (i == n) {
      *v = p;
      *len = (size_t)(end - p);
      return true;
    }
    if (!slash) return false;
    p = slash + 1;
  }
}

/* ---- cluster-derived values ------------------------------------------------------------ */

static void host_port(spk_buf *b, uint16_t port) {
  /* The real server strips the default port 3000 from host addresses. */
  if (port == 3000) spk_srv_buf_str(b, "127.0.0.1");
  else spk_srv_buf_printf(b, "127.0.0.1:%u", port);
}

static void peers_value(spk_srv_ctx *c, spk_buf *b, bool alt) {
  spk_srv_view *v = spk_srv_view_of(c->node);
  spk_srv_buf_printf(b, "%" PRIu64 ",3000,[", v ? v->peers_gen : 0);
  if (v && !alt) {
    for (uint32_t i = 0; i < v->n_peers; i++) {
      spk_srv_node *p = &c->srv->nodes[v->peers[i]];
      if (i) spk_srv_buf_str(b, ",");
      spk_srv_buf_printf(b, "[%s,,[", p->name);
      host_port(b, p->port);
      spk_srv_buf_str(b, "]]");
    }
  }
  spk_srv_buf_str(b, "]");
}

static void services_value(spk_srv_ctx *c, spk_buf *b) {
  spk_srv_view *v = spk_srv_view_of(c->node);
  for (uint32_t i = 0; v && i < v->n_peers; i++) {
    if (i) spk_srv_buf_str(b, ";");
    spk_srv_buf_printf(b, "127.0.0.1:%u", c->srv->nodes[v->peers[i]].port);
  }
}

static void bitmap_b64(spk_buf *b, const uint8_t *bm) {
  char *p = (char *)spk_buf_extend(b, SPK_REPLICA_BITMAP_B64);
  if (p) spk_base64_encode(bm, SPK_REPLICA_BITMAP_BYTES, p);
}

/* kind: 0 replicas (with regime), 1 replicas-all, 2 replicas-master. */
static void replicas_value(spk_srv_ctx *c, spk_buf *b, int kind,
                           uint32_t max) {
  spk_srv_view *v = spk_srv_view_of(c->node);
  for (uint32_t i = 0; i < c->srv->n_ns; i++) {
    spk_srv_ns *ns = c->srv->ns[i];
    const spk_srv_view_ns *vn = v ? &v->ns[i] : NULL;
    uint32_t rf = vn ? vn->rf : 1;
    if (max && rf > max) rf = max;
    if (i) spk_srv_buf_str(b, ";");
    spk_srv_buf_printf(b, "%s:", ns->cfg.name);
    if (kind == 0) spk_srv_buf_printf(b, "%u,", vn ? vn->regime : 0);
    if (kind != 2) spk_srv_buf_printf(b, "%u", rf);
    static const uint8_t zero[SPK_REPLICA_BITMAP_BYTES];
    for (uint32_t r = 0; r < (kind == 2 ? 1 : rf); r++) {
      if (kind != 2) spk_srv_buf_str(b, ",");
      bitmap_b64(b, vn ? vn->bitmap[r] : zero);
    }
  }
}

static bool cluster_stable(spk_srv_ctx *c, const cmd *cm, spk_buf *b) {
  spk_srv_view *v = spk_srv_view_of(c->node);
  const char *val;
  size_t len;
  if (param(cm, "namespace", &val, &len) &&
      !spk_srv_ns_find(c->srv, (const uint8_t *)val, len)) {
    spk_srv_buf_str(b, "ERROR:4:namespace not found");
    return true;
  }
  if (!v || !v->stable) {
    spk_srv_buf_str(b, "ERROR:7:unstable cluster");
    return true;
  }
  if (param(cm, "size", &val, &len)) {
    if ((size_t)snprintf(NULL, 0, "%u", v->n_members) != len ||
        param_uint(val, len) != v->n_members) {
      spk_srv_buf_str(b, "ERROR:7:cluster size mismatch");
      return true;
    }
  }
  spk_srv_buf_printf(b, "%" PRIX64, v->cluster_key);
  return true;
}

static void truncate_cmd(spk_srv_ctx *c, const cmd *cm, spk_buf *b,
                         bool whole_ns) {
  const char *ns_name, *set_name = NULL, *lut;
  size_t ns_len, set_len = 0, lut_len;
  if (!param(cm, "namespace", &ns_name, &ns_len) &&
      !param(cm, "ns", &ns_name, &ns_len)) {
    spk_srv_buf_str(b, "ERROR:4:namespace is required");
    return;
  }
  spk_srv_ns *ns = spk_srv_ns_find(c->srv, (const uint8_t *)ns_name, ns_len);
  if (!ns) {
    spk_srv_buf_str(b, "ERROR:4:namespace not found");
    return;
  }
  uint64_t now = spk_srv_now_ms(), cut = now;
  if (param(cm, "lut", &lut, &lut_len)) {
    char tmp[32];
    if (lut_len == 0 || lut_len >= sizeof tmp) {
      spk_srv_buf_str(b, "ERROR:4:bad lut");
      return;
    }
    memcpy(tmp, lut, lut_len);
    tmp[lut_len] = '\0';
    uint64_t ns_time = strtoull(tmp, NULL, 10); /* ns since Unix epoch */
    cut = ns_time / 1000000u;
    if (cut > now) {
      spk_srv_buf_str(b, "ERROR:4:lut is in the future");
      return;
    }
  }
  if (!whole_ns && param(cm, "set", &set_name, &set_len)) {
    int id = spk_srv_set_id(ns, (const uint8_t *)set_name, set_len, true);
    if (id <= 0) {
      spk_srv_buf_str(b, "ERROR:4:bad set name");
      return;
    }
    atomic_store(&ns->sets[id - 1].truncate_lut_ms, cut);
    spk_srv_truncate(ns, id, cut);
  } else {
    atomic_store(&ns->truncate_lut_ms, cut);
    spk_srv_truncate(ns, 0, cut);
  }
  spk_srv_buf_str(b, "ok");
}

/* ---- one command ------------------------------------------------------------------------ */

static void answer(spk_srv_ctx *c, const cmd *cm, spk_buf *b) {
  spk_srv *s = c->srv;
  spk_srv_view *v = spk_srv_view_of(c->node);
  bool ee = s->cfg.enterprise;
  const char *edition = ee ? "Aerospike Enterprise Edition"
                           : "Aerospike Community Edition";
  const char *val;
  size_t len;
  if (name_is(cm, "node")) {
    spk_srv_buf_str(b, c->node->name);
  } else if (name_is(cm, "build")) {
    spk_srv_buf_str(b, SPK_SRV_BUILD);
  } else if (name_is(cm, "edition")) {
    spk_srv_buf_str(b, edition);
  } else if (name_is(cm, "version")) {
    spk_srv_buf_printf(b, "%s build %s", edition, SPK_SRV_BUILD);
  } else if (name_is(cm, "compatibility-id")) {
    spk_srv_buf_str(b, "15");
  } else if (name_is(cm, "build_ee_sha")) {
    if (ee) spk_srv_buf_str(b, BUILD_SHA);
  } else if (name_is(cm, "build_sha")) {
    spk_srv_buf_str(b, BUILD_SHA);
  } else if (name_is(cm, "build_arch")) {
    struct utsname u;
    spk_srv_buf_str(b, uname(&u) == 0 ? u.machine : "x86_64");
  } else if (name_is(cm, "build_time")) {
    spk_srv_buf_str(b, BUILD_TIME);
  } else if (name_is(cm, "build_os")) {
    spk_srv_buf_str(b, "debian12");
  } else if (name_is(cm, "features")) {
    spk_srv_buf_str(b, FEATURES);
  } else if (name_is(cm, "partition-generation")) {
    spk_srv_buf_printf(b, "%d", v ? v->partition_gen : -1);
  } else if (name_is(cm, "peers-generation")) {
    spk_srv_buf_printf(b, "%" PRIu64, v ? v->peers_gen : 0);
  } else if (name_is(cm, "rebalance-generation")) {
    spk_srv_buf_printf(b, "%" PRIu64, v ? v->rebalance_gen : 0);
  } else if (name_is(cm, "peers-clear-std")) {
    peers_value(c, b, false);
  } else if (name_is(cm, "peers-clear-alt")) {
    peers_value(c, b, true);
  } else if (name_is(cm, "service-clear-std") || name_is(cm, "service")) {
    spk_srv_buf_printf(b, "127.0.0.1:%u", c->node->port);
  } else if (name_is(cm, "service-clear-alt")) {
    /* no alternate-access-address configured */
  } else if (name_is(cm, "services") || name_is(cm, "services-alumni")) {
    services_value(c, b);
  } else if (name_is(cm, "services-alternate")) {
  } else if (name_is(cm, "peers-tls-std") || name_is(cm, "peers-tls-alt") ||
             name_is(cm, "service-tls-std") || name_is(cm, "service-tls-alt")) {
    if (!ee) spk_srv_buf_str(b, "ERROR:25:enterprise only");
    else if (cm->name[0] == 'p')
      spk_srv_buf_printf(b, "%" PRIu64 ",,[]", v ? v->peers_gen : 0);
  } else if (name_is(cm, "racks")) {
    if (!ee) {
      spk_srv_buf_str(b, "ERROR:25:enterprise only");
    } else {
      for (uint32_t i = 0; i < s->n_ns; i++) {
        if (i) spk_srv_buf_str(b, ";");
        spk_srv_buf_printf(b, "ns=%s:rack_0=", s->ns[i]->cfg.name);
        for (uint32_t m = 0; v && m < v->n_members; m++)
          spk_srv_buf_printf(b, "%s%s", m ? "," : "",
                             s->nodes[v->members[m]].name);
      }
    }
  } else if (name_is(cm, "rack-ids")) {
    if (!ee) {
      spk_srv_buf_str(b, "ERROR:25:enterprise only");
    } else {
      for (uint32_t i = 0; i < s->n_ns; i++)
        spk_srv_buf_printf(b, "%s%s:0", i ? ";" : "", s->ns[i]->cfg.name);
    }
  } else if (name_is(cm, "replicas")) {
    uint32_t max = 0;
    if (param(cm, "max", &val, &len)) max = param_uint(val, len);
    replicas_value(c, b, 0, max);
  } else if (name_is(cm, "replicas-all")) {
    replicas_value(c, b, 1, 0);
  } else if (name_is(cm, "replicas-master")) {
    replicas_value(c, b, 2, 0);
  } else if (name_is(cm, "cluster-name")) {
    spk_srv_buf_str(b, s->cfg.cluster_name[0] ? s->cfg.cluster_name : "null");
  } else if (name_is(cm, "cluster-stable")) {
    cluster_stable(c, cm, b);
  } else if (name_is(cm, "namespaces")) {
    for (uint32_t i = 0; i < s->n_ns; i++)
      spk_srv_buf_printf(b, "%s%s", i ? ";" : "", s->ns[i]->cfg.name);
  } else if (name_is(cm, "namespace")) {
    spk_srv_ns *ns = arg(cm, 0, &val, &len)
                         ? spk_srv_ns_find(s, (const uint8_t *)val, len)
                         : NULL;
    if (ns) spk_srv_info_namespace(c, b, ns);
    else spk_srv_buf_str(b, "type=unknown");
  } else if (name_is(cm, "sets")) {
    spk_srv_ns *ns = NULL;
    const char *set = NULL;
    size_t set_len = 0;
    if (arg(cm, 0, &val, &len)) {
      ns = spk_srv_ns_find(s, (const uint8_t *)val, len);
      if (!ns) return; /* unknown namespace: empty, like no sets */
      arg(cm, 1, &set, &set_len);
    }
    spk_srv_info_sets(c, b, ns, set, set_len);
  } else if (name_is(cm, "statistics")) {
    spk_srv_info_statistics(c, b);
  } else if (name_is(cm, "partitions")) {
    spk_srv_buf_str(b, "4096");
  } else if (name_is(cm, "status")) {
    spk_srv_buf_str(b, "ok");
  } else if (name_is(cm, "user-agent-set")) {
    spk_srv_buf_str(b, "ok");
  } else if (name_is(cm, "truncate")) {
    truncate_cmd(c, cm, b, false);
  } else if (name_is(cm, "truncate-namespace")) {
    truncate_cmd(c, cm, b, true);
  } else if (name_is(cm, "sindex-create") || name_is(cm, "sindex-delete") ||
             name_is(cm, "sindex-list") || name_is(cm, "sindex-stat") ||
             name_is(cm, "sindex-exists") || name_is(cm, "sindex")) {
    char nm[32];
    memcpy(nm, cm->name, cm->name_len);
    nm[cm->name_len] = '\0';
    spk_srv_sindex_info(c, b, nm, cm->args, cm->args_len, cm->params, cm->params_len);
  } else if (name_is(cm, "udf-list")) {
    /* No UDFs exist in the embedded server. */
  } else {
    spk_srv_buf_str(b, "ERROR:4:unrecognized command");
  }
}

static void summary(spk_srv_ctx *c, spk_buf *b) {
  static const char *const names[] = {
      "features", "node", "compatibility-id", "edition", "build_ee_sha",
      "build_sha", "build_arch", "build_time", "build_os", "build", "version",
      "statistics", "services-alumni", "services", "partition-generation"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    cmd cm = {0};
    cm.name = names[i];
    cm.name_len = strlen(names[i]);
    spk_srv_buf_str(b, names[i]);
    spk_srv_buf_str(b, "\t");
    answer(c, &cm, b);
    spk_srv_buf_str(b, "\n");
  }
}

void spk_srv_info(spk_srv_ctx *c, const uint8_t *body, size_t len) {
  atomic_fetch_add_explicit(&c->node->n_info, 1, memory_order_relaxed);
  size_t start = c->out.len;
  if (!spk_buf_extend(&c->out, 8)) return;
  if (len == 0) {
    summary(c, &c->out);
  } else {
    const char *p = (const char *)body, *e = p + len;
    while (p < e) {
      const char *nl = memchr(p, '\n', (size_t)(e - p));
      if (!nl) break; /* an unterminated last command is not answered */
      cmd cm = {0};
      cm.line = p;
      cm.line_len = (size_t)(nl - p);
      if (cm.line_len) {
        const char *colon = memchr(p, ':', cm.line_len);
        const char *head_end = colon ? colon : nl;
        const char *slash = memchr(p, '/', (size_t)(head_end - p));
        cm.name = p;
        cm.name_len = (size_t)((slash ? slash : head_end) - p);
        if (slash) {
          cm.args = slash + 1;
          cm.args_len = (size_t)(head_end - slash - 1);
        }
        if (colon) {
          cm.params = colon + 1;
          cm.params_len = (size_t)(nl - colon - 1);
        }
        (void)spk_buf_append(&c->out, p, cm.line_len);
        spk_srv_buf_str(&c->out, "\t");
        if (cm.name_len == 0 || cm.name_len > 31)
          spk_srv_buf_str(&c->out, "ERROR:4:unrecognized command");
        else
          answer(c, &cm, &c->out);
        spk_srv_buf_str(&c->out, "\n");
      }
      p = nl + 1;
    }
  }
  spk_proto_write(c->out.data + start, SPK_PROTO_INFO, c->out.len - start - 8);
}
