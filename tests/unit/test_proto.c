/*
 * test_proto.c - unit tests for px_proto.c, the browser <-> gateway JSON
 * protocol.
 *
 * Parser: every message type field by field; a hostile table (input,
 * expected rc, expected code word); every proper prefix of each valid
 * message refused (byte-at-a-time feeding, each prefix in an exactly-sized
 * heap block so ASan sees any over-read); a deterministic random-mutation
 * loop that must never crash and whose accepted output must satisfy the
 * px_msg_t invariants. Writers: exact bytes for PRESENCE, LOCK_ACK and
 * ERROR, string escaping (quotes, backslash, controls, U+2028/9, invalid
 * UTF-8 -> U+FFFD), everything re-parsed with jansson, and a capped buffer
 * that fails at every possible byte leaves the buffer unchanged.
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

/* ------------------------------------------------------------------ */
/* helpers                                                             */
/* ------------------------------------------------------------------ */

/* Parse from a heap block of exactly len bytes (no terminator). */
static int parse_exact(const char *s, size_t len, px_msg_t *m, const char **code, char *err,
                       size_t errn) {
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    int rc = px_proto_parse(copy, len, m, code, err, errn);
    free(copy);
    return rc;
}

static int parse_str(const char *s, px_msg_t *m, const char **code) {
    char err[256];
    return parse_exact(s, strlen(s), m, code, err, sizeof err);
}

static bool is_code_word(const char *c) {
    return c && (strcmp(c, PX_PROTO_E_TOO_LARGE) == 0 || strcmp(c, PX_PROTO_E_BAD_JSON) == 0 ||
                 strcmp(c, PX_PROTO_E_BAD_TYPE) == 0 || strcmp(c, PX_PROTO_E_BAD_FIELD) == 0);
}

/* Parse out[0..len) with jansson (any top-level value); fail the test if
 * it is not valid JSON. Caller owns the result. */
static json_t *must_be_json(const char *s, size_t len) {
    json_error_t e;
    json_t *j = json_loadb(s, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (!j) fail_msg("writer output is not valid JSON (%s): %.*s", e.text, (int)len, s);
    return j;
}

/* True if s[0..n) is valid UTF-8 according to jansson (used as an
 * independent oracle for the writer's own validator). */
static bool jansson_says_utf8(const unsigned char *s, size_t n) {
    /* Wrap the bytes in quotes, escaping what JSON needs escaped, and let
     * jansson decide: it rejects invalid UTF-8 in strings. */
    char *buf = malloc(n * 6 + 3);
    assert_non_null(buf);
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] == '"' || s[i] == '\\') {
            o += (size_t)sprintf(buf + o, "\\u%04x", s[i]);
        } else {
            buf[o++] = (char)s[i];
        }
    }
    buf[o++] = '"';
    json_error_t e;
    json_t *j = json_loadb(buf, o, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    free(buf);
    if (!j) return false;
    json_decref(j);
    return true;
}

/* Deterministic PRNG (xorshift64*): the same mutations on every run. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* The valid messages the prefix and mutation tests start from. */
static const char *const valid_msgs[] = {
    "{\"type\":\"SUB\",\"entity\":\"order\",\"id\":\"42\",\"tab_id\":\"t-1\",\"mode\":\"view\"}",
    "{\"type\":\"SUB\",\"tenant\":\"acme\",\"entity\":\"order\",\"id\":\"42\",\"mode\":\"edit\","
    "\"request_id\":\"r0\"}",
    "{\"type\":\"HB\",\"entity\":\"order\",\"id\":\"42\",\"mode\":\"edit\",\"dirty\":true,"
    "\"status\":\"away\",\"field\":\"amount\",\"cursor\":\"line 3, col 7 \\u00e9\"}",
    "{\"type\":\"HB\"}",
    "{\"type\":\"UNSUB\",\"entity\":\"order\",\"id\":\"42\"}",
    "{\"type\":\"UNSUB\"}",
    "{\"type\":\"LOCK\",\"entity\":\"order\",\"id\":\"42\",\"field\":\"amount\",\"request_id\":\"r1\"}",
    "{\"type\":\"LOCK\",\"field\":\"amount\"}",
    "{\"type\":\"UNLOCK\",\"entity\":\"order\",\"id\":\"42\",\"field\":\"amount\",\"request_id\":\"r2\"}",
    "  {\"type\":\"HB\",\"dirty\":false,\"extra\":{\"nested\":[1,2.5,null,\"x\",{\"k\":true}]}}",
};
#define N_VALID (sizeof valid_msgs / sizeof valid_msgs[0])

/* ------------------------------------------------------------------ */
/* parser: valid messages                                              */
/* ------------------------------------------------------------------ */

static void test_parse_sub(void **state) {
    (void)state;
    px_msg_t m;
    const char *code = "unset";
    assert_int_equal(parse_str("{\"type\":\"SUB\",\"entity\":\"order\",\"id\":\"42\",\"tab_id\":\"t-1\","
                               "\"mode\":\"view\",\"tenant\":\"acme\",\"request_id\":\"req 1!\"}",
                               &m, &code),
                     0);
    assert_null(code);
    assert_int_equal(m.type, PX_MSG_SUB);
    assert_true(m.has_target);
    assert_string_equal(m.entity, "order");
    assert_string_equal(m.id, "42");
    assert_string_equal(m.tenant, "acme");
    assert_string_equal(m.tab_id, "t-1");
    assert_true(m.has_mode);
    assert_int_equal(m.mode, PX_MODE_VIEW);
    assert_false(m.has_dirty);
    assert_false(m.has_status);
    assert_string_equal(m.field, "");
    assert_string_equal(m.cursor, "");
    assert_string_equal(m.request_id, "req 1!");

    /* minimal SUB; mode edit */
    assert_int_equal(parse_str("{\"id\":\"1\",\"entity\":\"e\",\"type\":\"SUB\",\"mode\":\"edit\"}", &m, &code), 0);
    assert_int_equal(m.type, PX_MSG_SUB);
    assert_true(m.has_mode);
    assert_int_equal(m.mode, PX_MODE_EDIT);
    assert_string_equal(m.tab_id, "");
    assert_string_equal(m.tenant, "");
    assert_string_equal(m.request_id, "");
}

static void test_parse_hb(void **state) {
    (void)state;
    px_msg_t m;
    const char *code;
    assert_int_equal(parse_str("{\"type\":\"HB\",\"entity\":\"order\",\"id\":\"42\",\"mode\":\"edit\","
                               "\"dirty\":true,\"status\":\"away\",\"field\":\"amount\","
                               "\"cursor\":\"l3 \\\"c7\\\" \\u00e9\\ud83d\\ude00\"}",
                               &m, &code),
                     0);
    assert_int_equal(m.type, PX_MSG_HB);
    assert_true(m.has_target);
    assert_string_equal(m.entity, "order");
    assert_string_equal(m.id, "42");
    assert_true(m.has_mode);
    assert_int_equal(m.mode, PX_MODE_EDIT);
    assert_true(m.has_dirty);
    assert_true(m.dirty);
    assert_true(m.has_status);
    assert_int_equal(m.status, PX_STATUS_AWAY);
    assert_string_equal(m.field, "amount");
    assert_string_equal(m.cursor, "l3 \"c7\" \xc3\xa9\xf0\x9f\x98\x80");

    /* bare HB: no target, nothing set */
    assert_int_equal(parse_str("{\"type\":\"HB\"}", &m, &code), 0);
    assert_int_equal(m.type, PX_MSG_HB);
    assert_false(m.has_target);
    assert_false(m.has_mode);
    assert_false(m.has_dirty);
    assert_false(m.has_status);
    assert_string_equal(m.entity, "");
    assert_string_equal(m.id, "");

    /* dirty false, status online, empty cursor (clears it) */
    assert_int_equal(parse_str("{\"type\":\"HB\",\"dirty\":false,\"status\":\"online\",\"cursor\":\"\"}", &m, &code), 0);
    assert_true(m.has_dirty);
    assert_false(m.dirty);
    assert_true(m.has_status);
    assert_int_equal(m.status, PX_STATUS_ONLINE);
    assert_string_equal(m.cursor, "");

    /* whitespace around the object is JSON whitespace, allowed */
    assert_int_equal(parse_str(" \t\r\n{ \"type\" : \"HB\" }\n", &m, &code), 0);
}

static void test_parse_unsub_lock_unlock(void **state) {
    (void)state;
    px_msg_t m;
    const char *code;
    assert_int_equal(parse_str("{\"type\":\"UNSUB\",\"entity\":\"order\",\"id\":\"42\"}", &m, &code), 0);
    assert_int_equal(m.type, PX_MSG_UNSUB);
    assert_true(m.has_target);
    assert_int_equal(parse_str("{\"type\":\"UNSUB\"}", &m, &code), 0);
    assert_int_equal(m.type, PX_MSG_UNSUB);
    assert_false(m.has_target);

    assert_int_equal(parse_str("{\"type\":\"LOCK\",\"entity\":\"order\",\"id\":\"42\",\"field\":\"amount\","
                               "\"request_id\":\"r1\"}",
                               &m, &code),
                     0);
    assert_int_equal(m.type, PX_MSG_LOCK);
    assert_true(m.has_target);
    assert_string_equal(m.field, "amount");
    assert_string_equal(m.request_id, "r1");

    assert_int_equal(parse_str("{\"type\":\"LOCK\",\"field\":\"a.b_c-1\"}", &m, &code), 0);
    assert_false(m.has_target);
    assert_string_equal(m.field, "a.b_c-1");
    assert_string_equal(m.request_id, "");

    assert_int_equal(parse_str("{\"type\":\"UNLOCK\",\"entity\":\"order\",\"id\":\"42\",\"field\":\"amount\","
                               "\"request_id\":\"r2\"}",
                               &m, &code),
                     0);
    assert_int_equal(m.type, PX_MSG_UNLOCK);
    assert_string_equal(m.field, "amount");
    assert_string_equal(m.request_id, "r2");
}

static void test_parse_unknown_keys_and_limits(void **state) {
    (void)state;
    px_msg_t m;
    const char *code;
    char err[256];
    /* Unknown keys of any type and depth are ignored. */
    assert_int_equal(parse_str("{\"type\":\"HB\",\"v\":2,\"x\":{\"a\":[1,{\"b\":null}]},\"Type\":\"nope\","
                               "\"ENTITY\":7}",
                               &m, &code),
                     0);
    assert_false(m.has_target);

    /* Deep but legal nesting in an unknown key (1000 levels) is fine. */
    {
        char buf[PX_PROTO_MAX_MSG];
        size_t o = (size_t)sprintf(buf, "{\"type\":\"HB\",\"x\":");
        for (int i = 0; i < 1000; i++) buf[o++] = '[';
        for (int i = 0; i < 1000; i++) buf[o++] = ']';
        buf[o++] = '}';
        assert_int_equal(parse_exact(buf, o, &m, &code, err, sizeof err), 0);
    }

    /* Exactly PX_PROTO_MAX_MSG bytes is accepted; one more is TOO_LARGE. */
    {
        char buf[PX_PROTO_MAX_MSG + 1];
        const char *head = "{\"type\":\"HB\",\"pad\":\"";
        size_t hl = strlen(head);
        memcpy(buf, head, hl);
        memset(buf + hl, 'p', PX_PROTO_MAX_MSG - hl - 2);
        buf[PX_PROTO_MAX_MSG - 2] = '"';
        buf[PX_PROTO_MAX_MSG - 1] = '}';
        assert_int_equal(parse_exact(buf, PX_PROTO_MAX_MSG, &m, &code, err, sizeof err), 0);
        buf[PX_PROTO_MAX_MSG] = ' '; /* still valid JSON, one byte too many */
        assert_int_equal(parse_exact(buf, PX_PROTO_MAX_MSG + 1, &m, &code, err, sizeof err), PX_EPROTO);
        assert_string_equal(code, PX_PROTO_E_TOO_LARGE);
    }

    /* Field length limits: 128 ok / 129 refused for key-charset fields,
     * 256 ok / 257 refused for cursor (counted in bytes, not characters). */
    {
        static const char *const names[] = {"entity", "id", "tenant", "tab_id", "field", "request_id"};
        for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
            for (int len = 128; len <= 129; len++) {
                char val[130], buf[512];
                memset(val, 'v', (size_t)len);
                val[len] = '\0';
                const char *other = strcmp(names[f], "entity") == 0 ? ",\"id\":\"1\""
                                    : strcmp(names[f], "id") == 0   ? ",\"entity\":\"e\""
                                                                    : "";
                snprintf(buf, sizeof buf, "{\"type\":\"HB\",\"%s\":\"%s\"%s}", names[f], val, other);
                int rc = parse_str(buf, &m, &code);
                if (len == 128 && rc != 0) fail_msg("%s of 128 bytes refused", names[f]);
                if (len == 129 && (rc != PX_EINVAL || strcmp(code, PX_PROTO_E_BAD_FIELD) != 0))
                    fail_msg("%s of 129 bytes: rc %d", names[f], rc);
            }
        }
        char buf[1024];
        char cur[300];
        for (int i = 0; i < 128; i++) memcpy(cur + 2 * i, "\xc3\xa9", 2); /* 128 x e-acute = 256 bytes */
        cur[256] = '\0';
        snprintf(buf, sizeof buf, "{\"type\":\"HB\",\"cursor\":\"%s\"}", cur);
        assert_int_equal(parse_str(buf, &m, &code), 0);
        assert_int_equal(strlen(m.cursor), 256);
        snprintf(buf, sizeof buf, "{\"type\":\"HB\",\"cursor\":\"%sx\"}", cur);
        assert_int_equal(parse_str(buf, &m, &code), PX_EINVAL);
        assert_string_equal(code, PX_PROTO_E_BAD_FIELD);
    }

    /* NULL code/errstr are tolerated; a tiny errstr is truncated. */
    assert_int_equal(px_proto_parse("{}", 2, &m, NULL, NULL, 0), PX_EINVAL);
    char tiny[5];
    assert_int_equal(px_proto_parse("nope", 4, &m, &code, tiny, sizeof tiny), PX_EPROTO);
    assert_int_equal(strlen(tiny), 4);
    assert_int_equal(px_proto_parse(NULL, 0, &m, &code, err, sizeof err), PX_EPROTO);
    assert_string_equal(code, PX_PROTO_E_BAD_JSON);
}

/* On a refused message, request_id (if it was valid) survives, so the
 * gateway can echo it in the ERROR; everything else is cleared. */
static void test_parse_error_keeps_request_id(void **state) {
    (void)state;
    px_msg_t m;
    const char *code;
    char err[256];
    const char *in = "{\"type\":\"LOCK\",\"request_id\":\"r9\",\"entity\":\"order\",\"id\":\"42\"}";
    assert_int_equal(parse_exact(in, strlen(in), &m, &code, err, sizeof err), PX_EINVAL);
    assert_string_equal(code, PX_PROTO_E_BAD_FIELD);
    assert_non_null(strstr(err, "field"));
    assert_string_equal(m.request_id, "r9");
    assert_string_equal(m.entity, "");
    assert_false(m.has_target);

    in = "{\"type\":\"lock\",\"request_id\":\"r10\"}";
    assert_int_equal(parse_exact(in, strlen(in), &m, &code, err, sizeof err), PX_EINVAL);
    assert_string_equal(code, PX_PROTO_E_BAD_TYPE);
    assert_string_equal(m.request_id, "r10");

    in = "{\"type\":\"LOCK\",\"request_id\":\"r\\u0001\",\"field\":\"f\"}";
    assert_int_equal(parse_exact(in, strlen(in), &m, &code, err, sizeof err), PX_EINVAL);
    assert_string_equal(m.request_id, "");
}

static void test_msg_type_name(void **state) {
    (void)state;
    assert_string_equal(px_msg_type_name(PX_MSG_SUB), "SUB");
    assert_string_equal(px_msg_type_name(PX_MSG_UNSUB), "UNSUB");
    assert_string_equal(px_msg_type_name(PX_MSG_HB), "HB");
    assert_string_equal(px_msg_type_name(PX_MSG_LOCK), "LOCK");
    assert_string_equal(px_msg_type_name(PX_MSG_UNLOCK), "UNLOCK");
    assert_string_equal(px_msg_type_name(PX_MSG__COUNT), "?");
    assert_string_equal(px_msg_type_name((px_msg_type_t)-1), "?");
}

/* ------------------------------------------------------------------ */
/* parser: hostile table                                               */
/* ------------------------------------------------------------------ */

typedef struct hostile_row {
    const char *in;
    size_t len; /* 0: strlen(in) */
    int rc;
    const char *code;
} hostile_row_t;

#define J PX_EPROTO, PX_PROTO_E_BAD_JSON
#define T PX_EINVAL, PX_PROTO_E_BAD_TYPE
#define F PX_EINVAL, PX_PROTO_E_BAD_FIELD
#define L PX_EPROTO, PX_PROTO_E_TOO_LARGE

static const hostile_row_t hostile_rows[] = {
    /* not JSON / not an object */
    {"not json", 0, J},
    {"", 0, J},
    {" ", 0, J},
    {"[]", 0, J},
    {"[{\"type\":\"HB\"}]", 0, J},
    {"\"SUB\"", 0, J},
    {"42", 0, J},
    {"null", 0, J},
    {"true", 0, J},
    {"{'type':'HB'}", 0, J},
    {"{type:\"HB\"}", 0, J},
    {"{\"type\":\"HB\",}", 0, J},
    {"{\"type\":\"HB\"/*c*/}", 0, J},
    {"{\"type\":\"HB\",\"x\":NaN}", 0, J},
    {"{\"type\":\"HB\",\"x\":01}", 0, J},
    {"{\"type\":\"HB", 0, J},
    {"\xef\xbb\xbf{\"type\":\"HB\"}", 0, J}, /* BOM */
    /* type */
    {"{}", 0, T},
    {"{\"entity\":\"order\",\"id\":\"42\"}", 0, T},
    {"{\"type\":\"PING\"}", 0, T},
    {"{\"type\":\"sub\",\"entity\":\"o\",\"id\":\"1\"}", 0, T},
    {"{\"type\":\"Sub\",\"entity\":\"o\",\"id\":\"1\"}", 0, T},
    {"{\"type\":\"SUB \",\"entity\":\"o\",\"id\":\"1\"}", 0, T},
    {"{\"type\":\"\"}", 0, T},
    {"{\"type\":1}", 0, T},
    {"{\"type\":null}", 0, T},
    {"{\"type\":true}", 0, T},
    {"{\"type\":[\"SUB\"]}", 0, T},
    {"{\"type\":{\"SUB\":1}}", 0, T},
    /* duplicates, trailing bytes */
    {"{\"type\":\"SUB\",\"type\":\"HB\"}", 0, J},
    {"{\"type\":\"HB\",\"entity\":\"a\",\"entity\":\"a\",\"id\":\"1\"}", 0, J},
    {"{\"type\":\"HB\",\"x\":{\"a\":1,\"a\":2}}", 0, J},
    {"{\"type\":\"HB\"}x", 0, J},
    {"{\"type\":\"HB\"}{\"type\":\"HB\"}", 0, J},
    {"{\"type\":\"HB\"},", 0, J},
    {"{\"type\":\"HB\"}]", 0, J},
    {"{\"type\":\"HB\"}\0", sizeof "{\"type\":\"HB\"}", J}, /* raw NUL after */
    {"{\"type\":\"H\0B\"}", sizeof "{\"type\":\"H\0B\"}" - 1, J},  /* raw NUL inside */
    /* UTF-8 */
    {"{\"type\":\"HB\",\"cursor\":\"\xff\"}", 0, J},
    {"{\"type\":\"HB\",\"cursor\":\"\xc3\"}", 0, J},          /* truncated */
    {"{\"type\":\"HB\",\"cursor\":\"\xc0\xaf\"}", 0, J},      /* overlong '/' */
    {"{\"type\":\"HB\",\"cursor\":\"\xe0\x80\xaf\"}", 0, J},  /* overlong, 3 bytes */
    {"{\"type\":\"HB\",\"cursor\":\"\xed\xa0\x80\"}", 0, J},  /* UTF-8-encoded surrogate */
    {"{\"type\":\"HB\",\"cursor\":\"\xf4\x90\x80\x80\"}", 0, J}, /* > U+10FFFF */
    {"{\"type\":\"HB\",\"x\xff\":1}", 0, J},                 /* bad UTF-8 in an unknown key */
    {"{\"type\":\"HB\",\"cursor\":\"\\ud800\"}", 0, J},       /* lone high surrogate */
    {"{\"type\":\"HB\",\"cursor\":\"\\udc00\"}", 0, J},       /* lone low surrogate */
    {"{\"type\":\"HB\",\"cursor\":\"\\ud800x\"}", 0, J},
    {"{\"type\":\"HB\",\"cursor\":\"\\u12\"}", 0, J},
    {"{\"type\":\"HB\",\"cursor\":\"\\x41\"}", 0, J},
    {"{\"type\":\"HB\",\"cursor\":\"a\tb\"}", 0, J},          /* raw control char */
    /* embedded NUL via \u0000 (refused, never truncated) */
    {"{\"type\":\"SUB\",\"entity\":\"order\",\"id\":\"4\\u00002\"}", 0, J},
    {"{\"type\":\"HB\",\"cursor\":\"\\u0000\"}", 0, J},
    {"{\"type\":\"HB\",\"a\\u0000b\":1}", 0, J},
    {"{\"type\":\"SUB\\u0000\",\"entity\":\"o\",\"id\":\"1\"}", 0, J},
    /* huge numbers */
    {"{\"type\":\"HB\",\"dirty\":1e999}", 0, J},
    {"{\"type\":\"HB\",\"dirty\":123456789012345678901234567890}", 0, J},
    {"{\"type\":\"HB\",\"dirty\":-1e999}", 0, J},
    /* target */
    {"{\"type\":\"SUB\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"order\"}", 0, F},
    {"{\"type\":\"SUB\",\"id\":\"42\"}", 0, F},
    {"{\"type\":\"HB\",\"entity\":\"order\"}", 0, F},
    {"{\"type\":\"UNSUB\",\"id\":\"42\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"or der\",\"id\":\"1\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"a:b\",\"id\":\"1\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"o\",\"id\":\"1/2\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"o\",\"id\":\"{1}\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"o\",\"id\":\"*\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"caf\\u00e9\",\"id\":\"1\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"o\",\"id\":\"1\\n\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"\",\"id\":\"1\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":{\"x\":1},\"id\":\"1\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"o\",\"id\":[\"1\"]}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"o\",\"id\":42}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":null,\"id\":\"1\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"o\",\"id\":\"1\",\"tenant\":\"a b\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"o\",\"id\":\"1\",\"tab_id\":\"\"}", 0, F},
    {"{\"type\":\"SUB\",\"entity\":\"o\",\"id\":\"1\",\"tab_id\":\"t 1\"}", 0, F},
    /* field */
    {"{\"type\":\"LOCK\",\"entity\":\"o\",\"id\":\"1\"}", 0, F},
    {"{\"type\":\"UNLOCK\",\"entity\":\"o\",\"id\":\"1\"}", 0, F},
    {"{\"type\":\"LOCK\",\"field\":5}", 0, F},
    {"{\"type\":\"LOCK\",\"field\":\"\"}", 0, F},
    {"{\"type\":\"LOCK\",\"field\":\"amo*unt\"}", 0, F},
    {"{\"type\":\"LOCK\",\"field\":[\"amount\"]}", 0, F},
    {"{\"type\":\"HB\",\"field\":\"a b\"}", 0, F},
    /* dirty, mode, status, cursor */
    {"{\"type\":\"HB\",\"dirty\":\"yes\"}", 0, F},
    {"{\"type\":\"HB\",\"dirty\":1}", 0, F},
    {"{\"type\":\"HB\",\"dirty\":0.0}", 0, F},
    {"{\"type\":\"HB\",\"dirty\":null}", 0, F},
    {"{\"type\":\"HB\",\"dirty\":[true]}", 0, F},
    {"{\"type\":\"HB\",\"dirty\":9223372036854775807}", 0, F},
    {"{\"type\":\"HB\",\"mode\":\"write\"}", 0, F},
    {"{\"type\":\"HB\",\"mode\":\"VIEW\"}", 0, F},
    {"{\"type\":\"HB\",\"mode\":\"\"}", 0, F},
    {"{\"type\":\"HB\",\"mode\":1}", 0, F},
    {"{\"type\":\"HB\",\"status\":\"busy\"}", 0, F},
    {"{\"type\":\"HB\",\"status\":\"Online\"}", 0, F},
    {"{\"type\":\"HB\",\"status\":{}}", 0, F},
    {"{\"type\":\"HB\",\"cursor\":null}", 0, F},
    {"{\"type\":\"HB\",\"cursor\":[\"x\"]}", 0, F},
    {"{\"type\":\"HB\",\"cursor\":12}", 0, F},
    /* request_id */
    {"{\"type\":\"LOCK\",\"field\":\"f\",\"request_id\":\"r\\u0001\"}", 0, F},
    {"{\"type\":\"LOCK\",\"field\":\"f\",\"request_id\":\"r\\t1\"}", 0, F},
    {"{\"type\":\"LOCK\",\"field\":\"f\",\"request_id\":\"r\\u007f\"}", 0, F},
    {"{\"type\":\"LOCK\",\"field\":\"f\",\"request_id\":\"r\\u00e9\"}", 0, F},
    {"{\"type\":\"LOCK\",\"field\":\"f\",\"request_id\":\"\"}", 0, F},
    {"{\"type\":\"LOCK\",\"field\":\"f\",\"request_id\":7}", 0, F},
    {"{\"type\":\"LOCK\",\"field\":\"f\",\"request_id\":null}", 0, F},
};

#undef J
#undef T
#undef F
#undef L

/* Run one hostile row and check rc and code; also check that the refusal
 * leaves `out` cleared except for request_id. */
static void run_hostile(const char *what, size_t idx, const char *in, size_t len, int want_rc,
                        const char *want_code) {
    px_msg_t m;
    memset(&m, 0x7e, sizeof m);
    const char *code = NULL;
    char err[256] = "";
    int rc = parse_exact(in, len, &m, &code, err, sizeof err);
    if (rc != want_rc || !code || strcmp(code, want_code) != 0)
        fail_msg("%s row %zu: rc %d code %s (%s), want rc %d code %s", what, idx, rc,
                 code ? code : "NULL", err, want_rc, want_code);
    if (err[0] == '\0') fail_msg("%s row %zu: no reason in errstr", what, idx);
    assert_false(m.has_target);
    assert_string_equal(m.entity, "");
    assert_string_equal(m.cursor, "");

    /* The ERROR the gateway would send for it is valid JSON. */
    px_buf_t b;
    px_buf_init(&b, 1 << 16);
    assert_int_equal(px_proto_write_error(&b, code, err, m.request_id), 0);
    json_decref(must_be_json(b.data, b.len));
    px_buf_term(&b);
}

static void test_hostile_table(void **state) {
    (void)state;
    size_t n = sizeof hostile_rows / sizeof hostile_rows[0];
    assert_true(n >= 30);
    for (size_t i = 0; i < n; i++) {
        const hostile_row_t *r = &hostile_rows[i];
        run_hostile("table", i, r->in, r->len ? r->len : strlen(r->in), r->rc, r->code);
    }

    /* Generated rows: sizes that do not fit in a literal table. */
    static char big[20000]; /* parse_exact copies into an exact-size heap block */
    size_t o;

    /* 4097 bytes of otherwise valid JSON: TOO_LARGE, before parsing. */
    o = (size_t)sprintf(big, "{\"type\":\"HB\",\"pad\":\"");
    memset(big + o, 'p', PX_PROTO_MAX_MSG + 1 - o - 2);
    memcpy(big + PX_PROTO_MAX_MSG - 1, "\"}", 2);
    run_hostile("gen", 0, big, PX_PROTO_MAX_MSG + 1, PX_EPROTO, PX_PROTO_E_TOO_LARGE);

    /* 10000 '[' : TOO_LARGE. */
    memset(big, '[', 10000);
    run_hostile("gen", 1, big, 10000, PX_EPROTO, PX_PROTO_E_TOO_LARGE);

    /* 4000 '[' (fits): jansson's depth limit refuses it. */
    run_hostile("gen", 2, big, 4000, PX_EPROTO, PX_PROTO_E_BAD_JSON);

    /* Depth limit inside an object, under the size limit. */
    o = (size_t)sprintf(big, "{\"type\":\"HB\",\"x\":");
    memset(big + o, '[', 3000);
    o += 3000;
    run_hostile("gen", 3, big, o, PX_EPROTO, PX_PROTO_E_BAD_JSON);
    /* Under the depth limit but never closed: premature end of input. */
    o = (size_t)sprintf(big, "{\"type\":\"HB\",\"x\":");
    memset(big + o, '[', 2030);
    o += 2030;
    run_hostile("gen", 4, big, o, PX_EPROTO, PX_PROTO_E_BAD_JSON);

    /* 129-byte id, 129-byte field, 300-byte cursor. */
    char v[301];
    memset(v, 'i', 300);
    v[129] = '\0';
    o = (size_t)sprintf(big, "{\"type\":\"SUB\",\"entity\":\"order\",\"id\":\"%s\"}", v);
    run_hostile("gen", 5, big, o, PX_EINVAL, PX_PROTO_E_BAD_FIELD);
    o = (size_t)sprintf(big, "{\"type\":\"LOCK\",\"field\":\"%s\"}", v);
    run_hostile("gen", 6, big, o, PX_EINVAL, PX_PROTO_E_BAD_FIELD);
    memset(v, 'c', 300);
    v[300] = '\0';
    o = (size_t)sprintf(big, "{\"type\":\"HB\",\"cursor\":\"%s\"}", v);
    run_hostile("gen", 7, big, o, PX_EINVAL, PX_PROTO_E_BAD_FIELD);

    /* A huge number of tiny unknown keys still under the size limit: ok. */
    o = (size_t)sprintf(big, "{\"type\":\"HB\"");
    for (int i = 0; o < PX_PROTO_MAX_MSG - 16; i++) o += (size_t)sprintf(big + o, ",\"%x\":0", i);
    big[o++] = '}';
    px_msg_t m;
    const char *code;
    char err[256];
    assert_int_equal(parse_exact(big, o, &m, &code, err, sizeof err), 0);
}

/* ------------------------------------------------------------------ */
/* parser: byte at a time                                              */
/* ------------------------------------------------------------------ */

static void test_prefixes(void **state) {
    (void)state;
    for (size_t v = 0; v < N_VALID; v++) {
        const char *s = valid_msgs[v];
        size_t n = strlen(s);
        px_msg_t m;
        const char *code;
        char err[256];
        for (size_t k = 0; k < n; k++) {
            int rc = parse_exact(s, k, &m, &code, err, sizeof err);
            if (rc == 0) fail_msg("msg %zu: prefix of %zu/%zu bytes accepted", v, k, n);
            if (!is_code_word(code)) fail_msg("msg %zu prefix %zu: bad code", v, k);
        }
        if (parse_exact(s, n, &m, &code, err, sizeof err) != 0)
            fail_msg("msg %zu refused: %s", v, err);
    }
}

/* ------------------------------------------------------------------ */
/* parser: random mutations                                            */
/* ------------------------------------------------------------------ */

/* What must hold for any message the parser accepts. */
static void check_msg_invariants(const px_msg_t *m) {
    assert_true((int)m->type >= 0 && m->type < PX_MSG__COUNT);
    assert_true(memchr(m->entity, '\0', sizeof m->entity) != NULL);
    assert_true(memchr(m->id, '\0', sizeof m->id) != NULL);
    assert_true(memchr(m->tenant, '\0', sizeof m->tenant) != NULL);
    assert_true(memchr(m->tab_id, '\0', sizeof m->tab_id) != NULL);
    assert_true(memchr(m->field, '\0', sizeof m->field) != NULL);
    assert_true(memchr(m->cursor, '\0', sizeof m->cursor) != NULL);
    assert_true(memchr(m->request_id, '\0', sizeof m->request_id) != NULL);
    assert_int_equal(m->has_target, m->entity[0] != '\0');
    assert_int_equal(m->has_target, m->id[0] != '\0');
    if (m->has_target) {
        assert_true(px_key_part_valid(m->entity, strlen(m->entity)));
        assert_true(px_key_part_valid(m->id, strlen(m->id)));
    }
    if (m->type == PX_MSG_SUB) assert_true(m->has_target);
    if (m->type == PX_MSG_LOCK || m->type == PX_MSG_UNLOCK) assert_true(m->field[0] != '\0');
    if (m->field[0]) assert_true(px_key_part_valid(m->field, strlen(m->field)));
    if (m->tab_id[0]) assert_true(px_key_part_valid(m->tab_id, strlen(m->tab_id)));
    if (m->tenant[0]) assert_true(px_key_part_valid(m->tenant, strlen(m->tenant)));
    for (const char *p = m->request_id; *p; p++) assert_true(*p >= 0x20 && *p <= 0x7e);
    if (m->has_mode) assert_true(m->mode == PX_MODE_VIEW || m->mode == PX_MODE_EDIT);
    if (m->has_status) assert_true(m->status == PX_STATUS_ONLINE || m->status == PX_STATUS_AWAY);
}

static void test_mutations(void **state) {
    (void)state;
    static const char *const tokens[] = {"\"", "{", "}", "[", "]", ":", ",", "\\", "\\u0000",
                                         "\\ud800", "\xff", "\xc0\xaf", "\xe2\x80\xa8", "null",
                                         "true", "1e999", "\"type\"", "\"SUB\"", "\"LOCK\"",
                                         "\"entity\":\"x\"", "\"id\":\"y\"", " ", "\0", "\t"};
    const size_t cap = PX_PROTO_MAX_MSG + 64;
    char *buf = malloc(cap);
    assert_non_null(buf);
    px_buf_t out;
    px_buf_init(&out, 1 << 16);
    size_t accepted = 0, refused = 0;
    rng_state = 0x9E3779B97F4A7C15ull;
    for (int iter = 0; iter < 5000; iter++) {
        const char *src = valid_msgs[rng() % N_VALID];
        size_t n = strlen(src);
        memcpy(buf, src, n);
        int muts = 1 + (int)(rng() % 4);
        for (int k = 0; k < muts; k++) {
            size_t pos = n ? (size_t)(rng() % (n + 1)) : 0;
            switch (rng() % 6) {
            case 0: /* flip a bit */
                if (n) buf[pos % n] ^= (char)(1u << (rng() % 8));
                break;
            case 1: /* random byte */
                if (n) buf[pos % n] = (char)(rng() & 0xff);
                break;
            case 2: /* delete a byte */
                if (n && pos < n) {
                    memmove(buf + pos, buf + pos + 1, n - pos - 1);
                    n--;
                }
                break;
            case 3: { /* insert a token */
                const char *t = tokens[rng() % (sizeof tokens / sizeof tokens[0])];
                size_t tl = t[0] ? strlen(t) : 1;
                if (n + tl <= cap) {
                    memmove(buf + pos + tl, buf + pos, n - pos);
                    memcpy(buf + pos, t, tl);
                    n += tl;
                }
                break;
            }
            case 4: /* duplicate a chunk */
                if (n) {
                    size_t start = (size_t)(rng() % n), len = 1 + (size_t)(rng() % 32);
                    if (start + len > n) len = n - start;
                    if (n + len <= cap) {
                        memmove(buf + pos + len, buf + pos, n - pos);
                        memmove(buf + pos, buf + (start >= pos ? start + len : start), len);
                        n += len;
                    }
                }
                break;
            case 5: /* truncate */
                n = pos;
                break;
            }
        }
        px_msg_t m;
        const char *code = NULL;
        char err[256];
        int rc = parse_exact(buf, n, &m, &code, err, sizeof err);
        px_buf_reset(&out);
        if (rc == 0) {
            accepted++;
            assert_null(code);
            check_msg_invariants(&m);
            px_key_t key;
            if (m.has_target) {
                assert_int_equal(px_key_set(&key, m.tenant[0] ? m.tenant : "t", m.entity, m.id, NULL, 0), 0);
            }
            assert_int_equal(px_proto_write_lock_ack(&out, m.has_target ? &key : NULL, m.field, true,
                                                     m.tab_id, m.cursor, 1, m.request_id),
                             0);
        } else {
            refused++;
            assert_true(rc == PX_EPROTO || rc == PX_EINVAL);
            assert_true(is_code_word(code));
            assert_int_equal(px_proto_write_error(&out, code, err, m.request_id), 0);
        }
        json_decref(must_be_json(out.data, out.len));
    }
    /* The mutations must exercise both outcomes to mean anything. */
    assert_true(accepted > 100);
    assert_true(refused > 1000);
    px_buf_term(&out);
    free(buf);
}

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
        cmocka_unit_test(test_parse_sub),
        cmocka_unit_test(test_parse_hb),
        cmocka_unit_test(test_parse_unsub_lock_unlock),
        cmocka_unit_test(test_parse_unknown_keys_and_limits),
        cmocka_unit_test(test_parse_error_keeps_request_id),
        cmocka_unit_test(test_msg_type_name),
        cmocka_unit_test(test_hostile_table),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_mutations),
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
