/*
 * test_store.c - the state blob codec of core/px_store.h, without Redis
 * (tests/integration/test_store_redis.c runs the script against a real
 * server): round trips of thousands of states produced by random fold runs
 * (hostile strings included) and of an entity at every cap; the watermark
 * order; the number writers. A hand-written blob (canonical bytes, hostile
 * table, prefixes, mutations) is in test_store_blob.c, the EVALSHA
 * arguments and the view codec in test_store_cmd.c. The property tests run
 * a fraction of their rounds under valgrind (about 30x slower than native),
 * which checks memory, not coverage; the ASan build runs them all.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "px_err.h"
#include "px_store.h"
#include "px_view.h"
#include "px_testlib.h"
#include "store_helpers.h"

/* A valid UTF-8 string of up to max bytes mixing what JSON must escape,
 * multi-byte characters and U+2028 (the writer escapes it). */
static void nasty_string(rng_t *g, char *dst, size_t max) {
    static const char *const parts[] = {"a", "\"", "\\", "\n", "\x01", "\x7f", "\xc3\xa9", "\xe2\x80\xa8",
                                        "\xf0\x9f\x98\x80", "/", " "};
    size_t n = 0, want = rng_below(g, 4) == 0 ? max : rng_below(g, 12);
    for (;;) {
        const char *p = parts[rng_below(g, sizeof parts / sizeof parts[0])];
        size_t l = strlen(p);
        if (n + l > want) break;
        memcpy(dst + n, p, l);
        n += l;
    }
    dst[n] = '\0';
}

/* A random input record at time now (test_fold_prop.c's mix, wider id pools and
 * hostile strings). */
static px_event_t random_record(rng_t *g, int64_t now) {
    char tab[16], user[16], field[16], wid[16] = "";
    int64_t ts = now - (int64_t)rng_below(g, 3000);
    uint32_t k = rng_below(g, 100), ti = rng_below(g, 40);
    snprintf(tab, sizeof tab, "t%u", ti);
    snprintf(user, sizeof user, "u%u", rng_below(g, 20) == 0 ? 99 : ti / 3);
    snprintf(field, sizeof field, "f%u", rng_below(g, 12));
    px_event_t ev;
    if (k < 35) {
        static const int types[] = {PX_PRES_SUB, PX_PRES_HB, PX_PRES_HB, PX_PRES_HB, PX_PRES_UNSUB};
        ev = pres(types[rng_below(g, 5)], tab, user, ts);
        ev.mode = (px_mode_t)rng_below(g, 2);
        ev.dirty = rng_below(g, 2);
        ev.status = (px_status_t)rng_below(g, 2);
        if (rng_below(g, 2)) snprintf(ev.field, sizeof ev.field, "%s", field);
        if (rng_below(g, 3) == 0) nasty_string(g, ev.cursor, PX_NAME_MAX);
        if (rng_below(g, 3) == 0) nasty_string(g, ev.user_name, PX_NAME_MAX);
        return ev;
    }
    if (k < 55) {
        ev = lockev(rng_below(g, 4) ? PX_LOCK_LOCK : PX_LOCK_UNLOCK, field, tab, user, ts);
        if (rng_below(g, 3) == 0) nasty_string(g, ev.user_name, PX_NAME_MAX);
        return ev;
    }
    if (rng_below(g, 3)) snprintf(wid, sizeof wid, "w%u", rng_below(g, 1000));
    if (k < 75) {
        ev = lcev(PX_LC_MUTATING, wid, ts - (int64_t)rng_below(g, 20000), PX_NONE);
        if (rng_below(g, 3) == 0) nasty_string(g, ev.busy_by, PX_NAME_MAX);
        return ev;
    }
    return lcev(PX_LC_MUTATED, wid, ts, rng_below(g, 3) ? PX_NONE : (int64_t)rng_below(g, 30));
}

typedef struct {
    px_event_t ev[512];
    size_t n;
} due_t;

static void due_emit(void *arg, const px_event_t *ev) {
    due_t *d = arg;
    assert_true(d->n < 512);
    d->ev[d->n++] = *ev;
}

/* ---- round trips ------------------------------------------------------------------------ */

/* encode -> decode -> equal, and re-encoding gives the same bytes. */
static void check_roundtrip(const px_entity_t *e, const px_store_wm_t *wm, px_buf_t *a, px_buf_t *b) {
    char err[256] = "";
    px_entity_t d;
    px_store_wm_t w;
    px_buf_reset(a);
    px_buf_reset(b);
    assert_int_equal(px_store_encode(e, wm, a), 0);
    px_entity_init(&d, &e->key);
    int rc = px_store_decode(a->data, a->len, &d, &w, err, sizeof err);
    if (rc) fail_msg("decode: %s\n%s", err, a->data);
    assert_true(px_entity_equal(e, &d));
    assert_memory_equal(w.off, wm->off, sizeof w.off);
    assert_int_equal(px_store_encode(&d, &w, b), 0);
    assert_int_equal(a->len, b->len);
    assert_memory_equal(a->data, b->data, a->len);
    px_entity_term(&d);
}

static void test_roundtrip_random(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_buf_t a, b;
    px_buf_init(&a, PX_STORE_BLOB_MAX);
    px_buf_init(&b, PX_STORE_BLOB_MAX);
    size_t states = 0, max_tabs = 0, max_locks = 0, max_gone = 0, max_done = 0;
    uint64_t seeds = RUNNING_ON_VALGRIND ? 1 : 12;
    for (uint64_t seed = 1; seed <= seeds; seed++) {
        rng_t g = {seed};
        px_entity_t e;
        px_entity_init(&e, &K);
        px_store_wm_t wm;
        px_store_wm_init(&wm);
        int64_t now = 1700000000000LL;
        for (size_t step = 0; step < 500; step++) {
            now += rng_below(&g, 4000);
            if (rng_below(&g, 10) == 0) {
                static due_t d; /* 1 MiB: not on the stack, not zeroed per step */
                d.n = 0;
                px_fold_due(&e, &c, now, due_emit, &d);
                for (size_t j = 0; j < d.n; j++) {
                    px_src_topic_t t = topic_of(&d.ev[j]);
                    px_src_t src = {t, 0, ++wm.off[t]};
                    assert_int_equal(px_fold_apply(&e, &c, &d.ev[j], &src, NULL, NULL), 0);
                }
            } else {
                px_event_t ev = random_record(&g, now);
                px_src_topic_t t = topic_of(&ev);
                px_src_t src = {t, 0, ++wm.off[t]};
                int rc = px_fold_apply(&e, &c, &ev, &src, NULL, NULL);
                assert_true(rc == 0 || rc == PX_EINVAL);
            }
            check_roundtrip(&e, &wm, &a, &b);
            states++;
            if (e.n_tabs > max_tabs) max_tabs = e.n_tabs;
            if (e.n_locks > max_locks) max_locks = e.n_locks;
            if (e.n_gone > max_gone) max_gone = e.n_gone;
            if (e.n_done > max_done) max_done = e.n_done;
        }
        px_entity_term(&e);
    }
    print_message("round trips: %zu states; max tabs %zu locks %zu gone %zu done %zu\n", states, max_tabs,
                  max_locks, max_gone, max_done);
    assert_true(max_done == PX_FOLD_DONE_MAX); /* the ring wrapped */
    px_buf_term(&a);
    px_buf_term(&b);
}

/* An entity at every cap with every string at its bound, in the worst
 * escaping: still round trips, fits PX_STORE_BLOB_MAX, and a write command
 * builds. */
static void fill_at_caps(px_entity_t *e, px_store_wm_t *wm) {
    px_fold_conf_t c = px_fold_conf_default();
    char name[PX_NAME_MAX + 1], id[PX_ID_MAX + 1];
    memset(name, '\x01', PX_NAME_MAX);
    name[PX_NAME_MAX] = '\0';
    int64_t ts = 1700000000000LL, off = 0;
    px_entity_init(e, &K);
    px_store_wm_init(wm);
    for (int i = 0; i < PX_FOLD_TABS_MAX; i++) {
        memset(id, '"', PX_ID_MAX);
        id[PX_ID_MAX] = '\0';
        snprintf(id, 5, "%04d", i);
        id[4] = '"';
        px_event_t ev = pres(PX_PRES_SUB, id, id, ts);
        memcpy(ev.user_name, name, sizeof name);
        memcpy(ev.cursor, name, sizeof name);
        memcpy(ev.field, id, sizeof id);
        px_src_t src = {PX_SRC_HEARTBEATS, 0, off++};
        assert_int_equal(px_fold_apply(e, &c, &ev, &src, NULL, NULL), 0);
        if (i < PX_FOLD_LOCKS_MAX) {
            px_event_t l = lockev(PX_LOCK_LOCK, id, id, id, ts);
            memcpy(l.user_name, name, sizeof name);
            px_src_t ls = {PX_SRC_LOCKS, 0, off++};
            assert_int_equal(px_fold_apply(e, &c, &l, &ls, NULL, NULL), 0);
        }
    }
    for (int i = 0; i < 100 + PX_FOLD_WRITES_MAX; i++) {
        memset(id, '\\', PX_ID_MAX);
        snprintf(id, 5, "%04d", i);
        id[4] = '\\';
        px_event_t m = lcev(PX_LC_MUTATING, id, ts + i, PX_NONE);
        memcpy(m.busy_by, name, sizeof name);
        px_src_t ms = {PX_SRC_MUTATING, 0, off++};
        assert_int_equal(px_fold_apply(e, &c, &m, &ms, NULL, NULL), 0);
        if (i < 100) {
            px_event_t d = lcev(PX_LC_MUTATED, id, ts + i, PX_NONE);
            px_src_t ds = {PX_SRC_MUTATED, 0, off++};
            assert_int_equal(px_fold_apply(e, &c, &d, &ds, NULL, NULL), 0);
        }
    }
    assert_int_equal(e->n_tabs, PX_FOLD_TABS_MAX);
    assert_int_equal(e->n_locks, PX_FOLD_LOCKS_MAX);
    assert_int_equal(e->n_writes, PX_FOLD_WRITES_MAX);
    assert_int_equal(e->n_gone, PX_FOLD_GONE_MAX);
    assert_int_equal(e->n_done, PX_FOLD_DONE_MAX);
    assert_true(e->done_head != 0);
    for (int i = 0; i < PX_SRC__COUNT; i++) wm->off[i] = INT64_MAX - i;
}

static void test_roundtrip_at_caps(void **state) {
    px_entity_t e;
    px_store_wm_t wm;
    fill_at_caps(&e, &wm);
    px_buf_t a, b;
    px_buf_init(&a, PX_STORE_BLOB_MAX);
    px_buf_init(&b, PX_STORE_BLOB_MAX);
    check_roundtrip(&e, &wm, &a, &b);
    print_message("blob at caps: %zu bytes\n", a.len);
    px_store_cmd_t cmd;
    px_store_cmd_init(&cmd);
    px_fold_conf_t c = px_fold_conf_default();
    assert_int_equal(px_store_write_cmd(&cmd, "0123456789012345678901234567890123456789", &e, &c, &wm,
                                        1700000000000LL, "{}"),
                     0);
    assert_int_equal(cmd.argc, 12);
    print_message("command at caps: %zu bytes, view %zu bytes\n", cmd.buf.len, cmd.argvlen[9]);
    /* the largest view reads back whole, within the readers' limit */
    assert_true(cmd.argvlen[9] > 0 && cmd.argvlen[9] < PX_VIEW_MAX_BYTES);
    static px_view_tab_t vt[PX_FOLD_TABS_MAX];
    static px_view_lock_t vl[PX_FOLD_LOCKS_MAX];
    px_view_t v = {.tabs = vt, .max_tabs = PX_FOLD_TABS_MAX, .locks = vl, .max_locks = PX_FOLD_LOCKS_MAX};
    assert_int_equal(px_view_decode(cmd.argv[9], cmd.argvlen[9], 1700000000000LL, &v), 0);
    assert_int_equal(v.n_dropped, 0);
    size_t live_tabs = 0, live_locks = 0;
    for (size_t i = 0; i < e.n_tabs; i++) live_tabs += px_fold_tab_deadline(&c, &e.tabs[i]) > 1700000000000LL;
    for (size_t i = 0; i < e.n_locks; i++) live_locks += px_fold_lock_deadline(&e, &c, &e.locks[i]) > 1700000000000LL;
    assert_int_equal(v.n_tabs, live_tabs);
    assert_int_equal(v.n_locks, live_locks);
    px_store_cmd_term(&cmd);
    /* a buffer capped below the blob: PX_ENOMEM, buffer unchanged */
    px_buf_t small;
    px_buf_init(&small, 1000);
    assert_int_equal(px_buf_puts(&small, "x"), 0);
    assert_int_equal(px_store_encode(&e, &wm, &small), PX_ENOMEM);
    assert_int_equal(small.len, 1);
    px_buf_term(&small);
    px_buf_term(&a);
    px_buf_term(&b);
    px_entity_term(&e);
}


/* ---- watermarks -------------------------------------------------------------------------- */

static void test_wm(void **state) {
    px_store_wm_t a, b;
    px_store_wm_init(&a);
    for (int i = 0; i < PX_SRC__COUNT; i++) assert_int_equal(a.off[i], -1);
    struct {
        int64_t a[PX_SRC__COUNT], b[PX_SRC__COUNT];
        bool dom;
    } rows[] = {
        {{-1, -1, -1, -1}, {-1, -1, -1, -1}, true},
        {{0, -1, -1, -1}, {-1, -1, -1, -1}, true},
        {{-1, -1, -1, -1}, {0, -1, -1, -1}, false},
        {{5, 3, 2, 1}, {5, 3, 2, 1}, true},
        {{6, 3, 2, 1}, {5, 3, 2, 1}, true},
        {{6, 3, 2, 0}, {5, 3, 2, 1}, false},
        {{5, 3, 2, 1}, {5, 3, 2, 2}, false},
        {{INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX}, {0, 0, 0, 0}, true},
        {{0, 0, 0, 0}, {INT64_MAX, 0, 0, 0}, false},
        {{10, -1, 10, 10}, {9, 0, 9, 9}, false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        memcpy(a.off, rows[i].a, sizeof a.off);
        memcpy(b.off, rows[i].b, sizeof b.off);
        if (px_store_wm_dominates(&a, &b) != rows[i].dom) fail_msg("row %zu", i);
    }
    char key[PX_KEY_MAX + 64];
    assert_true(px_store_state_key(&K, key, sizeof key) > 0);
    assert_string_equal(key, "presence:{acme:doc:1}:state");
    assert_int_equal(px_store_state_key(&K, key, 10), -1);
}


/* The printf-free number writers the encoders use, against printf. */
static void test_buf_numbers(void **state) {
    static const int64_t v[] = {0, 1, -1, 9, 10, -10, 1700000000000LL, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    px_buf_t b;
    px_buf_init(&b, 4096);
    char want[64];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        px_buf_reset(&b);
        assert_int_equal(px_buf_put_i64(&b, v[i]), 0);
        snprintf(want, sizeof want, "%" PRId64, v[i]);
        assert_string_equal(b.data, want);
        px_buf_reset(&b);
        assert_int_equal(px_buf_put_hex64(&b, (uint64_t)v[i]), 0);
        snprintf(want, sizeof want, "%016" PRIx64, (uint64_t)v[i]);
        assert_string_equal(b.data, want);
    }
    /* at the cap: refused, the buffer unchanged */
    px_buf_t small;
    px_buf_init(&small, 4);
    assert_int_equal(px_buf_put_i64(&small, 1234), 0);
    assert_int_equal(px_buf_put_i64(&small, 5), PX_ENOMEM);
    assert_int_equal(px_buf_put_hex64(&small, 5), PX_ENOMEM);
    assert_string_equal(small.data, "1234");
    px_buf_term(&small);
    px_buf_term(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wm),
        cmocka_unit_test(test_buf_numbers),
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_roundtrip_at_caps),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
