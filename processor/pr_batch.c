/*
 * pr_batch.c - one batch of the processor, the unit of exactly-once
 * (docs/exactly-once.md):
 *
 *   collect  up to batch.max_records records of the input and retry topics
 *            (a rebalance meanwhile drops the batch; the repair check of
 *            each new partition then seeks every topic explicitly)
 *   load     the entities not in memory, one pipelined read
 *   fold     each record once (the entity watermark skips what the stored
 *            state already holds); change events, retry and DLQ records and
 *            the EXPIREs of due deadlines are produced inside a transaction
 *   commit   the transaction with the consumed offsets
 *   flush    every changed entity to Redis, watermark-guarded, then the
 *            applied marks
 *
 * Records below a partition's repair bound were committed by an earlier
 * owner whose Redis writes may be missing: they are folded and written, but
 * produce nothing and are not part of the offsets. A transaction that must
 * abort drops the entities of its partitions and runs their repair check
 * again, as after an assignment (no entity is dirty when a batch starts).
 * Retry topics: a record whose failure may pass goes to <topic>.retry with
 * a due time and its entity's sequence number; an entity's later records
 * follow it there, so its records apply in order ("Retry topics" in
 * docs/exactly-once.md).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pr.h"
#include "px_lcjson.h"
#include "px_log.h"
#include "px_proto.h"
#include "px_time.h"

#define PR_MAX_DUE 4096

/* Where a record came from before it went through a retry topic (for a
 * record of an input topic: its own coordinates, attempt 0). */
typedef struct orig {
    int64_t offset, ts, attempt, due, seq;
} orig_t;

typedef struct batch {
    pr_ctx_t *pr;
    rd_kafka_message_t **msgs;
    px_event_t *evs;
    int *ok;          /* 1: decoded; 0: poison (DLQ) */
    int *src;         /* the consumed topic of each record (0..PR_N_SRC), looked up once */
    uint64_t *hash;   /* of each decoded record's key (pr_table_hash) */
    orig_t *orig;
    pr_entity_t **ents;
    pr_entity_t **decided; /* entities with a LOCK_GRANTED/LOCK_DENIED in this batch */
    size_t n, n_decided;
    int64_t t_collect_us; /* monotonic time the batch was taken */
    /* per partition x source: first offset consumed in this batch */
    int64_t first[PR_MAX_PARTITIONS][PR_N_SRC];
    /* partitions of the entities it produced EXPIREs for: px_fold_due marks
     * the items as requested in memory, so if the batch does not commit
     * those entities must go too (they are loaded again and ask again) */
    bool touched[PR_MAX_PARTITIONS];
    /* per partition x retry topic: the first record not yet due (-1: none);
     * the topic is held there until blocked_due */
    int64_t blocked[PR_MAX_PARTITIONS][PX_SRC__COUNT], blocked_due[PR_MAX_PARTITIONS][PX_SRC__COUNT];
    bool redis_failed; /* a reload in the fold failed: the batch must not count */
    bool txn_open;
    bool produce_failed;
    pr_entity_t *cur;
    rd_kafka_message_t *cur_msg;
    bool repair;
    /* Records held while the previous batch's transaction is in flight
     * (pr_commit.c): produced in order once it committed. */
    bool holding;
    bool prev_failed;  /* the transaction in flight failed: this batch is dropped at its seal */
    px_buf_t held;     /* topic, key and value bytes of the held records */
    struct held_rec {
        size_t topic, key, klen, val, vlen; /* offsets into held */
        int32_t partition;
        rd_kafka_headers_t *hdrs;
    } *recs;
    size_t n_recs;
} batch_t;

/* Bounds of the held records; a batch that reaches one waits for the
 * transaction in flight and produces directly from then on. */
#define PR_HELD_BYTES (64u << 20)
#define PR_HELD_RECS 65536

/* ---- producing inside the transaction --------------------------------- */

static int produce(pr_ctx_t *pr, const char *topic, int32_t partition, const void *key, size_t klen,
                   const void *val, size_t vlen, rd_kafka_headers_t *hdrs) {
    for (int attempt = 0;; attempt++) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            pr->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)val, vlen),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (!err) return 0;
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 100) {
            rd_kafka_poll(pr->producer, 10);
            continue;
        }
        if (hdrs) rd_kafka_headers_destroy(hdrs);
        px_counter_add(pr->m_kafka_err, 1);
        PX_ERROR(PR_COMP, "produce failed", "topic=%s err=%s", topic, rd_kafka_err2name(err));
        return PX_EBACKEND;
    }
}

/* Hold one record (copies its bytes). 0, or PX_ENOMEM when full. */
static int hold(batch_t *b, const char *topic, int32_t partition, const void *key, size_t klen, const void *val,
                size_t vlen, rd_kafka_headers_t *hdrs) {
    if (b->n_recs == PR_HELD_RECS) return PX_ENOMEM;
    size_t mark = b->held.len, tl = strlen(topic) + 1;
    struct held_rec *r = &b->recs[b->n_recs];
    r->topic = b->held.len;
    int rc = px_buf_append(&b->held, topic, tl);
    r->key = b->held.len;
    r->klen = klen;
    if (!rc) rc = px_buf_append(&b->held, key, klen);
    r->val = b->held.len;
    r->vlen = vlen;
    if (!rc) rc = px_buf_append(&b->held, val, vlen);
    if (rc) {
        b->held.len = mark;
        return PX_ENOMEM;
    }
    r->partition = partition;
    r->hdrs = hdrs;
    b->n_recs++;
    return 0;
}

static void held_drop(batch_t *b) {
    for (size_t i = 0; i < b->n_recs; i++)
        if (b->recs[i].hdrs) rd_kafka_headers_destroy(b->recs[i].hdrs);
    b->n_recs = 0;
    px_buf_reset(&b->held);
    b->holding = false;
}

static bool txn_begin(batch_t *b);

/* One record into the batch's transaction, begun if need be. After a
 * failure nothing more is produced (the batch is dropped at its seal).
 * The headers are librdkafka's from here, or freed. */
static void produce_in_txn(batch_t *b, const char *topic, int32_t partition, const void *key, size_t klen,
                           const void *val, size_t vlen, rd_kafka_headers_t *hdrs) {
    if (b->produce_failed || !txn_begin(b)) {
        if (hdrs) rd_kafka_headers_destroy(hdrs);
        b->produce_failed = true;
        return;
    }
    if (produce(b->pr, topic, partition, key, klen, val, vlen, hdrs)) b->produce_failed = true;
}

/* The transaction in flight committed: the held records go to the
 * producer, in the order they were made. */
static void release(batch_t *b) {
    for (size_t i = 0; i < b->n_recs; i++) {
        struct held_rec *r = &b->recs[i];
        rd_kafka_headers_t *h = r->hdrs;
        r->hdrs = NULL;
        produce_in_txn(b, b->held.data + r->topic, r->partition, b->held.data + r->key, r->klen,
                       b->held.data + r->val, r->vlen, h);
    }
    held_drop(b);
}

/* Every record the batch makes goes through here: produced in the batch's
 * transaction, or held while the previous transaction is in flight. A
 * holding batch that fills its buffer waits for that transaction (nothing
 * in memory changes during the wait) and produces directly from then on;
 * if that transaction failed, nothing more is kept: the batch is dropped
 * at its seal. */
static void emit(batch_t *b, const char *topic, int32_t partition, const void *key, size_t klen, const void *val,
                 size_t vlen, rd_kafka_headers_t *hdrs) {
    if (b->holding) {
        if (hold(b, topic, partition, key, klen, val, vlen, hdrs) == 0) return;
        if (pr_commit_wait(b->pr)) b->prev_failed = true;
        b->holding = false;
        if (!b->prev_failed) release(b);
    }
    if (b->prev_failed) {
        if (hdrs) rd_kafka_headers_destroy(hdrs);
        return;
    }
    produce_in_txn(b, topic, partition, key, klen, val, vlen, hdrs);
}

/* A transaction ended (committed or aborted): the next one goes to the
 * other producer, whose last transaction had a whole batch's time to be
 * completed by the broker (pr.h: producers). */
static void txn_end(batch_t *b) {
    pr_ctx_t *pr = b->pr;
    b->txn_open = false;
    pr->cur_producer = !pr->cur_producer;
    pr->producer = pr->producers[pr->cur_producer];
}

static bool txn_begin(batch_t *b) {
    if (b->txn_open) return true;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(b->pr->producer);
    if (e) {
        PX_ERROR(PR_COMP, "begin_transaction failed", "err=\"%s\" fatal=%d", rd_kafka_error_string(e),
                 rd_kafka_error_is_fatal(e));
        if (rd_kafka_error_is_fatal(e)) pr_fatal(b->pr, "a transactional producer failed for good");
        rd_kafka_error_destroy(e);
        b->produce_failed = true;
        return false;
    }
    b->txn_open = true;
    return true;
}

/* Headers naming a record's origin: the input topic, partition, offset
 * and timestamp it was first consumed at, and the attempt. */
static rd_kafka_headers_t *origin_headers(const char *topic, int32_t p, const orig_t *o, const char *err) {
    char num[32];
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    rd_kafka_header_add(h, "px.error", -1, err, -1);
    rd_kafka_header_add(h, "px.topic", -1, topic, -1);
    snprintf(num, sizeof num, "%" PRId32, p);
    rd_kafka_header_add(h, "px.partition", -1, num, -1);
    snprintf(num, sizeof num, "%" PRId64, o->offset);
    rd_kafka_header_add(h, "px.offset", -1, num, -1);
    snprintf(num, sizeof num, "%" PRId64, o->ts);
    rd_kafka_header_add(h, "px.timestamp", -1, num, -1);
    snprintf(num, sizeof num, "%" PRId64, o->attempt);
    rd_kafka_header_add(h, "px.attempt", -1, num, -1);
    return h;
}

/* The original bytes to <input topic>.dlt with the error and where they
 * came from (fs: the input topic; o: the original coordinates). */
static void dead_letter(batch_t *b, const rd_kafka_message_t *m, int fs, const orig_t *o, const char *err) {
    pr_ctx_t *pr = b->pr;
    char topic[sizeof pr->topics[0] + 8];
    const char *src = pr->topics[fs];
    snprintf(topic, sizeof topic, "%s.dlt", src);
    rd_kafka_headers_t *h = origin_headers(src, m->partition, o, err);
    emit(b, topic, RD_KAFKA_PARTITION_UA, m->key, m->key_len, m->payload, m->len, h);
    px_counter_add(pr->m_dlq, 1);
    PX_WARN(PR_COMP, "record sent to the DLQ", "topic=%s partition=%d offset=%lld attempt=%lld err=\"%s\"", src,
            m->partition, (long long)o->offset, (long long)o->attempt, err);
}

/* The original bytes to <input topic>.retry, same partition, with the
 * attempt, the wall-clock time it is due and the entity's sequence number
 * (pr.h: retry order). */
static void send_retry(batch_t *b, const rd_kafka_message_t *m, int fs, const orig_t *o, int64_t attempt,
                       int64_t due, uint32_t seq, const char *err) {
    pr_ctx_t *pr = b->pr;
    char num[32];
    orig_t n = *o;
    n.attempt = attempt;
    rd_kafka_headers_t *h = origin_headers(pr->topics[fs], m->partition, &n, err);
    snprintf(num, sizeof num, "%" PRId64, due);
    rd_kafka_header_add(h, "px.due", -1, num, -1);
    snprintf(num, sizeof num, "%" PRIu32, seq);
    rd_kafka_header_add(h, "px.seq", -1, num, -1);
    emit(b, pr->topics[PR_RETRY(fs)], m->partition, m->key, m->key_len, m->payload, m->len, h);
    if (attempt > 0) px_counter_add(pr->m_retries, 1);
}

/* Delay before attempt k (1-based): base * 3^(k-1). */
static int64_t retry_delay(const pr_ctx_t *pr, int64_t k) {
    int64_t d = pr->cfg.retry_base_ms;
    for (int64_t i = 1; i < k && d < 3600000; i++) d *= 3;
    return d;
}

/* Append one change to an open JSON array of changes for the gateways
 * (an entity's notification or its decisions). A full buffer keeps what
 * it has: the gateways re-read the entity anyway. */
static void notify_add(px_buf_t *n, const px_event_t *c) {
    if (n->len && n->data[n->len - 1] == ']') n->data[--n->len] = '\0'; /* closed by a flush that failed */
    size_t mark = n->len;
    /* empty: open the array; "[" alone (an entity made dirty again after a
     * failed write, pr_redis_snap_drop): no separator yet */
    int rc = px_buf_puts(n, !n->len ? "[" : n->len == 1 ? "" : ",");
    if (!rc) rc = px_buf_printf(n, "{\"type\":\"%s\"", px_event_type_name(PX_KIND_CHANGE, c->type));
    const struct {
        const char *k, *v;
    } s[] = {{"user", c->user_id}, {"tab_id", c->tab_id}, {"field", c->field},
             {"request_id", c->request_id}, {"holder", c->holder_user_id}, {"holder_name", c->holder_name}};
    for (size_t i = 0; !rc && i < sizeof s / sizeof s[0]; i++)
        if (s[i].v[0]) {
            rc = px_buf_printf(n, ",\"%s\":", s[i].k);
            if (!rc) rc = px_proto_write_string(n, s[i].v);
        }
    if (!rc && c->token >= 0) rc = px_buf_printf(n, ",\"token\":%lld", (long long)c->token);
    if (!rc) rc = px_buf_puts(n, "}");
    if (rc) { /* too many changes in one batch: the gateways re-read anyway */
        n->len = mark;
        if (n->data) n->data[mark] = '\0';
    }
}

static void on_change(void *arg, const px_event_t *ev) {
    batch_t *b = arg;
    pr_ctx_t *pr = b->pr;
    if (b->repair) return; /* committed by an earlier owner already */
    px_event_t c = *ev;
    snprintf(c.src_topic, sizeof c.src_topic, "%s", rd_kafka_topic_name(b->cur_msg->rkt));
    char err[256], key[PX_KEY_MAX + 1];
    px_buf_reset(&pr->val);
    if (px_avro_encode(pr->avro, &c, &pr->val, err, sizeof err)) {
        PX_ERROR(PR_COMP, "change event does not encode", "err=\"%s\"", err);
        b->produce_failed = true;
        return;
    }
    int kl = px_key_format(&c.key, key, sizeof key);
    emit(b, pr->topic_changes, RD_KAFKA_PARTITION_UA, key, (size_t)kl, pr->val.data, pr->val.len, NULL);
    px_counter_add(pr->m_changes, 1);
    if (c.type == PX_CH_LOCK_GRANTED) px_counter_add(pr->m_locks_acquired, 1);
    notify_add(&b->cur->notify, &c);
    if ((c.type == PX_CH_LOCK_GRANTED || c.type == PX_CH_LOCK_DENIED) &&
        (b->cur->decided || b->n_decided < (size_t)pr->cfg.batch_max)) {
        notify_add(&b->cur->decisions, &c);
        if (!b->cur->decided) b->decided[b->n_decided++] = b->cur;
        b->cur->decided = true;
    }
}

/* End the batch's early lock decisions: publish them (pr_redis_decisions)
 * or, when the batch aborts for a Redis reason, forget them. Publishing
 * before the transaction commits is safe because a decision is a
 * function of the committed input log alone: the fold is deterministic
 * and every record before this one in its partition is decided
 * (read_committed), so a batch that aborts and is folded again, by this
 * instance or the next owner, decides the same (docs/exactly-once.md,
 * "Early lock decisions"). Not after an abort for a Redis reason: states
 * may then come from a dataset that is gone. */
static void decisions_end(batch_t *b, bool publish) {
    if (publish && b->n_decided) {
        px_counter_add(b->pr->m_decided, pr_redis_decisions(b->pr, b->decided, b->n_decided));
        px_hist_observe(b->pr->m_decide_ms, (double)(px_mono_us() - b->t_collect_us) / 1000.0);
    }
    for (size_t i = 0; i < b->n_decided; i++) {
        b->decided[i]->decided = false;
        px_buf_reset(&b->decided[i]->decisions);
    }
    b->n_decided = 0;
}

static void on_expire(void *arg, const px_event_t *ev) {
    batch_t *b = arg;
    pr_ctx_t *pr = b->pr;
    char err[256], key[PX_KEY_MAX + 1];
    int s = ev->kind == PX_KIND_PRESENCE ? PX_SRC_HEARTBEATS
                       : ev->kind == PX_KIND_LOCK   ? PX_SRC_LOCKS
                                                    : PX_SRC_MUTATING;
    px_buf_reset(&pr->val);
    if (px_avro_encode(pr->avro, ev, &pr->val, err, sizeof err)) {
        PX_ERROR(PR_COMP, "EXPIRE does not encode", "err=\"%s\"", err);
        b->produce_failed = true;
        return;
    }
    int kl = px_key_format(&ev->key, key, sizeof key);
    if (b->cur->partition >= 0 && b->cur->partition < PR_MAX_PARTITIONS) b->touched[b->cur->partition] = true;
    emit(b, pr->topics[s], b->cur->partition, key, (size_t)kl, pr->val.data, pr->val.len, NULL);
    px_counter_add(pr->m_expires, 1);
}

/* ---- repair check -------------------------------------------------------- */

/* True while some source topic of the partition is below its repair bound. */
static bool part_repairing(const pr_part_t *pp) {
    for (int s = 0; s < PR_N_SRC; s++)
        if (pp->repair_until[s] >= 0 && pp->next[s] < pp->repair_until[s]) return true;
    return false;
}

/* Position every source of partition p (the list's offsets), waiting for
 * the outcome. librdkafka refuses a seek (ERR__STATE) while a partition's
 * fetcher has not started: for a fresh assignment the consumer first
 * fetches the committed offsets itself (with read_committed it retries that
 * for as long as an open transaction makes them unstable, e.g. one of a
 * killed instance) and then starts the fetcher there. A seek sent without
 * waiting (as before) was dropped silently in that window, the partition
 * started at its committed offset, and a repair range [applied, committed)
 * was never folded into Redis ("The proof, and what it found" in
 * docs/exactly-once.md). A refused seek leaves the check to the next turn;
 * once the fetcher runs, nothing but our own seeks moves it. */
static int seek_sources(pr_ctx_t *pr, int32_t p, rd_kafka_topic_partition_list_t *l) {
    pr_part_t *pp = &pr->parts[p];
    rd_kafka_error_t *e = rd_kafka_seek_partitions(pr->consumer, l, 5000);
    rd_kafka_resp_err_t err = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
    const char *topic = "";
    if (e) rd_kafka_error_destroy(e);
    for (int i = 0; !err && i < l->cnt; i++)
        if (l->elems[i].err) {
            err = l->elems[i].err;
            topic = l->elems[i].topic;
        }
    if (!err) return 0;
    if (err == RD_KAFKA_RESP_ERR__STATE) { /* the fetcher has not started yet: expected, logged once */
        if (!pp->seek_refused)
            PX_INFO(PR_COMP, "repair check waits for the consumer to start the partition", "partition=%d topic=%s", p,
                    topic);
        pp->seek_refused = true;
        return PX_EBACKEND;
    }
    px_counter_add(pr->m_kafka_err, 1);
    PX_WARN(PR_COMP, "seek failed; will retry the repair check", "partition=%d topic=%s err=%s", p, topic,
            rd_kafka_err2name(err));
    return PX_EBACKEND;
}

/* For each newly assigned partition number: committed offsets C, applied
 * marks A; where A < C, seek to A and fold [A, C) in repair mode. Then load
 * the entities with pending deadlines and resume. */
static int repair_checks(pr_ctx_t *pr) {
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        pr_part_t *pp = &pr->parts[p];
        if (!pp->assigned || !pp->repair_check) continue;
        /* a check may drop the partition's entities: nothing may be in
         * flight that names them (rare: after an assignment or a rewind) */
        if (pr_quiesce(pr)) return PX_EBACKEND;
        int64_t applied[PR_N_SRC];
        if (pr_redis_applied(pr, p, applied)) return PX_EBACKEND;
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PR_N_SRC);
        for (int s = 0; s < PR_N_SRC; s++) rd_kafka_topic_partition_list_add(l, pr->topics[s], p);
        rd_kafka_resp_err_t err = rd_kafka_committed(pr->consumer, l, 10000);
        /* librdkafka sorts the list by topic name in the request: look each
         * source topic up by name, never by its index in the list (reading
         * by index took one topic's committed offset for another's, and a
         * repair then skipped records Redis did not hold) */
        int64_t committed[PR_N_SRC];
        for (int s = 0; s < PR_N_SRC; s++) committed[s] = -1;
        for (int s = 0; !err && s < PR_N_SRC; s++) {
            const rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_find(l, pr->topics[s], p);
            if (!tp) err = RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
            else if (tp->err) err = tp->err; /* e.g. UNSTABLE_OFFSET_COMMIT: a transaction still open */
            else committed[s] = tp->offset;
        }
        if (err) {
            PX_WARN(PR_COMP, "cannot read committed offsets; will retry", "partition=%d err=%s", p,
                    rd_kafka_err2name(err));
            rd_kafka_topic_partition_list_destroy(l);
            return PX_EBACKEND;
        }
        rd_kafka_topic_partition_list_destroy(l);
        /* Where each source starts. Every source is sought explicitly, the
         * ones without a gap to their committed offset too: a record
         * delivered (and dropped) between the assignment and this check
         * moved the position on, and resuming from there would skip it. */
        int64_t until[PR_N_SRC];
        rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(PR_N_SRC);
        for (int s = 0; s < PR_N_SRC; s++) {
            int64_t c = committed[s]; /* < 0: nothing committed yet */
            int64_t a = pp->full_rebuild ? -1 : applied[s];
            int64_t from = c >= 0 ? c : RD_KAFKA_OFFSET_BEGINNING;
            until[s] = -1;
            if (c > 0 && a < c) { /* fold [a, c) again, emitting nothing */
                until[s] = c;
                from = a < 0 ? RD_KAFKA_OFFSET_BEGINNING : a;
            }
            rd_kafka_topic_partition_list_add(seek, pr->topics[s], p)->offset = from;
        }
        int rc = seek_sources(pr, p, seek);
        rd_kafka_topic_partition_list_destroy(seek);
        if (rc) return rc;
        /* records still waiting in the retry topics: their entities' order */
        if (pr_kafka_scan_retries(pr, p, committed)) {
            pr_table_drop_partition(pr, p); /* half-scanned: start clean next time */
            return PX_EBACKEND;
        }
        for (int s = 0; s < PR_N_SRC; s++) {
            pp->repair_until[s] = until[s];
            if (until[s] < 0) continue;
            int64_t a = pp->full_rebuild ? -1 : applied[s];
            pp->next[s] = a; /* Redis holds everything below a (-1: nothing) */
            PX_INFO(PR_COMP, "repairing", "topic=%s partition=%d from=%lld to=%lld", pr->topics[s], p, (long long)a,
                    (long long)until[s]);
        }
        PX_INFO(PR_COMP, "repair check", "partition=%d committed=%lld,%lld,%lld,%lld applied=%lld,%lld,%lld,%lld rebuild=%d",
                p, (long long)committed[0], (long long)committed[1], (long long)committed[2], (long long)committed[3],
                (long long)applied[0], (long long)applied[1], (long long)applied[2],
                (long long)applied[3], pp->full_rebuild);
        /* entities with pending deadlines: their timers live here now */
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
        rc = ne ? pr_redis_load(pr, ents, ne) : 0;
        free(ents);
        free(keys);
        if (rc == PX_EBACKEND) {
            /* the entities just added were never loaded: a later check would
             * find them in the table and trust their empty states */
            pr_table_drop_partition(pr, p);
            return rc;
        }
        pp->repair_check = false;
        pp->full_rebuild = false;
        pp->seek_refused = false;
        for (int s = 0; s < PX_SRC__COUNT; s++) pp->retry_due[s] = 0;
        rd_kafka_topic_partition_list_t *res = rd_kafka_topic_partition_list_new(PR_N_SRC);
        for (int s = 0; s < PR_N_SRC; s++) rd_kafka_topic_partition_list_add(res, pr->topics[s], p);
        rd_kafka_resume_partitions(pr->consumer, res);
        rd_kafka_topic_partition_list_destroy(res);
    }
    return 0;
}

/* ---- the batch --------------------------------------------------------- */

static void batch_free_msgs(batch_t *b) {
    for (size_t i = 0; i < b->n; i++) rd_kafka_message_destroy(b->msgs[i]);
    b->n = 0;
}

/* Undo a batch that did not commit: drop the entities of its partitions
 * (Redis has their last state) and hold the partitions until their repair
 * check ran again, which seeks every topic back to its committed offset
 * (or applied mark) and rebuilds the retry order from the retry topics, as
 * after an assignment. */
void pr_batch_rewind_parts(pr_ctx_t *pr, const int64_t first[][PR_N_SRC], const bool *touched) {
    pr_writer_finish(pr); /* its snapshot names entities dropped here */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        bool any = touched[p];
        for (int s = 0; s < PR_N_SRC; s++) any = any || first[p][s] >= 0;
        if (!any || !pr->parts[p].assigned) continue;
        pr_table_drop_partition(pr, p);
        pr->parts[p].repair_check = true;
        for (int s = 0; s < PR_N_SRC; s++) {
            pr->parts[p].next[s] = pr->parts[p].repair_until[s] = -1;
            rd_kafka_topic_partition_list_add(l, pr->topics[s], p);
        }
    }
    if (l->cnt) rd_kafka_pause_partitions(pr->consumer, l);
    rd_kafka_topic_partition_list_destroy(l);
}

/* (after the transaction in flight ended: its snapshot names entities) */
static void batch_rewind(batch_t *b) {
    pr_quiesce(b->pr);
    pr_batch_rewind_parts(b->pr, (const int64_t(*)[PR_N_SRC])b->first, b->touched);
}

static int decode(pr_ctx_t *pr, const rd_kafka_message_t *m, int s, px_event_t *ev, orig_t *o, char *err,
                  size_t n) {
    const char *v = m->payload;
    px_src_topic_t src = PR_FOLD_SRC(s);
    *o = (orig_t){m->offset, rd_kafka_message_timestamp(m, NULL), 0, 0, 0};
    if (PR_IS_RETRY(s)) {
        rd_kafka_headers_t *h = NULL;
        rd_kafka_message_headers(m, &h);
        if (px_kafka_header_int(h, "px.offset", &o->offset) || px_kafka_header_int(h, "px.timestamp", &o->ts) ||
            px_kafka_header_int(h, "px.attempt", &o->attempt) || px_kafka_header_int(h, "px.due", &o->due) ||
            px_kafka_header_int(h, "px.seq", &o->seq) || o->offset < 0 || o->attempt < 0)
            return px_errf(PX_EINVAL, err, n, "retry record without valid px.* headers");
    }
    bool lifecycle = src == PX_SRC_MUTATING || src == PX_SRC_MUTATED;
    if (lifecycle && m->len && v[0] == '{') { /* the JSON form (px_lcjson.h) */
        if (px_lcjson_decode(v, m->len, o->ts, ev, err, n)) return PX_EINVAL;
    } else if (px_avro_decode(pr->avro, m->payload, m->len, ev, err, n)) {
        return PX_EINVAL;
    }
    static const px_kind_t want[PX_SRC__COUNT] = {PX_KIND_PRESENCE, PX_KIND_LOCK, PX_KIND_LIFECYCLE,
                                                  PX_KIND_LIFECYCLE};
    if (ev->kind != want[src]) return px_errf(PX_EINVAL, err, n, "a %s record on this topic", px_kind_name(ev->kind));
    char key[PX_KEY_MAX + 1];
    int kl = px_key_format(&ev->key, key, sizeof key);
    if (!m->key || (size_t)kl != m->key_len || memcmp(key, m->key, m->key_len) != 0)
        return px_errf(PX_EINVAL, err, n, "record key does not match the value's tenant:entity:id");
    return 0;
}

/* Records waiting in the owned input partitions: the high watermarks the
 * consumer last fetched (cached by librdkafka, no request) minus the next
 * offset to fold. A batch that came back short (a fetch not yet in) while
 * a backlog remains still counts as behind. */
static int64_t backlog(pr_ctx_t *pr) {
    int64_t n = 0;
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        const pr_part_t *pp = &pr->parts[p];
        if (!pp->assigned) continue;
        for (int s = 0; s < PR_N_SRC; s++) {
            int64_t lo, hi;
            if (pp->next[s] < 0 ||
                rd_kafka_get_watermark_offsets(pr->consumer, pr->topics[s], p, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR)
                continue;
            if (hi > pp->next[s]) n += hi - pp->next[s];
        }
    }
    return n;
}

/* One batch; returns true if it did any work. */
/* Take records into the batch (after those it holds) until it is full or
 * none waits; the first poll may wait up to wait_ms. A rebalance meanwhile
 * sets pr->rebalanced. */
static void collect(pr_ctx_t *pr, batch_t *b, int wait_ms) {
    int64_t t0 = px_mono_us();
    pr->rebalanced = false;
    while (b->n < (size_t)pr->cfg.batch_max && !pr->rebalanced) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(pr->consumer, wait_ms);
        wait_ms = 0;
        if (!m) break;
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                px_counter_add(pr->m_kafka_err, 1);
                PX_WARN(PR_COMP, "consumer error", "err=\"%s\"", rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
            continue;
        }
        /* first offsets are known from here on, so any early exit below can
         * rewind (a dropped record would otherwise never be folded) */
        int src = pr_topic_src(pr, rd_kafka_topic_name(m->rkt));
        if (src < PR_N_SRC && m->partition >= 0 && m->partition < PR_MAX_PARTITIONS &&
            b->first[m->partition][src] < 0)
            b->first[m->partition][src] = m->offset;
        b->src[b->n] = src;
        b->msgs[b->n++] = m;
    }
    px_counter_add(pr->m_phase_us[4], (uint64_t)(px_mono_us() - t0));
}

/* Drop a batch that will not commit: its transaction if one opened, its
 * held records, and what it folded (its partitions are rewound). */
static void batch_drop(batch_t *b) {
    b->pr->folding = false;
    if (b->txn_open) {
        pr_txn_abort(b->pr, b->pr->producer);
        txn_end(b);
    }
    held_drop(b);
    batch_rewind(b);
    batch_free_msgs(b);
}

/* Decode, load and fold the batch's records [from, b->n). 0, or
 * PX_EBACKEND when Redis failed loading states (drop the batch). */
static int fold_range(pr_ctx_t *pr, batch_t *b, size_t from, int64_t *t_loaded) {
    int64_t now_ms = px_now_ms();
    /* decode (and prefetch each key's bucket slot) */
    for (size_t i = from; i < b->n; i++) {
        rd_kafka_message_t *m = b->msgs[i];
        int src = b->src[i];
        char err[256];
        b->ents[i] = NULL;
        b->ok[i] = src < PR_N_SRC && m->partition < PR_MAX_PARTITIONS &&
                   decode(pr, m, src, &b->evs[i], &b->orig[i], err, sizeof err) == 0;
        /* presence_processor_record_age_ms: by the timestamp decode read
         * (retry topics excepted: their records wait on purpose) */
        if (src < PX_SRC__COUNT && m->partition < PR_MAX_PARTITIONS && b->orig[i].ts > 0)
            px_hist_observe(pr->m_age_ms[src], (double)(now_ms > b->orig[i].ts ? now_ms - b->orig[i].ts : 0));
        if (!b->ok[i]) continue;
        b->hash[i] = pr_table_hash(&b->evs[i].key);
        pr_table_prefetch(pr, b->hash[i], false);
    }
    /* find the entities (each prefetched PR_PREFETCH records ahead), collect
     * those to load */
    enum { PR_PREFETCH = 8 };
    size_t n_load = 0;
    pr_entity_t **load = b->ents + pr->cfg.batch_max; /* second half of the array */
    for (size_t i = from; i < b->n; i++) {
        rd_kafka_message_t *m = b->msgs[i];
        if (i + PR_PREFETCH < b->n && b->ok[i + PR_PREFETCH]) pr_table_prefetch(pr, b->hash[i + PR_PREFETCH], true);
        if (!b->ok[i]) continue;
        pr_entity_t *e = pr_table_find_hashed(pr, &b->evs[i].key, b->hash[i]);
        if (!e) {
            e = pr_table_add(pr, &b->evs[i].key, m->partition);
            if (!e) {
                b->ok[i] = 0;
                continue;
            }
            load[n_load++] = e;
        }
        b->ents[i] = e;
    }
    if (n_load && pr_redis_load(pr, load, n_load) == PX_EBACKEND) return PX_EBACKEND;

    *t_loaded = px_mono_us();
    /* fold */
    int64_t now = px_now_ms();
    for (size_t i = from; i < b->n; i++) {
        rd_kafka_message_t *m = b->msgs[i];
        int src = b->src[i];
        int32_t p = m->partition;
        if (src >= PR_N_SRC || p >= PR_MAX_PARTITIONS) continue;
        int fs = PR_FOLD_SRC(src);
        bool retry = PR_IS_RETRY(src);
        pr_part_t *pp = &pr->parts[p];
        const orig_t *o = &b->orig[i];
        bool repair = m->offset < pp->repair_until[src];
        if (retry && b->blocked[p][fs] >= 0) continue; /* behind a record not yet due */
        if (retry && !repair && b->ok[i] && o->due > now) { /* hold the topic here until it is due */
            b->blocked[p][fs] = m->offset;
            b->blocked_due[p][fs] = o->due;
            continue;
        }
        pp->next[src] = m->offset + 1;
        b->repair = repair;
        b->cur_msg = m;
        if (!b->ok[i]) {
            char err[256];
            px_event_t ev;
            orig_t oo;
            if (src >= PR_N_SRC || decode(pr, m, src, &ev, &oo, err, sizeof err) == 0)
                snprintf(err, sizeof err, "unknown topic or entity table full");
            if (!b->repair) dead_letter(b, m, fs, o, err);
            continue;
        }
        pr_entity_t *e = b->ents[i];
        if (b->repair) {
            /* committed by an earlier owner: fold what it folded; what it
             * sent to a retry topic and still waits there is not ours */
            if (e->poisoned || o->offset >= e->hold_from[fs]) continue;
        } else if (!retry) {
            bool held = e->retry_head != e->retry_next;
            if (held || e->poisoned) { /* later records of a key follow it into retry */
                const char *why = held ? "follows an earlier record of its entity in retry"
                                       : "the entity's stored state in Redis does not decode";
                send_retry(b, m, fs, o, held ? 0 : 1, held ? now : now + retry_delay(pr, 1), e->retry_next++, why);
                continue;
            }
        } else {
            if ((uint32_t)o->seq != e->retry_head) { /* behind the entity's head: go round again */
                send_retry(b, m, fs, o, o->attempt, now + retry_delay(pr, 1), (uint32_t)o->seq,
                           "waits for an earlier record of its entity");
                continue;
            }
            if (e->poisoned) { /* has an operator repaired the key? */
                px_entity_term(&e->st);
                px_store_wm_init(&e->wm);
                e->poisoned = false;
                if (pr_redis_load(pr, &e, 1) == PX_EBACKEND) {
                    b->redis_failed = true;
                    break;
                }
            }
            if (e->poisoned) {
                const char *why = "the entity's stored state in Redis does not decode";
                int64_t next = o->attempt + 1;
                if (next > pr->cfg.retry_max_attempts) {
                    orig_t last = *o;
                    last.attempt = o->attempt;
                    dead_letter(b, m, fs, &last, why);
                    px_counter_add(pr->m_retry_dlq, 1);
                    e->retry_head++;
                } else {
                    send_retry(b, m, fs, o, next, now + retry_delay(pr, next), (uint32_t)o->seq, why);
                }
                continue;
            }
            e->retry_head++; /* the head, and its entity is fine: apply it */
        }
        if (e->wm.off[fs] >= o->offset) { /* already in the stored state */
            px_counter_add(pr->m_skipped, 1);
            continue;
        }
        b->cur = e;
        px_src_t s = {(px_src_topic_t)fs, p, o->offset};
        int rc = px_fold_apply(&e->st, &pr->fold, &b->evs[i], &s, on_change, b);
        if (rc == PX_EINVAL && !b->repair) dead_letter(b, m, fs, o, "refused by the fold (cap reached or wrong topic)");
        e->wm.off[fs] = o->offset;
        if (b->repair) px_counter_add(pr->m_repaired, 1);
        else px_counter_add(pr->m_folded[fs], 1);
        pr_table_mark_dirty(pr, e);
        pr_heap_update(pr, e);
    }
    return 0;
}

static bool run_batch(pr_ctx_t *pr, batch_t *b) {
    int64_t t0 = px_mono_ms();
    uint64_t gen = pr->redis_gen;
    b->n = 0;
    b->txn_open = b->produce_failed = b->redis_failed = b->prev_failed = false;
    held_drop(b);
    b->holding = pr_commit_busy(pr);
    memset(b->touched, 0, sizeof b->touched);
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        for (int s = 0; s < PR_N_SRC; s++) b->first[p][s] = -1;
        for (int s = 0; s < PX_SRC__COUNT; s++) b->blocked[p][s] = -1;
    }

    collect(pr, b, 0);
    if (pr->rebalanced) { /* eager: all was revoked; the repair check seeks every assigned source */
        batch_free_msgs(b);
        return true;
    }
    if (b->n == 0 && pr_heap_next(pr) > px_now_ms()) return false;
    int64_t load_us = 0, fold_us = 0;
    bool redis_lost = false;
    /* While the previous batch's transaction is in flight this batch stays
     * open: what arrives meanwhile is folded into it at once, and its lock
     * decisions published, instead of waiting for that commit. It is sealed
     * when the commit ended or the batch is full. */
    for (size_t from = 0;;) {
        int64_t t_range = px_mono_us(), t_loaded = t_range;
        b->t_collect_us = t_range;
        pr->folding = true; /* until the seal or the drop */
        if (fold_range(pr, b, from, &t_loaded)) {
            batch_drop(b);
            return false;
        }
        /* Redis reconnected during the batch: states may have been loaded
         * from a dataset that is gone. Nothing of this batch may count, and
         * its early lock decisions are not published. */
        redis_lost = gen != pr->redis_gen || pr->rebuild_pending || b->redis_failed;
        decisions_end(b, !redis_lost);
        load_us += t_loaded - t_range;
        fold_us += px_mono_us() - t_loaded;
        from = b->n;
        if (redis_lost || b->prev_failed || pr->stopping || b->n >= (size_t)pr->cfg.batch_max) break;
        /* open while the previous transaction is in flight, and until
         * batch.commit_interval_ms after it was dispatched. One that ended
         * meanwhile is finished now, so its Redis writes go to the writer
         * without waiting for this seal; if it failed, this batch, folded
         * on top of it, is dropped at once (at the seal, as before). */
        if (pr_commit_busy(pr) && pr_commit_ended(pr) && pr_commit_drain(pr) != 0) {
            b->prev_failed = true;
            break;
        }
        if (!pr_commit_busy(pr) && px_mono_ms() - pr->dispatched_ms >= pr->cfg.commit_interval_ms) break;
        collect(pr, b, 1);
        if (pr->rebalanced) {
            batch_drop(b);
            return true;
        }
    }

    /* retry topics held at a record not yet due: back to it, paused until then */
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        for (int fs = 0; fs < PX_SRC__COUNT; fs++) {
            if (b->blocked[p][fs] < 0) continue;
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, pr->topics[PR_RETRY(fs)], p)->offset = b->blocked[p][fs];
            rd_kafka_pause_partitions(pr->consumer, l);
            rd_kafka_error_t *se = rd_kafka_seek_partitions(pr->consumer, l, 0);
            if (se) {
                PX_ERROR(PR_COMP, "seek on a retry topic failed", "err=\"%s\"", rd_kafka_error_string(se));
                rd_kafka_error_destroy(se);
            }
            rd_kafka_topic_partition_list_destroy(l);
            pr->parts[p].retry_due[fs] = b->blocked_due[p][fs];
        }
    b->repair = false;

    /* deadlines that are due: EXPIRE records into the log (not for a
     * partition still being repaired: its state is not complete yet) */
    int64_t now = px_now_ms();
    pr_entity_t *due[PR_MAX_DUE];
    size_t n_due = pr_heap_due(pr, now, due, PR_MAX_DUE);
    for (size_t i = 0; i < n_due; i++) {
        pr_entity_t *e = due[i];
        b->cur = e;
        if (!part_repairing(&pr->parts[e->partition])) px_fold_due(&e->st, &pr->fold, now, on_expire, b);
        pr_heap_update(pr, e);
    }

    redis_lost = redis_lost || gen != pr->redis_gen || pr->rebuild_pending || b->redis_failed;
    /* seal: the transaction in flight ends first (this batch was folded on
     * top of it; finishing it sends its Redis writes). If it failed, its
     * partitions were rewound, and this batch is dropped with all of its
     * own: its states build on what did not commit. */
    pr->folding = false; /* what follows is the seal: states are flushed only once committed */
    bool prev_failed = pr_commit_drain(pr) != 0 || b->prev_failed;
    int64_t t_sealed = px_mono_us();
    if (redis_lost || prev_failed) {
        if (redis_lost) px_counter_add(pr->m_aborts, 1);
        if (prev_failed && b->n)
            PX_INFO(PR_COMP, "batch dropped: the transaction it was folded on failed; both are folded again",
                    "records=%zu", b->n);
        batch_drop(b);
        return false;
    }
    release(b); /* nothing is in flight now: the held records, in order */
    /* A record that could not be produced (or a transaction that did not
     * begin) fails the batch, whether or not its transaction opened: its
     * folded states must not reach Redis without their records (they once
     * did, when begin_transaction failed: found by test_eos_faults). */
    if (b->produce_failed) {
        px_counter_add(pr->m_aborts, 1);
        PX_WARN(PR_COMP, "transaction failed: aborting and rewinding", "err=\"%s\"",
                "a record of the batch could not be produced");
        batch_drop(b);
        return false;
    }
    if (b->txn_open) {
        rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(16);
        for (int p = 0; p < PR_MAX_PARTITIONS; p++)
            for (int s = 0; s < PR_N_SRC; s++)
                if (b->first[p][s] >= 0 && pr->parts[p].next[s] > pr->parts[p].repair_until[s])
                    rd_kafka_topic_partition_list_add(offs, pr->topics[s], p)->offset = pr->parts[p].next[s];
        /* the offsets and the commit go to the committer thread; the next
         * batch is collected and folded meanwhile (pr_commit.c) */
        pr_commit_dispatch(pr, offs, (const int64_t(*)[PR_N_SRC])b->first, b->touched);
        txn_end(b);
    }
    /* behind: a full batch, or at least a batch's worth of records waiting */
    bool behind = b->n >= (size_t)pr->cfg.batch_max || backlog(pr) >= pr->cfg.batch_max;
    batch_free_msgs(b);
    int64_t t_commit = px_mono_us();

    /* Redis: the committed batches' effects, at once when caught up; while
     * behind, deferred up to batch.flush_defer_ms so an entity changed by
     * many batches is written once (docs/exactly-once.md, "Deferred
     * writes"). Deferring is safe: the applied marks move only with the
     * writes, so whoever owns a partition next re-folds what Redis lacks.
     * With this batch's transaction in flight, the writes are built now,
     * from the states it committed, and sent when it ended (a flush too
     * large for that waits for the commit and writes in chunks). Caught
     * up, a large flush (the end of a backlog: up to every entity) is
     * written here in chunks as well: building a snapshot first and then
     * writing it made the two serial (100k entities: about 0.4 s of
     * building before 1.5 s of writing), the chunks overlap them, and no
     * records wait to be folded meanwhile. */
    if (!behind || !pr->cfg.flush_defer_ms) pr->flush_at = 0;
    else if (!pr->flush_at) pr->flush_at = px_mono_ms() + pr->cfg.flush_defer_ms;
    if (px_mono_ms() < pr->flush_at) {
        if (!px_counter_get(pr->m_deferred))
            PX_INFO(PR_COMP, "behind: Redis writes deferred to coalesce (logged once)", "flush_defer_ms=%lld",
                    (long long)pr->cfg.flush_defer_ms);
        px_counter_add(pr->m_deferred, 1);
    } else if (pr_commit_busy(pr) && (behind || pr->n_dirty <= PR_SNAP_DIRECT) &&
               pr_redis_snap_build(pr, &pr->txn.snap) == 0) {
        pr->flush_at = 0;
    } else {
        pr_redis_flush(pr); /* a failure pauses at the next turn */
    }
    px_counter_add(pr->m_phase_us[0], (uint64_t)load_us);
    px_counter_add(pr->m_phase_us[1], (uint64_t)fold_us);
    px_counter_add(pr->m_phase_us[2], (uint64_t)(t_commit - t_sealed)); /* + the wait, counted by the drain */
    /* the redis phase is counted by pr_redis_flush itself */
    px_hist_observe(pr->m_batch_ms, (double)(px_mono_ms() - t0));
    return true;
}

static batch_t *batch_get(pr_ctx_t *pr) {
    batch_t *b = pr->batch;
    if (b) return b;
    b = pr->batch = calloc(1, sizeof *b);
    size_t n = (size_t)pr->cfg.batch_max;
    if (b) {
        b->pr = pr;
        b->msgs = calloc(n, sizeof *b->msgs);
        b->evs = calloc(n, sizeof *b->evs);
        b->ok = calloc(n, sizeof *b->ok);
        b->src = calloc(n, sizeof *b->src);
        b->hash = calloc(n, sizeof *b->hash);
        b->orig = calloc(n, sizeof *b->orig);
        b->ents = calloc(2 * n, sizeof *b->ents);
        b->decided = calloc(n, sizeof *b->decided);
        b->recs = calloc(PR_HELD_RECS, sizeof *b->recs);
        px_buf_init(&b->held, PR_HELD_BYTES);
    }
    if (!b || !b->msgs || !b->evs || !b->ok || !b->src || !b->hash || !b->orig || !b->ents || !b->decided ||
        !b->recs) {
        PX_ERROR(PR_COMP, "out of memory for the batch", "batch_max=%zu", n);
        return NULL;
    }
    return b;
}

static void on_idle(uv_idle_t *h) { pr_batch_turn(h->data); }

void pr_batch_free(pr_ctx_t *pr) {
    batch_t *b = pr->batch;
    if (!b) return;
    batch_free_msgs(b);
    held_drop(b);
    free(b->recs);
    px_buf_term(&b->held);
    free(b->msgs);
    free(b->evs);
    free(b->ok);
    free(b->src);
    free(b->hash);
    free(b->orig);
    free(b->ents);
    free(b->decided);
    free(b);
    pr->batch = NULL;
}

void pr_batch_turn(pr_ctx_t *pr) {
    if (pr->stopping || !pr->consumer) return;
    if (atomic_load(&pr->producer_fatal)) { /* raised on the committer thread (pr_kafka.c on_error) */
        pr->exit_code = 1;
        pr->stopping = true;
        uv_stop(pr->loop);
        return;
    }
    /* a commit that ended while the loop slept: its Redis writes go now */
    if (pr_commit_ended(pr)) pr_commit_drain(pr);
    if (pr_writer_ended(pr)) pr_writer_finish(pr);
    /* Redis first: nothing moves while it is away (not ready). A dataset
     * that lost its data is rebuilt before anything is written to it. */
    if (pr_redis_ensure(pr) == 0 && pr->rebuild_pending) {
        pr_kafka_rebuild(pr); /* (while the flag is up, nothing is written into the new dataset) */
        pr->rebuild_pending = false;
    }
    /* deferred writes that are due (or that failed) go first; with a
     * commit in flight they wait for the next batch's seal, which hands
     * them to the writer thread as a snapshot of that commit (written here,
     * they stopped the loop for the whole flush: ~2 s for 100k entities) */
    if (!pr->redis ||
        (pr->dirty && !pr_commit_busy(pr) && px_mono_ms() >= pr->flush_at && pr_redis_flush(pr))) {
        if (!pr->paused) {
            rd_kafka_topic_partition_list_t *a = NULL;
            if (!rd_kafka_assignment(pr->consumer, &a) && a) {
                rd_kafka_pause_partitions(pr->consumer, a);
                rd_kafka_topic_partition_list_destroy(a);
            }
            pr->paused = true;
        }
        /* serve rebalances; a record delivered now is not ours to keep */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(pr->consumer, 0);
        if (m) {
            if (!m->err) {
                rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset = m->offset;
                rd_kafka_error_t *e = rd_kafka_seek_partitions(pr->consumer, l, 0);
                if (e) rd_kafka_error_destroy(e);
                rd_kafka_topic_partition_list_destroy(l);
            }
            rd_kafka_message_destroy(m);
        }
        return;
    }
    if (pr->paused) {
        rd_kafka_topic_partition_list_t *a = NULL;
        if (!rd_kafka_assignment(pr->consumer, &a) && a) {
            /* partitions still waiting for their repair check stay paused */
            rd_kafka_topic_partition_list_t *r = rd_kafka_topic_partition_list_new(a->cnt);
            for (int i = 0; i < a->cnt; i++)
                if (!pr->parts[a->elems[i].partition].repair_check)
                    rd_kafka_topic_partition_list_add(r, a->elems[i].topic, a->elems[i].partition);
            rd_kafka_resume_partitions(pr->consumer, r);
            rd_kafka_topic_partition_list_destroy(r);
            rd_kafka_topic_partition_list_destroy(a);
        }
        pr->paused = false;
        PX_INFO(PR_COMP, "redis is back: consuming again", NULL);
    }
    if (repair_checks(pr)) return;
    /* retry topics held at a record that is due now */
    int64_t now = px_now_ms();
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        pr_part_t *pp = &pr->parts[p];
        for (int fs = 0; fs < PX_SRC__COUNT; fs++) {
            if (!pp->retry_due[fs] || pp->retry_due[fs] > now || !pp->assigned || pp->repair_check) continue;
            pp->retry_due[fs] = 0;
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, pr->topics[PR_RETRY(fs)], p);
            rd_kafka_resume_partitions(pr->consumer, l);
            rd_kafka_topic_partition_list_destroy(l);
        }
    }
    batch_t *b = batch_get(pr);
    if (!b) return;
    /* One batch per loop turn, so the ops endpoint and signals are served
     * between batches; while batches find work, the idle handle brings the
     * next turn at once. */
    bool worked = !pr->stopping && run_batch(pr, b);
    /* caught up (nothing came and no batch's worth waits): deferred writes
     * wait no longer; a turn that merely found the fetch not yet in leaves
     * them to their deadline (checked at the start of every turn) */
    if (!worked && pr->dirty && pr->flush_at && backlog(pr) < pr->cfg.batch_max) {
        pr->flush_at = 0;
        pr_redis_flush(pr); /* a failure pauses at the next turn */
    }
    if (worked && !uv_is_active((uv_handle_t *)&pr->idle)) uv_idle_start(&pr->idle, on_idle);
    else if (!worked && uv_is_active((uv_handle_t *)&pr->idle)) uv_idle_stop(&pr->idle);
}
