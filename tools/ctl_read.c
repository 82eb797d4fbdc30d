/*
 * ctl_read.c - presencectl's one Kafka reader: a consumer assigned to
 * every partition of one topic from a start offset (the beginning, or the
 * first record at or after --from by offsets_for_times: every earlier
 * offset has an earlier timestamp) to an end fixed when reading starts
 * (the high watermark), read_committed, no group commits. With a range,
 * only records whose Kafka timestamp is in [from, to) reach the callback:
 * timestamps need not grow with offsets (producers' clocks, old records
 * produced late), so --to cannot end the reading early. Aborted records and
 * transaction markers have no message: the end is reached when every
 * partition's position passed its end offset. Progress goes to stderr when
 * it is a terminal. Limits: a transaction left open by a live producer
 * holds read_committed reading until it ends (or timeout_ms of idleness).
 *
 * Every handle presencectl makes (consumer or producer) is watched here:
 * librdkafka's log and error callbacks keep its last error instead of
 * printing it (kafka.debug set: they print), ctl_kafka_wait waits for a
 * broker's first answer within timeout_ms and gives up at once when every
 * bootstrap server's name failed to resolve, and each failure is one line
 * naming the bootstrap servers and that last error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "px_kafka.h"
#include "px_time.h"

#define CTL_READ_BATCH 1024

int ctl_kafka_init(ctl_t *c) {
    char errstr[512];
    static const char *const defaults[][2] = {{"bootstrap.servers", "127.0.0.1:9092"}};
    rd_kafka_conf_t *conf = px_kafka_conf_new_with(defaults, 1, &c->kafka, "presencectl", errstr, sizeof errstr);
    if (!conf) {
        fprintf(stderr, "presencectl: %s\n", errstr);
        return CTL_EXIT_ERR;
    }
    size_t n = sizeof c->bootstrap;
    if (rd_kafka_conf_get(conf, "bootstrap.servers", c->bootstrap, &n) != RD_KAFKA_CONF_OK || !c->bootstrap[0])
        snprintf(c->bootstrap, sizeof c->bootstrap, "(none)");
    char dbg[256];
    n = sizeof dbg;
    c->kw.debug = rd_kafka_conf_get(conf, "debug", dbg, &n) == RD_KAFKA_CONF_OK && dbg[0];
    rd_kafka_conf_destroy(conf);
    pthread_mutex_init(&c->kw.mu, NULL);
    /* distinct entries, as "host:port" without a "proto://" head */
    char seen[CTL_BOOTSTRAP_MAX][256];
    c->kw.nbootstrap = 0;
    for (const char *p = c->bootstrap; *p;) {
        p += strspn(p, ", ");
        size_t len = strcspn(p, ", ");
        if (!len) break;
        const char *e = p;
        for (size_t i = 0; i + 2 < len; i++)
            if (memcmp(p + i, "://", 3) == 0) e = p + i + 3;
        size_t el = len - (size_t)(e - p);
        bool dup = false;
        for (size_t i = 0; i < c->kw.nbootstrap && i < CTL_BOOTSTRAP_MAX; i++)
            dup |= strlen(seen[i]) == el && strncmp(seen[i], e, el) == 0;
        if (!dup) {
            if (c->kw.nbootstrap < CTL_BOOTSTRAP_MAX) snprintf(seen[c->kw.nbootstrap], sizeof seen[0], "%.*s", (int)el, e);
            c->kw.nbootstrap++;
        }
        p += len;
    }
    int wl = snprintf(c->kafka_where, sizeof c->kafka_where, "Kafka %s", c->bootstrap);
    if (c->cfg.topic_prefix[0])
        snprintf(c->kafka_where + wl, sizeof c->kafka_where - (size_t)wl, " (topic prefix '%s')", c->cfg.topic_prefix);
    return 0;
}

/* librdkafka's message without its "[thrd:...]: " and "broker/name: "
 * heads and its "(after N ms in state ...)" tail. */
static void clean_reason(const char *in, char *out, size_t n) {
    const char *p = in;
    if (p[0] == '[') {
        const char *e = strstr(p, "]: ");
        if (e) p = e + 3;
    }
    const char *sp = strchr(p, ' ');
    if (sp && sp > p + 1 && sp[-1] == ':' && memchr(p, '/', (size_t)(sp - p))) p = sp + 1;
    size_t len = strlen(p);
    const char *tail = strstr(p, " (after ");
    if (tail) len = (size_t)(tail - p);
    snprintf(out, n, "%.*s", (int)len, p);
}

/* Keep msg as the last error; a bootstrap server's resolve failure also
 * counts its name. */
static void watch_note(ctl_t *c, const char *msg, bool all_down) {
    ctl_kwatch_t *w = &c->kw;
    pthread_mutex_lock(&w->mu);
    if (!all_down || !w->reason[0]) clean_reason(msg, w->reason, sizeof w->reason);
    const char *r = strstr(msg, "/bootstrap: Failed to resolve '");
    if (r) {
        r += strlen("/bootstrap: Failed to resolve '");
        size_t len = strcspn(r, "'");
        bool known = false;
        for (size_t i = 0; i < w->nunresolved; i++)
            known |= strlen(w->unresolved[i]) == len && strncmp(w->unresolved[i], r, len) == 0;
        if (!known && w->nunresolved < CTL_BOOTSTRAP_MAX && len < sizeof w->unresolved[0])
            snprintf(w->unresolved[w->nunresolved++], sizeof w->unresolved[0], "%.*s", (int)len, r);
    }
    pthread_mutex_unlock(&w->mu);
}

/* librdkafka's log, from its own threads: kept, not printed. */
static void ctl_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    ctl_t *c = rk ? rd_kafka_opaque(rk) : NULL;
    if (!c) return;
    if (c->kw.debug) {
        fprintf(stderr, "presencectl: rdkafka %s %s: %s\n", rd_kafka_name(rk), fac, buf);
        return;
    }
    if (level <= 4 && strcmp(fac, "CONFWARN") != 0) watch_note(c, buf, strstr(buf, "brokers are down") != NULL);
}

/* librdkafka's errors (served by rd_kafka_poll): kept likewise. */
static void ctl_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    ctl_t *c = opaque;
    if (c->kw.debug) {
        fprintf(stderr, "presencectl: rdkafka %s error %s: %s\n", rd_kafka_name(rk),
                rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
        return;
    }
    watch_note(c, reason, err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN);
}

/* The callbacks above on a new handle's conf. */
static void watch_conf(ctl_t *c, rd_kafka_conf_t *conf) {
    rd_kafka_conf_set_opaque(conf, c);
    rd_kafka_conf_set_log_cb(conf, ctl_on_log);
    rd_kafka_conf_set_error_cb(conf, ctl_on_error);
}

const char *ctl_kafka_reason(ctl_t *c, char *buf, size_t n) {
    pthread_mutex_lock(&c->kw.mu);
    if (c->kw.reason[0]) snprintf(buf, n, " (last error: %s)", c->kw.reason);
    else buf[0] = '\0';
    pthread_mutex_unlock(&c->kw.mu);
    return buf;
}

int ctl_kafka_wait(ctl_t *c, rd_kafka_t *rk) {
    int64_t deadline = px_mono_ms() + c->cfg.timeout_ms;
    /* rd_kafka_metadata blocks for its whole timeout while no broker is up:
     * short slices first, so a resolve failure stops the wait at once;
     * growing ones after, so a slow cluster's answer still fits one */
    int64_t slice = 250;
    for (;;) {
        char reason[600];
        pthread_mutex_lock(&c->kw.mu);
        bool unresolved = c->kw.nbootstrap && c->kw.nunresolved >= c->kw.nbootstrap;
        snprintf(reason, sizeof reason, "%s", c->kw.reason);
        pthread_mutex_unlock(&c->kw.mu);
        if (unresolved) {
            fprintf(stderr, "presencectl %s: Kafka %s unreachable: %s\n", c->cmd, c->bootstrap, reason);
            return CTL_EXIT_ERR;
        }
        int64_t left = deadline - px_mono_ms();
        if (left <= 0) {
            fprintf(stderr, "presencectl %s: Kafka %s unreachable: no broker answered within %g s (--timeout)%s%s\n",
                    c->cmd, c->bootstrap, (double)c->cfg.timeout_ms / 1000, reason[0] ? "; last error: " : "",
                    reason);
            return CTL_EXIT_ERR;
        }
        const rd_kafka_metadata_t *md = NULL;
        rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, (int)(left < slice ? left : slice));
        rd_kafka_poll(rk, 0); /* the error callback */
        if (!err) {
            rd_kafka_metadata_destroy(md);
            pthread_mutex_lock(&c->kw.mu);
            c->kw.reason[0] = '\0'; /* what failed before this answer is no reason for a later failure */
            pthread_mutex_unlock(&c->kw.mu);
            return 0;
        }
        if (slice < 8000) slice *= 2;
    }
}

rd_kafka_t *ctl_consumer_new(ctl_t *c) {
    char errstr[512];
    static const char *const defaults[][2] = {{"bootstrap.servers", "127.0.0.1:9092"},
                                              {"group.id", "presencectl"},
                                              {"enable.auto.commit", "false"},
                                              {"enable.auto.offset.store", "false"},
                                              {"isolation.level", "read_committed"},
                                              {"fetch.max.bytes", "52428800"},
                                              {"max.partition.fetch.bytes", "8388608"},
                                              /* prefetch bound: more did not read faster */
                                              {"queued.max.messages.kbytes", "65536"},
                                              /* a partition holding queued.min.messages
                                               * (default 100000) in the queue is not
                                               * fetched again for a while: the fold
                                               * waited ~1 s of a 3.4 s read of 1.8M
                                               * small records on 6 partitions. The
                                               * kbytes bound above still caps memory. */
                                              {"queued.min.messages", "1000000"}};
    rd_kafka_conf_t *conf =
        px_kafka_conf_new_with(defaults, sizeof defaults / sizeof defaults[0], &c->kafka, "presencectl", errstr,
                               sizeof errstr);
    if (!conf) {
        fprintf(stderr, "presencectl: %s\n", errstr);
        return NULL;
    }
    watch_conf(c, conf);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "presencectl: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* Delivery reports: a message's opaque, when set, is a ctl_dr_t. */
static void ctl_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    (void)rk;
    (void)opaque;
    ctl_dr_t *d = m->_private;
    if (!d) return;
    d->done = true;
    d->err = m->err;
    d->partition = m->partition;
    d->offset = m->offset;
}

rd_kafka_t *ctl_producer_new(ctl_t *c, const char *transactional_id) {
    char errstr[512];
    const char *defaults[][2] = {{"bootstrap.servers", "127.0.0.1:9092"},
                                 {"partitioner", "murmur2_random"},
                                 {"enable.idempotence", "true"},
                                 {"message.timeout.ms", "30000"},
                                 {"transactional.id", transactional_id}};
    rd_kafka_conf_t *conf = px_kafka_conf_new_with((const char *const(*)[2])defaults,
                                                   transactional_id ? 5 : 4, &c->kafka, "presencectl", errstr,
                                                   sizeof errstr);
    if (!conf) {
        fprintf(stderr, "presencectl: %s\n", errstr);
        return NULL;
    }
    char tmo[32];
    snprintf(tmo, sizeof tmo, "%lld", (long long)(c->cfg.timeout_ms < 1000 ? 1000 : c->cfg.timeout_ms));
    rd_kafka_conf_set(conf, "message.timeout.ms", tmo, NULL, 0);
    rd_kafka_conf_set_dr_msg_cb(conf, ctl_on_delivery);
    watch_conf(c, conf);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "presencectl: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

int ctl_partition_count(ctl_t *c, rd_kafka_t *rk, const char *topic) {
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, (int)c->cfg.timeout_ms);
    rd_kafka_topic_destroy(rkt);
    int n = -1;
    char why[600];
    if (err) {
        fprintf(stderr, "presencectl %s: Kafka %s: metadata of %s: %s%s\n", c->cmd, c->bootstrap, topic,
                rd_kafka_err2str(err), ctl_kafka_reason(c, why, sizeof why));
    } else if (md->topic_cnt != 1 || md->topics[0].err) {
        rd_kafka_resp_err_t e = md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
        fprintf(stderr, "presencectl %s: topic %s: %s at Kafka %s\n", c->cmd, topic,
                e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? "no such topic (presencectl topics create?)"
                                                             : rd_kafka_err2str(e),
                c->bootstrap);
    } else {
        n = md->topics[0].partition_cnt;
    }
    if (md) rd_kafka_metadata_destroy(md);
    return n;
}

/* Offsets of the first record at or after ts in every partition (-1 where
 * there is none). 0 or an error printed. */
static int offsets_at(ctl_t *c, rd_kafka_t *rk, const char *topic, int np, int64_t ts, int64_t *out) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++) rd_kafka_topic_partition_list_add(l, topic, p)->offset = ts;
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, l, (int)c->cfg.timeout_ms);
    for (int p = 0; !err && p < l->cnt; p++) {
        if (l->elems[p].err) err = l->elems[p].err;
        else out[l->elems[p].partition] = l->elems[p].offset;
    }
    rd_kafka_topic_partition_list_destroy(l);
    char why[600];
    if (err)
        fprintf(stderr, "presencectl %s: Kafka %s: %s: offsets for time %lld: %s%s\n", c->cmd, c->bootstrap, topic,
                (long long)ts, rd_kafka_err2str(err), ctl_kafka_reason(c, why, sizeof why));
    return err ? -1 : 0;
}

static void progress(const char *topic, uint64_t done, uint64_t total, int64_t t0_us, bool last) {
    double s = (double)(px_mono_us() - t0_us) / 1e6;
    fprintf(stderr, "\r%-40.40s %10" PRIu64 "/%-10" PRIu64 " %3d%% %9.0f rec/s%s", topic, done, total,
            total ? (int)(done * 100 / total) : 100, s > 0 ? (double)done / s : 0.0, last ? "\n" : "");
}

/* The offsets to read in each of topic's np partitions, [start, end): the
 * watermarks, start moved up to the first record at r->from_ms. 0, or -1
 * after saying why. */
static int read_bounds(ctl_t *c, rd_kafka_t *rk, const char *topic, int np, const ctl_range_t *r, int64_t *start,
                       int64_t *end) {
    char why[600];
    for (int p = 0; p < np; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, (int)c->cfg.timeout_ms);
        if (err) {
            fprintf(stderr, "presencectl %s: Kafka %s: %s [%d]: watermarks: %s%s\n", c->cmd, c->bootstrap, topic, p,
                    rd_kafka_err2str(err), ctl_kafka_reason(c, why, sizeof why));
            return -1;
        }
        start[p] = lo;
        end[p] = hi;
    }
    if (r && r->from_ms > 0) {
        int64_t *at = calloc((size_t)np, sizeof *at);
        if (!at || offsets_at(c, rk, topic, np, r->from_ms, at)) {
            free(at);
            return -1;
        }
        for (int p = 0; p < np; p++) start[p] = at[p] < 0 ? end[p] : at[p] > start[p] ? at[p] : start[p];
        free(at);
    }
    return 0;
}

/* Assign rk the partitions of topic with records in [start, end) (*lp,
 * the caller's to destroy); *remaining counts them, *total their records.
 * 0, or -1 after saying why. */
static int read_assign(ctl_t *c, rd_kafka_t *rk, const char *topic, int np, const int64_t *start,
                       const int64_t *end, rd_kafka_topic_partition_list_t **lp, size_t *remaining,
                       uint64_t *total) {
    rd_kafka_topic_partition_list_t *l = *lp = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++)
        if (end[p] > start[p]) {
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = start[p];
            (*remaining)++;
            *total += (uint64_t)(end[p] - start[p]);
        }
    rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, l);
    if (aerr) {
        fprintf(stderr, "presencectl %s: Kafka %s: %s: assign: %s\n", c->cmd, c->bootstrap, topic,
                rd_kafka_err2str(aerr));
        return -1;
    }
    return 0;
}

/* How many of l's partitions rk's positions have not brought to their end. */
static size_t read_remaining(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *l, const int64_t *end) {
    size_t remaining = 0;
    rd_kafka_topic_partition_list_t *ps = rd_kafka_topic_partition_list_copy(l);
    rd_kafka_position(rk, ps);
    for (int i = 0; i < ps->cnt; i++)
        if (ps->elems[i].offset < end[ps->elems[i].partition]) remaining++;
    rd_kafka_topic_partition_list_destroy(ps);
    return remaining;
}

/* Stop fetching a partition of topic. */
static void read_pause(rd_kafka_t *rk, const char *topic, int32_t partition) {
    rd_kafka_topic_partition_list_t *one = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(one, topic, partition);
    rd_kafka_pause_partitions(rk, one);
    rd_kafka_topic_partition_list_destroy(one);
}

/* The end of topic's read: 0 when every partition reached its end, else
 * CTL_EXIT_ERR after saying why. */
static int read_outcome(ctl_t *c, const char *topic, size_t remaining) {
    char why[600];
    if (c->n_unavailable)
        fprintf(stderr, "presencectl %s: %s: stopped: the schema registry %s did not answer for a record's schema\n",
                c->cmd, topic, c->cfg.schema.url);
    else if (remaining)
        fprintf(stderr,
                "presencectl %s: Kafka %s: %s: no progress for %g s before the end of the topic (--timeout; a "
                "transaction a crashed producer left open holds read_committed readers until it times out)%s\n",
                c->cmd, c->bootstrap, topic, (double)c->cfg.timeout_ms / 1000, ctl_kafka_reason(c, why, sizeof why));
    else return 0;
    return CTL_EXIT_ERR;
}

/* c->prefetch's stages for the first records of a batch of nb. */
static inline void read_prefetch_head(ctl_t *c, rd_kafka_message_t **batch, ssize_t nb) {
    for (ssize_t i = 0; i < nb && i < CTL_PREFETCH_AHEAD0; i++) {
        c->prefetch(c, batch[i], (size_t)i, 0);
        if (i < CTL_PREFETCH_AHEAD1) c->prefetch(c, batch[i], (size_t)i, 1);
        if (i < CTL_PREFETCH_AHEAD2) c->prefetch(c, batch[i], (size_t)i, 2);
    }
}

/* At record i of a batch of nb: each prefetch stage a fixed distance ahead. */
static inline void read_prefetch_ahead(ctl_t *c, rd_kafka_message_t **batch, ssize_t nb, ssize_t i) {
    static const ssize_t ahead[3] = {CTL_PREFETCH_AHEAD0, CTL_PREFETCH_AHEAD1, CTL_PREFETCH_AHEAD2};
    for (int st = 0; st < 3; st++)
        if (i + ahead[st] < nb) c->prefetch(c, batch[i + ahead[st]], (size_t)(i + ahead[st]), st);
}

int ctl_read_topic(ctl_t *c, const char *topic, const ctl_range_t *r, ctl_rec_fn fn, void *arg) {
    rd_kafka_t *rk = ctl_consumer_new(c);
    if (!rk) return CTL_EXIT_ERR;
    int rc = CTL_EXIT_ERR;
    int64_t *start = NULL, *end = NULL;
    rd_kafka_topic_partition_list_t *l = NULL;
    int np = ctl_kafka_wait(c, rk) ? -1 : ctl_partition_count(c, rk, topic);
    if (np <= 0) goto out;
    start = calloc((size_t)np, sizeof *start);
    end = calloc((size_t)np, sizeof *end);
    if (!start || !end) goto out;
    if (read_bounds(c, rk, topic, np, r, start, end)) goto out;
    size_t remaining = 0;
    uint64_t total = 0, done = 0;
    if (read_assign(c, rk, topic, np, start, end, &l, &remaining, &total)) goto out;
    int64_t t0 = px_mono_us(), last_shown = 0, last_msg = px_mono_ms();
    /* Messages come in batches from the consumer queue: one queue lock per
     * batch instead of per message (rd_kafka_consumer_poll's lock waits
     * were 4% of a replay). Safe here: pause/position are called from this
     * thread only, between batches' messages, never concurrently. */
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
    rd_kafka_message_t *batch[CTL_READ_BATCH];
    rd_kafka_resp_err_t last_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    while (remaining && !c->n_unavailable) {
        /* what is queued, without waiting for a full batch (the call waits
         * until it has CTL_READ_BATCH messages or the timeout: that was
         * 100 ms at the end of every topic, and more whenever the fold had
         * caught up with the fetches); only an empty queue is waited on,
         * for one message */
        ssize_t nb = rd_kafka_consume_batch_queue(q, 0, batch, CTL_READ_BATCH);
        if (nb == 0 && (batch[0] = rd_kafka_consume_queue(q, 100)) != NULL) nb = 1;
        if (c->progress && px_mono_ms() - last_shown >= 250) {
            progress(topic, done, total, t0, false);
            last_shown = px_mono_ms();
        }
        if (nb <= 0) {
            rd_kafka_poll(rk, 0); /* the error callback */
            if (px_mono_ms() - last_msg > c->cfg.timeout_ms) break;
            /* positions advance over control and aborted records without a message */
            remaining = read_remaining(rk, l, end);
            continue;
        }
        last_msg = px_mono_ms();
        if (c->prefetch) /* the first records' stages, then each stage a fixed distance ahead */
            read_prefetch_head(c, batch, nb);
        for (ssize_t i = 0; i < nb; i++) {
            rd_kafka_message_t *m = batch[i];
            if (c->prefetch) read_prefetch_ahead(c, batch, nb, i);
            if (!m->err) {
                if (m->offset < end[m->partition]) {
                    done++;
                    int64_t ts = rd_kafka_message_timestamp(m, NULL);
                    if (!r || (ts >= r->from_ms && ts < r->to_ms)) fn(c, m, arg);
                    if (m->offset + 1 >= end[m->partition]) {
                        read_pause(rk, topic, m->partition); /* this partition is done */
                        end[m->partition] = -1; /* any later position counts as past the end */
                        remaining--;
                    }
                }
            } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && m->err != last_err) {
                /* once per error in a row, not once per retry */
                fprintf(stderr, "presencectl %s: Kafka %s: %s [%d]: %s\n", c->cmd, c->bootstrap, topic,
                        (int)m->partition, rd_kafka_message_errstr(m));
                last_err = m->err;
            }
            rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_queue_destroy(q);
    if (c->progress) progress(topic, done, total, t0, true);
    rc = read_outcome(c, topic, remaining);
out:
    if (l) rd_kafka_topic_partition_list_destroy(l);
    free(start);
    free(end);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}
