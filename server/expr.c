/*
 * expr.c - expressions: FILTER fields and EXP_READ / EXP_MODIFY ops.
 *
 * An expression is one msgpack value: an array [opcode, args...] is an
 * instruction, anything else a literal.  It is first built into a small tree
 * of nodes; building also type-checks it the way the real server does, so a
 * mistyped or malformed expression is rejected (result 4) before anything is
 * evaluated.  Evaluation against a record yields a value or "unknown" (a
 * missing bin, a bin of another type, a division by zero...): a filter that
 * is not true filters the record out (27), an expression op whose result is
 * unknown fails with 26 unless EVAL_NO_FAIL is set.
 *
 * Not implemented (see README): bit and HLL calls (they evaluate to
 * unknown), path expressions (0xfe) inside calls, loop variables (122) and
 * result_remove (100), which are rejected as unknown opcodes.
 */
#include <ctype.h>
#include <regex.h>
#include <stdlib.h>

#include "expr.h"

#define N(i) (x->n[(i)])
#define MAX_DEPTH 128
#define EXP_MAX_SIZE (1024 * 1024)

/* Flags of EXP_READ / EXP_MODIFY op values. */
#define XF_CREATE_ONLY 1
#define XF_UPDATE_ONLY 2
#define XF_ALLOW_DELETE 4
#define XF_POLICY_NO_FAIL 8
#define XF_EVAL_NO_FAIL 16

/* ---- memory ------------------------------------------------------------------ */

void *spk_srv_exp_alloc(ex *x, size_t n) {
  blk *b = malloc(sizeof *b + (n ? n : 1));
  if (!b) {
    x->oom = true;
    return NULL;
  }
  b->next = x->mem;
  x->mem = b;
  return b->d;
}


static void ex_free(ex *x) {
  for (uint32_t i = 0; i < x->nn; i++) {
    if (x->n[i].re) {
      regfree(x->n[i].re);
      free(x->n[i].re);
    }
  }
  free(x->n);
  free(x->vars);
  free(x->slots);
  while (x->mem) {
    blk *b = x->mem;
    x->mem = b->next;
    free(b);
  }
}

/* k fresh nodes; index of the first, or -1. */
static int64_t node_new(ex *x, uint32_t k) {
  if (x->nn + k > x->cap) {
    uint32_t cap = x->cap ? x->cap : 16;
    while (cap < x->nn + k) cap *= 2;
    xn *n = realloc(x->n, cap * sizeof *n);
    if (!n) return -1;
    x->n = n;
    x->cap = cap;
  }
  memset(x->n + x->nn, 0, k * sizeof *x->n);
  x->nn += k;
  return x->nn - k;
}

/* ---- build -------------------------------------------------------------------- */


static bool rd_name(spk_mp_reader *r, const uint8_t **p, uint32_t *n) {
  spk_mp_item it;
  if (spk_mp_next(r, &it) != 0 || (it.type != SPK_MP_STR && it.type != SPK_MP_BIN))
    return false;
  *p = it.v.s.p;
  *n = it.v.s.len;
  return true;
}



/* List / map literals are validated, and unordered maps sorted, like bins. */
static int canon(ex *x, uint8_t ptype, const uint8_t *p, uint32_t n, xv *v) {
  spk_srv_ctx *c = x->env->c;
  size_t save = c->scratch.len, off;
  bool rewritten = false;
  uint32_t olen;
  if (spk_srv_cdt_validate(c, ptype, p, n, &rewritten, &off, &olen) != 0) {
    c->scratch.len = save;
    return -1;
  }
  if (rewritten) {
    p = ex_copy(x, c->scratch.data + off, olen);
    n = olen;
  }
  c->scratch.len = save;
  if (!p) return -1;
  v->p = p;
  v->n = n;
  return 0;
}

static bool geo_valid(const uint8_t *json, uint32_t n) {
  uint8_t *tmp = malloc(3 + (size_t)n);
  if (!tmp) return false;
  tmp[0] = tmp[1] = tmp[2] = 0;
  if (n) memcpy(tmp + 3, json, n);
  spk_buf out = {0};
  int rc = spk_srv_geo_from_client(tmp, 3 + n, &out);
  spk_buf_free(&out);
  free(tmp);
  return rc == 0;
}

static int build_lit(ex *x, spk_mp_reader *r, const uint8_t *start,
                     const spk_mp_item *it, uint32_t at) {
  xn *nd = &N(at);
  nd->op = N_LIT;
  switch (it->type) {
  case SPK_MP_NIL:
    nd->type = T_NIL;
    break;
  case SPK_MP_BOOL:
    nd->type = T_BOOL;
    nd->v.b = it->v.b;
    break;
  case SPK_MP_INT:
    nd->type = T_INT;
    nd->v.i = it->v.i;
    break;
  case SPK_MP_UINT:
    nd->type = T_INT;
    nd->v.i = (int64_t)it->v.u;
    break;
  case SPK_MP_FLOAT:
  case SPK_MP_DOUBLE:
    nd->type = T_FLOAT;
    nd->v.d = it->v.d;
    break;
  case SPK_MP_STR:
  case SPK_MP_BIN: {
    if (it->v.s.len == 0) return -1;
    const uint8_t *p = it->v.s.p + 1;
    uint32_t n = it->v.s.len - 1;
    switch (it->v.s.p[0]) {
    case SPK_PARTICLE_STRING: nd->type = T_STR; break;
    case SPK_PARTICLE_BLOB: nd->type = T_BLOB; break;
    case SPK_PARTICLE_HLL: nd->type = T_HLL; break;
    case SPK_PARTICLE_GEOJSON:
      if (!geo_valid(p, n)) return -1;
      nd->type = T_GEO;
      break;
    default:
      return -1;
    }
    nd->v.p = p;
    nd->v.n = n;
    break;
  }
  case SPK_MP_MAP: {
    r->p = start;
    if (!rd_skip(r)) return -1;
    xv v;
    if (canon(x, SPK_PARTICLE_MAP, start, (uint32_t)(r->p - start), &v)) return -1;
    nd = &N(at);
    nd->type = T_MAP;
    nd->v = v;
    break;
  }
  default: /* ext (wildcard, infinity): opaque msgpack, no expression type */
    nd->type = T_END;
    nd->v.p = start;
    nd->v.n = (uint32_t)(r->p - start);
    break;
  }
  N(at).v.t = N(at).type;
  return 0;
}

static int build(ex *x, spk_mp_reader *r, uint32_t at);

/* Build n children of node `at` from the reader. */
static int kids(ex *x, spk_mp_reader *r, uint32_t at, uint32_t n) {
  int64_t k = node_new(x, n);
  if (k < 0) return -1;
  N(at).kid = (uint32_t)k;
  N(at).nk = n;
  for (uint32_t i = 0; i < n; i++)
    if (build(x, r, (uint32_t)k + i)) return -1;
  return 0;
}

#define KT(i) (N(N(at).kid + (i)).type)

static bool all_of(ex *x, uint32_t at, uint8_t t) {
  for (uint32_t i = 0; i < N(at).nk; i++)
    if (KT(i) != t) return false;
  return true;
}

static int build_regex(ex *x, spk_mp_reader *r, uint32_t at) {
  int64_t flags;
  const uint8_t *pat;
  uint32_t plen;
  if (!rd_int(r, &flags) || !rd_name(r, &pat, &plen)) return -1;
  if (kids(x, r, at, 1) || KT(0) != T_STR) return -1;
  char *tmp = malloc((size_t)plen + 1);
  regex_t *re = malloc(sizeof *re);
  if (!tmp || !re) {
    free(tmp);
    free(re);
    return -1;
  }
  if (plen) memcpy(tmp, pat, plen);
  tmp[plen] = '\0';
  int rc = regcomp(re, tmp, (int)flags);
  free(tmp);
  if (rc != 0) {
    free(re);
    return -1;
  }
  N(at).re = re;
  N(at).type = T_BOOL;
  return 0;
}

static int build_cond(ex *x, spk_mp_reader *r, uint32_t at, uint32_t argc) {
  if (argc < 3 || argc % 2 == 0 || kids(x, r, at, argc)) return -1;
  bool set = false;
  uint8_t t = T_END;
  for (uint32_t i = 0; i + 1 < argc; i += 2) {
    if (KT(i) != T_BOOL) return -1;
    const xn *v = &N(N(at).kid + i + 1);
    if (v->op == 0) continue; /* unknown fits any branch type */
    if (!set) {
      t = v->type;
      set = true;
    } else if (v->type != t) {
      return -1;
    }
  }
  const xn *d = &N(N(at).kid + argc - 1);
  if (!set) t = d->type;
  else if (d->op != 0 && d->type != t) return -1;
  if (t >= T_END) return -1;
  N(at).type = t;
  return 0;
}

static int find_var(ex *x, const uint8_t *name, uint32_t len) {
  for (uint32_t i = x->nvars; i-- > 0;)
    if (x->vars[i].len == len && memcmp(x->vars[i].name, name, len) == 0)
      return (int)i;
  return -1;
}

static int build_let(ex *x, spk_mp_reader *r, uint32_t at, uint32_t argc) {
  if (argc < 3 || argc % 2 == 0) return -1;
  uint32_t nv = argc / 2;
  int64_t k = node_new(x, nv + 1);
  if (k < 0) return -1;
  N(at).kid = (uint32_t)k;
  N(at).nk = nv + 1;
  N(at).a = x->nvars;
  for (uint32_t i = 0; i < nv; i++) {
    const uint8_t *name;
    uint32_t len;
    if (!rd_name(r, &name, &len) || len == 0) return -1;
    if (name[0] != '_' && !isalpha(name[0])) return -1;
    for (uint32_t j = 1; j < len; j++)
      if (name[j] != '_' && !isalnum(name[j])) return -1;
    if (find_var(x, name, len) >= 0) return -1;
    if (x->nvars == x->vcap) {
      uint32_t cap = x->vcap ? 2 * x->vcap : 8;
      xvar *v = realloc(x->vars, cap * sizeof *v);
      if (!v) return -1;
      x->vars = v;
      x->vcap = cap;
    }
    uint32_t slot = x->nvars++;
    x->vars[slot] = (xvar){name, len, T_END};
    if (build(x, r, (uint32_t)k + i)) return -1;
    x->vars[slot].type = N((uint32_t)k + i).type;
  }
  if (build(x, r, (uint32_t)k + nv)) return -1;
  N(at).type = N((uint32_t)k + nv).type;
  x->nvars -= nv;
  return 0;
}

/* [127, rtype, sys, [op, args...] | [0xff, ctx, [op, args...]], target]:
 * array arguments are expressions (children), others are copied raw. */
static int build_call(ex *x, spk_mp_reader *r, uint32_t at) {
  int64_t rtype, sys, code;
  spk_mp_item it;
  if (!rd_int(r, &rtype) || !rd_int(r, &sys) || (uint64_t)rtype >= T_END) return -1;
  const uint8_t *start = r->p;
  if (spk_mp_next(r, &it) != 0 || it.type != SPK_MP_ARRAY || it.v.n == 0 ||
      !rd_int(r, &code))
    return -1;
  uint32_t n = it.v.n - 1;
  if (code == 0xff) {
    if (it.v.n != 3 || !rd_skip(r)) return -1; /* the context */
    if (spk_mp_next(r, &it) != 0 || it.type != SPK_MP_ARRAY || it.v.n == 0 ||
        !rd_int(r, &code))
      return -1;
    n = it.v.n - 1;
  }
  const uint8_t *args = r->p;
  uint32_t n_eval = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (r->p >= r->end) return -1;
    if (is_array_byte(*r->p)) n_eval++;
    if (!rd_skip(r)) return -1;
  }
  N(at).s = start;
  N(at).sn = (uint32_t)(r->p - start);
  int64_t k = node_new(x, n_eval + 1);
  if (k < 0) return -1;
  N(at).kid = (uint32_t)k;
  N(at).nk = n_eval + 1;
  r->p = args;
  for (uint32_t i = 0, j = 0; i < n; i++) {
    if (is_array_byte(*r->p)) {
      if (build(x, r, (uint32_t)k + j++)) return -1;
    } else if (!rd_skip(r)) {
      return -1;
    }
  }
  if (build(x, r, (uint32_t)k + n_eval)) return -1;
  uint8_t tt = N((uint32_t)k + n_eval).type;
  if (tt != T_NIL) {
    switch (sys & ~(int64_t)0x40) {
    case 0: if (tt != T_LIST && tt != T_MAP) return -1; break;
    case 1: if (tt != T_BLOB) return -1; break;
    case 2: if (tt != T_HLL) return -1; break;
    default: return -1;
    }
  }
  N(at).a = sys;
  N(at).type = (uint8_t)rtype;
  return 0;
}

static int build1(ex *x, spk_mp_reader *r, uint32_t at) {
  const uint8_t *start = r->p;
  spk_mp_item it;
  if (spk_mp_next(r, &it) != 0) return -1;
  if (it.type != SPK_MP_ARRAY) return build_lit(x, r, start, &it, at);
  if (it.v.n == 0) return -1;
  uint32_t argc = it.v.n - 1;
  spk_mp_item oc;
  if (spk_mp_next(r, &oc) != 0 || oc.type != SPK_MP_INT || oc.v.i < 0 || oc.v.i > 127)
    return -1;
  int code = (int)oc.v.i;
  N(at).op = (uint8_t)code;
  switch (code) {
  case 0:
    if (argc) return -1;
    N(at).type = T_BOOL;
    return 0;
  case 1: case 2: case 3: case 4: case 5: case 6:
    if (argc != 2 || kids(x, r, at, 2) || KT(0) != KT(1) || KT(0) == T_GEO ||
        KT(0) == T_HLL)
      return -1;
    N(at).type = T_BOOL;
    return 0;
  case 7:
    return argc == 3 ? build_regex(x, r, at) : -1;
  case 8:
    if (argc != 2 || kids(x, r, at, 2) || KT(0) != T_GEO || KT(1) != T_GEO) return -1;
    N(at).type = T_BOOL;
    return 0;
  case 9:
    if (argc != 2 || kids(x, r, at, 2) || KT(1) != T_LIST) return -1;
    N(at).type = T_BOOL;
    return 0;
  case 16: case 17: case 19:
    if (argc < 2 || kids(x, r, at, argc) || !all_of(x, at, T_BOOL)) return -1;
    N(at).type = T_BOOL;
    return 0;
  case 18:
    if (argc != 1 || kids(x, r, at, 1) || KT(0) != T_BOOL) return -1;
    N(at).type = T_BOOL;
    return 0;
  case 20: case 21: case 22: case 23: case 50: case 51:
    if (argc < 1 || kids(x, r, at, argc)) return -1;
    if (KT(0) != T_INT && KT(0) != T_FLOAT) return -1;
    if (!all_of(x, at, KT(0))) return -1;
    N(at).type = KT(0);
    return 0;
  case 24: case 25:
    if (argc != 2 || kids(x, r, at, 2) || KT(0) != T_FLOAT || KT(1) != T_FLOAT) return -1;
    N(at).type = T_FLOAT;
    return 0;
  case 26: case 36: case 37: case 38:
    if (argc != 2 || kids(x, r, at, 2) || KT(0) != T_INT || KT(1) != T_INT) return -1;
    N(at).type = T_INT;
    return 0;
  case 27:
    if (argc != 1 || kids(x, r, at, 1) || (KT(0) != T_INT && KT(0) != T_FLOAT)) return -1;
    N(at).type = KT(0);
    return 0;
  case 28: case 29: case 30:
    if (argc != 1 || kids(x, r, at, 1) || KT(0) != T_FLOAT) return -1;
    N(at).type = code == 30 ? T_INT : T_FLOAT;
    return 0;
  case 31: case 35: case 39:
    if (argc != 1 || kids(x, r, at, 1) || KT(0) != T_INT) return -1;
    N(at).type = code == 31 ? T_FLOAT : T_INT;
    return 0;
  case 32: case 33: case 34:
    if (argc < 1 || kids(x, r, at, argc) || !all_of(x, at, T_INT)) return -1;
    N(at).type = T_INT;
    return 0;
  case 40: case 41:
    if (argc != 2 || kids(x, r, at, 2) || KT(0) != T_INT || KT(1) != T_BOOL) return -1;
    N(at).type = T_INT;
    return 0;
  case 64: {
    int64_t mod;
    if (argc != 1 || !rd_int(r, &mod) || (int32_t)mod == 0) return -1;
    N(at).a = (int32_t)mod;
    N(at).type = T_INT;
    return 0;
  }
  case 65: case 66: case 67: case 68: case 69: case 70: case 71: case 72:
  case 73: case 74:
    if (argc) return -1;
    N(at).type = code == 70 ? T_STR : (code == 71 || code == 72) ? T_BOOL : T_INT;
    return 0;
  case 80: {
    int64_t t;
    if (argc != 1 || !rd_int(r, &t) || (t != T_INT && t != T_STR && t != T_BLOB))
      return -1;
    N(at).type = (uint8_t)t;
    return 0;
  }
  case 81: {
    int64_t t;
    const uint8_t *name;
    uint32_t len;
    if (argc != 2 || !rd_int(r, &t) || !rd_name(r, &name, &len) ||
        len > SPK_BIN_NAME_MAX || (uint64_t)t >= T_END)
      return -1;
    N(at).s = name;
    N(at).sn = len;
    N(at).type = (uint8_t)t;
    return 0;
  }
  case 82: {
    const uint8_t *name;
    uint32_t len;
    if (argc != 1 || !rd_name(r, &name, &len) || len > SPK_BIN_NAME_MAX) return -1;
    N(at).s = name;
    N(at).sn = len;
    N(at).type = T_INT;
    return 0;
  }
  case 101: case 102:
    if (argc != 1 || kids(x, r, at, 1) || KT(0) != T_MAP) return -1;
    N(at).type = T_LIST;
    return 0;
  case 123:
    return build_cond(x, r, at, argc);
  case 124: {
    const uint8_t *name;
    uint32_t len;
    if (argc != 1 || !rd_name(r, &name, &len)) return -1;
    int v = find_var(x, name, len);
    if (v < 0 || x->vars[v].type >= T_END) return -1;
    N(at).a = v;
    N(at).type = x->vars[v].type;
    return 0;
  }
  case 125:
    return build_let(x, r, at, argc);
  case 126: {
    const uint8_t *q = r->p;
    if (argc != 1 || q >= r->end || !is_array_byte(*q) || !rd_skip(r)) return -1;
    xv v;
    if (canon(x, SPK_PARTICLE_LIST, q, (uint32_t)(r->p - q), &v)) return -1;
    N(at).op = N_LIT;
    N(at).type = T_LIST;
    N(at).v = v;
    N(at).v.t = T_LIST;
    return 0;
  }
  case 127:
    return argc == 4 ? build_call(x, r, at) : -1;
  default:
    return -1;
  }
}

static int build(ex *x, spk_mp_reader *r, uint32_t at) {
  if (++x->depth > MAX_DEPTH) return -1;
  int rc = build1(x, r, at);
  x->depth--;
  return rc;
}

/* Build a whole expression; root node is 0. */
static int ex_build(ex *x, const uint8_t *p, uint32_t len) {
  if (len == 0 || len >= EXP_MAX_SIZE || node_new(x, 1) != 0) return -1;
  spk_mp_reader r;
  spk_mp_reader_init(&r, p, len);
  if (build(x, &r, 0) != 0 || r.p != r.end || N(0).type >= T_END) return -1;
  if (x->vcap) {
    x->slots = calloc(x->vcap, sizeof *x->slots);
    if (!x->slots) return -1;
  }
  return 0;
}

/* ---- results as particles -------------------------------------------------------------- */

/* Append a value as a bin particle to scratch: 0, or -1 (not a bin value). */
static int to_particle(ex *x, const xv *v, uint8_t *ptype, size_t *off,
                       uint32_t *len) {
  spk_buf *s = &x->env->c->scratch;
  *off = s->len;
  uint8_t tmp[8];
  const uint8_t *p = tmp;
  uint32_t n;
  switch (v->t) {
  case T_NIL: *ptype = SPK_PARTICLE_NULL; n = 0; break;
  case T_BOOL: *ptype = SPK_PARTICLE_BOOL; tmp[0] = v->b; n = 1; break;
  case T_INT: *ptype = SPK_PARTICLE_INTEGER; spk_put_be64(tmp, (uint64_t)v->i); n = 8; break;
  case T_FLOAT: {
    uint64_t u;
    memcpy(&u, &v->d, 8);
    *ptype = SPK_PARTICLE_FLOAT;
    spk_put_be64(tmp, u);
    n = 8;
    break;
  }
  case T_GEO: {
    /* The stored form (with its cell) is what a bin read returns. */
    uint8_t *in = malloc(3 + (size_t)v->n);
    if (!in) return -1;
    in[0] = in[1] = in[2] = 0;
    if (v->n) memcpy(in + 3, v->p, v->n);
    int rc = spk_srv_geo_from_client(in, 3 + v->n, s);
    free(in);
    if (rc) {
      s->len = *off;
      return -1;
    }
    *ptype = SPK_PARTICLE_GEOJSON;
    *len = (uint32_t)(s->len - *off);
    return 0;
  }
  case T_END: /* opaque msgpack: only containers make bins */
    if (v->n == 0) return -1;
    if (is_array_byte(v->p[0])) *ptype = SPK_PARTICLE_LIST;
    else if ((v->p[0] & 0xf0) == 0x80 || v->p[0] == 0xde || v->p[0] == 0xdf)
      *ptype = SPK_PARTICLE_MAP;
    else return -1;
    p = v->p;
    n = v->n;
    break;
  case T_UNK:
    return -1;
  default:
    *ptype = spk_srv_exp_particle[v->t];
    p = v->p;
    n = v->n;
    break;
  }
  if (n && spk_buf_append(s, p, n) != 0) return -1;
  *len = n;
  return 0;
}

/* ---- entry points ------------------------------------------------------------------------ */

int spk_srv_filter(const spk_srv_exp_env *env, const uint8_t *exp, uint32_t len) {
  ex x = {0};
  x.env = env;
  int rc;
  if (ex_build(&x, exp, len) != 0 || x.n[0].type != T_BOOL) {
    rc = SPK_SRV_ERR_PARAMETER;
  } else {
    xv v;
    spk_srv_exp_eval(&x, 0, &v);
    rc = x.oom ? SPK_SRV_ERR_UNKNOWN
                : (v.t == T_BOOL && v.b) ? 0 : SPK_SRV_ERR_FILTERED_OUT;
  }
  ex_free(&x);
  return rc;
}

int spk_srv_exp_check_filter(spk_srv_ctx *c, const uint8_t *exp, uint32_t len) {
  spk_srv_exp_env env = {c, NULL, NULL, NULL, NULL, 0};
  ex x = {0};
  x.env = &env;
  int rc = ex_build(&x, exp, len) != 0 || x.n[0].type != T_BOOL ? SPK_SRV_ERR_PARAMETER : 0;
  ex_free(&x);
  return rc;
}

/* Op value: [exp] or [exp, flags]. */
static int op_parse(const spk_srv_op *o, bool modify, const uint8_t **exp,
                    uint32_t *elen, uint64_t *flags) {
  spk_mp_reader r;
  spk_mp_item it;
  spk_mp_reader_init(&r, o->val, o->len);
  if (spk_mp_next(&r, &it) != 0 || it.type != SPK_MP_ARRAY || it.v.n == 0 || it.v.n > 2)
    return SPK_SRV_ERR_PARAMETER;
  *exp = r.p;
  if (!rd_skip(&r)) return SPK_SRV_ERR_PARAMETER;
  *elen = (uint32_t)(r.p - *exp);
  *flags = 0;
  /* A second element that is not an unsigned integer leaves the flags 0. */
  if (it.v.n == 2 && spk_mp_next(&r, &it) == 0) {
    if (it.type == SPK_MP_INT && it.v.i >= 0) *flags = (uint64_t)it.v.i;
    else if (it.type == SPK_MP_UINT) *flags = it.v.u;
  }
  uint64_t allowed = modify ? (XF_CREATE_ONLY | XF_UPDATE_ONLY | XF_ALLOW_DELETE |
                               XF_POLICY_NO_FAIL | XF_EVAL_NO_FAIL)
                            : XF_EVAL_NO_FAIL;
  return (*flags & ~allowed) ? SPK_SRV_ERR_PARAMETER : 0;
}

int spk_srv_exp_read_op(const spk_srv_exp_env *env, const spk_srv_op *o,
                        spk_srv_resp_op *res, bool *has) {
  const uint8_t *exp;
  uint32_t elen;
  uint64_t flags;
  *has = false;
  int rc = op_parse(o, false, &exp, &elen, &flags);
  if (rc) return rc;
  ex x = {0};
  x.env = env;
  if (ex_build(&x, exp, elen) != 0) {
    ex_free(&x);
    return SPK_SRV_ERR_PARAMETER;
  }
  xv v;
  spk_srv_exp_eval(&x, 0, &v);
  uint8_t pt;
  size_t off;
  uint32_t len;
  res->in_scratch = true;
  if (x.oom) {
    rc = SPK_SRV_ERR_UNKNOWN;
  } else if (to_particle(&x, &v, &pt, &off, &len) == 0) {
    res->ptype = pt;
    res->off = off;
    res->len = len;
    *has = true;
  } else if (flags & XF_EVAL_NO_FAIL) {
    res->ptype = SPK_PARTICLE_NULL;
    res->off = env->c->scratch.len;
    res->len = 0;
    *has = true;
  } else {
    rc = SPK_SRV_ERR_OP_NOT_APPLICABLE;
  }
  ex_free(&x);
  return rc;
}

int spk_srv_exp_modify_op(const spk_srv_exp_env *env, const spk_srv_op *o,
                          spk_srv_bin *b, bool *exists) {
  const uint8_t *exp;
  uint32_t elen;
  uint64_t flags;
  int rc = op_parse(o, true, &exp, &elen, &flags);
  if (rc) return rc;
  ex x = {0};
  x.env = env;
  if (ex_build(&x, exp, elen) != 0) {
    ex_free(&x);
    return SPK_SRV_ERR_PARAMETER;
  }
  bool was_live = *exists;
  if (was_live && (flags & XF_CREATE_ONLY)) {
    rc = (flags & XF_POLICY_NO_FAIL) ? 0 : SPK_SRV_ERR_BIN_EXISTS;
    goto done;
  }
  if (!was_live && (flags & XF_UPDATE_ONLY)) {
    rc = (flags & XF_POLICY_NO_FAIL) ? 0 : SPK_SRV_ERR_BIN_NOT_FOUND;
    goto done;
  }
  xv v;
  spk_srv_exp_eval(&x, 0, &v);
  uint8_t pt;
  size_t off;
  uint32_t len;
  if (x.oom) {
    rc = SPK_SRV_ERR_UNKNOWN;
  } else if (to_particle(&x, &v, &pt, &off, &len) != 0) {
    rc = (flags & XF_EVAL_NO_FAIL) ? 0 : SPK_SRV_ERR_OP_NOT_APPLICABLE;
  } else if (pt == SPK_PARTICLE_NULL) {
    if (was_live && !(flags & XF_ALLOW_DELETE)) {
      /* The real server keeps the bin; it then fails only when no flag at
       * all is set (it tests "flags && POLICY_NO_FAIL"). */
      rc = flags ? 0 : SPK_SRV_ERR_OP_NOT_APPLICABLE;
    } else {
      *exists = false;
    }
  } else {
    b->ptype = pt;
    b->in_scratch = true;
    b->off = off;
    b->len = len;
    *exists = true;
  }
done:
  ex_free(&x);
  return rc;
}
