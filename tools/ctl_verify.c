/*
 * ctl_verify.c - `presencectl verify`: the operator's proof that the view
 * is right. Folds every input topic from the beginning to its current end
 * (ctl_fold.c) and compares what the processor made of it:
 *   - every entity's state with its state blob in Redis (px_store; with
 *     redis.key_prefix / redis.db, a copy made by `replay`), and
 *   - the change events, record for record, with the committed
 *     presence.changes (the same Avro bytes, as a multiset; a record in
 *     the Confluent framing is compared by its content).
 * Prints each difference, then a verdict naming both ends (the Kafka
 * bootstrap servers and topic prefix, the Redis address, database and key
 * prefix); exit 1 if any, 0 if none, 2 on an error.
 * With --scan-redis it also SCANs Redis for entities the log does not have
 * (only where the database / key prefix holds this deployment alone).
 * Limits: the change multiset is held in memory (about 200 bytes a change).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "ctl.h"
#include "px_err.h"

/* A change event as bytes: key, 0x1f, Avro value. */
typedef struct blob {
    char *p;
    size_t n;
} blob_t;

typedef struct vec {
    blob_t *v;
    size_t n, cap;
} vec_t;

typedef struct verify {
    vec_t offline, live;
    char topic[PX_CONF_STR_MAX * 2];
    int diffs;
    uint64_t oom;
} verify_t;

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

static void on_change(ctl_t *c, const px_event_t *ch) {
    verify_t *v = c->user;
    char key[PX_KEY_MAX + 1], err[256];
    px_buf_reset(&c->buf);
    if (px_avro_encode(c->avro, ch, &c->buf, err, sizeof err)) {
        fprintf(stderr, "presencectl: change event does not encode: %s\n", err);
        v->oom++;
        return;
    }
    int kl = px_key_format(&ch->key, key, sizeof key);
    if (vec_push(&v->offline, key, (size_t)kl, c->buf.data, c->buf.len)) v->oom++;
}

/* A committed change, as the bytes the offline fold would encode: a record
 * in the Confluent framing (a registry's schema id, possibly an older or
 * newer version of ChangeEvent) is decoded and encoded again in
 * single-object encoding, so the comparison is of content, whatever
 * framing the processor wrote. Bytes that do not decode stay as they are
 * (they show up as an extra change). */
static void collect_change(ctl_t *c, const rd_kafka_message_t *m, void *arg) {
    verify_t *v = arg;
    const void *val = m->payload ? m->payload : "";
    size_t len = m->len;
    if (len && ((const unsigned char *)val)[0] == 0x00) {
        px_event_t ev;
        char err[256];
        int rc = px_avro_decode(c->avro, val, len, &ev, err, sizeof err);
        if (rc == PX_EBACKEND && !c->n_unavailable++)
            fprintf(stderr, "presencectl verify: %s [%d] @%lld: %s\n", rd_kafka_topic_name(m->rkt),
                    (int)m->partition, (long long)m->offset, err);
        px_buf_reset(&c->buf);
        if (rc == 0 && px_avro_encode(c->avro, &ev, &c->buf, err, sizeof err) == 0) {
            val = c->buf.data;
            len = c->buf.len;
        }
    }
    if (vec_push(&v->live, m->key ? m->key : "", m->key_len, val, len)) v->oom++;
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

static void compare_changes(ctl_t *c, verify_t *v) {
    if (v->offline.n) qsort(v->offline.v, v->offline.n, sizeof *v->offline.v, blob_cmp);
    if (v->live.n) qsort(v->live.v, v->live.n, sizeof *v->live.v, blob_cmp);
    size_t i = 0, j = 0;
    int shown = 0;
    while (i < v->offline.n || j < v->live.n) {
        int k = i == v->offline.n ? 1 : j == v->live.n ? -1 : blob_cmp(&v->offline.v[i], &v->live.v[j]);
        if (k == 0) {
            i++, j++;
            continue;
        }
        v->diffs++;
        if (shown++ < 50)
            print_blob(k < 0 ? "missing-change" : "extra-change", c, k < 0 ? &v->offline.v[i] : &v->live.v[j]);
        if (k < 0) i++;
        else j++;
    }
    printf("changes: %zu in the log's fold, %zu committed in %s at Kafka %s\n", v->offline.n, v->live.n, v->topic,
           c->bootstrap);
}

/* --scan-redis: SCAN the (prefixed) state keys and report every entity
 * Redis holds that the log does not. Only meaningful when the Redis
 * database / key prefix belongs to this deployment's topics alone. */
static int scan_extra(ctl_t *c, verify_t *v, redisContext *r) {
    char pat[PX_CONF_STR_MAX * 2 + 32], cursor[32] = "0";
    size_t pl = 0, extra = 0;
    for (const char *p = c->cfg.redis_key_prefix; *p && pl < sizeof pat - 40; p++) {
        if (strchr("*?[]\\", *p)) pat[pl++] = '\\'; /* the prefix is literal in the glob */
        pat[pl++] = *p;
    }
    snprintf(pat + pl, sizeof pat - pl, "presence:{*}:state");
    size_t skip = strlen(c->cfg.redis_key_prefix) + strlen("presence:{");
    do {
        redisReply *rep = redisCommand(r, "SCAN %s MATCH %s COUNT 1000", cursor, pat);
        if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || rep->element[0]->type != REDIS_REPLY_STRING) {
            fprintf(stderr, "presencectl verify: %s: SCAN: %s\n", c->redis_where,
                    rep && rep->type == REDIS_REPLY_ERROR ? rep->str : r->errstr);
            freeReplyObject(rep);
            return CTL_EXIT_ERR;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        redisReply *keys = rep->element[1];
        for (size_t i = 0; keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING || k->len < skip + strlen("}:state")) continue;
            size_t kl = k->len - skip - strlen("}:state");
            if (ctl_fold_find(c, k->str + skip, kl)) continue;
            extra++;
            v->diffs++;
            printf("entity-extra %.*s (in Redis, not in the log)\n", (int)kl, k->str + skip);
        }
        freeReplyObject(rep);
    } while (strcmp(cursor, "0") != 0);
    printf("entities: %zu in %s that the log does not have\n", extra, c->redis_where);
    return 0;
}

static int compare_redis(ctl_t *c, verify_t *v, redisContext *r) {
    size_t same = 0;
    int rc = 0;
    px_entity_t got;
    px_store_wm_t wm;
    px_buf_t a, b;
    px_buf_init(&a, 1u << 24);
    px_buf_init(&b, 1u << 24);
    CTL_FOR_EACH_ENT(c, n) {
        char key[PX_CONF_STR_MAX + PX_KEY_MAX + 64], err[256] = "";
        ctl_redis_key(c, &n->st.key, "state", key, sizeof key);
        redisReply *rep = redisCommand(r, "HGET %s blob", key);
        if (!rep) {
            fprintf(stderr, "presencectl verify: %s: HGET %s: %s\n", c->redis_where, key, r->errstr);
            rc = CTL_EXIT_ERR;
            goto out;
        }
        px_entity_init(&got, &n->st.key);
        bool ok = rep->type == REDIS_REPLY_STRING && px_store_decode(rep->str, rep->len, &got, &wm, err, sizeof err) == 0;
        bool empty = n->st.n_tabs == 0 && n->st.n_locks == 0 && n->st.n_writes == 0 && n->st.version == 0;
        if (ok ? px_entity_equal(&got, &n->st) : (empty && rep->type == REDIS_REPLY_NIL)) {
            same++;
        } else {
            v->diffs++;
            px_buf_reset(&a);
            px_buf_reset(&b);
            px_entity_dump(&n->st, &a);
            if (ok) px_entity_dump(&got, &b);
            printf("entity-differs %s:%s:%s\n  log:   %s\n  redis: %s%s%s\n", n->st.key.tenant, n->st.key.entity,
                   n->st.key.id, a.data ? a.data : "",
                   ok ? (b.data ? b.data : "") : rep->type == REDIS_REPLY_NIL ? "(missing)" : "(undecodable: ",
                   ok || rep->type == REDIS_REPLY_NIL ? "" : err, ok || rep->type == REDIS_REPLY_NIL ? "" : ")");
        }
        px_entity_term(&got);
        freeReplyObject(rep);
    }
    printf("entities: %zu in the log, %zu equal in %s\n", c->nents, same, c->redis_where);
    if (ctl_flag_set(c, "scan-redis")) rc = scan_extra(c, v, r);
out:
    px_buf_term(&a);
    px_buf_term(&b);
    return rc;
}

int ctl_verify(ctl_t *c) {
    verify_t v = {0};
    c->user = &v;
    c->on_change = on_change;
    redisContext *r = ctl_redis_connect(c); /* first: an unreachable Redis fails before the long read */
    if (!r) return CTL_EXIT_ERR;
    int rc = ctl_fold_inputs(c, NULL);
    if (!rc) {
        ctl_topic_name(c, "presence.changes", v.topic, sizeof v.topic);
        rc = ctl_read_topic(c, v.topic, NULL, collect_change, &v);
    }
    if (!rc && v.oom) {
        fprintf(stderr, "presencectl: %llu change events could not be kept (out of memory)\n",
                (unsigned long long)v.oom);
        rc = CTL_EXIT_ERR;
    }
    if (!rc) {
        ctl_fold_summary(c);
        compare_changes(c, &v);
        rc = compare_redis(c, &v, r);
    }
    if (!rc) {
        printf("%s: %d difference%s between the log in %s and the view in %s\n", v.diffs ? "DIFFERENT" : "EQUAL",
               v.diffs, v.diffs == 1 ? "" : "s", c->kafka_where, c->redis_where);
        rc = v.diffs ? CTL_EXIT_DIFF : CTL_EXIT_OK;
    }
    vec_free(&v.offline);
    vec_free(&v.live);
    redisFree(r);
    return rc;
}
