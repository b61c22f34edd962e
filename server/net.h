/* net.h - service threads (net.c) as seen by the control thread.
 *
 * The control thread never touches a connection: it hands sockets over and
 * asks for kills / stop through each service thread's queue, and the
 * service thread that owns a connection is the only one that reads, writes,
 * closes or frees it (see the lifetime note at the top of net.c). */
#ifndef SPK_SRV_NET_H
#define SPK_SRV_NET_H

#include "srv.h"

/* Start n service threads. 0 or -1. */
int spk_srv_net_start(spk_srv *srv, uint32_t n_threads);
/* Hand an accepted socket of node node_ix to a service thread (which owns
 * it from now on); it belongs to the node's current incarnation. */
void spk_srv_net_add(int fd, uint32_t node_ix);
/* Close every open connection of a node (it was killed; call after
 * spk_srv_cluster_kill).  Asynchronous: each service thread closes its own
 * connections when it drains its queue; until then they answer nothing. */
void spk_srv_net_kill(uint32_t node_ix);
/* Stop and join the service threads, closing all connections. */
void spk_srv_net_stop(void);

#endif
