/*
 * test_notify.c - the processor -> gateway notification (px_notify.h):
 * round trips of both kinds, the bound, the older processors' open array,
 * a hostile-input table, every prefix of a valid notification decoded
 * byte by byte, and single-byte mutations that never crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"
#include "px_notify.h"

typedef struct seen {
    int n;
    char types[8][32], rids[8][64], holders[8][64], users[8][64], fields[8][64];
    int64_t tokens[8];
    int type_ids[8];
} seen_t;

static void on_change(void *arg, const px_notify_change_t *c) {
    seen_t *s = arg;
    if (s->n < 8) {
        snprintf(s->types[s->n], sizeof s->types[0], "%s", c->type_name);
        snprintf(s->rids[s->n], sizeof s->rids[0], "%s", c->request_id);
        snprintf(s->holders[s->n], sizeof s->holders[0], "%s", c->holder);
        snprintf(s->users[s->n], sizeof s->users[0], "%s", c->user);
        snprintf(s->fields[s->n], sizeof s->fields[0], "%s", c->field);
        s->tokens[s->n] = c->token;
        s->type_ids[s->n] = c->type;
    }
    s->n++;
}

static px_event_t change(int type, const char *user, const char *field, const char *rid, int64_t token) {
    px_event_t c;
    memset(&c, 0, sizeof c);
    c.kind = PX_KIND_CHANGE;
    c.type = type;
    snprintf(c.user_id, sizeof c.user_id, "%s", user);
    snprintf(c.tab_id, sizeof c.tab_id, "t1");
    snprintf(c.field, sizeof c.field, "%s", field);
    snprintf(c.request_id, sizeof c.request_id, "%s", rid);
    c.token = token;
    return c;
}

static int decode(const char *s, size_t len, px_notify_filter_t f, px_notify_kind_t *kind, seen_t *seen) {
    char err[128];
    memset(seen, 0, sizeof *seen);
    return px_notify_decode(s, len, f, kind, on_change, seen, err, sizeof err);
}

static void test_round_trip(void **state) {
    (void)state;
    px_notify_t n;
    px_buf_t out;
    px_notify_init(&n, 4096);
    px_buf_init(&out, 8192);
    px_event_t g = change(PX_CH_LOCK_GRANTED, "u\"1", "f\\x", "gw.7", 42);
    px_event_t j = change(PX_CH_JOINED, "u2", "", "", -1);
    px_event_t d = change(PX_CH_LOCK_DENIED, "u3", "f", "gw.8", -1);
    snprintf(d.holder_user_id, sizeof d.holder_user_id, "u\"1");
    assert_int_equal(px_notify_add(&n, &g), 0);
    assert_int_equal(px_notify_add(&n, &j), 0);
    assert_int_equal(px_notify_add(&n, &d), 0);
    assert_true(px_notify_any(&n));

    assert_int_equal(px_notify_encode(&n, PX_NOTIFY_WRITTEN, &out), 0);
    assert_string_equal(out.data, "[{\"type\":\"LOCK_GRANTED\",\"user\":\"u\\\"1\",\"tab_id\":\"t1\",\"field\":\"f\\\\x\","
                                  "\"request_id\":\"gw.7\",\"token\":42},{\"type\":\"JOINED\",\"user\":\"u2\",\"tab_id\":"
                                  "\"t1\"},{\"type\":\"LOCK_DENIED\",\"user\":\"u3\",\"tab_id\":\"t1\",\"field\":\"f\","
                                  "\"request_id\":\"gw.8\",\"holder\":\"u\\\"1\"}]");
    px_notify_kind_t kind;
    seen_t s;
    assert_int_equal(decode(out.data, out.len, PX_NOTIFY_ALL, &kind, &s), 0);
    assert_int_equal(kind, PX_NOTIFY_WRITTEN);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.types[0], "LOCK_GRANTED");
    assert_int_equal(s.type_ids[0], PX_CH_LOCK_GRANTED);
    assert_string_equal(s.users[0], "u\"1");
    assert_string_equal(s.fields[0], "f\\x");
    assert_string_equal(s.rids[0], "gw.7");
    assert_int_equal(s.tokens[0], 42);
    assert_int_equal(s.type_ids[1], PX_CH_JOINED);
    assert_int_equal(s.tokens[1], -1);
    assert_string_equal(s.holders[2], "u\"1");
    /* the lock filter leaves JOINED out */
    assert_int_equal(decode(out.data, out.len, PX_NOTIFY_LOCKS, &kind, &s), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.types[1], "LOCK_DENIED");

    assert_int_equal(px_notify_encode(&n, PX_NOTIFY_DECIDED, &out), 0);
    assert_memory_equal(out.data, "{\"decided\":[{\"type\":\"LOCK_GRANTED\"", 34);
    assert_int_equal(out.data[out.len - 1], '}');
    assert_int_equal(decode(out.data, out.len, PX_NOTIFY_LOCKS, &kind, &s), 0);
    assert_int_equal(kind, PX_NOTIFY_DECIDED);
    assert_int_equal(s.n, 2);

    /* empty: nothing to publish until touched; then [] */
    px_notify_reset(&n);
    assert_false(px_notify_any(&n));
    px_notify_touch(&n);
    assert_true(px_notify_any(&n));
    assert_int_equal(px_notify_encode(&n, PX_NOTIFY_WRITTEN, &out), 0);
    assert_string_equal(out.data, "[]");
    assert_int_equal(decode(out.data, out.len, PX_NOTIFY_ALL, &kind, &s), 0);
    assert_int_equal(s.n, 0);
    px_notify_reset(&n);
    assert_false(px_notify_any(&n));
    px_notify_term(&n);
    px_buf_term(&out);
}

/* A full list keeps the changes that fit; a frame that does not fit is []. */
static void test_bounds(void **state) {
    (void)state;
    px_notify_t n;
    px_buf_t out, small;
    px_notify_init(&n, 200);
    px_buf_init(&out, 4096);
    px_buf_init(&small, 8);
    px_event_t g = change(PX_CH_LOCK_GRANTED, "user-1", "field-1", "gw.1", 1);
    int added = 0;
    for (int i = 0; i < 10; i++)
        if (px_notify_add(&n, &g) == 0) added++;
    assert_true(added >= 1 && added < 10);
    assert_int_equal(n.n, (uint32_t)added);
    assert_true(n.body.len <= 200);
    assert_int_equal(px_notify_encode(&n, PX_NOTIFY_WRITTEN, &out), 0);
    px_notify_kind_t kind;
    seen_t s;
    assert_int_equal(decode(out.data, out.len, PX_NOTIFY_ALL, &kind, &s), 0);
    assert_int_equal(s.n, added);
    assert_int_equal(px_notify_encode(&n, PX_NOTIFY_WRITTEN, &small), 0);
    assert_string_equal(small.data, "[]");
    assert_int_equal(px_notify_encode(&n, PX_NOTIFY_DECIDED, &small), PX_ENOMEM);
    px_notify_term(&n);
    px_buf_term(&out);
    px_buf_term(&small);
}

/* What processors before this codec sent: the array left open. */
static void test_open_array(void **state) {
    (void)state;
    static const char old[] = "[{\"type\":\"LOCK_GRANTED\",\"field\":\"f\",\"request_id\":\"gw.1\",\"token\":3},"
                              "{\"type\":\"LOCK_RELEASED\",\"tab_id\":\"t\",\"field\":\"g\"}";
    px_notify_kind_t kind;
    seen_t s;
    assert_int_equal(decode(old, strlen(old), PX_NOTIFY_LOCKS, &kind, &s), 0);
    assert_int_equal(kind, PX_NOTIFY_WRITTEN);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.tokens[0], 3);
    assert_string_equal(s.types[1], "LOCK_RELEASED");
}

static const struct {
    const char *in;
    int rc;       /* 0 or PX_EPROTO */
    int kind;     /* px_notify_kind_t */
    int changes;  /* passed to the callback */
} HOSTILE[] = {
    {"", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"[", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"]", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"{}", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"null", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"\"LOCK_GRANTED\"", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"{\"decided\":5}", PX_EPROTO, PX_NOTIFY_DECIDED, 0},
    {"{\"decided\":{\"type\":\"LOCK_GRANTED\"}}", PX_EPROTO, PX_NOTIFY_DECIDED, 0},
    {"{\"decided\":[{\"type\":\"LOCK_GRANTED\"}", PX_EPROTO, PX_NOTIFY_DECIDED, 0},
    {"{\"decided\":[]}", 0, PX_NOTIFY_DECIDED, 0},
    {"{\"decided\":[{\"type\":\"LOCK_DENIED\"}]}", 0, PX_NOTIFY_DECIDED, 1},
    {"{\"written\":[{\"type\":\"LOCK_GRANTED\"}]}", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"[1,\"LOCK_GRANTED\",null,[],{\"type\":\"LOCK_GRANTED\"}]", 0, PX_NOTIFY_WRITTEN, 1},
    {"[{\"type\":7,\"x\":\"LOCK_\"}]", 0, PX_NOTIFY_WRITTEN, 1},
    {"[{\"type\":\"LOCK_NEW_KIND\"}]", 0, PX_NOTIFY_WRITTEN, 1},
    {"[{\"type\":\"LOCK_GRANTED\",\"token\":\"7\",\"field\":3,\"request_id\":[1]}]", 0, PX_NOTIFY_WRITTEN, 1},
    {"[{\"type\":\"LOCK_GRANTED\",\"token\":-5}]", 0, PX_NOTIFY_WRITTEN, 1},
    {"[{\"type\":\"LOCK_GRANTED\",\"token\":1e400}]", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"[{\"type\":\"LOCK_GRANTED\"},]", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"[{\"type\":\"LOCK_GRANTED\"}]]", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"[{\"type\":\"LOCK_GRANTED\"}] trailing", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"[{\"type\":\"LOCK_GRANTED\",\"user\":\"\\ud800\"}]", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"[{\"type\":\"LOCK_GRANTED\",\"user\":\"a\\u0000b\"}]", PX_EPROTO, PX_NOTIFY_WRITTEN, 0},
    {"[{\"type\":\"JOINED\"}]", 0, PX_NOTIFY_WRITTEN, 1},
    {"{\"decided\":[{\"type\":\"JOINED\"}]}", 0, PX_NOTIFY_DECIDED, 1},
    {"{\"decided\"", PX_EPROTO, PX_NOTIFY_WRITTEN, 0}, /* too short to be framed as decided */
};

static void test_hostile(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof HOSTILE / sizeof HOSTILE[0]; i++) {
        px_notify_kind_t kind;
        seen_t s;
        int rc = decode(HOSTILE[i].in, strlen(HOSTILE[i].in), PX_NOTIFY_ALL, &kind, &s);
        if (rc != HOSTILE[i].rc || (int)kind != HOSTILE[i].kind || s.n != HOSTILE[i].changes)
            fail_msg("case %zu %s: rc=%d kind=%d changes=%d", i, HOSTILE[i].in, rc, (int)kind, s.n);
    }
    px_notify_kind_t kind;
    seen_t s;
    /* the lock filter does not parse a notification that names no lock:
     * its garbage goes unnoticed, its kind is still told */
    assert_int_equal(decode("[", 1, PX_NOTIFY_LOCKS, &kind, &s), 0);
    assert_int_equal(decode("{\"decided\":[{\"type\":\"JOINED\"}", 29, PX_NOTIFY_LOCKS, &kind, &s), 0);
    assert_int_equal(kind, PX_NOTIFY_DECIDED);
    assert_int_equal(s.n, 0);
    /* NULL text */
    char err[64];
    memset(&s, 0, sizeof s);
    assert_int_equal(px_notify_decode(NULL, 0, PX_NOTIFY_ALL, &kind, on_change, &s, err, sizeof err), PX_EPROTO);
    /* a NUL inside the length: a valid prefix, then garbage */
    static const char nul[] = "[{\"type\":\"LOCK_GRANTED\"}]\0]";
    assert_int_equal(decode(nul, sizeof nul - 1, PX_NOTIFY_ALL, &kind, &s), PX_EPROTO);
}

/* Every prefix of a valid notification, each in a buffer of exactly its
 * length (ASan catches a read past it): never a crash, never a change
 * that is not in the full text, and only the full text (or, for the
 * written kind, the text short of its closing bracket) decodes whole. */
static void test_prefixes(void **state) {
    (void)state;
    px_notify_t n;
    px_buf_t out;
    px_notify_init(&n, 4096);
    px_buf_init(&out, 8192);
    px_event_t g = change(PX_CH_LOCK_GRANTED, "u1", "f", "gw.1", 9);
    px_event_t r = change(PX_CH_LOCK_RELEASED, "u2", "g", "", -1);
    px_notify_add(&n, &g);
    px_notify_add(&n, &r);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(px_notify_encode(&n, (px_notify_kind_t)k, &out), 0);
        for (size_t len = 0; len <= out.len; len++) {
            char *copy = malloc(len ? len : 1);
            assert_non_null(copy);
            memcpy(copy, out.data, len);
            px_notify_kind_t kind;
            seen_t s;
            int rc = decode(copy, len, PX_NOTIFY_ALL, &kind, &s);
            bool whole = len == out.len || (k == PX_NOTIFY_WRITTEN && len == out.len - 1);
            /* an open written array that ends after its first change is
             * that change alone (the older processors' form) */
            bool first = k == PX_NOTIFY_WRITTEN && !whole && len && copy[len - 1] == '}';
            if (whole) {
                assert_int_equal(rc, 0);
                assert_int_equal(s.n, 2);
            } else if (first) {
                assert_int_equal(rc, 0);
                assert_int_equal(s.n, 1);
                assert_string_equal(s.types[0], "LOCK_GRANTED");
            } else {
                assert_int_equal(rc, PX_EPROTO);
                assert_int_equal(s.n, 0);
            }
            free(copy);
        }
    }
    px_notify_term(&n);
    px_buf_term(&out);
}

/* Every byte replaced by a few hostile values: no crash, a defined kind. */
static void test_mutations(void **state) {
    (void)state;
    static const char base[] = "{\"decided\":[{\"type\":\"LOCK_GRANTED\",\"field\":\"f\",\"request_id\":\"gw.1\","
                               "\"token\":3},{\"type\":\"LOCK_DENIED\",\"holder\":\"h\"}]}";
    static const char subs[] = {'\0', '"', '\\', '[', ']', '{', '}', ',', ':', (char)0xff, 'x'};
    char buf[sizeof base];
    for (size_t i = 0; i < sizeof base - 1; i++)
        for (size_t j = 0; j < sizeof subs; j++) {
            memcpy(buf, base, sizeof base);
            buf[i] = subs[j];
            px_notify_kind_t kind;
            seen_t s;
            int rc = decode(buf, sizeof base - 1, PX_NOTIFY_ALL, &kind, &s);
            assert_true(rc == 0 || rc == PX_EPROTO);
            assert_true(kind == PX_NOTIFY_WRITTEN || kind == PX_NOTIFY_DECIDED);
            assert_true(s.n <= 2);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_bounds), cmocka_unit_test(test_open_array),
        cmocka_unit_test(test_hostile),    cmocka_unit_test(test_prefixes), cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
