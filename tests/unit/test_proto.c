/*
 * test_proto.c - unit tests for px_proto.c, the browser <-> gateway JSON
 * protocol: the parser.
 *
 * Every message type field by field; every proper prefix of each valid
 * message refused (byte-at-a-time feeding, each prefix in an exactly-sized
 * heap block so ASan sees any over-read); a deterministic random-mutation
 * loop that must never crash and whose accepted output must satisfy the
 * px_msg_t invariants. The hostile table is in test_proto_hostile.c, the
 * writers in test_proto_write.c.
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

/* Mutate buf[0..n) one to four times at random (flip a bit, a random byte,
 * delete a byte, insert a token, duplicate a chunk, truncate) within cap
 * bytes; returns the new length. */
static size_t mutate(char *buf, size_t n, size_t cap) {
    static const char *const tokens[] = {"\"", "{", "}", "[", "]", ":", ",", "\\", "\\u0000",
                                         "\\ud800", "\xff", "\xc0\xaf", "\xe2\x80\xa8", "null",
                                         "true", "1e999", "\"type\"", "\"SUB\"", "\"LOCK\"",
                                         "\"entity\":\"x\"", "\"id\":\"y\"", " ", "\0", "\t"};
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
    return n;
}

static void test_mutations(void **state) {
    (void)state;
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
        n = mutate(buf, n, cap);
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_sub),
        cmocka_unit_test(test_parse_hb),
        cmocka_unit_test(test_parse_unsub_lock_unlock),
        cmocka_unit_test(test_parse_unknown_keys_and_limits),
        cmocka_unit_test(test_parse_error_keeps_request_id),
        cmocka_unit_test(test_msg_type_name),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
