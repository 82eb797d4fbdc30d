/*
 * px_fold.c - the fold's transitions (px_fold_apply): what each record of
 * each topic changes and which change events it yields. See px_fold.h and
 * docs/fold.md.
 *
 * Every transition first checks everything that can refuse the record
 * (wrong topic, cap, allocation), then changes state and emits: a refused
 * record leaves the entity untouched. Each part is read and written only by
 * records of its own topic, which is what makes the result independent of
 * the interleaving; the lifecycle part keeps that rule by remembering the
 * writes the mutated topic closed (the `gone` set), see px_fold_lc_expire().
 * Time arithmetic saturates, so hostile timestamps cannot overflow.
 * Related: px_fold_entity.c (storage: strings, arrays, lifetime),
 * px_fold_due.c (deadlines, EXPIRE records), px_fold_view.c (view,
 * equality, dump), px_fold_int.h.
 */
#include "px_fold.h"

#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#include "px_err.h"
#include "px_fold_int.h"

px_fold_conf_t px_fold_conf_default(void) {
    px_fold_conf_t c = {
        .presence_ttl_ms = 60000,
        .lock_ttl_ms = 120000,
        .stale_ttl_ms = 300000,
        .max_tabs = PX_FOLD_TABS_MAX,
        .max_locks = PX_FOLD_LOCKS_MAX,
        .max_open_writes = PX_FOLD_WRITES_MAX,
    };
    return c;
}

/* ---- lookups ---------------------------------------------------------------- */

static size_t px_fold_lock_find(const px_entity_t *e, const char *field, bool *found) {
    PX_FOLD_BSEARCH(e->locks, e->n_locks, px_fold_lock_field, field, found);
}

static bool px_fold_done_has(const px_entity_t *e, uint64_t h) {
    for (size_t i = 0; i < e->n_done; i++)
        if (e->done[i] == h) return true;
    return false;
}

static bool px_fold_gone_has(const px_entity_t *e, uint64_t h) {
    for (size_t i = 0; i < e->n_gone; i++)
        if (e->gone[i].id_hash == h) return true;
    return false;
}

static int px_fold_write_find(const px_entity_t *e, const char *id) {
    for (size_t i = 0; i < e->n_writes; i++)
        if (strcmp(px_fold_write_id(&e->writes[i]), id) == 0) return (int)i;
    return -1;
}

static int px_fold_gone_cmp(int64_t ts_a, uint64_t h_a, const px_fold_gone_t *b) {
    if (ts_a != b->ts_ms) return ts_a < b->ts_ms ? -1 : 1;
    if (h_a != b->id_hash) return h_a < b->id_hash ? -1 : 1;
    return 0;
}

/* Insert (ts, h) into the sorted gone set; when full, the oldest of the
 * full set plus the new entry is dropped. Capacity must be reserved. */
static void px_fold_gone_insert(px_entity_t *e, int64_t ts, uint64_t h) {
    if (e->n_gone == PX_FOLD_GONE_MAX) {
        if (px_fold_gone_cmp(ts, h, &e->gone[0]) <= 0) return; /* the new one is the oldest */
        memmove(&e->gone[0], &e->gone[1], (size_t)(e->n_gone - 1) * sizeof *e->gone);
        e->n_gone--;
    }
    size_t i = e->n_gone;
    while (i > 0 && px_fold_gone_cmp(ts, h, &e->gone[i - 1]) < 0) i--;
    memmove(&e->gone[i + 1], &e->gone[i], (size_t)(e->n_gone - i) * sizeof *e->gone);
    e->gone[i].ts_ms = ts;
    e->gone[i].id_hash = h;
    e->n_gone++;
}

/* Append h to the completed-ids ring. Capacity must be reserved. */
static void px_fold_done_push(px_entity_t *e, uint64_t h) {
    if (e->n_done < PX_FOLD_DONE_MAX) {
        e->done[e->n_done++] = h;
    } else {
        e->done[e->done_head] = h;
        e->done_head = (uint16_t)((e->done_head + 1) % PX_FOLD_DONE_MAX);
    }
}

/* ---- change events ---------------------------------------------------------- */

/* Start a change of type t caused by ev from src. */
static void px_fold_change(px_event_t *ch, const px_entity_t *e, int t, const px_event_t *ev,
                           const px_src_t *src) {
    px_event_init(ch, PX_KIND_CHANGE);
    ch->type = t;
    ch->key = e->key;
    ch->ts_ms = ev->ts_ms;
    ch->src_partition = src->partition;
    ch->src_offset = src->offset;
}

static void px_fold_change_tab(px_fold_emit_fn emit, void *arg, const px_entity_t *e, int t,
                               const px_fold_tab_t *tab, const px_event_t *ev, const px_src_t *src) {
    if (!emit) return;
    px_event_t ch;
    px_fold_change(&ch, e, t, ev, src);
    PX_FOLD_CPY(ch.tab_id, px_fold_tab_id(tab));
    PX_FOLD_CPY(ch.user_id, px_fold_tab_user_id(tab));
    PX_FOLD_CPY(ch.user_name, px_fold_tab_user_name(tab));
    emit(arg, &ch);
}

/* A lock change: who and what from the lock l (or the request when l is
 * NULL); the request id from the record. */
static void px_fold_change_lock(px_fold_emit_fn emit, void *arg, const px_entity_t *e, int t,
                                const px_fold_lock_t *l, const px_event_t *ev, const px_src_t *src) {
    if (!emit) return;
    px_event_t ch;
    px_fold_change(&ch, e, t, ev, src);
    PX_FOLD_CPY(ch.field, ev->field);
    PX_FOLD_CPY(ch.request_id, ev->request_id);
    if (t == PX_CH_LOCK_DENIED) {
        PX_FOLD_CPY(ch.tab_id, ev->tab_id);
        PX_FOLD_CPY(ch.user_id, ev->user_id);
        PX_FOLD_CPY(ch.user_name, ev->user_name);
        PX_FOLD_CPY(ch.holder_user_id, px_fold_lock_user_id(l));
        PX_FOLD_CPY(ch.holder_name, px_fold_lock_user_name(l));
    } else {
        PX_FOLD_CPY(ch.tab_id, px_fold_lock_tab_id(l));
        PX_FOLD_CPY(ch.user_id, px_fold_lock_user_id(l));
        PX_FOLD_CPY(ch.user_name, px_fold_lock_user_name(l));
        ch.token = l->token;
    }
    emit(arg, &ch);
}

/* ---- presence part ------------------------------------------------------------ */

/* Whether a SUB/HB of the tab's owner changes what the view shows of it. */
static bool px_fold_tab_visible(const px_fold_tab_t *t, const px_event_t *ev) {
    return t->mode != (uint8_t)ev->mode || t->status != (uint8_t)ev->status || t->dirty != ev->dirty ||
           strcmp(px_fold_tab_field(t), ev->field) != 0 || strcmp(px_fold_tab_cursor(t), ev->cursor) != 0 ||
           strcmp(px_fold_tab_user_name(t), ev->user_name) != 0;
}

static int px_fold_presence(px_entity_t *e, const px_fold_conf_t *c, const px_event_t *ev, const px_src_t *src,
                            px_fold_emit_fn emit, void *arg) {
    bool found;
    size_t i = px_fold_tab_find(e, ev->tab_id, &found);
    px_fold_tab_t *t = found ? &e->tabs[i] : NULL;
    bool owner = t && strcmp(px_fold_tab_user_id(t), ev->user_id) == 0;
    bool join = ev->type == PX_PRES_SUB || ev->type == PX_PRES_HB;
    bool visible = join && owner && px_fold_tab_visible(t, ev);
    px_fold_pack_t p; /* the joining or changed tab's strings */

    if (!t && join) {
        if (e->n_tabs >= c->max_tabs) return PX_EINVAL;
        if (px_fold_reserve_tabs(e, (size_t)e->n_tabs + 1, c->max_tabs)) return PX_ENOMEM;
        if (px_fold_tab_pack(&p, ev->tab_id, ev->user_id, ev->user_name, ev->field, ev->cursor)) return PX_ENOMEM;
    } else if (visible) {
        if (px_fold_tab_pack(&p, px_fold_tab_id(t), px_fold_tab_user_id(t), ev->user_name, ev->field, ev->cursor))
            return PX_ENOMEM;
    }
    e->pres_ts_ms = px_fold_max(e->pres_ts_ms, ev->ts_ms);
    if (t && !owner) return 0; /* a live tab belongs to the user who opened it */

    switch ((px_pres_type_t)ev->type) {
    case PX_PRES_SUB:
    case PX_PRES_HB:
        if (!t) {
            memmove(&e->tabs[i + 1], &e->tabs[i], (size_t)(e->n_tabs - i) * sizeof *e->tabs);
            e->n_tabs++;
            t = &e->tabs[i];
            memset(t, 0, offsetof(px_fold_tab_t, in)); /* in[] is written by the commit */
            px_fold_tab_commit(t, &p);
            t->mode = (uint8_t)ev->mode;
            t->status = (uint8_t)ev->status;
            t->dirty = ev->dirty;
            t->since_ms = t->last_seen_ms = ev->ts_ms;
            px_fold_change_tab(emit, arg, e, PX_CH_JOINED, t, ev, src);
        } else {
            if (ev->ts_ms > t->last_seen_ms) {
                t->last_seen_ms = ev->ts_ms;
                t->expire_requested = false;
            }
            if (visible) {
                px_fold_tab_commit(t, &p);
                t->mode = (uint8_t)ev->mode;
                t->status = (uint8_t)ev->status;
                t->dirty = ev->dirty;
                px_fold_change_tab(emit, arg, e, PX_CH_UPDATED, t, ev, src);
            }
        }
        return 0;
    case PX_PRES_UNSUB:
    case PX_PRES_EXPIRE:
        if (!t) return 0;
        if (ev->type == PX_PRES_EXPIRE && px_fold_add(t->last_seen_ms, c->presence_ttl_ms) > ev->expires_at_ms)
            return 0; /* refreshed since the processor decided */
        {
            px_fold_tab_t gone = *t; /* takes the strings' block with it */
            memmove(&e->tabs[i], &e->tabs[i + 1], (size_t)(e->n_tabs - i - 1) * sizeof *e->tabs);
            e->n_tabs--;
            px_fold_change_tab(emit, arg, e, ev->type == PX_PRES_UNSUB ? PX_CH_LEFT : PX_CH_TIMED_OUT, &gone, ev,
                               src);
            free(gone.heap);
        }
        return 0;
    default:
        return PX_EINVAL;
    }
}

/* ---- locks part ------------------------------------------------------------------ */

static int px_fold_lock(px_entity_t *e, const px_fold_conf_t *c, const px_event_t *ev, const px_src_t *src,
                        px_fold_emit_fn emit, void *arg) {
    bool found;
    size_t i = px_fold_lock_find(e, ev->field, &found);
    px_fold_lock_t *l = found ? &e->locks[i] : NULL;
    bool holder = l && strcmp(px_fold_lock_tab_id(l), ev->tab_id) == 0 &&
                  strcmp(px_fold_lock_user_id(l), ev->user_id) == 0;
    px_fold_pack_t p;

    switch ((px_lock_type_t)ev->type) {
    case PX_LOCK_LOCK:
        if (!l) {
            if (e->n_locks >= c->max_locks) return PX_EINVAL;
            if (px_fold_reserve_locks(e, (size_t)e->n_locks + 1, c->max_locks)) return PX_ENOMEM;
            if (px_fold_lock_pack(&p, ev->field, ev->tab_id, ev->user_id, ev->user_name)) return PX_ENOMEM;
            memmove(&e->locks[i + 1], &e->locks[i], (size_t)(e->n_locks - i) * sizeof *e->locks);
            e->n_locks++;
            l = &e->locks[i];
            memset(l, 0, offsetof(px_fold_lock_t, in)); /* in[] is written by the commit */
            px_fold_lock_commit(l, &p);
            l->token = src->offset;
            l->refreshed_ms = ev->ts_ms;
            px_fold_change_lock(emit, arg, e, PX_CH_LOCK_GRANTED, l, ev, src);
        } else if (holder) { /* re-grant: same token, refreshed, the name the holder gives now */
            bool renamed = strcmp(px_fold_lock_user_name(l), ev->user_name) != 0;
            if (renamed && px_fold_lock_pack(&p, px_fold_lock_field(l), px_fold_lock_tab_id(l),
                                             px_fold_lock_user_id(l), ev->user_name))
                return PX_ENOMEM;
            if (ev->ts_ms > l->refreshed_ms) {
                l->refreshed_ms = ev->ts_ms;
                l->expire_requested = false;
            }
            if (renamed) px_fold_lock_commit(l, &p);
            px_fold_change_lock(emit, arg, e, PX_CH_LOCK_GRANTED, l, ev, src);
        } else {
            px_fold_change_lock(emit, arg, e, PX_CH_LOCK_DENIED, l, ev, src);
        }
        return 0;
    case PX_LOCK_UNLOCK:
        if (!l) return 0; /* a free field: nothing changes, nothing to answer with */
        if (!holder) {
            px_fold_change_lock(emit, arg, e, PX_CH_LOCK_DENIED, l, ev, src);
            return 0;
        }
        /* fall through */
    case PX_LOCK_EXPIRE:
        if (!holder) return 0;
        if (ev->type == PX_LOCK_EXPIRE && px_fold_add(l->refreshed_ms, c->lock_ttl_ms) > ev->expires_at_ms)
            return 0; /* re-locked since the processor decided */
        {
            px_fold_lock_t gone = *l; /* takes the strings' block with it */
            memmove(&e->locks[i], &e->locks[i + 1], (size_t)(e->n_locks - i - 1) * sizeof *e->locks);
            e->n_locks--;
            px_fold_change_lock(emit, arg, e, ev->type == PX_LOCK_UNLOCK ? PX_CH_LOCK_RELEASED : PX_CH_LOCK_EXPIRED,
                                &gone, ev, src);
            free(gone.heap);
        }
        return 0;
    default:
        return PX_EINVAL;
    }
}

/* ---- lifecycle parts ------------------------------------------------------------------ */

static void px_fold_change_plain(px_fold_emit_fn emit, void *arg, const px_entity_t *e, int t,
                                 const px_event_t *ev, const px_src_t *src, const char *busy_by,
                                 int64_t version) {
    if (!emit) return;
    px_event_t ch;
    px_fold_change(&ch, e, t, ev, src);
    if (busy_by) PX_FOLD_CPY(ch.busy_by, busy_by);
    ch.version = version;
    emit(arg, &ch);
}

/* Whether the mutated part has closed a write (id, ts). */
static bool px_fold_closed(const px_entity_t *e, const char *id, uint64_t h, int64_t ts) {
    return (id[0] && px_fold_done_has(e, h)) || ts <= e->closed_up_to_ms;
}

/* MUTATING: remember the write (open, or gone when the mutated topic
 * already closed it); STALE_SET either way, so the record's changes do not
 * depend on which lifecycle topic was read first. A write id already known
 * to the mutating topic is a duplicate: ignored. */
static int px_fold_mutating(px_entity_t *e, const px_fold_conf_t *c, const px_event_t *ev, const px_src_t *src,
                            px_fold_emit_fn emit, void *arg) {
    uint64_t h = px_fold_id_hash(ev->write_id);
    if (ev->write_id[0] && (px_fold_write_find(e, ev->write_id) >= 0 || px_fold_gone_has(e, h))) return 0;
    if (px_fold_closed(e, ev->write_id, h, ev->ts_ms)) {
        if (px_fold_reserve_gone(e, (size_t)e->n_gone + 1)) return PX_ENOMEM;
        px_fold_gone_insert(e, ev->ts_ms, h);
    } else {
        if (e->n_writes >= c->max_open_writes) return PX_EINVAL;
        if (px_fold_reserve_writes(e, (size_t)e->n_writes + 1, c->max_open_writes)) return PX_ENOMEM;
        px_fold_write_t *w = &e->writes[e->n_writes];
        memset(w, 0, sizeof *w);
        if (px_fold_write_set_strs(w, ev->write_id, ev->busy_by)) return PX_ENOMEM;
        e->n_writes++;
        w->ts_ms = ev->ts_ms;
    }
    px_fold_change_plain(emit, arg, e, PX_CH_STALE_SET, ev, src, ev->busy_by, PX_NONE);
    return 0;
}

/* Lifecycle EXPIRE (mutating topic): forgets the writes with its write_id
 * (none: the writes without one) whose ts + stale_ttl <= expires_at, open
 * or gone. Looking in both makes its change (STALE_CLEARED when it forgot
 * one) the same whether the MUTATED of such a write came first or not. */
static int px_fold_lc_expire(px_entity_t *e, const px_fold_conf_t *c, const px_event_t *ev, const px_src_t *src,
                             px_fold_emit_fn emit, void *arg) {
    bool removed = false;
    size_t k = 0;
    for (size_t i = 0; i < e->n_writes; i++) {
        const px_fold_write_t *w = &e->writes[i];
        if (strcmp(px_fold_write_id(w), ev->write_id) == 0 &&
            px_fold_add(w->ts_ms, c->stale_ttl_ms) <= ev->expires_at_ms) {
            removed = true;
            free(w->heap);
            continue;
        }
        if (k != i) e->writes[k] = *w;
        k++;
    }
    e->n_writes = (uint16_t)k;
    uint64_t h = px_fold_id_hash(ev->write_id);
    k = 0;
    for (size_t i = 0; i < e->n_gone; i++) {
        const px_fold_gone_t *g = &e->gone[i];
        if (g->id_hash == h && px_fold_add(g->ts_ms, c->stale_ttl_ms) <= ev->expires_at_ms) {
            removed = true;
            continue;
        }
        if (k != i) e->gone[k] = *g;
        k++;
    }
    e->n_gone = (uint16_t)k;
    if (removed) px_fold_change_plain(emit, arg, e, PX_CH_STALE_CLEARED, ev, src, NULL, PX_NONE);
    return 0;
}

/* MUTATED: closes by write_id, or without one every write opened at or
 * before its ts; moves the closed open writes to gone; STALE_CLEARED, then
 * VERSION_BUMPED when the version moved (set: max, absent: +1). A write id
 * already completed is a duplicate: ignored. */
static int px_fold_mutated(px_entity_t *e, const px_fold_conf_t *c, const px_event_t *ev, const px_src_t *src,
                           px_fold_emit_fn emit, void *arg) {
    bool has_id = ev->write_id[0] != '\0';
    uint64_t h = px_fold_id_hash(ev->write_id);
    if (has_id && px_fold_done_has(e, h)) return 0;
    if (px_fold_reserve_gone(e, (size_t)e->n_gone + e->n_writes)) return PX_ENOMEM;
    if (has_id && px_fold_reserve_done(e, (size_t)e->n_done + 1)) return PX_ENOMEM;

    if (has_id) px_fold_done_push(e, h);
    else e->closed_up_to_ms = px_fold_max(e->closed_up_to_ms, ev->ts_ms);
    size_t k = 0;
    for (size_t i = 0; i < e->n_writes; i++) {
        const px_fold_write_t *w = &e->writes[i];
        uint64_t wh = px_fold_id_hash(px_fold_write_id(w));
        if (px_fold_closed(e, px_fold_write_id(w), wh, w->ts_ms)) {
            px_fold_gone_insert(e, w->ts_ms, wh);
            free(w->heap);
            continue;
        }
        if (k != i) e->writes[k] = *w;
        k++;
    }
    e->n_writes = (uint16_t)k;
    px_fold_change_plain(emit, arg, e, PX_CH_STALE_CLEARED, ev, src, NULL, PX_NONE);

    int64_t v = ev->version >= 0 ? px_fold_max(e->version, ev->version)
                                 : (e->version < INT64_MAX ? e->version + 1 : INT64_MAX);
    if (v != e->version) {
        e->version = v;
        px_fold_change_plain(emit, arg, e, PX_CH_VERSION_BUMPED, ev, src, NULL, v);
    }
    return 0;
}

/* ---- apply ------------------------------------------------------------------------- */

/* Give back the arrays of parts that became empty: most entities are idle
 * most of the time, and an idle entity should cost its struct only. */
static void px_fold_trim(px_entity_t *e) {
    if (!e->n_tabs && e->tabs) {
        free(e->tabs);
        e->tabs = NULL;
        e->cap_tabs = 0;
    }
    if (!e->n_locks && e->locks) {
        free(e->locks);
        e->locks = NULL;
        e->cap_locks = 0;
    }
    if (!e->n_writes && e->writes) {
        free(e->writes);
        e->writes = NULL;
        e->cap_writes = 0;
    }
}

static int px_fold_dispatch(px_entity_t *e, const px_fold_conf_t *c, const px_event_t *ev, const px_src_t *src,
                            px_fold_emit_fn emit, void *arg) {
    if (!px_key_equal(&e->key, &ev->key)) return PX_EINVAL;
    if (src->partition < 0 || src->offset < 0) return PX_EINVAL; /* changes must name their source */
    switch (src->topic) {
    case PX_SRC_HEARTBEATS:
        if (ev->kind != PX_KIND_PRESENCE) return PX_EINVAL;
        return px_fold_presence(e, c, ev, src, emit, arg);
    case PX_SRC_LOCKS:
        if (ev->kind != PX_KIND_LOCK) return PX_EINVAL;
        return px_fold_lock(e, c, ev, src, emit, arg);
    case PX_SRC_MUTATING:
        if (ev->kind != PX_KIND_LIFECYCLE) return PX_EINVAL;
        if (ev->type == PX_LC_MUTATING) return px_fold_mutating(e, c, ev, src, emit, arg);
        if (ev->type == PX_LC_EXPIRE) return px_fold_lc_expire(e, c, ev, src, emit, arg);
        return PX_EINVAL;
    case PX_SRC_MUTATED:
        if (ev->kind != PX_KIND_LIFECYCLE || ev->type != PX_LC_MUTATED) return PX_EINVAL;
        return px_fold_mutated(e, c, ev, src, emit, arg);
    default:
        return PX_EINVAL;
    }
}

int px_fold_apply(px_entity_t *e, const px_fold_conf_t *c, const px_event_t *ev, const px_src_t *src,
                  px_fold_emit_fn emit, void *arg) {
    if (!e || !c || !ev || !src) return PX_EINVAL;
    int rc = px_fold_dispatch(e, c, ev, src, emit, arg);
    px_fold_trim(e);
    return rc;
}
