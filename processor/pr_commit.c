/*
 * pr_commit.c - the committer and writer threads: the transaction in
 * flight, and the Redis writes of the last committed batch.
 *
 * A batch's transaction ends with two blocking calls: the consumed offsets
 * sent to it, then the commit (a flush of its records, EndTxn, and the
 * coordinator's markers). Together they took about 20 ms per batch of 10k
 * records here, and 9 ms for a small live batch, during which the loop
 * thread did nothing: a LOCK arriving then waited for them before its batch
 * could even be folded. Now the loop thread seals a batch (its records are
 * all handed to the producer), dispatches the two calls to this thread, and
 * goes on with the next batch: collect, decode, load, fold, and publish its
 * early lock decisions. The next batch produces nothing while this one is
 * in flight (pr_batch.c buffers its records), so the two transactions never
 * interleave records in a partition; it is sealed only after this one
 * ended, so an offset is never committed before the offsets below it.
 *
 * Finishing runs on the loop thread (pr_commit_drain): a commit that
 * succeeded gets its Redis writes (the snapshot pr_redis.c built at the
 * seal, when the entities held exactly the committed states) handed to the
 * writer thread, which sends them on its own connection while the loop
 * goes on; one that failed is aborted and its partitions rewound, and the
 * caller drops what it folded on top (docs/exactly-once.md, "Commits in
 * flight"). The writer's result is finished on the loop too
 * (pr_writer_finish): applied marks, or the entities dirty again.
 * Everything that drops entities or writes the dirty list quiesces first
 * (pr_quiesce): snapshots hold pointers to entities.
 *
 * The producers' callbacks (delivery reports, errors) are served inside
 * the commit, so they may run on this thread: they touch only atomics and
 * the log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pr.h"
#include "px_log.h"
#include "px_time.h"

/* ---- the helper threads ------------------------------------------------ */

static void *worker_main(void *arg) {
    pr_worker_t *w = arg;
    pr_ctx_t *pr = w->pr;
    pthread_mutex_lock(&pr->mu);
    for (;;) {
        while (!w->has_job && !w->quit) pthread_cond_wait(&pr->cv, &pr->mu);
        if (!w->has_job) break;
        w->has_job = false;
        pthread_mutex_unlock(&pr->mu);
        w->job(pr);
        pthread_mutex_lock(&pr->mu);
        w->done = true;
        pthread_cond_broadcast(&pr->cv);
        if (pr->commit_async_live) uv_async_send(&pr->commit_async);
    }
    pthread_mutex_unlock(&pr->mu);
    return NULL;
}

static int worker_start(pr_ctx_t *pr, pr_worker_t *w, void (*job)(pr_ctx_t *)) {
    w->pr = pr;
    w->job = job;
    if (pthread_create(&w->th, NULL, worker_main, w)) return PX_EIO;
    w->started = true;
    return 0;
}

/* Hand the job over (what it reads was set before: the lock orders it). */
static void worker_submit(pr_ctx_t *pr, pr_worker_t *w) {
    w->busy = true;
    pthread_mutex_lock(&pr->mu);
    w->done = false;
    w->has_job = true;
    pthread_cond_broadcast(&pr->cv);
    pthread_mutex_unlock(&pr->mu);
}

static bool worker_ended(pr_ctx_t *pr, pr_worker_t *w) {
    if (!w->busy) return false;
    pthread_mutex_lock(&pr->mu);
    bool done = w->done;
    pthread_mutex_unlock(&pr->mu);
    return done;
}

/* Wait until the job handed over is done (its outcome may be read then);
 * counts the loop's wait in the given phase. */
static void worker_wait(pr_ctx_t *pr, pr_worker_t *w, int phase) {
    int64_t t0 = px_mono_us();
    pthread_mutex_lock(&pr->mu);
    while (!w->done) pthread_cond_wait(&pr->cv, &pr->mu);
    pthread_mutex_unlock(&pr->mu);
    px_counter_add(pr->m_phase_us[phase], (uint64_t)(px_mono_us() - t0));
}

/* The committer's job: the offsets, then the commit. */
static void commit_job(pr_ctx_t *pr) {
    static int64_t n_commits; /* the committer thread's alone */
    rd_kafka_t *rk = pr->txn.producer;
    rd_kafka_error_t *e = NULL;
    /* fault.abort_every (tests): the transaction fails as if the broker had
     * refused it, and is aborted like any failed commit */
    if (pr->cfg.fault_abort_every && ++n_commits % pr->cfg.fault_abort_every == 0 &&
        rd_kafka_flush(rk, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR) /* as a commit fails: after the flush */
        e = rd_kafka_error_new(RD_KAFKA_RESP_ERR__STATE, "injected by fault.abort_every=%lld",
                               (long long)pr->cfg.fault_abort_every);
    if (!e && pr->txn.offsets->cnt)
        e = rd_kafka_send_offsets_to_transaction(rk, pr->txn.offsets, pr->txn.gm, 30000);
    for (int attempt = 0; !e; attempt++) {
        e = rd_kafka_commit_transaction(rk, 30000);
        if (!e) break;
        if (rd_kafka_error_is_retriable(e) && attempt < 3) {
            rd_kafka_error_destroy(e);
            e = NULL;
        }
    }
    pr->txn.err = e;
}

/* The writer's job: the snapshot on the writer's connection. */
static void write_job(pr_ctx_t *pr) { pr->writer_rc = pr_redis_snap_write(pr, pr->wredis, &pr->wsnap); }

/* A commit or a write ended while the loop slept: finish it now (its Redis
 * writes are what the gateways wait for). */
static void on_commit_async(uv_async_t *h) { pr_batch_turn(h->data); }

int pr_commit_start(pr_ctx_t *pr, char *errstr, size_t errstr_size) {
    pr->txn.first = calloc(PR_MAX_PARTITIONS, sizeof *pr->txn.first);
    pr->txn.snap.sent = calloc(PR_MAX_PARTITIONS, sizeof *pr->txn.snap.sent);
    px_buf_init(&pr->txn.snap.resp, PR_SNAP_BYTES);
    if (!pr->txn.first || !pr->txn.snap.sent)
        return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory for the committer");
    if (pthread_mutex_init(&pr->mu, NULL) || pthread_cond_init(&pr->cv, NULL))
        return px_errf(PX_ENOMEM, errstr, errstr_size, "committer: mutex or condition not created");
    if (uv_async_init(pr->loop, &pr->commit_async, on_commit_async))
        return px_errf(PX_EIO, errstr, errstr_size, "committer: wake-up handle not created");
    pr->commit_async.data = pr;
    pr->commit_async_live = true;
    px_buf_init(&pr->wsnap.resp, PR_SNAP_BYTES);
    pr->wsnap.sent = calloc(PR_MAX_PARTITIONS, sizeof *pr->wsnap.sent);
    if (!pr->wsnap.sent) return px_errf(PX_ENOMEM, errstr, errstr_size, "out of memory for the writer");
    if (worker_start(pr, &pr->committer, commit_job) || worker_start(pr, &pr->writer, write_job))
        return px_errf(PX_EIO, errstr, errstr_size, "committer or writer thread not started");
    return 0;
}

/* The loop is closing: the committer must not wake it any more (drains
 * wait on the condition, not on the loop). */
void pr_commit_unwatch(pr_ctx_t *pr) {
    if (!pr->commit_async.data) return; /* never set up */
    pthread_mutex_lock(&pr->mu);
    bool live = pr->commit_async_live;
    pr->commit_async_live = false;
    pthread_mutex_unlock(&pr->mu);
    if (live) uv_close((uv_handle_t *)&pr->commit_async, NULL);
}

void pr_commit_stop(pr_ctx_t *pr) {
    if (pr->commit_async.data) {
        pr_quiesce(pr);
        pr_commit_unwatch(pr);
        pthread_mutex_lock(&pr->mu);
        pr->committer.quit = pr->writer.quit = true;
        pthread_cond_broadcast(&pr->cv);
        pthread_mutex_unlock(&pr->mu);
        if (pr->committer.started) pthread_join(pr->committer.th, NULL);
        if (pr->writer.started) pthread_join(pr->writer.th, NULL);
        pr->committer.started = pr->writer.started = false;
        pthread_cond_destroy(&pr->cv);
        pthread_mutex_destroy(&pr->mu);
        pr->commit_async.data = NULL;
    }
    pr_redis_snap_free(&pr->txn.snap);
    pr_redis_snap_free(&pr->wsnap);
    free(pr->txn.snap.sent);
    free(pr->wsnap.sent);
    free(pr->txn.first);
    pr->txn.snap.sent = pr->wsnap.sent = NULL;
    pr->txn.first = NULL;
}

void pr_writer_submit(pr_ctx_t *pr, pr_snap_t *snap) {
    pr_writer_finish(pr); /* in order: the previous snapshot first */
    if (!pr->writer.started || !pr->wredis || pr->rebuild_pending) {
        pr_redis_snap_send(pr, snap); /* on the loop's connection (which refuses a lost dataset) */
        return;
    }
    pr_snap_t t = pr->wsnap; /* the writer takes the built one; its spare buffers come back */
    pr->wsnap = *snap;
    *snap = t;
    snap->ready = false;
    worker_submit(pr, &pr->writer);
}

bool pr_writer_ended(pr_ctx_t *pr) { return worker_ended(pr, &pr->writer); }

void pr_writer_finish(pr_ctx_t *pr) {
    if (!pr->writer.busy) return;
    worker_wait(pr, &pr->writer, 3); /* the redis phase: the loop's wait only */
    pr->writer.busy = false;
    if (pr->writer_rc == 0) {
        pr_redis_snap_done(pr, &pr->wsnap);
        return;
    }
    /* its entities are dirty again; the writer's connection goes, and the
     * loop's with it, so the reconnect checks the dataset (pr_redis_ensure) */
    char what[192];
    snprintf(what, sizeof what, "write on the writer's connection (%s)",
             pr->wredis && pr->wredis->err ? pr->wredis->errstr : "an error reply");
    pr_redis_snap_drop(pr, &pr->wsnap);
    if (pr->wredis) redisFree(pr->wredis);
    pr->wredis = NULL;
    pr_redis_fail(pr, what);
}

int pr_quiesce(pr_ctx_t *pr) {
    int rc = pr_commit_drain(pr);
    pr_writer_finish(pr);
    return rc;
}

void pr_commit_dispatch(pr_ctx_t *pr, rd_kafka_topic_partition_list_t *offsets,
                        const int64_t first[][PR_N_SRC], const bool *touched) {
    memcpy(pr->txn.first, first, PR_MAX_PARTITIONS * sizeof *pr->txn.first);
    memcpy(pr->txn.touched, touched, sizeof pr->txn.touched);
    pr->txn.producer = pr->producer;
    pr->txn.offsets = offsets;
    pr->txn.gm = rd_kafka_consumer_group_metadata(pr->consumer);
    pr->txn.err = NULL;
    pr->dispatched_ms = px_mono_ms();
    worker_submit(pr, &pr->committer);
}

void pr_fatal(pr_ctx_t *pr, const char *why) {
    PX_ERROR(PR_COMP, "stopping: the processor cannot go on (its supervisor restarts it)", "why=\"%s\"", why);
    pr->exit_code = 1;
    pr->stopping = true;
    uv_stop(pr->loop);
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

bool pr_commit_ended(pr_ctx_t *pr) { return worker_ended(pr, &pr->committer); }

int pr_commit_wait(pr_ctx_t *pr) {
    if (!pr->committer.busy) return 0;
    worker_wait(pr, &pr->committer, 2); /* the commit phase: the loop's wait only */
    return pr->txn.err ? PX_EBACKEND : 0;
}

int pr_commit_drain(pr_ctx_t *pr) {
    if (!pr->committer.busy) return 0;
    pr_commit_wait(pr);
    pr->committer.busy = false;
    rd_kafka_error_t *e = pr->txn.err;
    pr->txn.err = NULL;
    rd_kafka_topic_partition_list_destroy(pr->txn.offsets);
    rd_kafka_consumer_group_metadata_destroy(pr->txn.gm);
    pr->txn.offsets = NULL;
    pr->txn.gm = NULL;
    if (!e) {
        px_counter_add(pr->m_batches, 1);
        if (pr->txn.snap.ready) pr_writer_submit(pr, &pr->txn.snap); /* a failure leaves them dirty */
        return 0;
    }
    px_counter_add(pr->m_aborts, 1);
    bool fatal = rd_kafka_error_is_fatal(e);
    PX_WARN(PR_COMP, "transaction failed: aborting and rewinding", "err=\"%s\" fatal=%d", rd_kafka_error_string(e),
            fatal);
    rd_kafka_error_destroy(e);
    /* the writer's snapshot names entities the rewind may drop: it ends
     * first. The failed batch's entities are dirty again before the rewind
     * drops those of its partitions: the others hold committed states of
     * earlier batches */
    pr_writer_finish(pr);
    pr_redis_snap_drop(pr, &pr->txn.snap);
    if (fatal) pr_fatal(pr, "the transaction failed for good");
    else pr_txn_abort(pr, pr->txn.producer);
    /* fatal or not, its folds leave memory: a flush at the stop must not
     * write them (it did, in review) */
    pr_batch_rewind_parts(pr, (const int64_t(*)[PR_N_SRC])pr->txn.first, pr->txn.touched);
    return PX_EBACKEND;
}
