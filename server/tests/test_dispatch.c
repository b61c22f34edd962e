/* Requests in, responses out, without sockets: round trips, connection
 * rules, info, batch, expiry. */
#include "fixture.h"

static void put_int(fx_req *r, const char *bin, int64_t v) {
  spk_msg_op_int(&r->b, SPK_OP_WRITE, bin, strlen(bin), v);
  r->no++;
}

static void read_bin(fx_req *r, const char *bin) {
  spk_msg_op_raw(&r->b, SPK_OP_READ, 0, bin, strlen(bin), NULL, 0);
  r->no++;
}

SPK_TEST(put_get_round_trip) {
  spk_srv *s = fx_server(1, 1);
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  fx_req r;
  spk_msg_header h;
  fx_begin(&r, 0, SPK_INFO2_WRITE, 0, 0);
  fx_key(&r, "test", "s", 1);
  put_int(&r, "a", 42);
  put_int(&r, "b", -7);
  SPK_ASSERT_EQ(fx_send(&c, &r, &h), SPK_SRV_REPLY);
  SPK_ASSERT_EQ(h.result_code, 0);
  SPK_ASSERT_EQ(h.generation, 1);
  fx_begin(&r, SPK_INFO1_READ, 0, 0, 0);
  fx_key(&r, "test", "s", 1);
  read_bin(&r, "b");
  read_bin(&r, "nope");
  fx_send(&c, &r, &h);
  SPK_ASSERT_EQ(h.result_code, 0);
  SPK_ASSERT_EQ(h.n_ops, 1);
  /* op: size 4+1+8, READ, INTEGER, flags 0, name "b", value -7 */
  const uint8_t *op = c.out.data + 30;
  SPK_ASSERT_EQ(spk_be32(op), 13);
  SPK_ASSERT_EQ(op[4], SPK_OP_READ);
  SPK_ASSERT_EQ(op[5], SPK_PARTICLE_INTEGER);
  SPK_ASSERT_EQ((int64_t)spk_be64(op + 9), -7);
  /* Generation check and create-only. */
  fx_begin(&r, 0, SPK_INFO2_WRITE | SPK_INFO2_GENERATION, 0, 0);
  fx_key(&r, "test", "s", 1);
  put_int(&r, "a", 1);
  fx_send(&c, &r, &h);
  SPK_ASSERT_EQ(h.result_code, SPK_SRV_ERR_GENERATION);
  SPK_ASSERT_EQ(h.generation, 1);
  fx_begin(&r, 0, SPK_INFO2_WRITE | SPK_INFO2_CREATE_ONLY, 0, 0);
  fx_key(&r, "test", "s", 1);
  put_int(&r, "a", 1);
  fx_send(&c, &r, &h);
  SPK_ASSERT_EQ(h.result_code, SPK_SRV_ERR_RECORD_EXISTS);
  /* Delete, then not found. */
  fx_begin(&r, 0, SPK_INFO2_WRITE | SPK_INFO2_DELETE, 0, 0);
  fx_key(&r, "test", "s", 1);
  fx_send(&c, &r, &h);
  SPK_ASSERT_EQ(h.result_code, 0);
  fx_begin(&r, SPK_INFO1_READ | SPK_INFO1_GET_ALL, 0, 0, 0);
  fx_key(&r, "test", "s", 1);
  fx_send(&c, &r, &h);
  SPK_ASSERT_EQ(h.result_code, SPK_SRV_ERR_NOT_FOUND);
  /* Unknown namespace. */
  fx_begin(&r, SPK_INFO1_READ | SPK_INFO1_GET_ALL, 0, 0, 0);
  fx_key(&r, "nosuch", "s", 1);
  fx_send(&c, &r, &h);
  SPK_ASSERT_EQ(h.result_code, SPK_SRV_ERR_NAMESPACE);
  spk_srv_ctx_free(&c);
  fx_free(s);
}

SPK_TEST(connection_rules) {
  uint64_t len;
  uint8_t ok[8] = {2, 3, 0, 0, 0, 0, 0, 22};
  SPK_ASSERT_OK(spk_srv_check_header(ok, &len));
  SPK_ASSERT_EQ(len, 22);
  uint8_t tls[8] = {22, 3, 1, 0, 200, 1, 0, 0};
  SPK_ASSERT(spk_srv_check_header(tls, &len) != 0);
  uint8_t v1[8] = {1, 3, 0, 0, 0, 0, 0, 22};
  SPK_ASSERT(spk_srv_check_header(v1, &len) != 0);
  uint8_t v0admin[8] = {0, 2, 0, 0, 0, 0, 0, 16};
  SPK_ASSERT_OK(spk_srv_check_header(v0admin, &len));
  uint8_t v0msg[8] = {0, 3, 0, 0, 0, 0, 0, 16};
  SPK_ASSERT(spk_srv_check_header(v0msg, &len) != 0);
  uint8_t t9[8] = {2, 9, 0, 0, 0, 0, 0, 0};
  SPK_ASSERT(spk_srv_check_header(t9, &len) != 0);
  uint8_t big[8] = {2, 3, 0, 0, 8, 0, 0, 1};
  SPK_ASSERT(spk_srv_check_header(big, &len) != 0);
  /* Type 5 stalls, admin answers 51, type 4 answers 25. */
  spk_srv *s = fx_server(1, 1);
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  uint8_t xdr[8] = {2, 5, 0, 0, 0, 0, 0, 0};
  SPK_ASSERT_EQ(spk_srv_dispatch(&c, xdr, 8), SPK_SRV_STALL);
  uint8_t admin[24] = {2, 2, 0, 0, 0, 0, 0, 16, 0, 0, 20};
  c.out.len = 0;
  spk_srv_dispatch(&c, admin, 24);
  SPK_ASSERT_EQ(c.out.len, 24);
  SPK_ASSERT_EQ(c.out.data[9], 51);
  uint8_t comp[16] = {2, 4, 0, 0, 0, 0, 0, 8};
  c.out.len = 0;
  spk_srv_dispatch(&c, comp, 16);
  SPK_ASSERT_EQ(c.out.data[13], 25);
  /* Trailing bytes after the last op: parameter error. */
  fx_req r;
  spk_msg_header h;
  fx_begin(&r, SPK_INFO1_READ | SPK_INFO1_GET_ALL, 0, 0, 0);
  fx_key(&r, "test", "s", 2);
  spk_buf_append(&r.b, "\0\0\0\0", 4);
  fx_send(&c, &r, &h);
  SPK_ASSERT_EQ(h.result_code, SPK_SRV_ERR_PARAMETER);
  spk_srv_ctx_free(&c);
  fx_free(s);
}

SPK_TEST(info_answers) {
  spk_srv *s = fx_server(1, 1);
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  SPK_ASSERT_STR_EQ(fx_info(&c, "node\nbuild\n"), "node\tB1\nbuild\t8.1.2.0\n");
  SPK_ASSERT_STR_EQ(fx_info(&c, "node"), "");
  SPK_ASSERT_STR_EQ(fx_info(&c, "no-such\n"), "no-such\tERROR:4:unrecognized command\n");
  SPK_ASSERT_STR_EQ(fx_info(&c, "racks\n"), "racks\tERROR:25:enterprise only\n");
  SPK_ASSERT_STR_EQ(fx_info(&c, "namespaces\n"), "namespaces\ttest;bar\n");
  SPK_ASSERT_STR_EQ(fx_info(&c, "peers-clear-std\n"), "peers-clear-std\t0,3000,[]\n");
  SPK_ASSERT_STR_EQ(fx_info(&c, "namespace/zz\n"), "namespace/zz\ttype=unknown\n");
  const char *rep = fx_info(&c, "replicas\n");
  SPK_ASSERT(strncmp(rep, "replicas\ttest:0,1,//", 20) == 0);
  SPK_ASSERT_EQ(strlen(rep), strlen("replicas\t") + 2 * (strlen("test:0,1,") + 684) +
                                 strlen("bar") - strlen("test") + 1 + 1);
  spk_srv_ctx_free(&c);
  fx_free(s);
}

SPK_TEST(batch_rows_and_last) {
  spk_srv *s = fx_server(1, 1);
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  fx_req r;
  spk_msg_header h;
  fx_begin(&r, 0, SPK_INFO2_WRITE, 0, 0);
  fx_key(&r, "test", "s", 10);
  put_int(&r, "a", 1);
  fx_send(&c, &r, &h);
  /* Batch: row 0 reads seed 10, row 1 repeats for seed 11 (missing). */
  spk_buf f = {0};
  uint8_t hdr[5] = {0, 0, 0, 2, 0x0d};
  spk_buf_append(&f, hdr, 5);
  uint8_t d[20];
  uint8_t idx[4] = {0, 0, 0, 0};
  fx_digest(d, 10);
  spk_buf_append(&f, idx, 4);
  spk_buf_append(&f, d, 20);
  uint8_t row[] = {0x0a, SPK_INFO1_READ | SPK_INFO1_GET_ALL, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0};
  spk_buf_append(&f, row, sizeof row);
  spk_msg_field(&f, SPK_FIELD_NAMESPACE, "test", 4);
  idx[3] = 1;
  fx_digest(d, 11);
  spk_buf_append(&f, idx, 4);
  spk_buf_append(&f, d, 20);
  uint8_t repeat = 1;
  spk_buf_append(&f, &repeat, 1);
  fx_begin(&r, SPK_INFO1_BATCH, 0, 0, 0);
  spk_msg_field(&r.b, SPK_FIELD_BATCH_INDEX, f.data, f.len);
  r.nf = 1;
  spk_buf_free(&f);
  fx_send(&c, &r, NULL);
  /* One proto message with two rows, then LAST. */
  spk_msg_header a, b, last;
  uint64_t sz = spk_be64(c.out.data) & 0xFFFFFFFFFFFFull;
  spk_msg_header_read(c.out.data + 8, &a);
  size_t off = 8 + 22 + spk_be32(c.out.data + 30) + 4;
  spk_msg_header_read(c.out.data + off, &b);
  SPK_ASSERT_EQ(a.result_code, 0);
  SPK_ASSERT_EQ(a.transaction_ttl, 0);
  SPK_ASSERT_EQ(b.result_code, SPK_SRV_ERR_NOT_FOUND);
  SPK_ASSERT_EQ(b.transaction_ttl, 1);
  SPK_ASSERT_EQ(8 + sz + 30, c.out.len);
  spk_msg_header_read(c.out.data + 8 + sz + 8, &last);
  SPK_ASSERT_EQ(last.info3, SPK_INFO3_LAST);
  SPK_ASSERT_EQ(last.result_code, 0);
  spk_srv_ctx_free(&c);
  fx_free(s);
}

SPK_TEST(expiry) {
  spk_srv *s = fx_server(1, 1);
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  fx_req r;
  spk_msg_header h;
  fx_begin(&r, 0, SPK_INFO2_WRITE, 0, 1);
  fx_key(&r, "test", "s", 20);
  put_int(&r, "a", 1);
  fx_send(&c, &r, &h);
  SPK_ASSERT_EQ(h.result_code, 0);
  SPK_ASSERT(h.record_ttl >= spk_srv_now_cl());
  /* TTL over ten years is rejected, not clamped. */
  fx_begin(&r, 0, SPK_INFO2_WRITE, 0, SPK_SRV_TEN_YEARS + 1);
  fx_key(&r, "test", "s", 21);
  put_int(&r, "a", 1);
  fx_send(&c, &r, &h);
  SPK_ASSERT_EQ(h.result_code, SPK_SRV_ERR_PARAMETER);
  sleep(2);
  fx_begin(&r, SPK_INFO1_READ | SPK_INFO1_GET_NOBINDATA, 0, 0, 0);
  fx_key(&r, "test", "s", 20);
  fx_send(&c, &r, &h);
  SPK_ASSERT_EQ(h.result_code, SPK_SRV_ERR_NOT_FOUND);
  SPK_ASSERT_EQ(atomic_load(&s->ns[0]->objects), 1);
  SPK_ASSERT_EQ(spk_srv_nsup(s->ns[0]), 1);
  SPK_ASSERT_EQ(atomic_load(&s->ns[0]->objects), 0);
  spk_srv_ctx_free(&c);
  fx_free(s);
}

SPK_TEST(filter_and_scan) {
  spk_srv *s = fx_server(1, 1);
  spk_srv_ctx c;
  spk_srv_ctx_init(&c, s, &s->nodes[0]);
  fx_req r;
  spk_msg_header h;
  for (uint32_t i = 1; i <= 20; i++) {
    fx_begin(&r, 0, SPK_INFO2_WRITE, 0, 0);
    fx_key(&r, "test", "s", i);
    put_int(&r, "a", i);
    fx_send(&c, &r, &h);
    SPK_ASSERT_EQ(h.result_code, 0);
  }
  /* FILTER a == 3 ([1, [81, 2, "a"], 3]) passes on record 3 only. */
  static const uint8_t eq3[] = {0x93, 0x01, 0x93, 0x51, 0x02, 0xa1, 0x61, 0x03};
  for (uint32_t i = 2; i <= 3; i++) {
    fx_begin(&r, SPK_INFO1_READ | SPK_INFO1_GET_ALL, 0, 0, 0);
    fx_key(&r, "test", "s", i);
    spk_msg_field(&r.b, SPK_FIELD_FILTER, eq3, sizeof eq3);
    r.nf++;
    fx_send(&c, &r, &h);
    SPK_ASSERT_EQ(h.result_code, i == 3 ? 0 : SPK_SRV_ERR_FILTERED_OUT);
  }
  /* A filter that is not boolean: 4. */
  fx_begin(&r, SPK_INFO1_READ | SPK_INFO1_GET_ALL, 0, 0, 0);
  fx_key(&r, "test", "s", 3);
  spk_msg_field(&r.b, SPK_FIELD_FILTER, eq3 + 2, 5);
  r.nf++;
  fx_send(&c, &r, &h);
  SPK_ASSERT_EQ(h.result_code, SPK_SRV_ERR_PARAMETER);
  /* Scan of every partition with MAX_RECORDS 5: five records, then LAST. */
  fx_begin(&r, SPK_INFO1_READ | SPK_INFO1_GET_ALL, 0, SPK_INFO3_PARTITION_DONE, 0);
  spk_msg_field(&r.b, SPK_FIELD_NAMESPACE, "test", 4);
  spk_msg_field(&r.b, SPK_FIELD_SETNAME, "s", 1);
  uint8_t pids[2 * 4096];
  for (uint32_t p = 0; p < 4096; p++) {
    pids[2 * p] = (uint8_t)p;
    pids[2 * p + 1] = (uint8_t)(p >> 8);
  }
  spk_msg_field(&r.b, SPK_FIELD_PID_ARRAY, pids, sizeof pids);
  uint8_t max[8] = {0, 0, 0, 0, 0, 0, 0, 5};
  spk_msg_field(&r.b, SPK_FIELD_MAX_RECORDS, max, 8);
  r.nf += 4;
  fx_send(&c, &r, NULL);
  uint32_t n_rec = 0, n_last = 0, prev_pid = 0;
  size_t off = 0;
  while (off + 8 <= c.out.len) {
    uint64_t sz = spk_be64(c.out.data + off) & 0xFFFFFFFFFFFFull;
    size_t p = off + 8, end = off + 8 + (size_t)sz;
    while (p < end) {
      spk_msg_header m;
      spk_msg_header_read(c.out.data + p, &m);
      size_t q = p + SPK_MSG_HEADER_SIZE;
      if (m.info3 & SPK_INFO3_LAST) {
        n_last++;
      } else {
        n_rec++;
        /* Fields: namespace, digest (records come in partition order). */
        const uint8_t *d = c.out.data + q + 4 + 5 + 5;
        uint32_t pid = spk_partition_id(d);
        SPK_ASSERT(pid >= prev_pid);
        prev_pid = pid;
      }
      for (uint16_t i = 0; i < m.n_fields; i++) q += 4 + spk_be32(c.out.data + q);
      for (uint16_t i = 0; i < m.n_ops; i++) q += 4 + spk_be32(c.out.data + q);
      p = q;
    }
    off = end;
  }
  SPK_ASSERT_EQ(n_rec, 5);
  SPK_ASSERT_EQ(n_last, 1);
  spk_srv_ctx_free(&c);
  fx_free(s);
}
