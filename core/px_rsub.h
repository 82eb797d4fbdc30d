/*
 * px_rsub.h - an asynchronous Redis pub/sub subscriber on a libuv loop, for
 * a single server and a Redis Cluster alike.
 *
 * The caller names the channels it wants (px_rsub_add / px_rsub_del); the
 * subscriber keeps each one subscribed and hands every message to
 * on_message. Whenever a subscription is confirmed by the server,
 * on_subscribed says so, with `again` set when the channel had been
 * subscribed before and was lost (a connection dropped, its slot moved, a
 * master failed over): messages published in between are gone, so the
 * caller re-reads what the channel's messages would have told it.
 *
 * Single server (cluster off): one connection (TCP, or the Unix socket when
 * the host begins with '/'), classic SUBSCRIBE / UNSUBSCRIBE and `message`
 * pushes, so a Redis 6 works; the publisher uses PUBLISH.
 *
 * Redis Cluster (7.0 or later): sharded pub/sub. Each channel is
 * SSUBSCRIBEd on the master that owns its slot (px_redis_slot(): a channel
 * `presence:updates:{T:E:I}` lives in the slot of its entity's keys), one
 * connection per master that owns watched channels; the publisher uses
 * SPUBLISH. The slot map comes from CLUSTER SLOTS through px_redis_cluster
 * (px_rcl_refresh). It is read again when a connection to a master is lost
 * or fails, when the server unsubscribes a channel still wanted (Redis 7
 * sends `sunsubscribe` for every channel of a slot that leaves a node: a
 * migration, or a master demoted by a failover), and after an error answer
 * other than MOVED; a MOVED answer to SSUBSCRIBE updates the map with the
 * slot's new owner directly. Every affected channel is then subscribed on
 * its owner, and on_subscribed(again) fires once the owner confirms it.
 * While no owner answers, attempts are spaced by a capped backoff
 * (retry_min_ms doubling up to retry_max_ms).
 *
 * THE REFRESH BLOCKS THE LOOP: px_rcl_refresh asks the known masters, then
 * the seeds, for CLUSTER SLOTS with blocking hiredis calls until one
 * answers, each bounded by refresh_timeout_ms (default 250). On loopback or
 * a LAN a live node answers well under a millisecond; a dead node refuses
 * at once, but one that swallows packets costs up to refresh_timeout_ms per
 * refresh while it is still in the map (a few refreshes, spaced by the
 * backoff, until the cluster promotes its replica). Refreshes happen only
 * after a failure or a slot move, never per message.
 *
 * Readiness: on_state(up) reports changes of px_rsub_up(): up when the
 * server (single) or the slot map (cluster) is reachable and no channel is
 * waiting to be subscribed again after a failure; down from the first sign
 * of one (a lost connection carrying channels, a refused subscribe, a
 * channel unsubscribed by the server, a failed refresh) until every channel
 * hit by it is confirmed again. A channel just added and not yet confirmed
 * does not make the state down.
 *
 * Connections: libuv TCP or pipe handles with this module's own write
 * buffers and a bounded hiredis reader each (px_rsub_reader below); hiredis
 * 0.14's async layer cannot carry sharded pub/sub (it drops the connection
 * at the first `smessage`). Commands are formatted with
 * redisFormatCommandArgv. An idle connection is sent a PING every ping_ms;
 * a connection whose oldest command has waited timeout_ms for its answer
 * is dropped (a server that stops reading or answering is noticed too).
 *
 * Bounds: max_channels channels (px_rsub_add refuses more), a channel name
 * of at most PX_RSUB_CHANNEL_MAX bytes, a reply of at most max_reply bytes
 * (a larger one, or bytes that break RESP, or a reply out of order drops
 * the connection: logged and counted as a protocol error), per connection
 * about max_wbuf bytes of commands written and not yet answered (past half
 * of it, subscribes and the unsubscribes of deleted channels wait for
 * answers to make room; a deleted channel is kept until its unsubscribe is
 * written, so at most max_channels more of them), at most
 * PX_REDIS_NODES_MAX connections. Every failure is counted (px_rsub_stats)
 * and logged: a run of failures once, at its start (the rest at debug),
 * its end with how long the subscriber was down; a protocol error every
 * time, at level error.
 *
 * Not done: AUTH and TLS (no program of presence uses them with Redis
 * yet), pattern subscriptions, subscribing on replicas.
 *
 * Threads: everything runs on the loop's thread. Callbacks are called from
 * the loop, never from inside px_rsub_add or px_rsub_del (a state change
 * seen there is reported on the loop's next turn), and may call
 * px_rsub_add, px_rsub_del and px_rsub_free. Implemented by px_rsub.c
 * (channels, placement, recovery), px_rsub_conn.c (connections) and
 * px_rsub_reader.c (the pure parts below). Related: px_redis_slot.h,
 * px_redis_cluster.h, px_redis_addr.h, docs/redis-keys.md ("Pub/sub on
 * Redis Cluster"), tests/unit/test_rsub.c,
 * tests/cluster/test_redis_rsub.py (a real 3 + 3 cluster: slot moves,
 * SIGKILL, CLUSTER FAILOVER; a single server restarted).
 */
#ifndef PX_RSUB_H
#define PX_RSUB_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PX_RSUB_CHANNEL_MAX 1024       /* bytes of one channel name */
#define PX_RSUB_FEED_MAX (64 * 1024)   /* bytes px_rsub_reader_feed takes at once */

typedef struct px_rsub_conf {
    const char *host;     /* single: the server (host, or a Unix socket path);
                             cluster: one more seed, may be NULL */
    int port;
    bool cluster;
    const char *seeds;    /* cluster: "host:port,host:port" (at most 16) */
    long timeout_ms;      /* connect and PING answer; default 1000 */
    long refresh_timeout_ms; /* each blocking CLUSTER SLOTS call (connect, answer); default 250 */
    long ping_ms;         /* PING period on an idle connection; default 1000 */
    long retry_min_ms;    /* backoff after a failure: first wait (the first retry is at once); default 50 */
    long retry_max_ms;    /* backoff cap; default 1000 */
    size_t max_channels;  /* default 100000 */
    size_t max_reply;     /* bytes of one reply; default 4 MiB */
    size_t max_wbuf;      /* bytes of commands not yet answered per connection; default 4 MiB */
    const char *log_comp; /* the `comp` of log lines; default "redis-sub" */
} px_rsub_conf_t;

typedef struct px_rsub_handlers {
    /* A message on a wanted channel (payload may hold any bytes). */
    void (*on_message)(void *ud, const char *channel, size_t channel_len, const char *payload,
                       size_t payload_len);
    /* The server confirmed channel's subscription; again: it had been
     * subscribed before and was lost, so messages may have been missed. */
    void (*on_subscribed)(void *ud, const char *channel, size_t channel_len, bool again);
    /* px_rsub_up() changed. */
    void (*on_state)(void *ud, bool up);
    void *ud;
} px_rsub_handlers_t;

typedef struct px_rsub px_rsub_t;

/* A subscriber on loop (conf's strings copied; handlers may be NULL each).
 * Connects from the loop, not here: the first connection (single) or the
 * first slot map (cluster) is made on the loop's next turn. NULL with the
 * reason in errstr for a configuration that cannot work (no server, a seed
 * that is not host:port, a socket path too long) or no memory. */
px_rsub_t *px_rsub_new(uv_loop_t *loop, const px_rsub_conf_t *conf, const px_rsub_handlers_t *h, char *errstr,
                       size_t errstr_size);

/* Stop: no callback fires after this returns. Handles are closed, and the
 * memory is freed in their close callbacks, so the loop must run again
 * (uv_run) before it is closed. NULL is a no-op. */
void px_rsub_free(px_rsub_t *s);

/* Want channel[0..len). 0 (also when already wanted); PX_EINVAL for an
 * empty name or one over PX_RSUB_CHANNEL_MAX bytes; PX_ENOMEM at
 * max_channels or out of memory (counted as refused; the caller logs). */
int px_rsub_add(px_rsub_t *s, const char *channel, size_t len);
/* Stop wanting it (unsubscribed on its node). 0, also when not wanted. */
int px_rsub_del(px_rsub_t *s, const char *channel, size_t len);

/* -1: not wanted; 0: wanted, not (or no longer) confirmed; 1: confirmed. */
int px_rsub_channel_state(const px_rsub_t *s, const char *channel, size_t len);
bool px_rsub_up(const px_rsub_t *s);

typedef struct px_rsub_stats {
    uint64_t messages;         /* delivered to on_message */
    uint64_t stray;            /* messages on channels not wanted (dropped) */
    uint64_t subscribes;       /* subscriptions confirmed, first or again */
    uint64_t resubscribes;     /* of them, again (on_subscribed with again) */
    uint64_t unsubscribed;     /* wanted channels unsubscribed by the server (slot moved, node demoted) */
    uint64_t moved;            /* MOVED answers to SSUBSCRIBE */
    uint64_t errors;           /* other error answers to a subscribe */
    uint64_t refreshes;        /* slot map reads that succeeded */
    uint64_t refresh_failures; /* and that failed */
    uint64_t connects;         /* connections established */
    uint64_t connect_failures; /* connection attempts that failed (refused, timed out, no name) */
    uint64_t drops;            /* established connections lost or dropped, whatever the reason */
    uint64_t protocol_errors;  /* of them: malformed, oversized or out-of-order replies */
    uint64_t refused;          /* px_rsub_add over max_channels */
    size_t channels, live, connections; /* now: wanted, confirmed, open or opening */
} px_rsub_stats_t;
px_rsub_stats_t px_rsub_stats(const px_rsub_t *s);

/* ---- the pure parts, for the connection and its unit test ------------ */

/* A bounded RESP reader: hiredis's redisReader whose reply objects are
 * counted as they are built, so a reply over max bytes (its strings, and
 * its arrays at pointer size per element, whatever they announce) is
 * refused before it is allocated, and a reply still incomplete with more
 * than max bytes buffered is refused too. Errors are sticky. */
typedef struct px_rsub_reader px_rsub_reader_t;
px_rsub_reader_t *px_rsub_reader_new(size_t max_reply); /* NULL: no memory */
void px_rsub_reader_free(px_rsub_reader_t *rd);         /* NULL is a no-op */
/* Add len (<= PX_RSUB_FEED_MAX) bytes; call px_rsub_reader_next until it
 * returns 0 before feeding more. 0, or PX_EINVAL (len too big) / the
 * sticky error with the reason. */
int px_rsub_reader_feed(px_rsub_reader_t *rd, const char *buf, size_t len, char *errstr, size_t errstr_size);
/* 1 with *out (free it with freeReplyObject), 0 when no whole reply is
 * buffered, PX_EPROTO (bytes that break RESP) or PX_ENOMEM (a reply over
 * max) with the reason. */
int px_rsub_reader_next(px_rsub_reader_t *rd, redisReply **out, char *errstr, size_t errstr_size);

typedef enum {
    PX_RSUB_PUSH_INVALID = 0,  /* anything a subscriber connection must not get */
    PX_RSUB_PUSH_MESSAGE,      /* [s]message channel payload */
    PX_RSUB_PUSH_SUBSCRIBED,   /* [s]subscribe channel count */
    PX_RSUB_PUSH_UNSUBSCRIBED, /* [s]unsubscribe channel count */
    PX_RSUB_PUSH_PONG,         /* +PONG, or [pong, data] once subscribed */
    PX_RSUB_PUSH_ERROR         /* an error answer: text in data */
} px_rsub_push_kind_t;

typedef struct px_rsub_push {
    px_rsub_push_kind_t kind;
    bool sharded;              /* the s- form (smessage, ssubscribe, sunsubscribe) */
    const char *channel;       /* into the reply */
    size_t channel_len;
    const char *data;          /* payload, or the error text */
    size_t data_len;
    long long count;           /* [s][un]subscribe: the connection's subscriptions */
} px_rsub_push_t;

/* What reply r (RESP2, as the reader gives it) is to a subscriber
 * connection. Pure: *out points into r. Shapes are checked exactly (names
 * as Redis sends them, element count and types); pmessage and friends are
 * INVALID (this module never PSUBSCRIBEs). */
px_rsub_push_kind_t px_rsub_push_parse(const redisReply *r, px_rsub_push_t *out);

#endif
