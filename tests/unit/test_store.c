/*
 * test_store.c - the state blob codec and the write command of
 * core/px_store.h, without Redis (tests/integration/test_store_redis.c runs
 * the script against a real server).
 *
 * Round trips of thousands of states produced by random fold runs (hostile
 * strings included) and of an entity at every cap; canonical bytes; a
 * hostile-input table; every prefix of a valid blob; seeded random
 * mutations; the watermark order; the EVALSHA arguments (layout, only live
 * items, deadlines from the fold, buffer reuse). The property tests run a
 * fraction of their rounds under valgrind (about 30x slower than native),
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
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "px_err.h"
#include "px_store.h"
#include "px_view.h"
#include "px_testlib.h"



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

/* A random input record at time now (test_fold.c's mix, wider id pools and
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

/* ---- a hand-written blob: canonical, hostile table, prefixes, mutations ------------ */

static const char BASE[] =
    "{\"fmt\":1,\"key\":\"acme:doc:1\",\"wm\":[5,-1,3,2],\"pres_ts\":2000,\"tabs\":["
    "{\"tab\":\"t1\",\"user\":\"u1\",\"name\":\"Ann\",\"mode\":\"edit\",\"dirty\":false,\"status\":\"online\","
    "\"field\":\"f\",\"cursor\":\"c\",\"since\":1000,\"last_seen\":2000},"
    "{\"tab\":\"t2\",\"user\":\"u2\",\"name\":\"B\xc3\xa9" "b \\\"\\n\",\"mode\":\"view\",\"dirty\":true,\"status\":\"away\","
    "\"field\":\"\",\"cursor\":\"\",\"since\":1500,\"last_seen\":1500}],"
    "\"locks\":[{\"field\":\"a\",\"tab\":\"t1\",\"user\":\"u1\",\"name\":\"Ann\",\"token\":7,\"refreshed\":1800}],"
    "\"writes\":[{\"write_id\":\"w1\",\"busy_by\":\"job\",\"ts\":1900}],"
    "\"gone\":[{\"ts\":1000,\"id\":\"00000000000000aa\"},{\"ts\":1200,\"id\":\"0000000000000001\"}],"
    "\"done\":[\"0123456789abcdef\",\"00000000000000aa\"],\"closed_up_to\":0,\"version\":3}";

static int decode_str(const char *s, size_t len, px_entity_t *e, char *err, size_t n) {
    px_store_wm_t wm;
    px_entity_init(e, &K);
    return px_store_decode(s, len, e, &wm, err, n);
}

static void test_canonical(void **state) {
    char err[256] = "";
    px_entity_t e;
    px_store_wm_t wm;
    px_entity_init(&e, &K);
    int rc = px_store_decode(BASE, strlen(BASE), &e, &wm, err, sizeof err);
    if (rc) fail_msg("base: %s", err);
    /* the base is canonical: the encoder writes the bytes back */
    px_buf_t out;
    px_buf_init(&out, 1 << 20);
    assert_int_equal(px_store_encode(&e, &wm, &out), 0);
    assert_string_equal(out.data, BASE);
    assert_int_equal(e.n_tabs, 2);
    assert_string_equal(px_fold_tab_user_name(&e.tabs[1]), "B\xc3\xa9" "b \"\n");
    assert_int_equal(e.locks[0].token, 7);
    assert_int_equal(e.done[1], 0xaa);
    assert_int_equal(wm.off[1], -1);
    /* another member order and whitespace: same state, canonical again on encode */
    const char *reordered =
        " {\"version\":3, \"closed_up_to\":0, \"done\":[\"0123456789abcdef\",\"00000000000000aa\"],"
        "\"gone\":[{\"id\":\"00000000000000aa\",\"ts\":1000},{\"ts\":1200,\"id\":\"0000000000000001\"}],"
        "\"writes\":[{\"ts\":1900,\"write_id\":\"w1\",\"busy_by\":\"job\"}],"
        "\"locks\":[{\"field\":\"a\",\"tab\":\"t1\",\"user\":\"u1\",\"name\":\"Ann\",\"token\":7,\"refreshed\":1800}],"
        "\"tabs\":[{\"tab\":\"t1\",\"user\":\"u1\",\"name\":\"Ann\",\"mode\":\"edit\",\"dirty\":false,"
        "\"status\":\"online\",\"field\":\"f\",\"cursor\":\"c\",\"since\":1000,\"last_seen\":2000},"
        "{\"tab\":\"t2\",\"user\":\"u2\",\"name\":\"B\xc3\xa9" "b \\\"\\n\",\"mode\":\"view\",\"dirty\":true,"
        "\"status\":\"away\",\"field\":\"\",\"cursor\":\"\",\"since\":1500,\"last_seen\":1500}],"
        "\"pres_ts\":2000,\"wm\":[5,-1,3,2],\"key\":\"acme:doc:1\",\"fmt\":1}\n";
    px_entity_t r;
    px_store_wm_t rwm;
    px_entity_init(&r, &K);
    rc = px_store_decode(reordered, strlen(reordered), &r, &rwm, err, sizeof err);
    if (rc) fail_msg("reordered: %s", err);
    assert_true(px_entity_equal(&e, &r));
    px_buf_reset(&out);
    assert_int_equal(px_store_encode(&r, &rwm, &out), 0);
    assert_string_equal(out.data, BASE);
    /* an entity initialised without a key takes the blob's */
    px_entity_t any;
    px_entity_init(&any, NULL);
    assert_int_equal(px_store_decode(BASE, strlen(BASE), &any, &rwm, err, sizeof err), 0);
    assert_true(px_key_equal(&any.key, &K));
    /* decoding replaces previous contents (no leak: valgrind) */
    assert_int_equal(px_store_decode(BASE, strlen(BASE), &any, &rwm, err, sizeof err), 0);
    px_entity_term(&any);
    px_entity_term(&r);
    px_entity_term(&e);
    px_buf_term(&out);
}

/* BASE with the first `find` replaced by `repl` (malloc'd). */
static char *subst(const char *find, const char *repl) {
    const char *p = strstr(BASE, find);
    if (!p) fail_msg("not in base: %s", find);
    size_t fl = strlen(find), rl = strlen(repl), bl = strlen(BASE);
    char *s = malloc(bl - fl + rl + 1);
    assert_non_null(s);
    memcpy(s, BASE, (size_t)(p - BASE));
    memcpy(s + (p - BASE), repl, rl);
    memcpy(s + (p - BASE) + rl, p + fl, bl - (size_t)(p - BASE) - fl + 1);
    return s;
}

/* BASE with the array member `name`'s contents replaced by n elements made
 * by fmt(i, i); fmt NULL: the array replaced by an object. */
static char *with_array(const char *name, const char *old_contents, size_t n, const char *fmt) {
    px_buf_t b;
    px_buf_init(&b, 1 << 22);
    for (size_t i = 0; fmt && i < n; i++) {
        if (i) px_buf_puts(&b, ",");
        px_buf_printf(&b, fmt, (unsigned)i, (unsigned)i);
    }
    char find[1024];
    snprintf(find, sizeof find, "\"%s\":[%s]", name, old_contents);
    px_buf_t r;
    px_buf_init(&r, 1 << 22);
    if (fmt) px_buf_printf(&r, "\"%s\":[%s]", name, b.data ? b.data : "");
    else px_buf_printf(&r, "\"%s\":{}", name);
    char *s = subst(find, r.data);
    px_buf_term(&b);
    px_buf_term(&r);
    return s;
}

static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_hostile_table(void **state) {
    static const char TABS_BODY[] =
        "{\"tab\":\"t1\",\"user\":\"u1\",\"name\":\"Ann\",\"mode\":\"edit\",\"dirty\":false,\"status\":\"online\","
        "\"field\":\"f\",\"cursor\":\"c\",\"since\":1000,\"last_seen\":2000},"
        "{\"tab\":\"t2\",\"user\":\"u2\",\"name\":\"B\xc3\xa9" "b \\\"\\n\",\"mode\":\"view\",\"dirty\":true,"
        "\"status\":\"away\",\"field\":\"\",\"cursor\":\"\",\"since\":1500,\"last_seen\":1500}";
#define LOCKS_BODY                                                                                 \
        "{\"field\":\"a\",\"tab\":\"t1\",\"user\":\"u1\",\"name\":\"Ann\",\"token\":7,\"refreshed\":1800}"
#define LOCKS_BODY_B "{\"field\":\"b\",\"tab\":\"t2\",\"user\":\"u2\",\"name\":\"\",\"token\":9,\"refreshed\":1}"
    static const char WRITES_BODY[] = "{\"write_id\":\"w1\",\"busy_by\":\"job\",\"ts\":1900}";
    static const char DONE_BODY[] = "\"0123456789abcdef\",\"00000000000000aa\"";
    char *long_name = repeat('x', PX_NAME_MAX + 1), *long_id = repeat('y', PX_ID_MAX + 1);
    char name_row[PX_NAME_MAX + 32], id_row[PX_ID_MAX + 32];
    snprintf(name_row, sizeof name_row, "\"name\":\"%s\"", long_name);
    snprintf(id_row, sizeof id_row, "\"tab\":\"%s\"", long_id);
    char *deep = malloc(20002);
    assert_non_null(deep);
    memset(deep, '[', 10000);
    memset(deep + 10000, ']', 10000);
    deep[20000] = '\0';
    char twice[sizeof BASE * 2];
    snprintf(twice, sizeof twice, "%s%s", BASE, BASE);
    char trailing[sizeof BASE + 2];
    snprintf(trailing, sizeof trailing, "%sx", BASE);

    struct {
        const char *what;
        char *blob; /* malloc'd unless lit */
        const char *lit;
    } rows[] = {
        {"empty input", NULL, ""},
        {"not JSON", NULL, "not json"},
        {"an array", NULL, "[]"},
        {"null", NULL, "null"},
        {"trailing garbage", NULL, trailing},
        {"two documents", NULL, twice},
        {"nesting bomb", NULL, deep},
        {"unknown format", subst("\"fmt\":1", "\"fmt\":2"), NULL},
        {"format as a string", subst("\"fmt\":1", "\"fmt\":\"1\""), NULL},
        {"missing key", subst("\"key\":\"acme:doc:1\",", ""), NULL},
        {"malformed key", subst("acme:doc:1", "acme:doc"), NULL},
        {"another entity's key", subst("acme:doc:1", "acme:doc:2"), NULL},
        {"wm with 3 components", subst("[5,-1,3,2]", "[5,-1,3]"), NULL},
        {"wm with 5 components", subst("[5,-1,3,2]", "[5,-1,3,2,1]"), NULL},
        {"wm below -1", subst("[5,-1,3,2]", "[5,-2,3,2]"), NULL},
        {"wm string component", subst("[5,-1,3,2]", "[\"5\",-1,3,2]"), NULL},
        {"wm real component", subst("[5,-1,3,2]", "[5.0,-1,3,2]"), NULL},
        {"huge number", subst("\"pres_ts\":2000", "\"pres_ts\":99999999999999999999"), NULL},
        {"negative pres_ts", subst("\"pres_ts\":2000", "\"pres_ts\":-1"), NULL},
        {"tabs not an array", with_array("tabs", TABS_BODY, 0, NULL), NULL},
        {"unsorted tabs", subst("\"tab\":\"t1\",\"user\":\"u1\"", "\"tab\":\"t3\",\"user\":\"u1\""), NULL},
        {"duplicate tab ids", subst("\"tab\":\"t2\"", "\"tab\":\"t1\""), NULL},
        {"empty tab id", subst("\"tab\":\"t1\"", "\"tab\":\"\""), NULL},
        {"user name over its bound", subst("\"name\":\"Ann\"", name_row), NULL},
        {"tab id over its bound", subst("\"tab\":\"t1\"", id_row), NULL},
        {"invalid UTF-8 byte", subst("\"Ann\"", "\"A\xff\""), NULL},
        {"raw UTF-16 surrogate", subst("\"Ann\"", "\"A\xed\xa0\x80\""), NULL},
        {"overlong UTF-8", subst("\"Ann\"", "\"A\xc0\xaf\""), NULL},
        {"escaped NUL", subst("\"Ann\"", "\"A\\u0000\""), NULL},
        {"lone surrogate escape", subst("\"Ann\"", "\"A\\ud800\""), NULL},
        {"unknown mode", subst("\"mode\":\"edit\"", "\"mode\":\"write\""), NULL},
        {"dirty as a number", subst("\"dirty\":false", "\"dirty\":0"), NULL},
        {"since 0", subst("\"since\":1000", "\"since\":0"), NULL},
        {"last_seen before since", subst("\"last_seen\":2000", "\"last_seen\":900"), NULL},
        {"last_seen after pres_ts", subst("\"pres_ts\":2000", "\"pres_ts\":1999"), NULL},
        {"extra member", subst("\"version\":3}", "\"version\":3,\"x\":1}"), NULL},
        {"duplicate member", subst("\"version\":3}", "\"version\":3,\"version\":3}"), NULL},
        {"tab member missing", subst(",\"cursor\":\"c\"", ""), NULL},
        {"tab member misspelt", subst("\"cursor\":\"c\"", "\"cursur\":\"c\""), NULL},
        {"257 tabs", with_array("tabs", TABS_BODY, PX_FOLD_TABS_MAX + 1,
                                "{\"tab\":\"t%05u\",\"user\":\"u%u\",\"name\":\"\",\"mode\":\"view\",\"dirty\":false,"
                                "\"status\":\"online\",\"field\":\"\",\"cursor\":\"\",\"since\":1,\"last_seen\":1}"),
         NULL},
        {"65 locks", with_array("locks", LOCKS_BODY, PX_FOLD_LOCKS_MAX + 1,
                                "{\"field\":\"f%05u\",\"tab\":\"t\",\"user\":\"u%u\",\"name\":\"\",\"token\":1,"
                                "\"refreshed\":1}"),
         NULL},
        {"unsorted locks", subst(LOCKS_BODY, LOCKS_BODY_B "," LOCKS_BODY), NULL},
        {"duplicate lock fields", subst(LOCKS_BODY, LOCKS_BODY "," LOCKS_BODY), NULL},
        {"negative token", subst("\"token\":7", "\"token\":-1"), NULL},
        {"33 writes", with_array("writes", WRITES_BODY, PX_FOLD_WRITES_MAX + 1,
                                 "{\"write_id\":\"x%u\",\"busy_by\":\"b%u\",\"ts\":1}"),
         NULL},
        {"duplicate write ids", with_array("writes", WRITES_BODY, 2, "{\"write_id\":\"x\",\"busy_by\":\"b%u%u\",\"ts\":1}"),
         NULL},
        {"open write already closed", subst("\"closed_up_to\":0", "\"closed_up_to\":1900"), NULL},
        {"unsorted gone", subst("\"ts\":1000,\"id\"", "\"ts\":1300,\"id\""), NULL},
        {"uppercase hash", subst("00000000000000aa\"}", "00000000000000AA\"}"), NULL},
        {"short hash", subst("\"0123456789abcdef\"", "\"0123\""), NULL},
        {"duplicate done id", subst("\"0123456789abcdef\"", "\"00000000000000aa\""), NULL},
        {"65 done ids", with_array("done", DONE_BODY, PX_FOLD_DONE_MAX + 1, "\"%016x\""), NULL},
        {"negative version", subst("\"version\":3", "\"version\":-3"), NULL},
        {"real version", subst("\"version\":3", "\"version\":3.5"), NULL},
        {"version as a string", subst("\"version\":3", "\"version\":\"3\""), NULL},
    };
    size_t n = sizeof rows / sizeof rows[0];
    assert_true(n >= 25);
    for (size_t i = 0; i < n; i++) {
        const char *s = rows[i].blob ? rows[i].blob : rows[i].lit;
        char err[256] = "";
        px_entity_t e;
        int rc = decode_str(s, strlen(s), &e, err, sizeof err);
        if (rc != PX_EINVAL) fail_msg("row %zu (%s): accepted (rc %d)", i, rows[i].what, rc);
        if (!err[0]) fail_msg("row %zu (%s): no reason", i, rows[i].what);
        assert_int_equal(e.n_tabs + e.n_locks + e.n_writes + e.n_gone + e.n_done, 0);
        assert_null(e.tabs);
        assert_true(px_key_equal(&e.key, &K));
        print_message("%-28s %s\n", rows[i].what, err);
        free(rows[i].blob);
    }
    free(deep);
    free(long_name);
    free(long_id);
}

/* Every proper prefix of a valid blob is refused, and so is the blob fed
 * with one byte changed to each of a few interesting values. */
static void test_prefixes(void **state) {
    size_t n = strlen(BASE);
    char err[256];
    for (size_t i = 0; i < n; i++) {
        char *p = malloc(i ? i : 1); /* an exact-size copy: ASan sees any over-read */
        assert_non_null(p);
        memcpy(p, BASE, i);
        px_entity_t e;
        if (decode_str(p, i, &e, err, sizeof err) != PX_EINVAL) fail_msg("prefix of %zu bytes accepted", i);
        px_entity_term(&e);
        free(p);
    }
}

/* Seeded random mutations: never a crash or leak; whatever is accepted is a
 * state the encoder writes back and decodes again to the same state. */
static void test_mutations(void **state) {
    rng_t g = {7};
    size_t n = strlen(BASE), accepted = 0, rounds = RUNNING_ON_VALGRIND ? 1500 : 20000;
    char *buf = malloc(2 * n + 16);
    assert_non_null(buf);
    px_buf_t out;
    px_buf_init(&out, 1 << 20);
    char err[256];
    for (size_t r = 0; r < rounds; r++) {
        size_t len = n;
        memcpy(buf, BASE, n);
        for (uint32_t k = 1 + rng_below(&g, 3); k > 0; k--) {
            size_t at = rng_below(&g, (uint32_t)len);
            static const char bytes[] = "{}[]\",:0123456789-.e\\ux\x80\xff tfn";
            switch (rng_below(&g, 4)) {
            case 0: buf[at] = bytes[rng_below(&g, sizeof bytes - 1)]; break;
            case 1: buf[at] ^= (char)(1u << rng_below(&g, 8)); break;
            case 2: memmove(buf + at, buf + at + 1, len - at - 1); len--; break;
            default:
                if (len < 2 * n) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = bytes[rng_below(&g, sizeof bytes - 1)];
                    len++;
                }
            }
        }
        px_entity_t e, e2;
        px_store_wm_t wm, wm2;
        px_entity_init(&e, &K);
        if (px_store_decode(buf, len, &e, &wm, err, sizeof err) == 0) {
            accepted++;
            px_buf_reset(&out);
            assert_int_equal(px_store_encode(&e, &wm, &out), 0);
            px_entity_init(&e2, &K);
            assert_int_equal(px_store_decode(out.data, out.len, &e2, &wm2, err, sizeof err), 0);
            assert_true(px_entity_equal(&e, &e2));
            px_entity_term(&e2);
        }
        px_entity_term(&e);
    }
    print_message("mutations: %zu, accepted %zu\n", rounds, accepted);
    free(buf);
    px_buf_term(&out);
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

/* ---- the write command ------------------------------------------------------------------- */

/* Split a list argument the way the script does. */
static int64_t px_store_max_ll(int64_t a, int64_t b) { return a > b ? a : b; }

static const char *arg(const px_store_cmd_t *cmd, int i, char *tmp, size_t n) {
    assert_true(i < cmd->argc && cmd->argvlen[i] < n);
    memcpy(tmp, cmd->argv[i], cmd->argvlen[i]);
    tmp[cmd->argvlen[i]] = '\0';
    return tmp;
}

static void test_write_cmd(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    px_entity_init(&e, &K);
    int64_t t0 = 1700000000000LL;
    px_store_wm_t wm;
    px_store_wm_init(&wm);
    struct {
        px_event_t ev;
    } in[8];
    in[0].ev = pres(PX_PRES_SUB, "t1", "u1", t0);
    in[1].ev = pres(PX_PRES_SUB, "t2", "u1", t0 + 5000);
    in[2].ev = pres(PX_PRES_SUB, "t3", "u2", t0 - 100000); /* dead at t0 + 1000 */
    in[3].ev = lockev(PX_LOCK_LOCK, "a", "t1", "u1", t0);
    in[4].ev = lockev(PX_LOCK_LOCK, "z", "t9", "u9", t0 - 200000); /* dead */
    in[5].ev = lcev(PX_LC_MUTATING, "w1", t0, PX_NONE);
    in[6].ev = lcev(PX_LC_MUTATED, "w0", t0, 4);
    for (int i = 0; i < 7; i++) {
        px_src_topic_t t = topic_of(&in[i].ev);
        px_src_t src = {t, 0, ++wm.off[t]};
        assert_int_equal(px_fold_apply(&e, &c, &in[i].ev, &src, NULL, NULL), 0);
    }
    int64_t now = t0 + 1000;
    px_store_cmd_t cmd;
    px_store_cmd_init(&cmd);
    const char *sha = "abcdefabcdefabcdefabcdefabcdefabcdefabcd";
    assert_int_equal(px_store_write_cmd(&cmd, sha, &e, &c, &wm, now, "{\"type\":\"X\"}"), 0);
    char tmp[8192];
    assert_int_equal(cmd.argc, 12);
    assert_string_equal(arg(&cmd, 0, tmp, sizeof tmp), "EVALSHA");
    assert_string_equal(arg(&cmd, 1, tmp, sizeof tmp), sha);
    assert_string_equal(arg(&cmd, 2, tmp, sizeof tmp), "2");
    assert_string_equal(arg(&cmd, 3, tmp, sizeof tmp), "presence:{acme:doc:1}:state");
    assert_string_equal(arg(&cmd, 4, tmp, sizeof tmp), "presence:{acme:doc:1}:view");
    const int A = 4; /* ARGV[k] is argv[A + k] */
    char wmstr[64];
    snprintf(wmstr, sizeof wmstr, "%lld,%lld,%lld,%lld", (long long)wm.off[0], (long long)wm.off[1],
             (long long)wm.off[2], (long long)wm.off[3]);
    assert_string_equal(arg(&cmd, A + 1, tmp, sizeof tmp), wmstr);
    /* the blob decodes to the entity */
    px_entity_t d;
    px_store_wm_t dwm;
    char err[256];
    px_entity_init(&d, &K);
    assert_int_equal(px_store_decode(cmd.argv[A + 2], cmd.argvlen[A + 2], &d, &dwm, err, sizeof err), 0);
    assert_true(px_entity_equal(&e, &d));
    px_entity_term(&d);
    /* version 4: state and view persist */
    assert_string_equal(arg(&cmd, A + 3, tmp, sizeof tmp), "");
    assert_string_equal(arg(&cmd, A + 4, tmp, sizeof tmp), "");
    /* the view, byte for byte: t1 and t2 (t3 is past its deadline), lock a
     * (z is dead) with its deadline from the holder's heartbeats, stale by
     * w1, version 4 */
    int64_t t1_dl = t0 + c.presence_ttl_ms, t2_dl = t0 + 5000 + c.presence_ttl_ms;
    int64_t lock_dl = px_fold_lock_deadline(&e, &c, &e.locks[0]);
    assert_int_equal(lock_dl, t0 + c.lock_ttl_ms);
    char want[2048];
    snprintf(want, sizeof want,
             "{\"tabs\":[{\"tab\":\"t1\",\"deadline\":%lld,\"user\":\"u1\",\"name\":\"Name u1\",\"mode\":\"view\","
             "\"dirty\":false,\"status\":\"online\",\"field\":\"\",\"cursor\":\"\",\"since\":%lld},"
             "{\"tab\":\"t2\",\"deadline\":%lld,\"user\":\"u1\",\"name\":\"Name u1\",\"mode\":\"view\","
             "\"dirty\":false,\"status\":\"online\",\"field\":\"\",\"cursor\":\"\",\"since\":%lld}],"
             "\"locks\":[{\"field\":\"a\",\"user\":\"u1\",\"name\":\"Name u1\",\"tab\":\"t1\",\"token\":%lld,"
             "\"deadline\":%lld}],\"stale\":true,\"busyBy\":\"w1\",\"stale_until\":%lld,\"version\":4}",
             (long long)t1_dl, (long long)t0, (long long)t2_dl, (long long)(t0 + 5000),
             (long long)e.locks[0].token, (long long)lock_dl, (long long)(t0 + c.stale_ttl_ms));
    assert_string_equal(arg(&cmd, A + 5, tmp, sizeof tmp), want);
    /* and it reads back at now as what the fold says */
    px_view_tab_t vt[4];
    px_view_lock_t vl[4];
    px_view_t v = {.tabs = vt, .max_tabs = 4, .locks = vl, .max_locks = 4};
    assert_int_equal(px_view_decode(cmd.argv[A + 5], cmd.argvlen[A + 5], now, &v), 0);
    assert_int_equal(v.n_tabs, 2);
    assert_int_equal(v.n_locks, 1);
    assert_true(v.stale);
    assert_string_equal(v.busy_by, "w1");
    assert_int_equal(v.version, 4);
    assert_string_equal(arg(&cmd, A + 6, tmp, sizeof tmp), "presence:updates:{acme:doc:1}");
    assert_string_equal(arg(&cmd, A + 7, tmp, sizeof tmp), "{\"type\":\"X\"}");

    /* rebuilding reuses the buffer; no notification: empty channel */
    const char *data = cmd.buf.data;
    assert_int_equal(px_store_write_cmd(&cmd, sha, &e, &c, &wm, now, NULL), 0);
    assert_ptr_equal(cmd.buf.data, data);
    assert_string_equal(arg(&cmd, A + 6, tmp, sizeof tmp), "");
    assert_int_equal(cmd.argvlen[A + 7], 0);

    /* far later: nothing live, version kept -> an empty view that persists */
    assert_int_equal(px_store_write_cmd(&cmd, sha, &e, &c, &wm, now + 100000000, NULL), 0);
    assert_int_equal(cmd.argvlen[A + 4], 0);
    assert_string_equal(arg(&cmd, A + 5, tmp, sizeof tmp),
                        "{\"tabs\":[],\"locks\":[],\"stale\":false,\"busyBy\":\"\",\"stale_until\":0,\"version\":4}");

    /* no version: the view expires at its latest deadline */
    e.version = 0;
    assert_int_equal(px_store_write_cmd(&cmd, sha, &e, &c, &wm, now, NULL), 0);
    snprintf(wmstr, sizeof wmstr, "%lld", (long long)px_store_max_ll(px_store_max_ll(t2_dl, lock_dl), t0 + c.stale_ttl_ms));
    assert_string_equal(arg(&cmd, A + 4, tmp, sizeof tmp), wmstr);
    /* ... and nothing live without a version: no view (DEL) */
    assert_int_equal(px_store_write_cmd(&cmd, sha, &e, &c, &wm, now + 100000000, NULL), 0);
    assert_int_equal(cmd.argvlen[A + 4], 0);
    assert_int_equal(cmd.argvlen[A + 5], 0);

    /* an empty entity: no view; state kept for the idle retention */
    px_entity_t empty;
    px_entity_init(&empty, &K);
    assert_int_equal(px_store_write_cmd(&cmd, sha, &empty, &c, &wm, now, NULL), 0);
    assert_int_equal(cmd.argvlen[A + 4], 0);
    assert_int_equal(cmd.argvlen[A + 5], 0);
    snprintf(wmstr, sizeof wmstr, "%lld", (long long)(now + PX_STORE_IDLE_RETENTION_MS));
    assert_string_equal(arg(&cmd, A + 3, tmp, sizeof tmp), wmstr);
    px_entity_term(&empty);
    px_store_cmd_term(&cmd);
    px_store_cmd_term(&cmd); /* twice is fine */
    px_entity_term(&e);
}

/* A lock inside a view, as px_view_decode reads it back (0 or PX_EINVAL). */
static int decode_lock_in_view(const char *lock, px_view_lock_t *out) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"tabs\":[],\"locks\":[%s],\"stale\":false,\"busyBy\":\"\",\"stale_until\":0,\"version\":0}", lock);
    px_view_t v = {.locks = out, .max_locks = 1};
    int rc = px_view_decode(json, strlen(json), 0, &v);
    if (rc == 0) assert_int_equal(v.n_locks, 1);
    return rc;
}

static void test_view_lock_codec(void **state) {
    px_view_lock_t l = {.field = "f", .user_id = "u\"1", .user_name = "N\n", .tab_id = "t", .token = 9,
                        .deadline_ms = INT64_MAX};
    px_buf_t b;
    px_buf_init(&b, 4096);
    assert_int_equal(px_view_lock_encode(&l, &b), 0);
    assert_string_equal(b.data, "{\"field\":\"f\",\"user\":\"u\\\"1\",\"name\":\"N\\n\",\"tab\":\"t\",\"token\":9,"
                                "\"deadline\":9223372036854775807}");
    px_view_lock_t d;
    assert_int_equal(decode_lock_in_view(b.data, &d), 0);
    assert_string_equal(d.field, "f");
    assert_string_equal(d.user_id, "u\"1");
    assert_string_equal(d.user_name, "N\n");
    assert_int_equal(d.deadline_ms, INT64_MAX);
    static const char *const bad[] = {
        "{}", "[]", "{\"field\":\"f\",\"user\":\"\",\"name\":\"\",\"tab\":\"t\",\"token\":1,\"deadline\":1}",
        "{\"field\":\"\",\"user\":\"u\",\"name\":\"\",\"tab\":\"t\",\"token\":1,\"deadline\":1}",
        "{\"user\":\"u\",\"name\":\"\",\"tab\":\"t\",\"token\":1,\"deadline\":1}",
        "{\"field\":\"f\",\"user\":\"u\",\"name\":\"\",\"tab\":\"t\",\"token\":-1,\"deadline\":1}",
        "{\"field\":\"f\",\"user\":\"u\",\"name\":\"\",\"tab\":\"t\",\"token\":1}",
        "{\"field\":\"f\",\"user\":\"u\",\"name\":1,\"tab\":\"t\",\"token\":1,\"deadline\":1}",
        "{\"field\":\"f\",\"user\":\"u\",\"user\":\"u\",\"name\":\"\",\"tab\":\"t\",\"token\":1,\"deadline\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (decode_lock_in_view(bad[i], &d) != PX_EINVAL) fail_msg("bad lock %zu accepted", i);
    px_buf_term(&b);
}

/* The whole view: live filtering at the reader's clock, the caps, and a
 * hostile-input table (every entry refused whole). */
static void test_view_decode(void **state) {
    px_view_tab_t vt[2];
    px_view_lock_t vl[1];
    px_view_t v = {.tabs = vt, .max_tabs = 2, .locks = vl, .max_locks = 1};
    const char *ok = "{\"tabs\":[{\"tab\":\"a\",\"deadline\":100,\"user\":\"u\",\"mode\":\"edit\",\"dirty\":true},"
                     "{\"tab\":\"b\",\"deadline\":300,\"user\":\"v\",\"name\":\"V\",\"status\":\"away\"},"
                     "{\"tab\":\"c\",\"deadline\":400,\"user\":\"w\"}],"
                     "\"locks\":[{\"field\":\"f\",\"user\":\"u\",\"name\":\"\",\"tab\":\"a\",\"token\":7,\"deadline\":150},"
                     "{\"field\":\"g\",\"user\":\"v\",\"name\":\"V\",\"tab\":\"b\",\"token\":8,\"deadline\":250}],"
                     "\"stale\":true,\"busyBy\":\"job\",\"stale_until\":200,\"version\":3,\"future\":[1]}";
    /* at 50: everything live; the caps keep 2 tabs and 1 lock, 2 left out */
    assert_int_equal(px_view_decode(ok, strlen(ok), 50, &v), 0);
    assert_int_equal(v.n_tabs, 2);
    assert_int_equal(v.n_locks, 1);
    assert_int_equal(v.n_dropped, 2);
    assert_string_equal(vt[0].tab_id, "a");
    assert_int_equal(vt[0].mode, PX_MODE_EDIT);
    assert_true(vt[0].dirty);
    assert_int_equal(vt[1].status, PX_STATUS_AWAY);
    assert_string_equal(vt[1].user_name, "V");
    assert_string_equal(vl[0].field, "f");
    assert_int_equal(vl[0].token, 7);
    assert_true(v.stale);
    assert_string_equal(v.busy_by, "job");
    assert_int_equal(v.version, 3);
    /* at 200: a, lock f and the stale flag have expired (deadline <= now) */
    assert_int_equal(px_view_decode(ok, strlen(ok), 200, &v), 0);
    assert_int_equal(v.n_tabs, 2);
    assert_string_equal(vt[0].tab_id, "b");
    assert_string_equal(vt[1].tab_id, "c");
    assert_int_equal(v.n_locks, 1);
    assert_string_equal(vl[0].field, "g");
    assert_int_equal(v.n_dropped, 0);
    assert_false(v.stale);
    assert_string_equal(v.busy_by, "");
    assert_int_equal(v.version, 3);
    /* at 1000: nothing live, the version stays */
    assert_int_equal(px_view_decode(ok, strlen(ok), 1000, &v), 0);
    assert_int_equal(v.n_tabs + v.n_locks, 0);
    assert_int_equal(v.version, 3);

    static char big[PX_VIEW_MAX_BYTES + 64];
    memset(big, ' ', sizeof big - 1);
    static const char small[] = "{\"tabs\":[],\"locks\":[],\"stale\":false,\"busyBy\":\"\",\"stale_until\":0,\"version\":0}";
    memcpy(big, small, sizeof small - 1); /* valid, then blanks past the limit */
    assert_int_equal(px_view_decode(small, sizeof small - 1, 0, &v), 0);
    char long_name[PX_NAME_MAX + 128];
    int ln = snprintf(long_name, sizeof long_name, "{\"tabs\":[],\"locks\":[],\"stale\":true,\"busyBy\":\"%0*d\","
                      "\"stale_until\":9,\"version\":0}", PX_NAME_MAX + 1, 0);
    assert_true(ln > 0);
#define V(tabs, locks, rest) "{\"tabs\":" tabs ",\"locks\":" locks "," rest "}"
#define META "\"stale\":false,\"busyBy\":\"\",\"stale_until\":0,\"version\":0"
    const char *const bad[] = {
        "", "null", "[]", "\"x\"", "{", "{}", "{\"tabs\":[],\"locks\":[]}",
        V("{}", "[]", META), V("[]", "{}", META), V("null", "[]", META), V("[]", "[]", "\"stale\":1,\"busyBy\":\"\",\"stale_until\":0,\"version\":0"),
        V("[]", "[]", "\"stale\":false,\"busyBy\":null,\"stale_until\":0,\"version\":0"),
        V("[]", "[]", "\"stale\":false,\"busyBy\":\"\",\"stale_until\":-1,\"version\":0"),
        V("[]", "[]", "\"stale\":false,\"busyBy\":\"\",\"stale_until\":0,\"version\":1.5"),
        V("[]", "[]", "\"stale\":false,\"busyBy\":\"\",\"stale_until\":0"),
        V("[1]", "[]", META), V("[{}]", "[]", META),
        V("[{\"tab\":\"\",\"deadline\":9,\"user\":\"u\"}]", "[]", META),
        V("[{\"tab\":\"a\",\"deadline\":-9,\"user\":\"u\"}]", "[]", META),
        V("[{\"tab\":\"a\",\"deadline\":9,\"user\":\"\"}]", "[]", META),
        V("[{\"tab\":\"a\",\"deadline\":9,\"user\":\"u\",\"mode\":\"fly\"}]", "[]", META),
        V("[{\"tab\":\"a\",\"deadline\":9,\"user\":\"u\",\"dirty\":1}]", "[]", META),
        V("[{\"tab\":\"a\",\"deadline\":9,\"user\":\"u\",\"since\":\"1\"}]", "[]", META),
        V("[{\"tab\":\"a\\u0000b\",\"deadline\":9,\"user\":\"u\"}]", "[]", META),
        V("[{\"tab\":\"a\",\"tab\":\"b\",\"deadline\":9,\"user\":\"u\"}]", "[]", META),
        V("[]", "[{\"field\":\"f\"}]", META), V("[]", "[7]", META),
        "{\"tabs\":[],\"tabs\":[],\"locks\":[]," META "}",
        "{\"tabs\":[],\"locks\":[]," META "} trailing",
        long_name, big,
    };
#undef V
#undef META
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (px_view_decode(bad[i], strlen(bad[i]), 0, &v) != PX_EINVAL) fail_msg("bad view %zu accepted", i);
        assert_int_equal(v.n_tabs + v.n_locks + v.n_dropped, 0);
    }
    /* every prefix of the valid view is refused, none crashes */
    for (size_t n = 0; n < strlen(ok); n++)
        assert_int_equal(px_view_decode(ok, n, 0, &v), PX_EINVAL);
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

static int setup(void **state) {
    assert_int_equal(px_key_set(&K, "acme", "doc", "1", NULL, 0), 0);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wm),
        cmocka_unit_test(test_buf_numbers),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_hostile_table),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_roundtrip_random),
        cmocka_unit_test(test_roundtrip_at_caps),
        cmocka_unit_test(test_write_cmd),
        cmocka_unit_test(test_view_lock_codec),
        cmocka_unit_test(test_view_decode),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
