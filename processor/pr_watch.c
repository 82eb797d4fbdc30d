/*
 * pr_watch.c - the partitions' watchdog: does every partition this
 * instance owns make progress?
 *
 * A partition's lag, per input topic, is its end as the broker reports
 * it (read_committed: the last stable offset, asked every second by a
 * helper thread on a client of its own, pr_kafka_query_ends) minus how
 * far the consumer reached (the next offset to fold, or librdkafka's
 * fetch position once nothing waits in its queue: that one moves past
 * transaction markers and aborted records). Retry topics are left out:
 * their records wait on purpose. A partition with lag whose positions
 * did not move for processor.stall_ms is stalled: /readyz says
 * not-ready and names it (pr_watch_ready), the stall is counted and
 * logged once. A lag that cannot be known (the fetcher never started, a
 * repair check that cannot finish) counts as lag.
 *
 * While a dependency is away (Redis, the schema registry: every
 * partition paused on purpose, not-ready already) the clocks do not run.
 * A stall past processor.stall_exit_ms is one the processor cannot leave
 * by itself: it stops with exit code 1 for its supervisor to restart it.
 */
#include <inttypes.h>
#include <stdio.h>

#include "pr.h"
#include "pr_kafka.h"
#include "px_log.h"
#include "px_time.h"

#define WATCH_PERIOD_MS 1000 /* the ends are asked this often */
#define JUDGE_PERIOD_MS 250  /* the partitions are judged this often */
#define LAG_UNKNOWN INT64_MAX

/* The helper thread's job: the ends of q's partitions (the client and
 * q are the job's until it is done). */
static void watch_job(pr_ctx_t *pr) { pr->wd.rc = pr_kafka_query_ends(pr->wd.client, pr->wd.q, 2000); }

int pr_watch_start(pr_ctx_t *pr, char *errstr, size_t errstr_size) {
    pr_watch_t *wd = &pr->wd;
    wd->m_renewals = px_metrics_counter(pr->metrics, "presence_processor_consumer_renewals_total",
                                        "consumers replaced after librdkafka fenced them under their own name", NULL);
    wd->m_stalls = px_metrics_counter(pr->metrics, "presence_processor_stalls_total",
                                      "owned partitions found stalled: lag and no progress for processor.stall_ms",
                                      NULL);
    wd->m_stalled = px_metrics_gauge(pr->metrics, "presence_processor_partitions_stalled",
                                     "owned partitions stalled now", NULL);
    wd->m_owned = px_metrics_gauge(pr->metrics, "presence_processor_partitions",
                                   "partition numbers this instance owns", NULL);
    if (pr_worker_start(pr, &wd->w, watch_job))
        return px_errf(PX_EIO, errstr, errstr_size, "watchdog thread not started");
    return 0;
}

void pr_watch_stop(pr_ctx_t *pr) {
    pr_watch_t *wd = &pr->wd;
    if (wd->q) rd_kafka_topic_partition_list_destroy(wd->q);
    wd->q = NULL;
    if (wd->client) {
        rd_kafka_consumer_close(wd->client);
        rd_kafka_destroy(wd->client);
    }
    wd->client = NULL;
}

/* The thread's answer into the partitions' ends (a partition not
 * answered keeps its last known end). */
static void take(pr_ctx_t *pr) {
    pr_watch_t *wd = &pr->wd;
    const char *why = NULL;
    for (int i = 0; i < wd->q->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &wd->q->elems[i];
        int s = pr_topic_src(pr, tp->topic);
        if (tp->err) why = rd_kafka_err2name(tp->err);
        else if (s < PX_SRC__COUNT && pr->parts[tp->partition].assigned) pr->parts[tp->partition].end[s] = tp->offset;
    }
    if (wd->rc) {
        px_counter_add(pr->m_kafka_err, 1);
        wd->fails++;
        if ((wd->fails & (wd->fails - 1)) == 0)
            PX_WARN(PR_COMP, "cannot read the partitions' ends; will retry", "unanswered=%d err=%s failures=%u",
                    wd->rc, why ? why : "none", wd->fails);
    } else {
        if (wd->fails) PX_INFO(PR_COMP, "the partitions' ends answer again", "failures=%u", wd->fails);
        wd->fails = 0;
    }
    rd_kafka_topic_partition_list_destroy(wd->q);
    wd->q = NULL;
}

/* Hand the thread the owned partitions' input topics. */
static void ask(pr_ctx_t *pr, int64_t now) {
    pr_watch_t *wd = &pr->wd;
    wd->due_at = now + WATCH_PERIOD_MS;
    if (!wd->client && !(wd->client = pr_kafka_client_new(pr, "presence-processor-watch", NULL, true))) {
        wd->due_at = now + 5000;
        return;
    }
    rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(4 * (pr->kc.n_owned + 1));
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        if (pr->parts[p].assigned)
            for (int s = 0; s < PX_SRC__COUNT; s++) rd_kafka_topic_partition_list_add(q, pr->kc.topics[s], p);
    if (!q->cnt) {
        rd_kafka_topic_partition_list_destroy(q);
        return;
    }
    wd->q = q;
    pr_worker_submit(pr, &wd->w);
}

/* Partition p's lag over the input topics (LAG_UNKNOWN when it cannot be
 * known and may be there) and the sum of its positions; each topic's
 * known lag goes to its gauge. */
static int64_t part_lag(pr_ctx_t *pr, int32_t p, int64_t *sig) {
    const pr_part_t *pp = &pr->parts[p];
    int64_t lag = 0;
    *sig = 0;
    for (int s = 0; s < PX_SRC__COUNT; s++) {
        int64_t reach = pp->next[s];
        if (pp->fetchq[s] == 0 && pp->fetch_next[s] > reach) reach = pp->fetch_next[s];
        *sig += reach + 1;
        int64_t l;
        if (pp->end[s] >= 0 && reach >= 0) l = pp->end[s] > reach ? pp->end[s] - reach : 0;
        else l = pp->end[s] > 0 || pp->repair_check ? LAG_UNKNOWN : 0;
        if (l != LAG_UNKNOWN) {
            char labels[PX_CONF_STR_MAX * 2 + 64];
            snprintf(labels, sizeof labels, "topic=\"%s\",partition=\"%d\"", pr->kc.topics[s], p);
            px_gauge_set(px_metrics_gauge(pr->metrics, "presence_processor_consumer_lag",
                                          "records between the consumer's reach and the partition's end "
                                          "(read_committed), asked of the broker every second", labels),
                         l);
        }
        lag = lag == LAG_UNKNOWN || l == LAG_UNKNOWN ? LAG_UNKNOWN : lag + l;
    }
    return lag;
}

/* Judge partition p: moved, no lag, newly stalled or still stalled.
 * Returns how long it has been stalled (0: not). */
static int64_t judge_one(pr_ctx_t *pr, int32_t p, int64_t now, bool clocks) {
    pr_part_t *pp = &pr->parts[p];
    int64_t sig, lag = part_lag(pr, p, &sig);
    pp->lag = lag == LAG_UNKNOWN ? -1 : lag;
    if (!clocks || lag == 0 || sig != pp->progress_sig) {
        if (pp->stalled)
            PX_INFO(PR_COMP, "partition moves again", "partition=%d stalled_ms=%lld", p,
                    (long long)(now - pp->progress_at));
        pp->progress_sig = sig;
        pp->progress_at = now;
        pp->stalled = false;
        return 0;
    }
    if (now - pp->progress_at < pr->cfg.stall_ms) return 0;
    if (!pp->stalled) {
        pp->stalled = true;
        px_counter_add(pr->wd.m_stalls, 1);
        PX_WARN(PR_COMP, "partition stalled: records wait and nothing moves (not ready)",
                "partition=%d lag=%lld for_ms=%lld checking=%d", p, (long long)pp->lag,
                (long long)(now - pp->progress_at), pp->repair_check);
    }
    return now - pp->progress_at;
}

static void judge(pr_ctx_t *pr, int64_t now) {
    /* a dependency away pauses every partition on purpose (not ready
     * already): no clock runs meanwhile */
    bool clocks = pr_redis_up(pr) && !pr->paused && !pr->reg.down;
    int64_t worst = 0, n = 0;
    int32_t worst_p = -1;
    for (int32_t p = 0; p < PR_MAX_PARTITIONS; p++) {
        if (!pr->parts[p].assigned) continue;
        int64_t st = judge_one(pr, p, now, clocks);
        n += st > 0;
        if (st > worst) {
            worst = st;
            worst_p = p;
        }
    }
    px_gauge_set(pr->wd.m_stalled, n);
    px_gauge_set(pr->wd.m_owned, pr->kc.n_owned);
    if (pr->cfg.stall_exit_ms && worst >= pr->cfg.stall_exit_ms && !pr->stopping) {
        char why[160];
        snprintf(why, sizeof why, "partition %d made no progress for %lld ms with records waiting (lag %lld)", worst_p,
                 (long long)worst, (long long)pr->parts[worst_p].lag);
        pr_fatal(pr, why);
    }
}

/* A consumer librdkafka gave up on. Fenced by its own instance name, it
 * is most likely its own doing: librdkafka rejoins a static member whose
 * session timed out locally (the group's coordinator away longer than
 * the session, as when the broker that was the coordinator dies) with a
 * new member id, and the old id's requests then find it fenced. Such a
 * consumer is replaced once (pr_kafka_renew_consumer); fenced again
 * within PR_RENEW_WINDOW_MS, another instance runs under the same name,
 * and this one stops, as on any other fatal error. */
#define PR_RENEW_WINDOW_MS 15000
static void consumer_failed(pr_ctx_t *pr, rd_kafka_resp_err_t ferr, const char *why, int64_t now) {
    char msg[PX_CONF_STR_MAX + 1024];
    pr_watch_t *wd = &pr->wd;
    bool again = wd->renewed_at && now - wd->renewed_at < PR_RENEW_WINDOW_MS;
    if (ferr == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID && !again) {
        PX_WARN(PR_COMP, "the consumer was fenced under its own name: replacing it", "instance=%s reason=\"%s\"",
                pr->cfg.instance, why);
        px_counter_add(wd->m_renewals, 1);
        wd->renewed_at = now;
        char err[256];
        if (pr_kafka_renew_consumer(pr, err, sizeof err) == 0) return;
        snprintf(msg, sizeof msg, "a new consumer could not be made: %s", err);
    } else if (ferr == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID) {
        snprintf(msg, sizeof msg, "the consumer was fenced twice within %d s: another instance runs as '%s'? (%s)",
                 PR_RENEW_WINDOW_MS / 1000, pr->cfg.instance, why);
    } else {
        snprintf(msg, sizeof msg, "the consumer failed for good: %s", why);
    }
    pr_fatal(pr, msg);
}

void pr_watch_tick(pr_ctx_t *pr) {
    pr_watch_t *wd = &pr->wd;
    int64_t now = px_mono_ms();
    /* a consumer librdkafka gave up on (e.g. fenced: another instance
     * took its name) says so in a message, not always in the error
     * callback: it never consumes again */
    int64_t fault = pr->cfg.fault_consumer_fenced_ms;
    if (fault && pr->kc.consumer_made_at && now - pr->kc.consumer_made_at >= fault) {
        pr->kc.consumer_made_at = 0;
        PX_WARN(PR_COMP, "fault.consumer_fenced_ms: the consumer is fenced (testing only)", NULL);
        rd_kafka_test_fatal_error(pr->kc.consumer, RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID, "fault.consumer_fenced_ms");
    }
    char why[512];
    rd_kafka_resp_err_t ferr = pr->kc.consumer ? rd_kafka_fatal_error(pr->kc.consumer, why, sizeof why) : 0;
    if (ferr && !pr->stopping) {
        consumer_failed(pr, ferr, why, now);
        return;
    }
    if (wd->w.busy && pr_worker_ended(pr, &wd->w)) { /* its lock orders the job's writes before these reads */
        wd->w.busy = false;
        take(pr);
    }
    if (!wd->w.busy && now >= wd->due_at) ask(pr, now);
    if (now < wd->judge_at) return;
    wd->judge_at = now + JUDGE_PERIOD_MS;
    judge(pr, now);
}

bool pr_watch_ready(pr_ctx_t *pr, px_buf_t *why) {
    if (!pr->kc.owned) {
        if (why) px_buf_puts(why, " partitions=none group=joining");
        return false;
    }
    bool ready = true;
    for (int32_t p = 0, n = 0; why && p < PR_MAX_PARTITIONS; p++)
        if (pr->parts[p].assigned) px_buf_printf(why, "%s%d", n++ ? "," : " partitions=", p);
    if (why && !pr->kc.n_owned) px_buf_puts(why, " partitions=none");
    for (int pass = 0; pass < 2; pass++) {
        bool first = true;
        for (int32_t p = 0; p < PR_MAX_PARTITIONS; p++) {
            const pr_part_t *pp = &pr->parts[p];
            if (!pp->assigned || !(pass ? pp->stalled : pp->repair_check)) continue;
            ready = false;
            if (!why) continue;
            px_buf_printf(why, "%s%d", first ? (pass ? " stalled=" : " checking=") : ",", p);
            if (pass) px_buf_printf(why, "(lag=%lld,for_ms=%lld)", (long long)pp->lag,
                                    (long long)(px_mono_ms() - pp->progress_at));
            first = false;
        }
    }
    return ready;
}
