/*
 * pr.h - presence-processor: the context and the internal API between its
 * files. docs/exactly-once.md is the design this implements;
 * docs/architecture.md draws the stages.
 *
 * One batch goes through five stages, each a function or a file with its
 * own state:
 *
 *   collect  pr_batch.c    records from the consumer (pr_kafka.c polls)
 *   fold     pr_batch.c    decode, load, fold; what it makes goes out
 *                          through the batch's transaction (pr_txn.c)
 *   seal     pr_loop.c     the batch ends; its offsets and its Redis
 *                          writes (a snapshot, pr_writer.c) are fixed
 *   commit   pr_commit.c   the committer thread commits the transaction
 *                          while the loop folds the next batch
 *   write    pr_writer.c   the writer thread sends the committed batch's
 *                          snapshot to Redis
 *
 * Layers: a file calls only the files below it; what goes up is a return
 * value, an event count (pr_kafka.c's rebalances) or a callback the upper
 * file installed (wake-ups, the rebalance hook).
 *
 *   main.c
 *   pr_ops.c        the ops endpoint's thread: answers from what the loop
 *                   published, and says when the loop is blocked
 *   pr_loop.c       the turn: runs a batch through its stages
 *   pr_watch.c      the partitions' watchdog: lag, progress, readiness
 *   pr_repair.c     the repair checks of partitions
 *   pr_batch.c      collect and fold
 *   pr_txn.c        the batch's transaction: produce, hold, begin, abort
 *   pr_guard.c      the loop thread's guard: says when the loop is
 *                   blocked, exits when it is stuck
 *   pr_commit.c     the committer thread; rewinds a failed batch
 *   pr_writer.c     write snapshots (the only Redis write path), the writer thread
 *   pr_kquery.c     the consumer edge's questions to the brokers: ends,
 *                   committed offsets, seeks, the retry scan
 *   pr_kafka.c      the consumer edge: consumer, producers, rebalance,
 *                   pause/seek/resume, the retry scan
 *   pr_redis.c      the loop's Redis connection: loads, reads, publishes
 *   pr_table.c      the entities in memory, the dirty list, the deadline heap
 *   pr_worker.c     a helper thread running one job at a time
 *
 * Some files' API has a header of its own: pr_kafka.h (the consumer
 * edge), pr_batch.h and pr_txn.h (the batch and its transaction, for
 * pr_loop.c).
 *
 * Threads: the libuv loop thread runs everything but the committer's job
 * (pr_commit.c), the writer's job (pr_writer.c), the guard (pr_guard.c)
 * and the ops endpoint (pr_ops.c), which touch only what their structs
 * say and atomics.
 */
#ifndef PX_PR_H
#define PX_PR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

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
#include "px_log.h"
#include "px_metrics.h"
#include "px_notify.h"
#include "px_redis_cluster.h"
#include "px_redis_conf.h"
#include "px_registry.h"
#include "px_store.h"

#define PR_COMP "processor"
#define PR_MAX_PARTITIONS 256
#define PR_MAX_PEERS 64 /* departed instances remembered as fenced (pr_kafka_peers) */
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
    bool static_membership;     /* the consumer's group.instance.id is the instance name */
    int64_t presence_ttl_ms;
    int64_t lock_ttl_ms;
    int64_t stale_ttl_ms;
    int64_t batch_max;
    int64_t flush_defer_ms;     /* while behind: Redis writes wait up to this long, coalescing */
    int64_t commit_interval_ms; /* transactions begin at most this often (pr_loop.c) */
    int64_t txn_timeout_ms;
    int64_t retry_max_attempts; /* transient failures: retries before the DLQ */
    int64_t retry_base_ms;      /* delay of attempt k: base * 3^(k-1) (1 s, 3 s, 9 s) */
    int64_t fault_abort_every;  /* testing: every Nth commit fails instead (pr_commit.c) */
    int64_t fault_hang_loop_ms; /* testing: the loop thread blocks for good this long after start (pr_loop.c) */
    int64_t fault_consumer_fenced_ms; /* testing: each consumer fenced this long after it is made (pr_watch.c) */
    int64_t stall_ms;           /* a partition with lag and no progress this long: not ready (pr_watch.c) */
    int64_t stall_exit_ms;      /* ... this long, Kafka's fault: exit (0: never) */
    int64_t commit_wait_ms;     /* the loop waits for a transaction until it is this old, then exits (pr_commit.c) */
    char log_level[PX_CONF_STR_MAX];
    char http_host[PX_CONF_STR_MAX];
    int64_t http_port;
    px_schema_conf_t schema; /* avro.wire_format, schema.registry.* */
    px_redis_conf_t redis;   /* redis.cluster, redis.nodes, redis.sentinels, redis.master_name */
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
    px_notify_t notify;       /* the changes not yet written, for the gateways */
    px_notify_t decisions;    /* this batch's lock decisions (published early) */
    /* Retry order: every record of the entity diverted to a retry topic
     * gets the next sequence number; only the head may be applied, so
     * records keep their order ("Retry topics" in docs/exactly-once.md).
     * head == next: none waiting. */
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

/* Per assigned partition number: where each consumed topic stands. The
 * consumer edge (pr_kafka.c) assigns and rewinds, the repair check
 * (pr_repair.c) sets the repair bounds, the fold moves next, the writer
 * moves marked once Redis holds next. */
typedef struct pr_part {
    bool assigned;
    /* repair: records below this offset (per source topic) were committed
     * before this instance owned the partition; fold them, emit nothing */
    int64_t repair_until[PR_N_SRC];
    int64_t next[PR_N_SRC];   /* next offset after the last one folded; -1 = none */
    int64_t marked[PR_N_SRC]; /* the applied mark last written to Redis; -1 = none */
    int64_t retry_due[PX_SRC__COUNT]; /* retry topic held until this wall-clock ms (0: not held) */
    bool repair_check;            /* assigned (or Redis lost data): run the repair check */
    bool seek_refused;            /* the check's seek was refused (fetcher not started): logged once */
    /* a failed check runs again at check_at (mono ms), after a delay that
     * doubles from 100 ms to 1 s; fails counts them in a row (its logs
     * are thinned by it) */
    int64_t check_at, check_backoff_ms;
    uint32_t check_fails;
    /* the watchdog's (pr_watch.c), per input topic: the fetch position and
     * the records prefetched, from librdkafka's statistics (-1: unknown),
     * and the end the broker reports (read_committed: the last stable
     * offset; -1: unknown) */
    int64_t fetch_next[PX_SRC__COUNT], fetchq[PX_SRC__COUNT], end[PX_SRC__COUNT];
    int64_t lag;                  /* records behind, over the input topics (-1: unknown) */
    int64_t progress_sig;         /* the positions' sum when last seen */
    int64_t progress_at;          /* mono ms they last moved, or it had no lag */
    bool stalled;                 /* lag and no progress for processor.stall_ms */
} pr_part_t;

/* The Redis writes of the entities dirty at one moment (pr_writer.c): RESP
 * commands for each entity, the deadline index, then (if the snapshot
 * took the last dirty entity) the applied marks as of that moment. Built
 * on the loop, sent on a connection by the loop or the writer thread; the
 * entities move on meanwhile, the commands do not. */
#define PR_SNAP_MAX 262144       /* entities in one snapshot */
#define PR_SNAP_BYTES (256u << 20) /* the commands of one snapshot */
#define PR_FLUSH_CHUNK 256 /* entity writes per chunk (their deadline commands follow each chunk) */
#define PR_SNAP_DIRECT 4096 /* caught up, a larger flush is streamed on the loop (pr_writer_flush) */
typedef struct pr_snap {
    bool ready;                   /* built, not yet sent */
    px_rcl_batch_t w;             /* the writes: entity states and the deadline index */
    px_rcl_batch_t m;             /* the applied marks, one command per shard (sent once every write succeeded) */
    struct pr_entity **ents;      /* its entities, in the order of their writes */
    size_t n_ents;
    size_t *chunk_others;         /* per chunk of PR_FLUSH_CHUNK writes: deadline commands after them */
    size_t n_chunks;
    int64_t (*sent)[PR_N_SRC];    /* per partition x source: the mark written, -1: none */
} pr_snap_t;

/* A helper thread that runs one job at a time for the loop (pr_worker.c):
 * the loop hands a job over, and later waits for it or sees it done. The
 * job reads what the loop set before the hand-over and writes only its
 * own outcome, which the loop reads once it saw the job done. */
typedef struct pr_worker {
    pthread_t th;
    struct pr_ctx *pr;
    void (*job)(struct pr_ctx *pr); /* runs on the thread, outside the lock */
    bool started;
    bool busy;                      /* loop only: a job was handed over and not yet taken back */
    bool has_job, done, quit;       /* under pr->threads.mu */
} pr_worker_t;

/* What the workers share: a lock, a condition and the loop's wake-up. */
typedef struct pr_threads {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uv_async_t async;             /* wakes the loop when a job ended */
    bool async_live;              /* under mu: the workers may signal it */
    bool inited;
} pr_threads_t;

/* pr_commit.c's: the transaction in flight, sealed, its records produced,
 * committed by the committer thread while the loop folds the next batch
 * (which produces nothing until this one ended). The job reads producer,
 * offsets, gm and writes err. */
typedef struct pr_committer {
    pr_worker_t w;
    rd_kafka_t *producer;
    rd_kafka_topic_partition_list_t *offsets;
    rd_kafka_consumer_group_metadata_t *gm;
    rd_kafka_error_t *err;        /* its outcome */
    int64_t (*first)[PR_N_SRC];   /* the batch's first offsets per partition x source (-1: none) */
    bool touched[PR_MAX_PARTITIONS]; /* partitions it produced EXPIREs for (rewound with it) */
    pr_snap_t snap;               /* its Redis writes, handed to the writer once it committed */
    int64_t dispatched_ms;        /* mono ms the last transaction was handed over */
    _Atomic int64_t inflight_ms;  /* the same while it is in flight, 0 once drained (any thread reads it) */
    int64_t n_commits;            /* the job's: commits attempted (fault.abort_every) */
} pr_committer_t;

/* Scratch of one chunk's deadline commands (pr_writer.c). */
typedef struct pr_deadline_scratch {
    const char *argv[2 + 2 * PR_FLUSH_CHUNK];
    size_t argvlen[2 + 2 * PR_FLUSH_CHUNK];
    char keys[PR_FLUSH_CHUNK][PX_KEY_MAX + 1], scores[PR_FLUSH_CHUNK][24];
    int shard[PR_FLUSH_CHUNK];
    int64_t due[PR_FLUSH_CHUNK];
    bool done[PR_FLUSH_CHUNK];
} pr_deadline_scratch_t;

/* pr_writer.c's: the snapshot the writer thread sends, on its own
 * client (the job reads snap and rcl, writes rc), and what building a
 * snapshot uses on the loop. */
typedef struct pr_writer {
    pr_worker_t w;
    int rc;                       /* the job's outcome */
    char err[256];                /* the job's failure */
    pr_snap_t snap;               /* the snapshot the writer sends */
    pr_snap_t now;                /* with snap, the pieces pr_writer_flush streams in turn */
    px_rcl_t *rcl;                /* the writer's client (its own connections) */
    uint64_t conn_gen;            /* the loop connection's generation it was opened after */
    px_store_cmd_t cmd;           /* one entity's write command */
    px_buf_t note;                /* one entity's notification */
    px_buf_t pairs;               /* the applied marks' field/value pairs, in RESP */
    pr_deadline_scratch_t dl;
} pr_writer_t;

typedef struct pr_heap_item {
    int64_t deadline;
    pr_entity_t *ent;
} pr_heap_item_t;

/* pr_table.c's: the entities, the dirty list, the deadline heap, and the
 * entities' gauge shares summed. */
typedef struct pr_table {
    pr_entity_t **buckets;    /* a power of two of them, doubled as entities come */
    size_t n_buckets, n_entities;
    int64_t g_users, g_tabs, g_locks, g_stale;
    pr_entity_t *dirty;       /* entities changed and not yet in a snapshot */
    size_t n_dirty;
    pr_heap_item_t *heap;
    size_t heap_n, heap_cap;
} pr_table_t;

/* Called by the consumer edge inside a rebalance, before it assigns
 * (assigned true) or revokes. */
typedef void (*pr_rebalance_hook)(struct pr_ctx *pr, bool assigned);

/* pr_kafka.c's: the consumer edge. */
typedef struct pr_kafka {
    rd_kafka_t *consumer;
    /* Two transactional producers, used in turn, one transaction each
     * (pr_txn.c): the broker completes a committed transaction for tens of
     * ms after EndTxn returns, and the same producer's next transaction
     * would be refused meanwhile (CONCURRENT_TRANSACTIONS, retried by
     * librdkafka after a fixed 20 ms). producer is the one in use. */
    rd_kafka_t *producer, *producers[2];
    /* the producers' handles of every topic they write to, kept for their
     * lifetime so each knows its partitions' leaders before its first
     * transaction (warm_topics) */
    rd_kafka_topic_t *warm[2][1 + 3 * PX_SRC__COUNT];
    int cur_producer;
    atomic_bool dr_failing;       /* see on_delivery */
    atomic_bool producer_fatal;   /* a producer's fatal error (on_error): the loop stops */
    /* some broker is up: false on ALL_BROKERS_DOWN, then as the consumer's
     * statistics say (atomic: the producers' error callbacks run on the
     * committer thread, the ops endpoint's thread reads it) */
    atomic_bool kafka_ok;
    _Atomic int64_t conn_err_logged_ms; /* connection errors: the last logged (mono ms), */
    atomic_uint conn_err_quiet;   /* and how many since were not */
    rd_kafka_queue_t *cq;
    px_kafka_uv_t *cq_uv;
    char topics[PR_N_SRC][PX_CONF_STR_MAX * 2 + 8];
    rd_kafka_t *scanner;          /* reads retry topics at assignment (assign only, no group) */
    char topic_changes[PX_CONF_STR_MAX * 2];
    char group[PX_CONF_STR_MAX];
    uint64_t rebalances;          /* +1 per rebalance: a collect that saw one drops its batch */
    bool owned;                   /* the group gave this instance its partitions (maybe none); false
                                   * before the first assignment and between a revoke and the next */
    int n_owned;                  /* partition numbers assigned */
    /* the other instances fenced since they left the group, and the
     * rebalance last looked at (pr_kafka_peers) */
    char fenced[PR_MAX_PEERS][PX_CONF_STR_MAX];
    int n_fenced;
    uint64_t peers_at;
    rd_kafka_t *offsets_reader;   /* the group's committed offsets, stable or not (no group join) */
    bool txn_ready;               /* the producers' transactions initialised */
    int64_t consumer_made_at;     /* mono ms the consumer was made; 0 once fault.consumer_fenced_ms fired */
    pr_rebalance_hook on_rebalance; /* installed by pr_loop.c */
} pr_kafka_t;

/* pr_watch.c's: the partitions' watchdog. A helper thread asks the
 * broker for the ends of the owned partitions (its own client, so a
 * stuck consumer or a slow leader never blocks the loop); the loop
 * compares them with the positions (pr_part_t). The job reads q and
 * client, writes q's offsets and errors and rc. */
typedef struct pr_watch {
    pr_worker_t w;
    rd_kafka_t *client;
    rd_kafka_topic_partition_list_t *q;
    int rc;
    int64_t due_at;               /* mono ms of the next query */
    int64_t judge_at;             /* mono ms the partitions are judged next */
    uint32_t fails;               /* queries failed in a row (logs thinned) */
    int64_t renewed_at;           /* mono ms the consumer was last replaced (0: never) */
    px_counter_t *m_stalls, *m_renewals;
    px_gauge_t *m_stalled, *m_owned;
} pr_watch_t;

/* One Redis master as last vouched for (pr_redis.c): its keys carry the
 * hash tag `tag`, whose slot is the lowest it owns, so they live on it. */
#define PR_SHARD_ID_MAX 160
typedef struct pr_shard {
    char addr[PX_REDIS_HOST_MAX + 8];  /* host:port or socket path */
    char id[PR_SHARD_ID_MAX];          /* "<epoch>/<run_id>/<master_replid>": changes with any loss */
    char tag[16];
} pr_shard_t;

/* pr_redis.c's: the loop's Redis client. */
typedef struct pr_redis {
    px_rcl_t *rcl;                /* NULL: not connected */
    px_rcl_batch_t b;             /* the loop's commands */
    px_rcl_batch_t vb;            /* vouching's commands */
    bool binit;                   /* b and vb initialised */
    char err[256];                /* the last failure, for pr_redis_fail's message */
    char script_sha[41];          /* the entity write (px_store.h) */
    char mark_sha[41];            /* the applied marks, guarded by the shard's identity */
    pr_shard_t shard[PX_REDIS_NODES_MAX]; /* by node index of rcl's map at the last vouch */
    int nshards;
    pr_shard_t next[PX_REDIS_NODES_MAX]; /* vouching's scratch */
    bool vouched;                 /* shard[] holds a first vouch */
    unsigned long seen;           /* rcl's reconnects + refreshes at the last vouch */
    uint64_t gen;                 /* +1 per (re)connect: a batch that saw one aborts */
    bool rebuild_pending;         /* a master lost writes or was replaced: repair at the next turn */
    int64_t retry_at;             /* mono ms: next reconnect attempt */
    int64_t backoff_ms;
} pr_redis_t;

/* pr_guard.c's: the loop thread's guard. The loop stamps alive_ms (its
 * 100 ms timer) and names the step it begins in doing; the guard's thread
 * reads both. */
typedef struct pr_guard {
    pthread_t th;
    bool started;
    atomic_bool quit;
    atomic_bool closing;          /* the shutdown began: no blocked loop is reported */
    _Atomic int64_t alive_ms;     /* mono ms the loop last came back (or the shutdown began) */
    const char *_Atomic doing;    /* the loop's last step begun (a string literal) */
    int64_t limit_ms;             /* processor.stall_exit_ms */
    int64_t started_ms;           /* mono ms the guard started (the loop's first turn follows) */
    int64_t blocked_at;           /* the thread's: the stamp the loop was blocked after (0: not blocked) */
    px_counter_t *m_blocked;      /* times the loop was blocked for PR_BLOCKED_MS */
    px_gauge_t *m_away;           /* ms since the loop last came back */
} pr_guard_t;

/* A loop that has not come back for this long is blocked: /readyz says
 * not-ready and why (pr_ops.c), the guard logs and counts it. Its timer
 * comes back every 100 ms; a turn that holds it longer waits for a
 * broker, Redis or a helper thread (on a loaded machine, a batch and a
 * slow commit take seconds: 2 s was seen in normal operation). */
#define PR_BLOCKED_MS 5000

/* pr_ops.c's: the ops endpoint on a thread of its own, and what the loop
 * published for it (under mu). */
#define PR_OPS_TEXT_MAX 16384
typedef struct pr_ops {
    pthread_t th;
    bool inited, started;
    uv_loop_t loop;               /* the thread's */
    uv_async_t quit;              /* stops the thread's loop */
    px_httpd_t *httpd;
    pthread_mutex_t mu;
    bool published;               /* the loop published once */
    bool ready;                   /* its last readiness */
    char text[PR_OPS_TEXT_MAX];   /* and its /readyz line */
    size_t len;
} pr_ops_t;

typedef struct pr_ctx {
    pr_config_t cfg;
    px_kvlist_t kafka_kv;
    px_fold_conf_t fold;
    uv_loop_t *loop;
    px_metrics_t *metrics;
    px_avro_t *avro;
    px_registry_t *registry; /* NULL without schema.registry.url */
    bool stopping;
    int exit_code;

    pr_kafka_t kc;                /* pr_kafka.c's */
    void (*wake)(void *pr);       /* the loop's turn: the consumer queue and the workers call it */
    pr_part_t parts[PR_MAX_PARTITIONS];

    /* the helper threads */
    pr_threads_t threads;
    pr_committer_t cm;
    pr_writer_t wr;
    pr_watch_t wd;                /* pr_watch.c's */
    pr_guard_t guard;             /* pr_guard.c's */
    pr_ops_t ops;                 /* pr_ops.c's */

    pr_redis_t rd;                /* pr_redis.c's */
    px_buf_t scratch;             /* an early lock decision's payload (pr_redis_decisions) */

    /* entities */
    pr_table_t tab;

    /* the loop (pr_loop.c) */
    struct batch *batch;      /* the batch's buffers (pr_batch.c) */
    uv_timer_t timer;
    uv_idle_t idle;           /* the next batch at once while batches find work */
    bool paused;              /* Redis is away: every partition paused */
    /* the schema registry did not answer for a record's schema: the batch
     * was dropped, and every partition waits (paused) until retry_at */
    struct {
        bool down;
        int64_t retry_at, backoff_ms; /* mono ms */
        char why[256];
    } reg;
    int64_t flush_at;         /* mono ms the deferred writes are due (0: none deferred) */
    px_buf_t val;             /* a produced record's value (pr_batch.c) */

    /* metrics */
    px_counter_t *m_folded[PX_SRC__COUNT], *m_dlq, *m_skipped, *m_wskipped, *m_changes, *m_expires;
    px_counter_t *m_batches, *m_aborts, *m_redis_err, *m_kafka_err, *m_repaired;
    px_gauge_t *m_entities, *m_ready, *m_tabs, *m_locks, *m_stale, *m_users;
    px_counter_t *m_locks_acquired;
    px_counter_t *m_decided;  /* entities whose lock decisions were published before their batch's commit */
    px_counter_t *m_deferred; /* batches whose Redis writes were deferred */
    px_counter_t *m_retries, *m_retry_dlq;
    px_counter_t *m_registry_err; /* batches dropped because a schema could not be fetched */
    px_hist_t *m_batch_ms;
    px_hist_t *m_age_ms[PX_SRC__COUNT]; /* wall now - record timestamp when a batch takes it, per input topic */
    px_hist_t *m_decide_ms;             /* batch taken -> its early lock decisions published */
    px_counter_t *m_phase_us[5]; /* load, fold+produce, commit, redis, poll: where the loop's batch time goes */
} pr_ctx_t;

#define PR_PHASE_LOAD 0
#define PR_PHASE_FOLD 1
#define PR_PHASE_COMMIT 2
#define PR_PHASE_REDIS 3
#define PR_PHASE_POLL 4

/* Log why and stop the loop with exit code 1 (its supervisor restarts it).
 * In the header: every layer may end the processor. */
static inline void pr_fatal(pr_ctx_t *pr, const char *why) {
    PX_ERROR(PR_COMP, "stopping: the processor cannot go on (its supervisor restarts it)", "why=\"%s\"", why);
    pr->exit_code = 1;
    pr->stopping = true;
    uv_stop(pr->loop);
}

/* ---- pr_table.c ---------------------------------------------------------- */
int pr_table_init(pr_ctx_t *pr, size_t buckets);
void pr_table_term(pr_ctx_t *pr);
pr_entity_t *pr_table_find(pr_ctx_t *pr, const px_key_t *key);
/* The same with the key's hash already computed (pr_table_hash). */
uint64_t pr_table_hash(const px_key_t *key);
pr_entity_t *pr_table_find_hashed(pr_ctx_t *pr, const px_key_t *key, uint64_t h);
/* Prefetch the bucket slot of hash h (entity false), or the entity at the
 * head of its chain (entity true: its hash and the lines of its key), so a
 * find a few records later does not stall on them. */
void pr_table_prefetch(const pr_ctx_t *pr, uint64_t h, bool entity);
/* Insert a new empty entity (state from Redis is loaded into it after). */
pr_entity_t *pr_table_add(pr_ctx_t *pr, const px_key_t *key, int32_t partition);
/* Drop every entity of a partition: nothing is written. Nothing in flight
 * may name them (pr_quiesce first). */
void pr_table_drop_partition(pr_ctx_t *pr, int32_t partition);
void pr_table_mark_dirty(pr_ctx_t *pr, pr_entity_t *e);
/* File e under its next deadline (after any change); also recounts the
 * entity's share of the gauges. */
void pr_heap_update(pr_ctx_t *pr, pr_entity_t *e);
/* Pop the entities whose filed deadline <= now into out (at most n). */
size_t pr_heap_due(pr_ctx_t *pr, int64_t now_ms, pr_entity_t **out, size_t n);
int64_t pr_heap_next(const pr_ctx_t *pr);

/* ---- pr_worker.c --------------------------------------------------------- */
/* The lock, condition and wake-up of the workers (wake: pr->wake). */
int pr_threads_init(pr_ctx_t *pr, char *errstr, size_t errstr_size);
/* The loop is closing: the workers wake it no more (waits still work). */
void pr_threads_unwatch(pr_ctx_t *pr);
/* Stop and join every started worker, then free the lock. */
void pr_threads_term(pr_ctx_t *pr);
int pr_worker_start(pr_ctx_t *pr, pr_worker_t *w, void (*job)(pr_ctx_t *));
/* Hand the job over (what it reads was set before: the lock orders it). */
void pr_worker_submit(pr_ctx_t *pr, pr_worker_t *w);
/* True when a job handed over is done (take it back with pr_worker_wait). */
bool pr_worker_ended(pr_ctx_t *pr, pr_worker_t *w);
/* Wait until the job handed over is done, counting the loop's wait in the
 * given batch phase; busy stays set (the caller clears it once it took
 * the outcome). */
void pr_worker_wait(pr_ctx_t *pr, pr_worker_t *w, int phase);
/* The same for at most ms: true when the job is done. */
bool pr_worker_wait_for(pr_ctx_t *pr, pr_worker_t *w, int phase, int64_t ms);

/* ---- pr_redis.c ---------------------------------------------------------- */
/* Connect (or reconnect when due), vouch for every master (its identity,
 * the scripts loaded on it) and again whenever the client reconnected or
 * followed the cluster since. 0, or PX_EBACKEND while Redis is
 * unreachable (the backoff grows to 5 s). A new connection bumps
 * redis_gen; a master that changed (promoted, restarted, emptied) sets
 * rebuild_pending. */
int pr_redis_ensure(pr_ctx_t *pr);
/* True while the loop's client is connected. */
static inline bool pr_redis_up(const pr_ctx_t *pr) { return pr->rd.rcl != NULL; }
/* The shard (index into rd.shard) that holds slot now, 0 when unknown. */
int pr_redis_shard_of(const pr_ctx_t *pr, int slot);
/* The settings of the loop's client, for the writer's own. */
void pr_redis_conf(const pr_ctx_t *pr, px_rcl_conf_t *out);
void pr_redis_close(pr_ctx_t *pr);
/* Count and log a Redis failure once, drop the loop's connection, back off. */
void pr_redis_fail(pr_ctx_t *pr, const char *what);
/* Load the states of n entities (pipelined HMGET); an entity with no
 * stored state stays empty. PX_EBACKEND on a Redis failure, PX_EINVAL if
 * a stored state does not decode: that entity is marked poisoned (logged,
 * counted), so nothing overwrites what an operator must look at. */
int pr_redis_load(pr_ctx_t *pr, pr_entity_t **ents, size_t n);
/* Publish the early lock decisions of n entities (px_notify.h, decided)
 * on each entity's channel. Pipelined; a failure loses only the early
 * answers (logged and counted once, as any Redis failure). Returns how
 * many were published. */
size_t pr_redis_decisions(pr_ctx_t *pr, pr_entity_t *const *ents, size_t n);
/* Applied marks of one partition number: out[src] = next offset Redis
 * holds everything below, or -1 when unknown. */
int pr_redis_applied(pr_ctx_t *pr, int32_t partition, int64_t out[PR_N_SRC]);
/* Keys of the entities with pending deadlines in a partition. */
int pr_redis_deadline_keys(pr_ctx_t *pr, int32_t partition, px_key_t **keys, size_t *n);

/* ---- pr_writer.c: the only Redis write path ------------------------------ */
int pr_writer_start(pr_ctx_t *pr, char *errstr, size_t errstr_size);
void pr_writer_stop(pr_ctx_t *pr);
/* Build a snapshot of the dirty entities (the dirty list is then empty)
 * and, when none is left, the applied marks. 0, or PX_ENOMEM (out of
 * memory, or more than PR_SNAP_MAX entities) with the dirty list as it
 * was. */
int pr_snap_build(pr_ctx_t *pr, pr_snap_t *snap);
/* Empty buffers for a snapshot (its sent[] is the caller's). */
void pr_snap_init(pr_snap_t *snap);
/* Forget a snapshot that will not be sent; its entities are dirty again
 * (their notifications then publish at least [], on which gateways
 * re-read). */
void pr_snap_drop(pr_ctx_t *pr, pr_snap_t *snap);
void pr_snap_free(pr_snap_t *snap);
/* Hand a built snapshot to the writer thread (after finishing the one it
 * has), or write it on the loop's connection when the writer has none.
 * The snapshot's buffers are swapped with the writer's spare ones. */
void pr_writer_submit(pr_ctx_t *pr, pr_snap_t *snap);
/* True when the writer's snapshot has been written (finish it). */
bool pr_writer_ended(pr_ctx_t *pr);
/* Wait for the writer's snapshot, if any, and finish it: its applied
 * marks are Redis's, or (failed) its entities dirty again. */
void pr_writer_finish(pr_ctx_t *pr);
/* Write every dirty entity, then the applied marks, on the loop's
 * connection, now, streamed in pieces (building overlaps Redis's work).
 * Nothing may be in flight (pr_quiesce first): the dirty states must be
 * committed ones. 0, or PX_EBACKEND (all stays dirty). */
int pr_writer_flush(pr_ctx_t *pr);
/* True if some assigned partition has an applied mark Redis lacks. */
bool pr_marks_pending(const pr_ctx_t *pr);

/* ---- pr_commit.c: the committer ------------------------------------------ */
int pr_commit_start(pr_ctx_t *pr, char *errstr, size_t errstr_size);
void pr_commit_stop(pr_ctx_t *pr);
/* Hand the open transaction of pr->kc.producer to the committer with these
 * offsets (taken over; may be empty) and the batch's partitions. */
void pr_commit_dispatch(pr_ctx_t *pr, rd_kafka_topic_partition_list_t *offsets,
                        const int64_t first[][PR_N_SRC], const bool *touched);
/* True while a transaction is in flight. */
static inline bool pr_commit_busy(const pr_ctx_t *pr) { return pr->cm.w.busy; }
/* Milliseconds since the last transaction was handed over. */
int64_t pr_commit_age_ms(const pr_ctx_t *pr);
/* Milliseconds the transaction in flight has been, -1 when none; any
 * thread may ask. */
int64_t pr_commit_inflight_ms(const pr_ctx_t *pr);
/* Build the Redis writes of the transaction in flight from the entities
 * dirty now (its committed states), to be written once it committed. 0,
 * or PX_ENOMEM (too many: the entities stay dirty). */
int pr_commit_snap(pr_ctx_t *pr);
/* Forget those writes: Redis lost its dataset, they carry its marks. */
void pr_commit_forget_snap(pr_ctx_t *pr);
/* True when the transaction in flight has ended (finish it with a drain). */
bool pr_commit_ended(pr_ctx_t *pr);
/* Wait for the transaction in flight, if any, without finishing it
 * (nothing in memory changes): 0 if it committed or none is in flight,
 * PX_EBACKEND if it failed. A transaction that has not ended once it has
 * been in flight for processor.commit_wait_ms ends the processor (exit 1:
 * pr_guard_exit). Every wait of the loop for the committer comes here. */
int pr_commit_wait(pr_ctx_t *pr);
/* Wait for the transaction in flight, if any, and finish it: committed,
 * its snapshot goes to the writer; failed, it is aborted and its
 * partitions rewound. 0 when nothing failed; PX_EBACKEND when it did
 * (then whatever was folded on top of it must be dropped by the caller). */
int pr_commit_drain(pr_ctx_t *pr);
/* Nothing in flight afterwards: the commit drained, the writer finished.
 * Before anything drops entities or writes the dirty list. Returns what
 * pr_commit_drain returned. */
int pr_quiesce(pr_ctx_t *pr);
/* Abort the open transaction of rk; if that fails for good, stop. */
void pr_txn_abort(pr_ctx_t *pr, rd_kafka_t *rk);

/* ---- pr_guard.c: the loop thread's guard ---------------------------------- */
/* Its metrics, and the stamp from now on (before pr_ops_start). */
void pr_guard_init(pr_ctx_t *pr);
/* Start the guard's thread: it reports a blocked loop, and ends the
 * process when the loop is stuck (processor.stall_exit_ms; 0: never). */
int pr_guard_start(pr_ctx_t *pr, char *errstr, size_t errstr_size);
/* The loop came back (its timer): stamp it. */
void pr_guard_alive(pr_ctx_t *pr);
/* Milliseconds since the loop last came back; any thread may ask. */
int64_t pr_guard_away_ms(const pr_ctx_t *pr);
/* The step the loop last began (a string literal, or NULL); any thread. */
const char *pr_guard_doing(const pr_ctx_t *pr);
/* The processor cannot go on and cannot stop cleanly: log why once and
 * exit 1 at once, as SIGKILL would end it (exactly-once.md: the next
 * owner of its partitions repairs them and fences its transactions). */
_Noreturn void pr_guard_exit(const char *why);
/* The loop stopped: the shutdown that follows gets the same time. */
void pr_guard_shutdown(pr_ctx_t *pr);
void pr_guard_stop(pr_ctx_t *pr);

/* ---- pr_ops.c: the ops endpoint -------------------------------------------- */
/* Listen on ops.host:ops.port (0: none) on a thread of its own. */
int pr_ops_start(pr_ctx_t *pr, char *errstr, size_t errstr_size);
/* The loop's readiness and its /readyz line (text, len bytes). */
void pr_ops_publish(pr_ctx_t *pr, bool ready, const char *text, size_t len);
/* Stop the thread and close the listener. */
void pr_ops_stop(pr_ctx_t *pr);
/* The loop begins step what (a string literal), named if it never ends. */
static inline void pr_doing(pr_ctx_t *pr, const char *what) {
    atomic_store_explicit(&pr->guard.doing, what, memory_order_relaxed);
}

/* ---- pr_watch.c: the partitions' watchdog ---------------------------------- */
/* The metrics and the query thread (after pr_threads_init). */
int pr_watch_start(pr_ctx_t *pr, char *errstr, size_t errstr_size);
/* (after pr_threads_term) */
void pr_watch_stop(pr_ctx_t *pr);
/* Each turn: takes the ends the thread found, judges each owned
 * partition (lag, progress, stalls: counted, logged once each), asks
 * again when due. A stall past processor.stall_exit_ms while Redis and
 * the registry answer stops the processor (pr_fatal). */
void pr_watch_tick(pr_ctx_t *pr);
/* Ready as far as the partitions go: owned (the group assigned them,
 * maybe none), checked, none stalled. Appends to why the partition
 * numbers owned (partitions=0,2 or partitions=none) and what is not
 * ready. */
bool pr_watch_ready(pr_ctx_t *pr, px_buf_t *why);

/* ---- pr_txn.c, pr_batch.c, pr_repair.c, pr_loop.c --------------------------
 * (pr_batch.h and pr_txn.h: the batch and its transaction, for pr_loop.c) */
/* For the partitions whose repair checks are due, run them together:
 * committed offsets C, applied marks A; where A < C, seek to A and fold
 * [A, C) in repair mode; then load the entities with pending deadlines
 * and resume. A partition whose check fails stays paused and is checked
 * again after a backoff; the others go on. 0, or PX_EBACKEND when the
 * commit in flight failed (rewound: no batch this turn). */
int pr_repair_checks(pr_ctx_t *pr);
/* What each wake runs: at most one batch through its stages. */
void pr_loop_turn(pr_ctx_t *pr);
/* The loop's callbacks and the helper threads (before pr_kafka_start). */
int pr_loop_start(pr_ctx_t *pr, char *errstr, size_t errstr_size);
/* The loop is closing: nothing wakes it any more. */
void pr_loop_unwatch(pr_ctx_t *pr);
/* Close the consumer (its revoke writes what is committed), end what is
 * in flight, stop the helper threads and the producers. */
void pr_loop_stop(pr_ctx_t *pr);
void pr_batch_free(pr_ctx_t *pr);

#endif
