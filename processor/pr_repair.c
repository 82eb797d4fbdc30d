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
 */
#include <stdlib.h>

#include "pr.h"
#include "px_log.h"

/* Where each source of partition p starts (into seek) and the repair
 * bound until[s] (-1: none). Every source is sought explicitly, the ones
 * without a gap to their committed offset too: a record delivered (and
 * dropped) between the assignment and the check moved the position on,
 * and resuming from there would skip it. */
static void repair_positions(pr_ctx_t *pr, int32_t p, const int64_t committed[PR_N_SRC],
                             const int64_t applied[PR_N_SRC], rd_kafka_topic_partition_list_t *seek,
                             int64_t until[PR_N_SRC]) {
    const pr_part_t *pp = &pr->parts[p];
    for (int s = 0; s < PR_N_SRC; s++) {
        int64_t c = committed[s]; /* < 0: nothing committed yet */
        int64_t a = pp->full_rebuild ? -1 : applied[s];
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
            "partition=%d committed=%lld,%lld,%lld,%lld applied=%lld,%lld,%lld,%lld rebuild=%d", p,
            (long long)committed[0], (long long)committed[1], (long long)committed[2], (long long)committed[3],
            (long long)applied[0], (long long)applied[1], (long long)applied[2], (long long)applied[3],
            pp->full_rebuild);
}

/* The check of partition p. 0, or PX_EBACKEND: run it again later. */
static int repair_one(pr_ctx_t *pr, int32_t p) {
    pr_part_t *pp = &pr->parts[p];
    int64_t applied[PR_N_SRC], committed[PR_N_SRC], until[PR_N_SRC];
    if (pr_redis_applied(pr, p, applied) || pr_kafka_committed(pr, p, committed)) return PX_EBACKEND;
    rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(PR_N_SRC);
    repair_positions(pr, p, committed, applied, seek, until);
    int rc = pr_kafka_seek_sources(pr, p, seek);
    rd_kafka_topic_partition_list_destroy(seek);
    if (rc) return rc;
    /* records still waiting in the retry topics: their entities' order */
    if (pr_kafka_scan_retries(pr, p, committed)) {
        pr_table_drop_partition(pr, p); /* half-scanned: start clean next time */
        return PX_EBACKEND;
    }
    for (int s = 0; s < PR_N_SRC; s++) {
        pp->repair_until[s] = until[s];
        if (until[s] >= 0) pp->next[s] = pp->full_rebuild ? -1 : applied[s]; /* Redis holds all below (-1: none) */
    }
    repair_log(pr, p, committed, applied);
    if (repair_deadlines(pr, p)) return PX_EBACKEND;
    pp->repair_check = false;
    pp->full_rebuild = false;
    pp->seek_refused = false;
    for (int s = 0; s < PX_SRC__COUNT; s++) pp->retry_due[s] = 0;
    pr_kafka_resume_part(pr, p);
    return 0;
}

int pr_repair_checks(pr_ctx_t *pr) {
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        pr_part_t *pp = &pr->parts[p];
        if (!pp->assigned || !pp->repair_check) continue;
        /* a check may drop the partition's entities: nothing may be in
         * flight that names them (rare: after an assignment or a rewind) */
        if (pr_quiesce(pr)) return PX_EBACKEND;
        if (repair_one(pr, p)) return PX_EBACKEND;
    }
    return 0;
}
