/*
 * px_fold_due.c - the fold's deadlines: when a tab, a lock or an open
 * write is due (px_fold_*_deadline, px_fold_next_deadline) and the EXPIRE
 * records the processor produces for the due ones (px_fold_due). See
 * px_fold.h and docs/fold.md ("Deadlines and EXPIRE records"). The only
 * state changed here is the items' expire-requested marks; the EXPIRE
 * records themselves are folded by px_fold.c like any other record, which
 * checks again that the item did not move since. Related: px_fold_int.h.
 */
#include <stdint.h>

#include "px_fold_int.h"

/* The tab a lock's holder is, if it is present and still the holder user's. */
static const px_fold_tab_t *px_fold_holder_tab(const px_entity_t *e, const px_fold_lock_t *l) {
    bool found;
    size_t i = px_fold_tab_find(e, px_fold_lock_tab_id(l), &found);
    if (!found || strcmp(px_fold_tab_user_id(&e->tabs[i]), px_fold_lock_user_id(l)) != 0) return NULL;
    return &e->tabs[i];
}

int64_t px_fold_lock_deadline(const px_entity_t *e, const px_fold_conf_t *c, const px_fold_lock_t *l) {
    const px_fold_tab_t *t = px_fold_holder_tab(e, l);
    int64_t base = t ? px_fold_max(l->refreshed_ms, t->last_seen_ms) : l->refreshed_ms;
    return px_fold_add(base, c->lock_ttl_ms);
}

int64_t px_fold_tab_deadline(const px_fold_conf_t *c, const px_fold_tab_t *t) {
    return px_fold_add(t->last_seen_ms, c->presence_ttl_ms);
}

int64_t px_fold_write_deadline(const px_fold_conf_t *c, const px_fold_write_t *w) {
    return px_fold_add(w->ts_ms, c->stale_ttl_ms);
}

/* When a lock is due and the deadline its EXPIRE enforces. With the holder
 * tab present: its deadline. Without it, once the presence part has seen
 * records up to the lock's refresh time (the tab left, timed out or never
 * joined, and is not just behind in the other topic): at once, enforcing
 * refreshed + lock_ttl, which the fold accepts unless a re-LOCK came since. */
static void px_fold_lock_due_at(const px_entity_t *e, const px_fold_conf_t *c, const px_fold_lock_t *l,
                                int64_t *due_at, int64_t *expires_at) {
    const px_fold_tab_t *t = px_fold_holder_tab(e, l);
    if (t) {
        *due_at = *expires_at = px_fold_add(px_fold_max(l->refreshed_ms, t->last_seen_ms), c->lock_ttl_ms);
        return;
    }
    *expires_at = px_fold_add(l->refreshed_ms, c->lock_ttl_ms);
    *due_at = e->pres_ts_ms >= l->refreshed_ms ? l->refreshed_ms : *expires_at;
}

/* An EXPIRE record of kind for e at now. */
static void px_fold_expire_init(px_event_t *x, const px_entity_t *e, px_kind_t kind, int type, int64_t now_ms,
                                int64_t expires_at) {
    px_event_init(x, kind);
    x->type = type;
    x->key = e->key;
    x->ts_ms = now_ms;
    x->expires_at_ms = expires_at;
}

size_t px_fold_due(px_entity_t *e, const px_fold_conf_t *c, int64_t now_ms, px_fold_emit_fn emit_expire,
                   void *arg) {
    size_t n = 0;
    px_event_t x;
    for (size_t i = 0; i < e->n_tabs; i++) {
        px_fold_tab_t *t = &e->tabs[i];
        int64_t d = px_fold_tab_deadline(c, t);
        if (t->expire_requested || d > now_ms) continue;
        t->expire_requested = true;
        if (!emit_expire) continue;
        px_fold_expire_init(&x, e, PX_KIND_PRESENCE, PX_PRES_EXPIRE, now_ms, d);
        PX_FOLD_CPY(x.tab_id, px_fold_tab_id(t));
        PX_FOLD_CPY(x.user_id, px_fold_tab_user_id(t));
        PX_FOLD_CPY(x.user_name, px_fold_tab_user_name(t));
        emit_expire(arg, &x);
        n++;
    }
    for (size_t i = 0; i < e->n_locks; i++) {
        px_fold_lock_t *l = &e->locks[i];
        int64_t due_at, exp;
        px_fold_lock_due_at(e, c, l, &due_at, &exp);
        if (l->expire_requested || due_at > now_ms) continue;
        l->expire_requested = true;
        if (!emit_expire) continue;
        px_fold_expire_init(&x, e, PX_KIND_LOCK, PX_LOCK_EXPIRE, now_ms, exp);
        PX_FOLD_CPY(x.field, px_fold_lock_field(l));
        PX_FOLD_CPY(x.tab_id, px_fold_lock_tab_id(l));
        PX_FOLD_CPY(x.user_id, px_fold_lock_user_id(l));
        PX_FOLD_CPY(x.user_name, px_fold_lock_user_name(l));
        emit_expire(arg, &x);
        n++;
    }
    for (size_t i = 0; i < e->n_writes; i++) {
        px_fold_write_t *w = &e->writes[i];
        int64_t d = px_fold_write_deadline(c, w);
        if (w->expire_requested || d > now_ms) continue;
        w->expire_requested = true;
        if (!emit_expire) continue;
        px_fold_expire_init(&x, e, PX_KIND_LIFECYCLE, PX_LC_EXPIRE, now_ms, d);
        PX_FOLD_CPY(x.write_id, px_fold_write_id(w));
        PX_FOLD_CPY(x.busy_by, px_fold_write_busy_by(w));
        emit_expire(arg, &x);
        n++;
    }
    return n;
}

int64_t px_fold_next_deadline(const px_entity_t *e, const px_fold_conf_t *c) {
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < e->n_tabs; i++)
        if (!e->tabs[i].expire_requested) {
            int64_t d = px_fold_tab_deadline(c, &e->tabs[i]);
            if (d < next) next = d;
        }
    for (size_t i = 0; i < e->n_locks; i++) {
        if (e->locks[i].expire_requested) continue;
        int64_t due_at, exp;
        px_fold_lock_due_at(e, c, &e->locks[i], &due_at, &exp);
        if (due_at < next) next = due_at;
    }
    for (size_t i = 0; i < e->n_writes; i++)
        if (!e->writes[i].expire_requested) {
            int64_t d = px_fold_write_deadline(c, &e->writes[i]);
            if (d < next) next = d;
        }
    return next;
}
