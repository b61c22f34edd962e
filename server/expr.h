/*
 * expr.h - shared internals of the expression builder (expr.c) and
 * evaluator (expr_eval.c).  Not part of the server-wide API (srv.h).
 */
#ifndef SPK_SRV_EXPR_H
#define SPK_SRV_EXPR_H

#include <regex.h>

#include "spk_msgpack.h"
#include "srv.h"

/* Expression value types (the wire's result-type codes). */
enum { T_NIL, T_BOOL, T_INT, T_STR, T_LIST, T_MAP, T_BLOB, T_FLOAT, T_GEO, T_HLL, T_END };
#define T_UNK 0xff /* runtime only: unknown */

#define N_LIT 0xfe /* node op of literals */

/* A value: type plus the member that type uses. */
typedef struct xv {
  uint8_t t;
  bool b;
  int64_t i;
  double d;
  const uint8_t *p; /* STR/BLOB/HLL bytes, GEO json, LIST/MAP/END msgpack */
  uint32_t n;
} xv;

/* A built node: opcode, static result type, children, static parameters. */
typedef struct xn {
  uint8_t op, type;
  uint32_t kid, nk;  /* children: kid .. kid + nk - 1 */
  int64_t a;         /* static int parameter */
  const uint8_t *s;  /* bin name, call op list */
  uint32_t sn;
  regex_t *re;
  xv v;              /* literal */
} xn;

typedef struct blk {
  struct blk *next;
  uint8_t d[];
} blk;

typedef struct xvar {
  const uint8_t *name;
  uint32_t len;
  uint8_t type; /* T_END while being defined */
} xvar;

/* One expression: its nodes (node 0 is the root), the let variables in
 * scope while building, and evaluation state. */
typedef struct ex {
  xn *n;
  uint32_t nn, cap;
  xvar *vars;
  uint32_t nvars, vcap;
  int depth;
  const spk_srv_exp_env *env;
  xv *slots;
  blk *mem;
  bool oom;
} ex;

/* Scratch memory of one expression, freed with it. */
void *spk_srv_exp_alloc(ex *x, size_t n);

static inline const uint8_t *ex_copy(ex *x, const uint8_t *p, uint32_t n) {
  uint8_t *m = spk_srv_exp_alloc(x, n);
  if (m && n) memcpy(m, p, n);
  return m;
}

static inline bool rd_skip(spk_mp_reader *r) {
  size_t sz = r->p < r->end ? spk_srv_mp_size(r->p, r->end) : 0;
  if (!sz) return false;
  r->p += sz;
  return true;
}

static inline bool rd_int(spk_mp_reader *r, int64_t *v) {
  spk_mp_item it;
  if (spk_mp_next(r, &it) != 0) return false;
  if (it.type == SPK_MP_INT) *v = it.v.i;
  else if (it.type == SPK_MP_UINT) *v = (int64_t)it.v.u;
  else return false;
  return true;
}

static inline bool is_array_byte(uint8_t b) {
  return (b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd;
}

/* Expression value type -> bin particle type. */
static const uint8_t spk_srv_exp_particle[T_END] = {
    [T_NIL] = SPK_PARTICLE_NULL,      [T_BOOL] = SPK_PARTICLE_BOOL,
    [T_INT] = SPK_PARTICLE_INTEGER,   [T_STR] = SPK_PARTICLE_STRING,
    [T_LIST] = SPK_PARTICLE_LIST,     [T_MAP] = SPK_PARTICLE_MAP,
    [T_BLOB] = SPK_PARTICLE_BLOB,     [T_FLOAT] = SPK_PARTICLE_FLOAT,
    [T_GEO] = SPK_PARTICLE_GEOJSON,   [T_HLL] = SPK_PARTICLE_HLL};

/* Evaluate node i (expr_eval.c). */
void spk_srv_exp_eval(ex *x, uint32_t i, xv *o);

#endif /* SPK_SRV_EXPR_H */
