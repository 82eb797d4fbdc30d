/*
 * pr_txn.h - a batch's transaction, the one way its records leave: change
 * events, EXPIREs, retry and DLQ records (pr_txn.c).
 */
#ifndef PR_TXN_H
#define PR_TXN_H

#include "pr.h"
#include "pr_batch_state.h"

/* One record held while the previous transaction is in flight. */
typedef struct pr_held_rec {
    size_t topic, key, klen, val, vlen; /* offsets into pr_txn_t.held */
    int32_t partition;
    rd_kafka_headers_t *hdrs;
} pr_held_rec_t;

typedef struct pr_txn {
    bool open;        /* begun on pr->kc.producer */
    /* While the previous batch's transaction is in flight (pr_commit.c),
     * this batch's records are held, and produced in order once it
     * committed: the two never interleave in a partition. */
    bool holding;
    px_buf_t held;    /* topic, key and value bytes of the held records */
    pr_held_rec_t *recs;
    size_t n_recs;
} pr_txn_t;

/* 0 or PX_ENOMEM. */
int pr_txn_init(pr_txn_t *t);
void pr_txn_term(pr_txn_t *t);
/* A new batch: nothing held, no transaction; records are held while a
 * commit is in flight. */
void pr_txn_reset(pr_ctx_t *pr, pr_txn_t *t);
/* One record of the batch (bytes copied; the headers are the callee's
 * from here): produced in the batch's transaction, begun if need be, or
 * held. A holding batch that fills its buffer waits for the transaction
 * in flight and produces directly from then on. Nothing is produced once
 * the batch failed; a failure to produce, or a failed transaction in
 * flight, fails the batch (st). */
void pr_txn_emit(pr_ctx_t *pr, pr_txn_t *t, pr_batch_state_t *st, const char *topic, int32_t partition,
                 const void *key, size_t klen, const void *val, size_t vlen, rd_kafka_headers_t *hdrs);
/* Nothing is in flight any more: the held records go to the producer, in
 * the order they were made. */
void pr_txn_release(pr_ctx_t *pr, pr_txn_t *t, pr_batch_state_t *st);
/* The open transaction went to the committer: the next one goes to the
 * other producer (pr.h: producers). */
void pr_txn_handed(pr_ctx_t *pr, pr_txn_t *t);
/* The batch will not commit: abort its transaction if one opened, forget
 * what it holds. */
void pr_txn_drop(pr_ctx_t *pr, pr_txn_t *t);

#endif
