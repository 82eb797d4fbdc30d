/*
 * test_proto_write.c - the writers of px_proto.c, the browser <-> gateway
 * JSON protocol: exact bytes for PRESENCE, LOCK_ACK and ERROR, string
 * escaping (quotes, backslash, controls, U+2028/9, invalid UTF-8 -> U+FFFD),
 * everything re-parsed with jansson, and a capped buffer that fails at
 * every possible byte leaves the buffer unchanged.
 * Run under ASan/UBSan and valgrind by ctest (label unit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "px_buf.h"
#include "px_err.h"
#include "px_proto.h"
#include "proto_helpers.h"

/* ------------------------------------------------------------------ */
/* writers                                                             */
/* ------------------------------------------------------------------ */

static void assert_written(px_buf_t *b, const char *want) {
    if (strlen(want) != b->len || memcmp(b->data, want, b->len) != 0)
        fail_msg("\n got: %.*s\nwant: %s", (int)b->len, b->data ? b->data : "", want);
    json_decref(must_be_json(b->data, b->len));
}

static px_key_t key_order42(void) {
    px_key_t k;
    assert_int_equal(px_key_set(&k, "acme", "order", "42", NULL, 0), 0);
    return k;
}

static void test_write_presence(void **state) {
    (void)state;
    px_key_t k = key_order42();
    px_viewer_t viewers[] = {
        {"alice", "Alice", 2, false, PX_MODE_EDIT, PX_STATUS_ONLINE},
        {"bob", "Bob", 1, true, PX_MODE_VIEW, PX_STATUS_AWAY},
    };
    px_lock_view_t locks[] = {{"amount", "alice", "Alice", "t-1", 17, 1700000000000}};
    px_presence_view_t v = {&k, viewers, 2, locks, 1, false, NULL, 3};
    px_buf_t b;
    px_buf_init(&b, 1 << 16);
    assert_int_equal(px_proto_write_presence(&b, &v), 0);
    assert_written(&b,
                   "{\"type\":\"PRESENCE\",\"entity\":\"order\",\"id\":\"42\",\"users\":[\"alice\",\"bob\"],"
                   "\"viewers\":[{\"id\":\"alice\",\"user_name\":\"Alice\",\"tabs\":2,\"has_dirty_tab\":false,"
                   "\"mode\":\"edit\",\"status\":\"online\"},{\"id\":\"bob\",\"user_name\":\"Bob\",\"tabs\":1,"
                   "\"has_dirty_tab\":true,\"mode\":\"view\",\"status\":\"away\"}],"
                   "\"locks\":[{\"field\":\"amount\",\"user\":\"alice\",\"user_name\":\"Alice\",\"tab_id\":\"t-1\","
                   "\"token\":17,\"expires_at\":1700000000000}],\"stale\":false,\"busyBy\":null,\"version\":3}");

    /* Empty entity. */
    px_buf_reset(&b);
    px_presence_view_t e = {&k, NULL, 0, NULL, 0, false, "", 0};
    assert_int_equal(px_proto_write_presence(&b, &e), 0);
    assert_written(&b, "{\"type\":\"PRESENCE\",\"entity\":\"order\",\"id\":\"42\",\"users\":[],\"viewers\":[],"
                       "\"locks\":[],\"stale\":false,\"busyBy\":null,\"version\":0}");

    /* Stale with a writer; names absent; big numbers. */
    px_buf_reset(&b);
    px_viewer_t anon[] = {{"u\"1", NULL, 1, false, PX_MODE_VIEW, PX_STATUS_ONLINE}};
    px_lock_view_t l2[] = {{"f", "u\"1", "", NULL, INT64_MAX, INT64_MIN}};
    px_presence_view_t s = {&k, anon, 1, l2, 1, true, "billing-job #7", 9007199254740993};
    assert_int_equal(px_proto_write_presence(&b, &s), 0);
    assert_written(&b, "{\"type\":\"PRESENCE\",\"entity\":\"order\",\"id\":\"42\",\"users\":[\"u\\\"1\"],"
                       "\"viewers\":[{\"id\":\"u\\\"1\",\"user_name\":null,\"tabs\":1,\"has_dirty_tab\":false,"
                       "\"mode\":\"view\",\"status\":\"online\"}],\"locks\":[{\"field\":\"f\",\"user\":\"u\\\"1\","
                       "\"user_name\":null,\"tab_id\":null,\"token\":9223372036854775807,"
                       "\"expires_at\":-9223372036854775808}],\"stale\":true,\"busyBy\":\"billing-job #7\","
                       "\"version\":9007199254740993}");

    /* busy_by is not shown when the record is not stale. */
    px_buf_reset(&b);
    px_presence_view_t ns = {&k, NULL, 0, NULL, 0, false, "leftover", 4};
    assert_int_equal(px_proto_write_presence(&b, &ns), 0);
    assert_non_null(strstr(b.data, "\"busyBy\":null"));

    /* Appends after existing content, leaving it alone. */
    px_buf_reset(&b);
    assert_int_equal(px_buf_puts(&b, "prefix|"), 0);
    assert_int_equal(px_proto_write_presence(&b, &e), 0);
    const char *head = "prefix|{\"type\":\"PRESENCE\"";
    assert_memory_equal(b.data, head, strlen(head));
    px_buf_term(&b);
}

static void test_write_lock_ack(void **state) {
    (void)state;
    px_key_t k = key_order42();
    px_buf_t b;
    px_buf_init(&b, 4096);
    assert_int_equal(px_proto_write_lock_ack(&b, &k, "amount", true, "alice", "Alice", 17, "r1"), 0);
    assert_written(&b, "{\"type\":\"LOCK_ACK\",\"entity\":\"order\",\"id\":\"42\",\"field\":\"amount\","
                       "\"success\":true,\"holder\":{\"id\":\"alice\",\"user_name\":\"Alice\"},\"token\":17,"
                       "\"request_id\":\"r1\"}");
    px_buf_reset(&b);
    assert_int_equal(px_proto_write_lock_ack(&b, &k, "amount", false, "bob", NULL, PX_NONE, NULL), 0);
    assert_written(&b, "{\"type\":\"LOCK_ACK\",\"entity\":\"order\",\"id\":\"42\",\"field\":\"amount\","
                       "\"success\":false,\"holder\":{\"id\":\"bob\",\"user_name\":null},\"token\":null,"
                       "\"request_id\":null}");
    px_buf_reset(&b);
    assert_int_equal(px_proto_write_lock_ack(&b, NULL, "amount", false, "", "x", 0, ""), 0);
    assert_written(&b, "{\"type\":\"LOCK_ACK\",\"entity\":null,\"id\":null,\"field\":\"amount\","
                       "\"success\":false,\"holder\":null,\"token\":0,\"request_id\":null}");
    px_buf_term(&b);
}

static void test_write_error(void **state) {
    (void)state;
    px_buf_t b;
    px_buf_init(&b, 4096);
    assert_int_equal(px_proto_write_error(&b, "BAD_JSON", "invalid JSON at byte 3", NULL), 0);
    assert_written(&b, "{\"type\":\"ERROR\",\"code\":\"BAD_JSON\",\"message\":\"invalid JSON at byte 3\","
                       "\"request_id\":null}");
    px_buf_reset(&b);
    assert_int_equal(px_proto_write_error(&b, "RATE_LIMITED", "slow \"down\"\n", "r 7"), 0);
    assert_written(&b, "{\"type\":\"ERROR\",\"code\":\"RATE_LIMITED\",\"message\":\"slow \\\"down\\\"\\n\","
                       "\"request_id\":\"r 7\"}");
    px_buf_term(&b);
}

/* Escaping table: input bytes -> exact JSON literal. */
static void test_write_string_escapes(void **state) {
    (void)state;
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"", "\"\""},
        {"plain ASCII ~!@#$%^&*()_+{}|:<>?/", "\"plain ASCII ~!@#$%^&*()_+{}|:<>?/\""},
        {"a\"b", "\"a\\\"b\""},
        {"a\\b", "\"a\\\\b\""},
        {"\\\"", "\"\\\\\\\"\""},
        {"\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\""},
        {"\x01\x02\x1f", "\"\\u0001\\u0002\\u001f\""},
        {"x\x7fy", "\"x\\u007fy\""},
        {"</script>", "\"</script>\""},
        {"caf\xc3\xa9", "\"caf\xc3\xa9\""},                               /* U+00E9 raw */
        {"\xe2\x82\xac\xf0\x9f\x98\x80", "\"\xe2\x82\xac\xf0\x9f\x98\x80\""}, /* euro, emoji raw */
        {"\xef\xbf\xbf\xf4\x8f\xbf\xbf", "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\""}, /* U+FFFF, U+10FFFF */
        {"a\xe2\x80\xa8" "b\xe2\x80\xa9", "\"a\\u2028b\\u2029\""},
        {"\xff", "\"\\ufffd\""},
        {"a\xc3", "\"a\\ufffd\""},                                       /* truncated at end */
        {"\xc3x", "\"\\ufffdx\""},
        {"\xc0\xaf", "\"\\ufffd\\ufffd\""},                              /* overlong */
        {"\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\""},                   /* overlong 3-byte */
        {"\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\""},                   /* surrogate */
        {"\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},        /* > U+10FFFF */
        {"\xf0\x9f\x98", "\"\\ufffd\""},                                 /* truncated 4-byte: one */
        {"\xe2\x82x", "\"\\ufffdx\""},
        {"\x80\xbf", "\"\\ufffd\\ufffd\""},                              /* lone continuations */
        {"\xf5\xf8\xfe", "\"\\ufffd\\ufffd\\ufffd\""},
        {"ok\xe2\x80\xa8\xff\"\n", "\"ok\\u2028\\ufffd\\\"\\n\""},
    };
    px_buf_t b;
    px_buf_init(&b, 4096);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        px_buf_reset(&b);
        assert_int_equal(px_proto_write_string(&b, rows[i].in), 0);
        if (strlen(rows[i].want) != b.len || memcmp(b.data, rows[i].want, b.len) != 0)
            fail_msg("row %zu:\n got: %.*s\nwant: %s", i, (int)b.len, b.data, rows[i].want);
        json_t *j = must_be_json(b.data, b.len);
        assert_true(json_is_string(j));
        /* Valid UTF-8 input round-trips exactly through jansson. */
        if (jansson_says_utf8((const unsigned char *)rows[i].in, strlen(rows[i].in)))
            assert_string_equal(json_string_value(j), rows[i].in);
        json_decref(j);
    }
    px_buf_reset(&b);
    assert_int_equal(px_proto_write_string(&b, NULL), 0);
    assert_written(&b, "null");
    px_buf_term(&b);
}

/* Random byte strings: output is always valid JSON; when the input is valid
 * UTF-8 (by jansson's independent judgement) it decodes to the input. */
static void test_write_string_random(void **state) {
    (void)state;
    px_buf_t b;
    px_buf_init(&b, 1 << 16);
    rng_state = 12345;
    size_t valid = 0;
    for (int iter = 0; iter < 20000; iter++) {
        unsigned char s[64];
        size_t n = 0;
        bool dirty = iter % 2; /* half the strings may carry raw random bytes */
        int items = (int)(rng() % 12);
        for (int k = 0; k < items; k++) {
            uint64_t r = rng();
            uint32_t cp;
            if (dirty && r % 5 == 0) { /* a raw byte, often a lead or continuation */
                s[n] = (unsigned char)(r >> 8);
                if (s[n] == 0) s[n] = 0x80;
                n++;
                continue;
            }
            switch ((r >> 3) % 6) { /* a valid code point, encoded */
            case 0: cp = 1 + (uint32_t)((r >> 8) % 0x7f); break;              /* ASCII incl. controls */
            case 1: cp = 0x80 + (uint32_t)((r >> 8) % (0x800 - 0x80)); break;
            case 2: cp = 0x800 + (uint32_t)((r >> 8) % (0xD800 - 0x800)); break;
            case 3: cp = 0xE000 + (uint32_t)((r >> 8) % 0x2000); break;
            case 4: cp = 0x2028 + (uint32_t)((r >> 8) % 2); break;
            default: cp = 0x10000 + (uint32_t)((r >> 8) % 0x100000); break;
            }
            if (cp < 0x80) {
                s[n++] = (unsigned char)cp;
            } else if (cp < 0x800) {
                s[n++] = (unsigned char)(0xC0 | (cp >> 6));
                s[n++] = (unsigned char)(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                s[n++] = (unsigned char)(0xE0 | (cp >> 12));
                s[n++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                s[n++] = (unsigned char)(0x80 | (cp & 0x3F));
            } else {
                s[n++] = (unsigned char)(0xF0 | (cp >> 18));
                s[n++] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
                s[n++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                s[n++] = (unsigned char)(0x80 | (cp & 0x3F));
            }
        }
        s[n] = '\0';
        px_buf_reset(&b);
        assert_int_equal(px_proto_write_string(&b, (const char *)s), 0);
        json_t *j = must_be_json(b.data, b.len);
        if (jansson_says_utf8(s, n)) {
            valid++;
            assert_string_equal(json_string_value(j), (const char *)s);
        } else {
            assert_non_null(strstr(b.data, "\\ufffd"));
        }
        json_decref(j);
    }
    assert_true(valid > 10000);
    assert_true(valid < 19000); /* enough invalid strings too */
    px_buf_term(&b);
}

/* A writer that hits the cap at any byte must leave the buffer exactly as
 * it was (length, contents, terminator). Tried at every possible cap. */
typedef int (*writer_fn)(px_buf_t *);

static px_key_t g_key;
static int w_presence(px_buf_t *b) {
    px_viewer_t viewers[] = {{"alice", "Al\"ice\xff", 2, true, PX_MODE_EDIT, PX_STATUS_AWAY},
                             {"bob", NULL, 1, false, PX_MODE_VIEW, PX_STATUS_ONLINE}};
    px_lock_view_t locks[] = {{"amount", "alice", "Alice", "t-1", 17, 1700000000000},
                              {"note", "bob", "B\nob", "t-2", 18, 1700000000001}};
    px_presence_view_t v = {&g_key, viewers, 2, locks, 2, true, "job \xe2\x80\xa8", 3};
    return px_proto_write_presence(b, &v);
}
static int w_lock_ack(px_buf_t *b) {
    return px_proto_write_lock_ack(b, &g_key, "amount", false, "alice", "Al\\ice", PX_NONE, "r\x01");
}
static int w_error(px_buf_t *b) { return px_proto_write_error(b, "BAD_FIELD", "'x' \"bad\"\t\xc3", "r1"); }
static int w_string(px_buf_t *b) { return px_proto_write_string(b, "a\"b\\c\n\x01\xe2\x80\xa9\xff"); }

static void test_write_capped(void **state) {
    (void)state;
    g_key = key_order42();
    writer_fn fns[] = {w_presence, w_lock_ack, w_error, w_string};
    static const char prefix[] = "[existing bytes]";
    const size_t pl = sizeof prefix - 1;
    for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
        px_buf_t full;
        px_buf_init(&full, 1 << 16);
        assert_int_equal(fns[f](&full), 0);
        json_decref(must_be_json(full.data, full.len));
        size_t need = full.len;
        for (size_t cap = pl; cap <= pl + need; cap++) {
            px_buf_t b;
            px_buf_init(&b, cap);
            assert_int_equal(px_buf_append(&b, prefix, pl), 0);
            int rc = fns[f](&b);
            if (cap < pl + need) {
                if (rc != PX_ENOMEM) fail_msg("writer %zu cap %zu: rc %d", f, cap, rc);
                assert_int_equal(b.len, pl);
                assert_memory_equal(b.data, prefix, pl + 1); /* including the NUL */
            } else {
                assert_int_equal(rc, 0);
                assert_int_equal(b.len, pl + need);
                assert_memory_equal(b.data + pl, full.data, need);
            }
            px_buf_term(&b);
        }
        /* An empty, never-allocated buffer with cap 0 stays empty. */
        px_buf_t z;
        px_buf_init(&z, 0);
        assert_int_equal(fns[f](&z), PX_ENOMEM);
        assert_int_equal(z.len, 0);
        px_buf_term(&z);
        px_buf_term(&full);
    }
}

/* Writers' output, read back with jansson, says what was written. */
static void test_write_reparse(void **state) {
    (void)state;
    g_key = key_order42();
    px_buf_t b;
    px_buf_init(&b, 1 << 16);
    assert_int_equal(w_presence(&b), 0);
    json_t *j = must_be_json(b.data, b.len);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "PRESENCE");
    json_t *users = json_object_get(j, "users");
    assert_int_equal(json_array_size(users), 2);
    assert_string_equal(json_string_value(json_array_get(users, 0)), "alice");
    assert_string_equal(json_string_value(json_array_get(users, 1)), "bob");
    json_t *v0 = json_array_get(json_object_get(j, "viewers"), 0);
    assert_string_equal(json_string_value(json_object_get(v0, "user_name")), "Al\"ice\xef\xbf\xbd");
    assert_true(json_is_true(json_object_get(v0, "has_dirty_tab")));
    assert_true(json_is_null(json_object_get(json_array_get(json_object_get(j, "viewers"), 1), "user_name")));
    json_t *l1 = json_array_get(json_object_get(j, "locks"), 1);
    assert_string_equal(json_string_value(json_object_get(l1, "user_name")), "B\nob");
    assert_int_equal(json_integer_value(json_object_get(l1, "token")), 18);
    assert_int_equal(json_integer_value(json_object_get(l1, "expires_at")), 1700000000001);
    assert_true(json_is_true(json_object_get(j, "stale")));
    assert_string_equal(json_string_value(json_object_get(j, "busyBy")), "job \xe2\x80\xa8");
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 3);
    json_decref(j);

    px_buf_reset(&b);
    assert_int_equal(w_lock_ack(&b), 0);
    j = must_be_json(b.data, b.len);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "r\x01");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "holder"), "user_name")), "Al\\ice");
    assert_true(json_is_null(json_object_get(j, "token")));
    json_decref(j);
    px_buf_term(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_presence),
        cmocka_unit_test(test_write_lock_ack),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_write_string_escapes),
        cmocka_unit_test(test_write_string_random),
        cmocka_unit_test(test_write_capped),
        cmocka_unit_test(test_write_reparse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
