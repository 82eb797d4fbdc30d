/*
 * gw_subs.c - which local connections watch which entity.
 *
 * A chained hash table of gw_entity_t keyed by "tenant:entity:id"; each
 * entity holds a singly linked list of gw_sub_t, and each connection its
 * own list of the same nodes, so removing a connection is O(its subs) and
 * fan-out is O(watchers). The Redis channel of an entity is subscribed when
 * the entity is created and unsubscribed when its last watcher leaves.
 */
#include <stdlib.h>
#include <string.h>

#include "gw.h"
#include "px_log.h"
#include "px_view.h"

static void ent_sub_changed(gw_ctx_t *gw, gw_entity_t *e, bool subscribe) {
    char ch[PX_KEY_MAX + 32];
    /* a single server's link down: subscribed again when it is up (gw_push.c) */
    px_view_channel(&e->key, ch, sizeof ch);
    gw_redis_subscribe(gw->redis, ch, subscribe);
}

int gw_subs_init(gw_ctx_t *gw, size_t buckets) {
    gw->ents = calloc(buckets, sizeof *gw->ents);
    if (!gw->ents) return PX_ENOMEM;
    gw->n_ent_buckets = buckets;
    gw->n_ents = 0;
    return 0;
}

void gw_subs_term(gw_ctx_t *gw) {
    for (size_t i = 0; i < gw->n_ent_buckets; i++) {
        gw_entity_t *e = gw->ents[i];
        while (e) {
            gw_entity_t *n = e->next;
            gw_sub_t *s = e->subs;
            while (s) {
                gw_sub_t *sn = s->next_in_ent;
                gw_held_free(s);
                free(s);
                s = sn;
            }
            free(e);
            e = n;
        }
    }
    free(gw->ents);
    gw->ents = NULL;
    gw->n_ent_buckets = 0;
}

gw_entity_t *gw_entity_find(gw_ctx_t *gw, const char *keystr) {
    gw_entity_t *e = gw->ents[gw_hash(keystr) % gw->n_ent_buckets];
    for (; e; e = e->next)
        if (strcmp(e->keystr, keystr) == 0) return e;
    return NULL;
}

gw_sub_t *gw_subs_find(gw_conn_t *c, const px_key_t *key) {
    for (gw_sub_t *s = c->subs; s; s = s->next_in_conn)
        if (px_key_equal(&s->ent->key, key)) return s;
    return NULL;
}

gw_sub_t *gw_subs_add(gw_ctx_t *gw, gw_conn_t *c, const px_key_t *key, const char **err) {
    gw_sub_t *s = gw_subs_find(c, key);
    if (s) return s;
    if (c->n_subs >= gw->cfg.max_subs_per_conn) {
        *err = "TOO_MANY_SUBSCRIPTIONS";
        return NULL;
    }
    char ks[PX_KEY_MAX + 1];
    px_key_format(key, ks, sizeof ks);
    gw_entity_t *e = gw_entity_find(gw, ks);
    bool created = false;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) {
            gw_oom(gw, "entity");
            *err = "INTERNAL";
            return NULL;
        }
        e->key = *key;
        memcpy(e->keystr, ks, sizeof ks);
        size_t b = gw_hash(ks) % gw->n_ent_buckets;
        e->next = gw->ents[b];
        gw->ents[b] = e;
        gw->n_ents++;
        px_gauge_set(gw->m_entities, (int64_t)gw->n_ents);
        created = true;
    }
    s = calloc(1, sizeof *s);
    if (!s) {
        gw_oom(gw, "subscription");
        *err = "INTERNAL";
        if (created) {
            size_t b = gw_hash(ks) % gw->n_ent_buckets;
            gw->ents[b] = e->next;
            free(e);
            gw->n_ents--;
        }
        return NULL;
    }
    s->conn = c;
    s->ent = e;
    s->next_in_conn = c->subs;
    c->subs = s;
    c->n_subs++;
    s->next_in_ent = e->subs;
    e->subs = s;
    if (created) ent_sub_changed(gw, e, true);
    return s;
}

void gw_subs_remove(gw_ctx_t *gw, gw_sub_t *s) {
    gw_conn_t *c = s->conn;
    gw_entity_t *e = s->ent;
    for (gw_sub_t **pp = &c->subs; *pp; pp = &(*pp)->next_in_conn)
        if (*pp == s) {
            *pp = s->next_in_conn;
            break;
        }
    c->n_subs--;
    for (gw_sub_t **pp = &e->subs; *pp; pp = &(*pp)->next_in_ent)
        if (*pp == s) {
            *pp = s->next_in_ent;
            break;
        }
    gw_held_free(s);
    if (s->presence) s->presence->sub = NULL; /* still queued: sent as it is */
    free(s);
    if (!e->subs) {
        ent_sub_changed(gw, e, false);
        size_t b = gw_hash(e->keystr) % gw->n_ent_buckets;
        for (gw_entity_t **pp = &gw->ents[b]; *pp; pp = &(*pp)->next)
            if (*pp == e) {
                *pp = e->next;
                break;
            }
        free(e);
        gw->n_ents--;
        px_gauge_set(gw->m_entities, (int64_t)gw->n_ents);
    }
}
