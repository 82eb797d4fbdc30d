/*
 * pr_repair.c - the repair check of a partition number, run when it was
 * assigned, rewound, or Redis lost its data (pr_part_t.repair_check), while
 * its sources are paused.
 *
 * Committed offsets C, applied marks A (what Redis holds, per source):
 * where A < C, an earlier owner committed records whose Redis writes may
 * be missing, so every source is sought to A and [A, C) is folded again in
 * repair mode (written, nothing produced, not part of the offsets). Then
 * the retry records still waiting rebuild their entities' order, the
 * entities with pending deadlines are loaded (their timers live here now),
 * and the partition resumes. docs/exactly-once.md, "Rebalances".
 *
 * The checks due in a turn run as one pass: the committed offsets in one
 * request, the seeks in one call, the retry topics' ends in one query,
 * so partitions assigned together do not queue behind each other. A
 * partition whose check fails (its offsets not stable yet, a leader
 * away) stays paused and is checked again after a backoff (100 ms
 * doubling to 1 s); the others resume.
 */
#include <stdlib.h>

#include "pr.h"
#include "pr_kafka.h"
#include "px_log.h"
#include "px_time.h"

/* Where each source of partition p starts (into seek) and the repair
 * bound until[s] (-1: none). Every source is sought explicitly, the ones
 * without a gap to their committed offset too: a record delivered (and
 * dropped) between the assignment and the check moved the position on,
 * and resuming from there would skip it. */
static void repair_positions(pr_ctx_t *pr, int32_t p, const int64_t committed[PR_N_SRC],
                             const int64_t applied[PR_N_SRC], rd_kafka_topic_partition_list_t *seek,
                             int64_t until[PR_N_SRC]) {
    for (int s = 0; s < PR_N_SRC; s++) {
        int64_t c = committed[s]; /* < 0: nothing committed yet */
        int64_t a = applied[s];
        int64_t from = c >= 0 ? c : RD_KAFKA_OFFSET_BEGINNING;
        until[s] = -1;
        if (c > 0 && a < c) { /* fold [a, c) again, emitting nothing */
            until[s] = c;
            from = a < 0 ? RD_KAFKA_OFFSET_BEGINNING : a;
        }
        rd_kafka_topic_partition_list_add(seek, pr->kc.topics[s], p)->offset = from;
    }
}

/* Load the entities of partition p with pending deadlines that are not in
 * memory. 0 or PX_EBACKEND (those just added are dropped with the
 * partition's others: a later check would trust their empty states). */
static int repair_deadlines(pr_ctx_t *pr, int32_t p) {
    px_key_t *keys = NULL;
    size_t nk = 0;
    if (pr_redis_deadline_keys(pr, p, &keys, &nk)) return PX_EBACKEND;
    pr_entity_t **ents = calloc(nk ? nk : 1, sizeof *ents);
    size_t ne = 0;
    for (size_t i = 0; ents && i < nk; i++)
        if (!pr_table_find(pr, &keys[i])) {
            pr_entity_t *e = pr_table_add(pr, &keys[i], p);
            if (e) ents[ne++] = e;
        }
    int rc = ne ? pr_redis_load(pr, ents, ne) : 0;
    free(ents);
    free(keys);
    if (rc != PX_EBACKEND) return 0;
    pr_table_drop_partition(pr, p);
    return PX_EBACKEND;
}

static void repair_log(pr_ctx_t *pr, int32_t p, const int64_t committed[PR_N_SRC], const int64_t applied[PR_N_SRC]) {
    const pr_part_t *pp = &pr->parts[p];
    for (int s = 0; s < PR_N_SRC; s++)
        if (pp->repair_until[s] >= 0)
            PX_INFO(PR_COMP, "repairing", "topic=%s partition=%d from=%lld to=%lld", pr->kc.topics[s], p,
                    (long long)pp->next[s], (long long)pp->repair_until[s]);
    PX_INFO(PR_COMP, "repair check",
            "partition=%d committed=%lld,%lld,%lld,%lld applied=%lld,%lld,%lld,%lld", p,
            (long long)committed[0], (long long)committed[1], (long long)committed[2], (long long)committed[3],
            (long long)applied[0], (long long)applied[1], (long long)applied[2], (long long)applied[3]);
}

/* A failed check: run again after a delay doubling from 100 ms to 1 s. */
static void check_failed(pr_ctx_t *pr, int32_t p) {
    pr_part_t *pp = &pr->parts[p];
    pp->check_fails++;
    pp->check_backoff_ms = pp->check_backoff_ms ? pp->check_backoff_ms * 2 : 100;
    if (pp->check_backoff_ms > 1000) pp->check_backoff_ms = 1000;
    pp->check_at = px_mono_ms() + pp->check_backoff_ms;
}

/* The rest of the check of partition p once its sources were sought:
 * the retry records still waiting, the entities with deadlines, then
 * the partition resumes. 0, or PX_EBACKEND: run it again later. */
static int repair_finish(pr_ctx_t *pr, int32_t p, const int64_t committed[PR_N_SRC],
                         const int64_t applied[PR_N_SRC], const int64_t until[PR_N_SRC],
                         const int64_t ends[PX_SRC__COUNT]) {
    pr_part_t *pp = &pr->parts[p];
    /* records still waiting in the retry topics: their entities' order */
    if (pr_kafka_scan_retries(pr, p, committed, ends)) {
        pr_table_drop_partition(pr, p); /* half-scanned: start clean next time */
        return PX_EBACKEND;
    }
    for (int s = 0; s < PR_N_SRC; s++) {
        pp->repair_until[s] = until[s];
        if (until[s] >= 0) pp->next[s] = applied[s]; /* Redis holds all below (-1: none) */
    }
    repair_log(pr, p, committed, applied);
    if (repair_deadlines(pr, p)) return PX_EBACKEND;
    if (pp->check_fails)
        PX_INFO(PR_COMP, "repair check done after failures", "partition=%d failures=%u", p, pp->check_fails);
    pp->repair_check = false;
    pp->seek_refused = false;
    pp->check_fails = 0;
    pp->check_backoff_ms = pp->check_at = 0;
    for (int s = 0; s < PX_SRC__COUNT; s++) pp->retry_due[s] = 0;
    pr_kafka_resume_part(pr, p);
    return 0;
}

/* What the checks of one pass learn, per partition due. */
typedef struct check_pass {
    int n;
    int32_t ps[PR_MAX_PARTITIONS];
    bool ok[PR_MAX_PARTITIONS];       /* per partition number: still on course */
    bool read[PR_MAX_PARTITIONS];     /* per index: the committed offsets were read */
    int64_t committed[PR_MAX_PARTITIONS][PR_N_SRC], applied[PR_MAX_PARTITIONS][PR_N_SRC];
    int64_t until[PR_MAX_PARTITIONS][PR_N_SRC], ends[PR_MAX_PARTITIONS][PX_SRC__COUNT];
} check_pass_t;

/* The questions of the checks asked together for every partition due:
 * the committed offsets in one request, the seeks in one call, the retry
 * topics' ends in one query; a partition that fails is dropped from the
 * pass (ok false), the others go on. */
static void check_ask(pr_ctx_t *pr, check_pass_t *c) {
    pr_kafka_committed(pr, c->ps, c->n, c->committed, c->read);
    rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(c->n * PR_N_SRC);
    for (int i = 0; i < c->n; i++) {
        int32_t p = c->ps[i];
        c->ok[p] = c->read[i] && pr_redis_applied(pr, p, c->applied[i]) == 0;
        if (c->ok[p]) repair_positions(pr, p, c->committed[i], c->applied[i], seek, c->until[i]);
    }
    if (seek->cnt) pr_kafka_seek_sources(pr, seek, c->ok);
    rd_kafka_topic_partition_list_destroy(seek);
    int32_t asked[PR_MAX_PARTITIONS];
    int m = 0;
    for (int i = 0; i < c->n; i++)
        if (c->ok[c->ps[i]]) asked[m++] = c->ps[i];
    int64_t (*ends)[PX_SRC__COUNT] = calloc(m ? (size_t)m : 1, sizeof *ends);
    if (ends && m) pr_kafka_retry_ends(pr, asked, m, ends);
    for (int i = 0, j = 0; i < c->n; i++) {
        int32_t p = c->ps[i];
        if (!c->ok[p]) continue;
        for (int fs = 0; fs < PX_SRC__COUNT; fs++) {
            c->ends[i][fs] = ends ? ends[j][fs] : -1;
            if (c->ends[i][fs] < 0) c->ok[p] = false;
        }
        j++;
    }
    free(ends);
}

int pr_repair_checks(pr_ctx_t *pr) {
    int64_t now = px_mono_ms();
    bool due = false;
    for (int p = 0; p < PR_MAX_PARTITIONS && !due; p++)
        due = pr->parts[p].assigned && pr->parts[p].repair_check && pr->parts[p].check_at <= now;
    if (!due) return 0;
    /* a check may drop the partition's entities: nothing may be in
     * flight that names them (rare: after an assignment or a rewind) */
    pr_doing(pr, "the repair checks: ending what is in flight");
    if (pr_quiesce(pr)) return PX_EBACKEND;
    check_pass_t *c = calloc(1, sizeof *c); /* too large for the stack; rare */
    if (!c) return PX_ENOMEM;
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        const pr_part_t *pp = &pr->parts[p];
        if (pp->assigned && pp->repair_check && pp->check_at <= now) c->ps[c->n++] = p;
    }
    /* after a rebalance: a departed instance's open transaction ends first */
    pr_doing(pr, "the repair checks: the departed instances, the transactions' initialisation");
    pr_kafka_peers(pr, c->ps, c->n);
    if (pr->stopping) {
        free(c);
        return PX_EBACKEND;
    }
    pr_doing(pr, "the repair checks: committed offsets, applied marks, seeks, retry topics' ends");
    check_ask(pr, c);
    pr_doing(pr, "the repair checks: retry scans, deadlines");
    for (int i = 0; i < c->n; i++) {
        int32_t p = c->ps[i];
        if (!c->ok[p] || repair_finish(pr, p, c->committed[i], c->applied[i], c->until[i], c->ends[i]))
            check_failed(pr, p);
    }
    free(c);
    return 0;
}
