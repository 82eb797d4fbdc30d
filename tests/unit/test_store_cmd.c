/*
 * test_store_cmd.c - the write command of core/px_store.h (the EVALSHA
 * arguments: layout, only live items, deadlines from the fold, buffer
 * reuse) and the view codec of core/px_view.h (live filtering at the
 * reader's clock, caps, hostile views), without Redis.
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

/* ---- the write command ------------------------------------------------------------------- */

/* Split a list argument the way the script does. */
static int64_t px_store_max_ll(int64_t a, int64_t b) { return a > b ? a : b; }

static const char *arg(const px_store_cmd_t *cmd, int i, char *tmp, size_t n) {
    assert_true(i < cmd->argc && cmd->argvlen[i] < n);
    memcpy(tmp, cmd->argv[i], cmd->argvlen[i]);
    tmp[cmd->argvlen[i]] = '\0';
    return tmp;
}

/* The entity test_write_cmd writes: live and dead tabs and locks, an open
 * write and a closed one, folded at t0 with wm counting the offsets. */
static void write_cmd_fold(px_entity_t *e, const px_fold_conf_t *c, px_store_wm_t *wm, int64_t t0) {
    struct {
        px_event_t ev;
    } in[8];
    in[0].ev = pres(PX_PRES_SUB, "t1", "u1", t0);
    in[1].ev = pres(PX_PRES_SUB, "t2", "u1", t0 + 5000);
    in[2].ev = pres(PX_PRES_SUB, "t3", "u2", t0 - 100000); /* dead at t0 + 1000 */
    in[3].ev = lockev(PX_LOCK_LOCK, "a", "t1", "u1", t0);
    in[4].ev = lockev(PX_LOCK_LOCK, "z", "t9", "u9", t0 - 200000); /* dead */
    in[5].ev = lcev(PX_LC_MUTATING, "w1", t0, PX_NONE);
    in[6].ev = lcev(PX_LC_MUTATED, "w0", t0, 4);
    for (int i = 0; i < 7; i++) {
        px_src_topic_t t = topic_of(&in[i].ev);
        px_src_t src = {t, 0, ++wm->off[t]};
        assert_int_equal(px_fold_apply(e, c, &in[i].ev, &src, NULL, NULL), 0);
    }
}

/* test_write_cmd's rebuilds of cmd: the buffer reused, no notification, a
 * view that persists or expires or goes, an empty entity. */
static void write_cmd_rebuilds(px_store_cmd_t *cmd, const char *sha, px_entity_t *e, const px_fold_conf_t *c,
                               px_store_wm_t *wm, int64_t now, int64_t t0, int64_t t2_dl, int64_t lock_dl) {
    const int A = 4; /* ARGV[k] is argv[A + k] */
    char tmp[8192], wmstr[64];
    /* rebuilding reuses the buffer; no notification: empty channel */
    const char *data = cmd->buf.data;
    assert_int_equal(px_store_write_cmd(cmd, sha, e, c, wm, now, NULL), 0);
    assert_ptr_equal(cmd->buf.data, data);
    assert_string_equal(arg(cmd, A + 6, tmp, sizeof tmp), "");
    assert_int_equal(cmd->argvlen[A + 7], 0);

    /* far later: nothing live, version kept -> an empty view that persists */
    assert_int_equal(px_store_write_cmd(cmd, sha, e, c, wm, now + 100000000, NULL), 0);
    assert_int_equal(cmd->argvlen[A + 4], 0);
    assert_string_equal(arg(cmd, A + 5, tmp, sizeof tmp),
                        "{\"tabs\":[],\"locks\":[],\"stale\":false,\"busyBy\":\"\",\"stale_until\":0,\"version\":4}");

    /* no version: the view expires at its latest deadline */
    e->version = 0;
    assert_int_equal(px_store_write_cmd(cmd, sha, e, c, wm, now, NULL), 0);
    snprintf(wmstr, sizeof wmstr, "%lld", (long long)px_store_max_ll(px_store_max_ll(t2_dl, lock_dl), t0 + c->stale_ttl_ms));
    assert_string_equal(arg(cmd, A + 4, tmp, sizeof tmp), wmstr);
    /* ... and nothing live without a version: no view (DEL) */
    assert_int_equal(px_store_write_cmd(cmd, sha, e, c, wm, now + 100000000, NULL), 0);
    assert_int_equal(cmd->argvlen[A + 4], 0);
    assert_int_equal(cmd->argvlen[A + 5], 0);

    /* an empty entity: no view; state kept for the idle retention */
    px_entity_t empty;
    px_entity_init(&empty, &K);
    assert_int_equal(px_store_write_cmd(cmd, sha, &empty, c, wm, now, NULL), 0);
    assert_int_equal(cmd->argvlen[A + 4], 0);
    assert_int_equal(cmd->argvlen[A + 5], 0);
    snprintf(wmstr, sizeof wmstr, "%lld", (long long)(now + PX_STORE_IDLE_RETENTION_MS));
    assert_string_equal(arg(cmd, A + 3, tmp, sizeof tmp), wmstr);
    px_entity_term(&empty);
}

static void test_write_cmd(void **state) {
    px_fold_conf_t c = px_fold_conf_default();
    px_entity_t e;
    px_entity_init(&e, &K);
    int64_t t0 = 1700000000000LL;
    px_store_wm_t wm;
    px_store_wm_init(&wm);
    write_cmd_fold(&e, &c, &wm, t0);
    int64_t now = t0 + 1000;
    px_store_cmd_t cmd;
    px_store_cmd_init(&cmd);
    const char *sha = "abcdefabcdefabcdefabcdefabcdefabcdefabcd";
    assert_int_equal(px_store_write_cmd(&cmd, sha, &e, &c, &wm, now, "{\"type\":\"X\"}"), 0);
    char tmp[8192];
    assert_int_equal(cmd.argc, 12);
    assert_string_equal(arg(&cmd, 0, tmp, sizeof tmp), "EVALSHA");
    assert_string_equal(arg(&cmd, 1, tmp, sizeof tmp), sha);
    assert_string_equal(arg(&cmd, 2, tmp, sizeof tmp), "2");
    assert_string_equal(arg(&cmd, 3, tmp, sizeof tmp), "presence:{acme:doc:1}:state");
    assert_string_equal(arg(&cmd, 4, tmp, sizeof tmp), "presence:{acme:doc:1}:view");
    const int A = 4; /* ARGV[k] is argv[A + k] */
    char wmstr[64];
    snprintf(wmstr, sizeof wmstr, "%lld,%lld,%lld,%lld", (long long)wm.off[0], (long long)wm.off[1],
             (long long)wm.off[2], (long long)wm.off[3]);
    assert_string_equal(arg(&cmd, A + 1, tmp, sizeof tmp), wmstr);
    /* the blob decodes to the entity */
    px_entity_t d;
    px_store_wm_t dwm;
    char err[256];
    px_entity_init(&d, &K);
    assert_int_equal(px_store_decode(cmd.argv[A + 2], cmd.argvlen[A + 2], &d, &dwm, err, sizeof err), 0);
    assert_true(px_entity_equal(&e, &d));
    px_entity_term(&d);
    /* version 4: state and view persist */
    assert_string_equal(arg(&cmd, A + 3, tmp, sizeof tmp), "");
    assert_string_equal(arg(&cmd, A + 4, tmp, sizeof tmp), "");
    /* the view, byte for byte: t1 and t2 (t3 is past its deadline), lock a
     * (z is dead) with its deadline from the holder's heartbeats, stale by
     * w1, version 4 */
    int64_t t1_dl = t0 + c.presence_ttl_ms, t2_dl = t0 + 5000 + c.presence_ttl_ms;
    int64_t lock_dl = px_fold_lock_deadline(&e, &c, &e.locks[0]);
    assert_int_equal(lock_dl, t0 + c.lock_ttl_ms);
    char want[2048];
    snprintf(want, sizeof want,
             "{\"tabs\":[{\"tab\":\"t1\",\"deadline\":%lld,\"user\":\"u1\",\"name\":\"Name u1\",\"mode\":\"view\","
             "\"dirty\":false,\"status\":\"online\",\"field\":\"\",\"cursor\":\"\",\"since\":%lld},"
             "{\"tab\":\"t2\",\"deadline\":%lld,\"user\":\"u1\",\"name\":\"Name u1\",\"mode\":\"view\","
             "\"dirty\":false,\"status\":\"online\",\"field\":\"\",\"cursor\":\"\",\"since\":%lld}],"
             "\"locks\":[{\"field\":\"a\",\"user\":\"u1\",\"name\":\"Name u1\",\"tab\":\"t1\",\"token\":%lld,"
             "\"deadline\":%lld}],\"stale\":true,\"busyBy\":\"w1\",\"stale_until\":%lld,\"version\":4}",
             (long long)t1_dl, (long long)t0, (long long)t2_dl, (long long)(t0 + 5000),
             (long long)e.locks[0].token, (long long)lock_dl, (long long)(t0 + c.stale_ttl_ms));
    assert_string_equal(arg(&cmd, A + 5, tmp, sizeof tmp), want);
    /* and it reads back at now as what the fold says */
    px_view_tab_t vt[4];
    px_view_lock_t vl[4];
    px_view_t v = {.tabs = vt, .max_tabs = 4, .locks = vl, .max_locks = 4};
    assert_int_equal(px_view_decode(cmd.argv[A + 5], cmd.argvlen[A + 5], now, &v), 0);
    assert_int_equal(v.n_tabs, 2);
    assert_int_equal(v.n_locks, 1);
    assert_true(v.stale);
    assert_string_equal(v.busy_by, "w1");
    assert_int_equal(v.version, 4);
    assert_string_equal(arg(&cmd, A + 6, tmp, sizeof tmp), "presence:updates:{acme:doc:1}");
    assert_string_equal(arg(&cmd, A + 7, tmp, sizeof tmp), "{\"type\":\"X\"}");

    write_cmd_rebuilds(&cmd, sha, &e, &c, &wm, now, t0, t2_dl, lock_dl);
    px_store_cmd_term(&cmd);
    px_store_cmd_term(&cmd); /* twice is fine */
    px_entity_term(&e);
}

/* A lock inside a view, as px_view_decode reads it back (0 or PX_EINVAL). */
static int decode_lock_in_view(const char *lock, px_view_lock_t *out) {
    char json[1024];
    snprintf(json, sizeof json,
             "{\"tabs\":[],\"locks\":[%s],\"stale\":false,\"busyBy\":\"\",\"stale_until\":0,\"version\":0}", lock);
    px_view_t v = {.locks = out, .max_locks = 1};
    int rc = px_view_decode(json, strlen(json), 0, &v);
    if (rc == 0) assert_int_equal(v.n_locks, 1);
    return rc;
}

static void test_view_lock_codec(void **state) {
    px_view_lock_t l = {.field = "f", .user_id = "u\"1", .user_name = "N\n", .tab_id = "t", .token = 9,
                        .deadline_ms = INT64_MAX};
    px_buf_t b;
    px_buf_init(&b, 4096);
    assert_int_equal(px_view_lock_encode(&l, &b), 0);
    assert_string_equal(b.data, "{\"field\":\"f\",\"user\":\"u\\\"1\",\"name\":\"N\\n\",\"tab\":\"t\",\"token\":9,"
                                "\"deadline\":9223372036854775807}");
    px_view_lock_t d;
    assert_int_equal(decode_lock_in_view(b.data, &d), 0);
    assert_string_equal(d.field, "f");
    assert_string_equal(d.user_id, "u\"1");
    assert_string_equal(d.user_name, "N\n");
    assert_int_equal(d.deadline_ms, INT64_MAX);
    static const char *const bad[] = {
        "{}", "[]", "{\"field\":\"f\",\"user\":\"\",\"name\":\"\",\"tab\":\"t\",\"token\":1,\"deadline\":1}",
        "{\"field\":\"\",\"user\":\"u\",\"name\":\"\",\"tab\":\"t\",\"token\":1,\"deadline\":1}",
        "{\"user\":\"u\",\"name\":\"\",\"tab\":\"t\",\"token\":1,\"deadline\":1}",
        "{\"field\":\"f\",\"user\":\"u\",\"name\":\"\",\"tab\":\"t\",\"token\":-1,\"deadline\":1}",
        "{\"field\":\"f\",\"user\":\"u\",\"name\":\"\",\"tab\":\"t\",\"token\":1}",
        "{\"field\":\"f\",\"user\":\"u\",\"name\":1,\"tab\":\"t\",\"token\":1,\"deadline\":1}",
        "{\"field\":\"f\",\"user\":\"u\",\"user\":\"u\",\"name\":\"\",\"tab\":\"t\",\"token\":1,\"deadline\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (decode_lock_in_view(bad[i], &d) != PX_EINVAL) fail_msg("bad lock %zu accepted", i);
    px_buf_term(&b);
}

/* test_view_decode's refusals: a hostile-input table (every entry refused
 * whole) and every prefix of the valid view ok. */
static void view_refusals(px_view_t *v, const char *ok) {
    static char big[PX_VIEW_MAX_BYTES + 64];
    memset(big, ' ', sizeof big - 1);
    static const char small[] = "{\"tabs\":[],\"locks\":[],\"stale\":false,\"busyBy\":\"\",\"stale_until\":0,\"version\":0}";
    memcpy(big, small, sizeof small - 1); /* valid, then blanks past the limit */
    assert_int_equal(px_view_decode(small, sizeof small - 1, 0, v), 0);
    char long_name[PX_NAME_MAX + 128];
    int ln = snprintf(long_name, sizeof long_name, "{\"tabs\":[],\"locks\":[],\"stale\":true,\"busyBy\":\"%0*d\","
                      "\"stale_until\":9,\"version\":0}", PX_NAME_MAX + 1, 0);
    assert_true(ln > 0);
#define V(tabs, locks, rest) "{\"tabs\":" tabs ",\"locks\":" locks "," rest "}"
#define META "\"stale\":false,\"busyBy\":\"\",\"stale_until\":0,\"version\":0"
    const char *const bad[] = {
        "", "null", "[]", "\"x\"", "{", "{}", "{\"tabs\":[],\"locks\":[]}",
        V("{}", "[]", META), V("[]", "{}", META), V("null", "[]", META), V("[]", "[]", "\"stale\":1,\"busyBy\":\"\",\"stale_until\":0,\"version\":0"),
        V("[]", "[]", "\"stale\":false,\"busyBy\":null,\"stale_until\":0,\"version\":0"),
        V("[]", "[]", "\"stale\":false,\"busyBy\":\"\",\"stale_until\":-1,\"version\":0"),
        V("[]", "[]", "\"stale\":false,\"busyBy\":\"\",\"stale_until\":0,\"version\":1.5"),
        V("[]", "[]", "\"stale\":false,\"busyBy\":\"\",\"stale_until\":0"),
        V("[1]", "[]", META), V("[{}]", "[]", META),
        V("[{\"tab\":\"\",\"deadline\":9,\"user\":\"u\"}]", "[]", META),
        V("[{\"tab\":\"a\",\"deadline\":-9,\"user\":\"u\"}]", "[]", META),
        V("[{\"tab\":\"a\",\"deadline\":9,\"user\":\"\"}]", "[]", META),
        V("[{\"tab\":\"a\",\"deadline\":9,\"user\":\"u\",\"mode\":\"fly\"}]", "[]", META),
        V("[{\"tab\":\"a\",\"deadline\":9,\"user\":\"u\",\"dirty\":1}]", "[]", META),
        V("[{\"tab\":\"a\",\"deadline\":9,\"user\":\"u\",\"since\":\"1\"}]", "[]", META),
        V("[{\"tab\":\"a\\u0000b\",\"deadline\":9,\"user\":\"u\"}]", "[]", META),
        V("[{\"tab\":\"a\",\"tab\":\"b\",\"deadline\":9,\"user\":\"u\"}]", "[]", META),
        V("[]", "[{\"field\":\"f\"}]", META), V("[]", "[7]", META),
        "{\"tabs\":[],\"tabs\":[],\"locks\":[]," META "}",
        "{\"tabs\":[],\"locks\":[]," META "} trailing",
        long_name, big,
    };
#undef V
#undef META
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (px_view_decode(bad[i], strlen(bad[i]), 0, v) != PX_EINVAL) fail_msg("bad view %zu accepted", i);
        assert_int_equal(v->n_tabs + v->n_locks + v->n_dropped, 0);
    }
    /* every prefix of the valid view is refused, none crashes */
    for (size_t n = 0; n < strlen(ok); n++)
        assert_int_equal(px_view_decode(ok, n, 0, v), PX_EINVAL);
}

/* The whole view: live filtering at the reader's clock, the caps, and a
 * hostile-input table (every entry refused whole). */
static void test_view_decode(void **state) {
    px_view_tab_t vt[2];
    px_view_lock_t vl[1];
    px_view_t v = {.tabs = vt, .max_tabs = 2, .locks = vl, .max_locks = 1};
    const char *ok = "{\"tabs\":[{\"tab\":\"a\",\"deadline\":100,\"user\":\"u\",\"mode\":\"edit\",\"dirty\":true},"
                     "{\"tab\":\"b\",\"deadline\":300,\"user\":\"v\",\"name\":\"V\",\"status\":\"away\"},"
                     "{\"tab\":\"c\",\"deadline\":400,\"user\":\"w\"}],"
                     "\"locks\":[{\"field\":\"f\",\"user\":\"u\",\"name\":\"\",\"tab\":\"a\",\"token\":7,\"deadline\":150},"
                     "{\"field\":\"g\",\"user\":\"v\",\"name\":\"V\",\"tab\":\"b\",\"token\":8,\"deadline\":250}],"
                     "\"stale\":true,\"busyBy\":\"job\",\"stale_until\":200,\"version\":3,\"future\":[1]}";
    /* at 50: everything live; the caps keep 2 tabs and 1 lock, 2 left out */
    assert_int_equal(px_view_decode(ok, strlen(ok), 50, &v), 0);
    assert_int_equal(v.n_tabs, 2);
    assert_int_equal(v.n_locks, 1);
    assert_int_equal(v.n_dropped, 2);
    assert_string_equal(vt[0].tab_id, "a");
    assert_int_equal(vt[0].mode, PX_MODE_EDIT);
    assert_true(vt[0].dirty);
    assert_int_equal(vt[1].status, PX_STATUS_AWAY);
    assert_string_equal(vt[1].user_name, "V");
    assert_string_equal(vl[0].field, "f");
    assert_int_equal(vl[0].token, 7);
    assert_true(v.stale);
    assert_string_equal(v.busy_by, "job");
    assert_int_equal(v.version, 3);
    /* at 200: a, lock f and the stale flag have expired (deadline <= now) */
    assert_int_equal(px_view_decode(ok, strlen(ok), 200, &v), 0);
    assert_int_equal(v.n_tabs, 2);
    assert_string_equal(vt[0].tab_id, "b");
    assert_string_equal(vt[1].tab_id, "c");
    assert_int_equal(v.n_locks, 1);
    assert_string_equal(vl[0].field, "g");
    assert_int_equal(v.n_dropped, 0);
    assert_false(v.stale);
    assert_string_equal(v.busy_by, "");
    assert_int_equal(v.version, 3);
    /* at 1000: nothing live, the version stays */
    assert_int_equal(px_view_decode(ok, strlen(ok), 1000, &v), 0);
    assert_int_equal(v.n_tabs + v.n_locks, 0);
    assert_int_equal(v.version, 3);

    view_refusals(&v, ok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_cmd),
        cmocka_unit_test(test_view_lock_codec),
        cmocka_unit_test(test_view_decode),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
