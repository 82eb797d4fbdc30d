/*
 * presencectl - the operator's tool on the Kafka log (the source of truth).
 *
 *   presencectl verify [--set key=value ...]
 *
 * verify: reads every input topic from the beginning to its current end
 * (read_committed), folds it with the one fold of core/ (px_fold), and
 * compares the result with what the processor made of it:
 *   - every entity's state with its state in Redis (px_store), and
 *   - the change events, record for record, with the committed
 *     presence.changes (the same Avro bytes, as a multiset).
 * It prints each difference and exits 1 if there is any, 0 otherwise, 2 on
 * a usage or connection error. Limits of this version: entities present in
 * Redis but absent from the log are not looked for; replay, audit, dlq,
 * produce and topics come with the presencectl issue.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#include "px_avro.h"
#include "px_config.h"
#include "px_err.h"
#include "px_fold.h"
#include "px_kafka.h"
#include "px_lcjson.h"
#include "px_log.h"
#include "px_store.h"

typedef struct ctl_config {
    char redis_host[PX_CONF_STR_MAX];
    int64_t redis_port;
    char topic_prefix[PX_CONF_STR_MAX];
    int64_t presence_ttl_ms, lock_ttl_ms, stale_ttl_ms;
    int64_t timeout_ms;
} ctl_config_t;

#define OPT(n, t, d, h, f, lo, hi) {n, t, d, h, offsetof(ctl_config_t, f), lo, hi}
static const px_opt_t ctl_opts[] = {
    OPT("redis.host", PX_OPT_STR, "127.0.0.1", "Redis host", redis_host, 0, 0),
    OPT("redis.port", PX_OPT_INT, "6379", "Redis port", redis_port, 1, 65535),
    OPT("topic.prefix", PX_OPT_STR, "", "prefix of every topic name", topic_prefix, 0, 0),
    OPT("presence.ttl_ms", PX_OPT_INT, "60000", "as the processor", presence_ttl_ms, 1000, 86400000),
    OPT("lock.ttl_ms", PX_OPT_INT, "120000", "as the processor", lock_ttl_ms, 1000, 86400000),
    OPT("stale.ttl_ms", PX_OPT_INT, "300000", "as the processor", stale_ttl_ms, 1000, 86400000),
    OPT("timeout_ms", PX_OPT_INT, "30000", "how long to wait for Kafka", timeout_ms, 1000, 3600000),
};

static const char *const SRC_TOPICS[PX_SRC__COUNT] = {"presence.heartbeats", "presence.locks",
                                                      "core.entities.lifecycle.mutating",
                                                      "core.entities.lifecycle.mutated"};
static const px_kind_t SRC_KIND[PX_SRC__COUNT] = {PX_KIND_PRESENCE, PX_KIND_LOCK, PX_KIND_LIFECYCLE,
                                                  PX_KIND_LIFECYCLE};

/* A change event as bytes: key and Avro value. */
typedef struct blob {
    char *p;
    size_t n;
} blob_t;

typedef struct vec {
    blob_t *v;
    size_t n, cap;
} vec_t;

typedef struct ent_node {
    px_entity_t st;
    struct ent_node *next;
} ent_node_t;

typedef struct ctl {
    ctl_config_t cfg;
    px_kvlist_t kafka;
    px_fold_conf_t fold;
    px_avro_t *avro;
    ent_node_t **tab;
    size_t nbuckets, nents;
    vec_t offline, live;
    char topic[PX_CONF_STR_MAX * 2];
    px_buf_t buf;
    int diffs;
} ctl_t;

static int vec_push(vec_t *v, const void *a, size_t an, const void *b, size_t bn) {
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 1024;
        blob_t *nv = realloc(v->v, nc * sizeof *nv);
        if (!nv) return PX_ENOMEM;
        v->v = nv;
        v->cap = nc;
    }
    char *p = malloc(an + bn + 1);
    if (!p) return PX_ENOMEM;
    memcpy(p, a, an);
    p[an] = '\x1f';
    memcpy(p + an + 1, b, bn);
    v->v[v->n++] = (blob_t){p, an + bn + 1};
    return 0;
}

static void vec_free(vec_t *v) {
    for (size_t i = 0; i < v->n; i++) free(v->v[i].p);
    free(v->v);
}

static int blob_cmp(const void *a, const void *b) {
    const blob_t *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static uint64_t key_hash(const px_key_t *k) {
    char s[PX_KEY_MAX + 1];
    px_key_format(k, s, sizeof s);
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = s; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h;
}

static px_entity_t *entity(ctl_t *c, const px_key_t *k) {
    size_t b = key_hash(k) % c->nbuckets;
    for (ent_node_t *n = c->tab[b]; n; n = n->next)
        if (px_key_equal(&n->st.key, k)) return &n->st;
    ent_node_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    px_entity_init(&n->st, k);
    n->next = c->tab[b];
    c->tab[b] = n;
    c->nents++;
    return &n->st;
}

typedef struct emit_ctx {
    ctl_t *c;
    const char *topic;
} emit_ctx_t;

static void on_change(void *arg, const px_event_t *ev) {
    emit_ctx_t *e = arg;
    px_event_t ch = *ev;
    char key[PX_KEY_MAX + 1], err[256];
    snprintf(ch.src_topic, sizeof ch.src_topic, "%s", e->topic);
    px_buf_reset(&e->c->buf);
    if (px_avro_encode(e->c->avro, &ch, &e->c->buf, err, sizeof err)) {
        fprintf(stderr, "presencectl: change event does not encode: %s\n", err);
        return;
    }
    int kl = px_key_format(&ch.key, key, sizeof key);
    vec_push(&e->c->offline, key, (size_t)kl, e->c->buf.data, e->c->buf.len);
}

/* Consume topic from the beginning to its end (high watermarks now),
 * calling fn per record. 0, or 2 on a Kafka error. */
typedef void (*rec_fn)(ctl_t *c, const rd_kafka_message_t *m, int src);

static int read_topic(ctl_t *c, const char *topic, int src, rec_fn fn) {
    char errstr[512];
    static const char *const defaults[][2] = {{"bootstrap.servers", "127.0.0.1:9092"},
                                              {"group.id", "presencectl"},
                                              {"enable.auto.commit", "false"},
                                              {"isolation.level", "read_committed"}};
    rd_kafka_conf_t *conf = px_kafka_conf_new_with(defaults, 4, &c->kafka, "presencectl", errstr, sizeof errstr);
    if (!conf) {
        fprintf(stderr, "presencectl: %s\n", errstr);
        return 2;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "presencectl: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    int rc = 2;
    const rd_kafka_metadata_t *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, (int)c->cfg.timeout_ms);
    rd_kafka_topic_destroy(rkt);
    if (err || md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "presencectl: topic %s: %s\n", topic,
                rd_kafka_err2str(err ? err : md->topic_cnt ? md->topics[0].err : RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
        goto out;
    }
    int np = md->topics[0].partition_cnt;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    int64_t *end = calloc((size_t)np, sizeof *end);
    size_t remaining = 0;
    for (int p = 0; p < np; p++) {
        int64_t lo, hi;
        err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, (int)c->cfg.timeout_ms);
        if (err) {
            fprintf(stderr, "presencectl: %s [%d]: %s\n", topic, p, rd_kafka_err2str(err));
            free(end);
            rd_kafka_topic_partition_list_destroy(l);
            goto out;
        }
        end[p] = hi > lo ? hi : 0; /* 0: nothing to read there */
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
            remaining++;
        }
    }
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    /* read until every partition reached its end (EOF, or an offset past
     * the high watermark: aborted and control records have no message) */
    int idle = 0;
    while (remaining && idle < (int)(c->cfg.timeout_ms / 100)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m) {
            idle++;
            /* positions advance over control records without a message */
            rd_kafka_topic_partition_list_t *ps = rd_kafka_topic_partition_list_new(np);
            for (int p = 0; p < np; p++) rd_kafka_topic_partition_list_add(ps, topic, p);
            rd_kafka_position(rk, ps);
            remaining = 0;
            for (int p = 0; p < np; p++)
                if (end[p] > 0 && ps->elems[p].offset < end[p]) remaining++;
            rd_kafka_topic_partition_list_destroy(ps);
            continue;
        }
        idle = 0;
        if (!m->err) {
            if (m->offset < end[m->partition]) fn(c, m, src);
        } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "presencectl: %s: %s\n", topic, rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    rc = remaining ? 2 : 0;
    if (remaining) fprintf(stderr, "presencectl: %s: timed out before the end of the topic\n", topic);
    free(end);
out:
    if (md) rd_kafka_metadata_destroy(md);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

static void fold_record(ctl_t *c, const rd_kafka_message_t *m, int src) {
    px_event_t ev;
    char err[256];
    const char *v = m->payload;
    int rc;
    if ((src == PX_SRC_MUTATING || src == PX_SRC_MUTATED) && m->len && v[0] == '{')
        rc = px_lcjson_decode(v, m->len, rd_kafka_message_timestamp(m, NULL), &ev, err, sizeof err);
    else
        rc = px_avro_decode(c->avro, m->payload, m->len, &ev, err, sizeof err);
    if (rc || ev.kind != SRC_KIND[src]) return; /* poison: the processor dead-letters it too */
    char key[PX_KEY_MAX + 1];
    int kl = px_key_format(&ev.key, key, sizeof key);
    if (!m->key || (size_t)kl != m->key_len || memcmp(key, m->key, m->key_len) != 0) return;
    px_entity_t *e = entity(c, &ev.key);
    if (!e) return;
    px_src_t s = {(px_src_topic_t)src, m->partition, m->offset};
    emit_ctx_t ec = {c, rd_kafka_topic_name(m->rkt)};
    px_fold_apply(e, &c->fold, &ev, &s, on_change, &ec);
}

static void collect_change(ctl_t *c, const rd_kafka_message_t *m, int src) {
    vec_push(&c->live, m->key ? m->key : "", m->key_len, m->payload ? m->payload : "", m->len);
}

static void print_blob(const char *what, ctl_t *c, const blob_t *b) {
    const char *sep = memchr(b->p, '\x1f', b->n);
    px_event_t ev;
    char err[256];
    if (sep && px_avro_decode(c->avro, sep + 1, b->n - (size_t)(sep + 1 - b->p), &ev, err, sizeof err) == 0)
        printf("%s %.*s %s src=%s[%d]@%lld tab=%s user=%s field=%s\n", what, (int)(sep - b->p), b->p,
               px_event_type_name(PX_KIND_CHANGE, ev.type), ev.src_topic, ev.src_partition,
               (long long)ev.src_offset, ev.tab_id, ev.user_id, ev.field);
    else
        printf("%s (undecodable change event)\n", what);
}

static int compare_changes(ctl_t *c) {
    qsort(c->offline.v, c->offline.n, sizeof *c->offline.v, blob_cmp);
    qsort(c->live.v, c->live.n, sizeof *c->live.v, blob_cmp);
    size_t i = 0, j = 0;
    int shown = 0;
    while (i < c->offline.n || j < c->live.n) {
        int k = i == c->offline.n ? 1 : j == c->live.n ? -1 : blob_cmp(&c->offline.v[i], &c->live.v[j]);
        if (k == 0) {
            i++, j++;
            continue;
        }
        c->diffs++;
        if (shown++ < 50) print_blob(k < 0 ? "missing-change" : "extra-change", c, k < 0 ? &c->offline.v[i] : &c->live.v[j]);
        if (k < 0) i++;
        else j++;
    }
    printf("changes: %zu in the log's fold, %zu committed in %s\n", c->offline.n, c->live.n, c->topic);
    return 0;
}

static int compare_redis(ctl_t *c) {
    struct timeval tv = {5, 0};
    redisContext *r = redisConnectWithTimeout(c->cfg.redis_host, (int)c->cfg.redis_port, tv);
    if (!r || r->err) {
        fprintf(stderr, "presencectl: redis %s:%lld: %s\n", c->cfg.redis_host, (long long)c->cfg.redis_port,
                r ? r->errstr : "out of memory");
        if (r) redisFree(r);
        return 2;
    }
    size_t same = 0;
    px_entity_t got;
    px_store_wm_t wm;
    px_buf_t a, b;
    px_buf_init(&a, 1u << 24);
    px_buf_init(&b, 1u << 24);
    for (size_t i = 0; i < c->nbuckets; i++)
        for (ent_node_t *n = c->tab[i]; n; n = n->next) {
            char key[PX_KEY_MAX + 64], err[256];
            px_store_state_key(&n->st.key, key, sizeof key);
            redisReply *rep = redisCommand(r, "HGET %s blob", key);
            px_entity_init(&got, &n->st.key);
            bool ok = rep && rep->type == REDIS_REPLY_STRING &&
                      px_store_decode(rep->str, rep->len, &got, &wm, err, sizeof err) == 0;
            bool empty = n->st.n_tabs == 0 && n->st.n_locks == 0 && n->st.n_writes == 0 && n->st.version == 0;
            if (ok ? px_entity_equal(&got, &n->st) : (empty && rep && rep->type == REDIS_REPLY_NIL)) {
                same++;
            } else {
                c->diffs++;
                px_buf_reset(&a);
                px_buf_reset(&b);
                px_entity_dump(&n->st, &a);
                if (ok) px_entity_dump(&got, &b);
                printf("entity-differs %s:%s:%s\n  log:   %s\n  redis: %s\n", n->st.key.tenant, n->st.key.entity,
                       n->st.key.id, a.data ? a.data : "", ok ? (b.data ? b.data : "") : "(missing or undecodable)");
            }
            px_entity_term(&got);
            if (rep) freeReplyObject(rep);
        }
    px_buf_term(&a);
    px_buf_term(&b);
    redisFree(r);
    printf("entities: %zu in the log, %zu equal in Redis\n", c->nents, same);
    return 0;
}

static int verify(ctl_t *c) {
    char t[PX_CONF_STR_MAX * 2];
    for (int s = 0; s < PX_SRC__COUNT; s++) {
        snprintf(t, sizeof t, "%s%s", c->cfg.topic_prefix, SRC_TOPICS[s]);
        if (read_topic(c, t, s, fold_record)) return 2;
    }
    snprintf(c->topic, sizeof c->topic, "%spresence.changes", c->cfg.topic_prefix);
    if (read_topic(c, c->topic, 0, collect_change)) return 2;
    compare_changes(c);
    if (compare_redis(c)) return 2;
    printf("%s: %d difference%s\n", c->diffs ? "DIFFERENT" : "EQUAL", c->diffs, c->diffs == 1 ? "" : "s");
    return c->diffs ? 1 : 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: presencectl verify [--config FILE] [--set key=value ...]\n"
               "  verify   fold the input topics and compare with Redis and presence.changes\n"
               "options (kafka.* go to librdkafka, e.g. --set kafka.bootstrap.servers=host:9092):\n");
    px_config_usage(ctl_opts, sizeof ctl_opts / sizeof ctl_opts[0], "presencectl", f);
}

int main(int argc, char **argv) {
    static ctl_t c;
    char errstr[512];
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "verify") != 0) {
        fprintf(stderr, "presencectl: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    int rc = px_config_load(ctl_opts, sizeof ctl_opts / sizeof ctl_opts[0], &c.cfg, &c.kafka, argc - 1, argv + 1,
                            "presencectl verify", stdout, errstr, sizeof errstr);
    if (rc == PX_CONFIG_EXIT) return 0;
    if (rc) {
        fprintf(stderr, "presencectl: %s\n", errstr);
        return 2;
    }
    px_log_set_level(PX_LOG_WARN);
    c.fold = px_fold_conf_default();
    c.fold.presence_ttl_ms = c.cfg.presence_ttl_ms;
    c.fold.lock_ttl_ms = c.cfg.lock_ttl_ms;
    c.fold.stale_ttl_ms = c.cfg.stale_ttl_ms;
    c.avro = px_avro_new(errstr, sizeof errstr);
    c.nbuckets = 1u << 16;
    c.tab = calloc(c.nbuckets, sizeof *c.tab);
    px_buf_init(&c.buf, 1u << 20);
    if (!c.avro || !c.tab) {
        fprintf(stderr, "presencectl: %s\n", c.avro ? "out of memory" : errstr);
        return 2;
    }
    rc = verify(&c);
    for (size_t i = 0; i < c.nbuckets; i++)
        for (ent_node_t *n = c.tab[i], *nx; n; n = nx) {
            nx = n->next;
            px_entity_term(&n->st);
            free(n);
        }
    free(c.tab);
    vec_free(&c.offline);
    vec_free(&c.live);
    px_buf_term(&c.buf);
    px_avro_free(c.avro);
    return rc;
}
