/*
 * pr_batch.c - the collect and fold stages of a batch. Contracts and the
 * batch's fields: pr_batch.h.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pr_batch.h"
#include "pr_kafka.h"
#include "px_headers.h"
#include "px_log.h"
#include "px_time.h"

#define PR_MAX_DUE 4096

typedef px_input_origin_t orig_t;

static void emit(pr_ctx_t *pr, batch_t *b, const char *topic, int32_t partition, const void *key, size_t klen,
                 const void *val, size_t vlen, rd_kafka_headers_t *hdrs) {
    pr_txn_emit(pr, &b->txn, &b->st, topic, partition, key, klen, val, vlen, hdrs);
}

/* ---- what the fold sends -------------------------------------------------- */

/* Headers naming a record's origin: the input topic, partition, offset
 * and timestamp it was first consumed at, and the attempt. */
static rd_kafka_headers_t *origin_headers(const char *topic, int32_t p, const orig_t *o, const char *err) {
    char num[32];
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    rd_kafka_header_add(h, PX_HDR_ERROR, -1, err, -1);
    rd_kafka_header_add(h, PX_HDR_TOPIC, -1, topic, -1);
    snprintf(num, sizeof num, "%" PRId32, p);
    rd_kafka_header_add(h, PX_HDR_PARTITION, -1, num, -1);
    snprintf(num, sizeof num, "%" PRId64, o->offset);
    rd_kafka_header_add(h, PX_HDR_OFFSET, -1, num, -1);
    snprintf(num, sizeof num, "%" PRId64, o->ts);
    rd_kafka_header_add(h, PX_HDR_TIMESTAMP, -1, num, -1);
    snprintf(num, sizeof num, "%" PRId64, o->attempt);
    rd_kafka_header_add(h, PX_HDR_ATTEMPT, -1, num, -1);
    return h;
}

/* The original bytes to <input topic>.dlt with the error and where they
 * came from (fs: the input topic; o: the original coordinates). */
static void dead_letter(pr_ctx_t *pr, batch_t *b, const rd_kafka_message_t *m, int fs, const orig_t *o,
                        const char *err) {
    char topic[sizeof pr->kc.topics[0] + 8];
    const char *src = pr->kc.topics[fs];
    snprintf(topic, sizeof topic, "%s.dlt", src);
    rd_kafka_headers_t *h = origin_headers(src, m->partition, o, err);
    emit(pr, b, topic, RD_KAFKA_PARTITION_UA, m->key, m->key_len, m->payload, m->len, h);
    px_counter_add(pr->m_dlq, 1);
    PX_WARN(PR_COMP, "record sent to the DLQ", "topic=%s partition=%d offset=%lld attempt=%lld err=\"%s\"", src,
            m->partition, (long long)o->offset, (long long)o->attempt, err);
}

/* The original bytes to <input topic>.retry, same partition, with the
 * attempt, the wall-clock time it is due and the entity's sequence number
 * (pr.h: retry order). */
static void send_retry(pr_ctx_t *pr, batch_t *b, const rd_kafka_message_t *m, int fs, const orig_t *o,
                       int64_t attempt, int64_t due, uint32_t seq, const char *err) {
    char num[32];
    orig_t n = *o;
    n.attempt = attempt;
    rd_kafka_headers_t *h = origin_headers(pr->kc.topics[fs], m->partition, &n, err);
    snprintf(num, sizeof num, "%" PRId64, due);
    rd_kafka_header_add(h, PX_HDR_DUE, -1, num, -1);
    snprintf(num, sizeof num, "%" PRIu32, seq);
    rd_kafka_header_add(h, PX_HDR_SEQ, -1, num, -1);
    emit(pr, b, pr->kc.topics[PR_RETRY(fs)], m->partition, m->key, m->key_len, m->payload, m->len, h);
    if (attempt > 0) px_counter_add(pr->m_retries, 1);
}

/* Delay before attempt k (1-based): base * 3^(k-1). */
static int64_t retry_delay(const pr_ctx_t *pr, int64_t k) {
    int64_t d = pr->cfg.retry_base_ms;
    for (int64_t i = 1; i < k && d < 3600000; i++) d *= 3;
    return d;
}

/* The fold's change events (px_fold_apply): produced as ChangeEvents,
 * added to the entity's notification and, for a lock decision, to its
 * early decisions. Not below a repair bound: an earlier owner sent them. */
static void on_change(void *arg, const px_event_t *ev) {
    batch_t *b = arg;
    pr_ctx_t *pr = b->pr;
    if (b->repair) return;
    px_event_t c = *ev;
    snprintf(c.src_topic, sizeof c.src_topic, "%s", rd_kafka_topic_name(b->cur_msg->rkt));
    char err[256], key[PX_KEY_MAX + 1];
    px_buf_reset(&pr->val);
    if (px_avro_encode(pr->avro, &c, &pr->val, err, sizeof err)) {
        PX_ERROR(PR_COMP, "change event does not encode", "err=\"%s\"", err);
        pr_batch_state_fail(&b->st, PR_FATE_PRODUCE_FAILED);
        return;
    }
    int kl = px_key_format(&c.key, key, sizeof key);
    emit(pr, b, pr->kc.topic_changes, RD_KAFKA_PARTITION_UA, key, (size_t)kl, pr->val.data, pr->val.len, NULL);
    px_counter_add(pr->m_changes, 1);
    if (c.type == PX_CH_LOCK_GRANTED) px_counter_add(pr->m_locks_acquired, 1);
    px_notify_add(&b->cur->notify, &c); /* full: the gateways re-read anyway */
    if ((c.type == PX_CH_LOCK_GRANTED || c.type == PX_CH_LOCK_DENIED) &&
        (b->cur->decided || b->n_decided < (size_t)pr->cfg.batch_max)) {
        px_notify_add(&b->cur->decisions, &c);
        if (!b->cur->decided) b->decided[b->n_decided++] = b->cur;
        b->cur->decided = true;
    }
}

/* The EXPIREs of due deadlines (px_fold_due), into the entity's own input
 * topic and partition. */
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
        pr_batch_state_fail(&b->st, PR_FATE_PRODUCE_FAILED);
        return;
    }
    int kl = px_key_format(&ev->key, key, sizeof key);
    if (b->cur->partition >= 0 && b->cur->partition < PR_MAX_PARTITIONS) b->touched[b->cur->partition] = true;
    emit(pr, b, pr->kc.topics[s], b->cur->partition, key, (size_t)kl, pr->val.data, pr->val.len, NULL);
    px_counter_add(pr->m_expires, 1);
}

/* Publishing a decision before its transaction commits is safe because a
 * decision is a function of the committed input log alone: the fold is
 * deterministic and every record before this one in its partition is
 * decided (read_committed), so a batch that aborts and is folded again, by
 * this instance or the next owner, decides the same (docs/exactly-once.md,
 * "Early lock decisions"). */
void pr_batch_decisions(pr_ctx_t *pr, batch_t *b) {
    if (pr_batch_may_publish(&b->st) && b->n_decided) {
        px_counter_add(pr->m_decided, pr_redis_decisions(pr, b->decided, b->n_decided));
        px_hist_observe(pr->m_decide_ms, (double)(px_mono_us() - b->t_collect_us) / 1000.0);
    }
    for (size_t i = 0; i < b->n_decided; i++) {
        b->decided[i]->decided = false;
        px_notify_reset(&b->decided[i]->decisions);
    }
    b->n_decided = 0;
}

/* ---- collect ------------------------------------------------------------- */

void pr_batch_free_msgs(batch_t *b) {
    for (size_t i = 0; i < b->n; i++) rd_kafka_message_destroy(b->msgs[i]);
    b->n = 0;
}

void pr_batch_begin(pr_ctx_t *pr, batch_t *b) {
    b->n = 0;
    pr_batch_state_begin(&b->st);
    pr_txn_reset(pr, &b->txn);
    memset(b->touched, 0, sizeof b->touched);
    for (int p = 0; p < PR_MAX_PARTITIONS; p++) {
        for (int s = 0; s < PR_N_SRC; s++) b->first[p][s] = -1;
        for (int s = 0; s < PX_SRC__COUNT; s++) b->blocked[p][s] = -1;
    }
}

bool pr_batch_collect(pr_ctx_t *pr, batch_t *b, int wait_ms) {
    int64_t t0 = px_mono_us();
    uint64_t rebalances = pr->kc.rebalances;
    while (b->n < (size_t)pr->cfg.batch_max && rebalances == pr->kc.rebalances) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(pr->kc.consumer, wait_ms);
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
        /* first offsets are known from here on, so a drop can rewind (a
         * dropped record would otherwise never be folded) */
        int src = pr_topic_src(pr, rd_kafka_topic_name(m->rkt));
        if (src < PR_N_SRC && m->partition >= 0 && m->partition < PR_MAX_PARTITIONS &&
            b->first[m->partition][src] < 0)
            b->first[m->partition][src] = m->offset;
        b->src[b->n] = src;
        b->msgs[b->n++] = m;
    }
    px_counter_add(pr->m_phase_us[PR_PHASE_POLL], (uint64_t)(px_mono_us() - t0));
    return rebalances == pr->kc.rebalances;
}

/* ---- fold ---------------------------------------------------------------- */

/* The input-record rule (px_input.h), and for a retry record the origin
 * its headers name; o is the record's own coordinates otherwise. 0;
 * PX_EINVAL: poison (the reason in err); PX_EBACKEND: undecided, the
 * registry did not answer for the record's schema. */
static int decode(pr_ctx_t *pr, const rd_kafka_message_t *m, int s, px_event_t *ev, orig_t *o, char *err,
                  size_t n) {
    *o = px_input_origin_here(m->offset, rd_kafka_message_timestamp(m, NULL));
    if (PR_IS_RETRY(s)) {
        rd_kafka_headers_t *h = NULL;
        rd_kafka_message_headers(m, &h);
        if (px_input_retry_origin(h, o, err, n)) return PX_EINVAL;
    }
    px_input_fault_t f = px_input_decode(pr->avro, PR_FOLD_SRC(s), m->key, m->key_len, m->payload, m->len, o->ts,
                                         ev, err, n);
    return f == PX_INPUT_UNAVAILABLE ? PX_EBACKEND : f ? PX_EINVAL : 0;
}

/* Record i is poison: why (kept for its dead letter). */
static void poison(batch_t *b, size_t i, const char *why) {
    b->ok[i] = 0;
    b->why[i] = (uint32_t)b->whys.len;
    if (px_buf_append(&b->whys, why, strlen(why) + 1)) b->why[i] = UINT32_MAX; /* full: a generic reason */
}

static const char *poison_why(const batch_t *b, size_t i) {
    return b->why[i] == UINT32_MAX ? "does not decode" : b->whys.data + b->why[i];
}

/* Decode [from, n) (and prefetch each key's bucket slot). PX_EBACKEND
 * when a record's schema could not be fetched from the registry (the
 * reason in pr->reg.why): the record is not at fault, the batch stops. */
static int decode_range(pr_ctx_t *pr, batch_t *b, size_t from) {
    int64_t now_ms = px_now_ms();
    for (size_t i = from; i < b->n; i++) {
        rd_kafka_message_t *m = b->msgs[i];
        int src = b->src[i];
        char err[256];
        b->ents[i] = NULL;
        b->ok[i] = 1;
        int rc = 0;
        if (src >= PR_N_SRC || m->partition >= PR_MAX_PARTITIONS) b->ok[i] = 0; /* not folded at all */
        else if ((rc = decode(pr, m, src, &b->evs[i], &b->orig[i], err, sizeof err)) == PX_EBACKEND) {
            snprintf(pr->reg.why, sizeof pr->reg.why, "%s", err);
            return PX_EBACKEND;
        } else if (rc) poison(b, i, err);
        /* presence_processor_record_age_ms: by the timestamp decode read
         * (retry topics excepted: their records wait on purpose) */
        if (src < PX_SRC__COUNT && m->partition < PR_MAX_PARTITIONS && b->orig[i].ts > 0)
            px_hist_observe(pr->m_age_ms[src], (double)(now_ms > b->orig[i].ts ? now_ms - b->orig[i].ts : 0));
        if (!b->ok[i]) continue;
        b->hash[i] = pr_table_hash(&b->evs[i].key);
        pr_table_prefetch(pr, b->hash[i], false);
    }
    return 0;
}

/* Find the entities of [from, n) (each prefetched PR_PREFETCH records
 * ahead), adding and loading those not in memory. 0 or PX_EBACKEND. */
static int find_range(pr_ctx_t *pr, batch_t *b, size_t from) {
    enum { PR_PREFETCH = 8 };
    size_t n_load = 0;
    pr_entity_t **load = b->ents + pr->cfg.batch_max; /* second half of the array */
    for (size_t i = from; i < b->n; i++) {
        if (i + PR_PREFETCH < b->n && b->ok[i + PR_PREFETCH]) pr_table_prefetch(pr, b->hash[i + PR_PREFETCH], true);
        if (!b->ok[i]) continue;
        pr_entity_t *e = pr_table_find_hashed(pr, &b->evs[i].key, b->hash[i]);
        if (!e) {
            e = pr_table_add(pr, &b->evs[i].key, b->msgs[i]->partition);
            if (!e) {
                poison(b, i, "entity table full");
                continue;
            }
            load[n_load++] = e;
        }
        b->ents[i] = e;
    }
    return n_load && pr_redis_load(pr, load, n_load) == PX_EBACKEND ? PX_EBACKEND : 0;
}

/* The fold's verdict on a record of a retry topic, or of an input topic
 * while its entity has records in retry (or a stored state that does not
 * decode): apply it, or it was sent on (to a retry topic or the DLQ). */
typedef enum { ROUTE_APPLY, ROUTE_SENT, ROUTE_REDIS_LOST } route_t;

static route_t route_input(pr_ctx_t *pr, batch_t *b, const rd_kafka_message_t *m, int fs, const orig_t *o,
                           pr_entity_t *e, int64_t now) {
    bool held = e->retry_head != e->retry_next;
    if (!held && !e->poisoned) return ROUTE_APPLY;
    /* later records of a key follow it into retry */
    const char *why = held ? "follows an earlier record of its entity in retry"
                           : "the entity's stored state in Redis does not decode";
    send_retry(pr, b, m, fs, o, held ? 0 : 1, held ? now : now + retry_delay(pr, 1), e->retry_next++, why);
    return ROUTE_SENT;
}

static route_t route_retry(pr_ctx_t *pr, batch_t *b, const rd_kafka_message_t *m, int fs, const orig_t *o,
                           pr_entity_t *e, int64_t now) {
    if ((uint32_t)o->seq != e->retry_head) { /* behind the entity's head: go round again */
        send_retry(pr, b, m, fs, o, o->attempt, now + retry_delay(pr, 1), (uint32_t)o->seq,
                   "waits for an earlier record of its entity");
        return ROUTE_SENT;
    }
    if (e->poisoned) { /* has an operator repaired the key? */
        px_entity_term(&e->st);
        px_store_wm_init(&e->wm);
        e->poisoned = false;
        if (pr_redis_load(pr, &e, 1) == PX_EBACKEND) return ROUTE_REDIS_LOST;
    }
    if (e->poisoned) {
        const char *why = "the entity's stored state in Redis does not decode";
        int64_t next = o->attempt + 1;
        if (next > pr->cfg.retry_max_attempts) {
            dead_letter(pr, b, m, fs, o, why);
            px_counter_add(pr->m_retry_dlq, 1);
            e->retry_head++;
        } else {
            send_retry(pr, b, m, fs, o, next, now + retry_delay(pr, next), (uint32_t)o->seq, why);
        }
        return ROUTE_SENT;
    }
    e->retry_head++; /* the head, and its entity is fine: apply it */
    return ROUTE_APPLY;
}

/* Fold record i. False when the batch lost Redis (stop folding). */
static bool fold_one(pr_ctx_t *pr, batch_t *b, size_t i, int64_t now) {
    rd_kafka_message_t *m = b->msgs[i];
    int src = b->src[i];
    int32_t p = m->partition;
    if (src >= PR_N_SRC || p >= PR_MAX_PARTITIONS) return true;
    int fs = PR_FOLD_SRC(src);
    bool retry = PR_IS_RETRY(src);
    pr_part_t *pp = &pr->parts[p];
    const orig_t *o = &b->orig[i];
    bool repair = m->offset < pp->repair_until[src];
    if (retry && b->blocked[p][fs] >= 0) return true; /* behind a record not yet due */
    if (retry && !repair && b->ok[i] && o->due > now) { /* hold the topic here until it is due */
        b->blocked[p][fs] = m->offset;
        b->blocked_due[p][fs] = o->due;
        return true;
    }
    pp->next[src] = m->offset + 1;
    b->repair = repair;
    b->cur_msg = m;
    if (!b->ok[i]) {
        if (!b->repair) dead_letter(pr, b, m, fs, o, poison_why(b, i));
        return true;
    }
    pr_entity_t *e = b->ents[i];
    route_t r = ROUTE_APPLY;
    if (b->repair) {
        /* committed by an earlier owner: fold what it folded; what it
         * sent to a retry topic and still waits there is not ours */
        if (e->poisoned || o->offset >= e->hold_from[fs]) return true;
    } else {
        r = retry ? route_retry(pr, b, m, fs, o, e, now) : route_input(pr, b, m, fs, o, e, now);
    }
    if (r == ROUTE_REDIS_LOST) return false;
    if (r == ROUTE_SENT) return true;
    if (e->wm.off[fs] >= o->offset) { /* already in the stored state */
        px_counter_add(pr->m_skipped, 1);
        return true;
    }
    b->cur = e;
    px_src_t s = {(px_src_topic_t)fs, p, o->offset};
    int rc = px_fold_apply(&e->st, &pr->fold, &b->evs[i], &s, on_change, b);
    if (rc == PX_EINVAL && !b->repair) dead_letter(pr, b, m, fs, o, "refused by the fold (cap reached or wrong topic)");
    e->wm.off[fs] = o->offset;
    if (b->repair) px_counter_add(pr->m_repaired, 1);
    else px_counter_add(pr->m_folded[fs], 1);
    pr_table_mark_dirty(pr, e);
    pr_heap_update(pr, e);
    return true;
}

int pr_batch_fold(pr_ctx_t *pr, batch_t *b, size_t from, int64_t *t_loaded) {
    if (from == 0) px_buf_reset(&b->whys);
    if (decode_range(pr, b, from)) {
        pr->reg.down = true;
        return PX_EBACKEND;
    }
    if (find_range(pr, b, from)) return PX_EBACKEND;
    *t_loaded = px_mono_us();
    int64_t now = px_now_ms();
    for (size_t i = from; i < b->n; i++)
        if (!fold_one(pr, b, i, now)) {
            pr_batch_state_fail(&b->st, PR_FATE_REDIS_LOST);
            break;
        }
    return 0;
}

/* True while some source topic of the partition is below its repair bound. */
static bool part_repairing(const pr_part_t *pp) {
    for (int s = 0; s < PR_N_SRC; s++)
        if (pp->repair_until[s] >= 0 && pp->next[s] < pp->repair_until[s]) return true;
    return false;
}

void pr_batch_finish_fold(pr_ctx_t *pr, batch_t *b) {
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        for (int fs = 0; fs < PX_SRC__COUNT; fs++)
            if (b->blocked[p][fs] >= 0) pr_kafka_hold_retry(pr, p, fs, b->blocked[p][fs], b->blocked_due[p][fs]);
    b->repair = false;
    int64_t now = px_now_ms();
    pr_entity_t *due[PR_MAX_DUE];
    size_t n_due = pr_heap_due(pr, now, due, PR_MAX_DUE);
    for (size_t i = 0; i < n_due; i++) {
        pr_entity_t *e = due[i];
        b->cur = e;
        if (!part_repairing(&pr->parts[e->partition])) px_fold_due(&e->st, &pr->fold, now, on_expire, b);
        pr_heap_update(pr, e);
    }
}

rd_kafka_topic_partition_list_t *pr_batch_offsets(pr_ctx_t *pr, const batch_t *b) {
    rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new(16);
    for (int p = 0; p < PR_MAX_PARTITIONS; p++)
        for (int s = 0; s < PR_N_SRC; s++)
            if (b->first[p][s] >= 0 && pr->parts[p].next[s] > pr->parts[p].repair_until[s])
                rd_kafka_topic_partition_list_add(offs, pr->kc.topics[s], p)->offset = pr->parts[p].next[s];
    return offs;
}

void pr_batch_drop(pr_ctx_t *pr, batch_t *b) {
    pr_txn_drop(pr, &b->txn);
    pr_quiesce(pr); /* the transaction in flight and the writer name entities the rewind drops */
    pr_kafka_rewind(pr, (const int64_t(*)[PR_N_SRC])b->first, b->touched);
    pr_batch_free_msgs(b);
    pr_batch_state_close(&b->st);
}

/* ---- the buffers ---------------------------------------------------------- */

static void batch_free(batch_t *b) {
    pr_txn_term(&b->txn);
    free(b->msgs);
    free(b->evs);
    free(b->ok);
    free(b->why);
    px_buf_term(&b->whys);
    free(b->src);
    free(b->hash);
    free(b->orig);
    free(b->ents);
    free(b->decided);
    free(b);
}

batch_t *pr_batch_get(pr_ctx_t *pr) {
    if (pr->batch) return pr->batch;
    size_t n = (size_t)pr->cfg.batch_max;
    batch_t *b = calloc(1, sizeof *b);
    if (b) {
        b->pr = pr;
        b->msgs = calloc(n, sizeof *b->msgs);
        b->evs = calloc(n, sizeof *b->evs);
        b->ok = calloc(n, sizeof *b->ok);
        b->why = calloc(n, sizeof *b->why);
        px_buf_init(&b->whys, 1u << 20);
        b->src = calloc(n, sizeof *b->src);
        b->hash = calloc(n, sizeof *b->hash);
        b->orig = calloc(n, sizeof *b->orig);
        b->ents = calloc(2 * n, sizeof *b->ents);
        b->decided = calloc(n, sizeof *b->decided);
    }
    if (!b || pr_txn_init(&b->txn) || !b->msgs || !b->evs || !b->ok || !b->why || !b->src || !b->hash || !b->orig ||
        !b->ents || !b->decided) {
        PX_ERROR(PR_COMP, "out of memory for the batch", "batch_max=%zu", n);
        if (b) batch_free(b);
        return NULL;
    }
    return pr->batch = b;
}

void pr_batch_free(pr_ctx_t *pr) {
    batch_t *b = pr->batch;
    if (!b) return;
    pr_batch_free_msgs(b);
    batch_free(b);
    pr->batch = NULL;
}
