/*
 * pr_kafka.c - the consumer edge: a read_committed consumer of the four
 * input topics and their retry topics in one group, the two transactional
 * producers whose transactions carry change events, EXPIRE, retry and DLQ
 * records and the consumed offsets (send_offsets_to_transaction, KIP-447
 * fencing by group metadata), and every pause, seek and resume of the
 * consumer (the stages above ask for them by name).
 *
 * Assignment: the **range** assignor, not cooperative-sticky. Only range
 * gives partition p of every input topic (equal partition counts) to the
 * same member, and the fold needs all of an entity's records in one place.
 * Rebalances are therefore eager: on revoke every entity is dropped from
 * memory (their state is in Redis); on assign, each partition number is
 * paused until its repair check ran (pr_repair.c): the records between
 * Redis's applied mark and the committed offset are folded again, emitting
 * nothing, before normal processing resumes. docs/exactly-once.md.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pr.h"
#include "pr_kafka.h"
#include "px_headers.h"
#include "px_log.h"
#include "px_time.h"

static void set_partitions(pr_ctx_t *pr, const rd_kafka_topic_partition_list_t *l, bool assigned) {
    for (int i = 0; i < l->cnt; i++) {
        int32_t p = l->elems[i].partition;
        if (p < 0 || p >= PR_MAX_PARTITIONS) {
            PX_ERROR(PR_COMP, "partition number beyond the supported maximum", "topic=%s partition=%d max=%d",
                     l->elems[i].topic, p, PR_MAX_PARTITIONS);
            continue;
        }
        pr_part_t *pp = &pr->parts[p];
        if (assigned && !pp->assigned) {
            memset(pp, 0, sizeof *pp);
            pp->assigned = true;
            pp->repair_check = true;
            for (int s = 0; s < PR_N_SRC; s++) pp->repair_until[s] = pp->next[s] = pp->marked[s] = -1;
            for (int s = 0; s < PX_SRC__COUNT; s++) pp->fetch_next[s] = pp->fetchq[s] = pp->end[s] = -1;
            pp->lag = -1;
            pp->progress_at = px_mono_ms();
            pr->kc.n_owned++;
        } else if (!assigned && pp->assigned) {
            pp->assigned = false;
            pp->stalled = false;
            pr_table_drop_partition(pr, p);
            pr->kc.n_owned--;
        }
    }
}

/* Eager rebalances: the loop's hook runs first (it ends what is in flight
 * and, on a revoke, writes what is committed), then the partitions are
 * assigned and paused until their repair checks ran (pr_repair.c), or
 * revoked and their entities dropped. A collect that saw rebalances move
 * drops its batch. */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
    pr_ctx_t *pr = opaque;
    bool assigned = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    pr->kc.rebalances++;
    pr_doing(pr, assigned ? "a rebalance: assignment" : "a rebalance: revocation");
    if (pr->kc.on_rebalance) pr->kc.on_rebalance(pr, assigned);
    if (assigned) {
        PX_INFO(PR_COMP, "partitions assigned", "count=%d", parts->cnt);
        set_partitions(pr, parts, true);
        pr->kc.owned = true;
        rd_kafka_assign(rk, parts);
        rd_kafka_pause_partitions(rk, parts);
    } else {
        PX_INFO(PR_COMP, "partitions revoked", "count=%d lost=%d", parts->cnt, rd_kafka_assignment_lost(rk));
        set_partitions(pr, parts, false);
        pr->kc.owned = false;
        rd_kafka_assign(rk, NULL);
    }
}

void pr_kafka_rebuild(pr_ctx_t *pr) {
    rd_kafka_topic_partition_list_t *a = NULL;
    if (!pr->kc.consumer || rd_kafka_assignment(pr->kc.consumer, &a) || !a) return;
    PX_WARN(PR_COMP, "redis may have lost writes: repairing every owned partition from the applied marks",
            "partitions=%d", a->cnt);
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        if (pr->parts[p].assigned) {
            pr_part_t *pp = &pr->parts[p];
            pr_table_drop_partition(pr, p);
            pp->repair_check = true; /* from the marks: a shard that lost writes lost the marks claiming them */
            /* the positions reached before the loss say nothing about the
             * new dataset: a write during the rebuild must not claim them
             * as applied marks, or a later owner skips the part of the
             * rebuild still to come */
            for (int s = 0; s < PR_N_SRC; s++) pp->repair_until[s] = pp->next[s] = pp->marked[s] = -1;
        }
    rd_kafka_pause_partitions(pr->kc.consumer, a);
    rd_kafka_topic_partition_list_destroy(a);
}

void pr_kafka_rewind(pr_ctx_t *pr, const int64_t first[][PR_N_SRC], const bool *touched) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        bool any = touched[p];
        for (int s = 0; s < PR_N_SRC; s++) any = any || first[p][s] >= 0;
        if (!any || !pr->parts[p].assigned) continue;
        pr_table_drop_partition(pr, p);
        pr->parts[p].repair_check = true;
        for (int s = 0; s < PR_N_SRC; s++) {
            pr->parts[p].next[s] = pr->parts[p].repair_until[s] = -1;
            rd_kafka_topic_partition_list_add(l, pr->kc.topics[s], p);
        }
    }
    if (l->cnt) rd_kafka_pause_partitions(pr->kc.consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
}

void pr_kafka_pause_all(pr_ctx_t *pr) {
    rd_kafka_topic_partition_list_t *a = NULL;
    if (!rd_kafka_assignment(pr->kc.consumer, &a) && a) {
        rd_kafka_pause_partitions(pr->kc.consumer, a);
        rd_kafka_topic_partition_list_destroy(a);
    }
}

void pr_kafka_resume_checked(pr_ctx_t *pr) {
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(pr->kc.consumer, &a) || !a) return;
    rd_kafka_topic_partition_list_t *r = rd_kafka_topic_partition_list_new(a->cnt);
    for (int i = 0; i < a->cnt; i++)
        if (!pr->parts[a->elems[i].partition].repair_check)
            rd_kafka_topic_partition_list_add(r, a->elems[i].topic, a->elems[i].partition);
    rd_kafka_resume_partitions(pr->kc.consumer, r);
    rd_kafka_topic_partition_list_destroy(r);
    rd_kafka_topic_partition_list_destroy(a);
}

void pr_kafka_serve_paused(pr_ctx_t *pr) {
    rd_kafka_message_t *m = rd_kafka_consumer_poll(pr->kc.consumer, 0);
    if (!m) return;
    if (!m->err) {
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset = m->offset;
        rd_kafka_error_t *e = rd_kafka_seek_partitions(pr->kc.consumer, l, 0);
        if (e) rd_kafka_error_destroy(e);
        rd_kafka_topic_partition_list_destroy(l);
    }
    rd_kafka_message_destroy(m);
}

void pr_kafka_resume_part(pr_ctx_t *pr, int32_t p) {
    rd_kafka_topic_partition_list_t *res = rd_kafka_topic_partition_list_new(PR_N_SRC);
    for (int s = 0; s < PR_N_SRC; s++) rd_kafka_topic_partition_list_add(res, pr->kc.topics[s], p);
    rd_kafka_resume_partitions(pr->kc.consumer, res);
    rd_kafka_topic_partition_list_destroy(res);
}

void pr_kafka_hold_retry(pr_ctx_t *pr, int32_t p, int fs, int64_t offset, int64_t due) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, pr->kc.topics[PR_RETRY(fs)], p)->offset = offset;
    rd_kafka_pause_partitions(pr->kc.consumer, l);
    rd_kafka_error_t *se = rd_kafka_seek_partitions(pr->kc.consumer, l, 0);
    if (se) {
        PX_ERROR(PR_COMP, "seek on a retry topic failed", "err=\"%s\"", rd_kafka_error_string(se));
        rd_kafka_error_destroy(se);
    }
    rd_kafka_topic_partition_list_destroy(l);
    pr->parts[p].retry_due[fs] = due;
}

void pr_kafka_release_retries(pr_ctx_t *pr, int64_t now_ms) {
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        pr_part_t *pp = &pr->parts[p];
        for (int fs = 0; fs < PX_SRC__COUNT; fs++) {
            if (!pp->retry_due[fs] || pp->retry_due[fs] > now_ms || !pp->assigned || pp->repair_check) continue;
            pp->retry_due[fs] = 0;
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, pr->kc.topics[PR_RETRY(fs)], p);
            rd_kafka_resume_partitions(pr->kc.consumer, l);
            rd_kafka_topic_partition_list_destroy(l);
        }
    }
}

int64_t pr_kafka_backlog(pr_ctx_t *pr) {
    int64_t n = 0;
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        const pr_part_t *pp = &pr->parts[p];
        if (!pp->assigned) continue;
        for (int s = 0; s < PR_N_SRC; s++) {
            int64_t lo, hi;
            if (pp->next[s] < 0 ||
                rd_kafka_get_watermark_offsets(pr->kc.consumer, pr->kc.topics[s], p, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
                continue;
            if (hi > pp->next[s]) n += hi - pp->next[s];
        }
    }
    return n;
}

/* Errors of the consumer and the scanner (served on the loop thread) and
 * of the producers (served inside their calls, so also on the committer
 * thread: there a fatal error only raises producer_fatal, which the loop's
 * next turn reads). */
static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    pr_ctx_t *pr = opaque;
    px_counter_add(pr->m_kafka_err, 1);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) atomic_store(&pr->kc.kafka_ok, false);
    /* a broker away makes every client say so about every second:
     * connection errors are logged once per 5 s, with how many were not */
    bool conn = err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
                err == RD_KAFKA_RESP_ERR__RESOLVE;
    int64_t now = px_mono_ms(), last = atomic_load(&pr->kc.conn_err_logged_ms);
    if (!conn || (now - last >= 5000 && atomic_compare_exchange_strong(&pr->kc.conn_err_logged_ms, &last, now)))
        PX_WARN(PR_COMP, "kafka error", "client=%s err=%s reason=\"%s\" like_it_not_logged=%u", rd_kafka_name(rk),
                rd_kafka_err2name(err), reason, conn ? atomic_exchange(&pr->kc.conn_err_quiet, 0) : 0);
    else
        atomic_fetch_add(&pr->kc.conn_err_quiet, 1);
    /* the consumer's fatal error: the loop's next tick (100 ms) decides,
     * a new consumer or the end (pr_watch_tick, pr_kafka_renew_consumer) */
    if (err != RD_KAFKA_RESP_ERR__FATAL || rk == pr->kc.consumer) return;
    char why[256];
    rd_kafka_fatal_error(rk, why, sizeof why);
    if (rk == pr->kc.producers[0] || rk == pr->kc.producers[1]) {
        PX_ERROR(PR_COMP, "fatal kafka error: stopping", "reason=\"%s\"", why);
        atomic_store(&pr->kc.producer_fatal, true);
        return;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "fatal kafka error of %s: %s", rd_kafka_name(rk), why);
    pr_fatal(pr, msg);
}

/* Delivery reports of the transactional producer. A failed record makes
 * the transaction abortable, and the commit reports that; here it is
 * counted, and logged once per run of failures. Having a delivery
 * callback at all matters for latency: without one librdkafka keeps no
 * reports, and the flush inside rd_kafka_commit_transaction() then sleeps
 * in 10 ms polls instead of waking on the last delivery. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    pr_ctx_t *pr = opaque;
    (void)rk;
    if (!m->err) {
        atomic_store_explicit(&pr->kc.dr_failing, false, memory_order_relaxed);
        return;
    }
    px_counter_add(pr->m_kafka_err, 1);
    if (!atomic_exchange(&pr->kc.dr_failing, true))
        PX_WARN(PR_COMP, "a produced record failed (its transaction will abort)", "topic=%s err=%s",
                rd_kafka_topic_name(m->rkt), rd_kafka_err2name(m->err));
}

static void on_wake(void *arg) {
    pr_ctx_t *pr = arg;
    pr->wake(pr);
}

/* One partition's statistics: its fetch position and the records
 * prefetched, for the watchdog (pr_watch.c). */
static void stats_partition(pr_ctx_t *pr, int src, const char *pname, json_t *p) {
    char *end;
    long n = strtol(pname, &end, 10);
    if (*end || n < 0 || n >= PR_MAX_PARTITIONS || !pr->parts[n].assigned) return; /* "-1": the topic's UA */
    json_t *next = json_object_get(p, "next_offset"), *q = json_object_get(p, "fetchq_cnt");
    pr_part_t *pp = &pr->parts[n];
    pp->fetch_next[src] = json_is_integer(next) && json_integer_value(next) >= 0 ? json_integer_value(next) : -1;
    pp->fetchq[src] = json_is_integer(q) ? json_integer_value(q) : -1;
}

/* librdkafka's statistics (every statistics.interval.ms, served by the
 * consumer poll on the loop thread): each owned input partition's fetch
 * position, which moves past transaction markers and aborted records
 * that the fold never sees. Its ends come from the broker (pr_watch.c):
 * the statistics' own only move with fetches, and a stuck fetcher
 * leaves them where they were. And whether some broker is up (kafka_ok,
 * for /readyz): the error callback says when all went down, and only
 * the statistics say when one is back. */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    pr_ctx_t *pr = opaque;
    (void)rk;
    (void)len;
    json_error_t jerr;
    json_t *root = json_loads(json, 0, &jerr); /* NUL-terminated; len may count the NUL */
    if (!root) {
        PX_WARN(PR_COMP, "kafka statistics do not parse", "err=\"%s\"", jerr.text);
        return 0;
    }
    const char *tname, *pname;
    json_t *t, *p;
    atomic_store(&pr->kc.kafka_ok, px_kafka_stats_broker_up(root));
    json_object_foreach(json_object_get(root, "topics"), tname, t) {
        int s = pr_topic_src(pr, tname);
        if (s >= PX_SRC__COUNT) continue; /* retry topics wait on purpose */
        json_object_foreach(json_object_get(t, "partitions"), pname, p) stats_partition(pr, s, pname, p);
    }
    json_decref(root);
    return 0; /* librdkafka frees json */
}

static int producer_new(pr_ctx_t *pr, const char *txn_id, bool ours, int init_ms, rd_kafka_t **out, char *errstr,
                        size_t n);

/* The transactional.id of an instance (the first of its two; the
 * second adds ".b"). */
static void txn_id_of(const pr_ctx_t *pr, const char *instance, char *out, size_t n) {
    snprintf(out, n, "presence-processor.%s.%s", pr->kc.group, instance);
}

/* Producer i learns the partitions of every topic it may write to (the
 * changes, the inputs for EXPIREs, their retry and dead-letter topics)
 * now, while the consumer joins its group (called after the subscribe), so
 * its first records to a topic do not wait in its queue for the topic's
 * metadata (300-470 ms each). One metadata request per producer covers
 * every topic it holds a handle of; if it fails, librdkafka looks each
 * topic up at its first record (logged). */
static void warm_topics(pr_ctx_t *pr, int i) {
    char names[1 + 3 * PX_SRC__COUNT][PX_CONF_STR_MAX * 2 + 16];
    int k = 0;
    snprintf(names[k++], sizeof names[0], "%s", pr->kc.topic_changes);
    for (int s = 0; s < PX_SRC__COUNT; s++) {
        snprintf(names[k++], sizeof names[0], "%s", pr->kc.topics[s]);
        snprintf(names[k++], sizeof names[0], "%s", pr->kc.topics[PR_RETRY(s)]);
        snprintf(names[k++], sizeof names[0], "%s.dlt", pr->kc.topics[s]);
    }
    for (int t = 0; t < k; t++) pr->kc.warm[i][t] = rd_kafka_topic_new(pr->kc.producers[i], names[t], NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(pr->kc.producers[i], 0, NULL, &md, 2000);
    for (int t = 0; !err && md && t < md->topic_cnt; t++)
        if (md->topics[t].err)
            PX_WARN(PR_COMP, "topic metadata not known at start (looked up again at its first record)",
                    "topic=%s err=\"%s\"", md->topics[t].topic, rd_kafka_err2str(md->topics[t].err));
    if (err)
        PX_WARN(PR_COMP, "topic metadata not fetched at start (looked up again at each topic's first record)",
                "err=\"%s\"", rd_kafka_err2str(err));
    if (md) rd_kafka_metadata_destroy(md);
}

/* The consumer (pr->kc.consumer), its group in pr->kc.group. */
static int consumer_new(pr_ctx_t *pr, char *errstr, size_t n) {
    /* Static membership: the instance name is the member's
     * group.instance.id, so a restart under it takes its partitions back
     * at once without a rebalance, and a member that stays away loses them
     * after session.timeout.ms (6 s, librdkafka's 45 s otherwise). */
    const char *const cdefaults[][2] = {
        {"session.timeout.ms", "6000"},
        {"heartbeat.interval.ms", "2000"},
        {pr->cfg.static_membership ? "group.instance.id" : "client.id",
         pr->cfg.static_membership ? pr->cfg.instance : "presence-processor"},
        {"group.id", "presence-processor"},
        {"auto.offset.reset", "earliest"},
        {"bootstrap.servers", "127.0.0.1:9092"},
        {"statistics.interval.ms", "1000"}, /* fetch positions for the watchdog (pr_watch.c) */
        /* 8 MiB per partition and fetch, not librdkafka's 1 MiB: with 1 MiB
         * the loop waited for fetches, idle in epoll for about half of a
         * 2M-record backlog (2M records over 100k entities: 120-150k
         * records/s at 1 MiB, 200-260k at 8 MiB; the consumer's queue stays
         * bounded by queued.max.messages.kbytes) */
        {"max.partition.fetch.bytes", "8388608"},
    };
    static const char *const cfixed[][2] = {
        {"enable.auto.commit", "false"}, /* offsets go in the transaction */
        {"enable.auto.offset.store", "false"},
        {"isolation.level", "read_committed"}, /* our own EXPIREs are transactional */
        {"partition.assignment.strategy", "range"}, /* co-partitioning: see the file comment */
    };
    rd_kafka_conf_t *conf = px_kafka_conf_new_with(cdefaults, sizeof cdefaults / sizeof cdefaults[0],
                                                   &pr->kafka_kv, "presence-processor", errstr, n);
    if (!conf) return PX_ECONFIG;
    for (size_t i = 0; i < sizeof cfixed / sizeof cfixed[0]; i++)
        if (px_kafka_conf_set(conf, cfixed[i][0], cfixed[i][1], errstr, n)) {
            rd_kafka_conf_destroy(conf);
            return PX_ECONFIG;
        }
    size_t gl = sizeof pr->kc.group;
    rd_kafka_conf_get(conf, "group.id", pr->kc.group, &gl);
    rd_kafka_conf_set_opaque(conf, pr);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    pr->kc.consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, n);
    if (!pr->kc.consumer) {
        rd_kafka_conf_destroy(conf);
        return PX_ECONFIG;
    }
    rd_kafka_poll_set_consumer(pr->kc.consumer);
    pr->kc.consumer_made_at = px_mono_ms();
    return 0;
}

/* Subscribe the consumer to the input topics and their retry topics, and
 * watch its queue from the loop. */
static int subscribe(pr_ctx_t *pr, char *errstr, size_t n) {
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(PR_N_SRC);
    for (int s = 0; s < PR_N_SRC; s++)
        rd_kafka_topic_partition_list_add(topics, pr->kc.topics[s], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(pr->kc.consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) return px_errf(PX_EBACKEND, errstr, n, "subscribe: %s", rd_kafka_err2str(err));
    pr->kc.cq = rd_kafka_queue_get_consumer(pr->kc.consumer);
    pr->kc.cq_uv = px_kafka_uv_start(pr->loop, pr->kc.cq, 100, on_wake, pr);
    if (!pr->kc.cq_uv) return px_errf(PX_EIO, errstr, n, "cannot watch the consumer queue");
    return 0;
}

int pr_kafka_start(pr_ctx_t *pr, char *errstr, size_t n) {
    for (int s = 0; s < PX_SRC__COUNT; s++) {
        const char *t = s == PX_SRC_HEARTBEATS ? pr->cfg.topic_heartbeats
                        : s == PX_SRC_LOCKS    ? pr->cfg.topic_locks
                        : s == PX_SRC_MUTATING ? pr->cfg.topic_mutating
                                               : pr->cfg.topic_mutated;
        snprintf(pr->kc.topics[s], sizeof pr->kc.topics[s], "%s%s", pr->cfg.topic_prefix, t);
        snprintf(pr->kc.topics[PR_RETRY(s)], sizeof pr->kc.topics[0], "%s%s.retry", pr->cfg.topic_prefix, t);
    }
    snprintf(pr->kc.topic_changes, sizeof pr->kc.topic_changes, "%s%s", pr->cfg.topic_prefix, pr->cfg.topic_changes);
    int crc = consumer_new(pr, errstr, n);
    if (crc) return crc;

    /* the producers: same kafka.* settings; consumer-only keys are ignored
     * by librdkafka with a warning */
    char txn_id[PX_CONF_STR_MAX * 3];
    txn_id_of(pr, pr->cfg.instance, txn_id, sizeof txn_id);
    for (int i = 0; i < 2; i++) {
        char id[sizeof txn_id + 4];
        snprintf(id, sizeof id, "%s%s", txn_id, i ? ".b" : "");
        int rc = producer_new(pr, id, true, 0, &pr->kc.producers[i], errstr, n); /* initialised once owning (pr_kafka_peers) */
        if (rc) return rc;
    }
    pr->kc.cur_producer = 0;
    pr->kc.producer = pr->kc.producers[0];
    atomic_store(&pr->kc.kafka_ok, true);

    int src = subscribe(pr, errstr, n);
    if (src) return src;
    for (int i = 0; i < 2; i++) warm_topics(pr, i); /* while the group join runs */
    /* made now, so it knows the group's coordinator when a rebalance
     * needs it (pr_kafka_peers) */
    if (pr->cfg.static_membership)
        pr->kc.offsets_reader = pr_kafka_client_new(pr, "presence-processor-offsets", pr->kc.group, false);
    PX_INFO(PR_COMP, "consuming", "group=%s transactional_ids=%s,%s.b topics=%s,%s,%s,%s", pr->kc.group, txn_id,
            txn_id, pr->kc.topics[0], pr->kc.topics[1], pr->kc.topics[2], pr->kc.topics[3]);
    return 0;
}

/* One transactional producer with transactional.id id, its transactions
 * initialised within init_ms (0: not yet; initialising aborts what a crashed instance of the
 * same name left open, and fences it). ours: one of this instance's two,
 * with their callbacks; otherwise a departed instance's, made only to
 * fence it (its errors are librdkafka's log lines alone). */
static int producer_new(pr_ctx_t *pr, const char *txn_id, bool ours, int init_ms, rd_kafka_t **out, char *errstr,
                        size_t n) {
    char tmo[24];
    snprintf(tmo, sizeof tmo, "%lld", (long long)pr->cfg.txn_timeout_ms);
    const char *const pdefaults[][2] = {
        {"bootstrap.servers", "127.0.0.1:9092"},
        {"linger.ms", "5"},
        {"transaction.timeout.ms", tmo},
        /* a transaction begun right after the previous commit can meet the
         * coordinator still writing that commit's markers
         * (CONCURRENT_TRANSACTIONS): retry after 10 ms, not librdkafka's
         * 100 ms, which a LOCK waiting for its batch would feel */
        {"retry.backoff.ms", "10"},
    };
    static const char *const pfixed[][2] = {
        {"partitioner", "murmur2_random"},
        {"enable.idempotence", "true"},
    };
    rd_kafka_conf_t *conf = px_kafka_conf_new_with(pdefaults, sizeof pdefaults / sizeof pdefaults[0], &pr->kafka_kv,
                                  "presence-processor-txn", errstr, n);
    if (!conf) return PX_ECONFIG;
    for (size_t i = 0; i < sizeof pfixed / sizeof pfixed[0]; i++)
        if (px_kafka_conf_set(conf, pfixed[i][0], pfixed[i][1], errstr, n)) {
            rd_kafka_conf_destroy(conf);
            return PX_ECONFIG;
        }
    if (px_kafka_conf_set(conf, "transactional.id", txn_id, errstr, n)) {
        rd_kafka_conf_destroy(conf);
        return PX_ECONFIG;
    }
    if (ours) {
        rd_kafka_conf_set_opaque(conf, pr);
        rd_kafka_conf_set_error_cb(conf, on_error);
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    }
    *out = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, n);
    if (!*out) {
        rd_kafka_conf_destroy(conf);
        return PX_ECONFIG;
    }
    rd_kafka_error_t *e = init_ms ? rd_kafka_init_transactions(*out, init_ms) : NULL;
    if (e) {
        px_errf(PX_EBACKEND, errstr, n, "init_transactions (%s): %s", txn_id, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return PX_EBACKEND;
    }
    return 0;
}

/* The instance name of a static member of the group: its member id is
 * the name, '-' and a UUID (8-4-4-4-12 hex digits). False for a dynamic
 * member or another form. */
static bool member_instance(const char *member_id, char *out, size_t n) {
    size_t len = strlen(member_id);
    if (len < 38 || member_id[len - 37] != '-' || len - 37 >= n) return false;
    const char *u = member_id + len - 36;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? u[i] != '-' : !strchr("0123456789abcdef", u[i]) || !u[i]) return false;
    }
    memcpy(out, member_id, len - 37);
    out[len - 37] = 0;
    return true;
}

/* Fence a departed instance: initialise both of its transactional ids,
 * which aborts the transaction it left open at once (readers and the
 * committed offsets of its partitions waited for its timeout otherwise)
 * and bumps their epochs, so its producers, if it still runs, are
 * refused. */
static void fence(pr_ctx_t *pr, const char *instance) {
    int64_t t0 = px_mono_ms();
    char txn_id[PX_CONF_STR_MAX * 3], id[sizeof txn_id + 4], err[512] = "";
    txn_id_of(pr, instance, txn_id, sizeof txn_id);
    int failed = 0;
    for (int i = 0; i < 2; i++) {
        rd_kafka_t *rk = NULL;
        snprintf(id, sizeof id, "%s%s", txn_id, i ? ".b" : "");
        pr_doing(pr, "fencing a departed instance: init_transactions");
        if (producer_new(pr, id, false, 5000, &rk, err, sizeof err)) failed++;
        pr_doing(pr, "fencing a departed instance: destroying its producer");
        if (rk) rd_kafka_destroy(rk);
    }
    if (failed) {
        px_counter_add(pr->m_kafka_err, 1);
        PX_WARN(PR_COMP, "cannot fence a departed instance (its open transaction ends at its timeout)",
                "instance=%s err=\"%s\"", instance, err);
    } else {
        PX_INFO(PR_COMP, "fenced a departed instance: its open transaction aborted", "instance=%s took_ms=%lld",
                instance, (long long)(px_mono_ms() - t0));
    }
}

typedef char pr_name_t[PX_CONF_STR_MAX];

static bool name_in(const pr_name_t *names, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return true;
    return false;
}

/* The instance names of the group's static members now into names[]:
 * how many, or -1 if the group could not be listed (logged). */
static int group_members(pr_ctx_t *pr, pr_name_t *names, int cap) {
    const struct rd_kafka_group_list *gl = NULL;
    rd_kafka_resp_err_t err = rd_kafka_list_groups(pr->kc.consumer, pr->kc.group, &gl, 2000);
    int n = -1;
    if (!err && gl && gl->group_cnt == 1) {
        n = 0;
        const struct rd_kafka_group_info *g = &gl->groups[0];
        for (int i = 0; i < g->member_cnt && n < cap; i++)
            if (member_instance(g->members[i].member_id, names[n], sizeof names[n])) n++;
    } else {
        px_counter_add(pr->m_kafka_err, 1);
        PX_WARN(PR_COMP, "cannot list the group's members (departed instances are not fenced)", "err=%s",
                rd_kafka_err2name(err ? err : RD_KAFKA_RESP_ERR__UNKNOWN_GROUP));
    }
    if (gl) rd_kafka_group_list_destroy(gl);
    return n;
}

/* The instances that last committed the offsets of partitions ps[] (each
 * offset's metadata names its committer), read without waiting for
 * transactions still open: how many names went into names[]. */
static int last_committers(pr_ctx_t *pr, const int32_t *ps, int n, pr_name_t *names, int cap) {
    pr_kafka_t *kc = &pr->kc;
    if (!kc->offsets_reader && !(kc->offsets_reader = pr_kafka_client_new(pr, "presence-processor-offsets", kc->group,
                                                                          false)))
        return 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n * PR_N_SRC);
    for (int i = 0; i < n; i++)
        for (int s = 0; s < PR_N_SRC; s++) rd_kafka_topic_partition_list_add(l, kc->topics[s], ps[i]);
    int k = 0;
    rd_kafka_resp_err_t err = rd_kafka_committed(kc->offsets_reader, l, 2000);
    for (int i = 0; !err && i < l->cnt && k < cap; i++) {
        const rd_kafka_topic_partition_t *tp = &l->elems[i];
        if (tp->err || !tp->metadata || !tp->metadata_size || tp->metadata_size >= sizeof names[0]) continue;
        memcpy(names[k], tp->metadata, tp->metadata_size);
        names[k][tp->metadata_size] = 0;
        if (!name_in(names, k, names[k])) k++;
    }
    if (err) {
        px_counter_add(pr->m_kafka_err, 1);
        PX_WARN(PR_COMP, "cannot read the partitions' last committers (departed instances are not fenced)", "err=%s",
                rd_kafka_err2name(err));
    }
    rd_kafka_topic_partition_list_destroy(l);
    return k;
}

/* Fence the last committers of ps[] that are not in the group, each
 * once per departure. */
static void fence_departed(pr_ctx_t *pr, const int32_t *ps, int n) {
    pr_kafka_t *kc = &pr->kc;
    pr_name_t *present = calloc(PR_MAX_PEERS, sizeof *present), *last = calloc(PR_MAX_PEERS, sizeof *last);
    pr_doing(pr, "fencing departed instances: the group's members");
    int np = present && last ? group_members(pr, present, PR_MAX_PEERS) : -1;
    for (int i = 0; np >= 0 && i < kc->n_fenced;) /* back in the group: fenced again when it next leaves */
        if (name_in(present, np, kc->fenced[i])) memcpy(kc->fenced[i], kc->fenced[--kc->n_fenced], sizeof kc->fenced[0]);
        else i++;
    pr_doing(pr, "fencing departed instances: their last commits");
    int nl = np >= 0 ? last_committers(pr, ps, n, last, PR_MAX_PEERS) : 0;
    for (int i = 0; i < nl; i++) {
        if (!strcmp(last[i], pr->cfg.instance) || name_in(present, np, last[i]) ||
            name_in((const pr_name_t *)kc->fenced, kc->n_fenced, last[i]))
            continue;
        fence(pr, last[i]);
        if (kc->n_fenced == PR_MAX_PEERS) kc->n_fenced--; /* full: forget the latest */
        snprintf(kc->fenced[kc->n_fenced++], sizeof kc->fenced[0], "%s", last[i]);
    }
    free(present);
    free(last);
}

/* A helper thread's half of init_txns: the second producer's. */
static void *init_second(void *arg) {
    rd_kafka_t *rk = arg;
    return rd_kafka_init_transactions(rk, 60000);
}

/* Initialise both producers' transactions, side by side (each first
 * waits for the abort of what a crashed run under its id left open). 0,
 * or -1 after pr_fatal. */
static int init_txns(pr_ctx_t *pr) {
    pr_kafka_t *kc = &pr->kc;
    pthread_t th;
    bool threaded = pthread_create(&th, NULL, init_second, kc->producers[1]) == 0;
    rd_kafka_error_t *e[2] = {rd_kafka_init_transactions(kc->producers[0], 60000), NULL};
    void *r = NULL;
    if (threaded) pthread_join(th, &r);
    e[1] = threaded ? r : rd_kafka_init_transactions(kc->producers[1], 60000);
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        if (!e[i]) continue;
        if (!rc) {
            char why[600];
            snprintf(why, sizeof why, "cannot initialise the transactions of %s: %s", rd_kafka_name(kc->producers[i]),
                     rd_kafka_error_string(e[i]));
            pr_fatal(pr, why);
        }
        rd_kafka_error_destroy(e[i]);
        rc = -1;
    }
    return rc;
}

void pr_kafka_peers(pr_ctx_t *pr, const int32_t *ps, int n) {
    pr_kafka_t *kc = &pr->kc;
    if (kc->peers_at != kc->rebalances && pr->cfg.static_membership) fence_departed(pr, ps, n);
    kc->peers_at = kc->rebalances;
    if (kc->txn_ready) return;
    int64_t t0 = px_mono_ms();
    pr_doing(pr, "initialising the transactions");
    if (init_txns(pr)) return;
    kc->txn_ready = true;
    PX_INFO(PR_COMP, "transactions initialised (what an earlier run under this name left open is aborted)",
            "instance=%s took_ms=%lld", pr->cfg.instance, (long long)(px_mono_ms() - t0));
}

void pr_kafka_unwatch(pr_ctx_t *pr) {
    px_kafka_uv_stop(pr->kc.cq_uv);
    pr->kc.cq_uv = NULL;
    if (pr->kc.cq) rd_kafka_queue_destroy(pr->kc.cq);
    pr->kc.cq = NULL;
}

int pr_kafka_renew_consumer(pr_ctx_t *pr, char *errstr, size_t n) {
    rd_kafka_topic_partition_list_t *owned = rd_kafka_topic_partition_list_new(PR_MAX_PARTITIONS);
    for (int32_t p = 0; p < PR_MAX_PARTITIONS; p++)
        if (pr->parts[p].assigned) rd_kafka_topic_partition_list_add(owned, pr->kc.topics[0], p);
    /* what a revoke does, without a group to tell */
    pr->kc.rebalances++;
    pr_doing(pr, "a new consumer: revocation");
    if (pr->kc.on_rebalance) pr->kc.on_rebalance(pr, false);
    set_partitions(pr, owned, false);
    rd_kafka_topic_partition_list_destroy(owned);
    pr->kc.owned = false;
    pr_kafka_unwatch(pr);
    rd_kafka_consumer_close(pr->kc.consumer);
    rd_kafka_destroy(pr->kc.consumer);
    pr->kc.consumer = NULL;
    int rc = consumer_new(pr, errstr, n);
    if (!rc) rc = subscribe(pr, errstr, n);
    return rc;
}

void pr_kafka_close_consumer(pr_ctx_t *pr) {
    pr_kafka_unwatch(pr);
    if (pr->kc.consumer) {
        rd_kafka_consumer_close(pr->kc.consumer);
        rd_kafka_destroy(pr->kc.consumer);
        pr->kc.consumer = NULL;
    }
    rd_kafka_t **clients[2] = {&pr->kc.scanner, &pr->kc.offsets_reader};
    for (int i = 0; i < 2; i++)
        if (*clients[i]) {
            rd_kafka_consumer_close(*clients[i]);
            rd_kafka_destroy(*clients[i]);
            *clients[i] = NULL;
        }
}

void pr_kafka_stop(pr_ctx_t *pr) {
    for (int i = 0; i < 2; i++)
        if (pr->kc.producers[i]) {
            for (size_t t = 0; t < sizeof pr->kc.warm[i] / sizeof pr->kc.warm[i][0]; t++)
                if (pr->kc.warm[i][t]) rd_kafka_topic_destroy(pr->kc.warm[i][t]);
            memset(pr->kc.warm[i], 0, sizeof pr->kc.warm[i]);
            rd_kafka_flush(pr->kc.producers[i], 5000);
            rd_kafka_destroy(pr->kc.producers[i]);
            pr->kc.producers[i] = NULL;
        }
    pr->kc.producer = NULL;
}
