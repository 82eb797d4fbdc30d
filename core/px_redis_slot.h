/*
 * px_redis_slot.h - the pure parts of talking to a Redis Cluster: which
 * of the 16384 hash slots a key lives in (CRC16 of its hash tag), the slot
 * map read from CLUSTER SLOTS, and the MOVED / ASK redirections a node
 * answers with. No I/O and no allocation beyond the map itself; the
 * blocking client that uses them is px_redis_cluster.h.
 *
 * Every key of one entity carries the hash tag `{tenant:entity:id}`, so an
 * entity lives in one slot, on one shard. Related: docs/redis-keys.md,
 * tests/unit/test_redis_slot.c.
 */
#ifndef PX_REDIS_SLOT_H
#define PX_REDIS_SLOT_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#define PX_REDIS_SLOTS 16384
#define PX_REDIS_NODES_MAX 64   /* masters one map holds */
#define PX_REDIS_HOST_MAX 255
#define PX_REDIS_NO_NODE 0xFFFF /* a slot no master serves */

/* CRC16-CCITT (XModem), the one Redis Cluster hashes keys with. */
uint16_t px_redis_crc16(const void *buf, size_t len);

/* The slot of key[0..len): the bytes between the first '{' and the first
 * '}' after it when that is non-empty, else the whole key. */
int px_redis_slot(const char *key, size_t len);

/* A hash tag whose slot is `slot` (0..16383): the smallest decimal
 * number that hashes there, written into out (at most 7 bytes with the
 * NUL; every slot has one below 10^6). Keys `...{<tag>}...` then live on
 * the master that owns that slot. The length, or -1 for a slot out of
 * range or an out too small. */
int px_redis_slot_tag(int slot, char *out, size_t out_size);

typedef struct px_redis_node {
    char host[PX_REDIS_HOST_MAX + 1];
    int port;
} px_redis_node_t;

/* Parse "host:port" (the port after the last ':', so an IPv6 address
 * passes unbracketed) from s[0..len). 0, or -1 for an empty host, a host
 * over PX_REDIS_HOST_MAX bytes, or a port outside 1..65535. */
int px_redis_node_parse(const char *s, size_t len, px_redis_node_t *out);

/* Parse a comma-separated list of host:port into out[0..max) (empty
 * items are skipped). The count (0 for an empty list), or PX_ECONFIG with
 * the item at fault named in errstr (`what` names the setting). */
int px_redis_nodes_parse(const char *list, const char *what, px_redis_node_t *out, int max, char *errstr,
                         size_t errstr_size);

typedef struct px_redis_slots {
    px_redis_node_t node[PX_REDIS_NODES_MAX]; /* masters, in first-seen order */
    int nnodes;
    uint16_t owner[PX_REDIS_SLOTS]; /* index into node[], or PX_REDIS_NO_NODE */
} px_redis_slots_t;

/* Fill m from a CLUSTER SLOTS reply (an array of [start, end, [host, port,
 * id...], replica...]). A master given with an empty host (a node that
 * does not know its own address) takes default_host. 0, or PX_EPROTO with
 * the reason (wrong types, a slot range outside 0..16383 or reversed, a
 * host over 255 bytes, a port outside 1..65535, more than 64 masters).
 * Slots no range names are left PX_REDIS_NO_NODE. m is unchanged on
 * error. */
int px_redis_slots_parse(const redisReply *r, const char *default_host, px_redis_slots_t *m,
                         char *errstr, size_t errstr_size);

typedef enum { PX_REDIS_REDIRECT_NONE = 0, PX_REDIS_MOVED, PX_REDIS_ASK } px_redis_redirect_kind_t;

typedef struct px_redis_redirect {
    px_redis_redirect_kind_t kind;
    int slot;
    px_redis_node_t to; /* host empty: the node that answered (Redis 7 may omit it) */
} px_redis_redirect_t;

/* Parse an error reply "MOVED <slot> <host>:<port>" or "ASK ..." (the host
 * may be an IPv6 address: the port follows the last ':'). Returns the kind
 * (PX_REDIS_REDIRECT_NONE for any other error or a malformed one). */
px_redis_redirect_kind_t px_redis_redirect_parse(const char *err, size_t len, px_redis_redirect_t *out);

#endif
