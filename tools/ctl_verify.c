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
 * With --scan-redis it also SCANs every master for entities the log does
 * not have (only where the database / key prefix holds this deployment
 * alone). Redis is read through px_rcl (one server, the master the
 * Sentinels name, or every master of a cluster, each key from the master
 * of its slot), 512 entities a pipeline; on more than one master, each
 * master's count is printed.
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

/* --scan-redis, on one master: SCAN its (prefixed) state keys and report
 * every entity it holds that the log does not. *nkeys counts the state
 * keys seen. */
static int scan_node(ctl_t *c, verify_t *v, px_rcl_t *r, int node, const char *pat, size_t *extra, size_t *nkeys) {
    size_t skip = strlen(c->cfg.redis_key_prefix) + strlen("presence:{");
    char cursor[32] = "0";
    px_rcl_batch_t b;
    px_rcl_batch_init(&b, 1u << 16);
    int rc = 0;
    do {
        char *cmd = NULL;
        int len = redisFormatCommand(&cmd, "SCAN %s MATCH %s COUNT 1000", cursor, pat);
        rc = len < 0 || px_rcl_add_formatted(&b, -1, node, cmd, (size_t)len) ? CTL_EXIT_ERR : 0;
        if (cmd) redisFreeCommand(cmd);
        if (rc || (rc = ctl_redis_exec(c, r, &b, "SCAN"))) break;
        const redisReply *rep = b.cmd[0].reply;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 || rep->element[0]->type != REDIS_REPLY_STRING) {
            char name[PX_REDIS_HOST_MAX + 16];
            fprintf(stderr, "presencectl verify: %s: SCAN: %s\n", px_rcl_node_name(r, node, name, sizeof name),
                    rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
            rc = CTL_EXIT_ERR;
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", rep->element[0]->str);
        const redisReply *keys = rep->element[1];
        for (size_t i = 0; keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++) {
            const redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING || k->len < skip + strlen("}:state")) continue;
            size_t kl = k->len - skip - strlen("}:state");
            (*nkeys)++;
            if (ctl_fold_find(c, k->str + skip, kl)) continue;
            (*extra)++;
            v->diffs++;
            printf("entity-extra %.*s (in Redis, not in the log)\n", (int)kl, k->str + skip);
        }
        px_rcl_batch_reset(&b);
    } while (strcmp(cursor, "0") != 0);
    px_rcl_batch_term(&b);
    return rc;
}

/* --scan-redis: every master in turn. Only meaningful when the Redis
 * database / key prefix belongs to this deployment's topics alone. A
 * failover or slot move during the scan may hide or repeat keys. */
static int scan_extra(ctl_t *c, verify_t *v, px_rcl_t *r) {
    char pat[PX_CONF_STR_MAX * 2 + 32], name[PX_REDIS_HOST_MAX + 16];
    size_t pl = 0, extra = 0;
    for (const char *p = c->cfg.redis_key_prefix; *p && pl < sizeof pat - 40; p++) {
        if (strchr("*?[]\\", *p)) pat[pl++] = '\\'; /* the prefix is literal in the glob */
        pat[pl++] = *p;
    }
    snprintf(pat + pl, sizeof pat - pl, "presence:{*}:state");
    for (int i = 0; i < px_rcl_nodes(r); i++) {
        size_t nkeys = 0, before = extra;
        int rc = scan_node(c, v, r, i, pat, &extra, &nkeys);
        if (rc) return rc;
        printf("scanned %s: %zu entities, %zu not in the log\n", px_rcl_node_name(r, i, name, sizeof name), nkeys,
               extra - before);
    }
    printf("entities: %zu in %s that the log does not have\n", extra, c->redis_where);
    return 0;
}

/* Compare entity n with the blob Redis answered; prints a difference. */
static bool compare_one(verify_t *v, const ctl_ent_t *n, const redisReply *rep, px_buf_t *a, px_buf_t *b) {
    char err[256] = "";
    px_entity_t got;
    px_store_wm_t wm;
    px_entity_init(&got, &n->st.key);
    bool ok = rep->type == REDIS_REPLY_STRING && px_store_decode(rep->str, rep->len, &got, &wm, err, sizeof err) == 0;
    bool empty = n->st.n_tabs == 0 && n->st.n_locks == 0 && n->st.n_writes == 0 && n->st.version == 0;
    bool same = ok ? px_entity_equal(&got, &n->st) : (empty && rep->type == REDIS_REPLY_NIL);
    if (!same) {
        v->diffs++;
        px_buf_reset(a);
        px_buf_reset(b);
        px_entity_dump(&n->st, a);
        if (ok) px_entity_dump(&got, b);
        const char *open = rep->type == REDIS_REPLY_NIL     ? "(missing)"
                           : rep->type == REDIS_REPLY_ERROR ? "(error reply: "
                                                            : "(undecodable: ";
        printf("entity-differs %s:%s:%s\n  log:   %s\n  redis: %s%s%s\n", n->st.key.tenant, n->st.key.entity,
               n->st.key.id, a->data ? a->data : "", ok ? (b->data ? b->data : "") : open,
               ok || rep->type == REDIS_REPLY_NIL ? "" : rep->type == REDIS_REPLY_ERROR ? rep->str : err,
               ok || rep->type == REDIS_REPLY_NIL ? "" : ")");
    }
    px_entity_term(&got);
    return same;
}

#define VERIFY_CHUNK 512

typedef struct cmp {
    const ctl_ent_t *ent[VERIFY_CHUNK];
    size_t n, same;
    size_t per_node[PX_REDIS_NODES_MAX], equal_node[PX_REDIS_NODES_MAX];
    px_rcl_batch_t b;
    px_buf_t da, db;
} cmp_t;

/* Read the chunk's blobs (one pipeline per master) and compare them. */
static int compare_chunk(ctl_t *c, verify_t *v, px_rcl_t *r, cmp_t *k) {
    int rc = ctl_redis_exec(c, r, &k->b, "HGET");
    for (size_t i = 0; !rc && i < k->n; i++) {
        bool same = compare_one(v, k->ent[i], k->b.cmd[i].reply, &k->da, &k->db);
        k->same += same;
        int node = px_rcl_owner(r, k->b.cmd[i].slot);
        if (node >= 0) k->per_node[node]++, k->equal_node[node] += same;
    }
    px_rcl_batch_reset(&k->b);
    k->n = 0;
    return rc;
}

static int compare_redis(ctl_t *c, verify_t *v, px_rcl_t *r) {
    cmp_t *k = calloc(1, sizeof *k);
    if (!k) return CTL_EXIT_ERR;
    px_rcl_batch_init(&k->b, 1u << 24);
    px_buf_init(&k->da, 1u << 24);
    px_buf_init(&k->db, 1u << 24);
    int rc = 0;
    CTL_FOR_EACH_ENT(c, n) {
        char key[PX_CONF_STR_MAX + PX_KEY_MAX + 64];
        int kl = ctl_redis_key(c, &n->st.key, "state", key, sizeof key);
        const char *argv[3] = {"HGET", key, "blob"};
        size_t argvlen[3] = {4, (size_t)(kl < 0 ? 0 : kl), 4};
        k->ent[k->n++] = n;
        if (kl < 0 || px_rcl_add(&k->b, key, (size_t)kl, 3, argv, argvlen)) {
            fprintf(stderr, "presencectl verify: %s: key too long or out of memory\n", n->st.key.id);
            rc = CTL_EXIT_ERR;
        }
        if (rc || (k->n == VERIFY_CHUNK && (rc = compare_chunk(c, v, r, k)))) break;
    }
    if (!rc && k->n) rc = compare_chunk(c, v, r, k);
    if (!rc) {
        char name[PX_REDIS_HOST_MAX + 16];
        for (int i = 0; i < px_rcl_nodes(r) && px_rcl_nodes(r) > 1; i++)
            printf("read %s: %zu entities, %zu equal\n", px_rcl_node_name(r, i, name, sizeof name), k->per_node[i],
                   k->equal_node[i]);
        printf("entities: %zu in the log, %zu equal in %s\n", c->nents, k->same, c->redis_where);
    }
    if (!rc && ctl_flag_set(c, "scan-redis")) rc = scan_extra(c, v, r);
    px_rcl_batch_term(&k->b);
    px_buf_term(&k->da);
    px_buf_term(&k->db);
    free(k);
    return rc;
}

int ctl_verify(ctl_t *c) {
    verify_t v = {0};
    c->user = &v;
    c->on_change = on_change;
    px_rcl_t *r = ctl_redis_connect(c); /* first: an unreachable Redis fails before the long read */
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
    px_rcl_free(r);
    return rc;
}
