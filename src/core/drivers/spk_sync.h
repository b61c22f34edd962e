/*
 * spk_sync.h - the blocking driver: runs a command's state machine on the
 * calling thread (connect, send, receive, retries) with blocking sockets.
 * The CPython binding releases the GIL around spk_sync_execute only.
 */
#ifndef SPK_SYNC_H
#define SPK_SYNC_H

#include "../cmd/spk_cmd.h"

/* Run cmd to completion.  Returns cmd->err.code (0 on success). */
int spk_sync_execute(spk_cmd *cmd);

/* Run a batch job to completion: rounds of per-node commands, one node
 * after the other on this thread. Returns 0 (row results are in the job)
 * or a negative status for a batch that could not be planned. */
struct spk_batch;
int spk_sync_batch(struct spk_batch *job);

/* Per-thread scratch buffers for requests and responses, reused across
 * calls so the hot path allocates nothing; freed when the thread exits.
 * NULL only on out-of-memory. */
spk_buf *spk_sync_tx_buf(void);
spk_buf *spk_sync_rx_buf(void);

#endif /* SPK_SYNC_H */
