/*
 * test_registry.c - unit tests for px_registry.c's pure layer: the
 * registry's answers ({"id"}, {"schema"}, error bodies) read from
 * exact-size heap copies, with tables of hostile answers; and the
 * client's refusal of bad settings. The HTTP calls run against a real
 * registry in tests/integration/test_registry_interop.py.
 * Run under ASan/UBSan and valgrind by ctest (label unit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "px_buf.h"
#include "px_err.h"
#include "px_registry.h"

static char *exact(const char *s, size_t len) {
    char *c = malloc(len ? len : 1);
    assert_non_null(c);
    if (len) memcpy(c, s, len);
    return c;
}

static void test_ids(void **state) {
    (void)state;
    static const struct {
        const char *in;
        int rc;
        int32_t id;
        const char *why;
    } rows[] = {
        {"{\"id\":1}", 0, 1, NULL},
        {" {\"id\" : 2147483647 , \"version\":3}", 0, INT32_MAX, NULL},
        {"{\"guid\":\"x\",\"id\":0}", 0, 0, NULL},
        {"", PX_EPROTO, 0, "empty"},
        {"{", PX_EPROTO, 0, "not JSON"},
        {"[1]", PX_EPROTO, 0, "not a JSON object"},
        {"\"id\"", PX_EPROTO, 0, "not JSON"}, /* a bare string: not an object or array */
        {"{}", PX_EPROTO, 0, "no integer"},
        {"{\"id\":\"7\"}", PX_EPROTO, 0, "no integer"},
        {"{\"id\":7.5}", PX_EPROTO, 0, "no integer"},
        {"{\"id\":null}", PX_EPROTO, 0, "no integer"},
        {"{\"id\":-1}", PX_EPROTO, 0, "out of range"},
        {"{\"id\":2147483648}", PX_EPROTO, 0, "out of range"},
        {"{\"id\":99999999999999999999999}", PX_EPROTO, 0, "not JSON"},
        {"{\"id\":1,\"id\":2}", PX_EPROTO, 0, "not JSON"},
        {"{\"id\":1} trailing", PX_EPROTO, 0, "not JSON"},
        {"{\"id\":1,\"x\":\"\xff\"}", PX_EPROTO, 0, "not JSON"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        size_t len = strlen(rows[r].in);
        char *in = exact(rows[r].in, len);
        int32_t id = -99;
        char err[200] = "";
        int rc = px_registry_parse_id(in, len, &id, err, sizeof err);
        free(in);
        if (rc != rows[r].rc) fail_msg("row %zu: rc %d, want %d (%s)", r, rc, rows[r].rc, err);
        if (rc == 0) assert_int_equal(id, rows[r].id);
        else {
            assert_int_equal(id, -99);
            if (!strstr(err, rows[r].why)) fail_msg("row %zu: '%s' lacks '%s'", r, err, rows[r].why);
        }
    }
    /* NULL with a length is refused, not read. */
    int32_t id;
    char err[64];
    assert_int_equal(px_registry_parse_id(NULL, 0, &id, err, sizeof err), PX_EPROTO);
}

static void test_schemas(void **state) {
    (void)state;
    static const struct {
        const char *in;
        int rc;
        const char *want;
    } rows[] = {
        {"{\"schema\":\"{\\\"type\\\":\\\"string\\\"}\"}", 0, "{\"type\":\"string\"}"},
        {"{\"schemaType\":\"AVRO\",\"schema\":\"\\\"int\\\"\",\"references\":[]}", 0, "\"int\""},
        {"{\"schema\":\"\"}", PX_EPROTO, "no \"schema\""},
        {"{\"schema\":{\"type\":\"string\"}}", PX_EPROTO, "no \"schema\""},
        {"{\"schema\":null}", PX_EPROTO, "no \"schema\""},
        {"{\"id\":1}", PX_EPROTO, "no \"schema\""},
        {"{\"schema\":\"a\\u0000b\"}", 0, NULL}, /* jansson refuses NUL in strings by default */
        {"<html>proxy</html>", PX_EPROTO, "not JSON"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        size_t len = strlen(rows[r].in);
        char *in = exact(rows[r].in, len);
        px_buf_t out;
        px_buf_init(&out, PX_REGISTRY_SCHEMA_MAX);
        char err[200] = "";
        int rc = px_registry_parse_schema(in, len, &out, err, sizeof err);
        free(in);
        if (!rows[r].want) { /* the NUL row: refused either way */
            assert_int_not_equal(rc, 0);
        } else if (rows[r].rc == 0) {
            if (rc) fail_msg("row %zu: %s", r, err);
            assert_string_equal(out.data, rows[r].want);
        } else {
            assert_int_equal(rc, rows[r].rc);
            assert_int_equal(out.len, 0);
            if (!strstr(err, rows[r].want)) fail_msg("row %zu: '%s' lacks '%s'", r, err, rows[r].want);
        }
        px_buf_term(&out);
    }
    /* A schema over the bound is refused whole. */
    size_t big = PX_REGISTRY_SCHEMA_MAX + 1;
    char *s = malloc(big + 16);
    assert_non_null(s);
    memcpy(s, "{\"schema\":\"", 11);
    memset(s + 11, 'x', big);
    memcpy(s + 11 + big, "\"}", 2);
    px_buf_t out;
    px_buf_init(&out, 2 * PX_REGISTRY_SCHEMA_MAX);
    char err[200];
    assert_int_equal(px_registry_parse_schema(s, 13 + big, &out, err, sizeof err), PX_EPROTO);
    assert_non_null(strstr(err, "most 65536"));
    assert_int_equal(out.len, 0);
    px_buf_term(&out);
    free(s);
}

static void test_errors(void **state) {
    (void)state;
    char err[200];
    const char *e = "{\"error_code\":40401,\"message\":\"Subject not found\"}";
    px_registry_parse_error(e, strlen(e), 404, err, sizeof err);
    assert_string_equal(err, "registry: HTTP 404, error 40401: Subject not found");
    const char *html = "<html>\n<b>502</b>\x01</html>";
    px_registry_parse_error(html, strlen(html), 502, err, sizeof err);
    assert_string_equal(err, "registry: HTTP 502: <html>.<b>502</b>.</html>");
    px_registry_parse_error(NULL, 0, 500, err, sizeof err);
    assert_string_equal(err, "registry: HTTP 500");
    char longbody[400];
    memset(longbody, 'y', sizeof longbody);
    px_registry_parse_error(longbody, sizeof longbody, 503, err, sizeof err);
    assert_int_equal(strlen(err), strlen("registry: HTTP 503: ") + 120);
    const char *wrong = "{\"error_code\":\"x\",\"message\":1}";
    px_registry_parse_error(wrong, strlen(wrong), 422, err, sizeof err);
    assert_non_null(strstr(err, "HTTP 422: {\"error_code\""));
}

static void test_bad_settings(void **state) {
    (void)state;
    char err[200] = "";
    static const char *bad_urls[] = {NULL, "", "ftp://x", "127.0.0.1:8081", "file:///etc/passwd"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        px_registry_conf_t c = {.url = bad_urls[i], .timeout_ms = 1000};
        assert_null(px_registry_new(&c, err, sizeof err));
        assert_non_null(strstr(err, "must start with http:// or https://"));
    }
    px_registry_conf_t c = {.url = "http://127.0.0.1:1", .timeout_ms = 0};
    assert_null(px_registry_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "timeout"));
    /* A good one: trailing slashes dropped from the URL it reports. */
    c.url = "http://127.0.0.1:1/apis/ccompat/v7//";
    c.timeout_ms = 200;
    c.user_info = "u:p";
    px_registry_t *r = px_registry_new(&c, err, sizeof err);
    assert_non_null(r);
    assert_string_equal(px_registry_url(r), "http://127.0.0.1:1/apis/ccompat/v7");
    /* Nothing listens on port 1: a clear backend error, within the timeout. */
    int32_t id = -1;
    assert_int_equal(px_registry_register(r, "t-value", "\"string\"", &id, err, sizeof err), PX_EBACKEND);
    assert_non_null(strstr(err, "http://127.0.0.1:1/apis/ccompat/v7"));
    assert_int_equal(id, -1);
    px_registry_free(r);
    px_registry_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_schemas),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_bad_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
