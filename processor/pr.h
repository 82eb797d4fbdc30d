/*
 * pr.h - presence-processor: context and the internal API between its
 * files. One libuv loop thread does the work: the loop wakes on the
 * consumer queue, on a deadline timer, on the ops HTTP endpoint and when a
 * commit or a write ends; each wake runs batches (pr_batch.c) that use a
 * pipelined synchronous Redis connection. Two more threads
 * (pr_commit.c): the committer runs a sealed batch's blocking transaction
 * calls (send the offsets, commit) while the loop thread folds the next
 * batch, and the writer sends a committed batch's Redis writes on its own
 * connection.
 *
 * Files: main.c (config, start, stop, /metrics), pr_kafka.c (consumer,
 * transactional producer, rebalance, repair ranges), pr_batch.c (one batch:
 * collect, load, fold, transaction, Redis), pr_commit.c (the committer
 * thread and the transaction in flight), pr_redis.c (the Redis connection:
 * load states, write pipeline, write snapshots, marks, backoff),
 * pr_table.c (the in-memory entities and their deadline heap).
 * docs/exactly-once.md is the design this implements.
 */
#ifndef PX_PR_H
#define PX_PR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "px_avro.h"
#include "px_buf.h"
#include "px_config.h"
#include "px_err.h"
#include "px_fold.h"
#include "px_http.h"
#include "px_kafka.h"
#include "px_metrics.h"
#include "px_store.h"

#define PR_COMP "processor"
#define PR_MAX_PARTITIONS 256
/* Consumed topics: the four input topics (px_src_topic_t), then their
 * retry topics in the same order (PR_RETRY(s) = the retry topic of s). */
#define PR_N_SRC (2 * PX_SRC__COUNT)
#define PR_RETRY(s) ((s) + PX_SRC__COUNT)
#define PR_IS_RETRY(s) ((s) >= PX_SRC__COUNT)
#define PR_FOLD_SRC(s) ((px_src_topic_t)((s) % PX_SRC__COUNT))

typedef struct pr_config {
    char redis_host[PX_CONF_STR_MAX];
    int64_t redis_port;
    int64_t redis_timeout_ms;
    char topic_prefix[PX_CONF_STR_MAX];
    char topic_heartbeats[PX_CONF_STR_MAX];
    char topic_locks[PX_CONF_STR_MAX];
    char topic_mutating[PX_CONF_STR_MAX];
    char topic_mutated[PX_CONF_STR_MAX];
    char topic_changes[PX_CONF_STR_MAX];
    char instance[PX_CONF_STR_MAX];
    int64_t presence_ttl_ms;
    int64_t lock_ttl_ms;
    int64_t stale_ttl_ms;
    int64_t batch_max;
    int64_t flush_defer_ms;     /* while behind: Redis writes wait up to this long, coalescing */
    int64_t commit_interval_ms; /* transactions begin at most this often (pr_batch.c run_batch) */
    int64_t txn_timeout_ms;
    int64_t retry_max_attempts; /* transient failures: retries before the DLQ */
    int64_t retry_base_ms;      /* delay of attempt k: base * 3^(k-1) (1 s, 3 s, 9 s) */
    int64_t fault_abort_every;  /* testing: every Nth commit fails instead (pr_commit.c) */
    char log_level[PX_CONF_STR_MAX];
    char http_host[PX_CONF_STR_MAX];
    int64_t http_port;
} pr_config_t;

/* One entity in memory. */
typedef struct pr_entity {
    /* the lookup's fields first: one cache line per chain step */
    uint64_t hash;            /* of the key (pr_table.c) */
    struct pr_entity *next;   /* hash chain */
    px_entity_t st;
    px_store_wm_t wm;         /* offsets folded into st, per source topic */
    int32_t partition;        /* the partition number of all its records */
    bool dirty;               /* changed since the last Redis write */
    bool poisoned;            /* its stored state does not decode: never written, records to the DLQ */
    bool decided;             /* a lock decision of this batch waits to be published early */
    int64_t heap_deadline;    /* deadline it is filed under in the heap, or INT64_MAX */
    px_buf_t notify;          /* JSON array of the changes not yet written, for the gateways */
    px_buf_t decisions;       /* JSON array of this batch's lock decisions (published early) */
    /* Retry order: every record of the entity diverted to a retry topic
     * gets the next sequence number; only the head may be applied, so
     * records keep their order per entity. head == next: none waiting. */
    uint32_t retry_head, retry_next;
    /* From the scan at assignment: the lowest original offset per source
     * topic still waiting in a retry topic (INT64_MAX: none). A repair
     * leaves those records to the retry path. */
    int64_t hold_from[PX_SRC__COUNT];
    /* its share of the redis_presence_* gauges, as last counted */
    int32_t g_users, g_tabs, g_locks;
    bool g_stale;
    struct pr_entity *next_dirty;
} pr_entity_t;

/* Per assigned partition number. */
typedef struct pr_part {
    bool assigned;
    /* repair: records below this offset (per source topic) were committed
     * before this instance owned the partition; fold them, emit nothing */
    int64_t repair_until[PR_N_SRC];
    int64_t next[PR_N_SRC];   /* next offset after the last one folded; -1 = none */
    int64_t marked[PR_N_SRC]; /* the applied mark last written to Redis; -1 = none */
    int64_t retry_due[PX_SRC__COUNT]; /* retry topic held until this wall-clock ms (0: not held) */
    bool repair_check;            /* assigned (or Redis lost data): run the repair check */
    bool full_rebuild;            /* ignore the applied marks: re-fold from the start */
    bool seek_refused;            /* the check's seek was refused (fetcher not started): logged once */
} pr_part_t;

/* The Redis writes of a sealed batch, built when it was sealed (the
 * entities move on with the next batch meanwhile) and sent once its
 * transaction committed (pr_redis.c): RESP commands for every entity dirty
 * at the seal, the deadline index and the applied marks as of the seal. */
#define PR_SNAP_MAX 262144       /* entities; a larger flush waits for the commit and writes in chunks */
#define PR_SNAP_BYTES (256u << 20) /* the commands of one snapshot, likewise */
#define PR_SNAP_DIRECT 4096 /* caught up, a flush of more entities is written in chunks on the loop (pr_batch.c) */
#define PR_FLUSH_CHUNK 256 /* entity writes per pipelined chunk (pr_redis.c) */
typedef struct pr_snap {
    bool ready;                   /* built, not yet sent */
    px_buf_t resp;                /* the commands */
    struct pr_entity **ents;      /* its entities, in the order of their writes */
    size_t n_ents;
    size_t *chunk_others;         /* per chunk of PR_FLUSH_CHUNK writes: deadline commands after them */
    size_t n_chunks, n_marks;     /* then n_marks HSETs of applied marks */
    size_t marks_at;              /* where the marks' commands start in resp (sent once the writes succeeded) */
    int64_t (*sent)[PR_N_SRC];    /* per partition x source: the mark written, -1: none */
} pr_snap_t;

/* A helper thread that runs one job at a time for the loop (pr_commit.c):
 * the loop hands a job over, and later waits for it or sees it done. */
typedef struct pr_worker {
    pthread_t th;
    struct pr_ctx *pr;
    void (*job)(struct pr_ctx *pr); /* runs on the thread, outside the lock */
    bool started;
    bool busy;                      /* loop only: a job was handed over and is not finished */
    bool has_job, done, quit;       /* under pr->mu */
} pr_worker_t;

typedef struct pr_heap_item {
    int64_t deadline;
    pr_entity_t *ent;
} pr_heap_item_t;

typedef struct pr_ctx {
    pr_config_t cfg;
    px_kvlist_t kafka_kv;
    px_fold_conf_t fold;
    uv_loop_t *loop;
    px_metrics_t *metrics;
    px_avro_t *avro;
    px_httpd_t *httpd;
    bool stopping;
    int exit_code;

    /* Kafka */
    rd_kafka_t *consumer;
    /* Two transactional producers, used in turn, one transaction each
     * (pr_batch.c txn_end): the broker completes a committed transaction
     * for tens of ms after EndTxn returns, and the same producer's next
     * transaction would be refused meanwhile (CONCURRENT_TRANSACTIONS,
     * retried by librdkafka after a fixed 20 ms). producer is the one in
     * use. */
    rd_kafka_t *producer, *producers[2];
    /* the producers' handles of every topic they write to, kept for their
     * lifetime so each knows its partitions' leaders before its first
     * transaction (pr_kafka.c, warm_topics) */
    rd_kafka_topic_t *warm[2][1 + 3 * PX_SRC__COUNT];
    int cur_producer;
    /* The transaction in flight (pr_commit.c): sealed, its records
     * produced, committed by the committer thread while the loop thread
     * folds the next batch, which produces nothing until this one ended.
     * The committer reads these after its job was handed over and writes
     * err before it reports done (both under mu), so the loop reads err
     * once it saw done. */
    struct {
        rd_kafka_t *producer;
        rd_kafka_topic_partition_list_t *offsets;
        rd_kafka_consumer_group_metadata_t *gm;
        rd_kafka_error_t *err;    /* its outcome */
        int64_t (*first)[PR_N_SRC]; /* the batch's first offsets per partition x source (-1: none) */
        bool touched[PR_MAX_PARTITIONS]; /* partitions it produced EXPIREs for (rewound with it) */
        pr_snap_t snap;           /* its Redis writes, sent once it committed */
    } txn;
    /* The committer, and the writer: sends a committed batch's snapshot on
     * its own connection while the loop goes on; the loop finishes it
     * (applied marks, or dirty again on a failure). */
    pr_worker_t committer, writer;
    int writer_rc;                /* the writer's outcome (as txn.err) */
    pr_snap_t wsnap;              /* the snapshot the writer sends */
    redisContext *wredis;         /* the writer's connection (connected by the loop when the writer is idle) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uv_async_t commit_async;      /* wakes the loop when a commit ended */
    bool commit_async_live;       /* under mu: the committer may signal it */
    atomic_bool dr_failing;     /* see on_delivery (pr_kafka.c) */
    atomic_bool producer_fatal;   /* a producer's fatal error (on_error): the loop stops */
    rd_kafka_queue_t *cq;
    px_kafka_uv_t *cq_uv;
    char topics[PR_N_SRC][PX_CONF_STR_MAX * 2 + 8];
    rd_kafka_t *scanner;      /* reads retry topics at assignment (assign only, no group) */
    char topic_changes[PX_CONF_STR_MAX * 2];
    char group[PX_CONF_STR_MAX];
    pr_part_t parts[PR_MAX_PARTITIONS];
    bool rebalanced;   /* set by the rebalance callback during a collect */
    bool folding;      /* an open batch holds folded records (uncommitted states in the dirty list) */
    atomic_bool kafka_ok;     /* producers' callbacks may run on the committer thread */

    /* Redis */
    redisContext *redis;
    char script_sha[41];
    char epoch[64];           /* the dataset epoch this instance last saw */
    uint64_t redis_gen;       /* +1 per (re)connect: a batch that saw one aborts */
    bool rebuild_pending;     /* Redis lost its data: rebuild at the next turn */
    int64_t redis_retry_at;  /* mono ms: next reconnect attempt */
    int64_t redis_backoff_ms;
    bool paused;

    /* entities */
    pr_entity_t **buckets;    /* a power of two of them, doubled as entities come */
    size_t n_buckets, n_entities;
    int64_t g_users, g_tabs, g_locks, g_stale; /* the entities' gauge shares, summed */
    pr_entity_t *dirty;       /* entities changed and not yet written */
    size_t n_dirty;
    int64_t flush_at;         /* mono ms the deferred writes are due (0: none deferred) */
    int64_t dispatched_ms;    /* mono ms the last transaction went to the committer */
    pr_heap_item_t *heap;
    size_t heap_n, heap_cap;

    struct batch *batch;      /* buffers of one batch (pr_batch.c) */
    uv_timer_t timer;
    uv_idle_t idle;           /* the next batch at once while batches find work */
    px_buf_t scratch, val;    /* scratch: an early lock decision's payload (pr_redis_decisions) */
    px_store_cmd_t cmd;
    px_buf_t resp;            /* a write command in RESP (pr_redis.c) */

    /* metrics */
    px_counter_t *m_folded[PX_SRC__COUNT], *m_dlq, *m_skipped, *m_wskipped, *m_changes, *m_expires;
    px_counter_t *m_batches, *m_aborts, *m_redis_err, *m_kafka_err, *m_repaired;
    px_gauge_t *m_entities, *m_ready, *m_tabs, *m_locks, *m_stale, *m_users;
    px_counter_t *m_locks_acquired;
    px_counter_t *m_decided;  /* entities whose lock decisions were published before their batch's commit */
    px_counter_t *m_deferred; /* batches whose Redis writes were deferred */
    px_counter_t *m_retries, *m_retry_dlq;
    px_hist_t *m_batch_ms;
    px_hist_t *m_age_ms[PX_SRC__COUNT]; /* wall now - record timestamp when a batch takes it, per input topic */
    px_hist_t *m_decide_ms;             /* batch taken -> its early lock decisions published */
    px_counter_t *m_phase_us[5]; /* load, fold+produce, commit, redis, poll: where the loop's batch time goes */
} pr_ctx_t;

/* pr_table.c */
int pr_table_init(pr_ctx_t *pr, size_t buckets);
void pr_table_term(pr_ctx_t *pr);
pr_entity_t *pr_table_find(pr_ctx_t *pr, const px_key_t *key);
/* The same with the key's hash already computed (pr_table_hash). */
uint64_t pr_table_hash(const px_key_t *key);
pr_entity_t *pr_table_find_hashed(pr_ctx_t *pr, const px_key_t *key, uint64_t h);
/* Prefetch the bucket slot of hash h (entity false), or the entity at the
 * head of its chain (entity true: its hash and the lines of its key), so a
 * find a few records later does not stall on them: with 100k entities
 * nearly every find missed the cache (10% of the processor's profile). */
void pr_table_prefetch(const pr_ctx_t *pr, uint64_t h, bool entity);
/* Insert a new empty entity (state from Redis is loaded into it after). */
pr_entity_t *pr_table_add(pr_ctx_t *pr, const px_key_t *key, int32_t partition);
/* Drop every entity of a partition (revoked): nothing is written. */
void pr_table_drop_partition(pr_ctx_t *pr, int32_t partition);
void pr_table_mark_dirty(pr_ctx_t *pr, pr_entity_t *e);
/* File e under its next deadline (after any change). */
void pr_heap_update(pr_ctx_t *pr, pr_entity_t *e);
/* (pr_heap_update also recounts the entity's share of the gauges.) */
/* Pop the entities whose filed deadline <= now into out (at most n). */
size_t pr_heap_due(pr_ctx_t *pr, int64_t now_ms, pr_entity_t **out, size_t n);
int64_t pr_heap_next(const pr_ctx_t *pr);

/* pr_redis.c */
/* Connect (or reconnect when due) and load the write script. 0, or
 * PX_EBACKEND while Redis is unreachable (the backoff grows to 5 s). */
int pr_redis_ensure(pr_ctx_t *pr);
void pr_redis_close(pr_ctx_t *pr);
/* Count and log a Redis failure once, drop the loop's connection, back off. */
void pr_redis_fail(pr_ctx_t *pr, const char *what);
/* Load the states of n entities (pipelined HMGET); an entity with no
 * stored state stays empty. PX_EBACKEND on a Redis failure, PX_EINVAL if
 * a stored state does not decode: that entity is marked poisoned (logged,
 * counted), so nothing overwrites what an operator must look at. */
int pr_redis_load(pr_ctx_t *pr, pr_entity_t **ents, size_t n);
/* Write every dirty entity (pipelined, watermark-guarded), the applied
 * marks and the deadline index. On success the dirty list is empty and
 * nothing is deferred (flush_at 0). */
int pr_redis_flush(pr_ctx_t *pr);
/* Publish the early lock decisions of n entities: {"decided":[changes]}
 * on each entity's channel, the changes being its decisions buffer
 * (pr_batch.c). Gateways answer pending LOCKs from it but do not re-read:
 * Redis does not hold the state yet (the write script publishes the
 * changes again after the commit). Pipelined; a failure loses only the
 * early answers (logged and counted once, as any Redis failure). Returns
 * how many were published. */
size_t pr_redis_decisions(pr_ctx_t *pr, pr_entity_t *const *ents, size_t n);
/* Applied marks of one partition number: out[src] = next offset Redis
 * holds everything below, or -1 when unknown. */
int pr_redis_applied(pr_ctx_t *pr, int32_t partition, int64_t out[PR_N_SRC]);
/* Keys of the entities with pending deadlines in a partition. */
int pr_redis_deadline_keys(pr_ctx_t *pr, int32_t partition, px_key_t **keys, size_t *n);

/* Build the write snapshot of every dirty entity into snap (the dirty list
 * is then empty). 0, or PX_ENOMEM (out of memory, or more than
 * PR_SNAP_MAX entities) with the dirty list as it was. */
int pr_redis_snap_build(pr_ctx_t *pr, pr_snap_t *snap);
/* Send a built snapshot on the loop's connection: 0, or PX_EBACKEND (its
 * entities are dirty again). */
int pr_redis_snap_send(pr_ctx_t *pr, pr_snap_t *snap);
/* Send a snapshot on connection c and read the replies (the writer thread:
 * touches nothing of the loop's but counters and the log). 0 or
 * PX_EBACKEND. */
int pr_redis_snap_write(pr_ctx_t *pr, redisContext *c, pr_snap_t *snap);
/* After a snapshot's writes: the applied marks it wrote are Redis's now. */
void pr_redis_snap_done(pr_ctx_t *pr, pr_snap_t *snap);
/* Forget a snapshot that will not be sent; its entities are dirty again. */
void pr_redis_snap_drop(pr_ctx_t *pr, pr_snap_t *snap);
void pr_redis_snap_free(pr_snap_t *snap);

/* pr_commit.c */
int pr_commit_start(pr_ctx_t *pr, char *errstr, size_t errstr_size);
/* The loop is closing: no more wake-ups (drains still work). */
void pr_commit_unwatch(pr_ctx_t *pr);
/* Drain, then stop the thread. */
void pr_commit_stop(pr_ctx_t *pr);
/* Hand the open transaction of pr->producer to the committer with these
 * offsets (taken over; may be empty) and the batch's partitions. */
void pr_commit_dispatch(pr_ctx_t *pr, rd_kafka_topic_partition_list_t *offsets,
                        const int64_t first[][PR_N_SRC], const bool *touched);
/* Wait for the transaction in flight, if any, and finish it on the loop
 * thread: committed, send its Redis snapshot; failed, abort it and rewind
 * its partitions. 0 when nothing failed; PX_EBACKEND when it did (then
 * whatever was folded on top of it must be dropped by the caller). */
int pr_commit_drain(pr_ctx_t *pr);
/* Abort the open transaction of rk; if that fails, stop (pr_fatal). */
void pr_txn_abort(pr_ctx_t *pr, rd_kafka_t *rk);
/* Log why and stop the loop with exit code 1. */
void pr_fatal(pr_ctx_t *pr, const char *why);
/* Wait for the transaction in flight, if any, without finishing it
 * (nothing in memory changes): 0 if it committed or none is in flight,
 * PX_EBACKEND if it failed. */
int pr_commit_wait(pr_ctx_t *pr);
/* Hand a committed batch's snapshot to the writer thread (after finishing
 * the one it has), or send it on the loop's connection when the writer has
 * none. */
void pr_writer_submit(pr_ctx_t *pr, pr_snap_t *snap);
/* Wait for the writer's snapshot, if any, and finish it. */
void pr_writer_finish(pr_ctx_t *pr);
/* True when the writer's snapshot has been written (finish it). */
bool pr_writer_ended(pr_ctx_t *pr);
/* Nothing in flight afterwards: the commit drained, the writer finished.
 * Before anything drops entities or writes the dirty list. Returns what
 * pr_commit_drain returned. */
int pr_quiesce(pr_ctx_t *pr);
/* True when the transaction in flight has ended (finish it with a drain). */
bool pr_commit_ended(pr_ctx_t *pr);
/* True while a transaction is in flight. */
static inline bool pr_commit_busy(const pr_ctx_t *pr) { return pr->committer.busy; }
/* Drop the in-memory entities of the partitions in first[][] (those a
 * batch consumed from) and touched[] (those it produced EXPIREs for: their
 * entities marked the items as requested) and hold the partitions until
 * their repair check ran again (pr_batch.c). Waits for the writer first. */
void pr_batch_rewind_parts(pr_ctx_t *pr, const int64_t first[][PR_N_SRC], const bool *touched);

/* pr_kafka.c */
int pr_kafka_start(pr_ctx_t *pr, char *errstr, size_t errstr_size);
void pr_kafka_unwatch(pr_ctx_t *pr);
/* Redis lost its dataset: forget every entity and re-fold every owned
 * partition from the start of the log, emitting nothing (repair mode). */
void pr_kafka_rebuild(pr_ctx_t *pr);
void pr_kafka_stop(pr_ctx_t *pr);
/* Index of a consumed topic (0..PR_N_SRC-1), PR_N_SRC if unknown. */
int pr_topic_src(const pr_ctx_t *pr, const char *topic);
/* The retry records of partition p still waiting (from the committed
 * offsets in committed[PR_N_SRC] to the end): sets each entity's retry
 * head/next and hold_from (adding and loading entities as needed). 0, or
 * PX_EBACKEND (Kafka or Redis unreachable: try again). */
int pr_kafka_scan_retries(pr_ctx_t *pr, int32_t p, const int64_t committed[PR_N_SRC]);

/* pr_batch.c: run batches until the queue is empty or the turn's budget is
 * spent. Called on every wake. */
void pr_batch_turn(pr_ctx_t *pr);
void pr_batch_free(pr_ctx_t *pr);

#endif
