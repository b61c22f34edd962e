/* spk_cluster_int.h - cluster internals shared by spk_cluster.c and
 * spk_pmap.c (tend thread side).  Not for other layers. */
#ifndef SPK_CLUSTER_INT_H
#define SPK_CLUSTER_INT_H

#include "spk_cluster.h"

/* New snapshot copying `old` (NULL = empty); NULL on OOM. */
spk_pmap *spk__pmap_clone(const spk_pmap *old);
void spk__pmap_free(spk_pmap *m);
/* Replace the node list; table entries naming other nodes are cleared. */
int spk__pmap_set_nodes(spk_pmap *m, spk_node *const *nodes, uint32_t n);
/* Apply one node's `replicas` answer (protocol-core 3.3 rules). */
int spk__pmap_apply_replicas(spk_pmap *m, spk_node *node, spk_strv replicas,
                             int *changed, spk_error *err);
int spk__pmap_owns_partitions(const spk_pmap *m, const spk_node *n);

#endif
