/*
 * px_redis_conf.h - which Redis a program talks to: the settings the
 * processor, the gateway and presencectl share, declared once.
 *
 *   redis.host, redis.port     one server (each program declares these
 *                              two itself; px_redis_addr.h)
 *   redis.cluster              false (default): one server; true: a Redis
 *                              Cluster, discovered from seed nodes
 *   redis.nodes                host:port,... the cluster's seed nodes
 *                              (empty: redis.host:redis.port is the seed)
 *   redis.sentinels            host:port,... Sentinels that name the
 *   redis.master_name          master of `master_name` (a single server
 *                              with replicas; not with redis.cluster)
 *
 * A program embeds a px_redis_conf_t in its config struct, lists
 * PX_REDIS_OPTS(struct, member) in its option table, checks the result
 * once with px_redis_conf_check, and builds its px_rcl settings with
 * px_redis_conf_rcl. Related: px_redis_cluster.h, docs/configuration.md.
 */
#ifndef PX_REDIS_CONF_H
#define PX_REDIS_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "px_config.h"
#include "px_redis_cluster.h"

#define PX_REDIS_SENTINELS_MAX 16

typedef struct px_redis_conf {
    bool cluster;                      /* redis.cluster */
    char nodes[PX_CONF_STR_MAX];       /* redis.nodes */
    char sentinels[PX_CONF_STR_MAX];   /* redis.sentinels */
    char master_name[PX_CONF_STR_MAX]; /* redis.master_name */
} px_redis_conf_t;

#define PX_REDIS_OPTS(T, m)                                                                                      \
    {"redis.cluster", PX_OPT_BOOL, "false",                                                                     \
     "Redis Cluster: discover the masters from redis.nodes (or redis.host:redis.port), route by hash slot",     \
     offsetof(T, m.cluster), 0, 0},                                                                              \
        {"redis.nodes", PX_OPT_STR, "", "seed nodes of a Redis Cluster, host:port,... (with redis.cluster=true)", \
         offsetof(T, m.nodes), 0, 0},                                                                            \
        {"redis.sentinels", PX_OPT_STR, "",                                                                      \
         "Redis Sentinels, host:port,..., that name the master of redis.master_name (instead of redis.host)",    \
         offsetof(T, m.sentinels), 0, 0},                                                                        \
        {"redis.master_name", PX_OPT_STR, "", "the master's name the Sentinels monitor (with redis.sentinels)", \
         offsetof(T, m.master_name), 0, 0}

/* Check the settings once at start-up: node lists that parse, redis.nodes
 * only with redis.cluster, redis.sentinels and redis.master_name together
 * and not with redis.cluster. 0, or PX_ECONFIG with the reason. */
int px_redis_conf_check(const px_redis_conf_t *rc, char *errstr, size_t errstr_size);

/* For a program that talks to one server only: PX_ECONFIG naming the
 * settings it does not take (redis.cluster=true, redis.sentinels) when
 * they are set; `cluster_ok`/`sentinel_ok` let one of them through. */
int px_redis_conf_limit(const px_redis_conf_t *rc, const char *prog, bool cluster_ok, bool sentinel_ok, char *errstr,
                        size_t errstr_size);

/* The px_rcl settings for these settings and the program's redis.host and
 * redis.port (pointers into rc and host: they must outlive *out's use by
 * px_rcl_new, which copies them). */
void px_redis_conf_rcl(const px_redis_conf_t *rc, const char *host, int port, long timeout_ms, px_rcl_conf_t *out);

/* The Sentinels named by redis.sentinels, into out[0..PX_REDIS_SENTINELS_MAX):
 * the count (0: none configured), or PX_ECONFIG. */
int px_redis_conf_sentinels(const px_redis_conf_t *rc, px_redis_node_t *out, char *errstr, size_t errstr_size);

/* What the program reads, for its start-up line and messages:
 * "127.0.0.1:6379", "/run/redis.sock", "cluster seeds 127.0.0.1:7000,...",
 * "sentinel master mymaster". */
const char *px_redis_conf_describe(const px_redis_conf_t *rc, const char *host, int port, char *buf, size_t n);

#endif
