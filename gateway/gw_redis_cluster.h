/*
 * gw_redis_cluster.h - the gateway's Redis transport on a Redis Cluster:
 * the gw_redis.h contract, routed by hash slot. gw_redis.c hands every
 * call to it when redis.cluster is on; nothing else includes this.
 *
 * Reads: one hiredis async connection per master (gw_redis_uv.c on the
 * loop), each GET sent to the master that owns its key's slot in the map
 * read with CLUSTER SLOTS (px_rcl_refresh, blocking and bounded, as
 * px_rsub does: only at start, after a redirection or a lost connection).
 * MOVED and ASK are followed (ASK with ASKING first), TRYAGAIN,
 * CLUSTERDOWN and a lost connection resent after a short backoff with the
 * map read again, at most GW_RCL_ATTEMPTS times within GW_RCL_RETRY_MS;
 * a read that still has no answer fails (PX_EBACKEND), and every watched
 * entity is read again a second later (handlers.up(GW_REDIS_READS)), so a
 * failover heals without a message to wake it.
 *
 * Pub/sub: core/px_rsub.h with sharded pub/sub (SSUBSCRIBE on the master
 * that owns the channel's slot; the processor publishes with SPUBLISH).
 * px_rsub keeps every wanted channel subscribed by itself; a channel it
 * had to subscribe again (slot moved, master failed over) may have missed
 * messages, so every watched entity is read again (coalesced to one
 * handlers.up(GW_REDIS_READS) per loop turn).
 */
#ifndef PX_GW_REDIS_CLUSTER_H
#define PX_GW_REDIS_CLUSTER_H

#include "gw_redis.h"
#include "px_redis_cluster.h"

#define GW_RCL_ATTEMPTS 8
#define GW_RCL_RETRY_MS 6000  /* a read gives up this long after it was asked */
#define GW_RCL_DEAD_MS 3000   /* a connection with an answer owed this long is dropped */
#define GW_RCL_CONNECT_MS 1000 /* and one not connected after this long (hiredis 0.14 on libuv can miss a refusal) */

typedef struct gw_rcl gw_rcl_t;

/* conf: the cluster's seeds (px_redis_conf_rcl); strings copied. NULL
 * with the reason in errstr (a seed list that does not parse, no memory). */
gw_rcl_t *gw_rcl_new(uv_loop_t *loop, const px_rcl_conf_t *conf, px_counter_t *errors,
                     const gw_redis_handlers_t *h, char *errstr, size_t errstr_size);
void gw_rcl_stop(gw_rcl_t *c);
void gw_rcl_free(gw_rcl_t *c);
bool gw_rcl_readable(const gw_rcl_t *c);
bool gw_rcl_subscribed(const gw_rcl_t *c);
int gw_rcl_get(gw_rcl_t *c, const char *key, gw_redis_get_cb cb, void *arg);
void gw_rcl_subscribe(gw_rcl_t *c, const char *channel, bool on);

#endif
