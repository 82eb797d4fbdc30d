/*
 * test_event.c - px_event (init, names, validation) and px_utf8.
 *
 * Validation gets a table of one-defect events: each row starts from a
 * valid sample and breaks exactly one rule, so a rule that stops being
 * enforced fails exactly its row. Related: core/px_event.c, core/px_utf8.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "avro_samples.h"
#include "px_err.h"
#include "px_event.h"
#include "px_key.h"
#include "px_utf8.h"

static void test_init_defaults(void **state) {
    (void)state;
    px_event_t ev;
    memset(&ev, 0x5a, sizeof ev);
    px_event_init(&ev, PX_KIND_CHANGE);
    assert_int_equal(ev.kind, PX_KIND_CHANGE);
    assert_int_equal(ev.type, 0);
    assert_int_equal(ev.ts_ms, 0);
    assert_int_equal(ev.expires_at_ms, PX_NONE);
    assert_int_equal(ev.version, PX_NONE);
    assert_int_equal(ev.token, PX_NONE);
    assert_int_equal(ev.src_partition, PX_NONE);
    assert_int_equal(ev.src_offset, PX_NONE);
    assert_int_equal(ev.mode, PX_MODE_VIEW);
    assert_int_equal(ev.status, PX_STATUS_ONLINE);
    assert_false(ev.dirty);
    assert_string_equal(ev.user_name, "");
    assert_string_equal(ev.src_topic, "");
    assert_string_equal(ev.key.tenant, "");
}

static void test_names(void **state) {
    (void)state;
    static const int counts[PX_KIND__COUNT] = {PX_PRES__COUNT, PX_LOCK__COUNT, PX_LC__COUNT, PX_CH__COUNT};
    for (int k = 0; k < PX_KIND__COUNT; k++) {
        assert_int_equal(px_event_type_count((px_kind_t)k), counts[k]);
        for (int t = 0; t < counts[k]; t++) {
            const char *n = px_event_type_name((px_kind_t)k, t);
            assert_string_not_equal(n, "?");
            assert_int_equal(px_event_type_parse((px_kind_t)k, n), t);
        }
        assert_string_equal(px_event_type_name((px_kind_t)k, counts[k]), "?");
        assert_string_equal(px_event_type_name((px_kind_t)k, -1), "?");
        assert_int_equal(px_event_type_parse((px_kind_t)k, "NOPE"), -1);
        assert_int_equal(px_event_type_parse((px_kind_t)k, ""), -1);
        assert_int_equal(px_event_type_parse((px_kind_t)k, NULL), -1);
    }
    assert_string_equal(px_kind_name(PX_KIND_PRESENCE), "presence");
    assert_string_equal(px_kind_name(PX_KIND_CHANGE), "change");
    assert_string_equal(px_kind_name(PX_KIND__COUNT), "?");
    assert_string_equal(px_event_type_name(PX_KIND_PRESENCE, PX_PRES_EXPIRE), "EXPIRE");
    assert_string_equal(px_event_type_name(PX_KIND_CHANGE, PX_CH_VERSION_BUMPED), "VERSION_BUMPED");
    assert_string_equal(px_event_type_name(PX_KIND__COUNT, 0), "?");
    assert_int_equal(px_event_type_count(PX_KIND__COUNT), 0);
    assert_int_equal(px_event_type_parse(PX_KIND_LOCK, "SUB"), -1); /* names are per kind */
}

static void test_samples_valid(void **state) {
    (void)state;
    char err[256];
    for (int k = 0; k < PX_KIND__COUNT; k++)
        for (int t = 0; t < px_event_type_count((px_kind_t)k); t++)
            for (int full = 0; full <= 1; full++) {
                px_event_t ev;
                px_sample_event(&ev, (px_kind_t)k, t, full);
                int rc = px_event_validate(&ev, err, sizeof err);
                if (rc) fail_msg("%s %s %s: %s", px_kind_name((px_kind_t)k), px_event_type_name((px_kind_t)k, t),
                                 full ? "full" : "min", err);
            }
}

/* One defect per row, applied to a min sample of (kind, type). */
typedef struct {
    const char *name;
    px_kind_t kind;
    int type;
    void (*breakit)(px_event_t *ev);
    const char *expect; /* substring of errstr */
} px_bad_event_t;

static void b_ts0(px_event_t *e) { e->ts_ms = 0; }
static void b_tsneg(px_event_t *e) { e->ts_ms = -5; }
static void b_tenant_chars(px_event_t *e) { strcpy(e->key.tenant, "ac me"); }
static void b_tenant_colon(px_event_t *e) { strcpy(e->key.tenant, "a:b"); }
static void b_entity_empty(px_event_t *e) { e->key.entity[0] = '\0'; }
static void b_id_unterminated(px_event_t *e) { memset(e->key.id, 'a', sizeof e->key.id); }
static void b_id_utf8(px_event_t *e) { strcpy(e->key.id, "caf\xc3\xa9"); }
static void b_tab_missing(px_event_t *e) { e->tab_id[0] = '\0'; }
static void b_user_missing(px_event_t *e) { e->user_id[0] = '\0'; }
static void b_field_missing(px_event_t *e) { e->field[0] = '\0'; }
static void b_expire_no_deadline(px_event_t *e) { e->expires_at_ms = PX_NONE; }
static void b_type_range(px_event_t *e) { e->type = 99; }
static void b_type_neg(px_event_t *e) { e->type = -1; }
static void b_kind_range(px_event_t *e) { e->kind = (px_kind_t)9; }
static void b_mode(px_event_t *e) { e->mode = (px_mode_t)5; }
static void b_status(px_event_t *e) { e->status = (px_status_t)7; }
static void b_name_utf8(px_event_t *e) { strcpy(e->user_name, "bad \xc3\x28"); }
static void b_cursor_surrogate(px_event_t *e) { strcpy(e->cursor, "\xed\xa0\x80"); }
static void b_name_unterminated(px_event_t *e) { memset(e->user_name, 'n', sizeof e->user_name); }
static void b_topic_unterminated(px_event_t *e) { memset(e->src_topic, 't', sizeof e->src_topic); }
static void b_version_neg(px_event_t *e) { e->version = -2; }
static void b_token_missing(px_event_t *e) { e->token = PX_NONE; }
static void b_holder_missing(px_event_t *e) { e->holder_user_id[0] = '\0'; }
static void b_version_missing(px_event_t *e) { e->version = PX_NONE; }
static void b_src_partial(px_event_t *e) { strcpy(e->src_topic, "presence.locks"); }
static void b_src_partition_only(px_event_t *e) { e->src_partition = 3; }
static void b_expires_neg(px_event_t *e) { e->expires_at_ms = -7; }
static void b_busy_utf8(px_event_t *e) { strcpy(e->busy_by, "\xf4\x90\x80\x80"); /* > U+10FFFF */ }

static const px_bad_event_t px_bad_events[] = {
    {"ts 0", PX_KIND_PRESENCE, PX_PRES_HB, b_ts0, "ts"},
    {"ts negative", PX_KIND_LIFECYCLE, PX_LC_MUTATED, b_tsneg, "ts"},
    {"tenant chars", PX_KIND_PRESENCE, PX_PRES_SUB, b_tenant_chars, "tenant"},
    {"tenant colon", PX_KIND_LOCK, PX_LOCK_LOCK, b_tenant_colon, "tenant"},
    {"entity empty", PX_KIND_LIFECYCLE, PX_LC_MUTATING, b_entity_empty, "entity"},
    {"id over bound", PX_KIND_CHANGE, PX_CH_STALE_SET, b_id_unterminated, "id"},
    {"id non-ascii", PX_KIND_PRESENCE, PX_PRES_SUB, b_id_utf8, "id"},
    {"presence tab_id", PX_KIND_PRESENCE, PX_PRES_SUB, b_tab_missing, "tab_id"},
    {"presence user_id", PX_KIND_PRESENCE, PX_PRES_UNSUB, b_user_missing, "user_id"},
    {"lock field", PX_KIND_LOCK, PX_LOCK_UNLOCK, b_field_missing, "field"},
    {"lock tab_id", PX_KIND_LOCK, PX_LOCK_LOCK, b_tab_missing, "tab_id"},
    {"lock user_id", PX_KIND_LOCK, PX_LOCK_EXPIRE, b_user_missing, "user_id"},
    {"presence EXPIRE deadline", PX_KIND_PRESENCE, PX_PRES_EXPIRE, b_expire_no_deadline, "expires_at_ms"},
    {"lock EXPIRE deadline", PX_KIND_LOCK, PX_LOCK_EXPIRE, b_expire_no_deadline, "expires_at_ms"},
    {"lifecycle EXPIRE deadline", PX_KIND_LIFECYCLE, PX_LC_EXPIRE, b_expire_no_deadline, "expires_at_ms"},
    {"type 99", PX_KIND_LOCK, PX_LOCK_LOCK, b_type_range, "type"},
    {"type -1", PX_KIND_CHANGE, PX_CH_JOINED, b_type_neg, "type"},
    {"kind 9", PX_KIND_PRESENCE, PX_PRES_SUB, b_kind_range, "kind"},
    {"mode 5", PX_KIND_PRESENCE, PX_PRES_HB, b_mode, "mode"},
    {"status 7", PX_KIND_PRESENCE, PX_PRES_HB, b_status, "status"},
    {"user_name UTF-8", PX_KIND_PRESENCE, PX_PRES_HB, b_name_utf8, "user_name"},
    {"cursor surrogate", PX_KIND_PRESENCE, PX_PRES_HB, b_cursor_surrogate, "cursor"},
    {"user_name over bound", PX_KIND_LOCK, PX_LOCK_LOCK, b_name_unterminated, "user_name"},
    {"src_topic over bound", PX_KIND_CHANGE, PX_CH_LEFT, b_topic_unterminated, "src_topic"},
    {"version -2", PX_KIND_LIFECYCLE, PX_LC_MUTATED, b_version_neg, "version"},
    {"expires_at -7", PX_KIND_PRESENCE, PX_PRES_HB, b_expires_neg, "expires_at_ms"},
    {"busy_by above U+10FFFF", PX_KIND_LIFECYCLE, PX_LC_MUTATING, b_busy_utf8, "busy_by"},
    {"change JOINED tab_id", PX_KIND_CHANGE, PX_CH_JOINED, b_tab_missing, "tab_id"},
    {"change LOCK_GRANTED token", PX_KIND_CHANGE, PX_CH_LOCK_GRANTED, b_token_missing, "token"},
    {"change LOCK_DENIED holder", PX_KIND_CHANGE, PX_CH_LOCK_DENIED, b_holder_missing, "holder_user_id"},
    {"change LOCK_EXPIRED field", PX_KIND_CHANGE, PX_CH_LOCK_EXPIRED, b_field_missing, "field"},
    {"change VERSION_BUMPED version", PX_KIND_CHANGE, PX_CH_VERSION_BUMPED, b_version_missing, "version"},
    {"change src_topic alone", PX_KIND_CHANGE, PX_CH_STALE_SET, b_src_partial, "src_"},
    {"change src_partition alone", PX_KIND_CHANGE, PX_CH_STALE_CLEARED, b_src_partition_only, "src_"},
};

static void test_validate_table(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof px_bad_events / sizeof px_bad_events[0]; i++) {
        const px_bad_event_t *row = &px_bad_events[i];
        px_event_t ev;
        char err[256] = "";
        px_sample_event(&ev, row->kind, row->type, false);
        assert_int_equal(px_event_validate(&ev, err, sizeof err), 0);
        row->breakit(&ev);
        int rc = px_event_validate(&ev, err, sizeof err);
        if (rc != PX_EINVAL || !strstr(err, row->expect))
            fail_msg("row '%s': rc %d, errstr '%s', expected INVALID mentioning '%s'", row->name, rc, err,
                     row->expect);
    }
    /* A NULL or tiny errstr is fine. */
    px_event_t ev;
    px_sample_event(&ev, PX_KIND_PRESENCE, PX_PRES_HB, false);
    ev.ts_ms = 0;
    char one[1];
    assert_int_equal(px_event_validate(&ev, NULL, 0), PX_EINVAL);
    assert_int_equal(px_event_validate(&ev, one, sizeof one), PX_EINVAL);
    assert_int_equal(one[0], '\0');
}

static void test_validate_accepts(void **state) {
    (void)state;
    char err[256];
    px_event_t ev;
    /* lifecycle needs only key and ts */
    px_event_init(&ev, PX_KIND_LIFECYCLE);
    assert_int_equal(px_key_set(&ev.key, "t", "e", "i", err, sizeof err), 0);
    ev.ts_ms = 1;
    assert_int_equal(px_event_validate(&ev, err, sizeof err), 0);
    /* key parts at their bound, fields of other kinds set but unused */
    px_sample_event(&ev, PX_KIND_PRESENCE, PX_PRES_SUB, true);
    memset(ev.key.tenant, 'T', PX_KEY_PART_MAX);
    ev.key.tenant[PX_KEY_PART_MAX] = '\0';
    strcpy(ev.busy_by, "unused");
    assert_int_equal(px_event_validate(&ev, err, sizeof err), 0);
    /* change with no source record */
    px_sample_event(&ev, PX_KIND_CHANGE, PX_CH_STALE_CLEARED, false);
    assert_int_equal(px_event_validate(&ev, err, sizeof err), 0);
}

typedef struct {
    const char *s;
    size_t len;
    bool ok;
} px_utf8_row_t;

#define U(lit, ok) {lit, sizeof(lit) - 1, ok}

static void test_utf8(void **state) {
    (void)state;
    static const px_utf8_row_t rows[] = {
        U("", true),
        U("plain ascii", true),
        U("\x7f", true),
        U("\xc2\x80", true),             /* U+0080 */
        U("\xdf\xbf", true),             /* U+07FF */
        U("\xe0\xa0\x80", true),         /* U+0800 */
        U("\xed\x9f\xbf", true),         /* U+D7FF */
        U("\xee\x80\x80", true),         /* U+E000 */
        U("\xef\xbf\xbf", true),         /* U+FFFF */
        U("\xf0\x90\x80\x80", true),     /* U+10000 */
        U("\xf4\x8f\xbf\xbf", true),     /* U+10FFFF */
        U("a\0b", true),                 /* NUL is UTF-8; callers refuse it */
        U("\x80", false),                /* lone continuation */
        U("\xbf", false),
        U("\xc0\x80", false),            /* overlong NUL */
        U("\xc1\xbf", false),            /* overlong */
        U("\xe0\x80\x80", false),        /* overlong 3-byte */
        U("\xe0\x9f\xbf", false),        /* overlong U+07FF */
        U("\xf0\x80\x80\x80", false),    /* overlong 4-byte */
        U("\xf0\x8f\xbf\xbf", false),    /* overlong U+FFFF */
        U("\xed\xa0\x80", false),        /* U+D800 */
        U("\xed\xbf\xbf", false),        /* U+DFFF */
        U("\xf4\x90\x80\x80", false),    /* U+110000 */
        U("\xf5\x80\x80\x80", false),
        U("\xff", false),
        U("\xfe", false),
        U("\xc3", false),                /* truncated */
        U("\xe2\x82", false),
        U("\xf0\x9f\x98", false),
        U("\xc3\x28", false),            /* bad continuation */
        U("\xe2\x28\xa1", false),
        U("\xe2\x82\x28", false),
        U("\xf0\x9f\x28\x80", false),
        U("ok\xc3\xa9ok\xe2\x82\xac", true),
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (px_utf8_valid(rows[i].s, rows[i].len) != rows[i].ok) fail_msg("utf8 row %zu", i);
    assert_true(px_utf8_valid(NULL, 0));
    /* every 1- and 2-byte sequence agrees with a reference decoder */
    for (unsigned a = 0; a < 256; a++) {
        char b1[1] = {(char)a};
        assert_int_equal(px_utf8_valid(b1, 1), a < 0x80);
        for (unsigned b = 0; b < 256; b++) {
            char b2[2] = {(char)a, (char)b};
            bool ref = (a < 0x80 && b < 0x80) || (a >= 0xc2 && a <= 0xdf && (b & 0xc0) == 0x80);
            if (px_utf8_valid(b2, 2) != ref) fail_msg("utf8 %02x %02x", a, b);
        }
    }
}

static void test_key_basics(void **state) {
    (void)state;
    px_key_t k;
    char err[128], out[PX_KEY_MAX + 1];
    assert_int_equal(px_key_parse("acme:invoice:42", 15, &k, err, sizeof err), 0);
    assert_string_equal(k.entity, "invoice");
    assert_int_equal(px_key_format(&k, out, sizeof out), 15);
    assert_string_equal(out, "acme:invoice:42");
    assert_int_equal(px_key_parse("a:b:c:d", 7, &k, err, sizeof err), PX_EINVAL);
    assert_int_equal(px_key_parse("a::c", 4, &k, err, sizeof err), PX_EINVAL);
    assert_int_equal(px_key_parse("a:b", 3, &k, err, sizeof err), PX_EINVAL);
    assert_int_equal(px_key_set(&k, "a", "b c", "d", err, sizeof err), PX_EINVAL);
    assert_false(px_key_part_valid("", 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_defaults),   cmocka_unit_test(test_names),
        cmocka_unit_test(test_samples_valid),   cmocka_unit_test(test_validate_table),
        cmocka_unit_test(test_validate_accepts), cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_key_basics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
