/* net.h - service threads (net.c) as seen by the control thread. */
#ifndef SPK_SRV_NET_H
#define SPK_SRV_NET_H

#include "srv.h"

/* Start n service threads. 0 or -1. */
int spk_srv_net_start(spk_srv *srv, uint32_t n_threads);
/* Hand an accepted socket of node node_ix to a service thread. */
void spk_srv_net_add(int fd, uint32_t node_ix);
/* Close every open connection of a node (it was killed). */
void spk_srv_net_kill(uint32_t node_ix);
/* Stop and join the service threads, closing all connections. */
void spk_srv_net_stop(void);

#endif
