/*
 * px_redis_cluster.h - one blocking, slot-aware way to send commands to
 * Redis, for a single server and a Redis Cluster alike.
 *
 * Commands are collected in a batch, each with the slot of its key (an
 * entity's keys share the hash tag `{tenant:entity:id}`). px_rcl_exec()
 * sends each master its commands as one pipeline, reads the replies back
 * into the batch in the order the commands were added, and follows the
 * cluster where it moved: MOVED refreshes the slot map (CLUSTER SLOTS) and
 * resends, ASK resends to the importing node after ASKING, TRYAGAIN and
 * CLUSTERDOWN wait a little and resend, and a connection that fails is
 * dropped, the map refreshed, and its commands resent. Every resend is
 * bounded (attempts and time); what still has no answer then fails the
 * call. Each round writes every master its pipeline before reading any
 * answer, so the masters work at the same time. Order: commands of one
 * slot reach their node in the order added,
 * also across resends, since a redirection concerns a whole slot (MOVED) or
 * only keys already moved (ASK). Replies of other slots may be answered by
 * other nodes in any order: callers that need "B after A" across slots
 * (the processor's applied marks after its writes) send B in a later exec.
 * A command whose answer was lost with its connection is sent again, so it
 * may run twice: send commands that are idempotent or guarded (the
 * processor's writes carry watermarks).
 *
 * A single server (cluster mode off, TCP or a Unix socket) is a map of one
 * node that owns every slot, so the same code runs; redirections never come.
 * A single server behind Sentinels (sentinels + master_name) is that node
 * as the Sentinels name it (px_redis_sentinel.h): asked at connect, and
 * again when its connection fails or it refuses a write as a replica
 * (READONLY, a demoted master), before the commands are resent.
 * Not thread-safe: one px_rcl_t per thread. Related: px_redis_slot.h,
 * px_redis_addr.h, docs/redis-keys.md.
 */
#ifndef PX_REDIS_CLUSTER_H
#define PX_REDIS_CLUSTER_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "px_buf.h"
#include "px_redis_slot.h"

typedef struct px_rcl_conf {
    const char *host;  /* single server: host or Unix socket path */
    int port;
    bool cluster;      /* seeds below; host/port is one more seed */
    const char *seeds; /* "host:port,host:port" (cluster), may be NULL */
    long timeout_ms;   /* connect and per-command timeout */
    long retry_ms;     /* most time px_rcl_exec spends following the cluster */
    const char *sentinels;   /* "host:port,..." (not with cluster), may be NULL */
    const char *master_name; /* the master the Sentinels name (with sentinels) */
    int db;            /* SELECT on every connection (0: none); not with cluster */
} px_rcl_conf_t;

typedef struct px_rcl px_rcl_t;

/* A handle for conf (strings copied); connects nothing yet. NULL with the
 * reason in errstr for a seed list that does not parse. */
px_rcl_t *px_rcl_new(const px_rcl_conf_t *conf, char *errstr, size_t errstr_size);
void px_rcl_free(px_rcl_t *c); /* NULL is a no-op; closes every connection */

/* Connect: for a cluster, read the slot map from the first seed that
 * answers and check every slot has a master. 0 or PX_EBACKEND. */
int px_rcl_connect(px_rcl_t *c, char *errstr, size_t errstr_size);

/* The masters the map knows (index 0..n-1), for commands every master must
 * get (SCRIPT LOAD, SCAN, the dataset epoch); a single server is one. */
int px_rcl_nodes(const px_rcl_t *c);
const px_redis_node_t *px_rcl_node(const px_rcl_t *c, int i);
/* "host:port" (or the socket path) of node i, for messages. */
const char *px_rcl_node_name(const px_rcl_t *c, int i, char *buf, size_t n);
/* The node that owns slot now, or -1. */
int px_rcl_owner(const px_rcl_t *c, int slot);

typedef struct px_rcl_cmd {
    int slot;          /* 0..16383; -1: sent to node `node` as it is */
    int node;          /* with slot -1 */
    size_t off, len;   /* the formatted command in the batch's buffer */
    redisReply *reply; /* after exec: the answer (owned by the batch) */
    int ask_node;      /* internal: ASK target, -1 none */
    int sent;          /* internal: the node it went to this round, -1 none */
} px_rcl_cmd_t;

typedef struct px_rcl_batch {
    px_buf_t buf;      /* formatted commands, back to back */
    px_rcl_cmd_t *cmd;
    size_t n, cap;
} px_rcl_batch_t;

void px_rcl_batch_init(px_rcl_batch_t *b, size_t max_bytes);
/* Free the replies and forget the commands; keep the storage. */
void px_rcl_batch_reset(px_rcl_batch_t *b);
void px_rcl_batch_term(px_rcl_batch_t *b);
/* Add a command routed by the slot of key[0..keylen). 0 or PX_ENOMEM. */
int px_rcl_add(px_rcl_batch_t *b, const char *key, size_t keylen, int argc, const char **argv,
               const size_t *argvlen);
/* Add an already formatted (RESP) command for slot, or for node `node`
 * when slot is -1. 0 or PX_ENOMEM. */
int px_rcl_add_formatted(px_rcl_batch_t *b, int slot, int node, const char *cmd, size_t len);

/* Add the command just appended to b->buf (from off to its end: callers
 * that format into the batch's buffer themselves). 0 or PX_ENOMEM. */
int px_rcl_add_appended(px_rcl_batch_t *b, int slot, int node, size_t off);

/* Send every command without a reply and read the replies (see above).
 * 0 when every command has a reply (error replies other than redirections
 * are replies: check them); PX_EBACKEND with the reason (naming the node)
 * when some have none after the retries. */
int px_rcl_exec(px_rcl_t *c, px_rcl_batch_t *b, char *errstr, size_t errstr_size);

/* Refresh the slot map now (after a failover was seen elsewhere). */
int px_rcl_refresh(px_rcl_t *c, char *errstr, size_t errstr_size);

/* Counters since px_rcl_new: redirections followed and map refreshes;
 * with Sentinels, the times the master they name changed (master_changes,
 * the first connect not counted). */
typedef struct px_rcl_stats {
    unsigned long moved, ask, tryagain, refreshes, reconnects, master_changes;
} px_rcl_stats_t;
px_rcl_stats_t px_rcl_stats(const px_rcl_t *c);

#endif
