/*
 * test_store_blob.c - the state blob codec of core/px_store.h against a
 * hand-written blob: canonical bytes; a hostile-input table; every prefix
 * of a valid blob; seeded random mutations (a fraction of the rounds under
 * valgrind, all of them in the ASan build).
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

/* The inputs of test_hostile_table's rows that are not derived from BASE by
 * subst() or with_array(). */
typedef struct {
    char *long_name, *long_id, *deep;
    char name_row[PX_NAME_MAX + 32], id_row[PX_ID_MAX + 32];
    char twice[sizeof BASE * 2];
    char trailing[sizeof BASE + 2];
} hostile_bufs_t;

static void hostile_bufs_init(hostile_bufs_t *h) {
    h->long_name = repeat('x', PX_NAME_MAX + 1);
    h->long_id = repeat('y', PX_ID_MAX + 1);
    snprintf(h->name_row, sizeof h->name_row, "\"name\":\"%s\"", h->long_name);
    snprintf(h->id_row, sizeof h->id_row, "\"tab\":\"%s\"", h->long_id);
    h->deep = malloc(20002);
    assert_non_null(h->deep);
    memset(h->deep, '[', 10000);
    memset(h->deep + 10000, ']', 10000);
    h->deep[20000] = '\0';
    snprintf(h->twice, sizeof h->twice, "%s%s", BASE, BASE);
    snprintf(h->trailing, sizeof h->trailing, "%sx", BASE);
}

typedef struct {
    const char *what;
    char *blob; /* malloc'd unless lit */
    const char *lit;
} hostile_row_t;

/* Every row refused with a reason, nothing kept; frees the rows' blobs. */
static void hostile_check(hostile_row_t *rows, size_t n) {
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
}

static void test_hostile_table(void **state) {
    hostile_bufs_t h;
    hostile_bufs_init(&h);
    hostile_row_t rows[] = {
        {"empty input", NULL, ""},
        {"not JSON", NULL, "not json"},
        {"an array", NULL, "[]"},
        {"null", NULL, "null"},
        {"trailing garbage", NULL, h.trailing},
        {"two documents", NULL, h.twice},
        {"nesting bomb", NULL, h.deep},
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
        {"user name over its bound", subst("\"name\":\"Ann\"", h.name_row), NULL},
        {"tab id over its bound", subst("\"tab\":\"t1\"", h.id_row), NULL},
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
    hostile_check(rows, sizeof rows / sizeof rows[0]);
    free(h.deep);
    free(h.long_name);
    free(h.long_id);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_hostile_table),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
