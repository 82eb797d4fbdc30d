/*
 * test_fold.c - the fold (core/px_fold.h) against docs/fold.md: one test
 * per transition of presence, locks and lifecycle. The refusals, caps,
 * deadlines, views, dumps and long strings are in test_fold_rules.c, the
 * seeded property tests in test_fold_prop.c.
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
#include "fold_helpers.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
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
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
