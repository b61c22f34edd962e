/*
 * spk_cmd.h - every command written once as a resumable state machine.
 *
 * The state machine owns routing, retry, timeout bookkeeping, in-doubt
 * tracking and response framing; it never touches a socket.  A driver
 * (blocking: spk_sync.h, event loop: spk_loop.h) repeatedly asks "what do
 * you need?" and answers with I/O results:
 *
 *   st = spk_cmd_begin(cmd, now)
 *   SPK_STEP_CONN   get a connection to cmd->node (pool or connect), then
 *                   spk_cmd_conn_ready(cmd); on failure spk_cmd_failed()
 *   SPK_STEP_SEND   write cmd->tx->data[cmd->tx_off .. cmd->tx->len);
 *                   then spk_cmd_sent(cmd)
 *   SPK_STEP_RECV   read into cmd->rx until cmd->rx->len >= cmd->need
 *                   (reading more is fine); then spk_cmd_received(cmd)
 *   SPK_STEP_SLEEP  wait cmd->sleep_ms, then spk_cmd_wake(cmd, now)
 *   SPK_STEP_DONE   finished: cmd->err.code == 0 on success
 *
 * Whenever a step other than RECV follows a connection's use, the driver
 * releases that connection: back to the pool if cmd->conn_ok, else closed.
 * spk_cmd_failed() must be called while the failed connection (or pool
 * reservation) is still held: it may count an error against the node.
 *
 * Node lifetime: between SPK_STEP_CONN and spk_cmd_conn_ready/failed the
 * node is protected by this thread's hazard pointer; afterwards by the
 * connection the driver holds.
 */
#ifndef SPK_CMD_H
#define SPK_CMD_H

#include "../cluster/spk_cluster.h"
#include "../codec/spk_proto.h"

/* Policy of one command kind, compiled once per session (not per call). */
typedef struct spk_policy {
  uint32_t total_timeout_ms;  /* 0 = no total limit */
  uint32_t socket_timeout_ms; /* 0 = no per-socket-op limit */
  uint32_t max_retries;
  uint32_t sleep_between_retries_ms;
  uint8_t replica;            /* enum spk_replica */
  uint8_t read_mode_ap;       /* 0 ONE, 1 ALL */
  uint8_t read_mode_sc;       /* 0 SESSION 1 LINEARIZE 2 ALLOW_REPLICA 3 ALLOW_UNAVAILABLE */
  uint8_t commit_level;       /* 0 ALL, 1 MASTER */
  bool send_key;
  bool durable_delete;
  uint32_t read_touch_ttl_percent;
} spk_policy;

void spk_policy_init(spk_policy *p); /* C client defaults */

typedef enum spk_cmd_kind {
  SPK_CMD_SINGLE, /* one type-3 response */
  SPK_CMD_INFO,   /* one type-1 response */
  SPK_CMD_STREAM  /* type-3 messages until an as_msg with info3 LAST */
} spk_cmd_kind;

typedef enum spk_step {
  SPK_STEP_CONN,
  SPK_STEP_SEND,
  SPK_STEP_RECV,
  SPK_STEP_SLEEP,
  SPK_STEP_DONE
} spk_step;

/*
 * Stream callback: one complete proto body (a type-3 message holding one or
 * more as_msg).  Return 0 to continue, 1 when the LAST as_msg was seen, or
 * a negative status with err set to fail the command.
 */
typedef int (*spk_stream_fn)(void *ctx, const uint8_t *body, size_t len,
                             spk_error *err);

typedef struct spk_cmd {
  /* ---- inputs (set by the caller before spk_cmd_begin) ---- */
  spk_cluster *cluster;
  const spk_policy *policy;
  spk_cmd_kind kind;
  const spk_policy *policy_sc; /* used instead of policy when the key's
                                  namespace is strong-consistency (may be NULL) */
  bool sc_durable_default;     /* a delete whose durability follows policy */
  bool is_write;
  const char *ns; /* routing: namespace, partition id */
  uint8_t ns_len;
  uint32_t pid;
  spk_node *target;  /* fixed node instead of routing (info); borrowed,
                        kept alive by the caller */
  spk_buf *tx;       /* request bytes, complete proto message (borrowed) */
  spk_buf *rx;       /* response buffer (borrowed) */
  spk_stream_fn on_msg;
  void *on_msg_ctx;

  /* ---- state ---- */
  bool sc_checked;       /* namespace mode looked up (first routing) */
  bool sc;               /* routing a strong-consistency namespace */
  spk_node *node;        /* current target */
  const void *prev_node; /* for comparison only; never dereferenced */
  uint32_t attempts;     /* attempts started */
  uint32_t replica_index;
  uint32_t sent;         /* attempts whose request may have reached a server */
  uint64_t deadline_ns;  /* total deadline, 0 = none */
  uint64_t attempt_start_ns;
  size_t tx_off;
  size_t need;           /* RECV: rx->len must reach this */
  size_t msg_off;        /* start of the current proto message in rx */
  uint8_t phase;         /* internal framing phase */
  bool conn_ok;          /* connection reusable after this step */
  uint32_t sleep_ms;
  spk_error err;
  /* SPK_CMD_SINGLE success/server error: the parsed as_msg (view into rx) */
  spk_msg_view resp;
  /* SPK_CMD_INFO success: body inside rx */
  const uint8_t *body;
  size_t body_len;
} spk_cmd;

/* Zero a command and set its inputs' defaults. */
void spk_cmd_init(spk_cmd *cmd, spk_cluster *c, const spk_policy *p,
                  spk_cmd_kind kind, spk_buf *tx, spk_buf *rx);

spk_step spk_cmd_begin(spk_cmd *cmd, uint64_t now_ns);
spk_step spk_cmd_conn_ready(spk_cmd *cmd);
spk_step spk_cmd_sent(spk_cmd *cmd);
spk_step spk_cmd_received(spk_cmd *cmd);
spk_step spk_cmd_wake(spk_cmd *cmd, uint64_t now_ns);
/* An I/O or connect failure (code: SPK_ERR_CONNECTION, SPK_ERR_TIMEOUT for
 * a socket timeout, SPK_NO_MORE_CONNECTIONS, ...).  message may be NULL. */
spk_step spk_cmd_failed(spk_cmd *cmd, int code, const char *message);
/* The same for a failure on this side (no free connection, no file
 * descriptor): not counted against the node's error rate. */
spk_step spk_cmd_failed_local(spk_cmd *cmd, int code, const char *message);
/* The node's pool refused a connection because it is closed: the client
 * closed (final), or the node left the cluster (retried elsewhere). */
spk_step spk_cmd_pool_closed(spk_cmd *cmd);

/*
 * Socket-op timeout in ms for the current attempt, bounded by what is left
 * of the total deadline: 0 = unlimited, and SPK_CMD_EXPIRED (returned as
 * UINT32_MAX) when the total deadline has already passed.
 */
#define SPK_CMD_EXPIRED UINT32_MAX
uint32_t spk_cmd_io_timeout_ms(const spk_cmd *cmd, uint64_t now_ns);

/* Write-command in-doubt rule (protocol-core 3.9). */
bool spk_cmd_in_doubt(const spk_cmd *cmd, int code);

#endif /* SPK_CMD_H */
