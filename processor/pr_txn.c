/*
 * pr_txn.c - a batch's transaction: every record the batch makes goes
 * through pr_txn_emit, produced inside the transaction (begun at the
 * first record) or held while the previous batch's transaction is in
 * flight. Contracts: pr_txn.h.
 */
#include <stdlib.h>
#include <string.h>

#include "pr_txn.h"
#include "px_log.h"
#include "px_produce.h"

/* Bounds of the held records; a batch that reaches one waits for the
 * transaction in flight and produces directly from then on. */
#define PR_HELD_BYTES (64u << 20)
#define PR_HELD_RECS 65536

int pr_txn_init(pr_txn_t *t) {
    memset(t, 0, sizeof *t);
    px_buf_init(&t->held, PR_HELD_BYTES);
    t->recs = calloc(PR_HELD_RECS, sizeof *t->recs);
    return t->recs ? 0 : PX_ENOMEM;
}

static void held_drop(pr_txn_t *t) {
    for (size_t i = 0; i < t->n_recs; i++)
        if (t->recs[i].hdrs) rd_kafka_headers_destroy(t->recs[i].hdrs);
    t->n_recs = 0;
    px_buf_reset(&t->held);
    t->holding = false;
}

void pr_txn_term(pr_txn_t *t) {
    if (t->recs) held_drop(t);
    free(t->recs);
    t->recs = NULL;
    px_buf_term(&t->held);
}

void pr_txn_reset(pr_ctx_t *pr, pr_txn_t *t) {
    held_drop(t);
    t->open = false;
    t->holding = pr_commit_busy(pr);
}

/* Hold one record (copies its bytes). 0, or PX_ENOMEM when full. */
static int hold(pr_txn_t *t, const char *topic, int32_t partition, const void *key, size_t klen, const void *val,
                size_t vlen, rd_kafka_headers_t *hdrs) {
    if (t->n_recs == PR_HELD_RECS) return PX_ENOMEM;
    size_t mark = t->held.len, tl = strlen(topic) + 1;
    pr_held_rec_t *r = &t->recs[t->n_recs];
    r->topic = t->held.len;
    int rc = px_buf_append(&t->held, topic, tl);
    r->key = t->held.len;
    r->klen = klen;
    if (!rc) rc = px_buf_append(&t->held, key, klen);
    r->val = t->held.len;
    r->vlen = vlen;
    if (!rc) rc = px_buf_append(&t->held, val, vlen);
    if (rc) {
        t->held.len = mark;
        return PX_ENOMEM;
    }
    r->partition = partition;
    r->hdrs = hdrs;
    t->n_recs++;
    return 0;
}

static bool txn_begin(pr_ctx_t *pr, pr_txn_t *t) {
    if (t->open) return true;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(pr->kc.producer);
    if (e) {
        PX_ERROR(PR_COMP, "begin_transaction failed", "err=\"%s\" fatal=%d", rd_kafka_error_string(e),
                 rd_kafka_error_is_fatal(e));
        if (rd_kafka_error_is_fatal(e)) pr_fatal(pr, "a transactional producer failed for good");
        rd_kafka_error_destroy(e);
        return false;
    }
    t->open = true;
    return true;
}

/* One record into the transaction, begun if need be (100 waits of 10 ms
 * at most for a full queue). 0 or PX_EBACKEND (logged, counted); the
 * headers are librdkafka's or freed. */
static int produce(pr_ctx_t *pr, pr_txn_t *t, const char *topic, int32_t partition, const void *key, size_t klen,
                   const void *val, size_t vlen, rd_kafka_headers_t *hdrs) {
    if (!txn_begin(pr, t)) {
        if (hdrs) rd_kafka_headers_destroy(hdrs);
        return PX_EBACKEND;
    }
    px_produce_rec_t r = {.topic = topic, .partition = partition, .key = key, .klen = klen, .val = val,
                          .vlen = vlen, .hdrs = hdrs};
    rd_kafka_resp_err_t err = px_produce(pr->kc.producer, &r, 100, 10, NULL);
    if (!err) return 0;
    if (hdrs) rd_kafka_headers_destroy(hdrs);
    px_counter_add(pr->m_kafka_err, 1);
    PX_ERROR(PR_COMP, "produce failed", "topic=%s err=%s", topic, rd_kafka_err2name(err));
    return PX_EBACKEND;
}

void pr_txn_release(pr_ctx_t *pr, pr_txn_t *t, pr_batch_state_t *st) {
    for (size_t i = 0; i < t->n_recs; i++) {
        pr_held_rec_t *r = &t->recs[i];
        rd_kafka_headers_t *h = r->hdrs;
        r->hdrs = NULL;
        if (!pr_batch_may_emit(st)) {
            if (h) rd_kafka_headers_destroy(h);
            continue;
        }
        if (produce(pr, t, t->held.data + r->topic, r->partition, t->held.data + r->key, r->klen,
                    t->held.data + r->val, r->vlen, h))
            pr_batch_state_fail(st, PR_FATE_PRODUCE_FAILED);
    }
    held_drop(t);
}

void pr_txn_emit(pr_ctx_t *pr, pr_txn_t *t, pr_batch_state_t *st, const char *topic, int32_t partition,
                 const void *key, size_t klen, const void *val, size_t vlen, rd_kafka_headers_t *hdrs) {
    if (t->holding && pr_batch_may_emit(st)) {
        if (hold(t, topic, partition, key, klen, val, vlen, hdrs) == 0) return;
        /* full: wait for the transaction in flight (nothing in memory
         * changes meanwhile) */
        if (pr_commit_wait(pr)) pr_batch_state_fail(st, PR_FATE_PREV_FAILED);
        t->holding = false;
        pr_txn_release(pr, t, st);
    }
    if (!pr_batch_may_emit(st)) {
        if (hdrs) rd_kafka_headers_destroy(hdrs);
        return;
    }
    if (produce(pr, t, topic, partition, key, klen, val, vlen, hdrs)) pr_batch_state_fail(st, PR_FATE_PRODUCE_FAILED);
}

void pr_txn_handed(pr_ctx_t *pr, pr_txn_t *t) {
    t->open = false;
    pr->kc.cur_producer = !pr->kc.cur_producer;
    pr->kc.producer = pr->kc.producers[pr->kc.cur_producer];
}

void pr_txn_drop(pr_ctx_t *pr, pr_txn_t *t) {
    if (t->open) {
        pr_txn_abort(pr, pr->kc.producer);
        pr_txn_handed(pr, t); /* a transaction ended: the next one goes to the other producer */
    }
    held_drop(t);
}
