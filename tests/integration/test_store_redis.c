/*
 * test_store_redis.c - PX_STORE_WRITE_SCRIPT and px_store_write_cmd against
 * a real redis-server (7.x: PEXPIRETIME), which the test starts itself on a
 * free port (--save '' --appendonly no) and stops at the end, as hiredis's
 * test.c does. No Kafka: it does not use the stack fixture.
 *
 * Checks every key's exact contents and expiry after a write, that a stale
 * or incomparable watermark changes nothing and publishes nothing, that an
 * equal watermark rewrites idempotently, that a newer one replaces, that an
 * empty entity leaves no view, that an entity at every cap goes through
 * (a view of 256 tabs and 64 locks that reads back whole), and that HMGET state wm blob ->
 * px_store_decode loads the entity back. Usage: test_store_redis
 * [redis-server path].
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "px_err.h"
#include "px_store.h"
#include "px_time.h"
#include "px_view.h"
#include "../unit/px_testlib.h"

static const char *redis_bin = "redis-server";
static pid_t server_pid = -1;
static int port;
static redisContext *rc_cmd, *rc_sub;
static char sha[41];
static px_fold_conf_t C;

/* ---- the server ------------------------------------------------------------------ */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &l)) return -1;
    close(fd);
    return ntohs(a.sin_port);
}

static void stop_server(void) {
    if (server_pid > 0) {
        kill(server_pid, SIGTERM);
        waitpid(server_pid, NULL, 0);
        server_pid = -1;
    }
}

static redisContext *dial(void) {
    for (int i = 0; i < 100; i++) {
        struct timeval tv = {1, 0};
        redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
        if (c && !c->err) return c;
        redisFree(c);
        usleep(50 * 1000);
    }
    return NULL;
}

static redisReply *cmd(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc_cmd, fmt, ap);
    va_end(ap);
    if (!r) fail_msg("redis: %s", rc_cmd->errstr);
    if (r->type == REDIS_REPLY_ERROR) fail_msg("redis: %s", r->str);
    return r;
}

static long long cmd_int(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(rc_cmd, fmt, ap);
    va_end(ap);
    if (!r || r->type != REDIS_REPLY_INTEGER) fail_msg("redis: expected an integer (%s)", r && r->str ? r->str : "-");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static int group_setup(void **state) {
    assert_int_equal(px_key_set(&K, "acme", "doc", "1", NULL, 0), 0);
    C = px_fold_conf_default();
    for (int attempt = 0; attempt < 3 && !rc_cmd; attempt++) {
        port = free_port();
        if (port <= 0) continue;
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        server_pid = fork();
        if (server_pid == 0) {
            if (!freopen("/dev/null", "w", stdout)) _exit(127); /* its log; errors still reach stderr */
            execlp(redis_bin, redis_bin, "--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                   "--loglevel", "warning", (char *)NULL);
            _exit(127);
        }
        rc_cmd = dial();
        if (!rc_cmd) stop_server();
    }
    if (!rc_cmd) {
        fprintf(stderr, "test_store_redis: could not start %s\n", redis_bin);
        return -1;
    }
    rc_sub = dial();
    if (!rc_sub) return -1;
    redisReply *r = redisCommand(rc_cmd, "SCRIPT LOAD %s", PX_STORE_WRITE_SCRIPT);
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
        fprintf(stderr, "SCRIPT LOAD failed: %s\n", r && r->str ? r->str : rc_cmd->errstr);
        freeReplyObject(r);
        return -1;
    }
    memcpy(sha, r->str, 41);
    freeReplyObject(r);
    char ch[PX_KEY_MAX + 32];
    px_view_channel(&K, ch, sizeof ch);
    r = redisCommand(rc_sub, "SUBSCRIBE %s", ch);
    freeReplyObject(r);
    struct timeval tv = {0, 300 * 1000};
    redisSetTimeout(rc_sub, tv);
    return 0;
}

static int group_teardown(void **state) {
    redisFree(rc_sub);
    redisFree(rc_cmd);
    stop_server();
    return 0;
}

/* ---- helpers ------------------------------------------------------------------- */

/* pres() with a name JSON must escape, so the view's encoding is checked. */
static px_event_t presq(int type, const char *tab, const char *user, int64_t ts) {
    px_event_t ev = pres(type, tab, user, ts);
    snprintf(ev.user_name, sizeof ev.user_name, "Name \"%s\"", user);
    return ev;
}

static void apply(px_entity_t *e, px_store_wm_t *wm, px_event_t ev) {
    px_src_topic_t t = ev.kind == PX_KIND_PRESENCE ? PX_SRC_HEARTBEATS
                       : ev.kind == PX_KIND_LOCK   ? PX_SRC_LOCKS
                       : ev.type == PX_LC_MUTATED  ? PX_SRC_MUTATED
                                                   : PX_SRC_MUTATING;
    px_src_t src = {t, 0, ++wm->off[t]};
    assert_int_equal(px_fold_apply(e, &C, &ev, &src, NULL, NULL), 0);
}

static void apply_lock(px_entity_t *e, px_store_wm_t *wm, const char *field, const char *tab, const char *user,
                       int64_t ts) {
    px_event_t ev;
    px_event_init(&ev, PX_KIND_LOCK);
    ev.type = PX_LOCK_LOCK;
    ev.key = K;
    ev.ts_ms = ts;
    snprintf(ev.field, sizeof ev.field, "%s", field);
    snprintf(ev.tab_id, sizeof ev.tab_id, "%s", tab);
    snprintf(ev.user_id, sizeof ev.user_id, "%s", user);
    apply(e, wm, ev);
}

static void apply_lc(px_entity_t *e, px_store_wm_t *wm, int type, const char *wid, int64_t ts, int64_t version) {
    px_event_t ev;
    px_event_init(&ev, PX_KIND_LIFECYCLE);
    ev.type = type;
    ev.key = K;
    ev.ts_ms = ts;
    snprintf(ev.write_id, sizeof ev.write_id, "%s", wid);
    snprintf(ev.busy_by, sizeof ev.busy_by, "job %s", wid);
    ev.version = version;
    apply(e, wm, ev);
}

/* Run the write; its integer reply. */
static long long write_entity(px_store_cmd_t *c, const px_entity_t *e, const px_store_wm_t *wm, int64_t now,
                              const char *notify) {
    assert_int_equal(px_store_write_cmd(c, sha, e, &C, wm, now, notify), 0);
    redisReply *r = redisCommandArgv(rc_cmd, c->argc, c->argv, c->argvlen);
    if (!r) fail_msg("redis: %s", rc_cmd->errstr);
    if (r->type != REDIS_REPLY_INTEGER) fail_msg("script: %s", r->type == REDIS_REPLY_ERROR ? r->str : "not an integer");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void key_of(const px_key_t *k, const char *suffix, char *out) {
    assert_true(px_view_key(k, suffix, out, PX_KEY_MAX + 64) > 0);
}

/* The view key's value (NULL when absent; free it) and its PEXPIRETIME. */
static char *get_view(const px_key_t *k, long long *expiretime) {
    char key[PX_KEY_MAX + 64];
    key_of(k, "view", key);
    redisReply *r = cmd("GET %s", key);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    assert_true(v || r->type == REDIS_REPLY_NIL);
    freeReplyObject(r);
    if (expiretime) *expiretime = cmd_int("PEXPIRETIME %s", key);
    return v;
}

/* Every key of the entity as bytes (DUMP) plus its expiry: equal snapshots
 * mean nothing changed. */
static void snapshot(const px_key_t *k, px_buf_t *out) {
    static const char *const sfx[] = {"state", "view"};
    px_buf_reset(out);
    for (size_t i = 0; i < 2; i++) {
        char key[PX_KEY_MAX + 64];
        key_of(k, sfx[i], key);
        redisReply *r = cmd("DUMP %s", key);
        px_buf_printf(out, "%s:", sfx[i]);
        if (r->type == REDIS_REPLY_STRING) px_buf_append(out, r->str, r->len);
        freeReplyObject(r);
        px_buf_printf(out, "|%lld;", cmd_int("PEXPIRETIME %s", key));
    }
}

/* The next message on the subscription, or NULL after the timeout. */
static char *next_message(void) {
    void *p = NULL;
    if (redisGetReply(rc_sub, &p) != REDIS_OK || !p) {
        /* a timeout leaves the context unusable: reconnect and resubscribe */
        redisFree(rc_sub);
        rc_sub = dial();
        assert_non_null(rc_sub);
        char ch[PX_KEY_MAX + 32];
        px_view_channel(&K, ch, sizeof ch);
        freeReplyObject(redisCommand(rc_sub, "SUBSCRIBE %s", ch));
        struct timeval tv = {0, 300 * 1000};
        redisSetTimeout(rc_sub, tv);
        return NULL;
    }
    redisReply *r = p;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->str, "message");
    char *s = strdup(r->element[2]->str);
    freeReplyObject(r);
    return s;
}

static void expect_message(const char *want) {
    char *m = next_message();
    if (!m) fail_msg("no message, expected %s", want);
    assert_string_equal(m, want);
    free(m);
}

/* Nothing was published: a marker published now is the next message. */
static void expect_no_message(void) {
    char ch[PX_KEY_MAX + 32];
    px_view_channel(&K, ch, sizeof ch);
    freeReplyObject(cmd("PUBLISH %s %s", ch, "marker"));
    expect_message("marker");
}

/* ---- tests ----------------------------------------------------------------------- */

/* One entity with live and dead tabs, a lock, an open write; version 0. */
static void build(px_entity_t *e, px_store_wm_t *wm, int64_t t0) {
    px_entity_init(e, &K);
    px_store_wm_init(wm);
    apply(e, wm, presq(PX_PRES_SUB, "t1", "alice", t0));
    px_event_t hb = presq(PX_PRES_HB, "t2", "alice", t0 + 2000);
    hb.mode = PX_MODE_EDIT;
    hb.dirty = true;
    snprintf(hb.field, sizeof hb.field, "title");
    snprintf(hb.cursor, sizeof hb.cursor, "{\"line\":3}");
    apply(e, wm, hb);
    apply(e, wm, presq(PX_PRES_SUB, "t3", "bob", t0 + 1000));
    apply(e, wm, presq(PX_PRES_SUB, "t0", "carol", t0 - 100000)); /* dead by now */
    apply_lock(e, wm, "title", "t2", "alice", t0 + 2000);
    apply_lock(e, wm, "body", "t8", "dave", t0 - 500000); /* dead by now */
    apply_lc(e, wm, PX_LC_MUTATING, "w1", t0 + 500, PX_NONE);
}

static void test_write_read_back(void **state) {
    int64_t t0 = px_now_ms(), now = t0 + 2000;
    px_entity_t e;
    px_store_wm_t wm;
    build(&e, &wm, t0);
    char k[PX_KEY_MAX + 64];
    px_store_cmd_t c;
    px_store_cmd_init(&c);
    assert_int_equal(write_entity(&c, &e, &wm, now, "{\"type\":\"JOINED\"}"), 1);
    expect_message("{\"type\":\"JOINED\"}");

    int64_t tabs_dl = t0 + 2000 + C.presence_ttl_ms, lock_dl = t0 + 2000 + C.lock_ttl_ms,
            stale_until = t0 + 500 + C.stale_ttl_ms;
    /* state: wm, blob, expiry (version 0: the latest deadline, at least now + the longest ttl) */
    key_of(&K, "state", k);
    redisReply *r = cmd("HMGET %s wm blob", k);
    assert_int_equal(r->elements, 2);
    char wmstr[64];
    snprintf(wmstr, sizeof wmstr, "%lld,%lld,%lld,%lld", (long long)wm.off[0], (long long)wm.off[1],
             (long long)wm.off[2], (long long)wm.off[3]);
    assert_string_equal(r->element[0]->str, wmstr);
    px_buf_t blob;
    px_buf_init(&blob, PX_STORE_BLOB_MAX);
    assert_int_equal(px_store_encode(&e, &wm, &blob), 0);
    assert_int_equal(r->element[1]->len, blob.len);
    assert_memory_equal(r->element[1]->str, blob.data, blob.len);
    freeReplyObject(r);
    assert_int_equal(cmd_int("HLEN %s", k), 2);
    /* the state holds tabs and locks: it never expires by the clock (only
     * EXPIRE records in the log remove them) */
    assert_int_equal(cmd_int("PEXPIRETIME %s", k), -1);

    /* the view: live tabs and locks only, with their deadlines; stale by
     * w1; expires at its latest deadline (version 0) */
    long long at;
    char *view = get_view(&K, &at);
    assert_non_null(view);
    char want[2048];
    snprintf(want, sizeof want,
             "{\"tabs\":["
             "{\"tab\":\"t1\",\"deadline\":%lld,\"user\":\"alice\",\"name\":\"Name \\\"alice\\\"\",\"mode\":\"view\","
             "\"dirty\":false,\"status\":\"online\",\"field\":\"\",\"cursor\":\"\",\"since\":%lld},"
             "{\"tab\":\"t2\",\"deadline\":%lld,\"user\":\"alice\",\"name\":\"Name \\\"alice\\\"\",\"mode\":\"edit\","
             "\"dirty\":true,\"status\":\"online\",\"field\":\"title\",\"cursor\":\"{\\\"line\\\":3}\",\"since\":%lld},"
             "{\"tab\":\"t3\",\"deadline\":%lld,\"user\":\"bob\",\"name\":\"Name \\\"bob\\\"\",\"mode\":\"view\","
             "\"dirty\":false,\"status\":\"online\",\"field\":\"\",\"cursor\":\"\",\"since\":%lld}],"
             "\"locks\":[{\"field\":\"title\",\"user\":\"alice\",\"name\":\"\",\"tab\":\"t2\",\"token\":%lld,"
             "\"deadline\":%lld}],\"stale\":true,\"busyBy\":\"job w1\",\"stale_until\":%lld,\"version\":0}",
             (long long)(t0 + C.presence_ttl_ms), (long long)t0, (long long)tabs_dl, (long long)(t0 + 2000),
             (long long)(t0 + 1000 + C.presence_ttl_ms), (long long)(t0 + 1000), (long long)e.locks[1].token,
             (long long)lock_dl, (long long)stale_until);
    assert_string_equal(px_fold_lock_field(&e.locks[1]), "title");
    assert_string_equal(view, want);
    assert_int_equal(at, stale_until > lock_dl ? stale_until : lock_dl);
    free(view);

    /* load: HMGET state wm blob -> decode gives the entity back */
    key_of(&K, "state", k);
    r = cmd("HMGET %s wm blob", k);
    px_entity_t d;
    px_store_wm_t dwm;
    char err[256];
    px_entity_init(&d, &K);
    assert_int_equal(px_store_decode(r->element[1]->str, r->element[1]->len, &d, &dwm, err, sizeof err), 0);
    assert_true(px_entity_equal(&e, &d));
    assert_memory_equal(dwm.off, wm.off, sizeof wm.off);
    freeReplyObject(r);
    px_entity_term(&d);

    px_buf_term(&blob);
    px_store_cmd_term(&c);
    px_entity_term(&e);
}

/* Stale, incomparable, equal and newer watermarks. */
static void test_watermark_guard(void **state) {
    int64_t t0 = px_now_ms(), now = t0 + 2000;
    px_entity_t e, old;
    px_store_wm_t wm, old_wm;
    build(&e, &wm, t0);
    px_entity_init(&old, &K);
    assert_int_equal(px_entity_copy(&old, &e), 0);
    old_wm = wm;
    apply(&e, &wm, presq(PX_PRES_UNSUB, "t3", "bob", t0 + 3000));
    apply_lc(&e, &wm, PX_LC_MUTATED, "w1", t0 + 3000, 7);
    px_store_cmd_t c;
    px_store_cmd_init(&c);
    px_buf_t before, after;
    px_buf_init(&before, 1 << 22);
    px_buf_init(&after, 1 << 22);

    assert_int_equal(write_entity(&c, &e, &wm, now, "new"), 1);
    expect_message("new");
    snapshot(&K, &before);

    /* an older watermark: nothing changes, nothing is published */
    assert_int_equal(write_entity(&c, &old, &old_wm, now, "old"), 0);
    snapshot(&K, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);
    expect_no_message();

    /* incomparable (one component ahead, one behind): refused too */
    px_store_wm_t mixed = wm;
    mixed.off[PX_SRC_HEARTBEATS] += 5;
    mixed.off[PX_SRC_MUTATED] -= 1;
    assert_int_equal(write_entity(&c, &e, &mixed, now, "mixed"), 0);
    snapshot(&K, &after);
    assert_memory_equal(before.data, after.data, before.len);
    expect_no_message();

    /* the same watermark again (a replayed write): written, same bytes */
    assert_int_equal(write_entity(&c, &e, &wm, now, "again"), 1);
    expect_message("again");
    snapshot(&K, &after);
    assert_int_equal(before.len, after.len);
    assert_memory_equal(before.data, after.data, before.len);

    /* the newer write replaced the first view: t3 left, version 7, so
     * state and view persist */
    char k[PX_KEY_MAX + 64];
    key_of(&K, "state", k);
    assert_int_equal(cmd_int("PEXPIRETIME %s", k), -1);
    long long at;
    char *view = get_view(&K, &at);
    assert_int_equal(at, -1);
    px_view_tab_t vt[8];
    px_view_lock_t vl[8];
    px_view_t v = {.tabs = vt, .max_tabs = 8, .locks = vl, .max_locks = 8};
    assert_int_equal(px_view_decode(view, strlen(view), now, &v), 0);
    free(view);
    assert_false(v.stale);
    assert_string_equal(v.busy_by, "");
    assert_int_equal(v.version, 7);
    assert_int_equal(v.n_tabs, 2);
    assert_int_equal(v.n_locks, 1);

    /* a heartbeat moves the tab's deadline in the view */
    px_entity_t e2;
    px_entity_init(&e2, &K);
    assert_int_equal(px_entity_copy(&e2, &e), 0);
    apply(&e2, &wm, presq(PX_PRES_HB, "t1", "alice", t0 + 4000));
    assert_int_equal(write_entity(&c, &e2, &wm, now, NULL), 1);
    view = get_view(&K, NULL);
    assert_int_equal(px_view_decode(view, strlen(view), now, &v), 0);
    free(view);
    assert_string_equal(vt[0].tab_id, "t1");
    assert_int_equal(vt[0].deadline_ms, t0 + 4000 + C.presence_ttl_ms);
    expect_no_message(); /* NULL notify: nothing published */

    px_entity_term(&e2);
    px_buf_term(&before);
    px_buf_term(&after);
    px_store_cmd_term(&c);
    px_entity_term(&old);
    px_entity_term(&e);
}

/* The script's guard against a table of stored and new vectors: decimal
 * strings compared exactly (digit counts, 2^53 and beyond, -1 = none) and
 * any vector of another shape refused with PXWM. */
static void test_guard_table(void **state) {
    static const struct {
        const char *stored;
        int64_t nw[4];
        int want; /* 1 wrote, 0 kept, -1 PXWM error */
    } t[] = {
        {"9,9,9,9", {10, 9, 9, 9}, 1},
        {"10,9,9,9", {9, 9, 9, 9}, 0},
        {"-1,-1,-1,-1", {0, -1, -1, -1}, 1},
        {"0,-1,-1,-1", {-1, -1, -1, -1}, 0},
        {"5,5,5,5", {5, 5, 5, 5}, 1},
        {"5,5,5,5", {6, 4, 5, 5}, 0},
        {"5,5,5,5", {5, 5, 5, 6}, 1},
        {"5,5,5,6", {5, 5, 5, 5}, 0},
        {"9007199254740993,1,1,1", {9007199254740992LL, 1, 1, 1}, 0},
        {"9007199254740992,1,1,1", {9007199254740993LL, 1, 1, 1}, 1},
        {"99,1,1,1", {100, 1, 1, 1}, 1},
        {"100,1,1,1", {99, 1, 1, 1}, 0},
        {"1,2,3", {1, 2, 3, 4}, -1},
        {"1,2,3,4,5", {1, 2, 3, 4}, -1},
        {"1,2,x,4", {1, 2, 3, 4}, -1},
        {"", {1, 2, 3, 4}, -1},
    };
    int64_t now = px_now_ms();
    px_key_t kg;
    assert_int_equal(px_key_set(&kg, "acme", "doc", "guard", NULL, 0), 0);
    char sk[PX_KEY_MAX + 64];
    assert_true(px_store_state_key(&kg, sk, sizeof sk) > 0);
    px_entity_t e;
    px_entity_init(&e, &kg);
    px_store_cmd_t c;
    px_store_cmd_init(&c);
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        freeReplyObject(cmd("DEL %s", sk));
        freeReplyObject(cmd("HSET %s wm %s", sk, t[i].stored));
        px_store_wm_t wm;
        memcpy(wm.off, t[i].nw, sizeof wm.off);
        assert_int_equal(px_store_write_cmd(&c, sha, &e, &C, &wm, now, NULL), 0);
        redisReply *r = redisCommandArgv(rc_cmd, c.argc, c.argv, c.argvlen);
        assert_non_null(r);
        int got = r->type == REDIS_REPLY_ERROR ? -1 : r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 99;
        if (got == -1 && strncmp(r->str, "PXWM", 4) != 0) got = 99;
        freeReplyObject(r);
        if (got != t[i].want) fail_msg("guard row %zu (stored %s): got %d, want %d", i, t[i].stored, got, t[i].want);
    }
    freeReplyObject(cmd("DEL %s", sk));
    px_store_cmd_term(&c);
    px_entity_term(&e);
}

static long long exists_view(const px_key_t *k) {
    char a[PX_KEY_MAX + 64];
    key_of(k, "view", a);
    return cmd_int("EXISTS %s", a);
}

/* An empty entity has no view; one that becomes empty loses it. */
static void test_empty(void **state) {
    int64_t now = px_now_ms();
    px_key_t k2;
    assert_int_equal(px_key_set(&k2, "acme", "doc", "empty", NULL, 0), 0);
    px_entity_t e;
    px_entity_init(&e, &k2);
    px_store_wm_t wm;
    px_store_wm_init(&wm);
    px_store_cmd_t c;
    px_store_cmd_init(&c);
    assert_int_equal(write_entity(&c, &e, &wm, now, NULL), 1);
    assert_int_equal(exists_view(&k2), 0);
    char sk[PX_KEY_MAX + 64];
    assert_true(px_store_state_key(&k2, sk, sizeof sk) > 0);
    assert_int_equal(cmd_int("PEXPIRETIME %s", sk), now + PX_STORE_IDLE_RETENTION_MS);

    /* the same entity with one tab and a lock, then empty again */
    px_event_t ev = presq(PX_PRES_SUB, "t1", "u1", now);
    ev.key = k2;
    px_src_t src = {PX_SRC_HEARTBEATS, 0, ++wm.off[PX_SRC_HEARTBEATS]};
    assert_int_equal(px_fold_apply(&e, &C, &ev, &src, NULL, NULL), 0);
    assert_int_equal(write_entity(&c, &e, &wm, now, NULL), 1);
    assert_int_equal(exists_view(&k2), 1);
    assert_int_equal(cmd_int("PEXPIRETIME %s", sk), -1); /* a tab: kept until an EXPIRE or UNSUB */
    ev.type = PX_PRES_UNSUB;
    src.offset = ++wm.off[PX_SRC_HEARTBEATS];
    assert_int_equal(px_fold_apply(&e, &C, &ev, &src, NULL, NULL), 0);
    assert_int_equal(write_entity(&c, &e, &wm, now, NULL), 1);
    assert_int_equal(exists_view(&k2), 0);
    assert_int_equal(cmd_int("PEXPIRETIME %s", sk), now + PX_STORE_IDLE_RETENTION_MS);
    redisReply *r = cmd("HGET %s wm", sk);
    assert_string_equal(r->str, "1,-1,-1,-1");
    freeReplyObject(r);

    /* a stored watermark of another shape is an error, never an overwrite */
    freeReplyObject(cmd("HSET %s wm 1,2", sk));
    assert_int_equal(px_store_write_cmd(&c, sha, &e, &C, &wm, now, NULL), 0);
    r = redisCommandArgv(rc_cmd, c.argc, c.argv, c.argvlen);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_memory_equal(r->str, "PXWM", 4);
    freeReplyObject(r);
    r = cmd("HGET %s wm", sk);
    assert_string_equal(r->str, "1,2");
    freeReplyObject(r);
    px_store_cmd_term(&c);
    px_entity_term(&e);
}

/* An entity at the tab and lock caps: 256 tabs and 64 locks in one write. */
static void test_at_caps(void **state) {
    int64_t now = px_now_ms();
    px_key_t k3;
    assert_int_equal(px_key_set(&k3, "acme", "doc", "big", NULL, 0), 0);
    px_entity_t e;
    px_entity_init(&e, &k3);
    px_store_wm_t wm;
    px_store_wm_init(&wm);
    char id[PX_ID_MAX + 1];
    for (int i = 0; i < PX_FOLD_TABS_MAX; i++) {
        memset(id, 'x', PX_ID_MAX);
        id[PX_ID_MAX] = '\0';
        snprintf(id, 5, "%04d", i);
        id[4] = 'x';
        px_event_t ev = presq(PX_PRES_SUB, id, id, now);
        ev.key = k3;
        memset(ev.cursor, '\n', PX_NAME_MAX);
        ev.cursor[PX_NAME_MAX] = '\0';
        px_src_t src = {PX_SRC_HEARTBEATS, 0, ++wm.off[PX_SRC_HEARTBEATS]};
        assert_int_equal(px_fold_apply(&e, &C, &ev, &src, NULL, NULL), 0);
        if (i < PX_FOLD_LOCKS_MAX) {
            px_event_t l;
            px_event_init(&l, PX_KIND_LOCK);
            l.type = PX_LOCK_LOCK;
            l.key = k3;
            l.ts_ms = now;
            memcpy(l.field, id, sizeof id);
            memcpy(l.tab_id, id, sizeof id);
            memcpy(l.user_id, id, sizeof id);
            px_src_t ls = {PX_SRC_LOCKS, 0, ++wm.off[PX_SRC_LOCKS]};
            assert_int_equal(px_fold_apply(&e, &C, &l, &ls, NULL, NULL), 0);
        }
    }
    px_store_cmd_t c;
    px_store_cmd_init(&c);
    assert_int_equal(write_entity(&c, &e, &wm, now, NULL), 1);
    char k[PX_KEY_MAX + 64];
    char *view = get_view(&k3, NULL);
    static px_view_tab_t vt[PX_FOLD_TABS_MAX];
    static px_view_lock_t vl[PX_FOLD_LOCKS_MAX];
    px_view_t v = {.tabs = vt, .max_tabs = PX_FOLD_TABS_MAX, .locks = vl, .max_locks = PX_FOLD_LOCKS_MAX};
    assert_int_equal(px_view_decode(view, strlen(view), now, &v), 0);
    free(view);
    assert_int_equal(v.n_tabs, PX_FOLD_TABS_MAX);
    assert_int_equal(v.n_locks, PX_FOLD_LOCKS_MAX);
    assert_int_equal(v.n_dropped, 0);
    px_store_state_key(&k3, k, sizeof k);
    redisReply *r = cmd("HGET %s blob", k);
    px_entity_t d;
    px_store_wm_t dwm;
    char err[256];
    px_entity_init(&d, &k3);
    assert_int_equal(px_store_decode(r->str, r->len, &d, &dwm, err, sizeof err), 0);
    assert_true(px_entity_equal(&e, &d));
    freeReplyObject(r);
    px_entity_term(&d);
    px_store_cmd_term(&c);
    px_entity_term(&e);
}

int main(int argc, char **argv) {
    if (argc > 1) redis_bin = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_read_back),
        cmocka_unit_test(test_watermark_guard),
        cmocka_unit_test(test_guard_table),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_at_caps),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
