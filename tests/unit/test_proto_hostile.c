/*
 * test_proto_hostile.c - the hostile table of px_proto.c's parser: input,
 * expected rc, expected code word, each input in an exactly-sized heap block.
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
