/*
 * test_avro_confluent.c - the Avro codec in the Confluent wire format
 * (px_avro_set_confluent_id, px_avro_add_schema, px_avro_resolve.c):
 * every sample event round-trips through 00 + id framing (and avro-c reads
 * the same body); records written with other versions of a schema are read
 * by Avro's resolution rules (a new optional field at the end or in the
 * middle, a removed optional field, int promoted to long, a plain string
 * into ["null","string"], a reordered union, an enum with a new symbol);
 * unresolvable schemas are refused with a reason; and hostile bodies and
 * schemas (unknown ids, every prefix, huge skipped arrays, deep nesting,
 * too many ids) fail cleanly. Writer schemas are built from the built-in
 * ones with jansson, so they follow any edit of schemas/.
 * Run under ASan/UBSan and valgrind by ctest (label unit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "avro_samples.h"
#include "px_avro.h"
#include "px_avro_int.h"
#include "px_err.h"
#include "px_wire.h"

static int setup(void **state) {
    char err[256];
    *state = px_avro_new(err, sizeof err);
    return *state ? 0 : -1;
}

static int teardown(void **state) {
    px_avro_free(*state);
    return 0;
}

static int decode_exact(px_avro_t *c, const void *buf, size_t len, px_event_t *ev, char *err, size_t n) {
    void *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, buf, len);
    int rc = px_avro_decode(c, copy, len, ev, err, n);
    free(copy);
    return rc;
}

/* The built-in schema of kind as a jansson object, for editing. */
static json_t *schema_of(px_kind_t kind) {
    json_error_t je;
    json_t *j = json_loads(px_avro_schema_json(kind), 0, &je);
    assert_non_null(j);
    return j;
}

static json_t *fields_of(json_t *schema) {
    json_t *f = json_object_get(schema, "fields");
    assert_true(json_is_array(f));
    return f;
}

static size_t field_index(json_t *schema, const char *name) {
    json_t *f = fields_of(schema);
    for (size_t i = 0; i < json_array_size(f); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(f, i), "name")), name) == 0) return i;
    fail_msg("no field %s", name);
    return 0;
}

/* Register j (consumed) under id; returns px_avro_add_schema's result. */
static int add(px_avro_t *c, int32_t id, json_t *j, char *err, size_t n) {
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_non_null(s);
    int rc = px_avro_add_schema(c, id, s, err, n);
    free(s);
    return rc;
}

/* Encode ev natively and return the body (without any header) in out. */
static void body_of(px_avro_t *c, const px_event_t *ev, px_buf_t *out) {
    char err[256];
    px_buf_t tmp;
    px_buf_init(&tmp, 1 << 16);
    assert_int_equal(px_avro_set_confluent_id(c, ev->kind, -1, err, sizeof err), 0);
    if (px_avro_encode(c, ev, &tmp, err, sizeof err)) fail_msg("%s", err);
    px_buf_reset(out);
    px_buf_append(out, tmp.data + 10, tmp.len - 10);
    px_buf_term(&tmp);
}

static void frame(px_buf_t *out, int32_t id, const void *body, size_t len) {
    px_buf_reset(out);
    px_wire_put_confluent(out, (uint32_t)id);
    px_buf_append(out, body, len);
}

static void test_round_trip(void **state) {
    px_avro_t *c = *state;
    char err[256];
    px_buf_t out;
    px_buf_init(&out, 1 << 16);
    for (int k = 0; k < PX_KIND__COUNT; k++) {
        int32_t id = 100 + k;
        assert_int_equal(px_avro_set_confluent_id(c, (px_kind_t)k, id, err, sizeof err), 0);
        assert_true(px_avro_knows_id(c, id));
        for (int t = 0; t < px_event_type_count((px_kind_t)k); t++)
            for (int full = 0; full <= 1; full++) {
                px_event_t ev, back, back2;
                px_sample_event(&ev, (px_kind_t)k, t, full);
                px_buf_reset(&out);
                if (px_avro_encode(c, &ev, &out, err, sizeof err)) fail_msg("encode: %s", err);
                px_wire_hdr_t h;
                assert_int_equal(px_wire_parse(out.data, out.len, &h, err, sizeof err), 0);
                assert_int_equal(h.format, PX_WIRE_CONFLUENT);
                assert_int_equal(h.schema_id, id);
                if (decode_exact(c, out.data, out.len, &back, err, sizeof err)) fail_msg("decode: %s", err);
                assert_true(px_sample_equal(&ev, &back));
                if (px_avro_decode_avroc(c, out.data, out.len, &back2, err, sizeof err)) fail_msg("avro-c: %s", err);
                assert_true(px_sample_equal(&ev, &back2));
            }
        /* Back to single-object: the id stays known to the decoder. */
        assert_int_equal(px_avro_set_confluent_id(c, (px_kind_t)k, -1, err, sizeof err), 0);
        px_event_t ev;
        px_sample_event(&ev, (px_kind_t)k, 0, false);
        px_buf_reset(&out);
        assert_int_equal(px_avro_encode(c, &ev, &out, err, sizeof err), 0);
        assert_int_equal((unsigned char)out.data[0], 0xC3);
        assert_true(px_avro_knows_id(c, id));
    }
    assert_int_equal(px_avro_set_confluent_id(c, PX_KIND__COUNT, 1, err, sizeof err), PX_EINVAL);
    px_buf_term(&out);
}

/* ChangeEvent version 2: a new optional field "note" after the last one;
 * the writer's bytes are the version 1 body plus that field. */
static void test_new_optional_field(void **state) {
    px_avro_t *c = *state;
    char err[256];
    json_t *v2 = schema_of(PX_KIND_CHANGE);
    json_array_append_new(fields_of(v2),
                          json_pack("{s:s, s:[s,s], s:n}", "name", "note", "type", "null", "string", "default"));
    assert_int_equal(add(c, 2, v2, err, sizeof err), 0);
    assert_true(px_avro_knows_id(c, 2));
    px_buf_t body, rec;
    px_buf_init(&body, 1 << 16);
    px_buf_init(&rec, 1 << 16);
    for (int t = 0; t < PX_CH__COUNT; t++) {
        px_event_t ev, back;
        px_sample_event(&ev, PX_KIND_CHANGE, t, true);
        body_of(c, &ev, &body);
        frame(&rec, 2, body.data, body.len);
        px_buf_append(&rec, "\x02\x06" "abc", 5); /* branch 1, "abc" */
        if (decode_exact(c, rec.data, rec.len, &back, err, sizeof err)) fail_msg("type %d: %s", t, err);
        assert_true(px_sample_equal(&ev, &back));
        frame(&rec, 2, body.data, body.len);
        px_buf_append(&rec, "\x00", 1); /* note = null */
        assert_int_equal(decode_exact(c, rec.data, rec.len, &back, err, sizeof err), 0);
        assert_true(px_sample_equal(&ev, &back));
        /* Bytes after the last field are refused. */
        frame(&rec, 2, body.data, body.len);
        px_buf_append(&rec, "\x00zz", 3);
        assert_int_equal(decode_exact(c, rec.data, rec.len, &back, err, sizeof err), PX_EPROTO);
        assert_non_null(strstr(err, "2 trailing bytes"));
        /* Without the new field's bytes the record is truncated. */
        frame(&rec, 2, body.data, body.len);
        assert_int_equal(decode_exact(c, rec.data, rec.len, &back, err, sizeof err), PX_EPROTO);
    }
    px_buf_term(&body);
    px_buf_term(&rec);
}

/* A writer with an extra field of a complex type in the middle (skipped),
 * without the optional request_id (read as empty), with ts as an int
 * (promoted) and busy_by as a plain string (read into the union). */
static void test_resolution_rules(void **state) {
    px_avro_t *c = *state;
    char err[256];
    json_t *w = schema_of(PX_KIND_CHANGE);
    json_t *f = fields_of(w);
    json_array_remove(f, field_index(w, "request_id"));
    json_object_set_new(json_array_get(f, field_index(w, "busy_by")), "type", json_string("string"));
    json_object_set_new(json_array_get(f, field_index(w, "version")), "type", json_pack("[s,s]", "int", "null"));
    json_array_insert_new(
        f, field_index(w, "tab_id"),
        json_pack("{s:s, s:{s:s, s:{s:s, s:s, s:[{s:s, s:{s:s, s:s}}, {s:s, s:[s,s,s]}]}}}", "name", "extras",
                  "type", "type", "map", "values", "type", "record", "name", "Extra", "fields", "name", "tags",
                  "type", "type", "array", "items", "string", "name", "kind", "type", "null", "double", "bytes"));
    assert_int_equal(add(c, 7, w, err, sizeof err), 0);

    px_event_t ev, back;
    px_sample_event(&ev, PX_KIND_CHANGE, PX_CH_LOCK_GRANTED, true);
    strcpy(ev.busy_by, "writer-1");
    ev.version = 12;
    /* Hand-encode the writer's record (zigzag varints, strings with their
     * lengths, union branch indexes) in the writer's field order. */
    px_buf_t r;
    px_buf_init(&r, 1 << 16);
    px_wire_put_confluent(&r, 7);
    unsigned char tmp[16];
    #define VARINT(v) do { uint64_t z_ = ((uint64_t)(v) << 1) ^ (uint64_t)((int64_t)(v) >> 63); size_t n_ = 0; \
        while (z_ >= 0x80) { tmp[n_++] = (unsigned char)(z_ | 0x80); z_ >>= 7; } tmp[n_++] = (unsigned char)z_; \
        px_buf_append(&r, tmp, n_); } while (0)
    #define STR(s) do { VARINT(strlen(s)); px_buf_append(&r, s, strlen(s)); } while (0)
    #define OPTSTR(s) do { if (!*(s)) VARINT(0); else { VARINT(1); STR(s); } } while (0)
    #define OPTLONG(v) do { if ((v) == PX_NONE) VARINT(0); else { VARINT(1); VARINT(v); } } while (0)
    VARINT(ev.type);
    STR(ev.key.tenant);
    STR(ev.key.entity);
    STR(ev.key.id);
    VARINT(ev.ts_ms);
    /* extras: a map block of 2 entries, each {tags: [..], kind: branch} */
    VARINT(2);
    STR("a");
    VARINT(-2); VARINT(4); STR("x"); STR("y"); VARINT(0); /* a 2-item block with its byte size */
    VARINT(1); px_buf_append(&r, "\0\0\0\0\0\0\xf0\x3f", 8); /* kind = 1.0 */
    STR("b");
    VARINT(0); /* no tags */
    VARINT(2); STR("\x01\x02"); /* kind = bytes */
    VARINT(0); /* end of map */
    OPTSTR(ev.tab_id);
    OPTSTR(ev.user_id);
    OPTSTR(ev.user_name);
    OPTSTR(ev.field);
    OPTLONG(ev.token);
    OPTSTR(ev.holder_user_id);
    OPTSTR(ev.holder_name);
    STR(ev.busy_by);           /* plain string */
    VARINT(0); VARINT(12);     /* ["int","null"] branch 0: 12 */
    OPTSTR(ev.src_topic);
    OPTLONG(ev.src_partition);
    OPTLONG(ev.src_offset);
    if (decode_exact(c, r.data, r.len, &back, err, sizeof err)) fail_msg("%s", err);
    px_event_t want = ev;
    want.request_id[0] = '\0'; /* the writer has no request_id */
    assert_true(px_sample_equal(&want, &back));
    assert_int_equal(back.version, 12);

    /* Every prefix fails cleanly. */
    for (size_t n = 0; n < r.len; n++) {
        px_event_t e;
        assert_int_not_equal(decode_exact(c, r.data, n, &e, err, sizeof err), 0);
    }
    px_buf_term(&r);
}

/* The type enum with a new symbol: old symbols read, the new one refused. */
static void test_enum_new_symbol(void **state) {
    px_avro_t *c = *state;
    char err[256];
    json_t *w = schema_of(PX_KIND_LOCK);
    json_t *type = json_object_get(json_array_get(fields_of(w), field_index(w, "type")), "type");
    json_array_append_new(json_object_get(type, "symbols"), json_string("STEAL"));
    assert_int_equal(add(c, 9, w, err, sizeof err), 0);
    px_event_t ev, back;
    px_sample_event(&ev, PX_KIND_LOCK, PX_LOCK_UNLOCK, true);
    px_buf_t body, rec;
    px_buf_init(&body, 1 << 16);
    px_buf_init(&rec, 1 << 16);
    body_of(c, &ev, &body);
    frame(&rec, 9, body.data, body.len);
    assert_int_equal(decode_exact(c, rec.data, rec.len, &back, err, sizeof err), 0);
    assert_true(px_sample_equal(&ev, &back));
    body.data[0] = (char)(2 * PX_LOCK__COUNT); /* zigzag of the new symbol's index */
    frame(&rec, 9, body.data, body.len);
    assert_int_equal(decode_exact(c, rec.data, rec.len, &back, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "unknown to this reader"));
    px_buf_term(&body);
    px_buf_term(&rec);
}

/* Schemas that cannot be read into ours are refused with the reason. */
static void test_unresolvable(void **state) {
    px_avro_t *c = *state;
    char err[256];
    static const struct {
        const char *json, *why;
    } raw[] = {
        {"not json", "writer schema 50"},
        {"\"string\"", "not a record"},
        {"{\"type\":\"record\",\"name\":\"Other\",\"fields\":[]}", "none of ours"},
        {"{\"type\":\"record\",\"name\":\"ChangeEvent\",\"namespace\":\"other.ns\",\"fields\":[]}", "none of ours"},
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        int rc = px_avro_add_schema(c, 50, raw[i].json, err, sizeof err);
        assert_int_not_equal(rc, 0);
        if (!strstr(err, raw[i].why)) fail_msg("row %zu: '%s' lacks '%s'", i, err, raw[i].why);
        assert_false(px_avro_knows_id(c, 50));
    }
    json_t *w = schema_of(PX_KIND_PRESENCE); /* a required field removed */
    json_array_remove(fields_of(w), field_index(w, "tab_id"));
    assert_int_equal(add(c, 51, w, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "lacks field 'tab_id'"));
    w = schema_of(PX_KIND_PRESENCE); /* a field of another type */
    json_object_set_new(json_array_get(fields_of(w), field_index(w, "ts")), "type", json_string("string"));
    assert_int_equal(add(c, 52, w, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "'ts' is string"));
    w = schema_of(PX_KIND_PRESENCE); /* an enum with no common symbol */
    json_object_set_new(json_array_get(fields_of(w), field_index(w, "mode")), "type",
                        json_pack("{s:s, s:s, s:[s]}", "type", "enum", "name", "Mode", "symbols", "READ"));
    assert_int_equal(add(c, 53, w, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "no symbol"));
    w = schema_of(PX_KIND_PRESENCE); /* a union with no readable branch */
    json_object_set_new(json_array_get(fields_of(w), field_index(w, "user_id")), "type",
                        json_pack("[s,s]", "null", "long"));
    assert_int_equal(add(c, 54, w, err, sizeof err), PX_EINVAL);
    assert_int_equal(px_avro_add_schema(c, -1, "\"x\"", err, sizeof err), PX_EINVAL);
    for (int32_t id = 50; id <= 54; id++) assert_false(px_avro_knows_id(c, id));
}

/* Unknown ids, truncated headers, and skipped values that try to loop. */
static void test_hostile(void **state) {
    px_avro_t *c = *state;
    char err[256];
    px_event_t ev;
    assert_int_equal(decode_exact(c, "\0\0\0\0\x63\x02", 6, &ev, err, sizeof err), PX_EPROTO);
    assert_non_null(strstr(err, "unknown schema id 99"));
    assert_int_equal(decode_exact(c, "\0\0\0", 3, &ev, err, sizeof err), PX_EPROTO);
    assert_non_null(strstr(err, "truncated"));
    assert_int_equal(decode_exact(c, "\0\x80\0\0\0\x02", 6, &ev, err, sizeof err), PX_EPROTO);

    /* A writer whose first field is an array of nulls, then nested unions. */
    json_t *w = schema_of(PX_KIND_LIFECYCLE);
    json_array_insert_new(fields_of(w), 0, json_pack("{s:s, s:{s:s, s:s}}", "name", "pad", "type", "type", "array",
                                                     "items", "null"));
    assert_int_equal(add(c, 60, w, err, sizeof err), 0);
    static const struct {
        const char *in;
        size_t len;
        const char *why;
    } rows[] = {
        {"\0\0\0\0\x3c\xfe\xff\xff\xff\x0f", 10, "skipped items"},     /* 2^31 nulls */
        {"\0\0\0\0\x3c\x01", 6, "skipped block size"},                 /* count -1, size truncated */
        {"\0\0\0\0\x3c\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 15, "bad block count"}, /* INT64_MIN */
        {"\0\0\0\0\x3c\x80", 6, "truncated"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int rc = decode_exact(c, rows[i].in, rows[i].len, &ev, err, sizeof err);
        assert_int_equal(rc, PX_EPROTO);
        if (!strstr(err, rows[i].why)) fail_msg("row %zu: '%s' lacks '%s'", i, err, rows[i].why);
    }
    /* Nesting deeper than the bound in a skipped value. */
    json_t *deep = json_pack("{s:s, s:s}", "type", "array", "items", "null");
    for (int d = 0; d < 40; d++) deep = json_pack("{s:s, s:o}", "type", "array", "items", deep);
    w = schema_of(PX_KIND_LIFECYCLE);
    json_array_insert_new(fields_of(w), 0, json_pack("{s:s, s:o}", "name", "deep", "type", deep));
    assert_int_equal(add(c, 61, w, err, sizeof err), 0);
    unsigned char rec[5 + 41];
    memcpy(rec, "\0\0\0\0\x3d", 5);
    memset(rec + 5, 0x02, 41); /* every level: a block of one item */
    assert_int_equal(decode_exact(c, rec, sizeof rec, &ev, err, sizeof err), PX_EPROTO);
    assert_non_null(strstr(err, "nested over"));
}

static void test_too_many_ids(void **state) {
    px_avro_t *c = *state;
    char err[256];
    int added = 0, rc = 0;
    for (int32_t id = 1000; rc == 0; id++) {
        rc = px_avro_add_schema(c, id, px_avro_schema_json(PX_KIND_PRESENCE), err, sizeof err);
        if (rc == 0) added++;
        assert_true(added <= PX_AVRO_WRITERS_MAX);
    }
    assert_int_equal(rc, PX_ENOMEM);
    assert_non_null(strstr(err, "more than 256 schema ids"));
    assert_int_equal(px_avro_add_schema(c, 1000, "ignored: known id", err, sizeof err), 0);
}

/* The fetch function: 77 is ChangeEvent with a new field, 78 unknown to
 * the "registry", 79 a registry that does not answer. */
static int fetch_calls;
static int fetch(void *ud, int32_t id, px_buf_t *out, char *errstr, size_t n) {
    (void)ud;
    fetch_calls++;
    if (id == 79) return px_errf(PX_EBACKEND, errstr, n, "registry down");
    if (id != 77) return px_errf(PX_EINVAL, errstr, n, "HTTP 404, error 40403: Schema %d not found", (int)id);
    json_t *v2 = schema_of(PX_KIND_CHANGE);
    json_array_append_new(fields_of(v2), json_pack("{s:s, s:[s,s], s:n}", "name", "note", "type", "null", "string",
                                                   "default"));
    char *txt = json_dumps(v2, JSON_COMPACT);
    json_decref(v2);
    px_buf_puts(out, txt);
    free(txt);
    return 0;
}

static void test_fetch(void **state) {
    px_avro_t *c = *state;
    char err[256];
    px_event_t ev, back;
    px_sample_event(&ev, PX_KIND_CHANGE, PX_CH_JOINED, true);
    px_buf_t body, rec;
    px_buf_init(&body, 1 << 16);
    px_buf_init(&rec, 1 << 16);
    body_of(c, &ev, &body);
    frame(&rec, 77, body.data, body.len);
    px_buf_append(&rec, "\0", 1);
    /* No fetch function: unknown. */
    assert_int_equal(decode_exact(c, rec.data, rec.len, &back, err, sizeof err), PX_EPROTO);
    assert_non_null(strstr(err, "no schema registry set"));
    px_avro_set_fetch(c, fetch, NULL);
    fetch_calls = 0;
    for (int i = 0; i < 3; i++) { /* fetched once, then known */
        if (decode_exact(c, rec.data, rec.len, &back, err, sizeof err)) fail_msg("%s", err);
        assert_true(px_sample_equal(&ev, &back));
    }
    assert_int_equal(fetch_calls, 1);
    frame(&rec, 78, body.data, body.len);
    assert_int_equal(decode_exact(c, rec.data, rec.len, &back, err, sizeof err), PX_EPROTO);
    assert_non_null(strstr(err, "unknown schema id 78: HTTP 404"));
    frame(&rec, 79, body.data, body.len);
    assert_int_equal(decode_exact(c, rec.data, rec.len, &back, err, sizeof err), PX_EBACKEND);
    assert_non_null(strstr(err, "schema id 79 not fetched: registry down"));
    assert_false(px_avro_knows_id(c, 79)); /* asked again next time */
    px_buf_term(&body);
    px_buf_term(&rec);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_optional_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resolution_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enum_new_symbol, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unresolvable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fetch, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
