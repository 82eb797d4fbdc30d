/*
 * test_fold_rules.c - the fold (core/px_fold.h) against docs/fold.md:
 * refusals (wrong topic, wrong key), caps, px_fold_due and deadlines, the
 * view, dumps and copies, extreme times, the item sizes, and strings too
 * long for an item's in[].
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

/* The state test_long_strings carries through its phases. */
typedef struct {
    px_fold_conf_t c;
    px_entity_t e, copy;
    rec_t r;
    char tab[PX_ID_MAX + 1], user[PX_ID_MAX + 1], name[PX_NAME_MAX + 1], big[PX_NAME_MAX + 1];
} long_t;

/* Tabs with long strings: added, moved, updated; a short tab that leaves
 * in[] and comes back. */
static void long_tabs(long_t *lt) {
    const px_fold_conf_t *c = &lt->c;
    px_entity_t *e = &lt->e;
    rec_t *r = &lt->r;
    char *tab = lt->tab, *user = lt->user, *name = lt->name, *big = lt->big;
    /* a tab with every string at its limit: on the heap */
    px_event_t s = pres(PX_PRES_SUB, tab, user, 10);
    strcpy(s.user_name, longstr(name, 'n', PX_NAME_MAX));
    strcpy(s.cursor, longstr(big, 'c', PX_NAME_MAX));
    strcpy(s.field, "f");
    app_ok(e, c, s, 0, r);
    expect_types(r, 1, PX_CH_JOINED);
    assert_string_equal(r->ev[0].user_name, name);
    assert_non_null(e->tabs[0].heap);
    /* a short tab before it: the long one moves (memmove) with its block */
    app_ok(e, c, pres(PX_PRES_SUB, "a", "u1", 11), 1, r);
    const px_fold_tab_t *t = tab_get(e, tab);
    assert_non_null(t);
    assert_null(tab_get(e, "a")->heap);
    assert_string_equal(px_fold_tab_user_id(t), user);
    assert_string_equal(px_fold_tab_cursor(t), big);
    /* an update of the long tab: its block is replaced (the ids keep it on the heap) */
    px_event_t hb = s;
    hb.type = PX_PRES_HB;
    hb.ts_ms = 12;
    strcpy(hb.cursor, "1:2");
    app_ok(e, c, hb, 2, r);
    expect_types(r, 1, PX_CH_UPDATED);
    t = tab_get(e, tab);
    assert_string_equal(px_fold_tab_cursor(t), "1:2");
    assert_string_equal(px_fold_tab_user_name(t), name);
    assert_string_equal(px_fold_tab_field(t), "f");
    /* a short tab's update that no longer fits in[], then fits again */
    px_event_t a = pres(PX_PRES_HB, "a", "u1", 13);
    strcpy(a.cursor, big);
    app_ok(e, c, a, 3, r);
    expect_types(r, 1, PX_CH_UPDATED);
    assert_non_null(tab_get(e, "a")->heap);
    assert_string_equal(px_fold_tab_cursor(tab_get(e, "a")), big);
    a.cursor[0] = '\0';
    a.ts_ms = 14;
    app_ok(e, c, a, 4, r);
    assert_null(tab_get(e, "a")->heap);
    assert_string_equal(px_fold_tab_cursor(tab_get(e, "a")), "");
    assert_string_equal(px_fold_tab_id(tab_get(e, "a")), "a");
}

/* A lock held by the long tab, renamed; an open write with long strings. */
static void long_lock_write(long_t *lt) {
    const px_fold_conf_t *c = &lt->c;
    px_entity_t *e = &lt->e;
    rec_t *r = &lt->r;
    char *tab = lt->tab, *user = lt->user, *name = lt->name, *big = lt->big;
    /* a lock held by the long tab, renamed by a re-LOCK */
    px_event_t l = lockev(PX_LOCK_LOCK, tab, tab, user, 15);
    strcpy(l.user_name, name);
    app_ok(e, c, l, 5, r);
    expect_types(r, 1, PX_CH_LOCK_GRANTED);
    assert_string_equal(r->ev[0].user_name, name);
    l.user_name[1] = '\0';
    l.ts_ms = 16;
    app_ok(e, c, l, 6, r);
    assert_string_equal(px_fold_lock_user_name(lock_get(e, tab)), "n");
    assert_string_equal(px_fold_lock_tab_id(lock_get(e, tab)), tab);
    assert_int_equal(lock_get(e, tab)->token, 5);
    /* an open write with a long id and writer */
    px_event_t m = lcev(PX_LC_MUTATING, user, 17, PX_NONE);
    strcpy(m.busy_by, big);
    app_ok(e, c, m, 7, r);
    assert_non_null(e->writes[0].heap);
    assert_string_equal(px_fold_write_id(&e->writes[0]), user);
    const char *bb = NULL;
    assert_true(px_fold_stale(e, c, 18, &bb));
    assert_string_equal(bb, big);
}

/* Copies own their blocks; removals free them and leave the copy as it was. */
static void long_copies(long_t *lt) {
    const px_fold_conf_t *c = &lt->c;
    px_entity_t *e = &lt->e;
    rec_t *r = &lt->r;
    const char *tab = lt->tab, *user = lt->user, *name = lt->name;
    px_entity_t *copy = &lt->copy;
    /* copies own their blocks */
    assert_int_equal(px_entity_copy(copy, e), 0);
    assert_true(px_entity_equal(copy, e));
    assert_ptr_not_equal(copy->tabs[1].heap, e->tabs[1].heap);
    px_buf_t d1, d2;
    px_buf_init(&d1, 1 << 16);
    px_buf_init(&d2, 1 << 16);
    assert_int_equal(px_entity_dump(e, &d1), 0);
    assert_int_equal(px_entity_dump(copy, &d2), 0);
    assert_string_equal(d1.data, d2.data);
    /* removals free the blocks: the write closed by its MUTATED, the lock released, the tab left */
    app_ok(e, c, lcev(PX_LC_MUTATED, user, 19, PX_NONE), 0, r);
    assert_int_equal(e->n_writes, 0);
    px_event_t u = lockev(PX_LOCK_UNLOCK, tab, tab, user, 20);
    app_ok(e, c, u, 8, r);
    expect_types(r, 1, PX_CH_LOCK_RELEASED);
    assert_string_equal(r->ev[0].tab_id, tab);
    px_event_t x = pres(PX_PRES_UNSUB, tab, user, 21);
    app_ok(e, c, x, 9, r);
    expect_types(r, 1, PX_CH_LEFT);
    assert_string_equal(r->ev[0].user_name, name);
    assert_int_equal(e->n_tabs, 1);
    /* the copy is untouched by all that */
    assert_int_equal(copy->n_tabs, 2);
    assert_string_equal(px_fold_tab_cursor(&copy->tabs[1]), "1:2");
    /* a lifecycle EXPIRE forgets a long open write in the copy */
    px_event_t ex = lcev(PX_LC_EXPIRE, user, 400000, PX_NONE);
    ex.expires_at_ms = 400000;
    app_ok(copy, c, ex, 1, r);
    expect_types(r, 1, PX_CH_STALE_CLEARED);
    assert_int_equal(copy->n_writes, 0);
    px_buf_term(&d1);
    px_buf_term(&d2);
}

/* Strings that do not fit an item's in[] go to a block the item owns: the
 * same state, changes, copy and equality as short ones, through updates
 * that move them between in[] and the heap, removals and copies (ASan and
 * valgrind check the ownership). */
static void test_long_strings(void **state) {
    long_t x;
    x.c = px_fold_conf_default();
    px_entity_init(&x.e, &K);
    px_entity_init(&x.copy, &K);
    longstr(x.tab, 't', PX_ID_MAX);
    longstr(x.user, 'u', PX_ID_MAX);
    long_tabs(&x);
    long_lock_write(&x);
    long_copies(&x);
    px_entity_term(&x.copy);
    px_entity_term(&x.e);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_long_strings),
        cmocka_unit_test(test_wrong_topic_and_key),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_due_marks_and_refresh),
        cmocka_unit_test(test_view),
        cmocka_unit_test(test_dump_copy),
        cmocka_unit_test(test_extreme_times),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
