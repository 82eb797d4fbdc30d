/*
 * ctl.h - presencectl's shared context: configuration, command-line flags,
 * the one Kafka reader (ctl_read.c) and the one in-memory fold over the
 * log (ctl_fold.c, calling core's px_fold) that every command builds on.
 *
 * Commands (one file each): verify (ctl_verify.c), replay (ctl_replay.c),
 * audit (ctl_audit.c), dlq (ctl_dlq.c), produce and topics (ctl_produce.c,
 * ctl_topics.c). Exit codes: 0 ok, 1 differences found (verify, topics
 * check), 2 usage, configuration, connection or input error. Every
 * summary and error names the endpoints it used (c->kafka_where,
 * c->redis_where); Kafka waits are bounded by timeout_ms (--timeout).
 * docs/presencectl.md.
 */
#ifndef CTL_H
#define CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <pthread.h>

#include <librdkafka/rdkafka.h>

#include "px_avro.h"
#include "px_registry.h"
#include "px_buf.h"
#include "px_config.h"
#include "px_redis_cluster.h"
#include "px_redis_conf.h"
#include "px_fold.h"
#include "px_store.h"

#define CTL_EXIT_OK 0
#define CTL_EXIT_DIFF 1
#define CTL_EXIT_ERR 2

typedef struct ctl_config {
    char redis_host[PX_CONF_STR_MAX];
    int64_t redis_port;
    int64_t redis_db;
    char redis_key_prefix[PX_CONF_STR_MAX];
    char topic_prefix[PX_CONF_STR_MAX];
    int64_t presence_ttl_ms, lock_ttl_ms, stale_ttl_ms;
    int64_t timeout_ms;
    px_schema_conf_t schema; /* avro.wire_format, schema.registry.* */
    px_redis_conf_t redis;   /* redis.cluster, redis.nodes, redis.sentinels, redis.master_name */
} ctl_config_t;

/* Command-specific flags (--from X, --dry-run, ...): name -> value ("" for
 * a boolean flag). Repeatable flags keep every value in order. */
#define CTL_FLAGS_MAX 64
typedef struct ctl_flags {
    const char *name[CTL_FLAGS_MAX];
    const char *val[CTL_FLAGS_MAX];
    size_t n;
} ctl_flags_t;

extern const char *const CTL_SRC_TOPICS[PX_SRC__COUNT];

/* One entity of the in-memory fold, with the last offset folded per source
 * topic (the watermarks a replay writes, as the processor would). */
typedef struct ctl_ent {
    /* lookup fields first: a lookup touches one cache line per node */
    struct ctl_ent *next;
    uint64_t hash;
    uint32_t klen;
    char kstr[PX_KEY_MAX + 1]; /* "tenant:entity:id" */
    px_store_wm_t wm;
    px_entity_t st;
} ctl_ent_t;

typedef struct ctl ctl_t;

/* What librdkafka said about the cluster, kept by the log and error
 * callbacks of every handle presencectl makes (they run on librdkafka's
 * threads, hence the lock) instead of printed: a failure is reported once,
 * by the command, with the last reason (ctl_kafka_reason). */
#define CTL_BOOTSTRAP_MAX 16
typedef struct ctl_kwatch {
    pthread_mutex_t mu;
    char reason[512];        /* librdkafka's last error, cleaned of its prefixes */
    size_t nbootstrap;       /* distinct entries of bootstrap.servers */
    char unresolved[CTL_BOOTSTRAP_MAX][256]; /* bootstrap names that failed to resolve */
    size_t nunresolved;
    bool debug;              /* kafka.debug set: librdkafka's lines go to stderr */
} ctl_kwatch_t;

/* How far ahead of its fold a record's memory is prefetched, per stage
 * (ctl_read.c), and the ring that carries stage 0's bucket to stage 1. */
#define CTL_PREFETCH_AHEAD0 12
#define CTL_PREFETCH_AHEAD1 6
#define CTL_PREFETCH_AHEAD2 2
#define CTL_PREFETCH_RING 16

/* Called for each change event the fold emits, with the record it came
 * from (ev->src_topic filled). */
typedef void (*ctl_change_fn)(ctl_t *c, const px_event_t *ev);
/* Which records to fold (NULL: all); key is the record key. */
typedef bool (*ctl_key_filter_fn)(ctl_t *c, const char *key, size_t key_len);

struct ctl {
    ctl_config_t cfg;
    px_kvlist_t kafka;
    /* the endpoints, for every summary and error message: "Kafka
     * host:9092[ (topic prefix 'p.')]" and "Redis host:port db N[ key
     * prefix 'k:']" (or the socket's path); once connected, every master
     * read ("Redis Cluster of 3 masters h:p, h:p, h:p", "Redis h:p, master
     * 'name' of Sentinels h:p,...") */
    char bootstrap[512];
    char kafka_where[PX_CONF_STR_MAX + 600];
    char redis_where[PX_REDIS_NODES_MAX * 24 + 3 * PX_CONF_STR_MAX + 128];
    ctl_kwatch_t kw;
    ctl_flags_t flags;
    const char *cmd;
    px_fold_conf_t fold;
    px_avro_t *avro;
    px_registry_t *registry; /* NULL without schema.registry.url */
    px_buf_t buf;
    /* the fold's entities: a chained hash table */
    ctl_ent_t **tab;
    size_t nbuckets, nents;
    ctl_change_fn on_change; /* NULL: changes are dropped */
    ctl_key_filter_fn filter;
    /* optional: called for each record of a batch ahead of fn, at stages
     * 0, 1, 2 a falling number of records ahead (memory prefetch); i is
     * the record's index in its batch (a stage may keep what it found at
     * pf_bucket[i % CTL_PREFETCH_RING] for the next) */
    void (*prefetch)(ctl_t *c, const rd_kafka_message_t *m, size_t i, int stage);
    size_t pf_bucket[CTL_PREFETCH_RING];
    int pf_src; /* the topic being read (px_src_topic_t) */
    void *user; /* the command's own state */
    /* counters, every error path bumps one */
    uint64_t n_records, n_folded, n_skipped_decode, n_skipped_key, n_refused, n_changes;
    uint64_t n_unavailable; /* records whose schema could not be fetched: the read stops */
    bool progress; /* stderr is a terminal */
};

/* --- flags (ctl_main.c) --- */
/* The last value of flag `name`, or NULL. */
const char *ctl_flag(const ctl_t *c, const char *name);
bool ctl_flag_set(const ctl_t *c, const char *name);

/* The forms --from, --to, --ts and --expires-at accept (core/px_when.c),
 * for the message that refuses a time. */
#define CTL_WHEN_FORMS                                                                             \
    "now; epoch milliseconds (1700000000000); now minus a duration (-250ms, -30s, -15m, -2h, -7d); " \
    "a date, midnight UTC (2026-11-22); RFC 3339 with a zone (2026-11-22T10:00:00Z, "                \
    "2026-11-22T11:00+01:00)"

/* The full name of an input/output topic with the configured prefix. */
void ctl_topic_name(const ctl_t *c, const char *base, char *out, size_t out_size);

/* --- reading (ctl_read.c) --- */
/* Consumer settings presencectl uses (read_committed, no commits), with
 * the user's kafka.* on top. NULL with the reason printed. */
rd_kafka_t *ctl_consumer_new(ctl_t *c);
/* Idempotent producer (murmur2_random); transactional when
 * transactional_id is given. A message produced with RD_KAFKA_V_OPAQUE(d)
 * gets its delivery report in the ctl_dr_t d (on rd_kafka_poll/flush). */
typedef struct ctl_dr {
    bool done;
    rd_kafka_resp_err_t err;
    int32_t partition;
    int64_t offset;
} ctl_dr_t;
rd_kafka_t *ctl_producer_new(ctl_t *c, const char *transactional_id);

typedef struct ctl_range {
    int64_t from_ms; /* records with a Kafka timestamp >= this (0: from the beginning) */
    int64_t to_ms;   /* and < this (INT64_MAX: to the end) */
} ctl_range_t;

typedef void (*ctl_rec_fn)(ctl_t *c, const rd_kafka_message_t *m, void *arg);

/* Read every committed record of topic whose Kafka timestamp is in range
 * (starting at offsets_for_times(from)), up to the topic's end as it is at
 * the start, and call fn for each. Progress on stderr when c->progress. 0, or
 * CTL_EXIT_ERR after printing why (unknown topic, broker unreachable,
 * timeout). */
int ctl_read_topic(ctl_t *c, const char *topic, const ctl_range_t *r, ctl_rec_fn fn, void *arg);

/* Partition count of topic, or -1 after printing why. */
int ctl_partition_count(ctl_t *c, rd_kafka_t *rk, const char *topic);

/* Wait until a broker of a new handle answers, at most timeout_ms, and
 * fail at once when every bootstrap server's name failed to resolve. 0, or
 * CTL_EXIT_ERR after printing one line naming the bootstrap servers and
 * librdkafka's last error. */
int ctl_kafka_wait(ctl_t *c, rd_kafka_t *rk);
/* librdkafka's last error as " (last error: ...)" for a message, or "". */
const char *ctl_kafka_reason(ctl_t *c, char *buf, size_t n);
/* Record bootstrap.servers (as librdkafka will read it, after kafka.*) in
 * c->bootstrap and c->kw; 0 or CTL_EXIT_ERR after printing. */
int ctl_kafka_init(ctl_t *c);

/* --- the fold (ctl_fold.c) --- */
int ctl_fold_init(ctl_t *c);
void ctl_fold_term(ctl_t *c);
/* Read and fold the four input topics (in range), calling c->on_change for
 * each change event. 0 or CTL_EXIT_ERR. */
int ctl_fold_inputs(ctl_t *c, const ctl_range_t *r);
/* Decode one input record as the processor does (Avro, or JSON on the
 * lifecycle topics). 0, or an error with the reason. */
int ctl_decode_input(ctl_t *c, int src, const void *val, size_t len, int64_t kafka_ts, px_event_t *ev,
                     char *errstr, size_t errstr_size);
/* The entity of formatted key ks[0..kl), or NULL if the log has none. */
ctl_ent_t *ctl_fold_find(const ctl_t *c, const char *ks, size_t kl);
/* Source index of a topic name (prefix stripped), or -1. */
int ctl_src_of_topic(const ctl_t *c, const char *topic);
/* Visit every entity. */
#define CTL_FOR_EACH_ENT(c, n)                                                                     \
    for (size_t ctl_b_ = 0; ctl_b_ < (c)->nbuckets; ctl_b_++)                                      \
        for (ctl_ent_t *n = (c)->tab[ctl_b_]; n; n = n->next)
/* Print what was read and skipped to stderr. */
void ctl_fold_summary(const ctl_t *c);

/* --- commands --- */
int ctl_verify(ctl_t *c);
int ctl_replay(ctl_t *c);
int ctl_audit(ctl_t *c);
int ctl_dlq(ctl_t *c, int argc, char **argv);
int ctl_produce(ctl_t *c, int argc, char **argv);
int ctl_topics(ctl_t *c, int argc, char **argv);

/* The configured Redis (one server, the master the Sentinels name, or a
 * cluster's masters), connected, with c->redis_where naming every master
 * it reads; NULL after printing why. Commands go through px_rcl batches
 * (routed by slot, following failovers for up to timeout_ms). */
px_rcl_t *ctl_redis_connect(ctl_t *c);
/* Run batch b; CTL_EXIT_ERR after printing the reason (what: the command's
 * verb for the message), 0 when every command has a reply. */
int ctl_redis_exec(ctl_t *c, px_rcl_t *r, px_rcl_batch_t *b, const char *what);
/* The Redis key of an entity's part with the configured key prefix. */
int ctl_redis_key(const ctl_t *c, const px_key_t *k, const char *suffix, char *out, size_t out_size);

/* Time range from --from/--to (px_when); CTL_EXIT_ERR after printing. */
int ctl_time_range(ctl_t *c, int64_t *from_ms, int64_t *to_ms);
/* Parse time s for flag `flag` into *ms; CTL_EXIT_ERR after printing the
 * reason and the accepted forms. */
int ctl_when(ctl_t *c, const char *flag, const char *s, int64_t now, int64_t *ms);

/* --- tables (ctl_main.c): columns sized from their content --- */
/* The columns cell s takes once printed by ctl_table_row (a character
 * each, a control byte or broken UTF-8 a '?' each; an empty cell is "-"). */
size_t ctl_cell_width(const char *s);
/* One row: every cell but the last padded to width[i], one space between,
 * control bytes and broken UTF-8 written as '?', an empty cell as "-".
 * Widths count characters: a wide (East Asian) character counts one. */
void ctl_table_row(FILE *f, const char *const *cells, const size_t *width, size_t n);

#endif
