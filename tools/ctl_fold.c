/*
 * ctl_fold.c - presencectl's in-memory fold of the log: every input record
 * is decoded by the processor's own rule (core/px_input.h) and applied with core's
 * px_fold_apply to its entity in a hash table. There is no second fold:
 * verify, replay and audit all read the log through here, topic by topic
 * (the fold gives the same state and change events for every interleaving
 * of the four topics that keeps each topic's order: px_fold.h).
 * Records the processor would dead-letter are counted and skipped.
 * Memory: one px_entity_t per entity seen (bounded by the fold's caps).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "px_hash.h"
#include "px_err.h"
#include "px_input.h"

int ctl_fold_init(ctl_t *c) {
    char errstr[256];
    c->avro = px_avro_new(errstr, sizeof errstr);
    c->nbuckets = 1u << 18; /* a power of two (masked); grows never: chains stay short to ~1M entities */
    c->tab = calloc(c->nbuckets, sizeof *c->tab);
    px_buf_init(&c->buf, 1u << 20);
    if (!c->avro || !c->tab) {
        fprintf(stderr, "presencectl: %s\n", c->avro ? "out of memory" : errstr);
        return CTL_EXIT_ERR;
    }
    /* produce writes lifecycle records: those two topics' subjects */
    const px_kind_t kinds[2] = {PX_KIND_LIFECYCLE, PX_KIND_LIFECYCLE};
    const char *const topics[2] = {CTL_SRC_TOPICS[PX_SRC_MUTATING], CTL_SRC_TOPICS[PX_SRC_MUTATED]};
    if (px_schema_setup(&c->cfg.schema, c->avro, kinds, c->cfg.topic_prefix, topics, 2, &c->registry, errstr,
                        sizeof errstr)) {
        fprintf(stderr, "presencectl %s: schema registry %s: %s\n", c->cmd,
                c->cfg.schema.url[0] ? c->cfg.schema.url : "(none)", errstr);
        return CTL_EXIT_ERR;
    }
    return 0;
}

void ctl_fold_term(ctl_t *c) {
    if (c->tab)
        for (size_t i = 0; i < c->nbuckets; i++)
            for (ctl_ent_t *n = c->tab[i], *nx; n; n = nx) {
                nx = n->next;
                px_entity_term(&n->st);
                free(n);
            }
    free(c->tab);
    c->tab = NULL;
    px_buf_term(&c->buf);
    px_avro_free(c->avro);
    c->avro = NULL;
    px_registry_free(c->registry); /* after the codec that fetched through it */
    c->registry = NULL;
}

static uint64_t key_hash(const char *s, size_t n) { return px_fnv1a(PX_FNV1A_INIT, s, n); }

/* The entity of key k (formatted ks[0..kl)), created empty if new. The
 * hash and the formatted key sit at the head of the node, so a lookup
 * costs one cache line per node visited (the table was a quarter of the
 * fold's time comparing px_key_t's three fields). NULL on OOM. */
static ctl_ent_t *entity(ctl_t *c, const px_key_t *k, const char *ks, size_t kl) {
    uint64_t h = key_hash(ks, kl);
    size_t b = h & (c->nbuckets - 1);
    for (ctl_ent_t *n = c->tab[b]; n; n = n->next)
        if (n->hash == h && n->klen == kl && memcmp(n->kstr, ks, kl) == 0) return n;
    ctl_ent_t *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->hash = h;
    n->klen = (uint32_t)kl;
    memcpy(n->kstr, ks, kl);
    px_entity_init(&n->st, k);
    px_store_wm_init(&n->wm);
    n->next = c->tab[b];
    c->tab[b] = n;
    c->nents++;
    return n;
}

ctl_ent_t *ctl_fold_find(const ctl_t *c, const char *ks, size_t kl) {
    uint64_t h = key_hash(ks, kl);
    for (ctl_ent_t *n = c->tab[h & (c->nbuckets - 1)]; n; n = n->next)
        if (n->hash == h && n->klen == kl && memcmp(n->kstr, ks, kl) == 0) return n;
    return NULL;
}

int ctl_src_of_topic(const ctl_t *c, const char *topic) {
    size_t pl = strlen(c->cfg.topic_prefix);
    if (strncmp(topic, c->cfg.topic_prefix, pl) != 0) return -1;
    for (int s = 0; s < PX_SRC__COUNT; s++)
        if (strcmp(topic + pl, CTL_SRC_TOPICS[s]) == 0) return s;
    return -1;
}

int ctl_decode_input(ctl_t *c, int src, const void *val, size_t len, int64_t kafka_ts, px_event_t *ev,
                     char *errstr, size_t errstr_size) {
    return px_input_decode_value(c->avro, (px_src_topic_t)src, val, len, kafka_ts, ev, errstr, errstr_size)
               ? PX_EINVAL
               : 0;
}

typedef struct emit_ctx {
    ctl_t *c;
    const char *topic;
} emit_ctx_t;

static void on_change(void *arg, const px_event_t *ev) {
    emit_ctx_t *e = arg;
    e->c->n_changes++;
    if (!e->c->on_change) return;
    px_event_t ch = *ev;
    snprintf(ch.src_topic, sizeof ch.src_topic, "%s", e->topic);
    e->c->on_change(e->c, &ch);
}

static void fold_record(ctl_t *c, const rd_kafka_message_t *m, void *arg) {
    int src = *(const int *)arg;
    px_event_t ev;
    char err[256];
    c->n_records++;
    if (c->filter && !c->filter(c, m->key, m->key ? m->key_len : 0)) return;
    px_input_fault_t f = px_input_decode(c->avro, (px_src_topic_t)src, m->key, m->key_len, m->payload, m->len,
                                         rd_kafka_message_timestamp(m, NULL), &ev, err, sizeof err);
    if (f == PX_INPUT_UNAVAILABLE) { /* not poison: the read stops (ctl_read_topic) */
        if (!c->n_unavailable++)
            fprintf(stderr, "presencectl %s: %s [%d] @%lld: %s\n", c->cmd, rd_kafka_topic_name(m->rkt),
                    (int)m->partition, (long long)m->offset, err);
        return;
    }
    if (f) { /* poison: the processor dead-letters it too */
        if (f == PX_INPUT_BAD_KEY) c->n_skipped_key++;
        else c->n_skipped_decode++;
        return;
    }
    char key[PX_KEY_MAX + 1];
    int kl = px_key_format(&ev.key, key, sizeof key);
    ctl_ent_t *e = entity(c, &ev.key, key, (size_t)kl);
    if (!e) {
        c->n_refused++;
        fprintf(stderr, "presencectl: out of memory at entity %s\n", key);
        return;
    }
    px_src_t s = {(px_src_topic_t)src, m->partition, m->offset};
    emit_ctx_t ec = {c, rd_kafka_topic_name(m->rkt)};
    if (px_fold_apply(&e->st, &c->fold, &ev, &s, on_change, &ec)) {
        c->n_refused++; /* over a cap: the processor refuses it the same way */
        return;
    }
    c->n_folded++;
    if (m->offset > e->wm.off[src]) e->wm.off[src] = m->offset;
}

/* The fold is memory-bound (an entity per record, 100k of them: every
 * lookup misses the cache), so each record's memory is fetched in three
 * steps ahead of its fold (ctl_read.c calls them at falling distances, each
 * step reading only what the step before fetched): stage 0 its bucket slot
 * (and the hash, kept for the later stages), stage 1 the entity node's
 * lines the lookup and px_fold_apply's key check read, stage 2 the items of
 * the part the record's topic changes (tabs, locks or writes). */
static void prefetch(ctl_t *c, const rd_kafka_message_t *m, size_t i, int stage) {
    if (!m->key || m->err) return;
    size_t slot = i % CTL_PREFETCH_RING;
    if (stage == 0) {
        size_t b = key_hash(m->key, m->key_len) & (c->nbuckets - 1);
        c->pf_bucket[slot] = b;
        __builtin_prefetch(&c->tab[b]);
        return;
    }
    const ctl_ent_t *n = c->tab[c->pf_bucket[slot]];
    if (!n) return;
    if (stage == 1) {
        const char *k = (const char *)&n->st.key;
        __builtin_prefetch(n);
        __builtin_prefetch(k);
        __builtin_prefetch(k + offsetof(px_key_t, entity));
        __builtin_prefetch(k + offsetof(px_key_t, id));
        __builtin_prefetch(&n->st.tabs);
        return;
    }
    const void *items = c->pf_src == PX_SRC_HEARTBEATS ? (const void *)n->st.tabs
                        : c->pf_src == PX_SRC_LOCKS    ? (const void *)n->st.locks
                                                       : (const void *)n->st.writes;
    if (items) {
        __builtin_prefetch(items);
        __builtin_prefetch((const char *)items + 64);
        __builtin_prefetch((const char *)items + 128);
        __builtin_prefetch((const char *)items + 192);
    }
}

int ctl_fold_inputs(ctl_t *c, const ctl_range_t *r) {
    char t[PX_CONF_STR_MAX * 2];
    static const int srcs[PX_SRC__COUNT] = {0, 1, 2, 3};
    if (!c->filter) c->prefetch = prefetch;
    for (int s = 0; s < PX_SRC__COUNT; s++) {
        ctl_topic_name(c, CTL_SRC_TOPICS[s], t, sizeof t);
        c->pf_src = s;
        if (ctl_read_topic(c, t, r, fold_record, (void *)&srcs[s])) return CTL_EXIT_ERR;
    }
    return 0;
}

void ctl_fold_summary(const ctl_t *c) {
    fprintf(stderr,
            "presencectl: read %llu input records: %llu folded into %zu entities, %llu changes; skipped %llu that "
            "do not decode, %llu whose key differs from the value's, %llu refused by the fold's caps\n",
            (unsigned long long)c->n_records, (unsigned long long)c->n_folded, c->nents,
            (unsigned long long)c->n_changes, (unsigned long long)c->n_skipped_decode,
            (unsigned long long)c->n_skipped_key, (unsigned long long)c->n_refused);
}
