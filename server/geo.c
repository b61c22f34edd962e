/*
 * geo.c - GeoJSON bins.
 *
 * The real server parses the JSON, accepts Point, Polygon, MultiPolygon and
 * AeroCircle geometries (anything else -> 160 GEO_INVALID_GEOJSON), and
 * stores the S2 cells that index the geometry before the JSON text.  A point
 * gets its leaf cell (level 30), computed here with the S2 cell-id
 * construction (cube face, quadratic projection, Hilbert-curve position).
 * Regions are stored without covering cells: computing S2 coverings belongs
 * with the geo queries of the secondary-index work (see README).
 */
#include <math.h>
#include <stdlib.h>

#include "srv.h"

/* ---- a small JSON reader ----------------------------------------------------- */

typedef struct jspan {
  const char *p;
  const char *e;
} jspan;

static const char *ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static const char *j_value(const char *p, const char *e, int depth);

static const char *j_string(const char *p, const char *e) {
  if (p >= e || *p != '"') return NULL;
  for (p++; p < e; p++) {
    if (*p == '"') return p + 1;
    if ((unsigned char)*p < 0x20) return NULL;
    if (*p == '\\') {
      if (++p >= e) return NULL;
      if (*p == 'u') {
        for (int i = 0; i < 4; i++)
          if (++p >= e || !((*p >= '0' && *p <= '9') || ((*p | 32) >= 'a' && (*p | 32) <= 'f')))
            return NULL;
      } else if (!strchr("\"\\/bfnrt", *p)) {
        return NULL;
      }
    }
  }
  return NULL;
}

static const char *j_number(const char *p, const char *e) {
  const char *s = p;
  if (p < e && *p == '-') p++;
  if (p >= e || !(*p >= '0' && *p <= '9')) return NULL;
  if (*p == '0') p++;
  else while (p < e && *p >= '0' && *p <= '9') p++;
  if (p < e && *p == '.') {
    p++;
    if (p >= e || !(*p >= '0' && *p <= '9')) return NULL;
    while (p < e && *p >= '0' && *p <= '9') p++;
  }
  if (p < e && (*p == 'e' || *p == 'E')) {
    p++;
    if (p < e && (*p == '+' || *p == '-')) p++;
    if (p >= e || !(*p >= '0' && *p <= '9')) return NULL;
    while (p < e && *p >= '0' && *p <= '9') p++;
  }
  return p > s ? p : NULL;
}

static const char *j_lit(const char *p, const char *e, const char *lit) {
  size_t n = strlen(lit);
  if ((size_t)(e - p) < n || memcmp(p, lit, n) != 0) return NULL;
  return p + n;
}

static const char *j_value(const char *p, const char *e, int depth) {
  if (depth > 64) return NULL;
  p = ws(p, e);
  if (p >= e) return NULL;
  switch (*p) {
  case '{':
    p = ws(p + 1, e);
    if (p < e && *p == '}') return p + 1;
    for (;;) {
      p = j_string(ws(p, e), e);
      if (!p) return NULL;
      p = ws(p, e);
      if (p >= e || *p != ':') return NULL;
      p = j_value(p + 1, e, depth + 1);
      if (!p) return NULL;
      p = ws(p, e);
      if (p < e && *p == ',') {
        p++;
        continue;
      }
      return p < e && *p == '}' ? p + 1 : NULL;
    }
  case '[':
    p = ws(p + 1, e);
    if (p < e && *p == ']') return p + 1;
    for (;;) {
      p = j_value(p, e, depth + 1);
      if (!p) return NULL;
      p = ws(p, e);
      if (p < e && *p == ',') {
        p++;
        continue;
      }
      return p < e && *p == ']' ? p + 1 : NULL;
    }
  case '"': return j_string(p, e);
  case 't': return j_lit(p, e, "true");
  case 'f': return j_lit(p, e, "false");
  case 'n': return j_lit(p, e, "null");
  default: return j_number(p, e);
  }
}

/* Elements of an array span (already validated). */
typedef struct jiter {
  const char *p, *e;
  bool first;
} jiter;

static bool j_array(jspan v, jiter *it) {
  const char *p = ws(v.p, v.e);
  if (p >= v.e || *p != '[') return false;
  it->p = p + 1;
  it->e = v.e;
  it->first = true;
  return true;
}

static bool j_next(jiter *it, jspan *out) {
  const char *p = ws(it->p, it->e);
  if (p >= it->e || *p == ']') return false;
  if (!it->first) {
    if (*p != ',') return false;
    p = ws(p + 1, it->e);
  }
  it->first = false;
  const char *q = j_value(p, it->e, 0);
  if (!q) return false;
  out->p = p;
  out->e = q;
  it->p = q;
  return true;
}

static bool j_num(jspan v, double *d) {
  const char *p = ws(v.p, v.e);
  const char *q = j_number(p, v.e);
  if (!q || q - p >= 64) return false;
  char tmp[64];
  memcpy(tmp, p, (size_t)(q - p));
  tmp[q - p] = '\0';
  *d = strtod(tmp, NULL);
  return isfinite(*d);
}

static bool j_str_eq(jspan v, const char *s) {
  const char *p = ws(v.p, v.e);
  size_t n = strlen(s);
  return (size_t)(v.e - p) >= n + 2 && p[0] == '"' && memcmp(p + 1, s, n) == 0 &&
         p[n + 1] == '"';
}

/* ---- GeoJSON geometry checks ---------------------------------------------------- */

static bool position(jspan v, double *lng, double *lat) {
  jiter it;
  jspan x, y, z;
  if (!j_array(v, &it) || !j_next(&it, &x) || !j_next(&it, &y)) return false;
  if (j_next(&it, &z)) return false;
  if (!j_num(x, lng) || !j_num(y, lat)) return false;
  return *lng >= -180 && *lng <= 180 && *lat >= -90 && *lat <= 90;
}

static bool ring(jspan v) {
  jiter it;
  jspan pt;
  double lng, lat, lng0 = 0, lat0 = 0;
  int n = 0;
  if (!j_array(v, &it)) return false;
  while (j_next(&it, &pt)) {
    if (!position(pt, &lng, &lat)) return false;
    if (n == 0) {
      lng0 = lng;
      lat0 = lat;
    }
    n++;
  }
  /* A linear ring is closed and has at least four positions. */
  return n >= 4 && lng == lng0 && lat == lat0;
}

static bool polygon(jspan v) {
  jiter it;
  jspan r;
  int n = 0;
  if (!j_array(v, &it)) return false;
  while (j_next(&it, &r)) {
    if (!ring(r)) return false;
    n++;
  }
  return n >= 1;
}

enum { G_POINT = 1, G_POLYGON, G_MULTI, G_CIRCLE };

typedef struct gshape {
  int kind;
  double lng, lat, radius; /* point / circle centre and radius (m) */
  jspan coords;
} gshape;

/* Parse and check a GeoJSON text: 0 or 160. */
static int geo_parse(const char *js, const char *je, gshape *g) {
  const char *p = ws(js, je);
  if (p >= je || *p != '{') return SPK_SRV_ERR_GEO_INVALID;
  const char *q = j_value(p, je, 0);
  if (!q || ws(q, je) != je) return SPK_SRV_ERR_GEO_INVALID;
  /* Find "type" and "coordinates" among the top-level members. */
  jspan type = {0, 0}, coords = {0, 0};
  p = ws(p + 1, je);
  while (p < je && *p != '}') {
    const char *ks = p;
    const char *ke = j_string(p, je);
    if (!ke) return SPK_SRV_ERR_GEO_INVALID;
    p = ws(ke, je) + 1; /* ':' */
    p = ws(p, je);
    const char *ve = j_value(p, je, 0);
    if (!ve) return SPK_SRV_ERR_GEO_INVALID;
    jspan key = {ks, ke};
    if (j_str_eq(key, "type")) type = (jspan){p, ve};
    else if (j_str_eq(key, "coordinates")) coords = (jspan){p, ve};
    p = ws(ve, je);
    if (p < je && *p == ',') p = ws(p + 1, je);
  }
  if (!type.p || !coords.p) return SPK_SRV_ERR_GEO_INVALID;
  g->coords = coords;
  if (j_str_eq(type, "Point")) {
    if (!position(coords, &g->lng, &g->lat)) return SPK_SRV_ERR_GEO_INVALID;
    g->kind = G_POINT;
  } else if (j_str_eq(type, "Polygon")) {
    if (!polygon(coords)) return SPK_SRV_ERR_GEO_INVALID;
    g->kind = G_POLYGON;
  } else if (j_str_eq(type, "MultiPolygon")) {
    jiter it;
    jspan poly;
    int n = 0;
    if (!j_array(coords, &it)) return SPK_SRV_ERR_GEO_INVALID;
    while (j_next(&it, &poly)) {
      if (!polygon(poly)) return SPK_SRV_ERR_GEO_INVALID;
      n++;
    }
    if (n == 0) return SPK_SRV_ERR_GEO_INVALID;
    g->kind = G_MULTI;
  } else if (j_str_eq(type, "AeroCircle")) {
    jiter it;
    jspan c, r, extra;
    if (!j_array(coords, &it) || !j_next(&it, &c) || !j_next(&it, &r) ||
        j_next(&it, &extra) || !position(c, &g->lng, &g->lat) ||
        !j_num(r, &g->radius) || g->radius < 0)
      return SPK_SRV_ERR_GEO_INVALID;
    g->kind = G_CIRCLE;
  } else {
    return SPK_SRV_ERR_GEO_INVALID;
  }
  return 0;
}

int spk_srv_geo_from_client(const uint8_t *v, uint32_t len, spk_buf *out) {
  if (len < 3) return SPK_SRV_ERR_GEO_INVALID;
  uint32_t ncells = spk_be16(v + 1);
  if (3u + 8u * ncells > len) return SPK_SRV_ERR_GEO_INVALID;
  const char *js = (const char *)v + 3 + 8 * ncells;
  const char *je = (const char *)v + len;
  gshape g;
  int rc = geo_parse(js, je, &g);
  if (rc) return rc;
  bool has_cell = g.kind == G_POINT;
  uint64_t cell = has_cell ? spk_srv_s2_cell(g.lat, g.lng) : 0;
  uint8_t *h = spk_buf_extend(out, 3 + (has_cell ? 8 : 0));
  if (!h) return SPK_SRV_ERR_UNKNOWN;
  h[0] = 0;
  spk_put_be16(h + 1, has_cell ? 1 : 0);
  if (has_cell) spk_put_be64(h + 3, cell);
  if (spk_buf_append(out, js, (size_t)(je - js)) != 0) return SPK_SRV_ERR_UNKNOWN;
  return 0;
}

int spk_srv_geo_cell(const uint8_t *json, uint32_t len, uint64_t *cell) {
  gshape g;
  int rc = geo_parse((const char *)json, (const char *)json + len, &g);
  if (rc) return rc;
  *cell = g.kind == G_POINT ? spk_srv_s2_cell(g.lat, g.lng) : 0;
  return 0;
}

/* ---- matching (cmp_geo) ------------------------------------------------------------- */

/* Even-odd ray casting in the lng/lat plane: edges are treated as straight
 * lines there, not as the geodesics S2 uses (differs only for long edges). */
static bool in_ring(jspan ring, double x, double y) {
  jiter it;
  jspan pt;
  double px = 0, py = 0;
  bool first = true, in = false;
  if (!j_array(ring, &it)) return false;
  while (j_next(&it, &pt)) {
    double qx, qy;
    if (!position(pt, &qx, &qy)) return false;
    if (first)
      first = false;
    else if ((py > y) != (qy > y) &&
             x < (qx - px) * (y - py) / (qy - py) + px)
      in = !in;
    px = qx;
    py = qy;
  }
  return in;
}

static bool in_polygon(jspan poly, double x, double y) {
  jiter it;
  jspan ring;
  bool outer = true;
  if (!j_array(poly, &it)) return false;
  while (j_next(&it, &ring)) {
    bool in = in_ring(ring, x, y);
    if (outer && !in) return false;
    if (!outer && in) return false; /* inside a hole */
    outer = false;
  }
  return true;
}

static bool region_contains(const gshape *r, double lng, double lat) {
  switch (r->kind) {
  case G_POLYGON:
    return in_polygon(r->coords, lng, lat);
  case G_MULTI: {
    jiter it;
    jspan poly;
    if (!j_array(r->coords, &it)) return false;
    while (j_next(&it, &poly))
      if (in_polygon(poly, lng, lat)) return true;
    return false;
  }
  case G_CIRCLE: {
    const double rad = M_PI / 180, earth_m = 6371000.0;
    double dlat = (lat - r->lat) * rad, dlng = (lng - r->lng) * rad;
    double h = sin(dlat / 2) * sin(dlat / 2) +
               cos(lat * rad) * cos(r->lat * rad) * sin(dlng / 2) * sin(dlng / 2);
    double d = 2 * earth_m * asin(sqrt(h > 1 ? 1 : h));
    return d <= r->radius;
  }
  default:
    return false;
  }
}

int spk_srv_geo_match(const uint8_t *cand, uint32_t clen, const uint8_t *query,
                      uint32_t qlen) {
  gshape c, q;
  if (geo_parse((const char *)cand, (const char *)cand + clen, &c) ||
      geo_parse((const char *)query, (const char *)query + qlen, &q))
    return -1;
  /* A point inside a region, or a region containing a point. */
  if (c.kind == G_POINT && q.kind != G_POINT) return region_contains(&q, c.lng, c.lat);
  if (c.kind != G_POINT && q.kind == G_POINT) return region_contains(&c, q.lng, q.lat);
  return 0;
}

/* ---- S2 cell ids ------------------------------------------------------------------ */

#define S2_LOOKUP_BITS 4
#define S2_MAX_LEVEL 30
#define S2_SWAP 1
#define S2_INVERT 2

static const int pos_to_ij[4][4] = {
    {0, 1, 3, 2}, {0, 2, 3, 1}, {3, 2, 0, 1}, {3, 1, 0, 2}};
static const int pos_to_orient[4] = {S2_SWAP, 0, 0, S2_INVERT | S2_SWAP};

static uint16_t lookup_pos[1 << (2 * S2_LOOKUP_BITS + 2)];
static pthread_once_t lookup_once = PTHREAD_ONCE_INIT;

static void init_cell(int level, int i, int j, int orig_orient, int pos,
                      int orient) {
  if (level == S2_LOOKUP_BITS) {
    int ij = (i << S2_LOOKUP_BITS) + j;
    lookup_pos[(ij << 2) + orig_orient] = (uint16_t)((pos << 2) + orient);
    return;
  }
  level++;
  i <<= 1;
  j <<= 1;
  pos <<= 2;
  const int *r = pos_to_ij[orient];
  for (int k = 0; k < 4; k++)
    init_cell(level, i + (r[k] >> 1), j + (r[k] & 1), orig_orient, pos + k,
              orient ^ pos_to_orient[k]);
}

static void init_lookup(void) {
  for (int o = 0; o < 4; o++) init_cell(0, 0, 0, o, 0, o);
}

static double uv_to_st(double u) {
  return u >= 0 ? 0.5 * sqrt(1 + 3 * u) : 1 - 0.5 * sqrt(1 - 3 * u);
}

static uint32_t st_to_ij(double s) {
  double v = floor(s * (double)(1u << S2_MAX_LEVEL));
  if (v < 0) return 0;
  if (v > (double)((1u << S2_MAX_LEVEL) - 1)) return (1u << S2_MAX_LEVEL) - 1;
  return (uint32_t)v;
}

uint64_t spk_srv_s2_cell(double lat_deg, double lng_deg) {
  pthread_once(&lookup_once, init_lookup);
  double lat = lat_deg * M_PI / 180.0, lng = lng_deg * M_PI / 180.0;
  double x = cos(lat) * cos(lng), y = cos(lat) * sin(lng), z = sin(lat);
  double ax = fabs(x), ay = fabs(y), az = fabs(z);
  int face = ax > ay ? (ax > az ? 0 : 2) : (ay > az ? 1 : 2);
  double comp = face == 0 ? x : face == 1 ? y : z;
  if (comp < 0) face += 3;
  double u, v;
  switch (face) {
  case 0: u = y / x; v = z / x; break;
  case 1: u = -x / y; v = z / y; break;
  case 2: u = -x / z; v = -y / z; break;
  case 3: u = z / x; v = y / x; break;
  case 4: u = z / y; v = -x / y; break;
  default: u = -y / z; v = -x / z; break;
  }
  uint32_t i = st_to_ij(uv_to_st(u)), j = st_to_ij(uv_to_st(v));
  uint64_t n = (uint64_t)face << (2 * S2_MAX_LEVEL);
  uint32_t bits = (uint32_t)(face & S2_SWAP);
  const uint32_t mask = (1u << S2_LOOKUP_BITS) - 1;
  for (int k = 7; k >= 0; k--) {
    bits += ((i >> (k * S2_LOOKUP_BITS)) & mask) << (S2_LOOKUP_BITS + 2);
    bits += ((j >> (k * S2_LOOKUP_BITS)) & mask) << 2;
    bits = lookup_pos[bits];
    n |= (uint64_t)(bits >> 2) << (k * 2 * S2_LOOKUP_BITS);
    bits &= S2_SWAP | S2_INVERT;
  }
  return n * 2 + 1;
}
