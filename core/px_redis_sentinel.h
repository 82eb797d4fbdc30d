/*
 * px_redis_sentinel.h - where the master of a Sentinel-watched Redis is.
 *
 * A single Redis with replicas under Redis Sentinel moves its master when
 * it fails over; the programs are given the Sentinels (`redis.sentinels`)
 * and the master's name (`redis.master_name`) instead of the master's
 * address, and ask. px_sentinel_master() asks the Sentinels one after
 * another, each within a timeout, `SENTINEL get-master-addr-by-name NAME`,
 * and believes an answer only when the server it names says it is a master
 * (`ROLE`): a Sentinel that has not yet seen a failover still names the old
 * master, which (once back) is a replica. The first such answer wins.
 *
 * The reply parsers do no I/O and allocate nothing; tests/unit/
 * test_redis_sentinel.c feeds them hostile RESP through hiredis's reader.
 * Blocking and not thread-safe beyond its arguments. Limits: no Sentinel
 * authentication or TLS (hiredis 0.14 has none); the Sentinels' own
 * notifications (+switch-master) are not followed: a client asks again
 * when its master fails or refuses writes (READONLY). Related:
 * px_redis_cluster.h (which uses it), docs/deployment.md ("Sentinel").
 */
#ifndef PX_REDIS_SENTINEL_H
#define PX_REDIS_SENTINEL_H

#include <hiredis/hiredis.h>
#include <stddef.h>

#include "px_redis_slot.h"

#define PX_SENTINELS_MAX 16

/* Parse the reply to SENTINEL get-master-addr-by-name: an array of two
 * bulk strings, the host and the port (decimal, 1..65535). 0 with *out
 * filled; PX_EINVAL for a nil reply (this Sentinel watches no master of
 * that name); PX_EBACKEND for an error reply (its text in errstr);
 * PX_EPROTO for anything else: another type or element count, an empty
 * host, one over PX_REDIS_HOST_MAX bytes or holding a NUL, a control
 * character or a space, a port that is not all digits or out of range.
 * *out is unchanged on error. */
int px_sentinel_addr_parse(const redisReply *r, px_redis_node_t *out, char *errstr, size_t errstr_size);

typedef enum {
    PX_REDIS_ROLE_UNKNOWN = 0, /* malformed, or a role this module does not know */
    PX_REDIS_ROLE_MASTER,
    PX_REDIS_ROLE_REPLICA,
    PX_REDIS_ROLE_SENTINEL,
} px_redis_role_t;

/* The role a ROLE reply names: its first element, "master", "slave" or
 * "sentinel"; PX_REDIS_ROLE_UNKNOWN for an error reply, another type, an
 * empty array or a first element that is not one of those strings. */
px_redis_role_t px_redis_role_parse(const redisReply *r);

/* Ask sentinel[0..n) in order, each within timeout_ms (connect, the
 * question, and the ROLE check on the server it names), for the master
 * called name. 0 with *master filled and *which (when not NULL) the index
 * of the Sentinel that answered. PX_EINVAL when every Sentinel that
 * answered knows no master of that name; PX_ECONFIG for no Sentinels or an
 * empty name; PX_EBACKEND otherwise. On error errstr names each Sentinel
 * asked and what it answered (cut to errstr_size). Connections are closed
 * before it returns. */
int px_sentinel_master(const px_redis_node_t *sentinel, int n, const char *name, long timeout_ms,
                       px_redis_node_t *master, int *which, char *errstr, size_t errstr_size);

#endif
