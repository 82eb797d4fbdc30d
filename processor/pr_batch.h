/*
 * pr_batch.h - the collect and fold stages of a batch (pr_batch.c), for
 * the loop (pr_loop.c), which runs them and seals the batch.
 *
 * A batch takes up to batch.max_records records of the input and retry
 * topics (collect), decodes them by the input rule (px_input.h), loads
 * the entities not in memory in one pipelined read, and folds each
 * record once (the entity watermark skips what the stored state already
 * holds). What the fold makes, change events, retry and DLQ records and
 * the EXPIREs of due deadlines, goes out through the batch's transaction
 * (pr_txn.h).
 *
 * Records below a partition's repair bound were committed by an earlier
 * owner whose Redis writes may be missing: they are folded, but produce
 * nothing and are not part of the offsets. Retry topics: a record whose
 * failure may pass goes to <topic>.retry with a due time and its entity's
 * sequence number; an entity's later records follow it there, so its
 * records apply in order ("Retry topics" in docs/exactly-once.md).
 */
#ifndef PR_BATCH_H
#define PR_BATCH_H

#include "pr.h"
#include "pr_batch_state.h"
#include "pr_txn.h"
#include "px_input.h"

typedef struct batch {
    pr_ctx_t *pr;             /* for the fold's callbacks */
    pr_batch_state_t st;
    pr_txn_t txn;
    size_t n;                 /* records collected */
    rd_kafka_message_t **msgs;
    int *src;                 /* the consumed topic of each record (0..PR_N_SRC), looked up once */
    px_event_t *evs;
    int *ok;                  /* 1: decoded; 0: poison (DLQ) */
    uint32_t *why;            /* a poison record's reason: its offset in whys */
    px_buf_t whys;            /* the reasons of the batch's poison records */
    uint64_t *hash;           /* of each decoded record's key (pr_table_hash) */
    px_input_origin_t *orig;  /* where each came from before any retry topic */
    pr_entity_t **ents;       /* each record's entity; the second half: entities to load */
    pr_entity_t **decided;    /* entities with a LOCK_GRANTED/LOCK_DENIED not yet published */
    size_t n_decided;
    int64_t t_collect_us;     /* monotonic time the last records were taken */
    /* per partition x source: first offset consumed in this batch (-1: none) */
    int64_t first[PR_MAX_PARTITIONS][PR_N_SRC];
    /* partitions of the entities it produced EXPIREs for: px_fold_due marks
     * the items as requested in memory, so if the batch does not commit
     * those entities must go too (they are loaded again and ask again) */
    bool touched[PR_MAX_PARTITIONS];
    /* per partition x retry topic: the first record not yet due (-1: none);
     * the topic is held there until blocked_due */
    int64_t blocked[PR_MAX_PARTITIONS][PX_SRC__COUNT], blocked_due[PR_MAX_PARTITIONS][PX_SRC__COUNT];
    /* the record being folded, for the fold's callbacks */
    pr_entity_t *cur;
    rd_kafka_message_t *cur_msg;
    bool repair;              /* it is below its repair bound: emit nothing */
} batch_t;

/* The loop's batch buffers, allocated at the first call. NULL when out of
 * memory (logged; tried again at the next call). */
batch_t *pr_batch_get(pr_ctx_t *pr);
/* A new batch: empty, open, good; its records held while a commit is in
 * flight. */
void pr_batch_begin(pr_ctx_t *pr, batch_t *b);
/* Collect: take records (after those it holds) until it is full or none
 * waits; the first poll may wait up to wait_ms. False when a rebalance ran
 * meanwhile: the batch must be dropped. */
bool pr_batch_collect(pr_ctx_t *pr, batch_t *b, int wait_ms);
/* Fold the records [from, n): decode, load, fold. *t_loaded: when the
 * load ended. 0, or PX_EBACKEND when Redis failed loading states (drop
 * the batch). A reload that fails mid-fold marks the batch REDIS_LOST. */
int pr_batch_fold(pr_ctx_t *pr, batch_t *b, size_t from, int64_t *t_loaded);
/* Publish the early lock decisions folded so far (when the state allows),
 * or forget them. */
void pr_batch_decisions(pr_ctx_t *pr, batch_t *b);
/* Hold each retry topic at its first record not yet due, and produce the
 * EXPIREs of the deadlines due now (not for a partition still being
 * repaired: its state is not complete). The fold's last act. */
void pr_batch_finish_fold(pr_ctx_t *pr, batch_t *b);
/* The offsets to commit: the next offset of every partition x source
 * consumed, except below a repair bound. */
rd_kafka_topic_partition_list_t *pr_batch_offsets(pr_ctx_t *pr, const batch_t *b);
/* Free the collected records (after a seal or a drop). */
void pr_batch_free_msgs(batch_t *b);
/* Drop a batch that will not commit: its transaction, its records, and
 * what it folded (after quiescing, its partitions are rewound). */
void pr_batch_drop(pr_ctx_t *pr, batch_t *b);

#endif
