/*
 * test_avro.c - the Avro codec: CRC-64-AVRO, Parsing Canonical Form,
 * round trips of every kind and type, and hostile input.
 *
 * Spec vectors come from Avro's share/test/data/schema-tests.txt (the
 * fingerprints there are validated by the Java implementation). Hostile
 * records are built by a small hand encoder here, independent of avro-c,
 * which is first checked to produce exactly avro-c's bytes for a valid
 * record. Every decode runs over an exactly-sized heap copy so ASan
 * catches any read past the end. Related: core/px_avro*.c, avro_interop.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro_samples.h"
#include "px_avro.h"
#include "px_avro_int.h"
#include "px_err.h"

#define EMPTY64 0xc15d213aa4d7a795ULL

/* The fingerprints of the four schemas: the wire contract. A change here
 * means every record already in Kafka has a schema consumers no longer
 * recognise; see docs/schemas.md before touching a schema. */
#define FP_PRESENCE 0x98deaeb79d2e9ef1ULL
#define FP_LOCK 0x2230d28eb6f5b8aaULL
#define FP_LIFECYCLE 0x9b79b252830edfb0ULL
#define FP_CHANGE 0x197672fc0077c248ULL

static int setup(void **state) {
    char err[256];
    px_avro_t *c = px_avro_new(err, sizeof err);
    if (!c) fail_msg("px_avro_new: %s", err);
    *state = c;
    return 0;
}

static int teardown(void **state) {
    px_avro_free(*state);
    return 0;
}

/* Decode from an exactly-sized heap copy so overreads trip ASan/valgrind. */
static int decode_exact(px_avro_t *c, const void *buf, size_t len, px_event_t *ev, char *err, size_t errsz) {
    void *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, buf, len);
    int rc = px_avro_decode(c, copy, len, ev, err, errsz);
    free(copy);
    return rc;
}

/* ---- CRC-64-AVRO --------------------------------------------------------- */

static uint64_t crc_bitwise(const unsigned char *p, size_t n) {
    uint64_t fp = EMPTY64;
    for (size_t i = 0; i < n; i++) {
        fp ^= p[i];
        for (int b = 0; b < 8; b++) fp = (fp >> 1) ^ (EMPTY64 & (0 - (fp & 1)));
    }
    return fp;
}

static void test_crc64(void **state) {
    (void)state;
    assert_true(px_crc64_avro("", 0) == EMPTY64);
    /* schema-tests.txt: fingerprint of the canonical text, Java-validated */
    static const struct {
        const char *text;
        int64_t fp;
    } vec[] = {
        {"\"null\"", INT64_C(7195948357588979594)},
        {"\"boolean\"", INT64_C(-6970731678124411036)},
        {"\"int\"", INT64_C(8247732601305521295)},
        {"\"long\"", INT64_C(-3434872931120570953)},
        {"\"float\"", INT64_C(5583340709985441680)},
        {"\"double\"", INT64_C(-8181574048448539266)},
        {"\"bytes\"", INT64_C(5746618253357095269)},
        {"\"string\"", INT64_C(-8142146995180207161)},
        {"[]", INT64_C(-1241056759729112623)},
        {"[\"int\"]", INT64_C(-5232228896498058493)},
        {"[\"int\",\"boolean\"]", INT64_C(5392556393470105090)},
        {"{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4824392279771201922)},
        {"{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(5916914534497305771)},
        {"{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}", INT64_C(-4616218487480524110)},
        {"{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"}]}",
         INT64_C(7843277075252814651)},
        {"{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},{\"name\":"
         "\"f2\",\"type\":\"int\"}]}",
         INT64_C(-4860222112080293046)},
        {"{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}", INT64_C(-6342190197741309591)},
        {"{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}", INT64_C(-4448647247586288245)},
        {"{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}", INT64_C(1756455273707447556)},
        {"{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}", INT64_C(-3064184465700546786)},
        {"{\"type\":\"array\",\"items\":\"null\"}", INT64_C(-589620603366471059)},
        {"{\"type\":\"map\",\"values\":\"string\"}", INT64_C(-8732877298790414990)},
        {"{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":[\"null\",\"int\","
         "\"long\",\"PigValue\"]}]}",
         INT64_C(-1759257747318642341)},
    };
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++)
        if (px_crc64_avro(vec[i].text, strlen(vec[i].text)) != (uint64_t)vec[i].fp)
            fail_msg("CRC-64-AVRO of %s", vec[i].text);
    /* the precomputed table against the bitwise definition */
    unsigned char buf[512];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    for (unsigned b = 0; b < 256; b++) {
        unsigned char one = (unsigned char)b;
        assert_true(px_crc64_avro(&one, 1) == crc_bitwise(&one, 1));
    }
    for (size_t n = 0; n <= sizeof buf; n += 7) assert_true(px_crc64_avro(buf, n) == crc_bitwise(buf, n));
}

/* ---- Parsing Canonical Form ---------------------------------------------- */

static void test_pcf_spec(void **state) {
    (void)state;
    /* schema-tests.txt 000-033 (input -> canonical) plus our own cases */
    static const struct {
        const char *in, *out;
    } vec[] = {
        {"\"null\"", "\"null\""},
        {"{\"type\":\"null\"}", "\"null\""},
        {"\"boolean\"", "\"boolean\""},
        {"{\"type\":\"boolean\"}", "\"boolean\""},
        {"\"int\"", "\"int\""},
        {"{\"type\":\"int\"}", "\"int\""},
        {"\"long\"", "\"long\""},
        {"{\"type\":\"long\"}", "\"long\""},
        {"\"float\"", "\"float\""},
        {"{\"type\":\"float\"}", "\"float\""},
        {"\"double\"", "\"double\""},
        {"{\"type\":\"double\"}", "\"double\""},
        {"\"bytes\"", "\"bytes\""},
        {"{\"type\":\"bytes\"}", "\"bytes\""},
        {"\"string\"", "\"string\""},
        {"{\"type\":\"string\"}", "\"string\""},
        {"[  ]", "[]"},
        {"[ \"int\"  ]", "[\"int\"]"},
        {"[ \"int\" , {\"type\":\"boolean\"} ]", "[\"int\",\"boolean\"]"},
        {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}", "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}"},
        {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
         "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}"},
        {"{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
         "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}"},
        {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"Useful info\"}",
         "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}"},
        {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
         "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}"},
        {"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
         "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}"},
        {"{\"fields\":[{\"type\":{\"type\":\"boolean\"}, \"name\":\"f1\"}], \"type\":\"record\", \"name\":\"foo\"}",
         "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"}]}"},
        {"{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", \"default\":\"true\"},\n"
         "            {\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}],\n"
         "  \"type\":\"record\", \"name\":\"foo\"\n}",
         "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},{\"name\":\"f2\","
         "\"type\":\"int\"}]}"},
        {"{\"type\":\"enum\", \"name\":\"foo\", \"symbols\":[\"A1\"]}", "{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}"},
        {"{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", \"symbols\":[\"A1\", \"A2\"]}",
         "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}"},
        {"{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}", "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}"},
        {"{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", \"size\":32}",
         "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}"},
        {"{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}", "{\"type\":\"array\",\"items\":\"null\"}"},
        {"{ \"values\":\"string\", \"type\":\"map\"}", "{\"type\":\"map\",\"values\":\"string\"}"},
        {"  {\"name\":\"PigValue\",\"type\":\"record\",\n"
         "   \"fields\":[{\"name\":\"value\", \"type\":[\"null\", \"int\", \"long\", \"PigValue\"]}]}",
         "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":[\"null\",\"int\","
         "\"long\",\"PigValue\"]}]}"},
        /* ours: logical types drop (PRIMITIVES), names inherit namespaces (FULLNAMES) */
        {"{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}", "\"long\""},
        {"[\"null\",{\"type\":\"string\",\"avro.java.string\":\"String\"}]", "[\"null\",\"string\"]"},
        {"{\"type\":\"record\",\"name\":\"R\",\"namespace\":\"a.b\",\"fields\":[{\"name\":\"e\",\"type\":{\"type\":"
         "\"enum\",\"name\":\"E\",\"symbols\":[\"X\"]}},{\"name\":\"e2\",\"type\":\"E\"},{\"name\":\"f\",\"type\":{"
         "\"type\":\"fixed\",\"name\":\"F\",\"namespace\":\"\",\"size\":2}},{\"name\":\"g\",\"type\":\"F\"}]}",
         "{\"name\":\"a.b.R\",\"type\":\"record\",\"fields\":[{\"name\":\"e\",\"type\":{\"name\":\"a.b.E\",\"type\":"
         "\"enum\",\"symbols\":[\"X\"]}},{\"name\":\"e2\",\"type\":\"a.b.E\"},{\"name\":\"f\",\"type\":{\"name\":"
         "\"F\",\"type\":\"fixed\",\"size\":2}},{\"name\":\"g\",\"type\":\"a.b.F\"}]}"},
        {"{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":{\"type\":\"int\",\"logicalType\":\"date\"}},"
         "\"doc\":\"x\"}",
         "{\"type\":\"map\",\"values\":{\"type\":\"array\",\"items\":\"int\"}}"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        px_buf_t out;
        px_buf_init(&out, 4096);
        int rc = px_avro_pcf(vec[i].in, &out, err, sizeof err);
        if (rc) fail_msg("pcf %zu: %s", i, err);
        if (strcmp(out.data, vec[i].out) != 0) fail_msg("pcf %zu:\n got  %s\n want %s", i, out.data, vec[i].out);
        px_buf_term(&out);
    }
}

static void test_pcf_errors(void **state) {
    (void)state;
    static const char *const bad[] = {
        "",
        "{",
        "42",
        "{}",
        "{\"type\":\"record\",\"fields\":[]}",
        "{\"type\":\"record\",\"name\":\"1bad\",\"fields\":[]}",
        "{\"type\":\"record\",\"name\":\"R\"}",
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\"}]}",
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a-b\",\"type\":\"int\"}]}",
        "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"ok\",\"not ok\"]}",
        "{\"type\":\"enum\",\"name\":\"E\"}",
        "{\"type\":\"fixed\",\"name\":\"F\",\"size\":-1}",
        "{\"type\":\"fixed\",\"name\":\"F\",\"size\":\"3\"}",
        "{\"type\":\"array\"}",
        "{\"type\":\"map\"}",
        "\"no such..name\"",
        "{\"type\":\"int\",\"type\":\"long\"}", /* duplicate key */
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"int\"]]]]]]]]]]]]]]]]]]]]]]]]]]"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        px_buf_t out;
        char err[256] = "";
        px_buf_init(&out, 4096);
        px_buf_puts(&out, "keep");
        int rc = px_avro_pcf(bad[i], &out, err, sizeof err);
        if (rc != PX_EINVAL || !err[0]) fail_msg("pcf bad %zu: rc %d", i, rc);
        assert_string_equal(out.data, "keep"); /* untouched on error */
        px_buf_term(&out);
    }
}

static void test_pcf_schemas(void **state) {
    px_avro_t *c = *state;
    static const uint64_t fps[PX_KIND__COUNT] = {FP_PRESENCE, FP_LOCK, FP_LIFECYCLE, FP_CHANGE};
    static const char *const names[PX_KIND__COUNT] = {
        "{\"name\":\"io.presence.v1.PresenceEvent\",\"type\":\"record\",\"fields\":[{\"name\":\"type\"",
        "{\"name\":\"io.presence.v1.LockEvent\",\"type\":\"record\",\"fields\":[{\"name\":\"type\"",
        "{\"name\":\"io.presence.v1.LifecycleEvent\",\"type\":\"record\",\"fields\":[{\"name\":\"type\"",
        "{\"name\":\"io.presence.v1.ChangeEvent\",\"type\":\"record\",\"fields\":[{\"name\":\"type\""};
    char err[256];
    for (int k = 0; k < PX_KIND__COUNT; k++) {
        const char *pcf = px_avro_canonical_form(c, (px_kind_t)k);
        px_buf_t again;
        px_buf_init(&again, 65536);
        assert_int_equal(px_avro_pcf(px_avro_schema_json((px_kind_t)k), &again, err, sizeof err), 0);
        assert_string_equal(again.data, pcf);
        px_buf_term(&again);
        assert_true(strncmp(pcf, names[k], strlen(names[k])) == 0);
        assert_null(strstr(pcf, "doc"));
        assert_null(strstr(pcf, "logicalType"));
        assert_null(strstr(pcf, "default"));
        assert_null(strchr(pcf, ' '));
        assert_null(strchr(pcf, '\n'));
        assert_non_null(strstr(pcf, "{\"name\":\"ts\",\"type\":\"long\"}"));
        assert_true(px_avro_fingerprint(c, (px_kind_t)k) == px_crc64_avro(pcf, strlen(pcf)));
        if (px_avro_fingerprint(c, (px_kind_t)k) != fps[k])
            fail_msg("%s fingerprint is %016llx: the schema changed; see docs/schemas.md",
                     px_kind_name((px_kind_t)k), (unsigned long long)px_avro_fingerprint(c, (px_kind_t)k));
    }
    assert_null(px_avro_schema_json(PX_KIND__COUNT));
}

/* ---- round trips --------------------------------------------------------- */

static void test_round_trip(void **state) {
    px_avro_t *c = *state;
    char err[256];
    px_buf_t out;
    px_buf_init(&out, 1 << 20);
    int n = 0;
    for (int k = 0; k < PX_KIND__COUNT; k++)
        for (int t = 0; t < px_event_type_count((px_kind_t)k); t++)
            for (int full = 0; full <= 1; full++) {
                px_event_t ev, back, back2;
                px_sample_event(&ev, (px_kind_t)k, t, full);
                px_buf_reset(&out);
                px_buf_puts(&out, "prefix");
                if (px_avro_encode(c, &ev, &out, err, sizeof err))
                    fail_msg("encode %s %s: %s", px_kind_name((px_kind_t)k), px_event_type_name((px_kind_t)k, t), err);
                assert_memory_equal(out.data, "prefix", 6); /* encode appends */
                const unsigned char *rec = (const unsigned char *)out.data + 6;
                size_t len = out.len - 6;
                assert_int_equal(rec[0], 0xC3);
                assert_int_equal(rec[1], 0x01);
                uint64_t fp = 0;
                for (int b = 7; b >= 0; b--) fp = (fp << 8) | rec[2 + b];
                assert_true(fp == px_avro_fingerprint(c, (px_kind_t)k));
                if (decode_exact(c, rec, len, &back, err, sizeof err))
                    fail_msg("decode %s %s: %s", px_kind_name((px_kind_t)k), px_event_type_name((px_kind_t)k, t), err);
                assert_true(px_sample_equal(&ev, &back));
                /* avro-c reads the same body to the same event */
                if (px_avro_decode_avroc(c, rec, len, &back2, err, sizeof err))
                    fail_msg("avro-c decode %s %s: %s", px_kind_name((px_kind_t)k), px_event_type_name((px_kind_t)k, t), err);
                assert_true(px_sample_equal(&ev, &back2));
                n++;
            }
    assert_int_equal(n, 2 * (PX_PRES__COUNT + PX_LOCK__COUNT + PX_LC__COUNT + PX_CH__COUNT));
    px_buf_term(&out);
}

static void test_encode_errors(void **state) {
    px_avro_t *c = *state;
    char err[256];
    px_event_t ev;
    px_buf_t out;
    px_buf_init(&out, 1 << 20);
    px_buf_puts(&out, "keep");
    px_sample_event(&ev, PX_KIND_LOCK, PX_LOCK_LOCK, false);
    ev.field[0] = '\0';
    assert_int_equal(px_avro_encode(c, &ev, &out, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "field"));
    assert_string_equal(out.data, "keep");
    px_buf_term(&out);
    /* a buffer too small for the record: ENOMEM, untouched */
    px_buf_t tiny;
    px_buf_init(&tiny, 12);
    px_sample_event(&ev, PX_KIND_LOCK, PX_LOCK_LOCK, true);
    assert_int_equal(px_avro_encode(c, &ev, &tiny, err, sizeof err), PX_ENOMEM);
    assert_int_equal(tiny.len, 0);
    px_buf_term(&tiny);
}

/* ---- a hand encoder for hostile records ----------------------------------- */

typedef struct {
    unsigned char b[1024];
    size_t n;
} tb_t;

static void tb_raw(tb_t *t, const void *p, size_t n) {
    assert_true(t->n + n <= sizeof t->b);
    memcpy(t->b + t->n, p, n);
    t->n += n;
}
static void tb_byte(tb_t *t, unsigned v) {
    unsigned char c = (unsigned char)v;
    tb_raw(t, &c, 1);
}
static void tb_long(tb_t *t, int64_t v) {
    uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (u >= 0x80) {
        tb_byte(t, (unsigned)(u & 0x7f) | 0x80);
        u >>= 7;
    }
    tb_byte(t, (unsigned)u);
}
static void tb_str(tb_t *t, const char *s) {
    tb_long(t, (int64_t)strlen(s));
    tb_raw(t, s, strlen(s));
}
static void tb_header(tb_t *t, uint64_t fp) {
    tb_byte(t, 0xC3);
    tb_byte(t, 0x01);
    for (int i = 0; i < 8; i++) tb_byte(t, (unsigned)(fp >> (8 * i)) & 0xff);
}

/* A field override: at field index `at`, write these bytes instead, or a
 * string of `rep_n` copies of `rep` (prefixed by the union branch when
 * `opt`). */
typedef struct {
    int at;
    const char *raw;
    size_t raw_len;
    char rep;
    int rep_n;
    bool opt;
} tb_mod_t;

static bool tb_apply(tb_t *t, int field, const tb_mod_t *m) {
    if (!m || m->at != field) return false;
    if (m->rep_n) {
        if (m->opt) tb_long(t, 1);
        tb_long(t, m->rep_n);
        for (int i = 0; i < m->rep_n; i++) tb_byte(t, (unsigned char)m->rep);
    } else {
        tb_raw(t, m->raw, m->raw_len);
    }
    return true;
}

/* A PresenceEvent HB for acme:doc:1 at ts 1000 by tab t1 / user u1 "Ann". */
static void tb_presence(tb_t *t, const tb_mod_t *m) {
    tb_header(t, FP_PRESENCE);
    if (!tb_apply(t, 0, m)) tb_long(t, PX_PRES_HB);
    if (!tb_apply(t, 1, m)) tb_str(t, "acme");
    if (!tb_apply(t, 2, m)) tb_str(t, "doc");
    if (!tb_apply(t, 3, m)) tb_str(t, "1");
    if (!tb_apply(t, 4, m)) tb_long(t, 1000);
    if (!tb_apply(t, 5, m)) tb_str(t, "t1");
    if (!tb_apply(t, 6, m)) tb_str(t, "u1");
    if (!tb_apply(t, 7, m)) { tb_long(t, 1); tb_str(t, "Ann"); }
    if (!tb_apply(t, 8, m)) tb_long(t, PX_MODE_EDIT);
    if (!tb_apply(t, 9, m)) tb_byte(t, 1);
    if (!tb_apply(t, 10, m)) tb_long(t, PX_STATUS_ONLINE);
    if (!tb_apply(t, 11, m)) tb_long(t, 0);
    if (!tb_apply(t, 12, m)) { tb_long(t, 1); tb_str(t, "amount"); }
    if (!tb_apply(t, 13, m)) tb_long(t, 0);
    tb_apply(t, 14, m); /* after the last field: trailing bytes */
}

/* A ChangeEvent STALE_SET with only the source coordinates set. */
static void tb_change(tb_t *t, const tb_mod_t *m) {
    tb_header(t, FP_CHANGE);
    if (!tb_apply(t, 0, m)) tb_long(t, PX_CH_STALE_SET);
    if (!tb_apply(t, 1, m)) tb_str(t, "acme");
    if (!tb_apply(t, 2, m)) tb_str(t, "doc");
    if (!tb_apply(t, 3, m)) tb_str(t, "1");
    if (!tb_apply(t, 4, m)) tb_long(t, 1000);
    for (int f = 5; f <= 14; f++)
        if (!tb_apply(t, f, m)) tb_long(t, 0); /* null */
    if (!tb_apply(t, 15, m)) { tb_long(t, 1); tb_str(t, "presence.locks"); }
    if (!tb_apply(t, 16, m)) { tb_long(t, 1); tb_long(t, 3); }
    if (!tb_apply(t, 17, m)) { tb_long(t, 1); tb_long(t, 7); }
    tb_apply(t, 18, m); /* after the last field: trailing bytes */
}

static void test_hand_encoder_matches(void **state) {
    px_avro_t *c = *state;
    char err[256];
    px_event_t ev;
    tb_t t = {.n = 0};
    tb_presence(&t, NULL);
    assert_int_equal(decode_exact(c, t.b, t.n, &ev, err, sizeof err), 0);
    assert_string_equal(ev.user_name, "Ann");
    assert_string_equal(ev.field, "amount");
    assert_int_equal(ev.mode, PX_MODE_EDIT);
    assert_true(ev.dirty);
    px_buf_t out;
    px_buf_init(&out, 4096);
    assert_int_equal(px_avro_encode(c, &ev, &out, err, sizeof err), 0);
    assert_int_equal(out.len, t.n);
    assert_memory_equal(out.data, t.b, t.n); /* avro-c writes exactly our bytes */
    px_buf_term(&out);
    tb_t u = {.n = 0};
    tb_change(&u, NULL);
    assert_int_equal(decode_exact(c, u.b, u.n, &ev, err, sizeof err), 0);
    assert_int_equal(ev.src_partition, 3);
    assert_int_equal(ev.src_offset, 7);
}

/* ---- hostile input table --------------------------------------------------- */

#define RAW(lit) lit, sizeof(lit) - 1

typedef struct {
    const char *name;
    int which;        /* 0 whole bytes below, 1 presence + mod, 2 change + mod */
    const char *bytes; /* which == 0 */
    size_t len;
    tb_mod_t mod;
    int rc;
    const char *expect; /* substring of errstr */
} hostile_t;

static const hostile_t hostile[] = {
    {"empty", 0, RAW(""), {0}, PX_EPROTO, "truncated header"},
    {"1 byte C3", 0, RAW("\xc3"), {0}, PX_EPROTO, "truncated header"},
    {"1 byte 00 (a truncated Confluent header)", 0, RAW("\x00"), {0}, PX_EPROTO, "confluent header truncated"},
    {"Confluent header, id unknown", 0, RAW("\x00\x00\x00\x00\x07\x02"), {0}, PX_EPROTO, "unknown schema id 7"},
    {"wrong magic C3 02", 0, RAW("\xc3\x02\xf1\x9e\x2e\x9d\xb7\xae\xde\x98\x02"), {0}, PX_EPROTO, "magic"},
    {"wrong magic 01 C3", 0, RAW("\x01\xc3\xf1\x9e\x2e\x9d\xb7\xae\xde\x98\x02"), {0}, PX_EPROTO, "magic"},
    {"plain JSON", 0, RAW("{\"type\":\"HB\"}"), {0}, PX_EPROTO, "magic"},
    {"truncated header 5", 0, RAW("\xc3\x01\xf1\x9e\x2e"), {0}, PX_EPROTO, "truncated header"},
    {"header only", 0, RAW("\xc3\x01\xf1\x9e\x2e\x9d\xb7\xae\xde\x98"), {0}, PX_EPROTO, "truncated"},
    {"unknown fingerprint", 0, RAW("\xc3\x01\x00\x11\x22\x33\x44\x55\x66\x77\x02"), {0}, PX_EPROTO, "fingerprint"},
    {"fingerprint big-endian", 0, RAW("\xc3\x01\x98\xde\xae\xb7\x9d\x2e\x9e\xf1\x02"), {0}, PX_EPROTO,
     "fingerprint"},
    {"trailing garbage", 1, NULL, 0, {14, RAW("\x00"), 0, 0, 0}, PX_EPROTO, "trailing"},
    {"trailing 3 bytes", 2, NULL, 0, {18, RAW("abc"), 0, 0, 0}, PX_EPROTO, "3 trailing"},
    {"ts varint 11 bytes", 1, NULL, 0, {4, RAW("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"), 0, 0, 0}, PX_EPROTO,
     "longer than 10"},
    {"ts varint overflow", 1, NULL, 0, {4, RAW("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02"), 0, 0, 0}, PX_EPROTO,
     "overflow"},
    {"ts 0", 1, NULL, 0, {4, RAW("\x00"), 0, 0, 0}, PX_EINVAL, "ts"},
    {"ts negative", 1, NULL, 0, {4, RAW("\x01"), 0, 0, 0}, PX_EINVAL, "ts"},
    {"negative string length", 1, NULL, 0, {1, RAW("\x01"), 0, 0, 0}, PX_EPROTO, "negative string length"},
    {"string length INT64_MIN", 1, NULL, 0, {1, RAW("\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"), 0, 0, 0},
     PX_EPROTO, "negative"},
    {"string length 2^62", 1, NULL, 0, {1, RAW("\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"), 0, 0, 0}, PX_EPROTO,
     "exceeds"},
    {"string length > remaining", 1, NULL, 0, {12, RAW("\x02\xc8\x01xy"), 0, 0, 0}, PX_EPROTO, "exceeds"},
    {"tenant 129 bytes", 1, NULL, 0, {1, NULL, 0, 'a', 129, false}, PX_EINVAL, "more than 128"},
    {"user_name 257 bytes", 1, NULL, 0, {7, NULL, 0, 'n', 257, true}, PX_EINVAL, "more than 256"},
    {"src_topic 250 bytes", 2, NULL, 0, {15, NULL, 0, 't', 250, true}, PX_EINVAL, "more than 249"},
    {"union index 5", 1, NULL, 0, {7, RAW("\x0a"), 0, 0, 0}, PX_EPROTO, "union index 5"},
    {"union index -1", 1, NULL, 0, {11, RAW("\x01"), 0, 0, 0}, PX_EPROTO, "union index -1"},
    {"union index 6-byte varint", 1, NULL, 0, {12, RAW("\x82\x80\x80\x80\x80\x00"), 0, 0, 0}, PX_EPROTO,
     "longer than 5"},
    {"enum index 99", 1, NULL, 0, {0, RAW("\xc6\x01"), 0, 0, 0}, PX_EPROTO, "enum index 99"},
    {"enum index -1", 2, NULL, 0, {0, RAW("\x01"), 0, 0, 0}, PX_EPROTO, "enum index -1"},
    {"change type 11", 2, NULL, 0, {0, RAW("\x16"), 0, 0, 0}, PX_EPROTO, "enum index 11"},
    {"mode index 2", 1, NULL, 0, {8, RAW("\x04"), 0, 0, 0}, PX_EPROTO, "mode"},
    {"boolean byte 2", 1, NULL, 0, {9, RAW("\x02"), 0, 0, 0}, PX_EPROTO, "boolean"},
    {"invalid UTF-8 in name", 1, NULL, 0, {7, RAW("\x02\x04\xc3\x28"), 0, 0, 0}, PX_EPROTO, "UTF-8"},
    {"overlong UTF-8 in tab_id", 1, NULL, 0, {5, RAW("\x04\xc0\xaf"), 0, 0, 0}, PX_EPROTO, "UTF-8"},
    {"surrogate in cursor", 1, NULL, 0, {11, RAW("\x02\x06\xed\xa0\x80"), 0, 0, 0}, PX_EPROTO, "UTF-8"},
    {"truncated UTF-8 at end of field", 1, NULL, 0, {12, RAW("\x02\x04\x61\xe2"), 0, 0, 0}, PX_EPROTO, "UTF-8"},
    {"embedded NUL in name", 1, NULL, 0, {7, RAW("\x02\x06\x41\x00\x42"), 0, 0, 0}, PX_EINVAL, "NUL"},
    {"bad key chars", 1, NULL, 0, {1, RAW("\x0a\x61\x63\x20\x6d\x65"), 0, 0, 0}, PX_EINVAL, "tenant"},
    {"colon in entity", 1, NULL, 0, {2, RAW("\x06\x61\x3a\x62"), 0, 0, 0}, PX_EINVAL, "entity"},
    {"empty id", 1, NULL, 0, {3, RAW("\x00"), 0, 0, 0}, PX_EINVAL, "id"},
    {"empty tab_id", 1, NULL, 0, {5, RAW("\x00"), 0, 0, 0}, PX_EINVAL, "tab_id"},
    {"negative expires_at", 1, NULL, 0, {13, RAW("\x02\x09"), 0, 0, 0}, PX_EINVAL, "negative"},
    {"EXPIRE without deadline", 1, NULL, 0, {0, RAW("\x06"), 0, 0, 0}, PX_EINVAL, "expires_at_ms"},
    {"src_partition 6-byte varint", 2, NULL, 0, {16, RAW("\x02\x86\x80\x80\x80\x80\x00"), 0, 0, 0}, PX_EPROTO,
     "longer than 5"},
    {"src_partition int overflow", 2, NULL, 0, {16, RAW("\x02\xff\xff\xff\xff\x1f"), 0, 0, 0}, PX_EPROTO,
     "overflow"},
    {"src_offset alone", 2, NULL, 0, {15, RAW("\x00"), 0, 0, 0}, PX_EINVAL, "src_"},
};

static void test_hostile_table(void **state) {
    px_avro_t *c = *state;
    size_t rows = sizeof hostile / sizeof hostile[0];
    assert_true(rows >= 25);
    for (size_t i = 0; i < rows; i++) {
        const hostile_t *h = &hostile[i];
        tb_t t = {.n = 0};
        if (h->which == 0) tb_raw(&t, h->bytes, h->len);
        else if (h->which == 1) tb_presence(&t, &h->mod);
        else tb_change(&t, &h->mod);
        px_event_t ev;
        char err[256] = "";
        int rc = decode_exact(c, t.b, t.n, &ev, err, sizeof err);
        if (rc != h->rc || !strstr(err, h->expect))
            fail_msg("row '%s': rc %d (%s) errstr '%s'; expected %s mentioning '%s'", h->name, rc, px_err_name(rc),
                     err, px_err_name(h->rc), h->expect);
    }
}

static void test_oversize(void **state) {
    px_avro_t *c = *state;
    size_t len = PX_AVRO_MAX_RECORD + 1;
    unsigned char *big = calloc(1, len);
    assert_non_null(big);
    tb_t t = {.n = 0};
    tb_presence(&t, NULL);
    memcpy(big, t.b, t.n);
    px_event_t ev;
    char err[256];
    assert_int_equal(px_avro_decode(c, big, len, &ev, err, sizeof err), PX_EPROTO);
    assert_non_null(strstr(err, "more than"));
    free(big);
}

/* Every proper prefix of every sample fails as truncated; the whole decodes. */
static void test_every_prefix(void **state) {
    px_avro_t *c = *state;
    char err[256];
    px_buf_t out;
    px_buf_init(&out, 1 << 20);
    for (int k = 0; k < PX_KIND__COUNT; k++)
        for (int t = 0; t < px_event_type_count((px_kind_t)k); t++)
            for (int full = 0; full <= 1; full++) {
                px_event_t ev, back;
                px_sample_event(&ev, (px_kind_t)k, t, full);
                px_buf_reset(&out);
                assert_int_equal(px_avro_encode(c, &ev, &out, err, sizeof err), 0);
                for (size_t n = 0; n < out.len; n++) {
                    int rc = decode_exact(c, out.data, n, &back, err, sizeof err);
                    if (rc != PX_EPROTO)
                        fail_msg("%s %s prefix %zu/%zu: rc %d %s", px_kind_name((px_kind_t)k),
                                 px_event_type_name((px_kind_t)k, t), n, out.len, rc, err);
                }
                assert_int_equal(decode_exact(c, out.data, out.len, &back, err, sizeof err), 0);
                assert_true(px_sample_equal(&ev, &back));
            }
    px_buf_term(&out);
}

/* xorshift64*: deterministic, state on the stack. */
static uint64_t rnd(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void test_random_mutations(void **state) {
    px_avro_t *c = *state;
    char err[256];
    uint64_t seed = 0x5eed0fa5c0dec0deULL;
    px_buf_t out, re;
    px_buf_init(&out, 1 << 20);
    px_buf_init(&re, 1 << 20);
    int accepted = 0, iters = 20000;
    static const unsigned char interesting[] = {0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, 0xc3, 0xed, 0xf4};
    for (int it = 0; it < iters; it++) {
        px_event_t ev, back, back2;
        int k = (int)(rnd(&seed) % PX_KIND__COUNT);
        int t = (int)(rnd(&seed) % (uint64_t)px_event_type_count((px_kind_t)k));
        px_sample_event(&ev, (px_kind_t)k, t, rnd(&seed) & 1);
        px_buf_reset(&out);
        assert_int_equal(px_avro_encode(c, &ev, &out, err, sizeof err), 0);
        unsigned char buf[PX_AVRO_MAX_RECORD + 64];
        size_t n = out.len;
        memcpy(buf, out.data, n);
        int muts = 1 + (int)(rnd(&seed) % 4);
        for (int m = 0; m < muts; m++) {
            size_t pos = n ? (size_t)(rnd(&seed) % n) : 0;
            if (it % 8 != 0 && pos < 10 && n > 10) pos = 10 + pos % (n - 10); /* mostly the body */
            if (pos >= n) pos = n ? n - 1 : 0;
            switch (rnd(&seed) % 6) {
            case 0: if (n) buf[pos] ^= (unsigned char)(1u << (rnd(&seed) % 8)); break;
            case 1: if (n) buf[pos] = interesting[rnd(&seed) % sizeof interesting]; break;
            case 2: if (n) buf[pos] = (unsigned char)rnd(&seed); break;
            case 3: /* delete */
                if (n) { memmove(buf + pos, buf + pos + 1, n - pos - 1); n--; }
                break;
            case 4: /* insert */
                if (n < sizeof buf - 1) { memmove(buf + pos + 1, buf + pos, n - pos); buf[pos] = (unsigned char)rnd(&seed); n++; }
                break;
            case 5: n = pos; break; /* truncate */
            }
        }
        int rc = decode_exact(c, buf, n, &back, err, sizeof err);
        if (rc != 0 && rc != PX_EPROTO && rc != PX_EINVAL) fail_msg("iteration %d: rc %d", it, rc);
        if (rc != 0) {
            assert_true(err[0] != '\0');
            continue;
        }
        accepted++;
        /* anything accepted is valid, re-encodes, and avro-c reads it the same way */
        assert_int_equal(px_event_validate(&back, err, sizeof err), 0);
        assert_int_equal(px_avro_decode_avroc(c, buf, n, &back2, err, sizeof err), 0);
        assert_true(px_sample_equal(&back, &back2));
        px_buf_reset(&re);
        assert_int_equal(px_avro_encode(c, &back, &re, err, sizeof err), 0);
        px_event_t back3;
        assert_int_equal(decode_exact(c, re.data, re.len, &back3, err, sizeof err), 0);
        assert_true(px_sample_equal(&back, &back3));
    }
    print_message("random mutations: %d iterations, %d decoded as valid records\n", iters, accepted);
    assert_true(accepted > 0); /* the mutator does reach valid-but-different records */
    px_buf_term(&out);
    px_buf_term(&re);
}

static void test_new_free(void **state) {
    (void)state;
    char err[256];
    px_avro_free(NULL);
    for (int i = 0; i < 3; i++) {
        px_avro_t *c = px_avro_new(err, sizeof err);
        assert_non_null(c);
        px_avro_free(c);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc64),
        cmocka_unit_test(test_pcf_spec),
        cmocka_unit_test(test_pcf_errors),
        cmocka_unit_test_setup_teardown(test_pcf_schemas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encode_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hand_encoder_matches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_mutations, setup, teardown),
        cmocka_unit_test(test_new_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
