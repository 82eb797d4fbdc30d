/*
 * gw_redis.h - the gateway's Redis transport: one connection for reads and
 * one for pub/sub on the gateway's libuv loop (gw_redis_uv.c), re-dialled
 * every second when lost, the read connection PINGed by a watchdog.
 *
 * It knows keys, channels and bytes, nothing of entities, views or
 * clients: what comes back goes up through the handlers given to
 * gw_redis_new (gw_push.c decides what to push) and the callback of each
 * read (gw_view.c decodes it). Every read is addressed by its key and
 * every subscription by its channel, so a Redis Cluster transport can keep
 * this interface and route each by slot (reads to the key's master,
 * SSUBSCRIBE through core/px_rsub.h); a link's `up` then means "the
 * subscriptions (or reads) that were lost must be made again".
 */
#ifndef PX_GW_REDIS_H
#define PX_GW_REDIS_H

#include <stdbool.h>
#include <stddef.h>

#include <hiredis/async.h>
#include <uv.h>

#include "px_metrics.h"
#include "px_redis_conf.h"

typedef struct gw_redis gw_redis_t;

typedef enum { GW_REDIS_READS, GW_REDIS_SUBS } gw_redis_link_t;

typedef struct gw_redis_handlers {
    /* A link is up, at start or after a loss: every read in flight on it
     * has been answered with PX_EBACKEND and every subscription is gone,
     * so what is watched must be subscribed (or read) again. */
    void (*up)(void *arg, gw_redis_link_t link);
    /* A message on a subscribed channel; the bytes live until the return. */
    void (*message)(void *arg, const char *channel, size_t channel_len, const char *payload, size_t len);
    void *arg;
} gw_redis_handlers_t;

/* A read's outcome, called exactly once: 0 with the value (val NULL, len
 * 0: no such key), or PX_EBACKEND (an error reply, a reply that is not a
 * string, the connection lost, shutdown), logged and counted here. The
 * bytes live until the return. */
typedef void (*gw_redis_get_cb)(void *arg, int status, const char *val, size_t len);

/* The transport for the shared Redis settings rc and the gateway's
 * redis.host/redis.port: a single server (a host beginning with / is a
 * Unix socket), dialled at once; with Sentinel (redis.sentinels), the
 * master the Sentinels name, asked before every dial (blocking, 300 ms per
 * Sentinel at most: only when a connection is lost); a cluster
 * (redis.cluster): gw_redis_cluster.h. Errors (failed reads, lost
 * connections) bump `errors`. NULL with the reason in errstr. The
 * handlers run on the loop. */
gw_redis_t *gw_redis_new(uv_loop_t *loop, const px_redis_conf_t *rc, const char *host, int port, px_counter_t *errors,
                         const gw_redis_handlers_t *h, char *errstr, size_t errstr_size);
/* In the loop, at shutdown: close the connections and timers; reads in
 * flight are answered with PX_EBACKEND, no handler runs afterwards. */
void gw_redis_stop(gw_redis_t *r);
/* After the loop has drained; NULL is a no-op. */
void gw_redis_free(gw_redis_t *r);
/* The read link is up (a read will be sent). */
bool gw_redis_readable(const gw_redis_t *r);
/* The pub/sub link is up (a subscription will be sent). */
bool gw_redis_subscribed(const gw_redis_t *r);
/* GET key, answered through cb. 0, or PX_EBACKEND when the read link is
 * down or the command cannot be queued (cb is then not called). */
int gw_redis_get(gw_redis_t *r, const char *key, gw_redis_get_cb cb, void *arg);
/* (UN)SUBSCRIBE channel. A single server: a no-op while the pub/sub link
 * is down (`up` asks for it again). A cluster: the channel is wanted or
 * not at once, and kept subscribed through failures by px_rsub. */
void gw_redis_subscribe(gw_redis_t *r, const char *channel, bool on);

/* gw_redis_uv.c: hiredis's async context on the loop: commands written
 * together once per loop iteration, reads until the socket is empty.
 * REDIS_OK or REDIS_ERR. */
int gw_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
