/*
 * spk_batch.h - the batch-index command (protocol-core section 9), written
 * once for both drivers.
 *
 * The caller fills one spk_batch_row per key, with the row's body already
 * encoded (spk_batch_row_begin / fields / ops / spk_batch_row_end into
 * job->rows_buf).  Each round groups the unanswered rows by their current
 * node, builds one request per node (consecutive identical rows become
 * REPEAT rows), and yields one spk_cmd per node for a driver to run.  Every
 * answered row's as_msg is copied into job->resp so results can be decoded
 * after the round, outside the I/O path.  Rows of a node whose command
 * failed with a retryable error are re-routed (next replica) in the next
 * round, within the policy's max_retries.
 */
#ifndef SPK_BATCH_H
#define SPK_BATCH_H

#include "spk_cmd.h"

/* Batch field (41) flags. */
#define SPK_BATCH_ALLOW_INLINE 0x01
#define SPK_BATCH_ALLOW_INLINE_SSD 0x02
#define SPK_BATCH_RESPOND_ALL 0x04
#define SPK_BATCH_REPORT_ERROR 0x08

/* Row flags. */
#define SPK_BROW_REPEAT 0x01
#define SPK_BROW_EXTRA_INFO 0x02
#define SPK_BROW_GENERATION 0x04
#define SPK_BROW_RECORD_TTL 0x08
#define SPK_BROW_INFO4 0x10

typedef struct spk_batch_row {
  uint8_t digest[SPK_DIGEST_SIZE];
  const char *ns; /* borrowed; lives as long as the job */
  uint8_t ns_len;
  uint32_t pid;
  bool is_write;
  bool repeatable;  /* body may be sent as REPEAT of an identical previous row */
  uint32_t body_off; /* row body (flags byte onward) in rows_buf */
  uint32_t body_len;
  /* results */
  int result;        /* SPK_NO_RESPONSE until answered */
  bool in_doubt;
  bool answered;
  uint32_t generation;
  uint32_t void_time;
  uint32_t resp_off; /* the row's as_msg in resp (answered rows) */
  uint32_t resp_len;
} spk_batch_row;

typedef struct spk_batch_node spk_batch_node;

typedef struct spk_batch {
  spk_cluster *cluster;
  const spk_policy *policy;
  spk_policy node_policy; /* policy of the per-node commands: no retries of
                             their own; rounds retry instead */
  uint8_t field_flags;   /* SPK_BATCH_* */
  spk_batch_row *rows;   /* caller-owned array */
  uint32_t n_rows;
  spk_buf rows_buf;      /* row bodies (owned) */
  spk_buf resp;          /* answered rows' as_msg bytes (owned) */
  uint32_t round;
  uint64_t deadline_ns;
  spk_batch_node *nodes; /* current round */
  uint32_t n_nodes;
  spk_error err;         /* first batch-level error */
} spk_batch;

struct spk_batch_node {
  spk_batch *job;
  spk_node *node;
  uint32_t *rows; /* indexes into job->rows */
  uint32_t n_rows;
  spk_buf tx;
  spk_buf rx;
  spk_cmd cmd;
  bool done;
};

/* ---- row encoding (caller side) ---- */

/*
 * Start a row body in job->rows_buf: the row flags and attributes.  Return
 * its offset, or (size_t)-1 on OOM.  gen / ttl are written only when the
 * matching flag is in row_flags (SPK_BROW_GENERATION, SPK_BROW_RECORD_TTL);
 * info2/info3 only with SPK_BROW_EXTRA_INFO.
 */
size_t spk_batch_row_begin(spk_buf *b, uint8_t row_flags, uint8_t info1,
                           uint8_t info2, uint8_t info3, uint16_t gen,
                           uint32_t ttl);
/* Patch n_fields / n_ops of the row started at off. */
void spk_batch_row_end(spk_buf *b, size_t off, uint16_t n_fields, uint16_t n_ops);

/* ---- execution ---- */

void spk_batch_init(spk_batch *job, spk_cluster *c, const spk_policy *p,
                    spk_batch_row *rows, uint32_t n_rows);
void spk_batch_destroy(spk_batch *job);

/*
 * Plan the next round: returns the number of node commands (0 when every
 * row is answered or no retry is left), each ready to run (its cmd has
 * target, tx, rx and the stream callback set).  A negative value is an
 * error for the whole batch (in job->err).  Rows that cannot be routed get
 * their error code set and are answered.
 */
int spk_batch_plan(spk_batch *job, uint64_t now_ns);

/* Account a finished node command (after its cmd reached SPK_STEP_DONE). */
void spk_batch_node_done(spk_batch *job, spk_batch_node *bn);

/* Free the round's node commands (after all are done). */
void spk_batch_round_end(spk_batch *job);

/* Decode helper: the parsed as_msg of an answered row. */
int spk_batch_row_msg(const spk_batch *job, const spk_batch_row *row,
                      spk_msg_view *v);

#endif /* SPK_BATCH_H */
