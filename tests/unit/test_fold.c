/*
 * test_fold.c - the fold (core/px_fold.h) against docs/fold.md.
 *
 * One test per transition and rule, then three property tests with a
 * seeded PRNG: (1) interleaving invariance: random per-topic logs (EXPIREs
 * taken from px_fold_due at random times) applied in many interleavings
 * that keep each topic's order give equal states and, per source record,
 * identical change events; (2) an independent brute-force model of presence
 * and locks compared state by state; (3) small caps and hostile values:
 * caps hold, refused records change nothing, nothing crashes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "px_err.h"
#include "px_fold.h"
#include "px_testlib.h"

/* ---- helpers ------------------------------------------------------------------ */


static void key_init(px_key_t *k, const char *id) {
    assert_int_equal(px_key_set(k, "acme", "doc", id, NULL, 0), 0);
}

#define REC_MAX 64
typedef struct {
    px_event_t ev[REC_MAX];
    size_t n;
} rec_t;

static void rec_emit(void *arg, const px_event_t *ev) {
    rec_t *r = arg;
    assert_true(r->n < REC_MAX);
    r->ev[r->n++] = *ev;
}

/* Apply ev from its natural topic at offset off, recording changes in r. */
static int app(px_entity_t *e, const px_fold_conf_t *c, const px_event_t *ev, int64_t off, rec_t *r) {
    px_src_t src = {topic_of(ev), 3, off};
    if (r) r->n = 0;
    return px_fold_apply(e, c, ev, &src, r ? rec_emit : NULL, r);
}

static void app_ok(px_entity_t *e, const px_fold_conf_t *c, px_event_t ev, int64_t off, rec_t *r) {
    int rc = app(e, c, &ev, off, r);
    if (rc) fail_msg("apply %s %s: %d", px_kind_name(ev.kind), px_event_type_name(ev.kind, ev.type), rc);
}

/* Every change must be a valid ChangeEvent once the caller names the topic. */
static void check_changes(const rec_t *r) {
    char err[256];
    for (size_t i = 0; i < r->n; i++) {
        px_event_t ch = r->ev[i];
        assert_int_equal(ch.kind, PX_KIND_CHANGE);
        assert_string_equal(ch.src_topic, "");
        strcpy(ch.src_topic, "t");
        if (px_event_validate(&ch, err, sizeof err)) fail_msg("invalid change: %s", err);
    }
}

static void expect_types(const rec_t *r, size_t n, ...) {
    check_changes(r);
    va_list ap;
    va_start(ap, n);
    if (r->n != n) fail_msg("expected %zu changes, got %zu (first %s)", n, r->n,
                            r->n ? px_event_type_name(PX_KIND_CHANGE, r->ev[0].type) : "-");
    for (size_t i = 0; i < n; i++) {
        int t = va_arg(ap, int);
        if (r->ev[i].type != t)
            fail_msg("change %zu: expected %s, got %s", i, px_event_type_name(PX_KIND_CHANGE, t),
                     px_event_type_name(PX_KIND_CHANGE, r->ev[i].type));
    }
    va_end(ap);
}

static const px_fold_tab_t *tab_get(const px_entity_t *e, const char *id) {
    for (size_t i = 0; i < e->n_tabs; i++)
        if (strcmp(px_fold_tab_id(&e->tabs[i]), id) == 0) return &e->tabs[i];
    return NULL;
}

static const px_fold_lock_t *lock_get(const px_entity_t *e, const char *field) {
    for (size_t i = 0; i < e->n_locks; i++)
        if (strcmp(px_fold_lock_field(&e->locks[i]), field) == 0) return &e->locks[i];
    return NULL;
}

typedef struct {
    px_event_t ev[REC_MAX];
    size_t n;
} due_t;

static void due_emit(void *arg, const px_event_t *ev) {
    due_t *d = arg;
    assert_true(d->n < REC_MAX);
    char err[256];
    if (px_event_validate(ev, err, sizeof err)) fail_msg("invalid EXPIRE: %s", err);
    d->ev[d->n++] = *ev;
}

static size_t due(px_entity_t *e, const px_fold_conf_t *c, int64_t now, due_t *d) {
    d->n = 0;
    size_t n = px_fold_due(e, c, now, due_emit, d);
    assert_int_equal(n, d->n);
    return n;
}

static int setup(void **state) {
    key_init(&K, "1");
    return 0;
}

/* ---- presence -------------------------------------------------------------------- */

static void test_join_update_leave(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    rec_t r;
    px_entity_init(&e, &K);
    app_ok(&e, &c, pres(PX_PRES_SUB, "t1", "u1", 1000), 10, &r);
    expect_types(&r, 1, PX_CH_JOINED);
    assert_string_equal(r.ev[0].tab_id, "t1");
    assert_string_equal(r.ev[0].user_id, "u1");
    assert_string_equal(r.ev[0].user_name, "Name u1");
    assert_int_equal(r.ev[0].ts_ms, 1000);
    assert_int_equal(r.ev[0].src_partition, 3);
    assert_int_equal(r.ev[0].src_offset, 10);
    assert_true(px_key_equal(&r.ev[0].key, &K));
    /* a heartbeat that changes nothing visible only refreshes */
    app_ok(&e, &c, pres(PX_PRES_HB, "t1", "u1", 2000), 11, &r);
    expect_types(&r, 0);
    assert_int_equal(tab_get(&e, "t1")->last_seen_ms, 2000);
    assert_int_equal(tab_get(&e, "t1")->since_ms, 1000);
    /* each visible field makes an UPDATED */
    void (*muts[])(px_event_t *) = {NULL};
    (void)muts;
    px_event_t hb = pres(PX_PRES_HB, "t1", "u1", 3000);
    hb.dirty = true;
    app_ok(&e, &c, hb, 12, &r);
    expect_types(&r, 1, PX_CH_UPDATED);
    hb.mode = PX_MODE_EDIT;
    app_ok(&e, &c, hb, 13, &r);
    expect_types(&r, 1, PX_CH_UPDATED);
    hb.status = PX_STATUS_AWAY;
    app_ok(&e, &c, hb, 14, &r);
    expect_types(&r, 1, PX_CH_UPDATED);
    strcpy(hb.field, "amount");
    app_ok(&e, &c, hb, 15, &r);
    expect_types(&r, 1, PX_CH_UPDATED);
    strcpy(hb.cursor, "12:4");
    app_ok(&e, &c, hb, 16, &r);
    expect_types(&r, 1, PX_CH_UPDATED);
    app_ok(&e, &c, hb, 17, &r);
    expect_types(&r, 0);
    const px_fold_tab_t *t = tab_get(&e, "t1");
    assert_true(t->dirty && t->mode == PX_MODE_EDIT && t->status == PX_STATUS_AWAY);
    assert_string_equal(px_fold_tab_field(t), "amount");
    assert_string_equal(px_fold_tab_cursor(t), "12:4");
    /* an older heartbeat does not move last_seen back */
    app_ok(&e, &c, pres(PX_PRES_HB, "t1", "u1", 500), 18, &r);
    assert_int_equal(tab_get(&e, "t1")->last_seen_ms, 3000);
    app_ok(&e, &c, pres(PX_PRES_UNSUB, "t1", "u1", 4000), 19, &r);
    expect_types(&r, 1, PX_CH_LEFT);
    assert_int_equal(e.n_tabs, 0);
    assert_null(e.tabs); /* an idle entity keeps no arrays */
    assert_int_equal(e.pres_ts_ms, 4000);
    /* UNSUB of an unknown tab: nothing */
    app_ok(&e, &c, pres(PX_PRES_UNSUB, "t1", "u1", 5000), 20, &r);
    expect_types(&r, 0);
    px_entity_term(&e);
}

static void test_hb_joins_unknown_tab(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    rec_t r;
    px_entity_init(&e, &K);
    app_ok(&e, &c, pres(PX_PRES_HB, "t9", "u1", 1000), 0, &r);
    expect_types(&r, 1, PX_CH_JOINED);
    app_ok(&e, &c, pres(PX_PRES_SUB, "t9", "u1", 2000), 1, &r); /* SUB of a known tab refreshes */
    expect_types(&r, 0);
    assert_int_equal(tab_get(&e, "t9")->last_seen_ms, 2000);
    px_entity_term(&e);
}

static void test_tab_ownership(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e, before;
    rec_t r;
    px_entity_init(&e, &K);
    px_entity_init(&before, &K);
    app_ok(&e, &c, pres(PX_PRES_SUB, "t1", "u1", 1000), 0, &r);
    px_event_t other[] = {pres(PX_PRES_SUB, "t1", "u2", 2000), pres(PX_PRES_HB, "t1", "u2", 2000),
                          pres(PX_PRES_UNSUB, "t1", "u2", 2000), pres(PX_PRES_EXPIRE, "t1", "u2", 2000)};
    other[3].expires_at_ms = INT64_MAX;
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(px_entity_copy(&before, &e), 0);
        app_ok(&e, &c, other[i], 1 + (int64_t)i, &r);
        expect_types(&r, 0);
        e.pres_ts_ms = before.pres_ts_ms; /* the only thing an ignored record moves */
        assert_true(px_entity_equal(&before, &e));
    }
    assert_string_equal(px_fold_tab_user_id(tab_get(&e, "t1")), "u1");
    assert_int_equal(tab_get(&e, "t1")->last_seen_ms, 1000);
    px_entity_term(&e);
    px_entity_term(&before);
}

static void test_presence_expire(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    rec_t r;
    due_t d;
    px_entity_init(&e, &K);
    app_ok(&e, &c, pres(PX_PRES_SUB, "t1", "u1", 1000), 0, &r);
    app_ok(&e, &c, pres(PX_PRES_SUB, "t2", "u2", 1000), 1, &r);
    assert_int_equal(due(&e, &c, 60999, &d), 0);
    assert_int_equal(due(&e, &c, 61000, &d), 2);
    assert_int_equal(d.ev[0].kind, PX_KIND_PRESENCE);
    assert_int_equal(d.ev[0].type, PX_PRES_EXPIRE);
    assert_string_equal(d.ev[0].tab_id, "t1");
    assert_string_equal(d.ev[0].user_id, "u1");
    assert_int_equal(d.ev[0].expires_at_ms, 61000);
    assert_int_equal(d.ev[0].ts_ms, 61000);
    assert_string_equal(d.ev[1].tab_id, "t2");
    assert_int_equal(due(&e, &c, 99999, &d), 0); /* requested: not again */
    /* t2 heartbeats after the decision: its EXPIRE is ignored, and due again later */
    app_ok(&e, &c, pres(PX_PRES_HB, "t2", "u2", 30000), 2, &r);
    assert_int_equal(px_fold_next_deadline(&e, &c), 90000);
    px_event_t x1 = d.ev[0], x2 = d.ev[1];
    app_ok(&e, &c, x1, 3, &r);
    expect_types(&r, 1, PX_CH_TIMED_OUT);
    assert_string_equal(r.ev[0].tab_id, "t1");
    assert_string_equal(r.ev[0].user_name, "Name u1");
    app_ok(&e, &c, x2, 4, &r);
    expect_types(&r, 0);
    assert_non_null(tab_get(&e, "t2"));
    assert_int_equal(due(&e, &c, 90000, &d), 1);
    assert_int_equal(d.ev[0].expires_at_ms, 90000);
    /* an EXPIRE with an earlier deadline than last_seen + ttl: ignored */
    px_event_t early = d.ev[0];
    early.expires_at_ms = 89999;
    app_ok(&e, &c, early, 5, &r);
    expect_types(&r, 0);
    app_ok(&e, &c, d.ev[0], 6, &r);
    expect_types(&r, 1, PX_CH_TIMED_OUT);
    assert_int_equal(e.n_tabs, 0);
    assert_int_equal(px_fold_next_deadline(&e, &c), INT64_MAX);
    px_entity_term(&e);
}

/* ---- locks ------------------------------------------------------------------------- */

static void test_lock_grant_deny_release(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e, before;
    rec_t r;
    px_entity_init(&e, &K);
    px_entity_init(&before, &K);
    /* no SUB needed: the locks part does not read presence */
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "amount", "t1", "u1", 1000), 100, &r);
    expect_types(&r, 1, PX_CH_LOCK_GRANTED);
    assert_int_equal(r.ev[0].token, 100);
    assert_string_equal(r.ev[0].field, "amount");
    assert_string_equal(r.ev[0].tab_id, "t1");
    assert_string_equal(r.ev[0].request_id, "req");
    /* another tab (same user or not) is denied, naming the holder */
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "amount", "t2", "u2", 1500), 101, &r);
    expect_types(&r, 1, PX_CH_LOCK_DENIED);
    assert_string_equal(r.ev[0].holder_user_id, "u1");
    assert_string_equal(r.ev[0].holder_name, "Name u1");
    assert_string_equal(r.ev[0].tab_id, "t2");
    assert_string_equal(r.ev[0].user_id, "u2");
    assert_int_equal(r.ev[0].token, PX_NONE);
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "amount", "t2", "u1", 1500), 102, &r);
    expect_types(&r, 1, PX_CH_LOCK_DENIED);
    /* the holder tab under another user id is not the holder */
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "amount", "t1", "u2", 1500), 103, &r);
    expect_types(&r, 1, PX_CH_LOCK_DENIED);
    /* re-grant by the holder keeps the token and refreshes */
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "amount", "t1", "u1", 2000), 104, &r);
    expect_types(&r, 1, PX_CH_LOCK_GRANTED);
    assert_int_equal(r.ev[0].token, 100);
    assert_int_equal(lock_get(&e, "amount")->refreshed_ms, 2000);
    assert_int_equal(lock_get(&e, "amount")->token, 100);
    /* UNLOCK by a non-holder: no change, LOCK_DENIED naming the holder */
    assert_int_equal(px_entity_copy(&before, &e), 0);
    app_ok(&e, &c, lockev(PX_LOCK_UNLOCK, "amount", "t2", "u2", 2500), 105, &r);
    expect_types(&r, 1, PX_CH_LOCK_DENIED);
    assert_string_equal(r.ev[0].holder_user_id, "u1");
    assert_true(px_entity_equal(&before, &e));
    /* UNLOCK of a free field: nothing */
    app_ok(&e, &c, lockev(PX_LOCK_UNLOCK, "other", "t2", "u2", 2500), 106, &r);
    expect_types(&r, 0);
    assert_true(px_entity_equal(&before, &e));
    app_ok(&e, &c, lockev(PX_LOCK_UNLOCK, "amount", "t1", "u1", 3000), 107, &r);
    expect_types(&r, 1, PX_CH_LOCK_RELEASED);
    assert_int_equal(r.ev[0].token, 100);
    assert_int_equal(e.n_locks, 0);
    assert_null(e.locks);
    /* a new grant gets the new offset: tokens increase */
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "amount", "t2", "u2", 3500), 108, &r);
    expect_types(&r, 1, PX_CH_LOCK_GRANTED);
    assert_int_equal(r.ev[0].token, 108);
    px_entity_term(&e);
    px_entity_term(&before);
}

static void test_lock_expire(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    rec_t r;
    due_t d;
    px_entity_init(&e, &K);
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "a", "t1", "u1", 1000), 1, &r);
    /* presence has seen nothing up to the lock: wait for the lock's own deadline */
    assert_int_equal(px_fold_next_deadline(&e, &c), 121000);
    assert_int_equal(due(&e, &c, 120999, &d), 0);
    assert_int_equal(due(&e, &c, 121000, &d), 1);
    assert_int_equal(d.ev[0].kind, PX_KIND_LOCK);
    assert_int_equal(d.ev[0].type, PX_LOCK_EXPIRE);
    assert_string_equal(d.ev[0].field, "a");
    assert_string_equal(d.ev[0].tab_id, "t1");
    assert_string_equal(d.ev[0].user_id, "u1");
    assert_int_equal(d.ev[0].expires_at_ms, 121000);
    px_event_t x = d.ev[0];
    /* a re-LOCK after the decision: the EXPIRE is ignored, the mark cleared */
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "a", "t1", "u1", 50000), 2, &r);
    app_ok(&e, &c, x, 3, &r);
    expect_types(&r, 0);
    assert_non_null(lock_get(&e, "a"));
    assert_int_equal(due(&e, &c, 170000, &d), 1);
    assert_int_equal(d.ev[0].expires_at_ms, 170000);
    /* an EXPIRE naming another tab: ignored */
    px_event_t wrong = d.ev[0];
    strcpy(wrong.tab_id, "t2");
    app_ok(&e, &c, wrong, 4, &r);
    expect_types(&r, 0);
    app_ok(&e, &c, d.ev[0], 5, &r);
    expect_types(&r, 1, PX_CH_LOCK_EXPIRED);
    assert_int_equal(r.ev[0].token, 1);
    assert_string_equal(r.ev[0].tab_id, "t1");
    assert_int_equal(e.n_locks, 0);
    px_entity_term(&e);
}

static void test_lock_deadline_holder_heartbeats(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    rec_t r;
    due_t d;
    px_entity_init(&e, &K);
    app_ok(&e, &c, pres(PX_PRES_SUB, "t1", "u1", 1000), 0, &r);
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "a", "t1", "u1", 1000), 0, &r);
    app_ok(&e, &c, pres(PX_PRES_HB, "t1", "u1", 100000), 1, &r);
    assert_int_equal(px_fold_lock_deadline(&e, &c, lock_get(&e, "a")), 220000);
    assert_int_equal(px_fold_next_deadline(&e, &c), 160000); /* the tab's */
    assert_int_equal(due(&e, &c, 130000, &d), 0);            /* the lock lives on the heartbeats */
    px_presence_view_t v;
    px_viewer_t vw[4];
    px_lock_view_t lv[4];
    assert_int_equal(px_fold_view(&e, &c, 130000, vw, 4, lv, 4, &v), 0);
    assert_int_equal(v.n_locks, 1);
    assert_int_equal(lv[0].expires_at_ms, 220000);
    /* the tab times out: its EXPIRE first; then the lock is due at once */
    assert_int_equal(due(&e, &c, 160000, &d), 1);
    assert_int_equal(d.ev[0].kind, PX_KIND_PRESENCE);
    app_ok(&e, &c, d.ev[0], 2, &r);
    expect_types(&r, 1, PX_CH_TIMED_OUT);
    assert_int_equal(px_fold_lock_deadline(&e, &c, lock_get(&e, "a")), 121000);
    assert_int_equal(px_fold_next_deadline(&e, &c), 1000);
    assert_int_equal(due(&e, &c, 160001, &d), 1);
    assert_int_equal(d.ev[0].kind, PX_KIND_LOCK);
    assert_int_equal(d.ev[0].expires_at_ms, 121000); /* refreshed + ttl: applies unless re-locked */
    app_ok(&e, &c, d.ev[0], 1, &r);
    expect_types(&r, 1, PX_CH_LOCK_EXPIRED);
    px_entity_term(&e);
}

static void test_lock_holder_left(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    rec_t r;
    due_t d;
    px_entity_init(&e, &K);
    app_ok(&e, &c, pres(PX_PRES_SUB, "t1", "u1", 1000), 0, &r);
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "a", "t1", "u1", 2000), 7, &r);
    assert_int_equal(due(&e, &c, 2500, &d), 0);
    app_ok(&e, &c, pres(PX_PRES_UNSUB, "t1", "u1", 3000), 1, &r);
    assert_int_equal(due(&e, &c, 3001, &d), 1);
    assert_int_equal(d.ev[0].expires_at_ms, 122000);
    app_ok(&e, &c, d.ev[0], 8, &r);
    expect_types(&r, 1, PX_CH_LOCK_EXPIRED);
    assert_int_equal(r.ev[0].token, 7);
    /* a lock whose tab belongs to another user in presence: the holder is absent */
    app_ok(&e, &c, pres(PX_PRES_SUB, "t2", "u2", 4000), 2, &r);
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "b", "t2", "u9", 3500), 9, &r);
    assert_int_equal(due(&e, &c, 4001, &d), 1);
    assert_string_equal(d.ev[0].field, "b");
    px_entity_term(&e);
}

/* ---- lifecycle ------------------------------------------------------------------------ */

static void test_lifecycle_pair_by_write_id(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t a, b;
    rec_t r;
    px_entity_init(&a, &K);
    px_entity_init(&b, &K);
    const char *bb;
    app_ok(&a, &c, lcev(PX_LC_MUTATING, "w1", 1000, PX_NONE), 0, &r);
    expect_types(&r, 1, PX_CH_STALE_SET);
    assert_string_equal(r.ev[0].busy_by, "w1");
    assert_true(px_fold_stale(&a, &c, 1000, &bb));
    assert_string_equal(bb, "w1");
    app_ok(&a, &c, lcev(PX_LC_MUTATED, "w1", 2000, PX_NONE), 0, &r);
    expect_types(&r, 2, PX_CH_STALE_CLEARED, PX_CH_VERSION_BUMPED);
    assert_int_equal(r.ev[1].version, 1);
    assert_false(px_fold_stale(&a, &c, 2000, &bb));
    assert_string_equal(bb, "");
    /* the other order: the same changes per record and the same state */
    app_ok(&b, &c, lcev(PX_LC_MUTATED, "w1", 2000, PX_NONE), 0, &r);
    expect_types(&r, 2, PX_CH_STALE_CLEARED, PX_CH_VERSION_BUMPED);
    app_ok(&b, &c, lcev(PX_LC_MUTATING, "w1", 1000, PX_NONE), 0, &r);
    expect_types(&r, 1, PX_CH_STALE_SET);
    assert_false(px_fold_stale(&b, &c, 2000, NULL));
    assert_true(px_entity_equal(&a, &b));
    /* another write stays open: pairing is by id, not by time */
    app_ok(&a, &c, lcev(PX_LC_MUTATING, "w2", 500, PX_NONE), 1, &r);
    app_ok(&a, &c, lcev(PX_LC_MUTATED, "w3", 3000, PX_NONE), 1, &r);
    assert_true(px_fold_stale(&a, &c, 3000, &bb));
    assert_string_equal(bb, "w2");
    /* a duplicate MUTATING of an open write and a repeated MUTATED: ignored */
    app_ok(&a, &c, lcev(PX_LC_MUTATING, "w2", 600, PX_NONE), 2, &r);
    expect_types(&r, 0);
    app_ok(&a, &c, lcev(PX_LC_MUTATED, "w3", 3100, PX_NONE), 2, &r);
    expect_types(&r, 0);
    assert_int_equal(a.version, 2);
    px_entity_term(&a);
    px_entity_term(&b);
}

static void test_lifecycle_pair_by_ts(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t a, b;
    rec_t r;
    const char *bb;
    px_entity_init(&a, &K);
    px_entity_init(&b, &K);
    px_event_t m1 = lcev(PX_LC_MUTATING, "", 100, PX_NONE), m2 = lcev(PX_LC_MUTATING, "", 200, PX_NONE),
               mw = lcev(PX_LC_MUTATING, "w1", 120, PX_NONE), d = lcev(PX_LC_MUTATED, "", 150, PX_NONE);
    strcpy(m2.busy_by, "second");
    app_ok(&a, &c, m1, 0, &r);
    app_ok(&a, &c, mw, 1, &r);
    app_ok(&a, &c, m2, 2, &r);
    assert_true(px_fold_stale(&a, &c, 300, &bb));
    assert_string_equal(bb, "second");
    app_ok(&a, &c, d, 0, &r); /* closes every write opened at or before 150, with an id or not */
    expect_types(&r, 2, PX_CH_STALE_CLEARED, PX_CH_VERSION_BUMPED);
    assert_int_equal(a.n_writes, 1);
    assert_string_equal(px_fold_write_busy_by(&a.writes[0]), "second");
    /* MUTATED first: the earlier MUTATINGs are closed on arrival */
    app_ok(&b, &c, d, 0, &r);
    app_ok(&b, &c, m1, 0, &r);
    expect_types(&r, 1, PX_CH_STALE_SET);
    assert_false(px_fold_stale(&b, &c, 300, NULL));
    app_ok(&b, &c, mw, 1, &r);
    app_ok(&b, &c, m2, 2, &r);
    assert_true(px_entity_equal(&a, &b));
    px_buf_t da, db;
    px_buf_init(&da, 1 << 16);
    px_buf_init(&db, 1 << 16);
    assert_int_equal(px_entity_dump(&a, &da), 0);
    assert_int_equal(px_entity_dump(&b, &db), 0);
    assert_string_equal(da.data, db.data);
    px_buf_term(&da);
    px_buf_term(&db);
    px_entity_term(&a);
    px_entity_term(&b);
}

static void test_version_rules(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    rec_t r;
    px_entity_init(&e, &K);
    assert_int_equal(e.version, 0);
    app_ok(&e, &c, lcev(PX_LC_MUTATED, "", 1, 5), 0, &r); /* set */
    expect_types(&r, 2, PX_CH_STALE_CLEARED, PX_CH_VERSION_BUMPED);
    assert_int_equal(r.ev[1].version, 5);
    app_ok(&e, &c, lcev(PX_LC_MUTATED, "", 2, PX_NONE), 1, &r); /* bump */
    expect_types(&r, 2, PX_CH_STALE_CLEARED, PX_CH_VERSION_BUMPED);
    assert_int_equal(r.ev[1].version, 6);
    app_ok(&e, &c, lcev(PX_LC_MUTATED, "", 3, 3), 2, &r); /* never down */
    expect_types(&r, 1, PX_CH_STALE_CLEARED);
    assert_int_equal(e.version, 6);
    app_ok(&e, &c, lcev(PX_LC_MUTATED, "", 4, 6), 3, &r);
    expect_types(&r, 1, PX_CH_STALE_CLEARED);
    app_ok(&e, &c, lcev(PX_LC_MUTATED, "x", 5, INT64_MAX), 4, &r);
    app_ok(&e, &c, lcev(PX_LC_MUTATED, "y", 6, PX_NONE), 5, &r); /* saturates */
    assert_int_equal(e.version, INT64_MAX);
    expect_types(&r, 1, PX_CH_STALE_CLEARED);
    px_entity_term(&e);
}

static void test_lifecycle_expire(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t a, b;
    rec_t r;
    due_t d;
    px_entity_init(&a, &K);
    px_entity_init(&b, &K);
    app_ok(&a, &c, lcev(PX_LC_MUTATING, "w1", 1000, PX_NONE), 0, &r);
    app_ok(&a, &c, lcev(PX_LC_MUTATING, "", 2000, PX_NONE), 1, &r);
    assert_int_equal(px_fold_next_deadline(&a, &c), 301000);
    assert_int_equal(due(&a, &c, 302000, &d), 2);
    assert_int_equal(d.ev[0].kind, PX_KIND_LIFECYCLE);
    assert_int_equal(d.ev[0].type, PX_LC_EXPIRE);
    assert_string_equal(d.ev[0].write_id, "w1");
    assert_int_equal(d.ev[0].expires_at_ms, 301000);
    assert_string_equal(d.ev[1].write_id, "");
    assert_int_equal(d.ev[1].expires_at_ms, 302000);
    assert_int_equal(due(&a, &c, 999999, &d), 0);
    assert_int_equal(px_fold_next_deadline(&a, &c), INT64_MAX);
    assert_int_equal(px_entity_copy(&b, &a), 0);
    px_event_t x1 = d.ev[0], x2 = d.ev[1];
    /* an EXPIRE whose deadline is before the write's: ignored */
    px_event_t early = x1;
    early.expires_at_ms = 300999;
    app_ok(&a, &c, early, 2, &r);
    expect_types(&r, 0);
    app_ok(&a, &c, x1, 3, &r);
    expect_types(&r, 1, PX_CH_STALE_CLEARED);
    app_ok(&a, &c, x1, 4, &r); /* twice: nothing left to clear */
    expect_types(&r, 0);
    /* MUTATED of w1 after its EXPIRE, and before it in b: same changes */
    app_ok(&a, &c, lcev(PX_LC_MUTATED, "w1", 400000, PX_NONE), 0, &r);
    expect_types(&r, 2, PX_CH_STALE_CLEARED, PX_CH_VERSION_BUMPED);
    app_ok(&b, &c, early, 2, &r);
    app_ok(&b, &c, lcev(PX_LC_MUTATED, "w1", 400000, PX_NONE), 0, &r);
    expect_types(&r, 2, PX_CH_STALE_CLEARED, PX_CH_VERSION_BUMPED);
    app_ok(&b, &c, x1, 3, &r);
    expect_types(&r, 1, PX_CH_STALE_CLEARED); /* the EXPIRE still clears the write it named */
    app_ok(&b, &c, x1, 4, &r);
    expect_types(&r, 0);
    for (px_entity_t *e = &a; e; e = (e == &a ? &b : NULL)) {
        assert_int_equal(e->n_writes, 1);
        assert_true(px_fold_stale(e, &c, 301999, NULL));
        assert_false(px_fold_stale(e, &c, 302000, NULL)); /* the view already hides it */
        app_ok(e, &c, x2, 5, &r);
        expect_types(&r, 1, PX_CH_STALE_CLEARED);
        assert_int_equal(e->n_writes, 0);
        assert_false(px_fold_stale(e, &c, 0, NULL));
    }
    assert_true(px_entity_equal(&a, &b));
    /* the view hides a write past its deadline before the EXPIRE comes */
    app_ok(&a, &c, lcev(PX_LC_MUTATING, "w5", 500000, PX_NONE), 6, &r);
    assert_true(px_fold_stale(&a, &c, 799999, NULL));
    assert_false(px_fold_stale(&a, &c, 800000, NULL));
    px_entity_term(&a);
    px_entity_term(&b);
}

/* ---- refusals, caps --------------------------------------------------------------------- */

static void test_wrong_topic_and_key(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    rec_t r = {.n = 0};
    px_entity_init(&e, &K);
    px_event_t p = pres(PX_PRES_SUB, "t1", "u1", 1), l = lockev(PX_LOCK_LOCK, "f", "t1", "u1", 1),
               ing = lcev(PX_LC_MUTATING, "w", 1, PX_NONE), ed = lcev(PX_LC_MUTATED, "w", 1, PX_NONE),
               x = lcev(PX_LC_EXPIRE, "w", 1, PX_NONE);
    x.expires_at_ms = 5;
    struct {
        const px_event_t *ev;
        px_src_topic_t topic;
    } bad[] = {{&p, PX_SRC_LOCKS},      {&l, PX_SRC_HEARTBEATS}, {&ing, PX_SRC_MUTATED}, {&x, PX_SRC_MUTATED},
               {&ed, PX_SRC_MUTATING}, {&p, PX_SRC_MUTATING},   {&p, PX_SRC__COUNT}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        px_src_t src = {bad[i].topic, 0, 1};
        assert_int_equal(px_fold_apply(&e, &c, bad[i].ev, &src, rec_emit, &r), PX_EINVAL);
    }
    px_event_t change;
    px_event_init(&change, PX_KIND_CHANGE);
    change.key = K;
    px_src_t src = {PX_SRC_HEARTBEATS, 0, 1};
    assert_int_equal(px_fold_apply(&e, &c, &change, &src, rec_emit, &r), PX_EINVAL);
    px_event_t other = p;
    key_init(&other.key, "2");
    assert_int_equal(px_fold_apply(&e, &c, &other, &src, rec_emit, &r), PX_EINVAL);
    px_src_t neg = {PX_SRC_LOCKS, 0, -1};
    assert_int_equal(px_fold_apply(&e, &c, &l, &neg, rec_emit, &r), PX_EINVAL);
    assert_int_equal(px_fold_apply(NULL, &c, &l, &neg, NULL, NULL), PX_EINVAL);
    assert_int_equal(r.n, 0);
    px_entity_t empty;
    px_entity_init(&empty, &K);
    assert_true(px_entity_equal(&e, &empty));
    px_entity_term(&e);
}

static void test_caps(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    c.max_tabs = 3;
    c.max_locks = 2;
    c.max_open_writes = 2;
    px_entity_t e, before;
    rec_t r;
    px_entity_init(&e, &K);
    px_entity_init(&before, &K);
    char id[16];
    for (int i = 0; i < 3; i++) {
        snprintf(id, sizeof id, "t%d", i);
        app_ok(&e, &c, pres(PX_PRES_SUB, id, "u1", 1000 + i), i, &r);
        snprintf(id, sizeof id, "f%d", i);
        if (i < 2) app_ok(&e, &c, lockev(PX_LOCK_LOCK, id, "t1", "u1", 1000), i, &r);
        snprintf(id, sizeof id, "w%d", i);
        if (i < 2) app_ok(&e, &c, lcev(PX_LC_MUTATING, id, 1000, PX_NONE), i, &r);
    }
    assert_int_equal(px_entity_copy(&before, &e), 0);
    px_event_t over[] = {pres(PX_PRES_SUB, "t9", "u1", 5000), pres(PX_PRES_HB, "t9", "u1", 5000),
                         lockev(PX_LOCK_LOCK, "f9", "t1", "u1", 5000), lcev(PX_LC_MUTATING, "w9", 5000, PX_NONE),
                         lcev(PX_LC_MUTATING, "", 5000, PX_NONE)};
    for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
        assert_int_equal(app(&e, &c, &over[i], 50, &r), PX_EINVAL);
        assert_int_equal(r.n, 0);
        assert_true(px_entity_equal(&before, &e));
        assert_int_equal(e.pres_ts_ms, before.pres_ts_ms);
    }
    /* at the cap, records on existing items still work */
    app_ok(&e, &c, pres(PX_PRES_HB, "t0", "u1", 6000), 60, &r);
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "f0", "t1", "u1", 6000), 61, &r);
    expect_types(&r, 1, PX_CH_LOCK_GRANTED);
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "f0", "t2", "u1", 6000), 62, &r);
    expect_types(&r, 1, PX_CH_LOCK_DENIED);
    /* a MUTATING already closed by its MUTATED does not open a write: accepted */
    app_ok(&e, &c, lcev(PX_LC_MUTATED, "w7", 6000, PX_NONE), 63, &r);
    app_ok(&e, &c, lcev(PX_LC_MUTATING, "w7", 5900, PX_NONE), 64, &r);
    expect_types(&r, 1, PX_CH_STALE_SET);
    assert_int_equal(e.n_writes, 2);
    /* the rings stay bounded */
    char wid[32];
    for (int i = 0; i < 3 * PX_FOLD_DONE_MAX; i++) {
        snprintf(wid, sizeof wid, "d%d", i);
        app_ok(&e, &c, lcev(PX_LC_MUTATED, wid, 7000 + i, PX_NONE), 100 + i, &r);
        app_ok(&e, &c, lcev(PX_LC_MUTATING, wid, 7000 + i, PX_NONE), 100 + i, &r);
        assert_true(e.n_done <= PX_FOLD_DONE_MAX && e.n_gone <= PX_FOLD_GONE_MAX);
    }
    assert_int_equal(e.n_done, PX_FOLD_DONE_MAX);
    assert_int_equal(e.n_gone, PX_FOLD_GONE_MAX);
    assert_true(e.gone[0].ts_ms == 7000 + 2 * PX_FOLD_GONE_MAX); /* the oldest went first */
    px_entity_term(&e);
    px_entity_term(&before);
}

/* ---- due / next_deadline / view / dump ---------------------------------------------- */

static void test_due_marks_and_refresh(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    rec_t r;
    due_t d;
    px_entity_init(&e, &K);
    assert_int_equal(px_fold_next_deadline(&e, &c), INT64_MAX);
    assert_int_equal(due(&e, &c, INT64_MAX, &d), 0);
    app_ok(&e, &c, pres(PX_PRES_SUB, "t1", "u1", 1000), 0, &r);
    app_ok(&e, &c, lcev(PX_LC_MUTATING, "w", 500, PX_NONE), 0, &r);
    assert_int_equal(px_fold_next_deadline(&e, &c), 61000);
    assert_int_equal(due(&e, &c, 61000, &d), 1);
    assert_int_equal(px_fold_next_deadline(&e, &c), 300500);
    assert_true(e.tabs[0].expire_requested);
    /* marks are bookkeeping: not part of equality nor of the dump */
    px_entity_t copy;
    px_entity_init(&copy, &K);
    assert_int_equal(px_entity_copy(&copy, &e), 0);
    copy.tabs[0].expire_requested = false;
    assert_true(px_entity_equal(&copy, &e));
    /* a refresh clears the mark */
    app_ok(&e, &c, pres(PX_PRES_HB, "t1", "u1", 2000), 1, &r);
    assert_false(e.tabs[0].expire_requested);
    assert_int_equal(px_fold_next_deadline(&e, &c), 62000);
    /* a heartbeat with an older ts refreshes nothing, so the mark stays */
    assert_int_equal(due(&e, &c, 62000, &d), 1);
    app_ok(&e, &c, pres(PX_PRES_HB, "t1", "u1", 1500), 2, &r);
    assert_true(e.tabs[0].expire_requested);
    assert_int_equal(due(&e, &c, INT64_MAX, &d), 1); /* only the write now */
    assert_int_equal(d.ev[0].kind, PX_KIND_LIFECYCLE);
    /* without an emitter, due only marks */
    app_ok(&e, &c, pres(PX_PRES_HB, "t1", "u1", 3000), 3, &r);
    assert_int_equal(px_fold_due(&e, &c, INT64_MAX, NULL, NULL), 0);
    assert_true(e.tabs[0].expire_requested);
    px_entity_term(&copy);
    px_entity_term(&e);
}

static void test_view(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    c.lock_ttl_ms = 50000;
    px_entity_t e;
    rec_t r;
    px_entity_init(&e, &K);
    px_event_t a = pres(PX_PRES_SUB, "tb", "zed", 30000), b = pres(PX_PRES_SUB, "ta", "zed", 30000),
               x = pres(PX_PRES_SUB, "tc", "amy", 30000), old = pres(PX_PRES_SUB, "td", "bob", 1);
    a.mode = PX_MODE_EDIT;
    b.dirty = true;
    b.status = PX_STATUS_AWAY;
    a.status = PX_STATUS_AWAY;
    strcpy(b.user_name, "Zed from ta");
    app_ok(&e, &c, a, 0, &r);
    app_ok(&e, &c, b, 1, &r);
    app_ok(&e, &c, x, 2, &r);
    app_ok(&e, &c, old, 3, &r);
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "f2", "tc", "amy", 30000), 10, &r);
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "f1", "gone", "amy", 1), 11, &r);
    app_ok(&e, &c, lcev(PX_LC_MUTATING, "w", 900, PX_NONE), 0, &r);
    app_ok(&e, &c, lcev(PX_LC_MUTATED, "", 950, 41), 0, &r);
    app_ok(&e, &c, lcev(PX_LC_MUTATING, "w2", 960, PX_NONE), 1, &r);
    px_viewer_t vw[4];
    px_lock_view_t lv[2];
    px_presence_view_t v;
    assert_int_equal(px_fold_view(&e, &c, 70000, vw, 4, lv, 2, &v), 0);
    assert_true(px_key_equal(v.key, &K));
    assert_int_equal(v.n_viewers, 2); /* bob's tab is past its deadline */
    assert_string_equal(vw[0].user_id, "amy");
    assert_int_equal(vw[0].tabs, 1);
    assert_string_equal(vw[1].user_id, "zed");
    assert_string_equal(vw[1].name, "Zed from ta"); /* the first tab by tab id */
    assert_int_equal(vw[1].tabs, 2);
    assert_true(vw[1].has_dirty_tab);
    assert_int_equal(vw[1].mode, PX_MODE_EDIT);
    assert_int_equal(vw[1].status, PX_STATUS_AWAY);
    assert_int_equal(v.n_locks, 1); /* f1's holder is absent: refreshed 1 + ttl passed */
    assert_string_equal(lv[0].field, "f2");
    assert_int_equal(lv[0].token, 10);
    assert_int_equal(lv[0].expires_at_ms, 80000);
    assert_true(v.stale);
    assert_string_equal(v.busy_by, "w2");
    assert_int_equal(v.version, 41);
    assert_int_equal(px_fold_view(&e, &c, 70000, vw, 1, lv, 2, &v), PX_ENOMEM);
    assert_int_equal(px_fold_view(&e, &c, 0, vw, 4, lv, 1, &v), PX_ENOMEM);
    assert_int_equal(px_fold_view(&e, &c, INT64_MAX, vw, 0, lv, 0, &v), 0);
    assert_int_equal(v.n_viewers + v.n_locks, 0);
    assert_false(v.stale);
    assert_string_equal(v.busy_by, "");
    /* the view goes out through the protocol writer */
    px_buf_t out;
    px_buf_init(&out, 1 << 16);
    assert_int_equal(px_fold_view(&e, &c, 70000, vw, 4, lv, 2, &v), 0);
    assert_int_equal(px_proto_write_presence(&out, &v), 0);
    assert_non_null(strstr(out.data, "\"amy\""));
    px_buf_term(&out);
    px_entity_term(&e);
}

static void test_dump_copy(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e, copy;
    rec_t r;
    px_entity_init(&e, &K);
    px_entity_init(&copy, &K);
    px_buf_t out;
    px_buf_init(&out, 1 << 16);
    assert_int_equal(px_entity_dump(&e, &out), 0);
    assert_string_equal(out.data, "{\"key\":\"acme:doc:1\",\"pres_ts\":0,\"tabs\":[],\"locks\":[],\"writes\":[],"
                                  "\"gone\":[],\"done\":[],\"closed_up_to\":0,\"version\":0}");
    px_event_t s = pres(PX_PRES_SUB, "t\"1", "u1", 5);
    strcpy(s.cursor, "line\n");
    app_ok(&e, &c, s, 0, &r);
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "f", "t\"1", "u1", 6), 4, &r);
    app_ok(&e, &c, lcev(PX_LC_MUTATING, "w1", 7, PX_NONE), 0, &r);
    app_ok(&e, &c, lcev(PX_LC_MUTATED, "w0", 8, PX_NONE), 0, &r);
    app_ok(&e, &c, lcev(PX_LC_MUTATING, "w0", 7, PX_NONE), 1, &r);
    px_buf_reset(&out);
    assert_int_equal(px_entity_dump(&e, &out), 0);
    char expect[2048];
    snprintf(expect, sizeof expect,
             "{\"key\":\"acme:doc:1\",\"pres_ts\":5,\"tabs\":[{\"tab\":\"t\\\"1\",\"user\":\"u1\",\"name\":\"Name u1\","
             "\"mode\":\"view\",\"dirty\":false,\"status\":\"online\",\"field\":\"\",\"cursor\":\"line\\n\","
             "\"since\":5,\"last_seen\":5}],\"locks\":[{\"field\":\"f\",\"tab\":\"t\\\"1\",\"user\":\"u1\","
             "\"name\":\"Name u1\",\"token\":4,\"refreshed\":6}],\"writes\":[{\"write_id\":\"w1\",\"busy_by\":\"w1\","
             "\"ts\":7}],\"gone\":[{\"ts\":7,\"id\":\"%016llx\"}],\"done\":[\"%016llx\"],\"closed_up_to\":0,"
             "\"version\":1}",
             (unsigned long long)px_fold_id_hash("w0"), (unsigned long long)px_fold_id_hash("w0"));
    assert_string_equal(out.data, expect);
    assert_int_equal(px_entity_copy(&copy, &e), 0);
    assert_true(px_entity_equal(&copy, &e));
    copy.version++;
    assert_false(px_entity_equal(&copy, &e));
    /* a dump that does not fit leaves the buffer as it was */
    px_buf_t small;
    px_buf_init(&small, 40);
    px_buf_puts(&small, "keep");
    assert_int_equal(px_entity_dump(&e, &small), PX_ENOMEM);
    assert_string_equal(small.data, "keep");
    assert_int_equal(small.len, 4);
    px_buf_term(&small);
    px_buf_term(&out);
    px_entity_free(NULL);
    px_entity_t *h = px_entity_new(&K);
    assert_non_null(h);
    assert_int_equal(px_entity_copy(h, &e), 0);
    assert_true(px_entity_equal(h, &e));
    px_entity_free(h);
    px_entity_term(&copy);
    px_entity_term(&e);
    px_entity_term(&e); /* twice is fine */
}

static void test_extreme_times(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    rec_t r;
    due_t d;
    px_entity_init(&e, &K);
    app_ok(&e, &c, pres(PX_PRES_SUB, "t1", "u1", INT64_MAX), 0, &r);
    app_ok(&e, &c, lockev(PX_LOCK_LOCK, "f", "t1", "u1", INT64_MAX - 1), INT64_MAX, &r);
    app_ok(&e, &c, lcev(PX_LC_MUTATING, "w", INT64_MAX, PX_NONE), 0, &r);
    assert_int_equal(px_fold_next_deadline(&e, &c), INT64_MAX);
    assert_int_equal(due(&e, &c, INT64_MAX, &d), 3);
    for (size_t i = 0; i < d.n; i++) {
        px_event_t x = d.ev[i];
        app_ok(&e, &c, x, 1, &r);
        assert_int_equal(r.n, 1);
    }
    assert_int_equal(e.n_tabs + e.n_locks + e.n_writes, 0);
    px_entity_term(&e);
}

/* ---- PRNG ------------------------------------------------------------------------------ */


/* ---- property 1: interleaving invariance -------------------------------------------- */

#define LOG_MAX 600

typedef struct {
    px_event_t *ev[PX_SRC__COUNT]; /* per topic, in topic order */
    size_t n[PX_SRC__COUNT];
} logs_t;

static void logs_push(logs_t *l, px_src_topic_t t, const px_event_t *ev) {
    assert_true(l->n[t] < LOG_MAX);
    l->ev[t][l->n[t]++] = *ev;
}

/* A random input record of the entity at time now. */
static px_event_t random_record(rng_t *g, int64_t now) {
    static const char *const tabs[] = {"t1", "t2", "t3", "t4", "t5"};
    static const char *const owner[] = {"u1", "u1", "u2", "u3", "u3"};
    static const char *const fields[] = {"a", "b", "c", "d"};
    int64_t ts = now - (int64_t)rng_below(g, 3000); /* gateways' clocks differ a little */
    uint32_t k = rng_below(g, 100), ti = rng_below(g, 5);
    const char *user = rng_below(g, 20) == 0 ? "u9" : owner[ti]; /* sometimes a hijack */
    if (k < 45) {
        static const int types[] = {PX_PRES_SUB, PX_PRES_HB, PX_PRES_HB, PX_PRES_HB, PX_PRES_UNSUB};
        px_event_t ev = pres(types[rng_below(g, 5)], tabs[ti], user, ts);
        ev.mode = (px_mode_t)rng_below(g, 2);
        ev.dirty = rng_below(g, 2);
        ev.status = (px_status_t)rng_below(g, 2);
        if (rng_below(g, 2)) strcpy(ev.field, fields[rng_below(g, 4)]);
        return ev;
    }
    if (k < 75) {
        px_event_t ev = lockev(rng_below(g, 3) ? PX_LOCK_LOCK : PX_LOCK_UNLOCK, fields[rng_below(g, 4)], tabs[ti],
                               user, ts);
        snprintf(ev.request_id, sizeof ev.request_id, "r%u", rng_below(g, 1000));
        return ev;
    }
    char wid[16] = "";
    if (rng_below(g, 3)) snprintf(wid, sizeof wid, "w%u", rng_below(g, 10));
    if (k < 88) return lcev(PX_LC_MUTATING, wid, ts - (int64_t)rng_below(g, 20000), PX_NONE);
    return lcev(PX_LC_MUTATED, wid, ts, rng_below(g, 3) ? PX_NONE : (int64_t)rng_below(g, 30));
}

/* Generate one entity's four topic logs: records arrive in one random
 * order, the generating fold applies them, and at random times the EXPIREs
 * px_fold_due asks for are appended to their topics. */
static void gen_logs(rng_t *g, const px_fold_conf_t *c, logs_t *l, size_t steps) {
    px_entity_t e;
    px_entity_init(&e, &K);
    int64_t now = 1700000000000LL;
    size_t pos[PX_SRC__COUNT] = {0};
    for (size_t i = 0; i < steps; i++) {
        now += rng_below(g, 15000);
        if (rng_below(g, 8) == 0) {
            due_t d;
            due(&e, c, now, &d);
            for (size_t j = 0; j < d.n; j++) logs_push(l, topic_of(&d.ev[j]), &d.ev[j]);
        } else {
            px_event_t ev = random_record(g, now);
            logs_push(l, topic_of(&ev), &ev);
        }
        /* the generating fold consumes some of what is in the logs, topic by topic at random */
        for (int t = 0; t < PX_SRC__COUNT; t++)
            while (pos[t] < l->n[t] && rng_below(g, 3)) {
                px_src_t src = {(px_src_topic_t)t, 0, (int64_t)pos[t]};
                assert_int_equal(px_fold_apply(&e, c, &l->ev[t][pos[t]], &src, NULL, NULL), 0);
                pos[t]++;
            }
    }
    px_entity_term(&e);
}

/* One event as text for comparing change events. */
static void change_sig(px_buf_t *b, const px_event_t *ch) {
    px_buf_printf(b, "%s|%s|%s|%s|%s|%lld|%s|%s|%s|%lld|%s|%lld|%d|%lld;", px_event_type_name(PX_KIND_CHANGE, ch->type),
                  ch->tab_id, ch->user_id, ch->user_name, ch->field, (long long)ch->token, ch->holder_user_id,
                  ch->holder_name, ch->busy_by, (long long)ch->version, ch->request_id, (long long)ch->ts_ms,
                  (int)ch->src_partition, (long long)ch->src_offset);
}

typedef struct {
    px_buf_t *per_record; /* indexed by topic * LOG_MAX + offset */
    size_t cur;
} sigs_t;

static void sig_emit(void *arg, const px_event_t *ch) {
    sigs_t *s = arg;
    change_sig(&s->per_record[s->cur], ch);
}

/* Apply the logs in one random interleaving that keeps each topic's order. */
static void fold_interleaved(rng_t *g, const px_fold_conf_t *c, const logs_t *l, px_entity_t *e, sigs_t *s) {
    size_t pos[PX_SRC__COUNT] = {0}, left = 0;
    for (int t = 0; t < PX_SRC__COUNT; t++) left += l->n[t];
    for (size_t i = 0; i < PX_SRC__COUNT * LOG_MAX; i++) px_buf_reset(&s->per_record[i]);
    /* bias: each run prefers some topics, so runs differ a lot */
    uint32_t w[PX_SRC__COUNT];
    for (int t = 0; t < PX_SRC__COUNT; t++) w[t] = 1 + rng_below(g, 10);
    while (left) {
        uint32_t tot = 0;
        for (int t = 0; t < PX_SRC__COUNT; t++)
            if (pos[t] < l->n[t]) tot += w[t];
        uint32_t pick = rng_below(g, tot);
        int t = 0;
        for (;; t++) {
            if (pos[t] >= l->n[t]) continue;
            if (pick < w[t]) break;
            pick -= w[t];
        }
        px_src_t src = {(px_src_topic_t)t, 0, (int64_t)pos[t]};
        s->cur = (size_t)t * LOG_MAX + pos[t];
        int rc = px_fold_apply(e, c, &l->ev[t][pos[t]], &src, sig_emit, s);
        if (rc) fail_msg("apply topic %d offset %zu: %d", t, pos[t], rc);
        pos[t]++;
        left--;
    }
}

static void test_prop_interleaving(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    c.presence_ttl_ms = 40000;
    c.lock_ttl_ms = 70000;
    c.stale_ttl_ms = 90000;
    rng_t g = {20240611};
    logs_t l;
    for (int t = 0; t < PX_SRC__COUNT; t++) l.ev[t] = calloc(LOG_MAX, sizeof(px_event_t));
    sigs_t ref = {calloc(PX_SRC__COUNT * LOG_MAX, sizeof(px_buf_t)), 0},
           run = {calloc(PX_SRC__COUNT * LOG_MAX, sizeof(px_buf_t)), 0};
    for (size_t i = 0; i < PX_SRC__COUNT * LOG_MAX; i++) {
        px_buf_init(&ref.per_record[i], 1 << 16);
        px_buf_init(&run.per_record[i], 1 << 16);
    }
    px_buf_t da, db;
    px_buf_init(&da, 1 << 20);
    px_buf_init(&db, 1 << 20);
    size_t records = 0, changes_total = 0, expires = 0;
    for (int ent = 0; ent < 8; ent++) {
        char id[8];
        snprintf(id, sizeof id, "e%d", ent);
        key_init(&K, id);
        memset(l.n, 0, sizeof l.n);
        gen_logs(&g, &c, &l, 300);
        for (int t = 0; t < PX_SRC__COUNT; t++) {
            records += l.n[t];
            for (size_t i = 0; i < l.n[t]; i++)
                if (l.ev[t][i].type == (l.ev[t][i].kind == PX_KIND_PRESENCE ? PX_PRES_EXPIRE
                                        : l.ev[t][i].kind == PX_KIND_LOCK   ? PX_LOCK_EXPIRE
                                                                            : PX_LC_EXPIRE))
                    expires++;
        }
        px_entity_t first, other;
        px_entity_init(&first, &K);
        fold_interleaved(&g, &c, &l, &first, &ref);
        px_buf_reset(&da);
        assert_int_equal(px_entity_dump(&first, &da), 0);
        for (size_t i = 0; i < PX_SRC__COUNT * LOG_MAX; i++) changes_total += ref.per_record[i].len ? 1 : 0;
        for (int run_i = 0; run_i < 60; run_i++) {
            px_entity_init(&other, &K);
            fold_interleaved(&g, &c, &l, &other, &run);
            if (!px_entity_equal(&first, &other)) {
                px_buf_reset(&db);
                px_entity_dump(&other, &db);
                fail_msg("entity %d run %d: states differ\n%s\n%s", ent, run_i, da.data, db.data);
            }
            for (size_t i = 0; i < PX_SRC__COUNT * LOG_MAX; i++) {
                const char *x = ref.per_record[i].data ? ref.per_record[i].data : "";
                const char *y = run.per_record[i].data ? run.per_record[i].data : "";
                if (strcmp(x, y) != 0)
                    fail_msg("entity %d run %d: topic %zu offset %zu changes differ:\n%s\n%s", ent, run_i,
                             i / LOG_MAX, i % LOG_MAX, x, y);
            }
            px_entity_term(&other);
        }
        px_entity_term(&first);
    }
    print_message("interleaving: %zu records (%zu EXPIREs), %zu with changes, 8 entities x 61 interleavings\n",
                  records, expires, changes_total);
    assert_true(expires > 20);
    for (size_t i = 0; i < PX_SRC__COUNT * LOG_MAX; i++) {
        px_buf_term(&ref.per_record[i]);
        px_buf_term(&run.per_record[i]);
    }
    free(ref.per_record);
    free(run.per_record);
    px_buf_term(&da);
    px_buf_term(&db);
    for (int t = 0; t < PX_SRC__COUNT; t++) free(l.ev[t]);
    key_init(&K, "1");
}

/* ---- property 2: a brute-force model of presence and locks ------------------------ */

typedef struct {
    bool used;
    char tab[8], user[8];
    int mode, status, dirty;
    char field[8];
    int64_t since, seen;
} mtab_t;

typedef struct {
    bool used;
    char field[8], tab[8], user[8];
    int64_t token, refreshed;
} mlock_t;

typedef struct {
    mtab_t tabs[16];
    mlock_t locks[16];
    int64_t pres_ts;
} model_t;

/* The model's answer: the change type the record should yield, or -1. */
static int model_apply(model_t *m, const px_fold_conf_t *c, const px_event_t *ev, int64_t off) {
    if (ev->kind == PX_KIND_PRESENCE) {
        if (ev->ts_ms > m->pres_ts) m->pres_ts = ev->ts_ms;
        mtab_t *t = NULL;
        for (int i = 0; i < 16; i++)
            if (m->tabs[i].used && !strcmp(m->tabs[i].tab, ev->tab_id)) t = &m->tabs[i];
        if (t && strcmp(t->user, ev->user_id)) return -1;
        if (ev->type == PX_PRES_UNSUB) {
            if (!t) return -1;
            t->used = false;
            return PX_CH_LEFT;
        }
        if (ev->type == PX_PRES_EXPIRE) {
            if (!t || t->seen + c->presence_ttl_ms > ev->expires_at_ms) return -1;
            t->used = false;
            return PX_CH_TIMED_OUT;
        }
        if (!t) {
            for (int i = 0; i < 16 && !t; i++)
                if (!m->tabs[i].used) t = &m->tabs[i];
            if (!t) { /* the model holds 16 tabs; the generator stays below */
                fail();
                return -1;
            }
            memset(t, 0, sizeof *t);
            t->used = true;
            strcpy(t->tab, ev->tab_id);
            strcpy(t->user, ev->user_id);
            t->mode = ev->mode, t->status = ev->status, t->dirty = ev->dirty;
            strcpy(t->field, ev->field);
            t->since = t->seen = ev->ts_ms;
            return PX_CH_JOINED;
        }
        if (ev->ts_ms > t->seen) t->seen = ev->ts_ms;
        if (t->mode == (int)ev->mode && t->status == (int)ev->status && t->dirty == (int)ev->dirty &&
            !strcmp(t->field, ev->field))
            return -1;
        t->mode = ev->mode, t->status = ev->status, t->dirty = ev->dirty;
        strcpy(t->field, ev->field);
        return PX_CH_UPDATED;
    }
    mlock_t *l = NULL;
    for (int i = 0; i < 16; i++)
        if (m->locks[i].used && !strcmp(m->locks[i].field, ev->field)) l = &m->locks[i];
    bool mine = l && !strcmp(l->tab, ev->tab_id) && !strcmp(l->user, ev->user_id);
    switch (ev->type) {
    case PX_LOCK_LOCK:
        if (!l) {
            for (int i = 0; i < 16 && !l; i++)
                if (!m->locks[i].used) l = &m->locks[i];
            l->used = true;
            strcpy(l->field, ev->field);
            strcpy(l->tab, ev->tab_id);
            strcpy(l->user, ev->user_id);
            l->token = off;
            l->refreshed = ev->ts_ms;
            return PX_CH_LOCK_GRANTED;
        }
        if (!mine) return PX_CH_LOCK_DENIED;
        if (ev->ts_ms > l->refreshed) l->refreshed = ev->ts_ms;
        return PX_CH_LOCK_GRANTED;
    case PX_LOCK_UNLOCK:
        if (!l) return -1;
        if (!mine) return PX_CH_LOCK_DENIED;
        l->used = false;
        return PX_CH_LOCK_RELEASED;
    default:
        if (!mine || l->refreshed + c->lock_ttl_ms > ev->expires_at_ms) return -1;
        l->used = false;
        return PX_CH_LOCK_EXPIRED;
    }
}

static void model_compare(const model_t *m, const px_entity_t *e, const px_fold_conf_t *c, size_t step) {
    size_t nt = 0, nl = 0;
    for (int i = 0; i < 16; i++) {
        const mtab_t *t = &m->tabs[i];
        if (!t->used) continue;
        nt++;
        const px_fold_tab_t *f = tab_get(e, t->tab);
        if (!f) fail_msg("step %zu: tab %s missing", step, t->tab);
        if (strcmp(px_fold_tab_user_id(f), t->user) || f->mode != t->mode || f->status != t->status ||
            f->dirty != t->dirty || strcmp(px_fold_tab_field(f), t->field) || f->since_ms != t->since ||
            f->last_seen_ms != t->seen)
            fail_msg("step %zu: tab %s differs", step, t->tab);
    }
    for (int i = 0; i < 16; i++) {
        const mlock_t *l = &m->locks[i];
        if (!l->used) continue;
        nl++;
        const px_fold_lock_t *f = lock_get(e, l->field);
        if (!f) fail_msg("step %zu: lock %s missing", step, l->field);
        if (strcmp(px_fold_lock_tab_id(f), l->tab) || strcmp(px_fold_lock_user_id(f), l->user) ||
            f->token != l->token ||
            f->refreshed_ms != l->refreshed)
            fail_msg("step %zu: lock %s differs", step, l->field);
        /* the derived deadline, computed the long way */
        int64_t base = l->refreshed;
        for (int j = 0; j < 16; j++)
            if (m->tabs[j].used && !strcmp(m->tabs[j].tab, l->tab) && !strcmp(m->tabs[j].user, l->user) &&
                m->tabs[j].seen > base)
                base = m->tabs[j].seen;
        assert_int_equal(px_fold_lock_deadline(e, c, f), base + c->lock_ttl_ms);
    }
    if (nt != e->n_tabs || nl != e->n_locks) fail_msg("step %zu: counts differ", step);
    assert_int_equal(m->pres_ts, e->pres_ts_ms);
    for (size_t i = 1; i < e->n_tabs; i++)
        assert_true(strcmp(px_fold_tab_id(&e->tabs[i - 1]), px_fold_tab_id(&e->tabs[i])) < 0);
    for (size_t i = 1; i < e->n_locks; i++)
        assert_true(strcmp(px_fold_lock_field(&e->locks[i - 1]), px_fold_lock_field(&e->locks[i])) < 0);
}

static void test_prop_model(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    rng_t g = {777};
    px_entity_t e;
    model_t *m = calloc(1, sizeof *m);
    px_entity_init(&e, &K);
    int64_t now = 1700000000000LL;
    size_t steps = 20000, counted[PX_CH__COUNT] = {0};
    rec_t r;
    for (size_t s = 0; s < steps; s++) {
        now += rng_below(&g, 8000);
        px_event_t ev = random_record(&g, now);
        if (ev.kind == PX_KIND_LIFECYCLE || rng_below(&g, 6) == 0) { /* an EXPIRE with a deadline near the item's */
            static const char *const tabs[] = {"t1", "t2", "t3", "t4", "t5"};
            static const char *const users[] = {"u1", "u1", "u2", "u3", "u3"};
            uint32_t ti = rng_below(&g, 5);
            int64_t deadline = now - (int64_t)rng_below(&g, 200000);
            if (rng_below(&g, 2)) {
                ev = pres(PX_PRES_EXPIRE, tabs[ti], users[ti], now);
            } else {
                ev = lockev(PX_LOCK_EXPIRE, (const char *[]){"a", "b", "c", "d"}[rng_below(&g, 4)], tabs[ti],
                            users[ti], now);
            }
            ev.expires_at_ms = deadline;
        }
        int want = model_apply(m, &c, &ev, (int64_t)s);
        app_ok(&e, &c, ev, (int64_t)s, &r);
        if (want < 0) {
            if (r.n) fail_msg("step %zu: model: no change, fold: %s", s, px_event_type_name(PX_KIND_CHANGE, r.ev[0].type));
        } else {
            if (r.n != 1 || r.ev[0].type != want)
                fail_msg("step %zu: model %s, fold %zu changes", s, px_event_type_name(PX_KIND_CHANGE, want), r.n);
            counted[want]++;
        }
        check_changes(&r);
        model_compare(m, &e, &c, s);
    }
    for (int t = PX_CH_JOINED; t <= PX_CH_LOCK_EXPIRED; t++)
        if (counted[t] < 20) fail_msg("model test saw only %zu %s", counted[t], px_event_type_name(PX_KIND_CHANGE, t));
    print_message("model: %zu steps, %zu joined %zu timed out %zu granted %zu expired\n", steps, counted[PX_CH_JOINED],
                  counted[PX_CH_TIMED_OUT], counted[PX_CH_LOCK_GRANTED], counted[PX_CH_LOCK_EXPIRED]);
    free(m);
    px_entity_term(&e);
}

/* ---- property 3: caps hold, refusals change nothing, nothing crashes ------------------- */

static void random_string(rng_t *g, char *dst, size_t max) {
    static const char alpha[] = "ab\"\\\n\x01xy";
    size_t n = rng_below(g, 4) == 0 ? max : rng_below(g, 4);
    for (size_t i = 0; i < n; i++) dst[i] = alpha[rng_below(g, sizeof alpha - 1)];
    if (n == 0 && max) dst[n++] = 'z';
    dst[n] = '\0';
}

static int64_t random_time(rng_t *g) {
    switch (rng_below(g, 6)) {
    case 0: return 1;
    case 1: return INT64_MAX - (int64_t)rng_below(g, 3);
    default: return 1000 + (int64_t)rng_below(g, 400000);
    }
}

static void test_prop_caps_and_hostile(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    c.max_tabs = 4;
    c.max_locks = 3;
    c.max_open_writes = 3;
    rng_t g = {99};
    px_entity_t e, before;
    px_entity_init(&e, &K);
    px_entity_init(&before, &K);
    px_buf_t out;
    px_buf_init(&out, 1 << 20);
    size_t refused = 0, steps = 30000;
    rec_t r;
    due_t d;
    px_viewer_t vw[8];
    px_lock_view_t lv[8];
    px_presence_view_t v;
    for (size_t s = 0; s < steps; s++) {
        px_event_t ev;
        px_kind_t kind = (px_kind_t)rng_below(&g, 3);
        px_event_init(&ev, kind);
        ev.type = (int)rng_below(&g, (uint32_t)px_event_type_count(kind));
        ev.key = K;
        ev.ts_ms = random_time(&g);
        char pool[8][4] = {"a", "b", "c", "d", "e", "f", "g", ""};
        strcpy(ev.tab_id, pool[rng_below(&g, 7)]);
        strcpy(ev.user_id, pool[rng_below(&g, 3)]);
        strcpy(ev.field, pool[rng_below(&g, 6)]);
        strcpy(ev.write_id, pool[rng_below(&g, 8)]);
        random_string(&g, ev.user_name, rng_below(&g, 2) ? PX_NAME_MAX : 3);
        random_string(&g, ev.busy_by, PX_NAME_MAX);
        random_string(&g, ev.cursor, PX_NAME_MAX);
        ev.mode = (px_mode_t)rng_below(&g, 2);
        ev.status = (px_status_t)rng_below(&g, 2);
        ev.dirty = rng_below(&g, 2);
        if (rng_below(&g, 2)) ev.expires_at_ms = random_time(&g);
        if (rng_below(&g, 2)) ev.version = rng_below(&g, 2) ? INT64_MAX : (int64_t)rng_below(&g, 9);
        char err[256];
        if (px_event_validate(&ev, err, sizeof err)) continue; /* the fold only sees valid records */
        px_src_t src = {(px_src_topic_t)rng_below(&g, PX_SRC__COUNT), (int32_t)rng_below(&g, 4),
                        rng_below(&g, 10) == 0 ? -1 : (int64_t)s};
        if (rng_below(&g, 4)) src.topic = topic_of(&ev); /* mostly the right topic */
        assert_int_equal(px_entity_copy(&before, &e), 0);
        r.n = 0;
        int rc = px_fold_apply(&e, &c, &ev, &src, rec_emit, &r);
        if (rc) {
            assert_int_equal(rc, PX_EINVAL);
            assert_int_equal(r.n, 0);
            assert_true(px_entity_equal(&before, &e));
            refused++;
        } else {
            check_changes(&r);
        }
        assert_true(e.n_tabs <= c.max_tabs && e.n_locks <= c.max_locks && e.n_writes <= c.max_open_writes);
        assert_true(e.n_gone <= PX_FOLD_GONE_MAX && e.n_done <= PX_FOLD_DONE_MAX);
        assert_true(e.cap_tabs <= c.max_tabs && e.cap_locks <= c.max_locks && e.cap_writes <= c.max_open_writes);
        if (s % 7 == 0) {
            int64_t now = random_time(&g);
            due(&e, &c, now, &d);
            (void)px_fold_next_deadline(&e, &c);
            assert_int_equal(px_fold_view(&e, &c, now, vw, 8, lv, 8, &v), 0);
            px_buf_reset(&out);
            assert_int_equal(px_entity_dump(&e, &out), 0);
            /* the dump is JSON the protocol side can carry */
            assert_true(out.len > 2 && out.data[0] == '{' && out.data[out.len - 1] == '}');
        }
    }
    print_message("hostile: %zu steps, %zu refused\n", steps, refused);
    assert_true(refused > 100);
    px_buf_term(&out);
    px_entity_term(&before);
    px_entity_term(&e);
}

/* The struct an idle entity costs, for the record (an idle entity holds no
 * arrays), and the packed items: two cache lines a tab or lock, one a write. */
static void test_sizes(void **state) {
    print_message("sizeof px_entity_t %zu, tab %zu, lock %zu, write %zu\n", sizeof(px_entity_t),
                  sizeof(px_fold_tab_t), sizeof(px_fold_lock_t), sizeof(px_fold_write_t));
    assert_true(sizeof(px_entity_t) < 512);
    assert_true(sizeof(px_fold_tab_t) <= 128);
    assert_true(sizeof(px_fold_lock_t) <= 128);
    assert_true(sizeof(px_fold_write_t) <= 64);
}

/* A string of n copies of ch (n < sizeof buf). */
static const char *longstr(char *buf, char ch, size_t n) {
    memset(buf, ch, n);
    buf[n] = '\0';
    return buf;
}

/* Strings that do not fit an item's in[] go to a block the item owns: the
 * same state, changes, copy and equality as short ones, through updates
 * that move them between in[] and the heap, removals and copies (ASan and
 * valgrind check the ownership). */
static void test_long_strings(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e, copy;
    rec_t r;
    char tab[PX_ID_MAX + 1], user[PX_ID_MAX + 1], name[PX_NAME_MAX + 1], big[PX_NAME_MAX + 1];
    px_entity_init(&e, &K);
    px_entity_init(&copy, &K);
    longstr(tab, 't', PX_ID_MAX);
    longstr(user, 'u', PX_ID_MAX);
    /* a tab with every string at its limit: on the heap */
    px_event_t s = pres(PX_PRES_SUB, tab, user, 10);
    strcpy(s.user_name, longstr(name, 'n', PX_NAME_MAX));
    strcpy(s.cursor, longstr(big, 'c', PX_NAME_MAX));
    strcpy(s.field, "f");
    app_ok(&e, &c, s, 0, &r);
    expect_types(&r, 1, PX_CH_JOINED);
    assert_string_equal(r.ev[0].user_name, name);
    assert_non_null(e.tabs[0].heap);
    /* a short tab before it: the long one moves (memmove) with its block */
    app_ok(&e, &c, pres(PX_PRES_SUB, "a", "u1", 11), 1, &r);
    const px_fold_tab_t *t = tab_get(&e, tab);
    assert_non_null(t);
    assert_null(tab_get(&e, "a")->heap);
    assert_string_equal(px_fold_tab_user_id(t), user);
    assert_string_equal(px_fold_tab_cursor(t), big);
    /* an update of the long tab: its block is replaced (the ids keep it on the heap) */
    px_event_t hb = s;
    hb.type = PX_PRES_HB;
    hb.ts_ms = 12;
    strcpy(hb.cursor, "1:2");
    app_ok(&e, &c, hb, 2, &r);
    expect_types(&r, 1, PX_CH_UPDATED);
    t = tab_get(&e, tab);
    assert_string_equal(px_fold_tab_cursor(t), "1:2");
    assert_string_equal(px_fold_tab_user_name(t), name);
    assert_string_equal(px_fold_tab_field(t), "f");
    /* a short tab's update that no longer fits in[], then fits again */
    px_event_t a = pres(PX_PRES_HB, "a", "u1", 13);
    strcpy(a.cursor, big);
    app_ok(&e, &c, a, 3, &r);
    expect_types(&r, 1, PX_CH_UPDATED);
    assert_non_null(tab_get(&e, "a")->heap);
    assert_string_equal(px_fold_tab_cursor(tab_get(&e, "a")), big);
    a.cursor[0] = '\0';
    a.ts_ms = 14;
    app_ok(&e, &c, a, 4, &r);
    assert_null(tab_get(&e, "a")->heap);
    assert_string_equal(px_fold_tab_cursor(tab_get(&e, "a")), "");
    assert_string_equal(px_fold_tab_id(tab_get(&e, "a")), "a");
    /* a lock held by the long tab, renamed by a re-LOCK */
    px_event_t l = lockev(PX_LOCK_LOCK, tab, tab, user, 15);
    strcpy(l.user_name, name);
    app_ok(&e, &c, l, 5, &r);
    expect_types(&r, 1, PX_CH_LOCK_GRANTED);
    assert_string_equal(r.ev[0].user_name, name);
    l.user_name[1] = '\0';
    l.ts_ms = 16;
    app_ok(&e, &c, l, 6, &r);
    assert_string_equal(px_fold_lock_user_name(lock_get(&e, tab)), "n");
    assert_string_equal(px_fold_lock_tab_id(lock_get(&e, tab)), tab);
    assert_int_equal(lock_get(&e, tab)->token, 5);
    /* an open write with a long id and writer */
    px_event_t m = lcev(PX_LC_MUTATING, user, 17, PX_NONE);
    strcpy(m.busy_by, big);
    app_ok(&e, &c, m, 7, &r);
    assert_non_null(e.writes[0].heap);
    assert_string_equal(px_fold_write_id(&e.writes[0]), user);
    const char *bb = NULL;
    assert_true(px_fold_stale(&e, &c, 18, &bb));
    assert_string_equal(bb, big);
    /* copies own their blocks */
    assert_int_equal(px_entity_copy(&copy, &e), 0);
    assert_true(px_entity_equal(&copy, &e));
    assert_ptr_not_equal(copy.tabs[1].heap, e.tabs[1].heap);
    px_buf_t d1, d2;
    px_buf_init(&d1, 1 << 16);
    px_buf_init(&d2, 1 << 16);
    assert_int_equal(px_entity_dump(&e, &d1), 0);
    assert_int_equal(px_entity_dump(&copy, &d2), 0);
    assert_string_equal(d1.data, d2.data);
    /* removals free the blocks: the write closed by its MUTATED, the lock released, the tab left */
    app_ok(&e, &c, lcev(PX_LC_MUTATED, user, 19, PX_NONE), 0, &r);
    assert_int_equal(e.n_writes, 0);
    px_event_t u = lockev(PX_LOCK_UNLOCK, tab, tab, user, 20);
    app_ok(&e, &c, u, 8, &r);
    expect_types(&r, 1, PX_CH_LOCK_RELEASED);
    assert_string_equal(r.ev[0].tab_id, tab);
    px_event_t x = pres(PX_PRES_UNSUB, tab, user, 21);
    app_ok(&e, &c, x, 9, &r);
    expect_types(&r, 1, PX_CH_LEFT);
    assert_string_equal(r.ev[0].user_name, name);
    assert_int_equal(e.n_tabs, 1);
    /* the copy is untouched by all that */
    assert_int_equal(copy.n_tabs, 2);
    assert_string_equal(px_fold_tab_cursor(&copy.tabs[1]), "1:2");
    /* a lifecycle EXPIRE forgets a long open write in the copy */
    px_event_t ex = lcev(PX_LC_EXPIRE, user, 400000, PX_NONE);
    ex.expires_at_ms = 400000;
    app_ok(&copy, &c, ex, 1, &r);
    expect_types(&r, 1, PX_CH_STALE_CLEARED);
    assert_int_equal(copy.n_writes, 0);
    px_buf_term(&d1);
    px_buf_term(&d2);
    px_entity_term(&copy);
    px_entity_term(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_long_strings),
        cmocka_unit_test(test_join_update_leave),
        cmocka_unit_test(test_hb_joins_unknown_tab),
        cmocka_unit_test(test_tab_ownership),
        cmocka_unit_test(test_presence_expire),
        cmocka_unit_test(test_lock_grant_deny_release),
        cmocka_unit_test(test_lock_expire),
        cmocka_unit_test(test_lock_deadline_holder_heartbeats),
        cmocka_unit_test(test_lock_holder_left),
        cmocka_unit_test(test_lifecycle_pair_by_write_id),
        cmocka_unit_test(test_lifecycle_pair_by_ts),
        cmocka_unit_test(test_version_rules),
        cmocka_unit_test(test_lifecycle_expire),
        cmocka_unit_test(test_wrong_topic_and_key),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_due_marks_and_refresh),
        cmocka_unit_test(test_view),
        cmocka_unit_test(test_dump_copy),
        cmocka_unit_test(test_extreme_times),
        cmocka_unit_test(test_prop_interleaving),
        cmocka_unit_test(test_prop_model),
        cmocka_unit_test(test_prop_caps_and_hostile),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
