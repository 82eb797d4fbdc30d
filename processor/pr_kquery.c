/*
 * pr_kquery.c - the consumer edge's questions to the brokers: the ends
 * of partitions, the committed offsets, the seeks of the repair checks
 * and the scan of the retry topics (pr_repair.c and pr_watch.c ask).
 *
 * Each question is bounded by a timeout and answered per partition, so
 * one partition whose leader is away or whose offsets are not stable
 * fails alone. Ends and the retry scan are asked on clients of their own
 * (assign only, never in the group): on the consumer's connections each
 * request would queue behind a fetch long-poll (fetch.wait.max.ms). A
 * leader that moved: librdkafka 2.0 answers these queries from its
 * metadata cache, which only a metadata request refreshes, so a failed
 * query refreshes the client's metadata and the next one asks the new
 * leader. Failures are counted (presence_processor_kafka_errors_total);
 * their log lines are thinned per partition (pr_check_log_due) and the
 * caller retries with a backoff (pr_repair.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pr.h"
#include "pr_kafka.h"
#include "px_headers.h"
#include "px_log.h"
#include "px_time.h"

rd_kafka_t *pr_kafka_client_new(pr_ctx_t *pr, const char *name, const char *group, bool committed) {
    static const char *const d[][2] = {{"bootstrap.servers", "127.0.0.1:9092"}};
    char err[512];
    rd_kafka_conf_t *conf = px_kafka_conf_new_with(d, 1, &pr->kafka_kv, name, err, sizeof err);
    const char *const fixed[][2] = {{"enable.auto.commit", "false"},
                                    {"enable.auto.offset.store", "false"},
                                    {"isolation.level", committed ? "read_committed" : "read_uncommitted"},
                                    {"enable.partition.eof", "true"},
                                    {"group.id", group ? group : name}};
    for (size_t i = 0; conf && i < sizeof fixed / sizeof fixed[0]; i++)
        if (px_kafka_conf_set(conf, fixed[i][0], fixed[i][1], err, sizeof err)) {
            rd_kafka_conf_destroy(conf);
            conf = NULL;
        }
    rd_kafka_t *rk = NULL;
    if (conf) {
        /* a static member id is the main consumer's alone */
        rd_kafka_conf_set(conf, "group.instance.id", NULL, err, sizeof err);
        rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
        if (!rk) rd_kafka_conf_destroy(conf);
    }
    if (!rk) PX_ERROR(PR_COMP, "cannot create a kafka client", "client=%s err=\"%s\"", name, err);
    return rk;
}

static void refresh_metadata(rd_kafka_t *rk, int timeout_ms) {
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR && md)
        rd_kafka_metadata_destroy(md);
}

/* The end of tp's partition (read_committed: its last stable offset) into
 * tp, within timeout_ms. offsets_for_times with the "latest" timestamp,
 * one partition per call: librdkafka 2.0.2's rd_kafka_query_watermark_offsets
 * ignores its timeout once its requests are out, and a partition whose
 * cached leader died answers only when its request times out (60 s), again
 * and again while the dead broker's connection attempts keep changing the
 * brokers' state, holding the caller for minutes; offsets_for_times stops
 * waiting at its timeout. */
static void query_end(rd_kafka_t *rk, rd_kafka_topic_partition_t *tp, int timeout_ms) {
    rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(one, tp->topic, tp->partition)->offset = RD_KAFKA_OFFSET_END;
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, one, timeout_ms);
    tp->err = err ? err : one->elems[0].err;
    tp->offset = tp->err ? -1 : one->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(one);
}

int pr_kafka_query_ends(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *l, int timeout_ms) {
    /* one query per partition (librdkafka 2.0.2's offsets_for_times
     * answered NOT_LEADER_FOR_PARTITION for a list on a single broker that
     * led them all), within one deadline for the list: past it the rest
     * is not asked */
    int64_t deadline = px_mono_ms() + timeout_ms;
    int failed = 0;
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &l->elems[i];
        int64_t left = deadline - px_mono_ms();
        if (i && left <= 0) {
            tp->err = RD_KAFKA_RESP_ERR__TIMED_OUT;
            tp->offset = -1;
        } else {
            query_end(rk, tp, left > 100 ? (int)left : 100);
        }
        failed += tp->err != RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    if (failed) refresh_metadata(rk, timeout_ms);
    return failed;
}

/* The retry scanner, made at its first use. */
static rd_kafka_t *scanner(pr_ctx_t *pr) {
    if (!pr->kc.scanner) pr->kc.scanner = pr_kafka_client_new(pr, "presence-processor-scan", NULL, true);
    return pr->kc.scanner;
}

int pr_kafka_retry_ends(pr_ctx_t *pr, const int32_t *ps, int n, int64_t (*ends)[PX_SRC__COUNT]) {
    for (int i = 0; i < n; i++)
        for (int fs = 0; fs < PX_SRC__COUNT; fs++) ends[i][fs] = -1;
    rd_kafka_t *rk = scanner(pr);
    if (!rk) return n;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n * PX_SRC__COUNT);
    for (int i = 0; i < n; i++)
        for (int fs = 0; fs < PX_SRC__COUNT; fs++) rd_kafka_topic_partition_list_add(l, pr->kc.topics[PR_RETRY(fs)], ps[i]);
    pr_kafka_query_ends(rk, l, 2000);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        const pr_part_t *pp = &pr->parts[ps[i]];
        bool bad = false;
        for (int fs = 0; fs < PX_SRC__COUNT; fs++) {
            const rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(l, pr->kc.topics[PR_RETRY(fs)], ps[i]);
            if (tp && !tp->err) {
                ends[i][fs] = tp->offset;
                continue;
            }
            if (!bad && pr_check_log_due(pp))
                PX_WARN(PR_COMP, "cannot read a retry topic's end; will retry", "topic=%s partition=%d err=%s failures=%u",
                        pr->kc.topics[PR_RETRY(fs)], ps[i], tp ? rd_kafka_err2name(tp->err) : "none", pp->check_fails + 1);
            bad = true;
        }
        if (bad) {
            failed++;
            px_counter_add(pr->m_kafka_err, 1);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return failed;
}

/* One waiting retry record of entity e: widen its head..next and hold_from. */
static void scan_note(pr_entity_t *e, int fs, uint32_t seq, int64_t orig_off) {
    if (e->retry_head == e->retry_next) {
        e->retry_head = seq;
        e->retry_next = seq + 1;
    } else {
        if ((int32_t)(seq - e->retry_head) < 0) e->retry_head = seq;
        if ((int32_t)(seq + 1 - e->retry_next) > 0) e->retry_next = seq + 1;
    }
    if (orig_off < e->hold_from[fs]) e->hold_from[fs] = orig_off;
}

/* One record of the scan: note it on its entity (added, and listed in
 * *load to be loaded, if not in memory). Malformed ones are left to the
 * batch, which sends them to the DLQ when they come. */
static void scan_record(pr_ctx_t *pr, int32_t p, const rd_kafka_message_t *m, pr_entity_t ***load, size_t *n_load,
                        size_t *cap) {
    int s = pr_topic_src(pr, rd_kafka_topic_name(m->rkt));
    int64_t seq, off;
    px_key_t key;
    rd_kafka_headers_t *h = NULL;
    rd_kafka_message_headers(m, &h);
    if (s >= PR_N_SRC || !PR_IS_RETRY(s) || px_kafka_header_int(h, PX_HDR_SEQ, &seq) ||
        px_kafka_header_int(h, PX_HDR_OFFSET, &off) || !m->key || px_key_parse(m->key, m->key_len, &key, NULL, 0))
        return;
    pr_entity_t *e = pr_table_find(pr, &key);
    if (!e && (e = pr_table_add(pr, &key, p)) != NULL) {
        if (*n_load == *cap) {
            size_t nc = *cap ? 2 * *cap : 64;
            pr_entity_t **g = realloc(*load, nc * sizeof *g);
            if (g) {
                *load = g;
                *cap = nc;
            }
        }
        if (*n_load < *cap) (*load)[(*n_load)++] = e;
    }
    if (e) scan_note(e, PR_FOLD_SRC(s), (uint32_t)seq, off);
}

int pr_kafka_scan_retries(pr_ctx_t *pr, int32_t p, const int64_t committed[PR_N_SRC],
                          const int64_t ends[PX_SRC__COUNT]) {
    rd_kafka_t *rk = scanner(pr);
    if (!rk) return PX_EBACKEND;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PX_SRC__COUNT);
    for (int fs = 0; fs < PX_SRC__COUNT; fs++) {
        int rs = PR_RETRY(fs);
        if (ends[fs] > 0 && committed[rs] < ends[fs]) /* below the log's start resets to it (earliest) */
            rd_kafka_topic_partition_list_add(l, pr->kc.topics[rs], p)->offset =
                committed[rs] >= 0 ? committed[rs] : RD_KAFKA_OFFSET_BEGINNING;
    }
    if (!l->cnt) { /* nothing waits: the usual case */
        rd_kafka_topic_partition_list_destroy(l);
        return 0;
    }
    if (rd_kafka_assign(rk, l)) {
        rd_kafka_topic_partition_list_destroy(l);
        return PX_EBACKEND;
    }
    int open = l->cnt, rc = 0;
    size_t n_load = 0, cap = 0, n_seen = 0;
    pr_entity_t **load = NULL;
    int64_t until = px_mono_ms() + 5000;
    while (open > 0) {
        if (px_mono_ms() > until) {
            px_counter_add(pr->m_kafka_err, 1);
            if (pr_check_log_due(&pr->parts[p]))
                PX_WARN(PR_COMP, "retry scan timed out; will retry", "partition=%d failures=%u", p,
                        pr->parts[p].check_fails + 1);
            rc = PX_EBACKEND;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) open--;
        else if (m->err) px_counter_add(pr->m_kafka_err, 1); /* the fetcher retries; the timeout bounds it */
        else {
            scan_record(pr, p, m, &load, &n_load, &cap);
            n_seen++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
    rd_kafka_topic_partition_list_destroy(l);
    if (!rc && n_load && pr_redis_load(pr, load, n_load) == PX_EBACKEND) rc = PX_EBACKEND;
    if (!rc) PX_INFO(PR_COMP, "retry records waiting", "partition=%d records=%zu", p, n_seen);
    free(load);
    return rc;
}

/* librdkafka refuses a seek (ERR__STATE) while a partition's fetcher has
 * not started: for a fresh assignment the consumer first fetches the
 * committed offsets itself (with read_committed it retries that for as
 * long as an open transaction makes them unstable, e.g. one of a killed
 * instance) and then starts the fetcher there. A seek sent without waiting
 * for its outcome can be dropped silently in that window, and a repair
 * range would never be folded ("The proof, and what it found" in
 * docs/exactly-once.md). Once the fetcher runs, nothing but our own seeks
 * moves it. */
void pr_kafka_seek_sources(pr_ctx_t *pr, rd_kafka_topic_partition_list_t *l, bool ok[PR_MAX_PARTITIONS]) {
    rd_kafka_error_t *e = rd_kafka_seek_partitions(pr->kc.consumer, l, 3000);
    rd_kafka_resp_err_t all = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e) rd_kafka_error_destroy(e);
    for (int i = 0; i < l->cnt; i++) {
        int32_t p = l->elems[i].partition;
        rd_kafka_resp_err_t err = all ? all : l->elems[i].err;
        if (!err || !ok[p]) continue;
        ok[p] = false;
        pr_part_t *pp = &pr->parts[p];
        if (err == RD_KAFKA_RESP_ERR__STATE) { /* the fetcher has not started yet: expected, logged once */
            if (!pp->seek_refused)
                PX_INFO(PR_COMP, "repair check waits for the consumer to start the partition", "partition=%d topic=%s",
                        p, l->elems[i].topic);
            pp->seek_refused = true;
            continue;
        }
        px_counter_add(pr->m_kafka_err, 1);
        if (pr_check_log_due(pp))
            PX_WARN(PR_COMP, "seek failed; will retry the repair check", "partition=%d topic=%s err=%s failures=%u", p,
                    l->elems[i].topic, rd_kafka_err2name(err), pp->check_fails + 1);
    }
}

/* Read the committed offsets of partition p out of l (after the request
 * answered err): out[s] per source. 0, or the first error. */
static rd_kafka_resp_err_t committed_of(const pr_ctx_t *pr, const rd_kafka_topic_partition_list_t *l, int32_t p,
                                        rd_kafka_resp_err_t err, int64_t out[PR_N_SRC]) {
    /* librdkafka sorts the list by topic name in the request: each source
     * topic is looked up by name, never by its index in the list */
    for (int s = 0; s < PR_N_SRC; s++) out[s] = -1;
    for (int s = 0; !err && s < PR_N_SRC; s++) {
        const rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(l, pr->kc.topics[s], p);
        if (!tp) err = RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
        else if (tp->err) err = tp->err; /* e.g. UNSTABLE_OFFSET_COMMIT: a transaction still open */
        else out[s] = tp->offset;
    }
    return err;
}

int pr_kafka_committed(pr_ctx_t *pr, const int32_t *ps, int n, int64_t (*out)[PR_N_SRC], bool *ok) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n * PR_N_SRC);
    for (int i = 0; i < n; i++)
        for (int s = 0; s < PR_N_SRC; s++) rd_kafka_topic_partition_list_add(l, pr->kc.topics[s], ps[i]);
    /* librdkafka repeats the request while any partition's offsets are
     * unstable: alone, a partition waits less */
    rd_kafka_resp_err_t err = rd_kafka_committed(pr->kc.consumer, l, n > 1 ? 1500 : 500);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = committed_of(pr, l, ps[i], err, out[i]);
        ok[i] = e == RD_KAFKA_RESP_ERR_NO_ERROR;
        if (ok[i] || n > 1) continue;
        failed++;
        px_counter_add(pr->m_kafka_err, 1);
        if (pr_check_log_due(&pr->parts[ps[i]]))
            PX_WARN(PR_COMP, "cannot read committed offsets; will retry", "partition=%d err=%s failures=%u", ps[i],
                    rd_kafka_err2name(e), pr->parts[ps[i]].check_fails + 1);
    }
    rd_kafka_topic_partition_list_destroy(l);
    for (int i = 0; n > 1 && i < n; i++) /* each of those that failed together, alone */
        if (!ok[i]) failed += pr_kafka_committed(pr, &ps[i], 1, &out[i], &ok[i]);
    return failed;
}
