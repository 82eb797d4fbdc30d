/*
 * pr_loop.c - the turn: what each wake of the loop runs (the consumer
 * queue, the 100 ms timer, a helper thread that finished, the idle handle
 * while batches find work). A turn finishes what the helper threads
 * ended, keeps Redis and the partitions' repair checks in order, then
 * runs at most one batch through its stages:
 *
 *   collect  pr_batch_collect           records from the consumer
 *   fold     stage_fold                 pr_batch_fold, and while the
 *                                       previous commit is in flight (up to
 *                                       batch.commit_interval_ms after it
 *                                       was dispatched) collect and fold
 *                                       more, publishing lock decisions
 *   seal     stage_seal                 retry holds, EXPIREs; the commit
 *                                       in flight ends; the batch's fate
 *                                       (pr_batch_state.h) decides
 *   commit   stage_commit               the transaction to the committer
 *   write    stage_write                the Redis writes: deferred while
 *                                       behind, else a snapshot the writer
 *                                       sends once the commit ended
 *
 * One batch per turn, so the ops endpoint and signals are served between
 * batches. A batch that does not commit is dropped: its transaction
 * aborted, its partitions rewound to their repair checks
 * (docs/exactly-once.md).
 */
#include <stdlib.h>
#include <unistd.h>

#include "pr_batch.h"
#include "pr_kafka.h"
#include "px_log.h"
#include "px_time.h"

/* Did Redis reconnect, or lose its dataset, since gen? */
static bool redis_moved(const pr_ctx_t *pr, uint64_t gen) { return gen != pr->rd.gen || pr->rd.rebuild_pending; }

/* Write what is dirty now, after what is in flight ended (its states are
 * committed then). 0 or PX_EBACKEND (a failure pauses at the next turn). */
static int flush_now(pr_ctx_t *pr) {
    pr_quiesce(pr);
    int rc = pr_writer_flush(pr);
    if (rc == 0) pr->flush_at = 0; /* nothing deferred any more */
    return rc;
}

/* The time a batch spends in each stage, for the phase counters. */
typedef struct stage_times {
    int64_t t0_ms, load_us, fold_us, sealed_us;
} stage_times_t;

typedef enum { FOLDED, FOLD_DROPPED, FOLD_REBALANCED } fold_end_t;

/* A record's schema could not be fetched: the batch was dropped (rewound);
 * every partition waits a capped, doubling backoff (0.5 s to 10 s), then
 * the records are taken again. Not-ready meanwhile (main.c). */
static void registry_failed(pr_ctx_t *pr) {
    bool first = pr->reg.backoff_ms == 0;
    pr->reg.backoff_ms = first ? 500 : pr->reg.backoff_ms * 2 > 10000 ? 10000 : pr->reg.backoff_ms * 2;
    pr->reg.retry_at = px_mono_ms() + pr->reg.backoff_ms;
    px_counter_add(pr->m_registry_err, 1);
    if (first) PX_WARN(PR_COMP, "schema registry unavailable: waiting, records rewound", "err=\"%s\"", pr->reg.why);
}

static void registry_back(pr_ctx_t *pr) {
    PX_INFO(PR_COMP, "schema registry answers again", "waited_ms_last=%lld", (long long)pr->reg.backoff_ms);
    pr->reg.down = false;
    pr->reg.backoff_ms = 0;
}

/* Fold what was collected; while the batch may grow, collect and fold
 * more. Ends when it is full, failed, the loop stops, the previous commit
 * failed, or (no commit in flight) the commit interval passed. */
static fold_end_t stage_fold(pr_ctx_t *pr, batch_t *b, uint64_t gen, stage_times_t *t) {
    for (size_t from = 0;;) {
        int64_t t_range = px_mono_us(), t_loaded = t_range;
        b->t_collect_us = t_range;
        pr_batch_state_fold(&b->st);
        if (pr_batch_fold(pr, b, from, &t_loaded)) {
            pr_batch_drop(pr, b);
            if (pr->reg.down) registry_failed(pr);
            return FOLD_DROPPED;
        }
        if (pr->reg.down && from == 0) registry_back(pr);
        /* Redis reconnected meanwhile: states may have been loaded from a
         * dataset that is gone */
        if (redis_moved(pr, gen)) pr_batch_state_fail(&b->st, PR_FATE_REDIS_LOST);
        pr_batch_decisions(pr, b);
        t->load_us += t_loaded - t_range;
        t->fold_us += px_mono_us() - t_loaded;
        from = b->n;
        if (!pr_batch_may_grow(&b->st) || pr->stopping || b->n >= (size_t)pr->cfg.batch_max) return FOLDED;
        /* a commit that ended meanwhile is finished now, so its writes go
         * to the writer without waiting for this seal */
        if (pr_commit_busy(pr) && pr_commit_ended(pr) && pr_commit_drain(pr) != 0) {
            pr_batch_state_fail(&b->st, PR_FATE_PREV_FAILED);
            return FOLDED;
        }
        if (!pr_commit_busy(pr) && pr_commit_age_ms(pr) >= pr->cfg.commit_interval_ms) return FOLDED;
        if (!pr_batch_collect(pr, b, 1)) {
            pr_batch_drop(pr, b);
            return FOLD_REBALANCED;
        }
    }
}

/* Seal: the fold's last acts, then the transaction in flight ends first
 * (this batch was folded on top of it; finishing it sends its writes), the
 * held records go out, and the batch's fate decides. True when the batch
 * may commit; false when it was dropped (a failed previous transaction was
 * rewound: this batch builds on what did not commit). */
static bool stage_seal(pr_ctx_t *pr, batch_t *b, uint64_t gen) {
    pr_batch_finish_fold(pr, b);
    if (redis_moved(pr, gen)) pr_batch_state_fail(&b->st, PR_FATE_REDIS_LOST);
    pr_batch_state_seal(&b->st); /* from here, its states are written only once committed */
    if (pr_commit_drain(pr) != 0) pr_batch_state_fail(&b->st, PR_FATE_PREV_FAILED);
    int64_t t_release = px_mono_us();
    if (pr_batch_may_emit(&b->st)) pr_txn_release(pr, &b->txn, &b->st);
    px_counter_add(pr->m_phase_us[PR_PHASE_COMMIT], (uint64_t)(px_mono_us() - t_release));
    pr_seal_action_t a = pr_batch_seal_action(b->st.fate);
    if (a.commit) return true;
    if (a.count_abort) px_counter_add(pr->m_aborts, 1);
    if (b->st.fate == PR_FATE_PRODUCE_FAILED)
        PX_WARN(PR_COMP, "transaction failed: aborting and rewinding", "err=\"%s\"", a.why);
    else if (a.why && b->n)
        PX_INFO(PR_COMP, a.why, "records=%zu", b->n);
    pr_batch_drop(pr, b);
    return false;
}

/* Commit: the offsets and the commit go to the committer thread; the next
 * batch is collected and folded meanwhile. A batch that produced nothing
 * has no transaction. */
static void stage_commit(pr_ctx_t *pr, batch_t *b) {
    if (b->txn.open) {
        pr_commit_dispatch(pr, pr_batch_offsets(pr, b), (const int64_t(*)[PR_N_SRC])b->first, b->touched);
        pr_txn_handed(pr, &b->txn);
    }
    pr_batch_free_msgs(b);
    pr_batch_state_close(&b->st);
}

/* Write: the committed batches' effects, at once when caught up; while
 * behind, deferred up to batch.flush_defer_ms so an entity changed by many
 * batches is written once (docs/exactly-once.md, "Deferred writes"; safe
 * because the applied marks move only with the writes). With this batch's
 * transaction in flight, the writes are built now, from the states it
 * committed, and the writer sends them once it ended; caught up, a flush
 * of more than PR_SNAP_DIRECT entities (the end of a backlog) is streamed
 * on the loop after the commit instead, its building overlapping Redis's
 * work (a whole snapshot first made the two serial). */
static void stage_write(pr_ctx_t *pr, bool behind) {
    if (!behind || !pr->cfg.flush_defer_ms) pr->flush_at = 0;
    else if (!pr->flush_at) pr->flush_at = px_mono_ms() + pr->cfg.flush_defer_ms;
    if (px_mono_ms() < pr->flush_at) {
        if (!px_counter_get(pr->m_deferred))
            PX_INFO(PR_COMP, "behind: Redis writes deferred to coalesce (logged once)", "flush_defer_ms=%lld",
                    (long long)pr->cfg.flush_defer_ms);
        px_counter_add(pr->m_deferred, 1);
    } else if (pr_commit_busy(pr) && (behind || pr->tab.n_dirty <= PR_SNAP_DIRECT) && pr_commit_snap(pr) == 0) {
        pr->flush_at = 0;
    } else {
        flush_now(pr);
    }
}

/* One batch through its stages; true if it did any work. */
static bool run_batch(pr_ctx_t *pr, batch_t *b) {
    stage_times_t t = {px_mono_ms(), 0, 0, 0};
    uint64_t gen = pr->rd.gen;
    pr_batch_begin(pr, b);
    if (!pr_batch_collect(pr, b, 0)) { /* eager: all was revoked; the repair checks seek every source */
        pr_batch_free_msgs(b);
        pr_batch_state_close(&b->st);
        return true;
    }
    if (b->n == 0 && pr_heap_next(pr) > px_now_ms()) {
        pr_batch_state_close(&b->st);
        return false;
    }
    fold_end_t f = stage_fold(pr, b, gen, &t);
    if (f != FOLDED) return f == FOLD_REBALANCED;
    if (!stage_seal(pr, b, gen)) return false;
    int64_t t_sealed = px_mono_us();
    /* behind: a full batch, or at least a batch's worth of records waiting */
    bool behind = b->n >= (size_t)pr->cfg.batch_max || pr_kafka_backlog(pr) >= pr->cfg.batch_max;
    stage_commit(pr, b);
    px_counter_add(pr->m_phase_us[PR_PHASE_COMMIT], (uint64_t)(px_mono_us() - t_sealed)); /* + the drains' waits */
    stage_write(pr, behind);
    px_counter_add(pr->m_phase_us[PR_PHASE_LOAD], (uint64_t)t.load_us);
    px_counter_add(pr->m_phase_us[PR_PHASE_FOLD], (uint64_t)t.fold_us);
    px_hist_observe(pr->m_batch_ms, (double)(px_mono_ms() - t.t0_ms));
    return true;
}

/* Redis lost its dataset: nothing built from it may be written into the
 * new one, every owned partition is folded again from the start. */
static void rebuild(pr_ctx_t *pr) {
    pr_commit_forget_snap(pr);
    pr_quiesce(pr); /* the writer's snapshot names entities dropped here */
    pr_kafka_rebuild(pr);
    pr->rd.rebuild_pending = false;
}

/* Redis first: nothing moves while it is away, or while deferred writes
 * that are due fail, or while the schema registry's backoff runs; every
 * partition is paused then (not ready). True when batches may run. */
static bool redis_ready(pr_ctx_t *pr) {
    if (pr_redis_ensure(pr) == 0 && pr->rd.rebuild_pending) rebuild(pr);
    /* deferred writes that are due (or that failed) go first; with a
     * commit in flight they wait for the next seal, which hands them to
     * the writer with that commit */
    if (!pr_redis_up(pr) || (pr->reg.down && px_mono_ms() < pr->reg.retry_at) ||
        (pr->tab.dirty && !pr_commit_busy(pr) && px_mono_ms() >= pr->flush_at && flush_now(pr))) {
        if (!pr->paused) pr_kafka_pause_all(pr);
        pr->paused = true;
        pr_kafka_serve_paused(pr);
        return false;
    }
    if (pr->paused) {
        pr_kafka_resume_checked(pr); /* partitions waiting for their repair check stay paused */
        pr->paused = false;
        PX_INFO(PR_COMP, pr->reg.down ? "trying the schema registry again" : "redis is back: consuming again", NULL);
    }
    return true;
}

static void on_idle(uv_idle_t *h) { pr_loop_turn(h->data); }

/* fault.hang_loop_ms (testing only): the loop thread never comes back, as
 * in a library call that never returns; the guard (pr_guard.c) ends the
 * process. */
static void fault_hang(pr_ctx_t *pr) {
    PX_WARN(PR_COMP, "fault.hang_loop_ms: the loop thread blocks for good (testing only)", NULL);
    pr_doing(pr, "fault.hang_loop_ms (testing only)");
    for (;;) pause();
}

void pr_loop_turn(pr_ctx_t *pr) {
    if (pr->stopping || !pr->kc.consumer) return;
    if (atomic_load(&pr->kc.producer_fatal)) { /* raised on the committer thread (pr_kafka.c on_error) */
        pr->exit_code = 1;
        pr->stopping = true;
        uv_stop(pr->loop);
        return;
    }
    if (pr->cfg.fault_hang_loop_ms && px_mono_ms() - pr->guard.started_ms >= pr->cfg.fault_hang_loop_ms)
        fault_hang(pr);
    pr_doing(pr, "the partitions' watchdog");
    pr_watch_tick(pr);
    if (pr->stopping) return; /* a stall it cannot leave */
    /* a commit or a write that ended while the loop slept */
    pr_doing(pr, "finishing a transaction or a Redis write");
    if (pr_commit_ended(pr)) pr_commit_drain(pr);
    if (pr_writer_ended(pr)) pr_writer_finish(pr);
    /* (records come only from partitions whose check ran, and the first
     * check initialised the transactions: pr_kafka_peers) */
    pr_doing(pr, "Redis");
    if (!redis_ready(pr) || pr_repair_checks(pr)) return;
    pr_kafka_release_retries(pr, px_now_ms());
    batch_t *b = pr_batch_get(pr);
    if (!b) return;
    pr_doing(pr, "a batch");
    bool worked = !pr->stopping && run_batch(pr, b);
    /* caught up (nothing came and no batch's worth waits): deferred writes
     * wait no longer; a turn that merely found the fetch not yet in leaves
     * them to their deadline */
    if (!worked && pr->tab.dirty && pr->flush_at && pr_kafka_backlog(pr) < pr->cfg.batch_max) {
        pr->flush_at = 0;
        pr_doing(pr, "writing deferred Redis writes");
        flush_now(pr);
    }
    pr_doing(pr, "between turns");
    if (worked && !uv_is_active((uv_handle_t *)&pr->idle)) uv_idle_start(&pr->idle, on_idle);
    else if (!worked && uv_is_active((uv_handle_t *)&pr->idle)) uv_idle_stop(&pr->idle);
}

/* ---- callbacks, start and stop --------------------------------------------- */

static void wake(void *arg) { pr_loop_turn(arg); }

/* Inside a rebalance: what is in flight ends first (its offsets are for
 * partitions that may go now; finishing sends its writes; a transaction
 * that cannot reach the brokers ends the processor once it has been in
 * flight for processor.commit_wait_ms: pr_commit_wait). On a revoke,
 * what is committed is written, best effort (a new owner repairs anyway);
 * not while a batch holds folded records: the dirty states and applied
 * marks include them, and Redis may hold only committed ones (that batch
 * is dropped after the rebalance). */
static void on_rebalance(pr_ctx_t *pr, bool assigned) {
    pr_quiesce(pr);
    bool folds = pr->batch && pr_batch_state_holds_folds(&pr->batch->st);
    if (!assigned && pr->tab.dirty && !folds) flush_now(pr);
}

int pr_loop_start(pr_ctx_t *pr, char *errstr, size_t errstr_size) {
    pr->wake = wake;
    pr->kc.on_rebalance = on_rebalance;
    int rc = pr_threads_init(pr, errstr, errstr_size);
    if (!rc) rc = pr_watch_start(pr, errstr, errstr_size);
    if (!rc) rc = pr_commit_start(pr, errstr, errstr_size);
    if (!rc) rc = pr_writer_start(pr, errstr, errstr_size);
    return rc;
}

void pr_loop_unwatch(pr_ctx_t *pr) {
    pr_kafka_unwatch(pr);
    pr_threads_unwatch(pr);
}

void pr_loop_stop(pr_ctx_t *pr) {
    pr_kafka_close_consumer(pr); /* the revoke writes what is committed */
    if (pr->threads.inited) pr_quiesce(pr);
    pr_threads_term(pr);
    pr_watch_stop(pr);
    pr_commit_stop(pr);
    pr_writer_stop(pr);
    pr_kafka_stop(pr);
}
