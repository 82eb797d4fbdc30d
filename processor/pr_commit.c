/*
 * pr_commit.c - the commit stage: the committer thread and the
 * transaction in flight.
 *
 * A batch's transaction ends with two blocking calls: the consumed offsets
 * sent to it, then the commit (a flush of its records, EndTxn, and the
 * coordinator's markers), together some 10-20 ms. The loop seals a batch
 * (its records are all handed to the producer), dispatches the two calls
 * to this thread, and goes on with the next batch: collect, decode, load,
 * fold, publish its early lock decisions. That batch produces nothing
 * while this one is in flight (pr_txn.c holds its records), so two
 * transactions never interleave records in a partition; it is sealed only
 * after this one ended, so an offset is never committed before the
 * offsets below it (docs/exactly-once.md, "Commits in flight").
 *
 * Finishing runs on the loop (pr_commit_drain): a commit that succeeded
 * hands its snapshot (the Redis writes built at its seal, when the
 * entities held exactly the committed states) to the writer; one that
 * failed is aborted and its partitions rewound, and the caller drops what
 * it folded on top.
 *
 * The producers' callbacks (delivery reports, errors) are served inside
 * the commit, so they may run on this thread: they touch only atomics and
 * the log (pr_kafka.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pr.h"
#include "pr_kafka.h"
#include "px_log.h"
#include "px_time.h"

/* The committer's job: the offsets, then the commit (retried while the
 * error is retriable, three times). Reads producer, offsets and gm;
 * writes err and n_commits. */
static void commit_job(pr_ctx_t *pr) {
    pr_committer_t *cm = &pr->cm;
    rd_kafka_t *rk = cm->producer;
    rd_kafka_error_t *e = NULL;
    /* fault.abort_every (tests): the transaction fails as if the broker had
     * refused it, after its flush, and is aborted like any failed commit */
    if (pr->cfg.fault_abort_every && ++cm->n_commits % pr->cfg.fault_abort_every == 0 &&
        rd_kafka_flush(rk, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR)
        e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__STATE, "injected by fault.abort_every=%lld",
                               (long long)pr->cfg.fault_abort_every);
    if (!e && cm->offsets->cnt) e = rd_kafka_send_offsets_to_transaction(rk, cm->offsets, cm->gm, 30000);
    for (int attempt = 0; !e; attempt++) {
        e = rd_kafka_commit_transaction(rk, 30000);
        if (!e) break;
        if (rd_kafka_error_is_retriable(e) && attempt < 3) {
            rd_kafka_error_destroy(e);
            e = NULL;
        }
    }
    cm->err = e;
}

int pr_commit_start(pr_ctx_t *pr, char *errstr, size_t errstr_size) {
    pr_committer_t *cm = &pr->cm;
    cm->first = calloc(PR_MAX_PARTITIONS, sizeof *cm->first);
    cm->snap.sent = calloc(PR_MAX_PARTITIONS, sizeof *cm->snap.sent);
    pr_snap_init(&cm->snap);
    if (!cm->first || !cm->snap.sent) return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory for the committer");
    if (pr_worker_start(pr, &cm->w, commit_job))
        return px_errf(PX_EIO, errstr, errstr_size, "committer thread not started");
    return 0;
}

/* (after pr_threads_term: the thread has stopped) */
void pr_commit_stop(pr_ctx_t *pr) {
    pr_committer_t *cm = &pr->cm;
    pr_snap_free(&cm->snap);
    free(cm->snap.sent);
    free(cm->first);
    cm->snap.sent = NULL;
    cm->first = NULL;
}

void pr_commit_dispatch(pr_ctx_t *pr, rd_kafka_topic_partition_list_t *offsets,
                        const int64_t first[][PR_N_SRC], const bool *touched) {
    pr_committer_t *cm = &pr->cm;
    memcpy(cm->first, first, PR_MAX_PARTITIONS * sizeof *cm->first);
    memcpy(cm->touched, touched, sizeof cm->touched);
    cm->producer = pr->kc.producer;
    /* each offset names the instance that committed it: a later owner of
     * the partition fences that instance if it left (pr_kafka_peers) */
    size_t il = strlen(pr->cfg.instance);
    for (int i = 0; i < offsets->cnt; i++)
        if (!offsets->elems[i].metadata && (offsets->elems[i].metadata = malloc(il ? il : 1)) != NULL) {
            memcpy(offsets->elems[i].metadata, pr->cfg.instance, il);
            offsets->elems[i].metadata_size = il;
        }
    cm->offsets = offsets;
    cm->gm = rd_kafka_consumer_group_metadata(pr->kc.consumer);
    cm->err = NULL;
    cm->dispatched_ms = px_mono_ms();
    atomic_store(&cm->inflight_ms, cm->dispatched_ms);
    pr_worker_submit(pr, &cm->w);
}

void pr_txn_abort(pr_ctx_t *pr, rd_kafka_t *rk) {
    for (int attempt = 0;; attempt++) {
        rd_kafka_error_t *ae = rd_kafka_abort_transaction(rk, 30000);
        if (!ae) return;
        bool retry = rd_kafka_error_is_retriable(ae) && attempt < 10, fatal = rd_kafka_error_is_fatal(ae);
        PX_ERROR(PR_COMP, "abort_transaction failed", "err=\"%s\" fatal=%d retry=%d", rd_kafka_error_string(ae),
                 fatal, retry);
        rd_kafka_error_destroy(ae);
        if (retry) continue; /* e.g. the broker is away: the call resumes where it was */
        /* a producer that can neither commit nor abort cannot begin again */
        if (fatal) pr_fatal(pr, "a transaction could not be aborted");
        return;
    }
}

bool pr_commit_ended(pr_ctx_t *pr) { return pr_worker_ended(pr, &pr->cm.w); }

/* The transaction in flight has been for processor.commit_wait_ms and the
 * loop must wait for it: the brokers are out of reach (a network
 * partition: its calls run into their timeouts, 30 s for the offsets and
 * four times 30 s for the commit) or too slow. Waiting on would hold the
 * loop, and in a revoke the group's rebalance, for minutes, for nothing:
 * a processor cut off from the brokers has lost its group session, its
 * partitions go to another instance, which repairs them from the applied
 * marks and fences this instance's transactions (docs/exactly-once.md,
 * "Departures"). So the process ends as SIGKILL would end it, which
 * exactly-once survives; a clean shutdown would wait for the transaction
 * again. */
static void commit_gave_up(pr_ctx_t *pr) {
    const char *doing = pr_guard_doing(pr);
    char why[384];
    snprintf(why, sizeof why, "the loop had to wait for the transaction in flight (%s), and it did not end within "
             "processor.commit_wait_ms (%lld ms) of its dispatch: the brokers are out of reach or too slow",
             doing ? doing : "none", (long long)pr->cfg.commit_wait_ms);
    pr_guard_exit(why);
}

int pr_commit_wait(pr_ctx_t *pr) {
    pr_committer_t *cm = &pr->cm;
    if (!cm->w.busy) return 0;
    if (!pr->cfg.commit_wait_ms) {
        pr_worker_wait(pr, &cm->w, PR_PHASE_COMMIT); /* the loop's wait only */
    } else {
        int64_t left = pr->cfg.commit_wait_ms - pr_commit_age_ms(pr);
        if (!pr_worker_wait_for(pr, &cm->w, PR_PHASE_COMMIT, left > 0 ? left : 0)) commit_gave_up(pr);
    }
    return cm->err ? PX_EBACKEND : 0;
}

/* The transaction in flight failed: abort it, and drop what it folded.
 * The writer's snapshot names entities the rewind may drop: it ends
 * first. The failed batch's entities are dirty again before the rewind
 * drops those of its partitions: the others hold committed states of
 * earlier batches. Fatal or not, its folds leave memory, so no later
 * flush writes them. */
static void commit_failed(pr_ctx_t *pr, rd_kafka_error_t *e) {
    pr_committer_t *cm = &pr->cm;
    px_counter_add(pr->m_aborts, 1);
    bool fatal = rd_kafka_error_is_fatal(e);
    PX_WARN(PR_COMP, "transaction failed: aborting and rewinding", "err=\"%s\" fatal=%d", rd_kafka_error_string(e),
            fatal);
    pr_writer_finish(pr);
    pr_snap_drop(pr, &cm->snap);
    if (fatal) pr_fatal(pr, "the transaction failed for good");
    else pr_txn_abort(pr, cm->producer);
    pr_kafka_rewind(pr, (const int64_t(*)[PR_N_SRC])cm->first, cm->touched);
}

int pr_commit_drain(pr_ctx_t *pr) {
    pr_committer_t *cm = &pr->cm;
    if (!cm->w.busy) return 0;
    pr_commit_wait(pr);
    cm->w.busy = false;
    atomic_store(&cm->inflight_ms, 0);
    rd_kafka_error_t *e = cm->err;
    cm->err = NULL;
    rd_kafka_topic_partition_list_destroy(cm->offsets);
    rd_kafka_consumer_group_metadata_destroy(cm->gm);
    cm->offsets = NULL;
    cm->gm = NULL;
    if (!e) {
        px_counter_add(pr->m_batches, 1);
        if (cm->snap.ready) pr_writer_submit(pr, &cm->snap); /* a failure leaves them dirty */
        return 0;
    }
    commit_failed(pr, e);
    rd_kafka_error_destroy(e);
    return PX_EBACKEND;
}

int pr_quiesce(pr_ctx_t *pr) {
    int rc = pr_commit_drain(pr);
    pr_writer_finish(pr);
    return rc;
}

int64_t pr_commit_age_ms(const pr_ctx_t *pr) { return px_mono_ms() - pr->cm.dispatched_ms; }

int64_t pr_commit_inflight_ms(const pr_ctx_t *pr) {
    int64_t since = atomic_load(&((pr_ctx_t *)pr)->cm.inflight_ms);
    return since ? px_mono_ms() - since : -1;
}

int pr_commit_snap(pr_ctx_t *pr) { return pr_snap_build(pr, &pr->cm.snap); }

void pr_commit_forget_snap(pr_ctx_t *pr) { pr_snap_drop(pr, &pr->cm.snap); }
