/*
 * rw.c - single-record commands with the real server's semantics: the order
 * of checks decides which result code a request gets and whether the reply
 * carries the record's generation and void time (errors found before the
 * record is looked up report 0; later ones report the record's values;
 * deletes never do).  Every command holds its partition lock from lookup to
 * reply, so a multi-op write is atomic: a failing op discards the earlier
 * ones because nothing is published until the new record is complete.
 */
#include <math.h>
#include <stdlib.h>

#include "srv.h"

/* ---- helpers ----------------------------------------------------------------------- */

static inline void stat_inc(_Atomic uint64_t *c) {
  atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static inline bool op_is_read_all(const spk_srv_op *o) {
  return o->op == SPK_OP_READ && o->name_len == 0;
}

static int emit(spk_srv_ctx *c, const spk_srv_rw_opts *o, uint8_t rc,
                uint32_t gen, uint32_t vt, const spk_srv_resp_op *ops,
                uint32_t n) {
  if (o && o->row_ix >= 0)
    spk_srv_msg_ops(c, 0, rc, gen, vt, (uint32_t)o->row_ix, ops, n);
  else if (n)
    spk_srv_reply_ops(c, rc, gen, vt, ops, n);
  else
    spk_srv_reply_header(c, rc, gen, vt);
  return rc;
}

/* Iterate the bins stored in a record (wire ops with op byte READ). */
typedef struct rec_bin {
  uint8_t ptype, name_len;
  const char *name;
  const uint8_t *val;
  uint32_t len;
  const uint8_t *op; /* start of the stored op */
  uint32_t op_len;
} rec_bin;

static const uint8_t *rec_bin_next(const uint8_t *p, rec_bin *b) {
  uint32_t op_sz = spk_be32(p);
  b->op = p;
  b->op_len = 4 + op_sz;
  b->ptype = p[5];
  b->name_len = p[7];
  b->name = (const char *)p + 8;
  b->val = p + 8 + b->name_len;
  b->len = op_sz - 4 - b->name_len;
  return p + 4 + op_sz;
}

static bool rec_find_bin(const spk_srv_rec *r, const char *name, uint8_t nlen,
                         rec_bin *out) {
  const uint8_t *p = spk_srv_rec_bins(r);
  for (uint16_t i = 0; i < r->n_bins; i++) {
    p = rec_bin_next(p, out);
    if (out->name_len == nlen && memcmp(out->name, name, nlen) == 0) return true;
  }
  return false;
}

static const char *rec_set_name(spk_srv_ns *ns, const spk_srv_rec *r,
                                uint32_t *len) {
  const spk_srv_set *st = spk_srv_set_get(ns, r->set_id);
  *len = st ? st->len : 0;
  return st ? st->name : NULL;
}

/* A message set name that is present and non-empty must match. */
static bool set_name_ok(spk_srv_ns *ns, const spk_srv_req *r,
                        const spk_srv_rec *rec) {
  if (!spk_srv_req_has(r, SPK_FIELD_SETNAME) || r->f[SPK_FIELD_SETNAME].len == 0)
    return true;
  uint32_t len;
  const char *name = rec_set_name(ns, rec, &len);
  return name && len == r->f[SPK_FIELD_SETNAME].len &&
         memcmp(name, r->f[SPK_FIELD_SETNAME].p, len) == 0;
}

static bool key_matches(const spk_srv_req *r, const spk_srv_rec *rec) {
  const spk_srv_field *k = &r->f[SPK_FIELD_KEY];
  return rec->key_len == k->len && memcmp(rec->data, k->p, k->len) == 0;
}

static bool key_valid(const spk_srv_field *k) {
  if (k->len < 1) return false;
  switch (k->p[0]) {
  case SPK_PARTICLE_INTEGER:
  case SPK_PARTICLE_FLOAT:
    return k->len == 9;
  case SPK_PARTICLE_STRING:
  case SPK_PARTICLE_BLOB:
    return true;
  default:
    return k->p[0] >= SPK_PARTICLE_JAVA_BLOB && k->p[0] <= SPK_PARTICLE_ERLANG_BLOB;
  }
}

static inline bool doomed(spk_srv_ns *ns, const spk_srv_rec *r, uint32_t now) {
  return spk_srv_rec_expired(r, now) || spk_srv_rec_truncated(ns, r);
}

static int filter_rec(spk_srv_ctx *c, spk_srv_ns *ns, const spk_srv_rec *rec,
                      const uint8_t *digest, const spk_srv_req *r,
                      const spk_srv_rw_opts *o, const spk_srv_bin *bins,
                      uint32_t n_bins) {
  const uint8_t *exp = NULL;
  uint32_t len = 0;
  if (spk_srv_req_has(r, SPK_FIELD_FILTER)) {
    exp = r->f[SPK_FIELD_FILTER].p;
    len = r->f[SPK_FIELD_FILTER].len;
  } else if (o && o->filter) {
    exp = o->filter;
    len = o->filter_len;
  }
  if (!exp) return 0;
  spk_srv_exp_env env = {c, ns, rec, digest, bins, n_bins};
  return spk_srv_filter(&env, exp, len);
}

/* ---- read ---------------------------------------------------------------------------- */

static int do_read(spk_srv_ctx *c, spk_srv_ns *ns, const spk_srv_req *r,
                   const spk_srv_rw_opts *o, const uint8_t *digest) {
  spk_srv_part *part = spk_srv_part_of(ns, digest);
  uint32_t now = spk_srv_now_cl();
  pthread_mutex_lock(&part->lock);
  spk_srv_rec *rec = spk_srv_part_get(part, digest);
  int rc = 0;
  if (!rec || doomed(ns, rec, now)) {
    pthread_mutex_unlock(&part->lock);
    stat_inc(&ns->st.read_not_found);
    return emit(c, o, SPK_SRV_ERR_NOT_FOUND, 0, 0, NULL, 0);
  }
  uint32_t gen = rec->gen, vt = rec->void_time;
  bool touch = false;
  if (!set_name_ok(ns, r, rec)) {
    rc = SPK_SRV_ERR_PARAMETER;
    goto fail;
  }
  /* record_ttl on a read is the read-touch-ttl-percent; records that never
   * expire are never touched (and then > 100 is not even checked). */
  uint32_t pct = r->h.record_ttl;
  if (rec->void_time != 0 && pct != 0 && pct != 0xFFFFFFFFu) {
    if (pct > 100) {
      rc = SPK_SRV_ERR_PARAMETER;
      goto fail;
    }
    uint32_t lut_cl = (uint32_t)(rec->lut_ms / 1000u - SPK_CITRUSLEAF_EPOCH);
    uint64_t ttl = rec->void_time > lut_cl ? rec->void_time - lut_cl : 0;
    uint64_t left = rec->void_time > now ? rec->void_time - now : 0;
    touch = left * 100 < ttl * pct;
  }
  if ((rc = filter_rec(c, ns, rec, digest, r, o, NULL, 0)) != 0) {
    if (rc == SPK_SRV_ERR_FILTERED_OUT) stat_inc(&ns->st.read_filtered);
    goto fail;
  }
  if (spk_srv_req_has(r, SPK_FIELD_KEY) && rec->key_len &&
      !key_matches(r, rec)) {
    rc = SPK_SRV_ERR_KEY_MISMATCH;
    goto fail;
  }
  uint8_t info1 = r->h.info1;
  if (info1 & SPK_INFO1_GET_NOBINDATA) {
    emit(c, o, 0, gen, vt, NULL, 0);
  } else if (info1 & SPK_INFO1_GET_ALL) {
    /* Fast path: stored bins are already response ops. */
    size_t body = SPK_MSG_HEADER_SIZE + rec->bins_len;
    uint8_t *p;
    if (o && o->row_ix >= 0) {
      p = spk_buf_extend(&c->out, body);
    } else {
      p = spk_buf_extend(&c->out, 8 + body);
      if (p) {
        spk_proto_write(p, SPK_PROTO_MSG, body);
        p += 8;
      }
    }
    if (p) {
      spk_msg_header h = {0};
      h.generation = gen;
      h.record_ttl = vt;
      h.transaction_ttl = o && o->row_ix >= 0 ? (uint32_t)o->row_ix : 0;
      h.n_ops = rec->n_bins;
      spk_msg_header_write(p, &h);
      memcpy(p + SPK_MSG_HEADER_SIZE, spk_srv_rec_bins(rec), rec->bins_len);
    }
  } else {
    if (r->h.n_ops == 0) {
      rc = SPK_SRV_ERR_PARAMETER;
      goto fail;
    }
    if (spk_srv_ctx_rops(c, r->h.n_ops) != 0) {
      rc = SPK_SRV_ERR_UNKNOWN;
      goto fail;
    }
    bool respond_all = (r->h.info2 & SPK_INFO2_RESPOND_ALL_OPS) != 0;
    uint32_t n = 0;
    spk_srv_op_iter it = spk_srv_ops(r);
    spk_srv_op op;
    while (spk_srv_next_op(&it, &op)) {
      if (op.name_len > SPK_BIN_NAME_MAX) {
        rc = SPK_SRV_ERR_BIN_NAME;
        goto fail;
      }
      spk_srv_resp_op *ro = &c->rops[n];
      ro->op = op.op;
      ro->name = op.name;
      ro->name_len = op.name_len;
      ro->in_scratch = false;
      rec_bin b;
      bool found = rec_find_bin(rec, op.name, op.name_len, &b);
      if (op.op == SPK_OP_READ) {
        if (found) {
          ro->ptype = b.ptype;
          ro->val = b.val;
          ro->len = b.len;
          n++;
        } else if (respond_all) {
          ro->ptype = 0;
          ro->len = 0;
          n++;
        }
      } else if (op.op == SPK_OP_CDT_READ) {
        if (found) {
          spk_srv_bin bin = {.ptype = b.ptype, .name_len = b.name_len,
                             .val = b.val, .len = b.len};
          bool has = false;
          rc = spk_srv_cdt_read(c, &bin, &op, ro, &has);
          if (rc) goto fail;
          if (has) n++;
          else if (respond_all) {
            ro->ptype = 0;
            ro->len = 0;
            n++;
          }
        } else if (respond_all) {
          ro->ptype = 0;
          ro->len = 0;
          n++;
        }
      } else if (op.op == SPK_OP_EXP_READ) {
        spk_srv_exp_env env = {c, ns, rec, digest, NULL, 0};
        bool has = false;
        if ((rc = spk_srv_exp_read_op(&env, &op, ro, &has)) != 0) goto fail;
        if (has) n++;
      } else {
        /* Write ops on the read path, unknown ops, and the bit / HLL ops
         * not implemented here. */
        rc = SPK_SRV_ERR_PARAMETER;
        goto fail;
      }
    }
    emit(c, o, 0, gen, vt, c->rops, n);
  }
  if (touch) {
    /* The real server touches after replying (the reply shows the old void
     * time): the original TTL is re-applied, the generation kept. */
    uint32_t lut_cl = (uint32_t)(rec->lut_ms / 1000u - SPK_CITRUSLEAF_EPOCH);
    uint32_t ttl = rec->void_time > lut_cl ? rec->void_time - lut_cl : 0;
    rec->void_time = now + ttl;
    rec->lut_ms = spk_srv_now_ms();
  }
  pthread_mutex_unlock(&part->lock);
  c->scratch.len = 0;
  stat_inc(&ns->st.read_success);
  return 0;
fail:
  pthread_mutex_unlock(&part->lock);
  c->scratch.len = 0;
  if (rc != SPK_SRV_ERR_FILTERED_OUT) stat_inc(&ns->st.read_error);
  return emit(c, o, (uint8_t)rc, gen, vt, NULL, 0);
}

/* ---- delete --------------------------------------------------------------------------- */

static int do_delete(spk_srv_ctx *c, spk_srv_ns *ns, const spk_srv_req *r,
                     const spk_srv_rw_opts *o, const uint8_t *digest) {
  /* Deletes never return metadata. */
  if ((r->h.info2 & SPK_INFO2_DURABLE_DELETE) && !c->srv->cfg.enterprise) {
    stat_inc(&ns->st.delete_error);
    return emit(c, o, SPK_SRV_ERR_ENTERPRISE_ONLY, 0, 0, NULL, 0);
  }
  spk_srv_part *part = spk_srv_part_of(ns, digest);
  uint32_t now = spk_srv_now_cl();
  int rc = 0;
  pthread_mutex_lock(&part->lock);
  spk_srv_rec *rec = spk_srv_part_get(part, digest);
  if (!rec || doomed(ns, rec, now)) {
    rc = SPK_SRV_ERR_NOT_FOUND;
  } else if (((r->h.info2 & SPK_INFO2_GENERATION) &&
              r->h.generation != rec->gen) ||
             ((r->h.info2 & SPK_INFO2_GENERATION_GT) &&
              !(r->h.generation > rec->gen))) {
    rc = SPK_SRV_ERR_GENERATION;
    atomic_fetch_add_explicit(&ns->st.fail_generation, 1, memory_order_relaxed);
  } else if ((rc = filter_rec(c, ns, rec, digest, r, o, NULL, 0)) != 0) {
    /* rc set */
  } else if (spk_srv_req_has(r, SPK_FIELD_KEY) && rec->key_len &&
             !key_matches(r, rec)) {
    rc = SPK_SRV_ERR_KEY_MISMATCH;
  } else {
    spk_srv_part_remove(part, digest);
    spk_srv_rec_removed(ns, rec);
    spk_srv_sindex_update(ns, rec, NULL);
    free(rec);
  }
  pthread_mutex_unlock(&part->lock);
  c->scratch.len = 0;
  if (rc == 0) stat_inc(&ns->st.delete_success);
  else if (rc == SPK_SRV_ERR_NOT_FOUND) stat_inc(&ns->st.delete_not_found);
  else stat_inc(&ns->st.delete_error);
  return emit(c, o, (uint8_t)rc, 0, 0, NULL, 0);
}

/* ---- write ------------------------------------------------------------------------------- */

/* Checks that need only the message (real server: write_master_policies). */
static int write_policies(const spk_srv_req *r, bool *must_not_create,
                          bool *is_replace) {
  if (r->h.n_ops == 0 || r->h.n_ops > SPK_SRV_MAX_OPS)
    return SPK_SRV_ERR_PARAMETER;
  bool respond_all = (r->h.info2 & SPK_INFO2_RESPOND_ALL_OPS) != 0;
  *must_not_create =
      (r->h.info3 & (SPK_INFO3_UPDATE_ONLY | SPK_INFO3_REPLACE_ONLY)) != 0;
  *is_replace =
      (r->h.info3 & (SPK_INFO3_CREATE_OR_REPLACE | SPK_INFO3_REPLACE_ONLY)) != 0;
  bool has_read = false, has_read_all = false, gen_resp = false;
  spk_srv_op_iter it = spk_srv_ops(r);
  spk_srv_op op;
  while (spk_srv_next_op(&it, &op)) {
    if (op.op == SPK_OP_TOUCH) {
      if (*is_replace) return SPK_SRV_ERR_PARAMETER;
      *must_not_create = true;
      continue;
    }
    if (op.name_len > SPK_BIN_NAME_MAX) return SPK_SRV_ERR_BIN_NAME;
    switch (op.op) {
    case SPK_OP_WRITE:
      if (op.ptype == SPK_PARTICLE_NULL && *is_replace)
        return SPK_SRV_ERR_PARAMETER;
      break;
    case SPK_OP_INCR:
    case SPK_OP_APPEND:
    case SPK_OP_PREPEND:
    case SPK_OP_DELETE_ALL:
    case SPK_OP_BITS_MODIFY:
      if (*is_replace) return SPK_SRV_ERR_PARAMETER;
      break;
    case SPK_OP_READ:
      if (op_is_read_all(&op)) {
        if (respond_all || has_read_all) return SPK_SRV_ERR_PARAMETER;
        has_read_all = true;
      } else {
        gen_resp = true;
      }
      has_read = true;
      break;
    case SPK_OP_HLL_MODIFY:
    case SPK_OP_CDT_MODIFY:
      if (*is_replace) return SPK_SRV_ERR_PARAMETER;
      gen_resp = true;
      break;
    case SPK_OP_BITS_READ:
    case SPK_OP_HLL_READ:
    case SPK_OP_CDT_READ:
    case SPK_OP_EXP_READ:
      has_read = true;
      gen_resp = true;
      break;
    default:
      break;
    }
  }
  if (has_read && !(r->h.info1 & SPK_INFO1_READ)) return SPK_SRV_ERR_PARAMETER;
  if (has_read_all && gen_resp) return SPK_SRV_ERR_PARAMETER;
  if ((r->h.info1 & SPK_INFO1_GET_ALL) && !has_read_all)
    return SPK_SRV_ERR_PARAMETER;
  return 0;
}

static int find_bin(const spk_srv_ctx *c, uint32_t n, const char *name,
                    uint8_t nlen) {
  for (uint32_t i = 0; i < n; i++)
    if (c->bins[i].name_len == nlen &&
        (nlen == 0 || memcmp(c->bins[i].name, name, nlen) == 0))
      return (int)i;
  return -1;
}

static int scratch_i64(spk_srv_ctx *c, uint64_t v, size_t *off) {
  *off = c->scratch.len;
  uint8_t *p = spk_buf_extend(&c->scratch, 8);
  if (!p) return -1;
  spk_put_be64(p, v);
  return 0;
}

/* INCR / APPEND / PREPEND on bin b (created when absent: ptype 0). */
static int modify_bin(spk_srv_ctx *c, spk_srv_bin *b, bool exists,
                      const spk_srv_op *o) {
  if (o->op == SPK_OP_INCR) {
    if (o->ptype != SPK_PARTICLE_INTEGER && o->ptype != SPK_PARTICLE_FLOAT)
      return SPK_SRV_ERR_INCOMPATIBLE_TYPE;
    uint64_t delta;
    if (o->ptype == SPK_PARTICLE_INTEGER) {
      if (o->len != 8 && o->len != 4 && o->len != 2 && o->len != 1)
        return SPK_SRV_ERR_PARAMETER;
      delta = 0;
      for (uint32_t i = 0; i < o->len; i++) delta = delta << 8 | o->val[i];
    } else {
      if (o->len != 8) return SPK_SRV_ERR_PARAMETER;
      delta = spk_be64(o->val);
    }
    size_t off;
    if (!exists) {
      if (scratch_i64(c, delta, &off) != 0) return SPK_SRV_ERR_UNKNOWN;
    } else {
      if (b->ptype != o->ptype) return SPK_SRV_ERR_INCOMPATIBLE_TYPE;
      uint64_t cur = spk_be64(spk_srv_bin_val(c, b));
      uint64_t v;
      if (o->ptype == SPK_PARTICLE_INTEGER) {
        v = cur + delta; /* two's complement wrap, as the server does */
      } else {
        double x, y;
        memcpy(&x, &cur, 8);
        memcpy(&y, &delta, 8);
        x += y;
        if (!isfinite(x)) return SPK_SRV_ERR_PARAMETER;
        memcpy(&v, &x, 8);
      }
      if (scratch_i64(c, v, &off) != 0) return SPK_SRV_ERR_UNKNOWN;
    }
    b->ptype = o->ptype;
    b->in_scratch = true;
    b->off = off;
    b->len = 8;
    return 0;
  }
  /* APPEND / PREPEND: strings to strings, blobs to blobs. */
  if (o->ptype != SPK_PARTICLE_STRING && o->ptype != SPK_PARTICLE_BLOB)
    return SPK_SRV_ERR_INCOMPATIBLE_TYPE;
  if (!exists) {
    b->ptype = o->ptype;
    b->in_scratch = false;
    b->val = o->val;
    b->len = o->len;
    return 0;
  }
  if (b->ptype != o->ptype) return SPK_SRV_ERR_INCOMPATIBLE_TYPE;
  uint32_t old_len = b->len;
  size_t need = (size_t)old_len + o->len;
  if (spk_buf_reserve(&c->scratch, need) != 0) return SPK_SRV_ERR_UNKNOWN;
  const uint8_t *old = spk_srv_bin_val(c, b); /* valid after the reserve */
  size_t off = c->scratch.len;
  uint8_t *p = c->scratch.data + off;
  if (o->op == SPK_OP_APPEND) {
    memcpy(p, old, old_len);
    memcpy(p + old_len, o->val, o->len);
  } else {
    memcpy(p, o->val, o->len);
    memcpy(p + o->len, old, old_len);
  }
  c->scratch.len += need;
  b->in_scratch = true;
  b->off = off;
  b->len = (uint32_t)need;
  return 0;
}

static uint32_t flat_size(spk_srv_ctx *c, uint32_t n_bins, uint32_t vt,
                          uint32_t set_len, uint32_t key_len) {
  uint32_t sz = 35; /* the real flat record header */
  if (vt) sz += 4;
  if (set_len) sz += 1 + set_len;
  if (key_len) sz += spk_srv_uintvar_size(key_len) + key_len;
  if (n_bins) sz += spk_srv_uintvar_size(n_bins);
  for (uint32_t i = 0; i < n_bins; i++) {
    uint64_t s = 1u + c->bins[i].name_len +
                 spk_srv_particle_flat_size(c->bins[i].ptype,
                                            spk_srv_bin_val(c, &c->bins[i]),
                                            c->bins[i].len);
    sz = s + sz > UINT32_MAX ? UINT32_MAX : sz + (uint32_t)s;
  }
  return sz;
}

static uint16_t next_gen(uint16_t g) { return g == 0xFFFF ? 1 : (uint16_t)(g + 1); }

static int do_write(spk_srv_ctx *c, spk_srv_ns *ns, const spk_srv_req *r,
                    const spk_srv_rw_opts *o, const uint8_t *digest) {
  bool must_not_create, is_replace;
  int rc = write_policies(r, &must_not_create, &is_replace);
  if (rc) {
    stat_inc(&ns->st.write_error);
    return emit(c, o, (uint8_t)rc, 0, 0, NULL, 0);
  }
  if (spk_srv_ctx_bins(c, 64) != 0 || spk_srv_ctx_rops(c, r->h.n_ops) != 0) {
    stat_inc(&ns->st.write_error);
    return emit(c, o, SPK_SRV_ERR_UNKNOWN, 0, 0, NULL, 0);
  }
  spk_srv_part *part = spk_srv_part_of(ns, digest);
  uint32_t now = spk_srv_now_cl();
  uint32_t gen = 0, vt = 0;
  pthread_mutex_lock(&part->lock);
  spk_srv_rec *rec = spk_srv_part_get(part, digest);
  bool created;
  if (must_not_create) {
    if (!rec) {
      rc = SPK_SRV_ERR_NOT_FOUND;
      goto fail;
    }
    gen = rec->gen;
    vt = rec->void_time;
    if (doomed(ns, rec, now)) {
      rc = SPK_SRV_ERR_NOT_FOUND;
      goto fail;
    }
    created = false;
  } else {
    created = !rec || doomed(ns, rec, now);
    if (!created) {
      gen = rec->gen;
      vt = rec->void_time;
    }
  }
  if ((r->h.info2 & SPK_INFO2_CREATE_ONLY) && !created) {
    rc = SPK_SRV_ERR_RECORD_EXISTS;
    goto fail;
  }
  uint32_t cur_gen = created ? 0 : rec->gen;
  if (((r->h.info2 & SPK_INFO2_GENERATION) && r->h.generation != cur_gen) ||
      ((r->h.info2 & SPK_INFO2_GENERATION_GT) &&
       !(r->h.generation > cur_gen))) {
    atomic_fetch_add_explicit(&ns->st.fail_generation, 1, memory_order_relaxed);
    rc = SPK_SRV_ERR_GENERATION;
    goto fail;
  }
  int set_id = 0;
  uint32_t set_len = 0;
  if (created) {
    if (spk_srv_req_has(r, SPK_FIELD_SETNAME)) {
      set_id = spk_srv_set_id(ns, r->f[SPK_FIELD_SETNAME].p,
                              r->f[SPK_FIELD_SETNAME].len, true);
      if (set_id < 0) {
        rc = SPK_SRV_ERR_PARAMETER;
        goto fail;
      }
    }
  } else {
    if (!set_name_ok(ns, r, rec)) {
      rc = SPK_SRV_ERR_PARAMETER;
      goto fail;
    }
    set_id = rec->set_id;
  }
  if (set_id) set_len = ns->sets[set_id - 1].len;
  if (!created) {
    if ((rc = filter_rec(c, ns, rec, digest, r, o, NULL, 0)) != 0) {
      if (rc == SPK_SRV_ERR_FILTERED_OUT) stat_inc(&ns->st.write_filtered);
      goto fail;
    }
  }
  /* The stored key: kept once stored; a differing key is a mismatch. */
  const uint8_t *key = NULL;
  uint32_t key_len = 0;
  if (!created && rec->key_len) {
    key = rec->data;
    key_len = rec->key_len;
  }
  if (spk_srv_req_has(r, SPK_FIELD_KEY)) {
    const spk_srv_field *k = &r->f[SPK_FIELD_KEY];
    if (!key_valid(k)) {
      rc = SPK_SRV_ERR_PARAMETER;
      goto fail;
    }
    if (key && !key_matches(r, rec)) {
      rc = SPK_SRV_ERR_KEY_MISMATCH;
      goto fail;
    }
    if (!key) {
      key = k->p;
      key_len = k->len;
    }
  }
  uint32_t ttl = r->h.record_ttl;
  if (ttl == SPK_TTL_DONT_UPDATE && created) ttl = 0;
  if (ttl > SPK_SRV_TEN_YEARS && ttl != SPK_TTL_NEVER_EXPIRE &&
      ttl != SPK_TTL_DONT_UPDATE) {
    rc = SPK_SRV_ERR_PARAMETER;
    goto fail;
  }
  uint32_t new_vt;
  if (ttl == 0) new_vt = ns->cfg.default_ttl ? now + ns->cfg.default_ttl : 0;
  else if (ttl == SPK_TTL_NEVER_EXPIRE) new_vt = 0;
  else if (ttl == SPK_TTL_DONT_UPDATE) new_vt = rec->void_time;
  else new_vt = now + ttl;
  if (new_vt != 0 && ns->cfg.nsup_period == 0) {
    rc = SPK_SRV_ERR_FORBIDDEN; /* TTLs need nsup, as configured */
    goto fail;
  }

  /* Working bins: the record's (unless replacing), then the ops in order. */
  uint32_t n = 0, n_old = 0;
  if (!created && !is_replace) {
    if (spk_srv_ctx_bins(c, rec->n_bins + 8u) != 0) {
      rc = SPK_SRV_ERR_UNKNOWN;
      goto fail;
    }
    const uint8_t *p = spk_srv_rec_bins(rec);
    for (uint16_t i = 0; i < rec->n_bins; i++) {
      rec_bin b;
      p = rec_bin_next(p, &b);
      spk_srv_bin *w = &c->bins[n++];
      w->ptype = b.ptype;
      w->name_len = b.name_len;
      w->name = b.name;
      w->in_scratch = false;
      w->val = b.val;
      w->len = b.len;
    }
    n_old = n;
  }
  /* Size both arrays once: response ops point at bins' names and values,
   * so nothing may move while the ops run.  At most one read-all op. */
  if (spk_srv_ctx_bins(c, n + r->h.n_ops + 1u) != 0 ||
      spk_srv_ctx_rops(c, n + 2u * r->h.n_ops + 1u) != 0) {
    rc = SPK_SRV_ERR_UNKNOWN;
    goto fail;
  }
  bool respond_all = (r->h.info2 & SPK_INFO2_RESPOND_ALL_OPS) != 0;
  uint32_t n_resp = 0;
  spk_srv_op_iter it = spk_srv_ops(r);
  spk_srv_op op;
  while (spk_srv_next_op(&it, &op)) {
    if (op.op == SPK_OP_TOUCH) continue;
    spk_srv_resp_op *ro = &c->rops[n_resp];
    ro->op = op.op;
    ro->name = op.name;
    ro->name_len = op.name_len;
    ro->ptype = 0;
    ro->len = 0;
    ro->in_scratch = false;
    int ix = find_bin(c, n, op.name, op.name_len);
    switch (op.op) {
    case SPK_OP_WRITE:
      if (op.ptype == SPK_PARTICLE_NULL) {
        /* Bin delete: the last bin fills the hole, like the server. */
        if (ix >= 0) c->bins[ix] = c->bins[--n];
      } else {
        spk_srv_bin nb;
        if ((rc = spk_srv_particle_from_client(c, &op, &nb)) != 0) goto fail;
        if (ix < 0) {
          ix = (int)n++;
          c->bins[ix].name_len = op.name_len;
          c->bins[ix].name = op.name;
        }
        spk_srv_bin *w = &c->bins[ix];
        w->ptype = nb.ptype;
        w->in_scratch = nb.in_scratch;
        w->val = nb.val;
        w->off = nb.off;
        w->len = nb.len;
      }
      if (respond_all) n_resp++;
      break;
    case SPK_OP_INCR:
    case SPK_OP_APPEND:
    case SPK_OP_PREPEND: {
      spk_srv_bin tmp;
      bool exists = ix >= 0;
      if (exists) tmp = c->bins[ix];
      if ((rc = modify_bin(c, &tmp, exists, &op)) != 0) goto fail;
      if (!exists) {
        ix = (int)n++;
        tmp.name_len = op.name_len;
        tmp.name = op.name;
      }
      c->bins[ix] = tmp;
      if (respond_all) n_resp++;
      break;
    }
    case SPK_OP_DELETE_ALL:
      n = 0;
      if (respond_all) n_resp++;
      break;
    case SPK_OP_READ:
      if (op.name_len == 0) {
        for (uint32_t i = 0; i < n; i++) {
          spk_srv_resp_op *a = &c->rops[n_resp++];
          spk_srv_bin *w = &c->bins[i];
          a->op = SPK_OP_READ;
          a->ptype = w->ptype;
          a->name = w->name;
          a->name_len = w->name_len;
          a->in_scratch = w->in_scratch;
          a->val = w->val;
          a->off = w->off;
          a->len = w->len;
        }
      } else if (ix >= 0) {
        spk_srv_bin *w = &c->bins[ix];
        ro->ptype = w->ptype;
        ro->in_scratch = w->in_scratch;
        ro->val = w->val;
        ro->off = w->off;
        ro->len = w->len;
        n_resp++;
      } else if (respond_all) {
        n_resp++;
      }
      break;
    case SPK_OP_CDT_MODIFY: {
      spk_srv_bin tmp = {0};
      bool exists = ix >= 0;
      if (exists) tmp = c->bins[ix];
      bool has = false;
      if ((rc = spk_srv_cdt_modify(c, &tmp, &exists, &op, ro, &has)) != 0)
        goto fail;
      if (exists) {
        if (ix < 0) {
          ix = (int)n++;
          tmp.name_len = op.name_len;
          tmp.name = op.name;
        }
        c->bins[ix] = tmp;
      } else if (ix >= 0) {
        c->bins[ix] = c->bins[--n];
      }
      if (has || respond_all) n_resp++;
      break;
    }
    case SPK_OP_CDT_READ:
      if (ix >= 0) {
        bool has = false;
        if ((rc = spk_srv_cdt_read(c, &c->bins[ix], &op, ro, &has)) != 0)
          goto fail;
        if (has || respond_all) n_resp++;
      } else if (respond_all) {
        n_resp++;
      }
      break;
    case SPK_OP_EXP_READ: {
      /* Expressions see the bins as modified by the earlier ops. */
      spk_srv_exp_env env = {c, ns, created ? NULL : rec, digest, c->bins, n};
      bool has = false;
      if ((rc = spk_srv_exp_read_op(&env, &op, ro, &has)) != 0) goto fail;
      if (has) n_resp++;
      break;
    }
    case SPK_OP_EXP_MODIFY: {
      spk_srv_exp_env env = {c, ns, created ? NULL : rec, digest, c->bins, n};
      spk_srv_bin tmp = {0};
      bool exists = ix >= 0;
      if (exists) tmp = c->bins[ix];
      if ((rc = spk_srv_exp_modify_op(&env, &op, &tmp, &exists)) != 0) goto fail;
      if (exists) {
        if (ix < 0) {
          ix = (int)n++;
          tmp.name_len = op.name_len;
          tmp.name = op.name;
        }
        c->bins[ix] = tmp;
      } else if (ix >= 0) {
        c->bins[ix] = c->bins[--n];
      }
      if (respond_all) n_resp++;
      break;
    }
    default:
      /* Unknown ops; bit and HLL ops are not implemented. */
      rc = SPK_SRV_ERR_PARAMETER;
      goto fail;
    }
  }
  if (n > SPK_SRV_MAX_BINS) {
    rc = SPK_SRV_ERR_PARAMETER;
    goto fail;
  }
  bool is_delete = n == 0;
  if (is_delete) {
    /* Deleting bins of a record that had none (did not exist). */
    if (n_old == 0) {
      rc = SPK_SRV_ERR_NOT_FOUND;
      goto fail;
    }
    if ((r->h.info2 & SPK_INFO2_DURABLE_DELETE) && !c->srv->cfg.enterprise) {
      rc = SPK_SRV_ERR_ENTERPRISE_ONLY;
      goto fail;
    }
  } else if (flat_size(c, n, new_vt, set_len, key_len) >
             ns->cfg.max_record_size) {
    atomic_fetch_add_explicit(&ns->st.fail_too_big, 1, memory_order_relaxed);
    rc = SPK_SRV_ERR_RECORD_TOO_BIG;
    goto fail;
  }
  uint16_t new_gen = created ? 1 : next_gen(rec->gen);
  spk_srv_rec *nr = NULL;
  if (!is_delete) {
    size_t bins_len = 0;
    for (uint32_t i = 0; i < n; i++)
      bins_len += 8u + c->bins[i].name_len + c->bins[i].len;
    nr = malloc(sizeof *nr + key_len + bins_len);
    if (!nr) {
      rc = SPK_SRV_ERR_UNKNOWN;
      goto fail;
    }
    memcpy(nr->digest, digest, SPK_DIGEST_SIZE);
    nr->gen = new_gen;
    nr->set_id = (uint16_t)set_id;
    nr->void_time = new_vt;
    nr->lut_ms = spk_srv_now_ms();
    nr->key_len = key_len;
    nr->bins_len = (uint32_t)bins_len;
    nr->n_bins = (uint16_t)n;
    if (key_len) memcpy(nr->data, key, key_len);
    spk_buf tmp = {nr->data + key_len, 0, bins_len};
    for (uint32_t i = 0; i < n; i++) {
      spk_srv_bin *w = &c->bins[i];
      spk_srv_put_op(&tmp, SPK_OP_READ, w->ptype, w->name, w->name_len,
                     spk_srv_bin_val(c, w), w->len);
    }
  }
  /* Reply before the old record is freed: response values may point into
   * it.  Deletes answer without metadata. */
  if (is_delete) emit(c, o, 0, 0, 0, c->rops, n_resp);
  else emit(c, o, 0, new_gen, new_vt, c->rops, n_resp);
  spk_srv_rec *old = NULL;
  if (nr) {
    if (spk_srv_part_put(part, nr, &old) != 0) {
      /* Out of memory growing the table: keep the old state. */
      free(nr);
      nr = NULL;
    } else {
      spk_srv_rec_added(ns, nr);
    }
  } else if (rec) {
    old = spk_srv_part_remove(part, digest);
  }
  /* Secondary indexes move with the record, under the same lock. */
  if (nr || old) spk_srv_sindex_update(ns, old, nr);
  if (old) {
    spk_srv_rec_removed(ns, old);
    free(old);
  }
  pthread_mutex_unlock(&part->lock);
  c->scratch.len = 0;
  stat_inc(&ns->st.write_success);
  return 0;
fail:
  pthread_mutex_unlock(&part->lock);
  c->scratch.len = 0;
  stat_inc(&ns->st.write_error);
  return emit(c, o, (uint8_t)rc, gen, vt, NULL, 0);
}

/* ---- entry ------------------------------------------------------------------------------- */

int spk_srv_rw(spk_srv_ctx *c, spk_srv_ns *ns, const spk_srv_req *r,
               const spk_srv_rw_opts *o) {
  const uint8_t *digest = o && o->digest ? o->digest : r->f[SPK_FIELD_DIGEST].p;
  bool is_write = (r->h.info2 & SPK_INFO2_WRITE) != 0;
  bool is_read = (r->h.info1 & SPK_INFO1_READ) != 0;
  if (!is_write && !is_read)
    return emit(c, o, SPK_SRV_ERR_PARAMETER, 0, 0, NULL, 0);
  spk_srv_view *v = spk_srv_view_of(c->node);
  if (v && !spk_srv_part_available(v, ns->ix, spk_partition_id(digest)))
    return emit(c, o, SPK_SRV_ERR_UNAVAILABLE, 0, 0, NULL, 0);
  if (is_write) {
    if ((r->h.info2 & SPK_INFO2_DELETE) && r->h.n_ops == 0)
      return do_delete(c, ns, r, o, digest);
    return do_write(c, ns, r, o, digest);
  }
  return do_read(c, ns, r, o, digest);
}
