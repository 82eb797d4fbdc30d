/*
 * px_redis_conf.c - the shared Redis settings. See px_redis_conf.h.
 */
#include "px_redis_conf.h"

#include <stdio.h>
#include <string.h>

#include "px_err.h"
#include "px_redis_addr.h"

int px_redis_conf_check(const px_redis_conf_t *rc, char *errstr, size_t errstr_size) {
    px_redis_node_t nodes[PX_REDIS_NODES_MAX];
    if (px_redis_nodes_parse(rc->nodes, "redis.nodes", nodes, PX_REDIS_NODES_MAX, errstr, errstr_size) < 0 ||
        px_redis_conf_sentinels(rc, nodes, errstr, errstr_size) < 0)
        return PX_ECONFIG;
    if (rc->nodes[0] && !rc->cluster)
        return px_errf(PX_ECONFIG, errstr, errstr_size,
                       "redis.nodes lists a cluster's seed nodes: set redis.cluster=true (one server: redis.host and "
                       "redis.port)");
    if (!rc->sentinels[0] != !rc->master_name[0])
        return px_errf(PX_ECONFIG, errstr, errstr_size, "redis.sentinels and redis.master_name go together");
    if (rc->sentinels[0] && rc->cluster)
        return px_errf(PX_ECONFIG, errstr, errstr_size,
                       "redis.sentinels is for one master with replicas, not with redis.cluster=true");
    return 0;
}

int px_redis_conf_limit(const px_redis_conf_t *rc, const char *prog, bool cluster_ok, bool sentinel_ok, char *errstr,
                        size_t errstr_size) {
    if (rc->cluster && !cluster_ok)
        return px_errf(PX_ECONFIG, errstr, errstr_size, "%s does not talk to a Redis Cluster (redis.cluster=true)",
                       prog);
    if (rc->sentinels[0] && !sentinel_ok)
        return px_errf(PX_ECONFIG, errstr, errstr_size, "%s does not resolve a master through Sentinel (redis.sentinels)",
                       prog);
    return 0;
}

void px_redis_conf_rcl(const px_redis_conf_t *rc, const char *host, int port, long timeout_ms, px_rcl_conf_t *out) {
    bool seeds = rc->cluster && rc->nodes[0];
    *out = (px_rcl_conf_t){.host = seeds ? NULL : host,
                           .port = port,
                           .cluster = rc->cluster,
                           .seeds = seeds ? rc->nodes : NULL,
                           .timeout_ms = timeout_ms,
                           .retry_ms = timeout_ms,
                           .sentinels = rc->sentinels[0] ? rc->sentinels : NULL,
                           .master_name = rc->master_name};
}

int px_redis_conf_sentinels(const px_redis_conf_t *rc, px_redis_node_t *out, char *errstr, size_t errstr_size) {
    return px_redis_nodes_parse(rc->sentinels, "redis.sentinels", out, PX_REDIS_SENTINELS_MAX, errstr, errstr_size);
}

const char *px_redis_conf_describe(const px_redis_conf_t *rc, const char *host, int port, char *buf, size_t n) {
    char one[PX_CONF_STR_MAX + 24];
    if (rc->cluster)
        snprintf(buf, n, "cluster seeds %.400s", rc->nodes[0] ? rc->nodes : px_redis_addr(host, port, one, sizeof one));
    else if (rc->sentinels[0])
        snprintf(buf, n, "sentinel master %.200s (sentinels %.200s)", rc->master_name, rc->sentinels);
    else
        snprintf(buf, n, "%s", px_redis_addr(host, port, one, sizeof one));
    return buf;
}
